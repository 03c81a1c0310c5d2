//! `tradeloom bench api`: reads of the REST API beside FastAPI. A finished simulation job
//! (mock-llm at zero latency, through the real simulator and store) is written to a scratch data
//! dir; `tradeloom serve` (this binary, or `--server-binary`) and a FastAPI + uvicorn app
//! reading the same SQLite file (`bench/peers/fastapi_results.py`, one worker) are started as
//! child processes on loopback, both behind an API key; the same load generator (wrk when on
//! PATH, else a built-in client) drives `GET /results?detail=minimal` and
//! `GET /simulate/status/{id}` on each, and the servers' CPU time per request is read from
//! /proc.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tradeloom_data::news::{synth_news, write_news};
use tradeloom_data::universe::{UniverseSpec, synth_universe, write_universe};
use tradeloom_runs::bench::peer;
use tradeloom_server::bench::{Budget, Generator, HttpFigures, load, timed_job};
use tradeloom_store::{NewApiKey, Role};

use crate::store::runtime;

/// The FastAPI peer (our own harness code), written to a scratch folder at bench time.
const FASTAPI_PEER: &str = include_str!("../../../../bench/peers/fastapi_results.py");

/// The flags of `tradeloom bench api`.
#[derive(clap::Args)]
pub struct Args {
    /// Requests per endpoint and server (built-in load generator; wrk has no request count).
    #[arg(long, conflicts_with = "duration")]
    pub requests: Option<usize>,
    /// Seconds of load per endpoint and server (default 10).
    #[arg(long)]
    pub duration: Option<u64>,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// The `tradeloom` binary to serve with (default: this one), e.g. an older build.
    #[arg(long)]
    pub server_binary: Option<PathBuf>,
    /// Models of the simulation job read back.
    #[arg(long, default_value_t = 10)]
    pub models: usize,
    /// Days of the simulation job read back.
    #[arg(long, default_value_t = 250)]
    pub days: usize,
    #[arg(long, default_value_t = 8)]
    pub symbols: usize,
    /// Pin each server to CPU 1 and wrk to CPU 0 (`taskset`, one wrk thread), so the load
    /// generator does not compete with the server for a core (other processes still may).
    #[arg(long)]
    pub pin: bool,
    #[arg(long)]
    pub json: bool,
}

/// The CPUs of `--pin`: the servers', the load generator's.
const PIN_SERVER: &str = "1";
const PIN_GENERATOR: &str = "0";

/// `program` as a command, under `taskset -c cpus` when given (taskset execs it: same pid).
fn pinned(program: &Path, cpus: Option<&str>) -> Command {
    match cpus {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpus]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// A child process killed when dropped.
struct Server {
    name: &'static str,
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One endpoint on one server.
struct Measured {
    figures: HttpFigures,
    /// Server CPU milliseconds per request.
    server_cpu_ms: Option<f64>,
    /// Load generator CPU milliseconds per request.
    generator_cpu_ms: f64,
}

fn policy(i: usize) -> String {
    match ["momentum", "mean_reversion", "buy_and_hold"].get(i) {
        Some(p) => p.to_string(),
        None => format!("random-{i}"),
    }
}

/// Writes a finished job to `data/tradeloom.db`; its id and a viewer key's secret.
async fn prepare(args: &Args, work: &Path, data: &Path) -> Result<(String, String)> {
    let universe = synth_universe(&UniverseSpec {
        symbols: args.symbols,
        days: args.days,
        seed: 42,
        start: UniverseSpec::DEFAULT_START,
    })?;
    let udir = work.join("universe");
    write_universe(&universe, &udir)?;
    write_news(&udir.join("news.jsonl"), &synth_news(&universe, 42))?;
    let (first, last) = (
        universe.first_date().context("empty universe")?,
        universe.last_date().context("empty universe")?,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let mock = format!("http://{}/v1", listener.local_addr()?);
    let mock_task = tokio::spawn(tradeloom_mock_llm::serve_mock(listener));
    let models: Vec<_> = (0..args.models)
        .map(|i| json!({"name": format!("m{:02}", i + 1), "base_url": mock, "model": policy(i), "max_retries": 0}))
        .collect();
    let config = json!({
        "models": models, "universe": {"path": udir}, "start_date": first.to_string(),
        "end_date": last.to_string(), "max_steps": 12,
    });
    let db = data.join("tradeloom.db");
    let (figures, sim) = timed_job(
        "sqlite",
        &db.display().to_string(),
        work,
        &config,
        tradeloom_runs::bench::peer::self_cpu_seconds,
    )
    .await?;
    mock_task.abort();
    if figures.failed > 0 {
        bail!("{} model-days of the bench job failed", figures.failed);
    }
    let store = sim.store();
    let job = store
        .list_jobs(1, 0)
        .await?
        .into_iter()
        .next()
        .context("the bench job is missing")?;
    let (new, secret) = NewApiKey::generate("bench-api", Role::Viewer)?;
    store.create_api_key(&new).await?;
    Ok((job.id, secret))
}

/// `tradeloom serve` on `data`, auth required, no rate limits, logs at warn.
fn start_tradeloom(binary: &Path, data: &Path, cpus: Option<&str>) -> Result<Server> {
    let mut child = pinned(binary, cpus)
        .arg("--data-dir")
        .arg(data)
        .args(["--log-level", "warn", "serve", "--addr", "127.0.0.1:0"])
        .args(["--auth", "required", "--rate-limit-global", "0"])
        .args(["--rate-limit-per-key", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let mut line = String::new();
    let stdout = child.stdout.take().context("no stdout of serve")?;
    BufReader::new(stdout).read_line(&mut line)?;
    let Some(at) = line.find("http://") else {
        let _ = child.kill();
        bail!("{} serve printed no address: {line:?}", binary.display());
    };
    let base = line[at..]
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    Ok(Server {
        name: "tradeloom",
        child,
        base,
    })
}

/// The FastAPI peer on `db`, or why it cannot run.
fn start_fastapi(scratch: &Path, db: &Path, cpus: Option<&str>) -> Result<Server, String> {
    let python = peer::peer_python()?;
    let script = peer::write_script(scratch, "fastapi_results.py", FASTAPI_PEER)
        .map_err(|e| format!("not installed (cannot write the peer script: {e})"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let child = pinned(&python, cpus)
        .arg(&script)
        .arg("--db")
        .arg(db)
        .args(["--port", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("not installed (cannot run {}: {e})", python.display()))?;
    Ok(Server {
        name: "fastapi",
        child,
        base: format!("http://127.0.0.1:{port}"),
    })
}

/// Waits until `url` answers 200 (60 s at most); the body.
async fn ready(server: &mut Server, url: &str, key: &str) -> Result<Vec<u8>> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            let mut why = String::new();
            if let Some(err) = server.child.stderr.as_mut() {
                use std::io::Read;
                let _ = err.read_to_string(&mut why);
            }
            bail!("{} exited ({status}): {}", server.name, why.trim());
        }
        if let Ok(r) = client.get(url).bearer_auth(key).send().await
            && r.status().is_success()
        {
            return Ok(r.bytes().await?.to_vec());
        }
        if Instant::now() > deadline {
            bail!("{} did not answer {url} within 60 s", server.name);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn measure(
    generator: &Generator,
    server: &Server,
    url: &str,
    key: &str,
    connections: usize,
    budget: Budget,
) -> Result<Measured> {
    let pid = server.child.id();
    let (self0, children0) = (peer::self_cpu_seconds(), peer::children_cpu_seconds());
    let server0 = peer::process_cpu_seconds(pid).ok();
    let figures = load(generator, url, Some(key), connections, budget).await?;
    let server1 = peer::process_cpu_seconds(pid).ok();
    let generator_cpu = match generator {
        Generator::Wrk { .. } => peer::children_cpu_seconds() - children0,
        Generator::BuiltIn => peer::self_cpu_seconds() - self0,
    };
    let per = |seconds: f64| seconds * 1e3 / figures.requests.max(1) as f64;
    Ok(Measured {
        server_cpu_ms: server0.zip(server1).map(|(a, b)| per(b - a)),
        generator_cpu_ms: per(generator_cpu),
        figures,
    })
}

fn measured_json(m: &Result<Measured, String>) -> Value {
    match m {
        Ok(m) => json!({
            "requests": m.figures.requests, "errors": m.figures.errors,
            "seconds": m.figures.seconds, "requests_per_second": m.figures.rate(),
            "p50_ms": m.figures.p50.as_secs_f64() * 1e3, "p99_ms": m.figures.p99.as_secs_f64() * 1e3,
            "max_ms": m.figures.max.as_secs_f64() * 1e3,
            "server_cpu_ms_per_request": m.server_cpu_ms,
            "load_generator_cpu_ms_per_request": m.generator_cpu_ms,
        }),
        Err(why) => json!({"skipped": why}),
    }
}

fn measured_line(name: &str, m: &Result<Measured, String>) -> String {
    match m {
        Ok(m) => format!(
            "  {name:<10} {:>9.0} req/s  p50 {:>8.2} ms  p99 {:>8.2} ms  server {} CPU-ms/req  \
             (load generator {:.3} CPU-ms/req; {} requests, {} errors)\n",
            m.figures.rate(),
            m.figures.p50.as_secs_f64() * 1e3,
            m.figures.p99.as_secs_f64() * 1e3,
            m.server_cpu_ms
                .map_or("?".to_string(), |c| format!("{c:.3}")),
            m.generator_cpu_ms,
            m.figures.requests,
            m.figures.errors
        ),
        Err(why) => format!("  {name:<10} {why}\n"),
    }
}

/// `tradeloom bench api`.
pub fn run(args: &Args) -> Result<ExitCode> {
    if args.models == 0 || args.days == 0 || args.symbols == 0 || args.connections == 0 {
        bail!("--models, --days, --symbols and --connections must be at least 1");
    }
    let budget = match (args.requests, args.duration) {
        (Some(0), _) | (_, Some(0)) => bail!("--requests and --duration must be at least 1"),
        (Some(n), _) => Budget::Requests(n),
        (None, d) => Budget::Duration(Duration::from_secs(d.unwrap_or(10))),
    };
    let binary = match &args.server_binary {
        Some(path) => path.clone(),
        None => std::env::current_exe().context("cannot find this binary")?,
    };
    if !binary.is_file() {
        bail!("--server-binary {}: no such file", binary.display());
    }
    tradeloom_llm::install_crypto_provider();
    let work = tempfile::TempDir::new().context("cannot create a temporary folder")?;
    let data = work.path().join("data");
    std::fs::create_dir_all(&data)?;
    let server_cpus = args.pin.then_some(PIN_SERVER);
    if args.pin && std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        bail!("--pin needs two CPUs");
    }
    let generator = Generator::pick(budget, args.pin.then_some(PIN_GENERATOR));
    runtime()?.block_on(async {
        if !args.json {
            eprintln!(
                "writing a finished job of {} models × {} days ({} symbols) with mock-llm …",
                args.models, args.days, args.symbols
            );
        }
        let (job_id, key) = prepare(args, work.path(), &data).await?;
        let db = data.join("tradeloom.db");
        let mut tradeloom = start_tradeloom(&binary, &data, server_cpus)?;
        let mut fastapi = start_fastapi(work.path(), &db, server_cpus);
        let endpoints = [
            (
                "GET /results?detail=minimal",
                "/results?detail=minimal".to_string(),
            ),
            (
                "GET /simulate/status/{id}",
                format!("/simulate/status/{job_id}"),
            ),
        ];
        let mut report = Vec::new();
        let mut text = format!(
            "bench api: a finished job of {} models × {} days ({} model-days), {} connections, \
             load generator {}, {}\n",
            args.models,
            args.days,
            args.models * args.days,
            args.connections,
            generator.describe(),
            match budget {
                Budget::Requests(n) => format!("{n} requests per endpoint and server"),
                Budget::Duration(d) => format!("{} s per endpoint and server", d.as_secs()),
            }
        );
        text.push_str(&format!(
            "tradeloom: {} serve, auth required (one viewer key), rate limits off\n\
             fastapi: FastAPI + uvicorn, 1 worker, same SQLite file, same key check\n",
            binary.display()
        ));
        if let Some(cpus) = server_cpus {
            text.push_str(&format!(
                "pinned: each server on CPU {cpus}, the load generator on CPU {PIN_GENERATOR} (taskset)\n"
            ));
        }
        let mut errors = 0;
        for (label, path) in &endpoints {
            let ours_url = format!("{}{path}", tradeloom.base);
            let ours_body = ready(&mut tradeloom, &ours_url, &key).await?;
            let peer_body = match &mut fastapi {
                Ok(server) => {
                    let url = format!("{}{path}", server.base);
                    match ready(server, &url, &key).await {
                        Ok(body) => Some(body),
                        Err(e) => {
                            fastapi = Err(format!("not running ({e:#})"));
                            None
                        }
                    }
                }
                Err(_) => None,
            };
            if !args.json {
                eprintln!("{label}: tradeloom …");
            }
            let ours = measure(
                &generator,
                &tradeloom,
                &ours_url,
                &key,
                args.connections,
                budget,
            )
            .await
            .map_err(|e| format!("failed: {e:#}"));
            let theirs = match &fastapi {
                Ok(server) => {
                    if !args.json {
                        eprintln!("{label}: fastapi …");
                    }
                    let url = format!("{}{path}", server.base);
                    measure(&generator, server, &url, &key, args.connections, budget)
                        .await
                        .map_err(|e| format!("failed: {e:#}"))
                }
                Err(why) => Err(why.clone()),
            };
            for m in [&ours, &theirs].into_iter().flatten() {
                errors += m.figures.errors;
            }
            let same = peer_body.as_ref().map(|b| *b == ours_body);
            let ratio = match (&ours, &theirs) {
                (Ok(a), Ok(b)) => Some(a.figures.rate() / b.figures.rate().max(1e-9)),
                _ => None,
            };
            let cpu_ratio = match (&ours, &theirs) {
                (Ok(a), Ok(b)) => a
                    .server_cpu_ms
                    .zip(b.server_cpu_ms)
                    .map(|(x, y)| x / y.max(1e-9)),
                _ => None,
            };
            text.push_str(&format!("{label} ({} bytes)\n", ours_body.len()));
            text.push_str(&measured_line("tradeloom", &ours));
            text.push_str(&measured_line("fastapi", &theirs));
            if let Some(r) = ratio {
                text.push_str(&format!(
                    "  tradeloom/fastapi: {r:.1}× req/s{}\n",
                    cpu_ratio.map_or(String::new(), |c| format!(", {c:.3}× CPU per request"))
                ));
            }
            match same {
                Some(true) => text.push_str("  same body from both: yes\n"),
                Some(false) => text.push_str("  same body from both: NO\n"),
                None => {}
            }
            report.push(json!({
                "endpoint": label, "body_bytes": ours_body.len(),
                "tradeloom": measured_json(&ours), "fastapi": measured_json(&theirs),
                "ratio_requests_per_second": ratio, "ratio_cpu_per_request": cpu_ratio,
                "same_body": same,
            }));
        }
        drop(tradeloom);
        drop(fastapi);
        if args.json {
            println!(
                "{}",
                json!({
                    "models": args.models, "days": args.days, "connections": args.connections,
                    "load_generator": generator.describe(),
                    "server_binary": binary.display().to_string(),
                    "fastapi_workers": 1, "endpoints": report,
                    "server_cpus": server_cpus, "generator_cpus": args.pin.then_some(PIN_GENERATOR),
                })
            );
        } else {
            print!("{text}");
        }
        Ok(if errors > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    })
}
