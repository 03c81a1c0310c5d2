//! What can go wrong talking to the API: the URL, the connection, or an answer with an error
//! status (with the API's JSON error body). No error carries the API key.

use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tradeloom_core::IdRefError;

/// The error of parsing a base URL.
pub type UrlParseError = <reqwest::Url as std::str::FromStr>::Err;

/// An error of a [`crate::Client`] call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The base URL does not parse.
    #[error("`{url}` is not a URL: {source}")]
    InvalidUrl {
        url: String,
        #[source]
        source: UrlParseError,
    },
    /// The base URL is not `http://` or `https://` (or cannot be a base, like `mailto:`).
    #[error("`{url}` must be an http:// or https:// URL")]
    UnsupportedUrl { url: String },
    /// The HTTP client could not be built (TLS set-up).
    #[error("cannot build the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
    /// Nothing answered at the base URL, or the connection broke, or no answer came in time.
    #[error("cannot reach the tradeloom API at {url} ({reason})")]
    Unreachable {
        /// The base URL.
        url: String,
        /// Why: refused, timed out, or the transport's whole error chain.
        reason: String,
    },
    /// An answer whose body is not JSON.
    #[error("{method} {path}: HTTP {status} with a body that is not JSON ({reason}): {snippet}")]
    NotJson {
        method: String,
        path: String,
        status: u16,
        /// The JSON parser's complaint.
        reason: String,
        /// The first 200 characters of the body.
        snippet: String,
    },
    /// A successful answer that does not have the documented shape.
    #[error("{method} {path}: HTTP {status}: the answer is not {expected}: {reason}")]
    UnexpectedBody {
        method: String,
        path: String,
        status: u16,
        /// What the body should have been (e.g. `a workflow run`).
        expected: &'static str,
        reason: String,
    },
    /// The API said a workflow of this name exists (409) but does not list one.
    #[error("the API says a workflow named `{name}` exists but does not list it")]
    WorkflowNotListed { name: String },
    /// The API answered with an error status (4xx, 5xx).
    #[error(transparent)]
    Api(Box<ApiError>),
    /// An id given as a prefix or `latest` matches no id, or more than one.
    #[error(transparent)]
    UnknownId(#[from] IdRefError),
    /// [`crate::Client::wait_for`] gave up.
    #[error("GET {path}: not there within {within:?}; last answer {last}")]
    NotWithin {
        path: String,
        within: Duration,
        /// The last body seen (`null` when nothing answered).
        last: Value,
    },
}

impl Error {
    /// The API's error, when the API answered with an error status.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        Error::Api(Box::new(e))
    }
}

/// An answer with an error status: `{"error": code, "message", "details": {...}}` as the API
/// sends every error (`code` is `http_error` and the message the status's reason when the body
/// is not that shape).
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// The stable error code (`workflow_exists`, `run_not_found`, `patch_rejected`, …).
    pub code: String,
    pub message: String,
    /// One line per entry of `details.errors` (or `errors`): `line 3: nodes[1].needs: …`.
    pub details: Vec<String>,
    /// The `Retry-After` header of a 429 or 503, in seconds as sent.
    pub retry_after: Option<String>,
    /// The whole JSON body (`null` when there was none).
    pub body: Value,
}

impl ApiError {
    /// The error of an answer with `status`, body `body` and `Retry-After` `retry_after`.
    pub fn new(status: StatusCode, body: Value, retry_after: Option<String>) -> Self {
        let code = body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("http_error")
            .to_string();
        let message = body.get("message").and_then(Value::as_str).map_or_else(
            || {
                format!(
                    "the API answered {}",
                    status.canonical_reason().unwrap_or("an error")
                )
            },
            str::to_string,
        );
        ApiError {
            status,
            code,
            message,
            details: detail_lines(&body),
            retry_after,
            body,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (HTTP {}, {})",
            self.message,
            self.status.as_u16(),
            self.code
        )?;
        for d in &self.details {
            write!(f, "\n  - {d}")?;
        }
        if let Some(after) = &self.retry_after {
            write!(f, "\n  retry after {after} s")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// One line per entry of an error's `details.errors` (strings, or objects with a path/line and
/// a message).
pub fn detail_lines(body: &Value) -> Vec<String> {
    let list = body
        .pointer("/details/errors")
        .or_else(|| body.get("errors"))
        .and_then(Value::as_array);
    list.map(|l| l.iter().map(describe_problem).collect())
        .unwrap_or_default()
}

fn describe_problem(p: &Value) -> String {
    match p {
        Value::String(s) => s.clone(),
        Value::Object(o) => {
            let message = o
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| p.to_string(), str::to_string);
            let path = o.get("path").and_then(Value::as_str).unwrap_or_default();
            let mut place = Vec::new();
            if let Some(line) = o.get("line").and_then(Value::as_u64) {
                place.push(format!("line {line}"));
            }
            if !path.is_empty() {
                place.push(path.to_string());
            }
            place.push(message);
            place.join(": ")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn problems_read_path_and_message() {
        let body = json!({"error": "x", "message": "m", "details": {"errors": [
            "plain reason",
            {"code": "cycle", "path": "nodes[1].needs[0]", "message": "a cycle"},
            {"message": "no path", "line": 3},
        ]}});
        assert_eq!(
            detail_lines(&body),
            vec![
                "plain reason".to_string(),
                "nodes[1].needs[0]: a cycle".to_string(),
                "line 3: no path".to_string(),
            ]
        );
    }

    #[test]
    fn an_error_reads_code_message_details_and_retry_after() {
        let e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"error": "rate_limited", "message": "slow down",
                   "details": {"errors": ["one"]}}),
            Some("3".into()),
        );
        assert_eq!(
            e.to_string(),
            "slow down (HTTP 429, rate_limited)\n  - one\n  retry after 3 s"
        );
        let e = ApiError::new(StatusCode::BAD_GATEWAY, Value::Null, None);
        assert_eq!(e.code, "http_error");
        assert_eq!(
            e.to_string(),
            "the API answered Bad Gateway (HTTP 502, http_error)"
        );
    }
}
