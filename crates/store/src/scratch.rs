//! [`ScratchDatabase`]: a throw-away PostgreSQL database for tests and benchmarks, created on
//! the server of a base URL and dropped afterwards, so parallel suites never share tables.

use sqlx::Connection;

use crate::error::StoreError;

/// A database created by [`ScratchDatabase::create`]; [`drop_database`](Self::drop_database)
/// removes it.
#[derive(Debug, Clone)]
pub struct ScratchDatabase {
    base_url: String,
    name: String,
    url: String,
}

impl ScratchDatabase {
    /// Creates `<prefix>_<uuidv7>` on the server of `base_url` (a `postgres://` URL of any
    /// database there the user may connect to, with CREATEDB rights).
    pub async fn create(base_url: &str, prefix: &str) -> Result<Self, StoreError> {
        if !prefix.chars().all(|c| c.is_ascii_lowercase() || c == '_') || prefix.is_empty() {
            return Err(StoreError::Invalid(format!(
                "database prefix `{prefix}` must be lower-case letters and `_`"
            )));
        }
        let mut admin = sqlx::PgConnection::connect(base_url)
            .await
            .map_err(StoreError::db("connect to PostgreSQL"))?;
        let name = format!("{prefix}_{}", uuid::Uuid::now_v7().simple());
        // `name` is built from a checked prefix and a hex uuid: safe to splice.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .map_err(StoreError::db("create a scratch database"))?;
        Ok(Self {
            url: with_database(base_url, &name),
            base_url: base_url.to_string(),
            name,
        })
    }

    /// The URL of the new database.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database, closing anything still connected to it.
    pub async fn drop_database(self) -> Result<(), StoreError> {
        let mut admin = sqlx::PgConnection::connect(&self.base_url)
            .await
            .map_err(StoreError::db("connect to PostgreSQL"))?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut admin)
        .await
        .map_err(StoreError::db("drop a scratch database"))?;
        Ok(())
    }
}

/// `base` with its database name replaced by `db` (query parameters kept).
pub fn with_database(base: &str, db: &str) -> String {
    let (url, query) = match base.split_once('?') {
        Some((u, q)) => (u, Some(q)),
        None => (base, None),
    };
    let host_start = url.find("://").map_or(0, |i| i + 3);
    let path_start = url[host_start..]
        .find('/')
        .map_or(url.len(), |i| host_start + i);
    let mut out = format!("{}/{db}", &url[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=disable", "x"),
            "postgresql://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}
