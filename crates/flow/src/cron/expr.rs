//! Five-field cron expressions: parsing ([`CronExpr::parse`]) and the next fire time
//! ([`CronExpr::next_after`]); the syntax is in the [module docs](super).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Timelike, Utc};

use super::error::{CronError, FieldError};
use super::tz::Tz;

/// [`CronExpr::next_after`] looks this far ahead before concluding that an expression never
/// fires. The sparsest expression [`check_cron`] accepts (a given weekday on Feb 29, or on the
/// 1st of one month) recurs within 28 years plus a skipped leap day.
const SEARCH_YEARS: u64 = 40;

const MACROS: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// The longest each month can be (February in a leap year).
const MONTH_DAYS: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// One field's name, bounds and value names (`names[i]` is `first + i`).
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    first: u32,
}

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
        first: 0,
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
        first: 0,
    },
    Field {
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
        first: 0,
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: &MONTHS,
        first: 1,
    },
    Field {
        name: "day-of-week",
        min: 0,
        max: 7,
        names: &DAYS,
        first: 0,
    },
];

/// A parsed cron expression: the set of values of each field (bit `v` set when `v` matches).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronExpr {
    /// As written (trimmed).
    text: String,
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    /// Bits 0 (Sunday) to 6 (Saturday); a 7 in the text sets bit 0.
    days_of_week: u64,
    /// The day-of-month field starts with `*` (Vixie's rule: then days must match both fields).
    dom_star: bool,
    /// The day-of-week field starts with `*`.
    dow_star: bool,
}

impl CronExpr {
    /// Parses an expression (see the [module docs](self)). Errors name the field and the value,
    /// e.g. ``cron field hour `25`: 25 is out of range 0-23``. An expression that can never fire
    /// (`0 0 30 2 *`) parses; [`check_cron`] rejects it.
    pub fn parse(text: &str) -> Result<CronExpr, CronError> {
        let text = text.trim();
        let expanded = if text.starts_with('@') {
            MACROS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(text))
                .map(|(_, fields)| *fields)
                .ok_or_else(|| {
                    let names: Vec<&str> = MACROS.iter().map(|(name, _)| *name).collect();
                    CronError::UnknownMacro {
                        text: text.to_string(),
                        expected: names.join(", "),
                    }
                })?
        } else {
            text
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(CronError::FieldCount {
                text: text.to_string(),
                count: fields.len(),
            });
        }
        let mut sets = [0u64; 5];
        for ((set, text), spec) in sets.iter_mut().zip(&fields).zip(&FIELDS) {
            *set = parse_field(text, spec).map_err(|problem| CronError::Field {
                field: spec.name,
                text: text.to_string(),
                problem,
            })?;
        }
        let [minutes, hours, days_of_month, months, mut days_of_week] = sets;
        if days_of_week & (1 << 7) != 0 {
            days_of_week = (days_of_week & !(1 << 7)) | 1;
        }
        Ok(CronExpr {
            text: text.to_string(),
            minutes,
            hours,
            days_of_month,
            months,
            days_of_week,
            dom_star: fields[2].starts_with('*'),
            dow_star: fields[4].starts_with('*'),
        })
    }

    /// Whether some date matches. False only when the days of the month must match (day-of-week
    /// unrestricted) and none exists in the chosen months, like February 30.
    pub fn can_fire(&self) -> bool {
        if !self.dom_star && !self.dow_star {
            // Either field may match, and some weekday is always chosen.
            return true;
        }
        (1..=12u32).any(|month| {
            bit(self.months, month)
                && (1..=MONTH_DAYS[month as usize - 1]).any(|day| bit(self.days_of_month, day))
        })
    }

    /// Whether the expression fires on `date` (month and day fields).
    fn matches_date(&self, date: NaiveDate) -> bool {
        if !bit(self.months, date.month()) {
            return false;
        }
        let dom = bit(self.days_of_month, date.day());
        let dow = bit(self.days_of_week, date.weekday().num_days_from_sunday());
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first fire time strictly after `t`, with the fields read as wall-clock time in `tz`
    /// (gaps and repeats of daylight saving time as in the [module docs](self)). Fire times are
    /// whole minutes of the zone. `None` if nothing fires within the next 40 years (an
    /// expression that can never fire, like `0 0 30 2 *`).
    pub fn next_after(&self, t: DateTime<Utc>, tz: &Tz) -> Option<DateTime<Utc>> {
        let local = tz.wall_clock(t);
        // The next whole wall-clock minute: fire times are whole minutes, and strictly after t.
        let start = local.with_second(0)?.with_nanosecond(0)? + TimeDelta::minutes(1);
        let last = start
            .date()
            .checked_add_days(chrono::Days::new(SEARCH_YEARS * 366))?;
        let mut date = start.date();
        let mut first_day = true;
        while date <= last {
            if !bit(self.months, date.month()) {
                date = first_of_next_month(date)?;
                first_day = false;
                continue;
            }
            if self.matches_date(date) {
                let from_hour = if first_day { start.hour() } else { 0 };
                for hour in (from_hour..24).filter(|h| bit(self.hours, *h)) {
                    let from_minute = if first_day && hour == from_hour {
                        start.minute()
                    } else {
                        0
                    };
                    for minute in (from_minute..60).filter(|m| bit(self.minutes, *m)) {
                        let wall = date.and_hms_opt(hour, minute, 0)?;
                        if let Some(at) = tz.fire_instant(wall)
                            && at > t
                        {
                            return Some(at);
                        }
                    }
                }
            }
            date = date.succ_opt()?;
            first_day = false;
        }
        None
    }
}

impl FromStr for CronExpr {
    type Err = CronError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CronExpr::parse(s)
    }
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn bit(set: u64, value: u32) -> bool {
    value < 64 && set & (1u64 << value) != 0
}

fn first_of_next_month(date: NaiveDate) -> Option<NaiveDate> {
    if date.month() == 12 {
        NaiveDate::from_ymd_opt(date.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(date.year(), date.month() + 1, 1)
    }
}

/// The values one field selects, as bits.
fn parse_field(field: &str, spec: &Field) -> Result<u64, FieldError> {
    let value = |text: &str| -> Result<u32, FieldError> {
        if let Some(i) = spec.names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
            return Ok(i as u32 + spec.first);
        }
        let n: u32 = text
            .parse()
            .map_err(|_| FieldError::NotANumber(text.to_string()))?;
        if n < spec.min || n > spec.max {
            return Err(FieldError::OutOfRange {
                value: n,
                min: spec.min,
                max: spec.max,
            });
        }
        Ok(n)
    };
    let mut set = 0u64;
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => match step.parse::<u32>() {
                Ok(s) if s > 0 => (range, Some(s)),
                _ => return Err(FieldError::BadStep(step.to_string())),
            },
            None => (item, None),
        };
        let (low, high) = if range == "*" {
            (spec.min, spec.max)
        } else {
            match range.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (value(a)?, value(b)?);
                    if a > b {
                        return Err(FieldError::Backwards { low: a, high: b });
                    }
                    (a, b)
                }
                // `n/s` runs from n to the end of the field.
                None if step.is_some() => (value(range)?, spec.max),
                None => {
                    let n = value(range)?;
                    (n, n)
                }
            }
        };
        for v in (low..=high).step_by(step.unwrap_or(1) as usize) {
            set |= 1u64 << v;
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cron::check_cron;
    use crate::cron::test_time::{fires, tz, utc};

    #[test]
    fn accepts_common_expressions() {
        for ok in [
            "0 6 * * *",
            "*/15 9-17 * * MON-FRI",
            "0 0 1,15 jan,jul 0",
            "5 4 * * 7",
            "@daily",
            "0 0-23/2 * * *",
            "0 0 29 2 *",
        ] {
            assert_eq!(check_cron(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_with_the_field_named() {
        assert_eq!(
            check_cron("0 25 * * *").unwrap_err().to_string(),
            "cron field hour `25`: 25 is out of range 0-23"
        );
        assert!(
            check_cron("0 6 * *")
                .unwrap_err()
                .to_string()
                .contains("has 4 field(s)")
        );
        assert!(
            check_cron("*/0 * * * *")
                .unwrap_err()
                .to_string()
                .contains("step `0`")
        );
        assert!(
            check_cron("0 6 * * FUN")
                .unwrap_err()
                .to_string()
                .contains("`FUN` is not a number")
        );
        assert!(
            check_cron("@sometimes")
                .unwrap_err()
                .to_string()
                .contains("unknown cron macro")
        );
        assert!(
            check_cron("0 9-5 * * *")
                .unwrap_err()
                .to_string()
                .contains("backwards")
        );
        assert_eq!(
            check_cron("0 0 30,31 2 *").unwrap_err().to_string(),
            "cron `0 0 30,31 2 *` never fires: no chosen month has the chosen day of the month"
        );
        assert!(check_cron("0 0 31 4,6,9,11 *").is_err());
        assert!(
            check_cron("0 0 1,,2 * *")
                .unwrap_err()
                .to_string()
                .contains("`` is not a number")
        );
    }

    #[test]
    fn field_sets() {
        let e = CronExpr::parse("*/15 9-17/4 1,15 jan-mar 5-7").unwrap();
        assert_eq!(e.minutes, 1 | 1 << 15 | 1 << 30 | 1 << 45);
        assert_eq!(e.hours, 1 << 9 | 1 << 13 | 1 << 17);
        assert_eq!(e.days_of_month, 1 << 1 | 1 << 15);
        assert_eq!(e.months, 0b1110);
        // 7 is Sunday, bit 0.
        assert_eq!(e.days_of_week, 1 | 1 << 5 | 1 << 6);
        assert!(!e.dom_star && !e.dow_star);
        // `n/s` runs to the end of the field.
        assert_eq!(
            CronExpr::parse("50/5 * * * *").unwrap().minutes,
            1 << 50 | 1 << 55
        );
        assert_eq!(
            CronExpr::parse("@weekly").unwrap(),
            CronExpr {
                text: "@weekly".into(),
                ..CronExpr::parse("0 0 * * 0").unwrap()
            }
        );
        assert_eq!(CronExpr::parse("@weekly").unwrap().to_string(), "@weekly");
    }

    #[test]
    fn daily_in_utc_and_strictly_after() {
        assert_eq!(
            fires("0 6 * * *", "UTC", "2024-01-01T05:59:59.900Z", 3),
            [
                "2024-01-01T06:00Z",
                "2024-01-02T06:00Z",
                "2024-01-03T06:00Z"
            ]
        );
        // At a fire time exactly, the next one.
        assert_eq!(
            fires("0 6 * * *", "UTC", "2024-01-01T06:00:00Z", 1),
            ["2024-01-02T06:00Z"]
        );
        assert_eq!(
            fires("*/20 * * * *", "UTC", "2024-12-31T23:30:00Z", 3),
            [
                "2024-12-31T23:40Z",
                "2025-01-01T00:00Z",
                "2025-01-01T00:20Z"
            ]
        );
    }

    #[test]
    fn macros() {
        let from = "2024-05-15T10:30:00Z";
        assert_eq!(fires("@hourly", "UTC", from, 1), ["2024-05-15T11:00Z"]);
        assert_eq!(fires("@daily", "UTC", from, 1), ["2024-05-16T00:00Z"]);
        assert_eq!(fires("@midnight", "UTC", from, 1), ["2024-05-16T00:00Z"]);
        // 2024-05-19 is a Sunday.
        assert_eq!(fires("@weekly", "UTC", from, 1), ["2024-05-19T00:00Z"]);
        assert_eq!(fires("@monthly", "UTC", from, 1), ["2024-06-01T00:00Z"]);
        assert_eq!(fires("@yearly", "UTC", from, 1), ["2025-01-01T00:00Z"]);
        assert_eq!(fires("@annually", "UTC", from, 1), ["2025-01-01T00:00Z"]);
    }

    #[test]
    fn names_weekdays_and_sunday_as_seven() {
        // 2024-07-01 is a Monday.
        assert_eq!(
            fires("0 9 * JAN,jul MON-FRI", "UTC", "2024-06-28T00:00:00Z", 6),
            [
                "2024-07-01T09:00Z",
                "2024-07-02T09:00Z",
                "2024-07-03T09:00Z",
                "2024-07-04T09:00Z",
                "2024-07-05T09:00Z",
                "2024-07-08T09:00Z"
            ]
        );
        assert_eq!(
            fires("0 0 * * 7", "UTC", "2024-07-01T00:00:00Z", 1),
            fires("0 0 * * SUN", "UTC", "2024-07-01T00:00:00Z", 1)
        );
        assert_eq!(
            fires("0 0 * * 7", "UTC", "2024-07-01T00:00:00Z", 1),
            ["2024-07-07T00:00Z"]
        );
    }

    #[test]
    fn day_of_month_or_day_of_week_when_both_restricted() {
        // Every 13th and every Friday: 2024-09-13 is a Friday, 2024-10-13 a Sunday.
        assert_eq!(
            fires("0 0 13 * FRI", "UTC", "2024-09-12T00:00:00Z", 6),
            [
                "2024-09-13T00:00Z",
                "2024-09-20T00:00Z",
                "2024-09-27T00:00Z",
                "2024-10-04T00:00Z",
                "2024-10-11T00:00Z",
                "2024-10-13T00:00Z"
            ]
        );
        // A field starting with `*` is unrestricted for this rule: odd days that are Mondays.
        assert_eq!(
            fires("0 0 */2 * MON", "UTC", "2024-07-01T00:00:00Z", 3),
            [
                "2024-07-15T00:00Z",
                "2024-07-29T00:00Z",
                "2024-08-05T00:00Z"
            ]
        );
    }

    #[test]
    fn month_ends_and_leap_years() {
        assert_eq!(
            fires("0 0 31 * *", "UTC", "2024-01-31T00:00:00Z", 4),
            [
                "2024-03-31T00:00Z",
                "2024-05-31T00:00Z",
                "2024-07-31T00:00Z",
                "2024-08-31T00:00Z"
            ]
        );
        assert_eq!(
            fires("30 23 28-31 2 *", "UTC", "2023-02-27T00:00:00Z", 3),
            [
                "2023-02-28T23:30Z",
                "2024-02-28T23:30Z",
                "2024-02-29T23:30Z"
            ]
        );
        assert_eq!(
            fires("0 12 29 2 *", "UTC", "2024-03-01T00:00:00Z", 1),
            ["2028-02-29T12:00Z"]
        );
        // 2100 is not a leap year.
        assert_eq!(
            fires("0 12 29 2 *", "UTC", "2096-03-01T00:00:00Z", 1),
            ["2104-02-29T12:00Z"]
        );
        // Feb 29 on a Monday, with the day-of-week must-match rule (`*/28` = days 1 and 29).
        assert_eq!(
            fires("0 0 */28 2 MON", "UTC", "2024-03-01T00:00:00Z", 2),
            ["2027-02-01T00:00Z", "2038-02-01T00:00Z"]
        );
    }

    #[test]
    fn february_30_never_fires() {
        let never = CronExpr::parse("0 0 30 2 *").unwrap();
        assert!(!never.can_fire());
        assert_eq!(
            never.next_after(utc("2024-01-01T00:00:00Z"), &Tz::Utc),
            None
        );
        assert_eq!(
            never.next_after(utc("2024-01-01T00:00:00Z"), &tz("Europe/Paris")),
            None
        );
        // With a weekday as well, either may match: it fires on Mondays in February.
        assert_eq!(
            fires("0 0 30 2 MON", "UTC", "2024-01-01T00:00:00Z", 1),
            ["2024-02-05T00:00Z"]
        );
    }
}
