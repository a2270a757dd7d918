//! Reports: a worked scenario with numbers computed by hand (three channels, costs,
//! conversions, a repeat caller, an unattributed call, a missed call, a spam call), checked
//! field by field in JSON and CSV on both databases; the service report's figures; ad spend
//! uploads; and another account kept out of all of it.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::calls::{attributed, dial, twilio};
use crate::helpers::{TestApp, error_of};
use crate::with_twilio_on_both_backends;

/// 2026-11-10 10:00 in New York (a Tuesday; EST, UTC-5).
const TEN_AM: i64 = 1_794_322_800_000;
const MINUTE: i64 = 60_000;
const DAY: &str = "2026-11-10";

const PAID_URL: &str = "https://www.acme.example/pricing?utm_source=google&utm_medium=cpc&utm_campaign=spring&gclid=abc";
const SOCIAL_URL: &str = "https://www.acme.example/offer?utm_source=facebook&utm_medium=paid_social&utm_campaign=%3Dfall()";

struct Call<'a> {
    sid: &'a str,
    from: &'a str,
    to: &'a str,
    /// Minutes after 10:00 the call comes in.
    at_minute: i64,
    /// Seconds until the business answers (None: nobody does).
    answer_s: Option<i64>,
    talk_s: i64,
    duration_s: i64,
}

async fn place(app: &TestApp, c: &Call<'_>) -> String {
    let start = TEN_AM + c.at_minute * MINUTE;
    app.clock.set_ms(start);
    dial(app, c.sid, c.from, c.to).await;
    let status = |s: &'static str| {
        [
            ("CallSid", c.sid),
            ("CallStatus", s),
            ("From", c.from),
            ("To", c.to),
        ]
    };
    if let Some(answer) = c.answer_s {
        app.clock.set_ms(start + answer * 1000);
        let (code, _) = twilio(app, "/v1/telephony/twilio/status", &status("in-progress")).await;
        assert_eq!(code, StatusCode::OK);
    }
    app.clock.set_ms(start + c.duration_s * 1000);
    let tn = url::form_urlencoded::byte_serialize(c.to.as_bytes()).collect::<String>();
    let talk = c.talk_s.to_string();
    let dial_status = if c.answer_s.is_some() {
        "completed"
    } else {
        "no-answer"
    };
    let (code, _) = twilio(
        app,
        &format!("/v1/telephony/twilio/dial?tn={tn}"),
        &[
            ("CallSid", c.sid),
            ("DialCallStatus", dial_status),
            ("DialCallDuration", &talk),
        ],
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let duration = c.duration_s.to_string();
    let mut completed = status("completed").to_vec();
    completed.push(("CallDuration", &duration));
    let (code, _) = twilio(app, "/v1/telephony/twilio/status", &completed).await;
    assert_eq!(code, StatusCode::OK);
    attributed(app, c.sid).await.id
}

async fn send(app: &TestApp, method: reqwest::Method, path: &str, body: &Value) -> Value {
    let res = app
        .client
        .request(method, app.url(path))
        .bearer_auth(&app.api_key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

/// Waits until every call has completed (the lead rule applied).
async fn all_completed(app: &TestApp, ids: &[&str]) {
    for _ in 0..200 {
        let mut done = true;
        for id in ids {
            let view = app.get(&format!("/v1/calls/{id}"), &app.api_key).await;
            let view: Value = view.json().await.unwrap();
            done &= !view["qualified"].is_null();
        }
        if done {
            return;
        }
        app.state.calls.wake();
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("calls never completed");
}

/// The scenario: returns the property id.
async fn scenario(app: &TestApp) -> String {
    app.clock.set_ms(TEN_AM - 5 * MINUTE);
    let property = app.create_property(&app.api_key).await;
    let pid = property["id"].as_str().unwrap().to_owned();
    let key = property["public_key"].as_str().unwrap().to_owned();
    // One pool for every channel: four numbers at 3.00 a month (0.10 a day each in November).
    let numbers = [
        "+14155550201",
        "+14155550202",
        "+14155550203",
        "+14155550204",
    ];
    app.pool_with(
        &pid,
        json!({"name": "All", "kind": "session", "lease_minutes": 60, "numbers": numbers,
               "monthly_cost": 3.0}),
    )
    .await;
    send(
        app,
        reqwest::Method::PUT,
        &format!("/v1/properties/{pid}/cost-settings"),
        &json!({"per_minute_cost": 0.05, "operating_cost_monthly": 300.0}),
    )
    .await;

    app.clock.set_ms(TEN_AM);
    let paid = app.new_visitor(&key, PAID_URL).await;
    let (_, _, organic) = app
        .visit(&crate::helpers::Visit {
            url: "https://www.acme.example/",
            referrer: Some("https://www.google.com/"),
            ..crate::helpers::Visit::new(&key)
        })
        .await;
    let social = app.new_visitor(&key, SOCIAL_URL).await;
    let n = |v: &Value| v["number"].as_str().unwrap().to_owned();
    let (paid_n, organic_n, social_n) = (n(&paid), n(&organic), n(&social));
    let free = numbers
        .iter()
        .find(|x| ![&paid_n, &organic_n, &social_n].contains(&&x.to_string()))
        .unwrap()
        .to_string();

    let c1 = place(
        app,
        &Call {
            sid: "CA1",
            from: "+14155550001",
            to: &paid_n,
            at_minute: 1,
            answer_s: Some(8),
            talk_s: 90,
            duration_s: 98,
        },
    )
    .await;
    let c2 = place(
        app,
        &Call {
            sid: "CA2",
            from: "+14155550002",
            to: &organic_n,
            at_minute: 6,
            answer_s: Some(5),
            talk_s: 30,
            duration_s: 35,
        },
    )
    .await;
    let c3 = place(
        app,
        &Call {
            sid: "CA3",
            from: "+14155550003",
            to: &social_n,
            at_minute: 11,
            answer_s: None,
            talk_s: 0,
            duration_s: 10,
        },
    )
    .await;
    // The first caller again: a repeat.
    let c4 = place(
        app,
        &Call {
            sid: "CA4",
            from: "+14155550001",
            to: &paid_n,
            at_minute: 16,
            answer_s: Some(12),
            talk_s: 70,
            duration_s: 80,
        },
    )
    .await;
    // A number nobody held: unattributed.
    let c5 = place(
        app,
        &Call {
            sid: "CA5",
            from: "+14155550005",
            to: &free,
            at_minute: 21,
            answer_s: Some(25),
            talk_s: 40,
            duration_s: 45,
        },
    )
    .await;
    let c6 = place(
        app,
        &Call {
            sid: "CA6",
            from: "+14155550006",
            to: &organic_n,
            at_minute: 26,
            answer_s: Some(3),
            talk_s: 20,
            duration_s: 22,
        },
    )
    .await;
    all_completed(app, &[&c1, &c2, &c3, &c4, &c5, &c6]).await;

    let post = reqwest::Method::POST;
    let patch = reqwest::Method::PATCH;
    send(
        app,
        post.clone(),
        &format!("/v1/calls/{c1}/conversion"),
        &json!({"name": "sale", "value": 120.0, "currency": "USD"}),
    )
    .await;
    send(
        app,
        post.clone(),
        &format!("/v1/calls/{c4}/conversion"),
        &json!({"name": "sale", "value": 30.0, "currency": "USD"}),
    )
    .await;
    send(
        app,
        patch.clone(),
        &format!("/v1/calls/{c2}"),
        &json!({"disposition": "resolved", "csat": 5}),
    )
    .await;
    send(
        app,
        patch.clone(),
        &format!("/v1/calls/{c4}"),
        &json!({"disposition": "appointment", "csat": 3}),
    )
    .await;
    send(
        app,
        patch.clone(),
        &format!("/v1/calls/{c5}"),
        &json!({"disposition": "escalated"}),
    )
    .await;
    send(
        app,
        patch,
        &format!("/v1/calls/{c6}"),
        &json!({"disposition": "spam"}),
    )
    .await;

    // Ad spend: Paid Search first sent as 40.00 and re-sent as 50.00 (replaced, not added),
    // by JSON; Paid Social by CSV; a day outside the report's range.
    let costs = format!("/v1/properties/{pid}/costs");
    send(app, post.clone(), &costs, &json!({"rows": [
        {"date": DAY, "source": "google", "medium": "cpc", "campaign": "spring", "amount": 40.0},
        {"date": "2026-11-11", "source": "google", "medium": "cpc", "campaign": "spring", "amount": 999.0}
    ]})).await;
    send(
        app,
        post,
        &costs,
        &json!({"rows": [
            {"date": DAY, "source": "Google", "medium": "CPC", "campaign": "spring", "amount": 50.0}
        ]}),
    )
    .await;
    let res = app
        .client
        .post(app.url(&costs))
        .bearer_auth(&app.api_key)
        .header("content-type", "text/csv")
        .body(format!(
            "date,source,medium,campaign,amount\n{DAY},facebook,paid_social,=fall(),20.00\n"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );
    pid
}

fn row(channel: &str, figures: Value) -> Value {
    let mut row = figures;
    row["channel"] = json!(channel);
    row
}

fn expected_channel_rows() -> Vec<Value> {
    vec![
        // C1 and C4: revenue 150; cost = spend 50 + minutes (2 + 2) x 0.05 + rental 0.40 x 2/5.
        row(
            "Paid Search",
            json!({
                "sessions": 1, "calls": 2, "unique_callers": 1, "first_time_callers": 1,
                "answered": 2, "missed": 0, "qualified": 2, "conversions": 2, "conversion_rate": 1.0,
                "revenue": 150.0, "cost": 50.36, "cost_per_call": 25.18,
                "cost_per_qualified_call": 25.18, "cost_per_conversion": 25.18,
                "revenue_per_call": 75.0, "roi": 1.9786, "avg_duration_s": 89.0, "avg_answer_s": 10.0,
                "calls_per_100_sessions": 200.0, "spam_calls": 0, "ad_spend": 50.0,
                "telephony_cost": 0.36, "operating_cost": 4.0, "operating_cost_per_call": 2.0,
                "converted_calls": 2, "cost_per_unique_caller": 50.36
            }),
        ),
        // C2, and C6 marked spam: counted apart, its minute still paid.
        row(
            "Organic Search",
            json!({
                "sessions": 1, "calls": 1, "unique_callers": 1, "first_time_callers": 1,
                "answered": 1, "missed": 0, "qualified": 0, "conversions": 0, "conversion_rate": 0.0,
                "revenue": 0.0, "cost": 0.18, "cost_per_call": 0.18,
                "cost_per_qualified_call": null, "cost_per_conversion": null,
                "revenue_per_call": 0.0, "roi": -1.0, "avg_duration_s": 35.0, "avg_answer_s": 5.0,
                "calls_per_100_sessions": 100.0, "spam_calls": 1, "ad_spend": 0.0,
                "telephony_cost": 0.18, "operating_cost": 2.0, "operating_cost_per_call": 2.0,
                "converted_calls": 0, "cost_per_unique_caller": 0.18
            }),
        ),
        // C3, missed after 10 s.
        row(
            "Paid Social",
            json!({
                "sessions": 1, "calls": 1, "unique_callers": 1, "first_time_callers": 1,
                "answered": 0, "missed": 1, "qualified": 0, "conversions": 0, "conversion_rate": 0.0,
                "revenue": 0.0, "cost": 20.13, "cost_per_call": 20.13,
                "cost_per_qualified_call": null, "cost_per_conversion": null,
                "revenue_per_call": 0.0, "roi": -1.0, "avg_duration_s": 10.0, "avg_answer_s": null,
                "calls_per_100_sessions": 100.0, "spam_calls": 0, "ad_spend": 20.0,
                "telephony_cost": 0.13, "operating_cost": 2.0, "operating_cost_per_call": 2.0,
                "converted_calls": 0, "cost_per_unique_caller": 20.13
            }),
        ),
        // C5, to a number no session held.
        row(
            "Unattributed",
            json!({
                "sessions": 0, "calls": 1, "unique_callers": 1, "first_time_callers": 1,
                "answered": 1, "missed": 0, "qualified": 0, "conversions": 0, "conversion_rate": 0.0,
                "revenue": 0.0, "cost": 0.13, "cost_per_call": 0.13,
                "cost_per_qualified_call": null, "cost_per_conversion": null,
                "revenue_per_call": 0.0, "roi": -1.0, "avg_duration_s": 45.0, "avg_answer_s": 25.0,
                "calls_per_100_sessions": null, "spam_calls": 0, "ad_spend": 0.0,
                "telephony_cost": 0.13, "operating_cost": 2.0, "operating_cost_per_call": 2.0,
                "converted_calls": 0, "cost_per_unique_caller": 0.13
            }),
        ),
    ]
}

fn expected_totals() -> Value {
    json!({
        "sessions": 3, "calls": 5, "unique_callers": 4, "first_time_callers": 4,
        "answered": 4, "missed": 1, "qualified": 2, "conversions": 2, "conversion_rate": 0.4,
        "revenue": 150.0, "cost": 70.8, "cost_per_call": 14.16,
        "cost_per_qualified_call": 35.4, "cost_per_conversion": 35.4,
        "revenue_per_call": 30.0, "roi": 1.1186, "avg_duration_s": 53.6, "avg_answer_s": 12.5,
        "calls_per_100_sessions": 166.67, "spam_calls": 1, "ad_spend": 70.0,
        "telephony_cost": 0.8, "operating_cost": 10.0, "operating_cost_per_call": 2.0,
        "converted_calls": 2, "cost_per_unique_caller": 17.7
    })
}

fn csv_cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Reads a CSV answer into records keyed by header.
fn parse_csv(text: &str) -> Vec<serde_json::Map<String, Value>> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            header
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_owned(), json!(v)))
                .collect()
        })
        .collect()
}

async fn report(app: &TestApp, key: &str, pid: &str, kind: &str, query: &str) -> reqwest::Response {
    app.get(&format!("/v1/properties/{pid}/reports/{kind}?{query}"), key)
        .await
}

async fn worked_scenario_attribution_report(app: TestApp) {
    let pid = scenario(&app).await;
    let key = app.api_key.clone();
    let res = report(
        &app,
        &key,
        &pid,
        "attribution",
        &format!("from={DAY}&to={DAY}&group_by=channel"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["from"], DAY);
    assert_eq!(body["to"], DAY);
    assert_eq!(body["group_by"], "channel");
    assert_eq!(body["currency"], "USD");
    let rows = body["rows"].as_array().unwrap();
    let expected = expected_channel_rows();
    assert_eq!(rows.len(), expected.len(), "{body:#}");
    for (got, want) in rows.iter().zip(&expected) {
        assert_eq!(got, want, "row {}", want["channel"]);
    }
    assert_eq!(body["totals"], expected_totals(), "{:#}", body["totals"]);

    // Invariant 5 under every dimension: the rows' calls add up to the total, Unattributed
    // (or "(not set)") included.
    for dim in [
        "source",
        "medium",
        "campaign",
        "keyword",
        "landing_page",
        "visitor_city",
        "caller_city",
        "pool",
        "confidence",
        "day",
        "weekday",
        "hour",
    ] {
        let res = report(
            &app,
            &key,
            &pid,
            "attribution",
            &format!("from={DAY}&to={DAY}&group_by={dim}"),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK, "{dim}");
        let body: Value = res.json().await.unwrap();
        let rows = body["rows"].as_array().unwrap();
        let sum = |f: &str| rows.iter().map(|r| r[f].as_i64().unwrap_or(0)).sum::<i64>();
        assert_eq!(sum("calls"), 5, "{dim}: {body:#}");
        assert_eq!(sum("spam_calls"), 1, "{dim}");
        assert_eq!(sum("unique_callers"), 4, "{dim}");
        let cost: f64 = rows.iter().map(|r| r["cost"].as_f64().unwrap()).sum();
        assert!((cost - 70.8).abs() < 0.011, "{dim}: costs add up, {cost}");
        assert_eq!(body["totals"]["calls"], 5);
    }
    let by = |dim: &str| {
        let app = &app;
        let (key, pid) = (key.clone(), pid.clone());
        let dim = dim.to_owned();
        async move {
            let res = report(
                app,
                &key,
                &pid,
                "attribution",
                &format!("from={DAY}&to={DAY}&group_by={dim}"),
            )
            .await;
            let body: Value = res.json().await.unwrap();
            body["rows"].as_array().unwrap().clone()
        }
    };
    let weekday = by("weekday").await;
    assert_eq!(weekday.len(), 1);
    assert_eq!(
        (weekday[0]["weekday"].clone(), weekday[0]["calls"].clone()),
        (json!("Tuesday"), json!(5))
    );
    let hours = by("hour").await;
    assert_eq!(
        (hours[0]["hour"].clone(), hours[0]["sessions"].clone()),
        (json!("10"), json!(3))
    );
    let campaigns = by("campaign").await;
    let spring = campaigns
        .iter()
        .find(|r| r["campaign"] == "spring")
        .unwrap();
    assert_eq!(
        (spring["calls"].clone(), spring["ad_spend"].clone()),
        (json!(2), json!(50.0))
    );
    let pages = by("landing_page").await;
    let pricing = pages
        .iter()
        .find(|r| r["landing_page"] == "www.acme.example/pricing")
        .unwrap();
    assert_eq!(
        pricing["calls"], 2,
        "landing pages lose their query: {pages:?}"
    );
    let confidence = by("confidence").await;
    let none = confidence
        .iter()
        .find(|r| r["confidence"] == "none")
        .unwrap();
    assert_eq!(
        (none["calls"].clone(), none["sessions"].clone()),
        (json!(1), Value::Null)
    );

    // The same report as CSV: every field of every row and of the total.
    let res = report(
        &app,
        &key,
        &pid,
        "attribution",
        &format!("from={DAY}&to={DAY}&format=csv"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let records = parse_csv(&res.text().await.unwrap());
    assert_eq!(records.len(), expected.len() + 1);
    let mut want_lines = expected.clone();
    let mut total = expected_totals();
    total["channel"] = json!("Total");
    want_lines.push(total);
    for (got, want) in records.iter().zip(&want_lines) {
        for (field, value) in want.as_object().unwrap() {
            assert_eq!(
                got[field],
                json!(csv_cell(value)),
                "CSV {field} of {}",
                want["channel"]
            );
        }
        assert_eq!(
            got.len(),
            want.as_object().unwrap().len(),
            "no other columns"
        );
    }
    // A campaign named like a formula is defused in CSV and kept as it is in JSON.
    let res = report(
        &app,
        &key,
        &pid,
        "attribution",
        &format!("from={DAY}&to={DAY}&group_by=campaign&format=csv"),
    )
    .await;
    let text = res.text().await.unwrap();
    assert!(text.contains("\n'=fall(),"), "{text}");
    assert!(campaigns.iter().any(|r| r["campaign"] == "=fall()"));

    // The next day caller A calls a third time, on a number nobody holds any more: a repeat
    // caller, yet the first of that day's range; over both days A is still one caller.
    let next = "2026-11-11";
    place(
        &app,
        &Call {
            sid: "CA7",
            from: "+14155550001",
            to: "+14155550201",
            at_minute: 24 * 60,
            answer_s: Some(4),
            talk_s: 10,
            duration_s: 12,
        },
    )
    .await;
    let totals = |from: &'static str, to: &'static str| {
        let (app, key, pid) = (&app, key.clone(), pid.clone());
        async move {
            let res = report(
                app,
                &key,
                &pid,
                "attribution",
                &format!("from={from}&to={to}"),
            )
            .await;
            let body: Value = res.json().await.unwrap();
            body["totals"].clone()
        }
    };
    let day_two = totals(next, next).await;
    assert_eq!(
        (
            day_two["calls"].clone(),
            day_two["unique_callers"].clone(),
            day_two["first_time_callers"].clone()
        ),
        (json!(1), json!(1), json!(0)),
        "{day_two:#}"
    );
    let both = totals(DAY, next).await;
    assert_eq!(
        (both["calls"].clone(), both["unique_callers"].clone()),
        (json!(6), json!(4))
    );
    assert_eq!(
        totals(DAY, DAY).await["unique_callers"],
        4,
        "the first day is unchanged"
    );
}

async fn worked_scenario_service_report(app: TestApp) {
    let pid = scenario(&app).await;
    let res = report(
        &app,
        &app.api_key,
        &pid,
        "service",
        &format!("from={DAY}&to={DAY}"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    // Five calls (spam apart): four answered (8, 5, 12 and 25 s to answer; 90, 30, 70 and 40 s
    // of talk), one missed after 10 s (abandoned); caller A called twice within 7 days.
    assert_eq!(
        body["totals"],
        json!({
            "calls": 5, "answered": 4, "completion_rate": 0.8, "blocked_rate": 0.0,
            "missed_call_rate": 0.2, "abandonment_rate": 0.2, "service_level": 0.6,
            "avg_speed_of_answer_s": 12.5, "avg_handle_time_s": 57.5, "avg_duration_s": 53.6,
            "first_call_resolution": 0.75, "appointment_rate": 0.25, "resolution_rate": 0.25,
            "escalation_rate": 0.25, "avg_csat": 4.0, "csat": 0.5, "conversion_rate": 0.4,
            "revenue_per_successful_call": 37.5, "unique_callers": 4
        }),
        "{:#}",
        body["totals"]
    );
    assert_eq!(body["benchmarks"]["service_level"]["low"], 0.8);
    assert_eq!(body["benchmarks"]["avg_speed_of_answer_s"]["high"], 34.4);
    assert_eq!(
        body["standing"],
        json!({
            "service_level": "worse", "avg_speed_of_answer_s": "better",
            "abandonment_rate": "worse", "first_call_resolution": "within", "csat": "worse",
            "escalation_rate": "worse", "conversion_rate": "better", "avg_duration_s": "better"
        })
    );
    let paid = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["channel"] == "Paid Search")
        .unwrap();
    assert_eq!(
        paid["first_call_resolution"], 0.0,
        "A called back within 7 days"
    );
    assert_eq!(paid["appointment_rate"], 0.5);
    assert_eq!(paid["service_level"], 1.0);
    let res = report(
        &app,
        &app.api_key,
        &pid,
        "service",
        &format!("from={DAY}&to={DAY}&format=csv"),
    )
    .await;
    let records = parse_csv(&res.text().await.unwrap());
    let bench = records.last().unwrap();
    assert_eq!(bench["channel"], "Benchmark");
    assert_eq!(bench["abandonment_rate"], "0.05-0.08");
    assert_eq!(records[records.len() - 2]["service_level"], "0.6");
}

async fn another_account_sees_no_report_cost_or_setting(app: TestApp) {
    let pid = scenario(&app).await;
    let other = app.new_account_key("Other").await;
    let q = format!("from={DAY}&to={DAY}");
    for path in [
        format!("/v1/properties/{pid}/reports/attribution?{q}"),
        format!("/v1/properties/{pid}/reports/attribution?{q}&format=csv"),
        format!("/v1/properties/{pid}/reports/service?{q}"),
        format!("/v1/properties/{pid}/costs?{q}"),
        format!("/v1/properties/{pid}/cost-settings"),
    ] {
        let (status, body) = error_of(app.get(&path, &other).await).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let res = app
        .post(
            &format!("/v1/properties/{pid}/costs"),
            &other,
            &json!({"rows": [{"date": DAY, "source": "google", "medium": "cpc", "amount": 1.0}]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = app
        .client
        .put(app.url(&format!("/v1/properties/{pid}/cost-settings")))
        .bearer_auth(&other)
        .json(&json!({"per_minute_cost": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // The owner's figures are untouched.
    let res = report(&app, &app.api_key, &pid, "attribution", &q).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["totals"], expected_totals());
}

async fn bad_report_and_cost_input_is_refused_with_the_field_named(app: TestApp) {
    let pid = app.create_property(&app.api_key).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = app.api_key.clone();
    for (query, field) in [
        ("to=2026-11-10", "from"),
        ("from=2026-11-10&to=10/11/2026", "to"),
        ("from=2026-11-10&to=2026-11-09", "to"),
        ("from=2025-01-01&to=2026-11-09", "to"),
        ("from=2026-11-10&to=2026-11-10&group_by=country", "group_by"),
        ("from=2026-11-10&to=2026-11-10&format=xml", "format"),
    ] {
        let (status, body) = error_of(report(&app, &key, &pid, "attribution", query).await).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(body["field"], field, "{query}");
    }
    let costs = format!("/v1/properties/{pid}/costs");
    for (body, field) in [
        (
            json!({"rows": [{"date": "2026-13-01", "source": "g", "medium": "cpc", "amount": 1}]}),
            "rows[0].date",
        ),
        (
            json!({"rows": [{"date": DAY, "source": " ", "medium": "cpc", "amount": 1}]}),
            "rows[0].source",
        ),
        (
            json!({"rows": [{"date": DAY, "source": "g", "medium": "cpc", "amount": -1}]}),
            "rows[0].amount",
        ),
        (json!({"rows": []}), "rows"),
    ] {
        let (status, err) = error_of(app.post(&costs, &key, &body).await).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {err}");
        assert_eq!(err["field"], field);
    }
    let res = app
        .client
        .post(app.url(&costs))
        .bearer_auth(&key)
        .header("content-type", "text/csv")
        .body("day,source\n2026-11-10,google\n")
        .send()
        .await
        .unwrap();
    let (status, err) = error_of(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["code"], "malformed_csv");
    // Nothing of a refused upload was stored.
    let listed: Value = app
        .get(&format!("{costs}?from=2026-01-01&to=2026-12-31"), &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["rows"], json!([]));
}

with_twilio_on_both_backends!(
    worked_scenario_attribution_report,
    worked_scenario_service_report,
    another_account_sees_no_report_cost_or_setting,
    bad_report_and_cost_input_is_refused_with_the_field_named,
);
