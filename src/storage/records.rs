//! What storage hands back: plain records, serialisable as the API shows them.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{CallSettings, ExhaustionPolicy, Ga4Settings, LeadRule, PoolKind, PoolMatch};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// An account just created, with the only copy of its first API key in clear.
#[derive(Debug)]
pub struct CreatedAccount {
    pub account: Account,
    pub api_key: SecretString,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Property {
    pub id: String,
    #[serde(skip)]
    pub account_id: String,
    pub name: String,
    /// The key the snippet embeds; public, not a secret.
    pub public_key: String,
    pub domains: Vec<String>,
    /// The number the site publishes, in E.164; the snippet swaps it for a tracking number.
    pub default_number: String,
    /// Where calls to this property's tracking numbers are forwarded, in E.164.
    pub forward_to: String,
    /// IANA time zone for reports, e.g. `America/New_York`.
    pub timezone: String,
    /// ISO 4217 currency for costs and revenue.
    pub currency: String,
    pub created_at: DateTime<Utc>,
    pub call_settings: CallSettings,
    /// What a call may be marked as by the business (`spam` calls leave the money figures).
    pub dispositions: Vec<String>,
    /// When a completed call counts as a qualified lead.
    pub lead_rule: LeadRule,
    /// Where completed calls are sent as GA4 events; null when they are not.
    pub ga4: Option<Ga4Settings>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TrackingNumber {
    /// E.164.
    pub number: String,
    pub monthly_cost: Option<f64>,
    pub added_at: DateTime<Utc>,
    /// Set when the number was retired from the pool; it then takes no new sessions.
    pub retired_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Pool {
    pub id: String,
    pub property_id: String,
    #[serde(skip)]
    pub account_id: String,
    pub name: String,
    pub kind: PoolKind,
    #[serde(rename = "match")]
    pub matcher: PoolMatch,
    pub lease_minutes: i64,
    pub exhaustion: ExhaustionPolicy,
    pub overflow_number: Option<String>,
    /// Live numbers first, then retired ones.
    pub numbers: Vec<TrackingNumber>,
    pub created_at: DateTime<Utc>,
}
