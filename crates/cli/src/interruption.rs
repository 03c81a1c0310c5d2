//! On start, runs and simulation jobs whose process died are marked `interrupted` (see
//! [`tradeloom_runs::interruption`] and [`tradeloom_agents::interrupt_orphaned_jobs`]), so no
//! command lists a dead run as `running`. Each one is logged as a warning with its reason.

use std::path::Path;

use tradeloom_store::Store;

/// Marks the data dir's runs with a dead owner interrupted. Never fails the command: a data
/// dir that cannot be read is the command's own error to report.
pub fn sweep_runs(data_dir: &Path) {
    if let Err(e) = tradeloom_runs::mark_interrupted_runs(data_dir) {
        tracing::debug!(error = %e, "runs not checked for interruption");
    }
}

/// Marks the store's jobs with a dead owner interrupted (logged; errors too, not returned).
pub async fn sweep_jobs(store: &dyn Store) {
    if let Err(e) = tradeloom_agents::interrupt_orphaned_jobs(store).await {
        tracing::warn!(error = %e, "jobs not checked for interruption");
    }
}
