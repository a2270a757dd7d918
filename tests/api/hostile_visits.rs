//! The page-view endpoint is open to anyone: what a hostile client posts there cannot grow the
//! service's memory, lease a property's numbers for a page that is not the property's, or get
//! round the per-address limit by walking an IPv6 network.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, TestApp, Visit, numbers, spawn_app_with};

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
