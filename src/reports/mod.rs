//! Attribution and call-centre reports, read from rollups per (property, local day, dimension).
//!
//! - [`rollup`] turns a day's raw calls and sessions into rollup rows, and keeps them fresh;
//! - [`costs`] shares ad spend, number rental and operating cost out to report rows;
//! - [`report`] sums the rollups of a range into rows and totals, JSON or CSV;
//! - [`google_ads`] is the offline conversions file Google Ads imports;
//! - [`days`] and [`csv`] are what they all share: local days, and spreadsheet-safe CSV.

pub mod costs;
pub mod csv;
pub mod days;
pub mod google_ads;
pub mod report;
pub mod rollup;

pub use days::{
    DayRange, day_bounds, day_string, days_in_month, local_day, local_instant, property_tz,
    start_of_day, weekday_name,
};
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

#[cfg(test)]
mod tests {
    use super::*;

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
