//! `GET /metrics` over real HTTP, read back with the strict exposition reader of tradeloom-metrics:
//! request counters by matched route, latency histograms, store counts by status, uptime; public
//! when keys are required.

use std::sync::Arc;

use tempfile::TempDir;
use tradeloom_agents::{Simulator, SimulatorOptions};
use tradeloom_core::Currency;
use tradeloom_metrics::parse::{Exposition, parse};
use tradeloom_server::{AppState, AuthMode};
use tradeloom_store::{NewJob, Store, open_store};

struct Server {
    base: String,
    store: Arc<dyn Store>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(auth: AuthMode) -> Server {
    let dir = TempDir::new().unwrap();
    let location = dir.path().join("t.db").display().to_string();
    let store = open_store(&location).await.unwrap();
    let simulator = Simulator::new(
        Arc::clone(&store),
        SimulatorOptions {
            data_dir: dir.path().join("data"),
            max_concurrent_jobs: 1,
            base_dir: dir.path().to_path_buf(),
            outbound: tradeloom_net::Outbound::strict(),
        },
    );
    let state = AppState::new(simulator).with_auth(auth);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(tradeloom_server::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    Server {
        base: format!("http://{addr}"),
        store,
        stop: Some(stop),
        _dir: dir,
    }
}

/// Scrapes `/metrics`: the content type, then the strict exposition reader (which refuses any
/// malformed line, duplicate series or inconsistent histogram).
async fn scrape(server: &Server) -> (String, Exposition) {
    let response = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    let parsed = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    for (name, family) in &parsed.families {
        assert!(
            family.help.is_some() && !family.kind.is_empty(),
            "{name} lacks HELP or TYPE"
        );
    }
    (text, parsed)
}

fn value_of(scrape: &Exposition, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape.value(name, labels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_routes_store_rows_and_parse() {
    let server = start(AuthMode::Off).await;
    server
        .store
        .create_job(NewJob {
            config: serde_json::json!({"tag": "metrics"}),
            currency: Currency::USD,
            models: vec!["a".into(), "b".into()],
            dates: vec![chrono::NaiveDate::from_ymd_opt(2025, 1, 2).unwrap()],
        })
        .await
        .unwrap();
    let client = reqwest::Client::new();
    for path in [
        "/health",
        "/health",
        "/simulate/status/one",
        "/simulate/status/two",
        "/no/such/path",
    ] {
        client
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
    }

    let (text, scrape) = scrape(&server).await;
    let requests = "tradeloom_http_requests_total";
    assert_eq!(
        value_of(
            &scrape,
            requests,
            &[("method", "GET"), ("route", "/health"), ("status", "200")]
        ),
        Some(2.0),
        "{text}"
    );
    // Two raw paths, one series: the matched route template.
    assert_eq!(
        value_of(
            &scrape,
            requests,
            &[("route", "/simulate/status/{job_id}"), ("status", "404")]
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value_of(
            &scrape,
            requests,
            &[("route", "unmatched"), ("status", "404")]
        ),
        Some(1.0),
        "{text}"
    );
    assert!(!text.contains("/no/such/path") && !text.contains("status/one"));

    let duration = "tradeloom_http_request_duration_seconds";
    let health = [("method", "GET"), ("route", "/health")];
    let bucket = |le: &str| {
        let mut labels = health.to_vec();
        labels.push(("le", le));
        value_of(&scrape, &format!("{duration}_bucket"), &labels)
    };
    assert_eq!(bucket("+Inf"), Some(2.0));
    assert!(bucket("10").is_some() && bucket("0.001").is_some());
    assert_eq!(
        value_of(&scrape, &format!("{duration}_count"), &health),
        Some(2.0)
    );
    assert!(text.contains(
        "tradeloom_http_request_duration_seconds_count{method=\"GET\",route=\"/health\"} 2\n"
    ));

    assert_eq!(
        value_of(&scrape, "tradeloom_jobs", &[("status", "pending")]),
        Some(1.0)
    );
    assert_eq!(
        value_of(&scrape, "tradeloom_jobs", &[("status", "failed")]),
        Some(0.0)
    );
    assert_eq!(
        value_of(&scrape, "tradeloom_model_days", &[("status", "pending")]),
        Some(2.0)
    );
    assert_eq!(
        value_of(&scrape, "tradeloom_workflow_runs", &[("status", "running")]),
        Some(0.0)
    );
    assert_eq!(
        value_of(&scrape, "tradeloom_workflow_nodes", &[("status", "queued")]),
        Some(0.0)
    );
    assert!(value_of(&scrape, "tradeloom_process_uptime_seconds", &[]).unwrap() >= 0.0);

    // The scrape itself is counted on the next one.
    let (_, again) = self::scrape(&server).await;
    assert_eq!(
        value_of(
            &again,
            requests,
            &[("route", "/metrics"), ("status", "200")]
        ),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_public_when_keys_are_required() {
    let server = start(AuthMode::Required).await;
    let refused = reqwest::get(format!("{}/simulate/current", server.base))
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let (text, scrape) = scrape(&server).await;
    // Refused requests are counted too (the metrics layer sits outside the auth guard).
    assert_eq!(
        value_of(
            &scrape,
            "tradeloom_http_requests_total",
            &[("route", "/simulate/current"), ("status", "401")]
        ),
        Some(1.0),
        "{text}"
    );
}
