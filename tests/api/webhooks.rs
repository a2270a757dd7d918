//! Outbound webhooks, end to end: endpoints made through the API, events queued as the call
//! pipeline queues them, and a real HTTP receiver on a local port that records what arrives.
//! Time is the app's ManualClock; `run_due_now` runs one delivery pass deterministically.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use switchboard::storage::Storage;
use switchboard::webhooks::{
    EnqueueError, NewWebhookEndpoint, RETRY_DELAYS, SignatureError, verify_signature,
};

use crate::helpers::{Backend, TestApp, TestDb, error_of, spawn_sibling, test_db};
use crate::on_both_backends;

on_both_backends!(
    an_event_arrives_once_per_endpoint_signed_with_its_secret,
    a_failing_receiver_gets_the_same_event_on_the_backoff_schedule_until_it_answers,
    a_receiver_that_never_answers_is_given_up_after_the_last_retry,
    enqueueing_the_same_key_twice_delivers_once,
    another_accounts_endpoints_are_invisible_and_get_none_of_its_events,
    bad_urls_are_refused_with_a_json_error_naming_the_field,
    a_deleted_endpoint_receives_nothing_more,
    two_instances_send_each_event_once,
    https_endpoints_are_called_over_tls,
);

const FIVE_MINUTES: Duration = Duration::from_secs(300);

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    /// The path and query string.
    pub(crate) uri: String,
    headers: HashMap<String, String>,
    pub(crate) body: Vec<u8>,
}

impl Received {
    /// The query string's parameters, decoded.
    pub(crate) fn query(&self) -> HashMap<String, String> {
        let url = url::Url::parse(&format!("http://receiver{}", self.uri)).unwrap();
        url.query_pairs().into_owned().collect()
    }

    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
            .unwrap_or_default()
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    pub(crate) fn timestamp(&self) -> i64 {
        self.header("switchboard-timestamp").parse().unwrap()
    }
}

#[derive(Default)]
pub(crate) struct ReceiverState {
    seen: Mutex<Vec<Received>>,
    /// Answers 500 to this many requests before answering 200.
    failures_left: AtomicUsize,
    /// Or always this answer: status, headers, body.
    fixed: Option<FixedAnswer>,
}

#[derive(Clone)]
pub(crate) struct FixedAnswer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: &'static str,
}

/// A real HTTP server on a local port, standing in for a CRM (or GA4).
pub(crate) struct Receiver {
    /// `http://127.0.0.1:<port>`.
    pub(crate) base: String,
    pub(crate) url: String,
    state: Arc<ReceiverState>,
    handle: actix_web::dev::ServerHandle,
}

impl Receiver {
    pub(crate) async fn start(fail_first: usize) -> Self {
        Self::with_state(ReceiverState {
            failures_left: AtomicUsize::new(fail_first),
            ..ReceiverState::default()
        })
        .await
    }

    /// A receiver that gives every request the same answer.
    pub(crate) async fn answering(answer: FixedAnswer) -> Self {
        Self::with_state(ReceiverState {
            fixed: Some(answer),
            ..ReceiverState::default()
        })
        .await
    }

    async fn with_state(state: ReceiverState) -> Self {
        let state = Arc::new(state);
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .expect("bind a local port");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            base: format!("http://127.0.0.1:{port}"),
            url: format!("http://127.0.0.1:{port}/hooks/switchboard?token=abc"),
            state,
            handle,
        }
    }

    pub(crate) fn seen(&self) -> Vec<Received> {
        self.state.seen.lock().unwrap().clone()
    }

    pub(crate) fn count(&self) -> usize {
        self.state.seen.lock().unwrap().len()
    }

    pub(crate) async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<ReceiverState>,
) -> HttpResponse {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    state.seen.lock().unwrap().push(Received {
        uri: req.uri().to_string(),
        headers,
        body: body.to_vec(),
    });
    if let Some(fixed) = &state.fixed {
        let status = actix_web::http::StatusCode::from_u16(fixed.status).unwrap();
        let mut answer = HttpResponse::build(status);
        for (name, value) in &fixed.headers {
            answer.insert_header((*name, value.as_str()));
        }
        return answer.body(fixed.body);
    }
    let failing = state
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        HttpResponse::InternalServerError().body("receiver down")
    } else {
        HttpResponse::Ok().finish()
    }
}

/// Creates an endpoint for `key` through the API; returns its JSON (with the secret).
pub(crate) async fn create_endpoint(app: &TestApp, key: &str, url: &str) -> Value {
    let res = app
        .post(
            "/v1/webhooks",
            key,
            &json!({"url": url, "description": "CRM"}),
        )
        .await;
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

pub(crate) async fn enqueue(app: &TestApp, account_id: &str, key: &str, data: Value) -> u64 {
    app.state
        .webhooks
        .enqueue(account_id, "call.completed", key, &data)
        .await
        .expect("enqueue")
}

/// One delivery pass at the clock's current time; waits for every attempt it makes.
pub(crate) async fn deliver(app: &TestApp) {
    app.state
        .webhooks
        .run_due_now()
        .await
        .expect("delivery pass");
}

/// The endpoints `GET /v1/webhooks` lists for `key`.
async fn endpoints(app: &TestApp, key: &str) -> Vec<Value> {
    let res = app.get("/v1/webhooks", key).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    body["webhooks"].as_array().unwrap().clone()
}

pub(crate) async fn deliveries(app: &TestApp, key: &str, endpoint_id: &str) -> Vec<Value> {
    let res = app
        .get(&format!("/v1/webhooks/{endpoint_id}/deliveries"), key)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    body["deliveries"].as_array().unwrap().clone()
}

fn now_secs(app: &TestApp) -> i64 {
    use switchboard::time::Clock;
    app.clock.now_ms() / 1000
}

pub(crate) fn id_of(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

async fn an_event_arrives_once_per_endpoint_signed_with_its_secret(app: TestApp) {
    let (r1, r2) = (Receiver::start(0).await, Receiver::start(0).await);
    let e1 = create_endpoint(&app, &app.api_key, &r1.url).await;
    let e2 = create_endpoint(&app, &app.api_key, &r2.url).await;
    let secret = e1["secret"].as_str().unwrap();
    assert!(
        secret.starts_with("whsec_") && secret.len() == 6 + 43,
        "{secret}"
    );
    assert_ne!(e1["secret"], e2["secret"]);
    assert_eq!(e1["url"], r1.url);
    assert_eq!(e1["description"], "CRM");

    // The list shows the endpoints, never their secrets.
    let listed = app
        .get("/v1/webhooks", &app.api_key)
        .await
        .text()
        .await
        .unwrap();
    assert!(listed.contains(id_of(&e1)) && listed.contains(id_of(&e2)));
    assert!(
        !listed.contains("whsec_") && !listed.contains("secret"),
        "{listed}"
    );

    let data = json!({"call_id": "CA123", "duration": 42, "caller": "+14155550199"});
    assert_eq!(
        enqueue(&app, &app.account_id, "call.completed:CA123", data.clone()).await,
        2
    );
    deliver(&app).await;

    for (receiver, endpoint) in [(&r1, &e1), (&r2, &e2)] {
        let seen = receiver.seen();
        assert_eq!(seen.len(), 1, "once per endpoint");
        let got = &seen[0];
        let body = got.json();
        assert_eq!(got.header("content-type"), "application/json");
        assert_eq!(got.header("switchboard-event-id"), body["id"]);
        assert_eq!(got.header("idempotency-key"), "call.completed:CA123");
        assert_eq!(got.timestamp(), now_secs(&app));
        assert_eq!(body["type"], "call.completed");
        assert_eq!(body["data"], data);
        let created = chrono::DateTime::parse_from_rfc3339(body["created_at"].as_str().unwrap())
            .expect("RFC 3339");
        assert_eq!(created.timestamp(), now_secs(&app));
        let text = String::from_utf8(got.body.clone()).unwrap();
        let at = |k: &str| text.find(&format!("\"{k}\":")).unwrap();
        assert!(
            at("id") < at("type") && at("type") < at("created_at") && at("created_at") < at("data"),
            "fields in their documented order: {text}"
        );

        // The receiver's check: its own secret verifies; a changed body, another endpoint's
        // secret, or an old request does not.
        let secret = endpoint["secret"].as_str().unwrap();
        let signature = got.header("switchboard-signature");
        assert!(signature.starts_with(&format!("t={},v1=", got.timestamp())));
        assert_eq!(
            verify_signature(secret, signature, &got.body, now_secs(&app), FIVE_MINUTES),
            Ok(())
        );
        let tampered = String::from_utf8(got.body.clone())
            .unwrap()
            .replace("42", "43");
        assert_eq!(
            verify_signature(
                secret,
                signature,
                tampered.as_bytes(),
                now_secs(&app),
                FIVE_MINUTES
            ),
            Err(SignatureError::Mismatch)
        );
        let other = if receiver.url == r1.url { &e2 } else { &e1 };
        assert_eq!(
            verify_signature(
                other["secret"].as_str().unwrap(),
                signature,
                &got.body,
                now_secs(&app),
                FIVE_MINUTES
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(
                secret,
                signature,
                &got.body,
                now_secs(&app) + 600,
                FIVE_MINUTES
            ),
            Err(SignatureError::Stale)
        );

        let history = deliveries(&app, &app.api_key, id_of(endpoint)).await;
        assert_eq!(history.len(), 1);
        assert_eq!(history[0]["id"], body["id"]);
        assert_eq!(history[0]["status"], "delivered");
        assert_eq!(history[0]["attempts"], 1);
        assert_eq!(history[0]["last_status"], 200);
        assert_eq!(history[0]["next_attempt_at"], Value::Null);
    }
    assert_ne!(r1.seen()[0].json()["id"], r2.seen()[0].json()["id"]);

    // Nothing is sent twice, however often the worker looks.
    app.clock.advance_ms(86_400_000);
    deliver(&app).await;
    assert_eq!((r1.count(), r2.count()), (1, 1));
    r1.stop().await;
    r2.stop().await;
}

async fn a_failing_receiver_gets_the_same_event_on_the_backoff_schedule_until_it_answers(
    app: TestApp,
) {
    let receiver = Receiver::start(2).await;
    let endpoint = create_endpoint(&app, &app.api_key, &receiver.url).await;
    let t0 = now_secs(&app);
    enqueue(&app, &app.account_id, "call.completed:CA9", json!({"n": 1})).await;
    deliver(&app).await;
    assert_eq!(receiver.count(), 1);
    let history = deliveries(&app, &app.api_key, id_of(&endpoint)).await;
    assert_eq!(history[0]["status"], "pending");
    assert_eq!(history[0]["attempts"], 1);
    assert_eq!(history[0]["last_status"], 500);
    assert_eq!(history[0]["last_error"], "HTTP 500 Internal Server Error");
    let next =
        chrono::DateTime::parse_from_rfc3339(history[0]["next_attempt_at"].as_str().unwrap())
            .unwrap();
    assert_eq!(next.timestamp(), t0 + 10);

    // Not a moment before the backoff says.
    app.clock.advance_ms(9_999);
    deliver(&app).await;
    assert_eq!(receiver.count(), 1);
    app.clock.advance_ms(1);
    deliver(&app).await;
    assert_eq!(receiver.count(), 2);
    app.clock.advance_ms(59_999);
    deliver(&app).await;
    assert_eq!(receiver.count(), 2);
    app.clock.advance_ms(1);
    deliver(&app).await;
    assert_eq!(receiver.count(), 3, "the third attempt succeeds");

    // Delivered: never again.
    for _ in 0..3 {
        app.clock.advance_ms(12 * 3_600_000);
        deliver(&app).await;
    }
    let seen = receiver.seen();
    assert_eq!(seen.len(), 3);
    let times: Vec<i64> = seen.iter().map(Received::timestamp).collect();
    assert_eq!(times, [t0, t0 + 10, t0 + 70]);
    for got in &seen {
        assert_eq!(
            got.header("switchboard-event-id"),
            seen[0].header("switchboard-event-id")
        );
        assert_eq!(got.header("idempotency-key"), "call.completed:CA9");
        assert_eq!(got.json()["id"], seen[0].json()["id"]);
        // Each attempt is signed at its own time.
        assert_eq!(
            verify_signature(
                endpoint["secret"].as_str().unwrap(),
                got.header("switchboard-signature"),
                &got.body,
                got.timestamp(),
                FIVE_MINUTES
            ),
            Ok(())
        );
    }
    let history = deliveries(&app, &app.api_key, id_of(&endpoint)).await;
    assert_eq!(history[0]["status"], "delivered");
    assert_eq!(history[0]["attempts"], 3);
    assert_eq!(history[0]["last_status"], 200);
    assert_eq!(history[0]["last_error"], Value::Null);
    receiver.stop().await;
}

async fn a_receiver_that_never_answers_is_given_up_after_the_last_retry(app: TestApp) {
    let receiver = Receiver::start(usize::MAX).await;
    let endpoint = create_endpoint(&app, &app.api_key, &receiver.url).await;
    enqueue(&app, &app.account_id, "k1", json!({})).await;
    deliver(&app).await;
    assert_eq!(receiver.count(), 1);
    for (i, delay) in RETRY_DELAYS.iter().enumerate() {
        app.clock.advance_ms(delay.as_millis() as i64);
        deliver(&app).await;
        assert_eq!(receiver.count(), i + 2, "retry {} after {delay:?}", i + 1);
    }
    let history = deliveries(&app, &app.api_key, id_of(&endpoint)).await;
    assert_eq!(history[0]["status"], "failed");
    assert_eq!(history[0]["attempts"], RETRY_DELAYS.len() + 1);
    assert_eq!(history[0]["last_status"], 500);
    assert!(history[0]["failed_at"].is_string());
    assert_eq!(history[0]["next_attempt_at"], Value::Null);

    app.clock.advance_ms(7 * 86_400_000);
    deliver(&app).await;
    assert_eq!(receiver.count(), 8, "given up: nothing more");

    // An endpoint nobody answers at counts as a failure too, with a reason but no status.
    receiver.stop().await;
    enqueue(&app, &app.account_id, "k2", json!({})).await;
    deliver(&app).await;
    let history = deliveries(&app, &app.api_key, id_of(&endpoint)).await;
    assert_eq!(history[0]["idempotency_key"], "k2");
    assert_eq!(history[0]["status"], "pending");
    assert_eq!(history[0]["last_status"], Value::Null);
    let error = history[0]["last_error"].as_str().unwrap();
    assert_eq!(error, "connection refused");
    assert!(
        !error.contains("token=abc"),
        "no query string in errors: {error}"
    );
}

async fn enqueueing_the_same_key_twice_delivers_once(app: TestApp) {
    let receiver = Receiver::start(0).await;
    let endpoint = create_endpoint(&app, &app.api_key, &receiver.url).await;
    assert_eq!(
        enqueue(&app, &app.account_id, "call.completed:CA1", json!({"v": 1})).await,
        1
    );
    assert_eq!(
        enqueue(&app, &app.account_id, "call.completed:CA1", json!({"v": 2})).await,
        0,
        "a replay queues nothing"
    );
    deliver(&app).await;
    assert_eq!(
        enqueue(&app, &app.account_id, "call.completed:CA1", json!({"v": 3})).await,
        0,
        "nor after delivery"
    );
    app.clock.advance_ms(60_000);
    deliver(&app).await;
    let seen = receiver.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].json()["data"],
        json!({"v": 1}),
        "the first enqueue wins"
    );

    // Keys travel as a header: text that is not one is refused before anything is queued.
    for bad in ["", "has space", "line\nbreak"] {
        let refused = app
            .state
            .webhooks
            .enqueue(&app.account_id, "call.completed", bad, &json!({}))
            .await;
        assert!(matches!(refused, Err(EnqueueError::InvalidKey)), "{bad:?}");
    }

    // Another key is another event.
    assert_eq!(
        enqueue(&app, &app.account_id, "call.completed:CA2", json!({"v": 1})).await,
        1
    );
    deliver(&app).await;
    assert_eq!(receiver.count(), 2);
    assert_eq!(
        deliveries(&app, &app.api_key, id_of(&endpoint)).await.len(),
        2
    );
    receiver.stop().await;
}

async fn another_accounts_endpoints_are_invisible_and_get_none_of_its_events(app: TestApp) {
    let (ra, rb) = (Receiver::start(0).await, Receiver::start(0).await);
    let a = &app.api_key;
    let b = app.new_account_key("Account B").await;
    let b_id = app
        .storage
        .account_for_api_key(&SecretString::from(b.clone()))
        .await
        .unwrap()
        .unwrap()
        .id;
    let ea = create_endpoint(&app, a, &ra.url).await;
    let eb = create_endpoint(&app, &b, &rb.url).await;

    for (path, key) in [
        (format!("/v1/webhooks/{}/deliveries", id_of(&ea)), &b),
        (format!("/v1/webhooks/{}/deliveries", id_of(&eb)), a),
        ("/v1/webhooks/no-such-id/deliveries".to_owned(), a),
    ] {
        let (status, err) = error_of(app.get(&path, key).await).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "GET {path}");
        assert_eq!(err["code"], "not_found");
    }
    let (status, _) = error_of(
        app.delete(&format!("/v1/webhooks/{}", id_of(&ea)), &b)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "B deletes A's endpoint");
    let listed = endpoints(&app, &b).await;
    let ids: Vec<&str> = listed.iter().map(id_of).collect();
    assert_eq!(ids, [id_of(&eb)]);

    enqueue(&app, &app.account_id, "a-event", json!({"for": "A"})).await;
    enqueue(&app, &b_id, "b-event", json!({"for": "B"})).await;
    deliver(&app).await;
    let (got_a, got_b) = (ra.seen(), rb.seen());
    assert_eq!(got_a.len(), 1);
    assert_eq!(got_a[0].json()["data"], json!({"for": "A"}));
    assert_eq!(got_b.len(), 1);
    assert_eq!(got_b[0].json()["data"], json!({"for": "B"}));

    // A's endpoint is untouched by B's attempts.
    let listed = endpoints(&app, a).await;
    assert_eq!(listed[0]["id"], ea["id"]);
    ra.stop().await;
    rb.stop().await;
}

async fn bad_urls_are_refused_with_a_json_error_naming_the_field(app: TestApp) {
    for url in [
        "not a url",
        "crm.example/hooks",
        "ftp://crm.example/hooks",
        "https://user:password@crm.example/hooks",
        "",
    ] {
        let (status, err) = error_of(
            app.post("/v1/webhooks", &app.api_key, &json!({"url": url}))
                .await,
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url:?}");
        assert_eq!(err["code"], "invalid_field");
        assert_eq!(err["field"], "url");
    }
    let (status, err) = error_of(
        app.post(
            "/v1/webhooks",
            &app.api_key,
            &json!({"url": "https://a.example", "events": []}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["code"], "unknown_field");
    let (status, _) = error_of(app.post("/v1/webhooks", &app.api_key, &json!({})).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, err) = error_of(
        app.client
            .post(app.url("/v1/webhooks"))
            .json(&json!({"url": "https://a.example"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(err["code"], "missing_api_key");

    let listed = endpoints(&app, &app.api_key).await;
    assert!(listed.is_empty(), "a refused request writes nothing");

    let spec: Value = app
        .get("/openapi.json", &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    for path in [
        "/v1/webhooks",
        "/v1/webhooks/{id}",
        "/v1/webhooks/{id}/deliveries",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} is documented");
    }
}

async fn a_deleted_endpoint_receives_nothing_more(app: TestApp) {
    let (gone, kept) = (Receiver::start(1).await, Receiver::start(0).await);
    let e_gone = create_endpoint(&app, &app.api_key, &gone.url).await;
    let e_kept = create_endpoint(&app, &app.api_key, &kept.url).await;
    enqueue(&app, &app.account_id, "e1", json!({})).await;
    deliver(&app).await;
    assert_eq!(
        (gone.count(), kept.count()),
        (1, 1),
        "gone's first attempt failed"
    );

    let path = format!("/v1/webhooks/{}", id_of(&e_gone));
    let res = app.delete(&path, &app.api_key).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (status, _) = error_of(app.delete(&path, &app.api_key).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "deleted once");
    let (status, _) = error_of(app.get(&format!("{path}/deliveries"), &app.api_key).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let listed = endpoints(&app, &app.api_key).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], e_kept["id"]);

    // Neither the pending retry nor new events reach it.
    assert_eq!(enqueue(&app, &app.account_id, "e2", json!({})).await, 1);
    for _ in 0..3 {
        app.clock.advance_ms(3_600_000);
        deliver(&app).await;
    }
    assert_eq!(gone.count(), 1);
    assert_eq!(kept.count(), 2);
    gone.stop().await;
    kept.stop().await;
}

async fn two_instances_send_each_event_once(app: TestApp) {
    let receiver = Receiver::start(0).await;
    let res = app
        .post("/v1/webhooks", &app.api_key, &json!({"url": receiver.url}))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let endpoint: Value = res.json().await.unwrap();
    assert_eq!(endpoint["description"], Value::Null);
    let sibling = spawn_sibling(&app, &[]).await;
    for n in 0..40 {
        enqueue(
            &app,
            &app.account_id,
            &format!("call.completed:{n}"),
            json!({"n": n}),
        )
        .await;
    }
    // Both instances' passes (and their background workers) race for the same queue.
    tokio::join!(deliver(&app), deliver(&sibling));
    deliver(&app).await;
    deliver(&sibling).await;
    let mut keys: Vec<String> = receiver
        .seen()
        .iter()
        .map(|r| r.header("idempotency-key").to_owned())
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 40);
    assert_eq!(receiver.count(), 40, "no event was sent twice");
    sibling.stop().await;
    receiver.stop().await;
}

/// The queue's storage methods on their own (no worker running): a claim is won by one
/// instance, counts the attempt, and expires if its worker never reports back.
async fn queue_story(db: TestDb) {
    let t0 = 1_780_000_000_000;
    let a = Storage::connect(&db.url, &Default::default())
        .await
        .unwrap();
    a.migrate().await.unwrap();
    let b = Storage::connect(&db.url, &Default::default())
        .await
        .unwrap();
    let account = a.create_account("A", t0).await.unwrap().account.id;
    let new = NewWebhookEndpoint::parse("https://crm.example/in?k=1", None).unwrap();
    let created = a.create_webhook_endpoint(&account, &new, t0).await.unwrap();
    let endpoint = created.endpoint.id;
    assert_eq!(created.endpoint.url, "https://crm.example/in?k=1");
    assert_eq!(a.list_webhook_endpoints(&account).await.unwrap().len(), 1);
    assert_eq!(
        a.enqueue_event("nobody", "t", "k", &json!({}), t0)
            .await
            .unwrap(),
        0
    );

    for n in 0..30 {
        let key = format!("k{n}");
        assert_eq!(
            a.enqueue_event(&account, "t", &key, &json!({"n": n}), t0)
                .await
                .unwrap(),
            1
        );
    }
    assert_eq!(
        a.enqueue_event(&account, "t", "k0", &json!({}), t0)
            .await
            .unwrap(),
        0
    );
    let lock = t0 + 30_000;
    let (mine, theirs) = tokio::join!(
        a.claim_due_webhook_deliveries(t0, lock, 64),
        b.claim_due_webhook_deliveries(t0, lock, 64)
    );
    let (mine, theirs) = (mine.unwrap(), theirs.unwrap());
    let mut ids: Vec<&str> = mine.iter().chain(&theirs).map(|d| d.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 30, "every delivery claimed");
    assert_eq!(
        mine.len() + theirs.len(),
        30,
        "and each by one instance only"
    );
    let first = mine
        .iter()
        .chain(&theirs)
        .find(|d| d.idempotency_key == "k0")
        .unwrap();
    assert_eq!(first.attempt, 1);
    assert_eq!(first.payload, r#"{"n":0}"#);
    assert_eq!(first.endpoint_id, endpoint);
    {
        use secrecy::ExposeSecret;
        assert_eq!(first.secret.expose_secret(), created.secret.expose_secret());
    }

    // Claimed: nobody else gets them until the claim runs out (a worker that died mid-send).
    assert!(
        b.claim_due_webhook_deliveries(lock - 1, lock + 30_000, 64)
            .await
            .unwrap()
            .is_empty()
    );
    let reclaimed = b
        .claim_due_webhook_deliveries(lock, lock + 30_000, 64)
        .await
        .unwrap();
    assert_eq!(reclaimed.len(), 30);
    assert!(
        reclaimed.iter().all(|d| d.attempt == 2),
        "the lost attempt counts"
    );

    // Outcomes: delivered, retry later, given up.
    let (d0, d1, d2) = (&reclaimed[0].id, &reclaimed[1].id, &reclaimed[2].id);
    let t1 = lock + 1_000;
    a.mark_webhook_delivered(d0, 204, t1).await.unwrap();
    a.webhook_attempt_failed(d1, Some(503), "HTTP 503", Some(t1 + 60_000), t1)
        .await
        .unwrap();
    a.webhook_attempt_failed(d2, None, "timed out", None, t1)
        .await
        .unwrap();
    let history = a
        .list_webhook_deliveries(&account, &endpoint, 100)
        .await
        .unwrap();
    assert_eq!(history.len(), 30);
    let find = |id: &str| history.iter().find(|d| d.id == id).unwrap();
    let v = serde_json::to_value(find(d0)).unwrap();
    assert_eq!(
        (v["status"].as_str(), v["last_status"].as_i64()),
        (Some("delivered"), Some(204))
    );
    let v = serde_json::to_value(find(d1)).unwrap();
    assert_eq!(v["status"], "pending");
    assert_eq!(v["last_error"], "HTTP 503");
    let v = serde_json::to_value(find(d2)).unwrap();
    assert_eq!(v["status"], "failed");
    assert_eq!(v["last_status"], Value::Null);
    // The retry is due at its time, not before; the finished ones never again.
    let later = |at| a.claim_due_webhook_deliveries(at, at + 30_000, 64);
    let due = later(t1 + 60_000 - 1).await.unwrap();
    assert!(
        due.iter()
            .all(|d| &d.id != d1 && &d.id != d0 && &d.id != d2)
    );
    assert_eq!(due.len(), 27, "the other claims ran out meanwhile");
    let due = later(t1 + 60_000 + 30_000).await.unwrap();
    assert!(due.iter().any(|d| &d.id == d1));
    assert!(due.iter().all(|d| &d.id != d0 && &d.id != d2));

    // Scoped by account, and a deleted endpoint's queue is emptied.
    let other = a.create_account("B", t0).await.unwrap().account.id;
    assert!(
        a.list_webhook_deliveries(&other, &endpoint, 10)
            .await
            .is_err()
    );
    assert!(
        a.delete_webhook_endpoint(&other, &endpoint, t1)
            .await
            .is_err()
    );
    a.delete_webhook_endpoint(&account, &endpoint, t1)
        .await
        .unwrap();
    assert!(a.list_webhook_endpoints(&account).await.unwrap().is_empty());
    assert!(later(t1 + 86_400_000).await.unwrap().is_empty());
    assert_eq!(
        a.enqueue_event(&account, "t", "k99", &json!({}), t1)
            .await
            .unwrap(),
        0
    );
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn queue_story_sqlite() {
    queue_story(test_db(Backend::Sqlite).await.unwrap()).await;
}

#[tokio::test]
async fn queue_story_postgres() {
    if let Some(db) = test_db(Backend::Postgres).await {
        queue_story(db).await;
    }
}

async fn https_endpoints_are_called_over_tls(app: TestApp) {
    // A plain-HTTP server at an https:// URL: the client speaks TLS to it, so the handshake
    // fails (rather than the request going out in clear, or the scheme being unsupported).
    let receiver = Receiver::start(0).await;
    let url = receiver.url.replacen("http://", "https://", 1);
    let endpoint = create_endpoint(&app, &app.api_key, &url).await;
    enqueue(&app, &app.account_id, "tls", json!({})).await;
    deliver(&app).await;
    assert_eq!(receiver.count(), 0, "nothing arrived in clear");
    let history = deliveries(&app, &app.api_key, id_of(&endpoint)).await;
    let error = history[0]["last_error"].as_str().unwrap();
    assert_eq!(error, "TLS handshake failed");
    receiver.stop().await;
}

/// Log lines captured in memory (the test's thread runs the app's worker too).
#[derive(Clone, Default)]
pub(crate) struct LogBuffer(Arc<Mutex<Vec<u8>>>);

/// Keeps a [`LogBuffer`] capturing.
pub(crate) struct Capturing {
    _default: tracing::subscriber::DefaultGuard,
    _second: tracing::Dispatch,
}

impl LogBuffer {
    /// Captures this thread's logs, debug level and up, while the guard lives.
    pub(crate) fn capture() -> (Self, Capturing) {
        // A second live dispatcher first: with a single one, tracing works out a log line's
        // interest from the thread that reaches it first, and another test's thread (logging
        // nowhere) would switch the line off for this test too.
        let second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
        let logs = LogBuffer::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let guard = Capturing {
            _default: tracing::subscriber::set_default(subscriber),
            _second: second,
        };
        (logs, guard)
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn delivery_logs_show_neither_the_secret_nor_the_urls_query() {
    let (logs, _guard) = LogBuffer::capture();
    let app = crate::helpers::spawn_app(Backend::Sqlite).await;
    let receiver = Receiver::start(1).await;
    let url = receiver.url.replace("token=abc", "token=tok-secret-8812");
    let endpoint = create_endpoint(&app, &app.api_key, &url).await;
    let secret = endpoint["secret"].as_str().unwrap();
    enqueue(&app, &app.account_id, "logged", json!({})).await;
    deliver(&app).await;
    app.clock.advance_ms(10_000);
    deliver(&app).await;
    assert_eq!(receiver.count(), 2);

    let text = logs.text();
    assert!(text.contains("webhook attempt failed"), "{text}");
    assert!(text.contains("webhook delivered"), "{text}");
    assert!(
        text.contains("/hooks/switchboard"),
        "the URL's path is shown: {text}"
    );
    for hidden in [secret, "tok-secret-8812", &secret["whsec_".len()..]] {
        assert!(!text.contains(hidden), "{hidden} leaked into: {text}");
    }
    receiver.stop().await;
}

/// The call pipeline end to end: a call that completes is announced once to the account's
/// endpoint, signed, with its attribution, however often Twilio repeats the last callback.
#[tokio::test]
async fn a_completed_call_is_announced_once_with_its_attribution() {
    use crate::calls::{CALLER, attributed, dial, twilio, twilio_app};
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = twilio_app(backend, None).await else {
            continue;
        };
        let receiver = Receiver::start(0).await;
        let endpoint = create_endpoint(&app, &app.api_key, &receiver.url).await;
        let property_id = app.create_property(&app.api_key).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        app.create_pool(&app.api_key, &property_id, &["+14155550400"])
            .await;
        let key = app.storage.list_properties(&app.account_id).await.unwrap()[0]
            .public_key
            .clone();
        app.new_visitor(
            &key,
            "https://www.acme.example/?utm_source=google&utm_medium=cpc&utm_campaign=winter",
        )
        .await;
        dial(&app, "CAannounce", CALLER, "+14155550400").await;
        for _ in 0..3 {
            let (status, _) = twilio(
                &app,
                "/v1/telephony/twilio/dial?tn=%2B14155550400",
                &[
                    ("CallSid", "CAannounce"),
                    ("DialCallStatus", "completed"),
                    ("DialCallDuration", "95"),
                ],
            )
            .await;
            assert_eq!(status, StatusCode::OK);
        }
        let call = attributed(&app, "CAannounce").await;
        for _ in 0..100 {
            app.state.calls.wake();
            deliver(&app).await;
            if receiver.count() > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        deliver(&app).await;
        let seen = receiver.seen();
        assert_eq!(seen.len(), 1, "announced once");
        let got = &seen[0];
        let secret = endpoint["secret"].as_str().unwrap();
        verify_signature(
            secret,
            got.header("switchboard-signature"),
            &got.body,
            now_secs(&app),
            FIVE_MINUTES,
        )
        .expect("signed with the endpoint's secret");
        assert_eq!(
            got.header("idempotency-key"),
            format!("call.completed:{}", call.id)
        );
        let event = got.json();
        assert_eq!(event["type"], "call.completed");
        let data = &event["data"];
        assert_eq!(data["id"], call.id.as_str());
        assert_eq!(data["outcome"], "answered");
        assert_eq!(data["qualified"], true);
        assert_eq!(data["attribution"]["confidence"], "exact");
        assert_eq!(data["attribution"]["campaign"], "winter");
        assert_eq!(data["caller"]["number"], CALLER);
        receiver.stop().await;
    }
}
