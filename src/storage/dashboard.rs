//! Dashboard sessions (see `migrations/0010_dashboard_sessions.sql`): a browser signed in with an
//! API key. Tokens are looked up by their hash; the token itself is never stored.

use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;

use super::accounts::account_from_row;
use super::{Account, Storage, StorageResult};
use crate::domain::hash_api_key;
use crate::time::Millis;

impl Storage {
    /// Opens a session for the account of a valid, unrevoked API key; None for any other key.
    /// Expired sessions are swept on the way, so the table holds live ones only.
    pub async fn open_dashboard_session(
        &self,
        api_key: &SecretString,
        token_hash: &str,
        now: Millis,
        expires_at: Millis,
    ) -> StorageResult<Option<Account>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "SELECT k.id AS key_id, a.id, a.name, a.created_at FROM api_keys k \
             JOIN accounts a ON a.id = k.account_id \
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
        )
        .bind(hash_api_key(api_key.expose_secret()))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let key_id: String = row.try_get("key_id")?;
        let account = account_from_row(&row)?;
        sqlx::query("DELETE FROM dashboard_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO dashboard_sessions (token_hash, account_id, api_key_id, created_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(&account.id)
        .bind(key_id)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(account))
    }

    /// The account of a live session: not expired, and its key not revoked.
    pub async fn account_for_dashboard_session(
        &self,
        token_hash: &str,
        now: Millis,
    ) -> StorageResult<Option<Account>> {
        let row = sqlx::query(
            "SELECT a.id, a.name, a.created_at FROM dashboard_sessions s \
             JOIN accounts a ON a.id = s.account_id \
             JOIN api_keys k ON k.id = s.api_key_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND k.revoked_at IS NULL",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(account_from_row).transpose()?)
    }

    /// Signs a session out; true if there was one.
    pub async fn close_dashboard_session(&self, token_hash: &str) -> StorageResult<bool> {
        let done = sqlx::query("DELETE FROM dashboard_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
