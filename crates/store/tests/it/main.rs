//! Integration tests of tradeloom-store. Every test body runs against SQLite (a temp dir) and,
//! when `TRADELOOM_TEST_POSTGRES_URL` is set, against PostgreSQL in a database of its own that
//! is created for the test and dropped after it, so tests run in parallel.

mod admission;
mod api_keys;
mod approval_links;
mod definitions;
mod engine_run_events;
mod fixtures;
mod job_control;
mod job_events;
mod jobs;
mod migrations;
mod model_days;
mod queries;
mod schedules;
mod workflow_runs;
mod workflows;

use std::future::Future;
use std::sync::Arc;

use tempfile::TempDir;
use tradeloom_store::{ScratchDatabase, Store, open_store};

pub const PG_ENV: &str = "TRADELOOM_TEST_POSTGRES_URL";

/// A direct pool on the test database, to check rows behind the store's back.
#[derive(Clone)]
pub enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// What a test body gets: the store, the location it was opened from, and a raw pool.
pub struct Ctx {
    pub store: Arc<dyn Store>,
    pub location: String,
    pub raw: Raw,
}

impl Ctx {
    /// Rows in `table` (a fixed name from the test, never user input).
    pub async fn count(&self, table: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
        let (n,): (i64,) = match &self.raw {
            Raw::Sqlite(p) => sqlx::query_as(sql).fetch_one(p).await,
            Raw::Postgres(p) => sqlx::query_as(sql).fetch_one(p).await,
        }
        .expect("count rows");
        n
    }

    /// The one text value `sql` selects (a fixed query from the test).
    pub async fn text(&self, sql: &'static str) -> String {
        let (v,): (String,) = match &self.raw {
            Raw::Sqlite(p) => sqlx::query_as(sql).fetch_one(p).await,
            Raw::Postgres(p) => sqlx::query_as(sql).fetch_one(p).await,
        }
        .expect("select text");
        v
    }
}

pub async fn run_sqlite<F, Fut>(body: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join("data").join("tradeloom.db");
    let location = path.display().to_string();
    let store = open_store(&location).await.expect("open SQLite store");
    let raw = sqlx::SqlitePool::connect(&format!("sqlite://{location}"))
        .await
        .expect("raw SQLite pool");
    body(Ctx {
        store,
        location,
        raw: Raw::Sqlite(raw),
    })
    .await;
}

pub async fn run_postgres<F, Fut>(body: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Ok(base) = std::env::var(PG_ENV) else {
        eprintln!("note: {PG_ENV} is not set; skipping the PostgreSQL variant");
        return;
    };
    // The variable is set: an unreachable server fails the test.
    let scratch = ScratchDatabase::create(&base, "tl_test")
        .await
        .unwrap_or_else(|e| panic!("{PG_ENV}={base} is set but PostgreSQL is unusable: {e}"));
    let location = scratch.url().to_string();
    let outcome = async {
        let store = open_store(&location).await.expect("open PostgreSQL store");
        let raw = sqlx::PgPool::connect(&location)
            .await
            .expect("raw PostgreSQL pool");
        let ctx = Ctx {
            store,
            location: location.clone(),
            raw: Raw::Postgres(raw.clone()),
        };
        // Spawned so that a panicking body still reaches the cleanup below.
        let result = tokio::spawn(body(ctx)).await;
        raw.close().await;
        result
    }
    .await;
    scratch
        .drop_database()
        .await
        .expect("drop the test database");
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Runs each named `async fn(Ctx)` once per back end.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    $crate::run_sqlite(super::$name).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    $crate::run_postgres(super::$name).await
                }
            }
        )*
    };
}
