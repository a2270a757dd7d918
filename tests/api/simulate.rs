//! `switchboard simulate` in miniature: a short seeded day of visitors and calls against the real
//! service on a simulated clock, scored against the truth. At the pool advisor's recommended
//! size the calls made during the visit must go to the right session, and no `exact`
//! attribution may be wrong while the caller's own lease runs; a pool far too small must show
//! that it is not enough.

use switchboard::config::Settings;
use switchboard::simulate::traffic::{DailyCurve, TrafficModel};
use switchboard::simulate::{Exhaustion, SimConfig, run, summary, target_met};

use crate::helpers::{Backend, redis_url, test_db};

fn day_of_traffic(pool_size: usize) -> SimConfig {
    SimConfig {
        traffic: TrafficModel {
            visitors_per_day: 160.0,
            hours: 24,
            // Many callers, so that a day holds enough calls during the visit to score.
            call_share: 0.5,
            during_share: 0.7,
            after_share: 0.2,
            ..TrafficModel::default()
        },
        pool_size,
        lease_minutes: 30,
        exhaustion: Exhaustion::Share,
        seed: 20_260_302,
        advisor_target: 0.01,
    }
}

#[tokio::test]
async fn at_the_recommended_pool_size_calls_during_the_visit_are_attributed_right() {
    let settings = Settings::from_pairs([("alert_interval_secs", "3600")]).unwrap();
    // A generous pool first, to hear the advisor on this traffic.
    let generous = run(&settings, &day_of_traffic(40)).await.unwrap();
    let recommended = generous.advice.recommended_size as usize;
    assert!((2..40).contains(&recommended), "{}", summary(&generous));
    assert_eq!(generous.exhaustion_events, 0, "{}", summary(&generous));

    let at_advice = run(&settings, &day_of_traffic(recommended)).await.unwrap();
    let during = at_advice.score.during_visit();
    assert!(during.calls >= 40, "{}", summary(&at_advice));
    assert!(
        at_advice.exhaustion_per_visit <= 0.02,
        "the advisor sizes for at most ~1% of visits finding the pool full: {}",
        summary(&at_advice)
    );
    assert!(target_met(&at_advice), "{}", summary(&at_advice));
    assert_eq!(at_advice.changed_after_check, 0, "{}", summary(&at_advice));
    // Every call placed reached the calls API.
    assert_eq!(
        at_advice
            .score
            .by_confidence
            .get("missing")
            .map_or(0, |t| t.calls),
        0
    );

    // A third of the advice: visitors share numbers, and it shows in the confidence and the
    // accuracy of all calls.
    let starved = run(&settings, &day_of_traffic(recommended / 3))
        .await
        .unwrap();
    assert!(starved.exhaustion_events > 0, "{}", summary(&starved));
    assert!(
        starved.score.by_confidence["shared"].calls > 0,
        "{}",
        summary(&starved)
    );
    assert!(
        starved.score.total.correct < at_advice.score.total.correct,
        "{}",
        summary(&starved)
    );
    // Sharing is flagged: a wrong session is never presented as certain while the caller's
    // own lease runs.
    assert_eq!(
        starved.score.exact_wrong_while_leased,
        0,
        "{}",
        summary(&starved)
    );
}

/// The same traffic on PostgreSQL with the Redis lease store (calls wait out the ledger of
/// other instances first, in simulated time).
#[tokio::test]
async fn the_simulation_runs_on_postgres_and_redis_with_the_same_accuracy() {
    let (Some(db), Some(redis)) = (test_db(Backend::Postgres).await, redis_url()) else {
        return;
    };
    let settings = Settings::from_pairs([
        ("database_url", db.url.as_str()),
        ("redis_url", redis.as_str()),
        ("alert_interval_secs", "3600"),
    ])
    .unwrap();
    let mut config = day_of_traffic(30);
    config.traffic.hours = 8;
    config.traffic.curve = DailyCurve::flat();
    let report = run(&settings, &config).await.unwrap();
    assert_eq!((report.database, report.lease_store), ("postgres", "redis"));
    assert!(report.score.total.calls > 10, "{}", summary(&report));
    assert!(target_met(&report), "{}", summary(&report));
}

/// The command as an operator runs it: a short run prints its report as JSON, leaves nothing in
/// the working folder, and impossible shares are refused with a message.
#[test]
fn the_command_prints_json_and_refuses_impossible_shares() {
    let dir = tempfile::tempdir().unwrap();
    let out = crate::cli::switchboard(dir.path(), &[])
        .args([
            "simulate",
            "--visitors-per-day",
            "48",
            "--hours",
            "2",
            "--flat",
        ])
        .args(["--pool-size", "6", "--call-share", "0.5", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["pool_size"], 6);
    assert_eq!(report["database"], "sqlite");
    assert!(report["visitors"].as_u64().unwrap() > 0, "{report}");
    assert!(
        report["score"]["by_confidence"]["exact"].is_object(),
        "{report}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "a temporary folder only"
    );

    let refused = crate::cli::switchboard(dir.path(), &[])
        .args(["simulate", "--during-share", "0.8", "--after-share", "0.5"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("add up to more than 1"), "{stderr}");
}
