//! Properties and their pools by public key, cached: the page-view path reads them on every
//! request and must not wait on the database for it. An entry older than `TTL` is refreshed in
//! the background by one request while every request keeps using it; when the database cannot
//! be reached the stale entry keeps serving, so pages keep their numbers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// Set while one request refreshes this entry in the background; the rest use it as is.
    refreshing: Arc<AtomicBool>,
}

type Entries = Arc<RwLock<HashMap<String, Entry>>>;

pub struct Directory {
    storage: Storage,
    entries: Entries,
}

impl Directory {
    pub fn new(storage: Storage) -> Self {
        Self {
            storage,
            entries: Arc::default(),
        }
    }

    pub async fn by_public_key(
        &self,
        key: &str,
    ) -> Result<Option<Arc<PropertyConfig>>, StorageError> {
        {
            let entries = self.entries.read().expect("lock");
            if let Some(e) = entries.get(key) {
                if e.loaded.elapsed() >= TTL && !e.refreshing.swap(true, Ordering::AcqRel) {
                    // Stale: one request refreshes it off the request path; nobody waits.
                    let (storage, entries, key) =
                        (self.storage.clone(), self.entries.clone(), key.to_owned());
                    let flag = e.refreshing.clone();
                    tokio::spawn(async move {
                        match load(&storage, &key).await {
                            Ok(config) => insert(&entries, &key, config),
                            Err(err) => {
                                tracing::warn!(error = ?err, "serving a cached property: the database is unavailable");
                                flag.store(false, Ordering::Release);
                            }
                        }
                    });
                }
                return Ok(e.config.clone());
            }
        }
        let config = load(&self.storage, key).await?;
        insert(&self.entries, key, config.clone());
        Ok(config)
    }

    /// Drops every cached entry after pools or numbers change on this instance (rare; other
    /// instances pick the change up within `TTL`).
    pub fn invalidate_all(&self) {
        self.entries.write().expect("lock").clear();
    }
}

async fn load(storage: &Storage, key: &str) -> Result<Option<Arc<PropertyConfig>>, StorageError> {
    let property = match storage.property_by_public_key(key).await {
        Ok(p) => p,
        Err(StorageError::NotFound) => return Ok(None),
        Err(e) => return Err(e),
    };
    let pools = storage
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

fn insert(entries: &Entries, key: &str, config: Option<Arc<PropertyConfig>>) {
    let mut entries = entries.write().expect("lock");
    if entries.len() >= MAX_ENTRIES {
        // Random keys must not grow the cache without bound: drop the unknown ones.
        entries.retain(|_, e| e.config.is_some());
    }
    entries.insert(
        key.to_owned(),
        Entry {
            loaded: Instant::now(),
            config,
            refreshing: Arc::default(),
        },
    );
}
