//! safety: operator controls that stop trading — the kill switch, with global, per-run and
//! per-job scopes kept as files under `<data_dir>/killswitch/`, so its state survives restarts
//! and is shared by every process using the same data dir.
//!
//! It depends on nothing of tradeloom and on no store, server or HTTP crate: the engine path
//! (through a gate the runner passes in), the CLI, and later the API, agents and workflows all
//! read and write the same files. [`ProcessOwner`] (who runs a run or a job, and whether that
//! process still lives) is shared the same way.

pub mod kill_switch;
pub mod owner;

pub use kill_switch::{
    DEFAULT_REFRESH, Engagement, KillSwitch, KillSwitchError, Scope, ScopeState, Status,
};
pub use owner::{Liveness, ProcessOwner};
