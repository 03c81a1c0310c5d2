//! A histogram of observations over fixed upper bounds (Prometheus `le` buckets).

use crate::MetricError;

/// Upper bounds in seconds for request latencies: 1 ms to 10 s (Prometheus client defaults plus
/// the millisecond range a local API lives in).
pub const DURATION_SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Counts of observations per bucket, their sum and count. The `+Inf` bucket is implicit.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    bounds: Vec<f64>,
    /// `counts[i]`: observations `<= bounds[i]` and `> bounds[i-1]`; the last one above every
    /// bound. Cumulated when rendered.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// A histogram over `bounds`, which must be finite and strictly increasing.
    pub fn new(bounds: &[f64]) -> Result<Self, MetricError> {
        if bounds.iter().any(|b| !b.is_finite()) || bounds.windows(2).any(|w| w[0] >= w[1]) {
            return Err(MetricError::Buckets(format!(
                "{bounds:?}: bucket bounds must be finite and strictly increasing (+Inf is implicit)"
            )));
        }
        Ok(Self {
            bounds: bounds.to_vec(),
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        })
    }

    /// A histogram from what another recorder counted: `(le, observations ≤ le)` per finite
    /// bound (non-decreasing counts, at most `count`), their sum and their count.
    pub fn from_cumulative(
        cumulative: &[(f64, u64)],
        sum: f64,
        count: u64,
    ) -> Result<Self, MetricError> {
        let bounds: Vec<f64> = cumulative.iter().map(|(b, _)| *b).collect();
        let mut histogram = Self::new(&bounds)?;
        let mut previous = 0;
        for (i, (_, c)) in cumulative.iter().enumerate() {
            if *c < previous || *c > count {
                return Err(MetricError::Buckets(format!(
                    "{cumulative:?} (count {count}): cumulative counts must not decrease nor exceed the count"
                )));
            }
            histogram.counts[i] = c - previous;
            previous = *c;
        }
        histogram.counts[bounds.len()] = count - previous;
        histogram.sum = sum;
        histogram.count = count;
        Ok(histogram)
    }

    /// Records one observation (NaN is ignored: it has no bucket).
    pub fn observe(&mut self, value: f64) {
        if value.is_nan() {
            return;
        }
        let i = self.bounds.partition_point(|b| *b < value);
        self.counts[i] += 1;
        self.sum += value;
        self.count += 1;
    }

    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    /// `(le, cumulative count)` per finite bound; the `+Inf` bucket equals [`Histogram::count`].
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let mut running = 0;
        self.bounds.iter().zip(&self.counts).map(move |(b, c)| {
            running += c;
            (*b, running)
        })
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    pub fn count(&self) -> u64 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_inclusive_of_their_bound() {
        let mut h = Histogram::new(&[0.1, 1.0]).unwrap();
        for v in [0.05, 0.1, 0.5, 1.0, 3.0, f64::NAN] {
            h.observe(v);
        }
        assert_eq!(h.cumulative().collect::<Vec<_>>(), vec![(0.1, 2), (1.0, 4)]);
        assert_eq!(h.count(), 5);
        assert!((h.sum() - 4.65).abs() < 1e-12);
    }

    #[test]
    fn from_cumulative_renders_the_same_buckets() {
        let mut h = Histogram::new(&[0.1, 1.0]).unwrap();
        for v in [0.05, 0.5, 0.7, 3.0] {
            h.observe(v);
        }
        let cumulative: Vec<_> = h.cumulative().collect();
        let copy = Histogram::from_cumulative(&cumulative, h.sum(), h.count()).unwrap();
        assert_eq!(copy, h);
        assert!(Histogram::from_cumulative(&[(0.1, 2), (1.0, 1)], 0.0, 2).is_err());
        assert!(Histogram::from_cumulative(&[(0.1, 3)], 0.0, 2).is_err());
    }

    #[test]
    fn refuses_unordered_or_infinite_bounds() {
        assert!(Histogram::new(&[1.0, 1.0]).is_err());
        assert!(Histogram::new(&[2.0, 1.0]).is_err());
        assert!(Histogram::new(&[1.0, f64::INFINITY]).is_err());
        assert!(Histogram::new(&[]).is_ok());
    }
}
