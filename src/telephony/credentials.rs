//! Accounts' telephony credentials, held in memory beside the routing table so that verifying
//! a provider's request never waits on the database (calls ring through while it is down).

use std::collections::HashMap;
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
}

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

    /// Reloads every account's credentials; on a database error the table keeps what it had.
    pub async fn refresh(&self, storage: &Storage) -> bool {
        match storage.telephony_credentials().await {
            Ok(all) => {
                self.replace(all);
                true
            }
            Err(e) => {
                tracing::warn!(error = ?e, "telephony credentials not refreshed; keeping the last ones");
                false
            }
        }
    }
}
