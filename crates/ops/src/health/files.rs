//! The monitor's files under `<data_dir>/health/`: `meta_health.json` (the latest report),
//! `history.jsonl` (one line per check, bounded) and the atomic writes they share.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::HealthError;
use super::paths::{history_path, meta_health_path};
use super::report::{HealthReport, Sensors, Status};

/// `history.jsonl` is moved to `history.1.jsonl` (replacing it) once it holds this many lines,
/// so the history kept is between this many and twice this many checks (about 14 to 28 hours
/// at the default 10 s interval).
pub const HISTORY_MAX_LINES: usize = 5_000;

/// One line of `history.jsonl`: the report without its details.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub checked_at: String,
    pub rm_meta: f64,
    pub status: Status,
    pub sensors: Sensors,
}

/// Writes `bytes` to `path` through a temporary file and a rename, creating the parent folder.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), HealthError> {
    tradeloom_safety::write_atomic(path, bytes, tradeloom_safety::Durability::Renamed).map_err(
        |e| HealthError::Io {
            path: e.path,
            message: e.source.to_string(),
        },
    )
}

/// Appends one line to a JSON-lines file, creating it and its folder.
pub(crate) fn append_line(path: &Path, line: &str) -> Result<(), HealthError> {
    let io = |e: std::io::Error| HealthError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    file.write_all(&buf).map_err(io)
}

/// Saves `report` as `meta_health.json` and appends it to `history.jsonl` (rotating that at
/// [`HISTORY_MAX_LINES`]).
pub fn record(data_dir: &Path, report: &HealthReport) -> Result<(), HealthError> {
    record_with_limit(data_dir, report, HISTORY_MAX_LINES)
}

pub(crate) fn record_with_limit(
    data_dir: &Path,
    report: &HealthReport,
    max_lines: usize,
) -> Result<(), HealthError> {
    let path = meta_health_path(data_dir);
    let text = serde_json::to_string_pretty(report).map_err(|e| HealthError::Io {
        path: path.clone(),
        message: e.to_string(),
    })?;
    write_atomic(&path, text.as_bytes())?;
    let history = history_path(data_dir);
    let lines = match std::fs::read(&history) {
        Ok(bytes) => bytes.iter().filter(|&&b| b == b'\n').count(),
        Err(_) => 0,
    };
    if lines >= max_lines {
        let rotated = history.with_extension("1.jsonl");
        std::fs::rename(&history, &rotated).map_err(|e| HealthError::Io {
            path: rotated,
            message: e.to_string(),
        })?;
    }
    let entry = HistoryEntry {
        checked_at: report.checked_at.clone(),
        rm_meta: report.rm_meta,
        status: report.status,
        sensors: report.sensors,
    };
    let line = serde_json::to_string(&entry).map_err(|e| HealthError::Io {
        path: history.clone(),
        message: e.to_string(),
    })?;
    append_line(&history, &line)
}

/// The latest report (`meta_health.json`), `None` if no check has been recorded or the file
/// cannot be read as a report.
pub fn latest(data_dir: &Path) -> Option<HealthReport> {
    let text = std::fs::read_to_string(meta_health_path(data_dir)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The history, oldest first (the rotated file, then the current one).
pub fn history(data_dir: &Path) -> Vec<HistoryEntry> {
    let current = history_path(data_dir);
    [current.with_extension("1.jsonl"), current]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::health::config::HealthConfig;
    use crate::health::report::{Observations, evaluate};

    #[test]
    fn latest_and_bounded_history() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(latest(dir.path()), None);
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut last = None;
        for i in 0..7 {
            let r = evaluate(
                &HealthConfig::default(),
                &Observations::default(),
                t0 + chrono::Duration::seconds(i),
            );
            record_with_limit(dir.path(), &r, 3).unwrap();
            last = Some(r);
        }
        assert_eq!(latest(dir.path()), last);
        // 7 checks with a limit of 3: rotated after 3 and 6, so 3 + 1 lines are kept.
        let kept: Vec<String> = history(dir.path())
            .into_iter()
            .map(|h| h.checked_at)
            .collect();
        assert_eq!(
            kept,
            [
                "2026-01-01T00:00:03.000Z",
                "2026-01-01T00:00:04.000Z",
                "2026-01-01T00:00:05.000Z",
                "2026-01-01T00:00:06.000Z"
            ]
        );
        std::fs::write(meta_health_path(dir.path()), "{broken").unwrap();
        assert_eq!(latest(dir.path()), None);
    }
}
