//! Properties and their pools by public key, cached: the page-view path reads them on every
//! request and must not wait on the database for it. Entries refresh after `TTL`; when the
//! database cannot be reached a stale entry keeps serving, so pages keep their numbers.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::domain::{Domain, PoolKind};
use crate::storage::{Pool, Property, Storage, StorageError};

const TTL: Duration = Duration::from_secs(5);
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug)]
pub struct PropertyConfig {
    pub property: Property,
    pub domains: Vec<Domain>,
    /// In creation order.
    pub pools: Vec<Pool>,
}

impl PropertyConfig {
    pub fn pool(&self, id: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.id == id)
    }

    /// The live numbers of a pool.
    pub fn live_numbers(pool: &Pool) -> impl Iterator<Item = &str> {
        pool.numbers
            .iter()
            .filter(|n| n.retired_at.is_none())
            .map(|n| n.number.as_str())
    }

    /// The static number of a source pool.
    pub fn source_number(pool: &Pool) -> Option<&str> {
        match pool.kind {
            PoolKind::Source => Self::live_numbers(pool).next(),
            PoolKind::Session => None,
        }
    }

    /// Whether a page at `origin` (scheme://host[:port]) may ask for numbers.
    pub fn allows_origin(&self, origin: &str) -> bool {
        url::Url::parse(origin)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .is_some_and(|host| {
                let host = host.trim_start_matches('[').trim_end_matches(']');
                self.domains.iter().any(|d| {
                    d.covers(host)
                        || d.as_str().trim_start_matches('[').trim_end_matches(']') == host
                })
            })
    }
}

struct Entry {
    loaded: Instant,
    /// `None`: no property has this key (cached too, so unknown keys cost no query each).
    config: Option<Arc<PropertyConfig>>,
}

pub struct Directory {
    storage: Storage,
    entries: RwLock<HashMap<String, Entry>>,
}

impl Directory {
    pub fn new(storage: Storage) -> Self {
        Self {
            storage,
            entries: RwLock::new(HashMap::new()),
        }
    }

    pub async fn by_public_key(
        &self,
        key: &str,
    ) -> Result<Option<Arc<PropertyConfig>>, StorageError> {
        let stale = {
            let entries = self.entries.read().expect("lock");
            match entries.get(key) {
                Some(e) if e.loaded.elapsed() < TTL => return Ok(e.config.clone()),
                Some(e) => Some(e.config.clone()),
                None => None,
            }
        };
        match self.load(key).await {
            Ok(config) => {
                let mut entries = self.entries.write().expect("lock");
                if entries.len() >= MAX_ENTRIES {
                    // Random keys must not grow the cache without bound: drop the unknown ones.
                    entries.retain(|_, e| e.config.is_some());
                }
                entries.insert(
                    key.to_owned(),
                    Entry {
                        loaded: Instant::now(),
                        config: config.clone(),
                    },
                );
                Ok(config)
            }
            Err(e) => match stale {
                Some(config) => {
                    tracing::warn!(error = ?e, "serving a cached property: the database is unavailable");
                    Ok(config)
                }
                None => Err(e),
            },
        }
    }

    async fn load(&self, key: &str) -> Result<Option<Arc<PropertyConfig>>, StorageError> {
        let property = match self.storage.property_by_public_key(key).await {
            Ok(p) => p,
            Err(StorageError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let pools = self
            .storage
            .list_pools(&property.account_id, &property.id)
            .await?;
        let domains = property
            .domains
            .iter()
            .map(|d| Domain::from_trusted(d.clone()))
            .collect();
        Ok(Some(Arc::new(PropertyConfig {
            property,
            domains,
            pools,
        })))
    }

    /// Drops every cached entry after pools or numbers change on this instance (rare; other
    /// instances pick the change up within `TTL`).
    pub fn invalidate_all(&self) {
        self.entries.write().expect("lock").clear();
    }
}
