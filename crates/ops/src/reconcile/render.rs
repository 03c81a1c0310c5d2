//! The text report of a [`Reconciliation`] for the terminal.

use std::path::Path;

use serde_json::Value;
use tradeloom_core::table;

use super::{Reconciliation, Subject};

/// Checks shown in full in the table; beyond this only the failed ones are listed.
const TABLE_LIMIT: usize = 60;

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "–".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A table of the checks (only the failed ones when there are more than 60) and a verdict line
/// naming the result file at `path`.
pub fn render_text(result: &Reconciliation, path: &Path) -> String {
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
                if c.skipped {
                    "skipped"
                } else if c.passed {
                    "ok"
                } else {
                    "MISMATCH"
                }
                .to_string(),
                cell(&c.expected),
                cell(&c.observed),
                cell(&c.difference),
            ]
        })
        .collect();
    let mut out = String::new();
    let kind = match &result.subject {
        Subject::RunId(id) => format!("run {id}"),
        Subject::JobId(id) => format!("job {id}"),
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
    for note in &result.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    let skipped = result.skipped().count();
    out.push_str(&format!(
        "\n{}: {} of {} checks passed{}; {}\n",
        if result.passed { "PASSED" } else { "FAILED" },
        result.checks.len() - failed - skipped,
        result.checks.len() - skipped,
        if skipped > 0 {
            format!(" ({skipped} skipped)")
        } else {
            String::new()
        },
        path.display()
    ));
    out
}
