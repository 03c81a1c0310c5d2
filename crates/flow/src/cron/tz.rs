//! [`Tz`]: the zone a schedule's wall-clock times are read in, and how a wall-clock time
//! that is skipped or repeated by daylight saving time fires (see the [module docs](super)).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, LocalResult, NaiveDateTime, TimeDelta, TimeZone, Utc};

use super::error::TzError;

/// The longest run of wall-clock times a zone transition skips that [`Tz::fire_instant`] steps
/// over, in minutes (the largest in the database is a whole day: Samoa, 30 December 2011).
const MAX_GAP_MINUTES: u32 = 48 * 60;

/// The zone a schedule's wall-clock times are read in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tz {
    Utc,
    /// A fixed offset from UTC, without daylight saving time.
    Fixed(FixedOffset),
    /// A zone of the IANA database, with its history of offsets and daylight saving time.
    Iana(chrono_tz::Tz),
}

impl Tz {
    /// Reads `UTC`, a fixed offset (`+02:00`, `-0530`, at most ±23:59) or an IANA name
    /// (`Europe/Paris`, exact case). Unknown names are errors, with a suggestion when the case
    /// or the region is all that is wrong.
    pub fn parse(text: &str) -> Result<Tz, TzError> {
        if text == "UTC" {
            return Ok(Tz::Utc);
        }
        if text.starts_with('+') || text.starts_with('-') {
            return parse_offset(text).map(Tz::Fixed);
        }
        let shape_ok = !text.is_empty()
            && text.split('/').all(|part| {
                part.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    && part
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-+".contains(c))
            });
        if !shape_ok {
            return Err(TzError::Shape(text.to_string()));
        }
        if let Ok(zone) = chrono_tz::Tz::from_str(text) {
            return Ok(Tz::Iana(zone));
        }
        let suggestion = chrono_tz::TZ_VARIANTS
            .iter()
            .map(|zone| zone.name())
            .find(|name| name.eq_ignore_ascii_case(text))
            .or_else(|| {
                let city = format!("/{}", text.rsplit('/').next().unwrap_or(text));
                chrono_tz::TZ_VARIANTS
                    .iter()
                    .map(|zone| zone.name())
                    .find(|name| {
                        name.to_ascii_lowercase()
                            .ends_with(&city.to_ascii_lowercase())
                    })
            });
        Err(match suggestion {
            Some(name) => TzError::Misspelt {
                text: text.to_string(),
                suggestion: name.to_string(),
            },
            None => TzError::Unknown {
                text: text.to_string(),
                version: chrono_tz::IANA_TZDB_VERSION,
            },
        })
    }

    /// The wall-clock time in this zone at instant `t`.
    pub fn wall_clock(&self, t: DateTime<Utc>) -> NaiveDateTime {
        match self {
            Tz::Utc => t.naive_utc(),
            Tz::Fixed(offset) => t.with_timezone(offset).naive_local(),
            Tz::Iana(zone) => t.with_timezone(zone).naive_local(),
        }
    }

    /// The instant a schedule fires for wall-clock time `wall`: itself when it exists once, its
    /// first occurrence when clocks fall back over it, the end of the gap when clocks spring
    /// forward over it. `None` only past the ends of the calendar.
    pub fn fire_instant(&self, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
        let resolve = |wall: NaiveDateTime| -> Option<DateTime<Utc>> {
            match self.resolve(wall) {
                LocalResult::Single(at) => Some(at),
                LocalResult::Ambiguous(a, b) => Some(a.min(b)),
                LocalResult::None => None,
            }
        };
        if let Some(at) = resolve(wall) {
            return Some(at);
        }
        // In a gap: the first wall-clock minute after it exists, at the instant of the
        // transition (every transition since 1970 is on a whole minute).
        let mut probe = wall;
        for _ in 0..MAX_GAP_MINUTES {
            probe = probe.checked_add_signed(TimeDelta::minutes(1))?;
            if let Some(at) = resolve(probe) {
                return Some(at);
            }
        }
        None
    }

    fn resolve(&self, wall: NaiveDateTime) -> LocalResult<DateTime<Utc>> {
        fn to_utc<Z: TimeZone>(r: LocalResult<DateTime<Z>>) -> LocalResult<DateTime<Utc>> {
            r.map(|at| at.with_timezone(&Utc))
        }
        match self {
            Tz::Utc => LocalResult::Single(wall.and_utc()),
            Tz::Fixed(offset) => to_utc(offset.from_local_datetime(&wall)),
            Tz::Iana(zone) => to_utc(zone.from_local_datetime(&wall)),
        }
    }
}

impl FromStr for Tz {
    type Err = TzError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tz::parse(s)
    }
}

impl fmt::Display for Tz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tz::Utc => f.write_str("UTC"),
            Tz::Fixed(offset) => write!(f, "{offset}"),
            Tz::Iana(zone) => f.write_str(zone.name()),
        }
    }
}

/// `+HH:MM` or `+HHMM` (or `-`).
fn parse_offset(text: &str) -> Result<FixedOffset, TzError> {
    let bad = || TzError::BadOffset(text.to_string());
    let sign = if text.starts_with('-') { -1 } else { 1 };
    let digits: String = text[1..].chars().filter(|c| *c != ':').collect();
    let colon_ok = match text[1..].find(':') {
        None => true,
        Some(at) => at == 2 && text[1..].matches(':').count() == 1,
    };
    if digits.len() != 4 || !digits.chars().all(|c| c.is_ascii_digit()) || !colon_ok {
        return Err(bad());
    }
    let hours: i32 = digits[..2].parse().map_err(|_| bad())?;
    let minutes: i32 = digits[2..].parse().map_err(|_| bad())?;
    if hours > 23 || minutes > 59 {
        return Err(TzError::OffsetOutOfRange(text.to_string()));
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60)).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use crate::cron::check_timezone;
    use crate::cron::test_time::{fires, tz};

    #[test]
    fn fixed_offsets() {
        assert_eq!(
            fires("0 6 * * *", "+02:00", "2024-01-01T00:00:00Z", 2),
            ["2024-01-01T04:00Z", "2024-01-02T04:00Z"]
        );
        assert_eq!(
            fires("0 6 * * *", "-0530", "2024-01-01T00:00:00Z", 1),
            ["2024-01-01T11:30Z"]
        );
        // Local midnight of Monday is still Sunday in UTC.
        assert_eq!(
            fires("0 0 * * MON", "+09:00", "2024-07-01T00:00:00Z", 1),
            ["2024-07-07T15:00Z"]
        );
    }

    #[test]
    fn paris_spring_forward_fires_at_the_end_of_the_gap() {
        // 2024-03-31: 02:00 CET → 03:00 CEST at 01:00 UTC; 02:30 does not exist.
        assert_eq!(
            fires("30 2 * * *", "Europe/Paris", "2024-03-30T12:00:00Z", 3),
            [
                "2024-03-31T01:00Z",
                "2024-04-01T00:30Z",
                "2024-04-02T00:30Z"
            ]
        );
        // Quarter-hourly: 02:00-02:45 all land on 03:00 CEST, which fires once.
        assert_eq!(
            fires("*/15 * * * *", "Europe/Paris", "2024-03-31T00:30:00Z", 4),
            [
                "2024-03-31T00:45Z",
                "2024-03-31T01:00Z",
                "2024-03-31T01:15Z",
                "2024-03-31T01:30Z"
            ]
        );
        // A daily 06:00 moves from 05:00 to 04:00 UTC.
        assert_eq!(
            fires("0 6 * * *", "Europe/Paris", "2024-03-30T00:00:00Z", 2),
            ["2024-03-30T05:00Z", "2024-03-31T04:00Z"]
        );
    }

    #[test]
    fn paris_fall_back_fires_once() {
        // 2024-10-27: 03:00 CEST → 02:00 CET at 01:00 UTC; 02:30 happens at 00:30 and 01:30 UTC.
        assert_eq!(
            fires("30 2 * * *", "Europe/Paris", "2024-10-26T12:00:00Z", 2),
            ["2024-10-27T00:30Z", "2024-10-28T01:30Z"]
        );
        // From inside the second 02:30 hour, the repeated time is not fired again.
        assert_eq!(
            fires("30 2 * * *", "Europe/Paris", "2024-10-27T01:15:00Z", 1),
            ["2024-10-28T01:30Z"]
        );
        assert_eq!(
            fires("0 * * * *", "Europe/Paris", "2024-10-26T23:30:00Z", 4),
            [
                "2024-10-27T00:00Z",
                "2024-10-27T02:00Z",
                "2024-10-27T03:00Z",
                "2024-10-27T04:00Z"
            ]
        );
    }

    #[test]
    fn new_york_transitions() {
        // 2024-03-10: 02:00 EST → 03:00 EDT at 07:00 UTC.
        assert_eq!(
            fires("30 2 * * *", "America/New_York", "2024-03-09T00:00:00Z", 3),
            [
                "2024-03-09T07:30Z",
                "2024-03-10T07:00Z",
                "2024-03-11T06:30Z"
            ]
        );
        // 2024-11-03: 02:00 EDT → 01:00 EST at 06:00 UTC; 01:xx happens twice.
        assert_eq!(
            fires("0 * * * *", "America/New_York", "2024-11-03T04:30:00Z", 3),
            [
                "2024-11-03T05:00Z",
                "2024-11-03T07:00Z",
                "2024-11-03T08:00Z"
            ]
        );
        assert_eq!(
            fires("30 1 * * *", "America/New_York", "2024-11-02T12:00:00Z", 2),
            ["2024-11-03T05:30Z", "2024-11-04T06:30Z"]
        );
        // A day that is not a transition day is untouched.
        assert_eq!(
            fires("0 9 * * *", "America/New_York", "2024-07-04T00:00:00Z", 1),
            ["2024-07-04T13:00Z"]
        );
    }

    #[test]
    fn time_zones() {
        for ok in [
            "UTC",
            "Europe/Paris",
            "+02:00",
            "-0530",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+5",
        ] {
            assert_eq!(check_timezone(ok), Ok(()), "{ok}");
        }
        for bad in ["", "Europe/", "+2", "utc offset", "12:00", "+02:0:0"] {
            assert!(check_timezone(bad).is_err(), "{bad}");
        }
        assert_eq!(
            check_timezone("Europe/Pariss").unwrap_err().to_string(),
            "unknown time zone `Europe/Pariss`; expected `UTC`, an offset like `+02:00` or an IANA name like `Europe/Paris` (tz database 2025b)"
        );
        assert_eq!(
            check_timezone("europe/paris").unwrap_err().to_string(),
            "unknown time zone `europe/paris`; did you mean `Europe/Paris`?"
        );
        assert_eq!(
            check_timezone("Mars/Tokyo").unwrap_err().to_string(),
            "unknown time zone `Mars/Tokyo`; did you mean `Asia/Tokyo`?"
        );
        assert_eq!(
            check_timezone("+25:00").unwrap_err().to_string(),
            "time zone offset `+25:00` is out of range (at most ±23:59)"
        );
        assert_eq!(tz("-05:30").to_string(), "-05:30");
        assert_eq!(tz("America/New_York").to_string(), "America/New_York");
    }
}
