//! The example workflows run end to end: real `tradeloom mock-llm` and `tradeloom serve`
//! processes, definitions from `examples/workflows` posted as JSON, runs driven over HTTP.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::mpsc;

use crate::repo;
use crate::service::Service;

/// The mock-llm address the examples are written for.
const EXAMPLE_LLM: &str = "http://127.0.0.1:8089/v1";

fn client() -> reqwest::Client {
    tradeloom_llm::install_crypto_provider();
    reqwest::Client::new()
}

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// An example definition as JSON, its models pointed at `llm` (an API root ending in `/v1`).
fn example(file: &str, llm: &str) -> Value {
    let path = repo().join("examples/workflows").join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let definition = tradeloom_flow::parse_definition(&text, file).unwrap();
    let json = definition.to_json_value().to_string();
    assert!(
        json.contains(EXAMPLE_LLM),
        "{file} no longer uses {EXAMPLE_LLM}"
    );
    serde_json::from_str(&json.replace(EXAMPLE_LLM, llm)).unwrap()
}

struct Api {
    url: String,
    client: reqwest::Client,
}

impl Api {
    async fn create_workflow(&self, definition: &Value) -> String {
        let (status, body) = send(
            self.client
                .post(format!("{}/workflows", self.url))
                .json(definition),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    async fn start_run(&self, workflow: &str, inputs: Value) -> String {
        let (status, body) = send(
            self.client
                .post(format!("{}/workflows/{workflow}/runs", self.url))
                .json(&json!({ "inputs": inputs })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["run_id"].as_str().unwrap().to_owned()
    }

    async fn run(&self, run: &str) -> Value {
        let (status, body) =
            send(self.client.get(format!("{}/workflow-runs/{run}", self.url))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Polls the run until its status is `want`; fails at once on another final status.
    async fn wait_for(&self, run: &str, want: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let view = self.run(run).await;
            let status = view["status"].as_str().unwrap_or_default().to_owned();
            if status == want {
                return view;
            }
            let terminal = ["completed", "failed", "cancelled"].contains(&status.as_str());
            assert!(
                !terminal && Instant::now() < deadline,
                "run {run} is `{status}`, not `{want}`: {view:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The single pending approval of `run`.
    async fn pending_approval(&self, run: &str) -> Value {
        let (status, body) = send(
            self.client
                .get(format!("{}/approvals?status=pending", self.url)),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let mine: Vec<&Value> = body["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|approval| approval["run_id"] == run)
            .collect();
        assert_eq!(mine.len(), 1, "{body:#}");
        assert_eq!(mine[0]["status"], "pending");
        mine[0].clone()
    }

    async fn decide(&self, approval: &str, decision: &str, comment: &str) {
        let (status, body) = send(
            self.client
                .post(format!("{}/approvals/{approval}/decide", self.url))
                .json(&json!({"decision": decision, "by": "test", "comment": comment})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Node `id`'s output, read through its blob.
    async fn output(&self, view: &Value, id: &str) -> Value {
        let node = node(view, id);
        let hash = node["output"]
            .as_str()
            .unwrap_or_else(|| panic!("node {id} has no output: {node}"));
        let (status, body) = send(self.client.get(format!("{}/blobs/{hash}", self.url))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["content"].clone()
    }
}

fn node<'a>(view: &'a Value, id: &str) -> &'a Value {
    view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|node| node["id"] == id)
        .unwrap_or_else(|| panic!("no node {id} in {view:#}"))
}

fn statuses(view: &Value, ids: &[&str]) -> Vec<String> {
    ids.iter()
        .map(|id| node(view, id)["status"].as_str().unwrap().to_owned())
        .collect()
}

const AGENTS: [&str; 9] = [
    "fundamental",
    "technical",
    "news",
    "bull_1",
    "bear_1",
    "bull_2",
    "bear_2",
    "trader",
    "risk",
];

/// Runs the trading team up to its approval and checks what the agents handed each other.
async fn team_until_review(api: &Api, workflow: &str, symbol: &str) -> (String, Value) {
    team_until_review_with(
        api,
        workflow,
        json!({"symbol": symbol, "as_of": "2025-03-05"}),
    )
    .await
}

/// [`team_until_review`] with the run's inputs (`symbol` and `as_of` among them).
async fn team_until_review_with(api: &Api, workflow: &str, inputs: Value) -> (String, Value) {
    let symbol = inputs["symbol"].as_str().unwrap().to_owned();
    let symbol = symbol.as_str();
    let run = api.start_run(workflow, inputs).await;
    let view = api.wait_for(&run, "waiting").await;
    assert_eq!(
        statuses(&view, &AGENTS),
        vec!["completed"; AGENTS.len()],
        "{view:#}"
    );
    assert_eq!(node(&view, "review")["status"], "waiting", "{view:#}");
    assert_eq!(node(&view, "vetoed")["status"], "skipped", "{view:#}");

    // The debate takes its sides; the trader counts the stances it was given.
    let mut bull = 0;
    let mut bear = 0;
    for id in ["fundamental", "technical", "news", "bull_2", "bear_2"] {
        let answer = api.output(&view, id).await["json"].clone();
        assert_eq!(answer["symbol"], symbol, "{id}: {answer}");
        match answer["stance"].as_str().unwrap() {
            "bull" => bull += 1,
            "bear" => bear += 1,
            _ => {}
        }
    }
    for (id, side) in [
        ("bull_1", "bull"),
        ("bear_1", "bear"),
        ("bull_2", "bull"),
        ("bear_2", "bear"),
    ] {
        assert_eq!(api.output(&view, id).await["json"]["stance"], side, "{id}");
    }
    let trader = api.output(&view, "trader").await;
    let trade = trader["json"].clone();
    // The price and the book, read as of the run's date.
    assert_eq!(trader["tool_calls"], 2, "{trader}");
    assert_eq!(trader["tool_errors"], 0, "{trader}");
    assert_eq!(trader["as_of"], "2025-03-05", "{trader}");
    assert_eq!(trade["symbol"], symbol, "{trade}");
    assert_eq!(
        (trade["bull"].clone(), trade["bear"].clone()),
        (json!(bull), json!(bear))
    );
    let (action, quantity) = match bull.cmp(&bear) {
        std::cmp::Ordering::Greater => ("buy", (bull - bear) * 10),
        std::cmp::Ordering::Less => ("sell", (bear - bull) * 10),
        std::cmp::Ordering::Equal => ("hold", 0),
    };
    assert_eq!(trade["action"], action, "{trade}");
    // A buy is cut to what the cash pays for.
    let proposed = trade["quantity"].as_u64().unwrap();
    if action == "buy" {
        assert!(proposed > 0 && proposed <= quantity, "{trade}");
    } else {
        assert_eq!(proposed, quantity, "{trade}");
    }
    let risk = api.output(&view, "risk").await["json"].clone();
    assert_eq!(risk["approved"], true, "{risk}");
    assert_eq!(risk["max_quantity"], 100, "{risk}");
    (run, trade)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trading_team_orders_when_approved_and_stops_when_rejected() {
    let data = TempDir::new().unwrap();
    let mock = Service::mock_llm();
    let serve = Service::serve_with(data.path(), &["--http-allow", "127.0.0.1"], &[]);
    let api = Api {
        url: serve.url.clone(),
        client: client(),
    };
    let workflow = api
        .create_workflow(&example("trading-team.yaml", &format!("{}/v1", mock.url)))
        .await;

    // Approved: the trader's proposal is executed on the simulated book at the as-of date's
    // open, and journaled in a run folder that `tradeloom verify` accepts.
    let (run, trade) = team_until_review(&api, &workflow, "AAA").await;
    assert_eq!(trade["action"], "buy", "{trade}");
    let approval = api.pending_approval(&run).await;
    assert_eq!(approval["node_id"], "review");
    api.decide(approval["id"].as_str().unwrap(), "approve", "go")
        .await;
    let view = api.wait_for(&run, "completed").await;
    assert_eq!(
        statuses(&view, &["review", "order", "stop", "vetoed"]),
        ["completed", "completed", "skipped", "skipped"],
        "{view:#}"
    );
    let order = api.output(&view, "order").await;
    assert_eq!(order["status"], "filled", "{order}");
    let open = std::fs::read_to_string(repo().join("examples/universe/AAA.csv"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("2025-03-05,"))
        .unwrap()
        .split(',')
        .nth(1)
        .unwrap()
        .to_owned();
    let fill = &order["fills"][0];
    assert_eq!(
        (&fill["symbol"], &fill["side"], &fill["price"]),
        (&json!("AAA"), &json!("buy"), &json!(open)),
        "{order}"
    );
    assert_eq!(fill["quantity"], trade["quantity"].to_string(), "{order}");
    let order_run = order["run_id"].as_str().unwrap();
    let out = crate::tradeloom(data.path(), &["verify", order_run]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, listed) = send(api.client.get(format!("{}/runs/{order_run}", api.url))).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["mode"], "order", "{listed}");
    // The exporter counts the order from its journal; a report is not made for it.
    let out = crate::tradeloom(data.path(), &["metrics", "export"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let fills = text
        .lines()
        .find(|l| l.starts_with("tradeloom_run_fills_total{") && l.contains(order_run))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(fills.ends_with(" 1"), "{fills}");
    for command in ["report", "reconcile"] {
        let out = crate::tradeloom(data.path(), &[command, order_run]);
        assert!(!out.status.success(), "{command}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("workflow `order` node"), "{command}: {err}");
    }

    // Rejected: the stop branch runs and no order is made.
    let runs_before = std::fs::read_dir(data.path().join("runs")).unwrap().count();
    let (run, _) = team_until_review(&api, &workflow, "BBB").await;
    let approval = api.pending_approval(&run).await;
    api.decide(approval["id"].as_str().unwrap(), "reject", "not today")
        .await;
    let view = api.wait_for(&run, "completed").await;
    assert_eq!(
        statuses(&view, &["review", "order", "stop", "vetoed"]),
        ["completed", "skipped", "completed", "skipped"],
        "{view:#}"
    );
    assert_eq!(
        api.output(&view, "stop").await,
        json!({"symbol": "BBB", "rejected_by": "test", "comment": "not today"})
    );
    assert_eq!(
        std::fs::read_dir(data.path().join("runs")).unwrap().count(),
        runs_before,
        "no order, no run folder"
    );
}

/// A webhook receiver on 127.0.0.1: every POST body arrives on the channel.
async fn webhook() -> (String, mpsc::UnboundedReceiver<(String, Value)>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hooks/daily",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, axum::Json(body): axum::Json<Value>| {
                let sender = sender.clone();
                async move {
                    let run = headers
                        .get("x-tradeloom-run")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let _ = sender.send((run, body));
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/hooks/daily"), receiver)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_simulation_posts_its_leaderboard() {
    let data = TempDir::new().unwrap();
    let mock = Service::mock_llm();
    let serve = Service::serve_with(data.path(), &["--http-allow", "127.0.0.1"], &[]);
    let api = Api {
        url: serve.url.clone(),
        client: client(),
    };
    let (hook, mut posts) = webhook().await;
    let definition = example("daily-simulation.yaml", &format!("{}/v1", mock.url));
    assert_eq!(
        definition["schedule"],
        json!({"cron": "0 6 * * *", "timezone": "UTC", "missed": "run_once"})
    );
    let workflow = api.create_workflow(&definition).await;
    let run = api.start_run(&workflow, json!({"webhook_url": hook})).await;
    let view = api.wait_for(&run, "completed").await;
    assert_eq!(
        statuses(&view, &["simulate", "leaderboard", "notify"]),
        ["completed", "completed", "completed"],
        "{view:#}"
    );

    let simulated = api.output(&view, "simulate").await;
    assert_eq!(simulated["status"], "completed", "{simulated}");
    let board = simulated["leaderboard"].as_array().unwrap();
    let mut models: Vec<&str> = board.iter().map(|e| e["model"].as_str().unwrap()).collect();
    models.sort_unstable();
    assert_eq!(models, ["buy_and_hold", "momentum"], "{simulated}");
    let leaderboard = api.output(&view, "leaderboard").await;
    assert_eq!(leaderboard["winner"], board[0]["model"]);
    assert_eq!(leaderboard["winner_value"], board[0]["final_value"]);
    assert_eq!(leaderboard["standings"], simulated["leaderboard"]);
    assert_eq!(leaderboard["job_id"], simulated["job_id"]);

    let (header_run, body) = tokio::time::timeout(Duration::from_secs(5), posts.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(header_run, run);
    assert_eq!(body["run_id"], run);
    assert_eq!(body["workflow"], "daily-simulation");
    assert_eq!(body["leaderboard"], simulated["leaderboard"]);
    assert_eq!(
        body["text"],
        format!(
            "Daily simulation 2025-01-02..2025-01-08: {} leads with {}.",
            board[0]["model"].as_str().unwrap(),
            board[0]["final_value"].as_str().unwrap()
        )
    );
    assert!(posts.try_recv().is_err(), "the webhook was called once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trading_team_sends_the_approved_order_to_a_running_paper_run() {
    let data = TempDir::new().unwrap();
    let mock = Service::mock_llm();
    let serve = Service::serve_with(data.path(), &["--http-allow", "127.0.0.1"], &[]);
    let api = Api {
        url: serve.url.clone(),
        client: client(),
    };
    // The shipped paper desk, run from the repository root as the README says.
    let mut desk = std::process::Command::new(env!("CARGO_BIN_EXE_tradeloom"))
        .args([
            "run",
            "examples/specs/team_paper.yaml",
            "--quiet",
            "--data-dir",
        ])
        .arg(data.path())
        .current_dir(repo())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let paper = {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let found = std::fs::read_dir(data.path().join("runs"))
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| {
                    std::fs::read_to_string(p.join("state/inputs.jsonl"))
                        .is_ok_and(|t| t.lines().count() > 1)
                });
            if let Some(dir) = found {
                break dir.file_name().unwrap().to_str().unwrap().to_owned();
            }
            assert!(Instant::now() < deadline, "the paper desk did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let workflow = api
        .create_workflow(&example("trading-team.yaml", &format!("{}/v1", mock.url)))
        .await;
    let (run, trade) = team_until_review_with(
        &api,
        &workflow,
        json!({"symbol": "AAA", "as_of": "2025-03-05", "paper_run": paper}),
    )
    .await;
    let approval = api.pending_approval(&run).await;
    api.decide(approval["id"].as_str().unwrap(), "approve", "go")
        .await;
    let view = api.wait_for(&run, "completed").await;
    let order = api.output(&view, "order").await;
    assert_eq!(order["target"], "paper", "{order}");
    assert_eq!(order["run_id"], paper.as_str());
    assert_eq!(order["status"], "filled", "{order}");
    assert_eq!(
        order["fills"][0]["quantity"],
        trade["quantity"].to_string(),
        "{order}"
    );
    // The desk's journal names the workflow run the order came from.
    let journal =
        std::fs::read_to_string(data.path().join("runs").join(&paper).join("journal.jsonl"))
            .unwrap();
    let line = journal
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["event"] == "external_order")
        .unwrap();
    assert_eq!(line["source"], format!("workflow:{run}/order"), "{line}");
    assert_eq!(line["symbol"], "AAA");
    crate::sigterm(desk.id());
    assert!(desk.wait().unwrap().success());
    let out = crate::tradeloom(data.path(), &["verify", &paper]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
