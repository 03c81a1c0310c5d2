//! The API key goes in `Authorization: Bearer` on every call, and never into an error.

use tradeloom_client::{DecideRequest, Decision, Error, RunFilter, StartRun};
use tradeloom_server::AuthMode;
use tradeloom_store::Role;

use crate::harness::{gate, serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_authenticates_every_call_and_is_never_shown() {
    let server = serve(AuthMode::Required).await;
    let alice = server.key("alice", Role::Operator).await;
    let viewer = server.key("val", Role::Viewer).await;

    let Err(Error::Api(e)) = server.client(None).list_runs(&RunFilter::default()).await else {
        panic!("no key is refused");
    };
    assert_eq!((e.status.as_u16(), e.code.as_str()), (401, "unauthorized"));
    assert_eq!(e.body["details"]["reason"], "missing_key");

    let wrong = "tl_this-key-does-not-exist";
    let client = server.client(Some(wrong));
    let e = client.list_runs(&RunFilter::default()).await.unwrap_err();
    assert_eq!(e.api().unwrap().body["details"]["reason"], "invalid_key");
    assert!(!e.to_string().contains(wrong), "{e}");
    assert!(!format!("{e:?}").contains(wrong), "{e:?}");
    assert!(!format!("{client:?}").contains(wrong), "{client:?}");

    // A viewer may read but not write: the server saw which key it was.
    let e = server
        .client(Some(&viewer))
        .create_workflow(&gate("gate"))
        .await
        .unwrap_err();
    assert_eq!(e.api().unwrap().status.as_u16(), 403, "{e}");
    assert_eq!(e.api().unwrap().body["details"]["key"], "val");

    let client = server.client(Some(&alice));
    let (saved, _) = client.save_workflow("gate", &gate("gate")).await.unwrap();
    let run = client
        .start_run(&saved.id, &StartRun::default())
        .await
        .unwrap();
    let approval = client
        .wait_for(
            &format!("/approvals?status=pending&run_id={}", run.run_id),
            std::time::Duration::from_secs(20),
            |body| body["approvals"][0]["id"].is_string(),
        )
        .await
        .unwrap();
    let id = approval["approvals"][0]["id"].as_str().unwrap();
    // With a key, the key's name decides whatever name the request states.
    let decided = client
        .decide(
            id,
            &DecideRequest {
                decision: Decision::Reject,
                comment: None,
                by: Some("mallory".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(decided.decided_by.as_deref(), Some("alice"));
    assert_eq!(decided.comment.as_deref(), Some("(stated by: mallory)"));
}
