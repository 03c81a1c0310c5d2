//! `tradeloom metrics export|serve`: the data dir's artifacts (run folders, connectivity
//! files, kill switches, the latest health check) as Prometheus text, once on stdout or over
//! HTTP for scraping. Both use [`tradeloom_ops::artifact_metrics::ArtifactCollector`], as does
//! `GET /metrics` of `tradeloom serve`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Subcommand;
use tradeloom_ops::artifact_metrics::{ArtifactCollector, ArtifactMetricsError, Selection};

#[derive(Subcommand)]
pub enum MetricsCommand {
    /// Print the artifacts' metrics in the Prometheus text format (0.0.4) and exit.
    Export {
        /// Only this run (full id, unique prefix or `latest`), with the global kill switch and
        /// the run's own.
        #[arg(long)]
        run: Option<String>,
    },
    /// Serve the artifacts' metrics at `GET /metrics`, re-read at every scrape (changed files
    /// only).
    Serve {
        #[arg(long, default_value = "127.0.0.1:9464")]
        addr: String,
    },
}

pub fn run(data_dir: &Path, command: MetricsCommand) -> Result<ExitCode> {
    match command {
        MetricsCommand::Export { run } => export(data_dir, run.as_deref()),
        MetricsCommand::Serve { addr } => serve(data_dir, &addr),
    }
}

fn export(data_dir: &Path, run: Option<&str>) -> Result<ExitCode> {
    let collector = ArtifactCollector::new(data_dir);
    let selection = run.map_or(Selection::All, Selection::Run);
    match collector.render(selection) {
        Ok(text) => {
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Err(ArtifactMetricsError::UnknownRun(message)) => {
            eprintln!("error: --run: {message}");
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(e).with_context(|| {
            format!(
                "cannot export the metrics of the data dir {}",
                data_dir.display()
            )
        }),
    }
}

fn serve(data_dir: &Path, addr: &str) -> Result<ExitCode> {
    let collector = Arc::new(ArtifactCollector::new(data_dir));
    crate::store::runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("--addr {addr}: cannot listen there"))?;
        let local = listener.local_addr()?;
        println!(
            "tradeloom metrics of {} at http://{local}/metrics",
            collector.data_dir().display()
        );
        tradeloom_server::serve_artifacts(listener, collector, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving metrics")?;
        Ok(ExitCode::SUCCESS)
    })
}
