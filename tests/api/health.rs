use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Backend, TestApp, error_of, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(health_reports_every_component, operations_endpoints_answer);

const GEO_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/geoip");

async fn health(app: &TestApp) -> Value {
    let res = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

async fn health_reports_every_component(app: TestApp) {
    let h = health(&app).await;
    assert_eq!(h["status"], "ok", "{h}");
    let expected_backend = match app.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(h["components"]["database"]["status"], "ok");
    assert_eq!(h["components"]["database"]["backend"], expected_backend);
    assert_eq!(h["components"]["lease_store"]["status"], "ok");
    assert_eq!(h["components"]["lease_store"]["backend"], "in_process");
    assert_eq!(h["components"]["geo"]["status"], "disabled");
    assert_eq!(h["components"]["attribution"]["status"], "ok", "{h}");
    assert_eq!(h["components"]["workers"]["status"], "ok", "{h}");
    assert!(
        h["components"]["workers"]["message"]
            .as_str()
            .is_some_and(|m| m.ends_with("background workers running, none restarted")),
        "{h}"
    );
    // Alone, this instance holds every shard of the shared background work.
    assert_eq!(h["components"]["shared_work"]["status"], "ok", "{h}");
    let shared = h["components"]["shared_work"]["message"].as_str().unwrap();
    assert!(
        shared.ends_with("of 1 live holds alerts 16/16, session-recovery 16/16, rollups 1/1"),
        "{shared}"
    );
}

async fn operations_endpoints_answer(app: TestApp) {
    let res = app
        .client
        .get(app.url("/health/ping"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let id = res
        .headers()
        .get("x-request-id")
        .expect("a request id on every answer");
    assert!(uuid::Uuid::parse_str(id.to_str().unwrap()).is_ok());
    assert_eq!(res.text().await.unwrap(), "pong");

    let _ = app.get("/v1/properties", &app.api_key).await;
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains(
            r#"switchboard_http_requests_total{method="GET",route="/v1/properties",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains("switchboard_http_request_duration_seconds_bucket"));

    let spec: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with('3'));
    for path in [
        "/v1/properties",
        "/v1/properties/{id}",
        "/v1/properties/{id}/pools",
        "/v1/pools/{id}",
        "/v1/pools/{id}/numbers",
        "/v1/pools/{id}/numbers/{e164}",
        "/health",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} is documented");
    }
    assert!(spec["components"]["schemas"]["CreatePoolRequest"].is_object());
    assert!(spec["components"]["securitySchemes"]["api_key"].is_object());
}

#[tokio::test]
async fn geo_database_is_reported_ready_or_broken_without_stopping_the_service() {
    for (file, status) in [
        ("GeoLite2-City-Test.mmdb", "ok"),
        ("GeoIP2-City-Test.mmdb", "ok"),
        ("GeoIP2-City-Test-Broken-Double-Format.mmdb", "error"),
        ("does-not-exist.mmdb", "error"),
    ] {
        let path = format!("{GEO_DIR}/{file}");
        let app = spawn_app_with(Backend::Sqlite, &[("geoip_db", &path)])
            .await
            .unwrap();
        let h = health(&app).await;
        assert_eq!(h["components"]["geo"]["status"], status, "{file}: {h}");
        assert_eq!(h["components"]["database"]["status"], "ok");
        let expected_overall = if status == "ok" { "ok" } else { "degraded" };
        assert_eq!(h["status"], expected_overall);
        // The service still serves the API either way.
        let res = app.get("/v1/properties", &app.api_key).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn redis_lease_store_is_reported() {
    let Ok(redis_url) = std::env::var("TEST_REDIS_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "TEST_REDIS_URL must be set in CI"
        );
        eprintln!("skipped: TEST_REDIS_URL is not set (Redis tests run in CI)");
        return;
    };
    let app = spawn_app_with(Backend::Sqlite, &[("redis_url", &redis_url)])
        .await
        .unwrap();
    let h = health(&app).await;
    assert_eq!(h["components"]["lease_store"]["backend"], "redis");
    assert_eq!(h["components"]["lease_store"]["status"], "ok", "{h}");
}

#[tokio::test]
async fn an_unreachable_redis_degrades_health_but_not_the_service() {
    // Port 1 on loopback: nothing listens there.
    let app = spawn_app_with(Backend::Sqlite, &[("redis_url", "redis://127.0.0.1:1")])
        .await
        .unwrap();
    let h = health(&app).await;
    assert_eq!(h["status"], "degraded");
    assert_eq!(h["components"]["lease_store"]["status"], "error");
    assert!(h["components"]["lease_store"]["message"].is_string());
    let property = app.create_property(&app.api_key).await;
    assert!(property["id"].is_string());
}

#[tokio::test]
async fn unknown_endpoints_answer_in_the_error_shape() {
    let app = crate::helpers::spawn_app(Backend::Sqlite).await;
    let (status, err) = error_of(app.client.get(app.url("/nope")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err["code"], "not_found");
}
