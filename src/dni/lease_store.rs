//! The lease-store seam: which number each live session holds. In-process for the embedded
//! default, Redis when several instances share the load.

use std::time::Duration;

use redis::aio::ConnectionManager;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum LeaseStoreError {
    #[error("redis is unavailable")]
    Unavailable(#[source] redis::RedisError),
}

pub struct LeaseStore {
    backend: Backend,
}

enum Backend {
    InProcess,
    Redis(Box<RedisBackend>),
}

struct RedisBackend {
    client: redis::Client,
    /// Connected lazily and re-connected by the manager: a Redis outage at start must not stop
    /// the service (calls route without it).
    conn: Mutex<Option<ConnectionManager>>,
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
            backend: Backend::InProcess,
        }
    }

    /// A Redis-backed store. Fails only on an unparseable URL; connecting happens on first use.
    pub fn redis(url: &SecretString) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url.expose_secret())?;
        Ok(Self {
            backend: Backend::Redis(Box::new(RedisBackend {
                client,
                conn: Mutex::new(None),
            })),
        })
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::InProcess => "in_process",
            Backend::Redis(_) => "redis",
        }
    }

    pub async fn ping(&self) -> Result<(), LeaseStoreError> {
        match &self.backend {
            Backend::InProcess => Ok(()),
            Backend::Redis(r) => {
                let mut conn = r.connection().await?;
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .map_err(LeaseStoreError::Unavailable)?;
                Ok(())
            }
        }
    }
}

impl RedisBackend {
    async fn connection(&self) -> Result<ConnectionManager, LeaseStoreError> {
        let mut guard = self.conn.lock().await;
        if let Some(conn) = guard.as_ref() {
            return Ok(conn.clone());
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(self.client.clone(), config)
            .await
            .map_err(LeaseStoreError::Unavailable)?;
        *guard = Some(conn.clone());
        Ok(conn)
    }
}
