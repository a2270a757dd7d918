//! Numbers and destinations: an account cannot take the number another account just retired
//! (and so its former callers), nor have calls forwarded to premium-rate, shared-cost or
//! far-away destinations billed to the operator.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, error_of, property_body, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(a_retired_number_stays_with_its_account_for_the_quarantine);

async fn a_retired_number_stays_with_its_account_for_the_quarantine(app: TestApp) {
    let a = app.api_key.clone();
    let pa = app.create_property(&a).await;
    let pool_a = app
        .create_pool(&a, pa["id"].as_str().unwrap(), &["+14155550610"])
        .await;
    let pool_a = pool_a["id"].as_str().unwrap();
    let res = app
        .delete(&format!("/v1/pools/{pool_a}/numbers/%2B14155550610"), &a)
        .await;
    assert_eq!(res.status(), StatusCode::OK);

    let b = app.new_account_key("Account B").await;
    let pb = app.create_property(&b).await;
    let pid_b = pb["id"].as_str().unwrap();
    let res = app
        .post(
            &format!("/v1/properties/{pid_b}/pools"),
            &b,
            &json!({"name": "Taken", "kind": "session", "numbers": ["+1 415 555 0610"]}),
        )
        .await;
    let (status, err) = error_of(res).await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert_eq!(err["code"], "number_quarantined");
    // Nor by adding it to a pool B already has.
    let pool_b = app.create_pool(&b, pid_b, &["+14155550611"]).await;
    let res = app
        .post(
            &format!("/v1/pools/{}/numbers", pool_b["id"].as_str().unwrap()),
            &b,
            &json!({"numbers": ["+14155550610"]}),
        )
        .await;
    assert_eq!(error_of(res).await.0, StatusCode::CONFLICT);
    // The account that retired it may take it back.
    let res = app
        .post(
            &format!("/v1/pools/{pool_a}/numbers"),
            &a,
            &json!({"numbers": ["+14155550610"]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn without_a_quarantine_a_retired_number_is_free() {
    let app = spawn_app_with(Backend::Sqlite, &[("number_quarantine_days", "0")])
        .await
        .unwrap();
    let pa = app.create_property(&app.api_key).await;
    let pool = app
        .create_pool(&app.api_key, pa["id"].as_str().unwrap(), &["+14155550620"])
        .await;
    let res = app
        .delete(
            &format!(
                "/v1/pools/{}/numbers/%2B14155550620",
                pool["id"].as_str().unwrap()
            ),
            &app.api_key,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let b = app.new_account_key("Account B").await;
    let pb = app.create_property(&b).await;
    app.create_pool(&b, pb["id"].as_str().unwrap(), &["+14155550620"])
        .await;
}

async fn refused(res: reqwest::Response, field: &str) -> Value {
    let (status, err) = error_of(res).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["field"], field, "{err}");
    err
}

#[tokio::test]
async fn calls_are_never_forwarded_to_premium_rate_or_unallowed_countries() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await.unwrap();
    let key = app.api_key.clone();
    for (field, costly) in [
        ("forward_to", "+1 900 555 0199"),
        ("forward_to", "+44 70 1234 5678"),
        ("default_number", "+1 900 555 0199"),
    ] {
        let mut body = property_body();
        body[field] = json!(costly);
        let err = refused(app.post("/v1/properties", &key, &body).await, field).await;
        assert!(
            err["message"]
                .as_str()
                .unwrap()
                .contains("calls are not sent"),
            "{err}"
        );
    }
    // Comoros, for a business in the US: not by default.
    let mut body = property_body();
    body["forward_to"] = json!("+269 773 1234");
    refused(app.post("/v1/properties", &key, &body).await, "forward_to").await;
    // Nor by changing it later.
    let property = app.create_property(&key).await;
    let id = property["id"].as_str().unwrap();
    for to in ["+1 900 555 0199", "+269 773 1234", "+1 613 555 0101"] {
        let res = app
            .client
            .patch(app.url(&format!("/v1/properties/{id}")))
            .bearer_auth(&key)
            .json(&json!({"forward_to": to}))
            .send()
            .await
            .unwrap();
        refused(res, "forward_to").await;
    }
    let res = app
        .post(
            &format!("/v1/properties/{id}/pools"),
            &key,
            &json!({"name": "P", "kind": "session", "numbers": ["+14155550630"],
                    "exhaustion": "overflow", "overflow_number": "+1 900 555 0199"}),
        )
        .await;
    refused(res, "overflow_number").await;

    // The operator allows more countries; premium rate stays refused.
    let wider = spawn_app_with(Backend::Sqlite, &[("forward_countries", "US,CA,KM")])
        .await
        .unwrap();
    let mut body = property_body();
    body["forward_to"] = json!("+269 773 1234");
    let res = wider.post("/v1/properties", &wider.api_key, &body).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    body["forward_to"] = json!("+1 900 555 0199");
    refused(
        wider.post("/v1/properties", &wider.api_key, &body).await,
        "forward_to",
    )
    .await;
}
