//! How a run ends: when one node fails, the run's other open nodes are settled as a cancel
//! settles them (skipped with the reason, running attempts stopped, approvals cancelled), so
//! nothing of a finished run stays `running`, `queued`, `waiting` or `pending`.

use std::time::Duration;

use serde_json::json;
use tradeloom_store::{ApprovalStatus, NodeStatus, RunStatus};

use crate::backend_tests;
use crate::harness::{Env, Sink, statuses};

backend_tests!(a_failed_run_settles_its_open_nodes);

async fn a_failed_run_settles_its_open_nodes(env: Env) {
    let sink = Sink::default();
    let base = sink.serve().await;
    // `boom` fails while `slow` is running, `pause` is queued (a long wait), `review` waits for
    // an approval and `join` is still pending.
    let id = env
        .define(json!({"name": "failing-diamond", "nodes": [
            {"id": "a", "type": "transform", "config": {"output": {"x": 1}}},
            {"id": "slow", "type": "http", "needs": ["a"],
             "config": {"method": "POST", "url": format!("{base}/slow")}},
            {"id": "pause", "type": "wait", "needs": ["a"], "config": {"duration_ms": 600_000}},
            {"id": "review", "type": "hitl", "needs": ["a"],
             "config": {"prompt": "?", "expires_after": "1h", "default": "reject"}},
            {"id": "gate", "type": "wait", "needs": ["a"], "config": {"duration_ms": 300}},
            {"id": "boom", "type": "http", "needs": ["gate"],
             "config": {"method": "POST", "url": format!("{base}/fail/99")}},
            {"id": "join", "type": "transform", "needs": ["slow", "pause", "review", "boom"]},
        ]}))
        .await;
    let run = env.start(&id, json!({})).await;
    let view = env.wait_status(&run, RunStatus::Failed).await;
    let s = statuses(&view);
    assert_eq!(s["a"], NodeStatus::Completed);
    assert_eq!(s["boom"], NodeStatus::Failed);
    for node in ["slow", "pause", "review", "join"] {
        assert_eq!(s[node], NodeStatus::Skipped, "{node}: {s:?}");
        let n = view.nodes.iter().find(|n| n.id == node).unwrap();
        assert_eq!(
            n.error.as_deref(),
            Some("run failed: node `boom` failed"),
            "{node}"
        );
        assert_eq!(n.not_before, None, "{node}");
    }
    assert_eq!(view.tokens, 0, "nothing in flight");
    assert_eq!(view.approvals[0].status, ApprovalStatus::Cancelled);

    // The node counts behind `tradeloom_workflow_nodes{status=...}` show nothing open.
    let counts = env.store.status_counts().await.unwrap();
    for (status, n) in &counts.workflow_nodes {
        if ["running", "queued", "waiting", "pending"].contains(&status.as_str()) {
            assert_eq!(*n, 0, "{status}: {:?}", counts.workflow_nodes);
        }
    }

    // Journaled: one `node_skipped` per settled node, before `run_finished`.
    let events = env.events(&run).await;
    for node in ["slow", "pause", "review", "join"] {
        let e = events
            .iter()
            .find(|e| e.kind == "node_skipped" && e.node_id.as_deref() == Some(node))
            .unwrap_or_else(|| panic!("no node_skipped event for {node}"));
        assert_eq!(e.payload["reason"], "run failed: node `boom` failed");
    }
    assert_eq!(events.last().unwrap().kind, "run_finished");

    // The running attempt of `slow` (its server answers after 2 s) was stopped: its worker
    // lets go of the task well before the answer would come.
    let queue = env.runtime.coordinator().queue().clone();
    let mut leased = usize::MAX;
    for _ in 0..40 {
        leased = queue.stats("http").await.unwrap().leased;
        if leased == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(leased, 0, "the running http attempt still holds its task");
}
