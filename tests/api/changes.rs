//! Two instances on one database: a change made through one (a number bought or retired,
//! `forward_to`, carrier credentials) routes calls on the other at once or within a second.
//! With Redis the change is announced; without it, a number the table does not know is still
//! looked up in the database before the caller hears "not in service".

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard::changes::Change;

use crate::calls::{CALLER, PUBLIC, TOKEN, dial, twilio_app};
use crate::helpers::{Backend, TestApp, Visit, redis_url, spawn_sibling};

const NOT_IN_SERVICE: &str = "not in service";

/// A second instance of `app`'s service, configured as it is.
async fn second_instance(redis: Option<&str>, app: &TestApp) -> TestApp {
    let mut settings = vec![("public_url", PUBLIC), ("twilio_auth_token", TOKEN)];
    if let Some(r) = redis {
        settings.push(("redis_url", r));
    }
    spawn_sibling(app, &settings).await
}

async fn property_with_pool(app: &TestApp, numbers: &[&str]) -> (String, String) {
    let property = app.create_property(&app.api_key).await;
    let property_id = property["id"].as_str().unwrap().to_owned();
    let pool = app.create_pool(&app.api_key, &property_id, numbers).await;
    (property_id, pool["id"].as_str().unwrap().to_owned())
}

/// Polls `done` until it holds, failing after `within`; returns how long it took.
async fn within(limit: Duration, what: &str, mut done: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if done().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Without any announcement, the other instance finds a new number in the database.
async fn a_number_bought_on_one_instance_rings_through_the_other_at_once(backend: Backend) {
    let Some(a) = twilio_app(backend, None).await else {
        return;
    };
    let b = second_instance(None, &a).await;
    let (_, pool_id) = property_with_pool(&a, &["+14155550310"]).await;
    // B loaded its table before the pool existed, and hears of nothing: its table is behind.
    assert!(b.state.routes.route("+14155550310").is_none());
    let twiml = dial(&b, "CAx1", CALLER, "+14155550310").await;
    assert!(twiml.contains(">+14155550101</Number>"), "{twiml}");

    let res = a
        .post(
            &format!("/v1/pools/{pool_id}/numbers"),
            &a.api_key,
            &json!({"numbers": ["+14155550311"]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let twiml = dial(&b, "CAx2", CALLER, "+14155550311").await;
    assert!(twiml.contains(">+14155550101</Number>"), "{twiml}");

    // A number nobody has is still not in service (and asked about once, then remembered).
    for sid in ["CAx3", "CAx4"] {
        let twiml = dial(&b, sid, CALLER, "+14155550399").await;
        assert!(twiml.contains(NOT_IN_SERVICE), "{twiml}");
    }
}

#[tokio::test]
async fn sqlite_a_number_bought_on_one_instance_rings_through_the_other_at_once() {
    a_number_bought_on_one_instance_rings_through_the_other_at_once(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_a_number_bought_on_one_instance_rings_through_the_other_at_once() {
    a_number_bought_on_one_instance_rings_through_the_other_at_once(Backend::Postgres).await;
}

/// With Redis, every change reaches the other instance's table within a second, and routing
/// follows: `forward_to`, a number retired, a number added, carrier credentials.
#[tokio::test]
async fn changes_made_on_one_instance_reach_the_other_within_a_second() {
    let Some(redis) = redis_url() else {
        return;
    };
    let Some(a) = twilio_app(Backend::Postgres, Some(&redis)).await else {
        return;
    };
    let b = second_instance(Some(&redis), &a).await;
    let property = a.create_property(&a.api_key).await;
    let property_id = property["id"].as_str().unwrap().to_owned();
    let key = property["public_key"].as_str().unwrap();
    // A paid visitor on B before there is a pool: the published number (and B caches that).
    let mut paid = Visit::new(key);
    paid.url = "https://www.acme.example/?gclid=abc";
    let (status, _, body) = b.visit(&paid).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["number"], "+14155550100", "{body}");

    let pool = a
        .create_pool(&a.api_key, &property_id, &["+14155550320", "+14155550321"])
        .await;
    let pool_id = pool["id"].as_str().unwrap().to_owned();
    let took = within(
        Duration::from_secs(1),
        "B's table has the new pool",
        async || b.state.routes.route("+14155550321").is_some(),
    )
    .await;
    eprintln!("new pool in B's table after {took:?}");
    let took = within(
        Duration::from_secs(1),
        "B's visitors see the pool",
        async || {
            let (_, _, body) = b.visit(&paid).await;
            body["number"] != "+14155550100"
        },
    )
    .await;
    eprintln!("new pool shown by B after {took:?}");
    let twiml = dial(&b, "CAy1", CALLER, "+14155550320").await;
    assert!(twiml.contains(">+14155550101</Number>"), "{twiml}");

    // Where calls go.
    let res = a
        .client
        .patch(a.url(&format!("/v1/properties/{property_id}")))
        .bearer_auth(&a.api_key)
        .json(&json!({"forward_to": "+1 415 555 0199"}))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["forward_to"], "+14155550199", "{body}");
    let mut n = 0;
    let took = within(
        Duration::from_secs(1),
        "B dials the new number",
        async || {
            n += 1;
            dial(&b, &format!("CAy2-{n}"), CALLER, "+14155550320")
                .await
                .contains(">+14155550199</Number>")
        },
    )
    .await;
    eprintln!("new forward_to dialled by B after {took:?}");

    // A number retired.
    let res = a
        .delete(
            &format!("/v1/pools/{pool_id}/numbers/%2B14155550321"),
            &a.api_key,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let took = within(Duration::from_secs(1), "B stops routing it", async || {
        n += 1;
        dial(&b, &format!("CAy3-{n}"), CALLER, "+14155550321")
            .await
            .contains(NOT_IN_SERVICE)
    })
    .await;
    eprintln!("retired number out of B's table after {took:?}");
    assert!(
        b.state.routes.route("+14155550320").is_some(),
        "the other stays"
    );

    // The account connects its own Twilio account through A; B verifies with it at once.
    let sid = "AC00000000000000000000000000000042";
    let token = "the-accounts-own-twilio-token";
    let res = a
        .put(
            "/v1/account/telephony",
            &a.api_key,
            &json!({"twilio_account_sid": sid, "twilio_auth_token": token}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let params: Vec<(String, String)> = [
        ("CallSid", "CAy4"),
        ("AccountSid", sid),
        ("From", CALLER),
        ("To", "+14155550320"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let res = crate::helpers::post_signed_twilio(
        &b.client,
        &b.address,
        PUBLIC,
        token,
        "/v1/telephony/twilio/voice",
        &params,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains(">+14155550199</Number>"));
    // B's account settings read the database, whichever instance changed them.
    let settings: Value = b
        .get("/v1/account/telephony", &b.api_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(settings["twilio_account_sid"], sid);
}

/// The attribution backlog is in `/health` and `/metrics`: a call waits for other instances'
/// ledgers (the settle time, with Redis), and is counted until it is attributed.
#[tokio::test]
async fn the_attribution_backlog_is_reported_until_the_call_is_attributed() {
    let Some(redis) = redis_url() else {
        return;
    };
    let Some(app) = twilio_app(Backend::Postgres, Some(&redis)).await else {
        return;
    };
    property_with_pool(&app, &["+14155550330"]).await;
    dial(&app, "CAz1", CALLER, "+14155550330").await;
    // Stored, but within the settle time on the test's clock, which stands still.
    let waiting = within(Duration::from_secs(5), "the call is stored", async || {
        app.state.calls.wake();
        app.state.calls.is_drained() && app.storage.attribution_backlog().await.unwrap().0 == 1
    })
    .await;
    eprintln!("stored after {waiting:?}");
    let health: Value = app.get("/health", &app.api_key).await.json().await.unwrap();
    let attribution = &health["components"]["attribution"];
    assert_eq!(attribution["status"], "ok", "{health}");
    assert_eq!(
        attribution["message"],
        "1 calls waiting for attribution; the oldest for 0 s"
    );
    let metrics = app
        .get("/metrics", &app.api_key)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("switchboard_attribution_backlog_calls 1"),
        "{metrics}"
    );

    crate::calls::attributed(&app, "CAz1").await;
    let metrics = app
        .get("/metrics", &app.api_key)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("switchboard_attribution_backlog_calls 0"),
        "{metrics}"
    );
}

/// The safety net without Redis: an instance that heard nothing reloads a table when its
/// revision moved, and reads one small row, not every route, when nothing did.
async fn the_periodic_reload_reloads_only_what_changed(backend: Backend) {
    let Some(a) = twilio_app(backend, None).await else {
        return;
    };
    let b = second_instance(None, &a).await;
    let (property_id, _) = property_with_pool(&a, &["+14155550330"]).await;
    // Its first check reloads everything (it had read no revision yet); the next, nothing.
    b.state.changes.reload_if_changed().await;
    assert_eq!(b.state.changes.reload_if_changed().await, vec![]);
    let twiml = dial(&b, "CAz1", CALLER, "+14155550330").await;
    assert!(twiml.contains(">+14155550101</Number>"), "{twiml}");

    let res = a
        .client
        .patch(a.url(&format!("/v1/properties/{property_id}")))
        .bearer_auth(&a.api_key)
        .json(&json!({"forward_to": "+1 415 555 0177"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // Nothing told B: its table is behind until the check.
    let twiml = dial(&b, "CAz2", CALLER, "+14155550330").await;
    assert!(twiml.contains(">+14155550101</Number>"), "{twiml}");
    assert_eq!(
        b.state.changes.reload_if_changed().await,
        vec![Change::Routes]
    );
    let twiml = dial(&b, "CAz3", CALLER, "+14155550330").await;
    assert!(twiml.contains(">+14155550177</Number>"), "{twiml}");
    assert_eq!(b.state.changes.reload_if_changed().await, vec![]);
}

#[tokio::test]
async fn sqlite_the_periodic_reload_reloads_only_what_changed() {
    the_periodic_reload_reloads_only_what_changed(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_the_periodic_reload_reloads_only_what_changed() {
    the_periodic_reload_reloads_only_what_changed(Backend::Postgres).await;
}
