//! [`StoreError`]: what went wrong in the store, and with which record.

/// Errors of the store. Every message names the operation or record that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record does not exist (`what` names it, e.g. `job 0192…`).
    #[error("{what} not found")]
    NotFound { what: String },
    /// The operation conflicts with the record's current state (already completed, a duplicate,
    /// a job already active for the same configuration).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The caller passed a value the store cannot accept (wrong currency, unparsable URL).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A value read from the database is malformed (a corrupt decimal or unknown status).
    #[error("corrupt data in {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
    /// The database failed; `context` names the operation.
    #[error("database error while trying to {context}: {source}")]
    Database {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// Applying or inspecting migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Creating the data directory for SQLite failed.
    #[error("cannot create the data directory `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// Maps a sqlx error of `context`; unique-constraint violations become [`StoreError::Conflict`].
    pub(crate) fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| {
            let unique = source
                .as_database_error()
                .is_some_and(|e| e.is_unique_violation());
            if unique {
                StoreError::Conflict(format!("{context}: {source}"))
            } else {
                StoreError::Database { context, source }
            }
        }
    }

    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        StoreError::NotFound { what: what.into() }
    }
}
