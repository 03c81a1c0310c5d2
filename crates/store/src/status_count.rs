//! Counts of stored rows by status, for `/metrics`: one `GROUP BY` per table on indexed status
//! columns, so a scrape costs four small queries whatever the number of jobs and runs.

/// `(status, rows)` pairs per table, sorted by status; statuses with no rows are absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusCounts {
    pub jobs: Vec<(String, u64)>,
    pub model_days: Vec<(String, u64)>,
    pub workflow_runs: Vec<(String, u64)>,
    pub workflow_nodes: Vec<(String, u64)>,
}
