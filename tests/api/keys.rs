//! An account issues, lists and revokes its own API keys: the key is shown once, the list never
//! shows it, a revoked key is refused at once on every instance (and ends the dashboard
//! sessions it opened), and one account cannot see or revoke another's keys.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, error_of, spawn_app_with, spawn_sibling};

async fn keys_are_issued_listed_and_revoked_everywhere_at_once(backend: Backend) {
    let Some(a) = spawn_app_with(backend, &[]).await else {
        return;
    };
    let b = spawn_sibling(&a, &[]).await;
    let first = a.api_key.clone();
    let res = a
        .post(
            "/v1/account/keys",
            &first,
            &json!({"name": "reporting script"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let created: Value = res.json().await.unwrap();
    let second = created["api_key"].as_str().unwrap().to_owned();
    assert!(second.starts_with("sb_key_"), "{created}");
    assert_eq!(created["name"], "reporting script");
    // The new key works, on either instance.
    assert_eq!(
        b.get("/v1/properties", &second).await.status(),
        StatusCode::OK
    );

    let listed: Value = a
        .get("/v1/account/keys", &second)
        .await
        .json()
        .await
        .unwrap();
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{listed}");
    assert!(
        !listed.to_string().contains(&second),
        "the list never shows a key"
    );
    assert!(!listed.to_string().contains(&first));
    let id = created["id"].as_str().unwrap();
    let mine = keys.iter().find(|k| k["id"] == id).unwrap();
    assert_eq!(mine["name"], "reporting script");
    assert!(mine["revoked_at"].is_null());

    // Another account neither sees nor revokes it.
    let other = a.new_account_key("Account B").await;
    let theirs: Value = a
        .get("/v1/account/keys", &other)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["keys"].as_array().unwrap().len(), 1);
    let (status, _) = error_of(a.delete(&format!("/v1/account/keys/{id}"), &other).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Revoked through A: refused at once through B.
    let res = a.delete(&format!("/v1/account/keys/{id}"), &first).await;
    assert_eq!(res.status(), StatusCode::OK);
    let (status, err) = error_of(b.get("/v1/properties", &second).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(err["code"], "invalid_api_key");
    assert_eq!(
        b.get("/v1/properties", &first).await.status(),
        StatusCode::OK
    );

    // The last live key cannot be revoked: the account would have no way in.
    let listed: Value = a
        .get("/v1/account/keys", &first)
        .await
        .json()
        .await
        .unwrap();
    let first_id = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["revoked_at"].is_null())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, err) = error_of(
        a.delete(&format!("/v1/account/keys/{first_id}"), &first)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(err["code"], "last_api_key");
}

#[tokio::test]
async fn sqlite_keys_are_issued_listed_and_revoked_everywhere_at_once() {
    keys_are_issued_listed_and_revoked_everywhere_at_once(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_keys_are_issued_listed_and_revoked_everywhere_at_once() {
    keys_are_issued_listed_and_revoked_everywhere_at_once(Backend::Postgres).await;
}

#[tokio::test]
async fn a_keys_last_use_is_noted_at_most_once_a_minute() {
    let app: TestApp = spawn_app_with(Backend::Sqlite, &[]).await.unwrap();
    let used = async |app: &TestApp| -> Value {
        let listed: Value = app
            .get("/v1/account/keys", &app.api_key)
            .await
            .json()
            .await
            .unwrap();
        listed["keys"][0]["last_used_at"].clone()
    };
    // The first request notes it (off the request path: the next read may race it).
    let _ = used(&app).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let first = used(&app).await;
    assert!(first.is_string(), "{first}");
    app.advance_minutes(2);
    let _ = used(&app).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let later = used(&app).await;
    assert!(later.as_str() > first.as_str(), "{first} then {later}");
}
