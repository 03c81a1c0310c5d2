//! `/keys` (admin only): create an API key (its secret is in that answer and nowhere else,
//! ever), list keys, revoke one.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tradeloom_store::{ApiKey, NewApiKey, Role, StoreError};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Principal, forbidden};
use crate::error::{ApiError, ErrorBody};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// 1 to 64 letters, digits, `-`, `_`, `.` or `@`; unique (revoked keys keep theirs).
    #[schema(pattern = "^[A-Za-z0-9._@-]{1,64}$")]
    pub name: String,
    /// `viewer`, `operator` or `admin`.
    #[schema(schema_with = crate::openapi::role_schema)]
    pub role: String,
    /// Workflow runs this key may have active at once (pending, running, waiting or paused;
    /// at least 1; absent: no limit). A start beyond it is queued, or refused with
    /// `"on_limit": "reject"`.
    #[schema(value_type = Option<u32>, minimum = 1)]
    pub max_concurrent_runs: Option<serde_json::Value>,
}

/// An API key as listed (never its secret or hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    /// `viewer`, `operator` or `admin`.
    pub role: String,
    /// The first characters of the secret, to tell keys apart.
    pub prefix: String,
    /// Workflow runs the key may have active at once; absent: no limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_runs: Option<u32>,
    #[schema(value_type = String)]
    pub created_at: DateTime<Utc>,
    #[schema(value_type = Option<String>)]
    pub last_used_at: Option<DateTime<Utc>>,
    #[schema(value_type = Option<String>)]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// `POST /keys`: the new key and its secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub info: KeyInfo,
    /// The secret: send it as `Authorization: Bearer <key>`. Only its hash is stored.
    pub key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyInfo>,
}

fn info(k: ApiKey) -> KeyInfo {
    KeyInfo {
        id: k.id,
        name: k.name,
        role: k.role.to_string(),
        prefix: k.prefix,
        max_concurrent_runs: k.max_concurrent_runs,
        created_at: k.created_at,
        last_used_at: k.last_used_at,
        revoked_at: k.revoked_at,
    }
}

/// The guard already requires admin for `/keys`; checked again here so these handlers stay
/// admin-only whatever the routing becomes.
fn require_admin(principal: &Principal, method: Method, path: &str) -> Result<(), ApiError> {
    if principal.role.allows(Role::Admin) {
        Ok(())
    } else {
        Err(forbidden(&method, path, Role::Admin, principal))
    }
}

/// Creates a key; the answer holds its secret, which cannot be shown again.
#[utoipa::path(
    post, path = "/keys", tag = "keys", operation_id = "create_key", request_body = CreateKeyRequest,
    responses(
        (status = 201, description = "The new key with its secret, shown this once", body = CreatedKey),
        (status = 400, description = "Bad name or role", body = ErrorBody),
        (status = 422, description = "A `max_concurrent_runs` that is not a whole number of at least 1 (`invalid_request`, `details.field`)", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
    )
)]
pub async fn create(
    principal: Principal,
    State(state): State<AppState>,
    body: Result<Json<CreateKeyRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    require_admin(&principal, Method::POST, "/keys")?;
    let Json(req) = body?;
    let role: Role = req.role.parse().map_err(|message: String| {
        ApiError::bad_request("invalid_role", message)
            .with_details(json!({"role": req.role, "expected": ["viewer", "operator", "admin"]}))
    })?;
    let max_concurrent_runs = match &req.max_concurrent_runs {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|n| *n >= 1)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid_request",
                        format!(
                            "max_concurrent_runs: expected a whole number of at least 1, got {v}"
                        ),
                    )
                    .with_details(json!({"field": "max_concurrent_runs", "value": v}))
                })?,
        ),
    };
    let (new, secret) = NewApiKey::generate(&req.name, role).map_err(|e| match e {
        StoreError::Invalid(m) => {
            ApiError::bad_request("invalid_key_name", m).with_details(json!({"name": req.name}))
        }
        other => other.into(),
    })?;
    let new = new.with_max_concurrent_runs(max_concurrent_runs)?;
    let key = state
        .simulator
        .store()
        .create_api_key(&new)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "api_key_exists", m)
                .with_details(json!({"name": req.name})),
            other => other.into(),
        })?;
    tracing::info!(key = %key.name, role = %key.role, by = %principal.name, "API key created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            info: info(key),
            key: secret,
        }),
    ))
}

/// Every key, revoked ones included, oldest first.
#[utoipa::path(
    get, path = "/keys", tag = "keys", operation_id = "list_keys",
    responses((status = 200, description = "Every key, without secrets", body = KeyList))
)]
pub async fn list(
    principal: Principal,
    State(state): State<AppState>,
) -> Result<Json<KeyList>, ApiError> {
    require_admin(&principal, Method::GET, "/keys")?;
    let keys = state.simulator.store().list_api_keys().await?;
    Ok(Json(KeyList {
        keys: keys.into_iter().map(info).collect(),
    }))
}

/// Revokes a key (by id or name); it stops authenticating at once. Revoking twice is harmless;
/// revoking the last active admin key is refused (409 `last_admin_key`).
#[utoipa::path(
    delete, path = "/keys/{id}", tag = "keys", operation_id = "revoke_key",
    params(("id" = String, Path, description = "The key's id or name")),
    responses(
        (status = 200, description = "The revoked key", body = KeyInfo),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 409, description = "The last active admin key cannot be revoked", body = ErrorBody),
    )
)]
pub async fn revoke(
    principal: Principal,
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<KeyInfo>, ApiError> {
    let Path(id) = id?;
    require_admin(&principal, Method::DELETE, &format!("/keys/{id}"))?;
    let key = state
        .simulator
        .store()
        .revoke_api_key(&id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound { .. } => ApiError::not_found(
                "api_key_not_found",
                format!("no API key has the id or name `{id}`"),
            )
            .with_details(json!({"id": id})),
            // The store refuses only one revocation: that of the last active admin key.
            StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "last_admin_key", m)
                .with_details(json!({"id": id, "reason": "last_active_admin_key"})),
            other => other.into(),
        })?;
    // The commit already changed the store's read version; forgetting is belt and braces.
    state.auth().forget_keys();
    tracing::info!(key = %key.name, by = %principal.name, "API key revoked");
    Ok(Json(info(key)))
}
