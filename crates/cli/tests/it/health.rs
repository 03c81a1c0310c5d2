//! The meta health monitor end to end: a real `tradeloom serve` (heartbeats, the in-process
//! monitor, `GET /health/meta`) and `tradeloom health --json` on the same data dir, while a feed
//! file is touched, stops being touched, and is touched again. Status changes are polled for;
//! nothing asserts on time.

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
