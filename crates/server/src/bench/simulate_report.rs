//! The report of `tradeloom bench simulate`: the timed jobs and the HTTP load.

use serde_json::json;

use super::{HttpFigures, JobFigures};

/// What `tradeloom bench simulate` measured.
pub struct SimulateReport {
    pub models: usize,
    pub days: usize,
    pub symbols: usize,
    /// Concurrent connections of the HTTP measurement.
    pub concurrency: usize,
    pub jobs: Vec<JobFigures>,
    pub http: HttpFigures,
}

impl SimulateReport {
    /// Whether a model-day or a request failed.
    pub fn failed(&self) -> bool {
        self.jobs.iter().any(|j| j.failed > 0) || self.http.errors > 0
    }

    /// The figures as one JSON object.
    pub fn json(&self) -> serde_json::Value {
        let http = &self.http;
        json!({
            "models": self.models, "days": self.days, "symbols": self.symbols,
            "jobs": self.jobs.iter().map(|j| json!({
                "backend": j.backend, "model_days": j.model_days, "failed": j.failed,
                "seconds": j.seconds, "model_days_per_second": j.rate(),
            })).collect::<Vec<_>>(),
            "results_http": {
                "requests": http.requests, "errors": http.errors, "concurrency": self.concurrency,
                "requests_per_second": http.rate(),
                "p50_ms": http.p50.as_secs_f64() * 1e3, "p99_ms": http.p99.as_secs_f64() * 1e3,
                "max_ms": http.max.as_secs_f64() * 1e3,
            },
        })
    }

    /// One line per job and one for the HTTP load.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for j in &self.jobs {
            out.push_str(&format!(
                "simulate {:<8} {} model-days ({} failed) in {:.2} s: {:.1} model-days/s\n",
                j.backend,
                j.model_days,
                j.failed,
                j.seconds,
                j.rate()
            ));
        }
        let http = &self.http;
        out.push_str(&format!(
            "GET /results?detail=minimal  {} requests, {} connections, {} errors: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n",
            http.requests,
            self.concurrency,
            http.errors,
            http.rate(),
            http.p50.as_secs_f64() * 1e3,
            http.p99.as_secs_f64() * 1e3,
            http.max.as_secs_f64() * 1e3
        ));
        out
    }
}
