//! [`SqliteStore`]: the embedded back end — one file under the data dir, WAL journal, a busy
//! timeout so concurrent writers queue instead of failing, foreign keys on.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, ConnectOptions, Sqlite};
use tokio::sync::Mutex;

use crate::error::StoreError;
use crate::read_version::{Freshness, note_commit};
use crate::sql::{
    Backend, BoxFuture, Db, Done, Driver, On, Record, Statement, Tx, arguments, lock_gate,
    may_write,
};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a writer waits for the lock before failing with "database is locked", unless
/// [`BUSY_TIMEOUT_ENV`] says otherwise.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Environment variable overriding [`BUSY_TIMEOUT`] in milliseconds (e.g. short, so that an
/// unavailable store answers with an error quickly instead of queueing writers for 30 s).
pub const BUSY_TIMEOUT_ENV: &str = "TRADELOOM_SQLITE_BUSY_TIMEOUT_MS";

/// The file beside the database that openers lock while they migrate it.
fn migration_lock_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".migrate.lock");
    db.with_file_name(name)
}

/// Creates the folder the database file goes in.
fn create_parent(db: &Path) -> Result<(), StoreError> {
    match db.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.display().to_string(),
            source,
        }),
        None => Ok(()),
    }
}

/// Holds an exclusive lock (`flock`) on [`migration_lock_path`] until dropped: across
/// processes and across openers of one process (each has its own open file). The lock file is
/// left in place: removing it would let a third opener lock a new file while the second holds
/// the old one.
async fn migration_lock(db: &Path) -> Result<std::fs::File, StoreError> {
    let path = migration_lock_path(db);
    let shown = path.display().to_string();
    let locked = tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        file.lock()?;
        Ok(file)
    })
    .await;
    locked
        .unwrap_or_else(|joined| Err(std::io::Error::other(joined)))
        .map_err(|source| StoreError::Io {
            path: shown,
            source,
        })
}

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
    /// See [`crate::read_version`].
    freshness: Arc<Freshness>,
    /// The connection `PRAGMA data_version` is asked on (its own: the pragma reports commits
    /// of *other* connections), opened on first use, with how many were opened before it.
    probe: Arc<Mutex<(u64, Option<SqliteConnection>)>>,
    options: SqliteConnectOptions,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        // sqlx's migrator takes no lock on SQLite: two processes opening a new file at once
        // (a `serve` and a `tradeloom run`, two workers) both applied migration 1 and the
        // second failed ("table jobs already exists"). An exclusive lock on a file beside the
        // database serialises the openers; the second finds the migrations applied. It is
        // taken before the first connection too: on a new file, switching it to WAL needs the
        // database's exclusive lock, and SQLite can answer "database is locked" at once,
        // without waiting its busy timeout, to an opener whose lock upgrade would deadlock
        // with another's (seen with four openers on a loaded machine).
        create_parent(path)?;
        let _migrating = migration_lock(path).await?;
        let store = Self::connect(path).await?;
        MIGRATOR.run(&store.pool).await?;
        Ok(store)
    }

    /// Opens the database file without migrating (for `db status`).
    pub async fn open_unmigrated(path: &Path) -> Result<Self, StoreError> {
        create_parent(path)?;
        Self::connect(path).await
    }

    /// The pool on `path` (created if missing; its folder must exist).
    async fn connect(path: &Path) -> Result<Self, StoreError> {
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
            // A connection to a local file does not go bad the way a network one does; the
            // default ping before every acquire was a round trip to the connection's thread
            // per statement run on the pool and per transaction.
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(StoreError::db("open the SQLite database"))?;
        Ok(Self {
            pool,
            path: path.to_path_buf(),
            write_lock: Arc::default(),
            freshness: Arc::default(),
            probe: Arc::default(),
            options,
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

    fn freshness(&self) -> &Freshness {
        &self.freshness
    }

    fn change_probe(&self) -> BoxFuture<'_, Result<String, StoreError>> {
        Box::pin(async move {
            let mut probe = self.probe.lock().await;
            let (opened, conn) = &mut *probe;
            if conn.is_none() {
                *opened += 1;
                *conn = Some(
                    self.options
                        .connect()
                        .await
                        .map_err(StoreError::db("open the SQLite change probe"))?,
                );
            }
            let serial = *opened;
            let Some(c) = conn.as_mut() else {
                return Err(StoreError::Invalid(
                    "the SQLite change probe is closed".into(),
                ));
            };
            match sqlx::query_scalar::<_, i64>("PRAGMA data_version")
                .fetch_one(&mut *c)
                .await
            {
                // Values of different connections are not comparable: the serial tells them
                // apart, so a reopened probe always counts as a change.
                Ok(v) => Ok(format!("{serial}:{v}")),
                Err(e) => {
                    *conn = None;
                    Err(StoreError::db("ask SQLite for its data version")(e))
                }
            }
        })
    }
}

impl Driver for Sqlite {
    fn execute_all(
        conn: &mut SqliteConnection,
        statements: Vec<Statement>,
    ) -> BoxFuture<'_, Result<Vec<u64>, sqlx::Error>> {
        Box::pin(async move {
            let mut text = String::new();
            let mut values = Vec::new();
            for statement in statements {
                // Numbered placeholders would each name an argument of the whole script.
                debug_assert!(
                    !statement.text.contains('$'),
                    "a statement of a SQLite script binds `?` placeholders: {}",
                    statement.text
                );
                if !text.is_empty() {
                    text.push_str(";\n");
                }
                text.push_str(&statement.text);
                values.extend(statement.args);
            }
            if text.is_empty() {
                return Ok(Vec::new());
            }
            let args = arguments::<Sqlite>(values).map_err(sqlx::Error::Encode)?;
            // sqlx-sqlite runs every statement of the text in turn, binding `?`s in order
            // across them, and reports each one's changes.
            let query = sqlx::query_with(AssertSqlSafe(text), args);
            let mut results = sqlx::Executor::fetch_many(conn, query);
            let mut changes = Vec::new();
            while let Some(item) = results.try_next().await? {
                if let sqlx::Either::Left(done) = item {
                    changes.push(done.rows_affected());
                }
            }
            Ok(changes)
        })
    }

    fn execute(on: On<'_, Self>, statement: Statement) -> BoxFuture<'_, Result<Done, sqlx::Error>> {
        Box::pin(async move {
            let args = arguments::<Sqlite>(statement.args).map_err(sqlx::Error::Encode)?;
            // A plain `SELECT` run for its success alone (the health check's `SELECT 1`)
            // writes nothing: it must not move the read version, or every answer the API
            // keeps under it would be dropped and built again at once.
            let writes = may_write(&statement.text);
            let query = sqlx::query_with(AssertSqlSafe(statement.text), args);
            let done = match on {
                On::Pool(pool) => {
                    let done = query.execute(pool).await;
                    if writes {
                        note_commit();
                    }
                    done?
                }
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
            let writes = may_write(&statement.text);
            let query = sqlx::query_as_with(AssertSqlSafe(statement.text), args);
            match on {
                On::Pool(pool) => {
                    let rows = query.fetch_all(pool).await;
                    if writes {
                        note_commit();
                    }
                    rows
                }
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
            let writes = may_write(&statement.text);
            let query = sqlx::query_as_with(AssertSqlSafe(statement.text), args);
            match on {
                On::Pool(pool) => {
                    let row = query.fetch_optional(pool).await;
                    if writes {
                        note_commit();
                    }
                    row
                }
                On::Tx(conn) => query.fetch_optional(conn).await,
            }
        })
    }
}
