//! Scan files: one row per instrument (a key column such as `symbol`, a price, any other
//! columns), in Arrow IPC, Parquet, CSV or JSON lines, chosen by the file's extension.
//!
//! Reading gives the rows as JSON objects of their columns, keyed by the key column, in the
//! file's row order. Numbers stay numbers (CSV cells that parse as numbers become numbers),
//! text stays text, empty cells are `null`. Anything that keeps a file from being one clean
//! scan (bad syntax, a row without a key, a key given twice) is a [`ScanFileError`] naming the
//! file and the line or row.

use std::path::{Path, PathBuf};

use serde_json::{Map, Number, Value};

/// The format of a scan file, from its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanFormat {
    /// `.arrow`, `.ipc`, `.feather`: the Arrow IPC file format.
    ArrowIpc,
    /// `.parquet`.
    Parquet,
    /// `.csv`: a header line, then one row per line.
    Csv,
    /// `.jsonl`, `.ndjson`: one JSON object per line.
    JsonLines,
}

impl ScanFormat {
    /// The format of a file name, or `None` for a file that is not a scan (unknown extension,
    /// a dotfile, a temporary or partial file).
    pub fn of(name: &str) -> Option<Self> {
        if name.starts_with('.') || name.ends_with(".tmp") || name.ends_with(".partial") {
            return None;
        }
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "arrow" | "ipc" | "feather" => Some(ScanFormat::ArrowIpc),
            "parquet" => Some(ScanFormat::Parquet),
            "csv" => Some(ScanFormat::Csv),
            "jsonl" | "ndjson" => Some(ScanFormat::JsonLines),
            _ => None,
        }
    }
}

/// One scan read from a file: `(key, row)` in row order, each row an object of its columns.
pub type ScanRows = Vec<(String, Map<String, Value>)>;

/// A scan file that could not be read as one clean scan.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", path.display(), place.as_deref().map(|p| format!(" {p}")).unwrap_or_default())]
pub struct ScanFileError {
    /// The file.
    pub path: PathBuf,
    /// `line 3`, `row 7`, when the fault is in one place.
    pub place: Option<String>,
    /// What is wrong.
    pub message: String,
}

fn fail(path: &Path, place: Option<String>, message: impl Into<String>) -> ScanFileError {
    ScanFileError {
        path: path.to_path_buf(),
        place,
        message: message.into(),
    }
}

/// Reads scan file `path` of `format`; `key` names the column the rows are keyed by.
pub fn read_scan(path: &Path, format: ScanFormat, key: &str) -> Result<ScanRows, ScanFileError> {
    let rows = match format {
        ScanFormat::Csv => read_csv(path)?,
        ScanFormat::JsonLines => read_json_lines(path)?,
        ScanFormat::ArrowIpc | ScanFormat::Parquet => columnar::read(path, format)?,
    };
    key_rows(path, format, rows, key)
}

/// Keys every row by its `key` column; errors name the row (CSV and JSON lines: the line).
fn key_rows(
    path: &Path,
    format: ScanFormat,
    rows: Vec<Map<String, Value>>,
    key: &str,
) -> Result<ScanRows, ScanFileError> {
    let place = |i: usize| match format {
        // Line 1 of a CSV file is its header.
        ScanFormat::Csv => format!("line {}", i + 2),
        ScanFormat::JsonLines => format!("line {}", i + 1),
        _ => format!("row {}", i + 1),
    };
    let mut seen = std::collections::HashSet::with_capacity(rows.len());
    let mut out = Vec::with_capacity(rows.len());
    for (i, row) in rows.into_iter().enumerate() {
        let name = match row.get(key) {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Null) | None => {
                return Err(fail(
                    path,
                    Some(place(i)),
                    format!("no `{key}` (the key column)"),
                ));
            }
            Some(other) => {
                return Err(fail(
                    path,
                    Some(place(i)),
                    format!("`{key}` (the key column) must be text, got {other}"),
                ));
            }
        };
        if !seen.insert(name.clone()) {
            return Err(fail(
                path,
                Some(place(i)),
                format!("`{key}` `{name}` appears twice in one scan"),
            ));
        }
        out.push((name, row));
    }
    Ok(out)
}

/// A CSV cell as JSON: empty → `null`, an integer or a finite decimal → a number, else text.
fn cell_value(cell: &str) -> Value {
    let cell = cell.trim();
    if cell.is_empty() {
        return Value::Null;
    }
    if let Ok(i) = cell.parse::<i64>() {
        return Value::Number(i.into());
    }
    if let Ok(f) = cell.parse::<f64>()
        && let Some(n) = Number::from_f64(f)
        && f.is_finite()
    {
        return Value::Number(n);
    }
    Value::String(cell.to_string())
}

/// Splits one CSV line into cells: commas separate, double quotes quote (`""` is a quote).
fn csv_cells(line: &str) -> Result<Vec<String>, String> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) if cell.trim().is_empty() => {
                cell.clear();
                quoted = true;
            }
            (',', false) => cells.push(std::mem::take(&mut cell)),
            (c, _) => cell.push(c),
        }
    }
    if quoted {
        return Err("a quoted cell is not closed".to_string());
    }
    cells.push(cell);
    Ok(cells)
}

fn read_text(path: &Path) -> Result<String, ScanFileError> {
    let bytes = std::fs::read(path).map_err(|e| fail(path, None, e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| fail(path, None, format!("not UTF-8 text: {e}")))
}

fn read_csv(path: &Path) -> Result<Vec<Map<String, Value>>, ScanFileError> {
    let text = read_text(path)?;
    if !text.is_empty() && !text.ends_with('\n') {
        // A writer that was cut off mid-line leaves no final newline: never read half a row.
        return Err(fail(
            path,
            None,
            "the last line has no line end (a partial write?)",
        ));
    }
    let mut lines = text.lines().enumerate();
    let header = match lines.next() {
        Some((_, header)) if !header.trim().is_empty() => header.trim_start_matches('\u{feff}'),
        _ => return Err(fail(path, None, "empty: expected a header line")),
    };
    let names = csv_cells(header).map_err(|m| fail(path, Some("line 1".into()), m))?;
    let names: Vec<String> = names.into_iter().map(|n| n.trim().to_string()).collect();
    if let Some(i) = names.iter().position(|n| n.is_empty()) {
        return Err(fail(
            path,
            Some("line 1".into()),
            format!("column {} has no name", i + 1),
        ));
    }
    let mut rows = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let place = Some(format!("line {}", i + 1));
        let cells = csv_cells(line).map_err(|m| fail(path, place.clone(), m))?;
        if cells.len() != names.len() {
            return Err(fail(
                path,
                place,
                format!(
                    "{} cells, but the header has {} columns",
                    cells.len(),
                    names.len()
                ),
            ));
        }
        rows.push(
            names
                .iter()
                .cloned()
                .zip(cells.iter().map(|c| cell_value(c)))
                .collect(),
        );
    }
    Ok(rows)
}

fn read_json_lines(path: &Path) -> Result<Vec<Map<String, Value>>, ScanFileError> {
    let text = read_text(path)?;
    if !text.is_empty() && !text.ends_with('\n') {
        return Err(fail(
            path,
            None,
            "the last line has no line end (a partial write?)",
        ));
    }
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let place = Some(format!("line {}", i + 1));
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(row)) => rows.push(row),
            Ok(other) => {
                return Err(fail(
                    path,
                    place,
                    format!("expected a JSON object, got {}", json_kind(&other)),
                ));
            }
            Err(e) => return Err(fail(path, place, format!("not JSON: {e}"))),
        }
    }
    Ok(rows)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Arrow IPC and Parquet: every record batch, each cell converted to JSON by its column type.
mod columnar {
    use std::fs::File;
    use std::path::Path;

    use arrow::array::{Array, AsArray, RecordBatch};
    use arrow::datatypes::{
        DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
        UInt16Type, UInt32Type, UInt64Type,
    };
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    use serde_json::{Map, Number, Value};

    use super::{ScanFileError, ScanFormat, fail};

    pub(super) fn read(
        path: &Path,
        format: ScanFormat,
    ) -> Result<Vec<Map<String, Value>>, ScanFileError> {
        let file = File::open(path).map_err(|e| fail(path, None, e.to_string()))?;
        let batches: Vec<RecordBatch> = match format {
            ScanFormat::Parquet => {
                let reader =
                    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                        .and_then(|b| b.build())
                        .map_err(|e| {
                            fail(path, None, format!("not a readable Parquet file: {e}"))
                        })?;
                reader
                    .collect::<Result<_, _>>()
                    .map_err(|e| fail(path, None, format!("Parquet data: {e}")))?
            }
            _ => {
                let reader = arrow::ipc::reader::FileReader::try_new(file, None)
                    .map_err(|e| fail(path, None, format!("not a readable Arrow IPC file: {e}")))?;
                reader
                    .collect::<Result<_, _>>()
                    .map_err(|e| fail(path, None, format!("Arrow IPC data: {e}")))?
            }
        };
        let mut rows = Vec::new();
        for batch in &batches {
            let schema = batch.schema();
            let mut batch_rows: Vec<Map<String, Value>> = vec![Map::new(); batch.num_rows()];
            for (field, column) in schema.fields().iter().zip(batch.columns()) {
                for (r, row) in batch_rows.iter_mut().enumerate() {
                    let value = cell(column.as_ref(), r).map_err(|m| {
                        fail(
                            path,
                            Some(format!("row {}", rows.len() + r + 1)),
                            format!("column `{}`: {m}", field.name()),
                        )
                    })?;
                    row.insert(field.name().clone(), value);
                }
            }
            rows.extend(batch_rows);
        }
        Ok(rows)
    }

    fn float(f: f64) -> Value {
        Number::from_f64(f).map_or(Value::Null, Value::Number)
    }

    fn cell(column: &dyn Array, r: usize) -> Result<Value, String> {
        if column.is_null(r) {
            return Ok(Value::Null);
        }
        Ok(match column.data_type() {
            DataType::Boolean => Value::Bool(column.as_boolean().value(r)),
            DataType::Int8 => column.as_primitive::<Int8Type>().value(r).into(),
            DataType::Int16 => column.as_primitive::<Int16Type>().value(r).into(),
            DataType::Int32 => column.as_primitive::<Int32Type>().value(r).into(),
            DataType::Int64 => column.as_primitive::<Int64Type>().value(r).into(),
            DataType::UInt8 => column.as_primitive::<UInt8Type>().value(r).into(),
            DataType::UInt16 => column.as_primitive::<UInt16Type>().value(r).into(),
            DataType::UInt32 => column.as_primitive::<UInt32Type>().value(r).into(),
            DataType::UInt64 => column.as_primitive::<UInt64Type>().value(r).into(),
            DataType::Float32 => float(f64::from(column.as_primitive::<Float32Type>().value(r))),
            DataType::Float64 => float(column.as_primitive::<Float64Type>().value(r)),
            DataType::Utf8 => Value::String(column.as_string::<i32>().value(r).to_string()),
            DataType::LargeUtf8 => Value::String(column.as_string::<i64>().value(r).to_string()),
            DataType::Utf8View => Value::String(column.as_string_view().value(r).to_string()),
            // Times, dates, decimals and the rest: their display text (RFC 3339 for
            // timestamps).
            _ => {
                let formatter = ArrayFormatter::try_new(column, &FormatOptions::default())
                    .map_err(|e| e.to_string())?;
                Value::String(formatter.value(r).to_string())
            }
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_extensions_and_temporary_files_are_not_scans() {
        assert_eq!(ScanFormat::of("scan-1.arrow"), Some(ScanFormat::ArrowIpc));
        assert_eq!(ScanFormat::of("scan-1.PARQUET"), Some(ScanFormat::Parquet));
        assert_eq!(ScanFormat::of("scan-1.csv"), Some(ScanFormat::Csv));
        assert_eq!(ScanFormat::of("scan-1.jsonl"), Some(ScanFormat::JsonLines));
        for not_a_scan in [
            ".scan-1.csv",
            "scan-1.csv.tmp",
            "scan-1.csv.partial",
            "scan-1.txt",
            "README",
        ] {
            assert_eq!(ScanFormat::of(not_a_scan), None, "{not_a_scan}");
        }
    }

    #[test]
    fn csv_cells_become_numbers_text_or_null_and_rows_are_keyed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.csv");
        std::fs::write(
            &path,
            "symbol,price,score,note\nAAA,10.5,0.9,\"a, b\"\nBBB,20,,x\n",
        )
        .unwrap();
        let rows = read_scan(&path, ScanFormat::Csv, "symbol").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0, "AAA");
        assert_eq!(
            Value::Object(rows[0].1.clone()),
            serde_json::json!({"symbol": "AAA", "price": 10.5, "score": 0.9, "note": "a, b"})
        );
        assert_eq!(
            Value::Object(rows[1].1.clone()),
            serde_json::json!({"symbol": "BBB", "price": 20, "score": null, "note": "x"})
        );
    }

    #[test]
    fn bad_files_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "a.csv",
                "symbol,price\nAAA,1\nAAA,2\n",
                "line 3: `symbol` `AAA` appears twice",
            ),
            (
                "b.csv",
                "symbol,price\nAAA,1,2\n",
                "line 2: 3 cells, but the header has 2",
            ),
            (
                "c.csv",
                "symbol,price\nAAA,1\nBB",
                "no line end (a partial write?)",
            ),
            (
                "d.csv",
                "price\n1\n",
                "line 2: no `symbol` (the key column)",
            ),
            (
                "e.jsonl",
                "{\"symbol\":\"A\"}\n[1]\n",
                "line 2: expected a JSON object, got an array",
            ),
            ("f.jsonl", "{\"symbol\":\"A\"\n", "line 1: not JSON"),
            ("g.csv", "", "empty: expected a header line"),
        ];
        for (name, text, expected) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let format = ScanFormat::of(name).unwrap();
            let err = read_scan(&path, format, "symbol").unwrap_err().to_string();
            assert!(
                err.contains(name) && err.contains(expected),
                "{name}: {err}"
            );
        }
    }
}
