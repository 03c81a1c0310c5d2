//! Opening a store: [`open_store`] picks the back end from a URL or path (see [`Location`]) and
//! applies pending migrations; [`db_migrate`] and [`db_status`] are `tradeloom db`.

use std::path::Path;
use std::sync::Arc;

use crate::error::StoreError;
use crate::health_store::HealthStore;
use crate::migration::MigrationInfo;
use crate::postgres::PgStore;
use crate::sqlite::SqliteStore;
use crate::store::Store;

/// Where a store lives, parsed from what the user gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file (created with its parent directories if missing).
    Sqlite(std::path::PathBuf),
    /// A `postgres://` or `postgresql://` URL.
    Postgres(String),
}

impl Location {
    /// A `postgres://` / `postgresql://` URL → PostgreSQL; `sqlite://PATH`, `sqlite:PATH` or a
    /// plain path → SQLite. A directory (existing, or a path ending in `/`) means
    /// `DIR/tradeloom.db`.
    pub fn parse(url_or_path: &str) -> Result<Self, StoreError> {
        let s = url_or_path.trim();
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Location::Postgres(s.to_string()));
        }
        let path = if let Some(rest) = s.strip_prefix("sqlite://") {
            rest
        } else if let Some(rest) = s.strip_prefix("sqlite:") {
            rest
        } else if s.contains("://") {
            return Err(StoreError::Invalid(format!(
                "unsupported database URL `{s}`; expected a path, `sqlite://PATH` or `postgres://…`"
            )));
        } else {
            s
        };
        let path = path.split('?').next().unwrap_or(path);
        if path.is_empty() {
            return Err(StoreError::Invalid(
                "empty database path; give a file, a data dir or a postgres:// URL".into(),
            ));
        }
        let p = Path::new(path);
        if path.ends_with('/') || p.is_dir() {
            return Ok(Location::Sqlite(p.join("tradeloom.db")));
        }
        Ok(Location::Sqlite(p.to_path_buf()))
    }
}

/// Opens the store at `url_or_path` (see [`Location::parse`]) and applies pending migrations.
pub async fn open_store(url_or_path: &str) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match Location::parse(url_or_path)? {
        Location::Sqlite(path) => Arc::new(SqliteStore::open(&path).await?),
        Location::Postgres(url) => Arc::new(PgStore::connect(&url).await?),
    })
}

/// `tradeloom db migrate`: applies pending migrations and returns the resulting status.
pub async fn db_migrate(url_or_path: &str) -> Result<Vec<MigrationInfo>, StoreError> {
    open_store(url_or_path).await?.migration_status().await
}

/// `tradeloom db status`: the migration status without applying anything.
pub async fn db_status(url_or_path: &str) -> Result<Vec<MigrationInfo>, StoreError> {
    match Location::parse(url_or_path)? {
        Location::Sqlite(path) => {
            SqliteStore::open_unmigrated(&path)
                .await?
                .migration_status()
                .await
        }
        Location::Postgres(url) => {
            PgStore::connect_unmigrated(&url)
                .await?
                .migration_status()
                .await
        }
    }
}
