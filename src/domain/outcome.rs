//! What a call led to, as the business reports it: conversions with a value, a disposition from
//! the property's list, a lead score, a CSAT score and tags.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{FieldError, present, required_text, to_micros};
use crate::time::Millis;

/// The dispositions a property starts with.
pub const DEFAULT_DISPOSITIONS: [&str; 6] = [
    "appointment",
    "sale",
    "resolved",
    "escalated",
    "follow_up",
    "spam",
];

/// The disposition whose calls are left out of the money figures.
pub const SPAM: &str = "spam";

#[derive(Debug, Clone, PartialEq)]
pub struct NewConversion {
    pub name: String,
    pub value_micros: i64,
    pub at: Option<Millis>,
}

impl NewConversion {
    /// `currency`, when given, must be the property's: revenue is summed in one currency.
    pub fn parse(
        name: &str,
        value: f64,
        currency: Option<&str>,
        at: Option<DateTime<Utc>>,
        property_currency: &str,
    ) -> Result<Self, FieldError> {
        let name = required_text("name", name, 100)?;
        if !value.is_finite() || !(0.0..=1e12).contains(&value) {
            return Err(FieldError::new("value", "must be a number from 0 to 10^12"));
        }
        if let Some(c) = currency
            && !c.trim().eq_ignore_ascii_case(property_currency)
        {
            return Err(FieldError::new(
                "currency",
                format!("must be the property's currency, {property_currency}"),
            ));
        }
        Ok(Self {
            name,
            value_micros: to_micros(value),
            at: at.map(|t| t.timestamp_millis()),
        })
    }
}

/// When a completed call counts as a qualified lead.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadRule {
    /// Seconds of conversation (answered calls) at least (default 60, as Google Ads).
    #[schema(maximum = 86_400)]
    pub min_duration_s: u32,
    /// Only a first-time caller's call qualifies.
    pub first_time_only: bool,
}

impl Default for LeadRule {
    fn default() -> Self {
        Self {
            min_duration_s: 60,
            first_time_only: false,
        }
    }
}

impl LeadRule {
    pub fn check(self) -> Result<Self, FieldError> {
        if self.min_duration_s > 86_400 {
            return Err(FieldError::new(
                "lead_rule.min_duration_s",
                "must be at most 86400",
            ));
        }
        Ok(self)
    }

    /// Whether an answered call of `talk_s` seconds by a first-time caller (or not) qualifies.
    pub fn qualifies(&self, answered: bool, talk_s: i64, first_time: bool) -> bool {
        answered
            && talk_s >= i64::from(self.min_duration_s)
            && (first_time || !self.first_time_only)
    }
}

/// Changes to a call's outcome; absent fields stay, `null` clears.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomePatch {
    /// One of the property's dispositions; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<crate::http::formats::Disposition>)]
    pub disposition: Option<Option<String>>,
    /// 0-100; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 100)]
    pub lead_score: Option<Option<i64>>,
    /// Customer satisfaction, 1-5; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 5)]
    pub csat: Option<Option<i64>>,
    /// Free labels (at most 20, each 1-50 characters); replaces the call's tags.
    #[serde(default)]
    #[schema(value_type = Option<Vec<crate::http::formats::Tag>>, max_items = 20)]
    pub tags: Option<Vec<String>>,
}

/// A call's outcome after a patch, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallOutcome {
    pub disposition: Option<String>,
    pub lead_score: Option<i64>,
    pub csat: Option<i64>,
    pub tags: Vec<String>,
}

impl CallOutcome {
    pub fn patched(&self, p: &OutcomePatch, dispositions: &[String]) -> Result<Self, FieldError> {
        let mut next = self.clone();
        if let Some(d) = &p.disposition {
            next.disposition = match d {
                None => None,
                Some(d) => {
                    let d = d.trim().to_ascii_lowercase();
                    if !dispositions.contains(&d) {
                        return Err(FieldError::new(
                            "disposition",
                            format!(
                                "must be one of the property's dispositions: {}",
                                dispositions.join(", ")
                            ),
                        ));
                    }
                    Some(d)
                }
            };
        }
        if let Some(s) = p.lead_score {
            if s.is_some_and(|s| !(0..=100).contains(&s)) {
                return Err(FieldError::new("lead_score", "must be between 0 and 100"));
            }
            next.lead_score = s;
        }
        if let Some(s) = p.csat {
            if s.is_some_and(|s| !(1..=5).contains(&s)) {
                return Err(FieldError::new("csat", "must be between 1 and 5"));
            }
            next.csat = s;
        }
        if let Some(tags) = &p.tags {
            if tags.len() > 20 {
                return Err(FieldError::new("tags", "must hold at most 20 tags"));
            }
            let mut clean: Vec<String> = Vec::with_capacity(tags.len());
            for (i, t) in tags.iter().enumerate() {
                let t = required_text(&format!("tags[{i}]"), t, 50)?;
                if !clean.contains(&t) {
                    clean.push(t);
                }
            }
            next.tags = clean;
        }
        Ok(next)
    }
}

/// Checks a property's list of dispositions (lowercase words, `spam` among them or not).
pub fn parse_dispositions(list: &[String]) -> Result<Vec<String>, FieldError> {
    if list.is_empty() || list.len() > 50 {
        return Err(FieldError::new(
            "dispositions",
            "must list 1 to 50 dispositions",
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for (i, d) in list.iter().enumerate() {
        let d = d.trim().to_ascii_lowercase();
        if d.is_empty()
            || d.len() > 40
            || !d
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(FieldError::new(
                format!("dispositions[{i}]"),
                "must be a word of letters, digits, '_' or '-' (at most 40)",
            ));
        }
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Vec<String> {
        DEFAULT_DISPOSITIONS
            .iter()
            .map(|d| (*d).to_owned())
            .collect()
    }

    #[test]
    fn conversions_need_a_name_a_sane_value_and_the_propertys_currency() {
        let c = NewConversion::parse(" sale ", 120.5, Some("usd"), None, "USD").unwrap();
        assert_eq!((c.name.as_str(), c.value_micros), ("sale", 120_500_000));
        assert_eq!(
            NewConversion::parse("", 1.0, None, None, "USD")
                .unwrap_err()
                .field,
            "name"
        );
        assert_eq!(
            NewConversion::parse("x", -1.0, None, None, "USD")
                .unwrap_err()
                .field,
            "value"
        );
        assert_eq!(
            NewConversion::parse("x", f64::NAN, None, None, "USD")
                .unwrap_err()
                .field,
            "value"
        );
        assert_eq!(
            NewConversion::parse("x", 1.0, Some("EUR"), None, "USD")
                .unwrap_err()
                .field,
            "currency"
        );
    }

    #[test]
    fn an_outcome_patch_sets_clears_and_checks() {
        let base = CallOutcome::default();
        let p: OutcomePatch =
            serde_json::from_str(r#"{"disposition":"Sale","csat":5,"tags":["vip","vip","new"]}"#)
                .unwrap();
        let next = base.patched(&p, &defaults()).unwrap();
        assert_eq!(next.disposition.as_deref(), Some("sale"));
        assert_eq!(next.csat, Some(5));
        assert_eq!(next.tags, ["vip", "new"]);
        let clear: OutcomePatch = serde_json::from_str(r#"{"csat":null}"#).unwrap();
        let cleared = next.patched(&clear, &defaults()).unwrap();
        assert_eq!(cleared.csat, None);
        assert_eq!(cleared.disposition.as_deref(), Some("sale"), "absent stays");
        for (body, field) in [
            (r#"{"disposition":"won"}"#, "disposition"),
            (r#"{"csat":6}"#, "csat"),
            (r#"{"lead_score":101}"#, "lead_score"),
            (r#"{"tags":[""]}"#, "tags[0]"),
        ] {
            let p: OutcomePatch = serde_json::from_str(body).unwrap();
            assert_eq!(
                base.patched(&p, &defaults()).unwrap_err().field,
                field,
                "{body}"
            );
        }
        assert!(parse_dispositions(&["Booked".into(), "spam".into()]).is_ok());
        assert!(parse_dispositions(&["no spaces".into()]).is_err());
    }
}
