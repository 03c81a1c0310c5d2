//! Opening a fresh SQLite store from several processes at once: the migrations run once.

use tradeloom_store::SqliteStore;

/// Two `serve` processes (or a `serve` and a `tradeloom run`) started together on a new data
/// dir both open the store and migrate it. Each `open` below uses its own file descriptions and
/// connections, as two processes would; without a lock across openers the second one to apply
/// a migration failed with "table … already exists".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stores_opened_at_once_on_a_new_file_all_migrate_it() {
    for round in 0..5 {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tradeloom.db");
        let opens = (0..4).map(|_| {
            let path = path.clone();
            tokio::spawn(async move { SqliteStore::open(&path).await })
        });
        for (i, opened) in futures_util::future::join_all(opens)
            .await
            .into_iter()
            .enumerate()
        {
            let store = opened.expect("task").unwrap_or_else(|e| {
                panic!("round {round}: opener {i} failed: {e}");
            });
            let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
                .fetch_one(store.pool())
                .await
                .expect("count migrations");
            assert!(applied > 0, "round {round}: opener {i} sees no migrations");
        }
    }
}
