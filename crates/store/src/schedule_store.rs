//! [`ScheduleStore`]: the claimed cron fire times of scheduled workflows.

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};

use crate::error::StoreError;
use crate::schedule_fire::ScheduleFire;
use crate::sql::{Db, now, page, sql};

/// Fire times of workflow schedules, each claimed at most once.
#[async_trait]
pub trait ScheduleStore: Send + Sync {
    /// Claims cron fire time `fire_at` of a workflow: `true` for the first caller only, `false`
    /// when it is claimed already (by this or another scheduler), so each fire time starts at
    /// most one run. Stored to the microsecond. [`StoreError::NotFound`] if there is no such
    /// workflow.
    async fn claim_schedule_fire(
        &self,
        workflow_id: &str,
        fire_at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Records the run a claimed fire time started. [`StoreError::NotFound`] if the fire time
    /// was not claimed.
    async fn set_schedule_fire_run(
        &self,
        workflow_id: &str,
        fire_at: DateTime<Utc>,
        run_id: &str,
    ) -> Result<(), StoreError>;

    /// Records why starting the run of a claimed fire time failed. [`StoreError::NotFound`] if
    /// the fire time was not claimed.
    async fn set_schedule_fire_error(
        &self,
        workflow_id: &str,
        fire_at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError>;

    /// The latest claimed fire time of a workflow (`None` if none, or no such workflow).
    async fn last_schedule_fire(
        &self,
        workflow_id: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Claimed fire times of a workflow, newest first (`limit` 0 means 100).
    async fn schedule_fires(
        &self,
        workflow_id: &str,
        limit: u32,
    ) -> Result<Vec<ScheduleFire>, StoreError>;
}

#[async_trait]
impl<D: Db> ScheduleStore for D {
    async fn claim_schedule_fire(
        &self,
        workflow_id: &str,
        fire_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sql(
            "INSERT INTO workflow_schedule_fires (workflow_id, fire_at, created_at) \
             VALUES ($1, $2, $3) ON CONFLICT (workflow_id, fire_at) DO NOTHING",
        )
        .bind(workflow_id)
        .bind(fire_at.trunc_subsecs(6))
        .bind(now())
        .execute(self.pool())
        .await
        .map_err(|e| {
            if e.as_database_error()
                .is_some_and(|d| d.is_foreign_key_violation())
            {
                StoreError::not_found(format!("workflow {workflow_id}"))
            } else {
                StoreError::db("claim a schedule fire time")(e)
            }
        })?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_schedule_fire_run(
        &self,
        workflow_id: &str,
        fire_at: DateTime<Utc>,
        run_id: &str,
    ) -> Result<(), StoreError> {
        let done = sql("UPDATE workflow_schedule_fires SET run_id = $3 \
             WHERE workflow_id = $1 AND fire_at = $2")
        .bind(workflow_id)
        .bind(fire_at.trunc_subsecs(6))
        .bind(run_id)
        .execute(self.pool())
        .await
        .map_err(StoreError::db("record a scheduled run"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found(format!(
                "schedule fire time {fire_at} of workflow {workflow_id}"
            )));
        }
        Ok(())
    }

    async fn set_schedule_fire_error(
        &self,
        workflow_id: &str,
        fire_at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError> {
        let done = sql("UPDATE workflow_schedule_fires SET error = $3 \
             WHERE workflow_id = $1 AND fire_at = $2")
        .bind(workflow_id)
        .bind(fire_at.trunc_subsecs(6))
        .bind(error)
        .execute(self.pool())
        .await
        .map_err(StoreError::db("record a scheduled run's failure"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found(format!(
                "schedule fire time {fire_at} of workflow {workflow_id}"
            )));
        }
        Ok(())
    }

    async fn last_schedule_fire(
        &self,
        workflow_id: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row: Option<(DateTime<Utc>,)> = sql(
            "SELECT fire_at FROM workflow_schedule_fires WHERE workflow_id = $1 \
             ORDER BY fire_at DESC LIMIT 1",
        )
        .bind(workflow_id)
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::db("read a workflow's last schedule fire"))?;
        Ok(row.map(|(at,)| at))
    }

    async fn schedule_fires(
        &self,
        workflow_id: &str,
        limit: u32,
    ) -> Result<Vec<ScheduleFire>, StoreError> {
        use crate::schedule_fire::{SCHEDULE_FIRE_COLUMNS, ScheduleFireRow};
        let rows: Vec<ScheduleFireRow> = sql(format!(
            "SELECT {SCHEDULE_FIRE_COLUMNS} FROM workflow_schedule_fires \
             WHERE workflow_id = $1 ORDER BY fire_at DESC LIMIT $2"
        ))
        .bind(workflow_id)
        .bind(page(limit))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::db("list a workflow's schedule fires"))?;
        Ok(rows.into_iter().map(ScheduleFireRow::into_fire).collect())
    }
}
