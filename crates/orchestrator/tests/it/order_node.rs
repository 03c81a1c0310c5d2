//! Workflow agents trade: market tools bound to the run's `as_of` (no look-ahead), and the
//! `order` node executing an approved proposal on the simulated book, journaled in a run folder
//! that `verify` accepts — over the real runtime, a real store, mock-llm on loopback and the
//! shipped universe.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};
use tempfile::TempDir;
use tradeloom_flow::{compile, from_json_value, parse_definition};
use tradeloom_orchestrator::{RunView, Runtime, RuntimeConfig};
use tradeloom_queue::InMemoryQueue;
use tradeloom_safety::{KillSwitch, Scope};
use tradeloom_store::{
    ApprovalStatus, Decision, NewWorkflowVersion, NodeStatus, RunStatus, Store, open_store,
};

use crate::harness::{statuses, until_terminal};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Desk {
    runtime: Arc<Runtime>,
    store: Arc<dyn Store>,
    data: PathBuf,
    _dir: TempDir,
}

impl Desk {
    /// A runtime whose relative market paths resolve against the repository root (as `serve`
    /// started there), with its data dir in a temporary folder.
    async fn start() -> Desk {
        let dir = TempDir::new().unwrap();
        let data = dir.path().join("data");
        let store = open_store(&dir.path().join("t.db").display().to_string())
            .await
            .unwrap();
        let mut config = RuntimeConfig::new(data.clone());
        config.workers_per_pool = 2;
        config.base_dir = repo();
        config.ssrf.allow_hosts.push("127.0.0.1".into());
        let runtime =
            Runtime::new(store.clone(), Arc::new(InMemoryQueue::new()), config, None).unwrap();
        runtime.start().await.unwrap();
        Desk {
            runtime,
            store,
            data,
            _dir: dir,
        }
    }

    async fn define(&self, definition: &Value) -> String {
        let def = from_json_value(definition).unwrap();
        let compiled = compile(&def).unwrap();
        self.store
            .create_workflow(&NewWorkflowVersion {
                name: def.name.clone(),
                definition: def.to_json_value().to_string(),
                ir: compiled.ir.canonical_json(),
            })
            .await
            .unwrap()
            .workflow_id
    }

    async fn run(&self, workflow: &str, inputs: Value) -> String {
        let Value::Object(inputs) = inputs else {
            panic!("inputs must be an object")
        };
        self.runtime
            .start_run(workflow, None, &inputs)
            .await
            .unwrap()
            .id
    }

    async fn finished(&self, run: &str) -> RunView {
        let view = until_terminal(&self.runtime, run).await;
        assert_eq!(view.status, RunStatus::Completed, "{:?}", view.error);
        view
    }

    async fn output(&self, view: &RunView, node: &str) -> Value {
        let hash = view
            .nodes
            .iter()
            .find(|n| n.id == node)
            .and_then(|n| n.output.clone())
            .unwrap_or_else(|| panic!("node {node} has no output"));
        serde_json::from_str(&self.store.blob(&hash).await.unwrap().body).unwrap()
    }

    /// Decides the run's one pending approval once the run waits for it.
    async fn decide(&self, run: &str, decision: Decision) {
        for _ in 0..1200 {
            let pending = self
                .store
                .list_approvals(Some(ApprovalStatus::Pending), Some(run), 10, 0)
                .await
                .unwrap();
            if let Some(approval) = pending.first() {
                self.runtime
                    .decide(&approval.id, decision, Some("checked".into()), "alice")
                    .await
                    .unwrap();
                return;
            }
            let view = self.runtime.view(run).await.unwrap();
            assert!(!view.status.is_terminal(), "run ended: {:?}", view.error);
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("run {run} never asked for an approval");
    }

    fn run_folders(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(self.data.join("runs")) {
            Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    }
}

async fn mock_llm() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(tradeloom_mock_llm::serve_mock(listener));
    base
}

/// The trading-team example, its models on `llm`.
fn trading_team(llm: &str) -> Value {
    let text = std::fs::read_to_string(repo().join("examples/workflows/trading-team.yaml"))
        .unwrap()
        .replace("http://127.0.0.1:8089/v1", llm);
    parse_definition(&text, "trading-team.yaml")
        .unwrap()
        .to_json_value()
}

fn journal(run_dir: &str) -> Vec<Value> {
    std::fs::read_to_string(Path::new(run_dir).join("journal.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The AAA bar of `date` in the shipped universe: (open, close).
fn aaa_bar(date: &str) -> (String, String) {
    let text = std::fs::read_to_string(repo().join("examples/universe/AAA.csv")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(date))
        .unwrap_or_else(|| panic!("no AAA bar on {date}"));
    let cells: Vec<&str> = line.split(',').collect();
    (cells[1].to_string(), cells[4].to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_trading_team_fills_on_approve_and_orders_nothing_on_reject() {
    let desk = Desk::start().await;
    let llm = mock_llm().await;
    let workflow = desk.define(&trading_team(&llm)).await;

    // Approved: the order fills at the as-of date's open, in a run folder verify accepts.
    let run = desk.run(&workflow, json!({})).await;
    desk.decide(&run, Decision::Approve).await;
    let view = desk.finished(&run).await;
    let s = statuses(&view);
    assert_eq!(
        (s["order"], s["stop"], s["vetoed"]),
        (
            NodeStatus::Completed,
            NodeStatus::Skipped,
            NodeStatus::Skipped
        ),
        "{s:?}"
    );
    let trader = desk.output(&view, "trader").await;
    assert_eq!(trader["json"]["action"], "buy", "{trader}");
    let quantity = trader["json"]["quantity"].as_u64().unwrap();
    assert!(quantity > 0, "{trader}");
    // The trader looked at the price and the book first.
    let tools: Vec<&str> = trader["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["tool"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["get_price", "get_portfolio"], "{trader}");
    assert_eq!(trader["tool_errors"], 0, "{trader}");

    let order = desk.output(&view, "order").await;
    assert_eq!(order["status"], "filled", "{order}");
    let (open, _) = aaa_bar("2025-03-05");
    let fills = order["fills"].as_array().unwrap();
    assert_eq!(fills.len(), 1, "{order}");
    assert_eq!(fills[0]["symbol"], "AAA");
    assert_eq!(fills[0]["side"], "buy");
    assert_eq!(fills[0]["quantity"], quantity.to_string());
    assert_eq!(fills[0]["price"], open, "{order}");
    assert_eq!(fills[0]["date"], "2025-03-05");
    assert!(order.get("reason").is_none(), "{order}");
    let run_dir = order["run_dir"].as_str().unwrap();
    assert!(run_dir.ends_with(order["run_id"].as_str().unwrap()));
    let report = tradeloom_runs::verify_run(Path::new(run_dir)).unwrap();
    assert!(report.ok(), "{report:?}");
    // The spec, the journal, orders.csv, fills.csv and the bar file priced from.
    assert_eq!(report.checks.len(), 5, "{report:?}");
    let lines = journal(run_dir);
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        [
            "run_started",
            "order_submitted",
            "order_accepted",
            "order_filled",
            "run_finished"
        ]
    );
    assert_eq!(lines[3]["price"], open);
    let fills_csv = std::fs::read_to_string(Path::new(run_dir).join("fills.csv")).unwrap();
    assert_eq!(fills_csv.lines().count(), 2, "{fills_csv}");
    let meta = tradeloom_runs::Metadata::read(Path::new(run_dir)).unwrap();
    assert_eq!(
        (meta.mode.as_str(), meta.status),
        ("order", tradeloom_runs::RunStatus::Completed)
    );

    // Rejected: the stop branch runs, no order node, no new run folder.
    let before = desk.run_folders().len();
    let run = desk.run(&workflow, json!({})).await;
    desk.decide(&run, Decision::Reject).await;
    let view = desk.finished(&run).await;
    let s = statuses(&view);
    assert_eq!(
        (s["order"], s["stop"]),
        (NodeStatus::Skipped, NodeStatus::Completed),
        "{s:?}"
    );
    assert_eq!(desk.run_folders().len(), before);
    desk.runtime.shutdown().await;
}

/// An analyst with every market tool, and an order of a fixed proposal.
fn desk_workflow(name: &str, llm: &str, reference: &str, proposal: Value) -> Value {
    let market = json!({"universe": "examples/universe", "as_of": "{{ inputs.as_of }}",
                        "reference_price": reference});
    json!({"name": name, "inputs": {"as_of": {}}, "nodes": [
        {"id": "analyst", "type": "agent", "config": {
            "model": {"base_url": llm, "model": "analyst"},
            "prompt": "Assess the symbol. Answer in JSON.",
            "tools": ["get_bars", "get_price", "search_news"], "market": market}
         , "inputs": {"symbol": "AAA"}},
        {"id": "order", "type": "order", "needs": ["analyst"],
         "config": {"market": market, "proposal": proposal}}
    ]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn market_tools_never_show_data_after_as_of() {
    let desk = Desk::start().await;
    let llm = mock_llm().await;
    for (reference, as_of, last_bar, bars) in [
        // At the open the day's own bar is not complete: the last bar is the day before.
        ("open", "2025-02-03", "2025-01-31", 5),
        ("close", "2025-02-03", "2025-02-03", 5),
        // Near the universe's start there are fewer bars than asked for.
        ("open", "2025-01-06", "2025-01-03", 2),
    ] {
        let proposal = json!({"symbol": "AAA", "side": "buy", "quantity": 1});
        let workflow = desk
            .define(&desk_workflow(
                &format!("desk-{reference}-{as_of}"),
                &llm,
                reference,
                proposal,
            ))
            .await;
        let run = desk.run(&workflow, json!({ "as_of": as_of })).await;
        let view = desk.finished(&run).await;
        let analyst = desk.output(&view, "analyst").await;
        assert_eq!(analyst["as_of"], as_of, "{analyst}");
        assert_eq!(analyst["tool_errors"], 0, "{analyst}");
        let data = &analyst["json"]["data"];
        assert_eq!(data["bars"], bars, "{analyst}");
        assert_eq!(data["last_bar"], last_bar, "{analyst}");
        let (open, close) = aaa_bar(as_of);
        let price = if reference == "open" { &open } else { &close };
        assert_eq!(
            data["price"].as_str().unwrap().parse::<f64>().unwrap(),
            price.parse::<f64>().unwrap(),
            "{analyst}"
        );
        // News up to the session's time only: 14:30 UTC at the open, 21:00 at the close.
        let cutoff = format!(
            "{as_of}T{}",
            if reference == "open" {
                "14:30:00Z"
            } else {
                "21:00:00Z"
            }
        );
        let latest = data["latest_news"].as_str().unwrap();
        assert!(latest <= cutoff.as_str(), "{latest} after {cutoff}");
        let order = desk.output(&view, "order").await;
        assert_eq!(order["fills"][0]["price"], *price, "{order}");
    }
    desk.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_refused_by_the_kill_switch_limit_or_cash_say_why() {
    let desk = Desk::start().await;
    let llm = mock_llm().await;
    let ks = KillSwitch::open(&desk.data).unwrap();

    // Engaged globally: refused with the reason, journaled, nothing filled.
    let workflow = desk
        .define(&desk_workflow(
            "desk-1",
            &llm,
            "open",
            json!({"symbol": "AAA", "side": "buy", "quantity": 2}),
        ))
        .await;
    ks.engage(&Scope::Global, "order drill", "ops", false)
        .unwrap();
    let run = desk.run(&workflow, json!({"as_of": "2025-02-03"})).await;
    let view = desk.finished(&run).await;
    let order = desk.output(&view, "order").await;
    assert_eq!(order["status"], "refused", "{order}");
    assert_eq!(order["fills"], json!([]));
    let reason = order["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("risk.kill_switch: order refused") && reason.contains("order drill"),
        "{reason}"
    );
    assert_eq!(order["cash_after"], "10000.00", "{order}");
    let run_dir = order["run_dir"].as_str().unwrap();
    assert!(tradeloom_runs::verify_run(Path::new(run_dir)).unwrap().ok());
    let rejected: Vec<Value> = journal(run_dir)
        .into_iter()
        .filter(|l| l["event"] == "order_rejected")
        .collect();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["code"], "risk.kill_switch");
    ks.release(&Scope::Global, "drill over", "ops").unwrap();

    // The workflow run's own kill switch covers its order too.
    let waiting = json!({"name": "wait-then-order", "nodes": [
        {"id": "pause", "type": "wait", "config": {"duration_ms": 1500}},
        {"id": "order", "type": "order", "needs": ["pause"], "config": {
            "market": {"universe": "examples/universe", "as_of": "2025-02-03"},
            "proposal": {"symbol": "AAA", "side": "buy", "quantity": 1}}}
    ]});
    let workflow = desk.define(&waiting).await;
    let run = desk.run(&workflow, json!({})).await;
    ks.engage(&Scope::run(&run).unwrap(), "stop this run", "ops", false)
        .unwrap();
    let view = desk.finished(&run).await;
    let order = desk.output(&view, "order").await;
    assert_eq!(order["status"], "refused", "{order}");
    assert!(
        order["reason"].as_str().unwrap().contains("stop this run"),
        "{order}"
    );

    // A limit below the open: not filled, and why.
    let workflow = desk
        .define(&desk_workflow(
            "desk-2",
            &llm,
            "open",
            json!({"symbol": "AAA", "side": "buy", "quantity": 1, "limit": "1.00"}),
        ))
        .await;
    let run = desk.run(&workflow, json!({"as_of": "2025-02-03"})).await;
    let order = desk.output(&desk.finished(&run).await, "order").await;
    assert_eq!(
        (&order["status"], &order["code"]),
        (&json!("not_filled"), &json!("order.limit_not_reached")),
        "{order}"
    );
    assert!(
        order["reason"]
            .as_str()
            .unwrap()
            .contains("limit 1: the open reference price on 2025-02-03 is 442.49"),
        "{order}"
    );

    // More than the cash pays for: refused by the book, as in a simulation.
    let workflow = desk
        .define(&desk_workflow(
            "desk-3",
            &llm,
            "open",
            json!({"symbol": "AAA", "side": "buy", "quantity": 1000}),
        ))
        .await;
    let run = desk.run(&workflow, json!({"as_of": "2025-02-03"})).await;
    let order = desk.output(&desk.finished(&run).await, "order").await;
    assert_eq!(order["code"], "account.insufficient_cash", "{order}");
    assert!(
        order["reason"]
            .as_str()
            .unwrap()
            .starts_with("insufficient cash"),
        "{order}"
    );

    // A proposal that holds makes no order and no folder.
    let before = desk.run_folders().len();
    let workflow = desk
        .define(&desk_workflow(
            "desk-4",
            &llm,
            "open",
            json!({"symbol": "AAA", "action": "hold", "quantity": 0}),
        ))
        .await;
    let run = desk.run(&workflow, json!({"as_of": "2025-02-03"})).await;
    let order = desk.output(&desk.finished(&run).await, "order").await;
    assert_eq!(order["status"], "no_order", "{order}");
    assert_eq!(order["run_id"], Value::Null);
    assert_eq!(desk.run_folders().len(), before);

    // A date that is not one fails the node, naming the field.
    let run = desk.run(&workflow, json!({"as_of": "yesterday"})).await;
    let view = until_terminal(&desk.runtime, &run).await;
    assert_eq!(view.status, RunStatus::Failed);
    let analyst = view.nodes.iter().find(|n| n.id == "analyst").unwrap();
    let error = analyst.error.as_deref().unwrap();
    assert!(
        error.contains("market.as_of: `yesterday` is not a date YYYY-MM-DD"),
        "{error}"
    );
    desk.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_order_node_answers_with_its_first_order_and_orders_once() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let env = tradeloom_orchestrator::nodes::NodeEnv {
        http: tradeloom_net::GuardedClient::strict(),
        secrets: tradeloom_net::SecretEnv::default(),
        simulator: None,
        data_dir: data.clone(),
        base_dir: repo(),
        config_dir: None,
        engine_runs: Arc::new(tradeloom_orchestrator::EngineRuns::new(
            data.clone(),
            None,
            Arc::new(tokio::sync::Notify::new()),
            tradeloom_net::SsrfPolicy::default(),
        )),
    };
    let definition = from_json_value(&json!({"name": "once", "nodes": [
        {"id": "buy", "type": "order", "config": {
            "market": {"universe": "examples/universe", "as_of": "2025-02-03"},
            "proposal": {"symbol": "AAA", "side": "buy", "quantity": 3}}}
    ]}))
    .unwrap();
    let ir = compile(&definition).unwrap().ir;
    let tradeloom_flow::ir::NodeKind::Order(node) = ir.node("buy").unwrap().kind() else {
        panic!("buy is an order node")
    };
    let context = json!({"inputs": {}});
    let order =
        |run: &'static str| tradeloom_orchestrator::desk::order(&env, node, &context, run, "buy");
    let first = order("run-1").await.unwrap();
    assert_eq!(first["status"], "filled", "{first}");
    assert!(first.get("replayed").is_none(), "{first}");
    // The same node of the same run again (a retry, a re-emitted task): no second order.
    let again = order("run-1").await.unwrap();
    assert_eq!(again["replayed"], true, "{again}");
    assert_eq!(again["run_id"], first["run_id"]);
    assert_eq!(again["fills"], first["fills"]);
    let folders = || std::fs::read_dir(data.join("runs")).unwrap().count();
    assert_eq!(folders(), 1);
    // Another run's node orders for itself.
    let other = order("run-2").await.unwrap();
    assert_ne!(other["run_id"], first["run_id"]);
    assert_eq!(folders(), 2);
}

/// A paper run of the shipped universe's AAA that accepts external orders: its bars replayed
/// five days a second, traded only from outside (`strategy: manual`). Started in a thread of its
/// own in `data`; stopped by the returned signal.
fn start_paper_desk(
    data: &Path,
    external_orders: bool,
) -> (
    String,
    tradeloom_runs::paper::StopSignal,
    std::thread::JoinHandle<()>,
) {
    use tradeloom_runs::paper::{PaperOptions, StopSignal, run_paper};
    use tradeloom_runs::runner::SpecSource;
    std::fs::create_dir_all(data).unwrap();
    let spec_path = data.join(format!("desk-{external_orders}.yaml"));
    let universe = repo().join("examples/universe/AAA.csv");
    std::fs::write(
        &spec_path,
        format!(
            "name: desk\nmode: paper\nfeed: {{type: replay, speed: 432000}}\n\
             external_orders: {external_orders}\n\
             instruments: [{{symbol: AAA, price_precision: 2, size_precision: 0}}]\n\
             data: [{{symbol: AAA, path: {}}}]\n\
             strategy: {{name: manual}}\nexecution: {{fill_model: next_open}}\n\
             account: {{initial_cash: 10000, currency: USD, type: cash}}\n",
            universe.display()
        ),
    )
    .unwrap();
    let spec = tradeloom_runs::load_spec(&spec_path).unwrap();
    let feed = tradeloom_live::open_feed(&spec, &tradeloom_live::FeedOptions::default()).unwrap();
    let stop = StopSignal::new();
    let options = PaperOptions::new(data, stop.clone());
    let before: Vec<PathBuf> = std::fs::read_dir(data.join("runs"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    let thread = std::thread::spawn(move || {
        run_paper(SpecSource::Loaded(Box::new(spec)), feed, options).unwrap();
    });
    // The run's folder, once it has processed a bar (state/feed.json counts events).
    for _ in 0..400 {
        let found = std::fs::read_dir(data.join("runs"))
            .map(|d| d.map(|e| e.unwrap().path()).find(|p| !before.contains(p)))
            .unwrap_or_default();
        if let Some(dir) = found {
            let events = std::fs::read(dir.join("state/feed.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|v| v["events"].as_u64())
                .unwrap_or(0);
            if events > 0 {
                let id = dir.file_name().unwrap().to_str().unwrap().to_string();
                return (id, stop, thread);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("the paper run did not start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_node_sends_the_approved_proposal_to_a_running_paper_run() {
    let desk = Desk::start().await;
    let (paper, stop, thread) = start_paper_desk(&desk.data, true);
    let workflow = desk
        .define(&json!({"name": "to-paper",
        "inputs": {"paper_run": {"default": ""}, "quantity": {"default": 5}},
        "nodes": [
            {"id": "order", "type": "order", "config": {
                "paper_run": "{{ inputs.paper_run }}",
                "wait_fill_ms": 5000,
                "proposal": {"symbol": "AAA", "side": "buy", "quantity": "{{ inputs.quantity }}"}}}
        ]}))
        .await;
    let run = desk
        .run(&workflow, json!({"paper_run": paper.clone()}))
        .await;
    let view = desk.finished(&run).await;
    let out = desk.output(&view, "order").await;
    assert_eq!(out["target"], "paper", "{out}");
    assert_eq!(out["run_id"], paper.as_str());
    assert_eq!(out["status"], "filled", "{out}");
    assert_eq!(out["fills"][0]["quantity"], "5");
    let order_id = out["order_id"].as_str().unwrap().to_string();

    // A second run positions on top of the first: the paper run carries the book.
    let second = desk
        .run(
            &workflow,
            json!({"paper_run": paper.clone(), "quantity": 2}),
        )
        .await;
    let second = desk.output(&desk.finished(&second).await, "order").await;
    assert_eq!(second["status"], "filled", "{second}");
    assert_ne!(second["order_id"].as_str().unwrap(), order_id);

    // The same node of the same run again (a retry): the order is not sent twice.
    let definition = from_json_value(&json!({"name": "again", "nodes": [
        {"id": "order", "type": "order", "config": {
            "paper_run": paper.clone(),
            "proposal": {"symbol": "AAA", "side": "buy", "quantity": 5}}}
    ]}))
    .unwrap();
    let ir = compile(&definition).unwrap().ir;
    let tradeloom_flow::ir::NodeKind::Order(node) = ir.node("order").unwrap().kind() else {
        panic!("an order node")
    };
    let env = tradeloom_orchestrator::nodes::NodeEnv {
        http: tradeloom_net::GuardedClient::strict(),
        secrets: tradeloom_net::SecretEnv::default(),
        simulator: None,
        data_dir: desk.data.clone(),
        base_dir: repo(),
        config_dir: None,
        engine_runs: Arc::new(tradeloom_orchestrator::EngineRuns::new(
            desk.data.clone(),
            None,
            Arc::new(tokio::sync::Notify::new()),
            tradeloom_net::SsrfPolicy::default(),
        )),
    };
    let again =
        tradeloom_orchestrator::desk::order(&env, node, &json!({"inputs": {}}), &run, "order")
            .await
            .unwrap();
    assert_eq!(again["order_id"], out["order_id"], "{again}");
    assert_eq!(again["fills"], out["fills"]);

    // The book an agent's `get_portfolio` shows for this paper run: 7 held, the cash spent
    // (the account file follows the fills within a second).
    let desk_market = tradeloom_orchestrator::desk::open_desk(
        &env,
        &tradeloom_flow::ir::MarketNode {
            universe: "examples/universe".into(),
            news: None,
            symbols: None,
            as_of: tradeloom_flow::Template::parse("2025-03-05").unwrap(),
            reference_price: tradeloom_flow::node_config::ReferencePrice::Open,
            initial_cash: tradeloom_core::Decimal::from_int(10_000),
            currency: "USD".into(),
            fee_bps: tradeloom_core::Decimal::from_int(0),
        },
        &json!({}),
    )
    .await
    .unwrap();
    let mut held = None;
    for _ in 0..100 {
        let book = tradeloom_orchestrator::desk::paper_book(&env, &desk_market, &paper).unwrap();
        held = book.quantity("AAA").map(|q| q.to_string());
        if held.as_deref() == Some("7") {
            let start = tradeloom_core::Money::parse("10000", book.currency()).unwrap();
            assert!(book.cash().raw() < start.raw(), "{:?}", book.cash());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(held.as_deref(), Some("7"), "the paper account's holdings");

    stop.stop();
    tokio::task::spawn_blocking(move || thread.join().unwrap())
        .await
        .unwrap();
    let run_dir = desk.data.join("runs").join(&paper);
    let journal = std::fs::read_to_string(run_dir.join("journal.jsonl")).unwrap();
    let externals: Vec<Value> = journal
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["event"] == "external_order")
        .collect();
    assert_eq!(externals.len(), 2, "one line per order, none for the retry");
    assert_eq!(externals[0]["source"], format!("workflow:{run}/order"));
    let report = tradeloom_runs::verify_run(&run_dir).unwrap();
    assert!(report.ok(), "{:?}", report.failures().collect::<Vec<_>>());

    // A run that stopped takes no orders: the node fails, saying so.
    let late = desk
        .run(&workflow, json!({"paper_run": paper.clone()}))
        .await;
    let view = until_terminal(&desk.runtime, &late).await;
    assert_eq!(view.status, RunStatus::Failed);
    let error = view.nodes[0].error.clone().unwrap();
    assert!(
        error.contains("only a running paper run takes orders"),
        "{error}"
    );

    // Nor does a running paper run whose spec does not accept them.
    let (closed, stop, thread) = start_paper_desk(&desk.data, false);
    let refused = desk.run(&workflow, json!({"paper_run": closed})).await;
    let view = until_terminal(&desk.runtime, &refused).await;
    assert_eq!(view.status, RunStatus::Failed);
    let error = view.nodes[0].error.clone().unwrap();
    assert!(error.contains("external_orders: true"), "{error}");
    // An id that is no run of the data dir.
    let missing = desk.run(&workflow, json!({"paper_run": "../../etc"})).await;
    let view = until_terminal(&desk.runtime, &missing).await;
    assert!(
        view.nodes[0].error.clone().unwrap().contains("not found"),
        "{:?}",
        view.nodes[0].error
    );
    stop.stop();
    tokio::task::spawn_blocking(move || thread.join().unwrap())
        .await
        .unwrap();
    desk.runtime.shutdown().await;
}
