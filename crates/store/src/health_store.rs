//! [`HealthStore`]: which back end a store is, whether it answers, its migrations, and row
//! counts by status for `/metrics`.

use async_trait::async_trait;

use crate::error::StoreError;
use crate::migration::{self, AppliedRow, MigrationInfo};
use crate::sql::{Backend, Db, sql};
use crate::status_count::StatusCounts;

/// The store itself: back end, health, migrations, status counts.
#[async_trait]
pub trait HealthStore: Send + Sync {
    /// Which database this store talks to.
    fn backend(&self) -> Backend;

    /// A cheap round trip to the database.
    async fn health(&self) -> Result<(), StoreError>;

    /// Every embedded migration and whether the database has it.
    async fn migration_status(&self) -> Result<Vec<MigrationInfo>, StoreError>;

    /// Jobs, model-days, workflow runs and workflow nodes counted by status (for `/metrics`).
    async fn status_counts(&self) -> Result<StatusCounts, StoreError>;
}

#[async_trait]
impl<D: Db> HealthStore for D {
    fn backend(&self) -> Backend {
        Self::BACKEND
    }

    async fn health(&self) -> Result<(), StoreError> {
        let context = match D::BACKEND {
            Backend::Sqlite => "check SQLite health",
            Backend::Postgres => "check PostgreSQL health",
        };
        sql("SELECT 1")
            .execute(self.pool())
            .await
            .map_err(StoreError::db(context))?;
        Ok(())
    }

    async fn migration_status(&self) -> Result<Vec<MigrationInfo>, StoreError> {
        let look = StoreError::db("look for the migrations table");
        let exists = match D::BACKEND {
            Backend::Sqlite => {
                let (n,): (i64,) = sql("SELECT COUNT(*) FROM sqlite_master \
                     WHERE type = 'table' AND name = '_sqlx_migrations'")
                .fetch_one(self.pool())
                .await
                .map_err(look)?;
                n > 0
            }
            Backend::Postgres => {
                let (exists,): (bool,) = sql("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                    .fetch_one(self.pool())
                    .await
                    .map_err(look)?;
                exists
            }
        };
        let applied: Vec<AppliedRow> = if exists {
            sql("SELECT version, checksum, success FROM _sqlx_migrations")
                .fetch_all(self.pool())
                .await
                .map_err(StoreError::db("read applied migrations"))?
        } else {
            Vec::new()
        };
        Ok(migration::merge(D::migrator(), &applied))
    }

    async fn status_counts(&self) -> Result<StatusCounts, StoreError> {
        let mut counts = StatusCounts::default();
        for (table, into) in [
            ("jobs", &mut counts.jobs),
            ("job_details", &mut counts.model_days),
            ("workflow_runs", &mut counts.workflow_runs),
            ("workflow_node_states", &mut counts.workflow_nodes),
        ] {
            // `table` is one of the constants above, never user input.
            let rows: Vec<(String, i64)> = sql(format!(
                "SELECT status, COUNT(*) FROM {table} GROUP BY status ORDER BY status"
            ))
            .fetch_all(self.pool())
            .await
            .map_err(StoreError::db("count rows by status"))?;
            *into = rows
                .into_iter()
                .map(|(status, n)| (status, u64::try_from(n).unwrap_or(0)))
                .collect();
        }
        Ok(counts)
    }
}
