//! The SQL layer both back ends share. Every statement is written once, with `$n` placeholders
//! (SQLite accepts them too), as a [`Statement`] of owned [`Arg`]s; a [`Driver`] (one small
//! impl per back end, in `sqlite.rs` and `postgres.rs`) binds and runs it. The resource files
//! (`job_store.rs`, `run_store.rs`, …) are generic over [`Db`], so they need no sqlx bounds;
//! where the SQL of the back ends differs they match on [`Db::BACKEND`] side by side.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use serde_json::Value;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::types::Json;
use sqlx::{Arguments, Encode, FromRow, Type};
use tokio::sync::{Mutex, OwnedMutexGuard};
use tradeloom_core::Currency;

use crate::error::StoreError;
use crate::numeric::Num;

/// Which database a store talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A future the back ends hand out (boxed, so generic code needs no bounds on it).
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One bound value, typed as the database sees it (`None` binds a typed NULL).
#[derive(Clone, Debug)]
pub(crate) enum Arg {
    Text(Option<String>),
    I32(Option<i32>),
    I64(Option<i64>),
    Bool(Option<bool>),
    Date(Option<NaiveDate>),
    Time(Option<DateTime<Utc>>),
    Json(Option<Json<Value>>),
    Num(Option<Num>),
}

macro_rules! arg_from {
    ($($t:ty => $variant:ident, $conv:expr;)*) => {$(
        impl From<$t> for Arg {
            fn from(v: $t) -> Self {
                let conv: fn($t) -> _ = $conv;
                Arg::$variant(conv(v))
            }
        }
    )*};
}

arg_from! {
    &str => Text, |v| Some(v.to_string());
    &&str => Text, |v| Some(v.to_string());
    String => Text, Some;
    &String => Text, |v| Some(v.clone());
    Option<&str> => Text, |v| v.map(str::to_string);
    Option<String> => Text, |v| v;
    &Option<String> => Text, |v| v.clone();
    i32 => I32, Some;
    Option<i32> => I32, |v| v;
    i64 => I64, Some;
    Option<i64> => I64, |v| v;
    bool => Bool, Some;
    NaiveDate => Date, Some;
    Option<NaiveDate> => Date, |v| v;
    DateTime<Utc> => Time, Some;
    Option<DateTime<Utc>> => Time, |v| v;
    Json<&Value> => Json, |v| Some(Json(v.0.clone()));
    Json<Value> => Json, Some;
    Option<Json<&Value>> => Json, |v| v.map(|j| Json(j.0.clone()));
    Option<Json<&Vec<String>>> => Json, |v| v.map(|j| Json(Value::from(j.0.clone())));
    Num => Num, Some;
    Option<Num> => Num, |v| v;
}

/// A statement and its arguments, run by a [`Driver`].
#[derive(Debug)]
pub(crate) struct Statement {
    pub(crate) text: String,
    pub(crate) args: Vec<Arg>,
}

/// A statement to bind arguments to. `text` is a constant of the store or built from
/// constants (table and column names), never from user input: values are always bound.
pub(crate) fn sql(text: impl Into<String>) -> Statement {
    Statement {
        text: text.into(),
        args: Vec::new(),
    }
}

/// `head VALUES ($1, …, $columns), (…)`: a multi-row INSERT of `rows` rows, whose values are
/// then bound row by row.
pub(crate) fn insert_values(head: &str, rows: usize, columns: usize) -> Statement {
    let mut text = String::with_capacity(head.len() + rows * columns * 6);
    text.push_str(head);
    text.push_str(" VALUES ");
    for row in 0..rows {
        if row > 0 {
            text.push_str(", ");
        }
        text.push('(');
        for column in 0..columns {
            if column > 0 {
                text.push_str(", ");
            }
            text.push_str(&format!("${}", row * columns + column + 1));
        }
        text.push(')');
    }
    sql(text)
}

/// How many rows a write touched.
pub(crate) struct Done(pub(crate) u64);

impl Done {
    pub(crate) fn rows_affected(&self) -> u64 {
        self.0
    }
}

impl Statement {
    /// Appends the next argument (`$n` for the n-th call).
    pub(crate) fn bind(mut self, value: impl Into<Arg>) -> Self {
        self.args.push(value.into());
        self
    }

    pub(crate) fn execute<'a, DB: Driver>(
        self,
        on: impl Into<On<'a, DB>>,
    ) -> BoxFuture<'a, Result<Done, sqlx::Error>> {
        DB::execute(on.into(), self)
    }

    pub(crate) fn fetch_all<'a, DB: Driver, R: Record>(
        self,
        on: impl Into<On<'a, DB>>,
    ) -> BoxFuture<'a, Result<Vec<R>, sqlx::Error>> {
        DB::fetch_all(on.into(), self)
    }

    pub(crate) fn fetch_optional<'a, DB: Driver, R: Record>(
        self,
        on: impl Into<On<'a, DB>>,
    ) -> BoxFuture<'a, Result<Option<R>, sqlx::Error>> {
        DB::fetch_optional(on.into(), self)
    }

    /// Exactly one row ([`sqlx::Error::RowNotFound`] if none).
    pub(crate) async fn fetch_one<'a, DB: Driver, R: Record>(
        self,
        on: impl Into<On<'a, DB>>,
    ) -> Result<R, sqlx::Error> {
        DB::fetch_optional(on.into(), self)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }
}

/// Binds `args` in order, each as its Rust type (so `None` is a NULL of that type).
pub(crate) fn arguments<DB>(args: Vec<Arg>) -> Result<DB::Arguments, sqlx::error::BoxDynError>
where
    DB: sqlx::Database,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i32>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<bool>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<NaiveDate>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<DateTime<Utc>>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Json<Value>>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Num>: Encode<'q, DB> + Type<DB>,
{
    let mut out = DB::Arguments::default();
    for arg in args {
        match arg {
            Arg::Text(v) => out.add(v),
            Arg::I32(v) => out.add(v),
            Arg::I64(v) => out.add(v),
            Arg::Bool(v) => out.add(v),
            Arg::Date(v) => out.add(v),
            Arg::Time(v) => out.add(v),
            Arg::Json(v) => out.add(v),
            Arg::Num(v) => out.add(v),
        }?;
    }
    Ok(out)
}

/// A row type both back ends can decode.
pub(crate) trait Record:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin + 'static
{
}

impl<T> Record for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin + 'static
{
}

/// Where a statement runs: on the pool, or inside a transaction.
pub(crate) enum On<'a, DB: sqlx::Database> {
    Pool(&'a sqlx::Pool<DB>),
    Tx(&'a mut DB::Connection),
}

impl<'a, DB: sqlx::Database> From<&'a sqlx::Pool<DB>> for On<'a, DB> {
    fn from(pool: &'a sqlx::Pool<DB>) -> Self {
        On::Pool(pool)
    }
}

impl<'a, DB: sqlx::Database> From<&'a mut Tx<DB>> for On<'a, DB> {
    fn from(tx: &'a mut Tx<DB>) -> Self {
        On::Tx(&mut *tx.tx)
    }
}

/// A sqlx driver the store runs on: binds [`Arg`]s and runs [`Statement`]s.
pub(crate) trait Driver: sqlx::Database {
    fn execute(on: On<'_, Self>, statement: Statement) -> BoxFuture<'_, Result<Done, sqlx::Error>>;

    fn fetch_all<R: Record>(
        on: On<'_, Self>,
        statement: Statement,
    ) -> BoxFuture<'_, Result<Vec<R>, sqlx::Error>>;

    fn fetch_optional<R: Record>(
        on: On<'_, Self>,
        statement: Statement,
    ) -> BoxFuture<'_, Result<Option<R>, sqlx::Error>>;

    /// Runs `statements` in order inside a transaction; the rows each one touched. SQLite
    /// runs them as one script: one hand-off to the connection's thread instead of one per
    /// statement (their placeholders must then be `?`, bound in order across the script).
    /// PostgreSQL runs them one by one.
    fn execute_all(
        conn: &mut Self::Connection,
        statements: Vec<Statement>,
    ) -> BoxFuture<'_, Result<Vec<u64>, sqlx::Error>>;
}

/// A write transaction; on SQLite it also holds the store's write gate until it ends.
/// Dropped without [`commit`](Tx::commit), it rolls back.
pub(crate) struct Tx<DB: sqlx::Database> {
    tx: sqlx::Transaction<'static, DB>,
    _gate: Option<OwnedMutexGuard<()>>,
}

impl<DB: Driver> Tx<DB> {
    /// [`Driver::execute_all`] in this transaction.
    pub(crate) fn execute_all(
        &mut self,
        statements: Vec<Statement>,
    ) -> BoxFuture<'_, Result<Vec<u64>, sqlx::Error>> {
        DB::execute_all(&mut *self.tx, statements)
    }
}

impl<DB: sqlx::Database> Tx<DB> {
    pub(crate) fn new(
        tx: sqlx::Transaction<'static, DB>,
        gate: Option<OwnedMutexGuard<()>>,
    ) -> Self {
        Self { tx, _gate: gate }
    }

    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        let done = self.tx.commit().await;
        // After the commit (see crate::read_version): readers that keep answers drop them.
        crate::read_version::note_commit();
        done
    }
}

/// A back end: its pool, how it begins a write transaction, and its migrations. The two
/// implementations are [`crate::SqliteStore`] and [`crate::PgStore`]; every resource store is
/// implemented once for any `Db`.
pub(crate) trait Db: Send + Sync + std::fmt::Debug + 'static {
    type Driver: Driver;

    const BACKEND: Backend;

    fn pool(&self) -> &sqlx::Pool<Self::Driver>;

    /// The back end's embedded migrations.
    fn migrator() -> &'static Migrator;

    /// The writers' gate (SQLite: one writer at a time, queued here rather than in SQLite's
    /// busy handler); `None` when the database serialises writers itself.
    fn write_gate(&self) -> Option<Arc<Mutex<()>>>;

    /// Begins a write transaction: `BEGIN IMMEDIATE` on SQLite, behind the write gate, so
    /// writers queue instead of failing to upgrade a read lock; `BEGIN` on PostgreSQL.
    fn begin(&self) -> BoxFuture<'_, Result<Tx<Self::Driver>, sqlx::Error>>;

    /// The store's outside-change state (see [`crate::read_version`]).
    fn freshness(&self) -> &crate::read_version::Freshness;

    /// An answer of the database that changes whenever anything committed, in any process
    /// (SQLite: `PRAGMA data_version` on a connection of its own; PostgreSQL: the snapshot).
    fn change_probe(&self) -> BoxFuture<'_, Result<String, StoreError>>;
}

/// Whether a statement run on a pool (autocommit) may write: anything but a plain `SELECT`
/// (or `WITH … SELECT`, counted as a write to be safe). After one ends, the back ends call
/// [`crate::read_version::note_commit`].
pub(crate) fn may_write(text: &str) -> bool {
    !text
        .trim_start()
        .get(..6)
        .is_some_and(|head| head.eq_ignore_ascii_case("select"))
}

/// Waits for a store's write gate, if it has one.
pub(crate) async fn lock_gate(gate: Option<Arc<Mutex<()>>>) -> Option<OwnedMutexGuard<()>> {
    match gate {
        Some(gate) => Some(gate.lock_owned().await),
        None => None,
    }
}

/// Taken (PostgreSQL only) by every transaction just before it appends to `workflow_events`
/// and held until it commits, so `seq` values become visible in increasing order: a reader that
/// has seen `seq` n never later finds a committed event below n (what resuming `GET /ws` from
/// the last seq relies on). BIGSERIAL alone hands out values in insert order, not commit order.
/// SQLite needs nothing: its writers are serialised (`BEGIN IMMEDIATE`).
pub(crate) async fn lock_event_order<D: Db>(tx: &mut Tx<D::Driver>) -> Result<(), StoreError> {
    match event_order_lock::<D>() {
        None => Ok(()),
        Some(lock) => {
            lock.execute(tx)
                .await
                .map_err(StoreError::db("lock the event log"))?;
            Ok(())
        }
    }
}

/// The statement of [`lock_event_order`], for a script of statements run in order
/// ([`Tx::execute_all`]); `None` on SQLite.
pub(crate) fn event_order_lock<D: Db>() -> Option<Statement> {
    match D::BACKEND {
        Backend::Sqlite => None,
        Backend::Postgres => Some(sql("SELECT pg_advisory_xact_lock(7314200007)")),
    }
}

/// The store's clock: UTC, truncated to microseconds so values round-trip through PostgreSQL.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Maps why a stored value is malformed to [`StoreError::Corrupt`] of column `what`.
pub(crate) fn corrupt<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> StoreError {
    move |detail| StoreError::Corrupt {
        what,
        detail: detail.to_string(),
    }
}

/// A job's currency as stored (`jobs.currency`, `jobs.currency_precision`).
pub(crate) fn currency(code: &str, precision: i32) -> Result<Currency, StoreError> {
    let precision = u8::try_from(precision)
        .map_err(|_| corrupt("jobs.currency_precision")(precision.to_string()))?;
    Currency::new(code, precision).map_err(corrupt("jobs.currency"))
}

/// A page size: 0 → 100, capped at [`crate::MAX_PAGE`].
pub(crate) fn page(limit: u32) -> i64 {
    i64::from(match limit {
        0 => 100,
        n => n.min(crate::results::MAX_PAGE),
    })
}

pub(crate) fn sql_offset(offset: u64) -> i64 {
    i64::try_from(offset).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_row_inserts_number_their_placeholders_row_by_row() {
        let s = insert_values("INSERT INTO t (a, b)", 2, 2);
        assert_eq!(s.text, "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)");
    }
}
