//! Concurrency limits of workflow runs: a start beyond a workflow's or an API key's limit is
//! queued (or refused, creating nothing), queued runs are promoted most urgent first, then
//! oldest, paused runs hold their slot, and concurrent starts never exceed a limit.

use std::sync::Arc;

use serde_json::json;
use tradeloom_store::{
    Admission, CreateRun, EventFilter, LimitKind, LimitReached, NewApiKey, NewWorkflowRun,
    NewWorkflowVersion, Role, RunPriority, RunStatus, Store, Transition,
};

use crate::Ctx;
use crate::backend_tests;

backend_tests!(
    a_start_beyond_a_workflow_limit_is_queued_and_promoted_by_priority,
    a_keys_limit_counts_its_runs_across_workflows,
    concurrent_starts_never_exceed_a_limit,
);

/// A workflow named `name`; returns `(id, version, ir_hash, definition_hash)`.
async fn workflow(s: &dyn Store, name: &str) -> (String, u32, String, String) {
    let v = s
        .create_workflow(&NewWorkflowVersion {
            name: name.into(),
            definition: format!(r#"{{"name":"{name}"}}"#),
            ir: format!(r#"{{"ir":"{name}"}}"#),
        })
        .await
        .expect("workflow");
    (v.workflow_id, v.version, v.ir_hash, v.definition_hash)
}

fn start(
    w: &(String, u32, String, String),
    limit: Option<u32>,
    key: Option<&str>,
    priority: RunPriority,
) -> CreateRun {
    CreateRun::new(NewWorkflowRun {
        workflow_id: w.0.clone(),
        workflow_version: w.1,
        ir_hash: w.2.clone(),
        definition_hash: w.3.clone(),
        agent_nodes: 0,
        inputs: json!({}),
        nodes: vec!["a".into(), "b".into()],
        priority,
        api_key_id: key.map(str::to_string),
        workflow_limit: limit,
    })
}

/// Ends run `id` (from whatever revision it is at) with `status`.
async fn set_status(s: &dyn Store, id: &str, status: RunStatus) {
    let run = s.workflow_run(id).await.expect("run");
    let mut t = Transition::new(id, format!("to-{status}"), run.revision);
    t.status = Some(status);
    s.commit_transition(&t).await.expect("transition");
}

fn kinds(events: &[tradeloom_store::RunEvent]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

async fn a_start_beyond_a_workflow_limit_is_queued_and_promoted_by_priority(t: Ctx) {
    let s = &*t.store;
    let w = workflow(s, "limited").await;
    let first = start(&w, Some(1), None, RunPriority::Normal);
    let (admitted, others) = s.admit_workflow_run(&first, false).await.expect("admit");
    assert!(others.is_empty());
    assert!(matches!(&admitted, Admission::Admitted(r) if r.status == RunStatus::Pending));
    assert_eq!(
        s.workflow_run(&first.id).await.expect("run").workflow_limit,
        Some(1)
    );

    let older = start(&w, Some(1), None, RunPriority::Normal);
    let (queued, _) = s.admit_workflow_run(&older, false).await.expect("queue");
    let full = LimitReached {
        limit: LimitKind::Workflow,
        max_concurrent_runs: 1,
        active: 1,
    };
    assert_eq!(
        queued,
        Admission::Queued {
            run: s.workflow_run(&older.id).await.expect("run"),
            reached: full
        }
    );
    let events = s
        .events(EventFilter::Run(&older.id), 0, 10)
        .await
        .expect("events");
    assert_eq!(kinds(&events), ["run_created", "run_queued"]);
    assert_eq!(
        events[1].payload,
        json!({"limit": "workflow", "max_concurrent_runs": 1, "active": 1})
    );
    assert_eq!(s.node_states(&older.id).await.expect("nodes").len(), 2);
    let urgent = start(&w, Some(1), None, RunPriority::High);
    s.admit_workflow_run(&urgent, false).await.expect("queue");

    // Refused rather than queued: nothing is created.
    let runs = t.count("workflow_runs").await;
    let refused = start(&w, Some(1), None, RunPriority::High);
    let (answer, _) = s.admit_workflow_run(&refused, true).await.expect("refuse");
    assert_eq!(answer, Admission::Refused(full));
    assert_eq!(t.count("workflow_runs").await, runs);
    assert!(s.workflow_run(&refused.id).await.is_err());

    // Nothing freed: nothing promoted.
    assert!(s.promote_queued_runs().await.expect("promote").is_empty());
    // The first run finishes: the high-priority run goes before the older normal one.
    set_status(s, &first.id, RunStatus::Completed).await;
    assert_eq!(
        s.promote_queued_runs().await.expect("promote"),
        std::slice::from_ref(&urgent.id)
    );
    assert_eq!(
        s.workflow_run(&urgent.id).await.expect("run").status,
        RunStatus::Pending
    );
    assert_eq!(
        s.workflow_run(&older.id).await.expect("run").status,
        RunStatus::Queued
    );
    let events = s
        .events(EventFilter::Run(&urgent.id), 0, 10)
        .await
        .expect("events");
    assert_eq!(
        kinds(&events),
        ["run_created", "run_queued", "run_admitted"]
    );
    // A paused run holds its slot; a finished one frees it.
    set_status(s, &urgent.id, RunStatus::Paused).await;
    assert!(s.promote_queued_runs().await.expect("promote").is_empty());
    set_status(s, &urgent.id, RunStatus::Cancelled).await;
    assert_eq!(
        s.promote_queued_runs().await.expect("promote"),
        std::slice::from_ref(&older.id)
    );
    assert!(s.promote_queued_runs().await.expect("promote").is_empty());
}

async fn a_keys_limit_counts_its_runs_across_workflows(t: Ctx) {
    let s = &*t.store;
    let (new, _) = NewApiKey::generate("bot", Role::Operator).expect("key");
    let key = s
        .create_api_key(&new.with_max_concurrent_runs(Some(1)).expect("limit"))
        .await
        .expect("create");
    assert_eq!(key.max_concurrent_runs, Some(1));
    let (other, _) = NewApiKey::generate("free", Role::Operator).expect("key");
    let free = s.create_api_key(&other).await.expect("create");
    assert_eq!(free.max_concurrent_runs, None);
    assert!(
        NewApiKey::generate("zero", Role::Viewer)
            .expect("key")
            .0
            .with_max_concurrent_runs(Some(0))
            .is_err()
    );

    let one = workflow(s, "one").await;
    let two = workflow(s, "two").await;
    let a = start(&one, None, Some(&key.id), RunPriority::Normal);
    assert!(matches!(
        s.admit_workflow_run(&a, false).await.expect("admit").0,
        Admission::Admitted(_)
    ));
    let b = start(&two, None, Some(&key.id), RunPriority::Normal);
    match s.admit_workflow_run(&b, false).await.expect("queue").0 {
        Admission::Queued { reached, .. } => assert_eq!(
            reached,
            LimitReached {
                limit: LimitKind::ApiKey,
                max_concurrent_runs: 1,
                active: 1
            }
        ),
        other => panic!("the key's second run is queued, got {other:?}"),
    }
    // Other keys, and runs without a key, are not held back by it.
    for key_id in [Some(free.id.as_str()), None] {
        let c = start(&two, None, key_id, RunPriority::Low);
        assert!(matches!(
            s.admit_workflow_run(&c, false).await.expect("admit").0,
            Admission::Admitted(_)
        ));
    }
    set_status(s, &a.id, RunStatus::Failed).await;
    assert_eq!(s.promote_queued_runs().await.expect("promote"), [b.id]);
}

/// Eight starts at once under a limit of two: two are admitted, six queued, whatever the
/// interleaving (one admission lock; no read-then-write race).
async fn concurrent_starts_never_exceed_a_limit(t: Ctx) {
    let s: Arc<dyn Store> = t.store.clone();
    let w = workflow(&*s, "busy").await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let s = s.clone();
        let create = start(&w, Some(2), None, RunPriority::Normal);
        tasks.spawn(async move { s.admit_workflow_run(&create, false).await });
    }
    let mut admitted = 0;
    let mut queued = 0;
    while let Some(done) = tasks.join_next().await {
        match done.expect("task").expect("admit").0 {
            Admission::Admitted(_) => admitted += 1,
            Admission::Queued { .. } => queued += 1,
            Admission::Refused(r) => panic!("nothing asked to be refused: {r:?}"),
        }
    }
    assert_eq!((admitted, queued), (2, 6));
    let pending = s
        .list_workflow_runs(Some(RunStatus::Pending), 100, 0)
        .await
        .expect("list");
    assert_eq!(pending.len(), 2);
}
