//! [`ApprovalStore`]: reading the approvals and patches of workflow runs (both are written by
//! [`crate::RunStore::commit_transition`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::FromRow;
use sqlx::types::Json;

use crate::error::StoreError;
use crate::sql::{Db, corrupt, page, sql, sql_offset};
use crate::workflow_run::{Approval, ApprovalStatus, Patch};

#[derive(FromRow)]
pub(crate) struct ApprovalRow {
    id: String,
    run_id: String,
    node_id: String,
    attempt: i32,
    prompt: String,
    status: String,
    default_decision: String,
    approvers: Option<Json<Vec<String>>>,
    expires_at: DateTime<Utc>,
    decision: Option<String>,
    decided_by: Option<String>,
    comment: Option<String>,
    decided_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

pub(crate) const APPROVAL_COLUMNS: &str = "id, run_id, node_id, attempt, prompt, status, \
     default_decision, approvers, expires_at, decision, decided_by, comment, decided_at, created_at";

impl ApprovalRow {
    pub(crate) fn into_approval(self) -> Result<Approval, StoreError> {
        Ok(Approval {
            status: self
                .status
                .parse()
                .map_err(corrupt("workflow_approvals.status"))?,
            default_decision: self
                .default_decision
                .parse()
                .map_err(corrupt("workflow_approvals.default_decision"))?,
            decision: self
                .decision
                .map(|d| d.parse())
                .transpose()
                .map_err(corrupt("workflow_approvals.decision"))?,
            id: self.id,
            run_id: self.run_id,
            node_id: self.node_id,
            attempt: u32::try_from(self.attempt).unwrap_or(0),
            prompt: self.prompt,
            approvers: self.approvers.map(|a| a.0),
            expires_at: self.expires_at,
            decided_by: self.decided_by,
            comment: self.comment,
            decided_at: self.decided_at,
            created_at: self.created_at,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct PatchRow {
    run_id: String,
    ir_version: i32,
    operations: Json<Value>,
    definition_hash: String,
    ir_hash: String,
    applied_by: String,
    applied_at: DateTime<Utc>,
}

impl PatchRow {
    pub(crate) fn into_patch(self) -> Patch {
        Patch {
            run_id: self.run_id,
            ir_version: u32::try_from(self.ir_version).unwrap_or(0),
            operations: self.operations.0,
            definition_hash: self.definition_hash,
            ir_hash: self.ir_hash,
            applied_by: self.applied_by,
            applied_at: self.applied_at,
        }
    }
}

/// Approvals and patches of workflow runs.
#[async_trait]
pub trait ApprovalStore: Send + Sync {
    /// [`StoreError::NotFound`] if there is no such approval.
    async fn approval(&self, id: &str) -> Result<Approval, StoreError>;

    /// Approvals, oldest first, optionally only those in `status` and/or of one run.
    async fn list_approvals(
        &self,
        status: Option<ApprovalStatus>,
        run_id: Option<&str>,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<Approval>, StoreError>;

    /// The patches a run accepted, by IR version.
    async fn run_patches(&self, run_id: &str) -> Result<Vec<Patch>, StoreError>;
}

#[async_trait]
impl<D: Db> ApprovalStore for D {
    async fn approval(&self, id: &str) -> Result<Approval, StoreError> {
        let row: Option<ApprovalRow> = sql(format!(
            "SELECT {APPROVAL_COLUMNS} FROM workflow_approvals WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::db("read an approval"))?;
        row.ok_or_else(|| StoreError::not_found(format!("approval {id}")))?
            .into_approval()
    }

    async fn list_approvals(
        &self,
        status: Option<ApprovalStatus>,
        run_id: Option<&str>,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<Approval>, StoreError> {
        let rows: Vec<ApprovalRow> = sql(format!(
            "SELECT {APPROVAL_COLUMNS} FROM workflow_approvals \
             WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR run_id = $2) \
             ORDER BY created_at, id LIMIT $3 OFFSET $4"
        ))
        .bind(status.map(|s| s.as_str()))
        .bind(run_id)
        .bind(page(limit))
        .bind(sql_offset(offset))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::db("list approvals"))?;
        rows.into_iter().map(ApprovalRow::into_approval).collect()
    }

    async fn run_patches(&self, run_id: &str) -> Result<Vec<Patch>, StoreError> {
        let rows: Vec<PatchRow> = sql(
            "SELECT run_id, ir_version, operations, definition_hash, ir_hash, applied_by, \
             applied_at FROM workflow_patches WHERE run_id = $1 ORDER BY ir_version",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::db("read patches"))?;
        Ok(rows.into_iter().map(PatchRow::into_patch).collect())
    }
}
