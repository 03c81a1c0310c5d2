//! A real local model (issue 19): a simulation job and the trading-team workflow against an
//! OpenAI-compatible server given by `TRADELOOM_TEST_LLM_URL` (its API root, e.g.
//! `http://127.0.0.1:8080/v1` for `llama-server`). Without the variable each test prints a note
//! and returns; with it set and the server unreachable they fail.
//!
//! `TRADELOOM_TEST_LLM_MODEL` names the model (default: for the simulation the first model the
//! server lists at `/models`; for the workflow each agent's own model when the server lists it —
//! mock-llm's roles — else that first model). `TRADELOOM_TEST_LLM_TIMEOUT_MS` bounds one model
//! request (default 600000: a 0.5B model on two CPU cores answers a long prompt in tens of
//! seconds), `TRADELOOM_TEST_LLM_MAX_TOKENS` its `max_tokens` (default 1024), and
//! `TRADELOOM_TEST_LLM_TOOL_CHOICE` sets the simulation models' `tool_choice`.
//! Each test gives up after 30 minutes. Outcomes the model decides are not asserted: a day may
//! fail (with its reason recorded) and the risk manager may veto the trade; what must hold is that
//! every model-day and the run end, and nothing crashes or hangs. The trading team's run must end
//! `completed`, on the approve or the veto path: an agent without a usable answer takes its
//! `fallback` (the risk manager's refuses), and every node that did records why.
//!
//! mock-llm stands in for a model that never answers usable JSON:
//! `TRADELOOM_TEST_LLM_URL=http://127.0.0.1:8089/v1 TRADELOOM_TEST_LLM_MODEL=prose`.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::repo;
use crate::service::Service;
use crate::simulate::{client, get, post};

/// How long a whole test may take.
const TEST_LIMIT: Duration = Duration::from_secs(30 * 60);

/// The server under test, from the environment.
struct LocalLlm {
    /// The API root, without a trailing `/`.
    url: String,
    /// The models it lists at `GET /models`, in its order.
    listed: Vec<String>,
    /// `TRADELOOM_TEST_LLM_MODEL`.
    chosen: Option<String>,
    /// `TRADELOOM_TEST_LLM_TIMEOUT_MS`: each model request's `timeout_ms`.
    timeout_ms: u64,
    /// `TRADELOOM_TEST_LLM_MAX_TOKENS`: each model request's `max_tokens`.
    max_tokens: u64,
}

impl LocalLlm {
    /// The server of `TRADELOOM_TEST_LLM_URL`; `None` (with a note) when it is unset. Panics when
    /// it is set and the server does not answer `GET /models`.
    async fn from_env(test: &str) -> Option<LocalLlm> {
        let Some(url) = std::env::var("TRADELOOM_TEST_LLM_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
        else {
            eprintln!(
                "note: {test} skipped: TRADELOOM_TEST_LLM_URL is not set (an OpenAI-compatible \
                 API root such as http://127.0.0.1:8080/v1; see docs/src/simulations.md, \
                 \"A real local model\")"
            );
            return None;
        };
        let url = url.trim().trim_end_matches('/').to_string();
        let response = client()
            .get(format!("{url}/models"))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!("TRADELOOM_TEST_LLM_URL={url} is set but the server does not answer: {e}")
            });
        assert!(
            response.status().is_success(),
            "TRADELOOM_TEST_LLM_URL={url}: GET /models answered {}",
            response.status()
        );
        let models: Value = response.json().await.unwrap_or_else(|e| {
            panic!("TRADELOOM_TEST_LLM_URL={url}: GET /models is not JSON: {e}")
        });
        let listed: Vec<String> = models["data"]
            .as_array()
            .map(|data| {
                data.iter()
                    .filter_map(|m| m["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let chosen = std::env::var("TRADELOOM_TEST_LLM_MODEL")
            .ok()
            .filter(|m| !m.is_empty());
        assert!(
            chosen.is_some() || !listed.is_empty(),
            "TRADELOOM_TEST_LLM_URL={url} lists no model at /models: set TRADELOOM_TEST_LLM_MODEL"
        );
        let timeout_ms = number("TRADELOOM_TEST_LLM_TIMEOUT_MS", 600_000);
        let max_tokens = number("TRADELOOM_TEST_LLM_MAX_TOKENS", 1024);
        eprintln!("{test}: {url}, models listed: {listed:?}, chosen: {chosen:?}");
        Some(LocalLlm {
            url,
            listed,
            chosen,
            timeout_ms,
            max_tokens,
        })
    }

    /// The model every simulation model uses.
    fn model(&self) -> String {
        self.chosen
            .clone()
            .unwrap_or_else(|| self.listed[0].clone())
    }

    /// The model of a workflow agent whose definition names `wanted`.
    fn agent_model(&self, wanted: &str) -> String {
        match &self.chosen {
            Some(chosen) => chosen.clone(),
            None if self.listed.iter().any(|m| m == wanted) => wanted.to_string(),
            None => self.listed[0].clone(),
        }
    }

    /// `host:port` of the server, for `serve --http-allow`.
    fn authority(&self) -> String {
        let url = reqwest::Url::parse(&self.url)
            .unwrap_or_else(|e| panic!("TRADELOOM_TEST_LLM_URL={} is not a URL: {e}", self.url));
        let host = url.host_str().expect("a host").to_string();
        let port = url.port_or_known_default().expect("a port");
        if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    }

    /// `tradeloom serve` whose outbound requests may reach this server.
    fn serve(&self, data: &std::path::Path) -> Service {
        Service::serve_with(
            data,
            &["--http-allow", &self.authority()],
            &[("MAX_CONCURRENT_JOBS", "1")],
        )
    }
}

/// The whole number in variable `name`, or `default` when it is unset.
fn number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name} `{text}` is not a whole number")),
        Err(_) => default,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_llm_simulation_ends_every_model_day_completed_or_failed_with_a_reason() {
    let Some(llm) =
        LocalLlm::from_env("local_llm_simulation_ends_every_model_day_completed_or_failed").await
    else {
        return;
    };
    let data = TempDir::new().unwrap();
    let api = llm.serve(data.path());
    let http = client();
    let mut model = json!({
        "base_url": llm.url,
        "model": llm.model(),
        "timeout_ms": llm.timeout_ms,
        "max_retries": 1,
        "temperature": 0,
        "max_tokens": llm.max_tokens,
    });
    if let Ok(choice) = std::env::var("TRADELOOM_TEST_LLM_TOOL_CHOICE") {
        model["tool_choice"] = json!(choice);
    }
    let models: Vec<Value> = ["local-a", "local-b"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut m = model.clone();
            m["name"] = json!(name);
            // Two samplings of one model: greedy, and a little warmer.
            m["temperature"] = json!(if i == 0 { 0.0 } else { 0.7 });
            m
        })
        .collect();
    let config = json!({
        "models": models,
        "universe": {"path": repo().join("examples/universe")},
        "symbols": ["AAA", "BBB", "CCC"],
        "start_date": "2025-01-02",
        "end_date": "2025-01-06",
        "max_steps": 8,
        "max_tool_errors": 3,
        // One model at a time: a CPU server answers one request at a time anyway, and queued
        // requests would spend their timeout waiting.
        "max_parallel_models": 1,
    });
    let started = Instant::now();
    let (code, trigger) = post(
        &http,
        format!("{}/simulate/trigger", api.url),
        &json!({"config": config}),
    )
    .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{trigger}");
    let job_id = trigger["job_id"].as_str().unwrap().to_string();

    let status = loop {
        let (code, status) = get(
            &http,
            format!("{}/simulate/status/{job_id}?details_limit=100", api.url),
        )
        .await;
        assert_eq!(code, StatusCode::OK, "{status}");
        let state = status["status"].as_str().unwrap().to_string();
        if ["completed", "partial", "failed"].contains(&state.as_str()) {
            break status;
        }
        assert!(
            ["pending", "running"].contains(&state.as_str()),
            "job {job_id} is `{state}`: {status:#}"
        );
        assert!(
            started.elapsed() < TEST_LIMIT,
            "job {job_id} still `{state}` after {TEST_LIMIT:?}: {:#}",
            status["progress"]
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };

    let progress = &status["progress"];
    eprintln!(
        "job {job_id} {} in {:.0} s: {progress}",
        status["status"],
        started.elapsed().as_secs_f64()
    );
    assert_eq!(progress["total_model_days"], 6, "{status:#}");
    assert_eq!(
        progress["completed"].as_u64().unwrap() + progress["failed"].as_u64().unwrap(),
        6,
        "every model-day ends completed or failed: {progress}"
    );
    let details = status["details"].as_array().unwrap();
    assert_eq!(details.len(), 6, "{status:#}");
    for day in details {
        eprintln!(
            "  {} {} {}: steps {}, tool calls {} ({} failed), {} ms{}",
            day["model"],
            day["date"],
            day["status"],
            day["steps"],
            day["tool_calls"],
            day["tool_errors"],
            day["duration_ms"],
            day["error"]
                .as_str()
                .map(|e| format!(", error: {e}"))
                .unwrap_or_default()
        );
        match day["status"].as_str().unwrap() {
            "completed" => assert!(day["portfolio_value"].is_string(), "{day}"),
            "failed" => assert!(
                day["error"].as_str().is_some_and(|e| !e.trim().is_empty()),
                "a failed model-day records why: {day}"
            ),
            other => panic!("model-day ended `{other}`: {day}"),
        }
    }
    // What completed is readable as results, and the leaderboard ranks both models.
    let (code, results) = get(&http, format!("{}/results?job_id={job_id}", api.url)).await;
    assert_eq!(code, StatusCode::OK, "{results}");
    assert_eq!(results["total"], progress["completed"], "{results}");
    let (code, board) = get(
        &http,
        format!("{}/results/leaderboard?job_id={job_id}", api.url),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{board}");
    assert_eq!(board["models"].as_array().unwrap().len(), 2, "{board}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_llm_trading_team_completes_with_every_fallback_recorded() {
    let Some(llm) =
        LocalLlm::from_env("local_llm_trading_team_completes_with_every_fallback_recorded").await
    else {
        return;
    };
    let data = TempDir::new().unwrap();
    let api = llm.serve(data.path());
    let http = client();

    // The shipped example, its agents on this server with room for a slow model.
    let path = repo().join("examples/workflows/trading-team.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut definition = tradeloom_flow::parse_definition(&text, "trading-team.yaml")
        .unwrap()
        .to_json_value();
    let mut agents = Vec::new();
    for node in definition["nodes"].as_array_mut().unwrap() {
        if node["type"] != "agent" {
            continue;
        }
        agents.push(node["id"].as_str().unwrap().to_string());
        assert!(
            node["config"]["fallback"].is_object(),
            "every agent of the example has a fallback: {node}"
        );
        let model = &mut node["config"]["model"];
        let wanted = model["model"].as_str().unwrap().to_string();
        model["base_url"] = json!(llm.url);
        model["model"] = json!(llm.agent_model(&wanted));
        model["timeout_ms"] = json!(llm.timeout_ms.min(3_600_000));
        model["max_retries"] = json!(1);
        model["max_tokens"] = json!(llm.max_tokens);
        // The node's attempt limit covers its model calls and tools.
        node["timeout_ms"] = json!(llm.timeout_ms.saturating_mul(4).min(86_400_000));
    }
    assert_eq!(agents.len(), 9, "the trading team has nine agents");

    let (code, created) = post(&http, format!("{}/workflows", api.url), &definition).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let workflow = created["id"].as_str().unwrap();
    let (code, started) = post(
        &http,
        format!("{}/workflows/{workflow}/runs", api.url),
        &json!({"inputs": {"symbol": "AAA", "as_of": "2025-03-05"}}),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{started}");
    let run = started["run_id"].as_str().unwrap().to_string();

    let begun = Instant::now();
    let mut approved = false;
    let view = loop {
        let (code, view) = get(&http, format!("{}/workflow-runs/{run}", api.url)).await;
        assert_eq!(code, StatusCode::OK, "{view}");
        let status = view["status"].as_str().unwrap().to_string();
        match status.as_str() {
            "completed" => break view,
            "waiting" if !approved => {
                let (code, pending) =
                    get(&http, format!("{}/approvals?status=pending", api.url)).await;
                assert_eq!(code, StatusCode::OK, "{pending}");
                let mine: Vec<&Value> = pending["approvals"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|a| a["run_id"] == run.as_str())
                    .collect();
                assert_eq!(mine.len(), 1, "{pending:#}");
                eprintln!("approving: {}", mine[0]["prompt"]);
                let (code, decided) = post(
                    &http,
                    format!(
                        "{}/approvals/{}/decide",
                        api.url,
                        mine[0]["id"].as_str().unwrap()
                    ),
                    &json!({"decision": "approve", "by": "local-llm-test", "comment": "go"}),
                )
                .await;
                assert_eq!(code, StatusCode::OK, "{decided}");
                approved = true;
            }
            "failed" | "cancelled" => panic!("run {run} ended `{status}`: {view:#}"),
            _ => {}
        }
        assert!(
            begun.elapsed() < TEST_LIMIT,
            "run {run} still `{status}` after {TEST_LIMIT:?}: {view:#}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };

    let node_status = |id: &str| -> String {
        view["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .and_then(|n| n["status"].as_str())
            .unwrap_or_else(|| panic!("no node {id}: {view:#}"))
            .to_string()
    };
    let path: Vec<String> = ["risk", "vetoed", "review", "order", "stop"]
        .iter()
        .map(|id| format!("{id}={}", node_status(id)))
        .collect();
    eprintln!(
        "run {run} completed in {:.0} s: {}",
        begun.elapsed().as_secs_f64(),
        path.join(" ")
    );
    assert_eq!(node_status("risk"), "completed", "{view:#}");
    // Each agent answered or fell back; one that fell back says why, in its output and in its
    // `node_completed` event.
    let mut fell_back = Vec::new();
    for id in &agents {
        assert_eq!(node_status(id), "completed", "{view:#}");
        let node = view["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id.as_str())
            .unwrap();
        let hash = node["output"].as_str().unwrap();
        let (code, blob) = get(&http, format!("{}/blobs/{hash}", api.url)).await;
        assert_eq!(code, StatusCode::OK, "{blob}");
        let output = &blob["content"];
        if output["fallback"] == true {
            let reason = output["fallback_reason"].as_str().unwrap_or_default();
            assert!(
                !reason.trim().is_empty(),
                "{id} fell back without a reason: {output}"
            );
            assert!(
                node["error"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("completed with its fallback: ")),
                "{node}"
            );
            fell_back.push(format!("{id} ({reason})"));
        }
    }
    eprintln!("fell back: {fell_back:?}");
    let (code, events) = get(&http, format!("{}/workflow-runs/{run}/events", api.url)).await;
    assert_eq!(code, StatusCode::OK, "{events}");
    let marked = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "node_completed" && e["payload"]["fallback"] == true)
        .count();
    assert_eq!(marked, fell_back.len(), "{events:#}");
    if approved {
        // The risk manager let it through and the human approved: the order node ran.
        assert_eq!(node_status("review"), "completed", "{view:#}");
        assert_eq!(node_status("order"), "completed", "{view:#}");
        assert_eq!(node_status("stop"), "skipped", "{view:#}");
    } else {
        // The risk manager vetoed: no approval was asked for.
        assert_eq!(node_status("vetoed"), "completed", "{view:#}");
        assert_eq!(node_status("review"), "skipped", "{view:#}");
    }
}
