//! Leases on shared background work and the configuration revisions (see
//! `migrations/0012_shared_work.sql` and `src/work.rs`). Times are wall-clock ms.

use sqlx::Row;

use super::{Storage, StorageResult};
use crate::time::Millis;

impl Storage {
    /// Takes `job` for `holder` until `until` when it is free, expired, or already the
    /// holder's; says whether the holder has it now.
    pub async fn take_work_lease(
        &self,
        job: &str,
        holder: &str,
        now: Millis,
        until: Millis,
    ) -> StorageResult<bool> {
        let mut tx = self.begin().await?;
        let taken = sqlx::query(
            "INSERT INTO work_leases (job, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE work_leases.holder = excluded.holder OR work_leases.expires_at <= $4 \
             RETURNING job",
        )
        .bind(job)
        .bind(holder)
        .bind(until)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(taken.is_some())
    }

    /// Extends every unexpired lease of `holder` to `until`; returns the jobs it still holds.
    pub async fn renew_work_leases(
        &self,
        holder: &str,
        now: Millis,
        until: Millis,
    ) -> StorageResult<Vec<String>> {
        let mut tx = self.begin().await?;
        let rows = sqlx::query(
            "UPDATE work_leases SET expires_at = $1 \
             WHERE holder = $2 AND expires_at > $3 RETURNING job",
        )
        .bind(until)
        .bind(holder)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("job")?))
            .collect()
    }

    /// Every unexpired lease, as `(job, holder)`.
    pub async fn live_work_leases(&self, now: Millis) -> StorageResult<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT job, holder FROM work_leases WHERE expires_at > $1")
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("job")?, r.try_get("holder")?)))
            .collect()
    }

    /// Gives `job` up, if `holder` has it.
    pub async fn release_work_lease(&self, job: &str, holder: &str) -> StorageResult<()> {
        sqlx::query("DELETE FROM work_leases WHERE job = $1 AND holder = $2")
            .bind(job)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Gives up everything `holder` has (a graceful shutdown).
    pub async fn release_work_leases_of(&self, holder: &str) -> StorageResult<()> {
        sqlx::query("DELETE FROM work_leases WHERE holder = $1")
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets leases that expired before `before` (instances long gone).
    pub async fn sweep_work_leases(&self, before: Millis) -> StorageResult<()> {
        sqlx::query("DELETE FROM work_leases WHERE expires_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Counts one more change of each named configuration (`routes`, `credentials`).
    pub async fn bump_config_revisions(&self, names: &[&str]) -> StorageResult<()> {
        let mut tx = self.begin().await?;
        for name in names {
            sqlx::query(
                "INSERT INTO config_revisions (name, revision) VALUES ($1, 1) \
                 ON CONFLICT (name) DO UPDATE SET revision = config_revisions.revision + 1",
            )
            .bind(*name)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every configuration's revision, as `(name, revision)`.
    pub async fn config_revisions(&self) -> StorageResult<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT name, revision FROM config_revisions")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("revision")?)))
            .collect()
    }
}
