//! Terminal text of runs: the summary of a finished run, the list of runs, one run's details
//! and the hash check of a run folder.

use std::path::{Path, PathBuf};

use tradeloom_core::table;
use tradeloom_engine::Metrics;

use crate::metadata::Metadata;
use crate::runner::RunOutcome;
use crate::verify::VerifyReport;

fn opt(x: Option<f64>, unit: &str) -> String {
    x.map_or("–".to_string(), |v| format!("{v:.2}{unit}"))
}

/// The headline figures of a run's metrics as `key  value` rows, money in `currency`.
pub fn metrics_rows(m: &Metrics, currency: &str) -> Vec<(&'static str, String)> {
    let day =
        |t: Option<tradeloom_core::UnixNanos>| t.map_or("–".to_string(), |t| t.date_string());
    vec![
        (
            "period",
            format!("{} → {} ({} bars)", day(m.start), day(m.end), m.bars),
        ),
        ("final equity", format!("{} {currency}", m.final_equity)),
        ("net pnl", format!("{} {currency}", m.net_pnl)),
        ("total return", format!("{:.2} %", m.total_return_pct)),
        ("cagr", opt(m.cagr_pct, " %")),
        ("sharpe", opt(m.sharpe, "")),
        ("sortino", opt(m.sortino, "")),
        (
            "max drawdown",
            format!(
                "{:.2} % ({:.0} days)",
                m.max_drawdown_pct, m.max_drawdown_duration_days
            ),
        ),
        (
            "trades",
            format!("{} (win rate {})", m.trades, opt(m.win_rate_pct, " %")),
        ),
        ("profit factor", opt(m.profit_factor, "")),
        ("fees", format!("{} {currency}", m.fees)),
        (
            "orders",
            format!(
                "{} ({} rejected), {} fills",
                m.orders, m.rejected_orders, m.fills
            ),
        ),
    ]
}

impl RunOutcome {
    /// The `key  value` summary of a completed run: name, folder, metrics, the kill switch when
    /// it halted the run, and the report's path.
    pub fn text(&self) -> String {
        let currency = self.metrics.initial_cash.currency().to_string();
        let mut rows = vec![("name", self.metadata.name.clone())];
        rows.push(("folder", self.run_dir.display().to_string()));
        rows.extend(metrics_rows(&self.metrics, &currency));
        if self.metadata.summary.as_ref().is_some_and(|s| s.halted) {
            rows.push((
                "kill switch",
                "ENGAGED (max drawdown breached; see journal)".to_string(),
            ));
        }
        rows.push((
            "report",
            self.run_dir.join("report.md").display().to_string(),
        ));
        table::pairs(&rows)
    }
}

fn summary_cells(meta: &Metadata) -> Vec<String> {
    let s = meta.summary.as_ref();
    vec![
        meta.run_id.clone(),
        meta.name.clone(),
        meta.status.as_str().to_string(),
        meta.created_at
            .get(..19)
            .unwrap_or(&meta.created_at)
            .replace('T', " "),
        meta.strategy.clone(),
        s.map_or("–".to_string(), |s| s.bars.to_string()),
        s.map_or("–".to_string(), |s| s.trades.to_string()),
        s.map_or("–".to_string(), |s| {
            format!("{:.2} %", s.total_return_pct)
        }),
    ]
}

/// A table of runs (as [`crate::list_runs`] returns them): id, name, status, creation time,
/// strategy, bars, trades and return.
pub fn runs_table(runs: &[(PathBuf, Metadata)]) -> String {
    let rows: Vec<Vec<String>> = runs.iter().map(|(_, m)| summary_cells(m)).collect();
    table::render(
        &[
            "RUN ID",
            "NAME",
            "STATUS",
            "CREATED (UTC)",
            "STRATEGY",
            "BARS",
            "TRADES",
            "RETURN",
        ],
        &rows,
    )
}

/// The figures `runs show` prints, read back from metrics.json.
#[derive(serde::Deserialize)]
struct MetricsView {
    final_equity: String,
    total_return_pct: f64,
    sharpe: Option<f64>,
    max_drawdown_pct: f64,
    trades: u64,
}

/// The `key  value` details of the run in `dir`: its metadata and, when `metrics` (the content
/// of metrics.json) has them, its headline figures.
pub fn run_details(dir: &Path, meta: &Metadata, metrics: Option<serde_json::Value>) -> String {
    let mut rows = vec![
        ("run id", meta.run_id.clone()),
        ("name", meta.name.clone()),
        ("status", meta.status.as_str().to_string()),
        ("folder", dir.display().to_string()),
        ("created", meta.created_at.clone()),
        ("strategy", meta.strategy.clone()),
        ("fill model", meta.fill_model.clone()),
        ("instruments", meta.instruments.join(", ")),
    ];
    if let Some(e) = &meta.error {
        rows.push(("error", e.clone()));
    }
    if let Some(m) = metrics.and_then(|v| serde_json::from_value::<MetricsView>(v).ok()) {
        rows.push(("final equity", m.final_equity));
        rows.push(("total return", format!("{:.2} %", m.total_return_pct)));
        rows.push(("sharpe", opt(m.sharpe, "")));
        rows.push(("max drawdown", format!("{:.2} %", m.max_drawdown_pct)));
        rows.push(("trades", m.trades.to_string()));
    }
    rows.push(("report", dir.join("report.md").display().to_string()));
    table::pairs(&rows)
}

impl VerifyReport {
    /// One line per checked file (`ok` or `MISMATCH` with what was found) and a verdict line.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let status = if c.ok { "ok" } else { "MISMATCH" };
            let detail = match (&c.actual, &c.error) {
                (_, Some(e)) => format!(" ({e})"),
                (Some(a), None) if !c.ok => format!(" (expected {}, found {a})", c.expected),
                _ => String::new(),
            };
            out.push_str(&format!("{status:>8}  {}{detail}\n", c.file));
        }
        let failures = self.failures().count();
        if failures == 0 {
            out.push_str(&format!(
                "run {}: all {} hashes match\n",
                self.run_id,
                self.checks.len()
            ));
        } else {
            out.push_str(&format!(
                "run {}: {failures} of {} hashes do not match\n",
                self.run_id,
                self.checks.len()
            ));
        }
        out
    }
}
