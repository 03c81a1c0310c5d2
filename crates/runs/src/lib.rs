//! runs: what a run is on disk — the run spec, the run folder with its append-only journal,
//! metadata with the sha256 of every input and artifact, metrics, CSV artifacts, the equity curve
//! (Parquet) and the report —
//! and the runner that turns a spec into a finished (or failed) run folder.
//!
//! The engine below it stays pure; this crate owns files and the wall clock (which appears only
//! in `metadata.json`, never in the journal or the metrics, so those are byte-identical for the
//! same spec and data).

pub mod artifacts;
pub mod bench;
pub mod chart;
mod connectivity;
pub mod equity;
pub mod error;
pub mod folder;
pub mod hashing;
pub mod interruption;
pub mod journal;
pub mod kill_switch;
pub mod live;
pub mod metadata;
pub mod paper;
pub mod report;
pub mod runner;
pub mod running;
pub mod script;
pub mod spec;
pub mod sweep;
pub mod tables;
pub mod text;
pub mod user_strategy;
pub mod verify;

pub use error::RunError;
pub use folder::{RunFolder, find_run, list_runs};
pub use interruption::{InterruptedRun, mark_interrupted_runs};
pub use metadata::{Metadata, RunStatus};
pub use runner::{
    ExecuteError, Progress, RunOptions, RunOutcome, SpecSource, execute, rerender_report,
};
pub use spec::{RunSpec, StrategySpec, load_spec, load_spec_with};
/// The equity point paper observers receive, for crates above that do not depend on the engine.
pub use tradeloom_engine::EquityPoint;
pub use user_strategy::{UserStrategies, run_with_strategies};
pub use verify::{VerifyReport, verify_run};
