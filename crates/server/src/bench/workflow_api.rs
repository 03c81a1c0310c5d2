//! Diamond workflow runs submitted over the real HTTP API of a running `tradeloom serve`.
//!
//! The client records the wall-clock time just before each `POST /workflows/{id}/runs`; when
//! every run has finished it reads each run's `finished_at` (the server's clock: same machine)
//! from `GET /workflow-runs`, so submit → finished is measured without polling granularity.
//! The client waits for a run with the server's long poll (`GET /workflow-runs/{id}?wait_ms=`,
//! answered with the run's last commit), so it does not load the server while runs go on:
//! during a burst it waits for the oldest unfinished run only. A server without the long poll
//! answers at once and is polled (every 1 ms alone, 10 ms in a burst), as before.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::BenchError;

/// The definition every run executes: four `transform` nodes, a → b, c → d.
pub fn diamond_definition(name: &str) -> Value {
    json!({"name": name, "nodes": [
        {"id": "a", "type": "transform", "config": {"output": {"x": 1}}},
        {"id": "b", "type": "transform", "needs": ["a"], "config": {"output": {"b": "{{ a.x }}"}}},
        {"id": "c", "type": "transform", "needs": ["a"], "config": {"output": {"c": "{{ a.x }}"}}},
        {"id": "d", "type": "transform", "needs": ["b", "c"], "config": {"output": {"d": "{{ b.b }}"}}},
    ]})
}

/// A client of one server and the diamond workflow created on it.
pub struct DiamondApi {
    base: String,
    client: reqwest::Client,
    workflow_id: String,
}

/// Figures of a burst of runs.
pub struct BurstFigures {
    pub runs: usize,
    /// From the first submission to the last `finished_at`.
    pub wall: Duration,
    /// Wall time of the submissions alone (all `POST`s answered).
    pub submit_wall: Duration,
    /// Submit → finished of each run, sorted.
    pub latencies: Vec<Duration>,
}

impl BurstFigures {
    /// Runs finished per second.
    pub fn rate(&self) -> f64 {
        self.runs as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    pub fn p(&self, p: f64) -> Duration {
        percentile(&self.latencies, p)
    }
}

/// The nearest-rank percentile `p` (0–100) of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn http(e: reqwest::Error) -> BenchError {
    BenchError::Setup(format!("HTTP: {e}"))
}

impl DiamondApi {
    /// Creates the diamond workflow (named `name`) on the server at `base`
    /// (`http://127.0.0.1:PORT`).
    pub async fn create(base: &str, name: &str) -> Result<Self, BenchError> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .map_err(http)?;
        let response = client
            .post(format!("{base}/workflows"))
            .json(&diamond_definition(name))
            .send()
            .await
            .map_err(http)?;
        let status = response.status();
        let body: Value = response.json().await.map_err(http)?;
        let Some(id) = body["id"].as_str().filter(|_| status.is_success()) else {
            return Err(BenchError::Setup(format!(
                "POST /workflows answered {status}: {body}"
            )));
        };
        Ok(DiamondApi {
            base: base.to_string(),
            client,
            workflow_id: id.to_string(),
        })
    }

    /// Starts one run; its id.
    async fn submit(&self) -> Result<String, BenchError> {
        let response = self
            .client
            .post(format!("{}/workflows/{}/runs", self.base, self.workflow_id))
            .json(&json!({}))
            .send()
            .await
            .map_err(http)?;
        let status = response.status();
        let body: Value = response.json().await.map_err(http)?;
        match body["run_id"].as_str() {
            Some(id) if status.is_success() => Ok(id.to_string()),
            _ => Err(BenchError::Setup(format!(
                "POST /workflows/{}/runs answered {status}: {body}",
                self.workflow_id
            ))),
        }
    }

    /// The run's status and `finished_at`, once it has settled or after 10 s (the server's
    /// long poll, `wait_ms`; a server without it answers at once).
    async fn state(&self, run_id: &str) -> Result<(String, Option<DateTime<Utc>>), BenchError> {
        let body: Value = self
            .client
            .get(format!(
                "{}/workflow-runs/{run_id}?wait_ms=10000",
                self.base
            ))
            .send()
            .await
            .map_err(http)?
            .json()
            .await
            .map_err(http)?;
        let status = body["status"].as_str().unwrap_or("").to_string();
        Ok((status, finished_at(&body)))
    }

    /// Waits until run `run_id` has finished, asking again every `every` (after each long
    /// poll); its `finished_at`.
    async fn finished(&self, run_id: &str, every: Duration) -> Result<DateTime<Utc>, BenchError> {
        let started = Instant::now();
        loop {
            let (status, at) = self.state(run_id).await?;
            match (status.as_str(), at) {
                ("completed", Some(at)) => return Ok(at),
                ("failed" | "cancelled", _) => {
                    return Err(BenchError::RunEnded(
                        json!({"run_id": run_id, "status": status}),
                    ));
                }
                _ => {}
            }
            if started.elapsed() > Duration::from_secs(3600) {
                return Err(BenchError::GaveUp {
                    finished: 0,
                    runs: 1,
                });
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Runs one diamond at a time, `n` times; submit → finished of each, sorted.
    pub async fn alone(&self, n: usize) -> Result<Vec<Duration>, BenchError> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let submitted = SystemTime::now();
            let id = self.submit().await?;
            let at = self.finished(&id, Duration::from_millis(1)).await?;
            out.push(since(submitted, at));
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Submits `runs` runs over `connections` concurrent connections as fast as the server
    /// answers, waits until all have finished, and reads when each did.
    pub async fn burst(&self, runs: usize, connections: usize) -> Result<BurstFigures, BenchError> {
        let connections = connections.clamp(1, runs.max(1));
        let started = SystemTime::now();
        let clock = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for k in 0..connections {
            let me = DiamondApi {
                base: self.base.clone(),
                client: self.client.clone(),
                workflow_id: self.workflow_id.clone(),
            };
            let share = runs / connections + usize::from(k < runs % connections);
            tasks.spawn(async move {
                let mut submitted = Vec::with_capacity(share);
                for _ in 0..share {
                    let at = SystemTime::now();
                    submitted.push((me.submit().await?, at));
                }
                Ok::<_, BenchError>(submitted)
            });
        }
        let mut submitted: Vec<(String, SystemTime)> = Vec::with_capacity(runs);
        while let Some(joined) = tasks.join_next().await {
            submitted.extend(joined.map_err(BenchError::Panicked)??);
        }
        let submit_wall = clock.elapsed();
        submitted.sort_by_key(|(_, at)| *at);
        // Run ids are UUIDv7 (time-ordered), so the oldest unfinished run is a good probe.
        for (id, _) in &submitted {
            self.finished(id, Duration::from_millis(10)).await?;
        }
        let finished = self.finished_times(submitted.len()).await?;
        let mut latencies = Vec::with_capacity(submitted.len());
        let mut last = started;
        for (id, at) in &submitted {
            let done = finished.get(id).copied().ok_or_else(|| {
                BenchError::Setup(format!("run {id} is missing from GET /workflow-runs"))
            })?;
            last = last.max(SystemTime::from(done));
            latencies.push(since(*at, done));
        }
        latencies.sort_unstable();
        Ok(BurstFigures {
            runs: submitted.len(),
            wall: last.duration_since(started).unwrap_or_default(),
            submit_wall,
            latencies,
        })
    }

    /// `finished_at` of the newest `n` runs (and perhaps a few more), by run id.
    async fn finished_times(&self, n: usize) -> Result<HashMap<String, DateTime<Utc>>, BenchError> {
        let mut out = HashMap::with_capacity(n);
        let mut offset = 0usize;
        while out.len() < n {
            let body: Value = self
                .client
                .get(format!(
                    "{}/workflow-runs?status=completed&limit=1000&offset={offset}",
                    self.base
                ))
                .send()
                .await
                .map_err(http)?
                .json()
                .await
                .map_err(http)?;
            let page = body["runs"].as_array().cloned().unwrap_or_default();
            if page.is_empty() {
                break;
            }
            offset += page.len();
            for r in &page {
                if let (Some(id), Some(at)) = (r["run_id"].as_str(), finished_at(r)) {
                    out.insert(id.to_string(), at);
                }
            }
        }
        Ok(out)
    }
}

fn finished_at(body: &Value) -> Option<DateTime<Utc>> {
    body["finished_at"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// From a client timestamp to a server one (same machine, same clock); zero if the server's
/// is earlier (clock resolution).
fn since(from: SystemTime, to: DateTime<Utc>) -> Duration {
    SystemTime::from(to)
        .duration_since(from)
        .unwrap_or_default()
}
