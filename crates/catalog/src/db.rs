//! The two databases the store runs on, and what lets each query be written
//! once for both.
//!
//! SQLite (the default: one file in the data dir) or PostgreSQL (several
//! instances sharing one catalog). The store holds a [`Db`]; [`on_db!`]
//! expands one body for each concrete backend, so a query is one text,
//! compiled against both drivers, with rows decoded natively (no copying
//! into a dynamic value as `sqlx::Any` would: the 200 000-row listings and
//! the import are sized by that cost). Rows are mapped through [`RowGet`],
//! implemented for both row types, so that mapping functions are written
//! once too.
//!
//! The SQL both accept is most of it: `$N` placeholders (bound by number in
//! SQLite as in PostgreSQL), `ON CONFLICT … DO NOTHING / DO UPDATE SET x =
//! excluded.x`, `RETURNING`, booleans tested bare (`WHERE enabled`) and
//! written as `TRUE`/`FALSE`. Every integer column is `BIGINT` in PostgreSQL
//! (sqlx decodes `i64` only from it): an integer *expression* that is not a
//! column (a literal, `SUM`, `length`) is cast `AS BIGINT` where it is
//! read. Where the dialects really differ (JSON functions, `LIKE`'s case,
//! temp tables, sequences), the query says both in one place with
//! [`dialect!`], never two copies of the logic around it.

use sqlx::postgres::{PgPool, PgRow};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{ColumnIndex, Decode, Postgres, Row, Sqlite, Type};

/// The store's connection pool, on one backend or the other. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Db {
    /// Which backend this is, for logs and errors.
    pub fn backend(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// The SQLite pool, if the store is on SQLite (tests that reach into
    /// the database).
    pub fn as_sqlite(&self) -> Option<&SqlitePool> {
        match self {
            Db::Sqlite(p) => Some(p),
            Db::Postgres(_) => None,
        }
    }

    /// The PostgreSQL pool, if the store is on PostgreSQL.
    pub fn as_postgres(&self) -> Option<&PgPool> {
        match self {
            Db::Postgres(p) => Some(p),
            Db::Sqlite(_) => None,
        }
    }

    /// Starts a write transaction. On SQLite, `BEGIN IMMEDIATE` takes the
    /// write lock at once, waiting up to the busy timeout: a deferred
    /// transaction that reads first and writes later fails at once
    /// (SQLITE_BUSY_SNAPSHOT) when another connection committed in between —
    /// an event recorded in the background, say — whatever the busy
    /// timeout. PostgreSQL's row locks need no such thing.
    pub(crate) async fn write_tx(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// Closes every connection.
    pub async fn close(&self) {
        on_db!(self, |p| p.close().await)
    }
}

/// A write transaction on either backend ([`Db::write_tx`]); [`on_tx!`]
/// runs one body on its connection.
#[derive(Debug)]
pub(crate) enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

/// A connection borrowed from a caller's transaction, on either backend:
/// what helpers that run inside another function's transaction take
/// ([`Tx::conn`]); [`on_conn!`] runs one body on it.
pub(crate) enum Conn<'a> {
    Sqlite(&'a mut sqlx::SqliteConnection),
    Postgres(&'a mut sqlx::PgConnection),
}

impl From<sqlx::Transaction<'static, Sqlite>> for Tx {
    fn from(t: sqlx::Transaction<'static, Sqlite>) -> Tx {
        Tx::Sqlite(t)
    }
}

impl From<sqlx::Transaction<'static, Postgres>> for Tx {
    fn from(t: sqlx::Transaction<'static, Postgres>) -> Tx {
        Tx::Postgres(t)
    }
}

impl Tx {
    /// The transaction's connection, for helpers that run inside it.
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            Tx::Sqlite(t) => Conn::Sqlite(t),
            Tx::Postgres(t) => Conn::Postgres(t),
        }
    }

    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(t) => t.commit().await,
            Tx::Postgres(t) => t.commit().await,
        }
    }
}

/// Runs `body` with `p` bound to the concrete pool (`&SqlitePool` or
/// `&PgPool`), and the type `Backend` naming its sqlx database (for
/// `QueryBuilder::<Backend>` and [`dialect!`]). The body is compiled once
/// per backend.
macro_rules! on_db {
    ($db:expr, |$p:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($p) => {
                #[allow(dead_code)]
                type Backend = ::sqlx::Sqlite;
                $body
            }
            $crate::db::Db::Postgres($p) => {
                #[allow(dead_code)]
                type Backend = ::sqlx::Postgres;
                $body
            }
        }
    };
}

/// Like [`on_db!`] for a transaction: `c` is the transaction's connection
/// (`&mut SqliteConnection` or `&mut PgConnection`; use it as `&mut *c`).
macro_rules! on_tx {
    ($tx:expr, |$c:ident| $body:expr) => {
        match $tx {
            $crate::db::Tx::Sqlite(t) => {
                #[allow(dead_code)]
                type Backend = ::sqlx::Sqlite;
                let $c: &mut ::sqlx::SqliteConnection = &mut **t;
                $body
            }
            $crate::db::Tx::Postgres(t) => {
                #[allow(dead_code)]
                type Backend = ::sqlx::Postgres;
                let $c: &mut ::sqlx::PgConnection = &mut **t;
                $body
            }
        }
    };
}

/// Like [`on_tx!`] for a borrowed [`Conn`] (pass `&mut conn`).
macro_rules! on_conn {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::Conn::Sqlite(inner) => {
                #[allow(dead_code)]
                type Backend = ::sqlx::Sqlite;
                let $c: &mut ::sqlx::SqliteConnection = &mut **inner;
                $body
            }
            $crate::db::Conn::Postgres(inner) => {
                #[allow(dead_code)]
                type Backend = ::sqlx::Postgres;
                let $c: &mut ::sqlx::PgConnection = &mut **inner;
                $body
            }
        }
    };
}

/// Inside [`on_db!`]/[`on_tx!`]/[`on_conn!`]: the SQLite text or the PostgreSQL text of
/// one query (or of a piece of one), where the dialects differ. Both stand
/// side by side at the query they belong to.
macro_rules! dialect {
    (sqlite: $sqlite:expr, postgres: $postgres:expr $(,)?) => {
        if <Backend as $crate::db::Dialect>::POSTGRES {
            $postgres
        } else {
            $sqlite
        }
    };
}

#[allow(unused_imports)]
pub(crate) use {dialect, on_conn, on_db, on_tx};

/// Which dialect a backend speaks ([`dialect!`]).
pub(crate) trait Dialect {
    const POSTGRES: bool;
}

impl Dialect for Sqlite {
    const POSTGRES: bool = false;
}

impl Dialect for Postgres {
    const POSTGRES: bool = true;
}

/// A Rust type the store reads from a column, on either backend. Only these
/// few: in PostgreSQL an integer column is `BIGINT` and decodes only as
/// `i64`, so a mapping that asked for an `i32` would compile and fail at
/// run time on PostgreSQL alone; here it does not compile.
pub(crate) trait Col:
    for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

impl Col for i64 {}
impl Col for Option<i64> {}
impl Col for bool {}
impl Col for Option<bool> {}
impl Col for f64 {}
impl Col for Option<f64> {}
impl Col for String {}
impl Col for Option<String> {}

/// A column by name or by position, on either backend.
pub(crate) trait Idx: ColumnIndex<SqliteRow> + ColumnIndex<PgRow> + std::fmt::Debug {}

impl Idx for &str {}
impl Idx for usize {}

/// Reading a row the same way on both backends: mapping functions take
/// `&impl RowGet` and are written once.
pub(crate) trait RowGet {
    /// The value of a column (by name or position).
    fn col<T: Col>(&self, index: impl Idx) -> Result<T, sqlx::Error>;
}

impl RowGet for SqliteRow {
    fn col<T: Col>(&self, index: impl Idx) -> Result<T, sqlx::Error> {
        self.try_get(index)
    }
}

impl RowGet for PgRow {
    fn col<T: Col>(&self, index: impl Idx) -> Result<T, sqlx::Error> {
        self.try_get(index)
    }
}
