//! Order lifecycle on small hand-made bars: fill models, order types, time in force,
//! reduce-only, fees, slippage, trades, multi-instrument equity and engine errors.

use tradeloom_core::{
    AccountKind, Bar, Bps, Currency, Event, InstrumentId, Liquidity, OrderId, OrderSide, Quantity,
    TimeInForce, UnixNanos,
};
use tradeloom_engine::{EngineError, FillModel, OrderRequest, RiskConfig, Strategy};

use crate::fixture::{
    Script, at, bar, daily, dec, execution, frictionless, instrument, px, qty, resolved, run,
    run_on, try_run, usd,
};

const BUY: OrderSide = OrderSide::Buy;
const SELL: OrderSide = OrderSide::Sell;

fn market(side: OrderSide, n: u32) -> OrderRequest {
    OrderRequest::market(side, qty(n))
}

fn limit(side: OrderSide, n: u32, price: &str) -> OrderRequest {
    OrderRequest::limit(side, qty(n), px(price))
}

fn stop(side: OrderSide, n: u32, trigger: &str) -> OrderRequest {
    OrderRequest::stop(side, qty(n), px(trigger))
}

fn row(id: u64, q: &str, price: &str, fee: &str) -> (u64, String, String, String) {
    (id, q.to_string(), price.to_string(), fee.to_string())
}

const FLAT: (&str, &str, &str, &str) = ("10", "10.50", "9.50", "10");

#[test]
fn bar_close_market_order_fills_at_that_bars_close() {
    let bars = daily(&[("10", "11", "9", "10.50"), ("11", "12", "10", "11.50")]);
    let r = run(
        frictionless(FillModel::BarClose),
        &bars,
        Script::new().submit(0, market(BUY, 1)),
    );
    assert_eq!(r.fill_rows(), vec![row(1, "1", "10.50", "0.00")]);
    assert_eq!(r.fills()[0].ts, at(0, 0));
    assert_eq!(r.fills()[0].liquidity, Liquidity::Taker);
    assert_eq!(
        r.lifecycle(1),
        ["order_submitted", "order_accepted", "order_filled"]
    );
}

#[test]
fn next_open_market_order_fills_at_the_next_open_and_never_on_the_last_bar() {
    let bars = daily(&[("10", "11", "9", "10.50"), ("11", "12", "10", "11.50")]);
    let r = run(
        frictionless(FillModel::NextOpen),
        &bars,
        Script::new()
            .submit(0, market(BUY, 1))
            .submit(1, market(SELL, 1)),
    );
    assert_eq!(r.fill_rows(), vec![row(1, "1", "11.00", "0.00")]);
    assert_eq!(r.fills()[0].ts, at(1, 0));
    assert_eq!(
        r.lifecycle(2),
        ["order_submitted", "order_accepted", "order_cancelled"]
    );
    assert_eq!(r.cancellation(2), (at(1, 0), "run_end"));
    assert_eq!(r.summary.positions[0].signed_quantity_string(), "1");
}

#[test]
fn limits_fill_at_their_price_or_a_better_open_from_the_next_bar() {
    // Bar 0's range holds every limit; under next_open none may fill against it.
    let bars = daily(&[("10", "11", "9", "10"), ("10", "10.90", "9.40", "10")]);
    let script = Script::new()
        .submit(0, limit(BUY, 1, "9.50"))
        .submit(0, limit(SELL, 1, "10.80"))
        .submit(0, limit(BUY, 1, "10.20"))
        .submit(0, limit(SELL, 1, "9.90"));
    let r = run(frictionless(FillModel::NextOpen), &bars, script.clone());
    assert_eq!(
        r.fill_rows(),
        vec![
            row(1, "1", "9.50", "0.00"),
            row(2, "1", "10.80", "0.00"),
            row(3, "1", "10.00", "0.00"),
            row(4, "1", "10.00", "0.00"),
        ]
    );
    assert!(r.fills().iter().all(|f| f.ts == at(1, 0)));
    assert!(r.fills().iter().all(|f| f.liquidity == Liquidity::Maker));

    // Under bar_close the two limits that are marketable against bar 0's close fill there,
    // taking liquidity; the others rest to bar 1.
    let r = run(frictionless(FillModel::BarClose), &bars, script);
    let fills: Vec<_> = r
        .fills()
        .iter()
        .map(|f| (f.order_id.0, f.ts, f.price.to_string(), f.liquidity))
        .collect();
    assert_eq!(
        fills,
        vec![
            (3, at(0, 0), "10.00".to_string(), Liquidity::Taker),
            (4, at(0, 0), "10.00".to_string(), Liquidity::Taker),
            (1, at(1, 0), "9.50".to_string(), Liquidity::Maker),
            (2, at(1, 0), "10.80".to_string(), Liquidity::Maker),
        ]
    );
}

#[test]
fn stops_fill_at_the_trigger_or_a_worse_open_from_the_next_bar() {
    // Bar 0 touches the sell stop at 9.50 and bar 1 the stops submitted on it (open 10 is
    // below 11.90): neither may trigger on the bar it was submitted on.
    let bars = daily(&[
        ("10", "10.50", "9.50", "10"),
        ("10", "11", "9", "10.50"),
        ("11.50", "12", "11", "11.80"),
    ]);
    let script = Script::new()
        .submit(0, stop(BUY, 1, "10.70"))
        .submit(0, stop(SELL, 1, "9.50"))
        .submit(1, stop(BUY, 1, "11.20"))
        .submit(1, stop(SELL, 1, "11.90"));
    let r = run(frictionless(FillModel::NextOpen), &bars, script);
    assert_eq!(
        r.fill_rows(),
        vec![
            row(1, "1", "10.70", "0.00"),
            row(2, "1", "9.50", "0.00"),
            row(3, "1", "11.50", "0.00"),
            row(4, "1", "11.50", "0.00"),
        ]
    );
    let ts: Vec<_> = r.fills().iter().map(|f| f.ts).collect();
    assert_eq!(ts, [at(1, 0), at(1, 0), at(2, 0), at(2, 0)]);
    assert!(r.fills().iter().all(|f| f.liquidity == Liquidity::Taker));
    for id in 1..=4 {
        assert_eq!(
            r.lifecycle(id),
            [
                "order_submitted",
                "order_accepted",
                "order_triggered",
                "order_filled"
            ],
            "order {id}"
        );
    }
}

#[test]
fn stop_limit_fills_on_its_trigger_bar_or_rests_triggered_until_its_limit_trades() {
    // Bar 1's path: 10 → 9.90 → 11 → 10.90; both triggers trade at 10.80 on the way up.
    let bars = daily(&[
        ("10", "10.50", "9.90", "10"),
        ("10", "11", "9.90", "10.90"),
        ("10.70", "10.80", "10.40", "10.60"),
    ]);
    let script = Script::new()
        .submit(
            0,
            OrderRequest::stop_limit(BUY, qty(1), px("10.80"), px("10.90")),
        )
        .submit(
            0,
            OrderRequest::stop_limit(BUY, qty(1), px("10.80"), px("10.50")),
        );
    let r = run(frictionless(FillModel::NextOpen), &bars, script);
    let fills: Vec<_> = r
        .fills()
        .iter()
        .map(|f| (f.order_id.0, f.ts, f.price.to_string(), f.liquidity))
        .collect();
    assert_eq!(
        fills,
        vec![
            (1, at(1, 0), "10.80".to_string(), Liquidity::Taker),
            (2, at(2, 0), "10.50".to_string(), Liquidity::Maker),
        ]
    );
    let triggered: Vec<_> = r
        .order_events(2)
        .into_iter()
        .filter_map(|e| match e {
            Event::OrderTriggered { ts, .. } => Some(*ts),
            _ => None,
        })
        .collect();
    assert_eq!(triggered, [at(1, 0)], "triggered once, on bar 1");
    assert_eq!(
        r.lifecycle(2),
        [
            "order_submitted",
            "order_accepted",
            "order_triggered",
            "order_filled"
        ]
    );
}

#[test]
fn day_orders_expire_on_the_next_utc_day() {
    let bars = vec![
        bar(0, at(0, 10), "10", "10.50", "9.50", "10"),
        bar(0, at(0, 12), "10", "10.50", "9.60", "10"),
        bar(0, at(1, 10), "9", "9.50", "8", "9"),
    ];
    let day = |r: OrderRequest| r.time_in_force(TimeInForce::Day);
    let script = Script::new()
        .submit(0, day(limit(BUY, 1, "9")))
        .submit(0, limit(BUY, 1, "9"))
        .submit(0, day(limit(BUY, 1, "9.60")));
    let r = run(frictionless(FillModel::NextOpen), &bars, script);
    // The DAY order would fill at the open of day 1; it expires first.
    assert_eq!(
        r.lifecycle(1),
        ["order_submitted", "order_accepted", "order_expired"]
    );
    assert_eq!(r.order_events(1)[2].ts(), at(1, 10));
    assert_eq!(
        r.fill_rows(),
        vec![row(3, "1", "9.60", "0.00"), row(2, "1", "9.00", "0.00")]
    );
    assert_eq!(r.fills()[0].ts, at(0, 12), "a DAY order fills the same day");
}

#[test]
fn ioc_orders_are_cancelled_unless_they_fill_on_their_first_eligible_bar() {
    let bars = daily(&[FLAT, FLAT, ("9", "10", "8", "9")]);
    let ioc = |r: OrderRequest| r.time_in_force(TimeInForce::Ioc);
    let script = Script::new()
        .submit(0, ioc(limit(BUY, 1, "9")))
        .submit(0, ioc(limit(BUY, 1, "9.50")))
        .submit(0, ioc(market(BUY, 1)))
        .submit(
            0,
            ioc(OrderRequest::stop_limit(BUY, qty(1), px("10.40"), px("9"))),
        );
    let r = run(frictionless(FillModel::NextOpen), &bars, script);
    // Bar 2 would fill order 1 at 9; it was cancelled on bar 1.
    assert_eq!(r.cancellation(1), (at(1, 0), "ioc_unfilled"));
    assert_eq!(
        r.fill_rows(),
        vec![row(2, "1", "9.50", "0.00"), row(3, "1", "10.00", "0.00")]
    );
    assert_eq!(
        r.lifecycle(2),
        ["order_submitted", "order_accepted", "order_filled"]
    );
    assert_eq!(
        r.lifecycle(4),
        [
            "order_submitted",
            "order_accepted",
            "order_triggered",
            "order_cancelled"
        ]
    );
    assert_eq!(r.cancellation(4), (at(1, 0), "ioc_unfilled"));
}

#[test]
fn reduce_only_orders_that_would_not_reduce_are_rejected_at_submit() {
    let bars = daily(&[FLAT, FLAT]);
    let script = Script::new()
        .submit(0, market(SELL, 1).reduce_only())
        .submit(0, market(BUY, 5))
        .submit(1, market(SELL, 6).reduce_only())
        .submit(1, market(BUY, 1).reduce_only())
        .submit(1, market(SELL, 5).reduce_only());
    let r = run(frictionless(FillModel::BarClose), &bars, script);
    assert_eq!(
        r.rejection(1),
        (
            "order.reduce_only",
            "reduce-only SELL 1 would not only reduce the position 0".to_string()
        )
    );
    assert_eq!(
        r.rejection(3),
        (
            "order.reduce_only",
            "reduce-only SELL 6 would not only reduce the position 5".to_string()
        )
    );
    assert_eq!(r.rejection(4).0, "order.reduce_only");
    assert_eq!(
        r.fill_rows(),
        vec![row(2, "5", "10.00", "0.00"), row(5, "5", "10.00", "0.00")]
    );
    assert!(r.summary.positions[0].is_flat());
    assert_eq!(r.summary.metrics.rejected_orders, 3);
}

#[test]
fn reduce_only_orders_are_clamped_at_fill_time_when_the_position_shrank() {
    let bars = daily(&[
        ("100", "101", "99", "100"),
        ("100", "101", "99", "100"),
        ("100", "101", "99", "100"),
        ("100", "121", "99", "120"),
        ("120", "131", "119", "130"),
    ]);
    let script = Script::new()
        .submit(0, market(BUY, 10))
        // long 10 here: both pass the submit check
        .submit(1, limit(SELL, 10, "120").reduce_only())
        .submit(1, market(SELL, 6))
        // long 4 after bar 2's open; the limit of order 2 is reached on bar 3
        .submit(2, limit(SELL, 4, "130").reduce_only())
        .submit(2, market(SELL, 0).reduce_only());
    let r = run(frictionless(FillModel::NextOpen), &bars, script);
    assert_eq!(
        r.fill_rows(),
        vec![
            row(1, "10", "100.00", "0.00"),
            row(3, "6", "100.00", "0.00"),
            row(2, "4", "120.00", "0.00"),
        ]
    );
    assert_eq!(
        r.lifecycle(2),
        [
            "order_submitted",
            "order_accepted",
            "order_filled",
            "order_cancelled"
        ]
    );
    assert_eq!(r.cancellation(2), (at(3, 0), "reduce_only"));
    // Order 4 found the position already flat when its limit traded: cancelled, never filled.
    assert_eq!(r.cancellation(4), (at(4, 0), "reduce_only"));
    assert_eq!(r.rejection(5).0, "order.invalid", "zero quantity");
    assert!(r.summary.positions[0].is_flat());
}

#[test]
fn fee_bps_applies_to_notional_rounded_to_cents() {
    let bars = daily(&[
        ("1234.56", "1234.56", "1234.56", "1234.56"),
        ("1300", "1300", "1300", "1300"),
    ]);
    let mut exec = execution(FillModel::BarClose);
    exec.fee_bps = Some(dec("7.5"));
    let config = resolved(exec, RiskConfig::default(), AccountKind::Margin, "100000");
    let script = Script::new()
        .submit(0, market(BUY, 1))
        .submit(1, market(SELL, 1));
    let r = run(config, &bars, script);
    // 1234.56 × 0.00075 = 0.92592 → 0.93; 1300 × 0.00075 = 0.975 → 0.98 (half away from 0)
    assert_eq!(
        r.fill_rows(),
        vec![
            row(1, "1", "1234.56", "0.93"),
            row(2, "1", "1300.00", "0.98")
        ]
    );
    assert_eq!(r.summary.metrics.fees.to_string(), "1.91");
    assert_eq!(r.summary.cash.to_string(), "100063.53");
    assert_eq!(r.summary.equity, r.summary.cash);
}

#[test]
fn instrument_fees_charge_makers_and_takers_and_override_fee_bps() {
    let mut inst = instrument(0, "TEST");
    inst.maker_fee = Bps::parse("2").unwrap();
    inst.taker_fee = Bps::parse("5").unwrap();
    let mut exec = execution(FillModel::NextOpen);
    exec.fee_bps = Some(dec("100"));
    let config = resolved(exec, RiskConfig::default(), AccountKind::Margin, "100000");
    let bars = daily(&[
        ("100", "101", "99", "100"),
        ("100", "101", "99", "100"),
        ("99.50", "100", "98", "98.50"),
    ]);
    let script = Script::new()
        .submit(0, limit(BUY, 10, "99.50"))
        .submit(0, market(BUY, 10))
        .submit(1, stop(SELL, 10, "99"));
    let r = run_on(config, inst, &bars, script);
    // 995 × 2 bp = 0.199 → 0.20 (maker); 1000 × 5 bp = 0.50; 990 × 5 bp = 0.495 → 0.50
    assert_eq!(
        r.fill_rows(),
        vec![
            row(1, "10", "99.50", "0.20"),
            row(2, "10", "100.00", "0.50"),
            row(3, "10", "99.00", "0.50"),
        ]
    );
    let liquidity: Vec<_> = r.fills().iter().map(|f| f.liquidity).collect();
    assert_eq!(
        liquidity,
        [Liquidity::Maker, Liquidity::Taker, Liquidity::Taker]
    );
    assert_eq!(r.summary.metrics.fees.to_string(), "1.20");
}

#[test]
fn slippage_is_adverse_for_market_and_stop_fills_and_absent_for_limits() {
    let bars = daily(&[("100", "100", "100", "100"), ("100", "101.50", "99", "100")]);
    let script = Script::new()
        .submit(0, market(BUY, 1))
        .submit(0, market(SELL, 1))
        .submit(0, limit(BUY, 1, "99.50"))
        .submit(0, stop(BUY, 1, "101"))
        .submit(0, stop(SELL, 1, "99.20"));

    let mut exec = execution(FillModel::NextOpen);
    exec.slippage_bps = Some(dec("10"));
    let config = resolved(exec, RiskConfig::default(), AccountKind::Margin, "100000");
    let r = run(config, &bars, script.clone());
    // 10 bp of 100 = 0.10; of 101 = 0.101 → 0.10; of 99.20 = 0.0992 → 0.10
    let prices: Vec<_> = r.fill_rows().into_iter().map(|f| (f.0, f.2)).collect();
    let expect = |v: &[(u64, &str)]| -> Vec<(u64, String)> {
        v.iter().map(|&(i, p)| (i, p.to_string())).collect()
    };
    assert_eq!(
        prices,
        expect(&[
            (1, "100.10"),
            (2, "99.90"),
            (3, "99.50"),
            (4, "101.10"),
            (5, "99.10")
        ])
    );

    let mut exec = execution(FillModel::NextOpen);
    exec.slippage_ticks = Some(3);
    let config = resolved(exec, RiskConfig::default(), AccountKind::Margin, "100000");
    let r = run(config, &bars, script);
    let prices: Vec<_> = r.fill_rows().into_iter().map(|f| (f.0, f.2)).collect();
    assert_eq!(
        prices,
        expect(&[
            (1, "100.03"),
            (2, "99.97"),
            (3, "99.50"),
            (4, "101.03"),
            (5, "99.17")
        ])
    );
}

#[test]
fn a_reversal_closes_one_trade_and_opens_the_next_at_the_same_fill() {
    let bars = daily(&[
        ("100", "100", "100", "100"),
        ("110", "110", "110", "110"),
        ("105", "105", "105", "105"),
    ]);
    let mut exec = execution(FillModel::BarClose);
    exec.fee_bps = Some(dec("10"));
    let config = resolved(exec, RiskConfig::default(), AccountKind::Margin, "100000");
    let script = Script::new()
        .submit(0, market(BUY, 10))
        .submit(1, market(SELL, 15));
    let r = run(config, &bars, script);
    assert_eq!(r.sink.trades.len(), 2);
    let (closed, open) = (&r.sink.trades[0], &r.sink.trades[1]);
    assert_eq!(
        (closed.id, closed.side, closed.quantity.to_string()),
        (1, BUY, "10".to_string())
    );
    assert_eq!(
        (closed.entry_ts, closed.exit_ts),
        (at(0, 0), Some(at(1, 0)))
    );
    assert_eq!(closed.entry_price.to_string(), "100.00");
    assert_eq!(
        closed.exit_price.map(|p| p.to_string()).as_deref(),
        Some("110.00")
    );
    assert_eq!(closed.gross_pnl.to_string(), "100.00");
    // entry fee 1.00 + 10/15 of the reversal's 1.65
    assert_eq!(closed.fees.to_string(), "2.10");
    assert_eq!(closed.net_pnl.to_string(), "97.90");
    assert_eq!(closed.bars, 1);

    assert!(open.is_open());
    assert_eq!(
        (open.id, open.side, open.quantity.to_string()),
        (2, SELL, "5".to_string())
    );
    assert_eq!((open.entry_ts, open.exit_ts), (at(1, 0), None));
    assert_eq!(open.entry_price.to_string(), "110.00");
    assert_eq!(open.exit_price, None);
    // short 5 from 110, marked at 105
    assert_eq!(open.gross_pnl.to_string(), "25.00");
    assert_eq!(open.fees.to_string(), "0.55");
    assert_eq!(open.net_pnl.to_string(), "24.45");
    assert_eq!(
        r.summary.metrics.trades, 1,
        "statistics count closed trades"
    );
}

#[test]
fn scaling_in_gives_a_volume_weighted_entry_price() {
    let bars = daily(&[
        ("100", "100", "100", "100"),
        ("104", "104", "104", "104"),
        ("110", "110", "110", "110"),
    ]);
    let script = Script::new()
        .submit(0, market(BUY, 1))
        .submit(1, market(BUY, 3))
        .submit(2, market(SELL, 4));
    let r = run(frictionless(FillModel::BarClose), &bars, script);
    assert_eq!(r.sink.trades.len(), 1);
    let t = &r.sink.trades[0];
    assert_eq!(t.quantity.to_string(), "4");
    assert_eq!(t.entry_price.to_string(), "103.00", "(100 + 3 × 104) / 4");
    assert_eq!(
        t.exit_price.map(|p| p.to_string()).as_deref(),
        Some("110.00")
    );
    assert_eq!(t.gross_pnl.to_string(), "28.00");
    assert_eq!(t.bars, 2);
}

#[test]
fn two_instruments_share_one_equity_point_per_timestamp() {
    let instruments = vec![instrument(0, "AAA"), instrument(1, "BBB")];
    let strategies: Vec<Box<dyn Strategy>> = vec![
        Box::new(Script::new().submit(0, market(BUY, 10))),
        Box::new(Script::new().submit(0, market(SELL, 20))),
    ];
    let bars = vec![
        bar(0, at(0, 0), "100", "100", "100", "100"),
        bar(1, at(0, 0), "50", "50", "50", "50"),
        bar(0, at(1, 0), "110", "110", "110", "110"),
        bar(1, at(1, 0), "40", "40", "40", "40"),
        // BBB has no bar here: it stays marked at 40
        bar(0, at(2, 0), "120", "120", "120", "120"),
    ];
    let r = try_run(
        frictionless(FillModel::BarClose),
        instruments,
        strategies,
        &bars,
    )
    .unwrap();
    let points: Vec<_> = r
        .sink
        .equity
        .iter()
        .map(|p| {
            (
                p.ts,
                p.cash.to_string(),
                p.equity.to_string(),
                p.gross_exposure.to_string(),
            )
        })
        .collect();
    let s = |x: &str| x.to_string();
    assert_eq!(
        points,
        vec![
            (at(0, 0), s("100000.00"), s("100000.00"), s("2000.00")),
            (at(1, 0), s("100000.00"), s("100300.00"), s("1900.00")),
            (at(2, 0), s("100000.00"), s("100400.00"), s("2000.00")),
        ]
    );
    assert_eq!(r.summary.equity.to_string(), "100400.00");
    assert_eq!(r.summary.metrics.bars, 5);
}

#[test]
fn bars_out_of_order_stop_the_run() {
    let bars = vec![
        bar(0, at(1, 0), "10", "10", "10", "10"),
        bar(0, at(1, 0), "10", "10", "10", "10"),
        bar(0, at(0, 0), "10", "10", "10", "10"),
    ];
    let err = try_run(
        frictionless(FillModel::NextOpen),
        vec![instrument(0, "TEST")],
        vec![Box::new(Script::new())],
        &bars,
    )
    .err()
    .unwrap();
    assert!(
        matches!(err, EngineError::OutOfOrder { previous, got } if previous == at(1, 0) && got == at(0, 0)),
        "{err}"
    );
}

#[test]
fn configuration_errors_name_the_problem() {
    let mut eur = instrument(0, "SAP");
    eur.currency = Currency::from_code("EUR").unwrap();
    let err = try_run(
        frictionless(FillModel::NextOpen),
        vec![eur],
        vec![Box::new(Script::new())],
        &[],
    )
    .err()
    .unwrap();
    assert!(
        matches!(&err, EngineError::Config(m) if m == "instrument SAP is quoted in EUR but the account is in USD"),
        "{err}"
    );

    let err = try_run(
        frictionless(FillModel::NextOpen),
        vec![instrument(0, "TEST")],
        vec![],
        &[],
    )
    .err()
    .unwrap();
    assert!(matches!(err, EngineError::Config(_)), "{err}");

    let err = try_run(
        frictionless(FillModel::NextOpen),
        vec![instrument(0, "TEST")],
        vec![Box::new(Script::new())],
        &[bar(3, UnixNanos(0), "1", "1", "1", "1")],
    )
    .err()
    .unwrap();
    assert!(matches!(err, EngineError::UnknownInstrument(3)), "{err}");
}

#[test]
fn a_strategy_cancels_a_resting_order_before_it_can_fill() {
    let bars = daily(&[FLAT, FLAT, ("9", "10", "8", "9")]);
    let script = Script::new()
        .submit(0, limit(BUY, 1, "9"))
        .submit(0, limit(BUY, 1, "8.50"))
        .cancel(1, 1);
    let r = run(frictionless(FillModel::NextOpen), &bars, script);
    assert_eq!(r.cancellation(1), (at(1, 0), "cancelled"));
    assert_eq!(r.fill_rows(), vec![row(2, "1", "8.50", "0.00")]);
}

/// Buys on its first bar (checking the id it was told in advance), fails on its third.
struct FailsOnThirdBar {
    seen: usize,
    told: Vec<(OrderId, OrderId)>,
}

impl Strategy for FailsOnThirdBar {
    fn on_bar(&mut self, ctx: &mut tradeloom_engine::StrategyContext<'_>, _bar: &Bar) {
        self.seen += 1;
        match self.seen {
            1 => {
                let told = ctx.next_order_id();
                let got = ctx.buy(Quantity::from_int(1, 0));
                self.told.push((told, got));
                let told = ctx.next_order_id();
                let got = ctx.sell(Quantity::from_int(1, 0));
                self.told.push((told, got));
            }
            3 => {
                ctx.buy(Quantity::from_int(5, 0));
                ctx.fail("the user's strategy raised ValueError: bad");
                ctx.buy(Quantity::from_int(7, 0));
            }
            _ => assert!(self.seen < 3, "called after failing"),
        }
    }
}

#[test]
fn a_strategy_that_fails_stops_the_run_with_its_reason_after_what_it_queued_before() {
    let bars = daily(&[
        ("10", "10", "10", "10"),
        ("11", "11", "11", "11"),
        ("12", "12", "12", "12"),
        ("13", "13", "13", "13"),
    ]);
    let mut engine = tradeloom_engine::Engine::new(
        frictionless(FillModel::BarClose),
        vec![instrument(0, "TEST")],
        vec![Box::new(FailsOnThirdBar {
            seen: 0,
            told: Vec::new(),
        })],
    )
    .unwrap();
    let mut sink = tradeloom_engine::sink::VecSink::default();
    engine.on_bar(&bars[0], &mut sink).unwrap();
    engine.on_bar(&bars[1], &mut sink).unwrap();
    let err = engine.on_bar(&bars[2], &mut sink).unwrap_err();
    assert!(
        matches!(&err, EngineError::Strategy(r) if r == "the user's strategy raised ValueError: bad"),
        "{err:?}"
    );
    // Orders 1 and 2 on the first bar; the buy of 5 queued before `fail` was applied (order 3),
    // the buy of 7 after it was not.
    let quantities: Vec<String> = sink.fills.iter().map(|f| f.quantity.to_string()).collect();
    assert_eq!(quantities, ["1", "1", "5"]);
}

#[test]
fn next_order_id_is_the_id_the_next_queued_order_carries() {
    let mut strategy = FailsOnThirdBar {
        seen: 0,
        told: Vec::new(),
    };
    let instruments = [instrument(0, "TEST")];
    let positions = [tradeloom_core::Position::flat(
        InstrumentId(0),
        Currency::USD,
        2,
        0,
    )];
    let account = tradeloom_core::Account::new(tradeloom_core::AccountKind::Margin, usd("1000"));
    let mut queued = tradeloom_engine::QueuedOrders::default();
    let mut ctx = tradeloom_engine::StrategyContext::detached(
        at(0, 0),
        InstrumentId(0),
        &instruments,
        &positions,
        &[None],
        &account,
        &mut queued,
    );
    let bar = daily(&[("10", "10", "10", "10")])[0];
    strategy.on_bar(&mut ctx, &bar);
    assert_eq!(
        strategy.told,
        [(OrderId(1), OrderId(1)), (OrderId(2), OrderId(2))]
    );
}
