//! `tradeloom health [--watch]`: the meta health monitor's check (crate `tradeloom-ops`), once
//! or until interrupted. `tradeloom serve` runs the same monitor in-process
//! ([`tradeloom_ops::health::Monitor`]). With `--redis-url` the check also lists the cluster's
//! process registry (`processes:` in health.yaml).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tradeloom_ops::health::{
    self, ConfigSource, Environment, HealthConfig, HealthReport, QueueAccess, RateLimit, Recovery,
    StoreAccess,
};
use tradeloom_queue::{RedisRegistry, Registry};

/// Options of `tradeloom health`.
#[derive(clap::Args, Debug)]
pub struct HealthArgs {
    /// Check again every `--interval` until interrupted, printing each status change.
    #[arg(long)]
    pub watch: bool,
    /// Time between checks with `--watch` (`5s`, `1m`, `500ms`).
    #[arg(long, default_value = "5s", value_parser = health::parse_duration)]
    pub interval: Duration,
    /// Print the report as one JSON object (with `--watch`, one line per status change).
    #[arg(long)]
    pub json: bool,
    /// The cluster's Redis (`redis://host:port[/db]`): its process registry is listed, each
    /// registered process shown, and `processes:` in health.yaml checked against it. A Redis
    /// that does not answer is reported (the `registry` check), not an error.
    #[arg(long, env = "TRADELOOM_REDIS_URL")]
    pub redis_url: Option<String>,
    /// The key prefix of the cluster's keys in Redis (the one its processes were given).
    #[arg(long, env = "TRADELOOM_REDIS_PREFIX", default_value = crate::serve::DEFAULT_REDIS_PREFIX)]
    pub redis_prefix: String,
}

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
    let redis = crate::serve::redis_settings(args.redis_url.as_deref(), &args.redis_prefix)?;
    let recovery = Recovery::new(data_dir, RateLimit::default());
    crate::store::runtime()?.block_on(async {
        // Connected at the first listing and again after a failed one: a Redis that is down is
        // reported by each check, and `--watch` sees it come back.
        let registry = match &redis {
            Some(redis) => {
                let registry = RedisRegistry::connect_lazily(&redis.url, &redis.prefix)
                    .with_context(|| {
                        format!(
                            "--redis-url {}",
                            tradeloom_core::redact_userinfo(&redis.url)
                        )
                    })?;
                Some(Arc::new(registry) as Arc<dyn Registry>)
            }
            None => None,
        };
        let env = Environment {
            data_dir: data_dir.to_path_buf(),
            store: StoreAccess::Location(crate::store::location(data_dir, database_url)),
            queue: QueueAccess::ViaApi,
            registry,
        };
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
                        cycle.report.weakest()
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
    if let (false, Some(note)) = (
        json,
        health::config_note(data_dir, config, source, EXIT_NOTHING_CONFIGURED),
    ) {
        println!("{note}");
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
    print!("{}", report.text());
}

fn print_actions(actions: &[health::ActionRecord]) {
    for a in actions {
        println!("{}", a.line());
    }
}
