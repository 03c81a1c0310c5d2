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

/// Why one row or value of a bar file is invalid: the message of a [`DataError::Row`], without
/// the file and place.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RowError {
    /// The timestamp field is empty or null.
    #[error("missing timestamp")]
    MissingTimestamp,
    /// The timestamp text is none of the accepted forms.
    #[error(
        "invalid timestamp `{0}`: expected a date (2024-01-31), a date-time (2024-01-31 09:30:00), RFC 3339, or unix seconds/ms/µs/ns"
    )]
    InvalidTimestamp(String),
    /// A timestamp that does not fit in nanoseconds since 1970.
    #[error("timestamp out of range")]
    TimestampOutOfRange,
    /// A timestamp column of a type that holds no time.
    #[error("timestamp column has unsupported type {0}")]
    TimestampType(String),
    /// The value of the field is empty or null.
    #[error("missing value for `{0}`")]
    Missing(String),
    /// The field is not a decimal number.
    #[error("{field}: {source}")]
    Decimal {
        field: String,
        source: tradeloom_core::fixed::DecimalError,
    },
    /// A numeric column of a type that holds no number.
    #[error("column `{column}` has unsupported type {data_type}")]
    ColumnType { column: String, data_type: String },
    /// A row with fewer fields than the columns it needs.
    #[error("expected at least {needed} fields, found {found}")]
    TooFewFields { needed: usize, found: usize },
    /// The volume text is negative.
    #[error("volume {0} is negative")]
    NegativeVolume(String),
    /// The volume does not fit the instrument's quantity.
    #[error("volume is negative")]
    NegativeQuantity,
    /// `what` (a field, or a field and its text) does not fit in 64 bits at 10^-9.
    #[error("{what} is out of range")]
    OutOfRange { what: String },
    /// A float that is NaN or infinite.
    #[error("{field} is {value}")]
    NotFinite { field: String, value: f64 },
    /// A price with more decimals than the price precision.
    #[error(
        "{field} {value} has more than {precision} decimal places (price_precision {precision})"
    )]
    TooPrecise {
        field: String,
        value: String,
        precision: u8,
    },
    /// An exact decimal with more than 9 decimals.
    #[error("{field} has more than 9 decimal places")]
    BeyondNanos { field: String },
    /// A price with more decimals than the instrument's price precision.
    #[error(
        "{field} {value} has {decimals} decimal places; instrument {symbol} has price_precision {precision}"
    )]
    Precision {
        field: String,
        value: String,
        decimals: usize,
        symbol: String,
        precision: u8,
    },
    /// The bar's prices are inconsistent (e.g. high below low).
    #[error(transparent)]
    Bar(#[from] tradeloom_core::BarError),
    /// The same timestamp as the previous row.
    #[error("duplicate timestamp {0}")]
    DuplicateTimestamp(tradeloom_core::UnixNanos),
    /// A timestamp before the previous row's.
    #[error(
        "timestamp {ts} goes backwards (previous row is {previous}); bars must be in increasing time order"
    )]
    Backwards {
        ts: tradeloom_core::UnixNanos,
        previous: tradeloom_core::UnixNanos,
    },
}
