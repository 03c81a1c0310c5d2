//! Reference document 002 (AI-Trader) compatibility over real HTTP and from the command line:
//! its `default_config.json` mapped to a simulation, the fields its clients read (`date_range`,
//! `last_simulation_date`, `positions`, `daily_pnl`), `OPENAI_API_BASE`/`OPENAI_API_KEY`, and
//! the read-only data plane (`GET /news`, `GET /simulate/{job_id}/explain`).

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use tradeloom_core::{Currency, Money};

use crate::service::Service;
use crate::simulate::{client, get, post, wait_done};
use crate::{repo, stderr, stdout, tradeloom};

/// An AI-Trader `default_config.json` whose enabled model is served by `mock`.
fn ai_config(mock: &Service) -> Value {
    json!({
        "agent_type": "BaseAgent",
        "market": "us",
        "date_range": {"init_date": "2025-01-02", "end_date": "2025-01-07"},
        "models": [
            {"name": "claude-3.7-sonnet", "basemodel": "anthropic/claude-3.7-sonnet",
             "signature": "claude-3.7-sonnet", "enabled": false,
             "openai_base_url": "Optional: YOUR_OPENAI_BASE_URL,you can write them in .env file",
             "openai_api_key": "Optional: YOUR_OPENAI_API_KEY,you can write them in .env file"},
            {"name": "Momentum", "basemodel": "momentum", "signature": "mom-v1", "enabled": true,
             "openai_base_url": format!("{}/v1", mock.url)}
        ],
        "agent_config": {"max_steps": 10, "max_retries": 1, "base_delay": 0.05,
                         "initial_cash": 10000.0, "verbose": true},
        "log_config": {"log_path": "./data/agent_data"}
    })
}

/// The same config with five fields that cannot be mapped.
fn bad_ai_config(mock: &Service) -> Value {
    let mut bad = ai_config(mock);
    bad["agent_type"] = json!("BaseAgent_Hour");
    bad["date_range"]["init_date"] = json!("2025-01-02 10:30:00");
    bad["models"][1]["openai_api_key"] = json!("sk-live-do-not-echo-42");
    bad["agent_config"]["temperature"] = json!(0.7);
    bad["trading_hours"] = json!(["10:30"]);
    bad
}

const BAD_FIELDS: [&str; 5] = [
    "agent_type",
    "date_range.init_date",
    "models[1].openai_api_key",
    "agent_config.temperature",
    "trading_hours",
];

fn usd(text: &str) -> Money {
    Money::parse(text, Currency::USD).unwrap()
}

#[test]
fn simulate_takes_an_ai_trader_config() {
    let data = TempDir::new().unwrap();
    let mock = Service::mock_llm();
    let file = data.path().join("default_config.json");
    std::fs::write(&file, ai_config(&mock).to_string()).unwrap();
    let universe = repo().join("examples/universe");
    let out = tradeloom(
        data.path(),
        &[
            "simulate",
            "--ai-trader-config",
            file.to_str().unwrap(),
            "--universe",
            universe.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let v: Value = serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
    assert_eq!(v["job_status"], "completed", "{v}");
    assert_eq!(
        v["progress"]["completed"], 4,
        "1 enabled model × 4 trading days: {v}"
    );
    assert_eq!(
        v["leaderboard"][0]["model"], "mom-v1",
        "named by its signature"
    );

    std::fs::write(&file, bad_ai_config(&mock).to_string()).unwrap();
    let bad = tradeloom(
        data.path(),
        &[
            "simulate",
            "--ai-trader-config",
            file.to_str().unwrap(),
            "--universe",
            universe.to_str().unwrap(),
        ],
    );
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    let err = stderr(&bad);
    assert!(
        err.contains("5 fields of the AI-Trader config cannot be mapped"),
        "{err}"
    );
    for field in BAD_FIELDS {
        assert!(
            err.contains(&format!("`{field}`")),
            "{field} not named: {err}"
        );
    }
    assert!(!err.contains("sk-live"), "the key is never shown: {err}");
    // --universe goes with --ai-trader-config.
    let usage = tradeloom(
        data.path(),
        &["simulate", "--ai-trader-config", file.to_str().unwrap()],
    );
    assert_eq!(usage.status.code(), Some(2));
    assert!(stderr(&usage).contains("--universe"), "{}", stderr(&usage));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_maps_ai_trader_configs_and_answers_what_its_clients_read() {
    let data = TempDir::new().unwrap();
    let mock = Service::mock_llm();
    let api = Service::serve_for(data.path(), &mock);
    let client = client();
    let universe = repo().join("examples/universe");

    let (code, bad) = post(
        &client,
        format!("{}/simulate/trigger", api.url),
        &json!({"ai_trader_config": bad_ai_config(&mock), "universe": universe}),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{bad}");
    assert_eq!(bad["error"], "invalid_ai_trader_config");
    let fields: Vec<&str> = bad["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields.len(), 5, "{bad}");
    for field in BAD_FIELDS {
        assert!(fields.contains(&field), "{field} not named: {bad}");
    }
    assert!(!bad.to_string().contains("sk-live"), "{bad}");

    let (code, started) = post(
        &client,
        format!("{}/simulate/trigger", api.url),
        &json!({"ai_trader_config": ai_config(&mock), "universe": universe}),
    )
    .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{started}");
    assert_eq!(
        started["date_range"],
        json!(["2025-01-02", "2025-01-03", "2025-01-06", "2025-01-07"])
    );
    assert_eq!(started["models"], json!(["mom-v1"]));
    let job_id = started["job_id"].as_str().unwrap().to_string();
    let done = wait_done(&client, &api.url, &job_id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["last_simulation_date"], "2025-01-07");
    assert_eq!(done["date_range"], started["date_range"]);

    // /results?detail=full: positions (with CASH) and the day's PnL, exact decimal strings that
    // chain from the initial cash day to day.
    let (code, results) = get(
        &client,
        format!("{}/results?job_id={job_id}&detail=full", api.url),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{results}");
    let items = results["results"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    let mut previous = usd("10000");
    for item in items {
        let pnl = &item["daily_pnl"];
        let value = usd(pnl["portfolio_value"].as_str().unwrap());
        assert_eq!(
            usd(pnl["previous_value"].as_str().unwrap()),
            previous,
            "{item}"
        );
        assert_eq!(
            usd(pnl["profit"].as_str().unwrap()),
            value.checked_sub(previous).unwrap(),
            "{item}"
        );
        assert!(pnl["return_pct"].is_string(), "{item}");
        assert_eq!(item["positions"]["CASH"], item["cash"], "{item}");
        for (symbol, qty) in item["holdings"].as_object().unwrap() {
            assert_eq!(&item["positions"][symbol], qty, "{item}");
        }
        previous = value;
    }
    // The minimal answer stays as it was.
    let (_, minimal) = get(&client, format!("{}/results?job_id={job_id}", api.url)).await;
    assert!(
        minimal["results"][0].get("daily_pnl").is_none(),
        "{minimal}"
    );

    // `universe` without `ai_trader_config` is refused.
    let (code, refused) = post(
        &client,
        format!("{}/simulate/trigger", api.url),
        &json!({"config_path": "x.yaml", "universe": "examples/universe"}),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["details"]["field"], "universe");

    news_and_explain(&client, &api.url, &job_id).await;
}

/// `GET /news` and `GET /simulate/{job_id}/explain` on the finished job `job_id`.
async fn news_and_explain(client: &reqwest::Client, api: &str, job_id: &str) {
    // A date cuts off at that day's session (14:30 UTC): the 12:00 item of the 16th is in, its
    // 21:30 close recaps are not.
    let (code, news) = get(client, format!("{api}/news?as_of=2025-01-16&limit=100")).await;
    assert_eq!(code, StatusCode::OK, "{news}");
    assert_eq!(news["as_of"], "2025-01-16T14:30:00Z");
    assert_eq!(news["job_id"], job_id);
    let stamps: Vec<&str> = news["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["timestamp"].as_str().unwrap())
        .collect();
    assert!(stamps.contains(&"2025-01-16T12:00:00Z"), "{stamps:?}");
    assert!(
        stamps.iter().all(|t| *t <= "2025-01-16T14:30:00Z"),
        "{stamps:?}"
    );
    assert_eq!(stamps[0], "2025-01-16T12:00:00Z", "newest first");
    let (_, before) = get(
        client,
        format!("{api}/news?as_of=2025-01-16T11:59:59Z&limit=100"),
    )
    .await;
    assert!(
        before["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["timestamp"].as_str().unwrap() < "2025-01-16T12:00:00Z"),
        "{before}"
    );
    // A symbol and search terms narrow it.
    let (_, aaa) = get(
        client,
        format!("{api}/news?as_of=2025-01-10&symbol=AAA&q=closes"),
    )
    .await;
    let aaa = aaa["items"].as_array().unwrap();
    assert!(!aaa.is_empty());
    for item in aaa {
        assert!(
            item["symbols"].as_array().unwrap().contains(&json!("AAA")),
            "{item}"
        );
    }
    let (_, small) = get(client, format!("{api}/news?as_of=2025-01-31&limit=3")).await;
    assert_eq!(small["items"].as_array().unwrap().len(), 3);
    for (query, param) in [
        ("as_of=2025-13-01", "as_of"),
        ("as_of=yesterday", "as_of"),
        ("q=x", "as_of"),
        ("as_of=2025-01-06&limit=0", "limit"),
    ] {
        let (code, e) = get(client, format!("{api}/news?{query}")).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{query}: {e}");
        assert_eq!(e["error"], "invalid_query", "{e}");
        assert_eq!(e["details"]["param"], param, "{e}");
    }
    let (code, e) = get(client, format!("{api}/news?as_of=2025-01-06&job_id=nope")).await;
    assert_eq!(
        (code, e["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("job_not_found"))
    );

    // One model-day explained: its reasoning, tool calls and trades.
    let (code, day) = get(
        client,
        format!("{api}/simulate/{job_id}/explain?model=mom-v1&date=2025-01-03"),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{day}");
    assert_eq!(day["model_day"]["status"], "completed");
    assert_eq!(day["date"], "2025-01-03");
    let reasoning = day["reasoning"].as_array().unwrap();
    assert!(reasoning.iter().any(|m| m["role"] == "assistant"), "{day}");
    let calls = day["tool_calls"].as_array().unwrap();
    assert_eq!(
        calls
            .iter()
            .filter(|c| c["step"].as_u64() > Some(0))
            .count() as u64,
        day["model_day"]["tool_calls"].as_u64().unwrap(),
        "{day}"
    );
    assert!(
        day["trades"].is_array() && day["holdings"].is_array(),
        "{day}"
    );
    for (query, code, error) in [
        (
            "model=nobody&date=2025-01-03",
            StatusCode::NOT_FOUND,
            "model_day_not_found",
        ),
        (
            "model=mom-v1&date=2025-01-04",
            StatusCode::NOT_FOUND,
            "model_day_not_found",
        ),
        (
            "model=mom-v1&date=03/01/2025",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        ("date=2025-01-03", StatusCode::BAD_REQUEST, "invalid_query"),
    ] {
        let (got, e) = get(client, format!("{api}/simulate/{job_id}/explain?{query}")).await;
        assert_eq!(
            (got, e["error"].as_str()),
            (code, Some(error)),
            "{query}: {e}"
        );
    }
    let (_, nobody) = get(
        client,
        format!("{api}/simulate/{job_id}/explain?model=nobody&date=2025-01-03"),
    )
    .await;
    assert_eq!(nobody["details"]["models"], json!(["mom-v1"]), "{nobody}");
    assert!(
        nobody["message"]
            .as_str()
            .unwrap()
            .contains("no model `nobody`")
    );
    let (code, _) = get(
        client,
        format!("{api}/simulate/nope/explain?model=mom-v1&date=2025-01-03"),
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// `OPENAI_API_BASE` is the endpoint of a model without `base_url` and `OPENAI_API_KEY` its
/// key; the key reaches no file of the data dir (store included), no answer and no error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_endpoint_and_key_come_from_the_environment() {
    const SECRET: &str = "sk-test-never-written-8c1f";
    let data = TempDir::new().unwrap();
    let mock = Service::mock_llm();
    let endpoint = format!("{}/v1", mock.url);
    let api = Service::serve_with(
        data.path(),
        &["--http-allow", mock.authority()],
        &[
            ("OPENAI_API_BASE", endpoint.as_str()),
            ("OPENAI_API_KEY", SECRET),
        ],
    );
    let client = client();
    let config = json!({
        "models": [{"name": "d", "model": "momentum", "max_retries": 0}],
        "universe": {"path": repo().join("examples/universe")},
        "start_date": "2025-01-02",
        "end_date": "2025-01-03",
    });
    let (code, started) = post(
        &client,
        format!("{}/simulate/trigger", api.url),
        &json!({"config": config}),
    )
    .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{started}");
    let job_id = started["job_id"].as_str().unwrap().to_string();
    let done = wait_done(&client, &api.url, &job_id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(!done.to_string().contains(SECRET));

    // A model with an endpoint of the caller's choice may not take the operator's key.
    let (code, refused) = post(
        &client,
        format!("{}/simulate/trigger", api.url),
        &json!({"config": {
            "models": [{"name": "x", "base_url": format!("{}/v1/", mock.url), "model": "momentum",
                        "api_key_env": "OPENAI_API_KEY"}],
            "universe": {"path": repo().join("examples/universe")},
            "start_date": "2025-01-02", "end_date": "2025-01-06"}}),
    )
    .await;
    // The same endpoint as OPENAI_API_BASE (a trailing `/` aside): allowed.
    assert_eq!(code, StatusCode::ACCEPTED, "{refused}");
    let second = wait_done(&client, &api.url, refused["job_id"].as_str().unwrap()).await;
    assert_eq!(second["status"], "completed", "{second}");
    let (code, refused) = post(
        &client,
        format!("{}/simulate/trigger", api.url),
        &json!({"config": {
            "models": [{"name": "x", "base_url": "http://example.com/v1", "model": "momentum",
                        "api_key_env": "OPENAI_API_KEY"}],
            "universe": {"path": repo().join("examples/universe")},
            "start_date": "2025-01-02", "end_date": "2025-01-03"}}),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("OPENAI_API_KEY"),
        "{refused}"
    );
    assert!(!refused.to_string().contains(SECRET));
    drop(api);
    for file in files(data.path()) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "the key is in {}",
            file.display()
        );
    }
}
