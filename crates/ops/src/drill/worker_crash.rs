//! Drill `worker_crash`: `tradeloom serve` (coordinator and workers in one process) is killed
//! with SIGKILL while workflow runs are in flight and started again on the same data dir. The
//! restarted process must reclaim the unfinished tasks: every run completes and every node
//! completes exactly once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::ctx::{Ctx, api_client, pause};
use super::error::DrillError;

type Result<T> = std::result::Result<T, DrillError>;

const RUNS: usize = 4;
const NODES: usize = 6;

/// A diamond with waits, so that a run spends about a second in flight.
fn definition() -> Value {
    json!({"name": "drill-worker-crash", "nodes": [
        {"id": "a", "type": "transform", "config": {"output": {"x": 1}}},
        {"id": "b", "type": "wait", "needs": ["a"], "config": {"duration_ms": 400}},
        {"id": "c", "type": "wait", "needs": ["a"], "config": {"duration_ms": 250}},
        {"id": "d", "type": "transform", "needs": ["b", "c"], "config": {"output": {"y": "{{ a.x }}"}}},
        {"id": "e", "type": "wait", "needs": ["d"], "config": {"duration_ms": 300}},
        {"id": "f", "type": "transform", "needs": ["e"]},
    ]})
}

/// Runs the drill.
pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let mut serve = ctx.start_serve("serve-1", &[])?;
    let api = api_client(&serve.url, Duration::from_secs(20))?;
    let created = api.post_json("/workflows", &definition()).await?;
    ctx.require(
        "create the workflow",
        "201",
        format!("{} {}", created.status, created.body),
        created.status == 201,
    )?;
    let workflow = created.body["id"]
        .as_str()
        .ok_or_else(|| DrillError::Observed(format!("no id in {}", created.body)))?
        .to_string();
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        let r = api
            .post_json(
                &format!("/workflows/{workflow}/runs"),
                &json!({"inputs": {}}),
            )
            .await?;
        if r.status != 201 {
            ctx.require(
                "start workflow runs",
                "201 for each",
                format!("{} {}", r.status, r.body),
                false,
            )?;
        }
        runs.push(
            r.body["run_id"]
                .as_str()
                .ok_or_else(|| DrillError::Observed(format!("no run_id in {}", r.body)))?
                .to_string(),
        );
    }

    // Kill once some node has completed and the runs are still running.
    let deadline = Instant::now() + Duration::from_secs(30);
    let in_flight = loop {
        let mut mid = 0;
        for run in &runs {
            let v = api.get_json(&format!("/workflow-runs/{run}")).await?.body;
            let done = nodes_with(&v, "completed");
            if v["status"] == "running" && done > 0 && done < NODES {
                mid += 1;
            }
        }
        if mid > 0 {
            break mid;
        }
        if Instant::now() >= deadline {
            break 0;
        }
        pause(20).await;
    };
    let pid = serve.guard.pid();
    serve.guard.kill();
    ctx.require(
        "serve killed mid-run",
        "SIGKILL while at least one run has completed some nodes and not all",
        format!("pid {pid} killed with {in_flight} of {RUNS} runs part-way"),
        in_flight > 0,
    )?;

    let serve = ctx.start_serve("serve-2", &[])?;
    let api = api_client(&serve.url, Duration::from_secs(20))?;
    ctx.check(
        "serve restarts on the same data dir",
        "answers on a new port",
        serve.url.clone(),
        true,
    );
    let mut statuses = BTreeMap::new();
    let mut all_once = true;
    let mut detail = Vec::new();
    for run in &runs {
        let v = api
            .wait_for(
                &format!("/workflow-runs/{run}"),
                Duration::from_secs(60),
                |v| {
                    matches!(
                        v["status"].as_str(),
                        Some("completed" | "failed" | "cancelled")
                    )
                },
            )
            .await
            .map_err(|e| DrillError::from(e).within(format!("run {run} after the restart")))?;
        *statuses
            .entry(v["status"].as_str().unwrap_or("?").to_string())
            .or_insert(0usize) += 1;
        let events = api
            .get_json(&format!("/workflow-runs/{run}/events"))
            .await?
            .body;
        let mut completed: BTreeMap<String, usize> = BTreeMap::new();
        for e in events["events"].as_array().into_iter().flatten() {
            if e["kind"] == "node_completed" {
                *completed
                    .entry(e["node_id"].as_str().unwrap_or("").to_string())
                    .or_default() += 1;
            }
        }
        let once = completed.len() == NODES && completed.values().all(|&n| n == 1);
        if !once {
            all_once = false;
            detail.push(format!("{run}: {completed:?}"));
        }
    }
    ctx.check(
        "every run completes",
        format!("{RUNS} completed"),
        format!("{statuses:?}"),
        statuses.get("completed") == Some(&RUNS),
    );
    ctx.check(
        "every node completes exactly once",
        format!("one node_completed event for each of the {NODES} nodes of each run"),
        if all_once {
            format!("{} node completions, none repeated", RUNS * NODES)
        } else {
            detail.join("; ")
        },
        all_once,
    );
    Ok(())
}

fn nodes_with(run: &Value, status: &str) -> usize {
    run["nodes"]
        .as_array()
        .map_or(0, |n| n.iter().filter(|n| n["status"] == status).count())
}
