//! Exports to ad platforms, end to end: visits from ad clicks, calls through Twilio, the lead
//! rule and conversions, then the file an advertiser imports.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::calls::{property, twilio_app};
use crate::helpers::{Backend, TestApp, error_of};
use crate::outcomes::call_through;

/// 2026-05-28 20:26:40 UTC, the test clock's start: 16:26:40 in New York.
const MAY_28_1626: i64 = 1_780_000_000_000;
const HOUR: i64 = 3_600_000;

/// A visitor lands (from an ad click when `gclid` is given) and calls the number shown at
/// `at` from a phone of their own (each visit is another person: one caller's calls would be
/// credited to their first visit), talking `talk_s` seconds. Returns the completed call.
async fn call_after_visit(
    app: &TestApp,
    key: &str,
    sid: &str,
    gclid: Option<&str>,
    at: i64,
    talk_s: u32,
) -> Value {
    app.clock.set_ms(at);
    let url = match gclid {
        Some(g) => format!(
            "https://www.acme.example/?gclid={}",
            url::form_urlencoded::byte_serialize(g.as_bytes()).collect::<String>()
        ),
        None => "https://www.acme.example/".to_owned(),
    };
    let number = app.new_visitor(key, &url).await["number"]
        .as_str()
        .unwrap()
        .to_owned();
    let caller = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        sid.hash(&mut h);
        format!("+1415555{:04}", 2000 + h.finish() % 7000)
    };
    call_through(app, sid, &caller, &number, talk_s).await
}

async fn convert(app: &TestApp, call: &Value, name: &str, value: f64, at: i64) {
    let at = chrono::DateTime::from_timestamp_millis(at).unwrap();
    let res = app
        .post(
            &format!("/v1/calls/{}/conversion", call["id"].as_str().unwrap()),
            &app.api_key,
            &json!({"name": name, "value": value, "at": at.to_rfc3339()}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
}

async fn export(app: &TestApp, key: &str, property_id: &str, query: &str) -> reqwest::Response {
    app.get(
        &format!("/v1/properties/{property_id}/exports/google-ads{query}"),
        key,
    )
    .await
}

/// The file for `from` to `to` (both included), as the property's account sees it.
async fn export_days(app: &TestApp, property_id: &str, from: &str, to: &str) -> String {
    let query = format!("?from={from}&to={to}");
    let res = export(app, &app.api_key, property_id, &query).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.text().await.unwrap()
}

#[tokio::test]
async fn google_ads_export_lists_qualified_calls_and_conversions_of_clicked_calls_by_local_day() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = twilio_app(backend, None).await else {
            continue;
        };
        let property = app.create_property(&app.api_key).await;
        let property_id = property["id"].as_str().unwrap();
        let key = property["public_key"].as_str().unwrap();
        app.pool_with(
            property_id,
            json!({"name": "All", "kind": "session", "lease_minutes": 30,
                   "numbers": ["+14155550500", "+14155550501", "+14155550502"]}),
        )
        .await;

        // (call, the visit's click id, hours after 16:26:40 on 28 May in New York, seconds talked)
        let visits = [
            ("CAone", Some("gclid-one"), 0, 95),
            // A click id that would start a formula, and a call too short to qualify.
            ("CAtwo", Some("=1+2,x"), 2, 20),
            // No click: not Google's to hear about.
            ("CAorg", None, 4, 90),
            // Marked spam by the business below: left out, conversions and all.
            ("CAspam", Some("gclid-spam"), 5, 80),
            // 23:26 on 28 May in New York is already 29 May in UTC: still the 28th's.
            ("CAlate", Some("gclid-late"), 7, 61),
            // 00:26 on 29 May in New York: the next day's.
            ("CAnext", Some("gclid-next"), 8, 61),
        ];
        let mut calls = Vec::new();
        for (sid, gclid, hours, talk_s) in visits {
            let at = MAY_28_1626 + hours * HOUR;
            calls.push(call_after_visit(&app, key, sid, gclid, at, talk_s).await);
        }
        let qualified: Vec<&Value> = calls.iter().map(|c| &c["qualified"]).collect();
        assert_eq!(qualified, [true, false, true, true, true, true]);
        let [one, two, organic, spam] = [0, 1, 2, 3].map(|i| &calls[i]);
        convert(&app, one, "sale", 120.5, MAY_28_1626 + HOUR).await;
        convert(&app, two, "booking", 0.0, MAY_28_1626 + 3 * HOUR).await;
        convert(&app, organic, "sale", 50.0, MAY_28_1626 + 4 * HOUR).await;
        convert(&app, spam, "sale", 9.0, MAY_28_1626 + 5 * HOUR).await;
        let res = app
            .client
            .patch(app.url(&format!("/v1/calls/{}", spam["id"].as_str().unwrap())))
            .bearer_auth(&app.api_key)
            .json(&json!({"disposition": "spam"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);

        let res = export(
            &app,
            &app.api_key,
            property_id,
            "?from=2026-05-28&to=2026-05-28",
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
        assert_eq!(
            res.headers()["content-disposition"],
            "attachment; filename=\"google-ads-2026-05-28-2026-05-28.csv\""
        );
        assert_eq!(
            res.text().await.unwrap(),
            "Parameters:TimeZone=America/New_York\r\n\
             Google Click ID,Conversion Name,Conversion Time,Conversion Value,Conversion Currency\r\n\
             gclid-one,qualified_call,2026-05-28 16:26:40,,\r\n\
             gclid-one,sale,2026-05-28 17:26:40,120.5,USD\r\n\
             \"'=1+2,x\",booking,2026-05-28 19:26:40,0,USD\r\n\
             gclid-late,qualified_call,2026-05-28 23:26:40,,\r\n",
            "{backend:?}"
        );

        // The last day is included.
        let text = export_days(&app, property_id, "2026-05-28", "2026-05-29").await;
        assert!(
            text.ends_with("gclid-next,qualified_call,2026-05-29 00:26:40,,\r\n"),
            "{text}"
        );
        let text = export_days(&app, property_id, "2026-05-30", "2026-06-30").await;
        assert_eq!(
            text.lines().count(),
            2,
            "parameters and header only: {text}"
        );
    }
}

#[tokio::test]
async fn google_ads_export_refuses_bad_days_and_other_accounts() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = twilio_app(backend, None).await else {
            continue;
        };
        let property_id = property(&app).await;
        for (query, field) in [
            ("", "from"),
            ("?from=2026-05-28", "to"),
            ("?from=28/05/2026&to=2026-05-29", "from"),
            ("?from=2026-05-28&to=2026-02-30", "to"),
            ("?from=2026-05-28&to=2026-05-27", "to"),
        ] {
            let (status, err) =
                error_of(export(&app, &app.api_key, &property_id, query).await).await;
            assert_eq!(
                (status, err["code"].as_str(), err["field"].as_str()),
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Some("invalid_field"),
                    Some(field)
                ),
                "{query}: {err}"
            );
        }

        // Another account's key: the property does not exist for it.
        let other = app.new_account_key("Account B").await;
        let days = "?from=2026-05-28&to=2026-05-28";
        let (status, err) = error_of(export(&app, &other, &property_id, days).await).await;
        assert_eq!(
            (status, err["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found"))
        );
        let (status, _) =
            error_of(export(&app, &app.api_key, "no-such-property", days).await).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = error_of(export(&app, "sb_key_wrong", &property_id, days).await).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}
