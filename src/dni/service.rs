//! The page-view flow: `POST /v1/dni/session` minus HTTP. Resolve the property (cached),
//! classify the visit, pick the pool, lease a number in one atomic lease-store step, answer;
//! record everything in the write-behind ledger. The database is never waited on for a known
//! property, and a lease-store outage answers the default number instead of failing the page.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use url::Url;

use super::classify::{Classification, classify, parse_referrer};
use super::directory::{Directory, PropertyConfig};
use super::lease_store::{
    BucketSnapshot, LeaseResult, LeaseStore, LeaseStoreError, Mode, NewSession, PreviousLease,
    SnapshotLease, Touch, TouchOutcome, Touched,
};
use super::ledger::{Ledger, LedgerEvent};
use crate::domain::{ExhaustionPolicy, PoolKind, parse_client_id};
use crate::geo::Geo;
use crate::storage::{
    BUDGET_REFUSED, ExhaustionRow, LeaseRow, PageViewRow, Pool, SessionRow, SessionSeen,
    SharedFrom, Storage, StorageError,
};
use crate::time::{Millis, SharedClock};

/// The longest URL kept; longer ones are cut (tracking parameters come first in practice).
const MAX_URL_LEN: usize = 2048;

/// A page view, as the snippet posts it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct VisitRequest {
    /// The property's `public_key`.
    pub key: String,
    /// The `session` of the last answer, if any.
    #[serde(default)]
    pub session: Option<String>,
    /// The page's absolute `http(s)` URL.
    #[schema(value_type = crate::http::formats::HttpUrl)]
    pub url: String,
    #[serde(default)]
    pub referrer: Option<String>,
    /// A lease renewal while the page stays open, not a new page view: it extends a running
    /// lease (at most `SWITCHBOARD_LEASE_RENEWAL_HOLD_MINUTES` after the last page view) and
    /// never takes a number.
    #[serde(default)]
    pub renew: bool,
    /// The visitor's Google Analytics client id, from the `_ga` cookie (for GA4 events). Any
    /// JSON: whatever a page sends, a bad id is ignored, never an error.
    #[serde(default)]
    #[schema(value_type = Option<Value>)]
    pub ga_client_id: Option<serde_json::Value>,
}

impl VisitRequest {
    /// The GA client id, if it is one.
    fn ga_client_id(&self) -> Option<String> {
        self.ga_client_id
            .as_ref()
            .and_then(serde_json::Value::as_str)
            .and_then(parse_client_id)
    }
}

/// Facts about the request that the page did not write.
#[derive(Debug, Clone, Default)]
pub struct VisitContext {
    pub client_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct VisitAnswer {
    /// Keep this and send it with every page view; `null` when no session was kept (bots).
    pub session: Option<String>,
    /// The number to show, E.164.
    pub number: String,
    /// Seconds the number stays leased to this session without activity; 0 for no lease (or
    /// one that renewals can no longer extend: keep showing the number, stop renewing).
    pub expires_in: i64,
    pub channel: String,
    pub source: String,
    pub medium: String,
    pub campaign: Option<String>,
    /// The pool the number came from, if any.
    pub pool: Option<String>,
    /// The numbers the page publishes, E.164: every spelling of these is replaced by `number`.
    pub replace: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum VisitError {
    #[error("no property has this key")]
    UnknownKey,
    #[error("`url` must be an absolute http(s) URL")]
    InvalidUrl,
    #[error("the property cannot be loaded")]
    Unavailable(#[source] StorageError),
}

/// What the lease store remembers about a session besides its lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Meta {
    pub(super) p: String,
    #[serde(default)]
    pub(super) pool: Option<String>,
    pub(super) ch: String,
    pub(super) src: String,
    pub(super) med: String,
    #[serde(default)]
    pub(super) cmp: Option<String>,
}

/// The limits that keep one party from holding a pool's numbers.
#[derive(Debug, Clone, Copy)]
pub struct DniLimits {
    pub new_sessions_per_ip_per_minute: u32,
    /// The least budget of new leases per pool per minute (0: none).
    pub pool_new_leases_per_minute: u64,
    /// How long after the last page view renewals alone can keep a lease.
    pub renewal_hold_ms: Millis,
}

impl DniLimits {
    pub fn of(settings: &crate::config::Settings) -> Self {
        Self {
            new_sessions_per_ip_per_minute: settings.new_sessions_per_ip_per_minute,
            pool_new_leases_per_minute: settings.pool_new_leases_per_minute,
            renewal_hold_ms: settings.lease_renewal_hold_minutes * 60_000,
        }
    }
}

pub struct Dni {
    pub(super) storage: Storage,
    leases: Arc<LeaseStore>,
    directory: Directory,
    ledger: Ledger,
    geo: Arc<Geo>,
    clock: SharedClock,
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    limits: DniLimits,
    /// One log line per pool per minute when its new-lease budget refuses visitors.
    budget_logged: DefaultKeyedRateLimiter<String>,
}

impl Dni {
    pub fn new(
        storage: Storage,
        leases: Arc<LeaseStore>,
        ledger: Ledger,
        geo: Arc<Geo>,
        clock: SharedClock,
        limits: DniLimits,
    ) -> Self {
        let per_minute =
            NonZeroU32::new(limits.new_sessions_per_ip_per_minute).unwrap_or(NonZeroU32::MIN);
        Self {
            directory: Directory::new(storage.clone()),
            storage,
            leases,
            ledger,
            geo,
            clock,
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
            limits,
            budget_logged: RateLimiter::keyed(Quota::per_minute(NonZeroU32::MIN)),
        }
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Public keys cached, known or unknown (tests: junk keys must not grow it).
    pub fn cached_keys(&self) -> usize {
        self.directory.cached()
    }

    /// Public keys looked up in the database so far (cache misses).
    pub fn keys_looked_up(&self) -> u64 {
        self.directory.misses_loaded()
    }

    pub fn leases(&self) -> &LeaseStore {
        &self.leases
    }

    pub async fn property_for_key(&self, key: &str) -> Result<Arc<PropertyConfig>, VisitError> {
        // Junk keys never reach the database or the cache (anyone may post them).
        if !crate::domain::looks_like_public_key(key) {
            return Err(VisitError::UnknownKey);
        }
        self.directory
            .by_public_key(key)
            .await
            .map_err(VisitError::Unavailable)?
            .ok_or(VisitError::UnknownKey)
    }

    /// A property's settings or pools changed (here or on another instance).
    pub fn property_changed(&self, property_id: &str) {
        self.directory.invalidate_property(property_id);
    }

    /// A pool's numbers changed (here or on another instance).
    pub fn pool_config_changed(&self, pool_id: &str) {
        self.directory.invalidate_pool(pool_id);
    }

    /// A pool or its numbers changed on this instance: reload it into the lease store now (a
    /// store shared by instances then holds it for all of them).
    pub async fn pool_changed(&self, pool_id: &str) {
        if let Err(e) = self.sync_bucket(pool_id).await {
            tracing::warn!(error = %e, pool_id, "pool not re-synced; it will be on first use");
        }
    }

    /// Numbers of a session pool leased at `now`: the lease store's count when it holds the
    /// pool, else the ledger's running leases (the store is down, or this instance has not
    /// loaded the pool since it started).
    pub async fn leased_now(&self, pool_id: &str, now: Millis) -> Result<u64, StorageError> {
        if let Ok(status) = self.leases.status(pool_id, now).await
            && status.numbers > 0
        {
            return Ok(status.busy);
        }
        let running = self
            .storage
            .pool_leases_between(pool_id, now, now + 1)
            .await?;
        let numbers: std::collections::HashSet<&str> =
            running.iter().map(|l| l.number.as_str()).collect();
        Ok(numbers.len() as u64)
    }

    /// Forgets per-IP counters of addresses that went quiet (call now and then).
    pub fn prune_limiter(&self) {
        self.limiter.retain_recent();
        self.budget_logged.retain_recent();
    }

    pub async fn visit(
        &self,
        config: &PropertyConfig,
        req: &VisitRequest,
        ctx: &VisitContext,
    ) -> Result<VisitAnswer, VisitError> {
        let landing = parse_landing(&req.url)?;
        let referrer = req.referrer.as_deref().and_then(parse_referrer);
        let now = self.clock.now_ms();

        // Bots, and pages off the property's domains (anyone can post any `url`, with made-up
        // click ids that would flow into ad-platform exports): the default number, no session,
        // no lease.
        let off_site = !landing.host_str().is_some_and(|h| config.allows_host(h));
        if off_site || super::bots::is_bot(ctx.user_agent.as_deref()) {
            let c = classify(&landing, referrer.as_ref());
            return Ok(default_answer(config, None, &c));
        }

        if let Some(sid) = req.session.as_deref()
            && let Some(answer) = self.returning(config, sid, req, &landing, now).await
        {
            return Ok(answer);
        }
        Ok(self
            .new_session(config, req, &landing, referrer.as_ref(), ctx, now)
            .await)
    }

    /// A page view of a session the client names. `None`: not a session of this property (or
    /// forgotten everywhere), so the caller starts a new one.
    async fn returning(
        &self,
        config: &PropertyConfig,
        sid: &str,
        req: &VisitRequest,
        landing: &Url,
        now: Millis,
    ) -> Option<VisitAnswer> {
        let renew = req.renew;
        let bucket = bucket_of(sid)?;
        let (mode, lease_ms, pool) = self.bucket_mode(config, &bucket)?;
        let touch = Touch {
            bucket: &bucket,
            session_id: sid,
            mode,
            lease_ms,
            now,
            new_session: None,
            retention_ms: retention(lease_ms),
            page_view: !renew,
            renewal_hold_ms: self.limits.renewal_hold_ms,
            new_leases_per_minute: self.limits.pool_new_leases_per_minute,
        };
        let touched = match self.touch(&touch).await {
            Ok(TouchOutcome::Touched(t)) => t,
            Ok(TouchOutcome::Missing) => self.restore(config, &touch).await?,
            other => {
                if let Err(e) = other {
                    tracing::warn!(error = %e, "lease store unavailable; answering the default number");
                }
                return Some(self.degraded_answer(config, sid, &bucket));
            }
        };
        let meta: Meta = serde_json::from_str(&touched.meta).ok()?;
        if meta.p != config.property.id {
            return None;
        }
        let answer = self.answer(config, sid, pool, &meta, &touched, now);
        // A source pool's session lives in the property's bucket: its pool is in its meta.
        let shown_from = pool.or_else(|| meta.pool.as_deref().and_then(|id| config.pool(id)));
        self.ledger.record(LedgerEvent::SessionSeen(SessionSeen {
            id: sid.to_owned(),
            last_seen_at: now,
            page_views: touched.page_views,
            number: Some(answer.number.clone()),
            assignment: assignment(shown_from, &touched.lease).to_owned(),
            // GA sets its cookie after its own script runs, which may be after ours: a later
            // page view can bring the id the first one lacked.
            ga_client_id: req.ga_client_id(),
        }));
        if !renew {
            self.record_view(sid, landing, now);
        }
        self.record_lease(sid, pool, &touched, now);
        Some(answer)
    }

    /// The store forgot the session (restart, retention): bring it back from the database.
    async fn restore(&self, config: &PropertyConfig, touch: &Touch<'_>) -> Option<Touched> {
        let (row, lease) = match self.storage.session_with_last_lease(touch.session_id).await {
            Ok(Some(found)) => found,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(error = ?e, "cannot restore a session: the database is unavailable");
                return None;
            }
        };
        if row.property_id != config.property.id {
            return None;
        }
        let meta = serde_json::to_string(&Meta {
            p: row.property_id.clone(),
            pool: row.pool_id.clone(),
            ch: row.channel.clone(),
            src: row.source.clone(),
            med: row.medium.clone(),
            cmp: row.campaign.clone(),
        })
        .ok()?;
        let previous = lease
            .as_ref()
            .filter(|l| Some(&l.pool_id) == row.pool_id.as_ref())
            .map(|l| PreviousLease {
                number: &l.number,
                started_at: l.started_at,
                ends_at: l.ends_at,
                shared: l.shared,
            });
        let restored = Touch {
            new_session: Some(NewSession {
                meta: &meta,
                previous,
                page_views: row.page_views,
            }),
            ..touch.clone()
        };
        match self.touch(&restored).await {
            Ok(TouchOutcome::Touched(t)) => Some(t),
            _ => None,
        }
    }

    async fn new_session(
        &self,
        config: &PropertyConfig,
        req: &VisitRequest,
        landing: &Url,
        referrer: Option<&Url>,
        ctx: &VisitContext,
        now: Millis,
    ) -> VisitAnswer {
        let c = classify(landing, referrer);
        if let Some(ip) = ctx.client_ip
            && self.limiter.check_key(&limited_as(ip)).is_err()
        {
            tracing::info!("new-session limit reached for one address; default number shown");
            return default_answer(config, None, &c);
        }
        let pool = choose_pool(&config.pools, &c);
        let bucket = match pool {
            Some(p) if p.kind == PoolKind::Session => p.id.clone(),
            _ => config.property.id.clone(),
        };
        let sid = new_session_id(&bucket);
        let meta = Meta {
            p: config.property.id.clone(),
            pool: pool.map(|p| p.id.clone()),
            ch: c.channel.as_str().to_owned(),
            src: c.source.clone(),
            med: c.medium.clone(),
            cmp: c.campaign.clone(),
        };
        let meta_json = serde_json::to_string(&meta).expect("meta serialises");
        let (mode, lease_ms) = pool.map_or((Mode::Static, 0), mode_of);
        let touch = Touch {
            bucket: &bucket,
            session_id: &sid,
            mode,
            lease_ms,
            now,
            new_session: Some(NewSession {
                meta: &meta_json,
                previous: None,
                page_views: 0,
            }),
            retention_ms: retention(lease_ms),
            page_view: true,
            renewal_hold_ms: self.limits.renewal_hold_ms,
            new_leases_per_minute: self.limits.pool_new_leases_per_minute,
        };
        let touched = match self.touch(&touch).await {
            Ok(TouchOutcome::Touched(t)) => t,
            other => {
                if let Err(e) = other {
                    tracing::warn!(error = %e, "lease store unavailable; answering the default number");
                }
                // Remembered in the database only; the next page view retries the lease.
                Touched {
                    meta: meta_json,
                    page_views: 1,
                    lease: LeaseResult::Exhausted,
                }
            }
        };
        let answer = self.answer(config, &sid, pool, &meta, &touched, now);
        let location = ctx
            .client_ip
            .and_then(|ip| self.geo.locate(ip))
            .unwrap_or_default();
        self.ledger
            .record(LedgerEvent::SessionStarted(Box::new(SessionRow {
                id: sid.clone(),
                account_id: config.property.account_id.clone(),
                property_id: config.property.id.clone(),
                pool_id: pool.map(|p| p.id.clone()),
                assignment: assignment(pool, &touched.lease).to_owned(),
                number: Some(answer.number.clone()),
                landing_url: clip(landing.as_str()),
                referrer: req
                    .referrer
                    .as_deref()
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .map(clip),
                channel: meta.ch.clone(),
                source: c.source.clone(),
                medium: c.medium.clone(),
                campaign: c.campaign.clone(),
                term: c.term.clone(),
                content: c.content.clone(),
                click_ids: [
                    c.click_ids.gclid.clone(),
                    c.click_ids.gbraid.clone(),
                    c.click_ids.wbraid.clone(),
                    c.click_ids.msclkid.clone(),
                    c.click_ids.fbclid.clone(),
                    c.click_ids.ttclid.clone(),
                    c.click_ids.li_fat_id.clone(),
                ],
                visitor_city: location.city,
                visitor_region: location.region,
                visitor_country: location.country,
                ga_client_id: req.ga_client_id(),
                page_views: 1,
                first_seen_at: now,
                last_seen_at: now,
            })));
        self.record_view(&sid, landing, now);
        self.record_lease(&sid, pool, &touched, now);
        answer
    }

    /// Touches the store, loading the bucket from the database first if it asks.
    async fn touch(&self, touch: &Touch<'_>) -> Result<TouchOutcome, LeaseStoreError> {
        match self.leases.touch(touch).await? {
            TouchOutcome::NeedsSync => {
                // A store failure like any other: callers keep the session and show the
                // default number until the pool can be loaded.
                self.sync_bucket(touch.bucket)
                    .await
                    .map_err(|e| LeaseStoreError::PoolNotLoaded(format!("{e:#}")))?;
                self.leases.touch(touch).await
            }
            other => Ok(other),
        }
    }

    async fn sync_bucket(&self, pool_id: &str) -> anyhow::Result<()> {
        let now = self.clock.now_ms();
        let numbers = self.storage.live_numbers_of_pool(pool_id).await?;
        let (running, released) = self.storage.pool_lease_state(pool_id, now).await?;
        let snapshot = BucketSnapshot {
            numbers: numbers
                .into_iter()
                .map(|n| {
                    let idle = released
                        .iter()
                        .find(|(r, _)| *r == n)
                        .map_or(0, |(_, at)| *at);
                    (n, idle)
                })
                .collect(),
            leases: running
                .into_iter()
                .map(|l| SnapshotLease {
                    session_id: l.session_id,
                    number: l.number,
                    started_at: l.started_at,
                    ends_at: l.ends_at,
                    shared: l.shared,
                })
                .collect(),
        };
        self.leases.sync(pool_id, &snapshot).await?;
        Ok(())
    }

    /// The lease mode of a session's bucket: one of the property's session pools, or the
    /// property itself.
    fn bucket_mode<'c>(
        &self,
        config: &'c PropertyConfig,
        bucket: &str,
    ) -> Option<(Mode, Millis, Option<&'c Pool>)> {
        if bucket == config.property.id {
            return Some((Mode::Static, 0, None));
        }
        let pool = config.pool(bucket)?;
        let (mode, lease_ms) = mode_of(pool);
        Some((mode, lease_ms, Some(pool)))
    }

    fn answer(
        &self,
        config: &PropertyConfig,
        sid: &str,
        pool: Option<&Pool>,
        meta: &Meta,
        touched: &Touched,
        now: Millis,
    ) -> VisitAnswer {
        // A static session's pool is in its meta (a source pool), not its bucket.
        let pool = pool.or_else(|| meta.pool.as_deref().and_then(|id| config.pool(id)));
        let (number, expires_in) = match (&touched.lease, pool) {
            // Capped: the lease runs out at its end unless a page view comes; 0 tells the
            // snippet to stop renewing and keep showing the number until then.
            (LeaseResult::Held(l), _) if l.capped => (l.number.clone(), 0),
            (LeaseResult::Held(l), _) => (l.number.clone(), ((l.ends_at - now) / 1000).max(0)),
            // A renewal after the lease lapsed: the page keeps what it shows (no flicker), with
            // no promise; the next page view takes the number back if it is still free.
            (LeaseResult::Lapsed { number }, _) if !number.is_empty() => (number.clone(), 0),
            (LeaseResult::Static, Some(p)) => (
                PropertyConfig::source_number(p)
                    .unwrap_or(&config.property.default_number)
                    .to_owned(),
                0,
            ),
            (
                LeaseResult::Exhausted | LeaseResult::Limited | LeaseResult::Lapsed { .. },
                Some(p),
            ) if p.exhaustion == ExhaustionPolicy::Overflow => (
                p.overflow_number
                    .clone()
                    .unwrap_or_else(|| config.property.default_number.clone()),
                0,
            ),
            _ => (config.property.default_number.clone(), 0),
        };
        VisitAnswer {
            session: Some(sid.to_owned()),
            number,
            expires_in,
            channel: meta.ch.clone(),
            source: meta.src.clone(),
            medium: meta.med.clone(),
            campaign: meta.cmp.clone(),
            pool: pool.map(|p| p.id.clone()),
            replace: replaced_numbers(config),
        }
    }

    /// The lease store is down: keep the session, show the default number.
    fn degraded_answer(&self, config: &PropertyConfig, sid: &str, bucket: &str) -> VisitAnswer {
        VisitAnswer {
            session: Some(sid.to_owned()),
            number: config.property.default_number.clone(),
            expires_in: 0,
            channel: String::new(),
            source: String::new(),
            medium: String::new(),
            campaign: None,
            pool: config.pool(bucket).map(|p| p.id.clone()),
            replace: replaced_numbers(config),
        }
    }

    fn record_view(&self, sid: &str, landing: &Url, now: Millis) {
        self.ledger.record(LedgerEvent::PageView(PageViewRow {
            session_id: sid.to_owned(),
            url: clip(landing.as_str()),
            viewed_at: now,
        }));
    }

    fn record_lease(&self, sid: &str, pool: Option<&Pool>, touched: &Touched, now: Millis) {
        let Some(pool) = pool.filter(|p| p.kind == PoolKind::Session) else {
            return;
        };
        match &touched.lease {
            LeaseResult::Held(l) => {
                self.ledger.record(LedgerEvent::Lease(LeaseRow {
                    pool_id: pool.id.clone(),
                    number: l.number.clone(),
                    session_id: sid.to_owned(),
                    started_at: l.started_at,
                    last_seen_at: now,
                    ends_at: l.ends_at,
                    shared: l.shared,
                }));
                if l.exhausted {
                    self.exhausted(pool, sid, now);
                }
                if !l.shared_with.is_empty() {
                    self.ledger.record(LedgerEvent::Shared(SharedFrom {
                        number: l.number.clone(),
                        session_ids: l.shared_with.clone(),
                        at: now,
                    }));
                }
            }
            LeaseResult::Exhausted => self.exhausted(pool, sid, now),
            LeaseResult::Limited => {
                if self.budget_logged.check_key(&pool.id).is_ok() {
                    tracing::warn!(
                        pool_id = %pool.id,
                        "the pool's budget of new leases for this minute is spent; new visitors see the exhaustion number"
                    );
                }
                self.record_exhaustion(pool, sid, BUDGET_REFUSED, now);
            }
            LeaseResult::Lapsed { .. } | LeaseResult::Static => {}
        }
    }

    fn exhausted(&self, pool: &Pool, sid: &str, now: Millis) {
        self.record_exhaustion(pool, sid, pool.exhaustion.as_str(), now);
    }

    /// An exhaustion event (counted in the pool's health); `policy` says what the visitor got.
    fn record_exhaustion(&self, pool: &Pool, sid: &str, policy: &str, now: Millis) {
        self.ledger.record(LedgerEvent::Exhaustion(ExhaustionRow {
            pool_id: pool.id.clone(),
            session_id: sid.to_owned(),
            policy: policy.to_owned(),
            at: now,
        }));
    }
}

fn mode_of(pool: &Pool) -> (Mode, Millis) {
    match (pool.kind, pool.exhaustion) {
        (PoolKind::Source, _) => (Mode::Static, 0),
        (PoolKind::Session, ExhaustionPolicy::Share) => (Mode::Share, pool.lease_minutes * 60_000),
        (PoolKind::Session, _) => (Mode::Exclusive, pool.lease_minutes * 60_000),
    }
}

/// How long the store remembers an idle session: well past its lease, so a visitor who
/// returns within the hour is found without a database read.
fn retention(lease_ms: Millis) -> Millis {
    (lease_ms * 2).max(2 * 60 * 60_000)
}

fn assignment(pool: Option<&Pool>, lease: &LeaseResult) -> &'static str {
    match (pool, lease) {
        (_, LeaseResult::Held(l)) if l.shared => "shared",
        (_, LeaseResult::Held(_)) => "lease",
        (Some(p), LeaseResult::Static) if p.kind == PoolKind::Source => "source",
        (_, LeaseResult::Lapsed { number }) if !number.is_empty() => "lapsed",
        (Some(p), LeaseResult::Exhausted | LeaseResult::Limited | LeaseResult::Lapsed { .. })
            if p.exhaustion == ExhaustionPolicy::Overflow =>
        {
            "overflow"
        }
        (Some(_), LeaseResult::Exhausted | LeaseResult::Limited | LeaseResult::Lapsed { .. }) => {
            "default"
        }
        _ => "none",
    }
}

/// The address the new-session limit counts under: an IPv6 client's /64 (one subscriber's
/// network: a host can pick any address in it), an IPv4 address as itself (also when mapped
/// into IPv6).
fn limited_as(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.into(),
            None => ipnet::Ipv6Net::new(v6, 64)
                .expect("64 is a valid prefix")
                .trunc()
                .addr()
                .into(),
        },
        v4 => v4,
    }
}

fn default_answer(
    config: &PropertyConfig,
    session: Option<String>,
    c: &Classification,
) -> VisitAnswer {
    VisitAnswer {
        session,
        number: config.property.default_number.clone(),
        expires_in: 0,
        channel: c.channel.as_str().to_owned(),
        source: c.source.clone(),
        medium: c.medium.clone(),
        campaign: c.campaign.clone(),
        pool: None,
        replace: replaced_numbers(config),
    }
}

fn replaced_numbers(config: &PropertyConfig) -> Vec<String> {
    vec![config.property.default_number.clone()]
}

/// The pool whose match fits the visit, most specific first; equally specific pools go by
/// creation order. A pool with no criteria is the property's default.
pub fn choose_pool<'p>(pools: &'p [Pool], c: &Classification) -> Option<&'p Pool> {
    let channel = c.channel.as_str().to_lowercase();
    let source = c.source.to_lowercase();
    let medium = c.medium.to_lowercase();
    let campaign = c.campaign.as_deref().map(str::to_lowercase);
    let fits = |want: &Option<String>, have: Option<&str>| match want {
        None => true,
        Some(w) => have == Some(w.as_str()),
    };
    pools
        .iter()
        .filter(|p| p.kind == PoolKind::Session || PropertyConfig::source_number(p).is_some())
        .filter(|p| {
            fits(&p.matcher.channel, Some(&channel))
                && fits(&p.matcher.source, Some(&source))
                && fits(&p.matcher.medium, Some(&medium))
                && fits(&p.matcher.campaign, campaign.as_deref())
        })
        .rev()
        .max_by_key(|p| p.matcher.specificity())
}

/// Session ids name their bucket (for one lease-store round trip) and carry 128 random bits
/// (so nobody can take over another visitor's session by guessing its id).
fn new_session_id(bucket: &str) -> String {
    let random: [u8; 16] = rand::random();
    let compact = bucket.replace('-', "");
    format!("{compact}.{}", URL_SAFE_NO_PAD.encode(random))
}

fn bucket_of(sid: &str) -> Option<String> {
    let (bucket, random) = sid.split_once('.')?;
    if random.len() != 22 || bucket.len() != 32 {
        return None;
    }
    uuid::Uuid::try_parse(bucket).ok().map(|u| u.to_string())
}

fn parse_landing(raw: &str) -> Result<Url, VisitError> {
    let mut url = Url::parse(raw.trim()).map_err(|_| VisitError::InvalidUrl)?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(VisitError::InvalidUrl);
    }
    url.set_fragment(None);
    Ok(url)
}

fn clip(s: &str) -> String {
    if s.len() <= MAX_URL_LEN {
        return s.to_owned();
    }
    let mut end = MAX_URL_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_round_trip_their_bucket_and_reject_forgeries() {
        let bucket = uuid::Uuid::now_v7().to_string();
        let sid = new_session_id(&bucket);
        assert_eq!(bucket_of(&sid), Some(bucket.clone()));
        assert_ne!(new_session_id(&bucket), sid);
        for bad in [
            "",
            "abc",
            "x.y",
            &format!("{}.short", bucket.replace('-', "")),
            "../../etc",
        ] {
            assert_eq!(bucket_of(bad), None, "{bad}");
        }
    }
}
