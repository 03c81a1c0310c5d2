//! Terminal text of what the API returns: a run with its nodes and pending approvals, a list
//! of runs, a list of approvals, registered agents and skills.

use tradeloom_core::table;

use crate::approval::ApprovalList;
use crate::definition::{DefinitionDetail, DefinitionKind, DefinitionList};
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

impl DefinitionList {
    /// A table of the agents or skills; `None` when there are none.
    pub fn table(&self) -> Option<String> {
        let rows: Vec<Vec<String>> = self
            .items
            .iter()
            .map(|d| {
                vec![
                    d.name.clone(),
                    d.latest_version.to_string(),
                    d.owner.clone(),
                    d.updated_at.clone(),
                ]
            })
            .collect();
        let header = ["name", "latest", "owner", "updated"];
        (!rows.is_empty()).then(|| table::render(&header, &rows))
    }
}

impl DefinitionDetail {
    /// The version as text: who wrote it and when, how it stands among the versions, and its
    /// definition as pretty JSON (a file `update` reads back as it is).
    pub fn text(&self, kind: DefinitionKind) -> String {
        let latest = self.info.latest_version;
        let of = if self.version == latest {
            format!("{} of {latest} (the latest)", self.version)
        } else {
            format!("{} of {latest}", self.version)
        };
        let written = self
            .versions
            .iter()
            .find(|v| v.version == self.version)
            .map_or_else(String::new, |v| format!(" at {}", v.created_at));
        let mut pairs = vec![
            (kind_label(kind), self.info.name.clone()),
            ("version", of),
            ("owner", self.info.owner.clone()),
            ("written by", format!("{}{written}", self.created_by)),
        ];
        let description = self.definition.get("description").and_then(|v| v.as_str());
        if let Some(d) = description.filter(|d| !d.is_empty()) {
            pairs.push(("description", d.to_string()));
        }
        if let Some(model) = self.definition.get("model") {
            let name = model.get("model").and_then(|v| v.as_str()).unwrap_or("?");
            let url = model
                .get("base_url")
                .and_then(|v| v.as_str())
                .unwrap_or("?");
            pairs.push(("model", format!("{name} at {url}")));
        }
        if let Some(tools) = self.definition.get("tools").and_then(|t| t.as_array()) {
            let tools: Vec<&str> = tools.iter().filter_map(|t| t.as_str()).collect();
            pairs.push(("tools", tools.join(", ")));
        }
        let mut out = table::pairs(&pairs);
        out.push_str("definition:\n");
        out.push_str(
            &serde_json::to_string_pretty(&self.definition)
                .unwrap_or_else(|_| self.definition.to_string()),
        );
        out.push('\n');
        out
    }

    /// A table of every version, oldest first, the latest marked.
    pub fn versions_table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .versions
            .iter()
            .map(|v| {
                let mut version = v.version.to_string();
                if v.version == self.info.latest_version {
                    version.push_str(" (latest)");
                }
                vec![version, v.created_by.clone(), v.created_at.clone()]
            })
            .collect();
        table::render(&["version", "written by", "created"], &rows)
    }
}

fn kind_label(kind: DefinitionKind) -> &'static str {
    match kind {
        DefinitionKind::Agent => "agent",
        DefinitionKind::Skill => "skill",
    }
}
