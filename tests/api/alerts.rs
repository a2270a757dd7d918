//! Alerts end to end: rules set through the API, conditions produced the real way (page views
//! leasing numbers, signed Twilio calls), passes run deterministically with
//! `alerts.evaluate_now()` at the test's clock, and the signed events a local receiver gets.

use std::time::Duration;

use chrono::TimeZone;
use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard::storage::{AlertKey, OutboundEvent};
use switchboard::webhooks::verify_signature;

use crate::calls::CALLER;
use crate::helpers::{Backend, TestApp, error_of, numbers, spawn_app_with, spawn_sibling};
use crate::outcomes::call_through;
use crate::webhooks::{Receiver, create_endpoint, deliver};
use crate::{on_both_backends, on_every_stack, with_twilio_on_both_backends};

on_every_stack!(a_pool_pushed_over_its_threshold_alerts_once_per_episode);

on_both_backends!(
    an_exhausted_pool_alerts_once,
    settings_default_validate_and_stay_in_their_account,
    concurrent_fires_of_one_alert_queue_one_event,
);

with_twilio_on_both_backends!(
    a_burst_of_missed_calls_alerts_once,
    no_calls_alert_once_in_business_hours_after_the_quiet_time,
);

const PAGE: &str = "https://www.acme.example/";
const TRACKING: &str = "+14155550300";

/// One alert event as the receiver got it, its signature checked.
struct Alert {
    event_type: String,
    idempotency_key: String,
    data: Value,
}

/// A local receiver registered as the account's webhook endpoint.
struct Watch {
    receiver: Receiver,
    secret: String,
}

impl Watch {
    async fn start(app: &TestApp) -> Self {
        let receiver = Receiver::start(0).await;
        let endpoint = create_endpoint(app, &app.api_key, &receiver.url).await;
        Self {
            receiver,
            secret: endpoint["secret"].as_str().unwrap().to_owned(),
        }
    }

    /// The `alert.*` events received so far (calls' events left out), each verified with the
    /// endpoint's secret.
    fn alerts(&self) -> Vec<Alert> {
        self.receiver
            .seen()
            .iter()
            .filter(|r| r.json()["type"].as_str().unwrap().starts_with("alert."))
            .map(|r| {
                assert_eq!(
                    verify_signature(
                        &self.secret,
                        r.header("switchboard-signature"),
                        &r.body,
                        r.timestamp(),
                        Duration::from_secs(300),
                    ),
                    Ok(()),
                    "every alert is signed"
                );
                let body = r.json();
                Alert {
                    event_type: body["type"].as_str().unwrap().to_owned(),
                    idempotency_key: r.header("idempotency-key").to_owned(),
                    data: body["data"].clone(),
                }
            })
            .collect()
    }

    fn types(&self) -> Vec<String> {
        self.alerts().into_iter().map(|a| a.event_type).collect()
    }

    async fn stop(&self) {
        self.receiver.stop().await;
    }
}

async fn evaluate(app: &TestApp) {
    app.state.alerts.evaluate_now().await.expect("alert pass");
}

/// An evaluation pass on each instance at once, after each has written its ledger.
async fn evaluate_all(apps: &[&TestApp]) {
    for app in apps {
        app.flush_ledger().await;
    }
    futures_util::future::join_all(apps.iter().map(|app| evaluate(app))).await;
}

/// A delivery pass on each instance in turn: one waits for its own background worker's pass,
/// which may have claimed an event first.
async fn deliver_all(apps: &[&TestApp]) {
    for app in apps {
        deliver(app).await;
    }
}

fn millis(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

async fn put_alerts(
    app: &TestApp,
    key: &str,
    property_id: &str,
    body: &Value,
) -> reqwest::Response {
    app.put(&format!("/v1/properties/{property_id}/alerts"), key, body)
        .await
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

async fn a_pool_pushed_over_its_threshold_alerts_once_per_episode(app: TestApp) {
    let watch = Watch::start(&app).await;
    let property = app.create_property(&app.api_key).await;
    let key = property["public_key"].as_str().unwrap();
    let pool = app
        .pool_with(
            &id(&property),
            json!({"name": "Everyone", "kind": "session", "lease_minutes": 30,
                   "numbers": numbers(200, 4)}),
        )
        .await;
    // The sibling shares the lease store when there is one to share.
    let redis = (app.state.leases.backend_name() == "redis")
        .then(|| crate::helpers::redis_url().expect("the app runs on Redis"));
    let extra: Vec<(&str, &str)> = redis.iter().map(|r| ("redis_url", r.as_str())).collect();
    let sibling = spawn_sibling(&app, &extra).await;
    let both = [&app, &sibling];

    let mut sessions = Vec::new();
    for _ in 0..2 {
        sessions.push(app.new_visitor(key, PAGE).await["session"].clone());
    }
    evaluate_all(&both).await;
    deliver_all(&both).await;
    assert!(watch.types().is_empty(), "2 of 4 numbers is under 75%");

    // A third visitor: 75%. Every page view and pass after it, on either instance, is the same
    // episode.
    sessions.push(app.new_visitor(key, PAGE).await["session"].clone());
    let fired_at = app.clock_now();
    for _ in 0..10 {
        for session in &sessions {
            app.returning_visitor(key, session.as_str().unwrap()).await;
        }
        evaluate_all(&both).await;
        app.clock.advance_ms(1_000);
    }
    deliver_all(&both).await;
    let alerts = watch.alerts();
    assert_eq!(watch.types(), ["alert.pool_utilisation"]);
    let alert = &alerts[0];
    assert_eq!(
        alert.idempotency_key,
        format!("alert.pool_utilisation:{}:{fired_at}", id(&pool))
    );
    let data = &alert.data;
    assert_eq!(data["rule"], "pool_utilisation");
    assert_eq!(data["state"], "firing");
    assert_eq!(
        data["property"],
        json!({"id": id(&property), "name": "Acme Plumbing"})
    );
    assert_eq!(data["pool"], json!({"id": id(&pool), "name": "Everyone"}));
    assert_eq!(
        (data["value"].clone(), data["threshold"].clone()),
        (json!(0.75), json!(0.75))
    );
    assert_eq!(
        (data["leased"].clone(), data["numbers"].clone()),
        (json!(3), json!(4))
    );
    assert_eq!(millis(&data["started_at"]), fired_at);
    assert_eq!(millis(&data["window"]["to"]), fired_at);

    // The leases run out; the alert resolves once the pool has stayed under for 10 minutes.
    app.advance_minutes(31);
    evaluate_all(&both).await;
    app.advance_minutes(9);
    evaluate_all(&both).await;
    deliver_all(&both).await;
    assert_eq!(
        watch.types(),
        ["alert.pool_utilisation"],
        "not clear long enough"
    );
    app.advance_minutes(1);
    let resolved_at = app.clock_now();
    evaluate_all(&both).await;
    evaluate_all(&both).await;
    deliver_all(&both).await;
    assert_eq!(watch.types(), ["alert.pool_utilisation", "alert.resolved"]);
    let resolved = &watch.alerts()[1];
    assert_eq!(resolved.data["rule"], "pool_utilisation");
    assert_eq!(resolved.data["state"], "resolved");
    assert_eq!(resolved.data["pool"]["id"], id(&pool));
    assert_eq!(resolved.data["leased"], 0);
    assert_eq!(millis(&resolved.data["started_at"]), fired_at);
    assert_eq!(millis(&resolved.data["resolved_at"]), resolved_at);

    // Armed again: a new episode is a new alert, with its own key.
    for _ in 0..3 {
        app.new_visitor(key, PAGE).await;
    }
    evaluate_all(&both).await;
    deliver_all(&both).await;
    let alerts = watch.alerts();
    assert_eq!(
        watch.types(),
        [
            "alert.pool_utilisation",
            "alert.resolved",
            "alert.pool_utilisation"
        ]
    );
    assert_ne!(alerts[2].idempotency_key, alerts[0].idempotency_key);
    sibling.stop().await;
    watch.stop().await;
}

async fn an_exhausted_pool_alerts_once(app: TestApp) {
    let watch = Watch::start(&app).await;
    let property = app.create_property(&app.api_key).await;
    let key = property["public_key"].as_str().unwrap();
    // Only exhaustion here: a disabled rule never fires, however full the pool.
    let res = put_alerts(
        &app,
        &app.api_key,
        &id(&property),
        &json!({"pool_utilisation": {"enabled": false}}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let pool = app
        .pool_with(
            &id(&property),
            json!({"name": "One", "kind": "session", "numbers": numbers(210, 1)}),
        )
        .await;
    app.new_visitor(key, PAGE).await;
    evaluate(&app).await;
    deliver(&app).await;
    assert!(watch.types().is_empty(), "full, but not exhausted yet");
    // Each later visitor finds no free number (and shares it): one alert for all of them.
    let fired_at = app.clock_now();
    for _ in 0..5 {
        app.new_visitor(key, PAGE).await;
        evaluate(&app).await;
        app.clock.advance_ms(5_000);
    }
    deliver(&app).await;
    let alerts = watch.alerts();
    assert_eq!(watch.types(), ["alert.pool_exhausted"]);
    let data = &alerts[0].data;
    assert_eq!(data["rule"], "exhaustion");
    assert_eq!(data["pool"], json!({"id": id(&pool), "name": "One"}));
    assert_eq!(
        (data["value"].clone(), data["threshold"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(millis(&data["started_at"]), fired_at);
    assert_eq!(
        millis(&data["window"]["to"]) - millis(&data["window"]["from"]),
        15 * 60_000
    );
    watch.stop().await;
}

async fn a_burst_of_missed_calls_alerts_once(app: TestApp) {
    let watch = Watch::start(&app).await;
    let property = app.create_property(&app.api_key).await;
    app.create_pool(&app.api_key, &id(&property), &[TRACKING])
        .await;
    call_through(&app, "CAanswered", CALLER, TRACKING, 60).await;
    for n in 0..7 {
        call_through(&app, &format!("CAmissed{n}"), CALLER, TRACKING, 0).await;
        evaluate(&app).await;
        deliver(&app).await;
        // Four missed of five calls is the first rate that counts (min_calls 5) and it is over
        // 30%; the misses after it are the same episode.
        let expected: &[&str] = if n >= 3 { &["alert.missed_calls"] } else { &[] };
        assert_eq!(watch.types(), expected, "after {} missed calls", n + 1);
    }
    let alert = &watch.alerts()[0];
    let data = &alert.data;
    assert_eq!(data["rule"], "missed_calls");
    assert_eq!(
        data["property"],
        json!({"id": id(&property), "name": "Acme Plumbing"})
    );
    assert_eq!(
        (data["calls"].clone(), data["missed"].clone()),
        (json!(5), json!(4))
    );
    assert_eq!(
        (data["value"].clone(), data["threshold"].clone()),
        (json!(0.8), json!(0.3))
    );
    assert_eq!(data["min_calls"], 5);
    assert_eq!(
        millis(&data["window"]["to"]) - millis(&data["window"]["from"]),
        3_600_000
    );
    assert!(data.get("pool").is_none(), "a property's rule");

    // An hour later the window holds no calls; ten quiet minutes more and it is resolved.
    app.advance_minutes(61);
    evaluate(&app).await;
    app.advance_minutes(10);
    evaluate(&app).await;
    deliver(&app).await;
    assert_eq!(watch.types(), ["alert.missed_calls", "alert.resolved"]);
    assert_eq!(watch.alerts()[1].data["rule"], "missed_calls");
    watch.stop().await;
}

/// 2026-06-01 is a Monday; the property's time zone is New York.
fn new_york(day: u32, hour: u32, minute: u32) -> i64 {
    chrono_tz::America::New_York
        .with_ymd_and_hms(2026, 6, day, hour, minute, 0)
        .single()
        .unwrap()
        .timestamp_millis()
}

async fn no_calls_alert_once_in_business_hours_after_the_quiet_time(app: TestApp) {
    // Created on Friday 5 June at 16:30; weekdays 09:00-17:00; an hour of business time.
    app.clock.set_ms(new_york(5, 16, 30));
    let watch = Watch::start(&app).await;
    let property = app.create_property(&app.api_key).await;
    app.create_pool(&app.api_key, &id(&property), &[TRACKING])
        .await;
    let res = put_alerts(
        &app,
        &app.api_key,
        &id(&property),
        &json!({"no_calls": {"enabled": true, "after_minutes": 60}}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);

    // Half an hour on Friday, the weekend and Monday before 09:30 do not make an hour.
    for (day, hour, minute) in [
        (5, 16, 45),
        (5, 17, 30),
        (6, 12, 0),
        (7, 23, 0),
        (8, 8, 59),
        (8, 9, 29),
    ] {
        app.clock.set_ms(new_york(day, hour, minute));
        evaluate(&app).await;
    }
    deliver(&app).await;
    assert!(watch.types().is_empty());

    app.clock.set_ms(new_york(8, 9, 30));
    evaluate(&app).await;
    // Still no calls: the rest of Monday, the night (closed) and Tuesday are the same episode.
    for (day, hour, minute) in [
        (8, 10, 0),
        (8, 16, 59),
        (8, 18, 0),
        (9, 3, 0),
        (9, 9, 0),
        (9, 12, 0),
    ] {
        app.clock.set_ms(new_york(day, hour, minute));
        evaluate(&app).await;
    }
    deliver(&app).await;
    let alerts = watch.alerts();
    assert_eq!(watch.types(), ["alert.no_calls"]);
    let data = &alerts[0].data;
    assert_eq!(data["rule"], "no_calls");
    assert_eq!(
        (data["value"].clone(), data["threshold"].clone()),
        (json!(60), json!(60))
    );
    assert_eq!(data["last_call_at"], Value::Null);
    assert_eq!(millis(&data["started_at"]), new_york(8, 9, 30));
    assert_eq!(millis(&data["window"]["from"]), new_york(5, 16, 30));
    assert_eq!(data["timezone"], "America/New_York");
    assert_eq!(data["business_hours"]["from"], "09:00");

    // A call proves the number works: ten minutes later the alert is resolved.
    app.clock.set_ms(new_york(9, 13, 0));
    call_through(&app, "CAfinally", CALLER, TRACKING, 30).await;
    evaluate(&app).await;
    app.advance_minutes(10);
    evaluate(&app).await;
    deliver(&app).await;
    assert_eq!(watch.types(), ["alert.no_calls", "alert.resolved"]);
    assert_eq!(watch.alerts()[1].data["rule"], "no_calls");
    watch.stop().await;
}

async fn settings_default_validate_and_stay_in_their_account(app: TestApp) {
    let property = app.create_property(&app.api_key).await;
    let path = format!("/v1/properties/{}/alerts", id(&property));
    let defaults = json!({
        "pool_utilisation": {"enabled": true, "threshold": 0.75},
        "exhaustion": {"enabled": true},
        "missed_calls": {"enabled": true, "threshold": 0.3, "min_calls": 5},
        "no_calls": {"enabled": false, "after_minutes": 120, "business_hours": {
            "days": ["mon", "tue", "wed", "thu", "fri"], "from": "09:00", "to": "17:00"}},
    });
    let get = |key: String| {
        let app = &app;
        let path = path.clone();
        async move {
            let res = app.get(&path, &key).await;
            let status = res.status();
            (status, res.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(
        get(app.api_key.clone()).await,
        (StatusCode::OK, defaults.clone())
    );

    // A field left out takes its default; the answer is what is stored.
    let res = put_alerts(
        &app,
        &app.api_key,
        &id(&property),
        &json!({"pool_utilisation": {"threshold": 0.9}, "missed_calls": {"min_calls": 10},
                "no_calls": {"enabled": true, "after_minutes": 30,
                             "business_hours": {"days": ["sun", "sat"], "from": "10:00"}}}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let stored: Value = res.json().await.unwrap();
    let mut expected = defaults.clone();
    expected["pool_utilisation"]["threshold"] = json!(0.9);
    expected["missed_calls"]["min_calls"] = json!(10);
    expected["no_calls"] = json!({"enabled": true, "after_minutes": 30, "business_hours": {
        "days": ["sat", "sun"], "from": "10:00", "to": "17:00"}});
    assert_eq!(stored, expected);
    assert_eq!(
        get(app.api_key.clone()).await,
        (StatusCode::OK, expected.clone())
    );

    // Bad values are refused naming the field, and change nothing.
    for (body, status, code, field) in [
        (
            json!({"pool_utilisation": {"threshold": 1.5}}),
            422,
            "invalid_field",
            "pool_utilisation.threshold",
        ),
        (
            json!({"missed_calls": {"threshold": 0}}),
            422,
            "invalid_field",
            "missed_calls.threshold",
        ),
        (
            json!({"missed_calls": {"min_calls": "five"}}),
            422,
            "invalid_field",
            "missed_calls.min_calls",
        ),
        (
            json!({"no_calls": {"after_minutes": 0}}),
            422,
            "invalid_field",
            "no_calls.after_minutes",
        ),
        (
            json!({"no_calls": {"business_hours": {"days": ["mon", "funday"]}}}),
            422,
            "invalid_field",
            "no_calls.business_hours.days[1]",
        ),
        (
            json!({"no_calls": {"business_hours": {"days": []}}}),
            422,
            "invalid_field",
            "no_calls.business_hours.days",
        ),
        (
            json!({"no_calls": {"business_hours": {"from": "9am"}}}),
            422,
            "invalid_field",
            "no_calls.business_hours.from",
        ),
        (
            json!({"no_calls": {"business_hours": {"from": "18:00"}}}),
            422,
            "invalid_field",
            "no_calls.business_hours.to",
        ),
        (
            json!({"pool_utilisation": {"treshold": 0.5}}),
            400,
            "unknown_field",
            "pool_utilisation.treshold",
        ),
    ] {
        let res = put_alerts(&app, &app.api_key, &id(&property), &body).await;
        let (got, error) = error_of(res).await;
        assert_eq!(got.as_u16(), status, "{body}: {error}");
        assert_eq!(error["code"], code, "{body}");
        assert_eq!(error["field"], field, "{body}: {error}");
    }
    assert_eq!(
        get(app.api_key.clone()).await,
        (StatusCode::OK, expected.clone())
    );

    // An empty body puts the defaults back.
    let res = put_alerts(&app, &app.api_key, &id(&property), &json!({})).await;
    assert_eq!(res.json::<Value>().await.unwrap(), defaults);

    // Another account's property does not exist, for reading or writing.
    let other = app.new_account_key("Account B").await;
    let (status, error) = get(other.clone()).await;
    assert_eq!(
        (status, error["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );
    let res = put_alerts(
        &app,
        &other,
        &id(&property),
        &json!({"exhaustion": {"enabled": false}}),
    )
    .await;
    let (status, error) = error_of(res).await;
    assert_eq!(
        (status, error["code"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );
    let (status, _) =
        error_of(put_alerts(&app, &app.api_key, "no-such-property", &json!({})).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(get(app.api_key.clone()).await, (StatusCode::OK, defaults));
}

/// Instances racing to fire one alert: one wins, and one event is queued.
async fn concurrent_fires_of_one_alert_queue_one_event(app: TestApp) {
    let watch = Watch::start(&app).await;
    let property = id(&app.create_property(&app.api_key).await);
    let key = AlertKey {
        property_id: &property,
        rule: "missed_calls",
        subject: &property,
    };
    let t0 = app.clock_now();
    let fires = (0..8).map(|n| {
        let storage = app.storage.clone();
        let account = app.account_id.clone();
        let idempotency_key = format!("alert.missed_calls:{property}:{}", t0 + n);
        async move {
            let data = json!({"attempt": n});
            let event = OutboundEvent {
                account_id: &account,
                event_type: "alert.missed_calls",
                idempotency_key: &idempotency_key,
                payload: &data,
            };
            storage.fire_alert(key, t0, &event).await.unwrap()
        }
    });
    let won = futures_util::future::join_all(fires).await;
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    let states = app.storage.alert_states(&property).await.unwrap();
    assert_eq!(states.len(), 1);
    assert!(states[0].firing && states[0].clear_since.is_none());
    deliver(&app).await;
    assert_eq!(watch.types(), ["alert.missed_calls"]);

    // Resolving needs the condition clear since the cutoff, and the episode it names.
    let since = states[0].since;
    let data = json!({});
    let resolved = OutboundEvent {
        account_id: &app.account_id,
        event_type: "alert.resolved",
        idempotency_key: "alert.resolved:test",
        payload: &data,
    };
    app.advance_minutes(1);
    let later = app.clock_now();
    assert!(
        !app.storage
            .resolve_alert(key, since, later, later, &resolved)
            .await
            .unwrap()
    );
    app.storage
        .mark_alert_clear(key, Some(t0 + 1_000))
        .await
        .unwrap();
    app.storage
        .mark_alert_clear(key, Some(t0 + 2_000))
        .await
        .unwrap();
    assert_eq!(
        app.storage.alert_states(&property).await.unwrap()[0].clear_since,
        Some(t0 + 1_000)
    );
    assert!(
        !app.storage
            .resolve_alert(key, since + 1, later, later, &resolved)
            .await
            .unwrap()
    );
    assert!(
        app.storage
            .resolve_alert(key, since, later, later, &resolved)
            .await
            .unwrap()
    );
    assert!(
        !app.storage
            .resolve_alert(key, since, later, later, &resolved)
            .await
            .unwrap()
    );
    assert!(!app.storage.alert_states(&property).await.unwrap()[0].firing);
    deliver(&app).await;
    assert_eq!(watch.types(), ["alert.missed_calls", "alert.resolved"]);
    watch.stop().await;
}

/// The background worker runs passes on its own, every `alert_interval_secs`.
#[tokio::test]
async fn the_background_worker_evaluates_without_being_asked() {
    let app = spawn_app_with(Backend::Sqlite, &[("alert_interval_secs", "1")])
        .await
        .unwrap();
    let watch = Watch::start(&app).await;
    let property = app.create_property(&app.api_key).await;
    app.pool_with(
        &id(&property),
        json!({"name": "One", "kind": "session", "numbers": numbers(220, 1)}),
    )
    .await;
    app.new_visitor(property["public_key"].as_str().unwrap(), PAGE)
        .await;
    for _ in 0..100 {
        if !watch.types().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(watch.types(), ["alert.pool_utilisation"]);
    watch.stop().await;
}
