//! Terminal text of what the API returns: a run with its nodes and pending approvals, a list
//! of runs, a list of approvals.

use tradeloom_core::table;

use crate::approval::ApprovalList;
use crate::run::{RunList, RunView};

impl RunView {
    /// The run as text: summary, node table, and the pending approvals with the commands that
    /// decide them (`api_flag` is appended to each, e.g. ` --api http://host:8080`).
    pub fn text(&self, api_flag: &str) -> String {
        let mut out = String::new();
        let mut pairs = vec![
            ("run", self.run_id.clone()),
            (
                "workflow",
                format!(
                    "{} (id {}, version {})",
                    self.workflow_name, self.workflow_id, self.workflow_version
                ),
            ),
            ("status", self.status.to_string()),
            (
                "IR",
                format!("version {} ({})", self.ir_version, self.ir_hash),
            ),
        ];
        if !self.patches.is_empty() {
            pairs.push(("patches", self.patches.len().to_string()));
        }
        let error = self.error.clone().unwrap_or_default();
        if !error.is_empty() {
            pairs.push(("error", error));
        }
        out.push_str(&table::pairs(&pairs));
        let rows: Vec<Vec<String>> = self
            .nodes
            .iter()
            .map(|n| {
                let mut status = n.status.to_string();
                if n.removed {
                    status.push_str(" (removed)");
                }
                vec![
                    n.id.clone(),
                    n.node_type.clone().unwrap_or_else(|| "-".to_string()),
                    status,
                    n.attempts.to_string(),
                    n.error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        out.push_str(&table::render(
            &["node", "type", "status", "attempts", "error"],
            &rows,
        ));
        let mut pending = self.pending_approvals().peekable();
        if pending.peek().is_some() {
            out.push_str("pending approvals:\n");
            for a in pending {
                let id = &a.id;
                out.push_str(&format!(
                    "  {id}  node {}: {}  (expires {}, then {})\n    tradeloom approve {id}{api_flag}\n    tradeloom reject {id}{api_flag}\n",
                    a.node_id, a.prompt, a.expires_at, a.default_decision,
                ));
            }
        }
        out
    }
}

impl RunList {
    /// A table of the runs; `None` when there are none.
    pub fn table(&self) -> Option<String> {
        let rows: Vec<Vec<String>> = self
            .runs
            .iter()
            .map(|r| {
                vec![
                    r.run_id.clone(),
                    r.workflow_id.clone(),
                    r.workflow_version.to_string(),
                    r.status.to_string(),
                    r.ir_version.to_string(),
                    r.created_at.clone(),
                    r.error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        let header = [
            "run", "workflow", "version", "status", "ir", "created", "error",
        ];
        (!rows.is_empty()).then(|| table::render(&header, &rows))
    }
}

impl ApprovalList {
    /// A table of the approvals; `None` when there are none.
    pub fn table(&self) -> Option<String> {
        let rows: Vec<Vec<String>> = self
            .approvals
            .iter()
            .map(|a| {
                vec![
                    a.id.clone(),
                    a.run_id.clone(),
                    a.node_id.clone(),
                    a.status.to_string(),
                    a.expires_at.clone(),
                    a.prompt.clone(),
                ]
            })
            .collect();
        let header = ["approval", "run", "node", "status", "expires", "prompt"];
        (!rows.is_empty()).then(|| table::render(&header, &rows))
    }
}
