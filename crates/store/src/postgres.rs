//! [`PgStore`]: the cluster back end on PostgreSQL, chosen by a `postgres://` URL.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::error::StoreError;
use crate::migration::{self, AppliedRow, MigrationInfo};
use crate::sql_store::impl_store;
use crate::store::Backend;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// The PostgreSQL implementation of [`crate::Store`].
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    const BACKEND: Backend = Backend::Postgres;

    /// Connects and applies pending migrations (under sqlx's advisory lock, so several
    /// processes may start at once).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let store = Self::connect_unmigrated(url).await?;
        MIGRATOR.run(&store.pool).await?;
        Ok(store)
    }

    /// Connects without migrating (for `db status`).
    pub async fn connect_unmigrated(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(StoreError::db("connect to PostgreSQL"))?;
        Ok(Self { pool })
    }

    /// The connection pool, for callers that need a query the trait does not offer.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn check_health(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(StoreError::db("check PostgreSQL health"))?;
        Ok(())
    }

    async fn read_migration_status(&self) -> Result<Vec<MigrationInfo>, StoreError> {
        let (exists,): (bool,) =
            sqlx::query_as("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                .fetch_one(&self.pool)
                .await
                .map_err(StoreError::db("look for the migrations table"))?;
        let applied: Vec<AppliedRow> = if exists {
            sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations")
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::db("read applied migrations"))?
        } else {
            Vec::new()
        };
        Ok(migration::merge(&MIGRATOR, &applied))
    }
}

impl PgStore {
    /// PostgreSQL serialises writers itself: no gate.
    async fn write_gate(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        None
    }
}

impl_store!(PgStore, "BEGIN");
