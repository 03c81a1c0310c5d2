//! Workflow runs as the store keeps them, for a coordinator that holds no state of its own.
//!
//! A run changes only through [`Transition`]s: each carries the id of the signal that caused it
//! (a node completed, an approval was decided, a timer fired…), the run's revision it was
//! computed from, the node states to write and the events to emit. The store commits a
//! transition atomically and exactly once: a signal id already applied changes nothing
//! ([`TransitionOutcome::AlreadyApplied`], so redelivered signals are harmless), and a
//! transition computed from a stale revision is refused ([`crate::StoreError::Conflict`]; the
//! coordinator reads again and recomputes). Kill the coordinator anywhere: either the whole
//! transition is in the store or none of it is.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

macro_rules! status_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),* }

        impl $name {
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)*
                    other => Err(format!(
                        "unknown {} `{other}`; expected {}",
                        stringify!($name),
                        [$($text),*].join(", ")
                    )),
                }
            }
        }
    };
}

status_enum!(
    /// Status of a workflow run. `queued`: a concurrency limit (the workflow's or the API
    /// key's `max_concurrent_runs`) was full when it was started; it becomes `pending` when a
    /// slot frees. `paused`: a user paused it; no new node starts until it is resumed (nodes
    /// already running finish and their results are kept).
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

status_enum!(
    /// How urgent a run is: the ready nodes of `high` runs are taken from the work queues before
    /// those of `normal` runs, and those before `low` ones (first come, first served within a
    /// priority). Chosen when the run starts; `normal` unless given.
    RunPriority {
        High => "high",
        Normal => "normal",
        Low => "low",
    }
);

// `status_enum!` takes no attributes per variant, so `#[default]` cannot be derived.
#[allow(clippy::derivable_impls)]
impl Default for RunPriority {
    fn default() -> Self {
        RunPriority::Normal
    }
}

status_enum!(
    /// Status of an approval of a `hitl` node.
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

impl RunStatus {
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

/// A run to create: which workflow version (by its IR blob) with which inputs, and its nodes
/// (all `pending`).
#[derive(Clone, Debug, PartialEq)]
pub struct NewWorkflowRun {
    pub workflow_id: String,
    pub workflow_version: u32,
    pub ir_hash: String,
    /// The definition blob the IR was compiled from (patches apply to it).
    pub definition_hash: String,
    /// Agent nodes of the definition (counted against `limits.max_agent_nodes`).
    pub agent_nodes: u32,
    pub inputs: Value,
    pub nodes: Vec<String>,
    /// Stored with the run; its node tasks are queued at this priority.
    pub priority: RunPriority,
    /// The API key that started it (counted against the key's `max_concurrent_runs`).
    pub api_key_id: Option<String>,
    /// The definition's `limits.max_concurrent_runs`, if any.
    pub workflow_limit: Option<u32>,
}

/// A run as stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkflowRun {
    /// UUIDv7.
    pub id: String,
    pub workflow_id: String,
    pub workflow_version: u32,
    /// The IR the coordinator uses (a patch replaces it).
    pub ir_hash: String,
    /// The definition the IR was compiled from; `None` only for runs created before migration
    /// 0005.
    pub definition_hash: Option<String>,
    /// 1, plus one per accepted patch.
    pub ir_version: u32,
    /// Agent nodes the run has had: those of its definition plus every one patches added.
    pub agent_nodes_spawned: u32,
    pub status: RunStatus,
    /// Its node tasks are queued at this priority (chosen at start).
    pub priority: RunPriority,
    /// The API key that started it, if any.
    pub api_key_id: Option<String>,
    /// The `limits.max_concurrent_runs` of the definition it was started with, if any.
    pub workflow_limit: Option<u32>,
    pub inputs: Value,
    /// Emitted minus consumed tasks: the run is complete when it reaches zero with nothing
    /// waiting.
    pub tokens: i64,
    /// Bumped by every committed transition.
    pub revision: i64,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl WorkflowRun {
    /// Applies to this run what committing `t` writes to its row ([`crate::RunStore`]), with
    /// `at` as the finishing time if `t` ends the run: for a caller that keeps runs in memory.
    pub fn advance(&mut self, t: &Transition, at: DateTime<Utc>) {
        self.revision += 1;
        if let Some(status) = t.status {
            self.status = status;
            if status.is_terminal() && self.finished_at.is_none() {
                self.finished_at = Some(at);
            }
        }
        self.tokens += t.tokens_delta;
        if let Some(p) = &t.patch {
            self.ir_hash = p.ir_hash.clone();
            self.definition_hash = Some(p.definition_hash.clone());
            self.ir_version += 1;
            self.agent_nodes_spawned += p.added_agent_nodes;
        }
        if let Some(e) = &t.error {
            self.error = Some(e.clone());
        }
    }
}

/// One node of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeState {
    pub node_id: String,
    pub status: NodeStatus,
    pub attempts: u32,
    /// The blob holding the node's output, once completed.
    pub output_hash: Option<String>,
    pub error: Option<String>,
    /// A queued node does not start before this (retry back-off, `wait` timers).
    pub not_before: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// The new state of one node (inserted if the node is new, e.g. added by a patch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeChange {
    pub node_id: String,
    pub status: NodeStatus,
    pub attempts: u32,
    pub output_hash: Option<String>,
    pub error: Option<String>,
    pub not_before: Option<DateTime<Utc>>,
}

/// A patch a run accepted, materialised as a new IR version.
#[derive(Clone, Debug, PartialEq)]
pub struct NewPatch {
    /// The RFC 6902 operations as given.
    pub operations: Value,
    pub definition_hash: String,
    pub ir_hash: String,
    /// Who applied it: an API key's name, `cli`, or `agent:<node id>`.
    pub applied_by: String,
    /// Agent nodes the patch added.
    pub added_agent_nodes: u32,
}

/// A patch as stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Patch {
    pub run_id: String,
    /// The IR version the patch produced.
    pub ir_version: u32,
    pub operations: Value,
    pub definition_hash: String,
    pub ir_hash: String,
    pub applied_by: String,
    pub applied_at: DateTime<Utc>,
}

/// An approval to create with a transition.
#[derive(Clone, Debug, PartialEq)]
pub struct NewApproval {
    /// Chosen by the caller, so a redelivered signal computes the same one.
    pub id: String,
    pub node_id: String,
    pub attempt: u32,
    pub prompt: String,
    pub default_decision: Decision,
    pub approvers: Option<Vec<String>>,
    pub expires_at: DateTime<Utc>,
}

/// A change to an approval, committed with a transition.
#[derive(Clone, Debug, PartialEq)]
pub enum ApprovalChange {
    Create(NewApproval),
    /// A pending approval decided (by a person, or by expiry with its default), or cancelled.
    Close {
        id: String,
        status: ApprovalStatus,
        decision: Option<Decision>,
        by: Option<String>,
        comment: Option<String>,
    },
}

/// An approval as stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Approval {
    pub id: String,
    pub run_id: String,
    pub node_id: String,
    pub attempt: u32,
    pub prompt: String,
    pub status: ApprovalStatus,
    pub default_decision: Decision,
    pub approvers: Option<Vec<String>>,
    pub expires_at: DateTime<Utc>,
    pub decision: Option<Decision>,
    pub decided_by: Option<String>,
    pub comment: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// An event to append to the run's stream.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// e.g. `node_queued`, `node_completed`, `approval_requested`, `run_finished`.
    pub kind: String,
    pub node_id: Option<String>,
    pub payload: Value,
}

/// Everything one signal changes in a run, committed atomically and at most once.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    pub run_id: String,
    /// Unique per signal; the applied-set key.
    pub signal_id: String,
    /// The revision the transition was computed from.
    pub expect_revision: i64,
    /// Set by a writer that plans a run's transitions one on top of another before the earlier
    /// ones are committed: the id of that chain of plans. A revision is a count, so it cannot
    /// tell two histories of the same length apart; a transition planned on a refused one
    /// could match the revision that some other write (another process, a cancel, a patch)
    /// moved the run to. So once a transition of a lineage is refused, every later one of
    /// the same lineage is refused as a conflict too ([`crate::RunStore::commit_batch`] within
    /// its batch; the writer across batches). `None`: planned on the run as read from the
    /// store, checked by its revision alone.
    pub lineage: Option<u64>,
    pub nodes: Vec<NodeChange>,
    /// A new run status, if it changes.
    pub status: Option<RunStatus>,
    /// Added to the token counter (tasks emitted minus consumed).
    pub tokens_delta: i64,
    /// A patch accepted: the run moves to its IR, one version up.
    pub patch: Option<NewPatch>,
    pub error: Option<String>,
    pub approvals: Vec<ApprovalChange>,
    pub events: Vec<NewEvent>,
    /// Blobs (e.g. node outputs) the transition refers to, stored with it unless their hash is
    /// there already.
    pub blobs: Vec<NewBlob>,
}

/// A content-addressed blob to store (its hash is [`crate::blob_hash`] of `body`).
#[derive(Clone, Debug, PartialEq)]
pub struct NewBlob {
    pub kind: String,
    pub body: String,
}

/// A run to create with its id and creation time chosen by the caller, so that the caller can
/// go on with the run (plan its start) before the creation is committed.
#[derive(Clone, Debug, PartialEq)]
pub struct CreateRun {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub new: NewWorkflowRun,
}

impl CreateRun {
    /// A fresh UUIDv7 id and the store's clock (UTC, microseconds).
    pub fn new(new: NewWorkflowRun) -> Self {
        CreateRun {
            id: uuid::Uuid::now_v7().to_string(),
            created_at: crate::sql::now(),
            new,
        }
    }

    /// The run as the store holds it once created: `pending`, revision 0.
    pub fn run(&self) -> WorkflowRun {
        WorkflowRun {
            id: self.id.clone(),
            workflow_id: self.new.workflow_id.clone(),
            workflow_version: self.new.workflow_version,
            ir_hash: self.new.ir_hash.clone(),
            definition_hash: Some(self.new.definition_hash.clone()),
            ir_version: 1,
            agent_nodes_spawned: self.new.agent_nodes,
            status: RunStatus::Pending,
            priority: self.new.priority,
            api_key_id: self.new.api_key_id.clone(),
            workflow_limit: self.new.workflow_limit,
            inputs: self.new.inputs.clone(),
            tokens: 0,
            revision: 0,
            error: None,
            created_at: self.created_at,
            finished_at: None,
        }
    }
}

/// One write of a batch ([`crate::RunStore::commit_batch`]).
#[derive(Clone, Debug, PartialEq)]
pub enum RunWrite {
    /// A new `pending` run, its nodes `pending`, and its `run_created` event.
    Create(CreateRun),
    Transition(Transition),
}

impl Transition {
    /// A transition of `run_id` at `expect_revision` caused by `signal_id` that changes nothing
    /// yet; fill in what it does.
    pub fn new(
        run_id: impl Into<String>,
        signal_id: impl Into<String>,
        expect_revision: i64,
    ) -> Self {
        Transition {
            run_id: run_id.into(),
            signal_id: signal_id.into(),
            expect_revision,
            lineage: None,
            nodes: Vec::new(),
            status: None,
            tokens_delta: 0,
            patch: None,
            error: None,
            approvals: Vec::new(),
            events: Vec::new(),
            blobs: Vec::new(),
        }
    }
}

/// What [`crate::RunStore::commit_transition`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransitionOutcome {
    /// Committed; the run is now at this revision.
    Applied { revision: i64 },
    /// This signal was applied before: nothing changed.
    AlreadyApplied,
}

/// One event of the store's event log: of a workflow run (`run_id` set), of a simulation job
/// (`job_id` set) or of an engine run (`engine_run_id` set: a paper run's `order`, `fill` and
/// `equity` events), exactly one of them. `seq` increases across all runs and jobs of the
/// store, in commit order, and is never reused.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunEvent {
    pub seq: i64,
    pub run_id: Option<String>,
    pub job_id: Option<String>,
    pub engine_run_id: Option<String>,
    pub kind: String,
    pub node_id: Option<String>,
    pub payload: Value,
    pub at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_name_the_choices() {
        for s in [
            "pending",
            "queued",
            "running",
            "waiting",
            "completed",
            "failed",
            "skipped",
        ] {
            assert_eq!(s.parse::<NodeStatus>().unwrap().as_str(), s);
        }
        let e = "done".parse::<RunStatus>().unwrap_err();
        assert!(
            e.contains("unknown RunStatus `done`") && e.contains("cancelled"),
            "{e}"
        );
        assert!(RunStatus::Cancelled.is_terminal() && !RunStatus::Waiting.is_terminal());
    }
}
