//! Job events share the event log (and its sequence) with workflow runs; migration 0007 keeps
//! the seq values of existing events and never hands one out again.

use serde_json::json;
use tradeloom_store::EventFilter;
use tradeloom_store::{
    NewEvent, NewWorkflowRun, NewWorkflowVersion, Store, StoreError, Transition, open_store,
};

use crate::backend_tests;
use crate::fixtures::create;
use crate::{Ctx, Raw};

backend_tests!(
    job_and_run_events_share_one_sequence,
    a_tailing_reader_misses_nothing_while_writers_race
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
        inputs: json!({}),
        nodes: vec!["a".into()],
        priority: Default::default(),
        api_key_id: None,
        workflow_limit: None,
    })
    .await
    .expect("run")
}

async fn queue_a(s: &dyn Store, run_id: &str, revision: i64) {
    let mut t = Transition::new(run_id, format!("queue-{revision}"), revision);
    t.events = vec![NewEvent {
        kind: "node_queued".into(),
        node_id: Some("a".into()),
        payload: json!({"attempt": revision}),
    }];
    s.commit_transition(&t).await.expect("transition");
}

async fn job_and_run_events_share_one_sequence(t: Ctx) {
    let s = &*t.store;
    let job = create(s, "events", &["m"], &[2]).await;
    let other_job = create(s, "other", &["m"], &[2]).await;
    let run = new_run(s, "w").await;

    let started = s
        .append_job_event(&job.id, "job_started", &json!({"remaining": 1}))
        .await
        .expect("append");
    queue_a(s, &run.id, 0).await;
    s.append_job_event(&other_job.id, "job_started", &json!({}))
        .await
        .expect("append other");
    let done = s
        .append_job_event(
            &job.id,
            "model_day_completed",
            &json!({"portfolio_value": "10012.50"}),
        )
        .await
        .expect("append");
    assert!(done > started);

    let events = s
        .events(EventFilter::Job(&job.id), 0, 100)
        .await
        .expect("job events");
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["job_started", "model_day_completed"]);
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [started, done]
    );
    assert!(
        events
            .iter()
            .all(|e| e.job_id.as_deref() == Some(job.id.as_str()) && e.run_id.is_none())
    );
    assert_eq!(events[1].payload["portfolio_value"], "10012.50");
    assert_eq!(
        s.events(EventFilter::Job(&job.id), started, 100)
            .await
            .expect("after")[0]
            .seq,
        done
    );

    // A run filter sees only the run's events; no filter sees everything, in seq order.
    let run_events = s
        .events(EventFilter::Run(&run.id), 0, 100)
        .await
        .expect("run");
    assert!(
        run_events
            .iter()
            .all(|e| e.run_id.as_deref() == Some(run.id.as_str()) && e.job_id.is_none())
    );
    assert_eq!(run_events.len(), 2, "run_created and node_queued");
    let all = s.events(EventFilter::All, 0, 100).await.expect("all");
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(
        all.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        [
            "run_created",
            "job_started",
            "node_queued",
            "job_started",
            "model_day_completed"
        ]
    );
    // Paging by seq walks the same list.
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = s.events(EventFilter::All, after, 2).await.expect("page");
        let Some(last) = page.last() else { break };
        after = last.seq;
        paged.extend(page);
    }
    assert_eq!(paged, all);

    match s
        .append_job_event("no-such-job", "job_started", &json!({}))
        .await
    {
        Err(StoreError::NotFound { what }) => assert!(what.contains("no-such-job"), "{what}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    match s.append_job_event(&job.id, " ", &json!({})).await {
        Err(StoreError::Invalid(m)) => assert!(m.contains("kind"), "{m}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    // The database refuses an event of neither (or both) a run and a job.
    let both = "INSERT INTO workflow_events (run_id, job_id, kind, payload, at) \
                VALUES (NULL, NULL, 'x', '{}', '2025-01-01T00:00:00Z')";
    let refused = match &t.raw {
        Raw::Sqlite(p) => sqlx::query(both).execute(p).await.is_err(),
        Raw::Postgres(p) => sqlx::query(both).execute(p).await.is_err(),
    };
    assert!(refused, "an event without a run or a job was stored");
}

/// Writers append concurrently while a reader tails the log from its last seq (as `GET /ws`
/// does); the reader ends with exactly the stored events. On PostgreSQL this needs events to
/// become visible in seq order (see the store's event-order lock).
async fn a_tailing_reader_misses_nothing_while_writers_race(t: Ctx) {
    const WRITERS: usize = 4;
    const EACH: usize = 40;
    let mut jobs = Vec::new();
    for w in 0..WRITERS {
        jobs.push(
            create(&*t.store, &format!("race-{w}"), &["m"], &[2])
                .await
                .id,
        );
    }
    let mut writers = tokio::task::JoinSet::new();
    for job in jobs {
        let store = std::sync::Arc::clone(&t.store);
        writers.spawn(async move {
            for i in 0..EACH {
                store
                    .append_job_event(&job, "tick", &json!({"i": i}))
                    .await
                    .expect("append");
            }
        });
    }
    let mut seen = Vec::new();
    let mut after = 0;
    let mut idle_after_done = 0;
    while idle_after_done < 2 {
        let done = writers.is_empty() || {
            while let Some(r) = writers.try_join_next() {
                r.expect("writer");
            }
            writers.is_empty()
        };
        let page = t
            .store
            .events(EventFilter::All, after, 1000)
            .await
            .expect("tail");
        match page.last() {
            Some(last) => after = last.seq,
            None if done => idle_after_done += 1,
            None => tokio::task::yield_now().await,
        }
        seen.extend(page.into_iter().map(|e| e.seq));
    }
    let stored: Vec<i64> = t
        .store
        .events(EventFilter::All, 0, 1000)
        .await
        .expect("all")
        .into_iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(stored.len(), WRITERS * EACH);
    assert_eq!(
        seen, stored,
        "the tailing reader skipped or repeated events"
    );
}

/// A database at migration 0006 with events, the last of them deleted with their run, moves to
/// 0007 with every seq kept, and the next event continues after the highest seq ever issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_0007_keeps_seq_values_on_sqlite() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let path = dir.path().join("tradeloom.db");
    let location = path.display().to_string();
    {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{location}?mode=rwc"))
            .await
            .expect("raw pool");
        let mut migrator = sqlx::migrate::Migrator::new(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/migrations/sqlite"
        )))
        .await
        .expect("migrations");
        migrator.migrations = migrator
            .migrations
            .iter()
            .filter(|m| m.version < 7)
            .cloned()
            .collect::<Vec<_>>()
            .into();
        migrator.run(&pool).await.expect("migrate to 0006");
        pool.close().await;
    }
    type Row = (i64, String, String);
    let read = async |pool: &sqlx::SqlitePool| -> Vec<Row> {
        sqlx::query_as("SELECT seq, run_id, kind FROM workflow_events ORDER BY seq")
            .fetch_all(pool)
            .await
            .expect("raw events")
    };
    // Written with SQL of the 0006 schema: today's store writes columns it did not have.
    let (kept, deleted_seq) = {
        let raw = sqlx::SqlitePool::connect(&format!("sqlite://{location}"))
            .await
            .expect("raw pool");
        let at = chrono::Utc::now();
        for name in ["keep", "gone"] {
            for statement in [
                "INSERT INTO blobs (hash, kind, body, created_at) VALUES ($1, 'workflow_ir', $1, $2)",
                "INSERT INTO workflows (id, name, latest_version, created_at, updated_at) \
                 VALUES ($1, $1, 1, $2, $2)",
                "INSERT INTO workflow_runs (id, workflow_id, workflow_version, ir_hash, status, \
                 inputs, created_at, definition_hash) VALUES ($1, $1, 1, $1, 'pending', '{}', $2, $1)",
                "INSERT INTO workflow_events (run_id, kind, payload, at) \
                 VALUES ($1, 'run_created', '{}', $2)",
            ] {
                sqlx::query(statement)
                    .bind(name)
                    .bind(at)
                    .execute(&raw)
                    .await
                    .unwrap_or_else(|e| panic!("{statement}: {e}"));
            }
            if name == "keep" {
                sqlx::query(
                    "INSERT INTO workflow_events (run_id, kind, payload, at) \
                     VALUES ('keep', 'node_queued', '{}', $1)",
                )
                .bind(at)
                .execute(&raw)
                .await
                .expect("node_queued");
            }
        }
        let gone_seq = read(&raw).await.last().expect("events").0;
        sqlx::query("DELETE FROM workflows WHERE id = 'gone'")
            .execute(&raw)
            .await
            .expect("delete");
        let kept = read(&raw).await;
        raw.close().await;
        (kept, gone_seq)
    };
    assert_eq!(kept.len(), 2);
    assert!(kept.iter().all(|e| e.0 < deleted_seq));

    let store = open_store(&location).await.expect("migrate to 0007");
    let now: Vec<Row> = store
        .events(EventFilter::All, 0, 100)
        .await
        .expect("events")
        .into_iter()
        .map(|e| (e.seq, e.run_id.expect("a run's event"), e.kind))
        .collect();
    assert_eq!(now, kept);
    let job = create(&*store, "after", &["m"], &[2]).await;
    let seq = store
        .append_job_event(&job.id, "job_started", &json!({}))
        .await
        .expect("append");
    assert_eq!(
        seq,
        deleted_seq + 1,
        "a deleted event's seq was handed out again"
    );
}
