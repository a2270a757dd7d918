//! Outbound requests cannot reach inside the operator's network: webhook URLs and GA4
//! endpoints that point at loopback, private, link-local (metadata), CGNAT, multicast and other
//! internal addresses are refused when saved (422 naming the field) and again when a request
//! connects; redirects are not followed; a failure shows the account a status line only.
//!
//! Safety: a test that names a non-loopback internal address (10.x, 169.254.169.254, ...) runs
//! the app with `SWITCHBOARD_OUTBOUND_PROXY` pointing at a [`RecordingProxy`] on loopback, so
//! even if the code under test were wrong the request would reach that listener, never the
//! address; each such test asserts the proxy saw nothing. Loopback targets are real local
//! receivers that must receive nothing.

use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard::storage::OutboundQueue;
use switchboard::webhooks::NewWebhookEndpoint;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{Backend, TestApp, error_of, spawn_app_with};
use crate::on_both_backends;
use crate::webhooks::{
    FixedAnswer, Receiver, create_endpoint, deliver, deliveries, enqueue, id_of,
};

/// A stand-in egress proxy on loopback: records the first line of whatever reaches it and
/// answers 502.
pub(crate) struct RecordingProxy {
    pub(crate) url: String,
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RecordingProxy {
    pub(crate) async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let task = tokio::spawn({
            let seen = seen.clone();
            async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    let seen = seen.clone();
                    tokio::spawn(async move {
                        let mut head = vec![0u8; 4096];
                        let n = stream.read(&mut head).await.unwrap_or(0);
                        let line = String::from_utf8_lossy(&head[..n]);
                        let line = line.lines().next().unwrap_or("(a connection)");
                        seen.lock().unwrap().push(line.to_owned());
                        let _ = stream
                            .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
                            .await;
                    });
                }
            }
        });
        Self { url, seen, task }
    }

    pub(crate) fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An app without the test helpers' loopback allowance, behind `proxy` if given.
pub(crate) async fn strict_app(
    backend: Backend,
    proxy: Option<&RecordingProxy>,
    extra: &[(&str, &str)],
) -> Option<TestApp> {
    let mut settings = vec![("outbound_allow", "")];
    if let Some(proxy) = proxy {
        settings.push(("outbound_proxy", proxy.url.as_str()));
    }
    settings.extend_from_slice(extra);
    spawn_app_with(backend, &settings).await
}

/// Every spelling of an internal destination the checks must refuse; `port` is a live local
/// receiver's, so a loopback form that got through would be seen arriving.
fn internal_urls(port: u16) -> Vec<String> {
    let loopback = [
        format!("http://127.0.0.1:{port}/hooks"),
        format!("http://[::1]:{port}/hooks"),
        format!("http://0x7f000001:{port}/hooks"),
        format!("http://2130706433:{port}/hooks"),
        format!("http://127.1:{port}/hooks"),
        format!("http://localhost:{port}/hooks"),
        format!("http://[::ffff:127.0.0.1]:{port}/hooks"),
        format!("http://[::127.0.0.1]:{port}/hooks"),
    ];
    let internal = [
        "http://10.0.0.1/hooks",
        "http://172.16.5.4/hooks",
        "http://192.168.0.1/hooks",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://[::ffff:10.0.0.1]/hooks",
        "http://100.64.0.1/hooks",
        "http://[fd00::1]/hooks",
        "http://[fe80::1]/hooks",
        "http://224.0.0.1/hooks",
        "http://[ff02::1]/hooks",
        "http://0.0.0.0/hooks",
        "http://[::]/hooks",
        "http://255.255.255.255/hooks",
        "http://0.1.2.3/hooks",
        "http://192.0.2.1/hooks",
        "http://198.18.0.1/hooks",
        "http://[64:ff9b::a00:1]/hooks",
        "http://[2002:a00:1::]/hooks",
    ];
    loopback
        .into_iter()
        .chain(internal.iter().map(|u| (*u).to_owned()))
        .collect()
}

async fn patch_ga4(app: &TestApp, property_id: &str, endpoint: &str) -> reqwest::Response {
    let ga4 = json!({"ga4": {"measurement_id": "G-TEST1234", "api_secret": "mp-secret-Xy12Zq",
                              "endpoint": endpoint}});
    crate::ga4::patch_property(app, &app.api_key, property_id, &ga4).await
}

#[tokio::test]
async fn every_internal_address_form_is_refused_when_a_webhook_or_ga4_endpoint_is_saved() {
    let proxy = RecordingProxy::start().await;
    let receiver = Receiver::start(0).await;
    let app = strict_app(Backend::Sqlite, Some(&proxy), &[])
        .await
        .unwrap();
    let property_id = app.create_property(&app.api_key).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let port = url::Url::parse(&receiver.url).unwrap().port().unwrap();
    for url in internal_urls(port) {
        let res = app
            .post("/v1/webhooks", &app.api_key, &json!({"url": url}))
            .await;
        let (status, err) = error_of(res).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {err}");
        assert_eq!(err["field"], "url", "{url}");
        let message = err["message"].as_str().unwrap();
        assert!(
            message.contains("must be on the public internet"),
            "{url}: {message}"
        );

        let (status, err) = error_of(patch_ga4(&app, &property_id, &url).await).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {err}");
        assert_eq!(err["field"], "ga4.endpoint", "{url}");
    }
    // A name is refused without telling the account which address it resolved to.
    let res = app
        .post(
            "/v1/webhooks",
            &app.api_key,
            &json!({"url": format!("http://localhost:{port}/")}),
        )
        .await;
    let message = error_of(res).await.1["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("localhost resolves to a refused address (loopback)"),
        "{message}"
    );
    assert!(
        !message.contains("127.0.0.1") && !message.contains("::1"),
        "{message}"
    );

    let listed: Value = app
        .get("/v1/webhooks", &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["webhooks"], json!([]), "nothing was saved");
    let property: Value = app
        .get(&format!("/v1/properties/{property_id}"), &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(property["ga4"], Value::Null);
    assert_eq!(receiver.count(), 0);
    assert_eq!(proxy.seen(), Vec::<String>::new());
    receiver.stop().await;
}

on_both_backends!(
    last_error_is_the_status_line_never_the_body,
    bodies_kept_by_earlier_versions_are_cut_to_their_status,
);

async fn last_error_is_the_status_line_never_the_body(app: TestApp) {
    let receiver = Receiver::answering(FixedAnswer {
        status: 500,
        headers: vec![],
        body: "internal: db password hunter2 at 10.9.8.7",
    })
    .await;
    let endpoint = create_endpoint(&app, &app.api_key, &receiver.url).await;
    enqueue(&app, &app.account_id, "body", json!({})).await;
    deliver(&app).await;
    assert_eq!(receiver.count(), 1);
    let history = deliveries(&app, &app.api_key, id_of(&endpoint)).await;
    assert_eq!(history[0]["last_status"], 500);
    assert_eq!(history[0]["last_error"], "HTTP 500 Internal Server Error");
    assert!(!history[0].to_string().contains("hunter2"));
    receiver.stop().await;
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await.unwrap();
    let target = Receiver::start(0).await;
    let redirector = Receiver::answering(FixedAnswer {
        status: 302,
        headers: vec![("location", target.url.clone())],
        body: "",
    })
    .await;
    let endpoint = create_endpoint(&app, &app.api_key, &redirector.url).await;
    enqueue(&app, &app.account_id, "redirect", json!({})).await;
    deliver(&app).await;
    assert_eq!(redirector.count(), 1);
    assert_eq!(target.count(), 0, "the redirect was not followed");
    let history = deliveries(&app, &app.api_key, id_of(&endpoint)).await;
    assert_eq!(history[0]["status"], "pending", "a failed attempt, retried");
    assert_eq!(history[0]["last_status"], 302);
    assert_eq!(history[0]["last_error"], "HTTP 302 Found");
    target.stop().await;
    redirector.stop().await;
}

/// Endpoints written straight to the database, as if saved before the rules existed (or while
/// their name still resolved to a public address).
async fn saved_anyway(app: &TestApp, url: &str) -> String {
    let new = NewWebhookEndpoint::parse(url, None).unwrap();
    app.storage
        .create_webhook_endpoint(&app.account_id, &new, 1_780_000_000_000)
        .await
        .unwrap()
        .endpoint
        .id
}

async fn last_errors(app: &TestApp, endpoints: &[String]) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    for id in endpoints {
        let history = deliveries(app, &app.api_key, id).await;
        errors.push((
            history[0]["status"].as_str().unwrap().to_owned(),
            history[0]["last_error"].as_str().unwrap().to_owned(),
        ));
    }
    errors
}

#[tokio::test]
async fn internal_addresses_saved_before_are_refused_at_delivery() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let proxy = RecordingProxy::start().await;
        let Some(app) = strict_app(backend, Some(&proxy), &[]).await else {
            continue;
        };
        let receiver = Receiver::start(0).await;
        let endpoints = [
            saved_anyway(&app, "http://10.0.0.1/hooks").await,
            saved_anyway(&app, "http://169.254.169.254/latest/meta-data/").await,
            saved_anyway(&app, "http://[fd00::1]/hooks").await,
            saved_anyway(&app, &receiver.url).await,
        ];
        enqueue(&app, &app.account_id, "internal", json!({})).await;
        deliver(&app).await;
        // An address cannot change: given up at once.
        let failed = |why: &str| ("failed".to_owned(), format!("address refused: {why}"));
        assert_eq!(
            last_errors(&app, &endpoints).await,
            [
                failed("private network"),
                failed("link-local (cloud metadata)"),
                failed("private network"),
                failed("loopback"),
            ]
        );
        assert_eq!(receiver.count(), 0);
        assert_eq!(proxy.seen(), Vec::<String>::new());
        receiver.stop().await;
    }
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_when_connecting_gets_nothing() {
    // No proxy: the client's own resolver is what stands between the name and loopback.
    let app = strict_app(Backend::Sqlite, None, &[]).await.unwrap();
    let receiver = Receiver::start(0).await;
    let by_name = receiver.url.replacen("127.0.0.1", "localhost", 1);
    let endpoints = [saved_anyway(&app, &by_name).await];
    enqueue(&app, &app.account_id, "rebound", json!({})).await;
    deliver(&app).await;
    assert_eq!(receiver.count(), 0);
    assert_eq!(
        last_errors(&app, &endpoints).await,
        [("pending".to_owned(), "address refused: loopback".to_owned())],
        "refused at connect time, and tried again later (a name may resolve elsewhere)"
    );
    receiver.stop().await;
}

#[tokio::test]
async fn the_allow_list_lets_an_internal_receiver_through_and_nothing_else() {
    let receiver = Receiver::start(0).await;
    let by_name = receiver.url.replacen("127.0.0.1", "localhost", 1);
    // Without it, the very same receiver is refused.
    let strict = strict_app(Backend::Sqlite, None, &[]).await.unwrap();
    for url in [&receiver.url, &by_name] {
        let res = strict
            .post("/v1/webhooks", &strict.api_key, &json!({"url": url}))
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{url}");
    }

    for (allow, url) in [("127.0.0.0/8", &receiver.url), ("localhost", &by_name)] {
        let app = strict_app(Backend::Sqlite, None, &[("outbound_allow", allow)])
            .await
            .unwrap();
        let before = receiver.count();
        let endpoint = create_endpoint(&app, &app.api_key, url).await;
        enqueue(&app, &app.account_id, "allowed", json!({})).await;
        deliver(&app).await;
        assert_eq!(receiver.count(), before + 1, "{allow}");
        let history = deliveries(&app, &app.api_key, id_of(&endpoint)).await;
        assert_eq!(history[0]["status"], "delivered", "{allow}");
        // The allowance is exact: another internal address stays refused.
        let res = app
            .post(
                "/v1/webhooks",
                &app.api_key,
                &json!({"url": "http://[::1]:9/"}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{allow}");
    }
    receiver.stop().await;
}

async fn bodies_kept_by_earlier_versions_are_cut_to_their_status(app: TestApp) {
    let receiver = Receiver::start(usize::MAX).await;
    let endpoint = create_endpoint(&app, &app.api_key, &receiver.url).await;
    enqueue(&app, &app.account_id, "old", json!({})).await;
    deliver(&app).await;
    let id = deliveries(&app, &app.api_key, id_of(&endpoint)).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The failure as an earlier version recorded it: status line and body.
    let old = "HTTP 500 Internal Server Error: internal: db password hunter2";
    app.storage
        .attempt_failed(
            OutboundQueue::Webhooks,
            &id,
            Some(500),
            old,
            Some(i64::MAX),
            0,
        )
        .await
        .unwrap();
    let before = deliveries(&app, &app.api_key, id_of(&endpoint)).await;
    assert_eq!(before[0]["last_error"], old);

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.db_url).await.unwrap();
    sqlx::raw_sql(include_str!(
        "../../migrations/0015_outbound_errors_as_status_lines.sql"
    ))
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let after = deliveries(&app, &app.api_key, id_of(&endpoint)).await;
    assert_eq!(after[0]["last_error"], "HTTP 500");
    assert_eq!(after[0]["last_status"], 500);
    receiver.stop().await;
}
