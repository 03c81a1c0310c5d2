//! A user's pause, resume and cancel of running jobs, in process with mock-llm models: the
//! driver stops at a pause and carries on at a resume that comes before it has ended, a paused
//! job is left alone by the start-up resume, and a cancel ends the job with its days cancelled.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tradeloom_agents::{
    AgentError, Simulator, SimulatorOptions, TriggerOutcome, config_from_value,
};
use tradeloom_store::{JobAction, JobStatus, ModelDayStatus, Store, open_store};

use crate::{Market, start_mock};

async fn simulator(market: &Market) -> Arc<Simulator> {
    let location = market.root().join("db").join("t.db").display().to_string();
    Simulator::new(
        open_store(&location).await.unwrap(),
        SimulatorOptions {
            data_dir: market.root().join("data"),
            max_concurrent_jobs: 1,
            base_dir: market.root().to_path_buf(),
            outbound: crate::loopback(),
        },
    )
}

fn slow_config(base: &str) -> serde_json::Value {
    json!({
        "models": [
            {"name": "s", "base_url": base, "model": "fault-slow-100", "max_retries": 0},
            {"name": "m", "base_url": base, "model": "momentum", "max_retries": 0}
        ],
        "universe": {"path": "universe"},
        "start_date": "2025-01-02",
        "end_date": "2025-01-10",
        "max_steps": 8,
    })
}

async fn until(
    store: &dyn Store,
    job_id: &str,
    what: &str,
    pred: impl Fn(&tradeloom_store::JobReport) -> bool,
) {
    for _ in 0..800 {
        let report = store.job_report(job_id).await.unwrap();
        if pred(&report) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("job {job_id}: never {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_holds_the_job_across_a_restart_and_resume_finishes_it() {
    let market = Market::create();
    let base = start_mock().await;
    let sim = simulator(&market).await;
    let config = config_from_value(&slow_config(&base), market.root()).unwrap();
    let TriggerOutcome::Started { job, .. } = sim.trigger(&config).await.unwrap() else {
        panic!("expected a new job");
    };
    let store = Arc::clone(sim.store());
    until(&*store, &job.id, "2 days done", |r| {
        r.progress.completed >= 2
    })
    .await;
    let paused = sim.pause(&job.id, "tester").await.unwrap();
    assert_eq!(paused.status, JobStatus::Paused);
    until(&*store, &job.id, "idle", |r| r.progress.running == 0).await;
    // The driver has let go of the job: the simulator runs nothing.
    for _ in 0..100 {
        if sim.running_jobs().await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sim.running_jobs().await.is_empty());
    let held = store.job_report(&job.id).await.unwrap();
    assert_eq!(held.job.status, JobStatus::Paused);
    assert!(held.progress.pending > 0, "{:?}", held.progress);
    // A trigger of the same config does not run it.
    assert!(
        matches!(sim.trigger(&config).await.unwrap(), TriggerOutcome::Paused(j) if j.id == job.id)
    );
    // A "restarted" simulator on the same store leaves it paused.
    let restarted = simulator(&market).await;
    assert!(restarted.resume_interrupted().await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        store.job_report(&job.id).await.unwrap().progress.completed,
        held.progress.completed
    );
    // Resume twice: the second is refused, naming the job and its status.
    let resumed = restarted.resume(&job.id, "tester").await.unwrap();
    assert_eq!(resumed.status, JobStatus::Running);
    match restarted.resume(&job.id, "tester").await {
        Err(AgentError::JobState {
            job_id,
            status,
            action,
            ..
        }) => {
            assert_eq!(
                (job_id, status, action),
                (job.id.clone(), JobStatus::Running, JobAction::Resume)
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    until(&*store, &job.id, "done", |r| r.job.status.is_terminal()).await;
    let done = store.job_report(&job.id).await.unwrap();
    assert_eq!(done.job.status, JobStatus::Completed);
    assert_eq!(done.progress.completed, 14);
    assert!(
        done.model_days.iter().all(|d| d.attempts == 1),
        "no day ran twice"
    );
}

/// A resume that comes while the paused job's driver is still finishing its in-flight days is
/// picked up by that driver: the job never ends up `running` with nobody running it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_resume_is_taken_up_by_the_same_driver() {
    let market = Market::create();
    let base = start_mock().await;
    let sim = simulator(&market).await;
    let config = config_from_value(&slow_config(&base), market.root()).unwrap();
    let TriggerOutcome::Started { job, .. } = sim.trigger(&config).await.unwrap() else {
        panic!("expected a new job");
    };
    let store = Arc::clone(sim.store());
    until(&*store, &job.id, "a day done", |r| {
        r.progress.completed >= 1
    })
    .await;
    sim.pause(&job.id, "tester").await.unwrap();
    sim.resume(&job.id, "tester").await.unwrap();
    until(&*store, &job.id, "done", |r| r.job.status.is_terminal()).await;
    let done = store.job_report(&job.id).await.unwrap();
    assert_eq!(done.job.status, JobStatus::Completed);
    assert_eq!(done.progress.completed, 14);
    assert!(done.model_days.iter().all(|d| d.attempts == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_ends_the_job_and_its_days_not_started() {
    let market = Market::create();
    let base = start_mock().await;
    let sim = simulator(&market).await;
    let config = config_from_value(&slow_config(&base), market.root()).unwrap();
    let TriggerOutcome::Started { job, .. } = sim.trigger(&config).await.unwrap() else {
        panic!("expected a new job");
    };
    let store = Arc::clone(sim.store());
    until(&*store, &job.id, "2 days done", |r| {
        r.progress.completed >= 2
    })
    .await;
    let mut events = sim.subscribe();
    assert_eq!(
        sim.cancel(&job.id, "tester").await.unwrap().status,
        JobStatus::Cancelled
    );
    until(&*store, &job.id, "idle", |r| r.progress.running == 0).await;
    let report = store.job_report(&job.id).await.unwrap();
    assert_eq!(report.job.status, JobStatus::Cancelled);
    let cancelled = report
        .model_days
        .iter()
        .filter(|d| d.status == ModelDayStatus::Cancelled)
        .count() as u64;
    assert_eq!(cancelled, report.progress.cancelled);
    assert_eq!(report.progress.completed + cancelled, 14);
    // The driver announced the end with the cancelled status.
    let finished = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(tradeloom_agents::SimEvent::JobFinished { status, .. }) = events.recv().await
            {
                return status;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(finished, JobStatus::Cancelled);
    assert!(matches!(
        sim.pause(&job.id, "tester").await,
        Err(AgentError::JobState {
            status: JobStatus::Cancelled,
            ..
        })
    ));
    // A trigger of the same config runs the cancelled days (the cancelled job is released).
    for _ in 0..100 {
        if sim.running_jobs().await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let again = sim.trigger(&config).await.unwrap();
    assert!(
        matches!(&again, TriggerOutcome::Started { job: j, resumed: true } if j.id == job.id),
        "{again:?}"
    );
    until(&*store, &job.id, "done", |r| r.job.status.is_terminal()).await;
    let rerun = store.job_report(&job.id).await.unwrap();
    assert_eq!(rerun.job.status, JobStatus::Completed);
    assert_eq!(rerun.progress.completed, 14);
    assert!(matches!(
        sim.cancel("no-such-job", "tester").await,
        Err(AgentError::Store(
            tradeloom_store::StoreError::NotFound { .. }
        ))
    ));
}
