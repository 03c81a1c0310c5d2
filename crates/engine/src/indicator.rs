//! O(1) incremental indicators over fixed-point prices. Each `update` costs a constant number
//! of operations and allocates nothing; buffers are allocated once, at construction.

/// A fixed-size ring of the last `period` raw values with their exact sum (and, when
/// `SQUARES`, the exact sum of their squares).
#[derive(Clone, Debug)]
struct Window<const SQUARES: bool> {
    values: Box<[i64]>,
    next: usize,
    len: usize,
    sum: i128,
    sum_sq: i128,
}

impl<const SQUARES: bool> Window<SQUARES> {
    fn new(period: usize) -> Self {
        Self {
            values: vec![0; period.max(1)].into_boxed_slice(),
            next: 0,
            len: 0,
            sum: 0,
            sum_sq: 0,
        }
    }

    #[inline]
    fn push(&mut self, raw: i64) {
        let cap = self.values.len();
        // The sums in locals, stored once: updated in place around the store into the ring,
        // each bar waited on its own store of the sum (a store-forwarding chain).
        let (mut sum, mut sum_sq) = (self.sum, self.sum_sq);
        let full = self.len == cap;
        let slot = &mut self.values[self.next];
        if full {
            let old = i128::from(*slot);
            sum -= old;
            if SQUARES {
                sum_sq -= old * old;
            }
        } else {
            self.len += 1;
        }
        *slot = raw;
        let v = i128::from(raw);
        self.sum = sum + v;
        if SQUARES {
            self.sum_sq = sum_sq + v * v;
        }
        self.next += 1;
        if self.next == cap {
            self.next = 0;
        }
    }

    fn is_full(&self) -> bool {
        self.len == self.values.len()
    }
}

/// Simple moving average of the last `period` values, computed from an exact integer sum.
#[derive(Clone, Debug)]
pub struct Sma {
    window: Window<false>,
}

impl Sma {
    /// An average of the last `period` values.
    pub fn new(period: usize) -> Self {
        Self {
            window: Window::new(period),
        }
    }

    /// Adds a value (raw at 10^-9), dropping the oldest once the window is full.
    #[inline]
    pub fn update(&mut self, raw: i64) {
        self.window.push(raw);
    }

    /// Defined once `period` values have been seen.
    pub fn is_ready(&self) -> bool {
        self.window.is_full()
    }

    /// The window length.
    pub fn period(&self) -> usize {
        self.window.values.len()
    }

    /// Exact sum of the window (raw units).
    pub fn sum(&self) -> i128 {
        self.window.sum
    }

    /// The mean in price units (for display and statistics).
    pub fn value(&self) -> f64 {
        self.window.sum as f64 / self.window.len.max(1) as f64 / 1e9
    }

    /// Sign of `self − other`, compared exactly by cross-multiplication: −1, 0 or 1.
    #[inline]
    pub fn compare(&self, other: &Sma) -> i32 {
        let a = self.window.sum * other.period() as i128;
        let b = other.window.sum * self.period() as i128;
        (a > b) as i32 - (a < b) as i32
    }
}

/// Exponential moving average with `alpha = 2 / (period + 1)`, seeded with the first value and
/// ready after `period` values (as pandas `ewm(span, adjust=False)` and NautilusTrader).
#[derive(Clone, Debug)]
pub struct Ema {
    alpha: f64,
    value: f64,
    count: usize,
    period: usize,
}

impl Ema {
    /// An average over `period` values.
    pub fn new(period: usize) -> Self {
        Self {
            alpha: 2.0 / (period as f64 + 1.0),
            value: 0.0,
            count: 0,
            period,
        }
    }

    /// Adds a value (raw at 10^-9).
    #[inline]
    pub fn update(&mut self, raw: i64) {
        let x = raw as f64 / 1e9;
        if self.count == 0 {
            self.value = x;
        } else {
            self.value += self.alpha * (x - self.value);
        }
        self.count += 1;
    }

    /// Defined once `period` values have been seen.
    pub fn is_ready(&self) -> bool {
        self.count >= self.period
    }

    /// The average in price units.
    pub fn value(&self) -> f64 {
        self.value
    }
}

/// Rolling mean and sample standard deviation of the last `period` values, from exact integer
/// sums of values and squares.
#[derive(Clone, Debug)]
pub struct RollingStats {
    window: Window<true>,
}

impl RollingStats {
    /// Statistics of the last `period` values.
    pub fn new(period: usize) -> Self {
        Self {
            window: Window::new(period),
        }
    }

    /// Adds a value (raw at 10^-9), dropping the oldest once the window is full.
    #[inline]
    pub fn update(&mut self, raw: i64) {
        self.window.push(raw);
    }

    /// Defined once the window is full (and holds at least 2 values).
    pub fn is_ready(&self) -> bool {
        self.window.is_full() && self.window.len > 1
    }

    /// The mean in price units.
    pub fn mean(&self) -> f64 {
        self.window.sum as f64 / self.window.len.max(1) as f64 / 1e9
    }

    /// Sample standard deviation (n − 1).
    pub fn std(&self) -> f64 {
        let n = self.window.len as i128;
        if n < 2 {
            return 0.0;
        }
        // n·Σx² − (Σx)² is exact and non-negative.
        let numerator = n * self.window.sum_sq - self.window.sum * self.window.sum;
        (numerator as f64 / (n * (n - 1)) as f64).sqrt() / 1e9
    }
}

/// Direction of a crossover of two series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cross {
    /// The fast series crossed above the slow one.
    Up,
    /// The fast series crossed below the slow one.
    Down,
}

/// Detects crossovers from the sign of `fast − slow`: up when it goes from negative to positive
/// between consecutive updates, down for the mirror (a zero difference is neither side, so
/// touching without crossing is not a cross).
#[derive(Clone, Debug, Default)]
pub struct CrossDetector {
    previous: Option<i32>,
}

impl CrossDetector {
    /// A detector whose last sign fed was `previous` (`None`: none yet), e.g. kept elsewhere
    /// between updates.
    pub fn resume(previous: Option<i32>) -> Self {
        Self { previous }
    }

    /// The last sign fed, if any.
    pub fn previous(&self) -> Option<i32> {
        self.previous
    }

    /// Feeds the sign of `fast − slow`; returns the cross, if this update made one.
    #[inline]
    pub fn update(&mut self, sign: i32) -> Option<Cross> {
        let cross = match (self.previous, sign) {
            (Some(-1), 1) => Some(Cross::Up),
            (Some(1), -1) => Some(Cross::Down),
            _ => None,
        };
        self.previous = Some(sign);
        cross
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on an unexpected error
mod tests {
    use super::*;

    const UNIT: i64 = 1_000_000_000;

    #[test]
    fn sma_is_the_mean_of_the_last_n() {
        let mut sma = Sma::new(3);
        for v in [1, 2, 3, 4] {
            sma.update(v * UNIT);
        }
        assert!(sma.is_ready());
        assert_eq!(sma.value(), 3.0);
        assert_eq!(sma.sum(), i128::from(9 * UNIT));
    }

    #[test]
    fn sma_compare_is_exact() {
        let mut a = Sma::new(2);
        let mut b = Sma::new(3);
        for v in [3, 3, 3] {
            a.update(v * UNIT);
            b.update(v * UNIT);
        }
        assert_eq!(a.compare(&b), 0);
        a.update(4 * UNIT);
        b.update(4 * UNIT);
        assert_eq!(a.compare(&b), 1);
    }

    #[test]
    fn ema_matches_the_recursive_definition() {
        let mut ema = Ema::new(3);
        for v in [2, 4, 6] {
            ema.update(v * UNIT);
        }
        // alpha 0.5: 2 → 3 → 4.5
        assert!(ema.is_ready());
        assert!((ema.value() - 4.5).abs() < 1e-12);
    }

    #[test]
    fn rolling_std_is_the_sample_deviation() {
        let mut stats = RollingStats::new(4);
        for v in [2, 4, 4, 4, 5] {
            stats.update(v * UNIT);
        }
        // last four: 4, 4, 4, 5 → mean 4.25, sample var 0.25
        assert!((stats.mean() - 4.25).abs() < 1e-12);
        assert!((stats.std() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn crosses_need_a_sign_change() {
        let mut c = CrossDetector::default();
        assert_eq!(c.update(-1), None);
        assert_eq!(c.update(0), None);
        assert_eq!(
            c.update(1),
            None,
            "touching from below via zero is not a strict cross"
        );
        assert_eq!(c.update(-1), Some(Cross::Down));
        assert_eq!(c.update(1), Some(Cross::Up));
    }
}
