//! Engine runs' events (paper runs' `order`, `fill`, `equity`) share the event log and its
//! sequence with workflow runs and jobs; migration 0011 lets an event belong to an engine run
//! and keeps every earlier event with its seq.

use serde_json::json;
use tradeloom_store::EventFilter;
use tradeloom_store::StoreError;

use crate::backend_tests;
use crate::fixtures::create;
use crate::{Ctx, Raw};

backend_tests!(
    engine_run_events_share_the_sequence_and_filter_by_run,
    an_event_belongs_to_exactly_one_owner
);

fn events(kinds: &[&str]) -> Vec<(String, serde_json::Value)> {
    kinds
        .iter()
        .enumerate()
        .map(|(i, k)| (k.to_string(), json!({"i": i, "equity": "100000.25"})))
        .collect()
}

async fn engine_run_events_share_the_sequence_and_filter_by_run(t: Ctx) {
    let s = &*t.store;
    let job = create(s, "events", &["m"], &[2]).await;
    let started = s
        .append_job_event(&job.id, "job_started", &json!({}))
        .await
        .expect("job event");
    let seqs = s
        .append_engine_run_events("run-a", &events(&["order", "fill", "equity"]))
        .await
        .expect("append");
    assert_eq!(seqs.len(), 3);
    assert!(
        seqs[0] > started && seqs.windows(2).all(|w| w[0] < w[1]),
        "{seqs:?}"
    );
    s.append_engine_run_events("run-b", &events(&["equity"]))
        .await
        .expect("other run");
    let more = s
        .append_engine_run_events("run-a", &events(&["run_finished"]))
        .await
        .expect("more");
    assert!(
        s.append_engine_run_events("run-a", &[])
            .await
            .expect("none")
            .is_empty()
    );

    let a = s
        .events(EventFilter::EngineRun("run-a"), 0, 100)
        .await
        .expect("run-a events");
    let kinds: Vec<&str> = a.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["order", "fill", "equity", "run_finished"]);
    assert!(a.iter().all(|e| e.engine_run_id.as_deref() == Some("run-a")
        && e.run_id.is_none()
        && e.job_id.is_none()));
    assert_eq!(a[2].payload["equity"], "100000.25", "money stays a string");
    // Resume after a seq.
    let after = s
        .events(EventFilter::EngineRun("run-a"), seqs[1], 100)
        .await
        .expect("after");
    assert_eq!(
        after.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![seqs[2], more[0]]
    );
    let all = s.events(EventFilter::All, 0, 100).await.expect("all");
    assert_eq!(all.len(), 6);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(
        s.events(EventFilter::Job(&job.id), 0, 100)
            .await
            .expect("job")
            .iter()
            .all(|e| e.engine_run_id.is_none())
    );

    for (id, kinds) in [("", vec!["order"]), ("run-a", vec!["order", " "])] {
        let kinds: Vec<&str> = kinds.to_vec();
        match s.append_engine_run_events(id, &events(&kinds)).await {
            Err(StoreError::Invalid(_)) => {}
            other => panic!("`{id}` {kinds:?}: {other:?}"),
        }
    }
    // Nothing of a refused batch was written.
    assert_eq!(
        s.events(EventFilter::All, 0, 100).await.expect("all").len(),
        6
    );
}

async fn an_event_belongs_to_exactly_one_owner(t: Ctx) {
    let s = &*t.store;
    let job = create(s, "owner", &["m"], &[2]).await;
    let both = format!(
        "INSERT INTO workflow_events (job_id, engine_run_id, kind, payload, at) \
         VALUES ('{}', 'run-x', 'k', '{{}}', '2026-01-01T00:00:00Z')",
        job.id
    );
    let none = "INSERT INTO workflow_events (kind, payload, at) \
                VALUES ('k', '{}', '2026-01-01T00:00:00Z')";
    for statement in [both.as_str(), none] {
        let sql = sqlx::AssertSqlSafe(statement.to_string());
        let result = match &t.raw {
            Raw::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
            Raw::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        };
        assert!(result.is_err(), "the CHECK refuses {statement}");
    }
    assert_eq!(t.count("workflow_events").await, 0);
}

/// Migration 0011 rebuilds SQLite's event log: earlier events keep their seq and owner, and
/// the seq counter goes on past every seq handed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_migration_0011_keeps_events_and_their_seq() {
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
        .run_to(10, &pool)
        .await
        .expect("migrate to 10");
    sqlx::query(
        "INSERT INTO jobs (id, config, config_hash, currency, currency_precision, status, \
         created_at) VALUES ('j1', '{}', 'h', 'USD', 2, 'completed', '2026-01-01T00:00:00Z')",
    )
    .execute(&pool)
    .await
    .expect("job");
    for seq in [3, 7] {
        sqlx::query(
            "INSERT INTO workflow_events (seq, job_id, kind, payload, at) \
             VALUES (?1, 'j1', 'job_started', '{}', '2026-01-01T00:00:00Z')",
        )
        .bind(seq)
        .execute(&pool)
        .await
        .expect("event");
    }
    // A seq handed out and deleted since must not come back.
    sqlx::query("DELETE FROM workflow_events WHERE seq = 7")
        .execute(&pool)
        .await
        .expect("delete");
    pool.close().await;

    let store = tradeloom_store::open_store(&path.display().to_string())
        .await
        .expect("migrate");
    let old = store
        .events(EventFilter::Job("j1"), 0, 10)
        .await
        .expect("old");
    assert_eq!(old.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3]);
    let seqs = store
        .append_engine_run_events("r", &events(&["fill"]))
        .await
        .expect("append");
    assert_eq!(seqs, vec![8]);
}
