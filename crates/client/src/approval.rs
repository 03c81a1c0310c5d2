//! Approvals of `hitl` nodes: list, read and decide (`/approvals…`).

use serde::{Deserialize, Serialize};

use crate::status::status_enum;
use crate::{Client, Error};

status_enum!(
    /// Status of an approval.
    ApprovalStatus {
        Pending => "pending",
        Approved => "approved",
        Rejected => "rejected",
        Expired => "expired",
        Cancelled => "cancelled",
    }
);

status_enum!(
    /// What an approver decided (or the default an expired approval took).
    Decision {
        Approve => "approve",
        Reject => "reject",
    }
);

/// An approval of a `hitl` node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub id: String,
    pub run_id: String,
    pub node_id: String,
    pub attempt: u32,
    pub prompt: String,
    pub status: ApprovalStatus,
    /// What an expired approval decides.
    pub default_decision: Decision,
    /// API key names that may decide (`None`: any operator).
    pub approvers: Option<Vec<String>>,
    pub expires_at: String,
    pub decision: Option<Decision>,
    pub decided_by: Option<String>,
    pub comment: Option<String>,
    pub decided_at: Option<String>,
    pub created_at: String,
}

/// `GET /approvals`: approvals oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalList {
    pub approvals: Vec<Approval>,
}

/// Which approvals `GET /approvals` lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApprovalFilter {
    /// A status name, or `all` (the API's default); the API checks it.
    pub status: Option<String>,
    /// Only the approvals of this run (a full id).
    pub run_id: Option<String>,
    /// Page size (the API's default 100, at most 1000).
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

/// The body of `POST /approvals/{id}/decide`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DecideRequest {
    pub decision: Decision,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// A name the caller gives: with auth off it names the decider; with a key, the key's
    /// name decides and a different `by` is kept as a note in the comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

impl Client {
    /// Approvals, oldest first.
    pub async fn list_approvals(&self, filter: &ApprovalFilter) -> Result<ApprovalList, Error> {
        let mut query = Vec::new();
        if let Some(status) = &filter.status {
            query.push(("status", status.clone()));
        }
        if let Some(run_id) = &filter.run_id {
            query.push(("run_id", run_id.clone()));
        }
        if let Some(limit) = filter.limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(offset) = filter.offset {
            query.push(("offset", offset.to_string()));
        }
        self.get(&["approvals"], &query, "a list of approvals")
            .await
    }

    /// An approval by its full id.
    pub async fn approval(&self, id: &str) -> Result<Approval, Error> {
        self.get(&["approvals", id], &[], "an approval").await
    }

    /// Decides a pending approval (409 `approval_closed` when it is not pending any more);
    /// the decided approval. The run resumes down the matching branch.
    pub async fn decide(&self, id: &str, decision: &DecideRequest) -> Result<Approval, Error> {
        self.post(&["approvals", id, "decide"], decision, "an approval")
            .await
    }
}
