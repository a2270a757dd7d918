//! Calls: the provider's events (replayed from the spool) merged into one row per call, and the
//! call's attribution to a visitor session.
//!
//! Merging is monotone, so the order and number of deliveries do not matter (invariant 2): the
//! status only rises in rank, times keep their earliest value, durations their largest, and
//! "answered" once seen stays. A callback about a call the service has not seen yet (its voice
//! event is still in another instance's spool) creates the row; the voice event completes it.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::erasure::erase_call;
use super::rollups::{mark_provider_call, mark_provider_calls};
use super::{Storage, StorageResult, new_id};
use crate::domain::{CallOutcome, CallStatus, Outcome};
use crate::time::Millis;

/// A call as the provider first reported it (the voice webhook), with where it was routed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCall {
    pub account_id: String,
    pub property_id: String,
    pub pool_id: Option<String>,
    pub provider: String,
    pub provider_call_id: String,
    pub tracking_number: String,
    pub caller_number: Option<String>,
    pub caller_name: Option<String>,
    pub caller_city: Option<String>,
    pub caller_state: Option<String>,
    pub caller_zip: Option<String>,
    pub caller_country: Option<String>,
    pub status: String,
    pub started_at: Millis,
}

/// Later news of a call: a status callback, the end of the dial to the business, a recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallProgress {
    /// Who and where, to create the call if this is the first the service hears of it. An
    /// empty property means the route is unknown: the event only updates. A non-empty account
    /// limits the update to that account's calls.
    pub call: NewCall,
    /// When the provider says it happened (or when it arrived).
    pub at: Millis,
    pub sequence: Option<i64>,
    /// The call's own status (None: this event is only about the dial or a recording).
    pub status: Option<String>,
    pub duration_s: Option<i64>,
    /// Whether the business answered, when this event tells.
    pub outcome: Option<Outcome>,
    pub answered_at: Option<Millis>,
    /// Seconds the caller and the business were connected.
    pub talk_s: Option<i64>,
    pub dial_status: Option<String>,
    pub recording_url: Option<String>,
    pub recording_sid: Option<String>,
    pub recording_duration_s: Option<i64>,
}

/// What the spool holds: one provider event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // one per call event, never held in bulk
pub enum CallEvent {
    Started(NewCall),
    Progress(CallProgress),
}

impl CallEvent {
    /// Who and where: the call a voice event starts, or the one a progress event is about.
    pub fn call(&self) -> &NewCall {
        match self {
            CallEvent::Started(c) => c,
            CallEvent::Progress(p) => &p.call,
        }
    }

    pub fn provider_call_id(&self) -> &str {
        &self.call().provider_call_id
    }
}

/// A call's attribution, flat as stored on the call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CallAttribution {
    pub confidence: String,
    pub session_id: Option<String>,
    /// Other sessions that held the number when the call came (a shared number).
    pub candidates: Vec<String>,
    pub channel: String,
    pub source: Option<String>,
    pub medium: Option<String>,
    pub campaign: Option<String>,
    pub term: Option<String>,
    pub content: Option<String>,
    pub landing_url: Option<String>,
    pub referrer: Option<String>,
    pub click_ids: [Option<String>; 7],
    pub visitor_city: Option<String>,
    pub visitor_region: Option<String>,
    pub visitor_country: Option<String>,
    /// The visitor's Google Analytics client id, for the call's GA4 event.
    pub ga_client_id: Option<String>,
}

/// A call as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRow {
    pub id: String,
    pub call: NewCall,
    pub spool_seq: i64,
    pub status_rank: i64,
    pub outcome: Option<String>,
    pub answered_at: Option<Millis>,
    pub ended_at: Option<Millis>,
    pub duration_s: Option<i64>,
    pub talk_s: Option<i64>,
    pub dial_status: Option<String>,
    pub recording_url: Option<String>,
    pub recording_sid: Option<String>,
    pub recording_duration_s: Option<i64>,
    pub last_sequence: Option<i64>,
    pub origin: String,
    pub erased: bool,
    pub attribution: Option<CallAttribution>,
    pub first_call_id: Option<String>,
    pub attributed_at: Option<Millis>,
    pub notified_at: Option<Millis>,
    /// The business's view of the call (set through the API).
    pub business: CallOutcome,
    /// Set when the call completed, by the property's lead rule then.
    pub qualified: Option<bool>,
}

/// Filters for listing a property's calls.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub from: Option<Millis>,
    pub to: Option<Millis>,
    pub channel: Option<String>,
    pub confidence: Option<String>,
    pub status: Option<String>,
    pub outcome: Option<String>,
    /// Keyset paging: calls strictly before this (started_at, id).
    pub before: Option<(Millis, String)>,
    pub limit: i64,
}

pub(super) const CALL_COLUMNS: &str = "id, account_id, property_id, pool_id, provider, provider_call_id, \
     tracking_number, caller_number, caller_name, caller_city, caller_state, caller_zip, \
     caller_country, status, started_at, spool_seq, status_rank, outcome, answered_at, ended_at, \
     duration_s, talk_s, dial_status, recording_url, recording_sid, recording_duration_s, \
     last_sequence, origin, caller_key, confidence, session_id, candidates, channel, source, \
     medium, campaign, term, content, landing_url, referrer, gclid, gbraid, wbraid, msclkid, \
     fbclid, ttclid, li_fat_id, visitor_city, visitor_region, visitor_country, ga_client_id, \
     first_call_id, attributed_at, notified_at, disposition, lead_score, csat, tags, qualified";

const INSERT_CALL: &str = "INSERT INTO calls (id, account_id, property_id, pool_id, provider, \
     provider_call_id, tracking_number, caller_number, caller_name, caller_city, caller_state, \
     caller_zip, caller_country, status, status_rank, started_at, spool_seq, origin, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)";

impl Storage {
    /// Applies spool records `(seq, event)` in one transaction. Applying a record twice (a
    /// provider retry, or a replay after a crash) changes nothing. An event of a caller erased
    /// before its call began lands erased (`erasure.rs`); returns how many did.
    pub async fn apply_call_events(
        &self,
        events: &[(u64, CallEvent)],
        now: Millis,
    ) -> StorageResult<usize> {
        let mut tx = self.begin().await?;
        let erased = self.erasures_of(&mut tx, events).await?;
        for (i, (seq, event)) in events.iter().enumerate() {
            match event {
                CallEvent::Started(c) => {
                    // The hour it was filed under, if a callback created it with an estimate.
                    mark_provider_call(
                        &mut tx,
                        &c.account_id,
                        &c.provider,
                        &c.provider_call_id,
                        now,
                    )
                    .await?;
                    let rank = CallStatus::parse(&c.status).map_or(0, CallStatus::rank);
                    // A row a callback created first is completed: the voice webhook's time is
                    // the one attribution looks at, so it is attributed again.
                    let sql = format!(
                        "{INSERT_CALL} ON CONFLICT (provider, provider_call_id, account_id) DO UPDATE SET \
                         started_at = excluded.started_at, origin = 'voice', \
                         caller_number = CASE WHEN calls.caller_key IS NULL THEN COALESCE(calls.caller_number, excluded.caller_number) ELSE calls.caller_number END, \
                         caller_name = CASE WHEN calls.caller_key IS NULL THEN COALESCE(calls.caller_name, excluded.caller_name) ELSE calls.caller_name END, \
                         caller_city = COALESCE(calls.caller_city, excluded.caller_city), \
                         caller_state = COALESCE(calls.caller_state, excluded.caller_state), \
                         caller_zip = COALESCE(calls.caller_zip, excluded.caller_zip), \
                         caller_country = COALESCE(calls.caller_country, excluded.caller_country), \
                         confidence = NULL, attributed_at = NULL, claimed_until = NULL, updated_at = excluded.updated_at \
                         WHERE calls.origin = 'status'"
                    );
                    bind_new_call(
                        sqlx::query(sqlx::AssertSqlSafe(sql)),
                        c,
                        rank,
                        *seq,
                        "voice",
                        now,
                    )
                    .execute(&mut *tx)
                    .await?;
                }
                CallEvent::Progress(p) => {
                    // First news of this call: create it with an estimated start (when the
                    // callback named a route; without one the event can only update).
                    if !p.call.property_id.is_empty() {
                        let mut estimate = p.call.clone();
                        estimate.status = CallStatus::Queued.as_str().to_owned();
                        estimate.started_at = p.at - p.duration_s.unwrap_or(0).max(0) * 1000;
                        let sql = format!(
                            "{INSERT_CALL} ON CONFLICT (provider, provider_call_id, account_id) DO NOTHING"
                        );
                        bind_new_call(
                            sqlx::query(sqlx::AssertSqlSafe(sql)),
                            &estimate,
                            0,
                            *seq,
                            "status",
                            now,
                        )
                        .execute(&mut *tx)
                        .await?;
                    }
                    let status = p.status.as_deref().and_then(CallStatus::parse);
                    // A final status ends the call; without one, -1 never outranks anything.
                    let rank = status.map_or(-1, CallStatus::rank);
                    sqlx::query(
                        "UPDATE calls SET \
                         status = CASE WHEN $1 > status_rank THEN $2 ELSE status END, \
                         ended_at = CASE WHEN $1 = 3 AND (ended_at IS NULL OR $3 < ended_at) THEN $3 ELSE ended_at END, \
                         status_rank = CASE WHEN $1 > status_rank THEN $1 ELSE status_rank END, \
                         duration_s = CASE WHEN $4 IS NOT NULL AND (duration_s IS NULL OR $4 > duration_s) THEN $4 ELSE duration_s END, \
                         talk_s = CASE WHEN $5 IS NOT NULL AND (talk_s IS NULL OR $5 > talk_s) THEN $5 ELSE talk_s END, \
                         answered_at = CASE WHEN $6 IS NOT NULL AND (answered_at IS NULL OR $6 < answered_at) THEN $6 ELSE answered_at END, \
                         outcome = CASE WHEN outcome = 'answered' OR $7 = 'answered' THEN 'answered' ELSE COALESCE($7, outcome) END, \
                         dial_status = COALESCE($8, dial_status), \
                         recording_url = CASE WHEN caller_key IS NULL THEN COALESCE($9, recording_url) ELSE recording_url END, \
                         recording_sid = CASE WHEN caller_key IS NULL THEN COALESCE($10, recording_sid) ELSE recording_sid END, \
                         recording_duration_s = COALESCE($11, recording_duration_s), \
                         last_sequence = CASE WHEN $12 IS NOT NULL AND (last_sequence IS NULL OR $12 > last_sequence) THEN $12 ELSE last_sequence END, \
                         updated_at = $13 \
                         WHERE provider = $14 AND provider_call_id = $15 \
                         AND ($16 = '' OR account_id = $16)",
                    )
                    .bind(rank)
                    .bind(status.map(|s| s.as_str().to_owned()))
                    .bind(p.at)
                    .bind(p.duration_s)
                    .bind(p.talk_s)
                    .bind(p.answered_at)
                    .bind(p.outcome.map(|o| o.as_str().to_owned()))
                    .bind(p.dial_status.clone())
                    .bind(p.recording_url.clone())
                    .bind(p.recording_sid.clone())
                    .bind(p.recording_duration_s)
                    .bind(p.sequence)
                    .bind(now)
                    .bind(&p.call.provider)
                    .bind(&p.call.provider_call_id)
                    .bind(&p.call.account_id)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            if let Some(erasure) = erased.get(&i) {
                erase_call(&mut tx, event.call(), erasure).await?;
            }
        }
        // The hours the calls are filed under now, marked once for the batch and last: every
        // write of a property-hour's calls takes that mark's row, so marking per event held it
        // for the whole batch (attribution queued behind it) and, taken between inserts, let
        // two instances storing the same call (a provider retry) deadlock on it.
        let mut calls: Vec<(&str, &str, &str)> = events
            .iter()
            .map(|(_, event)| {
                let call = event.call();
                (
                    call.account_id.as_str(),
                    call.provider.as_str(),
                    call.provider_call_id.as_str(),
                )
            })
            .collect();
        calls.sort_unstable();
        calls.dedup();
        for chunk in calls.chunks(500) {
            mark_provider_calls(&mut tx, chunk, now).await?;
        }
        tx.commit().await?;
        // Again after the commit: an erasure committed while this transaction ran swept the
        // calls without seeing these rows, and these rows did not see it.
        if events.iter().all(|(_, e)| e.call().caller_number.is_none()) {
            return Ok(0);
        }
        let mut conn = self.pool.acquire().await?;
        let mut landed_erased = erased.len();
        for (i, erasure) in self.erasures_of(&mut conn, events).await? {
            if !erased.contains_key(&i) {
                erase_call(&mut conn, events[i].1.call(), &erasure).await?;
                landed_erased += 1;
            }
        }
        Ok(landed_erased)
    }

    /// How many calls wait for attribution, and when the oldest of them started.
    pub async fn attribution_backlog(&self) -> StorageResult<(i64, Option<Millis>)> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS waiting, MIN(started_at) AS oldest FROM calls \
             WHERE confidence IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("waiting")?, row.try_get("oldest")?))
    }

    /// The calls of a property, oldest first.
    pub async fn calls_of_property(&self, property_id: &str) -> StorageResult<Vec<CallRow>> {
        let sql = format!(
            "SELECT {CALL_COLUMNS} FROM calls WHERE property_id = $1 ORDER BY started_at, id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(property_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(call_from_row)
            .collect()
    }

    /// A page of a property's calls, newest first.
    pub async fn list_calls(
        &self,
        property_id: &str,
        f: &CallFilter,
    ) -> StorageResult<Vec<CallRow>> {
        // Optional filters as `($n IS NULL OR column = $n)`: one statement text for every
        // combination, so it stays portable and cached.
        let sql = format!(
            "SELECT {CALL_COLUMNS} FROM calls WHERE property_id = $1 \
             AND ($2 IS NULL OR started_at >= $2) AND ($3 IS NULL OR started_at < $3) \
             AND ($4 IS NULL OR channel = $4) AND ($5 IS NULL OR confidence = $5) \
             AND ($6 IS NULL OR status = $6) AND ($7 IS NULL OR outcome = $7) \
             AND ($8 IS NULL OR started_at < $8 OR (started_at = $8 AND id < $9)) \
             ORDER BY started_at DESC, id DESC LIMIT $10"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(property_id)
            .bind(f.from)
            .bind(f.to)
            .bind(f.channel.clone())
            .bind(f.confidence.clone())
            .bind(f.status.clone())
            .bind(f.outcome.clone())
            .bind(f.before.as_ref().map(|b| b.0))
            .bind(f.before.as_ref().map(|b| b.1.clone()).unwrap_or_default())
            .bind(f.limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(call_from_row)
            .collect()
    }

    /// One call of an account.
    pub async fn call(&self, account_id: &str, call_id: &str) -> StorageResult<CallRow> {
        let sql = format!("SELECT {CALL_COLUMNS} FROM calls WHERE id = $1 AND account_id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(call_id)
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(super::StorageError::NotFound)?;
        call_from_row(&row)
    }

    /// An account's call by the provider's id (unique within the account only).
    pub async fn call_by_provider_id(
        &self,
        account_id: &str,
        provider: &str,
        provider_call_id: &str,
    ) -> StorageResult<Option<CallRow>> {
        let sql = format!(
            "SELECT {CALL_COLUMNS} FROM calls WHERE provider = $1 AND provider_call_id = $2 \
             AND account_id = $3"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(provider)
            .bind(provider_call_id)
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(call_from_row)
            .transpose()
    }
}

fn bind_new_call<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    c: &NewCall,
    rank: i64,
    seq: u64,
    origin: &'static str,
    now: Millis,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    q.bind(new_id())
        .bind(c.account_id.clone())
        .bind(c.property_id.clone())
        .bind(c.pool_id.clone())
        .bind(c.provider.clone())
        .bind(c.provider_call_id.clone())
        .bind(c.tracking_number.clone())
        .bind(c.caller_number.clone())
        .bind(c.caller_name.clone())
        .bind(c.caller_city.clone())
        .bind(c.caller_state.clone())
        .bind(c.caller_zip.clone())
        .bind(c.caller_country.clone())
        .bind(c.status.clone())
        .bind(rank)
        .bind(c.started_at)
        .bind(seq as i64)
        .bind(origin)
        .bind(now)
}

pub(super) fn call_from_row(r: &AnyRow) -> StorageResult<CallRow> {
    let confidence: Option<String> = r.try_get("confidence")?;
    let attribution = match confidence {
        None => None,
        Some(confidence) => {
            let mut click_ids: [Option<String>; 7] = Default::default();
            for (slot, column) in click_ids.iter_mut().zip(super::CLICK_ID_COLUMNS) {
                *slot = r.try_get(column)?;
            }
            let candidates: Option<String> = r.try_get("candidates")?;
            Some(CallAttribution {
                confidence,
                session_id: r.try_get("session_id")?,
                candidates: candidates
                    .and_then(|c| serde_json::from_str(&c).ok())
                    .unwrap_or_default(),
                channel: r
                    .try_get::<Option<String>, _>("channel")?
                    .unwrap_or_default(),
                source: r.try_get("source")?,
                medium: r.try_get("medium")?,
                campaign: r.try_get("campaign")?,
                term: r.try_get("term")?,
                content: r.try_get("content")?,
                landing_url: r.try_get("landing_url")?,
                referrer: r.try_get("referrer")?,
                click_ids,
                visitor_city: r.try_get("visitor_city")?,
                visitor_region: r.try_get("visitor_region")?,
                visitor_country: r.try_get("visitor_country")?,
                ga_client_id: r.try_get("ga_client_id")?,
            })
        }
    };
    Ok(CallRow {
        id: r.try_get("id")?,
        spool_seq: r.try_get("spool_seq")?,
        call: NewCall {
            account_id: r.try_get("account_id")?,
            property_id: r.try_get("property_id")?,
            pool_id: r.try_get("pool_id")?,
            provider: r.try_get("provider")?,
            provider_call_id: r.try_get("provider_call_id")?,
            tracking_number: r.try_get("tracking_number")?,
            caller_number: r.try_get("caller_number")?,
            caller_name: r.try_get("caller_name")?,
            caller_city: r.try_get("caller_city")?,
            caller_state: r.try_get("caller_state")?,
            caller_zip: r.try_get("caller_zip")?,
            caller_country: r.try_get("caller_country")?,
            status: r.try_get("status")?,
            started_at: r.try_get("started_at")?,
        },
        status_rank: r.try_get("status_rank")?,
        outcome: r.try_get("outcome")?,
        answered_at: r.try_get("answered_at")?,
        ended_at: r.try_get("ended_at")?,
        duration_s: r.try_get("duration_s")?,
        talk_s: r.try_get("talk_s")?,
        dial_status: r.try_get("dial_status")?,
        recording_url: r.try_get("recording_url")?,
        recording_sid: r.try_get("recording_sid")?,
        recording_duration_s: r.try_get("recording_duration_s")?,
        last_sequence: r.try_get("last_sequence")?,
        origin: r.try_get("origin")?,
        erased: r.try_get::<Option<String>, _>("caller_key")?.is_some(),
        attribution,
        first_call_id: r.try_get("first_call_id")?,
        attributed_at: r.try_get("attributed_at")?,
        notified_at: r.try_get("notified_at")?,
        business: CallOutcome {
            disposition: r.try_get("disposition")?,
            lead_score: r.try_get("lead_score")?,
            csat: r.try_get("csat")?,
            tags: r
                .try_get::<Option<String>, _>("tags")?
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default(),
        },
        qualified: r.try_get::<Option<i64>, _>("qualified")?.map(|q| q != 0),
    })
}
