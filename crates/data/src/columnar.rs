//! Parquet and Arrow IPC loaders: one record batch in memory at a time.
#![cfg(feature = "columnar")]

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal128Type, Float32Type, Float64Type, Int32Type,
    Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow::error::ArrowError;
use tradeloom_core::fixed::{FIXED_PRECISION, POW10, parse_decimal};
use tradeloom_core::time::NANOS_PER_DAY;
use tradeloom_core::{Bar, Instrument, InstrumentId, Price, Quantity, UnixNanos};

use crate::csv::{Columns, find_columns};
use crate::error::{DataError, Place, RowError};
use crate::format::DataFormat;
use crate::timestamp::{from_unix_integer, parse_timestamp};
use crate::validate::Validator;

const BATCH_ROWS: usize = 65_536;

type Batches = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send>;

/// Streams validated bars from a Parquet or Arrow IPC file.
pub struct ColumnarBars {
    path: PathBuf,
    format: DataFormat,
    batches: Batches,
    current: Vec<Bar>,
    pos: usize,
    columns: Columns,
    names: Vec<String>,
    validator: Validator,
    instrument: InstrumentId,
    price_precision: u8,
    size_precision: u8,
    rows: u64,
    total_rows: u64,
    batches_read: u64,
    pending_error: Option<DataError>,
    done: bool,
}

fn schema_error(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::Schema {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

impl ColumnarBars {
    pub fn open(
        path: &Path,
        format: DataFormat,
        instrument: &Instrument,
    ) -> Result<Self, DataError> {
        let file = File::open(path).map_err(|source| DataError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let (batches, schema, total_rows): (Batches, _, u64) = match format {
            DataFormat::Parquet => {
                let builder =
                    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                        .map_err(|e| {
                            schema_error(path, format!("not a readable Parquet file: {e}"))
                        })?;
                let total = builder.metadata().file_metadata().num_rows().max(0) as u64;
                let schema = builder.schema().clone();
                let reader = builder
                    .with_batch_size(BATCH_ROWS)
                    .build()
                    .map_err(|e| schema_error(path, e))?;
                (Box::new(reader), schema, total)
            }
            _ => {
                let reader = arrow::ipc::reader::FileReader::try_new(file, None).map_err(|e| {
                    schema_error(path, format!("not a readable Arrow IPC file: {e}"))
                })?;
                let schema = reader.schema();
                // Row counts are not in the footer; progress counts batches for IPC.
                let total = reader.num_batches() as u64;
                (Box::new(reader), schema, total)
            }
        };
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let columns = find_columns(&names).map_err(|m| schema_error(path, m))?;
        Ok(Self {
            path: path.to_path_buf(),
            format,
            batches,
            current: Vec::new(),
            pos: 0,
            columns,
            names,
            validator: Validator::new(instrument.symbol.as_str(), instrument.price_precision),
            instrument: instrument.id,
            price_precision: instrument.price_precision,
            size_precision: instrument.size_precision,
            rows: 0,
            total_rows,
            batches_read: 0,
            pending_error: None,
            done: false,
        })
    }

    /// Rows read of all rows (Parquet), or batches read of all batches (Arrow IPC, whose
    /// footer has no row count).
    pub fn progress(&self) -> (u64, u64) {
        match self.format {
            DataFormat::ArrowIpc => (self.batches_read, self.total_rows),
            _ => (self.rows, self.total_rows),
        }
    }

    pub fn format(&self) -> DataFormat {
        self.format
    }

    pub fn columns(&self) -> Vec<String> {
        self.names.clone()
    }

    /// The row (1-based) of the last bar yielded.
    pub fn row(&self) -> u64 {
        // `rows` counts the rows decoded so far; `current[pos..]` are decoded but not yet yielded.
        self.rows - (self.current.len() - self.pos) as u64
    }

    fn row_error(&self, row: u64, message: impl std::fmt::Display) -> DataError {
        DataError::Row {
            path: self.path.clone(),
            place: Place::Row(row),
            message: message.to_string(),
        }
    }

    /// The common layouts (timestamps in any unit, Float64 prices, Float64 or Int64 volume, no
    /// nulls: what pandas, polars and pyarrow's CSV reader give) decoded column-wise without
    /// per-cell dispatch, with the same results and errors as [`ColumnarBars::decode`]'s cell
    /// by cell path. `None` if the batch has another layout.
    fn decode_fast(&mut self, batch: &RecordBatch) -> Option<Result<(), DataError>> {
        let c = self.columns;
        let ts_col = batch.column(c.ts);
        if ts_col.null_count() > 0 {
            return None;
        }
        let (ts, ts_mult) = timestamp_values(ts_col.as_ref())?;
        let mut cols: [&[f64]; 4] = [&[]; 4];
        for (slot, idx) in cols.iter_mut().zip([c.open, c.high, c.low, c.close]) {
            let col = batch.column(idx);
            if col.data_type() != &DataType::Float64 || col.null_count() > 0 {
                return None;
            }
            *slot = col.as_primitive::<Float64Type>().values();
        }
        let volume = match c.volume {
            Some(idx) => {
                let col = batch.column(idx);
                if col.null_count() > 0 {
                    return None;
                }
                match col.data_type() {
                    DataType::Float64 => Volume::Float(col.as_primitive::<Float64Type>().values()),
                    DataType::Int64 => Volume::Int(col.as_primitive::<Int64Type>().values()),
                    _ => return None,
                }
            }
            None => Volume::None,
        };
        self.current.clear();
        self.pos = 0;
        let p = self.price_precision.min(FIXED_PRECISION);
        let scale = 10f64.powi(i32::from(p));
        let step = POW10[usize::from(FIXED_PRECISION - p)];
        let first_row = self.rows;
        for i in 0..batch.num_rows() {
            let row = first_row + i as u64 + 1;
            // The timestamp first, as the cell by cell path reads it.
            let Some(ts) = ts[i].checked_mul(ts_mult) else {
                self.rows = row - 1;
                return Some(Err(self.row_error(row, RowError::TimestampOutOfRange)));
            };
            let mut raw = [0i64; 4];
            let mut bad = None;
            for (k, col) in cols.iter().enumerate() {
                let v = col[i];
                let scaled = v * scale;
                let rounded = scaled.round();
                let tolerance = (scaled.abs() * 8.0 * f64::EPSILON).max(1e-6);
                if !v.is_finite()
                    || (scaled - rounded).abs() > tolerance
                    || rounded.abs() > 9.2e18 / step as f64
                {
                    bad = Some(k);
                    break;
                }
                raw[k] = rounded as i64 * step;
            }
            if let Some(k) = bad {
                let name = ["open", "high", "low", "close"][k];
                self.rows = row - 1;
                let v = cols[k][i];
                return Some(Err(self.row_error(
                    row,
                    format!("{name} {v} has more than {p} decimal places (price_precision {p})"),
                )));
            }
            let volume = match volume {
                Volume::Float(vol) => {
                    let v = vol[i];
                    if !(v.is_finite() && v >= 0.0) {
                        self.rows = row - 1;
                        return Some(Err(self.row_error(row, format!("volume {v} is invalid"))));
                    }
                    Quantity::from_raw((v * 1e9).round() as i64, self.size_precision)
                        .unwrap_or(Quantity::ZERO)
                }
                // Through the cell path's conversion: the same quantity and the same errors.
                Volume::Int(vol) => match Numeric::Exact(i128::from(vol[i]), 0)
                    .to_raw(FIXED_PRECISION, "volume")
                    .and_then(|raw| {
                        Quantity::from_raw(raw, self.size_precision)
                            .map_err(|_| RowError::NegativeQuantity)
                    }) {
                    Ok(q) => q,
                    Err(e) => {
                        self.rows = row - 1;
                        return Some(Err(self.row_error(row, e)));
                    }
                },
                Volume::None => Quantity::ZERO,
            };
            let pp = self.price_precision;
            let bar = Bar {
                instrument: self.instrument,
                ts: UnixNanos(ts),
                open: Price::from_raw(raw[0], pp),
                high: Price::from_raw(raw[1], pp),
                low: Price::from_raw(raw[2], pp),
                close: Price::from_raw(raw[3], pp),
                volume,
            };
            // The prices were rounded to whole multiples of the precision's step above.
            if let Err(message) = self.validator.check_ordered(&bar) {
                self.rows = row - 1;
                return Some(Err(self.row_error(row, message)));
            }
            self.current.push(bar);
        }
        self.rows += batch.num_rows() as u64;
        Some(Ok(()))
    }

    /// Decodes one batch into bars; errors carry the 1-based row of the file.
    fn decode(&mut self, batch: &RecordBatch) -> Result<(), DataError> {
        if let Some(result) = self.decode_fast(batch) {
            return result;
        }
        self.current.clear();
        self.pos = 0;
        let c = self.columns;
        let first_row = self.rows;
        let n = batch.num_rows();
        for i in 0..n {
            let row = first_row + i as u64 + 1;
            let get = |col: usize, name: &str| -> Result<Numeric, RowError> {
                numeric(batch.column(col).as_ref(), i, name)
            };
            let result = (|| -> Result<Bar, RowError> {
                let ts = timestamp(batch.column(c.ts).as_ref(), i)?;
                let pp = self.price_precision;
                let price = |name: &str, col: usize| -> Result<Price, RowError> {
                    Ok(Price::from_raw(get(col, name)?.to_raw(pp, name)?, pp))
                };
                let bar = Bar {
                    instrument: self.instrument,
                    ts,
                    open: price("open", c.open)?,
                    high: price("high", c.high)?,
                    low: price("low", c.low)?,
                    close: price("close", c.close)?,
                    volume: match c.volume {
                        Some(col) => {
                            let raw = get(col, "volume")?.to_raw(FIXED_PRECISION, "volume")?;
                            Quantity::from_raw(raw, self.size_precision)
                                .map_err(|_| RowError::NegativeQuantity)?
                        }
                        None => Quantity::ZERO,
                    },
                };
                self.validator.check(&bar)?;
                Ok(bar)
            })();
            match result {
                Ok(bar) => self.current.push(bar),
                Err(message) => {
                    // Keep the good rows before the error; report it after them.
                    self.rows = row - 1;
                    return Err(self.row_error(row, message));
                }
            }
        }
        self.rows += n as u64;
        Ok(())
    }
}

/// The volume column of a batch on the fast path.
enum Volume<'a> {
    Float(&'a [f64]),
    Int(&'a [i64]),
    None,
}

/// A numeric cell, before conversion to fixed point.
enum Numeric {
    Float(f64),
    /// An exact integer at 10^-scale.
    Exact(i128, u32),
    Text(String),
}

impl Numeric {
    /// Raw value at 10^-9 with at most `precision` decimals (volume is rounded, not checked).
    fn to_raw(&self, precision: u8, name: &str) -> Result<i64, RowError> {
        let strict = name != "volume";
        let p = precision.min(FIXED_PRECISION);
        let step = POW10[usize::from(FIXED_PRECISION - p)];
        let raw: i128 = match self {
            Numeric::Float(v) => {
                if !v.is_finite() {
                    return Err(RowError::NotFinite {
                        field: name.to_string(),
                        value: *v,
                    });
                }
                let scaled = v * 10f64.powi(i32::from(p));
                let rounded = scaled.round();
                // A float holds the decimal it was written from to within a few ulps.
                let tolerance = (scaled.abs() * 8.0 * f64::EPSILON).max(1e-6);
                if strict && (scaled - rounded).abs() > tolerance {
                    return Err(RowError::TooPrecise {
                        field: name.to_string(),
                        value: v.to_string(),
                        precision: p,
                    });
                }
                rounded as i128 * i128::from(step)
            }
            Numeric::Exact(v, scale) => {
                let scale = *scale;
                if scale <= u32::from(FIXED_PRECISION) {
                    v * 10i128.pow(u32::from(FIXED_PRECISION) - scale)
                } else {
                    let div = 10i128.pow(scale - u32::from(FIXED_PRECISION));
                    if strict && v % div != 0 {
                        return Err(RowError::BeyondNanos {
                            field: name.to_string(),
                        });
                    }
                    v / div
                }
            }
            Numeric::Text(s) if name == "volume" => {
                i128::from(crate::validate::parse_volume(s.as_bytes())?)
            }
            Numeric::Text(s) => i128::from(
                parse_decimal(s.as_bytes())
                    .map_err(|source| RowError::Decimal {
                        field: name.to_string(),
                        source,
                    })?
                    .raw,
            ),
        };
        let raw = i64::try_from(raw).map_err(|_| RowError::OutOfRange {
            what: name.to_string(),
        })?;
        if strict && raw % step != 0 {
            return Err(RowError::TooPrecise {
                field: name.to_string(),
                value: tradeloom_core::fixed::format_raw(i128::from(raw), FIXED_PRECISION, 0),
                precision: p,
            });
        }
        Ok(raw)
    }
}

fn numeric(array: &dyn Array, i: usize, name: &str) -> Result<Numeric, RowError> {
    if array.is_null(i) {
        return Err(RowError::Missing(name.to_string()));
    }
    Ok(match array.data_type() {
        DataType::Float64 => Numeric::Float(array.as_primitive::<Float64Type>().value(i)),
        DataType::Float32 => {
            Numeric::Float(f64::from(array.as_primitive::<Float32Type>().value(i)))
        }
        DataType::Int64 => {
            Numeric::Exact(i128::from(array.as_primitive::<Int64Type>().value(i)), 0)
        }
        DataType::Int32 => {
            Numeric::Exact(i128::from(array.as_primitive::<Int32Type>().value(i)), 0)
        }
        DataType::Decimal128(_, scale) if *scale >= 0 => Numeric::Exact(
            array.as_primitive::<Decimal128Type>().value(i),
            *scale as u32,
        ),
        DataType::Utf8 => Numeric::Text(array.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Numeric::Text(array.as_string::<i64>().value(i).to_string()),
        other => {
            return Err(RowError::ColumnType {
                column: name.to_string(),
                data_type: other.to_string(),
            });
        }
    })
}

/// A timestamp column's values and what turns one into nanoseconds; `None` for another type.
fn timestamp_values(array: &dyn Array) -> Option<(&[i64], i64)> {
    let DataType::Timestamp(unit, _) = array.data_type() else {
        return None;
    };
    Some(match unit {
        TimeUnit::Second => (
            array.as_primitive::<TimestampSecondType>().values(),
            1_000_000_000,
        ),
        TimeUnit::Millisecond => (
            array.as_primitive::<TimestampMillisecondType>().values(),
            1_000_000,
        ),
        TimeUnit::Microsecond => (
            array.as_primitive::<TimestampMicrosecondType>().values(),
            1_000,
        ),
        TimeUnit::Nanosecond => (array.as_primitive::<TimestampNanosecondType>().values(), 1),
    })
}

fn timestamp(array: &dyn Array, i: usize) -> Result<UnixNanos, RowError> {
    if array.is_null(i) {
        return Err(RowError::MissingTimestamp);
    }
    let overflow = || RowError::TimestampOutOfRange;
    if let Some((values, mult)) = timestamp_values(array) {
        return Ok(UnixNanos(values[i].checked_mul(mult).ok_or_else(overflow)?));
    }
    Ok(match array.data_type() {
        DataType::Date32 => UnixNanos(
            i64::from(array.as_primitive::<Date32Type>().value(i))
                .checked_mul(NANOS_PER_DAY)
                .ok_or_else(overflow)?,
        ),
        DataType::Date64 => UnixNanos(
            array
                .as_primitive::<Date64Type>()
                .value(i)
                .checked_mul(1_000_000)
                .ok_or_else(overflow)?,
        ),
        DataType::Int64 => {
            from_unix_integer(array.as_primitive::<Int64Type>().value(i)).ok_or_else(overflow)?
        }
        DataType::Utf8 => parse_timestamp(array.as_string::<i32>().value(i).as_bytes())?,
        DataType::LargeUtf8 => parse_timestamp(array.as_string::<i64>().value(i).as_bytes())?,
        other => return Err(RowError::TimestampType(other.to_string())),
    })
}

impl Iterator for ColumnarBars {
    type Item = Result<Bar, DataError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.pos < self.current.len() {
                self.pos += 1;
                return Some(Ok(self.current[self.pos - 1]));
            }
            if let Some(e) = self.pending_error.take() {
                return Some(Err(e));
            }
            if self.done {
                return None;
            }
            match self.batches.next() {
                None => {
                    self.done = true;
                    return None;
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(DataError::Schema {
                        path: self.path.clone(),
                        message: format!("cannot read a record batch: {e}"),
                    }));
                }
                Some(Ok(batch)) => {
                    self.batches_read += 1;
                    if let Err(e) = self.decode(&batch) {
                        // The valid rows before the error are yielded first.
                        self.done = true;
                        self.pending_error = Some(e);
                    }
                }
            }
        }
    }
}
