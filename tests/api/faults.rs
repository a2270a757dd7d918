//! Faults against real PostgreSQL: the database "goes down" behind a TCP proxy the test cuts
//! (PostgreSQL itself, shared by every test, keeps running), and the process is SIGKILLed. The
//! invariants: a call always gets a routing answer, and an acknowledged call event is recorded
//! exactly once.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use switchboard::storage::{CallRow, PoolSettings, Storage};

use crate::cli::terminate;
use crate::fleet::{
    FORWARD_TO, Instance, PUBLIC, TOKEN, VOICE, create_property, eventually, sigkill,
};
use crate::helpers::{Backend, DbProxy, post_signed_twilio, start_app, test_db};

const TRACKING: &str = "+14155550110";

fn voice_params(call_sid: &str) -> Vec<(String, String)> {
    [
        ("CallSid", call_sid),
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("From", "+14155559999"),
        ("To", TRACKING),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Posts a signed voice webhook; asserts it is answered with TwiML forwarding the call, and
/// returns how long the answer took.
async fn assert_forwarded(client: &reqwest::Client, base: &str, call_sid: &str) -> Duration {
    let started = Instant::now();
    let res = post_signed_twilio(client, base, PUBLIC, TOKEN, VOICE, &voice_params(call_sid)).await;
    let status = res.status();
    let twiml = res.text().await.unwrap();
    let took = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{twiml}");
    assert!(twiml.contains("<Dial"), "{twiml}");
    assert!(
        twiml.contains(&format!(">{FORWARD_TO}</Number>")),
        "{twiml}"
    );
    took
}

/// A property forwarding to `FORWARD_TO` with a pool holding `TRACKING`; returns its id.
async fn tracked_property(client: &reqwest::Client, base: &str, key: &str) -> String {
    let property = create_property(client, base, key).await;
    let id = property["id"].as_str().unwrap().to_owned();
    let res = client
        .post(format!("{base}/v1/properties/{id}/pools"))
        .bearer_auth(key)
        .json(&json!({"name": "Paid", "kind": "session", "numbers": [TRACKING]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    id
}

/// Waits until the database holds calls with exactly these ids, then checks that a while later
/// it still holds each exactly once (no replay counts one twice).
async fn assert_recorded_once(direct: &Storage, property_id: &str, call_sids: &[&str]) {
    let sids = |calls: Vec<CallRow>| -> Vec<String> {
        let mut sids: Vec<String> = calls.into_iter().map(|c| c.call.provider_call_id).collect();
        sids.sort();
        sids
    };
    let mut expected: Vec<String> = call_sids.iter().map(|s| s.to_string()).collect();
    expected.sort();
    eventually(
        Duration::from_secs(30),
        "the calls are recorded",
        async || {
            direct
                .calls_of_property(property_id)
                .await
                .is_ok_and(|calls| calls.len() >= expected.len())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let calls = sids(direct.calls_of_property(property_id).await.unwrap());
    assert_eq!(calls, expected, "each call recorded exactly once");
}

/// Nothing reached the database while it was cut off.
async fn assert_no_calls(direct: &Storage, property_id: &str) {
    let calls = direct.calls_of_property(property_id).await.unwrap();
    assert!(calls.is_empty(), "recorded while cut off: {calls:?}");
}

async fn connect_direct(url: &str) -> Storage {
    Storage::connect(url, &PoolSettings::default())
        .await
        .expect("the test database, not through the proxy")
}

/// Invariant 3 with the database cut off under a running instance: the call is answered from
/// memory at once, waits in the spool, and is recorded once the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_cut_off_a_call_rings_through_and_is_recorded_once_it_is_back() {
    let Some(db) = test_db(Backend::Postgres).await else {
        return;
    };
    let proxy = DbProxy::start(&db.url).await;
    let app = start_app(
        &proxy.url,
        Backend::Postgres,
        &[("public_url", PUBLIC), ("twilio_auth_token", TOKEN)],
        None,
    )
    .await;
    let key = app.new_account_key("Faults").await;
    let property_id = tracked_property(&app.client, &app.address, &key).await;
    eventually(Duration::from_secs(15), "the number routes", async || {
        app.state.routes.route(TRACKING).is_some()
    })
    .await;

    proxy.cut().await;
    let took = assert_forwarded(&app.client, &app.address, "CAcut0001").await;
    // Generous: speed is measured in benches/telephony.rs; this only shows nothing waited on
    // the database (a query would wait out its 5 s acquire timeout).
    assert!(took < Duration::from_secs(2), "answered in {took:?}");
    let direct = connect_direct(&db.url).await;
    assert_no_calls(&direct, &property_id).await;

    proxy.restore().await;
    assert_recorded_once(&direct, &property_id, &["CAcut0001"]).await;
    app.stop().await;
}

/// The binary on `proxy`, with the spool folder `spool`.
async fn serve(dir: &Path, proxy: &DbProxy, spool: &Path, run: u32) -> Instance {
    crate::fleet::serve(dir, &run.to_string(), 0, &proxy.url, spool, &[]).await
}

/// Invariants 2 and 3 across SIGKILL and restarts: an answered call survives the process being
/// killed at once, a restart with the database still down routes from the routing snapshot,
/// and once the database is back every answered call is recorded exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_loses_no_call_and_restarts_routing_with_the_database_down() {
    let Some(db) = test_db(Backend::Postgres).await else {
        return;
    };
    let direct = connect_direct(&db.url).await;
    direct.migrate().await.unwrap();
    let key = direct
        .create_account("Faults", 1_780_000_000_000)
        .await
        .unwrap()
        .api_key
        .expose_secret()
        .to_owned();
    let proxy = DbProxy::start(&db.url).await;
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let client = reqwest::Client::new();

    let first = serve(dir.path(), &proxy, &spool, 1).await;
    let property_id = tracked_property(&client, &first.base, &key).await;
    let snapshot = spool.join("routes.json");
    eventually(
        Duration::from_secs(15),
        "the routing snapshot",
        async || std::fs::read_to_string(&snapshot).is_ok_and(|s| s.contains(TRACKING)),
    )
    .await;

    // The database goes down; a call is answered, and the process is killed at once.
    proxy.cut().await;
    assert_forwarded(&client, &first.base, "CAkill0001").await;
    sigkill(first);

    // Restarted with the database still down: it starts, says the database is down, and
    // routes from the snapshot.
    let second = serve(dir.path(), &proxy, &spool, 2).await;
    let health: Value = client
        .get(format!("{}/health", second.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["components"]["database"]["status"], "error");
    assert_forwarded(&client, &second.base, "CAkill0002").await;
    sigkill(second);
    assert_no_calls(&direct, &property_id).await;

    // The database is back: the next start records both calls, once each.
    proxy.restore().await;
    let mut third = serve(dir.path(), &proxy, &spool, 3).await;
    assert_recorded_once(&direct, &property_id, &["CAkill0001", "CAkill0002"]).await;
    assert!(terminate(&mut third.child).success());
}

/// While the database is cut off, page views are answered and their sessions wait in the
/// ledger (shown in `/metrics` and `/health`); once it is back they are written, within the
/// ledger's longest backoff, and nothing is given up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_cut_off_sessions_wait_in_the_ledger_and_are_written_once_it_is_back() {
    let Some(db) = test_db(Backend::Postgres).await else {
        return;
    };
    let proxy = DbProxy::start(&db.url).await;
    let app = start_app(&proxy.url, Backend::Postgres, &[], None).await;
    let key = app.new_account_key("Ledger").await;
    let property = create_property(&app.client, &app.address, &key).await;
    let public_key = property["public_key"].as_str().unwrap();
    // The property's configuration is cached before the cut.
    app.new_visitor(public_key, "https://www.acme.example/")
        .await;
    app.flush_ledger().await;

    proxy.cut().await;
    let mut sessions = Vec::new();
    for i in 0..20 {
        let body = app
            .new_visitor(public_key, &format!("https://www.acme.example/?p={i}"))
            .await;
        sessions.push(body["session"].as_str().unwrap().to_owned());
    }
    let metric = |text: &str, name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(-1.0)
    };
    eventually(
        Duration::from_secs(10),
        "the ledger holds the sessions",
        async || {
            metric(
                &unauthenticated(&app, "/metrics").await,
                "switchboard_ledger_pending_rows",
            ) >= 20.0
        },
    )
    .await;
    let health: Value = serde_json::from_str(&unauthenticated(&app, "/health").await).unwrap();
    let message = health["components"]["database"]["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("the ledger holds"), "{message}");
    // Long enough for several failed writes: the backoff grows, to 5 s at most.
    tokio::time::sleep(Duration::from_secs(3)).await;

    proxy.restore().await;
    let restored = Instant::now();
    let direct = connect_direct(&db.url).await;
    eventually(
        Duration::from_secs(15),
        "every session is written",
        async || {
            direct
                .sessions_missing(&sessions)
                .await
                .is_ok_and(|m| m.is_empty())
        },
    )
    .await;
    eprintln!(
        "sessions written {:?} after the database came back",
        restored.elapsed()
    );
    let text = unauthenticated(&app, "/metrics").await;
    assert!(text.contains("switchboard_ledger_dropped_rows_total{kind=\"essential\"} 0"));
    assert!(text.contains("switchboard_ledger_dropped_rows_total{kind=\"page_view\"} 0"));
    app.stop().await;
}

/// The body of an operations endpoint (no key).
async fn unauthenticated(app: &crate::helpers::TestApp, path: &str) -> String {
    let res = app.client.get(app.url(path)).send().await.unwrap();
    res.text().await.unwrap()
}
