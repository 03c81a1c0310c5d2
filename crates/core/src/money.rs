//! [`Money`]: an exact amount in a currency.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::currency::Currency;
use crate::error::ArithmeticError;
use crate::fixed::{self, DecimalError, MONEY_PRECISION};
use crate::price::Price;
use crate::quantity::Quantity;

/// `raw × 10^-18` units of `currency`. A price (10^-9) times a quantity (10^-9) is exactly a
/// money raw value, so notionals, cash and PnL carry no rounding; only fees are rounded, to the
/// currency's precision.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Money {
    raw: i128,
    currency: Currency,
}

impl Money {
    /// An amount from its raw value at 10^-18.
    pub const fn from_raw(raw: i128, currency: Currency) -> Self {
        Self { raw, currency }
    }

    /// Zero in `currency`.
    pub const fn zero(currency: Currency) -> Self {
        Self { raw: 0, currency }
    }

    /// Parses a decimal amount (`100000`, `2500.50`).
    pub fn parse(text: &str, currency: Currency) -> Result<Self, DecimalError> {
        let parsed = fixed::parse_decimal_i128(text.as_bytes(), MONEY_PRECISION)?;
        Ok(Self::from_raw(parsed.raw, currency))
    }

    /// `price × quantity`, exact.
    pub fn notional(
        price: Price,
        quantity: Quantity,
        currency: Currency,
    ) -> Result<Self, ArithmeticError> {
        i128::from(price.raw())
            .checked_mul(i128::from(quantity.raw()))
            .map(|raw| Self::from_raw(raw, currency))
            .ok_or(ArithmeticError("notional"))
    }

    /// The raw value at 10^-18.
    pub const fn raw(self) -> i128 {
        self.raw
    }

    /// The currency.
    pub const fn currency(self) -> Currency {
        self.currency
    }

    /// Whether the amount is below zero.
    pub fn is_negative(self) -> bool {
        self.raw < 0
    }

    /// `self + other`; an error on overflow or a currency mismatch.
    pub fn checked_add(self, other: Self) -> Result<Self, ArithmeticError> {
        self.same_currency(other, "money addition")?;
        self.raw
            .checked_add(other.raw)
            .map(|raw| Self::from_raw(raw, self.currency))
            .ok_or(ArithmeticError("money addition"))
    }

    /// `self − other`; an error on overflow or a currency mismatch.
    pub fn checked_sub(self, other: Self) -> Result<Self, ArithmeticError> {
        self.same_currency(other, "money subtraction")?;
        self.raw
            .checked_sub(other.raw)
            .map(|raw| Self::from_raw(raw, self.currency))
            .ok_or(ArithmeticError("money subtraction"))
    }

    fn same_currency(self, other: Self, what: &'static str) -> Result<(), ArithmeticError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(ArithmeticError(what))
        }
    }

    /// The absolute amount.
    pub fn abs(self) -> Self {
        Self::from_raw(self.raw.abs(), self.currency)
    }

    /// Rounded to the currency's precision, half away from zero.
    pub fn rounded(self) -> Self {
        Self::from_raw(
            fixed::round_raw(self.raw, MONEY_PRECISION, self.currency.precision()),
            self.currency,
        )
    }

    /// For statistics and charts only; never for accounting. Converts the two 64-bit halves
    /// (faster than a full `i128` conversion; deterministic, within an ulp of it).
    #[inline]
    pub fn as_f64(self) -> f64 {
        let high = (self.raw >> 64) as i64 as f64;
        let low = (self.raw as u64) as f64;
        (high * 18_446_744_073_709_551_616.0 + low) / 1e18
    }
}

impl fmt::Display for Money {
    /// The exact amount with at least the currency's decimals, without the code: `112377.30`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            fixed::stack_format(self.raw, MONEY_PRECISION, self.currency.precision()).as_str(),
        )
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notional_is_exact() {
        let p = Price::parse("180.40", 2).unwrap();
        let q = Quantity::from_int(10, 0);
        let m = Money::notional(p, q, Currency::USD).unwrap();
        assert_eq!(m.to_string(), "1804.00");
        let btc = Quantity::parse("0.12345678", 8).unwrap();
        let m = Money::notional(Price::parse("43000.01", 2).unwrap(), btc, Currency::USD).unwrap();
        assert_eq!(m.to_string(), "5308.6427745678");
    }

    #[test]
    fn rounding_and_currency_mismatch() {
        let m = Money::parse("1.005", Currency::USD).unwrap();
        assert_eq!(m.rounded().to_string(), "1.01");
        let eur = Currency::from_code("EUR").unwrap();
        assert!(m.checked_add(Money::zero(eur)).is_err());
    }
}
