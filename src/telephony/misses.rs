//! What the in-memory tables (routes, credentials) do on a miss: a number bought or an account
//! connected a moment ago through another instance may not have reached this one yet, so the
//! database is asked before the caller hears "not in service". Briefly, a few at a time, and
//! keys it does not know are remembered for a few seconds, so that a flood of calls to a wrong
//! number (or of forged requests) cannot hammer the database. With the database down the
//! lookup fails fast and the table stays the answer.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::storage::StorageResult;

/// How long a caller may wait on the database (the carrier waits seconds for the answer).
const TIMEOUT: Duration = Duration::from_millis(500);
/// How long a key the database did not know (or could not be asked about) stays unknown.
const REMEMBER_UNKNOWN: Duration = Duration::from_secs(5);
/// Keys remembered at most; past it, the expired ones go, and then all of them.
const MAX_REMEMBERED: usize = 10_000;
/// Lookups in flight at once, across every caller: a flood of distinct numbers waits here
/// (within `TIMEOUT`) instead of taking the database's connections.
const CONCURRENT: usize = 4;

pub struct MissLookups {
    unknown: Mutex<HashMap<String, Instant>>,
    permits: Semaphore,
}

impl Default for MissLookups {
    fn default() -> Self {
        Self {
            unknown: Mutex::default(),
            permits: Semaphore::new(CONCURRENT),
        }
    }
}

impl MissLookups {
    /// What `lookup` finds for `key`, unless the key was unknown moments ago. A lookup that
    /// fails or takes too long counts as unknown (and is logged).
    pub async fn ask<T>(
        &self,
        what: &'static str,
        key: &str,
        lookup: impl Future<Output = StorageResult<Option<T>>>,
    ) -> Option<T> {
        if self.recently_unknown(key) {
            return None;
        }
        let found = tokio::time::timeout(TIMEOUT, async {
            let _permit = self.permits.acquire().await.ok()?;
            Some(lookup.await)
        })
        .await;
        match found {
            Ok(Some(Ok(Some(value)))) => return Some(value),
            Ok(Some(Ok(None))) => {}
            Ok(Some(Err(e))) => tracing::warn!(what, error = ?e, "lookup after a miss failed"),
            Ok(None) | Err(_) => tracing::warn!(what, "lookup after a miss timed out"),
        }
        self.remember_unknown(key);
        None
    }

    /// Forgets every unknown key (a new table was installed: it is the answer now).
    pub fn forget(&self) {
        self.unknown.lock().expect("misses lock").clear();
    }

    fn recently_unknown(&self, key: &str) -> bool {
        let unknown = self.unknown.lock().expect("misses lock");
        unknown
            .get(key)
            .is_some_and(|at| at.elapsed() < REMEMBER_UNKNOWN)
    }

    fn remember_unknown(&self, key: &str) {
        let mut unknown = self.unknown.lock().expect("misses lock");
        if unknown.len() >= MAX_REMEMBERED {
            unknown.retain(|_, at| at.elapsed() < REMEMBER_UNKNOWN);
            if unknown.len() >= MAX_REMEMBERED {
                unknown.clear();
            }
        }
        unknown.insert(key.to_owned(), Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::storage::StorageError;

    #[tokio::test]
    async fn an_unknown_key_is_asked_once_and_a_known_one_every_time() {
        let misses = MissLookups::default();
        let asked = AtomicUsize::new(0);
        // Counted when awaited: a remembered key's lookup is never run.
        let lookup = |answer: Option<u32>| {
            let asked = &asked;
            async move {
                asked.fetch_add(1, Ordering::SeqCst);
                Ok::<_, StorageError>(answer)
            }
        };
        for _ in 0..3 {
            assert_eq!(misses.ask("route", "+1", lookup(None)).await, None);
        }
        assert_eq!(asked.load(Ordering::SeqCst), 1, "remembered as unknown");
        for _ in 0..2 {
            assert_eq!(misses.ask("route", "+2", lookup(Some(7))).await, Some(7));
        }
        assert_eq!(asked.load(Ordering::SeqCst), 3);
        misses.forget();
        assert_eq!(misses.ask("route", "+1", lookup(Some(1))).await, Some(1));
    }

    #[tokio::test]
    async fn a_slow_or_failing_database_answers_unknown_within_the_timeout() {
        let misses = MissLookups::default();
        let started = Instant::now();
        let slow = async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, StorageError>(Some(1))
        };
        assert_eq!(misses.ask("route", "+1", slow).await, None);
        assert!(started.elapsed() < TIMEOUT * 2);
        let failing = async { Err::<Option<u32>, _>(StorageError::NotFound) };
        assert_eq!(misses.ask("route", "+2", failing).await, None);
        // Both are remembered: the next calls do not wait again.
        let started = Instant::now();
        let never = async { Ok::<_, StorageError>(Some(2)) };
        assert_eq!(misses.ask("route", "+1", never).await, None);
        assert!(started.elapsed() < Duration::from_millis(50));
    }
}
