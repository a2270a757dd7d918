//! Report ranges are whole days in the property's time zone, and times are shown in it.

use std::str::FromStr;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

use crate::domain::FieldError;
use crate::time::{Millis, to_datetime};

/// `from` to `to`, both days included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl DayRange {
    /// Both days are required, as `YYYY-MM-DD`, and `to` may not come before `from`.
    pub fn parse(from: Option<&str>, to: Option<&str>) -> Result<Self, FieldError> {
        let range = Self {
            from: parse_day("from", from)?,
            to: parse_day("to", to)?,
        };
        if range.to < range.from {
            return Err(FieldError::new("to", "must not be before `from`"));
        }
        Ok(range)
    }

    /// The range as `[start, end)` in UTC milliseconds: from the start of `from` to the start
    /// of the day after `to`, in `tz`.
    pub fn millis(&self, tz: Tz) -> (Millis, Millis) {
        let after = self.to.succ_opt().unwrap_or(self.to);
        (start_of_day(tz, self.from), start_of_day(tz, after))
    }
}

fn parse_day(field: &str, value: Option<&str>) -> Result<NaiveDate, FieldError> {
    let value = value.map(str::trim).unwrap_or_default();
    if value.is_empty() {
        return Err(FieldError::new(
            field,
            "is required: a day such as 2026-11-01",
        ));
    }
    // `YYYY-MM-DD` exactly: chrono alone would take `+12345-01-01` or `2026-1-5`.
    let shaped = value.len() == 10
        && value.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    let parsed = shaped
        .then(|| NaiveDate::parse_from_str(value, "%Y-%m-%d").ok())
        .flatten();
    parsed.ok_or_else(|| {
        FieldError::new(
            field,
            format!("`{value}` is not a day such as 2026-11-01 (YYYY-MM-DD)"),
        )
    })
}

/// When `day` begins in `tz`. Where midnight falls in a daylight-saving gap, the day begins
/// at the first local time that exists.
pub fn start_of_day(tz: Tz, day: NaiveDate) -> Millis {
    local_instant(tz, day.and_hms_opt(0, 0, 0).expect("midnight exists"))
}

/// The moment a local time happens in `tz`: the first of two in a repeated hour, and the first
/// local time that exists after one that falls in a daylight-saving gap.
pub fn local_instant(tz: Tz, local: NaiveDateTime) -> Millis {
    (0..=16)
        .find_map(|quarter| {
            tz.from_local_datetime(&(local + Duration::minutes(15 * quarter)))
                .earliest()
        })
        .map_or_else(
            || local.and_utc().timestamp_millis(),
            |t| t.timestamp_millis(),
        )
}

/// `yyyy-MM-dd HH:mm:ss` in `tz`.
pub fn local_time(tz: Tz, at: Millis) -> String {
    to_datetime(at)
        .with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// The local day a moment falls in.
pub fn local_day(tz: Tz, at: Millis) -> NaiveDate {
    tz.timestamp_millis_opt(at)
        .single()
        .map(|t| t.date_naive())
        .unwrap_or_default()
}

/// `[start, end)` of a local day in UTC milliseconds.
pub fn day_bounds(tz: Tz, day: NaiveDate) -> (Millis, Millis) {
    (
        start_of_day(tz, day),
        start_of_day(tz, day.succ_opt().expect("a day after")),
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

/// A property's time zone (checked when it was set; UTC should a stored one not parse).
pub fn property_tz(name: &str) -> Tz {
    Tz::from_str(name).unwrap_or(Tz::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn ranges_are_whole_local_days_with_to_included() {
        let range = DayRange::parse(Some("2026-03-08"), Some("2026-03-08")).unwrap();
        let ny = property_tz("America/New_York");
        let (start, end) = range.millis(ny);
        // 2026-03-08 is the spring-forward day in New York: 23 hours long.
        assert_eq!(local_time(ny, start), "2026-03-08 00:00:00");
        assert_eq!(local_time(ny, end), "2026-03-09 00:00:00");
        assert_eq!(end - start, 23 * 3_600_000);
        assert_eq!(
            start,
            day("2026-03-08")
                .and_hms_opt(5, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp_millis()
        );
    }

    #[test]
    fn a_day_whose_midnight_does_not_exist_starts_at_the_first_time_that_does() {
        // Chile moved its clocks from 00:00 to 01:00 on 2022-09-11.
        let santiago = property_tz("America/Santiago");
        let start = start_of_day(santiago, day("2022-09-11"));
        assert_eq!(local_time(santiago, start), "2022-09-11 01:00:00");
    }

    #[test]
    fn local_days_follow_the_zone_and_months_their_length() {
        let ny = property_tz("America/New_York");
        let d = day("2026-03-08");
        let (a, b) = day_bounds(ny, d);
        assert_eq!(local_day(ny, a), d);
        assert_eq!(local_day(ny, b - 1), d);
        assert_eq!(local_day(ny, b), day("2026-03-09"));
        assert_eq!(days_in_month(day("2028-02-10")), 29);
        assert_eq!(days_in_month(day("2026-12-31")), 31);
        assert_eq!(weekday_name(day("2026-12-01")), "Tuesday");
        assert_eq!(day_string(d), "2026-03-08");
    }

    #[test]
    fn bad_days_name_their_field() {
        for (from, to, field) in [
            (None, Some("2026-01-01"), "from"),
            (Some("2026-01-01"), None, "to"),
            (Some("2026-1-1"), Some("2026-01-02"), "from"),
            (Some("2026-02-30"), Some("2026-03-01"), "from"),
            (Some("2026-01-01"), Some("tomorrow"), "to"),
            (Some("+12026-01-01"), Some("2026-01-01"), "from"),
            (Some("2026-01-02"), Some("2026-01-01"), "to"),
        ] {
            assert_eq!(
                DayRange::parse(from, to).unwrap_err().field,
                field,
                "{from:?} {to:?}"
            );
        }
        assert!(DayRange::parse(Some(" 2026-01-01 "), Some("2026-01-01")).is_ok());
    }
}
