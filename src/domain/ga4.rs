//! GA4 (Google Analytics 4): a property's Measurement Protocol settings, and the visitor's
//! Google Analytics client id that the snippet reads from the `_ga` cookie.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;

use super::{FieldError, parse_http_url};

pub const DEFAULT_ENDPOINT: &str = "https://www.google-analytics.com/mp/collect";
pub const DEFAULT_EVENT_NAME: &str = "phone_call";

/// The longest client id kept: GA's are `<random>.<seconds>`, about 20 characters.
const MAX_CLIENT_ID_LEN: usize = 40;

/// Where a property's completed calls are sent as GA4 events. The API secret is never shown:
/// the API says only that it is set.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Ga4Settings {
    /// The web stream's measurement id, `G-XXXXXXXXXX`.
    pub measurement_id: String,
    /// The stream's Measurement Protocol API secret (write-only).
    #[serde(rename = "api_secret_set", serialize_with = "is_set")]
    #[schema(value_type = bool)]
    pub api_secret: SecretString,
    /// Where events are POSTed (default `https://www.google-analytics.com/mp/collect`).
    pub endpoint: String,
    /// The event's name (default `phone_call`).
    pub event_name: String,
}

fn is_set<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bool(!secret.expose_secret().is_empty())
}

/// Changes to a property's GA4 settings; absent fields stay as they are. A property without
/// GA4 needs `measurement_id` and `api_secret`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Ga4Patch {
    /// `G-` and 4-20 letters or digits.
    #[schema(pattern = r"^\s*[Gg]-[A-Za-z0-9]{4,20}\s*$")]
    pub measurement_id: Option<String>,
    /// The stream's Measurement Protocol API secret: 8-128 visible ASCII characters.
    #[schema(value_type = Option<String>, pattern = r"^\s*[!-~]{8,128}\s*$")]
    pub api_secret: Option<SecretString>,
    /// Where events are POSTed (default Google's): an http(s) URL on the public internet.
    #[schema(value_type = Option<crate::http::formats::HttpUrl>)]
    pub endpoint: Option<String>,
    /// A letter, then letters, digits or `_` (at most 40), not reserved by Google.
    #[schema(pattern = r"^\s*[A-Za-z][A-Za-z0-9_]{0,39}\s*$")]
    pub event_name: Option<String>,
}

impl Ga4Settings {
    /// `current` (if any) with `patch` applied, checked.
    pub fn patched(current: Option<&Ga4Settings>, patch: &Ga4Patch) -> Result<Self, FieldError> {
        let measurement_id = match (&patch.measurement_id, current) {
            (Some(id), _) => parse_measurement_id(id)?,
            (None, Some(c)) => c.measurement_id.clone(),
            (None, None) => return Err(FieldError::new("ga4.measurement_id", "is required")),
        };
        let api_secret = match (&patch.api_secret, current) {
            (Some(secret), _) => parse_api_secret(secret)?,
            (None, Some(c)) => c.api_secret.clone(),
            (None, None) => return Err(FieldError::new("ga4.api_secret", "is required")),
        };
        let endpoint = match (&patch.endpoint, current) {
            (Some(url), _) => parse_http_url("ga4.endpoint", url)?.to_string(),
            (None, Some(c)) => c.endpoint.clone(),
            (None, None) => DEFAULT_ENDPOINT.to_owned(),
        };
        let event_name = match (&patch.event_name, current) {
            (Some(name), _) => parse_event_name(name)?,
            (None, Some(c)) => c.event_name.clone(),
            (None, None) => DEFAULT_EVENT_NAME.to_owned(),
        };
        Ok(Self {
            measurement_id,
            api_secret,
            endpoint,
            event_name,
        })
    }

    /// From the stored columns: none unless both the measurement id and the secret are there.
    pub fn from_db(
        measurement_id: Option<String>,
        api_secret: Option<String>,
        endpoint: Option<String>,
        event_name: Option<String>,
    ) -> Option<Self> {
        Some(Self {
            measurement_id: measurement_id?,
            api_secret: SecretString::from(api_secret?),
            endpoint: endpoint.unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned()),
            event_name: event_name.unwrap_or_else(|| DEFAULT_EVENT_NAME.to_owned()),
        })
    }
}

fn parse_measurement_id(raw: &str) -> Result<String, FieldError> {
    let id = raw.trim().to_ascii_uppercase();
    let ok = id.strip_prefix("G-").is_some_and(|rest| {
        (4..=20).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    if !ok {
        return Err(FieldError::new(
            "ga4.measurement_id",
            "must be a GA4 measurement id such as G-ABC123DEF4 (Admin > Data streams)",
        ));
    }
    Ok(id)
}

/// Checked without ever echoing the secret in the error.
fn parse_api_secret(raw: &SecretString) -> Result<SecretString, FieldError> {
    let secret = raw.expose_secret().trim();
    if !(8..=128).contains(&secret.len()) || !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(FieldError::new(
            "ga4.api_secret",
            "must be the stream's Measurement Protocol API secret: 8-128 visible ASCII characters",
        ));
    }
    Ok(SecretString::from(secret.to_owned()))
}

/// GA4's rules for event names: a letter, then letters, digits and `_`, at most 40; not one
/// of the reserved prefixes or names.
fn parse_event_name(raw: &str) -> Result<String, FieldError> {
    const RESERVED_PREFIXES: [&str; 4] = ["_", "ga_", "google_", "firebase_"];
    const RESERVED: [&str; 8] = [
        "ad_click",
        "app_remove",
        "error",
        "first_open",
        "first_visit",
        "page_view",
        "session_start",
        "user_engagement",
    ];
    let name = raw.trim();
    let well_formed = name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let lower = name.to_ascii_lowercase();
    if !well_formed
        || RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p))
        || RESERVED.contains(&lower.as_str())
    {
        return Err(FieldError::new(
            "ga4.event_name",
            "must be a GA4 event name: a letter, then letters, digits or '_' (at most 40), \
             not reserved by Google (ga_, google_, firebase_, session_start, ...)",
        ));
    }
    Ok(name.to_owned())
}

/// The client id of a `_ga` cookie as the snippet sends it (`<random>.<seconds>`), or None
/// for anything else: a page may send what it likes, and a bad id only costs the GA4 event.
pub fn parse_client_id(raw: &str) -> Option<String> {
    let id = raw.trim();
    let (random, seconds) = id.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (id.len() <= MAX_CLIENT_ID_LEN && digits(random) && digits(seconds)).then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(json: &str) -> Ga4Patch {
        serde_json::from_str(json).unwrap()
    }

    fn configured() -> Ga4Settings {
        let new = r#"{"measurement_id":" g-abc123 ","api_secret":"s3cr3t-value"}"#;
        Ga4Settings::patched(None, &patch(new)).unwrap()
    }

    #[test]
    fn client_ids_are_two_runs_of_digits() {
        assert_eq!(
            parse_client_id("1234567890.1700000000").as_deref(),
            Some("1234567890.1700000000")
        );
        assert_eq!(parse_client_id(" 1.2 ").as_deref(), Some("1.2"));
        for bad in [
            "",
            "1234567890",
            "GA1.1.1234567890.1700000000",
            "1.2.3",
            "12a.34",
            ".34",
            "12.",
            "<script>.1",
            &format!("{}.1", "9".repeat(40)),
        ] {
            assert_eq!(parse_client_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn new_settings_need_an_id_and_a_secret_and_get_the_defaults() {
        let s = configured();
        assert_eq!(s.measurement_id, "G-ABC123");
        assert_eq!(s.api_secret.expose_secret(), "s3cr3t-value");
        assert_eq!(s.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(s.event_name, DEFAULT_EVENT_NAME);
        let shown = serde_json::to_value(&s).unwrap();
        assert_eq!(
            shown,
            serde_json::json!({"measurement_id": "G-ABC123", "api_secret_set": true,
                "endpoint": DEFAULT_ENDPOINT, "event_name": "phone_call"})
        );
        assert!(!format!("{s:?}").contains("s3cr3t"));

        let err = Ga4Settings::patched(None, &patch(r#"{"measurement_id":"G-ABC123"}"#));
        assert_eq!(err.unwrap_err().field, "ga4.api_secret");
        let err = Ga4Settings::patched(None, &patch(r#"{"api_secret":"s3cr3t-value"}"#));
        assert_eq!(err.unwrap_err().field, "ga4.measurement_id");
    }

    #[test]
    fn a_patch_keeps_what_it_does_not_name_and_checks_what_it_does() {
        let base = configured();
        let next = Ga4Settings::patched(
            Some(&base),
            &patch(r#"{"event_name":"call_completed","endpoint":"http://127.0.0.1:9/mp"}"#),
        )
        .unwrap();
        assert_eq!(next.api_secret.expose_secret(), "s3cr3t-value");
        assert_eq!(next.event_name, "call_completed");
        assert_eq!(next.endpoint, "http://127.0.0.1:9/mp");
        for (body, field) in [
            (r#"{"measurement_id":"UA-1234-1"}"#, "ga4.measurement_id"),
            (r#"{"measurement_id":"G-"}"#, "ga4.measurement_id"),
            (r#"{"api_secret":"short"}"#, "ga4.api_secret"),
            (r#"{"api_secret":"has a space in it"}"#, "ga4.api_secret"),
            (r#"{"endpoint":"ftp://x.example/"}"#, "ga4.endpoint"),
            (r#"{"endpoint":"collect"}"#, "ga4.endpoint"),
            (r#"{"event_name":"1call"}"#, "ga4.event_name"),
            (r#"{"event_name":"ga_call"}"#, "ga4.event_name"),
            (r#"{"event_name":"page_view"}"#, "ga4.event_name"),
            (r#"{"event_name":"phone-call"}"#, "ga4.event_name"),
        ] {
            let err = Ga4Settings::patched(Some(&base), &patch(body)).unwrap_err();
            assert_eq!(err.field, field, "{body}");
            assert!(!err.message.contains("has a space"), "no secret in errors");
        }
        assert!(serde_json::from_str::<Ga4Patch>(r#"{"secret":"x"}"#).is_err());
    }
}
