//! A parameter sweep over a cluster's workers: [`ClusterRunner`] hands the sweep's runs to the
//! `sweep` pool of the queue, [`sweep_worker`] loops of `tradeloom worker` (and `serve`) processes
//! run them, and each outcome comes back on a results pool of the sweep's own
//! (`sweep-results:<sweep_id>`), which the sweep's process reads.
//!
//! Delivery is at least once: a worker killed after posting an outcome but before acknowledging
//! its task leaves the task to run again, and the sweep records the first outcome of each run (a
//! backtest is deterministic; the second run only leaves a second run folder). Every task and
//! outcome carries the claim of the sweep's process, so a resumed sweep ignores outcomes meant
//! for an earlier process of the same sweep. A task that keeps failing (its worker dies each
//! time) is dead-lettered by the queue; the sweep marks that run failed.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::Instrument;
use tradeloom_queue::{Delivery, NewTask, Queue};
use tradeloom_runs::sweep::{PointJob, PointOutcome, PointRunner, SweepError};

use crate::worker::{InFlight, VISIBILITY, consume, post_then_ack};

/// The pool of sweep runs.
pub const SWEEP_POOL: &str = "sweep";

/// The results pools are `sweep-results:<sweep_id>`.
const RESULTS_PREFIX: &str = "sweep-results:";

/// How often the sweep's process looks for dead-lettered runs.
const DEAD_LETTER_EVERY: Duration = Duration::from_secs(5);

/// Whether the registered process `entry` runs sweep runs (a worker of every pool, or of
/// `sweep`).
pub fn takes_sweeps(entry: &tradeloom_queue::cluster::ProcessEntry) -> bool {
    entry.roles.iter().any(|r| r == "worker")
        && (entry.pools.is_empty() || entry.pools.iter().any(|p| p == SWEEP_POOL))
}

/// A sweep run as a task of the `sweep` pool.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SweepTask {
    job: PointJob,
    /// The sweep process's claim: echoed in the outcome.
    claim: String,
    /// Where the outcome goes (a `sweep-results:` pool).
    reply_to: String,
}

/// An outcome on a results pool.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SweepReply {
    claim: String,
    key: String,
    outcome: PointOutcome,
}

/// Runs a sweep's jobs on the workers of `queue` (a blocking call: it runs `handle`'s futures
/// to completion, so call it off the async runtime's threads, e.g. in `spawn_blocking` or a
/// thread of its own).
#[derive(Debug)]
pub struct ClusterRunner {
    pub queue: Arc<dyn Queue>,
    pub handle: tokio::runtime::Handle,
}

impl PointRunner for ClusterRunner {
    fn run(
        &self,
        jobs: Vec<PointJob>,
        done: &mut dyn FnMut(&str, PointOutcome),
    ) -> Result<(), SweepError> {
        let Some(first) = jobs.first() else {
            return Ok(());
        };
        let sweep_id = first.sweep_id.clone();
        let claim = uuid::Uuid::now_v7().simple().to_string();
        let reply_to = format!("{RESULTS_PREFIX}{sweep_id}");
        let queue_error = |e: tradeloom_queue::QueueError| {
            SweepError::Syntax(format!("sweep {sweep_id}: the cluster's queue: {e}"))
        };
        self.handle.block_on(async {
            let mut pending: HashSet<String> = HashSet::with_capacity(jobs.len());
            for job in jobs {
                pending.insert(job.key.clone());
                let task = SweepTask {
                    job,
                    claim: claim.clone(),
                    reply_to: reply_to.clone(),
                };
                let payload = serde_json::to_value(&task)
                    .map_err(|e| SweepError::Syntax(format!("encoding a sweep task: {e}")))?;
                self.queue
                    .enqueue(NewTask::new(SWEEP_POOL, payload))
                    .await
                    .map_err(queue_error)?;
            }
            let consumer = format!("sweep-{}-{}", std::process::id(), &claim[claim.len() - 8..]);
            let mut last_dead_check = Instant::now();
            while !pending.is_empty() {
                let delivery = self
                    .queue
                    .dequeue(&reply_to, &consumer, VISIBILITY, Duration::from_millis(500))
                    .await
                    .map_err(queue_error)?;
                if let Some(delivery) = delivery {
                    match serde_json::from_value::<SweepReply>(delivery.payload.clone()) {
                        Ok(reply) if reply.claim == claim && pending.remove(&reply.key) => {
                            done(&reply.key, reply.outcome);
                        }
                        Ok(_) => {} // an earlier process's, or a second delivery
                        Err(e) => tracing::warn!(error = %e, "malformed sweep outcome dropped"),
                    }
                    self.queue.ack(&delivery.lease).await.map_err(queue_error)?;
                }
                if last_dead_check.elapsed() >= DEAD_LETTER_EVERY {
                    last_dead_check = Instant::now();
                    for dead in self
                        .queue
                        .dead_letters(SWEEP_POOL)
                        .await
                        .map_err(queue_error)?
                    {
                        let Ok(task) = serde_json::from_value::<SweepTask>(dead.payload) else {
                            continue;
                        };
                        if task.claim == claim && pending.remove(&task.job.key) {
                            done(
                                &task.job.key,
                                PointOutcome::Failed {
                                    run_id: None,
                                    error: format!(
                                        "no worker finished this run: it was delivered {} times \
                                         ({:?}); see the workers' logs",
                                        dead.attempts, dead.reason
                                    ),
                                },
                            );
                        }
                    }
                    tracing::debug!(sweep_id = %sweep_id, waiting = pending.len(), "sweep runs on the cluster's workers");
                }
            }
            Ok(())
        })
    }
}

/// Takes runs of the `sweep` pool until `shutdown` fires; each runs in `data_dir` (its run
/// folder under `<data_dir>/runs/`) and its outcome goes to the sweep's results pool.
pub async fn sweep_worker(
    queue: Arc<dyn Queue>,
    data_dir: PathBuf,
    consumer: String,
    shutdown: tokio::sync::watch::Receiver<bool>,
    in_flight: Arc<InFlight>,
) {
    let q = queue.clone();
    let handle = move |delivery: Delivery| {
        let (queue, data_dir) = (q.clone(), data_dir.clone());
        async move { handle_sweep_task(&queue, &data_dir, delivery).await }
    };
    consume(queue, SWEEP_POOL, &consumer, shutdown, in_flight, handle).await;
}

async fn handle_sweep_task(queue: &Arc<dyn Queue>, data_dir: &std::path::Path, d: Delivery) {
    let task = match serde_json::from_value::<SweepTask>(d.payload.clone()) {
        Ok(t) if t.job.names_are_safe() && t.reply_to.starts_with(RESULTS_PREFIX) => t,
        Ok(_) | Err(_) => {
            tracing::error!(payload = %d.payload, "malformed sweep task dropped");
            let _ = queue.ack(&d.lease).await;
            return;
        }
    };
    let span = tracing::info_span!("sweep_run", sweep_id = %task.job.sweep_id, key = %task.job.key);
    run_sweep_task(queue, data_dir, task, &d)
        .instrument(span)
        .await;
}

async fn run_sweep_task(
    queue: &Arc<dyn Queue>,
    data_dir: &std::path::Path,
    task: SweepTask,
    d: &Delivery,
) {
    let job = task.job.clone();
    let dir = data_dir.to_path_buf();
    let work = tokio::task::spawn_blocking(move || job.run(&dir));
    let heartbeat = async {
        loop {
            tokio::time::sleep(VISIBILITY / 3).await;
            if let Err(e) = queue.extend(&d.lease, VISIBILITY).await {
                tracing::warn!(error = %e, "lost the lease of a sweep run");
            }
        }
    };
    let outcome = tokio::select! {
        r = work => r,
        () = heartbeat => return,
    };
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => PointOutcome::Failed {
            run_id: None,
            error: format!("the run's thread: {e}"),
        },
    };
    let reply = SweepReply {
        claim: task.claim,
        key: task.job.key,
        outcome,
    };
    post_then_ack(queue, &d.lease, &task.reply_to, &reply, "sweep outcome").await;
}
