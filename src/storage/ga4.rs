//! The queue of GA4 Measurement Protocol events: one per completed call, drained by the same
//! worker, with the same claims and retries, as the outbound webhooks.

use sqlx::Row;

use super::webhooks::DUE;
use super::{CallRow, OutboundQueue, Storage, StorageResult, new_id};
use crate::domain::Ga4Settings;
use crate::time::Millis;

/// An event claimed by this worker.
#[derive(Debug)]
pub struct DueGa4Event {
    pub id: String,
    pub property_id: String,
    pub call_id: String,
    /// The Measurement Protocol body, as JSON text.
    pub payload: String,
    /// This attempt's number, from 1.
    pub attempt: i64,
    /// Where it goes: the property's settings now (None: it no longer sends GA4 events).
    pub target: Option<Ga4Settings>,
}

impl Storage {
    /// Queues a call's GA4 event, due at once; false if the call has one already (the call's
    /// completion was replayed).
    pub async fn enqueue_ga4_event(
        &self,
        call: &CallRow,
        payload: &serde_json::Value,
        now: Millis,
    ) -> StorageResult<bool> {
        let done = sqlx::query(
            "INSERT INTO ga4_events (id, account_id, property_id, call_id, payload, created_at, \
             attempts, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7) \
             ON CONFLICT (call_id) DO NOTHING",
        )
        .bind(new_id())
        .bind(&call.call.account_id)
        .bind(&call.call.property_id)
        .bind(&call.id)
        .bind(serde_json::to_string(payload).expect("a JSON value serialises"))
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Claims up to `limit` GA4 events due at `now` until `lock_until`, with where each goes
    /// now (settings changed since it was queued apply).
    pub async fn claim_due_ga4_events(
        &self,
        now: Millis,
        lock_until: Millis,
        limit: i64,
    ) -> StorageResult<Vec<DueGa4Event>> {
        let sql = format!(
            "SELECT g.id, p.ga4_measurement_id, p.ga4_api_secret, p.ga4_endpoint, p.ga4_event_name \
             FROM ga4_events g LEFT JOIN properties p ON p.id = g.property_id \
             WHERE {DUE} ORDER BY g.next_attempt_at, g.id LIMIT $2"
        );
        let returning = "id, property_id, call_id, payload, attempts";
        self.claim_due(OutboundQueue::Ga4, &sql, now, lock_until, limit, returning)
            .await?
            .iter()
            .map(|(candidate, row)| {
                Ok(DueGa4Event {
                    id: row.try_get("id")?,
                    property_id: row.try_get("property_id")?,
                    call_id: row.try_get("call_id")?,
                    payload: row.try_get("payload")?,
                    attempt: row.try_get("attempts")?,
                    target: Ga4Settings::from_db(
                        candidate.try_get("ga4_measurement_id")?,
                        candidate.try_get("ga4_api_secret")?,
                        candidate.try_get("ga4_endpoint")?,
                        candidate.try_get("ga4_event_name")?,
                    ),
                })
            })
            .collect()
    }
}
