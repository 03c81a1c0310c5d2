//! orchestrator: runs workflow runs. A stateless [coordinator](coordinator) turns signals (run
//! started, node completed or failed, approval decided, timer fired, patch accepted) into store
//! transitions and emits ready nodes as tasks on per-node-type [queues](tradeloom_queue);
//! workers execute nodes and post completion signals. Everything a run needs to go on after a
//! crash is in the store: start the runtime again and it re-emits what was in flight.

pub mod agent_refs;
pub mod approval_link;
pub mod approval_notify;
mod committer;
pub mod coordinator;
pub mod desk;
pub mod engine_runs;
mod error;
pub mod nodes;
mod paper_events;
pub mod patch;
pub mod plan;
pub mod runtime;
pub mod schedule;
pub mod secret_env;
pub mod signal;
pub mod skill_tool;
pub mod sweep_points;
pub mod worker;

pub use coordinator::{Applied, Coordinator, Snapshot};
pub use engine_runs::{EngineMode, EngineRuns, StartError, StartedEngineRun, StopOutcome};
pub use error::OrchestratorError;
pub use patch::PatchOutcome;
pub use runtime::{
    DrainReport, LoopRoles, NodeView, RunView, Runtime, RuntimeConfig, StartOptions,
};
pub use signal::{Outcome, Signal};
