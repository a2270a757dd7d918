//! The live feed: a subscriber sees a call ring, then complete with its attribution, also when
//! the call reaches another instance (relayed through Redis); another account's property has
//! no feed.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::calls::{CALLER, PUBLIC, TOKEN, attributed, dial, property, twilio, twilio_app};
use crate::helpers::{
    Backend, TestApp, error_of, redis_cluster_urls, redis_url, spawn_app_with, spawn_sibling,
};

const PAID_URL: &str =
    "https://www.acme.example/plumbing?utm_source=google&utm_medium=cpc&utm_campaign=spring_sale";

/// Reads a `text/event-stream` answer event by event.
pub struct Feed {
    pub res: reqwest::Response,
    buf: String,
}

impl Feed {
    pub async fn open(app: &TestApp, property_id: &str, auth: Auth<'_>) -> Self {
        let res = auth
            .apply(
                app.client
                    .get(app.url(&format!("/v1/properties/{property_id}/live"))),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        let mut feed = Self {
            res,
            buf: String::new(),
        };
        // The first frame is a comment: the subscription exists once it has arrived.
        feed.frame().await;
        feed
    }

    async fn frame(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let frame = self.buf[..end].to_owned();
                self.buf.drain(..end + 2);
                return frame;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.res.chunk())
                .await
                .expect("an event within 10 s")
                .unwrap()
                .expect("the feed stays open");
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next event (comments skipped).
    async fn event(&mut self) -> Value {
        loop {
            let frame = self.frame().await;
            if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) {
                return serde_json::from_str(data).unwrap();
            }
        }
    }

    /// The events of one call until it completes: their types in order, and the last one.
    async fn until_completed(&mut self, sid: &str) -> (Vec<String>, Value) {
        let mut seen = Vec::new();
        loop {
            let e = self.event().await;
            if e["provider_call_id"] != sid {
                continue;
            }
            seen.push(e["type"].as_str().unwrap().to_owned());
            if e["type"] == "completed" {
                return (seen, e);
            }
        }
    }
}

#[derive(Clone, Copy)]
pub enum Auth<'a> {
    Key(&'a str),
    Cookie(&'a str),
}

impl Auth<'_> {
    fn apply(self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Auth::Key(key) => req.bearer_auth(key),
            Auth::Cookie(cookie) => req.header("cookie", cookie),
        }
    }
}

/// A visitor on the property's site is shown a number; returns it.
async fn paid_visit(app: &TestApp, property_id: &str) -> String {
    app.pool_with(
        property_id,
        json!({"name": "All", "kind": "session", "lease_minutes": 30,
               "numbers": ["+14155550110", "+14155550111"]}),
    )
    .await;
    let key = app
        .storage
        .property(&app.account_id, property_id)
        .await
        .unwrap()
        .public_key;
    let visit = app.new_visitor(&key, PAID_URL).await;
    visit["number"].as_str().unwrap().to_owned()
}

/// The business answers after 5 s and the call lasts a minute.
async fn answered_call(app: &TestApp, sid: &str, number: &str) {
    dial(app, sid, CALLER, number).await;
    let status = |s: &'static str| [("CallSid", sid), ("CallStatus", s), ("To", number)];
    app.clock.advance_ms(5_000);
    let (code, _) = twilio(app, "/v1/telephony/twilio/status", &status("in-progress")).await;
    assert_eq!(code, StatusCode::OK);
    app.clock.advance_ms(55_000);
    let mut completed = status("completed").to_vec();
    completed.push(("CallDuration", "60"));
    let (code, _) = twilio(app, "/v1/telephony/twilio/status", &completed).await;
    assert_eq!(code, StatusCode::OK);
}

/// Waits until the call is completed (the lead rule applied), driving the background pass.
async fn completed(app: &TestApp, sid: &str) {
    attributed(app, sid).await;
    for _ in 0..200 {
        app.state.calls.wake();
        let row = app
            .storage
            .call_by_provider_id(&app.account_id, "twilio", sid)
            .await
            .unwrap();
        if row.is_some_and(|r| r.notified_at.is_some()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("call {sid} never completed");
}

fn assert_rings_then_completes(seen: &[String], done: &Value, sid: &str) {
    assert_eq!(
        seen.first().map(String::as_str),
        Some("ringing"),
        "{seen:?}"
    );
    assert!(seen.contains(&"in_progress".to_owned()), "{seen:?}");
    assert!(seen.contains(&"ended".to_owned()), "{seen:?}");
    assert!(seen.contains(&"attributed".to_owned()), "{seen:?}");
    assert_eq!(done["provider_call_id"], sid);
    assert!(done["call_id"].is_string(), "{done}");
    assert_eq!(done["outcome"], "answered");
    assert_eq!(done["attribution"]["channel"], "Paid Search");
    assert_eq!(done["attribution"]["campaign"], "spring_sale");
    assert_eq!(done["attribution"]["confidence"], "exact");
    assert_eq!(done["attribution"]["landing_page"], PAID_URL);
    assert_eq!(done["caller"]["city"], "OAKLAND");
    assert_eq!(done["qualified"], true);
}

async fn a_subscriber_sees_a_call_ring_then_complete(app: TestApp) {
    let property_id = property(&app).await;
    let number = paid_visit(&app, &property_id).await;
    let mut feed = Feed::open(&app, &property_id, Auth::Key(&app.api_key)).await;
    // Another property of the account hears nothing of it.
    let other = property(&app).await;
    let mut quiet = Feed::open(&app, &other, Auth::Key(&app.api_key)).await;

    dial(&app, "CAlive", CALLER, &number).await;
    // Ringing is published from the webhook, before the call reaches the database.
    let ringing = feed.event().await;
    assert_eq!(ringing["type"], "ringing", "{ringing}");
    assert_eq!(ringing["tracking_number"], number.as_str());
    assert!(ringing["call_id"].is_null());
    assert_eq!(ringing["caller"]["number"], CALLER);

    answered_call(&app, "CAlive2", &number).await;
    completed(&app, "CAlive2").await;
    let (seen, done) = feed.until_completed("CAlive2").await;
    assert_rings_then_completes(&seen, &done, "CAlive2");

    let res = tokio::time::timeout(Duration::from_millis(300), quiet.res.chunk()).await;
    assert!(res.is_err(), "another property's feed stays quiet: {res:?}");
    app.stop().await;
}

async fn another_accounts_property_has_no_feed(app: TestApp) {
    let theirs = app.new_account_key("Other").await;
    let their_property = app.create_property(&theirs).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .get(
            &format!("/v1/properties/{their_property}/live"),
            &app.api_key,
        )
        .await;
    let (status, error) = error_of(res).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["code"], "not_found");
    let res = app
        .client
        .get(app.url(&format!("/v1/properties/{their_property}/live")))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(res).await.0, StatusCode::UNAUTHORIZED);
}

crate::on_both_backends!(another_accounts_property_has_no_feed);

mod live_feed {
    use super::*;

    #[tokio::test]
    async fn sqlite() {
        let app = twilio_app(Backend::Sqlite, None).await.unwrap();
        a_subscriber_sees_a_call_ring_then_complete(app).await;
    }

    #[tokio::test]
    async fn postgres() {
        if let Some(app) = twilio_app(Backend::Postgres, None).await {
            a_subscriber_sees_a_call_ring_then_complete(app).await;
        }
    }

    /// Two instances behind a load balancer: the call reaches one, the subscriber is on the
    /// other.
    #[tokio::test]
    async fn postgres_redis_across_instances() {
        let Some(redis) = redis_url() else { return };
        across_instances(("redis_url", &redis)).await;
    }

    /// The same on a Redis Cluster: pub/sub reaches the subscriber whichever node it is on.
    #[tokio::test]
    async fn postgres_redis_cluster_across_instances() {
        let Some(nodes) = redis_cluster_urls() else {
            return;
        };
        across_instances(("redis_cluster_urls", &nodes)).await;
    }

    async fn across_instances(redis: (&str, &str)) {
        let settings = [("public_url", PUBLIC), ("twilio_auth_token", TOKEN), redis];
        let Some(app) = spawn_app_with(Backend::Postgres, &settings).await else {
            return;
        };
        let other = spawn_sibling(&app, &settings).await;
        let property_id = property(&app).await;
        let number = paid_visit(&app, &property_id).await;
        let mut feed = Feed::open(&other, &property_id, Auth::Key(&app.api_key)).await;
        answered_call(&app, "CAfar", &number).await;
        completed(&app, "CAfar").await;
        let (seen, done) = feed.until_completed("CAfar").await;
        assert_rings_then_completes(&seen, &done, "CAfar");
        other.stop().await;
        app.stop().await;
    }
}
