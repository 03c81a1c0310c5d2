//! Deciding approvals over real HTTP with keys: the decider is the calling key, whatever name
//! the request states.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tradeloom_orchestrator::{Runtime, RuntimeConfig};
use tradeloom_queue::InMemoryQueue;
use tradeloom_server::AuthMode;
use tradeloom_store::Role;

use crate::harness::{key, read, state};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_cannot_decide_in_another_approvers_name() {
    let (state, store, dir) = state().await;
    let runtime = Runtime::new(
        store.clone(),
        Arc::new(InMemoryQueue::new()),
        RuntimeConfig::new(dir.path().join("data")),
        None,
    )
    .unwrap();
    runtime.start().await.unwrap();
    let state = state.with_auth(AuthMode::Required).with_runtime(runtime);
    let alice = key(store.as_ref(), "alice", Role::Operator).await;
    let bob = key(store.as_ref(), "bob", Role::Operator).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(tradeloom_server::serve(
        listener,
        state,
        std::future::pending(),
    ));
    let c = reqwest::Client::new();

    let gate = json!({"name": "gate", "nodes": [{"id": "review", "type": "hitl", "config": {
        "prompt": "Trade?", "expires_after": "1h", "default": "reject", "approvers": ["bob"]}}]});
    let (status, _, body) = read(
        c.post(format!("{base}/workflows"))
            .bearer_auth(&alice)
            .json(&gate)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let workflow: Value = serde_json::from_str(&body).unwrap();
    let (status, _, body) = read(
        c.post(format!(
            "{base}/workflows/{}/runs",
            workflow["id"].as_str().unwrap()
        ))
        .bearer_auth(&alice)
        .json(&json!({}))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let run: Value = serde_json::from_str(&body).unwrap();
    let run_id = run["run_id"].as_str().unwrap();
    let mut approval = String::new();
    for _ in 0..200 {
        let (_, _, body) = read(
            c.get(format!("{base}/approvals?status=pending&run_id={run_id}"))
                .bearer_auth(&alice)
                .send()
                .await
                .unwrap(),
        )
        .await;
        let v: Value = serde_json::from_str(&body).unwrap();
        if let Some(id) = v["approvals"][0]["id"].as_str() {
            approval = id.to_string();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!approval.is_empty(), "the run asks for an approval");
    let decide = format!("{base}/approvals/{approval}/decide");

    let (status, headers, body) = read(
        c.post(&decide)
            .bearer_auth(&alice)
            .json(&json!({"decision": "approve", "by": "bob"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403, "alice may not decide as bob: {body}");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "forbidden", "{v}");

    let (status, _, body) = read(
        c.post(&decide)
            .bearer_auth(&bob)
            .json(&json!({"decision": "approve"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["decided_by"], "bob", "{v}");
    let stored = store.approval(&approval).await.unwrap();
    assert_eq!(stored.decided_by.as_deref(), Some("bob"));
}
