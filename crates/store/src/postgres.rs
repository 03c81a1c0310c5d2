//! [`PgStore`]: the cluster back end on PostgreSQL, chosen by a `postgres://` URL.

use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Postgres};
use tokio::sync::Mutex;

use crate::error::StoreError;
use crate::sql::{Backend, BoxFuture, Db, Done, Driver, On, Record, Statement, Tx, arguments};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// The PostgreSQL implementation of [`crate::Store`] (through [`Db`]).
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
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
        Ok(Self { pool })
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
}

impl Driver for Postgres {
    fn execute(on: On<'_, Self>, statement: Statement) -> BoxFuture<'_, Result<Done, sqlx::Error>> {
        Box::pin(async move {
            let args = arguments::<Postgres>(statement.args).map_err(sqlx::Error::Encode)?;
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
            let args = arguments::<Postgres>(statement.args).map_err(sqlx::Error::Encode)?;
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
            let args = arguments::<Postgres>(statement.args).map_err(sqlx::Error::Encode)?;
            let query = sqlx::query_as_with(AssertSqlSafe(statement.text), args);
            match on {
                On::Pool(pool) => query.fetch_optional(pool).await,
                On::Tx(conn) => query.fetch_optional(conn).await,
            }
        })
    }
}
