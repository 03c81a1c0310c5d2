//! The report of `tradeloom bench simulate`: the timed jobs.

use serde_json::json;

use super::JobFigures;

/// What `tradeloom bench simulate` measured.
pub struct SimulateReport {
    pub models: usize,
    pub days: usize,
    pub symbols: usize,
    pub jobs: Vec<JobFigures>,
}

impl SimulateReport {
    /// Whether a model-day failed.
    pub fn failed(&self) -> bool {
        self.jobs.iter().any(|j| j.failed > 0)
    }

    /// The figures as one JSON object.
    pub fn json(&self) -> serde_json::Value {
        json!({
            "models": self.models, "days": self.days, "symbols": self.symbols,
            "jobs": self.jobs.iter().map(|j| json!({
                "backend": j.backend, "model_days": j.model_days, "failed": j.failed,
                "seconds": j.seconds, "model_days_per_second": j.rate(),
                "cpu_seconds": j.cpu_seconds, "cpu_ms_per_model_day": j.cpu_ms_per_model_day(),
            })).collect::<Vec<_>>(),
        })
    }

    /// One line per job.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for j in &self.jobs {
            out.push_str(&format!(
                "simulate {:<8} {} model-days ({} failed) in {:.2} s: {:.1} model-days/s, {:.2} CPU-ms per model-day (this process)\n",
                j.backend,
                j.model_days,
                j.failed,
                j.seconds,
                j.rate(),
                j.cpu_ms_per_model_day()
            ));
        }
        out
    }
}
