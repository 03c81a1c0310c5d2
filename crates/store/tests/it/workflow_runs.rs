//! Workflow runs: transitions commit atomically and exactly once, stale ones are refused, events
//! stream in order.

use std::sync::Arc;

use serde_json::json;
use tradeloom_store::EventFilter;
use tradeloom_store::{
    NewEvent, NewWorkflowRun, NewWorkflowVersion, NodeChange, NodeStatus, RunStatus, Store,
    StoreError, Transition, TransitionOutcome,
};

use crate::Ctx;
use crate::backend_tests;

backend_tests!(
    transitions_apply_exactly_once,
    concurrent_transitions_have_one_winner,
    status_counts_group_every_table,
);

async fn new_run(s: &dyn Store, name: &str) -> tradeloom_store::WorkflowRun {
    let v = s
        .create_workflow(&NewWorkflowVersion {
            name: name.into(),
            definition: format!(r#"{{"name":"{name}"}}"#),
            ir: format!(r#"{{"ir":"{name}"}}"#),
        })
        .await
        .expect("workflow");
    s.create_workflow_run(&NewWorkflowRun {
        workflow_id: v.workflow_id,
        workflow_version: v.version,
        ir_hash: v.ir_hash,
        definition_hash: v.definition_hash,
        agent_nodes: 0,
        inputs: json!({"symbol": "AAA"}),
        nodes: vec!["a".into(), "b".into()],
    })
    .await
    .expect("run")
}

fn node(id: &str, status: NodeStatus, attempts: u32) -> NodeChange {
    NodeChange {
        node_id: id.into(),
        status,
        attempts,
        output_hash: None,
        error: None,
        not_before: None,
    }
}

fn transition(run: &str, signal: &str, revision: i64) -> Transition {
    Transition::new(run, signal, revision)
}

async fn transitions_apply_exactly_once(t: Ctx) {
    let s = &*t.store;
    let run = new_run(s, "w").await;
    assert_eq!(
        (run.status, run.revision, run.tokens),
        (RunStatus::Pending, 0, 0)
    );
    assert_eq!(run.inputs["symbol"], "AAA");
    let states = s.node_states(&run.id).await.expect("states");
    assert!(states.iter().all(|n| n.status == NodeStatus::Pending) && states.len() == 2);

    let mut start = transition(&run.id, "start", 0);
    start.status = Some(RunStatus::Running);
    start.tokens_delta = 1;
    start.nodes = vec![node("a", NodeStatus::Queued, 0)];
    start.events = vec![NewEvent {
        kind: "node_queued".into(),
        node_id: Some("a".into()),
        payload: json!({}),
    }];
    assert_eq!(
        s.commit_transition(&start).await.expect("start"),
        TransitionOutcome::Applied { revision: 1 }
    );
    // Redelivered: nothing changes, even though its revision is stale now.
    assert_eq!(
        s.commit_transition(&start).await.expect("again"),
        TransitionOutcome::AlreadyApplied
    );
    let now = s.workflow_run(&run.id).await.expect("run");
    assert_eq!(
        (now.status, now.revision, now.tokens),
        (RunStatus::Running, 1, 1)
    );

    // A new signal computed from a stale revision is refused and changes nothing.
    let mut stale = transition(&run.id, "a-done", 0);
    stale.nodes = vec![node("a", NodeStatus::Completed, 1)];
    assert!(
        matches!(s.commit_transition(&stale).await, Err(StoreError::Conflict(m)) if m.contains("revision 1"))
    );
    assert_eq!(
        s.node_states(&run.id).await.expect("states")[0].status,
        NodeStatus::Queued
    );

    // Recomputed from the current revision: applied; a node added by a patch is inserted.
    let output = s.put_blob("node_output", r#"{"x":1}"#).await.expect("blob");
    let mut done = transition(&run.id, "a-done", 1);
    done.nodes = vec![
        NodeChange {
            output_hash: Some(output.clone()),
            ..node("a", NodeStatus::Completed, 1)
        },
        node("c", NodeStatus::Queued, 0),
    ];
    done.events = vec![NewEvent {
        kind: "node_completed".into(),
        node_id: Some("a".into()),
        payload: json!({"output": output}),
    }];
    assert_eq!(
        s.commit_transition(&done).await.expect("done"),
        TransitionOutcome::Applied { revision: 2 }
    );
    let states = s.node_states(&run.id).await.expect("states");
    let ids: Vec<(&str, NodeStatus)> = states
        .iter()
        .map(|n| (n.node_id.as_str(), n.status))
        .collect();
    assert_eq!(
        ids,
        [
            ("a", NodeStatus::Completed),
            ("b", NodeStatus::Pending),
            ("c", NodeStatus::Queued)
        ]
    );
    assert_eq!(states[0].output_hash.as_deref(), Some(output.as_str()));

    let mut finish = transition(&run.id, "finish", 2);
    finish.status = Some(RunStatus::Completed);
    finish.tokens_delta = -1;
    s.commit_transition(&finish).await.expect("finish");
    let finished = s.workflow_run(&run.id).await.expect("run");
    assert_eq!(
        (finished.status, finished.tokens),
        (RunStatus::Completed, 0)
    );
    assert!(finished.finished_at.is_some());

    // Events: in order, resumable after any sequence number, per run or for all.
    let events = s
        .events(EventFilter::Run(&run.id), 0, 100)
        .await
        .expect("events");
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["run_created", "node_queued", "node_completed"]);
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    let after = s
        .events(EventFilter::Run(&run.id), events[0].seq, 100)
        .await
        .expect("after");
    assert_eq!(after.len(), 2);
    assert!(
        s.events(EventFilter::All, events[2].seq, 100)
            .await
            .expect("none")
            .is_empty()
    );
    let other = new_run(s, "w2").await;
    assert_eq!(
        s.events(EventFilter::All, events[2].seq, 100)
            .await
            .expect("all")[0]
            .run_id,
        Some(other.id)
    );
    assert_eq!(
        s.list_workflow_runs(Some(RunStatus::Completed), 10, 0)
            .await
            .expect("list")
            .len(),
        1
    );
    assert_eq!(
        s.list_workflow_runs(None, 10, 0).await.expect("list").len(),
        2
    );
    assert!(matches!(
        s.workflow_run("nope").await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn concurrent_transitions_have_one_winner(t: Ctx) {
    let store: Arc<dyn Store> = Arc::clone(&t.store);
    let run = new_run(&*store, "race").await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = Arc::clone(&store);
        let run_id = run.id.clone();
        tasks.push(tokio::spawn(async move {
            let mut tr = transition(&run_id, &format!("signal-{i}"), 0);
            tr.tokens_delta = 1;
            store.commit_transition(&tr).await
        }));
    }
    let mut applied = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(TransitionOutcome::Applied { .. }) => applied += 1,
            Err(StoreError::Conflict(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(applied, 1, "exactly one transition from revision 0 commits");
    assert_eq!(store.workflow_run(&run.id).await.expect("run").tokens, 1);
}

async fn status_counts_group_every_table(t: Ctx) {
    let s = &*t.store;
    assert_eq!(
        s.status_counts().await.expect("empty counts"),
        tradeloom_store::StatusCounts::default()
    );
    crate::fixtures::create(s, "counted", &["gpt", "claude"], &[3, 4, 5]).await;
    new_run(s, "one").await;
    let run = new_run(s, "two").await;
    let mut start = transition(&run.id, "start", 0);
    start.status = Some(RunStatus::Running);
    start.nodes = vec![node("a", NodeStatus::Running, 1)];
    s.commit_transition(&start).await.expect("start");

    let counts = s.status_counts().await.expect("counts");
    let pairs = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
        v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    };
    assert_eq!(counts.jobs, pairs(&[("pending", 1)]));
    assert_eq!(counts.model_days, pairs(&[("pending", 6)]));
    assert_eq!(
        counts.workflow_runs,
        pairs(&[("pending", 1), ("running", 1)])
    );
    assert_eq!(
        counts.workflow_nodes,
        pairs(&[("pending", 3), ("running", 1)])
    );
}
