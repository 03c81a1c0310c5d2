//! Workflow runs: start, read, list, cancel, pause, resume and patch (`/workflows/{id}/runs`,
//! `/workflow-runs…`). Times are kept as the RFC 3339 text the API sends.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::approval::{Approval, ApprovalStatus};
use crate::status::status_enum;
use crate::{Client, Error};

status_enum!(
    /// Status of a workflow run.
    RunStatus {
        Queued => "queued",
        Pending => "pending",
        Running => "running",
        Waiting => "waiting",
        Paused => "paused",
        Completed => "completed",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

impl RunStatus {
    /// Completed, failed or cancelled: the run will not change again.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

status_enum!(
    /// Status of one node of a run.
    NodeStatus {
        Pending => "pending",
        Queued => "queued",
        Running => "running",
        Waiting => "waiting",
        Completed => "completed",
        Failed => "failed",
        Skipped => "skipped",
    }
);

/// The body of `POST /workflows/{id}/runs`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StartRun {
    /// Run inputs by name; declared inputs without a value take their default.
    pub inputs: Map<String, Value>,
    /// The workflow version to run (default: the latest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// `high`, `normal` (the server's default) or `low`: the run's ready nodes are taken from
    /// the work queues before those of runs of a lower priority.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
}

/// The answer of `POST /workflows/{id}/runs`: the run is created and queued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStarted {
    pub run_id: String,
    pub workflow_id: String,
    pub workflow_version: u32,
    pub status: RunStatus,
}

/// One node of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub id: String,
    /// `None` for a node a patch removed.
    #[serde(rename = "type")]
    pub node_type: Option<String>,
    pub status: NodeStatus,
    pub attempts: u32,
    pub error: Option<String>,
    /// Blob hash of the output (`GET /blobs/{hash}`), once completed.
    pub output: Option<String>,
    pub not_before: Option<String>,
    pub needs: Vec<String>,
    pub removed: bool,
}

/// A patch applied to a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Patch {
    pub run_id: String,
    /// The IR version the patch produced.
    pub ir_version: u32,
    /// The RFC 6902 operations.
    pub operations: Value,
    pub definition_hash: String,
    pub ir_hash: String,
    /// An API key's name, `cli`, or `agent:<node id>`.
    pub applied_by: String,
    pub applied_at: String,
}

/// `GET /workflow-runs/{id}`: a run with its nodes, patches and approvals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunView {
    pub run_id: String,
    pub workflow_id: String,
    pub workflow_name: String,
    pub workflow_version: u32,
    pub status: RunStatus,
    /// `high`, `normal` or `low` (absent from servers before run priorities).
    #[serde(default)]
    pub priority: Option<String>,
    pub ir_version: u32,
    pub ir_hash: String,
    pub definition_hash: Option<String>,
    pub inputs: Value,
    /// Tasks emitted minus tasks consumed (0 once the run is quiet).
    pub tokens: i64,
    pub error: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
    pub nodes: Vec<NodeView>,
    pub patches: Vec<Patch>,
    pub approvals: Vec<Approval>,
}

impl RunView {
    /// The approvals still waiting for a decision.
    pub fn pending_approvals(&self) -> impl Iterator<Item = &Approval> {
        self.approvals
            .iter()
            .filter(|a| a.status == ApprovalStatus::Pending)
    }
}

/// A run in `GET /workflow-runs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_id: String,
    pub workflow_id: String,
    pub workflow_version: u32,
    pub status: RunStatus,
    pub ir_version: u32,
    pub error: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

/// `GET /workflow-runs`: one page of runs, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunList {
    pub runs: Vec<RunSummary>,
}

/// Which runs `GET /workflow-runs` lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// A status name, or `all`; the API checks it (400 `invalid_status`).
    pub status: Option<String>,
    /// Page size (the API's default 50, at most 500).
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

/// The answer of an applied `POST /workflow-runs/{id}/patch`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchApplied {
    pub run_id: String,
    /// The run's IR version after the patch.
    pub ir_version: u32,
}

impl Client {
    /// Starts a run of the workflow `workflow_id`.
    pub async fn start_run(
        &self,
        workflow_id: &str,
        start: &StartRun,
    ) -> Result<RunStarted, Error> {
        self.post(&["workflows", workflow_id, "runs"], start, "a started run")
            .await
    }

    /// A run by its full id.
    pub async fn run(&self, run_id: &str) -> Result<RunView, Error> {
        self.get(&["workflow-runs", run_id], &[], "a workflow run")
            .await
    }

    /// One page of runs, newest first.
    pub async fn list_runs(&self, filter: &RunFilter) -> Result<RunList, Error> {
        let mut query = Vec::new();
        if let Some(limit) = filter.limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(offset) = filter.offset {
            query.push(("offset", offset.to_string()));
        }
        if let Some(status) = &filter.status {
            query.push(("status", status.clone()));
        }
        self.get(&["workflow-runs"], &query, "a list of workflow runs")
            .await
    }

    /// Cancels an unfinished run (409 `conflict` when it has finished); the cancelled run.
    pub async fn cancel_run(&self, run_id: &str, reason: Option<&str>) -> Result<RunView, Error> {
        #[derive(Serialize)]
        struct Cancel<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            reason: Option<&'a str>,
        }
        self.post(
            &["workflow-runs", run_id, "cancel"],
            &Cancel { reason },
            "a workflow run",
        )
        .await
    }

    /// Pauses a pending, running or waiting run (409 `invalid_run_state` otherwise); the
    /// paused run.
    pub async fn pause_run(&self, run_id: &str) -> Result<RunView, Error> {
        self.post(
            &["workflow-runs", run_id, "pause"],
            &serde_json::json!({}),
            "a workflow run",
        )
        .await
    }

    /// Resumes a paused run (409 `invalid_run_state` otherwise); the resumed run.
    pub async fn resume_run(&self, run_id: &str) -> Result<RunView, Error> {
        self.post(
            &["workflow-runs", run_id, "resume"],
            &serde_json::json!({}),
            "a workflow run",
        )
        .await
    }

    /// Applies RFC 6902 `operations` to the run's definition. A rejected patch is
    /// [`Error::Api`] with status 422, code `patch_rejected` and every reason in `details`.
    pub async fn patch_run(&self, run_id: &str, operations: &Value) -> Result<PatchApplied, Error> {
        self.post(
            &["workflow-runs", run_id, "patch"],
            operations,
            "an applied patch",
        )
        .await
    }
}
