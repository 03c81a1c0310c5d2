//! What each node type does when a worker runs it. Every executor returns the node's output
//! JSON or a [`NodeError`] saying whether another attempt may help.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};
use tradeloom_agents::{Simulator, ToolBox, TriggerOutcome};
use tradeloom_flow::ir::{
    AgentNode, BacktestNode, HeaderSource, HttpNode, NodeKind, PaperNode, ScriptNode, SimulateNode,
    SimulationSource,
};
use tradeloom_flow::node_config::skill_tool;
use tradeloom_flow::{Context, IrNode, Template};
use tradeloom_llm::{
    ChatRequest, LlmError, LlmProvider, Message, OpenAiProvider, ProviderConfig, ToolSpec,
};
use tradeloom_net::{GuardedClient, SecretEnv};

use crate::coordinator::Coordinator;
use crate::patch::PatchOutcome;

/// Why an attempt failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeError {
    pub message: String,
    /// Another attempt may succeed (timeouts, 5xx/429, connection errors).
    pub retryable: bool,
}

impl NodeError {
    pub fn permanent(message: impl Into<String>) -> Self {
        NodeError {
            message: message.into(),
            retryable: false,
        }
    }

    pub fn transient(message: impl Into<String>) -> Self {
        NodeError {
            message: message.into(),
            retryable: true,
        }
    }
}

/// What executors share: outbound HTTP under the SSRF guard, the secret variables nodes may
/// read, the simulator, the data dir.
#[derive(Debug)]
pub struct NodeEnv {
    /// Every request of `http` and `agent` nodes goes through it.
    pub http: GuardedClient,
    /// The only way nodes read a secret named in a definition.
    pub secrets: SecretEnv,
    pub simulator: Option<Arc<Simulator>>,
    pub data_dir: PathBuf,
    /// Relative paths in inline simulation configs resolve against this.
    pub base_dir: PathBuf,
    /// Where `config_path` and `spec_path` may point (see [`crate::RuntimeConfig::config_dir`]).
    pub config_dir: Option<tradeloom_agents::ConfigDir>,
    /// The engine runs of this process; `paper` nodes start theirs here.
    pub engine_runs: Arc<crate::engine_runs::EngineRuns>,
}

/// One attempt of one node.
pub struct Attempt<'a> {
    pub run_id: &'a str,
    pub node: &'a IrNode,
    pub attempt: u32,
    pub context: &'a Context,
}

/// Runs one attempt of a node (`hitl` nodes never reach workers: approvals decide them).
pub async fn execute(
    env: &NodeEnv,
    coordinator: &Arc<Coordinator>,
    a: Attempt<'_>,
) -> Result<Value, NodeError> {
    let context = a.context.as_value();
    match a.node.kind() {
        NodeKind::Transform(t) => t
            .output
            .render(context)
            .map_err(|e| NodeError::permanent(format!("output: {e}"))),
        NodeKind::Wait(w) => Ok(json!({"waited_ms": w.duration_ms})),
        NodeKind::Http(h) => http(env, h, &a).await,
        NodeKind::Agent(agent_node) => agent(env, coordinator, agent_node, &a).await,
        NodeKind::Simulate(s) => simulate(env, s, context, a.run_id).await,
        NodeKind::Backtest(b) => backtest(env, b, context, a.run_id).await,
        NodeKind::Paper(p) => paper(env, p, context, a.run_id).await,
        NodeKind::Order(o) => crate::desk::order(env, o, context, a.run_id, a.node.id()).await,
        NodeKind::Script(s) => script(env, s, context).await,
        NodeKind::Hitl(_) => Err(NodeError::permanent(
            "hitl nodes are decided by approvals, not run by workers",
        )),
        NodeKind::Unknown { type_name, .. } => Err(NodeError::permanent(format!(
            "unknown node type `{type_name}`"
        ))),
    }
}

async fn http(env: &NodeEnv, h: &HttpNode, a: &Attempt<'_>) -> Result<Value, NodeError> {
    let context = a.context.as_value();
    let url = h
        .url
        .render_string(context)
        .map_err(|e| NodeError::permanent(format!("url: {e}")))?;
    let mut headers = HeaderMap::new();
    for (name, source) in &h.headers {
        let (value, secret) = match source {
            HeaderSource::Template(template) => (
                template
                    .render_string(context)
                    .map_err(|e| NodeError::permanent(format!("headers.{name}: {e}")))?,
                false,
            ),
            HeaderSource::Secret(secret) => {
                let value = env
                    .secrets
                    .read(&secret.env)
                    .map_err(|e| NodeError::permanent(format!("headers.{name}: {e}")))?;
                (format!("{}{value}", secret.prefix), true)
            }
        };
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| NodeError::permanent(format!("headers.{name}: {e}")))?;
        // The error of a secret's value does not quote it.
        let mut value = HeaderValue::from_str(&value).map_err(|_| {
            NodeError::permanent(format!(
                "headers.{name}: the value has characters not allowed in an HTTP header"
            ))
        })?;
        value.set_sensitive(secret);
        headers.insert(name, value);
    }
    // Receivers deduplicate redelivered requests by this key: stable across retries of the
    // same attempt after a crash, different for a new attempt.
    let key = format!("{}/{}/{}", a.run_id, a.node.id(), a.attempt);
    if let Ok(v) = HeaderValue::from_str(&key) {
        headers.insert(HeaderName::from_static("idempotency-key"), v);
    }
    let body = match &h.body {
        Some(t) => {
            let value = t
                .render(context)
                .map_err(|e| NodeError::permanent(format!("body: {e}")))?;
            headers.insert(
                reqwest::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Some(value.to_string().into_bytes())
        }
        None => None,
    };
    let method = Method::from_bytes(h.method.to_string().as_bytes())
        .map_err(|e| NodeError::permanent(format!("method: {e}")))?;
    let response = env
        .http
        .send(method, &url, headers, body)
        .await
        .map_err(|e| {
            if e.is_refusal() {
                NodeError::permanent(format!("refused by the SSRF guard: {e}"))
            } else {
                NodeError::transient(e.to_string())
            }
        })?;
    let status = response.status.as_u16();
    let text = String::from_utf8_lossy(&response.body).into_owned();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if response.status.is_success() {
        return Ok(json!({"status": status, "body": body}));
    }
    let message = format!(
        "{url} answered HTTP {status}: {}",
        truncate(&body.to_string(), 300)
    );
    if status == 429 || status == 408 || response.status.is_server_error() {
        Err(NodeError::transient(message))
    } else {
        Err(NodeError::permanent(message))
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The system prompt of workflow agents. An answer holding JSON in a fenced block or in prose
/// is accepted too ([`answer_json`]): small models often wrap it.
pub const AGENT_SYSTEM_PROMPT: &str = "You are one step of an automated trading workflow. \
Do the task in the user message. Use the tools offered when they help. When the task asks for \
JSON, answer with one JSON object and nothing else.";

/// The spec of a workflow agent's tool: `patch_workflow`, or one of the simulations' tools
/// (`calc` and the market tools, with the simulations' schemas and descriptions).
fn tool_spec(name: &str) -> Option<ToolSpec> {
    match name {
        "patch_workflow" => Some(ToolSpec {
            name: "patch_workflow".into(),
            description: "Change the running workflow with RFC 6902 JSON Patch operations on its definition document (e.g. add a node with {\"op\":\"add\",\"path\":\"/nodes/-\",\"value\":{...}}). Completed nodes cannot change.".into(),
            parameters: json!({"type": "object", "properties": {"operations": {"type": "array", "items": {"type": "object"}}},
                               "required": ["operations"], "additionalProperties": false}),
        }),
        other => tradeloom_agents::tool_spec(other)
            .filter(|_| AGENT_TOOLS.contains(&other))
            .cloned(),
    }
}

/// Tools workflow agents may be given (the compiler checks `tools` against the same list).
pub use tradeloom_flow::node_config::AGENT_TOOLS;

fn llm_error(e: LlmError) -> NodeError {
    let retryable = match &e {
        LlmError::Http { status, .. } => *status == 429 || *status == 408 || *status >= 500,
        LlmError::Timeout { .. }
        | LlmError::Transport { .. }
        | LlmError::RetriesExhausted { .. } => true,
        LlmError::Decode { .. } | LlmError::Config(_) | LlmError::Refused { .. } => false,
    };
    NodeError {
        message: format!("LLM: {e}"),
        retryable,
    }
}

/// Why an agent attempt ended without an output.
enum AgentStop {
    /// The model answered, but nothing usable: no JSON object where the task asks for one, an
    /// answer cut off by `max_tokens`, or `max_steps` spent without a final answer. The node's
    /// `fallback` stands in once its attempts are exhausted. `content` is the last answer's text.
    Answer {
        error: NodeError,
        content: Option<String>,
    },
    /// Anything else (the endpoint, a secret, a template, the market): never replaced by the
    /// fallback.
    Node(NodeError),
}

impl From<NodeError> for AgentStop {
    fn from(e: NodeError) -> Self {
        AgentStop::Node(e)
    }
}

/// The longest `fallback_reason`, in bytes (the reason quotes the model's answer).
const MAX_FALLBACK_REASON: usize = 300;

/// Runs one attempt of an agent node; when its answer is not usable and this is its last
/// attempt (the failure is not retried, or the node's `max_attempts` is reached), its
/// `fallback` is the output, marked `fallback: true` with the reason.
async fn agent(
    env: &NodeEnv,
    coordinator: &Arc<Coordinator>,
    node: &AgentNode,
    a: &Attempt<'_>,
) -> Result<Value, NodeError> {
    let (error, content) = match agent_attempt(env, coordinator, node, a).await {
        Ok(output) => return Ok(output),
        Err(AgentStop::Node(e)) => return Err(e),
        Err(AgentStop::Answer { error, content }) => (error, content),
    };
    let last = !error.retryable || a.attempt >= a.node.retry().max_attempts;
    let Some(fallback) = node.fallback.as_ref().filter(|_| last) else {
        return Err(error);
    };
    let json = fallback
        .render(a.context.as_value())
        .map_err(|e| NodeError::permanent(format!("fallback: {e}")))?;
    Ok(json!({
        "content": content.unwrap_or_default(),
        "json": json,
        "fallback": true,
        "fallback_reason": truncate(&error.message, MAX_FALLBACK_REASON),
        "attempt": a.attempt,
    }))
}

async fn agent_attempt(
    env: &NodeEnv,
    coordinator: &Arc<Coordinator>,
    node: &AgentNode,
    a: &Attempt<'_>,
) -> Result<Value, AgentStop> {
    let context = a.context.as_value();
    let mut prompt = node
        .prompt
        .render_string(context)
        .map_err(|e| NodeError::permanent(format!("prompt: {e}")))?;
    let expects_json = asks_for_json(&prompt);
    let inputs = a
        .node
        .render_inputs(context)
        .map_err(|e| NodeError::permanent(format!("inputs: {e}")))?;
    if !inputs.is_empty() {
        prompt.push_str("\nInputs: ");
        prompt.push_str(&Value::Object(inputs).to_string());
    }
    let model = node.model.as_ref().ok_or_else(|| {
        NodeError::permanent(format!(
            "node `{}`: agent `{}` was not resolved when the run started (an `agent` reference \
             added by a patch is not resolved: give `model`)",
            a.node.id(),
            node.agent.as_deref().unwrap_or_default()
        ))
    })?;
    let mut tools = Vec::new();
    let mut skills = Vec::new();
    for name in &node.tools {
        if let Some(skill) = crate::skill_tool::SkillTool::load(&**coordinator.store(), name).await
        {
            let skill =
                skill.map_err(|e| NodeError::permanent(format!("node `{}`: {e}", a.node.id())))?;
            tools.push(skill.spec());
            skills.push(skill);
            continue;
        }
        tools.push(tool_spec(name).ok_or_else(|| {
            NodeError::permanent(format!(
                "node `{}`: unknown tool `{name}`; workflow agents have: {}",
                a.node.id(),
                AGENT_TOOLS.join(", ")
            ))
        })?);
    }
    // The market tools (and `calc`) answer from the simulations' tool box, bound to the
    // node's market as of its date.
    let desk = match &node.market {
        Some(m) => Some(crate::desk::open_desk(env, m, context).await?),
        None => None,
    };
    let box_tools: Vec<&str> = node
        .tools
        .iter()
        .map(String::as_str)
        .filter(|t| *t != "patch_workflow" && skill_tool(t).is_none())
        .collect();
    // The book `get_portfolio` shows: a paper run's account, or a fresh one.
    let paper_run = match &node.paper_run {
        Some(t) => t
            .render_string(context)
            .map_err(|e| NodeError::permanent(format!("paper_run: {e}")))?
            .trim()
            .to_string(),
        None => String::new(),
    };
    let book = match &desk {
        Some(d) if !paper_run.is_empty() => Some(crate::desk::paper_book(env, d, &paper_run)?),
        Some(d) => Some(d.book()),
        None => None,
    };
    let mut toolbox = match (&desk, book) {
        (Some(d), Some(book)) => Some(
            ToolBox::new(d.view(), book)
                .offering(&box_tools)
                .map_err(|e| NodeError::permanent(format!("tools: {e}")))?,
        ),
        _ => None,
    };
    if let Some(d) = &desk {
        // Before the inputs line: policies read the JSON after `Inputs:` to the end.
        let note = format!(
            "\nAs of: {} ({} prices); nothing after that is available.",
            d.as_of,
            d.reference.as_str()
        );
        match prompt.rfind("\nInputs: ") {
            Some(at) => prompt.insert_str(at, &note),
            None => prompt.push_str(&note),
        }
    }
    let mut config = ProviderConfig::new(model.base_url.clone(), model.model.clone());
    if let Some(var) = &model.api_key_env {
        let key = env
            .secrets
            .read(var)
            .map_err(|e| NodeError::permanent(format!("model.api_key_env: {e}")))?;
        config.api_key = Some(key);
    }
    // Sampling and limits as the definition sets them (the compiler checked their ranges);
    // the provider's defaults otherwise.
    config.temperature = model.temperature;
    config.max_tokens = model.max_tokens;
    if let Some(ms) = model.timeout_ms {
        config.timeout = std::time::Duration::from_millis(ms);
    }
    if let Some(n) = model.max_retries {
        config.max_retries = n;
    }
    if let Some(choice) = model.tool_choice {
        config.tool_choice = match choice {
            tradeloom_flow::node_config::ToolChoice::Auto => tradeloom_llm::ToolChoice::Auto,
            tradeloom_flow::node_config::ToolChoice::Required => {
                tradeloom_llm::ToolChoice::Required
            }
            tradeloom_flow::node_config::ToolChoice::None => tradeloom_llm::ToolChoice::None,
        };
    }
    let provider = OpenAiProvider::new(config, &env.http).map_err(llm_error)?;
    // A registered agent's instructions follow the workflow's own (a stable prefix).
    let system = match node
        .system_prompt
        .as_deref()
        .filter(|p| !p.trim().is_empty())
    {
        Some(own) => format!("{AGENT_SYSTEM_PROMPT}\n\n{own}"),
        None => AGENT_SYSTEM_PROMPT.to_string(),
    };
    let mut messages = vec![Message::system(system), Message::user(prompt)];
    let mut usage = (0u64, 0u64, 0u64);
    let mut tool_calls = 0u32;
    let mut tool_errors = 0u32;
    let mut content_calls = 0u32;
    let mut calls_log = Vec::new();
    for step in 1..=node.max_steps {
        let request = ChatRequest {
            messages: messages.clone(),
            tools: tools.clone(),
        };
        let response = provider.chat(&request).await.map_err(llm_error)?;
        usage.0 += response.usage.prompt_tokens;
        usage.1 += response.usage.completion_tokens;
        usage.2 += response.usage.total_tokens;
        let mut message = response.message;
        // A call written in the text (small local models): taken when it names an offered
        // tool and its arguments pass the tool's schema; counted apart.
        if message.tool_calls.is_empty()
            && response.finish_reason.as_deref() != Some("length")
            && let Some(text) = message.content.as_deref()
        {
            message.tool_calls = tradeloom_llm::content_tool_calls(text, &tools, |spec, args| {
                tradeloom_agents::validate_arguments(&spec.parameters, args).is_empty()
            });
            content_calls += message.tool_calls.len() as u32;
        }
        if message.tool_calls.is_empty() {
            let content = message.content.unwrap_or_default();
            let parsed = match answer_json(&content) {
                Some(v) => v,
                None if expects_json || node.output_schema.is_some() => {
                    let cut = if response.finish_reason.as_deref() == Some("length") {
                        " (cut off by max_tokens: finish_reason length)"
                    } else {
                        ""
                    };
                    // Another attempt (if the node's retries allow) may answer properly.
                    return Err(AgentStop::Answer {
                        error: NodeError::transient(format!(
                            "agent answer has no JSON object{cut}: {}",
                            truncate(content.trim(), 200)
                        )),
                        content: Some(content),
                    });
                }
                None => Value::Null,
            };
            if let Some(schema) = &node.output_schema {
                let unsupported = tradeloom_agents::schema_problems(schema, "output_schema");
                if !unsupported.is_empty() {
                    return Err(AgentStop::Node(NodeError::permanent(
                        unsupported.join("; "),
                    )));
                }
                let problems = tradeloom_agents::validate_arguments(schema, &parsed);
                if !problems.is_empty() {
                    let problems: Vec<String> = problems
                        .iter()
                        .map(|p| p.replacen("arguments", "answer", 1))
                        .collect();
                    // Another attempt may answer properly; then `fallback`.
                    return Err(AgentStop::Answer {
                        error: NodeError::transient(format!(
                            "agent answer does not match output_schema: {}",
                            truncate(&problems.join("; "), 300)
                        )),
                        content: Some(content),
                    });
                }
            }
            let mut out = json!({
                "content": content,
                "json": parsed,
                "steps": step,
                "tool_calls": tool_calls,
                "usage": {"prompt_tokens": usage.0, "completion_tokens": usage.1, "total_tokens": usage.2},
            });
            if content_calls > 0 {
                out["content_tool_calls"] = json!(content_calls);
            }
            if !calls_log.is_empty() {
                out["tool_errors"] = json!(tool_errors);
                out["calls"] = Value::Array(std::mem::take(&mut calls_log));
            }
            if let Some(d) = &desk {
                out["as_of"] = json!(d.as_of.to_string());
            }
            return Ok(out);
        }
        let calls = message.tool_calls.clone();
        messages.push(message);
        for call in calls {
            tool_calls += 1;
            let skill = skills.iter().find(|s| s.tool_name == call.name);
            let (args, result) = if let Some(skill) = skill {
                skill
                    .call(&call.arguments, vec![env.data_dir.clone()])
                    .await
            } else if call.name == "patch_workflow"
                && node.tools.iter().any(|t| t == "patch_workflow")
            {
                let args = serde_json::from_str(&call.arguments)
                    .unwrap_or_else(|_| Value::String(call.arguments.clone()));
                let result = run_patch(coordinator, a, &call.arguments).await;
                (args, result)
            } else {
                market_tool(
                    toolbox.as_mut(),
                    &node.tools,
                    step,
                    &call.name,
                    &call.arguments,
                )
            };
            let mut entry = json!({"step": step, "tool": call.name, "arguments": args});
            if let Some(e) = result.get("error") {
                tool_errors += 1;
                entry["error"] = e.clone();
            }
            calls_log.push(entry);
            messages.push(Message::tool(call.id, result.to_string()));
        }
    }
    Err(AgentStop::Answer {
        error: NodeError::permanent(format!(
            "the agent did not finish within max_steps ({}): its last turn still called tools",
            node.max_steps
        )),
        content: None,
    })
}

/// Whether a task asks for a JSON answer: its prompt names JSON (as the system prompt tells the
/// model, "when the task asks for JSON, answer with one JSON object").
fn asks_for_json(prompt: &str) -> bool {
    prompt.to_ascii_lowercase().contains("json")
}

/// Start positions of JSON values tried in an answer before giving up (bounds the work on a
/// long answer full of brackets).
const MAX_JSON_CANDIDATES: usize = 256;

/// The JSON of an agent's answer: the whole answer if it is JSON; else the first fenced block
/// (```` ```json ```` or ```` ``` ````) holding an object or array; else the first object or
/// array embedded in the text. `None` if there is none.
pub fn answer_json(content: &str) -> Option<Value> {
    let trimmed = content.trim();
    if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
        return Some(v);
    }
    let structured = |v: &Value| v.is_object() || v.is_array();
    // Fenced blocks: the text between a line opening with ``` (and an optional language tag)
    // and the next ```.
    let mut rest = content;
    while let Some(open) = rest.find("```") {
        let after = &rest[open + 3..];
        let body_start = after.find('\n').map_or(after.len(), |n| n + 1);
        let body = &after[body_start..];
        let Some(close) = body.find("```") else {
            break;
        };
        if let Ok(v) = serde_json::from_str::<Value>(body[..close].trim())
            && structured(&v)
        {
            return Some(v);
        }
        rest = &body[close + 3..];
    }
    // The first object or array in the text; whatever follows it is ignored.
    for (start, _) in content
        .char_indices()
        .filter(|(_, c)| *c == '{' || *c == '[')
        .take(MAX_JSON_CANDIDATES)
    {
        let mut values = serde_json::Deserializer::from_str(&content[start..]).into_iter::<Value>();
        if let Some(Ok(v)) = values.next()
            && structured(&v)
        {
            return Some(v);
        }
    }
    None
}

/// A call of a tool other than `patch_workflow`: answered by the node's tool box (the
/// simulations' tools, bound to its market) or, for `calc` without a market, by the same
/// calculator with the same argument schema. Returns the arguments (for the log) and the
/// result as the model sees it; errors are results too (the model may recover).
fn market_tool(
    toolbox: Option<&mut ToolBox<'_>>,
    allowed: &[String],
    step: u32,
    name: &str,
    arguments: &str,
) -> (Value, Value) {
    let raw =
        || serde_json::from_str(arguments).unwrap_or_else(|_| Value::String(arguments.into()));
    if !allowed.iter().any(|t| t == name) {
        let error = format!("unknown tool `{name}`; available: {}", allowed.join(", "));
        return (raw(), json!({ "error": error }));
    }
    let (args, result) = match toolbox {
        Some(tools) => tools.call(step, name, arguments),
        None if name == "calc" => tradeloom_agents::call_calc(arguments),
        None => {
            let error = format!("tool `{name}` reads the market; the node has no `market`");
            return (raw(), json!({ "error": error }));
        }
    };
    match result {
        Ok(v) => (args, v),
        Err(e) => (args, json!({"error": e.to_string()})),
    }
}

/// A `patch_workflow` call's result as the model sees it.
async fn run_patch(coordinator: &Arc<Coordinator>, a: &Attempt<'_>, arguments: &str) -> Value {
    let args: Value = match serde_json::from_str(arguments) {
        Ok(v) => v,
        Err(e) => return json!({"error": format!("arguments are not JSON: {e}")}),
    };
    let Some(operations) = args.get("operations") else {
        return json!({"error": "`operations` (an array of JSON Patch operations) is required"});
    };
    let by = format!("agent:{}", a.node.id());
    match coordinator.patch(a.run_id, operations, &by).await {
        Ok(PatchOutcome::Applied { ir_version }) => json!({"ir_version": ir_version}),
        Ok(PatchOutcome::Rejected { reasons }) => {
            json!({"error": "patch rejected", "reasons": reasons})
        }
        Err(e) => json!({"error": e.to_string()}),
    }
}

/// The engaged kill switch (global or the workflow run's) as node output, read now: a
/// `simulate` or `backtest` node under it still runs (its orders are refused and recorded) and
/// says why it traded nothing.
fn kill_switch_note(data_dir: &Path, workflow_run_id: &str) -> Value {
    kill_switch_state(data_dir, workflow_run_id, None)
}

/// The kill switch state now for a workflow run (and a simulation job's own scope).
fn kill_switch_state(data_dir: &Path, workflow_run_id: &str, job_id: Option<&str>) -> Value {
    let engaged = tradeloom_safety::KillSwitch::open(data_dir)
        .map(|ks| ks.engaged_now(&[workflow_run_id], job_id));
    match engaged {
        Ok(Some(e)) => json!({
            "engaged": true,
            "scope": e.scope.to_string(),
            "reason": e.reason,
            "by": e.by,
            "flatten": e.flatten,
            "detail": format!("orders refused with risk.kill_switch: {}", e.describe()),
        }),
        Ok(None) => json!({"engaged": false}),
        Err(e) => json!({"engaged": true, "detail": e.to_string()}),
    }
}

async fn simulate(
    env: &NodeEnv,
    s: &SimulateNode,
    context: &Value,
    workflow_run_id: &str,
) -> Result<Value, NodeError> {
    let simulator = env.simulator.as_ref().ok_or_else(|| {
        NodeError::permanent("simulate nodes need a simulator; run them under `tradeloom serve`")
    })?;
    let config = match &s.source {
        SimulationSource::ConfigPath(t) => {
            let path = t
                .render_string(context)
                .map_err(|e| NodeError::permanent(format!("config_path: {e}")))?;
            // Confined to the config folder, read without ever quoting the file in the error
            // (node errors are stored where viewers read them).
            let dir = env.config_dir.as_ref();
            let file = tradeloom_agents::ConfigDir::resolve_in(dir, &path)
                .map_err(|e| NodeError::permanent(e.to_string()))?;
            dir.map(|d| d.load(&file))
                .transpose()
                .map_err(|e| NodeError::permanent(format!("config_path: {e}")))?
                .ok_or_else(|| {
                    NodeError::permanent(tradeloom_agents::ConfigPathError::Disabled.to_string())
                })?
        }
        SimulationSource::Config(t) => {
            let value = t
                .render(context)
                .map_err(|e| NodeError::permanent(format!("config: {e}")))?;
            tradeloom_agents::config_from_value(&value, &env.base_dir)
                .map_err(|e| NodeError::permanent(format!("config: {e}")))?
        }
    };
    let outcome = simulator
        .prepare(&config)
        .await
        .map_err(|e| NodeError::permanent(format!("simulation: {e}")))?;
    let store = simulator.store();
    let job = match outcome {
        TriggerOutcome::Started { job, .. } => simulator
            .run_job_under(&job.id, &[workflow_run_id.to_string()])
            .await
            .map_err(|e| NodeError::transient(format!("simulation job {}: {e}", job.id)))?,
        TriggerOutcome::Current(job) => job,
        TriggerOutcome::Paused(job) => {
            return Err(NodeError::permanent(format!(
                "simulation job {} of this config is paused; resume it (POST /simulate/{}/resume) \
                 or cancel it, then run the node again",
                job.id, job.id
            )));
        }
        TriggerOutcome::AlreadyRunning(job) => loop {
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            let now = store
                .job(&job.id)
                .await
                .map_err(|e| NodeError::transient(format!("simulation job {}: {e}", job.id)))?;
            if now.status.is_terminal() {
                break now;
            }
        },
    };
    let initial = tradeloom_agents::initial_value(&job.config, job.currency);
    let report = store
        .job_report(&job.id)
        .await
        .map_err(|e| NodeError::transient(format!("simulation job {}: {e}", job.id)))?;
    let mut board = store
        .leaderboard(&job.id, initial)
        .await
        .map_err(|e| NodeError::transient(format!("leaderboard of job {}: {e}", job.id)))?;
    let warnings = tradeloom_agents::tool_use_warnings(&board);
    board.sort_by(|a, b| {
        b.final_value
            .map(|v| v.raw())
            .cmp(&a.final_value.map(|v| v.raw()))
            .then_with(|| a.model.cmp(&b.model))
    });
    let leaderboard: Vec<Value> = board
        .iter()
        .enumerate()
        .map(|(i, e)| {
            json!({
                "rank": i + 1,
                "model": e.model,
                "final_value": e.final_value.map(|v| v.to_string()),
                // Exact decimal strings.
                "total_return": e.total_return.map(|r| r.to_string()),
                "max_drawdown": e.max_drawdown.map(|r| r.to_string()),
                "tool_calls": e.tool_calls,
                "tool_errors": e.tool_errors,
                "refused_days": e.refused_days,
            })
        })
        .collect();
    // The state now, and what it did to this job: days it refused are not results (they run
    // when the job is triggered again after release).
    let mut kill_switch = kill_switch_state(&env.data_dir, workflow_run_id, Some(&job.id));
    let refused: Vec<&tradeloom_store::ModelDay> = report
        .model_days
        .iter()
        .filter(|d| d.status == tradeloom_store::ModelDayStatus::Refused)
        .collect();
    if let Value::Object(note) = &mut kill_switch {
        note.insert("refused_model_days".into(), json!(refused.len()));
        if let Some(first) = refused.first() {
            note.insert(
                "refused_detail".into(),
                json!(first.error.clone().unwrap_or_default()),
            );
        }
    }
    Ok(json!({
        "job_id": job.id,
        "status": job.status.to_string(),
        "progress": report.progress,
        "initial_value": initial.to_string(),
        "leaderboard": leaderboard,
        "warnings": warnings,
        "kill_switch": kill_switch,
    }))
}

/// The run spec file a `backtest` or `paper` node's `spec_path` names, inside the config
/// folder.
fn spec_file(env: &NodeEnv, spec_path: &Template, context: &Value) -> Result<PathBuf, NodeError> {
    let path = spec_path
        .render_string(context)
        .map_err(|e| NodeError::permanent(format!("spec_path: {e}")))?;
    // Run specs come from the config folder too; the message names `spec_path`.
    let file =
        tradeloom_agents::ConfigDir::resolve_in(env.config_dir.as_ref(), &path).map_err(|e| {
            NodeError::permanent(match e {
                tradeloom_agents::ConfigPathError::Disabled => {
                    "spec_path is disabled: this server reads no run specs; start `tradeloom \
                     serve --config-dir DIR` to allow specs under DIR"
                        .to_string()
                }
                tradeloom_agents::ConfigPathError::Refused { requested, reason } => {
                    format!("spec_path `{requested}` {reason}")
                }
            })
        })?;
    Ok(file.path)
}

async fn backtest(
    env: &NodeEnv,
    b: &BacktestNode,
    context: &Value,
    workflow_run_id: &str,
) -> Result<Value, NodeError> {
    let path = spec_file(env, &b.spec_path, context)?;
    let data_dir = env.data_dir.clone();
    // The workflow run's kill switch covers the backtest it starts, as do the global one and
    // the backtest run's own.
    let parents = vec![workflow_run_id.to_string()];
    let outcome = tokio::task::spawn_blocking(move || {
        tradeloom_runs::execute(
            &path,
            tradeloom_runs::RunOptions {
                data_dir,
                parent_runs: parents,
                ..Default::default()
            },
        )
    })
    .await
    .map_err(|e| NodeError::transient(format!("backtest task: {e}")))?
    .map_err(|e| NodeError::permanent(format!("backtest: {e}")))?;
    let metrics = serde_json::to_value(&outcome.metrics).unwrap_or(Value::Null);
    let mut out = Map::new();
    out.insert("run_id".into(), Value::String(outcome.run_id));
    out.insert(
        "run_dir".into(),
        Value::String(outcome.run_dir.display().to_string()),
    );
    out.insert(
        "status".into(),
        serde_json::to_value(outcome.status).unwrap_or(Value::Null),
    );
    out.insert("metrics".into(), metrics);
    out.insert(
        "kill_switch".into(),
        kill_switch_note(&env.data_dir, workflow_run_id),
    );
    Ok(Value::Object(out))
}

/// Where the `script` nodes of `ir` name files that `config_dir` does not hold (or no config
/// folder at all): `(field path, problem)` for each, checked when a workflow is validated or
/// stored so that a missing skill is reported before any run.
pub fn script_file_problems(
    ir: &tradeloom_flow::Ir,
    config_dir: Option<&tradeloom_agents::ConfigDir>,
) -> Vec<(String, String)> {
    ir.nodes()
        .iter()
        .filter_map(|node| {
            let NodeKind::Script(s) = node.kind() else {
                return None;
            };
            let path = format!("nodes[{}].config.script", node.definition_index());
            match tradeloom_agents::ConfigDir::resolve_in(config_dir, &s.script) {
                Ok(_) => None,
                Err(tradeloom_agents::ConfigPathError::Disabled) => Some((
                    path,
                    format!(
                        "`{}`: no config folder to read skills from (`--config-dir DIR`)",
                        s.script
                    ),
                )),
                Err(tradeloom_agents::ConfigPathError::Refused { requested, reason }) => {
                    Some((path, format!("`{requested}` {reason}")))
                }
            }
        })
        .collect()
}

/// Runs the skill of a `script` node in the sandbox (see `tradeloom_sandbox`): the rendered
/// `input` in, the function's JSON return value out. The file must lie inside the config
/// folder; the data dir is never readable by the skill. A failure names the limit hit or carries
/// the Python traceback; it is permanent (the same script fails the same way again).
async fn script(env: &NodeEnv, s: &ScriptNode, context: &Value) -> Result<Value, NodeError> {
    let input = s
        .input
        .render(context)
        .map_err(|e| NodeError::permanent(format!("input: {e}")))?;
    let file = tradeloom_agents::ConfigDir::resolve_in(env.config_dir.as_ref(), &s.script)
        .map_err(|e| {
            NodeError::permanent(match e {
                tradeloom_agents::ConfigPathError::Disabled => {
                    "script is disabled: this server reads no files; start `tradeloom serve \
                     --config-dir DIR` to allow skills under DIR"
                        .to_string()
                }
                tradeloom_agents::ConfigPathError::Refused { requested, reason } => {
                    format!("script `{requested}` {reason}")
                }
            })
        })?;
    let limits = s
        .limits
        .effective()
        .map_err(|e| NodeError::permanent(format!("script: {e}")))?;
    let (display, function) = (s.script.clone(), s.function.clone());
    let protected = vec![env.data_dir.clone()];
    tokio::task::spawn_blocking(move || {
        tradeloom_sandbox::run_skill(
            &tradeloom_sandbox::SandboxPolicy::from_env(),
            &tradeloom_sandbox::ScriptSpec {
                script: &file.path,
                display: &display,
                limits,
                protected: &protected,
            },
            &function,
            &input,
        )
    })
    .await
    .map_err(|e| NodeError::transient(format!("script task: {e}")))?
    .map_err(|e| NodeError::permanent(format!("script `{}`: {e}", s.script)))
}

/// Starts a paper run of the spec and outputs its id at once; the run goes on in this process
/// (see [`crate::engine_runs`]) until its `stop_at`, its feed's end or `POST /runs/{id}/stop`.
/// The workflow run's kill switch covers it.
async fn paper(
    env: &NodeEnv,
    p: &PaperNode,
    context: &Value,
    workflow_run_id: &str,
) -> Result<Value, NodeError> {
    let path = spec_file(env, &p.spec_path, context)?;
    let spec = tokio::task::spawn_blocking(move || tradeloom_runs::load_spec(&path))
        .await
        .map_err(|e| NodeError::transient(format!("paper task: {e}")))?
        .map_err(|e| NodeError::permanent(format!("paper: {e}")))?;
    if crate::engine_runs::EngineMode::of(&spec) != crate::engine_runs::EngineMode::Paper {
        return Err(NodeError::permanent(
            "paper: the spec's mode is not `paper` (use a `backtest` node for backtests)",
        ));
    }
    let started = env
        .engine_runs
        .start(spec, vec![workflow_run_id.to_string()])
        .await
        .map_err(|e| match e {
            crate::engine_runs::StartError::Busy { .. } => {
                NodeError::transient(format!("paper: {e}"))
            }
            other => NodeError::permanent(format!("paper: {other}")),
        })?;
    Ok(json!({
        "run_id": started.run_id,
        "run_dir": started.run_dir.display().to_string(),
        "status": "running",
        "kill_switch": kill_switch_note(&env.data_dir, workflow_run_id),
    }))
}
