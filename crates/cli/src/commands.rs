//! The commands other than benchmarks.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tradeloom_core::connectivity::Connectivity;
use tradeloom_runs::{ExecuteError, Metadata, RunOptions, find_run, list_runs, verify_run};

/// Peak resident memory of this process, from /proc (Linux); `None` elsewhere.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub fn run(
    spec: &Path,
    data_dir: &Path,
    http_allow: Vec<String>,
    json: bool,
    quiet: bool,
) -> Result<ExitCode> {
    // A paper spec runs on the wall clock until stopped; a spec that does not load is
    // reported by the backtest path as before.
    if let Ok(loaded) = tradeloom_runs::load_spec(spec)
        && loaded.paper.is_some()
    {
        let connectivity = crate::connectivity::assess(&loaded.spec.connectivity_providers())?;
        let connectivity = Some(Connectivity {
            readiness: connectivity.0,
            probe: connectivity.1,
        });
        return crate::paper::run(
            crate::paper::Target::Spec(Box::new(loaded)),
            data_dir,
            http_allow,
            json,
            quiet,
            connectivity,
        );
    }
    if !http_allow.is_empty() {
        eprintln!("error: --http-allow is for paper runs (mode: paper); this spec is a backtest");
        return Ok(ExitCode::from(2));
    }
    let started = Instant::now();
    let show_bar = !json && !quiet && std::io::stdout().is_terminal();
    let bar = ProgressBar::hidden();
    if show_bar {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stdout());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}%  {msg}  eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
    }
    let mut on_progress = |p: tradeloom_runs::Progress| {
        if p.total > 0 {
            bar.set_length(p.total);
        }
        bar.set_position(p.done);
        let rate = p.bars as f64 / started.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!("{} bars, {:.1} M bars/s", p.bars, rate / 1e6));
    };
    // Assessed before the run; the run writes it into its folder before sealing it.
    let connectivity = tradeloom_runs::load_spec(spec)
        .ok()
        .map(|s| crate::connectivity::assess(&s.spec.connectivity_providers()))
        .transpose()?
        .map(|(readiness, probe)| Connectivity { readiness, probe });
    let options = RunOptions {
        data_dir: data_dir.to_path_buf(),
        progress: if show_bar {
            Some(&mut on_progress)
        } else {
            None
        },
        connectivity,
        ..RunOptions::default()
    };
    let outcome = tradeloom_runs::execute(spec, options);
    bar.finish_and_clear();
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match outcome {
        Ok(outcome) => {
            if json {
                let line = json!({
                    "run_id": outcome.run_id,
                    "run_dir": outcome.run_dir,
                    "status": outcome.status.as_str(),
                    "metrics": outcome.metrics,
                    "elapsed_ms": elapsed_ms,
                    "peak_rss_bytes": peak_rss_bytes(),
                });
                println!("{line}");
            } else {
                println!(
                    "run {} completed in {:.2} s",
                    outcome.run_id,
                    elapsed_ms as f64 / 1000.0
                );
                print!("{}", outcome.text());
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(ExecuteError::Rejected(e)) => {
            if json {
                println!("{}", json!({"status": "rejected", "error": e.to_string()}));
            }
            eprintln!("error: {e}");
            Ok(ExitCode::from(2))
        }
        Err(ExecuteError::Failed(f)) => {
            if json {
                println!(
                    "{}",
                    json!({"run_id": f.run_id, "run_dir": f.run_dir, "status": "failed", "error": f.error.to_string()})
                );
            }
            eprintln!("error: {}", f.error);
            eprintln!(
                "run {} failed; its folder is {}",
                f.run_id,
                f.run_dir.display()
            );
            Ok(ExitCode::from(1))
        }
    }
}

pub fn spec_schema() -> Result<ExitCode> {
    println!(
        "{}",
        serde_json::to_string_pretty(&tradeloom_runs::spec::schema())?
    );
    Ok(ExitCode::SUCCESS)
}

pub fn spec_validate(file: &Path) -> Result<ExitCode> {
    let spec = match tradeloom_runs::load_spec(file) {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    for source in &spec.data {
        if !source.path.is_file() {
            eprintln!(
                "error: {}: data file for {} not found: {}",
                file.display(),
                spec.instruments[source.instrument.index()].symbol,
                source.path.display()
            );
            return Ok(ExitCode::from(2));
        }
    }
    if let Some(script) = &spec.script
        && !script.path.is_file()
    {
        eprintln!(
            "error: {}: strategy.script `{}` not found (paths are relative to the spec file)",
            file.display(),
            script.given
        );
        return Ok(ExitCode::from(2));
    }
    println!(
        "{}: valid ({} `{}`, {} instrument(s), fill model {})",
        file.display(),
        spec.spec.strategy.name(),
        spec.spec.name,
        spec.instruments.len(),
        spec.engine.fill_model
    );
    Ok(ExitCode::SUCCESS)
}

pub fn runs_list(data_dir: &Path, json: bool) -> Result<ExitCode> {
    let runs = list_runs(data_dir)?;
    if json {
        let list: Vec<&Metadata> = runs.iter().map(|(_, m)| m).collect();
        println!("{}", serde_json::to_string(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    if runs.is_empty() {
        println!("no runs under {}", data_dir.join("runs").display());
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", tradeloom_runs::text::runs_table(&runs));
    Ok(ExitCode::SUCCESS)
}

pub fn runs_show(data_dir: &Path, id: &str, json: bool) -> Result<ExitCode> {
    let dir = find_run(data_dir, id)?;
    let meta = Metadata::read(&dir)?;
    let metrics: Option<serde_json::Value> = std::fs::read_to_string(dir.join("metrics.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    if json {
        println!(
            "{}",
            json!({"run_dir": dir, "metadata": meta, "metrics": metrics})
        );
        return Ok(ExitCode::SUCCESS);
    }
    print!(
        "{}",
        tradeloom_runs::text::run_details(&dir, &meta, metrics)
    );
    Ok(ExitCode::SUCCESS)
}

pub fn report(data_dir: &Path, id: &str, open: bool) -> Result<ExitCode> {
    let dir = find_run(data_dir, id)?;
    let path = tradeloom_runs::rerender_report(&dir)
        .with_context(|| format!("re-rendering the report of {}", dir.display()))?;
    let html = dir.join(tradeloom_runs::report::REPORT_HTML);
    println!("{}", path.display());
    println!("{}", html.display());
    if open {
        open_in_browser(&html)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens `file` with `$BROWSER` (a command; `%s` in it is replaced by the file, else the file
/// is its last argument), else the desktop's opener (`xdg-open`, or `open` on macOS). Returns
/// once the opener has been started, failing when none could be.
fn open_in_browser(file: &Path) -> Result<()> {
    let target = file.display().to_string();
    let (program, args): (String, Vec<String>) = match std::env::var("BROWSER") {
        Ok(browser) if !browser.trim().is_empty() => {
            let mut words: Vec<String> = browser.split_whitespace().map(str::to_string).collect();
            let program = words.remove(0);
            if words.iter().any(|w| w.contains("%s")) {
                let words = words.iter().map(|w| w.replace("%s", &target)).collect();
                (program, words)
            } else {
                words.push(target.clone());
                (program, words)
            }
        }
        _ if cfg!(target_os = "macos") => ("open".to_string(), vec![target.clone()]),
        _ => ("xdg-open".to_string(), vec![target.clone()]),
    };
    std::process::Command::new(&program)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot open report.html with `{program}`: {e}; open the file printed above, or \
                 set $BROWSER to a browser command"
            )
        })
}

pub fn verify(data_dir: &Path, id: &str, json: bool) -> Result<ExitCode> {
    let dir = find_run(data_dir, id)?;
    let report = verify_run(&dir)?;
    if json {
        println!(
            "{}",
            json!({"run_id": report.run_id, "ok": report.ok(), "checks": report.checks})
        );
    } else {
        print!("{}", report.text());
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub fn data_synth(
    symbol: &str,
    bars: u64,
    timeframe: &str,
    seed: u64,
    out: &Path,
) -> Result<ExitCode> {
    let spec = tradeloom_data::SynthSpec {
        symbol: symbol.to_string(),
        bars,
        timeframe: timeframe
            .parse()
            .map_err(|e| anyhow::anyhow!("--timeframe: {e}"))?,
        seed,
        ..tradeloom_data::SynthSpec::default()
    };
    let summary = tradeloom_data::write_synth(&spec, out)?;
    println!("{}", serde_json::to_string(&summary)?);
    Ok(ExitCode::SUCCESS)
}

pub fn data_inspect(file: &Path, json: bool) -> Result<ExitCode> {
    let report = tradeloom_data::inspect(file, None)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `data universe`: writes `out/SYMBOL.csv` per symbol and, with `news`, `out/news.jsonl`.
pub fn data_universe(
    symbols: usize,
    days: usize,
    seed: u64,
    start: &str,
    out: &Path,
    news: bool,
) -> Result<ExitCode> {
    let start: tradeloom_data::chrono::NaiveDate = start
        .parse()
        .map_err(|_| anyhow::anyhow!("--start: invalid date `{start}`; expected YYYY-MM-DD"))?;
    let spec = tradeloom_data::UniverseSpec {
        symbols,
        days,
        seed,
        start,
    };
    let universe = tradeloom_data::synth_universe(&spec)?;
    let files = tradeloom_data::write_universe(&universe, out)?;
    let news_items = if news {
        let items = tradeloom_data::synth_news(&universe, seed);
        tradeloom_data::write_news(&out.join("news.jsonl"), &items)?;
        Some(items.len())
    } else {
        None
    };
    println!("universe written (seed {seed})");
    print!(
        "{}",
        tradeloom_data::universe::universe_summary(&universe, out, files.len(), news_items)
    );
    Ok(ExitCode::SUCCESS)
}
