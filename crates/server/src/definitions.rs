//! What `/agents` and `/skills` share: named definitions with immutable versions, written by
//! the authenticated API key. The creator owns a definition: only it or an admin may write a
//! new version or delete it. A delete is soft: the versions stay, their numbers are never
//! reused, and jobs and runs that resolved one have already recorded what they resolved.

use axum::http::{Method, StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tradeloom_store::{
    Author, Definition, DefinitionKind, DefinitionVersion, Role, Store, StoreError,
};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::error::ApiError;

/// Answer of a create or update.
#[derive(Debug, Serialize, ToSchema)]
pub struct SavedDefinition {
    pub name: String,
    pub version: u32,
    /// `false` when an update was the same as the latest version (no new version).
    pub changed: bool,
}

/// A definition in a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct DefinitionInfo {
    pub name: String,
    pub latest_version: u32,
    /// The name of the API key that created it (`anonymous` without auth).
    pub owner: String,
    #[schema(value_type = String)]
    pub created_at: DateTime<Utc>,
    #[schema(value_type = String)]
    pub updated_at: DateTime<Utc>,
}

/// One version in a detail's version list.
#[derive(Debug, Serialize, ToSchema)]
pub struct DefinitionVersionInfo {
    pub version: u32,
    /// The name of the API key that wrote it.
    pub created_by: String,
    #[schema(value_type = String)]
    pub created_at: DateTime<Utc>,
}

/// One version of a definition, with every version's number.
#[derive(Debug, Serialize, ToSchema)]
pub struct DefinitionDetail {
    #[serde(flatten)]
    pub info: DefinitionInfo,
    /// The version shown.
    pub version: u32,
    /// The definition of that version (normalised JSON).
    #[schema(value_type = Object)]
    pub definition: Value,
    pub created_by: String,
    pub versions: Vec<DefinitionVersionInfo>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DefinitionList {
    /// Agents or skills by name (deleted ones left out).
    pub items: Vec<DefinitionInfo>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// Definitions to skip (default 0).
    pub offset: Option<u64>,
}

fn info(d: Definition) -> DefinitionInfo {
    DefinitionInfo {
        name: d.name,
        latest_version: d.latest_version,
        owner: d.owner_name,
        created_at: d.created_at,
        updated_at: d.updated_at,
    }
}

fn author(principal: &Principal) -> Author {
    Author {
        key_id: principal.key_id.clone(),
        name: principal.name.clone(),
    }
}

fn codes(kind: DefinitionKind) -> (&'static str, &'static str, &'static str) {
    match kind {
        DefinitionKind::Agent => ("invalid_agent", "agent_not_found", "agent_exists"),
        DefinitionKind::Skill => ("invalid_skill", "skill_not_found", "skill_exists"),
    }
}

/// 422 with every problem: `details.errors` = `[{path, message}]`.
pub(crate) fn invalid(kind: DefinitionKind, problems: Vec<(String, String)>) -> ApiError {
    let message = format!(
        "the {kind} is not valid: {}",
        problems
            .iter()
            .map(|(path, message)| if path.is_empty() {
                message.clone()
            } else {
                format!("{path}: {message}")
            })
            .collect::<Vec<_>>()
            .join("; ")
    );
    let errors: Vec<Value> = problems
        .into_iter()
        .map(|(path, message)| json!({"path": path, "message": message}))
        .collect();
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, codes(kind).0, message)
        .with_details(json!({"errors": errors}))
}

pub(crate) fn for_definition(e: StoreError, kind: DefinitionKind, name: &str) -> ApiError {
    let (_, not_found, exists) = codes(kind);
    match e {
        StoreError::NotFound { what } => {
            ApiError::not_found(not_found, format!("no {what}")).with_details(json!({"name": name}))
        }
        StoreError::Conflict(m) => {
            ApiError::new(StatusCode::CONFLICT, exists, m).with_details(json!({"name": name}))
        }
        StoreError::Invalid(m) => invalid(kind, vec![("name".into(), m)]),
        other => other.into(),
    }
}

/// The body with `name` set to the path's when it has none; a different name is a 422 (a
/// definition is not renamed: create one under the new name).
pub(crate) fn body_named(
    kind: DefinitionKind,
    mut body: Value,
    name: &str,
) -> Result<Value, ApiError> {
    let Some(map) = body.as_object_mut() else {
        return Err(invalid(
            kind,
            vec![(String::new(), format!("the {kind} must be a JSON object"))],
        ));
    };
    match map.get("name") {
        None => {
            map.insert("name".into(), Value::String(name.to_string()));
        }
        Some(Value::String(n)) if n == name => {}
        Some(other) => {
            return Err(invalid(
                kind,
                vec![(
                    "name".into(),
                    format!(
                        "{other} differs from `{name}` of the path; a {kind} is not renamed \
                         (create one under the new name)"
                    ),
                )],
            ));
        }
    }
    Ok(body)
}

/// Refuses a write to `name` by a key that neither owns it nor is an admin (403 `not_owner`).
async fn require_owner(
    store: &dyn Store,
    kind: DefinitionKind,
    name: &str,
    principal: &Principal,
    method: &Method,
) -> Result<(), ApiError> {
    let definition = store
        .definition(kind, name)
        .await
        .map_err(|e| for_definition(e, kind, name))?;
    let owner = principal.key_id.is_some() && principal.key_id == definition.owner_key_id;
    if owner || principal.role.allows(Role::Admin) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "not_owner",
        format!(
            "`{method} /{kind}s/{name}` is for the key that created the {kind} (`{}`) or an \
             admin; API key `{}` is neither",
            definition.owner_name, principal.name
        ),
    )
    .with_details(json!({"owner": definition.owner_name, "key": principal.name})))
}

pub(crate) async fn create(
    store: &dyn Store,
    kind: DefinitionKind,
    principal: &Principal,
    name: &str,
    body: &str,
) -> Result<SavedDefinition, ApiError> {
    let saved = store
        .create_definition(kind, name, body, &author(principal))
        .await
        .map_err(|e| for_definition(e, kind, name))?;
    Ok(SavedDefinition {
        name: saved.name,
        version: saved.version,
        changed: true,
    })
}

pub(crate) async fn update(
    store: &dyn Store,
    kind: DefinitionKind,
    principal: &Principal,
    name: &str,
    body: &str,
) -> Result<SavedDefinition, ApiError> {
    require_owner(store, kind, name, principal, &Method::PUT).await?;
    let (saved, changed) = store
        .update_definition(kind, name, body, &author(principal))
        .await
        .map_err(|e| for_definition(e, kind, name))?;
    Ok(SavedDefinition {
        name: saved.name,
        version: saved.version,
        changed,
    })
}

pub(crate) async fn delete(
    store: &dyn Store,
    kind: DefinitionKind,
    principal: &Principal,
    name: &str,
) -> Result<(), ApiError> {
    require_owner(store, kind, name, principal, &Method::DELETE).await?;
    store
        .delete_definition(kind, name)
        .await
        .map_err(|e| for_definition(e, kind, name))
}

pub(crate) async fn list(
    store: &dyn Store,
    kind: DefinitionKind,
    q: &ListQuery,
) -> Result<DefinitionList, ApiError> {
    let limit = ApiError::page_limit(q.limit, 100, 1000)?;
    let items = store
        .list_definitions(kind, limit, q.offset.unwrap_or(0))
        .await?;
    Ok(DefinitionList {
        items: items.into_iter().map(info).collect(),
    })
}

pub(crate) async fn detail(
    store: &dyn Store,
    kind: DefinitionKind,
    name: &str,
    version: Option<u32>,
) -> Result<DefinitionDetail, ApiError> {
    let definition = store
        .definition(kind, name)
        .await
        .map_err(|e| for_definition(e, kind, name))?;
    let chosen: DefinitionVersion = store
        .definition_version(kind, name, version)
        .await
        .map_err(|e| for_definition(e, kind, name))?;
    let versions = store
        .definition_versions(kind, name)
        .await
        .map_err(|e| for_definition(e, kind, name))?;
    Ok(DefinitionDetail {
        info: info(definition),
        version: chosen.version,
        definition: serde_json::from_str(&chosen.body).unwrap_or(Value::Null),
        created_by: chosen.created_by,
        versions: versions
            .into_iter()
            .map(|v| DefinitionVersionInfo {
                version: v.version,
                created_by: v.created_by,
                created_at: v.created_at,
            })
            .collect(),
    })
}
