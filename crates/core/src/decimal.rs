//! [`Decimal`]: an exact decimal read from configuration (YAML/JSON number or string), turned
//! into a [`Price`], [`Quantity`], [`Money`] or [`Bps`] with the precision checks of each.
//!
//! A YAML number such as `7.5` arrives as an `f64`; it is converted through its shortest
//! round-trip text (`"7.5"`), so what the user wrote is what is used.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::currency::Currency;
use crate::fixed::{self, DecimalError, FIXED_PRECISION, MONEY_PRECISION};
use crate::instrument::Bps;
use crate::money::Money;
use crate::price::Price;
use crate::quantity::Quantity;

/// An exact decimal at 10^-18 with its significant decimal places.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Decimal {
    raw: i128,
    decimals: u8,
}

/// Why a [`Decimal`] does not fit the fixed-point type it is converted to.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConversionError {
    /// More decimal places than the 9 prices, quantities and rates carry.
    #[error("{value} has more than {max} decimal places", max = FIXED_PRECISION)]
    TooPrecise {
        /// The value.
        value: Decimal,
    },
    /// Too large for the type.
    #[error("{value} is out of range")]
    OutOfRange {
        /// The value.
        value: Decimal,
    },
    /// More decimal places than the instrument's precision.
    #[error(
        "{value} has {decimals} decimal places; the instrument's {what} is {precision}",
        decimals = value.decimals()
    )]
    Precision {
        /// The value.
        value: Decimal,
        /// `price_precision` or `size_precision`.
        what: &'static str,
        /// The instrument's precision.
        precision: u8,
    },
    /// Below zero where only non-negative values make sense.
    #[error("{value} is negative")]
    Negative {
        /// The value.
        value: Decimal,
    },
    /// Not a valid rate.
    #[error(transparent)]
    Rate(#[from] DecimalError),
}

impl Decimal {
    /// Parses a decimal string (`100`, `-2.5`, `0.001`) of at most 18 decimals.
    pub fn parse(text: &str) -> Result<Self, DecimalError> {
        fixed::parse_decimal_i128(text.as_bytes(), MONEY_PRECISION).map(|p| Self {
            raw: p.raw,
            decimals: p.decimals,
        })
    }

    /// A whole number.
    pub fn from_int(value: i64) -> Self {
        Self {
            raw: i128::from(value) * 10i128.pow(u32::from(MONEY_PRECISION)),
            decimals: 0,
        }
    }

    /// Significant decimal places as written (trailing zeros not counted).
    pub const fn decimals(self) -> u8 {
        self.decimals
    }

    /// Whether the value is below zero.
    pub fn is_negative(self) -> bool {
        self.raw < 0
    }

    /// Whether the value is zero.
    pub fn is_zero(self) -> bool {
        self.raw == 0
    }

    fn raw9(self) -> Result<i64, ConversionError> {
        if self.decimals > FIXED_PRECISION {
            return Err(ConversionError::TooPrecise { value: self });
        }
        i64::try_from(self.raw / 10i128.pow(u32::from(MONEY_PRECISION - FIXED_PRECISION)))
            .map_err(|_| ConversionError::OutOfRange { value: self })
    }

    /// As a price with at most `precision` decimals.
    pub fn to_price(self, precision: u8) -> Result<Price, ConversionError> {
        if self.decimals > precision {
            return Err(ConversionError::Precision {
                value: self,
                what: "price_precision",
                precision,
            });
        }
        Ok(Price::from_raw(self.raw9()?, precision))
    }

    /// As a non-negative quantity with at most `precision` decimals.
    pub fn to_quantity(self, precision: u8) -> Result<Quantity, ConversionError> {
        if self.decimals > precision {
            return Err(ConversionError::Precision {
                value: self,
                what: "size_precision",
                precision,
            });
        }
        Quantity::from_raw(self.raw9()?, precision)
            .map_err(|_| ConversionError::Negative { value: self })
    }

    /// As money in `currency` (any number of decimals up to 18).
    pub fn to_money(self, currency: Currency) -> Money {
        Money::from_raw(self.raw, currency)
    }

    /// As a rate in basis points.
    pub fn to_bps(self) -> Result<Bps, ConversionError> {
        if self.is_negative() {
            return Err(ConversionError::Negative { value: self });
        }
        Ok(Bps::parse(&self.to_string())?)
    }

    /// The value as a raw fixed-point integer at 10^-9 (for percentages and thresholds).
    pub fn to_raw9(self) -> Result<i64, ConversionError> {
        self.raw9()
    }

    /// For display and statistics only.
    pub fn as_f64(self) -> f64 {
        self.raw as f64 / 1e18
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fixed::format_raw(self.raw, MONEY_PRECISION, 0))
    }
}

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

struct DecimalVisitor;

impl Visitor<'_> for DecimalVisitor {
    type Value = Decimal;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a decimal number (e.g. 100000 or 7.5)")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Decimal, E> {
        Ok(Decimal::from_int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Decimal, E> {
        i64::try_from(v)
            .map(Decimal::from_int)
            .map_err(|_| E::custom(format!("{v} is out of range")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Decimal, E> {
        if !v.is_finite() {
            return Err(E::custom(format!("{v} is not a finite number")));
        }
        Decimal::parse(&format!("{v}")).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Decimal, E> {
        Decimal::parse(v).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DecimalVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_with_precision_checks() {
        let d: Decimal = serde_json::from_str("7.5").unwrap();
        assert_eq!(d.to_bps().unwrap().to_string(), "7.5");
        let d: Decimal = serde_json::from_str("\"180.40\"").unwrap();
        assert_eq!(d.to_price(2).unwrap().to_string(), "180.40");
        assert!(d.to_price(0).is_err());
        let d: Decimal = serde_json::from_str("100000").unwrap();
        assert_eq!(d.to_money(Currency::USD).to_string(), "100000.00");
        assert!(Decimal::parse("-1").unwrap().to_quantity(0).is_err());
        assert!(serde_json::from_str::<Decimal>("\"abc\"").is_err());
    }
}
