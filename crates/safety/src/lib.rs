//! safety: operator controls that stop trading — the kill switch, with global, per-run and
//! per-job scopes kept as files under `<data_dir>/killswitch/`, so its state survives restarts
//! and is shared by every process using the same data dir.
//!
//! It depends only on `tradeloom-core` (for the data folder's layout), on no store, server or
//! HTTP crate: the engine path (through a gate the runner passes in), the CLI, and later the
//! API, agents and workflows all read and write the same files. [`ProcessOwner`] (who runs a run
//! or a job, and whether that process still lives) is shared the same way. [`write_atomic`] is
//! the one crash-safe file write of the crates above it (runs, ops, agents).

pub mod atomic_file;
pub mod kill_switch;
pub mod owner;

pub use atomic_file::{Durability, WriteError, write_atomic};
pub use kill_switch::{
    Engagement, KillSwitch, KillSwitchError, REVALIDATE_EVERY, Scope, ScopeState, Status, Watch,
};
pub use owner::{Liveness, ProcessOwner};
