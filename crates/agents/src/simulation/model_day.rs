//! One model-day: run the session of a claimed day and record how it ended; a date's
//! finished days are completed in the store together.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use serde_json::{Value, json};
use tokio::sync::broadcast;
use tradeloom_core::{Decimal, Money, Quantity};

use tradeloom_llm::LlmProvider;

use tradeloom_store::{
    ClaimedCompletion, ModelDay, ModelDayKey, ModelDayOutcome, ModelDayStatus, ModelDayStop, Store,
    StoreError, TradeAction,
};

use super::market::{Market, ProviderError};
use super::simulator::SimEvent;
use crate::book::Book;
use crate::config::ResolvedConfig;
use crate::error::AgentError;
use crate::job_folder::{write_model_day, write_model_day_error};
use crate::memory::{MemoryConfig, MemoryEntry, memory_section, reflect};
use crate::order_gate::OrderGate;
use crate::session::{SessionExtras, SessionLimits, SessionReport, run_session_gated};
use crate::tools::SessionView;

/// How long a `running` model-day may go without finishing before another worker may take it
/// over. Interrupted days are reset on start-up, so this only matters for a worker that hangs.
pub(super) const STALE_AFTER: Duration = Duration::from_secs(3600);

pub(super) fn whole_shares(quantity: Decimal) -> Result<Quantity, AgentError> {
    quantity.to_quantity(0).map_err(|e| {
        AgentError::Store(StoreError::Invalid(format!(
            "stored holding quantity {quantity} is not whole shares: {e}"
        )))
    })
}

/// Everything one model-day task needs; nothing is shared mutably between tasks.
pub(super) struct DayContext {
    pub(super) store: Arc<dyn Store>,
    pub(super) data_dir: PathBuf,
    pub(super) key: ModelDayKey,
    pub(super) book: Book,
    pub(super) provider: Result<Arc<dyn LlmProvider>, ProviderError>,
    pub(super) config: Arc<ResolvedConfig>,
    pub(super) market: Arc<Market>,
    pub(super) symbols: Arc<Vec<String>>,
    pub(super) events: broadcast::Sender<SimEvent>,
    pub(super) gate: OrderGate,
    /// The model's memory settings and what it remembers of its earlier days (date order).
    pub(super) memory: Option<(MemoryConfig, Arc<Vec<MemoryEntry>>)>,
}

/// How one model-day task ended.
pub(super) enum DayEnd {
    /// Its session produced an outcome: to be completed in the store with the other days of
    /// its date (see [`commit_finished`]).
    Finished(Box<FinishedDay>),
    /// Failed, and recorded so.
    Failed,
    /// The kill switch stopped it: the job stops after this date.
    Refused,
}

/// A model-day whose session produced an outcome, not yet completed in the store.
pub(super) struct FinishedDay {
    claim: ModelDay,
    outcome: ModelDayOutcome,
    /// The `model_day_completed` event's payload.
    payload: Value,
    trades: usize,
    tool_calls: u32,
    finished_at: DateTime<Utc>,
    duration_ms: u64,
    /// The book to carry to the next date.
    book: Book,
    /// What the model remembers of this day, when its memory is on.
    memory: Option<MemoryEntry>,
}

impl FinishedDay {
    pub(super) fn model(&self) -> &str {
        &self.claim.model
    }

    /// The book to carry to the next date.
    pub(super) fn book(&self) -> &Book {
        &self.book
    }

    /// What the model remembers of this day, when its memory is on.
    pub(super) fn memory(&self) -> Option<&MemoryEntry> {
        self.memory.as_ref()
    }
}

/// Runs and records one model-day that `claim` claimed. A session that produced an outcome
/// comes back as [`DayEnd::Finished`], written to its model's file but not yet to the store (the
/// caller completes a date's days together); a failed or refused one is recorded here. `Err`
/// when the store or the disk failed (the job then fails with that error; a re-trigger runs
/// the day again).
pub(super) async fn run_claimed_day(
    ctx: DayContext,
    claim: ModelDay,
) -> Result<DayEnd, AgentError> {
    let started = Instant::now();
    let key = &ctx.key;
    let finished =
        |status: &str, error: Option<String>, value: Option<Money>| SimEvent::ModelDayFinished {
            job_id: key.job_id.clone(),
            model: key.model.clone(),
            date: key.date,
            status: status.to_string(),
            error,
            portfolio_value: value,
            duration_ms: started.elapsed().as_millis() as u64,
        };
    let provider = match &ctx.provider {
        Ok(p) => Arc::clone(p),
        Err(e) => {
            let e = &e.to_string();
            tracing::warn!(error = %e, "model-day failed: no LLM provider");
            write_model_day_error(
                &ctx.data_dir,
                &key.job_id,
                &key.model,
                key.date,
                ModelDayStatus::Failed,
                e,
            )?;
            ctx.store.fail_model_day(key, e).await?;
            record_day_stopped(&*ctx.store, key, ModelDayStatus::Failed, e).await?;
            let _ = ctx.events.send(finished("failed", Some(e.clone()), None));
            return Ok(DayEnd::Failed);
        }
    };
    let view = SessionView {
        universe: &ctx.market.universe,
        news: &ctx.market.news,
        date: key.date,
        reference: ctx.config.config.reference_price,
    };
    let symbols: Vec<&str> = ctx.symbols.iter().map(String::as_str).collect();
    let limits = SessionLimits {
        max_steps: ctx.config.config.max_steps,
        max_tool_errors: ctx.config.config.max_tool_errors,
    };
    let model = ctx.config.model(&key.model);
    let extras = SessionExtras {
        gate: Some(ctx.gate.clone()),
        memory: ctx
            .memory
            .as_ref()
            .and_then(|(config, entries)| memory_section(config, entries)),
        instructions: model.and_then(|m| m.system_prompt.clone()),
        tools: model.and_then(|m| m.tools.clone()),
    };
    let mut report = run_session_gated(
        &*provider,
        &key.model,
        view,
        &symbols,
        ctx.book.clone(),
        limits,
        extras,
    )
    .await;
    let memory = match &ctx.memory {
        Some((config, entries)) => remember(&ctx, &*provider, config, entries, &mut report).await,
        None => None,
    };
    // The file first: if the process dies before the store commit, the day re-runs and its new
    // line replaces this one.
    write_model_day(&ctx.data_dir, &key.job_id, &key.model, key.date, &report)?;
    match report.outcome.take() {
        Some(outcome) => {
            let trades = outcome
                .trades
                .iter()
                .filter(|t| t.action != TradeAction::Hold)
                .count();
            let tool_calls = report.tool_call_count();
            let payload = json!({
                "model": key.model,
                "date": key.date,
                "trades": trades,
                "tool_calls": tool_calls,
                // Exact decimal text, never a float.
                "portfolio_value": outcome.portfolio_value.to_string(),
                "currency": outcome.portfolio_value.currency().code(),
            });
            Ok(DayEnd::Finished(Box::new(FinishedDay {
                claim,
                outcome,
                payload,
                trades,
                tool_calls,
                finished_at: Utc::now(),
                duration_ms: started.elapsed().as_millis() as u64,
                book: report.final_book,
                memory,
            })))
        }
        None => {
            let error = report
                .error
                .clone()
                .unwrap_or_else(|| "the session ended without an outcome".into());
            let status = if report.refused {
                ModelDayStatus::Refused
            } else {
                ModelDayStatus::Failed
            };
            tracing::warn!(error = %error, status = status.as_str(), "model-day not completed");
            // Counts of a session that ran (they reach the leaderboard); none if it never began.
            let ran = report.steps > 0;
            let stop = ModelDayStop {
                status,
                error: error.clone(),
                steps: ran.then_some(report.steps),
                tool_calls: ran.then(|| report.tool_call_count()),
                tool_errors: ran.then(|| report.tool_errors()),
            };
            ctx.store.stop_model_day(key, &stop).await?;
            record_day_stopped(&*ctx.store, key, status, &error).await?;
            let _ = ctx
                .events
                .send(finished(status.as_str(), Some(error), None));
            Ok(match status {
                ModelDayStatus::Refused => DayEnd::Refused,
                _ => DayEnd::Failed,
            })
        }
    }
}

/// What the model remembers of a day that produced an outcome: its decisions, the change in
/// value and, when `config.reflect`, the lesson of a reflection call, whose messages and LLM call
/// join the day's transcript (after the session's last step). The entry is stored with the day.
/// A failed reflection leaves the day completed, without a lesson, and says why.
async fn remember(
    ctx: &DayContext,
    provider: &dyn LlmProvider,
    config: &MemoryConfig,
    entries: &[MemoryEntry],
    report: &mut SessionReport,
) -> Option<MemoryEntry> {
    let outcome = report.outcome.as_mut()?;
    let currency = outcome.portfolio_value.currency();
    let previous = entries
        .last()
        .and_then(|e| e.value(currency))
        .unwrap_or(ctx.config.initial_cash);
    let mut entry = MemoryEntry::of_day(
        ctx.key.date,
        &outcome.trades,
        outcome.portfolio_value,
        previous,
    );
    if config.reflect {
        let summary = report
            .reasoning
            .iter()
            .rev()
            .find(|m| m.role == "assistant")
            .map_or("", |m| m.content.as_str())
            .to_string();
        let step = report.steps + 1;
        let reflection = reflect(provider, &ctx.key.model, &entry, &summary, step).await;
        entry.reflection_usage = Some(reflection.call.usage);
        match reflection.lesson {
            Ok(lesson) => entry.lesson = Some(lesson),
            Err(e) => {
                tracing::warn!(error = %e, "reflection failed: the day is kept without a lesson");
                entry.reflection_error = Some(e);
            }
        }
        outcome
            .reasoning
            .extend(reflection.messages.iter().cloned());
        report.reasoning.extend(reflection.messages);
        report.llm_calls.push(reflection.call);
    }
    outcome.memory = serde_json::to_value(&entry).ok();
    Some(entry)
}

/// Completes the finished days of a date in the store, each with its `model_day_completed`
/// event, in one transaction (one commit for the date, not one per model-day); then logs and
/// announces each completed day. A day is announced only once its commit is done, so a day
/// reported complete is durable. Returns the first store error (the days completed before it
/// are kept).
pub(super) async fn commit_finished(
    store: &dyn Store,
    events: &broadcast::Sender<SimEvent>,
    days: Vec<FinishedDay>,
) -> Result<(), AgentError> {
    if days.is_empty() {
        return Ok(());
    }
    let completions: Vec<ClaimedCompletion<'_>> = days
        .iter()
        .map(|d| ClaimedCompletion {
            claim: &d.claim,
            outcome: &d.outcome,
            kind: "model_day_completed",
            payload: &d.payload,
            finished_at: d.finished_at,
        })
        .collect();
    let answers = store.complete_claimed_model_days(&completions).await;
    drop(completions);
    let mut first_error = None;
    for (day, answer) in days.into_iter().zip(answers) {
        if let Err(e) = answer {
            first_error.get_or_insert(e);
            continue;
        }
        let value = day.outcome.portfolio_value;
        tracing::info_span!("model_day", model = %day.claim.model, date = %day.claim.date)
            .in_scope(|| {
                tracing::info!(
                    trades = day.trades,
                    tool_calls = day.tool_calls,
                    portfolio_value = %value,
                    "model-day completed"
                );
            });
        let _ = events.send(SimEvent::ModelDayFinished {
            job_id: day.claim.job_id,
            model: day.claim.model,
            date: day.claim.date,
            status: ModelDayStatus::Completed.as_str().to_string(),
            error: None,
            portfolio_value: Some(value),
            duration_ms: day.duration_ms,
        });
    }
    match first_error {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// Appends a trading event of the job to the store's event log (streamed by `GET /ws`). It is
/// written right after the change it reports, so a process killed between the two loses that
/// one event (the change itself is kept and is not redone).
pub(super) async fn record(
    store: &dyn Store,
    job_id: &str,
    kind: &str,
    payload: Value,
) -> Result<(), AgentError> {
    store.append_job_event(job_id, kind, &payload).await?;
    Ok(())
}

/// Records a failed (`model_day_failed`) or refused (`model_day_refused`) model-day.
pub(super) async fn record_day_stopped(
    store: &dyn Store,
    key: &ModelDayKey,
    status: ModelDayStatus,
    error: &str,
) -> Result<(), AgentError> {
    let kind = match status {
        ModelDayStatus::Refused => "model_day_refused",
        _ => "model_day_failed",
    };
    record(
        store,
        &key.job_id,
        kind,
        json!({"model": key.model, "date": key.date, "error": error}),
    )
    .await
}
