//! `tradeloom health [--watch]`, and the meta health monitor that `tradeloom serve` runs
//! in-process (heartbeats of its roles, a check every `--health-interval`, recovery actions on
//! its workflow runtime, the latest report for `GET /health/meta`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tradeloom_ops::health::{
    self, ConfigSource, Environment, HealthConfig, HealthReport, LoopGroup, Probe, QueueAccess,
    RateLimit, Recovery, Status, StoreAccess, Supervisor,
};
use tradeloom_orchestrator::Runtime;

use crate::table;

fn interval(text: &str) -> Result<Duration, String> {
    health::parse_duration(text)
}

/// Options of `tradeloom health`.
#[derive(clap::Args, Debug)]
pub struct HealthArgs {
    /// Check again every `--interval` until interrupted, printing each status change.
    #[arg(long)]
    pub watch: bool,
    /// Time between checks with `--watch` (`5s`, `1m`, `500ms`).
    #[arg(long, default_value = "5s", value_parser = interval)]
    pub interval: Duration,
    /// Print the report as one JSON object (with `--watch`, one line per status change).
    #[arg(long)]
    pub json: bool,
}

/// `serve`'s monitor settings.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeHealthOptions {
    /// Time between the in-process meta health checks (`GET /health/meta`).
    #[arg(long, env = "TRADELOOM_HEALTH_INTERVAL", default_value = "10s", value_parser = interval)]
    pub health_interval: Duration,
}

/// How often `serve` rewrites its heartbeat files.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);

/// Exit code of `tradeloom health` when nothing is configured: no `health.yaml` and no
/// heartbeat file (the check still ran, over the store and the data dir only).
pub const EXIT_NOTHING_CONFIGURED: u8 = 3;

/// `tradeloom health`: exit 0 whenever the check ran (the status is in the output), 2 on a bad
/// config, 3 when nothing is configured ([`EXIT_NOTHING_CONFIGURED`]). Without `health.yaml`
/// the roles of the heartbeat files found are checked.
pub fn run(data_dir: &Path, database_url: Option<&str>, args: &HealthArgs) -> Result<ExitCode> {
    let (config, source) = match HealthConfig::load_or_discover(data_dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let env = Environment {
        data_dir: data_dir.to_path_buf(),
        store: StoreAccess::Location(crate::simulation::store_location(data_dir, database_url)),
        queue: QueueAccess::ViaApi,
    };
    let recovery = Recovery::new(data_dir, RateLimit::default());
    crate::simulation::runtime()?.block_on(async {
        let first = health::cycle(&config, &env, None, &recovery)
            .await
            .context("recording the health check")?;
        print_config(data_dir, &config, source, args.json);
        print_report(&first.report, source, args.json);
        print_actions(&first.actions);
        warn_unrecorded(&first);
        if !args.watch {
            return Ok(if source == ConfigSource::Nothing {
                ExitCode::from(EXIT_NOTHING_CONFIGURED)
            } else {
                ExitCode::SUCCESS
            });
        }
        let mut config = config;
        let mut source = source;
        let mut last = first.report.status;
        loop {
            tokio::select! {
                () = tokio::time::sleep(args.interval) => {}
                _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            }
            match HealthConfig::load_or_discover(data_dir) {
                Ok((c, s)) => {
                    if s != source || c.roles != config.roles {
                        print_config(data_dir, &c, s, args.json);
                    }
                    (config, source) = (c, s);
                }
                Err(e) => eprintln!("error: {e} (still checking with the last good config)"),
            }
            let cycle = health::cycle(&config, &env, None, &recovery)
                .await
                .context("recording the health check")?;
            warn_unrecorded(&cycle);
            if cycle.report.status != last {
                if args.json {
                    print_report(&cycle.report, source, true);
                } else {
                    println!(
                        "{}  {last} → {}  rm_meta {:.3}  {}",
                        cycle.report.checked_at,
                        cycle.report.status,
                        cycle.report.rm_meta,
                        weakest(&cycle.report)
                    );
                }
                last = cycle.report.status;
            }
            print_actions(&cycle.actions);
        }
    })
}

/// Says what the check is based on (text mode; JSON reports carry `config_source`).
fn print_config(data_dir: &Path, config: &HealthConfig, source: ConfigSource, json: bool) {
    if json {
        return;
    }
    match source {
        ConfigSource::File => {}
        ConfigSource::Heartbeats => println!(
            "no {}: checking the heartbeats found under {}: {}",
            data_dir.join(health::CONFIG_FILE).display(),
            health::heartbeat_dir(data_dir).display(),
            config.roles.join(", ")
        ),
        ConfigSource::Nothing => println!(
            "NOTHING CONFIGURED: no {} and no heartbeat files under {}; only the store and the \
             data dir were checked (exit {EXIT_NOTHING_CONFIGURED})",
            data_dir.join(health::CONFIG_FILE).display(),
            health::heartbeat_dir(data_dir).display()
        ),
    }
}

/// A report that could not be written (e.g. a full disk) is still shown; the failure is said.
fn warn_unrecorded(cycle: &health::Cycle) {
    if let Some(e) = &cycle.record_error {
        eprintln!("warning: the report could not be recorded: {e}");
    }
}

fn print_report(report: &HealthReport, source: ConfigSource, json: bool) {
    if json {
        match serde_json::to_value(report) {
            Ok(mut value) => {
                if let Some(o) = value.as_object_mut() {
                    o.insert("config_source".into(), serde_json::json!(source));
                }
                println!("{value}");
            }
            Err(e) => eprintln!("error: cannot render the report: {e}"),
        }
        return;
    }
    println!(
        "status {}  rm_meta {:.3}  (checked {})",
        report.status, report.rm_meta, report.checked_at
    );
    let rows: Vec<Vec<String>> = report
        .sensors
        .named()
        .iter()
        .map(|(name, value)| {
            vec![
                name.to_string(),
                format!("{value:.2}"),
                explain(report, name),
            ]
        })
        .collect();
    print!("{}", table::render(&["sensor", "value", "why"], &rows));
}

fn print_actions(actions: &[health::ActionRecord]) {
    for a in actions {
        println!(
            "{}  recovery {}: {} ({})",
            a.at, a.action, a.outcome, a.reason
        );
    }
}

/// The sensors below 1 with their reasons, for a status-change line.
fn weakest(report: &HealthReport) -> String {
    let weak: Vec<String> = report
        .sensors
        .named()
        .iter()
        .filter(|(_, v)| *v < 1.0)
        .map(|(name, v)| format!("{name} {v:.2}: {}", explain(report, name)))
        .collect();
    if weak.is_empty() {
        "all sensors 1.00".into()
    } else {
        weak.join("; ")
    }
}

fn probes(p: &std::collections::BTreeMap<String, Probe>) -> String {
    if p.is_empty() {
        return "nothing to check".into();
    }
    p.iter()
        .map(|(name, probe)| match &probe.error {
            None => format!("{name} ok"),
            Some(e) => format!("{name} FAILED: {e}"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// One line on why a sensor has its value.
fn explain(report: &HealthReport, sensor: &str) -> String {
    let d = &report.details;
    match sensor {
        "m1_process" | "m2_heartbeat" => {
            if d.processes.is_empty() {
                return "no roles configured".into();
            }
            d.processes
                .iter()
                .map(|(role, r)| {
                    let age = r
                        .age_seconds
                        .map_or(String::new(), |a| format!(", beat {a:.1} s ago"));
                    match &r.error {
                        Some(e) => format!("{role}: {e}{age}"),
                        None => format!("{role}: pid {}{age}", r.pid.unwrap_or(0)),
                    }
                })
                .collect::<Vec<_>>()
                .join("; ")
        }
        "m3_data_freshness" => {
            if d.feeds.is_empty() {
                return "no feeds configured".into();
            }
            d.feeds
                .iter()
                .map(|(name, f)| match (&f.error, f.age_seconds) {
                    (Some(e), _) => format!("{name} {}: {e}", f.state),
                    (None, Some(age)) => format!("{name} {} ({age:.1} s old)", f.state),
                    (None, None) => format!("{name} {}", f.state),
                })
                .collect::<Vec<_>>()
                .join("; ")
        }
        "m4_control_plane" => probes(&d.control_plane),
        _ => probes(&d.coherence),
    }
}

/// [`Supervisor`] over `serve`'s workflow runtime.
struct RuntimeSupervisor(Arc<Runtime>);

impl Supervisor for RuntimeSupervisor {
    fn finished_loops(&self) -> Vec<LoopGroup> {
        self.0
            .loop_health()
            .into_iter()
            .map(|g| LoopGroup {
                name: g.group,
                finished: g.finished,
                total: g.total,
            })
            .collect()
    }

    fn respawn_finished(&self, group: &str) -> usize {
        self.0.respawn_finished(group)
    }

    fn requeue_expired(&self) -> health::RequeueFuture<'_> {
        Box::pin(async move { self.0.requeue_expired().await.map_err(|e| e.to_string()) })
    }
}

/// The roles `serve` runs, each with whether it is alive right now.
fn roles_alive(
    runtime: &Runtime,
    scheduler: &tokio::task::JoinHandle<()>,
) -> Vec<(&'static str, bool)> {
    let groups = runtime.loop_health();
    let group_alive = |name: &str| {
        groups
            .iter()
            .any(|g| g.group == name && g.finished < g.total)
    };
    let workers = groups
        .iter()
        .filter(|g| {
            g.group != tradeloom_orchestrator::runtime::COORDINATOR_GROUP
                && g.group != tradeloom_orchestrator::runtime::TIMERS_GROUP
        })
        .all(|g| g.finished < g.total);
    vec![
        ("api", true),
        (
            "coordinator",
            group_alive(tradeloom_orchestrator::runtime::COORDINATOR_GROUP),
        ),
        ("workers", workers),
        ("scheduler", !scheduler.is_finished()),
    ]
}

/// The roles whose heartbeats `serve` writes.
pub const SERVE_ROLES: [&str; 4] = ["api", "coordinator", "workers", "scheduler"];

/// The monitor of a `serve` process; [`ServeMonitor::stop`] ends it and removes the heartbeats.
pub struct ServeMonitor {
    data_dir: PathBuf,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ServeMonitor {
    /// Writes the heartbeats of the roles that are alive every few seconds (a role whose loops
    /// all died stops beating), and checks health every `options.health_interval`, keeping the
    /// latest report in `slot`. Fails on a bad `health.yaml` at start.
    pub fn start(
        data_dir: &Path,
        options: &ServeHealthOptions,
        store: Arc<dyn tradeloom_store::Store>,
        runtime: Arc<Runtime>,
        scheduler: Arc<tokio::task::JoinHandle<()>>,
        slot: tradeloom_server::MetaHealthSlot,
    ) -> Result<Self> {
        let mut config = HealthConfig::load(data_dir)?;
        let data_dir = data_dir.to_path_buf();
        let beat = {
            let data_dir = data_dir.clone();
            let runtime = runtime.clone();
            let scheduler = scheduler.clone();
            tokio::spawn(async move {
                loop {
                    for (role, alive) in roles_alive(&runtime, &scheduler) {
                        if alive && let Err(e) = health::write_heartbeat_now(&data_dir, role) {
                            tracing::warn!(role, error = %e, "cannot write a heartbeat");
                        }
                    }
                    tokio::time::sleep(HEARTBEAT_EVERY).await;
                }
            })
        };
        let interval = options.health_interval;
        let check = {
            let data_dir = data_dir.clone();
            tokio::spawn(async move {
                let recovery = Recovery::new(&data_dir, RateLimit::default());
                let supervisor = RuntimeSupervisor(runtime.clone());
                let mut last: Option<Status> = None;
                // The first heartbeats land before the first check.
                tokio::time::sleep(Duration::from_millis(200)).await;
                loop {
                    match HealthConfig::load(&data_dir) {
                        Ok(c) => config = c,
                        Err(e) => {
                            tracing::error!(error = %e, "bad health config; checking with the last good one")
                        }
                    }
                    let queue = runtime.coordinator().queue().clone();
                    let queue_probe = match tokio::time::timeout(
                        health::PROBE_TIMEOUT,
                        queue.stats(tradeloom_orchestrator::worker::SIGNAL_POOL),
                    )
                    .await
                    {
                        Ok(Ok(_)) => Probe::ok(),
                        Ok(Err(e)) => Probe::failed(format!("queue: {e}")),
                        Err(_) => Probe::failed("the queue did not answer in time"),
                    };
                    let env = Environment {
                        data_dir: data_dir.clone(),
                        store: StoreAccess::Shared(store.clone()),
                        queue: QueueAccess::Checked(queue_probe),
                    };
                    match health::cycle(&config, &env, Some(&supervisor), &recovery).await {
                        Ok(cycle) => {
                            let status = cycle.report.status;
                            if last != Some(status) {
                                if status == Status::Green {
                                    tracing::info!(status = %status, rm_meta = cycle.report.rm_meta, "meta health");
                                } else {
                                    tracing::warn!(status = %status, rm_meta = cycle.report.rm_meta, why = %weakest(&cycle.report), "meta health");
                                }
                                last = Some(status);
                            }
                            match serde_json::to_value(&cycle.report) {
                                Ok(v) => {
                                    *slot
                                        .write()
                                        .unwrap_or_else(std::sync::PoisonError::into_inner) =
                                        Some(v);
                                }
                                Err(e) => {
                                    tracing::error!(error = %e, "cannot render the health report")
                                }
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "health check not recorded"),
                    }
                    tokio::time::sleep(interval).await;
                }
            })
        };
        Ok(Self {
            data_dir,
            tasks: vec![beat, check],
        })
    }

    /// Stops the monitor and removes this process's heartbeat files (a clean shutdown).
    pub async fn stop(self) {
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
        for role in SERVE_ROLES {
            health::remove_heartbeat(&self.data_dir, role);
        }
    }
}
