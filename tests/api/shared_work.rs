//! Background work shared between instances (`src/work.rs`): each shard of a job (alert rules
//! by property, session recovery by bucket, rollups) has one holder; the shards even out as
//! instances come; the work across instances is the same however many run; and the shards of
//! an instance that dies, or stops, move to the others.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use switchboard::work::{ALERTS, JOBS, ROLLUPS, SESSION_RECOVERY, SharedWork};

use crate::helpers::{Backend, TestApp, spawn_app_with, spawn_sibling};

/// Leases of 3 s, renewed every second: an instance that dies hands its work over in 3-4 s.
const LEASE: (&str, &str) = ("work_lease_secs", "3");

fn works(apps: &[&TestApp]) -> Vec<std::sync::Arc<SharedWork>> {
    apps.iter().map(|a| a.state.work.clone()).collect()
}

/// Every shard of every job held by exactly one of `works`, none holding more than its fair
/// share; polls until it holds, failing after `limit`. Returns how long it took.
async fn evenly_held(works: &[std::sync::Arc<SharedWork>], limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let even = JOBS.iter().all(|job| {
            let fair = job.shards.div_ceil(works.len() as u32) as usize;
            let held: Vec<BTreeSet<u32>> = works.iter().map(|w| w.held(*job)).collect();
            let all: BTreeSet<u32> = held.iter().flatten().copied().collect();
            let total: usize = held.iter().map(BTreeSet::len).sum();
            all.len() == job.shards as usize
                && total == all.len()
                && held.iter().all(|h| h.len() <= fair)
        });
        if even {
            return started.elapsed();
        }
        let view: Vec<Vec<(&str, usize)>> = works
            .iter()
            .map(|w| JOBS.iter().map(|j| (j.name, w.held(*j).len())).collect())
            .collect();
        assert!(
            started.elapsed() < limit,
            "shards not evenly held within {limit:?}: {view:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn shared_work_is_done_once_and_moves_when_an_instance_goes(backend: Backend) {
    let Some(a) = spawn_app_with(backend, &[LEASE]).await else {
        return;
    };
    // Alone, an instance holds everything.
    for job in JOBS {
        assert_eq!(a.state.work.held(job).len(), job.shards as usize, "{job:?}");
    }
    let properties = 24;
    for _ in 0..properties {
        a.create_property(&a.api_key).await;
    }
    let b = spawn_sibling(&a, &[LEASE]).await;
    let c = spawn_sibling(&a, &[LEASE]).await;
    let took = evenly_held(&works(&[&a, &b, &c]), Duration::from_secs(5)).await;
    eprintln!("three instances share the work evenly after {took:?}");
    for app in [&a, &b, &c] {
        assert!(!app.state.work.held(ALERTS).is_empty());
    }
    let one_rollup_holder = [&a, &b, &c]
        .iter()
        .filter(|app| !app.state.work.held(ROLLUPS).is_empty())
        .count();
    assert_eq!(one_rollup_holder, 1);

    // One pass on each instance evaluates each property once in all: the work does not grow
    // with the number of instances.
    let before: Vec<u64> = [&a, &b, &c]
        .iter()
        .map(|app| app.state.alerts.properties_evaluated())
        .collect();
    for app in [&a, &b, &c] {
        app.state
            .alerts
            .evaluate_shared(&app.state.work)
            .await
            .expect("alert pass");
    }
    let done: Vec<u64> = [&a, &b, &c]
        .iter()
        .zip(&before)
        .map(|(app, before)| app.state.alerts.properties_evaluated() - before)
        .collect();
    assert_eq!(done.iter().sum::<u64>(), properties, "{done:?}");
    assert!(done.iter().all(|&n| n > 0), "{done:?}");

    // C dies (it stops renewing, tells no one): A and B take its shards once its leases expire.
    let dead: usize = JOBS.iter().map(|j| c.state.work.held(*j).len()).sum();
    assert!(dead > 0);
    c.state.work.halt();
    let took = evenly_held(&works(&[&a, &b]), Duration::from_secs(8)).await;
    eprintln!("a dead instance's shards moved after {took:?}");
    assert!(
        took >= Duration::from_secs(1),
        "{took:?}: before its leases expired?"
    );

    // B stops gracefully: it hands its shards over at once, not a lease's life later.
    b.stop().await;
    let took = evenly_held(&works(&[&a]), Duration::from_secs(3)).await;
    eprintln!("a stopped instance's shards moved after {took:?}");
    assert_eq!(a.state.work.held(SESSION_RECOVERY).len(), 16);
}

#[tokio::test]
async fn sqlite_shared_work_is_done_once_and_moves_when_an_instance_goes() {
    shared_work_is_done_once_and_moves_when_an_instance_goes(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_shared_work_is_done_once_and_moves_when_an_instance_goes() {
    shared_work_is_done_once_and_moves_when_an_instance_goes(Backend::Postgres).await;
}
