//! The coordinator holds nothing that is not in the store: `tradeloom serve` is killed with
//! SIGKILL at pseudo-random moments 20 times while workflow runs are in flight, restarted each
//! time, and every run still completes with each node's completion applied exactly once and
//! each `http` effect delivered under one idempotency key per node.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::effects::sink;
use crate::service::Service;

/// A small deterministic generator (the seed is printed so a failure can be replayed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

fn definition(sink: &str) -> Value {
    json!({"name": "crash-test", "nodes": [
        {"id": "a", "type": "transform", "config": {"output": {"x": 1}}},
        {"id": "b", "type": "wait", "needs": ["a"], "config": {"duration_ms": 120}},
        {"id": "c", "type": "http", "needs": ["a"],
         "config": {"method": "POST", "url": format!("{sink}/effect"), "body": {"run": "{{ run.id }}", "step": "c"}}},
        {"id": "d", "type": "transform", "needs": ["b", "c"], "config": {"output": {"y": "{{ a.x }}"}}},
        {"id": "e", "type": "wait", "needs": ["d"], "config": {"duration_ms": 80}},
        {"id": "f", "type": "http", "needs": ["e"],
         "config": {"method": "POST", "url": format!("{sink}/effect"), "body": {"run": "{{ run.id }}", "step": "f"}}},
        {"id": "g", "type": "transform", "needs": ["f"]},
    ]})
}

async fn start_runs(client: &reqwest::Client, api: &str, workflow: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let r = client
            .post(format!("{api}/workflows/{workflow}/runs"))
            .json(&json!({"inputs": {}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let body: Value = r.json().await.unwrap();
        ids.push(body["run_id"].as_str().unwrap().to_string());
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_killed_20_times_every_run_completes_exactly_once() {
    let seed: u64 = std::env::var("TRADELOOM_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_123);
    eprintln!("kill schedule seed: {seed} (set TRADELOOM_KILL_SEED to replay)");
    let mut rng = Lcg(seed);
    let data = tempfile::tempdir().unwrap();
    let (sink_url, seen) = sink(Duration::from_millis(40)).await;
    tradeloom_llm::install_crypto_provider();
    let client = reqwest::Client::new();
    let args = [
        "--http-allow",
        "127.0.0.1",
        "--rate-limit-per-key",
        "0",
        "--rate-limit-runs-light",
        "0",
    ];

    let mut runs = Vec::new();
    let mut workflow = String::new();
    let mut kills = 0;
    let mut in_flight_at_kills = 0;
    while kills < 20 {
        let serve = Service::serve_with(data.path(), &args, &[]);
        if workflow.is_empty() {
            let r = client
                .post(format!("{}/workflows", serve.url))
                .json(&definition(&sink_url))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            workflow = r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string();
        }
        runs.extend(start_runs(&client, &serve.url, &workflow, 3).await);
        tokio::time::sleep(Duration::from_millis(20 + rng.next(280))).await;
        let running: Value = client
            .get(format!("{}/workflow-runs?status=running", serve.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        in_flight_at_kills += running["runs"].as_array().map_or(0, Vec::len);
        drop(serve); // SIGKILL
        kills += 1;
    }

    // A last start finishes everything.
    let serve = Service::serve_with(data.path(), &args, &[]);
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut views = BTreeMap::new();
    for run in &runs {
        loop {
            let v: Value = client
                .get(format!("{}/workflow-runs/{run}", serve.url))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let status = v["status"]
                .as_str()
                .unwrap_or_else(|| panic!("GET run {run}: {v}"))
                .to_string();
            if status == "completed" || status == "failed" || status == "cancelled" {
                views.insert(run.clone(), v);
                break;
            }
            assert!(Instant::now() < deadline, "run {run} stuck: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let mut interrupted = 0;
    for (run, v) in &views {
        assert_eq!(v["status"], "completed", "run {run}: {v}");
        assert_eq!(v["tokens"], 0, "run {run}");
        for node in v["nodes"].as_array().unwrap() {
            assert_eq!(node["status"], "completed", "run {run}: {node}");
            assert_eq!(node["attempts"], 1, "run {run}: {node}");
        }
        let events: Value = client
            .get(format!("{}/workflow-runs/{run}/events", serve.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut completed: BTreeMap<String, usize> = BTreeMap::new();
        let mut started: BTreeMap<String, usize> = BTreeMap::new();
        for e in events["events"].as_array().unwrap() {
            let node = e["node_id"].as_str().unwrap_or("").to_string();
            match e["kind"].as_str().unwrap() {
                "node_completed" => *completed.entry(node).or_default() += 1,
                "node_started" => *started.entry(node).or_default() += 1,
                _ => {}
            }
        }
        assert_eq!(completed.len(), 7, "run {run}: {completed:?}");
        assert!(
            completed.values().all(|&n| n == 1),
            "run {run}: each node completes once: {completed:?}"
        );
        assert!(started.values().all(|&n| n == 1), "run {run}: {started:?}");
        let finished = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "run_finished")
            .count();
        assert_eq!(finished, 1, "run {run}");
        // Effects: one idempotency key per http node of the run, whatever was re-sent.
        let seen = seen.lock().unwrap();
        let keys: BTreeSet<&str> = seen
            .iter()
            .filter(|(_, r)| r == run)
            .map(|(k, _)| k.as_str())
            .collect();
        let expected: BTreeSet<String> =
            ["c", "f"].iter().map(|n| format!("{run}/{n}/1")).collect();
        assert_eq!(
            keys,
            expected.iter().map(String::as_str).collect::<BTreeSet<_>>(),
            "run {run}"
        );
        if seen.iter().filter(|(_, r)| r == run).count() > 2 {
            interrupted += 1;
        }
    }
    eprintln!(
        "{} runs completed through 20 kills ({in_flight_at_kills} runs were running at the kills); \
         {interrupted} re-sent an http effect after a kill (same key)",
        runs.len()
    );
    assert!(
        in_flight_at_kills > 0,
        "no kill landed while a run was in flight"
    );
}
