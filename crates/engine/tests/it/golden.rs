//! The engine against NautilusTrader and backtesting.py on GOOG daily SMA(10/20) cross
//! (`tests/golden/goog_1d_sma_cross` in the repository): every fill or trade and the final equity, exactly.

use tradeloom_core::{
    Bar, Currency, Decimal, Event, Instrument, InstrumentId, Money, OrderSide, Price, Quantity,
    Symbol, UnixNanos,
};
use tradeloom_engine::sink::VecSink;
use tradeloom_engine::strategies::CrossParams;
use tradeloom_engine::{Engine, EngineConfig, FillModel, StrategyConfig, build_strategy};

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

pub(crate) fn goog() -> Instrument {
    Instrument::new(
        InstrumentId(0),
        Symbol::new("GOOG").unwrap(),
        "sim",
        2,
        0,
        Currency::USD,
    )
    .unwrap()
}

/// The golden data is a plain `YYYY-MM-DD,o,h,l,c,v` file; the real loaders live in
/// tradeloom-data and are tested end to end in the CLI's golden test.
pub(crate) fn goog_bars() -> Vec<Bar> {
    let text = std::fs::read_to_string(format!("{REPO}/examples/data/goog_1d.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let d: Vec<u32> = f[0].split('-').map(|x| x.parse().unwrap()).collect();
            let p = |s: &str| Price::parse(s, 2).unwrap();
            Bar {
                instrument: InstrumentId(0),
                ts: UnixNanos::from_date(d[0] as i32, d[1], d[2]).unwrap(),
                open: p(f[1]),
                high: p(f[2]),
                low: p(f[3]),
                close: p(f[4]),
                volume: Quantity::parse(f[5], 0).unwrap(),
            }
        })
        .collect()
}

fn run(fill_model: FillModel) -> (VecSink, tradeloom_engine::Summary, Vec<Bar>) {
    let bars = goog_bars();
    let cash = Money::parse("100000", Currency::USD).unwrap();
    let config = EngineConfig::frictionless(fill_model, cash);
    let strategy = StrategyConfig::SmaCross(CrossParams {
        fast: 10,
        slow: 20,
        quantity: Decimal::from_int(10),
        long_only: false,
    });
    let inst = goog();
    let strategies = vec![build_strategy(&strategy, &inst).unwrap()];
    let mut engine = Engine::new(config, vec![inst], strategies).unwrap();
    let mut sink = VecSink::default();
    for bar in &bars {
        engine.on_bar(bar, &mut sink).unwrap();
    }
    let summary = engine.finish(&mut sink).unwrap();
    (sink, summary, bars)
}

#[test]
fn bar_close_matches_nautilus_fill_by_fill() {
    let (sink, summary, _) = run(FillModel::BarClose);
    let golden = std::fs::read_to_string(format!(
        "{REPO}/tests/golden/goog_1d_sma_cross/nautilus_bar_close_fills.csv"
    ))
    .unwrap();
    let expected: Vec<(String, String, String, String)> = golden
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let price = Price::parse(f[3], 2).unwrap().to_string();
            (
                f[0][..10].to_string(),
                f[1].to_string(),
                f[2].to_string(),
                price,
            )
        })
        .collect();
    let ours: Vec<(String, String, String, String)> = sink
        .fills
        .iter()
        .map(|f| {
            (
                f.ts.date_string(),
                f.side.as_str().to_string(),
                f.quantity.to_string(),
                f.price.to_string(),
            )
        })
        .collect();
    assert_eq!(ours.len(), 187);
    assert_eq!(ours, expected);
    assert_eq!(summary.equity.to_string(), "112377.30");
    // Nautilus' margin "balance" is initial cash + realised PnL; unrealised is marked at the
    // last close (698.37 entry vs 806.19 close).
    let pos = &summary.positions[0];
    let balance = Money::parse("100000", Currency::USD)
        .unwrap()
        .checked_add(pos.realized())
        .unwrap();
    assert_eq!(balance.to_string(), "111299.10");
    let last_close = Price::parse("806.19", 2).unwrap();
    assert_eq!(pos.unrealized(last_close).unwrap().to_string(), "1078.20");
    assert_eq!(summary.positions[0].signed_quantity_string(), "10");
}

#[test]
fn next_open_matches_backtesting_py_trade_by_trade() {
    let (sink, summary, bars) = run(FillModel::NextOpen);
    let golden = std::fs::read_to_string(format!(
        "{REPO}/tests/golden/goog_1d_sma_cross/backtesting_py_next_open_trades.csv"
    ))
    .unwrap();
    let index_of = |ts: UnixNanos| bars.iter().position(|b| b.ts == ts).unwrap();
    let closed: Vec<_> = sink.trades.iter().filter(|t| !t.is_open()).collect();
    let expected: Vec<Vec<String>> = golden
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    assert_eq!(closed.len(), 93);
    assert_eq!(closed.len(), expected.len());
    for (t, e) in closed.iter().zip(&expected) {
        let size = if t.side == OrderSide::Buy {
            "10"
        } else {
            "-10"
        };
        assert_eq!(size, e[0], "{t:?}");
        assert_eq!(index_of(t.entry_ts).to_string(), e[1], "{t:?}");
        assert_eq!(index_of(t.exit_ts.unwrap()).to_string(), e[2], "{t:?}");
        let entry: f64 = e[3].parse().unwrap();
        let exit: f64 = e[4].parse().unwrap();
        assert_eq!(
            t.entry_price,
            Price::parse(&format!("{entry:.2}"), 2).unwrap()
        );
        assert_eq!(
            t.exit_price.unwrap(),
            Price::parse(&format!("{exit:.2}"), 2).unwrap()
        );
        let pnl: f64 = e[5].parse().unwrap();
        assert_eq!(t.net_pnl.to_string(), format!("{pnl:.2}"), "{t:?}");
    }
    let open: Vec<_> = sink.trades.iter().filter(|t| t.is_open()).collect();
    assert_eq!(open.len(), 1);
    assert_eq!(index_of(open[0].entry_ts), 2087);
    assert_eq!(open[0].entry_price.to_string(), "702.24");
    assert_eq!(summary.equity.to_string(), "112583.70");
    // The order submitted on the last bar never fills (a cross on the last bar, if any).
    assert!(
        sink.events
            .iter()
            .all(|e| !matches!(e, Event::OrderRejected { .. }))
    );
}
