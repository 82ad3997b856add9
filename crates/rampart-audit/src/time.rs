//! Timestamps and day names. Event times are RFC 3339 in UTC with microseconds
//! (`2026-11-26T06:27:45.123456Z`); day files are named by the UTC date.

use std::time::{Duration, SystemTime};

use jiff::Timestamp;

use crate::AuditError;

pub(crate) fn to_timestamp(time: SystemTime) -> Result<Timestamp, AuditError> {
    Timestamp::try_from(time).map_err(|_| AuditError::TimeOutOfRange(format!("{time:?}")))
}

/// `2026-11-26T06:27:45.123456Z`: fixed width, so the trail reads and sorts evenly.
/// (Formatted here rather than by jiff: this runs for every decision, before its answer,
/// and jiff's general formatter cost about as much as the policy evaluation.)
pub(crate) fn format_ts(ts: Timestamp) -> String {
    match civil(ts) {
        // Before 1970 jiff counts the fraction backwards from the second after.
        Some((y, mo, d, h, mi, s)) => format!(
            "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:06}Z",
            ts.subsec_microsecond().rem_euclid(1_000_000)
        ),
        None => format!("{ts:.6}"),
    }
}

/// `2026-11-26`: the UTC date, which names the day file.
pub(crate) fn day_of(ts: Timestamp) -> String {
    match civil(ts) {
        Some((y, mo, d, ..)) => format!("{y:04}-{mo:02}-{d:02}"),
        None => ts.strftime("%Y-%m-%d").to_string(),
    }
}

/// The UTC date and time of `ts` (year, month, day, hour, minute, second) for years
/// 0000–9999 (`None` outside: the caller lets jiff format those). Days to date after
/// Howard Hinnant's `civil_from_days`.
fn civil(ts: Timestamp) -> Option<(i64, i64, i64, i64, i64, i64)> {
    // Whole seconds down from `ts` (jiff truncates toward zero before 1970).
    let secs = ts.as_second() - i64::from(ts.subsec_nanosecond() < 0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (0..=9999)
        .contains(&year)
        .then_some((year, month, day, rem / 3600, rem % 3600 / 60, rem % 60))
}

/// An event's `ts` back as a time; `None` for anything that is not RFC 3339.
pub(crate) fn parse_ts(ts: &str) -> Option<Timestamp> {
    ts.parse().ok()
}

/// Parses a `since` value as the CLI (`--since`) and the HTTP API (`?since=`) accept it:
/// a duration back from `now` (`90s`, `15m`, `24h`, `7d`, `2w`), a UTC date
/// (`2026-11-26`, meaning its midnight) or an RFC 3339 time.
pub fn parse_since(value: &str, now: SystemTime) -> Result<SystemTime, AuditError> {
    let invalid = || AuditError::InvalidSince {
        value: value.to_owned(),
    };
    let trimmed = value.trim();
    if let Some(unit) = trimmed.chars().last().filter(char::is_ascii_alphabetic) {
        let digits = &trimmed[..trimmed.len() - unit.len_utf8()];
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            let amount: u64 = digits.parse().map_err(|_| invalid())?;
            let unit_secs = match unit {
                's' => 1,
                'm' => 60,
                'h' => 3_600,
                'd' => 86_400,
                'w' => 7 * 86_400,
                _ => return Err(invalid()),
            };
            let secs = amount.checked_mul(unit_secs).ok_or_else(invalid)?;
            return now
                .checked_sub(Duration::from_secs(secs))
                .ok_or_else(invalid);
        }
    }
    let midnight = format!("{trimmed}T00:00:00Z");
    for candidate in [trimmed, midnight.as_str()] {
        if let Ok(ts) = candidate.parse::<Timestamp>() {
            return SystemTime::try_from(ts).map_err(|_| invalid());
        }
    }
    Err(invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written formatting says exactly what jiff says, across the calendar
    /// (leap years, century rules, month ends, before 1970) and the microseconds.
    #[test]
    fn formatting_agrees_with_jiff() {
        let mut secs: i64 = -62_135_596_800; // 0001-01-01
        let mut micros: i32 = 0;
        while secs < 253_402_300_799 {
            let ts = Timestamp::new(secs, micros * 1000).unwrap();
            assert_eq!(format_ts(ts), format!("{ts:.6}"), "{secs}");
            assert_eq!(day_of(ts), ts.strftime("%Y-%m-%d").to_string(), "{secs}");
            secs += 86_399 * 7 + 3_601;
            micros = (micros + 123_457) % 1_000_000;
        }
    }

    fn at(rfc3339: &str) -> SystemTime {
        match rfc3339.parse::<Timestamp>() {
            Ok(ts) => SystemTime::try_from(ts).unwrap_or(SystemTime::UNIX_EPOCH),
            Err(e) => unreachable!("bad test time {rfc3339}: {e}"),
        }
    }

    #[test]
    fn formats_microseconds_in_utc() -> Result<(), AuditError> {
        let ts = to_timestamp(at("2026-11-26T06:27:45.123Z"))?;
        assert_eq!(format_ts(ts), "2026-11-26T06:27:45.123000Z");
        assert_eq!(day_of(ts), "2026-11-26");
        let ts = to_timestamp(at("2026-11-26T23:59:59.999999-01:00"))?;
        assert_eq!(format_ts(ts), "2026-11-27T00:59:59.999999Z");
        assert_eq!(day_of(ts), "2026-11-27");
        Ok(())
    }

    #[test]
    fn since_accepts_durations_dates_and_times() -> Result<(), AuditError> {
        let now = at("2026-11-26T12:00:00Z");
        assert_eq!(parse_since("24h", now)?, at("2026-11-25T12:00:00Z"));
        assert_eq!(parse_since("90s", now)?, at("2026-11-26T11:58:30Z"));
        assert_eq!(parse_since("15m", now)?, at("2026-11-26T11:45:00Z"));
        assert_eq!(parse_since("7d", now)?, at("2026-11-19T12:00:00Z"));
        assert_eq!(parse_since("1w", now)?, at("2026-11-19T12:00:00Z"));
        assert_eq!(parse_since("2026-11-01", now)?, at("2026-11-01T00:00:00Z"));
        assert_eq!(
            parse_since("2026-11-01T08:00:00+02:00", now)?,
            at("2026-11-01T06:00:00Z")
        );
        for bad in ["", "h", "24x", "yesterday", "-5m", "99999999999999999999d"] {
            let err = parse_since(bad, now).err().map(|e| e.to_string());
            assert_eq!(
                err,
                Some(format!(
                    "invalid since value {bad:?}: expected a duration such as 30s, 15m, 24h, 7d, a date (2026-11-26) or an RFC 3339 time"
                ))
            );
        }
        Ok(())
    }
}
