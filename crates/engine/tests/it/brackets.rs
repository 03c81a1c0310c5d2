//! Brackets (entry + take-profit + stop-loss, one-cancels-other) and trailing stops: activation,
//! intrabar conventions, OCO reduction, validation and the journal's links.

use tradeloom_core::{Bps, Event, OrderId, OrderSide, Trail};
use tradeloom_engine::{Bracket, FillModel, OrderRequest, StopLoss};

use crate::fixture::*;

fn long_bracket(limit: &str, tp: &str, sl: &str) -> Bracket {
    Bracket {
        entry: OrderRequest::buy(qty(10)).with_limit(px(limit)),
        take_profit: Some(px(tp)),
        stop_loss: Some(StopLoss::Stop(px(sl))),
    }
}

fn fill_summary(run: &Run) -> Vec<(u64, OrderSide, String, String)> {
    run.fills()
        .iter()
        .map(|f| {
            (
                f.order_id.0,
                f.side,
                f.quantity.to_string(),
                f.price.to_string(),
            )
        })
        .collect()
}

#[test]
fn legs_activate_on_the_entry_fill_and_the_take_profit_cancels_the_stop() {
    let bars = daily(&[
        ("100", "101", "99", "100"),
        ("100", "100", "97", "98"),   // entry limit 98 fills at 98
        ("98", "103", "98", "102"),   // legs rest: TP 105 not reached, SL 95 not reached
        ("102", "106", "101", "105"), // TP 105 fills
        ("105", "106", "90", "91"),   // would have hit the stop: already cancelled
    ]);
    let script = Script::new().bracket(0, long_bracket("98", "105", "95"));
    let run = crate::fixture::run(frictionless(FillModel::NextOpen), &bars, script);
    assert_eq!(
        fill_summary(&run),
        vec![
            (1, OrderSide::Buy, "10".into(), "98.00".into()),
            (2, OrderSide::Sell, "10".into(), "105.00".into()),
        ]
    );
    assert_eq!(run.cancellation(3), (at(3, 0), "oco"));
    assert!(run.summary.positions[0].is_flat());
    // The entry names its legs; each leg names its entry and its partner.
    let Event::OrderSubmitted { links, .. } = run.order_events(1)[0] else {
        panic!("{:?}", run.order_events(1));
    };
    let links = links.as_ref().unwrap();
    assert_eq!(
        (links.take_profit_id, links.stop_loss_id),
        (Some(OrderId(2)), Some(OrderId(3)))
    );
    assert_eq!(links.take_profit, Some(px("105")));
    for (leg, partner) in [(2, 3), (3, 2)] {
        let Event::OrderSubmitted {
            ts,
            links,
            reduce_only,
            ..
        } = run.order_events(leg)[0]
        else {
            panic!();
        };
        let links = links.as_ref().unwrap();
        assert_eq!(*ts, at(1, 0), "submitted when the entry filled");
        assert!(*reduce_only);
        assert_eq!(links.parent_id, Some(OrderId(1)));
        assert_eq!(links.oco_id, Some(OrderId(partner)));
    }
    let json = serde_json::to_string(run.order_events(2)[0]).unwrap();
    assert!(
        json.contains(r#""parent_id":"O-000001","oco_id":"O-000003""#),
        "{json}"
    );
}

#[test]
fn both_legs_inside_one_bar_the_stop_loss_fills() {
    let bars = daily(&[
        ("100", "101", "99", "100"),
        ("100", "100", "97", "98"), // entry fills at 98
        ("98", "106", "94", "100"), // TP 105 and SL 95 both inside: the stop-loss
    ]);
    let script = Script::new().bracket(0, long_bracket("98", "105", "95"));
    let run = crate::fixture::run(frictionless(FillModel::NextOpen), &bars, script);
    assert_eq!(
        fill_summary(&run)[1],
        (3, OrderSide::Sell, "10".into(), "95.00".into())
    );
    assert_eq!(run.cancellation(2).1, "oco");
}

#[test]
fn a_gap_through_a_leg_fills_it_at_the_open() {
    let bars = daily(&[
        ("100", "101", "99", "100"),
        ("100", "100", "97", "98"),
        ("107", "108", "94", "100"), // opens above TP 105 (and later trades below SL 95)
    ]);
    let script = Script::new().bracket(0, long_bracket("98", "105", "95"));
    let run = crate::fixture::run(frictionless(FillModel::NextOpen), &bars, script);
    assert_eq!(
        fill_summary(&run)[1],
        (2, OrderSide::Sell, "10".into(), "107.00".into()),
        "the take-profit limit gets the better open"
    );
    let bars = daily(&[
        ("100", "101", "99", "100"),
        ("100", "100", "97", "98"),
        ("93", "106", "92", "100"), // opens below SL 95: stop fills at the worse open
    ]);
    let script = Script::new().bracket(0, long_bracket("98", "105", "95"));
    let run = crate::fixture::run(frictionless(FillModel::NextOpen), &bars, script);
    assert_eq!(
        fill_summary(&run)[1],
        (3, OrderSide::Sell, "10".into(), "93.00".into())
    );
}

#[test]
fn a_market_entry_at_the_open_lets_its_legs_fill_in_the_same_bar() {
    let bars = daily(&[
        ("100", "101", "99", "100"),
        ("100", "101", "94", "96"), // entry at the open 100, then SL 95 in the same bar
    ]);
    let bracket = Bracket {
        entry: OrderRequest::buy(qty(10)),
        take_profit: Some(px("110")),
        stop_loss: Some(StopLoss::Stop(px("95"))),
    };
    let run = crate::fixture::run(
        frictionless(FillModel::NextOpen),
        &bars,
        Script::new().bracket(0, bracket),
    );
    assert_eq!(
        fill_summary(&run),
        vec![
            (1, OrderSide::Buy, "10".into(), "100.00".into()),
            (3, OrderSide::Sell, "10".into(), "95.00".into()),
        ]
    );
    // A limit entry filled inside a bar waits for the next bar (as backtesting.py does).
    let bars = daily(&[
        ("100", "101", "99", "100"),
        ("100", "101", "94", "96"), // limit 99 fills at 99; SL 95 traded too, but later
        ("96", "97", "95.5", "96"),
    ]);
    let run = crate::fixture::run(
        frictionless(FillModel::NextOpen),
        &bars,
        Script::new().bracket(0, long_bracket("99", "110", "95")),
    );
    assert_eq!(run.fills().len(), 1, "{:?}", fill_summary(&run));
}

#[test]
fn a_fill_of_one_leg_reduces_the_other() {
    let bars = daily(&[
        ("100", "101", "99", "100"),
        ("100", "100", "97", "98"), // entry fills 10 at 98; the script sells 4 at the close
        ("98", "99", "97", "98"),   // the market sell of 4 fills at the open
        ("98", "106", "97", "105"), // TP of 10 fills only the 6 held (reduce-only)
    ]);
    let script = Script::new()
        .bracket(0, long_bracket("98", "105", "95"))
        .submit(1, OrderRequest::sell(qty(4)));
    let run = crate::fixture::run(frictionless(FillModel::NextOpen), &bars, script);
    assert_eq!(
        fill_summary(&run),
        vec![
            (1, OrderSide::Buy, "10".into(), "98.00".into()),
            (4, OrderSide::Sell, "4".into(), "98.00".into()),
            (2, OrderSide::Sell, "6".into(), "105.00".into()),
        ]
    );
    let updated: Vec<_> = run
        .order_events(3)
        .into_iter()
        .filter_map(|e| match e {
            Event::OrderUpdated {
                quantity, reason, ..
            } => Some((quantity.to_string(), *reason)),
            _ => None,
        })
        .collect();
    assert_eq!(updated, vec![("4".to_string(), "oco")]);
    assert!(run.summary.positions[0].is_flat());
}

#[test]
fn an_entry_that_never_fills_takes_its_legs_with_it() {
    let bars = daily(&[
        ("100", "101", "99", "100"),
        ("100", "101", "99", "100"),
        ("100", "101", "90", "100"),
    ]);
    let script = Script::new()
        .bracket(0, long_bracket("95", "105", "92"))
        .cancel(1, 1);
    let run = crate::fixture::run(frictionless(FillModel::NextOpen), &bars, script);
    assert!(run.fills().is_empty());
    assert!(run.lifecycle(2).is_empty() && run.lifecycle(3).is_empty());
    assert_eq!(run.cancellation(1).1, "cancelled");
}

#[test]
fn bad_brackets_and_trails_are_rejected_with_the_field() {
    let bars = daily(&[("100", "101", "99", "100"), ("100", "101", "99", "100")]);
    let cases = [
        (
            long_bracket("98", "97", "95"),
            "bracket take_profit 97.00 must be above the entry's limit price 98.00 for a BUY entry",
        ),
        (
            long_bracket("98", "105", "99"),
            "bracket stop_loss 99.00 must be below the entry's limit price 98.00 for a BUY entry",
        ),
        (
            Bracket {
                entry: OrderRequest::sell(qty(1)),
                take_profit: Some(px("101")),
                stop_loss: None,
            },
            "bracket take_profit 101.00 must be below the entry's last price 100.00 for a SELL entry",
        ),
        (
            Bracket {
                entry: OrderRequest::buy(qty(1)),
                take_profit: Some(tradeloom_core::Price::parse("105.005", 3).unwrap()),
                stop_loss: None,
            },
            "bracket take_profit 105.005 is not a multiple of the tick size 0.01 of TEST",
        ),
        (
            Bracket {
                entry: OrderRequest::buy(qty(1)),
                take_profit: None,
                stop_loss: Some(StopLoss::Trailing(Trail::offset(px("0")))),
            },
            "bracket stop_loss: trail.offset must be positive, got 0.00",
        ),
    ];
    for (bracket, message) in cases {
        let run = crate::fixture::run(
            frictionless(FillModel::NextOpen),
            &bars,
            Script::new().bracket(0, bracket),
        );
        let (code, reason) = run.rejection(1);
        assert_eq!(code, "order.invalid");
        assert_eq!(reason, format!("order O-000001: {message}"));
        assert_eq!(
            run.sink.orders_closed, 1,
            "the rejected entry is in orders.csv"
        );
    }
    let trailing = OrderRequest::trailing_stop(OrderSide::Sell, qty(1), Trail::default());
    let run = crate::fixture::run(
        frictionless(FillModel::NextOpen),
        &bars,
        Script::new().submit(0, trailing),
    );
    assert_eq!(
        run.rejection(1).1,
        "order O-000001: a trailing stop needs trail.offset or trail.bps"
    );
}

#[test]
fn a_trailing_stop_follows_the_high_and_fills_when_hit() {
    let bars = daily(&[
        ("100", "101", "99", "100"), // buy 10 at the close; trailing sell 2.00 from 100 → 98
        ("100", "103", "99", "102"), // not hit (low 99 > 98); best 103 → trigger 101
        ("102", "104", "101.5", "103"), // not hit (101.5 > 101); best 104 → 102
        ("103", "103", "98", "99"),  // hits 102 on the way down
    ]);
    let trail = Trail::offset(px("2"));
    let script = Script::new().submit(0, OrderRequest::buy(qty(10))).submit(
        0,
        OrderRequest::trailing_stop(OrderSide::Sell, qty(10), trail).reduce_only(),
    );
    let run = crate::fixture::run(frictionless(FillModel::BarClose), &bars, script);
    assert_eq!(
        fill_summary(&run),
        vec![
            (1, OrderSide::Buy, "10".into(), "100.00".into()),
            (2, OrderSide::Sell, "10".into(), "102.00".into()),
        ]
    );
    let triggers: Vec<String> = run
        .order_events(2)
        .into_iter()
        .filter_map(|e| match e {
            Event::OrderSubmitted { trigger_price, .. } => trigger_price.map(|p| p.to_string()),
            Event::OrderUpdated { trigger_price, .. } => trigger_price.map(|p| p.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(triggers, ["98.00", "101.00", "102.00"]);
}

#[test]
fn a_percentage_trail_rounds_away_from_the_market_and_a_bracket_leg_trails_from_its_fill() {
    // 1.5 % of 98.00 is 1.47: the trigger 96.53 is on the 0.01 grid. A 1.25 % trail of 98
    // is 1.225: 96.775 rounds down to 96.77 (never nearer than asked).
    for (bps, first) in [("150", "96.53"), ("125", "96.77")] {
        let bars = daily(&[
            ("100", "101", "99", "100"),
            ("100", "100", "97", "98"), // entry limit 98 fills
            ("98", "98.5", "97", "98"),
        ]);
        let bracket = Bracket {
            entry: OrderRequest::buy(qty(10)).with_limit(px("98")),
            take_profit: None,
            stop_loss: Some(StopLoss::Trailing(Trail::bps(Bps::parse(bps).unwrap()))),
        };
        let run = crate::fixture::run(
            frictionless(FillModel::NextOpen),
            &bars,
            Script::new().bracket(0, bracket),
        );
        let Event::OrderSubmitted {
            trigger_price,
            order_type,
            ..
        } = run.order_events(2)[0]
        else {
            panic!();
        };
        assert_eq!(order_type.as_str(), "TRAILING_STOP");
        assert_eq!(trigger_price.unwrap().to_string(), first, "{bps} bps");
    }
}

#[test]
fn the_same_run_gives_the_same_journal() {
    let bars = daily(&[
        ("100", "101", "99", "100"),
        ("100", "100", "97", "98"),
        ("98", "103", "98", "102"),
        ("102", "106", "101", "105"),
    ]);
    let journal = || {
        let script = Script::new().bracket(0, long_bracket("98", "105", "95"));
        let run = crate::fixture::run(frictionless(FillModel::NextOpen), &bars, script);
        run.sink
            .events
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(journal(), journal());
}
