//! `buy_and_hold`: buy once, hold to the end.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tradeloom_core::{Bar, Decimal, Instrument, Quantity};

use super::params::{StrategyError, order_quantity};
use crate::config::DecimalSchema;
use crate::strategy::{Strategy, StrategyContext};

/// `buy_and_hold`: buy `quantity` on the first bar and hold to the end.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BuyAndHoldParams {
    /// Units to buy on the first bar.
    #[schemars(with = "DecimalSchema")]
    pub quantity: Decimal,
}

/// The `buy_and_hold` strategy.
pub struct BuyAndHold {
    quantity: Quantity,
    bought: bool,
}

impl BuyAndHold {
    /// Checks `quantity` against the instrument's lot size and precision.
    pub fn new(params: &BuyAndHoldParams, instrument: &Instrument) -> Result<Self, StrategyError> {
        Ok(Self {
            quantity: order_quantity(params.quantity, instrument)?,
            bought: false,
        })
    }
}

impl Strategy for BuyAndHold {
    fn on_bar(&mut self, ctx: &mut StrategyContext<'_>, _bar: &Bar) {
        if !self.bought {
            self.bought = true;
            ctx.buy(self.quantity);
        }
    }
}
