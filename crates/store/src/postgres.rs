//! [`PgStore`]: the cluster back end on PostgreSQL, chosen by a `postgres://` URL.

use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Postgres};
use tokio::sync::Mutex;

use crate::error::StoreError;
use crate::read_version::{Freshness, note_commit};
use crate::sql::{
    Backend, BoxFuture, Db, Done, Driver, On, Record, Statement, Tx, arguments, may_write,
};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// The PostgreSQL implementation of [`crate::Store`] (through [`Db`]).
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// See [`crate::read_version`].
    freshness: Arc<Freshness>,
}

impl PgStore {
    /// Connects and applies pending migrations (under sqlx's advisory lock, so several
    /// processes may start at once).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let store = Self::connect_unmigrated(url).await?;
        MIGRATOR.run(&store.pool).await?;
        Ok(store)
    }

    /// Connects without migrating (for `db status`).
    pub async fn connect_unmigrated(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(StoreError::db("connect to PostgreSQL"))?;
        Ok(Self {
            pool,
            freshness: Arc::default(),
        })
    }

    /// The connection pool, for callers that need a query the trait does not offer.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl Db for PgStore {
    type Driver = Postgres;

    const BACKEND: Backend = Backend::Postgres;

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    /// PostgreSQL serialises writers itself: no gate.
    fn write_gate(&self) -> Option<Arc<Mutex<()>>> {
        None
    }

    fn begin(&self) -> BoxFuture<'_, Result<Tx<Postgres>, sqlx::Error>> {
        Box::pin(async move { Ok(Tx::new(self.pool.begin_with("BEGIN").await?, None)) })
    }

    fn freshness(&self) -> &Freshness {
        &self.freshness
    }

    /// The current snapshot (`xmin:xmax:in-progress`): it changes whenever a transaction that
    /// wrote begins or ends, in any session; read-only transactions take no id and leave it.
    fn change_probe(&self) -> BoxFuture<'_, Result<String, StoreError>> {
        Box::pin(async move {
            sqlx::query_scalar::<_, String>("SELECT pg_current_snapshot()::text")
                .fetch_one(&self.pool)
                .await
                .map_err(StoreError::db("ask PostgreSQL for its snapshot"))
        })
    }
}

impl Driver for Postgres {
    fn execute_all(
        conn: &mut sqlx::PgConnection,
        statements: Vec<Statement>,
    ) -> BoxFuture<'_, Result<Vec<u64>, sqlx::Error>> {
        Box::pin(async move {
            let mut changes = Vec::with_capacity(statements.len());
            for statement in statements {
                let args = arguments::<Postgres>(statement.args).map_err(sqlx::Error::Encode)?;
                let done = sqlx::query_with(AssertSqlSafe(statement.text), args)
                    .execute(&mut *conn)
                    .await?;
                changes.push(done.rows_affected());
            }
            Ok(changes)
        })
    }

    fn execute(on: On<'_, Self>, statement: Statement) -> BoxFuture<'_, Result<Done, sqlx::Error>> {
        Box::pin(async move {
            let args = arguments::<Postgres>(statement.args).map_err(sqlx::Error::Encode)?;
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
            let args = arguments::<Postgres>(statement.args).map_err(sqlx::Error::Encode)?;
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
            let args = arguments::<Postgres>(statement.args).map_err(sqlx::Error::Encode)?;
            let writes = may_write(&statement.text);
            let query = sqlx::query_as_with(AssertSqlSafe(statement.text), args);
            match on {
                On::Pool(pool) => {
                    let rows = query.fetch_optional(pool).await;
                    if writes {
                        note_commit();
                    }
                    rows
                }
                On::Tx(conn) => query.fetch_optional(conn).await,
            }
        })
    }
}
