//! `signal`: rules over the fields of scans (paper runs fed by a scan directory).
//!
//! ```yaml
//! strategy:
//!   name: signal
//!   params:
//!     quantity: 10
//!     enter: {field: score, above: 0.8}   # flat, and score crosses above 0.8: buy 10
//!     exit: {field: score, below: 0.2}    # in a position, and score is below 0.2: close it
//!     side: long                          # or short: enter by selling
//! ```
//!
//! The entry rule fires on a **cross**: it holds on this scan row and did not on the
//! instrument's previous one (a first row, or a row where the field was missing, counts as not
//! holding). The exit rule fires whenever it holds while a position is open. Nothing is
//! submitted while an order of the instrument is still working. With plain bars (a backtest, a
//! replay) the strategy does nothing: it needs scan fields.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tradeloom_core::{Bar, Decimal, Instrument, Quantity};

use super::params::{StrategyError, order_quantity};
use crate::config::DecimalSchema;
use crate::scan::ScanFields;
use crate::strategy::{Strategy, StrategyContext};

/// One rule: `field` above or below a threshold (exactly one of the two).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SignalRule {
    /// The scan field (a numeric column of the scan file).
    pub field: String,
    /// Holds when the field is strictly above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
    /// Holds when the field is strictly below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<f64>,
}

/// Which way the entry goes.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SignalSide {
    /// Enter by buying (default).
    #[default]
    Long,
    /// Enter by selling.
    Short,
}

/// `signal`: enter on one rule, exit on another.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SignalParams {
    /// Units per position.
    #[schemars(with = "DecimalSchema")]
    pub quantity: Decimal,
    /// When to open a position (on a cross).
    pub enter: SignalRule,
    /// When to close it.
    pub exit: SignalRule,
    /// `long` (default) or `short`.
    #[serde(default)]
    pub side: SignalSide,
}

/// A checked rule.
#[derive(Clone, Debug, PartialEq)]
struct Rule {
    field: String,
    threshold: f64,
    above: bool,
}

impl Rule {
    fn new(
        rule: &SignalRule,
        field: &'static str,
        threshold: (&'static str, &'static str),
    ) -> Result<Self, StrategyError> {
        if rule.field.trim().is_empty() {
            return Err(StrategyError::new(field, "must name a scan field"));
        }
        let (value, above) = match (rule.above, rule.below) {
            (Some(v), None) => (v, true),
            (None, Some(v)) => (v, false),
            (Some(_), Some(_)) => {
                return Err(StrategyError::new(
                    threshold.0,
                    "give `above` or `below`, not both",
                ));
            }
            (None, None) => {
                return Err(StrategyError::new(
                    threshold.0,
                    format!(
                        "missing: the rule on `{}` needs `above` or `below`",
                        rule.field
                    ),
                ));
            }
        };
        if !value.is_finite() {
            let param = if above { threshold.0 } else { threshold.1 };
            return Err(StrategyError::new(
                param,
                format!("{value} must be a finite number"),
            ));
        }
        Ok(Self {
            field: rule.field.clone(),
            threshold: value,
            above,
        })
    }

    /// Whether the rule holds for these fields (`false` when the field is missing).
    fn holds(&self, fields: &ScanFields) -> bool {
        match fields.get(&self.field) {
            Some(v) if self.above => v > self.threshold,
            Some(v) => v < self.threshold,
            None => false,
        }
    }
}

/// The `signal` strategy.
pub struct Signal {
    quantity: Quantity,
    enter: Rule,
    exit: Rule,
    side: SignalSide,
    /// Whether the entry rule held on the previous scan row.
    entered_before: bool,
}

impl Signal {
    /// Checks the rules and the quantity; errors name the parameter (`enter.field`, …).
    pub fn new(params: &SignalParams, instrument: &Instrument) -> Result<Self, StrategyError> {
        Ok(Self {
            quantity: order_quantity(params.quantity, instrument)?,
            enter: Rule::new(&params.enter, "enter.field", ("enter.above", "enter.below"))?,
            exit: Rule::new(&params.exit, "exit.field", ("exit.above", "exit.below"))?,
            side: params.side,
            entered_before: false,
        })
    }
}

impl Strategy for Signal {
    fn on_bar(&mut self, _ctx: &mut StrategyContext<'_>, _bar: &Bar) {}

    fn on_scan(&mut self, ctx: &mut StrategyContext<'_>, _bar: &Bar, fields: &ScanFields) {
        let enter_now = self.enter.holds(fields);
        let crossed = enter_now && !self.entered_before;
        self.entered_before = enter_now;
        if ctx.open_orders_of(ctx.instrument().id).next().is_some() {
            return;
        }
        if ctx.net_raw() == 0 {
            if crossed {
                match self.side {
                    SignalSide::Long => ctx.buy(self.quantity),
                    SignalSide::Short => ctx.sell(self.quantity),
                };
            }
        } else if self.exit.holds(fields) {
            ctx.close_position();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::strategy::Command;
    use tradeloom_core::{Currency, InstrumentId, OrderSide, Position, Price, Symbol, UnixNanos};

    fn instrument() -> Instrument {
        Instrument::new(
            InstrumentId(0),
            Symbol::new("TEST").unwrap(),
            "sim",
            2,
            0,
            Currency::USD,
        )
        .unwrap()
    }

    fn params(yaml: serde_json::Value) -> SignalParams {
        serde_json::from_value(yaml).unwrap()
    }

    fn default_params() -> SignalParams {
        params(serde_json::json!({
            "quantity": 10,
            "enter": {"field": "score", "above": 0.8},
            "exit": {"field": "score", "below": 0.2}
        }))
    }

    /// Feeds `score` values (None: the field is missing) and returns, per scan, the sides of
    /// the orders submitted; each order fills at once (the position follows the orders).
    fn run(params: &SignalParams, scores: &[Option<f64>]) -> Vec<Vec<OrderSide>> {
        let inst = instrument();
        let mut strategy = Signal::new(params, &inst).unwrap();
        let mut position = Position::flat(inst.id, Currency::USD, 2, 0);
        let mut next_order_id = 0;
        let names: Arc<[String]> = vec!["score".to_string()].into();
        let p = Price::parse("100", 2).unwrap();
        let bar = Bar::flat(inst.id, UnixNanos(0), p);
        scores
            .iter()
            .enumerate()
            .map(|(i, score)| {
                let fields = ScanFields::new(names.clone(), vec![*score]);
                let mut commands = Vec::new();
                let mut ctx = StrategyContext::for_test(
                    UnixNanos(i as i64),
                    &inst,
                    &position,
                    &mut commands,
                    &mut next_order_id,
                );
                strategy.on_scan(&mut ctx, &bar, &fields);
                let mut sides = Vec::new();
                for c in &commands {
                    if let Command::Submit { request, .. } = c {
                        sides.push(request.side);
                        position
                            .apply(request.side, request.quantity, p, UnixNanos(i as i64))
                            .unwrap();
                    }
                }
                sides
            })
            .collect()
    }

    #[test]
    fn enters_on_a_cross_above_and_exits_below() {
        use OrderSide::{Buy, Sell};
        let got = run(
            &default_params(),
            &[
                Some(0.5),
                Some(0.9),  // crosses above 0.8: buy
                Some(0.95), // still above: no second entry
                Some(0.5),
                Some(0.1), // below 0.2: close
                Some(0.9), // crosses again: buy
                None,      // missing: nothing
                Some(0.1), // close
            ],
        );
        assert_eq!(
            got,
            vec![
                vec![],
                vec![Buy],
                vec![],
                vec![],
                vec![Sell],
                vec![Buy],
                vec![],
                vec![Sell]
            ]
        );
    }

    #[test]
    fn a_level_above_the_entry_does_not_reenter_after_an_exit() {
        // Entered at 0.9; exit on a different rule while the score stays above 0.8: no
        // re-entry until the score falls back and crosses again.
        let p = params(serde_json::json!({
            "quantity": 1,
            "enter": {"field": "score", "above": 0.8},
            "exit": {"field": "score", "above": 0.95}
        }));
        let got = run(
            &p,
            &[Some(0.9), Some(0.97), Some(0.9), Some(0.5), Some(0.9)],
        );
        use OrderSide::{Buy, Sell};
        assert_eq!(got, vec![vec![Buy], vec![Sell], vec![], vec![], vec![Buy]]);
    }

    #[test]
    fn short_side_enters_by_selling_and_first_row_counts_as_a_cross() {
        let mut p = default_params();
        p.side = SignalSide::Short;
        let got = run(&p, &[Some(0.9), Some(0.1)]);
        assert_eq!(got, vec![vec![OrderSide::Sell], vec![OrderSide::Buy]]);
    }

    #[test]
    fn plain_bars_do_nothing() {
        let inst = instrument();
        let mut strategy = Signal::new(&default_params(), &inst).unwrap();
        let position = Position::flat(inst.id, Currency::USD, 2, 0);
        let mut next_order_id = 0;
        let mut commands = Vec::new();
        let p = Price::parse("100", 2).unwrap();
        let bar = Bar::flat(inst.id, UnixNanos(0), p);
        let mut ctx = StrategyContext::for_test(
            UnixNanos(0),
            &inst,
            &position,
            &mut commands,
            &mut next_order_id,
        );
        strategy.on_bar(&mut ctx, &bar);
        assert!(commands.is_empty());
    }

    #[test]
    fn bad_params_name_the_field() {
        let inst = instrument();
        let cases = [
            (
                serde_json::json!({"quantity": 1, "enter": {"field": "", "above": 1.0}, "exit": {"field": "s", "below": 0.0}}),
                "strategy.params.enter.field: must name a scan field",
            ),
            (
                serde_json::json!({"quantity": 1, "enter": {"field": "s", "above": 1.0, "below": 0.0}, "exit": {"field": "s", "below": 0.0}}),
                "strategy.params.enter.above: give `above` or `below`, not both",
            ),
            (
                serde_json::json!({"quantity": 1, "enter": {"field": "s", "above": 1.0}, "exit": {"field": "s"}}),
                "strategy.params.exit.above: missing: the rule on `s` needs `above` or `below`",
            ),
            (
                serde_json::json!({"quantity": 0, "enter": {"field": "s", "above": 1.0}, "exit": {"field": "s", "below": 0.0}}),
                "strategy.params.quantity: must be positive",
            ),
        ];
        for (json, expected) in cases {
            let err = Signal::new(&params(json), &inst).err().unwrap();
            assert_eq!(err.to_string(), expected);
        }
        let err = serde_json::from_value::<SignalParams>(serde_json::json!({
            "quantity": 1, "enter": {"field": "s", "above": 1.0, "abve": 2}, "exit": {"field": "s", "below": 0.0}
        }))
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown field `abve`"), "{err}");
    }
}
