//! `tradeloom bench workflows`: diamond workflow runs (four `transform` nodes, a → b, c → d)
//! submitted in a burst over the real HTTP API to a `tradeloom serve` on loopback (this binary,
//! or `--server-binary`), with the server's CPU time per run; Temporal's dev server beside it on
//! the same burst when the peers' venv has it; and the embedded runtime alone
//! ([`tradeloom_server::bench::diamond_runs`]).

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use tradeloom_runs::bench::peer;
use tradeloom_server::bench::{DiamondApi, diamond_runs, percentile};

use super::procs::{Setup, start_servers, stop_servers};

/// The harness of the Temporal peer (written to a scratch folder when it runs).
const TEMPORAL_DIAMOND: &str = include_str!("../../../../bench/peers/temporal_diamond.py");

/// The flags of `tradeloom bench workflows`.
#[derive(clap::Args)]
pub struct Args {
    /// Runs per burst over the API (repeat the flag for several sizes).
    #[arg(long = "runs", default_values_t = [2_000usize])]
    pub runs: Vec<usize>,
    /// Concurrent client connections submitting a burst.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Runs submitted one at a time (each waits for the previous) for the "alone" latency.
    #[arg(long, default_value_t = 20)]
    pub alone: usize,
    /// The `tradeloom` binary to serve the API with (default: this one), e.g. an older build to
    /// compare against.
    #[arg(long)]
    pub server_binary: Option<PathBuf>,
    /// Runs on the embedded runtime, no HTTP (repeatable; 0 skips it).
    #[arg(long = "embedded-runs", default_values_t = [2_000usize])]
    pub embedded_runs: Vec<usize>,
    /// Embedded runtime: runs submitted at once (the rest wait their turn).
    #[arg(long, default_value_t = 256)]
    pub in_flight: usize,
    /// Skip the Temporal peer.
    #[arg(long)]
    pub no_peer: bool,
    /// Also run each burst on a cluster of processes — `serve --roles api`, one `coordinator`
    /// and this many `worker`s on PostgreSQL and Redis (repeatable: `--cluster-workers 1
    /// --cluster-workers 2 --cluster-workers 4`) — beside `serve` alone on the same PostgreSQL.
    /// Needs --postgres-url and --redis-url.
    #[arg(long = "cluster-workers")]
    pub cluster_workers: Vec<usize>,
    /// A PostgreSQL server for the cluster figures (a scratch database is created per cluster).
    #[arg(long, env = "TRADELOOM_BENCH_POSTGRES_URL")]
    pub postgres_url: Option<String>,
    /// A Redis for the cluster figures (a fresh key prefix per cluster, deleted afterwards).
    #[arg(long, env = "TRADELOOM_BENCH_REDIS_URL")]
    pub redis_url: Option<String>,
    #[arg(long)]
    pub json: bool,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The API figures of one burst size.
fn api_burst(binary: &PathBuf, runs: usize, args: &Args) -> Result<Value> {
    api_burst_on(binary, runs, args, Setup::Embedded)
}

/// The API figures of one burst size on `setup`; CPU time is that of every process serving it.
fn api_burst_on(binary: &PathBuf, runs: usize, args: &Args, setup: Setup) -> Result<Value> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let serve = start_servers(
        binary,
        setup,
        args.postgres_url.as_deref(),
        args.redis_url.as_deref(),
        &[],
        &rt,
    )?;
    let figures = rt.block_on(async {
        let api = DiamondApi::create(&serve.api.url, "bench-diamond").await?;
        // The first run warms the server's caches; it is not counted.
        // (`alone` sorts its figures, so the warm-up run is a call of its own.)
        api.alone(1).await?;
        let alone = api.alone(args.alone).await?;
        let cpu0 = serve.cpu_seconds()?;
        let burst = api.burst(runs, args.connections).await?;
        let cpu = serve.cpu_seconds()? - cpu0;
        Ok(json!({
            "runs": burst.runs,
            "connections": args.connections,
            "seconds": burst.wall.as_secs_f64(),
            "runs_per_s": burst.rate(),
            "submit_seconds": burst.submit_wall.as_secs_f64(),
            "server_cpu_ms_per_run": cpu * 1e3 / burst.runs.max(1) as f64,
            "p50_ms": ms(burst.p(50.0)),
            "p99_ms": ms(burst.p(99.0)),
            "alone_runs": alone.len(),
            "alone_p50_ms": ms(percentile(&alone, 50.0)),
            "alone_p99_ms": ms(percentile(&alone, 99.0)),
        }))
    });
    stop_servers(serve, &rt);
    figures
}

/// Prints one line of API figures.
fn print_api(label: &str, f: &Value) {
    println!(
        "{label:<14}x{:>5}: {:>7.1} runs/s ({:.2} s; submitted in {:.2} s), {:.2} CPU-ms per run in the server processes; submit → finished p50 {:.1} ms p99 {:.1} ms; alone p50 {:.2} ms p99 {:.2} ms",
        f["runs"].as_u64().unwrap_or(0),
        f["runs_per_s"].as_f64().unwrap_or(0.0),
        f["seconds"].as_f64().unwrap_or(0.0),
        f["submit_seconds"].as_f64().unwrap_or(0.0),
        f["server_cpu_ms_per_run"].as_f64().unwrap_or(0.0),
        f["p50_ms"].as_f64().unwrap_or(0.0),
        f["p99_ms"].as_f64().unwrap_or(0.0),
        f["alone_p50_ms"].as_f64().unwrap_or(0.0),
        f["alone_p99_ms"].as_f64().unwrap_or(0.0),
    );
}

/// The Temporal peer's figures for a burst of `runs`, or why there are none.
fn temporal(runs: usize, args: &Args) -> Result<Value, String> {
    let python = peer::peer_python()?;
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let script = peer::write_script(scratch.path(), "temporal_diamond.py", TEMPORAL_DIAMOND)
        .map_err(|e| e.to_string())?;
    let out = Command::new(&python)
        .arg(&script)
        .args(["--runs", &runs.to_string()])
        .args(["--connections", &args.connections.to_string()])
        .args(["--alone", &args.alone.min(10).to_string()])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(line) = text.lines().rev().find(|l| l.starts_with('{')) else {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(format!("the harness failed ({}): {last}", out.status));
    };
    let v: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    match v["error"].as_str() {
        Some(e) => Err(e.to_string()),
        None => Ok(v),
    }
}

/// `tradeloom bench workflows`.
pub fn run(args: &Args) -> Result<ExitCode> {
    // The HTTP client of the API burst needs TLS set up even for plain http.
    tradeloom_llm::install_crypto_provider();
    let binary = match &args.server_binary {
        Some(b) => b.clone(),
        None => std::env::current_exe().context("the path of this binary")?,
    };
    let mut bursts = Vec::new();
    for &runs in args.runs.iter().filter(|&&n| n > 0) {
        if !args.json {
            eprintln!(
                "API: {runs} diamond runs over {} connections to {} serve…",
                args.connections,
                binary.display()
            );
        }
        let ours = api_burst(&binary, runs, args)?;
        if !args.json {
            println!(
                "tradeloom API  x{:>5}: {:>7.1} runs/s ({:.2} s; submitted in {:.2} s), {:.2} CPU-ms per run in the server; submit → finished p50 {:.1} ms p99 {:.1} ms; alone p50 {:.2} ms p99 {:.2} ms",
                ours["runs"].as_u64().unwrap_or(0),
                ours["runs_per_s"].as_f64().unwrap_or(0.0),
                ours["seconds"].as_f64().unwrap_or(0.0),
                ours["submit_seconds"].as_f64().unwrap_or(0.0),
                ours["server_cpu_ms_per_run"].as_f64().unwrap_or(0.0),
                ours["p50_ms"].as_f64().unwrap_or(0.0),
                ours["p99_ms"].as_f64().unwrap_or(0.0),
                ours["alone_p50_ms"].as_f64().unwrap_or(0.0),
                ours["alone_p99_ms"].as_f64().unwrap_or(0.0),
            );
        }
        let peer = if args.no_peer {
            Err("skipped (--no-peer)".to_string())
        } else {
            if !args.json {
                eprintln!("Temporal: the same burst to `temporal server start-dev`…");
            }
            temporal(runs, args)
        };
        let peer_json = match &peer {
            Ok(t) => {
                let ratio = ours["runs_per_s"].as_f64().unwrap_or(0.0)
                    / t["runs_per_s"].as_f64().unwrap_or(f64::NAN);
                if !args.json {
                    println!(
                        "Temporal      x{:>5}: {:>7.1} runs/s ({:.2} s), {:.2} CPU-ms per run in the server (+{:.2} in its Python worker and client); p50 {:.1} ms p99 {:.1} ms; alone p50 {:.2} ms  [{}]",
                        t["runs"].as_u64().unwrap_or(0),
                        t["runs_per_s"].as_f64().unwrap_or(0.0),
                        t["seconds"].as_f64().unwrap_or(0.0),
                        t["server_cpu_ms_per_run"].as_f64().unwrap_or(0.0),
                        t["worker_client_cpu_ms_per_run"].as_f64().unwrap_or(0.0),
                        t["p50_ms"].as_f64().unwrap_or(0.0),
                        t["p99_ms"].as_f64().unwrap_or(0.0),
                        t["alone_p50_ms"].as_f64().unwrap_or(0.0),
                        t["version"].as_str().unwrap_or("?"),
                    );
                    println!("tradeloom / Temporal: {ratio:.1}× the runs/s");
                }
                json!({"figures": t, "ratio_runs_per_s": ratio})
            }
            Err(reason) => {
                if !args.json {
                    println!("Temporal: not available here ({reason})");
                }
                json!({"not_available": reason})
            }
        };
        let mut cluster = Vec::new();
        if !args.cluster_workers.is_empty() {
            let mut setups = vec![("serve PG", Setup::ServePostgres)];
            for &w in &args.cluster_workers {
                setups.push(("cluster", Setup::Cluster(w.max(1))));
            }
            for (label, setup) in setups {
                if !args.json {
                    eprintln!("{setup:?}: {runs} diamond runs…");
                }
                let f = api_burst_on(&binary, runs, args, setup)?;
                let workers = match setup {
                    Setup::Cluster(w) => w,
                    _ => 0,
                };
                if !args.json {
                    let label = match setup {
                        Setup::Cluster(w) => format!("{label} 1c+{w}w"),
                        _ => label.to_string(),
                    };
                    print_api(&label, &f);
                }
                cluster.push(json!({"setup": label, "workers": workers, "figures": f}));
            }
        }
        bursts.push(json!({"tradeloom": ours, "temporal": peer_json, "cluster": cluster}));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let mut embedded = Vec::new();
    for &runs in args.embedded_runs.iter().filter(|&&n| n > 0) {
        if !args.json {
            eprintln!(
                "embedded: {runs} diamond runs ({} in flight), no HTTP…",
                args.in_flight
            );
        }
        let dir = tempfile::tempdir()?;
        let cpu0 = peer::self_cpu_seconds();
        let f = rt.block_on(diamond_runs(dir.path(), runs, args.in_flight))?;
        let cpu_ms = (peer::self_cpu_seconds() - cpu0) * 1e3 / runs as f64;
        if !args.json {
            println!(
                "embedded      x{:>5}: {:>7.1} runs/s ({:.2} s), {:.2} CPU-ms per run, {:>5.0} µs per node, routing p50 {} µs p99 {} µs over {} completion signals",
                f.runs,
                f.rate(),
                f.wall.as_secs_f64(),
                cpu_ms,
                f.per_node_us,
                f.route_p50_us,
                f.route_p99_us,
                f.signals
            );
        }
        embedded.push(json!({
            "runs": f.runs, "seconds": f.wall.as_secs_f64(),
            "runs_per_s": f.rate(),
            "cpu_ms_per_run": cpu_ms,
            "per_node_us": f.per_node_us,
            "routing_p50_us": f.route_p50_us, "routing_p99_us": f.route_p99_us,
            "signals": f.signals,
        }));
    }
    if args.json {
        println!(
            "{}",
            json!({"server_binary": binary.display().to_string(), "api": bursts, "embedded": embedded})
        );
    }
    Ok(ExitCode::SUCCESS)
}
