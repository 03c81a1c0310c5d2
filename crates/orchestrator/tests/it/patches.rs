//! Runtime patches from operators and from agents.

use serde_json::{Value, json};
use tradeloom_orchestrator::PatchOutcome;
use tradeloom_store::{ApprovalStatus, Decision, NodeStatus, RunStatus};

use crate::backend_tests;
use crate::harness::{Env, statuses};

backend_tests!(a_patch_adds_nodes_mid_run);

/// a → review (waiting). The patch adds `extra` after `a` and `final` after `review`.
async fn a_patch_adds_nodes_mid_run(env: Env) {
    let id = env.define(gated()).await;
    let run = env.start(&id, json!({})).await;
    env.wait_status(&run, RunStatus::Waiting).await;
    let patch = json!([
        {"op": "add", "path": "/nodes/-", "value": {"id": "extra", "type": "transform", "needs": ["a"],
                                                    "config": {"output": {"double": "{{ a.x }}"}}}},
        {"op": "add", "path": "/nodes/-", "value": {"id": "final", "type": "transform", "needs": ["review"]}},
    ]);
    let outcome = env.runtime.patch(&run, &patch, "ops").await.unwrap();
    assert_eq!(outcome, PatchOutcome::Applied { ir_version: 2 });
    // `extra` is ready at once (its need completed before the patch).
    let mut extra_done = false;
    for _ in 0..200 {
        let v = env.runtime.view(&run).await.unwrap();
        if statuses(&v).get("extra") == Some(&NodeStatus::Completed) {
            extra_done = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(extra_done, "the added node ran while the run waited");
    let approval = env
        .store
        .list_approvals(Some(ApprovalStatus::Pending), Some(&run), 10, 0)
        .await
        .unwrap()
        .remove(0);
    env.runtime
        .decide(&approval.id, Decision::Approve, None, "alice")
        .await
        .unwrap();
    let view = env.wait_status(&run, RunStatus::Completed).await;
    assert_eq!(view.ir_version, 2);
    assert_eq!(statuses(&view)["final"], NodeStatus::Completed);
    assert_eq!(view.patches.len(), 1);
    assert_eq!(view.patches[0].applied_by, "ops");
    assert!(
        env.events(&run)
            .await
            .iter()
            .any(|e| e.kind == "patch_applied")
    );
}

fn gated() -> Value {
    json!({"name": "gated", "limits": {"max_agent_nodes": 1, "max_patch_depth": 2}, "nodes": [
        {"id": "a", "type": "transform", "config": {"output": {"x": 2}}},
        {"id": "review", "type": "hitl", "needs": ["a"],
         "config": {"prompt": "?", "expires_after": "1h", "default": "reject"}},
    ]})
}

fn agent(id: &str, needs: &str) -> Value {
    json!({"id": id, "type": "agent", "needs": [needs], "config": {
        "model": {"base_url": "http://127.0.0.1:9/v1", "model": "analyst"}, "prompt": "think"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn patches_are_rejected_with_every_reason() {
    crate::harness::run_sqlite(|env| async move {
        let id = env.define(gated()).await;
        let run = env.start(&id, json!({})).await;
        env.wait_status(&run, RunStatus::Waiting).await;
        let rejected = |outcome: PatchOutcome| match outcome {
            PatchOutcome::Rejected { reasons } => reasons.join("\n"),
            other => panic!("expected a rejection, got {other:?}"),
        };
        let cases: Vec<(Value, &str)> = vec![
            (
                json!([{"op": "replace", "path": "/nodes/0/config", "value": {"output": {"x": 3}}}]),
                "node `a` has completed and may not be changed",
            ),
            (
                json!([{"op": "remove", "path": "/nodes/0"}]),
                "node `a` has completed and may not be removed",
            ),
            (
                json!([{"op": "add", "path": "/nodes/-", "value": {"id": "t", "type": "teleport", "needs": ["a"]}}]),
                "unknown type `teleport`",
            ),
            (
                json!([{"op": "add", "path": "/nodes/-", "value": {"id": "p", "type": "transform", "needs": ["q"]}},
                       {"op": "add", "path": "/nodes/-", "value": {"id": "q", "type": "transform", "needs": ["p"]}}]),
                "cycle",
            ),
            (
                json!([{"op": "add", "path": "/nodes/-", "value": agent("s1", "a")},
                       {"op": "add", "path": "/nodes/-", "value": agent("s2", "a")}]),
                "limits.max_agent_nodes is 1",
            ),
            (
                json!([{"op": "replace", "path": "/limits/max_agent_nodes", "value": 9}]),
                "may not change `limits`",
            ),
            (
                json!([{"op": "remove", "path": "/nodes/7"}]),
                "/nodes/7",
            ),
            (json!({"not": "an array"}), "an array of operations"),
        ];
        for (patch, expected) in cases {
            let reasons = rejected(env.runtime.patch(&run, &patch, "ops").await.unwrap());
            assert!(reasons.contains(expected), "{patch}: expected `{expected}` in:\n{reasons}");
        }
        // Nothing was applied.
        assert_eq!(env.runtime.view(&run).await.unwrap().ir_version, 1);

        // Depth: two patches are allowed, the third is refused.
        for i in 0..2 {
            let p = json!([{"op": "add", "path": "/nodes/-",
                            "value": {"id": format!("n{i}"), "type": "transform", "needs": ["a"]}}]);
            assert_eq!(
                env.runtime.patch(&run, &p, "ops").await.unwrap(),
                PatchOutcome::Applied { ir_version: i + 2 }
            );
        }
        let p = json!([{"op": "add", "path": "/nodes/-", "value": {"id": "n9", "type": "transform"}}]);
        let reasons = rejected(env.runtime.patch(&run, &p, "ops").await.unwrap());
        assert!(reasons.contains("max_patch_depth"), "{reasons}");

        // A finished run cannot be patched.
        env.runtime.cancel(&run, "ops", None).await.unwrap();
        let err = env.runtime.patch(&run, &p, "ops").await.unwrap_err();
        assert!(err.to_string().contains("cancelled"), "{err}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_patches_its_own_run() {
    crate::harness::run_sqlite(|env| async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let llm = format!("http://{}/v1", listener.local_addr().unwrap());
        tokio::spawn(tradeloom_mock_llm::serve_mock(listener));
        let patch = json!([{"op": "add", "path": "/nodes/-",
            "value": {"id": "spawned", "type": "transform", "needs": ["planner"],
                      "config": {"output": {"from": "agent"}}}}]);
        let prompt = format!("Add a follow-up step.\n```json\n{patch}\n```\n");
        let id = env
            .define(json!({"name": "self-patching", "nodes": [
                {"id": "planner", "type": "agent", "config": {
                    "model": {"base_url": llm, "model": "patcher"},
                    "prompt": prompt, "tools": ["patch_workflow"]}},
            ]}))
            .await;
        let run = env.start(&id, json!({})).await;
        let view = env.wait_status(&run, RunStatus::Completed).await;
        assert_eq!(view.ir_version, 2);
        assert_eq!(view.patches[0].applied_by, "agent:planner");
        assert_eq!(statuses(&view)["spawned"], NodeStatus::Completed);
        let out = env.output(&view, "planner").await;
        assert_eq!(out["json"]["patched"], true, "{out}");
        assert_eq!(out["tool_calls"], 1);
    })
    .await;
}
