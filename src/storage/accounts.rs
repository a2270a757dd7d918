use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;

use super::{Account, CreatedAccount, Storage, StorageResult, new_id};
use crate::domain::{IssuedApiKey, hash_api_key};
use crate::time::{Millis, to_datetime};

impl Storage {
    /// Creates an account and its first API key, in one transaction.
    pub async fn create_account(&self, name: &str, now: Millis) -> StorageResult<CreatedAccount> {
        let id = new_id();
        let key = IssuedApiKey::generate();
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind(name)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        insert_api_key(&mut tx, &id, &key, now).await?;
        tx.commit().await?;
        Ok(CreatedAccount {
            account: Account {
                id,
                name: name.to_owned(),
                created_at: to_datetime(now),
            },
            api_key: key.plaintext,
        })
    }

    /// Issues another API key for an account (rotation: issue, deploy, then revoke the old one).
    pub async fn issue_api_key(
        &self,
        account_id: &str,
        now: Millis,
    ) -> StorageResult<SecretString> {
        let key = IssuedApiKey::generate();
        let mut tx = self.begin().await?;
        insert_api_key(&mut tx, account_id, &key, now).await?;
        tx.commit().await?;
        Ok(key.plaintext)
    }

    /// The account a presented API key belongs to, if the key is known and not revoked.
    pub async fn account_for_api_key(&self, key: &SecretString) -> StorageResult<Option<Account>> {
        let hash = hash_api_key(key.expose_secret());
        let row = sqlx::query(
            "SELECT a.id, a.name, a.created_at FROM api_keys k JOIN accounts a ON a.id = k.account_id \
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(account_from_row).transpose()?)
    }

    /// The stored hashes of an account's keys (for tests and audits: never the keys themselves).
    pub async fn api_key_hashes(&self, account_id: &str) -> StorageResult<Vec<String>> {
        let rows = sqlx::query("SELECT key_hash FROM api_keys WHERE account_id = $1")
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("key_hash"))
            .collect::<Result<_, _>>()?)
    }
}

/// An account from a row with its `id`, `name` and `created_at`.
pub(super) fn account_from_row(r: &sqlx::any::AnyRow) -> Result<Account, sqlx::Error> {
    Ok(Account {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        created_at: to_datetime(r.try_get("created_at")?),
    })
}

async fn insert_api_key(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    account_id: &str,
    key: &IssuedApiKey,
    now: Millis,
) -> StorageResult<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, account_id, key_hash, key_prefix, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(new_id())
    .bind(account_id)
    .bind(&key.hash)
    .bind(&key.display_prefix)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// An account's telephony credentials: a Twilio account of its own, and the secret that signs
/// its requests to the generic call endpoint. Both key HMACs, so both are kept reversibly:
/// sealed as stored (`crate::sealing`), opened in the credentials table in memory.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TelephonyCredentials {
    pub account_id: String,
    pub twilio_account_sid: Option<String>,
    pub twilio_auth_token: Option<String>,
    pub calls_secret: Option<String>,
}

impl std::fmt::Debug for TelephonyCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secrets.
        f.debug_struct("TelephonyCredentials")
            .field("account_id", &self.account_id)
            .field("twilio_account_sid", &self.twilio_account_sid)
            .finish_non_exhaustive()
    }
}

impl Storage {
    /// Sets the account's own Twilio account (several accounts may connect the same one: each
    /// token reaches its own account's numbers only). `sealed_token` as `Sealer::seal` made it.
    pub async fn set_twilio_credentials(
        &self,
        account_id: &str,
        account_sid: &str,
        sealed_token: &str,
    ) -> StorageResult<()> {
        sqlx::query(
            "UPDATE accounts SET twilio_account_sid = $1, twilio_auth_token = $2 WHERE id = $3",
        )
        .bind(account_sid)
        .bind(sealed_token)
        .bind(account_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replaces a stored secret (`twilio_auth_token` or `calls_secret`) if it still holds
    /// `old`; whether it did.
    pub async fn replace_secret(
        &self,
        account_id: &str,
        column: &str,
        old: &str,
        new: &str,
    ) -> StorageResult<bool> {
        let sql = match column {
            "twilio_auth_token" => {
                "UPDATE accounts SET twilio_auth_token = $1 WHERE id = $2 AND twilio_auth_token = $3"
            }
            "calls_secret" => {
                "UPDATE accounts SET calls_secret = $1 WHERE id = $2 AND calls_secret = $3"
            }
            other => {
                return Err(super::StorageError::Corrupt(format!(
                    "no secret column {other}"
                )));
            }
        };
        let done = sqlx::query(sql)
            .bind(new)
            .bind(account_id)
            .bind(old)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn set_calls_secret(&self, account_id: &str, secret: &str) -> StorageResult<()> {
        sqlx::query("UPDATE accounts SET calls_secret = $1 WHERE id = $2")
            .bind(secret)
            .bind(account_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The credentials of every account that has any (loaded into the routing table).
    pub async fn telephony_credentials(&self) -> StorageResult<Vec<TelephonyCredentials>> {
        self.credentials_where(
            "twilio_auth_token IS NOT NULL OR calls_secret IS NOT NULL",
            None,
        )
        .await
    }

    /// The credentials of the accounts that connected this Twilio account.
    pub async fn credentials_of_twilio_account(
        &self,
        account_sid: &str,
    ) -> StorageResult<Vec<TelephonyCredentials>> {
        self.credentials_where(
            "twilio_account_sid = $1 AND twilio_auth_token IS NOT NULL ORDER BY id",
            Some(account_sid),
        )
        .await
    }

    /// One account's telephony credentials, if it has any.
    pub async fn credentials_of_account(
        &self,
        account_id: &str,
    ) -> StorageResult<Option<TelephonyCredentials>> {
        Ok(self
            .credentials_where(
                "id = $1 AND (twilio_auth_token IS NOT NULL OR calls_secret IS NOT NULL)",
                Some(account_id),
            )
            .await?
            .pop())
    }

    async fn credentials_where(
        &self,
        condition: &str,
        value: Option<&str>,
    ) -> StorageResult<Vec<TelephonyCredentials>> {
        let sql = format!(
            "SELECT id, twilio_account_sid, twilio_auth_token, calls_secret FROM accounts WHERE {condition}"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(value) = value {
            query = query.bind(value);
        }
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(TelephonyCredentials {
                    account_id: r.try_get("id")?,
                    twilio_account_sid: r.try_get("twilio_account_sid")?,
                    twilio_auth_token: r.try_get("twilio_auth_token")?,
                    calls_secret: r.try_get("calls_secret")?,
                })
            })
            .collect()
    }
}
