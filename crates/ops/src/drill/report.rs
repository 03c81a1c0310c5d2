//! What a drill found: `<data-dir>/drills/<name>.json`.

use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

use super::catalogue::DrillName;

/// One asserted step of a drill.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    /// What the step checks, in a few words.
    pub name: String,
    /// Whether the observation met the expectation.
    pub passed: bool,
    /// What the step expected.
    pub expected: String,
    /// What it saw.
    pub observed: String,
}

/// A drill's report, written as `<data-dir>/drills/<name>.json`.
#[derive(Debug, Serialize)]
pub struct DrillReport {
    /// The drill.
    pub name: DrillName,
    /// Every step passed and the drill ran to its end.
    pub passed: bool,
    /// When the drill started (RFC 3339, UTC, milliseconds).
    pub started_at: String,
    /// When it ended (RFC 3339, UTC, milliseconds).
    pub finished_at: String,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// The steps in the order they were checked.
    pub steps: Vec<Step>,
    /// Why the drill stopped early (a failed required step, a setup failure, a timeout): the
    /// error and its causes joined with `: `.
    pub error: Option<String>,
    /// The drill's own folder (data dir, logs, generated files), kept for inspection.
    #[serde(serialize_with = "display_path")]
    pub work_dir: PathBuf,
}

impl DrillReport {
    /// How many of its steps passed.
    pub fn steps_passed(&self) -> usize {
        self.steps.iter().filter(|s| s.passed).count()
    }
}

fn display_path<S: Serializer>(path: &Path, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&path.display().to_string())
}

/// The wall clock as RFC 3339 (UTC).
pub(crate) fn now_rfc3339() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    // Milliseconds are enough for a drill's records.
    tradeloom_core::UnixNanos(nanos - nanos % 1_000_000).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_serialises_its_fields_in_order_with_the_work_dir_as_text() {
        let report = DrillReport {
            name: DrillName::DiskFull,
            passed: false,
            started_at: "2026-01-02T03:04:05.006Z".to_string(),
            finished_at: "2026-01-02T03:04:06.007Z".to_string(),
            duration_ms: 1001,
            steps: vec![Step {
                name: "control run".to_string(),
                passed: true,
                expected: "exit 0".to_string(),
                observed: "exit status: 0".to_string(),
            }],
            error: Some("step `x` failed".to_string()),
            work_dir: PathBuf::from("/data/drills/work/disk_full-1"),
        };
        assert_eq!(report.steps_passed(), 1);
        assert_eq!(
            serde_json::to_string(&report).unwrap(),
            r#"{"name":"disk_full","passed":false,"started_at":"2026-01-02T03:04:05.006Z","#
                .to_string()
                + r#""finished_at":"2026-01-02T03:04:06.007Z","duration_ms":1001,"#
                + r#""steps":[{"name":"control run","passed":true,"expected":"exit 0","#
                + r#""observed":"exit status: 0"}],"error":"step `x` failed","#
                + r#""work_dir":"/data/drills/work/disk_full-1"}"#
        );
    }
}
