//! The delivery worker: claims due deliveries, POSTs each signed event, and records the outcome
//! (delivered, retry later, or given up). GA4 events (`ga4.rs`) ride the same worker, claims
//! and retry schedule from a queue of their own.
//!
//! Retry schedule: an event is tried at once, then 10 s, 1 min, 5 min, 30 min, 2 h, 6 h and 12 h
//! after each failed attempt: 8 attempts over about 21 hours, then the delivery is marked
//! failed. Any answer but 2xx is a failure (redirects are not followed), as is no answer
//! within 10 s. Requests go only where `crate::outbound` permits, and a failure is recorded
//! as a status line the account may read (`HTTP 500 Internal Server Error`, `connection
//! refused`), never the receiver's body; the full error is logged for the operator.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::CONTENT_TYPE;
use serde::Serialize;
use tokio::sync::{Mutex, Notify};
use tracing::Instrument;
use url::Url;

use super::{
    EVENT_ID_HEADER, IDEMPOTENCY_KEY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, loggable_url, sign,
};
use crate::outbound::{Blocked, Outbound, failure_line, status_line};
use crate::storage::{
    DueDelivery, DueGa4Event, OutboundEvent, OutboundQueue, Storage, StorageError,
};
use crate::telemetry::Outage;
use crate::time::{Millis, SharedClock, to_datetime};

/// How long after a failed attempt the next one is made (attempt n+1 waits `RETRY_DELAYS[n-1]`).
pub const RETRY_DELAYS: [Duration; 7] = [
    Duration::from_secs(10),
    Duration::from_secs(60),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(6 * 3600),
    Duration::from_secs(12 * 3600),
];
/// The first attempt plus one per retry delay; after the last, the delivery is failed.
pub const MAX_ATTEMPTS: i64 = RETRY_DELAYS.len() as i64 + 1;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A claim outlives the request's timeout, so no other instance sends the event meanwhile; a
/// claim left by a crashed instance expires and the event is tried again.
const CLAIM_MS: Millis = 30_000;
const POLL_EVERY: Duration = Duration::from_secs(1);
const BATCH: i64 = 64;
/// Requests in flight at once, so one slow receiver does not hold up everyone else's events.
const CONCURRENCY: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error("the event type and idempotency key must be 1-255 visible ASCII characters")]
    InvalidKey,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub struct Webhooks {
    pub(super) storage: Storage,
    pub(super) clock: SharedClock,
    pub(super) client: reqwest::Client,
    pub(super) outbound: Outbound,
    pub(super) wake: Notify,
    /// One pass at a time on this instance: `run_due_now` returns only once every event due
    /// when it was called has been tried here (tests rely on it).
    pass: Mutex<()>,
}

/// The JSON body of every delivery, fields in this order.
#[derive(Serialize)]
struct Event<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    created_at: String,
    data: serde_json::Value,
}

/// Why one attempt failed: the receiver's status if it answered, and a short reason.
pub(super) struct Failure {
    pub(super) status: Option<u16>,
    /// What the account reads in `last_error`: a status line, nothing the receiver sent.
    pub(super) error: String,
    /// The whole error, for the operator's log only.
    pub(super) detail: Option<String>,
    /// False when trying again cannot help: the message is given up now.
    pub(super) retry: bool,
}

impl Webhooks {
    /// `outbound` decides where requests may go (and follows no redirect: a redirected POST
    /// may turn into a GET or land somewhere the account never named).
    pub fn new(storage: Storage, clock: SharedClock, outbound: Outbound) -> reqwest::Result<Self> {
        let client = outbound
            .client_builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("Switchboard-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            storage,
            clock,
            client,
            outbound,
            wake: Notify::new(),
            pass: Mutex::new(()),
        })
    }

    /// Queues an event for every live endpoint of the account and wakes the worker; returns
    /// how many deliveries were queued. `idempotency_key` names the event (e.g.
    /// `call.completed:<call id>`): enqueuing a key again queues nothing, so a caller that
    /// replays its own work after a crash queues each event once. `payload` becomes `data`.
    /// On an error some endpoints may have the event already: call again with the same key.
    pub async fn enqueue(
        &self,
        account_id: &str,
        event_type: &str,
        idempotency_key: &str,
        payload: &serde_json::Value,
    ) -> Result<u64, EnqueueError> {
        Self::event(account_id, event_type, idempotency_key, payload)?;
        let queued = self
            .storage
            .enqueue_event(
                account_id,
                event_type,
                idempotency_key,
                payload,
                self.clock.now_ms(),
            )
            .await?;
        if queued > 0 {
            self.wake.notify_one();
        }
        Ok(queued)
    }

    /// An event checked as `enqueue` checks it, for a caller that queues it in a transaction
    /// of its own (an alert fires and is queued at once, or not at all); call `queued` after.
    pub fn event<'a>(
        account_id: &'a str,
        event_type: &'a str,
        idempotency_key: &'a str,
        payload: &'a serde_json::Value,
    ) -> Result<OutboundEvent<'a>, EnqueueError> {
        // Both travel in headers or the body unchanged, so they must be valid header text.
        let valid =
            |s: &str| (1..=255).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic());
        if !valid(event_type) || !valid(idempotency_key) {
            return Err(EnqueueError::InvalidKey);
        }
        Ok(OutboundEvent {
            account_id,
            event_type,
            idempotency_key,
            payload,
        })
    }

    /// Where outbound requests may go: handlers check a URL with it before saving it.
    pub fn outbound(&self) -> &Outbound {
        &self.outbound
    }

    /// Wakes the worker for events queued without `enqueue`.
    pub fn queued(&self) {
        self.wake.notify_one();
    }

    /// Tries every webhook delivery and GA4 event due now (by the injected clock) that this
    /// instance can claim, and waits for the outcomes. Returns how many attempts were made.
    pub async fn run_due_now(&self) -> Result<usize, StorageError> {
        let _one_pass = self.pass.lock().await;
        let mut attempted = 0;
        loop {
            let now = self.clock.now_ms();
            let lock = now + CLAIM_MS;
            let deliveries = self
                .storage
                .claim_due_webhook_deliveries(now, lock, BATCH)
                .await?;
            let events = self.storage.claim_due_ga4_events(now, lock, BATCH).await?;
            let more = deliveries.len() == BATCH as usize || events.len() == BATCH as usize;
            let due: Vec<Due> = deliveries
                .into_iter()
                .map(Due::Webhook)
                .chain(events.into_iter().map(Due::Ga4))
                .collect();
            attempted += due.len();
            futures_util::stream::iter(due)
                .for_each_concurrent(CONCURRENCY, |d| self.attempt(d))
                .await;
            if !more {
                return Ok(attempted);
            }
        }
    }

    /// Runs passes whenever an event is queued here, and every second regardless (events
    /// queued by other instances, retries coming due), backing off while the database is away.
    pub fn start(self: &std::sync::Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut outage = Outage::default();
            loop {
                let failures = outage.record(
                    me.run_due_now().await,
                    "webhook deliveries wait: the database is unavailable",
                );
                let pause = POLL_EVERY * failures.clamp(1, 5);
                let _ = tokio::time::timeout(pause, me.wake.notified()).await;
            }
        })
    }

    async fn attempt(&self, due: Due) {
        let span = due.span();
        async {
            let outcome = match &due {
                Due::Webhook(delivery) => self.send(delivery).await,
                Due::Ga4(event) => self.send_ga4(event).await,
            };
            let (queue, id, attempt) = due.progress();
            let now = self.clock.now_ms();
            let recorded = match outcome {
                Ok(status) => {
                    tracing::info!(attempt, status, "{} delivered", due.what());
                    self.storage.mark_delivered(queue, id, status, now).await
                }
                Err(failure) => {
                    let retry_in = usize::try_from(attempt - 1)
                        .ok()
                        .and_then(|i| RETRY_DELAYS.get(i))
                        .filter(|_| failure.retry);
                    tracing::warn!(
                        attempt,
                        status = failure.status,
                        error = %failure.error,
                        detail = failure.detail.as_deref().unwrap_or_default(),
                        retry_in_secs = retry_in.map(Duration::as_secs),
                        "{} attempt failed",
                        due.what()
                    );
                    let retry_at = retry_in.map(|delay| {
                        now + Millis::try_from(delay.as_millis()).unwrap_or(Millis::MAX)
                    });
                    self.storage
                        .attempt_failed(queue, id, failure.status, &failure.error, retry_at, now)
                        .await
                }
            };
            if let Err(e) = recorded {
                // The claim expires and the message is tried again: at least once, never lost.
                tracing::warn!(
                    error = format!("{:#}", anyhow::Error::new(e)),
                    "could not record a {} attempt",
                    due.what()
                );
            }
        }
        .instrument(span)
        .await
    }

    /// `raw` as a URL, if `crate::outbound` lets a request go there.
    pub(super) async fn permitted_url(&self, raw: &str) -> Result<Url, Failure> {
        let url = Url::parse(raw).map_err(|e| Failure {
            status: None,
            error: format!("not a valid URL: {e}"),
            detail: None,
            retry: false,
        })?;
        self.outbound
            .check_before_send(&url)
            .await
            .map_err(|blocked: Blocked| Failure {
                status: None,
                error: blocked.to_string(),
                detail: None,
                // An address cannot change; a name may resolve elsewhere by the next attempt.
                retry: matches!(url.host(), Some(url::Host::Domain(_))),
            })?;
        Ok(url)
    }

    async fn send(&self, delivery: &DueDelivery) -> Result<u16, Failure> {
        let data = serde_json::from_str(&delivery.payload).map_err(|e| Failure {
            status: None,
            error: format!("the stored payload is not JSON: {e}"),
            detail: None,
            retry: true,
        })?;
        let url = self.permitted_url(&delivery.url).await?;
        let body = serde_json::to_vec(&Event {
            id: &delivery.id,
            event_type: &delivery.event_type,
            created_at: to_datetime(delivery.created_at)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            data,
        })
        .expect("an event serialises");
        let timestamp = self.clock.now_ms().div_euclid(1000);
        let signature = {
            use secrecy::ExposeSecret;
            sign(delivery.secret.expose_secret(), timestamp, &body)
        };
        let sent = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header(EVENT_ID_HEADER, &delivery.id)
            .header(IDEMPOTENCY_KEY_HEADER, &delivery.idempotency_key)
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await;
        answer(sent).await
    }
}

/// One claimed message, from either queue.
enum Due {
    Webhook(DueDelivery),
    Ga4(DueGa4Event),
}

impl Due {
    fn what(&self) -> &'static str {
        match self {
            Due::Webhook(_) => "webhook",
            Due::Ga4(_) => "GA4 event",
        }
    }

    fn progress(&self) -> (OutboundQueue, &str, i64) {
        match self {
            Due::Webhook(d) => (OutboundQueue::Webhooks, &d.id, d.attempt),
            Due::Ga4(e) => (OutboundQueue::Ga4, &e.id, e.attempt),
        }
    }

    /// What the attempt's log lines name: never a secret, nor a URL's query.
    fn span(&self) -> tracing::Span {
        match self {
            Due::Webhook(d) => tracing::info_span!(
                "webhook",
                delivery_id = %d.id,
                endpoint_id = %d.endpoint_id,
                url = %loggable_url(&d.url)
            ),
            Due::Ga4(e) => tracing::info_span!(
                "ga4",
                event_id = %e.id,
                property_id = %e.property_id,
                call_id = %e.call_id,
                url = %e.target.as_ref().map_or_else(String::new, |t| loggable_url(&t.endpoint))
            ),
        }
    }
}

/// The receiver's answer: its status if 2xx, else why not (its status line; the body is
/// never read: an internal service's answer must not reach the account).
pub(super) async fn answer(sent: reqwest::Result<reqwest::Response>) -> Result<u16, Failure> {
    let response = sent.map_err(|e| Failure {
        status: None,
        error: failure_line(&e, REQUEST_TIMEOUT.as_secs()),
        detail: Some(describe(e)),
        retry: true,
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(status.as_u16());
    }
    Err(Failure {
        status: Some(status.as_u16()),
        error: status_line(status),
        detail: None,
        retry: true,
    })
}

/// A transport error in words, with its causes, without its URL (which may carry a token).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
