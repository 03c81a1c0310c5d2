//! Workflow definitions: create, update and list (`/workflows…`). The server compiles every
//! definition it stores; one that does not compile is [`Error::Api`] 422 `invalid_workflow`
//! with each problem in `details`.

use std::fmt;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Client, Error};

/// The answer of a create or an update.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedWorkflow {
    pub id: String,
    pub version: u32,
    /// sha256 of the compiled IR: the workflow's content address.
    pub ir_hash: String,
    /// `false` when an update had the same IR as the latest version (no new version).
    pub changed: bool,
    /// Unknown node types and nodes that will always be skipped.
    pub warnings: Vec<String>,
}

/// A workflow in `GET /workflows`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowInfo {
    pub id: String,
    pub name: String,
    pub latest_version: u32,
    pub created_at: String,
    pub updated_at: String,
}

/// `GET /workflows`: one page of workflows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowList {
    pub workflows: Vec<WorkflowInfo>,
}

/// What [`Client::save_workflow`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveOutcome {
    /// A new workflow, version 1.
    Created,
    /// A new version of the workflow of that name.
    Updated,
    /// The latest version already had this IR: nothing was stored.
    Unchanged,
}

impl fmt::Display for SaveOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SaveOutcome::Created => "created",
            SaveOutcome::Updated => "updated",
            SaveOutcome::Unchanged => "unchanged",
        })
    }
}

impl Client {
    /// Creates a workflow from a definition (JSON); 409 `workflow_exists` when one of that
    /// name exists.
    pub async fn create_workflow(&self, definition: &Value) -> Result<SavedWorkflow, Error> {
        self.post(&["workflows"], definition, "a saved workflow")
            .await
    }

    /// Stores a new version of the workflow `id` (none when the IR is the latest's).
    pub async fn update_workflow(
        &self,
        id: &str,
        definition: &Value,
    ) -> Result<SavedWorkflow, Error> {
        self.call(
            Method::PUT,
            &["workflows", id],
            &[],
            Some(definition),
            "a saved workflow",
        )
        .await
    }

    /// One page of workflows.
    pub async fn list_workflows(&self, limit: u32, offset: u64) -> Result<WorkflowList, Error> {
        let query = [("limit", limit.to_string()), ("offset", offset.to_string())];
        self.get(&["workflows"], &query, "a list of workflows")
            .await
    }

    /// The workflow named `name`, looked up page by page.
    pub async fn find_workflow(&self, name: &str) -> Result<Option<WorkflowInfo>, Error> {
        const PAGE: u32 = 100;
        let mut offset = 0;
        loop {
            let page = self.list_workflows(PAGE, offset).await?.workflows;
            let n = page.len();
            if let Some(found) = page.into_iter().find(|w| w.name == name) {
                return Ok(Some(found));
            }
            if n < PAGE as usize {
                return Ok(None);
            }
            offset += u64::from(PAGE);
        }
    }

    /// Creates the workflow `name` from `definition`, or stores it as a new version of the
    /// workflow of that name when there is one.
    pub async fn save_workflow(
        &self,
        name: &str,
        definition: &Value,
    ) -> Result<(SavedWorkflow, SaveOutcome), Error> {
        match self.create_workflow(definition).await {
            Ok(created) => Ok((created, SaveOutcome::Created)),
            Err(Error::Api(e)) if e.code == "workflow_exists" => {
                let Some(existing) = self.find_workflow(name).await? else {
                    return Err(Error::WorkflowNotListed {
                        name: name.to_string(),
                    });
                };
                let updated = self.update_workflow(&existing.id, definition).await?;
                let outcome = if updated.changed {
                    SaveOutcome::Updated
                } else {
                    SaveOutcome::Unchanged
                };
                Ok((updated, outcome))
            }
            Err(e) => Err(e),
        }
    }
}
