//! Named fill models and the documented intrabar price path.
//!
//! * `bar_close` — a market order submitted while a bar is processed fills at that bar's close
//!   (NautilusTrader's behaviour with bar data).
//! * `next_open` — a market order fills at the open of the next bar of its instrument
//!   (backtesting.py's default); one submitted on the last bar never fills.
//!
//! Limit and stop orders rest from the bar after the one they were submitted on (with
//! `bar_close`, one that is already marketable against the close fills at the close). On each bar
//! the venue walks the path **open → nearer extreme → farther extreme → close**, where the
//! extreme nearer the open is visited first and a tie visits the high first. A resting order
//! that the open has already gone through fills at the open (a gap gives the better price to
//! limits and the worse one to stops, as on a real venue); otherwise it fills at its own price
//! where the path crosses it.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tradeloom_core::{Bar, Price};

/// When market orders fill, see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FillModel {
    /// Fill at the close of the bar the order was submitted on.
    BarClose,
    /// Fill at the open of the next bar.
    #[default]
    NextOpen,
}

impl FillModel {
    /// The name used in run specs and journals (`bar_close`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            FillModel::BarClose => "bar_close",
            FillModel::NextOpen => "next_open",
        }
    }
}

impl fmt::Display for FillModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The four points a bar is assumed to trade through, in order.
pub fn intrabar_path(bar: &Bar) -> [Price; 4] {
    let up = bar.high.raw() - bar.open.raw();
    let down = bar.open.raw() - bar.low.raw();
    if up <= down {
        [bar.open, bar.high, bar.low, bar.close]
    } else {
        [bar.open, bar.low, bar.high, bar.close]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on an unexpected error
mod tests {
    use super::*;
    use tradeloom_core::{InstrumentId, Quantity, UnixNanos};

    #[test]
    fn visits_the_nearer_extreme_first() {
        let p = |s: &str| Price::parse(s, 2).unwrap();
        let mut bar = Bar {
            instrument: InstrumentId(0),
            ts: UnixNanos(0),
            open: p("10"),
            high: p("11"),
            low: p("8"),
            close: p("9"),
            volume: Quantity::ZERO,
        };
        assert_eq!(intrabar_path(&bar), [p("10"), p("11"), p("8"), p("9")]);
        bar.high = p("13");
        assert_eq!(intrabar_path(&bar), [p("10"), p("8"), p("13"), p("9")]);
    }

    #[test]
    fn parses_names_with_a_helpful_error() {
        let err = serde_json::from_str::<FillModel>("\"close\"").unwrap_err();
        assert!(
            err.to_string()
                .contains("expected `bar_close` or `next_open`"),
            "{err}"
        );
    }
}
