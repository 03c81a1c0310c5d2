//! Results queries: model-days with their holdings, and the per-model leaderboard.

use chrono::NaiveDate;
use serde::Serialize;
use tradeloom_core::Money;

use crate::model_day::{Holding, ModelDay};

/// Largest page [`crate::Store::results`] returns.
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
    /// Trading actions (buy or sell) of the day.
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

/// A model's standing in a job. Money is exact; the ratios are `f64` statistics.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LeaderboardEntry {
    pub model: String,
    /// Completed model-days in date order.
    pub daily: Vec<DailyValue>,
    pub completed_days: u32,
    pub failed_days: u32,
    /// Buy and sell actions over the job.
    pub trades: u64,
    pub tool_errors: u64,
    pub final_value: Option<Money>,
    /// `final / initial - 1`.
    pub total_return: Option<f64>,
    /// Largest fall from a running peak (starting at the initial value), as a positive fraction.
    pub max_drawdown: Option<f64>,
    /// Mean over sample standard deviation of daily returns, times √252; `None` under two returns
    /// or with zero variance.
    pub sharpe: Option<f64>,
}

/// Statistics over `initial` followed by the daily values.
pub(crate) struct Stats {
    pub total_return: Option<f64>,
    pub max_drawdown: Option<f64>,
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
    let initial = initial.as_f64();
    let values: Vec<f64> = std::iter::once(initial)
        .chain(daily.iter().map(|d| d.value.as_f64()))
        .collect();
    let total_return = (initial != 0.0).then(|| last.value.as_f64() / initial - 1.0);
    let mut peak = f64::MIN;
    let mut max_drawdown = 0.0f64;
    for &v in &values {
        peak = peak.max(v);
        if peak > 0.0 {
            max_drawdown = max_drawdown.max((peak - v) / peak);
        }
    }
    let returns: Vec<f64> = values
        .windows(2)
        .filter(|w| w[0] != 0.0)
        .map(|w| w[1] / w[0] - 1.0)
        .collect();
    let sharpe = if returns.len() >= 2 {
        let n = returns.len() as f64;
        let mean = returns.iter().sum::<f64>() / n;
        let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let sd = var.sqrt();
        (sd > 0.0).then(|| mean / sd * 252f64.sqrt())
    } else {
        None
    };
    Stats {
        total_return,
        max_drawdown: Some(max_drawdown),
        sharpe,
    }
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
        assert!((s.total_return.expect("some") - 0.2).abs() < 1e-12);
        // Peak 11000 → 9900 is a 10% drawdown.
        assert!((s.max_drawdown.expect("some") - 0.1).abs() < 1e-12);
        let r = [0.1, -0.1, 12000.0 / 9900.0 - 1.0];
        let mean = r.iter().sum::<f64>() / 3.0;
        let sd = (r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
        assert!((s.sharpe.expect("some") - mean / sd * 252f64.sqrt()).abs() < 1e-9);
        let none = statistics(initial, &[]);
        assert_eq!(none.total_return, None);
        assert_eq!(statistics(initial, &daily[..1]).sharpe, None);
    }
}
