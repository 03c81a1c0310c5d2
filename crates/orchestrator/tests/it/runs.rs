//! Runs end to end: scheduling, conditions, retries, timeouts, approvals, cancellation.

use serde_json::json;
use tradeloom_store::{ApprovalStatus, Decision, NodeStatus, RunStatus};

use crate::backend_tests;
use crate::harness::{Env, Sink, statuses};

backend_tests!(
    diamond_runs_every_node_once,
    false_conditions_skip_their_branch,
    approve_and_reject_take_their_branches,
    cancel_stops_a_waiting_run,
);

async fn diamond_runs_every_node_once(env: Env) {
    let id = env
        .define(json!({"name": "diamond", "inputs": {"n": {"default": 2}}, "nodes": [
            {"id": "a", "type": "transform", "config": {"output": {"x": "{{ inputs.n }}"}}},
            {"id": "b", "type": "transform", "needs": ["a"], "config": {"output": {"left": "{{ a.x }}"}}},
            {"id": "c", "type": "wait", "needs": ["a"], "config": {"duration_ms": 100}},
            {"id": "d", "type": "transform", "needs": ["b", "c"],
             "config": {"output": {"sum": "{{ b.left }}", "waited": "{{ c.waited_ms }}"}}},
        ]}))
        .await;
    let run = env.start(&id, json!({"n": 7})).await;
    let view = env.wait_status(&run, RunStatus::Completed).await;
    for n in &view.nodes {
        assert_eq!(
            (n.status, n.attempts),
            (NodeStatus::Completed, 1),
            "{}",
            n.id
        );
    }
    assert_eq!(
        env.output(&view, "d").await,
        json!({"sum": 7, "waited": 100})
    );
    assert_eq!(view.tokens, 0);
    let events = env.events(&run).await;
    for node in ["a", "b", "c", "d"] {
        let done = events
            .iter()
            .filter(|e| e.kind == "node_completed" && e.node_id.as_deref() == Some(node))
            .count();
        assert_eq!(done, 1, "{node} completed once");
    }
    assert_eq!(events.last().unwrap().kind, "run_finished");
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
}

async fn false_conditions_skip_their_branch(env: Env) {
    let id = env
        .define(json!({"name": "cond", "nodes": [
            {"id": "score", "type": "transform", "config": {"output": {"value": 3}}},
            {"id": "high", "type": "transform", "needs": ["score"], "when": "score.value > 5"},
            {"id": "after_high", "type": "transform", "needs": ["high"]},
            {"id": "low", "type": "transform", "needs": ["score"], "when": "score.value <= 5"},
            {"id": "join", "type": "transform", "needs": ["after_high", "low"]},
            {"id": "mystery", "type": "quantum_leap", "needs": ["low"]},
            {"id": "after_mystery", "type": "transform", "needs": ["mystery"]},
        ]}))
        .await;
    let run = env.start(&id, json!({})).await;
    let view = env.wait_status(&run, RunStatus::Completed).await;
    let s = statuses(&view);
    assert_eq!(s["high"], NodeStatus::Skipped);
    assert_eq!(
        s["after_high"],
        NodeStatus::Skipped,
        "only needs a skipped node"
    );
    assert_eq!(s["low"], NodeStatus::Completed);
    assert_eq!(
        s["join"],
        NodeStatus::Completed,
        "one completed need is enough"
    );
    assert_eq!(
        s["mystery"],
        NodeStatus::Skipped,
        "unknown types are skipped"
    );
    assert_eq!(s["after_mystery"], NodeStatus::Skipped);
    let events = env.events(&run).await;
    let warning = events
        .iter()
        .find(|e| e.kind == "warning")
        .expect("a warning event for the unknown type");
    assert_eq!(warning.node_id.as_deref(), Some("mystery"));
    assert!(
        warning.payload["message"]
            .as_str()
            .unwrap()
            .contains("quantum_leap")
    );
}

async fn approve_and_reject_take_their_branches(env: Env) {
    let id = env
        .define(json!({"name": "review", "nodes": [
            {"id": "a", "type": "transform", "config": {"output": {"qty": 5}}},
            {"id": "review", "type": "hitl", "needs": ["a"],
             "config": {"prompt": "Buy {{ a.qty }}?", "expires_after": "1h", "default": "reject"}},
            {"id": "go", "type": "transform", "needs": ["review"], "when": "review.decision == \"approve\"",
             "config": {"output": {"order": "{{ a.qty }}"}}},
            {"id": "stop", "type": "transform", "needs": ["review"], "when": "review.decision == \"reject\""},
        ]}))
        .await;
    for (decision, ran, skipped) in [
        (Decision::Approve, "go", "stop"),
        (Decision::Reject, "stop", "go"),
    ] {
        let run = env.start(&id, json!({})).await;
        env.wait_status(&run, RunStatus::Waiting).await;
        let pending = env
            .store
            .list_approvals(Some(ApprovalStatus::Pending), Some(&run), 10, 0)
            .await
            .unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].prompt, "Buy 5?");
        let approval = env
            .runtime
            .decide(&pending[0].id, decision, Some("checked".into()), "alice")
            .await
            .unwrap();
        assert_eq!(approval.decided_by.as_deref(), Some("alice"));
        let view = env.wait_status(&run, RunStatus::Completed).await;
        let s = statuses(&view);
        assert_eq!(
            (s[ran], s[skipped]),
            (NodeStatus::Completed, NodeStatus::Skipped)
        );
        let out = env.output(&view, "review").await;
        assert_eq!(out["by"], "alice");
        assert_eq!(out["expired"], false);
        // A second decision is refused and changes nothing.
        let again = env
            .runtime
            .decide(&pending[0].id, Decision::Approve, None, "bob")
            .await
            .unwrap_err();
        assert!(again.to_string().contains("already"), "{again}");
    }
}

async fn cancel_stops_a_waiting_run(env: Env) {
    let id = env
        .define(json!({"name": "cancel-me", "nodes": [
            {"id": "review", "type": "hitl", "config": {"prompt": "?", "expires_after": "1h", "default": "reject"}},
            {"id": "after", "type": "transform", "needs": ["review"]},
        ]}))
        .await;
    let run = env.start(&id, json!({})).await;
    env.wait_status(&run, RunStatus::Waiting).await;
    let approval = env
        .store
        .list_approvals(None, Some(&run), 10, 0)
        .await
        .unwrap()
        .remove(0);
    env.runtime
        .cancel(&run, "ops", Some("market closed".into()))
        .await
        .unwrap();
    let view = env.runtime.view(&run).await.unwrap();
    assert_eq!(view.status, RunStatus::Cancelled);
    assert!(view.nodes.iter().all(|n| n.status == NodeStatus::Skipped));
    assert_eq!(
        env.store.approval(&approval.id).await.unwrap().status,
        ApprovalStatus::Cancelled
    );
    assert!(env.runtime.cancel(&run, "ops", None).await.is_err());
    assert!(
        env.runtime
            .decide(&approval.id, Decision::Approve, None, "x")
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retries_back_off_then_fail_the_run() {
    crate::harness::run_sqlite(|env| async move {
        let sink = Sink::default();
        let base = sink.serve().await;
        let id = env
            .define(json!({"name": "flaky", "nodes": [
                {"id": "call", "type": "http", "retries": {"max_attempts": 3, "backoff_ms": 100},
                 "config": {"method": "POST", "url": format!("{base}/fail/99"), "body": {"x": 1}}},
                {"id": "after", "type": "transform", "needs": ["call"]},
            ]}))
            .await;
        let run = env.start(&id, json!({})).await;
        let view = env.wait_status(&run, RunStatus::Failed).await;
        let call = view.nodes.iter().find(|n| n.id == "call").unwrap();
        assert_eq!((call.status, call.attempts), (NodeStatus::Failed, 3));
        assert!(
            call.error.as_deref().unwrap().contains("HTTP 500"),
            "{:?}",
            call.error
        );
        assert_eq!(sink.count("/fail/99"), 3, "one request per attempt");
        // Settled with the run, as a cancel would.
        assert_eq!(statuses(&view)["after"], NodeStatus::Skipped);
        assert!(
            view.error
                .as_deref()
                .unwrap()
                .contains("`call` failed after 3 attempt(s)")
        );
        let retries = env
            .events(&run)
            .await
            .iter()
            .filter(|e| e.kind == "node_retrying")
            .count();
        assert_eq!(retries, 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_can_succeed() {
    crate::harness::run_sqlite(|env| async move {
        let sink = Sink::default();
        let base = sink.serve().await;
        let id = env
            .define(json!({"name": "flaky-ok", "nodes": [
                {"id": "call", "type": "http", "retries": {"max_attempts": 3, "backoff_ms": 100},
                 "config": {"method": "POST", "url": format!("{base}/fail/1")}},
            ]}))
            .await;
        let run = env.start(&id, json!({})).await;
        let view = env.wait_status(&run, RunStatus::Completed).await;
        let call = view.nodes.iter().find(|n| n.id == "call").unwrap();
        assert_eq!((call.status, call.attempts), (NodeStatus::Completed, 2));
        assert_eq!(env.output(&view, "call").await["status"], 200);
        // Each attempt has its own idempotency key.
        let keys: std::collections::BTreeSet<String> = sink
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.1.clone())
            .collect();
        assert_eq!(keys.len(), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn timeouts_fail_an_attempt() {
    crate::harness::run_sqlite(|env| async move {
        let sink = Sink::default();
        let base = sink.serve().await;
        let id = env
            .define(json!({"name": "slow", "nodes": [
                {"id": "call", "type": "http", "timeout_ms": 150,
                 "retries": {"max_attempts": 2, "backoff_ms": 100},
                 "config": {"method": "POST", "url": format!("{base}/slow")}},
            ]}))
            .await;
        let run = env.start(&id, json!({})).await;
        let view = env.wait_status(&run, RunStatus::Failed).await;
        let call = view.nodes.iter().find(|n| n.id == "call").unwrap();
        assert_eq!(call.attempts, 2);
        assert!(
            call.error
                .as_deref()
                .unwrap()
                .contains("timed out after 150 ms"),
            "{:?}",
            call.error
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ssrf_guard_refuses_private_targets_without_retrying() {
    crate::harness::run_sqlite(|env| async move {
        let id = env
            .define(json!({"name": "ssrf", "nodes": [
                {"id": "call", "type": "http", "retries": {"max_attempts": 3, "backoff_ms": 100},
                 "config": {"method": "GET", "url": "http://169.254.169.254/latest/meta-data/"}},
            ]}))
            .await;
        let run = env.start(&id, json!({})).await;
        let view = env.wait_status(&run, RunStatus::Failed).await;
        let call = view.nodes.iter().find(|n| n.id == "call").unwrap();
        assert_eq!(call.attempts, 1, "a refusal is not retried");
        assert!(
            call.error.as_deref().unwrap().contains("169.254.169.254"),
            "{:?}",
            call.error
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_approvals_take_the_default() {
    crate::harness::run_sqlite(|env| async move {
        let id = env
            .define(json!({"name": "expiring", "nodes": [
                {"id": "review", "type": "hitl", "config": {"prompt": "?", "expires_after": "300ms", "default": "approve"}},
                {"id": "go", "type": "transform", "needs": ["review"], "when": "review.decision == \"approve\""},
            ]}))
            .await;
        let run = env.start(&id, json!({})).await;
        let view = env.wait_status(&run, RunStatus::Completed).await;
        assert_eq!(statuses(&view)["go"], NodeStatus::Completed);
        assert_eq!(view.approvals[0].status, ApprovalStatus::Expired);
        assert_eq!(env.output(&view, "review").await["expired"], true);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_nodes_send_templated_bodies() {
    crate::harness::run_sqlite(|env| async move {
        let sink = Sink::default();
        let base = sink.serve().await;
        let id = env
            .define(json!({"name": "notify", "inputs": {"symbol": {"default": "AAPL"}}, "nodes": [
                {"id": "order", "type": "transform", "config": {"output": {"qty": 10}}},
                {"id": "notify", "type": "http", "needs": ["order"],
                 "config": {"method": "POST", "url": format!("{base}/ok"),
                            "body": {"symbol": "{{ inputs.symbol }}", "qty": "{{ order.qty }}"}}},
            ]}))
            .await;
        let run = env.start(&id, json!({})).await;
        let view = env.wait_status(&run, RunStatus::Completed).await;
        let out = env.output(&view, "notify").await;
        assert_eq!(
            out["body"]["received"],
            json!({"symbol": "AAPL", "qty": 10})
        );
        let key = sink.requests.lock().unwrap()[0].1.clone();
        assert_eq!(key, format!("{run}/notify/1"));
    })
    .await;
}

/// Secret headers are read only through the allow-list when the node runs: a variable that is
/// not on it (a definition stored before the operator narrowed the list) fails the node naming
/// the variable, and nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn secret_headers_name_only_allowed_variables() {
    crate::harness::run_sqlite(|env| async move {
        let sink = Sink::default();
        let base = sink.serve().await;
        for (var, expected) in [
            (
                "HOME",
                "environment variable `HOME` is not on this server's allow-list",
            ),
            (
                "TRADELOOM_SECRET_SURELY_UNSET_7",
                "environment variable `TRADELOOM_SECRET_SURELY_UNSET_7` is not set",
            ),
        ] {
            let id = env
                .define(json!({"name": format!("secret-{var}"), "nodes": [
                    {"id": "notify", "type": "http",
                     "config": {"method": "POST", "url": format!("{base}/ok"),
                                "headers": {"Authorization": {"env": var, "prefix": "Bearer "}}}},
                ]}))
                .await;
            let run = env.start(&id, json!({})).await;
            let view = env.wait_status(&run, RunStatus::Failed).await;
            let error = view.nodes[0].error.clone().unwrap_or_default();
            assert!(
                error.contains("headers.Authorization") && error.contains(expected),
                "{error}"
            );
        }
        assert_eq!(sink.count("/ok"), 0);
    })
    .await;
}
