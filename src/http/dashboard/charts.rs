//! The dashboard's charts, drawn on the server as SVG (no script, nothing from elsewhere). Each
//! mark carries its figures in `data-` attributes and a `<title>` (the tooltip), so people can
//! read exact numbers and tests can check them.

use chrono::{Datelike, NaiveDate};
use maud::{Markup, html};

use crate::reports::DayRange;
use crate::reports::report::WEEKDAYS;

const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// The colour of the channel at `index` in the channel table (most calls first).
pub fn colour(index: usize) -> &'static str {
    PALETTE[index % PALETTE.len()]
}

/// A step of 1, 2 or 5 times a power of ten that divides `max` into about four gridlines.
fn nice_step(max: i64) -> i64 {
    let raw = (max as f64 / 4.0).max(1.0);
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    (step as i64).max(1)
}

fn days(range: DayRange) -> Vec<NaiveDate> {
    range
        .from
        .iter_days()
        .take_while(|d| *d <= range.to)
        .collect()
}

/// One segment of a stacked bar.
struct Bar<'a> {
    day: String,
    channel: &'a str,
    calls: i64,
    /// Calls below it in its day's stack.
    base: i64,
    slot: usize,
}

/// Calls per day, stacked by channel. `channels` is the channel table's order (its colours).
pub fn channels_over_time(
    range: DayRange,
    channels: &[String],
    cells: &[(String, String, i64)],
) -> Markup {
    const W: f64 = 720.0;
    const H: f64 = 260.0;
    const LEFT: f64 = 40.0;
    const BOTTOM: f64 = 24.0;
    const TOP: f64 = 8.0;
    let days = days(range);
    let order = |ch: &str| {
        channels
            .iter()
            .position(|c| c == ch)
            .unwrap_or(channels.len())
    };
    let mut bars = Vec::new();
    let mut max = 0;
    for (slot, day) in days.iter().enumerate() {
        let day = day.to_string();
        let mut stack: Vec<(&str, i64)> = cells
            .iter()
            .filter(|(d, _, _)| *d == day)
            .map(|(_, ch, n)| (ch.as_str(), *n))
            .collect();
        stack.sort_by_key(|(ch, _)| order(ch));
        let mut base = 0;
        for (channel, calls) in stack {
            bars.push(Bar {
                day: day.clone(),
                channel,
                calls,
                base,
                slot,
            });
            base += calls;
        }
        max = max.max(base);
    }
    let step = nice_step(max);
    let top = ((max + step - 1) / step).max(1) * step;
    let plot_w = W - LEFT - 4.0;
    let plot_h = H - TOP - BOTTOM;
    let slot_w = plot_w / days.len().max(1) as f64;
    // A few days' bars stay bars, not slabs.
    let bar_w = (slot_w * 0.8).clamp(1.0, 48.0);
    let y = |v: i64| TOP + plot_h - plot_h * v as f64 / top as f64;
    let label_every = days.len().div_ceil(7).max(1);
    html! {
        svg.chart viewBox={"0 0 " (W) " " (H)} role="img" aria-label="Calls per day by channel" {
            @for tick in (0..=top).step_by(step as usize) {
                line x1=(LEFT) x2=(W - 4.0) y1=(y(tick)) y2=(y(tick)) stroke="#d0d7de" stroke-width="1" {}
                text x=(LEFT - 6.0) y=(y(tick) + 4.0) text-anchor="end" font-size="11" fill="#57606a" { (tick) }
            }
            @for bar in &bars {
                rect.bar x=(format!("{:.1}", LEFT + slot_w * (bar.slot as f64 + 0.5) - bar_w / 2.0))
                    y=(format!("{:.1}", y(bar.base + bar.calls)))
                    width=(format!("{:.1}", bar_w))
                    height=(format!("{:.1}", y(bar.base) - y(bar.base + bar.calls)))
                    fill=(colour(order(bar.channel)))
                    data-day=(bar.day) data-channel=(bar.channel) data-calls=(bar.calls) {
                    title { (bar.day) " · " (bar.channel) ": " (calls(bar.calls)) }
                }
            }
            @for (i, day) in days.iter().enumerate() {
                @if i % label_every == 0 || i + 1 == days.len() {
                    text x=(format!("{:.1}", LEFT + slot_w * (i as f64 + 0.5))) y=(H - 8.0)
                        text-anchor="middle" font-size="11" fill="#57606a" {
                        (day.format("%m-%d"))
                    }
                }
            }
        }
    }
}

fn calls(n: i64) -> String {
    if n == 1 {
        "1 call".to_owned()
    } else {
        format!("{n} calls")
    }
}

/// Calls by weekday and hour of the day (local), darker for more.
pub fn heat_map(cells: &[(String, String, i64)]) -> Markup {
    const LEFT: f64 = 36.0;
    const TOP: f64 = 16.0;
    const CELL_W: f64 = 28.0;
    const CELL_H: f64 = 22.0;
    let mut grid = [[0i64; 24]; 7];
    for (day, hour, calls) in cells {
        let (Ok(day), Ok(hour)) = (
            NaiveDate::parse_from_str(day, "%Y-%m-%d"),
            hour.parse::<usize>(),
        ) else {
            continue;
        };
        if hour < 24 {
            grid[day.weekday().num_days_from_monday() as usize][hour] += calls;
        }
    }
    let max = grid.iter().flatten().copied().max().unwrap_or(0).max(1);
    let w = LEFT + CELL_W * 24.0;
    let h = TOP + CELL_H * 7.0;
    html! {
        svg.chart.heat viewBox={"0 0 " (w) " " (h)} role="img" aria-label="Calls by weekday and hour" {
            @for hour in (0..24).step_by(3) {
                text x=(LEFT + CELL_W * (hour as f64 + 0.5)) y="11" text-anchor="middle" font-size="10" fill="#57606a" {
                    (format!("{hour:02}"))
                }
            }
            @for (row, name) in WEEKDAYS.iter().enumerate() {
                text x=(LEFT - 6.0) y=(TOP + CELL_H * row as f64 + 15.0) text-anchor="end" font-size="11" fill="#57606a" {
                    (&name[..3])
                }
                @for hour in 0..24 {
                    @let calls = grid[row][hour];
                    @let share = calls as f64 / max as f64;
                    rect.cell x=(LEFT + CELL_W * hour as f64 + 1.0) y=(TOP + CELL_H * row as f64 + 1.0)
                        width=(CELL_W - 2.0) height=(CELL_H - 2.0) rx="3"
                        fill=(if calls == 0 { "#eef1f5" } else { "#0b5cad" })
                        fill-opacity=(if calls == 0 { "1".to_owned() } else { format!("{:.2}", 0.15 + 0.85 * share) })
                        data-weekday=(name) data-hour=(format!("{hour:02}")) data-calls=(calls) {
                        title { (name) " " (format!("{hour:02}:00")) ": " (self::calls(calls)) }
                    }
                    @if calls > 0 {
                        text x=(LEFT + CELL_W * (hour as f64 + 0.5)) y=(TOP + CELL_H * row as f64 + 15.0)
                            text-anchor="middle" font-size="10" fill=(if share > 0.5 { "#ffffff" } else { "#0b2540" }) {
                            (calls)
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gridlines_fall_on_round_numbers() {
        assert_eq!(nice_step(0), 1);
        assert_eq!(nice_step(3), 1);
        assert_eq!(nice_step(9), 5);
        assert_eq!(nice_step(40), 10);
        assert_eq!(nice_step(130), 50);
    }

    #[test]
    fn the_heat_map_counts_calls_on_their_weekday_and_hour() {
        // 2026-11-10 is a Tuesday.
        let svg = heat_map(&[
            ("2026-11-10".into(), "10".into(), 2),
            ("2026-11-17".into(), "10".into(), 1),
        ])
        .into_string();
        assert!(svg.contains(r#"data-weekday="Tuesday" data-hour="10" data-calls="3""#));
        assert!(svg.contains(r#"data-weekday="Monday" data-hour="10" data-calls="0""#));
    }

    #[test]
    fn bars_stack_in_the_channel_tables_order_and_names_are_escaped() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 10).unwrap();
        let svg = channels_over_time(
            DayRange { from: day, to: day },
            &["Paid Search".into(), "<b>".into()],
            &[
                ("2026-11-10".into(), "<b>".into(), 1),
                ("2026-11-10".into(), "Paid Search".into(), 2),
            ],
        )
        .into_string();
        let paid = svg.find(r#"data-channel="Paid Search""#).unwrap();
        let other = svg.find(r#"data-channel="&lt;b&gt;""#).unwrap();
        assert!(paid < other, "the channel with most calls at the bottom");
        assert!(!svg.contains("<b>"));
    }
}
