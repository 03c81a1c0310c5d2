//! [`ApiError`]: every error the API returns, as `{"error": code, "message", "details"}` with
//! the matching status. Library errors are mapped here once. A 401 carries
//! `WWW-Authenticate: Bearer`, a 429 `Retry-After` (whole seconds, from `details.retry_after_s`).

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
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

    /// A page's `limit` query parameter: `default` when absent, else it must be 1 to `max`
    /// (400 `invalid_query` with `details.param` = `limit` otherwise).
    pub(crate) fn page_limit<T>(limit: Option<T>, default: T, max: T) -> Result<T, Self>
    where
        T: Copy + PartialOrd + From<u8> + std::fmt::Display,
    {
        Self::limit_param("limit", limit, default, max)
    }

    /// [`ApiError::page_limit`] for a limit parameter named `param`.
    pub(crate) fn limit_param<T>(
        param: &'static str,
        limit: Option<T>,
        default: T,
        max: T,
    ) -> Result<T, Self>
    where
        T: Copy + PartialOrd + From<u8> + std::fmt::Display,
    {
        let limit = limit.unwrap_or(default);
        if limit < T::from(1) || limit > max {
            return Err(Self::bad_request(
                "invalid_query",
                format!("{param}: {limit} is not between 1 and {max}"),
            )
            .with_details(serde_json::json!({"param": param})));
        }
        Ok(limit)
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
            AgentError::AgentTool {
                ref place,
                ref agent,
                ref tool,
                ..
            } => {
                let details = json!({"place": place, "agent": agent, "tool": tool});
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unsupported_agent_tool",
                    e.to_string(),
                )
                .with_details(details)
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
            AgentError::JobState {
                ref job_id,
                status,
                action,
                ..
            } => {
                let allowed: Vec<&str> = action.allowed_from().iter().map(|s| s.as_str()).collect();
                let details = json!({
                    "job_id": job_id,
                    "status": status.as_str(),
                    "action": action.as_str(),
                    "allowed_from": allowed,
                });
                ApiError::new(StatusCode::CONFLICT, "invalid_job_state", e.to_string())
                    .with_details(details)
            }
            AgentError::AiTraderConfig { ref fields, .. } => {
                let details = json!({"fields": fields});
                ApiError::bad_request("invalid_ai_trader_config", e.to_string())
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
        let (status, code) = match &e {
            JsonRejection::MissingJsonContentType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            JsonRejection::JsonSyntaxError(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            // A body over the limit (`DefaultBodyLimit`) is 413, not a malformed body.
            _ if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return payload_too_large();
            }
            _ => (StatusCode::BAD_REQUEST, "invalid_body"),
        };
        ApiError::new(status, code, e.body_text())
    }
}

/// The most a JSON request body may have (axum's default body limit, kept).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

pub(crate) fn payload_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the request body is larger than the limit of {MAX_BODY_BYTES} bytes"),
    )
    .with_details(json!({"limit_bytes": MAX_BODY_BYTES}))
}

/// The error code of a bare `status` (an answer made outside our handlers: a 405 of the
/// router, a rejection of an extractor handlers do not map themselves).
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "route_not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        s if s.is_server_error() => "internal_error",
        _ => "request_failed",
    }
}

/// Longest body of a non-JSON error read to build its message.
const MAX_PLAIN_ERROR: usize = 4096;

/// Middleware (outermost around the router) giving every error answer the JSON shape: a 4xx or
/// 5xx whose body is not JSON (axum's 405, a text/plain extractor rejection) is rewritten as
/// `{error, message, details}` with the same status and headers (`Allow`, `Retry-After`).
pub(crate) async fn json_errors(
    method: Method,
    uri: Uri,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json") || t.starts_with("text/html"));
    // JSON, or the HTML error page an approval link answers a browser with.
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_PLAIN_ERROR).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    // An approval link's token is its credential: never echoed.
    let path = crate::approval_links::redacted_path(uri.path());
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            ApiError::new(
                status,
                "method_not_allowed",
                format!("`{method} {path}` is not allowed; this route takes {allowed}"),
            )
            .with_details(json!({"method": method.as_str(), "allowed": allowed}))
        }
        StatusCode::PAYLOAD_TOO_LARGE => payload_too_large(),
        _ => {
            let message = if text.is_empty() {
                status
                    .canonical_reason()
                    .unwrap_or("request failed")
                    .to_string()
            } else {
                text
            };
            ApiError::new(status, code_of(status), message)
        }
    };
    let rebuilt = error.into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, rebuilt.into_body())
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
