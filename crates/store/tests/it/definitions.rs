//! Agents and skills: immutable versions, owners, conflicts, soft deletes that never reuse a
//! version number.

use tradeloom_store::{Author, DefinitionKind, StoreError};

use crate::Ctx;
use crate::backend_tests;

backend_tests!(
    definitions_are_versioned,
    deleted_definitions_keep_their_numbers
);

fn key(id: &str) -> Author {
    Author {
        key_id: Some(id.into()),
        name: format!("key-{id}"),
    }
}

async fn definitions_are_versioned(t: Ctx) {
    let s = &*t.store;
    let agent = DefinitionKind::Agent;
    let v1 = s
        .create_definition(agent, "analyst", r#"{"v":1}"#, &key("a"))
        .await
        .expect("create");
    assert_eq!((v1.version, v1.created_by.as_str()), (1, "key-a"));
    assert!(matches!(
        s.create_definition(agent, "analyst", r#"{"v":2}"#, &key("b")).await,
        Err(StoreError::Conflict(m)) if m.contains("agent `analyst` exists")
    ));
    // A skill may share an agent's name: names are per kind.
    s.create_definition(DefinitionKind::Skill, "analyst", "{}", &key("b"))
        .await
        .expect("a skill of the same name");
    assert!(matches!(
        s.create_definition(agent, "Bad Name", "{}", &key("a")).await,
        Err(StoreError::Invalid(m)) if m.contains("agent name `Bad Name`")
    ));
    // The same body again changes nothing; another is version 2, by whoever wrote it.
    let (same, changed) = s
        .update_definition(agent, "analyst", r#"{"v":1}"#, &key("b"))
        .await
        .expect("same");
    assert_eq!((same.version, changed), (1, false));
    let (v2, changed) = s
        .update_definition(agent, "analyst", r#"{"v":2}"#, &key("b"))
        .await
        .expect("update");
    assert_eq!(
        (v2.version, changed, v2.created_by.as_str()),
        (2, true, "key-b")
    );
    let d = s.definition(agent, "analyst").await.expect("definition");
    assert_eq!(
        (
            d.latest_version,
            d.owner_key_id.as_deref(),
            d.owner_name.as_str()
        ),
        (2, Some("a"), "key-a"),
        "the owner stays the creator"
    );
    let latest = s
        .definition_version(agent, "analyst", None)
        .await
        .expect("latest");
    assert_eq!((latest.version, latest.body.as_str()), (2, r#"{"v":2}"#));
    let first = s
        .definition_version(agent, "analyst", Some(1))
        .await
        .expect("v1");
    assert_eq!(first.body, r#"{"v":1}"#, "old versions are kept as written");
    assert!(matches!(
        s.definition_version(agent, "analyst", Some(9)).await,
        Err(StoreError::NotFound { what }) if what.contains("version 9") && what.contains("latest is 2")
    ));
    let versions = s
        .definition_versions(agent, "analyst")
        .await
        .expect("versions");
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [1, 2]
    );
    let listed = s.list_definitions(agent, 100, 0).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        s.list_definitions(DefinitionKind::Skill, 100, 0)
            .await
            .expect("skills")
            .len(),
        1
    );
    assert!(matches!(
        s.update_definition(agent, "nobody", "{}", &key("a")).await,
        Err(StoreError::NotFound { what }) if what == "agent `nobody`"
    ));
    assert_eq!(t.count("definition_versions").await, 3);
}

async fn deleted_definitions_keep_their_numbers(t: Ctx) {
    let s = &*t.store;
    let skill = DefinitionKind::Skill;
    s.create_definition(skill, "momentum", r#"{"v":1}"#, &key("a"))
        .await
        .expect("create");
    s.update_definition(skill, "momentum", r#"{"v":2}"#, &key("a"))
        .await
        .expect("update");
    s.delete_definition(skill, "momentum")
        .await
        .expect("delete");
    assert!(matches!(
        s.delete_definition(skill, "momentum").await,
        Err(StoreError::NotFound { .. })
    ));
    for missing in [
        s.definition_version(skill, "momentum", Some(1)).await.err(),
        s.definition_version(skill, "momentum", None).await.err(),
        s.update_definition(skill, "momentum", "{}", &key("a"))
            .await
            .err(),
    ] {
        assert!(
            matches!(missing, Some(StoreError::NotFound { .. })),
            "{missing:?}"
        );
    }
    assert!(
        s.list_definitions(skill, 100, 0)
            .await
            .expect("list")
            .is_empty()
    );
    // The rows stay; created again, the name continues at version 3 under its new owner.
    assert_eq!(t.count("definition_versions").await, 2);
    let again = s
        .create_definition(
            skill,
            "momentum",
            r#"{"v":3}"#,
            &Author {
                key_id: None,
                name: "anonymous".into(),
            },
        )
        .await
        .expect("create again");
    assert_eq!(again.version, 3);
    let d = s.definition(skill, "momentum").await.expect("definition");
    assert_eq!((d.owner_key_id, d.owner_name.as_str()), (None, "anonymous"));
    let v1 = s
        .definition_version(skill, "momentum", Some(1))
        .await
        .expect("v1");
    assert_eq!(v1.body, r#"{"v":1}"#);
}
