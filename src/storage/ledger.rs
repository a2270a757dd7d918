//! Writes of the page-view flow, in batches: sessions, page views, leases, exhaustion events.
//! Each batch is one transaction of multi-row statements (a few round trips for thousands of
//! rows), and every write is an idempotent upsert, so a batch retried after an error is harmless.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Backend, Storage, StorageResult, new_id};
use crate::time::Millis;

/// A session as first seen.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub id: String,
    pub account_id: String,
    pub property_id: String,
    pub pool_id: Option<String>,
    pub assignment: String,
    pub number: Option<String>,
    pub landing_url: String,
    pub referrer: Option<String>,
    pub channel: String,
    pub source: String,
    pub medium: String,
    pub campaign: Option<String>,
    pub term: Option<String>,
    pub content: Option<String>,
    pub click_ids: [Option<String>; 7],
    pub visitor_city: Option<String>,
    pub visitor_region: Option<String>,
    pub visitor_country: Option<String>,
    /// The visitor's Google Analytics client id (`<random>.<seconds>`), for GA4 events.
    pub ga_client_id: Option<String>,
    pub page_views: i64,
    pub first_seen_at: Millis,
    pub last_seen_at: Millis,
}

/// The click-id columns, in the order of `SessionRow::click_ids`.
pub const CLICK_ID_COLUMNS: [&str; 7] = [
    "gclid",
    "gbraid",
    "wbraid",
    "msclkid",
    "fbclid",
    "ttclid",
    "li_fat_id",
];

/// A later page view's effect on the session row.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSeen {
    pub id: String,
    pub last_seen_at: Millis,
    pub page_views: i64,
    pub number: Option<String>,
    pub assignment: String,
    /// Kept only if the session has none yet.
    pub ga_client_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PageViewRow {
    pub session_id: String,
    pub url: String,
    pub viewed_at: Millis,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LeaseRow {
    pub pool_id: String,
    pub number: String,
    pub session_id: String,
    pub started_at: Millis,
    pub last_seen_at: Millis,
    pub ends_at: Millis,
    pub shared: bool,
}

impl LeaseRow {
    /// One row per (session, number, start): renewals update it in place.
    pub fn id(&self) -> String {
        format!("{}:{}:{}", self.session_id, self.number, self.started_at)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExhaustionRow {
    pub pool_id: String,
    pub session_id: String,
    /// The pool's exhaustion policy, or `BUDGET_REFUSED`.
    pub policy: String,
    pub at: Millis,
}

/// The `policy` of an exhaustion event recorded because the pool's budget of new leases for
/// the minute was spent (a number was free).
pub const BUDGET_REFUSED: &str = "budget";

/// A pool's counts over a window, for its health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolHealthCounts {
    /// New sessions routed to the pool.
    pub arrivals: i64,
    pub exhaustions: i64,
    /// Of the exhaustions, those the new-lease budget made (policy `BUDGET_REFUSED`).
    pub budget_refusals: i64,
}

/// Sessions that began sharing a number they already held.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedFrom {
    pub number: String,
    pub session_ids: Vec<String>,
    pub at: Millis,
}

pub(super) const SESSION_COLUMNS: &str = "id, account_id, property_id, pool_id, assignment, number, \
     landing_url, referrer, channel, source, medium, campaign, term, content, gclid, gbraid, \
     wbraid, msclkid, fbclid, ttclid, li_fat_id, visitor_city, visitor_region, visitor_country, \
     ga_client_id, page_views, first_seen_at, last_seen_at";

const LEASE_COLUMNS: &str =
    "pool_id, number, session_id, started_at, last_seen_at, ends_at, shared";

/// One flush worth of writes, already coalesced (one row per key).
#[derive(Debug, Default, Clone)]
pub struct LedgerBatch {
    pub sessions: Vec<SessionRow>,
    pub seen: Vec<SessionSeen>,
    pub page_views: Vec<PageViewRow>,
    pub leases: Vec<LeaseRow>,
    pub shared: Vec<SharedFrom>,
    pub exhaustions: Vec<ExhaustionRow>,
}

impl LedgerBatch {
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
            && self.seen.is_empty()
            && self.page_views.is_empty()
            && self.leases.is_empty()
            && self.shared.is_empty()
            && self.exhaustions.is_empty()
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
            + self.seen.len()
            + self.page_views.len()
            + self.leases.len()
            + self.shared.len()
            + self.exhaustions.len()
    }
}

/// A value bound into a multi-row statement.
pub(super) enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
}

/// Rows per statement: well under SQLite's and PostgreSQL's bound-parameter limits.
pub(super) const ROWS_PER_STATEMENT: usize = 500;

/// `head VALUES (...), (...) tail`, in chunks.
pub(super) async fn insert_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    head: &str,
    width: usize,
    rows: Vec<Vec<Arg>>,
    tail: &str,
) -> StorageResult<()> {
    values_statement(
        tx,
        backend,
        &format!("{head} "),
        width,
        rows,
        &format!(" {tail}"),
    )
    .await
}

/// `head` + `VALUES (...), (...)` + `tail`, in chunks of `ROWS_PER_STATEMENT`.
async fn values_statement(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    head: &str,
    width: usize,
    rows: Vec<Vec<Arg>>,
    tail: &str,
) -> StorageResult<()> {
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Arg>> = rows.by_ref().take(ROWS_PER_STATEMENT).collect();
        let sql = format!("{head}{}{tail}", values_sql(backend, width, chunk.len()));
        // Only placeholders are interpolated; every value is bound.
        bind_rows(sqlx::query(sqlx::AssertSqlSafe(sql)), chunk)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// `VALUES (...), (...)` with `rows` rows of `width` placeholders, numbered from 1: the
/// statement's only parameters, and its first.
pub(super) fn values_sql(backend: Backend, width: usize, rows: usize) -> String {
    let mut sql = String::from("VALUES ");
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..width {
            if c > 0 {
                sql.push_str(", ");
            }
            // Dialect branch: SQLite finds a *named* parameter by a linear scan, once per
            // parameter, which makes a 2 500-parameter statement quadratic; its anonymous
            // `?` parameters are positional and free. PostgreSQL needs `$n`.
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => sql.push_str(&format!("${}", r * width + c + 1)),
            }
        }
        sql.push(')');
    }
    sql
}

/// Binds the rows of a `values_sql` statement, in order.
pub(super) fn bind_rows<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    rows: Vec<Vec<Arg>>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for row in rows {
        for arg in row {
            query = match arg {
                Arg::Text(v) => query.bind(v),
                Arg::Int(v) => query.bind(v),
            };
        }
    }
    query
}

pub(super) fn t(v: &str) -> Arg {
    Arg::Text(Some(v.to_owned()))
}
pub(super) fn ot(v: &Option<String>) -> Arg {
    Arg::Text(v.clone())
}
pub(super) fn i(v: i64) -> Arg {
    Arg::Int(Some(v))
}

/// A session written twice: by its instance's ledger, and (when that instance died before
/// writing it) recovered from the lease store with what the store knew, `landing_url` left
/// empty. A recovered row never overwrites a row; a ledger row fills in a recovered one.
static SESSION_CONFLICT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let latest = ["last_seen_at", "page_views", "number", "assignment"].map(|c| {
        format!("{c} = CASE WHEN excluded.landing_url = '' THEN sessions.{c} ELSE excluded.{c} END")
    });
    let described = [
        "landing_url",
        "referrer",
        "term",
        "content",
        "visitor_city",
        "visitor_region",
        "visitor_country",
        "first_seen_at",
    ]
    .iter()
    .chain(CLICK_ID_COLUMNS.iter())
    .map(|c| {
        format!("{c} = CASE WHEN sessions.landing_url = '' THEN excluded.{c} ELSE sessions.{c} END")
    });
    let sets: Vec<String> = latest
        .into_iter()
        .chain(described)
        .chain(["ga_client_id = COALESCE(sessions.ga_client_id, excluded.ga_client_id)".into()])
        .collect();
    format!("ON CONFLICT (id) DO UPDATE SET {}", sets.join(", "))
});

impl Storage {
    /// The lease store's buckets: (bucket id, account, property, whether it is a session pool).
    pub async fn lease_buckets(&self) -> StorageResult<Vec<(String, String, String, bool)>> {
        sqlx::query(
            "SELECT id, account_id, property_id, 1 AS pool FROM pools WHERE kind = 'session' \
             UNION ALL SELECT id, account_id, id, 0 AS pool FROM properties",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.try_get("id")?,
                r.try_get("account_id")?,
                r.try_get("property_id")?,
                r.try_get::<i64, _>("pool")? == 1,
            ))
        })
        .collect()
    }

    /// Of these session ids, those the database has no row for.
    pub async fn sessions_missing(&self, ids: &[String]) -> StorageResult<Vec<String>> {
        let mut missing = Vec::new();
        for chunk in ids.chunks(500) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
            // Only placeholders are interpolated; every id is bound.
            let sql = format!(
                "SELECT id FROM sessions WHERE id IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id);
            }
            let found: std::collections::HashSet<String> = query
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| r.try_get("id"))
                .collect::<Result<_, _>>()?;
            missing.extend(chunk.iter().filter(|id| !found.contains(*id)).cloned());
        }
        Ok(missing)
    }

    pub async fn write_ledger(&self, batch: &LedgerBatch) -> StorageResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        if !batch.sessions.is_empty() {
            // New sessions change their day's session rollups (later page views do not).
            let hours = batch
                .sessions
                .iter()
                .map(|s| {
                    (
                        s.property_id.clone(),
                        s.first_seen_at / super::rollups::HOUR_MS,
                    )
                })
                .collect();
            let now = batch
                .sessions
                .iter()
                .map(|s| s.last_seen_at)
                .max()
                .unwrap_or(0);
            super::rollups::mark_session_hours(&mut tx, self.backend, &hours, now).await?;
            let rows = batch
                .sessions
                .iter()
                .map(|s| {
                    let mut row = vec![
                        t(&s.id),
                        t(&s.account_id),
                        t(&s.property_id),
                        ot(&s.pool_id),
                        t(&s.assignment),
                        ot(&s.number),
                        t(&s.landing_url),
                        ot(&s.referrer),
                        t(&s.channel),
                        t(&s.source),
                        t(&s.medium),
                        ot(&s.campaign),
                        ot(&s.term),
                        ot(&s.content),
                    ];
                    row.extend(s.click_ids.iter().map(ot));
                    row.extend([
                        ot(&s.visitor_city),
                        ot(&s.visitor_region),
                        ot(&s.visitor_country),
                        ot(&s.ga_client_id),
                        i(s.page_views),
                        i(s.first_seen_at),
                        i(s.last_seen_at),
                    ]);
                    row
                })
                .collect();
            insert_rows(
                &mut tx,
                self.backend,
                "INSERT INTO sessions (id, account_id, property_id, pool_id, assignment, number, \
                 landing_url, referrer, channel, source, medium, campaign, term, content, gclid, \
                 gbraid, wbraid, msclkid, fbclid, ttclid, li_fat_id, visitor_city, visitor_region, \
                 visitor_country, ga_client_id, page_views, first_seen_at, last_seen_at)",
                28,
                rows,
                &SESSION_CONFLICT,
            )
            .await?;
        }
        if !batch.seen.is_empty() {
            // One statement for many rows: VALUES columns are named column1.. in both SQLite
            // (3.33+) and PostgreSQL, so the same UPDATE ... FROM runs on either.
            let rows = batch
                .seen
                .iter()
                .map(|s| {
                    vec![
                        t(&s.id),
                        i(s.last_seen_at),
                        i(s.page_views),
                        ot(&s.number),
                        t(&s.assignment),
                        ot(&s.ga_client_id),
                    ]
                })
                .collect();
            values_statement(
                &mut tx,
                self.backend,
                "UPDATE sessions SET last_seen_at = v.column2, page_views = v.column3, \
                 number = v.column4, assignment = v.column5, \
                 ga_client_id = COALESCE(sessions.ga_client_id, v.column6) FROM (",
                6,
                rows,
                ") AS v WHERE sessions.id = v.column1 AND sessions.last_seen_at <= v.column2",
            )
            .await?;
        }
        if !batch.page_views.is_empty() {
            let rows = batch
                .page_views
                .iter()
                .map(|p| vec![t(&p.session_id), t(&p.url), i(p.viewed_at)])
                .collect();
            insert_rows(
                &mut tx,
                self.backend,
                "INSERT INTO page_views (session_id, url, viewed_at)",
                3,
                rows,
                "",
            )
            .await?;
        }
        if !batch.leases.is_empty() {
            let rows = batch
                .leases
                .iter()
                .map(|l| {
                    vec![
                        t(&l.id()),
                        t(&l.pool_id),
                        t(&l.number),
                        t(&l.session_id),
                        i(l.started_at),
                        i(l.last_seen_at),
                        i(l.ends_at),
                        i(l.shared as i64),
                    ]
                })
                .collect();
            insert_rows(
                &mut tx,
                self.backend,
                "INSERT INTO leases (id, pool_id, number, session_id, started_at, last_seen_at, \
                 ends_at, shared)",
                8,
                rows,
                "ON CONFLICT (id) DO UPDATE SET \
                 last_seen_at = CASE WHEN excluded.last_seen_at > leases.last_seen_at \
                     THEN excluded.last_seen_at ELSE leases.last_seen_at END, \
                 ends_at = CASE WHEN excluded.ends_at > leases.ends_at \
                     THEN excluded.ends_at ELSE leases.ends_at END, \
                 shared = CASE WHEN excluded.shared > leases.shared \
                     THEN excluded.shared ELSE leases.shared END",
            )
            .await?;
        }
        for shared in &batch.shared {
            for sid in &shared.session_ids {
                sqlx::query(
                    "UPDATE leases SET shared = 1 WHERE session_id = $1 AND number = $2 AND ends_at > $3",
                )
                .bind(sid)
                .bind(&shared.number)
                .bind(shared.at)
                .execute(&mut *tx)
                .await?;
            }
        }
        if !batch.exhaustions.is_empty() {
            let rows = batch
                .exhaustions
                .iter()
                .map(|e| {
                    vec![
                        t(&new_id()),
                        t(&e.pool_id),
                        t(&e.session_id),
                        t(&e.policy),
                        i(e.at),
                    ]
                })
                .collect();
            insert_rows(
                &mut tx,
                self.backend,
                "INSERT INTO exhaustion_events (id, pool_id, session_id, policy, at)",
                5,
                rows,
                "",
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A session as stored, with the lease it held last (to restore it into the lease store).
    pub async fn session_with_last_lease(
        &self,
        session_id: &str,
    ) -> StorageResult<Option<(SessionRow, Option<LeaseRow>)>> {
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1"
        )))
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let session = session_from_row(&row)?;
        let lease = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LEASE_COLUMNS} FROM leases WHERE session_id = $1 ORDER BY started_at DESC LIMIT 1"
        )))
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| lease_from_row(&r))
        .transpose()?;
        Ok(Some((session, lease)))
    }

    /// Leases of a pool still running at `now`, and when each number was last released.
    pub async fn pool_lease_state(
        &self,
        pool_id: &str,
        now: Millis,
    ) -> StorageResult<(Vec<LeaseRow>, Vec<(String, Millis)>)> {
        let running = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LEASE_COLUMNS} FROM leases WHERE pool_id = $1 AND ends_at > $2"
        )))
        .bind(pool_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(lease_from_row)
        .collect::<StorageResult<Vec<_>>>()?;
        let released = sqlx::query(
            "SELECT number, MAX(ends_at) AS last_end FROM leases \
             WHERE pool_id = $1 AND ends_at <= $2 GROUP BY number",
        )
        .bind(pool_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("number")?, r.try_get("last_end")?)))
        .collect::<StorageResult<Vec<_>>>()?;
        Ok((running, released))
    }

    /// Leases of a pool overlapping `[from, to)`, for pool health.
    pub async fn pool_leases_between(
        &self,
        pool_id: &str,
        from: Millis,
        to: Millis,
    ) -> StorageResult<Vec<LeaseRow>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LEASE_COLUMNS} FROM leases WHERE pool_id = $1 AND ends_at > $2 AND started_at < $3"
        )))
        .bind(pool_id)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(lease_from_row)
        .collect()
    }

    /// Counts for pool health over `[from, to]`: new sessions routed to the pool, and
    /// exhaustion events (and which of them the new-lease budget made).
    pub async fn pool_counts_between(
        &self,
        pool_id: &str,
        from: Millis,
        to: Millis,
    ) -> StorageResult<PoolHealthCounts> {
        let count = |sql: &'static str| async move {
            let n: i64 = sqlx::query(sql)
                .bind(pool_id)
                .bind(from)
                .bind(to)
                .fetch_one(&self.pool)
                .await?
                .try_get("n")?;
            StorageResult::Ok(n)
        };
        let sessions = count(
            "SELECT COUNT(*) AS n FROM sessions WHERE pool_id = $1 AND first_seen_at >= $2 AND first_seen_at <= $3",
        )
        .await?;
        let exhaustions = count(
            "SELECT COUNT(*) AS n FROM exhaustion_events WHERE pool_id = $1 AND at >= $2 AND at <= $3",
        )
        .await?;
        // `BUDGET_REFUSED`, as a literal for the static SQL.
        let budget_refusals = count(
            "SELECT COUNT(*) AS n FROM exhaustion_events WHERE pool_id = $1 AND at >= $2 AND at <= $3 AND policy = 'budget'",
        )
        .await?;
        Ok(PoolHealthCounts {
            arrivals: sessions,
            exhaustions,
            budget_refusals,
        })
    }

    /// The page views of a session, in order (for a call's detail).
    pub async fn page_views(&self, session_id: &str) -> StorageResult<Vec<PageViewRow>> {
        sqlx::query(
            "SELECT session_id, url, viewed_at FROM page_views WHERE session_id = $1 ORDER BY viewed_at",
        )
        .bind(session_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(PageViewRow {
                session_id: r.try_get("session_id")?,
                url: r.try_get("url")?,
                viewed_at: r.try_get("viewed_at")?,
            })
        })
        .collect()
    }
}

pub(super) fn session_from_row(r: &AnyRow) -> StorageResult<SessionRow> {
    let mut click_ids: [Option<String>; 7] = Default::default();
    for (slot, column) in click_ids.iter_mut().zip(CLICK_ID_COLUMNS) {
        *slot = r.try_get(column)?;
    }
    Ok(SessionRow {
        id: r.try_get("id")?,
        account_id: r.try_get("account_id")?,
        property_id: r.try_get("property_id")?,
        pool_id: r.try_get("pool_id")?,
        assignment: r.try_get("assignment")?,
        number: r.try_get("number")?,
        landing_url: r.try_get("landing_url")?,
        referrer: r.try_get("referrer")?,
        channel: r.try_get("channel")?,
        source: r.try_get("source")?,
        medium: r.try_get("medium")?,
        campaign: r.try_get("campaign")?,
        term: r.try_get("term")?,
        content: r.try_get("content")?,
        click_ids,
        visitor_city: r.try_get("visitor_city")?,
        visitor_region: r.try_get("visitor_region")?,
        visitor_country: r.try_get("visitor_country")?,
        ga_client_id: r.try_get("ga_client_id")?,
        page_views: r.try_get("page_views")?,
        first_seen_at: r.try_get("first_seen_at")?,
        last_seen_at: r.try_get("last_seen_at")?,
    })
}

fn lease_from_row(r: &AnyRow) -> StorageResult<LeaseRow> {
    Ok(LeaseRow {
        pool_id: r.try_get("pool_id")?,
        number: r.try_get("number")?,
        session_id: r.try_get("session_id")?,
        started_at: r.try_get("started_at")?,
        last_seen_at: r.try_get("last_seen_at")?,
        ends_at: r.try_get("ends_at")?,
        shared: r.try_get::<i64, _>("shared")? != 0,
    })
}

/// Reads of the ledger that a call's attribution makes.
impl Storage {
    /// Leases of `number` in `pool_id` covering the instant `at`.
    pub async fn leases_covering(
        &self,
        pool_id: &str,
        number: &str,
        at: Millis,
    ) -> StorageResult<Vec<LeaseRow>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LEASE_COLUMNS} FROM leases WHERE number = $1 AND pool_id = $2 \
             AND started_at <= $3 AND ends_at > $3"
        )))
        .bind(number)
        .bind(pool_id)
        .bind(at)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(lease_from_row)
        .collect()
    }

    /// The lease of `number` in `pool_id` that ended last at or before `at`.
    pub async fn last_lease_ended_by(
        &self,
        pool_id: &str,
        number: &str,
        at: Millis,
    ) -> StorageResult<Option<LeaseRow>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LEASE_COLUMNS} FROM leases WHERE number = $1 AND pool_id = $2 \
             AND ends_at <= $3 ORDER BY ends_at DESC, session_id LIMIT 1"
        )))
        .bind(number)
        .bind(pool_id)
        .bind(at)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(lease_from_row)
        .transpose()
    }

    /// When the session last viewed a page at or before `at`.
    pub async fn last_page_view_by(
        &self,
        session_id: &str,
        at: Millis,
    ) -> StorageResult<Option<Millis>> {
        let row = sqlx::query(
            "SELECT MAX(viewed_at) AS last FROM page_views WHERE session_id = $1 AND viewed_at <= $2",
        )
        .bind(session_id)
        .bind(at)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("last")?)
    }

    pub async fn session(&self, session_id: &str) -> StorageResult<Option<SessionRow>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1"
        )))
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(session_from_row)
        .transpose()
    }

    /// The session last shown `number` (without a lease: a source or overflow number) that was
    /// active in `[since, at]`.
    pub async fn last_session_shown(
        &self,
        property_id: &str,
        number: &str,
        since: Millis,
        at: Millis,
    ) -> StorageResult<Option<SessionRow>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE property_id = $1 AND number = $2 \
             AND first_seen_at <= $3 AND last_seen_at >= $4 ORDER BY last_seen_at DESC, id LIMIT 1"
        )))
        .bind(property_id)
        .bind(number)
        .bind(at)
        .bind(since)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(session_from_row)
        .transpose()
    }
}
