//! Workflow definitions: content-addressed blobs, versions, idempotent updates, conflicts.

use tradeloom_store::{NewWorkflowVersion, StoreError, blob_hash};

use crate::Ctx;
use crate::backend_tests;

backend_tests!(blobs_are_content_addressed, workflows_are_versioned);

fn version(name: &str, ir: &str) -> NewWorkflowVersion {
    NewWorkflowVersion {
        name: name.into(),
        definition: format!(r#"{{"name":"{name}","ir":"{ir}"}}"#),
        ir: format!(r#"{{"ir":"{ir}"}}"#),
    }
}

async fn blobs_are_content_addressed(t: Ctx) {
    let s = &*t.store;
    let h = s.put_blob("node_output", r#"{"x":1}"#).await.expect("put");
    assert_eq!(h, blob_hash(r#"{"x":1}"#));
    assert_eq!(
        s.put_blob("node_output", r#"{"x":1}"#)
            .await
            .expect("again"),
        h
    );
    assert_eq!(t.count("blobs").await, 1, "the same content is stored once");
    let blob = s.blob(&h).await.expect("read");
    assert_eq!(
        (blob.kind.as_str(), blob.body.as_str()),
        ("node_output", r#"{"x":1}"#)
    );
    assert!(matches!(
        s.blob("00").await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn workflows_are_versioned(t: Ctx) {
    let s = &*t.store;
    let v1 = s
        .create_workflow(&version("daily", "one"))
        .await
        .expect("create");
    assert_eq!(v1.version, 1);
    assert_eq!(v1.ir_hash, blob_hash(r#"{"ir":"one"}"#));
    assert!(matches!(
        s.create_workflow(&version("daily", "two")).await,
        Err(StoreError::Conflict(m)) if m.contains("daily")
    ));
    // The same IR again changes nothing; a different one is version 2.
    let (same, changed) = s
        .update_workflow(&v1.workflow_id, &version("daily", "one"))
        .await
        .expect("same");
    assert_eq!((same.version, changed), (1, false));
    let (v2, changed) = s
        .update_workflow(&v1.workflow_id, &version("daily", "two"))
        .await
        .expect("update");
    assert_eq!((v2.version, changed), (2, true));
    let wf = s.workflow(&v1.workflow_id).await.expect("workflow");
    assert_eq!((wf.name.as_str(), wf.latest_version), ("daily", 2));
    assert_eq!(
        s.workflow_version(&v1.workflow_id, None)
            .await
            .expect("latest")
            .version,
        2
    );
    assert_eq!(
        s.workflow_version(&v1.workflow_id, Some(1))
            .await
            .expect("v1")
            .ir_hash,
        v1.ir_hash
    );
    assert!(matches!(
        s.workflow_version(&v1.workflow_id, Some(9)).await,
        Err(StoreError::NotFound { .. })
    ));
    let versions = s
        .workflow_versions(&v1.workflow_id)
        .await
        .expect("versions");
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [1, 2]
    );
    let ir = s.blob(&v2.ir_hash).await.expect("ir blob");
    assert_eq!(ir.body, r#"{"ir":"two"}"#);
    // Renaming onto another workflow's name is refused.
    let other = s
        .create_workflow(&version("weekly", "w"))
        .await
        .expect("other");
    assert!(matches!(
        s.update_workflow(&other.workflow_id, &version("daily", "w2"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.list_workflows(10, 0).await.expect("list").len(), 2);
    s.delete_workflow(&v1.workflow_id).await.expect("delete");
    assert_eq!(t.count("workflow_versions").await, 1, "versions cascade");
    assert!(matches!(
        s.workflow(&v1.workflow_id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.update_workflow("nope", &version("x", "y")).await,
        Err(StoreError::NotFound { .. })
    ));
}
