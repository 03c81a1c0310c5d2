//! Every outbound connection of `tradeloom serve` goes through the SSRF guard, and only
//! allow-listed environment variables ever leave the process: each workflow node type, agents'
//! patches, and simulation jobs are pointed at a loopback "recorder" that is not on
//! `--http-allow` and at the cloud metadata address, and the recorder must see nothing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::repo;
use crate::service::Service;

/// The value of the server's secret variable; it must never leave the server.
const SECRET_VALUE: &str = "leak-me-5f2c9a";
/// A variable of the server's environment nobody allow-listed.
const SECRET_VAR: &str = "SERVER_SECRET_TOKEN";
/// A variable the operator allow-lists with `--llm-key-env`.
const ALLOWED_VAR: &str = "TL_E2E_LLM_KEY";
const ALLOWED_VALUE: &str = "allowed-key-81d0";

/// (method, path, authorization header) of every request the recorder received.
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

/// A loopback server that records every request and answers like an OpenAI-compatible LLM (so
/// an agent that reaches it succeeds, and the test sees it).
async fn recorder() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().fallback(
        move |method: axum::http::Method, uri: axum::http::Uri, headers: HeaderMap| {
            let s = s.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                s.lock()
                    .unwrap()
                    .push((method.to_string(), uri.path().to_string(), auth));
                axum::Json(json!({
                    "id": "rec", "object": "chat.completion", "model": "rec",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": "{\"reached\": true}"}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    "data": [],
                }))
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn client() -> reqwest::Client {
    tradeloom_llm::install_crypto_provider();
    reqwest::Client::new()
}

async fn send(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let r = req.send().await.unwrap();
    let code = r.status();
    (code, r.json().await.unwrap_or(Value::Null))
}

/// `host:port` of a `http://host:port` URL.
fn authority(url: &str) -> &str {
    url.trim_start_matches("http://")
}

/// Creates a workflow of `nodes`, runs it once and returns the run view once it is settled.
async fn run_nodes(client: &reqwest::Client, api: &str, name: &str, nodes: Value) -> Value {
    let (code, saved) = send(
        client
            .post(format!("{api}/workflows"))
            .json(&json!({"name": name, "nodes": nodes})),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{name}: {saved}");
    let id = saved["id"].as_str().unwrap();
    let (code, started) = send(
        client
            .post(format!("{api}/workflows/{id}/runs"))
            .json(&json!({"inputs": {}})),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{name}: {started}");
    let run = started["run_id"].as_str().unwrap().to_string();
    wait_settled(client, api, &run).await
}

/// Polls a run until it is terminal (or, with an approval pending, waiting).
async fn wait_settled(client: &reqwest::Client, api: &str, run: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, view) = send(client.get(format!("{api}/workflow-runs/{run}"))).await;
        let status = view["status"].as_str().unwrap_or_default();
        if ["completed", "failed", "cancelled"].contains(&status) {
            return view;
        }
        assert!(Instant::now() < deadline, "run {run} stuck: {view:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn node<'a>(view: &'a Value, id: &str) -> &'a Value {
    view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id)
        .unwrap_or_else(|| panic!("no node {id} in {view:#}"))
}

/// Asserts `id` failed and its error says the SSRF guard refused the URL.
fn assert_refused(view: &Value, id: &str) {
    let n = node(view, id);
    let error = n["error"].as_str().unwrap_or_default();
    assert_eq!(n["status"], "failed", "{id}: {n}");
    assert!(
        error.contains("SSRF guard") && error.contains("blocked"),
        "{id}: the error should name the guard's refusal: {error}"
    );
}

fn simulation_config(base_url: &str, api_key_env: Option<&str>) -> Value {
    let mut model =
        json!({"name": "m", "base_url": base_url, "model": "momentum", "max_retries": 0});
    if let Some(var) = api_key_env {
        model["api_key_env"] = json!(var);
    }
    json!({
        "models": [model],
        "universe": {"path": repo().join("examples/universe")},
        "start_date": "2025-01-02",
        "end_date": "2025-01-03",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_node_type_reaches_a_port_not_allowed_nor_the_metadata_address() {
    let data = TempDir::new().unwrap();
    let (rec, seen) = recorder().await;
    let mock = Service::mock_llm();
    let allow = authority(&mock.url).to_string();
    // Run specs of backtest nodes are read from the examples only.
    let specs = std::fs::canonicalize(repo().join("examples")).unwrap();
    let serve = Service::serve_with(
        data.path(),
        &[
            "--http-allow",
            &allow,
            "--config-dir",
            specs.to_str().unwrap(),
        ],
        &[(SECRET_VAR, SECRET_VALUE)],
    );
    let api = serve.url.as_str();
    let client = client();
    let meta = "http://169.254.169.254";
    let agent = |base_url: String| json!({"model": {"base_url": base_url, "model": "analyst"}, "prompt": "Assess AAPL"});

    // agent: an endpoint on a loopback port not allowed, and the metadata service.
    let view = run_nodes(
        &client,
        api,
        "agent-port",
        json!([
        {"id": "a", "type": "agent", "config": agent(format!("{rec}/v1"))}]),
    )
    .await;
    assert_refused(&view, "a");
    let view = run_nodes(
        &client,
        api,
        "agent-meta",
        json!([
        {"id": "a", "type": "agent", "config": agent(format!("{meta}/latest/meta-data"))}]),
    )
    .await;
    assert_refused(&view, "a");
    // The allowed mock is reachable: the guard lets what the operator allowed through.
    let view = run_nodes(
        &client,
        api,
        "agent-allowed",
        json!([
        {"id": "a", "type": "agent", "config": agent(format!("{}/v1", mock.url))}]),
    )
    .await;
    assert_eq!(node(&view, "a")["status"], "completed", "{view:#}");

    // http: the same two targets.
    let view = run_nodes(
        &client,
        api,
        "http-port",
        json!([
        {"id": "h", "type": "http", "config": {"method": "GET", "url": format!("{rec}/hook")}}]),
    )
    .await;
    assert_refused(&view, "h");
    let view = run_nodes(&client, api, "http-meta", json!([
        {"id": "h", "type": "http", "config": {"method": "GET", "url": format!("{meta}/latest/meta-data/iam")}}])).await;
    assert_refused(&view, "h");

    // simulate: an inline config whose model is on the recorder, and one on the metadata address.
    for (name, base_url) in [
        ("sim-port", format!("{rec}/v1")),
        ("sim-meta", format!("{meta}/v1")),
    ] {
        let view = run_nodes(&client, api, name, json!([
            {"id": "s", "type": "simulate", "config": {"config": simulation_config(&base_url, None)}}])).await;
        let n = node(&view, "s");
        assert_eq!(n["status"], "failed", "{name}: {n}");
        let error = n["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("models[0].base_url") && error.contains("blocked"),
            "{name}: {error}"
        );
    }

    // backtest, transform, wait and hitl make no connection of their own, whatever URLs their
    // configs carry; they run (the hitl expires to its default) and the recorder sees nothing.
    let spec = specs.join("specs/goog_sma_cross.yaml");
    let view = run_nodes(&client, api, "quiet", json!([
        {"id": "bt", "type": "backtest", "config": {"spec_path": spec}},
        {"id": "shape", "type": "transform", "config": {"output": {"url": format!("{rec}/transform")}}},
        {"id": "pause", "type": "wait", "config": {"duration_ms": 50}},
        {"id": "gate", "type": "hitl", "config": {"prompt": format!("see {rec}/hitl"), "expires_after": "1s", "default": "reject"}},
    ])).await;
    for id in ["bt", "shape", "pause", "gate"] {
        assert_eq!(node(&view, id)["status"], "completed", "{id}: {view:#}");
    }

    // An agent adds a node through `patch_workflow`: an agent node on the recorder, an http
    // node on the metadata address. The patch applies (the run's IR version goes up); the node
    // is refused when it runs. (The run fails with it, whatever the patcher still does.)
    let sneaky = [
        (
            "sneaky_agent",
            json!({"type": "agent", "config": agent(format!("{rec}/v1"))}),
        ),
        (
            "sneaky_http",
            json!({"type": "http", "config": {"method": "GET", "url": format!("{meta}/computeMetadata/v1/")}}),
        ),
    ];
    for (id, mut value) in sneaky {
        value["id"] = json!(id);
        let patch = json!([{"op": "add", "path": "/nodes/-", "value": value}]);
        let prompt = format!("Extend the workflow.\n```json\n{patch}\n```\n");
        let view = run_nodes(
            &client,
            api,
            id,
            json!([
            {"id": "p", "type": "agent", "config": {
                "model": {"base_url": format!("{}/v1", mock.url), "model": "patcher"},
                "prompt": prompt, "tools": ["patch_workflow"]}}]),
        )
        .await;
        assert_eq!(view["ir_version"], 2, "{view:#}");
        assert_refused(&view, id);
    }

    // Simulation jobs triggered over the API: refused with 400 naming the field.
    for base_url in [format!("{rec}/v1"), format!("{meta}/v1")] {
        let (code, body) = send(
            client
                .post(format!("{api}/simulate/trigger"))
                .json(&json!({"config": simulation_config(&base_url, None)})),
        )
        .await;
        if code == StatusCode::ACCEPTED {
            // The old behaviour: the job ran; let it reach the recorder before failing below.
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        assert_eq!(code, StatusCode::BAD_REQUEST, "{base_url}: {body}");
        let text = body.to_string();
        assert!(
            text.contains("models[0].base_url") && text.contains("blocked"),
            "{text}"
        );
    }

    // /health probes the current job's endpoints through the guard too; none is the recorder.
    let _ = send(client.get(format!("{api}/health"))).await;
    let seen = seen.lock().unwrap().clone();
    assert!(seen.is_empty(), "the recorder was reached: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allow_listed_key_variables_are_sent() {
    let data = TempDir::new().unwrap();
    let (rec, seen) = recorder().await;
    // The recorder is allowed: this test is about the key, not the address.
    let serve = Service::serve_with(
        data.path(),
        &[
            "--http-allow",
            authority(&rec),
            "--llm-key-env",
            ALLOWED_VAR,
        ],
        &[(SECRET_VAR, SECRET_VALUE), (ALLOWED_VAR, ALLOWED_VALUE)],
    );
    let api = serve.url.as_str();
    let client = client();
    let agent = |var: &str| {
        json!({"model": {"base_url": format!("{rec}/v1"), "model": "m", "api_key_env": var},
               "prompt": "Assess AAPL"})
    };

    // A workflow naming a variable nobody allowed does not compile.
    let (code, body) = send(client.post(format!("{api}/workflows")).json(&json!({
        "name": "leak", "nodes": [{"id": "a", "type": "agent", "config": agent(SECRET_VAR)}]})))
    .await;
    if code == StatusCode::CREATED {
        // The old behaviour: run it, so the recorder shows what was sent.
        let id = body["id"].as_str().unwrap();
        let (_, started) = send(
            client
                .post(format!("{api}/workflows/{id}/runs"))
                .json(&json!({"inputs": {}})),
        )
        .await;
        wait_settled(&client, api, started["run_id"].as_str().unwrap()).await;
    }
    let text = body.to_string();
    assert!(
        !seen
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.2.contains(SECRET_VALUE)),
        "the secret left: {:?}",
        seen.lock().unwrap()
    );
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        text.contains("nodes[0].config.model.api_key_env") && text.contains(SECRET_VAR),
        "{text}"
    );
    assert!(!text.contains(SECRET_VALUE), "{text}");

    // A simulation job naming it is refused at the trigger.
    let (code, body) = send(
        client
            .post(format!("{api}/simulate/trigger"))
            .json(&json!({"config": simulation_config(&format!("{rec}/v1"), Some(SECRET_VAR))})),
    )
    .await;
    if code == StatusCode::ACCEPTED {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let text = body.to_string();
    assert!(
        !seen
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.2.contains(SECRET_VALUE)),
        "the secret left: {:?}",
        seen.lock().unwrap()
    );
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        text.contains("models[0].api_key_env") && text.contains(SECRET_VAR),
        "{text}"
    );
    assert!(!text.contains(SECRET_VALUE), "{text}");

    // An agent's patch naming it is rejected; the node it tried to add never runs.
    let mock = Service::mock_llm();
    drop(serve);
    let serve = Service::serve_with(
        data.path(),
        &[
            "--http-allow",
            &format!("{},{}", authority(&rec), authority(&mock.url)),
            "--llm-key-env",
            ALLOWED_VAR,
        ],
        &[(SECRET_VAR, SECRET_VALUE), (ALLOWED_VAR, ALLOWED_VALUE)],
    );
    let api = serve.url.as_str();
    let patch = json!([{"op": "add", "path": "/nodes/-", "value": {"id": "sneaky", "type": "agent", "config": agent(SECRET_VAR)}}]);
    let view = run_nodes(
        &client,
        api,
        "patch-leak",
        json!([
        {"id": "p", "type": "agent", "config": {
            "model": {"base_url": format!("{}/v1", mock.url), "model": "patcher"},
            "prompt": format!("Extend.\n```json\n{patch}\n```\n"), "tools": ["patch_workflow"]}}]),
    )
    .await;
    assert!(
        !seen
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.2.contains(SECRET_VALUE)),
        "the secret left: {:?}",
        seen.lock().unwrap()
    );
    assert!(
        view["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["id"] != "sneaky"),
        "{view:#}"
    );

    // The allow-listed variable is sent, as `Authorization: Bearer <value>`, by an agent and by
    // an http node's secret header; the stored definition holds only the variable's name.
    let view = run_nodes(
        &client,
        api,
        "allowed",
        json!([
            {"id": "a", "type": "agent", "config": agent(ALLOWED_VAR)},
            {"id": "h", "type": "http", "config": {"method": "POST", "url": format!("{rec}/hook"),
                "headers": {"Authorization": {"env": ALLOWED_VAR, "prefix": "Bearer "}}}},
        ]),
    )
    .await;
    assert_eq!(node(&view, "a")["status"], "completed", "{view:#}");
    assert_eq!(node(&view, "h")["status"], "completed", "{view:#}");
    let (_, workflows) = send(client.get(format!("{api}/workflows"))).await;
    assert!(
        !workflows.to_string().contains(ALLOWED_VALUE),
        "{workflows}"
    );
    let seen = seen.lock().unwrap().clone();
    for path in ["/v1/chat/completions", "/hook"] {
        assert!(
            seen.iter()
                .any(|r| r.1 == path && r.2 == format!("Bearer {ALLOWED_VALUE}")),
            "{path}: {seen:?}"
        );
    }
    assert!(!seen.iter().any(|r| r.2.contains(SECRET_VALUE)), "{seen:?}");
}
