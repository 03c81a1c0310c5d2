//! `tradeloom reconcile RUN_ID|JOB_ID`: recompute the books of a backtest run or a simulation
//! job and compare them with what was reported and stored (crate `tradeloom-ops`).
//!
//! Exit codes: 0 every check passed, 1 any mismatch, 2 an error (unknown id, a missing or
//! unreadable file, a malformed journal line — the message names the file and line).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use tradeloom_ops::reconcile::{
    Target, job_result_dir, reconcile_job, reconcile_run, reconcile_run_with_store, render_text,
    resolve,
};
use tradeloom_store::{Store, open_store};

use crate::store::runtime;

/// The store to consult: `--database-url`, else `<data_dir>/tradeloom.db` when it exists (a
/// missing default database is not created just to find nothing in it).
async fn maybe_store(
    data_dir: &Path,
    database_url: Option<&str>,
) -> Result<Option<Arc<dyn Store>>> {
    let location = match database_url {
        Some(url) => url.to_string(),
        None => {
            let path = data_dir.join("tradeloom.db");
            if !path.is_file() {
                return Ok(None);
            }
            path.display().to_string()
        }
    };
    let store = open_store(&location)
        .await
        .with_context(|| format!("cannot open the store at {location}"))?;
    Ok(Some(store))
}

pub fn run(data_dir: &Path, database_url: Option<&str>, id: &str, json: bool) -> Result<ExitCode> {
    let (result, path) = runtime()?.block_on(async {
        let store = maybe_store(data_dir, database_url).await?;
        let target = resolve(data_dir, id, store.as_deref()).await?;
        let (result, dir) = match target {
            Target::Run(dir) => {
                let result = match &store {
                    Some(store) => reconcile_run_with_store(&dir, store.as_ref()).await?,
                    None => reconcile_run(&dir)?,
                };
                (result, dir)
            }
            Target::Job(job_id) => {
                // resolve() finds jobs only in a store.
                let store = store.context("no job store")?;
                let result = reconcile_job(store.as_ref(), &job_id).await?;
                (result, job_result_dir(data_dir, &job_id))
            }
        };
        let path = result.write(&dir)?;
        anyhow::Ok((result, path))
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print!("{}", render_text(&result, &path));
    }
    Ok(if result.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
