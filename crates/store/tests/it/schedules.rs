//! Workflow schedule fire times: each is claimed once however many callers race for it, records
//! its run or its error, and goes away with its workflow.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use tradeloom_store::{NewWorkflowVersion, StoreError};

use crate::Ctx;
use crate::backend_tests;

backend_tests!(
    schedule_fires_are_claimed_once,
    schedule_fires_record_runs_and_errors,
    concurrent_claims_have_one_winner,
    schedule_fires_go_with_their_workflow,
);

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

async fn workflow(t: &Ctx, name: &str) -> String {
    t.store
        .create_workflow(&NewWorkflowVersion {
            name: name.into(),
            definition: format!(r#"{{"name":"{name}"}}"#),
            ir: format!(r#"{{"ir":"{name}"}}"#),
        })
        .await
        .expect("create a workflow")
        .workflow_id
}

async fn schedule_fires_are_claimed_once(t: Ctx) {
    let s = &*t.store;
    let daily = workflow(&t, "daily").await;
    let other = workflow(&t, "other").await;
    assert_eq!(s.last_schedule_fire(&daily).await.expect("last"), None);
    let six = at("2024-01-02T06:00:00Z");
    assert!(s.claim_schedule_fire(&daily, six).await.expect("claim"));
    assert!(!s.claim_schedule_fire(&daily, six).await.expect("again"));
    // Fire times are per workflow.
    assert!(s.claim_schedule_fire(&other, six).await.expect("other"));
    assert!(
        s.claim_schedule_fire(&daily, six - TimeDelta::days(1))
            .await
            .expect("an older one")
    );
    assert_eq!(
        s.last_schedule_fire(&daily).await.expect("last"),
        Some(six),
        "the latest by fire time, not by claim order"
    );
    let seven = at("2024-01-03T06:00:00Z");
    assert!(s.claim_schedule_fire(&daily, seven).await.expect("next"));
    assert_eq!(
        s.last_schedule_fire(&daily).await.expect("last"),
        Some(seven)
    );
    assert_eq!(t.count("workflow_schedule_fires").await, 4);
    assert!(matches!(
        s.claim_schedule_fire("no-such-workflow", six).await,
        Err(StoreError::NotFound { what }) if what.contains("no-such-workflow")
    ));
}

async fn schedule_fires_record_runs_and_errors(t: Ctx) {
    let s = &*t.store;
    let id = workflow(&t, "daily").await;
    let one = at("2024-01-01T06:00:00Z");
    let two = at("2024-01-02T06:00:00Z");
    let three = at("2024-01-03T06:00:00Z");
    for fire in [one, two, three] {
        assert!(s.claim_schedule_fire(&id, fire).await.expect("claim"));
    }
    s.set_schedule_fire_run(&id, one, "run-1")
        .await
        .expect("run");
    s.set_schedule_fire_error(&id, two, "the runtime is shutting down")
        .await
        .expect("error");
    let fires = s.schedule_fires(&id, 0).await.expect("list");
    let seen: Vec<_> = fires
        .iter()
        .map(|f| (f.fire_at, f.run_id.as_deref(), f.error.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            (three, None, None),
            (two, None, Some("the runtime is shutting down")),
            (one, Some("run-1"), None),
        ]
    );
    assert!(fires.iter().all(|f| f.workflow_id == id));
    assert_eq!(s.schedule_fires(&id, 2).await.expect("page").len(), 2);
    assert!(matches!(
        s.set_schedule_fire_run(&id, at("2024-01-04T06:00:00Z"), "run-4")
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.set_schedule_fire_error(&id, at("2024-01-04T06:00:00Z"), "x")
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Eight callers race for each of five fire times: each has exactly one winner.
async fn concurrent_claims_have_one_winner(t: Ctx) {
    let id = workflow(&t, "daily").await;
    let base = at("2024-01-01T06:00:00Z");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = Arc::clone(&t.store);
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            for day in 0..5 {
                let fire = base + TimeDelta::days(day);
                if store.claim_schedule_fire(&id, fire).await.expect("claim") {
                    won.push(fire);
                }
            }
            won
        }));
    }
    let mut won = Vec::new();
    for task in tasks {
        won.extend(task.await.expect("task"));
    }
    won.sort();
    let expected: Vec<_> = (0..5).map(|day| base + TimeDelta::days(day)).collect();
    assert_eq!(won, expected);
}

async fn schedule_fires_go_with_their_workflow(t: Ctx) {
    let s = &*t.store;
    let id = workflow(&t, "daily").await;
    assert!(
        s.claim_schedule_fire(&id, at("2024-01-01T06:00:00Z"))
            .await
            .expect("claim")
    );
    s.delete_workflow(&id).await.expect("delete");
    assert_eq!(t.count("workflow_schedule_fires").await, 0);
    assert_eq!(s.last_schedule_fire(&id).await.expect("last"), None);
    assert!(s.schedule_fires(&id, 0).await.expect("list").is_empty());
}
