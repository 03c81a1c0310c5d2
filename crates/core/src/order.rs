//! [`Order`] and its lifecycle: every change of status is a method that checks the transition.
//!
//! ```text
//! Initialized ─submit→ Submitted ─accept→ Accepted ─fill→ PartiallyFilled ─fill→ Filled
//!                         └─reject→ Rejected   ├─trigger→ Triggered (stop kinds) ─fill→ …
//!                                              ├─cancel→ Cancelled   (also from Triggered / PartiallyFilled)
//!                                              └─expire→ Expired     (also from Triggered / PartiallyFilled)
//! ```

use std::fmt;

use serde::Serialize;

use crate::error::ArithmeticError;
use crate::instrument::{Bps, InstrumentId};
use crate::price::Price;
use crate::quantity::Quantity;
use crate::time::UnixNanos;

/// A run-unique order id, displayed as `O-000001`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct OrderId(pub u64);

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "O-{:06}", self.0)
    }
}

impl Serialize for OrderId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Which way an order trades.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderSide {
    /// Buys: increases the position.
    Buy,
    /// Sells: decreases the position.
    Sell,
}

impl OrderSide {
    /// +1 for buys, −1 for sells.
    pub const fn sign(self) -> i64 {
        match self {
            OrderSide::Buy => 1,
            OrderSide::Sell => -1,
        }
    }

    /// The other side.
    pub const fn opposite(self) -> Self {
        match self {
            OrderSide::Buy => OrderSide::Sell,
            OrderSide::Sell => OrderSide::Buy,
        }
    }

    /// `BUY` or `SELL`, as written in journals.
    pub const fn as_str(self) -> &'static str {
        match self {
            OrderSide::Buy => "BUY",
            OrderSide::Sell => "SELL",
        }
    }
}

/// How an order is priced.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderType {
    /// Fills at the fill model's price.
    Market,
    /// Fills at the limit price or better.
    Limit,
    /// Becomes a market order once the trigger price trades.
    Stop,
    /// Becomes a limit order once the trigger price trades.
    StopLimit,
    /// A stop whose trigger follows the best price by a [`Trail`]: at the end of every bar
    /// that did not trigger it, the trigger moves toward the market (never away); once the
    /// trigger trades it becomes a market order, like [`OrderType::Stop`].
    TrailingStop,
}

impl OrderType {
    /// `MARKET`, `LIMIT`, `STOP` or `STOP_LIMIT`, as written in journals.
    pub const fn as_str(self) -> &'static str {
        match self {
            OrderType::Market => "MARKET",
            OrderType::Limit => "LIMIT",
            OrderType::Stop => "STOP",
            OrderType::StopLimit => "STOP_LIMIT",
            OrderType::TrailingStop => "TRAILING_STOP",
        }
    }

    /// Whether the kind has a trigger price (stop kinds).
    pub const fn has_trigger(self) -> bool {
        matches!(
            self,
            OrderType::Stop | OrderType::StopLimit | OrderType::TrailingStop
        )
    }

    /// Whether the kind has a limit price.
    pub const fn has_limit(self) -> bool {
        matches!(self, OrderType::Limit | OrderType::StopLimit)
    }
}

/// How long an order stays working.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TimeInForce {
    /// Good till cancelled.
    Gtc,
    /// Immediate or cancel: whatever does not fill on the first bar it can fill on is cancelled.
    Ioc,
    /// Expires at the end of the UTC day it was submitted on.
    Day,
}

impl TimeInForce {
    /// `GTC`, `IOC` or `DAY`, as written in journals.
    pub const fn as_str(self) -> &'static str {
        match self {
            TimeInForce::Gtc => "GTC",
            TimeInForce::Ioc => "IOC",
            TimeInForce::Day => "DAY",
        }
    }
}

/// How far a trailing stop's trigger stays from the best price seen: a price `offset`, a
/// percentage `pct` (in basis points: 1 % = 100 bps), or both, in which case the wider of the
/// two distances applies. At least one is set and each is positive (checked when the order is
/// submitted).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize)]
pub struct Trail {
    /// Distance as a price amount.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<Price>,
    /// Distance as a fraction of the best price, in basis points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bps: Option<Bps>,
}

impl Trail {
    /// A trail by a price amount.
    pub const fn offset(offset: Price) -> Self {
        Self {
            offset: Some(offset),
            bps: None,
        }
    }

    /// A trail by a percentage given in basis points (`Bps::parse("150")` = 1.5 %).
    pub const fn bps(bps: Bps) -> Self {
        Self {
            offset: None,
            bps: Some(bps),
        }
    }

    /// Why the trail is unusable, naming the field; `None` when it is fine.
    pub fn problem(&self) -> Option<String> {
        match (self.offset, self.bps) {
            (None, None) => Some("a trailing stop needs trail.offset or trail.bps".to_string()),
            (Some(o), _) if !o.is_positive() => {
                Some(format!("trail.offset must be positive, got {o}"))
            }
            (_, Some(b)) if b.is_zero() => Some("trail.bps must be positive, got 0".to_string()),
            _ => None,
        }
    }

    /// The trigger a stop on `side` takes when the best price seen is `best`: below it for a
    /// sell (protecting a long), above it for a buy, by the wider of the two distances, rounded
    /// away from the market to a multiple of `tick` (so the distance is never smaller than
    /// asked). A sell trigger never goes below one tick.
    pub fn trigger(&self, side: OrderSide, best: Price, tick: Price) -> Price {
        let by_offset = self.offset.map_or(0, |o| o.raw());
        let by_bps = self.bps.map_or(0, |b| b.of_price(best).raw());
        let distance = by_offset.max(by_bps);
        let step = tick.raw().max(1);
        let raw = match side {
            OrderSide::Sell => {
                let raw = best.raw().saturating_sub(distance);
                (raw.div_euclid(step) * step).max(step)
            }
            OrderSide::Buy => {
                let raw = best.raw().saturating_add(distance);
                let down = raw.div_euclid(step) * step;
                if down == raw {
                    raw
                } else {
                    down.saturating_add(step)
                }
            }
        };
        Price::from_raw(raw, best.precision())
    }
}

/// How an order is tied to others: the legs of a bracket point to their entry (`parent_id`)
/// and to each other (`oco_id`: one cancels the other), a trailing stop carries its trail, and
/// a bracket's entry names the legs its fill will activate. All empty for a plain order.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize)]
pub struct OrderLinks {
    /// The bracket entry whose fill activated this leg.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<OrderId>,
    /// The other leg of the bracket: a fill of either reduces the other by the same quantity
    /// (cancelling it once nothing remains).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oco_id: Option<OrderId>,
    /// The trail of a trailing stop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trail: Option<Trail>,
    /// On a bracket's entry: the take-profit leg's id, activated by the entry's fill.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub take_profit_id: Option<OrderId>,
    /// On a bracket's entry: the take-profit leg's limit price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub take_profit: Option<Price>,
    /// On a bracket's entry: the stop-loss leg's id, activated by the entry's fill.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_loss_id: Option<OrderId>,
    /// On a bracket's entry: the stop-loss leg's trigger price (absent for a trailing leg,
    /// whose trigger follows from its trail and the entry's fill price).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_loss: Option<Price>,
    /// On a bracket's entry: the trail of a trailing stop-loss leg.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_loss_trail: Option<Trail>,
}

impl OrderLinks {
    /// No links and no trail: what a plain order has.
    pub const NONE: OrderLinks = OrderLinks {
        parent_id: None,
        oco_id: None,
        trail: None,
        take_profit_id: None,
        take_profit: None,
        stop_loss_id: None,
        stop_loss: None,
        stop_loss_trail: None,
    };

    /// Whether nothing ties the order to another and it has no trail.
    pub fn is_empty(&self) -> bool {
        *self == Self::NONE
    }

    /// Boxed, or `None` when empty (as [`Order::links`] stores them).
    pub fn boxed(self) -> Option<Box<OrderLinks>> {
        (!self.is_empty()).then(|| Box::new(self))
    }
}

/// Where an order is in its life cycle.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// Created, not yet submitted.
    Initialized,
    /// Submitted, not yet checked.
    Submitted,
    /// Passed the pre-trade checks; working at the venue.
    Accepted,
    /// A stop kind whose trigger price traded.
    Triggered,
    /// Part of the quantity has filled; the rest is working.
    PartiallyFilled,
    /// Completely filled (terminal).
    Filled,
    /// Refused (terminal).
    Rejected,
    /// Cancelled before it completely filled (terminal).
    Cancelled,
    /// Expired at the end of its day (terminal).
    Expired,
}

impl OrderStatus {
    /// Whether the order can no longer change.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            OrderStatus::Filled
                | OrderStatus::Rejected
                | OrderStatus::Cancelled
                | OrderStatus::Expired
        )
    }

    /// Working at the venue: can still fill, be cancelled or expire.
    pub const fn is_open(self) -> bool {
        matches!(
            self,
            OrderStatus::Accepted | OrderStatus::Triggered | OrderStatus::PartiallyFilled
        )
    }

    /// The status as written in journals (`PARTIALLY_FILLED`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Initialized => "INITIALIZED",
            OrderStatus::Submitted => "SUBMITTED",
            OrderStatus::Accepted => "ACCEPTED",
            OrderStatus::Triggered => "TRIGGERED",
            OrderStatus::PartiallyFilled => "PARTIALLY_FILLED",
            OrderStatus::Filled => "FILLED",
            OrderStatus::Rejected => "REJECTED",
            OrderStatus::Cancelled => "CANCELLED",
            OrderStatus::Expired => "EXPIRED",
        }
    }
}

/// An invalid order or an invalid change of its status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// The status does not allow the change.
    #[error("order {id}: cannot {action} an order that is {from}")]
    InvalidTransition {
        /// The order.
        id: OrderId,
        /// The change asked for (`cancel`, …).
        action: &'static str,
        /// The status (or kind) that does not allow it.
        from: &'static str,
    },
    /// A fill larger than what remains of the order.
    #[error("order {id}: fill of {fill} exceeds the remaining {remaining}")]
    Overfill {
        /// The order.
        id: OrderId,
        /// The fill's quantity.
        fill: String,
        /// The quantity still to fill.
        remaining: String,
    },
    /// The order's fields are inconsistent (message, order).
    #[error("order {id}: {0}", id = .1)]
    Invalid(String, OrderId),
    /// Arithmetic overflowed.
    #[error(transparent)]
    Arithmetic(#[from] ArithmeticError),
}

/// An order and how much of it has filled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Order {
    /// Run-unique id, from 1.
    pub id: OrderId,
    /// The instrument.
    pub instrument: InstrumentId,
    /// Buy or sell.
    pub side: OrderSide,
    /// Market, limit, stop or stop-limit.
    pub order_type: OrderType,
    /// Quantity ordered.
    pub quantity: Quantity,
    /// Limit price of `Limit` and `StopLimit` orders.
    pub price: Option<Price>,
    /// Trigger price of `Stop` and `StopLimit` orders.
    pub trigger_price: Option<Price>,
    /// How long it stays working.
    pub time_in_force: TimeInForce,
    /// Only ever reduces the position; never opens or flips it.
    pub reduce_only: bool,
    /// When it was created.
    pub created_ts: UnixNanos,
    /// Bracket links and the trail of a trailing stop; `None` for a plain order. Kept out of
    /// line (most orders have none, and orders move through the engine by value); read them
    /// with [`Order::links`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub links: Option<Box<OrderLinks>>,
    status: OrderStatus,
    filled: Quantity,
}

impl Order {
    /// A new order in `Initialized`; checks that prices are present exactly where the type needs
    /// them and that the quantity is positive.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: OrderId,
        instrument: InstrumentId,
        side: OrderSide,
        order_type: OrderType,
        quantity: Quantity,
        price: Option<Price>,
        trigger_price: Option<Price>,
        time_in_force: TimeInForce,
        reduce_only: bool,
        created_ts: UnixNanos,
    ) -> Result<Self, OrderError> {
        let invalid = |msg: &str| Err(OrderError::Invalid(msg.to_string(), id));
        if quantity.is_zero() {
            return invalid("quantity must be positive");
        }
        if order_type == OrderType::TrailingStop && price.is_some() {
            return invalid("a limit price is not allowed on TRAILING_STOP orders");
        }
        if order_type.has_limit() != price.is_some() {
            return invalid(if order_type.has_limit() {
                "a limit price is required"
            } else {
                "a limit price is only allowed on LIMIT and STOP_LIMIT orders"
            });
        }
        if order_type.has_trigger() != trigger_price.is_some() {
            return invalid(if order_type.has_trigger() {
                "a trigger price is required"
            } else {
                "a trigger price is only allowed on STOP, STOP_LIMIT and TRAILING_STOP orders"
            });
        }
        if price.is_some_and(|p| !p.is_positive())
            || trigger_price.is_some_and(|p| !p.is_positive())
        {
            return invalid("prices must be positive");
        }
        Ok(Self {
            id,
            instrument,
            side,
            order_type,
            quantity,
            price,
            trigger_price,
            time_in_force,
            reduce_only,
            created_ts,
            links: None,
            status: OrderStatus::Initialized,
            filled: Quantity::ZERO.with_precision(quantity.precision()),
        })
    }

    /// Its bracket links and trail ([`OrderLinks::NONE`] for a plain order).
    pub fn links(&self) -> &OrderLinks {
        self.links.as_deref().unwrap_or(&OrderLinks::NONE)
    }

    /// A market order, GTC, not reduce-only.
    pub fn market(
        id: OrderId,
        instrument: InstrumentId,
        side: OrderSide,
        quantity: Quantity,
        ts: UnixNanos,
    ) -> Result<Self, OrderError> {
        Self::new(
            id,
            instrument,
            side,
            OrderType::Market,
            quantity,
            None,
            None,
            TimeInForce::Gtc,
            false,
            ts,
        )
    }

    /// Where it is in its life cycle.
    pub const fn status(&self) -> OrderStatus {
        self.status
    }

    /// Quantity filled so far.
    pub const fn filled(&self) -> Quantity {
        self.filled
    }

    /// Quantity still to fill.
    pub fn remaining(&self) -> Quantity {
        // Invariant: filled never exceeds quantity (checked in `fill`).
        self.quantity
            .checked_sub(self.filled)
            .unwrap_or(Quantity::ZERO)
    }

    fn transition(
        &mut self,
        action: &'static str,
        allowed: &[OrderStatus],
        to: OrderStatus,
    ) -> Result<(), OrderError> {
        if allowed.contains(&self.status) {
            self.status = to;
            Ok(())
        } else {
            Err(OrderError::InvalidTransition {
                id: self.id,
                action,
                from: self.status.as_str(),
            })
        }
    }

    /// Initialized → submitted.
    pub fn submit(&mut self) -> Result<(), OrderError> {
        self.transition(
            "submit",
            &[OrderStatus::Initialized],
            OrderStatus::Submitted,
        )
    }

    /// Submitted → accepted (it passed the pre-trade checks).
    pub fn accept(&mut self) -> Result<(), OrderError> {
        self.transition("accept", &[OrderStatus::Submitted], OrderStatus::Accepted)
    }

    /// Initialized or submitted → rejected.
    pub fn reject(&mut self) -> Result<(), OrderError> {
        self.transition(
            "reject",
            &[OrderStatus::Initialized, OrderStatus::Submitted],
            OrderStatus::Rejected,
        )
    }

    /// A stop kind whose trigger price traded.
    pub fn trigger(&mut self) -> Result<(), OrderError> {
        if !self.order_type.has_trigger() {
            return Err(OrderError::InvalidTransition {
                id: self.id,
                action: "trigger",
                from: self.order_type.as_str(),
            });
        }
        self.transition("trigger", &[OrderStatus::Accepted], OrderStatus::Triggered)
    }

    /// A working order → cancelled.
    pub fn cancel(&mut self) -> Result<(), OrderError> {
        self.transition(
            "cancel",
            &[
                OrderStatus::Accepted,
                OrderStatus::Triggered,
                OrderStatus::PartiallyFilled,
            ],
            OrderStatus::Cancelled,
        )
    }

    /// A working order → expired.
    pub fn expire(&mut self) -> Result<(), OrderError> {
        self.transition(
            "expire",
            &[
                OrderStatus::Accepted,
                OrderStatus::Triggered,
                OrderStatus::PartiallyFilled,
            ],
            OrderStatus::Expired,
        )
    }

    /// Moves a trailing stop's trigger (before it triggered).
    pub fn set_trigger(&mut self, trigger: Price) -> Result<(), OrderError> {
        if self.order_type != OrderType::TrailingStop || !self.status.is_open() {
            return Err(OrderError::InvalidTransition {
                id: self.id,
                action: "move the trigger of",
                from: self.order_type.as_str(),
            });
        }
        self.trigger_price = Some(trigger);
        Ok(())
    }

    /// Takes `by` off a working order's quantity (the other leg of a bracket filled). What
    /// remains must stay above what has filled; a caller that would leave nothing cancels the
    /// order instead.
    pub fn reduce_quantity(&mut self, by: Quantity) -> Result<(), OrderError> {
        let reduced = self.quantity.checked_sub(by)?;
        if !self.status.is_open() || by.is_zero() || reduced <= self.filled {
            return Err(OrderError::Overfill {
                id: self.id,
                fill: by.to_string(),
                remaining: self.remaining().to_string(),
            });
        }
        self.quantity = reduced;
        Ok(())
    }

    /// Records a fill; an order can never fill beyond its quantity.
    pub fn fill(&mut self, quantity: Quantity) -> Result<(), OrderError> {
        if !self.status.is_open() {
            return Err(OrderError::InvalidTransition {
                id: self.id,
                action: "fill",
                from: self.status.as_str(),
            });
        }
        if quantity.is_zero() || quantity > self.remaining() {
            return Err(OrderError::Overfill {
                id: self.id,
                fill: quantity.to_string(),
                remaining: self.remaining().to_string(),
            });
        }
        self.filled = self.filled.checked_add(quantity)?;
        self.status = if self.filled == self.quantity {
            OrderStatus::Filled
        } else {
            OrderStatus::PartiallyFilled
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(order_type: OrderType, price: Option<Price>, trigger: Option<Price>) -> Order {
        Order::new(
            OrderId(1),
            InstrumentId(0),
            OrderSide::Buy,
            order_type,
            Quantity::from_int(10, 0),
            price,
            trigger,
            TimeInForce::Gtc,
            false,
            UnixNanos(0),
        )
        .unwrap()
    }

    fn px(s: &str) -> Option<Price> {
        Some(Price::parse(s, 2).unwrap())
    }

    #[test]
    fn happy_path_to_filled() {
        let mut o = order(OrderType::Market, None, None);
        o.submit().unwrap();
        o.accept().unwrap();
        o.fill(Quantity::from_int(4, 0)).unwrap();
        assert_eq!(o.status(), OrderStatus::PartiallyFilled);
        assert_eq!(o.remaining(), Quantity::from_int(6, 0));
        o.fill(Quantity::from_int(6, 0)).unwrap();
        assert_eq!(o.status(), OrderStatus::Filled);
        assert!(o.status().is_terminal());
    }

    #[test]
    fn invalid_transitions_are_errors() {
        let mut o = order(OrderType::Market, None, None);
        assert!(matches!(
            o.accept(),
            Err(OrderError::InvalidTransition {
                action: "accept",
                from: "INITIALIZED",
                ..
            })
        ));
        assert!(
            o.fill(Quantity::from_int(1, 0)).is_err(),
            "cannot fill before acceptance"
        );
        o.submit().unwrap();
        o.reject().unwrap();
        assert!(o.cancel().is_err(), "rejected is terminal");
        assert!(o.submit().is_err());

        let mut filled = order(OrderType::Market, None, None);
        filled.submit().unwrap();
        filled.accept().unwrap();
        filled.fill(Quantity::from_int(10, 0)).unwrap();
        assert!(filled.cancel().is_err(), "filled is terminal");
        assert!(filled.expire().is_err());
        assert!(filled.trigger().is_err());
    }

    #[test]
    fn cannot_overfill() {
        let mut o = order(OrderType::Market, None, None);
        o.submit().unwrap();
        o.accept().unwrap();
        assert!(matches!(
            o.fill(Quantity::from_int(11, 0)),
            Err(OrderError::Overfill { .. })
        ));
        assert_eq!(o.filled(), Quantity::ZERO);
    }

    #[test]
    fn only_stop_kinds_trigger() {
        let mut limit = order(OrderType::Limit, px("10"), None);
        limit.submit().unwrap();
        limit.accept().unwrap();
        assert!(limit.trigger().is_err());
        let mut stop = order(OrderType::Stop, None, px("10"));
        stop.submit().unwrap();
        stop.accept().unwrap();
        stop.trigger().unwrap();
        assert_eq!(stop.status(), OrderStatus::Triggered);
        stop.cancel().unwrap();
    }

    #[test]
    fn prices_must_match_the_type() {
        let new = |t, p, tr| {
            Order::new(
                OrderId(1),
                InstrumentId(0),
                OrderSide::Sell,
                t,
                Quantity::from_int(1, 0),
                p,
                tr,
                TimeInForce::Day,
                false,
                UnixNanos(0),
            )
        };
        assert!(new(OrderType::Limit, None, None).is_err());
        assert!(new(OrderType::Market, px("1"), None).is_err());
        assert!(new(OrderType::StopLimit, px("1"), None).is_err());
        assert!(new(OrderType::StopLimit, px("1"), px("1.1")).is_ok());
        assert!(
            Order::market(
                OrderId(2),
                InstrumentId(0),
                OrderSide::Buy,
                Quantity::ZERO,
                UnixNanos(0)
            )
            .is_err()
        );
    }
}
