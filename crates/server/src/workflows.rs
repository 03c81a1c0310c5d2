//! `/workflows`: create, read, version and delete workflow definitions. A definition is
//! compiled before it is stored; the definition and its IR are stored content-addressed.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tradeloom_flow::{Compiled, FlowError, FlowLimits, compile_with, from_json_value};
use tradeloom_net::SecretEnv;
use tradeloom_orchestrator::secret_env::definition_problems;
use tradeloom_store::{NewWorkflowVersion, StoreError, Workflow, WorkflowVersion};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ErrorBody};

/// Answer of a create or update.
#[derive(Debug, Serialize, ToSchema)]
pub struct SavedWorkflow {
    pub id: String,
    pub version: u32,
    /// sha256 of the compiled IR: the workflow's content address.
    pub ir_hash: String,
    /// `false` when an update had the same IR as the latest version (no new version).
    pub changed: bool,
    /// Unknown node types and nodes that will always be skipped.
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionInfo {
    pub version: u32,
    pub ir_hash: String,
    pub definition_hash: String,
    #[schema(value_type = String)]
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowInfo {
    pub id: String,
    pub name: String,
    pub latest_version: u32,
    #[schema(value_type = String)]
    pub created_at: DateTime<Utc>,
    #[schema(value_type = String)]
    pub updated_at: DateTime<Utc>,
}

/// `GET /workflows/{id}` and `GET /workflows/{id}/versions/{version}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowDetail {
    #[serde(flatten)]
    pub workflow: WorkflowInfo,
    pub version: u32,
    pub ir_hash: String,
    /// The definition of that version (normalised JSON).
    #[schema(value_type = Object)]
    pub definition: Value,
    pub versions: Vec<VersionInfo>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowList {
    pub workflows: Vec<WorkflowInfo>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size (default 100).
    pub limit: Option<u32>,
    /// Workflows to skip (default 0).
    pub offset: Option<u64>,
}

fn info(w: Workflow) -> WorkflowInfo {
    WorkflowInfo {
        id: w.id,
        name: w.name,
        latest_version: w.latest_version,
        created_at: w.created_at,
        updated_at: w.updated_at,
    }
}

fn version_info(v: WorkflowVersion) -> VersionInfo {
    VersionInfo {
        version: v.version,
        ir_hash: v.ir_hash,
        definition_hash: v.definition_hash,
        created_at: v.created_at,
    }
}

/// 422 with every problem: `{"error": "invalid_workflow", "message", "details", "errors": [...]}`.
fn invalid(errors: Vec<Value>) -> ApiError {
    let message = format!(
        "the workflow does not compile ({} problem(s))",
        errors.len()
    );
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_workflow",
        message,
    )
    .with_details(json!({"errors": errors}))
}

/// The limits definitions are held to: the workflow runtime's (`serve --max-workflow-nodes`
/// and the like), so what is stored here also compiles when a run starts.
fn flow_limits(state: &AppState) -> FlowLimits {
    state
        .runtime
        .as_ref()
        .map(|rt| *rt.coordinator().flow_limits())
        .unwrap_or_default()
}

/// Parses and compiles a definition sent as JSON. A definition over a size limit gets 422 with
/// one error of code `limit` naming the limit and the actual value; a variable it names as a
/// secret that the server's allow-list (`serve --llm-key-env`) lacks is a problem like a compile
/// error.
fn compile_body(
    body: &Value,
    limits: &FlowLimits,
    secrets: &SecretEnv,
    config_dir: Option<&tradeloom_agents::ConfigDir>,
) -> Result<(Compiled, NewWorkflowVersion), ApiError> {
    let definition = from_json_value(body).map_err(|e| match e {
        FlowError::Invalid { path, message } => invalid(vec![
            json!({"code": "schema", "path": path, "message": message}),
        ]),
        other => invalid(vec![
            json!({"code": "schema", "path": ".", "message": other.to_string()}),
        ]),
    })?;
    let problems = |errors: &[tradeloom_flow::CompileError], code: Option<&str>| {
        errors
            .iter()
            .map(|e| json!({"code": code.unwrap_or(e.kind.code()), "path": e.path.to_string(), "message": e.message}))
            .collect::<Vec<_>>()
    };
    let secret_errors = definition_problems(&definition, secrets);
    let compiled = match compile_with(&definition, limits) {
        Ok(compiled) if secret_errors.is_empty() => compiled,
        Ok(_) => return Err(invalid(problems(&secret_errors, Some("secret_env")))),
        Err(errors) => {
            let mut all = problems(&errors, None);
            all.extend(problems(&secret_errors, Some("secret_env")));
            return Err(invalid(all));
        }
    };
    // A `script` node's skill must be a file of the config folder, as when it runs.
    let missing = tradeloom_orchestrator::nodes::script_file_problems(&compiled.ir, config_dir);
    if !missing.is_empty() {
        return Err(invalid(
            missing
                .into_iter()
                .map(|(path, message)| json!({"code": "script_path", "path": path, "message": message}))
                .collect(),
        ));
    }
    let new = NewWorkflowVersion {
        name: definition.name.clone(),
        definition: definition.to_json_value().to_string(),
        ir: compiled.ir.canonical_json(),
    };
    Ok((compiled, new))
}

fn for_workflow(e: StoreError, id: &str) -> ApiError {
    match e {
        StoreError::NotFound { .. } => {
            ApiError::not_found("workflow_not_found", format!("no workflow with id `{id}`"))
                .with_details(json!({"workflow_id": id}))
        }
        StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "workflow_exists", m),
        other => other.into(),
    }
}

/// Compiles and stores a new workflow (version 1).
#[utoipa::path(
    post, path = "/workflows", tag = "workflows", operation_id = "create_workflow",
    request_body(content = Object, description = "The definition as JSON (same schema as YAML files)"),
    responses(
        (status = 201, description = "Stored as version 1", body = SavedWorkflow),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 409, description = "A workflow has this name", body = ErrorBody),
        (status = 422, description = "The definition does not compile; `details.errors` lists every problem", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<SavedWorkflow>), ApiError> {
    let Json(body) = body?;
    let (compiled, new) = compile_body(
        &body,
        &flow_limits(&state),
        &state.simulator.options().outbound.secrets,
        state.config_dir.as_deref(),
    )?;
    let saved = state
        .simulator
        .store()
        .create_workflow(&new)
        .await
        .map_err(|e| for_workflow(e, ""))?;
    Ok((
        StatusCode::CREATED,
        Json(SavedWorkflow {
            id: saved.workflow_id,
            version: saved.version,
            ir_hash: saved.ir_hash,
            changed: true,
            warnings: compiled.warnings,
        }),
    ))
}

/// Compiles and stores the next version of a workflow (unchanged if the IR is the same).
#[utoipa::path(
    put, path = "/workflows/{id}", tag = "workflows", operation_id = "update_workflow",
    params(("id" = String, Path, description = "The workflow's id")),
    request_body(content = Object, description = "The new definition as JSON"),
    responses(
        (status = 200, description = "Stored as the next version, or unchanged (`changed: false`)", body = SavedWorkflow),
        (status = 404, description = "No such workflow", body = ErrorBody),
        (status = 409, description = "Another workflow has the new name", body = ErrorBody),
        (status = 422, description = "The definition does not compile; `details.errors` lists every problem", body = ErrorBody),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<SavedWorkflow>, ApiError> {
    let Path(id) = id?;
    let Json(body) = body?;
    let (compiled, new) = compile_body(
        &body,
        &flow_limits(&state),
        &state.simulator.options().outbound.secrets,
        state.config_dir.as_deref(),
    )?;
    let (saved, changed) = state
        .simulator
        .store()
        .update_workflow(&id, &new)
        .await
        .map_err(|e| for_workflow(e, &id))?;
    Ok(Json(SavedWorkflow {
        id: saved.workflow_id,
        version: saved.version,
        ir_hash: saved.ir_hash,
        changed,
        warnings: compiled.warnings,
    }))
}

/// Workflows by name.
#[utoipa::path(
    get, path = "/workflows", tag = "workflows", operation_id = "list_workflows", params(ListQuery),
    responses((status = 200, description = "One page of workflows", body = WorkflowList))
)]
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<WorkflowList>, ApiError> {
    let Query(q) = query?;
    let workflows = state
        .simulator
        .store()
        .list_workflows(q.limit.unwrap_or(100), q.offset.unwrap_or(0))
        .await?;
    Ok(Json(WorkflowList {
        workflows: workflows.into_iter().map(info).collect(),
    }))
}

async fn detail(
    state: &AppState,
    id: &str,
    version: Option<u32>,
) -> Result<WorkflowDetail, ApiError> {
    let store = state.simulator.store();
    let workflow = store.workflow(id).await.map_err(|e| for_workflow(e, id))?;
    let chosen = store
        .workflow_version(id, version)
        .await
        .map_err(|e| match e {
            StoreError::NotFound { what } => {
                ApiError::not_found("version_not_found", format!("{what} not found"))
            }
            other => other.into(),
        })?;
    let definition = store.blob(&chosen.definition_hash).await?;
    let versions = store.workflow_versions(id).await?;
    Ok(WorkflowDetail {
        workflow: info(workflow),
        version: chosen.version,
        ir_hash: chosen.ir_hash,
        definition: serde_json::from_str(&definition.body).unwrap_or(Value::Null),
        versions: versions.into_iter().map(version_info).collect(),
    })
}

/// The latest version of a workflow with its definition and every version.
#[utoipa::path(
    get, path = "/workflows/{id}", tag = "workflows", operation_id = "get_workflow",
    params(("id" = String, Path, description = "The workflow's id")),
    responses(
        (status = 200, description = "The latest version with its definition", body = WorkflowDetail),
        (status = 404, description = "No such workflow", body = ErrorBody),
    )
)]
pub async fn get_one(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<WorkflowDetail>, ApiError> {
    let Path(id) = id?;
    Ok(Json(detail(&state, &id, None).await?))
}

/// One version of a workflow.
#[utoipa::path(
    get, path = "/workflows/{id}/versions/{version}", tag = "workflows", operation_id = "get_workflow_version",
    params(
        ("id" = String, Path, description = "The workflow's id"),
        ("version" = u32, Path, description = "A version number, from 1"),
    ),
    responses(
        (status = 200, description = "That version with its definition", body = WorkflowDetail),
        (status = 404, description = "No such workflow or version", body = ErrorBody),
    )
)]
pub async fn get_version(
    State(state): State<AppState>,
    path: Result<Path<(String, u32)>, PathRejection>,
) -> Result<Json<WorkflowDetail>, ApiError> {
    let Path((id, version)) = path?;
    Ok(Json(detail(&state, &id, Some(version)).await?))
}

/// Deletes a workflow and its versions.
#[utoipa::path(
    delete, path = "/workflows/{id}", tag = "workflows", operation_id = "delete_workflow",
    params(("id" = String, Path, description = "The workflow's id")),
    responses(
        (status = 204, description = "Deleted with its versions"),
        (status = 404, description = "No such workflow", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(id) = id?;
    state
        .simulator
        .store()
        .delete_workflow(&id)
        .await
        .map_err(|e| for_workflow(e, &id))?;
    Ok(StatusCode::NO_CONTENT)
}
