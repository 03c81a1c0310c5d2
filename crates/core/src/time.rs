//! [`UnixNanos`]: event time as integer nanoseconds since the Unix epoch, UTC.
//!
//! Calendar conversion is done here with integer arithmetic (Howard Hinnant's civil-date
//! algorithms) so the core needs no time library and no clock.

use std::fmt;

use serde::{Serialize, Serializer};

/// Nanoseconds in a second.
pub const NANOS_PER_SECOND: i64 = 1_000_000_000;
/// Nanoseconds in a (UTC) day.
pub const NANOS_PER_DAY: i64 = 86_400 * NANOS_PER_SECOND;

/// Nanoseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct UnixNanos(pub i64);

impl UnixNanos {
    /// Midnight UTC of a calendar date, or `None` if the date does not exist.
    pub fn from_date(year: i32, month: u32, day: u32) -> Option<Self> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        days_from_civil(year, month, day)
            .checked_mul(NANOS_PER_DAY)
            .map(Self)
    }

    /// A calendar date and time of day (UTC), or `None` if out of range.
    pub fn from_parts(
        year: i32,
        month: u32,
        day: u32,
        hour: u32,
        minute: u32,
        second: u32,
        nanos: u32,
    ) -> Option<Self> {
        if hour > 23 || minute > 59 || second > 60 || nanos >= 1_000_000_000 {
            return None;
        }
        let base = Self::from_date(year, month, day)?;
        let secs = i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
        base.0
            .checked_add(secs * NANOS_PER_SECOND + i64::from(nanos))
            .map(Self)
    }

    /// Days since the epoch (floor), the UTC calendar day of this instant.
    pub const fn day_index(self) -> i64 {
        self.0.div_euclid(NANOS_PER_DAY)
    }

    /// Day of week, 0 = Monday … 6 = Sunday.
    pub const fn weekday(self) -> u32 {
        // 1970-01-01 was a Thursday (3).
        ((self.day_index() + 3).rem_euclid(7)) as u32
    }

    /// `(year, month, day)` of the UTC date.
    pub fn date(self) -> (i32, u32, u32) {
        civil_from_days(self.day_index())
    }

    /// `YYYY-MM-DD`.
    pub fn date_string(self) -> String {
        let (y, m, d) = self.date();
        format!("{y:04}-{m:02}-{d:02}")
    }

    /// Seconds since the epoch, as a float (for statistics, never for accounting).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / NANOS_PER_SECOND as f64
    }
}

impl fmt::Display for UnixNanos {
    /// RFC 3339 in UTC with as many fractional digits as needed (none, 3, 6 or 9).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, mo, d) = self.date();
        let in_day = self.0.rem_euclid(NANOS_PER_DAY);
        let secs = in_day / NANOS_PER_SECOND;
        let nanos = in_day % NANOS_PER_SECOND;
        write!(
            f,
            "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
            secs / 3600,
            (secs / 60) % 60,
            secs % 60
        )?;
        if nanos != 0 {
            if nanos % 1_000_000 == 0 {
                write!(f, ".{:03}", nanos / 1_000_000)?;
            } else if nanos % 1_000 == 0 {
                write!(f, ".{:06}", nanos / 1_000)?;
            } else {
                write!(f, ".{nanos:09}")?;
            }
        }
        f.write_str("Z")
    }
}

impl Serialize for UnixNanos {
    /// The [`fmt::Display`] text, written by [`write_rfc3339`] (the same bytes, without the
    /// formatting machinery: journals serialise a timestamp per event).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut text = Vec::with_capacity(32);
        write_rfc3339(&mut text, *self);
        match std::str::from_utf8(&text) {
            Ok(text) => serializer.serialize_str(text),
            // Invariant: write_rfc3339 writes ASCII only.
            Err(_) => serializer.collect_str(self),
        }
    }
}

fn push2(out: &mut Vec<u8>, v: u32) {
    out.push(b'0' + (v / 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

/// Appends the same text as `Display` (RFC 3339, UTC) to `out`, without allocating.
pub fn write_rfc3339(out: &mut Vec<u8>, ts: UnixNanos) {
    let (y, mo, d) = ts.date();
    let in_day = ts.0.rem_euclid(NANOS_PER_DAY);
    let secs = (in_day / NANOS_PER_SECOND) as u32;
    let nanos = (in_day % NANOS_PER_SECOND) as u32;
    if (0..10_000).contains(&y) {
        // The common case in one piece: `YYYY-MM-DDTHH:MM:SS` and, without a fraction, `Z`.
        let y = y as u32;
        let mut text = *b"0000-00-00T00:00:00Z";
        for (at, v) in [
            (0, y / 100),
            (2, y % 100),
            (5, mo),
            (8, d),
            (11, secs / 3600),
            (14, (secs / 60) % 60),
            (17, secs % 60),
        ] {
            text[at] = b'0' + (v / 10) as u8;
            text[at + 1] = b'0' + (v % 10) as u8;
        }
        if nanos == 0 {
            out.extend_from_slice(&text);
            return;
        }
        out.extend_from_slice(&text[..19]);
    } else {
        out.extend_from_slice(format!("{y:04}").as_bytes());
        out.push(b'-');
        push2(out, mo);
        out.push(b'-');
        push2(out, d);
        out.push(b'T');
        write_hms(out, ts);
    }
    if nanos != 0 {
        let (value, digits) = if nanos.is_multiple_of(1_000_000) {
            (nanos / 1_000_000, 3)
        } else if nanos.is_multiple_of(1_000) {
            (nanos / 1_000, 6)
        } else {
            (nanos, 9)
        };
        out.push(b'.');
        let start = out.len();
        out.resize(start + digits, b'0');
        let mut v = value;
        let mut i = out.len();
        while v > 0 {
            i -= 1;
            out[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    out.push(b'Z');
}

/// Appends `HH:MM:SS` of the UTC time of day; returns the nanoseconds within the second.
fn write_hms(out: &mut Vec<u8>, ts: UnixNanos) -> u32 {
    let in_day = ts.0.rem_euclid(NANOS_PER_DAY);
    let secs = (in_day / NANOS_PER_SECOND) as u32;
    push2(out, secs / 3600);
    out.push(b':');
    push2(out, (secs / 60) % 60);
    out.push(b':');
    push2(out, secs % 60);
    (in_day % NANOS_PER_SECOND) as u32
}

/// Writes RFC 3339 timestamps like [`write_rfc3339`], reusing the date of the previous call
/// when the day is the same (the common case for intraday bars).
#[derive(Clone, Debug, Default)]
pub struct Rfc3339Writer {
    day: Option<i64>,
    prefix: Vec<u8>,
}

impl Rfc3339Writer {
    /// Appends `ts` as RFC 3339 UTC to `out`, reusing the date part while the day is the same.
    #[inline]
    pub fn write(&mut self, out: &mut Vec<u8>, ts: UnixNanos) {
        let day = ts.day_index();
        if self.day != Some(day) {
            self.prefix.clear();
            write_rfc3339(&mut self.prefix, UnixNanos(day * NANOS_PER_DAY));
            // Keep `YYYY-MM-DDT`; drop `00:00:00Z`.
            self.prefix.truncate(self.prefix.len() - 9);
            self.day = Some(day);
        }
        out.extend_from_slice(&self.prefix);
        if write_hms(out, ts) != 0 {
            // Rare: the general writer handles fractions.
            out.truncate(out.len() - self.prefix.len() - 8);
            write_rfc3339(out, ts);
            return;
        }
        out.push(b'Z');
    }
}

/// Whether `year` is a Gregorian leap year.
pub fn is_leap_year(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days in `month` (1-12) of `year`.
pub fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date.
pub fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count from 1970-01-01.
pub fn civil_from_days(days: i64) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialised_timestamps_are_their_display_text() {
        for ts in [
            0,
            1_704_067_200_000_000_000,
            1_704_067_200_250_000_000,
            1_704_067_200_000_250_000,
            1_704_067_200_000_000_250,
            -86_400_000_000_001,
            i64::MAX,
            i64::MIN,
        ] {
            let ts = UnixNanos(ts);
            assert_eq!(
                serde_json::to_string(&ts).unwrap(),
                format!("\"{ts}\""),
                "{}",
                ts.0
            );
        }
    }

    #[test]
    fn round_trips_dates() {
        for days in [-800_000i64, -1, 0, 1, 11_000, 19_000, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        let t = UnixNanos::from_date(2004, 8, 19).unwrap();
        assert_eq!(t.to_string(), "2004-08-19T00:00:00Z");
        assert_eq!(t.weekday(), 3, "2004-08-19 was a Thursday");
        assert!(UnixNanos::from_date(2023, 2, 29).is_none());
        assert!(UnixNanos::from_date(2024, 2, 29).is_some());
    }

    #[test]
    fn write_rfc3339_matches_display() {
        for t in [
            0i64,
            1,
            1_500_000_000_123_000_000,
            1_092_873_600_000_000_000,
            -86_400_000_000_001,
            86_399_000_000_000,
            1_500_000_000_000_001_000,
            1_500_000_000_000_000_007,
            i64::MIN,
            i64::MAX,
        ] {
            let mut out = Vec::new();
            write_rfc3339(&mut out, UnixNanos(t));
            assert_eq!(String::from_utf8(out).unwrap(), UnixNanos(t).to_string());
        }
    }

    #[test]
    fn cached_writer_matches_display() {
        let mut w = Rfc3339Writer::default();
        for t in [
            0i64,
            60_000_000_000,
            86_399_000_000_000,
            86_400_000_000_000,
            1_500_000_000_123_000_000,
            -1,
        ] {
            let mut out = b"x,".to_vec();
            w.write(&mut out, UnixNanos(t));
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("x,{}", UnixNanos(t))
            );
        }
    }

    #[test]
    fn displays_fractions_compactly() {
        let t = UnixNanos::from_parts(2024, 1, 2, 3, 4, 5, 120_000_000).unwrap();
        assert_eq!(t.to_string(), "2024-01-02T03:04:05.120Z");
        assert_eq!(UnixNanos(1).to_string(), "1970-01-01T00:00:00.000000001Z");
    }
}
