//! [`MergedBars`]: several bar streams (one per instrument) as one, in time order.

use tradeloom_core::Bar;

use crate::BarReader;
use crate::error::DataError;

/// A k-way merge ordered by (timestamp, instrument index); still streaming. The first error of
/// any input ends the stream.
pub struct MergedBars {
    readers: Vec<BarReader>,
    heads: Vec<Option<Bar>>,
    started: bool,
    failed: bool,
    pending: Option<DataError>,
}

impl MergedBars {
    pub fn new(readers: Vec<BarReader>) -> Self {
        let heads = vec![None; readers.len()];
        Self {
            readers,
            heads,
            started: false,
            failed: false,
            pending: None,
        }
    }

    /// Summed progress of the inputs.
    pub fn progress(&self) -> (u64, u64) {
        self.readers.iter().fold((0, 0), |(d, t), r| {
            let (rd, rt) = r.progress();
            (d + rd, t + rt)
        })
    }

    /// Whether every input is a CSV file (read line by line; the other formats are decoded a
    /// record batch at a time).
    pub fn all_csv(&self) -> bool {
        self.readers
            .iter()
            .all(|r| r.format() == crate::DataFormat::Csv)
    }

    /// The input readers, in order (e.g. to collect their content hashes at the end).
    pub fn into_readers(self) -> Vec<BarReader> {
        self.readers
    }

    fn fill(&mut self, i: usize) -> Result<(), DataError> {
        self.heads[i] = self.readers[i].next().transpose()?;
        Ok(())
    }
}

impl Iterator for MergedBars {
    type Item = Result<Bar, DataError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if let Some(e) = self.pending.take() {
            self.failed = true;
            return Some(Err(e));
        }
        if self.readers.len() == 1 {
            let next = self.readers[0].next();
            self.failed = matches!(next, Some(Err(_)));
            return next;
        }
        if !self.started {
            self.started = true;
            for i in 0..self.readers.len() {
                if let Err(e) = self.fill(i) {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
        let mut best: Option<usize> = None;
        for (i, head) in self.heads.iter().enumerate() {
            if let Some(bar) = head {
                let better = match best.and_then(|b| self.heads[b].as_ref()) {
                    None => true,
                    Some(current) => (bar.ts, bar.instrument) < (current.ts, current.instrument),
                };
                if better {
                    best = Some(i);
                }
            }
        }
        let i = best?;
        let bar = self.heads[i].take();
        if let Err(e) = self.fill(i) {
            // The bar taken is valid; the error comes next.
            self.pending = Some(e);
        }
        bar.map(Ok)
    }
}
