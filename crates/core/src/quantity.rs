//! [`Quantity`]: a non-negative fixed-point size with a display precision.

use std::cmp::Ordering;
use std::fmt;

use serde::{Serialize, Serializer};

use crate::error::ArithmeticError;
use crate::fixed::{self, DecimalError, FIXED_PRECISION, FIXED_SCALAR, POW10};

/// A size: `raw × 10^-9 ≥ 0`, shown with `precision` decimals.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quantity {
    raw: i64,
    precision: u8,
}

impl Quantity {
    /// Zero, shown without decimals.
    pub const ZERO: Self = Self {
        raw: 0,
        precision: 0,
    };

    /// A quantity from its raw value at 10^-9; negative raw values are an error.
    pub fn from_raw(raw: i64, precision: u8) -> Result<Self, ArithmeticError> {
        if raw < 0 {
            return Err(ArithmeticError("negative quantity"));
        }
        Ok(Self { raw, precision })
    }

    /// A whole-number quantity.
    pub fn from_int(value: u32, precision: u8) -> Self {
        Self {
            raw: i64::from(value) * FIXED_SCALAR,
            precision,
        }
    }

    /// Parses a non-negative decimal string with at most `precision` decimals.
    pub fn parse(text: &str, precision: u8) -> Result<Self, DecimalError> {
        let parsed = fixed::parse_decimal(text.as_bytes())?;
        if parsed.raw < 0 {
            return Err(DecimalError::Invalid(text.to_string()));
        }
        if parsed.decimals > precision {
            return Err(DecimalError::TooPrecise(text.to_string(), precision));
        }
        Ok(Self {
            raw: parsed.raw,
            precision,
        })
    }

    /// The raw value at 10^-9.
    pub const fn raw(self) -> i64 {
        self.raw
    }

    /// Decimal places it is shown with.
    pub const fn precision(self) -> u8 {
        self.precision
    }

    /// Whether the quantity is zero.
    pub const fn is_zero(self) -> bool {
        self.raw == 0
    }

    /// The same value shown with another precision.
    pub const fn with_precision(self, precision: u8) -> Self {
        Self {
            raw: self.raw,
            precision,
        }
    }

    /// `self + other`; an error on overflow.
    pub fn checked_add(self, other: Self) -> Result<Self, ArithmeticError> {
        self.raw
            .checked_add(other.raw)
            .map(|raw| Self {
                raw,
                precision: self.precision.max(other.precision),
            })
            .ok_or(ArithmeticError("quantity addition"))
    }

    /// `self − other`; an error if the result would be negative.
    pub fn checked_sub(self, other: Self) -> Result<Self, ArithmeticError> {
        match self.raw.checked_sub(other.raw) {
            Some(raw) if raw >= 0 => Ok(Self {
                raw,
                precision: self.precision.max(other.precision),
            }),
            _ => Err(ArithmeticError("quantity subtraction")),
        }
    }

    /// The smaller of the two.
    pub fn min(self, other: Self) -> Self {
        if other.raw < self.raw { other } else { self }
    }

    /// Whether the value has no more decimals than `precision`.
    pub fn fits_precision(self, precision: u8) -> bool {
        precision >= FIXED_PRECISION
            || self.raw % POW10[usize::from(FIXED_PRECISION - precision)] == 0
    }

    /// Whether the value is a whole multiple of `step` (a lot size).
    pub fn is_multiple_of(self, step: Quantity) -> bool {
        step.raw <= 0 || self.raw % step.raw == 0
    }

    /// For statistics only; never for accounting.
    pub fn as_f64(self) -> f64 {
        self.raw as f64 / FIXED_SCALAR as f64
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.raw.cmp(&other.raw)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            fixed::stack_format(i128::from(self.raw), FIXED_PRECISION, self.precision).as_str(),
        )
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A signed size (a net position: positive long, negative short), shown with `precision`
/// decimals. Serialised as a decimal string without allocating in the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SignedQuantity {
    /// The raw value at 10^-9 (positive long, negative short).
    pub raw: i64,
    /// Decimal places it is shown with.
    pub precision: u8,
}

impl fmt::Display for SignedQuantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            fixed::stack_format(i128::from(self.raw), FIXED_PRECISION, self.precision).as_str(),
        )
    }
}

impl Serialize for SignedQuantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_negative() {
        assert!(Quantity::from_raw(-1, 0).is_err());
        assert!(Quantity::parse("-1", 0).is_err());
        let one = Quantity::from_int(1, 0);
        let two = Quantity::from_int(2, 0);
        assert!(one.checked_sub(two).is_err());
        assert_eq!(two.checked_sub(one).unwrap(), one);
    }

    #[test]
    fn checks_lot_and_precision() {
        let q = Quantity::parse("0.25", 2).unwrap();
        assert!(q.is_multiple_of(Quantity::parse("0.05", 2).unwrap()));
        assert!(!q.is_multiple_of(Quantity::parse("0.1", 1).unwrap()));
        assert!(q.fits_precision(2));
        assert!(!q.fits_precision(1));
    }
}
