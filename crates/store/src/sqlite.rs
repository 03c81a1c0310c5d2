//! [`SqliteStore`]: the embedded back end — one file under the data dir, WAL journal, a busy
//! timeout so concurrent writers queue instead of failing, foreign keys on.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Sqlite};
use tokio::sync::Mutex;

use crate::error::StoreError;
use crate::sql::{
    Backend, BoxFuture, Db, Done, Driver, On, Record, Statement, Tx, arguments, lock_gate,
};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a writer waits for the lock before failing with "database is locked", unless
/// [`BUSY_TIMEOUT_ENV`] says otherwise.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Environment variable overriding [`BUSY_TIMEOUT`] in milliseconds (e.g. short, so that an
/// unavailable store answers with an error quickly instead of queueing writers for 30 s).
pub const BUSY_TIMEOUT_ENV: &str = "TRADELOOM_SQLITE_BUSY_TIMEOUT_MS";

/// [`BUSY_TIMEOUT`], or [`BUSY_TIMEOUT_ENV`] when it is set.
pub fn busy_timeout() -> Result<Duration, StoreError> {
    match std::env::var(BUSY_TIMEOUT_ENV) {
        Err(_) => Ok(BUSY_TIMEOUT),
        Ok(text) => text
            .trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| {
                StoreError::Invalid(format!(
                    "{BUSY_TIMEOUT_ENV}={text:?} is not a whole number of milliseconds"
                ))
            }),
    }
}

/// The write lock of a SQLite database held open (see [`SqliteStore::lock_exclusive`]); rolled
/// back (nothing was written) when released or dropped.
pub struct ExclusiveLock(sqlx::Transaction<'static, sqlx::Sqlite>);

impl ExclusiveLock {
    /// Ends the transaction and so frees the lock.
    pub async fn release(self) -> Result<(), StoreError> {
        self.0
            .rollback()
            .await
            .map_err(StoreError::db("release the SQLite write lock"))
    }
}

/// The SQLite implementation of [`crate::Store`] (through [`Db`]).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    path: PathBuf,
    /// One writer at a time, queued here rather than in SQLite's busy handler (which sleeps
    /// in steps of milliseconds while the lock is held, and so wastes most of the time under
    /// contention).
    write_lock: Arc<Mutex<()>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let store = Self::open_unmigrated(path).await?;
        MIGRATOR.run(&store.pool).await?;
        Ok(store)
    }

    /// Opens the database file without migrating (for `db status`).
    pub async fn open_unmigrated(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(StoreError::db("build SQLite options"))?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(busy_timeout()?);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(StoreError::db("open the SQLite database"))?;
        Ok(Self {
            pool,
            path: path.to_path_buf(),
            write_lock: Arc::default(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection pool, for callers that need a query the trait does not offer.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Takes the database's write lock (`BEGIN EXCLUSIVE`) and holds it until the returned
    /// guard is released or dropped: every other writer of the file, in this process or
    /// another, waits its busy timeout and fails. For failure drills; readers are not blocked
    /// (WAL).
    pub async fn lock_exclusive(&self) -> Result<ExclusiveLock, StoreError> {
        let tx = self
            .pool
            .begin_with("BEGIN EXCLUSIVE")
            .await
            .map_err(StoreError::db("take the SQLite write lock"))?;
        Ok(ExclusiveLock(tx))
    }
}

impl Db for SqliteStore {
    type Driver = Sqlite;

    const BACKEND: Backend = Backend::Sqlite;

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn write_gate(&self) -> Option<Arc<Mutex<()>>> {
        Some(self.write_lock.clone())
    }

    fn begin(&self) -> BoxFuture<'_, Result<Tx<Sqlite>, sqlx::Error>> {
        Box::pin(async move {
            let gate = lock_gate(self.write_gate()).await;
            let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
            Ok(Tx::new(tx, gate))
        })
    }
}

impl Driver for Sqlite {
    fn execute(on: On<'_, Self>, statement: Statement) -> BoxFuture<'_, Result<Done, sqlx::Error>> {
        Box::pin(async move {
            let args = arguments::<Sqlite>(statement.args).map_err(sqlx::Error::Encode)?;
            let query = sqlx::query_with(AssertSqlSafe(statement.text), args);
            let done = match on {
                On::Pool(pool) => query.execute(pool).await?,
                On::Tx(conn) => query.execute(conn).await?,
            };
            Ok(Done(done.rows_affected()))
        })
    }

    fn fetch_all<R: Record>(
        on: On<'_, Self>,
        statement: Statement,
    ) -> BoxFuture<'_, Result<Vec<R>, sqlx::Error>> {
        Box::pin(async move {
            let args = arguments::<Sqlite>(statement.args).map_err(sqlx::Error::Encode)?;
            let query = sqlx::query_as_with(AssertSqlSafe(statement.text), args);
            match on {
                On::Pool(pool) => query.fetch_all(pool).await,
                On::Tx(conn) => query.fetch_all(conn).await,
            }
        })
    }

    fn fetch_optional<R: Record>(
        on: On<'_, Self>,
        statement: Statement,
    ) -> BoxFuture<'_, Result<Option<R>, sqlx::Error>> {
        Box::pin(async move {
            let args = arguments::<Sqlite>(statement.args).map_err(sqlx::Error::Encode)?;
            let query = sqlx::query_as_with(AssertSqlSafe(statement.text), args);
            match on {
                On::Pool(pool) => query.fetch_optional(pool).await,
                On::Tx(conn) => query.fetch_optional(conn).await,
            }
        })
    }
}
