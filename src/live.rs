//! The live feed: calls as they happen (ringing, in progress, ended, attributed, completed),
//! for `GET /v1/properties/{id}/live` and the dashboard.
//!
//! Events are published from the call path without the database: the webhooks' events as they
//! are spooled, attribution and completion as the background pass stores them. Each instance
//! hands an event to its own subscribers at once (a broadcast channel per property that has
//! subscribers). With Redis, every event is also relayed over one pub/sub channel, so that the
//! subscribers of every instance see the calls that reached another one (on a Redis Cluster too:
//! classic pub/sub reaches every node). It is a feed, not a
//! log: the calls API is the record, and an event that cannot be relayed (Redis down, a slow
//! subscriber) is dropped rather than held up or retried.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{broadcast, watch};

use crate::attribution::view::{AttributionView, CallerView};
use crate::domain::CallStatus;
use crate::redis_client::RedisEndpoint;
use crate::relay::{Handler, Relay, TaskNames};
use crate::storage::{CallEvent, CallRow};
use crate::supervise::Supervisor;
use crate::time::{Millis, to_datetime};

/// The Redis pub/sub channel every instance publishes to and listens on.
const CHANNEL: &str = "sb:live";
/// Events a slow subscriber may fall behind by before it misses some.
const PER_SUBSCRIBER: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LiveKind {
    /// The voice webhook routed the call (or the business's phone rings).
    Ringing,
    /// The business answered.
    InProgress,
    /// The call has a final status.
    Ended,
    /// Other news of the call (a recording).
    Updated,
    /// The call's attribution is stored.
    Attributed,
    /// The call is completed: attributed, ended, and the lead rule applied.
    Completed,
}

/// One event of the feed, as subscribers receive it (one JSON object per SSE `data:` line).
/// Calls are keyed by `provider` and `provider_call_id`: the webhooks' events come before the
/// call is stored, so `call_id` is null until it is attributed.
#[derive(Debug, Clone, Serialize)]
pub struct LiveEvent {
    #[serde(rename = "type")]
    pub kind: LiveKind,
    pub property_id: String,
    pub provider: String,
    pub provider_call_id: String,
    pub call_id: Option<String>,
    pub tracking_number: String,
    pub caller: CallerView,
    /// The provider's status, when the event tells it.
    pub status: Option<String>,
    /// `answered` or `missed`, once known.
    pub outcome: Option<String>,
    /// When the event happened.
    pub at: DateTime<Utc>,
    /// When the call came in (null on a callback, which does not know).
    pub started_at: Option<DateTime<Utc>>,
    pub duration_s: Option<i64>,
    pub talk_s: Option<i64>,
    pub recording_url: Option<String>,
    pub attribution: Option<AttributionView>,
    pub qualified: Option<bool>,
}

impl LiveEvent {
    /// A provider's event as the webhook spooled it; None when its property is unknown (a
    /// callback for a number the routing table does not know).
    pub fn from_call_event(event: &CallEvent, at: Millis) -> Option<Self> {
        let (call, kind) = match event {
            CallEvent::Started(c) => (c, LiveKind::Ringing),
            CallEvent::Progress(p) => {
                let rank = p.status.as_deref().and_then(CallStatus::parse);
                let kind = match rank.map(CallStatus::rank) {
                    Some(3) => LiveKind::Ended,
                    Some(2) => LiveKind::InProgress,
                    Some(_) => LiveKind::Ringing,
                    None => LiveKind::Updated,
                };
                (&p.call, kind)
            }
        };
        if call.property_id.is_empty() {
            return None;
        }
        let mut e = Self {
            kind,
            property_id: call.property_id.clone(),
            provider: call.provider.clone(),
            provider_call_id: call.provider_call_id.clone(),
            call_id: None,
            tracking_number: call.tracking_number.clone(),
            caller: CallerView::of(call, false),
            status: None,
            outcome: None,
            at: to_datetime(at),
            started_at: None,
            duration_s: None,
            talk_s: None,
            recording_url: None,
            attribution: None,
            qualified: None,
        };
        match event {
            CallEvent::Started(c) => {
                e.status = Some(c.status.clone());
                e.started_at = Some(to_datetime(c.started_at));
            }
            CallEvent::Progress(p) => {
                e.status = p.status.clone();
                e.outcome = p.outcome.map(|o| o.as_str().to_owned());
                e.duration_s = p.duration_s;
                e.talk_s = p.talk_s;
                e.recording_url = p.recording_url.clone();
            }
        }
        Some(e)
    }

    /// A stored call (attributed or completed).
    pub fn from_row(kind: LiveKind, row: &CallRow, at: Millis) -> Self {
        let c = &row.call;
        Self {
            kind,
            property_id: c.property_id.clone(),
            provider: c.provider.clone(),
            provider_call_id: c.provider_call_id.clone(),
            call_id: Some(row.id.clone()),
            tracking_number: c.tracking_number.clone(),
            caller: CallerView::of(c, row.erased),
            status: Some(c.status.clone()),
            outcome: row.outcome.clone(),
            at: to_datetime(at),
            started_at: Some(to_datetime(c.started_at)),
            duration_s: row
                .duration_s
                .or_else(|| row.ended_at.map(|end| ((end - c.started_at) / 1000).max(0))),
            talk_s: row.talk_s,
            recording_url: row.recording_url.clone(),
            attribution: row.attribution.as_ref().map(AttributionView::from),
            qualified: row.qualified,
        }
    }
}

/// The local subscribers, per property. A property's channel exists while someone listens.
#[derive(Default)]
struct Topics(Mutex<HashMap<String, broadcast::Sender<Arc<str>>>>);

impl Topics {
    fn deliver(&self, property_id: &str, json: Arc<str>) {
        let mut topics = self.0.lock().expect("live topics lock");
        if let Some(sender) = topics.get(property_id)
            && sender.send(json).is_err()
        {
            // Nobody listens any more.
            topics.remove(property_id);
        }
    }

    fn subscribe(&self, property_id: &str) -> broadcast::Receiver<Arc<str>> {
        let mut topics = self.0.lock().expect("live topics lock");
        topics.retain(|_, s| s.receiver_count() > 0);
        topics
            .entry(property_id.to_owned())
            .or_insert_with(|| broadcast::channel(PER_SUBSCRIBER).0)
            .subscribe()
    }
}

pub struct LiveHub {
    topics: Arc<Topics>,
    /// With Redis: every instance's events reach this instance's subscribers.
    relay: Option<Relay>,
    closed: watch::Sender<bool>,
}

/// What a subscriber gets next.
pub enum Next {
    Event(Arc<str>),
    /// It fell this many events behind and missed them.
    Missed(u64),
    /// The instance is shutting down.
    End,
}

pub struct Subscription {
    events: broadcast::Receiver<Arc<str>>,
    closed: watch::Receiver<bool>,
}

impl Subscription {
    pub async fn next(&mut self) -> Next {
        if *self.closed.borrow() {
            return Next::End;
        }
        tokio::select! {
            event = self.events.recv() => match event {
                Ok(json) => Next::Event(json),
                Err(broadcast::error::RecvError::Lagged(n)) => Next::Missed(n),
                Err(broadcast::error::RecvError::Closed) => Next::End,
            },
            _ = self.closed.changed() => Next::End,
        }
    }
}

impl LiveHub {
    /// Subscribers of this instance only.
    pub fn in_process() -> Self {
        Self {
            topics: Arc::default(),
            relay: None,
            closed: watch::channel(false).0,
        }
    }

    /// Relayed through Redis pub/sub to every instance. Redis down is not an error here: the
    /// relay keeps trying in the background.
    pub async fn with_redis(
        endpoint: &RedisEndpoint,
        supervisor: &Arc<Supervisor>,
    ) -> Result<Self, redis::RedisError> {
        let mut hub = Self::in_process();
        let topics = hub.topics.clone();
        let handler: Handler = Arc::new(move |payload: &str| relayed(&topics, payload));
        let names = TaskNames {
            listener: "live feed relay listener",
            publisher: "live feed relay publisher",
        };
        hub.relay = Some(Relay::start(endpoint, CHANNEL, handler, supervisor, names).await?);
        Ok(hub)
    }

    /// Hands the event to this instance's subscribers, and queues it for the relay. Never
    /// waits: the call path must not slow down for the feed.
    pub fn publish(&self, event: &LiveEvent) {
        let json: Arc<str> = match serde_json::to_string(event) {
            Ok(s) => s.into(),
            Err(_) => return,
        };
        self.topics.deliver(&event.property_id, json.clone());
        if let Some(relay) = &self.relay
            && !relay.send(&format!("{}\n{json}", event.property_id))
        {
            tracing::debug!("live feed relay queue full; an event is not relayed");
        }
    }

    /// A property's events from now on. The caller checks that the property is the account's.
    pub fn subscribe(&self, property_id: &str) -> Subscription {
        Subscription {
            events: self.topics.subscribe(property_id),
            closed: self.closed.subscribe(),
        }
    }

    /// Ends every subscription and stops the relay (shutdown: open feeds must not hold up the
    /// graceful stop).
    pub fn close(&self) {
        self.closed.send_replace(true);
        if let Some(relay) = &self.relay {
            relay.stop();
        }
    }
}

/// Another instance's event: `property_id \n event JSON`.
fn relayed(topics: &Topics, payload: &str) {
    if let Some((property_id, json)) = payload.split_once('\n') {
        topics.deliver(property_id, json.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::NewCall;

    fn started(property: &str) -> CallEvent {
        CallEvent::Started(NewCall {
            account_id: "a".into(),
            property_id: property.into(),
            pool_id: None,
            provider: "twilio".into(),
            provider_call_id: "CA1".into(),
            tracking_number: "+14155550110".into(),
            caller_number: Some("+14155559999".into()),
            caller_name: None,
            caller_city: Some("OAKLAND".into()),
            caller_state: None,
            caller_zip: None,
            caller_country: None,
            status: "ringing".into(),
            started_at: 1_000,
        })
    }

    #[tokio::test]
    async fn subscribers_get_their_propertys_events_only_and_end_on_close() {
        let hub = LiveHub::in_process();
        let mut mine = hub.subscribe("p1");
        let mut other = hub.subscribe("p2");
        let event = LiveEvent::from_call_event(&started("p1"), 2_000).unwrap();
        hub.publish(&event);
        let Next::Event(json) = mine.next().await else {
            panic!("an event")
        };
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["type"], "ringing");
        assert_eq!(v["provider_call_id"], "CA1");
        assert_eq!(v["caller"]["city"], "OAKLAND");
        assert!(
            other.events.try_recv().is_err(),
            "another property hears nothing"
        );
        hub.close();
        assert!(matches!(mine.next().await, Next::End));
        assert!(matches!(other.next().await, Next::End));
    }

    #[test]
    fn an_event_without_a_property_is_not_published_and_relayed_events_reach_their_property() {
        assert!(LiveEvent::from_call_event(&started(""), 0).is_none());
        let topics = Topics::default();
        let mut rx = topics.subscribe("p1");
        relayed(&topics, "p2\n{}");
        assert!(rx.try_recv().is_err(), "another property's event");
        relayed(&topics, "p1\n{\"a\":\"b\\nc\"}");
        assert_eq!(&*rx.try_recv().unwrap(), "{\"a\":\"b\\nc\"}");
    }
}
