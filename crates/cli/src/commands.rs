//! The commands other than benchmarks.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tradeloom_core::connectivity::Connectivity;
use tradeloom_engine::Metrics;
use tradeloom_runs::{ExecuteError, Metadata, RunOptions, find_run, list_runs, verify_run};

use crate::table;

/// Peak resident memory of this process, from /proc (Linux); `None` elsewhere.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn opt(x: Option<f64>, unit: &str) -> String {
    x.map_or("–".to_string(), |v| format!("{v:.2}{unit}"))
}

fn metrics_rows(m: &Metrics, currency: &str) -> Vec<(&'static str, String)> {
    let day =
        |t: Option<tradeloom_core::UnixNanos>| t.map_or("–".to_string(), |t| t.date_string());
    vec![
        (
            "period",
            format!("{} → {} ({} bars)", day(m.start), day(m.end), m.bars),
        ),
        ("final equity", format!("{} {currency}", m.final_equity)),
        ("net pnl", format!("{} {currency}", m.net_pnl)),
        ("total return", format!("{:.2} %", m.total_return_pct)),
        ("cagr", opt(m.cagr_pct, " %")),
        ("sharpe", opt(m.sharpe, "")),
        ("sortino", opt(m.sortino, "")),
        (
            "max drawdown",
            format!(
                "{:.2} % ({:.0} days)",
                m.max_drawdown_pct, m.max_drawdown_duration_days
            ),
        ),
        (
            "trades",
            format!("{} (win rate {})", m.trades, opt(m.win_rate_pct, " %")),
        ),
        ("profit factor", opt(m.profit_factor, "")),
        ("fees", format!("{} {currency}", m.fees)),
        (
            "orders",
            format!(
                "{} ({} rejected), {} fills",
                m.orders, m.rejected_orders, m.fills
            ),
        ),
    ]
}

pub fn run(spec: &Path, data_dir: &Path, json: bool, quiet: bool) -> Result<ExitCode> {
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
                let currency = outcome.metrics.initial_cash.currency().to_string();
                println!(
                    "run {} completed in {:.2} s",
                    outcome.run_id,
                    elapsed_ms as f64 / 1000.0
                );
                let mut rows = vec![("name", outcome.metadata.name.clone())];
                rows.push(("folder", outcome.run_dir.display().to_string()));
                rows.extend(metrics_rows(&outcome.metrics, &currency));
                if outcome.metadata.summary.as_ref().is_some_and(|s| s.halted) {
                    rows.push((
                        "kill switch",
                        "ENGAGED (max drawdown breached; see journal)".to_string(),
                    ));
                }
                rows.push((
                    "report",
                    outcome.run_dir.join("report.md").display().to_string(),
                ));
                print!("{}", table::pairs(&rows));
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

fn summary_cells(meta: &Metadata) -> Vec<String> {
    let s = meta.summary.as_ref();
    vec![
        meta.run_id.clone(),
        meta.name.clone(),
        meta.status.as_str().to_string(),
        meta.created_at
            .get(..19)
            .unwrap_or(&meta.created_at)
            .replace('T', " "),
        meta.strategy.clone(),
        s.map_or("–".to_string(), |s| s.bars.to_string()),
        s.map_or("–".to_string(), |s| s.trades.to_string()),
        s.map_or("–".to_string(), |s| {
            format!("{:.2} %", s.total_return_pct)
        }),
    ]
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
    let rows: Vec<Vec<String>> = runs.iter().map(|(_, m)| summary_cells(m)).collect();
    print!(
        "{}",
        table::render(
            &[
                "RUN ID",
                "NAME",
                "STATUS",
                "CREATED (UTC)",
                "STRATEGY",
                "BARS",
                "TRADES",
                "RETURN"
            ],
            &rows
        )
    );
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
    let mut rows = vec![
        ("run id", meta.run_id.clone()),
        ("name", meta.name.clone()),
        ("status", meta.status.as_str().to_string()),
        ("folder", dir.display().to_string()),
        ("created", meta.created_at.clone()),
        ("strategy", meta.strategy.clone()),
        ("fill model", meta.fill_model.clone()),
        ("instruments", meta.instruments.join(", ")),
    ];
    if let Some(e) = &meta.error {
        rows.push(("error", e.clone()));
    }
    if let Some(m) = metrics.and_then(|v| serde_json::from_value::<MetricsView>(v).ok()) {
        rows.push(("final equity", m.final_equity));
        rows.push(("total return", format!("{:.2} %", m.total_return_pct)));
        rows.push(("sharpe", opt(m.sharpe, "")));
        rows.push(("max drawdown", format!("{:.2} %", m.max_drawdown_pct)));
        rows.push(("trades", m.trades.to_string()));
    }
    rows.push(("report", dir.join("report.md").display().to_string()));
    print!("{}", table::pairs(&rows));
    Ok(ExitCode::SUCCESS)
}

/// The figures `runs show` prints, read back from metrics.json.
#[derive(serde::Deserialize)]
struct MetricsView {
    final_equity: String,
    total_return_pct: f64,
    sharpe: Option<f64>,
    max_drawdown_pct: f64,
    trades: u64,
}

pub fn report(data_dir: &Path, id: &str) -> Result<ExitCode> {
    let dir = find_run(data_dir, id)?;
    let path = tradeloom_runs::rerender_report(&dir)
        .with_context(|| format!("re-rendering the report of {}", dir.display()))?;
    println!("{}", path.display());
    Ok(ExitCode::SUCCESS)
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
        for c in &report.checks {
            let status = if c.ok { "ok" } else { "MISMATCH" };
            let detail = match (&c.actual, &c.error) {
                (_, Some(e)) => format!(" ({e})"),
                (Some(a), None) if !c.ok => format!(" (expected {}, found {a})", c.expected),
                _ => String::new(),
            };
            println!("{status:>8}  {}{detail}", c.file);
        }
        let failures = report.failures().count();
        if failures == 0 {
            println!(
                "run {}: all {} hashes match",
                report.run_id,
                report.checks.len()
            );
        } else {
            println!(
                "run {}: {failures} of {} hashes do not match",
                report.run_id,
                report.checks.len()
            );
        }
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
    let names = universe.symbols();
    let shown = if names.len() > 10 {
        format!("{}, …", names[..10].join(", "))
    } else {
        names.join(", ")
    };
    let day = |d: Option<tradeloom_data::chrono::NaiveDate>| {
        d.map_or("–".to_string(), |d| d.to_string())
    };
    let rows = vec![
        ("folder", out.display().to_string()),
        ("symbols", format!("{} ({shown})", names.len())),
        (
            "days",
            format!(
                "{} ({} → {})",
                universe.trading_dates().len(),
                day(universe.first_date()),
                day(universe.last_date())
            ),
        ),
        (
            "files",
            format!(
                "{} bar files (SYMBOL.csv){}",
                files.len(),
                if news { " + news.jsonl" } else { "" }
            ),
        ),
        (
            "news",
            news_items.map_or("not written (--no-news)".to_string(), |n| {
                format!("{n} items")
            }),
        ),
    ];
    println!("universe written (seed {seed})");
    print!("{}", table::pairs(&rows));
    Ok(ExitCode::SUCCESS)
}
