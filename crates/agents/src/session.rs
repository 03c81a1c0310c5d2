//! One model-day: a model trades one session through the tools, step by step, until it
//! answers without tool calls (done), or runs out of steps or tolerated tool errors (failed).
//! Every message, tool call and LLM call is recorded, whichever way it ends.

use std::time::Instant;

use chrono::Utc;
use serde::Serialize;
use serde_json::{Value, json};
use tradeloom_core::Money;
use tradeloom_llm::{ChatRequest, LlmProvider, Message, Role, Usage, content_tool_calls};
use tradeloom_store::{Holding, ModelDayOutcome, ReasoningMessage, ToolCall};

use crate::book::{Book, BookError};
use crate::config::ORDER_TOOLS;
use crate::order_gate::{OrderGate, day_refusal};
use crate::tools::{ALL_TOOL_NAMES, SessionView, ToolBox};

/// The system prompt: identical for every model and day, so providers can cache the prefix
/// (system prompt + tool specs); everything that varies is in the user message.
pub const SYSTEM_PROMPT: &str = "You are a disciplined portfolio manager trading US equities in a daily simulation.\n\
Each session you manage one portfolio for one trading day. Use the tools:\n\
- get_portfolio: your cash and positions.\n\
- get_price: today's known prices (and past bars); the future is not available.\n\
- search_news: news published up to now.\n\
- calc: arithmetic.\n\
- buy / sell: whole shares at today's reference price, with a fee; no short selling, no borrowing.\n\
Think about risk and diversification. When you have finished trading for the day, reply with a \
short summary of what you did and why, without calling any tool.";

/// How [`SYSTEM_PROMPT`] describes each tool, in its order (`buy` and `sell` share a line).
const TOOL_LINES: [(&str, &str); 6] = [
    (
        "get_portfolio",
        "- get_portfolio: your cash and positions.\n",
    ),
    (
        "get_price",
        "- get_price: today's known prices (and past bars); the future is not available.\n",
    ),
    (
        "get_bars",
        "- get_bars: a symbol's past daily bars (open, high, low, close, volume).\n",
    ),
    ("search_news", "- search_news: news published up to now.\n"),
    ("calc", "- calc: arithmetic.\n"),
    (
        "buy",
        "- buy / sell: whole shares at today's reference price, with a fee; no short selling, no borrowing.\n",
    ),
];

/// The system prompt of a session offering `tools`: [`SYSTEM_PROMPT`] for the simulation's
/// own set ([`crate::TOOL_NAMES`]), else the same text describing only the tools offered.
pub fn system_prompt_for(tools: &[&str]) -> String {
    let mut out = String::from(
        "You are a disciplined portfolio manager trading US equities in a daily simulation.\n\
Each session you manage one portfolio for one trading day. Use the tools:\n",
    );
    for (tool, line) in TOOL_LINES {
        if tools.contains(&tool) {
            out.push_str(line);
        }
    }
    out.push_str(
        "Think about risk and diversification. When you have finished trading for the day, reply with a \
short summary of what you did and why, without calling any tool.",
    );
    out
}

/// The session's limits.
#[derive(Clone, Copy, Debug)]
pub struct SessionLimits {
    /// LLM calls allowed.
    pub max_steps: u32,
    /// Failed tool calls tolerated; one more fails the model-day.
    pub max_tool_errors: u32,
}

/// One LLM round trip, for the run folder.
#[derive(Clone, Debug, Serialize)]
pub struct LlmCall {
    pub step: u32,
    pub latency_ms: u64,
    pub attempts: u32,
    pub usage: Usage,
    pub finish_reason: Option<String>,
    pub error: Option<String>,
}

/// Everything a session produced. `error` is `Some` when the model-day failed or was refused;
/// the logs are complete either way.
#[derive(Debug)]
pub struct SessionReport {
    pub steps: u32,
    /// Tool calls the model wrote in its text instead of `tool_calls` (small local models),
    /// recognised because they named an offered tool with arguments its schema accepts; they
    /// are among the session's tool calls too.
    pub content_tool_calls: u32,
    pub error: Option<String>,
    /// The kill switch stopped the session (engaged when it began, or it refused an order):
    /// the day is `refused`, not failed; `error` says why and starts with `risk.kill_switch`.
    pub refused: bool,
    pub reasoning: Vec<ReasoningMessage>,
    pub tool_calls: Vec<ToolCall>,
    pub llm_calls: Vec<LlmCall>,
    /// The outcome to store; `None` when the day failed.
    pub outcome: Option<ModelDayOutcome>,
    pub final_book: Book,
}

impl SessionReport {
    /// Tool calls the model made. Step 0 is before its first turn (a kill-switch
    /// liquidation done for it), so it is not counted.
    pub fn tool_call_count(&self) -> u32 {
        self.tool_calls.iter().filter(|c| c.step > 0).count() as u32
    }

    /// Tool calls that returned an error (kill switch refusals included).
    pub fn tool_errors(&self) -> u32 {
        self.tool_calls.iter().filter(|c| c.error.is_some()).count() as u32
    }

    pub fn usage(&self) -> Usage {
        let mut total = Usage::default();
        for call in &self.llm_calls {
            total.prompt_tokens += call.usage.prompt_tokens;
            total.completion_tokens += call.usage.completion_tokens;
            total.total_tokens += call.usage.total_tokens;
            total.cached_tokens += call.usage.cached_tokens;
        }
        total
    }
}

/// The user message that opens a session. Its first lines are machine-readable (mock-llm's
/// policies read them): `Session date:`, `Reference price:`, `Universe:`.
pub fn session_prompt(view: &SessionView<'_>, symbols: &[&str], model_name: &str) -> String {
    format!(
        "Session date: {}\nReference price: {}\nUniverse: {}\n\nYou are `{model_name}`. Trade today's session: check your portfolio and prices, \
decide, place orders, then reply with a summary.",
        view.date,
        view.reference.as_str(),
        symbols.join(", ")
    )
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

pub(crate) fn log(step: u32, message: &Message) -> ReasoningMessage {
    let tool_calls = (!message.tool_calls.is_empty()).then(|| {
        Value::Array(
            message
                .tool_calls
                .iter()
                .map(|c| json!({"id": c.id, "name": c.name, "arguments": c.arguments}))
                .collect(),
        )
    });
    ReasoningMessage {
        step,
        role: role_name(message.role).to_string(),
        content: message.content.clone().unwrap_or_default(),
        tool_calls,
        created_at: Utc::now(),
    }
}

/// What a simulation adds to a session: the kill switch in front of it, the model's memory,
/// and the instructions and tools of the model (or of the agent it names).
#[derive(Clone, Debug, Default)]
pub struct SessionExtras {
    pub gate: Option<OrderGate>,
    /// The memory section (see [`crate::memory::memory_section`]), appended to the session
    /// message after its machine-readable lines.
    pub memory: Option<String>,
    /// Added after the system prompt, separated by a blank line (as a workflow agent node adds
    /// a registered agent's `system_prompt`).
    pub instructions: Option<String>,
    /// The tools offered besides `buy` and `sell` (names of [`crate::SESSION_TOOLS`]); `None`:
    /// the simulation's own set.
    pub tools: Option<Vec<String>>,
}

/// Runs one model-day of `model_name` with `provider`, starting from `book`.
pub async fn run_session(
    provider: &dyn LlmProvider,
    model_name: &str,
    view: SessionView<'_>,
    symbols: &[&str],
    book: Book,
    limits: SessionLimits,
) -> SessionReport {
    run_session_gated(
        provider,
        model_name,
        view,
        symbols,
        book,
        limits,
        SessionExtras::default(),
    )
    .await
}

/// What the model is told when its reply is cut off, and why the day fails.
pub const TRUNCATED_CODE: &str = "llm.truncated";

/// [`run_session`] with the kill switch in front of the session and every order. Engaged when
/// the session begins, no LLM call is made; an order it refuses comes back to the model as a
/// tool error starting with `risk.kill_switch` (not counted against `max_tool_errors`: not the
/// model's mistake), the step's other calls are answered, and the session stops there. Either
/// way, and when it is engaged as the session ends, the report is `refused`: a day the kill
/// switch interrupted is not a day of trading. (An engagement that asks to flatten sells the
/// holdings at the refused order; the refused day's book is not kept.)
pub async fn run_session_gated(
    provider: &dyn LlmProvider,
    model_name: &str,
    view: SessionView<'_>,
    symbols: &[&str],
    book: Book,
    limits: SessionLimits,
    extras: SessionExtras,
) -> SessionReport {
    let SessionExtras {
        gate,
        memory,
        instructions,
        tools: offered,
    } = extras;
    let mut opening = session_prompt(&view, symbols, model_name);
    if let Some(memory) = memory {
        opening.push_str("\n\n");
        opening.push_str(&memory);
    }
    // The tools in the order of every tool's spec, `buy` and `sell` always among them.
    let offered: Option<Vec<&str>> = offered.as_ref().map(|listed| {
        ALL_TOOL_NAMES
            .into_iter()
            .filter(|t| ORDER_TOOLS.contains(t) || listed.iter().any(|l| l.as_str() == *t))
            .collect()
    });
    let mut system = match &offered {
        Some(names) => system_prompt_for(names),
        None => SYSTEM_PROMPT.to_string(),
    };
    if let Some(own) = instructions.as_deref().filter(|p| !p.trim().is_empty()) {
        system.push_str("\n\n");
        system.push_str(own);
    }
    let messages = vec![Message::system(system), Message::user(opening)];
    let mut reasoning: Vec<ReasoningMessage> = messages.iter().map(|m| log(0, m)).collect();
    let mut tool_calls = Vec::new();
    let mut llm_calls = Vec::new();
    if let Some(engagement) = gate.as_ref().and_then(OrderGate::engaged_now) {
        return SessionReport {
            steps: 0,
            content_tool_calls: 0,
            error: Some(day_refusal(&engagement)),
            refused: true,
            reasoning,
            tool_calls,
            llm_calls,
            outcome: None,
            final_book: book,
        };
    }
    let tools = match &offered {
        None => ToolBox::new(view, book),
        // Every name comes from ALL_TOOL_NAMES (filtered above): `offering` accepts them.
        Some(names) => match ToolBox::new(view, book.clone()).offering(names) {
            Ok(t) => t,
            Err(e) => {
                return SessionReport {
                    steps: 0,
                    content_tool_calls: 0,
                    error: Some(format!("tools: {e}")),
                    refused: false,
                    reasoning,
                    tool_calls,
                    llm_calls,
                    outcome: None,
                    final_book: book,
                };
            }
        },
    };
    let mut tools = tools.with_gate(gate.clone());
    // The conversation and the tools move into each request and back out of it: no copy of
    // either per step.
    let mut request = ChatRequest {
        messages,
        tools: tools.specs(),
    };
    let mut refused = false;
    let mut tool_errors = 0u32;
    let mut content_calls = 0u32;
    let mut step = 0u32;
    let error = loop {
        if step >= limits.max_steps {
            break Some(format!(
                "max_steps ({}) reached without a final answer",
                limits.max_steps
            ));
        }
        step += 1;
        let started = Instant::now();
        let response = match provider.chat(&request).await {
            Ok(r) => r,
            Err(e) => {
                let message = format!("LLM call failed at step {step}: {e}");
                llm_calls.push(LlmCall {
                    step,
                    latency_ms: started.elapsed().as_millis() as u64,
                    attempts: 0,
                    usage: Usage::default(),
                    finish_reason: None,
                    error: Some(e.to_string()),
                });
                break Some(message);
            }
        };
        llm_calls.push(LlmCall {
            step,
            latency_ms: response.latency.as_millis() as u64,
            attempts: response.attempts,
            usage: response.usage,
            finish_reason: response.finish_reason.clone(),
            error: None,
        });
        let mut assistant = response.message;
        // A call written in the text (small local models): taken when it names an offered
        // tool and its arguments pass the tool's schema; counted apart.
        if assistant.tool_calls.is_empty()
            && response.finish_reason.as_deref() != Some("length")
            && let Some(text) = assistant.content.as_deref()
        {
            let calls = content_tool_calls(text, &request.tools, |spec, args| {
                crate::schema::validate(&spec.parameters, args).is_empty()
            });
            content_calls += calls.len() as u32;
            assistant.tool_calls = calls;
        }
        reasoning.push(log(step, &assistant));
        // A reply cut off by the token limit is not an answer: its summary (or its last tool
        // call's arguments) is incomplete, and taking it as the day's end would hide that.
        if response.finish_reason.as_deref() == Some("length") {
            request.messages.push(assistant);
            break Some(format!(
                "{TRUNCATED_CODE}: the model's reply at step {step} was cut off by max_tokens \
                 (finish_reason length); raise max_tokens of model `{model_name}`"
            ));
        }
        if assistant.tool_calls.is_empty() {
            request.messages.push(assistant);
            break None;
        }
        let mut answers = Vec::with_capacity(assistant.tool_calls.len());
        let (last_error, refusal) = answer_tool_calls(
            &mut tools,
            step,
            &assistant,
            &mut tool_errors,
            &mut tool_calls,
            &mut reasoning,
            &mut answers,
        );
        request.messages.push(assistant);
        request.messages.append(&mut answers);
        if let Some(refusal) = refusal {
            refused = true;
            break Some(format!(
                "{refusal}; the session stopped at step {step}: the day is refused, not \
                 completed, and runs again when the job is triggered after release"
            ));
        }
        if tool_errors > limits.max_tool_errors {
            break Some(format!(
                "too many tool errors ({tool_errors} > max_tool_errors {}); last: {}",
                limits.max_tool_errors,
                last_error.unwrap_or_default()
            ));
        }
    };
    // Engaged while the session ran, even if no order of it was refused: the day overlapped a
    // stop of trading and is not kept as a normal one.
    let error = match (error, gate.as_ref().and_then(OrderGate::engaged_now)) {
        (None, Some(engagement)) => {
            refused = true;
            Some(day_refusal(&engagement))
        }
        (error, _) => error,
    };
    let report = SessionReport {
        steps: step,
        content_tool_calls: content_calls,
        error,
        refused,
        reasoning,
        tool_calls,
        llm_calls,
        outcome: None,
        final_book: tools.book().clone(),
    };
    with_outcome(&tools, report)
}

/// `report` with the day's outcome when the session ended without an error; a portfolio that
/// cannot be valued at the close fails the day instead.
fn with_outcome(tools: &ToolBox<'_>, mut report: SessionReport) -> SessionReport {
    if report.error.is_some() {
        return report;
    }
    match close_day(tools) {
        Ok((holdings, value)) => {
            report.outcome = Some(ModelDayOutcome {
                steps: report.steps,
                cash: report.final_book.cash(),
                portfolio_value: value,
                trades: tools
                    .executions()
                    .iter()
                    .map(|(s, e)| e.to_trade(*s))
                    .collect(),
                holdings,
                reasoning: report.reasoning.clone(),
                tool_calls: report.tool_calls.clone(),
                memory: None,
            });
        }
        Err(e) => {
            report.error = Some(format!("cannot value the portfolio at the close: {e}"));
            report.refused = false;
        }
    }
    report
}

/// Runs one step's tool calls and answers each in `messages`; counts the model's mistakes in
/// `tool_errors`. Returns the last such mistake and the first kill switch refusal, if any.
fn answer_tool_calls(
    tools: &mut ToolBox<'_>,
    step: u32,
    assistant: &Message,
    tool_errors: &mut u32,
    tool_calls: &mut Vec<ToolCall>,
    reasoning: &mut Vec<ReasoningMessage>,
    messages: &mut Vec<Message>,
) -> (Option<String>, Option<String>) {
    let mut last_error = None;
    let mut refusal = None;
    for call in &assistant.tool_calls {
        let started = Instant::now();
        let (args, result) = tools.call(step, &call.name, &call.arguments);
        let latency_ms = started.elapsed().as_millis() as i64;
        let (content, result_value, error) = match result {
            Ok(v) => (v.to_string(), Some(v), None),
            Err(e) if e.is_refusal() => {
                let e = e.to_string();
                refusal.get_or_insert_with(|| e.clone());
                (json!({"error": e}).to_string(), None, Some(e))
            }
            Err(e) => {
                let e = e.to_string();
                *tool_errors += 1;
                last_error = Some(format!("`{}`: {e}", call.name));
                (json!({"error": e}).to_string(), None, Some(e))
            }
        };
        tool_calls.push(ToolCall {
            step,
            tool: call.name.clone(),
            args,
            result: result_value,
            latency_ms,
            error,
            created_at: Utc::now(),
        });
        let answer = Message::tool(call.id.clone(), content);
        reasoning.push(log(step, &answer));
        messages.push(answer);
    }
    (last_error, refusal)
}

/// End-of-day holdings marked at the close, and the portfolio value.
fn close_day(tools: &ToolBox<'_>) -> Result<(Vec<Holding>, Money), BookError> {
    let view = *tools.view();
    tools.book().mark(|s| view.closing_price(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_prompt_describes_the_tools_offered() {
        assert_eq!(system_prompt_for(&crate::TOOL_NAMES), SYSTEM_PROMPT);
        let few = system_prompt_for(&["calc", "get_bars", "buy", "sell"]);
        assert!(few.contains("- calc: arithmetic.\n"), "{few}");
        assert!(few.contains("- get_bars: "), "{few}");
        assert!(few.contains("- buy / sell: "), "{few}");
        assert!(!few.contains("get_price"), "{few}");
        assert!(!few.contains("search_news"), "{few}");
        assert!(few.ends_with("without calling any tool."), "{few}");
    }
}
