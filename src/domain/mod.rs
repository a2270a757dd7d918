//! Domain types that parse, not validate: once a value has one of these types it is known good.

mod alert_settings;
mod api_key;
mod call_settings;
mod call_status;
mod ga4;
mod http_url;
mod money;
mod outcome;
mod phone;
mod pool;
mod property;
mod twilio_account;

pub use alert_settings::{
    AlertSettings, AlertSettingsInput, BusinessHours, Day, ExhaustionRule, MAX_QUIET_MINUTES,
    MissedCallsRule, NoCallsRule, Share, TimeOfDay, UtilisationRule,
};
pub use api_key::{
    IssuedApiKey, generate_public_key, hash_api_key, looks_like_api_key, looks_like_public_key,
};
pub use call_settings::{CallSettings, CallSettingsPatch, CallerId, Whisper};
pub use call_status::{CallStatus, Outcome};
pub use ga4::{DEFAULT_EVENT_NAME, Ga4Patch, Ga4Settings, parse_client_id};
pub use http_url::parse_http_url;
pub use money::{from_micros, to_micros};
pub use outcome::{
    CallOutcome, DEFAULT_DISPOSITIONS, LeadRule, NewConversion, OutcomePatch, SPAM,
    parse_dispositions,
};
pub use phone::{ForwardCountries, PhoneNumber};
pub use pool::{ExhaustionPolicy, NewPool, PoolKind, PoolMatch};
pub use pool::{PoolInput, parse_cost, parse_numbers};
pub use property::{Domain, NewProperty, PropertyInput};
pub use twilio_account::TwilioAccountSid;

/// A rejected input, naming the field so the API can say exactly what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Trims a required text field and enforces a length limit.
pub fn required_text(field: &str, value: &str, max: usize) -> Result<String, FieldError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(value.to_owned())
}

/// Reads a field that may be absent (leave it), null (clear it) or a value (set it): use with
/// `#[serde(default, deserialize_with = "present")]` on an `Option<Option<T>>`.
pub fn present<'de, T: serde::Deserialize<'de>, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}
