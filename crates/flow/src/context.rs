//! [`Context`]: the JSON document templates and predicates read at run time.
//!
//! ```json
//! {"run": {"id": "…", "workflow": "review-and-trade", "hash": "…", "started_at": "2026-11-23T06:00:00Z"},
//!  "inputs": {"symbol": "GOOG"},
//!  "a": {"x": 1},
//!  "review": {"decision": "approve"}}
//! ```
//!
//! Each finished node's output sits under its id; a skipped node has no entry (so a predicate
//! reading it sees `null`, and a template reading it fails).

use serde_json::{Map, Value};

/// The fields of `run` a template or predicate may read.
pub const RUN_FIELDS: [&str; 4] = ["id", "workflow", "hash", "started_at"];

/// Facts about the run, under `run` in the context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunInfo {
    /// The run's id.
    pub id: String,
    /// The workflow's name.
    pub workflow: String,
    /// The hash of the IR the run executes ([`crate::Ir::hash`]).
    pub hash: String,
    /// RFC 3339 UTC start time.
    pub started_at: String,
}

/// The run context: `run`, `inputs` and one entry per finished node.
#[derive(Clone, Debug, PartialEq)]
pub struct Context {
    value: Value,
}

impl Context {
    /// A context before any node has run; `inputs` should come from [`crate::Ir::resolve_inputs`].
    pub fn new(run: &RunInfo, inputs: Map<String, Value>) -> Self {
        let mut root = Map::new();
        let mut info = Map::new();
        info.insert("id".into(), Value::String(run.id.clone()));
        info.insert("workflow".into(), Value::String(run.workflow.clone()));
        info.insert("hash".into(), Value::String(run.hash.clone()));
        info.insert("started_at".into(), Value::String(run.started_at.clone()));
        root.insert("run".into(), Value::Object(info));
        root.insert("inputs".into(), Value::Object(inputs));
        Context {
            value: Value::Object(root),
        }
    }

    /// Records a finished node's output. Node ids cannot be `run` or `inputs` (the compiler
    /// refuses them), so this never overwrites those.
    pub fn set_output(&mut self, node_id: &str, output: Value) {
        if let Value::Object(root) = &mut self.value {
            root.insert(node_id.to_string(), output);
        }
    }

    /// The context as JSON, to render templates and evaluate predicates against.
    pub fn as_value(&self) -> &Value {
        &self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn holds_run_inputs_and_outputs() {
        let run = RunInfo {
            id: "r1".into(),
            workflow: "w".into(),
            hash: "h".into(),
            started_at: "2026-11-23T06:00:00Z".into(),
        };
        let mut inputs = Map::new();
        inputs.insert("symbol".into(), json!("GOOG"));
        let mut ctx = Context::new(&run, inputs);
        ctx.set_output("a", json!({"x": 1}));
        assert_eq!(
            ctx.as_value(),
            &json!({
                "run": {"id": "r1", "workflow": "w", "hash": "h", "started_at": "2026-11-23T06:00:00Z"},
                "inputs": {"symbol": "GOOG"},
                "a": {"x": 1}
            })
        );
    }
}
