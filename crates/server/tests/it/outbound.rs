//! `GET /health` probes the current job's LLM endpoints through the SSRF guard: a job whose
//! `base_url` is an address the server's policy does not allow (stored under a wider policy, or
//! written into the store directly) is reported refused, and nothing is sent there.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tempfile::TempDir;
use tradeloom_agents::{Simulator, SimulatorOptions};
use tradeloom_core::Currency;
use tradeloom_server::AppState;
use tradeloom_store::{NewJob, open_store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_probes_go_through_the_guard() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let endpoint = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            "{\"data\": []}"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let llm = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, endpoint).await });

    let dir = TempDir::new().unwrap();
    let store = open_store(&dir.path().join("t.db").display().to_string())
        .await
        .unwrap();
    store
        .create_job(NewJob {
            config: serde_json::json!({"models": [
                {"name": "a", "base_url": format!("http://{llm}/v1"), "model": "m"},
                {"name": "b", "base_url": "http://169.254.169.254/latest/meta-data", "model": "m"},
            ]}),
            currency: Currency::USD,
            models: vec!["a".into(), "b".into()],
            dates: vec![chrono::NaiveDate::from_ymd_opt(2025, 1, 2).unwrap()],
        })
        .await
        .unwrap();
    let simulator = Simulator::new(
        store,
        SimulatorOptions {
            data_dir: dir.path().join("data"),
            max_concurrent_jobs: 1,
            base_dir: dir.path().to_path_buf(),
            outbound: tradeloom_net::Outbound::strict(),
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    tokio::spawn(tradeloom_server::serve(
        listener,
        AppState::new(simulator),
        std::future::pending(),
    ));
    let health: serde_json::Value = reqwest::get(format!("http://{api}/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "degraded", "{health}");
    let providers = health["providers"].as_array().unwrap();
    assert_eq!(providers.len(), 2, "{health}");
    for p in providers {
        let error = p["error"].as_str().unwrap_or_default();
        assert_eq!(p["ok"], false, "{p}");
        assert!(
            error.contains("refused by the SSRF guard") && error.contains("blocked"),
            "{p}"
        );
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the probe reached the endpoint"
    );
}
