//! A registered skill (`POST /skills`): a named, versioned Python function run in the sandbox,
//! with JSON Schemas for its input and its output. Agents call it as the tool `skill:NAME`,
//! whose parameters are the input schema; the output is checked against the output schema
//! before the model sees it.
//!
//! ```json
//! {"name": "momentum", "description": "Momentum of closes over a lookback",
//!  "source": "def main(input):\n    return {\"signal\": \"hold\"}\n", "function": "main",
//!  "input_schema": {"type": "object", "properties": {"closes": {"type": "array", "items": {"type": "number"}}},
//!                   "required": ["closes"], "additionalProperties": false},
//!  "output_schema": {"type": "object", "properties": {"signal": {"enum": ["buy", "sell", "hold", "none"]}},
//!                    "required": ["signal"]},
//!  "limits": {"call_timeout_ms": 2000}}
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tradeloom_core::script_limits::ScriptLimits;

use crate::schema::{schema_problems, validate};

/// The largest script, in bytes.
pub const MAX_SKILL_SOURCE: usize = 256 * 1024;

/// A skill definition as written; unknown fields are errors.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SkillDefinition {
    /// `a-z`, `0-9`, `_`, `-`; 1 to 64 characters.
    pub name: String,
    /// Shown to the model as the tool's description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The Python script, defining `function`.
    pub source: String,
    /// The function called with the input (default `main`).
    #[serde(default = "default_function")]
    pub function: String,
    /// JSON Schema of the input: an object schema (it becomes the tool's parameters).
    pub input_schema: Value,
    /// JSON Schema the function's return value must conform to.
    pub output_schema: Value,
    /// The sandbox's limits, as a workflow `script` node's; their defaults when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ScriptLimits>,
}

fn default_function() -> String {
    "main".to_string()
}

impl SkillDefinition {
    /// Reads a definition from JSON; the error names the field.
    pub fn from_value(value: &Value) -> Result<Self, (String, String)> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            (path, e.into_inner().to_string())
        })
    }

    /// Every problem as `(field, message)`; empty when the definition is valid.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !tradeloom_core::is_definition_name(&self.name) {
            out.push((
                "name".to_string(),
                format!(
                    "`{}` must be 1 to {} characters of a-z, 0-9, `_` and `-`",
                    self.name,
                    tradeloom_core::MAX_DEFINITION_NAME
                ),
            ));
        }
        if self.source.trim().is_empty() {
            out.push(("source".to_string(), "must not be empty".to_string()));
        } else if self.source.len() > MAX_SKILL_SOURCE {
            out.push((
                "source".to_string(),
                format!(
                    "{} bytes is more than the maximum of {MAX_SKILL_SOURCE}",
                    self.source.len()
                ),
            ));
        }
        let identifier = |s: &str| {
            s.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        if !identifier(&self.function) {
            out.push((
                "function".to_string(),
                format!("`{}` is not a Python function name", self.function),
            ));
        }
        for (field, schema) in [
            ("input_schema", &self.input_schema),
            ("output_schema", &self.output_schema),
        ] {
            for problem in schema_problems(schema, field) {
                out.push((field.to_string(), problem));
            }
        }
        if self.input_schema.get("type").and_then(Value::as_str) != Some("object") {
            out.push((
                "input_schema".to_string(),
                "must have `type: object` (the input is the tool call's arguments)".to_string(),
            ));
        }
        if let Some(limits) = &self.limits
            && let Err(e) = limits.effective()
        {
            out.push(("limits".to_string(), e));
        }
        out
    }

    /// Every way `output` breaks the output schema (empty when it conforms), the paths rooted
    /// at `output`.
    pub fn output_problems(&self, output: &Value) -> Vec<String> {
        validate(&self.output_schema, output)
            .into_iter()
            .map(|p| {
                p.replace("`arguments", "`output")
                    .replace("argument `", "field `")
            })
            .collect()
    }

    /// Every way `input` breaks the input schema (empty when it conforms).
    pub fn input_problems(&self, input: &Value) -> Vec<String> {
        validate(&self.input_schema, input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn momentum() -> Value {
        json!({"name": "momentum", "source": "def main(input):\n    return {}\n",
               "input_schema": {"type": "object", "properties": {"closes": {"type": "array", "items": {"type": "number"}}}, "required": ["closes"]},
               "output_schema": {"type": "object", "properties": {"signal": {"enum": ["buy", "sell", "hold"]}}, "required": ["signal"]}})
    }

    #[test]
    fn checks_names_schemas_and_limits() {
        let d = SkillDefinition::from_value(&momentum()).unwrap();
        assert_eq!(d.function, "main");
        assert!(d.problems().is_empty(), "{:?}", d.problems());
        let mut bad = momentum();
        bad["function"] = json!("1x");
        bad["input_schema"] = json!({"type": "array", "oneOf": []});
        bad["limits"] = json!({"memory_mb": 1});
        let fields: Vec<String> = SkillDefinition::from_value(&bad)
            .unwrap()
            .problems()
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(
            fields,
            ["function", "input_schema", "input_schema", "limits"]
        );
    }

    #[test]
    fn output_problems_name_the_output() {
        let d = SkillDefinition::from_value(&momentum()).unwrap();
        assert!(d.output_problems(&json!({"signal": "buy"})).is_empty());
        assert_eq!(
            d.output_problems(&json!({"signal": "moon"})),
            vec!["`output.signal` must be one of \"buy\", \"sell\", \"hold\", got \"moon\""]
        );
        assert_eq!(
            d.output_problems(&json!({})),
            vec!["missing required field `signal`"]
        );
    }
}
