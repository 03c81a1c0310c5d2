//! Timestamp parsing for bar files.
//!
//! Accepted forms (all resulting in UTC nanoseconds):
//! * a date, `2004-08-19` (midnight UTC);
//! * a date and time, `2017-04-19 09:00`, `2017-04-19 09:00:00`, `2017-04-19T09:00:00.250`
//!   (UTC unless an offset is given);
//! * RFC 3339 with `Z` or an offset: `2017-04-19T09:00:00Z`, `2017-04-19T11:00:00+02:00`;
//! * a unix integer whose unit follows its size: |n| < 10¹¹ seconds, < 10¹⁴ milliseconds,
//!   < 10¹⁷ microseconds, otherwise nanoseconds.

use tradeloom_core::UnixNanos;
use tradeloom_core::time::{NANOS_PER_SECOND, days_from_civil, days_in_month};

use crate::error::RowError;

/// A unix integer in the unit its magnitude implies, as nanoseconds.
pub fn from_unix_integer(n: i64) -> Option<UnixNanos> {
    let abs = n.unsigned_abs();
    let nanos = if abs < 100_000_000_000 {
        n.checked_mul(NANOS_PER_SECOND)?
    } else if abs < 100_000_000_000_000 {
        n.checked_mul(1_000_000)?
    } else if abs < 100_000_000_000_000_000 {
        n.checked_mul(1_000)?
    } else {
        n
    };
    Some(UnixNanos(nanos))
}

#[inline]
fn digits(b: &[u8]) -> Option<u32> {
    let mut v: u32 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// Parses one timestamp field; the error says what was expected.
#[inline]
pub fn parse_timestamp(field: &[u8]) -> Result<UnixNanos, RowError> {
    let text = field.trim_ascii();
    let invalid = || RowError::InvalidTimestamp(String::from_utf8_lossy(text).into_owned());
    if text.is_empty() {
        return Err(RowError::MissingTimestamp);
    }
    if text.len() >= 10 && text[4] == b'-' && text[7] == b'-' {
        return parse_datetime(text).ok_or_else(invalid);
    }
    let (negative, body) = match text[0] {
        b'-' => (true, &text[1..]),
        _ => (false, text),
    };
    if !body.is_empty() && body.len() <= 19 && body.iter().all(u8::is_ascii_digit) {
        let mut v: i64 = 0;
        for &c in body {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(i64::from(c - b'0')))
                .ok_or_else(invalid)?;
        }
        return from_unix_integer(if negative { -v } else { v }).ok_or_else(invalid);
    }
    Err(invalid())
}

fn parse_datetime(t: &[u8]) -> Option<UnixNanos> {
    let days = parse_date(t)?;
    day_and_time(days, &t[10..])
}

/// Days since the epoch of the `YYYY-MM-DD` at the start of `t` (at least 10 bytes).
fn parse_date(t: &[u8]) -> Option<i64> {
    let year = digits(&t[0..4])? as i32;
    let month = digits(&t[5..7])?;
    let day = digits(&t[8..10])?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// The instant of `days` since the epoch plus what follows the date: nothing, or
/// `[T ]HH:MM[:SS[.f]]` and an optional `Z` or UTC offset.
fn day_and_time(days: i64, mut rest: &[u8]) -> Option<UnixNanos> {
    let mut nanos_of_day: i64 = 0;
    if !rest.is_empty() && (rest[0] == b' ' || rest[0] == b'T' || rest[0] == b't') {
        let time = &rest[1..];
        if time.len() < 5 || time[2] != b':' {
            return None;
        }
        let hour = digits(&time[0..2])?;
        let minute = digits(&time[3..5])?;
        let mut second = 0;
        rest = &time[5..];
        if rest.first() == Some(&b':') {
            if rest.len() < 3 {
                return None;
            }
            second = digits(&rest[1..3])?;
            rest = &rest[3..];
        }
        let mut frac: i64 = 0;
        if rest.first() == Some(&b'.') {
            let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 || n > 9 {
                return None;
            }
            frac = i64::from(digits(&rest[1..1 + n])?) * tradeloom_core::fixed::POW10[9 - n];
            rest = &rest[1 + n..];
        }
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        nanos_of_day = (i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second))
            * NANOS_PER_SECOND
            + frac;
    }
    let offset_secs: i64 = match rest {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] | [sign @ (b'+' | b'-'), h1, h2, m1, m2] => {
            let h = i64::from(digits(&[*h1, *h2])?);
            let m = i64::from(digits(&[*m1, *m2])?);
            let s = h * 3600 + m * 60;
            if *sign == b'+' { s } else { -s }
        }
        _ => return None,
    };
    let nanos = days
        .checked_mul(86_400 * NANOS_PER_SECOND)?
        .checked_add(nanos_of_day)?
        .checked_sub(offset_secs * NANOS_PER_SECOND)?;
    Some(UnixNanos(nanos))
}

/// [`parse_timestamp`] for the rows of one file: remembers the last date parsed, so rows of
/// the same day (1,440 a day for minute bars) skip the calendar arithmetic.
#[derive(Clone, Debug, Default)]
pub struct TimestampParser {
    /// The last `YYYY-MM-DD` seen and its days since the epoch.
    date: Option<([u8; 10], i64)>,
}

impl TimestampParser {
    /// Parses like [`parse_timestamp`] (same results, same errors).
    #[inline]
    pub fn parse(&mut self, field: &[u8]) -> Result<UnixNanos, RowError> {
        let text = field.trim_ascii();
        if text.len() >= 10 && text[4] == b'-' && text[7] == b'-' {
            let date = &text[..10];
            let days = match self.date {
                Some((cached, days)) if cached == date => Some(days),
                _ => parse_date(text).inspect(|&days| {
                    let mut key = [0u8; 10];
                    key.copy_from_slice(date);
                    self.date = Some((key, days));
                }),
            };
            return days
                .and_then(|d| day_and_time(d, &text[10..]))
                .ok_or_else(|| {
                    RowError::InvalidTimestamp(String::from_utf8_lossy(text).into_owned())
                });
        }
        parse_timestamp(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> String {
        parse_timestamp(s.as_bytes())
            .map(|t| t.to_string())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn every_form() {
        assert_eq!(ts("2004-08-19"), "2004-08-19T00:00:00Z");
        assert_eq!(ts("2017-04-19 09:00"), "2017-04-19T09:00:00Z");
        assert_eq!(ts("2017-04-19 09:00:00"), "2017-04-19T09:00:00Z");
        assert_eq!(ts("2017-04-19T09:00:00.25"), "2017-04-19T09:00:00.250Z");
        assert_eq!(ts("2017-04-19T09:00:00Z"), "2017-04-19T09:00:00Z");
        assert_eq!(ts("2017-04-19T11:00:00+02:00"), "2017-04-19T09:00:00Z");
        assert_eq!(ts("2017-04-19T08:30:00-0030"), "2017-04-19T09:00:00Z");
        assert_eq!(ts("1492592400"), "2017-04-19T09:00:00Z");
        assert_eq!(ts("1492592400000"), "2017-04-19T09:00:00Z");
        assert_eq!(ts("1492592400000000"), "2017-04-19T09:00:00Z");
        assert_eq!(ts("1492592400000000000"), "2017-04-19T09:00:00Z");
        assert_eq!(ts(" 2004-08-19 "), "2004-08-19T00:00:00Z");
    }

    #[test]
    fn rejects_impossible_values() {
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-01-01 25:00",
            "2024-01-01X",
            "yesterday",
            "12.5",
            "",
        ] {
            assert!(parse_timestamp(bad.as_bytes()).is_err(), "{bad}");
        }
        assert_eq!(
            parse_timestamp(b"").unwrap_err().to_string(),
            "missing timestamp"
        );
    }

    #[test]
    fn the_cached_parser_agrees_with_parse_timestamp() {
        let mut p = TimestampParser::default();
        for text in [
            "2017-04-19 09:00",
            "2017-04-19T09:01:00Z",
            "2017-04-19 25:00",
            "2017-04-19T09:02:00.5Z",
            "2017-04-20T00:00:00+02:00",
            "2023-02-29T00:00:00Z",
            "2017-04-20",
            "2017-04-20X",
            "1492592400",
            "",
            "2017-04-20 00:01",
        ] {
            let want = parse_timestamp(text.as_bytes()).map_err(|e| e.to_string());
            let got = p.parse(text.as_bytes()).map_err(|e| e.to_string());
            assert_eq!(got, want, "{text}");
        }
    }
}
