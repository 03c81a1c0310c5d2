//! The workflow definition: what a user writes, in YAML or JSON (one schema).
//!
//! ```yaml
//! name: review-and-trade
//! inputs: {symbol: {default: GOOG}}          # run inputs; one without a default is required
//! schedule: {cron: "0 6 * * *", timezone: UTC, missed: skip}   # optional
//! limits: {max_agent_nodes: 5, max_patch_depth: 10}          # optional; these are the defaults
//!                                             # (and max_concurrent_runs: N, none by default)
//! nodes:
//!   - {id: a, type: transform, config: {output: {x: 1}}}
//!   - {id: b, type: wait, needs: [a], config: {duration_ms: 200}}
//!   - {id: review, type: hitl, needs: [b], config: {prompt: "Trade?", expires_after: 1h, default: reject}}
//!   - {id: go, type: transform, needs: [review], when: 'review.decision == "approve"'}
//! ```
//!
//! Parsing checks the shape only (unknown fields anywhere are errors); a node's `config` is kept
//! as JSON and checked against its type by [`crate::compile`], which also checks everything
//! else. Serialising a definition writes the fields that were given (absent optional fields stay
//! absent; only `schedule.timezone` and `schedule.missed` are written with their defaults), so
//! `from_json_value(&definition.to_json_value())` gives the definition back: that JSON document
//! is what [JSON patches](crate::patch) address.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::FlowError;
use crate::source::{Source, SourceFormat};

/// A workflow definition, as written.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// A label for the workflow (shown in lists); not empty.
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Declared run inputs, by name. Templates may read `inputs.<name>` only for declared names.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, InputDecl>,
    /// The nodes, in any order (the compiler orders them).
    pub nodes: Vec<NodeDef>,
    /// When to start runs by itself; none means on demand only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Safety limits (defaults: 5 agent nodes, patch depth 10).
    #[serde(default, skip_serializing_if = "Limits::is_default")]
    pub limits: Limits,
    /// The text this was parsed from, for line numbers in compile errors.
    #[serde(skip)]
    source: Option<Source>,
}

/// Equality of content; where the definition was parsed from does not matter.
impl PartialEq for Definition {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.description == other.description
            && self.inputs == other.inputs
            && self.nodes == other.nodes
            && self.schedule == other.schedule
            && self.limits == other.limits
    }
}

/// `inputs.<name>`: a run input.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InputDecl {
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The value when a run does not give one; without it the input is required. `default: null`
    /// is a default (of null), unlike an absent `default`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub default: Option<Value>,
}

/// `Some(value)` for any value that is present, `null` included.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// A node type. Unknown names are kept: they compile with a warning and the runtime skips them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(from = "String", into = "String")]
pub enum NodeType {
    /// An LLM agent loop with tools.
    Agent,
    /// One outbound HTTP request.
    Http,
    /// A human decision (approve or reject) with an expiry and a default.
    Hitl,
    /// A simulation job.
    Simulate,
    /// A backtest run from a run spec.
    Backtest,
    /// A paper run from a run spec, started in the background (outputs its id at once).
    Paper,
    /// Executes an approved order proposal on a simulated book, journaled in a run folder.
    Order,
    /// Runs a sandboxed Python skill: JSON in, JSON out.
    Script,
    /// Builds an output from templates; no side effects.
    Transform,
    /// Sleeps.
    Wait,
    /// Any other name.
    Unknown(String),
}

impl NodeType {
    /// Every known type name.
    pub const KNOWN: [&'static str; 10] = [
        "agent",
        "http",
        "hitl",
        "simulate",
        "backtest",
        "paper",
        "order",
        "script",
        "transform",
        "wait",
    ];

    pub fn as_str(&self) -> &str {
        match self {
            NodeType::Agent => "agent",
            NodeType::Http => "http",
            NodeType::Hitl => "hitl",
            NodeType::Simulate => "simulate",
            NodeType::Backtest => "backtest",
            NodeType::Paper => "paper",
            NodeType::Order => "order",
            NodeType::Script => "script",
            NodeType::Transform => "transform",
            NodeType::Wait => "wait",
            NodeType::Unknown(name) => name,
        }
    }

    pub fn is_known(&self) -> bool {
        !matches!(self, NodeType::Unknown(_))
    }
}

impl From<String> for NodeType {
    fn from(name: String) -> Self {
        match name.as_str() {
            "agent" => NodeType::Agent,
            "http" => NodeType::Http,
            "hitl" => NodeType::Hitl,
            "simulate" => NodeType::Simulate,
            "backtest" => NodeType::Backtest,
            "paper" => NodeType::Paper,
            "order" => NodeType::Order,
            "script" => NodeType::Script,
            "transform" => NodeType::Transform,
            "wait" => NodeType::Wait,
            _ => NodeType::Unknown(name),
        }
    }
}

impl From<NodeType> for String {
    fn from(t: NodeType) -> Self {
        t.as_str().to_string()
    }
}

impl fmt::Display for NodeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `nodes[]`: one step of the workflow.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeDef {
    /// Unique; 1–64 characters of `a-z`, `0-9`, `_`, `-`; not `inputs` or `run`.
    pub id: String,
    #[serde(rename = "type")]
    pub node_type: NodeType,
    /// Nodes that must finish first; the node's templates may read their outputs (and those of
    /// their own needs, transitively).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    /// A [predicate](crate::predicate) on earlier outputs; false → the node is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Per-type settings (see [`crate::node_config`]); absent is the same as `{}`.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub config: Value,
    /// Retry policy; absent means one attempt. Bounded by [`crate::limits`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<RetrySpec>,
    /// Per-attempt time limit in milliseconds, at most [`crate::limits::MAX_TIMEOUT_MS`]; absent
    /// means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Named values rendered from templates before the node runs and handed to it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
}

/// `nodes[].retries`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Attempts in all, 1 to [`crate::limits::MAX_ATTEMPTS`] (default 1: no retry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Delay before the first retry, in milliseconds (default 1000), within
    /// [`crate::limits::MIN_BACKOFF_MS`]..=[`crate::limits::MAX_BACKOFF_MS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_ms: Option<u64>,
    /// Factor applied to the delay after each retry, at least 1.0 (default 2.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_multiplier: Option<f64>,
    /// Cap on the delay, in milliseconds (default none: [`crate::limits::MAX_BACKOFF_MS`] caps it),
    /// within the same bounds as `backoff_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backoff_ms: Option<u64>,
}

/// `schedule.missed`: what to do with scheduled times that passed while nothing was running.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    /// Forget them (default).
    #[default]
    Skip,
    /// Start one run for all of them.
    RunOnce,
    /// Start one run for each.
    RunAll,
}

fn default_timezone() -> String {
    "UTC".to_string()
}

/// `schedule`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Five-field cron (`minute hour day-of-month month day-of-week`) or `@daily`-style macro.
    pub cron: String,
    /// `UTC` (default), an IANA name such as `Europe/Paris`, or a fixed offset such as `+02:00`.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    #[serde(default)]
    pub missed: Missed,
}

/// `limits`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Agent nodes a run may have, counting those added by patches (default 5).
    #[serde(default = "Limits::default_max_agent_nodes")]
    pub max_agent_nodes: u32,
    /// Patches a run may accept (default 10).
    #[serde(default = "Limits::default_max_patch_depth")]
    pub max_patch_depth: u32,
    /// Runs of this workflow that may be active at once — pending, running, waiting for an
    /// approval or paused (at least 1; absent: no limit). A start beyond it is `queued` until a
    /// run finishes, or refused when the request says `on_limit: reject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_runs: Option<u32>,
}

impl Limits {
    fn default_max_agent_nodes() -> u32 {
        5
    }
    fn default_max_patch_depth() -> u32 {
        10
    }
    fn is_default(&self) -> bool {
        *self == Limits::default()
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_agent_nodes: Limits::default_max_agent_nodes(),
            max_patch_depth: Limits::default_max_patch_depth(),
            max_concurrent_runs: None,
        }
    }
}

impl Definition {
    /// The text this definition was parsed from, if it was parsed from text.
    pub fn source(&self) -> Option<&Source> {
        self.source.as_ref()
    }

    /// The definition as a JSON document (the document JSON patches address).
    pub fn to_json_value(&self) -> Value {
        // Cannot fail: every map key is a string and every value serialisable.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Parses a definition from YAML or JSON text (JSON when the text is JSON). Errors read
/// `origin:line:column: path: message`.
pub fn parse_definition(text: &str, origin: &str) -> Result<Definition, FlowError> {
    let source = Source::detect(origin, text);
    let parsed = match source.format {
        SourceFormat::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize::<_, Definition>(&mut de).map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                let line_column = Some((inner.line(), inner.column()));
                let (place, mut message) =
                    tradeloom_core::locate_error(origin, inner.to_string(), line_column);
                if path != "." {
                    message = format!("{path}: {message}");
                }
                FlowError::Parse { place, message }
            })
        }
        SourceFormat::Yaml => yaml_serde::from_str::<Definition>(text).map_err(|e| {
            let line_column = e.location().map(|l| (l.line(), l.column()));
            let (place, message) = tradeloom_core::locate_error(origin, e.to_string(), line_column);
            FlowError::Parse { place, message }
        }),
    };
    let mut definition = parsed?;
    definition.source = Some(source);
    Ok(definition)
}

/// Reads a definition from a JSON value (an API request body). Errors name the field path
/// (`nodes[2].needs: invalid type: ...`).
pub fn from_json_value(value: &Value) -> Result<Definition, FlowError> {
    serde_path_to_error::deserialize::<_, Definition>(value).map_err(|e| FlowError::Invalid {
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EXAMPLE: &str = r#"name: review-and-trade
nodes:
  - {id: a, type: transform, config: {output: {x: 1}}}
  - {id: b, type: wait, needs: [a], config: {duration_ms: 200}}
  - {id: review, type: hitl, needs: [b], config: {prompt: "Trade?", expires_after: 1h, default: reject}}
"#;

    #[test]
    fn parses_yaml_and_keeps_the_source() {
        let d = parse_definition(EXAMPLE, "wf.yaml").unwrap();
        assert_eq!(d.name, "review-and-trade");
        assert_eq!(d.nodes.len(), 3);
        assert_eq!(d.nodes[1].node_type, NodeType::Wait);
        assert_eq!(d.nodes[1].needs, ["a"]);
        assert_eq!(d.limits, Limits::default());
        assert_eq!(d.source().map(|s| s.format), Some(SourceFormat::Yaml));
    }

    #[test]
    fn yaml_errors_have_origin_line_column_and_path() {
        let text = EXAMPLE.replace("needs: [a]", "needz: [a]");
        let e = parse_definition(&text, "wf.yaml").unwrap_err().to_string();
        assert!(
            e.starts_with("wf.yaml:4:") && e.contains("nodes[1]: unknown field `needz`"),
            "{e}"
        );
        let e = parse_definition("name: x\nnodes: 3\n", "wf.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("wf.yaml:2:8: nodes: invalid type"), "{e}");
    }

    #[test]
    fn json_text_is_json_with_positions_and_paths() {
        let text = "{\"name\": \"x\",\n \"nodes\": [\n  {\"id\": \"a\", \"type\": \"wait\", \"needs\": \"b\"}\n ]}";
        let e = parse_definition(text, "wf.json").unwrap_err().to_string();
        assert!(
            e.starts_with("wf.json:3:") && e.contains("nodes[0].needs: invalid type: string"),
            "{e}"
        );
        let ok = parse_definition(&text.replace("\"b\"", "[]"), "wf.json").unwrap();
        assert_eq!(ok.source().map(|s| s.format), Some(SourceFormat::Json));
    }

    #[test]
    fn json_values_get_field_paths() {
        let v =
            json!({"name": "x", "nodes": [{"id": "a", "type": "wait"}, {"id": "b", "type": 3}]});
        let e = from_json_value(&v).unwrap_err().to_string();
        assert!(
            e.starts_with("nodes[1].type: invalid type: integer `3`"),
            "{e}"
        );
        let v = json!({"name": "x", "nodes": [], "extra": 1});
        let e = from_json_value(&v).unwrap_err().to_string();
        assert!(e.contains("unknown field `extra`"), "{e}");
    }

    #[test]
    fn round_trips_through_json_keeping_absent_fields_absent() {
        let d = parse_definition(EXAMPLE, "wf.yaml").unwrap();
        let v = d.to_json_value();
        assert_eq!(v["nodes"][0].get("needs"), None);
        assert_eq!(v.get("limits"), None);
        assert_eq!(from_json_value(&v).unwrap(), d);
    }

    #[test]
    fn unknown_types_are_kept_and_null_defaults_are_defaults() {
        let text =
            "name: x\ninputs: {a: {default: null}, b: {}}\nnodes: [{id: a, type: teleport}]\n";
        let d = parse_definition(text, "wf.yaml").unwrap();
        assert_eq!(d.nodes[0].node_type, NodeType::Unknown("teleport".into()));
        assert_eq!(d.inputs["a"].default, Some(Value::Null));
        assert_eq!(d.inputs["b"].default, None);
        assert_eq!(d.to_json_value()["nodes"][0]["type"], "teleport");
    }
}
