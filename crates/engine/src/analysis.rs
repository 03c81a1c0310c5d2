//! Performance analysis, computed while the run streams: equity and drawdown per timestamp,
//! daily returns, trade statistics. Memory is constant in the number of bars.
//!
//! Conventions (documented in the README):
//! * returns are **daily**: the last equity of each UTC day against the previous day's (the
//!   first day against the initial cash);
//! * annualisation uses 252 periods a year, or 365 when the data has bars on weekends (crypto);
//! * Sharpe and Sortino assume a zero risk-free rate; volatility and Sharpe use the sample
//!   standard deviation; Sortino's downside deviation is `sqrt(mean(min(r, 0)²))`;
//! * CAGR uses calendar time between the first and last bar (365.25-day years);
//! * max drawdown is the largest fall from a running peak of equity; its duration is the longest
//!   time spent below a previous peak;
//! * trade statistics count closed round trips on net PnL (after fees);
//! * exposure is the share of timestamps that end with an open position.

use serde::Serialize;
use tradeloom_core::time::NANOS_PER_DAY;
use tradeloom_core::{Currency, Money, UnixNanos};

use crate::trade::Trade;

/// Equity after the last bar of a timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct EquityPoint {
    /// The timestamp.
    pub ts: UnixNanos,
    /// Cash after the timestamp.
    pub cash: Money,
    /// Cash plus positions at the last closes.
    pub equity: Money,
    /// Fall from the running peak, in percent (≥ 0).
    pub drawdown_pct: f64,
    /// Σ |position × close| across instruments.
    pub gross_exposure: Money,
}

/// The figures of `metrics.json`. Money as exact decimal strings; ratios and percentages as
/// numbers rounded to 6 decimals; `null` where a figure is undefined (no trades, no losses, a
/// zero deviation).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metrics {
    /// First bar's timestamp.
    pub start: Option<UnixNanos>,
    /// Last bar's timestamp.
    pub end: Option<UnixNanos>,
    /// Bars processed.
    pub bars: u64,
    /// Cash at the start.
    pub initial_cash: Money,
    /// Equity after the last bar.
    pub final_equity: Money,
    /// `final_equity − initial_cash`.
    pub net_pnl: Money,
    /// Net PnL as a percentage of initial cash.
    pub total_return_pct: f64,
    /// Compound annual growth rate, percent; `None` for a span under a day.
    pub cagr_pct: Option<f64>,
    /// Annualised standard deviation of period returns, percent.
    pub annual_volatility_pct: Option<f64>,
    /// Annualised Sharpe ratio (risk-free rate 0).
    pub sharpe: Option<f64>,
    /// Annualised Sortino ratio (downside deviation).
    pub sortino: Option<f64>,
    /// Largest fall of equity from a running peak, percent.
    pub max_drawdown_pct: f64,
    /// Longest time below a previous peak, in days.
    pub max_drawdown_duration_days: f64,
    /// CAGR divided by the maximum drawdown.
    pub calmar: Option<f64>,
    /// Closed round trips.
    pub trades: u64,
    /// Share of closed trades with a positive net PnL, percent.
    pub win_rate_pct: Option<f64>,
    /// Gross profit of winners over gross loss of losers.
    pub profit_factor: Option<f64>,
    /// Mean net PnL per closed trade.
    pub avg_trade: Option<Money>,
    /// Largest net PnL of a closed trade.
    pub best_trade: Option<Money>,
    /// Smallest net PnL of a closed trade.
    pub worst_trade: Option<Money>,
    /// Share of timestamps with an open position, percent.
    pub exposure_pct: f64,
    /// Fees paid.
    pub fees: Money,
    /// Σ |fill notional|.
    pub turnover: Money,
    /// Orders submitted.
    pub orders: u64,
    /// Fills.
    pub fills: u64,
    /// Orders rejected.
    pub rejected_orders: u64,
    /// Periods per year used to annualise (from the bar spacing).
    pub periods_per_year: u32,
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// How far `x` is below `peak`, in percent of `peak` (0 at or above it, or without a positive
/// peak).
#[inline]
fn fall_pct(peak: f64, x: f64) -> f64 {
    if x >= peak || peak <= 0.0 {
        0.0
    } else {
        (peak - x) / peak * 100.0
    }
}

/// A raw amount below which every amount converts ([`Money::as_f64`]) to a float strictly
/// below that of `peak_raw`. Two amounts with the same float differ by at most a few units in
/// the last place of their 53-bit mantissa (relative 2^-50) plus the rounding of the low 64
/// bits (2^12 raw units); the margin here is 2^-32 of the peak plus 2^48 raw units (0.00028
/// units of money), far wider than that.
fn near_peak_raw(peak_raw: i128) -> i128 {
    let margin = (peak_raw.unsigned_abs() >> 32) as i128 + (1 << 48);
    peak_raw.saturating_sub(margin)
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then(|| round6(x))
}

/// The streaming accumulator behind [`Metrics`].
#[derive(Clone, Debug)]
pub(crate) struct Analyzer {
    currency: Currency,
    initial: Money,
    start: Option<UnixNanos>,
    end: Option<UnixNanos>,
    points: u64,
    exposed_points: u64,
    // drawdown: the peak as a float (as [`Money::as_f64`] converts it, the figure every
    // percentage is computed from) and as the raw amount it was converted from, so that most
    // points are compared in integers; see [`Analyzer::is_new_peak`].
    peak: f64,
    peak_raw: i128,
    /// Raw amounts at or below this convert to a float below `peak` (see [`near_peak_raw`]).
    near_peak_raw: i128,
    peak_ts: UnixNanos,
    /// The lowest equity (raw) since `peak` was set: the deepest drawdown under this peak,
    /// folded into `max_dd` when a new peak starts (one conversion and division per peak
    /// instead of one per point; the conversion is monotonic, so the float of the lowest raw
    /// amount is the lowest float).
    trough_raw: i128,
    max_dd: f64,
    max_dd_duration: i64,
    // daily returns (Welford)
    day: Option<i64>,
    /// `[start, end)` of `day` in nanoseconds: most points fall in the current day, and this
    /// spares them the divisions of `day_index` and `weekday`.
    day_span: (i64, i64),
    /// The last equity (raw) of `day`, converted when the day's return is taken.
    day_close_raw: i128,
    prev_close: f64,
    n_returns: u64,
    mean: f64,
    m2: f64,
    downside_sq: f64,
    weekend: bool,
    // trades
    trades: u64,
    wins: u64,
    gross_profit: i128,
    gross_loss: i128,
    sum_pnl: i128,
    best: Option<i128>,
    worst: Option<i128>,
    pub(crate) turnover: i128,
}

impl Analyzer {
    pub(crate) fn new(initial: Money) -> Self {
        let x = initial.as_f64();
        Self {
            currency: initial.currency(),
            initial,
            start: None,
            end: None,
            points: 0,
            exposed_points: 0,
            peak: x,
            peak_raw: initial.raw(),
            near_peak_raw: near_peak_raw(initial.raw()),
            peak_ts: UnixNanos(0),
            trough_raw: initial.raw(),
            max_dd: 0.0,
            max_dd_duration: 0,
            day: None,
            day_span: (0, 0),
            day_close_raw: initial.raw(),
            prev_close: x,
            n_returns: 0,
            mean: 0.0,
            m2: 0.0,
            downside_sq: 0.0,
            weekend: false,
            trades: 0,
            wins: 0,
            gross_profit: 0,
            gross_loss: 0,
            sum_pnl: 0,
            best: None,
            worst: None,
            turnover: 0,
        }
    }

    fn push_return(&mut self, close: f64) {
        let r = if self.prev_close != 0.0 {
            close / self.prev_close - 1.0
        } else {
            0.0
        };
        self.prev_close = close;
        self.n_returns += 1;
        let delta = r - self.mean;
        self.mean += delta / self.n_returns as f64;
        self.m2 += delta * (r - self.mean);
        if r < 0.0 {
            self.downside_sq += r * r;
        }
    }

    /// Records equity at the end of a timestamp. Integer comparisons only, but for a new peak
    /// (and the first point of a day): every figure is the one the float of each point would
    /// give (a property test checks this against the conversion per point).
    #[inline]
    pub(crate) fn on_equity(&mut self, ts: UnixNanos, equity: Money, exposed: bool) {
        let raw = equity.raw();
        if self.start.is_none() {
            self.start = Some(ts);
            self.peak_ts = ts;
        }
        self.end = Some(ts);
        self.points += 1;
        self.exposed_points += u64::from(exposed);
        if self.day.is_none() || ts.0 < self.day_span.0 || ts.0 >= self.day_span.1 {
            let day = ts.0.div_euclid(NANOS_PER_DAY);
            match self.day {
                Some(d) if d == day => {}
                Some(_) => {
                    let close = self.money_f64(self.day_close_raw);
                    self.push_return(close);
                    self.day = Some(day);
                }
                None => self.day = Some(day),
            }
            let start = day * NANOS_PER_DAY;
            self.day_span = (start, start + NANOS_PER_DAY);
            if ts.weekday() >= 5 {
                self.weekend = true;
            }
        }
        self.day_close_raw = raw;
        if let Some(x) = self.is_new_peak(raw) {
            self.settle_trough();
            self.peak = x;
            self.peak_raw = raw;
            self.near_peak_raw = near_peak_raw(raw);
            self.trough_raw = raw;
            self.peak_ts = ts;
        } else {
            self.trough_raw = self.trough_raw.min(raw);
            let duration = ts.0 - self.peak_ts.0;
            if duration > self.max_dd_duration {
                self.max_dd_duration = duration;
            }
        }
    }

    /// The float of equity `raw` when it is at or above the peak as floats compare (`x ≥
    /// peak`), `None` when below. The conversion is monotonic, so a raw amount at or above
    /// `peak_raw` is a new peak and one at or below `near_peak_raw` is not; only in between
    /// (within a few float steps of the peak) are the floats compared.
    #[inline]
    fn is_new_peak(&self, raw: i128) -> Option<f64> {
        if raw >= self.peak_raw {
            return Some(self.money_f64(raw));
        }
        if raw <= self.near_peak_raw {
            return None;
        }
        let x = self.money_f64(raw);
        (x >= self.peak).then_some(x)
    }

    #[inline]
    fn money_f64(&self, raw: i128) -> f64 {
        Money::from_raw(raw, self.currency).as_f64()
    }

    /// The drawdown of `equity` from the running peak in percent (≥ 0), after
    /// [`Analyzer::on_equity`] recorded it.
    #[inline]
    pub(crate) fn drawdown_pct(&self, equity: Money) -> f64 {
        fall_pct(self.peak, equity.as_f64())
    }

    /// Folds the deepest drawdown under the current peak into the maximum. The fall in percent
    /// only grows as equity falls (each rounded step of [`fall_pct`] is monotonic), so the
    /// drawdown at the trough is exactly the largest of that peak's points.
    fn settle_trough(&mut self) {
        let dd = fall_pct(self.peak, self.money_f64(self.trough_raw));
        if dd > self.max_dd {
            self.max_dd = dd;
        }
    }

    pub(crate) fn on_trade(&mut self, trade: &Trade) {
        let pnl = trade.net_pnl.raw();
        self.trades += 1;
        if pnl > 0 {
            self.wins += 1;
            self.gross_profit += pnl;
        } else {
            self.gross_loss -= pnl;
        }
        self.sum_pnl += pnl;
        self.best = Some(self.best.map_or(pnl, |b| b.max(pnl)));
        self.worst = Some(self.worst.map_or(pnl, |w| w.min(pnl)));
    }

    /// Final figures.
    pub(crate) fn finish(
        &mut self,
        final_equity: Money,
        fees: Money,
        bars: u64,
        orders: u64,
        fills: u64,
        rejected: u64,
    ) -> Metrics {
        if self.day.is_some() {
            let close = self.money_f64(self.day_close_raw);
            self.push_return(close);
            self.day = None;
        }
        self.settle_trough();
        let money = |raw: i128| Money::from_raw(raw, self.currency);
        let initial = self.initial.as_f64();
        let fin = final_equity.as_f64();
        let total_return = if initial != 0.0 {
            fin / initial - 1.0
        } else {
            0.0
        };
        let periods: u32 = if self.weekend { 365 } else { 252 };
        let years = match (self.start, self.end) {
            (Some(s), Some(e)) if e.0 > s.0 => (e.0 - s.0) as f64 / (365.25 * NANOS_PER_DAY as f64),
            _ => 0.0,
        };
        let cagr = if years > 0.0 && initial > 0.0 && fin > 0.0 {
            Some((fin / initial).powf(1.0 / years) - 1.0)
        } else {
            None
        };
        let (vol, sharpe, sortino) = if self.n_returns >= 2 {
            let var = self.m2 / (self.n_returns - 1) as f64;
            let std = var.sqrt();
            let ann = f64::from(periods).sqrt();
            let downside = (self.downside_sq / self.n_returns as f64).sqrt();
            (
                Some(std * ann * 100.0),
                (std > 0.0).then(|| self.mean / std * ann),
                (downside > 0.0).then(|| self.mean / downside * ann),
            )
        } else {
            (None, None, None)
        };
        let calmar = match cagr {
            Some(c) if self.max_dd > 0.0 => Some(c / (self.max_dd / 100.0)),
            _ => None,
        };
        let trades = self.trades;
        Metrics {
            start: self.start,
            end: self.end,
            bars,
            initial_cash: self.initial,
            final_equity,
            net_pnl: money(final_equity.raw() - self.initial.raw()),
            total_return_pct: round6(total_return * 100.0),
            cagr_pct: cagr.and_then(|c| finite(c * 100.0)),
            annual_volatility_pct: vol.and_then(finite),
            sharpe: sharpe.and_then(finite),
            sortino: sortino.and_then(finite),
            max_drawdown_pct: round6(self.max_dd),
            max_drawdown_duration_days: round6(self.max_dd_duration as f64 / NANOS_PER_DAY as f64),
            calmar: calmar.and_then(finite),
            trades,
            win_rate_pct: (trades > 0).then(|| round6(self.wins as f64 / trades as f64 * 100.0)),
            profit_factor: (self.gross_loss > 0)
                .then(|| round6(self.gross_profit as f64 / self.gross_loss as f64)),
            avg_trade: (trades > 0).then(|| money(self.sum_pnl / i128::from(trades)).rounded()),
            best_trade: self.best.map(money),
            worst_trade: self.worst.map(money),
            exposure_pct: if self.points > 0 {
                round6(self.exposed_points as f64 / self.points as f64 * 100.0)
            } else {
                0.0
            },
            fees,
            turnover: money(self.turnover),
            orders,
            fills,
            rejected_orders: rejected,
            periods_per_year: periods,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on an unexpected error
mod tests {
    use super::*;

    fn usd(units: i64) -> Money {
        Money::from_raw(i128::from(units) * 1_000_000_000_000_000_000, Currency::USD)
    }

    fn day(n: i64) -> UnixNanos {
        // 2024-01-01 was a Monday; skip weekends by using weekdays only in callers.
        UnixNanos(UnixNanos::from_date(2024, 1, 1).map_or(0, |t| t.0) + n * NANOS_PER_DAY)
    }

    #[test]
    fn drawdown_and_duration() {
        let mut a = Analyzer::new(usd(100));
        a.on_equity(day(0), usd(100), false);
        assert_eq!(a.drawdown_pct(usd(100)), 0.0);
        a.on_equity(day(1), usd(120), true);
        assert_eq!(a.drawdown_pct(usd(120)), 0.0);
        a.on_equity(day(2), usd(90), true);
        assert!((a.drawdown_pct(usd(90)) - 25.0).abs() < 1e-12);
        a.on_equity(day(3), usd(110), true);
        assert!((a.drawdown_pct(usd(110)) - 100.0 / 12.0).abs() < 1e-12);
        a.on_equity(day(4), usd(121), false);
        let m = a.finish(usd(121), usd(0), 5, 0, 0, 0);
        assert_eq!(m.max_drawdown_pct, 25.0);
        assert_eq!(m.max_drawdown_duration_days, 2.0);
        assert_eq!(m.total_return_pct, 21.0);
        assert_eq!(m.exposure_pct, 60.0);
        assert_eq!(m.periods_per_year, 252);
    }

    #[test]
    fn sharpe_from_daily_returns() {
        let mut a = Analyzer::new(usd(100));
        // returns: +10 %, −10 %, +10 % (first day against initial cash)
        a.on_equity(day(0), usd(110), true);
        a.on_equity(day(1), usd(99), true);
        a.on_equity(
            day(2),
            Money::from_raw(1089 * 100_000_000_000_000_000, Currency::USD),
            true,
        );
        let m = a.finish(
            Money::from_raw(1089 * 100_000_000_000_000_000, Currency::USD),
            usd(0),
            3,
            0,
            0,
            0,
        );
        let mean: f64 = 0.1 / 3.0;
        let std = ((2.0 * (0.1 - mean).powi(2) + (-0.1 - mean).powi(2)) / 2.0).sqrt();
        let expected = mean / std * 252f64.sqrt();
        assert!((m.sharpe.unwrap() - round6(expected)).abs() < 1e-9, "{m:?}");
        assert!(m.profit_factor.is_none(), "no trades, no profit factor");
    }

    /// The figures that depend on the float of each point, as computed before the integer
    /// comparisons: a float per point for the peak, the trough and the day's close.
    struct FloatReference {
        peak: f64,
        peak_ts: i64,
        trough: f64,
        max_dd: f64,
        max_dd_duration: i64,
        day: Option<i64>,
        day_close: f64,
        closes: Vec<f64>,
    }

    impl FloatReference {
        fn new(initial: Money) -> Self {
            let x = initial.as_f64();
            Self {
                peak: x,
                peak_ts: 0,
                trough: x,
                max_dd: 0.0,
                max_dd_duration: 0,
                day: None,
                day_close: x,
                closes: Vec::new(),
            }
        }

        fn on_equity(&mut self, ts: UnixNanos, equity: Money) -> f64 {
            let x = equity.as_f64();
            if self.day.is_none() {
                self.peak_ts = ts.0;
            }
            let day = ts.0.div_euclid(NANOS_PER_DAY);
            if self.day.is_some_and(|d| d != day) {
                self.closes.push(self.day_close);
            }
            self.day = Some(day);
            self.day_close = x;
            if x >= self.peak {
                self.max_dd = self.max_dd.max(fall_pct(self.peak, self.trough));
                self.peak = x;
                self.trough = x;
                self.peak_ts = ts.0;
            } else {
                self.trough = self.trough.min(x);
                self.max_dd_duration = self.max_dd_duration.max(ts.0 - self.peak_ts);
            }
            fall_pct(self.peak, x)
        }
    }

    /// Equity paths that walk around the peak by a few raw units and by amounts that round to
    /// the same float as the peak, the cases the integer comparisons must decide as floats do.
    fn near_peak_path() -> impl proptest::strategy::Strategy<Value = Vec<(u8, i64)>> {
        proptest::collection::vec((0u8..4, -40i64..40), 1..300)
    }

    proptest::proptest! {
        #[test]
        fn integer_comparisons_give_the_figures_of_a_float_per_point(
            initial in 1i64..10_000_000,
            path in near_peak_path(),
        ) {
            let unit = 1_000_000_000_000_000_000i128;
            let initial = Money::from_raw(i128::from(initial) * unit, Currency::USD);
            let mut a = Analyzer::new(initial);
            let mut r = FloatReference::new(initial);
            let mut raw = initial.raw();
            for (k, (kind, step)) in path.iter().enumerate() {
                let step = i128::from(*step);
                raw = match kind {
                    // Raw units: below the float's resolution.
                    0 => raw + step,
                    // Around the last float step of the amount (2^-52 of it).
                    1 => raw + step * (raw.abs() >> 52).max(1),
                    // Cents.
                    2 => raw + step * unit / 100,
                    // Back to exactly the peak, or a step off it.
                    _ => a.peak_raw + step.signum(),
                };
                let equity = Money::from_raw(raw, Currency::USD);
                // Several points a day, so that day closes and peaks interleave.
                let ts = day(k as i64 / 3);
                a.on_equity(ts, equity, true);
                let expected_dd = r.on_equity(ts, equity);
                proptest::prop_assert_eq!(a.drawdown_pct(equity), expected_dd);
                proptest::prop_assert_eq!(a.peak, r.peak);
            }
            let m = a.finish(Money::from_raw(raw, Currency::USD), usd(0), path.len() as u64, 0, 0, 0);
            r.max_dd = r.max_dd.max(fall_pct(r.peak, r.trough));
            proptest::prop_assert_eq!(m.max_drawdown_pct, round6(r.max_dd));
            proptest::prop_assert_eq!(
                m.max_drawdown_duration_days,
                round6(r.max_dd_duration as f64 / NANOS_PER_DAY as f64)
            );
            // The returns: every day's close as a float, in order.
            r.closes.push(r.day_close);
            let mut reference = Analyzer::new(initial);
            for close in &r.closes {
                reference.push_return(*close);
            }
            proptest::prop_assert_eq!(a.n_returns, reference.n_returns);
            proptest::prop_assert_eq!(a.mean, reference.mean);
            proptest::prop_assert_eq!(a.m2, reference.m2);
            proptest::prop_assert_eq!(a.downside_sq, reference.downside_sq);
        }
    }

    #[test]
    fn amounts_that_convert_to_the_peak_float_are_peaks() {
        // A raw amount a unit below the peak converts to the same float: as floats compare,
        // it is a new peak (its drawdown 0), and the drawdown duration does not grow.
        let peak = Money::from_raw(123_456_789_000_000_000_000_000, Currency::USD);
        let below = Money::from_raw(peak.raw() - 1, Currency::USD);
        assert_eq!(peak.as_f64(), below.as_f64());
        let mut a = Analyzer::new(peak);
        a.on_equity(day(0), below, true);
        a.on_equity(day(1), below, true);
        assert_eq!(a.peak_raw, below.raw());
        assert_eq!(a.peak_ts, day(1));
        let m = a.finish(below, usd(0), 2, 0, 0, 0);
        assert_eq!(m.max_drawdown_duration_days, 0.0);
    }

    proptest::proptest! {
        #[test]
        fn max_drawdown_is_the_largest_point_drawdown(
            moves in proptest::collection::vec(-40i64..40, 1..200),
        ) {
            let mut a = Analyzer::new(usd(100));
            let mut equity = 100i64;
            let mut largest = 0.0f64;
            for (k, step) in moves.iter().enumerate() {
                equity = (equity + step).max(1);
                a.on_equity(day(k as i64), usd(equity), true);
                largest = largest.max(a.drawdown_pct(usd(equity)));
            }
            let m = a.finish(usd(equity), usd(0), moves.len() as u64, 0, 0, 0);
            proptest::prop_assert_eq!(m.max_drawdown_pct, round6(largest));
        }
    }
}
