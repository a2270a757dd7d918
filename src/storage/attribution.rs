//! What attribution reads and writes, a batch of calls at a time: a handful of statements per
//! batch instead of a dozen round trips per call. Lists of keys travel as a `VALUES` list in a
//! `WITH q(...)` clause (portable: both databases accept it, and `UPDATE ... FROM` it).

use std::collections::{BTreeSet, HashMap};

use sqlx::Row;
use sqlx::any::AnyRow;

use super::calls::{CALL_COLUMNS, call_from_row};
use super::ledger::{
    Arg, ROWS_PER_STATEMENT, SESSION_COLUMNS, bind_rows, i, ot, session_from_row, t, values_sql,
};
use super::pools::{POOL_COLUMNS, pool_from_row};
use super::properties::{PROPERTY_COLUMNS, property_from_row};
use super::rollups::{HOUR_MS, KIND_CALLS, mark_hours};
use super::{
    Backend, CallAttribution, CallRow, Pool, Property, SessionRow, Storage, StorageResult,
};
use crate::time::Millis;

/// What a claim is for: the calls waiting for attribution, or the ended and attributed calls
/// waiting to be completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimPhase {
    Attribution,
    Completion,
}

/// A call a batch is about, by its index in the batch.
pub type Key = i64;

/// A stored call's place among its caller's calls, for the first-call rule and rollup marks.
struct CallerCall {
    id: String,
    property_id: String,
    started_at: Millis,
    spam: bool,
    first_call_id: Option<String>,
}

impl Storage {
    /// Claims up to `limit` calls due for `phase` that started at or before `started_by`,
    /// oldest first, until `claim_until` (wall-clock milliseconds): no other instance claims
    /// them meanwhile, so instances share a backlog instead of each working through the same
    /// calls. A claim that expires (its instance died, or let the call wait) makes the call
    /// claimable again.
    pub async fn claim_calls(
        &self,
        phase: ClaimPhase,
        started_by: Millis,
        wall_now: Millis,
        claim_until: Millis,
        limit: i64,
    ) -> StorageResult<Vec<CallRow>> {
        // Dialect branch: PostgreSQL lets concurrent claims skip each other's rows instead of
        // queueing behind them (and the re-check in the outer WHERE keeps a row claimed once);
        // SQLite has one writer at a time and no row locks.
        let skip_locked = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let due = match phase {
            ClaimPhase::Attribution => "confidence IS NULL",
            ClaimPhase::Completion => {
                "notified_at IS NULL AND status_rank = 3 AND confidence IS NOT NULL"
            }
        };
        let free = format!("{due} AND (claimed_until IS NULL OR claimed_until < $2)");
        // The batch is chosen once, in a CTE (PostgreSQL may evaluate `IN (subquery LIMIT n)`
        // more than once and claim more than n rows); the outer WHERE re-checks each row.
        let sql = format!(
            "WITH chosen AS (SELECT id AS chosen_id FROM calls WHERE {free} AND started_at <= $3 \
             ORDER BY started_at, id LIMIT $4{skip_locked}) \
             UPDATE calls SET claimed_until = $1 FROM chosen WHERE calls.id = chosen.chosen_id \
             AND {free} RETURNING {CALL_COLUMNS}"
        );
        let mut calls: Vec<CallRow> = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(claim_until)
            .bind(wall_now)
            .bind(started_by)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(call_from_row)
            .collect::<StorageResult<_>>()?;
        calls.sort_by(|a, b| (a.call.started_at, &a.id).cmp(&(b.call.started_at, &b.id)));
        Ok(calls)
    }

    /// Lets claimed calls be claimed again from `at` (wall clock): a call that waits for the
    /// ledger steps aside for the calls behind it, and is tried again then.
    pub async fn release_claims(&self, call_ids: &[String], at: Millis) -> StorageResult<()> {
        for chunk in call_ids.chunks(ROWS_PER_STATEMENT) {
            let rows = chunk.iter().map(|id| vec![t(id)]).collect();
            self.with_values(
                "q(id)",
                1,
                rows,
                // `at` is an integer, written in; the ids are bound.
                &format!("UPDATE calls SET claimed_until = {at} WHERE id IN (SELECT id FROM q)"),
            )
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// Properties by id (missing ones are left out).
    pub async fn properties_by_ids(&self, ids: &BTreeSet<String>) -> StorageResult<Vec<Property>> {
        self.rows_by_ids(ids, PROPERTY_COLUMNS, "properties", property_from_row)
            .await
    }

    /// Pools by id, without their numbers (missing ones are left out).
    pub async fn pools_by_ids(&self, ids: &BTreeSet<String>) -> StorageResult<Vec<Pool>> {
        self.rows_by_ids(ids, POOL_COLUMNS, "pools", pool_from_row)
            .await
    }

    /// Sessions by id (missing ones are left out).
    pub async fn sessions_by_ids(&self, ids: &BTreeSet<String>) -> StorageResult<Vec<SessionRow>> {
        self.rows_by_ids(ids, SESSION_COLUMNS, "sessions", session_from_row)
            .await
    }

    /// `columns` of the rows of `table` with these ids, each read by `from_row`.
    async fn rows_by_ids<T>(
        &self,
        ids: &BTreeSet<String>,
        columns: &str,
        table: &str,
        from_row: fn(&AnyRow) -> StorageResult<T>,
    ) -> StorageResult<Vec<T>> {
        let sql = format!("SELECT {columns} FROM {table} WHERE id IN (SELECT id FROM q)");
        self.fetch_by_ids(ids, &sql)
            .await?
            .iter()
            .map(from_row)
            .collect()
    }

    /// For each `(key, pool, number, at)`: the sessions whose leases of the number covered `at`.
    pub async fn leases_covering_each(
        &self,
        asks: &[(Key, &str, &str, Millis)],
    ) -> StorageResult<Vec<(Key, String)>> {
        let rows = asks
            .iter()
            .map(|(k, pool, number, at)| vec![i(*k), t(pool), t(number), i(*at)])
            .collect();
        let found = self
            .fetch_with_values(
                "q(k, pool_id, number, at)",
                4,
                rows,
                "SELECT q.k, l.session_id FROM q JOIN leases l ON l.number = q.number \
                 AND l.pool_id = q.pool_id AND l.started_at <= q.at AND l.ends_at > q.at",
            )
            .await?;
        found
            .iter()
            .map(|r| Ok((r.try_get("k")?, r.try_get("session_id")?)))
            .collect()
    }

    /// For each `(key, account, property, tracking number, caller, since, at)`: the session the
    /// caller's latest earlier call (in `[since, at)`) to that number was attributed to. Keys
    /// with none are left out. An erased caller has a stand-in for a number, so no history.
    pub async fn caller_history_each(
        &self,
        asks: &[(Key, &str, &str, &str, &str, Millis, Millis)],
    ) -> StorageResult<Vec<(Key, String, Millis)>> {
        let rows = asks
            .iter()
            .map(|(k, account, property, number, caller, since, at)| {
                vec![
                    i(*k),
                    t(account),
                    t(property),
                    t(number),
                    t(caller),
                    i(*since),
                    i(*at),
                ]
            })
            .collect();
        let found = self
            .fetch_with_values(
                "q(k, account_id, property_id, number, caller, since, at)",
                7,
                rows,
                "SELECT q.k, c.session_id, c.started_at FROM q JOIN calls c ON c.id = \
                 (SELECT c2.id FROM calls c2 WHERE c2.account_id = q.account_id \
                 AND c2.caller_number = q.caller AND c2.started_at >= q.since \
                 AND c2.started_at < q.at AND c2.property_id = q.property_id \
                 AND c2.tracking_number = q.number AND c2.session_id IS NOT NULL \
                 ORDER BY c2.started_at DESC, c2.id LIMIT 1)",
            )
            .await?;
        keyed_sessions_at(&found, "started_at")
    }

    /// For each `(key, pool, number, at)`: the session whose lease of the number ended last at
    /// or before `at`, and when (keys with none are left out).
    pub async fn last_lease_ended_each(
        &self,
        asks: &[(Key, &str, &str, Millis)],
    ) -> StorageResult<Vec<(Key, String, Millis)>> {
        let rows = asks
            .iter()
            .map(|(k, pool, number, at)| vec![i(*k), t(pool), t(number), i(*at)])
            .collect();
        let found = self
            .fetch_with_values(
                "q(k, pool_id, number, at)",
                4,
                rows,
                "SELECT q.k, l.session_id, l.ends_at FROM q JOIN leases l ON l.id = \
                 (SELECT l2.id FROM leases l2 WHERE l2.number = q.number AND l2.pool_id = q.pool_id \
                 AND l2.ends_at <= q.at ORDER BY l2.ends_at DESC, l2.session_id LIMIT 1)",
            )
            .await?;
        keyed_sessions_at(&found, "ends_at")
    }

    /// For each `(key, session, at)`: when the session last viewed a page at or before `at`
    /// (keys with no page view are left out).
    pub async fn last_page_view_each(
        &self,
        asks: &[(Key, &str, Millis)],
    ) -> StorageResult<Vec<(Key, Millis)>> {
        let rows = asks
            .iter()
            .map(|(k, session, at)| vec![i(*k), t(session), i(*at)])
            .collect();
        let found = self
            .fetch_with_values(
                "q(k, session_id, at)",
                3,
                rows,
                "SELECT q.k, MAX(p.viewed_at) AS last FROM q JOIN page_views p \
                 ON p.session_id = q.session_id AND p.viewed_at <= q.at GROUP BY q.k",
            )
            .await?;
        found
            .iter()
            .map(|r| Ok((r.try_get("k")?, r.try_get("last")?)))
            .collect()
    }

    /// For each `(key, property, number, since, at)`: the session last shown the number (a
    /// source or overflow number, shown without a lease) that was active in `[since, at]`.
    pub async fn last_session_shown_each(
        &self,
        asks: &[(Key, &str, &str, Millis, Millis)],
    ) -> StorageResult<Vec<(Key, String)>> {
        let rows = asks
            .iter()
            .map(|(k, property, number, since, at)| {
                vec![i(*k), t(property), t(number), i(*since), i(*at)]
            })
            .collect();
        let found = self
            .fetch_with_values(
                "q(k, property_id, number, since, at)",
                5,
                rows,
                "SELECT k, session_id FROM (SELECT q.k, (SELECT s.id FROM sessions s \
                 WHERE s.property_id = q.property_id AND s.number = q.number \
                 AND s.first_seen_at <= q.at AND s.last_seen_at >= q.since \
                 ORDER BY s.last_seen_at DESC, s.id LIMIT 1) AS session_id FROM q) found \
                 WHERE session_id IS NOT NULL",
            )
            .await?;
        found
            .iter()
            .map(|r| Ok((r.try_get("k")?, r.try_get("session_id")?)))
            .collect()
    }

    /// Stores the attributions of a batch in one transaction: the calls in one statement (only
    /// those that still wait: another instance may have stored one), then which of each
    /// caller's calls is their first, then the rollup marks of the hours that changed. Returns
    /// the ids of the calls stored.
    pub async fn store_attributions(
        &self,
        decided: &[(&CallRow, CallAttribution)],
        now: Millis,
    ) -> StorageResult<Vec<String>> {
        if decided.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let mut stored = Vec::with_capacity(decided.len());
        for chunk in decided.chunks(ROWS_PER_STATEMENT / 2) {
            let rows: Vec<Vec<Arg>> = chunk
                .iter()
                .map(|(call, a)| {
                    let mut row = vec![
                        t(&call.id),
                        t(&a.confidence),
                        ot(&a.session_id),
                        t(&serde_json::to_string(&a.candidates).expect("strings serialise")),
                        t(&a.channel),
                        ot(&a.source),
                        ot(&a.medium),
                        ot(&a.campaign),
                        ot(&a.term),
                        ot(&a.content),
                        ot(&a.landing_url),
                        ot(&a.referrer),
                    ];
                    row.extend(a.click_ids.iter().map(ot));
                    row.extend([
                        ot(&a.visitor_city),
                        ot(&a.visitor_region),
                        ot(&a.visitor_country),
                        ot(&a.ga_client_id),
                        i(now),
                    ]);
                    row
                })
                .collect();
            let columns = ATTRIBUTION_COLUMNS.join(", ");
            let sets: Vec<String> = ATTRIBUTION_COLUMNS
                .iter()
                .map(|c| format!("{c} = v.{c}"))
                .collect();
            let ids = self
                .with_values(
                    &format!("v(call_id, {columns})"),
                    ATTRIBUTION_COLUMNS.len() + 1,
                    rows,
                    &format!(
                        "UPDATE calls SET {}, claimed_until = NULL FROM v \
                         WHERE calls.id = v.call_id AND calls.confidence IS NULL RETURNING id",
                        sets.join(", ")
                    ),
                )
                .fetch_all(&mut *tx)
                .await?;
            for r in &ids {
                stored.push(r.try_get::<String, _>("id")?);
            }
        }
        let stored_set: BTreeSet<&str> = stored.iter().map(String::as_str).collect();
        let stored_calls: Vec<&CallRow> = decided
            .iter()
            .map(|(c, _)| *c)
            .filter(|c| stored_set.contains(c.id.as_str()))
            .collect();

        // Each stored call's caller: all of their calls, to name the first and find neighbours.
        let callers: BTreeSet<(&str, &str)> = stored_calls
            .iter()
            .filter_map(|c| Some((c.call.account_id.as_str(), c.call.caller_number.as_deref()?)))
            .collect();
        let mut by_caller: HashMap<(String, String), Vec<CallerCall>> = HashMap::new();
        let callers: Vec<(&str, &str)> = callers.into_iter().collect();
        for chunk in callers.chunks(ROWS_PER_STATEMENT) {
            let rows = chunk.iter().map(|(a, c)| vec![t(a), t(c)]).collect();
            let found = self
                .with_values(
                    "q(account_id, caller_number)",
                    2,
                    rows,
                    "SELECT c.id, c.account_id, c.caller_number, c.property_id, c.started_at, \
                     c.disposition, c.first_call_id FROM calls c JOIN q \
                     ON c.account_id = q.account_id AND c.caller_number = q.caller_number",
                )
                .fetch_all(&mut *tx)
                .await?;
            for r in &found {
                let disposition: Option<String> = r.try_get("disposition")?;
                by_caller
                    .entry((r.try_get("account_id")?, r.try_get("caller_number")?))
                    .or_default()
                    .push(CallerCall {
                        id: r.try_get("id")?,
                        property_id: r.try_get("property_id")?,
                        started_at: r.try_get("started_at")?,
                        spam: disposition.as_deref() == Some("spam"),
                        first_call_id: r.try_get("first_call_id")?,
                    });
            }
        }
        let mut firsts: Vec<(String, Option<String>)> = Vec::new();
        let mut hours: BTreeSet<(String, i64)> = stored_calls
            .iter()
            .map(|c| (c.call.property_id.clone(), c.call.started_at / HOUR_MS))
            .collect();
        for calls in by_caller.values_mut() {
            calls.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
            let first = calls[0].id.clone();
            for c in calls.iter() {
                let wanted = (c.id != first).then(|| first.clone());
                if c.first_call_id != wanted {
                    firsts.push((c.id.clone(), wanted));
                }
            }
            for (at, me) in calls.iter().enumerate() {
                if stored_set.contains(me.id.as_str()) {
                    hours.extend(
                        neighbours(calls, at)
                            .map(|n| (n.property_id.clone(), n.started_at / HOUR_MS)),
                    );
                }
            }
        }
        // Usually only the batch's own calls learn their first; a replay that brings a
        // caller's earliest call late re-points the rest. In id order, as every writer does.
        firsts.sort();
        for chunk in firsts.chunks(ROWS_PER_STATEMENT) {
            self.with_values(
                "v(call_id, first_call_id)",
                2,
                chunk.iter().map(|(id, first)| vec![t(id), ot(first)]).collect(),
                "UPDATE calls SET first_call_id = v.first_call_id FROM v WHERE calls.id = v.call_id",
            )
            .execute(&mut *tx)
            .await?;
        }
        // Last, so the hot rows of the marks are held for the shortest time.
        mark_hours(&mut tx, self.backend, KIND_CALLS, &hours, now).await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// Marks calls completed with whether each is a qualified lead, in one transaction with
    /// the rollup marks of their hours; returns the ids of those not completed before (another
    /// instance may have done one).
    pub async fn store_completions(
        &self,
        completed: &[(&CallRow, bool)],
        now: Millis,
    ) -> StorageResult<Vec<String>> {
        if completed.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let mut done = Vec::with_capacity(completed.len());
        for chunk in completed.chunks(ROWS_PER_STATEMENT) {
            let rows = chunk
                .iter()
                .map(|(call, qualified)| vec![t(&call.id), i(i64::from(*qualified)), i(now)])
                .collect();
            let ids = self
                .with_values(
                    "v(call_id, qualified, at)",
                    3,
                    rows,
                    "UPDATE calls SET qualified = v.qualified, notified_at = v.at, \
                     claimed_until = NULL FROM v WHERE calls.id = v.call_id \
                     AND calls.notified_at IS NULL RETURNING id",
                )
                .fetch_all(&mut *tx)
                .await?;
            for r in &ids {
                done.push(r.try_get::<String, _>("id")?);
            }
        }
        let hours: BTreeSet<(String, i64)> = completed
            .iter()
            .map(|(c, _)| (c.call.property_id.clone(), c.call.started_at / HOUR_MS))
            .collect();
        mark_hours(&mut tx, self.backend, KIND_CALLS, &hours, now).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// `WITH names AS (VALUES ...) rest`, for one chunk of rows (at most `ROWS_PER_STATEMENT`).
    fn with_values<'q>(
        &self,
        names: &str,
        width: usize,
        rows: Vec<Vec<Arg>>,
        rest: &str,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        let sql = format!(
            "WITH {names} AS ({}) {rest}",
            values_sql(self.backend, width, rows.len())
        );
        // Only placeholders are interpolated; every value is bound.
        bind_rows(sqlx::query(sqlx::AssertSqlSafe(sql)), rows)
    }

    /// `with_values` over every chunk of `rows`, the answers together.
    async fn fetch_with_values(
        &self,
        names: &str,
        width: usize,
        rows: Vec<Vec<Arg>>,
        rest: &str,
    ) -> StorageResult<Vec<AnyRow>> {
        let mut found = Vec::new();
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<Vec<Arg>> = rows.by_ref().take(ROWS_PER_STATEMENT).collect();
            found.extend(
                self.with_values(names, width, chunk, rest)
                    .fetch_all(&self.pool)
                    .await?,
            );
        }
        Ok(found)
    }

    async fn fetch_by_ids(&self, ids: &BTreeSet<String>, rest: &str) -> StorageResult<Vec<AnyRow>> {
        let rows = ids.iter().map(|id| vec![t(id)]).collect();
        self.fetch_with_values("q(id)", 1, rows, rest).await
    }
}

/// The columns an attribution writes, in the order `store_attributions` binds them.
const ATTRIBUTION_COLUMNS: [&str; 23] = [
    "confidence",
    "session_id",
    "candidates",
    "channel",
    "source",
    "medium",
    "campaign",
    "term",
    "content",
    "landing_url",
    "referrer",
    "gclid",
    "gbraid",
    "wbraid",
    "msclkid",
    "fbclid",
    "ttclid",
    "li_fat_id",
    "visitor_city",
    "visitor_region",
    "visitor_country",
    "ga_client_id",
    "attributed_at",
];

/// The calls whose report rows change when the call at `at` (in its caller's calls, in time
/// order) is attributed: the previous and next call to the same property that are not spam
/// (their gaps to it change) and the next call in the account (it may have stopped being the
/// caller's first). Never every call of a caller who calls a thousand times.
fn neighbours(calls: &[CallerCall], at: usize) -> impl Iterator<Item = &CallerCall> {
    let me = &calls[at];
    let same = |c: &&CallerCall| c.property_id == me.property_id && !c.spam;
    let previous = calls[..at].iter().rev().find(same);
    let next = calls[at + 1..].iter().find(same);
    let next_in_account = calls.get(at + 1);
    previous.into_iter().chain(next).chain(next_in_account)
}

/// Rows of `(k, session_id, <time column>)`.
fn keyed_sessions_at(rows: &[AnyRow], time: &str) -> StorageResult<Vec<(Key, String, Millis)>> {
    rows.iter()
        .map(|r| Ok((r.try_get("k")?, r.try_get("session_id")?, r.try_get(time)?)))
        .collect()
}
