//! [`Fill`]: one execution of (part of) an order.

use serde::Serialize;

use crate::instrument::InstrumentId;
use crate::money::Money;
use crate::order::{OrderId, OrderSide};
use crate::price::Price;
use crate::quantity::Quantity;
use crate::time::UnixNanos;

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Liquidity {
    Maker,
    Taker,
}

impl Liquidity {
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
    pub order_id: OrderId,
    pub instrument: InstrumentId,
    pub side: OrderSide,
    pub quantity: Quantity,
    pub price: Price,
    pub fee: Money,
    pub liquidity: Liquidity,
    pub ts: UnixNanos,
}
