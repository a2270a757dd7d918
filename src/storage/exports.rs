//! Reads for exports to ad platforms.

use std::collections::HashMap;

use sqlx::Row;

use super::outcomes::conversion_from_row;
use super::{ConversionRow, Storage, StorageResult};
use crate::domain::SPAM;
use crate::time::Millis;

/// A call whose visit came from a Google ad click, with what it led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickedCall {
    pub id: String,
    pub gclid: String,
    pub started_at: Millis,
    pub qualified: bool,
    /// In time order.
    pub conversions: Vec<ConversionRow>,
}

/// The calls an export covers: the property's, started in `[from, to)`, with a Google click
/// id, not marked spam.
const CLICKED_CALLS: &str = "FROM calls k WHERE k.property_id = $1 AND k.started_at >= $2 \
     AND k.started_at < $3 AND k.gclid IS NOT NULL AND (k.disposition IS NULL OR k.disposition <> $4)";

impl Storage {
    /// The property's calls from Google ad clicks that started in `[from, to)`, oldest first,
    /// leaving out spam.
    pub async fn calls_from_google_clicks(
        &self,
        property_id: &str,
        from: Millis,
        to: Millis,
    ) -> StorageResult<Vec<ClickedCall>> {
        let sql = format!(
            "SELECT k.id, k.gclid, k.started_at, k.qualified {CLICKED_CALLS} \
             ORDER BY k.started_at, k.id"
        );
        let mut calls = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(property_id)
            .bind(from)
            .bind(to)
            .bind(SPAM)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(ClickedCall {
                    id: r.try_get("id")?,
                    gclid: r.try_get("gclid")?,
                    started_at: r.try_get("started_at")?,
                    qualified: r
                        .try_get::<Option<i64>, _>("qualified")?
                        .is_some_and(|q| q != 0),
                    conversions: Vec::new(),
                })
            })
            .collect::<StorageResult<Vec<_>>>()?;
        let sql = format!(
            "SELECT c.id, c.call_id, c.name, c.value_micros, c.at, c.created_at \
             FROM conversions c WHERE c.call_id IN (SELECT k.id {CLICKED_CALLS}) \
             ORDER BY c.at, c.id"
        );
        let conversions = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(property_id)
            .bind(from)
            .bind(to)
            .bind(SPAM)
            .fetch_all(&self.pool)
            .await?;
        let index: HashMap<String, usize> = calls
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        for row in &conversions {
            let conversion = conversion_from_row(row)?;
            if let Some(&i) = index.get(&conversion.call_id) {
                calls[i].conversions.push(conversion);
            }
        }
        Ok(calls)
    }
}
