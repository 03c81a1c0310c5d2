//! A fee rate given in a configuration (`fee_bps` of a simulation job): a [`Bps`] between 0 and
//! [`MAX_FEE_BPS`] with at most two decimals, so `10` and `2.5` are exact.

use crate::decimal::Decimal;
use crate::fixed::FIXED_SCALAR;
use crate::instrument::Bps;

/// The highest fee rate a configuration may ask for, in basis points (10 %).
pub const MAX_FEE_BPS: i64 = 1_000;

/// A `fee_bps` value that is not a fee rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FeeRateError {
    /// Negative, or more than two decimals.
    #[error("fee_bps must be between 0 and 1000 with at most 2 decimals, got {0}")]
    Invalid(Decimal),
    /// Above [`MAX_FEE_BPS`].
    #[error("fee_bps must be at most 1000, got {0}")]
    TooHigh(Decimal),
}

impl Bps {
    /// A fee rate from basis points with at most two decimals (`10`, `2.5`);
    /// 0 ≤ bps ≤ [`MAX_FEE_BPS`]. Fees are then [`Bps::of_money`] of a notional.
    pub fn fee_rate(bps: Decimal) -> Result<Self, FeeRateError> {
        if bps.is_negative() || bps.decimals() > 2 {
            return Err(FeeRateError::Invalid(bps));
        }
        let rate = bps.to_bps().map_err(|_| FeeRateError::Invalid(bps))?;
        if rate.raw() > MAX_FEE_BPS * FIXED_SCALAR {
            return Err(FeeRateError::TooHigh(bps));
        }
        Ok(rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Currency, Money};

    fn rate(text: &str) -> Result<Bps, FeeRateError> {
        Bps::fee_rate(Decimal::parse(text).unwrap())
    }

    #[test]
    fn bounds_and_decimals() {
        assert!(rate("0").is_ok() && rate("2.55").is_ok() && rate("1000").is_ok());
        assert_eq!(
            rate("2.555").unwrap_err().to_string(),
            "fee_bps must be between 0 and 1000 with at most 2 decimals, got 2.555"
        );
        assert!(matches!(rate("-1"), Err(FeeRateError::Invalid(_))));
        assert_eq!(
            rate("1000.01").unwrap_err().to_string(),
            "fee_bps must be at most 1000, got 1000.01"
        );
    }

    #[test]
    fn fees_are_the_hundredths_of_a_basis_point_truncated_then_rounded_to_the_currency() {
        // 10 bps of 1234.565 = 1.234565 → 1.23; 2.5 bps of 100.10 = 0.025025 → 0.03.
        let m = |s: &str| Money::parse(s, Currency::USD).unwrap();
        assert_eq!(
            rate("10").unwrap().of_money(m("1234.565")).to_string(),
            "1.23"
        );
        assert_eq!(
            rate("2.5").unwrap().of_money(m("100.10")).to_string(),
            "0.03"
        );
        assert_eq!(rate("0").unwrap().of_money(m("100")).to_string(), "0.00");
    }
}
