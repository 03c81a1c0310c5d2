//! Warnings about a job's results, and where its run folder is.

use std::path::{Path, PathBuf};

use tradeloom_store::{Job, LeaderboardEntry, Store};

use crate::error::AgentError;

/// Warnings about a job's results that look normal but are not: a model that completed days
/// without calling a single tool did not trade on information (its days read like good days
/// of not trading). One line per such model.
pub fn tool_use_warnings(entries: &[LeaderboardEntry]) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e.completed_days > 0 && e.tool_calls == 0)
        .map(|e| {
            format!(
                "model `{}` made no tool call in its {} completed model-day(s): it never looked at \
                 prices or its portfolio and never traded; check that the model supports tool \
                 calling and that its endpoint passes `tools` through",
                e.model, e.completed_days
            )
        })
        .collect()
}

/// [`tool_use_warnings`] of `job`, read from the store.
pub async fn job_warnings(store: &dyn Store, job: &Job) -> Result<Vec<String>, AgentError> {
    let initial = crate::config::initial_value(&job.config, job.currency);
    Ok(tool_use_warnings(
        &store.leaderboard(&job.id, initial).await?,
    ))
}

/// Where a job's run folder is.
pub fn job_run_dir(data_dir: &Path, job_id: &str) -> PathBuf {
    crate::job_folder::job_dir(data_dir, job_id)
}
