//! `switchboard simulate`: attribution accuracy measured against ground truth. Simulated visitors
//! browse a site through the snippet's endpoint and call the numbers they were shown through
//! signed Twilio webhooks, against the real service on a hand-driven clock; at the end each
//! call's attribution (from the calls API) is compared with the session that really showed the
//! number. `--sweep` repeats one traffic level at several pool sizes.

pub mod chart;
pub mod driver;
pub mod queue;
pub mod score;
mod service;
pub mod sweep;
pub mod traffic;

use std::fmt::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::attribution::Confidence;
use crate::config::Settings;
pub use driver::{Exhaustion, Played, PlayedCall, RunReport, SimConfig, play, run};
pub use service::{Target, base_url, driven, settled_calls};
pub use sweep::TARGET_PERCENT;
use traffic::{CallTiming, ChannelMix, DailyCurve, TrafficModel};

#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Seed of the traffic (the same seed gives the same visitors and calls).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Mean new visitors a day.
    #[arg(long, default_value_t = 1_500.0)]
    pub visitors_per_day: f64,
    /// Hours during which visitors arrive (their calls may come later).
    #[arg(long, default_value_t = 48)]
    pub hours: u32,
    /// The same arrival rate all day instead of quiet nights and busy days.
    #[arg(long)]
    pub flat: bool,
    /// Sources of visits as weights: paid, paid_social, organic, social, email, direct,
    /// referral, print.
    #[arg(
        long,
        default_value = "paid=25,organic=35,social=8,email=5,direct=20,referral=7"
    )]
    pub mix: ChannelMix,
    /// Share of visitors who call.
    #[arg(long, default_value_t = 0.10)]
    pub call_share: f64,
    /// Of first calls, the share made during the visit.
    #[arg(long, default_value_t = 0.5)]
    pub during_share: f64,
    /// Of first calls, the share made minutes after leaving (the rest: hours later).
    #[arg(long, default_value_t = 0.3)]
    pub after_share: f64,
    /// Share of callers who call again.
    #[arg(long, default_value_t = 0.15)]
    pub repeat_share: f64,
    /// Share of callers who withhold their number (the carrier sends an anonymous `From`).
    #[arg(long, default_value_t = 0.05)]
    pub withheld_share: f64,
    /// Share of visitors who come back for another visit.
    #[arg(long, default_value_t = 0.15)]
    pub return_share: f64,
    /// Median page views per visit.
    #[arg(long, default_value_t = 3.0)]
    pub pages_median: f64,
    /// Median seconds on a page.
    #[arg(long, default_value_t = 45.0)]
    pub dwell_median_s: f64,
    /// Numbers in the pool.
    #[arg(long, default_value_t = 45)]
    pub pool_size: usize,
    /// Minutes a number stays leased after the session's last activity.
    #[arg(long, default_value_t = 30)]
    pub lease_minutes: i64,
    /// What the pool does when every number is leased.
    #[arg(long, value_enum, default_value_t = Exhaustion::Share)]
    pub exhaustion: Exhaustion,
    /// The exhaustion chance the pool advisor sizes for.
    #[arg(long, default_value_t = 0.01)]
    pub target: f64,
    /// Pool sizes to compare on the same traffic (e.g. 30,35,40,45,50).
    #[arg(long, value_delimiter = ',')]
    pub sweep: Vec<usize>,
    /// Where the sweep writes its table (`simulate-sweep.md`) and chart (`simulate-sweep.svg`).
    #[arg(long, default_value = ".")]
    pub out_dir: PathBuf,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

impl SimulateArgs {
    pub fn config(&self) -> SimConfig {
        SimConfig {
            traffic: TrafficModel {
                visitors_per_day: self.visitors_per_day,
                hours: self.hours,
                curve: if self.flat {
                    DailyCurve::flat()
                } else {
                    DailyCurve::business_day()
                },
                mix: self.mix.clone(),
                pages_median: self.pages_median,
                dwell_median_s: self.dwell_median_s,
                call_share: self.call_share,
                during_share: self.during_share,
                after_share: self.after_share,
                repeat_share: self.repeat_share,
                withheld_share: self.withheld_share,
                return_share: self.return_share,
                ..TrafficModel::default()
            },
            pool_size: self.pool_size,
            lease_minutes: self.lease_minutes,
            exhaustion: self.exhaustion,
            seed: self.seed,
            advisor_target: self.target,
        }
    }
}

pub async fn run_command(settings: Settings, args: SimulateArgs) -> anyhow::Result<()> {
    let config = args.config();
    anyhow::ensure!(config.pool_size > 0, "--pool-size must be at least 1");
    anyhow::ensure!(
        args.visitors_per_day > 0.0 && args.hours > 0,
        "--visitors-per-day and --hours must be above 0"
    );
    for (flag, share) in [
        ("--call-share", args.call_share),
        ("--during-share", args.during_share),
        ("--after-share", args.after_share),
        ("--repeat-share", args.repeat_share),
        ("--withheld-share", args.withheld_share),
        ("--return-share", args.return_share),
    ] {
        anyhow::ensure!(
            (0.0..=1.0).contains(&share),
            "{flag} must be between 0 and 1"
        );
    }
    anyhow::ensure!(
        args.during_share + args.after_share <= 1.0,
        "--during-share and --after-share add up to more than 1"
    );
    if args.sweep.is_empty() {
        let report = run(&settings, &config).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", summary(&report));
        }
        return Ok(());
    }
    anyhow::ensure!(
        args.sweep.iter().all(|s| *s > 0),
        "--sweep sizes must be at least 1"
    );
    let (reports, recommended) = sweep::sweep(&settings, &config, &args.sweep, |r| {
        if !args.json {
            eprintln!(
                "  {} numbers: {} calls, {} during the visit right of {}, {:.1} s",
                r.pool_size,
                r.score.total.calls,
                r.score.during_visit().correct,
                r.score.during_visit().calls,
                r.wall_seconds
            );
        }
    })
    .await?;
    let table = sweep::table(&reports, recommended);
    let chart = sweep::chart(&reports, recommended);
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    let table_path = args.out_dir.join("simulate-sweep.md");
    let chart_path = args.out_dir.join("simulate-sweep.svg");
    std::fs::write(&table_path, &table)
        .with_context(|| format!("writing {}", table_path.display()))?;
    std::fs::write(&chart_path, &chart)
        .with_context(|| format!("writing {}", chart_path.display()))?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "recommended_size": recommended,
                "runs": reports,
            }))?
        );
    } else {
        println!();
        print!("{table}");
        if let Some(r) = reports.iter().find(|r| Some(r.pool_size) == recommended) {
            println!();
            println!(
                "At the recommended size ({} numbers): {}",
                r.pool_size,
                verdict(r)
            );
        }
        println!(
            "Wrote {} and {}",
            table_path.display(),
            chart_path.display()
        );
    }
    Ok(())
}

/// Whether a run meets the target: at least 99.5% of calls made during the visit attributed to
/// the right session, and no `exact` attribution wrong where the service could know better
/// (the caller's own lease still ran). A saved number dialled after it passed to another
/// visitor is `exact` and wrong for any DNI service; the report counts those apart.
pub fn target_met(report: &RunReport) -> bool {
    let during = report.score.during_visit();
    during
        .accuracy()
        .is_some_and(|a| a * 100.0 >= TARGET_PERCENT)
        && report.score.exact_wrong_while_leased == 0
}

fn verdict(r: &RunReport) -> String {
    let during = r.score.during_visit();
    format!(
        "{} ({} of {} calls during the visit right, {}; {} `exact` wrong while the caller's lease ran)",
        if target_met(r) {
            "target met"
        } else {
            "target MISSED"
        },
        during.correct,
        during.calls,
        pct(during.accuracy()),
        r.score.exact_wrong_while_leased
    )
}

fn pct(x: Option<f64>) -> String {
    x.map_or("-".to_owned(), |a| format!("{:.2}%", a * 100.0))
}

/// The run as a short text report.
pub fn summary(r: &RunReport) -> String {
    let mut out = String::new();
    let s = &r.score;
    let _ = writeln!(out, "Switchboard attribution simulation (seed {})", r.seed);
    let _ = writeln!(
        out,
        "  traffic   {} visitors; {} page views, {} renewals, {} Twilio webhooks",
        r.visitors, r.requests.page_views, r.requests.renewals, r.requests.twilio_webhooks
    );
    let _ = writeln!(
        out,
        "  pool      {} numbers, {}-minute leases, exhaustion {:?} ({} + {} lease store)",
        r.pool_size, r.lease_minutes, r.exhaustion, r.database, r.lease_store
    );
    let _ = writeln!(
        out,
        "  time      {:.1} simulated hours in {:.1} s",
        r.simulated_hours, r.wall_seconds
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "  calls                  {}", s.total.calls);
    let _ = writeln!(
        out,
        "  all calls right        {}  (the headline: every call, whenever it came)",
        pct(s.total.accuracy())
    );
    let _ = writeln!(
        out,
        "  exact-correct          {}  (attributed to the session that showed the number)",
        s.total.correct
    );
    let _ = writeln!(out, "  wrong                  {}", s.total.wrong);
    let _ = writeln!(out, "  unattributed           {}", s.total.unattributed);
    let _ = writeln!(
        out,
        "  right channel          {}  (even when the session is not)",
        s.channel_right
    );
    let _ = writeln!(out);
    // Per confidence level, the share of its calls that are right is its precision: the
    // promise a marketer reads in the label.
    let _ = writeln!(
        out,
        "  {:<16} {:>6} {:>8} {:>6} {:>13} {:>9}",
        "by confidence", "calls", "correct", "wrong", "unattributed", "precision"
    );
    for (name, t) in &s.by_confidence {
        let _ = writeln!(
            out,
            "  {:<16} {:>6} {:>8} {:>6} {:>13} {:>9}",
            name,
            t.calls,
            t.correct,
            t.wrong,
            t.unattributed,
            pct(t.accuracy())
        );
    }
    let _ = writeln!(
        out,
        "  {:<16} {:>6} {:>8} {:>6} {:>13} {:>9}",
        "by call timing", "", "", "", "", "accuracy"
    );
    for timing in CallTiming::ALL {
        let t = s.by_timing.get(timing.name()).copied().unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:<16} {:>6} {:>8} {:>6} {:>13} {:>9}",
            timing.name(),
            t.calls,
            t.correct,
            t.wrong,
            t.unattributed,
            pct(t.accuracy())
        );
    }
    let exact_wrong: Vec<String> = CallTiming::ALL
        .iter()
        .map(|t| (t, s.cell(Confidence::Exact, *t).wrong))
        .filter(|(_, n)| *n > 0)
        .map(|(t, n)| format!("{n} {}", t.name()))
        .collect();
    if !exact_wrong.is_empty() {
        let _ = writeln!(
            out,
            "  `exact` but wrong      {}  ({} while the caller's own lease ran; the rest dialled a \
             number that had passed to another visitor)",
            exact_wrong.join(", "),
            s.exact_wrong_while_leased
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "  exhaustion events      {}  ({:.2}% of {} visits; peak {} leases at once)",
        r.exhaustion_events,
        r.exhaustion_per_visit * 100.0,
        r.visits,
        r.peak_concurrent_leases
    );
    let a = &r.advice;
    let _ = writeln!(
        out,
        "  pool advisor           recommends {} numbers: {:.1} arrivals/h x {:.1} min held = {:.1} erlangs over {} h, \
         busy hour {:.1} erlangs; exhaustion chance at {}: {:.2}%",
        a.recommended_size,
        a.arrivals_per_hour,
        a.mean_hold_minutes,
        a.offered_load_erlangs,
        a.window_hours,
        a.busy_hour_load_erlangs,
        r.pool_size,
        a.exhaustion_probability * 100.0
    );
    if r.changed_after_check > 0 {
        let _ = writeln!(
            out,
            "  changed attributions   {} (differ from their check seconds after the call)",
            r.changed_after_check
        );
    }
    let _ = writeln!(out, "  target                 {}", verdict(r));
    out
}
