//! The SQL shared by both back ends. The statements are identical for SQLite and PostgreSQL
//! (`$n` placeholders, exact decimals through [`Num`]), so [`impl_store!`] writes the [`Store`]
//! implementation once and instantiates it per back end, without generic sqlx bounds.
//!
//! [`Store`]: crate::Store

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use serde_json::Value;
use sqlx::FromRow;
use sqlx::types::Json;
use tradeloom_core::{Currency, Money};

use crate::error::StoreError;
use crate::job::Job;
use crate::model_day::{Holding, ModelDay, ReasoningMessage, ToolCall, Trade};
use crate::numeric::Num;
use crate::run_index::RunEntry;

/// The store's clock: UTC, truncated to microseconds so values round-trip through PostgreSQL.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

pub(crate) fn corrupt(what: &'static str) -> impl FnOnce(String) -> StoreError {
    move |detail| StoreError::Corrupt { what, detail }
}

fn currency(code: &str, precision: i32) -> Result<Currency, StoreError> {
    let precision = u8::try_from(precision)
        .map_err(|_| corrupt("jobs.currency_precision")(precision.to_string()))?;
    Currency::new(code, precision).map_err(|e| corrupt("jobs.currency")(e.to_string()))
}

pub(crate) fn page(limit: u32) -> i64 {
    i64::from(match limit {
        0 => 100,
        n => n.min(crate::results::MAX_PAGE),
    })
}

pub(crate) fn sql_offset(offset: u64) -> i64 {
    i64::try_from(offset).unwrap_or(i64::MAX)
}

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

/// `SELECT` of model-days with their job's currency; append `WHERE …`.
macro_rules! model_day_select {
    () => {
        "SELECT d.job_id, d.model, d.date, d.status, d.attempts, d.started_at, d.finished_at, \
         d.duration_ms, d.error, d.steps, d.tool_calls, d.tool_errors, d.cash, d.portfolio_value, \
         j.currency, j.currency_precision \
         FROM job_details d JOIN jobs j ON j.id = d.job_id "
    };
}
pub(crate) use model_day_select;

#[derive(FromRow)]
pub(crate) struct ModelDayRow {
    job_id: String,
    model: String,
    date: NaiveDate,
    status: String,
    attempts: i32,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    duration_ms: Option<i64>,
    error: Option<String>,
    steps: Option<i32>,
    tool_calls: Option<i32>,
    tool_errors: Option<i32>,
    cash: Option<Num>,
    portfolio_value: Option<Num>,
    currency: String,
    currency_precision: i32,
}

impl ModelDayRow {
    pub(crate) fn currency(&self) -> Result<Currency, StoreError> {
        currency(&self.currency, self.currency_precision)
    }

    pub(crate) fn status(&self) -> &str {
        &self.status
    }

    pub(crate) fn started_at(&self) -> Option<DateTime<Utc>> {
        self.started_at
    }

    pub(crate) fn into_model_day(self) -> Result<ModelDay, StoreError> {
        let ccy = self.currency()?;
        let count = |v: Option<i32>, what| {
            v.map(|n| u32::try_from(n).map_err(|_| corrupt(what)(n.to_string())))
                .transpose()
        };
        Ok(ModelDay {
            status: self.status.parse().map_err(corrupt("job_details.status"))?,
            attempts: u32::try_from(self.attempts)
                .map_err(|_| corrupt("job_details.attempts")(self.attempts.to_string()))?,
            steps: count(self.steps, "job_details.steps")?,
            tool_calls: count(self.tool_calls, "job_details.tool_calls")?,
            tool_errors: count(self.tool_errors, "job_details.tool_errors")?,
            cash: self.cash.map(|n| n.to_money(ccy)),
            portfolio_value: self.portfolio_value.map(|n| n.to_money(ccy)),
            job_id: self.job_id,
            model: self.model,
            date: self.date,
            started_at: self.started_at,
            finished_at: self.finished_at,
            duration_ms: self.duration_ms,
            error: self.error,
        })
    }
}

fn step(step: i32, what: &'static str) -> Result<u32, StoreError> {
    u32::try_from(step).map_err(|_| corrupt(what)(step.to_string()))
}

pub(crate) fn step_param(step: u32) -> Result<i32, StoreError> {
    i32::try_from(step).map_err(|_| StoreError::Invalid(format!("step {step} is out of range")))
}

#[derive(FromRow)]
pub(crate) struct TradeRow {
    step: i32,
    action: String,
    symbol: Option<String>,
    quantity: Num,
    price: Num,
    fee: Num,
    cash_after: Num,
}

impl TradeRow {
    pub(crate) fn into_trade(self, ccy: Currency) -> Result<Trade, StoreError> {
        Ok(Trade {
            step: step(self.step, "positions.step")?,
            action: self.action.parse().map_err(corrupt("positions.action"))?,
            symbol: self.symbol,
            quantity: self
                .quantity
                .to_decimal()
                .map_err(corrupt("positions.quantity"))?,
            price: self
                .price
                .to_decimal()
                .map_err(corrupt("positions.price"))?,
            fee: self.fee.to_money(ccy),
            cash_after: self.cash_after.to_money(ccy),
        })
    }
}

#[derive(FromRow)]
pub(crate) struct HoldingRow {
    symbol: String,
    quantity: Num,
    price: Num,
    value: Num,
}

impl HoldingRow {
    pub(crate) fn into_holding(self, ccy: Currency) -> Result<Holding, StoreError> {
        Ok(Holding {
            symbol: self.symbol,
            quantity: self
                .quantity
                .to_decimal()
                .map_err(corrupt("holdings.quantity"))?,
            price: self.price.to_decimal().map_err(corrupt("holdings.price"))?,
            value: self.value.to_money(ccy),
        })
    }
}

/// A model-day of a results page with its holdings packed into one text column
/// (`SYMBOL QUANTITY PRICE VALUE` per holding, `|` between holdings, in `seq` order) and its
/// trade count. One row per model-day keeps a page to one query: sqlx's SQLite driver hands
/// every row across a thread, so rows are costly.
#[derive(FromRow)]
pub(crate) struct PageRow {
    #[sqlx(flatten)]
    pub(crate) day: ModelDayRow,
    pub(crate) holdings_packed: Option<String>,
    pub(crate) trade_count: i64,
}

/// Unpacks [`PageRow::holdings_packed`].
pub(crate) fn unpack_holdings(
    packed: Option<&str>,
    ccy: Currency,
) -> Result<Vec<Holding>, StoreError> {
    let Some(packed) = packed.filter(|p| !p.is_empty()) else {
        return Ok(Vec::new());
    };
    packed
        .split('|')
        .map(|item| {
            let fields: Vec<&str> = item.split(' ').collect();
            let [symbol, quantity, price, value] = fields[..] else {
                return Err(corrupt("holdings")(format!("packed holding `{item}`")));
            };
            let num = |text: &str, what: &'static str| {
                crate::numeric::Num::parse_text(text).map_err(|e| corrupt(what)(e.to_string()))
            };
            Ok(Holding {
                symbol: symbol.to_string(),
                quantity: num(quantity, "holdings.quantity")?
                    .to_decimal()
                    .map_err(corrupt("holdings.quantity"))?,
                price: num(price, "holdings.price")?
                    .to_decimal()
                    .map_err(corrupt("holdings.price"))?,
                value: num(value, "holdings.value")?.to_money(ccy),
            })
        })
        .collect()
}

/// Symbols are identifiers: no whitespace, `|` or control characters (results pages pack
/// holdings with those separators).
pub(crate) fn check_symbol(symbol: &str, key: &crate::ModelDayKey) -> Result<(), StoreError> {
    if symbol.is_empty()
        || symbol.len() > 64
        || symbol
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '|')
    {
        return Err(StoreError::Invalid(format!(
            "{key}: symbol `{symbol}` must be 1 to 64 characters without spaces, `|` or control characters"
        )));
    }
    Ok(())
}

#[derive(FromRow)]
pub(crate) struct ReasoningRow {
    step: i32,
    role: String,
    content: String,
    tool_calls: Option<Json<Value>>,
    created_at: DateTime<Utc>,
}

impl ReasoningRow {
    pub(crate) fn into_message(self) -> Result<ReasoningMessage, StoreError> {
        Ok(ReasoningMessage {
            step: step(self.step, "reasoning_logs.step")?,
            role: self.role,
            content: self.content,
            tool_calls: self.tool_calls.map(|j| j.0),
            created_at: self.created_at,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct ToolRow {
    step: i32,
    tool_name: String,
    args: Json<Value>,
    result: Option<Json<Value>>,
    latency_ms: i64,
    error: Option<String>,
    created_at: DateTime<Utc>,
}

impl ToolRow {
    pub(crate) fn into_call(self) -> Result<ToolCall, StoreError> {
        Ok(ToolCall {
            step: step(self.step, "tool_usage.step")?,
            tool: self.tool_name,
            args: self.args.0,
            result: self.result.map(|j| j.0),
            latency_ms: self.latency_ms,
            error: self.error,
            created_at: self.created_at,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct RunRow {
    run_id: String,
    name: String,
    status: String,
    run_dir: String,
    created_at: DateTime<Utc>,
    summary: Option<Json<Value>>,
}

impl RunRow {
    pub(crate) fn into_entry(self) -> RunEntry {
        RunEntry {
            run_id: self.run_id,
            name: self.name,
            status: self.status,
            run_dir: self.run_dir,
            created_at: self.created_at,
            summary: self.summary.map(|j| j.0),
        }
    }
}

#[derive(FromRow)]
pub(crate) struct WorkflowRow {
    id: String,
    name: String,
    latest_version: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl WorkflowRow {
    pub(crate) fn into_workflow(self) -> crate::Workflow {
        crate::Workflow {
            id: self.id,
            name: self.name,
            latest_version: u32::try_from(self.latest_version).unwrap_or(0),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

#[derive(FromRow)]
pub(crate) struct WorkflowVersionRow {
    workflow_id: String,
    version: i32,
    definition_hash: String,
    ir_hash: String,
    created_at: DateTime<Utc>,
}

impl WorkflowVersionRow {
    pub(crate) fn into_version(self) -> crate::WorkflowVersion {
        crate::WorkflowVersion {
            workflow_id: self.workflow_id,
            version: u32::try_from(self.version).unwrap_or(0),
            definition_hash: self.definition_hash,
            ir_hash: self.ir_hash,
            created_at: self.created_at,
        }
    }
}

/// Stores a blob unless its hash is there already (content addressing makes it the same one).
pub(crate) const INSERT_BLOB: &str = "INSERT INTO blobs (hash, kind, body, created_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (hash) DO NOTHING";

pub(crate) const WORKFLOW_VERSION_COLUMNS: &str =
    "workflow_id, version, definition_hash, ir_hash, created_at";

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
    pub(crate) fn into_run(self) -> Result<crate::WorkflowRun, StoreError> {
        Ok(crate::WorkflowRun {
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
    pub(crate) fn into_state(self) -> Result<crate::NodeState, StoreError> {
        Ok(crate::NodeState {
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

/// Taken (PostgreSQL only) by every transaction just before it appends to `workflow_events`
/// and held until it commits, so `seq` values become visible in increasing order: a reader that
/// has seen `seq` n never later finds a committed event below n (what resuming `GET /ws` from
/// the last seq relies on). BIGSERIAL alone hands out values in insert order, not commit order.
/// SQLite needs nothing: its writers are serialised (`BEGIN IMMEDIATE`).
pub(crate) const EVENT_ORDER_LOCK: &str = "SELECT pg_advisory_xact_lock(7314200007)";

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
    pub(crate) fn into_event(self) -> crate::RunEvent {
        crate::RunEvent {
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

#[derive(FromRow)]
pub(crate) struct ApprovalRow {
    id: String,
    run_id: String,
    node_id: String,
    attempt: i32,
    prompt: String,
    status: String,
    default_decision: String,
    approvers: Option<Json<Vec<String>>>,
    expires_at: DateTime<Utc>,
    decision: Option<String>,
    decided_by: Option<String>,
    comment: Option<String>,
    decided_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

pub(crate) const APPROVAL_COLUMNS: &str = "id, run_id, node_id, attempt, prompt, status, \
     default_decision, approvers, expires_at, decision, decided_by, comment, decided_at, created_at";

impl ApprovalRow {
    pub(crate) fn into_approval(self) -> Result<crate::Approval, StoreError> {
        Ok(crate::Approval {
            status: self
                .status
                .parse()
                .map_err(corrupt("workflow_approvals.status"))?,
            default_decision: self
                .default_decision
                .parse()
                .map_err(corrupt("workflow_approvals.default_decision"))?,
            decision: self
                .decision
                .map(|d| d.parse())
                .transpose()
                .map_err(corrupt("workflow_approvals.decision"))?,
            id: self.id,
            run_id: self.run_id,
            node_id: self.node_id,
            attempt: u32::try_from(self.attempt).unwrap_or(0),
            prompt: self.prompt,
            approvers: self.approvers.map(|a| a.0),
            expires_at: self.expires_at,
            decided_by: self.decided_by,
            comment: self.comment,
            decided_at: self.decided_at,
            created_at: self.created_at,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct PatchRow {
    run_id: String,
    ir_version: i32,
    operations: Json<Value>,
    definition_hash: String,
    ir_hash: String,
    applied_by: String,
    applied_at: DateTime<Utc>,
}

impl PatchRow {
    pub(crate) fn into_patch(self) -> crate::Patch {
        crate::Patch {
            run_id: self.run_id,
            ir_version: u32::try_from(self.ir_version).unwrap_or(0),
            operations: self.operations.0,
            definition_hash: self.definition_hash,
            ir_hash: self.ir_hash,
            applied_by: self.applied_by,
            applied_at: self.applied_at,
        }
    }
}

/// Checks that `money` is in the job's currency.
pub(crate) fn same_currency(
    money: Money,
    ccy: Currency,
    what: &str,
    key: &impl std::fmt::Display,
) -> Result<Num, StoreError> {
    if money.currency() != ccy {
        return Err(StoreError::Invalid(format!(
            "{what} of {key} is in {}, but the job's currency is {ccy}",
            money.currency()
        )));
    }
    Ok(Num::from_money(money))
}

/// Implements [`crate::Store`] for a back-end struct with a `pool` field. `$begin` starts a
/// write transaction (`BEGIN IMMEDIATE` for SQLite, so writers queue on the busy timeout
/// instead of failing to upgrade a read lock). The struct provides `BACKEND`,
/// `check_health` and `read_migration_status`.
macro_rules! impl_store {
    ($store:ty, $begin:expr) => {
        #[async_trait::async_trait]
        impl $crate::Store for $store {
            fn backend(&self) -> $crate::Backend {
                Self::BACKEND
            }

            async fn health(&self) -> Result<(), $crate::StoreError> {
                self.check_health().await
            }

            async fn migration_status(
                &self,
            ) -> Result<Vec<$crate::MigrationInfo>, $crate::StoreError> {
                self.read_migration_status().await
            }

            async fn create_job(
                &self,
                new: $crate::NewJob,
            ) -> Result<$crate::Job, $crate::StoreError> {
                use $crate::sql_store::*;
                $crate::job::validate_new_job(&new)?;
                let mut models: Vec<&String> = Vec::new();
                for m in &new.models {
                    if !models.contains(&m) {
                        models.push(m);
                    }
                }
                let mut dates = new.dates.clone();
                dates.sort_unstable();
                dates.dedup();
                let hash = $crate::config_hash(&new.config);
                let id = uuid::Uuid::now_v7().to_string();
                let created = now();
                let _gate = self.write_gate().await;
                let mut tx = self
                    .pool
                    .begin_with($begin)
                    .await
                    .map_err($crate::StoreError::db("begin creating a job"))?;
                sqlx::query(
                    "INSERT INTO jobs (id, config, config_hash, currency, currency_precision, \
                     status, created_at) VALUES ($1, $2, $3, $4, $5, 'pending', $6)",
                )
                .bind(&id)
                .bind(sqlx::types::Json(&new.config))
                .bind(&hash)
                .bind(new.currency.code())
                .bind(i32::from(new.currency.precision()))
                .bind(created)
                .execute(&mut *tx)
                .await
                .map_err(|e| match $crate::StoreError::db("insert a job")(e) {
                    $crate::StoreError::Conflict(_) => $crate::StoreError::Conflict(format!(
                        "a pending or running job already exists for this config (hash {hash})"
                    )),
                    other => other,
                })?;
                for date in &dates {
                    for model in &models {
                        sqlx::query(
                            "INSERT INTO job_details (job_id, model, date, status) \
                             VALUES ($1, $2, $3, 'pending')",
                        )
                        .bind(&id)
                        .bind(model.as_str())
                        .bind(*date)
                        .execute(&mut *tx)
                        .await
                        .map_err($crate::StoreError::db("insert a model-day of a new job"))?;
                    }
                }
                tx.commit()
                    .await
                    .map_err($crate::StoreError::db("commit a new job"))?;
                self.job(&id).await
            }

            async fn job(&self, job_id: &str) -> Result<$crate::Job, $crate::StoreError> {
                use $crate::sql_store::*;
                let row: Option<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"
                )))
                .bind(job_id)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::StoreError::db("read a job"))?;
                row.ok_or_else(|| $crate::StoreError::not_found(format!("job {job_id}")))?
                    .into_job()
            }

            async fn find_job_by_config_hash(
                &self,
                config_hash: &str,
            ) -> Result<Option<$crate::Job>, $crate::StoreError> {
                use $crate::sql_store::*;
                let row: Option<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE config_hash = $1 \
                     ORDER BY id DESC LIMIT 1"
                )))
                .bind(config_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::StoreError::db("find a job by config hash"))?;
                row.map(JobRow::into_job).transpose()
            }

            async fn list_jobs(
                &self,
                limit: u32,
                offset: u64,
            ) -> Result<Vec<$crate::Job>, $crate::StoreError> {
                use $crate::sql_store::*;
                let rows: Vec<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {JOB_COLUMNS} FROM jobs ORDER BY id DESC LIMIT $1 OFFSET $2"
                )))
                .bind(page(limit))
                .bind(sql_offset(offset))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::StoreError::db("list jobs"))?;
                rows.into_iter().map(JobRow::into_job).collect()
            }

            async fn current_job(&self) -> Result<Option<$crate::Job>, $crate::StoreError> {
                use $crate::sql_store::*;
                let row: Option<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE status IN ('pending', 'running') \
                     ORDER BY id ASC LIMIT 1"
                )))
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::StoreError::db("read the current job"))?;
                row.map(JobRow::into_job).transpose()
            }

            async fn mark_job_running(
                &self,
                job_id: &str,
            ) -> Result<$crate::Job, $crate::StoreError> {
                use $crate::sql_store::*;
                // Resuming an interrupted job clears the interruption's reason.
                let done = sqlx::query(
                    "UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, $2), \
                     error = CASE WHEN status = 'interrupted' THEN NULL ELSE error END \
                     WHERE id = $1 AND status IN ('pending', 'running', 'interrupted')",
                )
                .bind(job_id)
                .bind(now())
                .execute(&self.pool)
                .await
                .map_err($crate::StoreError::db("mark a job running"))?;
                let job = self.job(job_id).await?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::Conflict(format!(
                        "job {job_id} is already {}; it cannot run again",
                        job.status
                    )));
                }
                Ok(job)
            }

            async fn fail_job(
                &self,
                job_id: &str,
                error: &str,
            ) -> Result<$crate::Job, $crate::StoreError> {
                use $crate::sql_store::*;
                let at = now();
                let _gate = self.write_gate().await;
                let mut tx = self
                    .pool
                    .begin_with($begin)
                    .await
                    .map_err($crate::StoreError::db("begin failing a job"))?;
                let found = sqlx::query("UPDATE jobs SET error = $2 WHERE id = $1")
                    .bind(job_id)
                    .bind(error)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::StoreError::db("record a job's error"))?;
                if found.rows_affected() == 0 {
                    return Err($crate::StoreError::not_found(format!("job {job_id}")));
                }
                sqlx::query(
                    "UPDATE job_details SET status = 'failed', error = $2, finished_at = $3 \
                     WHERE job_id = $1 AND status IN ('pending', 'running')",
                )
                .bind(job_id)
                .bind(error)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err($crate::StoreError::db("fail a job's unfinished model-days"))?;
                tx.commit()
                    .await
                    .map_err($crate::StoreError::db("commit a failed job"))?;
                self.refresh_job_status(job_id).await
            }

            async fn interrupt_job(
                &self,
                job_id: &str,
                reason: &str,
            ) -> Result<Option<$crate::Job>, $crate::StoreError> {
                let gate = self.write_gate().await;
                let mut tx = self
                    .pool
                    .begin_with($begin)
                    .await
                    .map_err($crate::StoreError::db("begin interrupting a job"))?;
                let done = sqlx::query(
                    "UPDATE jobs SET status = 'interrupted', error = $2 \
                     WHERE id = $1 AND status IN ('pending', 'running')",
                )
                .bind(job_id)
                .bind(reason)
                .execute(&mut *tx)
                .await
                .map_err($crate::StoreError::db("mark a job interrupted"))?;
                if done.rows_affected() == 0 {
                    drop(tx);
                    drop(gate);
                    // Absent (NotFound), or finished or interrupted already: nothing to do.
                    self.job(job_id).await?;
                    return Ok(None);
                }
                sqlx::query(
                    "UPDATE job_details SET status = 'pending', started_at = NULL \
                     WHERE job_id = $1 AND status = 'running'",
                )
                .bind(job_id)
                .execute(&mut *tx)
                .await
                .map_err($crate::StoreError::db("reset an interrupted job's model-days"))?;
                tx.commit()
                    .await
                    .map_err($crate::StoreError::db("commit an interrupted job"))?;
                drop(gate);
                self.append_job_event(
                    job_id,
                    "job_interrupted",
                    &serde_json::json!({"reason": reason}),
                )
                .await?;
                Ok(Some(self.job(job_id).await?))
            }

            async fn refresh_job_status(
                &self,
                job_id: &str,
            ) -> Result<$crate::Job, $crate::StoreError> {
                use $crate::sql_store::*;
                let job = self.job(job_id).await?;
                let progress = self.progress(job_id).await?;
                let status = progress.derived_status(job.started_at.is_some());
                let finished = status.is_terminal().then(now);
                sqlx::query(
                    "UPDATE jobs SET status = $2, \
                     finished_at = CASE WHEN $3 IS NULL THEN NULL \
                                   ELSE COALESCE(finished_at, $3) END \
                     WHERE id = $1",
                )
                .bind(job_id)
                .bind(status.as_str())
                .bind(finished)
                .execute(&self.pool)
                .await
                .map_err($crate::StoreError::db("update a job's status"))?;
                self.job(job_id).await
            }

            async fn delete_job(&self, job_id: &str) -> Result<(), $crate::StoreError> {
                let done = sqlx::query("DELETE FROM jobs WHERE id = $1")
                    .bind(job_id)
                    .execute(&self.pool)
                    .await
                    .map_err($crate::StoreError::db("delete a job"))?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::not_found(format!("job {job_id}")));
                }
                Ok(())
            }

            async fn job_report(
                &self,
                job_id: &str,
            ) -> Result<$crate::JobReport, $crate::StoreError> {
                use $crate::sql_store::*;
                let job = self.job(job_id).await?;
                let rows: Vec<ModelDayRow> = sqlx::query_as(concat!(
                    model_day_select!(),
                    "WHERE d.job_id = $1 ORDER BY d.date, d.model"
                ))
                .bind(job_id)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::StoreError::db("read a job's model-days"))?;
                let model_days = rows
                    .into_iter()
                    .map(ModelDayRow::into_model_day)
                    .collect::<Result<Vec<_>, _>>()?;
                let mut progress = $crate::JobProgress::default();
                for d in &model_days {
                    progress.total_model_days += 1;
                    match d.status {
                        $crate::ModelDayStatus::Pending => progress.pending += 1,
                        $crate::ModelDayStatus::Running => progress.running += 1,
                        $crate::ModelDayStatus::Completed => progress.completed += 1,
                        $crate::ModelDayStatus::Failed => progress.failed += 1,
                        $crate::ModelDayStatus::Refused => progress.refused += 1,
                    }
                }
                Ok($crate::JobReport {
                    job,
                    progress,
                    model_days,
                })
            }

            async fn unfinished_model_days(
                &self,
                job_id: &str,
            ) -> Result<Vec<$crate::ModelDay>, $crate::StoreError> {
                use $crate::sql_store::*;
                let rows: Vec<ModelDayRow> = sqlx::query_as(concat!(
                    model_day_select!(),
                    "WHERE d.job_id = $1 AND d.status IN ('pending', 'running') \
                     ORDER BY d.date, d.model"
                ))
                .bind(job_id)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::StoreError::db("read a job's unfinished model-days"))?;
                rows.into_iter().map(ModelDayRow::into_model_day).collect()
            }

            async fn claim_model_day(
                &self,
                key: &$crate::ModelDayKey,
                stale_after: std::time::Duration,
            ) -> Result<Option<$crate::ModelDay>, $crate::StoreError> {
                use $crate::sql_store::*;
                let at = now();
                let stale = chrono::Duration::from_std(stale_after)
                    .ok()
                    .and_then(|d| at.checked_sub_signed(d))
                    .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
                let done = sqlx::query(
                    "UPDATE job_details SET status = 'running', attempts = attempts + 1, \
                     started_at = $4, finished_at = NULL, duration_ms = NULL, error = NULL \
                     WHERE job_id = $1 AND model = $2 AND date = $3 \
                     AND (status = 'pending' OR (status = 'running' AND started_at < $5))",
                )
                .bind(&key.job_id)
                .bind(&key.model)
                .bind(key.date)
                .bind(at)
                .bind(stale)
                .execute(&self.pool)
                .await
                .map_err($crate::StoreError::db("claim a model-day"))?;
                let day = self.model_day(key).await?;
                Ok((done.rows_affected() == 1).then_some(day))
            }

            async fn complete_model_day(
                &self,
                key: &$crate::ModelDayKey,
                outcome: &$crate::ModelDayOutcome,
            ) -> Result<$crate::ModelDay, $crate::StoreError> {
                use $crate::StoreError;
                use $crate::numeric::Num;
                use $crate::sql_store::*;
                let at = now();
                let _gate = self.write_gate().await;
                let mut tx = self
                    .pool
                    .begin_with($begin)
                    .await
                    .map_err(StoreError::db("begin completing a model-day"))?;
                // A no-op write first: it takes the row lock on PostgreSQL (SQLite already
                // holds the write lock), so the status read below cannot go stale.
                sqlx::query(
                    "UPDATE job_details SET status = status \
                     WHERE job_id = $1 AND model = $2 AND date = $3",
                )
                .bind(&key.job_id)
                .bind(&key.model)
                .bind(key.date)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db("lock a model-day"))?;
                let row: Option<ModelDayRow> = sqlx::query_as(concat!(
                    model_day_select!(),
                    "WHERE d.job_id = $1 AND d.model = $2 AND d.date = $3"
                ))
                .bind(&key.job_id)
                .bind(&key.model)
                .bind(key.date)
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::db("read a model-day"))?;
                let row = row.ok_or_else(|| StoreError::not_found(key.to_string()))?;
                match row.status() {
                    "running" => {}
                    "completed" => {
                        return Err(StoreError::Conflict(format!("{key} is already completed")));
                    }
                    other => {
                        return Err(StoreError::Conflict(format!(
                            "{key} is {other}, not running; claim it before completing it"
                        )));
                    }
                }
                let ccy = row.currency()?;
                let duration_ms = row
                    .started_at()
                    .map(|s| (at - s).num_milliseconds().max(0));
                for symbol in outcome
                    .holdings
                    .iter()
                    .map(|h| h.symbol.as_str())
                    .chain(outcome.trades.iter().filter_map(|t| t.symbol.as_deref()))
                {
                    check_symbol(symbol, key)?;
                }
                let cash = same_currency(outcome.cash, ccy, "cash", key)?;
                let value = same_currency(outcome.portfolio_value, ccy, "portfolio value", key)?;
                for table in ["positions", "holdings", "reasoning_logs", "tool_usage"] {
                    let sql = format!(
                        "DELETE FROM {table} WHERE job_id = $1 AND model = $2 AND date = $3"
                    );
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(&key.job_id)
                        .bind(&key.model)
                        .bind(key.date)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::db("delete rows of an earlier attempt"))?;
                }
                // Multi-row INSERTs (a few round trips, not one per row), in chunks that stay
                // far below both back ends' limits on bound parameters.
                const CHUNK: usize = 256;
                for (chunk_no, chunk) in outcome.trades.chunks(CHUNK).enumerate() {
                    let mut qb = sqlx::QueryBuilder::new(
                        "INSERT INTO positions (job_id, model, date, seq, step, action, symbol, \
                         quantity, price, fee, cash_after) ",
                    );
                    let mut rows = Vec::with_capacity(chunk.len());
                    for (i, t) in chunk.iter().enumerate() {
                        rows.push((
                            (chunk_no * CHUNK + i) as i32,
                            step_param(t.step)?,
                            t,
                            same_currency(t.fee, ccy, "a trade's fee", key)?,
                            same_currency(t.cash_after, ccy, "a trade's cash after", key)?,
                        ));
                    }
                    qb.push_values(rows, |mut b, (seq, step, t, fee, cash_after)| {
                        b.push_bind(&key.job_id)
                            .push_bind(&key.model)
                            .push_bind(key.date)
                            .push_bind(seq)
                            .push_bind(step)
                            .push_bind(t.action.as_str())
                            .push_bind(t.symbol.as_deref())
                            .push_bind(Num::from_decimal(t.quantity))
                            .push_bind(Num::from_decimal(t.price))
                            .push_bind(fee)
                            .push_bind(cash_after);
                    });
                    qb.build()
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::db("insert trades"))?;
                }
                for (chunk_no, chunk) in outcome.holdings.chunks(CHUNK).enumerate() {
                    let mut qb = sqlx::QueryBuilder::new(
                        "INSERT INTO holdings (job_id, model, date, seq, symbol, quantity, price, value) ",
                    );
                    let mut rows = Vec::with_capacity(chunk.len());
                    for (i, h) in chunk.iter().enumerate() {
                        rows.push((
                            (chunk_no * CHUNK + i) as i32,
                            h,
                            same_currency(h.value, ccy, "a holding's value", key)?,
                        ));
                    }
                    qb.push_values(rows, |mut b, (seq, h, value)| {
                        b.push_bind(&key.job_id)
                            .push_bind(&key.model)
                            .push_bind(key.date)
                            .push_bind(seq)
                            .push_bind(&h.symbol)
                            .push_bind(Num::from_decimal(h.quantity))
                            .push_bind(Num::from_decimal(h.price))
                            .push_bind(value);
                    });
                    qb.build()
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::db("insert holdings"))?;
                }
                for (chunk_no, chunk) in outcome.reasoning.chunks(CHUNK).enumerate() {
                    let mut qb = sqlx::QueryBuilder::new(
                        "INSERT INTO reasoning_logs (job_id, model, date, seq, step, role, \
                         content, tool_calls, created_at) ",
                    );
                    let mut rows = Vec::with_capacity(chunk.len());
                    for (i, m) in chunk.iter().enumerate() {
                        rows.push(((chunk_no * CHUNK + i) as i32, step_param(m.step)?, m));
                    }
                    qb.push_values(rows, |mut b, (seq, step, m)| {
                        b.push_bind(&key.job_id)
                            .push_bind(&key.model)
                            .push_bind(key.date)
                            .push_bind(seq)
                            .push_bind(step)
                            .push_bind(&m.role)
                            .push_bind(&m.content)
                            .push_bind(m.tool_calls.as_ref().map(sqlx::types::Json))
                            .push_bind(m.created_at);
                    });
                    qb.build()
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::db("insert reasoning messages"))?;
                }
                for (chunk_no, chunk) in outcome.tool_calls.chunks(CHUNK).enumerate() {
                    let mut qb = sqlx::QueryBuilder::new(
                        "INSERT INTO tool_usage (job_id, model, date, seq, step, tool_name, \
                         args, result, latency_ms, error, created_at) ",
                    );
                    let mut rows = Vec::with_capacity(chunk.len());
                    for (i, c) in chunk.iter().enumerate() {
                        rows.push(((chunk_no * CHUNK + i) as i32, step_param(c.step)?, c));
                    }
                    qb.push_values(rows, |mut b, (seq, step, c)| {
                        b.push_bind(&key.job_id)
                            .push_bind(&key.model)
                            .push_bind(key.date)
                            .push_bind(seq)
                            .push_bind(step)
                            .push_bind(&c.tool)
                            .push_bind(sqlx::types::Json(&c.args))
                            .push_bind(c.result.as_ref().map(sqlx::types::Json))
                            .push_bind(c.latency_ms)
                            .push_bind(c.error.as_deref())
                            .push_bind(c.created_at);
                    });
                    qb.build()
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::db("insert tool calls"))?;
                }
                sqlx::query(
                    "UPDATE job_details SET status = 'completed', finished_at = $4, \
                     duration_ms = $5, error = NULL, steps = $6, tool_errors = $7, cash = $8, \
                     portfolio_value = $9, tool_calls = $10 \
                     WHERE job_id = $1 AND model = $2 AND date = $3",
                )
                .bind(&key.job_id)
                .bind(&key.model)
                .bind(key.date)
                .bind(at)
                .bind(duration_ms)
                .bind(step_param(outcome.steps)?)
                .bind(step_param(outcome.tool_errors())?)
                .bind(cash)
                .bind(value)
                .bind(step_param(outcome.tool_call_count())?)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db("mark a model-day completed"))?;
                tx.commit()
                    .await
                    .map_err(StoreError::db("commit a completed model-day"))?;
                self.model_day(key).await
            }

            async fn stop_model_day(
                &self,
                key: &$crate::ModelDayKey,
                stop: &$crate::ModelDayStop,
            ) -> Result<$crate::ModelDay, $crate::StoreError> {
                use $crate::sql_store::*;
                let status = match stop.status {
                    $crate::ModelDayStatus::Failed | $crate::ModelDayStatus::Refused => {
                        stop.status.as_str()
                    }
                    other => {
                        return Err($crate::StoreError::Invalid(format!(
                            "{key} can only stop as failed or refused, not {other}"
                        )));
                    }
                };
                let count = |n: Option<u32>| n.map(step_param).transpose();
                let (steps, tool_calls, tool_errors) = (
                    count(stop.steps)?,
                    count(stop.tool_calls)?,
                    count(stop.tool_errors)?,
                );
                let at = now();
                let _gate = self.write_gate().await;
                let mut tx = self
                    .pool
                    .begin_with($begin)
                    .await
                    .map_err($crate::StoreError::db("begin stopping a model-day"))?;
                let row: Option<(String, Option<chrono::DateTime<chrono::Utc>>)> =
                    sqlx::query_as(
                        "UPDATE job_details SET status = status \
                         WHERE job_id = $1 AND model = $2 AND date = $3 \
                         RETURNING status, started_at",
                    )
                    .bind(&key.job_id)
                    .bind(&key.model)
                    .bind(key.date)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err($crate::StoreError::db("lock a model-day"))?;
                let (current, started) =
                    row.ok_or_else(|| $crate::StoreError::not_found(key.to_string()))?;
                if current == "completed" {
                    return Err($crate::StoreError::Conflict(format!(
                        "{key} is already completed; it cannot be {status}"
                    )));
                }
                let duration_ms = started.map(|s| (at - s).num_milliseconds().max(0));
                sqlx::query(
                    "UPDATE job_details SET status = $4, error = $5, finished_at = $6, \
                     duration_ms = $7, steps = $8, tool_calls = $9, tool_errors = $10 \
                     WHERE job_id = $1 AND model = $2 AND date = $3",
                )
                .bind(&key.job_id)
                .bind(&key.model)
                .bind(key.date)
                .bind(status)
                .bind(&stop.error)
                .bind(at)
                .bind(duration_ms)
                .bind(steps)
                .bind(tool_calls)
                .bind(tool_errors)
                .execute(&mut *tx)
                .await
                .map_err($crate::StoreError::db("mark a model-day failed or refused"))?;
                tx.commit()
                    .await
                    .map_err($crate::StoreError::db("commit a stopped model-day"))?;
                self.model_day(key).await
            }

            async fn reset_running_model_days(
                &self,
                job_id: &str,
            ) -> Result<u64, $crate::StoreError> {
                let done = sqlx::query(
                    "UPDATE job_details SET status = 'pending', started_at = NULL \
                     WHERE job_id = $1 AND status = 'running'",
                )
                .bind(job_id)
                .execute(&self.pool)
                .await
                .map_err($crate::StoreError::db("reset running model-days"))?;
                Ok(done.rows_affected())
            }

            async fn retry_failed_model_days(
                &self,
                job_id: &str,
            ) -> Result<u64, $crate::StoreError> {
                let _gate = self.write_gate().await;
                let mut tx = self
                    .pool
                    .begin_with($begin)
                    .await
                    .map_err($crate::StoreError::db("begin a retry"))?;
                let done = sqlx::query(
                    "UPDATE job_details SET status = 'pending', started_at = NULL, \
                     finished_at = NULL, duration_ms = NULL, error = NULL, steps = NULL, \
                     tool_calls = NULL, tool_errors = NULL \
                     WHERE job_id = $1 AND status IN ('failed', 'refused')",
                )
                .bind(job_id)
                .execute(&mut *tx)
                .await
                .map_err($crate::StoreError::db("reset failed model-days"))?;
                if done.rows_affected() > 0 {
                    sqlx::query(
                        "UPDATE jobs SET status = 'pending', finished_at = NULL, error = NULL \
                         WHERE id = $1",
                    )
                    .bind(job_id)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::StoreError::db("reopen a job"))?;
                }
                tx.commit()
                    .await
                    .map_err($crate::StoreError::db("commit a retry"))?;
                Ok(done.rows_affected())
            }

            async fn model_day(
                &self,
                key: &$crate::ModelDayKey,
            ) -> Result<$crate::ModelDay, $crate::StoreError> {
                self.model_day_row(key).await?.into_model_day()
            }

            async fn trades(
                &self,
                key: &$crate::ModelDayKey,
            ) -> Result<Vec<$crate::Trade>, $crate::StoreError> {
                use $crate::sql_store::*;
                let ccy = self.model_day_row(key).await?.currency()?;
                let rows: Vec<TradeRow> = sqlx::query_as(
                    "SELECT step, action, symbol, quantity, price, fee, cash_after \
                     FROM positions WHERE job_id = $1 AND model = $2 AND date = $3 ORDER BY seq",
                )
                .bind(&key.job_id)
                .bind(&key.model)
                .bind(key.date)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::StoreError::db("read a model-day's trades"))?;
                rows.into_iter().map(|r| r.into_trade(ccy)).collect()
            }

            async fn holdings(
                &self,
                key: &$crate::ModelDayKey,
            ) -> Result<Vec<$crate::Holding>, $crate::StoreError> {
                let ccy = self.model_day_row(key).await?.currency()?;
                self.holdings_in(key, ccy).await
            }

            async fn reasoning_logs(
                &self,
                key: &$crate::ModelDayKey,
            ) -> Result<Vec<$crate::ReasoningMessage>, $crate::StoreError> {
                use $crate::sql_store::*;
                self.model_day_row(key).await?;
                let rows: Vec<ReasoningRow> = sqlx::query_as(
                    "SELECT step, role, content, tool_calls, created_at FROM reasoning_logs \
                     WHERE job_id = $1 AND model = $2 AND date = $3 ORDER BY seq",
                )
                .bind(&key.job_id)
                .bind(&key.model)
                .bind(key.date)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::StoreError::db("read a model-day's reasoning log"))?;
                rows.into_iter().map(ReasoningRow::into_message).collect()
            }

            async fn tool_usage(
                &self,
                key: &$crate::ModelDayKey,
            ) -> Result<Vec<$crate::ToolCall>, $crate::StoreError> {
                use $crate::sql_store::*;
                self.model_day_row(key).await?;
                let rows: Vec<ToolRow> = sqlx::query_as(
                    "SELECT step, tool_name, args, result, latency_ms, error, created_at \
                     FROM tool_usage WHERE job_id = $1 AND model = $2 AND date = $3 \
                     ORDER BY seq",
                )
                .bind(&key.job_id)
                .bind(&key.model)
                .bind(key.date)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::StoreError::db("read a model-day's tool usage"))?;
                rows.into_iter().map(ToolRow::into_call).collect()
            }

            async fn results(
                &self,
                filter: &$crate::ResultsFilter,
            ) -> Result<$crate::ResultsPage, $crate::StoreError> {
                use $crate::sql_store::*;
                const WHERE: &str = "WHERE ($1 IS NULL OR d.job_id = $1) \
                     AND ($2 IS NULL OR d.model = $2) AND ($3 IS NULL OR d.date = $3) \
                     AND (NOT $4 OR d.status = 'completed') ";
                let limit = page(filter.limit);
                // The page first (walking the (date, model, job_id) index and stopping at
                // LIMIT), then the holdings and trade count of those rows only. A window
                // `COUNT(*) OVER ()` here would cost more than the separate count below.
                let rows: Vec<PageRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT p.*, \
                     (SELECT string_agg(h.symbol || ' ' || CAST(h.quantity AS TEXT) || ' ' || \
                        CAST(h.price AS TEXT) || ' ' || CAST(h.value AS TEXT), '|' ORDER BY h.seq) \
                      FROM holdings h WHERE h.job_id = p.job_id AND h.model = p.model \
                      AND h.date = p.date) AS holdings_packed, \
                     (SELECT COUNT(*) FROM positions t WHERE t.job_id = p.job_id \
                      AND t.model = p.model AND t.date = p.date AND t.action <> 'hold') AS trade_count \
                     FROM ({} {WHERE} ORDER BY d.date, d.model, d.job_id LIMIT $5 OFFSET $6) p \
                     ORDER BY p.date, p.model, p.job_id",
                    model_day_select!()
                )))
                .bind(filter.job_id.as_deref())
                .bind(filter.model.as_deref())
                .bind(filter.date)
                .bind(filter.completed_only)
                .bind(limit)
                .bind(sql_offset(filter.offset))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::StoreError::db("read results"))?;
                let total = if filter.offset == 0 && (rows.len() as i64) < limit {
                    // A short first page is everything.
                    rows.len() as i64
                } else {
                    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT COUNT(*) FROM job_details d {WHERE}"
                    )))
                    .bind(filter.job_id.as_deref())
                    .bind(filter.model.as_deref())
                    .bind(filter.date)
                    .bind(filter.completed_only)
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::StoreError::db("count results"))?;
                    n
                };
                let mut items = Vec::with_capacity(rows.len());
                for row in rows {
                    let ccy = row.day.currency()?;
                    let holdings = unpack_holdings(row.holdings_packed.as_deref(), ccy)?;
                    items.push($crate::ModelDayResult {
                        model_day: row.day.into_model_day()?,
                        trades: u32::try_from(row.trade_count).unwrap_or(u32::MAX),
                        holdings,
                    });
                }
                Ok($crate::ResultsPage {
                    items,
                    total: u64::try_from(total).unwrap_or(0),
                    limit: limit as u32,
                    offset: filter.offset,
                })
            }

            async fn leaderboard(
                &self,
                job_id: &str,
                initial_value: tradeloom_core::Money,
            ) -> Result<Vec<$crate::LeaderboardEntry>, $crate::StoreError> {
                use $crate::sql_store::*;
                let job = self.job(job_id).await?;
                if initial_value.currency() != job.currency {
                    return Err($crate::StoreError::Invalid(format!(
                        "initial value is in {}, but job {job_id} is in {}",
                        initial_value.currency(),
                        job.currency
                    )));
                }
                let rows: Vec<ModelDayRow> = sqlx::query_as(concat!(
                    model_day_select!(),
                    "WHERE d.job_id = $1 ORDER BY d.model, d.date"
                ))
                .bind(job_id)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::StoreError::db("read a job's model-days"))?;
                let counts = |sql: &'static str, context: &'static str| {
                    let pool = &self.pool;
                    async move {
                        let rows: Vec<(String, i64)> = sqlx::query_as(sql)
                            .bind(job_id)
                            .fetch_all(pool)
                            .await
                            .map_err($crate::StoreError::db(context))?;
                        Ok::<_, $crate::StoreError>(
                            rows.into_iter()
                                .collect::<std::collections::HashMap<String, i64>>(),
                        )
                    }
                };
                let trades = counts(
                    "SELECT model, COUNT(*) FROM positions WHERE job_id = $1 \
                     AND action <> 'hold' GROUP BY model",
                    "count trades per model",
                )
                .await?;
                let mut entries: Vec<$crate::LeaderboardEntry> = Vec::new();
                for row in rows {
                    let day = row.into_model_day()?;
                    if entries.last().is_none_or(|e| e.model != day.model) {
                        entries.push($crate::LeaderboardEntry {
                            trades: trades.get(&day.model).copied().unwrap_or(0) as u64,
                            tool_calls: 0,
                            tool_errors: 0,
                            model: day.model.clone(),
                            daily: Vec::new(),
                            completed_days: 0,
                            failed_days: 0,
                            refused_days: 0,
                            final_value: None,
                            total_return: None,
                            max_drawdown: None,
                            sharpe: None,
                        });
                    }
                    // Invariant: an entry was pushed just above if none existed.
                    let Some(entry) = entries.last_mut() else {
                        continue;
                    };
                    // Every day that ran a session counts, failed ones included: a model
                    // whose days fail on tool errors has made those errors.
                    entry.tool_calls += u64::from(day.tool_calls.unwrap_or(0));
                    entry.tool_errors += u64::from(day.tool_errors.unwrap_or(0));
                    match (day.status, day.portfolio_value) {
                        ($crate::ModelDayStatus::Completed, Some(value)) => {
                            entry.completed_days += 1;
                            entry.daily.push($crate::DailyValue {
                                date: day.date,
                                value,
                            });
                        }
                        ($crate::ModelDayStatus::Failed, _) => entry.failed_days += 1,
                        ($crate::ModelDayStatus::Refused, _) => entry.refused_days += 1,
                        _ => {}
                    }
                }
                for e in &mut entries {
                    let stats = $crate::results::statistics(initial_value, &e.daily);
                    e.final_value = e.daily.last().map(|d| d.value);
                    e.total_return = stats.total_return;
                    e.max_drawdown = stats.max_drawdown;
                    e.sharpe = stats.sharpe;
                }
                Ok(entries)
            }

            async fn insert_run(
                &self,
                run: &$crate::RunEntry,
            ) -> Result<(), $crate::StoreError> {
                sqlx::query(
                    "INSERT INTO runs (run_id, name, status, run_dir, created_at, summary) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&run.run_id)
                .bind(&run.name)
                .bind(&run.status)
                .bind(&run.run_dir)
                .bind(run.created_at)
                .bind(run.summary.as_ref().map(sqlx::types::Json))
                .execute(&self.pool)
                .await
                .map_err(|e| match $crate::StoreError::db("index a run")(e) {
                    $crate::StoreError::Conflict(_) => $crate::StoreError::Conflict(format!(
                        "run {} is already indexed",
                        run.run_id
                    )),
                    other => other,
                })?;
                Ok(())
            }

            async fn run(&self, run_id: &str) -> Result<$crate::RunEntry, $crate::StoreError> {
                use $crate::sql_store::*;
                let row: Option<RunRow> = sqlx::query_as(
                    "SELECT run_id, name, status, run_dir, created_at, summary FROM runs \
                     WHERE run_id = $1",
                )
                .bind(run_id)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::StoreError::db("read a run"))?;
                row.map(RunRow::into_entry)
                    .ok_or_else(|| $crate::StoreError::not_found(format!("run {run_id}")))
            }

            async fn put_blob(&self, kind: &str, body: &str) -> Result<String, $crate::StoreError> {
                let hash = $crate::blob_hash(body);
                let _gate = self.write_gate().await;
                sqlx::query(
                    $crate::sql_store::INSERT_BLOB,
                )
                .bind(&hash)
                .bind(kind)
                .bind(body)
                .bind($crate::sql_store::now())
                .execute(&self.pool)
                .await
                .map_err($crate::StoreError::db("store a blob"))?;
                Ok(hash)
            }

            async fn blob(&self, hash: &str) -> Result<$crate::Blob, $crate::StoreError> {
                let row: Option<(String, String, String)> =
                    sqlx::query_as("SELECT hash, kind, body FROM blobs WHERE hash = $1")
                        .bind(hash)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err($crate::StoreError::db("read a blob"))?;
                let (hash, kind, body) =
                    row.ok_or_else(|| $crate::StoreError::not_found(format!("blob {hash}")))?;
                Ok($crate::Blob { hash, kind, body })
            }

            async fn create_workflow(
                &self,
                new: &$crate::NewWorkflowVersion,
            ) -> Result<$crate::WorkflowVersion, $crate::StoreError> {
                use $crate::StoreError;
                $crate::workflow::check_name(&new.name)?;
                let at = $crate::sql_store::now();
                let id = uuid::Uuid::now_v7().to_string();
                let definition_hash = $crate::blob_hash(&new.definition);
                let ir_hash = $crate::blob_hash(&new.ir);
                let _gate = self.write_gate().await;
                let mut tx = self
                    .pool
                    .begin_with($begin)
                    .await
                    .map_err(StoreError::db("begin creating a workflow"))?;
                for (kind, body, hash) in [
                    ("workflow_definition", &new.definition, &definition_hash),
                    ("workflow_ir", &new.ir, &ir_hash),
                ] {
                    sqlx::query(
                        $crate::sql_store::INSERT_BLOB,
                    )
                    .bind(hash)
                    .bind(kind)
                    .bind(body)
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db("store a workflow blob"))?;
                }
                sqlx::query(
                    "INSERT INTO workflows (id, name, latest_version, created_at, updated_at) \
                     VALUES ($1, $2, 1, $3, $3)",
                )
                .bind(&id)
                .bind(&new.name)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(|e| match StoreError::db("create a workflow")(e) {
                    StoreError::Conflict(_) => StoreError::Conflict(format!(
                        "a workflow named `{}` exists; update it instead",
                        new.name
                    )),
                    other => other,
                })?;
                sqlx::query(
                    "INSERT INTO workflow_versions (workflow_id, version, definition_hash, \
                     ir_hash, created_at) VALUES ($1, 1, $2, $3, $4)",
                )
                .bind(&id)
                .bind(&definition_hash)
                .bind(&ir_hash)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db("store a workflow version"))?;
                tx.commit()
                    .await
                    .map_err(StoreError::db("commit a new workflow"))?;
                Ok($crate::WorkflowVersion {
                    workflow_id: id,
                    version: 1,
                    definition_hash,
                    ir_hash,
                    created_at: at,
                })
            }

            async fn update_workflow(
                &self,
                id: &str,
                new: &$crate::NewWorkflowVersion,
            ) -> Result<($crate::WorkflowVersion, bool), $crate::StoreError> {
                use $crate::StoreError;
                use $crate::sql_store::*;
                $crate::workflow::check_name(&new.name)?;
                let at = now();
                let definition_hash = $crate::blob_hash(&new.definition);
                let ir_hash = $crate::blob_hash(&new.ir);
                let _gate = self.write_gate().await;
                let mut tx = self
                    .pool
                    .begin_with($begin)
                    .await
                    .map_err(StoreError::db("begin updating a workflow"))?;
                // Takes the row lock on PostgreSQL first, so concurrent updates get distinct
                // version numbers.
                let locked = sqlx::query("UPDATE workflows SET updated_at = updated_at WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db("lock a workflow"))?;
                if locked.rows_affected() == 0 {
                    return Err(StoreError::not_found(format!("workflow {id}")));
                }
                let latest: WorkflowVersionRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {WORKFLOW_VERSION_COLUMNS} FROM workflow_versions \
                     WHERE workflow_id = $1 ORDER BY version DESC LIMIT 1"
                )))
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::db("read a workflow's latest version"))?;
                let latest = latest.into_version();
                if latest.ir_hash == ir_hash {
                    return Ok((latest, false));
                }
                for (kind, body, hash) in [
                    ("workflow_definition", &new.definition, &definition_hash),
                    ("workflow_ir", &new.ir, &ir_hash),
                ] {
                    sqlx::query(
                        $crate::sql_store::INSERT_BLOB,
                    )
                    .bind(hash)
                    .bind(kind)
                    .bind(body)
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db("store a workflow blob"))?;
                }
                let version = latest.version + 1;
                sqlx::query(
                    "INSERT INTO workflow_versions (workflow_id, version, definition_hash, \
                     ir_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id)
                .bind(version as i32)
                .bind(&definition_hash)
                .bind(&ir_hash)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db("store a workflow version"))?;
                sqlx::query(
                    "UPDATE workflows SET name = $2, latest_version = $3, updated_at = $4 WHERE id = $1",
                )
                .bind(id)
                .bind(&new.name)
                .bind(version as i32)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(|e| match StoreError::db("update a workflow")(e) {
                    StoreError::Conflict(_) => StoreError::Conflict(format!(
                        "another workflow is named `{}`",
                        new.name
                    )),
                    other => other,
                })?;
                tx.commit()
                    .await
                    .map_err(StoreError::db("commit a workflow version"))?;
                Ok((
                    $crate::WorkflowVersion {
                        workflow_id: id.to_string(),
                        version,
                        definition_hash,
                        ir_hash,
                        created_at: at,
                    },
                    true,
                ))
            }

            async fn workflow(&self, id: &str) -> Result<$crate::Workflow, $crate::StoreError> {
                use $crate::sql_store::*;
                let row: Option<WorkflowRow> = sqlx::query_as(
                    "SELECT id, name, latest_version, created_at, updated_at FROM workflows \
                     WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::StoreError::db("read a workflow"))?;
                row.map(WorkflowRow::into_workflow)
                    .ok_or_else(|| $crate::StoreError::not_found(format!("workflow {id}")))
            }

            async fn list_workflows(
                &self,
                limit: u32,
                offset: u64,
            ) -> Result<Vec<$crate::Workflow>, $crate::StoreError> {
                use $crate::sql_store::*;
                let rows: Vec<WorkflowRow> = sqlx::query_as(
                    "SELECT id, name, latest_version, created_at, updated_at FROM workflows \
                     ORDER BY name LIMIT $1 OFFSET $2",
                )
                .bind(page(limit))
                .bind(sql_offset(offset))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::StoreError::db("list workflows"))?;
                Ok(rows.into_iter().map(WorkflowRow::into_workflow).collect())
            }

            async fn workflow_version(
                &self,
                id: &str,
                version: Option<u32>,
            ) -> Result<$crate::WorkflowVersion, $crate::StoreError> {
                use $crate::sql_store::*;
                let row: Option<WorkflowVersionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {WORKFLOW_VERSION_COLUMNS} FROM workflow_versions \
                     WHERE workflow_id = $1 AND ($2 IS NULL OR version = $2) \
                     ORDER BY version DESC LIMIT 1"
                )))
                .bind(id)
                .bind(version.map(|v| v as i32))
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::StoreError::db("read a workflow version"))?;
                row.map(WorkflowVersionRow::into_version).ok_or_else(|| {
                    $crate::StoreError::not_found(match version {
                        Some(v) => format!("version {v} of workflow {id}"),
                        None => format!("workflow {id}"),
                    })
                })
            }

            async fn workflow_versions(
                &self,
                id: &str,
            ) -> Result<Vec<$crate::WorkflowVersion>, $crate::StoreError> {
                use $crate::sql_store::*;
                self.workflow(id).await?;
                let rows: Vec<WorkflowVersionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {WORKFLOW_VERSION_COLUMNS} FROM workflow_versions \
                     WHERE workflow_id = $1 ORDER BY version"
                )))
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::StoreError::db("list workflow versions"))?;
                Ok(rows.into_iter().map(WorkflowVersionRow::into_version).collect())
            }

            async fn delete_workflow(&self, id: &str) -> Result<(), $crate::StoreError> {
                let done = sqlx::query("DELETE FROM workflows WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err($crate::StoreError::db("delete a workflow"))?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::not_found(format!("workflow {id}")));
                }
                Ok(())
            }

            async fn create_workflow_run(
                &self,
                new: &$crate::NewWorkflowRun,
            ) -> Result<$crate::WorkflowRun, $crate::StoreError> {
                use $crate::StoreError;
                use $crate::sql_store::*;
                let at = now();
                let id = uuid::Uuid::now_v7().to_string();
                let _gate = self.write_gate().await;
                let mut tx = self
                    .pool
                    .begin_with($begin)
                    .await
                    .map_err(StoreError::db("begin creating a workflow run"))?;
                sqlx::query(
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
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db("create a workflow run"))?;
                for node in &new.nodes {
                    sqlx::query(
                        "INSERT INTO workflow_node_states (run_id, node_id, status, updated_at) \
                         VALUES ($1, $2, 'pending', $3)",
                    )
                    .bind(&id)
                    .bind(node)
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db("create a node state"))?;
                }
                if Self::BACKEND == $crate::Backend::Postgres {
                    sqlx::query(EVENT_ORDER_LOCK)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::db("lock the event log"))?;
                }
                sqlx::query(
                    "INSERT INTO workflow_events (run_id, kind, node_id, payload, at) \
                     VALUES ($1, 'run_created', NULL, $2, $3)",
                )
                .bind(&id)
                .bind(sqlx::types::Json(serde_json::json!({"workflow_id": new.workflow_id, "version": new.workflow_version})))
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db("append an event"))?;
                tx.commit()
                    .await
                    .map_err(StoreError::db("commit a new workflow run"))?;
                self.workflow_run(&id).await
            }

            async fn workflow_run(
                &self,
                run_id: &str,
            ) -> Result<$crate::WorkflowRun, $crate::StoreError> {
                use $crate::sql_store::*;
                let row: Option<RunRowWf> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {WORKFLOW_RUN_COLUMNS} FROM workflow_runs WHERE id = $1"
                )))
                .bind(run_id)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::StoreError::db("read a workflow run"))?;
                row.ok_or_else(|| $crate::StoreError::not_found(format!("workflow run {run_id}")))?
                    .into_run()
            }

            async fn node_states(
                &self,
                run_id: &str,
            ) -> Result<Vec<$crate::NodeState>, $crate::StoreError> {
                use $crate::sql_store::*;
                let rows: Vec<NodeStateRow> = sqlx::query_as(
                    "SELECT node_id, status, attempts, output_hash, error, not_before, updated_at \
                     FROM workflow_node_states WHERE run_id = $1 ORDER BY node_id",
                )
                .bind(run_id)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::StoreError::db("read node states"))?;
                rows.into_iter().map(NodeStateRow::into_state).collect()
            }

            async fn approval(&self, id: &str) -> Result<$crate::Approval, $crate::StoreError> {
                use $crate::sql_store::*;
                let row: Option<ApprovalRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {APPROVAL_COLUMNS} FROM workflow_approvals WHERE id = $1"
                )))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::StoreError::db("read an approval"))?;
                row.ok_or_else(|| $crate::StoreError::not_found(format!("approval {id}")))?
                    .into_approval()
            }

            async fn list_approvals(
                &self,
                status: Option<$crate::ApprovalStatus>,
                run_id: Option<&str>,
                limit: u32,
                offset: u64,
            ) -> Result<Vec<$crate::Approval>, $crate::StoreError> {
                use $crate::sql_store::*;
                let rows: Vec<ApprovalRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {APPROVAL_COLUMNS} FROM workflow_approvals \
                     WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR run_id = $2) \
                     ORDER BY created_at, id LIMIT $3 OFFSET $4"
                )))
                .bind(status.map(|s| s.as_str()))
                .bind(run_id)
                .bind(page(limit))
                .bind(sql_offset(offset))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::StoreError::db("list approvals"))?;
                rows.into_iter().map(ApprovalRow::into_approval).collect()
            }

            async fn run_patches(
                &self,
                run_id: &str,
            ) -> Result<Vec<$crate::Patch>, $crate::StoreError> {
                use $crate::sql_store::*;
                let rows: Vec<PatchRow> = sqlx::query_as(
                    "SELECT run_id, ir_version, operations, definition_hash, ir_hash, applied_by, \
                     applied_at FROM workflow_patches WHERE run_id = $1 ORDER BY ir_version",
                )
                .bind(run_id)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::StoreError::db("read patches"))?;
                Ok(rows.into_iter().map(PatchRow::into_patch).collect())
            }

            async fn list_workflow_runs(
                &self,
                status: Option<$crate::RunStatus>,
                limit: u32,
                offset: u64,
            ) -> Result<Vec<$crate::WorkflowRun>, $crate::StoreError> {
                use $crate::sql_store::*;
                let rows: Vec<RunRowWf> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {WORKFLOW_RUN_COLUMNS} FROM workflow_runs \
                     WHERE ($1 IS NULL OR status = $1) ORDER BY id DESC LIMIT $2 OFFSET $3"
                )))
                .bind(status.map(|s| s.as_str()))
                .bind(page(limit))
                .bind(sql_offset(offset))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::StoreError::db("list workflow runs"))?;
                rows.into_iter().map(RunRowWf::into_run).collect()
            }

            async fn commit_transition(
                &self,
                t: &$crate::Transition,
            ) -> Result<$crate::TransitionOutcome, $crate::StoreError> {
                use $crate::StoreError;
                use $crate::sql_store::*;
                let at = now();
                let _gate = self.write_gate().await;
                let mut tx = self
                    .pool
                    .begin_with($begin)
                    .await
                    .map_err(StoreError::db("begin a transition"))?;
                // The run's row first: it serialises transitions of one run on PostgreSQL and
                // proves the revision the transition was computed from is still current.
                let finished = t.status.filter(|s| s.is_terminal()).map(|_| at);
                let patch = t.patch.as_ref();
                let moved = sqlx::query(
                    "UPDATE workflow_runs SET revision = revision + 1, \
                     status = COALESCE($3, status), tokens = tokens + $4, \
                     ir_hash = COALESCE($5, ir_hash), error = COALESCE($6, error), \
                     finished_at = COALESCE($7, finished_at), \
                     definition_hash = COALESCE($8, definition_hash), \
                     ir_version = ir_version + $9, agent_nodes_spawned = agent_nodes_spawned + $10 \
                     WHERE id = $1 AND revision = $2",
                )
                .bind(&t.run_id)
                .bind(t.expect_revision)
                .bind(t.status.map(|s| s.as_str()))
                .bind(t.tokens_delta)
                .bind(patch.map(|p| p.ir_hash.as_str()))
                .bind(t.error.as_deref())
                .bind(finished)
                .bind(patch.map(|p| p.definition_hash.as_str()))
                .bind(i32::from(patch.is_some()))
                .bind(patch.map_or(0, |p| i32::try_from(p.added_agent_nodes).unwrap_or(i32::MAX)))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db("advance a workflow run"))?;
                let applied = sqlx::query(
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
                    // Seen before: drop everything, including the revision bump above.
                    drop(tx);
                    return Ok($crate::TransitionOutcome::AlreadyApplied);
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
                    sqlx::query(
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
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db("write a node state"))?;
                }
                if let Some(p) = patch {
                    let (ir_version,): (i32,) =
                        sqlx::query_as("SELECT ir_version FROM workflow_runs WHERE id = $1")
                            .bind(&t.run_id)
                            .fetch_one(&mut *tx)
                            .await
                            .map_err(StoreError::db("read the run's IR version"))?;
                    sqlx::query(
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
                        $crate::ApprovalChange::Create(a) => {
                            sqlx::query(
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
                        $crate::ApprovalChange::Close {
                            id,
                            status,
                            decision,
                            by,
                            comment,
                        } => {
                            let closed = sqlx::query(
                                "UPDATE workflow_approvals SET status = $2, decision = $3, \
                                 decided_by = $4, comment = $5, decided_at = $6 \
                                 WHERE id = $1 AND status = 'pending'",
                            )
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
                                drop(tx);
                                return Err(StoreError::Conflict(format!(
                                    "approval {id} is not pending"
                                )));
                            }
                        }
                    }
                }
                if !t.events.is_empty() && Self::BACKEND == $crate::Backend::Postgres {
                    sqlx::query(EVENT_ORDER_LOCK)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::db("lock the event log"))?;
                }
                for e in &t.events {
                    sqlx::query(
                        "INSERT INTO workflow_events (run_id, kind, node_id, payload, at) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(&t.run_id)
                    .bind(&e.kind)
                    .bind(e.node_id.as_deref())
                    .bind(sqlx::types::Json(&e.payload))
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db("append an event"))?;
                }
                tx.commit()
                    .await
                    .map_err(StoreError::db("commit a transition"))?;
                Ok($crate::TransitionOutcome::Applied {
                    revision: t.expect_revision + 1,
                })
            }

            async fn run_events(
                &self,
                run_id: Option<&str>,
                after_seq: i64,
                limit: u32,
            ) -> Result<Vec<$crate::RunEvent>, $crate::StoreError> {
                use $crate::sql_store::*;
                let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {EVENT_COLUMNS} FROM workflow_events \
                     WHERE ($1 IS NULL OR run_id = $1) AND seq > $2 ORDER BY seq LIMIT $3"
                )))
                .bind(run_id)
                .bind(after_seq)
                .bind(page(limit))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::StoreError::db("read run events"))?;
                Ok(rows.into_iter().map(EventRow::into_event).collect())
            }

            async fn job_events(
                &self,
                job_id: &str,
                after_seq: i64,
                limit: u32,
            ) -> Result<Vec<$crate::RunEvent>, $crate::StoreError> {
                use $crate::sql_store::*;
                let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {EVENT_COLUMNS} FROM workflow_events \
                     WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
                )))
                .bind(job_id)
                .bind(after_seq)
                .bind(page(limit))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::StoreError::db("read job events"))?;
                Ok(rows.into_iter().map(EventRow::into_event).collect())
            }

            async fn append_job_event(
                &self,
                job_id: &str,
                kind: &str,
                payload: &serde_json::Value,
            ) -> Result<i64, $crate::StoreError> {
                use $crate::StoreError;
                use $crate::sql_store::*;
                if kind.trim().is_empty() {
                    return Err(StoreError::Invalid(format!(
                        "event kind of job {job_id} is empty"
                    )));
                }
                let _gate = self.write_gate().await;
                let mut tx = self
                    .pool
                    .begin_with($begin)
                    .await
                    .map_err(StoreError::db("begin appending a job event"))?;
                if Self::BACKEND == $crate::Backend::Postgres {
                    sqlx::query(EVENT_ORDER_LOCK)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::db("lock the event log"))?;
                }
                // Through `jobs`, so an unknown job is NotFound rather than a foreign-key error.
                let seq: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO workflow_events (job_id, kind, node_id, payload, at) \
                     SELECT id, $2, NULL, $3, $4 FROM jobs WHERE id = $1 RETURNING seq",
                )
                .bind(job_id)
                .bind(kind)
                .bind(sqlx::types::Json(payload))
                .bind(now())
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::db("append a job event"))?;
                let Some(seq) = seq else {
                    return Err(StoreError::not_found(format!("job {job_id}")));
                };
                tx.commit()
                    .await
                    .map_err(StoreError::db("commit a job event"))?;
                Ok(seq)
            }

            async fn create_api_key(
                &self,
                new: &$crate::NewApiKey,
            ) -> Result<$crate::ApiKey, $crate::StoreError> {
                use $crate::StoreError;
                $crate::api_key::check_key_name(&new.name)?;
                let key = $crate::ApiKey {
                    id: uuid::Uuid::now_v7().to_string(),
                    name: new.name.clone(),
                    role: new.role,
                    prefix: new.prefix.clone(),
                    created_at: $crate::sql_store::now(),
                    last_used_at: None,
                    revoked_at: None,
                };
                let inserted = sqlx::query(
                    "INSERT INTO api_keys (id, name, role, key_hash, prefix, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&key.id)
                .bind(&key.name)
                .bind(key.role.as_str())
                .bind(&new.key_hash)
                .bind(&key.prefix)
                .bind(key.created_at)
                .execute(&self.pool)
                .await
                .map_err(StoreError::db("create an API key"));
                match inserted {
                    Ok(_) => Ok(key),
                    Err(StoreError::Conflict(_)) => {
                        let taken: Option<(String,)> =
                            sqlx::query_as("SELECT id FROM api_keys WHERE name = $1")
                                .bind(&new.name)
                                .fetch_optional(&self.pool)
                                .await
                                .map_err(StoreError::db("look up an API key name"))?;
                        Err(StoreError::Conflict(if taken.is_some() {
                            format!(
                                "an API key named `{}` exists (revoked keys keep their names); \
                                 choose another name",
                                new.name
                            )
                        } else {
                            "an API key with this secret exists; generate a new secret".into()
                        }))
                    }
                    Err(e) => Err(e),
                }
            }

            async fn api_key_by_hash(
                &self,
                key_hash: &str,
            ) -> Result<Option<$crate::ApiKey>, $crate::StoreError> {
                use $crate::api_key::{API_KEY_COLUMNS, ApiKeyRow};
                let row: Option<ApiKeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {API_KEY_COLUMNS} FROM api_keys \
                     WHERE key_hash = $1 AND revoked_at IS NULL"
                )))
                .bind(key_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::StoreError::db("look up an API key"))?;
                row.map(ApiKeyRow::into_key).transpose()
            }

            async fn list_api_keys(&self) -> Result<Vec<$crate::ApiKey>, $crate::StoreError> {
                use $crate::api_key::{API_KEY_COLUMNS, ApiKeyRow};
                let rows: Vec<ApiKeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"
                )))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::StoreError::db("list API keys"))?;
                rows.into_iter().map(ApiKeyRow::into_key).collect()
            }

            async fn revoke_api_key(
                &self,
                id_or_name: &str,
            ) -> Result<$crate::ApiKey, $crate::StoreError> {
                use $crate::StoreError;
                use $crate::api_key::{API_KEY_COLUMNS, ApiKeyRow};
                let _gate = self.write_gate().await;
                let mut tx = self
                    .pool
                    .begin_with($begin)
                    .await
                    .map_err(StoreError::db("begin revoking an API key"))?;
                // An id first: a name can never shadow another key's id.
                let mut row: Option<ApiKeyRow> = None;
                for column in ["id", "name"] {
                    row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE {column} = $1"
                    )))
                    .bind(id_or_name)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(StoreError::db("look up an API key"))?;
                    if row.is_some() {
                        break;
                    }
                }
                let Some(row) = row else {
                    return Err(StoreError::not_found(format!(
                        "API key `{id_or_name}` (no key has this id or name)"
                    )));
                };
                let mut key = row.into_key()?;
                if key.revoked_at.is_none() && key.role == $crate::Role::Admin {
                    // Without an active admin key nobody could manage keys over the API any
                    // more. The no-op UPDATE locks the active admin rows (PostgreSQL; SQLite
                    // holds the write lock already), so two admins revoking each other at once
                    // cannot both succeed.
                    sqlx::query(
                        "UPDATE api_keys SET role = role WHERE role = 'admin' AND revoked_at IS NULL",
                    )
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db("lock the active admin keys"))?;
                    let (others,): (i64,) = sqlx::query_as(
                        "SELECT COUNT(*) FROM api_keys \
                         WHERE role = 'admin' AND revoked_at IS NULL AND id <> $1",
                    )
                    .bind(&key.id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(StoreError::db("count the active admin keys"))?;
                    if others == 0 {
                        return Err(StoreError::Conflict(format!(
                            "`{}` is the last active admin key; create another admin key \
                             first (`tradeloom keys create --name NAME --role admin`)",
                            key.name
                        )));
                    }
                }
                if key.revoked_at.is_none() {
                    let at = $crate::sql_store::now();
                    sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1")
                        .bind(&key.id)
                        .bind(at)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::db("revoke an API key"))?;
                    key.revoked_at = Some(at);
                }
                tx.commit()
                    .await
                    .map_err(StoreError::db("commit an API key revocation"))?;
                Ok(key)
            }

            async fn touch_api_key(&self, id: &str) -> Result<(), $crate::StoreError> {
                let done = sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind($crate::sql_store::now())
                    .execute(&self.pool)
                    .await
                    .map_err($crate::StoreError::db("record an API key's use"))?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::not_found(format!("API key {id}")));
                }
                Ok(())
            }

            async fn claim_schedule_fire(
                &self,
                workflow_id: &str,
                fire_at: chrono::DateTime<chrono::Utc>,
            ) -> Result<bool, $crate::StoreError> {
                use chrono::SubsecRound;
                let done = sqlx::query(
                    "INSERT INTO workflow_schedule_fires (workflow_id, fire_at, created_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (workflow_id, fire_at) DO NOTHING",
                )
                .bind(workflow_id)
                .bind(fire_at.trunc_subsecs(6))
                .bind($crate::sql_store::now())
                .execute(&self.pool)
                .await
                .map_err(|e| {
                    if e
                        .as_database_error()
                        .is_some_and(|d| d.is_foreign_key_violation())
                    {
                        $crate::StoreError::not_found(format!("workflow {workflow_id}"))
                    } else {
                        $crate::StoreError::db("claim a schedule fire time")(e)
                    }
                })?;
                Ok(done.rows_affected() == 1)
            }

            async fn set_schedule_fire_run(
                &self,
                workflow_id: &str,
                fire_at: chrono::DateTime<chrono::Utc>,
                run_id: &str,
            ) -> Result<(), $crate::StoreError> {
                use chrono::SubsecRound;
                let done = sqlx::query(
                    "UPDATE workflow_schedule_fires SET run_id = $3 \
                     WHERE workflow_id = $1 AND fire_at = $2",
                )
                .bind(workflow_id)
                .bind(fire_at.trunc_subsecs(6))
                .bind(run_id)
                .execute(&self.pool)
                .await
                .map_err($crate::StoreError::db("record a scheduled run"))?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::not_found(format!(
                        "schedule fire time {fire_at} of workflow {workflow_id}"
                    )));
                }
                Ok(())
            }

            async fn set_schedule_fire_error(
                &self,
                workflow_id: &str,
                fire_at: chrono::DateTime<chrono::Utc>,
                error: &str,
            ) -> Result<(), $crate::StoreError> {
                use chrono::SubsecRound;
                let done = sqlx::query(
                    "UPDATE workflow_schedule_fires SET error = $3 \
                     WHERE workflow_id = $1 AND fire_at = $2",
                )
                .bind(workflow_id)
                .bind(fire_at.trunc_subsecs(6))
                .bind(error)
                .execute(&self.pool)
                .await
                .map_err($crate::StoreError::db("record a scheduled run's failure"))?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::not_found(format!(
                        "schedule fire time {fire_at} of workflow {workflow_id}"
                    )));
                }
                Ok(())
            }

            async fn last_schedule_fire(
                &self,
                workflow_id: &str,
            ) -> Result<Option<chrono::DateTime<chrono::Utc>>, $crate::StoreError> {
                let row: Option<(chrono::DateTime<chrono::Utc>,)> = sqlx::query_as(
                    "SELECT fire_at FROM workflow_schedule_fires WHERE workflow_id = $1 \
                     ORDER BY fire_at DESC LIMIT 1",
                )
                .bind(workflow_id)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::StoreError::db("read a workflow's last schedule fire"))?;
                Ok(row.map(|(at,)| at))
            }

            async fn schedule_fires(
                &self,
                workflow_id: &str,
                limit: u32,
            ) -> Result<Vec<$crate::ScheduleFire>, $crate::StoreError> {
                use $crate::schedule_fire::{SCHEDULE_FIRE_COLUMNS, ScheduleFireRow};
                let rows: Vec<ScheduleFireRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {SCHEDULE_FIRE_COLUMNS} FROM workflow_schedule_fires \
                     WHERE workflow_id = $1 ORDER BY fire_at DESC LIMIT $2"
                )))
                .bind(workflow_id)
                .bind($crate::sql_store::page(limit))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::StoreError::db("list a workflow's schedule fires"))?;
                Ok(rows.into_iter().map(ScheduleFireRow::into_fire).collect())
            }

            async fn list_runs(
                &self,
                limit: u32,
                offset: u64,
            ) -> Result<Vec<$crate::RunEntry>, $crate::StoreError> {
                use $crate::sql_store::*;
                let rows: Vec<RunRow> = sqlx::query_as(
                    "SELECT run_id, name, status, run_dir, created_at, summary FROM runs \
                     ORDER BY created_at DESC, run_id DESC LIMIT $1 OFFSET $2",
                )
                .bind(page(limit))
                .bind(sql_offset(offset))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::StoreError::db("list runs"))?;
                Ok(rows.into_iter().map(RunRow::into_entry).collect())
            }

            async fn status_counts(&self) -> Result<$crate::StatusCounts, $crate::StoreError> {
                let mut counts = $crate::StatusCounts::default();
                for (table, into) in [
                    ("jobs", &mut counts.jobs),
                    ("job_details", &mut counts.model_days),
                    ("workflow_runs", &mut counts.workflow_runs),
                    ("workflow_node_states", &mut counts.workflow_nodes),
                ] {
                    // `table` is one of the constants above, never user input.
                    let rows: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT status, COUNT(*) FROM {table} GROUP BY status ORDER BY status"
                    )))
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::StoreError::db("count rows by status"))?;
                    *into = rows
                        .into_iter()
                        .map(|(status, n)| (status, u64::try_from(n).unwrap_or(0)))
                        .collect();
                }
                Ok(counts)
            }
        }

        impl $store {
            async fn model_day_row(
                &self,
                key: &$crate::ModelDayKey,
            ) -> Result<$crate::sql_store::ModelDayRow, $crate::StoreError> {
                use $crate::sql_store::*;
                let row: Option<ModelDayRow> = sqlx::query_as(concat!(
                    model_day_select!(),
                    "WHERE d.job_id = $1 AND d.model = $2 AND d.date = $3"
                ))
                .bind(&key.job_id)
                .bind(&key.model)
                .bind(key.date)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::StoreError::db("read a model-day"))?;
                row.ok_or_else(|| $crate::StoreError::not_found(key.to_string()))
            }

            async fn holdings_in(
                &self,
                key: &$crate::ModelDayKey,
                ccy: tradeloom_core::Currency,
            ) -> Result<Vec<$crate::Holding>, $crate::StoreError> {
                use $crate::sql_store::*;
                let rows: Vec<HoldingRow> = sqlx::query_as(
                    "SELECT symbol, quantity, price, value FROM holdings \
                     WHERE job_id = $1 AND model = $2 AND date = $3 ORDER BY seq",
                )
                .bind(&key.job_id)
                .bind(&key.model)
                .bind(key.date)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::StoreError::db("read a model-day's holdings"))?;
                rows.into_iter().map(|r| r.into_holding(ccy)).collect()
            }

            async fn progress(
                &self,
                job_id: &str,
            ) -> Result<$crate::JobProgress, $crate::StoreError> {
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT status, COUNT(*) FROM job_details WHERE job_id = $1 GROUP BY status",
                )
                .bind(job_id)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::StoreError::db("count a job's model-days"))?;
                let mut p = $crate::JobProgress::default();
                for (status, n) in rows {
                    let n = u64::try_from(n).unwrap_or(0);
                    p.total_model_days += n;
                    match status.as_str() {
                        "pending" => p.pending += n,
                        "running" => p.running += n,
                        "completed" => p.completed += n,
                        "failed" => p.failed += n,
                        "refused" => p.refused += n,
                        other => {
                            return Err($crate::StoreError::Corrupt {
                                what: "job_details.status",
                                detail: other.to_string(),
                            });
                        }
                    }
                }
                Ok(p)
            }
        }
    };
}
pub(crate) use impl_store;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpacks_packed_holdings_of_both_back_ends() {
        let usd = Currency::USD;
        assert!(unpack_holdings(None, usd).unwrap().is_empty());
        // SQLite prints the stored text; PostgreSQL prints NUMERIC(38,18) with every decimal.
        let h = unpack_holdings(
            Some("AAA 10 101.2 1012.00|BB.X 3.000000000000000000 7.500000000000000000 22.500000000000000000"),
            usd,
        )
        .unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(
            (h[0].symbol.as_str(), h[0].quantity.to_string()),
            ("AAA", "10".to_string())
        );
        assert_eq!(h[1].price.to_string(), "7.5");
        assert_eq!(h[1].value, Money::parse("22.5", usd).unwrap());
        assert!(unpack_holdings(Some("AAA 10 1"), usd).is_err());
        assert!(unpack_holdings(Some("AAA x 1 1"), usd).is_err());
    }
}
