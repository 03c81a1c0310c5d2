//! [`JobStore`]: simulation jobs — creating, reading, listing, interrupting and finishing them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::FromRow;
use sqlx::types::Json;

use crate::error::StoreError;
use crate::job::{Job, JobAction, JobControl, JobProgress, JobReport, JobStatus, NewJob};
use crate::model_day::ModelDayStatus;
use crate::model_day_store::{MODEL_DAY_SELECT, ModelDayRow};
use crate::run_store::RunStore;
use crate::sql::{Db, corrupt, currency, now, page, sql, sql_offset};

#[derive(FromRow)]
pub(crate) struct JobRow {
    id: String,
    config: Json<Value>,
    config_hash: String,
    currency: String,
    currency_precision: i32,
    status: String,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    error: Option<String>,
}

impl JobRow {
    pub(crate) fn into_job(self) -> Result<Job, StoreError> {
        Ok(Job {
            currency: currency(&self.currency, self.currency_precision)?,
            status: self.status.parse().map_err(corrupt("jobs.status"))?,
            id: self.id,
            config: self.config.0,
            config_hash: self.config_hash,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            error: self.error,
        })
    }
}

pub(crate) const JOB_COLUMNS: &str = "id, config, config_hash, currency, currency_precision, \
     status, created_at, started_at, finished_at, error";

/// Jobs of model-day simulations (their model-days are [`crate::ModelDayStore`]'s).
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Creates a pending job with one pending model-day per `(model, date)`, in one
    /// transaction. [`StoreError::Conflict`] if a pending or running job has the same config
    /// hash (look it up with [`find_job_by_config_hash`](JobStore::find_job_by_config_hash)).
    async fn create_job(&self, job: NewJob) -> Result<Job, StoreError>;

    /// [`StoreError::NotFound`] if there is no such job.
    async fn job(&self, job_id: &str) -> Result<Job, StoreError>;

    /// The newest job whose config has this hash ([`crate::config_hash`]).
    async fn find_job_by_config_hash(&self, config_hash: &str) -> Result<Option<Job>, StoreError>;

    /// Jobs, newest first.
    async fn list_jobs(&self, limit: u32, offset: u64) -> Result<Vec<Job>, StoreError>;

    /// Every job, oldest first, read [`ALL_JOBS_PAGE`] at a time by id (so jobs created
    /// meanwhile never shift a page; they are included if created before the last page).
    async fn all_jobs(&self) -> Result<Vec<Job>, StoreError>;

    /// The oldest pending or running job, if any (for `MAX_CONCURRENT_JOBS` = 1 and
    /// `GET /simulate/current`).
    async fn current_job(&self) -> Result<Option<Job>, StoreError>;

    /// `pending`/`interrupted` → `running` (sets `started_at`; clears an interruption's error);
    /// a running job is returned unchanged.
    /// [`StoreError::Conflict`] if the job already finished.
    async fn mark_job_running(&self, job_id: &str) -> Result<Job, StoreError>;

    /// Marks a job failed as a whole (e.g. its config could not be loaded); its unfinished
    /// model-days fail with the same error.
    async fn fail_job(&self, job_id: &str, error: &str) -> Result<Job, StoreError>;

    /// Marks a `pending` or `running` job whose process died `interrupted` with `reason` (its
    /// running model-days back to `pending`, in one transaction) and appends a
    /// `job_interrupted` event. `None` when the job is no longer pending or running;
    /// [`StoreError::NotFound`] if there is no such job. [`JobStore::mark_job_running`] resumes it.
    async fn interrupt_job(&self, job_id: &str, reason: &str) -> Result<Option<Job>, StoreError>;

    /// Recomputes the job's status from its model-days (all completed → completed; none left
    /// and some failed → partial, or failed if all did; otherwise running) and stores it with
    /// `finished_at` when terminal. A `cancelled` job stays cancelled, and a `paused` one stays
    /// paused while model-days are left.
    async fn refresh_job_status(&self, job_id: &str) -> Result<Job, StoreError>;

    /// A user's pause, resume or cancel (see [`JobAction`] for what each allows), in one
    /// transaction, with a `job_paused` / `job_resumed` / `job_cancelled` event naming `by`
    /// (who asked: an API key's name, `cli`) and the status before. [`JobControl::Refused`]
    /// with the job unchanged when its status does not allow the action;
    /// [`StoreError::NotFound`] if there is no such job.
    async fn control_job(
        &self,
        job_id: &str,
        action: JobAction,
        by: &str,
    ) -> Result<JobControl, StoreError>;

    /// Deletes a job and, by cascade, everything of it. [`StoreError::NotFound`] if absent.
    async fn delete_job(&self, job_id: &str) -> Result<(), StoreError>;

    /// The job with progress counts and every model-day.
    async fn job_report(&self, job_id: &str) -> Result<JobReport, StoreError>;
}

#[async_trait]
impl<D: Db> JobStore for D {
    async fn create_job(&self, new: NewJob) -> Result<Job, StoreError> {
        crate::job::validate_new_job(&new)?;
        let mut models: Vec<&String> = Vec::new();
        for m in &new.models {
            if !models.contains(&m) {
                models.push(m);
            }
        }
        let mut dates = new.dates.clone();
        dates.sort_unstable();
        dates.dedup();
        let hash = crate::config_hash(&new.config);
        let id = uuid::Uuid::now_v7().to_string();
        let created = now();
        let mut tx = self
            .begin()
            .await
            .map_err(StoreError::db("begin creating a job"))?;
        sql(
            "INSERT INTO jobs (id, config, config_hash, currency, currency_precision, \
             status, created_at) VALUES ($1, $2, $3, $4, $5, 'pending', $6)",
        )
        .bind(&id)
        .bind(sqlx::types::Json(&new.config))
        .bind(&hash)
        .bind(new.currency.code())
        .bind(i32::from(new.currency.precision()))
        .bind(created)
        .execute(&mut tx)
        .await
        .map_err(|e| match StoreError::db("insert a job")(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!(
                "a pending or running job already exists for this config (hash {hash})"
            )),
            other => other,
        })?;
        for date in &dates {
            for model in &models {
                sql("INSERT INTO job_details (job_id, model, date, status) \
                     VALUES ($1, $2, $3, 'pending')")
                .bind(&id)
                .bind(model.as_str())
                .bind(*date)
                .execute(&mut tx)
                .await
                .map_err(StoreError::db("insert a model-day of a new job"))?;
            }
        }
        tx.commit()
            .await
            .map_err(StoreError::db("commit a new job"))?;
        self.job(&id).await
    }

    async fn job(&self, job_id: &str) -> Result<Job, StoreError> {
        let row: Option<JobRow> = sql(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
            .bind(job_id)
            .fetch_optional(self.pool())
            .await
            .map_err(StoreError::db("read a job"))?;
        row.ok_or_else(|| StoreError::not_found(format!("job {job_id}")))?
            .into_job()
    }

    async fn find_job_by_config_hash(&self, config_hash: &str) -> Result<Option<Job>, StoreError> {
        let row: Option<JobRow> = sql(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE config_hash = $1 \
             ORDER BY id DESC LIMIT 1"
        ))
        .bind(config_hash)
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::db("find a job by config hash"))?;
        row.map(JobRow::into_job).transpose()
    }

    async fn list_jobs(&self, limit: u32, offset: u64) -> Result<Vec<Job>, StoreError> {
        let rows: Vec<JobRow> = sql(format!(
            "SELECT {JOB_COLUMNS} FROM jobs ORDER BY id DESC LIMIT $1 OFFSET $2"
        ))
        .bind(page(limit))
        .bind(sql_offset(offset))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::db("list jobs"))?;
        rows.into_iter().map(JobRow::into_job).collect()
    }

    async fn all_jobs(&self) -> Result<Vec<Job>, StoreError> {
        jobs_from(self, ALL_JOBS_PAGE).await
    }

    async fn current_job(&self) -> Result<Option<Job>, StoreError> {
        let row: Option<JobRow> = sql(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE status IN ('pending', 'running') \
             ORDER BY id ASC LIMIT 1"
        ))
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::db("read the current job"))?;
        row.map(JobRow::into_job).transpose()
    }

    async fn mark_job_running(&self, job_id: &str) -> Result<Job, StoreError> {
        // Resuming an interrupted job clears the interruption's reason.
        let done = sql(
            "UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, $2), \
             error = CASE WHEN status = 'interrupted' THEN NULL ELSE error END \
             WHERE id = $1 AND status IN ('pending', 'running', 'interrupted')",
        )
        .bind(job_id)
        .bind(now())
        .execute(self.pool())
        .await
        .map_err(StoreError::db("mark a job running"))?;
        let job = self.job(job_id).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "job {job_id} is already {}; it cannot run again",
                job.status
            )));
        }
        Ok(job)
    }

    async fn fail_job(&self, job_id: &str, error: &str) -> Result<Job, StoreError> {
        let at = now();
        let mut tx = self
            .begin()
            .await
            .map_err(StoreError::db("begin failing a job"))?;
        let found = sql("UPDATE jobs SET error = $2 WHERE id = $1")
            .bind(job_id)
            .bind(error)
            .execute(&mut tx)
            .await
            .map_err(StoreError::db("record a job's error"))?;
        if found.rows_affected() == 0 {
            return Err(StoreError::not_found(format!("job {job_id}")));
        }
        sql(
            "UPDATE job_details SET status = 'failed', error = $2, finished_at = $3 \
             WHERE job_id = $1 AND status IN ('pending', 'running')",
        )
        .bind(job_id)
        .bind(error)
        .bind(at)
        .execute(&mut tx)
        .await
        .map_err(StoreError::db("fail a job's unfinished model-days"))?;
        tx.commit()
            .await
            .map_err(StoreError::db("commit a failed job"))?;
        self.refresh_job_status(job_id).await
    }

    async fn interrupt_job(&self, job_id: &str, reason: &str) -> Result<Option<Job>, StoreError> {
        let mut tx = self
            .begin()
            .await
            .map_err(StoreError::db("begin interrupting a job"))?;
        let done = sql("UPDATE jobs SET status = 'interrupted', error = $2 \
             WHERE id = $1 AND status IN ('pending', 'running')")
        .bind(job_id)
        .bind(reason)
        .execute(&mut tx)
        .await
        .map_err(StoreError::db("mark a job interrupted"))?;
        if done.rows_affected() == 0 {
            drop(tx);
            // Absent (NotFound), or finished or interrupted already: nothing to do.
            self.job(job_id).await?;
            return Ok(None);
        }
        sql(
            "UPDATE job_details SET status = 'pending', started_at = NULL \
             WHERE job_id = $1 AND status = 'running'",
        )
        .bind(job_id)
        .execute(&mut tx)
        .await
        .map_err(StoreError::db("reset an interrupted job's model-days"))?;
        tx.commit()
            .await
            .map_err(StoreError::db("commit an interrupted job"))?;
        self.append_job_event(
            job_id,
            "job_interrupted",
            &serde_json::json!({"reason": reason}),
        )
        .await?;
        Ok(Some(self.job(job_id).await?))
    }

    async fn refresh_job_status(&self, job_id: &str) -> Result<Job, StoreError> {
        let job = self.job(job_id).await?;
        let progress = progress(self, job_id).await?;
        let derived = progress.derived_status(job.started_at.is_some());
        let status = match job.status {
            // A user's cancel is final.
            JobStatus::Cancelled => JobStatus::Cancelled,
            // Paused stays paused while anything is left; a pause that came as the last days
            // were in flight leaves nothing to resume: the job ends as its days say.
            JobStatus::Paused if !derived.is_terminal() => JobStatus::Paused,
            _ => derived,
        };
        let finished = status.is_terminal().then(now);
        sql("UPDATE jobs SET status = $2, \
             finished_at = CASE WHEN $3 IS NULL THEN NULL \
                           ELSE COALESCE(finished_at, $3) END \
             WHERE id = $1")
        .bind(job_id)
        .bind(status.as_str())
        .bind(finished)
        .execute(self.pool())
        .await
        .map_err(StoreError::db("update a job's status"))?;
        self.job(job_id).await
    }

    async fn control_job(
        &self,
        job_id: &str,
        action: JobAction,
        by: &str,
    ) -> Result<JobControl, StoreError> {
        let mut before = self.job(job_id).await?;
        // A job that moved between two statuses the action is allowed from (a driver taking a
        // `pending` job to `running` right then) is acted on as it is now; a few times at most.
        for _ in 0..3 {
            match control_job_once(self, &before, action, by).await? {
                JobControl::Refused(now)
                    if now.status != before.status
                        && action.allowed_from().contains(&now.status) =>
                {
                    before = now;
                }
                answer => return Ok(answer),
            }
        }
        control_job_once(self, &before, action, by).await
    }

    async fn delete_job(&self, job_id: &str) -> Result<(), StoreError> {
        let done = sql("DELETE FROM jobs WHERE id = $1")
            .bind(job_id)
            .execute(self.pool())
            .await
            .map_err(StoreError::db("delete a job"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found(format!("job {job_id}")));
        }
        Ok(())
    }

    async fn job_report(&self, job_id: &str) -> Result<JobReport, StoreError> {
        let job = self.job(job_id).await?;
        let rows: Vec<ModelDayRow> = sql(format!(
            "{MODEL_DAY_SELECT}WHERE d.job_id = $1 ORDER BY d.date, d.model"
        ))
        .bind(job_id)
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::db("read a job's model-days"))?;
        let model_days = rows
            .into_iter()
            .map(ModelDayRow::into_model_day)
            .collect::<Result<Vec<_>, _>>()?;
        let mut progress = JobProgress::default();
        for d in &model_days {
            progress.total_model_days += 1;
            match d.status {
                ModelDayStatus::Pending => progress.pending += 1,
                ModelDayStatus::Running => progress.running += 1,
                ModelDayStatus::Completed => progress.completed += 1,
                ModelDayStatus::Failed => progress.failed += 1,
                ModelDayStatus::Refused => progress.refused += 1,
                ModelDayStatus::Cancelled => progress.cancelled += 1,
            }
        }
        Ok(JobReport {
            job,
            progress,
            model_days,
        })
    }
}

async fn progress<D: Db>(db: &D, job_id: &str) -> Result<JobProgress, StoreError> {
    let rows: Vec<(String, i64)> =
        sql("SELECT status, COUNT(*) FROM job_details WHERE job_id = $1 GROUP BY status")
            .bind(job_id)
            .fetch_all(db.pool())
            .await
            .map_err(StoreError::db("count a job's model-days"))?;
    let mut p = JobProgress::default();
    for (status, n) in rows {
        let n = u64::try_from(n).unwrap_or(0);
        p.total_model_days += n;
        match status.as_str() {
            "pending" => p.pending += n,
            "running" => p.running += n,
            "completed" => p.completed += n,
            "failed" => p.failed += n,
            "refused" => p.refused += n,
            "cancelled" => p.cancelled += n,
            other => {
                return Err(StoreError::Corrupt {
                    what: "job_details.status",
                    detail: other.to_string(),
                });
            }
        }
    }
    Ok(p)
}

/// How many jobs [`JobStore::all_jobs`] reads per query.
pub const ALL_JOBS_PAGE: u32 = 200;

/// Every job, oldest first, `page_size` per query, each page after the last id seen.
async fn jobs_from<D: Db>(db: &D, page_size: u32) -> Result<Vec<Job>, StoreError> {
    let mut jobs: Vec<Job> = Vec::new();
    loop {
        let after = jobs.last().map(|j| j.id.clone());
        let rows: Vec<JobRow> = sql(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2"
        ))
        .bind(after)
        .bind(page(page_size))
        .fetch_all(db.pool())
        .await
        .map_err(StoreError::db("list all jobs"))?;
        let full = rows.len() as i64 == page(page_size);
        for row in rows {
            jobs.push(row.into_job()?);
        }
        if !full {
            return Ok(jobs);
        }
    }
}

/// One attempt of [`JobStore::control_job`] on the job as `before` read it.
async fn control_job_once<D: Db>(
    db: &D,
    before: &Job,
    action: JobAction,
    by: &str,
) -> Result<JobControl, StoreError> {
    let job_id = before.id.as_str();
    let allowed: Vec<String> = action
        .allowed_from()
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    let at = now();
    let mut tx = db
        .begin()
        .await
        .map_err(StoreError::db("begin a job control"))?;
    // Conditional on the status read above: a change in between refuses rather than
    // acting on a status nobody saw.
    let set_status = match action {
        JobAction::Cancel => "status = 'cancelled', finished_at = $3",
        JobAction::Pause => "status = 'paused', finished_at = NULL",
        JobAction::Resume => {
            "status = 'running', started_at = COALESCE(started_at, $3), \
                              finished_at = NULL"
        }
    };
    let mut update = sql(format!(
        "UPDATE jobs SET {set_status} WHERE id = $1 AND status = $2 AND status IN ({})",
        allowed.join(", ")
    ))
    .bind(job_id)
    .bind(before.status.as_str());
    if action != JobAction::Pause {
        update = update.bind(at);
    }
    let done = update
        .execute(&mut tx)
        .await
        .map_err(StoreError::db("change a job's status"))?;
    if done.rows_affected() == 0 {
        drop(tx);
        return Ok(JobControl::Refused(db.job(job_id).await?));
    }
    let mut cancelled_days = 0;
    if action == JobAction::Cancel {
        // Days not started are cancelled; days in flight finish and keep their outcome.
        cancelled_days = sql(
            "UPDATE job_details SET status = 'cancelled', finished_at = $2, \
             error = $3 WHERE job_id = $1 AND status = 'pending'",
        )
        .bind(job_id)
        .bind(at)
        .bind(format!("cancelled by {by}"))
        .execute(&mut tx)
        .await
        .map_err(StoreError::db("cancel a job's model-days"))?
        .rows_affected();
    }
    tx.commit()
        .await
        .map_err(StoreError::db("commit a job control"))?;
    let mut payload = serde_json::json!({"by": by, "from": before.status.as_str()});
    if action == JobAction::Cancel {
        payload["cancelled_model_days"] = cancelled_days.into();
    }
    db.append_job_event(job_id, action.event_kind(), &payload)
        .await?;
    Ok(JobControl::Done(db.job(job_id).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::SqliteStore;

    #[tokio::test]
    async fn all_jobs_pages_through_every_job_oldest_first() {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("t.db"))
            .await
            .expect("open");
        let mut created = Vec::new();
        for tag in 0..5 {
            let job = store
                .create_job(NewJob {
                    config: serde_json::json!({ "tag": tag }),
                    currency: tradeloom_core::Currency::USD,
                    models: vec!["m".into()],
                    dates: vec![chrono::NaiveDate::from_ymd_opt(2025, 1, 2).expect("date")],
                })
                .await
                .expect("create");
            created.push(job.id);
        }
        for page_size in [1, 2, 5, 7] {
            let ids: Vec<String> = jobs_from(&store, page_size)
                .await
                .expect("all jobs")
                .into_iter()
                .map(|j| j.id)
                .collect();
            assert_eq!(ids, created, "page size {page_size}");
        }
        let ids: Vec<String> = store
            .all_jobs()
            .await
            .expect("all")
            .into_iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(ids, created);
    }
}
