//! Workflow runs: transitions commit atomically and exactly once, stale ones are refused, events
//! stream in order.

use std::sync::Arc;

use serde_json::json;
use tradeloom_store::EventFilter;
use tradeloom_store::{
    CreateRun, NewBlob, NewEvent, NewWorkflowRun, NewWorkflowVersion, NodeChange, NodeStatus,
    RunStatus, RunWrite, Store, StoreError, Transition, TransitionOutcome,
};

use crate::Ctx;
use crate::backend_tests;

backend_tests!(
    transitions_apply_exactly_once,
    a_batch_applies_each_write_as_if_alone,
    a_refused_transitions_lineage_is_refused_after_it,
    concurrent_transitions_have_one_winner,
    status_counts_group_every_table,
    a_run_is_paused_and_resumed_by_transitions,
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
        priority: Default::default(),
        api_key_id: None,
        workflow_limit: None,
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

/// A batch creates runs and commits transitions in order, each applied or refused on its own:
/// a refused one (stale revision, a signal seen before) leaves nothing, the others commit.
async fn a_batch_applies_each_write_as_if_alone(t: Ctx) {
    let s = &*t.store;
    let existing = new_run(s, "batch").await;
    let create = CreateRun::new(NewWorkflowRun {
        workflow_id: existing.workflow_id.clone(),
        workflow_version: existing.workflow_version,
        ir_hash: existing.ir_hash.clone(),
        definition_hash: existing.definition_hash.clone().expect("definition"),
        agent_nodes: 0,
        inputs: json!({}),
        nodes: vec!["a".into(), "b".into()],
        priority: Default::default(),
        api_key_id: None,
        workflow_limit: None,
    });
    let id = create.id.clone();
    let queued = |signal: &str, revision: i64, n: &str| {
        let mut t = transition(&id, signal, revision);
        t.nodes = vec![node(n, NodeStatus::Queued, 1)];
        t.tokens_delta = 1;
        t.events = vec![NewEvent {
            kind: format!("{n}_queued"),
            node_id: Some(n.into()),
            payload: json!({}),
        }];
        t
    };
    let mut start = queued("start", 0, "a");
    start.status = Some(RunStatus::Running);
    let mut done = transition(&id, "a-done", 1);
    done.nodes = vec![NodeChange {
        output_hash: Some(tradeloom_store::blob_hash(r#"{"x":1}"#)),
        ..node("a", NodeStatus::Completed, 1)
    }];
    done.blobs = vec![NewBlob {
        kind: "node_output".into(),
        body: r#"{"x":1}"#.into(),
    }];
    done.events = vec![NewEvent {
        kind: "a_completed".into(),
        node_id: Some("a".into()),
        payload: json!({}),
    }];
    let writes = vec![
        RunWrite::Create(create.clone()),
        RunWrite::Transition(start.clone()),
        // Planned on a revision the run has left: refused, nothing of it written.
        RunWrite::Transition(queued("stale", 0, "b")),
        RunWrite::Transition(done),
        // The same signal again: applied once.
        RunWrite::Transition(start),
        // Another run's transition in the same batch.
        RunWrite::Transition({
            let mut t = transition(&existing.id, "start", 0);
            t.status = Some(RunStatus::Running);
            t
        }),
    ];
    let outcomes = s.commit_batch(&writes).await.expect("batch");
    assert_eq!(outcomes.len(), 6);
    assert!(matches!(
        outcomes[0],
        Ok(TransitionOutcome::Applied { revision: 0 })
    ));
    assert!(matches!(
        outcomes[1],
        Ok(TransitionOutcome::Applied { revision: 1 })
    ));
    assert!(matches!(&outcomes[2], Err(StoreError::Conflict(m)) if m.contains("revision 1")));
    assert!(matches!(
        outcomes[3],
        Ok(TransitionOutcome::Applied { revision: 2 })
    ));
    assert!(matches!(outcomes[4], Ok(TransitionOutcome::AlreadyApplied)));
    assert!(matches!(
        outcomes[5],
        Ok(TransitionOutcome::Applied { revision: 1 })
    ));

    let run = s.workflow_run(&id).await.expect("run");
    assert_eq!(
        (run.status, run.revision, run.tokens, run.created_at),
        (RunStatus::Running, 2, 1, create.created_at)
    );
    let states = s.node_states(&id).await.expect("states");
    let got: Vec<(&str, NodeStatus, u32)> = states
        .iter()
        .map(|n| (n.node_id.as_str(), n.status, n.attempts))
        .collect();
    assert_eq!(
        got,
        [
            ("a", NodeStatus::Completed, 1),
            ("b", NodeStatus::Pending, 0)
        ]
    );
    let blob = s
        .blob(states[0].output_hash.as_deref().expect("output"))
        .await
        .expect("blob stored with its transition");
    assert_eq!(blob.body, r#"{"x":1}"#);
    let kinds: Vec<String> = s
        .events(EventFilter::Run(&id), 0, 100)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["run_created", "a_queued", "a_completed"]);
    assert_eq!(
        s.workflow_run(&existing.id).await.expect("other").status,
        RunStatus::Running
    );
}

/// A transition planned on a refused one (same lineage) is refused even where the run's
/// revision matches it; one planned on the run as stored is not. Both ways a batch is decided:
/// a few transitions one by one, many together.
async fn a_refused_transitions_lineage_is_refused_after_it(t: Ctx) {
    let s = &*t.store;
    for many in [false, true] {
        let run = new_run(s, if many { "many" } else { "few" }).await;
        let mut moved = transition(&run.id, "elsewhere", 0);
        moved.status = Some(RunStatus::Running);
        assert_eq!(
            s.commit_transition(&moved).await.expect("moved"),
            TransitionOutcome::Applied { revision: 1 }
        );
        let chained = |signal: &str, revision: i64, node_id: &str| {
            let mut t = transition(&run.id, signal, revision);
            t.lineage = Some(7);
            t.nodes = vec![node(node_id, NodeStatus::Queued, 1)];
            t
        };
        let mut writes = vec![
            // Planned on revision 0, which the run has left.
            RunWrite::Transition(chained("first", 0, "a")),
            // Planned on `first`: expects revision 1, which the run is at, but not through it.
            RunWrite::Transition(chained("second", 1, "b")),
            // Planned on the run as stored.
            RunWrite::Transition(transition(&run.id, "fresh", 1)),
        ];
        if many {
            writes.push(RunWrite::Transition(transition("no-such-run", "x", 0)));
            writes.push(RunWrite::Transition(transition(&run.id, "fresh", 2)));
        }
        let outcomes = s.commit_batch(&writes).await.expect("batch");
        assert!(
            matches!(&outcomes[0], Err(StoreError::Conflict(m)) if m.contains("revision 1")),
            "{:?}",
            outcomes[0]
        );
        assert!(
            matches!(&outcomes[1], Err(StoreError::Conflict(m)) if m.contains("lineage 7")),
            "{:?}",
            outcomes[1]
        );
        assert!(matches!(
            outcomes[2],
            Ok(TransitionOutcome::Applied { revision: 2 })
        ));
        if many {
            assert!(matches!(outcomes[3], Err(StoreError::NotFound { .. })));
            assert!(matches!(outcomes[4], Ok(TransitionOutcome::AlreadyApplied)));
        }
        let states = s.node_states(&run.id).await.expect("states");
        assert!(
            states.iter().all(|n| n.status == NodeStatus::Pending),
            "nothing of the refused lineage was written: {states:?}"
        );
        let now = s.workflow_run(&run.id).await.expect("run");
        assert_eq!((now.status, now.revision), (RunStatus::Running, 2));
    }
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

/// `paused` is a status the store keeps (migration 0015): a run goes to it and back by
/// transitions, is listed under it, and is not finished by it.
async fn a_run_is_paused_and_resumed_by_transitions(t: Ctx) {
    let s = &*t.store;
    let run = new_run(s, "pausable").await;
    let mut start = transition(&run.id, "start", 0);
    start.status = Some(RunStatus::Running);
    s.commit_transition(&start).await.expect("start");
    let mut pause = transition(&run.id, "pause:1", 1);
    pause.status = Some(RunStatus::Paused);
    pause.events = vec![NewEvent {
        kind: "run_paused".into(),
        node_id: None,
        payload: json!({"by": "ops", "was": "running"}),
    }];
    s.commit_transition(&pause).await.expect("pause");
    let paused = s.workflow_run(&run.id).await.expect("run");
    assert_eq!(
        (paused.status, paused.finished_at),
        (RunStatus::Paused, None)
    );
    let listed = s
        .list_workflow_runs(Some(RunStatus::Paused), 10, 0)
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, run.id);
    assert_eq!(t.text("SELECT status FROM workflow_runs").await, "paused");

    let mut resume = transition(&run.id, "resume:1", 2);
    resume.status = Some(RunStatus::Running);
    s.commit_transition(&resume).await.expect("resume");
    assert_eq!(
        s.workflow_run(&run.id).await.expect("run").status,
        RunStatus::Running
    );
    let kinds: Vec<String> = s
        .events(EventFilter::Run(&run.id), 0, 100)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["run_created", "run_paused"]);
}

/// Migration 0015 rebuilds SQLite's workflow_runs (to widen its status CHECK): the runs and
/// every row that references them (node states, signals, events, approvals) survive, `paused`
/// is accepted, and foreign keys are enforced afterwards (deleting the workflow cascades).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_migration_0015_keeps_runs_and_their_children() {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
    let dir = tempfile::TempDir::new().expect("temp dir");
    let path = dir.path().join("old.db");
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("pool");
    sqlx::migrate!("migrations/sqlite")
        .run_to(13, &pool)
        .await
        .expect("migrate to 13");
    let at = chrono::Utc::now();
    for statement in [
        "INSERT INTO blobs (hash, kind, body, created_at) VALUES ('h', 'workflow_ir', '{}', ?1)",
        "INSERT INTO workflows (id, name, latest_version, created_at, updated_at) \
         VALUES ('w1', 'old', 1, ?1, ?1)",
        "INSERT INTO workflow_runs (id, workflow_id, workflow_version, ir_hash, status, inputs, \
         tokens, revision, created_at, definition_hash, ir_version, agent_nodes_spawned) \
         VALUES ('r1', 'w1', 1, 'h', 'waiting', '{\"x\":1}', 0, 4, ?1, 'h', 2, 1)",
        "INSERT INTO workflow_node_states (run_id, node_id, status, attempts, updated_at) \
         VALUES ('r1', 'review', 'waiting', 1, ?1)",
        "INSERT INTO workflow_signals (run_id, signal_id, applied_at) VALUES ('r1', 'start', ?1)",
        "INSERT INTO workflow_events (run_id, kind, payload, at) \
         VALUES ('r1', 'run_started', '{}', ?1)",
        "INSERT INTO workflow_approvals (id, run_id, node_id, attempt, prompt, status, \
         default_decision, expires_at, created_at) \
         VALUES ('a1', 'r1', 'review', 1, '?', 'pending', 'reject', ?1, ?1)",
    ] {
        sqlx::query(statement)
            .bind(at)
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    pool.close().await;

    let location = path.display().to_string();
    let store = tradeloom_store::open_store(&location)
        .await
        .expect("migrate");
    let run = store.workflow_run("r1").await.expect("run");
    assert_eq!(
        (
            run.status,
            run.revision,
            run.ir_version,
            run.agent_nodes_spawned
        ),
        (RunStatus::Waiting, 4, 2, 1)
    );
    assert_eq!(run.inputs, json!({"x": 1}));
    assert_eq!(store.node_states("r1").await.expect("states").len(), 1);
    assert_eq!(store.approval("a1").await.expect("approval").run_id, "r1");
    assert_eq!(
        store
            .events(EventFilter::Run("r1"), 0, 10)
            .await
            .expect("events")
            .len(),
        1
    );
    // The signal applied before the migration still counts.
    let mut again = transition("r1", "start", 4);
    again.status = Some(RunStatus::Running);
    assert_eq!(
        store.commit_transition(&again).await.expect("again"),
        TransitionOutcome::AlreadyApplied
    );
    let mut pause = transition("r1", "pause:1", 4);
    pause.status = Some(RunStatus::Paused);
    store.commit_transition(&pause).await.expect("paused");

    let raw = sqlx::SqlitePool::connect(&format!("sqlite://{location}"))
        .await
        .expect("raw");
    let (check,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM pragma_foreign_key_check")
        .fetch_one(&raw)
        .await
        .expect("fk check");
    assert_eq!(check, 0);
    store.delete_workflow("w1").await.expect("delete");
    for table in [
        "workflow_runs",
        "workflow_node_states",
        "workflow_approvals",
        "workflow_signals",
    ] {
        let sql = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
        let (left,): (i64,) = sqlx::query_as(sql).fetch_one(&raw).await.expect("count");
        assert_eq!(left, 0, "{table} rows cascade from the deleted workflow");
    }
}
