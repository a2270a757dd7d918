//! Attribution and call-centre reports, read from rollups per (property, local day, dimension).
//!
//! - [`rollup`] turns a day's raw calls and sessions into rollup rows, and keeps them fresh;
//! - [`costs`] shares ad spend, number rental and operating cost out to report rows;
//! - [`report`] sums the rollups of a range into rows and totals, JSON or CSV.

pub mod costs;
pub mod csv;
pub mod report;
pub mod rollup;

use chrono::{Datelike, NaiveDate, TimeZone};
use chrono_tz::Tz;

use crate::time::Millis;

pub use rollup::Rollups;

/// What a report groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    Channel,
    Source,
    Medium,
    Campaign,
    Keyword,
    LandingPage,
    VisitorCity,
    CallerCity,
    Pool,
    Confidence,
    Day,
    Weekday,
    Hour,
}

impl Dimension {
    pub const ALL: [Dimension; 13] = [
        Dimension::Channel,
        Dimension::Source,
        Dimension::Medium,
        Dimension::Campaign,
        Dimension::Keyword,
        Dimension::LandingPage,
        Dimension::VisitorCity,
        Dimension::CallerCity,
        Dimension::Pool,
        Dimension::Confidence,
        Dimension::Day,
        Dimension::Weekday,
        Dimension::Hour,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Channel => "channel",
            Dimension::Source => "source",
            Dimension::Medium => "medium",
            Dimension::Campaign => "campaign",
            Dimension::Keyword => "keyword",
            Dimension::LandingPage => "landing_page",
            Dimension::VisitorCity => "visitor_city",
            Dimension::CallerCity => "caller_city",
            Dimension::Pool => "pool",
            Dimension::Confidence => "confidence",
            Dimension::Day => "day",
            Dimension::Weekday => "weekday",
            Dimension::Hour => "hour",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Dimension::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// The rollup dimension holding this one's rows, and whether rows are summed per day.
    /// Day and weekday are read from the hour rows (every call is in exactly one).
    pub fn stored(self) -> (&'static str, bool) {
        match self {
            Dimension::Day | Dimension::Weekday => ("hour", true),
            other => (other.as_str(), false),
        }
    }

    /// Whether sessions have a value under this dimension (a caller's city and a call's
    /// confidence belong to calls only).
    pub fn has_sessions(self) -> bool {
        !matches!(self, Dimension::CallerCity | Dimension::Confidence)
    }
}

/// The value shown for a missing one (a direct visit has no campaign).
pub const NOT_SET: &str = "(not set)";

/// Parses a property's time zone (checked when the property was made; UTC if it went bad).
pub fn zone(name: &str) -> Tz {
    name.parse().unwrap_or(Tz::UTC)
}

/// The local day a moment falls in.
pub fn local_day(tz: Tz, at: Millis) -> NaiveDate {
    tz.timestamp_millis_opt(at)
        .single()
        .map(|t| t.date_naive())
        .unwrap_or_default()
}

/// When a local day begins, in UTC milliseconds (a day that starts inside a DST gap begins at
/// its first existing minute).
pub fn day_start(tz: Tz, day: NaiveDate) -> Millis {
    let midnight = day.and_hms_opt(0, 0, 0).expect("midnight exists");
    for minutes in 0..=180 {
        let local = midnight + chrono::Duration::minutes(minutes);
        if let Some(t) = tz.from_local_datetime(&local).earliest() {
            return t.timestamp_millis();
        }
    }
    tz.from_utc_datetime(&midnight).timestamp_millis()
}

/// `[start, end)` of a local day in UTC milliseconds.
pub fn day_bounds(tz: Tz, day: NaiveDate) -> (Millis, Millis) {
    (
        day_start(tz, day),
        day_start(tz, day.succ_opt().expect("a day after")),
    )
}

pub fn day_string(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

pub fn weekday_name(day: NaiveDate) -> &'static str {
    match day.weekday() {
        chrono::Weekday::Mon => "Monday",
        chrono::Weekday::Tue => "Tuesday",
        chrono::Weekday::Wed => "Wednesday",
        chrono::Weekday::Thu => "Thursday",
        chrono::Weekday::Fri => "Friday",
        chrono::Weekday::Sat => "Saturday",
        chrono::Weekday::Sun => "Sunday",
    }
}

/// Days in the month a day is in (monthly amounts are prorated per day of their month).
pub fn days_in_month(day: NaiveDate) -> u32 {
    let first = day.with_day(1).expect("first of month");
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    }
    .expect("a next month");
    (next - first).num_days() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_days_follow_the_zone_and_dst() {
        let ny = zone("America/New_York");
        let d = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap(); // DST starts: a 23-hour day
        let (a, b) = day_bounds(ny, d);
        assert_eq!(b - a, 23 * 3_600_000);
        assert_eq!(local_day(ny, a), d);
        assert_eq!(local_day(ny, b - 1), d);
        assert_eq!(local_day(ny, b), d.succ_opt().unwrap());
        assert_eq!(
            days_in_month(NaiveDate::from_ymd_opt(2028, 2, 10).unwrap()),
            29
        );
        assert_eq!(
            days_in_month(NaiveDate::from_ymd_opt(2026, 12, 31).unwrap()),
            31
        );
        assert_eq!(
            weekday_name(NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()),
            "Tuesday"
        );
    }

    #[test]
    fn dimensions_parse_and_day_reads_hours() {
        for d in Dimension::ALL {
            assert_eq!(Dimension::parse(d.as_str()), Some(d));
        }
        assert_eq!(Dimension::parse("country"), None);
        assert_eq!(Dimension::Weekday.stored(), ("hour", true));
        assert_eq!(Dimension::Channel.stored(), ("channel", false));
    }
}
