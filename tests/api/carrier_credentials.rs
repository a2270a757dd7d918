//! Carrier credentials and call webhooks between tenants (issue 16): a claim on a Twilio
//! account takes no call from its owner or the operator, Twilio proves a token before it is
//! stored, call ids are unique per account, replays are recorded once, tokens are sealed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard::live::Next;

use crate::helpers::{
    Backend, TestApp, error_of, post_signed_twilio, spawn_app_with, spawn_sibling, start_app,
};

const PUBLIC: &str = "https://calls.example.com";
const OPERATOR_TOKEN: &str = "operator-twilio-token-0123456789";
const OPERATOR_SID: &str = "AC0000000000000000000000000000aaaa";
const SID_A: &str = "AC00000000000000000000000000000a01";
const TOKEN_A: &str = "account-a-own-twilio-token";
const SQUATTER_TOKEN: &str = "the-squatters-own-token-000";
const CALLER: &str = "+14155559999";

fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A voice webhook signed with `token` for Twilio account `sid`: its status and TwiML.
async fn voice(
    app: &TestApp,
    token: &str,
    sid: &str,
    call: &str,
    to: &str,
) -> (StatusCode, String) {
    let params = form(&[
        ("CallSid", call),
        ("AccountSid", sid),
        ("From", CALLER),
        ("To", to),
    ]);
    let res = post_signed_twilio(
        &app.client,
        &app.address,
        PUBLIC,
        token,
        "/v1/telephony/twilio/voice",
        &params,
    )
    .await;
    (res.status(), res.text().await.unwrap())
}

fn forwarded(twiml: &str) -> bool {
    twiml.contains("<Dial")
}

async fn connect(app: &TestApp, key: &str, sid: &str, token: &str) -> reqwest::Response {
    app.put(
        "/v1/account/telephony",
        key,
        &json!({"twilio_account_sid": sid, "twilio_auth_token": token}),
    )
    .await
}

/// A property of `key`'s account with tracking numbers `numbers`; its id.
async fn property_with(app: &TestApp, key: &str, numbers: &[&str]) -> String {
    let p = app.create_property(key).await;
    let id = p["id"].as_str().unwrap().to_owned();
    app.create_pool(key, &id, numbers).await;
    id
}

/// Waits until the spool is stored, and returns the property's calls.
async fn stored_calls(app: &TestApp, property_id: &str) -> Vec<switchboard::storage::CallRow> {
    for _ in 0..100 {
        app.state.calls.wake();
        if app.state.calls.is_drained() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.storage.calls_of_property(property_id).await.unwrap()
}

/// A stand-in for Twilio's API on 127.0.0.1: `GET /2010-04-01/Accounts/{sid}.json` answers 200
/// under basic auth with a known (sid, token), 401 otherwise.
struct FakeTwilio {
    base: String,
    asked: Arc<AtomicUsize>,
    handle: actix_web::dev::ServerHandle,
}

async fn fake_twilio(accounts: &[(&str, &str)]) -> FakeTwilio {
    let known: Arc<Vec<String>> = Arc::new(
        accounts
            .iter()
            .map(|(sid, token)| {
                base64::engine::general_purpose::STANDARD.encode(format!("{sid}:{token}"))
            })
            .collect(),
    );
    let asked = Arc::new(AtomicUsize::new(0));
    let (known_, asked_) = (known.clone(), asked.clone());
    let server = HttpServer::new(move || {
        let (known, asked) = (known_.clone(), asked_.clone());
        App::new().route(
            "/2010-04-01/Accounts/{file}",
            web::get().to(move |req: HttpRequest, file: web::Path<String>| {
                let (known, asked) = (known.clone(), asked.clone());
                async move {
                    asked.fetch_add(1, Ordering::SeqCst);
                    let presented = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Basic "))
                        .unwrap_or_default()
                        .to_owned();
                    let sid = file.trim_end_matches(".json");
                    let user_is_sid = base64::engine::general_purpose::STANDARD
                        .decode(&presented)
                        .ok()
                        .and_then(|b| String::from_utf8(b).ok())
                        .is_some_and(|p| p.starts_with(&format!("{sid}:")));
                    if user_is_sid && known.contains(&presented) {
                        HttpResponse::Ok().json(json!({"sid": sid, "status": "active"}))
                    } else {
                        HttpResponse::Unauthorized().json(json!({"code": 20003}))
                    }
                }
            }),
        )
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let port = server.addrs()[0].port();
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    FakeTwilio {
        base: format!("http://127.0.0.1:{port}"),
        asked,
        handle,
    }
}

#[tokio::test]
async fn the_operators_own_twilio_account_cannot_be_claimed() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[
            ("public_url", PUBLIC),
            ("twilio_auth_token", OPERATOR_TOKEN),
            ("twilio_account_sid", OPERATOR_SID),
        ],
    )
    .await
    .unwrap();
    let key_b = app.new_account_key("Account B").await;
    // However it is spelled.
    for sid in [OPERATOR_SID, &OPERATOR_SID.to_ascii_uppercase()] {
        let res = connect(&app, &key_b, sid, SQUATTER_TOKEN).await;
        refused(res, "operator_twilio_account", "twilio_account_sid").await;
    }
    assert_eq!(connected_sid(&app, &key_b).await, Value::Null);
}

/// Asserts a `422` with this code, naming this field.
async fn refused(res: reqwest::Response, code: &str, field: &str) {
    let (status, err) = error_of(res).await;
    assert_eq!(
        (status, err["code"].as_str(), err["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some(code), Some(field))
    );
}

/// The Twilio account the account has connected, as its settings say.
async fn connected_sid(app: &TestApp, key: &str) -> Value {
    let settings: Value = app
        .get("/v1/account/telephony", key)
        .await
        .json()
        .await
        .unwrap();
    settings["twilio_account_sid"].clone()
}

/// Twilio's API proves the token: a wrong one is refused (nothing stored), the owner connects
/// its account, and an API that cannot be reached stores nothing either.
#[tokio::test]
async fn twilio_proves_a_token_before_it_is_stored() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let twilio = fake_twilio(&[(SID_A, TOKEN_A)]).await;
        let Some(app) = spawn_app_with(
            backend,
            &[("public_url", PUBLIC), ("twilio_api_base", &twilio.base)],
        )
        .await
        else {
            continue;
        };
        let key_b = app.new_account_key("Account B").await;
        let res = connect(&app, &key_b, SID_A, SQUATTER_TOKEN).await;
        refused(res, "twilio_credentials_refused", "twilio_auth_token").await;
        assert_eq!(connected_sid(&app, &key_b).await, Value::Null);
        let res = connect(&app, &app.api_key, SID_A, TOKEN_A).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(twilio.asked.load(Ordering::SeqCst), 2);

        // Twilio's API out of reach (a loopback port nobody listens on): nothing is stored.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let unreachable = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let sibling = spawn_sibling(
            &app,
            &[("public_url", PUBLIC), ("twilio_api_base", &unreachable)],
        )
        .await;
        let (status, err) = error_of(connect(&sibling, &key_b, SID_A, TOKEN_A).await).await;
        assert_eq!(
            (status, err["code"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("twilio_unreachable"))
        );
        assert_eq!(connected_sid(&app, &key_b).await, Value::Null);
        twilio.handle.stop(false).await;
    }
}

/// Without the proof (turned off, or a Twilio account the operator did not name), a claim on
/// someone else's Twilio account still takes no call from them: the operator's and the owner's
/// signed webhooks route as before, the squatter's token reaches none of their numbers, and the
/// owner connects its account after the squatter.
#[tokio::test]
async fn a_claim_on_someone_elses_twilio_account_takes_no_call_from_them() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = spawn_app_with(
            backend,
            &[
                ("public_url", PUBLIC),
                ("twilio_auth_token", OPERATOR_TOKEN),
            ],
        )
        .await
        else {
            continue;
        };
        let property = property_with(&app, &app.api_key, &["+14155550401", "+14155550402"]).await;
        let key_b = app.new_account_key("Account B").await;
        let key_c = app.new_account_key("Account C").await;
        assert_eq!(
            connect(&app, &key_b, OPERATOR_SID, SQUATTER_TOKEN)
                .await
                .status(),
            StatusCode::OK
        );
        assert_eq!(
            connect(&app, &key_c, SID_A, SQUATTER_TOKEN).await.status(),
            StatusCode::OK
        );
        // The owner connects its own Twilio account after the squatter did.
        assert_eq!(
            connect(&app, &app.api_key, SID_A, TOKEN_A).await.status(),
            StatusCode::OK
        );

        let (status, twiml) =
            voice(&app, OPERATOR_TOKEN, OPERATOR_SID, "CAop1", "+14155550401").await;
        assert_eq!(status, StatusCode::OK, "{twiml}");
        assert!(
            forwarded(&twiml),
            "the operator's call rings through: {twiml}"
        );
        let (status, twiml) = voice(&app, TOKEN_A, SID_A, "CAa1", "+14155550402").await;
        assert_eq!(status, StatusCode::OK, "{twiml}");
        assert!(forwarded(&twiml), "the owner's call rings through: {twiml}");
        for (sid, call, to) in [
            (OPERATOR_SID, "CAb1", "+14155550401"),
            (SID_A, "CAc1", "+14155550402"),
        ] {
            let (status, twiml) = voice(&app, SQUATTER_TOKEN, sid, call, to).await;
            assert_eq!(status, StatusCode::OK);
            assert!(
                twiml.contains("<Hangup/>") && !forwarded(&twiml),
                "a squatter's token reaches none of A's numbers: {twiml}"
            );
        }
        let mut calls: Vec<String> = stored_calls(&app, &property)
            .await
            .into_iter()
            .map(|c| c.call.provider_call_id)
            .collect();
        calls.sort();
        assert_eq!(calls, ["CAa1", "CAop1"]);
    }
}

async fn post_generic(app: &TestApp, secret: &str, body: &Value) -> (StatusCode, Value) {
    crate::calls::generic(app, Some(secret), body).await
}

async fn calls_secret(app: &TestApp, key: &str) -> String {
    let res = app
        .post("/v1/account/telephony/calls-secret", key, &json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json::<Value>().await.unwrap()["calls_secret"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A provider's call id is unique within an account: B posting A's call id first neither
/// drops A's call nor receives A's later events.
#[tokio::test]
async fn the_same_call_id_in_two_accounts_is_two_calls() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = spawn_app_with(backend, &[]).await else {
            continue;
        };
        let key_b = app.new_account_key("Account B").await;
        let property_a = property_with(&app, &app.api_key, &["+14155550411"]).await;
        let property_b = property_with(&app, &key_b, &["+14155550412"]).await;
        let (secret_a, secret_b) = (
            calls_secret(&app, &app.api_key).await,
            calls_secret(&app, &key_b).await,
        );
        let event = |kind: &str, to: &str, extra: Value| {
            let mut body =
                json!({"event": kind, "provider": "telnyx", "call_id": "v3:same", "to": to});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            body
        };
        for (secret, to) in [(&secret_b, "+14155550412"), (&secret_a, "+14155550411")] {
            let (status, answer) = post_generic(
                &app,
                secret,
                &event("call.started", to, json!({"from": CALLER})),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{answer}");
        }
        let updates = [
            (
                &secret_a,
                "+14155550411",
                json!({"status": "completed", "answered": true, "duration_s": 42}),
            ),
            (&secret_b, "+14155550412", json!({"status": "busy"})),
        ];
        for (secret, to, extra) in updates {
            let (status, answer) =
                post_generic(&app, secret, &event("call.updated", to, extra)).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        }
        let a = stored_calls(&app, &property_a).await;
        let b = stored_calls(&app, &property_b).await;
        assert_eq!((a.len(), b.len()), (1, 1), "each account has its own call");
        assert_eq!(a[0].call.account_id, app.account_id);
        assert_eq!(
            (
                a[0].call.status.as_str(),
                a[0].outcome.as_deref(),
                a[0].duration_s
            ),
            ("completed", Some("answered"), Some(42))
        );
        assert_ne!(b[0].call.account_id, app.account_id);
        assert_eq!(
            (
                b[0].call.status.as_str(),
                b[0].outcome.as_deref(),
                b[0].duration_s
            ),
            ("busy", Some("missed"), None)
        );
    }
}

/// The webhooks' events a subscriber of the property receives within `wait` (not the
/// background pass's `attributed` and `completed`).
async fn live_events(sub: &mut switchboard::live::Subscription, wait: Duration) -> Vec<Value> {
    let mut events = Vec::new();
    while let Ok(Next::Event(json)) = tokio::time::timeout(wait, sub.next()).await {
        let event: Value = serde_json::from_str(&json).unwrap();
        if !matches!(event["type"].as_str(), Some("attributed" | "completed")) {
            events.push(event);
        }
    }
    events
}

/// The same signed webhook posted twice: answered alike both times (the caller is on the line),
/// spooled and published once; a callback with news is not a replay.
#[tokio::test]
async fn a_replayed_webhook_is_answered_again_but_recorded_once() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[
            ("public_url", PUBLIC),
            ("twilio_auth_token", OPERATOR_TOKEN),
        ],
    )
    .await
    .unwrap();
    let property = property_with(&app, &app.api_key, &["+14155550421"]).await;
    let mut feed = app.state.live.subscribe(&property);
    let before = app.state.calls.last_spooled();
    let first = voice(&app, OPERATOR_TOKEN, OPERATOR_SID, "CArep1", "+14155550421").await;
    let replay = voice(&app, OPERATOR_TOKEN, OPERATOR_SID, "CArep1", "+14155550421").await;
    assert_eq!(first.0, StatusCode::OK);
    assert!(forwarded(&first.1), "{}", first.1);
    assert_eq!(replay, first, "the replay hears the same routing answer");
    assert_eq!(app.state.calls.last_spooled() - before, 1, "spooled once");
    let events = live_events(&mut feed, Duration::from_millis(300)).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "ringing");

    let status = |call_status: &str| {
        form(&[
            ("CallSid", "CArep1"),
            ("AccountSid", OPERATOR_SID),
            ("CallStatus", call_status),
        ])
    };
    let path = "/v1/telephony/twilio/status?tn=%2B14155550421";
    for params in [
        status("in-progress"),
        status("in-progress"),
        status("completed"),
    ] {
        let res = post_signed_twilio(
            &app.client,
            &app.address,
            PUBLIC,
            OPERATOR_TOKEN,
            path,
            &params,
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(
        app.state.calls.last_spooled() - before,
        3,
        "news is spooled, its replay is not"
    );
    let kinds: Vec<Value> = live_events(&mut feed, Duration::from_millis(300))
        .await
        .into_iter()
        .map(|e| e["type"].clone())
        .collect();
    assert_eq!(kinds, [json!("in_progress"), json!("ended")]);
}

/// The tokens are sealed in the database and in the credentials snapshot; clear values of an
/// earlier version are sealed at start; calls verify after a restart.
#[tokio::test]
async fn carrier_secrets_are_sealed_at_rest_and_verify_after_a_restart() {
    // SQLite: a key generated beside the database; PostgreSQL: the configured key.
    let key = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    for (backend, sealing) in [
        (Backend::Sqlite, None),
        (Backend::Postgres, Some(("secrets_key", key.as_str()))),
    ] {
        let mut settings = vec![("public_url", PUBLIC)];
        settings.extend(sealing);
        let Some(app) = spawn_app_with(backend, &settings).await else {
            continue;
        };
        property_with(&app, &app.api_key, &["+14155550431", "+14155550432"]).await;
        assert_eq!(
            connect(&app, &app.api_key, SID_A, TOKEN_A).await.status(),
            StatusCode::OK
        );
        let secret = calls_secret(&app, &app.api_key).await;
        // An account connected by an earlier version, its token in clear.
        let key_c = app.new_account_key("Account C").await;
        property_with(&app, &key_c, &["+14155550433"]).await;
        let account_c = app
            .storage
            .account_for_api_key(&key_c.clone().into())
            .await
            .unwrap()
            .unwrap()
            .id;
        let (sid_c, clear_token_c) = (
            "AC00000000000000000000000000000c03",
            "account-c-clear-token",
        );
        app.storage
            .set_twilio_credentials(&account_c, sid_c, clear_token_c)
            .await
            .unwrap();

        let stored = app
            .storage
            .credentials_of_account(&app.account_id)
            .await
            .unwrap()
            .unwrap();
        let (token_col, secret_col) = (
            stored.twilio_auth_token.unwrap(),
            stored.calls_secret.unwrap(),
        );
        assert!(
            token_col.starts_with("sb1:") && !token_col.contains(TOKEN_A),
            "{token_col}"
        );
        assert!(secret_col.starts_with("sb1:") && !secret_col.contains(&secret));
        app.state.credentials.refresh(&app.storage).await;
        let snapshot =
            std::fs::read_to_string(app.state.settings.spool_dir.join("credentials.json")).unwrap();
        assert!(
            snapshot.contains(&token_col),
            "the snapshot holds the sealed rows"
        );
        assert!(!snapshot.contains(TOKEN_A) && !snapshot.contains(&secret));

        app.stop().await;
        let restarted = start_app(&app.db_url, backend, &settings, None).await;
        let sealed_c = restarted
            .storage
            .credentials_of_account(&account_c)
            .await
            .unwrap()
            .unwrap()
            .twilio_auth_token
            .unwrap();
        assert!(
            sealed_c.starts_with("sb1:") && !sealed_c.contains(clear_token_c),
            "sealed at start: {sealed_c}"
        );
        let (status, twiml) = voice(&restarted, TOKEN_A, SID_A, "CAs1", "+14155550431").await;
        assert!(
            status == StatusCode::OK && forwarded(&twiml),
            "{status} {twiml}"
        );
        let (status, twiml) = voice(&restarted, clear_token_c, sid_c, "CAs2", "+14155550433").await;
        assert!(
            status == StatusCode::OK && forwarded(&twiml),
            "{status} {twiml}"
        );
        let (status, answer) = post_generic(
            &restarted,
            &secret,
            &json!({"event": "call.started", "provider": "telnyx", "call_id": "s3", "to": "+14155550432"}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        restarted.stop().await;
    }
}
