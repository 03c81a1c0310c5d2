//! [`Fill`]: one execution of (part of) an order.

use serde::Serialize;

use crate::instrument::InstrumentId;
use crate::money::Money;
use crate::order::{OrderId, OrderSide};
use crate::price::Price;
use crate::quantity::Quantity;
use crate::time::UnixNanos;

/// Whether a fill added liquidity (a resting limit order) or took it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Liquidity {
    /// The order rested at the venue and was filled by the market (maker fee).
    Maker,
    /// The order took liquidity on arrival or when triggered (taker fee).
    Taker,
}

impl Liquidity {
    /// `MAKER` or `TAKER`, as written in journals.
    pub const fn as_str(self) -> &'static str {
        match self {
            Liquidity::Maker => "MAKER",
            Liquidity::Taker => "TAKER",
        }
    }
}

/// An execution: `quantity` of `order_id` at `price`, with its fee.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub struct Fill {
    /// Run-unique, in execution order, from 1.
    pub id: u64,
    /// The order that filled.
    pub order_id: OrderId,
    /// The instrument.
    pub instrument: InstrumentId,
    /// Buy or sell.
    pub side: OrderSide,
    /// Quantity filled.
    pub quantity: Quantity,
    /// Fill price, slippage included.
    pub price: Price,
    /// Fee charged.
    pub fee: Money,
    /// Maker or taker.
    pub liquidity: Liquidity,
    /// When it filled.
    pub ts: UnixNanos,
}
