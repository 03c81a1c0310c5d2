//! The CSV artifacts of a run folder (`orders.csv`, `fills.csv`, `trades.csv`) as pages of JSON
//! rows for `GET /runs/{id}/orders|fills|trades`: each row an object keyed by the header's
//! column names, every value the exact text of the file (money and quantities stay decimal
//! strings; an empty field is `null`).

use serde_json::{Map, Value};

/// One page of a CSV table.
pub(crate) struct TablePage {
    pub columns: Vec<String>,
    pub rows: Vec<Value>,
    /// Data rows in the whole file.
    pub total: u64,
}

/// Why a table could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TableError {
    /// The file has no header line.
    Empty,
    /// A record is malformed (an unterminated quote) or has the wrong number of fields; the
    /// 1-based record number.
    Malformed { record: u64 },
}

/// The records of RFC 4180 CSV text (quoted fields may hold commas, quotes and newlines).
pub(crate) fn records(text: &str) -> Result<Vec<Vec<String>>, TableError> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut at_field_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                other => field.push(other),
            }
            continue;
        }
        match c {
            '"' if at_field_start => {
                quoted = true;
                at_field_start = false;
            }
            ',' => {
                record.push(std::mem::take(&mut field));
                at_field_start = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
                at_field_start = true;
            }
            other => {
                field.push(other);
                at_field_start = false;
            }
        }
    }
    if quoted {
        return Err(TableError::Malformed {
            record: records.len() as u64 + 1,
        });
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    Ok(records)
}

/// Rows `offset .. offset + limit` of CSV `text` (after its header).
pub(crate) fn page(text: &str, offset: u64, limit: u64) -> Result<TablePage, TableError> {
    let mut records = records(text)?.into_iter();
    let columns = records.next().ok_or(TableError::Empty)?;
    let mut rows = Vec::new();
    let mut total = 0u64;
    for (i, record) in records.enumerate() {
        if record.len() != columns.len() {
            return Err(TableError::Malformed {
                record: i as u64 + 2,
            });
        }
        if total >= offset && total < offset.saturating_add(limit) {
            let row: Map<String, Value> = columns
                .iter()
                .zip(record)
                .map(|(name, value)| {
                    let value = if value.is_empty() {
                        Value::Null
                    } else {
                        Value::String(value)
                    };
                    (name.clone(), value)
                })
                .collect();
            rows.push(Value::Object(row));
        }
        total += 1;
    }
    Ok(TablePage {
        columns,
        rows,
        total,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn quoted_fields_keep_commas_quotes_and_newlines() {
        let text = "a,b,c\n1,\"x, \"\"y\"\"\nz\",\n2,3.10,w\n";
        let p = page(text, 0, 10).unwrap();
        assert_eq!(p.columns, ["a", "b", "c"]);
        assert_eq!(p.total, 2);
        assert_eq!(p.rows[0], json!({"a": "1", "b": "x, \"y\"\nz", "c": null}));
        assert_eq!(p.rows[1], json!({"a": "2", "b": "3.10", "c": "w"}));
    }

    #[test]
    fn pages_count_every_row() {
        let text = "n\n1\n2\n3\n4\n5";
        let p = page(text, 3, 2).unwrap();
        assert_eq!(p.total, 5);
        assert_eq!(p.rows, vec![json!({"n": "4"}), json!({"n": "5"})]);
        assert!(page(text, 9, 2).unwrap().rows.is_empty());
    }

    #[test]
    fn malformed_text_names_the_record() {
        assert_eq!(page("", 0, 1).err(), Some(TableError::Empty));
        assert_eq!(
            page("a,b\n1,2\n3\n", 0, 1).err(),
            Some(TableError::Malformed { record: 3 })
        );
        assert_eq!(
            page("a\n\"open\n", 0, 1).err(),
            Some(TableError::Malformed { record: 2 })
        );
    }
}
