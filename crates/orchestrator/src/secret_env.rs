//! Which environment variables a workflow definition names as secrets (agent and simulation
//! models' `api_key_env`, http nodes' secret headers), checked against the server's
//! allow-list ([`SecretEnv`]) when a definition is saved or patched. The same allow-list is
//! enforced again when a node runs (a definition stored before the operator narrowed it names
//! variables it no longer allows): nothing reads a variable except through it.

use serde_json::Value;
use tradeloom_flow::definition::{Definition, NodeType};
use tradeloom_flow::node_config::is_env_name;
use tradeloom_flow::{CompileError, CompileErrorKind, FieldPath};
use tradeloom_net::SecretEnv;

/// One problem per variable the definition names that `secrets` does not allow, at the field
/// that names it (`nodes[0].config.model.api_key_env`). Messages name the variable, never a
/// value. Fields that are not variable names, or are templates, are left to the compiler and
/// to the check when the node runs.
pub fn definition_problems(definition: &Definition, secrets: &SecretEnv) -> Vec<CompileError> {
    let mut problems = Vec::new();
    for (i, node) in definition.nodes.iter().enumerate() {
        let config = FieldPath::root().key("nodes").index(i).key("config");
        let mut named: Vec<(FieldPath, &str)> = Vec::new();
        match node.node_type {
            NodeType::Agent => {
                if let Some(var) = node
                    .config
                    .pointer("/model/api_key_env")
                    .and_then(Value::as_str)
                {
                    named.push((config.key("model").key("api_key_env"), var));
                }
            }
            NodeType::Http => {
                if let Some(headers) = node.config.get("headers").and_then(Value::as_object) {
                    for (name, value) in headers {
                        if let Some(var) = value.get("env").and_then(Value::as_str) {
                            named.push((config.key("headers").key(name).key("env"), var));
                        }
                    }
                }
            }
            NodeType::Simulate => {
                let models = node
                    .config
                    .pointer("/config/models")
                    .and_then(Value::as_array);
                for (k, model) in models.into_iter().flatten().enumerate() {
                    if let Some(var) = model.get("api_key_env").and_then(Value::as_str) {
                        let at = config
                            .key("config")
                            .key("models")
                            .index(k)
                            .key("api_key_env");
                        named.push((at, var));
                    }
                }
            }
            _ => {}
        }
        for (path, var) in named {
            if !is_env_name(var) {
                continue;
            }
            if let Err(e) = secrets.check(var) {
                problems.push(CompileError {
                    kind: CompileErrorKind::Config,
                    path,
                    location: None,
                    message: format!("node `{}`: {e}", node.id),
                });
            }
        }
    }
    problems
}
