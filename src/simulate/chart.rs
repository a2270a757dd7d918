//! The sweep's chart: accuracy against pool size as a small SVG drawn by hand (two lines, the
//! target and the advisor's recommended size), like the dashboard's server-drawn charts.

use std::fmt::Write;

/// One pool size's accuracies, in percent.
#[derive(Debug, Clone, Copy)]
pub struct Point {
    pub pool_size: usize,
    pub all_calls: f64,
    pub during_visit: f64,
}

/// A line of the chart: its legend, its colour, and its value at a point.
type Series = (&'static str, &'static str, fn(&Point) -> f64);

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 64.0;
const BOTTOM: f64 = 56.0;

/// The chart as SVG text. `target` is the during-visit target in percent.
pub fn accuracy_svg(
    title: &str,
    points: &[Point],
    recommended: Option<usize>,
    target: f64,
) -> String {
    let mut points = points.to_vec();
    points.sort_by_key(|p| p.pool_size);
    let x_min = points.first().map_or(0, |p| p.pool_size) as f64;
    let x_max = (points.last().map_or(1, |p| p.pool_size) as f64).max(x_min + 1.0);
    let lowest = points
        .iter()
        .flat_map(|p| [p.all_calls, p.during_visit])
        .fold(target, f64::min);
    // The y axis starts at a multiple of 10 below the lowest value.
    let y_min = ((lowest / 10.0).floor() * 10.0).clamp(0.0, 90.0);
    let x = |v: f64| LEFT + (v - x_min) / (x_max - x_min) * (WIDTH - LEFT - RIGHT);
    let y = |v: f64| TOP + (100.0 - v) / (100.0 - y_min) * (HEIGHT - TOP - BOTTOM);

    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         font-family=\"system-ui, sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n\
         <text x=\"{LEFT}\" y=\"24\" font-size=\"15\" font-weight=\"600\">{}</text>\n",
        escape(title)
    );
    // Grid and y labels every 10 points (every 1 point above 90 when the range is that narrow).
    let step = if y_min >= 90.0 { 1.0 } else { 10.0 };
    let mut v = y_min;
    while v <= 100.0 + 1e-9 {
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#e5e7eb\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#374151\">{v:.0}%</text>",
            WIDTH - RIGHT,
            y(v),
            y(v),
            LEFT - 6.0,
            y(v) + 4.0
        );
        v += step;
    }
    for p in &points {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#374151\">{}</text>",
            x(p.pool_size as f64),
            HEIGHT - BOTTOM + 18.0,
            p.pool_size
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#111827\">pool size (numbers)</text>\
         <text transform=\"translate(16 {:.1}) rotate(-90)\" text-anchor=\"middle\" fill=\"#111827\">calls attributed to the right session</text>",
        (LEFT + WIDTH - RIGHT) / 2.0,
        HEIGHT - 14.0,
        (TOP + HEIGHT - BOTTOM) / 2.0
    );
    // The target line.
    let _ = writeln!(
        svg,
        "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#16a34a\" stroke-dasharray=\"2 3\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#16a34a\">target {target}% (during the visit)</text>",
        WIDTH - RIGHT,
        y(target),
        y(target),
        WIDTH - RIGHT - 4.0,
        y(target) - 5.0
    );
    if let Some(r) = recommended {
        let rx = x(r as f64);
        let _ = writeln!(
            svg,
            "<line x1=\"{rx:.1}\" x2=\"{rx:.1}\" y1=\"{TOP}\" y2=\"{:.1}\" stroke=\"#dc2626\" stroke-dasharray=\"6 4\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#dc2626\">advisor: {r}</text>",
            HEIGHT - BOTTOM,
            rx + 4.0,
            TOP + 12.0
        );
    }
    let series: [Series; 2] = [
        ("calls during the visit", "#2563eb", |p| p.during_visit),
        ("all calls", "#9ca3af", |p| p.all_calls),
    ];
    for (i, (name, colour, value)) in series.iter().enumerate() {
        let path: Vec<String> = points
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.pool_size as f64), y(value(p))))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        for p in &points {
            let _ = writeln!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"><title>{} numbers: {:.2}%</title></circle>",
                x(p.pool_size as f64),
                y(value(p)),
                p.pool_size,
                value(p)
            );
        }
        let lx = LEFT + i as f64 * 190.0;
        let _ = writeln!(
            svg,
            "<line x1=\"{lx:.1}\" x2=\"{:.1}\" y1=\"40\" y2=\"40\" stroke=\"{colour}\" stroke-width=\"2\"/>\
             <text x=\"{:.1}\" y=\"44\" fill=\"#111827\">{name}</text>",
            lx + 18.0,
            lx + 24.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(s: &str) -> String {
    crate::telephony::twiml::escape(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_draws_both_series_the_target_and_the_recommended_size() {
        let points = [
            Point {
                pool_size: 10,
                all_calls: 70.0,
                during_visit: 80.0,
            },
            Point {
                pool_size: 30,
                all_calls: 90.0,
                during_visit: 100.0,
            },
        ];
        let svg = accuracy_svg("A & B", &points, Some(20), 99.5);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 4);
        assert!(svg.contains("advisor: 20"));
        assert!(svg.contains("A &amp; B"), "the title is escaped");
        // The recommended size sits halfway between 10 and 30.
        let mid = LEFT + (WIDTH - LEFT - RIGHT) / 2.0;
        assert!(svg.contains(&format!("x1=\"{mid:.1}\"")), "{svg}");
    }
}
