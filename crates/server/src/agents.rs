//! `/agents`: named, versioned agent definitions — an OpenAI-compatible model block, a system
//! prompt, tools (workflow agent tools and `skill:NAME`) and memory settings — that simulation
//! models and workflow `agent` nodes name (`agent: analyst@3`). See [`crate::definitions`] for
//! ownership and deletes.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::Value;
use tradeloom_flow::AgentDefinition;
use tradeloom_flow::node_config::skill_tool;
use tradeloom_store::{DefinitionKind, Store, StoreError};

use crate::AppState;
use crate::auth::Principal;
use crate::definitions::{
    self, DefinitionDetail, DefinitionList, ListQuery, SavedDefinition, body_named, invalid,
};
use crate::error::{ApiError, ErrorBody};

const KIND: DefinitionKind = DefinitionKind::Agent;

/// Parses and checks an agent definition: its fields, its key variable against the server's
/// allow-list (`serve --llm-key-env`), and that every `skill:` tool names a registered skill
/// (and version). Returns its normalised JSON text.
async fn checked(state: &AppState, body: &Value) -> Result<(String, String), ApiError> {
    let definition = AgentDefinition::from_value(body).map_err(|p| invalid(KIND, vec![p]))?;
    let mut problems = definition.problems();
    if let Some(var) = &definition.model.api_key_env
        && let Err(e) = state.simulator.options().outbound.secrets.check(var)
    {
        problems.push(("model.api_key_env".into(), e.to_string()));
    }
    // `memory` as a simulation model's memory settings (lessons, max_tokens, reflect).
    if let Some(memory) = definition.memory.as_ref().filter(|m| m.is_object()) {
        match serde_json::from_value::<tradeloom_agents::memory::MemoryConfig>(memory.clone()) {
            Ok(settings) => {
                if let Err((field, message)) = settings.check() {
                    problems.push((format!("memory.{field}"), message));
                }
            }
            Err(e) => problems.push(("memory".into(), e.to_string())),
        }
    }
    let store: &dyn Store = &**state.simulator.store();
    for (k, tool) in definition.tools.iter().enumerate() {
        let Some(Ok(skill)) = skill_tool(tool) else {
            continue;
        };
        match store
            .definition_version(DefinitionKind::Skill, &skill.name, skill.version)
            .await
        {
            Ok(_) => {}
            Err(StoreError::NotFound { what }) => problems.push((
                format!("tools[{k}]"),
                format!("`{tool}`: no {what}; register it with POST /skills"),
            )),
            Err(other) => return Err(other.into()),
        }
    }
    if !problems.is_empty() {
        return Err(invalid(KIND, problems));
    }
    let text = serde_json::to_string(&definition).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "serialize_failed",
            e.to_string(),
        )
    })?;
    Ok((definition.name, text))
}

/// Registers a new agent (version 1), owned by the calling key.
#[utoipa::path(
    post, path = "/agents", tag = "agents", operation_id = "create_agent",
    request_body(content = Object, description = "The agent: `name`, `model` (base_url, model, api_key_env, temperature, max_tokens, timeout_ms, max_retries), `system_prompt`, `tools`, `memory` (memory and reflection settings of a simulation model: `lessons`, `max_tokens`, `reflect`), `description`"),
    responses(
        (status = 201, description = "Stored as version 1", body = SavedDefinition),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No or bad API key", body = ErrorBody),
        (status = 403, description = "The key's role is below operator", body = ErrorBody),
        (status = 409, description = "An agent has this name (`agent_exists`)", body = ErrorBody),
        (status = 422, description = "The definition is invalid (`invalid_agent`); `details.errors` lists every problem with its path", body = ErrorBody),
    )
)]
pub async fn create(
    principal: Principal,
    State(state): State<AppState>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<SavedDefinition>), ApiError> {
    let Json(body) = body?;
    let (name, text) = checked(&state, &body).await?;
    let saved =
        definitions::create(&**state.simulator.store(), KIND, &principal, &name, &text).await?;
    Ok((StatusCode::CREATED, Json(saved)))
}

/// Agents by name, each with its latest version number.
#[utoipa::path(
    get, path = "/agents", tag = "agents", operation_id = "list_agents", params(ListQuery),
    responses(
        (status = 200, description = "One page of agents", body = DefinitionList),
        (status = 401, description = "No or bad API key", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<DefinitionList>, ApiError> {
    let Query(q) = query?;
    Ok(Json(
        definitions::list(&**state.simulator.store(), KIND, &q).await?,
    ))
}

/// The latest version of an agent, with every version's number.
#[utoipa::path(
    get, path = "/agents/{name}", tag = "agents", operation_id = "get_agent",
    params(("name" = String, Path, description = "The agent's name")),
    responses(
        (status = 200, description = "The latest version with its definition", body = DefinitionDetail),
        (status = 404, description = "No such agent, or it was deleted (`agent_not_found`)", body = ErrorBody),
    )
)]
pub async fn get_one(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<DefinitionDetail>, ApiError> {
    let Path(name) = name?;
    Ok(Json(
        definitions::detail(&**state.simulator.store(), KIND, &name, None).await?,
    ))
}

/// One version of an agent (versions never change).
#[utoipa::path(
    get, path = "/agents/{name}/versions/{version}", tag = "agents", operation_id = "get_agent_version",
    params(
        ("name" = String, Path, description = "The agent's name"),
        ("version" = u32, Path, description = "A version number, from 1"),
    ),
    responses(
        (status = 200, description = "That version with its definition", body = DefinitionDetail),
        (status = 404, description = "No such agent or version (`agent_not_found`)", body = ErrorBody),
    )
)]
pub async fn get_version(
    State(state): State<AppState>,
    path: Result<Path<(String, u32)>, PathRejection>,
) -> Result<Json<DefinitionDetail>, ApiError> {
    let Path((name, version)) = path?;
    Ok(Json(
        definitions::detail(&**state.simulator.store(), KIND, &name, Some(version)).await?,
    ))
}

/// Stores the next version of an agent (unchanged if the definition is the same). Only the
/// key that created it or an admin may.
#[utoipa::path(
    put, path = "/agents/{name}", tag = "agents", operation_id = "update_agent",
    params(("name" = String, Path, description = "The agent's name")),
    request_body(content = Object, description = "The new definition (`name` may be left out; if given it must be the path's)"),
    responses(
        (status = 200, description = "Stored as the next version, or unchanged (`changed: false`)", body = SavedDefinition),
        (status = 403, description = "Not the creating key nor an admin (`not_owner`), or a viewer key", body = ErrorBody),
        (status = 404, description = "No such agent (`agent_not_found`)", body = ErrorBody),
        (status = 422, description = "The definition is invalid (`invalid_agent`)", body = ErrorBody),
    )
)]
pub async fn update(
    principal: Principal,
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<SavedDefinition>, ApiError> {
    let Path(name) = name?;
    let Json(body) = body?;
    let body = body_named(KIND, body, &name)?;
    let (_, text) = checked(&state, &body).await?;
    Ok(Json(
        definitions::update(&**state.simulator.store(), KIND, &principal, &name, &text).await?,
    ))
}

/// Deletes an agent (softly: its versions stay, their numbers are never reused, and jobs and
/// runs that resolved one keep what they recorded). Only the key that created it or an admin
/// may.
#[utoipa::path(
    delete, path = "/agents/{name}", tag = "agents", operation_id = "delete_agent",
    params(("name" = String, Path, description = "The agent's name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Not the creating key nor an admin (`not_owner`)", body = ErrorBody),
        (status = 404, description = "No such agent (`agent_not_found`)", body = ErrorBody),
    )
)]
pub async fn delete(
    principal: Principal,
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(name) = name?;
    definitions::delete(&**state.simulator.store(), KIND, &principal, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
