//! The job API end to end over real HTTP: `tradeloom serve` with SQLite, models on a real
//! `tradeloom mock-llm`, and the batch command `tradeloom simulate`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use tradeloom_core::{Currency, Money, Price, Quantity};

use crate::service::Service;
use crate::{repo, stderr, stdout, tradeloom};

pub(crate) fn models(mock: &Service, list: &[(&str, &str)]) -> Value {
    Value::Array(
        list.iter()
            .map(|(name, policy)| {
                json!({"name": name, "base_url": format!("{}/v1", mock.url), "model": policy, "max_retries": 1})
            })
            .collect(),
    )
}

/// A config over the shipped universe from 2025-01-02 to `end`.
pub(crate) fn config(mock: &Service, list: &[(&str, &str)], end: &str) -> Value {
    json!({
        "models": models(mock, list),
        "universe": {"path": repo().join("examples/universe")},
        "start_date": "2025-01-02",
        "end_date": end,
        "max_steps": 10,
        "max_tool_errors": 2,
    })
}

pub(crate) async fn post(
    client: &reqwest::Client,
    url: String,
    body: &Value,
) -> (StatusCode, Value) {
    let r = client.post(url).json(body).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap())
}

pub(crate) async fn get(client: &reqwest::Client, url: String) -> (StatusCode, Value) {
    let r = client.get(url).send().await.unwrap();
    assert!(
        r.headers().contains_key("x-request-id"),
        "every response has a request id"
    );
    let status = r.status();
    (status, r.json().await.unwrap())
}

/// Polls the job until it is terminal.
pub(crate) async fn wait_done(client: &reqwest::Client, api: &str, job_id: &str) -> Value {
    for _ in 0..1200 {
        let (code, status) = get(client, format!("{api}/simulate/status/{job_id}")).await;
        assert_eq!(code, StatusCode::OK, "{status}");
        if ["completed", "partial", "failed", "cancelled"]
            .contains(&status["status"].as_str().unwrap())
        {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {job_id} did not finish");
}

/// Close prices of the shipped universe: symbol → date → close.
fn closes() -> BTreeMap<String, BTreeMap<String, Price>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(repo().join("examples/universe")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("csv") {
            continue;
        }
        let symbol = path.file_stem().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let days = text
            .lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (f[0].to_string(), Price::parse(f[4], 6).unwrap())
            })
            .collect();
        out.insert(symbol, days);
    }
    out
}

pub(crate) fn client() -> reqwest::Client {
    tradeloom_llm::install_crypto_provider();
    reqwest::Client::new()
}

fn usd(text: &str) -> Money {
    Money::parse(text, Currency::USD).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_models_five_days_over_http() {
    let data = TempDir::new().unwrap();
    let mock = Service::mock_llm();
    let api = Service::serve_for(data.path(), &mock);
    let client = client();
    let body = json!({"config": config(&mock, &[("mom", "momentum"), ("rev", "mean_reversion"), ("bh", "buy_and_hold")], "2025-01-08")});

    let (code, started) = post(&client, format!("{}/simulate/trigger", api.url), &body).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{started}");
    // Every trading date, as AI-Trader's clients read it (the 4th and 5th are a weekend).
    assert_eq!(
        started["date_range"],
        json!([
            "2025-01-02",
            "2025-01-03",
            "2025-01-06",
            "2025-01-07",
            "2025-01-08"
        ])
    );
    assert_eq!(started["last_simulation_date"], Value::Null);
    assert_eq!(started["models"], json!(["mom", "rev", "bh"]));
    let job_id = started["job_id"].as_str().unwrap().to_string();
    let status = wait_done(&client, &api.url, &job_id).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["progress"]["total_model_days"], 15);
    assert_eq!(status["progress"]["completed"], 15);
    assert_eq!(status["details"].as_array().unwrap().len(), 15);
    assert_eq!(
        (
            &status["details_total"],
            &status["details_offset"],
            &status["details_next_offset"]
        ),
        (&json!(15), &json!(0), &Value::Null)
    );
    // The model-days page by page: 4 from 0, then the last 3 from 12, in the same order.
    let page = |q: &str| get(&client, format!("{}/simulate/status/{job_id}?{q}", api.url));
    let (code, first) = page("details_limit=4").await;
    assert_eq!(code, StatusCode::OK, "{first}");
    assert_eq!(
        first["details"].as_array().unwrap()[..],
        status["details"].as_array().unwrap()[..4]
    );
    assert_eq!(
        (&first["details_total"], &first["details_next_offset"]),
        (&json!(15), &json!(4))
    );
    let (_, last) = page("details_limit=4&details_offset=12").await;
    assert_eq!(
        last["details"].as_array().unwrap()[..],
        status["details"].as_array().unwrap()[12..]
    );
    assert_eq!(last["details_next_offset"], Value::Null, "{last}");
    let (_, past) = page("details_offset=99").await;
    assert_eq!(
        (past["details"].as_array().unwrap().len(), &past["progress"]),
        (0, &status["progress"])
    );
    for (q, param) in [
        ("details_limit=0", "details_limit"),
        ("details_limit=10001", "details_limit"),
    ] {
        let (code, e) = page(q).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{q}: {e}");
        assert_eq!(
            (e["error"].as_str(), e["details"]["param"].as_str()),
            (Some("invalid_query"), Some(param)),
            "{e}"
        );
    }
    for q in ["details_limit=many", "detail_limit=4"] {
        let (code, e) = page(q).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{q}: {e}");
        assert_eq!(e["error"], "invalid_query", "{q}: {e}");
    }

    // cash + Σ quantity × close = portfolio value, exactly, for every model-day.
    let closes = closes();
    let (code, results) = get(
        &client,
        format!("{}/results?job_id={job_id}&detail=minimal", api.url),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let items = results["results"].as_array().unwrap();
    assert_eq!(items.len(), 15);
    for item in items {
        let date = item["date"].as_str().unwrap();
        let mut total = usd(item["cash"].as_str().unwrap());
        for (symbol, qty) in item["holdings"].as_object().unwrap() {
            let q = Quantity::parse(qty.as_str().unwrap(), 0).unwrap();
            let close = closes[symbol][date];
            total = total
                .checked_add(Money::notional(close, q, Currency::USD).unwrap())
                .unwrap();
        }
        assert_eq!(
            total,
            usd(item["portfolio_value"].as_str().unwrap()),
            "{item}"
        );
    }
    // Full detail carries trades, reasoning and tool calls.
    let (_, full) = get(
        &client,
        format!(
            "{}/results?job_id={job_id}&model=mom&date=2025-01-03&detail=full",
            api.url
        ),
    )
    .await;
    let day = &full["results"][0]["full"];
    assert!(!day["reasoning"].as_array().unwrap().is_empty());
    assert!(
        day["tool_usage"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["tool"] == "get_price")
    );

    // Same config again: nothing left.
    let (code, again) = post(&client, format!("{}/simulate/trigger", api.url), &body).await;
    assert_eq!(code, StatusCode::OK, "{again}");
    assert_eq!(again["status"], "current");
    assert_eq!(again["job_id"], job_id.as_str());

    let (code, board) = get(
        &client,
        format!("{}/results/leaderboard?job_id={job_id}", api.url),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let standings = board["models"].as_array().unwrap();
    assert_eq!(standings.len(), 3);
    for s in standings {
        assert_eq!(s["completed_days"], 5);
        assert!(
            s["final_value"].is_string()
                && s["sharpe"].is_number()
                && s["max_drawdown"].is_string(),
            "{s}"
        );
        // The return is exact: (final − 10000) ÷ 10000, no binary floating-point noise.
        let final_value = usd(s["final_value"].as_str().unwrap());
        let gain = final_value.checked_sub(usd("10000")).unwrap();
        let exact = tradeloom_core::fixed::format_raw(gain.raw() / 10_000, 18, 0);
        assert_eq!(s["total_return"], exact.as_str(), "{s}");
    }
    let (code, health) = get(&client, format!("{}/health", api.url)).await;
    assert_eq!(
        (code, health["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (code, doc) = get(&client, format!("{}/openapi.json", api.url)).await;
    assert_eq!(code, StatusCode::OK);
    assert!(doc["paths"]["/simulate/trigger"]["post"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_faulty_model_makes_the_job_partial() {
    let data = TempDir::new().unwrap();
    let mock = Service::mock_llm();
    let api = Service::serve_for(data.path(), &mock);
    let client = client();
    let body = json!({"config": config(&mock, &[("good", "momentum"), ("bad", "fault-bad-args")], "2025-01-06")});
    let (code, started) = post(&client, format!("{}/simulate/trigger", api.url), &body).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{started}");
    let status = wait_done(&client, &api.url, started["job_id"].as_str().unwrap()).await;
    assert_eq!(status["status"], "partial", "{status}");
    assert_eq!(status["progress"]["completed"], 3);
    assert_eq!(status["progress"]["failed"], 3);
    for d in status["details"].as_array().unwrap() {
        if d["model"] == "bad" {
            assert_eq!(d["status"], "failed");
            let error = d["error"].as_str().unwrap();
            assert!(
                error.contains("too many tool errors") && error.contains("quantity"),
                "{error}"
            );
        } else {
            assert_eq!(d["status"], "completed", "{d}");
            assert!(d["error"].is_null());
        }
    }
    // Issue 12: the failed days' tool errors count (3 per day: the third exceeds
    // max_tool_errors 2), as do their tool calls; the status details show them per day.
    let (code, board) = get(
        &client,
        format!(
            "{}/results/leaderboard?job_id={}",
            api.url,
            started["job_id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{board}");
    let bad = board["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == "bad")
        .unwrap();
    assert_eq!(
        (bad["tool_errors"].clone(), bad["tool_calls"].clone()),
        (json!(9), json!(9)),
        "{bad}"
    );
    assert_eq!(bad["failed_days"], 3, "{bad}");
    for d in status["details"].as_array().unwrap() {
        if d["model"] == "bad" {
            assert_eq!(
                (d["tool_calls"].clone(), d["tool_errors"].clone()),
                (json!(3), json!(3)),
                "{d}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors() {
    let data = TempDir::new().unwrap();
    let mock = Service::mock_llm();
    let api = Service::serve_for(data.path(), &mock);
    let client = client();
    let trigger = format!("{}/simulate/trigger", api.url);

    let r = client
        .post(&trigger)
        .header("content-type", "application/json")
        .body("{\"config\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_json");
    assert!(body["message"].is_string() && body["details"].is_object());

    let mut bad = config(&mock, &[("a", "momentum")], "2025-01-06");
    bad["end_date"] = json!("2024-12-31");
    let (code, e) = post(&client, trigger.clone(), &json!({"config": bad})).await;
    assert_eq!(
        (code, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_config"))
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("end_date 2024-12-31 is before start_date"),
        "{e}"
    );

    let mut unknown = config(&mock, &[("a", "momentum")], "2025-01-06");
    unknown["modles"] = json!([]);
    let (code, e) = post(&client, trigger.clone(), &json!({"config": unknown})).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `modles`"),
        "{e}"
    );

    let (code, e) = post(&client, trigger.clone(), &json!({})).await;
    assert_eq!(
        (code, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let (code, e) = post(
        &client,
        trigger.clone(),
        &json!({"config_path": "no/such.yaml"}),
    )
    .await;
    assert_eq!(
        (code, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("config_path_disabled")),
        "serve without --config-dir reads no config file"
    );

    let (code, e) = get(&client, format!("{}/simulate/status/0000-nope", api.url)).await;
    assert_eq!(
        (code, e["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("job_not_found"))
    );
    let (code, e) = get(&client, format!("{}/results?model=gpt-9", api.url)).await;
    assert_eq!(
        (code, e["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_model"))
    );
    let (code, e) = get(&client, format!("{}/results?date=2025-13-01", api.url)).await;
    assert_eq!(
        (code, e["details"]["param"].as_str()),
        (StatusCode::BAD_REQUEST, Some("date"))
    );
    let (code, e) = get(&client, format!("{}/results?detail=everything", api.url)).await;
    assert_eq!(
        (code, e["details"]["param"].as_str()),
        (StatusCode::BAD_REQUEST, Some("detail"))
    );
    let (code, _) = get(&client, format!("{}/simulate/current", api.url)).await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // MAX_CONCURRENT_JOBS=1: a second config while one runs → 409 naming the running job.
    let slow = json!({"config": config(&mock, &[("slow", "fault-slow-400")], "2025-01-08")});
    let (code, running) = post(&client, trigger.clone(), &slow).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    let other = json!({"config": config(&mock, &[("other", "momentum")], "2025-01-03")});
    let (code, e) = post(&client, trigger.clone(), &other).await;
    assert_eq!(
        (code, e["error"].as_str()),
        (StatusCode::CONFLICT, Some("job_running")),
        "{e}"
    );
    assert_eq!(e["details"]["running_job_id"], running["job_id"]);
    let (code, current) = get(&client, format!("{}/simulate/current", api.url)).await;
    assert_eq!(
        (code, &current["job_id"]),
        (StatusCode::OK, &running["job_id"])
    );
}

/// The job's run folder (a file per model, the last line of a date is the day's): completed
/// model-day → trades, as written next to the store commit.
fn folder_trades(data: &Path, job_id: &str) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    let agents: PathBuf = data.join("runs").join(job_id).join("agents");
    for file in std::fs::read_dir(&agents).unwrap() {
        let path = file.unwrap().path();
        let model = path.file_stem().unwrap().to_string_lossy().into_owned();
        for (date, day) in tradeloom_agents::model_day_records(data, job_id, &model).unwrap() {
            let summary = &day["summary"];
            if summary["status"] == "completed" {
                let key = (model.clone(), date.to_string());
                out.insert(key, summary["trades"].as_array().unwrap().len());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_job_then_restart_resumes_without_duplicates() {
    let data = TempDir::new().unwrap();
    let mock = Service::mock_llm();
    let client = client();
    // Slow models (~150 ms per LLM call) so the kill lands mid-job.
    let body = json!({"config": config(&mock, &[("a", "fault-slow-150"), ("b", "random-5")], "2025-01-10")});
    let job_id = {
        let api = Service::serve_for(data.path(), &mock);
        let (code, started) = post(&client, format!("{}/simulate/trigger", api.url), &body).await;
        assert_eq!(code, StatusCode::ACCEPTED, "{started}");
        let job_id = started["job_id"].as_str().unwrap().to_string();
        loop {
            let (_, s) = get(&client, format!("{}/simulate/status/{job_id}", api.url)).await;
            let done = s["progress"]["completed"].as_u64().unwrap();
            assert!(
                ["pending", "running"].contains(&s["status"].as_str().unwrap()),
                "the job finished before the kill: {s}"
            );
            // Kill while the slow model is inside a day (not between two), so that day's first
            // attempt is cut off; a kill between days would leave nothing to run again.
            let slow_day_running = s["details"].as_array().is_some_and(|days| {
                days.iter()
                    .any(|d| d["model"] == "a" && d["status"] == "running")
            });
            if done >= 4 && slow_day_running {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        job_id
        // `api` dropped here: SIGKILL, no shutdown code runs.
    };
    let api = Service::serve_for(data.path(), &mock);
    let status = wait_done(&client, &api.url, &job_id).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["progress"]["completed"], 14, "2 models × 7 days");
    let attempts: Vec<u64> = status["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["attempts"].as_u64().unwrap())
        .collect();
    assert!(attempts.iter().all(|a| *a >= 1 && *a <= 2), "{attempts:?}");
    // The slow model's day in flight at the kill ran again (its first attempt left no rows).
    assert!(
        attempts.contains(&2),
        "the kill did not land mid-day: {attempts:?}"
    );

    // Every model-day's trades are in the store exactly once: the same count as the run folder
    // wrote for the attempt that committed.
    let on_disk = folder_trades(data.path(), &job_id);
    assert_eq!(on_disk.len(), 14);
    let (_, results) = get(
        &client,
        format!("{}/results?job_id={job_id}&detail=full&limit=100", api.url),
    )
    .await;
    for item in results["results"].as_array().unwrap() {
        let key = (
            item["model"].as_str().unwrap().to_string(),
            item["date"].as_str().unwrap().to_string(),
        );
        let stored = item["full"]["trades"].as_array().unwrap().len();
        assert_eq!(stored, on_disk[&key], "{key:?}");
    }
    // And the same config is now current.
    let (code, again) = post(&client, format!("{}/simulate/trigger", api.url), &body).await;
    assert_eq!(
        (code, again["status"].as_str()),
        (StatusCode::OK, Some("current"))
    );
}

#[test]
fn simulate_command_prints_the_leaderboard() {
    let data = TempDir::new().unwrap();
    let mock = Service::mock_llm();
    let cfg = data.path().join("sim.yaml");
    let text = format!(
        "models:\n  - {{name: mom, base_url: {0}/v1, model: momentum}}\n  - {{name: bh, base_url: {0}/v1, model: buy_and_hold}}\n\
         universe: {{path: {1}}}\nstart_date: 2025-01-02\nend_date: 2025-01-07\n",
        mock.url,
        repo().join("examples/universe").display()
    );
    std::fs::write(&cfg, text).unwrap();
    let out = tradeloom(data.path(), &["simulate", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("completed, 0 failed of 8 model-days"),
        "{text}"
    );
    assert!(
        text.contains("final value") && text.contains("mom") && text.contains("bh"),
        "{text}"
    );

    let again = tradeloom(data.path(), &["simulate", cfg.to_str().unwrap(), "--json"]);
    let v: Value = serde_json::from_str(stdout(&again).lines().last().unwrap()).unwrap();
    assert_eq!(v["status"], "current");
    assert_eq!(v["leaderboard"].as_array().unwrap().len(), 2);

    let list = tradeloom(data.path(), &["jobs", "list"]);
    assert!(stdout(&list).contains(v["job_id"].as_str().unwrap()));
    let board = tradeloom(data.path(), &["results", "--leaderboard", "--json"]);
    let board: Value = serde_json::from_str(&stdout(&board)).unwrap();
    assert_eq!(board["models"][0]["rank"], 1);
    let db = tradeloom(data.path(), &["db", "status"]);
    assert!(stdout(&db).contains("applied"), "{}", stdout(&db));

    // A bad config: exit 2 with the file and line.
    std::fs::write(&cfg, "models: []\nuniverse: {path: x}\nstart_date: 2025-01-02\nend_date: 2025-01-03\ncolour: red\n").unwrap();
    let bad = tradeloom(data.path(), &["simulate", cfg.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("sim.yaml:5"), "{}", stderr(&bad));
}

/// Issue 12: under the kill switch `simulate` does not report a completed job, a re-run after
/// release runs the refused days (not `current`), returns are exact decimal strings, tool calls
/// are counted and a model that never called a tool is warned about.
#[test]
fn simulate_under_the_kill_switch_then_after_release() {
    let data = TempDir::new().unwrap();
    let mock = Service::mock_llm();
    let cfg = data.path().join("sim.yaml");
    let text = format!(
        "models:\n  - {{name: bh, base_url: {0}/v1, model: buy_and_hold}}\n  - {{name: idle, base_url: {0}/v1, model: no-tools}}\n\
         universe: {{path: {1}}}\nstart_date: 2025-01-02\nend_date: 2025-01-03\n",
        mock.url,
        repo().join("examples/universe").display()
    );
    std::fs::write(&cfg, text).unwrap();
    let engage = tradeloom(
        data.path(),
        &["killswitch", "engage", "--reason", "drill", "--by", "ops"],
    );
    assert!(engage.status.success(), "{}", stderr(&engage));
    let out = tradeloom(data.path(), &["simulate", cfg.to_str().unwrap(), "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let v: Value = serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
    assert_ne!(v["job_status"], "completed", "{v}");
    assert_eq!(v["progress"]["refused"], 4, "{v}");
    assert_eq!(v["progress"]["completed"], 0, "{v}");
    let text_out = tradeloom(data.path(), &["simulate", cfg.to_str().unwrap()]);
    assert!(
        stdout(&text_out).contains("4 refused by the kill switch"),
        "{}",
        stdout(&text_out)
    );

    let release = tradeloom(
        data.path(),
        &["killswitch", "release", "--reason", "over", "--by", "ops"],
    );
    assert!(release.status.success(), "{}", stderr(&release));
    let out = tradeloom(data.path(), &["simulate", cfg.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let v: Value = serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
    assert_eq!(v["status"], "completed", "{v}");
    assert_eq!(v["progress"]["completed"], 4, "{v}");
    for entry in v["leaderboard"].as_array().unwrap() {
        assert!(entry["total_return"].is_string(), "{entry}");
        assert!(entry["max_drawdown"].is_string(), "{entry}");
        assert!(entry["tool_calls"].is_u64(), "{entry}");
    }
    let warnings = v["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{v}");
    assert!(warnings[0].as_str().unwrap().contains("`idle`"), "{v}");

    let board = tradeloom(data.path(), &["results", "--leaderboard", "--json"]);
    let board: Value = serde_json::from_str(&stdout(&board)).unwrap();
    for entry in board["models"].as_array().unwrap() {
        assert!(entry["total_return"].is_string(), "{entry}");
    }
    let table = tradeloom(data.path(), &["results", "--leaderboard"]);
    assert!(
        stdout(&table).contains("tool calls") && stdout(&table).contains("warning:"),
        "{}",
        stdout(&table)
    );
}
