//! Orders from outside a paper run's strategy (`external_orders: true`): taken from the run
//! folder's inbox, recorded, journaled, checked by the kill switch and pre-trade risk, filled
//! on the next bar, answered in `state/orders/<id>.json`, and replayed identically by a
//! resumed run.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tradeloom_core::{Bar, InstrumentId, Price, Quantity, UnixNanos};
use tradeloom_runs::paper::orders::{self, ExternalOrder, OrderStatus, Side, SubmitError};
use tradeloom_runs::paper::{
    Feed, FeedError, FeedEvent, FeedPoll, FeedPosition, PaperOptions, StopSignal, run_paper,
};
use tradeloom_runs::runner::{ExecuteError, RunOutcome, SpecSource};
use tradeloom_runs::{RunStatus, verify_run};
use tradeloom_safety::{KillSwitch, Scope};

const SPEC: &str = "name: desk
mode: paper
feed: {type: scan_dir, path: scans}
external_orders: true
instruments: [{symbol: ABC, price_precision: 2, size_precision: 0}]
strategy: {name: manual}
execution: {fill_model: next_open}
account: {initial_cash: 10000, currency: USD, type: cash}
snapshot_every: 3
";

/// Daily bars; bar `i` opens at 100 + i and closes at 100.50 + i.
fn bar(i: i64) -> Bar {
    let open = Price::from_raw((100 + i) * 1_000_000_000, 2);
    let close = Price::from_raw((100 + i) * 1_000_000_000 + 500_000_000, 2);
    Bar {
        instrument: InstrumentId(0),
        ts: UnixNanos(1_700_000_000_000_000_000 + i * 86_400_000_000_000),
        open,
        high: close,
        low: open,
        close,
        volume: Quantity::from_raw(1_000_000_000_000, 0).unwrap(),
    }
}

fn order(id: &str, side: Side, quantity: &str) -> ExternalOrder {
    ExternalOrder {
        client_order_id: id.to_string(),
        source: "test".to_string(),
        symbol: "ABC".to_string(),
        side,
        quantity: quantity.to_string(),
        limit: None,
    }
}

enum Step {
    Bar(i64),
    /// Put into the inbox, then wait for the run to look (an idle poll).
    Order(ExternalOrder),
    /// Engage the data dir's global kill switch.
    Engage,
    Fail,
}

/// Bars, orders and kill switch engagements in order; `Ended` after the last.
struct DeskFeed {
    data_dir: PathBuf,
    steps: VecDeque<Step>,
}

impl DeskFeed {
    fn run_dir(&self) -> PathBuf {
        let runs = self.data_dir.join("runs");
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(runs)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        dirs.sort();
        dirs.pop().expect("the run's folder")
    }
}

impl Feed for DeskFeed {
    fn kind(&self) -> &'static str {
        "script"
    }

    fn poll(&mut self, _wait: Duration) -> Result<FeedPoll, FeedError> {
        match self.steps.pop_front() {
            Some(Step::Bar(i)) => Ok(FeedPoll::Event(FeedEvent::Bar(bar(i)))),
            Some(Step::Order(o)) => {
                match orders::submit(&self.run_dir(), &o) {
                    // A client sending again what the run has is told so, and sends nothing.
                    Ok(()) | Err(SubmitError::Duplicate(_)) => {}
                    Err(e) => panic!("{e}"),
                }
                // The run looks every 50 ms.
                std::thread::sleep(orders::INBOX_EVERY + Duration::from_millis(20));
                Ok(FeedPoll::Idle)
            }
            Some(Step::Engage) => {
                KillSwitch::open(&self.data_dir)
                    .unwrap()
                    .engage(&Scope::Global, "desk drill", "test", false)
                    .unwrap();
                std::thread::sleep(Duration::from_millis(120));
                Ok(FeedPoll::Idle)
            }
            Some(Step::Fail) => Err(FeedError {
                feed: "script",
                message: "connection lost".to_string(),
            }),
            None => Ok(FeedPoll::Ended),
        }
    }

    fn resume_after(&mut self, position: FeedPosition) {
        // What the run processed is skipped (orders and kill switch steps were recorded with
        // it); the bar of the last time is asked for again, as a real feed delivers it.
        let Some(last) = position.last_bar_ts else {
            return;
        };
        while let Some(step) = self.steps.front() {
            match step {
                Step::Bar(i) if bar(*i).ts > last => break,
                Step::Fail => break,
                _ => {
                    self.steps.pop_front();
                }
            }
        }
    }
}

fn run(
    data_dir: &Path,
    steps: Vec<Step>,
    resume: Option<&str>,
) -> Result<RunOutcome, ExecuteError> {
    let spec_path = data_dir.join("desk.yaml");
    std::fs::write(&spec_path, SPEC).unwrap();
    let mut options = PaperOptions::new(data_dir, StopSignal::new());
    options.snapshot_interval = Duration::ZERO;
    options.resume = resume.map(str::to_string);
    let spec = match resume {
        Some(id) => tradeloom_runs::paper::resume_spec(data_dir, id).unwrap(),
        None => tradeloom_runs::load_spec(&spec_path).unwrap(),
    };
    let feed = DeskFeed {
        data_dir: data_dir.to_path_buf(),
        steps: steps.into(),
    };
    run_paper(SpecSource::Loaded(Box::new(spec)), Box::new(feed), options)
}

fn journal(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("journal.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn an_external_order_is_journaled_filled_on_the_next_bar_and_answered() {
    let data = tempfile::tempdir().unwrap();
    let outcome = run(
        data.path(),
        vec![
            Step::Bar(0),
            Step::Order(order("buy-1", Side::Buy, "10")),
            Step::Bar(1),
            Step::Bar(2),
            Step::Order(order("sell-1", Side::Sell, "4")),
            Step::Bar(3),
            // Unusable requests: answered, never recorded.
            Step::Order(ExternalOrder {
                symbol: "XYZ".to_string(),
                ..order("bad-symbol", Side::Buy, "1")
            }),
            Step::Order(order("bad-quantity", Side::Buy, "1.5")),
            // Cash for 10,000 / 104 ≈ 96 shares at most: risk refuses 500.
            Step::Order(order("too-big", Side::Buy, "500")),
            Step::Bar(4),
        ],
        None,
    )
    .unwrap();
    assert_eq!(outcome.status, RunStatus::Completed);
    let dir = &outcome.run_dir;

    let buy = orders::read_reply(dir, "buy-1").unwrap();
    assert_eq!(buy.status, OrderStatus::Filled, "{buy:?}");
    assert_eq!(buy.run_id, outcome.run_id);
    assert_eq!(buy.fills.len(), 1);
    assert_eq!(buy.fills[0].price, "101.00", "bar 1's open (next_open)");
    assert_eq!(buy.fills[0].quantity, "10");
    let sell = orders::read_reply(dir, "sell-1").unwrap();
    assert_eq!(sell.status, OrderStatus::Filled);
    assert_eq!(sell.fills[0].price, "103.00");
    assert_eq!(outcome.metrics.fills, 2);

    for (id, needle) in [
        ("bad-symbol", "symbol: `XYZ`"),
        ("bad-quantity", "quantity"),
    ] {
        let reply = orders::read_reply(dir, id).unwrap();
        assert_eq!(reply.status, OrderStatus::Refused);
        assert_eq!(reply.code.as_deref(), Some("order.invalid"));
        assert_eq!(reply.order_id, None);
        assert!(
            reply.reason.as_deref().unwrap().contains(needle),
            "{reply:?}"
        );
    }
    let big = orders::read_reply(dir, "too-big").unwrap();
    assert_eq!(big.status, OrderStatus::Refused, "{big:?}");
    assert!(big.order_id.is_some(), "risk refused it in the engine");
    assert!(
        big.code.as_deref().unwrap().starts_with("account.")
            || big.code.as_deref().unwrap().starts_with("risk."),
        "{big:?}"
    );

    // The journal names each external order before the engine's lines about it.
    let lines = journal(dir);
    let externals: Vec<&Value> = lines
        .iter()
        .filter(|l| l["event"] == "external_order")
        .collect();
    assert_eq!(
        externals.len(),
        3,
        "the two unusable requests are not journaled"
    );
    assert_eq!(externals[0]["client_order_id"], "buy-1");
    assert_eq!(externals[0]["source"], "test");
    let at = lines
        .iter()
        .position(|l| l["event"] == "external_order")
        .unwrap();
    assert_eq!(lines[at + 1]["event"], "order_submitted");
    assert_eq!(lines[at + 1]["order_id"], externals[0]["order_id"]);

    // Positions carry from one order to the next: 10 bought, 4 sold.
    let snapshot: Value =
        serde_json::from_slice(&std::fs::read(dir.join("state/snapshot.json")).unwrap()).unwrap();
    assert_eq!(snapshot["positions"][0]["quantity"], "6", "{snapshot}");

    // Sealed and hashed; the inbox is empty; an answered id is not sent again.
    let report = verify_run(dir).unwrap();
    assert!(report.ok(), "{:?}", report.failures().collect::<Vec<_>>());
    assert_eq!(
        std::fs::read_dir(dir.join(orders::INBOX_DIR))
            .unwrap()
            .count(),
        0
    );
    assert!(matches!(
        orders::submit(dir, &order("buy-1", Side::Buy, "1")),
        Err(SubmitError::Duplicate(_))
    ));
}

#[test]
fn the_kill_switch_refuses_an_external_order() {
    let data = tempfile::tempdir().unwrap();
    let outcome = run(
        data.path(),
        vec![
            Step::Bar(0),
            Step::Engage,
            Step::Order(order("during-halt", Side::Buy, "1")),
            Step::Bar(1),
        ],
        None,
    )
    .unwrap();
    let reply = orders::read_reply(&outcome.run_dir, "during-halt").unwrap();
    assert_eq!(reply.status, OrderStatus::Refused, "{reply:?}");
    assert_eq!(reply.code.as_deref(), Some("risk.kill_switch"));
    assert_eq!(outcome.metrics.fills, 0);
}

#[test]
fn an_order_still_working_at_the_stop_is_cancelled_and_one_before_the_first_bar_refused() {
    let data = tempfile::tempdir().unwrap();
    let outcome = run(
        data.path(),
        vec![
            Step::Order(order("too-early", Side::Buy, "1")),
            Step::Bar(0),
            Step::Order(order("last", Side::Buy, "1")),
        ],
        None,
    )
    .unwrap();
    let early = orders::read_reply(&outcome.run_dir, "too-early").unwrap();
    assert_eq!(early.status, OrderStatus::Refused);
    assert!(early.reason.unwrap().contains("no bar yet"));
    let last = orders::read_reply(&outcome.run_dir, "last").unwrap();
    assert_eq!(last.status, OrderStatus::Cancelled, "{last:?}");
    assert_eq!(last.reason.as_deref(), Some("run_end"));
}

#[test]
fn a_resumed_run_replays_its_external_orders_without_sending_them_twice() {
    let steps = || {
        vec![
            Step::Bar(0),
            Step::Order(order("a", Side::Buy, "5")),
            Step::Bar(1),
            Step::Bar(2),
            Step::Order(order("b", Side::Buy, "3")),
            Step::Bar(3),
            Step::Bar(4),
        ]
    };
    let whole = tempfile::tempdir().unwrap();
    let expected = run(whole.path(), steps(), None).unwrap();
    let expected_fills = std::fs::read_to_string(expected.run_dir.join("fills.csv")).unwrap();

    let data = tempfile::tempdir().unwrap();
    let mut first = steps();
    first.truncate(5);
    first.push(Step::Fail);
    let Err(ExecuteError::Failed(failed)) = run(data.path(), first, None) else {
        panic!("the feed's error fails the run");
    };
    // The process died after recording "b" but before removing its request: the resumed run
    // must not submit it a second time.
    orders::submit(&failed.run_dir, &order("b", Side::Buy, "3")).unwrap_err();
    std::fs::write(
        failed.run_dir.join(orders::INBOX_DIR).join("b.json"),
        serde_json::to_vec(&order("b", Side::Buy, "3")).unwrap(),
    )
    .unwrap();
    let resumed = run(data.path(), steps(), Some(&failed.run_id)).unwrap();
    assert_eq!(resumed.status, RunStatus::Completed);
    let strip = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| l[..l.rfind(',').unwrap()].to_string())
            .collect()
    };
    let fills = std::fs::read_to_string(failed.run_dir.join("fills.csv")).unwrap();
    assert_eq!(strip(&fills), strip(&expected_fills));
    let b = orders::read_reply(&failed.run_dir, "b").unwrap();
    assert_eq!(b.status, OrderStatus::Filled);
    assert_eq!(resumed.metrics.orders, 2, "b once");
    let report = verify_run(&failed.run_dir).unwrap();
    assert!(report.ok(), "{:?}", report.failures().collect::<Vec<_>>());
}
