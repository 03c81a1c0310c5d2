//! The run folder of a simulation job, `<data_dir>/runs/<job_id>/`: `BOOTSTRAP.md` (YAML
//! front matter + the prompt every session starts from), `job_config.json`, and per model-day
//! one file, `agents/<model>/<date>.json`: a JSON object with `summary` (status, steps, cash,
//! holdings, trades, counts, usage), `transcript` (every message), `tool_calls` and `llm_calls`
//! (latency, attempts, token usage of each call); a day that ended before its session began has
//! only `summary`. One file, not a folder of four, because creating files is most of what the
//! run folder costs a model-day (an inode each). Files are written to a temporary name and
//! renamed, so a crash never leaves half a file; a re-run replaces them.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::{Value, json};
use tradeloom_store::{Job, ModelDayStatus, ReasoningMessage, ToolCall};

use crate::config::ResolvedConfig;
use crate::error::AgentError;
use crate::session::{LlmCall, SYSTEM_PROMPT, SessionReport};
use crate::tools::TOOL_NAMES;

/// `<data_dir>/runs/<job_id>`.
pub fn job_dir(data_dir: &Path, job_id: &str) -> PathBuf {
    tradeloom_core::DataDir::new(data_dir).run(job_id)
}

/// `<job_dir>/agents/<model>/<date>.json`: the file of one model-day.
pub fn model_day_file(data_dir: &Path, job_id: &str, model: &str, date: NaiveDate) -> PathBuf {
    job_dir(data_dir, job_id)
        .join("agents")
        .join(model)
        .join(format!("{date}.json"))
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> AgentError {
    AgentError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), AgentError> {
    // Not synced: the store's commit is the durable record of a model-day; these files are its
    // readable copy, rewritten whenever the day re-runs. The rename still means a crashed
    // process never leaves half a file.
    tradeloom_safety::write_atomic(path, bytes, tradeloom_safety::Durability::Renamed)
        .map_err(|e| io_error(&e.path, e.source))
}

/// The file of one model-day, serialised straight from the session's report (no copy).
#[derive(Serialize)]
struct ModelDayFile<'a> {
    summary: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    transcript: Option<&'a [ReasoningMessage]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<&'a [ToolCall]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    llm_calls: Option<&'a [LlmCall]>,
}

impl ModelDayFile<'_> {
    fn bytes(&self) -> Vec<u8> {
        // Serialising our own plain structs and JSON values cannot fail.
        let mut out = serde_json::to_vec(self).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

/// The `BOOTSTRAP.md` section of models whose sessions differ from the common system prompt: a
/// model (or its agent) with its own `system_prompt`, added after it, or its own `tools`.
/// Empty when every model uses the common prompt and tools.
fn own_instructions(config: &crate::config::SimulationConfig) -> String {
    let mut out = String::new();
    for m in &config.models {
        if m.system_prompt.is_none() && m.tools.is_none() {
            continue;
        }
        if out.is_empty() {
            out.push_str(
                "
## Models with their own instructions or tools
",
            );
        }
        let agent = m
            .resolved_agent
            .as_deref()
            .map(|a| format!(" (agent `{a}`)"))
            .unwrap_or_default();
        out.push_str(&format!(
            "
### `{}`{agent}

",
            m.name
        ));
        if let Some(tools) = &m.tools {
            out.push_str(&format!(
                "Tools: {}, and buy and sell; the system prompt describes only these.

",
                tools.join(", ")
            ));
        }
        if let Some(prompt) = &m.system_prompt {
            out.push_str(&format!(
                "Added after the system prompt:\n\n```text\n{prompt}\n```\n"
            ));
        }
    }
    out
}

/// Writes `BOOTSTRAP.md` and `job_config.json` of a job (idempotent).
pub fn write_bootstrap(
    data_dir: &Path,
    job: &Job,
    config: &ResolvedConfig,
    symbols: &[&str],
    dates: &[NaiveDate],
) -> Result<PathBuf, AgentError> {
    let dir = job_dir(data_dir, &job.id);
    let c = &config.config;
    let quoted = |items: &mut dyn Iterator<Item = String>| {
        items
            .map(|s| serde_json::to_string(&s).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let models = quoted(&mut c.models.iter().map(|m| m.name.clone()));
    let front = format!(
        "---\nkind: simulation_job\njob_id: {}\nconfig_hash: {}\ncreated_at: {}\nmodels: [{models}]\nsymbols: [{}]\ndate_range: [{}, {}]\ntrading_days: {}\nreference_price: {}\ninitial_cash: \"{}\"\ncurrency: {}\nfee_bps: \"{}\"\nmax_steps: {}\nmax_tool_errors: {}\ntools: [{}]\n---\n",
        job.id,
        job.config_hash,
        job.created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        quoted(&mut symbols.iter().map(|s| s.to_string())),
        c.start_date,
        c.end_date,
        dates.len(),
        c.reference_price.as_str(),
        config.initial_cash,
        config.currency.code(),
        c.fee_bps,
        c.max_steps,
        c.max_tool_errors,
        TOOL_NAMES.join(", "),
    );
    let body = format!(
        "\n# Simulation job {}\n\nEach model trades one session per trading day, dates in order, models in parallel. \
Every session starts from the system prompt below (identical for all models and days, so providers can cache it) \
and a session message such as the one shown. Each model-day's transcript, tool calls and LLM calls are in \
`agents/<model>/<date>/`.\n\n## System prompt\n\n```text\n{SYSTEM_PROMPT}\n```\n\n## Session message (first day)\n\n```text\nSession date: {}\nReference price: {}\nUniverse: {}\n```\n",
        job.id,
        dates.first().map_or_else(String::new, ToString::to_string),
        c.reference_price.as_str(),
        symbols.join(", "),
    );
    let own = own_instructions(c);
    write_atomic(
        &dir.join("BOOTSTRAP.md"),
        format!("{front}{body}{own}").as_bytes(),
    )?;
    let config_json = serde_json::to_vec_pretty(&job.config).unwrap_or_default();
    write_atomic(&dir.join("job_config.json"), &config_json)?;
    Ok(dir)
}

/// Writes the file of one finished (completed, failed or refused) model-day. Its `summary`
/// counts the tool calls the model made (`tool_calls`) and those that failed (`tool_errors`).
pub fn write_model_day(
    data_dir: &Path,
    job_id: &str,
    model: &str,
    date: NaiveDate,
    report: &SessionReport,
) -> Result<(), AgentError> {
    let mut summary = match &report.outcome {
        Some(o) => json!({
            "model": model, "date": date.to_string(), "status": "completed",
            "steps": report.steps, "cash": o.cash, "portfolio_value": o.portfolio_value,
            "holdings": o.holdings, "trades": o.trades,
            "tool_calls": report.tool_call_count(), "tool_errors": report.tool_errors(),
            "content_tool_calls": report.content_tool_calls, "usage": report.usage(),
        }),
        None => json!({
            "model": model, "date": date.to_string(),
            "status": if report.refused { "refused" } else { "failed" },
            "steps": report.steps, "error": report.error,
            "tool_calls": report.tool_call_count(), "tool_errors": report.tool_errors(),
            "content_tool_calls": report.content_tool_calls, "usage": report.usage(),
        }),
    };
    // What the model remembers of the day, when its memory is on.
    if let Some(memory) = report.outcome.as_ref().and_then(|o| o.memory.clone()) {
        summary["memory"] = memory;
    }
    let file = ModelDayFile {
        summary: &summary,
        transcript: Some(&report.reasoning),
        tool_calls: Some(&report.tool_calls),
        llm_calls: Some(&report.llm_calls),
    };
    write_atomic(
        &model_day_file(data_dir, job_id, model, date),
        &file.bytes(),
    )
}

/// A model-day that ended before its session could start: failed (e.g. its API key is
/// missing) or refused (the kill switch stopped the job first).
pub fn write_model_day_error(
    data_dir: &Path,
    job_id: &str,
    model: &str,
    date: NaiveDate,
    status: ModelDayStatus,
    error: &str,
) -> Result<(), AgentError> {
    let summary: Value = json!({
        "model": model, "date": date.to_string(), "status": status.as_str(), "steps": 0,
        "tool_calls": 0, "tool_errors": 0, "error": error,
    });
    let file = ModelDayFile {
        summary: &summary,
        transcript: None,
        tool_calls: None,
        llm_calls: None,
    };
    write_atomic(
        &model_day_file(data_dir, job_id, model, date),
        &file.bytes(),
    )
}
