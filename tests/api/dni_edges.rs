//! The page-view endpoint at its edges: CORS, bad input, bots, abuse, geo, outages, restarts,
//! and several instances sharing one Redis.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, Visit, numbers, redis_url, spawn_app, spawn_app_with, spawn_sibling,
};

const GEO_DB: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/geoip/GeoLite2-City-Test.mmdb"
);

async fn property_with_pool(app: &TestApp, count: u32) -> (String, String) {
    let p = app.create_property(&app.api_key).await;
    let pid = p["id"].as_str().unwrap().to_owned();
    app.pool_with(
        &pid,
        json!({"name": "All", "kind": "session", "numbers": numbers(700, count)}),
    )
    .await;
    (pid, p["public_key"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn only_the_propertys_domains_get_cors_and_text_plain_needs_no_preflight() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = property_with_pool(&app, 2).await;
    for origin in [
        "https://acme.example",
        "https://www.acme.example",
        "http://shop.acme.example:8080",
    ] {
        let (status, headers, body) = app
            .visit(&Visit {
                origin: Some(origin),
                ..Visit::new(&key)
            })
            .await;
        assert_eq!(status, StatusCode::OK, "{origin}: {body}");
        assert_eq!(headers["access-control-allow-origin"], origin);
        assert_eq!(headers["vary"], "Origin");
        assert_eq!(headers["cache-control"], "no-store");
    }
    for origin in [
        "https://evil.example",
        "https://acme.example.evil.io",
        "https://notacme.example",
    ] {
        let (status, headers, body) = app
            .visit(&Visit {
                origin: Some(origin),
                ..Visit::new(&key)
            })
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{origin}");
        assert_eq!(body["error"]["code"], "origin_not_allowed");
        assert!(headers.get("access-control-allow-origin").is_none());
    }
    // Preflight (for clients that send application/json) is answered too.
    let res = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/v1/dni/session"))
        .header("origin", "https://www.acme.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["access-control-allow-methods"], "POST");
}

#[tokio::test]
async fn bad_page_view_requests_get_clear_errors() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = property_with_pool(&app, 2).await;
    let (status, _, body) = app.visit(&Visit::new("pk_unknown")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_key"))
    );
    for url in ["not a url", "ftp://acme.example/", "/relative"] {
        let (status, _, body) = app
            .visit(&Visit {
                url,
                ..Visit::new(&key)
            })
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        assert_eq!(body["error"]["field"], "url");
    }
    let res = app
        .client
        .post(app.url("/v1/dni/session"))
        .header("content-type", "text/plain")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = app
        .client
        .post(app.url("/v1/dni/session"))
        .header("content-type", "text/plain")
        .body(json!({"url": "https://acme.example/"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "key is required"
    );
}

#[tokio::test]
async fn bots_see_the_default_number_and_take_no_lease() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = property_with_pool(&app, 1).await;
    let googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    for _ in 0..3 {
        let (status, _, body) = app
            .visit(&Visit {
                user_agent: googlebot,
                ..Visit::new(&key)
            })
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["number"], "+14155550100");
        assert_eq!(body["session"], Value::Null);
    }
    let person = app.new_visitor(&key, "https://www.acme.example/").await;
    assert_eq!(
        person["number"], "+14155550700",
        "the bots left the one number free"
    );
}

#[tokio::test]
async fn one_address_cannot_drain_a_pool() {
    let app = spawn_app_with(Backend::Sqlite, &[("new_sessions_per_ip_per_minute", "3")])
        .await
        .unwrap();
    let (_, key) = property_with_pool(&app, 10).await;
    let mut leased = 0;
    for _ in 0..8 {
        let (status, _, body) = app.visit(&Visit::new(&key)).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "never an error that breaks the page"
        );
        if body["number"] != "+14155550100" {
            leased += 1;
        }
    }
    assert_eq!(leased, 3);
    // Returning visits of the sessions it has are not limited.
    let first = app.new_visitor(&key, "https://www.acme.example/").await;
    assert_eq!(first["number"], "+14155550100");
}

#[tokio::test]
async fn the_visitors_city_comes_from_geo_through_trusted_proxies_only() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[("geoip_db", GEO_DB), ("trusted_proxies", "127.0.0.1/32")],
    )
    .await
    .unwrap();
    let (_, key) = property_with_pool(&app, 3).await;
    let london = app
        .visit(&Visit {
            forwarded_for: Some("203.0.113.50, 81.2.69.142"),
            ..Visit::new(&key)
        })
        .await
        .2;
    let unknown = app
        .visit(&Visit {
            forwarded_for: Some("10.1.2.3"),
            ..Visit::new(&key)
        })
        .await
        .2;
    app.flush_ledger().await;
    let row = |sid: &str| {
        let storage = app.storage.clone();
        let sid = sid.to_owned();
        async move {
            storage
                .session_with_last_lease(&sid)
                .await
                .unwrap()
                .unwrap()
                .0
        }
    };
    let l = row(london["session"].as_str().unwrap()).await;
    assert_eq!(
        (
            l.visitor_city.as_deref(),
            l.visitor_region.as_deref(),
            l.visitor_country.as_deref()
        ),
        (Some("London"), Some("ENG"), Some("GB"))
    );
    let u = row(unknown["session"].as_str().unwrap()).await;
    assert_eq!(
        u.visitor_city, None,
        "a private address has no city, and no error"
    );

    // Without the proxy trusted, the header is ignored: the peer (127.0.0.1) has no city.
    let untrusting = spawn_app_with(Backend::Sqlite, &[("geoip_db", GEO_DB)])
        .await
        .unwrap();
    let (_, key) = property_with_pool(&untrusting, 1).await;
    let spoofed = untrusting
        .visit(&Visit {
            forwarded_for: Some("81.2.69.142"),
            ..Visit::new(&key)
        })
        .await
        .2;
    untrusting.flush_ledger().await;
    let s = untrusting
        .storage
        .session_with_last_lease(spoofed["session"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap()
        .0;
    assert_eq!(s.visitor_city, None);
}

#[tokio::test]
async fn with_redis_down_pages_get_the_default_number_not_an_error() {
    let app = spawn_app_with(Backend::Sqlite, &[("redis_url", "redis://127.0.0.1:1")])
        .await
        .unwrap();
    let (_, key) = property_with_pool(&app, 3).await;
    let start = std::time::Instant::now();
    let (status, _, body) = app.visit(&Visit::new(&key)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["number"], "+14155550100");
    assert!(
        body["session"].is_string(),
        "the session is kept for later views"
    );
    assert!(
        start.elapsed() < std::time::Duration::from_secs(2),
        "within the snippet's timeout"
    );
    let again = app
        .returning_visitor(&key, body["session"].as_str().unwrap())
        .await;
    assert_eq!(again["number"], "+14155550100");
}

/// The in-process store is rebuilt from the ledger after a restart: a returning visitor keeps
/// their number, and nobody new is given it.
#[tokio::test]
async fn a_restart_rebuilds_leases_from_the_ledger() {
    let first = spawn_app(Backend::Sqlite).await;
    let (_, key) = property_with_pool(&first, 2).await;
    let a = first.new_visitor(&key, "https://www.acme.example/").await;
    first.stop().await;

    first.advance_minutes(5);
    let second = spawn_sibling(&first, &[]).await;
    let newcomer = second.new_visitor(&key, "https://www.acme.example/").await;
    assert_ne!(
        newcomer["number"], a["number"],
        "a running lease survives the restart"
    );
    let back = second
        .returning_visitor(&key, a["session"].as_str().unwrap())
        .await;
    assert_eq!(back["number"], a["number"]);
    assert_eq!(back["channel"], "Direct");
}

/// Invariant 1 across instances: two service processes sharing one database and one Redis,
/// 200 concurrent new visitors at random, 50 numbers: every number used, none twice.
#[tokio::test]
async fn two_instances_sharing_redis_never_give_one_number_to_two_sessions() {
    let Some(redis) = redis_url() else { return };
    let backend = if crate::helpers::postgres_admin_url().is_some() {
        Backend::Postgres
    } else {
        Backend::Sqlite
    };
    let a = spawn_app_with(
        backend,
        &[
            ("redis_url", &redis),
            ("new_sessions_per_ip_per_minute", "1000"),
            // 200 new sessions in one instant: no budget of new leases per pool.
            ("pool_new_leases_per_minute", "0"),
        ],
    )
    .await
    .unwrap();
    let b = spawn_sibling(
        &a,
        &[
            ("redis_url", &redis),
            ("new_sessions_per_ip_per_minute", "1000"),
            // 200 new sessions in one instant: no budget of new leases per pool.
            ("pool_new_leases_per_minute", "0"),
        ],
    )
    .await;
    let p = a.create_property(&a.api_key).await;
    let key = p["public_key"].as_str().unwrap().to_owned();
    a.pool_with(
        p["id"].as_str().unwrap(),
        json!({"name": "Burst", "kind": "session", "exhaustion": "default", "numbers": numbers(800, 50)}),
    )
    .await;
    let a = std::sync::Arc::new(a);
    let b = std::sync::Arc::new(b);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let app = if rand_bit(i) { a.clone() } else { b.clone() };
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            app.new_visitor(&key, "https://www.acme.example/").await
        }));
    }
    let mut holders: HashMap<String, usize> = HashMap::new();
    for t in tasks {
        let answer = t.await.unwrap();
        *holders
            .entry(answer["number"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(
        holders.remove("+14155550100"),
        Some(150),
        "the rest see the default number"
    );
    assert_eq!(holders.len(), 50, "every free number was used first");
    assert!(
        holders.values().all(|&n| n == 1),
        "no number went to two sessions: {holders:?}"
    );
}

/// A fixed, uneven spread over the two instances.
fn rand_bit(i: usize) -> bool {
    (i * 7919 + 13) % 5 < 3
}

/// A returning visitor whose pool cannot be loaded (a fresh instance with the database gone)
/// keeps their session and sees the default number; no new session is opened for them.
#[tokio::test]
async fn a_pool_that_cannot_be_loaded_keeps_the_returning_session() {
    let first = spawn_app(Backend::Sqlite).await;
    let p = first.create_property(&first.api_key).await;
    let pid = p["id"].as_str().unwrap();
    let key = p["public_key"].as_str().unwrap();
    first
        .pool_with(pid, json!({"name": "Warm", "kind": "session", "match": {"source": "warm"}, "numbers": numbers(900, 1)}))
        .await;
    first
        .pool_with(
            pid,
            json!({"name": "Default", "kind": "session", "numbers": numbers(910, 2)}),
        )
        .await;
    let visitor = first.new_visitor(key, "https://www.acme.example/").await;
    let sid = visitor["session"].as_str().unwrap();
    first.flush_ledger().await;

    // A new instance caches the property (and loads only the Warm pool), then loses its database.
    let second = spawn_sibling(&first, &[]).await;
    second
        .new_visitor(key, "https://www.acme.example/?utm_source=warm")
        .await;
    second.storage.close().await;
    let again = second.returning_visitor(key, sid).await;
    assert_eq!(again["session"], sid, "the visitor keeps their session");
    assert_eq!(
        again["number"], "+14155550100",
        "the default number until the pool loads"
    );
}

/// A session the lease store holds but the database never received (its instance died before
/// the ledger wrote it) is recovered from the store: its channel, lease and page views, with an
/// empty landing page that a late ledger row fills in, and never over a row the ledger wrote.
mod a_session_its_instance_never_wrote_is_recovered_from_the_lease_store {
    use crate::helpers::{Backend, redis_url, spawn_app_with};

    #[tokio::test]
    async fn sqlite() {
        let Some(redis) = redis_url() else { return };
        let app = spawn_app_with(Backend::Sqlite, &[("redis_url", &redis)]).await;
        super::recovered_from_the_lease_store(app.unwrap()).await;
    }

    #[tokio::test]
    async fn postgres() {
        let Some(redis) = redis_url() else { return };
        if let Some(app) = spawn_app_with(Backend::Postgres, &[("redis_url", &redis)]).await {
            super::recovered_from_the_lease_store(app).await;
        }
    }
}

async fn recovered_from_the_lease_store(app: TestApp) {
    use switchboard::dni::lease_store::{Mode, NewSession, Touch, TouchOutcome};
    use switchboard::dni::recovery::GRACE_MS;
    use switchboard::storage::LedgerBatch;

    let p = app.create_property(&app.api_key).await;
    let (pid, key) = (p["id"].as_str().unwrap(), p["public_key"].as_str().unwrap());
    let pool = app
        .pool_with(
            pid,
            json!({"name": "All", "kind": "session", "exhaustion": "default", "numbers": numbers(960, 3)}),
        )
        .await;
    let pool_id = pool["id"].as_str().unwrap();
    // A visitor the ledger wrote (it loads the pool into the store).
    let written = app.new_visitor(key, "https://www.acme.example/").await;
    let written_sid = written["session"].as_str().unwrap().to_owned();
    app.flush_ledger().await;

    // What a dying instance got as far as: the store's step, not the ledger's write.
    let sid = format!("{}.{}", pool_id.replace('-', ""), "L".repeat(22));
    let meta = json!({"p": pid, "pool": pool_id, "ch": "Paid Search", "src": "google",
                      "med": "cpc", "cmp": "spring"})
    .to_string();
    let t0 = app.clock_now();
    let touched = app
        .state
        .leases
        .touch(&Touch {
            bucket: pool_id,
            session_id: &sid,
            mode: Mode::Exclusive,
            lease_ms: 30 * 60_000,
            now: t0,
            new_session: Some(NewSession {
                meta: &meta,
                previous: None,
                page_views: 0,
            }),
            retention_ms: 2 * 60 * 60_000,
            page_view: true,
            renewal_hold_ms: 90 * 60_000,
            new_leases_per_minute: 0,
        })
        .await
        .unwrap();
    let TouchOutcome::Touched(touched) = touched else {
        panic!("{touched:?}")
    };
    let switchboard::dni::lease_store::LeaseResult::Held(lease) = touched.lease else {
        panic!("a lease")
    };
    assert!(app.storage.session(&sid).await.unwrap().is_none());

    // Not before the grace period: a live instance's ledger may still be on its way.
    let dni = &app.state.dni;
    dni.recover_lost_sessions(t0 - 1, app.clock_now() - GRACE_MS)
        .await
        .unwrap();
    assert!(app.storage.session(&sid).await.unwrap().is_none());
    app.clock.advance_ms(GRACE_MS + 1_000);
    dni.recover_lost_sessions(t0 - 1, app.clock_now() - GRACE_MS)
        .await
        .unwrap();
    let (row, last_lease) = app
        .storage
        .session_with_last_lease(&sid)
        .await
        .unwrap()
        .expect("recovered");
    assert_eq!(
        (
            row.channel.as_str(),
            row.source.as_str(),
            row.medium.as_str()
        ),
        ("Paid Search", "google", "cpc")
    );
    assert_eq!(row.campaign.as_deref(), Some("spring"));
    assert_eq!(row.number.as_deref(), Some(lease.number.as_str()));
    assert_eq!((row.assignment.as_str(), row.page_views), ("lease", 1));
    assert_eq!(row.landing_url, "", "what only the ledger knew is lost");
    let last_lease = last_lease.expect("its lease");
    assert_eq!(
        (last_lease.number, last_lease.ends_at),
        (lease.number.clone(), lease.ends_at)
    );
    // Nothing else was touched, and a second look finds nothing to do.
    let again = dni
        .recover_lost_sessions(t0 - 1, app.clock_now() - GRACE_MS)
        .await
        .unwrap();
    assert_eq!(again, 0);
    let kept = app.storage.session(&written_sid).await.unwrap().unwrap();
    assert_eq!(kept.landing_url, "https://www.acme.example/");

    // A ledger row that arrives late fills in what the recovery could not know...
    let mut late = row.clone();
    late.landing_url = "https://www.acme.example/spring?gclid=abc".into();
    late.click_ids[0] = Some("abc".into());
    app.storage
        .write_ledger(&LedgerBatch {
            sessions: vec![late.clone()],
            ..LedgerBatch::default()
        })
        .await
        .unwrap();
    let filled = app.storage.session(&sid).await.unwrap().unwrap();
    assert_eq!(filled.landing_url, late.landing_url);
    assert_eq!(filled.click_ids[0].as_deref(), Some("abc"));
    // ...and a recovered row never overwrites one the ledger wrote.
    let mut stale = row;
    stale.page_views = 0;
    stale.last_seen_at = 0;
    app.storage
        .write_ledger(&LedgerBatch {
            sessions: vec![stale],
            ..LedgerBatch::default()
        })
        .await
        .unwrap();
    assert_eq!(app.storage.session(&sid).await.unwrap().unwrap(), filled);
}
