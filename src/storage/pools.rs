use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Pool, Storage, StorageError, StorageResult, TrackingNumber, new_id};
use crate::domain::{
    CallSettings, ExhaustionPolicy, NewPool, PhoneNumber, PoolKind, PoolMatch, from_micros,
    to_micros,
};
use crate::time::{Millis, to_datetime};

pub(super) const POOL_COLUMNS: &str = "id, account_id, property_id, name, kind, match_channel, match_source, \
     match_medium, match_campaign, lease_minutes, exhaustion, overflow_number, created_at";

impl Storage {
    /// Creates a pool with its numbers in one transaction: if any number is taken, nothing is written.
    pub async fn create_pool(
        &self,
        account_id: &str,
        property_id: &str,
        new: &NewPool,
        now: Millis,
        quarantine: Millis,
    ) -> StorageResult<Pool> {
        let mut tx = self.begin().await?;
        // The property must be this account's; checked inside the transaction that uses it.
        sqlx::query("SELECT id FROM properties WHERE id = $1 AND account_id = $2")
            .bind(property_id)
            .bind(account_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StorageError::NotFound)?;
        let id = new_id();
        sqlx::query(
            "INSERT INTO pools (id, account_id, property_id, name, kind, match_channel, \
             match_source, match_medium, match_campaign, lease_minutes, exhaustion, \
             overflow_number, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&id)
        .bind(account_id)
        .bind(property_id)
        .bind(&new.name)
        .bind(new.kind.as_str())
        .bind(new.matcher.channel.as_deref())
        .bind(new.matcher.source.as_deref())
        .bind(new.matcher.medium.as_deref())
        .bind(new.matcher.campaign.as_deref())
        .bind(new.lease_minutes)
        .bind(new.exhaustion.as_str())
        .bind(new.overflow_number.as_ref().map(|n| n.to_string()))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let numbers = insert_numbers(
            &mut tx,
            (account_id, &id),
            &new.numbers,
            new.monthly_cost,
            (now, quarantine),
        )
        .await?;
        tx.commit().await?;
        Ok(Pool {
            id,
            property_id: property_id.to_owned(),
            account_id: account_id.to_owned(),
            name: new.name.clone(),
            kind: new.kind,
            matcher: new.matcher.clone(),
            lease_minutes: new.lease_minutes,
            exhaustion: new.exhaustion,
            overflow_number: new.overflow_number.as_ref().map(|n| n.to_string()),
            numbers,
            created_at: to_datetime(now),
        })
    }

    pub async fn list_pools(
        &self,
        account_id: &str,
        property_id: &str,
    ) -> StorageResult<Vec<Pool>> {
        // NotFound for a property that is not this account's, rather than an empty list.
        self.property(account_id, property_id).await?;
        let sql = format!(
            "SELECT {POOL_COLUMNS} FROM pools WHERE property_id = $1 AND account_id = $2 \
             ORDER BY created_at, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(property_id)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?;
        let mut pools: Vec<Pool> = rows
            .iter()
            .map(pool_from_row)
            .collect::<StorageResult<_>>()?;
        // Every pool's numbers in one query, not one per pool.
        let numbers = sqlx::query(
            "SELECT t.pool_id, t.e164, t.monthly_cost_micros, t.added_at, t.retired_at \
             FROM tracking_numbers t JOIN pools p ON p.id = t.pool_id \
             WHERE p.property_id = $1 AND p.account_id = $2 \
             ORDER BY CASE WHEN t.retired_at IS NULL THEN 0 ELSE 1 END, t.added_at, t.e164",
        )
        .bind(property_id)
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        let mut by_pool: std::collections::HashMap<String, Vec<TrackingNumber>> =
            std::collections::HashMap::new();
        for row in &numbers {
            by_pool
                .entry(row.try_get("pool_id")?)
                .or_default()
                .push(number_from_row(row)?);
        }
        for pool in &mut pools {
            pool.numbers = by_pool.remove(&pool.id).unwrap_or_default();
        }
        Ok(pools)
    }

    pub async fn pool(&self, account_id: &str, pool_id: &str) -> StorageResult<Pool> {
        let sql = format!("SELECT {POOL_COLUMNS} FROM pools WHERE id = $1 AND account_id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(pool_id)
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StorageError::NotFound)?;
        let mut pool = pool_from_row(&row)?;
        pool.numbers = self.numbers_of_pool(&pool.id).await?;
        Ok(pool)
    }

    /// Adds numbers to a pool, all or none.
    pub async fn add_numbers(
        &self,
        account_id: &str,
        pool_id: &str,
        numbers: &[PhoneNumber],
        monthly_cost: Option<f64>,
        (now, quarantine): (Millis, Millis),
    ) -> StorageResult<Vec<TrackingNumber>> {
        let mut tx = self.begin().await?;
        let kind: String = sqlx::query("SELECT kind FROM pools WHERE id = $1 AND account_id = $2")
            .bind(pool_id)
            .bind(account_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StorageError::NotFound)?
            .try_get("kind")?;
        if PoolKind::from_db(&kind) == PoolKind::Source {
            let live: i64 = sqlx::query(
                "SELECT COUNT(*) AS n FROM tracking_numbers WHERE pool_id = $1 AND retired_at IS NULL",
            )
            .bind(pool_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
            if live + numbers.len() as i64 > 1 {
                return Err(StorageError::SourcePoolFull);
            }
        }
        let added = insert_numbers(
            &mut tx,
            (account_id, pool_id),
            numbers,
            monthly_cost,
            (now, quarantine),
        )
        .await?;
        tx.commit().await?;
        Ok(added)
    }

    /// Retires a live number from a pool. Its history stays; it takes no new sessions.
    pub async fn retire_number(
        &self,
        account_id: &str,
        pool_id: &str,
        number: &PhoneNumber,
        now: Millis,
    ) -> StorageResult<TrackingNumber> {
        let row = sqlx::query(
            "UPDATE tracking_numbers SET retired_at = $1 \
             WHERE pool_id = $2 AND account_id = $3 AND e164 = $4 AND retired_at IS NULL \
             RETURNING e164, monthly_cost_micros, added_at, retired_at",
        )
        .bind(now)
        .bind(pool_id)
        .bind(account_id)
        .bind(number.as_str())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StorageError::NotFound)?;
        number_from_row(&row)
    }

    async fn numbers_of_pool(&self, pool_id: &str) -> StorageResult<Vec<TrackingNumber>> {
        let rows = sqlx::query(
            "SELECT e164, monthly_cost_micros, added_at, retired_at FROM tracking_numbers \
             WHERE pool_id = $1 ORDER BY CASE WHEN retired_at IS NULL THEN 0 ELSE 1 END, added_at, e164",
        )
        .bind(pool_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(number_from_row).collect()
    }
}

/// Adds numbers to a pool. A number another account retired less than `quarantine` ms ago
/// stays that account's: whoever added it would receive its former callers.
async fn insert_numbers(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    (account_id, pool_id): (&str, &str),
    numbers: &[PhoneNumber],
    monthly_cost: Option<f64>,
    (now, quarantine): (Millis, Millis),
) -> StorageResult<Vec<TrackingNumber>> {
    // One look for the whole list (in chunks), not one per number.
    let mut quarantined = std::collections::HashSet::new();
    for chunk in numbers.chunks(500) {
        let list: Vec<String> = (3..3 + chunk.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT DISTINCT e164 FROM tracking_numbers WHERE account_id <> $1 \
             AND retired_at IS NOT NULL AND retired_at > $2 AND e164 IN ({})",
            list.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account_id)
            .bind(now - quarantine);
        for number in chunk {
            query = query.bind(number.as_str());
        }
        for row in query.fetch_all(&mut **tx).await? {
            quarantined.insert(row.try_get::<String, _>("e164")?);
        }
    }
    if let Some(first) = numbers.iter().find(|n| quarantined.contains(n.as_str())) {
        return Err(StorageError::NumberQuarantined(first.to_string()));
    }
    let mut added = Vec::with_capacity(numbers.len());
    for number in numbers {
        let result = sqlx::query(
            "INSERT INTO tracking_numbers (id, account_id, pool_id, e164, monthly_cost_micros, added_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(new_id())
        .bind(account_id)
        .bind(pool_id)
        .bind(number.as_str())
        .bind(monthly_cost.map(to_micros))
        .bind(now)
        .execute(&mut **tx)
        .await;
        match result {
            Ok(_) => {}
            Err(e) if StorageError::is_unique_violation(&e) => {
                return Err(StorageError::NumberTaken(number.to_string()));
            }
            Err(e) => return Err(e.into()),
        }
        added.push(TrackingNumber {
            number: number.to_string(),
            monthly_cost,
            added_at: to_datetime(now),
            retired_at: None,
        });
    }
    Ok(added)
}

pub(super) fn pool_from_row(r: &AnyRow) -> StorageResult<Pool> {
    Ok(Pool {
        id: r.try_get("id")?,
        property_id: r.try_get("property_id")?,
        account_id: r.try_get("account_id")?,
        name: r.try_get("name")?,
        kind: PoolKind::from_db(r.try_get("kind")?),
        matcher: PoolMatch {
            channel: r.try_get("match_channel")?,
            source: r.try_get("match_source")?,
            medium: r.try_get("match_medium")?,
            campaign: r.try_get("match_campaign")?,
        },
        lease_minutes: r.try_get("lease_minutes")?,
        exhaustion: ExhaustionPolicy::from_db(r.try_get("exhaustion")?),
        overflow_number: r.try_get("overflow_number")?,
        numbers: Vec::new(),
        created_at: to_datetime(r.try_get("created_at")?),
    })
}

fn number_from_row(r: &AnyRow) -> StorageResult<TrackingNumber> {
    let retired_at: Option<i64> = r.try_get("retired_at")?;
    Ok(TrackingNumber {
        number: r.try_get("e164")?,
        monthly_cost: r
            .try_get::<Option<i64>, _>("monthly_cost_micros")?
            .map(from_micros),
        added_at: to_datetime(r.try_get("added_at")?),
        retired_at: retired_at.map(to_datetime),
    })
}

impl Storage {
    /// The live numbers of a pool (no account scope: the page-view flow already resolved it).
    pub async fn live_numbers_of_pool(&self, pool_id: &str) -> StorageResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT e164 FROM tracking_numbers WHERE pool_id = $1 AND retired_at IS NULL ORDER BY e164",
        )
        .bind(pool_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("e164"))
            .collect::<Result<_, _>>()?)
    }
}

/// Where calls to one tracking number go, and how they ring through.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RouteRow {
    pub number: String,
    pub account_id: String,
    pub property_id: String,
    pub pool_id: String,
    pub forward_to: String,
    pub settings: CallSettings,
}

/// Where calls to each number go: live tracking numbers and pools' overflow numbers, each
/// branch with its own `{filter}` (`WHERE` conditions added by the caller).
const ROUTES_SQL: &str = "SELECT t.e164 AS number, pr.account_id, pr.id AS property_id, po.id AS pool_id, pr.forward_to, \
     pr.ring_timeout_s, pr.record, pr.caller_id, pr.whisper, pr.attribution_window_hours \
     FROM tracking_numbers t JOIN pools po ON po.id = t.pool_id \
     JOIN properties pr ON pr.id = po.property_id WHERE t.retired_at IS NULL {tracking_filter} \
     UNION ALL \
     SELECT po.overflow_number AS number, pr.account_id, pr.id AS property_id, po.id AS pool_id, pr.forward_to, \
     pr.ring_timeout_s, pr.record, pr.caller_id, pr.whisper, pr.attribution_window_hours \
     FROM pools po JOIN properties pr ON pr.id = po.property_id WHERE po.overflow_number IS NOT NULL {overflow_filter}";

impl Storage {
    /// Every number a call may come in on.
    pub async fn routes(&self) -> StorageResult<Vec<RouteRow>> {
        let sql = ROUTES_SQL
            .replace("{tracking_filter}", "")
            .replace("{overflow_filter}", "");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(route_row).collect()
    }

    /// The route of one number (two indexed reads), for a call the routing table does not know.
    pub async fn route_of(&self, number: &str) -> StorageResult<Option<RouteRow>> {
        let sql = ROUTES_SQL
            .replace("{tracking_filter}", "AND t.e164 = $1")
            .replace("{overflow_filter}", "AND po.overflow_number = $1");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(number)
            .fetch_all(&self.pool)
            .await?;
        // A number both live and some pool's overflow resolves as the whole table does (the
        // later row wins there).
        rows.last().map(route_row).transpose()
    }
}

fn route_row(r: &AnyRow) -> StorageResult<RouteRow> {
    Ok(RouteRow {
        number: r.try_get("number")?,
        account_id: r.try_get("account_id")?,
        property_id: r.try_get("property_id")?,
        pool_id: r.try_get("pool_id")?,
        forward_to: r.try_get("forward_to")?,
        settings: CallSettings::from_db(
            r.try_get("ring_timeout_s")?,
            &r.try_get::<String, _>("record")?,
            &r.try_get::<String, _>("caller_id")?,
            &r.try_get::<String, _>("whisper")?,
            r.try_get("attribution_window_hours")?,
        ),
    })
}
