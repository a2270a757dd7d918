//! Accounts' telephony credentials, held in memory beside the routing table so that verifying
//! a provider's request never waits on the database (calls ring through while it is down).
//! Like the routing table, each change is written to a local snapshot (`credentials.json`,
//! mode 0600) that a start with the database down reads: it holds the rows as stored, so the
//! tokens in it are sealed as they are in the database (`crate::sealing`); they are opened
//! only in memory. As with routes, a change made through
//! another instance arrives by announcement (and the periodic refresh), a miss asks the
//! database, and an older refresh never replaces a newer table.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::misses::MissLookups;
use crate::sealing::Sealer;
use crate::storage::{Storage, StorageResult, TelephonyCredentials};

/// The columns that hold sealed secrets.
pub const TWILIO_AUTH_TOKEN: &str = "twilio_auth_token";
pub const CALLS_SECRET: &str = "calls_secret";

#[derive(Default, Clone)]
struct Tables {
    /// Opened credentials.
    by_account: HashMap<String, TelephonyCredentials>,
    /// Twilio account SID -> the accounts that connected it (with a token), sorted.
    by_twilio_sid: HashMap<String, Vec<String>>,
    /// The generation of the refresh that loaded these tables.
    generation: u64,
    /// What that refresh read (sealed, as stored), sorted by account: the snapshot holds this.
    loaded: Arc<Vec<TelephonyCredentials>>,
}

impl Tables {
    fn add(&mut self, c: TelephonyCredentials) {
        // The account may have connected another Twilio account since it was added.
        if let Some(old) = self.by_account.get(&c.account_id)
            && let Some(sid) = &old.twilio_account_sid
            && let Some(accounts) = self.by_twilio_sid.get_mut(sid)
        {
            accounts.retain(|a| *a != c.account_id);
        }
        if let Some(sid) = &c.twilio_account_sid
            && c.twilio_auth_token.is_some()
        {
            let accounts = self.by_twilio_sid.entry(sid.clone()).or_default();
            accounts.push(c.account_id.clone());
            accounts.sort();
        }
        self.by_account.insert(c.account_id.clone(), c);
    }
}

#[derive(Default)]
pub struct CredentialsTable {
    tables: RwLock<Arc<Tables>>,
    /// Refreshes started so far (each refresh's generation).
    started: AtomicU64,
    misses: MissLookups,
    /// The snapshot file and what it holds now.
    snapshot: Option<tokio::sync::Mutex<(PathBuf, Vec<TelephonyCredentials>)>>,
    sealer: Arc<Sealer>,
}

pub const SNAPSHOT_FILE: &str = "credentials.json";

impl CredentialsTable {
    pub fn of_account(&self, account_id: &str) -> Option<TelephonyCredentials> {
        self.tables
            .read()
            .expect("lock")
            .by_account
            .get(account_id)
            .cloned()
    }

    /// The accounts that connected this Twilio account with a token, with their credentials.
    pub fn of_twilio_account(&self, account_sid: &str) -> Vec<TelephonyCredentials> {
        let tables = self.tables.read().expect("lock").clone();
        tables
            .by_twilio_sid
            .get(account_sid)
            .into_iter()
            .flatten()
            .filter_map(|a| tables.by_account.get(a).cloned())
            .collect()
    }

    /// Seals and opens the secrets as stored.
    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// Credentials as stored, with their secrets opened; a secret that cannot be opened (a
    /// different key) is left out, and said so without itself.
    fn opened(&self, mut c: TelephonyCredentials) -> TelephonyCredentials {
        let account = c.account_id.clone();
        for (column, value) in [
            (TWILIO_AUTH_TOKEN, &mut c.twilio_auth_token),
            (CALLS_SECRET, &mut c.calls_secret),
        ] {
            *value =
                value
                    .take()
                    .and_then(|stored| match self.sealer.open(&account, column, &stored) {
                        Ok(clear) => Some(clear),
                        Err(e) => {
                            tracing::error!(error = %e, "a stored carrier secret is unusable");
                            None
                        }
                    });
        }
        c
    }

    /// An account's credentials: from memory, else from the database (connected through
    /// another instance a moment ago).
    pub async fn resolve_account(
        &self,
        account_id: &str,
        storage: &Storage,
    ) -> Option<TelephonyCredentials> {
        if let Some(c) = self.of_account(account_id) {
            return Some(c);
        }
        self.learn(account_id, storage.credentials_of_account(account_id))
            .await
    }

    /// The credentials of the accounts that connected this Twilio account: from memory, else
    /// from the database.
    pub async fn resolve_twilio_account(
        &self,
        account_sid: &str,
        storage: &Storage,
    ) -> Vec<TelephonyCredentials> {
        let known = self.of_twilio_account(account_sid);
        if !known.is_empty() {
            return known;
        }
        let lookup = async {
            let found = storage.credentials_of_twilio_account(account_sid).await?;
            Ok((!found.is_empty()).then_some(found))
        };
        self.learn_all(account_sid, lookup)
            .await
            .into_iter()
            .filter(|c| c.twilio_auth_token.is_some())
            .collect()
    }

    /// Adds what the database knows after a miss to the table in memory (a refresh started
    /// later replaces it with what it reads).
    async fn learn(
        &self,
        key: &str,
        lookup: impl Future<Output = StorageResult<Option<TelephonyCredentials>>>,
    ) -> Option<TelephonyCredentials> {
        let lookup = async { Ok(lookup.await?.map(|c| vec![c])) };
        self.learn_all(key, lookup).await.pop()
    }

    async fn learn_all(
        &self,
        key: &str,
        lookup: impl Future<Output = StorageResult<Option<Vec<TelephonyCredentials>>>>,
    ) -> Vec<TelephonyCredentials> {
        let Some(found) = self.misses.ask("credentials", key, lookup).await else {
            return Vec::new();
        };
        let found: Vec<_> = found.into_iter().map(|c| self.opened(c)).collect();
        let mut tables = self.tables.write().expect("lock");
        let mut updated = (**tables).clone();
        for c in &found {
            updated.add(c.clone());
        }
        *tables = Arc::new(updated);
        found
    }

    /// Installs every account's credentials as of `generation` (0: unconditionally), unless a
    /// later refresh installed its own already. Whether it installed them.
    fn replace(&self, all: Vec<TelephonyCredentials>, generation: u64) -> bool {
        let mut tables = Tables {
            generation,
            loaded: Arc::new(all.clone()),
            ..Tables::default()
        };
        for c in all {
            tables.add(self.opened(c));
        }
        let mut current = self.tables.write().expect("lock");
        if generation == 0 || generation > current.generation {
            *current = Arc::new(tables);
            self.misses.forget();
            return true;
        }
        false
    }

    /// Writes what the installed tables were loaded from, unless the snapshot holds it: read
    /// under the snapshot's lock, so two refreshes finishing out of order still leave the
    /// newer table in the file.
    async fn save_snapshot(&self) {
        let Some(snapshot) = &self.snapshot else {
            return;
        };
        let mut snapshot = snapshot.lock().await;
        let loaded = self.tables.read().expect("lock").loaded.clone();
        if snapshot.1 == *loaded {
            return;
        }
        let path = snapshot.0.clone();
        let content = serde_json::to_vec(&*loaded).expect("credentials serialise");
        let written = tokio::task::spawn_blocking(move || {
            super::routing::write_private_file(&path, &content)
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
        match written {
            Ok(()) => snapshot.1 = (*loaded).clone(),
            Err(e) => tracing::error!(error = %e, "the credentials snapshot could not be written"),
        }
    }

    pub fn with_snapshot(path: PathBuf, sealer: Arc<Sealer>) -> Self {
        Self {
            snapshot: Some(tokio::sync::Mutex::new((path, Vec::new()))),
            sealer,
            ..Self::default()
        }
    }

    /// Seals every stored secret that is clear (written by an earlier version, or without a
    /// key) or sealed under the previous key, each row only if it still holds what was read
    /// (another instance may be doing the same). How many values were sealed.
    pub async fn seal_stored(&self, storage: &Storage) -> StorageResult<usize> {
        let mut sealed = 0;
        for c in storage.telephony_credentials().await? {
            for (column, stored) in [
                (TWILIO_AUTH_TOKEN, &c.twilio_auth_token),
                (CALLS_SECRET, &c.calls_secret),
            ] {
                let Some(stored) = stored.as_deref().filter(|s| self.sealer.needs_sealing(s))
                else {
                    continue;
                };
                let Ok(clear) = self.sealer.open(&c.account_id, column, stored) else {
                    continue;
                };
                let resealed = self.sealer.seal(&c.account_id, column, &clear);
                if storage
                    .replace_secret(&c.account_id, column, stored, &resealed)
                    .await?
                {
                    sealed += 1;
                }
            }
        }
        Ok(sealed)
    }

    /// The credentials at start: from the database, else from the last snapshot.
    pub async fn load(&self, storage: &Storage, database_reachable: bool) {
        if database_reachable && self.refresh(storage).await {
            return;
        }
        let Some(snapshot) = &self.snapshot else {
            return;
        };
        let mut snapshot = snapshot.lock().await;
        match std::fs::read(&snapshot.0) {
            Ok(bytes) => match serde_json::from_slice::<Vec<TelephonyCredentials>>(&bytes) {
                Ok(all) => {
                    tracing::warn!(
                        "the database cannot be read: telephony credentials come from the last snapshot"
                    );
                    self.replace(all.clone(), 0);
                    snapshot.1 = all;
                }
                Err(e) => tracing::error!(error = %e, "the credentials snapshot is unreadable"),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::error!(error = %e, "the credentials snapshot cannot be read"),
        }
    }

    /// Reloads every account's credentials; on a database error the table keeps what it had.
    pub async fn refresh(&self, storage: &Storage) -> bool {
        let generation = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        match storage.telephony_credentials().await {
            Ok(mut all) => {
                all.sort_by(|a, b| a.account_id.cmp(&b.account_id));
                if self.replace(all, generation) {
                    self.save_snapshot().await;
                }
                true
            }
            Err(e) => {
                tracing::warn!(error = ?e, "telephony credentials not refreshed; keeping the last ones");
                false
            }
        }
    }
}
