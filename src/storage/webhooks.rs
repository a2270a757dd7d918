//! Outbound webhooks: an account's endpoints, and the delivery queue the worker drains.
//!
//! The queue lives in the database so every instance shares it: a worker claims a due delivery
//! with a conditional UPDATE (`locked_until`), which one instance wins, so an event is sent by
//! one worker at a time however many instances run.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::ToSchema;

use super::{Storage, StorageError, StorageResult, new_id};
use crate::time::{Millis, to_datetime};
use crate::webhooks::{NewWebhookEndpoint, generate_secret};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookEndpoint {
    pub id: String,
    #[serde(skip)]
    pub account_id: String,
    pub url: String,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// An endpoint just created, with the only copy of its signing secret the API will show.
#[derive(Debug)]
pub struct CreatedWebhookEndpoint {
    pub endpoint: WebhookEndpoint,
    pub secret: SecretString,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not delivered yet; `next_attempt_at` says when it is tried (again).
    Pending,
    Delivered,
    /// Given up after the last retry, or the endpoint was deleted first.
    Failed,
}

/// One event's delivery to one endpoint, as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookDelivery {
    /// The event id sent as `Switchboard-Event-Id` and as the body's `id`.
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// Sent as `Idempotency-Key`, the same on every retry.
    pub idempotency_key: String,
    pub status: DeliveryStatus,
    /// Attempts made (or under way) so far.
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    /// The HTTP status of the last attempt, when the receiver answered.
    pub last_status: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// A delivery claimed by this worker: everything needed to send it.
#[derive(Debug)]
pub struct DueDelivery {
    pub id: String,
    pub endpoint_id: String,
    pub url: String,
    pub secret: SecretString,
    pub event_type: String,
    pub idempotency_key: String,
    /// The event's `data`, as JSON text.
    pub payload: String,
    pub created_at: Millis,
    /// This attempt's number, from 1.
    pub attempt: i64,
}

/// An event for an account's endpoints, as `Webhooks::enqueue` checked it.
#[derive(Debug, Clone, Copy)]
pub struct OutboundEvent<'a> {
    pub account_id: &'a str,
    pub event_type: &'a str,
    /// Names the event: queueing the same key again queues nothing.
    pub idempotency_key: &'a str,
    /// Becomes the body's `data`.
    pub payload: &'a serde_json::Value,
}

/// Inserts one delivery of `event` per live endpoint of its account, on `conn` (a pooled
/// connection, or a transaction whose outcome the event depends on).
pub(super) async fn queue_deliveries(
    conn: &mut AnyConnection,
    event: &OutboundEvent<'_>,
    now: Millis,
) -> StorageResult<u64> {
    let payload = serde_json::to_string(event.payload).expect("a JSON value serialises");
    let endpoints: Vec<String> = sqlx::query(
        "SELECT id FROM webhook_endpoints WHERE account_id = $1 AND disabled_at IS NULL",
    )
    .bind(event.account_id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| r.try_get("id"))
    .collect::<Result<_, _>>()?;
    let mut queued = 0;
    for endpoint_id in endpoints {
        queued += sqlx::query(
            "INSERT INTO webhook_deliveries (id, endpoint_id, account_id, event_type, \
             idempotency_key, payload, created_at, attempts, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8) \
             ON CONFLICT (endpoint_id, idempotency_key) DO NOTHING",
        )
        .bind(new_id())
        .bind(&endpoint_id)
        .bind(event.account_id)
        .bind(event.event_type)
        .bind(event.idempotency_key)
        .bind(&payload)
        .bind(now)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    }
    Ok(queued)
}

const ENDPOINT_COLUMNS: &str = "id, account_id, url, description, created_at";
const DELIVERY_COLUMNS: &str = "id, event_type, idempotency_key, attempts, created_at, \
     next_attempt_at, delivered_at, failed_at, last_status, last_error";

impl Storage {
    pub async fn create_webhook_endpoint(
        &self,
        account_id: &str,
        new: &NewWebhookEndpoint,
        now: Millis,
    ) -> StorageResult<CreatedWebhookEndpoint> {
        let endpoint = WebhookEndpoint {
            id: new_id(),
            account_id: account_id.to_owned(),
            url: new.url.to_string(),
            description: new.description.clone(),
            created_at: to_datetime(now),
        };
        let secret = generate_secret();
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, account_id, url, secret, description, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&endpoint.id)
        .bind(account_id)
        .bind(&endpoint.url)
        .bind(secret.expose_secret())
        .bind(&endpoint.description)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(CreatedWebhookEndpoint { endpoint, secret })
    }

    /// The account's live endpoints, oldest first.
    pub async fn list_webhook_endpoints(
        &self,
        account_id: &str,
    ) -> StorageResult<Vec<WebhookEndpoint>> {
        let sql = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints \
             WHERE account_id = $1 AND disabled_at IS NULL ORDER BY created_at, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(endpoint_from_row).collect()
    }

    /// A live endpoint of this account; another account's, or a deleted one, is `NotFound`.
    pub async fn webhook_endpoint(
        &self,
        account_id: &str,
        endpoint_id: &str,
    ) -> StorageResult<WebhookEndpoint> {
        let sql = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints \
             WHERE id = $1 AND account_id = $2 AND disabled_at IS NULL"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(endpoint_id)
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StorageError::NotFound)?;
        endpoint_from_row(&row)
    }

    /// Deletes an endpoint: it receives nothing more (its pending deliveries fail now), and
    /// its row stays for the history of past deliveries.
    pub async fn delete_webhook_endpoint(
        &self,
        account_id: &str,
        endpoint_id: &str,
        now: Millis,
    ) -> StorageResult<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET disabled_at = $1 \
             WHERE id = $2 AND account_id = $3 AND disabled_at IS NULL",
        )
        .bind(now)
        .bind(endpoint_id)
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
        super::found(&done)?;
        sqlx::query(
            "UPDATE webhook_deliveries SET failed_at = $1, last_error = 'endpoint deleted' \
             WHERE endpoint_id = $2 AND delivered_at IS NULL AND failed_at IS NULL",
        )
        .bind(now)
        .bind(endpoint_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Queues an event for each of the account's live endpoints, due at once. A key already
    /// queued for an endpoint inserts nothing, so replaying an event sends it once. Returns how
    /// many deliveries were queued.
    ///
    /// No transaction: one that reads and then writes fails at once on SQLite (WAL) when a
    /// worker wrote in between. If an insert fails, the caller's retry fills in the rest.
    pub async fn enqueue_event(
        &self,
        account_id: &str,
        event_type: &str,
        idempotency_key: &str,
        payload: &serde_json::Value,
        now: Millis,
    ) -> StorageResult<u64> {
        let event = OutboundEvent {
            account_id,
            event_type,
            idempotency_key,
            payload,
        };
        let mut conn = self.pool.acquire().await?;
        queue_deliveries(&mut conn, &event, now).await
    }

    /// Claims up to `limit` deliveries due at `now` for this worker until `lock_until`, and
    /// counts the attempt. Each claim is a conditional UPDATE that only one instance can win;
    /// the ones another instance took first are skipped.
    pub async fn claim_due_webhook_deliveries(
        &self,
        now: Millis,
        lock_until: Millis,
        limit: i64,
    ) -> StorageResult<Vec<DueDelivery>> {
        let sql = format!(
            "SELECT d.id, e.url, e.secret FROM webhook_deliveries d \
             JOIN webhook_endpoints e ON e.id = d.endpoint_id \
             WHERE {DUE} AND e.disabled_at IS NULL ORDER BY d.next_attempt_at, d.id LIMIT $2"
        );
        let returning =
            "id, endpoint_id, event_type, idempotency_key, payload, created_at, attempts";
        self.claim_due(
            OutboundQueue::Webhooks,
            &sql,
            now,
            lock_until,
            limit,
            returning,
        )
        .await?
        .iter()
        .map(|(candidate, row)| {
            Ok(DueDelivery {
                id: row.try_get("id")?,
                endpoint_id: row.try_get("endpoint_id")?,
                url: candidate.try_get("url")?,
                secret: SecretString::from(candidate.try_get::<String, _>("secret")?),
                event_type: row.try_get("event_type")?,
                idempotency_key: row.try_get("idempotency_key")?,
                payload: row.try_get("payload")?,
                created_at: row.try_get("created_at")?,
                attempt: row.try_get("attempts")?,
            })
        })
        .collect()
    }

    /// The receiver took the event.
    pub async fn mark_webhook_delivered(
        &self,
        delivery_id: &str,
        status: u16,
        now: Millis,
    ) -> StorageResult<()> {
        self.mark_delivered(OutboundQueue::Webhooks, delivery_id, status, now)
            .await
    }

    /// The attempt failed: the next one is due at `retry_at`, or, with `None`, the delivery
    /// is given up now.
    pub async fn webhook_attempt_failed(
        &self,
        delivery_id: &str,
        status: Option<u16>,
        error: &str,
        retry_at: Option<Millis>,
        now: Millis,
    ) -> StorageResult<()> {
        self.attempt_failed(
            OutboundQueue::Webhooks,
            delivery_id,
            status,
            error,
            retry_at,
            now,
        )
        .await
    }

    /// The most recent deliveries of a live endpoint of this account, newest first.
    pub async fn list_webhook_deliveries(
        &self,
        account_id: &str,
        endpoint_id: &str,
        limit: i64,
    ) -> StorageResult<Vec<WebhookDelivery>> {
        self.webhook_endpoint(account_id, endpoint_id).await?;
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
             WHERE endpoint_id = $1 AND account_id = $2 ORDER BY created_at DESC, id DESC LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(endpoint_id)
            .bind(account_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(delivery_from_row).collect()
    }
}

/// The queues the delivery worker drains: one table each, with the same columns for a
/// message's progress (`attempts`, `next_attempt_at`, `locked_until`, `delivered_at`,
/// `failed_at`, `last_status`, `last_error`), so claiming and recording are written once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundQueue {
    Webhooks,
    Ga4,
}

impl OutboundQueue {
    pub(super) fn table(self) -> &'static str {
        match self {
            OutboundQueue::Webhooks => "webhook_deliveries",
            OutboundQueue::Ga4 => "ga4_events",
        }
    }
}

/// The rows of a queue that are due at `$1` and not claimed by anyone at `$1`.
pub(super) const DUE: &str = "delivered_at IS NULL AND failed_at IS NULL \
     AND next_attempt_at <= $1 AND (locked_until IS NULL OR locked_until <= $1)";

impl Storage {
    /// Claims up to `limit` rows of `queue` due at `now`, until `lock_until`, and counts the
    /// attempt. `candidates` selects them (`$1` now, `$2` the limit) with their `id` and what
    /// else the caller needs; each is then claimed with a conditional UPDATE that only one
    /// instance can win, so the ones another instance took first are skipped. Returns each
    /// candidate row with its claimed row (the columns named in `returning`).
    pub(super) async fn claim_due(
        &self,
        queue: OutboundQueue,
        candidates: &str,
        now: Millis,
        lock_until: Millis,
        limit: i64,
        returning: &str,
    ) -> StorageResult<Vec<(AnyRow, AnyRow)>> {
        let candidates = sqlx::query(sqlx::AssertSqlSafe(candidates.to_owned()))
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let claim = format!(
            "UPDATE {} SET locked_until = $2, attempts = attempts + 1 WHERE {DUE} AND id = $3 \
             RETURNING {returning}",
            queue.table()
        );
        let mut claimed = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            let id: String = candidate.try_get("id")?;
            let row = sqlx::query(sqlx::AssertSqlSafe(claim.clone()))
                .bind(now)
                .bind(lock_until)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
            if let Some(row) = row {
                claimed.push((candidate, row));
            }
        }
        Ok(claimed)
    }

    /// The receiver took the message.
    pub async fn mark_delivered(
        &self,
        queue: OutboundQueue,
        id: &str,
        status: u16,
        now: Millis,
    ) -> StorageResult<()> {
        // Clears failed_at too: if a webhook endpoint was deleted while this attempt was in
        // flight, the event did arrive, and the history should say so.
        let sql = format!(
            "UPDATE {} SET delivered_at = $1, failed_at = NULL, locked_until = NULL, \
             last_status = $2, last_error = NULL WHERE id = $3 AND delivered_at IS NULL",
            queue.table()
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(i64::from(status))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The attempt failed: the next one is due at `retry_at`, or, with `None`, the message is
    /// given up now.
    pub async fn attempt_failed(
        &self,
        queue: OutboundQueue,
        id: &str,
        status: Option<u16>,
        error: &str,
        retry_at: Option<Millis>,
        now: Millis,
    ) -> StorageResult<()> {
        let (column, at) = match retry_at {
            Some(at) => ("next_attempt_at", at),
            None => ("failed_at", now),
        };
        let sql = format!(
            "UPDATE {} SET {column} = $1, locked_until = NULL, last_status = $2, last_error = $3 \
             WHERE id = $4 AND delivered_at IS NULL AND failed_at IS NULL",
            queue.table()
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(at)
            .bind(status.map(i64::from))
            .bind(error)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn endpoint_from_row(r: &AnyRow) -> StorageResult<WebhookEndpoint> {
    Ok(WebhookEndpoint {
        id: r.try_get("id")?,
        account_id: r.try_get("account_id")?,
        url: r.try_get("url")?,
        description: r.try_get("description")?,
        created_at: to_datetime(r.try_get("created_at")?),
    })
}

fn delivery_from_row(r: &AnyRow) -> StorageResult<WebhookDelivery> {
    let delivered_at: Option<Millis> = r.try_get("delivered_at")?;
    let failed_at: Option<Millis> = r.try_get("failed_at")?;
    let status = match (delivered_at, failed_at) {
        (Some(_), _) => DeliveryStatus::Delivered,
        (None, Some(_)) => DeliveryStatus::Failed,
        (None, None) => DeliveryStatus::Pending,
    };
    let next_attempt_at: Millis = r.try_get("next_attempt_at")?;
    Ok(WebhookDelivery {
        id: r.try_get("id")?,
        event_type: r.try_get("event_type")?,
        idempotency_key: r.try_get("idempotency_key")?,
        status,
        attempts: r.try_get("attempts")?,
        created_at: to_datetime(r.try_get("created_at")?),
        next_attempt_at: (status == DeliveryStatus::Pending).then(|| to_datetime(next_attempt_at)),
        delivered_at: delivered_at.map(to_datetime),
        failed_at: failed_at.map(to_datetime),
        last_status: r.try_get("last_status")?,
        last_error: r.try_get("last_error")?,
    })
}
