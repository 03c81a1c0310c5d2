//! Jobs: one simulation request (a config, its models and dates) and its lifecycle status.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tradeloom_core::Currency;

use crate::error::StoreError;
use crate::model_day::ModelDay;

/// Status of a job, derived from its model-days once it has started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Pending,
    Running,
    /// Every model-day completed.
    Completed,
    /// Some model-days failed or were refused by the kill switch, some completed, none left
    /// to do.
    Partial,
    /// No model-day completed: every one failed or was refused (or the job itself failed).
    Failed,
    /// The process running it died before it finished (see [`crate::JobStore::interrupt_job`]):
    /// its running model-days are pending again and it resumes when triggered again or when
    /// `serve` starts. Not terminal.
    Interrupted,
    /// Paused by a user ([`crate::JobStore::control_job`]): its completed model-days are kept,
    /// no new one starts (in-flight ones finish), and nothing resumes it but a resume — not a
    /// trigger of the same config, not a restarted server. Not terminal.
    Paused,
    /// Cancelled by a user: its model-days that had not started are `cancelled`. Terminal; a
    /// trigger of the same config runs the cancelled days again.
    Cancelled,
}

impl JobStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Partial => "partial",
            JobStatus::Failed => "failed",
            JobStatus::Interrupted => "interrupted",
            JobStatus::Paused => "paused",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the job will not change any more.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Partial | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "pending" => JobStatus::Pending,
            "running" => JobStatus::Running,
            "completed" => JobStatus::Completed,
            "partial" => JobStatus::Partial,
            "failed" => JobStatus::Failed,
            "interrupted" => JobStatus::Interrupted,
            "paused" => JobStatus::Paused,
            "cancelled" => JobStatus::Cancelled,
            other => {
                return Err(format!(
                    "unknown job status `{other}`; expected pending, running, completed, partial, failed, interrupted, paused or cancelled"
                ));
            }
        })
    }
}

/// A user's control of a job (`POST /simulate/{job_id}/pause|resume|cancel`, `tradeloom jobs
/// pause|resume|cancel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobAction {
    /// `pending`, `running` or `interrupted` → `paused`.
    Pause,
    /// `paused` → `running`.
    Resume,
    /// Any unfinished status (`pending`, `running`, `interrupted`, `paused`) → `cancelled`,
    /// its model-days not started → `cancelled`.
    Cancel,
}

impl JobAction {
    pub const fn as_str(self) -> &'static str {
        match self {
            JobAction::Pause => "pause",
            JobAction::Resume => "resume",
            JobAction::Cancel => "cancel",
        }
    }

    /// The statuses a job may have for this action.
    pub const fn allowed_from(self) -> &'static [JobStatus] {
        match self {
            JobAction::Pause => &[
                JobStatus::Pending,
                JobStatus::Running,
                JobStatus::Interrupted,
            ],
            JobAction::Resume => &[JobStatus::Paused],
            JobAction::Cancel => &[
                JobStatus::Pending,
                JobStatus::Running,
                JobStatus::Interrupted,
                JobStatus::Paused,
            ],
        }
    }

    /// The status the action leads to.
    pub const fn target(self) -> JobStatus {
        match self {
            JobAction::Pause => JobStatus::Paused,
            JobAction::Resume => JobStatus::Running,
            JobAction::Cancel => JobStatus::Cancelled,
        }
    }

    /// The kind of the job event that records it.
    pub const fn event_kind(self) -> &'static str {
        match self {
            JobAction::Pause => "job_paused",
            JobAction::Resume => "job_resumed",
            JobAction::Cancel => "job_cancelled",
        }
    }
}

impl fmt::Display for JobAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`crate::JobStore::control_job`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum JobControl {
    /// The job after the action.
    Done(Job),
    /// The job's status does not allow the action; the job as it is (unchanged).
    Refused(Job),
}

/// What a job is asked to do. `models × dates` model-days are created, all pending.
#[derive(Clone, Debug)]
pub struct NewJob {
    /// The simulation config as given; its canonical form is hashed (see [`config_hash`]).
    pub config: Value,
    /// The currency of every cash, fee and value of the job.
    pub currency: Currency,
    pub models: Vec<String>,
    pub dates: Vec<NaiveDate>,
}

/// A job as stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Job {
    /// UUIDv7, so ids sort by creation time.
    pub id: String,
    pub config: Value,
    /// sha256 (hex) of the canonical config.
    pub config_hash: String,
    pub currency: Currency,
    pub status: JobStatus,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

/// Model-day counts of a job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct JobProgress {
    pub total_model_days: u64,
    pub completed: u64,
    pub failed: u64,
    /// Model-days the kill switch refused; they run again on the next trigger.
    pub refused: u64,
    /// Model-days a cancel stopped before they started; they run again on the next trigger.
    pub cancelled: u64,
    pub pending: u64,
    pub running: u64,
}

impl JobProgress {
    /// Model-days that ended without results: failed, refused or cancelled.
    pub const fn not_completed(&self) -> u64 {
        self.failed + self.refused + self.cancelled
    }

    /// The job status these counts imply: anything pending or running → running (or pending if
    /// nothing started yet); otherwise completed, failed (none completed) or partial. A day
    /// refused by the kill switch or cancelled is not completed: it counts as failed does.
    /// (A user's pause or cancel overrides it: see [`crate::JobStore::refresh_job_status`].)
    pub fn derived_status(&self, started: bool) -> JobStatus {
        if self.pending + self.running > 0 {
            if started || self.completed + self.not_completed() + self.running > 0 {
                JobStatus::Running
            } else {
                JobStatus::Pending
            }
        } else if self.not_completed() == 0 {
            JobStatus::Completed
        } else if self.completed == 0 {
            JobStatus::Failed
        } else {
            JobStatus::Partial
        }
    }
}

/// A job with its progress and every model-day (the `GET /simulate/status/{job_id}` payload).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JobReport {
    pub job: Job,
    pub progress: JobProgress,
    /// Sorted by date, then model.
    pub model_days: Vec<ModelDay>,
}

/// The sha256 (lower-case hex) of the canonical JSON of `config`: object keys sorted, no
/// whitespace. Two configs that differ only in key order or formatting hash the same.
pub fn config_hash(config: &Value) -> String {
    hex::encode(Sha256::digest(
        tradeloom_core::canonical_json(config).as_bytes(),
    ))
}

pub(crate) fn validate_new_job(job: &NewJob) -> Result<(), StoreError> {
    if job.models.is_empty() || job.dates.is_empty() {
        return Err(StoreError::Invalid(format!(
            "a job needs at least one model and one date (got {} models, {} dates)",
            job.models.len(),
            job.dates.len()
        )));
    }
    if let Some(bad) = job.models.iter().find(|m| m.trim().is_empty()) {
        return Err(StoreError::Invalid(format!("empty model name `{bad}`")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_ignores_key_order_and_whitespace() {
        let a: Value = serde_json::from_str(r#"{"b": [1, {"y": 2, "x": 1}], "a": "s"}"#)
            .expect("valid JSON literal");
        let b: Value =
            serde_json::from_str(r#"{"a":"s","b":[1,{"x":1,"y":2}]}"#).expect("valid JSON literal");
        assert_eq!(config_hash(&a), config_hash(&b));
        let c: Value =
            serde_json::from_str(r#"{"a":"s","b":[{"x":1,"y":2},1]}"#).expect("valid JSON literal");
        assert_ne!(config_hash(&a), config_hash(&c), "array order matters");
        assert_eq!(config_hash(&a).len(), 64);
    }

    #[test]
    fn derived_status() {
        let p = |completed, failed, pending, running| JobProgress {
            total_model_days: completed + failed + pending + running,
            completed,
            failed,
            refused: 0,
            cancelled: 0,
            pending,
            running,
        };
        let refused = |completed, refused| JobProgress {
            total_model_days: completed + refused,
            completed,
            refused,
            ..JobProgress::default()
        };
        assert_eq!(refused(3, 1).derived_status(true), JobStatus::Partial);
        let cancelled = JobProgress {
            total_model_days: 4,
            completed: 1,
            cancelled: 3,
            ..JobProgress::default()
        };
        assert_eq!(cancelled.derived_status(true), JobStatus::Partial);
        assert_eq!(refused(0, 4).derived_status(true), JobStatus::Failed);
        assert_eq!(p(0, 0, 4, 0).derived_status(false), JobStatus::Pending);
        assert_eq!(p(0, 0, 4, 0).derived_status(true), JobStatus::Running);
        assert_eq!(p(1, 0, 3, 0).derived_status(false), JobStatus::Running);
        assert_eq!(p(4, 0, 0, 0).derived_status(true), JobStatus::Completed);
        assert_eq!(p(3, 1, 0, 0).derived_status(true), JobStatus::Partial);
        assert_eq!(p(0, 4, 0, 0).derived_status(true), JobStatus::Failed);
    }
}
