//! Calls end to end: Twilio's voice webhook and callbacks (signed with Twilio's algorithm),
//! merged idempotently, attributed to the visit that held the number, and read back through
//! the calls API. The attribution stories run on every stack (SQLite, PostgreSQL, PostgreSQL +
//! Redis).

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard::storage::CallRow;
use switchboard::telephony::twilio_signature;
use switchboard::time::Clock;

use crate::helpers::{Backend, TestApp, error_of, spawn_app_with};

pub const PUBLIC: &str = "https://calls.example.com";
pub const TOKEN: &str = "twilio-test-token-0123456789";
pub const CALLER: &str = "+14155559999";

/// Runs each story on every stack, with Twilio configured.
macro_rules! with_twilio_on_every_stack {
    ($($story:ident),* $(,)?) => {$(
        mod $story {
            use crate::helpers::Backend;
            #[tokio::test]
            async fn sqlite_in_process() {
                let app = super::twilio_app(Backend::Sqlite, None).await.unwrap();
                super::$story(app).await;
            }
            #[tokio::test]
            async fn postgres_in_process() {
                if let Some(app) = super::twilio_app(Backend::Postgres, None).await {
                    super::$story(app).await;
                }
            }
            #[tokio::test]
            async fn postgres_redis() {
                let Some(redis) = crate::helpers::redis_url() else { return };
                if let Some(app) = super::twilio_app(Backend::Postgres, Some(&redis)).await {
                    super::$story(app).await;
                }
            }
        }
    )*};
}

/// Runs each story on SQLite and PostgreSQL, with Twilio configured.
#[macro_export]
macro_rules! with_twilio_on_both_backends {
    ($($story:ident),* $(,)?) => {$(
        mod $story {
            use $crate::helpers::Backend;
            #[tokio::test]
            async fn sqlite() {
                let app = $crate::calls::twilio_app(Backend::Sqlite, None).await.unwrap();
                super::$story(app).await;
            }
            #[tokio::test]
            async fn postgres() {
                if let Some(app) = $crate::calls::twilio_app(Backend::Postgres, None).await {
                    super::$story(app).await;
                }
            }
        }
    )*};
}

pub async fn twilio_app(backend: Backend, redis: Option<&str>) -> Option<TestApp> {
    let mut settings = vec![("public_url", PUBLIC), ("twilio_auth_token", TOKEN)];
    if let Some(r) = redis {
        settings.push(("redis_url", r));
    }
    spawn_app_with(backend, &settings).await
}

/// Posts Twilio's form to `path` (with its query), signed as Twilio signs it.
pub async fn twilio(app: &TestApp, path: &str, params: &[(&str, &str)]) -> (StatusCode, String) {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let signature =
        twilio_signature::compute(TOKEN.as_bytes(), &format!("{PUBLIC}{path}"), &params);
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&params)
        .finish();
    let res = app
        .client
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    (res.status(), res.text().await.unwrap())
}

/// Someone dials `to` from `from`; returns the TwiML.
pub async fn dial(app: &TestApp, sid: &str, from: &str, to: &str) -> String {
    let (status, twiml) = twilio(
        app,
        "/v1/telephony/twilio/voice",
        &[
            ("CallSid", sid),
            ("AccountSid", "AC0123"),
            ("From", from),
            ("To", to),
            ("CallStatus", "ringing"),
            ("Direction", "inbound"),
            ("FromCity", "OAKLAND"),
            ("FromState", "CA"),
            ("FromCountry", "US"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{twiml}");
    twiml
}

/// Waits for every spooled event to be stored and the call attributed (moving the test clock
/// past the wait for other instances' ledgers).
pub async fn attributed(app: &TestApp, sid: &str) -> CallRow {
    attributed_from(app, "twilio", sid).await
}

pub async fn attributed_from(app: &TestApp, provider: &str, sid: &str) -> CallRow {
    for i in 0..200 {
        if i == 1 {
            // Past the wait for other instances' ledgers, and for a call no session held.
            app.clock.advance_ms(8_000);
        }
        app.state.calls.wake();
        if app.state.calls.is_drained()
            && let Some(row) = app
                .storage
                .call_by_provider_id(&app.account_id, provider, sid)
                .await
                .unwrap()
            && row.attribution.is_some()
        {
            return row;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("call {sid} was not attributed");
}

/// The call as the API shows it.
pub async fn call_json(app: &TestApp, call_id: &str) -> Value {
    let res = app.get(&format!("/v1/calls/{call_id}"), &app.api_key).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

/// A new property of the test's account; returns its id.
pub async fn property(app: &TestApp) -> String {
    app.create_property(&app.api_key).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

const PAID_URL: &str = "https://www.acme.example/plumbing?utm_source=google&utm_medium=cpc&utm_campaign=spring_sale&utm_term=emergency+plumber&gclid=Cj0KCQ";

with_twilio_on_every_stack!(
    a_call_on_a_leased_number_is_exact_and_a_second_call_is_a_repeat,
    a_shared_number_names_the_most_recently_active_session,
    the_overflow_number_and_a_source_number_carry_their_pools_attribution,
    a_call_after_the_lease_is_expired_within_the_window_and_none_after,
    a_repeat_caller_on_a_reassigned_number_is_credited_to_their_own_visit,
);

async fn a_call_on_a_leased_number_is_exact_and_a_second_call_is_a_repeat(app: TestApp) {
    let property_id = property(&app).await;
    app.pool_with(
        &property_id,
        json!({"name": "All", "kind": "session", "lease_minutes": 30,
               "numbers": ["+14155550110", "+14155550111"]}),
    )
    .await;
    let key = app.storage.list_properties(&app.account_id).await.unwrap()[0]
        .public_key
        .clone();
    let visit = app.new_visitor(&key, PAID_URL).await;
    let number = visit["number"].as_str().unwrap().to_owned();
    app.advance_minutes(2);
    app.returning_visitor(&key, visit["session"].as_str().unwrap())
        .await;
    app.advance_minutes(1);
    // A second visitor holds the other number: it must not be confused with the first.
    app.new_visitor(&key, "https://www.acme.example/").await;

    dial(&app, "CAfirst", CALLER, &number).await;
    let first = attributed(&app, "CAfirst").await;
    let a = first.attribution.as_ref().unwrap();
    assert_eq!(a.confidence, "exact");
    assert_eq!(a.session_id.as_deref(), visit["session"].as_str());
    assert_eq!(a.channel, "Paid Search");
    assert_eq!(a.campaign.as_deref(), Some("spring_sale"));
    assert_eq!(a.term.as_deref(), Some("emergency plumber"));
    assert_eq!(a.click_ids[0].as_deref(), Some("Cj0KCQ"), "gclid");
    assert!(first.first_call_id.is_none(), "a first-time caller");

    let detail = call_json(&app, &first.id).await;
    assert_eq!(detail["first_time"], true);
    assert_eq!(detail["attribution"]["landing_page"], PAID_URL);
    assert_eq!(detail["attribution"]["click_ids"]["gclid"], "Cj0KCQ");
    assert_eq!(detail["caller"]["city"], "OAKLAND");
    let views: Vec<&str> = detail["page_views"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["url"].as_str().unwrap())
        .collect();
    assert_eq!(views, [PAID_URL, "https://www.acme.example/pricing"]);
    assert!(detail["first_touch"].is_null());

    // The same caller calls again an hour later, on the property's published number's pool
    // number nobody holds any more: a repeat caller, first touch kept.
    app.advance_minutes(60);
    dial(&app, "CAsecond", CALLER, &number).await;
    let second = attributed(&app, "CAsecond").await;
    assert_eq!(second.first_call_id.as_deref(), Some(first.id.as_str()));
    let detail = call_json(&app, &second.id).await;
    assert_eq!(detail["first_time"], false);
    // The caller's own history names the visit (the lease's past would too).
    assert_eq!(detail["attribution"]["confidence"], "repeat");
    assert_eq!(detail["attribution"]["session_id"], visit["session"]);
    assert_eq!(detail["first_touch"]["confidence"], "exact");
    assert_eq!(detail["first_touch"]["campaign"], "spring_sale");
}

async fn a_shared_number_names_the_most_recently_active_session(app: TestApp) {
    let property_id = property(&app).await;
    app.pool_with(
        &property_id,
        json!({"name": "One", "kind": "session", "lease_minutes": 30, "exhaustion": "share",
               "numbers": ["+14155550120"]}),
    )
    .await;
    let key = app.storage.list_properties(&app.account_id).await.unwrap()[0]
        .public_key
        .clone();
    let a = app.new_visitor(&key, PAID_URL).await;
    app.advance_minutes(1);
    let b = app
        .new_visitor(
            &key,
            "https://www.acme.example/?utm_source=newsletter&utm_medium=email",
        )
        .await;
    assert_eq!(a["number"], b["number"], "one number, shared");
    app.advance_minutes(1);
    // The first visitor is the last one active before the call.
    app.returning_visitor(&key, a["session"].as_str().unwrap())
        .await;
    app.advance_minutes(1);
    dial(&app, "CAshared", CALLER, "+14155550120").await;
    let call = attributed(&app, "CAshared").await;
    // Invariant 4: attributing again, later, gives the same answer.
    app.advance_minutes(90);
    let again = app
        .state
        .attributor
        .attribute(&call, app.clock.now_ms())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(Some(&again), call.attribution.as_ref());
    let attr = call.attribution.unwrap();
    assert_eq!(attr.confidence, "shared");
    assert_eq!(attr.session_id.as_deref(), a["session"].as_str());
    assert_eq!(attr.candidates, [b["session"].as_str().unwrap()]);
}

async fn the_overflow_number_and_a_source_number_carry_their_pools_attribution(app: TestApp) {
    let property_id = property(&app).await;
    app.pool_with(
        &property_id,
        json!({"name": "Paid", "kind": "session", "match": {"channel": "Paid Search"},
               "lease_minutes": 30, "exhaustion": "overflow", "overflow_number": "+14155550139",
               "numbers": ["+14155550130"]}),
    )
    .await;
    app.pool_with(
        &property_id,
        json!({"name": "Newsletter", "kind": "source", "match": {"medium": "email"},
               "numbers": ["+14155550140"]}),
    )
    .await;
    let key = app.storage.list_properties(&app.account_id).await.unwrap()[0]
        .public_key
        .clone();
    let first = app.new_visitor(&key, PAID_URL).await;
    assert_eq!(first["number"], "+14155550130");
    let second = app.new_visitor(&key, PAID_URL).await;
    assert_eq!(second["number"], "+14155550139", "the pool is full");

    dial(&app, "CAoverflow", CALLER, "+14155550139").await;
    let call = attributed(&app, "CAoverflow").await;
    let attr = call.attribution.unwrap();
    assert_eq!(attr.confidence, "overflow");
    assert_eq!(attr.channel, "Paid Search");
    assert_eq!(attr.session_id.as_deref(), second["session"].as_str());

    let reader = app
        .new_visitor(&key, "https://www.acme.example/?utm_source=newsletter&utm_medium=email&utm_campaign=november")
        .await;
    assert_eq!(reader["number"], "+14155550140");
    dial(&app, "CAsource", "+14155558888", "+14155550140").await;
    let attr = attributed(&app, "CAsource").await.attribution.unwrap();
    assert_eq!(attr.confidence, "source");
    assert_eq!(attr.channel, "Email");
    assert_eq!(attr.medium.as_deref(), Some("email"));
    assert_eq!(attr.campaign.as_deref(), Some("november"));
}

async fn a_call_after_the_lease_is_expired_within_the_window_and_none_after(app: TestApp) {
    let property_id = property(&app).await;
    app.pool_with(
        &property_id,
        json!({"name": "All", "kind": "session", "lease_minutes": 30,
               "numbers": ["+14155550150"]}),
    )
    .await;
    let key = app.storage.list_properties(&app.account_id).await.unwrap()[0]
        .public_key
        .clone();
    let visit = app.new_visitor(&key, PAID_URL).await;
    // The lease ends 30 minutes after the visit; the call comes a minute later.
    app.advance_minutes(31);
    dial(&app, "CAlate", CALLER, "+14155550150").await;
    let attr = attributed(&app, "CAlate").await.attribution.unwrap();
    assert_eq!(attr.confidence, "expired");
    assert_eq!(attr.session_id.as_deref(), visit["session"].as_str());
    assert_eq!(attr.channel, "Paid Search");

    // A day and more later: nothing to go on.
    app.advance_minutes(24 * 60);
    dial(&app, "CAtoolate", "+14155557777", "+14155550150").await;
    let attr = attributed(&app, "CAtoolate").await.attribution.unwrap();
    assert_eq!(attr.confidence, "none");
    assert_eq!(attr.channel, "Unattributed");
    assert_eq!(attr.session_id, None);
}

/// The number passed to another visitor since the caller's first call: the caller, redialling
/// it, is credited to their own visit (`repeat`, the holder named as the other candidate); a
/// new caller on it to its holder (`exact`); a withheld number has no history; an erased caller
/// neither.
async fn a_repeat_caller_on_a_reassigned_number_is_credited_to_their_own_visit(app: TestApp) {
    const NUMBER: &str = "+14155550160";
    let property_id = property(&app).await;
    app.pool_with(
        &property_id,
        json!({"name": "One", "kind": "session", "lease_minutes": 30, "numbers": [NUMBER]}),
    )
    .await;
    let key = app.storage.list_properties(&app.account_id).await.unwrap()[0]
        .public_key
        .clone();
    let first = app.new_visitor(&key, PAID_URL).await;
    assert_eq!(first["number"], NUMBER);
    dial(&app, "CArep1", CALLER, NUMBER).await;
    let call = attributed(&app, "CArep1").await.attribution.unwrap();
    assert_eq!(call.confidence, "exact");

    // Two hours on, the number is another visitor's.
    app.advance_minutes(120);
    let second = app
        .new_visitor(
            &key,
            "https://www.acme.example/?utm_source=newsletter&utm_medium=email",
        )
        .await;
    assert_eq!(second["number"], NUMBER);
    dial(&app, "CArep2", CALLER, NUMBER).await;
    let call = attributed(&app, "CArep2").await.attribution.unwrap();
    assert_eq!(call.confidence, "repeat");
    assert_eq!(call.session_id.as_deref(), first["session"].as_str());
    assert_eq!(call.channel, "Paid Search");
    assert_eq!(call.candidates, [second["session"].as_str().unwrap()]);
    // And again: the history holds.
    dial(&app, "CArep3", CALLER, NUMBER).await;
    let call = attributed(&app, "CArep3").await.attribution.unwrap();
    assert_eq!(call.confidence, "repeat");
    assert_eq!(call.session_id.as_deref(), first["session"].as_str());

    // Someone the service never heard from calls the number they are shown: its holder.
    dial(&app, "CAnew", "+14155557001", NUMBER).await;
    let call = attributed(&app, "CAnew").await.attribution.unwrap();
    assert_eq!(call.confidence, "exact");
    assert_eq!(call.session_id.as_deref(), second["session"].as_str());
    // A withheld number has no history.
    dial(&app, "CAanon", "+266696687", NUMBER).await;
    let call = attributed(&app, "CAanon").await.attribution.unwrap();
    assert_eq!(call.confidence, "exact");

    // An erased caller has no history either.
    let res = app
        .delete(
            &format!("/v1/callers/{}", CALLER.replace('+', "%2B")),
            &app.api_key,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    dial(&app, "CArep4", CALLER, NUMBER).await;
    let call = attributed(&app, "CArep4").await.attribution.unwrap();
    assert_eq!(call.confidence, "exact");
    assert_eq!(call.session_id.as_deref(), second["session"].as_str());
}

/// A tracked property with one leased call in progress: (property id, tracking number).
async fn one_call(app: &TestApp, sid: &str) -> (String, String) {
    let property_id = property(app).await;
    app.create_pool(&app.api_key, &property_id, &["+14155550160"])
        .await;
    let twiml = dial(app, sid, CALLER, "+14155550160").await;
    assert!(
        twiml.contains(
            "action=\"https://calls.example.com/v1/telephony/twilio/dial?tn=%2B14155550160\""
        ),
        "{twiml}"
    );
    (property_id, "+14155550160".to_owned())
}

fn ts(second: u32) -> String {
    format!("Mon, 23 Nov 2026 10:00:{second:02} +0000")
}

/// Invariant 2 for callbacks: the same callback ten times, and callbacks out of order, leave
/// the call as one ordered delivery would.
#[tokio::test]
async fn callbacks_repeated_and_out_of_order_never_move_a_call_backwards() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = twilio_app(backend, None).await else {
            continue;
        };
        let (property_id, tn) = one_call(&app, "CAlife").await;
        let status_path = format!("/v1/telephony/twilio/status?tn={}", tn.replace('+', "%2B"));
        let dial_path = format!("/v1/telephony/twilio/dial?tn={}", tn.replace('+', "%2B"));
        let rec_path = "/v1/telephony/twilio/recording".to_owned();
        let (t1, t2, t3, t4) = (ts(1), ts(6), ts(50), ts(51));
        let leg = |status: &'static str, seq: &'static str, t: &str, dur: Option<&'static str>| {
            let mut p = vec![
                ("CallSid", "CAleg"),
                ("ParentCallSid", "CAlife"),
                ("CallStatus", status),
                ("SequenceNumber", seq),
                ("Timestamp", t),
            ];
            if let Some(d) = dur {
                p.push(("CallDuration", d));
            }
            p.into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect::<Vec<(String, String)>>()
        };
        let events: Vec<(String, Vec<(String, String)>)> = vec![
            (status_path.clone(), leg("ringing", "1", &t1, None)),
            (status_path.clone(), leg("in-progress", "2", &t2, None)),
            (status_path.clone(), leg("completed", "3", &t3, Some("44"))),
            (
                dial_path.clone(),
                [
                    ("CallSid", "CAlife"),
                    ("To", tn.as_str()),
                    ("DialCallStatus", "completed"),
                    ("DialCallDuration", "44"),
                ]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ),
            (
                status_path.clone(),
                [
                    ("CallSid", "CAlife"),
                    ("CallStatus", "completed"),
                    ("CallDuration", "51"),
                    ("SequenceNumber", "4"),
                    ("Timestamp", t4.as_str()),
                ]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ),
            (
                rec_path.clone(),
                [
                    ("CallSid", "CAlife"),
                    ("RecordingSid", "RE1"),
                    (
                        "RecordingUrl",
                        "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1",
                    ),
                    ("RecordingStatus", "completed"),
                    ("RecordingDuration", "44"),
                ]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ),
        ];
        // Newest first, each ten times.
        for (path, params) in events.iter().rev() {
            for _ in 0..10 {
                let pairs: Vec<(&str, &str)> = params
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let (status, body) = twilio(&app, path, &pairs).await;
                assert_eq!(status, StatusCode::OK, "{path}: {body}");
            }
        }
        let call = attributed(&app, "CAlife").await;
        let calls = app.storage.calls_of_property(&property_id).await.unwrap();
        assert_eq!(calls.len(), 1, "one call, whatever was repeated");
        assert_eq!(call.call.status, "completed");
        assert_eq!(call.outcome.as_deref(), Some("answered"));
        assert_eq!(
            call.answered_at,
            Some(1_795_428_006_000),
            "the leg's answer time"
        );
        assert_eq!(call.talk_s, Some(44));
        assert_eq!(call.duration_s, Some(51));
        assert_eq!(call.dial_status.as_deref(), Some("completed"));
        assert_eq!(call.recording_sid.as_deref(), Some("RE1"));
        assert_eq!(call.last_sequence, Some(4));
        assert_eq!(call.origin, "voice");
        let view = call_json(&app, &call.id).await;
        assert_eq!(view["recording"]["duration_s"], 44);
        assert_eq!(view["outcome"], "answered");
    }
}

with_twilio_on_both_backends!(
    a_status_for_an_unknown_call_creates_it_and_the_voice_event_completes_it,
    callbacks_are_verified_like_the_voice_webhook,
    the_calls_api_filters_pages_and_keeps_accounts_apart,
    an_erased_caller_leaves_anonymous_calls_behind,
    call_settings_shape_the_dial_and_the_whisper_names_the_channel,
);

/// A callback about a call the service has not heard of (its voice event is still in another
/// instance's spool) creates the call; the voice event then completes it.
async fn a_status_for_an_unknown_call_creates_it_and_the_voice_event_completes_it(app: TestApp) {
    let property_id = property(&app).await;
    app.create_pool(&app.api_key, &property_id, &["+14155550170"])
        .await;
    let (status, _) = twilio(
        &app,
        "/v1/telephony/twilio/status",
        &[
            ("CallSid", "CAorphan"),
            ("To", "+14155550170"),
            ("From", CALLER),
            ("CallStatus", "no-answer"),
            ("CallDuration", "0"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let call = attributed(&app, "CAorphan").await;
    assert_eq!(call.origin, "status");
    assert_eq!(call.call.status, "no-answer");
    assert_eq!(call.outcome.as_deref(), Some("missed"));
    assert_eq!(call.call.caller_number.as_deref(), Some(CALLER));

    dial(&app, "CAorphan", CALLER, "+14155550170").await;
    for _ in 0..100 {
        let row = attributed(&app, "CAorphan").await;
        if row.origin == "voice" {
            assert_eq!(
                row.call.status, "no-answer",
                "the status does not go back to ringing"
            );
            assert_eq!(row.call.caller_city.as_deref(), Some("OAKLAND"));
            let calls = app.storage.calls_of_property(&property_id).await.unwrap();
            assert_eq!(calls.len(), 1);
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the voice event never completed the call");
}

async fn callbacks_are_verified_like_the_voice_webhook(app: TestApp) {
    let (property_id, _) = one_call(&app, "CAverify").await;
    attributed(&app, "CAverify").await;
    for path in [
        "/v1/telephony/twilio/status",
        "/v1/telephony/twilio/dial",
        "/v1/telephony/twilio/recording",
        "/v1/telephony/twilio/whisper",
    ] {
        let res = app
            .client
            .post(app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("CallSid=CAverify&CallStatus=busy")
            .send()
            .await
            .unwrap();
        let (status, err) = error_of(res).await;
        assert_eq!(
            (status, err["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("missing_signature")),
            "{path}"
        );
        let res = app
            .client
            .post(app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", "bm9wZQ==")
            .body("CallSid=CAverify&CallStatus=busy")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
    }
    // Signed, but about no call: a clear error, not a silent 200.
    let (status, body) = twilio(
        &app,
        "/v1/telephony/twilio/status",
        &[("CallStatus", "busy")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("\"field\":\"CallSid\""), "{body}");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let calls = app.storage.calls_of_property(&property_id).await.unwrap();
    assert_eq!(
        calls[0].call.status, "ringing",
        "nothing forged was recorded"
    );
}

async fn the_calls_api_filters_pages_and_keeps_accounts_apart(app: TestApp) {
    let property_id = property(&app).await;
    app.create_pool(
        &app.api_key,
        &property_id,
        &["+14155550180", "+14155550181"],
    )
    .await;
    for (i, sid) in ["CA1", "CA2", "CA3"].iter().enumerate() {
        dial(&app, sid, &format!("+1415555000{i}"), "+14155550180").await;
        attributed(&app, sid).await;
        app.advance_minutes(1);
    }
    twilio(
        &app,
        "/v1/telephony/twilio/status?tn=%2B14155550180",
        &[("CallSid", "CA2"), ("CallStatus", "busy")],
    )
    .await;
    let list = |q: String| {
        let app = &app;
        let property_id = property_id.clone();
        async move {
            let res = app
                .get(
                    &format!("/v1/properties/{property_id}/calls{q}"),
                    &app.api_key,
                )
                .await;
            assert_eq!(res.status(), StatusCode::OK);
            res.json::<Value>().await.unwrap()
        }
    };
    let all = list(String::new()).await;
    let sids: Vec<&str> = all["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["provider_call_id"].as_str().unwrap())
        .collect();
    assert_eq!(sids, ["CA3", "CA2", "CA1"], "newest first");
    assert!(all["next"].is_null());

    let page = list("?limit=2".into()).await;
    assert_eq!(page["calls"].as_array().unwrap().len(), 2);
    let next = page["next"].as_str().unwrap();
    let rest = list(format!("?limit=2&cursor={next}")).await;
    assert_eq!(rest["calls"][0]["provider_call_id"], "CA1");

    for _ in 0..50 {
        let missed = list("?outcome=missed".into()).await;
        if missed["calls"].as_array().unwrap().len() == 1 {
            assert_eq!(missed["calls"][0]["provider_call_id"], "CA2");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let busy = list("?status=busy&confidence=none&channel=Unattributed".into()).await;
    assert_eq!(busy["calls"].as_array().unwrap().len(), 1, "{busy}");
    let later = list("?from=2026-05-29T00:00:00Z".into()).await;
    assert_eq!(later["calls"].as_array().unwrap().len(), 0);

    for (q, field) in [
        ("?limit=0", "limit"),
        ("?confidence=sure", "confidence"),
        ("?status=ringing-ish", "status"),
        ("?from=yesterday", "from"),
        ("?cursor=abc", "cursor"),
    ] {
        let res = app
            .get(
                &format!("/v1/properties/{property_id}/calls{q}"),
                &app.api_key,
            )
            .await;
        let (status, err) = error_of(res).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{q}");
        assert_eq!(err["field"], field);
    }
    let (status, err) = error_of(
        app.get(
            &format!("/v1/properties/{property_id}/calls?limit=x"),
            &app.api_key,
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_query"))
    );

    // Another account sees neither the property's calls nor a call by id.
    let other = app.new_account_key("Account B").await;
    let call_id = all["calls"][0]["id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/v1/properties/{property_id}/calls"), &other)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&format!("/v1/calls/{call_id}"), &other)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let res = app
        .delete(&format!("/v1/callers/{}", "%2B14155550000"), &other)
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["erased_calls"], 0);
}

/// GDPR: erasing a caller removes their number and recordings from every call of the account,
/// and the calls still count (each erased caller once).
async fn an_erased_caller_leaves_anonymous_calls_behind(app: TestApp) {
    let (property_id, tn) = one_call(&app, "CAgdpr1").await;
    attributed(&app, "CAgdpr1").await;
    app.advance_minutes(5);
    dial(&app, "CAgdpr2", CALLER, &tn).await;
    twilio(
        &app,
        "/v1/telephony/twilio/recording",
        &[
            ("CallSid", "CAgdpr2"),
            ("RecordingUrl", "https://api.twilio.com/rec/RE9"),
            ("RecordingStatus", "completed"),
        ],
    )
    .await;
    let second = attributed(&app, "CAgdpr2").await;
    assert!(second.first_call_id.is_some());
    for _ in 0..50 {
        if app
            .storage
            .call_by_provider_id(&app.account_id, "twilio", "CAgdpr2")
            .await
            .unwrap()
            .unwrap()
            .recording_url
            .is_some()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let res = app
        .delete("/v1/callers/+1%20415%20555%209999", &app.api_key)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["erased_calls"], 2);
    let calls = app.storage.calls_of_property(&property_id).await.unwrap();
    assert_eq!(calls.len(), 2);
    for c in &calls {
        assert!(c.erased);
        assert_eq!(c.call.caller_number, None);
        assert_eq!(c.recording_url, None);
    }
    let view = call_json(&app, &second.id).await;
    assert_eq!(view["caller"]["erased"], true);
    assert!(view["recording"].is_null());
    assert!(!view.to_string().contains("5559999"), "{view}");
    let (status, err) = error_of(app.delete("/v1/callers/not-a-number", &app.api_key).await).await;
    assert_eq!(
        (status, err["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("e164"))
    );
}

/// Per-property settings shape the forwarding TwiML, and the whisper tells the business where
/// the call came from.
async fn call_settings_shape_the_dial_and_the_whisper_names_the_channel(app: TestApp) {
    let property_id = property(&app).await;
    app.create_pool(&app.api_key, &property_id, &["+14155550190"])
        .await;
    let res = app
        .client
        .patch(app.url(&format!("/v1/properties/{property_id}")))
        .bearer_auth(&app.api_key)
        .json(&json!({"call_settings": {"ring_timeout_s": 25, "record": true, "whisper": "channel", "caller_id": "tracking_number"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["call_settings"]["ring_timeout_s"], 25);
    let res = app
        .client
        .patch(app.url(&format!("/v1/properties/{property_id}")))
        .bearer_auth(&app.api_key)
        .json(&json!({"call_settings": {"ring_timeout_s": 1}}))
        .send()
        .await
        .unwrap();
    let (status, err) = error_of(res).await;
    assert_eq!(
        (status, err["field"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("call_settings.ring_timeout_s")
        )
    );

    let key = app.storage.list_properties(&app.account_id).await.unwrap()[0]
        .public_key
        .clone();
    app.new_visitor(&key, PAID_URL).await;
    let twiml = dial(&app, "CAwhisper", CALLER, "+14155550190").await;
    assert!(
        twiml.contains("callerId=\"+14155550190\" timeout=\"25\""),
        "{twiml}"
    );
    assert!(
        twiml.contains("record=\"record-from-answer-dual\""),
        "{twiml}"
    );
    assert!(
        twiml.contains(
            "url=\"https://calls.example.com/v1/telephony/twilio/whisper?call=CAwhisper&amp;tn=%2B14155550190\""
        ),
        "{twiml}"
    );
    attributed(&app, "CAwhisper").await;
    let (status, say) = twilio(
        &app,
        "/v1/telephony/twilio/whisper?call=CAwhisper&tn=%2B14155550190",
        &[("CallSid", "CAleg"), ("ParentCallSid", "CAwhisper")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(say.contains("<Say>Call from Paid Search.</Say>"), "{say}");
}

pub async fn generic(app: &TestApp, secret: Option<&str>, body: &Value) -> (StatusCode, Value) {
    let raw = body.to_string();
    let mut req = app
        .client
        .post(app.url("/v1/telephony/calls"))
        .header("content-type", "application/json");
    if let Some(s) = secret {
        req = req.header(
            "x-switchboard-signature",
            switchboard::telephony::generic::sign(s.as_bytes(), raw.as_bytes()),
        );
    }
    let res = req.body(raw).send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Other providers post one signed JSON model; calls land in the same table, attributed alike.
#[tokio::test]
async fn the_generic_endpoint_routes_records_and_refuses_what_is_not_signed() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = twilio_app(backend, None).await else {
            continue;
        };
        let property_id = property(&app).await;
        app.create_pool(&app.api_key, &property_id, &["+14155550200"])
            .await;
        let started = json!({"event": "call.started", "provider": "telnyx", "call_id": "v3:abc",
                             "to": "+1 415 555 0200", "from": CALLER});
        let (status, err) = generic(&app, Some("guess"), &started).await;
        assert_eq!(
            (status, err["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("calls_secret_not_set"))
        );

        let res = app
            .post(
                "/v1/account/telephony/calls-secret",
                &app.api_key,
                &json!({}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let secret = res.json::<Value>().await.unwrap()["calls_secret"]
            .as_str()
            .unwrap()
            .to_owned();

        let (status, answer) = generic(&app, Some(&secret), &started).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["action"], "forward");
        assert_eq!(answer["forward_to"], "+14155550101");
        assert_eq!(answer["timeout_s"], 20);
        assert_eq!(answer["caller_id"], CALLER);
        // Repeated: still one call.
        assert_eq!(
            generic(&app, Some(&secret), &started).await.0,
            StatusCode::OK
        );
        let update = json!({"event": "call.updated", "provider": "telnyx", "call_id": "v3:abc",
                            "to": "+14155550200", "status": "completed", "answered": true,
                            "duration_s": 61, "talk_s": 55, "sequence": 3});
        let (status, _) = generic(&app, Some(&secret), &update).await;
        assert_eq!(status, StatusCode::ACCEPTED);

        let call = attributed_from(&app, "telnyx", "v3:abc").await;
        assert_eq!(call.attribution.unwrap().confidence, "none");
        let calls = app.storage.calls_of_property(&property_id).await.unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].call.status, "completed");
        assert_eq!(calls[0].outcome.as_deref(), Some("answered"));
        assert_eq!(calls[0].talk_s, Some(55));

        for (body, signed_with, status, code) in [
            (
                started.clone(),
                Some("sbcs_wrong"),
                StatusCode::FORBIDDEN,
                "invalid_signature",
            ),
            (
                started.clone(),
                None,
                StatusCode::BAD_REQUEST,
                "missing_signature",
            ),
            (
                json!({"event": "call.started", "provider": "telnyx", "call_id": "x", "to": "+14155550299"}),
                Some(secret.as_str()),
                StatusCode::NOT_FOUND,
                "unknown_number",
            ),
            (
                json!({"event": "call.updated", "provider": "telnyx", "call_id": "x", "to": "+14155550200", "status": "exploded"}),
                Some(secret.as_str()),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
            ),
            (
                json!({"event": "call.started", "provider": "twilio", "call_id": "x", "to": "+14155550200"}),
                Some(secret.as_str()),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
            ),
            (
                json!({"event": "call.ended", "provider": "telnyx", "call_id": "x", "to": "+14155550200"}),
                Some(secret.as_str()),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
            ),
        ] {
            let (got, err) = generic(&app, signed_with, &body).await;
            assert_eq!(
                (got, err["error"]["code"].as_str()),
                (status, Some(code)),
                "{body}"
            );
        }
        assert_eq!(
            app.storage
                .calls_of_property(&property_id)
                .await
                .unwrap()
                .len(),
            1
        );
    }
}

/// An account that connects its own Twilio account: its calls are verified with its token,
/// and that token reaches only its own numbers and calls.
#[tokio::test]
async fn an_accounts_own_twilio_token_verifies_its_calls_and_reaches_nothing_else() {
    // No service-wide token at all.
    let app = spawn_app_with(Backend::Sqlite, &[("public_url", PUBLIC)])
        .await
        .unwrap();
    let property_id = property(&app).await;
    app.create_pool(&app.api_key, &property_id, &["+14155550210"])
        .await;
    let sid_a = "AC00000000000000000000000000000001";
    let token_a = "account-a-own-twilio-token";
    let res = app
        .client
        .put(app.url("/v1/account/telephony"))
        .bearer_auth(&app.api_key)
        .json(&json!({"twilio_account_sid": sid_a, "twilio_auth_token": token_a}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["twilio_auth_token_set"], true);
    assert!(!body.to_string().contains(token_a), "never shown again");

    let post = |token: &'static str, sid: &'static str, call: &'static str, to: &'static str| {
        let app = &app;
        async move {
            let params: Vec<(String, String)> = [
                ("CallSid", call),
                ("AccountSid", sid),
                ("From", CALLER),
                ("To", to),
            ]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
            let path = "/v1/telephony/twilio/voice";
            let sig =
                twilio_signature::compute(token.as_bytes(), &format!("{PUBLIC}{path}"), &params);
            let body: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&params)
                .finish();
            let res = app
                .client
                .post(app.url(path))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-twilio-signature", sig)
                .body(body)
                .send()
                .await
                .unwrap();
            (res.status(), res.text().await.unwrap())
        }
    };
    let (status, twiml) = post(token_a, sid_a, "CAa1", "+14155550210").await;
    assert_eq!(status, StatusCode::OK);
    assert!(twiml.contains(">+14155550101</Number>"), "{twiml}");
    assert_eq!(
        post("not-the-token-at-all", sid_a, "CAa2", "+14155550210")
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // An unknown Twilio account, with no service-wide token to fall back on.
    assert_eq!(
        post(
            token_a,
            "AC00000000000000000000000000000009",
            "CAa3",
            "+14155550210"
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );

    // Account B connects its own Twilio account; it cannot take A's, nor reach A's numbers.
    let key_b = app.new_account_key("Account B").await;
    let put_b = |sid: &'static str| {
        let app = &app;
        let key_b = key_b.clone();
        async move {
            app.client
                .put(app.url("/v1/account/telephony"))
                .bearer_auth(&key_b)
                .json(&json!({"twilio_account_sid": sid, "twilio_auth_token": "account-b-twilio-token"}))
                .send()
                .await
                .unwrap()
        }
    };
    // Without the proof (turned off here), B may claim A's Twilio account too: its token
    // still verifies nothing of A's (`tests/api/carrier_credentials.rs`).
    assert_eq!(put_b(sid_a).await.status(), StatusCode::OK);
    let (status, err) = error_of(put_b("AC123").await).await;
    assert_eq!(
        (status, err["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("twilio_account_sid"))
    );
    assert_eq!(
        put_b("AC00000000000000000000000000000002").await.status(),
        StatusCode::OK
    );
    let (status, twiml) = post(
        "account-b-twilio-token",
        "AC00000000000000000000000000000002",
        "CAb1",
        "+14155550210",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        twiml.contains("<Hangup/>"),
        "B's Twilio cannot route A's number: {twiml}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let calls = app.storage.calls_of_property(&property_id).await.unwrap();
    assert_eq!(calls.len(), 1, "only A's own call was recorded");
}
