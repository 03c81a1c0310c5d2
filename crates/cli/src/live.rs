//! `tradeloom bridge`, `tradeloom map show` and `tradeloom trader`: the scan bridge, the feature
//! maps it publishes, and the event-driven trader (reference document 004).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use tradeloom_live::bridge::{Bridge, BridgeOptions, Published, maps_dir};
use tradeloom_runs::paper::StopSignal;

/// `tradeloom bridge`.
#[derive(Args)]
pub struct BridgeArgs {
    /// The directory scan files appear in (Arrow IPC, Parquet, CSV, JSON lines).
    #[arg(long)]
    watch: PathBuf,
    /// The feature map to publish into (`<data-dir>/maps/NAME.json`).
    #[arg(long)]
    map: String,
    /// The column the rows are keyed by.
    #[arg(long, default_value = "symbol")]
    key: String,
    /// Milliseconds between the two size/mtime checks of a file not renamed into the directory.
    #[arg(long, default_value_t = 50)]
    settle_ms: u64,
    /// Milliseconds between full rescans of the directory (the safety net for missed events).
    #[arg(long, default_value_t = 1000)]
    rescan_ms: u64,
    /// One JSON object per published scan on stdout instead of a text line.
    #[arg(long)]
    json: bool,
}

/// `tradeloom map …`.
#[derive(Subcommand)]
pub enum MapCommand {
    /// The latest snapshot of a feature map: name, sequence, time, source and every value.
    Show {
        /// The map's name.
        name: String,
        /// `{"name","seq","updated_at","source","values":{...}}`.
        #[arg(long)]
        json: bool,
    },
}

/// Raises `stop` on the first SIGTERM or SIGINT (Ctrl-C), from a thread of its own.
pub fn stop_on_signals(stop: StopSignal) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal listener")?;
    let mut signals =
        runtime.block_on(async { tradeloom_server::launch::StopSignals::install() })?;
    std::thread::Builder::new()
        .name("signals".to_string())
        .spawn(move || {
            runtime.block_on(async move {
                let name = signals.recv().await;
                tracing::info!("{name}: stopping");
                stop.stop();
            })
        })
        .context("starting the signal listener")?;
    Ok(())
}

/// `tradeloom bridge --watch DIR --map NAME`: publishes every new scan file until SIGTERM or
/// Ctrl-C. Prints one line per scan just before it is published.
pub fn bridge(data_dir: &Path, args: &BridgeArgs) -> Result<ExitCode> {
    let mut options = BridgeOptions::new(&args.watch, &args.map, data_dir);
    options.key = args.key.clone();
    options.settle = Duration::from_millis(args.settle_ms);
    options.rescan = Duration::from_millis(args.rescan_ms.max(1));
    let json = args.json;
    let bridge = Bridge::open(options)?.on_publish(Box::new(move |p: &Published| {
        let ts = p
            .updated_at
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        if json {
            println!(
                "{}",
                serde_json::json!({"seq": p.seq, "file": p.file, "rows": p.rows, "updated_at": ts})
            );
        } else {
            println!("seq {} {} ({} rows, {ts})", p.seq, p.file, p.rows);
        }
    }));
    let stats = bridge.stats();
    eprintln!(
        "bridge: watching {} into map `{}` (after {})",
        args.watch.display(),
        args.map,
        bridge
            .cursor()
            .last_file
            .as_deref()
            .unwrap_or("nothing yet")
    );
    let stop = StopSignal::new();
    stop_on_signals(stop.clone())?;
    let mut bridge = bridge;
    bridge.run(&stop)?;
    use std::sync::atomic::Ordering::Relaxed;
    eprintln!(
        "bridge: stopped; {} scans published, {} malformed files skipped, {} old files ignored",
        stats.published.load(Relaxed),
        stats.malformed.load(Relaxed),
        stats.old.load(Relaxed)
    );
    Ok(ExitCode::SUCCESS)
}

/// `tradeloom map show NAME [--json]`.
pub fn map(data_dir: &Path, command: &MapCommand) -> Result<ExitCode> {
    let MapCommand::Show { name, json } = command;
    let dir = maps_dir(data_dir);
    let Some(snap) = tradeloom_queue::feature_map::read_map_file(&dir, name)? else {
        bail!(
            "no map `{name}` in {} (a bridge publishes it: tradeloom bridge --watch DIR --map {name})",
            dir.display()
        );
    };
    if *json {
        println!("{}", snap.to_json());
        return Ok(ExitCode::SUCCESS);
    }
    println!("map {}", snap.name);
    println!("  seq          {}", snap.seq);
    println!(
        "  updated_at   {}",
        snap.updated_at
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
    );
    println!("  source       {}", snap.source);
    println!("  values       {}", snap.values.len());
    for (key, value) in snap.values.iter() {
        println!("  {key:<12} {value}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `tradeloom trader`.
#[derive(Args)]
pub struct TraderArgs {
    /// A paper spec with `feed: {type: scan_dir, …}`.
    spec: PathBuf,
    /// Print one JSON object as the last line of stdout instead of the summary.
    #[arg(long)]
    json: bool,
}

/// `tradeloom trader SPEC`: a paper run of a scan_dir spec that publishes its state and per-day
/// PnL into `<map>.trader`; until SIGTERM/Ctrl-C (graceful: the run is stopped and sealed) or
/// its `stop_at`.
pub fn trader(data_dir: &Path, args: &TraderArgs) -> Result<ExitCode> {
    use tradeloom_runs::paper::{FeedSpec, PaperOptions, run_paper};
    let spec = tradeloom_runs::spec::load_spec(&args.spec)?;
    let Some(FeedSpec::ScanDir(feed_spec)) = spec.spec.feed.clone() else {
        bail!(
            "{}: feed: `tradeloom trader` needs `feed: {{type: scan_dir, path: …}}` (run other paper specs with `tradeloom run`)",
            args.spec.display()
        );
    };
    let map = tradeloom_live::scan_dir::map_name(&spec, &feed_spec);
    let trader_map =
        tradeloom_live::bridge::open_map(data_dir, &tradeloom_live::trader::trader_map_name(&map))?;
    let feed = tradeloom_live::open_feed(
        &spec,
        &tradeloom_live::FeedOptions {
            data_dir: data_dir.to_path_buf(),
            ..tradeloom_live::FeedOptions::default()
        },
    )?;
    let stop = StopSignal::new();
    stop_on_signals(stop.clone())?;
    let mut observer = tradeloom_live::trader::TraderObserver::new(trader_map)
        .starting_equity(spec.engine.initial_cash);
    if !args.json {
        eprintln!(
            "trader: following map `{map}` (scans in {}), publishing into `{}`; Ctrl-C stops",
            tradeloom_live::scan_dir::watch_dir(&spec, &feed_spec).display(),
            tradeloom_live::trader::trader_map_name(&map)
        );
    }
    let outcome = run_paper(
        tradeloom_runs::SpecSource::Loaded(Box::new(spec)),
        feed,
        PaperOptions {
            observer: Some(&mut observer),
            ..PaperOptions::new(data_dir, stop)
        },
    );
    match outcome {
        Ok(outcome) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "run_id": outcome.run_id,
                        "run_dir": outcome.run_dir,
                        "status": outcome.status,
                        "trader_map": tradeloom_live::trader::trader_map_name(&map),
                    })
                );
            } else {
                println!("run {} {:?}", outcome.run_id, outcome.status);
                println!("  folder       {}", outcome.run_dir.display());
                println!(
                    "  trader map   {}",
                    tradeloom_live::trader::trader_map_name(&map)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
