//! An HTTP receiver of workflow `http` effects on loopback, for the tests that kill processes
//! mid-run: it records each request's `Idempotency-Key` and the run id of its body, duplicates
//! included, so a test can check that every effect arrived under one key however often it was
//! re-sent.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::Value;

/// (idempotency key, run id) of every request the sink received, duplicates included.
pub type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// Listens on a free loopback port and answers `POST /effect` after `delay` (slow enough that
/// some kills land while a request is in flight); its root URL and what it saw.
pub async fn sink(delay: Duration) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/effect",
        post(move |headers: HeaderMap, body: String| {
            let s = s.clone();
            async move {
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let run = body["run"].as_str().unwrap_or("").to_string();
                s.lock().unwrap().push((key, run));
                tokio::time::sleep(delay).await;
                "{\"ok\": true}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// The distinct keys each run's effects arrived under.
pub fn keys_per_run(seen: &Seen) -> BTreeMap<String, BTreeSet<String>> {
    seen.lock()
        .unwrap()
        .iter()
        .fold(BTreeMap::new(), |mut m, (key, run)| {
            m.entry(run.clone()).or_default().insert(key.clone());
            m
        })
}

/// Every run of `runs` sent its one effect, under one key.
pub fn assert_one_key_per_run(seen: &Seen, runs: &[String]) {
    let keys = keys_per_run(seen);
    assert_eq!(keys.len(), runs.len(), "every run's effect arrived");
    for (run, keys) in &keys {
        assert_eq!(keys.len(), 1, "run {run} sent its effect under {keys:?}");
    }
}
