//! Results queries: model-days with their holdings, and the per-model leaderboard.

use chrono::NaiveDate;
use serde::Serialize;
use tradeloom_core::Money;

use crate::model_day::{Holding, ModelDay};

/// Largest page [`crate::ResultStore::results`] returns.
pub const MAX_PAGE: u32 = 1000;

/// Which model-days to return; every set field must match. Ordered by date, model, job.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResultsFilter {
    pub job_id: Option<String>,
    pub model: Option<String>,
    pub date: Option<NaiveDate>,
    /// Only completed model-days (those with results); otherwise every status.
    pub completed_only: bool,
    /// Page size, 1..=[`MAX_PAGE`] (0 means 100).
    pub limit: u32,
    pub offset: u64,
}

/// One model-day with its end-of-day holdings.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelDayResult {
    #[serde(flatten)]
    pub model_day: ModelDay,
    /// Trading actions (buy or sell) of the day; 0 when not counted
    /// ([`crate::ResultStore::results_page`] without `count_trades`).
    pub trades: u32,
    pub holdings: Vec<Holding>,
}

/// A page of results and the number of all matches.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResultsPage {
    pub items: Vec<ModelDayResult>,
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
}

/// A model's end-of-day portfolio value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DailyValue {
    pub date: NaiveDate,
    pub value: Money,
}

/// Decimal places of a [`Ratio`].
pub const RATIO_DECIMALS: u8 = 10;

/// A ratio of two money amounts (a return, a drawdown) as a fixed-point decimal: exact when it
/// has at most [`RATIO_DECIMALS`] decimal places, otherwise rounded half away from zero to
/// them. Serialized as a decimal string without trailing zeros (`"0.016986"`), so no binary
/// floating-point noise reaches a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ratio {
    /// The value × 10^RATIO_DECIMALS.
    raw: i128,
}

impl Ratio {
    /// `numerator ÷ denominator` (raw values at the same scale); `None` for a zero
    /// denominator or a quotient beyond the range.
    pub fn of(numerator: i128, denominator: i128) -> Option<Ratio> {
        if denominator == 0 {
            return None;
        }
        let negative = (numerator < 0) != (denominator < 0);
        let (n, d) = (numerator.unsigned_abs(), denominator.unsigned_abs());
        // Long division, one decimal digit at a time: the remainder stays below `d`, so
        // nothing overflows however large the amounts are.
        let mut raw = n / d;
        let mut rem = n % d;
        for _ in 0..RATIO_DECIMALS {
            rem = rem.checked_mul(10)?;
            raw = raw.checked_mul(10)?.checked_add(rem / d)?;
            rem %= d;
        }
        // Half away from zero: round up when the remainder is at least half the divisor.
        if rem >= d - rem {
            raw = raw.checked_add(1)?;
        }
        let raw = i128::try_from(raw).ok()?;
        Some(Ratio {
            raw: if negative { -raw } else { raw },
        })
    }

    /// The value × 10^[`RATIO_DECIMALS`].
    pub const fn raw(self) -> i128 {
        self.raw
    }

    /// For statistics (the Sharpe ratio) only.
    pub fn as_f64(self) -> f64 {
        self.raw as f64 / 10f64.powi(i32::from(RATIO_DECIMALS))
    }
}

impl std::fmt::Display for Ratio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&tradeloom_core::fixed::format_raw(
            self.raw,
            RATIO_DECIMALS,
            0,
        ))
    }
}

impl Serialize for Ratio {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A model's standing in a job. Money and ratios are exact decimals; the Sharpe ratio is an
/// `f64` statistic rounded to 6 decimal places.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LeaderboardEntry {
    pub model: String,
    /// Completed model-days in date order.
    pub daily: Vec<DailyValue>,
    pub completed_days: u32,
    pub failed_days: u32,
    /// Days the kill switch refused (they run again on the next trigger).
    pub refused_days: u32,
    /// Buy and sell actions over the job.
    pub trades: u64,
    /// Tool calls the model made over the job, failed days included.
    pub tool_calls: u64,
    /// Tool calls that returned an error over the job, failed days included.
    pub tool_errors: u64,
    pub final_value: Option<Money>,
    /// `final / initial - 1`.
    pub total_return: Option<Ratio>,
    /// Largest fall from a running peak (starting at the initial value), as a positive fraction.
    pub max_drawdown: Option<Ratio>,
    /// Mean over sample standard deviation of daily returns, times √252, rounded to 6 decimal
    /// places; `None` under two returns or with zero variance.
    pub sharpe: Option<f64>,
}

/// Statistics over `initial` followed by the daily values.
pub(crate) struct Stats {
    pub total_return: Option<Ratio>,
    pub max_drawdown: Option<Ratio>,
    pub sharpe: Option<f64>,
}

pub(crate) fn statistics(initial: Money, daily: &[DailyValue]) -> Stats {
    let Some(last) = daily.last() else {
        return Stats {
            total_return: None,
            max_drawdown: None,
            sharpe: None,
        };
    };
    let values: Vec<i128> = std::iter::once(initial.raw())
        .chain(daily.iter().map(|d| d.value.raw()))
        .collect();
    let initial = initial.raw();
    let total_return = last
        .value
        .raw()
        .checked_sub(initial)
        .and_then(|gain| Ratio::of(gain, initial));
    let mut peak = i128::MIN;
    let mut max_drawdown = Some(Ratio { raw: 0 });
    for &v in &values {
        peak = peak.max(v);
        if peak > 0 {
            let fall = peak.checked_sub(v).and_then(|fall| Ratio::of(fall, peak));
            max_drawdown = match (max_drawdown, fall) {
                (Some(m), Some(f)) => Some(m.max(f)),
                _ => None,
            };
        }
    }
    let returns: Vec<f64> = values
        .windows(2)
        .filter(|w| w[0] != 0)
        .filter_map(|w| w[1].checked_sub(w[0]).and_then(|d| Ratio::of(d, w[0])))
        .map(Ratio::as_f64)
        .collect();
    let sharpe = if returns.len() >= 2 {
        let n = returns.len() as f64;
        let mean = returns.iter().sum::<f64>() / n;
        let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let sd = var.sqrt();
        (sd > 0.0).then(|| round6(mean / sd * 252f64.sqrt()))
    } else {
        None
    };
    Stats {
        total_return,
        max_drawdown,
        sharpe,
    }
}

/// Rounded to 6 decimal places, so that the JSON number prints without binary noise.
fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use tradeloom_core::Currency;

    fn day(d: u32, v: &str) -> DailyValue {
        DailyValue {
            date: NaiveDate::from_ymd_opt(2025, 1, d).expect("valid test date"),
            value: Money::parse(v, Currency::USD).expect("valid test amount"),
        }
    }

    #[test]
    fn return_drawdown_sharpe() {
        let initial = Money::parse("10000", Currency::USD).expect("valid");
        let daily = [day(2, "11000"), day(3, "9900"), day(6, "12000")];
        let s = statistics(initial, &daily);
        assert_eq!(s.total_return.expect("some").to_string(), "0.2");
        // Peak 11000 → 9900 is a 10% drawdown.
        assert_eq!(s.max_drawdown.expect("some").to_string(), "0.1");
        let r = [0.1, -0.1, 0.2121212121];
        let mean = r.iter().sum::<f64>() / 3.0;
        let sd = (r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
        assert_eq!(s.sharpe.expect("some"), round6(mean / sd * 252f64.sqrt()));
        let none = statistics(initial, &[]);
        assert_eq!(none.total_return, None);
        assert_eq!(statistics(initial, &daily[..1]).sharpe, None);
    }

    #[test]
    fn returns_are_exact_decimals_without_float_noise() {
        // 10169.86 / 10000 - 1 is 0.016986000000000168 in binary floating point.
        let initial = Money::parse("10000", Currency::USD).expect("valid");
        let s = statistics(initial, &[day(2, "10169.86")]);
        let text = serde_json::to_string(&s.total_return).expect("serializes");
        assert_eq!(text, "\"0.016986\"");
        assert_eq!(s.max_drawdown.expect("some").to_string(), "0");
        let loss = statistics(initial, &[day(2, "9000.005")]);
        assert_eq!(loss.total_return.expect("some").to_string(), "-0.0999995");
        assert_eq!(loss.max_drawdown.expect("some").to_string(), "0.0999995");
    }

    #[test]
    fn ratios_round_half_away_from_zero_at_ten_places() {
        let r = |n, d| Ratio::of(n, d).expect("in range").to_string();
        assert_eq!(r(1, 3), "0.3333333333");
        assert_eq!(r(2, 3), "0.6666666667");
        assert_eq!(r(-2, 3), "-0.6666666667");
        assert_eq!(r(1, 2), "0.5");
        assert_eq!(
            r(5, 100_000_000_000),
            "0.0000000001",
            "half of the last place rounds up"
        );
        assert_eq!(r(-5, 100_000_000_000), "-0.0000000001");
        assert_eq!(r(4, 100_000_000_000), "0");
        assert_eq!(Ratio::of(1, 0), None);
        // Amounts near the top of the money range divide without overflow.
        assert_eq!(r(i128::MAX / 2, i128::MAX / 4), "2");
    }
}
