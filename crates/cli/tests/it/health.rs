//! The meta health monitor end to end: a real `tradeloom serve` (heartbeats, the in-process
//! monitor, `GET /health/meta`) and `tradeloom health --json` on the same data dir, while a feed
//! file is touched, stops being touched, and is touched again. Status changes are polled for;
//! nothing asserts on time. With `TRADELOOM_TEST_REDIS_URL` (skipped with a note otherwise; set
//! and unreachable, the tests fail): `tradeloom health --redis-url` counts the processes of a
//! Redis process registry against `processes:`, entries written by the test and a real
//! `tradeloom worker` that registers and leaves; `serve --redis-url` checks them in-process.
//! Embedded, `serve` checks `processes:` against its own registry (itself).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::service::Service;
use crate::{stderr, stdout, tradeloom};

/// Only a guard against a hang; every wait below ends as soon as the status is reached.
const DEADLINE: Duration = Duration::from_secs(90);

fn touch(path: &Path) {
    std::fs::write(path, format!("{:?}\n", std::time::SystemTime::now())).unwrap();
}

fn cli_report(data: &Path) -> Value {
    let out = tradeloom(data, &["health", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    serde_json::from_str(stdout(&out).trim()).unwrap()
}

async fn api_report(client: &reqwest::Client, url: &str) -> Option<Value> {
    let r = client.get(format!("{url}/health/meta")).send().await.ok()?;
    if r.status() != reqwest::StatusCode::OK {
        return None;
    }
    r.json().await.ok()
}

/// Polls `GET /health/meta` (touching the feed in between when `keep_fresh`) until its status
/// is `want`; returns that report.
async fn until_api_status(
    client: &reqwest::Client,
    url: &str,
    feed: &Path,
    keep_fresh: bool,
    want: &str,
) -> Value {
    let started = Instant::now();
    loop {
        if keep_fresh {
            touch(feed);
        }
        if let Some(report) = api_report(client, url).await
            && report["status"] == want
        {
            return report;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "GET /health/meta never reported {want}: {:?}",
            api_report(client, url).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalling_feed_walks_green_degraded_dead_green_in_serve_and_the_cli() {
    tradeloom_llm::install_crypto_provider();
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    std::fs::create_dir_all(d.join("feeds")).unwrap();
    let feed = d.join("feeds/prices.csv");
    touch(&feed);
    // Loose thresholds first, so GREEN holds while the CLI is run; tight ones for the stall.
    let config = |stale: &str, dead: &str, api: &str| {
        format!(
            "roles: [api, coordinator, workers, scheduler]\nfeeds:\n  - name: prices\n    path: feeds/prices.csv\n    stale_after: {stale}\n    dead_after: {dead}\napi: {api}\n"
        )
    };
    // The API's port is known once serve runs; until then no api entry.
    std::fs::write(
        d.join("health.yaml"),
        "roles: [api, coordinator, workers, scheduler]\nfeeds:\n  - name: prices\n    path: feeds/prices.csv\n",
    )
    .unwrap();
    let serve = Service::serve_with(
        d,
        &[
            "--health-interval",
            "200ms",
            "--rate-limit-per-key",
            "0",
            "--rate-limit-runs-light",
            "0",
        ],
        &[],
    );
    let url = serve.url.clone();
    std::fs::write(d.join("health.yaml"), config("60s", "120s", &url)).unwrap();
    let client = reqwest::Client::new();

    // GREEN in serve, with the API itself checked over loopback.
    let green = until_api_status(&client, &url, &feed, true, "GREEN").await;
    for sensor in [
        "m1_process",
        "m2_heartbeat",
        "m3_data_freshness",
        "m4_control_plane",
        "m5_coherence",
    ] {
        assert_eq!(green["sensors"][sensor], 1.0, "{sensor}: {green}");
    }
    assert_eq!(green["rm_meta"], 1.0);
    // The API check may have run before the config named it; wait for a report that has it.
    let with_api = {
        let started = Instant::now();
        loop {
            let r = until_api_status(&client, &url, &feed, true, "GREEN").await;
            if r["details"]["control_plane"]["api"]["ok"] == true {
                break r;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "the api was never checked: {r}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert_eq!(with_api["details"]["control_plane"]["queue"]["ok"], true);
    for role in ["api", "coordinator", "workers", "scheduler"] {
        let p = &with_api["details"]["processes"][role];
        assert_eq!(p["alive"], true, "{role}: {p}");
        assert_eq!(p["pid"], serve.child.id(), "{role}: {p}");
    }

    // The CLI agrees, and writes meta_health.json and history.
    touch(&feed);
    let cli = cli_report(d);
    assert_eq!(cli["status"], "GREEN", "{cli}");
    assert_eq!(
        cli["details"]["control_plane"]["queue"]["ok"], true,
        "{cli}"
    );
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("health/meta_health.json")).unwrap())
            .unwrap();
    assert!(saved["status"].is_string());
    assert!(
        std::fs::read_to_string(d.join("health/history.jsonl"))
            .unwrap()
            .lines()
            .count()
            >= 2
    );

    // The feed stops: DEGRADED (stale, 0.7), then DEAD.
    std::fs::write(d.join("health.yaml"), config("2s", "6s", &url)).unwrap();
    touch(&feed);
    let degraded = until_api_status(&client, &url, &feed, false, "DEGRADED").await;
    assert_eq!(degraded["sensors"]["m3_data_freshness"], 0.7, "{degraded}");
    assert_eq!(degraded["details"]["feeds"]["prices"]["state"], "stale");
    let dead = until_api_status(&client, &url, &feed, false, "DEAD").await;
    assert_eq!(dead["sensors"]["m3_data_freshness"], 0.0, "{dead}");
    assert_eq!(dead["details"]["feeds"]["prices"]["state"], "dead");
    // Nothing touches the feed any more, so the CLI sees it dead too.
    let cli = cli_report(d);
    assert_eq!(cli["status"], "DEAD", "{cli}");
    assert_eq!(cli["details"]["feeds"]["prices"]["state"], "dead");

    // The feed resumes: GREEN again.
    let again = until_api_status(&client, &url, &feed, true, "GREEN").await;
    assert_eq!(again["sensors"]["m3_data_freshness"], 1.0);
    touch(&feed);
    assert_eq!(cli_report(d)["status"], "GREEN");

    // Everything the monitor saw is in the history, in order.
    let statuses: Vec<String> = std::fs::read_to_string(d.join("health/history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["status"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut walk: Vec<&str> = Vec::new();
    for s in &statuses {
        if walk.last() != Some(&s.as_str()) {
            walk.push(s);
        }
    }
    let at = |s: &str, from: usize| walk[from..].iter().position(|w| *w == s).map(|i| i + from);
    let g = at("GREEN", 0).unwrap();
    let dg = at("DEGRADED", g).expect("DEGRADED after GREEN");
    let de = at("DEAD", dg).expect("DEAD after DEGRADED");
    at("GREEN", de).expect("GREEN after DEAD");
}

#[test]
fn bad_config_exits_2_naming_file_line_and_field() {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(
        data.path().join("health.yaml"),
        "feeds:\n  - name: prices\n    path: p.csv\n    stale_after: 10s\n    dead_after: 5s\n",
    )
    .unwrap();
    let out = tradeloom(data.path(), &["health", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("health.yaml:5") && err.contains("feeds[0].dead_after"),
        "{err}"
    );
    assert!(stdout(&out).is_empty());
}

#[test]
fn without_a_store_the_check_still_runs_and_says_why() {
    let data = tempfile::tempdir().unwrap();
    let out = tradeloom(data.path(), &["health"]);
    // Nothing configured (no health.yaml, no heartbeat): exit 3, said plainly.
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("NOTHING CONFIGURED"), "{text}");
    // The store check fails, the disk check passes: m4 = 1/2.
    assert!(text.contains("status CRITICAL"), "{text}");
    assert!(text.contains("store FAILED: no store at"), "{text}");
    assert!(text.contains("disk ok"), "{text}");
    assert!(!data.path().join("tradeloom.db").exists());
}

/// `TRADELOOM_TEST_REDIS_URL`: a Redis the test may write to (under a key prefix of its own).
const REDIS_ENV: &str = "TRADELOOM_TEST_REDIS_URL";

/// A fresh key prefix on the Redis of `REDIS_ENV`; its keys are deleted when this is dropped
/// (also when the test panics).
struct RedisPrefix {
    url: String,
    prefix: String,
}

impl RedisPrefix {
    /// `None` with a note when the variable is unset: the test is skipped.
    fn new(test: &str) -> Option<Self> {
        let Ok(url) = std::env::var(REDIS_ENV) else {
            eprintln!("note: {REDIS_ENV} is not set; skipping the {test} test");
            return None;
        };
        Some(Self {
            url,
            prefix: format!("tl-test-{}:", uuid::Uuid::now_v7().simple()),
        })
    }

    async fn registry(&self) -> tradeloom_queue::RedisRegistry {
        tradeloom_queue::RedisRegistry::connect(&self.url, &self.prefix)
            .await
            .unwrap_or_else(|e| panic!("{REDIS_ENV}={} is set but unusable: {e}", self.url))
    }

    /// `tradeloom health ARGS --redis-url URL --redis-prefix P`: its exit code and stdout.
    fn health(&self, data: &Path, args: &[&str]) -> (Option<i32>, String) {
        let mut all = args.to_vec();
        all.extend(["--redis-url", &self.url, "--redis-prefix", &self.prefix]);
        let out = tradeloom(data, &all);
        (out.status.code(), stdout(&out) + &stderr(&out))
    }

    fn report(&self, data: &Path) -> Value {
        let (code, text) = self.health(data, &["health", "--json"]);
        assert_eq!(code, Some(0), "{text}");
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        crate::cluster::cleanup(&self.url, &self.prefix);
    }
}

fn registered(id: &str, roles: &[&str], pools: &[&str]) -> tradeloom_queue::ProcessEntry {
    let now = chrono::Utc::now();
    tradeloom_queue::ProcessEntry {
        id: id.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        pools: pools.iter().map(|p| p.to_string()).collect(),
        concurrency: 2,
        host: "node-a".into(),
        pid: 4242,
        addr: None,
        started_at: now,
        heartbeat_at: now,
        in_flight: 1,
        state: "running".into(),
        version: "0.1.0".into(),
    }
}

/// A data dir with a store and `health.yaml` saying `yaml`.
fn data_dir_with(yaml: &str) -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    let out = tradeloom(data.path(), &["db", "migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(data.path().join("health.yaml"), yaml).unwrap();
    data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_health_counts_the_registered_processes_of_each_role() {
    use tradeloom_queue::Registry;
    let Some(redis) = RedisPrefix::new("health registry") else {
        return;
    };
    let registry = redis.registry().await;
    for entry in [
        registered("c1", &["coordinator"], &[]),
        registered("w1", &["worker"], &["transform", "http"]),
        registered("w2", &["worker"], &["agent"]),
        registered("w3", &["worker"], &["agent"]),
    ] {
        registry.heartbeat(&entry).await.unwrap();
    }
    let data = data_dir_with("processes:\n  coordinator: 1\n  worker: 3\n");
    let d = data.path();

    let r = redis.report(d);
    assert_eq!(r["status"], "GREEN", "{r}");
    assert_eq!(r["sensors"]["m1_process"], 1.0, "{r}");
    assert_eq!(r["sensors"]["m2_heartbeat"], 1.0, "{r}");
    assert_eq!(r["details"]["control_plane"]["registry"]["ok"], true, "{r}");
    assert_eq!(
        r["details"]["cluster_roles"]["worker"],
        serde_json::json!({"expected": 3, "running": 3})
    );
    let w1 = &r["details"]["cluster"]["w1"];
    assert_eq!(w1["roles"], serde_json::json!(["worker"]), "{r}");
    assert_eq!(w1["pools"], serde_json::json!(["transform", "http"]));
    assert_eq!(
        (w1["host"].as_str(), w1["pid"].as_u64()),
        (Some("node-a"), Some(4242))
    );
    assert_eq!(
        (w1["in_flight"].as_u64(), w1["state"].as_str()),
        (Some(1), Some("running"))
    );
    assert_eq!(
        (w1["heartbeat"].as_f64(), w1["expected"].as_bool()),
        (Some(1.0), Some(true))
    );
    assert!(w1["age_seconds"].as_f64().unwrap() < 30.0, "{w1}");
    assert!(w1["heartbeat_at"].as_str().unwrap().ends_with('Z'), "{w1}");
    assert_eq!(r["details"]["cluster"].as_object().unwrap().len(), 4);

    // A worker goes away: (1 + 2) / (1 + 3).
    registry.remove("w3").await.unwrap();
    let r = redis.report(d);
    assert_eq!(r["sensors"]["m1_process"], 0.75, "{r}");
    assert_eq!(r["status"], "DEGRADED");
    assert_eq!(r["details"]["cluster_roles"]["worker"]["running"], 2);
    assert!(r["details"]["cluster"].get("w3").is_none(), "{r}");
    // The text report: M1's reason and a line per process.
    let (code, text) = redis.health(d, &["health"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("processes coordinator 1/1, worker 2/3"),
        "{text}"
    );
    for id in ["c1", "w1", "w2"] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{id} "))),
            "no line of {id}:\n{text}"
        );
    }

    // Without --redis-url the slots cannot be checked: missing, and the registry check says why.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tradeloom"))
        .args(["health", "--json", "--data-dir"])
        .arg(d)
        .env_remove("TRADELOOM_REDIS_URL")
        .output()
        .unwrap();
    let r: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(r["sensors"]["m1_process"], 0.0, "{r}");
    let why = r["details"]["control_plane"]["registry"]["error"]
        .as_str()
        .unwrap();
    assert!(why.contains("--redis-url"), "{why}");

    // A Redis that does not answer: reported, not an error.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = format!("redis://127.0.0.1:{port}");
    let out = tradeloom(d, &["health", "--json", "--redis-url", &down]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(r["sensors"]["m1_process"], 0.0, "{r}");
    assert_eq!(
        r["details"]["control_plane"]["registry"]["ok"], false,
        "{r}"
    );
    assert!(
        r["details"]["registry_error"]
            .as_str()
            .unwrap()
            .starts_with("listing the process registry (redis): "),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_health_sees_a_real_worker_register_and_leave() {
    let Some(redis) = RedisPrefix::new("health worker") else {
        return;
    };
    // The worker has a data dir (and SQLite store) of its own; the check only shares Redis.
    let worker_data = tempfile::tempdir().unwrap();
    let common: Vec<String> = [
        "--data-dir",
        worker_data.path().to_str().unwrap(),
        "--redis-url",
        &redis.url,
        "--redis-prefix",
        &redis.prefix,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut worker = crate::cluster::member("worker", &common, &["--pool", "transform"]);
    let data = data_dir_with("processes: {worker: 1}\n");
    let d = data.path();

    let r = redis.report(d);
    assert_eq!(r["sensors"]["m1_process"], 1.0, "{r}");
    let entry = &r["details"]["cluster"][&worker.id];
    assert_eq!(
        entry["pid"].as_u64(),
        Some(u64::from(worker.child.id())),
        "{r}"
    );
    assert_eq!(entry["roles"], serde_json::json!(["worker"]));
    assert_eq!(entry["pools"], serde_json::json!(["transform"]));
    assert_eq!(entry["state"], "running");

    // SIGTERM: the worker removes its entry as it exits; its slot is empty at once.
    crate::sigterm(worker.child.id());
    let status = crate::cluster::wait_exit(&mut worker.child, Duration::from_secs(30));
    assert!(status.success(), "worker exited {status}");
    let r = redis.report(d);
    assert_eq!(r["sensors"]["m1_process"], 0.0, "{r}");
    assert_eq!(r["details"]["cluster_roles"]["worker"]["running"], 0, "{r}");
    assert_eq!(r["details"]["control_plane"]["registry"]["ok"], true, "{r}");
}

/// Polls `GET /health/meta` until a report satisfies `done`; returns it.
async fn until_api_report(
    client: &reqwest::Client,
    url: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        if let Some(report) = api_report(client, url).await
            && done(&report)
        {
            return report;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "GET /health/meta never reported what was awaited: {:?}",
            api_report(client, url).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_serve_checks_processes_against_its_own_registry() {
    tradeloom_llm::install_crypto_provider();
    let data = data_dir_with("processes: {api: 1, coordinator: 1, worker: 1}\n");
    let serve = Service::serve_with(data.path(), &["--health-interval", "200ms"], &[]);
    let client = reqwest::Client::new();
    let r = until_api_report(&client, &serve.url, |r| {
        r["details"]["cluster"]
            .as_object()
            .is_some_and(|c| !c.is_empty())
    })
    .await;
    // The one process fills a slot of each of its three roles.
    assert_eq!(r["sensors"]["m1_process"], 1.0, "{r}");
    assert_eq!(r["details"]["control_plane"]["registry"]["ok"], true, "{r}");
    let cluster = r["details"]["cluster"].as_object().unwrap();
    assert_eq!(cluster.len(), 1, "{r}");
    let me = cluster.values().next().unwrap();
    assert_eq!(me["pid"].as_u64(), Some(u64::from(serve.child.id())), "{r}");
    assert_eq!(
        me["roles"],
        serde_json::json!(["api", "coordinator", "worker"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_serve_checks_processes_against_the_cluster_registry() {
    tradeloom_llm::install_crypto_provider();
    use tradeloom_queue::Registry;
    let Some(redis) = RedisPrefix::new("serve registry") else {
        return;
    };
    let data = data_dir_with("processes: {api: 1, worker: 2}\n");
    let serve = Service::serve_with(
        data.path(),
        &[
            "--health-interval",
            "200ms",
            "--redis-url",
            &redis.url,
            "--redis-prefix",
            &redis.prefix,
        ],
        &[],
    );
    let client = reqwest::Client::new();
    // Itself alone: api 1/1, worker 1/2.
    let r = until_api_report(&client, &serve.url, |r| {
        r["sensors"]["m1_process"] == 2.0 / 3.0
    })
    .await;
    assert_eq!(r["details"]["cluster_roles"]["worker"]["running"], 1, "{r}");
    // Another worker registers in the cluster's registry: the serve's monitor sees it.
    redis
        .registry()
        .await
        .heartbeat(&registered("w-other", &["worker"], &["agent"]))
        .await
        .unwrap();
    let r = until_api_report(&client, &serve.url, |r| r["sensors"]["m1_process"] == 1.0).await;
    assert_eq!(
        r["details"]["cluster"]["w-other"]["pools"],
        serde_json::json!(["agent"]),
        "{r}"
    );
    assert_eq!(r["details"]["cluster"].as_object().unwrap().len(), 2, "{r}");
}
