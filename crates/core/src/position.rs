//! [`Position`]: the netting position of one instrument, with exact realised and unrealised PnL.

use crate::currency::Currency;
use crate::error::ArithmeticError;
use crate::fixed::{self, FIXED_PRECISION};
use crate::instrument::InstrumentId;
use crate::money::Money;
use crate::order::OrderSide;
use crate::price::Price;
use crate::quantity::Quantity;
use crate::time::UnixNanos;

/// A netting position: one signed quantity per instrument.
///
/// The open position's cost basis is kept as exact money (`Σ signed qty × price` of the fills
/// that built it). Closing `k` of `n` releases `cost × k / n` of it (exact when the whole
/// position closes); realised PnL is proceeds minus released cost, so
/// `initial cash + realised − fees + unrealised = cash + Σ qty × mark` holds exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    /// The instrument.
    pub instrument: InstrumentId,
    /// Currency of its cost and PnL.
    pub currency: Currency,
    /// Decimal places of the instrument's prices.
    pub price_precision: u8,
    /// Decimal places of the instrument's quantities.
    pub size_precision: u8,
    net_raw: i64,
    cost_raw: i128,
    realized_raw: i128,
    /// When the current non-flat position was opened (or last flipped).
    pub opened_ts: Option<UnixNanos>,
}

/// What one fill did to a position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PositionChange {
    /// Net quantity (raw, signed) before the fill.
    pub before_raw: i64,
    /// Net quantity (raw, signed) after the fill.
    pub after_raw: i64,
    /// Realised PnL of this fill.
    pub realized: Money,
    /// Raw quantity that reduced the old position.
    pub closed_raw: i64,
    /// Raw quantity that opened or increased a position.
    pub opened_raw: i64,
}

impl PositionChange {
    /// The fill took the position to flat or through zero to the other side.
    pub fn closed_round_trip(&self) -> bool {
        self.before_raw != 0
            && (self.after_raw == 0 || self.after_raw.signum() != self.before_raw.signum())
    }

    /// The fill opened a new position from flat or by flipping.
    pub fn opened_new(&self) -> bool {
        self.after_raw != 0
            && (self.before_raw == 0 || self.after_raw.signum() != self.before_raw.signum())
    }
}

impl Position {
    /// A flat position in `instrument`.
    pub fn flat(
        instrument: InstrumentId,
        currency: Currency,
        price_precision: u8,
        size_precision: u8,
    ) -> Self {
        Self {
            instrument,
            currency,
            price_precision,
            size_precision,
            net_raw: 0,
            cost_raw: 0,
            realized_raw: 0,
            opened_ts: None,
        }
    }

    /// Signed net quantity, raw at 10^-9 (positive long, negative short).
    pub const fn net_raw(&self) -> i64 {
        self.net_raw
    }

    /// Whether the net quantity is zero.
    pub const fn is_flat(&self) -> bool {
        self.net_raw == 0
    }

    /// Absolute net quantity.
    pub fn quantity(&self) -> Quantity {
        Quantity::from_raw(self.net_raw.abs(), self.size_precision).unwrap_or(Quantity::ZERO)
    }

    /// The side of the position, `None` when flat.
    pub fn side(&self) -> Option<OrderSide> {
        match self.net_raw.signum() {
            1 => Some(OrderSide::Buy),
            -1 => Some(OrderSide::Sell),
            _ => None,
        }
    }

    /// Signed net quantity with the instrument's size precision.
    pub fn signed_quantity(&self) -> crate::quantity::SignedQuantity {
        crate::quantity::SignedQuantity {
            raw: self.net_raw,
            precision: self.size_precision,
        }
    }

    /// Signed quantity as text, e.g. `-10`.
    pub fn signed_quantity_string(&self) -> String {
        fixed::format_raw(
            i128::from(self.net_raw),
            FIXED_PRECISION,
            self.size_precision,
        )
    }

    /// Cost basis of the open position (signed: negative for shorts).
    pub fn cost(&self) -> Money {
        Money::from_raw(self.cost_raw, self.currency)
    }

    /// Average entry price, rounded half away from zero to 10^-9; `None` when flat.
    pub fn avg_price(&self) -> Option<Price> {
        if self.net_raw == 0 {
            return None;
        }
        let n = i128::from(self.net_raw);
        let half = n.abs() / 2;
        let raw = (self.cost_raw.abs() + half) / n.abs();
        Some(Price::from_raw(
            i64::try_from(raw).unwrap_or(i64::MAX),
            self.price_precision,
        ))
    }

    /// Realised PnL accumulated over the life of the run (before fees).
    pub fn realized(&self) -> Money {
        Money::from_raw(self.realized_raw, self.currency)
    }

    /// Market value of the open position at `mark`: `net × mark` (negative for shorts).
    pub fn market_value(&self, mark: Price) -> Result<Money, ArithmeticError> {
        i128::from(self.net_raw)
            .checked_mul(i128::from(mark.raw()))
            .map(|raw| Money::from_raw(raw, self.currency))
            .ok_or(ArithmeticError("market value"))
    }

    /// Unrealised PnL at `mark`.
    pub fn unrealized(&self, mark: Price) -> Result<Money, ArithmeticError> {
        self.market_value(mark)?.checked_sub(self.cost())
    }

    /// Applies a fill of `quantity` at `price` on `side`.
    pub fn apply(
        &mut self,
        side: OrderSide,
        quantity: Quantity,
        price: Price,
        ts: UnixNanos,
    ) -> Result<PositionChange, ArithmeticError> {
        let before = self.net_raw;
        let signed = quantity.raw() * side.sign();
        let px = i128::from(price.raw());
        let mut realized: i128 = 0;
        let mut closed: i64 = 0;
        let mut opened: i64 = 0;
        if before == 0 || before.signum() == signed.signum() {
            opened = quantity.raw();
            self.cost_raw = self
                .cost_raw
                .checked_add(i128::from(signed) * px)
                .ok_or(ArithmeticError("position cost"))?;
            self.net_raw = before
                .checked_add(signed)
                .ok_or(ArithmeticError("position quantity"))?;
        } else {
            closed = quantity.raw().min(before.abs());
            let released = if closed == before.abs() {
                self.cost_raw
            } else {
                fixed::mul_div(self.cost_raw, i128::from(closed), i128::from(before.abs()))
                    .ok_or(ArithmeticError("position cost split"))?
            };
            // Proceeds of closing `closed` at `px`, signed like the old position.
            let proceeds = i128::from(closed * before.signum()) * px;
            realized = proceeds - released;
            self.cost_raw -= released;
            self.net_raw = before - closed * before.signum();
            let rest = quantity.raw() - closed;
            if rest > 0 {
                opened = rest;
                self.net_raw = rest * side.sign();
                self.cost_raw = i128::from(self.net_raw) * px;
            }
        }
        self.realized_raw = self
            .realized_raw
            .checked_add(realized)
            .ok_or(ArithmeticError("realised pnl"))?;
        let change = PositionChange {
            before_raw: before,
            after_raw: self.net_raw,
            realized: Money::from_raw(realized, self.currency),
            closed_raw: closed,
            opened_raw: opened,
        };
        if self.net_raw == 0 {
            self.opened_ts = None;
            self.cost_raw = 0;
        } else if change.opened_new() {
            self.opened_ts = Some(ts);
        }
        Ok(change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pos() -> Position {
        Position::flat(InstrumentId(0), Currency::USD, 2, 0)
    }

    fn q(n: u32) -> Quantity {
        Quantity::from_int(n, 0)
    }

    fn p(s: &str) -> Price {
        Price::parse(s, 2).unwrap()
    }

    #[test]
    fn long_round_trip_realises_pnl() {
        let mut pos = pos();
        pos.apply(OrderSide::Buy, q(10), p("100"), UnixNanos(1))
            .unwrap();
        assert_eq!(pos.avg_price().unwrap().to_string(), "100.00");
        assert_eq!(pos.unrealized(p("101.5")).unwrap().to_string(), "15.00");
        let change = pos
            .apply(OrderSide::Sell, q(10), p("102.25"), UnixNanos(2))
            .unwrap();
        assert_eq!(change.realized.to_string(), "22.50");
        assert!(change.closed_round_trip());
        assert!(pos.is_flat());
        assert_eq!(pos.realized().to_string(), "22.50");
    }

    #[test]
    fn reversal_closes_then_opens() {
        let mut pos = pos();
        pos.apply(OrderSide::Sell, q(10), p("50"), UnixNanos(1))
            .unwrap();
        let change = pos
            .apply(OrderSide::Buy, q(30), p("40"), UnixNanos(2))
            .unwrap();
        assert_eq!(change.realized.to_string(), "100.00");
        assert_eq!(change.closed_raw, 10 * 1_000_000_000);
        assert_eq!(change.opened_raw, 20 * 1_000_000_000);
        assert!(change.closed_round_trip() && change.opened_new());
        assert_eq!(pos.signed_quantity_string(), "20");
        assert_eq!(pos.avg_price().unwrap().to_string(), "40.00");
        assert_eq!(pos.opened_ts, Some(UnixNanos(2)));
    }

    #[test]
    fn partial_close_keeps_average() {
        let mut pos = pos();
        pos.apply(OrderSide::Buy, q(1), p("10"), UnixNanos(1))
            .unwrap();
        pos.apply(OrderSide::Buy, q(2), p("11"), UnixNanos(1))
            .unwrap();
        let change = pos
            .apply(OrderSide::Sell, q(1), p("12"), UnixNanos(2))
            .unwrap();
        // cost 32 for 3 → releases 10.666…; realised 1.333…
        assert_eq!(pos.quantity(), q(2));
        let money = |units: i128| units * 1_000_000_000_000_000_000;
        // proceeds (12) = realised + released cost, and released + kept cost = 32, exactly.
        let released = money(32) - pos.cost().raw();
        assert_eq!(change.realized.raw() + released, money(12));
        assert_eq!(pos.avg_price().unwrap().to_string(), "10.666666667");
    }

    proptest! {
        /// cash + Σ qty × mark = initial + realised + unrealised, exactly, for any fill sequence.
        #[test]
        fn accounting_identity_holds(fills in prop::collection::vec((any::<bool>(), 1u32..50, 1i64..100_000), 1..60), mark in 1i64..100_000) {
            let mut pos = pos();
            let mut cash: i128 = 0;
            for (buy, qty, cents) in fills {
                let side = if buy { OrderSide::Buy } else { OrderSide::Sell };
                let price = Price::from_raw(cents * 10_000_000, 2);
                pos.apply(side, q(qty), price, UnixNanos(0)).unwrap();
                cash -= i128::from(side.sign()) * i128::from(q(qty).raw()) * i128::from(price.raw());
            }
            let mark = Price::from_raw(mark * 10_000_000, 2);
            let equity = cash + pos.market_value(mark).unwrap().raw();
            let pnl = pos.realized().raw() + pos.unrealized(mark).unwrap().raw();
            prop_assert_eq!(equity, pnl);
        }
    }
}
