//! [`ApiError`]: every error the API returns, as `{"error": code, "message", "details"}` with
//! the matching status. Library errors are mapped here once. A 401 carries
//! `WWW-Authenticate: Bearer`, a 429 `Retry-After` (whole seconds, from `details.retry_after_s`).

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use tradeloom_agents::AgentError;
use tradeloom_store::StoreError;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable machine-readable code, e.g. `invalid_config`, `job_not_found`, `job_running`.
    pub error: String,
    /// What went wrong, for people.
    pub message: String,
    /// Structured context (the offending field, the running job's id, ...).
    #[schema(value_type = Object)]
    pub details: Value,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: json!({}),
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// A store error while reading job `job_id`: a missing job is `job_not_found`.
    pub fn for_job(e: StoreError, job_id: &str) -> Self {
        match e {
            StoreError::NotFound { .. } => {
                Self::not_found("job_not_found", format!("no job with id `{job_id}`"))
                    .with_details(json!({"job_id": job_id}))
            }
            other => other.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "request failed");
        }
        // The headers the status calls for, from the details the error carries.
        let retry_after = (self.status == StatusCode::TOO_MANY_REQUESTS)
            .then(|| self.details["retry_after_s"].as_u64())
            .flatten();
        let challenge = (self.status == StatusCode::UNAUTHORIZED).then(|| {
            if self.details["reason"] == "invalid_key" {
                r#"Bearer realm="tradeloom", error="invalid_token""#
            } else {
                r#"Bearer realm="tradeloom""#
            }
        });
        let body = ErrorBody {
            error: self.code.to_string(),
            message: self.message,
            details: self.details,
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if let Some(challenge) = challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => ApiError::not_found("not_found", e.to_string()),
            StoreError::Conflict(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            StoreError::Invalid(_) => ApiError::bad_request("invalid_request", e.to_string()),
            _ => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                e.to_string(),
            ),
        }
    }
}

impl From<AgentError> for ApiError {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::Config {
                ref place,
                ref message,
            } => {
                let details = json!({"place": place, "reason": message});
                ApiError::bad_request("invalid_config", e.to_string()).with_details(details)
            }
            AgentError::Data(_) => ApiError::bad_request("invalid_market_data", e.to_string()),
            AgentError::Busy {
                ref running_job_id,
                limit,
            } => {
                let details =
                    json!({"running_job_id": running_job_id, "max_concurrent_jobs": limit});
                ApiError::new(StatusCode::CONFLICT, "job_running", e.to_string())
                    .with_details(details)
            }
            AgentError::Store(s) => s.into(),
            AgentError::Io { .. } => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "io_error", e.to_string())
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        let code = match e {
            JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
            JsonRejection::JsonSyntaxError(_) => "invalid_json",
            _ => "invalid_body",
        };
        let status = if code == "unsupported_media_type" {
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError::new(status, code, e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::bad_request("invalid_query", e.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        ApiError::bad_request("invalid_path", e.body_text())
    }
}
