//! Migrations, job creation and lookup, status derivation, crash recovery, cascade delete.

use std::time::Duration;

use serde_json::json;
use tradeloom_store::EventFilter;
use tradeloom_store::{
    JobStatus, MigrationState, ModelDayKey, ModelDayStatus, ModelDayStop, StoreError, config_hash,
    db_migrate, db_status,
};

use crate::Ctx;
use crate::backend_tests;
use crate::fixtures::{create, date, finish, new_job};

backend_tests!(
    migrations_apply_and_are_idempotent,
    create_and_find_by_config_hash,
    job_status_derivation,
    crash_recovery_resets_running_model_days,
    cascade_delete_removes_children,
    retry_reopens_only_failed_model_days,
    refused_days_are_not_completed_and_count_their_session,
    an_interrupted_job_is_marked_and_resumes,
);

async fn migrations_apply_and_are_idempotent(t: Ctx) {
    let status = t.store.migration_status().await.expect("status");
    assert!(!status.is_empty());
    assert!(
        status.iter().all(|m| m.state == MigrationState::Applied),
        "{status:?}"
    );
    // Opening again (which migrates) and `db migrate` change nothing.
    let again = db_migrate(&t.location).await.expect("migrate again");
    assert_eq!(again, status);
    assert_eq!(db_status(&t.location).await.expect("db status"), status);
    t.store.health().await.expect("health");
}

async fn create_and_find_by_config_hash(t: Ctx) {
    let s = &*t.store;
    let mut new = new_job("a", &["gpt", "claude"], &[3, 2, 3, 6]);
    new.models.push("gpt".into());
    let job = s.create_job(new).await.expect("create");
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!(job.id.len(), 36);
    let report = s.job_report(&job.id).await.expect("report");
    // Duplicate models and dates collapse: 2 models × 3 dates.
    assert_eq!(report.progress.total_model_days, 6);
    assert_eq!(report.progress.pending, 6);
    assert_eq!(report.model_days[0].date, date(2));
    assert_eq!(report.model_days[0].model, "claude");

    // The same config with other key order finds the job.
    let reordered = json!({"agent": {"max_steps": 30}, "initial_cash": "10000", "tag": "a"});
    assert_eq!(config_hash(&reordered), job.config_hash);
    let found = s
        .find_job_by_config_hash(&config_hash(&reordered))
        .await
        .expect("find")
        .expect("found");
    assert_eq!(found.id, job.id);
    assert_eq!(found.config, job.config);
    assert!(
        s.find_job_by_config_hash("0".repeat(64).as_str())
            .await
            .expect("find")
            .is_none()
    );

    // A second active job for the same config is a conflict; another config is fine.
    let dup = s.create_job(new_job("a", &["gpt"], &[2])).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    let other = create(s, "b", &["gpt"], &[2]).await;
    assert_eq!(
        s.current_job().await.expect("current").map(|j| j.id),
        Some(job.id.clone()),
        "the oldest active job is current"
    );
    let listed = s.list_jobs(10, 0).await.expect("list");
    assert_eq!(
        listed.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        [other.id.as_str(), job.id.as_str()]
    );
    assert_eq!(s.list_jobs(1, 1).await.expect("list").len(), 1);

    // Once the job finished, the same config may run again.
    s.fail_job(&job.id, "config unreadable")
        .await
        .expect("fail");
    let rerun = create(s, "a", &["gpt"], &[2]).await;
    assert_ne!(rerun.id, job.id);
    let newest = s
        .find_job_by_config_hash(&job.config_hash)
        .await
        .expect("find")
        .expect("found");
    assert_eq!(newest.id, rerun.id);
    assert!(matches!(
        s.job("no-such-job").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.create_job(new_job("c", &[], &[2])).await,
        Err(StoreError::Invalid(_))
    ));
}

async fn job_status_derivation(t: Ctx) {
    let s = &*t.store;
    // completed
    let job = create(s, "ok", &["m1", "m2"], &[2]).await;
    let running = s.mark_job_running(&job.id).await.expect("running");
    assert_eq!(running.status, JobStatus::Running);
    assert!(running.started_at.is_some());
    for m in ["m1", "m2"] {
        finish(s, &ModelDayKey::new(&job.id, m, date(2)), "10100").await;
    }
    let done = s.refresh_job_status(&job.id).await.expect("refresh");
    assert_eq!(done.status, JobStatus::Completed);
    assert!(done.finished_at.is_some());
    assert!(matches!(
        s.mark_job_running(&job.id).await,
        Err(StoreError::Conflict(_))
    ));

    // partial, and running while something is left
    let job = create(s, "some", &["m1", "m2", "m3"], &[2]).await;
    s.mark_job_running(&job.id).await.expect("running");
    finish(s, &ModelDayKey::new(&job.id, "m1", date(2)), "10100").await;
    s.fail_model_day(&ModelDayKey::new(&job.id, "m2", date(2)), "LLM timeout")
        .await
        .expect("fail");
    let mid = s.refresh_job_status(&job.id).await.expect("refresh");
    assert_eq!(mid.status, JobStatus::Running);
    assert!(mid.finished_at.is_none());
    let failed = s
        .fail_model_day(&ModelDayKey::new(&job.id, "m3", date(2)), "bad tool loop")
        .await
        .expect("fail");
    assert_eq!(failed.status, ModelDayStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("bad tool loop"));
    let partial = s.refresh_job_status(&job.id).await.expect("refresh");
    assert_eq!(partial.status, JobStatus::Partial);
    let report = s.job_report(&job.id).await.expect("report");
    assert_eq!(
        (
            report.progress.completed,
            report.progress.failed,
            report.progress.pending,
            report.progress.running
        ),
        (1, 2, 0, 0)
    );
    // A completed model-day cannot fail afterwards.
    assert!(matches!(
        s.fail_model_day(&ModelDayKey::new(&job.id, "m1", date(2)), "late")
            .await,
        Err(StoreError::Conflict(_))
    ));

    // failed
    let job = create(s, "none", &["m1"], &[2, 3]).await;
    s.mark_job_running(&job.id).await.expect("running");
    for d in [2, 3] {
        s.fail_model_day(&ModelDayKey::new(&job.id, "m1", date(d)), "down")
            .await
            .expect("fail");
    }
    assert_eq!(
        s.refresh_job_status(&job.id).await.expect("refresh").status,
        JobStatus::Failed
    );

    // A job failed as a whole fails its unfinished model-days.
    let job = create(s, "whole", &["m1"], &[2, 3]).await;
    finish(s, &ModelDayKey::new(&job.id, "m1", date(2)), "10000").await;
    let failed = s
        .fail_job(&job.id, "provider gone")
        .await
        .expect("fail job");
    assert_eq!(failed.status, JobStatus::Partial);
    assert_eq!(failed.error.as_deref(), Some("provider gone"));
    assert!(s.current_job().await.expect("current").is_none());
}

async fn retry_reopens_only_failed_model_days(t: Ctx) {
    let s = &*t.store;
    let job = create(s, "retry", &["m1", "m2"], &[2]).await;
    s.mark_job_running(&job.id).await.expect("running");
    let ok = ModelDayKey::new(&job.id, "m1", date(2));
    let bad = ModelDayKey::new(&job.id, "m2", date(2));
    finish(s, &ok, "10100").await;
    s.fail_model_day(&bad, "HTTP 500").await.expect("fail");
    assert_eq!(
        s.refresh_job_status(&job.id).await.expect("refresh").status,
        JobStatus::Partial
    );

    assert_eq!(s.retry_failed_model_days(&job.id).await.expect("retry"), 1);
    let reopened = s.job(&job.id).await.expect("job");
    assert_eq!(reopened.status, JobStatus::Pending);
    assert!(reopened.finished_at.is_none());
    let day = s.model_day(&bad).await.expect("day");
    assert_eq!(
        (day.status, day.error.as_deref()),
        (ModelDayStatus::Pending, None)
    );
    assert_eq!(
        s.model_day(&ok).await.expect("day").status,
        ModelDayStatus::Completed
    );
    let todo = s.unfinished_model_days(&job.id).await.expect("todo");
    assert_eq!(todo.len(), 1);
    assert_eq!(todo[0].model, "m2");
    // The job can run again and finish.
    s.mark_job_running(&job.id).await.expect("running again");
    finish(s, &bad, "9900").await;
    assert_eq!(
        s.refresh_job_status(&job.id).await.expect("refresh").status,
        JobStatus::Completed
    );
    // Nothing failed: nothing to reopen, the job stays completed.
    assert_eq!(s.retry_failed_model_days(&job.id).await.expect("retry"), 0);
    assert_eq!(
        s.job(&job.id).await.expect("job").status,
        JobStatus::Completed
    );
}

async fn crash_recovery_resets_running_model_days(t: Ctx) {
    let s = &*t.store;
    let job = create(s, "crash", &["m1", "m2"], &[2, 3]).await;
    let lease = Duration::from_secs(3600);
    let k1 = ModelDayKey::new(&job.id, "m1", date(2));
    let k2 = ModelDayKey::new(&job.id, "m2", date(2));
    let claimed = s
        .claim_model_day(&k1, lease)
        .await
        .expect("claim")
        .expect("claimed");
    assert_eq!(claimed.status, ModelDayStatus::Running);
    assert_eq!(claimed.attempts, 1);
    // A fresh running model-day cannot be claimed twice...
    assert!(
        s.claim_model_day(&k1, lease)
            .await
            .expect("claim")
            .is_none()
    );
    // ...but one whose worker went silent past the lease can.
    let stolen = s
        .claim_model_day(&k1, Duration::ZERO)
        .await
        .expect("claim")
        .expect("stale claim");
    assert_eq!(stolen.attempts, 2);
    s.claim_model_day(&k2, lease)
        .await
        .expect("claim")
        .expect("claimed");
    assert_eq!(
        s.unfinished_model_days(&job.id).await.expect("todo").len(),
        4
    );

    // The process restarts: running → pending.
    assert_eq!(s.reset_running_model_days(&job.id).await.expect("reset"), 2);
    let report = s.job_report(&job.id).await.expect("report");
    assert_eq!(report.progress.pending, 4);
    assert_eq!(report.progress.running, 0);
    assert!(report.model_days.iter().all(|d| d.started_at.is_none()));
    assert_eq!(s.reset_running_model_days(&job.id).await.expect("reset"), 0);

    // Finishing after recovery works and leaves the other three to do, in date order.
    finish(s, &k1, "10000").await;
    let todo = s.unfinished_model_days(&job.id).await.expect("todo");
    let keys: Vec<_> = todo.iter().map(|d| (d.model.as_str(), d.date)).collect();
    assert_eq!(keys, [("m2", date(2)), ("m1", date(3)), ("m2", date(3))]);
    assert_eq!(s.model_day(&k1).await.expect("day").attempts, 3);
    assert!(matches!(
        s.claim_model_day(&ModelDayKey::new(&job.id, "m9", date(2)), lease)
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn an_interrupted_job_is_marked_and_resumes(t: Ctx) {
    let s = &*t.store;
    let job = create(s, "killed", &["m1", "m2"], &[2]).await;
    s.mark_job_running(&job.id).await.expect("running");
    let lease = Duration::from_secs(3600);
    let k1 = ModelDayKey::new(&job.id, "m1", date(2));
    s.claim_model_day(&k1, lease)
        .await
        .expect("claim")
        .expect("claimed");

    let reason = "interrupted: its process (pid 7) has exited (host h)";
    let marked = s
        .interrupt_job(&job.id, reason)
        .await
        .expect("interrupt")
        .expect("it was running");
    assert_eq!(marked.status, JobStatus::Interrupted);
    assert_eq!(marked.error.as_deref(), Some(reason));
    assert!(!marked.status.is_terminal(), "an interrupted job resumes");
    let report = s.job_report(&job.id).await.expect("report");
    assert_eq!((report.progress.running, report.progress.pending), (0, 2));
    let events = s
        .events(EventFilter::Job(&job.id), 0, 100)
        .await
        .expect("events");
    let last = events.last().expect("an event");
    assert_eq!(last.kind, "job_interrupted");
    assert_eq!(last.payload["reason"], reason);
    // Once: an interrupted job is not interrupted again.
    assert!(
        s.interrupt_job(&job.id, reason)
            .await
            .expect("again")
            .is_none()
    );
    assert!(matches!(
        s.interrupt_job("no-such-job", reason).await,
        Err(StoreError::NotFound { .. })
    ));
    // The same config still finds it (no duplicate job), and it resumes.
    let again = s.create_job(new_job("killed", &["m1", "m2"], &[2])).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let resumed = s.mark_job_running(&job.id).await.expect("resume");
    assert_eq!(resumed.status, JobStatus::Running);
    assert_eq!(resumed.error, None);
}

async fn cascade_delete_removes_children(t: Ctx) {
    let s = &*t.store;
    let job = create(s, "gone", &["m1"], &[2]).await;
    let keep = create(s, "kept", &["m1"], &[2]).await;
    finish(s, &ModelDayKey::new(&job.id, "m1", date(2)), "10000").await;
    finish(s, &ModelDayKey::new(&keep.id, "m1", date(2)), "10000").await;
    let tables = [
        "job_details",
        "positions",
        "holdings",
        "reasoning_logs",
        "tool_usage",
    ];
    for table in tables {
        assert_eq!(t.count(table).await % 2, 0, "{table}");
        assert!(t.count(table).await >= 2, "{table} has rows of both jobs");
    }
    let before: Vec<i64> = futures_counts(&t, &tables).await;
    s.delete_job(&job.id).await.expect("delete");
    let after: Vec<i64> = futures_counts(&t, &tables).await;
    for ((table, b), a) in tables.iter().zip(before).zip(after) {
        assert_eq!(a * 2, b, "{table}: half of the rows were the deleted job's");
    }
    assert_eq!(t.count("jobs").await, 1);
    assert!(matches!(
        s.delete_job(&job.id).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn futures_counts(t: &Ctx, tables: &[&str]) -> Vec<i64> {
    let mut out = Vec::new();
    for table in tables {
        out.push(t.count(table).await);
    }
    out
}

/// SQLite specifics: WAL, foreign keys, and `db status` of a file never migrated.
#[tokio::test]
async fn sqlite_settings_and_fresh_status() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let fresh = dir.path().join("fresh.db").display().to_string();
    let status = db_status(&fresh).await.expect("status");
    assert!(!status.is_empty());
    assert!(status.iter().all(|m| m.state == MigrationState::Pending));

    let path = dir.path().join("store.db");
    let store = tradeloom_store::SqliteStore::open(&path)
        .await
        .expect("open");
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .expect("journal mode");
    assert_eq!(mode, "wal");
    let (fk,): (i64,) = sqlx::query_as("PRAGMA foreign_keys")
        .fetch_one(store.pool())
        .await
        .expect("foreign keys");
    assert_eq!(fk, 1);
    // A directory location means `DIR/tradeloom.db`.
    let in_dir = format!("{}/", dir.path().join("data").display());
    tradeloom_store::open_store(&in_dir)
        .await
        .expect("open dir");
    assert!(dir.path().join("data/tradeloom.db").exists());
    assert!(matches!(
        tradeloom_store::open_store("mysql://x/y").await,
        Err(StoreError::Invalid(_))
    ));
}

/// Issue 12: a day refused by the kill switch has its own status, keeps the job from being
/// completed, is retried by a re-trigger like a failed day, and what its session (or a failed
/// one's) did counts: tool calls and tool errors reach the leaderboard.
async fn refused_days_are_not_completed_and_count_their_session(t: Ctx) {
    let s = &*t.store;
    let job = create(s, "refused", &["m1", "m2"], &[2, 3]).await;
    s.mark_job_running(&job.id).await.expect("running");
    let key = |m: &str, d| ModelDayKey::new(&job.id, m, date(d));
    finish(s, &key("m1", 2), "10100").await;
    s.claim_model_day(&key("m2", 2), Duration::from_secs(600))
        .await
        .expect("claim")
        .expect("claimable");
    let failed = s
        .stop_model_day(
            &key("m2", 2),
            &ModelDayStop {
                status: ModelDayStatus::Failed,
                error: "too many tool errors".into(),
                steps: Some(3),
                tool_calls: Some(4),
                tool_errors: Some(3),
            },
        )
        .await
        .expect("fail");
    assert_eq!(
        (failed.steps, failed.tool_calls, failed.tool_errors),
        (Some(3), Some(4), Some(3))
    );
    for m in ["m1", "m2"] {
        let refused = s
            .stop_model_day(
                &key(m, 3),
                &ModelDayStop {
                    status: ModelDayStatus::Refused,
                    error: "risk.kill_switch: global kill switch engaged".into(),
                    steps: None,
                    tool_calls: None,
                    tool_errors: None,
                },
            )
            .await
            .expect("refuse");
        assert_eq!(refused.status, ModelDayStatus::Refused);
    }
    let job_now = s.refresh_job_status(&job.id).await.expect("refresh");
    assert_eq!(job_now.status, JobStatus::Partial);
    let report = s.job_report(&job.id).await.expect("report");
    assert_eq!(
        (
            report.progress.completed,
            report.progress.failed,
            report.progress.refused
        ),
        (1, 1, 2)
    );
    // The completed day counts the model's calls (the fixture makes two, at steps 1 and 2).
    assert_eq!(
        s.model_day(&key("m1", 2)).await.expect("day").tool_calls,
        Some(2)
    );
    let board = s
        .leaderboard(&job.id, crate::fixtures::usd("10000"))
        .await
        .expect("board");
    let m2 = board.iter().find(|e| e.model == "m2").expect("m2");
    assert_eq!((m2.tool_calls, m2.tool_errors), (4, 3));
    assert_eq!((m2.failed_days, m2.refused_days), (1, 1));
    let m1 = board.iter().find(|e| e.model == "m1").expect("m1");
    assert_eq!((m1.tool_calls, m1.tool_errors, m1.refused_days), (2, 1, 1));
    // Only failed or refused.
    assert!(matches!(
        s.stop_model_day(
            &key("m2", 3),
            &ModelDayStop {
                status: ModelDayStatus::Completed,
                ..ModelDayStop::failed("x")
            }
        )
        .await,
        Err(StoreError::Invalid(_))
    ));
    // The raw status really is `refused` (the migration widened the CHECK constraint).
    assert_eq!(
        t.text("SELECT status FROM job_details WHERE date = '2025-01-03' AND model = 'm1'")
            .await,
        "refused"
    );
    // A re-trigger reopens the failed and the refused days, with their counts cleared.
    assert_eq!(s.retry_failed_model_days(&job.id).await.expect("retry"), 3);
    let day = s.model_day(&key("m2", 2)).await.expect("day");
    assert_eq!(day.status, ModelDayStatus::Pending);
    assert_eq!(
        (day.tool_calls, day.tool_errors, day.error),
        (None, None, None)
    );
    assert_eq!(
        s.model_day(&key("m1", 3)).await.expect("day").status,
        ModelDayStatus::Pending
    );
}

/// Migration 0010 rebuilds SQLite's job_details (to widen its status CHECK): the rows of the
/// tables that reference it survive, foreign keys are enforced afterwards, and completed days
/// get their tool call count from tool_usage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_migration_0010_keeps_model_day_children() {
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
        .run_to(8, &pool)
        .await
        .expect("migrate to 8");
    let at = chrono::Utc::now();
    sqlx::query(
        "INSERT INTO jobs (id, config, config_hash, currency, currency_precision, status, \
         created_at) VALUES ('j1', '{}', 'h', 'USD', 2, 'completed', ?1)",
    )
    .bind(at)
    .execute(&pool)
    .await
    .expect("job");
    sqlx::query(
        "INSERT INTO job_details (job_id, model, date, status, attempts, steps, tool_errors, \
         cash, portfolio_value) VALUES ('j1', 'm', '2025-01-02', 'completed', 1, 3, 1, '10', '10'), \
         ('j1', 'm', '2025-01-03', 'failed', 1, NULL, NULL, NULL, NULL)",
    )
    .execute(&pool)
    .await
    .expect("days");
    for (seq, step) in [(0, 0), (1, 1), (2, 2)] {
        sqlx::query(
            "INSERT INTO tool_usage (job_id, model, date, seq, step, tool_name, args, \
             latency_ms, created_at) VALUES ('j1', 'm', '2025-01-02', ?1, ?2, 't', '{}', 1, ?3)",
        )
        .bind(seq)
        .bind(step)
        .bind(at)
        .execute(&pool)
        .await
        .expect("tool call");
    }
    sqlx::query(
        "INSERT INTO positions (job_id, model, date, seq, step, action, symbol, quantity, price, \
         fee, cash_after) VALUES ('j1', 'm', '2025-01-02', 0, 1, 'buy', 'A', '1', '1', '0', '9')",
    )
    .execute(&pool)
    .await
    .expect("position");
    pool.close().await;

    let location = path.display().to_string();
    let store = tradeloom_store::open_store(&location)
        .await
        .expect("migrate");
    let day = store
        .model_day(&ModelDayKey::new("j1", "m", date(2)))
        .await
        .expect("day");
    assert_eq!(day.status, ModelDayStatus::Completed);
    assert_eq!((day.tool_calls, day.tool_errors), (Some(2), Some(1)));
    let failed = store
        .model_day(&ModelDayKey::new("j1", "m", date(3)))
        .await
        .expect("day");
    assert_eq!(failed.tool_calls, None);
    assert_eq!(
        store
            .tool_usage(&ModelDayKey::new("j1", "m", date(2)))
            .await
            .expect("calls")
            .len(),
        3
    );
    assert_eq!(
        store
            .trades(&ModelDayKey::new("j1", "m", date(2)))
            .await
            .expect("trades")
            .len(),
        1
    );
    // Foreign keys are on again and point at the new table: deleting the job cascades.
    store.delete_job("j1").await.expect("delete");
    let raw = sqlx::SqlitePool::connect(&format!("sqlite://{location}"))
        .await
        .expect("raw");
    let (left,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM positions")
        .fetch_one(&raw)
        .await
        .expect("count");
    assert_eq!(left, 0);
    let (check,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM pragma_foreign_key_check")
        .fetch_one(&raw)
        .await
        .expect("fk check");
    assert_eq!(check, 0);
}
