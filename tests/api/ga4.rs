//! GA4 Measurement Protocol, end to end: the snippet's client id kept on the session and the
//! call, a property's GA4 settings, and one event per completed call POSTed to a real local
//! receiver standing in for Google Analytics.

use reqwest::StatusCode;
use serde_json::{Value, json};

use switchboard::changes::Change;
use switchboard::domain::{Ga4Patch, Ga4Settings};

use crate::calls::{CALLER, PUBLIC, TOKEN, property, twilio_app};
use crate::helpers::{Backend, TestApp, Visit, error_of};
use crate::outbound::{RecordingProxy, strict_app};
use crate::outcomes::call_through;
use crate::webhooks::{LogBuffer, Receiver, deliver};

pub(crate) const API_SECRET: &str = "mp-secret-Xy12Zq";
pub(crate) const CLIENT_ID: &str = "1234567890.1700000000";

pub(crate) async fn patch_property(
    app: &TestApp,
    key: &str,
    property_id: &str,
    body: &Value,
) -> reqwest::Response {
    app.client
        .patch(app.url(&format!("/v1/properties/{property_id}")))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// A property with a session pool of `numbers`; returns its id and public key.
pub(crate) async fn property_with_pool(app: &TestApp, numbers: &[&str]) -> (String, String) {
    let property = app.create_property(&app.api_key).await;
    let id = property["id"].as_str().unwrap().to_owned();
    app.pool_with(
        &id,
        json!({"name": "All", "kind": "session", "lease_minutes": 30, "numbers": numbers}),
    )
    .await;
    (id, property["public_key"].as_str().unwrap().to_owned())
}

/// A new visitor from a Google ad, with the given GA client id; returns the number shown.
pub(crate) async fn visit(app: &TestApp, key: &str, ga_client_id: Option<&str>) -> String {
    let (status, _, body) = app
        .visit(&Visit {
            url: "https://www.acme.example/?utm_source=google&utm_medium=cpc&utm_campaign=winter",
            ga_client_id: ga_client_id.map(|id| json!(id)),
            ..Visit::new(key)
        })
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["number"].as_str().unwrap().to_owned()
}

/// Waits until the call's completion is done (webhooks and GA4 event queued, call marked).
pub(crate) async fn completed(app: &TestApp, call: &Value) {
    let id = call["id"].as_str().unwrap();
    for _ in 0..200 {
        let row = app.storage.call(&app.account_id, id).await.unwrap();
        if row.notified_at.is_some() {
            return;
        }
        app.state.calls.wake();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("call {id} never completed");
}

#[tokio::test]
async fn ga4_settings_are_checked_kept_and_never_show_the_secret() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = twilio_app(backend, None).await else {
            continue;
        };
        let property_id = property(&app).await;
        let res = patch_property(
            &app,
            &app.api_key,
            &property_id,
            &json!({"ga4": {"measurement_id": "g-test1234", "api_secret": API_SECRET}}),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        let shown = res.text().await.unwrap();
        assert!(!shown.contains(API_SECRET), "{shown}");
        let shown: Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(
            shown["ga4"],
            json!({"measurement_id": "G-TEST1234", "api_secret_set": true,
                   "endpoint": "https://www.google-analytics.com/mp/collect",
                   "event_name": "phone_call"})
        );

        // A later change keeps the secret; GET shows the settings, never the secret.
        let res = patch_property(
            &app,
            &app.api_key,
            &property_id,
            &json!({"ga4": {"event_name": "tracked_call"}, "lead_rule": {"min_duration_s": 30, "first_time_only": false}}),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        let got = app
            .get(&format!("/v1/properties/{property_id}"), &app.api_key)
            .await
            .text()
            .await
            .unwrap();
        assert!(!got.contains(API_SECRET), "{got}");
        let got: Value = serde_json::from_str(&got).unwrap();
        assert_eq!(got["ga4"]["event_name"], "tracked_call");
        assert_eq!(got["ga4"]["api_secret_set"], true);
        let stored = app.storage.property_by_id(&property_id).await.unwrap();
        use secrecy::ExposeSecret;
        assert_eq!(stored.ga4.unwrap().api_secret.expose_secret(), API_SECRET);

        for (ga4, field) in [
            (json!({"measurement_id": "UA-1-1"}), "ga4.measurement_id"),
            (json!({"api_secret": "x"}), "ga4.api_secret"),
            (json!({"endpoint": "not a url"}), "ga4.endpoint"),
            (json!({"event_name": "google_call"}), "ga4.event_name"),
        ] {
            let body = json!({ "ga4": ga4 });
            let (status, err) =
                error_of(patch_property(&app, &app.api_key, &property_id, &body).await).await;
            assert_eq!(
                (status, err["field"].as_str()),
                (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
                "{body}"
            );
        }
        let (status, err) = error_of(
            patch_property(
                &app,
                &app.api_key,
                &property_id,
                &json!({"ga4": {"secret": "x"}}),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");

        // Another account cannot read or change them.
        let other = app.new_account_key("Account B").await;
        let body = json!({"ga4": null});
        let res = patch_property(&app, &other, &property_id, &body).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);

        // null stops sending.
        let res = patch_property(&app, &app.api_key, &property_id, &body).await;
        assert_eq!(res.json::<Value>().await.unwrap()["ga4"], Value::Null);
        assert!(
            app.storage
                .property_by_id(&property_id)
                .await
                .unwrap()
                .ga4
                .is_none()
        );
    }
}

#[tokio::test]
async fn the_client_id_is_kept_on_the_session_from_the_first_page_view_that_brings_one() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = twilio_app(backend, None).await else {
            continue;
        };
        let (_, key) = property_with_pool(&app, &["+14155550610", "+14155550611"]).await;
        let session_of = |body: &Value| body["session"].as_str().unwrap().to_owned();
        let client_id = |sid: String| {
            let app = &app;
            async move {
                app.flush_ledger().await;
                app.storage
                    .session(&sid)
                    .await
                    .unwrap()
                    .unwrap()
                    .ga_client_id
            }
        };

        let (_, _, first) = app
            .visit(&Visit {
                ga_client_id: Some(json!(CLIENT_ID)),
                ..Visit::new(&key)
            })
            .await;
        assert_eq!(
            client_id(session_of(&first)).await.as_deref(),
            Some(CLIENT_ID)
        );

        // GA set its cookie after the first page view: the second brings the id; a third, with
        // another id, changes nothing.
        let (_, _, late) = app.visit(&Visit::new(&key)).await;
        let sid = session_of(&late);
        assert_eq!(client_id(sid.clone()).await, None);
        for id in ["42.1700000001", "43.1700000002"] {
            let (status, _, _) = app
                .visit(&Visit {
                    session: Some(&sid),
                    ga_client_id: Some(json!(id)),
                    ..Visit::new(&key)
                })
                .await;
            assert_eq!(status, StatusCode::OK);
        }
        assert_eq!(client_id(sid).await.as_deref(), Some("42.1700000001"));

        // Anything else is ignored, and the page still gets its number.
        for bad in [
            json!("GA1.1.1234.5678"),
            json!("1234"),
            json!("12.34.56"),
            json!("<script>"),
            json!(1234.5678),
            json!({"id": CLIENT_ID}),
        ] {
            let (status, _, body) = app
                .visit(&Visit {
                    ga_client_id: Some(bad.clone()),
                    ..Visit::new(&key)
                })
                .await;
            assert_eq!(status, StatusCode::OK, "{bad}");
            assert_eq!(client_id(session_of(&body)).await, None, "{bad}");
        }
    }
}

#[tokio::test]
async fn a_completed_call_is_sent_to_ga4_once_and_only_when_it_can_be() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = twilio_app(backend, None).await else {
            continue;
        };
        // GA4 answers 500 once: the event is tried again on the webhooks' schedule.
        let receiver = Receiver::start(1).await;
        let (property_id, key) =
            property_with_pool(&app, &["+14155550620", "+14155550621", "+14155550622"]).await;
        let ga4 = json!({"ga4": {"measurement_id": "G-TEST1234", "api_secret": API_SECRET,
                                  "endpoint": format!("{}/mp/collect", receiver.base)}});
        let res = patch_property(&app, &app.api_key, &property_id, &ga4).await;
        assert_eq!(res.status(), StatusCode::OK);

        let number = visit(&app, &key, Some(CLIENT_ID)).await;
        let call = call_through(&app, "CAga4", CALLER, &number, 75).await;
        assert_eq!(call["attribution"]["ga_client_id"], CLIENT_ID);
        completed(&app, &call).await;
        deliver(&app).await;
        assert_eq!(receiver.count(), 1, "the first attempt");
        app.clock.advance_ms(10_000);
        deliver(&app).await;
        assert_eq!(receiver.count(), 2, "the retry");
        // Delivered: never again, however often the worker looks or the completion replays.
        for _ in 0..3 {
            app.clock.advance_ms(6 * 3_600_000);
            app.state.calls.wake();
            deliver(&app).await;
        }
        let seen = receiver.seen();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].json(), seen[1].json(), "the same event each time");
        let got = &seen[1];
        assert!(got.uri.starts_with("/mp/collect?"), "{}", got.uri);
        let query = got.query();
        assert_eq!(query["measurement_id"], "G-TEST1234");
        assert_eq!(query["api_secret"], API_SECRET);
        let started = chrono::DateTime::parse_from_rfc3339(call["started_at"].as_str().unwrap())
            .unwrap()
            .timestamp_micros();
        assert_eq!(
            got.json(),
            json!({
                "client_id": CLIENT_ID,
                "timestamp_micros": started,
                "events": [{"name": "phone_call", "params": {
                    "call_id": call["id"], "duration_s": call["duration_s"], "answered": 1,
                    "qualified": 1, "channel": "Paid Search", "source": "google",
                    "medium": "cpc", "campaign": "winter"}}]
            })
        );

        // A visitor without a client id: nothing to send.
        let number = visit(&app, &key, None).await;
        let call = call_through(&app, "CAnoid", "+14155558888", &number, 75).await;
        completed(&app, &call).await;
        deliver(&app).await;
        // A property that does not send GA4 events: nothing either.
        let (_, other_key) = property_with_pool(&app, &["+14155550630"]).await;
        let number = visit(&app, &other_key, Some(CLIENT_ID)).await;
        let call = call_through(&app, "CAnoga4", "+14155557777", &number, 75).await;
        completed(&app, &call).await;
        deliver(&app).await;
        assert_eq!(receiver.count(), 2, "nothing more was sent");
        receiver.stop().await;
    }
}

#[tokio::test]
async fn ga4_logs_never_show_the_api_secret() {
    let (logs, _guard) = LogBuffer::capture();
    let app = twilio_app(Backend::Sqlite, None).await.unwrap();
    let receiver = Receiver::start(1).await;
    let (property_id, key) = property_with_pool(&app, &["+14155550640"]).await;
    let ga4 = json!({"ga4": {"measurement_id": "G-TEST1234", "api_secret": API_SECRET,
                              "endpoint": format!("{}/mp/collect", receiver.base)}});
    assert_eq!(
        patch_property(&app, &app.api_key, &property_id, &ga4)
            .await
            .status(),
        StatusCode::OK
    );
    let number = visit(&app, &key, Some(CLIENT_ID)).await;
    let call = call_through(&app, "CAlogged", CALLER, &number, 75).await;
    completed(&app, &call).await;
    deliver(&app).await;
    app.clock.advance_ms(10_000);
    deliver(&app).await;
    assert_eq!(receiver.count(), 2);

    let text = logs.text();
    assert!(text.contains("GA4 event attempt failed"), "{text}");
    assert!(text.contains("GA4 event delivered"), "{text}");
    assert!(
        text.contains("/mp/collect"),
        "the endpoint's path is shown: {text}"
    );
    assert!(
        !text.contains(API_SECRET),
        "the API secret leaked into: {text}"
    );
    receiver.stop().await;
}

#[tokio::test]
async fn a_ga4_endpoint_saved_before_the_rules_is_refused_at_delivery() {
    let (logs, _guard) = LogBuffer::capture();
    let proxy = RecordingProxy::start().await;
    let settings = [("public_url", PUBLIC), ("twilio_auth_token", TOKEN)];
    let app = strict_app(Backend::Sqlite, Some(&proxy), &settings)
        .await
        .unwrap();
    let (property_id, key) = property_with_pool(&app, &["+14155550650"]).await;
    // Written straight to the database, as if saved before internal addresses were refused.
    let mut property = app
        .storage
        .property(&app.account_id, &property_id)
        .await
        .unwrap();
    let patch: Ga4Patch = serde_json::from_value(json!({"measurement_id": "G-TEST1234",
        "api_secret": API_SECRET, "endpoint": "http://169.254.169.254/mp/collect"}))
    .unwrap();
    property.ga4 = Some(Ga4Settings::patched(None, &patch).unwrap());
    app.storage
        .update_property_settings(&app.account_id, &property)
        .await
        .unwrap();
    app.state
        .changes
        .announce(&[Change::Routes, Change::Property(property_id.clone())])
        .await;

    let number = visit(&app, &key, Some(CLIENT_ID)).await;
    let call = call_through(&app, "CAmetadata", CALLER, &number, 75).await;
    completed(&app, &call).await;
    deliver(&app).await;
    let text = logs.text();
    assert!(
        text.contains("address refused: link-local (cloud metadata)"),
        "{text}"
    );
    assert_eq!(
        proxy.seen(),
        Vec::<String>::new(),
        "nothing left the service"
    );
}
