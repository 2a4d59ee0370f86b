//! One calendar for the whole program: Unix seconds written as the dates
//! people read (log lines, evidence, the reviewers' page, release notes),
//! and the days mail writes turned back into Unix seconds. `jiff` does the
//! arithmetic (proleptic Gregorian, UTC); nothing here counts days by hand.
//!
//! A time outside what the calendar can write (years beyond ±9999, or a
//! `u64` beyond `i64`) is written as its number of seconds, `@<secs>`:
//! never a panic, never a wrong date.

use std::fmt::Display;

use jiff::civil::Date;
use jiff::Timestamp;

fn timestamp<T: TryInto<i64>>(secs: T) -> Option<Timestamp> {
    Timestamp::from_second(secs.try_into().ok()?).ok()
}

fn format<T: TryInto<i64> + Copy + Display>(secs: T, pattern: &str) -> String {
    match timestamp(secs) {
        Some(t) => t.strftime(pattern).to_string(),
        None => format!("@{secs}"),
    }
}

/// `2024-05-01T12:00:00Z`: log lines, `notify_command` placeholders.
pub fn iso_utc<T: TryInto<i64> + Copy + Display>(secs: T) -> String {
    format(secs, "%Y-%m-%dT%H:%M:%SZ")
}

/// `Wed, 02 Dec 2026 10:05:26 +0000`: a date for a mail header (RFC 5322).
pub fn rfc5322<T: TryInto<i64> + Copy + Display>(secs: T) -> String {
    format(secs, "%a, %d %b %Y %H:%M:%S +0000")
}

/// `2026-12-02 10:05 UTC`: the reviewers' page.
pub fn utc_minute<T: TryInto<i64> + Copy + Display>(secs: T) -> String {
    format(secs, "%Y-%m-%d %H:%M UTC")
}

/// `2026-12-02`: the day of a time, for evidence.
pub fn ymd<T: TryInto<i64> + Copy + Display>(secs: T) -> String {
    format(secs, "%Y-%m-%d")
}

/// Unix seconds at 00:00 UTC of the day `year-month-day`; None when there
/// is no such day (month 13, 30 February).
pub fn day_start(year: i64, month: i64, day: i64) -> Option<i64> {
    let date = Date::new(
        i16::try_from(year).ok()?,
        i8::try_from(month).ok()?,
        i8::try_from(day).ok()?,
    )
    .ok()?;
    let midnight = date.to_datetime(jiff::civil::Time::midnight());
    let t = jiff::tz::TimeZone::UTC.to_timestamp(midnight).ok()?;
    Some(t.as_second())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants_in_every_form() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_utc(951_782_400u64), "2000-02-29T00:00:00Z");
        assert_eq!(iso_utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc5322(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322(1_795_308_472), "Sun, 22 Nov 2026 00:47:52 +0000");
        assert_eq!(rfc5322(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(utc_minute(1_795_308_472), "2026-11-22 00:47 UTC");
        assert_eq!(ymd(1_551_657_600), "2019-03-04");
        assert_eq!(ymd(-1), "1969-12-31");
    }

    #[test]
    fn times_beyond_the_calendar_are_written_as_numbers() {
        assert_eq!(iso_utc(u64::MAX), format!("@{}", u64::MAX));
        assert_eq!(ymd(i64::MIN), format!("@{}", i64::MIN));
    }

    #[test]
    fn days_that_exist_and_days_that_do_not() {
        assert_eq!(day_start(1970, 1, 1), Some(0));
        assert_eq!(day_start(2019, 3, 4), Some(1_551_657_600));
        assert_eq!(day_start(2000, 2, 29), Some(951_782_400));
        assert_eq!(day_start(2019, 2, 29), None);
        assert_eq!(day_start(2019, 2, 30), None);
        assert_eq!(day_start(2019, 13, 1), None);
        assert_eq!(day_start(2019, 4, 31), None);
        assert_eq!(day_start(i64::MAX, 1, 1), None);
    }
}
