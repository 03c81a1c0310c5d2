//! The simulation config: which models trade which symbols over which dates, with how much
//! cash. Read from YAML or JSON (a file, or the `config` object of `POST /simulate/trigger`);
//! unknown fields are errors, and every error names the file, line or field.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tradeloom_core::{Currency, Decimal, Money};
use tradeloom_net::connectivity::{Endpoint, EnvRequirement, Provider, ProviderKind};

use crate::error::AgentError;

/// Which price of the session's bar trades execute at. `open`: the session runs at the open
/// (14:30 UTC) and sees nothing of the day after it; `close`: it runs at the close (21:00 UTC)
/// and sees the whole day's bar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferencePrice {
    #[default]
    Open,
    Close,
}

impl ReferencePrice {
    pub const fn as_str(self) -> &'static str {
        match self {
            ReferencePrice::Open => "open",
            ReferencePrice::Close => "close",
        }
    }
}

/// One model of a job: an OpenAI-compatible endpoint and the model name sent to it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Unique within the job; names the model's results and run folder.
    pub name: String,
    /// Any OpenAI-compatible endpoint, e.g. `https://api.openai.com/v1`, `http://127.0.0.1:8089/v1`.
    /// Left out, the default endpoint `OPENAI_API_BASE` of the environment (see
    /// [`crate::openai_env`]), whose key `OPENAI_API_KEY` (when set) the model then uses.
    #[serde(default)]
    pub base_url: String,
    /// Sent as the request's `model`.
    #[serde(default)]
    pub model: String,
    /// A registered agent (`POST /agents`) whose model block, system prompt and tools this
    /// model uses: `name` (its latest version when the job is created) or `name@version`.
    /// Exclusive with `base_url`, `model`, `api_key_env`, `temperature`, `max_tokens`,
    /// `timeout_ms`, `max_retries`, `system_prompt` and `tools` (the agent gives them);
    /// `backoff_ms` and `tool_choice` may be given with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The agent version (`name@version`) the job resolved `agent` to, with the fields it
    /// gave: recorded in the job's config so that a re-trigger is the same job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_agent: Option<String>,
    /// The name of the environment variable holding the API key (never the key itself). Under
    /// `tradeloom serve` it must be on the operator's allow-list (`--llm-key-env`, or a
    /// `TRADELOOM_LLM_KEY_` name); `tradeloom simulate` allows the names its config file gives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Per-request timeout; default 60 000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Retries on 429, 5xx and timeouts; default 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// The first retry's delay bound in milliseconds, doubling per retry (jittered, at most
    /// 30 s); default 500.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_ms: Option<u64>,
    /// `tool_choice` sent with each request: `auto` (default), `required` (the model must call
    /// a tool: small local models that answer in text under `auto`) or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<tradeloom_llm::ToolChoice>,
    /// Memory and reflection: after each completed day the model writes a short lesson, and
    /// its next sessions carry its last lessons and decisions. Off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<crate::memory::MemoryConfig>,
    /// Instructions added after the simulation's system prompt (at most
    /// [`MAX_SYSTEM_PROMPT`] bytes): a registered agent's `system_prompt`, or written here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// The tools the session offers besides `buy` and `sell` (which every session has, to
    /// trade): some of [`SESSION_TOOLS`], each once. Absent: the simulation's own set
    /// ([`crate::TOOL_NAMES`]). A registered agent that lists tools gives them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
}

/// The tools a model's (or its agent's) `tools` may name: the market tools and `calc`. `buy`
/// and `sell` are offered to every session whatever it lists (a session trades through them);
/// listing them is allowed and changes nothing.
pub const SESSION_TOOLS: [&str; 5] = [
    "calc",
    "get_bars",
    "get_portfolio",
    "get_price",
    "search_news",
];

/// The tools every session offers.
pub const ORDER_TOOLS: [&str; 2] = ["buy", "sell"];

/// The longest `system_prompt` of a model, in bytes (a registered agent's limit).
pub const MAX_SYSTEM_PROMPT: usize = 32 * 1024;

/// What is wrong with tool `tool` of a model's `tools`, or `None` when a session has it.
fn session_tool_problem(tool: &str) -> Option<String> {
    if SESSION_TOOLS.contains(&tool) || ORDER_TOOLS.contains(&tool) {
        return None;
    }
    if tool.starts_with("skill:") {
        return Some(
            "registered skills are tools of workflow agent nodes only; simulations cannot call \
             them (use the agent in a workflow `agent` node, or register a version of it \
             without the skill)"
                .to_string(),
        );
    }
    Some(format!(
        "simulations have no tool `{tool}`; a session offers {}, and always buy and sell",
        SESSION_TOOLS.join(", ")
    ))
}

/// A folder of daily bar files, one per symbol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathRef {
    pub path: String,
}

/// The simulation config as written by the user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulationConfig {
    pub models: Vec<ModelConfig>,
    pub universe: PathRef,
    /// News corpus (JSONL); default `<universe>/news.jsonl` when that file exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub news: Option<PathRef>,
    /// A subset of the universe's symbols; default all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbols: Option<Vec<String>>,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    /// Default 10000.
    #[serde(default = "default_initial_cash")]
    pub initial_cash: Decimal,
    /// ISO code; default USD.
    #[serde(default = "default_currency")]
    pub currency: String,
    #[serde(default)]
    pub reference_price: ReferencePrice,
    /// Fee on every trade's notional in basis points (two decimals at most); default 10.
    #[serde(default = "default_fee_bps")]
    pub fee_bps: Decimal,
    /// LLM calls per model-day before it fails; default 12.
    #[serde(default = "default_max_steps")]
    pub max_steps: u32,
    /// Tool calls that may fail per model-day before it fails; default 5.
    #[serde(default = "default_max_tool_errors")]
    pub max_tool_errors: u32,
    /// Models run in parallel per date; default all of them, at most 16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel_models: Option<u32>,
}

fn default_initial_cash() -> Decimal {
    Decimal::from_int(10_000)
}

fn default_currency() -> String {
    "USD".to_string()
}

fn default_fee_bps() -> Decimal {
    Decimal::from_int(10)
}

const fn default_max_steps() -> u32 {
    12
}

const fn default_max_tool_errors() -> u32 {
    5
}

/// A config checked and with its paths made absolute, ready to become a job.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedConfig {
    pub config: SimulationConfig,
    /// Where the config came from, as errors name it: the file's path, or `config` (inline).
    pub origin: String,
    pub universe_dir: PathBuf,
    pub news_path: Option<PathBuf>,
    pub currency: Currency,
    pub initial_cash: Money,
    pub fee: tradeloom_core::Bps,
}

impl ResolvedConfig {
    /// The config as stored with the job (and hashed to recognise a re-trigger).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(&self.config).unwrap_or(Value::Null)
    }

    pub fn model_names(&self) -> Vec<String> {
        self.config.models.iter().map(|m| m.name.clone()).collect()
    }

    pub fn model(&self, name: &str) -> Option<&ModelConfig> {
        self.config.models.iter().find(|m| m.name == name)
    }

    /// The providers of the job for `connectivity_readiness.json` and the probe: each model
    /// (its `api_key_env`, required when named, and `GET {base_url}/models`; no endpoint for a
    /// model whose `agent` is not resolved yet), the universe and the news corpus (local files)
    /// and the simulated book the models trade on.
    pub fn connectivity_providers(&self) -> Vec<Provider> {
        let mut providers: Vec<Provider> = self
            .config
            .models
            .iter()
            .map(|m| Provider {
                name: m.name.clone(),
                kind: ProviderKind::Llm,
                env: m
                    .api_key_env
                    .iter()
                    .map(|var| EnvRequirement {
                        var: var.clone(),
                        required: true,
                    })
                    .collect(),
                // A model that names an agent not resolved yet ([`resolve_agents`]) has no
                // endpoint to probe: the agent's is known once resolved.
                endpoint: m.agent.is_none().then(|| Endpoint {
                    name: m.name.clone(),
                    // Shown in connectivity files: never the credentials of a base_url.
                    url: tradeloom_core::redact_userinfo(&format!(
                        "{}/models",
                        m.base_url.trim_end_matches('/')
                    )),
                }),
            })
            .collect();
        providers.push(Provider::local("universe", ProviderKind::Data));
        if self.news_path.is_some() {
            providers.push(Provider::local("news", ProviderKind::Data));
        }
        providers.push(Provider::local("venue:sim", ProviderKind::Venue));
        providers
    }

    /// Models run in parallel per date.
    pub fn parallelism(&self) -> usize {
        let n = self.config.models.len().max(1);
        self.config
            .max_parallel_models
            .map_or(n.min(16), |p| (p as usize).clamp(1, 16))
    }
}

/// Reads a YAML or JSON config file; relative paths in it are relative to the file's folder.
pub fn load_config(path: &Path) -> Result<ResolvedConfig, AgentError> {
    let text = std::fs::read_to_string(path).map_err(|e| AgentError::Config {
        place: path.display().to_string(),
        message: format!("cannot read the config: {e}"),
    })?;
    let config = parse_config(&text, &path.display().to_string())?;
    let base = path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    resolve(config, &base, &path.display().to_string())
}

/// Reads an inline JSON config (the API's `config` object); relative paths are relative to
/// `base` (the server's working directory).
pub fn config_from_value(value: &Value, base: &Path) -> Result<ResolvedConfig, AgentError> {
    if !value.is_object() {
        return Err(AgentError::Config {
            place: "config".into(),
            message: "the config must be a JSON object".into(),
        });
    }
    let text = serde_json::to_string(value).unwrap_or_default();
    // Through the YAML reader so messages name the field path the same way as for files; the
    // line/column of a re-serialised object mean nothing to the caller, so they are dropped.
    let config = parse_config(&text, "config").map_err(|e| match e {
        AgentError::Config { message, .. } => AgentError::Config {
            place: "config".into(),
            message,
        },
        other => other,
    })?;
    resolve(config, base, "config")
}

fn parse_config(text: &str, origin: &str) -> Result<SimulationConfig, AgentError> {
    yaml_serde::from_str::<SimulationConfig>(text).map_err(|e| {
        let line_column = e.location().map(|l| (l.line(), l.column()));
        let (place, message) = tradeloom_core::locate_error(origin, e.to_string(), line_column);
        AgentError::Config { place, message }
    })
}

/// Reads the config file `path` for a caller who must not see its content (an API caller, a
/// workflow): errors name `shown` (the file as the caller named it), the line and the field,
/// and never quote a value of the file. The caller has checked that `path` may be read.
pub(crate) fn load_config_quietly(path: &Path, shown: &str) -> Result<ResolvedConfig, AgentError> {
    let text = std::fs::read_to_string(path).map_err(|e| AgentError::Config {
        place: shown.to_string(),
        message: match e.kind() {
            std::io::ErrorKind::InvalidData => "the config is not UTF-8 text".to_string(),
            _ => format!("cannot read the config: {}", e.kind()),
        },
    })?;
    let config = parse_config(&text, shown).map_err(|e| match e {
        AgentError::Config { place, message } => AgentError::Config {
            place,
            message: hide_values(&message),
        },
        other => other,
    })?;
    let base = path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    resolve(config, &base, shown)
}

/// A parse error without the values of the input it quotes: `invalid type: string "root:x:0:0",
/// expected struct SimulationConfig` becomes `invalid type: string, expected struct
/// SimulationConfig`. What follows `, expected` is the program's own words and is kept; so are
/// field names that look like field names (`unknown field `modles``).
pub(crate) fn hide_values(message: &str) -> String {
    let (head, tail) = match message.find(", expected") {
        Some(i) => message.split_at(i),
        None => (message, ""),
    };
    let mut out = String::with_capacity(message.len());
    let mut chars = head.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let mut escaped = false;
                for d in chars.by_ref() {
                    match d {
                        _ if escaped => escaped = false,
                        '\\' => escaped = true,
                        '"' => break,
                        _ => {}
                    }
                }
                trim_space(&mut out);
            }
            '`' => {
                let quoted: String = chars.by_ref().take_while(|&d| d != '`').collect();
                let field_like = quoted.len() <= 64
                    && !quoted.is_empty()
                    && quoted
                        .chars()
                        .all(|d| d.is_ascii_alphanumeric() || "_-.".contains(d));
                if out.ends_with("field ") && field_like {
                    out.push('`');
                    out.push_str(&quoted);
                    out.push('`');
                } else {
                    trim_space(&mut out);
                }
            }
            other => out.push(other),
        }
    }
    out.push_str(tail);
    out
}

fn trim_space(out: &mut String) {
    if out.ends_with(' ') {
        out.pop();
    }
}

fn absolute(base: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    std::path::absolute(&joined).unwrap_or(joined)
}

/// The first field of `model` that an `agent` reference gives and that is set anyway.
fn agent_exclusive_field(model: &ModelConfig) -> Option<&'static str> {
    [
        ("base_url", !model.base_url.is_empty()),
        ("model", !model.model.is_empty()),
        ("api_key_env", model.api_key_env.is_some()),
        ("temperature", model.temperature.is_some()),
        ("max_tokens", model.max_tokens.is_some()),
        ("timeout_ms", model.timeout_ms.is_some()),
        ("max_retries", model.max_retries.is_some()),
        ("system_prompt", model.system_prompt.is_some()),
        ("tools", model.tools.is_some()),
    ]
    .into_iter()
    .find_map(|(field, given)| given.then_some(field))
}

/// The model block of a stored agent definition (the fields a simulation model takes from it;
/// the rest of the definition is for workflow agents).
#[derive(Deserialize)]
struct AgentModelBlock {
    base_url: String,
    model: String,
    #[serde(default)]
    api_key_env: Option<String>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    max_retries: Option<u32>,
    #[serde(default)]
    tool_choice: Option<tradeloom_llm::ToolChoice>,
}

/// `config` with every model's `agent` reference resolved from `store`: the agent's version
/// (the latest now, when the reference names none) gives the model its `base_url`, `model`,
/// `api_key_env`, `temperature`, `max_tokens`, `timeout_ms` and `max_retries` (and its `memory`
/// settings and `tool_choice` when the model gives none), and is recorded
/// as `resolved_agent: name@version` in place of `agent`, so the job's config (and its hash)
/// pins it. A config without references comes back unchanged. An unknown agent or version is
/// an error naming the model's field and the reference.
pub async fn resolve_agents(
    config: &ResolvedConfig,
    store: &dyn tradeloom_store::DefinitionStore,
) -> Result<ResolvedConfig, AgentError> {
    let mut out = config.clone();
    for (i, model) in out.config.models.iter_mut().enumerate() {
        let Some(agent) = model.agent.take() else {
            continue;
        };
        let place = format!("{}: models[{i}].agent", config.origin);
        let wanted =
            tradeloom_core::DefinitionRef::parse(&agent).map_err(|message| AgentError::Config {
                place: place.clone(),
                message,
            })?;
        let version = store
            .definition_version(
                tradeloom_store::DefinitionKind::Agent,
                &wanted.name,
                wanted.version,
            )
            .await
            .map_err(|e| match e {
                tradeloom_store::StoreError::NotFound { what } => AgentError::Config {
                    place: place.clone(),
                    message: format!("`{agent}`: no {what}; register it with POST /agents"),
                },
                other => AgentError::Store(other),
            })?;
        let body: Value = serde_json::from_str(&version.body).map_err(|e| AgentError::Config {
            place: place.clone(),
            message: format!("agent `{agent}` is stored unreadably: {e}"),
        })?;
        let block: AgentModelBlock = body
            .get("model")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .ok()
            .flatten()
            .ok_or_else(|| AgentError::Config {
                place: place.clone(),
                message: format!("agent `{agent}` has no readable `model` block"),
            })?;
        model.base_url = block.base_url;
        model.model = block.model;
        model.api_key_env = block.api_key_env;
        model.temperature = block.temperature;
        model.max_tokens = block.max_tokens;
        model.timeout_ms = block.timeout_ms;
        model.max_retries = block.max_retries;
        if model.tool_choice.is_none() {
            model.tool_choice = block.tool_choice;
        }
        // The agent's memory settings, unless the model gives its own.
        if model.memory.is_none()
            && let Some(memory) = body.get("memory").filter(|m| !m.is_null())
        {
            let settings: crate::memory::MemoryConfig = serde_json::from_value(memory.clone())
                .map_err(|e| AgentError::Config {
                    place: place.clone(),
                    message: format!("agent `{agent}`: memory: {e}"),
                })?;
            if let Err((field, message)) = settings.check() {
                return Err(AgentError::Config {
                    place: place.clone(),
                    message: format!("agent `{agent}`: memory.{field}: {message}"),
                });
            }
            model.memory = Some(settings);
        }
        let pinned = wanted.pinned(version.version).to_string();
        // The agent's instructions and tools; a tool a session does not have refuses the job.
        model.system_prompt = body
            .get("system_prompt")
            .and_then(Value::as_str)
            .filter(|p| !p.trim().is_empty())
            .map(str::to_string);
        let tools: Vec<String> = body
            .get("tools")
            .and_then(Value::as_array)
            .map(|tools| {
                tools
                    .iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for tool in &tools {
            if let Some(reason) = session_tool_problem(tool) {
                return Err(AgentError::AgentTool {
                    place: place.clone(),
                    agent: pinned,
                    tool: tool.clone(),
                    reason,
                });
            }
        }
        model.tools = (!tools.is_empty()).then_some(tools);
        model.resolved_agent = Some(pinned);
    }
    Ok(out)
}

/// Semantic checks the YAML shape cannot express.
fn resolve(
    mut config: SimulationConfig,
    base: &Path,
    origin: &str,
) -> Result<ResolvedConfig, AgentError> {
    let err = |field: &str, message: String| AgentError::Config {
        place: format!("{origin}: {field}"),
        message,
    };
    if config.models.is_empty() {
        return Err(err("models", "at least one model is required".into()));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, model) in config.models.iter_mut().enumerate() {
        let field = format!("models[{i}]");
        if let Some(agent) = &model.agent {
            if let Err(e) = tradeloom_core::DefinitionRef::parse(agent) {
                return Err(err(&format!("{field}.agent"), e));
            }
            if let Some(given) = agent_exclusive_field(model) {
                return Err(err(
                    &format!("{field}.{given}"),
                    format!(
                        "`{given}` comes from agent `{agent}`; give `agent` or the model's \
                         fields, not both"
                    ),
                ));
            }
        }
        if model.agent.is_none() && model.base_url.trim().is_empty() {
            let Some(endpoint) = crate::openai_env::default_endpoint() else {
                return Err(err(
                    &format!("{field}.base_url"),
                    format!(
                        "no endpoint: give `base_url`, or set {} to the default endpoint",
                        crate::openai_env::BASE_ENV
                    ),
                ));
            };
            model.base_url = endpoint;
            if model.api_key_env.is_none() && crate::openai_env::default_key_is_set() {
                model.api_key_env = Some(crate::openai_env::KEY_ENV.to_string());
            }
        }
        let name = model.name.trim();
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(err(
                &format!("{field}.name"),
                format!(
                    "model name `{}` must be 1 to 64 characters of letters, digits, `-`, `_` or `.`",
                    model.name
                ),
            ));
        }
        if !seen.insert(name.to_string()) {
            return Err(err(
                &format!("{field}.name"),
                format!("model name `{name}` is used twice; names must be unique within a job"),
            ));
        }
        if let Some(prompt) = &model.system_prompt
            && prompt.len() > MAX_SYSTEM_PROMPT
        {
            return Err(err(
                &format!("{field}.system_prompt"),
                format!(
                    "{} bytes is more than the maximum of {MAX_SYSTEM_PROMPT}",
                    prompt.len()
                ),
            ));
        }
        if let Some(tools) = &model.tools {
            let mut listed = std::collections::BTreeSet::new();
            for (k, tool) in tools.iter().enumerate() {
                if let Some(problem) = session_tool_problem(tool) {
                    return Err(err(&format!("{field}.tools[{k}]"), problem));
                }
                if !listed.insert(tool) {
                    return Err(err(
                        &format!("{field}.tools[{k}]"),
                        format!("`{tool}` is listed twice"),
                    ));
                }
            }
        }
        if model.agent.is_some() {
            // Its endpoint is checked when the job is created (`resolve_agents`).
            continue;
        }
        if !(model.base_url.starts_with("http://") || model.base_url.starts_with("https://")) {
            return Err(err(
                &format!("{field}.base_url"),
                format!("`{}` is not an http:// or https:// URL", model.base_url),
            ));
        }
        if model.model.trim().is_empty() {
            return Err(err(&format!("{field}.model"), "empty model name".into()));
        }
        if let Some(t) = model.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(err(
                &format!("{field}.temperature"),
                format!("temperature must be between 0 and 2, got {t}"),
            ));
        }
        if let Some(Err((name, message))) = model.memory.as_ref().map(|m| m.check()) {
            return Err(err(&format!("{field}.memory.{name}"), message));
        }
    }
    if config.end_date < config.start_date {
        return Err(err(
            "end_date",
            format!(
                "end_date {} is before start_date {}",
                config.end_date, config.start_date
            ),
        ));
    }
    let currency =
        Currency::from_code(&config.currency).map_err(|e| err("currency", e.to_string()))?;
    if config.initial_cash.is_negative() || config.initial_cash.is_zero() {
        return Err(err(
            "initial_cash",
            format!("initial_cash must be positive, got {}", config.initial_cash),
        ));
    }
    let initial_cash = config.initial_cash.to_money(currency);
    let fee =
        tradeloom_core::Bps::fee_rate(config.fee_bps).map_err(|e| err("fee_bps", e.to_string()))?;
    if config.max_steps == 0 || config.max_steps > 200 {
        return Err(err(
            "max_steps",
            format!("max_steps must be 1 to 200, got {}", config.max_steps),
        ));
    }
    let universe_dir = absolute(base, &config.universe.path);
    if !universe_dir.is_dir() {
        return Err(err(
            "universe.path",
            format!("universe folder {} does not exist", universe_dir.display()),
        ));
    }
    config.universe.path = universe_dir.display().to_string();
    let news_path = match &config.news {
        Some(news) => {
            let path = absolute(base, &news.path);
            if !path.is_file() {
                return Err(err(
                    "news.path",
                    format!("news file {} does not exist", path.display()),
                ));
            }
            Some(path)
        }
        None => Some(universe_dir.join("news.jsonl")).filter(|p| p.is_file()),
    };
    if let Some(path) = &news_path {
        config.news = Some(PathRef {
            path: path.display().to_string(),
        });
    }
    if let Some(symbols) = &mut config.symbols {
        if symbols.is_empty() {
            return Err(err(
                "symbols",
                "an empty list; leave `symbols` out to trade the whole universe".into(),
            ));
        }
        symbols.sort();
        symbols.dedup();
    }
    Ok(ResolvedConfig {
        config,
        origin: origin.to_owned(),
        universe_dir,
        news_path,
        currency,
        initial_cash,
        fee,
    })
}

/// A job's `initial_cash` (default 10000) as money, from its stored config.
pub fn initial_value(config: &Value, currency: tradeloom_core::Currency) -> tradeloom_core::Money {
    let text = match config.get("initial_cash") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "10000".to_string(),
    };
    tradeloom_core::Decimal::parse(&text)
        .map(|d| d.to_money(currency))
        .unwrap_or_else(|_| tradeloom_core::Money::zero(currency))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        std::fs::create_dir_all(dir.join("uni")).unwrap();
        let path = dir.join("sim.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn quiet_errors_hide_the_values_they_quote() {
        let cases = [
            (
                r#"invalid type: string "root:x:0:0:root:/root:/bin/bash", expected struct SimulationConfig"#,
                "invalid type: string, expected struct SimulationConfig",
            ),
            (
                r#"models[0]: invalid type: string "A=\"b\" c", expected struct ModelConfig"#,
                "models[0]: invalid type: string, expected struct ModelConfig",
            ),
            (
                "unknown variant `hunter2`, expected `open` or `close`",
                "unknown variant, expected `open` or `close`",
            ),
            (
                "unknown field `modles`, expected one of `models`, `universe`",
                "unknown field `modles`, expected one of `models`, `universe`",
            ),
            (
                "unknown field `PASSWORD=hunter2`, expected one of `models`",
                "unknown field, expected one of `models`",
            ),
            (
                "invalid type: integer `123456`, expected a string",
                "invalid type: integer, expected a string",
            ),
            ("missing field `models`", "missing field `models`"),
            ("did not find expected key", "did not find expected key"),
        ];
        for (given, shown) in cases {
            assert_eq!(hide_values(given), shown, "{given}");
        }
    }

    const GOOD: &str = "models:\n  - name: a\n    base_url: http://127.0.0.1:1/v1\n    model: momentum\nuniverse: {path: uni}\nstart_date: 2025-01-02\nend_date: 2025-01-10\n";

    #[test]
    fn defaults_and_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let resolved = load_config(&write(dir.path(), GOOD)).unwrap();
        assert_eq!(resolved.config.initial_cash, Decimal::from_int(10_000));
        assert_eq!(resolved.config.reference_price, ReferencePrice::Open);
        assert_eq!(resolved.config.max_steps, 12);
        assert!(resolved.universe_dir.is_absolute());
        assert!(resolved.universe_dir.ends_with("uni"));
        assert_eq!(resolved.news_path, None);
    }

    #[test]
    fn tool_choice_per_model() {
        let dir = tempfile::tempdir().unwrap();
        let text = GOOD.replace(
            "model: momentum",
            "model: momentum\n    tool_choice: required",
        );
        let resolved = load_config(&write(dir.path(), &text)).unwrap();
        assert_eq!(
            resolved.config.models[0].tool_choice,
            Some(tradeloom_llm::ToolChoice::Required)
        );
        assert_eq!(
            load_config(&write(dir.path(), GOOD)).unwrap().config.models[0].tool_choice,
            None
        );
        let bad = GOOD.replace(
            "model: momentum",
            "model: momentum\n    tool_choice: always",
        );
        let e = load_config(&write(dir.path(), &bad))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sim.yaml") && e.contains("tool_choice"), "{e}");
        assert!(e.contains("`auto`, `required`, `none`"), "{e}");
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let bad = GOOD.replace("model: momentum", "model: momentum\n    colour: red");
        let e = load_config(&write(dir.path(), &bad))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sim.yaml:5:") && e.contains("unknown field `colour`"),
            "{e}"
        );
        let bad = GOOD.replace("end_date: 2025-01-10", "end_date: 2024-12-31");
        let e = load_config(&write(dir.path(), &bad))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("end_date") && e.contains("before start_date"),
            "{e}"
        );
        let bad = GOOD.replace("uni}", "missing}");
        let e = load_config(&write(dir.path(), &bad))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("universe.path") && e.contains("does not exist"),
            "{e}"
        );
        let bad = GOOD.replace("start_date: 2025-01-02", "start_date: 2025-02-30");
        let e = load_config(&write(dir.path(), &bad))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sim.yaml:6"), "{e}");
        let twice = GOOD.replace(
            "universe:",
            "  - name: a\n    base_url: http://x/v1\n    model: m\nuniverse:",
        );
        let e = load_config(&write(dir.path(), &twice))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("models[1].name") && e.contains("used twice"),
            "{e}"
        );
    }

    #[test]
    fn connectivity_providers_name_key_variables_and_model_endpoints() {
        let dir = tempfile::tempdir().unwrap();
        let text = GOOD.replace(
            "universe:",
            "  - name: b\n    base_url: https://llm.example/v1/\n    model: m\n    api_key_env: TL_TEST_KEY_B\nuniverse:",
        );
        let resolved = load_config(&write(dir.path(), &text)).unwrap();
        let providers = resolved.connectivity_providers();
        let names: Vec<&str> = providers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "universe", "venue:sim"]);
        assert!(providers[0].env.is_empty());
        assert_eq!(
            providers[0].endpoint.as_ref().unwrap().url,
            "http://127.0.0.1:1/v1/models"
        );
        assert_eq!(providers[1].env[0].var, "TL_TEST_KEY_B");
        assert!(providers[1].env[0].required);
        assert_eq!(
            providers[1].endpoint.as_ref().unwrap().url,
            "https://llm.example/v1/models"
        );
        let r = tradeloom_net::connectivity::readiness(&providers, "t".into(), |_| false);
        assert!(!r.ready);
        assert_eq!(r.missing(), vec![("b", "TL_TEST_KEY_B")]);

        // A model naming an agent has no endpoint until the agent is resolved (never `/models`).
        let text = GOOD.replace("universe:", "  - {name: c, agent: analyst@2}\nuniverse:");
        let unresolved = load_config(&write(dir.path(), &text)).unwrap();
        let providers = unresolved.connectivity_providers();
        assert_eq!(providers[1].name, "c");
        assert!(providers[1].endpoint.is_none(), "{:?}", providers[1]);
        assert!(providers[1].env.is_empty());
    }

    #[test]
    fn inline_json_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("uni")).unwrap();
        let value = serde_json::json!({
            "models": [{"name": "a", "base_url": "http://127.0.0.1:1/v1", "model": "m"}],
            "universe": {"path": "uni"}, "start_date": "2025-01-02", "end_date": "2025-01-03",
            "initial_cash": "2500.50"
        });
        let resolved = config_from_value(&value, dir.path()).unwrap();
        assert_eq!(
            resolved.initial_cash,
            Money::parse("2500.50", Currency::USD).unwrap()
        );
        let e = config_from_value(&serde_json::json!({"models": []}), dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("config"), "{e}");
        assert!(e.contains("missing field"), "{e}");
    }
}
