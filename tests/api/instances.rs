//! Several instances: two processes of the real binary on different ports, sharing one
//! PostgreSQL database and one Redis (a single server, or a three-node Redis Cluster), under
//! concurrent sessions and signed Twilio calls sent to either at random.
//!
//! Checked: no number is leased to two live sessions while a free one exists (invariant 1);
//! every acknowledged call is recorded exactly once (invariant 2), Twilio's retries to the other
//! instance included; every call is attributed `exact` to the session that truly held its
//! number, which is what a single instance answers for the same script.

use std::time::{Duration, Instant};

use crate::fleet::{
    Driver, Instance, Mix, Outcome, Site, prepared_database, serve, wait_until_routed,
};
use crate::helpers::{Backend, redis_cluster_urls, redis_url, test_db};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_redis_share_leases_and_record_every_call_once() {
    let (Some(db), Some(redis)) = (test_db(Backend::Postgres).await, redis_url()) else {
        return;
    };
    two_instances(&db.url, ("REDIS_URL", &redis), "one Redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_a_redis_cluster_share_leases_and_record_every_call_once() {
    let (Some(db), Some(nodes)) = (test_db(Backend::Postgres).await, redis_cluster_urls()) else {
        return;
    };
    two_instances(
        &db.url,
        ("SWITCHBOARD_REDIS_CLUSTER_URLS", &nodes),
        "Redis Cluster",
    )
    .await;
}

async fn two_instances(db_url: &str, redis: (&str, &str), name: &str) {
    let (direct, key) = prepared_database(db_url).await;
    let dir = tempfile::tempdir().unwrap();
    let start = async |n: &str| -> Instance {
        serve(dir.path(), n, 0, db_url, &dir.path().join(n), &[redis]).await
    };
    let a = start("a").await;
    let client = reqwest::Client::new();
    let small = Site::create(&client, &a.base, &key, 1000, 20).await;
    let site = Site::create(&client, &a.base, &key, 2000, 300).await;
    // Started after the sites exist, b routes their numbers from the start.
    let b = start("b").await;
    let targets = vec![a.base.clone(), b.base.clone()];
    let spools = [dir.path().join("a"), dir.path().join("b")];
    wait_until_routed(&spools, site.a_number()).await;

    // A burst on a small pool: 60 new sessions at once, to either instance, for 20 numbers.
    let burst = Driver::new(&small, targets.clone());
    let tasks: Vec<_> = (0..60)
        .map(|_| {
            let burst = burst.clone();
            tokio::spawn(async move { burst.new_session().await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let record = burst.take_record();
    assert_eq!(record.sessions.len(), 60, "{record:?}");
    let (leased, doubled) = record.leased(&small);
    assert!(doubled.is_empty(), "numbers leased twice: {doubled:?}");
    assert_eq!(
        leased, 20,
        "every free number was used before the default was shown"
    );

    // Sustained load on a pool that never runs out: new sessions, returning page views and
    // calls to the numbers shown, at random to either instance.
    let driver = Driver::new(&site, targets);
    let started = Instant::now();
    let mix = Mix {
        new_sessions: 35,
        page_views: 45,
        calls: 20,
        // Below the pool size by more than the workers, which may each start one at once.
        max_sessions: 280,
    };
    driver.run(8, Duration::from_secs(4), mix).await;
    let held_for = started.elapsed();
    let outcome = Outcome::of(
        &format!("two instances, {name}"),
        &driver,
        &direct,
        &site,
        held_for,
    )
    .await;
    outcome.assert_nothing_lost(&site);
    let (record, calls) = (&outcome.record, &outcome.calls);
    assert_eq!(record.refused, 0, "both instances answer everything");
    assert_eq!(record.degraded_views, 0);
    assert_eq!(calls.recorded, record.calls.len());
}
