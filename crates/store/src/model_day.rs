//! Model-days: one model trading one date of a job, and everything it produced — trading
//! actions, the end-of-day holdings, the reasoning log and the tool calls.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use tradeloom_core::{Decimal, Money};

/// Which model-day: `(job_id, model, date)` is unique.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct ModelDayKey {
    pub job_id: String,
    pub model: String,
    pub date: NaiveDate,
}

impl ModelDayKey {
    pub fn new(job_id: impl Into<String>, model: impl Into<String>, date: NaiveDate) -> Self {
        Self {
            job_id: job_id.into(),
            model: model.into(),
            date,
        }
    }
}

impl fmt::Display for ModelDayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "model-day (job {}, model `{}`, date {})",
            self.job_id, self.model, self.date
        )
    }
}

/// Status of one model-day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelDayStatus {
    Pending,
    Running,
    Completed,
    Failed,
    /// Not traded because the kill switch was engaged (`error` starts with
    /// `risk.kill_switch`). Like a failed day it has no results and runs again when the same
    /// config is triggered again.
    Refused,
    /// Not started because its job was cancelled (`POST /simulate/{job_id}/cancel`). No
    /// results; it runs when the same config is triggered again.
    Cancelled,
}

impl ModelDayStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            ModelDayStatus::Pending => "pending",
            ModelDayStatus::Running => "running",
            ModelDayStatus::Completed => "completed",
            ModelDayStatus::Failed => "failed",
            ModelDayStatus::Refused => "refused",
            ModelDayStatus::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for ModelDayStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ModelDayStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "pending" => ModelDayStatus::Pending,
            "running" => ModelDayStatus::Running,
            "completed" => ModelDayStatus::Completed,
            "failed" => ModelDayStatus::Failed,
            "refused" => ModelDayStatus::Refused,
            "cancelled" => ModelDayStatus::Cancelled,
            other => {
                return Err(format!(
                    "unknown model-day status `{other}`; expected pending, running, completed, failed, refused or cancelled"
                ));
            }
        })
    }
}

/// A model-day as stored (a `job_details` row).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelDay {
    pub job_id: String,
    pub model: String,
    pub date: NaiveDate,
    pub status: ModelDayStatus,
    /// How many times it was claimed (1 on a first, uninterrupted run).
    pub attempts: u32,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// `finished_at - started_at` of the last attempt, in milliseconds.
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    /// Agent steps of the session (completed, or failed/refused after it started).
    pub steps: Option<u32>,
    /// Tool calls the model made in the session; `Some(0)` for a model that never called a
    /// tool, `None` when no session ran (or the day is older than this count).
    pub tool_calls: Option<u32>,
    /// Tool calls that returned an error in the session, whichever way it ended.
    pub tool_errors: Option<u32>,
    /// Cash at the end of the day.
    pub cash: Option<Money>,
    /// Cash plus holdings at the end of the day.
    pub portfolio_value: Option<Money>,
}

impl ModelDay {
    pub fn key(&self) -> ModelDayKey {
        ModelDayKey::new(self.job_id.clone(), self.model.clone(), self.date)
    }
}

/// What a trading action did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TradeAction {
    Buy,
    Sell,
    Hold,
}

impl TradeAction {
    pub const fn as_str(self) -> &'static str {
        match self {
            TradeAction::Buy => "buy",
            TradeAction::Sell => "sell",
            TradeAction::Hold => "hold",
        }
    }
}

impl FromStr for TradeAction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "buy" => TradeAction::Buy,
            "sell" => TradeAction::Sell,
            "hold" => TradeAction::Hold,
            other => {
                return Err(format!(
                    "unknown trade action `{other}`; expected buy, sell or hold"
                ));
            }
        })
    }
}

/// One trading action of a model-day (a `positions` row). Prices and quantities are exact
/// decimals; money is in the job's currency.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Trade {
    /// The agent step that produced it.
    pub step: u32,
    pub action: TradeAction,
    /// `None` for a hold of the whole portfolio.
    pub symbol: Option<String>,
    pub quantity: Decimal,
    pub price: Decimal,
    pub fee: Money,
    pub cash_after: Money,
}

/// End-of-day holding of one symbol (a `holdings` row): `value = quantity × price`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Holding {
    pub symbol: String,
    pub quantity: Decimal,
    pub price: Decimal,
    pub value: Money,
}

/// One message of the model-day's session (a `reasoning_logs` row).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReasoningMessage {
    pub step: u32,
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    pub content: String,
    /// The assistant's tool calls as the provider returned them.
    pub tool_calls: Option<Value>,
    pub created_at: DateTime<Utc>,
}

/// One tool call of the model-day's session (a `tool_usage` row).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ToolCall {
    pub step: u32,
    pub tool: String,
    pub args: Value,
    pub result: Option<Value>,
    pub latency_ms: i64,
    /// Why the call failed, if it did.
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Everything a finished model-day session produced, written in one transaction by
/// [`crate::ModelDayStore::complete_model_day`]. Lists keep their order when read back.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelDayOutcome {
    pub steps: u32,
    pub cash: Money,
    pub portfolio_value: Money,
    pub trades: Vec<Trade>,
    pub holdings: Vec<Holding>,
    pub reasoning: Vec<ReasoningMessage>,
    pub tool_calls: Vec<ToolCall>,
    /// What the model remembers of the day (the agents' memory entry, JSON), when its memory is
    /// on: read back by [`crate::ModelDayStore::model_day_memories`].
    pub memory: Option<Value>,
}

impl ModelDayOutcome {
    /// Tool calls that returned an error.
    pub fn tool_errors(&self) -> u32 {
        self.tool_calls.iter().filter(|c| c.error.is_some()).count() as u32
    }

    /// Tool calls the model made. Step 0 is before the model's first turn: what is logged
    /// there (a kill-switch liquidation) was done for the model, not asked by it.
    pub fn tool_call_count(&self) -> u32 {
        self.tool_calls.iter().filter(|c| c.step > 0).count() as u32
    }
}

/// One claimed model-day's completion, as
/// [`crate::ModelDayStore::complete_claimed_model_days`] writes it: the claim (as
/// [`crate::ModelDayStore::claim_model_day`] returned it), what the day produced, the job event
/// that reports it (`kind`, `payload`) and when it finished.
#[derive(Clone, Copy, Debug)]
pub struct ClaimedCompletion<'a> {
    pub claim: &'a ModelDay,
    pub outcome: &'a ModelDayOutcome,
    pub kind: &'a str,
    pub payload: &'a serde_json::Value,
    /// When the day's session ended (`finished_at`; `duration_ms` counts from the claim).
    pub finished_at: DateTime<Utc>,
}

/// How a model-day ended without results ([`crate::ModelDayStore::stop_model_day`]): `failed` or
/// `refused`, why, and what its session did before it ended (`None` when no session ran).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelDayStop {
    /// [`ModelDayStatus::Failed`] or [`ModelDayStatus::Refused`].
    pub status: ModelDayStatus,
    pub error: String,
    pub steps: Option<u32>,
    pub tool_calls: Option<u32>,
    pub tool_errors: Option<u32>,
}

impl ModelDayStop {
    /// A failure before any session ran.
    pub fn failed(error: impl Into<String>) -> Self {
        Self {
            status: ModelDayStatus::Failed,
            error: error.into(),
            steps: None,
            tool_calls: None,
            tool_errors: None,
        }
    }
}

/// What a model remembers of one completed day (see [`ModelDayOutcome::memory`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelDayMemory {
    pub model: String,
    pub date: NaiveDate,
    pub memory: Value,
}
