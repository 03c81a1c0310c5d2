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

pub const RUN_INFO: MetricName = metric(
    "tradeloom_run_info",
    MetricKind::Gauge,
    "1 per run folder, labelled with its name, strategy and status (metadata.json).",
    &["run_id", "name", "strategy", "status"],
);
pub const RUN_ORDER_REJECTIONS_TOTAL: MetricName = metric(
    "tradeloom_run_order_rejections_total",
    MetricKind::Counter,
    "Rejected orders of a run by rejection code, e.g. `risk.kill_switch` (journal `order_rejected`).",
    &["run_id", "name", "code"],
);
pub const SCAN_TO_ORDER_SECONDS: MetricName = metric(
    "tradeloom_scan_to_order_seconds",
    MetricKind::Histogram,
    "Seconds from a scan file's observation by the bridge to the first order accepted while processing it (paper runs fed by scans, in this process).",
    &["run_id", "name"],
);
pub const CONNECTIVITY_READY: MetricName = metric(
    "tradeloom_connectivity_ready",
    MetricKind::Gauge,
    "1 if every required environment variable of a provider is set (connectivity_readiness.json of a run or job folder), else 0.",
    &["run_id", "provider"],
);
pub const CONNECTIVITY_PROBE_UP: MetricName = metric(
    "tradeloom_connectivity_probe_up",
    MetricKind::Gauge,
    "1 if the loopback probe of an endpoint succeeded (connectivity_probe.json of a run or job folder), else 0.",
    &["run_id", "endpoint"],
);
pub const CONNECTIVITY_PROBE_LATENCY_SECONDS: MetricName = metric(
    "tradeloom_connectivity_probe_latency_seconds",
    MetricKind::Gauge,
    "Round-trip time of the loopback probe of an endpoint (connectivity_probe.json), when it answered.",
    &["run_id", "endpoint"],
);

// ---- operations: kill switch and meta health (files under the data dir) ----------------------

pub const KILL_SWITCH_ENGAGED: MetricName = metric(
    "tradeloom_kill_switch_engaged",
    MetricKind::Gauge,
    "1 while the kill switch of a scope (`global`, `run:<id>`, `job:<id>`) is engaged, else 0.",
    &["scope"],
);
pub const HEALTH_RM_META: MetricName = metric(
    "tradeloom_health_rm_meta",
    MetricKind::Gauge,
    "The meta health score rm_meta in [0, 1], the product of the five sensors (health/meta_health.json).",
    &[],
);
pub const HEALTH_SENSOR: MetricName = metric(
    "tradeloom_health_sensor",
    MetricKind::Gauge,
    "One meta health sensor in [0, 1] (m1_process, m2_heartbeat, m3_data_freshness, m4_control_plane, m5_coherence).",
    &["sensor"],
);
pub const HEALTH_STATUS: MetricName = metric(
    "tradeloom_health_status",
    MetricKind::Gauge,
    "1 for the current meta health status (GREEN, DEGRADED, CRITICAL, DEAD), 0 for the others.",
    &["status"],
);
pub const HEALTH_CHECKED_TIMESTAMP_SECONDS: MetricName = metric(
    "tradeloom_health_checked_timestamp_seconds",
    MetricKind::Gauge,
    "Unix time of the latest meta health check (its checked_at).",
    &[],
);

// ---- the serving process: work queue and LLM calls -------------------------------------------

pub const QUEUE_DEPTH: MetricName = metric(
    "tradeloom_queue_depth",
    MetricKind::Gauge,
    "Tasks of a workflow queue pool waiting to be delivered (ready now or delayed).",
    &["pool"],
);
pub const QUEUE_LEASED: MetricName = metric(
    "tradeloom_queue_leased",
    MetricKind::Gauge,
    "Tasks of a workflow queue pool held by a worker under an unexpired lease.",
    &["pool"],
);
pub const QUEUE_DEAD_LETTERS: MetricName = metric(
    "tradeloom_queue_dead_letters",
    MetricKind::Gauge,
    "Tasks of a workflow queue pool given up on after their last attempt.",
    &["pool"],
);
pub const RATE_LIMIT_LOCAL_FALLBACKS_TOTAL: MetricName = metric(
    "tradeloom_rate_limit_local_fallbacks_total",
    MetricKind::Counter,
    "Rate-limit checks of this process decided on its own buckets because the Redis holding the shared budgets did not answer (present when the limits are shared).",
    &[],
);
pub const LLM_REQUESTS_TOTAL: MetricName = metric(
    "tradeloom_llm_requests_total",
    MetricKind::Counter,
    "Chat-completion calls of this process (retries included in one call), by model and outcome (ok, http_error, timeout, transport, decode, config).",
    &["model", "outcome"],
);
pub const LLM_RETRIES_TOTAL: MetricName = metric(
    "tradeloom_llm_retries_total",
    MetricKind::Counter,
    "HTTP attempts of chat-completion calls beyond the first, by model.",
    &["model"],
);
pub const LLM_TOKENS_TOTAL: MetricName = metric(
    "tradeloom_llm_tokens_total",
    MetricKind::Counter,
    "Tokens the provider reported for successful chat-completion calls, by model and kind (prompt, completion).",
    &["model", "kind"],
);
pub const LLM_REQUEST_DURATION_SECONDS: MetricName = metric(
    "tradeloom_llm_request_duration_seconds",
    MetricKind::Histogram,
    "Time of a chat-completion call including retries and back-off, by model.",
    &["model"],
);

/// Every exported metric, sorted by name.
pub const ALL: &[MetricName] = &[
    CONNECTIVITY_PROBE_LATENCY_SECONDS,
    CONNECTIVITY_PROBE_UP,
    CONNECTIVITY_READY,
    HEALTH_CHECKED_TIMESTAMP_SECONDS,
    HEALTH_RM_META,
    HEALTH_SENSOR,
    HEALTH_STATUS,
    HTTP_REQUEST_DURATION_SECONDS,
    HTTP_REQUESTS_TOTAL,
    JOBS,
    KILL_SWITCH_ENGAGED,
    LLM_REQUEST_DURATION_SECONDS,
    LLM_REQUESTS_TOTAL,
    LLM_RETRIES_TOTAL,
    LLM_TOKENS_TOTAL,
    MODEL_DAYS,
    PROCESS_UPTIME_SECONDS,
    QUEUE_DEAD_LETTERS,
    QUEUE_DEPTH,
    QUEUE_LEASED,
    RATE_LIMIT_LOCAL_FALLBACKS_TOTAL,
    RUN_BARS_TOTAL,
    RUN_FILLS_TOTAL,
    RUN_FINAL_EQUITY,
    RUN_INFO,
    RUN_ORDER_REJECTIONS_TOTAL,
    RUN_ORDERS_TOTAL,
    RUN_REJECTED_ORDERS_TOTAL,
    RUNS,
    SCAN_TO_ORDER_SECONDS,
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
