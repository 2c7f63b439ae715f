//! Wall-clock time as the session directory shows it: unix milliseconds, and
//! UTC calendar text for the manifest (RFC 3339) and directory names.
//!
//! Written out here rather than pulling in a date crate: only UTC is needed
//! and the calendar arithmetic is a dozen lines. The time is always passed in
//! by the caller, so tests and replays choose it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the unix epoch. A clock set before 1970 reads as 0: a
/// rig with such a clock has bigger problems, and a session must still start.
pub fn unix_ms(time: SystemTime) -> u64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// `2026-11-28T21:40:03.123Z`.
pub fn rfc3339_utc(unix_ms: u64) -> String {
    let t = Utc::from_unix_ms(unix_ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.milli
    )
}

/// `2026-11-28T21-40-03`: sortable, and free of `:` which some file systems
/// and tools (scp, Windows shares) mishandle.
pub fn dir_stamp_utc(unix_ms: u64) -> String {
    let t = Utc::from_unix_ms(unix_ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}-{:02}-{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

struct Utc {
    year: u64,
    month: u64,
    day: u64,
    hour: u64,
    minute: u64,
    second: u64,
    milli: u64,
}

impl Utc {
    fn from_unix_ms(unix_ms: u64) -> Utc {
        let milli = unix_ms % 1000;
        let secs = unix_ms / 1000;
        let (year, month, day) = civil_from_days(secs / 86_400);
        let secs_of_day = secs % 86_400;
        Utc {
            year,
            month,
            day,
            hour: secs_of_day / 3600,
            minute: secs_of_day % 3600 / 60,
            second: secs_of_day % 60,
            milli,
        }
    }
}

/// Proleptic Gregorian date of a day count from 1970-01-01.
///
/// Counts from 0000-03-01 instead, so the leap day is the last day of the
/// shifted year, and splits the count into 400-year eras (146 097 days each),
/// within which the year, then the month from the day of the shifted year,
/// follow by integer division.
fn civil_from_days(days_since_epoch: u64) -> (u64, u64, u64) {
    // Days from 0000-03-01 to 1970-01-01.
    const EPOCH_SHIFT: u64 = 719_468;
    const DAYS_PER_ERA: u64 = 146_097;
    let days = days_since_epoch + EPOCH_SHIFT;
    let era = days / DAYS_PER_ERA;
    let day_of_era = days % DAYS_PER_ERA;
    // Subtract the leap days accumulated so far in the era (every 4 years,
    // not every 100, every 400) before dividing by 365.
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months from March have lengths 31,30,31,30,31 repeating: 153 days per 5 months.
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_utc(1_795_902_003_123), "2026-11-28T21:40:03.123Z");
        assert_eq!(rfc3339_utc(951_868_799_999), "2000-02-29T23:59:59.999Z");
        assert_eq!(rfc3339_utc(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
        assert_eq!(dir_stamp_utc(1_795_902_003_123), "2026-11-28T21-40-03");
    }

    #[test]
    fn every_day_for_three_centuries_follows_the_calendar() {
        let is_leap =
            |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
        let (mut year, mut month, mut day) = (1970, 1, 1);
        for days in 0..(300 * 366) {
            assert_eq!(civil_from_days(days), (year, month, day), "day {days}");
            let month_len = match month {
                2 if is_leap(year) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            day += 1;
            if day > month_len {
                day = 1;
                month += 1;
                if month > 12 {
                    month = 1;
                    year += 1;
                }
            }
        }
    }

    #[test]
    fn system_time_converts_to_ms() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_902_003_123);
        assert_eq!(unix_ms(t), 1_795_902_003_123);
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_secs(5)), 0);
    }
}
