//! Alerts: each property's rules, what the rules read (pools' numbers and exhaustion events,
//! the calls of the last hour), and the state of each alert.
//!
//! Several instances evaluate the same rules. A state change is a conditional write that one
//! of them wins, and the event it announces is queued in the same transaction: an alert is
//! announced once per episode, and never lost between its state change and its event.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::webhooks::{OutboundEvent, queue_deliveries};
use super::{Storage, StorageError, StorageResult};
use crate::domain::{
    AlertSettings, BusinessHours, ExhaustionRule, MissedCallsRule, NoCallsRule, SPAM, Share,
    UtilisationRule,
};
use crate::time::Millis;

/// A property whose rules are evaluated, with its settings (the defaults if it has none).
#[derive(Debug, Clone)]
pub struct WatchedProperty {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub timezone: String,
    pub created_at: Millis,
    pub settings: AlertSettings,
}

/// A session pool as the pool rules read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolCounts {
    pub id: String,
    pub name: String,
    pub live_numbers: u64,
    /// Exhaustion events since the time asked about.
    pub exhaustions: u64,
}

/// A property's calls as the call rules read them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallActivity {
    /// Calls (spam apart) started since the time asked about that have an outcome.
    pub ended: u64,
    /// Of those, the missed ones.
    pub missed: u64,
    /// When the property's latest call of all started.
    pub last_call_at: Option<Millis>,
}

/// Which alert: a rule of a property, about one subject (a pool, or the property itself).
#[derive(Debug, Clone, Copy)]
pub struct AlertKey<'a> {
    pub property_id: &'a str,
    pub rule: &'a str,
    pub subject: &'a str,
}

/// An alert's stored state. No row means `ok`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertState {
    pub rule: String,
    pub subject: String,
    pub firing: bool,
    /// When the state began (for a firing alert, its episode's start).
    pub since: Millis,
    /// Firing, but the condition has been clear since then.
    pub clear_since: Option<Millis>,
}

/// The settings' columns, `s.` being `alert_settings` left-joined to `properties p`.
const SETTINGS_COLUMNS: &str = "p.id, p.account_id, p.name, p.timezone, p.created_at, \
     s.pool_utilisation_enabled, s.pool_utilisation_threshold_ppm, s.exhaustion_enabled, \
     s.missed_calls_enabled, s.missed_calls_threshold_ppm, s.missed_calls_min_calls, \
     s.no_calls_enabled, s.no_calls_after_minutes, s.business_days, s.business_from, \
     s.business_to, s.updated_at";

const KEY_MATCHES: &str = "property_id = $1 AND rule = $2 AND subject = $3";

impl Storage {
    /// A property's alert settings (the defaults until it sets its own); another account's
    /// property is `NotFound`.
    pub async fn alert_settings(
        &self,
        account_id: &str,
        property_id: &str,
    ) -> StorageResult<AlertSettings> {
        let sql = format!(
            "SELECT {SETTINGS_COLUMNS} FROM properties p \
             LEFT JOIN alert_settings s ON s.property_id = p.id WHERE p.id = $1 AND p.account_id = $2"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(property_id)
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StorageError::NotFound)?;
        Ok(watched_from_row(&row)?.settings)
    }

    /// Replaces a property's alert settings, in one statement scoped to its account.
    pub async fn set_alert_settings(
        &self,
        account_id: &str,
        property_id: &str,
        s: &AlertSettings,
        now: Millis,
    ) -> StorageResult<()> {
        let hours = &s.no_calls.business_hours;
        let done = sqlx::query(
            "INSERT INTO alert_settings (property_id, account_id, pool_utilisation_enabled, \
             pool_utilisation_threshold_ppm, exhaustion_enabled, missed_calls_enabled, \
             missed_calls_threshold_ppm, missed_calls_min_calls, no_calls_enabled, \
             no_calls_after_minutes, business_days, business_from, business_to, updated_at) \
             SELECT id, account_id, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14 \
             FROM properties WHERE id = $1 AND account_id = $2 \
             ON CONFLICT (property_id) DO UPDATE SET \
             pool_utilisation_enabled = excluded.pool_utilisation_enabled, \
             pool_utilisation_threshold_ppm = excluded.pool_utilisation_threshold_ppm, \
             exhaustion_enabled = excluded.exhaustion_enabled, \
             missed_calls_enabled = excluded.missed_calls_enabled, \
             missed_calls_threshold_ppm = excluded.missed_calls_threshold_ppm, \
             missed_calls_min_calls = excluded.missed_calls_min_calls, \
             no_calls_enabled = excluded.no_calls_enabled, \
             no_calls_after_minutes = excluded.no_calls_after_minutes, \
             business_days = excluded.business_days, business_from = excluded.business_from, \
             business_to = excluded.business_to, updated_at = excluded.updated_at",
        )
        .bind(property_id)
        .bind(account_id)
        .bind(i64::from(s.pool_utilisation.enabled))
        .bind(i64::from(s.pool_utilisation.threshold.ppm()))
        .bind(i64::from(s.exhaustion.enabled))
        .bind(i64::from(s.missed_calls.enabled))
        .bind(i64::from(s.missed_calls.threshold.ppm()))
        .bind(i64::from(s.missed_calls.min_calls))
        .bind(i64::from(s.no_calls.enabled))
        .bind(i64::from(s.no_calls.after_minutes))
        .bind(hours.days_db())
        .bind(hours.from.to_string())
        .bind(hours.to.to_string())
        .bind(now)
        .execute(&self.pool)
        .await?;
        super::found(&done)?;
        Ok(())
    }

    /// Every property of every account, with its alert settings: what an evaluation pass reads.
    pub async fn watched_properties(&self) -> StorageResult<Vec<WatchedProperty>> {
        let sql = format!(
            "SELECT {SETTINGS_COLUMNS} FROM properties p \
             LEFT JOIN alert_settings s ON s.property_id = p.id ORDER BY p.created_at, p.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(watched_from_row).collect()
    }

    /// A property's session pools: live numbers, and exhaustion events after `exhausted_after`.
    pub async fn session_pool_counts(
        &self,
        property_id: &str,
        exhausted_after: Millis,
    ) -> StorageResult<Vec<PoolCounts>> {
        let rows = sqlx::query(
            "SELECT p.id, p.name, \
             (SELECT COUNT(*) FROM tracking_numbers t \
              WHERE t.pool_id = p.id AND t.retired_at IS NULL) AS live_numbers, \
             (SELECT COUNT(*) FROM exhaustion_events e \
              WHERE e.pool_id = p.id AND e.at > $2) AS exhaustions \
             FROM pools p WHERE p.property_id = $1 AND p.kind = 'session' \
             ORDER BY p.created_at, p.id",
        )
        .bind(property_id)
        .bind(exhausted_after)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PoolCounts {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    live_numbers: r.try_get::<i64, _>("live_numbers")?.max(0) as u64,
                    exhaustions: r.try_get::<i64, _>("exhaustions")?.max(0) as u64,
                })
            })
            .collect()
    }

    /// A property's ended and missed calls (spam apart) started at or after `since`, and when
    /// its latest call started.
    pub async fn call_activity(
        &self,
        property_id: &str,
        since: Millis,
    ) -> StorageResult<CallActivity> {
        let r = sqlx::query(
            "SELECT COUNT(outcome) AS ended, \
             COALESCE(SUM(CASE WHEN outcome = 'missed' THEN 1 ELSE 0 END), 0) AS missed, \
             (SELECT MAX(started_at) FROM calls WHERE property_id = $1) AS last_call_at \
             FROM calls WHERE property_id = $1 AND started_at >= $2 \
             AND (disposition IS NULL OR disposition <> $3)",
        )
        .bind(property_id)
        .bind(since)
        .bind(SPAM)
        .fetch_one(&self.pool)
        .await?;
        Ok(CallActivity {
            ended: r.try_get::<i64, _>("ended")?.max(0) as u64,
            missed: r.try_get::<i64, _>("missed")?.max(0) as u64,
            last_call_at: r.try_get("last_call_at")?,
        })
    }

    /// The stored states of a property's alerts.
    pub async fn alert_states(&self, property_id: &str) -> StorageResult<Vec<AlertState>> {
        let rows = sqlx::query(
            "SELECT rule, subject, state, since, clear_since FROM alert_states \
             WHERE property_id = $1 ORDER BY rule, subject",
        )
        .bind(property_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AlertState {
                    rule: r.try_get("rule")?,
                    subject: r.try_get("subject")?,
                    firing: r.try_get::<String, _>("state")? == "firing",
                    since: r.try_get("since")?,
                    clear_since: r.try_get("clear_since")?,
                })
            })
            .collect()
    }

    /// Fires an alert that is not firing (`ok` -> `firing`, its episode starting `at`) and
    /// queues `event` with it, in one transaction. False: it was firing already (another
    /// instance won), and nothing was queued.
    pub async fn fire_alert(
        &self,
        key: AlertKey<'_>,
        at: Millis,
        event: &OutboundEvent<'_>,
    ) -> StorageResult<bool> {
        const FIRE: &str = "INSERT INTO alert_states \
             (property_id, rule, subject, state, since, clear_since) \
             VALUES ($1, $2, $3, 'firing', $4, NULL) \
             ON CONFLICT (property_id, rule, subject) DO UPDATE SET state = 'firing', \
             since = excluded.since, clear_since = NULL WHERE alert_states.state = 'ok'";
        self.change_alert(FIRE, key, at, None, event).await
    }

    /// Resolves the firing episode that began at `since` if its condition has been clear since
    /// `cleared_by` or earlier (`firing` -> `ok` at `at`), queueing `event` with it in one
    /// transaction. False: another instance resolved it first, or it is no longer clear.
    pub async fn resolve_alert(
        &self,
        key: AlertKey<'_>,
        since: Millis,
        cleared_by: Millis,
        at: Millis,
        event: &OutboundEvent<'_>,
    ) -> StorageResult<bool> {
        let sql = format!(
            "UPDATE alert_states SET state = 'ok', since = $4, clear_since = NULL \
             WHERE {KEY_MATCHES} AND state = 'firing' AND since = $5 AND clear_since <= $6"
        );
        self.change_alert(&sql, key, at, Some((since, cleared_by)), event)
            .await
    }

    /// The state change `sql` (`$1`-`$3` the key, `$4` now, then `episode`'s start and clear
    /// time) and, if it changed a row, `event`'s deliveries, in one transaction.
    async fn change_alert(
        &self,
        sql: &str,
        key: AlertKey<'_>,
        at: Millis,
        episode: Option<(Millis, Millis)>,
        event: &OutboundEvent<'_>,
    ) -> StorageResult<bool> {
        // The state change is the transaction's first statement, a write: on SQLite it takes
        // the write lock at once, so the reads that follow cannot meet a newer snapshot.
        let mut tx = self.begin().await?;
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .bind(key.property_id)
            .bind(key.rule)
            .bind(key.subject)
            .bind(at);
        if let Some((since, cleared_by)) = episode {
            query = query.bind(since).bind(cleared_by);
        }
        if query.execute(&mut *tx).await?.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        queue_deliveries(&mut tx, event, at).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A firing alert's condition is clear (`Some(at)`, kept if it was clear already), or
    /// holds again (`None`).
    pub async fn mark_alert_clear(
        &self,
        key: AlertKey<'_>,
        at: Option<Millis>,
    ) -> StorageResult<()> {
        let sql = match at {
            Some(_) => format!(
                "UPDATE alert_states SET clear_since = $4 \
                 WHERE {KEY_MATCHES} AND state = 'firing' AND clear_since IS NULL"
            ),
            None => format!(
                "UPDATE alert_states SET clear_since = NULL WHERE {KEY_MATCHES} AND state = 'firing'"
            ),
        };
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(key.property_id)
            .bind(key.rule)
            .bind(key.subject);
        if let Some(at) = at {
            query = query.bind(at);
        }
        query.execute(&self.pool).await?;
        Ok(())
    }
}

fn watched_from_row(r: &AnyRow) -> StorageResult<WatchedProperty> {
    let flag = |name: &str| -> StorageResult<bool> { Ok(r.try_get::<i64, _>(name)? != 0) };
    let number = |name: &str| -> StorageResult<u32> {
        Ok(r.try_get::<i64, _>(name)?.clamp(0, i64::from(u32::MAX)) as u32)
    };
    let updated_at: Option<Millis> = r.try_get("updated_at")?;
    let settings = match updated_at {
        None => AlertSettings::default(),
        Some(_) => AlertSettings {
            pool_utilisation: UtilisationRule {
                enabled: flag("pool_utilisation_enabled")?,
                threshold: Share::from_ppm(number("pool_utilisation_threshold_ppm")?),
            },
            exhaustion: ExhaustionRule {
                enabled: flag("exhaustion_enabled")?,
            },
            missed_calls: MissedCallsRule {
                enabled: flag("missed_calls_enabled")?,
                threshold: Share::from_ppm(number("missed_calls_threshold_ppm")?),
                min_calls: number("missed_calls_min_calls")?,
            },
            no_calls: NoCallsRule {
                enabled: flag("no_calls_enabled")?,
                after_minutes: number("no_calls_after_minutes")?,
                business_hours: BusinessHours::from_db(
                    &r.try_get::<String, _>("business_days")?,
                    &r.try_get::<String, _>("business_from")?,
                    &r.try_get::<String, _>("business_to")?,
                ),
            },
        },
    };
    Ok(WatchedProperty {
        id: r.try_get("id")?,
        account_id: r.try_get("account_id")?,
        name: r.try_get("name")?,
        timezone: r.try_get("timezone")?,
        created_at: r.try_get("created_at")?,
        settings,
    })
}
