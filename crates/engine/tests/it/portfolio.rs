//! Portfolio strategies: one instance sees every instrument's bars in event order and trades
//! any instrument; the context's portfolio view (positions by symbol, cash, equity, working
//! orders).

use std::sync::{Arc, Mutex};

use tradeloom_core::{
    Bar, Currency, Decimal, Instrument, InstrumentId, Price, Quantity, Symbol, UnixNanos,
};
use tradeloom_engine::sink::VecSink;
use tradeloom_engine::strategies::RotationParams;
use tradeloom_engine::{
    Engine, FillModel, OrderRequest, Strategy, StrategyConfig, StrategyContext,
};

use crate::fixture::*;

/// `AAA` at cents and whole units, `BBB` at 4 decimals and 3-decimal quantities.
fn two_instruments() -> Vec<Instrument> {
    let a = instrument(0, "AAA");
    let b = Instrument::new(
        InstrumentId(1),
        Symbol::new("BBB").unwrap(),
        "sim",
        4,
        3,
        Currency::USD,
    )
    .unwrap();
    vec![a, b]
}

fn flat(instrument: u32, day: i64, close: &str, precision: u8) -> Bar {
    Bar::flat(
        InstrumentId(instrument),
        at(day, 0),
        Price::parse(close, precision).unwrap(),
    )
}

/// What the portfolio strategy saw, per callback.
#[derive(Default)]
struct Seen {
    bars: Vec<(u32, UnixNanos)>,
    views: Vec<String>,
}

struct Observer {
    seen: Arc<Mutex<Seen>>,
}

impl Strategy for Observer {
    fn on_bar(&mut self, ctx: &mut StrategyContext<'_>, bar: &Bar) {
        let mut seen = self.seen.lock().unwrap();
        seen.bars.push((bar.instrument.0, bar.ts));
        assert_eq!(ctx.instrument().id, bar.instrument);
        let k = seen.bars.len();
        if k == 1 {
            // On AAA's first bar, trade BBB (no price yet: a limit) and AAA.
            let b = ctx.lookup("BBB").unwrap().id;
            ctx.submit(
                OrderRequest::buy(Quantity::parse("2.5", 3).unwrap())
                    .with_limit(Price::parse("10.0000", 4).unwrap())
                    .on(b),
            );
            ctx.buy(Quantity::from_int(3, 0));
        }
        let open: Vec<String> = ctx
            .open_orders()
            .map(|o| format!("{}:{}:{}", o.id, o.instrument.0, o.order_type.as_str()))
            .collect();
        seen.views.push(format!(
            "{} AAA={} BBB={} cash={} equity={} open=[{}]",
            ctx.instrument().symbol,
            ctx.position_of("AAA").unwrap().signed_quantity_string(),
            ctx.position_of(InstrumentId(1))
                .unwrap()
                .signed_quantity_string(),
            ctx.cash(),
            ctx.equity(),
            open.join(",")
        ));
    }
}

#[test]
fn one_strategy_sees_every_instrument_in_event_order_and_trades_any() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let strategy = Observer { seen: seen.clone() };
    let mut engine = Engine::portfolio(
        frictionless(FillModel::NextOpen),
        two_instruments(),
        Box::new(strategy),
    )
    .unwrap();
    let bars = [
        flat(0, 0, "100", 2),
        flat(1, 0, "10.0000", 4),
        flat(0, 1, "101", 2),
        flat(1, 1, "9.5000", 4),
    ];
    let mut sink = VecSink::default();
    for bar in &bars {
        engine.on_bar(bar, &mut sink).unwrap();
    }
    let summary = engine.finish(&mut sink).unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.bars,
        vec![(0, at(0, 0)), (1, at(0, 0)), (0, at(1, 0)), (1, at(1, 0))]
    );
    assert_eq!(
        seen.views,
        vec![
            // The orders queued on AAA's first bar are working once the callback returns.
            "AAA AAA=0 BBB=0.000 cash=100000.00 equity=100000.00 open=[]",
            // BBB's limit of the same timestamp rests until BBB's next bar.
            "BBB AAA=0 BBB=0.000 cash=100000.00 equity=100000.00 open=[O-000001:1:LIMIT,O-000002:0:MARKET]",
            // AAA's market order filled at its next open (101); equity marks AAA at 101.
            "AAA AAA=3 BBB=0.000 cash=99697.00 equity=100000.00 open=[O-000001:1:LIMIT]",
            // BBB's limit 10 fills at the open 9.5 (gap): 2.5 × 9.5 = 23.75.
            "BBB AAA=3 BBB=2.500 cash=99673.25 equity=100000.00 open=[]",
        ]
    );
    assert_eq!(summary.positions[1].signed_quantity_string(), "2.500");
    assert_eq!(summary.equity.to_string(), "100000.00");
}

#[test]
fn an_order_for_an_unknown_instrument_is_rejected_not_a_panic() {
    struct Stray;
    impl Strategy for Stray {
        fn on_bar(&mut self, ctx: &mut StrategyContext<'_>, _bar: &Bar) {
            ctx.submit(OrderRequest::buy(Quantity::from_int(1, 0)).on(InstrumentId(7)));
        }
    }
    let mut engine = Engine::portfolio(
        frictionless(FillModel::NextOpen),
        two_instruments(),
        Box::new(Stray),
    )
    .unwrap();
    let mut sink = VecSink::default();
    engine.on_bar(&flat(0, 0, "100", 2), &mut sink).unwrap();
    let rejected: Vec<_> = sink
        .events
        .iter()
        .filter_map(|e| match e {
            tradeloom_core::Event::OrderRejected { code, reason, .. } => {
                Some((*code, reason.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        rejected,
        vec![(
            "order.invalid",
            "order O-000001: instrument: the run has no instrument with id 7 (2 instruments, ids 0 to 1)"
                .to_string()
        )]
    );
}

#[test]
fn momentum_rotation_holds_the_leader_across_precisions() {
    let config = StrategyConfig::MomentumRotation(RotationParams {
        lookback: 1,
        rebalance_every: 1,
        notional: Decimal::parse("1000").unwrap(),
    });
    let instruments = two_instruments();
    let strategies = config.build(&instruments).unwrap();
    let mut engine = Engine::with_strategies(
        frictionless(FillModel::NextOpen),
        instruments.clone(),
        strategies,
    )
    .unwrap();
    let days = [
        ("100", "10.0000"),
        ("101", "10.5000"),
        ("111.1", "10.3950"),
        ("112", "10.3950"),
    ];
    let mut sink = VecSink::default();
    for (d, (a, b)) in days.iter().enumerate() {
        engine.on_bar(&flat(0, d as i64, a, 2), &mut sink).unwrap();
        engine.on_bar(&flat(1, d as i64, b, 4), &mut sink).unwrap();
    }
    let summary = engine.finish(&mut sink).unwrap();
    let fills: Vec<(u32, String, String, String)> = sink
        .fills
        .iter()
        .map(|f| {
            (
                f.instrument.0,
                f.side.as_str().to_string(),
                f.quantity.to_string(),
                f.price.to_string(),
            )
        })
        .collect();
    // Decisions are taken on AAA's bars, with BBB's close of the timestamp before. Day 1:
    // BBB's window is not full yet. Day 2: AAA +10 % (101 → 111.1) leads BBB +5 % (10 →
    // 10.5): buy 1000 / 111.1 → 9 whole units, filled at AAA's next open (112). Day 3: AAA
    // still leads (BBB −1 %): hold.
    assert_eq!(
        fills,
        vec![(0, "BUY".to_string(), "9".to_string(), "112.00".to_string())]
    );
    assert_eq!(summary.positions[0].signed_quantity_string(), "9");
    assert!(
        StrategyConfig::MomentumRotation(RotationParams {
            lookback: 0,
            rebalance_every: 1,
            notional: Decimal::parse("1000").unwrap(),
        })
        .build(&instruments)
        .is_err_and(|e| e.to_string() == "strategy.params.lookback: must be at least 1")
    );
}
