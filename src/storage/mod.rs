//! The storage seam: every read and write of durable state goes through [`Storage`].
//!
//! One implementation serves both backends. The SQL is written once, in a portable subset that
//! SQLite and PostgreSQL both accept (`$n` parameters, `ON CONFLICT`, `RETURNING`, partial
//! indexes), and runs through sqlx's `Any` driver. The few places where the dialects differ are
//! named in [`Backend`] and kept in this folder.

mod accounts;
mod alerts;
mod api_keys;
mod attribution;
mod calls;
mod dashboard;
mod erasure;
mod error;
mod exports;
mod ga4;
mod ledger;
mod migrations;
mod outcomes;
mod pools;
mod properties;
mod records;
mod rollups;
mod webhooks;
mod work;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};

use migrations::MIGRATOR;

use crate::private_files::{create_private_dir, private_file_options};

pub use accounts::TelephonyCredentials;
pub use alerts::{AlertKey, AlertState, CallActivity, PoolCounts, WatchedProperty};
pub use api_keys::{ApiKeyInfo, LAST_USED_EVERY_MS};
pub use attribution::{ClaimPhase, Key as AttributionKey};
pub use calls::{CallAttribution, CallEvent, CallFilter, CallProgress, CallRow, NewCall};
pub use erasure::Erased;
pub use error::StorageError;
pub use exports::ClickedCall;
pub use ga4::DueGa4Event;
pub use ledger::{
    BUDGET_REFUSED, CLICK_ID_COLUMNS, ExhaustionRow, LeaseRow, LedgerBatch, PageViewRow,
    SessionRow, SessionSeen, SharedFrom,
};
pub use outcomes::ConversionRow;
pub use pools::RouteRow;
pub use records::{Account, CreatedAccount, Pool, Property, TrackingNumber};
pub use rollups::{
    AdCostRow, COUNTERS, CallSums, CostSettings, Counters, DayCall, DayRollup, DaySession,
    DirtyMark, HOUR_MS, KIND_CALLS, KIND_SESSIONS, RepeatCounts, RepeatKey, RollupKey, counter,
};
pub use webhooks::{
    CreatedWebhookEndpoint, DeliveryStatus, DueDelivery, OutboundEvent, OutboundQueue,
    WebhookDelivery, WebhookEndpoint,
};

pub type StorageResult<T> = Result<T, StorageError>;

/// An UPDATE or DELETE scoped to an account that touched no row: the object is not there (or
/// not this account's), which the API answers with 404.
fn found(done: &sqlx::any::AnyQueryResult) -> StorageResult<()> {
    if done.rows_affected() == 0 {
        return Err(StorageError::NotFound);
    }
    Ok(())
}

/// Which database sits behind the seam. Dialect branches switch on this, and only in `storage/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Clone)]
pub struct Storage {
    pool: AnyPool,
    backend: Backend,
    /// Keys the fingerprints of erased callers (`erasure.rs`).
    fingerprint_key: [u8; 32],
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pool's options hold the connection URL (and its password): never print them.
        f.debug_struct("Storage")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

impl Storage {
    /// A transaction that may write. SQLite's plain `BEGIN` takes the write lock at the first
    /// write, and a transaction that read before it fails at once ("database is locked") when
    /// another connection wrote in between, whatever `busy_timeout` says; `BEGIN IMMEDIATE`
    /// takes the lock first, waiting up to `busy_timeout` for it.
    async fn begin(&self) -> StorageResult<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Connects without touching the schema. A SQLite file (and its folder) is created if missing.
    pub async fn connect(url: &str, settings: &PoolSettings) -> StorageResult<Self> {
        let (backend, options, pool) = pool_options(url, settings)?;
        let pool = pool.connect_with(options).await?;
        Ok(Self::new(pool, backend))
    }

    /// As [`connect`](Self::connect), except that a PostgreSQL server that cannot be reached is
    /// not an error: the pool then connects on first use (every query fails until the server
    /// answers). The flag says whether the database answered now. Serving starts this way, so
    /// an instance (re)started during a database outage still routes calls.
    pub async fn connect_or_defer(
        url: &str,
        settings: &PoolSettings,
    ) -> StorageResult<(Self, bool)> {
        match Self::connect(url, settings).await {
            Ok(storage) => Ok((storage, true)),
            Err(e) if e.is_unreachable() && Backend::from_url(url) == Some(Backend::Postgres) => {
                let (backend, options, pool) = pool_options(url, settings)?;
                let pool = pool.connect_lazy_with(options);
                Ok((Self::new(pool, backend), false))
            }
            Err(e) => Err(e),
        }
    }

    fn new(pool: AnyPool, backend: Backend) -> Self {
        Self {
            pool,
            backend,
            fingerprint_key: crate::sealing::Sealer::default().fingerprint_key(),
        }
    }

    /// The key erased callers' fingerprints are made with (`Sealer::fingerprint_key`): every
    /// instance of one database must use the same.
    pub fn with_fingerprint_key(mut self, key: [u8; 32]) -> Self {
        self.fingerprint_key = key;
        self
    }

    /// Applies pending migrations. Safe to run from several instances at once on PostgreSQL
    /// (sqlx takes an advisory lock).
    pub async fn migrate(&self) -> StorageResult<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A cheap round trip, for `/health`.
    pub async fn ping(&self) -> StorageResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A migrated SQLite database in `dir` (unit tests).
    #[cfg(test)]
    pub(crate) async fn migrated_sqlite_in(dir: &Path) -> Self {
        let storage = Self::connect(
            &format!("sqlite://{}/sb.db", dir.display()),
            &PoolSettings::default(),
        )
        .await
        .expect("a SQLite database in a temporary folder");
        storage.migrate().await.expect("migrations");
        storage
    }
}

/// The connection and pool options for `url` (shared by eager and lazy connections).
fn pool_options(
    url: &str,
    settings: &PoolSettings,
) -> StorageResult<(Backend, AnyConnectOptions, AnyPoolOptions)> {
    sqlx::any::install_default_drivers();
    let backend = Backend::from_url(url).ok_or(StorageError::UnsupportedUrl)?;
    let url = match backend {
        Backend::Sqlite => prepare_sqlite_url(url)?,
        Backend::Postgres => url.to_owned(),
    };
    let options = AnyConnectOptions::from_str(&url)?.disable_statement_logging();
    let max = match backend {
        // One writer at a time in SQLite anyway; a few readers alongside under WAL.
        Backend::Sqlite => settings.max_connections.min(4),
        Backend::Postgres => settings.max_connections,
    };
    let pool = AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(settings.acquire_timeout)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // WAL lets readers run beside the writer; NORMAL sync is durable under WAL
                    // except on power loss; foreign keys are off by default in SQLite.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA busy_timeout = 5000").await?;
                }
                Ok(())
            })
        });
    Ok((backend, options, pool))
}

/// Makes a SQLite URL create its file on first start, and creates the folder it lives in.
fn prepare_sqlite_url(url: &str) -> StorageResult<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or(StorageError::UnsupportedUrl)?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path != ":memory:" && !path.is_empty() {
        let file = Path::new(path);
        if let Some(dir) = file.parent() {
            create_private_dir(dir).map_err(StorageError::CreateDir)?;
        }
        // Created here, 0600, rather than by SQLite with the umask's mode; SQLite gives its
        // -wal and -shm files the database file's mode.
        if !file.exists() {
            private_file_options()
                .write(true)
                .create(true)
                .truncate(false)
                .open(file)
                .map_err(StorageError::CreateDir)?;
        }
    }
    let query = if query.contains("mode=") {
        query.to_owned()
    } else if query.is_empty() {
        "mode=rwc".to_owned()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok(format!("sqlite://{path}?{query}"))
}

/// Redacts the password of a database or Redis URL, for logs and messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparseable url>".to_owned(),
    }
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl Storage {
    /// How many migrations this build carries.
    pub fn known_migrations() -> usize {
        MIGRATOR.iter().count()
    }

    /// How many of the migrations this build knows are not yet applied.
    pub async fn pending_migrations(&self) -> StorageResult<usize> {
        use sqlx::Row;
        let applied: Vec<i64> = match sqlx::query("SELECT version FROM _sqlx_migrations")
            .fetch_all(&self.pool)
            .await
        {
            Ok(rows) => rows
                .iter()
                .map(|r| r.try_get::<i64, _>("version"))
                .collect::<Result<_, _>>()?,
            // No bookkeeping table yet: nothing is applied.
            Err(sqlx::Error::Database(_)) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(MIGRATOR
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .count())
    }
}

impl Storage {
    /// Creates an empty PostgreSQL database (test isolation: one per test). PostgreSQL only.
    pub async fn create_database_for_tests(&self, name: &str) -> StorageResult<()> {
        if self.backend != Backend::Postgres
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(StorageError::UnsupportedUrl);
        }
        let sql = format!("CREATE DATABASE \"{name}\"");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_gain_create_mode() {
        assert_eq!(
            prepare_sqlite_url("sqlite::memory:").unwrap(),
            "sqlite://:memory:?mode=rwc"
        );
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/nested/x.db", dir.path().display());
        let prepared = prepare_sqlite_url(&url).unwrap();
        assert!(prepared.ends_with("/nested/x.db?mode=rwc"));
        assert!(dir.path().join("nested").is_dir());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db:5432/sb"),
            "postgres://app:***@db:5432/sb"
        );
        assert!(!redact_url("redis://:s3cret@cache:6379").contains("s3cret"));
    }
}
