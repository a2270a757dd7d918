//! A property's alert rules, as `PUT /v1/properties/{id}/alerts` sets them: every field is
//! optional, and one left out takes its default (the body replaces the settings).

use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;

use super::FieldError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AlertSettings {
    pub pool_utilisation: UtilisationRule,
    pub exhaustion: ExhaustionRule,
    pub missed_calls: MissedCallsRule,
    pub no_calls: NoCallsRule,
}

/// A session pool's leased numbers reach `threshold` of its live numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UtilisationRule {
    pub enabled: bool,
    /// Share of the pool's live numbers leased at once (0-1, default 0.75).
    #[schema(value_type = f64)]
    pub threshold: Share,
}

/// A session pool found no free number for a visitor (any exhaustion event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ExhaustionRule {
    pub enabled: bool,
}

/// Missed calls reach `threshold` of the last hour's ended calls, counted once there are
/// `min_calls` of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MissedCallsRule {
    pub enabled: bool,
    /// 0-1, default 0.3.
    #[schema(value_type = f64)]
    pub threshold: Share,
    /// Ended calls in the hour before the rate counts (default 5).
    pub min_calls: u32,
}

/// No call at all for `after_minutes` of business hours: a broken number or snippet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct NoCallsRule {
    pub enabled: bool,
    /// Minutes of business hours without a call (default 120).
    pub after_minutes: u32,
    pub business_hours: BusinessHours,
}

/// Opening hours in the property's time zone, the same on each of `days`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BusinessHours {
    /// Default `["mon","tue","wed","thu","fri"]`.
    pub days: Vec<Day>,
    /// `HH:MM`, default `09:00`.
    #[schema(value_type = String)]
    pub from: TimeOfDay,
    /// `HH:MM` after `from` (`24:00` is midnight at the end of the day), default `17:00`.
    #[schema(value_type = String)]
    pub to: TimeOfDay,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    pub fn weekday(self) -> chrono::Weekday {
        use chrono::Weekday as W;
        match self {
            Day::Mon => W::Mon,
            Day::Tue => W::Tue,
            Day::Wed => W::Wed,
            Day::Thu => W::Thu,
            Day::Fri => W::Fri,
            Day::Sat => W::Sat,
            Day::Sun => W::Sun,
        }
    }
}

/// A share from 0 to 1, kept in parts per million so it is stored and compared exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Share(u32);

impl Share {
    pub const ONE: u32 = 1_000_000;

    pub const fn from_ppm(ppm: u32) -> Self {
        Self(ppm)
    }

    pub fn ppm(self) -> u32 {
        self.0
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / f64::from(Self::ONE)
    }

    /// A share above 0 and at most 1, to six decimal places.
    pub fn parse(field: &str, value: f64) -> Result<Self, FieldError> {
        if !(value.is_finite() && value > 0.0 && value <= 1.0) {
            return Err(FieldError::new(
                field,
                "must be a share above 0 and at most 1, such as 0.75",
            ));
        }
        Ok(Self(
            ((value * f64::from(Self::ONE)).round() as u32).clamp(1, Self::ONE),
        ))
    }

    /// Whether `part / whole` reaches this share (never for an empty whole).
    pub fn reached_by(self, part: u64, whole: u64) -> bool {
        whole > 0
            && u128::from(part) * u128::from(Self::ONE) >= u128::from(self.0) * u128::from(whole)
    }
}

impl Serialize for Share {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_f64())
    }
}

/// Minutes since local midnight, 0 to 1440 (`24:00`, the end of the day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    pub const fn from_minutes(minutes: u16) -> Self {
        Self(minutes)
    }

    pub fn minutes(self) -> u16 {
        self.0
    }

    /// `HH:MM`, two digits each, from `00:00` to `24:00`.
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldError> {
        let bad = || {
            FieldError::new(
                field,
                format!("`{value}` is not a time such as 09:00 (HH:MM)"),
            )
        };
        let (h, m) = value.trim().split_once(':').ok_or_else(bad)?;
        let digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(h) || !digits(m) {
            return Err(bad());
        }
        let h: u16 = h.parse().map_err(|_| bad())?;
        let m: u16 = m.parse().map_err(|_| bad())?;
        if m > 59 || h > 24 || (h == 24 && m > 0) {
            return Err(bad());
        }
        Ok(Self(h * 60 + m))
    }
}

impl std::fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl Serialize for TimeOfDay {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            pool_utilisation: UtilisationRule {
                enabled: true,
                threshold: Share(750_000),
            },
            exhaustion: ExhaustionRule { enabled: true },
            missed_calls: MissedCallsRule {
                enabled: true,
                threshold: Share(300_000),
                min_calls: 5,
            },
            no_calls: NoCallsRule {
                enabled: false,
                after_minutes: 120,
                business_hours: BusinessHours::default(),
            },
        }
    }
}

impl Default for BusinessHours {
    fn default() -> Self {
        Self {
            days: vec![Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri],
            from: TimeOfDay(9 * 60),
            to: TimeOfDay(17 * 60),
        }
    }
}

/// The settings as a client sends them; anything left out (or `null`) takes its default.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertSettingsInput {
    #[serde(default)]
    pub pool_utilisation: Option<UtilisationInput>,
    #[serde(default)]
    pub exhaustion: Option<ExhaustionInput>,
    #[serde(default)]
    pub missed_calls: Option<MissedCallsInput>,
    #[serde(default)]
    pub no_calls: Option<NoCallsInput>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UtilisationInput {
    #[serde(default)]
    pub enabled: Option<bool>,
    /// A share above 0 and at most 1.
    #[serde(default)]
    #[schema(exclusive_minimum = 0, maximum = 1)]
    pub threshold: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExhaustionInput {
    #[serde(default)]
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MissedCallsInput {
    #[serde(default)]
    pub enabled: Option<bool>,
    /// A share above 0 and at most 1.
    #[serde(default)]
    #[schema(exclusive_minimum = 0, maximum = 1)]
    pub threshold: Option<f64>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10_000)]
    pub min_calls: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoCallsInput {
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Minutes without a call, at most a week.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10_080)]
    pub after_minutes: Option<i64>,
    #[serde(default)]
    pub business_hours: Option<BusinessHoursInput>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BusinessHoursInput {
    #[serde(default)]
    #[schema(min_items = 1)]
    pub days: Option<Vec<Day>>,
    /// `HH:MM`, before `24:00`.
    #[serde(default)]
    #[schema(pattern = r"^\s*([01][0-9]|2[0-3]):[0-5][0-9]\s*$")]
    pub from: Option<String>,
    /// `HH:MM` up to `24:00`, after `from`.
    #[serde(default)]
    #[schema(pattern = r"^\s*(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)\s*$")]
    pub to: Option<String>,
}

/// The longest quiet time a `no_calls` rule may wait for: a week of minutes.
pub const MAX_QUIET_MINUTES: i64 = 7 * 24 * 60;

fn count(field: &str, value: Option<i64>, default: u32, max: i64) -> Result<u32, FieldError> {
    match value {
        None => Ok(default),
        Some(v) if (1..=max).contains(&v) => Ok(v as u32),
        Some(_) => Err(FieldError::new(
            field,
            format!("must be between 1 and {max}"),
        )),
    }
}

fn share(field: &str, value: Option<f64>, default: Share) -> Result<Share, FieldError> {
    value.map_or(Ok(default), |v| Share::parse(field, v))
}

impl AlertSettings {
    pub fn parse(input: &AlertSettingsInput) -> Result<Self, FieldError> {
        let d = Self::default();
        let u = input.pool_utilisation.clone().unwrap_or_default();
        let e = input.exhaustion.clone().unwrap_or_default();
        let m = input.missed_calls.clone().unwrap_or_default();
        let n = input.no_calls.clone().unwrap_or_default();
        let hours = n.business_hours.clone().unwrap_or_default();
        Ok(Self {
            pool_utilisation: UtilisationRule {
                enabled: u.enabled.unwrap_or(d.pool_utilisation.enabled),
                threshold: share(
                    "pool_utilisation.threshold",
                    u.threshold,
                    d.pool_utilisation.threshold,
                )?,
            },
            exhaustion: ExhaustionRule {
                enabled: e.enabled.unwrap_or(d.exhaustion.enabled),
            },
            missed_calls: MissedCallsRule {
                enabled: m.enabled.unwrap_or(d.missed_calls.enabled),
                threshold: share(
                    "missed_calls.threshold",
                    m.threshold,
                    d.missed_calls.threshold,
                )?,
                min_calls: count(
                    "missed_calls.min_calls",
                    m.min_calls,
                    d.missed_calls.min_calls,
                    10_000,
                )?,
            },
            no_calls: NoCallsRule {
                enabled: n.enabled.unwrap_or(d.no_calls.enabled),
                after_minutes: count(
                    "no_calls.after_minutes",
                    n.after_minutes,
                    d.no_calls.after_minutes,
                    MAX_QUIET_MINUTES,
                )?,
                business_hours: BusinessHours::parse(&hours)?,
            },
        })
    }
}

impl BusinessHours {
    fn parse(input: &BusinessHoursInput) -> Result<Self, FieldError> {
        const FIELD: &str = "no_calls.business_hours";
        let d = Self::default();
        let mut days = input.days.clone().unwrap_or(d.days);
        if days.is_empty() {
            return Err(FieldError::new(
                format!("{FIELD}.days"),
                "must name at least one day (mon, tue, wed, thu, fri, sat, sun)",
            ));
        }
        days.sort();
        days.dedup();
        let time = |name: &str, value: Option<&str>, default: TimeOfDay| match value {
            None => Ok(default),
            Some(v) => TimeOfDay::parse(&format!("{FIELD}.{name}"), v),
        };
        let from = time("from", input.from.as_deref(), d.from)?;
        let to = time("to", input.to.as_deref(), d.to)?;
        if from.0 >= 24 * 60 {
            return Err(FieldError::new(
                format!("{FIELD}.from"),
                "must be before 24:00",
            ));
        }
        if to <= from {
            return Err(FieldError::new(
                format!("{FIELD}.to"),
                format!("must be after `from` ({from})"),
            ));
        }
        Ok(Self { days, from, to })
    }

    /// Rebuilds stored hours; anything unreadable falls back to the default.
    pub fn from_db(days: &str, from: &str, to: &str) -> Self {
        let d = Self::default();
        let days: Vec<Day> = serde_json::from_str(days).unwrap_or(d.days);
        Self::parse(&BusinessHoursInput {
            days: Some(days),
            from: Some(from.to_owned()),
            to: Some(to.to_owned()),
        })
        .unwrap_or_default()
    }

    pub fn days_db(&self) -> String {
        serde_json::to_string(&self.days).expect("days serialise")
    }

    pub fn is_open_on(&self, weekday: chrono::Weekday) -> bool {
        self.days.iter().any(|d| d.weekday() == weekday)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: serde_json::Value) -> Result<AlertSettings, FieldError> {
        AlertSettings::parse(&serde_json::from_value(body).unwrap())
    }

    #[test]
    fn an_empty_body_is_the_defaults() {
        let s = parse(serde_json::json!({})).unwrap();
        assert_eq!(s, AlertSettings::default());
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            serde_json::json!({
                "pool_utilisation": {"enabled": true, "threshold": 0.75},
                "exhaustion": {"enabled": true},
                "missed_calls": {"enabled": true, "threshold": 0.3, "min_calls": 5},
                "no_calls": {"enabled": false, "after_minutes": 120, "business_hours": {
                    "days": ["mon", "tue", "wed", "thu", "fri"], "from": "09:00", "to": "17:00"}}
            })
        );
    }

    #[test]
    fn fields_left_out_of_a_rule_keep_their_defaults() {
        let s = parse(serde_json::json!({
            "pool_utilisation": {"threshold": 0.9},
            "no_calls": {"enabled": true, "business_hours": {"days": ["sat", "mon", "mon"], "to": "24:00"}}
        }))
        .unwrap();
        assert!(s.pool_utilisation.enabled);
        assert_eq!(s.pool_utilisation.threshold, Share::from_ppm(900_000));
        assert_eq!(s.no_calls.after_minutes, 120);
        assert_eq!(s.no_calls.business_hours.days, [Day::Mon, Day::Sat]);
        assert_eq!(s.no_calls.business_hours.from.to_string(), "09:00");
        assert_eq!(s.no_calls.business_hours.to.to_string(), "24:00");
    }

    #[test]
    fn bad_values_name_their_field() {
        for (body, field) in [
            (
                serde_json::json!({"pool_utilisation": {"threshold": 0}}),
                "pool_utilisation.threshold",
            ),
            (
                serde_json::json!({"pool_utilisation": {"threshold": 1.5}}),
                "pool_utilisation.threshold",
            ),
            (
                serde_json::json!({"missed_calls": {"threshold": -0.1}}),
                "missed_calls.threshold",
            ),
            (
                serde_json::json!({"missed_calls": {"min_calls": 0}}),
                "missed_calls.min_calls",
            ),
            (
                serde_json::json!({"no_calls": {"after_minutes": 100000}}),
                "no_calls.after_minutes",
            ),
            (
                serde_json::json!({"no_calls": {"business_hours": {"days": []}}}),
                "no_calls.business_hours.days",
            ),
            (
                serde_json::json!({"no_calls": {"business_hours": {"from": "9:00"}}}),
                "no_calls.business_hours.from",
            ),
            (
                serde_json::json!({"no_calls": {"business_hours": {"from": "24:00", "to": "24:00"}}}),
                "no_calls.business_hours.from",
            ),
            (
                serde_json::json!({"no_calls": {"business_hours": {"to": "25:00"}}}),
                "no_calls.business_hours.to",
            ),
            (
                serde_json::json!({"no_calls": {"business_hours": {"from": "18:00"}}}),
                "no_calls.business_hours.to",
            ),
        ] {
            assert_eq!(parse(body.clone()).unwrap_err().field, field, "{body}");
        }
    }

    #[test]
    fn shares_compare_exactly() {
        let t = Share::parse("t", 0.75).unwrap();
        assert!(t.reached_by(3, 4));
        assert!(!t.reached_by(2, 4));
        assert!(!t.reached_by(0, 0));
        assert!(Share::parse("t", 0.3).unwrap().reached_by(3, 10));
        assert_eq!(Share::parse("t", 0.3).unwrap().as_f64(), 0.3);
    }

    #[test]
    fn stored_hours_round_trip() {
        let h = BusinessHours::default();
        assert_eq!(
            BusinessHours::from_db(&h.days_db(), &h.from.to_string(), &h.to.to_string()),
            h
        );
    }
}
