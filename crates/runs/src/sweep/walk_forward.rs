//! Walk-forward windows: `train=2y,test=6m` splits the data's date range into rolling windows —
//! train on `[s, s + train)`, test on the following `[s + train, s + train + test)`, then move
//! `s` on by `test` — until a test window would start after the last bar.

use chrono::{Days, Months, NaiveDate};
use serde::{Deserialize, Serialize};
use tradeloom_core::UnixNanos;

use super::SweepError;

/// The most windows a walk-forward may have.
pub const MAX_WINDOWS: usize = 1000;

/// A length of calendar time: `30d`, `4w`, `6m` (months), `2y`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub months: u32,
    pub days: u32,
}

impl Period {
    pub fn parse(text: &str) -> Result<Period, String> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (n, unit) = t.split_at(split);
        let n: u32 = n.parse().map_err(|_| {
            format!("`{text}` is not a period; expected e.g. `2y`, `6m`, `4w` or `30d`")
        })?;
        let period = match unit {
            "y" => Period {
                months: n.saturating_mul(12),
                days: 0,
            },
            "m" => Period { months: n, days: 0 },
            "w" => Period {
                months: 0,
                days: n.saturating_mul(7),
            },
            "d" => Period { months: 0, days: n },
            _ => {
                return Err(format!(
                    "`{text}`: unknown unit `{unit}`; expected y (years), m (months), w (weeks) or d (days)"
                ));
            }
        };
        if n == 0 {
            return Err(format!("`{text}`: a period must be longer than 0"));
        }
        Ok(period)
    }

    /// `date` moved on by `times` periods.
    fn after(self, date: NaiveDate, times: u32) -> Option<NaiveDate> {
        date.checked_add_months(Months::new(self.months.checked_mul(times)?))?
            .checked_add_days(Days::new(u64::from(self.days.checked_mul(times)?)))
    }
}

/// `--walk-forward train=2y,test=6m`, as given and parsed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalkForward {
    pub train: String,
    pub test: String,
}

impl WalkForward {
    pub fn parse(text: &str) -> Result<WalkForward, SweepError> {
        let bad = |m: String| SweepError::WalkForward(m);
        let (mut train, mut test) = (None, None);
        for part in text.split(',') {
            match part.trim().split_once('=') {
                Some(("train", v)) => train = Some(v.trim().to_string()),
                Some(("test", v)) => test = Some(v.trim().to_string()),
                _ => {
                    return Err(bad(format!(
                        "`{}`: expected `train=PERIOD,test=PERIOD`, e.g. `train=2y,test=6m`",
                        part.trim()
                    )));
                }
            }
        }
        let (Some(train), Some(test)) = (train, test) else {
            return Err(bad(
                "both train= and test= are needed, e.g. `train=2y,test=6m`".to_string(),
            ));
        };
        Period::parse(&train).map_err(|m| bad(format!("train: {m}")))?;
        Period::parse(&test).map_err(|m| bad(format!("test: {m}")))?;
        Ok(WalkForward { train, test })
    }

    /// The windows over bars from `first` to `last` (inclusive).
    pub fn windows(&self, first: UnixNanos, last: UnixNanos) -> Result<Vec<Window>, SweepError> {
        let bad = |m: String| SweepError::WalkForward(m);
        let train = Period::parse(&self.train).map_err(bad)?;
        let test = Period::parse(&self.test).map_err(bad)?;
        let date = |t: UnixNanos| chrono::DateTime::from_timestamp_nanos(t.0).date_naive();
        let (start, last_day) = (date(first), date(last));
        let mut windows = Vec::new();
        for k in 0..MAX_WINDOWS as u32 {
            let Some(train_start) = test.after(start, k) else {
                break;
            };
            let (Some(train_end), Some(test_end)) = (
                train.after(train_start, 1),
                train.after(train_start, 1).and_then(|e| test.after(e, 1)),
            ) else {
                break;
            };
            if train_end > last_day {
                break;
            }
            windows.push(Window {
                train: DateRange::new(train_start, train_end),
                test: DateRange::new(train_end, test_end),
            });
        }
        if windows.is_empty() {
            return Err(bad(format!(
                "the data ({start} … {last_day}) is shorter than one train window of {} and a test window",
                self.train
            )));
        }
        Ok(windows)
    }
}

/// `[start, end)`, dates at midnight UTC as `YYYY-MM-DD`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DateRange {
    pub start: String,
    pub end: String,
}

impl DateRange {
    fn new(start: NaiveDate, end: NaiveDate) -> Self {
        Self {
            start: start.format("%Y-%m-%d").to_string(),
            end: end.format("%Y-%m-%d").to_string(),
        }
    }

    /// The spec's `window:` for this range.
    pub fn window_value(&self) -> yaml_serde::Value {
        let mut map = yaml_serde::Mapping::new();
        map.insert("start".into(), self.start.clone().into());
        map.insert("end".into(), self.end.clone().into());
        yaml_serde::Value::Mapping(map)
    }
}

/// One train window and the test window after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub train: DateRange,
    pub test: DateRange,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(date: &str) -> UnixNanos {
        crate::spec::parse_time(date).unwrap()
    }

    #[test]
    fn windows_roll_by_the_test_period() {
        let wf = WalkForward::parse("train=2y,test=6m").unwrap();
        let w = wf.windows(at("2004-08-19"), at("2007-03-01")).unwrap();
        let shown: Vec<(String, String, String)> = w
            .iter()
            .map(|w| {
                (
                    w.train.start.clone(),
                    w.train.end.clone(),
                    w.test.end.clone(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "2004-08-19".into(),
                    "2006-08-19".into(),
                    "2007-02-19".into()
                ),
                (
                    "2005-02-19".into(),
                    "2007-02-19".into(),
                    "2007-08-19".into()
                ),
            ]
        );
        assert_eq!(w[1].test.start, "2007-02-19");
    }

    #[test]
    fn bad_walk_forwards_say_why() {
        let e = WalkForward::parse("train=2y").unwrap_err().to_string();
        assert!(e.contains("both train= and test= are needed"), "{e}");
        let e = WalkForward::parse("train=2x,test=6m")
            .unwrap_err()
            .to_string();
        assert!(e.contains("train: `2x`: unknown unit `x`"), "{e}");
        let e = WalkForward::parse("train=0y,test=6m")
            .unwrap_err()
            .to_string();
        assert!(e.contains("longer than 0"), "{e}");
        let wf = WalkForward::parse("train=10y,test=6m").unwrap();
        let e = wf
            .windows(at("2004-08-19"), at("2007-03-01"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("shorter than one train window of 10y"), "{e}");
        assert_eq!(
            Period::parse("4w").unwrap(),
            Period {
                months: 0,
                days: 28
            }
        );
    }
}
