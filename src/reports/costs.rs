//! What calls cost: ad spend (uploaded per day, source, medium and campaign), the rental of
//! tracking numbers (each number's monthly cost prorated per day it was live), minutes (a rate
//! per started minute, counted in the rollups) and the property's operating cost.
//!
//! A cost lands on the report row it names when it names one (ad spend by source, medium,
//! campaign, channel and day; a number's rental by pool, channel and day). Otherwise it is shared
//! out over the rows in proportion to the calls of its channel (or of all channels, for a pool
//! that serves every channel), so that rows always add up to the total; a cost with no call to
//! share it over lands on `(unallocated)`.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use chrono_tz::Tz;

use super::{Dimension, NOT_SET, day_bounds, day_string, days_in_month, weekday_name};
use crate::dni::classify::{Channel, channel_for};
use crate::domain::{PoolKind, to_micros};
use crate::storage::{AdCostRow, Pool};

pub const UNALLOCATED: &str = "(unallocated)";

#[derive(Debug, Clone, PartialEq)]
pub enum CostKind {
    AdSpend {
        source: String,
        medium: String,
        campaign: String,
    },
    Numbers {
        pool_id: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct CostItem {
    pub day: NaiveDate,
    pub kind: CostKind,
    /// The channel the cost is for, if it is for one.
    pub channel: Option<String>,
    pub micros: f64,
}

/// Ad spend rows as cost items, each in the channel GA4's rules give its source and medium.
pub fn ad_spend(rows: &[AdCostRow]) -> Vec<CostItem> {
    rows.iter()
        .filter_map(|r| {
            let day = NaiveDate::parse_from_str(&r.day, "%Y-%m-%d").ok()?;
            let campaign = Some(r.campaign.as_str()).filter(|c| !c.is_empty());
            Some(CostItem {
                day,
                channel: Some(
                    channel_for(&r.source, &r.medium, campaign)
                        .as_str()
                        .to_owned(),
                ),
                kind: CostKind::AdSpend {
                    source: r.source.clone(),
                    medium: r.medium.clone(),
                    campaign: r.campaign.clone(),
                },
                micros: r.amount_micros as f64,
            })
        })
        .collect()
}

/// The channel a pool's numbers serve: its channel rule, or a source pool's source and medium;
/// None for a pool that serves every channel.
pub fn pool_channel(pool: &Pool) -> Option<String> {
    if let Some(c) = pool.matcher.channel.as_deref().and_then(Channel::parse) {
        return Some(c.as_str().to_owned());
    }
    match (&pool.kind, &pool.matcher.source, &pool.matcher.medium) {
        (PoolKind::Source, Some(source), Some(medium)) => Some(
            channel_for(source, medium, pool.matcher.campaign.as_deref())
                .as_str()
                .to_owned(),
        ),
        _ => None,
    }
}

/// Each number's monthly cost, prorated over the days of `days` it was live (for part of the
/// day at least), as one item per pool and day.
pub fn number_rental(pools: &[Pool], tz: Tz, days: &[NaiveDate]) -> Vec<CostItem> {
    let mut items = Vec::new();
    for pool in pools {
        let channel = pool_channel(pool);
        for &day in days {
            let (start, end) = day_bounds(tz, day);
            let micros: f64 = pool
                .numbers
                .iter()
                .filter(|n| n.added_at.timestamp_millis() < end)
                .filter(|n| n.retired_at.is_none_or(|r| r.timestamp_millis() > start))
                .filter_map(|n| n.monthly_cost)
                .map(|monthly| to_micros(monthly) as f64 / f64::from(days_in_month(day)))
                .sum();
            if micros > 0.0 {
                items.push(CostItem {
                    day,
                    kind: CostKind::Numbers {
                        pool_id: pool.id.clone(),
                    },
                    channel: channel.clone(),
                    micros,
                });
            }
        }
    }
    items
}

/// A monthly amount prorated over `days`.
pub fn prorated(monthly_micros: i64, days: &[NaiveDate]) -> f64 {
    days.iter()
        .map(|d| monthly_micros as f64 / f64::from(days_in_month(*d)))
        .sum()
}

fn blank_as_not_set(v: &str) -> String {
    if v.trim().is_empty() {
        NOT_SET.to_owned()
    } else {
        v.to_owned()
    }
}

/// The row a cost names under a dimension, if it names one.
fn direct_value(item: &CostItem, dimension: Dimension) -> Option<String> {
    match (dimension, &item.kind) {
        (Dimension::Day, _) => Some(day_string(item.day)),
        (Dimension::Weekday, _) => Some(weekday_name(item.day).to_owned()),
        (Dimension::Channel, _) => item.channel.clone(),
        (Dimension::Source, CostKind::AdSpend { source, .. }) => Some(blank_as_not_set(source)),
        (Dimension::Medium, CostKind::AdSpend { medium, .. }) => Some(blank_as_not_set(medium)),
        (Dimension::Campaign, CostKind::AdSpend { campaign, .. }) => {
            Some(blank_as_not_set(campaign))
        }
        (Dimension::Pool, CostKind::Numbers { pool_id }) => Some(pool_id.clone()),
        _ => None,
    }
}

/// Calls per report value, by channel: what costs without a row of their own are shared by.
#[derive(Debug, Default)]
pub struct CallWeights {
    by_channel: BTreeMap<String, BTreeMap<String, i64>>,
    all: BTreeMap<String, i64>,
}

impl CallWeights {
    pub fn add(&mut self, value: &str, channel: &str, calls: i64) {
        if calls <= 0 {
            return;
        }
        *self
            .by_channel
            .entry(channel.to_owned())
            .or_default()
            .entry(value.to_owned())
            .or_default() += calls;
        *self.all.entry(value.to_owned()).or_default() += calls;
    }

    /// Shares `micros` over the values in proportion to their calls (of `channel`, or of all).
    fn share(&self, channel: Option<&str>, micros: f64, into: &mut BTreeMap<String, f64>) {
        let weights = match channel {
            Some(c) => self.by_channel.get(c),
            None => Some(&self.all),
        };
        let total: i64 = weights.map_or(0, |w| w.values().sum());
        match weights {
            Some(w) if total > 0 => {
                for (value, calls) in w {
                    *into.entry(value.clone()).or_default() +=
                        micros * *calls as f64 / total as f64;
                }
            }
            _ => *into.entry(UNALLOCATED.to_owned()).or_default() += micros,
        }
    }

    /// Shares `micros` over every value by its calls.
    pub fn share_all(&self, micros: f64) -> BTreeMap<String, f64> {
        let mut into = BTreeMap::new();
        if micros != 0.0 {
            self.share(None, micros, &mut into);
        }
        into
    }
}

/// The cost on each report row, in micro-units (fractions kept until the figures are rounded).
pub fn allocate(
    items: &[CostItem],
    dimension: Dimension,
    weights: &CallWeights,
) -> BTreeMap<String, f64> {
    let mut rows = BTreeMap::new();
    for item in items {
        match direct_value(item, dimension) {
            Some(value) => *rows.entry(value).or_default() += item.micros,
            None => {
                // A pool for every channel shares its rental by all calls, even under channel.
                let channel = if dimension == Dimension::Channel {
                    None
                } else {
                    item.channel.as_deref()
                };
                weights.share(channel, item.micros, &mut rows)
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    #[test]
    fn costs_land_on_their_row_or_are_shared_by_their_channels_calls() {
        let items = ad_spend(&[
            AdCostRow {
                day: "2026-11-02".into(),
                source: "google".into(),
                medium: "cpc".into(),
                campaign: "spring".into(),
                amount_micros: 90_000_000,
            },
            AdCostRow {
                day: "2026-11-02".into(),
                source: "facebook".into(),
                medium: "paid_social".into(),
                campaign: "".into(),
                amount_micros: 10_000_000,
            },
        ]);
        assert_eq!(items[0].channel.as_deref(), Some("Paid Search"));
        assert_eq!(items[1].channel.as_deref(), Some("Paid Social"));
        let mut weights = CallWeights::default();
        weights.add("/a", "Paid Search", 2);
        weights.add("/b", "Paid Search", 1);
        weights.add("/b", "Organic Search", 5);

        let by_channel = allocate(&items, Dimension::Channel, &weights);
        assert_eq!(by_channel["Paid Search"], 90_000_000.0);
        assert_eq!(by_channel["Paid Social"], 10_000_000.0);
        let by_campaign = allocate(&items, Dimension::Campaign, &weights);
        assert_eq!(by_campaign[NOT_SET], 10_000_000.0);
        // Landing pages: Paid Search's spend by its calls (2:1); Paid Social had none.
        let by_page = allocate(&items, Dimension::LandingPage, &weights);
        assert_eq!(by_page["/a"], 60_000_000.0);
        assert_eq!(by_page["/b"], 30_000_000.0);
        assert_eq!(by_page[UNALLOCATED], 10_000_000.0);
        assert_eq!(
            allocate(&items, Dimension::Weekday, &weights)["Monday"],
            100_000_000.0
        );
    }

    #[test]
    fn monthly_amounts_are_prorated_per_day_of_their_month() {
        let days: Vec<_> = (1..=30).map(day).collect();
        assert!((prorated(30_000_000, &days) - 30_000_000.0).abs() < 1e-6);
        assert!((prorated(30_000_000, &days[..3]) - 3_000_000.0).abs() < 1e-6);
    }
}
