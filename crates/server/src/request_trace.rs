//! Request tracing: every request runs inside an `info` span `request` carrying its method,
//! path, `request_id` and `trace_id`, so every line logged while serving it has them; the trace
//! id is answered in the `x-trace-id` response header.
//!
//! The trace id is the caller's when it sends one — the trace-id of a W3C `traceparent` header,
//! else its `x-request-id` (as is when it is already a trace-id, else hashed into one) — and is
//! otherwise derived from the request id the server assigned. Spans of the work a request starts
//! (a workflow run's signals and nodes) carry that run's own trace id, which follows the run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tradeloom_core::{is_trace_id, trace_id};

/// The response header carrying the request's trace id.
pub const X_TRACE_ID: HeaderName = HeaderName::from_static("x-trace-id");

/// Middleware: runs the request in its span and answers its trace id.
pub async fn request_span(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let request_id = header(headers, "x-request-id").unwrap_or_default();
    let trace = trace_id_of(headers);
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        // An approval link's token is its credential: never logged.
        path = %crate::approval_links::redacted_path(request.uri().path()),
        request_id = %request_id,
        trace_id = %trace
    );
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1e3,
            "request completed"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&trace) {
        response.headers_mut().insert(X_TRACE_ID, value);
    }
    response
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The trace id of a request: from `traceparent`, else from `x-request-id`, else new.
pub fn trace_id_of(headers: &HeaderMap) -> String {
    if let Some(parent) = header(headers, "traceparent") {
        // version "-" trace-id "-" parent-id "-" flags
        let parts: Vec<&str> = parent.split('-').collect();
        if parts.len() >= 4 && parts[0].len() == 2 && is_trace_id(parts[1]) {
            return parts[1].to_string();
        }
    }
    if let Some(id) = header(headers, "x-request-id") {
        return if is_trace_id(&id) { id } else { trace_id(&id) };
    }
    // Unreachable behind `SetRequestIdLayer`, which gives every request an id; still unique.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    trace_id(&format!(
        "{}-{n}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn traceparent_wins_then_request_id() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let h = headers(&[("traceparent", tp), ("x-request-id", "abc")]);
        assert_eq!(trace_id_of(&h), "4bf92f3577b34da6a3ce929d0e0e4736");
        // A malformed traceparent falls back to the request id.
        let h = headers(&[("traceparent", "00-xyz-01"), ("x-request-id", "abc")]);
        assert_eq!(trace_id_of(&h), trace_id("abc"));
        let uuid = "0198a3c2-7f10-7c3e-9d2a-5b6c7d8e9f01";
        let h = headers(&[("x-request-id", uuid)]);
        assert_eq!(trace_id_of(&h), "0198a3c27f107c3e9d2a5b6c7d8e9f01");
        let h = headers(&[("x-request-id", "0198a3c27f107c3e9d2a5b6c7d8e9f01")]);
        assert_eq!(trace_id_of(&h), "0198a3c27f107c3e9d2a5b6c7d8e9f01");
    }

    #[test]
    fn without_headers_ids_are_new() {
        let a = trace_id_of(&HeaderMap::new());
        let b = trace_id_of(&HeaderMap::new());
        assert!(is_trace_id(&a) && is_trace_id(&b));
        assert_ne!(a, b);
    }
}
