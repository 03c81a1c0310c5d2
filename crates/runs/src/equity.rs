//! `equity.parquet`: the equity curve of a run, one row per timestamp, exact and compact.
//!
//! | column | Parquet type | meaning |
//! | --- | --- | --- |
//! | `ts` | INT64 `TIMESTAMP(NANOS, UTC)` | the timestamp (the bar's) |
//! | `cash` | `DECIMAL(p, s)` | cash after the timestamp |
//! | `equity` | `DECIMAL(p, s)` | cash plus positions at the last closes |
//! | `gross_exposure` | `DECIMAL(p, s)` | Σ \|position × close\| across instruments |
//!
//! Money is exact: `s` is the fewest decimals that hold every amount the run can produce (the
//! currency's precision, each instrument's price plus size precision, the initial cash's
//! decimals), and every value is checked to be exact at `s` when written. When 18 digits leave
//! room for a million times the initial cash, the money columns are INT64 `DECIMAL(18, s)`
//! delta-encoded (`DELTA_BINARY_PACKED`; a minute bar costs a few bytes instead of ~70 in CSV);
//! otherwise they are 16-byte `DECIMAL(38, s)` (Snappy-compressed). `ts` is delta-encoded too.
//!
//! The drawdown is not stored: it is derived exactly from the equity column as the engine
//! computes it — `(peak − equity) / peak × 100` in `f64`, with `peak` the running maximum of
//! the initial cash (key `tradeloom.initial_cash` of the file's metadata) and every equity so
//! far ([`Drawdown`]).
//!
//! The file is written deterministically (the same rows give the same bytes): row groups of
//! [`ROWS_PER_GROUP`] rows, no wall-clock time in it.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Decimal128Type, TimeUnit, TimestampNanosecondType};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, Encoding};
use parquet::data_type::{
    DataType as ParquetType, FixedLenByteArray, FixedLenByteArrayType, Int64Type,
};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::writer::{SerializedFileWriter, SerializedRowGroupWriter};
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::ColumnPath;
use tradeloom_core::fixed::MONEY_PRECISION;
use tradeloom_core::{Currency, Instrument, Money, UnixNanos};
use tradeloom_engine::EquityPoint;

use crate::error::RunError;

/// The file's name in a run folder.
pub const EQUITY_FILE: &str = "equity.parquet";
/// Rows per row group (the writer holds one group's values, 2 MB, in memory).
pub const ROWS_PER_GROUP: usize = 1 << 16;
/// Headroom the INT64 layout must leave above the initial cash (a factor).
const HEADROOM: u128 = 1_000_000;
/// The money columns, in file order after `ts`.
const MONEY_COLUMNS: [&str; 3] = ["cash", "equity", "gross_exposure"];
/// Metadata keys.
const KEY_FORMAT: &str = "tradeloom.format";
const KEY_CURRENCY: &str = "tradeloom.currency";
const KEY_INITIAL_CASH: &str = "tradeloom.initial_cash";
/// The value of [`KEY_FORMAT`].
const FORMAT: &str = "tradeloom equity curve 1";

/// One row of the equity curve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EquityRow {
    pub ts: UnixNanos,
    pub cash: Money,
    pub equity: Money,
    pub gross_exposure: Money,
}

/// How money is stored: `scale` decimals, in INT64 (precision 18) or 16 bytes (precision 38).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MoneyLayout {
    pub scale: u8,
    pub wide: bool,
}

impl MoneyLayout {
    /// The layout of a run's money: the fewest decimals that hold every amount exactly, INT64
    /// when that leaves room for [`HEADROOM`] × the initial cash.
    pub fn for_run(instruments: &[Instrument], initial_cash: Money) -> Self {
        let currency = initial_cash.currency();
        let mut scale = currency.precision();
        for i in instruments {
            scale = scale.max(i.price_precision.saturating_add(i.size_precision));
        }
        scale = scale.max(decimals(initial_cash.raw())).min(MONEY_PRECISION);
        let limit = 10u128.pow(18 - u32::from(scale));
        let whole = initial_cash.raw().unsigned_abs() / 10u128.pow(u32::from(MONEY_PRECISION));
        let wide = whole.saturating_add(1).saturating_mul(HEADROOM) > limit;
        Self { scale, wide }
    }

    fn precision(self) -> u8 {
        if self.wide { 38 } else { 18 }
    }
}

/// Decimals of a raw money value (trailing zeros dropped).
fn decimals(raw: i128) -> u8 {
    let mut d = MONEY_PRECISION;
    let mut r = raw;
    while d > 0 && r % 10 == 0 {
        r /= 10;
        d -= 1;
    }
    d
}

/// Exact division of raw money (10^-18) by 10^k, k = 18 − scale, without a 128-bit division
/// per value: shift out 2^k, multiply by the inverse of 5^k modulo 2^128. A value that is not a
/// multiple lands above `u128::MAX / 5^k`, so a range check finds it.
#[derive(Clone, Copy, Debug)]
struct Rescale {
    k: u32,
    inverse: u128,
    /// The largest magnitude accepted: the column's digits, and exactness.
    limit: u128,
}

impl Rescale {
    fn new(layout: MoneyLayout) -> Self {
        let k = u32::from(MONEY_PRECISION - layout.scale);
        let m = 5u128.pow(k);
        // Newton's iteration doubles the correct low bits of the inverse of an odd number,
        // starting from 3 (m·m ≡ 1 mod 8): 7 steps give 384 ≥ 128.
        let mut inverse = m;
        for _ in 0..7 {
            inverse = inverse.wrapping_mul(2u128.wrapping_sub(m.wrapping_mul(inverse)));
        }
        let digits = 10u128.pow(u32::from(layout.precision())) - 1;
        Self {
            k,
            inverse,
            limit: digits.min(u128::MAX / m),
        }
    }

    /// `raw / 10^k`, or `None` when that is not exact or does not fit the column.
    #[inline]
    fn apply(self, raw: i128) -> Option<i128> {
        let a = raw.unsigned_abs();
        if a & ((1u128 << self.k) - 1) != 0 {
            return None;
        }
        let q = (a >> self.k).wrapping_mul(self.inverse);
        if q > self.limit {
            return None;
        }
        // q ≤ 10^38 − 1 < 2^127: it fits an i128.
        let q = q as i128;
        Some(if raw < 0 { -q } else { q })
    }
}

/// Why the equity curve could not be written.
#[derive(Debug, thiserror::Error)]
pub enum EquityError {
    #[error("{0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error(
        "{column} {value} at {ts} is not exact at {scale} decimals or exceeds {precision} digits"
    )]
    Inexact {
        column: &'static str,
        value: Money,
        ts: UnixNanos,
        scale: u8,
        precision: u8,
    },
}

impl From<EquityError> for std::io::Error {
    fn from(e: EquityError) -> Self {
        match e {
            EquityError::Parquet(parquet::errors::ParquetError::External(inner)) => {
                match inner.downcast::<std::io::Error>() {
                    Ok(io) => *io,
                    Err(other) => std::io::Error::other(other),
                }
            }
            e => std::io::Error::other(e.to_string()),
        }
    }
}

/// The values of one row group, column by column.
enum Money3 {
    Narrow([Vec<i64>; 3]),
    Wide([Vec<FixedLenByteArray>; 3]),
}

/// Streams an equity curve into Parquet: rows are buffered column-wise and written a row group
/// at a time into `W` (the run's artifact writer, which hashes and writes on its own thread).
pub struct EquityWriter<W: Write + Send> {
    file: SerializedFileWriter<W>,
    layout: MoneyLayout,
    rescale: Rescale,
    ts: Vec<i64>,
    money: Money3,
    /// The last cash raw value and its rescaled value (cash changes only on fills).
    cash_cache: (i128, i128),
}

impl<W: Write + Send> EquityWriter<W> {
    /// Starts the file (its magic bytes go to `out` now).
    pub fn new(out: W, layout: MoneyLayout, initial_cash: Money) -> Result<Self, EquityError> {
        let (p, s) = (layout.precision(), layout.scale);
        let money_type = if layout.wide {
            "fixed_len_byte_array(16)".to_string()
        } else {
            "int64".to_string()
        };
        let columns: String = MONEY_COLUMNS
            .iter()
            .map(|c| format!("  required {money_type} {c} (DECIMAL({p},{s}));\n"))
            .collect();
        let message =
            format!("message equity {{\n  required int64 ts (TIMESTAMP(NANOS,true));\n{columns}}}");
        let schema = Arc::new(parse_message_type(&message)?);
        let mut props = WriterProperties::builder()
            .set_writer_version(WriterVersion::PARQUET_1_0)
            .set_created_by(format!("tradeloom {}", env!("CARGO_PKG_VERSION")))
            .set_dictionary_enabled(false)
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_compression(Compression::UNCOMPRESSED)
            .set_column_encoding(ColumnPath::from("ts"), Encoding::DELTA_BINARY_PACKED)
            .set_key_value_metadata(Some(vec![
                KeyValue::new(KEY_FORMAT.to_string(), FORMAT.to_string()),
                KeyValue::new(
                    KEY_CURRENCY.to_string(),
                    initial_cash.currency().code().to_string(),
                ),
                KeyValue::new(KEY_INITIAL_CASH.to_string(), initial_cash.to_string()),
            ]));
        for c in MONEY_COLUMNS {
            let path = ColumnPath::from(c);
            props = if layout.wide {
                props
                    .set_column_encoding(path.clone(), Encoding::PLAIN)
                    .set_column_compression(path, Compression::SNAPPY)
            } else {
                props.set_column_encoding(path, Encoding::DELTA_BINARY_PACKED)
            };
        }
        let file = SerializedFileWriter::new(out, schema, Arc::new(props.build()))?;
        let money = if layout.wide {
            Money3::Wide(std::array::from_fn(|_| Vec::with_capacity(ROWS_PER_GROUP)))
        } else {
            Money3::Narrow(std::array::from_fn(|_| Vec::with_capacity(ROWS_PER_GROUP)))
        };
        Ok(Self {
            file,
            layout,
            rescale: Rescale::new(layout),
            ts: Vec::with_capacity(ROWS_PER_GROUP),
            money,
            cash_cache: (i128::MIN, 0),
        })
    }

    fn rescale(
        &self,
        column: &'static str,
        value: Money,
        ts: UnixNanos,
    ) -> Result<i128, EquityError> {
        self.rescale.apply(value.raw()).ok_or(EquityError::Inexact {
            column,
            value,
            ts,
            scale: self.layout.scale,
            precision: self.layout.precision(),
        })
    }

    /// Appends one row; writes a row group when [`ROWS_PER_GROUP`] rows are buffered.
    #[inline]
    pub fn push(&mut self, point: &EquityPoint) -> Result<(), EquityError> {
        if self.cash_cache.0 != point.cash.raw() {
            self.cash_cache = (
                point.cash.raw(),
                self.rescale("cash", point.cash, point.ts)?,
            );
        }
        let values = [
            self.cash_cache.1,
            self.rescale("equity", point.equity, point.ts)?,
            self.rescale("gross_exposure", point.gross_exposure, point.ts)?,
        ];
        self.ts.push(point.ts.0);
        match &mut self.money {
            // In range: `Rescale` bounds narrow values to 18 digits.
            Money3::Narrow(cols) => {
                for (col, v) in cols.iter_mut().zip(values) {
                    col.push(v as i64);
                }
            }
            Money3::Wide(cols) => {
                for (col, v) in cols.iter_mut().zip(values) {
                    col.push(FixedLenByteArray::from(v.to_be_bytes().to_vec()));
                }
            }
        }
        if self.ts.len() >= ROWS_PER_GROUP {
            self.write_group()?;
        }
        Ok(())
    }

    #[cold]
    fn write_group(&mut self) -> Result<(), EquityError> {
        if self.ts.is_empty() {
            return Ok(());
        }
        let mut group = self.file.next_row_group()?;
        write_column::<Int64Type, W>(&mut group, &mut self.ts)?;
        match &mut self.money {
            Money3::Narrow(cols) => {
                for values in cols.iter_mut() {
                    write_column::<Int64Type, W>(&mut group, values)?;
                }
            }
            Money3::Wide(cols) => {
                for values in cols.iter_mut() {
                    write_column::<FixedLenByteArrayType, W>(&mut group, values)?;
                }
            }
        }
        group.close()?;
        Ok(())
    }

    /// Writes the buffered rows and the footer; returns the output.
    pub fn finish(mut self) -> Result<W, EquityError> {
        self.write_group()?;
        Ok(self.file.into_inner()?)
    }
}

/// Writes the next column of `group` from `values` (a row group's worth) and empties them.
fn write_column<T: ParquetType, W: Write + Send>(
    group: &mut SerializedRowGroupWriter<'_, W>,
    values: &mut Vec<T::T>,
) -> Result<(), EquityError> {
    let mut column = group.next_column()?.ok_or_else(missing_column)?;
    column.typed::<T>().write_batch(values, None, None)?;
    column.close()?;
    values.clear();
    Ok(())
}

fn missing_column() -> parquet::errors::ParquetError {
    parquet::errors::ParquetError::General("equity schema has fewer columns than written".into())
}

/// The drawdown of each row as the engine computes it (see the module documentation).
#[derive(Clone, Copy, Debug)]
pub struct Drawdown {
    peak: f64,
}

impl Drawdown {
    pub fn new(initial_cash: Money) -> Self {
        Self {
            peak: initial_cash.as_f64(),
        }
    }

    /// The drawdown in percent after `equity`.
    #[inline]
    pub fn next(&mut self, equity: Money) -> f64 {
        let x = equity.as_f64();
        if x >= self.peak {
            self.peak = x;
            0.0
        } else if self.peak > 0.0 {
            (self.peak - x) / self.peak * 100.0
        } else {
            0.0
        }
    }
}

/// An `equity.parquet` opened for reading.
pub struct EquityFile {
    path: std::path::PathBuf,
    builder: ParquetRecordBatchReaderBuilder<File>,
    currency: Currency,
    initial_cash: Money,
}

impl EquityFile {
    /// Opens `path` and checks its schema.
    pub fn open(path: &Path) -> Result<Self, RunError> {
        let corrupt = |message: String| RunError::Corrupt {
            path: path.to_path_buf(),
            message,
        };
        let file = File::open(path).map_err(|e| RunError::io(path, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| corrupt(format!("not a readable Parquet file: {e}")))?;
        let meta = builder.metadata().file_metadata();
        let key = |k: &str| {
            meta.key_value_metadata()
                .and_then(|kv| kv.iter().find(|e| e.key == k))
                .and_then(|e| e.value.clone())
        };
        if key(KEY_FORMAT).as_deref() != Some(FORMAT) {
            return Err(corrupt(format!(
                "not a tradeloom equity curve (metadata `{KEY_FORMAT}` is not `{FORMAT}`)"
            )));
        }
        let currency = key(KEY_CURRENCY)
            .ok_or_else(|| corrupt(format!("metadata `{KEY_CURRENCY}` missing")))
            .and_then(|c| {
                Currency::from_code(&c).map_err(|e| corrupt(format!("{KEY_CURRENCY}: {e}")))
            })?;
        let initial_cash = key(KEY_INITIAL_CASH)
            .ok_or_else(|| corrupt(format!("metadata `{KEY_INITIAL_CASH}` missing")))
            .and_then(|c| {
                Money::parse(&c, currency)
                    .map_err(|e| corrupt(format!("{KEY_INITIAL_CASH} `{c}`: {e}")))
            })?;
        let schema = builder.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        if names != ["ts", "cash", "equity", "gross_exposure"] {
            return Err(corrupt(format!(
                "columns are {names:?}; expected ts, cash, equity, gross_exposure"
            )));
        }
        if !matches!(
            schema.field(0).data_type(),
            DataType::Timestamp(TimeUnit::Nanosecond, _)
        ) {
            return Err(corrupt("`ts` is not a nanosecond timestamp".to_string()));
        }
        for f in &schema.fields()[1..] {
            match f.data_type() {
                DataType::Decimal128(_, s) if (0..=18).contains(s) => {}
                other => {
                    return Err(corrupt(format!(
                        "`{}` is {other}; expected a decimal of at most 18 decimals",
                        f.name()
                    )));
                }
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            builder,
            currency,
            initial_cash,
        })
    }

    /// The account currency the amounts are in.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The initial cash (the drawdown's first peak).
    pub fn initial_cash(&self) -> Money {
        self.initial_cash
    }

    /// Rows in the file.
    pub fn rows(&self) -> u64 {
        self.builder.metadata().file_metadata().num_rows().max(0) as u64
    }

    /// Calls `f` with every row, in order.
    pub fn for_each(self, f: impl FnMut(EquityRow)) -> Result<(), RunError> {
        let (path, currency) = (self.path.clone(), self.currency);
        let reader = self
            .builder
            .with_batch_size(ROWS_PER_GROUP)
            .build()
            .map_err(|e| corrupt(&path, e))?;
        read_batches(&path, currency, reader, f)
    }

    /// The last row (reads only the last row group), or `None` for an empty curve.
    pub fn last(self) -> Result<Option<EquityRow>, RunError> {
        let groups = self.builder.metadata().num_row_groups();
        if groups == 0 {
            return Ok(None);
        }
        let (path, currency) = (self.path.clone(), self.currency);
        let reader = self
            .builder
            .with_row_groups(vec![groups - 1])
            .with_batch_size(ROWS_PER_GROUP)
            .build()
            .map_err(|e| corrupt(&path, e))?;
        let mut last = None;
        read_batches(&path, currency, reader, |row| last = Some(row))?;
        Ok(last)
    }
}

fn corrupt(path: &Path, e: impl std::fmt::Display) -> RunError {
    RunError::Corrupt {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn read_batches(
    path: &Path,
    currency: Currency,
    reader: impl Iterator<Item = Result<RecordBatch, arrow::error::ArrowError>>,
    mut f: impl FnMut(EquityRow),
) -> Result<(), RunError> {
    for batch in reader {
        let batch = batch.map_err(|e| corrupt(path, e))?;
        if batch.columns().iter().any(|c| c.null_count() > 0) {
            return Err(corrupt(path, "null values in the equity curve"));
        }
        let ts = batch.column(0).as_primitive::<TimestampNanosecondType>();
        let money: [(&[i128], i128); 3] = std::array::from_fn(|k| {
            let col = batch.column(k + 1).as_primitive::<Decimal128Type>();
            let scale = match col.data_type() {
                DataType::Decimal128(_, s) => *s,
                _ => 0,
            };
            // Checked at open: 0 ≤ scale ≤ 18.
            let factor = 10i128.pow(u32::from(MONEY_PRECISION) - scale.clamp(0, 18) as u32);
            (col.values().as_ref(), factor)
        });
        let amount = |k: usize, i: usize| -> Result<Money, RunError> {
            let (values, factor) = money[k];
            values[i]
                .checked_mul(factor)
                .map(|raw| Money::from_raw(raw, currency))
                .ok_or_else(|| corrupt(path, format!("{} out of range", MONEY_COLUMNS[k])))
        };
        for (i, t) in ts.values().iter().enumerate() {
            f(EquityRow {
                ts: UnixNanos(*t),
                cash: amount(0, i)?,
                equity: amount(1, i)?,
                gross_exposure: amount(2, i)?,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(raw: i128) -> Money {
        Money::from_raw(raw, Currency::USD)
    }

    #[test]
    fn rescaling_is_exact_or_refused() {
        for scale in [0u8, 2, 5, 9, 12, 18] {
            for wide in [false, true] {
                let r = Rescale::new(MoneyLayout { scale, wide });
                let unit = 10i128.pow(u32::from(18 - scale));
                for q in [
                    0i128,
                    1,
                    -1,
                    7,
                    123_456_789,
                    -987_654_321_012,
                    10i128.pow(17),
                ] {
                    assert_eq!(r.apply(q * unit), Some(q), "scale {scale}, q {q}");
                }
                if scale < 18 {
                    for off in [1i128, unit / 2, unit - 1, unit / 5] {
                        assert_eq!(r.apply(3 * unit + off), None, "scale {scale} off {off}");
                        assert_eq!(r.apply(-3 * unit - off), None, "scale {scale} off {off}");
                    }
                }
            }
            let narrow = Rescale::new(MoneyLayout { scale, wide: false });
            let unit = 10i128.pow(u32::from(18 - scale));
            assert_eq!(narrow.apply(10i128.pow(18) * unit), None, "19 digits");
        }
    }

    #[test]
    fn layout_takes_the_finest_amount_and_the_headroom() {
        let inst = |pp, sp| {
            Instrument::new(
                tradeloom_core::InstrumentId(0),
                tradeloom_core::Symbol::new("X").unwrap(),
                "sim",
                pp,
                sp,
                Currency::USD,
            )
            .unwrap()
        };
        let cash = |units: i128| usd(units * 10i128.pow(18));
        assert_eq!(
            MoneyLayout::for_run(&[inst(2, 0)], cash(1_000_000)),
            MoneyLayout {
                scale: 2,
                wide: false
            }
        );
        assert_eq!(
            MoneyLayout::for_run(&[inst(5, 3)], cash(100)),
            MoneyLayout {
                scale: 8,
                wide: false
            }
        );
        assert_eq!(
            MoneyLayout::for_run(&[inst(2, 8)], cash(1_000_000)),
            MoneyLayout {
                scale: 10,
                wide: true
            }
        );
        let odd_cash = usd(1_000_000_123 * 10i128.pow(13));
        assert_eq!(MoneyLayout::for_run(&[inst(2, 0)], odd_cash).scale, 5);
    }

    fn roundtrip(layout: MoneyLayout, rows: usize) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(EQUITY_FILE);
        let unit = 10i128.pow(u32::from(18 - layout.scale));
        let initial = usd(1_000_000 * 10i128.pow(18));
        let mut w = EquityWriter::new(File::create(&path).unwrap(), layout, initial).unwrap();
        let mut want = Vec::new();
        let mut dd = Drawdown::new(initial);
        let mut dds = Vec::new();
        for i in 0..rows as i128 {
            let point = EquityPoint {
                ts: UnixNanos(1_700_000_000_000_000_000 + 60_000_000_000 * i as i64),
                cash: usd(initial.raw() - (i / 1000) * 37 * unit),
                equity: usd(initial.raw() + ((i * 7919) % 2001 - 1000) * unit),
                drawdown_pct: 0.0,
                gross_exposure: usd((i % 977) * 13 * unit),
            };
            w.push(&point).unwrap();
            dds.push(dd.next(point.equity));
            want.push(EquityRow {
                ts: point.ts,
                cash: point.cash,
                equity: point.equity,
                gross_exposure: point.gross_exposure,
            });
        }
        w.finish().unwrap().sync_all().unwrap();
        let file = EquityFile::open(&path).unwrap();
        assert_eq!(file.rows(), rows as u64);
        assert_eq!(file.initial_cash(), initial);
        let mut got = Vec::new();
        file.for_each(|r| got.push(r)).unwrap();
        assert_eq!(got, want);
        let mut dd = Drawdown::new(initial);
        let again: Vec<f64> = got.iter().map(|r| dd.next(r.equity)).collect();
        assert_eq!(again, dds);
        assert_eq!(
            EquityFile::open(&path).unwrap().last().unwrap(),
            want.last().copied()
        );
    }

    #[test]
    fn narrow_curve_reads_back_exactly_over_several_row_groups() {
        roundtrip(
            MoneyLayout {
                scale: 2,
                wide: false,
            },
            ROWS_PER_GROUP * 2 + 17,
        );
    }

    #[test]
    fn wide_curve_reads_back_exactly() {
        roundtrip(
            MoneyLayout {
                scale: 12,
                wide: true,
            },
            1000,
        );
    }

    #[test]
    fn an_inexact_amount_is_refused_naming_the_column() {
        let dir = tempfile::tempdir().unwrap();
        let layout = MoneyLayout {
            scale: 2,
            wide: false,
        };
        let initial = usd(10i128.pow(20));
        let out = File::create(dir.path().join(EQUITY_FILE)).unwrap();
        let mut w = EquityWriter::new(out, layout, initial).unwrap();
        let err = w
            .push(&EquityPoint {
                ts: UnixNanos(0),
                cash: initial,
                equity: usd(10i128.pow(20) + 1),
                drawdown_pct: 0.0,
                gross_exposure: usd(0),
            })
            .unwrap_err()
            .to_string();
        assert!(err.contains("equity 100.000000000000000001"), "{err}");
        assert!(err.contains("2 decimals"), "{err}");
    }

    #[test]
    fn the_same_rows_give_the_same_bytes() {
        let layout = MoneyLayout {
            scale: 2,
            wide: false,
        };
        let initial = usd(10i128.pow(24));
        let bytes = || {
            let mut w = EquityWriter::new(Vec::new(), layout, initial).unwrap();
            for i in 0..100_000i64 {
                w.push(&EquityPoint {
                    ts: UnixNanos(i * 60_000_000_000),
                    cash: initial,
                    equity: usd(initial.raw() + i128::from(i % 50) * 10i128.pow(16)),
                    drawdown_pct: 0.0,
                    gross_exposure: usd(0),
                })
                .unwrap();
            }
            w.finish().unwrap()
        };
        let a = bytes();
        assert_eq!(a, bytes());
        assert!(a.len() < 100_000 * 4, "{} bytes for 100k rows", a.len());
    }
}
