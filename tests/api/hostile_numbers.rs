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

const OPERATOR_SID: &str = "AC00000000000000000000000000000001";
const OPERATOR_TOKEN: &str = "operator-token-0000000000000001";
const A_SID: &str = "AC0000000000000000000000000000000a";
const A_TOKEN: &str = "account-a-token-00000000000000a";

/// A stand-in for Twilio's API on 127.0.0.1: each Twilio account (sid, token) owns numbers.
/// `GET /2010-04-01/Accounts/{sid}.json` proves a token; `.../IncomingPhoneNumbers.json
/// ?PhoneNumber=` lists the account's number if it has it. Wrong credentials: 401.
async fn fake_twilio(
    accounts: &'static [(&'static str, &'static str, &'static [&'static str])],
) -> String {
    use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
    use base64::Engine;

    fn account_of(
        req: &HttpRequest,
        accounts: &'static [(&'static str, &'static str, &'static [&'static str])],
        sid: &str,
    ) -> Option<&'static [&'static str]> {
        let presented = req
            .headers()
            .get("authorization")?
            .to_str()
            .ok()?
            .strip_prefix("Basic ")?;
        let pair = base64::engine::general_purpose::STANDARD
            .decode(presented)
            .ok()?;
        let pair = String::from_utf8(pair).ok()?;
        accounts
            .iter()
            .find(|(s, t, _)| *s == sid && pair == format!("{s}:{t}"))
            .map(|(_, _, numbers)| *numbers)
    }
    let server = HttpServer::new(move || {
        App::new()
            .route(
                "/2010-04-01/Accounts/{sid}/IncomingPhoneNumbers.json",
                web::get().to(move |req: HttpRequest, sid: web::Path<String>| async move {
                    let Some(numbers) = account_of(&req, accounts, &sid) else {
                        return HttpResponse::Unauthorized().finish();
                    };
                    let wanted = url::form_urlencoded::parse(req.query_string().as_bytes())
                        .find(|(k, _)| k == "PhoneNumber")
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default();
                    let found: Vec<Value> = numbers
                        .iter()
                        .filter(|n| **n == wanted)
                        .map(|n| json!({"phone_number": n}))
                        .collect();
                    HttpResponse::Ok().json(json!({"incoming_phone_numbers": found}))
                }),
            )
            .route(
                "/2010-04-01/Accounts/{file}",
                web::get().to(
                    move |req: HttpRequest, file: web::Path<String>| async move {
                        match account_of(&req, accounts, file.trim_end_matches(".json")) {
                            Some(_) => HttpResponse::Ok().json(json!({"status": "active"})),
                            None => HttpResponse::Unauthorized().finish(),
                        }
                    },
                ),
            )
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn with_ownership_required_an_account_adds_only_numbers_its_twilio_account_owns() {
    static ACCOUNTS: &[(&str, &str, &[&str])] = &[
        (OPERATOR_SID, OPERATOR_TOKEN, &["+14155550640"]),
        (A_SID, A_TOKEN, &["+14155550650"]),
    ];
    let twilio = fake_twilio(ACCOUNTS).await;
    let app = spawn_app_with(
        Backend::Sqlite,
        &[
            ("numbers_must_be_owned", "true"),
            ("public_url", "https://calls.example.com"),
            ("twilio_api_base", twilio.as_str()),
            ("twilio_account_sid", OPERATOR_SID),
            ("twilio_auth_token", OPERATOR_TOKEN),
        ],
    )
    .await
    .unwrap();
    let a = app.api_key.clone();
    let res = app
        .put(
            "/v1/account/telephony",
            &a,
            &json!({"twilio_account_sid": A_SID, "twilio_auth_token": A_TOKEN}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let b = app.new_account_key("Account B").await;
    let pool = |key: &str, number: &str| {
        let key = key.to_owned();
        let number = number.to_owned();
        let app = &app;
        async move {
            let property = app.create_property(&key).await;
            app.post(
                &format!("/v1/properties/{}/pools", property["id"].as_str().unwrap()),
                &key,
                &json!({"name": "P", "kind": "session", "numbers": [number]}),
            )
            .await
        }
    };
    // B has no Twilio account of its own: the operator's numbers only, never A's.
    let err = refused(pool(&b, "+14155550650").await, "numbers[0]").await;
    assert!(
        err["message"].as_str().unwrap().contains(OPERATOR_SID),
        "{err}"
    );
    assert_eq!(pool(&b, "+14155550640").await.status(), StatusCode::CREATED);
    // A: its own Twilio account's numbers, not the operator's.
    refused(pool(&a, "+14155550641").await, "numbers[0]").await;
    assert_eq!(pool(&a, "+14155550650").await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn ownership_cannot_be_required_without_twilios_api() {
    let err = switchboard::config::Settings::from_pairs([
        ("numbers_must_be_owned", "true"),
        ("twilio_api_base", "off"),
    ])
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("SWITCHBOARD_NUMBERS_MUST_BE_OWNED"),
        "{err}"
    );
}
