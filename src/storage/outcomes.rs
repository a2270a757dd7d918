//! Conversions and the business's outcome of each call.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::rollups::{mark_call, mark_neighbours};
use super::{CallRow, Storage, StorageResult, new_id};
use crate::domain::CallOutcome;
use crate::time::Millis;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversionRow {
    pub id: String,
    pub call_id: String,
    pub name: String,
    pub value_micros: i64,
    pub at: Millis,
    pub created_at: Millis,
}

pub(super) fn conversion_from_row(r: &AnyRow) -> StorageResult<ConversionRow> {
    Ok(ConversionRow {
        id: r.try_get("id")?,
        call_id: r.try_get("call_id")?,
        name: r.try_get("name")?,
        value_micros: r.try_get("value_micros")?,
        at: r.try_get("at")?,
        created_at: r.try_get("created_at")?,
    })
}

impl Storage {
    pub async fn add_conversion(
        &self,
        call: &CallRow,
        name: &str,
        value_micros: i64,
        at: Millis,
        now: Millis,
    ) -> StorageResult<ConversionRow> {
        let row = ConversionRow {
            id: new_id(),
            call_id: call.id.clone(),
            name: name.to_owned(),
            value_micros,
            at,
            created_at: now,
        };
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO conversions (id, account_id, property_id, call_id, name, value_micros, at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&row.id)
        .bind(&call.call.account_id)
        .bind(&call.call.property_id)
        .bind(&call.id)
        .bind(name)
        .bind(value_micros)
        .bind(at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        mark_call(&mut tx, &call.id, now).await?;
        tx.commit().await?;
        Ok(row)
    }

    pub async fn conversions_of_call(&self, call_id: &str) -> StorageResult<Vec<ConversionRow>> {
        sqlx::query(
            "SELECT id, call_id, name, value_micros, at, created_at FROM conversions \
             WHERE call_id = $1 ORDER BY at, id",
        )
        .bind(call_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(conversion_from_row)
        .collect()
    }

    /// Removes a call's conversions (those of one name, or all); returns how many.
    pub async fn delete_conversions(
        &self,
        account_id: &str,
        call_id: &str,
        name: Option<&str>,
        now: Millis,
    ) -> StorageResult<u64> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "DELETE FROM conversions WHERE account_id = $1 AND call_id = $2 \
             AND ($3 IS NULL OR name = $3)",
        )
        .bind(account_id)
        .bind(call_id)
        .bind(name.map(str::to_owned))
        .execute(&mut *tx)
        .await?;
        mark_call(&mut tx, call_id, now).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Replaces the business's outcome of a call of this account.
    pub async fn set_call_outcome(
        &self,
        account_id: &str,
        call_id: &str,
        outcome: &CallOutcome,
        now: Millis,
    ) -> StorageResult<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE calls SET disposition = $1, lead_score = $2, csat = $3, tags = $4 \
             WHERE id = $5 AND account_id = $6",
        )
        .bind(outcome.disposition.clone())
        .bind(outcome.lead_score)
        .bind(outcome.csat)
        .bind(serde_json::to_string(&outcome.tags).expect("strings serialise"))
        .bind(call_id)
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
        super::found(&done)?;
        // A call marked spam (or no longer) leaves (or rejoins) its caller's sequence of calls.
        mark_call(&mut tx, call_id, now).await?;
        mark_neighbours(&mut tx, call_id, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The caller's latest call to the property at or before `at`, within `lookback_ms` (for a
    /// CRM that knows the caller and the time, not our call id).
    pub async fn call_of_caller(
        &self,
        account_id: &str,
        property_id: &str,
        caller: &str,
        at: Millis,
        lookback_ms: Millis,
    ) -> StorageResult<Option<String>> {
        let row = sqlx::query(
            "SELECT id FROM calls WHERE account_id = $1 AND property_id = $2 \
             AND caller_number = $3 AND started_at <= $4 AND started_at >= $5 \
             ORDER BY started_at DESC, id DESC LIMIT 1",
        )
        .bind(account_id)
        .bind(property_id)
        .bind(caller)
        .bind(at)
        .bind(at - lookback_ms)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("id")).transpose()?)
    }
}
