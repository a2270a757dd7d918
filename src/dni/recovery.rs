//! Sessions the database never received. The ledger writes a page view up to `FLUSH_EVERY`
//! after answering it, so an instance that dies (SIGKILL, a lost host) takes its last moments
//! of new sessions with it, though their visitors were shown, and keep, a leased number: the
//! shared lease store still holds each session (its channel, source, campaign, lease and page
//! views). Every instance with a shared store looks, now and then, for sessions the store first
//! held a while ago that the database lacks, and writes them from what the store knows, so
//! their calls are attributed to them and reports count them. The buckets are sharded across
//! instances (`work::SESSION_RECOVERY`): each looks in the buckets of the shards it holds.
//!
//! What only the ledger knew (the landing page, referrer, click ids, the page-view rows) is lost
//! with the instance; such a session is stored with an empty `landing_url`, which also lets a
//! ledger row that arrives late (a slow instance, not a dead one) fill it in.

use std::time::Duration;

use futures_util::StreamExt;

use super::lease_store::StoredSession;
use super::service::{Dni, Meta};
use crate::storage::{LeaseRow, LedgerBatch, SessionRow};
use crate::time::Millis;

/// How often an instance looks.
pub const RECOVER_EVERY: Duration = Duration::from_secs(2);
/// How long after the store first held a session the database must have it: many ledger
/// flushes, so a live instance's session is never taken for a lost one.
pub const GRACE_MS: Millis = 5_000;
/// How far back an instance's first look goes: sessions lost before it started.
pub const LOOK_BACK_MS: Millis = 15 * 60_000;
/// Sessions read from the store per bucket and look.
const PAGE: usize = 1_000;

impl Dni {
    /// Writes the sessions the store first held in `[from, to]` that the database lacks;
    /// returns how many. Several instances may do this at once: the writes are idempotent.
    pub async fn recover_lost_sessions(&self, from: Millis, to: Millis) -> anyhow::Result<usize> {
        self.recover_lost_sessions_in(|_| Some((from, to))).await
    }

    /// As [`recover_lost_sessions`](Self::recover_lost_sessions), in the buckets `window`
    /// gives a time range for (by bucket id), each over its own range.
    pub async fn recover_lost_sessions_in(
        &self,
        window: impl Fn(&str) -> Option<(Millis, Millis)>,
    ) -> anyhow::Result<usize> {
        let buckets: Vec<_> = self
            .storage
            .lease_buckets()
            .await?
            .into_iter()
            .filter_map(|bucket| window(&bucket.0).map(|range| (bucket, range)))
            .collect();
        // One small read per bucket, a few at a time (a cluster cannot pipeline across slots).
        let listed: Vec<_> = futures_util::stream::iter(buckets)
            .map(|(bucket, (from, to))| async move {
                let created = self
                    .leases()
                    .created_between(&bucket.0, from, to, PAGE)
                    .await;
                (bucket, to, created)
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let mut recovered = 0;
        for ((bucket, account_id, property_id, is_pool), to, created) in listed {
            let mut created = created?;
            loop {
                recovered += self
                    .recover_from(&bucket, &account_id, &property_id, is_pool, &created)
                    .await?;
                // Sessions first held in the same millisecond as the page's last are read
                // again on the next page: harmless, and a page can never stall on them.
                match created.last() {
                    Some(&(_, at)) if created.len() == PAGE && at > created[0].1 => {
                        created = self.leases().created_between(&bucket, at, to, PAGE).await?;
                    }
                    _ => break,
                }
            }
        }
        Ok(recovered)
    }

    /// Of these sessions, writes those the database lacks; returns how many.
    async fn recover_from(
        &self,
        bucket: &str,
        account_id: &str,
        property_id: &str,
        is_pool: bool,
        created: &[(String, Millis)],
    ) -> anyhow::Result<usize> {
        let ids: Vec<String> = created.iter().map(|(sid, _)| sid.clone()).collect();
        let missing = self.storage.sessions_missing(&ids).await?;
        if missing.is_empty() {
            return Ok(0);
        }
        let lost: Vec<(String, Millis)> = created
            .iter()
            .filter(|(sid, _)| missing.contains(sid))
            .cloned()
            .collect();
        let mut batch = LedgerBatch::default();
        for s in self.leases().stored_sessions(bucket, &lost).await? {
            let Some(row) = session_row(&s, account_id, property_id, is_pool) else {
                continue;
            };
            if is_pool && let Some(l) = &s.lease {
                batch.leases.push(LeaseRow {
                    pool_id: bucket.to_owned(),
                    number: l.number.clone(),
                    session_id: s.session_id.clone(),
                    started_at: l.started_at,
                    last_seen_at: s.last_seen_at,
                    ends_at: l.ends_at,
                    shared: l.shared,
                });
            }
            batch.sessions.push(row);
        }
        if batch.sessions.is_empty() {
            return Ok(0);
        }
        tracing::warn!(
            bucket,
            sessions = batch.sessions.len(),
            "sessions the database never received (an instance died before writing them) \
             recovered from the lease store"
        );
        self.storage.write_ledger(&batch).await?;
        Ok(batch.sessions.len())
    }
}

/// The session's row as the store knows it; None when its meta is not this property's.
fn session_row(
    s: &StoredSession,
    account_id: &str,
    property_id: &str,
    in_session_pool: bool,
) -> Option<SessionRow> {
    let meta: Meta = serde_json::from_str(&s.meta).ok()?;
    if meta.p != property_id {
        return None;
    }
    let assignment = match &s.lease {
        Some(l) if l.shared => "shared",
        Some(_) => "lease",
        // Shown the default or the overflow number; which one, the store does not say.
        None if in_session_pool => "default",
        None if meta.pool.is_some() => "source",
        None => "none",
    };
    Some(SessionRow {
        id: s.session_id.clone(),
        account_id: account_id.to_owned(),
        property_id: meta.p,
        pool_id: meta.pool,
        assignment: assignment.to_owned(),
        number: s.lease.as_ref().map(|l| l.number.clone()),
        landing_url: String::new(),
        referrer: None,
        channel: meta.ch,
        source: meta.src,
        medium: meta.med,
        campaign: meta.cmp,
        term: None,
        content: None,
        click_ids: Default::default(),
        visitor_city: None,
        visitor_region: None,
        visitor_country: None,
        ga_client_id: None,
        page_views: s.page_views,
        first_seen_at: s.created_at,
        last_seen_at: s.last_seen_at,
    })
}
