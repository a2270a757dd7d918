//! Pool sizing advice. A session pool is a loss system: visitors arrive (new sessions, at rate
//! λ per minute), each holds a number for h minutes (from the first page view to the last
//! activity plus the lease length), and a visitor who finds every number busy is not queued
//! (they share, overflow or see the default number). That is Erlang's loss model, so the
//! chance that an arriving visitor finds the pool exhausted with N numbers and offered load
//! A = λ·h erlangs is Erlang B:
//!
//!   B(0, A) = 1,   B(n, A) = A·B(n−1, A) / (n + A·B(n−1, A))
//!
//! and the recommended size is the smallest N with B(N, A) ≤ the target (1% by default).

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
