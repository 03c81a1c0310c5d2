//! Pausing, resuming and cancelling simulation jobs over real HTTP (`tradeloom serve` on
//! loopback, models on a real `tradeloom mock-llm`) and from the command line, the kill switch
//! and `/simulate/current`, and the read-only data plane (`/news`, `/simulate/{id}/explain`).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::service::Service;
use crate::simulate::{client, config, get, post, wait_done};
use crate::{stderr, stdout, tradeloom};

/// Polls the job until `pred` holds for its status answer.
async fn wait_for(
    client: &reqwest::Client,
    api: &str,
    job_id: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..1200 {
        let (code, s) = get(client, format!("{api}/simulate/status/{job_id}")).await;
        assert_eq!(code, StatusCode::OK, "{s}");
        if pred(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("job {job_id}: never {what}");
}

fn progress(s: &Value, field: &str) -> u64 {
    s["progress"][field].as_u64().unwrap()
}

/// A 409 naming the job and its status.
fn assert_state_conflict(code: StatusCode, body: &Value, job_id: &str, status: &str) {
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "invalid_job_state", "{body}");
    assert_eq!(body["details"]["job_id"], job_id, "{body}");
    assert_eq!(body["details"]["status"], status, "{body}");
    assert!(body["message"].as_str().unwrap().contains(job_id), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_survives_a_restart_and_resume_finishes_the_job() {
    let data = TempDir::new().unwrap();
    let mock = Service::mock_llm();
    let client = client();
    // ~150 ms per LLM call of `a`: the pause lands while days are left.
    let body = json!({"config": config(&mock, &[("a", "fault-slow-150"), ("b", "momentum")], "2025-01-10")});
    let job_id;
    let paused_at;
    {
        let api = Service::serve_for(data.path(), &mock);
        let (code, started) = post(&client, format!("{}/simulate/trigger", api.url), &body).await;
        assert_eq!(code, StatusCode::ACCEPTED, "{started}");
        job_id = started["job_id"].as_str().unwrap().to_string();
        wait_for(&client, &api.url, &job_id, "2 days done", |s| {
            progress(s, "completed") >= 2
        })
        .await;
        let url = |action: &str| format!("{}/simulate/{job_id}/{action}", api.url);
        let (code, paused) = post(&client, url("pause"), &json!({})).await;
        assert_eq!(code, StatusCode::OK, "{paused}");
        assert_eq!(paused["status"], "paused", "{paused}");
        assert_eq!(paused["action"], "pause");
        assert_eq!(paused["by"], "anonymous", "auth is off on loopback");
        // In-flight days finish; then nothing starts.
        let idle = wait_for(&client, &api.url, &job_id, "idle", |s| {
            progress(s, "running") == 0
        })
        .await;
        assert_eq!(idle["status"], "paused", "{idle}");
        paused_at = progress(&idle, "completed");
        assert!(paused_at < 14, "the job finished before the pause: {idle}");
        tokio::time::sleep(Duration::from_millis(600)).await;
        let (_, still) = get(&client, format!("{}/simulate/status/{job_id}", api.url)).await;
        assert_eq!(still["status"], "paused");
        assert_eq!(progress(&still, "completed"), paused_at, "no day started");
        assert_eq!(progress(&still, "pending"), 14 - paused_at, "{still}");
        // Illegal transitions: 409 naming the job and its status; unknown jobs: 404.
        let (code, again) = post(&client, url("pause"), &json!({})).await;
        assert_state_conflict(code, &again, &job_id, "paused");
        assert_eq!(again["details"]["action"], "pause");
        let (code, missing) = post(
            &client,
            format!("{}/simulate/no-such-job/resume", api.url),
            &json!({}),
        )
        .await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{missing}");
        assert_eq!(missing["error"], "job_not_found");
        assert_eq!(missing["details"]["job_id"], "no-such-job");
        // A trigger of the same config does not override the pause.
        let (code, retrigger) = post(&client, format!("{}/simulate/trigger", api.url), &body).await;
        assert_eq!(code, StatusCode::CONFLICT, "{retrigger}");
        assert_eq!(retrigger["error"], "job_paused");
        assert_eq!(retrigger["details"]["job_id"], job_id.as_str());
        // A paused job is not the current one.
        let (code, current) = get(&client, format!("{}/simulate/current", api.url)).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{current}");
        // `api` dropped here: SIGKILL.
    }
    // A restarted server sees the pause and does not resume the job by itself.
    let api = Service::serve_for(data.path(), &mock);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, after) = get(&client, format!("{}/simulate/status/{job_id}", api.url)).await;
    assert_eq!(after["status"], "paused", "{after}");
    assert_eq!(progress(&after, "completed"), paused_at);
    let url = |action: &str| format!("{}/simulate/{job_id}/{action}", api.url);
    let (code, resumed) = post(&client, url("resume"), &json!({})).await;
    assert_eq!(code, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["status"], "running");
    let (code, twice) = post(&client, url("resume"), &json!({})).await;
    if code == StatusCode::CONFLICT {
        assert_eq!(twice["details"]["job_id"], job_id.as_str(), "{twice}");
        assert_eq!(twice["details"]["allowed_from"], json!(["paused"]));
    } else {
        panic!("a second resume was accepted: {twice}");
    }
    let done = wait_done(&client, &api.url, &job_id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(progress(&done, "completed"), 14);
    // Every model-day ran once: none was started twice across the pause and the restart.
    for d in done["details"].as_array().unwrap() {
        assert_eq!(d["attempts"], 1, "{d}");
    }
    let (code, late) = post(&client, url("cancel"), &json!({})).await;
    assert_state_conflict(code, &late, &job_id, "completed");
    let (code, late) = post(&client, url("pause"), &json!({})).await;
    assert_state_conflict(code, &late, &job_id, "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_marks_the_rest_cancelled_and_a_retrigger_runs_them() {
    let data = TempDir::new().unwrap();
    let mock = Service::mock_llm();
    let client = client();
    let body = json!({"config": config(&mock, &[("a", "fault-slow-150"), ("b", "momentum")], "2025-01-10")});
    let api = Service::serve_for(data.path(), &mock);
    let (code, started) = post(&client, format!("{}/simulate/trigger", api.url), &body).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{started}");
    let job_id = started["job_id"].as_str().unwrap().to_string();
    wait_for(&client, &api.url, &job_id, "2 days done", |s| {
        progress(s, "completed") >= 2
    })
    .await;
    let (code, cancelled) = post(
        &client,
        format!("{}/simulate/{job_id}/cancel", api.url),
        &json!({}),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let end = wait_for(&client, &api.url, &job_id, "idle", |s| {
        progress(s, "running") == 0
    })
    .await;
    assert_eq!(end["status"], "cancelled", "{end}");
    let (done, gone) = (progress(&end, "completed"), progress(&end, "cancelled"));
    assert!(gone > 0, "{end}");
    assert_eq!(done + gone, 14, "{end}");
    assert_eq!(progress(&end, "pending"), 0);
    assert!(end["completed_at"].is_string(), "{end}");
    for d in end["details"].as_array().unwrap() {
        if d["status"] == "cancelled" {
            assert_eq!(d["error"], "cancelled by anonymous", "{d}");
        }
    }
    let (code, again) = post(
        &client,
        format!("{}/simulate/{job_id}/resume", api.url),
        &json!({}),
    )
    .await;
    assert_state_conflict(code, &again, &job_id, "cancelled");
    // The same config again runs the cancelled days (not "current").
    let (code, retrigger) = post(&client, format!("{}/simulate/trigger", api.url), &body).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{retrigger}");
    assert_eq!(retrigger["job_id"], job_id.as_str());
    assert_eq!(retrigger["resumed"], true);
    let finished = wait_done(&client, &api.url, &job_id).await;
    assert_eq!(finished["status"], "completed", "{finished}");
    assert_eq!(progress(&finished, "completed"), 14);
}

/// Job control needs the operator role, like every other write of the job API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_control_is_bound_to_the_key_and_its_role() {
    let data = TempDir::new().unwrap();
    let mock = Service::mock_llm();
    let client = client();
    let key = |name: &str, role: &str| {
        let out = tradeloom(
            data.path(),
            &["keys", "create", "--name", name, "--role", role, "--json"],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let v: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
        v["key"].as_str().unwrap().to_string()
    };
    let viewer = key("watcher", "viewer");
    let operator = key("ops-bot", "operator");
    let api = Service::serve_with(
        data.path(),
        &["--http-allow", mock.authority(), "--auth", "required"],
        &[("MAX_CONCURRENT_JOBS", "1")],
    );
    let body = json!({"config": config(&mock, &[("a", "fault-slow-150")], "2025-01-10")});
    let send = |path: String, key: Option<&str>| {
        let mut r = client.post(format!("{}{path}", api.url)).json(&body);
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        async move {
            let resp = r.send().await.unwrap();
            let code = resp.status();
            (code, resp.json::<Value>().await.unwrap())
        }
    };
    let (code, started) = send("/simulate/trigger".into(), Some(&operator)).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{started}");
    let job_id = started["job_id"].as_str().unwrap().to_string();
    let (code, anon) = send(format!("/simulate/{job_id}/pause"), None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "{anon}");
    let (code, refused) = send(format!("/simulate/{job_id}/pause"), Some(&viewer)).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["details"]["required_role"], "operator");
    let (code, paused) = send(format!("/simulate/{job_id}/pause"), Some(&operator)).await;
    assert_eq!(code, StatusCode::OK, "{paused}");
    assert_eq!(paused["by"], "ops-bot", "the key's name is who paused");
    let (code, cancelled) = send(format!("/simulate/{job_id}/cancel"), Some(&operator)).await;
    assert_eq!(code, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
}

/// A job triggered while the kill switch is engaged ends with its days refused (never
/// completed), is not `current` after the release, and a trigger after the release runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_started_under_the_kill_switch_is_not_current_after_release() {
    let data = TempDir::new().unwrap();
    let mock = Service::mock_llm();
    let client = client();
    let api = Service::serve_for(data.path(), &mock);
    let (code, engaged) = post(
        &client,
        format!("{}/killswitch/engage", api.url),
        &json!({"reason": "drill"}),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{engaged}");
    let body =
        json!({"config": config(&mock, &[("a", "momentum"), ("b", "buy_and_hold")], "2025-01-06")});
    let (code, started) = post(&client, format!("{}/simulate/trigger", api.url), &body).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{started}");
    let job_id = started["job_id"].as_str().unwrap().to_string();
    let refused = wait_done(&client, &api.url, &job_id).await;
    assert_eq!(refused["status"], "failed", "{refused}");
    assert_eq!(progress(&refused, "refused"), 6, "{refused}");
    assert_eq!(progress(&refused, "completed"), 0, "{refused}");
    assert_eq!(refused["last_simulation_date"], Value::Null);
    let (code, current) = get(&client, format!("{}/simulate/current", api.url)).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{current}");

    let (code, released) = post(
        &client,
        format!("{}/killswitch/release", api.url),
        &json!({"reason": "over"}),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{released}");
    // Released: the refused job is still not the current one …
    let (code, current) = get(&client, format!("{}/simulate/current", api.url)).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{current}");
    // … and its config is not "current" either: a trigger runs the refused days.
    let (code, again) = post(&client, format!("{}/simulate/trigger", api.url), &body).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{again}");
    assert_eq!(again["status"], "running");
    assert_eq!(again["job_id"], job_id.as_str());
    let done = wait_done(&client, &api.url, &job_id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(progress(&done, "completed"), 6);
    assert_eq!(done["last_simulation_date"], "2025-01-06");
    let (code, now) = post(&client, format!("{}/simulate/trigger", api.url), &body).await;
    assert_eq!(
        (code, now["status"].as_str()),
        (StatusCode::OK, Some("current"))
    );
    assert_eq!(now["last_simulation_date"], "2025-01-06");
}

/// `tradeloom jobs pause|resume|cancel` on the store: a `simulate` in another process stops at
/// the pause, and `jobs resume` runs the rest here.
#[test]
fn jobs_pause_resume_cancel_from_the_command_line() {
    let data = TempDir::new().unwrap();
    let mock = Service::mock_llm();
    let cfg = data.path().join("sim.yaml");
    std::fs::write(
        &cfg,
        format!(
            "models:\n  - {{name: a, base_url: {0}/v1, model: fault-slow-150}}\n  - {{name: b, base_url: {0}/v1, model: momentum}}\n\
             universe: {{path: {1}}}\nstart_date: 2025-01-02\nend_date: 2025-01-10\n",
            mock.url,
            crate::repo().join("examples/universe").display()
        ),
    )
    .unwrap();
    // The store exists before two processes open it (neither races the other's migrations).
    let migrated = tradeloom(data.path(), &["db", "migrate"]);
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    let sim = std::process::Command::new(env!("CARGO_BIN_EXE_tradeloom"))
        .args(["--data-dir", data.path().to_str().unwrap(), "simulate"])
        .arg(&cfg)
        .arg("--json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = |id: &str| -> Value {
        let out = tradeloom(data.path(), &["jobs", "status", id, "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str(&stdout(&out)).unwrap()
    };
    let mut job_id = String::new();
    let mut last = String::new();
    for _ in 0..600 {
        let list = tradeloom(data.path(), &["jobs", "list", "--json"]);
        last = format!("{}{}", stdout(&list), stderr(&list));
        if let Ok(Value::Array(jobs)) = serde_json::from_str::<Value>(&stdout(&list))
            && let Some(job) = jobs.first()
        {
            job_id = job["id"].as_str().unwrap().to_string();
            if status(&job_id)["progress"]["completed"].as_u64().unwrap() >= 2 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if job_id.is_empty() {
        let out = sim.wait_with_output().unwrap();
        panic!(
            "the job never appeared: {last}; simulate: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let paused = tradeloom(data.path(), &["jobs", "pause", &job_id[..8], "--json"]);
    assert!(paused.status.success(), "{}", stderr(&paused));
    let v: Value = serde_json::from_str(stdout(&paused).trim()).unwrap();
    assert_eq!(v["status"], "paused", "{v}");
    // The `simulate` process stops at the pause (its job is not completed: exit 1).
    let out = sim.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let end: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(end["job_status"], "paused", "{end}");
    let left = status(&job_id);
    assert_eq!(left["job"]["status"], "paused");
    assert_eq!(left["progress"]["running"], 0, "{left}");
    // Pausing again: exit 2 naming the job and its status.
    let again = tradeloom(data.path(), &["jobs", "pause", &job_id]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains(&job_id) && stderr(&again).contains("is paused"),
        "{}",
        stderr(&again)
    );
    // Resume runs the rest in this process.
    let resumed = tradeloom(data.path(), &["jobs", "resume", &job_id, "--json"]);
    assert!(
        resumed.status.success(),
        "{}{}",
        stdout(&resumed),
        stderr(&resumed)
    );
    let v: Value = serde_json::from_str(stdout(&resumed).lines().last().unwrap()).unwrap();
    assert_eq!(v["job_status"], "completed", "{v}");
    assert_eq!(v["progress"]["completed"], 14, "{v}");
    let late = tradeloom(data.path(), &["jobs", "cancel", &job_id]);
    assert_eq!(late.status.code(), Some(2));
    assert!(stderr(&late).contains("is completed"), "{}", stderr(&late));
    let events = tradeloom(data.path(), &["jobs", "resume", "no-such-job"]);
    assert_eq!(events.status.code(), Some(2));
}
