//! GDPR erasure reaches everywhere the service keeps a caller's number in the account that asks:
//! its calls, queued and past webhook deliveries, GA4 events and the call spool on disk; a
//! call event still waiting in a spool lands erased; another account's calls stay as they are.

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard::storage::{CallEvent, NewCall};
use switchboard::telephony::spool::Spool;
use switchboard::time::Clock;

use crate::calls::{CALLER, attributed, call_json, dial};
use crate::ga4::{API_SECRET, CLIENT_ID, completed, patch_property, property_with_pool, visit};
use crate::helpers::{TestApp, spawn_sibling};
use crate::outcomes::call_through;
use crate::webhooks::{Receiver, create_endpoint};

/// Every file of a spool folder, as text.
fn spool_bytes(dir: &std::path::Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            text.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
        }
    }
    text
}

/// The texts of the rows of `sql` (one text column), on the app's database.
async fn texts(app: &TestApp, sql: &str, account_id: &str) -> Vec<String> {
    let pool = sqlx::AnyPool::connect(&app.db_url).await.unwrap();
    let rows: Vec<Option<String>> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(account_id)
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows.into_iter().flatten().collect()
}

/// Where the database keeps numbers of an account, column by column.
async fn stored_numbers(app: &TestApp, account_id: &str) -> Vec<String> {
    let mut all = Vec::new();
    for sql in [
        "SELECT caller_number FROM calls WHERE account_id = $1",
        "SELECT caller_name FROM calls WHERE account_id = $1",
        "SELECT recording_url FROM calls WHERE account_id = $1",
        "SELECT payload FROM webhook_deliveries WHERE account_id = $1",
        "SELECT payload FROM ga4_events WHERE account_id = $1",
        "SELECT fingerprint FROM caller_erasures WHERE account_id = $1",
        "SELECT caller_key FROM caller_erasures WHERE account_id = $1",
    ] {
        all.extend(texts(app, sql, account_id).await);
    }
    all
}

async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if done().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("{what}");
}

/// The digits alone, as the number might be spelled inside text.
const DIGITS: &str = "4155559999";

async fn an_erasure_reaches_every_place_and_no_other_account(app: TestApp) {
    // Account A: a webhook endpoint that fails (its delivery stays queued), GA4 on, and a call
    // from a visitor with a GA client id, completed with a recording.
    let failing = Receiver::start(1_000).await;
    let endpoint = create_endpoint(&app, &app.api_key, &failing.url).await;
    let (property_id, key) = property_with_pool(&app, &["+14155550700", "+14155550701"]).await;
    let ga4 = json!({"ga4": {"measurement_id": "G-TEST1234", "api_secret": API_SECRET,
                              "endpoint": format!("{}/mp/collect", failing.base)}});
    assert_eq!(
        patch_property(&app, &app.api_key, &property_id, &ga4)
            .await
            .status(),
        StatusCode::OK
    );
    let number = visit(&app, &key, Some(CLIENT_ID)).await;
    let call = call_through(&app, "CAerase1", CALLER, &number, 60).await;
    completed(&app, &call).await;
    let queued = texts(
        &app,
        "SELECT payload FROM webhook_deliveries WHERE account_id = $1 AND delivered_at IS NULL",
        &app.account_id,
    )
    .await;
    assert!(
        queued.iter().any(|p| p.contains(CALLER)),
        "the queued delivery names the caller: {queued:?}"
    );
    assert_eq!(
        texts(
            &app,
            "SELECT payload FROM ga4_events WHERE account_id = $1",
            &app.account_id
        )
        .await
        .len(),
        1,
        "a GA4 event is queued"
    );

    // Account B: a call from the same number.
    let b_key = app.new_account_key("Account B").await;
    let b_property = app.create_property(&b_key).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.create_pool(&b_key, &b_property, &["+14155550710"])
        .await;
    dial(&app, "CAeraseB", CALLER, "+14155550710").await;
    until("B's call is stored", async || app.state.calls.is_drained()).await;
    let b_account = app
        .storage
        .calls_of_property(&b_property)
        .await
        .unwrap()
        .pop()
        .expect("B's call")
        .call
        .account_id;
    assert!(
        spool_bytes(app.spool_dir()).contains(CALLER),
        "the spool kept it"
    );

    // An instance that went down with A's call event still waiting in its spool.
    let waiting_dir = tempfile::tempdir().unwrap();
    let waiting = Spool::<CallEvent>::open(waiting_dir.path()).unwrap();
    waiting
        .append(&CallEvent::Started(NewCall {
            account_id: app.account_id.clone(),
            property_id: property_id.clone(),
            pool_id: None,
            provider: "twilio".into(),
            provider_call_id: "CAwaiting".into(),
            tracking_number: "+14155550700".into(),
            caller_number: Some(CALLER.into()),
            caller_name: Some("ANN CALLER".into()),
            caller_city: Some("OAKLAND".into()),
            caller_state: Some("CA".into()),
            caller_zip: Some("94607".into()),
            caller_country: Some("US".into()),
            status: "ringing".into(),
            started_at: app.clock.now_ms() - 1_000,
        }))
        .unwrap();
    drop(waiting);

    let res = app.delete("/v1/callers/%2B14155559999", &app.api_key).await;
    assert_eq!(res.status(), StatusCode::OK);
    let erased: Value = res.json().await.unwrap();
    assert_eq!(erased["erased_calls"], 1, "{erased}");
    assert_eq!(erased["webhook_deliveries"], 1, "{erased}");
    assert_eq!(
        erased["ga4_events"], 0,
        "GA4 events carry no number: {erased}"
    );
    assert!(erased["spool_events"].as_u64().unwrap() >= 1, "{erased}");

    // Nowhere in A's rows, nor in this instance's spool files.
    for text in stored_numbers(&app, &app.account_id).await {
        assert!(!text.contains(DIGITS), "{text}");
    }
    let spool = spool_bytes(app.spool_dir());
    assert!(!spool.contains(DIGITS), "{spool}");
    let view = call_json(&app, call["id"].as_str().unwrap()).await;
    assert_eq!(view["caller"]["erased"], true);
    assert!(view["caller"]["number"].is_null() && view["recording"].is_null());
    // The queued delivery is still queued, and would send the erased call.
    let endpoint_id = endpoint["id"].as_str().unwrap();
    let history = crate::webhooks::deliveries(&app, &app.api_key, endpoint_id).await;
    assert_eq!(history[0]["status"], "pending", "{history:?}");
    let payload = &texts(
        &app,
        "SELECT payload FROM webhook_deliveries WHERE account_id = $1",
        &app.account_id,
    )
    .await[0];
    let payload: Value = serde_json::from_str(payload).unwrap();
    assert_eq!(payload["caller"]["erased"], true, "{payload}");
    assert_eq!(payload["caller"]["city"], "OAKLAND", "{payload}");

    // B's call of the same number is untouched.
    let b_numbers = texts(
        &app,
        "SELECT caller_number FROM calls WHERE account_id = $1",
        &b_account,
    )
    .await;
    assert_eq!(b_numbers, [CALLER]);

    // The instance that went down starts again: its waiting call lands erased, and its spool
    // is cleared of the number.
    let restarted = spawn_sibling(
        &app,
        &[
            ("public_url", crate::calls::PUBLIC),
            ("spool_dir", &waiting_dir.path().display().to_string()),
        ],
    )
    .await;
    until("the waiting call is stored", async || {
        restarted
            .storage
            .call_by_provider_id(&app.account_id, "twilio", "CAwaiting")
            .await
            .unwrap()
            .is_some()
    })
    .await;
    let landed = app
        .storage
        .call_by_provider_id(&app.account_id, "twilio", "CAwaiting")
        .await
        .unwrap()
        .unwrap();
    assert!(landed.erased);
    assert_eq!(landed.call.caller_number, None);
    assert_eq!(landed.call.caller_name, None);
    until("the restarted spool forgets the number", async || {
        !spool_bytes(waiting_dir.path()).contains(DIGITS)
    })
    .await;
    for text in stored_numbers(&app, &app.account_id).await {
        assert!(!text.contains(DIGITS), "{text}");
    }
    // One caller still: the waiting call carries the same stand-in as the erased one.
    let keys = texts(
        &app,
        "SELECT DISTINCT caller_key FROM calls WHERE account_id = $1 AND caller_key IS NOT NULL",
        &app.account_id,
    )
    .await;
    assert_eq!(keys.len(), 1, "{keys:?}");

    // A call the same person makes after the erasure is a new call, recorded as it comes.
    app.clock.advance_ms(60_000);
    dial(&app, "CAafter", CALLER, &number).await;
    let after = attributed(&app, "CAafter").await;
    assert_eq!(after.call.caller_number.as_deref(), Some(CALLER));
    restarted.stop().await;
    failing.stop().await;
}

crate::with_twilio_on_both_backends!(an_erasure_reaches_every_place_and_no_other_account);
