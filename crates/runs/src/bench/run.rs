//! `tradeloom bench run`: whole processes timed alike — `tradeloom run` on a bench spec (from CSV
//! and from Parquet), and the peers a user would pick instead (backtesting.py, NautilusTrader,
//! vectorbt) running the same strategy on the same CSV through our harness scripts in
//! `bench/peers/`. Each child is timed from spawn to exit: wall seconds, CPU seconds (user +
//! system, from the children's rusage) and peak RSS (from `wait4`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::Serialize;

use super::peer::{children_cpu_seconds, write_script};
use super::{BenchError, FAST, SLOW, median};

/// The bench spec's starting cash (see [`super::write_bench_spec`]); the peers start with the same.
pub const CASH: u64 = 1_000_000;

/// The largest size the peers are run on by default: NautilusTrader takes ~25 s for 200k bars.
pub const PEER_MAX_BARS: u64 = 200_000;

/// A peer of `tradeloom run`: a harness script run by the peers' Python.
#[derive(Clone, Copy, Debug)]
pub struct RunPeer {
    /// How the table names it.
    pub name: &'static str,
    /// The script's file name in `bench/peers/`.
    pub script: &'static str,
    /// The script (embedded).
    pub body: &'static str,
}

/// backtesting.py, NautilusTrader and vectorbt, each running `sma_cross` [`FAST`]/[`SLOW`] on a
/// bar CSV (`python SCRIPT BARS.csv FAST SLOW CASH`, one JSON line `{trades, final_equity}` out).
pub const RUN_PEERS: [RunPeer; 3] = [
    RunPeer {
        name: "backtesting.py",
        script: "backtesting_run.py",
        body: include_str!("../../../../bench/peers/backtesting_run.py"),
    },
    RunPeer {
        name: "NautilusTrader",
        script: "nautilus_run.py",
        body: include_str!("../../../../bench/peers/nautilus_run.py"),
    },
    RunPeer {
        name: "vectorbt",
        script: "vectorbt_run.py",
        body: include_str!("../../../../bench/peers/vectorbt_run.py"),
    },
];

/// A child process timed from spawn to exit.
#[derive(Clone, Debug, Serialize)]
pub struct ChildTiming {
    pub wall_seconds: f64,
    /// User + system CPU seconds of the child (all its threads).
    pub cpu_seconds: f64,
    /// The child's peak resident set size, from `wait4`.
    pub peak_rss_bytes: Option<u64>,
    /// The last line the child printed that parses as JSON.
    #[serde(skip)]
    pub result: serde_json::Value,
}

/// Runs `command` to completion with stdout and stderr in files under `scratch` (`label.out`,
/// `label.err`), and times it. A failed child is an error quoting the end of its stderr.
pub fn time_child(
    command: &mut Command,
    scratch: &Path,
    label: &str,
) -> Result<ChildTiming, BenchError> {
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| BenchError::Io {
            action,
            path,
            source,
        }
    };
    let out_path = scratch.join(format!("{label}.out"));
    let err_path = scratch.join(format!("{label}.err"));
    let out = File::create(&out_path).map_err(io("creating", &out_path))?;
    let err = File::create(&err_path).map_err(io("creating", &err_path))?;
    let cpu_before = children_cpu_seconds();
    let started = Instant::now();
    let child = command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| BenchError::Setup(format!("cannot start {label}: {e}")))?;
    let (status, max_rss_kb) = wait_with_rusage(child.id())
        .map_err(|e| BenchError::Setup(format!("waiting for {label}: {e}")))?;
    let wall_seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = children_cpu_seconds() - cpu_before;
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    if !status.success() {
        let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
        let tail: Vec<&str> = stderr.lines().rev().take(8).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let said = if tail.is_empty() {
            stdout.lines().last().unwrap_or("").to_string()
        } else {
            tail.join("\n")
        };
        return Err(BenchError::Setup(format!(
            "{label} failed ({status}): {said}"
        )));
    }
    let result = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .ok_or_else(|| {
            BenchError::Setup(format!(
                "{label} printed no JSON line (see {})",
                out_path.display()
            ))
        })?;
    Ok(ChildTiming {
        wall_seconds,
        cpu_seconds,
        peak_rss_bytes: max_rss_kb.map(|kb| kb * 1024),
        result,
    })
}

/// Waits for the child `pid` (spawned by this process and not yet waited for) and returns its
/// exit status and peak RSS in KiB (`ru_maxrss` of that one child).
#[allow(unsafe_code)] // wait4: one int and one plain struct out, no pointers kept
fn wait_with_rusage(pid: u32) -> std::io::Result<(std::process::ExitStatus, Option<u64>)> {
    use std::os::unix::process::ExitStatusExt;
    let pid = libc::pid_t::try_from(pid).map_err(std::io::Error::other)?;
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: wait4 writes an int and a plain struct we own; `pid` is our unwaited child.
        let (rc, usage) = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            let rc = libc::wait4(pid, &mut status, 0, &mut usage);
            (rc, usage)
        };
        if rc == pid {
            let rss = u64::try_from(usage.ru_maxrss).ok().filter(|&kb| kb > 0);
            return Ok((std::process::ExitStatus::from_raw(status), rss));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// `tradeloom run` of one spec, timed `repeat` times (wall and CPU: medians; peak RSS: the
/// largest).
#[derive(Clone, Debug, Serialize)]
pub struct RunTiming {
    pub wall_seconds: f64,
    pub cpu_seconds: f64,
    pub peak_rss_bytes: Option<u64>,
    pub passes: usize,
    /// Closed round trips of the run (`metrics.trades`).
    pub trades: u64,
    pub fills: u64,
    pub final_equity: String,
}

/// Runs `exe run SPEC --json --quiet --data-dir DATA` `repeat` times as a child process.
pub fn time_tradeloom_run(
    exe: &Path,
    spec: &Path,
    data_dir: &Path,
    scratch: &Path,
    repeat: usize,
) -> Result<RunTiming, BenchError> {
    let label = spec
        .file_stem()
        .map_or("run".to_string(), |s| s.to_string_lossy().into_owned());
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    let mut rss = None;
    let mut last = serde_json::Value::Null;
    for _ in 0..repeat.max(1) {
        let timing = time_child(
            Command::new(exe)
                .arg("run")
                .arg(spec)
                .arg("--json")
                .arg("--quiet")
                .arg("--data-dir")
                .arg(data_dir),
            scratch,
            &label,
        )?;
        walls.push(timing.wall_seconds);
        cpus.push(timing.cpu_seconds);
        rss = rss.max(timing.peak_rss_bytes);
        // Each pass leaves a run folder (a 10M-bar one is ~1 GB): remove it once measured.
        if let Some(dir) = timing.result.get("run_dir").and_then(|d| d.as_str()) {
            let _ = std::fs::remove_dir_all(dir);
        }
        last = timing.result;
    }
    if last["status"] != "completed" {
        return Err(BenchError::Setup(format!(
            "tradeloom run {} did not complete: {last}",
            spec.display()
        )));
    }
    let metric = |k: &str| last["metrics"][k].as_u64().unwrap_or(0);
    Ok(RunTiming {
        wall_seconds: median(walls),
        cpu_seconds: median(cpus),
        peak_rss_bytes: rss,
        passes: repeat.max(1),
        trades: metric("trades"),
        fills: metric("fills"),
        final_equity: last["metrics"]["final_equity"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    })
}

/// A peer's figures on one size, or why there are none.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum PeerOutcome {
    Measured {
        name: &'static str,
        version: String,
        wall_seconds: f64,
        cpu_seconds: f64,
        peak_rss_bytes: Option<u64>,
        trades: u64,
        final_equity: f64,
    },
    Missing {
        name: &'static str,
        /// `not installed (…)` or the error the peer ended with.
        status: String,
    },
}

/// Runs `peer` once on `csv` with the peers' `python` (`Err`: no interpreter, the reason).
pub fn time_peer(
    peer: &RunPeer,
    python: &Result<PathBuf, String>,
    csv: &Path,
    scratch: &Path,
) -> PeerOutcome {
    let missing = |status: String| PeerOutcome::Missing {
        name: peer.name,
        status,
    };
    let python = match python {
        Ok(p) => p,
        Err(reason) => return missing(reason.clone()),
    };
    let script = match write_script(scratch, peer.script, peer.body) {
        Ok(s) => s,
        Err(e) => return missing(format!("cannot write {}: {e}", peer.script)),
    };
    let label = peer.script.trim_end_matches(".py");
    let timing = time_child(
        Command::new(python)
            .arg(&script)
            .arg(csv)
            .arg(FAST.to_string())
            .arg(SLOW.to_string())
            .arg(CASH.to_string()),
        scratch,
        label,
    );
    match timing {
        Ok(t) => PeerOutcome::Measured {
            name: peer.name,
            version: t.result["version"].as_str().unwrap_or("?").to_string(),
            wall_seconds: t.wall_seconds,
            cpu_seconds: t.cpu_seconds,
            peak_rss_bytes: t.peak_rss_bytes,
            trades: t.result["trades"].as_u64().unwrap_or(0),
            final_equity: t.result["final_equity"].as_f64().unwrap_or(f64::NAN),
        },
        // A module the venv lacks is "not installed"; any other failure is reported as it is.
        Err(e) if e.to_string().contains("ModuleNotFoundError") => {
            missing(format!("not installed ({e})"))
        }
        Err(e) => missing(format!("failed: {e}")),
    }
}

/// One size of `tradeloom bench run`.
#[derive(Clone, Debug, Serialize)]
pub struct RunRow {
    pub bars: u64,
    pub csv: RunTiming,
    pub parquet: RunTiming,
    /// The peers on the CSV (empty when not run for this size).
    pub peers: Vec<PeerOutcome>,
}

fn secs(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.3} s")
    } else {
        format!("{s:.1} s")
    }
}

fn mb(bytes: Option<u64>) -> String {
    bytes.map_or("–".to_string(), |b| format!("{:.0} MB", b as f64 / 1e6))
}

/// The rows of `tradeloom bench run` as titled tables: ours per size and source, then each
/// peer beside our CSV run of the same size (ratio = the peer's wall time over ours).
pub fn run_table(rows: &[RunRow]) -> String {
    let mut out = format!(
        "`tradeloom run` as a whole process (start, parse, engine, every artifact hashed and fsynced): sma_cross {FAST}/{SLOW}, market orders filled at the next open, synthetic 1-minute bars; wall and CPU = median of the passes\n"
    );
    let ours: Vec<Vec<String>> = rows
        .iter()
        .flat_map(|r| {
            [("CSV", &r.csv), ("Parquet", &r.parquet)].map(|(source, t)| {
                vec![
                    r.bars.to_string(),
                    source.to_string(),
                    secs(t.wall_seconds),
                    secs(t.cpu_seconds),
                    mb(t.peak_rss_bytes),
                    format!("{:.1} M", r.bars as f64 / t.wall_seconds / 1e6),
                    t.trades.to_string(),
                    t.final_equity.clone(),
                    t.passes.to_string(),
                ]
            })
        })
        .collect();
    out.push_str(&tradeloom_core::table::render(
        &[
            "BARS",
            "FROM",
            "WALL",
            "CPU",
            "PEAK RSS",
            "BARS/S",
            "TRADES",
            "FINAL EQUITY",
            "PASSES",
        ],
        &ours,
    ));
    let mut peers: Vec<Vec<String>> = Vec::new();
    for r in rows.iter().filter(|r| !r.peers.is_empty()) {
        peers.push(vec![
            r.bars.to_string(),
            "tradeloom".to_string(),
            secs(r.csv.wall_seconds),
            secs(r.csv.cpu_seconds),
            mb(r.csv.peak_rss_bytes),
            "1×".to_string(),
            r.csv.trades.to_string(),
            r.csv.final_equity.clone(),
        ]);
        for p in &r.peers {
            peers.push(match p {
                PeerOutcome::Measured {
                    name,
                    version,
                    wall_seconds,
                    cpu_seconds,
                    peak_rss_bytes,
                    trades,
                    final_equity,
                } => vec![
                    r.bars.to_string(),
                    format!("{name} {version}"),
                    secs(*wall_seconds),
                    secs(*cpu_seconds),
                    mb(*peak_rss_bytes),
                    format!("{:.0}×", wall_seconds / r.csv.wall_seconds),
                    trades.to_string(),
                    format!("{final_equity:.2}"),
                ],
                PeerOutcome::Missing { name, status } => vec![
                    r.bars.to_string(),
                    name.to_string(),
                    status.clone(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ],
            });
        }
    }
    if !peers.is_empty() {
        out.push_str(
            "\nThe same work in the peers a user would pick (CSV in, same strategy and cash, no fees; one pass each, whole process incl. interpreter start and imports; SLOWER = its wall time over tradeloom's CSV run). NautilusTrader fills a market order on the bar it was sent (bar_close), the others at the next open.\n",
        );
        out.push_str(&tradeloom_core::table::render(
            &[
                "BARS",
                "ENGINE",
                "WALL",
                "CPU",
                "PEAK RSS",
                "SLOWER",
                "TRADES",
                "FINAL EQUITY",
            ],
            &peers,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_timed_and_its_last_json_line_kept() {
        let dir = tempfile::tempdir().unwrap();
        let t = time_child(
            Command::new("sh").args([
                "-c",
                "echo starting; echo '{\"trades\": 3}'; echo '{\"trades\": 4, \"final_equity\": 1.5}'; echo done",
            ]),
            dir.path(),
            "child",
        )
        .unwrap();
        assert_eq!(t.result["trades"], 4);
        assert!(t.wall_seconds > 0.0);
        assert!(t.cpu_seconds >= 0.0);
        assert!(t.peak_rss_bytes.is_some_and(|b| b > 0));
    }

    #[test]
    fn a_failing_child_is_an_error_with_its_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let err = time_child(
            Command::new("sh").args(["-c", "echo 'ModuleNotFoundError: vectorbt' >&2; exit 3"]),
            dir.path(),
            "peer",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("peer failed"), "{err}");
        assert!(err.contains("ModuleNotFoundError: vectorbt"), "{err}");
    }

    #[test]
    fn a_peer_without_python_is_not_installed() {
        let dir = tempfile::tempdir().unwrap();
        let outcome = time_peer(
            &RUN_PEERS[0],
            &Err("not installed (no venv)".to_string()),
            Path::new("bars.csv"),
            dir.path(),
        );
        match outcome {
            PeerOutcome::Missing { name, status } => {
                assert_eq!(name, "backtesting.py");
                assert_eq!(status, "not installed (no venv)");
            }
            other => panic!("{other:?}"),
        }
    }
}
