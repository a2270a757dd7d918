//! Faults under load: two processes of the real binary on one PostgreSQL database and one Redis
//! take concurrent sessions and signed calls while one instance is SIGKILLed and restarted,
//! while Redis stops and comes back, and while PostgreSQL is cut off and comes back. What was
//! acknowledged (a 2xx answer) is then checked: no session lease or call lost or doubled, every
//! call attributed to the session that held its number. Each run prints its figures (recorded
//! in BENCHMARKS.md).
//!
//! Redis is stopped only on a server of the test's own (loopback port 6391 or 6392), and
//! PostgreSQL only through a `DbProxy`: the shared services keep running.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::free_port;
use crate::fleet::{
    Driver, Instance, Mix, Outcome, Site, eventually, prepared_database, serve, sessions_recovered,
    sigkill, wait_until_routed,
};
use crate::helpers::{Backend, DbProxy, redis_url, test_db};
use switchboard::storage::Storage;

const WORKERS: usize = 8;
/// Calls are a tenth of the requests (a realistic mix has 1%): enough to cross every fault,
/// few enough that the backlog a fault leaves is attributed within the test's wait.
const MIX: Mix = Mix {
    new_sessions: 35,
    page_views: 55,
    calls: 10,
    max_sessions: 380,
};

/// Two instances ("a" on `port_a`, "b") on `db_url`, a site of 400 numbers that both route,
/// and a driver aimed at both.
async fn fleet(
    dir: &Path,
    db_url: &str,
    key: &str,
    port_a: u16,
    env: &[(&str, &str)],
) -> (Instance, Instance, Site, Arc<Driver>) {
    let a = serve(dir, "a-1", port_a, db_url, &dir.join("a"), env).await;
    let site = Site::create(&reqwest::Client::new(), &a.base, key, 1000, 400).await;
    // Started after the site exists, b routes its numbers from the start.
    let b = serve(dir, "b", 0, db_url, &dir.join("b"), env).await;
    wait_until_routed(&[dir.join("a"), dir.join("b")], site.a_number()).await;
    let driver = Driver::new(&site, vec![a.base.clone(), b.base.clone()]);
    (a, b, site, driver)
}

/// Runs the load for `total`: `fault` two seconds in, `repair` (which may take a while: it
/// counts) `pause` later. Then checks what was acknowledged, naming the run after `what`, and
/// returns that with what `repair` returned (an instance restarted, a server started again).
async fn under_load<T>(
    what: &str,
    (driver, direct, site): (&Arc<Driver>, &Storage, &Site),
    (total, pause): (Duration, Duration),
    fault: impl AsyncFnOnce(),
    repair: impl AsyncFnOnce() -> T,
) -> (Outcome, T) {
    let started = Instant::now();
    let running = {
        let driver = driver.clone();
        tokio::spawn(async move { driver.run(WORKERS, total, MIX).await })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    fault().await;
    let fault_at = started.elapsed();
    tokio::time::sleep(pause).await;
    let repaired = repair().await;
    let back_at = started.elapsed();
    running.await.unwrap();
    let name = format!("{what} at {fault_at:.1?}, back at {back_at:.1?}");
    let outcome = Outcome::of(&name, driver, direct, site, started.elapsed()).await;
    (outcome, repaired)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_instance_under_load_loses_and_doubles_nothing_acknowledged() {
    let (Some(db), Some(redis)) = (test_db(Backend::Postgres).await, redis_url()) else {
        return;
    };
    let (direct, key) = prepared_database(&db.url).await;
    let dir = tempfile::tempdir().unwrap();
    let env = [("REDIS_URL", redis.as_str())];
    let port_a = free_port();
    let (a, _b, site, driver) = fleet(dir.path(), &db.url, &key, port_a, &env).await;
    let spool_a = dir.path().join("a");
    let (outcome, _a) = under_load(
        "SIGKILL",
        (&driver, &direct, &site),
        (Duration::from_secs(7), Duration::from_millis(1500)),
        async || sigkill(a),
        // Restarted on the same port and spool: the driver's requests to it are answered again.
        async || serve(dir.path(), "a-2", port_a, &db.url, &spool_a, &env).await,
    )
    .await;
    assert!(
        outcome.record.refused > 0,
        "the load reached the killed instance"
    );
    println!(
        "sessions the killed instance never wrote, recovered from Redis: {}",
        sessions_recovered(dir.path())
    );
    outcome.assert_nothing_lost(&site);
}

/// A throwaway redis-server of the test's own on `port` (nothing kept on disk), stopped when
/// dropped.
struct OwnRedis(Child);

impl OwnRedis {
    async fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--dir", "/tmp"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let redis = Self(child);
        eventually(
            Duration::from_secs(10),
            "redis-server answers",
            async || {
                Command::new("redis-cli")
                    .args(["-p", &port.to_string(), "ping"])
                    .output()
                    .is_ok_and(|o| o.stdout.starts_with(b"PONG"))
            },
        )
        .await;
        redis
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_redis_stopped_under_load_pages_show_the_default_number_and_calls_route() {
    let (Some(db), Some(_)) = (test_db(Backend::Postgres).await, redis_url()) else {
        return;
    };
    const PORT: u16 = 6391;
    let redis = OwnRedis::start(PORT).await;
    let (direct, key) = prepared_database(&db.url).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("redis://127.0.0.1:{PORT}");
    let env = [("REDIS_URL", url.as_str())];
    let (_a, _b, site, driver) = fleet(dir.path(), &db.url, &key, 0, &env).await;
    let (outcome, _redis) = under_load(
        "Redis stopped",
        (&driver, &direct, &site),
        (Duration::from_secs(8), Duration::from_secs(3)),
        // SIGKILL: Redis is gone, with every lease it held.
        async || drop(redis),
        async || OwnRedis::start(PORT).await,
    )
    .await;
    // Every page view was answered, and every call routed. The snippet gives up after 2 s; on
    // a machine busy with other work every request may take that long, so the bound is also
    // relative: Redis being away may cost a page view its timeouts (1 s) over the slowest call
    // webhook of the same run, which never waits on Redis.
    let record = &outcome.record;
    assert_eq!(record.refused, 0, "{record:?}");
    let bound = Duration::from_secs(2).max(record.slowest_call + Duration::from_secs(1));
    assert!(record.slowest_view < bound, "{record:?}");
    assert_eq!(record.calls_not_routed, 0);
    assert!(record.degraded_views > 0, "the load saw the outage");
    outcome.assert_nothing_lost(&site);
    // Leases resume: a new visitor is shown a pool number again.
    eventually(Duration::from_secs(5), "leases resume", async || {
        driver.new_session().await;
        driver.with_record(|r| r.sessions.values().any(|n| site.numbers.contains(n)))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_postgres_cut_off_under_load_calls_route_and_are_replayed_once() {
    let (Some(db), Some(redis)) = (test_db(Backend::Postgres).await, redis_url()) else {
        return;
    };
    let (direct, key) = prepared_database(&db.url).await;
    let proxy = DbProxy::start(&db.url).await;
    let dir = tempfile::tempdir().unwrap();
    let env = [("REDIS_URL", redis.as_str())];
    let (_a, _b, site, driver) = fleet(dir.path(), &proxy.url, &key, 0, &env).await;
    let (outcome, ()) = under_load(
        "PostgreSQL cut off",
        (&driver, &direct, &site),
        (Duration::from_secs(7), Duration::from_secs(3)),
        async || proxy.cut().await,
        async || proxy.restore().await,
    )
    .await;
    let record = &outcome.record;
    assert_eq!(record.refused, 0, "{record:?}");
    assert_eq!(record.calls_not_routed, 0);
    assert_eq!(outcome.calls.unacknowledged_recorded, 0);
    outcome.assert_nothing_lost(&site);
}
