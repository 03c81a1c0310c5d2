//! `request_json`: any status is an answer with its JSON body and the time it took; the API key
//! is sent there too.

use std::time::Duration;

use serde_json::json;
use tradeloom_client::{Error, HttpMethod};
use tradeloom_server::AuthMode;
use tradeloom_store::Role;

use crate::harness::{gate, serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_requests_answer_any_status_with_json_and_elapsed_time() {
    let server = serve(AuthMode::Required).await;
    let key = server.key("ops", Role::Operator).await;
    let anonymous = server.client(None);
    let client = server.client(Some(&key));

    let refused = anonymous.get_json("/workflow-runs?limit=5").await.unwrap();
    assert_eq!(refused.status, 401);
    assert_eq!(refused.body["error"], "unauthorized");
    let listed = client.get_json("/workflow-runs?limit=5").await.unwrap();
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    assert_eq!(listed.body, json!({"runs": []}));
    assert!(listed.elapsed > Duration::ZERO && listed.elapsed < Duration::from_secs(20));

    let created = client.post_json("/workflows", &gate("raw")).await.unwrap();
    assert_eq!(created.status, 201, "{:?}", created.body);
    let again = client
        .request_json(HttpMethod::POST, "/workflows", Some(&gate("raw")))
        .await
        .unwrap();
    assert_eq!(
        (again.status, &again.body["error"]),
        (409, &json!("workflow_exists"))
    );

    let e = client
        .wait_for("/workflows", Duration::from_millis(200), |_| false)
        .await
        .unwrap_err();
    let Error::NotWithin { last, .. } = &e else {
        panic!("{e:?}");
    };
    assert_eq!(last["workflows"][0]["name"], "raw", "{e}");
}
