//! The run folder of a simulation job, `<data_dir>/runs/<job_id>/`: `BOOTSTRAP.md` (YAML
//! front matter + the prompt every session starts from), `job_config.json`, and per model one
//! file, `agents/<model>.jsonl`, with a line per model-day: a JSON object with `summary`
//! (status, date, steps, cash, holdings, trades, counts, usage), `transcript` (every message),
//! `tool_calls` and `llm_calls` (latency, attempts, token usage of each call); a day that ended
//! before its session began has only `summary`. Lines are appended as days end, in date order;
//! a day that runs again (a resume, a retry) appends a new line, and the last line of a date is
//! the day's ([`model_day_records`]). One file per model, not per day, because creating a file
//! (an inode) was a third of what a model-day cost on a busy ext4 disk.
//!
//! Not synced: the store's commit is the durable record of a model-day; these lines are its
//! readable copy. Each line is one `write`; a line cut short by a crash is followed by a newline
//! before the next one is appended, so it stays a line of its own, which readers skip.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::FileExt;
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

/// `<job_dir>/agents/<model>.jsonl`: the model-days of one model, a line each.
pub fn model_day_log(data_dir: &Path, job_id: &str, model: &str) -> PathBuf {
    job_dir(data_dir, job_id)
        .join("agents")
        .join(format!("{model}.jsonl"))
}

/// Every model-day of `model` in job `job_id` that has a line in its file, by date: the last
/// line of each date (a day that ran again replaced its earlier line). Lines that are not a JSON
/// object with `summary.date` (one cut short by a crash) are skipped. Empty if the model has no
/// file yet.
pub fn model_day_records(
    data_dir: &Path,
    job_id: &str,
    model: &str,
) -> Result<BTreeMap<NaiveDate, Value>, AgentError> {
    let path = model_day_log(data_dir, job_id, model);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(io_error(&path, e)),
    };
    let mut days = BTreeMap::new();
    for line in bytes.split(|b| *b == b'\n') {
        let Ok(record) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        let date = record["summary"]["date"]
            .as_str()
            .and_then(|d| d.parse::<NaiveDate>().ok());
        if let Some(date) = date {
            days.insert(date, record);
        }
    }
    Ok(days)
}

/// The model-day of `model` on `date` (see [`model_day_records`]); `None` if it has no line.
pub fn model_day_record(
    data_dir: &Path,
    job_id: &str,
    model: &str,
    date: NaiveDate,
) -> Result<Option<Value>, AgentError> {
    Ok(model_day_records(data_dir, job_id, model)?.remove(&date))
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> AgentError {
    AgentError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Appends `line` (which ends with a newline) to the file at `path` in one write, creating the
/// file and its folder if needed. If the file does not end with a newline (a line cut short by
/// a crash), one is written first, so the cut line stays a line of its own.
fn append_line(path: &Path, line: &[u8]) -> Result<(), AgentError> {
    let open = || {
        std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
    };
    let mut file = match open() {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
            }
            open().map_err(|e| io_error(path, e))?
        }
        Err(e) => return Err(io_error(path, e)),
    };
    let len = file.metadata().map_err(|e| io_error(path, e))?.len();
    let mut last = [b'\n'];
    if len > 0 {
        file.read_exact_at(&mut last, len - 1)
            .map_err(|e| io_error(path, e))?;
    }
    if last[0] == b'\n' {
        file.write_all(line)
    } else {
        let mut fixed = Vec::with_capacity(line.len() + 1);
        fixed.push(b'\n');
        fixed.extend_from_slice(line);
        file.write_all(&fixed)
    }
    .map_err(|e| io_error(path, e))
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
and a session message such as the one shown. Each model-day's transcript, tool calls and LLM calls are a line of \
`agents/<model>.jsonl` (the last line of a date is the day's).\n\n## System prompt\n\n```text\n{SYSTEM_PROMPT}\n```\n\n## Session message (first day)\n\n```text\nSession date: {}\nReference price: {}\nUniverse: {}\n```\n",
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

/// Appends the line of one finished (completed, failed or refused) model-day to its model's
/// file. Its `summary` counts the tool calls the model made (`tool_calls`) and those that failed
/// (`tool_errors`).
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
    append_line(&model_day_log(data_dir, job_id, model), &file.bytes())
}

/// Appends the line of a model-day that ended before its session could start: failed (e.g. its
/// API key is missing) or refused (the kill switch stopped the job first).
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
    append_line(&model_day_log(data_dir, job_id, model), &file.bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 1, d).unwrap()
    }

    /// A model's days are lines of one file; a day that runs again replaces its line for
    /// readers; a line cut short by a crash is skipped and does not swallow the next one.
    #[test]
    fn a_models_days_are_lines_and_the_last_line_of_a_date_wins() {
        let data = tempfile::tempdir().unwrap();
        let (dir, job) = (data.path(), "job-1");
        assert!(model_day_records(dir, job, "m").unwrap().is_empty());
        let failed = ModelDayStatus::Failed;
        write_model_day_error(dir, job, "m", day(2), failed, "first try").unwrap();
        write_model_day_error(dir, job, "m", day(3), ModelDayStatus::Refused, "kill").unwrap();
        write_model_day_error(dir, job, "other", day(2), failed, "other model").unwrap();
        // Day 2 runs again (a retry): its new line is the day's.
        write_model_day_error(dir, job, "m", day(2), failed, "second try").unwrap();
        let days = model_day_records(dir, job, "m").unwrap();
        assert_eq!(days.keys().copied().collect::<Vec<_>>(), [day(2), day(3)]);
        assert_eq!(days[&day(2)]["summary"]["error"], "second try");
        assert_eq!(days[&day(3)]["summary"]["status"], "refused");

        // A process killed in the middle of a line; the resumed job appends the next day.
        let path = model_day_log(dir, job, "m");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(br#"{"summary":{"model":"m","date":"2025-01-04","sta"#)
            .unwrap();
        write_model_day_error(dir, job, "m", day(4), failed, "after the crash").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 5, "{text}");
        assert!(text.ends_with('\n'));
        let days = model_day_records(dir, job, "m").unwrap();
        assert_eq!(days.len(), 3);
        assert_eq!(days[&day(4)]["summary"]["error"], "after the crash");
        assert_eq!(
            model_day_record(dir, job, "m", day(2)).unwrap().unwrap()["summary"]["error"],
            "second try"
        );
        assert!(model_day_record(dir, job, "m", day(5)).unwrap().is_none());
        // One file per model, nothing else.
        let mut names: Vec<String> = std::fs::read_dir(job_dir(dir, job).join("agents"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["m.jsonl", "other.jsonl"]);
    }
}
