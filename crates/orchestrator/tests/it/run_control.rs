//! Pausing and resuming runs: nothing new starts while a run is paused, what runs finishes and
//! is kept, timers that fall due during the pause take effect on resume (not lost, not early),
//! and a paused run stays paused across a restart.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tempfile::TempDir;
use tradeloom_orchestrator::{LoopRoles, OrchestratorError, Runtime};
use tradeloom_queue::{InMemoryQueue, Queue};
use tradeloom_store::{
    ApprovalStatus, NodeStatus, RunEvent, RunPriority, RunStatus, Store, open_store,
};

use crate::backend_tests;
use crate::harness::{Env, Sink, config, start_definition, statuses};

backend_tests!(
    a_wait_that_falls_due_during_a_pause_runs_on_resume,
    a_running_node_finishes_during_a_pause_and_its_result_is_kept,
    an_approval_that_expires_during_a_pause_is_decided_on_resume,
    pause_and_resume_refuse_runs_in_other_states,
);

/// The position of the first event of `kind` (on `node`, if given).
fn position(events: &[RunEvent], kind: &str, node: Option<&str>) -> usize {
    events
        .iter()
        .position(|e| e.kind == kind && (node.is_none() || e.node_id.as_deref() == node))
        .unwrap_or_else(|| panic!("no `{kind}` event (node {node:?})"))
}

async fn a_wait_that_falls_due_during_a_pause_runs_on_resume(env: Env) {
    let id = env
        .define(json!({"name": "pause-wait", "nodes": [
            {"id": "w", "type": "wait", "config": {"duration_ms": 300}},
            {"id": "after", "type": "transform", "needs": ["w"], "config": {"output": {"ok": true}}},
        ]}))
        .await;
    let run = env.start(&id, json!({})).await;
    let paused = env.runtime.pause(&run, "ops").await.unwrap();
    assert_eq!(paused.status, RunStatus::Paused);
    // A long poll answers at once: a paused run waits for a person, as an approval does.
    let polled = std::time::Instant::now();
    let settled = env
        .runtime
        .wait_settled(&run, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(settled.status, RunStatus::Paused);
    assert!(
        polled.elapsed() < Duration::from_secs(10),
        "the poll waited for its timeout"
    );
    // Well past the wait's deadline: nothing started.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let view = env.runtime.view(&run).await.unwrap();
    assert_eq!(view.status, RunStatus::Paused);
    let s = statuses(&view);
    assert_eq!(
        (s["w"], s["after"]),
        (NodeStatus::Queued, NodeStatus::Pending)
    );
    let resumed_at = Utc::now();
    let resumed = env.runtime.resume(&run, "ops").await.unwrap();
    assert_ne!(resumed.status, RunStatus::Paused);
    let view = env.wait_status(&run, RunStatus::Completed).await;
    assert_eq!(env.output(&view, "after").await, json!({"ok": true}));

    let events = env.events(&run).await;
    let paused_at = position(&events, "run_paused", None);
    let resumed_event = position(&events, "run_resumed", None);
    assert_eq!(events[paused_at].payload["by"], "ops");
    assert_eq!(events[paused_at].payload["was"], "running");
    assert!(paused_at < resumed_event);
    // The wait ran after the resume, not during the pause (not lost, not early).
    let started = position(&events, "node_started", Some("w"));
    assert!(started > resumed_event, "{events:#?}");
    assert!(events[started].at >= resumed_at);
    let queued = &events[position(&events, "node_queued", Some("w"))];
    let deadline: DateTime<Utc> =
        serde_json::from_value(queued.payload["not_before"].clone()).unwrap();
    assert!(events[started].at >= deadline);
}

async fn a_running_node_finishes_during_a_pause_and_its_result_is_kept(env: Env) {
    let sink = Sink::default();
    let base = sink.serve().await;
    let id = env
        .define(json!({"name": "pause-running", "nodes": [
            {"id": "call", "type": "http", "config": {"method": "POST", "url": format!("{base}/slow")}},
            {"id": "next", "type": "transform", "needs": ["call"]},
        ]}))
        .await;
    let run = env.start(&id, json!({})).await;
    for _ in 0..200 {
        let v = env.runtime.view(&run).await.unwrap();
        if statuses(&v)["call"] == NodeStatus::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    env.runtime.pause(&run, "ops").await.unwrap();
    // `/slow` answers after 2 s: the attempt finishes while the run is paused.
    let mut view = env.runtime.view(&run).await.unwrap();
    for _ in 0..200 {
        if statuses(&view)["call"] == NodeStatus::Completed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        view = env.runtime.view(&run).await.unwrap();
    }
    let s = statuses(&view);
    assert_eq!(
        (s["call"], s["next"]),
        (NodeStatus::Completed, NodeStatus::Pending)
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let view = env.runtime.view(&run).await.unwrap();
    assert_eq!(view.status, RunStatus::Paused);
    assert_eq!(statuses(&view)["next"], NodeStatus::Pending);
    assert_eq!(sink.count("/slow"), 1, "the node ran once");

    env.runtime.resume(&run, "ops").await.unwrap();
    let view = env.wait_status(&run, RunStatus::Completed).await;
    assert_eq!(
        sink.count("/slow"),
        1,
        "its result was kept, not recomputed"
    );
    assert_eq!(statuses(&view)["next"], NodeStatus::Completed);
}

async fn an_approval_that_expires_during_a_pause_is_decided_on_resume(env: Env) {
    let id = env
        .define(json!({"name": "pause-hitl", "nodes": [
            {"id": "review", "type": "hitl",
             "config": {"prompt": "?", "expires_after": "400ms", "default": "approve"}},
            {"id": "go", "type": "transform", "needs": ["review"], "when": "review.decision == \"approve\""},
        ]}))
        .await;
    let run = env.start(&id, json!({})).await;
    env.wait_status(&run, RunStatus::Waiting).await;
    let paused = env.runtime.pause(&run, "ops").await.unwrap();
    assert_eq!(paused.status, RunStatus::Paused);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let approval = env
        .store
        .list_approvals(None, Some(&run), 10, 0)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        approval.status,
        ApprovalStatus::Pending,
        "not decided while paused"
    );
    assert!(approval.expires_at < Utc::now());
    assert_eq!(
        env.runtime.view(&run).await.unwrap().status,
        RunStatus::Paused
    );

    env.runtime.resume(&run, "ops").await.unwrap();
    let view = env.wait_status(&run, RunStatus::Completed).await;
    let approval = env.store.approval(&approval.id).await.unwrap();
    assert_eq!(
        approval.status,
        ApprovalStatus::Expired,
        "its default took effect"
    );
    assert_eq!(statuses(&view)["go"], NodeStatus::Completed);
    let events = env.events(&run).await;
    assert!(
        position(&events, "approval_decided", Some("review"))
            > position(&events, "run_resumed", None)
    );
}

async fn pause_and_resume_refuse_runs_in_other_states(env: Env) {
    let id = env
        .define(json!({"name": "pause-states", "nodes": [
            {"id": "review", "type": "hitl", "config": {"prompt": "?", "expires_after": "1h", "default": "reject"}},
        ]}))
        .await;
    let run = env.start(&id, json!({})).await;
    env.wait_status(&run, RunStatus::Waiting).await;
    let not_paused = env.runtime.resume(&run, "ops").await.unwrap_err();
    assert!(
        matches!(&not_paused, OrchestratorError::Conflict(m) if m.contains("is waiting; only a paused run can be resumed")),
        "{not_paused}"
    );
    env.runtime.pause(&run, "ops").await.unwrap();
    let twice = env.runtime.pause(&run, "ops").await.unwrap_err();
    assert!(
        matches!(&twice, OrchestratorError::Conflict(m) if m.contains("is paused")),
        "{twice}"
    );
    // A paused run can be cancelled; a finished one is neither paused nor resumed.
    env.runtime.cancel(&run, "ops", None).await.unwrap();
    for e in [
        env.runtime.pause(&run, "ops").await.unwrap_err(),
        env.runtime.resume(&run, "ops").await.unwrap_err(),
    ] {
        assert!(
            matches!(&e, OrchestratorError::Conflict(m) if m.contains("is cancelled")),
            "{e}"
        );
    }
    let missing = env.runtime.pause("no-such-run", "ops").await.unwrap_err();
    assert!(
        matches!(missing, OrchestratorError::NotFound(_)),
        "{missing}"
    );
}

async fn runtime_on(store: &Arc<dyn Store>) -> Arc<Runtime> {
    let runtime = Runtime::new(
        store.clone(),
        Arc::new(InMemoryQueue::new()),
        config(true),
        None,
    )
    .unwrap();
    runtime.start().await.unwrap();
    runtime
}

/// A run paused before a restart is still paused after it (recovery does not start its nodes,
/// even those whose timers fell due), and a resume after the restart runs it to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_run_stays_paused_across_a_restart() {
    let dir = TempDir::new().unwrap();
    let location = dir.path().join("tradeloom.db").display().to_string();
    let store = open_store(&location).await.unwrap();
    let first = runtime_on(&store).await;
    let run = start_definition(
        &store,
        &first,
        &json!({"name": "pause-restart", "nodes": [
            {"id": "w", "type": "wait", "config": {"duration_ms": 200}},
            {"id": "after", "type": "transform", "needs": ["w"]},
        ]}),
    )
    .await;
    first.pause(&run, "ops").await.unwrap();
    first.shutdown().await;
    drop(first);
    drop(store);

    let store = open_store(&location).await.unwrap();
    let second = runtime_on(&store).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let view = second.view(&run).await.unwrap();
    assert_eq!(view.status, RunStatus::Paused);
    assert_eq!(statuses(&view)["w"], NodeStatus::Queued);
    second.resume(&run, "ops").await.unwrap();
    let view = crate::harness::until_terminal(&second, &run).await;
    assert_eq!(view.status, RunStatus::Completed, "{:?}", view.error);
    second.shutdown().await;
}

/// Under a backlog, the ready node of a `high` run is taken before those of `normal` and `low`
/// runs started before it: three runs start on a runtime without workers (their first nodes
/// wait in the queue), then a worker takes them in priority order and every run completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_high_priority_runs_node_is_taken_first_under_a_backlog() {
    let dir = TempDir::new().unwrap();
    let location = dir.path().join("tradeloom.db").display().to_string();
    let store = open_store(&location).await.unwrap();
    let queue = Arc::new(InMemoryQueue::new());
    let mut api_only = config(true);
    api_only.roles = LoopRoles::none();
    let api = Runtime::new(store.clone(), queue.clone(), api_only, None).unwrap();
    api.start().await.unwrap();
    let definition = json!({"name": "prioritised", "nodes": [
        {"id": "w", "type": "wait", "config": {"duration_ms": 1}},
    ]});
    let def = tradeloom_flow::from_json_value(&definition).unwrap();
    let compiled = tradeloom_flow::compile(&def).unwrap();
    let version = store
        .create_workflow(&tradeloom_store::NewWorkflowVersion {
            name: def.name.clone(),
            definition: def.to_json_value().to_string(),
            ir: compiled.ir.canonical_json(),
        })
        .await
        .unwrap();
    let mut started = Vec::new();
    for priority in [RunPriority::Low, RunPriority::Normal, RunPriority::High] {
        let run = api
            .start_run_at(&version, &serde_json::Map::new(), priority)
            .await
            .unwrap();
        assert_eq!(run.priority, priority);
        started.push((run.id, priority));
    }
    // The wait's 1 ms passes: all three tasks are deliverable at once.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(queue.stats("wait").await.unwrap().ready, 3);
    let mut order = Vec::new();
    let mut held = Vec::new();
    for _ in 0..3 {
        let d = queue
            .dequeue("wait", "probe", Duration::from_secs(30), Duration::ZERO)
            .await
            .unwrap()
            .expect("a task");
        let run_id = d.payload["run_id"].as_str().unwrap().to_string();
        let priority = started.iter().find(|(id, _)| *id == run_id).unwrap().1;
        order.push(priority);
        held.push(d.lease);
    }
    // Given back (in the order taken), they wait again in priority order for the worker.
    for lease in &held {
        queue.nack(lease, None).await.unwrap();
    }
    assert_eq!(
        order,
        [RunPriority::High, RunPriority::Normal, RunPriority::Low]
    );
    // One worker on the same queue now takes them in that order, and every run completes.
    let mut one_worker = config(true);
    one_worker.workers_per_pool = 1;
    let workers = Runtime::new(store.clone(), queue.clone(), one_worker, None).unwrap();
    workers.start().await.unwrap();
    for (run, _) in &started {
        let view = crate::harness::until_terminal(&workers, run).await;
        assert_eq!(view.status, RunStatus::Completed, "{:?}", view.error);
    }
    let starts: Vec<RunPriority> = store
        .events(tradeloom_store::EventFilter::All, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "node_started")
        .map(|e| {
            let run = e.run_id.unwrap();
            started.iter().find(|(id, _)| *id == run).unwrap().1
        })
        .collect();
    assert_eq!(
        starts,
        [RunPriority::High, RunPriority::Normal, RunPriority::Low]
    );
    workers.shutdown().await;
    api.shutdown().await;
}

/// Under `limits.max_concurrent_runs: 1` a second run is `queued`; a slot freed while no
/// coordinator runs (the first run ended behind the runtime's back, as when a process dies
/// between a finish and the admission) is taken at the next start, and the queued run runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_queued_run_starts_when_a_slot_frees_across_a_restart() {
    let dir = TempDir::new().unwrap();
    let location = dir.path().join("tradeloom.db").display().to_string();
    let store = open_store(&location).await.unwrap();
    let first_runtime = runtime_on(&store).await;
    let definition = json!({"name": "one-at-a-time", "limits": {"max_concurrent_runs": 1},
    "nodes": [
        {"id": "review", "type": "hitl", "config": {"prompt": "?", "expires_after": "1h", "default": "approve"}},
    ]});
    let first = start_definition(&store, &first_runtime, &definition).await;
    let workflow = store.workflow_run(&first).await.unwrap().workflow_id;
    let version = store.workflow_version(&workflow, None).await.unwrap();
    let second = first_runtime
        .start_run_of(&version, &serde_json::Map::new())
        .await
        .unwrap();
    assert_eq!(second.status, RunStatus::Queued);
    // A queued run does not move on its own, cannot be paused, and is not recovered as running.
    assert!(matches!(
        first_runtime.pause(&second.id, "ops").await,
        Err(OrchestratorError::Conflict(_))
    ));
    first_runtime.shutdown().await;
    drop(first_runtime);

    // The first run ends while nothing runs (no admission happens).
    let run = store.workflow_run(&first).await.unwrap();
    let mut end = tradeloom_store::Transition::new(&first, "ended-elsewhere", run.revision);
    end.status = Some(RunStatus::Cancelled);
    store.commit_transition(&end).await.unwrap();
    assert_eq!(
        store.workflow_run(&second.id).await.unwrap().status,
        RunStatus::Queued
    );

    let restarted = runtime_on(&store).await;
    for _ in 0..400 {
        if store.workflow_run(&second.id).await.unwrap().status == RunStatus::Waiting {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        store.workflow_run(&second.id).await.unwrap().status,
        RunStatus::Waiting,
        "admitted at start and running"
    );
    let kinds: Vec<String> = store
        .events(tradeloom_store::EventFilter::Run(&second.id), 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        &kinds[..4],
        ["run_created", "run_queued", "run_admitted", "run_started"]
    );
    // A third run is queued behind the second; cancelling the second admits it at once.
    let third = restarted
        .start_run_of(&version, &serde_json::Map::new())
        .await
        .unwrap();
    assert_eq!(third.status, RunStatus::Queued);
    restarted.cancel(&second.id, "ops", None).await.unwrap();
    assert_ne!(
        store.workflow_run(&third.id).await.unwrap().status,
        RunStatus::Queued,
        "the cancel's commit admitted the next run"
    );
    restarted.shutdown().await;
}

/// A run paused while `pending` — admitted from `queued` but not started yet — records
/// `run_started` when a resume actually starts it: once, after `run_resumed`. The runtime has
/// no loops (no sweeper admits or starts runs behind the test); its coordinator still applies
/// the API's signals.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_paused_before_it_started_emits_run_started_on_resume() {
    let dir = TempDir::new().unwrap();
    let location = dir.path().join("tradeloom.db").display().to_string();
    let store = open_store(&location).await.unwrap();
    let mut api_only = config(true);
    api_only.roles = LoopRoles::none();
    let runtime = Runtime::new(
        store.clone(),
        Arc::new(InMemoryQueue::new()),
        api_only,
        None,
    )
    .unwrap();
    runtime.start().await.unwrap();
    let definition = json!({"name": "pause-pending", "limits": {"max_concurrent_runs": 1},
    "nodes": [
        {"id": "review", "type": "hitl", "config": {"prompt": "?", "expires_after": "1h", "default": "reject"}},
    ]});
    let first = start_definition(&store, &runtime, &definition).await;
    assert_eq!(
        store.workflow_run(&first).await.unwrap().status,
        RunStatus::Waiting
    );
    let workflow = store.workflow_run(&first).await.unwrap().workflow_id;
    let version = store.workflow_version(&workflow, None).await.unwrap();
    let second = runtime
        .start_run_of(&version, &serde_json::Map::new())
        .await
        .unwrap();
    assert_eq!(second.status, RunStatus::Queued);
    // The first run ends elsewhere and admission moves the second to `pending` without
    // starting it: the moment a pause can find it before its start.
    let run = store.workflow_run(&first).await.unwrap();
    let mut end = tradeloom_store::Transition::new(&first, "ended-elsewhere", run.revision);
    end.status = Some(RunStatus::Cancelled);
    store.commit_transition(&end).await.unwrap();
    assert_eq!(
        store.promote_queued_runs().await.unwrap(),
        std::slice::from_ref(&second.id)
    );
    assert_eq!(
        store.workflow_run(&second.id).await.unwrap().status,
        RunStatus::Pending
    );

    let paused = runtime.pause(&second.id, "ops").await.unwrap();
    assert_eq!(paused.status, RunStatus::Paused);
    let resumed = runtime.resume(&second.id, "ops").await.unwrap();
    assert_eq!(
        resumed.status,
        RunStatus::Waiting,
        "started: its approval is requested"
    );
    let kinds: Vec<String> = store
        .events(tradeloom_store::EventFilter::Run(&second.id), 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    let at = |kind: &str| {
        kinds
            .iter()
            .position(|k| k == kind)
            .unwrap_or_else(|| panic!("no `{kind}` in {kinds:?}"))
    };
    assert!(at("run_paused") < at("run_resumed"), "{kinds:?}");
    assert!(at("run_resumed") < at("run_started"), "{kinds:?}");
    assert!(at("run_started") < at("approval_requested"), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| *k == "run_started").count(),
        1,
        "{kinds:?}"
    );
    runtime.shutdown().await;
}
