//! [`Coordinator`]: applies signals to runs. It keeps nothing a run needs in memory — only
//! caches of content-addressed data (compiled IRs by definition hash, node outputs by blob
//! hash) — so any number of restarts lose nothing: every decision is read from the store,
//! planned ([`crate::plan`]) and committed as one transition keyed by the signal's id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;
use serde_json::{Map, Value};
use tokio::sync::Notify;
use tracing::Instrument;
use tradeloom_flow::{Context, FlowLimits, Ir, RunInfo, compile_with, parse_definition};
use tradeloom_queue::{NewTask, Queue};
use tradeloom_store::{
    NodeState, NodeStatus, RunStatus, Store, StoreError, TransitionOutcome, WorkflowRun,
};

use crate::error::OrchestratorError;
use crate::plan::{Input, Plan, decision_output, expiry_timer, node_task, plan};
use crate::signal::{Signal, approval_id};

/// How often a transition is recomputed when other signals of the same run keep winning.
const MAX_CONFLICTS: u32 = 64;
/// Node outputs kept in memory before the cache is cleared.
const OUTPUT_CACHE_LIMIT: usize = 20_000;

/// What [`Coordinator::apply`] did with a signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Committed: the run is at `revision` with `status`.
    Committed { revision: i64, status: RunStatus },
    /// This signal was applied before (a redelivery).
    AlreadyApplied,
    /// The signal is about an attempt that is no longer current, or the run has finished.
    Stale,
    /// Nothing to change (e.g. a node already running was started again after a restart).
    Nothing,
}

/// A run as the coordinator reads it.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub run: WorkflowRun,
    pub states: Vec<NodeState>,
    pub ir: Arc<Ir>,
    pub context: Context,
}

#[derive(Debug)]
pub struct Coordinator {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    irs: Mutex<HashMap<String, Arc<Ir>>>,
    outputs: Mutex<HashMap<String, Value>>,
    notify: Arc<Notify>,
    /// Routing latencies of completion signals (µs), when benchmarks ask for them.
    latencies: Mutex<Option<Vec<u64>>>,
    /// The size limits definitions are compiled and patched within.
    flow_limits: FlowLimits,
}

impl Coordinator {
    pub fn new(store: Arc<dyn Store>, queue: Arc<dyn Queue>, notify: Arc<Notify>) -> Self {
        Coordinator {
            store,
            queue,
            irs: Mutex::new(HashMap::new()),
            outputs: Mutex::new(HashMap::new()),
            notify,
            latencies: Mutex::new(None),
            flow_limits: FlowLimits::DEFAULT,
        }
    }

    /// Compiles and patches definitions within `limits` (default [`FlowLimits::DEFAULT`]).
    pub fn with_flow_limits(mut self, limits: FlowLimits) -> Self {
        self.flow_limits = limits;
        self
    }

    pub fn flow_limits(&self) -> &FlowLimits {
        &self.flow_limits
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn queue(&self) -> &Arc<dyn Queue> {
        &self.queue
    }

    /// Woken after every committed transition (the WebSocket hub listens).
    pub fn notify(&self) -> &Arc<Notify> {
        &self.notify
    }

    /// Compiles (once per definition hash) the definition a run executes.
    pub async fn ir_of_definition(
        &self,
        definition_hash: &str,
    ) -> Result<Arc<Ir>, OrchestratorError> {
        if let Some(ir) = lock(&self.irs).get(definition_hash) {
            return Ok(ir.clone());
        }
        let blob = self.store.blob(definition_hash).await?;
        let definition = parse_definition(&blob.body, "stored definition").map_err(|e| {
            OrchestratorError::Definition {
                hash: definition_hash.to_string(),
                message: e.to_string(),
            }
        })?;
        let compiled = compile_with(&definition, &self.flow_limits).map_err(|errors| {
            OrchestratorError::Definition {
                hash: definition_hash.to_string(),
                message: errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            }
        })?;
        let ir = Arc::new(compiled.ir);
        lock(&self.irs).insert(definition_hash.to_string(), ir.clone());
        Ok(ir)
    }

    /// The IR a run executes now.
    pub async fn ir(&self, run: &WorkflowRun) -> Result<Arc<Ir>, OrchestratorError> {
        let hash = run.definition_hash.as_deref().ok_or_else(|| OrchestratorError::Definition {
            hash: run.ir_hash.clone(),
            message: format!(
                "run {} was created before workflow runs recorded their definition; it cannot be executed",
                run.id
            ),
        })?;
        self.ir_of_definition(hash).await
    }

    /// A node output by blob hash.
    pub async fn output(&self, hash: &str) -> Result<Value, OrchestratorError> {
        if let Some(v) = lock(&self.outputs).get(hash) {
            return Ok(v.clone());
        }
        let blob = self.store.blob(hash).await?;
        let value: Value = serde_json::from_str(&blob.body).map_err(|e| {
            OrchestratorError::Store(StoreError::Corrupt {
                what: "node output blob",
                detail: format!("{hash}: {e}"),
            })
        })?;
        self.remember_output(hash, &value);
        Ok(value)
    }

    fn remember_output(&self, hash: &str, value: &Value) {
        let mut cache = lock(&self.outputs);
        if cache.len() >= OUTPUT_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(hash.to_string(), value.clone());
    }

    /// Stores a node output; returns its hash.
    pub async fn put_output(&self, output: &Value) -> Result<String, OrchestratorError> {
        let hash = self
            .store
            .put_blob("node_output", &output.to_string())
            .await?;
        self.remember_output(&hash, output);
        Ok(hash)
    }

    /// The run, its node states, its IR and its context with every completed output.
    pub async fn snapshot(&self, run_id: &str) -> Result<Snapshot, OrchestratorError> {
        let run = self.store.workflow_run(run_id).await?;
        let states = self.store.node_states(run_id).await?;
        let ir = self.ir(&run).await?;
        let inputs = match &run.inputs {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        let info = RunInfo {
            id: run.id.clone(),
            workflow: ir.name().to_string(),
            hash: run.ir_hash.clone(),
            started_at: run
                .created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        };
        let mut context = Context::new(&info, inputs);
        for s in &states {
            if s.status == NodeStatus::Completed
                && let Some(hash) = &s.output_hash
            {
                context.set_output(&s.node_id, self.output(hash).await?);
            }
        }
        Ok(Snapshot {
            run,
            states,
            ir,
            context,
        })
    }

    /// Applies `signal` to run `run_id` exactly once: read, plan, commit (recomputing when
    /// another signal of the run won the race), then emit the planned tasks.
    /// Its log lines carry the run's `run_id` and `trace_id` and the signal's id.
    pub async fn apply(&self, run_id: &str, signal: &Signal) -> Result<Applied, OrchestratorError> {
        let span = tracing::info_span!(
            "signal",
            run_id = %run_id,
            trace_id = %tradeloom_core::trace_id(run_id),
            signal = %signal.id()
        );
        self.apply_in_span(run_id, signal).instrument(span).await
    }

    async fn apply_in_span(
        &self,
        run_id: &str,
        signal: &Signal,
    ) -> Result<Applied, OrchestratorError> {
        if let Signal::Decided {
            approval_id,
            decision,
            by,
            comment,
            expired,
            ..
        } = signal
        {
            let output = decision_output(approval_id, *decision, by, comment.as_deref(), *expired);
            self.put_output(&output).await?;
        }
        let mut conflicts = 0;
        loop {
            let Snapshot {
                run,
                states,
                ir,
                mut context,
            } = self.snapshot(run_id).await?;
            let planned = plan(
                Input {
                    run: &run,
                    states: &states,
                    ir: &ir,
                    context: &mut context,
                    now: Utc::now(),
                },
                signal,
            );
            let (transition, tasks) = match planned {
                Plan::Stale => return Ok(Applied::Stale),
                Plan::Nothing => return Ok(Applied::Nothing),
                Plan::Commit { transition, tasks } => (transition, tasks),
            };
            let status = transition.status.unwrap_or(run.status);
            match self.store.commit_transition(&transition).await {
                Ok(TransitionOutcome::Applied { revision }) => {
                    tracing::debug!(revision, tasks = tasks.len(), "signal applied");
                    if status != run.status {
                        tracing::info!(status = status.as_str(), "workflow run is now {status}");
                    }
                    self.emit(tasks).await;
                    self.notify.notify_waiters();
                    return Ok(Applied::Committed { revision, status });
                }
                Ok(TransitionOutcome::AlreadyApplied) => return Ok(Applied::AlreadyApplied),
                Err(StoreError::Conflict(message)) => {
                    conflicts += 1;
                    if conflicts >= MAX_CONFLICTS {
                        return Err(OrchestratorError::Conflict(format!(
                            "gave up applying `{}` to run {run_id} after {conflicts} conflicts: {message}",
                            signal.id()
                        )));
                    }
                    tokio::task::yield_now().await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Enqueues tasks emitted by a committed transition. A failure is logged, not returned: the
    /// transition is committed, and [`Coordinator::recover`] re-emits queued nodes.
    pub(crate) async fn emit(&self, tasks: Vec<NewTask>) {
        for task in tasks {
            if let Err(e) = self.queue.enqueue(task).await {
                tracing::error!(error = %e, "could not enqueue a workflow task; it is re-emitted on restart");
            }
        }
    }

    /// After a restart: re-emits every queued or running node and every approval timer of the
    /// unfinished runs, and moves each run on (a run created just before the crash starts).
    /// Returns how many runs it resumed.
    pub async fn recover(&self) -> Result<usize, OrchestratorError> {
        let mut resumed = 0;
        for status in [RunStatus::Pending, RunStatus::Running, RunStatus::Waiting] {
            let mut offset = 0;
            loop {
                let runs = self
                    .store
                    .list_workflow_runs(Some(status), 500, offset)
                    .await?;
                if runs.is_empty() {
                    break;
                }
                offset += runs.len() as u64;
                for run in runs {
                    self.resume(&run).await?;
                    resumed += 1;
                }
            }
        }
        Ok(resumed)
    }

    async fn resume(&self, run: &WorkflowRun) -> Result<(), OrchestratorError> {
        let ir = match self.ir(run).await {
            Ok(ir) => ir,
            Err(e) => {
                tracing::error!(run_id = %run.id, error = %e, "cannot resume a workflow run");
                return Ok(());
            }
        };
        if run.status == RunStatus::Pending {
            self.apply(&run.id, &Signal::Start).await?;
            return Ok(());
        }
        let states = self.store.node_states(&run.id).await?;
        let mut tasks = Vec::new();
        for s in &states {
            let Some(node) = ir.node(&s.node_id) else {
                continue;
            };
            match s.status {
                NodeStatus::Queued | NodeStatus::Running => {
                    tasks.push(node_task(&run.id, node, s.attempts, s.not_before));
                }
                NodeStatus::Waiting => {
                    let id = approval_id(&run.id, &s.node_id, s.attempts);
                    let approval = self.store.approval(&id).await?;
                    tasks.push(expiry_timer(
                        &run.id,
                        &id,
                        &s.node_id,
                        s.attempts,
                        approval.expires_at,
                    ));
                }
                _ => {}
            }
        }
        self.emit(tasks).await;
        self.apply(
            &run.id,
            &Signal::Advance {
                revision: run.revision,
            },
        )
        .await?;
        Ok(())
    }

    /// Starts (or stops) recording how long each completion signal takes to route: read the
    /// run, plan, commit, emit the next tasks. For benchmarks.
    pub fn record_latencies(&self, on: bool) {
        *lock(&self.latencies) = on.then(Vec::new);
    }

    /// The latencies recorded so far (µs), emptied.
    pub fn take_latencies(&self) -> Vec<u64> {
        lock(&self.latencies)
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Applies a completion signal, recording its routing latency when asked to.
    pub(crate) async fn route(
        &self,
        run_id: &str,
        signal: &Signal,
    ) -> Result<Applied, OrchestratorError> {
        let started = Instant::now();
        let applied = self.apply(run_id, signal).await?;
        if let Some(l) = lock(&self.latencies).as_mut() {
            l.push(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
        }
        Ok(applied)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
