//! Process-wide counters of chat-completion calls, updated by [`crate::OpenAiProvider`] after
//! every call: calls by model and outcome, attempts beyond the first, prompt and completion
//! tokens, and a latency histogram per model. `GET /metrics` of `tradeloom serve` renders them
//! with [`render_into`].
//!
//! A call is counted once, whatever its retries; its latency includes back-off waits.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tradeloom_metrics::{Histogram, MetricError, Registry, names};

use crate::provider::LlmError;
use crate::types::Usage;

/// Upper bounds in seconds for LLM call latencies: 10 ms to 2 minutes.
pub const LLM_SECONDS_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// The `outcome` label of a failed call: the kind of its (last) error.
fn error_kind(error: &LlmError) -> &'static str {
    match error {
        LlmError::Http { .. } => "http_error",
        LlmError::Timeout { .. } => "timeout",
        LlmError::Transport { .. } => "transport",
        LlmError::Refused { .. } => "refused",
        LlmError::Decode { .. } => "decode",
        LlmError::Config(_) => "config",
        LlmError::RetriesExhausted { last, .. } => error_kind(last),
    }
}

#[derive(Debug, Default)]
struct Counts {
    /// `(model, outcome)` → calls.
    calls: BTreeMap<(String, &'static str), u64>,
    /// model → attempts beyond the first.
    retries: BTreeMap<String, u64>,
    /// model → (prompt, completion) tokens.
    tokens: BTreeMap<String, (u64, u64)>,
    /// model → call latency.
    latency: BTreeMap<String, Histogram>,
}

static COUNTS: Mutex<Option<Counts>> = Mutex::new(None);

/// A poisoned lock only means a panic mid-update of plain counters; they stay usable.
fn counts() -> MutexGuard<'static, Option<Counts>> {
    COUNTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records one finished call of `model`: its outcome, `attempts` HTTP attempts, its token usage
/// when it succeeded, and its latency.
pub fn record(model: &str, result: Result<&Usage, &LlmError>, attempts: u32, latency: Duration) {
    let mut guard = counts();
    let c = guard.get_or_insert_with(Counts::default);
    let outcome = match result {
        Ok(_) => "ok",
        Err(e) => error_kind(e),
    };
    *c.calls.entry((model.to_string(), outcome)).or_insert(0) += 1;
    if attempts > 1 {
        *c.retries.entry(model.to_string()).or_insert(0) += u64::from(attempts - 1);
    }
    if let Ok(usage) = result {
        let t = c.tokens.entry(model.to_string()).or_insert((0, 0));
        t.0 += usage.prompt_tokens;
        t.1 += usage.completion_tokens;
    }
    c.latency
        .entry(model.to_string())
        .or_insert_with(|| {
            // A constant known to be finite and increasing.
            Histogram::new(LLM_SECONDS_BUCKETS).unwrap_or_else(|_| unreachable!())
        })
        .observe(latency.as_secs_f64());
}

/// Renders the counters of this process; nothing before the first call.
pub fn render_into(registry: &mut Registry) -> Result<(), MetricError> {
    let guard = counts();
    let Some(c) = guard.as_ref() else {
        return Ok(());
    };
    for ((model, outcome), n) in &c.calls {
        registry.counter(
            &names::LLM_REQUESTS_TOTAL,
            &[("model", model), ("outcome", outcome)],
            *n as f64,
        )?;
    }
    for model in c.latency.keys() {
        let retries = c.retries.get(model).copied().unwrap_or(0);
        registry.counter(
            &names::LLM_RETRIES_TOTAL,
            &[("model", model)],
            retries as f64,
        )?;
        let (prompt, completion) = c.tokens.get(model).copied().unwrap_or((0, 0));
        registry.counter(
            &names::LLM_TOKENS_TOTAL,
            &[("model", model), ("kind", "prompt")],
            prompt as f64,
        )?;
        registry.counter(
            &names::LLM_TOKENS_TOTAL,
            &[("model", model), ("kind", "completion")],
            completion as f64,
        )?;
    }
    for (model, h) in &c.latency {
        registry.histogram(&names::LLM_REQUEST_DURATION_SECONDS, &[("model", model)], h)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_outcomes_tokens_retries_and_latency() {
        // A model name no other test uses: the counters are process-wide.
        let model = "call-metrics-test-model";
        let usage = Usage {
            prompt_tokens: 100,
            completion_tokens: 7,
            total_tokens: 107,
            cached_tokens: 0,
        };
        record(model, Ok(&usage), 1, Duration::from_millis(20));
        record(model, Ok(&usage), 3, Duration::from_millis(700));
        let timeout = LlmError::Timeout {
            url: "http://127.0.0.1:1/v1/chat/completions".into(),
            timeout_ms: 5,
        };
        let exhausted = LlmError::RetriesExhausted {
            attempts: 4,
            last: Box::new(timeout),
        };
        record(model, Err(&exhausted), 4, Duration::from_secs(3));
        let mut registry = Registry::new();
        render_into(&mut registry).unwrap();
        let text = registry.render();
        let has = |line: &str| {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in\n{text}"
            );
        };
        has(&format!(
            "tradeloom_llm_requests_total{{model=\"{model}\",outcome=\"ok\"}} 2"
        ));
        has(&format!(
            "tradeloom_llm_requests_total{{model=\"{model}\",outcome=\"timeout\"}} 1"
        ));
        has(&format!(
            "tradeloom_llm_retries_total{{model=\"{model}\"}} 5"
        ));
        has(&format!(
            "tradeloom_llm_tokens_total{{model=\"{model}\",kind=\"prompt\"}} 200"
        ));
        has(&format!(
            "tradeloom_llm_tokens_total{{model=\"{model}\",kind=\"completion\"}} 14"
        ));
        has(&format!(
            "tradeloom_llm_request_duration_seconds_bucket{{model=\"{model}\",le=\"0.025\"}} 1"
        ));
        has(&format!(
            "tradeloom_llm_request_duration_seconds_bucket{{model=\"{model}\",le=\"1\"}} 2"
        ));
        has(&format!(
            "tradeloom_llm_request_duration_seconds_count{{model=\"{model}\"}} 3"
        ));
    }
}
