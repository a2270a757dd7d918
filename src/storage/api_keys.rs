//! An account's API keys: issued (the key shown once, its hash stored), listed (never the key),
//! revoked (refused at once on every instance: each request looks its key up).

use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;

use super::accounts::account_from_row;
use super::{Account, Storage, StorageError, StorageResult, new_id};
use crate::domain::{IssuedApiKey, hash_api_key};
use crate::time::{Millis, to_datetime};

/// `last_used_at` is written at most this often per key (a request is not a write).
pub const LAST_USED_EVERY_MS: Millis = 60_000;

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ApiKeyInfo {
    pub id: String,
    pub name: Option<String>,
    /// The key's first characters, to recognise it (never enough to use it).
    pub prefix: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

const COLUMNS: &str = "id, name, key_prefix, created_at, last_used_at, revoked_at";

fn info_from_row(r: &sqlx::any::AnyRow) -> Result<ApiKeyInfo, sqlx::Error> {
    Ok(ApiKeyInfo {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        prefix: r.try_get("key_prefix")?,
        created_at: to_datetime(r.try_get("created_at")?),
        last_used_at: r
            .try_get::<Option<i64>, _>("last_used_at")?
            .map(to_datetime),
        revoked_at: r.try_get::<Option<i64>, _>("revoked_at")?.map(to_datetime),
    })
}

impl Storage {
    /// Issues a named key for an account; the key itself is returned once, here.
    pub async fn create_api_key(
        &self,
        account_id: &str,
        name: Option<&str>,
        now: Millis,
    ) -> StorageResult<(ApiKeyInfo, SecretString)> {
        let key = IssuedApiKey::generate();
        let id = new_id();
        let mut tx = self.begin().await?;
        let exists = sqlx::query("SELECT 1 AS one FROM accounts WHERE id = $1")
            .bind(account_id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StorageError::NotFound);
        }
        let sql = format!(
            "INSERT INTO api_keys (id, account_id, key_hash, key_prefix, created_at, name) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&id)
            .bind(account_id)
            .bind(&key.hash)
            .bind(&key.display_prefix)
            .bind(now)
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((info_from_row(&row)?, key.plaintext))
    }

    /// An account's keys, newest first, revoked ones included.
    pub async fn list_api_keys(&self, account_id: &str) -> StorageResult<Vec<ApiKeyInfo>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM api_keys WHERE account_id = $1 ORDER BY created_at DESC, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(info_from_row).collect::<Result<_, _>>()?)
    }

    /// Revokes one of an account's keys. The last live key cannot be revoked (the account
    /// would have no way in): issue another first.
    pub async fn revoke_api_key(
        &self,
        account_id: &str,
        key_id: &str,
        now: Millis,
    ) -> StorageResult<ApiKeyInfo> {
        let mut tx = self.begin().await?;
        let live: Vec<String> =
            sqlx::query("SELECT id FROM api_keys WHERE account_id = $1 AND revoked_at IS NULL")
                .bind(account_id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get("id"))
                .collect::<Result<_, _>>()?;
        if !live.iter().any(|id| id == key_id) {
            return Err(StorageError::NotFound);
        }
        if live.len() == 1 {
            return Err(StorageError::LastApiKey);
        }
        let sql = format!(
            "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND account_id = $3 \
             RETURNING {COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(key_id)
            .bind(account_id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(info_from_row(&row)?)
    }

    /// The account of a presented key that is known and not revoked, with the key's id and
    /// when it was last noted as used.
    pub async fn api_key_in_use(
        &self,
        key: &SecretString,
    ) -> StorageResult<Option<(Account, String, Option<Millis>)>> {
        let row = sqlx::query(
            "SELECT a.id, a.name, a.created_at, k.id AS key_id, k.last_used_at \
             FROM api_keys k JOIN accounts a ON a.id = k.account_id \
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
        )
        .bind(hash_api_key(key.expose_secret()))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some((
            account_from_row(&row)?,
            row.try_get("key_id")?,
            row.try_get("last_used_at")?,
        )))
    }

    /// Notes that a key was used now, unless that was noted less than `LAST_USED_EVERY_MS` ago.
    pub async fn note_api_key_used(&self, key_id: &str, now: Millis) -> StorageResult<()> {
        sqlx::query(
            "UPDATE api_keys SET last_used_at = $1 WHERE id = $2 \
             AND (last_used_at IS NULL OR last_used_at <= $3)",
        )
        .bind(now)
        .bind(key_id)
        .bind(now - LAST_USED_EVERY_MS)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
