//! Workers: take node tasks from their pool, mark the node started, run it (with its timeout,
//! a lease heartbeat, and cancellation), store the output and post the completion signal to
//! the coordinator's signal pool. The coordinator loop takes signals and applies them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tracing::Instrument;
use tradeloom_queue::{Delivery, Lease, NewTask, Queue};
use tradeloom_store::Decision;

use crate::approval_notify::{ApprovalNotifier, NotifyOutcome};
use crate::coordinator::{Applied, AttemptContext, Coordinator};
use crate::nodes::{Attempt, NodeEnv, execute};
use crate::signal::{Outcome, Signal};
pub use crate::signal::{SIGNAL_POOL, SignalEnvelope};
use tradeloom_flow::ir::NodeKind;

/// How long a delivery stays leased without a heartbeat.
pub const VISIBILITY: Duration = Duration::from_secs(30);
/// How long an idle worker waits for a task before looking again.
const POLL: Duration = Duration::from_millis(500);

/// A node task as the coordinator emits it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeTask {
    pub run_id: String,
    pub node_id: String,
    pub attempt: u32,
}

#[derive(Debug, Deserialize)]
struct TimerTask {
    kind: String,
    run_id: String,
    approval_id: String,
    node_id: String,
    attempt: u32,
}

/// The leases this process's consume loops hold now: what `GET /cluster` counts as in flight,
/// and what a stop hands back to the queue when the grace period ends before the work does.
#[derive(Debug, Default)]
pub struct InFlight {
    leases: Mutex<HashMap<u64, Lease>>,
    next: AtomicU64,
}

impl InFlight {
    pub fn new() -> Self {
        Self::default()
    }

    fn insert(&self, lease: &Lease) -> u64 {
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.leases).insert(token, lease.clone());
        token
    }

    fn remove(&self, token: u64) {
        lock(&self.leases).remove(&token);
    }

    /// How many deliveries are being handled now.
    pub fn len(&self) -> usize {
        lock(&self.leases).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every lease still held, forgotten here (their handlers were stopped).
    pub fn take_all(&self) -> Vec<Lease> {
        lock(&self.leases).drain().map(|(_, lease)| lease).collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What workers share.
#[derive(Debug)]
pub struct WorkerEnv {
    pub coordinator: Arc<Coordinator>,
    pub nodes: NodeEnv,
    /// Ids of runs that failed or were cancelled: running attempts of them stop (the
    /// coordinator's [`Coordinator::stopped_runs`]).
    pub cancellations: broadcast::Sender<String>,
    /// The deliveries this process's loops are handling.
    pub in_flight: Arc<InFlight>,
}

impl WorkerEnv {
    fn queue(&self) -> &Arc<dyn Queue> {
        self.coordinator.queue()
    }
}

/// Takes tasks of `pool` until `shutdown` fires.
pub async fn node_worker(
    env: Arc<WorkerEnv>,
    pool: String,
    consumer: String,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let queue = env.queue().clone();
    let handle = |delivery: Delivery| {
        let env = env.clone();
        async move { handle_node_task(&env, delivery).await }
    };
    if pool == TRANSFORM_POOL {
        // A transform node computes at once; what a worker waits for is its completion's
        // commit, so one worker takes several at a time (a pool limit still caps them).
        consume_concurrently(
            queue,
            &pool,
            &consumer,
            shutdown,
            TRANSFORMS_IN_FLIGHT,
            env.in_flight.clone(),
            handle,
        )
        .await;
    } else {
        let in_flight = env.in_flight.clone();
        consume(queue, &pool, &consumer, shutdown, in_flight, handle).await;
    }
}

/// The pool of `transform` nodes.
const TRANSFORM_POOL: &str = "transform";
/// Transform tasks one worker has in hand at once (each mostly waiting for its commit).
const TRANSFORMS_IN_FLIGHT: usize = 32;

async fn handle_node_task(env: &Arc<WorkerEnv>, delivery: Delivery) {
    let queue = env.queue().clone();
    let task: NodeTask = match serde_json::from_value(delivery.payload.clone()) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, payload = %delivery.payload, "malformed node task dropped");
            let _ = queue.ack(&delivery.lease).await;
            return;
        }
    };
    // Every line logged while the node runs carries the run's id and trace id and the attempt.
    let span = tracing::info_span!(
        "node",
        run_id = %task.run_id,
        trace_id = %tradeloom_core::trace_id(&task.run_id),
        node = %task.node_id,
        attempt = task.attempt
    );
    handle_parsed_task(env, task, delivery)
        .instrument(span)
        .await;
}

async fn handle_parsed_task(env: &Arc<WorkerEnv>, task: NodeTask, delivery: Delivery) {
    let queue = env.queue().clone();
    let coordinator = &env.coordinator;
    let read = match coordinator
        .attempt_context(&task.run_id, &task.node_id)
        .await
    {
        Ok(Some(read)) => read,
        // The run finished, or a patch removed the node: its transition settled the node.
        Ok(None) => {
            let _ = queue.ack(&delivery.lease).await;
            return;
        }
        Err(e) => {
            tracing::error!(run_id = %task.run_id, node = %task.node_id, error = %e, "cannot read the run of a node; retrying");
            let _ = queue
                .nack(&delivery.lease, Some(Duration::from_secs(1)))
                .await;
            return;
        }
    };
    // A `transform` node computes its output from the context and nothing else, at once: it is
    // recorded started and finished in one transition (its completion signal). Every other
    // node is marked running (committed) before it runs.
    if !matches!(read.node().kind(), NodeKind::Transform(_)) {
        let started = Signal::NodeStarted {
            node: task.node_id.clone(),
            attempt: task.attempt,
        };
        match coordinator.apply(&task.run_id, &started).await {
            Ok(Applied::Committed { .. } | Applied::Nothing | Applied::AlreadyApplied) => {}
            Ok(Applied::Stale) => {
                let _ = queue.ack(&delivery.lease).await;
                return;
            }
            Err(e) => {
                tracing::error!(run_id = %task.run_id, node = %task.node_id, error = %e, "cannot start a node; retrying");
                let _ = queue
                    .nack(&delivery.lease, Some(Duration::from_secs(1)))
                    .await;
                return;
            }
        }
    }
    tracing::info!("node started");
    let outcome = run_attempt(env, &task, &delivery, read).await;
    let Some(outcome) = outcome else {
        // The run failed or was cancelled (its transition settled the node), or a patch
        // removed the node.
        tracing::info!("node attempt stopped: the run has finished or no longer has the node");
        let _ = queue.ack(&delivery.lease).await;
        return;
    };
    match &outcome {
        Outcome::Completed { output_hash, .. } => {
            tracing::info!(output_hash = %output_hash, "node completed");
        }
        Outcome::Failed { error, retryable } => {
            tracing::warn!(error = %error, retryable, "node failed");
        }
    }
    let signal = Signal::NodeFinished {
        node: task.node_id.clone(),
        attempt: task.attempt,
        outcome,
    };
    // Applied here rather than posted to the signal pool for a coordinator loop to take: the
    // same transition, without serializing the signal (and the output) through the queue and
    // two more hand-offs between tasks. The node's task is acknowledged once the completion is
    // committed; if applying fails, the signal goes to the signal pool, whose consumers retry.
    match coordinator.route(&task.run_id, &signal).await {
        Ok(_) => {
            let _ = queue.ack(&delivery.lease).await;
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot apply a completion here; posting it to the signal pool");
        }
    }
    let envelope = SignalEnvelope {
        run_id: task.run_id.clone(),
        signal,
    };
    post_then_ack(
        &queue,
        &delivery.lease,
        SIGNAL_POOL,
        &envelope,
        "completion signal",
    )
    .await;
}

/// Posts `message` to `pool`, then acknowledges `lease`; if the post fails the delivery goes
/// back to the queue (in a second) to be handled again. A message that cannot be encoded is
/// logged and the delivery acknowledged (handling it again would fail the same way).
pub(crate) async fn post_then_ack(
    queue: &Arc<dyn Queue>,
    lease: &Lease,
    pool: &str,
    message: &impl Serialize,
    what: &str,
) {
    let posted = match serde_json::to_value(message) {
        Ok(payload) => queue.enqueue(NewTask::new(pool, payload)).await.map(|_| ()),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a {what}");
            Ok(())
        }
    };
    match posted {
        Ok(()) => {
            let _ = queue.ack(lease).await;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot post a {what}; the task runs again");
            let _ = queue.nack(lease, Some(Duration::from_secs(1))).await;
        }
    }
}

/// Runs the attempt; `None` when the run was cancelled meanwhile.
async fn run_attempt(
    env: &Arc<WorkerEnv>,
    task: &NodeTask,
    delivery: &Delivery,
    read: AttemptContext,
) -> Option<Outcome> {
    let coordinator = &env.coordinator;
    let mut cancelled = env.cancellations.subscribe();
    let node = read.node();
    let attempt = Attempt {
        run_id: &task.run_id,
        node,
        attempt: task.attempt,
        context: &read.context,
    };
    let work = async {
        match node.timeout_ms() {
            Some(ms) => match tokio::time::timeout(
                Duration::from_millis(ms),
                execute(&env.nodes, coordinator, attempt),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(crate::nodes::NodeError::transient(format!(
                    "timed out after {ms} ms (timeout_ms)"
                ))),
            },
            None => execute(&env.nodes, coordinator, attempt).await,
        }
    };
    let heartbeat = async {
        loop {
            tokio::time::sleep(VISIBILITY / 3).await;
            if let Err(e) = env.queue().extend(&delivery.lease, VISIBILITY).await {
                tracing::warn!(error = %e, "lost the lease of a running node");
            }
        }
    };
    let run_id = task.run_id.clone();
    let cancel = async move {
        loop {
            match cancelled.recv().await {
                Ok(id) if id == run_id => return,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    };
    let result = tokio::select! {
        r = work => r,
        _ = heartbeat => unreachable_heartbeat(),
        _ = cancel => return None,
    };
    Some(match result {
        // The coordinator stores the output with the completion's transition.
        Ok(output) => Outcome::Completed {
            output_hash: tradeloom_store::blob_hash(&output.to_string()),
            output,
        },
        Err(e) => Outcome::Failed {
            error: e.message,
            retryable: e.retryable,
        },
    })
}

fn unreachable_heartbeat() -> Result<serde_json::Value, crate::nodes::NodeError> {
    Err(crate::nodes::NodeError::transient("heartbeat stopped"))
}

/// Takes deliveries of `pool` and hands each to `handle` until `shutdown` fires; a delivery in
/// hand when it fires is finished first (the runtime's stop bounds that by its grace period).
pub(crate) async fn consume<F, Fut>(
    queue: Arc<dyn Queue>,
    pool: &str,
    consumer: &str,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    in_flight: Arc<InFlight>,
    mut handle: F,
) where
    F: FnMut(Delivery) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        if *shutdown.borrow() {
            return;
        }
        let delivery = tokio::select! {
            d = queue.dequeue(pool, consumer, VISIBILITY, POLL) => d,
            _ = shutdown.changed() => return,
        };
        match delivery {
            Ok(Some(d)) => {
                let token = in_flight.insert(&d.lease);
                handle(d).await;
                in_flight.remove(token);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(pool, error = %e, "dequeue failed");
                tokio::time::sleep(POLL).await;
            }
        }
    }
}

/// Like [`consume`], but with up to `limit` deliveries handled at once (each in its own task,
/// aborted with the loop). Handlers that mostly wait for their commit let signals of many runs
/// share a batch. When `shutdown` fires, no more are taken and the loop returns once those in
/// hand are done.
async fn consume_concurrently<F, Fut>(
    queue: Arc<dyn Queue>,
    pool: &str,
    consumer: &str,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    limit: usize,
    in_flight: Arc<InFlight>,
    mut handle: F,
) where
    F: FnMut(Delivery) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut running = tokio::task::JoinSet::new();
    loop {
        if *shutdown.borrow() {
            break;
        }
        while running.try_join_next().is_some() {}
        if running.len() >= limit.max(1) {
            tokio::select! {
                _ = running.join_next() => {}
                _ = shutdown.changed() => break,
            }
            continue;
        }
        let delivery = tokio::select! {
            d = queue.dequeue(pool, consumer, VISIBILITY, POLL) => d,
            _ = shutdown.changed() => break,
        };
        match delivery {
            Ok(Some(d)) => {
                let token = in_flight.insert(&d.lease);
                let in_flight = in_flight.clone();
                let work = handle(d);
                running.spawn(async move {
                    work.await;
                    in_flight.remove(token);
                });
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(pool, error = %e, "dequeue failed");
                tokio::time::sleep(POLL).await;
            }
        }
    }
    while running.join_next().await.is_some() {}
}

/// Signals one coordinator loop applies at once.
const SIGNALS_IN_FLIGHT: usize = 256;

/// Why a delivery of the signal or timer pool is retried.
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error("signal {signal} of run {run_id}: {source}")]
    Signal {
        signal: String,
        run_id: String,
        source: crate::OrchestratorError,
    },
    #[error("expiring approval {approval_id}: {source}")]
    Expiry {
        approval_id: String,
        source: crate::OrchestratorError,
    },
    #[error("posting approval {approval_id} to chat: {source}")]
    Notify {
        approval_id: String,
        source: crate::OrchestratorError,
    },
}

/// Acks a delivery whose work is done (or that is malformed), nacks it for a retry in a second
/// when `outcome` is an error.
async fn settle(queue: &Arc<dyn Queue>, delivery: &Delivery, outcome: Result<(), DeliveryError>) {
    match outcome {
        Ok(()) => {
            let _ = queue.ack(&delivery.lease).await;
        }
        Err(e) => {
            tracing::error!(pool = delivery.pool(), error = %e, "retrying a delivery");
            let _ = queue
                .nack(&delivery.lease, Some(Duration::from_secs(1)))
                .await;
        }
    }
}

/// Applies completion signals until `shutdown` fires.
pub async fn coordinator_loop(
    coordinator: Arc<Coordinator>,
    consumer: String,
    shutdown: tokio::sync::watch::Receiver<bool>,
    in_flight: Arc<InFlight>,
) {
    let queue = coordinator.queue().clone();
    consume_concurrently(
        queue.clone(),
        SIGNAL_POOL,
        &consumer,
        shutdown,
        SIGNALS_IN_FLIGHT,
        in_flight,
        |delivery| {
            let coordinator = coordinator.clone();
            let queue = queue.clone();
            async move {
                let outcome =
                    match serde_json::from_value::<SignalEnvelope>(delivery.payload.clone()) {
                        Ok(envelope) => coordinator
                            .route(&envelope.run_id, &envelope.signal)
                            .await
                            .map(|_| ())
                            .map_err(|source| DeliveryError::Signal {
                                signal: envelope.signal.id(),
                                run_id: envelope.run_id.clone(),
                                source,
                            }),
                        Err(e) => {
                            tracing::error!(error = %e, "malformed signal dropped");
                            Ok(())
                        }
                    };
                settle(&queue, &delivery, outcome).await;
            }
        },
    )
    .await;
}

/// Fires approval-expiry timers until `shutdown` fires.
pub async fn timer_worker(
    coordinator: Arc<Coordinator>,
    notifier: Arc<ApprovalNotifier>,
    consumer: String,
    shutdown: tokio::sync::watch::Receiver<bool>,
    in_flight: Arc<InFlight>,
) {
    let queue = coordinator.queue().clone();
    // Concurrently: a slow webhook must not hold up the expiry of other approvals.
    consume_concurrently(
        queue.clone(),
        crate::plan::TIMER_POOL,
        &consumer,
        shutdown,
        TIMERS_IN_FLIGHT,
        in_flight,
        move |delivery| {
            let coordinator = coordinator.clone();
            let notifier = notifier.clone();
            let queue = queue.clone();
            async move {
                let timer = match serde_json::from_value::<TimerTask>(delivery.payload.clone()) {
                    Ok(timer) => timer,
                    Err(e) => {
                        tracing::error!(error = %e, "malformed timer dropped");
                        settle(&queue, &delivery, Ok(())).await;
                        return;
                    }
                };
                if timer.kind == "approval_notify" {
                    let outcome = notifier
                        .deliver(
                            &coordinator,
                            &timer.run_id,
                            &timer.approval_id,
                            delivery.attempt(),
                        )
                        .await;
                    match outcome {
                        Ok(NotifyOutcome::Done) => {
                            let _ = queue.ack(&delivery.lease).await;
                        }
                        Ok(NotifyOutcome::Retry(after)) => {
                            let _ = queue.nack(&delivery.lease, Some(after)).await;
                        }
                        // Nothing left to ask about: the run or approval is gone, or the run's
                        // definition no longer compiles (the run is failed for that).
                        Err(
                            e @ (crate::OrchestratorError::NotFound(_)
                            | crate::OrchestratorError::Definition { .. }),
                        ) => {
                            tracing::warn!(approval_id = %timer.approval_id, error = %e, "approval message dropped");
                            let _ = queue.ack(&delivery.lease).await;
                        }
                        // The store or the queue failed, not the webhook: like any timer.
                        Err(source) => {
                            let e = DeliveryError::Notify {
                                approval_id: timer.approval_id.clone(),
                                source,
                            };
                            settle(&queue, &delivery, Err(e)).await;
                        }
                    }
                    return;
                }
                let outcome =
                    expire(&coordinator, &timer)
                        .await
                        .map_err(|source| DeliveryError::Expiry {
                            approval_id: timer.approval_id.clone(),
                            source,
                        });
                settle(&queue, &delivery, outcome).await;
            }
        },
    )
    .await;
}

/// Timer tasks (expiries, approval notifications) one timer loop handles at once.
const TIMERS_IN_FLIGHT: usize = 32;

async fn expire(
    coordinator: &Arc<Coordinator>,
    timer: &TimerTask,
) -> Result<(), crate::OrchestratorError> {
    if timer.kind != "approval_expiry" {
        tracing::warn!(kind = %timer.kind, "unknown timer kind dropped");
        return Ok(());
    }
    let approval = coordinator.store().approval(&timer.approval_id).await?;
    if approval.status != tradeloom_store::ApprovalStatus::Pending {
        return Ok(());
    }
    let decision: Decision = approval.default_decision;
    let signal = Signal::Decided {
        approval_id: timer.approval_id.clone(),
        node: timer.node_id.clone(),
        attempt: timer.attempt,
        decision,
        by: "system:expired".into(),
        comment: Some(format!(
            "expired at {}; default decision applied",
            approval.expires_at.to_rfc3339()
        )),
        expired: true,
    };
    coordinator.apply(&timer.run_id, &signal).await?;
    Ok(())
}
