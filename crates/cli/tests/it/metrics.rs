//! `tradeloom metrics export|serve` on real run folders, and `/metrics` of `tradeloom serve`
//! after a real simulation job on `tradeloom mock-llm`; every exposition goes through the
//! strict reader of `tradeloom_metrics::parse`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tradeloom_metrics::parse::{Exposition, parse};

use crate::service::Service;
use crate::{repo, run_json, stderr, stdout, tradeloom};

fn exposition(text: &str) -> Exposition {
    parse(text).unwrap_or_else(|e| panic!("not a valid exposition: {e}\n{text}"))
}

fn rows(path: &Path) -> f64 {
    (std::fs::read_to_string(path).unwrap().lines().count() - 1) as f64
}

#[test]
fn export_of_a_real_run_parses_and_matches_its_files() {
    let data = tempfile::tempdir().unwrap();
    let spec = repo().join("examples/specs/goog_sma_cross.yaml");
    let (_, dir) = run_json(data.path(), &spec);
    let id = dir.file_name().unwrap().to_str().unwrap().to_string();
    let metrics: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap();

    let out = tradeloom(data.path(), &["metrics", "export"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let e = exposition(&stdout(&out));
    let run = [("run_id", id.as_str())];
    let fills = e.value("tradeloom_run_fills_total", &run).unwrap();
    assert!(fills > 0.0);
    assert_eq!(fills, rows(&dir.join("fills.csv")));
    assert_eq!(
        e.value("tradeloom_run_orders_total", &run),
        metrics["orders"].as_f64()
    );
    assert_eq!(
        e.value("tradeloom_run_bars_total", &run),
        metrics["bars"].as_f64()
    );
    assert_eq!(
        e.value("tradeloom_run_final_equity", &[run[0], ("currency", "USD")]),
        Some(112583.7)
    );
    assert_eq!(
        e.value("tradeloom_runs", &[("status", "completed")]),
        Some(1.0)
    );

    // A second run under an engaged kill switch: every order refused, by code.
    let out = tradeloom(
        data.path(),
        &["killswitch", "engage", "--reason", "metrics test"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, refused) = run_json(data.path(), &spec);
    let refused_id = refused.file_name().unwrap().to_str().unwrap().to_string();
    let out = tradeloom(
        data.path(),
        &["metrics", "export", "--run", &refused_id[..18]],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let e = exposition(&stdout(&out));
    let run = [("run_id", refused_id.as_str())];
    let rejected = e
        .value("tradeloom_run_rejected_orders_total", &run)
        .unwrap();
    assert!(rejected > 0.0);
    assert_eq!(rows(&refused.join("fills.csv")), 0.0);
    assert_eq!(e.value("tradeloom_run_fills_total", &run), Some(0.0));
    assert_eq!(
        e.value(
            "tradeloom_run_order_rejections_total",
            &[run[0], ("code", "risk.kill_switch")]
        ),
        Some(rejected)
    );
    assert_eq!(
        e.value("tradeloom_kill_switch_engaged", &[("scope", "global")]),
        Some(1.0)
    );
    // Only that run.
    assert_eq!(
        e.value("tradeloom_run_fills_total", &[("run_id", id.as_str())]),
        None
    );

    let out = tradeloom(data.path(), &["metrics", "export", "--run", "no-such-run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no run `no-such-run`"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
}

/// `tradeloom metrics serve --addr 127.0.0.1:0`, killed on drop.
struct MetricsServer {
    child: Child,
    url: String,
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn metrics_serve(data_dir: &Path) -> MetricsServer {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tradeloom"))
        .args(["metrics", "serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line[line.find("http://").unwrap()..].trim().to_string();
    MetricsServer { child, url }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_serve_rereads_the_artifacts_at_every_scrape() {
    tradeloom_llm::install_crypto_provider();
    let data = tempfile::tempdir().unwrap();
    let server = metrics_serve(data.path());
    assert!(server.url.ends_with("/metrics"), "{}", server.url);
    let client = reqwest::Client::new();
    let scrape = || async {
        let r = client.get(&server.url).send().await.unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::OK);
        assert_eq!(
            r.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        exposition(&r.text().await.unwrap())
    };
    let e = scrape().await;
    assert_eq!(
        e.value("tradeloom_runs", &[("status", "completed")]),
        Some(0.0)
    );
    // A run finished between scrapes shows up at the next one.
    let spec = repo().join("examples/specs/goog_sma_cross.yaml");
    let (_, dir) = run_json(data.path(), &spec);
    let id = dir.file_name().unwrap().to_str().unwrap().to_string();
    let e = scrape().await;
    assert_eq!(
        e.value("tradeloom_run_fills_total", &[("run_id", id.as_str())]),
        Some(rows(&dir.join("fills.csv")))
    );
    assert_eq!(
        e.value("tradeloom_runs", &[("status", "completed")]),
        Some(1.0)
    );
    let base = server.url.trim_end_matches("/metrics");
    let r = client.get(format!("{base}/nope")).send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::NOT_FOUND);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "route_not_found");
    let r = client.post(&server.url).send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_metrics_show_llm_calls_queue_depth_and_runs() {
    tradeloom_llm::install_crypto_provider();
    let data = tempfile::tempdir().unwrap();
    let spec = repo().join("examples/specs/goog_sma_cross.yaml");
    let (_, dir) = run_json(data.path(), &spec);
    let run_id = dir.file_name().unwrap().to_str().unwrap().to_string();
    let mock = Service::mock_llm();
    let api = Service::serve_with(
        data.path(),
        &[
            "--rate-limit-per-key",
            "0",
            "--rate-limit-runs-light",
            "0",
            "--http-allow",
            mock.authority(),
        ],
        &[],
    );
    let client = reqwest::Client::new();
    let config = json!({"config": {
        "models": [{"name": "mom", "base_url": format!("{}/v1", mock.url), "model": "momentum", "max_retries": 1}],
        "universe": {"path": repo().join("examples/universe")},
        "start_date": "2025-01-02",
        "end_date": "2025-01-03",
        "max_steps": 10,
        "max_tool_errors": 2,
    }});
    let r = client
        .post(format!("{}/simulate/trigger", api.url))
        .json(&config)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let started: Value = r.json().await.unwrap();
    let job_id = started["job_id"].as_str().unwrap().to_string();
    let mut done = false;
    for _ in 0..1200 {
        let status: Value = client
            .get(format!("{}/simulate/status/{job_id}", api.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ["completed", "partial", "failed"].contains(&status["status"].as_str().unwrap_or("")) {
            assert_eq!(status["status"], "completed", "{status}");
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(done, "job {job_id} did not finish");
    let text = client
        .get(format!("{}/metrics", api.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let e = exposition(&text);
    let calls = e
        .value(
            "tradeloom_llm_requests_total",
            &[("model", "momentum"), ("outcome", "ok")],
        )
        .unwrap_or_else(|| panic!("no LLM calls in\n{text}"));
    assert!(calls >= 2.0, "one call per model-day at least: {calls}");
    let prompt = e
        .value(
            "tradeloom_llm_tokens_total",
            &[("model", "momentum"), ("kind", "prompt")],
        )
        .unwrap();
    assert!(prompt > 0.0);
    assert_eq!(
        e.value(
            "tradeloom_llm_request_duration_seconds_count",
            &[("model", "momentum")]
        ),
        Some(calls)
    );
    // The stored jobs and the LLM calls agree with the job's own record.
    assert_eq!(
        e.value("tradeloom_jobs", &[("status", "completed")]),
        Some(1.0)
    );
    for pool in ["agent", "backtest", "signals", "timer"] {
        assert_eq!(
            e.value("tradeloom_queue_depth", &[("pool", pool)]),
            Some(0.0),
            "{pool}"
        );
    }
    assert_eq!(
        e.value("tradeloom_run_fills_total", &[("run_id", run_id.as_str())]),
        Some(rows(&dir.join("fills.csv")))
    );
    assert_eq!(
        e.value("tradeloom_kill_switch_engaged", &[("scope", "global")]),
        Some(0.0)
    );
}
