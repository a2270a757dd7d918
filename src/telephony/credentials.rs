//! Accounts' telephony credentials, held in memory beside the routing table so that verifying
//! a provider's request never waits on the database (calls ring through while it is down).
//! Like the routing table, each change is written to a local snapshot (`credentials.json`,
//! mode 0600) that a start with the database down reads.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use crate::storage::{Storage, TelephonyCredentials};

#[derive(Default)]
struct Tables {
    by_account: HashMap<String, TelephonyCredentials>,
    /// Twilio account SID -> account id.
    by_twilio_sid: HashMap<String, String>,
}

#[derive(Default)]
pub struct CredentialsTable {
    tables: RwLock<Arc<Tables>>,
    /// The snapshot file and what it holds now.
    snapshot: Option<tokio::sync::Mutex<(PathBuf, Vec<TelephonyCredentials>)>>,
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

    /// The account that connected this Twilio account, with its credentials.
    pub fn of_twilio_account(&self, account_sid: &str) -> Option<TelephonyCredentials> {
        let tables = self.tables.read().expect("lock").clone();
        let account = tables.by_twilio_sid.get(account_sid)?;
        tables.by_account.get(account).cloned()
    }

    pub fn replace(&self, all: Vec<TelephonyCredentials>) {
        let mut tables = Tables::default();
        for c in all {
            if let Some(sid) = &c.twilio_account_sid
                && c.twilio_auth_token.is_some()
            {
                tables
                    .by_twilio_sid
                    .insert(sid.clone(), c.account_id.clone());
            }
            tables.by_account.insert(c.account_id.clone(), c);
        }
        *self.tables.write().expect("lock") = Arc::new(tables);
    }

    pub fn with_snapshot(path: PathBuf) -> Self {
        Self {
            tables: RwLock::default(),
            snapshot: Some(tokio::sync::Mutex::new((path, Vec::new()))),
        }
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
                    self.replace(all.clone());
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
        match storage.telephony_credentials().await {
            Ok(mut all) => {
                all.sort_by(|a, b| a.account_id.cmp(&b.account_id));
                self.replace(all.clone());
                if let Some(snapshot) = &self.snapshot {
                    let mut snapshot = snapshot.lock().await;
                    if snapshot.1 != all {
                        let path = snapshot.0.clone();
                        let content = serde_json::to_vec(&all).expect("credentials serialise");
                        let written = tokio::task::spawn_blocking(move || {
                            super::routing::write_private_file(&path, &content)
                        })
                        .await
                        .map_err(std::io::Error::other)
                        .and_then(|r| r);
                        match written {
                            Ok(()) => snapshot.1 = all,
                            Err(e) => {
                                tracing::error!(error = %e, "the credentials snapshot could not be written")
                            }
                        }
                    }
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
