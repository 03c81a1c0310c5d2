//! `tradeloom drill list|run NAME|run --all`: the failure drills of [`tradeloom_ops::drill`],
//! run against processes of this binary; reports in `<data-dir>/drills/<name>.json`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use tradeloom_ops::drill::{self, DrillName, DrillOptions, DrillReport};

use crate::table;

#[derive(Subcommand)]
pub enum DrillCommand {
    /// The drills: what each injects and what it asserts.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Run one drill, or every drill with `--all`; writes `<data-dir>/drills/<name>.json` for
    /// each and exits 0 only if every drill passed (1 otherwise).
    Run {
        /// The drill (see `tradeloom drill list`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        /// Every drill, one after the other.
        #[arg(long)]
        all: bool,
        /// Print the reports as one JSON array instead of the table.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(data_dir: &Path, command: DrillCommand) -> Result<ExitCode> {
    match command {
        DrillCommand::List { json } => {
            list(json)?;
            Ok(ExitCode::SUCCESS)
        }
        DrillCommand::Run { name, all, json } => {
            let selected = if all {
                DrillName::ALL.to_vec()
            } else {
                vec![name.unwrap_or_default().parse::<DrillName>()?]
            };
            run_drills(data_dir, &selected, json)
        }
    }
}

fn list(json: bool) -> Result<()> {
    if json {
        let items: Vec<serde_json::Value> = DrillName::ALL
            .iter()
            .map(|d| {
                serde_json::json!({"name": d.as_str(), "injects": d.injects(), "asserts": d.asserts()})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&items)?);
    } else {
        let rows: Vec<Vec<String>> = DrillName::ALL
            .iter()
            .map(|d| vec![d.to_string(), d.injects().to_string()])
            .collect();
        print!("{}", table::render(&["DRILL", "INJECTS"], &rows));
    }
    Ok(())
}

fn run_drills(data_dir: &Path, selected: &[DrillName], json: bool) -> Result<ExitCode> {
    let exe = std::env::current_exe().context("finding the tradeloom binary")?;
    let options = DrillOptions::new(exe, data_dir.to_path_buf());
    options.prepare()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut reports = Vec::new();
    for &name in selected {
        if !json {
            eprintln!("drill {name}: {}", name.injects());
        }
        let report = runtime.block_on(drill::run(name, &options))?;
        if !json {
            for step in &report.steps {
                let mark = if step.passed { "ok  " } else { "FAIL" };
                eprintln!("  {mark} {}: {}", step.name, step.observed);
            }
            if let Some(e) = &report.error {
                eprintln!("  error: {e}");
            }
        }
        reports.push(report);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        let rows: Vec<Vec<String>> = reports.iter().map(|r| row(&options, r)).collect();
        print!(
            "{}",
            table::render(&["DRILL", "RESULT", "STEPS", "TIME", "REPORT"], &rows)
        );
    }
    Ok(if reports.iter().all(|r| r.passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn row(options: &DrillOptions, r: &DrillReport) -> Vec<String> {
    vec![
        r.name.to_string(),
        if r.passed { "passed" } else { "FAILED" }.to_string(),
        format!("{}/{}", r.steps_passed(), r.steps.len()),
        format!("{:.1}s", r.duration_ms as f64 / 1000.0),
        options.report_path(r.name).display().to_string(),
    ]
}
