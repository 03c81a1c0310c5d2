//! [`Bar`]: one OHLCV bar of one instrument.

use crate::instrument::InstrumentId;
use crate::price::Price;
use crate::quantity::Quantity;
use crate::time::UnixNanos;

/// An OHLCV bar. `ts` is the bar's timestamp as given by the data (tradeloom treats it as the
/// time the bar's close is known).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bar {
    /// The instrument the bar belongs to.
    pub instrument: InstrumentId,
    /// Open time of the bar.
    pub ts: UnixNanos,
    /// First traded price.
    pub open: Price,
    /// Highest traded price.
    pub high: Price,
    /// Lowest traded price.
    pub low: Price,
    /// Last traded price.
    pub close: Price,
    /// Traded quantity (zero when unknown).
    pub volume: Quantity,
}

/// Why a bar's prices are inconsistent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BarError {
    #[error("{field} {value} is not positive")]
    /// A price is zero or negative.
    NonPositive {
        /// Which price (`open`, …).
        field: &'static str,
        /// Its value.
        value: String,
    },
    #[error("high {high} is below max(open, close) {max}")]
    /// The high is below the open or the close.
    HighTooLow {
        /// The high.
        high: String,
        /// The larger of open and close.
        max: String,
    },
    #[error("low {low} is above min(open, close) {min}")]
    /// The low is above the open or the close.
    LowTooHigh {
        /// The low.
        low: String,
        /// The smaller of open and close.
        min: String,
    },
}

impl Bar {
    /// A flat bar: open = high = low = close = `price`, no volume (a scan row's price, a quote).
    pub fn flat(instrument: InstrumentId, ts: UnixNanos, price: Price) -> Self {
        Self {
            instrument,
            ts,
            open: price,
            high: price,
            low: price,
            close: price,
            volume: Quantity::ZERO,
        }
    }

    /// Checks `high ≥ max(open, close) ≥ min(open, close) ≥ low > 0`.
    pub fn validate(&self) -> Result<(), BarError> {
        for (field, value) in [
            ("open", self.open),
            ("high", self.high),
            ("low", self.low),
            ("close", self.close),
        ] {
            if !value.is_positive() {
                return Err(BarError::NonPositive {
                    field,
                    value: value.to_string(),
                });
            }
        }
        let max = self.open.max(self.close);
        let min = self.open.min(self.close);
        if self.high < max {
            return Err(BarError::HighTooLow {
                high: self.high.to_string(),
                max: max.to_string(),
            });
        }
        if self.low > min {
            return Err(BarError::LowTooHigh {
                low: self.low.to_string(),
                min: min.to_string(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(o: &str, h: &str, l: &str, c: &str) -> Bar {
        let p = |s: &str| Price::parse(s, 2).unwrap();
        Bar {
            instrument: InstrumentId(0),
            ts: UnixNanos(0),
            open: p(o),
            high: p(h),
            low: p(l),
            close: p(c),
            volume: Quantity::ZERO,
        }
    }

    #[test]
    fn validates_ohlc_ordering() {
        assert!(bar("10", "11", "9", "10.5").validate().is_ok());
        assert!(matches!(
            bar("10", "10.2", "9", "10.5").validate(),
            Err(BarError::HighTooLow { .. })
        ));
        assert!(matches!(
            bar("10", "11", "10.1", "10.5").validate(),
            Err(BarError::LowTooHigh { .. })
        ));
        assert!(matches!(
            bar("0", "11", "0", "10.5").validate(),
            Err(BarError::NonPositive { field: "open", .. })
        ));
    }
}
