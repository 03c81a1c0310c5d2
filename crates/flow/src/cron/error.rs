//! What is wrong with a cron expression, a time zone or a schedule. Each displays as the
//! sentence the workflow's author reads, naming the field and the value.

/// A cron expression that does not parse, or can never fire.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// `@something` that is not one of the macros; `expected` lists them.
    #[error("unknown cron macro `{text}`; expected one of {expected}")]
    UnknownMacro { text: String, expected: String },
    /// Not five fields.
    #[error(
        "cron `{text}` has {count} field(s); expected 5 (minute hour day-of-month month day-of-week), like `0 6 * * *`"
    )]
    FieldCount { text: String, count: usize },
    /// One field (`minute`, `hour`, …) that does not parse.
    #[error("cron field {field} `{text}`: {problem}")]
    Field {
        field: &'static str,
        text: String,
        problem: FieldError,
    },
    /// An expression no date matches (`0 0 30 2 *`).
    #[error("cron `{text}` never fires: no chosen month has the chosen day of the month")]
    NeverFires { text: String },
}

/// What is wrong inside one cron field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// Neither a number nor a name of the field.
    #[error("`{0}` is not a number")]
    NotANumber(String),
    /// A value outside the field's bounds.
    #[error("{value} is out of range {min}-{max}")]
    OutOfRange { value: u32, min: u32, max: u32 },
    /// A `/step` that is zero or not a number.
    #[error("step `{0}` must be a positive number")]
    BadStep(String),
    /// A range `a-b` with `a > b`.
    #[error("range {low}-{high} is backwards")]
    Backwards { low: u32, high: u32 },
}

/// A time zone that is not `UTC`, a fixed offset or a name of the IANA database.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TzError {
    /// Not shaped like any kind of zone.
    #[error("time zone `{0}` is not `UTC`, an offset like `+02:00` or a name like `Europe/Paris`")]
    Shape(String),
    /// An unknown name close to a known one (case, or the region).
    #[error("unknown time zone `{text}`; did you mean `{suggestion}`?")]
    Misspelt { text: String, suggestion: String },
    /// An unknown name; `version` is the tz database's.
    #[error(
        "unknown time zone `{text}`; expected `UTC`, an offset like `+02:00` or an IANA name like `Europe/Paris` (tz database {version})"
    )]
    Unknown { text: String, version: &'static str },
    /// An offset that is not `±HH:MM` or `±HHMM`.
    #[error("time zone offset `{0}` must look like `+02:00` or `-0530` (sign, hours, minutes)")]
    BadOffset(String),
    /// An offset beyond ±23:59.
    #[error("time zone offset `{0}` is out of range (at most ±23:59)")]
    OffsetOutOfRange(String),
}

/// A workflow `schedule` that cannot be read, prefixed with its field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("cron: {0}")]
    Cron(CronError),
    #[error("timezone: {0}")]
    Timezone(TzError),
}
