//! Number assignment through `POST /v1/dni/session`, as the snippet calls it.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, Visit, numbers};
use crate::on_every_stack;

on_every_stack!(
    five_sessions_get_five_numbers_and_the_sixth_shares,
    overflow_and_default_policies_apply_when_the_pool_is_exhausted,
    a_returning_session_keeps_its_number_and_counts_page_views,
    an_expired_lease_frees_its_number_for_the_longest_idle_pick,
    the_visit_is_classified_and_routed_to_the_most_specific_pool,
    source_pools_show_one_static_number_without_a_lease,
    sessions_cannot_be_forged_or_carried_to_another_property,
    a_renewal_keeps_the_lease_without_counting_a_page_view,
    the_pool_advisor_sizes_for_the_busy_hour_not_the_days_mean,
);

/// Six visitors in one hour and nobody for the rest of the day: the day's mean load is an
/// eighth of an erlang, but during that hour three numbers are leased on average, and that is
/// what the pool must hold (`switchboard simulate` found pools sized for the mean exhausted
/// every afternoon).
async fn the_pool_advisor_sizes_for_the_busy_hour_not_the_days_mean(app: TestApp) {
    let (pid, key) = property(&app).await;
    let pool = session_pool(&app, &pid, 10, json!({})).await;
    for _ in 0..6 {
        let a = app.new_visitor(&key, "https://www.acme.example/").await;
        assert_eq!(a["expires_in"], 1800);
    }
    app.advance_minutes(23 * 60);
    let health: Value = app
        .get(
            &format!(
                "/v1/pools/{}/health?window_hours=24",
                pool["id"].as_str().unwrap()
            ),
            &app.api_key,
        )
        .await
        .json()
        .await
        .unwrap();
    // Six 30-minute leases in one hour: 3 erlangs in that hour.
    assert_eq!(health["busy_hour_load_erlangs"], 3.0, "{health}");
    let mean = health["offered_load_erlangs"].as_f64().unwrap();
    assert!((mean - 0.125).abs() < 1e-9, "{health}");
    // Erlang B: 7 numbers at 3 erlangs block 2.2% of arrivals, 8 block 0.8%.
    assert_eq!(health["recommended_size"], 8, "{health}");
    let blocking = health["exhaustion_probability"].as_f64().unwrap();
    assert!(
        (blocking - 0.0008).abs() < 0.0001,
        "Erlang B of 10 numbers at 3 erlangs: {health}"
    );
}

async fn a_renewal_keeps_the_lease_without_counting_a_page_view(app: TestApp) {
    let (pid, key) = property(&app).await;
    session_pool(&app, &pid, 2, json!({})).await;
    let first = app.new_visitor(&key, "https://www.acme.example/").await;
    let sid = first["session"].as_str().unwrap();
    // The page stays open: the snippet renews at half the lease, twice.
    for _ in 0..2 {
        app.advance_minutes(15);
        let (status, _, renewed) = app
            .visit(&Visit {
                session: Some(sid),
                renew: true,
                ..Visit::new(&key)
            })
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(renewed["number"], first["number"]);
        assert_eq!(renewed["expires_in"], 1800);
    }
    // 45 minutes after the only page view the lease still runs: nobody else gets the number.
    let other = app.new_visitor(&key, "https://www.acme.example/").await;
    assert_ne!(other["number"], first["number"]);
    app.flush_ledger().await;
    let (row, lease) = app
        .storage
        .session_with_last_lease(sid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.page_views, 1, "renewals are not page views");
    assert_eq!(app.storage.page_views(sid).await.unwrap().len(), 1);
    assert_eq!(lease.unwrap().ends_at - row.first_seen_at, 60 * 60_000);
}

async fn property(app: &TestApp) -> (String, String) {
    let p = app.create_property(&app.api_key).await;
    (
        p["id"].as_str().unwrap().to_owned(),
        p["public_key"].as_str().unwrap().to_owned(),
    )
}

async fn session_pool(app: &TestApp, property_id: &str, count: u32, extra: Value) -> Value {
    let mut body = json!({"name": "Everyone", "kind": "session", "lease_minutes": 30,
                          "numbers": numbers(200, count)});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    app.pool_with(property_id, body).await
}

async fn five_sessions_get_five_numbers_and_the_sixth_shares(app: TestApp) {
    let (pid, key) = property(&app).await;
    let pool = session_pool(&app, &pid, 5, json!({})).await;
    let mut seen = HashSet::new();
    let mut first_session = None;
    for i in 0..5 {
        let a = app.new_visitor(&key, "https://www.acme.example/").await;
        assert_eq!(a["pool"], pool["id"]);
        assert_eq!(a["expires_in"], 1800);
        assert_eq!(
            a["replace"],
            json!(["+14155550100"]),
            "the page's own number"
        );
        assert!(seen.insert(a["number"].as_str().unwrap().to_owned()), "{a}");
        if i == 0 {
            first_session = Some(a["session"].as_str().unwrap().to_owned());
        }
        app.advance_minutes(1);
    }
    assert_eq!(seen.len(), 5);
    // The sixth shares the number idle longest: the first visitor's.
    let sixth = app.new_visitor(&key, "https://www.acme.example/").await;
    let first_number = app
        .returning_visitor(&key, first_session.as_deref().unwrap())
        .await["number"]
        .clone();
    assert_eq!(sixth["number"], first_number);

    let health: Value = app
        .get(
            &format!("/v1/pools/{}/health", pool["id"].as_str().unwrap()),
            &app.api_key,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(health["numbers"], 5);
    assert_eq!(health["leased_now"], 5);
    assert_eq!(health["utilisation"], 1.0);
    assert_eq!(health["peak_concurrent_leases"], 5);
    assert_eq!(health["exhaustion_events"], 1);
    assert!(
        health["recommended_size"].as_u64().unwrap() >= 1,
        "{health}"
    );
}

async fn overflow_and_default_policies_apply_when_the_pool_is_exhausted(app: TestApp) {
    let (pid, key) = property(&app).await;
    session_pool(
        &app,
        &pid,
        1,
        json!({"exhaustion": "overflow", "overflow_number": "+14155550299"}),
    )
    .await;
    let first = app.new_visitor(&key, "https://www.acme.example/").await;
    assert_eq!(first["number"], "+14155550200");
    let second = app.new_visitor(&key, "https://www.acme.example/").await;
    assert_eq!(second["number"], "+14155550299", "the overflow number");
    assert_eq!(second["expires_in"], 0);

    // A second property whose pool falls back to the default number.
    let other = app.create_property(&app.api_key).await;
    let okey = other["public_key"].as_str().unwrap();
    app.pool_with(
        other["id"].as_str().unwrap(),
        json!({"name": "One", "kind": "session", "exhaustion": "default", "numbers": ["+14155550300"]}),
    )
    .await;
    app.new_visitor(okey, "https://www.acme.example/").await;
    let fallback = app.new_visitor(okey, "https://www.acme.example/").await;
    assert_eq!(
        fallback["number"], "+14155550100",
        "the property's default number"
    );
    // When the first visitor's lease ends, the waiting visitor gets the number on its next view.
    app.advance_minutes(31);
    let later = app
        .returning_visitor(okey, fallback["session"].as_str().unwrap())
        .await;
    assert_eq!(later["number"], "+14155550300");
}

async fn a_returning_session_keeps_its_number_and_counts_page_views(app: TestApp) {
    let (pid, key) = property(&app).await;
    session_pool(&app, &pid, 3, json!({})).await;
    let first = app
        .new_visitor(
            &key,
            "https://www.acme.example/?utm_source=google&utm_medium=cpc",
        )
        .await;
    let sid = first["session"].as_str().unwrap();
    app.advance_minutes(10);
    let other = app.new_visitor(&key, "https://www.acme.example/").await;
    assert_ne!(other["number"], first["number"]);
    app.advance_minutes(19);
    let again = app.returning_visitor(&key, sid).await;
    assert_eq!(again["number"], first["number"]);
    assert_eq!(again["session"], sid);
    assert_eq!(
        again["channel"], "Paid Search",
        "the first classification sticks"
    );
    assert_eq!(again["expires_in"], 1800, "renewed from the last activity");

    // The ledger has the session, both page views, and one lease running to the last view + 30m.
    app.flush_ledger().await;
    let (row, lease) = app
        .storage
        .session_with_last_lease(sid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.page_views, 2);
    assert_eq!(row.channel, "Paid Search");
    assert_eq!(row.source, "google");
    assert_eq!(
        row.landing_url,
        "https://www.acme.example/?utm_source=google&utm_medium=cpc"
    );
    let lease = lease.unwrap();
    assert_eq!(lease.number, first["number"].as_str().unwrap());
    assert_eq!(
        lease.ends_at - lease.started_at,
        59 * 60_000,
        "one lease, renewed at +29m"
    );
    let views = app.storage.page_views(sid).await.unwrap();
    let urls: Vec<&str> = views.iter().map(|v| v.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "https://www.acme.example/?utm_source=google&utm_medium=cpc",
            "https://www.acme.example/pricing"
        ]
    );
}

async fn an_expired_lease_frees_its_number_for_the_longest_idle_pick(app: TestApp) {
    let (pid, key) = property(&app).await;
    session_pool(&app, &pid, 2, json!({"exhaustion": "default"})).await;
    let a = app.new_visitor(&key, "https://www.acme.example/").await;
    app.advance_minutes(5);
    let b = app.new_visitor(&key, "https://www.acme.example/").await;
    assert_ne!(a["number"], b["number"]);
    // 31 minutes after a's view: a's lease has ended, b's has not.
    app.advance_minutes(26);
    let c = app.new_visitor(&key, "https://www.acme.example/").await;
    assert_eq!(c["number"], a["number"], "a's number is free again");
    // Much later every lease has ended; b's number was released first, so it is idle longest.
    app.advance_minutes(120);
    let d = app.new_visitor(&key, "https://www.acme.example/").await;
    assert_eq!(d["number"], b["number"]);
}

async fn the_visit_is_classified_and_routed_to_the_most_specific_pool(app: TestApp) {
    let (pid, key) = property(&app).await;
    let default = app
        .pool_with(
            &pid,
            json!({"name": "Default", "kind": "session", "numbers": numbers(400, 2)}),
        )
        .await;
    let paid = app
        .pool_with(
            &pid,
            json!({"name": "Paid", "kind": "session", "match": {"channel": "Paid Search"},
                                "numbers": numbers(410, 2)}),
        )
        .await;
    let brand = app
        .pool_with(
            &pid,
            json!({"name": "Brand", "kind": "session",
                                "match": {"channel": "paid_search", "campaign": "Brand"},
                                "numbers": numbers(420, 2)}),
        )
        .await;
    let a = app
        .new_visitor(&key, "https://www.acme.example/?gclid=abc123")
        .await;
    assert_eq!(
        (
            a["channel"].as_str(),
            a["source"].as_str(),
            a["medium"].as_str()
        ),
        (Some("Paid Search"), Some("google"), Some("cpc"))
    );
    assert_eq!(a["pool"], paid["id"]);
    let b = app
        .new_visitor(
            &key,
            "https://www.acme.example/?utm_source=google&utm_medium=cpc&utm_campaign=brand",
        )
        .await;
    assert_eq!(
        b["pool"], brand["id"],
        "channel + campaign beats channel alone"
    );
    assert_eq!(b["campaign"], "brand");
    let (status, _, c) = app
        .visit(&Visit {
            referrer: Some("https://www.google.co.uk/"),
            ..Visit::new(&key)
        })
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(c["channel"], "Organic Search");
    assert_eq!(c["pool"], default["id"]);
    let d = app.new_visitor(&key, "https://www.acme.example/").await;
    assert_eq!(
        (d["channel"].as_str(), d["source"].as_str()),
        (Some("Direct"), Some("(direct)"))
    );
}

async fn source_pools_show_one_static_number_without_a_lease(app: TestApp) {
    let (pid, key) = property(&app).await;
    let print = app
        .pool_with(
            &pid,
            json!({"name": "Newspaper", "kind": "source", "match": {"source": "newspaper"},
                                "numbers": ["+14155550500"]}),
        )
        .await;
    let url = "https://www.acme.example/?utm_source=newspaper&utm_medium=print";
    let a = app.new_visitor(&key, url).await;
    let b = app.new_visitor(&key, url).await;
    assert_eq!(a["number"], "+14155550500");
    assert_eq!(
        b["number"], "+14155550500",
        "everyone from the source sees one number"
    );
    assert_eq!(a["pool"], print["id"]);
    assert_eq!(a["expires_in"], 0);
    let again = app
        .returning_visitor(&key, a["session"].as_str().unwrap())
        .await;
    assert_eq!(again["number"], "+14155550500");
    // The returning view keeps the session's assignment (it used to be written over as `none`).
    app.flush_ledger().await;
    let (row, _) = app
        .storage
        .session_with_last_lease(a["session"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.assignment.as_str(), row.page_views), ("source", 2));
    // A visit the pool does not match, on a property with no default pool: the default number.
    let other = app.new_visitor(&key, "https://www.acme.example/").await;
    assert_eq!(other["number"], "+14155550100");
    assert_eq!(other["pool"], Value::Null);
}

async fn sessions_cannot_be_forged_or_carried_to_another_property(app: TestApp) {
    let (pid, key) = property(&app).await;
    session_pool(&app, &pid, 5, json!({})).await;
    let a = app.new_visitor(&key, "https://www.acme.example/").await;
    let sid = a["session"].as_str().unwrap();
    // A made-up id with a real bucket, or garbage: a new session with its own number.
    let bucket = sid.split('.').next().unwrap();
    for forged in [
        format!("{bucket}.AAAAAAAAAAAAAAAAAAAAAA"),
        "garbage".to_owned(),
        String::new(),
    ] {
        let b = app
            .visit(&Visit {
                session: Some(&forged),
                ..Visit::new(&key)
            })
            .await
            .2;
        assert_ne!(b["session"].as_str(), Some(forged.as_str()));
        assert_ne!(
            b["number"], a["number"],
            "a forged id never takes another's number"
        );
    }
    // Property B's key with property A's session: a new session of B.
    let other = app.create_property(&app.api_key).await;
    let okey = other["public_key"].as_str().unwrap();
    app.pool_with(
        other["id"].as_str().unwrap(),
        json!({"name": "B", "kind": "session", "numbers": ["+14155550600"]}),
    )
    .await;
    let b = app
        .visit(&Visit {
            session: Some(sid),
            ..Visit::new(okey)
        })
        .await
        .2;
    assert_ne!(b["session"].as_str(), Some(sid));
    assert_eq!(b["number"], "+14155550600");
}
