//! `GET /results?detail=minimal` under concurrent keep-alive connections.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tradeloom_agents::Simulator;

use super::BenchError;
use crate::AppState;

/// Throughput and latency of the requests.
pub struct HttpFigures {
    pub requests: usize,
    pub errors: usize,
    pub seconds: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl HttpFigures {
    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds.max(1e-9)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Serves the API of `sim` on a loopback port and sends it `requests` (rounded up to a
/// multiple of `concurrency`) over `concurrency` connections.
pub async fn results_load(
    sim: Arc<Simulator>,
    requests: usize,
    concurrency: usize,
) -> Result<HttpFigures, BenchError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(crate::serve(
        listener,
        AppState::new(sim),
        std::future::pending(),
    ));
    let url = format!("http://{addr}/results?detail=minimal");
    let concurrency = concurrency.max(1);
    let per_task = requests.div_ceil(concurrency);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let url = url.clone();
        tasks.spawn(async move {
            // One client per task: one keep-alive connection each.
            let client = reqwest::Client::builder().pool_max_idle_per_host(1).build();
            let mut latencies = Vec::with_capacity(per_task);
            let mut errors = 0usize;
            let Ok(client) = client else {
                return (latencies, per_task);
            };
            for _ in 0..per_task {
                let t = Instant::now();
                match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => {
                        if r.bytes().await.is_err() {
                            errors += 1;
                        }
                    }
                    _ => errors += 1,
                }
                latencies.push(t.elapsed());
            }
            (latencies, errors)
        });
    }
    let mut all = Vec::with_capacity(per_task * concurrency);
    let mut errors = 0;
    while let Some(joined) = tasks.join_next().await {
        let (l, e) = joined.map_err(BenchError::Panicked)?;
        all.extend(l);
        errors += e;
    }
    let seconds = started.elapsed().as_secs_f64();
    all.sort_unstable();
    Ok(HttpFigures {
        requests: all.len(),
        errors,
        seconds,
        p50: percentile(&all, 50.0),
        p99: percentile(&all, 99.0),
        max: all.last().copied().unwrap_or_default(),
    })
}
