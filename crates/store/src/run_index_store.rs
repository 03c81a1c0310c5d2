//! [`RunIndexStore`]: the index of run folders.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::FromRow;
use sqlx::types::Json;

use crate::error::StoreError;
use crate::run_index::RunEntry;
use crate::sql::{Db, page, sql, sql_offset};

#[derive(FromRow)]
pub(crate) struct RunRow {
    run_id: String,
    name: String,
    status: String,
    run_dir: String,
    created_at: DateTime<Utc>,
    summary: Option<Json<Value>>,
}

impl RunRow {
    pub(crate) fn into_entry(self) -> RunEntry {
        RunEntry {
            run_id: self.run_id,
            name: self.name,
            status: self.status,
            run_dir: self.run_dir,
            created_at: self.created_at,
            summary: self.summary.map(|j| j.0),
        }
    }
}

/// The index of run folders (`tradeloom runs`).
#[async_trait]
pub trait RunIndexStore: Send + Sync {
    /// Indexes a run folder; [`StoreError::Conflict`] if the run id is already indexed.
    async fn insert_run(&self, run: &RunEntry) -> Result<(), StoreError>;

    async fn run(&self, run_id: &str) -> Result<RunEntry, StoreError>;

    /// Runs, newest first.
    async fn list_runs(&self, limit: u32, offset: u64) -> Result<Vec<RunEntry>, StoreError>;
}

#[async_trait]
impl<D: Db> RunIndexStore for D {
    async fn insert_run(&self, run: &RunEntry) -> Result<(), StoreError> {
        sql(
            "INSERT INTO runs (run_id, name, status, run_dir, created_at, summary) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&run.run_id)
        .bind(&run.name)
        .bind(&run.status)
        .bind(&run.run_dir)
        .bind(run.created_at)
        .bind(run.summary.as_ref().map(sqlx::types::Json))
        .execute(self.pool())
        .await
        .map_err(|e| match StoreError::db("index a run")(e) {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("run {} is already indexed", run.run_id))
            }
            other => other,
        })?;
        Ok(())
    }

    async fn run(&self, run_id: &str) -> Result<RunEntry, StoreError> {
        let row: Option<RunRow> = sql(
            "SELECT run_id, name, status, run_dir, created_at, summary FROM runs \
             WHERE run_id = $1",
        )
        .bind(run_id)
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::db("read a run"))?;
        row.map(RunRow::into_entry)
            .ok_or_else(|| StoreError::not_found(format!("run {run_id}")))
    }

    async fn list_runs(&self, limit: u32, offset: u64) -> Result<Vec<RunEntry>, StoreError> {
        let rows: Vec<RunRow> = sql(
            "SELECT run_id, name, status, run_dir, created_at, summary FROM runs \
             ORDER BY created_at DESC, run_id DESC LIMIT $1 OFFSET $2",
        )
        .bind(page(limit))
        .bind(sql_offset(offset))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::db("list runs"))?;
        Ok(rows.into_iter().map(RunRow::into_entry).collect())
    }
}
