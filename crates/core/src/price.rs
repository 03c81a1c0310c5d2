//! [`Price`]: a fixed-point price with a display precision.

use std::cmp::Ordering;
use std::fmt;

use serde::{Serialize, Serializer};

use crate::error::ArithmeticError;
use crate::fixed::{self, DecimalError, FIXED_PRECISION, FIXED_SCALAR, POW10};

/// A price: `raw × 10^-9`, shown with `precision` decimals. Equality and ordering compare the
/// value only (`1.5` at precision 1 equals `1.50` at precision 2).
#[derive(Clone, Copy, Debug, Default)]
pub struct Price {
    raw: i64,
    precision: u8,
}

impl Price {
    /// A price from its raw value at 10^-9.
    pub const fn from_raw(raw: i64, precision: u8) -> Self {
        Self { raw, precision }
    }

    /// A whole-number price.
    pub fn from_int(value: i64, precision: u8) -> Result<Self, ArithmeticError> {
        value
            .checked_mul(FIXED_SCALAR)
            .map(|raw| Self::from_raw(raw, precision))
            .ok_or(ArithmeticError("price from integer"))
    }

    /// Parses a decimal string; fails if it has more decimals than `precision`.
    pub fn parse(text: &str, precision: u8) -> Result<Self, DecimalError> {
        let parsed = fixed::parse_decimal(text.as_bytes())?;
        if parsed.decimals > precision {
            return Err(DecimalError::TooPrecise(text.to_string(), precision));
        }
        Ok(Self::from_raw(parsed.raw, precision))
    }

    /// The raw value at 10^-9.
    pub const fn raw(self) -> i64 {
        self.raw
    }

    /// Decimal places it is shown with.
    pub const fn precision(self) -> u8 {
        self.precision
    }

    /// Whether the price is above zero.
    pub fn is_positive(self) -> bool {
        self.raw > 0
    }

    /// The same value shown with another precision.
    pub const fn with_precision(self, precision: u8) -> Self {
        Self::from_raw(self.raw, precision)
    }

    /// `self + other`; an error on overflow.
    pub fn checked_add(self, other: Self) -> Result<Self, ArithmeticError> {
        self.raw
            .checked_add(other.raw)
            .map(|raw| Self::from_raw(raw, self.precision.max(other.precision)))
            .ok_or(ArithmeticError("price addition"))
    }

    /// `self − other`; an error on overflow.
    pub fn checked_sub(self, other: Self) -> Result<Self, ArithmeticError> {
        self.raw
            .checked_sub(other.raw)
            .map(|raw| Self::from_raw(raw, self.precision.max(other.precision)))
            .ok_or(ArithmeticError("price subtraction"))
    }

    /// Rounds to a multiple of `step` (a tick size), half away from zero.
    pub fn round_to_step(self, step: Price) -> Self {
        if step.raw <= 0 {
            return self;
        }
        let rem = self.raw % step.raw;
        let base = self.raw - rem;
        let raw = if rem.abs() * 2 >= step.raw {
            base + step.raw * self.raw.signum()
        } else {
            base
        };
        Self::from_raw(raw, self.precision)
    }

    /// Whether the value has no more decimals than `precision`.
    pub fn fits_precision(self, precision: u8) -> bool {
        precision >= FIXED_PRECISION
            || self.raw % POW10[usize::from(FIXED_PRECISION - precision)] == 0
    }

    /// For statistics and charts only; never for accounting.
    pub fn as_f64(self) -> f64 {
        self.raw as f64 / FIXED_SCALAR as f64
    }
}

impl PartialEq for Price {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Eq for Price {}

impl PartialOrd for Price {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Price {
    fn cmp(&self, other: &Self) -> Ordering {
        self.raw.cmp(&other.raw)
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            fixed::stack_format(i128::from(self.raw), FIXED_PRECISION, self.precision).as_str(),
        )
    }
}

impl Serialize for Price {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_by_value_and_displays_at_precision() {
        let a = Price::parse("1.5", 1).unwrap();
        let b = Price::parse("1.50", 2).unwrap();
        assert_eq!(a, b);
        assert_eq!(b.to_string(), "1.50");
        assert!(Price::parse("1.505", 2).is_err());
    }

    #[test]
    fn rounds_to_tick() {
        let tick = Price::parse("0.05", 2).unwrap();
        assert_eq!(
            Price::parse("1.02", 2)
                .unwrap()
                .round_to_step(tick)
                .to_string(),
            "1.00"
        );
        assert_eq!(
            Price::parse("1.03", 2)
                .unwrap()
                .round_to_step(tick)
                .to_string(),
            "1.05"
        );
    }

    #[test]
    fn overflow_is_an_error() {
        let max = Price::from_raw(i64::MAX, 2);
        assert!(max.checked_add(Price::from_raw(1, 2)).is_err());
    }
}
