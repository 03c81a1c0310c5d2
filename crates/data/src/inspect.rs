//! `tradeloom data inspect`: what a bar file holds — rows, range, the bar interval, gaps, a price
//! summary — and the first validation error if there is one.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use serde::Serialize;
use tradeloom_core::fixed::{FIXED_PRECISION, format_raw};
use tradeloom_core::{Currency, Instrument, InstrumentId, Symbol, UnixNanos};

use crate::error::DataError;
use crate::format::DataFormat;
use crate::open_bars;

/// Distinct intervals tracked for the interval histogram.
const MAX_DISTINCT_DELTAS: usize = 10_000;
const LARGEST_GAPS: usize = 5;

/// A stretch between two consecutive bars longer than the usual interval.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Gap {
    pub from: UnixNanos,
    pub to: UnixNanos,
    pub seconds: f64,
}

/// The summary of one bar file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InspectReport {
    pub path: String,
    pub format: DataFormat,
    pub columns: Vec<String>,
    /// Valid rows read (up to the first error, if any).
    pub rows: u64,
    pub first: Option<UnixNanos>,
    pub last: Option<UnixNanos>,
    /// The most common spacing of consecutive bars.
    pub interval_seconds: Option<f64>,
    /// Spacings longer than the interval (weekends and holidays count for daily data).
    pub gaps: u64,
    /// Bars that would fill those gaps at the usual interval.
    pub missing_bars: u64,
    pub largest_gaps: Vec<Gap>,
    pub first_open: Option<String>,
    pub last_close: Option<String>,
    pub min_low: Option<String>,
    pub max_high: Option<String>,
    pub total_volume: String,
    /// The first validation error, with its place.
    pub error: Option<String>,
}

fn price_text(raw: i64) -> String {
    format_raw(i128::from(raw), FIXED_PRECISION, 0)
}

/// Reads the whole file and summarises it; a validation error ends the read and is reported
/// in the result, not as an `Err` (which is for files that cannot be opened at all).
pub fn inspect(path: &Path, format: Option<DataFormat>) -> Result<InspectReport, DataError> {
    let instrument = Instrument::new(
        InstrumentId(0),
        Symbol::new("INSPECT").map_err(|e| DataError::Schema {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?,
        "inspect",
        FIXED_PRECISION,
        FIXED_PRECISION,
        Currency::USD,
    )
    .map_err(|e| DataError::Schema {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut reader = open_bars(path, format, &instrument)?;
    let mut report = InspectReport {
        path: path.display().to_string(),
        format: reader.format(),
        columns: reader.columns(),
        rows: 0,
        first: None,
        last: None,
        interval_seconds: None,
        gaps: 0,
        missing_bars: 0,
        largest_gaps: Vec::new(),
        first_open: None,
        last_close: None,
        min_low: None,
        max_high: None,
        total_volume: String::new(),
        error: None,
    };
    let mut deltas: HashMap<i64, u64> = HashMap::new();
    let mut largest: Vec<(i64, UnixNanos, UnixNanos)> = Vec::new();
    let (mut min_low, mut max_high) = (i64::MAX, i64::MIN);
    let mut last_close = 0i64;
    let mut volume: i128 = 0;
    for item in reader.by_ref() {
        let bar = match item {
            Ok(bar) => bar,
            Err(e) => {
                report.error = Some(e.to_string());
                break;
            }
        };
        if let Some(prev) = report.last {
            let delta = bar.ts.0 - prev.0;
            if deltas.len() < MAX_DISTINCT_DELTAS || deltas.contains_key(&delta) {
                *deltas.entry(delta).or_default() += 1;
            }
            largest.push((delta, prev, bar.ts));
            largest.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            largest.truncate(LARGEST_GAPS);
        } else {
            report.first = Some(bar.ts);
            report.first_open = Some(price_text(bar.open.raw()));
        }
        report.last = Some(bar.ts);
        report.rows += 1;
        min_low = min_low.min(bar.low.raw());
        max_high = max_high.max(bar.high.raw());
        last_close = bar.close.raw();
        volume += i128::from(bar.volume.raw());
    }
    if report.rows > 0 {
        report.last_close = Some(price_text(last_close));
        report.min_low = Some(price_text(min_low));
        report.max_high = Some(price_text(max_high));
    }
    report.total_volume = format_raw(volume, FIXED_PRECISION, 0);
    // The most common delta; ties go to the smaller one.
    if let Some((&interval, _)) = deltas.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))) {
        report.interval_seconds = Some(interval as f64 / 1e9);
        for (&delta, &count) in &deltas {
            if delta > interval && interval > 0 {
                report.gaps += count;
                report.missing_bars += count * (delta / interval - 1) as u64;
            }
        }
        report.largest_gaps = largest
            .into_iter()
            .filter(|(d, _, _)| *d > interval)
            .map(|(d, from, to)| Gap {
                from,
                to,
                seconds: d as f64 / 1e9,
            })
            .collect();
    }
    Ok(report)
}

fn human_seconds(s: f64) -> String {
    if s >= 86_400.0 && s % 86_400.0 == 0.0 {
        format!("{} day(s)", s / 86_400.0)
    } else if s >= 3600.0 && s % 3600.0 == 0.0 {
        format!("{} hour(s)", s / 3600.0)
    } else if s >= 60.0 && s % 60.0 == 0.0 {
        format!("{} minute(s)", s / 60.0)
    } else {
        format!("{s} s")
    }
}

impl fmt::Display for InspectReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |x: &Option<String>| x.clone().unwrap_or_else(|| "–".to_string());
        let ts = |x: Option<UnixNanos>| x.map_or("–".to_string(), |t| t.to_string());
        writeln!(f, "file        {} ({})", self.path, self.format)?;
        writeln!(f, "columns     {}", self.columns.join(", "))?;
        writeln!(f, "rows        {}", self.rows)?;
        writeln!(f, "range       {} → {}", ts(self.first), ts(self.last))?;
        writeln!(
            f,
            "interval    {}",
            self.interval_seconds.map_or("–".to_string(), human_seconds)
        )?;
        writeln!(
            f,
            "gaps        {} (≈ {} missing bars at the interval)",
            self.gaps, self.missing_bars
        )?;
        for g in &self.largest_gaps {
            writeln!(f, "  {} → {} ({})", g.from, g.to, human_seconds(g.seconds))?;
        }
        writeln!(f, "first open  {}", opt(&self.first_open))?;
        writeln!(f, "last close  {}", opt(&self.last_close))?;
        writeln!(
            f,
            "low / high  {} / {}",
            opt(&self.min_low),
            opt(&self.max_high)
        )?;
        writeln!(f, "volume      {}", self.total_volume)?;
        match &self.error {
            Some(e) => writeln!(f, "INVALID     {e}"),
            None => writeln!(f, "valid       yes"),
        }
    }
}
