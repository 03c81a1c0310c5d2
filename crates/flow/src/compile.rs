//! [`compile`]: checks a [`Definition`] completely and turns it into an [`Ir`].
//!
//! Every problem is reported, each with its path in the document (`nodes[3].needs[1]`) and, when
//! the definition was parsed from text, its line and column; they are listed in file order (by path for definitions
//! that did not come from text). The checks:
//!
//! - names: the workflow name is not empty; node ids are unique, 1–64 characters of `a-z`,
//!   `0-9`, `_`, `-`, and not `inputs` or `run` (the other roots of the context); input names
//!   are 1–64 characters of `A-Z`, `a-z`, `0-9`, `_`, `-`.
//! - `needs` name existing nodes, once each; there are no cycles (each is named:
//!   `dependency cycle: a → b → c → a`, read "a needs b, b needs c, c needs a").
//! - templates and `when` predicates parse; every path they read is `run.<field>` (see
//!   [`crate::context::RUN_FIELDS`]), `inputs` or `inputs.<declared name>`, or a node in the
//!   node's transitive `needs` (not itself).
//! - inputs: reading an undeclared input is an error. A declared input without a default is
//!   *required*: every run must give it ([`Ir::resolve_inputs`]).
//! - each known type's `config` (see [`crate::node_config`]), durations, `retries` and
//!   `timeout_ms`; no more agent nodes than `limits.max_agent_nodes`; the schedule's cron and
//!   time zone.
//! - reachability: a node is **unreachable** when it can never run — its `when` reads nothing and
//!   is false (`when: "false"`, `when: 1 > 2`), or every node it needs is unreachable (it would
//!   always be skipped). Unreachable nodes are errors.
//!
//! Nodes of unknown types compile with a warning (the runtime skips them), as do nodes whose
//! needs are all unknown-type or otherwise always-skipped nodes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::context::RUN_FIELDS;
use crate::cron::{check_cron, check_timezone};
use crate::definition::{Definition, NodeDef, NodeType, RetrySpec, parse_definition};
use crate::duration::parse_duration_ms;
use crate::error::{CompileError, CompileErrorKind as Kind, FlowError};
use crate::field_path::{FieldPath, Segment};
use crate::ir::{
    AgentNode, BacktestNode, HeaderSource, HitlNode, HttpNode, Ir, IrNode, NodeKind, RetryPolicy,
    SimulateNode, SimulationSource, TransformNode, WaitNode,
};
use crate::node_config::{
    AgentConfig, BacktestConfig, HeaderConfig, HitlConfig, HttpConfig, ModelConfig,
    SimulateConfig, TransformConfig, WaitConfig, is_env_name, is_sensitive_header,
};
use crate::predicate::Predicate;
use crate::template::{JsonTemplate, Template};
use crate::value_path::ValuePath;

/// Longest node id or input name.
pub const MAX_NAME_LEN: usize = 64;

/// A definition that compiled: its IR and anything worth telling the author.
#[derive(Clone, Debug, PartialEq)]
pub struct Compiled {
    pub ir: Ir,
    /// `place: path: message` lines (unknown node types, nodes that will always be skipped).
    pub warnings: Vec<String>,
}

/// Compiles a definition, or returns every problem found.
pub fn compile(definition: &Definition) -> Result<Compiled, Vec<CompileError>> {
    Compiler {
        def: definition,
        errors: Vec::new(),
        warnings: Vec::new(),
    }
    .run()
}

/// Parses and compiles definition text (YAML or JSON); `origin` names it in errors.
pub fn compile_text(text: &str, origin: &str) -> Result<Compiled, FlowError> {
    let definition = parse_definition(text, origin)?;
    compile(&definition).map_err(FlowError::Compile)
}

/// Whether an id is well formed (see the module docs); `None` if so, else why not.
pub fn check_node_id(id: &str) -> Option<String> {
    if id.is_empty() || id.chars().count() > MAX_NAME_LEN {
        return Some(format!(
            "node id `{id}` must be 1-{MAX_NAME_LEN} characters long"
        ));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        let lower = id.to_ascii_lowercase().replace([' ', '.'], "_");
        return Some(format!(
            "node id `{id}` may only contain a-z, 0-9, `_` and `-` (try `{lower}`)"
        ));
    }
    if id == "inputs" || id == "run" {
        return Some(format!(
            "node id `{id}` is reserved (templates read `{id}.…` for the run's {id}); rename the node"
        ));
    }
    None
}

fn check_input_name(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    (!ok).then(|| {
        format!("name `{name}` must be 1-{MAX_NAME_LEN} characters of A-Z, a-z, 0-9, `_` and `-`")
    })
}

/// What the per-node checks produce for one node (parts that failed are left out).
struct NodeParts {
    when: Option<Predicate>,
    kind: Option<NodeKind>,
    retry: RetryPolicy,
    inputs: BTreeMap<String, Template>,
}

/// Whether a node can run, as far as compile time can tell.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    MayRun,
    /// Its `when` is constant false, or all its needs are `Never`.
    Never,
    /// Skipped by the runtime: an unknown type, or all needs skipped with at least one unknown.
    AlwaysSkipped,
}

struct Compiler<'d> {
    def: &'d Definition,
    errors: Vec<CompileError>,
    warnings: Vec<String>,
}

impl<'d> Compiler<'d> {
    fn error(&mut self, kind: Kind, path: FieldPath, message: impl Into<String>) {
        let location = self.def.source().and_then(|s| s.locate(&path));
        self.errors.push(CompileError {
            kind,
            path,
            location,
            message: message.into(),
        });
    }

    fn warning(&mut self, path: FieldPath, message: impl Into<String>) {
        let place = self
            .def
            .source()
            .and_then(|s| s.locate(&path))
            .map(|l| format!("{l}: "))
            .unwrap_or_default();
        self.warnings
            .push(format!("{place}{path}: {}", message.into()));
    }

    fn run(mut self) -> Result<Compiled, Vec<CompileError>> {
        let def = self.def;
        let nodes_at = FieldPath::root().key("nodes");
        self.check_header();

        // Ids: the first node with an id owns it.
        let mut index: HashMap<&'d str, usize> = HashMap::new();
        for (i, node) in def.nodes.iter().enumerate() {
            let at = nodes_at.index(i).key("id");
            if let Some(problem) = check_node_id(&node.id) {
                self.error(Kind::InvalidName, at.clone(), problem);
            }
            if let Some(&first) = index.get(node.id.as_str()) {
                self.error(
                    Kind::DuplicateId,
                    at,
                    format!(
                        "duplicate node id `{}` (first used by nodes[{first}])",
                        node.id
                    ),
                );
            } else {
                index.insert(&node.id, i);
            }
        }

        let deps = self.resolve_needs(&index);
        let cyclic = self.check_cycles(&deps);
        let ancestors: Vec<BTreeSet<usize>> = (0..def.nodes.len())
            .map(|i| ancestors_of(i, &deps))
            .collect();

        let parts: Vec<NodeParts> = (0..def.nodes.len())
            .map(|i| self.check_node(i, &index, &ancestors))
            .collect();

        self.check_agent_limit();
        if !cyclic {
            self.check_reachability(&deps, &parts);
        }

        if !self.errors.is_empty() {
            // In file order (by path without a file), whatever check found them.
            self.errors.sort_by(|a, b| {
                let place = |e: &CompileError| e.location.as_ref().map(|l| (l.line, l.column));
                place(a).cmp(&place(b)).then_with(|| a.path.cmp(&b.path))
            });
            return Err(self.errors);
        }
        let ir = self.build(&deps, parts);
        Ok(Compiled {
            ir,
            warnings: self.warnings,
        })
    }

    /// Name, declared inputs, schedule, and that there are nodes at all.
    fn check_header(&mut self) {
        let def = self.def;
        if def.name.trim().is_empty() {
            self.error(
                Kind::InvalidName,
                FieldPath::root().key("name"),
                "must not be empty",
            );
        } else if def.name.chars().any(char::is_control) || def.name.chars().count() > 200 {
            self.error(
                Kind::InvalidName,
                FieldPath::root().key("name"),
                "must be at most 200 characters, without control characters",
            );
        }
        for name in def.inputs.keys() {
            if let Some(problem) = check_input_name(name) {
                self.error(
                    Kind::InvalidName,
                    FieldPath::root().key("inputs").key(name),
                    problem,
                );
            }
        }
        if let Some(schedule) = &def.schedule {
            let at = FieldPath::root().key("schedule");
            if let Err(e) = check_cron(&schedule.cron) {
                self.error(Kind::Schedule, at.key("cron"), e);
            }
            if let Err(e) = check_timezone(&schedule.timezone) {
                self.error(Kind::Schedule, at.key("timezone"), e);
            }
        }
        if def.nodes.is_empty() {
            self.error(
                Kind::Config,
                FieldPath::root().key("nodes"),
                "a workflow needs at least one node",
            );
        }
    }

    /// Each node's needs as indices (unknown and repeated names reported and left out).
    fn resolve_needs(&mut self, index: &HashMap<&str, usize>) -> Vec<Vec<usize>> {
        let def = self.def;
        let ids: Vec<&str> = def.nodes.iter().map(|n| n.id.as_str()).collect();
        let mut deps = vec![Vec::new(); def.nodes.len()];
        for (i, node) in def.nodes.iter().enumerate() {
            for (j, need) in node.needs.iter().enumerate() {
                let at = FieldPath::root()
                    .key("nodes")
                    .index(i)
                    .key("needs")
                    .index(j);
                match index.get(need.as_str()) {
                    Some(&k) if deps[i].contains(&k) => {
                        self.error(Kind::UnknownNeed, at, format!("`{need}` is listed twice"));
                    }
                    Some(&k) => deps[i].push(k),
                    None => {
                        let hint = suggestion(need, &ids);
                        self.error(
                            Kind::UnknownNeed,
                            at,
                            format!("unknown node `{need}`{hint}"),
                        );
                    }
                }
            }
        }
        deps
    }

    /// Reports each cycle once (one per strongly connected component); true if there was any.
    fn check_cycles(&mut self, deps: &[Vec<usize>]) -> bool {
        let def = self.def;
        let mut any = false;
        for component in strongly_connected(deps) {
            let start = component[0];
            let is_cycle = component.len() > 1 || deps[start].contains(&start);
            if !is_cycle {
                continue;
            }
            any = true;
            let members: BTreeSet<usize> = component.iter().copied().collect();
            let cycle = shortest_cycle(start, deps, &members);
            let names: Vec<&str> = cycle.iter().map(|&i| def.nodes[i].id.as_str()).collect();
            self.error(
                Kind::Cycle,
                FieldPath::root().key("nodes").index(start).key("needs"),
                format!(
                    "dependency cycle: {} (each node needs the next)",
                    names.join(" → ")
                ),
            );
        }
        any
    }

    fn check_node(
        &mut self,
        i: usize,
        index: &HashMap<&str, usize>,
        ancestors: &[BTreeSet<usize>],
    ) -> NodeParts {
        let node = &self.def.nodes[i];
        let at = FieldPath::root().key("nodes").index(i);
        let scope = Scope {
            node: i,
            index,
            ancestors: &ancestors[i],
        };
        let retry = self.retry_policy(node.retries.as_ref(), &at.key("retries"));
        if node.timeout_ms == Some(0) {
            self.error(
                Kind::Config,
                at.key("timeout_ms"),
                "must be more than zero (omit it for no time limit)",
            );
        }
        let when = node.when.as_ref().and_then(|text| {
            let path = at.key("when");
            match Predicate::parse(text) {
                Ok(p) => {
                    self.check_references(&scope, p.references(), &path);
                    Some(p)
                }
                Err(e) => {
                    self.error(Kind::Predicate, path, e.to_string());
                    None
                }
            }
        });
        let mut inputs = BTreeMap::new();
        for (name, text) in &node.inputs {
            let path = at.key("inputs").key(name);
            if let Some(problem) = check_input_name(name) {
                self.error(Kind::InvalidName, path.clone(), problem);
            }
            if let Some(t) = self.template(&scope, text, &path) {
                inputs.insert(name.clone(), t);
            }
        }
        let kind = self.node_kind(&scope, node, &at);
        NodeParts {
            when,
            kind,
            retry,
            inputs,
        }
    }

    fn retry_policy(&mut self, spec: Option<&RetrySpec>, at: &FieldPath) -> RetryPolicy {
        let mut policy = RetryPolicy::default();
        let Some(spec) = spec else {
            return policy;
        };
        if let Some(n) = spec.max_attempts {
            if n == 0 {
                self.error(
                    Kind::Config,
                    at.key("max_attempts"),
                    "must be at least 1 (1 means no retry)",
                );
            }
            policy.max_attempts = n;
        }
        if let Some(ms) = spec.backoff_ms {
            policy.backoff_ms = ms;
        }
        if let Some(m) = spec.backoff_multiplier {
            if !(m.is_finite() && m >= 1.0) {
                self.error(
                    Kind::Config,
                    at.key("backoff_multiplier"),
                    format!("{m} must be a number of at least 1.0"),
                );
            }
            policy.backoff_multiplier = m;
        }
        if let Some(cap) = spec.max_backoff_ms {
            if cap < policy.backoff_ms {
                self.error(
                    Kind::Config,
                    at.key("max_backoff_ms"),
                    format!("{cap} is below backoff_ms ({})", policy.backoff_ms),
                );
            }
            policy.max_backoff_ms = Some(cap);
        }
        policy
    }

    /// Parses a template and checks what it reads.
    fn template(&mut self, scope: &Scope<'_>, text: &str, at: &FieldPath) -> Option<Template> {
        match Template::parse(text) {
            Ok(t) => {
                self.check_references(scope, t.references(), at);
                Some(t)
            }
            Err(e) => {
                self.error(Kind::Template, at.clone(), e.to_string());
                None
            }
        }
    }

    /// Parses the templates in a JSON value and checks what they read.
    fn json_template(
        &mut self,
        scope: &Scope<'_>,
        value: &Value,
        at: &FieldPath,
    ) -> Option<JsonTemplate> {
        match JsonTemplate::parse(value) {
            Ok(t) => {
                for (relative, template) in t.templates() {
                    self.check_references(scope, template.references(), &at.join(&relative));
                }
                Some(t)
            }
            Err(errors) => {
                for (relative, e) in errors {
                    self.error(Kind::Template, at.join(&relative), e.to_string());
                }
                None
            }
        }
    }

    fn check_references<'p>(
        &mut self,
        scope: &Scope<'_>,
        paths: impl IntoIterator<Item = &'p ValuePath>,
        at: &FieldPath,
    ) {
        let def = self.def;
        let me = &def.nodes[scope.node].id;
        for path in paths {
            match path.root() {
                "inputs" => match path.rest().first() {
                    None => {}
                    Some(Segment::Key(name)) if def.inputs.contains_key(name) => {}
                    Some(Segment::Key(name)) => self.error(
                        Kind::UndeclaredInput,
                        at.clone(),
                        format!(
                            "`{path}` reads input `{name}`, which is not declared; declare it under the top-level `inputs` (e.g. `inputs: {{{name}: {{}}}}`)"
                        ),
                    ),
                    Some(Segment::Index(_)) => self.error(
                        Kind::UndeclaredInput,
                        at.clone(),
                        format!("`{path}`: `inputs` is an object; write `inputs.<name>`"),
                    ),
                },
                "run" => match path.rest().first() {
                    None => {}
                    Some(Segment::Key(field)) if RUN_FIELDS.contains(&field.as_str()) => {}
                    Some(_) => self.error(
                        Kind::UndeclaredInput,
                        at.clone(),
                        format!(
                            "`{path}` reads an unknown run field; `run` has {}",
                            RUN_FIELDS.join(", ")
                        ),
                    ),
                },
                root => match scope.index.get(root) {
                    None => {
                        let ids: Vec<&str> = def.nodes.iter().map(|n| n.id.as_str()).collect();
                        let hint = suggestion(root, &ids);
                        self.error(
                            Kind::UnknownReference,
                            at.clone(),
                            format!("`{path}` reads unknown node `{root}`{hint}"),
                        );
                    }
                    Some(&k) if k == scope.node => self.error(
                        Kind::UnknownReference,
                        at.clone(),
                        format!("`{path}` reads the output of `{me}` itself"),
                    ),
                    Some(k) if !scope.ancestors.contains(k) => self.error(
                        Kind::UnknownReference,
                        at.clone(),
                        format!(
                            "`{path}` reads node `{root}`, which is not among the needs of `{me}` (directly or through other needs); add `{root}` to its `needs`"
                        ),
                    ),
                    Some(_) => {}
                },
            }
        }
    }

    /// Deserialises a node's config into `T`, reporting the failing field.
    fn config<T: DeserializeOwned>(&mut self, config: &Value, at: &FieldPath) -> Option<T> {
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

    fn node_kind(&mut self, scope: &Scope<'_>, node: &NodeDef, at: &FieldPath) -> Option<NodeKind> {
        let cat = at.key("config");
        let config = match &node.config {
            Value::Null => Value::Object(Map::new()),
            other => other.clone(),
        };
        Some(match &node.node_type {
            NodeType::Agent => {
                let c: AgentConfig = self.config(&config, &cat)?;
                NodeKind::Agent(self.agent(scope, c, &cat)?)
            }
            NodeType::Http => {
                let c: HttpConfig = self.config(&config, &cat)?;
                NodeKind::Http(self.http(scope, &node.id, c, &cat)?)
            }
            NodeType::Hitl => {
                let c: HitlConfig = self.config(&config, &cat)?;
                let prompt = self.template(scope, &c.prompt, &cat.key("prompt"));
                let expires = parse_duration_ms(&c.expires_after)
                    .map_err(|e| self.error(Kind::Duration, cat.key("expires_after"), e))
                    .ok();
                if let Some(approvers) = &c.approvers {
                    if approvers.is_empty() {
                        self.error(
                            Kind::Config,
                            cat.key("approvers"),
                            "is empty, so nobody could decide; omit it to let anyone decide",
                        );
                    }
                    for (k, a) in approvers.iter().enumerate() {
                        if a.trim().is_empty() {
                            self.error(
                                Kind::Config,
                                cat.key("approvers").index(k),
                                "must not be empty",
                            );
                        }
                    }
                }
                NodeKind::Hitl(HitlNode {
                    prompt: prompt?,
                    expires_after_ms: expires?,
                    default: c.default,
                    approvers: c.approvers,
                })
            }
            NodeType::Simulate => {
                let c: SimulateConfig = self.config(&config, &cat)?;
                let source = match (&c.config_path, &c.config) {
                    (Some(path), None) => SimulationSource::ConfigPath(self.template(
                        scope,
                        path,
                        &cat.key("config_path"),
                    )?),
                    (None, Some(inline)) => SimulationSource::Config(self.json_template(
                        scope,
                        inline,
                        &cat.key("config"),
                    )?),
                    (Some(_), Some(_)) => {
                        self.error(
                            Kind::Config,
                            cat,
                            "give `config_path` or `config`, not both",
                        );
                        return None;
                    }
                    (None, None) => {
                        self.error(
                            Kind::Config,
                            cat,
                            "needs `config_path` (a file) or `config` (inline)",
                        );
                        return None;
                    }
                };
                NodeKind::Simulate(SimulateNode { source })
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

    fn agent(&mut self, scope: &Scope<'_>, c: AgentConfig, at: &FieldPath) -> Option<AgentNode> {
        let mut ok = true;
        let model_at = at.key("model");
        let url = &c.model.base_url;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            self.error(
                Kind::Config,
                model_at.key("base_url"),
                format!("`{url}` must start with http:// or https://"),
            );
            ok = false;
        }
        if c.model.model.trim().is_empty() {
            self.error(Kind::Config, model_at.key("model"), "must not be empty");
            ok = false;
        }
        if let Some(env) = &c.model.api_key_env {
            let valid = env
                .chars()
                .next()
                .is_some_and(|ch| ch.is_ascii_uppercase() || ch == '_')
                && env
                    .chars()
                    .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit() || ch == '_');
            if !valid {
                self.error(
                    Kind::Config,
                    model_at.key("api_key_env"),
                    // The value is not echoed: it may be the key itself, pasted by mistake.
                    "is not an environment variable name (A-Z, 0-9, `_`; not starting with a digit); it names the variable that holds the API key, never the key itself",
                );
                ok = false;
            }
        }
        let model = &c.model;
        if let Some(t) = model.temperature
            && !(0.0..=2.0).contains(&t)
        {
            self.error(
                Kind::Config,
                model_at.key("temperature"),
                format!("must be between 0 and 2, got {t}"),
            );
            ok = false;
        }
        if let Some(n) = model.max_tokens
            && !(1..=ModelConfig::MAX_TOKENS).contains(&n)
        {
            self.error(
                Kind::Config,
                model_at.key("max_tokens"),
                format!("must be 1 to {}, got {n}", ModelConfig::MAX_TOKENS),
            );
            ok = false;
        }
        if let Some(ms) = model.timeout_ms
            && !(1..=ModelConfig::MAX_TIMEOUT_MS).contains(&ms)
        {
            self.error(
                Kind::Config,
                model_at.key("timeout_ms"),
                format!(
                    "must be 1 to {} (one hour), got {ms}",
                    ModelConfig::MAX_TIMEOUT_MS
                ),
            );
            ok = false;
        }
        if let Some(n) = model.max_retries
            && n > ModelConfig::MAX_RETRIES
        {
            self.error(
                Kind::Config,
                model_at.key("max_retries"),
                format!("must be 0 to {}, got {n}", ModelConfig::MAX_RETRIES),
            );
            ok = false;
        }
        let mut seen = BTreeSet::new();
        for (k, tool) in c.tools.iter().enumerate() {
            if tool.trim().is_empty() {
                self.error(Kind::Config, at.key("tools").index(k), "must not be empty");
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
        }
        if c.prompt.trim().is_empty() {
            self.error(Kind::Config, at.key("prompt"), "must not be empty");
            ok = false;
        }
        let prompt = self.template(scope, &c.prompt, &at.key("prompt"))?;
        ok.then_some(AgentNode {
            model: c.model,
            prompt,
            tools: c.tools,
            max_steps: c.max_steps,
        })
    }

    fn http(
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

    fn check_agent_limit(&mut self) {
        let def = self.def;
        let max = def.limits.max_agent_nodes as usize;
        let agents: Vec<usize> = def
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.node_type == NodeType::Agent)
            .map(|(i, _)| i)
            .collect();
        if agents.len() > max {
            let first_over = agents[max];
            self.error(
                Kind::AgentLimit,
                FieldPath::root().key("nodes").index(first_over),
                format!(
                    "{} agent nodes, but limits.max_agent_nodes is {max}; node `{}` is one too many",
                    agents.len(),
                    def.nodes[first_over].id
                ),
            );
        }
    }

    /// Reports nodes that can never run (see the module docs); needs an acyclic graph.
    fn check_reachability(&mut self, deps: &[Vec<usize>], parts: &[NodeParts]) {
        let def = self.def;
        let mut fate = vec![Fate::MayRun; def.nodes.len()];
        for i in topological_order(deps, &def.nodes) {
            let at = FieldPath::root().key("nodes").index(i);
            let id = &def.nodes[i].id;
            let constant_false = parts[i]
                .when
                .as_ref()
                .is_some_and(|p| p.is_constant() && !p.evaluate(&Value::Null));
            if constant_false {
                fate[i] = Fate::Never;
                self.error(
                    Kind::Unreachable,
                    at.key("when"),
                    format!("node `{id}` can never run: its `when` is always false"),
                );
                continue;
            }
            if !deps[i].is_empty() && deps[i].iter().all(|&k| fate[k] != Fate::MayRun) {
                let names: Vec<String> = deps[i]
                    .iter()
                    .map(|&k| format!("`{}`", def.nodes[k].id))
                    .collect();
                if deps[i].iter().all(|&k| fate[k] == Fate::Never) {
                    fate[i] = Fate::Never;
                    self.error(
                        Kind::Unreachable,
                        at.key("needs"),
                        format!(
                            "node `{id}` can never run: none of the nodes it needs can run ({})",
                            names.join(", ")
                        ),
                    );
                } else {
                    fate[i] = Fate::AlwaysSkipped;
                    self.warning(
                        at.key("needs"),
                        format!(
                            "node `{id}` will always be skipped: every node it needs ({}) is skipped",
                            names.join(", ")
                        ),
                    );
                }
                continue;
            }
            if def.nodes[i].node_type.is_known() {
                continue;
            }
            fate[i] = Fate::AlwaysSkipped;
        }
    }

    /// Builds the IR; only called without errors, so every part is present.
    fn build(&self, deps: &[Vec<usize>], parts: Vec<NodeParts>) -> Ir {
        let def = self.def;
        let order = topological_order(deps, &def.nodes);
        let mut position = vec![0; def.nodes.len()];
        for (p, &i) in order.iter().enumerate() {
            position[i] = p;
        }
        let mut parts: Vec<Option<NodeParts>> = parts.into_iter().map(Some).collect();
        let mut nodes = Vec::with_capacity(order.len());
        for (p, &i) in order.iter().enumerate() {
            let node = &def.nodes[i];
            let Some(NodeParts {
                when,
                kind: Some(kind),
                retry,
                inputs,
            }) = parts[i].take()
            else {
                // Unreachable: a node without a kind has reported an error.
                continue;
            };
            let mut needs: Vec<usize> = deps[i].iter().map(|&k| position[k]).collect();
            needs.sort_unstable();
            nodes.push(IrNode {
                id: node.id.clone(),
                index: p,
                needs,
                when,
                kind,
                retry,
                timeout_ms: node.timeout_ms,
                inputs,
                definition_index: i,
            });
        }
        Ir {
            name: def.name.clone(),
            description: def.description.clone(),
            inputs: def.inputs.clone(),
            schedule: def.schedule.clone(),
            limits: def.limits,
            nodes,
        }
    }
}

/// What a node's templates may read.
struct Scope<'s> {
    node: usize,
    index: &'s HashMap<&'s str, usize>,
    ancestors: &'s BTreeSet<usize>,
}

/// The nodes `i` needs, directly or transitively (itself only if it is on a cycle).
fn ancestors_of(i: usize, deps: &[Vec<usize>]) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<usize> = deps[i].clone();
    while let Some(k) = stack.pop() {
        if seen.insert(k) {
            stack.extend(&deps[k]);
        }
    }
    seen
}

/// Nodes ordered so each comes after its needs; among those available, the smallest id first.
/// Nodes on or behind a cycle are left out.
fn topological_order(deps: &[Vec<usize>], nodes: &[NodeDef]) -> Vec<usize> {
    let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents = vec![Vec::new(); deps.len()];
    for (i, needs) in deps.iter().enumerate() {
        for &k in needs {
            dependents[k].push(i);
        }
    }
    let mut ready: BTreeSet<(&str, usize)> = (0..deps.len())
        .filter(|&i| waiting[i] == 0)
        .map(|i| (nodes[i].id.as_str(), i))
        .collect();
    let mut order = Vec::with_capacity(deps.len());
    while let Some((_, i)) = ready.pop_first() {
        order.push(i);
        for &d in &dependents[i] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.insert((nodes[d].id.as_str(), d));
            }
        }
    }
    order
}

/// Strongly connected components (Kosaraju, iterative), each sorted, ordered by their smallest
/// node.
fn strongly_connected(deps: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = deps.len();
    let mut finished = Vec::with_capacity(n);
    let mut visited = vec![false; n];
    for root in 0..n {
        if visited[root] {
            continue;
        }
        visited[root] = true;
        let mut stack = vec![(root, 0)];
        while let Some((node, next)) = stack.pop() {
            if let Some(&child) = deps[node].get(next) {
                stack.push((node, next + 1));
                if !visited[child] {
                    visited[child] = true;
                    stack.push((child, 0));
                }
            } else {
                finished.push(node);
            }
        }
    }
    let mut reverse = vec![Vec::new(); n];
    for (i, needs) in deps.iter().enumerate() {
        for &k in needs {
            reverse[k].push(i);
        }
    }
    let mut assigned = vec![false; n];
    let mut components = Vec::new();
    for &root in finished.iter().rev() {
        if assigned[root] {
            continue;
        }
        assigned[root] = true;
        let mut component = vec![root];
        let mut stack = vec![root];
        while let Some(node) = stack.pop() {
            for &next in &reverse[node] {
                if !assigned[next] {
                    assigned[next] = true;
                    component.push(next);
                    stack.push(next);
                }
            }
        }
        component.sort_unstable();
        components.push(component);
    }
    components.sort_by_key(|c| c[0]);
    components
}

/// A shortest cycle through `start` along `needs` edges within `members`, as
/// `[start, …, start]`.
fn shortest_cycle(start: usize, deps: &[Vec<usize>], members: &BTreeSet<usize>) -> Vec<usize> {
    let mut parent: HashMap<usize, usize> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for &next in &deps[node] {
            if next == start {
                let mut cycle = vec![node];
                let mut at = node;
                while at != start {
                    // Every node reached from `start` has a parent.
                    at = parent.get(&at).copied().unwrap_or(start);
                    cycle.push(at);
                }
                cycle.reverse();
                cycle.push(start);
                return cycle;
            }
            if members.contains(&next) && !parent.contains_key(&next) && next != start {
                parent.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    vec![start, start]
}

/// ` (did you mean `x`?)` when a candidate is within two edits of `name`, else nothing.
fn suggestion(name: &str, candidates: &[&str]) -> String {
    candidates
        .iter()
        .map(|c| (edit_distance(name, c), *c))
        .filter(|(d, c)| *d <= 2 && *d < name.chars().count().max(c.chars().count()))
        .min()
        .map(|(_, c)| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

/// Levenshtein distance in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_and_suggestions() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
        assert_eq!(
            suggestion("reveiw", &["review", "go"]),
            " (did you mean `review`?)"
        );
        assert_eq!(suggestion("zz", &["review", "go"]), "");
    }

    #[test]
    fn components_and_cycles() {
        // 0 needs 1, 1 needs 2, 2 needs 0; 3 needs 0; 4 needs itself.
        let deps = vec![vec![1], vec![2], vec![0], vec![0], vec![4]];
        let comps = strongly_connected(&deps);
        assert_eq!(comps, vec![vec![0, 1, 2], vec![3], vec![4]]);
        let members: BTreeSet<usize> = [0, 1, 2].into();
        assert_eq!(shortest_cycle(0, &deps, &members), [0, 1, 2, 0]);
        assert_eq!(shortest_cycle(4, &deps, &[4].into()), [4, 4]);
    }
}
