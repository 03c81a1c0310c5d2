//! A user's pause, resume and cancel of a job, and who drives a job after one.
//!
//! The job's status in the store is the one switch: [`tradeloom_store::JobStore::control_job`]
//! changes it, the store's claim of a model-day refuses to start a day of a paused or cancelled
//! job, and the driver looks at it between dates (a paused job's driver ends; a cancelled one's
//! finishes the job). A pause or cancel therefore reaches a job whichever process runs it (the
//! server, or `tradeloom simulate` on the same store). A resume in the process that runs the job
//! lets its driver carry on; elsewhere it starts a driver, unless another live process owns the
//! job.

use std::sync::Arc;

use tradeloom_store::{Job, JobAction, JobControl, JobStatus};

use super::simulator::{SimEvent, Simulator};
use crate::error::AgentError;

impl Simulator {
    /// Pauses `job_id` (`pending`, `running` or `interrupted` → `paused`): no new model-day
    /// starts, those in flight finish, the completed ones stay. `by` names who asked.
    pub async fn pause(&self, job_id: &str, by: &str) -> Result<Job, AgentError> {
        let _serial = self.trigger_lock.lock().await;
        let job = self.control(job_id, JobAction::Pause, by).await?;
        tracing::info!(job_id, by, "simulation job paused");
        Ok(job)
    }

    /// Cancels `job_id` (any unfinished status → `cancelled`): its model-days not started are
    /// `cancelled`, those in flight finish. `by` names who asked.
    pub async fn cancel(&self, job_id: &str, by: &str) -> Result<Job, AgentError> {
        let _serial = self.trigger_lock.lock().await;
        let job = self.control(job_id, JobAction::Cancel, by).await?;
        tracing::info!(job_id, by, "simulation job cancelled");
        // A driver in this process ends the job at its next date; without one, nothing would
        // announce the end.
        if !self.running.lock().await.contains(job_id) {
            let _ = self.events.send(SimEvent::JobFinished {
                job_id: job_id.to_string(),
                status: JobStatus::Cancelled,
            });
        }
        Ok(job)
    }

    /// Resumes a paused job (`paused` → `running`) in the background: the driver of this
    /// process carries on if it is still finishing its in-flight days, else a new one starts —
    /// unless another live process runs the job (it carries on by itself). Refused with
    /// [`AgentError::Busy`] (the job stays paused) when `max_concurrent_jobs` other jobs run.
    pub async fn resume(self: &Arc<Self>, job_id: &str, by: &str) -> Result<Job, AgentError> {
        let _serial = self.trigger_lock.lock().await;
        let current = self.store.job(job_id).await?;
        // The `running` lock is held from the busy check to the status change, so a driver
        // that is ending sees either the old status (and is re-run by `drive_until_held`) or
        // the new one (and carries on).
        let mut running = self.running.lock().await;
        let mine = running.contains(job_id);
        if current.status == JobStatus::Paused
            && !mine
            && running.len() >= self.options.max_concurrent_jobs.max(1)
        {
            let mut ids: Vec<&String> = running.iter().collect();
            ids.sort();
            return Err(AgentError::Busy {
                running_job_id: ids.first().map(|s| s.to_string()).unwrap_or_default(),
                limit: self.options.max_concurrent_jobs.max(1),
            });
        }
        let job = self.control(job_id, JobAction::Resume, by).await?;
        tracing::info!(job_id, by, "simulation job resumed");
        if !mine && !crate::job_owner::owned_elsewhere(&*self.store, job_id).await? {
            // Days left `running` by a process that died while the job was paused.
            self.store.reset_running_model_days(job_id).await?;
            running.insert(job_id.to_string());
            drop(running);
            self.spawn_driver(job_id.to_string());
        }
        Ok(job)
    }

    async fn control(&self, job_id: &str, action: JobAction, by: &str) -> Result<Job, AgentError> {
        match self.store.control_job(job_id, action, by).await? {
            JobControl::Done(job) => Ok(job),
            JobControl::Refused(job) => Err(job_state_error(&job, action)),
        }
    }

    /// Runs `job_id` on a background task; it must be in `running` already and is removed from
    /// it when the job is no longer to be driven here (see [`Simulator::drive_until_held`]).
    pub(super) fn spawn_driver(self: &Arc<Self>, job_id: String) {
        let me = Arc::clone(self);
        tokio::spawn(async move { me.drive_until_held(&job_id).await });
    }

    /// Runs the job until it ends or is paused, then leaves `running` — unless a resume came
    /// while the driver was ending (the job is `running` again), in which case it runs on.
    pub(super) async fn drive_until_held(&self, job_id: &str) {
        loop {
            // Ended for a pause or a cancel: a resume or a re-trigger may have come meanwhile.
            let held = match self.run_job(job_id).await {
                // `pending`: re-triggered after the cancel while this driver was ending.
                Ok(job) => matches!(
                    job.status,
                    JobStatus::Paused | JobStatus::Cancelled | JobStatus::Pending
                ),
                Err(e) => {
                    tracing::error!(job_id = %job_id, error = %e, "simulation job stopped");
                    false
                }
            };
            let mut running = self.running.lock().await;
            // Only a driver that ended for a pause or a cancel runs again, and only if the job
            // was resumed or re-triggered since (a job left running for other reasons is not
            // looped on).
            // (A resume makes it `running`; a re-trigger of a cancelled job, `pending`.)
            let resumed = held
                && matches!(
                    self.store.job(job_id).await.map(|j| j.status),
                    Ok(JobStatus::Running | JobStatus::Pending)
                );
            if !resumed {
                running.remove(job_id);
                return;
            }
        }
    }
}

/// The 409 of an action the job's status does not allow.
pub(crate) fn job_state_error(job: &Job, action: JobAction) -> AgentError {
    let allowed: Vec<&str> = action.allowed_from().iter().map(|s| s.as_str()).collect();
    let allowed = match allowed.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    AgentError::JobState {
        job_id: job.id.clone(),
        status: job.status,
        action,
        allowed,
        done: match action {
            JobAction::Pause => "paused",
            JobAction::Resume => "resumed",
            JobAction::Cancel => "cancelled",
        },
    }
}

/// Resumes a paused job and runs it in this process until it ends or is paused again (the
/// batch mode's `tradeloom jobs resume`). When another live process owns the job (a `serve`
/// that is finishing its in-flight days), that process carries on and this returns the resumed
/// job at once.
pub async fn resume_to_end(
    simulator: &Arc<Simulator>,
    job_id: &str,
    by: &str,
) -> Result<Job, AgentError> {
    let job = {
        let _serial = simulator.trigger_lock.lock().await;
        let job = simulator.control(job_id, JobAction::Resume, by).await?;
        if crate::job_owner::owned_elsewhere(&*simulator.store, job_id).await? {
            return Ok(job);
        }
        simulator.store.reset_running_model_days(job_id).await?;
        simulator.running.lock().await.insert(job_id.to_string());
        job
    };
    tracing::info!(job_id, by, "simulation job resumed");
    let result = simulator.run_job(&job.id).await;
    simulator.running.lock().await.remove(job_id);
    result
}
