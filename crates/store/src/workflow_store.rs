//! [`WorkflowStore`]: workflows, their versions, and the content-addressed blobs that hold
//! their definitions and IR.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::FromRow;

use crate::error::StoreError;
use crate::sql::{Db, now, page, sql, sql_offset};
use crate::workflow::{Blob, NewWorkflowVersion, Workflow, WorkflowVersion};

#[derive(FromRow)]
pub(crate) struct WorkflowRow {
    id: String,
    name: String,
    latest_version: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl WorkflowRow {
    pub(crate) fn into_workflow(self) -> Workflow {
        Workflow {
            id: self.id,
            name: self.name,
            latest_version: u32::try_from(self.latest_version).unwrap_or(0),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

#[derive(FromRow)]
pub(crate) struct WorkflowVersionRow {
    workflow_id: String,
    version: i32,
    definition_hash: String,
    ir_hash: String,
    created_at: DateTime<Utc>,
}

impl WorkflowVersionRow {
    pub(crate) fn into_version(self) -> WorkflowVersion {
        WorkflowVersion {
            workflow_id: self.workflow_id,
            version: u32::try_from(self.version).unwrap_or(0),
            definition_hash: self.definition_hash,
            ir_hash: self.ir_hash,
            created_at: self.created_at,
        }
    }
}

/// Stores a blob unless its hash is there already (content addressing makes it the same one).
pub(crate) const INSERT_BLOB: &str = "INSERT INTO blobs (hash, kind, body, created_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (hash) DO NOTHING";

pub(crate) const WORKFLOW_VERSION_COLUMNS: &str =
    "workflow_id, version, definition_hash, ir_hash, created_at";

/// Workflows and blobs.
#[async_trait]
pub trait WorkflowStore: Send + Sync {
    /// Stores `body` under its sha256 (see [`crate::blob_hash`]) unless it is there already;
    /// returns the hash.
    async fn put_blob(&self, kind: &str, body: &str) -> Result<String, StoreError>;

    /// [`StoreError::NotFound`] if no blob has this hash.
    async fn blob(&self, hash: &str) -> Result<Blob, StoreError>;

    /// A new workflow at version 1, its definition and IR stored as blobs, in one transaction.
    /// [`StoreError::Conflict`] if a workflow has this name.
    async fn create_workflow(
        &self,
        new: &NewWorkflowVersion,
    ) -> Result<WorkflowVersion, StoreError>;

    /// The next version of workflow `id`, or its latest version unchanged (`false`) when the IR
    /// is the same. [`StoreError::NotFound`] if absent; [`StoreError::Conflict`] if the new name
    /// belongs to another workflow.
    async fn update_workflow(
        &self,
        id: &str,
        new: &NewWorkflowVersion,
    ) -> Result<(WorkflowVersion, bool), StoreError>;

    async fn workflow(&self, id: &str) -> Result<Workflow, StoreError>;

    /// Workflows by name.
    async fn list_workflows(&self, limit: u32, offset: u64) -> Result<Vec<Workflow>, StoreError>;

    /// One version (the latest when `None`).
    async fn workflow_version(
        &self,
        id: &str,
        version: Option<u32>,
    ) -> Result<WorkflowVersion, StoreError>;

    /// Every version, oldest first.
    async fn workflow_versions(&self, id: &str) -> Result<Vec<WorkflowVersion>, StoreError>;

    /// Deletes a workflow and its versions (blobs stay: other versions may share them).
    async fn delete_workflow(&self, id: &str) -> Result<(), StoreError>;
}

#[async_trait]
impl<D: Db> WorkflowStore for D {
    async fn put_blob(&self, kind: &str, body: &str) -> Result<String, StoreError> {
        let hash = crate::blob_hash(body);
        sql(INSERT_BLOB)
            .bind(&hash)
            .bind(kind)
            .bind(body)
            .bind(now())
            .execute(self.pool())
            .await
            .map_err(StoreError::db("store a blob"))?;
        Ok(hash)
    }

    async fn blob(&self, hash: &str) -> Result<Blob, StoreError> {
        let row: Option<(String, String, String)> =
            sql("SELECT hash, kind, body FROM blobs WHERE hash = $1")
                .bind(hash)
                .fetch_optional(self.pool())
                .await
                .map_err(StoreError::db("read a blob"))?;
        let (hash, kind, body) =
            row.ok_or_else(|| StoreError::not_found(format!("blob {hash}")))?;
        Ok(Blob { hash, kind, body })
    }

    async fn create_workflow(
        &self,
        new: &NewWorkflowVersion,
    ) -> Result<WorkflowVersion, StoreError> {
        crate::workflow::check_name(&new.name)?;
        let at = now();
        let id = uuid::Uuid::now_v7().to_string();
        let definition_hash = crate::blob_hash(&new.definition);
        let ir_hash = crate::blob_hash(&new.ir);
        let mut tx = self
            .begin()
            .await
            .map_err(StoreError::db("begin creating a workflow"))?;
        for (kind, body, hash) in [
            ("workflow_definition", &new.definition, &definition_hash),
            ("workflow_ir", &new.ir, &ir_hash),
        ] {
            sql(INSERT_BLOB)
                .bind(hash)
                .bind(kind)
                .bind(body)
                .bind(at)
                .execute(&mut tx)
                .await
                .map_err(StoreError::db("store a workflow blob"))?;
        }
        sql(
            "INSERT INTO workflows (id, name, latest_version, created_at, updated_at) \
             VALUES ($1, $2, 1, $3, $3)",
        )
        .bind(&id)
        .bind(&new.name)
        .bind(at)
        .execute(&mut tx)
        .await
        .map_err(|e| match StoreError::db("create a workflow")(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!(
                "a workflow named `{}` exists; update it instead",
                new.name
            )),
            other => other,
        })?;
        sql(
            "INSERT INTO workflow_versions (workflow_id, version, definition_hash, \
             ir_hash, created_at) VALUES ($1, 1, $2, $3, $4)",
        )
        .bind(&id)
        .bind(&definition_hash)
        .bind(&ir_hash)
        .bind(at)
        .execute(&mut tx)
        .await
        .map_err(StoreError::db("store a workflow version"))?;
        tx.commit()
            .await
            .map_err(StoreError::db("commit a new workflow"))?;
        Ok(WorkflowVersion {
            workflow_id: id,
            version: 1,
            definition_hash,
            ir_hash,
            created_at: at,
        })
    }

    async fn update_workflow(
        &self,
        id: &str,
        new: &NewWorkflowVersion,
    ) -> Result<(WorkflowVersion, bool), StoreError> {
        crate::workflow::check_name(&new.name)?;
        let at = now();
        let definition_hash = crate::blob_hash(&new.definition);
        let ir_hash = crate::blob_hash(&new.ir);
        let mut tx = self
            .begin()
            .await
            .map_err(StoreError::db("begin updating a workflow"))?;
        // Takes the row lock on PostgreSQL first, so concurrent updates get distinct
        // version numbers.
        let locked = sql("UPDATE workflows SET updated_at = updated_at WHERE id = $1")
            .bind(id)
            .execute(&mut tx)
            .await
            .map_err(StoreError::db("lock a workflow"))?;
        if locked.rows_affected() == 0 {
            return Err(StoreError::not_found(format!("workflow {id}")));
        }
        let latest: WorkflowVersionRow = sql(format!(
            "SELECT {WORKFLOW_VERSION_COLUMNS} FROM workflow_versions \
             WHERE workflow_id = $1 ORDER BY version DESC LIMIT 1"
        ))
        .bind(id)
        .fetch_one(&mut tx)
        .await
        .map_err(StoreError::db("read a workflow's latest version"))?;
        let latest = latest.into_version();
        if latest.ir_hash == ir_hash {
            return Ok((latest, false));
        }
        for (kind, body, hash) in [
            ("workflow_definition", &new.definition, &definition_hash),
            ("workflow_ir", &new.ir, &ir_hash),
        ] {
            sql(INSERT_BLOB)
                .bind(hash)
                .bind(kind)
                .bind(body)
                .bind(at)
                .execute(&mut tx)
                .await
                .map_err(StoreError::db("store a workflow blob"))?;
        }
        let version = latest.version + 1;
        sql(
            "INSERT INTO workflow_versions (workflow_id, version, definition_hash, \
             ir_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(version as i32)
        .bind(&definition_hash)
        .bind(&ir_hash)
        .bind(at)
        .execute(&mut tx)
        .await
        .map_err(StoreError::db("store a workflow version"))?;
        sql("UPDATE workflows SET name = $2, latest_version = $3, updated_at = $4 WHERE id = $1")
            .bind(id)
            .bind(&new.name)
            .bind(version as i32)
            .bind(at)
            .execute(&mut tx)
            .await
            .map_err(|e| match StoreError::db("update a workflow")(e) {
                StoreError::Conflict(_) => {
                    StoreError::Conflict(format!("another workflow is named `{}`", new.name))
                }
                other => other,
            })?;
        tx.commit()
            .await
            .map_err(StoreError::db("commit a workflow version"))?;
        Ok((
            WorkflowVersion {
                workflow_id: id.to_string(),
                version,
                definition_hash,
                ir_hash,
                created_at: at,
            },
            true,
        ))
    }

    async fn workflow(&self, id: &str) -> Result<Workflow, StoreError> {
        let row: Option<WorkflowRow> = sql(
            "SELECT id, name, latest_version, created_at, updated_at FROM workflows \
             WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::db("read a workflow"))?;
        row.map(WorkflowRow::into_workflow)
            .ok_or_else(|| StoreError::not_found(format!("workflow {id}")))
    }

    async fn list_workflows(&self, limit: u32, offset: u64) -> Result<Vec<Workflow>, StoreError> {
        let rows: Vec<WorkflowRow> = sql(
            "SELECT id, name, latest_version, created_at, updated_at FROM workflows \
             ORDER BY name LIMIT $1 OFFSET $2",
        )
        .bind(page(limit))
        .bind(sql_offset(offset))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::db("list workflows"))?;
        Ok(rows.into_iter().map(WorkflowRow::into_workflow).collect())
    }

    async fn workflow_version(
        &self,
        id: &str,
        version: Option<u32>,
    ) -> Result<WorkflowVersion, StoreError> {
        let row: Option<WorkflowVersionRow> = sql(format!(
            "SELECT {WORKFLOW_VERSION_COLUMNS} FROM workflow_versions \
             WHERE workflow_id = $1 AND ($2 IS NULL OR version = $2) \
             ORDER BY version DESC LIMIT 1"
        ))
        .bind(id)
        .bind(version.map(|v| v as i32))
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::db("read a workflow version"))?;
        row.map(WorkflowVersionRow::into_version).ok_or_else(|| {
            StoreError::not_found(match version {
                Some(v) => format!("version {v} of workflow {id}"),
                None => format!("workflow {id}"),
            })
        })
    }

    async fn workflow_versions(&self, id: &str) -> Result<Vec<WorkflowVersion>, StoreError> {
        self.workflow(id).await?;
        let rows: Vec<WorkflowVersionRow> = sql(format!(
            "SELECT {WORKFLOW_VERSION_COLUMNS} FROM workflow_versions \
             WHERE workflow_id = $1 ORDER BY version"
        ))
        .bind(id)
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::db("list workflow versions"))?;
        Ok(rows
            .into_iter()
            .map(WorkflowVersionRow::into_version)
            .collect())
    }

    async fn delete_workflow(&self, id: &str) -> Result<(), StoreError> {
        let done = sql("DELETE FROM workflows WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(StoreError::db("delete a workflow"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found(format!("workflow {id}")));
        }
        Ok(())
    }
}
