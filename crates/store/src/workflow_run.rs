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
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
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
    /// Status of a workflow run.
    RunStatus {
        Pending => "pending",
        Running => "running",
        Waiting => "waiting",
        Completed => "completed",
        Failed => "failed",
        Cancelled => "cancelled",
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
    pub inputs: Value,
    pub nodes: Vec<String>,
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
    pub status: RunStatus,
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

/// One node of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeState {
    pub node_id: String,
    pub status: NodeStatus,
    pub attempts: u32,
    /// The blob holding the node's output, once completed.
    pub output_hash: Option<String>,
    pub error: Option<String>,
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
    pub nodes: Vec<NodeChange>,
    /// A new run status, if it changes.
    pub status: Option<RunStatus>,
    /// Added to the token counter (tasks emitted minus consumed).
    pub tokens_delta: i64,
    /// A new IR (a materialised patch).
    pub ir_hash: Option<String>,
    pub error: Option<String>,
    pub events: Vec<NewEvent>,
}

/// What [`crate::Store::commit_transition`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransitionOutcome {
    /// Committed; the run is now at this revision.
    Applied { revision: i64 },
    /// This signal was applied before: nothing changed.
    AlreadyApplied,
}

/// One event of a run's stream; `seq` increases across all runs of the store.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunEvent {
    pub seq: i64,
    pub run_id: String,
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
