//! Cron schedules: five-field expressions ([`CronExpr`]), the zones they are read in ([`Tz`]),
//! the next fire time ([`CronExpr::next_after`]) and the fire times a scheduler owes after a
//! pause, under the workflow's missed-run policy ([`due_fire_times`]). Pure functions: the caller
//! passes the time; nothing here reads a clock or a file.
//!
//! ## Expressions
//! `minute hour day-of-month month day-of-week`, as in Vixie cron (the cron of most Linux
//! systems): each field is `*` or a comma-separated list of `n`, `a-b`, `*/s`, `a-b/s` or `n/s`
//! (`n/s` is `n-max/s`); months and days of the week may be three-letter English names (`JAN`,
//! `MON`, any case); day-of-week 0 and 7 are both Sunday. When day-of-month and day-of-week are
//! both restricted, a day matches if *either* does (`0 0 13 * FRI` fires on every 13th and every
//! Friday); a field that starts with `*` (such as `*/2`) counts as unrestricted for this rule,
//! so then both must match. Macros: `@yearly`/`@annually` (`0 0 1 1 *`), `@monthly`
//! (`0 0 1 * *`), `@weekly` (`0 0 * * 0`), `@daily`/`@midnight` (`0 0 * * *`), `@hourly`
//! (`0 * * * *`).
//!
//! ## Time zones and daylight saving time
//! The fields are wall-clock times in the schedule's zone: `UTC`, a fixed offset (`+02:00`,
//! `-0530`) or an IANA name (`Europe/Paris`), from the database compiled into `chrono-tz`.
//! - A wall-clock time that does not exist (skipped when clocks spring forward, e.g. 02:30 on
//!   the last Sunday of March in Europe/Paris) fires at the first instant after the gap (03:00
//!   CEST, 01:00 UTC). Several fire times inside one gap fire once, at that instant.
//! - A wall-clock time that happens twice (clocks fall back) fires once, at its first
//!   occurrence. So an hourly schedule has one fire, not two, in the repeated hour.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, TimeDelta, TimeZone,
    Timelike, Utc,
};

use crate::definition::{Missed, Schedule};

/// Under [`Missed::Skip`], a fire time is still started if it is at most this old when the
/// scheduler sees it. A scheduler must therefore look at least this often (the orchestrator's
/// ticks every few seconds).
pub const SKIP_GRACE: TimeDelta = TimeDelta::seconds(60);

/// Under [`Missed::RunAll`], at most this many missed fire times are started after a pause (the
/// latest ones; older ones are dropped), so a minutely schedule back from a week's outage starts
/// 1000 runs, not 10,080.
pub const MAX_CATCH_UP: usize = 1000;

/// [`CronExpr::next_after`] looks this far ahead before concluding that an expression never
/// fires. The sparsest expression [`check_cron`] accepts (a given weekday on Feb 29, or on the
/// 1st of one month) recurs within 28 years plus a skipped leap day.
const SEARCH_YEARS: u64 = 40;

/// The longest run of wall-clock times a zone transition skips that [`Tz::fire_instant`] steps
/// over, in minutes (the largest in the database is a whole day: Samoa, 30 December 2011).
const MAX_GAP_MINUTES: u32 = 48 * 60;

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
    pub fn parse(text: &str) -> Result<CronExpr, String> {
        let text = text.trim();
        let expanded = if text.starts_with('@') {
            MACROS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(text))
                .map(|(_, fields)| *fields)
                .ok_or_else(|| {
                    let names: Vec<&str> = MACROS.iter().map(|(name, _)| *name).collect();
                    format!(
                        "unknown cron macro `{text}`; expected one of {}",
                        names.join(", ")
                    )
                })?
        } else {
            text
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "cron `{text}` has {} field(s); expected 5 (minute hour day-of-month month day-of-week), like `0 6 * * *`",
                fields.len()
            ));
        }
        let mut sets = [0u64; 5];
        for ((set, text), spec) in sets.iter_mut().zip(&fields).zip(&FIELDS) {
            *set = parse_field(text, spec)
                .map_err(|e| format!("cron field {} `{text}`: {e}", spec.name))?;
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
    type Err = String;

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
fn parse_field(field: &str, spec: &Field) -> Result<u64, String> {
    let value = |text: &str| -> Result<u32, String> {
        if let Some(i) = spec.names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
            return Ok(i as u32 + spec.first);
        }
        let n: u32 = text
            .parse()
            .map_err(|_| format!("`{text}` is not a number"))?;
        if n < spec.min || n > spec.max {
            return Err(format!("{n} is out of range {}-{}", spec.min, spec.max));
        }
        Ok(n)
    };
    let mut set = 0u64;
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => match step.parse::<u32>() {
                Ok(s) if s > 0 => (range, Some(s)),
                _ => return Err(format!("step `{step}` must be a positive number")),
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
                        return Err(format!("range {a}-{b} is backwards"));
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
    pub fn parse(text: &str) -> Result<Tz, String> {
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
            return Err(format!(
                "time zone `{text}` is not `UTC`, an offset like `+02:00` or a name like `Europe/Paris`"
            ));
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
            Some(name) => format!("unknown time zone `{text}`; did you mean `{name}`?"),
            None => format!(
                "unknown time zone `{text}`; expected `UTC`, an offset like `+02:00` or an IANA name like `Europe/Paris` (tz database {})",
                chrono_tz::IANA_TZDB_VERSION
            ),
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
    type Err = String;

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
fn parse_offset(text: &str) -> Result<FixedOffset, String> {
    let bad = || {
        format!(
            "time zone offset `{text}` must look like `+02:00` or `-0530` (sign, hours, minutes)"
        )
    };
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
        return Err(format!(
            "time zone offset `{text}` is out of range (at most ±23:59)"
        ));
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60)).ok_or_else(bad)
}

/// A workflow's `schedule`, parsed and ready to evaluate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronSchedule {
    pub cron: CronExpr,
    pub tz: Tz,
    pub missed: Missed,
}

impl CronSchedule {
    /// Parses `schedule.cron` and `schedule.timezone`; errors as [`check_cron`] and
    /// [`check_timezone`] give them, prefixed with the field (`cron: …`, `timezone: …`).
    /// A schedule of a compiled [`crate::Ir`] always parses.
    pub fn from_schedule(schedule: &Schedule) -> Result<CronSchedule, String> {
        check_cron(&schedule.cron).map_err(|e| format!("cron: {e}"))?;
        Ok(CronSchedule {
            cron: CronExpr::parse(&schedule.cron).map_err(|e| format!("cron: {e}"))?,
            tz: Tz::parse(&schedule.timezone).map_err(|e| format!("timezone: {e}"))?,
            missed: schedule.missed,
        })
    }

    /// The first fire time strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.next_after(t, &self.tz)
    }
}

/// The fire times a scheduler should start now, oldest first, given the last one it started
/// (`None` if none yet: then fire times count from `created`, when the workflow version was
/// saved). Fire times strictly after that and at or before `now` are due, filtered by the
/// missed-run policy:
/// - [`Missed::Skip`]: only the latest, and only if it is at most [`SKIP_GRACE`] (60 s) old.
///   Times missed for longer are forgotten.
/// - [`Missed::RunOnce`]: the latest, however old (one run stands for all the missed ones).
/// - [`Missed::RunAll`]: every one, but at most the latest [`MAX_CATCH_UP`] (1000).
pub fn due_fire_times(
    schedule: &CronSchedule,
    last_fired: Option<DateTime<Utc>>,
    created: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let since = last_fired.unwrap_or(created);
    match schedule.missed {
        Missed::Skip => {
            // `- 1 ns` so that a fire time exactly SKIP_GRACE old still counts.
            let oldest = now - SKIP_GRACE - TimeDelta::nanoseconds(1);
            latest_fires(schedule, since.max(oldest), now, 1)
        }
        Missed::RunOnce => latest_fires(schedule, since, now, 1),
        Missed::RunAll => latest_fires(schedule, since, now, MAX_CATCH_UP),
    }
}

/// The latest `cap` fire times in `(after, until]`, oldest first. Looks back from `until` in
/// windows growing fourfold, so the work is proportional to the fire times near `until`, not
/// to the length of the pause.
fn latest_fires(
    schedule: &CronSchedule,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
    cap: usize,
) -> Vec<DateTime<Utc>> {
    if until <= after || cap == 0 {
        return Vec::new();
    }
    let mut window = TimeDelta::hours(1);
    loop {
        let from = match until.checked_sub_signed(window) {
            Some(from) if from > after => from,
            _ => after,
        };
        let mut fires = VecDeque::new();
        let mut t = from;
        while let Some(at) = schedule.next_after(t) {
            if at > until {
                break;
            }
            if fires.len() == cap {
                fires.pop_front();
            }
            fires.push_back(at);
            t = at;
        }
        if from == after || fires.len() == cap {
            return fires.into();
        }
        window = match window.checked_mul(4) {
            Some(w) => w,
            None => until - after,
        };
    }
}

/// Checks a five-field cron expression or macro (see the [module docs](self)), including that
/// it can fire at all (`0 0 30 2 *` cannot).
pub fn check_cron(text: &str) -> Result<(), String> {
    let expr = CronExpr::parse(text)?;
    if !expr.can_fire() {
        return Err(format!(
            "cron `{}` never fires: no chosen month has the chosen day of the month",
            expr.text
        ));
    }
    Ok(())
}

/// Checks a time zone: `UTC`, a fixed offset (`+02:00`, `-0530`) or a name the IANA database
/// knows (`Europe/Paris`, `America/Argentina/Buenos_Aires`).
pub fn check_timezone(text: &str) -> Result<(), String> {
    Tz::parse(text).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .with_timezone(&Utc)
    }

    fn tz(name: &str) -> Tz {
        Tz::parse(name).unwrap()
    }

    /// The next `n` fire times after `from` (RFC 3339, UTC).
    fn fires(cron: &str, zone: &str, from: &str, n: usize) -> Vec<String> {
        let expr = CronExpr::parse(cron).unwrap();
        let zone = tz(zone);
        let mut t = utc(from);
        let mut out = Vec::new();
        for _ in 0..n {
            match expr.next_after(t, &zone) {
                Some(at) => {
                    out.push(at.format("%Y-%m-%dT%H:%MZ").to_string());
                    t = at;
                }
                None => break,
            }
        }
        out
    }

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
            check_cron("0 25 * * *").unwrap_err(),
            "cron field hour `25`: 25 is out of range 0-23"
        );
        assert!(
            check_cron("0 6 * *")
                .unwrap_err()
                .contains("has 4 field(s)")
        );
        assert!(check_cron("*/0 * * * *").unwrap_err().contains("step `0`"));
        assert!(
            check_cron("0 6 * * FUN")
                .unwrap_err()
                .contains("`FUN` is not a number")
        );
        assert!(
            check_cron("@sometimes")
                .unwrap_err()
                .contains("unknown cron macro")
        );
        assert!(check_cron("0 9-5 * * *").unwrap_err().contains("backwards"));
        assert_eq!(
            check_cron("0 0 30,31 2 *").unwrap_err(),
            "cron `0 0 30,31 2 *` never fires: no chosen month has the chosen day of the month"
        );
        assert!(check_cron("0 0 31 4,6,9,11 *").is_err());
        assert!(
            check_cron("0 0 1,,2 * *")
                .unwrap_err()
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
            check_timezone("Europe/Pariss").unwrap_err(),
            "unknown time zone `Europe/Pariss`; expected `UTC`, an offset like `+02:00` or an IANA name like `Europe/Paris` (tz database 2025b)"
        );
        assert_eq!(
            check_timezone("europe/paris").unwrap_err(),
            "unknown time zone `europe/paris`; did you mean `Europe/Paris`?"
        );
        assert_eq!(
            check_timezone("Mars/Tokyo").unwrap_err(),
            "unknown time zone `Mars/Tokyo`; did you mean `Asia/Tokyo`?"
        );
        assert_eq!(
            check_timezone("+25:00").unwrap_err(),
            "time zone offset `+25:00` is out of range (at most ±23:59)"
        );
        assert_eq!(tz("-05:30").to_string(), "-05:30");
        assert_eq!(tz("America/New_York").to_string(), "America/New_York");
    }

    fn schedule(cron: &str, missed: Missed) -> CronSchedule {
        CronSchedule::from_schedule(&Schedule {
            cron: cron.into(),
            timezone: "UTC".into(),
            missed,
        })
        .unwrap()
    }

    fn due(s: &CronSchedule, last: Option<&str>, created: &str, now: &str) -> Vec<String> {
        due_fire_times(s, last.map(utc), utc(created), utc(now))
            .iter()
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .collect()
    }

    #[test]
    fn due_on_time_under_every_policy() {
        for missed in [Missed::Skip, Missed::RunOnce, Missed::RunAll] {
            let s = schedule("0 6 * * *", missed);
            let last = Some("2024-01-01T06:00:00Z");
            let created = "2023-12-01T00:00:00Z";
            assert_eq!(
                due(&s, last, created, "2024-01-02T06:00:05Z"),
                ["2024-01-02T06:00:00Z"],
                "{missed:?}"
            );
            // Already fired, or not yet due.
            assert!(
                due(
                    &s,
                    Some("2024-01-02T06:00:00Z"),
                    created,
                    "2024-01-02T06:00:30Z"
                )
                .is_empty()
            );
            assert!(due(&s, last, created, "2024-01-02T05:59:59Z").is_empty());
            // Exactly at the fire time.
            assert_eq!(
                due(&s, last, created, "2024-01-02T06:00:00Z"),
                ["2024-01-02T06:00:00Z"]
            );
        }
    }

    #[test]
    fn missed_policies_after_a_three_day_outage() {
        let last = Some("2024-01-01T06:00:00Z");
        let created = "2023-12-01T00:00:00Z";
        let skip = schedule("0 6 * * *", Missed::Skip);
        let once = schedule("0 6 * * *", Missed::RunOnce);
        let all = schedule("0 6 * * *", Missed::RunAll);
        // Back just after the fourth day's fire time: it is current, the others are missed.
        let now = "2024-01-04T06:00:20Z";
        assert_eq!(due(&skip, last, created, now), ["2024-01-04T06:00:00Z"]);
        assert_eq!(due(&once, last, created, now), ["2024-01-04T06:00:00Z"]);
        assert_eq!(
            due(&all, last, created, now),
            [
                "2024-01-02T06:00:00Z",
                "2024-01-03T06:00:00Z",
                "2024-01-04T06:00:00Z"
            ]
        );
        // Back at noon: nothing is current.
        let now = "2024-01-04T12:00:00Z";
        assert!(due(&skip, last, created, now).is_empty());
        assert_eq!(due(&once, last, created, now), ["2024-01-04T06:00:00Z"]);
        assert_eq!(due(&all, last, created, now).len(), 3);
        // The grace is 60 s, inclusive.
        assert_eq!(
            due(&skip, last, created, "2024-01-04T06:01:00Z"),
            ["2024-01-04T06:00:00Z"]
        );
        assert!(due(&skip, last, created, "2024-01-04T06:01:00.001Z").is_empty());
    }

    #[test]
    fn without_a_fire_yet_counts_from_creation() {
        let all = schedule("0 6 * * *", Missed::RunAll);
        assert_eq!(
            due(&all, None, "2024-01-01T07:00:00Z", "2024-01-03T07:00:00Z"),
            ["2024-01-02T06:00:00Z", "2024-01-03T06:00:00Z"]
        );
        // Created at the fire time exactly: that one is not owed.
        assert_eq!(
            due(&all, None, "2024-01-01T06:00:00Z", "2024-01-01T06:00:30Z"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn run_all_is_capped_at_the_latest_thousand() {
        let all = schedule("* * * * *", Missed::RunAll);
        let fired = due_fire_times(
            &all,
            Some(utc("2024-01-01T00:00:00Z")),
            utc("2023-01-01T00:00:00Z"),
            utc("2024-01-08T00:00:30Z"),
        );
        assert_eq!(fired.len(), MAX_CATCH_UP);
        assert_eq!(fired[fired.len() - 1], utc("2024-01-08T00:00:00Z"));
        assert_eq!(
            fired[0],
            utc("2024-01-08T00:00:00Z") - TimeDelta::minutes(999)
        );
        assert!(
            fired
                .windows(2)
                .all(|w| w[1] - w[0] == TimeDelta::minutes(1))
        );
        // Fewer than the cap: all of them, counted from the last fire.
        let hourly = schedule("0 * * * *", Missed::RunAll);
        assert_eq!(
            due_fire_times(
                &hourly,
                Some(utc("2024-01-01T00:00:00Z")),
                utc("2023-01-01T00:00:00Z"),
                utc("2024-01-08T00:00:30Z"),
            )
            .len(),
            7 * 24
        );
    }

    #[test]
    fn run_once_after_a_long_pause_finds_the_latest() {
        let yearly = schedule("0 0 1 1 *", Missed::RunOnce);
        assert_eq!(
            due(
                &yearly,
                Some("2015-01-01T00:00:00Z"),
                "2014-01-01T00:00:00Z",
                "2024-06-01T00:00:00Z"
            ),
            ["2024-01-01T00:00:00Z"]
        );
    }

    #[test]
    fn due_times_follow_the_zone() {
        let paris = CronSchedule::from_schedule(&Schedule {
            cron: "30 2 * * *".into(),
            timezone: "Europe/Paris".into(),
            missed: Missed::RunAll,
        })
        .unwrap();
        assert_eq!(
            due(
                &paris,
                Some("2024-03-29T01:30:00Z"),
                "2024-01-01T00:00:00Z",
                "2024-04-01T12:00:00Z"
            ),
            [
                "2024-03-30T01:30:00Z",
                "2024-03-31T01:00:00Z",
                "2024-04-01T00:30:00Z"
            ]
        );
    }

    #[test]
    fn schedule_errors_name_the_field() {
        let bad = |cron: &str, timezone: &str| {
            CronSchedule::from_schedule(&Schedule {
                cron: cron.into(),
                timezone: timezone.into(),
                missed: Missed::Skip,
            })
            .unwrap_err()
        };
        assert!(bad("0 6 * *", "UTC").starts_with("cron: "));
        assert!(bad("0 6 * * *", "Europe/Nowhere").starts_with("timezone: unknown time zone"));
    }

    #[test]
    fn unknown_zone_is_a_compile_error_at_its_path() {
        let text = "name: daily\nschedule: {cron: \"0 6 * * *\", timezone: Europe/Nowhere}\nnodes:\n  - {id: a, type: transform, config: {output: {x: 1}}}\n";
        let err = crate::compile_text(text, "wf.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("schedule.timezone: unknown time zone `Europe/Nowhere`"),
            "{err}"
        );
        let ok = text.replace("Europe/Nowhere", "Europe/Paris");
        let compiled = crate::compile_text(&ok, "wf.yaml").unwrap();
        let schedule = compiled.ir.schedule().unwrap();
        assert_eq!(
            CronSchedule::from_schedule(schedule).unwrap().tz,
            Tz::Iana(chrono_tz::Europe::Paris)
        );
    }
}
