//! Every metric tradeloom exports, in one list. [`crate::Registry`] refuses a name that is not
//! here, and the Grafana dashboard test checks its queries against it, so neither can drift.
//!
//! Conventions (<https://prometheus.io/docs/practices/naming/>): the `tradeloom_` prefix, base
//! units in the name (`_seconds`), `_total` on counters, no unit suffix on counts of things in a
//! state (gauges such as `tradeloom_jobs{status="running"}`).

use crate::MetricKind;

/// A metric tradeloom exports: its name, kind, `# HELP` text and label names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricName {
    pub name: &'static str,
    pub kind: MetricKind,
    pub help: &'static str,
    /// The label names every sample carries (besides `le` on histogram buckets).
    pub labels: &'static [&'static str],
}

const fn metric(
    name: &'static str,
    kind: MetricKind,
    help: &'static str,
    labels: &'static [&'static str],
) -> MetricName {
    MetricName {
        name,
        kind,
        help,
        labels,
    }
}

// ---- the API (`tradeloom serve`, `GET /metrics`) ---------------------------------------------

pub const HTTP_REQUESTS_TOTAL: MetricName = metric(
    "tradeloom_http_requests_total",
    MetricKind::Counter,
    "HTTP requests answered, by method, matched route and status code.",
    &["method", "route", "status"],
);
pub const HTTP_REQUEST_DURATION_SECONDS: MetricName = metric(
    "tradeloom_http_request_duration_seconds",
    MetricKind::Histogram,
    "Time from receiving an HTTP request to its response head, by method and matched route.",
    &["method", "route"],
);
pub const JOBS: MetricName = metric(
    "tradeloom_jobs",
    MetricKind::Gauge,
    "Simulation jobs in the store, by status.",
    &["status"],
);
pub const MODEL_DAYS: MetricName = metric(
    "tradeloom_model_days",
    MetricKind::Gauge,
    "Model-days of all simulation jobs in the store, by status.",
    &["status"],
);
pub const WORKFLOW_RUNS: MetricName = metric(
    "tradeloom_workflow_runs",
    MetricKind::Gauge,
    "Workflow runs in the store, by status.",
    &["status"],
);
pub const WORKFLOW_NODES: MetricName = metric(
    "tradeloom_workflow_nodes",
    MetricKind::Gauge,
    "Nodes of all workflow runs in the store, by node status.",
    &["status"],
);
pub const PROCESS_UPTIME_SECONDS: MetricName = metric(
    "tradeloom_process_uptime_seconds",
    MetricKind::Gauge,
    "Seconds since this tradeloom process started serving.",
    &[],
);

// ---- run folders (`tradeloom metrics export|serve`) ------------------------------------------

pub const RUNS: MetricName = metric(
    "tradeloom_runs",
    MetricKind::Gauge,
    "Run folders under the data dir, by status.",
    &["status"],
);
pub const RUN_BARS_TOTAL: MetricName = metric(
    "tradeloom_run_bars_total",
    MetricKind::Counter,
    "Bars a run processed (metrics.json `bars`).",
    &["run_id", "name"],
);
pub const RUN_ORDERS_TOTAL: MetricName = metric(
    "tradeloom_run_orders_total",
    MetricKind::Counter,
    "Orders a run submitted (metrics.json `orders`).",
    &["run_id", "name"],
);
pub const RUN_FILLS_TOTAL: MetricName = metric(
    "tradeloom_run_fills_total",
    MetricKind::Counter,
    "Fills of a run (rows of fills.csv).",
    &["run_id", "name"],
);
pub const RUN_REJECTED_ORDERS_TOTAL: MetricName = metric(
    "tradeloom_run_rejected_orders_total",
    MetricKind::Counter,
    "Orders of a run the venue or risk checks rejected (metrics.json `rejected_orders`).",
    &["run_id", "name"],
);
pub const RUN_FINAL_EQUITY: MetricName = metric(
    "tradeloom_run_final_equity",
    MetricKind::Gauge,
    "Equity at the end of a run, in units of its account currency (metrics.json `final_equity`).",
    &["run_id", "name", "currency"],
);

// ---- reserved ----------------------------------------------------------------------------------
// Queue depth, LLM calls/tokens/errors/latency, kill switch state and health sensors are added
// here (and to `ALL`) by the issues that export them; the dashboard test then accepts them.

/// Every exported metric, sorted by name.
pub const ALL: &[MetricName] = &[
    HTTP_REQUEST_DURATION_SECONDS,
    HTTP_REQUESTS_TOTAL,
    JOBS,
    MODEL_DAYS,
    PROCESS_UPTIME_SECONDS,
    RUN_BARS_TOTAL,
    RUN_FILLS_TOTAL,
    RUN_FINAL_EQUITY,
    RUN_ORDERS_TOTAL,
    RUN_REJECTED_ORDERS_TOTAL,
    RUNS,
    WORKFLOW_NODES,
    WORKFLOW_RUNS,
];

/// The listed metric called `name`.
pub fn lookup(name: &str) -> Option<&'static MetricName> {
    ALL.iter().find(|m| m.name == name)
}

/// The names a PromQL query may use for the listed metrics: each name, plus `_bucket`, `_sum`
/// and `_count` of histograms.
pub fn series_names() -> Vec<String> {
    let mut names = Vec::new();
    for m in ALL {
        names.push(m.name.to_string());
        if m.kind == MetricKind::Histogram {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.push(format!("{}{suffix}", m.name));
            }
        }
    }
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{valid_label_name, valid_metric_name};

    #[test]
    fn every_listed_name_follows_the_conventions() {
        let mut previous = "";
        for m in ALL {
            assert!(valid_metric_name(m.name), "{}", m.name);
            assert!(m.name.starts_with("tradeloom_"), "{}", m.name);
            assert!(m.name > previous, "ALL not sorted/unique at {}", m.name);
            previous = m.name;
            match m.kind {
                MetricKind::Counter => assert!(m.name.ends_with("_total"), "{}", m.name),
                MetricKind::Histogram => assert!(m.name.ends_with("_seconds"), "{}", m.name),
                MetricKind::Gauge => assert!(!m.name.ends_with("_total"), "{}", m.name),
            }
            for l in m.labels {
                assert!(valid_label_name(l) && *l != "le", "{}: label {l}", m.name);
            }
            assert!(!m.help.is_empty());
        }
        assert_eq!(lookup("tradeloom_jobs"), Some(&JOBS));
        assert_eq!(lookup("tradeloom_nope"), None);
        assert!(series_names().contains(&"tradeloom_http_request_duration_seconds_bucket".into()));
    }
}
