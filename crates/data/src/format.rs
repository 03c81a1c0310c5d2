//! [`DataFormat`]: which loader reads a file.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataFormat {
    Csv,
    Parquet,
    /// Arrow IPC file format (`.arrow`, `.ipc`, `.feather` v2).
    ArrowIpc,
}

impl DataFormat {
    /// From the extension: `.csv`; `.parquet`/`.pq`; `.arrow`/`.ipc`/`.feather`.
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(DataFormat::Csv),
            "parquet" | "pq" => Some(DataFormat::Parquet),
            "arrow" | "ipc" | "feather" => Some(DataFormat::ArrowIpc),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DataFormat::Csv => "csv",
            DataFormat::Parquet => "parquet",
            DataFormat::ArrowIpc => "arrow",
        }
    }
}

impl fmt::Display for DataFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DataFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "csv" => Ok(DataFormat::Csv),
            "parquet" => Ok(DataFormat::Parquet),
            "arrow" | "ipc" | "feather" => Ok(DataFormat::ArrowIpc),
            other => Err(format!(
                "unknown data format `{other}`; expected `csv`, `parquet` or `arrow`"
            )),
        }
    }
}

/// The error message for a Parquet or Arrow file in a build without the `columnar` feature
/// (`verb`: `read` or `write`).
#[cfg(any(not(feature = "columnar"), test))]
pub(crate) fn without_columnar(format: DataFormat, verb: &str) -> String {
    format!(
        "this build cannot {verb} {format} files: Parquet and Arrow support is the `columnar` feature of tradeloom-data, which is off; use a CSV file or a build with the feature (the `tradeloom` binary has it)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_without_columnar_names_the_format_and_the_feature() {
        assert_eq!(
            without_columnar(DataFormat::Parquet, "read"),
            "this build cannot read parquet files: Parquet and Arrow support is the `columnar` feature of tradeloom-data, which is off; use a CSV file or a build with the feature (the `tradeloom` binary has it)"
        );
    }
}
