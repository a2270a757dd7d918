//! The generic call endpoint, for providers other than Twilio: a JSON event signed with
//! HMAC-SHA256 of the raw body under the account's calls secret
//! (`X-Switchboard-Signature: sha256=<hex>`), in the same call model as Twilio's webhooks.

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;
use utoipa::ToSchema;

use crate::domain::{CallStatus, FieldError, Outcome, PhoneNumber};
use crate::storage::{CallEvent, CallProgress, NewCall, RouteRow};
use crate::time::Millis;

type HmacSha256 = Hmac<Sha256>;

/// `sha256=<hex>` of the body under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` is the body's signature under `secret` (constant-time).
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(presented) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    mac.verify_slice(&presented).is_ok()
}

/// `call.started`: the provider asks where to send a call. `call.updated`: later news.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
pub enum EventKind {
    #[serde(rename = "call.started")]
    Started,
    #[serde(rename = "call.updated")]
    Updated,
}

/// One call event from a provider.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenericEvent {
    pub event: EventKind,
    /// The provider's name (`telnyx`, `plivo`, ...): with `call_id`, it identifies the call.
    #[schema(pattern = r"^\s*[A-Za-z0-9_-]{1,32}\s*$")]
    pub provider: String,
    /// The provider's id for the call.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub call_id: String,
    /// The tracking number called.
    #[schema(value_type = crate::http::formats::PhoneNumber)]
    pub to: String,
    /// The caller's number (empty or absent when withheld).
    pub from: Option<String>,
    /// When it happened (RFC 3339); defaults to when the event arrived.
    pub at: Option<DateTime<Utc>>,
    /// `queued`, `ringing`, `in-progress`, `completed`, `busy`, `no-answer`, `failed`,
    /// `canceled` (Twilio's spellings such as `initiated` and `answered` are taken too).
    pub status: Option<String>,
    /// Whether the business answered (when known).
    pub answered: Option<bool>,
    pub answered_at: Option<DateTime<Utc>>,
    #[schema(minimum = 0, maximum = 604_800)]
    pub duration_s: Option<i64>,
    #[schema(minimum = 0, maximum = 604_800)]
    pub talk_s: Option<i64>,
    /// An `http(s)` URL.
    #[schema(format = "uri", pattern = r"^[Hh][Tt][Tt][Pp][Ss]?://")]
    pub recording_url: Option<String>,
    #[schema(minimum = 0, maximum = 604_800)]
    pub recording_duration_s: Option<i64>,
    /// Orders a call's events; higher is newer.
    pub sequence: Option<i64>,
    #[serde(default)]
    pub caller: CallerFields,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallerFields {
    pub name: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub zip: Option<String>,
    pub country: Option<String>,
}

/// Just enough of the body to find the account whose secret signs it.
#[derive(Deserialize)]
pub struct Addressed {
    pub to: String,
}

impl GenericEvent {
    /// Checks the fields and turns the event into the call model.
    pub fn into_call_event(self, route: &RouteRow, now: Millis) -> Result<CallEvent, FieldError> {
        let provider = self.provider.trim().to_ascii_lowercase();
        if provider.is_empty()
            || provider.len() > 32
            || !provider
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(FieldError::new(
                "provider",
                "must be 1-32 letters, digits, '-' or '_'",
            ));
        }
        if provider == super::twilio::PROVIDER {
            return Err(FieldError::new(
                "provider",
                "Twilio posts to /v1/telephony/twilio/voice",
            ));
        }
        let call_id = self.call_id.trim();
        if call_id.is_empty() || call_id.len() > 200 {
            return Err(FieldError::new("call_id", "must be 1-200 characters"));
        }
        let status = match self.status.as_deref() {
            Some(s) => Some(CallStatus::parse(s).ok_or_else(|| {
                FieldError::new(
                    "status",
                    "must be one of queued, ringing, in-progress, completed, busy, no-answer, failed, canceled",
                )
            })?),
            None => None,
        };
        for (field, v) in [
            ("duration_s", self.duration_s),
            ("talk_s", self.talk_s),
            ("recording_duration_s", self.recording_duration_s),
        ] {
            if v.is_some_and(|v| !(0..=86_400 * 7).contains(&v)) {
                return Err(FieldError::new(field, "must be between 0 and 604800"));
            }
        }
        if let Some(u) = &self.recording_url
            && !matches!(
                url::Url::parse(u).map(|u| u.scheme().to_owned()).as_deref(),
                Ok("https" | "http")
            )
        {
            return Err(FieldError::new("recording_url", "must be an http(s) URL"));
        }
        let at = self.at.map_or(now, |t| t.timestamp_millis());
        let caller_number = match self.from.as_deref().filter(|f| !f.trim().is_empty()) {
            Some(f) => Some(PhoneNumber::parse("from", f)?.to_string()),
            None => None,
        };
        let call = NewCall {
            account_id: route.account_id.clone(),
            property_id: route.property_id.clone(),
            pool_id: Some(route.pool_id.clone()),
            provider,
            provider_call_id: call_id.to_owned(),
            tracking_number: route.number.clone(),
            caller_number,
            caller_name: self.caller.name,
            caller_city: self.caller.city,
            caller_state: self.caller.state,
            caller_zip: self.caller.zip,
            caller_country: self.caller.country,
            status: status.unwrap_or(CallStatus::Ringing).as_str().to_owned(),
            started_at: at,
        };
        Ok(match self.event {
            EventKind::Started => CallEvent::Started(NewCall {
                // Attribution looks at when the service heard of the call.
                started_at: now,
                ..call
            }),
            EventKind::Updated => {
                let answered_at = self.answered_at.map(|t| t.timestamp_millis()).or((status
                    == Some(CallStatus::InProgress)
                    || self.answered == Some(true))
                .then_some(at));
                let outcome = match (self.answered, status) {
                    (Some(true), _) | (_, Some(CallStatus::InProgress)) => Some(Outcome::Answered),
                    (Some(false), _) => Some(Outcome::Missed),
                    (None, Some(s)) if s.is_final() && s != CallStatus::Completed => {
                        Some(Outcome::Missed)
                    }
                    _ => None,
                };
                CallEvent::Progress(CallProgress {
                    call,
                    at,
                    sequence: self.sequence,
                    status: status.map(|s| s.as_str().to_owned()),
                    duration_s: self.duration_s,
                    outcome,
                    answered_at: if outcome == Some(Outcome::Answered) {
                        answered_at
                    } else {
                        None
                    },
                    talk_s: self.talk_s,
                    dial_status: None,
                    recording_url: self.recording_url,
                    recording_sid: None,
                    recording_duration_s: self.recording_duration_s,
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_every_byte_of_the_body() {
        let body = br#"{"event":"call.started"}"#;
        let sig = sign(b"secret", body);
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
        assert!(verify(b"secret", body, &sig));
        assert!(!verify(b"secret", br#"{"event":"call.started" }"#, &sig));
        assert!(!verify(b"other", body, &sig));
        assert!(!verify(b"secret", body, "sha1=00"));
        assert!(!verify(b"secret", body, "sha256=zz"));
        // The HMAC-SHA256 test vector of RFC 4231, case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

/// Fuzzing with proptest: arbitrary bytes and arbitrary JSON in the event's shape never panic;
/// an accepted event is in the call model's terms; the signature covers every byte.
#[cfg(test)]
mod properties {
    use super::*;
    use crate::telephony::test_route as route;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    const CASES: u32 = 2_000;

    /// Any JSON value a field could be sent as.
    fn json_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            prop::sample::select(vec![
                "call.started",
                "call.updated",
                "twilio",
                "Telnyx",
                "in-progress",
                "busy",
                "+14155550100",
                "+1 (415) 555-0111",
                "2026-12-01T13:00:00Z",
                "9999-12-31T23:59:59Z",
                "https://rec.example/1",
                "javascript:alert(1)",
            ])
            .prop_map(Value::from),
            any::<String>().prop_map(Value::from),
        ]
    }

    fn event() -> impl Strategy<Value = Value> {
        let fields = prop::sample::subsequence(
            vec![
                "event",
                "provider",
                "call_id",
                "to",
                "from",
                "at",
                "status",
                "answered",
                "answered_at",
                "duration_s",
                "talk_s",
                "recording_url",
                "recording_duration_s",
                "sequence",
            ],
            0..=14,
        );
        (fields, prop::collection::vec(json_value(), 14)).prop_map(|(names, values)| {
            let object: serde_json::Map<String, Value> = names
                .into_iter()
                .zip(values)
                .map(|(n, v)| (n.to_owned(), v))
                .collect();
            Value::Object(object)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(CASES))]

        #[test]
        fn any_bytes_are_parsed_or_refused(body in prop::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(e) = serde_json::from_slice::<GenericEvent>(&body) {
                let _ = e.into_call_event(&route(), 0);
            }
            let _ = serde_json::from_slice::<Addressed>(&body);
        }

        #[test]
        fn an_accepted_event_is_in_the_call_model(event in event()) {
            let Ok(e) = serde_json::from_value::<GenericEvent>(event) else {
                return Ok(());
            };
            let Ok(call_event) = e.into_call_event(&route(), 0) else {
                return Ok(());
            };
            let call = match &call_event {
                CallEvent::Started(c) => c,
                CallEvent::Progress(p) => &p.call,
            };
            prop_assert!((1..=32).contains(&call.provider.len()));
            prop_assert_eq!(&call.provider, &call.provider.to_ascii_lowercase());
            prop_assert!(!call.provider_call_id.is_empty());
            prop_assert!(CallStatus::parse(&call.status).is_some());
            if let Some(n) = &call.caller_number {
                prop_assert!(n.starts_with('+'));
            }
        }

        #[test]
        fn a_signature_covers_every_byte(
            body in prop::collection::vec(any::<u8>(), 0..256),
            at in any::<usize>(),
            to in any::<u8>(),
            in_header in any::<bool>(),
        ) {
            let signature = sign(b"secret", &body);
            prop_assert!(verify(b"secret", &body, &signature));
            if in_header {
                let mut forged = signature.clone().into_bytes();
                let i = at % forged.len();
                prop_assume!(forged[i] != to);
                forged[i] = to;
                let forged = String::from_utf8_lossy(&forged).into_owned();
                // Hex is read in either case: `A` for `a` is the same signature.
                let same = forged.starts_with("sha256=") && forged.eq_ignore_ascii_case(&signature);
                prop_assert_eq!(verify(b"secret", &body, &forged), same, "{}", forged);
            } else {
                prop_assume!(!body.is_empty());
                let mut changed = body.clone();
                let i = at % changed.len();
                prop_assume!(changed[i] != to);
                changed[i] = to;
                prop_assert!(!verify(b"secret", &changed, &signature));
            }
        }
    }
}
