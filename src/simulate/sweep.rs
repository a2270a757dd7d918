//! The sweep: one traffic level (one seed) at several pool sizes, and the advisor's recommended
//! size added when the list lacks it, as a Markdown table and an SVG chart.

use std::fmt::Write;

use super::chart::{Point, accuracy_svg};
use super::driver::{RunReport, SimConfig, run};
use crate::attribution::Confidence;
use crate::config::Settings;

/// The during-visit target, in percent: at the recommended size, at least this share of calls
/// made during the visit go to the right session.
pub const TARGET_PERCENT: f64 = 99.5;

/// Runs every size (and the recommended one); reports in pool-size order.
pub async fn sweep(
    settings: &Settings,
    base: &SimConfig,
    sizes: &[usize],
    progress: impl Fn(&RunReport),
) -> anyhow::Result<(Vec<RunReport>, Option<usize>)> {
    let mut sizes: Vec<usize> = sizes.to_vec();
    sizes.sort_unstable();
    sizes.dedup();
    let at_size = |size: usize| {
        let config = SimConfig {
            pool_size: size,
            ..base.clone()
        };
        async move { run(settings, &config).await }
    };
    let mut reports = Vec::new();
    // The largest pool first: its advice is the least disturbed by exhaustion.
    for &size in sizes.iter().rev() {
        let report = at_size(size).await?;
        progress(&report);
        reports.push(report);
    }
    let recommended = reports
        .first()
        .map(|r| r.advice.recommended_size as usize)
        .filter(|r| *r > 0);
    if let Some(r) = recommended
        && !sizes.contains(&r)
    {
        let report = at_size(r).await?;
        progress(&report);
        reports.push(report);
    }
    reports.sort_by_key(|r| r.pool_size);
    Ok((reports, recommended))
}

fn percent(x: Option<f64>) -> String {
    x.map_or("-".to_owned(), |a| format!("{:.2}%", a * 100.0))
}

/// The sweep as a Markdown table.
pub fn table(reports: &[RunReport], recommended: Option<usize>) -> String {
    let mut out = String::from(
        "| pool size | exhaustion events (per visit) | calls | right session | wrong | unattributed | accuracy | during the visit | accuracy during the visit | `exact` wrong (of them while the caller's lease ran) | `shared` calls |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in reports {
        let s = &r.score;
        let during = s.during_visit();
        let mark = if Some(r.pool_size) == recommended {
            " (recommended)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "| {}{mark} | {} ({:.1}%) | {} | {} | {} | {} | {} | {} | {} | {} ({}) | {} |",
            r.pool_size,
            r.exhaustion_events,
            r.exhaustion_per_visit * 100.0,
            s.total.calls,
            s.total.correct,
            s.total.wrong,
            s.total.unattributed,
            percent(s.total.accuracy()),
            during.calls,
            percent(during.accuracy()),
            s.tally(Confidence::Exact).wrong,
            s.exact_wrong_while_leased,
            s.tally(Confidence::Shared).calls,
        );
    }
    out
}

/// The sweep as an SVG chart.
pub fn chart(reports: &[RunReport], recommended: Option<usize>) -> String {
    let points: Vec<Point> = reports
        .iter()
        .map(|r| Point {
            pool_size: r.pool_size,
            all_calls: r.score.total.accuracy().unwrap_or(0.0) * 100.0,
            during_visit: r.score.during_visit().accuracy().unwrap_or(0.0) * 100.0,
        })
        .collect();
    let title = reports.first().map_or_else(String::new, |r| {
        format!(
            "Attribution accuracy by pool size ({} visitors over {:.0} h, seed {})",
            r.visitors, r.advice.window_hours, r.seed
        )
    });
    accuracy_svg(&title, &points, recommended, TARGET_PERCENT)
}
