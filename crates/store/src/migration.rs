//! Migration status for `tradeloom db status` and `db migrate`.

use serde::Serialize;
use sqlx::migrate::Migrator;

/// State of one migration of the back end's embedded set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationState {
    Applied,
    Pending,
    /// Applied, but the file changed since: the database and this build disagree.
    ChecksumMismatch,
    /// Started but failed; the database needs manual repair.
    Failed,
}

/// One migration and its state in the database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MigrationInfo {
    pub version: i64,
    pub description: String,
    pub state: MigrationState,
}

/// Applied rows of `_sqlx_migrations`: `(version, checksum, success)`.
pub(crate) type AppliedRow = (i64, Vec<u8>, bool);

/// Merges the embedded migrations with the applied rows.
pub(crate) fn merge(migrator: &Migrator, applied: &[AppliedRow]) -> Vec<MigrationInfo> {
    migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| {
            let state = match applied.iter().find(|(v, _, _)| *v == m.version) {
                None => MigrationState::Pending,
                Some((_, _, false)) => MigrationState::Failed,
                Some((_, checksum, true)) if checksum[..] == m.checksum[..] => {
                    MigrationState::Applied
                }
                Some(_) => MigrationState::ChecksumMismatch,
            };
            MigrationInfo {
                version: m.version,
                description: m.description.to_string(),
                state,
            }
        })
        .collect()
}
