//! Drill `store_unavailable`: while `tradeloom serve` runs on SQLite, the drill takes the
//! database's write lock (`BEGIN EXCLUSIVE`, held open) so that the server's writers wait their
//! busy timeout and fail. The server is started with `TRADELOOM_SQLITE_BUSY_TIMEOUT_MS` short
//! (the default is 30 s). Asserts that API writes answer a JSON 503 `store_unavailable` promptly
//! (no hang, no 2xx), that reads of stored data are unchanged, that the failed writes left
//! nothing behind, and that writes succeed again once the lock is released.

use std::time::Duration;

use serde_json::{Value, json};
use tradeloom_client::{Client, Reply};
use tradeloom_store::SqliteStore;

use super::ctx::{Ctx, api_client};
use super::error::{DrillError, chain};

type Result<T> = std::result::Result<T, DrillError>;

/// The server's busy timeout in this drill.
const BUSY_MS: u64 = 300;
/// A write must answer within this (the busy timeout plus the writers queued before it).
const PROMPT: Duration = Duration::from_secs(15);

fn definition(name: &str) -> Value {
    json!({"name": name, "nodes": [
        {"id": "a", "type": "transform", "config": {"output": {"x": 1}}},
        {"id": "b", "type": "transform", "needs": ["a"], "config": {"output": {"y": "{{ a.x }}"}}},
    ]})
}

/// Runs the drill.
pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let busy = BUSY_MS.to_string();
    let serve = ctx.start_serve(
        "serve",
        &[(tradeloom_store::BUSY_TIMEOUT_ENV, busy.as_str())],
    )?;
    // Longer than PROMPT: a hang is observed as such, not cut short by the client.
    let api = api_client(&serve.url, PROMPT * 2)?;
    let created = api
        .post_json("/workflows", &definition("drill-store"))
        .await?;
    ctx.require(
        "create a workflow",
        "201",
        format!("{} {}", created.status, created.body),
        created.status == 201,
    )?;
    let workflow = created.body["id"]
        .as_str()
        .ok_or_else(|| DrillError::Observed(format!("no id in {}", created.body)))?
        .to_string();
    let first = api
        .post_json(
            &format!("/workflows/{workflow}/runs"),
            &json!({"inputs": {}}),
        )
        .await?;
    let first_run = first.body["run_id"].as_str().unwrap_or("").to_string();
    ctx.require(
        "start a run before the outage",
        "201",
        format!("{} {}", first.status, first.body),
        first.status == 201 && !first_run.is_empty(),
    )?;
    let run_path = format!("/workflow-runs/{first_run}");
    let before = api
        .wait_for(&run_path, Duration::from_secs(30), |v| {
            v["status"] == "completed"
        })
        .await?;
    let runs_before = run_ids(&api).await?;

    let store = SqliteStore::open_unmigrated(&ctx.data().join("tradeloom.db"))
        .await
        .map_err(DrillError::store("opening the drill's SQLite store"))?;
    let lock = store
        .lock_exclusive()
        .await
        .map_err(DrillError::store("taking the write lock"))?;

    let start = api
        .post_json(
            &format!("/workflows/{workflow}/runs"),
            &json!({"inputs": {}}),
        )
        .await;
    let create = api
        .post_json("/workflows", &definition("drill-store-2"))
        .await;
    let mut clear = true;
    let mut seen = Vec::new();
    for (what, reply) in [
        ("POST /workflows/{id}/runs", &start),
        ("POST /workflows", &create),
    ] {
        match reply {
            Ok(r) => {
                clear &= is_store_error(r);
                seen.push(format!(
                    "{what}: {} in {} ms, {}",
                    r.status,
                    r.elapsed.as_millis(),
                    r.body
                ));
            }
            Err(e) => {
                clear = false;
                seen.push(format!("{what}: no answer: {}", chain(e)));
            }
        }
    }
    ctx.check(
        "writes fail clearly while the store is locked",
        format!(
            "503 with JSON {{\"error\": \"store_unavailable\", \"message\": naming the database}} within {PROMPT:?}"
        ),
        seen.join("; "),
        clear,
    );
    let during = api.get_json(&run_path).await?;
    ctx.check(
        "reads still answer during the outage",
        "GET of the stored run: 200, the same body as before",
        format!("{}; same: {}", during.status, during.body == before),
        during.status == 200 && during.body == before,
    );

    lock.release()
        .await
        .map_err(DrillError::store("releasing the write lock"))?;
    store.pool().close().await;

    let after = api.get_json(&run_path).await?;
    ctx.check(
        "stored data unchanged after the outage",
        "GET of the stored run: the same body as before",
        format!("{}; same: {}", after.status, after.body == before),
        after.status == 200 && after.body == before,
    );
    let runs_after = run_ids(&api).await?;
    let workflows = api.get_json("/workflows").await?.body;
    let names: Vec<&str> = workflows["workflows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w["name"].as_str())
        .collect();
    ctx.check(
        "nothing half-written",
        "no run and no workflow from the refused writes",
        format!(
            "runs before {}, after {}; workflows {names:?}",
            runs_before.len(),
            runs_after.len()
        ),
        runs_before == runs_after && !names.contains(&"drill-store-2"),
    );

    let again = api
        .post_json(
            &format!("/workflows/{workflow}/runs"),
            &json!({"inputs": {}}),
        )
        .await?;
    let id = again.body["run_id"].as_str().unwrap_or("").to_string();
    ctx.require(
        "writes succeed after the store returns",
        "201",
        format!("{} {}", again.status, again.body),
        again.status == 201 && !id.is_empty(),
    )?;
    let done = api
        .wait_for(
            &format!("/workflow-runs/{id}"),
            Duration::from_secs(30),
            |v| {
                matches!(
                    v["status"].as_str(),
                    Some("completed" | "failed" | "cancelled")
                )
            },
        )
        .await?;
    let nodes = done["nodes"].as_array().map_or(0, Vec::len);
    ctx.check(
        "a new run completes with all its nodes",
        "status completed, 2 nodes completed",
        format!("status {}, {nodes} nodes", done["status"]),
        done["status"] == "completed"
            && nodes == 2
            && done["nodes"]
                .as_array()
                .is_some_and(|n| n.iter().all(|n| n["status"] == "completed")),
    );
    Ok(())
}

fn is_store_error(r: &Reply) -> bool {
    r.status == 503
        && r.body["error"] == "store_unavailable"
        && r.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("locked") || m.contains("database"))
        && r.elapsed < PROMPT
}

/// Ids of every workflow run, sorted.
async fn run_ids(api: &Client) -> Result<Vec<String>> {
    let r = api.get_json("/workflow-runs?limit=200").await?;
    let mut ids: Vec<String> = r.body["runs"]
        .as_array()
        .ok_or_else(|| {
            DrillError::Observed(format!("GET /workflow-runs: {} {}", r.status, r.body))
        })?
        .iter()
        .filter_map(|v| {
            v["id"]
                .as_str()
                .or(v["run_id"].as_str())
                .map(str::to_string)
        })
        .collect();
    ids.sort();
    Ok(ids)
}
