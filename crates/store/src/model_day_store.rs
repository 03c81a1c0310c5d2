//! [`ModelDayStore`]: the model-days of a job — claimed by a worker, completed with their trades,
//! holdings, reasoning and tool calls in one transaction, or stopped; and read back.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use serde_json::Value;
use sqlx::FromRow;
use sqlx::types::Json;
use tradeloom_core::{Currency, Money};

use crate::error::StoreError;
use crate::model_day::{
    ClaimedCompletion, Holding, ModelDay, ModelDayKey, ModelDayMemory, ModelDayOutcome,
    ModelDayStatus, ModelDayStop, ReasoningMessage, ToolCall, Trade,
};
use crate::numeric::Num;
use crate::sql::{
    Arg, Backend, Db, Statement, Tx, corrupt, currency, insert_values, lock_event_order, now, sql,
};

/// `SELECT` of model-days with their job's currency; append `WHERE …`.
pub(crate) const MODEL_DAY_SELECT: &str = "SELECT d.job_id, d.model, d.date, d.status, d.attempts, d.started_at, d.finished_at, \
     d.duration_ms, d.error, d.steps, d.tool_calls, d.tool_errors, d.cash, d.portfolio_value, \
     j.currency, j.currency_precision \
     FROM job_details d JOIN jobs j ON j.id = d.job_id ";

/// The columns of [`ModelDayRow`] as a `RETURNING` clause of an `UPDATE job_details`: the
/// job's currency through subqueries, so a write hands back the row without a second query.
const MODEL_DAY_RETURNING: &str = " RETURNING job_id, model, date, status, attempts, started_at, \
     finished_at, duration_ms, error, steps, tool_calls, tool_errors, cash, portfolio_value, \
     (SELECT j.currency FROM jobs j WHERE j.id = job_details.job_id) AS currency, \
     (SELECT j.currency_precision FROM jobs j WHERE j.id = job_details.job_id) AS currency_precision";

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

    pub(crate) fn attempts(&self) -> i32 {
        self.attempts
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
            let num = |text: &str, what: &'static str| Num::parse_text(text).map_err(corrupt(what));
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
pub(crate) fn check_symbol(symbol: &str, key: &ModelDayKey) -> Result<(), StoreError> {
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

/// Model-days: one model's simulated trading day of a job.
///
/// Designed for a crash-safe, idempotent worker: claim a model-day, run it, then
/// [`complete_model_day`](ModelDayStore::complete_model_day) writes every row it produced in one
/// transaction, so a crash never leaves half a model-day and a retry never duplicates rows. On
/// start-up, [`reset_running_model_days`](ModelDayStore::reset_running_model_days) returns
/// interrupted model-days to `pending`.
#[async_trait]
pub trait ModelDayStore: Send + Sync {
    /// Model-days of the job still to do (pending or running), by date then model.
    async fn unfinished_model_days(&self, job_id: &str) -> Result<Vec<ModelDay>, StoreError>;

    /// Claims a model-day for a worker: `pending → running`, or takes over one that has been
    /// `running` for longer than `stale_after` (its worker crashed). Returns `None` if it is
    /// done, failed, or freshly running elsewhere, or its job is `paused` or `cancelled` (checked
    /// in the same statement, so no day starts once a pause has committed);
    /// [`StoreError::NotFound`] if it does not exist.
    async fn claim_model_day(
        &self,
        key: &ModelDayKey,
        stale_after: Duration,
    ) -> Result<Option<ModelDay>, StoreError>;

    /// [`claim_model_day`](ModelDayStore::claim_model_day) of the days of `models` on `date`
    /// of job `job_id`, in one statement (a worker's date at once): returns the days it
    /// claimed, in no set order. A model whose day is done, failed, freshly running elsewhere
    /// or does not exist is left out; nothing is claimed while the job is `paused` or
    /// `cancelled` (checked in the same statement).
    async fn claim_model_days(
        &self,
        job_id: &str,
        date: NaiveDate,
        models: &[String],
        stale_after: Duration,
    ) -> Result<Vec<ModelDay>, StoreError>;

    /// Completes a claimed (running) model-day with everything it produced, in one
    /// transaction: rows left by an earlier attempt are replaced, never duplicated.
    /// [`StoreError::Conflict`] if it is already completed or not claimed;
    /// [`StoreError::Invalid`] if money is not in the job's currency.
    async fn complete_model_day(
        &self,
        key: &ModelDayKey,
        outcome: &ModelDayOutcome,
    ) -> Result<ModelDay, StoreError>;

    /// [`complete_model_day`](ModelDayStore::complete_model_day) and the job event that reports
    /// it (`kind`, `payload`, as [`RunStore::append_job_event`](crate::RunStore::append_job_event)
    /// appends it) in the same transaction: the day and its event are kept or lost together.
    async fn complete_model_day_logged(
        &self,
        key: &ModelDayKey,
        outcome: &ModelDayOutcome,
        kind: &str,
        payload: &Value,
    ) -> Result<ModelDay, StoreError>;

    /// What a worker calls when the model-day it claimed (`claim`, as
    /// [`claim_model_day`](ModelDayStore::claim_model_day) returned it) is done: completes it
    /// with everything it produced and the job event that reports it (`kind`, `payload`), in
    /// one transaction, as [`complete_model_day_logged`](ModelDayStore::complete_model_day_logged)
    /// does, but as one batch of statements (SQLite: one round trip between `BEGIN` and
    /// `COMMIT`; PostgreSQL: one statement) and nothing read back. The day must still be
    /// running under this claim (same attempt): [`StoreError::Conflict`] if it is completed,
    /// not running, or claimed again since; [`StoreError::Invalid`] if money is not in the
    /// job's currency.
    async fn complete_claimed_model_day(
        &self,
        claim: &ModelDay,
        outcome: &ModelDayOutcome,
        kind: &str,
        payload: &Value,
    ) -> Result<(), StoreError>;

    /// [`complete_claimed_model_day`](ModelDayStore::complete_claimed_model_day) of several
    /// claimed days (a worker's date, or several) in one transaction (PostgreSQL: one statement
    /// for them all; SQLite: each day's statements in turn): one commit for them all, so a day
    /// is durable when its answer is `Ok`, and a process killed before the commit leaves every
    /// day of the batch `running` (to be reset and run again). If any day cannot be completed, or
    /// the batch fails, nothing of it is kept and each day is then completed on its own, in
    /// order, with its own answer (as `complete_claimed_model_day` gives it). Returns each
    /// day's answer, in the order of `days`.
    async fn complete_claimed_model_days(
        &self,
        days: &[ClaimedCompletion<'_>],
    ) -> Vec<Result<(), StoreError>>;

    /// Fails a pending or running model-day with `error` (no session counts).
    /// [`StoreError::Conflict`] if completed.
    async fn fail_model_day(&self, key: &ModelDayKey, error: &str) -> Result<ModelDay, StoreError> {
        self.stop_model_day(key, &ModelDayStop::failed(error)).await
    }

    /// Ends a pending or running model-day without results: `failed` or `refused` (by the
    /// kill switch), with why and its session's steps, tool calls and tool errors (they count
    /// on the leaderboard). [`StoreError::Conflict`] if completed; [`StoreError::Invalid`] for
    /// another status.
    async fn stop_model_day(
        &self,
        key: &ModelDayKey,
        stop: &ModelDayStop,
    ) -> Result<ModelDay, StoreError>;

    /// Crash recovery: every `running` model-day of the job back to `pending`. Returns how
    /// many were reset.
    async fn reset_running_model_days(&self, job_id: &str) -> Result<u64, StoreError>;

    /// Re-opens a finished job for a re-trigger: every `failed`, `refused` or `cancelled` model-day back to
    /// `pending` (error and session counts cleared) and, if there was any, the job back to `pending`. Completed model-days
    /// are untouched. Returns how many were reset.
    async fn retry_failed_model_days(&self, job_id: &str) -> Result<u64, StoreError>;

    async fn model_day(&self, key: &ModelDayKey) -> Result<ModelDay, StoreError>;

    /// The latest completed model-day of the same job and model before `key`'s date (the day
    /// whose end-of-day book `key` started from); `None` for the model's first day.
    async fn previous_completed_model_day(
        &self,
        key: &ModelDayKey,
    ) -> Result<Option<ModelDay>, StoreError>;

    async fn trades(&self, key: &ModelDayKey) -> Result<Vec<Trade>, StoreError>;

    async fn holdings(&self, key: &ModelDayKey) -> Result<Vec<Holding>, StoreError>;

    async fn reasoning_logs(&self, key: &ModelDayKey) -> Result<Vec<ReasoningMessage>, StoreError>;

    async fn tool_usage(&self, key: &ModelDayKey) -> Result<Vec<ToolCall>, StoreError>;

    /// What the models of job `job_id` remember: every completed day that stored a memory
    /// entry, by model then date; only `model`'s when given.
    async fn model_day_memories(
        &self,
        job_id: &str,
        model: Option<&str>,
    ) -> Result<Vec<ModelDayMemory>, StoreError>;
}

#[async_trait]
impl<D: Db> ModelDayStore for D {
    async fn unfinished_model_days(&self, job_id: &str) -> Result<Vec<ModelDay>, StoreError> {
        let rows: Vec<ModelDayRow> = sql(format!(
            "{MODEL_DAY_SELECT}WHERE d.job_id = $1 AND d.status IN ('pending', 'running') \
             ORDER BY d.date, d.model"
        ))
        .bind(job_id)
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::db("read a job's unfinished model-days"))?;
        rows.into_iter().map(ModelDayRow::into_model_day).collect()
    }

    async fn claim_model_day(
        &self,
        key: &ModelDayKey,
        stale_after: std::time::Duration,
    ) -> Result<Option<ModelDay>, StoreError> {
        let at = now();
        let stale = chrono::Duration::from_std(stale_after)
            .ok()
            .and_then(|d| at.checked_sub_signed(d))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        // One statement: the claimed row comes back through RETURNING.
        let claimed: Option<ModelDayRow> = sql(format!(
            "UPDATE job_details SET status = 'running', attempts = attempts + 1, \
             started_at = $4, finished_at = NULL, duration_ms = NULL, error = NULL \
             WHERE job_id = $1 AND model = $2 AND date = $3 \
             AND (status = 'pending' OR (status = 'running' AND started_at < $5)) \
             AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = $1 \
                             AND j.status IN ('paused', 'cancelled')){MODEL_DAY_RETURNING}"
        ))
        .bind(&key.job_id)
        .bind(&key.model)
        .bind(key.date)
        .bind(at)
        .bind(stale)
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::db("claim a model-day"))?;
        match claimed {
            Some(row) => row.into_model_day().map(Some),
            // Not claimable: NotFound if it does not exist at all.
            None => self.model_day(key).await.map(|_| None),
        }
    }

    async fn claim_model_days(
        &self,
        job_id: &str,
        date: NaiveDate,
        models: &[String],
        stale_after: std::time::Duration,
    ) -> Result<Vec<ModelDay>, StoreError> {
        let at = now();
        let stale = chrono::Duration::from_std(stale_after)
            .ok()
            .and_then(|d| at.checked_sub_signed(d))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        let mut claimed = Vec::with_capacity(models.len());
        // Far below both back ends' limits on bound parameters.
        for chunk in models.chunks(512) {
            let mut text = String::with_capacity(512 + chunk.len() * 6);
            text.push_str(
                "UPDATE job_details SET status = 'running', attempts = attempts + 1, \
                 started_at = $3, finished_at = NULL, duration_ms = NULL, error = NULL \
                 WHERE job_id = $1 AND date = $2 \
                 AND (status = 'pending' OR (status = 'running' AND started_at < $4)) \
                 AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = $1 \
                                 AND j.status IN ('paused', 'cancelled')) \
                 AND model IN (",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    text.push_str(", ");
                }
                text.push('$');
                text.push_str(&(i + 5).to_string());
            }
            text.push(')');
            text.push_str(MODEL_DAY_RETURNING);
            let mut statement = sql(text).bind(job_id).bind(date).bind(at).bind(stale);
            for model in chunk {
                statement = statement.bind(model);
            }
            let rows: Vec<ModelDayRow> = statement
                .fetch_all(self.pool())
                .await
                .map_err(StoreError::db("claim a date's model-days"))?;
            for row in rows {
                claimed.push(row.into_model_day()?);
            }
        }
        Ok(claimed)
    }

    async fn complete_model_day(
        &self,
        key: &ModelDayKey,
        outcome: &ModelDayOutcome,
    ) -> Result<ModelDay, StoreError> {
        complete(self, key, outcome, None).await
    }

    async fn complete_model_day_logged(
        &self,
        key: &ModelDayKey,
        outcome: &ModelDayOutcome,
        kind: &str,
        payload: &Value,
    ) -> Result<ModelDay, StoreError> {
        if kind.trim().is_empty() {
            return Err(StoreError::Invalid(format!(
                "event kind of job {} is empty",
                key.job_id
            )));
        }
        complete(self, key, outcome, Some((kind, payload))).await
    }

    async fn complete_claimed_model_day(
        &self,
        claim: &ModelDay,
        outcome: &ModelDayOutcome,
        kind: &str,
        payload: &Value,
    ) -> Result<(), StoreError> {
        complete_claimed(self, claim, outcome, kind, payload, now()).await
    }

    async fn complete_claimed_model_days(
        &self,
        days: &[ClaimedCompletion<'_>],
    ) -> Vec<Result<(), StoreError>> {
        if days.len() > 1 && complete_claimed_batch(self, days).await.is_ok() {
            return days.iter().map(|_| Ok(())).collect();
        }
        let mut answers = Vec::with_capacity(days.len());
        for day in days {
            answers.push(
                complete_claimed(
                    self,
                    day.claim,
                    day.outcome,
                    day.kind,
                    day.payload,
                    day.finished_at.trunc_subsecs(6),
                )
                .await,
            );
        }
        answers
    }

    async fn stop_model_day(
        &self,
        key: &ModelDayKey,
        stop: &ModelDayStop,
    ) -> Result<ModelDay, StoreError> {
        let status = match stop.status {
            ModelDayStatus::Failed | ModelDayStatus::Refused => stop.status.as_str(),
            other => {
                return Err(StoreError::Invalid(format!(
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
        let mut tx = self
            .begin()
            .await
            .map_err(StoreError::db("begin stopping a model-day"))?;
        let row: Option<(String, Option<DateTime<Utc>>)> =
            sql("UPDATE job_details SET status = status \
                 WHERE job_id = $1 AND model = $2 AND date = $3 \
                 RETURNING status, started_at")
            .bind(&key.job_id)
            .bind(&key.model)
            .bind(key.date)
            .fetch_optional(&mut tx)
            .await
            .map_err(StoreError::db("lock a model-day"))?;
        let (current, started) = row.ok_or_else(|| StoreError::not_found(key.to_string()))?;
        if current == "completed" {
            return Err(StoreError::Conflict(format!(
                "{key} is already completed; it cannot be {status}"
            )));
        }
        let duration_ms = started.map(|s| (at - s).num_milliseconds().max(0));
        sql(
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
        .execute(&mut tx)
        .await
        .map_err(StoreError::db("mark a model-day failed or refused"))?;
        tx.commit()
            .await
            .map_err(StoreError::db("commit a stopped model-day"))?;
        self.model_day(key).await
    }

    async fn reset_running_model_days(&self, job_id: &str) -> Result<u64, StoreError> {
        let done = sql(
            "UPDATE job_details SET status = 'pending', started_at = NULL \
             WHERE job_id = $1 AND status = 'running'",
        )
        .bind(job_id)
        .execute(self.pool())
        .await
        .map_err(StoreError::db("reset running model-days"))?;
        Ok(done.rows_affected())
    }

    async fn retry_failed_model_days(&self, job_id: &str) -> Result<u64, StoreError> {
        let mut tx = self
            .begin()
            .await
            .map_err(StoreError::db("begin a retry"))?;
        let done = sql(
            "UPDATE job_details SET status = 'pending', started_at = NULL, \
             finished_at = NULL, duration_ms = NULL, error = NULL, steps = NULL, \
             tool_calls = NULL, tool_errors = NULL \
             WHERE job_id = $1 AND status IN ('failed', 'refused', 'cancelled')",
        )
        .bind(job_id)
        .execute(&mut tx)
        .await
        .map_err(StoreError::db("reset failed model-days"))?;
        if done.rows_affected() > 0 {
            sql(
                "UPDATE jobs SET status = 'pending', finished_at = NULL, error = NULL \
                 WHERE id = $1",
            )
            .bind(job_id)
            .execute(&mut tx)
            .await
            .map_err(StoreError::db("reopen a job"))?;
        }
        tx.commit()
            .await
            .map_err(StoreError::db("commit a retry"))?;
        Ok(done.rows_affected())
    }

    async fn model_day(&self, key: &ModelDayKey) -> Result<ModelDay, StoreError> {
        model_day_row(self, key).await?.into_model_day()
    }

    async fn previous_completed_model_day(
        &self,
        key: &ModelDayKey,
    ) -> Result<Option<ModelDay>, StoreError> {
        let row: Option<ModelDayRow> = sql(format!(
            "{MODEL_DAY_SELECT}WHERE d.job_id = $1 AND d.model = $2 AND d.date < $3 \
             AND d.status = 'completed' ORDER BY d.date DESC LIMIT 1"
        ))
        .bind(&key.job_id)
        .bind(&key.model)
        .bind(key.date)
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::db("read the previous model-day"))?;
        row.map(ModelDayRow::into_model_day).transpose()
    }

    async fn trades(&self, key: &ModelDayKey) -> Result<Vec<Trade>, StoreError> {
        let ccy = model_day_row(self, key).await?.currency()?;
        let rows: Vec<TradeRow> = sql(
            "SELECT step, action, symbol, quantity, price, fee, cash_after \
             FROM positions WHERE job_id = $1 AND model = $2 AND date = $3 ORDER BY seq",
        )
        .bind(&key.job_id)
        .bind(&key.model)
        .bind(key.date)
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::db("read a model-day's trades"))?;
        rows.into_iter().map(|r| r.into_trade(ccy)).collect()
    }

    async fn holdings(&self, key: &ModelDayKey) -> Result<Vec<Holding>, StoreError> {
        let ccy = model_day_row(self, key).await?.currency()?;
        holdings_in(self, key, ccy).await
    }

    async fn reasoning_logs(&self, key: &ModelDayKey) -> Result<Vec<ReasoningMessage>, StoreError> {
        model_day_row(self, key).await?;
        let rows: Vec<ReasoningRow> = sql(
            "SELECT step, role, content, tool_calls, created_at FROM reasoning_logs \
             WHERE job_id = $1 AND model = $2 AND date = $3 ORDER BY seq",
        )
        .bind(&key.job_id)
        .bind(&key.model)
        .bind(key.date)
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::db("read a model-day's reasoning log"))?;
        rows.into_iter().map(ReasoningRow::into_message).collect()
    }

    async fn tool_usage(&self, key: &ModelDayKey) -> Result<Vec<ToolCall>, StoreError> {
        model_day_row(self, key).await?;
        let rows: Vec<ToolRow> = sql(
            "SELECT step, tool_name, args, result, latency_ms, error, created_at \
             FROM tool_usage WHERE job_id = $1 AND model = $2 AND date = $3 \
             ORDER BY seq",
        )
        .bind(&key.job_id)
        .bind(&key.model)
        .bind(key.date)
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::db("read a model-day's tool usage"))?;
        rows.into_iter().map(ToolRow::into_call).collect()
    }

    async fn model_day_memories(
        &self,
        job_id: &str,
        model: Option<&str>,
    ) -> Result<Vec<ModelDayMemory>, StoreError> {
        const SELECT: &str = "SELECT model, date, memory FROM job_details \
             WHERE job_id = $1 AND status = 'completed' AND memory IS NOT NULL";
        let statement = match model {
            Some(model) => sql(format!("{SELECT} AND model = $2 ORDER BY date"))
                .bind(job_id)
                .bind(model),
            None => sql(format!("{SELECT} ORDER BY model, date")).bind(job_id),
        };
        let rows: Vec<(String, NaiveDate, Json<Value>)> = statement
            .fetch_all(self.pool())
            .await
            .map_err(StoreError::db("read a job's model memories"))?;
        Ok(rows
            .into_iter()
            .map(|(model, date, memory)| ModelDayMemory {
                model,
                date,
                memory: memory.0,
            })
            .collect())
    }
}

/// Completes a claimed model-day with everything it produced and, if given, the job event
/// reporting it, in one transaction (see [`ModelDayStore::complete_model_day`]).
async fn complete<D: Db>(
    db: &D,
    key: &ModelDayKey,
    outcome: &ModelDayOutcome,
    event: Option<(&str, &Value)>,
) -> Result<ModelDay, StoreError> {
    let at = now();
    let mut tx = db
        .begin()
        .await
        .map_err(StoreError::db("begin completing a model-day"))?;
    // A no-op write that takes the row lock on PostgreSQL (SQLite already holds the write
    // lock) and returns the row, so its status cannot go stale before the commit.
    let row: Option<ModelDayRow> = sql(format!(
        "UPDATE job_details SET status = status \
         WHERE job_id = $1 AND model = $2 AND date = $3{MODEL_DAY_RETURNING}"
    ))
    .bind(&key.job_id)
    .bind(&key.model)
    .bind(key.date)
    .fetch_optional(&mut tx)
    .await
    .map_err(StoreError::db("lock a model-day"))?;
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
    let duration_ms = row.started_at().map(|s| (at - s).num_milliseconds().max(0));
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
    // Rows are only written by a completion, which a completed day refuses: an earlier
    // attempt can have left rows only if this is not the first claim.
    let earlier_attempts = row.attempts() > 1;
    for table in ["positions", "holdings", "reasoning_logs", "tool_usage"]
        .into_iter()
        .filter(|_| earlier_attempts)
    {
        sql(format!(
            "DELETE FROM {table} WHERE job_id = $1 AND model = $2 AND date = $3"
        ))
        .bind(&key.job_id)
        .bind(&key.model)
        .bind(key.date)
        .execute(&mut tx)
        .await
        .map_err(StoreError::db("delete rows of an earlier attempt"))?;
    }
    // Multi-row INSERTs (a few round trips, not one per row), in chunks that stay
    // far below both back ends' limits on bound parameters.
    const CHUNK: usize = 256;
    for (chunk_no, chunk) in outcome.trades.chunks(CHUNK).enumerate() {
        let mut insert = insert_values(
            "INSERT INTO positions (job_id, model, date, seq, step, action, symbol, \
             quantity, price, fee, cash_after)",
            chunk.len(),
            11,
        );
        for (i, t) in chunk.iter().enumerate() {
            insert = insert
                .bind(&key.job_id)
                .bind(&key.model)
                .bind(key.date)
                .bind((chunk_no * CHUNK + i) as i32)
                .bind(step_param(t.step)?)
                .bind(t.action.as_str())
                .bind(t.symbol.as_deref())
                .bind(Num::from_decimal(t.quantity))
                .bind(Num::from_decimal(t.price))
                .bind(same_currency(t.fee, ccy, "a trade's fee", key)?)
                .bind(same_currency(
                    t.cash_after,
                    ccy,
                    "a trade's cash after",
                    key,
                )?);
        }
        insert
            .execute(&mut tx)
            .await
            .map_err(StoreError::db("insert trades"))?;
    }
    for (chunk_no, chunk) in outcome.holdings.chunks(CHUNK).enumerate() {
        let mut insert = insert_values(
            "INSERT INTO holdings (job_id, model, date, seq, symbol, quantity, price, value)",
            chunk.len(),
            8,
        );
        for (i, h) in chunk.iter().enumerate() {
            insert = insert
                .bind(&key.job_id)
                .bind(&key.model)
                .bind(key.date)
                .bind((chunk_no * CHUNK + i) as i32)
                .bind(&h.symbol)
                .bind(Num::from_decimal(h.quantity))
                .bind(Num::from_decimal(h.price))
                .bind(same_currency(h.value, ccy, "a holding's value", key)?);
        }
        insert
            .execute(&mut tx)
            .await
            .map_err(StoreError::db("insert holdings"))?;
    }
    for (chunk_no, chunk) in outcome.reasoning.chunks(CHUNK).enumerate() {
        let mut insert = insert_values(
            "INSERT INTO reasoning_logs (job_id, model, date, seq, step, role, \
             content, tool_calls, created_at)",
            chunk.len(),
            9,
        );
        for (i, m) in chunk.iter().enumerate() {
            insert = insert
                .bind(&key.job_id)
                .bind(&key.model)
                .bind(key.date)
                .bind((chunk_no * CHUNK + i) as i32)
                .bind(step_param(m.step)?)
                .bind(&m.role)
                .bind(&m.content)
                .bind(m.tool_calls.as_ref().map(Json))
                .bind(m.created_at);
        }
        insert
            .execute(&mut tx)
            .await
            .map_err(StoreError::db("insert reasoning messages"))?;
    }
    for (chunk_no, chunk) in outcome.tool_calls.chunks(CHUNK).enumerate() {
        let mut insert = insert_values(
            "INSERT INTO tool_usage (job_id, model, date, seq, step, tool_name, \
             args, result, latency_ms, error, created_at)",
            chunk.len(),
            11,
        );
        for (i, c) in chunk.iter().enumerate() {
            insert = insert
                .bind(&key.job_id)
                .bind(&key.model)
                .bind(key.date)
                .bind((chunk_no * CHUNK + i) as i32)
                .bind(step_param(c.step)?)
                .bind(&c.tool)
                .bind(Json(&c.args))
                .bind(c.result.as_ref().map(Json))
                .bind(c.latency_ms)
                .bind(c.error.as_deref())
                .bind(c.created_at);
        }
        insert
            .execute(&mut tx)
            .await
            .map_err(StoreError::db("insert tool calls"))?;
    }
    let done: ModelDayRow = sql(format!(
        "UPDATE job_details SET status = 'completed', finished_at = $4, \
         duration_ms = $5, error = NULL, steps = $6, tool_errors = $7, cash = $8, \
         portfolio_value = $9, tool_calls = $10, memory = $11 \
         WHERE job_id = $1 AND model = $2 AND date = $3{MODEL_DAY_RETURNING}"
    ))
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
    .bind(outcome.memory.as_ref().map(Json))
    .fetch_one(&mut tx)
    .await
    .map_err(StoreError::db("mark a model-day completed"))?;
    if let Some((kind, payload)) = event {
        // Last, so that PostgreSQL's event-order lock is held only for the commit.
        lock_event_order::<D>(&mut tx).await?;
        sql(
            "INSERT INTO workflow_events (job_id, kind, node_id, payload, at) \
             VALUES ($1, $2, NULL, $3, $4)",
        )
        .bind(&key.job_id)
        .bind(kind)
        .bind(Json(payload))
        .bind(now())
        .execute(&mut tx)
        .await
        .map_err(StoreError::db("append a job event"))?;
    }
    tx.commit()
        .await
        .map_err(StoreError::db("commit a completed model-day"))?;
    done.into_model_day()
}

/// The completion of one claimed model-day as one statement of a fixed text (see
/// [`claimed_text`]): the day's key, counts and amounts as scalar parameters, and each table's
/// rows as one parameter, a JSON array of rows (each row an array of its values), which the
/// statement unpacks (`json_each` in SQLite, `jsonb_array_elements` in PostgreSQL). One text for
/// every day, whatever its row counts, so each connection prepares it once and reuses it
/// (PostgreSQL parsed and planned a statement of a new text for most days before).
///
/// Values keep the text they had as bound parameters, so the rows stored are the same: decimals
/// as [`Num`]'s text, JSON columns as JSON text inside a JSON string, timestamps as sqlx writes
/// them to SQLite (RFC 3339, `AutoSi`) or, for PostgreSQL, to the microsecond it keeps.
mod rows_param {
    /// The `$n` of each parameter of the completion statement.
    pub(super) const JOB_ID: usize = 1;
    pub(super) const MODEL: usize = 2;
    pub(super) const DATE: usize = 3;
    pub(super) const POSITIONS: usize = 15;
    pub(super) const HOLDINGS: usize = 16;
    pub(super) const REASONING: usize = 17;
    pub(super) const TOOL_USAGE: usize = 18;
}

/// The tables a completion writes rows to: the `$n` of their rows' parameter and their columns
/// after the key and `seq`, in the order of a row's values, with how each is carried.
const ROW_TABLES: [RowTable; 4] = [
    (
        "positions",
        rows_param::POSITIONS,
        &[
            ("step", ColumnType::Int),
            ("action", ColumnType::Text),
            ("symbol", ColumnType::Text),
            ("quantity", ColumnType::Numeric),
            ("price", ColumnType::Numeric),
            ("fee", ColumnType::Numeric),
            ("cash_after", ColumnType::Numeric),
        ],
    ),
    (
        "holdings",
        rows_param::HOLDINGS,
        &[
            ("symbol", ColumnType::Text),
            ("quantity", ColumnType::Numeric),
            ("price", ColumnType::Numeric),
            ("value", ColumnType::Numeric),
        ],
    ),
    (
        "reasoning_logs",
        rows_param::REASONING,
        &[
            ("step", ColumnType::Int),
            ("role", ColumnType::Text),
            ("content", ColumnType::Text),
            ("tool_calls", ColumnType::Json),
            ("created_at", ColumnType::Time),
        ],
    ),
    (
        "tool_usage",
        rows_param::TOOL_USAGE,
        &[
            ("step", ColumnType::Int),
            ("tool_name", ColumnType::Text),
            ("args", ColumnType::Json),
            ("result", ColumnType::Json),
            ("latency_ms", ColumnType::BigInt),
            ("error", ColumnType::Text),
            ("created_at", ColumnType::Time),
        ],
    ),
];

/// A table of [`ROW_TABLES`]: its name, the `$n` of its rows, its columns and their types.
type RowTable = (&'static str, usize, &'static [(&'static str, ColumnType)]);

/// The column list of an insert into a table of [`ROW_TABLES`] after the key and `seq`, and
/// the expressions reading each from a row `r.v` of its JSON (see [`ColumnType::read`]).
fn insert_columns(pg: bool, columns: &[(&str, ColumnType)]) -> (String, String) {
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    let values: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, (_, ty))| ty.read(pg, "r.v", i))
        .collect();
    (names.join(", "), values.join(", "))
}

/// How a column's value is carried in a row's JSON and turned back into the column's type.
#[derive(Clone, Copy)]
enum ColumnType {
    Int,
    BigInt,
    Text,
    /// [`Num`]'s text.
    Numeric,
    /// JSON text, as a JSON string.
    Json,
    /// A timestamp's text.
    Time,
}

impl ColumnType {
    /// The SQL reading the value at index `i` of row `v` as this type.
    fn read(self, pg: bool, v: &str, i: usize) -> String {
        if !pg {
            // SQLite: `->>` gives INTEGER for a JSON integer, TEXT for a string, NULL for null:
            // what binding the value gave.
            return format!("{v} ->> {i}");
        }
        let cast = match self {
            ColumnType::Int => "::int",
            ColumnType::BigInt => "::bigint",
            ColumnType::Text => "",
            ColumnType::Numeric => "::numeric",
            ColumnType::Json => "::jsonb",
            ColumnType::Time => "::timestamptz",
        };
        format!("({v} ->> {i}){cast}")
    }
}

/// The text of the statement completing a claimed model-day on `pg` (else SQLite), deleting an
/// earlier attempt's rows first when `earlier_attempts` (SQLite; PostgreSQL deletes them in
/// statements of their own, see [`delete_earlier_rows`]). Parameters: `$1`–`$3` the key, `$4`
/// finished at, `$5` duration ms, `$6` steps, `$7` tool errors, `$8` tool calls, `$9` memory,
/// `$10` cash, `$11` portfolio value, `$12` the claim's attempts, `$13`/`$14` the currency of the
/// amounts (code, precision), `$15`–`$18` the rows of each table (see [`ROW_TABLES`]), `$19` the
/// event's kind, `$20` its payload, `$21` its time.
///
/// The day is updated only if it is still running under this claim and the job's currency is
/// that of the amounts. SQLite runs the parts in order in one transaction (the RETURNING row
/// says the update matched; the caller rolls back if not). PostgreSQL runs one statement whose
/// other parts are data-modifying CTEs that write only if it matched; the event takes the
/// event-order lock (see `lock_event_order`) before its row takes a `seq`, held to the commit.
fn claimed_text(pg: bool, earlier_attempts: bool) -> String {
    let mut text = String::with_capacity(4096);
    let key = "job_id = $1 AND model = $2 AND date = $3";
    if pg {
        text.push_str("WITH d AS (");
    }
    text.push_str(&format!(
        "UPDATE job_details SET status = 'completed', error = NULL, finished_at = $4, \
         duration_ms = $5, steps = $6, tool_errors = $7, tool_calls = $8, memory = $9, \
         cash = $10, portfolio_value = $11 \
         WHERE {key} AND status = 'running' AND attempts = $12 \
         AND EXISTS (SELECT 1 FROM jobs j WHERE j.id = $1 AND j.currency = $13 \
         AND j.currency_precision = $14) RETURNING 1"
    ));
    text.push_str(if pg { ")" } else { ";\n" });
    if earlier_attempts && !pg {
        for (table, _, _) in ROW_TABLES {
            text.push_str(&format!("DELETE FROM {table} WHERE {key};\n"));
        }
    }
    for (part, (table, param, columns)) in ROW_TABLES.iter().enumerate() {
        let (names, values) = insert_columns(pg, columns);
        let (seq, from) = if pg {
            (
                "(r.n - 1)::int",
                // `jsonb`, not `json`: the array is parsed once, and each `->>` of a row is
                // a lookup; on `json` every `->>` lexed the row's text again (a row's values
                // are read one by one, and a message's content can be kilobytes), which was
                // the largest part of the server's time per completion.
                format!(
                    "jsonb_array_elements(${param}::jsonb) WITH ORDINALITY AS r (v, n) \
                     WHERE EXISTS (SELECT 1 FROM d)"
                ),
            )
        } else {
            // json_each's `key` of an array element is its index; `value` its JSON.
            (
                "r.key",
                format!("(SELECT key, value AS v FROM json_each(${param})) AS r"),
            )
        };
        if pg {
            text.push_str(&format!(", i{} AS (", part + 1));
        }
        text.push_str(&format!(
            "INSERT INTO {table} (job_id, model, date, seq, {names}) SELECT ${}, ${}, ${}, {seq}, {values} FROM {from}",
            rows_param::JOB_ID,
            rows_param::MODEL,
            rows_param::DATE,
        ));
        text.push_str(if pg { ")" } else { ";\n" });
    }
    if pg {
        text.push_str(
            " INSERT INTO workflow_events (job_id, kind, node_id, payload, at) \
             SELECT $1, $19, NULL, $20, $21 \
             FROM d, (SELECT pg_advisory_xact_lock(7314200007)) AS l",
        );
    } else {
        text.push_str(
            "INSERT INTO workflow_events (job_id, kind, node_id, payload, at) \
             VALUES ($1, $19, NULL, $20, $21)",
        );
    }
    text
}

/// The texts of [`claimed_text`], built once: PostgreSQL, SQLite, SQLite after an earlier attempt.
fn claimed_texts(pg: bool, earlier_attempts: bool) -> &'static str {
    static TEXTS: std::sync::LazyLock<[String; 3]> = std::sync::LazyLock::new(|| {
        [
            claimed_text(true, false),
            claimed_text(false, false),
            claimed_text(false, true),
        ]
    });
    match (pg, earlier_attempts) {
        (true, _) => &TEXTS[0],
        (false, false) => &TEXTS[1],
        (false, true) => &TEXTS[2],
    }
}

/// One table's rows as the JSON array parameter of the completion statement.
struct RowsJson {
    out: String,
    pg: bool,
    /// At the start of a row (no `,` before its first value).
    row_start: bool,
}

impl RowsJson {
    fn new(pg: bool) -> Self {
        RowsJson {
            out: String::from("["),
            pg,
            row_start: true,
        }
    }

    fn row(&mut self) {
        if self.out.len() > 1 {
            self.out.push(',');
        }
        self.out.push('[');
        self.row_start = true;
    }

    fn end_row(&mut self) {
        self.out.push(']');
    }

    fn sep(&mut self) {
        if !self.row_start {
            self.out.push(',');
        }
        self.row_start = false;
    }

    fn int(&mut self, value: i64) {
        self.sep();
        self.out.push_str(&value.to_string());
    }

    /// A JSON string of `value` (null if `None`).
    fn text(&mut self, value: Option<&str>) {
        self.sep();
        match value {
            // Writing a string into a String cannot fail.
            Some(text) => {
                let quoted = serde_json::to_string(text).unwrap_or_default();
                self.out.push_str(&quoted);
            }
            None => self.out.push_str("null"),
        }
    }

    fn num(&mut self, value: Num) {
        self.text(Some(&value.text()));
    }

    /// JSON text as a JSON string: the text SQLite stores, or PostgreSQL's `jsonb` input.
    fn json(&mut self, value: Option<&Value>) {
        let text = value.map(Value::to_string);
        self.text(text.as_deref());
    }

    /// A timestamp as the back end keeps it bound: SQLite's text as sqlx-sqlite writes it,
    /// PostgreSQL's to the microsecond (sqlx truncates to it).
    fn time(&mut self, at: DateTime<Utc>) {
        let text = if self.pg {
            at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        } else {
            at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
        };
        self.text(Some(&text));
    }

    fn finish(mut self) -> String {
        self.out.push(']');
        self.out
    }
}

/// What completing one claimed model-day writes, checked and encoded but not bound: the
/// day's values and its rows (see [`RowsJson`]), for one day's statement or a batch's.
struct ClaimedParts {
    key: ModelDayKey,
    /// The currency of the amounts (the statement checks it is the job's).
    ccy: Currency,
    /// An earlier attempt may have left rows (PostgreSQL deletes them in statements of their
    /// own; SQLite's script does it).
    earlier_attempts: bool,
    at: DateTime<Utc>,
    duration_ms: Option<i64>,
    steps: i32,
    tool_errors: i32,
    tool_calls: i32,
    cash: Num,
    portfolio_value: Num,
    attempts: i32,
    /// The JSON array of each table's rows, in the order of [`ROW_TABLES`].
    rows: [String; 4],
}

/// Checks and encodes what completing `claim` (finished at `at`) writes.
fn claimed_parts(
    pg: bool,
    claim: &ModelDay,
    outcome: &ModelDayOutcome,
    kind: &str,
    at: DateTime<Utc>,
) -> Result<ClaimedParts, StoreError> {
    let key = ModelDayKey::new(&claim.job_id, claim.model.clone(), claim.date);
    let key = &key;
    if kind.trim().is_empty() {
        return Err(StoreError::Invalid(format!(
            "event kind of job {} is empty",
            key.job_id
        )));
    }
    for symbol in outcome
        .holdings
        .iter()
        .map(|h| h.symbol.as_str())
        .chain(outcome.trades.iter().filter_map(|t| t.symbol.as_deref()))
    {
        check_symbol(symbol, key)?;
    }
    // Every amount in the currency of the cash; the statement checks that it is the job's.
    let ccy = outcome.cash.currency();
    let duration_ms = claim.started_at.map(|s| (at - s).num_milliseconds().max(0));
    let attempts = i32::try_from(claim.attempts)
        .map_err(|_| StoreError::Invalid(format!("{key}: attempts out of range")))?;
    let earlier_attempts = claim.attempts > 1;

    let mut positions = RowsJson::new(pg);
    for t in &outcome.trades {
        positions.row();
        positions.int(i64::from(step_param(t.step)?));
        positions.text(Some(t.action.as_str()));
        positions.text(t.symbol.as_deref());
        positions.num(Num::from_decimal(t.quantity));
        positions.num(Num::from_decimal(t.price));
        positions.num(same_currency(t.fee, ccy, "a trade's fee", key)?);
        positions.num(same_currency(
            t.cash_after,
            ccy,
            "a trade's cash after",
            key,
        )?);
        positions.end_row();
    }
    let mut holdings = RowsJson::new(pg);
    for h in &outcome.holdings {
        holdings.row();
        holdings.text(Some(&h.symbol));
        holdings.num(Num::from_decimal(h.quantity));
        holdings.num(Num::from_decimal(h.price));
        holdings.num(same_currency(h.value, ccy, "a holding's value", key)?);
        holdings.end_row();
    }
    let mut reasoning = RowsJson::new(pg);
    for m in &outcome.reasoning {
        reasoning.row();
        reasoning.int(i64::from(step_param(m.step)?));
        reasoning.text(Some(&m.role));
        reasoning.text(Some(&m.content));
        reasoning.json(m.tool_calls.as_ref());
        reasoning.time(m.created_at);
        reasoning.end_row();
    }
    let mut tools = RowsJson::new(pg);
    for c in &outcome.tool_calls {
        tools.row();
        tools.int(i64::from(step_param(c.step)?));
        tools.text(Some(&c.tool));
        tools.json(Some(&c.args));
        tools.json(c.result.as_ref());
        tools.int(c.latency_ms);
        tools.text(c.error.as_deref());
        tools.time(c.created_at);
        tools.end_row();
    }
    Ok(ClaimedParts {
        key: key.clone(),
        ccy,
        earlier_attempts,
        at,
        duration_ms,
        steps: step_param(outcome.steps)?,
        tool_errors: step_param(outcome.tool_errors())?,
        tool_calls: step_param(outcome.tool_call_count())?,
        cash: Num::from_money(outcome.cash),
        portfolio_value: same_currency(outcome.portfolio_value, ccy, "portfolio value", key)?,
        attempts,
        rows: [
            positions.finish(),
            holdings.finish(),
            reasoning.finish(),
            tools.finish(),
        ],
    })
}

/// The statement that completes one claimed model-day (see
/// [`ModelDayStore::complete_claimed_model_day`]), checked and built but not run.
struct ClaimedStatement {
    statement: Statement,
    key: ModelDayKey,
    /// The currency of the amounts (the statement checks it is the job's).
    ccy: Currency,
    /// See [`ClaimedParts::earlier_attempts`].
    earlier_attempts: bool,
}

/// Checks and builds the statement completing `claim` (finished at `at`).
fn claimed_statement<D: Db>(
    claim: &ModelDay,
    outcome: &ModelDayOutcome,
    kind: &str,
    payload: &Value,
    at: DateTime<Utc>,
) -> Result<ClaimedStatement, StoreError> {
    let pg = D::BACKEND == Backend::Postgres;
    let parts = claimed_parts(pg, claim, outcome, kind, at)?;
    let [positions, holdings, reasoning, tools] = parts.rows;
    let key = parts.key;
    // The memory column: JSON text on SQLite (as sqlx-sqlite writes it), `jsonb` on PostgreSQL.
    let memory: Arg = if pg {
        outcome.memory.as_ref().map(Json).into()
    } else {
        outcome.memory.as_ref().map(Value::to_string).into()
    };
    let statement = sql(claimed_texts(pg, parts.earlier_attempts))
        .bind(&key.job_id)
        .bind(&key.model)
        .bind(key.date)
        .bind(parts.at)
        .bind(parts.duration_ms)
        .bind(parts.steps)
        .bind(parts.tool_errors)
        .bind(parts.tool_calls)
        .bind(memory)
        .bind(parts.cash)
        .bind(parts.portfolio_value)
        .bind(parts.attempts)
        .bind(parts.ccy.code())
        .bind(i32::from(parts.ccy.precision()))
        .bind(positions)
        .bind(holdings)
        .bind(reasoning)
        .bind(tools)
        .bind(kind)
        .bind(Json(payload))
        .bind(now());
    Ok(ClaimedStatement {
        statement,
        key,
        ccy: parts.ccy,
        earlier_attempts: parts.earlier_attempts,
    })
}

/// The rows an earlier attempt of `key` may have left, deleted in `tx` (PostgreSQL; SQLite's
/// completion script deletes them itself).
async fn delete_earlier_rows<D: Db>(
    tx: &mut Tx<D::Driver>,
    key: &ModelDayKey,
) -> Result<(), StoreError> {
    for table in ["positions", "holdings", "reasoning_logs", "tool_usage"] {
        sql(format!(
            "DELETE FROM {table} WHERE job_id = $1 AND model = $2 AND date = $3"
        ))
        .bind(&key.job_id)
        .bind(&key.model)
        .bind(key.date)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::db("delete rows of an earlier attempt"))?;
    }
    Ok(())
}

/// The text of the statement completing a batch of claimed model-days on PostgreSQL, every day
/// at once (one round trip and one executor start-up, where a statement per day took one each).
/// Parameters: `$1` the days, a JSON array of one array per day (see [`batch_days_json`]); `$2`–`$5`
/// the rows of each table (see [`ROW_TABLES`]), a JSON array of each day's array of rows, in the
/// order of the days.
///
/// As [`claimed_text`] for one day: a day is updated only if it is still running under its claim
/// and the job's currency is that of its amounts, and only an updated day's rows and event are
/// written; the caller checks that every day was (the statement's rows are the events) and rolls
/// back if not. The events are appended in the order of the days, under the event-order lock.
fn batch_text() -> &'static str {
    static TEXT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let mut text = String::with_capacity(4096);
        text.push_str(
            "WITH b AS (SELECT x.n AS di, x.v ->> 0 AS job_id, x.v ->> 1 AS model, \
             (x.v ->> 2)::date AS date, (x.v ->> 3)::timestamptz AS finished_at, \
             (x.v ->> 4)::bigint AS duration_ms, (x.v ->> 5)::int AS steps, \
             (x.v ->> 6)::int AS tool_errors, (x.v ->> 7)::int AS tool_calls, \
             (x.v ->> 8)::jsonb AS memory, (x.v ->> 9)::numeric AS cash, \
             (x.v ->> 10)::numeric AS portfolio_value, (x.v ->> 11)::int AS attempts, \
             x.v ->> 12 AS currency, (x.v ->> 13)::int AS currency_precision, \
             x.v ->> 14 AS kind, (x.v ->> 15)::jsonb AS payload, (x.v ->> 16)::timestamptz AS at \
             FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS x (v, n)), \
             d AS (UPDATE job_details t SET status = 'completed', error = NULL, \
             finished_at = b.finished_at, duration_ms = b.duration_ms, steps = b.steps, \
             tool_errors = b.tool_errors, tool_calls = b.tool_calls, memory = b.memory, \
             cash = b.cash, portfolio_value = b.portfolio_value FROM b \
             WHERE t.job_id = b.job_id AND t.model = b.model AND t.date = b.date \
             AND t.status = 'running' AND t.attempts = b.attempts \
             AND EXISTS (SELECT 1 FROM jobs j WHERE j.id = b.job_id AND j.currency = b.currency \
             AND j.currency_precision = b.currency_precision) \
             RETURNING b.di, b.job_id, b.model, b.date, b.kind, b.payload, b.at)",
        );
        for (part, (table, _, columns)) in ROW_TABLES.iter().enumerate() {
            let (names, values) = insert_columns(true, columns);
            text.push_str(&format!(
                ", i{n} AS (INSERT INTO {table} (job_id, model, date, seq, {names}) \
                 SELECT d.job_id, d.model, d.date, (r.n - 1)::int, {values} \
                 FROM d JOIN jsonb_array_elements(${p}::jsonb) WITH ORDINALITY AS e (rows, di) \
                 ON e.di = d.di, jsonb_array_elements(e.rows) WITH ORDINALITY AS r (v, n))",
                n = part + 1,
                p = part + 2,
            ));
        }
        text.push_str(
            " INSERT INTO workflow_events (job_id, kind, node_id, payload, at) \
             SELECT d.job_id, d.kind, NULL, d.payload, d.at \
             FROM d, (SELECT pg_advisory_xact_lock(7314200007)) AS l ORDER BY d.di",
        );
        text
    });
    &TEXT
}

/// The days of a batch as [`batch_text`]'s `$1`: per day its key, finished at, duration ms,
/// steps, tool errors, tool calls, memory (JSON text), cash, portfolio value, the claim's
/// attempts, the currency of the amounts (code, precision), the event's kind, payload (JSON
/// text) and time.
fn batch_days_json(days: &[(&ClaimedParts, &ClaimedCompletion<'_>)]) -> String {
    let mut out = RowsJson::new(true);
    let at = now();
    for (parts, day) in days {
        out.row();
        out.text(Some(&parts.key.job_id));
        out.text(Some(&parts.key.model));
        out.text(Some(&parts.key.date.to_string()));
        out.time(parts.at);
        match parts.duration_ms {
            Some(ms) => out.int(ms),
            None => out.text(None),
        }
        out.int(i64::from(parts.steps));
        out.int(i64::from(parts.tool_errors));
        out.int(i64::from(parts.tool_calls));
        out.json(day.outcome.memory.as_ref());
        out.num(parts.cash);
        out.num(parts.portfolio_value);
        out.int(i64::from(parts.attempts));
        out.text(Some(parts.ccy.code()));
        out.int(i64::from(parts.ccy.precision()));
        out.text(Some(day.kind));
        out.json(Some(day.payload));
        out.time(at);
        out.end_row();
    }
    out.finish()
}

/// The fast path of [`ModelDayStore::complete_claimed_model_days`]: every day in one
/// transaction, committed only if each day's update matched (its claim still holds). `Err`
/// (nothing kept) if any day cannot be completed or the database failed; the caller then
/// completes the days one by one, which says why.
async fn complete_claimed_batch<D: Db>(
    db: &D,
    days: &[ClaimedCompletion<'_>],
) -> Result<(), StoreError> {
    if D::BACKEND == Backend::Postgres {
        return complete_claimed_batch_pg(db, days).await;
    }
    let mut statements = Vec::with_capacity(days.len());
    for day in days {
        statements.push(claimed_statement::<D>(
            day.claim,
            day.outcome,
            day.kind,
            day.payload,
            day.finished_at.trunc_subsecs(6),
        )?);
    }
    let mut tx = db
        .begin()
        .await
        .map_err(StoreError::db("begin completing model-days"))?;
    // Each day's statement as `complete_claimed_model_day` runs it (so a prepared statement
    // of its shape is reused from the connection's cache; one script of every day would be a
    // new text each time), in one transaction with one commit.
    for day in statements {
        // The update's RETURNING row says it matched.
        let rows: Vec<(i32,)> = day
            .statement
            .fetch_all(&mut tx)
            .await
            .map_err(StoreError::db("complete a model-day"))?;
        if rows.len() != 1 {
            return Err(batch_unmatched());
        }
    }
    tx.commit()
        .await
        .map_err(StoreError::db("commit completed model-days"))
}

/// A day of a batch could not be completed (the batch is rolled back).
fn batch_unmatched() -> StoreError {
    StoreError::Conflict("a model-day of the batch could not be completed".into())
}

/// [`complete_claimed_batch`] on PostgreSQL: the rows an earlier attempt of a day left are
/// deleted, then one statement ([`batch_text`]) completes every day, in one transaction.
async fn complete_claimed_batch_pg<D: Db>(
    db: &D,
    days: &[ClaimedCompletion<'_>],
) -> Result<(), StoreError> {
    let mut parts = Vec::with_capacity(days.len());
    for day in days {
        parts.push(claimed_parts(
            true,
            day.claim,
            day.outcome,
            day.kind,
            day.finished_at.trunc_subsecs(6),
        )?);
    }
    let pairs: Vec<(&ClaimedParts, &ClaimedCompletion<'_>)> = parts.iter().zip(days).collect();
    let mut statement = sql(batch_text()).bind(batch_days_json(&pairs));
    for table in 0..ROW_TABLES.len() {
        let mut rows = String::from("[");
        for (i, day) in parts.iter().enumerate() {
            if i > 0 {
                rows.push(',');
            }
            rows.push_str(&day.rows[table]);
        }
        rows.push(']');
        statement = statement.bind(rows);
    }
    let mut tx = db
        .begin()
        .await
        .map_err(StoreError::db("begin completing model-days"))?;
    for day in parts.iter().filter(|p| p.earlier_attempts) {
        delete_earlier_rows::<D>(&mut tx, &day.key).await?;
    }
    let done = statement
        .execute(&mut tx)
        .await
        .map_err(StoreError::db("complete model-days"))?;
    // One event per day completed.
    if done.rows_affected() != days.len() as u64 {
        return Err(batch_unmatched());
    }
    tx.commit()
        .await
        .map_err(StoreError::db("commit completed model-days"))
}

/// See [`ModelDayStore::complete_claimed_model_day`]; the day finished at `at`.
async fn complete_claimed<D: Db>(
    db: &D,
    claim: &ModelDay,
    outcome: &ModelDayOutcome,
    kind: &str,
    payload: &Value,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let ClaimedStatement {
        statement,
        key,
        ccy,
        earlier_attempts,
    } = claimed_statement::<D>(claim, outcome, kind, payload, at)?;
    let pg = D::BACKEND == Backend::Postgres;
    let matched = if pg {
        if earlier_attempts {
            let mut tx = db
                .begin()
                .await
                .map_err(StoreError::db("begin completing a model-day"))?;
            delete_earlier_rows::<D>(&mut tx, &key).await?;
            let done = statement
                .execute(&mut tx)
                .await
                .map_err(StoreError::db("complete a model-day"))?;
            if done.rows_affected() == 1 {
                tx.commit()
                    .await
                    .map_err(StoreError::db("commit a completed model-day"))?;
            }
            done.rows_affected() == 1
        } else {
            let done = statement
                .execute(db.pool())
                .await
                .map_err(StoreError::db("complete a model-day"))?;
            done.rows_affected() == 1
        }
    } else {
        let mut tx = db
            .begin()
            .await
            .map_err(StoreError::db("begin completing a model-day"))?;
        let written: Result<Vec<(i32,)>, _> = statement.fetch_all(&mut tx).await;
        match written {
            Ok(rows) if rows.len() == 1 => {
                tx.commit()
                    .await
                    .map_err(StoreError::db("commit a completed model-day"))?;
                true
            }
            Ok(_) => false,
            Err(e) => {
                drop(tx);
                // Say why the day could not complete, if that is why the batch failed (a
                // later claim's rows would collide with ours).
                not_completable(db, claim, ccy).await?;
                return Err(StoreError::db("complete a model-day")(e));
            }
        }
    };
    if matched {
        return Ok(());
    }
    not_completable(db, claim, ccy).await?;
    Err(StoreError::Conflict(format!(
        "{key} could not be completed"
    )))
}

/// Why the model-day of `claim` cannot be completed with amounts in `ccy` (as an error), or
/// `Ok` if it can.
async fn not_completable<D: Db>(db: &D, claim: &ModelDay, ccy: Currency) -> Result<(), StoreError> {
    let key = ModelDayKey::new(&claim.job_id, claim.model.clone(), claim.date);
    let row = model_day_row(db, &key).await?;
    let job_ccy = row.currency()?;
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
    if i64::from(row.attempts()) != i64::from(claim.attempts) {
        return Err(StoreError::Conflict(format!(
            "{key} was claimed again (attempt {}) since this claim (attempt {})",
            row.attempts(),
            claim.attempts
        )));
    }
    if job_ccy != ccy {
        return Err(StoreError::Invalid(format!(
            "cash of {key} is in {ccy}, but the job's currency is {job_ccy}"
        )));
    }
    Ok(())
}

async fn model_day_row<D: Db>(db: &D, key: &ModelDayKey) -> Result<ModelDayRow, StoreError> {
    let row: Option<ModelDayRow> = sql(format!(
        "{MODEL_DAY_SELECT}WHERE d.job_id = $1 AND d.model = $2 AND d.date = $3"
    ))
    .bind(&key.job_id)
    .bind(&key.model)
    .bind(key.date)
    .fetch_optional(db.pool())
    .await
    .map_err(StoreError::db("read a model-day"))?;
    row.ok_or_else(|| StoreError::not_found(key.to_string()))
}

async fn holdings_in<D: Db>(
    db: &D,
    key: &ModelDayKey,
    ccy: tradeloom_core::Currency,
) -> Result<Vec<Holding>, StoreError> {
    let rows: Vec<HoldingRow> = sql("SELECT symbol, quantity, price, value FROM holdings \
         WHERE job_id = $1 AND model = $2 AND date = $3 ORDER BY seq")
    .bind(&key.job_id)
    .bind(&key.model)
    .bind(key.date)
    .fetch_all(db.pool())
    .await
    .map_err(StoreError::db("read a model-day's holdings"))?;
    rows.into_iter().map(|r| r.into_holding(ccy)).collect()
}

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
