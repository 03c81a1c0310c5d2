//! Workflows, runs, events and approvals through the typed calls, and the API's 4xx answers
//! as typed errors with their JSON bodies.

use std::time::{Duration, Instant};

use serde_json::json;
use tradeloom_client::{
    ApprovalFilter, ApprovalStatus, DecideRequest, Decision, Error, FollowEnd, NodeStatus,
    RunFilter, RunStatus, SaveOutcome, StartRun,
};
use tradeloom_server::AuthMode;

use crate::harness::{gate, serve};

const POLL: Duration = Duration::from_millis(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gated_run_waits_is_approved_and_completes() {
    let server = serve(AuthMode::Off).await;
    let client = server.client(None);

    let (saved, outcome) = client.save_workflow("gate", &gate("gate")).await.unwrap();
    assert_eq!(
        (outcome, saved.version, saved.changed),
        (SaveOutcome::Created, 1, true)
    );
    assert_eq!(saved.ir_hash.len(), 64, "{saved:?}");
    let (again, outcome) = client.save_workflow("gate", &gate("gate")).await.unwrap();
    assert_eq!(
        (outcome, again.id.as_str()),
        (SaveOutcome::Unchanged, saved.id.as_str())
    );

    let started = client
        .start_run(&saved.id, &StartRun::default())
        .await
        .unwrap();
    assert_eq!(started.workflow_id, saved.id);
    let deadline = Some(Instant::now() + Duration::from_secs(20));
    let mut kinds = Vec::new();
    let (view, end) = client
        .follow_run(&started.run_id, 0, POLL, deadline, |e| {
            kinds.push(e.kind.clone())
        })
        .await
        .unwrap();
    assert_eq!(end, FollowEnd::Waiting, "{view:?}");
    assert_eq!(view.status, RunStatus::Waiting);
    assert_eq!(view.nodes[0].status, NodeStatus::Waiting);
    assert!(
        kinds.contains(&"approval_requested".to_string()),
        "{kinds:?}"
    );
    let pending: Vec<_> = view.pending_approvals().collect();
    assert_eq!(pending.len(), 1);
    let approval_id = pending[0].id.clone();

    // Ids by prefix and `latest`, as the CLI takes them.
    assert_eq!(
        client.resolve_run(&started.run_id[..13]).await.unwrap(),
        started.run_id
    );
    assert_eq!(
        client.resolve_approval("latest").await.unwrap(),
        approval_id
    );
    let listed = client
        .list_approvals(&ApprovalFilter {
            status: Some("pending".into()),
            run_id: Some(started.run_id.clone()),
            ..ApprovalFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.approvals.len(), 1);
    assert_eq!(
        client.approval(&approval_id).await.unwrap().prompt,
        "Trade?"
    );

    let decided = client
        .decide(
            &approval_id,
            &DecideRequest {
                decision: Decision::Approve,
                comment: Some("fine".into()),
                by: Some("carol".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(decided.status, ApprovalStatus::Approved);
    assert_eq!(decided.decided_by.as_deref(), Some("carol"));

    let last_seq = client
        .run_events_after(&started.run_id, 0)
        .await
        .unwrap()
        .last()
        .unwrap()
        .seq;
    let (view, end) = client
        .follow_run(&started.run_id, last_seq, POLL, deadline, |_| {})
        .await
        .unwrap();
    assert_eq!(
        (end, view.status),
        (FollowEnd::Finished, RunStatus::Completed)
    );
    let events = client.run_events_after(&started.run_id, 0).await.unwrap();
    let finished = events.last().unwrap();
    assert_eq!(finished.kind, "run_finished");
    assert!(
        finished.summary().ends_with("  run: completed"),
        "{}",
        finished.summary()
    );

    let runs = client
        .list_runs(&RunFilter {
            status: Some("completed".into()),
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(runs.runs.len(), 1);
    assert_eq!(runs.runs[0].run_id, started.run_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_answers_keep_status_code_and_body() {
    let server = serve(AuthMode::Off).await;
    let client = server.client(None);

    let missing = "0190a3b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b";
    let Err(Error::Api(e)) = client.run(missing).await else {
        panic!("a missing run is an API error");
    };
    assert_eq!((e.status.as_u16(), e.code.as_str()), (404, "run_not_found"));
    assert_eq!(e.body["details"]["run_id"], missing);
    assert!(e.to_string().contains("(HTTP 404, run_not_found)"), "{e}");

    let cyclic = json!({"name": "loop", "nodes": [
        {"id": "a", "type": "transform", "needs": ["b"], "config": {"template": "x"}},
        {"id": "b", "type": "transform", "needs": ["a"], "config": {"template": "y"}}]});
    let e = client.create_workflow(&cyclic).await.unwrap_err();
    let api = e.api().unwrap();
    assert_eq!(
        (api.status.as_u16(), api.code.as_str()),
        (422, "invalid_workflow")
    );
    assert!(!api.details.is_empty(), "{e}");
    assert!(api.details.iter().any(|d| d.contains("nodes[")), "{e}");

    let Err(Error::Api(e)) = client
        .list_runs(&RunFilter {
            status: Some("done".into()),
            ..RunFilter::default()
        })
        .await
    else {
        panic!("an unknown status is an API error");
    };
    assert_eq!(
        (e.status.as_u16(), e.code.as_str()),
        (400, "invalid_status")
    );

    let Err(Error::UnknownId(e)) = client.resolve_run("ffff").await else {
        panic!("an unknown prefix is an unknown id");
    };
    assert!(e.to_string().contains("ffff"), "{e}");

    // Nothing listens on the port of a stopped server.
    let base = server.base.clone();
    drop(server);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let gone = tradeloom_client::Client::builder(base.clone())
        .no_proxy()
        .build()
        .unwrap();
    let e = gone.list_runs(&RunFilter::default()).await.unwrap_err();
    assert!(
        matches!(&e, Error::Unreachable { url, .. } if *url == base),
        "{e:?}"
    );
}
