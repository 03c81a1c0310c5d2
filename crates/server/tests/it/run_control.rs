//! Pausing and resuming workflow runs, and run priorities, over real HTTP on loopback with keys:
//! the statuses and events the API shows, the 409s, the 422 of a bad priority.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use tradeloom_orchestrator::{Runtime, RuntimeConfig};
use tradeloom_queue::InMemoryQueue;
use tradeloom_server::AuthMode;
use tradeloom_store::Role;

use crate::harness::{key, read};

struct Api {
    base: String,
    key: String,
    admin: String,
    c: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let (status, _, body) = self.post_as(&self.key, path, body).await;
        (status, body)
    }

    /// POSTs `body` with API key `key`: status, headers, JSON body.
    async fn post_as(
        &self,
        key: &str,
        path: &str,
        body: &Value,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let r = self
            .c
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .unwrap();
        let (status, headers, text) = read(r).await;
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    async fn get(&self, path: &str) -> Value {
        let r = self
            .c
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap();
        let (status, _, text) = read(r).await;
        assert_eq!(status, StatusCode::OK, "{path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Creates the workflow; its id.
    async fn workflow(&self, definition: Value) -> String {
        let (status, body) = self.post("/workflows", &definition).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    async fn wait_status(&self, run: &str, status: &str) -> Value {
        for _ in 0..400 {
            let v = self.get(&format!("/workflow-runs/{run}")).await;
            if v["status"] == status {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("run {run} never became {status}");
    }
}

async fn api() -> Api {
    api_with(AuthMode::Required).await
}

async fn api_with(auth: AuthMode) -> Api {
    let (state, store, dir) = crate::harness::state().await;
    let runtime = Runtime::new(
        store.clone(),
        Arc::new(InMemoryQueue::new()),
        RuntimeConfig::new(dir.path().join("data")),
        None,
    )
    .unwrap();
    runtime.start().await.unwrap();
    let state = state.with_auth(auth).with_runtime(runtime);
    let key = key(store.as_ref(), "ops", Role::Operator).await;
    let admin = crate::harness::key(store.as_ref(), "root", Role::Admin).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(tradeloom_server::serve(
        listener,
        state,
        std::future::pending(),
    ));
    Api {
        base,
        key,
        admin,
        c: reqwest::Client::new(),
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_paused_and_resumed_over_http() {
    let api = api().await;
    let workflow = api
        .workflow(json!({"name": "pausable", "nodes": [
            {"id": "w", "type": "wait", "config": {"duration_ms": 200}},
            {"id": "after", "type": "transform", "needs": ["w"]},
        ]}))
        .await;
    let (status, started) = api
        .post(&format!("/workflows/{workflow}/runs"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    assert_eq!(started["priority"], "normal");
    let run = started["run_id"].as_str().unwrap().to_string();

    let (status, paused) = api
        .post(&format!("/workflow-runs/{run}/pause"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["status"], "paused");
    // Pausing again, or resuming a run that is not paused, is a 409 naming the state.
    let (status, again) = api
        .post(&format!("/workflow-runs/{run}/pause"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert_eq!(again["error"], "invalid_run_state");
    assert_eq!(again["details"]["status"], "paused");
    assert_eq!(
        again["details"]["allowed_from"],
        json!(["pending", "running", "waiting"])
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let view = api.get(&format!("/workflow-runs/{run}")).await;
    assert_eq!(view["status"], "paused");
    let listed = api.get("/workflow-runs?status=paused").await;
    assert_eq!(listed["runs"][0]["run_id"], run.as_str());
    assert_eq!(listed["runs"][0]["status"], "paused");

    let (status, resumed) = api
        .post(&format!("/workflow-runs/{run}/resume"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_ne!(resumed["status"], "paused");
    api.wait_status(&run, "completed").await;
    let events = api.get(&format!("/workflow-runs/{run}/events")).await;
    let kinds: Vec<(&str, &Value)> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "run_paused" || e["kind"] == "run_resumed")
        .map(|e| (e["kind"].as_str().unwrap(), &e["payload"]["by"]))
        .collect();
    assert_eq!(
        kinds,
        [
            ("run_paused", &json!("ops")),
            ("run_resumed", &json!("ops"))
        ],
        "journaled with the calling key's name"
    );

    // A finished run is neither paused nor resumed.
    for action in ["pause", "resume"] {
        let (status, body) = api
            .post(&format!("/workflow-runs/{run}/{action}"), &json!({}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{action}: {body}");
        assert_eq!(body["error"], "invalid_run_state");
        assert_eq!(body["details"]["status"], "completed");
        assert!(
            body["message"].as_str().unwrap().contains("is completed"),
            "{body}"
        );
    }
    let (status, body) = api
        .post("/workflow-runs/no-such-run/pause", &json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "run_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_starts_at_the_priority_asked_and_a_bad_one_is_422() {
    let api = api().await;
    let workflow = api
        .workflow(json!({"name": "urgent", "nodes": [{"id": "t", "type": "transform"}]}))
        .await;
    let (status, started) = api
        .post(
            &format!("/workflows/{workflow}/runs"),
            &json!({"priority": "high"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    assert_eq!(started["priority"], "high");
    let run = started["run_id"].as_str().unwrap();
    let view = api.wait_status(run, "completed").await;
    assert_eq!(view["priority"], "high");
    let listed = api.get("/workflow-runs").await;
    assert_eq!(listed["runs"][0]["priority"], "high");

    for bad in [json!("urgent"), json!(1), json!("HIGH")] {
        let (status, body) = api
            .post(
                &format!("/workflows/{workflow}/runs"),
                &json!({"priority": bad}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert_eq!(body["error"], "invalid_request");
        assert_eq!(body["details"]["field"], "priority");
        assert!(
            body["message"].as_str().unwrap().starts_with("priority:"),
            "{body}"
        );
    }
    // Nothing was started by the refused requests.
    assert_eq!(
        api.get("/workflow-runs").await["runs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_over_a_workflow_limit_is_queued_or_refused_with_429() {
    let api = api().await;
    let workflow = api
        .workflow(json!({"name": "one-at-a-time", "limits": {"max_concurrent_runs": 1}, "nodes": [
            {"id": "review", "type": "hitl", "config": {"prompt": "?", "expires_after": "1h", "default": "reject"}},
        ]}))
        .await;
    let runs = format!("/workflows/{workflow}/runs");
    let (status, first) = api.post(&runs, &json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_ne!(first["status"], "queued");
    let first = first["run_id"].as_str().unwrap().to_string();
    api.wait_status(&first, "waiting").await;

    let (status, second) = api.post(&runs, &json!({"on_limit": "queue"})).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(second["status"], "queued");
    let second = second["run_id"].as_str().unwrap().to_string();
    let events = api.get(&format!("/workflow-runs/{second}/events")).await;
    let queued = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "run_queued")
        .expect("a run_queued event");
    assert_eq!(queued["payload"]["limit"], "workflow");

    let (status, headers, refused) = api
        .post_as(&api.key, &runs, &json!({"on_limit": "reject"}))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{refused}");
    assert_eq!(refused["error"], "concurrency_limit");
    assert_eq!(
        (
            &refused["details"]["limit"],
            &refused["details"]["max_concurrent_runs"],
            &refused["details"]["active"]
        ),
        (&json!("workflow"), &json!(1), &json!(1))
    );
    assert_eq!(headers["retry-after"], "5");
    let (status, bad) = api.post(&runs, &json!({"on_limit": "wait"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    assert_eq!(bad["details"]["field"], "on_limit");
    let listed = api.get("/workflow-runs").await;
    assert_eq!(
        listed["runs"].as_array().unwrap().len(),
        2,
        "the refused starts created nothing"
    );

    // The first run ends: the queued one starts.
    let (status, _) = api
        .post(&format!("/workflow-runs/{first}/cancel"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    api.wait_status(&second, "waiting").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_limit_is_set_at_creation_and_holds_its_runs_back() {
    let api = api().await;
    let (status, _, bad) = api
        .post_as(
            &api.admin,
            "/keys",
            &json!({"name": "bot", "role": "operator", "max_concurrent_runs": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    assert_eq!(bad["details"]["field"], "max_concurrent_runs");
    let (status, _, created) = api
        .post_as(
            &api.admin,
            "/keys",
            &json!({"name": "bot", "role": "operator", "max_concurrent_runs": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["max_concurrent_runs"], 1);
    let bot = created["key"].as_str().unwrap().to_string();

    let workflow = api
        .workflow(json!({"name": "gate", "nodes": [
            {"id": "review", "type": "hitl", "config": {"prompt": "?", "expires_after": "1h", "default": "reject"}},
        ]}))
        .await;
    let runs = format!("/workflows/{workflow}/runs");
    let (status, _, first) = api.post_as(&bot, &runs, &json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_ne!(first["status"], "queued");
    let (status, _, second) = api.post_as(&bot, &runs, &json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(second["status"], "queued");
    let (status, _, refused) = api
        .post_as(&bot, &runs, &json!({"on_limit": "reject"}))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{refused}");
    assert_eq!(refused["details"]["limit"], "api_key");
    // Another key is not held back by the bot's limit.
    let (status, other) = api.post(&runs, &json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    assert_ne!(other["status"], "queued");
}

/// Debian's chromium, if installed.
fn chromium() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|p| p.is_file())
}

/// The page at `url` as headless chromium renders it once its scripts have run.
async fn rendered(chromium: &std::path::Path, url: &str) -> String {
    let mut command = std::process::Command::new(chromium);
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--virtual-time-budget=5000",
        "--dump-dom",
        url,
    ]);
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "chromium failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The dashboard's run page in a real browser (headless chromium; skipped with a note when it is
/// not installed): `Pause run` for a waiting run, `Resume run` once it is paused, neither once
/// it has finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_page_offers_pause_then_resume_in_a_browser() {
    let Some(chromium) = chromium() else {
        eprintln!("note: chromium is not installed; skipping the dashboard browser test");
        return;
    };
    let api = api_with(AuthMode::Off).await;
    let workflow = api
        .workflow(json!({"name": "browsed", "nodes": [
            {"id": "review", "type": "hitl", "config": {"prompt": "?", "expires_after": "1h", "default": "reject"}},
        ]}))
        .await;
    let (status, started) = api
        .post(&format!("/workflows/{workflow}/runs"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let run = started["run_id"].as_str().unwrap().to_string();
    api.wait_status(&run, "waiting").await;
    let page = format!("{}/#/wruns/{run}", api.base);

    let dom = rendered(&chromium, &page).await;
    assert!(dom.contains(r#"id="pause-run""#), "{dom}");
    assert!(!dom.contains(r#"id="resume-run""#), "{dom}");
    let (status, _) = api
        .post(&format!("/workflow-runs/{run}/pause"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let dom = rendered(&chromium, &page).await;
    assert!(dom.contains(r#"id="resume-run""#), "{dom}");
    assert!(!dom.contains(r#"id="pause-run""#), "{dom}");
    let (status, _) = api
        .post(&format!("/workflow-runs/{run}/cancel"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let dom = rendered(&chromium, &page).await;
    assert!(
        !dom.contains(r#"id="resume-run""#) && !dom.contains(r#"id="pause-run""#),
        "{dom}"
    );
}

/// An agent node naming an agent that is not registered keeps a run from starting, and keeps
/// a patch that adds one from applying: the same 422 `unresolved_reference` naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_agent_refuses_a_start_and_a_patch_alike() {
    let api = api().await;
    let ghost =
        json!({"id": "ghost", "type": "agent", "config": {"agent": "nobody", "prompt": "hi"}});
    let ghostly = api
        .workflow(json!({"name": "ghostly", "nodes": [ghost]}))
        .await;
    let (status, start) = api
        .post(&format!("/workflows/{ghostly}/runs"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{start}");
    assert_eq!(start["error"], "unresolved_reference");

    let gate = api
        .workflow(
            json!({"name": "gate", "limits": {"max_agent_nodes": 1, "max_patch_depth": 1},
            "nodes": [{"id": "review", "type": "hitl",
                       "config": {"prompt": "?", "expires_after": "1h", "default": "reject"}}]}),
        )
        .await;
    let (status, started) = api
        .post(&format!("/workflows/{gate}/runs"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let run = started["run_id"].as_str().unwrap().to_string();
    api.wait_status(&run, "waiting").await;
    let (status, patched) = api
        .post(
            &format!("/workflow-runs/{run}/patch"),
            &json!([{"op": "add", "path": "/nodes/-", "value": ghost}]),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{patched}");
    assert_eq!(patched["error"], start["error"], "{patched}");
    let reason = patched["details"]["errors"][0].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("nodes[1].config.agent: `nobody`: no agent `nobody`"),
        "{patched}"
    );
    let view = api.get(&format!("/workflow-runs/{run}")).await;
    assert_eq!(view["ir_version"], 1, "nothing changed: {view}");
}
