//! Row checks shared by every loader: precision, OHLC consistency, strictly increasing time.

use tradeloom_core::fixed::{FIXED_PRECISION, POW10};
use tradeloom_core::{Bar, Price, UnixNanos};

use crate::error::RowError;

/// Parses a volume: non-negative, rounded half away from zero to 9 decimals (volume is
/// informational, and real files carry float artifacts such as `397787.41249925003`).
pub fn parse_volume(text: &[u8]) -> Result<i64, RowError> {
    use tradeloom_core::fixed::{DecimalError, parse_decimal_i128, round_raw};
    // Most files hold whole volumes: up to 9 digits need no 128-bit arithmetic.
    if !text.is_empty() && text.len() <= 9 && text.iter().all(u8::is_ascii_digit) {
        let whole = text.iter().fold(0i64, |v, &c| v * 10 + i64::from(c - b'0'));
        return Ok(whole * 1_000_000_000);
    }
    let parsed = parse_decimal_i128(text, 18).map_err(|e| match e {
        DecimalError::Empty => RowError::Missing("volume".to_string()),
        source => RowError::Decimal {
            field: "volume".to_string(),
            source,
        },
    })?;
    if parsed.raw < 0 {
        return Err(RowError::NegativeVolume(
            String::from_utf8_lossy(text).into_owned(),
        ));
    }
    let raw9 = round_raw(parsed.raw, 18, 9) / 1_000_000_000;
    i64::try_from(raw9).map_err(|_| RowError::OutOfRange {
        what: format!("volume {}", String::from_utf8_lossy(text)),
    })
}

/// Checks bars of one file in order.
#[derive(Clone, Debug)]
pub struct Validator {
    symbol: String,
    price_precision: u8,
    step: i64,
    last: Option<UnixNanos>,
}

impl Validator {
    pub fn new(symbol: &str, price_precision: u8) -> Self {
        let p = price_precision.min(FIXED_PRECISION);
        Self {
            symbol: symbol.to_string(),
            price_precision: p,
            step: POW10[usize::from(FIXED_PRECISION - p)],
            last: None,
        }
    }

    /// The precision limit checked (decimals).
    pub(crate) fn price_precision(&self) -> u8 {
        self.price_precision
    }

    pub(crate) fn precision(&self, field: &str, price: Price) -> Result<(), RowError> {
        if price.raw() % self.step != 0 {
            let text =
                tradeloom_core::fixed::format_raw(i128::from(price.raw()), FIXED_PRECISION, 0);
            let decimals = text.split('.').nth(1).map_or(0, str::len);
            return Err(RowError::Precision {
                field: field.to_string(),
                value: text,
                decimals,
                symbol: self.symbol.clone(),
                precision: self.price_precision,
            });
        }
        Ok(())
    }

    /// Checks one bar; the error is the message without the place.
    #[inline]
    pub fn check(&mut self, bar: &Bar) -> Result<(), RowError> {
        if self.step > 1 {
            for (field, p) in [
                ("open", bar.open),
                ("high", bar.high),
                ("low", bar.low),
                ("close", bar.close),
            ] {
                self.precision(field, p)?;
            }
        }
        self.check_ordered(bar)
    }

    /// [`Validator::check`] without the precision check, for a loader that checked the
    /// decimals as it parsed.
    #[inline]
    pub(crate) fn check_ordered(&mut self, bar: &Bar) -> Result<(), RowError> {
        bar.validate()?;
        if let Some(last) = self.last {
            if bar.ts == last {
                return Err(RowError::DuplicateTimestamp(bar.ts));
            }
            if bar.ts < last {
                return Err(RowError::Backwards {
                    ts: bar.ts,
                    previous: last,
                });
            }
        }
        self.last = Some(bar.ts);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_and_fractional_volumes_parse_alike() {
        for (text, raw) in [
            ("0", 0),
            ("1000", 1_000_000_000_000),
            ("999999999", 999_999_999_000_000_000),
            ("1000000000", 1_000_000_000_000_000_000),
            ("1000.0", 1_000_000_000_000),
            (" 12", 12_000_000_000),
            ("397787.41249925003", 397_787_412_499_250),
        ] {
            assert_eq!(parse_volume(text.as_bytes()).unwrap(), raw, "{text}");
        }
        assert!(parse_volume(b"-1").is_err());
        assert!(parse_volume(b"").is_err());
    }
}
