//! [`Signal`]: what moves a run forward, and the id that makes applying it idempotent.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tradeloom_store::Decision;

/// Pool the coordinator loop takes completion signals from.
pub const SIGNAL_POOL: &str = "signals";

/// A completion signal on its way to the coordinator.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SignalEnvelope {
    pub run_id: String,
    pub signal: Signal,
}

/// How one attempt of a node ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Completed {
        /// The blob holding `output`.
        output_hash: String,
        output: Value,
    },
    Failed {
        error: String,
        /// Whether another attempt may succeed (timeouts, 5xx, connection errors); a bad
        /// template or a 4xx is not retried.
        retryable: bool,
    },
}

/// Something that happened to a run. Workers post [`Signal::NodeStarted`] and
/// [`Signal::NodeFinished`]; the API posts the rest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "signal", rename_all = "snake_case")]
pub enum Signal {
    /// The run was created: emit its first nodes.
    Start,
    /// Re-evaluate the run (after a restart, or when a patch changed its graph).
    Advance {
        revision: i64,
    },
    NodeStarted {
        node: String,
        attempt: u32,
    },
    NodeFinished {
        node: String,
        attempt: u32,
        #[serde(flatten)]
        outcome: Outcome,
    },
    /// A `hitl` node's approval was decided by a person, or expired with its default.
    Decided {
        approval_id: String,
        node: String,
        attempt: u32,
        decision: Decision,
        by: String,
        comment: Option<String>,
        expired: bool,
    },
    Cancel {
        by: String,
        reason: Option<String>,
    },
    /// A user paused the run: no new node starts until it is resumed (nodes already running
    /// finish, and their results are kept). `request` is unique per request, so a run can be
    /// paused again after a resume.
    Pause {
        by: String,
        request: String,
    },
    /// A user resumed a paused run: what was held back starts, timers that fell due during the
    /// pause take effect now.
    Resume {
        by: String,
        request: String,
    },
}

impl Signal {
    /// The applied-set key: one per effect, so a redelivered signal (or a second signal for the
    /// same effect, e.g. a timeout and a late completion of one attempt) applies at most once.
    pub fn id(&self) -> String {
        match self {
            Signal::Start => "start".to_string(),
            Signal::Advance { revision } => format!("advance@{revision}"),
            Signal::NodeStarted { node, attempt } => format!("{node}#{attempt}:started"),
            Signal::NodeFinished { node, attempt, .. } => format!("{node}#{attempt}:finished"),
            Signal::Decided { node, attempt, .. } => format!("{node}#{attempt}:decided"),
            Signal::Cancel { .. } => "cancel".to_string(),
            Signal::Pause { request, .. } => format!("pause:{request}"),
            Signal::Resume { request, .. } => format!("resume:{request}"),
        }
    }
}

/// The deterministic id of the approval of attempt `attempt` of `node` in `run_id`, so a
/// recomputed transition creates the same approval.
pub fn approval_id(run_id: &str, node: &str, attempt: u32) -> String {
    let hash = tradeloom_store::blob_hash(&format!("{run_id}/{node}/{attempt}"));
    format!("apr_{}", &hash[..20])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_id_per_effect() {
        let done = Signal::NodeFinished {
            node: "a".into(),
            attempt: 2,
            outcome: Outcome::Completed {
                output_hash: "h".into(),
                output: Value::Null,
            },
        };
        let failed = Signal::NodeFinished {
            node: "a".into(),
            attempt: 2,
            outcome: Outcome::Failed {
                error: "timeout".into(),
                retryable: true,
            },
        };
        assert_eq!(done.id(), failed.id(), "an attempt finishes once");
        assert_ne!(
            done.id(),
            Signal::NodeStarted {
                node: "a".into(),
                attempt: 2
            }
            .id()
        );
        assert_eq!(approval_id("r", "n", 1), approval_id("r", "n", 1));
        assert_ne!(approval_id("r", "n", 1), approval_id("r", "n", 2));
    }

    #[test]
    fn signals_round_trip_as_json() {
        let s = Signal::Decided {
            approval_id: "apr_1".into(),
            node: "review".into(),
            attempt: 1,
            decision: Decision::Approve,
            by: "ops".into(),
            comment: Some("ok".into()),
            expired: false,
        };
        let back: Signal = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }
}
