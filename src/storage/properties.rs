use secrecy::ExposeSecret;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Property, Storage, StorageError, StorageResult, new_id};
use crate::domain::{
    CallSettings, DEFAULT_DISPOSITIONS, Ga4Settings, LeadRule, NewProperty, generate_public_key,
};
use crate::time::{Millis, to_datetime};

pub(super) const PROPERTY_COLUMNS: &str = "id, account_id, name, public_key, domains, default_number, \
     forward_to, timezone, currency, created_at, ring_timeout_s, record, caller_id, whisper, \
     attribution_window_hours, dispositions, qualified_after_s, qualified_first_time_only, \
     ga4_measurement_id, ga4_api_secret, ga4_endpoint, ga4_event_name";

impl Storage {
    pub async fn create_property(
        &self,
        account_id: &str,
        new: &NewProperty,
        now: Millis,
    ) -> StorageResult<Property> {
        let property = Property {
            id: new_id(),
            account_id: account_id.to_owned(),
            name: new.name.clone(),
            public_key: generate_public_key(),
            domains: new.domains.iter().map(|d| d.as_str().to_owned()).collect(),
            default_number: new.default_number.to_string(),
            forward_to: new.forward_to.to_string(),
            timezone: new.timezone.name().to_owned(),
            currency: new.currency.code().to_owned(),
            created_at: to_datetime(now),
            call_settings: new.call_settings.clone(),
            dispositions: DEFAULT_DISPOSITIONS
                .iter()
                .map(|d| (*d).to_owned())
                .collect(),
            lead_rule: LeadRule::default(),
            ga4: None,
        };
        sqlx::query(
            "INSERT INTO properties (id, account_id, name, public_key, domains, default_number, \
             forward_to, timezone, currency, created_at, ring_timeout_s, record, caller_id, whisper, \
             attribution_window_hours) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(&property.id)
        .bind(account_id)
        .bind(&property.name)
        .bind(&property.public_key)
        .bind(serde_json::to_string(&property.domains).expect("strings serialise"))
        .bind(&property.default_number)
        .bind(&property.forward_to)
        .bind(&property.timezone)
        .bind(&property.currency)
        .bind(now)
        .bind(i64::from(new.call_settings.ring_timeout_s))
        .bind(new.call_settings.twilio_record())
        .bind(new.call_settings.caller_id_db())
        .bind(new.call_settings.whisper_db())
        .bind(i64::from(new.call_settings.attribution_window_hours))
        .execute(&self.pool)
        .await?;
        Ok(property)
    }

    pub async fn list_properties(&self, account_id: &str) -> StorageResult<Vec<Property>> {
        let sql = format!(
            "SELECT {PROPERTY_COLUMNS} FROM properties WHERE account_id = $1 ORDER BY created_at, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(property_from_row).collect()
    }

    /// A property of this account; another account's property is `NotFound`, as if it did not exist.
    pub async fn property(&self, account_id: &str, property_id: &str) -> StorageResult<Property> {
        let sql =
            format!("SELECT {PROPERTY_COLUMNS} FROM properties WHERE id = $1 AND account_id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(property_id)
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StorageError::NotFound)?;
        property_from_row(&row)
    }

    /// Stores a property's `forward_to`, call settings, dispositions, lead rule and GA4
    /// settings as `property` has them, in one statement.
    pub async fn update_property_settings(
        &self,
        account_id: &str,
        property: &Property,
    ) -> StorageResult<()> {
        let settings = &property.call_settings;
        let rule = &property.lead_rule;
        let ga4 = property.ga4.as_ref();
        let done = sqlx::query(
            "UPDATE properties SET ring_timeout_s = $1, record = $2, caller_id = $3, whisper = $4, \
             attribution_window_hours = $5, dispositions = $6, qualified_after_s = $7, \
             qualified_first_time_only = $8, ga4_measurement_id = $9, ga4_api_secret = $10, \
             ga4_endpoint = $11, ga4_event_name = $12, forward_to = $13 WHERE id = $14 AND account_id = $15",
        )
        .bind(i64::from(settings.ring_timeout_s))
        .bind(settings.twilio_record())
        .bind(settings.caller_id_db())
        .bind(settings.whisper_db())
        .bind(i64::from(settings.attribution_window_hours))
        .bind(serde_json::to_string(&property.dispositions).expect("strings serialise"))
        .bind(i64::from(rule.min_duration_s))
        .bind(i64::from(rule.first_time_only))
        .bind(ga4.map(|g| g.measurement_id.clone()))
        .bind(ga4.map(|g| g.api_secret.expose_secret().to_owned()))
        .bind(ga4.map(|g| g.endpoint.clone()))
        .bind(ga4.map(|g| g.event_name.clone()))
        .bind(&property.forward_to)
        .bind(&property.id)
        .bind(account_id)
        .execute(&self.pool)
        .await?;
        super::found(&done)?;
        Ok(())
    }

    /// A property by id alone, for work behind the request path (attribution).
    pub async fn property_by_id(&self, property_id: &str) -> StorageResult<Property> {
        let sql = format!("SELECT {PROPERTY_COLUMNS} FROM properties WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(property_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StorageError::NotFound)?;
        property_from_row(&row)
    }

    /// The property a snippet names by its public key (no account scope: the key is the scope).
    pub async fn property_by_public_key(&self, public_key: &str) -> StorageResult<Property> {
        let sql = format!("SELECT {PROPERTY_COLUMNS} FROM properties WHERE public_key = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(public_key)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StorageError::NotFound)?;
        property_from_row(&row)
    }
}

pub(super) fn property_from_row(r: &AnyRow) -> StorageResult<Property> {
    let domains: String = r.try_get("domains")?;
    Ok(Property {
        id: r.try_get("id")?,
        account_id: r.try_get("account_id")?,
        name: r.try_get("name")?,
        public_key: r.try_get("public_key")?,
        domains: serde_json::from_str(&domains)
            .map_err(|e| StorageError::Corrupt(format!("properties.domains: {e}")))?,
        default_number: r.try_get("default_number")?,
        forward_to: r.try_get("forward_to")?,
        timezone: r.try_get("timezone")?,
        currency: r.try_get("currency")?,
        created_at: to_datetime(r.try_get("created_at")?),
        call_settings: CallSettings::from_db(
            r.try_get("ring_timeout_s")?,
            &r.try_get::<String, _>("record")?,
            &r.try_get::<String, _>("caller_id")?,
            &r.try_get::<String, _>("whisper")?,
            r.try_get("attribution_window_hours")?,
        ),
        dispositions: serde_json::from_str(&r.try_get::<String, _>("dispositions")?)
            .map_err(|e| StorageError::Corrupt(format!("properties.dispositions: {e}")))?,
        lead_rule: LeadRule {
            min_duration_s: r.try_get::<i64, _>("qualified_after_s")?.clamp(0, 86_400) as u32,
            first_time_only: r.try_get::<i64, _>("qualified_first_time_only")? != 0,
        },
        ga4: Ga4Settings::from_db(
            r.try_get("ga4_measurement_id")?,
            r.try_get("ga4_api_secret")?,
            r.try_get("ga4_endpoint")?,
            r.try_get("ga4_event_name")?,
        ),
    })
}
