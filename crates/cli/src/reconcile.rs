//! `tradeloom reconcile RUN_ID|JOB_ID`: recompute the books of a backtest run or a simulation
//! job and compare them with what was reported and stored (crate `tradeloom-ops`).
//!
//! Exit codes: 0 every check passed, 1 any mismatch, 2 an error (unknown id, a missing or
//! unreadable file, a malformed journal line — the message names the file and line).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::Value;
use tradeloom_ops::reconcile::{
    Reconciliation, Target, job_result_dir, reconcile_job, reconcile_run, reconcile_run_with_store,
    resolve,
};
use tradeloom_store::{Store, open_store};

use crate::store::runtime;
use crate::table;

/// Checks shown in full in the table; beyond this only the failed ones are listed.
const TABLE_LIMIT: usize = 60;

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
        print!("{}", render(&result, &path));
    }
    Ok(if result.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "–".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn render(result: &Reconciliation, path: &Path) -> String {
    let failed = result.failed().count();
    let shown: Vec<_> = if result.checks.len() <= TABLE_LIMIT {
        result.checks.iter().collect()
    } else {
        result.failed().collect()
    };
    let rows: Vec<Vec<String>> = shown
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                if c.passed { "ok" } else { "MISMATCH" }.to_string(),
                cell(&c.expected),
                cell(&c.observed),
                cell(&c.difference),
            ]
        })
        .collect();
    let mut out = String::new();
    let kind = match &result.subject {
        tradeloom_ops::reconcile::Subject::RunId(id) => format!("run {id}"),
        tradeloom_ops::reconcile::Subject::JobId(id) => format!("job {id}"),
    };
    out.push_str(&format!("Reconciliation of {kind}\n\n"));
    if !rows.is_empty() {
        out.push_str(&table::render(
            &["CHECK", "RESULT", "EXPECTED", "OBSERVED", "DIFFERENCE"],
            &rows,
        ));
    }
    if shown.len() < result.checks.len() {
        out.push_str(&format!(
            "({} passing checks not listed; all are in the result file)\n",
            result.checks.len() - shown.len()
        ));
    }
    out.push_str(&format!(
        "\n{}: {} of {} checks passed; {}\n",
        if result.passed { "PASSED" } else { "FAILED" },
        result.checks.len() - failed,
        result.checks.len(),
        path.display()
    ));
    out
}
