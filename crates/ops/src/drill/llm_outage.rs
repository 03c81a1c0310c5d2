//! Drill `llm_outage`: a simulation job on `tradeloom serve` with two models, each on its own
//! `tradeloom mock-llm`; the one serving model `outage` is killed once that model has finished
//! its first day. Asserts that the calls were retried and the model's later days failed naming
//! the LLM endpoint, that the other model was unaffected, that the job ends `partial` with no
//! half-written model-day (failed days have no stored results), and that after the LLM comes
//! back (same port) re-triggering the same config completes the failed days.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tradeloom_client::Client;

use super::ctx::{Ctx, api_client, pause};
use super::error::DrillError;
use super::process::{Service, command_failed};

type Result<T> = std::result::Result<T, DrillError>;

const START: &str = "2025-01-02";
/// Four trading days.
const END: &str = "2025-01-07";
const DAYS: usize = 4;

fn mock(ctx: &Ctx, addr: &str, log: &str) -> Result<Service> {
    ctx.tradeloom()
        .args(["mock-llm", "--addr", addr])
        .start_service(&ctx.log(log), Duration::from_secs(30))
}

fn config(ctx: &Ctx, steady: &str, outage: &str) -> Result<Value> {
    let universe = ctx.work.join("universe");
    Ok(json!({
        "models": [
            {"name": "steady", "base_url": format!("{steady}/v1"), "model": "momentum", "max_retries": 1},
            // Slow enough (about a second a day) that the kill lands within the job.
            {"name": "outage", "base_url": format!("{outage}/v1"), "model": "fault-slow-150",
             "max_retries": 1, "timeout_ms": 5000},
        ],
        "universe": {"path": universe},
        "start_date": START,
        "end_date": END,
        "max_steps": 10,
        "max_tool_errors": 2,
    }))
}

/// Runs the drill.
pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let universe = ctx.work.join("universe");
    let out = ctx
        .tradeloom()
        .args([
            "data",
            "universe",
            "--symbols",
            "4",
            "--days",
            "10",
            "--start",
            START,
        ])
        .arg("--out")
        .arg(&universe)
        .output(Duration::from_secs(60))?;
    if !out.status.success() {
        return Err(command_failed("tradeloom data universe", &out));
    }
    let steady = mock(ctx, "127.0.0.1:0", "mock-steady")?;
    let mut outage = mock(ctx, "127.0.0.1:0", "mock-outage-1")?;
    let outage_url = outage.url.clone();
    let outage_port = outage.port()?;
    // Both mocks are on loopback, which the SSRF guard lets through only when allowed (the
    // outage mock comes back on the same port). Retries are logged at debug level by the LLM
    // client.
    let allow = [&steady.url, &outage_url]
        .map(|u| u.trim_start_matches("http://").to_string())
        .join(",");
    let serve = ctx.start_serve(
        "serve",
        &[
            ("RUST_LOG", "info,tradeloom_llm=debug"),
            ("TRADELOOM_HTTP_ALLOW", &allow),
        ],
    )?;
    let api = api_client(&serve.url, Duration::from_secs(30))?;
    let body = json!({"config": config(ctx, &steady.url, &outage_url)?});
    let started = api.post_json("/simulate/trigger", &body).await?;
    ctx.require(
        "trigger the job",
        "202",
        format!("{} {}", started.status, started.body),
        started.status == 202,
    )?;
    let job = started.body["job_id"]
        .as_str()
        .ok_or_else(|| DrillError::Observed(format!("no job_id in {}", started.body)))?
        .to_string();
    // Every model-day of the job in one answer (it has a few).
    let status_path = format!("/simulate/status/{job}?details_limit=10000");

    // Kill the outage model's LLM once it has completed a day, while the job runs.
    let deadline = Instant::now() + Duration::from_secs(60);
    let before_kill = loop {
        let s = api.get_json(&status_path).await?.body;
        let done = days_of(&s, "outage", "completed");
        if done >= 1 || Instant::now() >= deadline {
            break s;
        }
        pause(10).await;
    };
    outage.guard.kill();
    let done_at_kill = days_of(&before_kill, "outage", "completed");
    ctx.require(
        "LLM killed mid-job",
        "mock-llm of model `outage` killed after its first day, before its last",
        format!(
            "killed with {done_at_kill} of {DAYS} outage days completed, job {}",
            before_kill["status"]
        ),
        (1..DAYS).contains(&done_at_kill) && before_kill["status"] == "running",
    )?;

    let status = wait_terminal(&api, &status_path).await?;
    let failed: Vec<&Value> = details(&status)
        .into_iter()
        .filter(|d| d["model"] == "outage" && d["status"] == "failed")
        .collect();
    let errors: Vec<String> = failed
        .iter()
        .map(|d| d["error"].as_str().unwrap_or("").to_string())
        .collect();
    let endpoint = format!("127.0.0.1:{outage_port}");
    ctx.check(
        "later days of the model fail naming the LLM",
        format!("≥1 failed `outage` day, each error naming {endpoint} and the failed LLM call"),
        format!(
            "{} failed; first error: {}",
            failed.len(),
            errors.first().map_or("none", String::as_str)
        ),
        !failed.is_empty()
            && errors
                .iter()
                .all(|e| e.contains(&endpoint) && e.contains("LLM call failed")),
    );
    let retried = errors
        .iter()
        .all(|e| e.contains("gave up after 2 attempts"));
    let log = std::fs::read_to_string(ctx.log("serve")).unwrap_or_default();
    let logged = log.matches("attempt failed").count();
    ctx.check(
        "calls were retried before giving up",
        "each failed day's error records 2 attempts (max_retries 1); retries logged",
        format!(
            "{} of {} errors say `gave up after 2 attempts`; {logged} failed attempts logged",
            errors
                .iter()
                .filter(|e| e.contains("gave up after 2 attempts"))
                .count(),
            errors.len()
        ),
        !errors.is_empty() && retried,
    );
    let steady_done = days_of(&status, "steady", "completed");
    ctx.check(
        "the other model is unaffected",
        format!("all {DAYS} `steady` days completed"),
        format!("{steady_done}"),
        steady_done == DAYS,
    );
    ctx.check(
        "the job ends partial",
        "status partial; completed + failed = total model-days",
        format!(
            "status {}, progress {}",
            status["status"], status["progress"]
        ),
        status["status"] == "partial" && progress_adds_up(&status),
    );
    let stored = stored_days(&api, &job).await?;
    let expected: BTreeMap<String, usize> = [
        (
            "outage".to_string(),
            days_of(&status, "outage", "completed"),
        ),
        ("steady".to_string(), steady_done),
    ]
    .into();
    ctx.check(
        "nothing half-written",
        format!("stored results exactly the completed model-days: {expected:?}"),
        format!("{stored:?}"),
        stored == expected,
    );

    // The LLM comes back on the same address; the same config again re-runs the failed days.
    let back = mock(ctx, &format!("127.0.0.1:{outage_port}"), "mock-outage-2")?;
    let again = api.post_json("/simulate/trigger", &body).await?;
    ctx.require(
        "re-trigger after the LLM returns",
        "202 for the same job",
        format!("{} {}", again.status, again.body),
        again.status == 202 && again.body["job_id"] == job.as_str(),
    )?;
    let status = wait_terminal(&api, &status_path).await?;
    let stored = stored_days(&api, &job).await?;
    ctx.check(
        "failed days complete after recovery",
        format!("status completed, {DAYS} stored days per model"),
        format!("status {}, stored {stored:?}", status["status"]),
        status["status"] == "completed" && stored.values().all(|&n| n == DAYS) && stored.len() == 2,
    );
    drop(back);
    drop(steady);
    drop(serve);
    Ok(())
}

fn details(status: &Value) -> Vec<&Value> {
    status["details"]
        .as_array()
        .map_or(Vec::new(), |d| d.iter().collect())
}

fn days_of(status: &Value, model: &str, state: &str) -> usize {
    details(status)
        .into_iter()
        .filter(|d| d["model"] == model && d["status"] == state)
        .count()
}

fn progress_adds_up(status: &Value) -> bool {
    let p = &status["progress"];
    let n = |k: &str| p[k].as_u64().unwrap_or(u64::MAX);
    n("completed").checked_add(n("failed")) == Some(n("total_model_days"))
}

async fn wait_terminal(api: &Client, path: &str) -> Result<Value> {
    let status = api
        .wait_for(path, Duration::from_secs(90), |s| {
            matches!(
                s["status"].as_str(),
                Some("completed" | "partial" | "failed")
            )
        })
        .await?;
    Ok(status)
}

/// Stored results of the job per model.
async fn stored_days(api: &Client, job: &str) -> Result<BTreeMap<String, usize>> {
    let r = api
        .get_json(&format!("/results?job_id={job}&detail=minimal&limit=100"))
        .await?;
    let mut out = BTreeMap::new();
    for item in r.body["results"].as_array().into_iter().flatten() {
        *out.entry(item["model"].as_str().unwrap_or("?").to_string())
            .or_insert(0) += 1;
    }
    Ok(out)
}
