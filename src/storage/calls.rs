//! Calls, as replayed from the spool.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Storage, StorageResult, new_id};
use crate::time::Millis;

/// A call as the provider first reported it (the voice webhook), with where it was routed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCall {
    pub account_id: String,
    pub property_id: String,
    pub pool_id: Option<String>,
    pub provider: String,
    pub provider_call_id: String,
    pub tracking_number: String,
    pub caller_number: Option<String>,
    pub caller_name: Option<String>,
    pub caller_city: Option<String>,
    pub caller_state: Option<String>,
    pub caller_zip: Option<String>,
    pub caller_country: Option<String>,
    pub status: String,
    pub started_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRow {
    pub id: String,
    pub call: NewCall,
    pub spool_seq: i64,
}

impl Storage {
    /// Records calls from spool records `(seq, call)`, in one transaction. A call already
    /// recorded (a provider retry, or a replay after a crash) is left as it is.
    pub async fn record_calls(&self, calls: &[(u64, NewCall)]) -> StorageResult<()> {
        let mut tx = self.pool.begin().await?;
        for (seq, c) in calls {
            sqlx::query(
                "INSERT INTO calls (id, account_id, property_id, pool_id, provider, provider_call_id, \
                 tracking_number, caller_number, caller_name, caller_city, caller_state, caller_zip, \
                 caller_country, status, started_at, spool_seq) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
                 ON CONFLICT (provider, provider_call_id) DO NOTHING",
            )
            .bind(new_id())
            .bind(&c.account_id)
            .bind(&c.property_id)
            .bind(c.pool_id.clone())
            .bind(&c.provider)
            .bind(&c.provider_call_id)
            .bind(&c.tracking_number)
            .bind(c.caller_number.clone())
            .bind(c.caller_name.clone())
            .bind(c.caller_city.clone())
            .bind(c.caller_state.clone())
            .bind(c.caller_zip.clone())
            .bind(c.caller_country.clone())
            .bind(&c.status)
            .bind(c.started_at)
            .bind(*seq as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The calls of a property, oldest first.
    pub async fn calls_of_property(&self, property_id: &str) -> StorageResult<Vec<CallRow>> {
        sqlx::query(
            "SELECT id, account_id, property_id, pool_id, provider, provider_call_id, tracking_number, \
             caller_number, caller_name, caller_city, caller_state, caller_zip, caller_country, status, \
             started_at, spool_seq FROM calls WHERE property_id = $1 ORDER BY started_at, id",
        )
        .bind(property_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(call_from_row)
        .collect()
    }
}

fn call_from_row(r: &AnyRow) -> StorageResult<CallRow> {
    Ok(CallRow {
        id: r.try_get("id")?,
        spool_seq: r.try_get("spool_seq")?,
        call: NewCall {
            account_id: r.try_get("account_id")?,
            property_id: r.try_get("property_id")?,
            pool_id: r.try_get("pool_id")?,
            provider: r.try_get("provider")?,
            provider_call_id: r.try_get("provider_call_id")?,
            tracking_number: r.try_get("tracking_number")?,
            caller_number: r.try_get("caller_number")?,
            caller_name: r.try_get("caller_name")?,
            caller_city: r.try_get("caller_city")?,
            caller_state: r.try_get("caller_state")?,
            caller_zip: r.try_get("caller_zip")?,
            caller_country: r.try_get("caller_country")?,
            status: r.try_get("status")?,
            started_at: r.try_get("started_at")?,
        },
    })
}
