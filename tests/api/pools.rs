use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_of};
use crate::on_both_backends;

on_both_backends!(
    a_pool_is_created_with_its_numbers_and_read_back,
    numbers_are_added_listed_and_retired,
    a_number_taken_anywhere_rejects_the_whole_request,
    a_source_pool_holds_one_static_number,
    overflow_policy_needs_an_overflow_number,
);

async fn a_pool_is_created_with_its_numbers_and_read_back(app: TestApp) {
    let property = app.create_property(&app.api_key).await;
    let pid = property["id"].as_str().unwrap();
    let res = app
        .post(
            &format!("/v1/properties/{pid}/pools"),
            &app.api_key,
            &json!({"name": "Google Ads", "kind": "session",
                    "match": {"channel": "Paid Search", "source": " Google "},
                    "lease_minutes": 45, "exhaustion": "overflow", "overflow_number": "+14155550190",
                    "numbers": ["+1 415 555 0110", "+14155550111"], "monthly_cost": 1.15}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let pool: Value = res.json().await.unwrap();
    assert_eq!(pool["kind"], "session");
    assert_eq!(
        pool["match"],
        json!({"channel": "paid search", "source": "google"})
    );
    assert_eq!(pool["lease_minutes"], 45);
    assert_eq!(pool["exhaustion"], "overflow");
    assert_eq!(pool["overflow_number"], "+14155550190");
    let numbers: Vec<&str> = pool["numbers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["number"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, ["+14155550110", "+14155550111"]);
    assert_eq!(pool["numbers"][0]["monthly_cost"], 1.15);

    let id = pool["id"].as_str().unwrap();
    let fetched: Value = app
        .get(&format!("/v1/pools/{id}"), &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched, pool);
    let list: Value = app
        .get(&format!("/v1/properties/{pid}/pools"), &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["pools"], json!([pool]));
}

async fn numbers_are_added_listed_and_retired(app: TestApp) {
    let property = app.create_property(&app.api_key).await;
    let pool = app
        .create_pool(
            &app.api_key,
            property["id"].as_str().unwrap(),
            &["+14155550110"],
        )
        .await;
    let id = pool["id"].as_str().unwrap();

    let res = app
        .post(
            &format!("/v1/pools/{id}/numbers"),
            &app.api_key,
            &json!({"numbers": ["+14155550112", "+1-415-555-0113"], "monthly_cost": 2.0}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let added: Value = res.json().await.unwrap();
    assert_eq!(added["numbers"].as_array().unwrap().len(), 2);

    // `+` percent-encoded, as URL builders write it.
    let res = app
        .delete(
            &format!("/v1/pools/{id}/numbers/%2B14155550110"),
            &app.api_key,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let retired: Value = res.json().await.unwrap();
    assert_eq!(retired["number"], "+14155550110");
    assert!(retired["retired_at"].is_string());

    // Retiring twice: it is no longer a live number of the pool.
    let (status, err) = error_of(
        app.delete(
            &format!("/v1/pools/{id}/numbers/+14155550110"),
            &app.api_key,
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err["code"], "not_found");

    let list: Value = app
        .get(&format!("/v1/pools/{id}/numbers"), &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    let listed: Vec<(&str, bool)> = list["numbers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["number"].as_str().unwrap(), n["retired_at"].is_null()))
        .collect();
    assert_eq!(
        listed,
        [
            ("+14155550112", true),
            ("+14155550113", true),
            ("+14155550110", false)
        ],
        "live numbers first, then retired ones"
    );

    // A retired number may be bought into another pool.
    let other = app
        .create_pool(
            &app.api_key,
            property["id"].as_str().unwrap(),
            &["+14155550110"],
        )
        .await;
    assert_eq!(other["numbers"][0]["number"], "+14155550110");
}

async fn a_number_taken_anywhere_rejects_the_whole_request(app: TestApp) {
    let property = app.create_property(&app.api_key).await;
    let pid = property["id"].as_str().unwrap();
    let pool = app.create_pool(&app.api_key, pid, &["+14155550110"]).await;

    // Another account tries to buy the same number: rejected, and nothing of its pool is written.
    let other_key = app.new_account_key("Account B").await;
    let other_property = app.create_property(&other_key).await;
    let opid = other_property["id"].as_str().unwrap();
    let (status, err) = error_of(
        app.post(
            &format!("/v1/properties/{opid}/pools"),
            &other_key,
            &json!({"name": "Dup", "kind": "session", "numbers": ["+14155550120", "+14155550110"]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(err["code"], "number_taken");
    assert!(err["message"].as_str().unwrap().contains("+14155550110"));
    let pools: Value = app
        .get(&format!("/v1/properties/{opid}/pools"), &other_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(pools["pools"], json!([]), "no half-written pool");

    // Adding a batch where one number is taken adds none of it.
    let id = pool["id"].as_str().unwrap();
    let second = app.create_pool(&app.api_key, pid, &["+14155550130"]).await;
    let (status, _) = error_of(
        app.post(
            &format!("/v1/pools/{id}/numbers"),
            &app.api_key,
            &json!({"numbers": ["+14155550131", "+14155550130"]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let fetched: Value = app
        .get(&format!("/v1/pools/{id}"), &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched["numbers"].as_array().unwrap().len(), 1);
    assert_eq!(second["numbers"].as_array().unwrap().len(), 1);

    // The same number twice in one request names the second occurrence.
    let (status, err) = error_of(
        app.post(
            &format!("/v1/pools/{id}/numbers"),
            &app.api_key,
            &json!({"numbers": ["+14155550140", "+1 415 555 0140"]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["field"], "numbers[1]");
}

async fn a_source_pool_holds_one_static_number(app: TestApp) {
    let property = app.create_property(&app.api_key).await;
    let pid = property["id"].as_str().unwrap();
    let (status, err) = error_of(
        app.post(
            &format!("/v1/properties/{pid}/pools"),
            &app.api_key,
            &json!({"name": "Print", "kind": "source", "match": {"source": "newspaper"},
                    "numbers": ["+14155550150", "+14155550151"]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["field"], "numbers");

    let res = app
        .post(
            &format!("/v1/properties/{pid}/pools"),
            &app.api_key,
            &json!({"name": "Print", "kind": "source", "match": {"source": "newspaper"},
                    "numbers": ["+14155550150"]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let pool: Value = res.json().await.unwrap();
    let id = pool["id"].as_str().unwrap();
    let (status, err) = error_of(
        app.post(
            &format!("/v1/pools/{id}/numbers"),
            &app.api_key,
            &json!({"numbers": ["+14155550152"]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(err["code"], "source_pool_full");
}

async fn overflow_policy_needs_an_overflow_number(app: TestApp) {
    let property = app.create_property(&app.api_key).await;
    let pid = property["id"].as_str().unwrap();
    let (status, err) = error_of(
        app.post(
            &format!("/v1/properties/{pid}/pools"),
            &app.api_key,
            &json!({"name": "P", "kind": "session", "exhaustion": "overflow", "numbers": ["+14155550160"]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["field"], "overflow_number");
}
