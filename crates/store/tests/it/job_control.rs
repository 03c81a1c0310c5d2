//! A user's pause, resume and cancel of a job: the allowed transitions, the days a cancel
//! stops, the claim that refuses a paused job's days, statuses that survive a refresh, the
//! events that journal each action, and a re-trigger of a cancelled job.

use std::time::Duration;

use tradeloom_store::{
    EventFilter, JobAction, JobControl, JobStatus, ModelDayKey, ModelDayStatus, Store, StoreError,
};

use crate::Ctx;
use crate::backend_tests;
use crate::fixtures::{create, date, finish, outcome};

backend_tests!(
    pause_resume_cancel_follow_the_allowed_transitions,
    a_paused_job_starts_no_day_and_keeps_its_status,
    a_cancel_stops_the_days_not_started_and_a_retrigger_runs_them,
);

const LEASE: Duration = Duration::from_secs(3600);

/// Completes a day already claimed (in flight).
async fn complete(s: &dyn Store, key: &ModelDayKey, value: &str) {
    s.complete_model_day(key, &outcome(value, 2))
        .await
        .expect("complete");
}

async fn control(s: &dyn Store, job_id: &str, action: JobAction) -> JobControl {
    s.control_job(job_id, action, "alice")
        .await
        .expect("control")
}

fn done(c: JobControl) -> tradeloom_store::Job {
    match c {
        JobControl::Done(job) => job,
        JobControl::Refused(job) => panic!("refused at {}", job.status),
    }
}

fn refused(c: JobControl) -> JobStatus {
    match c {
        JobControl::Refused(job) => job.status,
        JobControl::Done(job) => panic!("allowed, now {}", job.status),
    }
}

async fn pause_resume_cancel_follow_the_allowed_transitions(t: Ctx) {
    let s = &*t.store;
    let job = create(s, "ctl", &["m1"], &[2, 3]).await;
    // Resume of a job that is not paused: refused, unchanged.
    assert_eq!(
        refused(control(s, &job.id, JobAction::Resume).await),
        JobStatus::Pending
    );
    s.mark_job_running(&job.id).await.expect("running");
    assert_eq!(
        refused(control(s, &job.id, JobAction::Resume).await),
        JobStatus::Running
    );
    let paused = done(control(s, &job.id, JobAction::Pause).await);
    assert_eq!(paused.status, JobStatus::Paused);
    assert!(!paused.status.is_terminal());
    assert_eq!(
        refused(control(s, &job.id, JobAction::Pause).await),
        JobStatus::Paused
    );
    // The paused job still holds its config's slot: no second job of the same config.
    let dup = s
        .create_job(crate::fixtures::new_job("ctl", &["m1"], &[2, 3]))
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    let resumed = done(control(s, &job.id, JobAction::Resume).await);
    assert_eq!(resumed.status, JobStatus::Running);
    // Finished: nothing is allowed.
    finish(s, &ModelDayKey::new(&job.id, "m1", date(2)), "10000").await;
    finish(s, &ModelDayKey::new(&job.id, "m1", date(3)), "10010").await;
    let ended = s.refresh_job_status(&job.id).await.expect("refresh");
    assert_eq!(ended.status, JobStatus::Completed);
    for action in [JobAction::Pause, JobAction::Resume, JobAction::Cancel] {
        assert_eq!(
            refused(control(s, &job.id, action).await),
            JobStatus::Completed
        );
    }
    assert!(matches!(
        s.control_job("no-such-job", JobAction::Pause, "alice")
            .await,
        Err(StoreError::NotFound { .. })
    ));
    // Each action that happened is journaled with who asked and the status before.
    let events = s
        .events(EventFilter::Job(&job.id), 0, 100)
        .await
        .expect("events");
    let kinds: Vec<(&str, &str, &str)> = events
        .iter()
        .filter(|e| e.kind.starts_with("job_"))
        .map(|e| {
            (
                e.kind.as_str(),
                e.payload["by"].as_str().unwrap_or_default(),
                e.payload["from"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("job_paused", "alice", "running"),
            ("job_resumed", "alice", "paused")
        ]
    );
}

async fn a_paused_job_starts_no_day_and_keeps_its_status(t: Ctx) {
    let s = &*t.store;
    let job = create(s, "paused", &["m1", "m2"], &[2, 3]).await;
    s.mark_job_running(&job.id).await.expect("running");
    let k1 = ModelDayKey::new(&job.id, "m1", date(2));
    let k2 = ModelDayKey::new(&job.id, "m2", date(2));
    // m1's day is in flight when the pause lands.
    s.claim_model_day(&k1, LEASE)
        .await
        .expect("claim")
        .expect("claimed");
    done(control(s, &job.id, JobAction::Pause).await);
    assert!(
        s.claim_model_day(&k2, LEASE)
            .await
            .expect("claim")
            .is_none(),
        "no day of a paused job starts"
    );
    // The day in flight finishes and is kept; the job stays paused while days are left.
    complete(s, &k1, "10005").await;
    let job_now = s.refresh_job_status(&job.id).await.expect("refresh");
    assert_eq!(job_now.status, JobStatus::Paused);
    assert_eq!(job_now.finished_at, None);
    let p = s.job_report(&job.id).await.expect("report").progress;
    assert_eq!((p.completed, p.pending, p.running), (1, 3, 0));
    // `current` lists pending and running jobs only.
    assert!(s.current_job().await.expect("current").is_none());
    done(control(s, &job.id, JobAction::Resume).await);
    assert!(
        s.claim_model_day(&k2, LEASE)
            .await
            .expect("claim")
            .is_some()
    );
}

async fn a_cancel_stops_the_days_not_started_and_a_retrigger_runs_them(t: Ctx) {
    let s = &*t.store;
    let job = create(s, "cancel", &["m1", "m2"], &[2, 3]).await;
    s.mark_job_running(&job.id).await.expect("running");
    let k1 = ModelDayKey::new(&job.id, "m1", date(2));
    finish(s, &k1, "10001").await;
    let k2 = ModelDayKey::new(&job.id, "m2", date(2));
    s.claim_model_day(&k2, LEASE)
        .await
        .expect("claim")
        .expect("claimed");
    let cancelled = done(control(s, &job.id, JobAction::Cancel).await);
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert!(cancelled.status.is_terminal());
    assert!(cancelled.finished_at.is_some());
    let report = s.job_report(&job.id).await.expect("report");
    let statuses: Vec<(String, ModelDayStatus)> = report
        .model_days
        .iter()
        .map(|d| (format!("{} {}", d.model, d.date), d.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("m1 2025-01-02".to_string(), ModelDayStatus::Completed),
            ("m2 2025-01-02".to_string(), ModelDayStatus::Running),
            ("m1 2025-01-03".to_string(), ModelDayStatus::Cancelled),
            ("m2 2025-01-03".to_string(), ModelDayStatus::Cancelled),
        ]
    );
    assert_eq!(
        report.model_days[2].error.as_deref(),
        Some("cancelled by alice")
    );
    assert_eq!(report.progress.cancelled, 2);
    // The day in flight finishes; the job stays cancelled.
    complete(s, &k2, "9990").await;
    assert_eq!(
        s.refresh_job_status(&job.id).await.expect("refresh").status,
        JobStatus::Cancelled
    );
    let last = s
        .events(EventFilter::Job(&job.id), 0, 100)
        .await
        .expect("events")
        .into_iter()
        .rfind(|e| e.kind == "job_cancelled")
        .expect("journaled");
    assert_eq!(last.payload["cancelled_model_days"], 2);
    // A trigger of the same config runs the cancelled days (it is not "current").
    assert_eq!(s.retry_failed_model_days(&job.id).await.expect("retry"), 2);
    let reopened = s.job(&job.id).await.expect("job");
    assert_eq!(reopened.status, JobStatus::Pending);
    let p = s.job_report(&job.id).await.expect("report").progress;
    assert_eq!((p.completed, p.pending, p.cancelled), (2, 2, 0));
}

/// Migration 0013 rebuilds SQLite's jobs and job_details (to widen their status CHECKs): the
/// rows of every table that references them survive, the new statuses are accepted, a paused
/// job holds its config's slot, and foreign keys are enforced afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_migration_0013_keeps_jobs_days_and_their_children() {
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
        .run_to(12, &pool)
        .await
        .expect("migrate to 12");
    let at = chrono::Utc::now();
    sqlx::query(
        "INSERT INTO jobs (id, config, config_hash, currency, currency_precision, status, \
         created_at) VALUES ('j1', '{}', 'h', 'USD', 2, 'interrupted', ?1)",
    )
    .bind(at)
    .execute(&pool)
    .await
    .expect("job");
    sqlx::query(
        "INSERT INTO job_details (job_id, model, date, status, attempts, steps, tool_errors, \
         cash, portfolio_value, tool_calls) VALUES \
         ('j1', 'm', '2025-01-02', 'completed', 1, 3, 0, '10', '10', 2), \
         ('j1', 'm', '2025-01-03', 'pending', 0, NULL, NULL, NULL, NULL, NULL)",
    )
    .execute(&pool)
    .await
    .expect("days");
    sqlx::query(
        "INSERT INTO positions (job_id, model, date, seq, step, action, symbol, quantity, price, \
         fee, cash_after) VALUES ('j1', 'm', '2025-01-02', 0, 1, 'buy', 'A', '1', '1', '0', '9')",
    )
    .execute(&pool)
    .await
    .expect("position");
    sqlx::query(
        "INSERT INTO workflow_events (job_id, kind, payload, at) \
         VALUES ('j1', 'job_started', '{}', ?1)",
    )
    .bind(at)
    .execute(&pool)
    .await
    .expect("event");
    pool.close().await;

    let location = path.display().to_string();
    let store = tradeloom_store::open_store(&location)
        .await
        .expect("migrate");
    let job = store.job("j1").await.expect("job");
    assert_eq!(job.status, JobStatus::Interrupted);
    let day = store
        .model_day(&ModelDayKey::new("j1", "m", date(2)))
        .await
        .expect("day");
    assert_eq!(
        (day.status, day.tool_calls),
        (ModelDayStatus::Completed, Some(2))
    );
    assert_eq!(
        store
            .trades(&ModelDayKey::new("j1", "m", date(2)))
            .await
            .expect("trades")
            .len(),
        1
    );
    assert_eq!(
        store
            .events(EventFilter::Job("j1"), 0, 10)
            .await
            .expect("events")
            .len(),
        1
    );
    // The new statuses are accepted, and a cancel stops the pending day.
    done(control(&*store, "j1", JobAction::Pause).await);
    let dup = sqlx::SqlitePool::connect(&format!("sqlite://{location}"))
        .await
        .expect("raw");
    let second = sqlx::query(
        "INSERT INTO jobs (id, config, config_hash, currency, currency_precision, status, \
         created_at) VALUES ('j2', '{}', 'h', 'USD', 2, 'pending', ?1)",
    )
    .bind(at)
    .execute(&dup)
    .await;
    assert!(second.is_err(), "a paused job holds its config's slot");
    done(control(&*store, "j1", JobAction::Cancel).await);
    assert_eq!(
        store
            .model_day(&ModelDayKey::new("j1", "m", date(3)))
            .await
            .expect("day")
            .status,
        ModelDayStatus::Cancelled
    );
    // Foreign keys are on again and point at the new tables: deleting the job cascades.
    store.delete_job("j1").await.expect("delete");
    let (left,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM positions")
        .fetch_one(&dup)
        .await
        .expect("count");
    assert_eq!(left, 0);
    let (check,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM pragma_foreign_key_check")
        .fetch_one(&dup)
        .await
        .expect("fk check");
    assert_eq!(check, 0);
}
