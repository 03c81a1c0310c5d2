//! Downsampling of an equity curve for `GET /runs/{id}/equity`: the rows are cut into equal
//! buckets and each bucket keeps its first, lowest, highest and last point (by equity, each
//! once, in time order), so no peak or trough of the curve is lost however few points are asked
//! for — the global minimum and maximum are always among the points sent.

use tradeloom_core::Money;
use tradeloom_runs::equity::EquityRow;

/// Points each bucket may keep: first, min, max, last.
pub(crate) const POINTS_PER_BUCKET: u64 = 4;

/// Collects the points of a curve of `rows` rows so that at most `max_points` are kept.
pub(crate) struct Downsampler {
    /// Rows per bucket (1: every row is kept).
    bucket_rows: u64,
    /// Rows seen so far.
    seen: u64,
    /// The current bucket: `(index, row)` of its first, min, max and last rows.
    bucket: Option<Bucket>,
    points: Vec<EquityRow>,
}

#[derive(Clone, Copy)]
struct Bucket {
    first: (u64, EquityRow),
    min: (u64, EquityRow),
    max: (u64, EquityRow),
    last: (u64, EquityRow),
}

impl Downsampler {
    /// For a curve of `rows` rows, keeping at most `max_points` (at least
    /// [`POINTS_PER_BUCKET`]).
    pub(crate) fn new(rows: u64, max_points: u64) -> Self {
        let max_points = max_points.max(POINTS_PER_BUCKET);
        let bucket_rows = if rows <= max_points {
            1
        } else {
            let buckets = max_points / POINTS_PER_BUCKET;
            rows.div_ceil(buckets)
        };
        Self {
            bucket_rows,
            seen: 0,
            bucket: None,
            points: Vec::with_capacity(rows.min(max_points) as usize),
        }
    }

    /// Whether rows are dropped (buckets of more than one row).
    pub(crate) fn downsamples(&self) -> bool {
        self.bucket_rows > 1
    }

    /// Takes the next row of the curve.
    pub(crate) fn push(&mut self, row: EquityRow) {
        let i = self.seen;
        self.seen += 1;
        if self.bucket_rows == 1 {
            self.points.push(row);
            return;
        }
        if i % self.bucket_rows == 0 {
            self.flush();
        }
        match &mut self.bucket {
            None => {
                self.bucket = Some(Bucket {
                    first: (i, row),
                    min: (i, row),
                    max: (i, row),
                    last: (i, row),
                });
            }
            Some(b) => {
                if lower(row.equity, b.min.1.equity) {
                    b.min = (i, row);
                }
                if lower(b.max.1.equity, row.equity) {
                    b.max = (i, row);
                }
                b.last = (i, row);
            }
        }
    }

    fn flush(&mut self) {
        if let Some(b) = self.bucket.take() {
            let mut kept = [b.first, b.min, b.max, b.last];
            kept.sort_by_key(|(i, _)| *i);
            let mut previous = None;
            for (i, row) in kept {
                if previous != Some(i) {
                    self.points.push(row);
                    previous = Some(i);
                }
            }
        }
    }

    /// The points kept, in time order.
    pub(crate) fn finish(mut self) -> Vec<EquityRow> {
        self.flush();
        self.points
    }
}

/// `a < b` for amounts of one curve (one currency).
fn lower(a: Money, b: Money) -> bool {
    a.raw() < b.raw()
}

#[cfg(test)]
mod tests {
    use tradeloom_core::{Currency, UnixNanos};

    use super::*;

    fn row(i: u64, equity_cents: i64) -> EquityRow {
        let usd = Currency::from_code("USD").unwrap();
        let m = Money::parse(
            &format!("{}.{:02}", equity_cents / 100, equity_cents % 100),
            usd,
        )
        .unwrap();
        EquityRow {
            ts: UnixNanos(i as i64 * 1_000_000_000),
            cash: m,
            equity: m,
            gross_exposure: Money::parse("0", usd).unwrap(),
        }
    }

    fn curve(values: &[i64], max_points: u64) -> Vec<i64> {
        let mut d = Downsampler::new(values.len() as u64, max_points);
        for (i, v) in values.iter().enumerate() {
            d.push(row(i as u64, *v));
        }
        d.finish().iter().map(|r| r.ts.0 / 1_000_000_000).collect()
    }

    #[test]
    fn a_short_curve_is_kept_whole() {
        assert_eq!(curve(&[5, 3, 9], 8), vec![0, 1, 2]);
    }

    #[test]
    fn buckets_keep_first_min_max_last_in_time_order() {
        // 16 rows into 8 points: 2 buckets of 8 rows.
        let values = [
            50, 40, 90, 10, 55, 60, 70, 65, 65, 20, 30, 99, 5, 40, 41, 42,
        ];
        let kept = curve(&values, 8);
        assert_eq!(kept, vec![0, 2, 3, 7, 8, 11, 12, 15]);
    }

    #[test]
    fn the_global_extremes_survive_any_budget() {
        let values: Vec<i64> = (0..10_007)
            .map(|i| 100_000 + ((i * 7919) % 1000) - if i == 6_661 { 90_000 } else { 0 })
            .chain([250_000])
            .collect();
        for max_points in [4, 5, 16, 100, 999] {
            let kept = curve(&values, max_points);
            assert!(
                kept.len() as u64 <= max_points,
                "{max_points}: {}",
                kept.len()
            );
            assert!(kept.contains(&6_661), "the trough at {max_points}");
            assert!(kept.contains(&10_007), "the peak at {max_points}");
            assert_eq!(kept.first(), Some(&0));
            assert!(kept.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
