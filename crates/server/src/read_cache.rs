//! Answers of read routes kept as serialized bytes under the store's
//! [`ReadVersion`](tradeloom_store::ReadVersion): while the version is unchanged (no commit in
//! this process; none in another within
//! [`EXTERNAL_CHECK_EVERY`](tradeloom_store::EXTERNAL_CHECK_EVERY)) the same request is answered
//! with the same bytes and no SQL. A finished job's pages are the ones that stay; anything that
//! changes a job (a trigger that resumes it, a model-day completing) is a commit, so the next
//! request reads through SQL again.

use std::collections::HashMap;
use std::sync::RwLock;

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tradeloom_store::ReadVersion;

use crate::error::ApiError;

/// At most this many bytes of answers are kept; past it, answers of older versions go first,
/// then all.
const MAX_BYTES: usize = 64 << 20;

/// Serialized answers by request.
#[derive(Debug, Default)]
pub(crate) struct ResponseCache {
    inner: RwLock<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<String, (ReadVersion, Bytes)>,
    bytes: usize,
}

impl ResponseCache {
    /// The answer kept for `key` if it was built under `version`.
    pub(crate) fn get(&self, key: &str, version: ReadVersion) -> Option<Bytes> {
        // A poisoned cache is still a cache of immutable bytes.
        let entries = self.inner.read().unwrap_or_else(|e| e.into_inner());
        match entries.map.get(key) {
            Some((v, body)) if *v == version => Some(body.clone()),
            _ => None,
        }
    }

    /// Keeps `body`, built from reads that began after `version` was taken.
    pub(crate) fn put(&self, key: String, version: ReadVersion, body: Bytes) {
        if body.len() > MAX_BYTES / 4 {
            return;
        }
        let mut entries = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if entries.bytes + body.len() > MAX_BYTES {
            entries.map.retain(|_, (v, _)| *v == version);
            entries.bytes = entries.map.values().map(|(_, b)| b.len()).sum();
            if entries.bytes + body.len() > MAX_BYTES {
                entries.map.clear();
                entries.bytes = 0;
            }
        }
        entries.bytes += body.len();
        if let Some((_, old)) = entries.map.insert(key, (version, body)) {
            entries.bytes -= old.len();
        }
    }
}

/// `value` as JSON bytes, serialized once (what `axum::Json` would have sent).
pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<Bytes, ApiError> {
    serde_json::to_vec(value).map(Bytes::from).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            format!("cannot serialize the answer: {e}"),
        )
    })
}

/// A 200 with a JSON body already serialized.
pub(crate) fn json_response(body: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}
