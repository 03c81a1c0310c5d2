//! A registered agent (`POST /agents`): a named, versioned bundle of an OpenAI-compatible model
//! block (the fields and checks of a workflow agent's `model`), a system prompt and tools, that
//! simulation models and workflow `agent` nodes name instead of repeating it (`agent:
//! analyst@3`).
//!
//! ```json
//! {"name": "analyst", "description": "Reads the tape",
//!  "model": {"base_url": "http://127.0.0.1:8089/v1", "model": "qwen", "temperature": 0.2},
//!  "system_prompt": "You are a cautious analyst.", "tools": ["calc", "skill:momentum"],
//!  "memory": {"lessons": 5}}
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::node_config::{AGENT_TOOLS, ModelConfig, skill_tool};

/// The longest system prompt, in bytes.
pub const MAX_SYSTEM_PROMPT: usize = 32 * 1024;
/// The longest description, in bytes.
pub const MAX_DESCRIPTION: usize = 2 * 1024;

/// An agent definition as written; unknown fields are errors.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentDefinition {
    /// `a-z`, `0-9`, `_`, `-`; 1 to 64 characters.
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The endpoint and how to call it.
    pub model: ModelConfig,
    /// Instructions given to the model before the task.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub system_prompt: String,
    /// Workflow agent tools ([`AGENT_TOOLS`]) and registered skills (`skill:NAME`,
    /// `skill:NAME@VERSION`), each once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// Memory settings, passed through untouched (a JSON object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Value>,
}

impl AgentDefinition {
    /// Reads a definition from JSON; the error names the field (`model.temperature: invalid
    /// type: …`).
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
        for (field, message) in self.model.problems() {
            out.push((format!("model.{field}"), message));
        }
        if self.system_prompt.len() > MAX_SYSTEM_PROMPT {
            out.push((
                "system_prompt".to_string(),
                format!(
                    "{} bytes is more than the maximum of {MAX_SYSTEM_PROMPT}",
                    self.system_prompt.len()
                ),
            ));
        }
        if self.description.len() > MAX_DESCRIPTION {
            out.push((
                "description".to_string(),
                format!(
                    "{} bytes is more than the maximum of {MAX_DESCRIPTION}",
                    self.description.len()
                ),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (k, tool) in self.tools.iter().enumerate() {
            let field = format!("tools[{k}]");
            match skill_tool(tool) {
                Some(Err(e)) => out.push((field, e)),
                Some(Ok(_)) => {}
                None if !AGENT_TOOLS.contains(&tool.as_str()) => out.push((
                    field,
                    format!(
                        "unknown tool `{tool}`; agents have: {}, and registered skills as \
                         `skill:NAME`",
                        AGENT_TOOLS.join(", ")
                    ),
                )),
                None => {}
            }
            if !seen.insert(tool) {
                out.push((format!("tools[{k}]"), format!("`{tool}` is listed twice")));
            }
        }
        if let Some(memory) = &self.memory
            && !memory.is_object()
        {
            out.push(("memory".to_string(), "must be a JSON object".to_string()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_and_checks_a_definition() {
        let good = json!({"name": "analyst", "model": {"base_url": "http://127.0.0.1:1/v1", "model": "m"},
                          "tools": ["calc", "skill:momentum@2"], "memory": {"lessons": true, "max_tokens": 9}});
        let d = AgentDefinition::from_value(&good).unwrap();
        assert!(d.problems().is_empty(), "{:?}", d.problems());
        assert_eq!(d.memory, Some(json!({"lessons": true, "max_tokens": 9})));
        let (path, message) = AgentDefinition::from_value(
            &json!({"name": "a", "model": {"base_url": "http://x", "model": "m", "temprature": 1}}),
        )
        .unwrap_err();
        assert_eq!(path, "model.temprature");
        assert!(message.contains("temprature"), "{message}");
        let bad = json!({"name": "Bad", "model": {"base_url": "ftp://x", "model": "m", "temperature": 3.0},
                         "tools": ["buy", "skill:", "calc", "calc"], "memory": [1]});
        let fields: Vec<String> = AgentDefinition::from_value(&bad)
            .unwrap()
            .problems()
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(
            fields,
            [
                "name",
                "model.base_url",
                "model.temperature",
                "tools[0]",
                "tools[1]",
                "tools[3]",
                "memory"
            ]
        );
    }
}
