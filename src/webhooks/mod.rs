//! Outbound webhooks: signed JSON events POSTed to each of an account's endpoints (a CRM, a
//! Zapier hook), retried with backoff until the receiver answers 2xx.
//!
//! The call pipeline calls [`Webhooks::enqueue`] (alerts queue theirs in the transaction that
//! fires them, with [`Webhooks::event`]); the event becomes one delivery row per live endpoint
//! in the database, and a worker on every instance claims due deliveries and sends them. See `README.md` ("Outbound webhooks") for what receivers get.

mod endpoint;
mod ga4;
mod signature;
mod worker;

pub use endpoint::{NewWebhookEndpoint, generate_secret, loggable_url};
pub use ga4::phone_call_event;
pub use signature::{SignatureError, sign, verify_signature};
pub use worker::{EnqueueError, MAX_ATTEMPTS, RETRY_DELAYS, Webhooks};

/// A call ended (answered or not); `data` describes the call.
pub const CALL_COMPLETED: &str = "call.completed";

/// Request headers of every delivery.
pub const EVENT_ID_HEADER: &str = "Switchboard-Event-Id";
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";
pub const TIMESTAMP_HEADER: &str = "Switchboard-Timestamp";
pub const SIGNATURE_HEADER: &str = "Switchboard-Signature";
