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

mod error;
mod expr;
#[cfg(test)]
mod test_time;
mod tz;

use std::collections::VecDeque;

use chrono::{DateTime, TimeDelta, Utc};

use crate::definition::{Missed, Schedule};

pub use error::{CronError, FieldError, ScheduleError, TzError};
pub use expr::CronExpr;
pub use tz::Tz;

/// Under [`Missed::Skip`], a fire time is still started if it is at most this old when the
/// scheduler sees it. A scheduler must therefore look at least this often (the orchestrator's
/// ticks every few seconds).
pub const SKIP_GRACE: TimeDelta = TimeDelta::seconds(60);

/// Under [`Missed::RunAll`], at most this many missed fire times are started after a pause (the
/// latest ones; older ones are dropped), so a minutely schedule back from a week's outage starts
/// 1000 runs, not 10,080.
pub const MAX_CATCH_UP: usize = 1000;

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
    pub fn from_schedule(schedule: &Schedule) -> Result<CronSchedule, ScheduleError> {
        check_cron(&schedule.cron).map_err(ScheduleError::Cron)?;
        Ok(CronSchedule {
            cron: CronExpr::parse(&schedule.cron).map_err(ScheduleError::Cron)?,
            tz: Tz::parse(&schedule.timezone).map_err(ScheduleError::Timezone)?,
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
pub fn check_cron(text: &str) -> Result<(), CronError> {
    let expr = CronExpr::parse(text)?;
    if !expr.can_fire() {
        return Err(CronError::NeverFires {
            text: expr.to_string(),
        });
    }
    Ok(())
}

/// Checks a time zone: `UTC`, a fixed offset (`+02:00`, `-0530`) or a name the IANA database
/// knows (`Europe/Paris`, `America/Argentina/Buenos_Aires`).
pub fn check_timezone(text: &str) -> Result<(), TzError> {
    Tz::parse(text).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_time::utc;

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
            .to_string()
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
