//! Registered agents and skills through the client: create, read a version, list, update,
//! delete, and the owner rule, as the API answers them.

use serde_json::json;
use tradeloom_client::{DefinitionKind, Error};
use tradeloom_server::AuthMode;
use tradeloom_store::Role;

use crate::harness::serve;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_round_trip_with_versions_and_owners() {
    let server = serve(AuthMode::Required).await;
    let alice = server.client(Some(&server.key("alice", Role::Operator).await));
    let bob = server.client(Some(&server.key("bob", Role::Operator).await));
    let agent = DefinitionKind::Agent;
    let v1 = json!({"name": "analyst", "model": {"base_url": "http://127.0.0.1:9/v1", "model": "m"},
                    "system_prompt": "one"});
    let saved = alice.create_definition(agent, &v1).await.unwrap();
    assert_eq!(
        (saved.name.as_str(), saved.version, saved.changed),
        ("analyst", 1, true)
    );
    let v2 = json!({"model": {"base_url": "http://127.0.0.1:9/v1", "model": "m"}, "system_prompt": "two"});
    let saved = alice
        .update_definition(agent, "analyst", &v2)
        .await
        .unwrap();
    assert_eq!((saved.version, saved.changed), (2, true));

    let latest = bob.definition(agent, "analyst", None).await.unwrap();
    assert_eq!((latest.version, latest.info.latest_version), (2, 2));
    assert_eq!(latest.info.owner, "alice");
    assert_eq!(latest.definition["system_prompt"], "two");
    let versions: Vec<u32> = latest.versions.iter().map(|v| v.version).collect();
    assert_eq!(versions, [1, 2]);
    let first = bob.definition(agent, "analyst", Some(1)).await.unwrap();
    assert_eq!(first.definition["system_prompt"], "one");
    assert_eq!(first.created_by, "alice");
    let list = bob.all_definitions(agent).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].latest_version, 2);
    assert!(
        bob.all_definitions(DefinitionKind::Skill)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let Err(Error::Api(e)) = bob.delete_definition(agent, "analyst").await else {
        panic!("bob does not own it");
    };
    assert_eq!((e.status.as_u16(), e.code.as_str()), (403, "not_owner"));
    let Err(Error::Api(e)) = alice.definition(agent, "analyst", Some(9)).await else {
        panic!("no version 9");
    };
    assert_eq!(
        (e.status.as_u16(), e.code.as_str()),
        (404, "agent_not_found")
    );

    alice.delete_definition(agent, "analyst").await.unwrap();
    let Err(Error::Api(e)) = alice.definition(agent, "analyst", None).await else {
        panic!("deleted");
    };
    assert_eq!(e.code, "agent_not_found");
}
