//! Registered agents and skills named by a workflow's `agent` nodes, resolved when a run
//! starts: `agent: analyst` (or `analyst@3`) becomes the agent's `model`, `system_prompt` and
//! tools (before the node's own) with `resolved_agent: analyst@3`, and every `skill:NAME` tool
//! is pinned to `skill:NAME@VERSION`. The run executes that resolved definition, so a later
//! version of the agent or skill never changes a run that has started, and the run's
//! definition records what it used.

use serde_json::{Map, Value};
use tradeloom_core::DefinitionRef;
use tradeloom_flow::AgentDefinition;
use tradeloom_flow::node_config::{SKILL_TOOL_PREFIX, skill_tool};
use tradeloom_store::{DefinitionKind, Store, StoreError};

use crate::error::OrchestratorError;

/// Whether `definition` (a workflow definition's JSON) has no `agent` node: then
/// [`resolve_definition_refs`] has nothing to resolve in it, whatever the store holds, so a
/// run of it executes the definition as it is.
pub fn names_no_agents(definition: &Value) -> bool {
    definition
        .get("nodes")
        .and_then(Value::as_array)
        .is_none_or(|nodes| {
            !nodes
                .iter()
                .any(|n| n.get("type").and_then(Value::as_str) == Some("agent"))
        })
}

/// `definition` (a workflow definition's JSON) with every agent reference and unpinned skill
/// tool resolved from `store`, or `None` when it has none. Every reference that does not
/// resolve is an [`OrchestratorError::Unresolved`] naming its field (`nodes[2].config.agent`).
pub async fn resolve_definition_refs(
    store: &dyn Store,
    definition: &Value,
) -> Result<Option<Value>, OrchestratorError> {
    let mut out = definition.clone();
    let mut changed = false;
    let mut errors = Vec::new();
    let Some(nodes) = out.get_mut("nodes").and_then(Value::as_array_mut) else {
        return Ok(None);
    };
    for (i, node) in nodes.iter_mut().enumerate() {
        if node.get("type").and_then(Value::as_str) != Some("agent") {
            continue;
        }
        let Some(config) = node.get_mut("config").and_then(Value::as_object_mut) else {
            continue;
        };
        let at = format!("nodes[{i}].config");
        if let Some(agent) = config
            .get("agent")
            .and_then(Value::as_str)
            .map(str::to_owned)
        {
            match resolve_agent(store, &agent).await? {
                Ok((pinned, definition)) => {
                    apply_agent(config, &pinned, definition);
                    changed = true;
                }
                Err(message) => errors.push(format!("{at}.agent: {message}")),
            }
        }
        let Some(tools) = config.get_mut("tools").and_then(Value::as_array_mut) else {
            continue;
        };
        for (k, tool) in tools.iter_mut().enumerate() {
            let Some(name) = tool.as_str() else { continue };
            let Some(Ok(skill)) = skill_tool(name) else {
                continue;
            };
            match store
                .definition_version(DefinitionKind::Skill, &skill.name, skill.version)
                .await
            {
                Ok(v) if skill.version.is_none() => {
                    *tool =
                        Value::String(format!("{SKILL_TOOL_PREFIX}{}", skill.pinned(v.version)));
                    changed = true;
                }
                Ok(_) => {}
                Err(StoreError::NotFound { what }) => {
                    errors.push(format!("{at}.tools[{k}]: `{name}`: no {what}"));
                }
                Err(other) => return Err(other.into()),
            }
        }
    }
    if !errors.is_empty() {
        return Err(OrchestratorError::Unresolved {
            message: format!(
                "the workflow names agents or skills that are not registered: {}",
                errors.join("; ")
            ),
            errors,
        });
    }
    Ok(changed.then_some(out))
}

/// The pinned reference and definition of agent `text`, or why it does not resolve.
async fn resolve_agent(
    store: &dyn Store,
    text: &str,
) -> Result<Result<(DefinitionRef, AgentDefinition), String>, OrchestratorError> {
    let wanted = match DefinitionRef::parse(text) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    let version = match store
        .definition_version(DefinitionKind::Agent, &wanted.name, wanted.version)
        .await
    {
        Ok(v) => v,
        Err(StoreError::NotFound { what }) => {
            return Ok(Err(format!(
                "`{text}`: no {what}; register it with POST /agents"
            )));
        }
        Err(other) => return Err(other.into()),
    };
    let body: Value = serde_json::from_str(&version.body).unwrap_or(Value::Null);
    match AgentDefinition::from_value(&body) {
        Ok(d) => Ok(Ok((wanted.pinned(version.version), d))),
        Err((path, message)) => Ok(Err(format!(
            "agent `{text}` is stored unreadably ({path}: {message})"
        ))),
    }
}

/// Writes the agent's model, system prompt and tools into a node's `config`.
fn apply_agent(config: &mut Map<String, Value>, pinned: &DefinitionRef, agent: AgentDefinition) {
    config.remove("agent");
    config.insert("resolved_agent".into(), Value::String(pinned.to_string()));
    config.insert(
        "model".into(),
        serde_json::to_value(&agent.model).unwrap_or(Value::Null),
    );
    let own_prompt = config
        .get("system_prompt")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let prompt = [agent.system_prompt.as_str(), own_prompt.as_str()]
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n\n");
    if prompt.is_empty() {
        config.remove("system_prompt");
    } else {
        config.insert("system_prompt".into(), Value::String(prompt));
    }
    let own_tools: Vec<String> = config
        .get("tools")
        .and_then(Value::as_array)
        .map(|t| {
            t.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let mut tools = agent.tools;
    for tool in own_tools {
        if !tools.contains(&tool) {
            tools.push(tool);
        }
    }
    if !tools.is_empty() {
        config.insert(
            "tools".into(),
            Value::Array(tools.into_iter().map(Value::String).collect()),
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::names_no_agents;

    #[test]
    fn only_a_definition_with_an_agent_node_has_references_to_pin() {
        let transforms = json!({"name": "d", "nodes": [
            {"id": "a", "type": "transform", "config": {"output": {"x": 1}}},
            {"id": "b", "type": "http", "needs": ["a"], "config": {"url": "http://x"}},
        ]});
        assert!(names_no_agents(&transforms));
        assert!(names_no_agents(&json!({"name": "empty"})));
        let with_agent = json!({"name": "d", "nodes": [
            {"id": "a", "type": "transform", "config": {}},
            {"id": "b", "type": "agent", "config": {"agent": "analyst"}},
        ]});
        assert!(!names_no_agents(&with_agent));
    }
}
