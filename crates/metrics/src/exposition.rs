//! The Prometheus text exposition format, version 0.0.4
//! (<https://prometheus.io/docs/instrumenting/exposition_formats/>).

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::Histogram;
use crate::names::{self, MetricName};

/// The `Content-Type` of a rendered [`Registry`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `# TYPE` of a metric family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

impl MetricKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// Why a sample was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetricError {
    #[error(
        "metric `{0}` is not in tradeloom_metrics::names::ALL; add it there (with its kind, help and labels) before exporting it"
    )]
    Unlisted(String),
    #[error("metric `{name}` is a {listed}, not a {used}")]
    Kind {
        name: String,
        listed: &'static str,
        used: &'static str,
    },
    #[error("metric `{name}` takes labels {expected:?}; got {got:?}")]
    Labels {
        name: String,
        expected: Vec<String>,
        got: Vec<String>,
    },
    #[error("counter `{name}` got {value}; a counter is finite and never negative")]
    Counter { name: String, value: f64 },
    #[error("invalid histogram buckets {0}")]
    Buckets(String),
}

/// Whether `name` matches `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `name` is a label name a user may set: `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with
/// the reserved `__`.
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    !name.starts_with("__")
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A label set in the listed label order (the order of [`MetricName::labels`]); equal sets
/// compare equal, and sets sort by their values.
type Labels = Vec<String>;

#[derive(Clone, Debug)]
enum Value {
    Scalar(f64),
    Histogram(Histogram),
}

/// Samples of the listed metrics, rendered sorted: families by name, samples by label values.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    families: BTreeMap<&'static str, (MetricName, BTreeMap<Labels, Value>)>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    fn slot(
        &mut self,
        metric: &MetricName,
        used: MetricKind,
        labels: &[(&str, &str)],
    ) -> Result<&mut BTreeMap<Labels, Value>, MetricError> {
        // Only listed metrics: the list is what dashboards are checked against.
        let listed = names::lookup(metric.name)
            .filter(|m| *m == metric)
            .ok_or_else(|| MetricError::Unlisted(metric.name.to_string()))?;
        if listed.kind != used {
            return Err(MetricError::Kind {
                name: listed.name.to_string(),
                listed: listed.kind.as_str(),
                used: used.as_str(),
            });
        }
        let names_given: Vec<&str> = labels.iter().map(|(k, _)| *k).collect();
        if names_given != listed.labels {
            return Err(MetricError::Labels {
                name: listed.name.to_string(),
                expected: listed.labels.iter().map(|s| s.to_string()).collect(),
                got: names_given.iter().map(|s| s.to_string()).collect(),
            });
        }
        Ok(&mut self
            .families
            .entry(listed.name)
            .or_insert_with(|| (*listed, BTreeMap::new()))
            .1)
    }

    /// Adds `by` to a counter (created at 0). Labels in the listed order.
    pub fn counter(
        &mut self,
        metric: &MetricName,
        labels: &[(&str, &str)],
        by: f64,
    ) -> Result<(), MetricError> {
        if !by.is_finite() || by < 0.0 {
            return Err(MetricError::Counter {
                name: metric.name.to_string(),
                value: by,
            });
        }
        let key = label_values(labels);
        let samples = self.slot(metric, MetricKind::Counter, labels)?;
        match samples.entry(key).or_insert(Value::Scalar(0.0)) {
            Value::Scalar(v) => *v += by,
            // A counter family only ever holds scalars (kind checked above).
            Value::Histogram(_) => unreachable!("counter family holds a histogram"),
        }
        Ok(())
    }

    /// Sets a gauge. Labels in the listed order.
    pub fn gauge(
        &mut self,
        metric: &MetricName,
        labels: &[(&str, &str)],
        value: f64,
    ) -> Result<(), MetricError> {
        let key = label_values(labels);
        self.slot(metric, MetricKind::Gauge, labels)?
            .insert(key, Value::Scalar(value));
        Ok(())
    }

    /// Sets a histogram's buckets, sum and count. Labels in the listed order.
    pub fn histogram(
        &mut self,
        metric: &MetricName,
        labels: &[(&str, &str)],
        histogram: &Histogram,
    ) -> Result<(), MetricError> {
        let key = label_values(labels);
        self.slot(metric, MetricKind::Histogram, labels)?
            .insert(key, Value::Histogram(histogram.clone()));
        Ok(())
    }

    /// The exposition text: per family `# HELP`, `# TYPE`, then its samples.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (metric, samples) in self.families.values() {
            out.push_str("# HELP ");
            out.push_str(metric.name);
            out.push(' ');
            escape_help(&mut out, metric.help);
            out.push_str("\n# TYPE ");
            out.push_str(metric.name);
            out.push(' ');
            out.push_str(metric.kind.as_str());
            out.push('\n');
            for (values, value) in samples {
                let pairs: Vec<(&str, &str)> = metric
                    .labels
                    .iter()
                    .copied()
                    .zip(values.iter().map(String::as_str))
                    .collect();
                match value {
                    Value::Scalar(v) => sample(&mut out, metric.name, "", &pairs, None, *v),
                    Value::Histogram(h) => {
                        for (le, count) in h.cumulative() {
                            sample(
                                &mut out,
                                metric.name,
                                "_bucket",
                                &pairs,
                                Some(&float(le)),
                                count as f64,
                            );
                        }
                        let count = h.count() as f64;
                        sample(
                            &mut out,
                            metric.name,
                            "_bucket",
                            &pairs,
                            Some("+Inf"),
                            count,
                        );
                        sample(&mut out, metric.name, "_sum", &pairs, None, h.sum());
                        sample(&mut out, metric.name, "_count", &pairs, None, count);
                    }
                }
            }
        }
        out
    }
}

fn label_values(labels: &[(&str, &str)]) -> Labels {
    labels.iter().map(|(_, v)| v.to_string()).collect()
}

fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(&str, &str)],
    le: Option<&str>,
    value: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    let all = labels.iter().copied().chain(le.map(|le| ("le", le)));
    let mut first = true;
    for (k, v) in all {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        escape_label_value(out, v);
        out.push('"');
    }
    if !first {
        out.push('}');
    }
    out.push(' ');
    out.push_str(&float(value));
    out.push('\n');
}

/// A sample value or `le` bound: Go's `ParseFloat` syntax; `+Inf`, `-Inf`, `NaN` spelled as
/// Prometheus does, and integers without a fraction.
fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        // `Display` of f64 is the shortest text that parses back to the same value.
        let mut s = String::new();
        let _ = write!(s, "{v}");
        s
    }
}

/// Label values escape backslash, double quote and line feed.
fn escape_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// `# HELP` text escapes backslash and line feed.
fn escape_help(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{
        HTTP_REQUEST_DURATION_SECONDS, HTTP_REQUESTS_TOTAL, JOBS, PROCESS_UPTIME_SECONDS,
        RUN_FINAL_EQUITY,
    };

    #[test]
    fn validates_names() {
        for good in ["a", "_x", "a:b_c9", ":x"] {
            assert!(valid_metric_name(good), "{good}");
        }
        for bad in ["", "9a", "a-b", "a b", "é"] {
            assert!(!valid_metric_name(bad), "{bad}");
        }
        assert!(valid_label_name("run_id"));
        for bad in ["", "__name", "a:b", "1a"] {
            assert!(!valid_label_name(bad), "{bad}");
        }
    }

    #[test]
    fn escapes_label_values_and_help() {
        let mut r = Registry::new();
        r.gauge(
            &RUN_FINAL_EQUITY,
            &[
                ("run_id", "a\\b"),
                ("name", "say \"hi\"\nbye"),
                ("currency", "USD"),
            ],
            1.5,
        )
        .unwrap();
        let text = r.render();
        assert!(
            text.contains(
                "tradeloom_run_final_equity{run_id=\"a\\\\b\",name=\"say \\\"hi\\\"\\nbye\",currency=\"USD\"} 1.5\n"
            ),
            "{text}"
        );
        let mut help = String::new();
        escape_help(&mut help, "a\\b\nc \"q\"");
        assert_eq!(help, "a\\\\b\\nc \"q\"");
    }

    #[test]
    fn output_is_sorted_whatever_the_insertion_order() {
        let mut a = Registry::new();
        a.gauge(&PROCESS_UPTIME_SECONDS, &[], 3.0).unwrap();
        a.gauge(&JOBS, &[("status", "running")], 1.0).unwrap();
        a.gauge(&JOBS, &[("status", "completed")], 2.0).unwrap();
        let mut b = Registry::new();
        b.gauge(&JOBS, &[("status", "completed")], 2.0).unwrap();
        b.gauge(&JOBS, &[("status", "running")], 1.0).unwrap();
        b.gauge(&PROCESS_UPTIME_SECONDS, &[], 3.0).unwrap();
        assert_eq!(a.render(), b.render());
        assert_eq!(
            a.render(),
            "# HELP tradeloom_jobs Simulation jobs in the store, by status.\n\
             # TYPE tradeloom_jobs gauge\n\
             tradeloom_jobs{status=\"completed\"} 2\n\
             tradeloom_jobs{status=\"running\"} 1\n\
             # HELP tradeloom_process_uptime_seconds Seconds since this tradeloom process started serving.\n\
             # TYPE tradeloom_process_uptime_seconds gauge\n\
             tradeloom_process_uptime_seconds 3\n"
        );
    }

    #[test]
    fn renders_histogram_buckets_sum_count_and_inf() {
        let mut h = Histogram::new(&[0.005, 0.1]).unwrap();
        for v in [0.001, 0.004, 0.05, 2.0] {
            h.observe(v);
        }
        let mut r = Registry::new();
        r.histogram(
            &HTTP_REQUEST_DURATION_SECONDS,
            &[("method", "GET"), ("route", "/health")],
            &h,
        )
        .unwrap();
        let text = r.render();
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            samples,
            vec![
                "tradeloom_http_request_duration_seconds_bucket{method=\"GET\",route=\"/health\",le=\"0.005\"} 2",
                "tradeloom_http_request_duration_seconds_bucket{method=\"GET\",route=\"/health\",le=\"0.1\"} 3",
                "tradeloom_http_request_duration_seconds_bucket{method=\"GET\",route=\"/health\",le=\"+Inf\"} 4",
                "tradeloom_http_request_duration_seconds_sum{method=\"GET\",route=\"/health\"} 2.055",
                "tradeloom_http_request_duration_seconds_count{method=\"GET\",route=\"/health\"} 4",
            ]
        );
        assert!(text.contains("# TYPE tradeloom_http_request_duration_seconds histogram\n"));
    }

    #[test]
    fn counters_accumulate_and_refuse_bad_values() {
        let mut r = Registry::new();
        let labels = [("method", "GET"), ("route", "/x"), ("status", "200")];
        r.counter(&HTTP_REQUESTS_TOTAL, &labels, 1.0).unwrap();
        r.counter(&HTTP_REQUESTS_TOTAL, &labels, 2.0).unwrap();
        assert!(
            r.render()
                .contains("{method=\"GET\",route=\"/x\",status=\"200\"} 3\n")
        );
        assert!(r.counter(&HTTP_REQUESTS_TOTAL, &labels, -1.0).is_err());
        assert!(r.counter(&HTTP_REQUESTS_TOTAL, &labels, f64::NAN).is_err());
    }

    #[test]
    fn refuses_unlisted_metrics_wrong_kinds_and_labels() {
        let mut r = Registry::new();
        let made_up = MetricName {
            name: "tradeloom_made_up",
            kind: MetricKind::Gauge,
            help: "x",
            labels: &[],
        };
        assert_eq!(
            r.gauge(&made_up, &[], 1.0),
            Err(MetricError::Unlisted("tradeloom_made_up".into()))
        );
        assert!(matches!(
            r.counter(&JOBS, &[("status", "x")], 1.0),
            Err(MetricError::Kind { .. })
        ));
        assert!(matches!(
            r.gauge(&JOBS, &[("state", "x")], 1.0),
            Err(MetricError::Labels { .. })
        ));
    }

    #[test]
    fn special_floats() {
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(float(f64::NAN), "NaN");
        assert_eq!(float(0.0000001), "0.0000001");
        assert_eq!(float(100250.75), "100250.75");
    }
}
