use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(
    a_property_is_created_with_normalised_fields_and_a_public_key,
    a_property_can_be_read_back_and_listed,
    a_property_takes_sensible_defaults,
);

async fn a_property_is_created_with_normalised_fields_and_a_public_key(app: TestApp) {
    let p = app.create_property(&app.api_key).await;
    assert!(p["id"].as_str().unwrap().len() >= 32);
    assert!(p["public_key"].as_str().unwrap().starts_with("pk_"));
    assert_eq!(p["default_number"], "+14155550100");
    assert_eq!(p["forward_to"], "+14155550101");
    assert_eq!(p["domains"], json!(["acme.example"]));
    assert_eq!(p["timezone"], "America/New_York");
    assert_eq!(p["currency"], "USD");
    assert!(p.get("account_id").is_none(), "internal ids stay internal");
}

async fn a_property_can_be_read_back_and_listed(app: TestApp) {
    let a = app.create_property(&app.api_key).await;
    let b = app.create_property(&app.api_key).await;
    let id = a["id"].as_str().unwrap();
    let res = app.get(&format!("/v1/properties/{id}"), &app.api_key).await;
    assert_eq!(res.status(), StatusCode::OK);
    let fetched: Value = res.json().await.unwrap();
    assert_eq!(fetched, a);

    let list: Value = app
        .get("/v1/properties", &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["properties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id, b["id"].as_str().unwrap()]);
}

async fn a_property_takes_sensible_defaults(app: TestApp) {
    let res = app
        .post(
            "/v1/properties",
            &app.api_key,
            &json!({"name": "Shop", "domains": ["WWW.Shop.Example.co.uk", "shop.example.co.uk"],
                    "default_number": "+44 (0)20 7946 0958"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let p: Value = res.json().await.unwrap();
    assert_eq!(
        p["forward_to"], "+442079460958",
        "calls go to the published number"
    );
    assert_eq!(p["timezone"], "UTC");
    assert_eq!(p["currency"], "USD");
    assert_eq!(
        p["domains"],
        json!(["shop.example.co.uk"]),
        "deduplicated after www. is dropped"
    );
}
