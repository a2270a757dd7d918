//! The lease-store seam: which number each live session holds. In-process for the embedded
//! default, Redis when several instances share the load. Both implement one semantics (the
//! one written out in `touch.lua`), and one test suite runs against each.
//!
//! State is kept per *bucket*: a session pool (whose numbers are leased), or a property (for
//! sessions that need no lease). A session id names its bucket, so a returning page view is one
//! atomic step on one bucket: in Redis, one script call, whose keys share the bucket's hash tag
//! and therefore one Redis Cluster slot.

mod in_process;
mod redis_store;

use crate::redis_client::RedisEndpoint;
use crate::time::Millis;

pub use in_process::InProcessStore;
pub use redis_store::RedisStore;

#[derive(Debug, thiserror::Error)]
pub enum LeaseStoreError {
    #[error("redis is unavailable")]
    Unavailable(#[source] redis::RedisError),
    #[error("the lease store answered something unexpected: {0}")]
    Protocol(String),
    /// The pool's numbers could not be read from the database to load it into the store.
    #[error("the pool could not be loaded: {0}")]
    PoolNotLoaded(String),
}

/// How a bucket hands out numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Lease numbers; when none is free, share the one idle longest.
    Share,
    /// Lease numbers; when none is free, report exhaustion (the caller shows an overflow or
    /// default number).
    Exclusive,
    /// No leases: the session is only remembered.
    Static,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Share => "share",
            Mode::Exclusive => "exclusive",
            Mode::Static => "static",
        }
    }
}

/// One page view of one session.
#[derive(Debug, Clone)]
pub struct Touch<'a> {
    pub bucket: &'a str,
    pub session_id: &'a str,
    pub mode: Mode,
    pub lease_ms: Millis,
    pub now: Millis,
    /// For a session the store does not know yet: what to remember about it.
    pub new_session: Option<NewSession<'a>>,
    /// How long an idle session is remembered (at least twice the lease).
    pub retention_ms: Millis,
    /// False for a lease renewal that is not a page view (the count stays). A renewal never
    /// takes a number: it only extends a running lease, and at most `renewal_hold_ms` past the
    /// session's last page view.
    pub page_view: bool,
    /// How long after its last page view renewals alone can keep a session's lease.
    pub renewal_hold_ms: Millis,
    /// The pool's budget of new leases per minute is the larger of this and
    /// `NEW_LEASE_TURNOVER` x its numbers / its lease minutes (0: no budget).
    pub new_leases_per_minute: u64,
}

/// A pool's budget of new leases lets its whole stock turn over this many times per lease
/// length: a burst that spends it would have emptied the pool within a tenth of a lease anyway.
pub const NEW_LEASE_TURNOVER: u64 = 10;

#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    /// Opaque to the store; handed back on every later touch.
    pub meta: &'a str,
    /// A lease the session held before the store forgot it (restored from the ledger).
    pub previous: Option<PreviousLease<'a>>,
    pub page_views: i64,
}

#[derive(Debug, Clone)]
pub struct PreviousLease<'a> {
    pub number: &'a str,
    pub started_at: Millis,
    pub ends_at: Millis,
    pub shared: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TouchOutcome {
    /// The bucket's numbers are not loaded: sync it, then touch again.
    NeedsSync,
    /// A returning session the store does not know (forgotten, or never existed).
    Missing,
    Touched(Touched),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touched {
    pub meta: String,
    pub page_views: i64,
    pub lease: LeaseResult,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseResult {
    /// The bucket leases nothing.
    Static,
    /// No number was free (and the mode does not share).
    Exhausted,
    /// A number was free, but the pool's budget of new leases for this minute is spent.
    Limited,
    /// A renewal found the session's lease ended (or never started): no number was taken, and
    /// `number` (the one it held, if any) is no longer leased to it.
    Lapsed {
        number: String,
    },
    Held(Lease),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub number: String,
    pub started_at: Millis,
    pub ends_at: Millis,
    pub shared: bool,
    /// True when this touch started the lease (false: a renewal).
    pub fresh: bool,
    /// When this touch made the number shared: the sessions that held it already.
    pub shared_with: Vec<String>,
    /// True when the pool had no free number (the lease is a shared one).
    pub exhausted: bool,
    /// A renewal that could not extend the lease by a full lease length: the session reached
    /// its renewal hold, and the lease ends at `ends_at` unless a page view comes first.
    pub capped: bool,
}

/// What loading a bucket from the database needs.
#[derive(Debug, Clone, Default)]
pub struct BucketSnapshot {
    /// Live numbers, each with the time it was last released (0: never used).
    pub numbers: Vec<(String, Millis)>,
    /// Leases still running.
    pub leases: Vec<SnapshotLease>,
}

#[derive(Debug, Clone)]
pub struct SnapshotLease {
    pub session_id: String,
    pub number: String,
    pub started_at: Millis,
    pub ends_at: Millis,
    pub shared: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketStatus {
    pub numbers: u64,
    /// Numbers leased right now.
    pub busy: u64,
    pub exhaustions: u64,
    /// Most numbers leased at once since the bucket was loaded.
    pub peak: u64,
    /// New leases refused because the pool's budget for the minute was spent.
    pub limited: u64,
}

pub struct LeaseStore {
    backend: Backend,
}

enum Backend {
    InProcess(InProcessStore),
    Redis(Box<RedisStore>),
}

impl std::fmt::Debug for LeaseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseStore")
            .field("backend", &self.backend_name())
            .finish()
    }
}

impl LeaseStore {
    pub fn in_process() -> Self {
        Self {
            backend: Backend::InProcess(InProcessStore::default()),
        }
    }

    /// A Redis-backed store. Fails only on an unparseable URL; connecting happens on first use
    /// (a Redis outage at start must not stop the service: calls route without it).
    pub fn redis(endpoint: &RedisEndpoint) -> Result<Self, redis::RedisError> {
        Ok(Self {
            backend: Backend::Redis(Box::new(RedisStore::new(endpoint)?)),
        })
    }

    /// The Redis this store uses, if it is one (another client of the same store).
    pub fn redis_endpoint(&self) -> Option<&RedisEndpoint> {
        match &self.backend {
            Backend::InProcess(_) => None,
            Backend::Redis(r) => Some(r.endpoint()),
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::InProcess(_) => "in_process",
            Backend::Redis(_) => "redis",
        }
    }

    /// Connects now, from the caller's runtime, so the connection's I/O task runs there (the
    /// main multi-threaded runtime) rather than on whichever HTTP worker asks first. A failure
    /// is only logged: the store connects on first use instead.
    pub async fn connect_early(&self) {
        if let Backend::Redis(r) = &self.backend
            && let Err(e) = r.ping().await
        {
            tracing::warn!(error = %e, "redis not reachable at start; leases fall back to the default number until it is");
        }
    }

    pub async fn ping(&self) -> Result<(), LeaseStoreError> {
        match &self.backend {
            Backend::InProcess(_) => Ok(()),
            Backend::Redis(r) => r.ping().await,
        }
    }

    pub async fn touch(&self, touch: &Touch<'_>) -> Result<TouchOutcome, LeaseStoreError> {
        match &self.backend {
            Backend::InProcess(s) => Ok(s.touch(touch)),
            Backend::Redis(r) => r.touch(touch).await,
        }
    }

    /// Loads a bucket's numbers and running leases (after a restart, or when its numbers change).
    pub async fn sync(
        &self,
        bucket: &str,
        snapshot: &BucketSnapshot,
    ) -> Result<(), LeaseStoreError> {
        match &self.backend {
            Backend::InProcess(s) => {
                s.sync(bucket, snapshot);
                Ok(())
            }
            Backend::Redis(r) => r.sync(bucket, snapshot).await,
        }
    }

    pub async fn status(&self, bucket: &str, now: Millis) -> Result<BucketStatus, LeaseStoreError> {
        match &self.backend {
            Backend::InProcess(s) => Ok(s.status(bucket, now)),
            Backend::Redis(r) => r.status(bucket, now).await,
        }
    }

    /// The sessions the store first held within `[from, to]` (at most `limit`, earliest
    /// first), with when.
    pub async fn created_between(
        &self,
        bucket: &str,
        from: Millis,
        to: Millis,
        limit: usize,
    ) -> Result<Vec<(String, Millis)>, LeaseStoreError> {
        match &self.backend {
            Backend::InProcess(s) => Ok(s.created_between(bucket, from, to, limit)),
            Backend::Redis(r) => r.created_between(bucket, from, to, limit).await,
        }
    }

    /// What the store remembers of these sessions (as `created_between` listed them); a
    /// session it has forgotten since is left out.
    pub async fn stored_sessions(
        &self,
        bucket: &str,
        created: &[(String, Millis)],
    ) -> Result<Vec<StoredSession>, LeaseStoreError> {
        match &self.backend {
            Backend::InProcess(s) => Ok(s.stored_sessions(bucket, created)),
            Backend::Redis(r) => r.stored_sessions(bucket, created).await,
        }
    }

    /// The sessions whose lease on `number` covers `now` (started at or before it, ending after
    /// it), most recently active first. A call's attribution asks with the call's time.
    pub async fn holders(
        &self,
        bucket: &str,
        number: &str,
        now: Millis,
    ) -> Result<Vec<String>, LeaseStoreError> {
        match &self.backend {
            Backend::InProcess(s) => Ok(s.holders(bucket, number, now)),
            Backend::Redis(r) => r.holders(bucket, number, now).await,
        }
    }
}

/// A session as the store holds it, for recovering one the database never received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub session_id: String,
    /// What the service remembered about it (`NewSession::meta`).
    pub meta: String,
    pub created_at: Millis,
    pub last_seen_at: Millis,
    pub page_views: i64,
    /// Its lease, if it holds (or held) one.
    pub lease: Option<StoredLease>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLease {
    pub number: String,
    pub started_at: Millis,
    pub ends_at: Millis,
    pub shared: bool,
}

impl StoredSession {
    fn of(
        session_id: String,
        created_at: Millis,
        last_seen_at: Millis,
        state: &str,
        meta: String,
    ) -> Option<Self> {
        let (number, started_at, ends_at, shared, page_views) = parse_state(state)?;
        Some(Self {
            session_id,
            meta,
            created_at,
            last_seen_at,
            page_views,
            lease: (!number.is_empty()).then_some(StoredLease {
                number,
                started_at,
                ends_at,
                shared,
            }),
        })
    }
}

/// Of a number's holders (session id, raw state), those whose lease on it covers `now`,
/// most recently active (latest end) first. Both stores answer `holders` with this.
fn running_holders<'a>(
    number: &str,
    now: Millis,
    holders: impl IntoIterator<Item = (String, Option<&'a str>)>,
) -> Vec<String> {
    let mut running: Vec<(Millis, String)> = holders
        .into_iter()
        .filter_map(|(sid, raw)| {
            let (n, start, end, _, _) = parse_state(raw?)?;
            (n == number && start <= now && end > now).then_some((end, sid))
        })
        .collect();
    running.sort_by(|a, b| b.cmp(a));
    running.into_iter().map(|(_, sid)| sid).collect()
}

/// When the session last viewed a page: the sixth field of its state. A state written before
/// the field existed (or restored from the database) counts from its lease's start.
fn last_view(raw: &str, lease_start: Millis, now: Millis) -> Millis {
    match raw.split('|').nth(5).and_then(|v| v.parse().ok()) {
        Some(at) => at,
        None if lease_start > 0 => lease_start,
        None => now,
    }
}

/// Splits `number|start|end|shared|page_views[|last_view]`.
fn parse_state(raw: &str) -> Option<(String, Millis, Millis, bool, i64)> {
    let mut parts = raw.split('|');
    let number = parts.next()?.to_owned();
    let start = parts.next()?.parse().ok()?;
    let end = parts.next()?.parse().ok()?;
    let shared = parts.next()? == "1";
    let page_views = parts.next()?.parse().ok()?;
    Some((number, start, end, shared, page_views))
}

impl NewSession<'_> {
    /// The state a session enters the store with: its restored lease, or none.
    fn initial_state(&self) -> String {
        match &self.previous {
            Some(p) => format!(
                "{}|{}|{}|{}|{}",
                p.number,
                p.started_at,
                p.ends_at,
                u8::from(p.shared),
                self.page_views
            ),
            None => format!("|0|0|0|{}", self.page_views),
        }
    }
}

fn format_state(
    number: &str,
    start: Millis,
    end: Millis,
    shared: bool,
    page_views: i64,
    last_view: Millis,
) -> String {
    format!(
        "{number}|{start}|{end}|{}|{page_views}|{last_view}",
        u8::from(shared)
    )
}

#[cfg(test)]
mod tests;
