//! [`Coordinator`]: applies signals to runs. The store is the log: every decision is planned
//! ([`crate::plan`]) and committed as one transition keyed by the signal's id, checked against
//! the run's revision, so any number of restarts lose nothing. In memory are caches: of
//! content-addressed data (compiled IRs by definition hash, node outputs by blob hash), and of
//! each active run — its row and planning state as this process last committed (or read) it.
//! A signal is planned on that state without reading the store; if another process moved the
//! run meanwhile, the commit is refused as a conflict and the run is read again.
//!
//! Signals of one run are planned one at a time in a process; commits go through the
//! [`Committer`] (group commit), in order, so a run's next signal may be planned while the last
//! one's batch is being committed. A signal's effects (its tasks, the wake-ups) follow its commit.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, broadcast, watch};
use tracing::Instrument;
use tradeloom_flow::ir::{NodeKind, SimulationSource};
use tradeloom_flow::{Context, FlowLimits, Ir, IrNode, RunInfo, compile_with, parse_definition};
use tradeloom_queue::{NewTask, Queue};
use tradeloom_store::{
    ApprovalChange, ApprovalStatus, CreateRun, NewBlob, NewEvent, NodeChange, NodeState,
    NodeStatus, RunStatus, RunWrite, Store, StoreError, Transition, TransitionOutcome, WorkflowRun,
};

use crate::committer::Committer;
use crate::error::OrchestratorError;
use crate::plan::{
    DEFAULT_MAX_IN_FLIGHT, Graph, Input, Plan, RunState, decision_output, expiry_timer, node_task,
    notify_task, plan,
};
use crate::signal::{Outcome, Signal, approval_id};
use crate::signal::{SIGNAL_POOL, SignalEnvelope};

/// How often a transition is recomputed when other signals of the same run keep winning.
const MAX_CONFLICTS: u32 = 64;
/// Node outputs kept in memory before the cache is cleared.
const OUTPUT_CACHE_LIMIT: usize = 20_000;
/// Runs whose planning state is kept in memory; idle ones are dropped beyond this.
const RUN_CACHE_LIMIT: usize = 16_384;

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
    pub graph: Arc<Graph>,
    pub context: Context,
}

/// What one attempt of a node reads.
#[derive(Clone, Debug)]
pub struct AttemptContext {
    pub run: WorkflowRun,
    pub ir: Arc<Ir>,
    /// The node's position in `ir`.
    pub index: usize,
    /// `run`, `inputs` and the outputs of the nodes the node's templates and condition name
    /// (not every output of the run: a big run's context is not copied per attempt).
    pub context: Context,
}

impl AttemptContext {
    pub fn node(&self) -> &IrNode {
        // `index` comes from the graph of `ir`.
        &self.ir.nodes()[self.index]
    }
}

/// A compiled definition and its dependency index.
type Compiled = (Arc<Ir>, Arc<Graph>);

/// A run's row and planning state as this process last committed or read them (see the
/// module docs). Never of a finished run.
#[derive(Debug)]
struct CachedRun {
    run: WorkflowRun,
    state: RunState,
    context: Context,
    /// The chain of plans this state belongs to (see
    /// [`Transition::lineage`](tradeloom_store::Transition::lineage)): new with every read
    /// of the store, kept while transitions are planned one on top of another.
    lineage: u64,
}

/// A write submitted with the next transition [`Coordinator::apply_in_span`] commits, and
/// then its answer.
#[derive(Default)]
struct Prefix {
    write: Option<RunWrite>,
    pending: Option<crate::committer::Pending>,
}

/// The span of one signal's log lines: the run's `run_id` and `trace_id` and the signal's id.
fn signal_span(run_id: &str, signal: &Signal) -> tracing::Span {
    tracing::info_span!(
        "signal",
        run_id = %run_id,
        trace_id = %tradeloom_core::trace_id(run_id),
        signal = %signal.id()
    )
}

/// Lineage ids of this process.
static LINEAGES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn new_lineage() -> u64 {
    LINEAGES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// One run's cache entry; its lock also serialises the run's signals in this process.
type RunSlot = Arc<tokio::sync::Mutex<Option<CachedRun>>>;

#[derive(Debug)]
pub struct Coordinator {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    irs: Mutex<HashMap<String, Compiled>>,
    outputs: Mutex<HashMap<String, Value>>,
    /// Hashes of blobs known to be stored (committed or read), so they are not written again.
    stored_blobs: Mutex<std::collections::HashSet<String>>,
    runs: Mutex<HashMap<String, RunSlot>>,
    notify: Arc<Notify>,
    /// Per-run wake-ups of [`crate::Runtime::wait_for`] callers, each with the status of the
    /// run's last commit in this process.
    run_waiters: Mutex<HashMap<String, watch::Sender<Option<RunStatus>>>>,
    committer: Committer,
    /// Ids of runs that just failed or were cancelled: workers stop their running attempts.
    stopped: broadcast::Sender<String>,
    /// Nodes of one run queued or running at once, at most.
    max_in_flight: usize,
    /// Routing latencies of completion signals (µs), when benchmarks ask for them.
    latencies: Mutex<Option<Vec<u64>>>,
    /// The secret variables patches may name (see [`crate::secret_env`]).
    secrets: tradeloom_net::SecretEnv,
    /// The size limits definitions are compiled and patched within.
    flow_limits: FlowLimits,
}

impl Coordinator {
    pub fn new(store: Arc<dyn Store>, queue: Arc<dyn Queue>, notify: Arc<Notify>) -> Self {
        let (stopped, _) = broadcast::channel(1024);
        Coordinator {
            committer: Committer::new(store.clone(), notify.clone()),
            store,
            queue,
            irs: Mutex::new(HashMap::new()),
            outputs: Mutex::new(HashMap::new()),
            stored_blobs: Mutex::new(std::collections::HashSet::new()),
            runs: Mutex::new(HashMap::new()),
            notify,
            run_waiters: Mutex::new(HashMap::new()),
            stopped,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            latencies: Mutex::new(None),
            secrets: tradeloom_net::SecretEnv::default(),
            flow_limits: FlowLimits::DEFAULT,
        }
    }

    /// Sets how many nodes of one run may be queued or running at once (at least 1).
    pub fn with_max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max.max(1);
        self
    }

    /// Nodes of one run queued or running at once, at most.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// Announces the ids of runs that failed or were cancelled, once the transition is
    /// committed, so workers stop the attempts they are running for them.
    pub fn stopped_runs(&self) -> &broadcast::Sender<String> {
        &self.stopped
    }

    /// This coordinator with `secrets` as the allow-list patches are checked against.
    pub fn with_secret_env(mut self, secrets: tradeloom_net::SecretEnv) -> Self {
        self.secrets = secrets;
        self
    }

    /// The allow-list of secret variables patches are checked against.
    pub fn secret_env(&self) -> &tradeloom_net::SecretEnv {
        &self.secrets
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

    /// Woken after every committed batch of transitions (the WebSocket hub listens).
    pub fn notify(&self) -> &Arc<Notify> {
        &self.notify
    }

    /// Changes after every committed transition of run `run_id` to the status it committed
    /// (`None` until the first); a watch, so a commit that lands while its listener is busy is
    /// seen at its next `changed()`, never lost. Call [`Coordinator::release_run_notifier`]
    /// when done listening.
    pub fn run_notifier(&self, run_id: &str) -> watch::Receiver<Option<RunStatus>> {
        lock(&self.run_waiters)
            .entry(run_id.to_string())
            .or_insert_with(|| watch::channel(None).0)
            .subscribe()
    }

    /// Gives back a listener of [`Coordinator::run_notifier`].
    pub fn release_run_notifier(&self, run_id: &str, notifier: watch::Receiver<Option<RunStatus>>) {
        let mut waiters = lock(&self.run_waiters);
        drop(notifier);
        if waiters.get(run_id).is_some_and(|n| n.receiver_count() == 0) {
            waiters.remove(run_id);
        }
    }

    /// Commits `write` with the writes of other runs submitted meanwhile (group commit); the
    /// answer comes once its batch is committed.
    pub(crate) async fn commit(&self, write: RunWrite) -> Result<TransitionOutcome, StoreError> {
        let pending = self.committer.submit(write);
        match pending.await {
            Ok(outcome) => outcome,
            Err(_) => Err(StoreError::Invalid(
                "the workflow store writer stopped before answering".into(),
            )),
        }
    }

    /// Compiles (once per definition hash) the definition a run executes.
    pub async fn ir_of_definition(
        &self,
        definition_hash: &str,
    ) -> Result<Arc<Ir>, OrchestratorError> {
        Ok(self.compiled(definition_hash).await?.0)
    }

    async fn compiled(&self, definition_hash: &str) -> Result<Compiled, OrchestratorError> {
        if let Some(c) = lock(&self.irs).get(definition_hash) {
            return Ok(c.clone());
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
        let graph = Arc::new(Graph::new(&compiled.ir));
        let c = (Arc::new(compiled.ir), graph);
        lock(&self.irs).insert(definition_hash.to_string(), c.clone());
        Ok(c)
    }

    /// The IR a run executes now.
    pub async fn ir(&self, run: &WorkflowRun) -> Result<Arc<Ir>, OrchestratorError> {
        Ok(self.workflow(run).await?.0)
    }

    /// The IR a run executes now, with its dependency index.
    pub async fn workflow(&self, run: &WorkflowRun) -> Result<Compiled, OrchestratorError> {
        let hash = run.definition_hash.as_deref().ok_or_else(|| OrchestratorError::Definition {
            hash: run.ir_hash.clone(),
            message: format!(
                "run {} was created before workflow runs recorded their definition; it cannot be executed",
                run.id
            ),
        })?;
        self.compiled(hash).await
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
        self.remember_stored(hash);
        Ok(value)
    }

    fn remember_output(&self, hash: &str, value: &Value) {
        let mut cache = lock(&self.outputs);
        if cache.len() >= OUTPUT_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(hash.to_string(), value.clone());
    }

    fn remember_stored(&self, hash: &str) {
        let mut stored = lock(&self.stored_blobs);
        if stored.len() >= OUTPUT_CACHE_LIMIT {
            stored.clear();
        }
        stored.insert(hash.to_string());
    }

    /// Stores a node output; returns its hash.
    pub async fn put_output(&self, output: &Value) -> Result<String, OrchestratorError> {
        let hash = self
            .store
            .put_blob("node_output", &output.to_string())
            .await?;
        self.remember_output(&hash, output);
        self.remember_stored(&hash);
        Ok(hash)
    }

    /// The run, its node states, its IR and its context with every completed output, read
    /// from the store.
    pub async fn snapshot(&self, run_id: &str) -> Result<Snapshot, OrchestratorError> {
        let run = self.store.workflow_run(run_id).await?;
        let (ir, graph) = self.workflow(&run).await?;
        let (states, context) = self.read_states(&run, &ir).await?;
        Ok(Snapshot {
            run,
            states,
            ir,
            graph,
            context,
        })
    }

    /// A run's node states and its context with every completed output.
    async fn read_states(
        &self,
        run: &WorkflowRun,
        ir: &Ir,
    ) -> Result<(Vec<NodeState>, Context), OrchestratorError> {
        let states = self.store.node_states(&run.id).await?;
        let mut context = base_context(run, ir);
        for s in &states {
            if s.status == NodeStatus::Completed
                && let Some(hash) = &s.output_hash
            {
                context.set_output(&s.node_id, self.output(hash).await?);
            }
        }
        Ok((states, context))
    }

    /// The cache entry (and signal lock) of run `run_id`.
    fn run_slot(&self, run_id: &str) -> RunSlot {
        let mut runs = lock(&self.runs);
        if let Some(slot) = runs.get(run_id) {
            return slot.clone();
        }
        if runs.len() >= RUN_CACHE_LIMIT {
            // Drop the entries nobody holds; a dropped run is read from the store next time.
            runs.retain(|_, slot| Arc::strong_count(slot) > 1);
        }
        let slot = RunSlot::default();
        runs.insert(run_id.to_string(), slot.clone());
        slot
    }

    fn forget(&self, run_id: &str) {
        lock(&self.runs).remove(run_id);
    }

    /// Drops what this process holds of run `run_id` (it is read from the store next time).
    pub(crate) async fn invalidate(&self, run_id: &str) {
        let slot = self.run_slot(run_id);
        *slot.lock().await = None;
    }

    /// What the cache holds of a run, or the run read from the store (`Err(run)` when it has
    /// finished).
    async fn cached_or_read(
        &self,
        cached: &mut Option<CachedRun>,
        run_id: &str,
    ) -> Result<Result<CachedRun, WorkflowRun>, OrchestratorError> {
        if let Some(c) = cached.take() {
            return Ok(Ok(c));
        }
        let run = self.store.workflow_run(run_id).await?;
        if run.status.is_terminal() {
            return Ok(Err(run));
        }
        let (ir, graph) = self.workflow(&run).await?;
        let (states, context) = self.read_states(&run, &ir).await?;
        Ok(Ok(CachedRun {
            state: RunState::new(&ir, &graph, &states),
            run,
            context,
            lineage: new_lineage(),
        }))
    }

    /// What an attempt of node `node_id` reads (see [`AttemptContext`]); `None` once the run
    /// has finished or no longer has the node.
    pub async fn attempt_context(
        &self,
        run_id: &str,
        node_id: &str,
    ) -> Result<Option<AttemptContext>, OrchestratorError> {
        let slot = self.run_slot(run_id);
        let mut guard = slot.lock().await;
        let from_cache = guard.is_some();
        let mut cached = match self.cached_or_read(&mut guard, run_id).await? {
            Ok(c) => c,
            Err(_finished) => return Ok(None),
        };
        // A node's task is emitted once the node is queued; a cache that does not show it
        // queued or running predates that commit (made by another process): read again.
        if from_cache {
            let graph = self.workflow(&cached.run).await?.1;
            let current = matches!(
                cached.state.status_of(&graph, node_id),
                Some(NodeStatus::Queued | NodeStatus::Running)
            );
            if !current {
                cached = match self.cached_or_read(&mut None, run_id).await? {
                    Ok(c) => c,
                    Err(_finished) => return Ok(None),
                };
            }
        }
        let (ir, graph) = match self.workflow(&cached.run).await {
            Ok(c) => c,
            Err(e) => {
                *guard = Some(cached);
                return Err(e);
            }
        };
        let Some(index) = graph.index_of(node_id) else {
            *guard = Some(cached);
            return Ok(None);
        };
        let roots = referenced_roots(&ir.nodes()[index]);
        let mut context = base_context(&cached.run, &ir);
        for root in &roots {
            if let Some(v) = cached.context.as_value().get(root) {
                context.set_output(root, v.clone());
            }
        }
        let run = cached.run.clone();
        *guard = Some(cached);
        Ok(Some(AttemptContext {
            run,
            ir,
            index,
            context,
        }))
    }

    /// Creates run `create` and applies its [`Signal::Start`], both committed in one batch
    /// (with whatever else is being committed). Returns the run as it starts.
    pub async fn create_and_start(
        &self,
        create: CreateRun,
    ) -> Result<WorkflowRun, OrchestratorError> {
        let run = create.run();
        let run_id = run.id.clone();
        let (ir, graph) = self.workflow(&run).await?;
        let slot = self.run_slot(&run_id);
        {
            let mut guard = slot.lock().await;
            let states: Vec<NodeState> = Vec::new();
            *guard = Some(CachedRun {
                state: RunState::new(&ir, &graph, &states),
                context: base_context(&run, &ir),
                run,
                lineage: new_lineage(),
            });
        }
        // The creation is submitted with the start's transition, so both share a batch.
        let mut create = Prefix {
            write: Some(RunWrite::Create(create)),
            pending: None,
        };
        let applied = self
            .apply_in_span(&run_id, &Signal::Start, &mut create)
            .instrument(signal_span(&run_id, &Signal::Start))
            .await;
        let created = match (create.write.take(), create.pending.take()) {
            (Some(write), _) => self.committer.submit(write),
            (None, Some(pending)) => pending,
            (None, None) => {
                return Err(OrchestratorError::Store(StoreError::Invalid(
                    "a run's creation was neither submitted nor kept".into(),
                )));
            }
        };
        match created.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                *slot.lock().await = None;
                return Err(e.into());
            }
            Err(_) => {
                return Err(OrchestratorError::Store(StoreError::Invalid(
                    "the workflow store writer stopped before answering".into(),
                )));
            }
        }
        applied?;
        let slot = self.run_slot(&run_id);
        let guard = slot.lock().await;
        match guard.as_ref() {
            Some(c) => Ok(c.run.clone()),
            None => Ok(self.store.workflow_run(&run_id).await?),
        }
    }

    /// Applies `signal` to run `run_id` exactly once: plan, commit (recomputing when another
    /// signal of the run won the race), then emit the planned tasks.
    /// Its log lines carry the run's `run_id` and `trace_id` and the signal's id.
    pub async fn apply(&self, run_id: &str, signal: &Signal) -> Result<Applied, OrchestratorError> {
        let mut none = Prefix::default();
        self.apply_in_span(run_id, signal, &mut none)
            .instrument(signal_span(run_id, signal))
            .await
    }

    /// [`Coordinator::apply`], submitting `prefix.write` (if any) together with the first
    /// transition it commits; its answer is left in `prefix.pending`. Without a transition to
    /// commit, `prefix.write` is left for the caller.
    async fn apply_in_span(
        &self,
        run_id: &str,
        signal: &Signal,
        prefix: &mut Prefix,
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
        // A completed node's output is stored with the transition, unless stored already.
        let output_blob = match signal {
            Signal::NodeFinished {
                outcome:
                    Outcome::Completed {
                        output_hash,
                        output,
                    },
                ..
            } => Some((output_hash, output)),
            _ => None,
        };
        let slot = self.run_slot(run_id);
        let mut conflicts = 0;
        loop {
            let mut guard = slot.lock().await;
            // What another process committed is not in this process's cache: a signal that
            // looks stale, or changes nothing, on cached state is planned again on the run as
            // stored before it is dropped.
            let from_cache = guard.is_some();
            let mut cached = match self.cached_or_read(&mut guard, run_id).await {
                Ok(Ok(c)) => c,
                Ok(Err(_finished)) => {
                    drop(guard);
                    self.forget(run_id);
                    return Ok(Applied::Stale);
                }
                Err(OrchestratorError::Definition { .. }) => {
                    drop(guard);
                    let run = self.store.workflow_run(run_id).await?;
                    let message = match self.workflow(&run).await {
                        Err(OrchestratorError::Definition { message, .. }) => message,
                        _ => "it cannot be compiled".to_string(),
                    };
                    return self.fail_unrunnable(&run, &message).await;
                }
                Err(e) => return Err(e),
            };
            let (ir, graph) = match self.workflow(&cached.run).await {
                Ok(c) => c,
                Err(OrchestratorError::Definition { message, .. }) => {
                    drop(guard);
                    let run = cached.run;
                    return self.fail_unrunnable(&run, &message).await;
                }
                Err(e) => return Err(e),
            };
            let planned = plan(
                Input {
                    run: &cached.run,
                    state: &mut cached.state,
                    ir: &ir,
                    graph: &graph,
                    context: &mut cached.context,
                    now: Utc::now(),
                    max_in_flight: self.max_in_flight,
                },
                signal,
            );
            let (mut transition, tasks, more) = match planned {
                Plan::Stale | Plan::Nothing if from_cache => {
                    *guard = None;
                    continue;
                }
                Plan::Stale => {
                    // Planning changed nothing: the state is still the run's.
                    *guard = Some(cached);
                    return Ok(Applied::Stale);
                }
                Plan::Nothing => {
                    *guard = Some(cached);
                    return Ok(Applied::Nothing);
                }
                Plan::Commit {
                    transition,
                    tasks,
                    more,
                } => (transition, tasks, more),
            };
            if let Some((hash, output)) = output_blob
                && !lock(&self.stored_blobs).contains(hash.as_str())
            {
                transition.blobs.push(NewBlob {
                    kind: "node_output".into(),
                    body: output.to_string(),
                });
            }
            transition.lineage = Some(cached.lineage);
            let before = cached.run.status;
            let status = transition.status.unwrap_or(before);
            cached.run.advance(&transition, Utc::now());
            // Submitted while holding the run's lock, so the run's next signal is planned on
            // this one and committed after it.
            let pending = match prefix.write.take() {
                Some(first) => {
                    let (first, pending) = self
                        .committer
                        .submit_pair(first, RunWrite::Transition(*transition));
                    prefix.pending = Some(first);
                    pending
                }
                None => self.committer.submit(RunWrite::Transition(*transition)),
            };
            *guard = (!status.is_terminal()).then_some(cached);
            drop(guard);
            let outcome = match pending.await {
                Ok(outcome) => outcome,
                Err(_) => Err(StoreError::Invalid(
                    "the workflow store writer stopped before answering".into(),
                )),
            };
            match outcome {
                Ok(TransitionOutcome::Applied { revision }) => {
                    tracing::debug!(revision, tasks = tasks.len(), "signal applied");
                    if let Some((hash, output)) = output_blob {
                        self.remember_output(hash, output);
                        self.remember_stored(hash);
                    }
                    if status.is_terminal() {
                        self.forget(run_id);
                    }
                    if status != before {
                        tracing::info!(status = status.as_str(), "workflow run is now {status}");
                    }
                    self.committed(run_id, status, revision, tasks, more).await;
                    return Ok(Applied::Committed { revision, status });
                }
                // What was planned on this transition is dropped: the slot this signal
                // planned on, not whichever the run has now (a finished run's entry may
                // have been replaced meanwhile), is read again.
                Ok(TransitionOutcome::AlreadyApplied) => {
                    *slot.lock().await = None;
                    return Ok(Applied::AlreadyApplied);
                }
                Err(StoreError::Conflict(message)) => {
                    *slot.lock().await = None;
                    conflicts += 1;
                    if conflicts >= MAX_CONFLICTS {
                        return Err(OrchestratorError::Conflict(format!(
                            "gave up applying `{}` to run {run_id} after {conflicts} conflicts: {message}",
                            signal.id()
                        )));
                    }
                    tokio::task::yield_now().await;
                }
                Err(e) => {
                    *slot.lock().await = None;
                    return Err(e.into());
                }
            }
        }
    }

    /// After a transition of run `run_id` committed at `revision`: emits its tasks, posts a
    /// continuation when the signal left work undone (behind the signals already queued, so
    /// other runs go on meanwhile), stops the run's running attempts if it failed or was
    /// cancelled, and wakes the run's waiters (the batch's commit woke the other listeners).
    pub(crate) async fn committed(
        &self,
        run_id: &str,
        status: RunStatus,
        revision: i64,
        tasks: Vec<NewTask>,
        more: bool,
    ) {
        self.emit(tasks).await;
        if more && !status.is_terminal() {
            let envelope = SignalEnvelope {
                run_id: run_id.to_string(),
                signal: Signal::Advance { revision },
            };
            match serde_json::to_value(&envelope) {
                Ok(payload) => self.emit(vec![NewTask::new(SIGNAL_POOL, payload)]).await,
                Err(e) => tracing::error!(error = %e, "cannot encode a continuation signal"),
            }
        }
        if matches!(status, RunStatus::Failed | RunStatus::Cancelled) {
            // Nobody listening (no workers) is fine.
            let _ = self.stopped.send(run_id.to_string());
        }
        if status.is_terminal() {
            // The run freed a slot of its concurrency limits: queued runs may start.
            if let Err(e) = Box::pin(self.admit_queued()).await {
                tracing::warn!(error = %e, "cannot admit queued workflow runs; the sweeper retries");
            }
        }
        if let Some(waiters) = lock(&self.run_waiters).get(run_id) {
            waiters.send_replace(Some(status));
        }
    }

    /// Fails a run whose definition cannot run any more (it no longer compiles, or it was
    /// stored before runs recorded their definition): its open nodes are skipped with the
    /// reason, its pending approvals cancelled, all journaled. Nothing of the definition is
    /// needed, so this works for whatever is stored.
    async fn fail_unrunnable(
        &self,
        run: &WorkflowRun,
        message: &str,
    ) -> Result<Applied, OrchestratorError> {
        let states = self.store.node_states(&run.id).await?;
        let error = format!("the run's workflow definition cannot run: {message}");
        let reason = "run failed: its workflow definition cannot run";
        let mut t = Transition::new(&run.id, "unrunnable", run.revision);
        for s in &states {
            let open = matches!(
                s.status,
                NodeStatus::Pending
                    | NodeStatus::Queued
                    | NodeStatus::Running
                    | NodeStatus::Waiting
            );
            if !open {
                continue;
            }
            if matches!(s.status, NodeStatus::Queued | NodeStatus::Running) {
                t.tokens_delta -= 1;
            }
            if s.status == NodeStatus::Waiting {
                t.approvals.push(ApprovalChange::Close {
                    id: approval_id(&run.id, &s.node_id, s.attempts),
                    status: ApprovalStatus::Cancelled,
                    decision: None,
                    by: Some("system".into()),
                    comment: Some(reason.into()),
                });
            }
            t.nodes.push(NodeChange {
                node_id: s.node_id.clone(),
                status: NodeStatus::Skipped,
                attempts: s.attempts,
                output_hash: None,
                error: Some(reason.into()),
                not_before: None,
            });
            t.events.push(NewEvent {
                kind: "node_skipped".into(),
                node_id: Some(s.node_id.clone()),
                payload: json!({"reason": reason, "was": s.status, "warning": false}),
            });
        }
        t.status = Some(RunStatus::Failed);
        t.error = Some(error.clone());
        t.events.push(NewEvent {
            kind: "run_finished".into(),
            node_id: None,
            payload: json!({"status": RunStatus::Failed, "error": error}),
        });
        tracing::error!(run_id = %run.id, error = %error, "workflow run failed: its definition cannot run");
        match self.commit(RunWrite::Transition(t)).await? {
            TransitionOutcome::Applied { revision } => {
                self.forget(&run.id);
                self.committed(&run.id, RunStatus::Failed, revision, Vec::new(), false)
                    .await;
                Ok(Applied::Committed {
                    revision,
                    status: RunStatus::Failed,
                })
            }
            TransitionOutcome::AlreadyApplied => Ok(Applied::AlreadyApplied),
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
    /// Re-emits the work of unfinished runs whose revision has not moved for `stall`, and
    /// advances them: how a coordinator takes over the runs of one that died between a
    /// commit and its effects (the tasks it was about to enqueue). Tasks and timers are
    /// deduplicated per attempt, so work still queued or held by a live worker is not doubled.
    /// `seen` carries each run's revision and since when it has had it, from one sweep to the
    /// next; returns how many runs were re-emitted.
    pub async fn sweep_stalled(
        &self,
        seen: &mut HashMap<String, (i64, Instant)>,
        stall: std::time::Duration,
    ) -> Result<usize, OrchestratorError> {
        let now = Instant::now();
        let mut current: HashMap<String, (i64, Instant)> = HashMap::new();
        let mut swept = 0;
        // Slots freed by a process that died before admitting the queued runs behind them.
        self.admit_queued().await?;
        for run in self.unfinished_runs().await? {
            let since = match seen.get(&run.id) {
                Some((revision, since)) if *revision == run.revision => *since,
                _ => now,
            };
            if now.duration_since(since) >= stall {
                tracing::info!(run_id = %run.id, revision = run.revision, "re-emitting the work of a stalled run");
                self.resume(&run).await?;
                swept += 1;
                current.insert(run.id.clone(), (run.revision, now));
            } else {
                current.insert(run.id.clone(), (run.revision, since));
            }
        }
        *seen = current;
        Ok(swept)
    }

    /// Moves queued runs whose concurrency limits have room to `pending` and starts them
    /// (see [`tradeloom_store::AdmissionStore`]); returns how many.
    pub async fn admit_queued(&self) -> Result<usize, OrchestratorError> {
        let promoted = self.store.promote_queued_runs().await?;
        let n = promoted.len();
        self.start_admitted(promoted).await;
        Ok(n)
    }

    /// Starts runs that admission moved from `queued` to `pending`. A failure is logged: the
    /// run is `pending` in the store, and recovery (or the sweeper) starts it.
    pub(crate) async fn start_admitted(&self, run_ids: Vec<String>) {
        for run_id in run_ids {
            if let Err(e) = Box::pin(self.apply(&run_id, &Signal::Start)).await {
                tracing::error!(run_id = %run_id, error = %e, "cannot start an admitted workflow run");
            }
        }
    }

    pub async fn recover(&self) -> Result<usize, OrchestratorError> {
        // Queued runs with room (slots freed while no coordinator ran) become pending first,
        // and start below with the others.
        self.store.promote_queued_runs().await?;
        let runs = self.unfinished_runs().await?;
        for run in &runs {
            self.resume(run).await?;
        }
        Ok(runs.len())
    }

    /// Every run not yet finished (pending, running or waiting), read page by page.
    async fn unfinished_runs(&self) -> Result<Vec<WorkflowRun>, OrchestratorError> {
        let mut unfinished = Vec::new();
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
                unfinished.extend(runs);
            }
        }
        Ok(unfinished)
    }

    async fn resume(&self, run: &WorkflowRun) -> Result<(), OrchestratorError> {
        let (ir, graph) = match self.workflow(run).await {
            Ok(c) => c,
            Err(OrchestratorError::Definition { message, .. }) => {
                // A run that cannot go on is failed with the reason rather than left open.
                self.fail_unrunnable(run, &message).await?;
                return Ok(());
            }
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
            let Some(node) = graph.index_of(&s.node_id).map(|i| &ir.nodes()[i]) else {
                continue;
            };
            match s.status {
                NodeStatus::Queued | NodeStatus::Running => {
                    tasks.push(node_task(run, node, s.attempts, s.not_before));
                }
                NodeStatus::Waiting => {
                    tasks.extend(self.approval_tasks(&run.id, node, s).await?);
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

    /// The tasks of a waiting `hitl` node's approval: its expiry timer (at its deadline, at
    /// once if that passed) and its chat message, unless that was delivered or given up on (the
    /// task may have been lost with a process, or dropped during a pause, before it went out).
    async fn approval_tasks(
        &self,
        run_id: &str,
        node: &IrNode,
        state: &NodeState,
    ) -> Result<Vec<NewTask>, OrchestratorError> {
        let id = approval_id(run_id, &state.node_id, state.attempts);
        let approval = self.store.approval(&id).await?;
        let mut tasks = vec![expiry_timer(
            run_id,
            &id,
            &state.node_id,
            state.attempts,
            approval.expires_at,
        )];
        if let NodeKind::Hitl(h) = node.kind()
            && h.notify.is_some()
            && !self.notify_settled(run_id, &id).await?
        {
            tasks.push(notify_task(run_id, &id, &state.node_id, state.attempts));
        }
        Ok(tasks)
    }

    /// After run `run_id` was resumed: sets the timers of its waiting approvals again. A timer
    /// that fell due during the pause was dropped (an expiry does not take effect in a paused
    /// run), so it fires now; one still ahead keeps its deadline (its task is deduplicated).
    pub(crate) async fn rearm_approvals(&self, run_id: &str) -> Result<(), OrchestratorError> {
        let run = self.store.workflow_run(run_id).await?;
        if run.status.is_terminal() || run.status == RunStatus::Paused {
            return Ok(());
        }
        let (ir, graph) = self.workflow(&run).await?;
        let mut tasks = Vec::new();
        for s in self.store.node_states(run_id).await? {
            if s.status != NodeStatus::Waiting {
                continue;
            }
            if let Some(node) = graph.index_of(&s.node_id).map(|i| &ir.nodes()[i]) {
                tasks.extend(self.approval_tasks(run_id, node, &s).await?);
            }
        }
        self.emit(tasks).await;
        Ok(())
    }

    /// Whether approval `approval_id`'s chat message was delivered (`approval_notified`) or
    /// given up on (`approval_notify_failed` without a retry), from the run's events.
    async fn notify_settled(
        &self,
        run_id: &str,
        approval_id: &str,
    ) -> Result<bool, OrchestratorError> {
        let mut after = 0;
        loop {
            let page = self
                .store
                .events(tradeloom_store::EventFilter::Run(run_id), after, 1000)
                .await?;
            let Some(last) = page.last() else {
                return Ok(false);
            };
            after = last.seq;
            let settled = page.iter().any(|e| {
                e.payload.get("approval_id").and_then(Value::as_str) == Some(approval_id)
                    && (e.kind == "approval_notified"
                        || (e.kind == "approval_notify_failed"
                            && e.payload.get("will_retry") == Some(&Value::Bool(false))))
            });
            if settled {
                return Ok(true);
            }
        }
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

/// The context of a run before any node finished: `run` and `inputs`.
pub(crate) fn base_context(run: &WorkflowRun, ir: &Ir) -> Context {
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
    Context::new(&info, inputs)
}

/// The context roots (node ids, `inputs`, `run`) the templates and the `when` of `node` read.
fn referenced_roots(node: &IrNode) -> BTreeSet<String> {
    let mut roots = BTreeSet::new();
    let mut add = |paths: &mut dyn Iterator<Item = &tradeloom_flow::value_path::ValuePath>| {
        for p in paths {
            roots.insert(p.root().to_string());
        }
    };
    if let Some(when) = node.when() {
        add(&mut when.references().into_iter());
    }
    for t in node.inputs().values() {
        add(&mut t.references());
    }
    let mut templates: Vec<&tradeloom_flow::Template> = Vec::new();
    match node.kind() {
        NodeKind::Agent(a) => {
            templates.push(&a.prompt);
            templates.extend(a.market.as_ref().map(|m| &m.as_of));
            templates.extend(a.paper_run.as_ref());
        }
        NodeKind::Order(o) => {
            templates.extend(o.market.as_ref().map(|m| &m.as_of));
            templates.extend(o.paper_run.as_ref());
            templates.extend(o.proposal.templates().into_iter().map(|(_, t)| t));
        }
        NodeKind::Http(h) => {
            templates.push(&h.url);
            templates.extend(h.headers.values().filter_map(|source| match source {
                tradeloom_flow::ir::HeaderSource::Template(t) => Some(t),
                tradeloom_flow::ir::HeaderSource::Secret(_) => None,
            }));
            if let Some(body) = &h.body {
                templates.extend(body.templates().into_iter().map(|(_, t)| t));
            }
        }
        NodeKind::Hitl(h) => templates.push(&h.prompt),
        NodeKind::Simulate(s) => match &s.source {
            SimulationSource::ConfigPath(t) => templates.push(t),
            SimulationSource::Config(j) => {
                templates.extend(j.templates().into_iter().map(|(_, t)| t));
            }
        },
        NodeKind::Backtest(b) => templates.push(&b.spec_path),
        NodeKind::Paper(p) => templates.push(&p.spec_path),
        NodeKind::Transform(t) => {
            templates.extend(t.output.templates().into_iter().map(|(_, t)| t))
        }
        NodeKind::Script(s) => templates.extend(s.input.templates().into_iter().map(|(_, t)| t)),
        NodeKind::Wait(_) | NodeKind::Unknown { .. } => {}
    }
    for t in templates {
        add(&mut t.references());
    }
    roots
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
