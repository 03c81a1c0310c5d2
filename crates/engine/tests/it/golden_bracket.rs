//! The engine against backtesting.py 0.6.6 on GOOG daily limit entries with stop-loss and
//! take-profit brackets (`tests/golden/goog_1d_bracket_limit`): every round trip (side, entry
//! and exit bar, prices, PnL) and the final equity, exactly.

use tradeloom_core::{Bar, Currency, Money, OrderSide, Price, Quantity, UnixNanos};
use tradeloom_engine::sink::VecSink;
use tradeloom_engine::{
    Bracket, Engine, EngineConfig, FillModel, OrderRequest, StopLoss, Strategy, StrategyContext,
};

use crate::golden::{goog, goog_bars};

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The peer script's rule (`peer_backtesting_py.py`), through the public context API: while
/// flat, cancel what works and, above (below) the 20-bar SMA of closes, place a limit buy
/// (sell) of 10 one percent under (over) the close with a stop-loss 5 % away and a
/// take-profit 5 % away, all in whole cents rounded away from the entry as the script does.
struct BracketLimit {
    closes: Vec<i64>,
}

/// Whole cents of a price at 2 decimals.
fn cents(p: Price) -> i64 {
    p.raw() / 10_000_000
}

fn price(cents: i64) -> Price {
    Price::from_raw(cents * 10_000_000, 2)
}

impl Strategy for BracketLimit {
    fn on_bar(&mut self, ctx: &mut StrategyContext<'_>, bar: &Bar) {
        self.closes.push(cents(bar.close));
        if !ctx.position().is_flat() {
            return;
        }
        let working: Vec<_> = ctx.open_orders().map(|o| o.id).collect();
        for id in working {
            ctx.cancel(id);
        }
        let n = self.closes.len();
        if n < 20 {
            return;
        }
        let c = self.closes[n - 1];
        let window: i64 = self.closes[n - 20..].iter().sum();
        let floor = |pct: i64| (c * pct).div_euclid(100);
        let ceil = |pct: i64| -(-c * pct).div_euclid(100);
        let q = Quantity::from_int(10, 0);
        let bracket = if c * 20 > window {
            Bracket {
                entry: OrderRequest::buy(q).with_limit(price(floor(99))),
                take_profit: Some(price(floor(105))),
                stop_loss: Some(StopLoss::Stop(price(floor(95)))),
            }
        } else if c * 20 < window {
            Bracket {
                entry: OrderRequest::sell(q).with_limit(price(ceil(101))),
                take_profit: Some(price(ceil(95))),
                stop_loss: Some(StopLoss::Stop(price(ceil(105)))),
            }
        } else {
            return;
        };
        ctx.bracket(bracket);
    }
}

#[test]
fn limit_brackets_match_backtesting_py_trade_by_trade() {
    let bars = goog_bars();
    let cash = Money::parse("100000", Currency::USD).unwrap();
    let config = EngineConfig::frictionless(FillModel::NextOpen, cash);
    let strategy = BracketLimit { closes: Vec::new() };
    let mut engine = Engine::new(config, vec![goog()], vec![Box::new(strategy)]).unwrap();
    let mut sink = VecSink::default();
    for bar in &bars {
        engine.on_bar(bar, &mut sink).unwrap();
    }
    let summary = engine.finish(&mut sink).unwrap();
    let index_of = |ts: UnixNanos| bars.iter().position(|b| b.ts == ts).unwrap().to_string();
    let ours: Vec<Vec<String>> = sink
        .trades
        .iter()
        .filter(|t| !t.is_open())
        .map(|t| {
            let size = if t.side == OrderSide::Buy {
                "10"
            } else {
                "-10"
            };
            vec![
                size.to_string(),
                index_of(t.entry_ts),
                index_of(t.exit_ts.unwrap()),
                t.entry_price.to_string(),
                t.exit_price.unwrap().to_string(),
                t.net_pnl.to_string(),
            ]
        })
        .collect();
    let golden = std::fs::read_to_string(format!(
        "{REPO}/tests/golden/goog_1d_bracket_limit/backtesting_py_trades.csv"
    ))
    .unwrap();
    let expected: Vec<Vec<String>> = golden
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    assert_eq!(expected.len(), 255);
    for (k, (o, e)) in ours.iter().zip(&expected).enumerate() {
        assert_eq!(o, e, "round trip {k}");
    }
    assert_eq!(ours.len(), expected.len());
    let summary_json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{REPO}/tests/golden/goog_1d_bracket_limit/backtesting_py_summary.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let equity = format!("{:.2}", summary_json["final_equity"].as_f64().unwrap());
    assert_eq!(summary.equity.to_string(), equity);
    assert_eq!(summary.positions[0].signed_quantity_string(), "10");
}
