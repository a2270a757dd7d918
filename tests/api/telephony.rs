//! Twilio's voice webhook: signed requests are routed from memory, forged ones recorded nowhere.

use reqwest::StatusCode;
use serde_json::json;
use switchboard::telephony::twilio_signature;
use switchboard::time::Clock;

use crate::helpers::{Backend, TestApp, error_of, spawn_app_with, start_app};

const PUBLIC: &str = "https://calls.example.com";
const TOKEN: &str = "twilio-test-token-0123456789";
const VOICE: &str = "/v1/telephony/twilio/voice";

async fn app_with_twilio(backend: Backend) -> Option<TestApp> {
    spawn_app_with(
        backend,
        &[("public_url", PUBLIC), ("twilio_auth_token", TOKEN)],
    )
    .await
}

fn voice_params(to: &str) -> Vec<(String, String)> {
    [
        ("CallSid", "CA0123456789abcdef0123456789abcdef"),
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("From", "+14155559999"),
        ("To", to),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
        ("FromCity", "SAN FRANCISCO"),
        ("CallerName", "Jane & Co <VIP>"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Posts the form as Twilio does, signed over `signed_url` (by default the public URL).
async fn twilio_post(
    app: &TestApp,
    params: &[(String, String)],
    signature: Option<String>,
) -> reqwest::Response {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let mut req = app
        .client
        .post(app.url(VOICE))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(sig) = signature {
        req = req.header("x-twilio-signature", sig);
    }
    req.send().await.unwrap()
}

fn sign(url: &str, params: &[(String, String)]) -> String {
    twilio_signature::compute(TOKEN.as_bytes(), url, params)
}

/// A property forwarding to +14155550101 with tracking number +14155550110.
async fn tracked(app: &TestApp) -> String {
    let p = app.create_property(&app.api_key).await;
    let pool = app
        .create_pool(&app.api_key, p["id"].as_str().unwrap(), &["+14155550110"])
        .await;
    pool["id"].as_str().unwrap().to_owned()
}

async fn routed(app: &TestApp, to: &str) -> String {
    let params = voice_params(to);
    let res = twilio_post(
        app,
        &params,
        Some(sign(&format!("{PUBLIC}{VOICE}"), &params)),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/xml")
    );
    res.text().await.unwrap()
}

#[tokio::test]
async fn a_signed_call_is_forwarded_to_the_business_on_both_databases() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = app_with_twilio(backend).await else {
            continue;
        };
        tracked(&app).await;
        let twiml = routed(&app, "+14155550110").await;
        assert!(
            twiml.contains(
                "<Dial callerId=\"+14155559999\" timeout=\"20\" answerOnBridge=\"true\" record=\"do-not-record\""
            ),
            "{twiml}"
        );
        assert!(twiml.contains(">+14155550101</Number>"), "{twiml}");
        // A national spelling of the same number routes too.
        assert!(
            routed(&app, "+1 (415) 555-0110")
                .await
                .contains(">+14155550101</Number>")
        );
    }
}

#[tokio::test]
async fn unsigned_forged_and_misaddressed_requests_are_refused() {
    let app = app_with_twilio(Backend::Sqlite).await.unwrap();
    tracked(&app).await;
    let params = voice_params("+14155550110");
    let (status, err) = error_of(twilio_post(&app, &params, None).await).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("missing_signature"))
    );

    let forged = twilio_signature::compute(b"another-token", &format!("{PUBLIC}{VOICE}"), &params);
    let (status, err) = error_of(twilio_post(&app, &params, Some(forged)).await).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("invalid_signature"))
    );

    // Signed for other parameters (the caller changed in transit), or for another URL.
    let mut tampered = params.clone();
    tampered[2].1 = "+14155558888".into();
    let sig = sign(&format!("{PUBLIC}{VOICE}"), &params);
    assert_eq!(
        twilio_post(&app, &tampered, Some(sig)).await.status(),
        StatusCode::FORBIDDEN
    );
    let sig = sign(&format!("https://elsewhere.example.com{VOICE}"), &params);
    assert_eq!(
        twilio_post(&app, &params, Some(sig)).await.status(),
        StatusCode::FORBIDDEN
    );

    // Twilio's default-port quirk: signed with :443 spelled out, still ours.
    let sig = sign(&format!("https://calls.example.com:443{VOICE}"), &params);
    assert_eq!(
        twilio_post(&app, &params, Some(sig)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn unknown_and_retired_numbers_hear_a_polite_message() {
    let app = app_with_twilio(Backend::Sqlite).await.unwrap();
    let pool = tracked(&app).await;
    let twiml = routed(&app, "+14155550177").await;
    assert!(
        twiml.contains("<Say>") && twiml.contains("<Hangup/>"),
        "{twiml}"
    );
    assert!(!twiml.contains("<Dial"));
    assert!(routed(&app, "not a number").await.contains("<Hangup/>"));

    let res = app
        .delete(
            &format!("/v1/pools/{pool}/numbers/+14155550110"),
            &app.api_key,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        routed(&app, "+14155550110").await.contains("<Hangup/>"),
        "retired at once"
    );
    // And a number bought later routes at once.
    let res = app
        .post(
            &format!("/v1/pools/{pool}/numbers"),
            &app.api_key,
            &json!({"numbers": ["+14155550112"]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert!(
        routed(&app, "+14155550112")
            .await
            .contains(">+14155550101</Number>")
    );
}

/// Invariant 3: a call always gets a routing answer, whichever of the database and Redis is down.
#[tokio::test]
async fn calls_still_ring_through_with_the_database_and_redis_unreachable() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[
            ("public_url", PUBLIC),
            ("twilio_auth_token", TOKEN),
            ("redis_url", "redis://127.0.0.1:1"),
        ],
    )
    .await
    .unwrap();
    tracked(&app).await;
    // The database goes away: every query now fails.
    app.storage.close().await;
    let health: serde_json::Value = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        health["components"]["database"]["status"], "error",
        "{health}"
    );
    let twiml = routed(&app, "+14155550110").await;
    assert!(twiml.contains(">+14155550101</Number>"), "{twiml}");
    // The operator sees the call waiting.
    let health: serde_json::Value = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let telephony = &health["components"]["telephony"];
    assert_eq!(telephony["status"], "error", "{health}");
    assert!(
        telephony["message"]
            .as_str()
            .unwrap()
            .contains("1 numbers routed from memory; 1 call events waiting"),
        "{health}"
    );
}

#[tokio::test]
async fn without_a_twilio_token_nothing_is_trusted() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await.unwrap();
    let params = voice_params("+14155550110");
    let (status, err) = error_of(twilio_post(&app, &params, Some("anything".into())).await).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("twilio_not_configured"))
    );
}

/// Waits (up to 5 s) for the spool's replay to store `n` calls of the property.
async fn calls_of(
    app: &TestApp,
    property_id: &str,
    n: usize,
) -> Vec<switchboard::storage::CallRow> {
    for _ in 0..100 {
        let calls = app.storage.calls_of_property(property_id).await.unwrap();
        if calls.len() >= n {
            return calls;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{n} call(s) were not recorded");
}

/// Invariant 2: a routed call is recorded once, however often Twilio repeats the webhook.
#[tokio::test]
async fn a_routed_call_is_recorded_once_with_the_callers_details() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = app_with_twilio(backend).await else {
            continue;
        };
        tracked(&app).await;
        let property_id = app.storage.list_properties(&app.account_id).await.unwrap()[0]
            .id
            .clone();
        for _ in 0..3 {
            routed(&app, "+14155550110").await;
        }
        let calls = calls_of(&app, &property_id, 1).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let calls_later = app.storage.calls_of_property(&property_id).await.unwrap();
        assert_eq!(calls_later.len(), 1, "three deliveries, one call");
        let c = &calls[0].call;
        assert_eq!(c.provider_call_id, "CA0123456789abcdef0123456789abcdef");
        assert_eq!(c.tracking_number, "+14155550110");
        assert_eq!(c.caller_number.as_deref(), Some("+14155559999"));
        assert_eq!(c.caller_city.as_deref(), Some("SAN FRANCISCO"));
        assert_eq!(c.caller_name.as_deref(), Some("Jane & Co <VIP>"));
        assert_eq!(c.status, "ringing");
        assert_eq!(c.started_at, app.clock.now_ms());
    }
}

/// With the database unreachable the call rings through and waits in the spool; the next
/// process on that spool records it.
#[tokio::test]
async fn a_call_taken_while_the_database_is_down_is_recorded_at_the_next_start() {
    let app = app_with_twilio(Backend::Sqlite).await.unwrap();
    tracked(&app).await;
    let property_id = app.storage.list_properties(&app.account_id).await.unwrap()[0]
        .id
        .clone();
    let spool = tempfile::tempdir().unwrap();
    let spool_dir = spool.path().display().to_string();
    let settings: &[(&str, &str)] = &[
        ("public_url", PUBLIC),
        ("twilio_auth_token", TOKEN),
        ("spool_dir", &spool_dir),
    ];
    let down = start_app(
        &app.db_url,
        Backend::Sqlite,
        settings,
        Some(app.clock.clone()),
    )
    .await;
    down.storage.close().await; // this instance's database connections are gone
    let twiml = routed(&down, "+14155550110").await;
    assert!(twiml.contains(">+14155550101</Number>"), "{twiml}");
    down.stop().await;
    assert!(
        app.storage
            .calls_of_property(&property_id)
            .await
            .unwrap()
            .is_empty()
    );

    let _restarted = start_app(
        &app.db_url,
        Backend::Sqlite,
        settings,
        Some(app.clock.clone()),
    )
    .await;
    let calls = calls_of(&app, &property_id, 1).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].call.caller_number.as_deref(), Some("+14155559999"));
}
