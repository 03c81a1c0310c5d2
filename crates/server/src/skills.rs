//! `/skills`: named, versioned skills — a Python function run in the sandbox with JSON
//! Schemas for its input and output — that agents call as the tool `skill:NAME` (see
//! `tradeloom_orchestrator::skill_tool`). See [`crate::definitions`] for ownership and deletes.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::Value;
use tradeloom_agents::SkillDefinition;
use tradeloom_store::DefinitionKind;

use crate::AppState;
use crate::auth::Principal;
use crate::definitions::{
    self, DefinitionDetail, DefinitionList, ListQuery, SavedDefinition, body_named, invalid,
};
use crate::error::{ApiError, ErrorBody};

const KIND: DefinitionKind = DefinitionKind::Skill;

/// Parses and checks a skill definition (its name, source, function, schemas and limits);
/// returns its normalised JSON text.
fn checked(body: &Value) -> Result<(String, String), ApiError> {
    let definition = SkillDefinition::from_value(body).map_err(|p| invalid(KIND, vec![p]))?;
    let problems = definition.problems();
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

/// Registers a new skill (version 1), owned by the calling key.
#[utoipa::path(
    post, path = "/skills", tag = "skills", operation_id = "create_skill",
    request_body(content = Object, description = "The skill: `name`, `description`, `source` (Python), `function` (default `main`), `input_schema` and `output_schema` (JSON Schema), `limits` (as a `script` node's)"),
    responses(
        (status = 201, description = "Stored as version 1", body = SavedDefinition),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No or bad API key", body = ErrorBody),
        (status = 403, description = "The key's role is below operator", body = ErrorBody),
        (status = 409, description = "A skill has this name (`skill_exists`)", body = ErrorBody),
        (status = 422, description = "The definition is invalid (`invalid_skill`); `details.errors` lists every problem with its path", body = ErrorBody),
    )
)]
pub async fn create(
    principal: Principal,
    State(state): State<AppState>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<SavedDefinition>), ApiError> {
    let Json(body) = body?;
    let (name, text) = checked(&body)?;
    let saved =
        definitions::create(&**state.simulator.store(), KIND, &principal, &name, &text).await?;
    Ok((StatusCode::CREATED, Json(saved)))
}

/// Skills by name, each with its latest version number.
#[utoipa::path(
    get, path = "/skills", tag = "skills", operation_id = "list_skills", params(ListQuery),
    responses(
        (status = 200, description = "One page of skills", body = DefinitionList),
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

/// The latest version of a skill, with every version's number.
#[utoipa::path(
    get, path = "/skills/{name}", tag = "skills", operation_id = "get_skill",
    params(("name" = String, Path, description = "The skill's name")),
    responses(
        (status = 200, description = "The latest version with its definition", body = DefinitionDetail),
        (status = 404, description = "No such skill, or it was deleted (`skill_not_found`)", body = ErrorBody),
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

/// One version of a skill (versions never change).
#[utoipa::path(
    get, path = "/skills/{name}/versions/{version}", tag = "skills", operation_id = "get_skill_version",
    params(
        ("name" = String, Path, description = "The skill's name"),
        ("version" = u32, Path, description = "A version number, from 1"),
    ),
    responses(
        (status = 200, description = "That version with its definition", body = DefinitionDetail),
        (status = 404, description = "No such skill or version (`skill_not_found`)", body = ErrorBody),
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

/// Stores the next version of a skill (unchanged if the definition is the same). Only the
/// key that created it or an admin may.
#[utoipa::path(
    put, path = "/skills/{name}", tag = "skills", operation_id = "update_skill",
    params(("name" = String, Path, description = "The skill's name")),
    request_body(content = Object, description = "The new definition (`name` may be left out; if given it must be the path's)"),
    responses(
        (status = 200, description = "Stored as the next version, or unchanged (`changed: false`)", body = SavedDefinition),
        (status = 403, description = "Not the creating key nor an admin (`not_owner`), or a viewer key", body = ErrorBody),
        (status = 404, description = "No such skill (`skill_not_found`)", body = ErrorBody),
        (status = 422, description = "The definition is invalid (`invalid_skill`)", body = ErrorBody),
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
    let (_, text) = checked(&body)?;
    Ok(Json(
        definitions::update(&**state.simulator.store(), KIND, &principal, &name, &text).await?,
    ))
}

/// Deletes a skill (softly: its versions stay, their numbers are never reused, and runs that
/// resolved one keep what they recorded). Only the key that created it or an admin
/// may.
#[utoipa::path(
    delete, path = "/skills/{name}", tag = "skills", operation_id = "delete_skill",
    params(("name" = String, Path, description = "The skill's name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Not the creating key nor an admin (`not_owner`)", body = ErrorBody),
        (status = 404, description = "No such skill (`skill_not_found`)", body = ErrorBody),
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
