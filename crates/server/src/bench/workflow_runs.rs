//! Diamond workflow runs on the embedded runtime.
//!
//! A diamond of four `transform` nodes (a → b, c → d) does no work of its own, so the time is
//! the runtime's: creating the run, four node emissions and completions committed to SQLite
//! (group-committed with other runs'), the in-process queue, the workers and the coordinator.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Map;
use tradeloom_flow::{compile, from_json_value};
use tradeloom_orchestrator::{Runtime, RuntimeConfig};
use tradeloom_queue::InMemoryQueue;
use tradeloom_store::{EventFilter, NewWorkflowVersion};

use super::{BenchError, setup};

/// The figures of one measurement.
pub struct WorkflowFigures {
    pub runs: usize,
    pub wall: Duration,
    /// Wall time per node run, µs.
    pub per_node_us: f64,
    /// Coordinator routing latency of completion signals, µs.
    pub route_p50_us: u64,
    pub route_p99_us: u64,
    /// Completion signals the latencies are over.
    pub signals: usize,
}

impl WorkflowFigures {
    /// Runs per second.
    pub fn rate(&self) -> f64 {
        self.runs as f64 / self.wall.as_secs_f64()
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Runs the diamond `runs` times with at most `in_flight` unfinished at once, on a runtime
/// over a SQLite store in `dir` (a fresh folder).
pub async fn diamond_runs(
    dir: &Path,
    runs: usize,
    in_flight: usize,
) -> Result<WorkflowFigures, BenchError> {
    let db = dir.join("bench.db");
    let store = tradeloom_store::open_store(&db.display().to_string()).await?;
    let def = from_json_value(&super::diamond_definition("diamond")).map_err(setup)?;
    let compiled = compile(&def).map_err(|e| BenchError::Setup(format!("{e:?}")))?;
    let v = store
        .create_workflow(&NewWorkflowVersion {
            name: def.name.clone(),
            definition: def.to_json_value().to_string(),
            ir: compiled.ir.canonical_json(),
        })
        .await?;
    let mut config = RuntimeConfig::new(dir.to_path_buf());
    config.workers_per_pool = 8;
    config.coordinators = 4;
    let runtime =
        Runtime::new(store.clone(), Arc::new(InMemoryQueue::new()), config, None).map_err(setup)?;
    runtime.start().await.map_err(setup)?;
    runtime.coordinator().record_latencies(true);
    // Runs are started while fewer than `in_flight` are unfinished, each start in its own task
    // (as concurrent API requests would: a start waits for its commit, and starts share
    // batches); finishes are counted from the event log (one reader), not by polling each run.
    let started = Instant::now();
    let mut submitted = 0usize;
    let mut finished = 0usize;
    let mut after_seq = 0i64;
    let mut starts = tokio::task::JoinSet::new();
    while finished < runs {
        while submitted < runs && submitted - finished < in_flight.max(1) {
            let runtime = runtime.clone();
            let workflow_id = v.workflow_id.clone();
            starts.spawn(async move {
                runtime
                    .start_run(&workflow_id, None, &Map::new())
                    .await
                    .map(|_| ())
            });
            submitted += 1;
        }
        while let Some(joined) = starts.try_join_next() {
            joined.map_err(BenchError::Panicked)?.map_err(setup)?;
        }
        let events = store.events(EventFilter::All, after_seq, 10_000).await?;
        for e in &events {
            after_seq = e.seq;
            if e.kind == "run_finished" {
                if e.payload["status"] != "completed" {
                    return Err(BenchError::RunEnded(e.payload.clone()));
                }
                finished += 1;
            }
        }
        if events.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if started.elapsed() > Duration::from_secs(3600) {
            return Err(BenchError::GaveUp { finished, runs });
        }
    }
    let wall = started.elapsed();
    while let Some(joined) = starts.join_next().await {
        joined.map_err(BenchError::Panicked)?.map_err(setup)?;
    }
    let mut latencies = runtime.coordinator().take_latencies();
    runtime.shutdown().await;
    latencies.sort_unstable();
    Ok(WorkflowFigures {
        runs,
        wall,
        per_node_us: wall.as_secs_f64() * 1e6 / (runs * 4) as f64,
        route_p50_us: percentile(&latencies, 50.0),
        route_p99_us: percentile(&latencies, 99.0),
        signals: latencies.len(),
    })
}
