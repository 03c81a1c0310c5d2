//! The cluster mode as separate processes on PostgreSQL and Redis (issue 16), when both
//! `TRADELOOM_TEST_POSTGRES_URL` and `TRADELOOM_TEST_REDIS_URL` are set (skipped with a note
//! otherwise; set and unreachable, the test fails): `serve --roles api`, two `coordinator`s and
//! two `worker`s on one scratch database and one Redis key prefix. Every process shows in
//! `GET /cluster`; workflow runs complete while a worker and a coordinator are killed with
//! SIGKILL, each `http` effect arriving under one idempotency key per node; a killed process
//! drops out of the registry; SIGTERM stops a worker with exit 0, its entry removed and no
//! lease left held.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tradeloom_queue::{Queue, RedisQueue, RedisQueueOptions};
use tradeloom_store::ScratchDatabase;

use crate::effects::{assert_one_key_per_run, sink};
use crate::service::Service;

const PG_ENV: &str = "TRADELOOM_TEST_POSTGRES_URL";
const REDIS_ENV: &str = "TRADELOOM_TEST_REDIS_URL";

/// A `coordinator` or `worker` process: its child and the id it printed.
pub(crate) struct Member {
    pub(crate) child: Child,
    pub(crate) id: String,
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tradeloom COMMAND COMMON… EXTRA…` and reads the id it prints first.
pub(crate) fn member(command: &str, common: &[String], extra: &[&str]) -> Member {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tradeloom"))
        .arg(command)
        .args(common)
        .args(extra)
        .current_dir(crate::repo())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("tradeloom starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let id = line
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or_else(|| panic!("no process id in {line:?}"))
        .to_string();
    assert!(
        line.contains(&format!("tradeloom {command} running as")),
        "{line:?}"
    );
    Member { child, id }
}

async fn get(client: &reqwest::Client, url: String) -> Value {
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET {url}");
    r.json().await.unwrap()
}

/// The ids and roles `GET /cluster` lists.
async fn members(client: &reqwest::Client, api: &str) -> BTreeMap<String, Vec<String>> {
    let body = get(client, format!("{api}/cluster")).await;
    assert_eq!(body["mode"], "redis", "{body}");
    body["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let roles = p["roles"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_string())
                .collect();
            (p["id"].as_str().unwrap().to_string(), roles)
        })
        .collect()
}

/// A scratch database on the server of `TRADELOOM_TEST_POSTGRES_URL` (`pg`), named `prefix_…`.
async fn scratch_database(pg: &str, prefix: &str) -> ScratchDatabase {
    ScratchDatabase::create(pg, prefix)
        .await
        .unwrap_or_else(|e| panic!("{PG_ENV}={pg} is set but unusable: {e}"))
}

/// The flags every process of a test cluster shares: its data dir, database, Redis (and key
/// prefix), the loopback let through the SSRF guard, then `extra`.
fn cluster_args(
    data: &std::path::Path,
    database: &str,
    redis: &str,
    prefix: Option<&str>,
    extra: &[&str],
) -> Vec<String> {
    let mut args = vec![
        "--data-dir".to_string(),
        data.to_str().unwrap().to_string(),
        "--database-url".into(),
        database.into(),
        "--redis-url".into(),
        redis.into(),
    ];
    if let Some(prefix) = prefix {
        args.extend(["--redis-prefix".into(), prefix.into()]);
    }
    args.extend(["--http-allow".into(), "127.0.0.1".into()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// `serve --roles api` with the cluster's flags `common` (after their `--data-dir DIR`), no
/// rate limits.
fn api_process(data: &std::path::Path, common: &[String]) -> Service {
    let mut args: Vec<&str> = common.iter().map(String::as_str).skip(2).collect();
    args.extend([
        "--roles",
        "api",
        "--rate-limit-per-key",
        "0",
        "--rate-limit-runs-light",
        "0",
    ]);
    Service::serve_with(data, &args, &[])
}

/// Creates workflow `definition`; its id.
async fn create_workflow(client: &reqwest::Client, api: &str, definition: Value) -> String {
    let r = client
        .post(format!("{api}/workflows"))
        .json(&definition)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Starts `n` runs of `workflow` without inputs; their ids.
async fn start_runs(client: &reqwest::Client, api: &str, workflow: &str, n: usize) -> Vec<String> {
    let mut runs = Vec::new();
    for _ in 0..n {
        let r = client
            .post(format!("{api}/workflows/{workflow}/runs"))
            .json(&json!({"inputs": {}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        runs.push(
            r.json::<Value>().await.unwrap()["run_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    runs
}

/// Waits until every run of `runs` has completed (fails at once on another final status).
async fn wait_completed(client: &reqwest::Client, api: &str, runs: &[String], within: Duration) {
    let deadline = Instant::now() + within;
    for run in runs {
        loop {
            let body = get(client, format!("{api}/workflow-runs/{run}")).await;
            match body["status"].as_str().unwrap() {
                "completed" => break,
                "failed" | "cancelled" => panic!("run {run} ended {body}"),
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "run {run} did not finish: {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub(crate) fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the process did not exit within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_of_processes_survives_kills_and_stops_cleanly() {
    let (Ok(pg), Ok(redis)) = (std::env::var(PG_ENV), std::env::var(REDIS_ENV)) else {
        eprintln!("note: {PG_ENV} and {REDIS_ENV} are not both set; skipping the cluster test");
        return;
    };
    let db = scratch_database(&pg, "tl_cluster").await;
    let prefix = format!("tl-test-{}:", uuid::Uuid::now_v7().simple());
    let data = tempfile::tempdir().unwrap();
    let (sink_url, seen) = sink(Duration::from_millis(30)).await;
    tradeloom_llm::install_crypto_provider();
    let client = reqwest::Client::new();
    let common = cluster_args(
        data.path(),
        db.url(),
        &redis,
        Some(&prefix),
        &["--drain-grace", "5s"],
    );

    // The API alone first: it creates the schema; coordinators and workers join.
    let api = api_process(data.path(), &common);
    let mut coordinators = vec![
        member("coordinator", &common, &[]),
        member("coordinator", &common, &[]),
    ];
    let mut workers = vec![
        member("worker", &common, &["--concurrency", "2"]),
        member(
            "worker",
            &common,
            &["--pool", "transform,wait,http", "--concurrency", "2"],
        ),
    ];
    let listed = members(&client, &api.url).await;
    assert_eq!(listed.len(), 5, "{listed:?}");
    for c in &coordinators {
        assert_eq!(listed[&c.id], ["coordinator"]);
    }
    for w in &workers {
        assert_eq!(listed[&w.id], ["worker"]);
    }
    assert_eq!(listed.values().filter(|r| *r == &["api"]).count(), 1);

    let workflow = create_workflow(
        &client,
        &api.url,
        json!({"name": "cluster-test", "nodes": [
            {"id": "a", "type": "transform", "config": {"output": {"x": 1}}},
            {"id": "b", "type": "wait", "needs": ["a"], "config": {"duration_ms": 150}},
            {"id": "c", "type": "http", "needs": ["a"],
             "config": {"method": "POST", "url": format!("{sink_url}/effect"), "body": {"run": "{{ run.id }}"}}},
            {"id": "d", "type": "transform", "needs": ["b", "c"], "config": {"output": {"y": "{{ a.x }}"}}},
        ]}),
    )
    .await;
    let runs = start_runs(&client, &api.url, &workflow, 30).await;
    // Mid-flight: one worker and one coordinator die without a word.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let dead_worker = workers.remove(0);
    let dead_coordinator = coordinators.remove(0);
    let dead = [dead_worker.id.clone(), dead_coordinator.id.clone()];
    drop(dead_worker);
    drop(dead_coordinator);

    // Their leases run out (30 s) and the survivors finish every run.
    wait_completed(&client, &api.url, &runs, Duration::from_secs(120)).await;
    // Each run's http effect arrived under one idempotency key (retries reuse it).
    assert_one_key_per_run(&seen, &runs);

    // The killed processes drop out of the registry when their entries expire.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = members(&client, &api.url).await;
        if dead.iter().all(|id| !listed.contains_key(id)) {
            assert_eq!(listed.len(), 3, "{listed:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "killed processes still listed: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // SIGTERM: exit 0, the entry removed at once, no lease held.
    let mut worker = workers.remove(0);
    crate::sigterm(worker.child.id());
    let status = wait_exit(&mut worker.child, Duration::from_secs(20));
    assert!(status.success(), "worker exited {status}");
    assert!(!members(&client, &api.url).await.contains_key(&worker.id));
    let mut coordinator = coordinators.remove(0);
    crate::sigterm(coordinator.child.id());
    assert!(wait_exit(&mut coordinator.child, Duration::from_secs(20)).success());
    let queue = RedisQueue::connect(&redis, &prefix, RedisQueueOptions::default())
        .await
        .unwrap();
    for pool in ["transform", "wait", "http", "agent", "signals", "timer"] {
        let stats = queue.stats(pool).await.unwrap();
        assert_eq!(stats.leased, 0, "pool {pool}: {stats:?}");
    }
    let listed = members(&client, &api.url).await;
    assert_eq!(listed.len(), 1, "only the API is left: {listed:?}");
    drop(api);
    cleanup(&redis, &prefix);
    db.drop_database().await.unwrap();
}

/// Deletes the test's keys.
pub(crate) fn cleanup(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut con) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
        return;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut con)
        .unwrap_or_default();
    if !keys.is_empty() {
        let _ = redis::cmd("DEL").arg(keys).exec(&mut con);
    }
}

/// A Redis of the test's own (`redis-server` on a free port, AOF with `appendfsync always`, in a
/// temporary folder), killed with SIGKILL when dropped.
struct OwnRedis {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl OwnRedis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = Self::spawn(port, dir.path());
        OwnRedis { child, port, dir }
    }

    fn spawn(port: u16, dir: &std::path::Path) -> Child {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (the Redis restart test runs one of its own)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Killed without a word (SIGKILL), then started again on the same port and files: what
    /// it had acknowledged is in its append-only file.
    fn crash_and_restart(&mut self, down_for: Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(down_for);
        self.child = Self::spawn(self.port, self.dir.path());
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Redis dies (SIGKILL) and comes back while workflow runs are in flight: the API, the
/// coordinator and the worker reconnect on their own and every run completes, each `http`
/// effect under one idempotency key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_mid_run_processes_reconnect_and_nothing_is_lost() {
    let (Ok(pg), Ok(_)) = (std::env::var(PG_ENV), std::env::var(REDIS_ENV)) else {
        eprintln!(
            "note: {PG_ENV} and {REDIS_ENV} are not both set; skipping the Redis restart test"
        );
        return;
    };
    let db = scratch_database(&pg, "tl_cluster").await;
    let mut redis = OwnRedis::start();
    let data = tempfile::tempdir().unwrap();
    let (sink_url, seen) = sink(Duration::from_millis(30)).await;
    tradeloom_llm::install_crypto_provider();
    let client = reqwest::Client::new();
    let common = cluster_args(data.path(), db.url(), &redis.url(), None, &[]);
    let api = api_process(data.path(), &common);
    let _coordinator = member("coordinator", &common, &[]);
    let _worker = member("worker", &common, &["--concurrency", "2"]);

    let workflow = create_workflow(
        &client,
        &api.url,
        json!({"name": "redis-restart", "nodes": [
            {"id": "a", "type": "transform", "config": {"output": {"x": 1}}},
            {"id": "b", "type": "wait", "needs": ["a"], "config": {"duration_ms": 400}},
            {"id": "c", "type": "http", "needs": ["b"],
             "config": {"method": "POST", "url": format!("{sink_url}/effect"), "body": {"run": "{{ run.id }}"}}},
            {"id": "d", "type": "transform", "needs": ["c"], "config": {"output": {"y": "{{ a.x }}"}}},
        ]}),
    )
    .await;
    let runs = start_runs(&client, &api.url, &workflow, 20).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    redis.crash_and_restart(Duration::from_secs(2));

    wait_completed(&client, &api.url, &runs, Duration::from_secs(150)).await;
    assert_one_key_per_run(&seen, &runs);
    // Every process is registered again after the restart.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = members(&client, &api.url).await;
        if listed.len() == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every process is back: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(api);
    db.drop_database().await.unwrap();
}

/// The chaos test of issue 16: three workers and two coordinators as processes on PostgreSQL
/// and Redis, `TRADELOOM_CHAOS_RUNS` workflow runs (default 500) and a workflow whose
/// `simulate` node runs a simulation job, and 20 kills (SIGKILL) of random workers and
/// coordinators at random moments, each replaced by a new process. Every run completes, each
/// run's `http` effect arrives under one idempotency key, and the simulation's model-days are
/// each stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_chaos_twenty_kills_of_workers_and_coordinators_lose_and_repeat_nothing() {
    let (Ok(pg), Ok(redis)) = (std::env::var(PG_ENV), std::env::var(REDIS_ENV)) else {
        eprintln!("note: {PG_ENV} and {REDIS_ENV} are not both set; skipping the chaos test");
        return;
    };
    let n_runs: usize = std::env::var("TRADELOOM_CHAOS_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let seed: u64 = std::env::var("TRADELOOM_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_206);
    eprintln!("chaos: {n_runs} runs, kill schedule seed {seed} (TRADELOOM_KILL_SEED replays it)");
    let mut rng = seed;
    let mut next = |below: u64| {
        rng = rng
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (rng >> 33) % below
    };
    let db = scratch_database(&pg, "tl_chaos").await;
    let prefix = format!("tl-test-{}:", uuid::Uuid::now_v7().simple());
    let data = tempfile::tempdir().unwrap();
    let (sink_url, seen) = sink(Duration::from_millis(30)).await;
    let mock = Service::mock_llm();
    tradeloom_llm::install_crypto_provider();
    let client = reqwest::Client::new();
    let common = cluster_args(data.path(), db.url(), &redis, Some(&prefix), &[]);
    let api = api_process(data.path(), &common);
    // Slot 0-1: coordinators; 2-4: workers.
    let start = |slot: usize| match slot {
        0 | 1 => member("coordinator", &common, &[]),
        _ => member("worker", &common, &["--concurrency", "4"]),
    };
    let mut members: Vec<Member> = (0..5).map(start).collect();

    let post = |url: String, body: Value| {
        let client = client.clone();
        async move {
            let r = client.post(&url).json(&body).send().await.unwrap();
            let status = r.status();
            let body: Value = r.json().await.unwrap();
            assert!(status.is_success(), "POST {url}: {status} {body}");
            body
        }
    };
    let effects = post(
        format!("{}/workflows", api.url),
        json!({"name": "chaos", "nodes": [
            {"id": "a", "type": "transform", "config": {"output": {"x": 1}}},
            {"id": "b", "type": "wait", "needs": ["a"], "config": {"duration_ms": 50}},
            {"id": "c", "type": "http", "needs": ["a"],
             "config": {"method": "POST", "url": format!("{sink_url}/effect"), "body": {"run": "{{ run.id }}"}}},
            {"id": "d", "type": "transform", "needs": ["b", "c"], "config": {"output": {"y": "{{ a.x }}"}}},
        ]}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let simulation = post(
        format!("{}/workflows", api.url),
        json!({"name": "chaos-simulation", "nodes": [
            {"id": "sim", "type": "simulate", "timeout_ms": 600_000, "config": {"config": {
                "models": [
                    {"name": "momentum", "base_url": format!("{}/v1", mock.url), "model": "momentum"},
                    {"name": "buy_and_hold", "base_url": format!("{}/v1", mock.url), "model": "buy_and_hold"},
                ],
                "universe": {"path": "examples/universe"},
                "symbols": ["AAA", "BBB", "CCC"],
                "start_date": "2025-01-02", "end_date": "2025-01-31",
                "initial_cash": 10000, "reference_price": "open", "fee_bps": 10,
            }}},
        ]}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let sim_run = post(
        format!("{}/workflows/{simulation}/runs", api.url),
        json!({"inputs": {}}),
    )
    .await["run_id"]
        .as_str()
        .unwrap()
        .to_string();

    // Runs go in while processes die: 20 kills spread over the submissions.
    let mut runs = Vec::new();
    let kill_every = (n_runs / 20).max(1);
    let mut kills = 0;
    for i in 0..n_runs {
        let body = post(
            format!("{}/workflows/{effects}/runs", api.url),
            json!({"inputs": {}}),
        )
        .await;
        runs.push(body["run_id"].as_str().unwrap().to_string());
        if (i + 1) % kill_every == 0 && kills < 20 {
            tokio::time::sleep(Duration::from_millis(next(200))).await;
            let slot = next(5) as usize;
            members[slot] = start(slot); // the old one is killed (SIGKILL) as it is dropped
            kills += 1;
        }
    }
    while kills < 20 {
        tokio::time::sleep(Duration::from_millis(next(300))).await;
        let slot = next(5) as usize;
        members[slot] = start(slot);
        kills += 1;
    }

    let all: Vec<String> = runs.iter().chain([&sim_run]).cloned().collect();
    wait_completed(&client, &api.url, &all, Duration::from_secs(300)).await;
    assert_one_key_per_run(&seen, &runs);
    // The simulation: each model-day once, both models over every session.
    let sim = get(&client, format!("{}/workflow-runs/{sim_run}", api.url)).await;
    let output = sim["nodes"][0]["output"].as_str().unwrap().to_string();
    let blob = get(&client, format!("{}/blobs/{output}", api.url)).await;
    let job = blob["content"]["job_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{blob}"))
        .to_string();
    let results = get(
        &client,
        format!("{}/results?job_id={job}&limit=500", api.url),
    )
    .await;
    let days: Vec<(String, String)> = results["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["model"].as_str().unwrap().into(),
                r["date"].as_str().unwrap().into(),
            )
        })
        .collect();
    let unique: BTreeSet<&(String, String)> = days.iter().collect();
    assert_eq!(
        unique.len(),
        days.len(),
        "a model-day is stored twice: {days:?}"
    );
    assert_eq!(results["total"].as_u64().unwrap() as usize, days.len());
    let per_model: BTreeMap<&str, usize> =
        days.iter().fold(BTreeMap::new(), |mut m, (model, _)| {
            *m.entry(model.as_str()).or_default() += 1;
            m
        });
    assert_eq!(per_model.len(), 2, "{per_model:?}");
    assert_eq!(
        per_model["momentum"], per_model["buy_and_hold"],
        "{per_model:?}"
    );
    drop(members);
    drop(api);
    cleanup(&redis, &prefix);
    db.drop_database().await.unwrap();
}

/// Bad cluster settings are refused before anything starts, each naming the flag and what is
/// allowed; no service is needed.
#[test]
fn bad_cluster_settings_name_the_flag() {
    let data = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&["worker"], "--redis-url"),
        (&["coordinator"], "--redis-url"),
        (
            &["serve", "--roles", "api,bogus"],
            "unknown role `bogus`; the roles are api, coordinator, worker",
        ),
        (
            &[
                "worker",
                "--redis-url",
                "redis://127.0.0.1:1",
                "--pool",
                "nope",
            ],
            "--pool: unknown pool `nope`; the pools are transform, wait, http",
        ),
        (
            &["serve", "--redis-url", "http://127.0.0.1:6379"],
            "--redis-url http://127.0.0.1:6379: a Redis URL starts with redis://",
        ),
        (
            &["worker", "--roles", "api"],
            "--roles: `tradeloom worker` runs the roles worker",
        ),
    ];
    for (args, expected) in cases {
        let o = crate::tradeloom(data.path(), args);
        assert!(
            !o.status.success(),
            "`tradeloom {}` was accepted",
            args.join(" ")
        );
        let err = crate::stderr(&o);
        assert!(
            err.contains(expected),
            "`tradeloom {}`: {err}",
            args.join(" ")
        );
    }
    // Nothing of a process was left behind: no heartbeat, no store.
    assert!(!data.path().join("health/heartbeats").exists());
}

/// A sweep over the cluster's workers (`tradeloom sweep --redis-url`, and `POST /sweeps` on a
/// `serve --roles api`): refused while no worker takes the `sweep` pool; with two workers every
/// point completes with the metrics a sweep on this process's threads gives, also when one
/// worker is stopped mid-sweep (its runs handed back to the other).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sweep_runs_on_the_workers_of_the_cluster() {
    let (Ok(pg), Ok(redis)) = (std::env::var(PG_ENV), std::env::var(REDIS_ENV)) else {
        eprintln!(
            "note: {PG_ENV} and {REDIS_ENV} are not both set; skipping the cluster sweep test"
        );
        return;
    };
    const SPEC: &str = "examples/specs/goog_sma_cross.yaml";
    const GRID: &str = "strategy.params.fast=5,10,15,strategy.params.slow=20..50:10";
    let db = scratch_database(&pg, "tl_sweep").await;
    let prefix = format!("tl-test-{}:", uuid::Uuid::now_v7().simple());
    let data = tempfile::tempdir().unwrap();
    tradeloom_llm::install_crypto_provider();
    let client = reqwest::Client::new();
    let common = cluster_args(
        data.path(),
        db.url(),
        &redis,
        Some(&prefix),
        &["--drain-grace", "1ms"],
    );
    let sweep = |extra: &[&str]| {
        let mut args = vec!["sweep", SPEC, "--grid", GRID, "--json"];
        args.extend(extra);
        crate::tradeloom(data.path(), &args)
    };
    let cluster_flags = [
        "--redis-url",
        redis.as_str(),
        "--redis-prefix",
        prefix.as_str(),
    ];

    // Alone on this process's threads: the reference.
    let local = sweep(&["--jobs", "2"]);
    assert!(local.status.success(), "{}", crate::stderr(&local));
    let local: Value = serde_json::from_str(crate::stdout(&local).lines().last().unwrap()).unwrap();

    // The API first (it creates the schema); no worker yet: refused, naming why. The API reads
    // specs and data inside its data dir.
    std::fs::create_dir_all(data.path().join("specs")).unwrap();
    std::fs::create_dir_all(data.path().join("data")).unwrap();
    std::fs::copy(
        crate::repo().join(SPEC),
        data.path().join("specs/goog.yaml"),
    )
    .unwrap();
    std::fs::copy(
        crate::repo().join("examples/data/goog_1d.csv"),
        data.path().join("data/goog_1d.csv"),
    )
    .unwrap();
    let api = api_process(data.path(), &common);
    let out = sweep(&cluster_flags);
    assert_eq!(out.status.code(), Some(2), "{}", crate::stderr(&out));
    assert!(
        crate::stderr(&out).contains("no worker process of the cluster"),
        "{}",
        crate::stderr(&out)
    );
    // Refused before anything was written: only the local sweep's folder is there.
    assert_eq!(
        std::fs::read_dir(data.path().join("sweeps"))
            .unwrap()
            .count(),
        1
    );
    let r = client
        .post(format!("{}/sweeps", api.url))
        .json(&json!({"spec": "specs/goog.yaml", "grid": GRID}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "no_sweep_workers"
    );

    let mut workers = vec![
        member(
            "worker",
            &common,
            &["--pool", "sweep", "--concurrency", "1"],
        ),
        member("worker", &common, &["--concurrency", "1"]),
    ];
    let args: Vec<&str> = cluster_flags.iter().copied().chain(["--quiet"]).collect();
    let cli = Command::new(env!("CARGO_BIN_EXE_tradeloom"))
        .args(["sweep", SPEC, "--grid", GRID, "--json", "--data-dir"])
        .arg(data.path())
        .args(&args)
        .current_dir(crate::repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Mid-sweep, one worker is told to stop: what it holds goes back to the queue at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut stopped = workers.remove(0);
    crate::sigterm(stopped.child.id());
    assert!(wait_exit(&mut stopped.child, Duration::from_secs(20)).success());
    let out = tokio::task::spawn_blocking(move || cli.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{}", crate::stderr(&out));
    let on_cluster: Value =
        serde_json::from_str(crate::stdout(&out).lines().last().unwrap()).unwrap();
    let metrics = |v: &Value| -> Vec<(Value, Value)> {
        v["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["params"].clone(), r["metrics"].clone()))
            .collect()
    };
    assert_eq!(metrics(&on_cluster).len(), 12);
    assert_eq!(metrics(&on_cluster), metrics(&local));
    assert_eq!(on_cluster["best"]["params"], local["best"]["params"]);
    // The runs were made by the workers: each completed run's folder is in the data dir.
    for run in on_cluster["runs"].as_array().unwrap() {
        let id = run["run_id"].as_str().unwrap();
        assert!(
            data.path()
                .join("runs")
                .join(id)
                .join("metrics.json")
                .is_file()
        );
    }

    // The same over the API.
    let r = client
        .post(format!("{}/sweeps", api.url))
        .json(&json!({"spec": "specs/goog.yaml", "grid": GRID, "jobs": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_jobs");
    let r = client
        .post(format!("{}/sweeps", api.url))
        .json(&json!({"spec": "specs/goog.yaml", "grid": GRID}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["sweep_id"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    let over_api = loop {
        let body = get(&client, format!("{}/sweeps/{id}", api.url)).await;
        if body.get("runs").is_some() {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "the sweep did not finish: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(metrics(&over_api), metrics(&local));
    let queue = RedisQueue::connect(&redis, &prefix, RedisQueueOptions::default())
        .await
        .unwrap();
    assert_eq!(queue.stats("sweep").await.unwrap().leased, 0);
    drop(workers);
    drop(api);
    cleanup(&redis, &prefix);
    db.drop_database().await.unwrap();
}
