//! API keys: only the hash is stored, lookups skip revoked keys, names are unique, revoking by
//! id or name, last use recorded.

use tradeloom_store::{NewApiKey, Role, StoreError, api_key_hash};

use crate::Ctx;
use crate::backend_tests;

backend_tests!(
    api_keys_round_trip_by_hash_only,
    api_keys_revoke_by_id_or_name,
    api_keys_refuse_duplicates_and_bad_input,
    api_keys_keep_one_active_admin,
);

async fn api_keys_round_trip_by_hash_only(t: Ctx) {
    let s = &*t.store;
    let (new, secret) = NewApiKey::generate("ci-bot", Role::Operator).expect("generate");
    let key = s.create_api_key(&new).await.expect("create");
    assert_eq!(
        (key.name.as_str(), key.role, key.prefix.as_str()),
        ("ci-bot", Role::Operator, &secret[..11])
    );
    assert_eq!((key.last_used_at, key.revoked_at), (None, None));

    // The database holds the sha256 of the secret and nothing that contains the secret.
    let stored = t.text("SELECT key_hash FROM api_keys").await;
    assert_eq!(stored, api_key_hash(&secret));
    let row = t
        .text("SELECT id || name || role || key_hash || prefix FROM api_keys")
        .await;
    assert!(!row.contains(&secret[3..]), "the secret is not stored");

    let found = s
        .api_key_by_hash(&api_key_hash(&secret))
        .await
        .expect("look up")
        .expect("the key is found by its hash");
    assert_eq!(found, key);
    assert_eq!(
        s.api_key_by_hash(&secret).await.expect("look up"),
        None,
        "the secret itself is not a hash"
    );
    assert_eq!(
        s.api_key_by_hash(&api_key_hash("tl_other"))
            .await
            .expect("look up"),
        None
    );

    s.touch_api_key(&key.id).await.expect("touch");
    let listed = s.list_api_keys().await.expect("list");
    assert_eq!(listed.len(), 1);
    let used = listed[0].last_used_at.expect("last_used_at is set");
    assert!(used >= key.created_at);
    assert!(matches!(
        s.touch_api_key("no-such-key").await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn api_keys_revoke_by_id_or_name(t: Ctx) {
    let s = &*t.store;
    let mut keys = Vec::new();
    for (name, role) in [
        ("viewer", Role::Viewer),
        ("ops", Role::Operator),
        ("root", Role::Admin),
    ] {
        let (new, secret) = NewApiKey::generate(name, role).expect("generate");
        keys.push((s.create_api_key(&new).await.expect("create"), secret));
    }
    let names: Vec<_> = s
        .list_api_keys()
        .await
        .expect("list")
        .into_iter()
        .map(|k| (k.name, k.role))
        .collect();
    assert_eq!(
        names,
        [
            ("viewer".to_string(), Role::Viewer),
            ("ops".to_string(), Role::Operator),
            ("root".to_string(), Role::Admin)
        ],
        "oldest first"
    );

    let by_name = s.revoke_api_key("ops").await.expect("revoke by name");
    assert_eq!(by_name.id, keys[1].0.id);
    let revoked_at = by_name.revoked_at.expect("revoked_at is set");
    let by_id = s.revoke_api_key(&keys[0].0.id).await.expect("revoke by id");
    assert_eq!(by_id.name, "viewer");
    assert!(by_id.is_revoked());

    for (key, secret) in &keys[..2] {
        assert_eq!(
            s.api_key_by_hash(&api_key_hash(secret))
                .await
                .expect("look up"),
            None,
            "revoked key {} no longer authenticates",
            key.name
        );
    }
    assert!(
        s.api_key_by_hash(&api_key_hash(&keys[2].1))
            .await
            .expect("look up")
            .is_some(),
        "the other key still works"
    );

    let again = s.revoke_api_key("ops").await.expect("revoke twice");
    assert_eq!(again.revoked_at, Some(revoked_at), "revoking is idempotent");
    let listed = s.list_api_keys().await.expect("list");
    assert_eq!(listed.len(), 3, "revoked keys stay listed");
    assert_eq!(
        listed.iter().filter(|k| k.is_revoked()).count(),
        2,
        "{listed:?}"
    );
    match s.revoke_api_key("nobody").await {
        Err(StoreError::NotFound { what }) => assert!(what.contains("nobody"), "{what}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

async fn api_keys_refuse_duplicates_and_bad_input(t: Ctx) {
    let s = &*t.store;
    let (first, secret) = NewApiKey::generate("dup", Role::Viewer).expect("generate");
    s.create_api_key(&first).await.expect("create");
    s.revoke_api_key("dup").await.expect("revoke");

    let (second, _) = NewApiKey::generate("dup", Role::Admin).expect("generate");
    match s.create_api_key(&second).await {
        Err(StoreError::Conflict(m)) => {
            assert!(m.contains("an API key named `dup` exists"), "{m}")
        }
        other => panic!("a taken name (even revoked) is a conflict, got {other:?}"),
    }
    let same_hash = NewApiKey {
        name: "other".into(),
        ..first.clone()
    };
    match s.create_api_key(&same_hash).await {
        Err(StoreError::Conflict(m)) => assert!(m.contains("with this secret"), "{m}"),
        other => panic!("a stored hash is a conflict, got {other:?}"),
    }
    let bad_name = NewApiKey {
        name: "two words".into(),
        key_hash: api_key_hash(&format!("{secret}x")),
        ..first
    };
    assert!(matches!(
        s.create_api_key(&bad_name).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(t.count("api_keys").await, 1, "nothing else was stored");

    // The role column only takes the three roles.
    let sql = "INSERT INTO api_keys (id, name, role, key_hash, prefix, created_at) \
               VALUES ('x', 'x', 'owner', 'h', 'p', CURRENT_TIMESTAMP)";
    let refused = match &t.raw {
        crate::Raw::Sqlite(p) => sqlx::query(sql).execute(p).await.is_err(),
        crate::Raw::Postgres(p) => sqlx::query(sql).execute(p).await.is_err(),
    };
    assert!(refused, "the CHECK constraint refuses an unknown role");
}

async fn api_keys_keep_one_active_admin(t: Ctx) {
    let s = &*t.store;
    for (name, role) in [
        ("root", Role::Admin),
        ("second", Role::Admin),
        ("ops", Role::Operator),
    ] {
        let (new, _) = NewApiKey::generate(name, role).expect("generate");
        s.create_api_key(&new).await.expect("create");
    }
    s.revoke_api_key("second")
        .await
        .expect("another admin remains");
    match s.revoke_api_key("root").await {
        Err(StoreError::Conflict(m)) => {
            assert!(m.contains("`root` is the last active admin key"), "{m}")
        }
        other => panic!("revoking the last admin key is a conflict, got {other:?}"),
    }
    let root = s
        .list_api_keys()
        .await
        .expect("list")
        .into_iter()
        .find(|k| k.name == "root")
        .expect("root is listed");
    assert!(!root.is_revoked(), "the refused revocation changed nothing");
    // Revoked admins and other roles do not count, but revoking those stays possible.
    s.revoke_api_key("ops").await.expect("revoke an operator");
    let again = s.revoke_api_key("second").await.expect("revoking twice");
    assert!(again.is_revoked());
}
