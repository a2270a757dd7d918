//! Report rollups, ad spend and cost settings (see `migrations/0007_reports.sql`).
//!
//! Rollups are rebuilt per (property, local day) from the raw rows: writes mark the UTC hours
//! they touch as dirty in their own transaction, and `reports::Rollups` rebuilds the local days
//! those hours fall in. This module holds the SQL; what a row means lives in `reports`.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::ledger::{Arg, i, insert_rows, t};
use super::{Storage, StorageResult};
use crate::time::Millis;

pub const HOUR_MS: Millis = 3_600_000;

/// The counters of a call rollup row, in column order (`Counters` indexes them by `counter::*`).
pub const COUNTERS: [&str; 27] = [
    "calls",
    "spam_calls",
    "first_time_callers",
    "answered",
    "missed",
    "qualified",
    "conversions",
    "converted_calls",
    "revenue_micros",
    "billable_minutes",
    "duration_s_sum",
    "duration_n",
    "answer_ms_sum",
    "answer_n",
    "talk_s_sum",
    "talk_n",
    "blocked",
    "abandoned",
    "answered_in_20s",
    "appointments",
    "resolved",
    "escalated",
    "csat_sum",
    "csat_n",
    "csat_satisfied",
    "new_callers",
    "new_callers_no_repeat",
];

/// Indexes into [`Counters`], one per entry of [`COUNTERS`].
pub mod counter {
    pub const CALLS: usize = 0;
    pub const SPAM_CALLS: usize = 1;
    pub const FIRST_TIME_CALLERS: usize = 2;
    pub const ANSWERED: usize = 3;
    pub const MISSED: usize = 4;
    pub const QUALIFIED: usize = 5;
    pub const CONVERSIONS: usize = 6;
    pub const CONVERTED_CALLS: usize = 7;
    pub const REVENUE_MICROS: usize = 8;
    pub const BILLABLE_MINUTES: usize = 9;
    pub const DURATION_S_SUM: usize = 10;
    pub const DURATION_N: usize = 11;
    pub const ANSWER_MS_SUM: usize = 12;
    pub const ANSWER_N: usize = 13;
    pub const TALK_S_SUM: usize = 14;
    pub const TALK_N: usize = 15;
    pub const BLOCKED: usize = 16;
    pub const ABANDONED: usize = 17;
    pub const ANSWERED_IN_20S: usize = 18;
    pub const APPOINTMENTS: usize = 19;
    pub const RESOLVED: usize = 20;
    pub const ESCALATED: usize = 21;
    pub const CSAT_SUM: usize = 22;
    pub const CSAT_N: usize = 23;
    pub const CSAT_SATISFIED: usize = 24;
    pub const NEW_CALLERS: usize = 25;
    pub const NEW_CALLERS_NO_REPEAT: usize = 26;
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters(pub [i64; COUNTERS.len()]);

impl Counters {
    pub fn add(&mut self, other: &Counters) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }
}

/// One rollup row: a day's calls under one dimension value and channel.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RollupKey {
    pub dimension: &'static str,
    pub value: String,
    pub channel: String,
}

/// A day's repeat calls under one dimension value, by the day of the caller's previous call.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RepeatKey {
    pub dimension: &'static str,
    pub value: String,
    pub prev_day: String,
}

/// Repeat calls, and those of them not followed by another call within 7 days.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepeatCounts {
    pub calls: i64,
    pub no_repeat_7d: i64,
}

/// A day's rollup rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayRollup {
    pub calls: Vec<(RollupKey, Counters)>,
    pub repeats: Vec<(RepeatKey, RepeatCounts)>,
}

/// Sums of call rollups over a range, for one dimension value and channel.
#[derive(Debug, Clone, Default)]
pub struct CallSums {
    pub value: String,
    pub channel: String,
    pub counters: Counters,
}

/// What a day's rebuild needs of one call.
#[derive(Debug, Clone)]
pub struct DayCall {
    pub pool_id: Option<String>,
    pub status: String,
    pub status_rank: i64,
    pub outcome: Option<String>,
    /// How the leg to the business ended (`DialCallStatus`): `busy` or `failed` is a caller
    /// who got no one, though the caller's own leg `completed`.
    pub dial_status: Option<String>,
    pub started_at: Millis,
    pub answered_at: Option<Millis>,
    pub duration_s: Option<i64>,
    pub talk_s: Option<i64>,
    pub confidence: Option<String>,
    pub channel: Option<String>,
    pub source: Option<String>,
    pub medium: Option<String>,
    pub campaign: Option<String>,
    pub term: Option<String>,
    pub landing_url: Option<String>,
    pub visitor_city: Option<String>,
    pub visitor_region: Option<String>,
    pub caller_city: Option<String>,
    pub caller_state: Option<String>,
    pub first_call_id: Option<String>,
    pub disposition: Option<String>,
    pub csat: Option<i64>,
    pub qualified: bool,
    /// The caller's previous and next calls to the property (not spam), if the caller is known.
    pub prev_at: Option<Millis>,
    pub next_at: Option<Millis>,
    pub conversions: i64,
    pub revenue_micros: i64,
}

/// What a day's rebuild needs of one session.
#[derive(Debug, Clone)]
pub struct DaySession {
    pub pool_id: Option<String>,
    pub channel: String,
    pub source: String,
    pub medium: String,
    pub campaign: Option<String>,
    pub term: Option<String>,
    pub landing_url: String,
    pub visitor_city: Option<String>,
    pub visitor_region: Option<String>,
    pub first_seen_at: Millis,
}

/// An hour marked for rebuilding, as read (its version decides whether the mark may go).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirtyMark {
    pub property_id: String,
    pub kind: String,
    pub hour: i64,
    pub version: i64,
}

/// What marks are about: calls (and their conversions) or sessions.
pub const KIND_CALLS: &str = "calls";
pub const KIND_SESSIONS: &str = "sessions";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdCostRow {
    pub day: String,
    pub source: String,
    pub medium: String,
    pub campaign: String,
    pub amount_micros: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CostSettings {
    pub per_minute_cost_micros: i64,
    pub operating_cost_monthly_micros: i64,
}

const MARK_HEAD: &str =
    "INSERT INTO rollup_dirty (property_id, kind, hour, first_marked_at, version) ";
const MARK_TAIL: &str =
    " ON CONFLICT (property_id, kind, hour) DO UPDATE SET version = rollup_dirty.version + 1";

/// Marks the hours of the calls `condition` selects (`$1` is now; the condition's own
/// parameters start at `$2`).
fn mark_calls_sql(condition: &str) -> String {
    format!(
        "{MARK_HEAD}SELECT DISTINCT property_id, 'calls', started_at / 3600000, $1, 1 FROM calls \
         WHERE {condition}{MARK_TAIL}"
    )
}

/// Marks, inside the caller's transaction, the hour of an account's call with this provider id
/// (an empty account: that call in any account).
pub(super) async fn mark_provider_call(
    conn: &mut sqlx::AnyConnection,
    account_id: &str,
    provider: &str,
    provider_call_id: &str,
    now: Millis,
) -> StorageResult<()> {
    mark_provider_calls(conn, &[(account_id, provider, provider_call_id)], now).await
}

/// Marks, inside the caller's transaction, the hours of the calls with these (account,
/// provider, provider id) triples (an empty account: any account's): one statement per kind,
/// so the marks' rows are taken once.
pub(super) async fn mark_provider_calls(
    conn: &mut sqlx::AnyConnection,
    calls: &[(&str, &str, &str)],
    now: Millis,
) -> StorageResult<()> {
    let (any_account, of_account): (Vec<_>, Vec<_>) =
        calls.iter().partition(|(account, _, _)| account.is_empty());
    let of_account: Vec<Vec<&str>> = of_account
        .iter()
        .map(|(account, provider, id)| vec![*provider, *id, *account])
        .collect();
    let any_account: Vec<Vec<&str>> = any_account
        .iter()
        .map(|(_, provider, id)| vec![*provider, *id])
        .collect();
    for (columns, keys) in [
        ("provider, provider_call_id, account_id", of_account),
        ("provider, provider_call_id", any_account),
    ] {
        let Some(width) = keys.first().map(Vec::len) else {
            continue;
        };
        // Only placeholders are interpolated; every id is bound.
        let tuples: Vec<String> = (0..keys.len())
            .map(|i| {
                let params: Vec<String> = (0..width)
                    .map(|j| format!("${}", width * i + j + 2))
                    .collect();
                format!("({})", params.join(", "))
            })
            .collect();
        let sql = mark_calls_sql(&format!("({columns}) IN ({})", tuples.join(", ")));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
        for value in keys.iter().flatten() {
            query = query.bind(*value);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Marks the hour of a call by id.
pub(super) async fn mark_call(
    conn: &mut sqlx::AnyConnection,
    call_id: &str,
    now: Millis,
) -> StorageResult<()> {
    sqlx::query(sqlx::AssertSqlSafe(mark_calls_sql("id = $2")))
        .bind(now)
        .bind(call_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Marks the hours of a call's neighbours among its caller's calls: the previous and next
/// call to the same property (whose gaps to this one change) and the next call in the account
/// (which may have just stopped being the caller's first). Only neighbours, never every call
/// of a caller who calls a thousand times.
pub(super) async fn mark_neighbours(
    conn: &mut sqlx::AnyConnection,
    call_id: &str,
    now: Millis,
) -> StorageResult<()> {
    let me = "(SELECT account_id FROM calls WHERE id = $2)";
    let caller = "(SELECT caller_number FROM calls WHERE id = $2)";
    let property = "(SELECT property_id FROM calls WHERE id = $2)";
    let at = "(SELECT started_at FROM calls WHERE id = $2)";
    for (order, cmp, same_property) in
        [("DESC", "<", true), ("ASC", ">", true), ("ASC", ">", false)]
    {
        // Gaps are between calls to one property that are not spam; being the first call is
        // about any call to the account.
        let scope = if same_property {
            format!(
                "AND n.property_id = {property} \
                 AND (n.disposition IS NULL OR n.disposition <> 'spam')"
            )
        } else {
            String::new()
        };
        let condition = format!(
            "account_id = {me} AND caller_number = {caller} AND started_at = \
             (SELECT n.started_at FROM calls n WHERE n.account_id = {me} \
              AND n.caller_number = {caller} {scope} AND n.started_at {cmp} {at} \
              ORDER BY n.started_at {order} LIMIT 1)"
        );
        sqlx::query(sqlx::AssertSqlSafe(mark_calls_sql(&condition)))
            .bind(now)
            .bind(call_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Marks the hours new sessions began in.
pub(super) async fn mark_session_hours(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: super::Backend,
    hours: &std::collections::BTreeSet<(String, i64)>,
    now: Millis,
) -> StorageResult<()> {
    mark_hours(tx, backend, KIND_SESSIONS, hours, now).await
}

/// Marks `(property, hour)`s of one kind, in one statement per chunk (sorted: instances that
/// mark the same rows take them in the same order).
pub(super) async fn mark_hours(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: super::Backend,
    kind: &str,
    hours: &std::collections::BTreeSet<(String, i64)>,
    now: Millis,
) -> StorageResult<()> {
    let rows = hours
        .iter()
        .map(|(property, hour)| vec![t(property), t(kind), i(*hour), i(now), i(1)])
        .collect();
    insert_rows(
        tx,
        backend,
        "INSERT INTO rollup_dirty (property_id, kind, hour, first_marked_at, version)",
        5,
        rows,
        MARK_TAIL,
    )
    .await
}

// Neighbours by `ORDER BY ... LIMIT 1`, not MAX/MIN: PostgreSQL runs a filtered MAX over the
// caller's whole history, which for a caller with thousands of calls made a day's rebuild
// quadratic; the ordered scan stops at the first match.
const DAY_CALL_SQL: &str = "SELECT c.pool_id, c.status, c.status_rank, c.outcome, c.dial_status, c.started_at, \
     c.answered_at, c.duration_s, c.talk_s, c.confidence, c.channel, c.source, c.medium, \
     c.campaign, c.term, c.landing_url, c.visitor_city, c.visitor_region, c.caller_city, \
     c.caller_state, c.first_call_id, c.disposition, c.csat, c.qualified, \
     CASE WHEN c.caller_number IS NOT NULL THEN (SELECT p.started_at FROM calls p \
        WHERE p.account_id = c.account_id AND p.caller_number = c.caller_number \
        AND p.property_id = c.property_id AND p.started_at < c.started_at \
        AND (p.disposition IS NULL OR p.disposition <> 'spam') \
        ORDER BY p.started_at DESC LIMIT 1) \
     WHEN c.caller_key IS NOT NULL THEN (SELECT p.started_at FROM calls p \
        WHERE p.account_id = c.account_id AND p.caller_key = c.caller_key \
        AND p.property_id = c.property_id AND p.started_at < c.started_at \
        AND (p.disposition IS NULL OR p.disposition <> 'spam') \
        ORDER BY p.started_at DESC LIMIT 1) END AS prev_at, \
     CASE WHEN c.caller_number IS NOT NULL THEN (SELECT n.started_at FROM calls n \
        WHERE n.account_id = c.account_id AND n.caller_number = c.caller_number \
        AND n.property_id = c.property_id AND n.started_at > c.started_at \
        AND (n.disposition IS NULL OR n.disposition <> 'spam') \
        ORDER BY n.started_at LIMIT 1) \
     WHEN c.caller_key IS NOT NULL THEN (SELECT n.started_at FROM calls n \
        WHERE n.account_id = c.account_id AND n.caller_key = c.caller_key \
        AND n.property_id = c.property_id AND n.started_at > c.started_at \
        AND (n.disposition IS NULL OR n.disposition <> 'spam') \
        ORDER BY n.started_at LIMIT 1) END AS next_at, \
     (SELECT COUNT(*) FROM conversions v WHERE v.call_id = c.id) AS conversions, \
     (SELECT CAST(COALESCE(SUM(v.value_micros), 0) AS BIGINT) FROM conversions v \
        WHERE v.call_id = c.id) AS revenue_micros \
     FROM calls c WHERE c.property_id = $1 AND c.started_at >= $2 AND c.started_at < $3";

fn day_call(r: &AnyRow) -> StorageResult<DayCall> {
    Ok(DayCall {
        pool_id: r.try_get("pool_id")?,
        status: r.try_get("status")?,
        status_rank: r.try_get("status_rank")?,
        outcome: r.try_get("outcome")?,
        dial_status: r.try_get("dial_status")?,
        started_at: r.try_get("started_at")?,
        answered_at: r.try_get("answered_at")?,
        duration_s: r.try_get("duration_s")?,
        talk_s: r.try_get("talk_s")?,
        confidence: r.try_get("confidence")?,
        channel: r.try_get("channel")?,
        source: r.try_get("source")?,
        medium: r.try_get("medium")?,
        campaign: r.try_get("campaign")?,
        term: r.try_get("term")?,
        landing_url: r.try_get("landing_url")?,
        visitor_city: r.try_get("visitor_city")?,
        visitor_region: r.try_get("visitor_region")?,
        caller_city: r.try_get("caller_city")?,
        caller_state: r.try_get("caller_state")?,
        first_call_id: r.try_get("first_call_id")?,
        disposition: r.try_get("disposition")?,
        csat: r.try_get("csat")?,
        qualified: r.try_get::<Option<i64>, _>("qualified")? == Some(1),
        prev_at: r.try_get("prev_at")?,
        next_at: r.try_get("next_at")?,
        conversions: r.try_get("conversions")?,
        revenue_micros: r.try_get("revenue_micros")?,
    })
}

/// The dimensions rollups keep (day and weekday are read from `hour`).
pub const STORED_DIMENSIONS: &str = "('channel', 'source', 'medium', 'campaign', 'keyword', \
     'landing_page', 'visitor_city', 'caller_city', 'pool', 'confidence', 'hour')";

impl Storage {
    /// The rows of a statement about one property over a range: `$1` the property, `$2` and
    /// `$3` the range's ends (times or days).
    async fn property_range<T>(
        &self,
        sql: &'static str,
        property_id: &str,
        from: T,
        to: T,
    ) -> StorageResult<Vec<AnyRow>>
    where
        T: for<'q> sqlx::Encode<'q, sqlx::Any> + sqlx::Type<sqlx::Any> + Send + 'static,
    {
        Ok(sqlx::query(sql)
            .bind(property_id.to_owned())
            .bind(from)
            .bind(to)
            .fetch_all(&self.pool)
            .await?)
    }

    /// The rows of a statement about one dimension of a property's rollups over a range of
    /// days: `$1` the property, `$2` the dimension, `$3` and `$4` the first and last day.
    async fn dimension_range(
        &self,
        sql: String,
        property_id: &str,
        dimension: &str,
        from_day: &str,
        to_day: &str,
    ) -> StorageResult<Vec<AnyRow>> {
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(property_id.to_owned())
            .bind(dimension.to_owned())
            .bind(from_day.to_owned())
            .bind(to_day.to_owned())
            .fetch_all(&self.pool)
            .await?)
    }

    /// Hours marked at least `settled_ms` ago (so a burst of writes is rebuilt once), oldest
    /// first.
    pub async fn dirty_marks(
        &self,
        marked_by: Millis,
        limit: i64,
    ) -> StorageResult<Vec<DirtyMark>> {
        sqlx::query(
            "SELECT property_id, kind, hour, version FROM rollup_dirty \
             WHERE first_marked_at <= $1 ORDER BY hour, property_id, kind LIMIT $2",
        )
        .bind(marked_by)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(dirty_mark)
        .collect()
    }

    /// A property's marked hours in `[from_hour, to_hour]` (a report about to read them).
    pub async fn dirty_marks_of_property(
        &self,
        property_id: &str,
        from_hour: i64,
        to_hour: i64,
    ) -> StorageResult<Vec<DirtyMark>> {
        self.property_range(
            "SELECT property_id, kind, hour, version FROM rollup_dirty \
             WHERE property_id = $1 AND hour >= $2 AND hour <= $3 ORDER BY hour, kind",
            property_id,
            from_hour,
            to_hour,
        )
        .await?
        .iter()
        .map(dirty_mark)
        .collect()
    }

    /// Removes a mark unless the hour was marked again since it was read; a mark that was
    /// waits a whole settling time again, counted from `rearm_at`, so a day that takes calls
    /// all day long is not rebuilt on every pass.
    pub async fn clear_dirty_mark(&self, mark: &DirtyMark, rearm_at: Millis) -> StorageResult<()> {
        sqlx::query(
            "DELETE FROM rollup_dirty WHERE property_id = $1 AND kind = $2 AND hour = $3 \
             AND version = $4",
        )
        .bind(&mark.property_id)
        .bind(&mark.kind)
        .bind(mark.hour)
        .bind(mark.version)
        .execute(&self.pool)
        .await?;
        sqlx::query(
            "UPDATE rollup_dirty SET first_marked_at = $1 WHERE property_id = $2 AND kind = $3 \
             AND hour = $4 AND version <> $5",
        )
        .bind(rearm_at)
        .bind(&mark.property_id)
        .bind(&mark.kind)
        .bind(mark.hour)
        .bind(mark.version)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks every hour of a property's calls and sessions (a full rebuild).
    pub async fn mark_property_dirty(&self, property_id: &str, now: Millis) -> StorageResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(sqlx::AssertSqlSafe(mark_calls_sql("property_id = $2")))
            .bind(now)
            .bind(property_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "{MARK_HEAD}SELECT DISTINCT property_id, 'sessions', first_seen_at / 3600000, $1, 1 \
             FROM sessions WHERE property_id = $2{MARK_TAIL}"
        )))
        .bind(now)
        .bind(property_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The property's calls that started in `[from, to)`, with what a rebuild needs.
    pub async fn calls_of_day(
        &self,
        property_id: &str,
        from: Millis,
        to: Millis,
    ) -> StorageResult<Vec<DayCall>> {
        self.property_range(DAY_CALL_SQL, property_id, from, to)
            .await?
            .iter()
            .map(day_call)
            .collect()
    }

    /// The property's sessions (not bots) whose first page view fell in `[from, to)`.
    pub async fn sessions_of_day(
        &self,
        property_id: &str,
        from: Millis,
        to: Millis,
    ) -> StorageResult<Vec<DaySession>> {
        self.property_range(
            "SELECT pool_id, channel, source, medium, campaign, term, landing_url, visitor_city, \
             visitor_region, first_seen_at FROM sessions WHERE property_id = $1 \
             AND first_seen_at >= $2 AND first_seen_at < $3 AND assignment <> 'bot'",
            property_id,
            from,
            to,
        )
        .await?
        .iter()
        .map(|r| {
            Ok(DaySession {
                pool_id: r.try_get("pool_id")?,
                channel: r.try_get("channel")?,
                source: r.try_get("source")?,
                medium: r.try_get("medium")?,
                campaign: r.try_get("campaign")?,
                term: r.try_get("term")?,
                landing_url: r.try_get("landing_url")?,
                visitor_city: r.try_get("visitor_city")?,
                visitor_region: r.try_get("visitor_region")?,
                first_seen_at: r.try_get("first_seen_at")?,
            })
        })
        .collect()
    }

    /// Replaces a day's call rollups.
    pub async fn replace_call_rollups(
        &self,
        property_id: &str,
        day: &str,
        rollup: &DayRollup,
    ) -> StorageResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM call_rollups WHERE property_id = $1 AND dimension IN {STORED_DIMENSIONS} \
             AND day = $2"
        )))
        .bind(property_id)
        .bind(day)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM repeat_rollups WHERE property_id = $1 AND day = $2")
            .bind(property_id)
            .bind(day)
            .execute(&mut *tx)
            .await?;
        let args: Vec<Vec<Arg>> = rollup
            .calls
            .iter()
            .map(|(k, c)| {
                let mut row = vec![
                    t(property_id),
                    t(day),
                    t(k.dimension),
                    t(&k.value),
                    t(&k.channel),
                ];
                row.extend(c.0.iter().map(|v| i(*v)));
                row
            })
            .collect();
        let columns = COUNTERS.join(", ");
        let updates = COUNTERS
            .iter()
            .map(|c| format!("{c} = excluded.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        // Two instances may rebuild one day at once: the later write wins, row by row.
        insert_rows(
            &mut tx,
            self.backend,
            &format!(
                "INSERT INTO call_rollups (property_id, day, dimension, value, channel, {columns})"
            ),
            5 + COUNTERS.len(),
            args,
            &format!(
                "ON CONFLICT (property_id, dimension, day, value, channel) DO UPDATE SET {updates}"
            ),
        )
        .await?;
        let args = rollup
            .repeats
            .iter()
            .map(|(k, n)| {
                vec![
                    t(property_id),
                    t(k.dimension),
                    t(&k.prev_day),
                    t(day),
                    t(&k.value),
                    i(n.calls),
                    i(n.no_repeat_7d),
                ]
            })
            .collect();
        insert_rows(
            &mut tx,
            self.backend,
            "INSERT INTO repeat_rollups (property_id, dimension, prev_day, day, value, calls, \
             no_repeat_7d)",
            7,
            args,
            "ON CONFLICT (property_id, dimension, prev_day, day, value) DO UPDATE SET \
             calls = excluded.calls, no_repeat_7d = excluded.no_repeat_7d",
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces a day's session rollups.
    pub async fn replace_session_rollups(
        &self,
        property_id: &str,
        day: &str,
        rows: &[((&'static str, String), i64)],
    ) -> StorageResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM session_rollups WHERE property_id = $1 \
             AND dimension IN {STORED_DIMENSIONS} AND day = $2"
        )))
        .bind(property_id)
        .bind(day)
        .execute(&mut *tx)
        .await?;
        let args = rows
            .iter()
            .map(|((dimension, value), n)| {
                vec![t(property_id), t(day), t(dimension), t(value), i(*n)]
            })
            .collect();
        insert_rows(
            &mut tx,
            self.backend,
            "INSERT INTO session_rollups (property_id, day, dimension, value, sessions)",
            5,
            args,
            "ON CONFLICT (property_id, dimension, day, value) DO UPDATE SET \
             sessions = excluded.sessions",
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Call rollups of `[from_day, to_day]` summed per value (or per day, with `by_day`) and
    /// channel.
    pub async fn call_sums(
        &self,
        property_id: &str,
        dimension: &str,
        by_day: bool,
        from_day: &str,
        to_day: &str,
    ) -> StorageResult<Vec<CallSums>> {
        let group = if by_day { "day" } else { "value" };
        let sums = COUNTERS
            .iter()
            .map(|c| format!("CAST(SUM({c}) AS BIGINT) AS {c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {group} AS grp, channel, {sums} FROM call_rollups \
             WHERE property_id = $1 AND dimension = $2 AND day >= $3 AND day <= $4 \
             GROUP BY {group}, channel"
        );
        self.dimension_range(sql, property_id, dimension, from_day, to_day)
            .await?
            .iter()
            .map(|r| {
                let mut counters = Counters::default();
                for (slot, column) in counters.0.iter_mut().zip(COUNTERS) {
                    *slot = r.try_get(column)?;
                }
                Ok(CallSums {
                    value: r.try_get("grp")?,
                    channel: r.try_get("channel")?,
                    counters,
                })
            })
            .collect()
    }

    /// Calls (spam apart) per local day and value of one dimension, in `[from_day, to_day]`:
    /// the dashboard's charts over time (`channel` by day, `hour` by day for the heat map).
    pub async fn calls_by_day(
        &self,
        property_id: &str,
        dimension: &str,
        from_day: &str,
        to_day: &str,
    ) -> StorageResult<Vec<(String, String, i64)>> {
        let sql = "SELECT day, value, CAST(SUM(calls) AS BIGINT) AS calls FROM call_rollups \
             WHERE property_id = $1 AND dimension = $2 AND day >= $3 AND day <= $4 \
             GROUP BY day, value ORDER BY day, value";
        self.dimension_range(sql.to_owned(), property_id, dimension, from_day, to_day)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("day")?, r.try_get("value")?, r.try_get("calls")?)))
            .collect()
    }

    /// Repeat calls in `[from_day, to_day]` whose caller's previous call was before `from_day`
    /// (so each is its caller's first in the range), per value (or per day).
    pub async fn repeat_sums(
        &self,
        property_id: &str,
        dimension: &str,
        by_day: bool,
        from_day: &str,
        to_day: &str,
    ) -> StorageResult<Vec<(String, RepeatCounts)>> {
        let group = if by_day { "day" } else { "value" };
        let sql = format!(
            "SELECT {group} AS grp, CAST(SUM(calls) AS BIGINT) AS calls, \
             CAST(SUM(no_repeat_7d) AS BIGINT) AS no_repeat_7d FROM repeat_rollups \
             WHERE property_id = $1 AND dimension = $2 AND prev_day < $3 \
             AND day >= $3 AND day <= $4 GROUP BY {group}"
        );
        self.dimension_range(sql, property_id, dimension, from_day, to_day)
            .await?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("grp")?,
                    RepeatCounts {
                        calls: r.try_get("calls")?,
                        no_repeat_7d: r.try_get("no_repeat_7d")?,
                    },
                ))
            })
            .collect()
    }

    /// Sessions of `[from_day, to_day]` per value (or per day, with `by_day`).
    pub async fn session_sums(
        &self,
        property_id: &str,
        dimension: &str,
        by_day: bool,
        from_day: &str,
        to_day: &str,
    ) -> StorageResult<Vec<(String, i64)>> {
        let group = if by_day { "day" } else { "value" };
        let sql = format!(
            "SELECT {group} AS grp, CAST(SUM(sessions) AS BIGINT) AS sessions FROM session_rollups \
             WHERE property_id = $1 AND dimension = $2 AND day >= $3 AND day <= $4 GROUP BY {group}"
        );
        self.dimension_range(sql, property_id, dimension, from_day, to_day)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("grp")?, r.try_get("sessions")?)))
            .collect()
    }

    /// Upserts ad spend rows: a row for a (day, source, medium, campaign) already sent is
    /// replaced. All or nothing.
    pub async fn upsert_ad_costs(
        &self,
        account_id: &str,
        property_id: &str,
        rows: &[AdCostRow],
        now: Millis,
    ) -> StorageResult<()> {
        let mut tx = self.begin().await?;
        let args = rows
            .iter()
            .map(|r| {
                vec![
                    t(property_id),
                    t(account_id),
                    t(&r.day),
                    t(&r.source),
                    t(&r.medium),
                    t(&r.campaign),
                    i(r.amount_micros),
                    i(now),
                ]
            })
            .collect();
        insert_rows(
            &mut tx,
            self.backend,
            "INSERT INTO ad_costs (property_id, account_id, day, source, medium, campaign, \
             amount_micros, updated_at)",
            8,
            args,
            "ON CONFLICT (property_id, day, source, medium, campaign) DO UPDATE SET \
             amount_micros = excluded.amount_micros, updated_at = excluded.updated_at",
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A property's ad spend rows in `[from_day, to_day]`.
    pub async fn ad_costs(
        &self,
        property_id: &str,
        from_day: &str,
        to_day: &str,
    ) -> StorageResult<Vec<AdCostRow>> {
        self.property_range(
            "SELECT day, source, medium, campaign, amount_micros FROM ad_costs \
             WHERE property_id = $1 AND day >= $2 AND day <= $3 \
             ORDER BY day, source, medium, campaign",
            property_id,
            from_day.to_owned(),
            to_day.to_owned(),
        )
        .await?
        .iter()
        .map(|r| {
            Ok(AdCostRow {
                day: r.try_get("day")?,
                source: r.try_get("source")?,
                medium: r.try_get("medium")?,
                campaign: r.try_get("campaign")?,
                amount_micros: r.try_get("amount_micros")?,
            })
        })
        .collect()
    }

    pub async fn cost_settings(&self, property_id: &str) -> StorageResult<CostSettings> {
        let r = sqlx::query(
            "SELECT per_minute_cost_micros, operating_cost_monthly_micros FROM properties \
             WHERE id = $1",
        )
        .bind(property_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(super::StorageError::NotFound)?;
        Ok(CostSettings {
            per_minute_cost_micros: r.try_get("per_minute_cost_micros")?,
            operating_cost_monthly_micros: r.try_get("operating_cost_monthly_micros")?,
        })
    }

    pub async fn set_cost_settings(
        &self,
        account_id: &str,
        property_id: &str,
        s: &CostSettings,
    ) -> StorageResult<()> {
        let done = sqlx::query(
            "UPDATE properties SET per_minute_cost_micros = $1, operating_cost_monthly_micros = $2 \
             WHERE id = $3 AND account_id = $4",
        )
        .bind(s.per_minute_cost_micros)
        .bind(s.operating_cost_monthly_micros)
        .bind(property_id)
        .bind(account_id)
        .execute(&self.pool)
        .await?;
        super::found(&done)?;
        Ok(())
    }
}

fn dirty_mark(r: &AnyRow) -> StorageResult<DirtyMark> {
    Ok(DirtyMark {
        property_id: r.try_get("property_id")?,
        kind: r.try_get("kind")?,
        hour: r.try_get("hour")?,
        version: r.try_get("version")?,
    })
}
