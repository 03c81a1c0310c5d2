//! HTTP load for `tradeloom bench api`: keep-alive GETs over concurrent connections, sent by
//! `wrk` when it is installed or by a built-in client otherwise, with throughput and latency
//! percentiles. The same generator drives every server measured, so the figures compare.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tradeloom_agents::Simulator;

use super::BenchError;
use crate::AppState;

/// Throughput and latency of the requests.
#[derive(Clone, Debug)]
pub struct HttpFigures {
    pub requests: usize,
    /// Answers other than 2xx, and connection errors.
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

/// How much load to send.
#[derive(Clone, Copy, Debug)]
pub enum Budget {
    /// This many requests in all (rounded up to a multiple of the connections).
    Requests(usize),
    /// As many as fit in this time.
    Duration(Duration),
}

/// Which load generator sends the requests.
#[derive(Clone, Debug)]
pub enum Generator {
    /// `wrk` at this path, with this many threads, pinned to these CPUs (`taskset -c`) if
    /// given.
    Wrk {
        path: PathBuf,
        threads: usize,
        cpus: Option<String>,
    },
    /// reqwest clients in this process, one keep-alive connection each.
    BuiltIn,
}

impl Generator {
    /// `wrk` if it is on PATH (and the budget is a duration: wrk has no request count),
    /// otherwise the built-in client. With `cpus` (a `taskset -c` list) wrk runs there with one
    /// thread per CPU listed; without, with two threads wherever the scheduler puts them.
    pub fn pick(budget: Budget, cpus: Option<&str>) -> Generator {
        match (budget, find_on_path("wrk")) {
            (Budget::Duration(_), Some(path)) => Generator::Wrk {
                path,
                threads: cpus.map_or(2, |c| c.split(',').count()),
                cpus: cpus.map(str::to_string),
            },
            _ => Generator::BuiltIn,
        }
    }

    /// For the report: `wrk (2 threads)` or `built-in (reqwest)`.
    pub fn describe(&self) -> String {
        match self {
            Generator::Wrk {
                threads,
                cpus: None,
                ..
            } => format!("wrk ({threads} threads)"),
            Generator::Wrk {
                threads,
                cpus: Some(cpus),
                ..
            } => format!("wrk ({threads} threads, on CPU {cpus})"),
            Generator::BuiltIn => "built-in (reqwest, in the bench process)".to_string(),
        }
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Sends `budget` of GETs of `url` (with `Authorization: Bearer <bearer>` if given) over
/// `connections` keep-alive connections with `generator`.
pub async fn load(
    generator: &Generator,
    url: &str,
    bearer: Option<&str>,
    connections: usize,
    budget: Budget,
) -> Result<HttpFigures, BenchError> {
    match (generator, budget) {
        (
            Generator::Wrk {
                path,
                threads,
                cpus,
            },
            Budget::Duration(d),
        ) => {
            let (path, url, cpus) = (path.clone(), url.to_string(), cpus.clone());
            let bearer = bearer.map(str::to_string);
            let threads = (*threads).clamp(1, connections.max(1));
            tokio::task::spawn_blocking(move || {
                wrk(
                    &path,
                    cpus.as_deref(),
                    &url,
                    bearer.as_deref(),
                    connections,
                    threads,
                    d,
                )
            })
            .await
            .map_err(BenchError::Panicked)?
        }
        _ => builtin(url, bearer, connections, budget).await,
    }
}

/// The built-in generator: one reqwest client (one connection) per task.
async fn builtin(
    url: &str,
    bearer: Option<&str>,
    connections: usize,
    budget: Budget,
) -> Result<HttpFigures, BenchError> {
    let connections = connections.max(1);
    let (per_task, until) = match budget {
        Budget::Requests(n) => (n.div_ceil(connections), None),
        Budget::Duration(d) => (usize::MAX, Some(Instant::now() + d)),
    };
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let url = url.to_string();
        let bearer = bearer.map(str::to_string);
        tasks.spawn(async move {
            let client = reqwest::Client::builder().pool_max_idle_per_host(1).build();
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let Ok(client) = client else {
                return (latencies, 1);
            };
            let mut sent = 0usize;
            while sent < per_task && until.is_none_or(|u| Instant::now() < u) {
                sent += 1;
                let t = Instant::now();
                let mut request = client.get(&url);
                if let Some(key) = &bearer {
                    request = request.bearer_auth(key);
                }
                match request.send().await {
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
    let mut all = Vec::new();
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

/// Runs `wrk --latency` (under `taskset -c cpus` when given) and reads its report.
#[allow(clippy::too_many_arguments)]
fn wrk(
    path: &Path,
    cpus: Option<&str>,
    url: &str,
    bearer: Option<&str>,
    connections: usize,
    threads: usize,
    duration: Duration,
) -> Result<HttpFigures, BenchError> {
    let mut command = match cpus {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpus]).arg(path);
            c
        }
        None => Command::new(path),
    };
    command
        .arg("--latency")
        .args(["-t", &threads.to_string()])
        .args(["-c", &connections.max(1).to_string()])
        .args(["-d", &format!("{}s", duration.as_secs().max(1))])
        .args(["--timeout", "10s"]);
    if let Some(key) = bearer {
        command.args(["-H", &format!("Authorization: Bearer {key}")]);
    }
    let out = command.arg(url).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(BenchError::Setup(format!(
            "wrk failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    parse_wrk(&text).ok_or_else(|| BenchError::Setup(format!("cannot read wrk's report:\n{text}")))
}

/// A wrk duration: `812.00us`, `1.23ms`, `2.01s`, `1.5m`.
fn wrk_duration(text: &str) -> Option<Duration> {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = text.strip_suffix('h') {
        (n, 3600.0)
    } else {
        return None;
    };
    let v: f64 = number.parse().ok()?;
    Some(Duration::from_secs_f64(v * scale))
}

/// The figures of a `wrk --latency` report.
fn parse_wrk(text: &str) -> Option<HttpFigures> {
    let mut requests = None;
    let mut seconds = None;
    let (mut p50, mut p99, mut max) = (None, None, None);
    let mut errors = 0usize;
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            // `123456 requests in 10.00s, 1.23GB read`
            [n, "requests", "in", secs, ..] => {
                requests = n.parse::<usize>().ok();
                seconds = wrk_duration(secs.trim_end_matches(',')).map(|d| d.as_secs_f64());
            }
            ["Latency", _avg, _stdev, m, ..] => max = wrk_duration(m),
            ["50%", v] => p50 = wrk_duration(v),
            ["99%", v] => p99 = wrk_duration(v),
            ["Non-2xx", "or", "3xx", "responses:", n] => errors += n.parse::<usize>().ok()?,
            // `Socket errors: connect 0, read 0, write 0, timeout 0`
            ["Socket", "errors:", rest @ ..] => {
                errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<usize>().ok())
                    .sum::<usize>();
            }
            _ => {}
        }
    }
    Some(HttpFigures {
        requests: requests?,
        errors,
        seconds: seconds?,
        p50: p50?,
        p99: p99?,
        max: max.unwrap_or_default(),
    })
}

/// Serves the API of `sim` in this process on a loopback port (auth off, no rate limits) and
/// sends `GET /results?detail=minimal` `requests` times over `concurrency` connections with
/// the built-in client.
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
    builtin(&url, None, concurrency, Budget::Requests(requests)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrk_report_is_read() {
        let report = "Running 2s test @ http://127.0.0.1:8080/results?detail=minimal
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms  512.33us  15.07ms   80.00%
    Req/Sec    15.21k     1.02k   17.00k    70.00%
  Latency Distribution
     50%    2.01ms
     75%    2.30ms
     90%    2.70ms
     99%  812.00us
  60512 requests in 2.00s, 850.12MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  30256.00
Transfer/sec:    425.06MB
";
        let f = parse_wrk(report).expect("parsed");
        assert_eq!(f.requests, 60512);
        assert_eq!(f.seconds, 2.0);
        assert_eq!(f.p50, Duration::from_micros(2010));
        assert_eq!(f.p99, Duration::from_micros(812));
        assert_eq!(f.max, Duration::from_micros(15070));
        assert_eq!(f.errors, 7);
        assert!(parse_wrk("nothing here").is_none());
    }
}
