//! [`BarWriter`]: writes bars as CSV, Parquet or Arrow IPC, streaming.
//!
//! CSV: `timestamp,open,high,low,close,volume` with RFC 3339 UTC timestamps. Parquet and IPC:
//! `timestamp` as Timestamp(Nanosecond, "UTC"), prices and volume as Float64 (read back exactly
//! at the instrument's precision).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use tradeloom_core::Bar;
use tradeloom_core::fixed::write_raw;
use tradeloom_core::time::write_rfc3339;

use crate::error::DataError;
use crate::format::DataFormat;

#[cfg(feature = "columnar")]
const WRITE_BATCH: usize = 65_536;

/// A streaming writer of one bar file.
pub struct BarWriter {
    path: PathBuf,
    inner: WriterInner,
    rows: u64,
}

enum WriterInner {
    Csv(BufWriter<File>, Vec<u8>),
    #[cfg(feature = "columnar")]
    Columnar(Box<columnar::Columnar>),
}

impl BarWriter {
    /// Creates `path`; the format follows the extension unless given.
    pub fn create(path: &Path, format: Option<DataFormat>) -> Result<Self, DataError> {
        let format = format
            .or_else(|| DataFormat::from_path(path))
            .ok_or_else(|| DataError::Write {
                path: path.to_path_buf(),
                message: "unknown extension; use .csv, .parquet or .arrow".to_string(),
            })?;
        let file = File::create(path).map_err(|e| DataError::Write {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let inner = match format {
            DataFormat::Csv => {
                let mut w = BufWriter::with_capacity(1 << 20, file);
                w.write_all(b"timestamp,open,high,low,close,volume\n")
                    .map_err(|e| DataError::Write {
                        path: path.to_path_buf(),
                        message: e.to_string(),
                    })?;
                WriterInner::Csv(w, Vec::with_capacity(128))
            }
            #[cfg(feature = "columnar")]
            _ => WriterInner::Columnar(Box::new(columnar::Columnar::new(file, format).map_err(
                |e| DataError::Write {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                },
            )?)),
            #[cfg(not(feature = "columnar"))]
            _ => {
                return Err(DataError::Write {
                    path: path.to_path_buf(),
                    message: crate::format::without_columnar(format, "write"),
                });
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            inner,
            rows: 0,
        })
    }

    fn error(&self, message: String) -> DataError {
        DataError::Write {
            path: self.path.clone(),
            message,
        }
    }

    /// Appends one bar.
    #[inline]
    pub fn write(&mut self, bar: &Bar) -> Result<(), DataError> {
        self.rows += 1;
        match &mut self.inner {
            WriterInner::Csv(w, row) => {
                row.clear();
                write_rfc3339(row, bar.ts);
                for p in [bar.open, bar.high, bar.low, bar.close] {
                    row.push(b',');
                    write_raw(row, i128::from(p.raw()), 9, p.precision());
                }
                row.push(b',');
                write_raw(row, i128::from(bar.volume.raw()), 9, bar.volume.precision());
                row.push(b'\n');
                let r = w.write_all(row);
                r.map_err(|e| self.error(e.to_string()))
            }
            #[cfg(feature = "columnar")]
            WriterInner::Columnar(c) => {
                let r = c.push(bar);
                r.map_err(|e| self.error(e.to_string()))
            }
        }
    }

    /// Flushes and closes the file; returns the number of bars written.
    pub fn finish(self) -> Result<u64, DataError> {
        let path = self.path;
        let err = |message: String| DataError::Write {
            path: path.clone(),
            message,
        };
        match self.inner {
            WriterInner::Csv(mut w, _) => w.flush().map_err(|e| err(e.to_string()))?,
            #[cfg(feature = "columnar")]
            WriterInner::Columnar(c) => c.finish().map_err(|e| err(e.to_string()))?,
        }
        Ok(self.rows)
    }
}

#[cfg(feature = "columnar")]
mod columnar {
    use std::fs::File;
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float64Array, RecordBatch, TimestampNanosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use tradeloom_core::Bar;

    use super::WRITE_BATCH;
    use crate::format::DataFormat;

    /// Why the Arrow or Parquet writer failed; the message is the writer's own.
    #[derive(Debug, thiserror::Error)]
    pub(super) enum WriteError {
        /// An Arrow IPC or record batch error.
        #[error("{0}")]
        Arrow(#[from] arrow::error::ArrowError),
        /// A Parquet error.
        #[error("{0}")]
        Parquet(#[from] parquet::errors::ParquetError),
    }

    enum Sink {
        Parquet(parquet::arrow::ArrowWriter<File>),
        Ipc(arrow::ipc::writer::FileWriter<File>),
    }

    pub(super) struct Columnar {
        sink: Sink,
        schema: Arc<Schema>,
        ts: Vec<i64>,
        cols: [Vec<f64>; 5],
    }

    impl Columnar {
        pub(super) fn new(file: File, format: DataFormat) -> Result<Self, WriteError> {
            let schema = Arc::new(Schema::new(vec![
                Field::new(
                    "timestamp",
                    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                    false,
                ),
                Field::new("open", DataType::Float64, false),
                Field::new("high", DataType::Float64, false),
                Field::new("low", DataType::Float64, false),
                Field::new("close", DataType::Float64, false),
                Field::new("volume", DataType::Float64, false),
            ]));
            let sink = match format {
                DataFormat::Parquet => {
                    let props = parquet::file::properties::WriterProperties::builder()
                        .set_compression(parquet::basic::Compression::SNAPPY)
                        .build();
                    Sink::Parquet(parquet::arrow::ArrowWriter::try_new(
                        file,
                        schema.clone(),
                        Some(props),
                    )?)
                }
                _ => Sink::Ipc(arrow::ipc::writer::FileWriter::try_new(file, &schema)?),
            };
            Ok(Self {
                sink,
                schema,
                ts: Vec::with_capacity(WRITE_BATCH),
                cols: std::array::from_fn(|_| Vec::with_capacity(WRITE_BATCH)),
            })
        }

        pub(super) fn push(&mut self, bar: &Bar) -> Result<(), WriteError> {
            self.ts.push(bar.ts.0);
            let values = [
                bar.open.as_f64(),
                bar.high.as_f64(),
                bar.low.as_f64(),
                bar.close.as_f64(),
                bar.volume.as_f64(),
            ];
            for (col, v) in self.cols.iter_mut().zip(values) {
                col.push(v);
            }
            if self.ts.len() == WRITE_BATCH {
                self.flush()?;
            }
            Ok(())
        }

        fn flush(&mut self) -> Result<(), WriteError> {
            if self.ts.is_empty() {
                return Ok(());
            }
            let mut arrays: Vec<ArrayRef> = vec![Arc::new(
                TimestampNanosecondArray::from(std::mem::take(&mut self.ts)).with_timezone("UTC"),
            )];
            for col in &mut self.cols {
                arrays.push(Arc::new(Float64Array::from(std::mem::take(col))));
            }
            let batch = RecordBatch::try_new(self.schema.clone(), arrays)?;
            match &mut self.sink {
                Sink::Parquet(w) => w.write(&batch)?,
                Sink::Ipc(w) => w.write(&batch)?,
            }
            Ok(())
        }

        pub(super) fn finish(mut self) -> Result<(), WriteError> {
            self.flush()?;
            match self.sink {
                Sink::Parquet(w) => {
                    w.close()?;
                }
                Sink::Ipc(mut w) => w.finish()?,
            }
            Ok(())
        }
    }
}
