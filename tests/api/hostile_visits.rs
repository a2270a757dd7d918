//! The page-view endpoint is open to anyone: what a hostile client posts there cannot grow the
//! service's memory, lease a property's numbers for a page that is not the property's, or get
//! round the per-address limit by walking an IPv6 network. Nor can many addresses drain a pool
//! (a budget of new leases per pool per minute), nor renewals alone hold a number forever.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, Visit, numbers, redis_url, spawn_app_with, spawn_sibling, test_db,
};

const DEFAULT_NUMBER: &str = "+14155550100";

/// A property with a session pool of `count` numbers: (pool id, public key).
async fn property_with_pool(app: &TestApp, count: u32) -> (String, String) {
    let p = app.create_property(&app.api_key).await;
    let pid = p["id"].as_str().unwrap().to_owned();
    let pool = app
        .pool_with(
            &pid,
            json!({"name": "All", "kind": "session", "numbers": numbers(900, count)}),
        )
        .await;
    (
        pool["id"].as_str().unwrap().to_owned(),
        p["public_key"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn junk_keys_are_refused_before_any_lookup_and_cache_nothing() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await.unwrap();
    let (_, key) = property_with_pool(&app, 2).await;
    app.new_visitor(&key, "https://www.acme.example/").await;
    let cached = app.state.dni.cached_keys();
    let misses = app.state.dni.keys_looked_up();
    let junk = "x".repeat(60_000);
    for i in 0..300 {
        let (status, _, body) = app.visit(&Visit::new(&format!("{junk}{i}"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["error"]["code"], "unknown_key");
    }
    assert_eq!(app.state.dni.cached_keys(), cached, "junk keys were cached");
    assert_eq!(
        app.state.dni.keys_looked_up(),
        misses,
        "junk keys were looked up"
    );
    // A key of the right shape that nobody has is looked up once, and remembered (small).
    for _ in 0..3 {
        let (status, _, _) = app.visit(&Visit::new("pk_AAAAAAAAAAAAAAAAAAAAAA")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    assert_eq!(app.state.dni.keys_looked_up(), misses + 1);
}

#[tokio::test]
async fn a_landing_page_off_the_propertys_domains_leases_nothing() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await.unwrap();
    let (pool_id, key) = property_with_pool(&app, 3).await;
    // Not a browser (no Origin): only the landing URL says where the page is.
    for url in [
        "https://attacker.example/?gclid=fake",
        "https://acme.example.attacker.example/?gclid=fake",
        "http://127.0.0.1/?gclid=fake",
    ] {
        let (status, _, body) = app
            .visit(&Visit {
                url,
                origin: None,
                ..Visit::new(&key)
            })
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["number"], DEFAULT_NUMBER, "{url}: {body}");
        assert!(body["session"].is_null(), "{url}: {body}");
    }
    let now = app.clock_now();
    assert_eq!(app.state.dni.leased_now(&pool_id, now).await.unwrap(), 0);
    // The property's own pages (and subdomains) still lease.
    let body = app
        .new_visitor(&key, "https://www.acme.example/?gclid=real")
        .await;
    assert_ne!(body["number"], DEFAULT_NUMBER, "{body}");
}

#[tokio::test]
async fn the_new_session_limit_counts_an_ipv6_network_as_one_address() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[
            ("new_sessions_per_ip_per_minute", "3"),
            ("trusted_proxies", "127.0.0.1/32"),
        ],
    )
    .await
    .unwrap();
    let (_, key) = property_with_pool(&app, 10).await;
    let mut leased = 0;
    for host in 1..=6 {
        let address = format!("2001:db8:1:2::{host:x}");
        let (status, _, body) = app
            .visit(&Visit {
                forwarded_for: Some(&address),
                ..Visit::new(&key)
            })
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["number"] != DEFAULT_NUMBER {
            leased += 1;
        }
    }
    assert_eq!(leased, 3, "one /64 is one subscriber");
    // Another network is another subscriber.
    let (_, _, body) = app
        .visit(&Visit {
            forwarded_for: Some("2001:db8:1:3::1"),
            ..Visit::new(&key)
        })
        .await;
    assert_ne!(body["number"], DEFAULT_NUMBER, "{body}");
}

/// A new visitor from its own address (one of 2001:db8:7::/48's networks).
async fn visitor_from(app: &TestApp, key: &str, network: u32) -> Value {
    let address = format!("2001:db8:7:{network:x}::1");
    let (status, _, body) = app
        .visit(&Visit {
            forwarded_for: Some(&address),
            ..Visit::new(key)
        })
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

const BUDGET_OF_THREE: [(&str, &str); 2] = [
    ("pool_new_leases_per_minute", "3"),
    ("trusted_proxies", "127.0.0.1/32"),
];

#[tokio::test]
async fn past_a_pools_new_lease_budget_new_visitors_see_the_default_number_and_returning_ones_keep_theirs()
 {
    let app = spawn_app_with(Backend::Sqlite, &BUDGET_OF_THREE)
        .await
        .unwrap();
    // Five numbers, 30-minute leases: ten turnovers a lease is 2 a minute, so the floor (3) rules.
    let (pool_id, key) = property_with_pool(&app, 5).await;
    let mut answers = Vec::new();
    for network in 1..=5 {
        answers.push(visitor_from(&app, &key, network).await);
    }
    let leased: Vec<&Value> = answers
        .iter()
        .filter(|a| a["number"] != DEFAULT_NUMBER)
        .collect();
    assert_eq!(leased.len(), 3, "{answers:?}");
    for refused in &answers[3..] {
        assert_eq!(refused["number"], DEFAULT_NUMBER, "{refused}");
        assert_eq!(refused["expires_in"], 0, "{refused}");
        assert!(
            refused["session"].is_string(),
            "the visitor still has a session"
        );
    }
    // A returning visitor keeps the number they were shown.
    let first = &answers[0];
    let again = app
        .returning_visitor(&key, first["session"].as_str().unwrap())
        .await;
    assert_eq!(again["number"], first["number"], "{again}");

    // The operator sees it: refused visitors count as exhaustion events of the pool.
    let health: Value = app
        .get(&format!("/v1/pools/{pool_id}/health"), &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(health["exhaustion_events"], 2, "{health}");
    assert_eq!(health["budget_refusals"], 2, "{health}");
    assert_eq!(health["leased_now"], 3, "{health}");

    // A minute later the budget has refilled.
    app.advance_minutes(1);
    let later = visitor_from(&app, &key, 6).await;
    assert_ne!(later["number"], DEFAULT_NUMBER, "{later}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_redis_share_a_pools_new_lease_budget() {
    let (Some(_), Some(redis)) = (test_db(Backend::Postgres).await, redis_url()) else {
        return;
    };
    let settings = [
        BUDGET_OF_THREE[0],
        BUDGET_OF_THREE[1],
        ("redis_url", &redis),
    ];
    let a = spawn_app_with(Backend::Postgres, &settings).await.unwrap();
    let b = spawn_sibling(&a, &settings).await;
    let (_, key) = property_with_pool(&a, 5).await;
    let mut leased = 0;
    for network in 1..=6 {
        let instance = if network % 2 == 0 { &a } else { &b };
        if visitor_from(instance, &key, network).await["number"] != DEFAULT_NUMBER {
            leased += 1;
        }
    }
    assert_eq!(leased, 3, "the budget is the pool's, not each instance's");
}

#[tokio::test]
async fn renewals_alone_keep_a_number_only_up_to_the_hold_after_the_last_page_view() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await.unwrap();
    let (_, key) = property_with_pool(&app, 1).await;
    let first = app.new_visitor(&key, "https://www.acme.example/").await;
    let session = first["session"].as_str().unwrap().to_owned();
    let number = first["number"].as_str().unwrap().to_owned();
    assert_ne!(number, DEFAULT_NUMBER);
    let renew = async || {
        let (status, _, body) = app
            .visit(&Visit {
                session: Some(&session),
                renew: true,
                ..Visit::new(&key)
            })
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    };
    // A page left open for an hour keeps its number, renewed a full lease ahead each time.
    for _ in 0..4 {
        app.advance_minutes(15);
        let body = renew().await;
        assert_eq!(
            (body["number"].as_str(), body["expires_in"].as_i64()),
            (Some(number.as_str()), Some(1800))
        );
    }
    // Past the hold (90 minutes after the page view), the lease is not extended: the page keeps
    // its number (no flicker) and is told not to count on it, so the snippet stops renewing.
    app.advance_minutes(15);
    let capped = renew().await;
    assert_eq!(
        (capped["number"].as_str(), capped["expires_in"].as_i64()),
        (Some(number.as_str()), Some(0))
    );
    app.advance_minutes(16);
    let lapsed = renew().await;
    assert_eq!(
        (lapsed["number"].as_str(), lapsed["expires_in"].as_i64()),
        (Some(number.as_str()), Some(0))
    );

    // The number is back in the pool: the next new visitor gets it, and the renewals took nothing.
    let next = app.new_visitor(&key, "https://www.acme.example/").await;
    assert_eq!(next["number"], number.as_str(), "{next}");
    // A page view (not a renewal) of the old session leases again: here, as the pool's one
    // number is taken and the pool shares, by sharing it.
    let back = app.returning_visitor(&key, &session).await;
    assert_eq!(back["expires_in"], 1800, "{back}");
}
