//! data: market data for tradeloom — streaming bar loaders for CSV, Parquet and Arrow IPC with
//! row-level validation, a k-way merge of several files, daily multi-symbol universes, news
//! corpora searched without look-ahead, deterministic synthetic bars, universes and news, and
//! file inspection.
//!
//! Loaders never hold a whole file: a 10M-bar file streams through a bounded buffer (CSV) or
//! one record batch at a time (Parquet/IPC). Every error names the file and the line (CSV) or row
//! (columnar). This crate depends on `tradeloom-core` only; it knows nothing of the engine.

mod columnar;
pub mod csv;
pub mod error;
pub mod format;
pub mod inspect;
pub mod merge;
pub mod news;
pub mod synth;
pub mod timestamp;
pub mod universe;
pub mod validate;
pub mod writer;

use std::path::Path;

use tradeloom_core::{Bar, Instrument};

/// The `chrono` this crate's dates and timestamps come from ([`DailyBar::date`],
/// [`NewsItem::timestamp`]).
pub use chrono;
pub use error::{DataError, Place, RowError};
pub use format::DataFormat;
pub use inspect::{InspectReport, inspect};
pub use merge::MergedBars;
pub use news::{NewsCorpus, NewsItem, synth_news, write_news};
pub use synth::{SynthSpec, SynthSummary, Timeframe, synth_bars, write_synth};
pub use universe::{DailyBar, Universe, UniverseSpec, synth_universe, write_universe};
pub use writer::BarWriter;

/// A streaming reader of one bar file for one instrument; yields validated bars in order.
pub struct BarReader {
    inner: Inner,
}

enum Inner {
    Csv(csv::CsvBars),
    #[cfg(feature = "columnar")]
    Columnar(columnar::ColumnarBars),
}

impl BarReader {
    /// Work done and total, for progress: bytes for CSV, rows for Parquet and Arrow.
    pub fn progress(&self) -> (u64, u64) {
        match &self.inner {
            Inner::Csv(r) => r.progress(),
            #[cfg(feature = "columnar")]
            Inner::Columnar(r) => r.progress(),
        }
    }

    /// sha256 (hex) and size of the file's bytes, when the reader hashed them while reading
    /// and has reached the end (CSV); `None` otherwise (hash the file separately).
    pub fn content_sha256(&self) -> Option<(String, u64)> {
        match &self.inner {
            Inner::Csv(r) => r.content_sha256(),
            #[cfg(feature = "columnar")]
            Inner::Columnar(_) => None,
        }
    }

    /// The file format being read.
    pub fn format(&self) -> DataFormat {
        match &self.inner {
            Inner::Csv(_) => DataFormat::Csv,
            #[cfg(feature = "columnar")]
            Inner::Columnar(r) => r.format(),
        }
    }

    /// Where the last bar yielded was read: its CSV line or columnar row.
    pub fn place(&self) -> Place {
        match &self.inner {
            Inner::Csv(r) => Place::Line(r.line()),
            #[cfg(feature = "columnar")]
            Inner::Columnar(r) => Place::Row(r.row()),
        }
    }

    /// The column names found in the file.
    pub fn columns(&self) -> Vec<String> {
        match &self.inner {
            Inner::Csv(r) => r.columns(),
            #[cfg(feature = "columnar")]
            Inner::Columnar(r) => r.columns(),
        }
    }
}

impl Iterator for BarReader {
    type Item = Result<Bar, DataError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            Inner::Csv(r) => r.next(),
            #[cfg(feature = "columnar")]
            Inner::Columnar(r) => r.next(),
        }
    }
}

/// Opens a bar file for `instrument`. The format comes from `format` or the file extension.
/// The file, its header or schema and the required columns are checked here, so a missing
/// file or column fails before anything runs.
pub fn open_bars(
    path: &Path,
    format: Option<DataFormat>,
    instrument: &Instrument,
) -> Result<BarReader, DataError> {
    let format = match format.or_else(|| DataFormat::from_path(path)) {
        Some(f) => f,
        None => {
            return Err(DataError::Schema {
                path: path.to_path_buf(),
                message: "cannot tell the format from the extension; use .csv, .parquet or .arrow, or set `format:`".to_string(),
            });
        }
    };
    let inner = match format {
        DataFormat::Csv => Inner::Csv(csv::CsvBars::open(path, instrument)?),
        #[cfg(feature = "columnar")]
        DataFormat::Parquet | DataFormat::ArrowIpc => {
            Inner::Columnar(columnar::ColumnarBars::open(path, format, instrument)?)
        }
        #[cfg(not(feature = "columnar"))]
        DataFormat::Parquet | DataFormat::ArrowIpc => {
            return Err(DataError::Schema {
                path: path.to_path_buf(),
                message: format::without_columnar(format, "read"),
            });
        }
    };
    Ok(BarReader { inner })
}
