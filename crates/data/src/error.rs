//! [`DataError`]: every error names the file and, where it applies, the line or row.

use std::fmt;
use std::path::PathBuf;

/// Where in a file: a CSV line (1-based, physical) or a columnar row (1-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Line(u64),
    Row(u64),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Line(n) => write!(f, ":{n}"),
            Place::Row(n) => write!(f, ": row {n}"),
        }
    }
}

/// A data file could not be read, or holds invalid bars.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{}: cannot open: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: read error: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file's header or schema is unusable.
    #[error("{}: {message}", path.display())]
    Schema { path: PathBuf, message: String },
    /// One row is invalid.
    #[error("{}{place}: {message}", path.display())]
    Row {
        path: PathBuf,
        place: Place,
        message: String,
    },
    /// Data given in memory is invalid, or a request names something that is not there.
    #[error("{message}")]
    Invalid { message: String },
    /// Writing a file failed.
    #[error("{}: cannot write: {message}", path.display())]
    Write { path: PathBuf, message: String },
}

impl DataError {
    /// The line or row of a row error.
    pub fn place(&self) -> Option<Place> {
        match self {
            DataError::Row { place, .. } => Some(*place),
            _ => None,
        }
    }
}
