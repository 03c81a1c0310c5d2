//! [`Ir`]: a compiled workflow — nodes in a deterministic topological order with dependency
//! indices, parsed templates and predicates, and resolved retry/timeout policies — plus the pure
//! scheduling rules the coordinator applies to it.
//!
//! # Order and identity
//! Nodes are ordered so every node comes after the nodes it needs; among nodes whose needs are all
//! placed, the smallest id comes first. The order (and so the IR) does not depend on the order of
//! nodes or of `needs` in the file. [`Ir::canonical_json`] writes the IR with sorted keys, no
//! whitespace, defaults filled in and templates/predicates in canonical form; [`Ir::hash`] is its
//! SHA-256. The same definition — whatever its formatting, key order, node order, YAML or JSON —
//! has the same hash.
//!
//! # Scheduling rules
//! A node is *ready* when all its needs are settled (completed or skipped) and it has no needs or
//! at least one of them completed. A node with needs that are *all* skipped is skipped too, and so
//! on down the graph ([`Ir::nodes_to_skip`]). A ready node whose `when` is false is skipped by the
//! coordinator ([`IrNode::should_run`]). Dependents of a failed node never become ready.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::BuildHasher;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::definition::{InputDecl, Limits, Schedule};
use crate::limits::{MAX_BACKOFF_MS, MIN_BACKOFF_MS};
use crate::node_config::{
    ChatId, Decision, HttpMethod, ModelConfig, ReferencePrice, SecretRef, WebhookFormat,
};
use crate::predicate::Predicate;
use crate::template::{JsonTemplate, RenderError, Template};

/// Bumped whenever the canonical form changes meaning, so old hashes never collide with new.
pub const IR_VERSION: u32 = 1;

/// Retries of one node, defaults filled in.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RetryPolicy {
    /// Attempts in all, at least 1.
    pub max_attempts: u32,
    /// Delay before the first retry, in milliseconds.
    pub backoff_ms: u64,
    /// Factor applied to the delay after each retry, at least 1.0.
    pub backoff_multiplier: f64,
    /// Cap on the delay, in milliseconds.
    pub max_backoff_ms: Option<u64>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 1,
            backoff_ms: 1000,
            backoff_multiplier: 2.0,
            max_backoff_ms: None,
        }
    }
}

impl RetryPolicy {
    /// Milliseconds to wait before attempt `attempt` (1-based; attempt 1 has no delay):
    /// `backoff_ms × multiplier^(attempt − 2)`, capped by `max_backoff_ms` and always within
    /// [`MIN_BACKOFF_MS`]..=[`MAX_BACKOFF_MS`] (the compiler refuses values outside; the clamp
    /// keeps the runtime's date arithmetic bounded whatever it is given).
    pub fn delay_before_attempt_ms(&self, attempt: u32) -> u64 {
        if attempt <= 1 {
            return 0;
        }
        let exponent = i32::try_from(attempt - 2).unwrap_or(i32::MAX);
        let delay = self.backoff_ms as f64 * self.backoff_multiplier.powi(exponent);
        // `as` saturates for values beyond u64 (and infinity; NaN gives 0).
        let delay = delay as u64;
        let cap = self
            .max_backoff_ms
            .map_or(MAX_BACKOFF_MS, |cap| cap.min(MAX_BACKOFF_MS));
        delay.min(cap).max(MIN_BACKOFF_MS)
    }
}

/// `type: agent`, compiled.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AgentNode {
    /// `None` only while `agent` is unresolved (resolved when a run starts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelConfig>,
    /// A registered agent to resolve when a run starts (`name` or `name@version`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The agent version the run resolved (`name@version`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_agent: Option<String>,
    /// Added to the system prompt of workflow agents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    pub prompt: Template,
    pub tools: Vec<String>,
    pub max_steps: u32,
    /// Absent from the IR's JSON when not set, so the hashes of IRs without it are unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub market: Option<MarketNode>,
    /// The paper run whose account `get_portfolio` shows (empty when rendered: a fresh book).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paper_run: Option<Template>,
    /// The node's `json` once its attempts are exhausted without a usable answer (see
    /// [`crate::node_config::AgentConfig::fallback`]). Absent from the IR's JSON when not set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<JsonTemplate>,
    /// The JSON Schema the answer's JSON must meet (see
    /// [`crate::node_config::AgentConfig::output_schema`]). Absent from the IR's JSON when not set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
}

/// `market:` of an `agent` or `order` node, compiled: defaults filled in, `as_of` a template.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MarketNode {
    pub universe: String,
    pub news: Option<String>,
    pub symbols: Option<Vec<String>>,
    pub as_of: Template,
    pub reference_price: ReferencePrice,
    pub initial_cash: tradeloom_core::Decimal,
    /// An ISO code the compiler checked.
    pub currency: String,
    pub fee_bps: tradeloom_core::Decimal,
}

/// `type: order`, compiled.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OrderNode {
    /// `None` only with `paper_run`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub market: Option<MarketNode>,
    pub proposal: JsonTemplate,
    /// A running paper run's id (empty when rendered: the simulated book).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paper_run: Option<Template>,
    /// How long to wait for a paper run's fill (default [`DEFAULT_WAIT_FILL_MS`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_fill_ms: Option<u64>,
}

/// How long an `order` node waits for a paper run's fill when it does not say.
pub const DEFAULT_WAIT_FILL_MS: u64 = 10_000;
/// The longest an `order` node may wait for a paper run's fill.
pub const MAX_WAIT_FILL_MS: u64 = 600_000;

/// An `http` header's value, compiled.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum HeaderSource {
    /// Rendered from the context.
    Template(Template),
    /// Read from the named (allow-listed) environment variable when the request is sent.
    Secret(SecretRef),
}

/// `type: http`, compiled.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HttpNode {
    pub method: HttpMethod,
    pub url: Template,
    pub headers: BTreeMap<String, HeaderSource>,
    pub body: Option<JsonTemplate>,
}

/// `type: hitl`, compiled.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HitlNode {
    pub prompt: Template,
    /// `expires_after` in milliseconds.
    pub expires_after_ms: u64,
    pub default: Decision,
    pub approvers: Option<Vec<String>>,
    /// Absent from the IR's JSON when not set, so the hashes of IRs without it are unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify: Option<HitlNotify>,
}

/// A `hitl` node's `notify`, compiled (see [`crate::node_config::NotifyConfig`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HitlNotify {
    /// The webhook's URL as written, or the variable holding it.
    pub url: WebhookUrl,
    pub format: WebhookFormat,
    pub chat_id: Option<ChatId>,
    pub approver: String,
    /// Without a trailing `/`; `None`: the runtime's public URL.
    pub link_base: Option<String>,
    /// At most the node's `expires_after_ms`.
    pub link_expires_after_ms: u64,
    pub forwardable: bool,
}

/// Where a webhook's URL comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookUrl {
    /// Written in the definition.
    Text(String),
    /// Read from the named (allow-listed) environment variable when the message is sent.
    Secret(SecretRef),
}

/// Where a simulation's config comes from.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SimulationSource {
    /// A config file path (template).
    ConfigPath(Template),
    /// An inline config.
    Config(JsonTemplate),
}

/// `type: simulate`, compiled.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimulateNode {
    pub source: SimulationSource,
}

/// `type: backtest`, compiled.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BacktestNode {
    pub spec_path: Template,
}

/// `type: paper`, compiled.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PaperNode {
    pub spec_path: Template,
}

/// `type: script`, compiled: the path checked as text (relative, no `..`, a `.py` file), the
/// limits in range.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScriptNode {
    pub script: String,
    pub function: String,
    pub input: JsonTemplate,
    pub limits: tradeloom_core::script_limits::ScriptLimits,
}

/// `type: transform`, compiled.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TransformNode {
    pub output: JsonTemplate,
}

/// `type: wait`, compiled.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WaitNode {
    pub duration_ms: u64,
}

/// What a node does.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    Agent(Box<AgentNode>),
    Http(HttpNode),
    Hitl(HitlNode),
    Simulate(SimulateNode),
    Backtest(BacktestNode),
    Paper(PaperNode),
    Order(OrderNode),
    Script(ScriptNode),
    Transform(TransformNode),
    Wait(WaitNode),
    /// A type this version does not know; the runtime skips it with a warning event.
    Unknown {
        type_name: String,
        config: Value,
    },
}

impl NodeKind {
    /// The `type` name.
    pub fn type_name(&self) -> &str {
        match self {
            NodeKind::Agent(_) => "agent",
            NodeKind::Http(_) => "http",
            NodeKind::Hitl(_) => "hitl",
            NodeKind::Simulate(_) => "simulate",
            NodeKind::Backtest(_) => "backtest",
            NodeKind::Paper(_) => "paper",
            NodeKind::Order(_) => "order",
            NodeKind::Script(_) => "script",
            NodeKind::Transform(_) => "transform",
            NodeKind::Wait(_) => "wait",
            NodeKind::Unknown { type_name, .. } => type_name,
        }
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self, NodeKind::Unknown { .. })
    }

    fn config_value(&self) -> Value {
        match self {
            NodeKind::Agent(c) => to_value(c),
            NodeKind::Http(c) => to_value(c),
            NodeKind::Hitl(c) => to_value(c),
            NodeKind::Simulate(c) => to_value(c),
            NodeKind::Backtest(c) => to_value(c),
            NodeKind::Paper(c) => to_value(c),
            NodeKind::Order(c) => to_value(c),
            NodeKind::Script(c) => to_value(c),
            NodeKind::Transform(c) => to_value(c),
            NodeKind::Wait(c) => to_value(c),
            NodeKind::Unknown { config, .. } => config.clone(),
        }
    }
}

impl Serialize for NodeKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        json!({"type": self.type_name(), "config": self.config_value()}).serialize(serializer)
    }
}

/// JSON of an IR part. Cannot fail: every map key is a string and every value serialisable.
fn to_value<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// One compiled node.
#[derive(Clone, Debug, PartialEq)]
pub struct IrNode {
    pub(crate) id: String,
    pub(crate) index: usize,
    pub(crate) needs: Vec<usize>,
    pub(crate) when: Option<Predicate>,
    pub(crate) kind: NodeKind,
    pub(crate) retry: RetryPolicy,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) inputs: BTreeMap<String, Template>,
    pub(crate) definition_index: usize,
}

impl IrNode {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Position in [`Ir::nodes`].
    pub fn index(&self) -> usize {
        self.index
    }

    /// Positions in [`Ir::nodes`] of the nodes this one needs, ascending (all below `index`).
    pub fn needs(&self) -> &[usize] {
        &self.needs
    }

    pub fn when(&self) -> Option<&Predicate> {
        self.when.as_ref()
    }

    pub fn kind(&self) -> &NodeKind {
        &self.kind
    }

    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Per-attempt time limit in milliseconds.
    pub fn timeout_ms(&self) -> Option<u64> {
        self.timeout_ms
    }

    /// The node's `inputs` templates by name.
    pub fn inputs(&self) -> &BTreeMap<String, Template> {
        &self.inputs
    }

    /// Position of the node in the definition's `nodes` (for messages that point at the file).
    pub fn definition_index(&self) -> usize {
        self.definition_index
    }

    /// Whether the node's `when` holds in `context` (true without a `when`).
    pub fn should_run(&self, context: &Value) -> bool {
        self.when.as_ref().is_none_or(|p| p.evaluate(context))
    }

    /// Renders the node's `inputs` against `context`.
    pub fn render_inputs(&self, context: &Value) -> Result<Map<String, Value>, RenderError> {
        self.inputs
            .iter()
            .map(|(name, t)| Ok((name.clone(), t.render(context)?)))
            .collect()
    }
}

/// A set of node ids, as the coordinator keeps them.
pub trait NodeIdSet {
    fn contains_id(&self, id: &str) -> bool;
}

impl NodeIdSet for BTreeSet<String> {
    fn contains_id(&self, id: &str) -> bool {
        self.contains(id)
    }
}

impl NodeIdSet for BTreeSet<&str> {
    fn contains_id(&self, id: &str) -> bool {
        self.contains(id)
    }
}

impl<S: BuildHasher> NodeIdSet for HashSet<String, S> {
    fn contains_id(&self, id: &str) -> bool {
        self.contains(id)
    }
}

impl<S: BuildHasher> NodeIdSet for HashSet<&str, S> {
    fn contains_id(&self, id: &str) -> bool {
        self.contains(id)
    }
}

/// A compiled workflow. Only [`crate::compile`] makes one, so it is always valid: ids unique,
/// acyclic, every reference resolvable.
#[derive(Clone, Debug, PartialEq)]
pub struct Ir {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) inputs: BTreeMap<String, InputDecl>,
    pub(crate) schedule: Option<Schedule>,
    pub(crate) limits: Limits,
    pub(crate) nodes: Vec<IrNode>,
    /// Position in `nodes` by id, so [`Ir::node`] does not scan.
    pub(crate) positions: HashMap<String, usize>,
}

impl Ir {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Declared run inputs.
    pub fn inputs(&self) -> &BTreeMap<String, InputDecl> {
        &self.inputs
    }

    pub fn schedule(&self) -> Option<&Schedule> {
        self.schedule.as_ref()
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The nodes in topological order.
    pub fn nodes(&self) -> &[IrNode] {
        &self.nodes
    }

    /// The node with this id.
    pub fn node(&self, id: &str) -> Option<&IrNode> {
        self.positions.get(id).map(|&p| &self.nodes[p])
    }

    /// How many agent nodes the workflow has.
    pub fn agent_node_count(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| matches!(n.kind, NodeKind::Agent(_)))
            .count()
    }

    fn canonical_value(&self) -> Value {
        let nodes: Vec<Value> = self
            .nodes
            .iter()
            .map(|n| {
                let needs: Vec<&str> = n.needs.iter().map(|&k| self.nodes[k].id.as_str()).collect();
                json!({
                    "id": n.id,
                    "type": n.kind.type_name(),
                    "config": n.kind.config_value(),
                    "needs": needs,
                    "when": n.when.as_ref().map(ToString::to_string),
                    "retry": to_value(&n.retry),
                    "timeout_ms": n.timeout_ms,
                    "inputs": to_value(&n.inputs),
                })
            })
            .collect();
        json!({
            "ir_version": IR_VERSION,
            "name": self.name,
            "description": self.description,
            "inputs": to_value(&self.inputs),
            "schedule": to_value(&self.schedule),
            "limits": to_value(&self.limits),
            "nodes": nodes,
        })
    }

    /// The IR as canonical JSON: keys sorted, no whitespace (see the module docs).
    pub fn canonical_json(&self) -> String {
        tradeloom_core::canonical_json(&self.canonical_value())
    }

    /// SHA-256 of [`Ir::canonical_json`], lowercase hex: the workflow's content address.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical_json().as_bytes()))
    }

    /// Nodes that may start now: not completed or skipped, every need settled, and no needs or
    /// at least one completed. The caller leaves out nodes it has already started.
    pub fn ready_nodes<S: NodeIdSet>(&self, completed: &S, skipped: &S) -> Vec<&IrNode> {
        self.nodes
            .iter()
            .filter(|n| !completed.contains_id(&n.id) && !skipped.contains_id(&n.id))
            .filter(|n| {
                let settled = n.needs.iter().all(|&k| {
                    let id = &self.nodes[k].id;
                    completed.contains_id(id) || skipped.contains_id(id)
                });
                let any_completed = n.needs.is_empty()
                    || n.needs
                        .iter()
                        .any(|&k| completed.contains_id(&self.nodes[k].id));
                settled && any_completed
            })
            .collect()
    }

    /// Nodes that must be marked skipped now because every node they need is skipped, including
    /// those skipped only because of this rule further down (in topological order).
    pub fn nodes_to_skip<S: NodeIdSet>(&self, completed: &S, skipped: &S) -> Vec<&IrNode> {
        let mut newly = vec![false; self.nodes.len()];
        let mut out = Vec::new();
        for n in &self.nodes {
            if n.needs.is_empty() || completed.contains_id(&n.id) || skipped.contains_id(&n.id) {
                continue;
            }
            let all_skipped = n
                .needs
                .iter()
                .all(|&k| newly[k] || skipped.contains_id(&self.nodes[k].id));
            if all_skipped {
                newly[n.index] = true;
                out.push(n);
            }
        }
        out
    }

    /// The inputs of a run: `given` values, defaults for the rest. Fails with every missing
    /// required input and every undeclared one.
    pub fn resolve_inputs(
        &self,
        given: &Map<String, Value>,
    ) -> Result<Map<String, Value>, Vec<String>> {
        let mut problems = Vec::new();
        let mut resolved = Map::new();
        for (name, decl) in &self.inputs {
            match (given.get(name), &decl.default) {
                (Some(v), _) | (None, Some(v)) => {
                    resolved.insert(name.clone(), v.clone());
                }
                (None, None) => {
                    problems.push(format!("input `{name}` is required (it has no default)"))
                }
            }
        }
        for name in given.keys().filter(|k| !self.inputs.contains_key(*k)) {
            let declared: Vec<&str> = self.inputs.keys().map(String::as_str).collect();
            problems.push(if declared.is_empty() {
                format!("unknown input `{name}`; the workflow declares no inputs")
            } else {
                format!("unknown input `{name}`; declared: {}", declared.join(", "))
            });
        }
        if problems.is_empty() {
            Ok(resolved)
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_and_cap() {
        let p = RetryPolicy {
            max_attempts: 5,
            backoff_ms: 100,
            backoff_multiplier: 2.0,
            max_backoff_ms: Some(300),
        };
        let delays: Vec<u64> = (1..=5).map(|a| p.delay_before_attempt_ms(a)).collect();
        assert_eq!(delays, [0, 100, 200, 300, 300]);
    }

    #[test]
    fn retry_delays_stay_within_the_maximum_back_off_without_a_cap() {
        let p = RetryPolicy {
            max_attempts: 20,
            backoff_ms: 3_600_000,
            backoff_multiplier: 1e300,
            max_backoff_ms: None,
        };
        assert_eq!(p.delay_before_attempt_ms(2), 3_600_000);
        assert_eq!(p.delay_before_attempt_ms(20), 3_600_000);
        assert_eq!(p.delay_before_attempt_ms(u32::MAX), 3_600_000);
    }
}
