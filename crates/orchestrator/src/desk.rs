//! The desk of `agent` and `order` nodes: the `market` of a node read from its files and seen as
//! of the run's date, and the `order` node, which executes an approved proposal on the
//! simulated book at that date's reference price (see [`tradeloom_agents::execute_proposal`]:
//! the simulations' own order path, kill switch included) and journals it in a run folder of
//! its own — `run_spec.yaml`, `journal.jsonl`, `orders.csv`, `fills.csv` and `metadata.json`
//! with the sha256 of each and of the bar file priced from, so `tradeloom verify` checks it.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use serde_json::{Value, json};
use tradeloom_agents::{
    Book, Execution, Market, OrderGate, OrderOutcome, Proposal, ReferencePrice, SessionView, Side,
};
use tradeloom_core::{
    Bps, Event, Liquidity, Money, OrderId, OrderSide, OrderType, Quantity, Symbol, TimeInForce,
    UnixNanos,
};
use tradeloom_flow::ir::{MarketNode, OrderNode};
use tradeloom_runs::hashing::{create_artifact, sha256_bytes, sha256_file};
use tradeloom_runs::journal::Journal;
use tradeloom_runs::metadata::{DataInfo, FileHash, RunSummary, SpecInfo};
use tradeloom_runs::{Metadata, RunFolder, RunStatus};

use crate::nodes::{NodeEnv, NodeError};

/// A node's market, loaded, with the date and price it is seen at and its book's settings.
#[derive(Debug)]
pub struct Desk {
    pub market: Arc<Market>,
    pub as_of: NaiveDate,
    pub reference: ReferencePrice,
    pub initial_cash: Money,
    pub fee: Bps,
    /// `universe` as the definition wrote it.
    pub universe_as_written: String,
}

impl Desk {
    pub fn view(&self) -> SessionView<'_> {
        self.market.view(self.as_of, self.reference)
    }

    /// The book the node starts from: the market's `initial_cash`, no holdings.
    pub fn book(&self) -> Book {
        Book::new(self.initial_cash, self.fee)
    }
}

/// The account of the running paper run `run_id` (its `state/account.json`, at most a second
/// old while it runs) as a book in the desk's currency, with the desk's fee: what an agent's
/// `get_portfolio` shows when its node names the paper run its team trades. Errors name
/// `paper_run`; a short position (a margin desk) cannot be shown as a book of holdings.
pub fn paper_book(env: &NodeEnv, desk: &Desk, run_id: &str) -> Result<Book, NodeError> {
    use tradeloom_runs::paper::orders;
    let fail = |message: String| NodeError::permanent(format!("paper_run: {message}"));
    let account = orders::read_account(&env.data_dir, run_id).map_err(|e| {
        if e.is_transient() {
            NodeError::transient(format!("paper_run: {e}"))
        } else {
            fail(e.to_string())
        }
    })?;
    let currency = desk.initial_cash.currency();
    let cash = tradeloom_core::Decimal::parse(&account.cash)
        .map_err(|e| fail(format!("cash `{}`: {e}", account.cash)))?
        .to_money(currency);
    let mut holdings = Vec::new();
    for p in &account.positions {
        let symbol = p["symbol"].as_str().unwrap_or_default().to_string();
        let text = p["quantity"].as_str().unwrap_or_default();
        if text.starts_with('-') {
            return Err(fail(format!(
                "paper run `{run_id}` is short {text} {symbol}: get_portfolio shows holdings \
                 only (use `type: cash` for a desk of agents)"
            )));
        }
        let quantity = Quantity::parse(text, 0).map_err(|e| {
            fail(format!(
                "position `{symbol}` of {text}: not whole shares, as agents' books hold: {e}"
            ))
        })?;
        holdings.push((symbol, quantity));
    }
    Ok(Book::with_holdings(cash, holdings, desk.fee))
}

/// Relative paths of a definition resolve against the server's base folder, as those of an
/// inline simulation config do.
fn resolve(base: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    std::path::absolute(&joined).unwrap_or(joined)
}

/// Renders `as_of`, reads the universe and news of `market`. Errors name the field
/// (`market.as_of`, `market.universe`, …) and are permanent: the same definition fails the
/// same way again.
pub async fn open_desk(
    env: &NodeEnv,
    market: &MarketNode,
    context: &Value,
) -> Result<Desk, NodeError> {
    let text = market
        .as_of
        .render_string(context)
        .map_err(|e| NodeError::permanent(format!("market.as_of: {e}")))?;
    let as_of = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
        NodeError::permanent(format!(
            "market.as_of: `{}` is not a date YYYY-MM-DD (give the run an input such as \
             `as_of: 2025-03-03`)",
            text.trim()
        ))
    })?;
    let currency = tradeloom_core::Currency::from_code(&market.currency)
        .map_err(|e| NodeError::permanent(format!("market.currency: {e}")))?;
    let fee = Bps::fee_rate(market.fee_bps)
        .map_err(|e| NodeError::permanent(format!("market.fee_bps: {e}")))?;
    let universe_dir = resolve(&env.base_dir, &market.universe);
    if !universe_dir.is_dir() {
        return Err(NodeError::permanent(format!(
            "market.universe: the folder {} does not exist",
            universe_dir.display()
        )));
    }
    let news = market.news.as_deref().map(|n| resolve(&env.base_dir, n));
    if let Some(path) = &news
        && !path.is_file()
    {
        return Err(NodeError::permanent(format!(
            "market.news: the file {} does not exist",
            path.display()
        )));
    }
    let symbols = market.symbols.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        Market::load(&universe_dir, news.as_deref(), symbols.as_deref())
    })
    .await
    .map_err(|e| NodeError::transient(format!("market task: {e}")))?
    .map_err(|e| NodeError::permanent(format!("market: {e}")))?;
    Ok(Desk {
        market: Arc::new(loaded),
        as_of,
        reference: match market.reference_price {
            tradeloom_flow::node_config::ReferencePrice::Open => ReferencePrice::Open,
            tradeloom_flow::node_config::ReferencePrice::Close => ReferencePrice::Close,
        },
        initial_cash: market.initial_cash.to_money(currency),
        fee,
        universe_as_written: market.universe.clone(),
    })
}

/// `<data_dir>/workflow-orders/<workflow_run_id>/<node_id>.json`: the output of the order a
/// workflow run's node executed, written (synced) once its run folder is sealed. An attempt that
/// finds it answers with it instead of ordering again: a node retried after a crash, or
/// re-emitted by a coordinator, never executes its order twice.
pub fn order_record(data_dir: &Path, workflow_run_id: &str, node_id: &str) -> PathBuf {
    data_dir
        .join("workflow-orders")
        .join(workflow_run_id)
        .join(format!("{node_id}.json"))
}

/// Runs an `order` node: the proposal rendered and read, executed on a fresh book of the
/// market's `initial_cash` with the kill switches of the global scope and of the workflow run
/// in front of it, and journaled in a new run folder. A proposal that holds makes no order and
/// no folder. Output: `run_id`, `run_dir`, `status` (`filled`, `not_filled`, `refused`,
/// `no_order`), `fills`, `reason` (when nothing filled), `as_of`, `reference_price`, `proposal`,
/// `cash_after`; `replayed: true` when an earlier attempt of the node executed it (see
/// [`order_record`]).
pub async fn order(
    env: &NodeEnv,
    node: &OrderNode,
    context: &Value,
    workflow_run_id: &str,
    node_id: &str,
) -> Result<Value, NodeError> {
    let record_file = order_record(&env.data_dir, workflow_run_id, node_id);
    if let Ok(text) = std::fs::read_to_string(&record_file)
        && let Ok(mut done) = serde_json::from_str::<Value>(&text)
    {
        done["replayed"] = json!(true);
        return Ok(done);
    }
    let rendered = node
        .proposal
        .render(context)
        .map_err(|e| NodeError::permanent(format!("proposal: {e}")))?;
    let proposal = Proposal::from_value(&rendered).map_err(NodeError::permanent)?;
    if let Some(template) = &node.paper_run {
        let run = template
            .render_string(context)
            .map_err(|e| NodeError::permanent(format!("paper_run: {e}")))?;
        let run = run.trim();
        if !run.is_empty() {
            return paper_order(env, node, run, proposal, rendered, workflow_run_id, node_id).await;
        }
    }
    let Some(market) = &node.market else {
        return Err(NodeError::permanent(
            "paper_run: rendered empty and the node has no `market` to trade on instead \
             (give the run a paper run id, or the node a market)",
        ));
    };
    let desk = open_desk(env, market, context).await?;
    let Some(proposal) = proposal else {
        return Ok(json!({
            "run_id": null,
            "status": "no_order",
            "fills": [],
            "reason": "the proposal holds (side `hold` or quantity 0): nothing to execute",
            "as_of": desk.as_of.to_string(),
            "proposal": rendered,
        }));
    };
    let gate = OrderGate::open(&env.data_dir, None, vec![workflow_run_id.to_string()])
        .map_err(|e| NodeError::permanent(format!("kill switch: {e}")))?;
    let data_dir = env.data_dir.clone();
    let name = format!("workflow:{workflow_run_id}/{node_id}");
    let market = market.clone();
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let created_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let view = desk.view();
        let (outcome, price, book) =
            tradeloom_agents::execute_proposal(view, desk.book(), Some(gate), &proposal);
        let folder = RunFolder::create(&data_dir)
            .map_err(|e| NodeError::transient(format!("run folder: {e}")))?;
        let record = OrderRecord {
            name: &name,
            desk: &desk,
            market: &market,
            proposal: &proposal,
            outcome: &outcome,
            price,
            book: &book,
            created_at,
            started,
        };
        record.write(&folder).map_err(|e| {
            NodeError::transient(format!("run folder {}: {e}", folder.dir.display()))
        })?;
        let output = record.output(&folder);
        // The order is executed: from now on every attempt of this node answers with it.
        if let Err(e) = tradeloom_safety::write_atomic(
            &record_file,
            output.to_string().as_bytes(),
            tradeloom_safety::Durability::Synced,
        ) {
            tracing::warn!(error = %e, "order record not saved");
        }
        Ok(output)
    })
    .await
    .map_err(|e| NodeError::transient(format!("order task: {e}")))?
}

/// The `client_order_id` of a workflow run's `order` node: the same for every attempt of the
/// node, so a retried node waits for its order instead of sending a second one.
pub fn paper_client_order_id(workflow_run_id: &str, node_id: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let mut id = format!("wf:{}:{}", clean(workflow_run_id), clean(node_id));
    id.truncate(128);
    id
}

/// Sends an approved proposal to the running paper run `run_id` (see
/// [`tradeloom_runs::paper::orders`]): the run records it, journals it, submits it through its
/// kill switch and pre-trade risk, and fills it on a later bar. Waits up to the node's
/// `wait_fill_ms` for the fill. Output: `target: "paper"`, `run_id`, `run_dir`,
/// `client_order_id`, `order_id`, `status`, `fills`, `code`/`reason` when refused or cancelled,
/// `proposal`.
async fn paper_order(
    env: &NodeEnv,
    node: &OrderNode,
    run_id: &str,
    proposal: Option<Proposal>,
    rendered: Value,
    workflow_run_id: &str,
    node_id: &str,
) -> Result<Value, NodeError> {
    use tradeloom_runs::paper::orders::{self, ExternalOrder, SendWait};
    let Some(proposal) = proposal else {
        return Ok(json!({
            "target": "paper",
            "run_id": run_id,
            "status": "no_order",
            "fills": [],
            "reason": "the proposal holds (side `hold` or quantity 0): nothing to execute",
            "proposal": rendered,
        }));
    };
    let order = ExternalOrder {
        client_order_id: paper_client_order_id(workflow_run_id, node_id),
        source: format!("workflow:{workflow_run_id}/{node_id}"),
        symbol: proposal.symbol.clone(),
        side: match proposal.side {
            Side::Buy => orders::Side::Buy,
            Side::Sell => orders::Side::Sell,
        },
        quantity: proposal.quantity.to_string(),
        limit: proposal.limit.map(|l| l.to_string()),
    };
    let wait = SendWait {
        fill: std::time::Duration::from_millis(
            node.wait_fill_ms
                .unwrap_or(tradeloom_flow::ir::DEFAULT_WAIT_FILL_MS),
        ),
        ..SendWait::default()
    };
    let data_dir = env.data_dir.clone();
    let run = run_id.to_string();
    let sent = tokio::task::spawn_blocking(move || orders::send(&data_dir, &run, &order, wait))
        .await
        .map_err(|e| NodeError::transient(format!("order task: {e}")))?;
    let reply = match sent {
        Ok(reply) => reply,
        Err(e) if e.is_transient() => return Err(NodeError::transient(format!("paper_run: {e}"))),
        Err(e) => return Err(NodeError::permanent(format!("paper_run: {e}"))),
    };
    let mut out = json!({
        "target": "paper",
        "run_id": reply.run_id,
        "run_dir": env.data_dir.join("runs").join(run_id).display().to_string(),
        "client_order_id": reply.client_order_id,
        "order_id": reply.order_id,
        "status": reply.status,
        "submitted_ts": reply.submitted_ts,
        "fills": reply.fills,
        "proposal": proposal.to_value(),
    });
    if let Some(code) = &reply.code {
        out["code"] = json!(code);
    }
    if let Some(reason) = &reply.reason {
        out["reason"] = json!(reason);
    }
    Ok(out)
}

/// One executed (or refused) order and what the run folder says of it.
struct OrderRecord<'a> {
    name: &'a str,
    desk: &'a Desk,
    market: &'a MarketNode,
    proposal: &'a Proposal,
    outcome: &'a OrderOutcome,
    price: Option<tradeloom_core::Price>,
    book: &'a Book,
    created_at: String,
    started: Instant,
}

impl OrderRecord<'_> {
    fn status(&self) -> &'static str {
        match self.outcome {
            OrderOutcome::Filled(_) => "filled",
            OrderOutcome::NotFilled { .. } => "not_filled",
            OrderOutcome::Refused { .. } => "refused",
        }
    }

    fn reason(&self) -> Option<String> {
        match self.outcome {
            OrderOutcome::Filled(_) => None,
            OrderOutcome::NotFilled { reason, .. } | OrderOutcome::Refused { reason } => {
                Some(reason.clone())
            }
        }
    }

    fn fill_json(&self, e: &Execution) -> Value {
        json!({
            "fill_id": 1,
            "symbol": e.symbol,
            "side": self.proposal.side.as_str(),
            "quantity": e.quantity.to_string(),
            "price": e.price.to_string(),
            "fee": e.fee.to_string(),
            "cash_after": e.cash_after.to_string(),
            "date": self.desk.as_of.to_string(),
            "reference_price": self.desk.reference.as_str(),
        })
    }

    /// The node's output.
    fn output(&self, folder: &RunFolder) -> Value {
        let fills: Vec<Value> = match self.outcome {
            OrderOutcome::Filled(e) => vec![self.fill_json(e)],
            _ => Vec::new(),
        };
        let mut out = json!({
            "run_id": folder.run_id,
            "run_dir": folder.dir.display().to_string(),
            "status": self.status(),
            "fills": fills,
            "as_of": self.desk.as_of.to_string(),
            "reference_price": self.desk.reference.as_str(),
            "price": self.price.map(|p| p.to_string()),
            "proposal": self.proposal.to_value(),
            "cash_after": self.book.cash().to_string(),
        });
        if let Some(reason) = self.reason() {
            out["reason"] = json!(reason);
        }
        if let OrderOutcome::NotFilled { code, .. } = self.outcome {
            out["code"] = json!(code);
        }
        if let OrderOutcome::Refused { .. } = self.outcome {
            out["code"] = json!(tradeloom_agents::KILL_SWITCH_CODE);
        }
        out
    }

    /// `run_spec.yaml`: what was executed, on which market, as of when.
    fn spec_text(&self) -> String {
        let spec = json!({
            "name": self.name,
            "mode": "order",
            "venue": "sim",
            "as_of": self.desk.as_of.to_string(),
            "reference_price": self.desk.reference.as_str(),
            "market": {
                "universe": self.market.universe,
                "universe_path": self.desk.market.universe_dir.display().to_string(),
                "news": self.desk.market.news_path.as_ref().map(|p| p.display().to_string()),
                "symbols": self.market.symbols,
            },
            "account": {
                "initial_cash": self.market.initial_cash.to_string(),
                "currency": self.market.currency,
                "fee_bps": self.market.fee_bps.to_string(),
            },
            "proposal": self.proposal.to_value(),
        });
        // Plain JSON values always serialise.
        yaml_serde::to_string(&spec).unwrap_or_else(|_| spec.to_string())
    }

    fn write(&self, folder: &RunFolder) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let ts = UnixNanos(
            self.desk
                .view()
                .as_of()
                .timestamp_nanos_opt()
                .unwrap_or_default(),
        );
        let symbol = Symbol::new(&self.proposal.symbol).ok();
        let side = match self.proposal.side {
            Side::Buy => OrderSide::Buy,
            Side::Sell => OrderSide::Sell,
        };
        let quantity =
            Quantity::from_int(u32::try_from(self.proposal.quantity).unwrap_or(u32::MAX), 0);
        let limit = self
            .proposal
            .limit
            .and_then(|l| tradeloom_core::Price::parse(&l.to_string(), 9).ok());
        let fill_model = match self.desk.reference {
            ReferencePrice::Open => "reference_open",
            ReferencePrice::Close => "reference_close",
        };
        let order_id = OrderId(1);
        let spec = self.spec_text();
        std::fs::write(folder.file("run_spec.yaml"), &spec)?;
        let spec_sha = sha256_bytes(spec.as_bytes());

        let mut journal = Journal::new(create_artifact(&folder.file("journal.jsonl"))?);
        let mut events = vec![Event::RunStarted {
            ts,
            strategy: self.name.to_string(),
            fill_model,
            instruments: symbol.iter().copied().collect(),
            initial_cash: self.desk.initial_cash,
        }];
        if let Some(symbol) = &symbol {
            events.push(Event::OrderSubmitted {
                ts,
                order_id,
                symbol: *symbol,
                side,
                order_type: if limit.is_some() {
                    OrderType::Limit
                } else {
                    OrderType::Market
                },
                quantity,
                price: limit,
                trigger_price: None,
                time_in_force: TimeInForce::Day,
                reduce_only: false,
                links: None,
            });
            match self.outcome {
                OrderOutcome::Filled(e) => {
                    events.push(Event::OrderAccepted { ts, order_id });
                    events.push(Event::OrderFilled {
                        ts,
                        order_id,
                        fill_id: 1,
                        symbol: *symbol,
                        side,
                        quantity: e.quantity,
                        price: e.price,
                        fee: e.fee,
                        liquidity: Liquidity::Taker,
                    });
                }
                OrderOutcome::NotFilled { code, reason } => events.push(Event::OrderRejected {
                    ts,
                    order_id,
                    code,
                    reason: reason.clone(),
                }),
                OrderOutcome::Refused { reason } => events.push(Event::OrderRejected {
                    ts,
                    order_id,
                    code: tradeloom_agents::KILL_SWITCH_CODE,
                    reason: reason.clone(),
                }),
            }
        }
        let equity = self.equity();
        let fills = u64::from(matches!(self.outcome, OrderOutcome::Filled(_)));
        events.push(Event::RunFinished {
            ts,
            bars: 1,
            orders: u64::from(symbol.is_some()),
            fills,
            cash: self.book.cash(),
            equity,
        });
        for event in &events {
            journal.append_event(event)?;
        }
        let journal_events = journal.len();
        let journal = journal.into_inner()?.finish()?;

        let mut ts_text = Vec::new();
        tradeloom_core::time::write_rfc3339(&mut ts_text, ts);
        let ts_text = String::from_utf8_lossy(&ts_text).into_owned();
        let mut orders = create_artifact(&folder.file("orders.csv"))?;
        orders.write_all(tradeloom_runs::artifacts::ORDERS_HEADER.as_bytes())?;
        let (status, filled, avg, reason) = match self.outcome {
            OrderOutcome::Filled(e) => (
                "FILLED",
                e.quantity.to_string(),
                e.price.to_string(),
                String::new(),
            ),
            OrderOutcome::NotFilled { code, .. } => {
                ("REJECTED", "0".into(), String::new(), code.to_string())
            }
            OrderOutcome::Refused { .. } => (
                "REJECTED",
                "0".into(),
                String::new(),
                tradeloom_agents::KILL_SWITCH_CODE.to_string(),
            ),
        };
        writeln!(
            orders,
            "1,{},{},{},{},{},,DAY,false,{status},{filled},{avg},{ts_text},{ts_text},{reason},,",
            self.proposal.symbol,
            side.as_str(),
            if limit.is_some() { "LIMIT" } else { "MARKET" },
            quantity,
            limit.map(|l| l.to_string()).unwrap_or_default(),
        )?;
        let orders = orders.finish()?;
        let mut fills_csv = create_artifact(&folder.file("fills.csv"))?;
        fills_csv.write_all(tradeloom_runs::artifacts::FILLS_HEADER.as_bytes())?;
        if let OrderOutcome::Filled(e) = self.outcome {
            writeln!(
                fills_csv,
                "1,1,{ts_text},{},{},{},{},{},TAKER",
                e.symbol,
                side.as_str(),
                e.quantity,
                e.price,
                e.fee
            )?;
        }
        let fills_csv = fills_csv.finish()?;

        let mut data = Vec::new();
        if let Some(file) = self.desk.market.bar_file(&self.proposal.symbol) {
            let (sha, bytes) = sha256_file(&file)?;
            let written = Path::new(&self.desk.universe_as_written)
                .join(file.file_name().unwrap_or_default())
                .display()
                .to_string();
            data.push(DataInfo {
                symbol: self.proposal.symbol.clone(),
                path: written,
                resolved_path: file.display().to_string(),
                sha256: Some(sha),
                bytes: Some(bytes),
            });
        }
        let hash = |(sha256, bytes): (String, u64)| FileHash { sha256, bytes };
        let initial = money_f64(self.desk.initial_cash);
        let meta = Metadata {
            run_id: folder.run_id.clone(),
            name: self.name.to_string(),
            status: RunStatus::Completed,
            mode: "order".into(),
            venue: "sim".into(),
            strategy: self.name.to_string(),
            fill_model: fill_model.into(),
            instruments: vec![self.proposal.symbol.clone()],
            tradeloom_version: env!("CARGO_PKG_VERSION").to_string(),
            created_at: self.created_at.clone(),
            finished_at: Some(
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ),
            duration_ms: Some(self.started.elapsed().as_millis() as u64),
            error: None,
            stop_reason: None,
            owner: None,
            spec: SpecInfo {
                source_path: self.name.to_string(),
                source_sha256: spec_sha.clone(),
                sha256: spec_sha,
                script_path: None,
            },
            data,
            artifacts: [
                ("journal.jsonl".to_string(), hash(journal)),
                ("orders.csv".to_string(), hash(orders)),
                ("fills.csv".to_string(), hash(fills_csv)),
            ]
            .into_iter()
            .collect(),
            summary: Some(RunSummary {
                bars: 1,
                trades: fills,
                final_equity: equity.to_string(),
                // A statistic, not accounting.
                total_return_pct: if initial > 0.0 {
                    (money_f64(equity) - initial) / initial * 100.0
                } else {
                    0.0
                },
                max_drawdown_pct: 0.0,
                journal_events,
                halted: matches!(self.outcome, OrderOutcome::Refused { .. }),
                margin_call: false,
            }),
        };
        meta.write(&folder.dir)?;
        Ok(())
    }

    /// Cash plus holdings at the reference price (what is known at the order's time).
    fn equity(&self) -> Money {
        let view = self.desk.view();
        self.book
            .mark(|s| {
                view.reference_price(s)
                    .ok()
                    .or_else(|| view.closing_price(s))
            })
            .map_or(self.book.cash(), |(_, total)| total)
    }
}

fn money_f64(m: Money) -> f64 {
    m.to_string().parse().unwrap_or(0.0)
}
