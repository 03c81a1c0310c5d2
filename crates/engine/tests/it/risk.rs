//! Pre-trade risk limits, cash-account rules and the drawdown kill switch: each rejection has
//! its stable code and a reason that names the values.

use tradeloom_core::{AccountKind, Event, KillReason, OrderSide, Quantity};
use tradeloom_engine::{FillModel, OrderRequest, RiskConfig, Strategy};

use crate::fixture::{
    Script, at, bar, daily, dec, event_name, execution, instrument, px, qty, resolved, run, try_run,
};

fn market(side: OrderSide, n: u32) -> OrderRequest {
    OrderRequest::market(side, qty(n))
}

const HUNDRED: (&str, &str, &str, &str) = ("100", "100", "100", "100");

fn with_risk(risk: RiskConfig) -> tradeloom_engine::EngineConfig {
    resolved(
        execution(FillModel::BarClose),
        risk,
        AccountKind::Margin,
        "100000",
    )
}

#[test]
fn max_position_rejects_orders_that_grow_the_position_beyond_it() {
    let config = with_risk(RiskConfig {
        max_position: Some(dec("5")),
        ..RiskConfig::default()
    });
    let script = Script::new()
        .submit(0, market(OrderSide::Buy, 6))
        .submit(0, market(OrderSide::Buy, 5))
        .submit(1, market(OrderSide::Buy, 1))
        // long 5 → short 5: the position does not grow beyond the limit
        .submit(1, market(OrderSide::Sell, 10));
    let r = run(config, &daily(&[HUNDRED, HUNDRED]), script);
    assert_eq!(
        r.rejection(1),
        (
            "risk.max_position",
            "position after the order would be 6 TEST, above max_position 5".to_string()
        )
    );
    assert_eq!(r.rejection(3).0, "risk.max_position");
    let filled: Vec<_> = r.fills().iter().map(|f| f.order_id.0).collect();
    assert_eq!(filled, [2, 4]);
    assert_eq!(r.summary.positions[0].signed_quantity_string(), "-5");
}

#[test]
fn max_order_notional_rejects_large_orders_at_their_price_or_the_last_close() {
    let config = with_risk(RiskConfig {
        max_order_notional: Some(dec("1000")),
        ..RiskConfig::default()
    });
    let script = Script::new()
        .submit(0, market(OrderSide::Buy, 11))
        .submit(
            0,
            OrderRequest::limit(OrderSide::Buy, qty(10), px("100.01")),
        )
        .submit(0, market(OrderSide::Buy, 10));
    let r = run(config, &daily(&[HUNDRED]), script);
    assert_eq!(
        r.rejection(1),
        (
            "risk.max_order_notional",
            "order notional 1100.00 exceeds max_order_notional 1000.00".to_string()
        )
    );
    assert_eq!(
        r.rejection(2).1,
        "order notional 1000.10 exceeds max_order_notional 1000.00"
    );
    assert_eq!(r.fills().len(), 1);
    assert_eq!(r.fills()[0].order_id.0, 3);
}

#[test]
fn max_gross_exposure_sums_every_instrument() {
    let config = with_risk(RiskConfig {
        max_gross_exposure: Some(dec("2000")),
        ..RiskConfig::default()
    });
    let strategies: Vec<Box<dyn Strategy>> = vec![
        Box::new(
            Script::new()
                .submit(1, market(OrderSide::Buy, 16))
                .submit(1, market(OrderSide::Buy, 15)),
        ),
        // short 10 × 50 = 500 of exposure
        Box::new(Script::new().submit(0, market(OrderSide::Sell, 10))),
    ];
    let bars = vec![
        bar(0, at(0, 0), "100", "100", "100", "100"),
        bar(1, at(0, 0), "50", "50", "50", "50"),
        bar(0, at(1, 0), "100", "100", "100", "100"),
    ];
    let r = try_run(
        config,
        vec![instrument(0, "AAA"), instrument(1, "BBB")],
        strategies,
        &bars,
    )
    .unwrap();
    // Order 1 is BBB's sell; AAA's 16 × 100 = 1600 would pass alone.
    assert_eq!(
        r.rejection(2),
        (
            "risk.max_gross_exposure",
            "gross exposure after the order would be 2100.00, above max_gross_exposure 2000.00"
                .to_string()
        )
    );
    let filled: Vec<_> = r.fills().iter().map(|f| f.order_id.0).collect();
    assert_eq!(filled, [1, 3], "exactly at the limit is allowed");
    assert_eq!(
        r.sink.equity.last().unwrap().gross_exposure.to_string(),
        "2000.00"
    );
}

#[test]
fn cash_accounts_cannot_short_or_spend_more_than_their_cash() {
    let mut exec = execution(FillModel::BarClose);
    exec.fee_bps = Some(dec("10"));
    let config = resolved(exec, RiskConfig::default(), AccountKind::Cash, "1000");
    let script = Script::new()
        .submit(0, market(OrderSide::Sell, 1))
        .submit(0, market(OrderSide::Buy, 10))
        .submit(0, market(OrderSide::Buy, 9))
        .submit(1, market(OrderSide::Sell, 10))
        .submit(1, market(OrderSide::Sell, 9));
    let r = run(config, &daily(&[HUNDRED, HUNDRED]), script);
    assert_eq!(
        r.rejection(1),
        (
            "account.no_shorting",
            "sell 1 would open a short position; a cash account cannot short".to_string()
        )
    );
    assert_eq!(
        r.rejection(2),
        (
            "account.insufficient_cash",
            "buy needs 1001.00 (notional 1000.00 + fee 1.00) but cash is 1000.00".to_string()
        )
    );
    assert_eq!(r.rejection(4).0, "account.no_shorting");
    let filled: Vec<_> = r.fills().iter().map(|f| f.order_id.0).collect();
    assert_eq!(filled, [3, 5]);
    // 1000 − 900 − 0.90 + 900 − 0.90
    assert_eq!(r.summary.cash.to_string(), "998.20");
    assert_eq!(r.summary.metrics.rejected_orders, 3);
}

#[test]
fn a_drawdown_breach_engages_the_kill_switch_for_the_rest_of_the_run() {
    let config = resolved(
        execution(FillModel::BarClose),
        RiskConfig {
            max_drawdown_pct: Some(dec("10")),
            ..RiskConfig::default()
        },
        AccountKind::Margin,
        "1000",
    );
    let bars = daily(&[
        HUNDRED,
        ("95", "95", "95", "95"),
        ("85", "85", "85", "85"),
        ("85", "85", "85", "85"),
        ("90", "90", "90", "90"),
    ]);
    let script = Script::new()
        .submit(0, market(OrderSide::Buy, 10))
        .submit(0, OrderRequest::limit(OrderSide::Buy, qty(1), px("50")))
        .submit(3, market(OrderSide::Buy, 1))
        .submit_on_stop(market(OrderSide::Sell, 10));
    let r = run(config, &bars, script);

    // 5 % on day 1 is within the limit; 15 % at the close of day 2 is not.
    let breach = r
        .sink
        .events
        .iter()
        .position(|e| matches!(e, Event::RiskLimitBreached { .. }))
        .unwrap();
    let names: Vec<_> = r.sink.events[breach..breach + 3]
        .iter()
        .map(event_name)
        .collect();
    assert_eq!(
        names,
        [
            "risk_limit_breached",
            "kill_switch_engaged",
            "order_cancelled"
        ]
    );
    match &r.sink.events[breach] {
        Event::RiskLimitBreached { ts, limit, detail } => {
            assert_eq!((*ts, *limit), (at(2, 0), "max_drawdown_pct"));
            assert_eq!(
                detail,
                "equity 850.00 is 15.00% below its peak 1000.00, above max_drawdown_pct 10"
            );
        }
        e => panic!("{e:?}"),
    }
    assert!(matches!(
        r.sink.events[breach + 1],
        Event::KillSwitchEngaged {
            reason: KillReason::MaxDrawdown,
            ..
        }
    ));
    assert_eq!(r.cancellation(2), (at(2, 0), "kill_switch"));
    assert_eq!(r.rejection(3).0, "risk.kill_switch");
    assert_eq!(r.rejection(4).0, "risk.kill_switch", "orders on stop too");
    assert_eq!(r.counts()["risk_limit_breached"], 1, "engaged once");
    assert!(r.summary.halted);
    assert_eq!(r.fills().len(), 1);
    // The kill switch stops trading; it does not liquidate.
    assert_eq!(r.summary.positions[0].quantity(), Quantity::from_int(10, 0));
}

/// A kill switch engaged for the polls in `engaged` (poll 0 is the first bar, then one per
/// bar, then one at finish); records what the engine reports through it.
struct ScriptedGate {
    polls: usize,
    engaged: std::ops::Range<usize>,
    halts: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl tradeloom_engine::KillSwitchGate for ScriptedGate {
    fn engaged(&mut self) -> Option<&str> {
        let n = self.polls;
        self.polls += 1;
        self.engaged
            .contains(&n)
            .then_some("global kill switch engaged by ops: stop")
    }

    /// The answer of the last per-bar poll: this gate has no cache to bypass.
    fn engaged_now(&mut self) -> Option<&str> {
        self.engaged
            .contains(&self.polls.saturating_sub(1))
            .then_some("global kill switch engaged by ops: stop")
    }

    fn on_engine_halt(&mut self, detail: &str) {
        self.halts.lock().unwrap().push(detail.to_string());
    }
}

/// A gate whose per-bar answer is stale: never engaged from the cache, engaged from the
/// source of truth from bar `from` on, asking to flatten when `flatten`.
struct StaleGate {
    polls: usize,
    from: usize,
    flatten: bool,
    seen: bool,
}

impl tradeloom_engine::KillSwitchGate for StaleGate {
    fn engaged(&mut self) -> Option<&str> {
        self.polls += 1;
        // The cache catches up one bar late.
        self.seen = self.polls > self.from + 1;
        self.seen
            .then_some("global kill switch engaged by ops: stop")
    }

    fn engaged_now(&mut self) -> Option<&str> {
        self.seen = self.polls > self.from;
        self.seen
            .then_some("global kill switch engaged by ops: stop")
    }

    fn flatten(&self) -> bool {
        self.flatten && self.seen
    }
}

fn run_with_gate(
    config: tradeloom_engine::EngineConfig,
    bars: &[tradeloom_core::Bar],
    script: Script,
    gate: Box<dyn tradeloom_engine::KillSwitchGate>,
) -> crate::fixture::Run {
    let mut engine = tradeloom_engine::Engine::new(
        config,
        vec![instrument(0, "TEST")],
        vec![Box::new(script) as Box<dyn Strategy>],
    )
    .unwrap();
    engine.set_kill_switch_gate(gate);
    let mut sink = tradeloom_engine::sink::VecSink::default();
    for bar in bars {
        engine.on_bar(bar, &mut sink).unwrap();
    }
    let summary = engine.finish(&mut sink).unwrap();
    crate::fixture::Run { sink, summary }
}

#[test]
fn the_check_before_acceptance_does_not_trust_the_per_bar_cache() {
    let gate = StaleGate {
        polls: 0,
        from: 1,
        flatten: false,
        seen: false,
    };
    let script = Script::new()
        .submit(0, market(OrderSide::Buy, 1))
        .submit(1, market(OrderSide::Buy, 1));
    let bars = daily(&[HUNDRED, HUNDRED, HUNDRED]);
    let r = run_with_gate(
        with_risk(RiskConfig::default()),
        &bars,
        script,
        Box::new(gate),
    );
    assert_eq!(r.fills().len(), 1, "only the order before the engagement");
    assert_eq!(
        r.rejection(2),
        (
            "risk.kill_switch",
            "kill switch: global kill switch engaged by ops: stop".to_string()
        ),
        "refused although the per-bar answer still said released"
    );
    match r
        .sink
        .events
        .iter()
        .find(|e| matches!(e, Event::KillSwitchEngaged { .. }))
        .unwrap()
    {
        Event::KillSwitchEngaged { ts, reason, .. } => {
            assert_eq!((*ts, *reason), (at(1, 0), KillReason::Operator));
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn a_flatten_engagement_closes_every_position_with_liquidation_orders() {
    for fill_model in [FillModel::BarClose, FillModel::NextOpen] {
        let gate = StaleGate {
            polls: 0,
            from: 2,
            flatten: true,
            seen: false,
        };
        let config = resolved(
            execution(fill_model),
            RiskConfig::default(),
            AccountKind::Margin,
            "100000",
        );
        let script = Script::new()
            .submit(0, market(OrderSide::Buy, 10))
            .submit(1, market(OrderSide::Sell, 4))
            // Refused: the only orders accepted while engaged are the liquidation's.
            .submit(4, market(OrderSide::Buy, 3));
        let bars = daily(&[HUNDRED, HUNDRED, HUNDRED, HUNDRED, HUNDRED, HUNDRED]);
        let r = run_with_gate(config, &bars, script, Box::new(gate));
        assert_eq!(
            r.summary.positions[0].net_raw(),
            0,
            "{fill_model:?}: flat at the end"
        );
        let liquidations: Vec<_> = r
            .sink
            .events
            .iter()
            .filter_map(|e| match e {
                Event::KillSwitchLiquidation {
                    order_id,
                    quantity,
                    detail,
                    ..
                } => Some((order_id.0, quantity.to_string(), detail.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(liquidations.len(), 1, "{fill_model:?}: {liquidations:?}");
        let (id, quantity, detail) = &liquidations[0];
        assert_eq!(quantity, "6");
        assert_eq!(detail, "global kill switch engaged by ops: stop");
        let sold: Vec<_> = r
            .fills()
            .iter()
            .filter(|f| f.order_id.0 == *id)
            .map(|f| (f.side, f.quantity))
            .collect();
        assert_eq!(sold, [(OrderSide::Sell, Quantity::from_int(6, 0))]);
        assert_eq!(r.rejection(id + 1).0, "risk.kill_switch");
    }
}

fn run_gated(
    config: tradeloom_engine::EngineConfig,
    bars: &[tradeloom_core::Bar],
    script: Script,
    gate: ScriptedGate,
) -> crate::fixture::Run {
    let mut engine = tradeloom_engine::Engine::new(
        config,
        vec![instrument(0, "TEST")],
        vec![Box::new(script) as Box<dyn Strategy>],
    )
    .unwrap();
    engine.set_kill_switch_gate(Box::new(gate));
    let mut sink = tradeloom_engine::sink::VecSink::default();
    for bar in bars {
        engine.on_bar(bar, &mut sink).unwrap();
    }
    let summary = engine.finish(&mut sink).unwrap();
    crate::fixture::Run { sink, summary }
}

#[test]
fn an_operator_kill_switch_refuses_orders_from_the_next_event_and_release_resumes() {
    let halts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let gate = ScriptedGate {
        polls: 0,
        engaged: 1..3,
        halts: halts.clone(),
    };
    let script = Script::new()
        // Rests below the market: working when the switch engages.
        .submit(0, OrderRequest::limit(OrderSide::Buy, qty(1), px("50")))
        .submit(1, market(OrderSide::Buy, 1))
        .submit(2, market(OrderSide::Buy, 1))
        .submit(3, market(OrderSide::Buy, 1));
    let bars = daily(&[HUNDRED, HUNDRED, HUNDRED, HUNDRED]);
    let r = run_gated(with_risk(RiskConfig::default()), &bars, script, gate);

    let engaged = r
        .sink
        .events
        .iter()
        .position(|e| matches!(e, Event::KillSwitchEngaged { .. }))
        .unwrap();
    match &r.sink.events[engaged] {
        Event::KillSwitchEngaged { ts, reason, detail } => {
            assert_eq!((*ts, *reason), (at(1, 0), KillReason::Operator));
            assert_eq!(detail, "global kill switch engaged by ops: stop");
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(
        r.cancellation(1),
        (at(1, 0), "kill_switch"),
        "working order cancelled"
    );
    assert_eq!(
        r.rejection(2),
        (
            "risk.kill_switch",
            "kill switch: global kill switch engaged by ops: stop".to_string()
        )
    );
    assert_eq!(r.rejection(3).0, "risk.kill_switch");
    assert_eq!(r.counts()["kill_switch_engaged"], 1);
    assert_eq!(r.counts()["kill_switch_released"], 1);
    let filled: Vec<_> = r.fills().iter().map(|f| f.order_id.0).collect();
    assert_eq!(filled, [4], "only the order after the release fills");
    assert!(
        !r.summary.halted,
        "an operator halt is not the drawdown halt"
    );
    assert!(halts.lock().unwrap().is_empty());
}

#[test]
fn the_drawdown_limit_reports_its_halt_to_the_gate() {
    let halts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let gate = ScriptedGate {
        polls: 0,
        engaged: 0..0,
        halts: halts.clone(),
    };
    let config = with_risk(RiskConfig {
        max_drawdown_pct: Some(dec("10")),
        ..RiskConfig::default()
    });
    let bars = daily(&[HUNDRED, ("85", "85", "85", "85"), HUNDRED]);
    let script = Script::new()
        // 900 × 100 of 100 000: a 15 % fall of the price is a 13.5 % fall of equity.
        .submit(0, market(OrderSide::Buy, 900))
        .submit(2, market(OrderSide::Buy, 1));
    let r = run_gated(config, &bars, script, gate);
    assert!(r.summary.halted);
    let halts = halts.lock().unwrap();
    assert_eq!(halts.len(), 1, "{halts:?}");
    assert!(halts[0].contains("max_drawdown_pct 10"), "{}", halts[0]);
    assert_eq!(r.rejection(2).0, "risk.kill_switch");
}

/// A gate with an epoch counter: engaged while `engaged` is set; counts how often it is asked
/// per bar (`asks`) and before orders (`order_checks`).
struct EpochGate {
    counter: &'static std::sync::atomic::AtomicU64,
    engaged: std::sync::Arc<std::sync::atomic::AtomicBool>,
    asks: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    order_checks: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl tradeloom_engine::KillSwitchGate for EpochGate {
    fn engaged(&mut self) -> Option<&str> {
        self.asks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.engaged
            .load(std::sync::atomic::Ordering::SeqCst)
            .then_some("global kill switch engaged by ops: stop")
    }

    fn engaged_now(&mut self) -> Option<&str> {
        self.order_checks
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.engaged
            .load(std::sync::atomic::Ordering::SeqCst)
            .then_some("global kill switch engaged by ops: stop")
    }

    fn epoch(&self) -> Option<tradeloom_engine::GateEpoch> {
        Some(tradeloom_engine::GateEpoch {
            counter: self.counter,
            recheck: 4,
        })
    }
}

/// With an epoch the engine asks its gate once every `recheck` bars while the counter stays
/// put, still checks before every order, and sees an engagement announced by the counter on
/// the very next bar: a working order is cancelled there instead of filling.
#[test]
fn an_epoch_gate_is_asked_when_its_counter_moves_and_every_few_bars() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

    for announce in [true, false] {
        let counter: &'static AtomicU64 = Box::leak(Box::new(AtomicU64::new(7)));
        let engaged = Arc::new(AtomicBool::new(false));
        let asks = Arc::new(AtomicUsize::new(0));
        let order_checks = Arc::new(AtomicUsize::new(0));
        let mut engine = tradeloom_engine::Engine::new(
            resolved(
                execution(FillModel::NextOpen),
                RiskConfig::default(),
                AccountKind::Margin,
                "100000",
            ),
            vec![instrument(0, "TEST")],
            vec![Box::new(Script::new().submit(9, market(OrderSide::Buy, 1))) as Box<dyn Strategy>],
        )
        .unwrap();
        engine.set_kill_switch_gate(Box::new(EpochGate {
            counter,
            engaged: Arc::clone(&engaged),
            asks: Arc::clone(&asks),
            order_checks: Arc::clone(&order_checks),
        }));
        let bars = daily(&[HUNDRED; 16]);
        let mut sink = tradeloom_engine::sink::VecSink::default();
        for (k, bar) in bars.iter().enumerate() {
            if k == 10 {
                // Engaged after the order of bar 9 was accepted, before bar 10 fills it.
                engaged.store(true, Ordering::SeqCst);
                if announce {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            }
            engine.on_bar(bar, &mut sink).unwrap();
            if k == 8 {
                // Bars 0–8 (nine polls): asked on the first and then every fourth.
                assert_eq!(asks.load(Ordering::SeqCst), 3, "announce {announce}");
            }
        }
        engine.finish(&mut sink).unwrap();
        assert_eq!(
            order_checks.load(Ordering::SeqCst),
            1,
            "the order was checked"
        );
        let (ts, cancelled) = sink
            .events
            .iter()
            .find_map(|e| match e {
                Event::KillSwitchEngaged { ts, .. } => Some((
                    *ts,
                    sink.events.iter().any(|c| {
                        matches!(c, Event::OrderCancelled { ts: t, reason: "kill_switch", .. } if t == ts)
                    }),
                )),
                _ => None,
            })
            .expect("the engagement is journaled");
        if announce {
            assert_eq!(ts, at(10, 0), "seen on the bar after the counter moved");
            assert!(cancelled, "the working order is cancelled, not filled");
            assert!(sink.fills.is_empty());
        } else {
            // Unannounced (a state file edited by hand): seen at the next recheck (bar 12),
            // after the order filled at bar 10's open.
            assert_eq!(ts, at(12, 0));
            assert_eq!(sink.fills.len(), 1);
        }
    }
}
