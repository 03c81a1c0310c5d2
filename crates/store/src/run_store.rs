//! [`RunStore`]: workflow runs — created, advanced by transitions — and the event log that runs
//! and simulation jobs share.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::FromRow;
use sqlx::types::Json;

use crate::error::StoreError;
use crate::sql::{
    Backend, Db, Driver, Statement, Tx, corrupt, event_order_lock, insert_values, lock_event_order,
    now, page, sql, sql_offset,
};
use crate::workflow_run::{
    ApprovalChange, CreateRun, NewBlob, NewWorkflowRun, NodeChange, NodeState, NodeStatus,
    RunEvent, RunStatus, RunWrite, Transition, TransitionOutcome, WorkflowRun,
};

#[derive(FromRow)]
pub(crate) struct RunRowWf {
    id: String,
    workflow_id: String,
    workflow_version: i32,
    ir_hash: String,
    definition_hash: Option<String>,
    ir_version: i32,
    agent_nodes_spawned: i32,
    status: String,
    priority: String,
    api_key_id: Option<String>,
    workflow_limit: Option<i32>,
    inputs: Json<Value>,
    tokens: i64,
    revision: i64,
    error: Option<String>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl RunRowWf {
    pub(crate) fn into_run(self) -> Result<WorkflowRun, StoreError> {
        Ok(WorkflowRun {
            status: self
                .status
                .parse()
                .map_err(corrupt("workflow_runs.status"))?,
            priority: self
                .priority
                .parse()
                .map_err(corrupt("workflow_runs.priority"))?,
            api_key_id: self.api_key_id,
            workflow_limit: self.workflow_limit.and_then(|n| u32::try_from(n).ok()),
            id: self.id,
            workflow_id: self.workflow_id,
            workflow_version: u32::try_from(self.workflow_version).unwrap_or(0),
            ir_hash: self.ir_hash,
            definition_hash: self.definition_hash,
            ir_version: u32::try_from(self.ir_version).unwrap_or(0),
            agent_nodes_spawned: u32::try_from(self.agent_nodes_spawned).unwrap_or(0),
            inputs: self.inputs.0,
            tokens: self.tokens,
            revision: self.revision,
            error: self.error,
            created_at: self.created_at,
            finished_at: self.finished_at,
        })
    }
}

pub(crate) const WORKFLOW_RUN_COLUMNS: &str = "id, workflow_id, workflow_version, ir_hash, \
     definition_hash, ir_version, agent_nodes_spawned, status, priority, api_key_id, \
     workflow_limit, inputs, tokens, revision, error, created_at, finished_at";

#[derive(FromRow)]
pub(crate) struct NodeStateRow {
    node_id: String,
    status: String,
    attempts: i32,
    output_hash: Option<String>,
    error: Option<String>,
    not_before: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
}

impl NodeStateRow {
    pub(crate) fn into_state(self) -> Result<NodeState, StoreError> {
        Ok(NodeState {
            status: self
                .status
                .parse()
                .map_err(corrupt("workflow_node_states.status"))?,
            node_id: self.node_id,
            attempts: u32::try_from(self.attempts).unwrap_or(0),
            output_hash: self.output_hash,
            error: self.error,
            not_before: self.not_before,
            updated_at: self.updated_at,
        })
    }
}

pub(crate) const EVENT_COLUMNS: &str =
    "seq, run_id, job_id, engine_run_id, kind, node_id, payload, at";

#[derive(FromRow)]
pub(crate) struct EventRow {
    seq: i64,
    run_id: Option<String>,
    job_id: Option<String>,
    engine_run_id: Option<String>,
    kind: String,
    node_id: Option<String>,
    payload: Json<Value>,
    at: DateTime<Utc>,
}

impl EventRow {
    pub(crate) fn into_event(self) -> RunEvent {
        RunEvent {
            seq: self.seq,
            run_id: self.run_id,
            job_id: self.job_id,
            engine_run_id: self.engine_run_id,
            kind: self.kind,
            node_id: self.node_id,
            payload: self.payload.0,
            at: self.at,
        }
    }
}

/// Which events [`RunStore::events`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventFilter<'a> {
    /// Every event of the log, runs' and jobs'.
    All,
    /// The events of one workflow run.
    Run(&'a str),
    /// The events of one simulation job.
    Job(&'a str),
    /// The events of one engine run (a paper run's `order`, `fill` and `equity` events), by
    /// its run folder's id.
    EngineRun(&'a str),
}

/// Workflow runs, their node states and the event log.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// A new `pending` run with every node `pending` and a `run_created` event.
    async fn create_workflow_run(&self, new: &NewWorkflowRun) -> Result<WorkflowRun, StoreError>;

    async fn workflow_run(&self, run_id: &str) -> Result<WorkflowRun, StoreError>;

    /// The run's nodes, by node id.
    async fn node_states(&self, run_id: &str) -> Result<Vec<NodeState>, StoreError>;

    /// Runs, newest first, optionally only those in `status`.
    async fn list_workflow_runs(
        &self,
        status: Option<RunStatus>,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<WorkflowRun>, StoreError>;

    /// Commits a transition atomically and at most once (see [`Transition`]).
    /// [`StoreError::Conflict`] when the run is no longer at `expect_revision`;
    /// [`StoreError::NotFound`] when there is no such run.
    async fn commit_transition(&self, t: &Transition) -> Result<TransitionOutcome, StoreError>;

    /// Commits `writes` in one database transaction (group commit): each write is applied or
    /// refused on its own exactly as [`RunStore::create_workflow_run`] and
    /// [`RunStore::commit_transition`] would (a refused one writes nothing), in order, so a
    /// later write may build on an earlier one of the same run. A transition of a
    /// [lineage](Transition::lineage) with an earlier transition refused in `writes` is refused
    /// as a [`StoreError::Conflict`] without being tried. One outcome per write: a
    /// creation is `Applied { revision: 0 }`. `Err` when the batch as a whole could not be
    /// committed (nothing of it was).
    async fn commit_batch(
        &self,
        writes: &[RunWrite],
    ) -> Result<Vec<Result<TransitionOutcome, StoreError>>, StoreError>;

    /// Events with `seq > after_seq`, oldest first, at most `limit` (0 → 100, capped at
    /// [`crate::MAX_PAGE`]): every event of the log (runs' and jobs'), or those of one workflow
    /// run or one simulation job ([`EventFilter`]). Committed events appear in `seq` order on
    /// both back ends, so reading on from the last `seq` seen misses nothing.
    async fn events(
        &self,
        filter: EventFilter<'_>,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<RunEvent>, StoreError>;

    /// Appends an event of simulation job `job_id` (e.g. `model_day_completed`) to the event
    /// log and returns its `seq`. [`StoreError::NotFound`] when there is no such job,
    /// [`StoreError::Invalid`] for an empty `kind`.
    async fn append_job_event(
        &self,
        job_id: &str,
        kind: &str,
        payload: &serde_json::Value,
    ) -> Result<i64, StoreError>;

    /// Appends an event of workflow run `run_id` outside a transition (e.g.
    /// `approval_notify_failed`: what happened to a side effect, which changes no state) and
    /// returns its `seq`. [`StoreError::NotFound`] when there is no such run,
    /// [`StoreError::Invalid`] for an empty `kind`.
    async fn append_run_event(
        &self,
        run_id: &str,
        kind: &str,
        node_id: Option<&str>,
        payload: &serde_json::Value,
    ) -> Result<i64, StoreError>;

    /// Appends events of engine run `engine_run_id` (a run folder's id; engine runs are not
    /// rows of the store, so any non-empty id is taken) in one transaction, in order, and
    /// returns their `seq`s. [`StoreError::Invalid`] for an empty id or `kind`.
    async fn append_engine_run_events(
        &self,
        engine_run_id: &str,
        events: &[(String, serde_json::Value)],
    ) -> Result<Vec<i64>, StoreError>;
}

#[async_trait]
impl<D: Db> RunStore for D {
    async fn create_workflow_run(&self, new: &NewWorkflowRun) -> Result<WorkflowRun, StoreError> {
        // The same rows as a creation in a batch (`RunWrite::Create`): one way to write a run.
        let create = CreateRun::new(new.clone());
        let mut outcomes = self
            .commit_batch(std::slice::from_ref(&RunWrite::Create(create.clone())))
            .await?;
        match outcomes.pop() {
            Some(Ok(_)) => self.workflow_run(&create.id).await,
            Some(Err(e)) => Err(e),
            None => Err(StoreError::Invalid(format!(
                "creating workflow run {} gave no outcome",
                create.id
            ))),
        }
    }

    async fn workflow_run(&self, run_id: &str) -> Result<WorkflowRun, StoreError> {
        let row: Option<RunRowWf> = sql(format!(
            "SELECT {WORKFLOW_RUN_COLUMNS} FROM workflow_runs WHERE id = $1"
        ))
        .bind(run_id)
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::db("read a workflow run"))?;
        row.ok_or_else(|| StoreError::not_found(format!("workflow run {run_id}")))?
            .into_run()
    }

    async fn node_states(&self, run_id: &str) -> Result<Vec<NodeState>, StoreError> {
        let rows: Vec<NodeStateRow> = sql(
            "SELECT node_id, status, attempts, output_hash, error, not_before, updated_at \
             FROM workflow_node_states WHERE run_id = $1 ORDER BY node_id",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::db("read node states"))?;
        rows.into_iter().map(NodeStateRow::into_state).collect()
    }

    async fn list_workflow_runs(
        &self,
        status: Option<RunStatus>,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<WorkflowRun>, StoreError> {
        let rows: Vec<RunRowWf> = sql(format!(
            "SELECT {WORKFLOW_RUN_COLUMNS} FROM workflow_runs \
             WHERE ($1 IS NULL OR status = $1) ORDER BY id DESC LIMIT $2 OFFSET $3"
        ))
        .bind(status.map(|s| s.as_str()))
        .bind(page(limit))
        .bind(sql_offset(offset))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::db("list workflow runs"))?;
        rows.into_iter().map(RunRowWf::into_run).collect()
    }

    async fn commit_transition(&self, t: &Transition) -> Result<TransitionOutcome, StoreError> {
        // One transition is a batch of one: the same statements, checks and outcomes.
        let mut outcomes = self
            .commit_batch(std::slice::from_ref(&RunWrite::Transition(t.clone())))
            .await?;
        outcomes.pop().unwrap_or_else(|| {
            Err(StoreError::Invalid(format!(
                "committing a transition of workflow run {} gave no outcome",
                t.run_id
            )))
        })
    }

    async fn commit_batch(
        &self,
        writes: &[RunWrite],
    ) -> Result<Vec<Result<TransitionOutcome, StoreError>>, StoreError> {
        let at = now();
        let mut tx = self
            .begin()
            .await
            .map_err(StoreError::db("begin a batch of run writes"))?;
        // Plain transitions (no patch, no approval) are decided together, with one read for
        // the batch (on PostgreSQL from a few of them on: below, the few statements per
        // transition cost less); otherwise each transition is tried in turn (`transition_head`).
        let transitions = writes
            .iter()
            .filter(|w| matches!(w, RunWrite::Transition(_)))
            .count();
        let plain = writes.iter().all(|w| match w {
            RunWrite::Create(_) => true,
            RunWrite::Transition(t) => t.patch.is_none() && t.approvals.is_empty(),
        });
        let batched =
            plain && (Self::BACKEND == Backend::Sqlite || transitions >= BATCHED_HEADS_FROM);
        // What the batch writes once its transitions are decided, run as one script.
        let mut script = Script::default();
        let outcomes = if batched {
            batch_heads::<Self>(&mut tx, writes, at, &mut script).await?
        } else {
            let mut outcomes = Vec::with_capacity(writes.len());
            // Lineages with a refused transition in this batch (see `Transition::lineage`).
            let mut broken: HashSet<u64> = HashSet::new();
            for write in writes {
                match write {
                    RunWrite::Create(c) => {
                        insert_run_row::<Self>(&mut tx, c, RunStatus::Pending).await?;
                        outcomes.push(Ok(TransitionOutcome::Applied { revision: 0 }));
                    }
                    RunWrite::Transition(t) => {
                        if let Some(lineage) = t.lineage.filter(|l| broken.contains(l)) {
                            outcomes.push(Err(lineage_refused(t, lineage)));
                            continue;
                        }
                        let outcome = transition_head::<Self>(&mut tx, t, at).await?;
                        if !matches!(outcome, Ok(TransitionOutcome::Applied { .. })) {
                            broken.extend(t.lineage);
                        }
                        outcomes.push(outcome);
                    }
                }
            }
            outcomes
        };
        // What the applied writes add, written below in a few multi-row statements.
        let mut nodes: Vec<(&str, NodeRow<'_>)> = Vec::new();
        let mut events: Vec<(&str, &str, Option<&str>, Value)> = Vec::new();
        let mut blobs: Vec<&NewBlob> = Vec::new();
        for (write, outcome) in writes.iter().zip(&outcomes) {
            if !matches!(outcome, Ok(TransitionOutcome::Applied { .. })) {
                continue;
            }
            match write {
                RunWrite::Create(c) => {
                    for node in &c.new.nodes {
                        nodes.push((c.id.as_str(), NodeRow::Pending(node, c.created_at)));
                    }
                    events.push((
                        c.id.as_str(),
                        "run_created",
                        None,
                        serde_json::json!({
                            "workflow_id": c.new.workflow_id, "version": c.new.workflow_version
                        }),
                    ));
                }
                RunWrite::Transition(t) => {
                    nodes.extend(
                        t.nodes
                            .iter()
                            .map(|n| (t.run_id.as_str(), NodeRow::Change(n))),
                    );
                    events.extend(t.events.iter().map(|e| {
                        (
                            t.run_id.as_str(),
                            e.kind.as_str(),
                            e.node_id.as_deref(),
                            e.payload.clone(),
                        )
                    }));
                    blobs.extend(&t.blobs);
                }
            }
        }
        insert_blobs::<Self>(&mut script, &blobs, at);
        upsert_nodes::<Self>(&mut script, &nodes, at);
        if !events.is_empty()
            && let Some(lock) = event_order_lock::<Self>()
        {
            script.push(lock);
        }
        for chunk in events.chunks(BATCH_ROWS) {
            let mut insert = rows_of::<Self>(
                "INSERT INTO workflow_events (run_id, kind, node_id, payload, at)",
                chunk.len(),
                5,
            );
            for (run_id, kind, node_id, payload) in chunk {
                insert = insert
                    .bind(*run_id)
                    .bind(*kind)
                    .bind(*node_id)
                    .bind(sqlx::types::Json(payload.clone()))
                    .bind(at);
            }
            script.push(insert);
        }
        script.run(&mut tx).await?;
        tx.commit()
            .await
            .map_err(StoreError::db("commit a batch of run writes"))?;
        Ok(outcomes)
    }

    async fn events(
        &self,
        filter: EventFilter<'_>,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<RunEvent>, StoreError> {
        let (query, context) = match filter {
            EventFilter::All => (
                sql(format!(
                    "SELECT {EVENT_COLUMNS} FROM workflow_events \
                 WHERE seq > $1 ORDER BY seq LIMIT $2"
                )),
                "read run events",
            ),
            EventFilter::Run(run_id) => (
                sql(format!(
                    "SELECT {EVENT_COLUMNS} FROM workflow_events \
                 WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
                ))
                .bind(run_id),
                "read run events",
            ),
            EventFilter::Job(job_id) => (
                sql(format!(
                    "SELECT {EVENT_COLUMNS} FROM workflow_events \
                 WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
                ))
                .bind(job_id),
                "read job events",
            ),
            EventFilter::EngineRun(id) => (
                sql(format!(
                    "SELECT {EVENT_COLUMNS} FROM workflow_events \
                 WHERE engine_run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
                ))
                .bind(id),
                "read engine run events",
            ),
        };
        let rows: Vec<EventRow> = query
            .bind(after_seq)
            .bind(page(limit))
            .fetch_all(self.pool())
            .await
            .map_err(StoreError::db(context))?;
        Ok(rows.into_iter().map(EventRow::into_event).collect())
    }

    async fn append_job_event(
        &self,
        job_id: &str,
        kind: &str,
        payload: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        if kind.trim().is_empty() {
            return Err(StoreError::Invalid(format!(
                "event kind of job {job_id} is empty"
            )));
        }
        let mut tx = self
            .begin()
            .await
            .map_err(StoreError::db("begin appending a job event"))?;
        lock_event_order::<Self>(&mut tx).await?;
        // Through `jobs`, so an unknown job is NotFound rather than a foreign-key error.
        let seq: Option<(i64,)> = sql(
            "INSERT INTO workflow_events (job_id, kind, node_id, payload, at) \
             SELECT id, $2, NULL, $3, $4 FROM jobs WHERE id = $1 RETURNING seq",
        )
        .bind(job_id)
        .bind(kind)
        .bind(sqlx::types::Json(payload))
        .bind(now())
        .fetch_optional(&mut tx)
        .await
        .map_err(StoreError::db("append a job event"))?;
        let Some((seq,)) = seq else {
            return Err(StoreError::not_found(format!("job {job_id}")));
        };
        tx.commit()
            .await
            .map_err(StoreError::db("commit a job event"))?;
        Ok(seq)
    }

    async fn append_run_event(
        &self,
        run_id: &str,
        kind: &str,
        node_id: Option<&str>,
        payload: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        if kind.trim().is_empty() {
            return Err(StoreError::Invalid(format!(
                "event kind of run {run_id} is empty"
            )));
        }
        let mut tx = self
            .begin()
            .await
            .map_err(StoreError::db("begin appending a run event"))?;
        lock_event_order::<Self>(&mut tx).await?;
        // Through `workflow_runs`, so an unknown run is NotFound rather than a foreign-key
        // error.
        let seq: Option<(i64,)> = sql(
            "INSERT INTO workflow_events (run_id, kind, node_id, payload, at) \
             SELECT id, $2, $3, $4, $5 FROM workflow_runs WHERE id = $1 RETURNING seq",
        )
        .bind(run_id)
        .bind(kind)
        .bind(node_id.map(str::to_string))
        .bind(sqlx::types::Json(payload))
        .bind(now())
        .fetch_optional(&mut tx)
        .await
        .map_err(StoreError::db("append a run event"))?;
        let Some((seq,)) = seq else {
            return Err(StoreError::not_found(format!("workflow run {run_id}")));
        };
        tx.commit()
            .await
            .map_err(StoreError::db("commit a run event"))?;
        Ok(seq)
    }

    async fn append_engine_run_events(
        &self,
        engine_run_id: &str,
        events: &[(String, serde_json::Value)],
    ) -> Result<Vec<i64>, StoreError> {
        if engine_run_id.trim().is_empty() {
            return Err(StoreError::Invalid("engine run id is empty".to_string()));
        }
        if let Some((i, _)) = events
            .iter()
            .enumerate()
            .find(|(_, (kind, _))| kind.trim().is_empty())
        {
            return Err(StoreError::Invalid(format!(
                "event {i} of engine run {engine_run_id} has an empty kind"
            )));
        }
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self
            .begin()
            .await
            .map_err(StoreError::db("begin appending engine run events"))?;
        lock_event_order::<Self>(&mut tx).await?;
        let at = now();
        let mut seqs = Vec::with_capacity(events.len());
        for (kind, payload) in events {
            let (seq,): (i64,) = sql(
                "INSERT INTO workflow_events (engine_run_id, kind, node_id, payload, at) \
                 VALUES ($1, $2, NULL, $3, $4) RETURNING seq",
            )
            .bind(engine_run_id)
            .bind(kind.as_str())
            .bind(sqlx::types::Json(payload))
            .bind(at)
            .fetch_one(&mut tx)
            .await
            .map_err(StoreError::db("append an engine run event"))?;
            seqs.push(seq);
        }
        tx.commit()
            .await
            .map_err(StoreError::db("commit engine run events"))?;
        Ok(seqs)
    }
}

/// Rows per multi-row statement of a batch: far below both back ends' limits on bound
/// parameters (SQLite 32,766, PostgreSQL 65,535) at 8 columns.
pub(crate) const BATCH_ROWS: usize = 500;

/// A node state row a batch writes: a new run's `pending` node, or a transition's change.
enum NodeRow<'a> {
    Pending(&'a str, DateTime<Utc>),
    Change(&'a NodeChange),
}

impl NodeRow<'_> {
    fn node_id(&self) -> &str {
        match self {
            NodeRow::Pending(id, _) => id,
            NodeRow::Change(n) => &n.node_id,
        }
    }
}

/// Inserts the row of run `c` in `status` (`pending`, or `queued` by admission).
pub(crate) async fn insert_run_row<D: Db>(
    tx: &mut Tx<D::Driver>,
    c: &CreateRun,
    status: RunStatus,
) -> Result<(), StoreError> {
    sql(
        "INSERT INTO workflow_runs (id, workflow_id, workflow_version, ir_hash, status, \
         inputs, created_at, definition_hash, agent_nodes_spawned, priority, api_key_id, \
         workflow_limit) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&c.id)
    .bind(&c.new.workflow_id)
    .bind(c.new.workflow_version as i32)
    .bind(&c.new.ir_hash)
    .bind(status.as_str())
    .bind(sqlx::types::Json(&c.new.inputs))
    .bind(c.created_at)
    .bind(&c.new.definition_hash)
    .bind(i32::try_from(c.new.agent_nodes).unwrap_or(i32::MAX))
    .bind(c.new.priority.as_str())
    .bind(c.new.api_key_id.as_deref())
    .bind(
        c.new
            .workflow_limit
            .map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
    )
    .execute(tx)
    .await
    .map_err(StoreError::db("create a workflow run"))?;
    Ok(())
}

/// Plain transitions in a batch from which they are decided together ([`batch_heads`]):
/// below this, the few statements per transition cost less than the batch's reads.
const BATCHED_HEADS_FROM: usize = 4;

fn lineage_refused(t: &Transition, lineage: u64) -> StoreError {
    StoreError::Conflict(format!(
        "workflow run {}: signal `{}` was planned on a transition of lineage {lineage} that was refused in this batch; read it again",
        t.run_id, t.signal_id
    ))
}

/// `$first, …, $(first + n - 1)` on PostgreSQL; `?, …` (n of them) on SQLite, where a
/// statement's placeholders must then all be `?`. sqlx binds a numbered SQLite parameter by
/// asking SQLite for its name, a scan of every parameter of the statement: quadratic in the
/// parameters of a multi-row statement (thousands), which was half the CPU of a burst of runs.
fn placeholders<D: Db>(first: usize, n: usize) -> String {
    match D::BACKEND {
        Backend::Postgres => (first..first + n)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", "),
        Backend::Sqlite => vec!["?"; n].join(", "),
    }
}

/// `head VALUES (…), (…)`: a multi-row statement of `rows` rows of `columns` values, bound row
/// by row (see [`placeholders`] for the SQLite form).
pub(crate) fn rows_of<D: Db>(head: &str, rows: usize, columns: usize) -> crate::sql::Statement {
    match D::BACKEND {
        Backend::Postgres => insert_values(head, rows, columns),
        Backend::Sqlite => {
            let row = format!("({})", placeholders::<D>(1, columns));
            sql(format!("{head} VALUES {}", vec![row; rows].join(", ")))
        }
    }
}

#[derive(FromRow)]
struct RevisionRow {
    id: String,
    revision: i64,
}

#[derive(FromRow)]
struct SignalRow {
    run_id: String,
    signal_id: String,
}

/// A row of the batch's one read on SQLite: a run's revision (`signal_id` null) or a signal
/// already applied (`revision` null).
#[derive(FromRow)]
struct HeadRow {
    run_id: String,
    revision: Option<i64>,
    signal_id: Option<String>,
}

/// The writes of a batch once its transitions are decided, run in order as one script
/// ([`Tx::execute_all`]: on SQLite one hand-off to the connection's thread rather than one
/// per statement), with the row counts some of them must reach.
#[derive(Default)]
struct Script {
    statements: Vec<Statement>,
    /// Position in `statements`, the rows it must touch, and what it does.
    expected: Vec<(usize, u64, &'static str)>,
}

impl Script {
    fn push(&mut self, statement: Statement) {
        self.statements.push(statement);
    }

    fn push_expecting(&mut self, statement: Statement, rows: u64, what: &'static str) {
        self.expected.push((self.statements.len(), rows, what));
        self.statements.push(statement);
    }

    /// Runs the statements; `Err` if one fails or a checked count is off (a fault: nothing
    /// of the batch is kept, as the caller drops the transaction).
    async fn run<DB: Driver>(self, tx: &mut Tx<DB>) -> Result<(), StoreError> {
        let changes = tx
            .execute_all(self.statements)
            .await
            .map_err(StoreError::db("write a batch of run writes"))?;
        for (at, rows, what) in self.expected {
            let moved = changes.get(at).copied().unwrap_or(0);
            if moved != rows {
                return Err(StoreError::Invalid(format!("{what} {rows} moved {moved}")));
            }
        }
        Ok(())
    }
}

/// A run's row after the applied transitions of a batch.
struct RunChange<'a> {
    /// The revision read at the start of the batch (the update's guard).
    read: i64,
    revision: i64,
    status: Option<&'a str>,
    tokens: i64,
    error: Option<&'a str>,
    finished: bool,
}

/// Decides every write of a batch of creations and plain transitions (no patch, no approval)
/// exactly as `insert_run_row` and `transition_head` would one by one: the revisions of the
/// runs not created in the batch and the signals of theirs already applied are read (the
/// runs' rows locked on PostgreSQL; SQLite's writer holds the database; a run created in the
/// batch has none: its id was new, and signals go with their run); each transition is then
/// applied or refused in order in memory. The creations, the applied signals and the run rows
/// are added to `script`, written with the rest of the batch. `Err` only for a database
/// failure (the batch is lost, and the caller commits its writes one by one).
async fn batch_heads<D: Db>(
    tx: &mut Tx<D::Driver>,
    writes: &[RunWrite],
    at: DateTime<Utc>,
    script: &mut Script,
) -> Result<Vec<Result<TransitionOutcome, StoreError>>, StoreError> {
    let creates: Vec<&CreateRun> = writes
        .iter()
        .filter_map(|w| match w {
            RunWrite::Create(c) => Some(c),
            RunWrite::Transition(_) => None,
        })
        .collect();
    for chunk in creates.chunks(BATCH_ROWS) {
        let mut insert = rows_of::<D>(
            "INSERT INTO workflow_runs (id, workflow_id, workflow_version, ir_hash, status, \
             inputs, created_at, definition_hash, agent_nodes_spawned, priority, api_key_id, \
             workflow_limit)",
            chunk.len(),
            12,
        );
        for c in chunk {
            insert = insert
                .bind(&c.id)
                .bind(&c.new.workflow_id)
                .bind(c.new.workflow_version as i32)
                .bind(&c.new.ir_hash)
                .bind(RunStatus::Pending.as_str())
                .bind(sqlx::types::Json(&c.new.inputs))
                .bind(c.created_at)
                .bind(&c.new.definition_hash)
                .bind(i32::try_from(c.new.agent_nodes).unwrap_or(i32::MAX))
                .bind(c.new.priority.as_str())
                .bind(c.new.api_key_id.as_deref())
                .bind(
                    c.new
                        .workflow_limit
                        .map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
                );
        }
        script.push(insert);
    }
    let mut revisions: HashMap<&str, i64> = creates.iter().map(|c| (c.id.as_str(), 0)).collect();
    let mut wanted: HashSet<&str> = HashSet::new();
    let mut to_read: Vec<&str> = Vec::new();
    let mut asked: Vec<(&str, &str)> = Vec::new();
    for w in writes {
        if let RunWrite::Transition(t) = w
            && !revisions.contains_key(t.run_id.as_str())
        {
            if wanted.insert(t.run_id.as_str()) {
                to_read.push(t.run_id.as_str());
            }
            asked.push((t.run_id.as_str(), t.signal_id.as_str()));
        }
    }
    let mut stored: Vec<SignalRow> = Vec::new();
    match D::BACKEND {
        // One read: every statement is a round trip to the connection's thread.
        Backend::Sqlite => {
            let reads = to_read
                .len()
                .div_ceil(BATCH_ROWS)
                .max(asked.len().div_ceil(BATCH_ROWS));
            for k in 0..reads {
                let part = k * BATCH_ROWS..(k + 1) * BATCH_ROWS;
                let runs = to_read
                    .get(part.start..part.end.min(to_read.len()))
                    .unwrap_or_default();
                let pairs = asked
                    .get(part.start..part.end.min(asked.len()))
                    .unwrap_or_default();
                let mut selects = Vec::new();
                if !runs.is_empty() {
                    selects.push(format!(
                        "SELECT id AS run_id, revision, NULL AS signal_id FROM workflow_runs \
                         WHERE id IN ({})",
                        placeholders::<D>(1, runs.len())
                    ));
                }
                if !pairs.is_empty() {
                    selects.push(format!(
                        "SELECT run_id, NULL AS revision, signal_id FROM workflow_signals \
                         WHERE (run_id, signal_id) IN (VALUES {})",
                        vec!["(?, ?)"; pairs.len()].join(", ")
                    ));
                }
                let mut query = sql(selects.join(" UNION ALL "));
                for id in runs {
                    query = query.bind(*id);
                }
                for (run_id, signal_id) in pairs {
                    query = query.bind(*run_id).bind(*signal_id);
                }
                let rows: Vec<HeadRow> = query
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(StoreError::db("read workflow runs' revisions and signals"))?;
                for row in rows {
                    match (row.revision, row.signal_id) {
                        (Some(revision), _) => {
                            if let Some(id) = wanted.get(row.run_id.as_str()) {
                                revisions.insert(id, revision);
                            }
                        }
                        (None, Some(signal_id)) => stored.push(SignalRow {
                            run_id: row.run_id,
                            signal_id,
                        }),
                        (None, None) => {}
                    }
                }
            }
        }
        Backend::Postgres => {
            for chunk in to_read.chunks(BATCH_ROWS) {
                let mut query = sql(format!(
                    "SELECT id, revision FROM workflow_runs WHERE id IN ({}) FOR UPDATE",
                    placeholders::<D>(1, chunk.len())
                ));
                for id in chunk {
                    query = query.bind(*id);
                }
                let rows: Vec<RevisionRow> = query
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(StoreError::db("read workflow runs' revisions"))?;
                for row in rows {
                    if let Some(id) = wanted.get(row.id.as_str()) {
                        revisions.insert(id, row.revision);
                    }
                }
            }
            for chunk in asked.chunks(BATCH_ROWS) {
                let pairs = (0..chunk.len())
                    .map(|i| format!("({})", placeholders::<D>(2 * i + 1, 2)))
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut query = sql(format!(
                    "SELECT run_id, signal_id FROM workflow_signals WHERE (run_id, signal_id) IN (VALUES {pairs})"
                ));
                for (run_id, signal_id) in chunk {
                    query = query.bind(*run_id).bind(*signal_id);
                }
                let rows: Vec<SignalRow> = query
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(StoreError::db("read applied signals"))?;
                stored.extend(rows);
            }
        }
    }
    let mut applied: HashSet<(&str, &str)> = stored
        .iter()
        .map(|r| (r.run_id.as_str(), r.signal_id.as_str()))
        .collect();

    let mut outcomes = Vec::with_capacity(writes.len());
    let mut broken: HashSet<u64> = HashSet::new();
    let mut changes: HashMap<&str, RunChange<'_>> = HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    let mut signals: Vec<(&str, &str)> = Vec::new();
    for w in writes {
        let t = match w {
            RunWrite::Create(_) => {
                outcomes.push(Ok(TransitionOutcome::Applied { revision: 0 }));
                continue;
            }
            RunWrite::Transition(t) => t,
        };
        if let Some(lineage) = t.lineage.filter(|l| broken.contains(l)) {
            outcomes.push(Err(lineage_refused(t, lineage)));
            continue;
        }
        let run_id = t.run_id.as_str();
        let outcome = match revisions.get(run_id).copied() {
            None => Err(StoreError::not_found(format!("workflow run {run_id}"))),
            Some(_) if applied.contains(&(run_id, t.signal_id.as_str())) => {
                Ok(TransitionOutcome::AlreadyApplied)
            }
            Some(revision) if revision != t.expect_revision => Err(StoreError::Conflict(format!(
                "workflow run {run_id} is at revision {revision}, not {}; read it again",
                t.expect_revision
            ))),
            Some(revision) => {
                let next = revision + 1;
                revisions.insert(run_id, next);
                applied.insert((run_id, t.signal_id.as_str()));
                signals.push((run_id, t.signal_id.as_str()));
                let change = changes.entry(run_id).or_insert_with(|| {
                    order.push(run_id);
                    RunChange {
                        read: revision,
                        revision,
                        status: None,
                        tokens: 0,
                        error: None,
                        finished: false,
                    }
                });
                change.revision = next;
                if let Some(status) = t.status {
                    change.status = Some(status.as_str());
                    change.finished |= status.is_terminal();
                }
                change.tokens += t.tokens_delta;
                if let Some(e) = &t.error {
                    change.error = Some(e.as_str());
                }
                Ok(TransitionOutcome::Applied { revision: next })
            }
        };
        if !matches!(outcome, Ok(TransitionOutcome::Applied { .. })) {
            broken.extend(t.lineage);
        }
        outcomes.push(outcome);
    }

    for chunk in signals.chunks(BATCH_ROWS) {
        let mut insert = rows_of::<D>(
            "INSERT INTO workflow_signals (run_id, signal_id, applied_at)",
            chunk.len(),
            3,
        );
        for (run_id, signal_id) in chunk {
            insert = insert.bind(*run_id).bind(*signal_id).bind(at);
        }
        script.push(insert);
    }
    for chunk in order.chunks(BATCH_ROWS) {
        let mut text = String::from(
            "UPDATE workflow_runs SET revision = v.column2, \
             status = COALESCE(v.column3, workflow_runs.status), \
             tokens = workflow_runs.tokens + v.column4, \
             error = COALESCE(v.column5, workflow_runs.error), \
             finished_at = COALESCE(v.column6, workflow_runs.finished_at) FROM (VALUES ",
        );
        for i in 0..chunk.len() {
            if i > 0 {
                text.push_str(", ");
            }
            text.push_str(&format!("({})", placeholders::<D>(7 * i + 1, 7)));
        }
        text.push_str(
            ") AS v WHERE workflow_runs.id = v.column1 AND workflow_runs.revision = v.column7",
        );
        let mut update = sql(text);
        for run_id in chunk {
            let Some(c) = changes.get(run_id) else {
                continue; // unreachable: `order` lists the keys of `changes`
            };
            update = update
                .bind(*run_id)
                .bind(c.revision)
                .bind(c.status)
                .bind(c.tokens)
                .bind(c.error)
                .bind(c.finished.then_some(at))
                .bind(c.read);
        }
        // The rows were read in this transaction (and locked on PostgreSQL): another writer
        // cannot have moved them, so a count off is a fault.
        script.push_expecting(update, chunk.len() as u64, "advancing workflow runs:");
    }
    Ok(outcomes)
}

/// The part of a transition that decides whether it applies: its signal (at most once), its
/// run's revision, its patch and its approvals. Node states, events and blobs of applied
/// transitions are written afterwards, for the whole batch at once. A refused transition
/// leaves nothing behind. `Err` only for a database failure (the batch is lost).
async fn transition_head<D: Db>(
    tx: &mut Tx<D::Driver>,
    t: &Transition,
    at: DateTime<Utc>,
) -> Result<Result<TransitionOutcome, StoreError>, StoreError> {
    // Closing an approval can be refused after the run row moved: undo to here then.
    let savepoint = t
        .approvals
        .iter()
        .any(|a| matches!(a, ApprovalChange::Close { .. }));
    if savepoint {
        sql("SAVEPOINT transition")
            .execute(&mut *tx)
            .await
            .map_err(StoreError::db("begin a transition"))?;
    }
    let applied = sql(
        "INSERT INTO workflow_signals (run_id, signal_id, applied_at) VALUES ($1, $2, $3) \
         ON CONFLICT (run_id, signal_id) DO NOTHING",
    )
    .bind(&t.run_id)
    .bind(&t.signal_id)
    .bind(at)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::db("record a signal"))?;
    if applied.rows_affected() == 0 {
        release(tx, savepoint).await?;
        return Ok(Ok(TransitionOutcome::AlreadyApplied));
    }
    let finished = t.status.filter(|s| s.is_terminal()).map(|_| at);
    let patch = t.patch.as_ref();
    let moved = sql("UPDATE workflow_runs SET revision = revision + 1, \
         status = COALESCE($3, status), tokens = tokens + $4, \
         ir_hash = COALESCE($5, ir_hash), error = COALESCE($6, error), \
         finished_at = COALESCE($7, finished_at), \
         definition_hash = COALESCE($8, definition_hash), \
         ir_version = ir_version + $9, agent_nodes_spawned = agent_nodes_spawned + $10 \
         WHERE id = $1 AND revision = $2")
    .bind(&t.run_id)
    .bind(t.expect_revision)
    .bind(t.status.map(|s| s.as_str()))
    .bind(t.tokens_delta)
    .bind(patch.map(|p| p.ir_hash.as_str()))
    .bind(t.error.as_deref())
    .bind(finished)
    .bind(patch.map(|p| p.definition_hash.as_str()))
    .bind(i32::from(patch.is_some()))
    .bind(patch.map_or(0, |p| {
        i32::try_from(p.added_agent_nodes).unwrap_or(i32::MAX)
    }))
    .execute(&mut *tx)
    .await
    .map_err(StoreError::db("advance a workflow run"))?;
    if moved.rows_affected() == 0 {
        sql("DELETE FROM workflow_signals WHERE run_id = $1 AND signal_id = $2")
            .bind(&t.run_id)
            .bind(&t.signal_id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::db("forget a refused signal"))?;
        release(tx, savepoint).await?;
        let revision: Option<(i64,)> = sql("SELECT revision FROM workflow_runs WHERE id = $1")
            .bind(&t.run_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::db("read a workflow run's revision"))?;
        return Ok(Err(match revision {
            None => StoreError::not_found(format!("workflow run {}", t.run_id)),
            Some((revision,)) => StoreError::Conflict(format!(
                "workflow run {} is at revision {revision}, not {}; read it again",
                t.run_id, t.expect_revision
            )),
        }));
    }
    if let Some(p) = patch {
        let (ir_version,): (i32,) = sql("SELECT ir_version FROM workflow_runs WHERE id = $1")
            .bind(&t.run_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::db("read the run's IR version"))?;
        sql(
            "INSERT INTO workflow_patches (run_id, ir_version, operations, \
             definition_hash, ir_hash, applied_by, applied_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&t.run_id)
        .bind(ir_version)
        .bind(sqlx::types::Json(&p.operations))
        .bind(&p.definition_hash)
        .bind(&p.ir_hash)
        .bind(&p.applied_by)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::db("record a patch"))?;
    }
    for change in &t.approvals {
        match change {
            ApprovalChange::Create(a) => {
                sql(
                    "INSERT INTO workflow_approvals (id, run_id, node_id, attempt, \
                     prompt, status, default_decision, approvers, expires_at, \
                     created_at) VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $9)",
                )
                .bind(&a.id)
                .bind(&t.run_id)
                .bind(&a.node_id)
                .bind(a.attempt as i32)
                .bind(&a.prompt)
                .bind(a.default_decision.as_str())
                .bind(a.approvers.as_ref().map(sqlx::types::Json))
                .bind(a.expires_at)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db("create an approval"))?;
            }
            ApprovalChange::Close {
                id,
                status,
                decision,
                by,
                comment,
            } => {
                let closed = sql("UPDATE workflow_approvals SET status = $2, decision = $3, \
                     decided_by = $4, comment = $5, decided_at = $6 \
                     WHERE id = $1 AND status = 'pending'")
                .bind(id)
                .bind(status.as_str())
                .bind(decision.map(|d| d.as_str()))
                .bind(by.as_deref())
                .bind(comment.as_deref())
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db("close an approval"))?;
                if closed.rows_affected() == 0 {
                    sql("ROLLBACK TO SAVEPOINT transition")
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::db("undo a refused transition"))?;
                    release(tx, savepoint).await?;
                    return Ok(Err(StoreError::Conflict(format!(
                        "approval {id} is not pending"
                    ))));
                }
            }
        }
    }
    release(tx, savepoint).await?;
    Ok(Ok(TransitionOutcome::Applied {
        revision: t.expect_revision + 1,
    }))
}

async fn release<DB: Driver>(tx: &mut Tx<DB>, savepoint: bool) -> Result<(), StoreError> {
    if savepoint {
        sql("RELEASE SAVEPOINT transition")
            .execute(&mut *tx)
            .await
            .map_err(StoreError::db("end a transition"))?;
    }
    Ok(())
}

/// Stores the batch's blobs (each hash once) unless they are there already.
fn insert_blobs<D: Db>(script: &mut Script, blobs: &[&NewBlob], at: DateTime<Utc>) {
    let mut seen = std::collections::HashSet::new();
    let unique: Vec<(String, &NewBlob)> = blobs
        .iter()
        .map(|b| (crate::blob_hash(&b.body), *b))
        .filter(|(hash, _)| seen.insert(hash.clone()))
        .collect();
    for chunk in unique.chunks(BATCH_ROWS) {
        let mut insert = rows_of::<D>(
            "INSERT INTO blobs (hash, kind, body, created_at)",
            chunk.len(),
            4,
        );
        for (hash, b) in chunk {
            insert = insert.bind(hash).bind(&b.kind).bind(&b.body).bind(at);
        }
        insert.text.push_str(" ON CONFLICT (hash) DO NOTHING");
        script.push(insert);
    }
}

/// Writes node states: the last row of each (run, node) of the batch wins, as if each had been
/// written in turn (PostgreSQL refuses to update one row twice in a statement).
fn upsert_nodes<D: Db>(script: &mut Script, rows: &[(&str, NodeRow<'_>)], at: DateTime<Utc>) {
    let mut last: std::collections::HashMap<(&str, &str), usize> =
        std::collections::HashMap::with_capacity(rows.len());
    for (i, (run_id, row)) in rows.iter().enumerate() {
        last.insert((*run_id, row.node_id()), i);
    }
    let kept: Vec<&(&str, NodeRow<'_>)> = rows
        .iter()
        .enumerate()
        .filter(|(i, (run_id, row))| last.get(&(*run_id, row.node_id())) == Some(i))
        .map(|(_, r)| r)
        .collect();
    for chunk in kept.chunks(BATCH_ROWS) {
        let mut insert = rows_of::<D>(
            "INSERT INTO workflow_node_states (run_id, node_id, status, attempts, \
             output_hash, error, updated_at, not_before)",
            chunk.len(),
            8,
        );
        for (run_id, row) in chunk {
            insert = match row {
                NodeRow::Pending(node, created) => insert
                    .bind(*run_id)
                    .bind(*node)
                    .bind(NodeStatus::Pending.as_str())
                    .bind(0i32)
                    .bind(None::<String>)
                    .bind(None::<String>)
                    .bind(*created)
                    .bind(None::<DateTime<Utc>>),
                NodeRow::Change(n) => insert
                    .bind(*run_id)
                    .bind(&n.node_id)
                    .bind(n.status.as_str())
                    .bind(n.attempts as i32)
                    .bind(n.output_hash.as_deref())
                    .bind(n.error.as_deref())
                    .bind(at)
                    .bind(n.not_before),
            };
        }
        insert.text.push_str(
            " ON CONFLICT (run_id, node_id) DO UPDATE SET status = excluded.status, \
             attempts = excluded.attempts, output_hash = excluded.output_hash, \
             error = excluded.error, updated_at = excluded.updated_at, \
             not_before = excluded.not_before",
        );
        script.push(insert);
    }
}
