//! `tradeloom killswitch`: engaged, it stops every order of `tradeloom run`; released, orders
//! flow again; its state and status survive across processes.

use crate::{repo, run_json, stderr, stdout, tradeloom};

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn an_engaged_global_kill_switch_refuses_every_order_of_a_run_until_released() {
    let data = tempfile::tempdir().unwrap();
    let spec = repo().join("examples/specs/goog_sma_cross.yaml");

    let out = tradeloom(
        data.path(),
        &[
            "killswitch",
            "engage",
            "--reason",
            "exchange outage drill",
            "--by",
            "ops",
        ],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    let (json, dir) = run_json(data.path(), &spec);
    assert_eq!(json["status"], "completed");
    let fills = std::fs::read_to_string(dir.join("fills.csv")).unwrap();
    assert_eq!(fills.lines().count(), 1, "only the header: {fills}");
    let journal = lines(&dir.join("journal.jsonl"));
    let engaged: Vec<_> = journal
        .iter()
        .filter(|l| l["event"] == "kill_switch_engaged")
        .collect();
    assert_eq!(engaged.len(), 1);
    assert_eq!(engaged[0]["reason"], "operator");
    let submitted = journal
        .iter()
        .filter(|l| l["event"] == "order_submitted")
        .count();
    let refused: Vec<_> = journal
        .iter()
        .filter(|l| l["event"] == "order_rejected")
        .collect();
    assert!(submitted > 0, "the strategy tried to trade");
    assert_eq!(refused.len(), submitted, "every order refused");
    for r in &refused {
        assert_eq!(r["code"], "risk.kill_switch");
        let reason = r["reason"].as_str().unwrap();
        assert!(
            reason.contains("global kill switch engaged by ops")
                && reason.contains("exchange outage drill"),
            "{reason}"
        );
    }
    assert!(!journal.iter().any(|l| l["event"] == "order_filled"));

    let out = tradeloom(
        data.path(),
        &[
            "killswitch",
            "release",
            "--reason",
            "drill over",
            "--by",
            "ops",
        ],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let (_, dir) = run_json(data.path(), &spec);
    let fills = std::fs::read_to_string(dir.join("fills.csv")).unwrap();
    assert!(fills.lines().count() > 1, "orders fill again after release");
    let journal = lines(&dir.join("journal.jsonl"));
    assert!(!journal.iter().any(|l| l["code"] == "risk.kill_switch"));

    let events = lines(&data.path().join("killswitch/global.events.jsonl"));
    let actions: Vec<_> = events.iter().map(|e| e["action"].clone()).collect();
    assert_eq!(actions, ["engage", "release"]);
}

#[test]
fn status_json_has_the_contract_shape_for_every_scope() {
    let data = tempfile::tempdir().unwrap();
    let status = |data: &std::path::Path| -> serde_json::Value {
        let out = tradeloom(data, &["killswitch", "status", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str(stdout(&out).trim()).unwrap()
    };
    let empty = status(data.path());
    assert_eq!(empty["global"]["engaged"], false);
    assert_eq!(empty["runs"], serde_json::json!({}));
    assert_eq!(empty["jobs"], serde_json::json!({}));

    for args in [
        &[
            "killswitch",
            "engage",
            "--reason",
            "bad fills",
            "--run",
            "r-1",
            "--flatten",
        ][..],
        &[
            "killswitch",
            "engage",
            "--reason",
            "llm loop",
            "--job",
            "j-1",
        ][..],
        &["killswitch", "engage", "--reason", "all stop"][..],
    ] {
        let out = tradeloom(data.path(), args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    let s = status(data.path());
    assert_eq!(s["global"]["engaged"], true);
    assert_eq!(s["global"]["reason"], "all stop");
    assert_eq!(s["runs"]["r-1"]["engaged"], true);
    assert_eq!(s["runs"]["r-1"]["flatten"], true);
    assert_eq!(s["runs"]["r-1"]["scope"], "run:r-1");
    assert_eq!(s["jobs"]["j-1"]["reason"], "llm loop");

    let out = tradeloom(
        data.path(),
        &["killswitch", "release", "--run", "r-1", "--reason", "ok"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(status(data.path())["runs"]["r-1"]["engaged"], false);
}

#[test]
fn bad_kill_switch_input_is_a_clear_usage_error() {
    let data = tempfile::tempdir().unwrap();
    let out = tradeloom(data.path(), &["killswitch", "engage"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--reason"), "{}", stderr(&out));

    let out = tradeloom(
        data.path(),
        &[
            "killswitch",
            "engage",
            "--reason",
            "x",
            "--run",
            "a",
            "--job",
            "b",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "--run and --job exclude each other"
    );

    let out = tradeloom(
        data.path(),
        &["killswitch", "engage", "--reason", "x", "--run", "../etc"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid kill switch scope"),
        "{}",
        stderr(&out)
    );

    std::fs::create_dir_all(data.path().join("killswitch")).unwrap();
    std::fs::write(data.path().join("killswitch/global.state.json"), "{").unwrap();
    let out = tradeloom(data.path(), &["killswitch", "status", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("global.state.json") && stderr(&out).contains("ENGAGED"),
        "{}",
        stderr(&out)
    );
}

/// The kill switch over HTTP: viewers read it, operators change it (recorded as their key's
/// name), bad bodies are 400/422 naming the field, and a restarted server sees the same state.
#[tokio::test(flavor = "multi_thread")]
async fn the_api_engages_and_releases_with_roles_and_the_state_survives_a_restart() {
    use reqwest::StatusCode;
    use serde_json::{Value, json};

    use crate::service::Service;

    tradeloom_llm::install_crypto_provider();
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let key = |name: &str, role: &str| -> String {
        let out = tradeloom(
            d,
            &["keys", "create", "--name", name, "--role", role, "--json"],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let v: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
        v["key"].as_str().unwrap().to_string()
    };
    let viewer = key("watcher", "viewer");
    let operator = key("ops-desk", "operator");
    let c = reqwest::Client::new();
    let call = |req: reqwest::RequestBuilder| async move {
        let r = req.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
        )
    };

    let api = Service::serve_with(d, &["--auth", "required"], &[]);
    let url = |path: &str| format!("{}{path}", api.url);
    let (code, body) = call(c.get(url("/killswitch"))).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "{body}");
    let (code, body) = call(c.get(url("/killswitch")).bearer_auth(&viewer)).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["global"]["engaged"], false);
    assert!(body["runs"].is_object() && body["jobs"].is_object());

    let engage = json!({"reason": "venue outage", "flatten": true});
    let (code, body) = call(
        c.post(url("/killswitch/engage"))
            .bearer_auth(&viewer)
            .json(&engage),
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "forbidden");
    assert!(!d.join("killswitch/global.state.json").exists());

    // Bad bodies name the field.
    for (bad, status, field) in [
        (json!({"run": "r1"}), StatusCode::BAD_REQUEST, "reason"),
        (
            json!({"reason": "x", "scope": "all"}),
            StatusCode::BAD_REQUEST,
            "scope",
        ),
        (
            json!({"reason": "  "}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason",
        ),
        (
            json!({"reason": "x", "run": "../etc"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "run",
        ),
        (
            json!({"reason": "x", "run": "a", "job": "b"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "run",
        ),
        (
            json!({"reason": "x", "flatten": "yes"}),
            StatusCode::BAD_REQUEST,
            "flatten",
        ),
    ] {
        let (code, body) = call(
            c.post(url("/killswitch/engage"))
                .bearer_auth(&operator)
                .json(&bad),
        )
        .await;
        assert_eq!(code, status, "{bad}: {body}");
        let text = body.to_string();
        assert!(text.contains(field), "{bad}: {text} should name `{field}`");
    }
    assert!(!d.join("killswitch/global.state.json").exists());

    let (code, body) = call(
        c.post(url("/killswitch/engage"))
            .bearer_auth(&operator)
            .json(&engage),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(
        (
            &body["scope"],
            &body["engaged"],
            &body["by"],
            &body["flatten"]
        ),
        (
            &json!("global"),
            &json!(true),
            &json!("ops-desk"),
            &json!(true)
        )
    );
    let (code, body) = call(
        c.post(url("/killswitch/engage"))
            .bearer_auth(&operator)
            .json(&json!({"reason": "bad fills", "job": "job-7"})),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (_, status) = call(c.get(url("/killswitch")).bearer_auth(&viewer)).await;
    assert_eq!(status["global"]["engaged"], true);
    assert_eq!(status["global"]["reason"], "venue outage");
    assert_eq!(status["jobs"]["job-7"]["engaged"], true);

    // The CLI, another process on the data dir, sees what the API wrote.
    let out = tradeloom(d, &["killswitch", "status", "--json"]);
    let cli: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(cli, status, "the API answers what the CLI prints");

    // A restart (a new process) still sees it.
    drop(api);
    let api = Service::serve_with(d, &["--auth", "required"], &[]);
    let url = |path: &str| format!("{}{path}", api.url);
    let (code, again) = call(c.get(url("/killswitch")).bearer_auth(&viewer)).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(again, status, "the state survives a restart");

    let (code, body) = call(
        c.post(url("/killswitch/release"))
            .bearer_auth(&operator)
            .json(&json!({})),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["engaged"], false);
    assert_eq!(body["reason"], "released over the API");
    let (_, status) = call(c.get(url("/killswitch")).bearer_auth(&viewer)).await;
    assert_eq!(status["global"]["engaged"], false);
    assert_eq!(
        status["jobs"]["job-7"]["engaged"], true,
        "other scopes unchanged"
    );
    let events = lines(&d.join("killswitch/global.events.jsonl"));
    let who: Vec<_> = events
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["by"].as_str().unwrap()))
        .collect();
    assert_eq!(who, [("engage", "ops-desk"), ("release", "ops-desk")]);
}

/// Model-days of a job, from its models' files: (model/date, summary, tool calls).
fn model_days(
    data: &std::path::Path,
    job_id: &str,
) -> Vec<(String, serde_json::Value, Vec<serde_json::Value>)> {
    let mut out = Vec::new();
    let agents = data.join("runs").join(job_id).join("agents");
    for file in std::fs::read_dir(&agents).unwrap() {
        let path = file.unwrap().path();
        let model = path.file_stem().unwrap().to_string_lossy().into_owned();
        for (date, day) in tradeloom_agents::model_day_records(data, job_id, &model).unwrap() {
            let summary = day["summary"].clone();
            // A refused day ran no session and has no `tool_calls`.
            let calls = day["tool_calls"].as_array().cloned().unwrap_or_default();
            out.push((format!("{model}/{date}"), summary, calls));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Agents' orders: with the global kill switch engaged a `tradeloom simulate` job trades
/// nothing and every refused order is in the tool call log with `risk.kill_switch`; released,
/// the same models trade.
#[test]
fn an_engaged_kill_switch_refuses_every_agent_model_day_and_release_runs_them() {
    use crate::service::Service;

    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let mock = Service::mock_llm();
    let cfg = d.join("engaged.yaml");
    std::fs::write(
        &cfg,
        format!(
            "models:\n  - {{name: mom, base_url: {0}/v1, model: momentum}}\n  - {{name: bh, base_url: {0}/v1, model: buy_and_hold}}\n\
             universe: {{path: {1}}}\nstart_date: 2025-01-02\nend_date: 2025-01-06\n",
            mock.url,
            repo().join("examples/universe").display()
        ),
    )
    .unwrap();
    let simulate = || -> (std::process::Output, serde_json::Value) {
        let out = tradeloom(d, &["simulate", cfg.to_str().unwrap(), "--json"]);
        let v: serde_json::Value =
            serde_json::from_str(stdout(&out).lines().last().unwrap_or("null")).unwrap();
        (out, v)
    };

    let out = tradeloom(
        d,
        &[
            "killswitch",
            "engage",
            "--reason",
            "agents drill",
            "--by",
            "ops",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Days the kill switch refuses are not completed: the job is not, and simulate fails.
    let (out, v) = simulate();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(v["progress"]["refused"], 6, "2 models × 3 days: {v}");
    assert_eq!(v["progress"]["completed"], 0, "{v}");
    let job = v["job_id"].as_str().unwrap().to_string();
    let days = model_days(d, &job);
    assert_eq!(days.len(), 6, "2 models × 3 days");
    for (day, summary, _) in &days {
        assert_eq!(summary["status"], "refused", "{day}: {summary}");
        assert_eq!(summary["tool_calls"], 0, "{day}: no session while engaged");
        let error = summary["error"].as_str().unwrap();
        assert!(
            error.starts_with("risk.kill_switch") && error.contains("agents drill"),
            "{day}: {error}"
        );
    }

    let out = tradeloom(
        d,
        &[
            "killswitch",
            "release",
            "--reason",
            "drill over",
            "--by",
            "ops",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // The same config again: the refused days run now.
    let (out, v) = simulate();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(v["progress"]["completed"], 6, "{v}");
    let days = model_days(d, v["job_id"].as_str().unwrap());
    let trades: usize = days
        .iter()
        .map(|(_, s, _)| s["trades"].as_array().map_or(0, Vec::len))
        .sum();
    assert!(trades > 0, "released: the models trade");
    for (day, summary, calls) in &days {
        assert_eq!(summary["status"], "completed", "{day}: {summary}");
        assert!(
            calls.iter().all(|c| !c["error"]
                .as_str()
                .unwrap_or("")
                .starts_with("risk.kill_switch")),
            "{day}"
        );
    }
}
