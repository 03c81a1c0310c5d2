//! [`Instrument`]: what can be traded, with its precisions, increments and fees.

use serde::Serialize;

use crate::currency::Currency;
use crate::error::ArithmeticError;
use crate::fixed::{self, DecimalError, FIXED_PRECISION};
use crate::money::Money;
use crate::price::Price;
use crate::quantity::Quantity;
use crate::symbol::Symbol;

/// The index of an instrument within one run (its position in the run spec).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize)]
pub struct InstrumentId(pub u32);

impl InstrumentId {
    /// The index as a `usize`, for slices indexed by instrument.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// A rate in basis points (1 bp = 0.01 %), fixed-point at 10^-9 bp. `7.5` bps is exact.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Default)]
pub struct Bps {
    raw: i64,
}

const BPS_DENOMINATOR: i128 = 10_000 * 1_000_000_000;

impl Bps {
    /// Zero basis points.
    pub const ZERO: Bps = Bps { raw: 0 };

    /// Parses a decimal number of basis points (`7.5`).
    pub fn parse(text: &str) -> Result<Self, DecimalError> {
        let parsed = fixed::parse_decimal(text.as_bytes())?;
        if parsed.raw < 0 {
            return Err(DecimalError::Invalid(text.to_string()));
        }
        Ok(Self { raw: parsed.raw })
    }

    /// From a floating-point number of basis points, at most 9 decimals.
    pub fn from_f64(value: f64) -> Result<Self, DecimalError> {
        Self::parse(&format!("{value}"))
    }

    /// A rate from its raw value at 10^-9 bp (`100_000_000_000` is 1 %).
    pub const fn from_raw(raw: i64) -> Self {
        Self { raw }
    }

    /// The raw value at 10^-9 bp.
    pub const fn raw(self) -> i64 {
        self.raw
    }

    /// Whether the rate is zero.
    pub const fn is_zero(self) -> bool {
        self.raw == 0
    }

    /// `amount × rate`, rounded half away from zero to the currency's precision.
    pub fn of_money(self, amount: Money) -> Money {
        if self.raw == 0 {
            // What the product and the rounding below give for a zero rate, without their
            // 128-bit divisions (a frictionless run pays them on every fill).
            return Money::zero(amount.currency());
        }
        let raw = fixed::mul_div(amount.raw(), i128::from(self.raw), BPS_DENOMINATOR)
            .unwrap_or(i128::MAX);
        Money::from_raw(raw, amount.currency()).rounded()
    }

    /// `price × rate`, truncated to the price's raw resolution (10^-9).
    pub fn of_price(self, price: Price) -> Price {
        let raw = fixed::mul_div(
            i128::from(price.raw()),
            i128::from(self.raw),
            BPS_DENOMINATOR,
        )
        .unwrap_or(0);
        Price::from_raw(i64::try_from(raw).unwrap_or(i64::MAX), price.precision())
    }
}

impl std::fmt::Display for Bps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&fixed::format_raw(i128::from(self.raw), FIXED_PRECISION, 0))
    }
}

impl Serialize for Bps {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Why an instrument cannot be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InstrumentError {
    /// A precision above the 9 decimals prices and quantities carry.
    #[error("{what} {precision} is above the maximum {max}", max = FIXED_PRECISION)]
    Precision {
        /// `price_precision` or `size_precision`.
        what: &'static str,
        /// The precision given.
        precision: u8,
    },
    /// Arithmetic overflowed.
    #[error(transparent)]
    Arithmetic(#[from] ArithmeticError),
}

/// A tradable instrument.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Instrument {
    /// Its index in the run.
    pub id: InstrumentId,
    /// Its symbol (`AAPL`, `BTC-USD`).
    pub symbol: Symbol,
    /// The venue it trades on (informational).
    pub venue: String,
    /// Decimal places of prices (2 for `180.40`).
    pub price_precision: u8,
    /// Decimal places of quantities (0 for whole shares, 8 for BTC).
    pub size_precision: u8,
    /// Smallest price increment; prices are multiples of it.
    pub tick_size: Price,
    /// Smallest quantity increment; order sizes are multiples of it.
    pub lot_size: Quantity,
    /// Smallest order size.
    pub min_quantity: Quantity,
    /// Fee on fills that add liquidity (resting limit orders).
    pub maker_fee: Bps,
    /// Fee on fills that take liquidity (market and triggered stop orders).
    pub taker_fee: Bps,
    /// The currency prices are quoted and settled in.
    pub currency: Currency,
}

impl Instrument {
    /// An instrument with the finest increments its precisions allow and no fees.
    pub fn new(
        id: InstrumentId,
        symbol: Symbol,
        venue: &str,
        price_precision: u8,
        size_precision: u8,
        currency: Currency,
    ) -> Result<Self, InstrumentError> {
        for (what, p) in [
            ("price_precision", price_precision),
            ("size_precision", size_precision),
        ] {
            if p > FIXED_PRECISION {
                return Err(InstrumentError::Precision { what, precision: p });
            }
        }
        let tick = Price::from_raw(
            fixed::POW10[usize::from(FIXED_PRECISION - price_precision)],
            price_precision,
        );
        let lot = Quantity::from_raw(
            fixed::POW10[usize::from(FIXED_PRECISION - size_precision)],
            size_precision,
        )?;
        Ok(Self {
            id,
            symbol,
            venue: venue.to_string(),
            price_precision,
            size_precision,
            tick_size: tick,
            lot_size: lot,
            min_quantity: lot,
            maker_fee: Bps::ZERO,
            taker_fee: Bps::ZERO,
            currency,
        })
    }

    /// A quantity shown with this instrument's size precision.
    pub fn quantity(&self, raw: i64) -> Quantity {
        Quantity::from_raw(raw.max(0), self.size_precision).unwrap_or(Quantity::ZERO)
    }

    /// A price shown with this instrument's price precision.
    pub fn price(&self, raw: i64) -> Price {
        Price::from_raw(raw, self.price_precision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fees_round_to_cents() {
        let fee = Bps::parse("7.5").unwrap();
        let notional = Money::parse("1804.00", Currency::USD).unwrap();
        // 1804 × 0.00075 = 1.353 → 1.35
        assert_eq!(fee.of_money(notional).to_string(), "1.35");
    }

    #[test]
    fn increments_follow_precision() {
        let i = Instrument::new(
            InstrumentId(0),
            Symbol::new("GOOG").unwrap(),
            "sim",
            2,
            0,
            Currency::USD,
        )
        .unwrap();
        assert_eq!(i.tick_size.to_string(), "0.01");
        assert_eq!(i.lot_size.to_string(), "1");
        assert!(Instrument::new(InstrumentId(0), i.symbol, "sim", 10, 0, Currency::USD).is_err());
    }
}
