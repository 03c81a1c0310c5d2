//! `/workflows` over real HTTP: compile on create, content-addressed versions, every problem
//! reported with 422, conflicts and deletes.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::service::Service;
use crate::{stdout, tradeloom};

fn diamond(extra_output: i64) -> Value {
    json!({
        "name": "diamond",
        "nodes": [
            {"id": "a", "type": "transform", "config": {"output": {"x": 1}}},
            {"id": "b", "type": "transform", "needs": ["a"], "config": {"output": {"y": "{{ a.x }}"}}},
            {"id": "c", "type": "wait", "needs": ["a"], "config": {"duration_ms": 10}},
            {"id": "d", "type": "transform", "needs": ["b", "c"], "config": {"output": {"z": extra_output}}}
        ]
    })
}

fn client() -> reqwest::Client {
    tradeloom_llm::install_crypto_provider();
    reqwest::Client::new()
}

async fn send(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let r = req.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_definitions_are_compiled_and_versioned() {
    let data = TempDir::new().unwrap();
    let api = Service::serve(data.path(), "1");
    let c = client();
    let url = format!("{}/workflows", api.url);

    let (code, created) = send(c.post(&url).json(&diamond(1))).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(created["version"], 1);
    let id = created["id"].as_str().unwrap().to_string();
    // The API's content address is the one `flow validate` prints for the same definition.
    let file = data.path().join("diamond.json");
    std::fs::write(&file, diamond(1).to_string()).unwrap();
    let cli = tradeloom(
        data.path(),
        &["flow", "validate", file.to_str().unwrap(), "--json"],
    );
    let cli: Value = serde_json::from_str(&stdout(&cli)).unwrap();
    assert_eq!(created["ir_hash"], cli["ir_hash"]);

    let (code, same) = send(c.put(format!("{url}/{id}")).json(&diamond(1))).await;
    assert_eq!(
        (code, &same["version"], &same["changed"]),
        (StatusCode::OK, &json!(1), &json!(false))
    );
    let (code, v2) = send(c.put(format!("{url}/{id}")).json(&diamond(2))).await;
    assert_eq!(
        (code, &v2["version"], &v2["changed"]),
        (StatusCode::OK, &json!(2), &json!(true))
    );
    assert_ne!(v2["ir_hash"], created["ir_hash"]);

    let (code, detail) = send(c.get(format!("{url}/{id}"))).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(detail["latest_version"], 2);
    assert_eq!(detail["definition"]["nodes"][3]["config"]["output"]["z"], 2);
    assert_eq!(detail["versions"].as_array().unwrap().len(), 2);
    let (code, first) = send(c.get(format!("{url}/{id}/versions/1"))).await;
    assert_eq!(
        (code, &first["ir_hash"]),
        (StatusCode::OK, &created["ir_hash"])
    );
    let (code, e) = send(c.get(format!("{url}/{id}/versions/7"))).await;
    assert_eq!(
        (code, e["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("version_not_found"))
    );

    let (code, e) = send(c.post(&url).json(&diamond(3))).await;
    assert_eq!(
        (code, e["error"].as_str()),
        (StatusCode::CONFLICT, Some("workflow_exists"))
    );

    let (code, list) = send(c.get(&url)).await;
    assert_eq!(
        (code, list["workflows"].as_array().unwrap().len()),
        (StatusCode::OK, 1)
    );

    let (code, _) = send(c.delete(format!("{url}/{id}"))).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (code, e) = send(c.get(format!("{url}/{id}"))).await;
    assert_eq!(
        (code, e["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("workflow_not_found"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_definitions_get_every_problem() {
    let data = TempDir::new().unwrap();
    let api = Service::serve(data.path(), "1");
    let c = client();
    let url = format!("{}/workflows", api.url);
    let bad = json!({
        "name": "bad",
        "nodes": [
            {"id": "a", "type": "transform", "needs": ["c"]},
            {"id": "b", "type": "transform", "needs": ["a", "ghost"]},
            {"id": "c", "type": "transform", "needs": ["b"]}
        ]
    });
    let (code, e) = send(c.post(&url).json(&bad)).await;
    assert_eq!(
        (code, e["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_workflow")),
        "{e}"
    );
    let errors = e["details"]["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|x| x["message"].as_str().unwrap().contains("cycle")),
        "{e}"
    );
    assert!(
        errors.iter().any(|x| x["path"] == "nodes[1].needs[1]"),
        "{e}"
    );
    let (code, e) = send(
        c.post(&url)
            .json(&json!({"name": "x", "nodes": [{"id": "a", "typo": 1}]})),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(
        e["details"]["errors"][0]["path"]
            .as_str()
            .unwrap()
            .starts_with("nodes[0]"),
        "{e}"
    );
    let (code, e) = send(
        c.post(&url)
            .header("content-type", "application/json")
            .body("{\"name\": "),
    )
    .await;
    assert_eq!(
        (code, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_json"))
    );
}

/// One root and `len - 1` transforms that need it.
fn fan_out(len: usize) -> Value {
    let mut nodes = vec![json!({"id": "root", "type": "transform"})];
    nodes.extend(
        (1..len).map(|i| json!({"id": format!("n{i}"), "type": "transform", "needs": ["root"]})),
    );
    json!({"name": "wide", "nodes": nodes})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_workflows_and_patches_get_422_naming_the_limit() {
    let data = TempDir::new().unwrap();
    let api = Service::serve(data.path(), "1");
    let c = client();
    let url = format!("{}/workflows", api.url);

    let (code, e) = send(c.post(&url).json(&fan_out(1_001))).await;
    assert_eq!(
        (code, e["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_workflow")),
        "{e}"
    );
    let error = &e["details"]["errors"][0];
    assert_eq!(
        (&error["code"], &error["path"]),
        (&json!("limit"), &json!("nodes")),
        "{e}"
    );
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("1001 nodes") && message.contains("max_nodes (1000)"),
        "{e}"
    );
    // PUT is held to the same limits.
    let (code, created) = send(c.post(&url).json(&fan_out(3))).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let (code, e) = send(c.put(format!("{url}/{id}")).json(&fan_out(1_001))).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["details"]["errors"][0]["code"], "limit", "{e}");

    // A run waiting for an approval takes patches, up to max_patch_operations of them at once.
    let review = json!({"name": "review", "nodes": [
        {"id": "ask", "type": "hitl", "config": {"prompt": "?", "expires_after": "1h", "default": "reject"}}]});
    let (code, created) = send(c.post(&url).json(&review)).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let (code, run) = send(c.post(format!("{url}/{id}/runs")).json(&json!({}))).await;
    assert_eq!(code, StatusCode::CREATED, "{run}");
    let run = run["run_id"].as_str().unwrap();
    // 5,000 nodes in one patch (about 600 KB: under any request body limit).
    let ops: Vec<Value> = (0..5_000)
        .map(|i| json!({"op": "add", "path": "/nodes/-", "value": {"id": format!("w{i}"), "type": "wait", "needs": ["ask"], "config": {"duration_ms": 5}}}))
        .collect();
    let patch_url = format!("{}/workflow-runs/{run}/patch", api.url);
    let (code, e) = send(c.post(&patch_url).json(&ops)).await;
    assert_eq!(
        (code, e["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("patch_rejected")),
        "{e}"
    );
    let reasons = e["details"]["errors"].to_string();
    assert!(
        reasons.contains("5000 operations") && reasons.contains("max_patch_operations (100)"),
        "{e}"
    );
    assert!(reasons.contains("max_patch_bytes (65536)"), "{e}");
    let (code, e) = send(c.post(&patch_url).json(&ops[..3])).await;
    assert_eq!((code, &e["ir_version"]), (StatusCode::OK, &json!(2)), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_and_flow_validate_take_the_limits_as_flags() {
    let data = TempDir::new().unwrap();
    let file = data.path().join("wide.json");
    std::fs::write(&file, fan_out(1_500).to_string()).unwrap();
    let path = file.to_str().unwrap();
    let out = tradeloom(data.path(), &["flow", "validate", path]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let text = format!("{}{}", stdout(&out), crate::stderr(&out));
    assert!(
        text.contains("1500 nodes") && text.contains("max_nodes (1000)"),
        "{text}"
    );
    let out = tradeloom(
        data.path(),
        &["flow", "validate", path, "--max-workflow-nodes", "2000"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", crate::stderr(&out));

    let out = tradeloom(
        data.path(),
        &["flow", "validate", path, "--max-workflow-nodes", "0"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", crate::stderr(&out));
    assert!(
        crate::stderr(&out).contains("--max-workflow-nodes"),
        "{}",
        crate::stderr(&out)
    );

    let api = Service::serve_with(
        data.path(),
        &[
            "--max-workflow-nodes",
            "5",
            "--max-template-bytes",
            "100000",
        ],
        &[],
    );
    let c = client();
    let url = format!("{}/workflows", api.url);
    let (code, e) = send(c.post(&url).json(&fan_out(6))).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(
        e["details"]["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("max_nodes (5)"),
        "{e}"
    );
    // A template over the default limit is accepted by this server, and its runs (compiled
    // again when they start) use the same limits.
    let long = json!({"name": "long", "nodes": [
        {"id": "a", "type": "transform", "config": {"output": {"text": "x".repeat(50_000)}}}]});
    let (code, created) = send(c.post(&url).json(&long)).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let (code, run) = send(c.post(format!("{url}/{id}/runs")).json(&json!({}))).await;
    assert_eq!(code, StatusCode::CREATED, "{run}");
    let run_url = format!(
        "{}/workflow-runs/{}",
        api.url,
        run["run_id"].as_str().unwrap()
    );
    let mut view = Value::Null;
    for _ in 0..300 {
        view = send(c.get(&run_url)).await.1;
        if view["status"] == "completed" || view["status"] == "failed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(view["status"], "completed", "{view}");
}

/// `GET /workflow-runs/{id}?wait_ms=` answers when the run settles: finished, or waiting for
/// an approval; before that only when `wait_ms` runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_answers_when_the_run_settles() {
    let data = TempDir::new().unwrap();
    let api = Service::serve(data.path(), "1");
    let c = client();
    let url = format!("{}/workflows", api.url);
    let start = |definition: Value| {
        let c = c.clone();
        let url = url.clone();
        async move {
            let (code, created) = send(c.post(&url).json(&definition)).await;
            assert_eq!(code, StatusCode::CREATED, "{created}");
            let id = created["id"].as_str().unwrap().to_string();
            let (code, run) = send(c.post(format!("{url}/{id}/runs")).json(&json!({}))).await;
            assert_eq!(code, StatusCode::CREATED, "{run}");
            run["run_id"].as_str().unwrap().to_string()
        }
    };
    let runs = format!("{}/workflow-runs", api.url);

    // One request, answered once the wait node and the transform after it are done.
    let run = start(json!({"name": "pause", "nodes": [
        {"id": "pause", "type": "wait", "config": {"duration_ms": 300}},
        {"id": "after", "type": "transform", "needs": ["pause"], "config": {"output": {"x": 1}}}]}))
    .await;
    let (code, view) = send(c.get(format!("{runs}/{run}?wait_ms=30000"))).await;
    assert_eq!(code, StatusCode::OK, "{view}");
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(view["nodes"][1]["status"], "completed", "{view}");

    // A run that waits for an approval has settled too.
    let run = start(json!({"name": "gate", "nodes": [
        {"id": "ask", "type": "hitl", "config": {"prompt": "?", "expires_after": "1h", "default": "reject"}}]}))
    .await;
    let (code, view) = send(c.get(format!("{runs}/{run}?wait_ms=30000"))).await;
    assert_eq!(
        (code, view["status"].as_str()),
        (StatusCode::OK, Some("waiting")),
        "{view}"
    );

    // Not settled within wait_ms: the run as it is then.
    let run = start(json!({"name": "long", "nodes": [
        {"id": "pause", "type": "wait", "config": {"duration_ms": 60000}}]}))
    .await;
    let (code, view) = send(c.get(format!("{runs}/{run}?wait_ms=50"))).await;
    assert_eq!(
        (code, view["status"].as_str()),
        (StatusCode::OK, Some("running")),
        "{view}"
    );

    let (code, e) = send(c.get(format!("{runs}/{run}?wait_ms=60001"))).await;
    assert_eq!(
        (code, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_query")),
        "{e}"
    );
    let (code, e) = send(c.get(format!("{runs}/nope?wait_ms=100"))).await;
    assert_eq!(
        (code, e["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("run_not_found")),
        "{e}"
    );
}
