//! Row checks shared by every loader: precision, OHLC consistency, strictly increasing time.

use tradeloom_core::fixed::{FIXED_PRECISION, POW10};
use tradeloom_core::{Bar, Price, UnixNanos};

use crate::error::RowError;

/// Parses a volume: non-negative, rounded half away from zero to 9 decimals (volume is
/// informational, and real files carry float artifacts such as `397787.41249925003`).
pub fn parse_volume(text: &[u8]) -> Result<i64, RowError> {
    use tradeloom_core::fixed::{DecimalError, parse_decimal_i128, round_raw};
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

    fn precision(&self, field: &str, price: Price) -> Result<(), RowError> {
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
