//! A run's tables as Arrow record batches, built while the run writes its artifacts, for a
//! caller in the same process (the Python package) that would otherwise read the files back.
//!
//! | batch | file | columns |
//! | --- | --- | --- |
//! | [`RunTables::orders`] | `orders.csv` | the file's, every one `Utf8` |
//! | [`RunTables::fills`] | `fills.csv` | the file's, every one `Utf8` |
//! | [`RunTables::trades`] | `trades.csv` | the file's, every one `Utf8` |
//! | [`RunTables::equity`] | `equity.parquet` | `ts` `Timestamp(ns, "UTC")`, the money columns `Decimal128(p, s)` |
//!
//! The CSV tables hold each field exactly as written (exact decimals as text, empty fields as
//! empty strings, never null): the columns are split from the very bytes of each row handed to
//! the file, so the file and the batch cannot disagree. The equity batch holds the values the
//! Parquet writer stores, with the same types, nullability and key-value metadata as a reader
//! of the file gets.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, PrimitiveArray, RecordBatch, StringBuilder};
use arrow::datatypes::{
    DataType, Decimal128Type, Field, Schema, TimeUnit, TimestampNanosecondType,
};
use arrow::error::ArrowError;

/// The tables of a finished run (see the module documentation).
#[derive(Clone, Debug)]
pub struct RunTables {
    pub orders: RecordBatch,
    pub fills: RecordBatch,
    pub trades: RecordBatch,
    pub equity: RecordBatch,
}

/// The columns of one CSV artifact, all text, filled a row at a time.
#[derive(Debug)]
pub(crate) struct CsvColumns {
    names: Vec<String>,
    columns: Vec<StringBuilder>,
}

impl CsvColumns {
    /// Columns named by `header` (the file's first line, with or without its newline).
    pub(crate) fn new(header: &str) -> Self {
        let names: Vec<String> = header.trim_end().split(',').map(str::to_string).collect();
        let columns = names.iter().map(|_| StringBuilder::new()).collect();
        Self { names, columns }
    }

    /// Appends one row given as the CSV line written (without its newline): fields separated
    /// by commas, a field holding a comma, quote or newline quoted with `"` (inner quotes
    /// doubled), as [`crate::artifacts`] writes them. Missing trailing fields are empty.
    pub(crate) fn push_line(&mut self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let mut fields = line.as_ref();
        let mut field = String::new();
        for column in &mut self.columns {
            field.clear();
            if let Some(quoted) = fields.strip_prefix('"') {
                let mut rest = quoted;
                loop {
                    match rest.find('"') {
                        Some(at) if rest[at + 1..].starts_with('"') => {
                            field.push_str(&rest[..=at]);
                            rest = &rest[at + 2..];
                        }
                        Some(at) => {
                            field.push_str(&rest[..at]);
                            rest = &rest[at + 1..];
                            break;
                        }
                        None => {
                            field.push_str(rest);
                            rest = "";
                            break;
                        }
                    }
                }
                fields = rest.strip_prefix(',').unwrap_or(rest);
            } else {
                let end = fields.find(',').unwrap_or(fields.len());
                field.push_str(&fields[..end]);
                fields = fields.get(end + 1..).unwrap_or("");
            }
            column.append_value(&field);
        }
    }

    /// Appends one row given field by field (missing trailing fields are empty).
    pub(crate) fn push_fields(&mut self, fields: &[String]) {
        for (i, column) in self.columns.iter_mut().enumerate() {
            column.append_value(fields.get(i).map_or("", String::as_str));
        }
    }

    /// The rows so far as a batch of nullable `Utf8` columns.
    pub(crate) fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let fields: Vec<Field> = self
            .names
            .iter()
            .map(|n| Field::new(n, DataType::Utf8, true))
            .collect();
        let columns: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|c| Arc::new(c.finish()) as ArrayRef)
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
    }
}

/// The equity curve's columns as the Parquet writer stores them: nanosecond timestamps and
/// money already rescaled to `scale` decimals.
#[derive(Debug)]
pub(crate) struct EquityColumns {
    pub(crate) ts: Vec<i64>,
    pub(crate) money: [Vec<i128>; 3],
}

impl EquityColumns {
    pub(crate) fn new() -> Self {
        Self {
            ts: Vec::new(),
            money: std::array::from_fn(|_| Vec::new()),
        }
    }

    /// The batch of `ts` and the money columns `names` as `Decimal128(precision, scale)`, with
    /// the file's key-value `metadata`.
    pub(crate) fn finish(
        self,
        names: [&str; 3],
        precision: u8,
        scale: u8,
        metadata: HashMap<String, String>,
    ) -> Result<RecordBatch, ArrowError> {
        let ts_type = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
        let money_type = DataType::Decimal128(precision, scale as i8);
        let mut fields = vec![Field::new("ts", ts_type, false)];
        fields.extend(names.map(|n| Field::new(n, money_type.clone(), false)));
        let mut columns: Vec<ArrayRef> = vec![Arc::new(
            PrimitiveArray::<TimestampNanosecondType>::from(self.ts).with_timezone("UTC"),
        )];
        for values in self.money {
            columns.push(Arc::new(
                PrimitiveArray::<Decimal128Type>::from(values)
                    .with_precision_and_scale(precision, scale as i8)?,
            ));
        }
        RecordBatch::try_new(
            Arc::new(Schema::new_with_metadata(fields, metadata)),
            columns,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;

    fn column(batch: &RecordBatch, i: usize) -> Vec<String> {
        batch
            .column(i)
            .as_string::<i32>()
            .iter()
            .map(|v| v.unwrap_or("<null>").to_string())
            .collect()
    }

    #[test]
    fn lines_split_into_the_fields_written() {
        let mut t = CsvColumns::new("a,b,c,d\n");
        t.push_line(b"1,,\"x, \"\"y\"\"\",4");
        t.push_line(b"\"\",2,plain");
        t.push_line(b"1,2,\"three\nlines\",");
        let batch = t.finish().unwrap();
        assert_eq!(batch.schema().field(2).name(), "c");
        assert_eq!(column(&batch, 0), ["1", "", "1"]);
        assert_eq!(column(&batch, 1), ["", "2", "2"]);
        assert_eq!(column(&batch, 2), ["x, \"y\"", "plain", "three\nlines"]);
        assert_eq!(column(&batch, 3), ["4", "", ""]);
    }
}
