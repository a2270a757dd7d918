//! Business hours in a property's time zone: whether it is open now, and how many minutes of
//! opening time passed between two moments (nights and weekends are not quiet time).

use chrono::{Datelike, Duration, NaiveDate, NaiveTime};
use chrono_tz::Tz;

use crate::domain::{BusinessHours, TimeOfDay};
use crate::reports::{local_day, local_instant};
use crate::time::Millis;

/// How many days back quiet time is counted; a longer quiet stretch counts as this long.
const MAX_DAYS: u32 = 400;

/// When the business opens and closes on `day` (UTC milliseconds), if it opens at all.
fn opening(hours: &BusinessHours, tz: Tz, day: NaiveDate) -> Option<(Millis, Millis)> {
    if !hours.is_open_on(day.weekday()) {
        return None;
    }
    let at = |t: TimeOfDay| {
        local_instant(
            tz,
            day.and_time(NaiveTime::MIN) + Duration::minutes(i64::from(t.minutes())),
        )
    };
    Some((at(hours.from), at(hours.to)))
}

pub fn is_open(hours: &BusinessHours, tz: Tz, at: Millis) -> bool {
    opening(hours, tz, local_day(tz, at)).is_some_and(|(open, close)| open <= at && at < close)
}

/// Whole minutes of opening time in `[from, to)`.
pub fn open_minutes_between(hours: &BusinessHours, tz: Tz, from: Millis, to: Millis) -> i64 {
    if to <= from {
        return 0;
    }
    let first = local_day(tz, from);
    let mut day = local_day(tz, to);
    let mut total = 0;
    for _ in 0..MAX_DAYS {
        if let Some((open, close)) = opening(hours, tz, day) {
            total += (close.min(to) - open.max(from)).max(0);
        }
        match day.pred_opt() {
            Some(previous) if day > first => day = previous,
            _ => break,
        }
    }
    total / 60_000
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    const NY: Tz = chrono_tz::America::New_York;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> Millis {
        NY.with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn open_on_weekdays_from_nine_to_five() {
        let hours = BusinessHours::default();
        // 2026-06-01 is a Monday.
        assert!(!is_open(&hours, NY, at(2026, 6, 1, 8, 59)));
        assert!(is_open(&hours, NY, at(2026, 6, 1, 9, 0)));
        assert!(is_open(&hours, NY, at(2026, 6, 1, 16, 59)));
        assert!(!is_open(&hours, NY, at(2026, 6, 1, 17, 0)));
        assert!(!is_open(&hours, NY, at(2026, 6, 6, 12, 0)), "Saturday");
    }

    #[test]
    fn nights_and_weekends_are_not_counted() {
        let hours = BusinessHours::default();
        // Friday 16:30 to Monday 09:30: half an hour each side.
        let minutes =
            open_minutes_between(&hours, NY, at(2026, 6, 5, 16, 30), at(2026, 6, 8, 9, 30));
        assert_eq!(minutes, 60);
        assert_eq!(
            open_minutes_between(&hours, NY, at(2026, 6, 1, 10, 0), at(2026, 6, 1, 10, 45)),
            45
        );
        assert_eq!(
            open_minutes_between(&hours, NY, at(2026, 6, 1, 10, 0), at(2026, 6, 1, 9, 0)),
            0
        );
        // A whole week: five days of eight hours.
        assert_eq!(
            open_minutes_between(&hours, NY, at(2026, 6, 1, 0, 0), at(2026, 6, 8, 0, 0)),
            5 * 8 * 60
        );
    }

    #[test]
    fn a_daylight_saving_change_keeps_local_hours() {
        let hours = BusinessHours::default();
        // 2026-03-08 (Sunday) clocks go forward in New York; Monday's hours are still 9 to 5.
        assert_eq!(
            open_minutes_between(&hours, NY, at(2026, 3, 6, 0, 0), at(2026, 3, 10, 0, 0)),
            2 * 8 * 60
        );
        assert!(is_open(&hours, NY, at(2026, 3, 9, 9, 0)));
    }
}
