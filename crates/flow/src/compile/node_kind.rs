//! Each known node type's `config`, read into its [`NodeKind`].

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::compiler::Compiler;

use super::names::suggestion;
use super::node::Scope;

use crate::definition::{NodeDef, NodeType};
use crate::duration::parse_duration_ms;
use crate::error::CompileErrorKind as Kind;
use crate::field_path::FieldPath;
use crate::ir::{
    AgentNode, BacktestNode, HeaderSource, HitlNode, HitlNotify, HttpNode, MarketNode, NodeKind,
    OrderNode, PaperNode, ScriptNode, SimulateNode, SimulationSource, TransformNode, WaitNode,
    WebhookUrl,
};
use crate::limits::{MAX_AGENT_STEPS, MAX_EXPIRY_MS, MAX_WAIT_MS, describe_ms};
use crate::node_config::{
    AGENT_TOOLS, AgentConfig, BacktestConfig, ChatId, HeaderConfig, HitlConfig, HttpConfig,
    MARKET_TOOLS, MarketConfig, NotifyConfig, OrderConfig, PaperConfig, ScriptConfig,
    SimulateConfig, TransformConfig, WaitConfig, WebhookFormat, is_env_name, is_sensitive_header,
};

impl<'d> Compiler<'d> {
    /// `type: script`: the path is checked as text here (compiling does no I/O); the runtime
    /// resolves it inside the config folder.
    fn script(&mut self, scope: &Scope<'_>, c: ScriptConfig, at: &FieldPath) -> Option<ScriptNode> {
        let path = std::path::Path::new(c.script.trim());
        let problem = if c.script.trim().is_empty() {
            Some("must not be empty".to_string())
        } else if path.is_absolute() {
            Some(format!(
                "`{}` is absolute; name a file relative to the config folder",
                c.script
            ))
        } else if path
            .components()
            .any(|p| p == std::path::Component::ParentDir)
        {
            Some(format!(
                "`{}` may not contain `..`; name a file inside the config folder",
                c.script
            ))
        } else if path.extension().is_none_or(|e| e != "py") {
            Some(format!(
                "`{}` is not a Python file (expected .py)",
                c.script
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            self.error(Kind::Config, at.key("script"), problem);
            return None;
        }
        let function = c.function.unwrap_or_else(|| "main".to_string());
        let identifier = !function.is_empty()
            && !function.starts_with(|ch: char| ch.is_ascii_digit())
            && function.chars().all(|ch| ch.is_alphanumeric() || ch == '_');
        if !identifier {
            self.error(
                Kind::Config,
                at.key("function"),
                format!("`{function}` is not a Python function name"),
            );
            return None;
        }
        let limits = c.limits.unwrap_or_default();
        if let Err(e) = limits.effective() {
            let field = e
                .strip_prefix("limits.")
                .and_then(|r| r.split(':').next())
                .unwrap_or("limits")
                .to_string();
            self.error(Kind::Config, at.key("limits").key(&field), e);
            return None;
        }
        Some(ScriptNode {
            script: c.script.trim().to_string(),
            function,
            input: self.json_template(scope, &c.input, &at.key("input"))?,
            limits,
        })
    }

    /// Deserialises a node's config into `T`, reporting the failing field.
    pub(super) fn config<T: DeserializeOwned>(
        &mut self,
        config: &Value,
        at: &FieldPath,
    ) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(config) {
            Ok(c) => Some(c),
            Err(e) => {
                let mut path = at.clone();
                for segment in e.path().iter() {
                    path = match segment {
                        serde_path_to_error::Segment::Seq { index } => path.index(*index),
                        serde_path_to_error::Segment::Map { key } => path.key(key),
                        serde_path_to_error::Segment::Enum { variant } => path.key(variant),
                        serde_path_to_error::Segment::Unknown => path,
                    };
                }
                self.error(Kind::Config, path, e.inner().to_string());
                None
            }
        }
    }

    pub(super) fn node_kind(
        &mut self,
        scope: &Scope<'_>,
        node: &NodeDef,
        at: &FieldPath,
    ) -> Option<NodeKind> {
        let cat = at.key("config");
        let config = match &node.config {
            Value::Null => Value::Object(Map::new()),
            other => other.clone(),
        };
        Some(match &node.node_type {
            NodeType::Agent => {
                let c: AgentConfig = self.config(&config, &cat)?;
                NodeKind::Agent(Box::new(self.agent(scope, c, &cat)?))
            }
            NodeType::Http => {
                let c: HttpConfig = self.config(&config, &cat)?;
                NodeKind::Http(self.http(scope, &node.id, c, &cat)?)
            }
            NodeType::Hitl => {
                let c: HitlConfig = self.config(&config, &cat)?;
                NodeKind::Hitl(self.hitl(scope, &node.id, c, &cat)?)
            }
            NodeType::Simulate => {
                let c: SimulateConfig = self.config(&config, &cat)?;
                NodeKind::Simulate(self.simulate(scope, c, &cat)?)
            }
            NodeType::Backtest => {
                let c: BacktestConfig = self.config(&config, &cat)?;
                if c.spec_path.trim().is_empty() {
                    self.error(Kind::Config, cat.key("spec_path"), "must not be empty");
                    return None;
                }
                NodeKind::Backtest(BacktestNode {
                    spec_path: self.template(scope, &c.spec_path, &cat.key("spec_path"))?,
                })
            }
            NodeType::Paper => {
                let c: PaperConfig = self.config(&config, &cat)?;
                if c.spec_path.trim().is_empty() {
                    self.error(Kind::Config, cat.key("spec_path"), "must not be empty");
                    return None;
                }
                NodeKind::Paper(PaperNode {
                    spec_path: self.template(scope, &c.spec_path, &cat.key("spec_path"))?,
                })
            }
            NodeType::Order => {
                let c: OrderConfig = self.config(&config, &cat)?;
                let mut ok = true;
                if c.market.is_none() && c.paper_run.is_none() {
                    self.error(
                        Kind::Config,
                        cat.key("market"),
                        "an order node needs `market` (a simulated book) or `paper_run` (a \
                         running paper run's id), or both",
                    );
                    ok = false;
                }
                if let Some(ms) = c.wait_fill_ms
                    && ms > crate::ir::MAX_WAIT_FILL_MS
                {
                    self.error(
                        Kind::Config,
                        cat.key("wait_fill_ms"),
                        format!(
                            "{ms} is more than the maximum of {}",
                            crate::ir::MAX_WAIT_FILL_MS
                        ),
                    );
                    ok = false;
                }
                if c.wait_fill_ms.is_some() && c.paper_run.is_none() {
                    self.error(
                        Kind::Config,
                        cat.key("wait_fill_ms"),
                        "only an order sent to a paper run (`paper_run`) waits for its fill",
                    );
                    ok = false;
                }
                // Every part is compiled (and its errors reported) before any is given up on.
                let market = c.market.map(|m| self.market(scope, m, &cat.key("market")));
                let paper_run = c
                    .paper_run
                    .as_ref()
                    .map(|t| self.template(scope, t, &cat.key("paper_run")));
                let proposal = self.json_template(scope, &c.proposal, &cat.key("proposal"));
                let market = match market {
                    Some(m) => Some(m?),
                    None => None,
                };
                let paper_run = match paper_run {
                    Some(t) => Some(t?),
                    None => None,
                };
                let proposal = proposal?;
                if !ok {
                    return None;
                }
                NodeKind::Order(OrderNode {
                    market,
                    proposal,
                    paper_run,
                    wait_fill_ms: c.wait_fill_ms,
                })
            }
            NodeType::Script => {
                let c: ScriptConfig = self.config(&config, &cat)?;
                NodeKind::Script(self.script(scope, c, &cat)?)
            }
            NodeType::Transform => {
                let c: TransformConfig = self.config(&config, &cat)?;
                NodeKind::Transform(TransformNode {
                    output: self.json_template(scope, &c.output, &cat.key("output"))?,
                })
            }
            NodeType::Wait => {
                let c: WaitConfig = self.config(&config, &cat)?;
                if c.duration_ms == 0 {
                    self.error(
                        Kind::Config,
                        cat.key("duration_ms"),
                        "must be more than zero",
                    );
                    return None;
                }
                if c.duration_ms > MAX_WAIT_MS {
                    self.error(
                        Kind::Duration,
                        cat.key("duration_ms"),
                        format!(
                            "node `{}`: {} ms is more than the maximum of {}",
                            node.id,
                            c.duration_ms,
                            describe_ms(MAX_WAIT_MS)
                        ),
                    );
                    return None;
                }
                NodeKind::Wait(WaitNode {
                    duration_ms: c.duration_ms,
                })
            }
            NodeType::Unknown(name) => {
                self.warning(
                    at.key("type"),
                    format!(
                        "unknown node type `{name}` (known: {}); the runtime will skip node `{}`",
                        NodeType::KNOWN.join(", "),
                        node.id
                    ),
                );
                NodeKind::Unknown {
                    type_name: name.clone(),
                    config: node.config.clone(),
                }
            }
        })
    }

    /// A `hitl` node's prompt, expiry and approvers.
    fn hitl(
        &mut self,
        scope: &Scope<'_>,
        id: &str,
        c: HitlConfig,
        at: &FieldPath,
    ) -> Option<HitlNode> {
        let prompt = self.template(scope, &c.prompt, &at.key("prompt"));
        let expires = match parse_duration_ms(&c.expires_after) {
            Ok(ms) if ms > MAX_EXPIRY_MS => {
                self.error(
                    Kind::Duration,
                    at.key("expires_after"),
                    format!(
                        "node `{}`: {} ({ms} ms) is more than the maximum of {}",
                        id,
                        c.expires_after,
                        describe_ms(MAX_EXPIRY_MS)
                    ),
                );
                None
            }
            Ok(ms) => Some(ms),
            Err(e) => {
                self.error(Kind::Duration, at.key("expires_after"), e);
                None
            }
        };
        if let Some(approvers) = &c.approvers {
            if approvers.is_empty() {
                self.error(
                    Kind::Config,
                    at.key("approvers"),
                    "is empty, so nobody could decide; omit it to let anyone decide",
                );
            }
            for (k, a) in approvers.iter().enumerate() {
                if a.trim().is_empty() {
                    self.error(
                        Kind::Config,
                        at.key("approvers").index(k),
                        "must not be empty",
                    );
                }
            }
        }
        let notify = match &c.notify {
            Some(n) => {
                Some(self.notify(id, n, c.approvers.as_deref(), expires, &at.key("notify"))?)
            }
            None => None,
        };
        Some(HitlNode {
            prompt: prompt?,
            expires_after_ms: expires?,
            default: c.default,
            approvers: c.approvers,
            notify,
        })
    }

    /// A `hitl` node's `notify`: the webhook, the approver (one of `approvers` when given), the
    /// links' base and expiry (at most the approval's, `expires_ms` when it is valid). URLs are
    /// not echoed in errors: a webhook URL may carry its credential.
    fn notify(
        &mut self,
        id: &str,
        n: &NotifyConfig,
        approvers: Option<&[String]>,
        expires_ms: Option<u64>,
        at: &FieldPath,
    ) -> Option<HitlNotify> {
        let mut ok = true;
        let hook = at.key("webhook");
        let url = match &n.webhook.url {
            HeaderConfig::Text(url) => {
                let url = url.trim();
                let rest = url
                    .strip_prefix("https://")
                    .or_else(|| url.strip_prefix("http://"));
                if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
                    self.error(
                        Kind::Config,
                        hook.key("url"),
                        format!(
                            "node `{id}`: the webhook URL must be an http:// or https:// URL with a host (or `{{env: NAME}}` naming a variable that holds it)"
                        ),
                    );
                    ok = false;
                }
                WebhookUrl::Text(url.to_string())
            }
            HeaderConfig::Secret(secret) => {
                if !is_env_name(&secret.env) {
                    self.error(
                        Kind::Config,
                        hook.key("url").key("env"),
                        "is not an environment variable name (A-Z, 0-9, `_`; not starting with a digit); it names the variable that holds the webhook URL, never the URL itself",
                    );
                    ok = false;
                }
                WebhookUrl::Secret(secret.clone())
            }
        };
        match (n.webhook.format, &n.webhook.chat_id) {
            (WebhookFormat::Telegram, None) => {
                self.error(
                    Kind::Config,
                    hook.key("chat_id"),
                    format!(
                        "node `{id}`: format `telegram` needs the chat to post to: `chat_id: -1001234567890` or `chat_id: \"@channel\"`"
                    ),
                );
                ok = false;
            }
            (WebhookFormat::Telegram, Some(ChatId::Name(name))) if name.trim().is_empty() => {
                self.error(Kind::Config, hook.key("chat_id"), "must not be empty");
                ok = false;
            }
            (WebhookFormat::Slack, Some(_)) => {
                self.error(
                    Kind::Config,
                    hook.key("chat_id"),
                    format!(
                        "node `{id}`: `chat_id` is for format `telegram`; a Slack webhook posts to the channel it was made for"
                    ),
                );
                ok = false;
            }
            _ => {}
        }
        let approver = n.approver.trim();
        if approver.is_empty() {
            self.error(
                Kind::Config,
                at.key("approver"),
                "must not be empty: name the API key the links decide as",
            );
            ok = false;
        } else if let Some(approvers) = approvers
            && !approvers.iter().any(|a| a == approver)
        {
            self.error(
                Kind::Config,
                at.key("approver"),
                format!(
                    "node `{id}`: `{approver}` is not one of the node's approvers ({}), so the links could not decide",
                    approvers.join(", ")
                ),
            );
            ok = false;
        }
        let link_base = match &n.link_base {
            Some(base) => {
                let base = base.trim().trim_end_matches('/');
                let rest = base
                    .strip_prefix("https://")
                    .or_else(|| base.strip_prefix("http://"));
                let host = rest.map(|r| r.split('/').next().unwrap_or_default());
                let valid = host.is_some_and(|h| !h.is_empty() && !h.contains('@'))
                    && !base.contains(['?', '#', ' ']);
                if !valid {
                    self.error(
                        Kind::Config,
                        at.key("link_base"),
                        format!(
                            "node `{id}`: `{base}` is not a base URL: give `http(s)://host[:port][/path]` as the approver's browser reaches this server, without a query, fragment or user name"
                        ),
                    );
                    ok = false;
                }
                Some(base.to_string())
            }
            None => None,
        };
        let link_expires_after_ms = match &n.link_expires_after {
            Some(text) => match parse_duration_ms(text) {
                Ok(ms) => match expires_ms {
                    Some(approval) if ms > approval => {
                        self.error(
                            Kind::Duration,
                            at.key("link_expires_after"),
                            format!(
                                "node `{id}`: {text} ({ms} ms) is longer than the approval's expires_after ({approval} ms); a link cannot outlive its approval"
                            ),
                        );
                        ok = false;
                        ms
                    }
                    _ => ms,
                },
                Err(e) => {
                    self.error(Kind::Duration, at.key("link_expires_after"), e);
                    ok = false;
                    0
                }
            },
            None => expires_ms.unwrap_or(0),
        };
        ok.then(|| HitlNotify {
            url,
            format: n.webhook.format,
            chat_id: n.webhook.chat_id.clone(),
            approver: approver.to_string(),
            link_base,
            link_expires_after_ms,
            forwardable: n.forwardable,
        })
    }

    /// A `simulate` node's config: a file or inline, not both.
    fn simulate(
        &mut self,
        scope: &Scope<'_>,
        c: SimulateConfig,
        at: &FieldPath,
    ) -> Option<SimulateNode> {
        let source = match (&c.config_path, &c.config) {
            (Some(path), None) => {
                SimulationSource::ConfigPath(self.template(scope, path, &at.key("config_path"))?)
            }
            (None, Some(inline)) => {
                SimulationSource::Config(self.json_template(scope, inline, &at.key("config"))?)
            }
            (Some(_), Some(_)) => {
                self.error(
                    Kind::Config,
                    at.clone(),
                    "give `config_path` or `config`, not both",
                );
                return None;
            }
            (None, None) => {
                self.error(
                    Kind::Config,
                    at.clone(),
                    "needs `config_path` (a file) or `config` (inline)",
                );
                return None;
            }
        };
        Some(SimulateNode { source })
    }

    pub(super) fn agent(
        &mut self,
        scope: &Scope<'_>,
        c: AgentConfig,
        at: &FieldPath,
    ) -> Option<AgentNode> {
        let mut ok = true;
        let model_at = at.key("model");
        match (&c.model, &c.agent) {
            (Some(model), None) => {
                for (field, message) in model.problems() {
                    self.error(Kind::Config, model_at.key(field), message);
                    ok = false;
                }
            }
            (None, Some(agent)) => {
                if let Err(e) = tradeloom_core::DefinitionRef::parse(agent) {
                    self.error(Kind::Config, at.key("agent"), e);
                    ok = false;
                }
            }
            (Some(_), Some(_)) => {
                self.error(
                    Kind::Config,
                    at.key("agent"),
                    "give `model` (an endpoint) or `agent` (a registered agent), not both",
                );
                ok = false;
            }
            (None, None) => {
                self.error(
                    Kind::Config,
                    at.clone(),
                    "needs `model` (an endpoint) or `agent` (a registered agent, `name` or \
                     `name@version`)",
                );
                ok = false;
            }
        }
        let id = &self.def.nodes[scope.node].id;
        let mut seen = BTreeSet::new();
        for (k, tool) in c.tools.iter().enumerate() {
            if tool.trim().is_empty() {
                self.error(Kind::Config, at.key("tools").index(k), "must not be empty");
                ok = false;
            } else if let Some(skill) = crate::node_config::skill_tool(tool) {
                if let Err(e) = skill {
                    self.error(Kind::Config, at.key("tools").index(k), e);
                    ok = false;
                } else if !seen.insert(tool) {
                    self.error(
                        Kind::Config,
                        at.key("tools").index(k),
                        format!("`{tool}` is listed twice"),
                    );
                    ok = false;
                }
            } else if !AGENT_TOOLS.contains(&tool.as_str()) {
                self.error(
                    Kind::Config,
                    at.key("tools").index(k),
                    format!(
                        "node `{id}`: unknown tool `{tool}`{}; workflow agents have: {}, and \
                         registered skills as `skill:NAME`",
                        suggestion(tool, &AGENT_TOOLS),
                        AGENT_TOOLS.join(", ")
                    ),
                );
                ok = false;
            } else if !seen.insert(tool) {
                self.error(
                    Kind::Config,
                    at.key("tools").index(k),
                    format!("`{tool}` is listed twice"),
                );
                ok = false;
            }
        }
        if c.max_steps == 0 {
            self.error(Kind::Config, at.key("max_steps"), "must be at least 1");
            ok = false;
        } else if c.max_steps > MAX_AGENT_STEPS {
            self.error(
                Kind::Config,
                at.key("max_steps"),
                format!(
                    "node `{id}`: {} steps is more than the maximum of {MAX_AGENT_STEPS}",
                    c.max_steps
                ),
            );
            ok = false;
        }
        if c.prompt.trim().is_empty() {
            self.error(Kind::Config, at.key("prompt"), "must not be empty");
            ok = false;
        }
        let market_tools: Vec<&str> = c
            .tools
            .iter()
            .map(String::as_str)
            .filter(|t| MARKET_TOOLS.contains(t))
            .collect();
        let market = match c.market {
            Some(m) => match self.market(scope, m, &at.key("market")) {
                Some(m) => Some(m),
                None => {
                    ok = false;
                    None
                }
            },
            None => {
                if let Some(first) = market_tools.first() {
                    self.error(
                        Kind::Config,
                        at.key("market"),
                        format!(
                            "node `{id}`: tool `{first}` reads the market; give `market` (at \
                             least `universe`, a folder of daily bars, and `as_of`, e.g. \
                             \"{{{{ inputs.as_of }}}}\")"
                        ),
                    );
                    ok = false;
                }
                None
            }
        };
        let paper_run = match &c.paper_run {
            Some(_) if market.is_none() => {
                self.error(
                    Kind::Config,
                    at.key("paper_run"),
                    format!(
                        "node `{id}`: `paper_run` is the account `get_portfolio` shows; give \
                         `market` too"
                    ),
                );
                ok = false;
                None
            }
            Some(t) => match self.template(scope, t, &at.key("paper_run")) {
                Some(t) => Some(t),
                None => {
                    ok = false;
                    None
                }
            },
            None => None,
        };
        let fallback = match &c.fallback {
            Some(value) => match self.json_template(scope, value, &at.key("fallback")) {
                Some(t) => Some(t),
                None => {
                    ok = false;
                    None
                }
            },
            None => None,
        };
        if let Some(schema) = &c.output_schema
            && !schema.is_object()
        {
            self.error(
                Kind::Config,
                at.key("output_schema"),
                format!(
                    "node `{id}`: must be a JSON Schema object, e.g. {{type: object, required: \
                     [approved], properties: {{approved: {{type: boolean}}}}}}"
                ),
            );
            ok = false;
        }
        let prompt = self.template(scope, &c.prompt, &at.key("prompt"))?;
        ok.then_some(AgentNode {
            model: c.model,
            agent: c.agent,
            resolved_agent: c.resolved_agent,
            system_prompt: c.system_prompt,
            prompt,
            tools: c.tools,
            max_steps: c.max_steps,
            market,
            paper_run,
            fallback,
            output_schema: c.output_schema,
        })
    }

    /// `market:` of an agent or order node: the paths as text (compiling does no I/O; the
    /// runtime reads them), `as_of` a template, the book's settings in range.
    fn market(&mut self, scope: &Scope<'_>, c: MarketConfig, at: &FieldPath) -> Option<MarketNode> {
        let mut ok = true;
        if c.universe.trim().is_empty() {
            self.error(Kind::Config, at.key("universe"), "must not be empty");
            ok = false;
        }
        if c.news.as_deref().is_some_and(|n| n.trim().is_empty()) {
            self.error(Kind::Config, at.key("news"), "must not be empty");
            ok = false;
        }
        if let Some(symbols) = &c.symbols {
            if symbols.is_empty() {
                self.error(
                    Kind::Config,
                    at.key("symbols"),
                    "must list at least one symbol (leave it out for all)",
                );
                ok = false;
            }
            for (k, symbol) in symbols.iter().enumerate() {
                if symbol.trim().is_empty() {
                    self.error(
                        Kind::Config,
                        at.key("symbols").index(k),
                        "must not be empty",
                    );
                    ok = false;
                }
            }
        }
        let initial_cash = c
            .initial_cash
            .unwrap_or_else(|| tradeloom_core::Decimal::from_int(10_000));
        if initial_cash.is_negative() || initial_cash.is_zero() {
            self.error(
                Kind::Config,
                at.key("initial_cash"),
                format!("must be more than zero, got {initial_cash}"),
            );
            ok = false;
        }
        let currency = c.currency.unwrap_or_else(|| "USD".to_string());
        if let Err(e) = tradeloom_core::Currency::from_code(&currency) {
            self.error(Kind::Config, at.key("currency"), e.to_string());
            ok = false;
        }
        let fee_bps = c
            .fee_bps
            .unwrap_or_else(|| tradeloom_core::Decimal::from_int(10));
        if let Err(e) = tradeloom_core::Bps::fee_rate(fee_bps) {
            self.error(Kind::Config, at.key("fee_bps"), e.to_string());
            ok = false;
        }
        if c.as_of.trim().is_empty() {
            self.error(
                Kind::Config,
                at.key("as_of"),
                "must not be empty (a date YYYY-MM-DD or a template such as \"{{ inputs.as_of }}\")",
            );
            return None;
        }
        let as_of = self.template(scope, &c.as_of, &at.key("as_of"))?;
        ok.then_some(MarketNode {
            universe: c.universe.trim().to_string(),
            news: c.news.map(|n| n.trim().to_string()),
            symbols: c.symbols,
            as_of,
            reference_price: c.reference_price,
            initial_cash,
            currency,
            fee_bps,
        })
    }

    pub(super) fn http(
        &mut self,
        scope: &Scope<'_>,
        id: &str,
        c: HttpConfig,
        at: &FieldPath,
    ) -> Option<HttpNode> {
        let mut ok = true;
        let url = self.template(scope, &c.url, &at.key("url"));
        if let Some(url) = &url {
            let prefix = url.literal_prefix();
            let fits = |scheme: &str| {
                prefix.starts_with(scheme) || (!url.is_literal() && scheme.starts_with(prefix))
            };
            if !(fits("http://") || fits("https://")) {
                self.error(
                    Kind::Config,
                    at.key("url"),
                    format!("`{}` must start with http:// or https://", c.url),
                );
                ok = false;
            }
        }
        let mut headers = BTreeMap::new();
        for (name, value) in &c.headers {
            let path = at.key("headers").key(name);
            let token = !name.is_empty()
                && name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(ch));
            if !token {
                self.error(
                    Kind::Config,
                    path.clone(),
                    format!("`{name}` is not a valid header name"),
                );
                ok = false;
            }
            match value {
                HeaderConfig::Text(_) if is_sensitive_header(name) => {
                    // The value is not echoed: it is the secret this rule keeps out.
                    self.error(
                        Kind::Config,
                        path,
                        format!(
                            "node `{id}`: header `{name}` carries a credential, and definitions are readable by every viewer; reference an environment variable instead of writing its value: `{{env: NAME, prefix: \"Bearer \"}}`"
                        ),
                    );
                    ok = false;
                }
                HeaderConfig::Text(text) => match self.template(scope, text, &path) {
                    Some(t) => {
                        headers.insert(name.clone(), HeaderSource::Template(t));
                    }
                    None => ok = false,
                },
                HeaderConfig::Secret(secret) if !is_env_name(&secret.env) => {
                    self.error(
                        Kind::Config,
                        path.key("env"),
                        "is not an environment variable name (A-Z, 0-9, `_`; not starting with a digit); it names the variable that holds the secret, never the secret itself",
                    );
                    ok = false;
                }
                HeaderConfig::Secret(secret) => {
                    headers.insert(name.clone(), HeaderSource::Secret(secret.clone()));
                }
            }
        }
        let body = match &c.body {
            Some(b) => Some(self.json_template(scope, b, &at.key("body"))?),
            None => None,
        };
        let url = url?;
        ok.then_some(HttpNode {
            method: c.method,
            url,
            headers,
            body,
        })
    }
}
