//! Simulation jobs: the worker that runs every model-day of a job, dates in order and models in
//! parallel, and the trigger that makes re-running a config idempotent.
//!
//! Crash safety comes from the store: a model-day is claimed, run, and completed in one
//! transaction with every row it produced. A process killed mid-day leaves that day `running`;
//! [`Simulator::resume_interrupted`] (called when the server starts) puts it back to `pending`
//! and carries on, so no completed model-day is lost and none is written twice.

mod control;
mod job;
mod market;
mod model_day;
mod simulator;
mod warnings;

pub use control::resume_to_end;
pub use simulator::{SimEvent, Simulator, SimulatorOptions, TriggerOutcome, run_to_end};
pub use warnings::{job_run_dir, job_warnings, tool_use_warnings};
