//! Which process runs a simulation job, and jobs whose process died.
//!
//! The process that starts running a job records itself ([`ProcessOwner`]: pid, process start
//! time, boot id, host) in the job's `job_started` event. A job still `pending`/`running` whose
//! recorded owner is gone was interrupted (killed, crashed): [`interrupt_orphaned_jobs`] marks it
//! `interrupted` (journaled as a `job_interrupted` event with the reason) so that it no longer
//! looks as if it were running; it resumes when triggered again or when `serve` starts.

use serde::Serialize;
use tradeloom_safety::{Liveness, ProcessOwner};
use tradeloom_store::{EventFilter, JobStatus, Store, StoreError};

/// The event that names a job's owner (its payload's `owner`).
pub const OWNER_EVENT: &str = "job_started";

/// The event a driver writes when it stops for a pause: the job has no owner until a driver
/// starts it again (so a resume from another process runs it).
pub const RELEASE_EVENT: &str = "job_released";

/// A job that [`interrupt_orphaned_jobs`] marked interrupted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InterruptedJob {
    pub job_id: String,
    pub reason: String,
}

/// The owner recorded by the latest `job_started` event of the job, if any and not released
/// since (a `job_released` event of a driver that stopped for a pause).
pub async fn job_owner(
    store: &dyn Store,
    job_id: &str,
) -> Result<Option<ProcessOwner>, StoreError> {
    let mut owner = None;
    let mut after = 0;
    loop {
        let page = store
            .events(EventFilter::Job(job_id), after, tradeloom_store::MAX_PAGE)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for event in &page {
            if event.kind == RELEASE_EVENT {
                owner = None;
            } else if event.kind == OWNER_EVENT
                // An event written before owners were recorded has none; it says nothing.
                && let Ok(o) = serde_json::from_value::<ProcessOwner>(event.payload["owner"].clone())
            {
                owner = Some(o);
            }
        }
    }
    Ok(owner)
}

/// Whether another process that is alive runs the job (an owner on another host, which cannot
/// be checked, counts as alive).
pub async fn owned_elsewhere(store: &dyn Store, job_id: &str) -> Result<bool, StoreError> {
    let Some(owner) = job_owner(store, job_id).await? else {
        return Ok(false);
    };
    if owner == ProcessOwner::current() {
        return Ok(false);
    }
    Ok(!matches!(owner.liveness(), Liveness::Gone(_)))
}

/// Marks every `pending`/`running` job whose recorded owner process is gone `interrupted`.
/// Jobs with no recorded owner (never started, or started by an older version) are left alone.
pub async fn interrupt_orphaned_jobs(store: &dyn Store) -> Result<Vec<InterruptedJob>, StoreError> {
    // Newest first, as the jobs list shows them.
    let unfinished: Vec<String> = store
        .all_jobs()
        .await?
        .into_iter()
        .rev()
        .filter(|j| matches!(j.status, JobStatus::Pending | JobStatus::Running))
        .map(|j| j.id)
        .collect();
    let mut interrupted = Vec::new();
    for job_id in unfinished {
        let Some(owner) = job_owner(store, &job_id).await? else {
            continue;
        };
        if let Liveness::Gone(why) = owner.liveness() {
            let reason = format!("interrupted: {why} (host {})", owner.host);
            if store.interrupt_job(&job_id, &reason).await?.is_some() {
                tracing::warn!(job_id = %job_id, reason = %reason, "simulation job interrupted");
                interrupted.push(InterruptedJob { job_id, reason });
            }
        }
    }
    Ok(interrupted)
}
