use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{FieldError, PhoneNumber, required_text};
use crate::dni::classify::Channel;

/// How a pool hands out numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PoolKind {
    /// One number per live visitor session (leased), so a call maps back to one visit.
    Session,
    /// One static number for every visitor the pool matches (no lease).
    Source,
}

impl PoolKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolKind::Session => "session",
            PoolKind::Source => "source",
        }
    }

    pub fn from_db(s: &str) -> Self {
        match s {
            "source" => PoolKind::Source,
            _ => PoolKind::Session,
        }
    }
}

/// What a session pool does when every number is leased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExhaustionPolicy {
    /// Give the number idle longest and mark both sessions as sharing it.
    Share,
    /// Show the pool's overflow number, so ambiguous calls stay apart.
    Overflow,
    /// Show the property's default number.
    Default,
}

impl ExhaustionPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ExhaustionPolicy::Share => "share",
            ExhaustionPolicy::Overflow => "overflow",
            ExhaustionPolicy::Default => "default",
        }
    }

    pub fn from_db(s: &str) -> Self {
        match s {
            "overflow" => ExhaustionPolicy::Overflow,
            "default" => ExhaustionPolicy::Default,
            _ => ExhaustionPolicy::Share,
        }
    }
}

/// Which visits a pool serves. Empty fields match anything; an all-empty match is the default pool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolMatch {
    /// A GA4 default channel group (`Paid Search`, `Organic Social`, ...; any case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 200)]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 200)]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 200)]
    pub medium: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 200)]
    pub campaign: Option<String>,
}

impl PoolMatch {
    /// Lowercases and trims each criterion, dropping empty ones (matching is case-insensitive).
    fn normalised(self) -> Result<Self, FieldError> {
        fn norm(field: &str, v: Option<String>) -> Result<Option<String>, FieldError> {
            match v.map(|s| s.trim().to_lowercase()) {
                Some(s) if s.is_empty() => Ok(None),
                Some(s) if s.chars().count() > 200 => {
                    Err(FieldError::new(field, "must be at most 200 characters"))
                }
                other => Ok(other),
            }
        }
        let channel = match norm("match.channel", self.channel)? {
            None => None,
            Some(c) => Some(
                Channel::parse(&c)
                    .ok_or_else(|| {
                        let names: Vec<&str> = Channel::ALL.iter().map(|c| c.as_str()).collect();
                        FieldError::new(
                            "match.channel",
                            format!("`{c}` is not a channel; use one of: {}", names.join(", ")),
                        )
                    })?
                    .as_str()
                    .to_lowercase(),
            ),
        };
        Ok(Self {
            channel,
            source: norm("match.source", self.source)?,
            medium: norm("match.medium", self.medium)?,
            campaign: norm("match.campaign", self.campaign)?,
        })
    }

    /// How many criteria are set: the most specific matching pool wins.
    pub fn specificity(&self) -> usize {
        [&self.channel, &self.source, &self.medium, &self.campaign]
            .iter()
            .filter(|c| c.is_some())
            .count()
    }
}

#[derive(Debug, Clone)]
pub struct NewPool {
    pub name: String,
    pub kind: PoolKind,
    pub matcher: PoolMatch,
    pub lease_minutes: i64,
    pub exhaustion: ExhaustionPolicy,
    pub overflow_number: Option<PhoneNumber>,
    pub numbers: Vec<PhoneNumber>,
    pub monthly_cost: Option<f64>,
}

pub struct PoolInput<'a> {
    pub name: &'a str,
    pub kind: PoolKind,
    pub matcher: Option<PoolMatch>,
    pub lease_minutes: Option<i64>,
    pub exhaustion: Option<ExhaustionPolicy>,
    pub overflow_number: Option<&'a str>,
    pub numbers: &'a [String],
    pub monthly_cost: Option<f64>,
}

/// A pool larger than this is a mistake in the request, not a real purchase.
pub const MAX_NUMBERS_PER_REQUEST: usize = 1000;

impl NewPool {
    pub fn parse(input: PoolInput<'_>) -> Result<Self, FieldError> {
        let name = required_text("name", input.name, 200)?;
        let matcher = input.matcher.unwrap_or_default().normalised()?;
        let lease_minutes = input.lease_minutes.unwrap_or(30);
        if !(1..=24 * 60).contains(&lease_minutes) {
            return Err(FieldError::new(
                "lease_minutes",
                "must be between 1 and 1440 minutes",
            ));
        }
        let exhaustion = input.exhaustion.unwrap_or(ExhaustionPolicy::Share);
        let overflow_number = input
            .overflow_number
            .map(|n| PhoneNumber::parse_destination("overflow_number", n))
            .transpose()?;
        if exhaustion == ExhaustionPolicy::Overflow && overflow_number.is_none() {
            return Err(FieldError::new(
                "overflow_number",
                "is required when exhaustion is `overflow`",
            ));
        }
        let numbers = parse_numbers("numbers", input.numbers)?;
        if input.kind == PoolKind::Source && numbers.len() > 1 {
            return Err(FieldError::new(
                "numbers",
                "a `source` pool has exactly one static number",
            ));
        }
        if let Some(n) = &overflow_number
            && numbers.contains(n)
        {
            return Err(FieldError::new(
                "overflow_number",
                "must not be one of the pool's own numbers",
            ));
        }
        let monthly_cost = parse_cost(input.monthly_cost)?;
        Ok(Self {
            name,
            kind: input.kind,
            matcher,
            lease_minutes,
            exhaustion,
            overflow_number,
            numbers,
            monthly_cost,
        })
    }
}

/// Parses a list of tracking numbers, rejecting duplicates inside the list itself.
pub fn parse_numbers(field: &str, input: &[String]) -> Result<Vec<PhoneNumber>, FieldError> {
    if input.len() > MAX_NUMBERS_PER_REQUEST {
        return Err(FieldError::new(
            field,
            format!("must list at most {MAX_NUMBERS_PER_REQUEST} numbers per request"),
        ));
    }
    let mut numbers: Vec<PhoneNumber> = Vec::with_capacity(input.len());
    for (i, raw) in input.iter().enumerate() {
        let n = PhoneNumber::parse(&format!("{field}[{i}]"), raw)?;
        if numbers.contains(&n) {
            return Err(FieldError::new(
                format!("{field}[{i}]"),
                format!("{n} is listed twice"),
            ));
        }
        numbers.push(n);
    }
    Ok(numbers)
}

pub fn parse_cost(cost: Option<f64>) -> Result<Option<f64>, FieldError> {
    match cost {
        Some(c) if !c.is_finite() || !(0.0..=1_000_000.0).contains(&c) => Err(FieldError::new(
            "monthly_cost",
            "must be an amount between 0 and 1000000",
        )),
        other => Ok(other),
    }
}
