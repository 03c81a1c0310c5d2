//! Helpers of the cron tests: instants, zones and the next fire times of an expression.

use chrono::{DateTime, Utc};

use super::{CronExpr, Tz};

pub(super) fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .with_timezone(&Utc)
}

pub(super) fn tz(name: &str) -> Tz {
    Tz::parse(name).unwrap()
}

/// The next `n` fire times after `from` (RFC 3339, UTC).
pub(super) fn fires(cron: &str, zone: &str, from: &str, n: usize) -> Vec<String> {
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
