//! [`RunStore`]: workflow runs — created, advanced by transitions — and the event log that runs
//! and simulation jobs share.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::FromRow;
use sqlx::types::Json;

use crate::error::StoreError;
use crate::sql::{Db, corrupt, lock_event_order, now, page, sql, sql_offset};
use crate::workflow_run::{
    ApprovalChange, NewWorkflowRun, NodeState, RunEvent, RunStatus, Transition, TransitionOutcome,
    WorkflowRun,
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
     definition_hash, ir_version, agent_nodes_spawned, status, inputs, tokens, revision, error, created_at, finished_at";

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

pub(crate) const EVENT_COLUMNS: &str = "seq, run_id, job_id, kind, node_id, payload, at";

#[derive(FromRow)]
pub(crate) struct EventRow {
    seq: i64,
    run_id: Option<String>,
    job_id: Option<String>,
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
}

#[async_trait]
impl<D: Db> RunStore for D {
    async fn create_workflow_run(&self, new: &NewWorkflowRun) -> Result<WorkflowRun, StoreError> {
        let at = now();
        let id = uuid::Uuid::now_v7().to_string();
        let mut tx = self
            .begin()
            .await
            .map_err(StoreError::db("begin creating a workflow run"))?;
        sql(
            "INSERT INTO workflow_runs (id, workflow_id, workflow_version, ir_hash, status, \
             inputs, created_at, definition_hash, agent_nodes_spawned) \
             VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(&new.workflow_id)
        .bind(new.workflow_version as i32)
        .bind(&new.ir_hash)
        .bind(sqlx::types::Json(&new.inputs))
        .bind(at)
        .bind(&new.definition_hash)
        .bind(i32::try_from(new.agent_nodes).unwrap_or(i32::MAX))
        .execute(&mut tx)
        .await
        .map_err(StoreError::db("create a workflow run"))?;
        for node in &new.nodes {
            sql(
                "INSERT INTO workflow_node_states (run_id, node_id, status, updated_at) \
                 VALUES ($1, $2, 'pending', $3)",
            )
            .bind(&id)
            .bind(node)
            .bind(at)
            .execute(&mut tx)
            .await
            .map_err(StoreError::db("create a node state"))?;
        }
        lock_event_order::<Self>(&mut tx).await?;
        sql(
            "INSERT INTO workflow_events (run_id, kind, node_id, payload, at) \
             VALUES ($1, 'run_created', NULL, $2, $3)",
        )
        .bind(&id)
        .bind(sqlx::types::Json(
            serde_json::json!({"workflow_id": new.workflow_id, "version": new.workflow_version}),
        ))
        .bind(at)
        .execute(&mut tx)
        .await
        .map_err(StoreError::db("append an event"))?;
        tx.commit()
            .await
            .map_err(StoreError::db("commit a new workflow run"))?;
        self.workflow_run(&id).await
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
        let at = now();
        let mut tx = self
            .begin()
            .await
            .map_err(StoreError::db("begin a transition"))?;
        // The run's row first: it serialises transitions of one run on PostgreSQL and
        // proves the revision the transition was computed from is still current.
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
        .execute(&mut tx)
        .await
        .map_err(StoreError::db("advance a workflow run"))?;
        let applied = sql(
            "INSERT INTO workflow_signals (run_id, signal_id, applied_at) VALUES ($1, $2, $3) \
             ON CONFLICT (run_id, signal_id) DO NOTHING",
        )
        .bind(&t.run_id)
        .bind(&t.signal_id)
        .bind(at)
        .execute(&mut tx)
        .await
        .map_err(StoreError::db("record a signal"))?;
        if applied.rows_affected() == 0 {
            // Seen before: drop everything, including the revision bump above.
            drop(tx);
            return Ok(TransitionOutcome::AlreadyApplied);
        }
        if moved.rows_affected() == 0 {
            drop(tx);
            let run = self.workflow_run(&t.run_id).await?;
            return Err(StoreError::Conflict(format!(
                "workflow run {} is at revision {}, not {}; read it again",
                t.run_id, run.revision, t.expect_revision
            )));
        }
        for n in &t.nodes {
            sql(
                "INSERT INTO workflow_node_states (run_id, node_id, status, attempts, \
                 output_hash, error, updated_at, not_before) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (run_id, node_id) DO UPDATE SET status = excluded.status, \
                 attempts = excluded.attempts, output_hash = excluded.output_hash, \
                 error = excluded.error, updated_at = excluded.updated_at, \
                 not_before = excluded.not_before",
            )
            .bind(&t.run_id)
            .bind(&n.node_id)
            .bind(n.status.as_str())
            .bind(n.attempts as i32)
            .bind(n.output_hash.as_deref())
            .bind(n.error.as_deref())
            .bind(at)
            .bind(n.not_before)
            .execute(&mut tx)
            .await
            .map_err(StoreError::db("write a node state"))?;
        }
        if let Some(p) = patch {
            let (ir_version,): (i32,) = sql("SELECT ir_version FROM workflow_runs WHERE id = $1")
                .bind(&t.run_id)
                .fetch_one(&mut tx)
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
            .execute(&mut tx)
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
                    .execute(&mut tx)
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
                    .execute(&mut tx)
                    .await
                    .map_err(StoreError::db("close an approval"))?;
                    if closed.rows_affected() == 0 {
                        drop(tx);
                        return Err(StoreError::Conflict(format!(
                            "approval {id} is not pending"
                        )));
                    }
                }
            }
        }
        if !t.events.is_empty() {
            lock_event_order::<Self>(&mut tx).await?;
        }
        for e in &t.events {
            sql(
                "INSERT INTO workflow_events (run_id, kind, node_id, payload, at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&t.run_id)
            .bind(&e.kind)
            .bind(e.node_id.as_deref())
            .bind(sqlx::types::Json(&e.payload))
            .bind(at)
            .execute(&mut tx)
            .await
            .map_err(StoreError::db("append an event"))?;
        }
        tx.commit()
            .await
            .map_err(StoreError::db("commit a transition"))?;
        Ok(TransitionOutcome::Applied {
            revision: t.expect_revision + 1,
        })
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
}
