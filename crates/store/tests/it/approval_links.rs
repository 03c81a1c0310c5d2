//! What approval links sent to chat keep in the store: one signing key shared by every process
//! of the store, each link's single use, and events of a run written outside a transition.

use chrono::Utc;
use serde_json::json;
use tradeloom_store::prelude::*;
use tradeloom_store::{
    APPROVAL_LINK_KEY_BYTES, ApprovalChange, Decision, EventFilter, NewApproval, NewWorkflowRun,
    NewWorkflowVersion, StoreError, Transition, TransitionOutcome, open_store,
};

use crate::Ctx;
use crate::backend_tests;

backend_tests!(
    every_process_of_a_store_signs_with_one_key,
    a_link_is_used_once_even_under_a_race,
    run_events_append_outside_transitions,
);

/// A run with a pending approval `apr_t` of node `a`; returns the run id.
async fn run_with_approval(s: &dyn Store) -> String {
    let v = s
        .create_workflow(&NewWorkflowVersion {
            name: "links".into(),
            definition: r#"{"name":"links"}"#.into(),
            ir: r#"{"ir":"links"}"#.into(),
        })
        .await
        .expect("workflow");
    let run = s
        .create_workflow_run(&NewWorkflowRun {
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
        .expect("run");
    let mut t = Transition::new(&run.id, "ask", 0);
    t.approvals = vec![ApprovalChange::Create(NewApproval {
        id: "apr_t".into(),
        node_id: "a".into(),
        attempt: 1,
        prompt: "ok?".into(),
        default_decision: Decision::Reject,
        approvers: None,
        expires_at: Utc::now() + chrono::TimeDelta::hours(1),
    })];
    let outcome = s.commit_transition(&t).await.expect("commit");
    assert!(
        matches!(outcome, TransitionOutcome::Applied { .. }),
        "{outcome:?}"
    );
    run.id
}

async fn every_process_of_a_store_signs_with_one_key(t: Ctx) {
    let s = &*t.store;
    assert_eq!(t.count("approval_link_keys").await, 0);
    // Two processes asking at once for a key no one made yet: both get the one stored.
    let other = open_store(&t.location).await.expect("a second store");
    let (a, b) = tokio::join!(s.approval_link_key(), other.approval_link_key());
    let (a, b) = (a.expect("key"), b.expect("key"));
    assert_eq!(a.len(), APPROVAL_LINK_KEY_BYTES);
    assert_eq!(a, b);
    assert_eq!(s.approval_link_key().await.expect("key again"), a);
    assert_eq!(t.count("approval_link_keys").await, 1);
    assert_ne!(a, vec![0u8; APPROVAL_LINK_KEY_BYTES]);
}

async fn a_link_is_used_once_even_under_a_race(t: Ctx) {
    let s = &*t.store;
    run_with_approval(s).await;
    assert!(s.use_approval_link("n1", "apr_t").await.expect("first use"));
    assert!(
        !s.use_approval_link("n1", "apr_t")
            .await
            .expect("second use")
    );
    let other = open_store(&t.location).await.expect("a second store");
    let (x, y) = tokio::join!(
        s.use_approval_link("n2", "apr_t"),
        other.use_approval_link("n2", "apr_t")
    );
    let won = [x.expect("use"), y.expect("use")];
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    assert!(matches!(
        s.use_approval_link("n3", "apr_nope").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.use_approval_link(" ", "apr_t").await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(t.count("approval_link_uses").await, 2);
}

async fn run_events_append_outside_transitions(t: Ctx) {
    let s = &*t.store;
    let run_id = run_with_approval(s).await;
    let payload = json!({"approval_id": "apr_t", "status": 500});
    let seq = s
        .append_run_event(&run_id, "approval_notify_failed", Some("a"), &payload)
        .await
        .expect("append");
    let events = s
        .events(EventFilter::Run(&run_id), 0, 100)
        .await
        .expect("events");
    let last = events.last().expect("an event");
    assert_eq!(
        (last.seq, last.kind.as_str(), last.node_id.as_deref()),
        (seq, "approval_notify_failed", Some("a"))
    );
    assert_eq!(last.payload, payload);
    // The run is unchanged: the event is no transition.
    assert_eq!(s.workflow_run(&run_id).await.expect("run").revision, 1);
    assert!(matches!(
        s.append_run_event("no-such-run", "x", None, &json!({}))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.append_run_event(&run_id, " ", None, &json!({})).await,
        Err(StoreError::Invalid(_))
    ));
}
