//! Account rules over whole runs: a cash account never shorts and never overdraws (counting
//! working orders before a trade, limiting fills at fill time), and a margin account stops
//! trading on a margin call instead of trading on negative equity.

use tradeloom_core::{AccountKind, Decimal, Event, OrderSide, Price};
use tradeloom_engine::sink::VecSink;
use tradeloom_engine::strategies::CrossParams;
use tradeloom_engine::{
    FillModel, MarginCallAction, MarginConfig, MarginRule, OrderRequest, RiskConfig,
    StrategyConfig, build_strategy,
};

use crate::fixture::{Script, at, bar, dec, execution, qty, resolved, run, try_run};
use crate::golden::{goog, goog_bars};

/// Replays what the engine reported and fails on the first row where the position of any
/// instrument or the cash is negative: every fill (running sums), every `position_changed`
/// event and every equity row.
fn assert_never_short_nor_overdrawn(sink: &VecSink, initial_cash: &str, what: &str) {
    let mut cash = crate::fixture::usd(initial_cash).raw();
    let mut net = [0i128; 2];
    for f in &sink.fills {
        let notional = i128::from(f.price.raw()) * i128::from(f.quantity.raw());
        let sign = i128::from(f.side.sign());
        cash -= sign * notional + f.fee.raw();
        net[f.instrument.index()] += sign * i128::from(f.quantity.raw());
        assert!(
            net[f.instrument.index()] >= 0,
            "{what}: fill {} on {} leaves a short position",
            f.id,
            f.ts.date_string()
        );
        assert!(
            cash >= 0,
            "{what}: fill {} on {} leaves cash at {}",
            f.id,
            f.ts.date_string(),
            tradeloom_core::Money::from_raw(cash, tradeloom_core::Currency::USD)
        );
    }
    for e in &sink.events {
        if let Event::PositionChanged { ts, quantity, .. } = e {
            assert!(
                quantity.raw >= 0,
                "{what}: position {quantity:?} on {}",
                ts.date_string()
            );
        }
    }
    for p in &sink.equity {
        assert!(
            !p.cash.is_negative(),
            "{what}: cash {} on {}",
            p.cash,
            p.ts.date_string()
        );
    }
}

/// `sma_cross` (long and short) on GOOG daily with a cash account: the cross down closes the
/// long with one order and opens a short with another. Before working orders were counted,
/// under `next_open` the second passed the no-shorting check while the first was still
/// waiting to fill (46 short trades with 100 000 USD), and a buy checked against the close
/// filled at a higher open and overdrew the cash.
#[test]
fn sma_cross_on_a_cash_account_never_shorts_or_overdraws() {
    let bars = goog_bars();
    let mut runs = 0;
    for fill_model in [FillModel::NextOpen, FillModel::BarClose] {
        // From plenty of cash to barely enough for 10 shares, where buys meet their limit.
        for cash in ["100000", "20000", "8000", "6000", "4000", "3000"] {
            let config = resolved(
                execution(fill_model),
                RiskConfig::default(),
                AccountKind::Cash,
                cash,
            );
            let strategy = StrategyConfig::SmaCross(CrossParams {
                fast: 10,
                slow: 20,
                quantity: Decimal::from_int(10),
                long_only: false,
            });
            let inst = goog();
            let strategies = vec![build_strategy(&strategy, &inst).unwrap()];
            let r = try_run(config, vec![inst], strategies, &bars).unwrap();
            let what = format!("{fill_model} with {cash}");
            assert_never_short_nor_overdrawn(&r.sink, cash, &what);
            assert!(!r.sink.fills.is_empty(), "{what}: it traded");
            let shorts_refused = r
                .sink
                .events
                .iter()
                .filter(|e| {
                    matches!(
                        e,
                        Event::OrderRejected {
                            code: "account.no_shorting",
                            ..
                        }
                    )
                })
                .count();
            assert!(
                shorts_refused > 40,
                "{what}: {shorts_refused} shorts refused"
            );
            runs += 1;
        }
    }
    assert_eq!(runs, 12);
}

/// Under `next_open` a buy that passed its check against the close fills at the next open;
/// when that open is higher than the cash allows, the fill is cut to whole shares the cash
/// pays for, the rest cancelled, both journaled.
#[test]
fn a_buy_that_the_next_open_makes_unaffordable_is_cut_to_the_cash() {
    let config = resolved(
        execution(FillModel::NextOpen),
        RiskConfig::default(),
        AccountKind::Cash,
        "1000",
    );
    let script = Script::new().submit(0, OrderRequest::market(OrderSide::Buy, qty(10)));
    let bars = [
        bar(0, at(0, 0), "100", "100", "100", "100"),
        bar(0, at(1, 0), "120", "120", "120", "120"),
        bar(0, at(2, 0), "120", "120", "120", "120"),
    ];
    let r = run(config, &bars, script);
    assert_eq!(
        r.lifecycle(1),
        [
            "order_submitted",
            "order_accepted",
            "fill_limited",
            "order_filled",
            "order_cancelled"
        ]
    );
    let limited = r
        .sink
        .events
        .iter()
        .find_map(|e| match e {
            Event::FillLimited {
                code,
                quantity,
                allowed,
                detail,
                ..
            } => Some((
                *code,
                quantity.to_string(),
                allowed.to_string(),
                detail.clone(),
            )),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        limited,
        (
            "account.insufficient_cash",
            "10".to_string(),
            "8".to_string(),
            "buy 10 at 120.00 needs 1200.00 (notional 1200.00 + fee 0.00) but cash is 1000.00; 8 fills"
                .to_string()
        )
    );
    assert_eq!(r.cancellation(1), (at(1, 0), "insufficient_cash"));
    assert_eq!(
        r.fill_rows(),
        [(1, "8".into(), "120.00".into(), "0.00".into())]
    );
    assert_eq!(r.summary.cash.to_string(), "40.00");
}

/// The pre-trade check counts working orders: a second sell while the first still waits for
/// the next open would short, and a second buy would spend cash the first has taken.
#[test]
fn pre_trade_checks_count_working_orders() {
    let config = resolved(
        execution(FillModel::NextOpen),
        RiskConfig::default(),
        AccountKind::Cash,
        "1500",
    );
    let m = |side, n| OrderRequest::market(side, qty(n));
    let script = Script::new()
        .submit(0, m(OrderSide::Buy, 10))
        .submit(0, m(OrderSide::Buy, 10))
        .submit(1, m(OrderSide::Sell, 10))
        .submit(1, m(OrderSide::Sell, 10));
    let bars = [
        bar(0, at(0, 0), "100", "100", "100", "100"),
        bar(0, at(1, 0), "100", "100", "100", "100"),
        bar(0, at(2, 0), "100", "100", "100", "100"),
    ];
    let r = run(config, &bars, script);
    assert_eq!(
        r.rejection(2),
        (
            "account.insufficient_cash",
            "buy needs 1000.00 (notional 1000.00 + fee 0.00) but cash is 1500.00, of which 1000.00 is held for working buys".to_string()
        )
    );
    assert_eq!(
        r.rejection(4),
        (
            "account.no_shorting",
            "sell 10 would open a short position once the working sells of 10 fill (position 10); a cash account cannot short".to_string()
        )
    );
    let filled: Vec<_> = r.fills().iter().map(|f| f.order_id.0).collect();
    assert_eq!(filled, [1, 3]);
    assert_eq!(r.summary.positions[0].signed_quantity_string(), "0");
}

/// A short on a margin account against a rally: 1000 USD of equity, short 10 at 100, the
/// price runs to 150, 210, 220. Equity at the closes: 500, then −100.
fn rally() -> Vec<tradeloom_core::Bar> {
    vec![
        bar(0, at(0, 0), "100", "100", "100", "100"),
        bar(0, at(1, 0), "100", "150", "100", "150"),
        bar(0, at(2, 0), "150", "210", "150", "210"),
        bar(0, at(3, 0), "220", "230", "220", "230"),
        bar(0, at(4, 0), "240", "240", "240", "240"),
        bar(0, at(5, 0), "250", "250", "250", "250"),
    ]
}

fn margin_config(
    fill_model: FillModel,
    rule: Option<MarginConfig>,
) -> tradeloom_engine::EngineConfig {
    let mut config = resolved(
        execution(fill_model),
        RiskConfig::default(),
        AccountKind::Margin,
        "1000",
    );
    config.margin = MarginRule::resolve(rule.as_ref(), AccountKind::Margin).unwrap();
    config
}

/// The short keeps losing: before the margin call the run went on trading at equity −100,
/// −300, … (and filled the buy of bar 4). With the default rule the close of day 2 (equity
/// −100 ≤ 0) is a margin call: the short is bought back at the next open (220), the order of
/// bar 4 is refused, and the final equity is the call's equity minus one bar's gap.
#[test]
fn a_margin_call_liquidates_at_the_next_open_and_stops_trading() {
    for fill_model in [FillModel::BarClose, FillModel::NextOpen] {
        let script = Script::new()
            .submit(0, OrderRequest::market(OrderSide::Sell, qty(10)))
            .submit(4, OrderRequest::market(OrderSide::Buy, qty(1)));
        let r = run(margin_config(fill_model, None), &rally(), script);
        let calls: Vec<_> = r
            .sink
            .events
            .iter()
            .filter_map(|e| match e {
                Event::MarginCall {
                    ts,
                    equity,
                    maintenance_margin,
                    gross_exposure,
                    action,
                    detail,
                } => Some((
                    *ts,
                    equity.to_string(),
                    maintenance_margin.to_string(),
                    gross_exposure.to_string(),
                    *action,
                    detail.clone(),
                )),
                _ => None,
            })
            .collect();
        assert_eq!(
            calls,
            [(
                at(2, 0),
                "-100.00".to_string(),
                "0.00".to_string(),
                "2100.00".to_string(),
                "liquidate",
                "equity -100.00 is at or below the maintenance margin 0.00 (0% of gross exposure 2100.00)".to_string()
            )],
            "{fill_model}"
        );
        let liquidation = r
            .sink
            .events
            .iter()
            .find_map(|e| match e {
                Event::MarginLiquidation {
                    ts,
                    order_id,
                    quantity,
                    ..
                } => Some((*ts, order_id.0, quantity.to_string())),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            liquidation,
            (at(2, 0), 2, "-10".to_string()),
            "{fill_model}"
        );
        let fills: Vec<_> = r
            .sink
            .fills
            .iter()
            .map(|f| (f.order_id.0, f.ts, f.side, f.price.to_string()))
            .collect();
        assert_eq!(
            fills[1],
            (2, at(3, 0), OrderSide::Buy, "220.00".to_string()),
            "{fill_model}: bought back at the next open"
        );
        assert_eq!(fills.len(), 2, "{fill_model}: no trading after the call");
        assert_eq!(r.rejection(3).0, "risk.margin_call");
        assert!(
            r.rejection(3).1.starts_with(
                "trading is halted for the rest of the run (margin call: equity -100.00"
            ),
            "{}",
            r.rejection(3).1
        );
        assert!(!r.summary.halted, "a margin call is not the kill switch");
        assert!(r.summary.positions[0].is_flat());
        // Equity above the threshold (0) until the call; after it, the call's equity less the
        // gap from the close (210) to the liquidating open (220) on the 10 short: −200.
        let equity: Vec<_> = r
            .sink
            .equity
            .iter()
            .map(|p| (p.ts, p.equity.to_string()))
            .collect();
        let before: Vec<_> = equity.iter().filter(|(ts, _)| *ts < at(2, 0)).collect();
        assert!(
            before.iter().all(|(_, e)| !e.starts_with('-')),
            "{before:?}"
        );
        let after: Vec<_> = equity
            .iter()
            .filter(|(ts, _)| *ts > at(2, 0))
            .map(|(_, e)| e.as_str())
            .collect();
        assert_eq!(after, ["-200.00", "-200.00", "-200.00"], "{fill_model}");
    }
}

/// A maintenance margin above 0 calls earlier: at 40 % of gross exposure the close of day 1
/// (equity 500 ≤ 40 % of 1500) is the call, and liquidation at the open of day 2 (150) ends the
/// run with 500 of equity; `on_call: halt` keeps the position and only stops trading.
#[test]
fn maintenance_pct_and_halt_are_configurable() {
    let rule = MarginConfig {
        maintenance_pct: Some(dec("40")),
        on_call: MarginCallAction::Liquidate,
    };
    let script = Script::new().submit(0, OrderRequest::market(OrderSide::Sell, qty(10)));
    let r = run(
        margin_config(FillModel::BarClose, Some(rule)),
        &rally(),
        script,
    );
    let call = r
        .sink
        .events
        .iter()
        .find_map(|e| match e {
            Event::MarginCall {
                ts,
                maintenance_margin,
                ..
            } => Some((*ts, maintenance_margin.to_string())),
            _ => None,
        })
        .unwrap();
    assert_eq!(call, (at(1, 0), "600.00".to_string()));
    assert_eq!(r.summary.equity.to_string(), "500.00");
    assert!(r.summary.positions[0].is_flat());

    let halt = MarginConfig {
        maintenance_pct: None,
        on_call: MarginCallAction::Halt,
    };
    let script = Script::new()
        .submit(0, OrderRequest::market(OrderSide::Sell, qty(10)))
        .submit(4, OrderRequest::market(OrderSide::Buy, qty(10)));
    let r = run(
        margin_config(FillModel::BarClose, Some(halt)),
        &rally(),
        script,
    );
    assert_eq!(r.counts().get("margin_call"), Some(&1));
    assert_eq!(r.counts().get("margin_liquidation"), None);
    assert_eq!(r.rejection(2).0, "risk.margin_call");
    assert_eq!(r.summary.positions[0].signed_quantity_string(), "-10");
    assert_eq!(r.summary.equity.to_string(), "-500.00");
}

/// Working orders are cancelled by the call with reason `margin_call`.
#[test]
fn a_margin_call_cancels_working_orders() {
    let script = Script::new()
        .submit(0, OrderRequest::market(OrderSide::Sell, qty(10)))
        .submit(
            1,
            OrderRequest::limit(OrderSide::Sell, qty(1), Price::parse("500", 2).unwrap()),
        );
    let r = run(margin_config(FillModel::BarClose, None), &rally(), script);
    assert_eq!(r.cancellation(2), (at(2, 0), "margin_call"));
}
