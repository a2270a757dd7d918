//! Properties and their pools by public key, cached: the page-view path reads them on every
//! request and must not wait on the database for it. An entry older than `TTL` is refreshed in
//! the background by one request while every request keeps using it; when the database cannot
//! be reached the stale entry keeps serving, so pages keep their numbers.
//!
//! A change to a property or its pools (on any instance: see `crate::changes`) drops that
//! property's entry. A load that began before a drop does not install what it read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
            .is_some_and(|host| self.allows_host(&host))
    }

    /// Whether `host` (as a URL holds it) is one of the property's domains or under one.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.domains.iter().any(|d| {
            d.covers(host) || d.as_str().trim_start_matches('[').trim_end_matches(']') == host
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
    /// Entries dropped so far: a load that saw another count when it began may have read
    /// what a drop made stale.
    drops: Arc<AtomicU64>,
    /// Keys being loaded after a miss: the first request loads, the rest wait for its answer
    /// instead of each asking the database (a burst of page views of a property just created).
    loading: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Loads after a miss so far.
    misses_loaded: AtomicU64,
}

impl Directory {
    pub fn new(storage: Storage) -> Self {
        Self {
            storage,
            entries: Arc::default(),
            drops: Arc::default(),
            loading: std::sync::Mutex::default(),
            misses_loaded: AtomicU64::new(0),
        }
    }

    /// Entries cached (known and unknown keys).
    pub fn cached(&self) -> usize {
        self.entries.read().expect("lock").len()
    }

    /// How many misses went to the database.
    pub fn misses_loaded(&self) -> u64 {
        self.misses_loaded.load(Ordering::Relaxed)
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
                    let (storage, entries, key, drops) = (
                        self.storage.clone(),
                        self.entries.clone(),
                        key.to_owned(),
                        self.drops.clone(),
                    );
                    let flag = e.refreshing.clone();
                    tokio::spawn(async move {
                        let began = drops.load(Ordering::SeqCst);
                        match load(&storage, &key).await {
                            Ok(config) => {
                                if !insert(&entries, &drops, began, &key, config) {
                                    // Not cached: the next request tries again.
                                    flag.store(false, Ordering::Release);
                                }
                            }
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
        let gate = self
            .loading
            .lock()
            .expect("lock")
            .entry(key.to_owned())
            .or_default()
            .clone();
        let _turn = gate.lock().await;
        // Another request may have loaded it while this one waited.
        if let Some(e) = self.entries.read().expect("lock").get(key) {
            return Ok(e.config.clone());
        }
        let began = self.drops.load(Ordering::SeqCst);
        self.misses_loaded.fetch_add(1, Ordering::Relaxed);
        let loaded = load(&self.storage, key).await;
        if let Ok(config) = &loaded {
            insert(&self.entries, &self.drops, began, key, config.clone());
        }
        // Cached now (or failed: the waiters try in turn); later misses start afresh.
        self.loading.lock().expect("lock").remove(key);
        loaded
    }

    /// Drops the entry of a property whose settings or pools changed.
    pub fn invalidate_property(&self, property_id: &str) {
        self.invalidate(|config| config.property.id == property_id);
    }

    /// Drops the entry of the property that has this pool.
    pub fn invalidate_pool(&self, pool_id: &str) {
        self.invalidate(|config| config.pool(pool_id).is_some());
    }

    fn invalidate(&self, stale: impl Fn(&PropertyConfig) -> bool) {
        let mut entries = self.entries.write().expect("lock");
        // Counted under the lock, so a load that began before this drop cannot insert after it.
        self.drops.fetch_add(1, Ordering::SeqCst);
        entries.retain(|_, e| !e.config.as_deref().is_some_and(&stale));
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

/// Caches what a load read, unless an entry was dropped since the load began (`began`): it
/// may have read what the drop made stale, and the next request loads again. Whether it was
/// cached.
fn insert(
    entries: &Entries,
    drops: &AtomicU64,
    began: u64,
    key: &str,
    config: Option<Arc<PropertyConfig>>,
) -> bool {
    let mut entries = entries.write().expect("lock");
    if drops.load(Ordering::SeqCst) != began {
        return false;
    }
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
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{NewProperty, PropertyInput};

    #[tokio::test]
    async fn a_burst_of_misses_for_one_key_asks_the_database_once() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::migrated_sqlite_in(dir.path()).await;
        let account = storage.create_account("A", 0).await.unwrap().account;
        let property = NewProperty::parse(PropertyInput {
            name: "Acme",
            domains: &["acme.example".to_owned()],
            default_number: "+14155550100",
            forward_to: None,
            timezone: None,
            currency: None,
            call_settings: None,
        })
        .unwrap();
        let property = storage
            .create_property(&account.id, &property, 0)
            .await
            .unwrap();
        let directory = Arc::new(Directory::new(storage));
        let asks: Vec<_> = (0..20)
            .map(|_| {
                let (directory, key) = (directory.clone(), property.public_key.clone());
                tokio::spawn(async move { directory.by_public_key(&key).await })
            })
            .collect();
        for ask in asks {
            let config = ask.await.unwrap().unwrap().expect("known");
            assert_eq!(config.property.id, property.id);
        }
        assert_eq!(directory.misses_loaded(), 1);
        // An unknown key is asked about once too, then cached as unknown.
        for _ in 0..3 {
            assert!(
                directory
                    .by_public_key("pk_nobody")
                    .await
                    .unwrap()
                    .is_none()
            );
        }
        assert_eq!(directory.misses_loaded(), 2);
    }
}
