//! metrics: the Prometheus text exposition format (version 0.0.4) — one renderer for counters,
//! gauges and histograms ([`Registry`]) and the one list of metric names tradeloom exports
//! ([`names`]). Plain data and string building: no I/O, no clock, no async, no tradeloom crate.
//!
//! Output is deterministic: families sorted by name, samples by their label sets.

pub mod exposition;
pub mod histogram;
pub mod names;
pub mod parse;

pub use exposition::{
    CONTENT_TYPE, MetricError, MetricKind, Registry, valid_label_name, valid_metric_name,
};
pub use histogram::{DURATION_SECONDS_BUCKETS, Histogram};
