//! Every bad input gets a clear 4xx in the `{"error":{"code","message"}}` shape, naming the
//! field where there is one, and writes nothing.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_of, property_body};
use crate::on_both_backends;

on_both_backends!(
    bad_bodies_are_rejected_clearly_and_write_nothing,
    bad_api_keys_are_401
);

async fn post_raw(app: &TestApp, path: &str, body: &'static str) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(&app.api_key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn bad_bodies_are_rejected_clearly_and_write_nothing(app: TestApp) {
    let (status, err) = error_of(post_raw(&app, "/v1/properties", "{\"name\": ").await).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed_json"))
    );

    let (status, err) = error_of(post_raw(&app, "/v1/properties", "").await).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed_json"))
    );

    let mut body = property_body();
    body["colour"] = json!("red");
    let (status, err) = error_of(app.post("/v1/properties", &app.api_key, &body).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["code"], "unknown_field");
    assert_eq!(err["field"], "colour");

    // Field-level problems: (field, bad value, expected `field` in the answer).
    let cases: [(&str, Value, &str); 8] = [
        ("default_number", json!("4155550100"), "default_number"),
        ("default_number", json!("+1 555"), "default_number"),
        ("forward_to", json!("call us"), "forward_to"),
        ("default_number", json!(4155550100u64), "default_number"),
        ("timezone", json!("Mars/Olympus"), "timezone"),
        ("currency", json!("XYZ"), "currency"),
        ("domains", json!(["https://acme.example/"]), "domains[0]"),
        ("domains", json!([]), "domains"),
    ];
    for (field, value, expected) in cases {
        let mut body = property_body();
        body[field] = value.clone();
        let (status, err) = error_of(app.post("/v1/properties", &app.api_key, &body).await).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}={value}");
        assert_eq!(err["field"], expected, "{field}={value}: {err}");
        assert!(
            err["message"].as_str().unwrap().contains(expected),
            "the message names the field: {err}"
        );
    }
    let mut body = property_body();
    body.as_object_mut().unwrap().remove("name");
    let (status, err) = error_of(app.post("/v1/properties", &app.api_key, &body).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(err["message"].as_str().unwrap().contains("name"), "{err}");

    // Oversized: a body past the limit (64 KiB by default) is refused while it is read.
    let mut body = property_body();
    body["name"] = json!("x".repeat(70 * 1024));
    let (status, err) = error_of(app.post("/v1/properties", &app.api_key, &body).await).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(err["code"], "payload_too_large");

    // Pools: a bad number names its index; an unknown kind names `kind`.
    let property = app.create_property(&app.api_key).await;
    let pid = property["id"].as_str().unwrap();
    let (status, err) = error_of(
        app.post(
            &format!("/v1/properties/{pid}/pools"),
            &app.api_key,
            &json!({"name": "P", "kind": "session", "numbers": ["+14155550110", "555-0111"]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["field"], "numbers[1]");
    let (status, err) = error_of(
        app.post(
            &format!("/v1/properties/{pid}/pools"),
            &app.api_key,
            &json!({"name": "P", "kind": "weekly", "numbers": []}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["field"], "kind");
    let (status, err) = error_of(
        app.post(
            &format!("/v1/properties/{pid}/pools"),
            &app.api_key,
            &json!({"name": "P", "kind": "session", "lease_minutes": 0}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["field"], "lease_minutes");
    let (status, err) = error_of(
        app.post(
            &format!("/v1/properties/{pid}/pools"),
            &app.api_key,
            &json!({"name": "P", "kind": "session", "match": {"chanel": "x"}}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["field"], "match.chanel");

    // Unknown ids and endpoints.
    let (status, err) = error_of(app.get("/v1/properties/nope", &app.api_key).await).await;
    assert_eq!(
        (status, err["message"].as_str()),
        (StatusCode::NOT_FOUND, Some("property not found"))
    );
    let (status, _) = error_of(app.get("/v1/nothing-here", &app.api_key).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Nothing above wrote anything but the one property made on purpose.
    let properties = app.storage.list_properties(&app.account_id).await.unwrap();
    assert_eq!(properties.len(), 1);
    let pools = app.storage.list_pools(&app.account_id, pid).await.unwrap();
    assert!(pools.is_empty());
}

async fn bad_api_keys_are_401(app: TestApp) {
    let res = app
        .client
        .get(app.url("/v1/properties"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers().get("www-authenticate").unwrap(),
        "Bearer",
        "401 says how to authenticate"
    );
    let (status, err) = error_of(res).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("missing_api_key"))
    );

    for key in [
        "sb_key_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "nonsense",
        "",
    ] {
        let (status, err) = error_of(app.get("/v1/properties", key).await).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{key:?}");
        assert!(err["code"].as_str().unwrap().ends_with("api_key"));
    }
    let res = app
        .client
        .get(app.url("/v1/properties"))
        .header("authorization", format!("Basic {}", app.api_key))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = app
        .post("/v1/properties", "nonsense", &property_body())
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(
        app.storage
            .list_properties(&app.account_id)
            .await
            .unwrap()
            .is_empty()
    );
}
