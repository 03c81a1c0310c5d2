//! Cron fire times that a scheduler claimed for a workflow. A fire time is claimed by inserting
//! its `(workflow_id, fire_at)` row: the primary key lets exactly one scheduler win it, so each
//! fire time starts at most one run, however many schedulers share the database.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::FromRow;

/// A claimed fire time and what came of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScheduleFire {
    pub workflow_id: String,
    /// The scheduled instant (not when the claim happened).
    pub fire_at: DateTime<Utc>,
    /// The run it started; `None` until then, and for good when starting failed (see `error`)
    /// or the scheduler stopped between claiming and starting.
    pub run_id: Option<String>,
    /// Why starting the run failed.
    pub error: Option<String>,
    /// When it was claimed.
    pub created_at: DateTime<Utc>,
}

pub(crate) const SCHEDULE_FIRE_COLUMNS: &str = "workflow_id, fire_at, run_id, error, created_at";

#[derive(FromRow)]
pub(crate) struct ScheduleFireRow {
    workflow_id: String,
    fire_at: DateTime<Utc>,
    run_id: Option<String>,
    error: Option<String>,
    created_at: DateTime<Utc>,
}

impl ScheduleFireRow {
    pub(crate) fn into_fire(self) -> ScheduleFire {
        ScheduleFire {
            workflow_id: self.workflow_id,
            fire_at: self.fire_at,
            run_id: self.run_id,
            error: self.error,
            created_at: self.created_at,
        }
    }
}
