//! [`AdmissionStore`]: concurrency limits of workflow runs — per workflow (the definition's
//! `limits.max_concurrent_runs`, kept on each run as `workflow_limit`) and per API key (the
//! key's `max_concurrent_runs`). A run is *active* while `pending`, `running`, `waiting` or
//! `paused`; a start that would take a limit past its maximum creates the run `queued` (or
//! nothing, when the caller asks to be refused), and queued runs become `pending` as slots
//! free: the most urgent priority first, then the oldest.
//!
//! Every decision is taken in one transaction holding the admission lock (on PostgreSQL a
//! transaction-scoped advisory lock; SQLite serialises its writers anyway), which reads the
//! counts, inserts or promotes, and commits: two starts, or a start and a promotion, in any
//! processes cannot both take the last slot. Runs leave the active statuses (finish) without
//! the lock; that only frees slots, so a decision that read a count a moment too high is merely
//! conservative, and the next promotion makes up for it.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::json;
use sqlx::FromRow;

use crate::error::StoreError;
use crate::run_store::{BATCH_ROWS, insert_run_row, rows_of};
use crate::sql::{Backend, Db, Tx, lock_event_order, now, sql};
use crate::workflow_run::{CreateRun, NodeStatus, RunStatus, WorkflowRun};

/// Statuses that hold a slot under a concurrency limit.
pub const ACTIVE_STATUSES: [RunStatus; 4] = [
    RunStatus::Pending,
    RunStatus::Running,
    RunStatus::Waiting,
    RunStatus::Paused,
];

const ACTIVE_SQL: &str = "('pending', 'running', 'waiting', 'paused')";

/// Which limit held a run back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// The workflow definition's `limits.max_concurrent_runs`.
    Workflow,
    /// The starting API key's `max_concurrent_runs`.
    ApiKey,
}

impl LimitKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            LimitKind::Workflow => "workflow",
            LimitKind::ApiKey => "api_key",
        }
    }
}

/// A limit that was full: which, its maximum, and the runs active under it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LimitReached {
    pub limit: LimitKind,
    pub max_concurrent_runs: u32,
    pub active: u32,
}

/// What [`AdmissionStore::admit_workflow_run`] did with a start.
#[derive(Clone, Debug, PartialEq)]
pub enum Admission {
    /// Created `pending`: start it.
    Admitted(WorkflowRun),
    /// Created `queued` behind `reached`; it becomes `pending` when a slot frees.
    Queued {
        run: WorkflowRun,
        reached: LimitReached,
    },
    /// Not created: `reached` was full and the caller asked to be refused rather than queued.
    Refused(LimitReached),
}

/// Admission of workflow runs under concurrency limits.
#[async_trait]
pub trait AdmissionStore: Send + Sync {
    /// Creates run `create` (its nodes `pending`, a `run_created` event) `pending` when every
    /// limit it is under has room once the queued runs ahead of it (more urgent, or as urgent
    /// and older) have taken theirs; otherwise `queued` with a `run_queued` event naming the
    /// limit, or — with `refuse` — not at all. Queued runs the decision finds room for are
    /// promoted with it; their ids come back second (the caller starts them).
    async fn admit_workflow_run(
        &self,
        create: &CreateRun,
        refuse: bool,
    ) -> Result<(Admission, Vec<String>), StoreError>;

    /// Moves queued runs to `pending` (with a `run_admitted` event) while their limits have
    /// room, most urgent first, then oldest; returns their ids, in that order, for the caller
    /// to start. Cheap when nothing is queued.
    async fn promote_queued_runs(&self) -> Result<Vec<String>, StoreError>;
}

#[derive(FromRow)]
struct QueuedRow {
    id: String,
    workflow_id: String,
    api_key_id: Option<String>,
    workflow_limit: Option<i32>,
}

/// Runs active per workflow and per key, and the keys' limits, as read under the lock.
struct Slots {
    by_workflow: HashMap<String, u32>,
    by_key: HashMap<String, u32>,
    key_limits: HashMap<String, u32>,
}

impl Slots {
    async fn read<D: Db>(tx: &mut Tx<D::Driver>) -> Result<Slots, StoreError> {
        let by_workflow: Vec<(String, i64)> = sql(format!(
            "SELECT workflow_id, COUNT(*) FROM workflow_runs WHERE status IN {ACTIVE_SQL} \
             GROUP BY workflow_id"
        ))
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::db("count active runs per workflow"))?;
        let by_key: Vec<(String, i64)> = sql(format!(
            "SELECT api_key_id, COUNT(*) FROM workflow_runs \
             WHERE api_key_id IS NOT NULL AND status IN {ACTIVE_SQL} GROUP BY api_key_id"
        ))
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::db("count active runs per API key"))?;
        let key_limits: Vec<(String, i32)> = sql(
            "SELECT id, max_concurrent_runs FROM api_keys WHERE max_concurrent_runs IS NOT NULL",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::db("read the API keys' run limits"))?;
        let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
        Ok(Slots {
            by_workflow: by_workflow
                .into_iter()
                .map(|(k, n)| (k, count(n)))
                .collect(),
            by_key: by_key.into_iter().map(|(k, n)| (k, count(n))).collect(),
            key_limits: key_limits
                .into_iter()
                .filter_map(|(k, n)| Some((k, u32::try_from(n).ok()?)))
                .collect(),
        })
    }

    /// Takes a slot for `run` if every limit it is under has room; else the full limit.
    fn take(&mut self, run: &QueuedRow) -> Result<(), LimitReached> {
        let on_workflow = self.by_workflow.get(&run.workflow_id).copied().unwrap_or(0);
        if let Some(max) = run.workflow_limit.and_then(|n| u32::try_from(n).ok())
            && on_workflow >= max
        {
            return Err(LimitReached {
                limit: LimitKind::Workflow,
                max_concurrent_runs: max,
                active: on_workflow,
            });
        }
        if let Some(key) = &run.api_key_id
            && let Some(&max) = self.key_limits.get(key)
        {
            let on_key = self.by_key.get(key).copied().unwrap_or(0);
            if on_key >= max {
                return Err(LimitReached {
                    limit: LimitKind::ApiKey,
                    max_concurrent_runs: max,
                    active: on_key,
                });
            }
        }
        *self.by_workflow.entry(run.workflow_id.clone()).or_default() += 1;
        if let Some(key) = &run.api_key_id {
            *self.by_key.entry(key.clone()).or_default() += 1;
        }
        Ok(())
    }
}

/// Serialises admission decisions: an advisory transaction lock on PostgreSQL (released at
/// commit or rollback); nothing on SQLite, whose transactions begin `IMMEDIATE`.
async fn lock_admission<D: Db>(tx: &mut Tx<D::Driver>) -> Result<(), StoreError> {
    if D::BACKEND == Backend::Postgres {
        sql("SELECT pg_advisory_xact_lock(7314200015)")
            .execute(&mut *tx)
            .await
            .map_err(StoreError::db("take the run admission lock"))?;
    }
    Ok(())
}

/// The queued runs, most urgent first, then oldest (`id`, a UUIDv7, breaks ties).
async fn queued_in_order<D: Db>(tx: &mut Tx<D::Driver>) -> Result<Vec<QueuedRow>, StoreError> {
    sql(
        "SELECT id, workflow_id, api_key_id, workflow_limit FROM workflow_runs \
         WHERE status = 'queued' ORDER BY CASE priority WHEN 'high' THEN 0 \
         WHEN 'normal' THEN 1 ELSE 2 END, created_at, id",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(StoreError::db("read the queued workflow runs"))
}

/// Promotes the queued runs that have room (see [`AdmissionStore::promote_queued_runs`]);
/// for `candidate` (queued by this transaction), what held it back, if anything.
async fn promote_in<D: Db>(
    tx: &mut Tx<D::Driver>,
    candidate: Option<&str>,
) -> Result<(Vec<String>, Option<LimitReached>), StoreError> {
    let queued = queued_in_order::<D>(tx).await?;
    if queued.is_empty() {
        return Ok((Vec::new(), None));
    }
    let mut slots = Slots::read::<D>(tx).await?;
    let mut promoted = Vec::new();
    let mut held = None;
    for run in &queued {
        match slots.take(run) {
            Ok(()) => promoted.push(run.id.clone()),
            Err(reached) if Some(run.id.as_str()) == candidate => held = Some(reached),
            Err(_) => {}
        }
    }
    if promoted.is_empty() {
        return Ok((promoted, held));
    }
    let at = now();
    for chunk in promoted.chunks(BATCH_ROWS) {
        let marks = (0..chunk.len())
            .map(|i| format!("${}", i + 1))
            .collect::<Vec<_>>()
            .join(", ");
        let mut update = sql(format!(
            "UPDATE workflow_runs SET status = 'pending' WHERE status = 'queued' AND id IN ({marks})"
        ));
        for id in chunk {
            update = update.bind(id.as_str());
        }
        let moved = update
            .execute(&mut *tx)
            .await
            .map_err(StoreError::db("promote queued workflow runs"))?;
        // Read in this transaction under the admission lock: nobody else moved them.
        if moved.rows_affected() != chunk.len() as u64 {
            return Err(StoreError::Conflict(
                "queued workflow runs changed while they were promoted; try again".into(),
            ));
        }
    }
    lock_event_order::<D>(tx).await?;
    for id in promoted.iter().filter(|id| Some(id.as_str()) != candidate) {
        sql(
            "INSERT INTO workflow_events (run_id, kind, node_id, payload, at) \
             VALUES ($1, 'run_admitted', NULL, $2, $3)",
        )
        .bind(id.as_str())
        .bind(sqlx::types::Json(json!({})))
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::db("journal an admitted run"))?;
    }
    Ok((promoted, held))
}

#[async_trait]
impl<D: Db> AdmissionStore for D {
    async fn admit_workflow_run(
        &self,
        create: &CreateRun,
        refuse: bool,
    ) -> Result<(Admission, Vec<String>), StoreError> {
        let mut tx = self
            .begin()
            .await
            .map_err(StoreError::db("begin admitting a workflow run"))?;
        lock_admission::<Self>(&mut tx).await?;
        insert_run_row::<Self>(&mut tx, create, RunStatus::Queued).await?;
        for chunk in create.new.nodes.chunks(BATCH_ROWS) {
            let mut insert = rows_of::<Self>(
                "INSERT INTO workflow_node_states (run_id, node_id, status, attempts, updated_at)",
                chunk.len(),
                5,
            );
            for node in chunk {
                insert = insert
                    .bind(create.id.as_str())
                    .bind(node.as_str())
                    .bind(NodeStatus::Pending.as_str())
                    .bind(0i32)
                    .bind(create.created_at);
            }
            insert
                .execute(&mut tx)
                .await
                .map_err(StoreError::db("create a workflow run's nodes"))?;
        }
        let (promoted, held) = promote_in::<Self>(&mut tx, Some(&create.id)).await?;
        let admitted = promoted.contains(&create.id);
        if !admitted && refuse {
            // Dropping the transaction rolls the run back: nothing was created.
            let reached = held.ok_or_else(|| {
                StoreError::Invalid(format!(
                    "run {} was neither admitted nor held back by a limit",
                    create.id
                ))
            })?;
            return Ok((Admission::Refused(reached), Vec::new()));
        }
        lock_event_order::<Self>(&mut tx).await?;
        let mut events = vec![(
            "run_created",
            json!({"workflow_id": create.new.workflow_id, "version": create.new.workflow_version}),
        )];
        if let (false, Some(reached)) = (admitted, held) {
            events.push(("run_queued", json!(reached)));
        }
        for (kind, payload) in events {
            sql(
                "INSERT INTO workflow_events (run_id, kind, node_id, payload, at) \
                 VALUES ($1, $2, NULL, $3, $4)",
            )
            .bind(create.id.as_str())
            .bind(kind)
            .bind(sqlx::types::Json(payload))
            .bind(create.created_at)
            .execute(&mut tx)
            .await
            .map_err(StoreError::db("journal a new workflow run"))?;
        }
        tx.commit()
            .await
            .map_err(StoreError::db("commit an admitted workflow run"))?;
        let mut run = create.run();
        let others: Vec<String> = promoted.into_iter().filter(|id| *id != create.id).collect();
        let admission = match held {
            Some(reached) if !admitted => {
                run.status = RunStatus::Queued;
                Admission::Queued { run, reached }
            }
            _ => Admission::Admitted(run),
        };
        Ok((admission, others))
    }

    async fn promote_queued_runs(&self) -> Result<Vec<String>, StoreError> {
        // Outside the lock first: nothing queued (the common case) costs one indexed read.
        let any: Option<(String,)> =
            sql("SELECT id FROM workflow_runs WHERE status = 'queued' LIMIT 1")
                .fetch_optional(self.pool())
                .await
                .map_err(StoreError::db("look for queued workflow runs"))?;
        if any.is_none() {
            return Ok(Vec::new());
        }
        let mut tx = self
            .begin()
            .await
            .map_err(StoreError::db("begin promoting queued workflow runs"))?;
        lock_admission::<Self>(&mut tx).await?;
        let (promoted, _) = promote_in::<Self>(&mut tx, None).await?;
        tx.commit()
            .await
            .map_err(StoreError::db("commit promoted workflow runs"))?;
        Ok(promoted)
    }
}
