//! How a property's calls ring through, and how long after a visit a call is still credited to it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::FieldError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CallSettings {
    /// Seconds the business's phone rings before the call counts as missed (5-600; default 20).
    pub ring_timeout_s: u32,
    /// Record calls from the moment they are answered, both parties on separate channels.
    pub record: bool,
    /// Whose number the business sees: `caller` (default) or `tracking_number`.
    pub caller_id: CallerId,
    /// What the business hears before the caller is connected: `off` (default), `channel`, `campaign`.
    pub whisper: Whisper,
    /// A call up to this many hours after the visitor's lease ended is still credited to the
    /// visit, with confidence `expired` (1-720; default 24).
    pub attribution_window_hours: u32,
}

impl Default for CallSettings {
    fn default() -> Self {
        Self {
            ring_timeout_s: 20,
            record: false,
            caller_id: CallerId::Caller,
            whisper: Whisper::Off,
            attribution_window_hours: 24,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallerId {
    Caller,
    TrackingNumber,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Whisper {
    Off,
    Channel,
    Campaign,
}

/// Changes to call settings, as a client sends them; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallSettingsPatch {
    #[schema(minimum = 5, maximum = 600)]
    pub ring_timeout_s: Option<i64>,
    pub record: Option<bool>,
    pub caller_id: Option<CallerId>,
    pub whisper: Option<Whisper>,
    #[schema(minimum = 1, maximum = 720)]
    pub attribution_window_hours: Option<i64>,
}

impl CallSettings {
    /// Applies a patch; `field` prefixes the names in errors (e.g. `call_settings`).
    pub fn patched(&self, patch: &CallSettingsPatch, field: &str) -> Result<Self, FieldError> {
        let in_range = |name: &str, v: i64, lo: i64, hi: i64| {
            if (lo..=hi).contains(&v) {
                Ok(v as u32)
            } else {
                Err(FieldError::new(
                    format!("{field}.{name}"),
                    format!("must be between {lo} and {hi}"),
                ))
            }
        };
        let mut next = self.clone();
        if let Some(v) = patch.ring_timeout_s {
            next.ring_timeout_s = in_range("ring_timeout_s", v, 5, 600)?;
        }
        if let Some(v) = patch.attribution_window_hours {
            next.attribution_window_hours = in_range("attribution_window_hours", v, 1, 720)?;
        }
        if let Some(v) = patch.record {
            next.record = v;
        }
        if let Some(v) = patch.caller_id {
            next.caller_id = v;
        }
        if let Some(v) = patch.whisper {
            next.whisper = v;
        }
        Ok(next)
    }

    /// Twilio's `record` attribute.
    pub fn twilio_record(&self) -> &'static str {
        if self.record {
            "record-from-answer-dual"
        } else {
            "do-not-record"
        }
    }

    pub fn caller_id_db(&self) -> &'static str {
        match self.caller_id {
            CallerId::Caller => "caller",
            CallerId::TrackingNumber => "tracking_number",
        }
    }

    pub fn whisper_db(&self) -> &'static str {
        match self.whisper {
            Whisper::Off => "off",
            Whisper::Channel => "channel",
            Whisper::Campaign => "campaign",
        }
    }

    /// From the stored columns; unknown values fall back to the defaults.
    pub fn from_db(ring: i64, record: &str, caller_id: &str, whisper: &str, window: i64) -> Self {
        Self {
            ring_timeout_s: ring.clamp(5, 600) as u32,
            record: record != "do-not-record",
            caller_id: if caller_id == "tracking_number" {
                CallerId::TrackingNumber
            } else {
                CallerId::Caller
            },
            whisper: match whisper {
                "channel" => Whisper::Channel,
                "campaign" => Whisper::Campaign,
                _ => Whisper::Off,
            },
            attribution_window_hours: window.clamp(1, 720) as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_changes_only_what_it_names_and_checks_ranges() {
        let base = CallSettings::default();
        let next = base
            .patched(
                &CallSettingsPatch {
                    record: Some(true),
                    ring_timeout_s: Some(30),
                    ..Default::default()
                },
                "call_settings",
            )
            .unwrap();
        assert_eq!(next.ring_timeout_s, 30);
        assert_eq!(next.twilio_record(), "record-from-answer-dual");
        assert_eq!(next.attribution_window_hours, 24);
        let err = base
            .patched(
                &CallSettingsPatch {
                    ring_timeout_s: Some(2),
                    ..Default::default()
                },
                "call_settings",
            )
            .unwrap_err();
        assert_eq!(err.field, "call_settings.ring_timeout_s");
        let stored = CallSettings::from_db(
            30,
            "record-from-answer-dual",
            "tracking_number",
            "campaign",
            48,
        );
        assert_eq!(stored.caller_id, CallerId::TrackingNumber);
        assert_eq!(stored.whisper, Whisper::Campaign);
        assert!(stored.record);
    }
}
