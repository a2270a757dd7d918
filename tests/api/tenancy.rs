//! Invariant 6: no account can read or change another account's objects. Another account's
//! object answers 404, exactly as one that does not exist, so ids leak nothing.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_of};
use crate::on_both_backends;

on_both_backends!(another_accounts_objects_are_invisible_and_untouchable);

async fn another_accounts_objects_are_invisible_and_untouchable(app: TestApp) {
    let a = &app.api_key;
    let property = app.create_property(a).await;
    let pid = property["id"].as_str().unwrap();
    let pool = app.create_pool(a, pid, &["+14155550110"]).await;
    let pool_id = pool["id"].as_str().unwrap();

    let b = app.new_account_key("Account B").await;
    let reads = [
        format!("/v1/properties/{pid}"),
        format!("/v1/properties/{pid}/pools"),
        format!("/v1/pools/{pool_id}"),
        format!("/v1/pools/{pool_id}/numbers"),
    ];
    for path in &reads {
        let (status, err) = error_of(app.get(path, &b).await).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "GET {path}");
        assert_eq!(err["code"], "not_found");
    }
    let (status, _) = error_of(
        app.post(
            &format!("/v1/properties/{pid}/pools"),
            &b,
            &json!({"name": "x", "kind": "session", "numbers": ["+14155550120"]}),
        )
        .await,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "create a pool on A's property"
    );
    let (status, _) = error_of(
        app.post(
            &format!("/v1/pools/{pool_id}/numbers"),
            &b,
            &json!({"numbers": ["+14155550121"]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "add numbers to A's pool");
    let (status, _) = error_of(
        app.delete(&format!("/v1/pools/{pool_id}/numbers/+14155550110"), &b)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "retire A's number");

    let listed: Value = app.get("/v1/properties", &b).await.json().await.unwrap();
    assert_eq!(listed["properties"], json!([]));

    // And A's objects are untouched by all of that.
    let fetched: Value = app
        .get(&format!("/v1/pools/{pool_id}"), a)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched, pool);
    let numbers: Vec<String> = app
        .storage
        .list_pools(&app.account_id, pid)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|p| p.numbers.into_iter().map(|n| n.number))
        .collect();
    assert_eq!(numbers, ["+14155550110"]);
}
