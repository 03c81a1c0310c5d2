//! The metric a sweep ranks its points by, and which direction is better.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::SweepError;

/// A figure of `metrics.json` a sweep can rank by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Annualised Sharpe ratio; higher is better (the default).
    Sharpe,
    /// Annualised Sortino ratio; higher is better.
    Sortino,
    /// CAGR over the maximum drawdown; higher is better.
    Calmar,
    /// Net PnL as a percentage of the initial cash; higher is better.
    TotalReturnPct,
    /// Compound annual growth rate, percent; higher is better.
    CagrPct,
    /// Largest fall from a running peak, percent; lower is better.
    MaxDrawdownPct,
    /// Annualised volatility, percent; lower is better.
    AnnualVolatilityPct,
    /// Share of winning trades, percent; higher is better.
    WinRatePct,
    /// Gross profit over gross loss; higher is better.
    ProfitFactor,
}

impl Metric {
    pub const ALL: [Metric; 9] = [
        Metric::Sharpe,
        Metric::Sortino,
        Metric::Calmar,
        Metric::TotalReturnPct,
        Metric::CagrPct,
        Metric::MaxDrawdownPct,
        Metric::AnnualVolatilityPct,
        Metric::WinRatePct,
        Metric::ProfitFactor,
    ];

    /// The field name in `metrics.json`.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Sharpe => "sharpe",
            Metric::Sortino => "sortino",
            Metric::Calmar => "calmar",
            Metric::TotalReturnPct => "total_return_pct",
            Metric::CagrPct => "cagr_pct",
            Metric::MaxDrawdownPct => "max_drawdown_pct",
            Metric::AnnualVolatilityPct => "annual_volatility_pct",
            Metric::WinRatePct => "win_rate_pct",
            Metric::ProfitFactor => "profit_factor",
        }
    }

    /// Whether a larger value is better (drawdown and volatility: smaller is better).
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::MaxDrawdownPct | Metric::AnnualVolatilityPct)
    }

    /// `higher is better` or `lower is better`.
    pub fn direction(self) -> &'static str {
        if self.higher_is_better() {
            "higher is better"
        } else {
            "lower is better"
        }
    }

    /// The metric's value in a run's metrics (`None`: not defined for the run, e.g. a Sharpe
    /// ratio without returns).
    pub fn of(self, metrics: &Value) -> Option<f64> {
        metrics
            .get(self.name())
            .and_then(Value::as_f64)
            .filter(|x| x.is_finite())
    }

    /// Whether `a` is strictly better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        if self.higher_is_better() {
            a > b
        } else {
            a < b
        }
    }

    /// Indices of `values` best first: defined values before undefined ones, ties in index
    /// order (so a ranking is the same every time).
    pub fn rank(self, values: &[(usize, Option<f64>)]) -> Vec<usize> {
        let mut sorted: Vec<(usize, Option<f64>)> = values.to_vec();
        sorted.sort_by(|(ia, a), (ib, b)| {
            let by_value = match (a, b) {
                (Some(a), Some(b)) => {
                    let o = a.total_cmp(b);
                    if self.higher_is_better() {
                        o.reverse()
                    } else {
                        o
                    }
                }
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            };
            by_value.then(ia.cmp(ib))
        });
        sorted.into_iter().map(|(i, _)| i).collect()
    }
}

impl std::str::FromStr for Metric {
    type Err = SweepError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == s.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
                SweepError::Syntax(format!(
                    "unknown metric `{s}`; expected one of {}",
                    names.join(", ")
                ))
            })
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranking_follows_the_direction() {
        let values = [(0, Some(1.0)), (1, None), (2, Some(3.0)), (3, Some(1.0))];
        assert_eq!(Metric::Sharpe.rank(&values), [2, 0, 3, 1]);
        assert_eq!(Metric::MaxDrawdownPct.rank(&values), [0, 3, 2, 1]);
        assert!(Metric::MaxDrawdownPct.better(5.0, 10.0));
        assert!(Metric::Sharpe.better(2.0, 1.0));
    }

    #[test]
    fn names_parse() {
        for m in Metric::ALL {
            assert_eq!(m.name().parse::<Metric>().unwrap(), m);
        }
        let e = "sharp".parse::<Metric>().unwrap_err().to_string();
        assert!(
            e.starts_with("unknown metric `sharp`; expected one of sharpe, sortino"),
            "{e}"
        );
        assert_eq!(
            Metric::Sharpe.of(&serde_json::json!({"sharpe": 1.5})),
            Some(1.5)
        );
        assert_eq!(
            Metric::Sharpe.of(&serde_json::json!({"sharpe": null})),
            None
        );
    }
}
