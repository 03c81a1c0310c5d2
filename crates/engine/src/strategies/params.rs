//! [`StrategyError`] and the checks the built-in strategies share.

use tradeloom_core::{Decimal, Instrument, Quantity};

/// A strategy parameter that does not fit the strategy or the instrument; shown as
/// `strategy.params.<param>: <message>`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("strategy.params.{param}: {message}")]
pub struct StrategyError {
    /// The parameter (`slow`, `quantity`, …).
    pub param: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl StrategyError {
    pub(crate) fn new(param: &'static str, message: impl Into<String>) -> Self {
        Self {
            param,
            message: message.into(),
        }
    }
}

/// A positive order quantity from a parameter, checked against the instrument.
pub(crate) fn order_quantity(
    value: Decimal,
    instrument: &Instrument,
) -> Result<Quantity, StrategyError> {
    let q = value
        .to_quantity(instrument.size_precision)
        .map_err(|e| StrategyError::new("quantity", e.to_string()))?;
    if q.is_zero() {
        return Err(StrategyError::new("quantity", "must be positive"));
    }
    Ok(q)
}
