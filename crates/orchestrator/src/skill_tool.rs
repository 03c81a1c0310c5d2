//! Registered skills as tools of workflow agents. A node's tool `skill:momentum@2` (pinned when
//! the run started, see [`crate::agent_refs`]) is offered to the model as `skill_momentum`,
//! whose parameters are the skill's input schema. A call checks the arguments against that
//! schema, runs the skill's function in a fresh sandbox under its limits (a `script` node's),
//! and checks the return value against the output schema; every failure goes back to the model
//! as the tool's error, never failing the node by itself.

use std::path::PathBuf;

use serde_json::{Value, json};
use tradeloom_agents::SkillDefinition;
use tradeloom_flow::node_config::skill_tool;
use tradeloom_llm::ToolSpec;
use tradeloom_store::{DefinitionKind, Store};

/// The longest tool description sent to the model, in characters.
const MAX_DESCRIPTION: usize = 1024;

/// A registered skill a node may call.
#[derive(Clone, Debug)]
pub struct SkillTool {
    /// The name the model calls: `skill_<name>`.
    pub tool_name: String,
    /// `name@version`, as messages name it.
    pub pinned: String,
    pub definition: SkillDefinition,
}

impl SkillTool {
    /// The skill a node's tool `tool` (`skill:NAME@VERSION`) names, read from `store`; `None`
    /// when `tool` is not a skill tool. `Err` names the tool: a bad reference or a skill gone
    /// missing (it was resolved when the run started).
    pub async fn load(store: &dyn Store, tool: &str) -> Option<Result<SkillTool, String>> {
        let reference = match skill_tool(tool)? {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        };
        let version = match store
            .definition_version(DefinitionKind::Skill, &reference.name, reference.version)
            .await
        {
            Ok(v) => v,
            Err(e) => return Some(Err(format!("tool `{tool}`: {e}"))),
        };
        let body: Value = serde_json::from_str(&version.body).unwrap_or(Value::Null);
        Some(
            SkillDefinition::from_value(&body)
                .map(|definition| SkillTool {
                    tool_name: format!("skill_{}", reference.name.replace('-', "_")),
                    pinned: reference.pinned(version.version).to_string(),
                    definition,
                })
                .map_err(|(path, message)| {
                    format!("tool `{tool}` is stored unreadably ({path}: {message})")
                }),
        )
    }

    /// The tool as offered to the model.
    pub fn spec(&self) -> ToolSpec {
        let mut description = if self.definition.description.trim().is_empty() {
            format!("Runs the registered skill `{}`.", self.pinned)
        } else {
            self.definition.description.clone()
        };
        if description.chars().count() > MAX_DESCRIPTION {
            description = description.chars().take(MAX_DESCRIPTION).collect();
        }
        ToolSpec {
            name: self.tool_name.clone(),
            description,
            parameters: self.definition.input_schema.clone(),
        }
    }

    /// Runs one call: the arguments (for the log) and the result the model sees — `{"output":
    /// ...}` or `{"error": "..."}`. `protected` are folders the skill must never read (the
    /// data dir).
    pub async fn call(&self, arguments: &str, protected: Vec<PathBuf>) -> (Value, Value) {
        let input: Value = match serde_json::from_str(arguments) {
            Ok(v) => v,
            Err(e) => {
                let error = format!("arguments of `{}` are not JSON: {e}", self.tool_name);
                return (
                    Value::String(arguments.to_string()),
                    json!({ "error": error }),
                );
            }
        };
        let problems = self.definition.input_problems(&input);
        if !problems.is_empty() {
            return (input, json!({"error": problems.join("; ")}));
        }
        let result = self.run(input.clone(), protected).await;
        let answer = match result {
            Ok(output) => {
                let problems = self.definition.output_problems(&output);
                if problems.is_empty() {
                    json!({ "output": output })
                } else {
                    json!({"error": format!(
                        "skill `{}` returned output that breaks its output_schema: {}",
                        self.pinned,
                        problems.join("; ")
                    )})
                }
            }
            Err(e) => json!({"error": format!("skill `{}`: {e}", self.pinned)}),
        };
        (input, answer)
    }

    /// The skill's function on `input` in a fresh sandbox: its source written to a scratch
    /// folder of its own (the only thing the child may read besides the interpreter).
    async fn run(&self, input: Value, protected: Vec<PathBuf>) -> Result<Value, String> {
        let limits = self
            .definition
            .limits
            .unwrap_or_default()
            .effective()
            .map_err(|e| format!("limits: {e}"))?;
        let source = self.definition.source.clone();
        let function = self.definition.function.clone();
        let display = format!("skill:{}", self.pinned);
        tokio::task::spawn_blocking(move || {
            let dir = tempfile::Builder::new()
                .prefix("tradeloom-skill-")
                .tempdir()
                .map_err(|e| format!("cannot make the skill's folder: {}", e.kind()))?;
            let script = dir.path().join("skill.py");
            std::fs::write(&script, source)
                .map_err(|e| format!("cannot write the skill's script: {}", e.kind()))?;
            tradeloom_sandbox::run_skill(
                &tradeloom_sandbox::SandboxPolicy::from_env(),
                &tradeloom_sandbox::ScriptSpec {
                    script: &script,
                    display: &display,
                    limits,
                    protected: &protected,
                },
                &function,
                &input,
            )
            .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| format!("skill task: {e}"))?
    }
}
