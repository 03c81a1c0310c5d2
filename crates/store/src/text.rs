//! Terminal text of what the store returns: a job's report, a page of results, the migrations.

use tradeloom_core::table;

use crate::api_key::ApiKey;
use crate::job::JobReport;
use crate::migration::MigrationInfo;
use crate::results::ResultsPage;

impl JobReport {
    /// The job's status and progress, its error if any, and a table of its model-days.
    pub fn text(&self) -> String {
        let job = &self.job;
        let p = &self.progress;
        let mut out = format!(
            "job {}  {}\n  {} model-days: {} completed, {} failed, {} refused, {} running, {} pending\n",
            job.id,
            job.status,
            p.total_model_days,
            p.completed,
            p.failed,
            p.refused,
            p.running,
            p.pending
        );
        if let Some(e) = &job.error {
            out.push_str(&format!("  error: {e}\n"));
        }
        let rows: Vec<Vec<String>> = self
            .model_days
            .iter()
            .map(|d| {
                vec![
                    d.date.to_string(),
                    d.model.clone(),
                    d.status.as_str().to_string(),
                    d.portfolio_value.map_or("–".into(), |v| v.to_string()),
                    d.duration_ms.map_or("–".into(), |ms| format!("{ms} ms")),
                    d.error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        out.push_str(&table::render(
            &["date", "model", "status", "value", "took", "error"],
            &rows,
        ));
        out
    }
}

impl ResultsPage {
    /// A table of the model-days with their holdings, and a note when not all are shown.
    pub fn text(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .items
            .iter()
            .map(|i| {
                let d = &i.model_day;
                let holdings: Vec<String> = i
                    .holdings
                    .iter()
                    .map(|h| format!("{} {}", h.quantity, h.symbol))
                    .collect();
                vec![
                    d.date.to_string(),
                    d.model.clone(),
                    d.cash.map_or("–".into(), |c| c.to_string()),
                    d.portfolio_value.map_or("–".into(), |v| v.to_string()),
                    i.trades.to_string(),
                    holdings.join(", "),
                ]
            })
            .collect();
        let mut out = table::render(
            &["date", "model", "cash", "value", "trades", "holdings"],
            &rows,
        );
        if self.total > self.items.len() as u64 {
            out.push_str(&format!(
                "({} of {} shown; raise --limit or filter by --job/--model/--date)\n",
                self.items.len(),
                self.total
            ));
        }
        out
    }
}

/// A table of the migrations: version, description and state.
pub fn migrations_text(status: &[MigrationInfo]) -> String {
    let rows: Vec<Vec<String>> = status
        .iter()
        .map(|m| {
            vec![
                m.version.to_string(),
                m.description.clone(),
                format!("{:?}", m.state).to_lowercase(),
            ]
        })
        .collect();
    table::render(&["version", "migration", "state"], &rows)
}

impl ApiKey {
    /// The key as JSON for the terminal and scripts: id, name, role, prefix and times (never
    /// the secret or its hash).
    pub fn summary_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "prefix": self.prefix,
            "max_concurrent_runs": self.max_concurrent_runs,
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
            "revoked_at": self.revoked_at,
        })
    }

    /// The key's times as `YYYY-MM-DD HH:MM:SS` (UTC), `–` when unset.
    fn times(&self) -> [String; 3] {
        [Some(self.created_at), self.last_used_at, self.revoked_at].map(|t| {
            t.map_or("–".to_string(), |t| {
                t.format("%Y-%m-%d %H:%M:%S").to_string()
            })
        })
    }
}

/// A table of API keys (never the secrets): id, name, role, prefix, times and status.
pub fn api_keys_table(keys: &[ApiKey]) -> String {
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            let [created, used, revoked] = k.times();
            vec![
                k.id.clone(),
                k.name.clone(),
                k.role.to_string(),
                format!("{}…", k.prefix),
                created,
                used,
                if k.is_revoked() {
                    format!("revoked {revoked}")
                } else {
                    "active".to_string()
                },
            ]
        })
        .collect();
    table::render(
        &[
            "id",
            "name",
            "role",
            "key",
            "created",
            "last used",
            "status",
        ],
        &rows,
    )
}
