//! `tradeloom bench workflows`: how fast the embedded runtime drives workflow runs.
//!
//! A diamond of four `transform` nodes (a → b, c → d) does no work of its own, so the time is
//! the runtime's: creating the run, four node emissions, starts and completions committed to
//! SQLite, the in-process queue, the workers and the coordinator loop.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use serde_json::{Map, json};
use tradeloom_flow::{compile, from_json_value};
use tradeloom_orchestrator::{Runtime, RuntimeConfig};
use tradeloom_queue::InMemoryQueue;
use tradeloom_store::{EventFilter, NewWorkflowVersion, open_store};

struct Figures {
    runs: usize,
    wall: Duration,
    per_node_us: f64,
    route_p50_us: u64,
    route_p99_us: u64,
    signals: usize,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

async fn measure(runs: usize, in_flight: usize) -> Result<Figures> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("bench.db");
    let store = open_store(&db.display().to_string()).await?;
    let def = from_json_value(&json!({"name": "diamond", "nodes": [
        {"id": "a", "type": "transform", "config": {"output": {"x": 1}}},
        {"id": "b", "type": "transform", "needs": ["a"], "config": {"output": {"b": "{{ a.x }}"}}},
        {"id": "c", "type": "transform", "needs": ["a"], "config": {"output": {"c": "{{ a.x }}"}}},
        {"id": "d", "type": "transform", "needs": ["b", "c"], "config": {"output": {"d": "{{ b.b }}"}}},
    ]}))
    .map_err(|e| anyhow!("{e}"))?;
    let compiled = compile(&def).map_err(|e| anyhow!("{e:?}"))?;
    let v = store
        .create_workflow(&NewWorkflowVersion {
            name: def.name.clone(),
            definition: def.to_json_value().to_string(),
            ir: compiled.ir.canonical_json(),
        })
        .await?;
    let mut config = RuntimeConfig::new(dir.path().to_path_buf());
    config.workers_per_pool = 8;
    config.coordinators = 4;
    let runtime = Runtime::new(store.clone(), Arc::new(InMemoryQueue::new()), config, None)
        .map_err(|e| anyhow!("{e}"))?;
    runtime.start().await.map_err(|e| anyhow!("{e}"))?;
    runtime.coordinator().record_latencies(true);
    // Runs are started while fewer than `in_flight` are unfinished; finishes are counted from
    // the event log (one reader), not by polling each run.
    let started = Instant::now();
    let mut submitted = 0usize;
    let mut finished = 0usize;
    let mut after_seq = 0i64;
    while finished < runs {
        while submitted < runs && submitted - finished < in_flight.max(1) {
            runtime
                .start_run(&v.workflow_id, None, &Map::new())
                .await
                .map_err(|e| anyhow!("{e}"))?;
            submitted += 1;
        }
        let events = store.events(EventFilter::All, after_seq, 10_000).await?;
        for e in &events {
            after_seq = e.seq;
            if e.kind == "run_finished" {
                if e.payload["status"] != "completed" {
                    return Err(anyhow!("a benchmark run ended {}", e.payload));
                }
                finished += 1;
            }
        }
        if events.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if started.elapsed() > Duration::from_secs(3600) {
            return Err(anyhow!(
                "gave up after an hour: {finished} of {runs} runs finished"
            ));
        }
    }
    let wall = started.elapsed();
    let mut latencies = runtime.coordinator().take_latencies();
    runtime.shutdown().await;
    latencies.sort_unstable();
    Ok(Figures {
        runs,
        wall,
        per_node_us: wall.as_secs_f64() * 1e6 / (runs * 4) as f64,
        route_p50_us: percentile(&latencies, 50.0),
        route_p99_us: percentile(&latencies, 99.0),
        signals: latencies.len(),
    })
}

pub fn workflows(sizes: &[usize], in_flight: usize, json_out: bool) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let mut all = Vec::new();
    for &runs in sizes {
        if !json_out {
            eprintln!("measuring {runs} diamond runs ({in_flight} in flight)…");
        }
        let f = rt.block_on(measure(runs, in_flight))?;
        if !json_out {
            println!(
                "diamond x{:>6}: {:>7.1} runs/s ({:.2} s), {:>6.0} µs per node, routing p50 {} µs p99 {} µs over {} completion signals",
                f.runs,
                f.runs as f64 / f.wall.as_secs_f64(),
                f.wall.as_secs_f64(),
                f.per_node_us,
                f.route_p50_us,
                f.route_p99_us,
                f.signals
            );
        }
        all.push(f);
    }
    if json_out {
        let out: Vec<_> = all
            .iter()
            .map(|f| {
                json!({
                    "runs": f.runs, "seconds": f.wall.as_secs_f64(),
                    "runs_per_s": f.runs as f64 / f.wall.as_secs_f64(),
                    "per_node_us": f.per_node_us,
                    "routing_p50_us": f.route_p50_us, "routing_p99_us": f.route_p99_us,
                    "signals": f.signals,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(out));
    }
    Ok(ExitCode::SUCCESS)
}
