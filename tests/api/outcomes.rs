//! What calls led to: the lead rule applied as calls complete, conversions (by call id or by
//! caller and time), and the business's disposition, scores and tags.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::calls::{CALLER, attributed, call_json, dial, twilio, twilio_app};
use crate::helpers::{Backend, TestApp, error_of};

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    key: &str,
    body: &Value,
) -> reqwest::Response {
    app.client
        .request(method, app.url(path))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// A completed call to a fresh property: `talk_s` seconds answered, or missed when 0.
async fn completed_call(app: &TestApp, sid: &str, from: &str, talk_s: u32) -> Value {
    let properties = app.storage.list_properties(&app.account_id).await.unwrap();
    let property_id = match properties.first() {
        Some(p) => p.id.clone(),
        None => {
            let id = app.create_property(&app.api_key).await["id"]
                .as_str()
                .unwrap()
                .to_owned();
            app.create_pool(&app.api_key, &id, &["+14155550300"]).await;
            id
        }
    };
    let _ = property_id;
    call_through(app, sid, from, "+14155550300", talk_s).await
}

/// `from` calls the tracking number `to` and talks `talk_s` seconds (0: missed); returns the
/// call as the API shows it once it completed (attributed, lead rule applied).
pub async fn call_through(app: &TestApp, sid: &str, from: &str, to: &str, talk_s: u32) -> Value {
    dial(app, sid, from, to).await;
    let talk = talk_s.to_string();
    let status = if talk_s > 0 { "completed" } else { "no-answer" };
    let (code, _) = twilio(
        app,
        &format!("/v1/telephony/twilio/dial?tn={}", to.replace('+', "%2B")),
        &[
            ("CallSid", sid),
            ("DialCallStatus", status),
            ("DialCallDuration", &talk),
        ],
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let row = attributed(app, sid).await;
    for _ in 0..100 {
        let view = call_json(app, &row.id).await;
        if !view["qualified"].is_null() {
            return view;
        }
        app.state.calls.wake();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("call {sid} never completed");
}

#[tokio::test]
async fn the_lead_rule_marks_long_answered_calls_qualified_as_they_complete() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = twilio_app(backend, None).await else {
            continue;
        };
        let long = completed_call(&app, "CAlong", CALLER, 75).await;
        assert_eq!(long["qualified"], true, "{long}");
        assert_eq!(long["outcome"], "answered");
        let short = completed_call(&app, "CAshort", "+14155551111", 30).await;
        assert_eq!(short["qualified"], false);
        let missed = completed_call(&app, "CAmissed", "+14155552222", 0).await;
        assert_eq!(
            (missed["qualified"].clone(), missed["outcome"].clone()),
            (json!(false), json!("missed"))
        );

        // Only first-time callers, from now on: the same caller's long second call does not qualify.
        let property_id = long["property_id"].as_str().unwrap();
        let res = send(
            &app,
            reqwest::Method::PATCH,
            &format!("/v1/properties/{property_id}"),
            &app.api_key,
            &json!({"lead_rule": {"min_duration_s": 60, "first_time_only": true}}),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        let again = completed_call(&app, "CAagain", CALLER, 90).await;
        assert_eq!(
            (again["first_time"].clone(), again["qualified"].clone()),
            (json!(false), json!(false))
        );
        assert_eq!(
            call_json(&app, long["id"].as_str().unwrap()).await["qualified"],
            true,
            "not retroactive"
        );
    }
}

#[tokio::test]
async fn conversions_add_up_undo_and_find_the_callers_call() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = twilio_app(backend, None).await else {
            continue;
        };
        let call = completed_call(&app, "CAconv", CALLER, 120).await;
        let id = call["id"].as_str().unwrap();
        let path = format!("/v1/calls/{id}/conversion");
        let res = app
            .post(
                &path,
                &app.api_key,
                &json!({"name": "sale", "value": 120.0, "currency": "USD"}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let created: Value = res.json().await.unwrap();
        assert_eq!(
            (created["call_id"].as_str(), created["value"].as_f64()),
            (Some(id), Some(120.0))
        );
        app.post(
            &path,
            &app.api_key,
            &json!({"name": "upsell", "value": 30.25}),
        )
        .await;
        let detail = call_json(&app, id).await;
        assert_eq!(detail["revenue"], 150.25);
        assert_eq!(detail["conversions"].as_array().unwrap().len(), 2);

        let res = send(
            &app,
            reqwest::Method::DELETE,
            &format!("{path}?name=upsell"),
            &app.api_key,
            &json!({}),
        )
        .await;
        assert_eq!(res.json::<Value>().await.unwrap()["deleted"], 1);
        assert_eq!(call_json(&app, id).await["revenue"], 120.0);

        for (body, field) in [
            (
                json!({"name": "sale", "value": 10, "currency": "EUR"}),
                "currency",
            ),
            (json!({"name": "sale", "value": -1}), "value"),
            (json!({"name": " ", "value": 1}), "name"),
        ] {
            let (status, err) = error_of(app.post(&path, &app.api_key, &body).await).await;
            assert_eq!(
                (status, err["field"].as_str()),
                (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
                "{body}"
            );
        }

        // A CRM knows the caller and when: the caller's latest call before then is credited.
        let property_id = call["property_id"].as_str().unwrap();
        let later = chrono::DateTime::from_timestamp_millis(app.clock_now() + 3_600_000).unwrap();
        let res = app
            .post(&format!("/v1/properties/{property_id}/conversions"), &app.api_key,
                &json!({"caller": "(415) 555-9999", "at": later.to_rfc3339(), "name": "booking", "value": 0}))
            .await;
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "a national number without country: {body}"
        );
        let res = app
            .post(
                &format!("/v1/properties/{property_id}/conversions"),
                &app.api_key,
                &json!({"caller": CALLER, "at": later.to_rfc3339(), "name": "booking", "value": 0}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        assert_eq!(
            res.json::<Value>().await.unwrap()["call_id"].as_str(),
            Some(id)
        );
        let (status, err) = error_of(
            app.post(
                &format!("/v1/properties/{property_id}/conversions"),
                &app.api_key,
                &json!({"caller": "+14155550000", "at": later.to_rfc3339(), "name": "booking"}),
            )
            .await,
        )
        .await;
        assert_eq!(
            (status, err["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("no_matching_call"))
        );

        // Another account can do none of it.
        let other = app.new_account_key("Account B").await;
        assert_eq!(
            app.post(&path, &other, &json!({"name": "sale", "value": 1}))
                .await
                .status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            send(&app, reqwest::Method::DELETE, &path, &other, &json!({}))
                .await
                .status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            send(
                &app,
                reqwest::Method::PATCH,
                &format!("/v1/calls/{id}"),
                &other,
                &json!({"csat": 1})
            )
            .await
            .status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            call_json(&app, id).await["conversions"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }
}

crate::with_twilio_on_both_backends!(the_business_sets_a_disposition_scores_and_tags_from_its_list,);

async fn the_business_sets_a_disposition_scores_and_tags_from_its_list(app: TestApp) {
    let call = completed_call(&app, "CAout", CALLER, 61).await;
    let id = call["id"].as_str().unwrap();
    let res = send(&app, reqwest::Method::PATCH, &format!("/v1/calls/{id}"), &app.api_key,
        &json!({"disposition": "Appointment", "lead_score": 80, "csat": 4, "tags": ["new-patient"]})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let view: Value = res.json().await.unwrap();
    assert_eq!(view["disposition"], "appointment");
    assert_eq!(
        (view["lead_score"].clone(), view["csat"].clone()),
        (json!(80), json!(4))
    );
    assert_eq!(view["tags"], json!(["new-patient"]));
    let res = send(
        &app,
        reqwest::Method::PATCH,
        &format!("/v1/calls/{id}"),
        &app.api_key,
        &json!({"csat": null}),
    )
    .await;
    let view: Value = res.json().await.unwrap();
    assert!(view["csat"].is_null());
    assert_eq!(view["disposition"], "appointment", "absent fields stay");

    let (status, err) = error_of(
        send(
            &app,
            reqwest::Method::PATCH,
            &format!("/v1/calls/{id}"),
            &app.api_key,
            &json!({"disposition": "won"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, err["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("disposition"))
    );
    // The property's own list.
    let property_id = call["property_id"].as_str().unwrap();
    let res = send(
        &app,
        reqwest::Method::PATCH,
        &format!("/v1/properties/{property_id}"),
        &app.api_key,
        &json!({"dispositions": ["won", "lost", "spam"]}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<Value>().await.unwrap()["dispositions"],
        json!(["won", "lost", "spam"])
    );
    let res = send(
        &app,
        reqwest::Method::PATCH,
        &format!("/v1/calls/{id}"),
        &app.api_key,
        &json!({"disposition": "won"}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let (status, err) = error_of(
        send(
            &app,
            reqwest::Method::PATCH,
            &format!("/v1/calls/{id}"),
            &app.api_key,
            &json!({"csat": 9}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, err["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("csat"))
    );
}
