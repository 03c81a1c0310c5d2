//! `nodes[].config` for each known node type, as written. Strings documented as templates are
//! parsed by the compiler (see [`crate::template`]); unknown fields are errors.
//!
//! ```yaml
//! - {id: think, type: agent, config: {model: {base_url: "http://127.0.0.1:8080/v1", model: qwen, api_key_env: LLM_KEY, temperature: 0.2, max_tokens: 512, timeout_ms: 30000}, prompt: "Assess {{ inputs.symbol }}", tools: [calc, get_bars], max_steps: 8,
//!     market: {universe: examples/universe, as_of: "{{ inputs.as_of }}"}, fallback: {stance: neutral}}}
//! - {id: buy, type: order, config: {market: {universe: examples/universe, as_of: "{{ inputs.as_of }}"}, proposal: "{{ think.json }}"}}
//! - {id: post, type: http, config: {method: POST, url: "https://hooks.example.com/x", headers: {X-Run: "{{ run.id }}", Authorization: {env: TRADELOOM_SECRET_HOOK, prefix: "Bearer "}}, body: {text: "{{ think.answer }}"}}}
//! - {id: review, type: hitl, config: {prompt: "Trade?", expires_after: 1h, default: reject, approvers: [ops],
//!     notify: {webhook: {url: {env: TRADELOOM_SECRET_HOOK}, format: slack}, approver: ops}}}
//! - {id: sim, type: simulate, config: {config_path: sims/base.yaml}}     # or config: {config: {...}}
//! - {id: bt, type: backtest, config: {spec_path: specs/goog.yaml}}
//! - {id: score, type: script, config: {script: skills/score.py, function: main, input: {px: "{{ a.x }}"}, limits: {memory_mb: 256}}}
//! - {id: shape, type: transform, config: {output: {y: "{{ a.x }}"}}}
//! - {id: pause, type: wait, config: {duration_ms: 200}}
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `agent.model`: an OpenAI-compatible endpoint, and how to call it (the names and meanings of
/// a simulation config's models).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// `http://` or `https://` URL of the API root (e.g. `http://127.0.0.1:8080/v1`).
    pub base_url: String,
    /// The model name the server knows.
    pub model: String,
    /// Name of the environment variable holding the API key (`[A-Z_][A-Z0-9_]*`); none for
    /// servers without keys. The key itself never appears in a definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Sampling temperature, 0 to 2; the server's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Completion token limit per model turn, 1 to [`ModelConfig::MAX_TOKENS`]; the server's
    /// default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Limit of one request in milliseconds, 1 to [`ModelConfig::MAX_TIMEOUT_MS`] (default
    /// 60 000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Retries of a request on 429, 5xx, timeouts and connection errors, 0 to
    /// [`ModelConfig::MAX_RETRIES`] (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// `tool_choice` sent with each request that offers tools: `auto` (the server's default),
    /// `required` (small local models that answer in text under `auto`) or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
}

/// `agent.model.tool_choice`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolChoice {
    Auto,
    Required,
    None,
}

impl ModelConfig {
    /// Every problem of the block as `(field, message)`: the base URL's scheme, an empty model,
    /// an `api_key_env` that is not a variable name (never echoed: it may be a pasted key), and
    /// the ranges of the numbers. The workflow compiler and agent definitions check the same.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let url = &self.base_url;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            out.push((
                "base_url",
                format!("`{url}` must start with http:// or https://"),
            ));
        }
        if self.model.trim().is_empty() {
            out.push(("model", "must not be empty".to_string()));
        }
        if let Some(env) = &self.api_key_env
            && !is_env_name(env)
        {
            out.push((
                "api_key_env",
                "is not an environment variable name (A-Z, 0-9, `_`; not starting with a digit); it names the variable that holds the API key, never the key itself".to_string(),
            ));
        }
        if let Some(t) = self.temperature
            && !(0.0..=2.0).contains(&t)
        {
            out.push(("temperature", format!("must be between 0 and 2, got {t}")));
        }
        if let Some(n) = self.max_tokens
            && !(1..=Self::MAX_TOKENS).contains(&n)
        {
            out.push((
                "max_tokens",
                format!("must be 1 to {}, got {n}", Self::MAX_TOKENS),
            ));
        }
        if let Some(ms) = self.timeout_ms
            && !(1..=Self::MAX_TIMEOUT_MS).contains(&ms)
        {
            out.push((
                "timeout_ms",
                format!("must be 1 to {} (one hour), got {ms}", Self::MAX_TIMEOUT_MS),
            ));
        }
        if let Some(n) = self.max_retries
            && n > Self::MAX_RETRIES
        {
            out.push((
                "max_retries",
                format!("must be 0 to {}, got {n}", Self::MAX_RETRIES),
            ));
        }
        out
    }

    /// The largest `max_tokens`.
    pub const MAX_TOKENS: u32 = 1_000_000;
    /// The largest `timeout_ms` (one hour).
    pub const MAX_TIMEOUT_MS: u64 = 3_600_000;
    /// The largest `max_retries`.
    pub const MAX_RETRIES: u32 = 10;
}

/// The tools a workflow agent may be given (`config.tools`); the orchestrator implements each
/// (the market tools and `calc` with the simulations' own code).
pub const AGENT_TOOLS: [&str; 6] = [
    "calc",
    "get_bars",
    "get_portfolio",
    "get_price",
    "patch_workflow",
    "search_news",
];

/// The prefix of a tool that calls a registered skill: `skill:momentum`, `skill:momentum@2`.
pub const SKILL_TOOL_PREFIX: &str = "skill:";

/// The skill a tool name calls (`skill:momentum@2`), or `None` for another tool. `Err` says
/// what is wrong with a `skill:` name.
pub fn skill_tool(tool: &str) -> Option<Result<tradeloom_core::DefinitionRef, String>> {
    tool.strip_prefix(SKILL_TOOL_PREFIX)
        .map(tradeloom_core::DefinitionRef::parse)
}

/// The tools that read the market: an agent given one of them needs `config.market`.
pub const MARKET_TOOLS: [&str; 4] = ["get_bars", "get_portfolio", "get_price", "search_news"];

/// Which price of the as-of date's bar orders execute at, as in a simulation config: `open`
/// (the node runs at 14:30 UTC of `as_of` and sees nothing of the day after the open) or
/// `close` (at 21:00 UTC, seeing the whole day's bar).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferencePrice {
    #[default]
    Open,
    Close,
}

/// `market:` of `agent` and `order` nodes: the daily bars and news the market tools read, the
/// date they are seen as of, and the simulated book orders execute on. Paths are those of an
/// inline simulation config: relative ones resolve against the server's base folder.
///
/// ```yaml
/// market:
///   universe: examples/universe        # a folder of daily bar files, one per symbol
///   news: examples/universe/news.jsonl # default: <universe>/news.jsonl when it exists
///   symbols: [AAA, BBB]                # default: every symbol of the universe
///   as_of: "{{ inputs.as_of }}"        # template rendering to YYYY-MM-DD
///   reference_price: open              # or close; default open
///   initial_cash: 10000                # the book's cash (default 10000)
///   currency: USD                      # default USD
///   fee_bps: 10                        # fee on each trade's notional (default 10)
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MarketConfig {
    /// The folder of daily bar files.
    pub universe: String,
    /// A news corpus (JSONL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub news: Option<String>,
    /// A subset of the universe's symbols.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbols: Option<Vec<String>>,
    /// Template: the as-of date (`YYYY-MM-DD`); nothing after it is ever shown or traded on.
    pub as_of: String,
    #[serde(default)]
    pub reference_price: ReferencePrice,
    /// Cash of the book, more than zero; default 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_cash: Option<tradeloom_core::Decimal>,
    /// ISO code; default `USD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Fee in basis points of each trade's notional (two decimals at most); default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_bps: Option<tradeloom_core::Decimal>,
}

/// `type: order`: executes an approved proposal on the simulated book of `market` at the
/// as-of date's reference price, through the kill switch; the fill is journaled in a run
/// folder. Output: `{"run_id", "run_dir", "status": "filled" | "not_filled" | "refused" |
/// "no_order", "fills": [...], "reason"?}`. With `paper_run` (rendering to a run id), the
/// order goes to that running paper run instead (`external_orders: true` in its spec), which
/// journals it and fills it on its next bar; the status is then `filled`,
/// `partially_filled`, `accepted` (still working after `wait_fill_ms`), `refused`,
/// `cancelled`, `expired` or `no_order`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderConfig {
    /// The simulated book; required unless `paper_run` is given (then used when `paper_run`
    /// renders empty).
    #[serde(default)]
    pub market: Option<MarketConfig>,
    /// Template: the id of a running paper run to send the order to (empty: the simulated
    /// book of `market`).
    #[serde(default)]
    pub paper_run: Option<String>,
    /// How long to wait for a paper run's fill, 0 to 600000 ms (default 10000); the order
    /// keeps working in the run after that.
    #[serde(default)]
    pub wait_fill_ms: Option<u64>,
    /// Any JSON, strings being templates, rendering to `{symbol, side, quantity, limit?}`
    /// (`side` buy, sell or hold; `action` is read when `side` is absent). Typically
    /// `"{{ trader.json }}"`.
    pub proposal: Value,
}

fn default_max_steps() -> u32 {
    10
}

/// `type: agent`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The endpoint. Give `model` or `agent`, not both.
    #[serde(default)]
    pub model: Option<ModelConfig>,
    /// A registered agent (`POST /agents`): `name` (its latest version when a run starts) or
    /// `name@version`. The node uses its model, its system prompt, and its tools before the
    /// node's own `tools`. Resolved when a run starts, into `model`, `system_prompt`, `tools`
    /// and `resolved_agent`.
    #[serde(default)]
    pub agent: Option<String>,
    /// The agent version (`name@version`) a run resolved `agent` to: recorded by the runtime,
    /// not written by hand.
    #[serde(default)]
    pub resolved_agent: Option<String>,
    /// Instructions added to the system prompt of workflow agents.
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// Template: the task given to the agent.
    pub prompt: String,
    /// Tool names the agent may call (unique, each one of [`AGENT_TOOLS`] or `skill:NAME`,
    /// `skill:NAME@VERSION`: a registered skill, pinned to its latest version when a run
    /// starts).
    #[serde(default)]
    pub tools: Vec<String>,
    /// Model turns at most, 1 to [`crate::limits::MAX_AGENT_STEPS`] (default 10).
    #[serde(default = "default_max_steps")]
    pub max_steps: u32,
    /// The market the market tools ([`MARKET_TOOLS`]) read; required when one is listed.
    #[serde(default)]
    pub market: Option<MarketConfig>,
    /// Template: a running paper run (`external_orders: true`) whose account `get_portfolio`
    /// shows instead of a fresh book of the market's `initial_cash` (empty when rendered: the
    /// fresh book). Needs `market`.
    #[serde(default)]
    pub paper_run: Option<String>,
    /// Any JSON, strings being templates: the node's `json` when its attempts are exhausted
    /// without a usable answer (no JSON object where the prompt asks for one, an answer cut
    /// off by `max_tokens`, or `max_steps` reached without a final answer). The output then
    /// carries `fallback: true` and `fallback_reason`. Never used for an unreachable endpoint,
    /// an HTTP error, a timeout or a bad configuration: those still fail the node.
    #[serde(default)]
    pub fallback: Option<Value>,
    /// A JSON Schema the answer's JSON must meet (`type`, `properties`, `required`, `enum`, …:
    /// the keywords of skills' schemas). An answer that does not (a field missing, a value
    /// of the wrong type) is not usable: retried, then `fallback`, like an answer without JSON.
    #[serde(default)]
    pub output_schema: Option<Value>,
}

/// An HTTP method an `http` node may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
        })
    }
}

/// `type: http`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub method: HttpMethod,
    /// Template; when it starts with text, the text must start with `http://` or `https://`.
    pub url: String,
    /// Header name → template, or a secret held in an environment variable (`{env: NAME,
    /// prefix: "Bearer "}`). A header that carries a credential (see
    /// [`is_sensitive_header`]) must be a secret reference: definitions are readable by every
    /// viewer, so a value written there is not secret.
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderConfig>,
    /// Any JSON, strings being templates; a string body is sent as text, anything else as JSON.
    #[serde(default)]
    pub body: Option<Value>,
}

/// An `http` header's value as written: text (a template), or a reference to a secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum HeaderConfig {
    /// A template.
    Text(String),
    /// A secret read from the environment when the request is sent.
    Secret(SecretRef),
}

impl<'de> Deserialize<'de> for HeaderConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = HeaderConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string (a template) or a secret reference {env: NAME, prefix: TEXT}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<HeaderConfig, E> {
                Ok(HeaderConfig::Text(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<HeaderConfig, A::Error> {
                SecretRef::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(HeaderConfig::Secret)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A secret held in an environment variable of the server: the definition names the variable,
/// never the value. The server sends it only if the operator allow-listed the variable (`serve
/// --llm-key-env NAME`, or a name starting with `TRADELOOM_SECRET_` or `TRADELOOM_LLM_KEY_`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// The variable's name (`[A-Z_][A-Z0-9_]*`).
    pub env: String,
    /// Text sent before the value, e.g. `Bearer `; default none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
}

/// Whether a header carries a credential, so that its value must not be written in a
/// definition: `Authorization`, `Proxy-Authorization`, `Cookie`, and any name containing
/// `token`, `secret`, `key`, `password`, `credential` or `session` (any case).
pub fn is_sensitive_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(
        name.as_str(),
        "authorization" | "proxy-authorization" | "cookie"
    ) || [
        "token",
        "secret",
        "key",
        "password",
        "credential",
        "session",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// Whether `name` is an environment variable name as tradeloom accepts them: `A-Z`, `0-9`, `_`,
/// not starting with a digit.
pub fn is_env_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The outcome of a `hitl` node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Reject,
}

/// `type: hitl`. The node's output is `{"decision": "approve" | "reject", ...}`; when nobody
/// decides within `expires_after`, the decision is `default`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HitlConfig {
    /// Template: the question shown to the approver.
    pub prompt: String,
    /// Duration text (`30s`, `15m`, `1h`, `2d`), at most [`crate::limits::MAX_EXPIRY_MS`].
    pub expires_after: String,
    pub default: Decision,
    /// Who may decide; none means anyone who can reach the run.
    #[serde(default)]
    pub approvers: Option<Vec<String>>,
    /// A chat message with one-click approve/reject links, sent when the approval is created.
    #[serde(default)]
    pub notify: Option<NotifyConfig>,
}

/// `hitl.config.notify`: post the approval to a Slack- or Telegram-compatible webhook with an
/// approve and a reject link, each signed, expiring, single-use and bound to `approver`.
///
/// ```yaml
/// notify:
///   webhook: {url: {env: TRADELOOM_SECRET_SLACK_HOOK}, format: slack}
///   approver: bob                       # the links decide as `bob`
///   link_base: "https://tradeloom.example.com"   # default: serve --public-url
///   link_expires_after: 30m             # default and at most: the approval's expires_after
///   forwardable: false                  # default: the link also needs bob's API key
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    pub webhook: WebhookConfig,
    /// The API key name the links decide as; one of `approvers` when those are given.
    pub approver: String,
    /// `http(s)://host[:port][/prefix]` the links start with (the server's address as the
    /// approver's browser reaches it); default: the server's `--public-url`.
    #[serde(default)]
    pub link_base: Option<String>,
    /// Duration text; the links stop working after it (and in any case when the approval
    /// expires). Default: the approval's `expires_after`.
    #[serde(default)]
    pub link_expires_after: Option<String>,
    /// Whether a link decides on its own (anyone holding it acts as `approver`), or needs the
    /// approver's own API key too (the default, `false`).
    #[serde(default)]
    pub forwardable: bool,
}

/// The webhook a [`NotifyConfig`] posts to.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The webhook's URL, or an environment variable holding it (`{env: NAME}`): Slack webhook
    /// and Telegram bot URLs carry their credential in the path, and definitions are readable
    /// by every viewer.
    pub url: HeaderConfig,
    pub format: WebhookFormat,
    /// Telegram's `chat_id` (a number or an `@channel` name); required for `telegram`, refused
    /// for `slack`.
    #[serde(default)]
    pub chat_id: Option<ChatId>,
}

/// The message shape a webhook takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// `{"text", "blocks"}` with URL buttons (Slack incoming webhooks, Mattermost, …).
    Slack,
    /// `{"chat_id", "text", "reply_markup": {"inline_keyboard"}}` (the Bot API's
    /// `sendMessage`).
    Telegram,
}

/// A Telegram chat: its numeric id or `@username`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ChatId {
    Number(i64),
    Name(String),
}

/// `type: simulate`: exactly one of `config_path` and `config`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulateConfig {
    /// Template: path of a simulation config file.
    #[serde(default)]
    pub config_path: Option<String>,
    /// An inline simulation config; strings are templates.
    #[serde(default)]
    pub config: Option<Value>,
}

/// `type: backtest`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BacktestConfig {
    /// Template: path of the run spec.
    pub spec_path: String,
}

/// `type: paper`: starts a paper run of the spec (`mode: paper` with a `feed:`) and outputs
/// `{"run_id", "run_dir", "status": "running"}` at once; the run goes on until its `stop_at`,
/// the feed's end or `POST /runs/{id}/stop`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperConfig {
    /// Template: path of the run spec.
    pub spec_path: String,
}

/// `type: script`: runs `function(input)` of a Python skill in the sandbox; its return value
/// (JSON) is the node's output.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptConfig {
    /// The skill's file, relative to the server's config folder (no `..`, not absolute).
    pub script: String,
    /// The function to call (default `main`).
    #[serde(default)]
    pub function: Option<String>,
    /// Any JSON, strings being templates: the function's argument. Absent means `null`.
    #[serde(default)]
    pub input: Value,
    /// The sandbox's limits (see the "Sandboxed scripts" page), each in its range.
    #[serde(default)]
    pub limits: Option<tradeloom_core::script_limits::ScriptLimits>,
}

/// `type: transform`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformConfig {
    /// Any JSON, strings being templates; the node's output. Absent means `null` (a node that
    /// only marks a branch).
    #[serde(default)]
    pub output: Value,
}

/// `type: wait`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitConfig {
    /// Milliseconds, more than zero and at most [`crate::limits::MAX_WAIT_MS`].
    pub duration_ms: u64,
}
