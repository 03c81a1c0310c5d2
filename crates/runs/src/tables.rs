//! A run's CSV artifacts as Arrow record batches, built while the run writes them, for a
//! caller in the same process (the Python package) that would otherwise read the files back.
//!
//! | batch | file | columns |
//! | --- | --- | --- |
//! | [`RunTables::orders`] | `orders.csv` | the file's, every one `Utf8` |
//! | [`RunTables::fills`] | `fills.csv` | the file's, every one `Utf8` |
//! | [`RunTables::trades`] | `trades.csv` | the file's, every one `Utf8` |
//!
//! The tables hold each field exactly as written (exact decimals as text, empty fields as
//! empty strings, never null): the columns are split from the very bytes of each row handed to
//! the file, so the file and the batch cannot disagree.
//!
//! The equity curve has no batch here: a row per bar kept in memory cost more than the rest of
//! the tables together (56 bytes a bar in freshly faulted memory, ~10 % of a warm 1M-bar
//! backtest), and `equity.parquet` is columnar already, so a reader decodes it when asked.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::error::ArrowError;

/// The tables of a finished run (see the module documentation).
#[derive(Clone, Debug)]
pub struct RunTables {
    pub orders: RecordBatch,
    pub fills: RecordBatch,
    pub trades: RecordBatch,
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
        if !fields.contains('"') {
            // Nearly every row: no quoted field, each field is a slice of the line.
            for column in &mut self.columns {
                let end = fields.bytes().position(|b| b == b',');
                let (field, rest) = match end {
                    Some(at) => (&fields[..at], &fields[at + 1..]),
                    None => (fields, ""),
                };
                column.append_value(field);
                fields = rest;
            }
            return;
        }
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
        // Without quotes (the common path): empty fields, missing trailing ones.
        t.push_line(b"a,,c,d");
        t.push_line(b"5,6");
        let batch = t.finish().unwrap();
        assert_eq!(batch.schema().field(2).name(), "c");
        assert_eq!(column(&batch, 0), ["1", "", "1", "a", "5"]);
        assert_eq!(column(&batch, 1), ["", "2", "2", "", "6"]);
        assert_eq!(
            column(&batch, 2),
            ["x, \"y\"", "plain", "three\nlines", "c", ""]
        );
        assert_eq!(column(&batch, 3), ["4", "", "", "d", ""]);
    }
}
