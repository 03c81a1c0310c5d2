//! Workloads of `tradeloom bench simulate`, `tradeloom bench api` and `tradeloom bench
//! workflows`: a whole simulation job timed on a store, HTTP load (wrk or a built-in client)
//! against API servers, and diamond workflow runs on the embedded runtime `serve` runs. They
//! measure and report; deciding what is good is the caller's.

mod results_load;
mod simulate_report;
mod simulation_job;
mod workflow_api;
mod workflow_runs;

pub use results_load::{Budget, Generator, HttpFigures, load, results_load};
pub use simulate_report::SimulateReport;
pub use simulation_job::{JobFigures, timed_job};
pub use workflow_api::{BurstFigures, DiamondApi, diamond_definition, percentile};
pub use workflow_runs::{WorkflowFigures, diamond_runs};

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("open {location}")]
    Open {
        location: String,
        #[source]
        source: tradeloom_store::StoreError,
    },
    #[error(transparent)]
    Store(#[from] tradeloom_store::StoreError),
    #[error(transparent)]
    Agent(#[from] tradeloom_agents::AgentError),
    /// The message of the refused setting (the SSRF allow-list, the workflow, the runtime).
    #[error("{0}")]
    Setup(String),
    #[error("a benchmark run ended {0}")]
    RunEnded(serde_json::Value),
    #[error("gave up after an hour: {finished} of {runs} runs finished")]
    GaveUp { finished: usize, runs: usize },
    #[error("a benchmark client task panicked")]
    Panicked(#[source] tokio::task::JoinError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn setup<E: std::fmt::Display>(e: E) -> BenchError {
    BenchError::Setup(e.to_string())
}
