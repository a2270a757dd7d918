//! Erasing a caller (GDPR) from everything the database keeps of them in one account: their
//! calls, and the outbound webhook deliveries and GA4 events that name them (queued, or kept
//! for their history). Call events still on their way (in an instance's spool, or a carrier's
//! late retry) land erased: the erasure is remembered as a keyed fingerprint of the account and
//! the number (`caller_erasures`), which `apply_call_events` looks up.
//!
//! Races with a replay storing the caller's call at the same moment are closed by order: the
//! fingerprint is committed before the calls are swept, and a replay looks again after its
//! own commit, so one of the two always sees the other.

use std::collections::HashMap;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use sqlx::{AnyConnection, Row};

use super::{CallEvent, NewCall, OutboundQueue, Storage, StorageResult, new_id};
use crate::time::Millis;

/// What an erasure changed in the database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    pub calls: u64,
    pub webhook_deliveries: u64,
    pub ga4_events: u64,
}

/// An erasure as a replay applies it: the stand-in the caller's calls carry, and when.
#[derive(Debug, Clone)]
pub(super) struct Erasure {
    caller_key: String,
    erased_at: Millis,
}

/// What an erased call keeps of its caller: city, state and country (reports count by them),
/// not the number, name, ZIP code or recording.
const ERASE_CALLER: &str = "caller_number = NULL, caller_name = NULL, caller_zip = NULL, \
     recording_url = NULL, recording_sid = NULL, caller_key = $1";

impl Storage {
    /// The account's caller `number` as `caller_erasures` keeps it: HMAC-SHA-256 under the
    /// fingerprint key, so a copy of the database alone cannot test numbers against it.
    pub(super) fn caller_fingerprint(&self, account_id: &str, number: &str) -> String {
        let mut mac = <Hmac<Sha256>>::new_from_slice(&self.fingerprint_key)
            .expect("HMAC takes any key length");
        mac.update(account_id.as_bytes());
        mac.update(&[0]);
        mac.update(number.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Erases a caller from the account (never another's): their calls lose the number, name,
    /// ZIP code and recordings, keeping a stand-in so counts of unique callers hold (the same
    /// one on every erasure of the number); webhook deliveries and GA4 events naming the
    /// number are rewritten without it; and the erasure is remembered, so events of calls that
    /// began before `now` land erased.
    pub async fn erase_caller(
        &self,
        account_id: &str,
        number: &str,
        now: Millis,
    ) -> StorageResult<Erased> {
        // Committed first: a replay that stores the caller's call after this sees it.
        let caller_key: String = sqlx::query(
            "INSERT INTO caller_erasures (fingerprint, account_id, caller_key, erased_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (fingerprint) DO UPDATE SET erased_at = \
             CASE WHEN excluded.erased_at > caller_erasures.erased_at THEN excluded.erased_at \
             ELSE caller_erasures.erased_at END RETURNING caller_key",
        )
        .bind(self.caller_fingerprint(account_id, number))
        .bind(account_id)
        .bind(format!("erased:{}", new_id()))
        .bind(now)
        .fetch_one(&self.pool)
        .await?
        .try_get("caller_key")?;
        let mut tx = self.begin().await?;
        let calls = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE calls SET {ERASE_CALLER} WHERE account_id = $2 AND caller_number = $3"
        )))
        .bind(&caller_key)
        .bind(account_id)
        .bind(number)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let mut erased = Erased {
            calls,
            ..Erased::default()
        };
        for queue in [OutboundQueue::Webhooks, OutboundQueue::Ga4] {
            let table = queue.table();
            // E.164 is `+` and digits: nothing LIKE would read as a wildcard.
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT id, payload FROM {table} WHERE account_id = $1 AND payload LIKE $2"
            )))
            .bind(account_id)
            .bind(format!("%{number}%"))
            .fetch_all(&mut *tx)
            .await?;
            let mut rewritten = 0;
            for row in rows {
                let id: String = row.try_get("id")?;
                let payload: String = row.try_get("payload")?;
                let payload = match serde_json::from_str::<Value>(&payload) {
                    Ok(mut value) => {
                        scrub(&mut value, number);
                        value.to_string()
                    }
                    Err(_) => payload.replace(number, ERASED_TEXT),
                };
                rewritten += sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE {table} SET payload = $1 WHERE id = $2"
                )))
                .bind(payload)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            match queue {
                OutboundQueue::Webhooks => erased.webhook_deliveries = rewritten,
                OutboundQueue::Ga4 => erased.ga4_events = rewritten,
            }
        }
        tx.commit().await?;
        Ok(erased)
    }

    /// When the last erasure of any caller was made (None: never), so that each instance
    /// learns to clear its spool of records that may name the caller.
    pub async fn last_erasure_at(&self) -> StorageResult<Option<Millis>> {
        Ok(
            sqlx::query("SELECT MAX(erased_at) AS last FROM caller_erasures")
                .fetch_one(&self.pool)
                .await?
                .try_get("last")?,
        )
    }

    /// For each event (by index) whose caller was erased before its call began: the erasure.
    pub(super) async fn erasures_of(
        &self,
        conn: &mut AnyConnection,
        events: &[(u64, CallEvent)],
    ) -> StorageResult<HashMap<usize, Erasure>> {
        let fingerprints: Vec<(usize, String)> = events
            .iter()
            .enumerate()
            .filter_map(|(i, (_, event))| {
                let call = event.call();
                let number = call.caller_number.as_deref()?;
                (!call.account_id.is_empty())
                    .then(|| (i, self.caller_fingerprint(&call.account_id, number)))
            })
            .collect();
        let mut known: HashMap<String, Erasure> = HashMap::new();
        for chunk in fingerprints.chunks(500) {
            let params: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
            let sql = format!(
                "SELECT fingerprint, caller_key, erased_at FROM caller_erasures \
                 WHERE fingerprint IN ({})",
                params.join(", ")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (_, fingerprint) in chunk {
                query = query.bind(fingerprint.clone());
            }
            for row in query.fetch_all(&mut *conn).await? {
                known.insert(
                    row.try_get("fingerprint")?,
                    Erasure {
                        caller_key: row.try_get("caller_key")?,
                        erased_at: row.try_get("erased_at")?,
                    },
                );
            }
        }
        Ok(fingerprints
            .into_iter()
            .filter_map(|(i, fingerprint)| {
                let erasure = known.get(&fingerprint)?;
                (began_by(&events[i].1) <= erasure.erased_at).then(|| (i, erasure.clone()))
            })
            .collect())
    }
}

/// Erases the caller from one stored call (an event of an erased caller just landed).
pub(super) async fn erase_call(
    conn: &mut AnyConnection,
    call: &NewCall,
    erasure: &Erasure,
) -> StorageResult<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE calls SET {ERASE_CALLER} WHERE account_id = $2 AND provider = $3 \
         AND provider_call_id = $4"
    )))
    .bind(&erasure.caller_key)
    .bind(&call.account_id)
    .bind(&call.provider)
    .bind(&call.provider_call_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// When the event's call began at the latest: a status callback's own time may come after an
/// erasure of a call that began before it.
fn began_by(event: &CallEvent) -> Millis {
    match event {
        CallEvent::Started(c) => c.started_at,
        CallEvent::Progress(p) => p
            .call
            .started_at
            .min(p.at - p.duration_s.unwrap_or(0).max(0) * 1000),
    }
}

/// What stands for the number in text that is not a call's `caller`.
const ERASED_TEXT: &str = "[erased]";

/// Removes the caller `number` from an event's JSON: a call's `caller` reads as an erased
/// call's does (no number, name or ZIP code; `erased` true) and its recording goes; any other
/// text naming the number has it replaced. Returns whether anything changed.
fn scrub(value: &mut Value, number: &str) -> bool {
    match value {
        Value::String(text) if text.contains(number) => {
            *text = text.replace(number, ERASED_TEXT);
            true
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, item| scrub(item, number) | changed),
        Value::Object(fields) => {
            let mut changed = false;
            let names_caller = fields
                .get("caller")
                .and_then(|c| c.get("number"))
                .and_then(Value::as_str)
                == Some(number);
            if names_caller {
                if let Some(Value::Object(caller)) = fields.get_mut("caller") {
                    for field in ["number", "name", "zip"] {
                        caller.insert(field.into(), Value::Null);
                    }
                    caller.insert("erased".into(), Value::Bool(true));
                }
                if fields.contains_key("recording") {
                    fields.insert("recording".into(), Value::Null);
                }
                changed = true;
            }
            fields
                .values_mut()
                .fold(changed, |changed, field| scrub(field, number) | changed)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_call_payload_reads_as_an_erased_call_and_no_text_keeps_the_number() {
        let mut payload = json!({
            "id": "c1",
            "caller": {"number": "+14155550123", "name": "Ann", "zip": "94103",
                       "city": "San Francisco", "erased": false},
            "recording": {"url": "https://rec.example/1"},
            "tags": ["called from +14155550123"],
        });
        assert!(scrub(&mut payload, "+14155550123"));
        assert_eq!(
            payload,
            json!({
                "id": "c1",
                "caller": {"number": null, "name": null, "zip": null,
                           "city": "San Francisco", "erased": true},
                "recording": null,
                "tags": ["called from [erased]"],
            })
        );
        let mut other = json!({"caller": {"number": "+14155550999"}});
        assert!(!scrub(&mut other, "+14155550123"), "another caller stays");
    }
}
