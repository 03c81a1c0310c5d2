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
//! - each known type's `config` (see [`crate::node_config`]); agent `tools` are among
//!   [`AGENT_TOOLS`]; no more agent nodes than `limits.max_agent_nodes`; the schedule's cron and
//!   time zone.
//! - durations and retries within the bounds of [`crate::limits`]: `wait` and `hitl` expiry at
//!   most 366 days, `timeout_ms` at most 24 hours, `retries.max_attempts` at most 20, back-off
//!   between 100 ms and 1 hour, agent `max_steps` at most 100.
//! - size: the definition, its node count, each node's `needs`, each template and the longest
//!   chain of needs within the [`FlowLimits`] given ([`compile`] uses the defaults). A definition
//!   over the size or node-count limit is refused with that one error before anything else is
//!   checked.
//! - reachability: a node is **unreachable** when it can never run — its `when` reads nothing and
//!   is false (`when: "false"`, `when: 1 > 2`), or every node it needs is unreachable (it would
//!   always be skipped). Unreachable nodes are errors.
//!
//! Nodes of unknown types compile with a warning (the runtime skips them), as do nodes whose
//! needs are all unknown-type or otherwise always-skipped nodes.
//!
//! # Cost
//! Time and memory grow linearly with nodes + needs (the order's tie-break by id adds a log
//! factor), with one exception: checking that a template reads a node among its *transitive*
//! needs walks the graph once per 64 distinct nodes read that way (reads of direct needs are
//! checked on the spot). At most [`MAX_REPORTED`] errors and as many warnings are listed; the
//! rest are counted.

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
use crate::limits::{
    FlowLimits, MAX_AGENT_STEPS, MAX_ATTEMPTS, MAX_BACKOFF_MS, MAX_EXPIRY_MS, MAX_TIMEOUT_MS,
    MAX_WAIT_MS, MIN_BACKOFF_MS, describe_ms, json_size,
};
use crate::node_config::{
    AGENT_TOOLS, AgentConfig, BacktestConfig, HeaderConfig, HitlConfig, HttpConfig, ModelConfig,
    SimulateConfig, TransformConfig, WaitConfig, is_env_name, is_sensitive_header,
};
use crate::predicate::Predicate;
use crate::template::{JsonTemplate, Template};
use crate::value_path::ValuePath;

/// Longest node id or input name.
pub const MAX_NAME_LEN: usize = 64;

/// Errors (and, separately, warnings) listed at most; the rest are counted in a last line.
pub const MAX_REPORTED: usize = 100;

/// A definition that compiled: its IR and anything worth telling the author.
#[derive(Clone, Debug, PartialEq)]
pub struct Compiled {
    pub ir: Ir,
    /// `place: path: message` lines (unknown node types, nodes that will always be skipped).
    pub warnings: Vec<String>,
}

/// Compiles a definition within the default [`FlowLimits`], or returns every problem found.
pub fn compile(definition: &Definition) -> Result<Compiled, Vec<CompileError>> {
    compile_with(definition, &FlowLimits::DEFAULT)
}

/// Compiles a definition within `limits`, or returns every problem found (at most
/// [`MAX_REPORTED`], then a count of the rest).
pub fn compile_with(
    definition: &Definition,
    limits: &FlowLimits,
) -> Result<Compiled, Vec<CompileError>> {
    Compiler {
        def: definition,
        limits,
        errors: Vec::new(),
        next_seq: 0,
        warnings: Vec::new(),
        unlisted_errors: 0,
        unlisted_warnings: 0,
        pending: Vec::new(),
    }
    .run()
}

/// Parses and compiles definition text (YAML or JSON) within the default [`FlowLimits`];
/// `origin` names it in errors.
pub fn compile_text(text: &str, origin: &str) -> Result<Compiled, FlowError> {
    compile_text_with(text, origin, &FlowLimits::DEFAULT)
}

/// Parses and compiles definition text (YAML or JSON) within `limits`.
pub fn compile_text_with(
    text: &str,
    origin: &str,
    limits: &FlowLimits,
) -> Result<Compiled, FlowError> {
    let definition = parse_definition(text, origin)?;
    compile_with(&definition, limits).map_err(FlowError::Compile)
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

/// A template that reads node `target` which is not among the direct needs of `node`: allowed
/// only if `target` is among its transitive needs, checked for all such reads at once.
struct IndirectRead {
    /// The error's place among the others, had it been reported when found.
    seq: usize,
    node: usize,
    target: usize,
    /// The path read, as written in the template.
    read: String,
    at: FieldPath,
}

struct Compiler<'d> {
    def: &'d Definition,
    limits: &'d FlowLimits,
    /// With the order they were found in, which breaks ties of place when they are sorted.
    errors: Vec<(usize, CompileError)>,
    next_seq: usize,
    warnings: Vec<String>,
    /// Errors and warnings found beyond [`MAX_REPORTED`].
    unlisted_errors: usize,
    unlisted_warnings: usize,
    pending: Vec<IndirectRead>,
}

impl<'d> Compiler<'d> {
    /// Whether further errors are only counted (so hints need not be computed).
    fn errors_full(&self) -> bool {
        self.errors.len() >= MAX_REPORTED
    }

    fn error(&mut self, kind: Kind, path: FieldPath, message: impl Into<String>) {
        let seq = self.take_seq();
        self.error_in_order(seq, kind, path, message);
    }

    /// A number for the next error found (see [`IndirectRead::seq`]).
    fn take_seq(&mut self) -> usize {
        self.next_seq += 1;
        self.next_seq
    }

    fn error_in_order(
        &mut self,
        seq: usize,
        kind: Kind,
        path: FieldPath,
        message: impl Into<String>,
    ) {
        if self.errors_full() {
            self.unlisted_errors += 1;
            return;
        }
        // Locating re-reads the text, so it is done only for errors that are listed.
        let location = self.def.source().and_then(|s| s.locate(&path));
        self.errors.push((
            seq,
            CompileError {
                kind,
                path,
                location,
                message: message.into(),
            },
        ));
    }

    fn warning(&mut self, path: FieldPath, message: impl Into<String>) {
        if self.warnings.len() >= MAX_REPORTED {
            self.unlisted_warnings += 1;
            return;
        }
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
        // Size first (node count, then bytes): everything after costs time in proportion to it.
        if def.nodes.len() > self.limits.max_nodes {
            self.error(
                Kind::Limit,
                nodes_at,
                format!(
                    "{} nodes, over the limit max_nodes ({})",
                    def.nodes.len(),
                    self.limits.max_nodes
                ),
            );
            return Err(self.into_errors());
        }
        let bytes = json_size(def);
        if bytes > self.limits.max_definition_bytes {
            self.error(
                Kind::Limit,
                FieldPath::root(),
                format!(
                    "the definition is {bytes} bytes as compact JSON, over the limit max_definition_bytes ({})",
                    self.limits.max_definition_bytes
                ),
            );
            return Err(self.into_errors());
        }
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
        let components = condensation(&deps);
        let cyclic = self.check_cycles(&deps, &components);

        // `direct[k] == i + 1` while node i is checked: k is among its needs.
        let mut direct = vec![0; def.nodes.len()];
        let parts: Vec<NodeParts> = (0..def.nodes.len())
            .map(|i| {
                for &k in &deps[i] {
                    direct[k] = i + 1;
                }
                self.check_node(i, &index, &direct)
            })
            .collect();
        self.check_indirect_reads(&deps, &components);

        self.check_agent_limit();
        let order = topological_order(&deps, &def.nodes);
        if !cyclic {
            self.check_depth(&deps, &order);
            self.check_reachability(&deps, &parts, &order);
        }

        if !self.errors.is_empty() {
            return Err(self.into_errors());
        }
        if self.unlisted_warnings > 0 {
            self.warnings.push(format!(
                "… and {} more warning(s); only the first {MAX_REPORTED} are listed",
                self.unlisted_warnings
            ));
        }
        let ir = self.build(&deps, parts, &order);
        Ok(Compiled {
            ir,
            warnings: self.warnings,
        })
    }

    /// The errors in file order (by path without a file; found first for the same place), and
    /// a count of those not listed.
    fn into_errors(self) -> Vec<CompileError> {
        let mut errors = self.errors;
        errors.sort_by(|(a_seq, a), (b_seq, b)| {
            let place = |e: &CompileError| e.location.as_ref().map(|l| (l.line, l.column));
            place(a)
                .cmp(&place(b))
                .then_with(|| a.path.cmp(&b.path))
                .then(a_seq.cmp(b_seq))
        });
        let mut errors: Vec<CompileError> = errors.into_iter().map(|(_, e)| e).collect();
        if self.unlisted_errors > 0 {
            errors.push(CompileError {
                kind: Kind::Limit,
                path: FieldPath::root(),
                location: None,
                message: format!(
                    "… and {} more problem(s); only the first {MAX_REPORTED} are listed",
                    self.unlisted_errors
                ),
            });
        }
        errors
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
        // `listed[k] == i + 1`: node i has already listed k.
        let mut listed = vec![0; def.nodes.len()];
        for (i, node) in def.nodes.iter().enumerate() {
            if node.needs.len() > self.limits.max_needs {
                self.error(
                    Kind::Limit,
                    FieldPath::root().key("nodes").index(i).key("needs"),
                    format!(
                        "node `{}` has {} needs, over the limit max_needs ({})",
                        node.id,
                        node.needs.len(),
                        self.limits.max_needs
                    ),
                );
            }
            for (j, need) in node.needs.iter().enumerate() {
                let at = FieldPath::root()
                    .key("nodes")
                    .index(i)
                    .key("needs")
                    .index(j);
                match index.get(need.as_str()) {
                    Some(&k) if listed[k] == i + 1 => {
                        self.error(Kind::UnknownNeed, at, format!("`{need}` is listed twice"));
                    }
                    Some(&k) => {
                        listed[k] = i + 1;
                        deps[i].push(k);
                    }
                    None => {
                        let hint = if self.errors_full() {
                            String::new()
                        } else {
                            suggestion(need, &ids)
                        };
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
    fn check_cycles(&mut self, deps: &[Vec<usize>], components: &Condensation) -> bool {
        let def = self.def;
        let mut any = false;
        let mut cyclic: Vec<&[usize]> = components
            .members
            .iter()
            .filter(|c| c.len() > 1 || deps[c[0]].contains(&c[0]))
            .map(Vec::as_slice)
            .collect();
        // Named in file order of their first node.
        cyclic.sort_by_key(|c| c.iter().min().copied());
        for component in cyclic {
            let start = component.iter().copied().min().unwrap_or(component[0]);
            any = true;
            if self.errors_full() {
                self.unlisted_errors += 1;
                continue;
            }
            let cycle = shortest_cycle(start, deps, &components.of);
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
        direct: &[usize],
    ) -> NodeParts {
        let node = &self.def.nodes[i];
        let at = FieldPath::root().key("nodes").index(i);
        let scope = Scope {
            node: i,
            index,
            direct,
        };
        let retry = self.retry_policy(&node.id, node.retries.as_ref(), &at.key("retries"));
        match node.timeout_ms {
            Some(0) => self.error(
                Kind::Config,
                at.key("timeout_ms"),
                "must be more than zero (omit it for no time limit)",
            ),
            Some(ms) if ms > MAX_TIMEOUT_MS => self.error(
                Kind::Duration,
                at.key("timeout_ms"),
                format!(
                    "node `{}`: {ms} ms is more than the maximum of {}",
                    node.id,
                    describe_ms(MAX_TIMEOUT_MS)
                ),
            ),
            _ => {}
        }
        let when = node.when.as_ref().and_then(|text| {
            let path = at.key("when");
            if !self.fits_template_limit(&node.id, text, &path) {
                return None;
            }
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

    fn retry_policy(&mut self, id: &str, spec: Option<&RetrySpec>, at: &FieldPath) -> RetryPolicy {
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
            } else if n > MAX_ATTEMPTS {
                self.error(
                    Kind::Config,
                    at.key("max_attempts"),
                    format!("node `{id}`: {n} attempts is more than the maximum of {MAX_ATTEMPTS}"),
                );
            }
            policy.max_attempts = n;
        }
        if let Some(ms) = spec.backoff_ms {
            self.check_backoff(id, ms, &at.key("backoff_ms"));
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
            if !self.check_backoff(id, cap, &at.key("max_backoff_ms")) {
                // Reported already.
            } else if cap < policy.backoff_ms {
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

    /// Whether a back-off is within [`MIN_BACKOFF_MS`]..=[`MAX_BACKOFF_MS`]; reports it if not.
    fn check_backoff(&mut self, id: &str, ms: u64, at: &FieldPath) -> bool {
        if ms < MIN_BACKOFF_MS {
            self.error(
                Kind::Duration,
                at.clone(),
                format!(
                    "node `{id}`: {ms} ms is less than the minimum of {}",
                    describe_ms(MIN_BACKOFF_MS)
                ),
            );
            return false;
        }
        if ms > MAX_BACKOFF_MS {
            self.error(
                Kind::Duration,
                at.clone(),
                format!(
                    "node `{id}`: {ms} ms is more than the maximum of {}",
                    describe_ms(MAX_BACKOFF_MS)
                ),
            );
            return false;
        }
        true
    }

    /// Whether a template or predicate is within `max_template_bytes`; reports it if not.
    fn fits_template_limit(&mut self, id: &str, text: &str, at: &FieldPath) -> bool {
        let max = self.limits.max_template_bytes;
        if text.len() <= max {
            return true;
        }
        self.error(
            Kind::Limit,
            at.clone(),
            format!(
                "node `{id}`: {} bytes, over the limit max_template_bytes ({max})",
                text.len()
            ),
        );
        false
    }

    /// Parses a template and checks what it reads.
    fn template(&mut self, scope: &Scope<'_>, text: &str, at: &FieldPath) -> Option<Template> {
        let id = &self.def.nodes[scope.node].id;
        if !self.fits_template_limit(id, text, at) {
            return None;
        }
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
        let mut long = Vec::new();
        long_strings(value, at, self.limits.max_template_bytes, &mut long);
        if !long.is_empty() {
            let id = &self.def.nodes[scope.node].id;
            for (path, text) in long {
                self.fits_template_limit(id, text, &path);
            }
            return None;
        }
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
                        let hint = if self.errors_full() {
                            String::new()
                        } else {
                            let ids: Vec<&str> = def.nodes.iter().map(|n| n.id.as_str()).collect();
                            suggestion(root, &ids)
                        };
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
                    Some(&k) if scope.direct[k] == scope.node + 1 => {}
                    Some(&k) => {
                        let seq = self.take_seq();
                        self.pending.push(IndirectRead {
                            seq,
                            node: scope.node,
                        target: k,
                            read: path.to_string(),
                            at: at.clone(),
                        });
                    }
                },
            }
        }
    }

    /// Reports reads of nodes that are not among the reader's transitive needs.
    fn check_indirect_reads(&mut self, deps: &[Vec<usize>], components: &Condensation) {
        let pending = std::mem::take(&mut self.pending);
        let pairs: Vec<(usize, usize)> = pending.iter().map(|p| (p.node, p.target)).collect();
        let found = reaches(deps, components, &pairs);
        for (read, ok) in pending.into_iter().zip(found) {
            if ok {
                continue;
            }
            let me = &self.def.nodes[read.node].id;
            let root = &self.def.nodes[read.target].id;
            self.error_in_order(
                read.seq,
                Kind::UnknownReference,
                read.at,
                format!(
                    "`{}` reads node `{root}`, which is not among the needs of `{me}` (directly or through other needs); add `{root}` to its `needs`",
                    read.read
                ),
            );
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
                let expires = match parse_duration_ms(&c.expires_after) {
                    Ok(ms) if ms > MAX_EXPIRY_MS => {
                        self.error(
                            Kind::Duration,
                            cat.key("expires_after"),
                            format!(
                                "node `{}`: {} ({ms} ms) is more than the maximum of {}",
                                node.id,
                                c.expires_after,
                                describe_ms(MAX_EXPIRY_MS)
                            ),
                        );
                        None
                    }
                    Ok(ms) => Some(ms),
                    Err(e) => {
                        self.error(Kind::Duration, cat.key("expires_after"), e);
                        None
                    }
                };
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
        if let Some(env) = &c.model.api_key_env
            && !is_env_name(env)
        {
            self.error(
                Kind::Config,
                model_at.key("api_key_env"),
                // The value is not echoed: it may be the key itself, pasted by mistake.
                "is not an environment variable name (A-Z, 0-9, `_`; not starting with a digit); it names the variable that holds the API key, never the key itself",
            );
            ok = false;
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
        let id = &self.def.nodes[scope.node].id;
        let mut seen = BTreeSet::new();
        for (k, tool) in c.tools.iter().enumerate() {
            if tool.trim().is_empty() {
                self.error(Kind::Config, at.key("tools").index(k), "must not be empty");
                ok = false;
            } else if !AGENT_TOOLS.contains(&tool.as_str()) {
                self.error(
                    Kind::Config,
                    at.key("tools").index(k),
                    format!(
                        "node `{id}`: unknown tool `{tool}`; workflow agents have: {}",
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

    /// Reports the first node (in `order`) that ends a chain of needs longer than
    /// `max_depth`; needs an acyclic graph.
    fn check_depth(&mut self, deps: &[Vec<usize>], order: &[usize]) {
        let def = self.def;
        let max = self.limits.max_depth;
        // Nodes on the longest chain ending at each node, and the need it continues from.
        let mut depth = vec![0usize; def.nodes.len()];
        let mut via = vec![None; def.nodes.len()];
        for &i in order {
            let deepest = deps[i].iter().copied().max_by_key(|&k| depth[k]);
            depth[i] = 1 + deepest.map_or(0, |k| depth[k]);
            via[i] = deepest;
            if depth[i] > max {
                let mut first = i;
                while let Some(k) = via[first] {
                    first = k;
                }
                let first = &def.nodes[first].id;
                self.error(
                    Kind::Limit,
                    FieldPath::root().key("nodes").index(i).key("needs"),
                    format!(
                        "node `{}` ends a chain of {} nodes (from `{first}`), over the limit max_depth ({max})",
                        def.nodes[i].id, depth[i]
                    ),
                );
                return;
            }
        }
    }

    /// Reports nodes that can never run (see the module docs); needs an acyclic graph and its
    /// order.
    fn check_reachability(&mut self, deps: &[Vec<usize>], parts: &[NodeParts], order: &[usize]) {
        let def = self.def;
        let mut fate = vec![Fate::MayRun; def.nodes.len()];
        for &i in order {
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
    fn build(&self, deps: &[Vec<usize>], parts: Vec<NodeParts>, order: &[usize]) -> Ir {
        let def = self.def;
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
        let positions = nodes
            .iter()
            .map(|n: &IrNode| (n.id.clone(), n.index))
            .collect();
        Ir {
            name: def.name.clone(),
            description: def.description.clone(),
            inputs: def.inputs.clone(),
            schedule: def.schedule.clone(),
            limits: def.limits,
            nodes,
            positions,
        }
    }
}

/// What a node's templates may read.
struct Scope<'s> {
    node: usize,
    index: &'s HashMap<&'s str, usize>,
    /// `direct[k] == node + 1` when `k` is among the node's needs.
    direct: &'s [usize],
}

/// Every string longer than `max` bytes in a JSON value, with its path.
fn long_strings<'v>(
    value: &'v Value,
    at: &FieldPath,
    max: usize,
    out: &mut Vec<(FieldPath, &'v str)>,
) {
    match value {
        Value::String(s) if s.len() > max => out.push((at.clone(), s)),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                long_strings(item, &at.index(i), max, out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                long_strings(v, &at.key(k), max, out);
            }
        }
        _ => {}
    }
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

/// The strongly connected components of the `needs` graph.
struct Condensation {
    /// The component of each node.
    of: Vec<usize>,
    /// The nodes of each component, components ordered so that every component comes after
    /// the components its nodes need.
    members: Vec<Vec<usize>>,
}

/// Strongly connected components (Kosaraju, iterative): O(nodes + needs).
fn condensation(deps: &[Vec<usize>]) -> Condensation {
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
    let mut of = vec![usize::MAX; n];
    let mut members = Vec::new();
    for &root in finished.iter().rev() {
        if of[root] != usize::MAX {
            continue;
        }
        let id = members.len();
        of[root] = id;
        let mut component = vec![root];
        let mut stack = vec![root];
        while let Some(node) = stack.pop() {
            for &next in &reverse[node] {
                if of[next] == usize::MAX {
                    of[next] = id;
                    component.push(next);
                    stack.push(next);
                }
            }
        }
        members.push(component);
    }
    // Kosaraju finds components dependents first; needs first is the reverse.
    members.reverse();
    let count = members.len();
    for c in &mut of {
        *c = count - 1 - *c;
    }
    Condensation { of, members }
}

/// For each `(from, to)` with `from != to`: whether `to` is among the transitive needs of
/// `from`. One pass over the condensed graph per 64 distinct `to`s, carrying a bit per `to`.
fn reaches(deps: &[Vec<usize>], components: &Condensation, pairs: &[(usize, usize)]) -> Vec<bool> {
    let mut answers = vec![false; pairs.len()];
    let mut targets: Vec<usize> = pairs.iter().map(|&(_, to)| to).collect();
    targets.sort_unstable();
    targets.dedup();
    if targets.is_empty() {
        return answers;
    }
    let count = components.members.len();
    // Pairs by target, so each batch answers its own.
    let mut by_target: Vec<usize> = (0..pairs.len()).collect();
    by_target.sort_unstable_by_key(|&p| pairs[p].1);
    let mut next_pair = 0;
    // Bits of the batch's targets in each component, and those among its transitive needs.
    let mut own = vec![0u64; count];
    let mut below = vec![0u64; count];
    for batch in targets.chunks(64) {
        own.fill(0);
        below.fill(0);
        for (bit, &t) in batch.iter().enumerate() {
            own[components.of[t]] |= 1 << bit;
        }
        for (c, nodes) in components.members.iter().enumerate() {
            let mut bits = 0;
            for &u in nodes {
                for &v in &deps[u] {
                    let cv = components.of[v];
                    if cv != c {
                        bits |= own[cv] | below[cv];
                    }
                }
            }
            below[c] = bits;
        }
        let last = batch[batch.len() - 1];
        while let Some(&p) = by_target.get(next_pair) {
            let (from, to) = pairs[p];
            if to > last {
                break;
            }
            next_pair += 1;
            let bit = batch.partition_point(|&t| t < to);
            let (cf, ct) = (components.of[from], components.of[to]);
            // Nodes of one component (of two or more) reach each other.
            answers[p] = (cf == ct && from != to) || below[cf] & (1 << bit) != 0;
        }
    }
    answers
}

/// A shortest cycle through `start` along `needs` edges within its component (`component_of`),
/// as `[start, …, start]`.
fn shortest_cycle(start: usize, deps: &[Vec<usize>], component_of: &[usize]) -> Vec<usize> {
    let mine = component_of[start];
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
            if component_of[next] == mine && !parent.contains_key(&next) && next != start {
                parent.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    vec![start, start]
}

/// ` (did you mean `x`?)` when a candidate is within two edits of `name`, else nothing.
fn suggestion(name: &str, candidates: &[&str]) -> String {
    let name_len = name.chars().count();
    candidates
        .iter()
        .filter_map(|c| edit_distance_within(name, c, 2).map(|d| (d, *c)))
        .filter(|(d, c)| *d < name_len.max(c.chars().count()))
        .min()
        .map(|(_, c)| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

/// Levenshtein distance in characters if it is at most `k`: only cells within `k` of the
/// diagonal are computed, so the cost is O(length × k) whatever the lengths.
fn edit_distance_within(a: &str, b: &str, k: usize) -> Option<usize> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > k {
        return None;
    }
    let over = k + 1;
    let mut prev: Vec<usize> = (0..=b.len()).map(|j| j.min(over)).collect();
    let mut row = vec![over; b.len() + 1];
    for i in 1..=a.len() {
        let low = i.saturating_sub(k).max(1);
        let high = (i + k).min(b.len());
        row[low - 1] = if low == 1 { i.min(over) } else { over };
        for j in low..=high {
            let substitute = prev[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            row[j] = substitute.min(prev[j] + 1).min(row[j - 1] + 1).min(over);
        }
        if high < b.len() {
            row[high + 1] = over;
        }
        std::mem::swap(&mut prev, &mut row);
    }
    let d = prev[b.len()];
    (d <= k).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_and_suggestions() {
        assert_eq!(edit_distance_within("kitten", "sitting", 2), None);
        assert_eq!(edit_distance_within("kitten", "sitting", 3), Some(3));
        assert_eq!(edit_distance_within("kitten", "sittn", 2), Some(2));
        assert_eq!(edit_distance_within("", "ab", 2), Some(2));
        assert_eq!(edit_distance_within("abc", "abc", 2), Some(0));
        assert_eq!(edit_distance_within("abcdef", "abcxyz", 2), None);
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
        let c = condensation(&deps);
        let mut sorted: Vec<Vec<usize>> = c
            .members
            .iter()
            .map(|m| {
                let mut m = m.clone();
                m.sort_unstable();
                m
            })
            .collect();
        // {0, 1, 2} comes before {3}, which needs it.
        let pos = |n: usize| c.of[n];
        assert!(pos(0) < pos(3));
        sorted.sort();
        assert_eq!(sorted, vec![vec![0, 1, 2], vec![3], vec![4]]);
        assert_eq!(shortest_cycle(0, &deps, &c.of), [0, 1, 2, 0]);
        assert_eq!(shortest_cycle(4, &deps, &c.of), [4, 4]);
    }

    /// Transitive needs by a plain search from `from`.
    fn reaches_slowly(deps: &[Vec<usize>], from: usize, to: usize) -> bool {
        let mut seen = vec![false; deps.len()];
        let mut stack = deps[from].clone();
        while let Some(k) = stack.pop() {
            if k == to {
                return true;
            }
            if !std::mem::replace(&mut seen[k], true) {
                stack.extend(&deps[k]);
            }
        }
        false
    }

    #[test]
    fn batched_reachability_agrees_with_a_plain_search() {
        // A pseudo-random graph (fixed seed) with back edges, so it has cycles too, and more
        // than 64 distinct targets, so several batches.
        let n = 150;
        let mut seed: u64 = 12345;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        let mut deps = vec![Vec::new(); n];
        for (i, needs) in deps.iter_mut().enumerate() {
            for _ in 0..next() % 3 {
                let k = if next() % 10 == 0 {
                    next() % n
                } else {
                    next() % (i + 1)
                };
                if k != i && !needs.contains(&k) {
                    needs.push(k);
                }
            }
        }
        // And one cycle for sure: 30 → 31 → 32 → 30.
        for (from, to) in [(30, 31), (31, 32), (32, 30)] {
            if !deps[from].contains(&to) {
                deps[from].push(to);
            }
        }
        let pairs: Vec<(usize, usize)> = (0..2_000)
            .map(|_| (next() % n, next() % n))
            .filter(|(a, b)| a != b)
            .collect();
        let c = condensation(&deps);
        let fast = reaches(&deps, &c, &pairs);
        for (&(from, to), got) in pairs.iter().zip(fast) {
            assert_eq!(got, reaches_slowly(&deps, from, to), "{from} → {to}");
        }
        assert!(
            c.members.iter().any(|m| m.len() > 1),
            "the graph has a cycle"
        );
    }
}
