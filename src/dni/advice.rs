//! Pool sizing advice. A session pool is a loss system: visitors arrive (new sessions, at rate
//! λ per minute), each holds a number for h minutes (from the first page view to the last
//! activity plus the lease length), and a visitor who finds every number busy is not queued
//! (they share, overflow or see the default number). That is Erlang's loss model, so the
//! chance that an arriving visitor finds the pool exhausted with N numbers and offered load
//! A = λ·h erlangs is Erlang B:
//!
//!   B(0, A) = 1,   B(n, A) = A·B(n−1, A) / (n + A·B(n−1, A))
//!
//! and the recommended size is the smallest N with B(N, A) ≤ the target (1% by default), for
//! the load of the busy hour (`busy_hour_load`), not the day's mean.

use crate::time::Millis;

/// Erlang B blocking probability for `servers` and `load` erlangs (the stable recurrence).
pub fn erlang_b(servers: u64, load: f64) -> f64 {
    let mut b = 1.0;
    for n in 1..=servers {
        b = load * b / (n as f64 + load * b);
    }
    b
}

/// The smallest pool whose exhaustion chance is at most `target` (capped at 100 000).
pub fn recommended_size(load: f64, target: f64) -> u64 {
    if load <= 0.0 {
        return 1;
    }
    let mut b = 1.0;
    for n in 1..=100_000u64 {
        b = load * b / (n as f64 + load * b);
        if b <= target {
            return n;
        }
    }
    100_000
}

const HOUR_MS: Millis = 3_600_000;

/// The offered load of the busy hour, in erlangs: how many numbers are leased on average during
/// the busiest hour of the day. Sizing for the day's mean instead leaves the pool short exactly
/// when visitors come (a site's afternoon is several times its night), which is why telephone
/// trunks are sized for the busy hour. Each hour's load is the lease time inside it over an
/// hour; with a day or more of history, each hour of the day is first averaged over the days
/// (ITU-T E.500's average busy hour), so one chance spike does not set the size.
pub fn busy_hour_load(
    leases: impl IntoIterator<Item = (Millis, Millis)>,
    from: Millis,
    to: Millis,
) -> f64 {
    let hours = ((to - from) / HOUR_MS).max(1) as usize;
    let mut per_hour = vec![0.0f64; hours];
    for (start, end) in leases {
        let (mut t, end) = (start.max(from), end.min(to));
        while t < end {
            let index = ((t - from) / HOUR_MS) as usize;
            let Some(load) = per_hour.get_mut(index) else {
                break;
            };
            let upto = end.min(from + (index as Millis + 1) * HOUR_MS);
            *load += (upto - t) as f64 / HOUR_MS as f64;
            t = upto;
        }
    }
    let slots = hours.min(24);
    let mut sums = vec![0.0f64; slots];
    let mut counts = vec![0u32; slots];
    for (i, load) in per_hour.iter().enumerate() {
        sums[i % slots] += load;
        counts[i % slots] += 1;
    }
    sums.iter()
        .zip(&counts)
        .map(|(sum, n)| sum / f64::from((*n).max(1)))
        .fold(0.0, f64::max)
}

/// The most intervals `[start, end)` overlapping at once (a sweep over their ends).
pub fn peak_overlap(intervals: impl IntoIterator<Item = (Millis, Millis)>) -> u64 {
    let mut edges: Vec<(Millis, i64)> = Vec::new();
    for (start, end) in intervals {
        if end > start {
            edges.push((start, 1));
            edges.push((end, -1));
        }
    }
    // Ends sort before starts at the same instant: [a, b) and [b, c) do not overlap.
    edges.sort();
    let (mut now, mut peak) = (0i64, 0i64);
    for (_, delta) in edges {
        now += delta;
        peak = peak.max(now);
    }
    peak as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erlang_b_matches_published_tables() {
        // Classic table values: 10 erlangs on 15 lines blocks 3.65%; 5 on 10 blocks 1.84%.
        assert!((erlang_b(15, 10.0) - 0.0365).abs() < 0.0005);
        assert!((erlang_b(10, 5.0) - 0.0184).abs() < 0.0005);
        assert_eq!(erlang_b(0, 3.0), 1.0);
        // And the inverse: 10 erlangs need 18 lines for 1% (the textbook figure).
        assert_eq!(recommended_size(10.0, 0.01), 18);
        assert_eq!(recommended_size(0.0, 0.01), 1);
        assert!(recommended_size(50.0, 0.001) > recommended_size(50.0, 0.01));
    }

    #[test]
    fn the_busy_hour_is_the_busiest_hour_of_the_day_averaged_over_days() {
        const H: Millis = HOUR_MS;
        // Two numbers leased all of hour 2 and one for half of hour 5, on each of two days;
        // on the second day a third number is also leased all of hour 2.
        let mut leases = Vec::new();
        for day in 0..2 {
            let d = day * 24 * H;
            leases.extend([(d + 2 * H, d + 3 * H), (d + 2 * H, d + 3 * H)]);
            leases.push((d + 5 * H, d + 5 * H + H / 2));
        }
        leases.push((24 * H + 2 * H, 24 * H + 3 * H));
        let load = busy_hour_load(leases.clone(), 0, 48 * H);
        assert!((load - 2.5).abs() < 1e-9, "{load}");
        // The mean over the two days is far lower: what sizing for the mean would use.
        let mean: f64 = leases.iter().map(|(s, e)| (e - s) as f64).sum::<f64>() / (48 * H) as f64;
        assert!(mean < 0.3 && load > 8.0 * mean);
        // A lease across an hour's end counts in both hours; one outside the window not at all.
        let split = busy_hour_load([(H / 2, H + H / 2), (-5 * H, -H)], 0, 3 * H);
        assert!((split - 0.5).abs() < 1e-9, "{split}");
        assert_eq!(busy_hour_load(std::iter::empty(), 0, 24 * H), 0.0);
    }

    #[test]
    fn peak_overlap_counts_concurrent_intervals() {
        assert_eq!(peak_overlap([(0, 10), (5, 15), (9, 20), (15, 30)]), 3);
        assert_eq!(
            peak_overlap([(0, 10), (10, 20)]),
            1,
            "touching is not overlapping"
        );
        assert_eq!(peak_overlap(std::iter::empty()), 0);
    }
}
