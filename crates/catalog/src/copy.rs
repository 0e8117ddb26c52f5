//! Copying a SQLite catalog into PostgreSQL (`tunerpool store copy`): how an
//! operator who ran one instance on SQLite moves to a cluster on PostgreSQL
//! without adding providers, accounts, users and the lineup again, and
//! without players' favourites (channel ids and numbers) changing.
//!
//! The tables and their columns are not listed here: they are read from the
//! two schemas (PostgreSQL's `information_schema`, SQLite's `pragma_table_info`),
//! and the copy refuses if they differ in anything but what is listed below,
//! and an identity `id` that SQLite keeps as its implicit `rowid`
//! (`account_samples`: the same numbers are copied into it).
//! Parents are copied before children (the target's foreign keys give the
//! order). Both sides must be at this tunerpool's schema (the last migration
//! of each backend), so that a column means the same on both.
//!
//! One list, [`SPECIAL`], says which tables are not simply copied, and why:
//! the materialized live listing (derived from the lineup: emptied on the
//! target and marked stale, so that the first `serve` rebuilds it from the
//! copied lineup — listings answer from the lineup's query until then), the
//! rows a migration seeds (the install's device id, which HDHomeRun clients
//! know the tuner by: the source's row replaces the target's), and sqlx's
//! record of each backend's own migrations.
//!
//! Everything happens in one PostgreSQL transaction: a failure leaves the
//! target as it was (a new database with no schema at all is migrated
//! first, on its own). The source is opened read-only and read in one read
//! transaction (one consistent snapshot, even of a running instance's file).
//! Rows move in batches of [`BATCH_ROWS`] (one `INSERT … SELECT FROM UNNEST`
//! per batch, one array per column), so memory does not grow with the
//! catalog. Ids are copied as they are, and every identity sequence is then
//! set past the highest id copied — or past SQLite's `AUTOINCREMENT` counter
//! when that is higher, so that ids of deleted lineup channels are still never
//! reused.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use futures_util::TryStreamExt;
use sqlx::postgres::PgArguments;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteRow};
use sqlx::{Arguments, Connection, PgPool, Row, SqlitePool};

use crate::store::{connect_postgres, open_failed, pg_options, url_password, PG_MIGRATIONS, SQLITE_MIGRATIONS};

/// What the copy does with a table that is not simply copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// Derived from other tables and rebuilt from them: emptied on the target.
    Rebuilt,
    /// The state of a rebuilt table: marked stale on the target.
    MarkedStale,
    /// Filled by a migration on both sides: the source's rows replace the
    /// target's, and they do not make a target "not empty".
    Replaced,
    /// Each backend's own (sqlx's migrations record): left alone.
    Own,
}

/// Every table the copy treats otherwise than copying it as it is; every
/// other table of the schema is copied. A table named here must exist (the
/// copy checks), so that this list cannot silently go stale.
pub const SPECIAL: &[(&str, Special)] = &[
    ("live_listing", Special::Rebuilt),
    ("live_listing_xtream", Special::Rebuilt),
    ("live_listing_state", Special::MarkedStale),
    ("instance", Special::Replaced),
    (MIGRATIONS_TABLE, Special::Own),
];

/// How `table` is treated: `None` for copied as it is.
pub fn special(table: &str) -> Option<Special> {
    SPECIAL.iter().find(|(t, _)| *t == table).map(|(_, s)| *s)
}

/// sqlx's record of the applied migrations: each backend keeps its own.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// Rows per batch: one statement each, one array per column.
pub const BATCH_ROWS: usize = 1000;

/// How long the copy waits for a lock on the target's tables (another
/// process using the catalog) before it gives up and says so.
const LOCK_TIMEOUT: &str = "10s";

/// What the copy is asked to do (the command line's flags).
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// Delete everything in the target first (in the same transaction)
    /// instead of refusing a target that holds data.
    pub replace: bool,
}

/// Progress of the copy, reported as it goes: a table started, a batch of
/// it written, a table done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyProgress<'a> {
    /// The table being copied.
    pub table: &'a str,
    /// Its rows copied so far.
    pub copied: u64,
    /// Its rows in the source.
    pub total: u64,
}

/// One table's result: how many rows went over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopied {
    pub table: String,
    pub rows: u64,
}

/// What the copy did, for the summary the command prints.
#[derive(Debug, Clone, Default)]
pub struct CopyReport {
    /// Every copied table with its rows, in the order they were copied.
    pub tables: Vec<TableCopied>,
    /// Every identity sequence set, as `(table.column, next id)`.
    pub sequences: Vec<(String, i64)>,
    /// The schema both sides are at: (SQLite migration, PostgreSQL migration).
    pub schema: (i64, i64),
    /// Whether the target was migrated first (a new, empty database).
    pub migrated_target: bool,
    /// Rows deleted from the target first (`replace`), summed.
    pub replaced_rows: u64,
}

/// Which side of the copy something is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The SQLite catalog copied from.
    Source,
    /// The PostgreSQL catalog copied into.
    Target,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Source => "the SQLite catalog",
            Side::Target => "the PostgreSQL catalog",
        })
    }
}

/// Why a copy did not happen. Nothing was written to the target in any case
/// (one transaction), and messages never hold the target URL's password.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The source cannot be opened or is not a tunerpool catalog.
    #[error("{path}: {reason}")]
    Source { path: String, reason: String },
    /// The target cannot be reached or opened (the URL shown has its
    /// password masked).
    #[error("{0}")]
    Target(crate::CatalogError),
    /// The two schemas are not both at this tunerpool's version.
    #[error(
        "{side} is at schema migration {found}, this tunerpool's is {expected}: {}",
        version_advice(*side, *found, *expected)
    )]
    Version { side: Side, found: i64, expected: i64 },
    /// The target already holds data (and replacing it was not asked for).
    #[error(
        "the PostgreSQL catalog is not empty ({}): copy into a new, empty database, or replace what it holds",
        .tables.iter().map(|(t, n)| format!("{t}: {n} rows")).collect::<Vec<_>>().join(", ")
    )]
    NotEmpty { tables: Vec<(String, i64)> },
    /// The schemas differ in a table or column: they are not the same
    /// version after all (a migration missing on one backend).
    #[error("the two schemas differ: {0} (both must be this tunerpool's schema; report this as a bug)")]
    Schema(String),
    /// The target's tables are locked by another process.
    #[error("the PostgreSQL catalog is in use (its tables stayed locked for {LOCK_TIMEOUT}): stop the tunerpool instances using it, then copy again")]
    InUse,
    /// A query failed; `during` says what the copy was doing.
    #[error("{during}: {message}")]
    Db { during: String, message: String },
}

fn version_advice(side: Side, found: i64, expected: i64) -> &'static str {
    match (side, found < expected) {
        (Side::Source, true) => {
            "it was written by an older tunerpool; run this tunerpool once on it (e.g. `tunerpool provider list \
             --data-dir DIR`, which migrates it) and copy again"
        }
        (Side::Target, true) => {
            "it was migrated by an older tunerpool; run this tunerpool once on it (e.g. `tunerpool provider list` \
             with store.url set to it, which migrates it) and copy again"
        }
        (_, false) => "it was written by a newer tunerpool; copy with that version (or a newer one)",
    }
}

/// The kinds of column the catalog's PostgreSQL schema has; each is read
/// from SQLite as the Rust type PostgreSQL takes for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Bool,
    Float,
    Text,
}

impl Kind {
    fn from_pg(data_type: &str) -> Option<Kind> {
        Some(match data_type {
            "bigint" => Kind::Int,
            "boolean" => Kind::Bool,
            "double precision" => Kind::Float,
            "text" => Kind::Text,
            _ => return None,
        })
    }

    /// The array type `UNNEST` reads this column from.
    fn pg_array(self) -> &'static str {
        match self {
            Kind::Int => "bigint[]",
            Kind::Bool => "boolean[]",
            Kind::Float => "double precision[]",
            Kind::Text => "text[]",
        }
    }
}

/// One column copied: its name on the target, what it is read from in
/// SQLite (its name, or `rowid` for an id SQLite keeps implicit), its kind.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    source: String,
    kind: Kind,
    identity: bool,
}

/// One table copied, with its columns.
#[derive(Debug, Clone)]
struct Table {
    name: String,
    columns: Vec<Column>,
}

/// One batch of a table's rows, a vector per column.
enum Buf {
    Int(Vec<Option<i64>>),
    Bool(Vec<Option<bool>>),
    Float(Vec<Option<f64>>),
    Text(Vec<Option<String>>),
}

impl Buf {
    fn new(kind: Kind) -> Buf {
        match kind {
            Kind::Int => Buf::Int(Vec::with_capacity(BATCH_ROWS)),
            Kind::Bool => Buf::Bool(Vec::with_capacity(BATCH_ROWS)),
            Kind::Float => Buf::Float(Vec::with_capacity(BATCH_ROWS)),
            Kind::Text => Buf::Text(Vec::with_capacity(BATCH_ROWS)),
        }
    }

    fn push(&mut self, row: &SqliteRow, i: usize) -> Result<(), sqlx::Error> {
        match self {
            Buf::Int(v) => v.push(row.try_get(i)?),
            Buf::Bool(v) => v.push(row.try_get(i)?),
            Buf::Float(v) => v.push(row.try_get(i)?),
            Buf::Text(v) => v.push(row.try_get(i)?),
        }
        Ok(())
    }

    /// Binds the batch as one array and empties it.
    fn bind_into(&mut self, args: &mut PgArguments) -> Result<(), sqlx::error::BoxDynError> {
        match self {
            Buf::Int(v) => args.add(std::mem::take(v)),
            Buf::Bool(v) => args.add(std::mem::take(v)),
            Buf::Float(v) => args.add(std::mem::take(v)),
            Buf::Text(v) => args.add(std::mem::take(v)),
        }
    }
}

/// `"name"`: identifiers are quoted (both dialects take double quotes).
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Where the SQLite catalog `from` names is: a data dir (its
/// `tunerpool.db`), the file itself, or either after `sqlite:` / `sqlite://`.
pub fn sqlite_file(from: &Path) -> PathBuf {
    let text = from.to_string_lossy();
    let stripped = text.strip_prefix("sqlite://").or_else(|| text.strip_prefix("sqlite:"));
    let path = stripped.map(PathBuf::from).unwrap_or_else(|| from.to_path_buf());
    if path.is_dir() {
        path.join(crate::store::DB_FILE)
    } else {
        path
    }
}

/// Copies the SQLite catalog at `source` (see [`sqlite_file`]) into the
/// PostgreSQL catalog at `target_url` (see the module doc), reporting
/// progress to `progress` after every batch.
pub async fn copy_sqlite_to_postgres(
    source: &Path,
    target_url: &str,
    options: &CopyOptions,
    progress: &mut (dyn FnMut(CopyProgress<'_>) + Send),
) -> Result<CopyReport, CopyError> {
    let path = sqlite_file(source);
    let secret = url_password(target_url);
    // Every error from the target is shown with its URL's password masked.
    let secrets: Vec<&str> = secret.iter().map(String::as_str).collect();
    let db_err = |during: &str| {
        let secrets = secrets.clone();
        let during = during.to_owned();
        move |e: sqlx::Error| {
            if is_lock_timeout(&e) {
                return CopyError::InUse;
            }
            CopyError::Db { during, message: tunerpool_upstream::redact::redact_text(&e.to_string(), &secrets) }
        }
    };

    let sqlite = open_source(&path).await?;
    // One connection first: its error is the server's or the network's
    // ("connection refused", "password authentication failed"), where the
    // pool's would only be that it timed out.
    let probe = sqlx::PgConnection::connect_with(&pg_options(target_url).map_err(CopyError::Target)?)
        .await
        .map_err(|e| CopyError::Target(open_failed(target_url, "", &e)))?;
    let _ = probe.close().await;
    let pg = connect_postgres(target_url, 2).await.map_err(CopyError::Target)?;
    let result = async {
        let source_version = sqlite_version(&sqlite, &path).await?;
        let expected_sqlite = latest(&SQLITE_MIGRATIONS);
        if source_version != expected_sqlite {
            return Err(CopyError::Version { side: Side::Source, found: source_version, expected: expected_sqlite });
        }
        let mut report = CopyReport::default();
        let expected_pg = latest(&PG_MIGRATIONS);
        let target_version = match pg_version(&pg).await.map_err(db_err("reading the PostgreSQL catalog's schema"))? {
            Some(v) => v,
            None => {
                // A new database, nothing in it: give it this tunerpool's schema.
                PG_MIGRATIONS
                    .run(&pg)
                    .await
                    .map_err(|e| CopyError::Target(open_failed(target_url, "migration failed: ", &e)))?;
                report.migrated_target = true;
                expected_pg
            }
        };
        if target_version != expected_pg {
            return Err(CopyError::Version { side: Side::Target, found: target_version, expected: expected_pg });
        }
        report.schema = (source_version, target_version);
        copy(&sqlite, &pg, options, &mut report, progress, &db_err).await?;
        Ok(report)
    }
    .await;
    sqlite.close().await;
    pg.close().await;
    result
}

/// The SQLite file, opened read-only: the copy never changes its source.
async fn open_source(path: &Path) -> Result<SqlitePool, CopyError> {
    let fail = |reason: String| CopyError::Source { path: path.display().to_string(), reason };
    if !path.is_file() {
        return Err(fail(
            "no SQLite catalog here: name the single instance's data dir (or the tunerpool.db in it)".into(),
        ));
    }
    let opts = SqliteConnectOptions::from_str("sqlite://")
        .map_err(|e| fail(e.to_string()))?
        .filename(path)
        .read_only(true)
        .busy_timeout(Duration::from_secs(10));
    SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.map_err(|e| fail(e.to_string()))
}

fn latest(migrator: &sqlx::migrate::Migrator) -> i64 {
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The SQLite catalog's last applied migration; a file without sqlx's
/// record is not a tunerpool catalog.
async fn sqlite_version(sqlite: &SqlitePool, path: &Path) -> Result<i64, CopyError> {
    let fail = |reason: String| CopyError::Source { path: path.display().to_string(), reason };
    let has_record: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = $1)")
            .bind(MIGRATIONS_TABLE)
            .fetch_one(sqlite)
            .await
            .map_err(|e| fail(format!("cannot read it: {e}")))?;
    if !has_record {
        return Err(fail("not a tunerpool catalog (it has no migrations record)".into()));
    }
    let version: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT version FROM {MIGRATIONS_TABLE} WHERE success ORDER BY version DESC LIMIT 1"
    ))
    .fetch_optional(sqlite)
    .await
    .map_err(|e| fail(format!("cannot read its migrations: {e}")))?;
    Ok(version.unwrap_or(0))
}

/// The PostgreSQL catalog's last applied migration, or `None` when it has
/// none at all (a new database).
async fn pg_version(pg: &PgPool) -> Result<Option<i64>, sqlx::Error> {
    let has_record: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1)",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_one(pg)
    .await?;
    if !has_record {
        return Ok(None);
    }
    let version: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT version FROM {MIGRATIONS_TABLE} WHERE success ORDER BY version DESC LIMIT 1"
    ))
    .fetch_optional(pg)
    .await?;
    Ok(Some(version.unwrap_or(0)))
}

fn is_lock_timeout(e: &sqlx::Error) -> bool {
    // 55P03: lock_not_available (lock_timeout expired).
    e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "55P03")
}

/// The copy proper, once both versions are right.
async fn copy<F>(
    sqlite: &SqlitePool,
    pg: &PgPool,
    options: &CopyOptions,
    report: &mut CopyReport,
    progress: &mut (dyn FnMut(CopyProgress<'_>) + Send),
    db_err: &impl Fn(&str) -> F,
) -> Result<(), CopyError>
where
    F: FnOnce(sqlx::Error) -> CopyError,
{
    let mut src = sqlite.begin().await.map_err(|e| CopyError::Source {
        path: "the SQLite catalog".into(),
        reason: format!("cannot start reading: {e}"),
    })?;
    let mut tx = pg.begin().await.map_err(db_err("starting the transaction"))?;
    let tables = tables(&mut src, &mut tx, db_err).await?;
    // Emptied before the copy: every copied table (the replaced ones
    // included) and the rebuilt ones.
    let emptied: Vec<String> = tables
        .iter()
        .map(|t| t.name.as_str())
        .chain(SPECIAL.iter().filter(|(_, s)| *s == Special::Rebuilt).map(|(t, _)| *t))
        .map(quoted)
        .collect();

    sqlx::query(&format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        .execute(&mut *tx)
        .await
        .map_err(db_err("setting the lock timeout"))?;
    // Nobody else uses the catalog meanwhile: the emptiness checked is the
    // emptiness copied into (TRUNCATE below wants this lock anyway).
    sqlx::query(&format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", emptied.join(", ")))
        .execute(&mut *tx)
        .await
        .map_err(db_err("locking the PostgreSQL catalog's tables"))?;

    let mut held = Vec::new();
    for t in tables.iter().filter(|t| special(&t.name) != Some(Special::Replaced)) {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", quoted(&t.name)))
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err(&format!("counting the rows of {}", t.name)))?;
        if n > 0 {
            held.push((t.name.clone(), n));
        }
    }
    if !held.is_empty() {
        if !options.replace {
            return Err(CopyError::NotEmpty { tables: held });
        }
        report.replaced_rows = held.iter().map(|(_, n)| *n as u64).sum();
    }
    // Emptied whatever it held (the seeded rows too, replaced by the
    // source's), ids restarted; the derived tables with them.
    sqlx::query(&format!("TRUNCATE {} RESTART IDENTITY", emptied.join(", ")))
        .execute(&mut *tx)
        .await
        .map_err(db_err("emptying the PostgreSQL catalog"))?;

    for table in &tables {
        let rows = copy_table(&mut src, &mut tx, table, progress, db_err).await?;
        report.tables.push(TableCopied { table: table.name.clone(), rows });
    }

    // Identity sequences past the highest id copied, or past SQLite's
    // AUTOINCREMENT counter when higher (ids of deleted rows stay unused).
    let counters: BTreeMap<String, i64> = sqlx::query_as::<_, (String, i64)>("SELECT name, seq FROM sqlite_sequence")
        .fetch_all(&mut *src)
        .await
        .or_else(|e| match &e {
            // No table has AUTOINCREMENT: no sqlite_sequence.
            sqlx::Error::Database(d) if d.message().contains("no such table") => Ok(Vec::new()),
            _ => Err(e),
        })
        .map_err(|e| CopyError::Source { path: "the SQLite catalog".into(), reason: e.to_string() })?
        .into_iter()
        .collect();
    for table in &tables {
        for col in table.columns.iter().filter(|c| c.identity) {
            let during = format!("setting the sequence of {}.{}", table.name, col.name);
            let highest: Option<i64> =
                sqlx::query_scalar(&format!("SELECT MAX({}) FROM {}", quoted(&col.name), quoted(&table.name)))
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err(&during))?;
            let counter = if col.name == "id" { counters.get(&table.name).copied() } else { None };
            let Some(last) = highest.max(counter).filter(|v| *v >= 1) else { continue };
            sqlx::query("SELECT setval(pg_get_serial_sequence($1, $2), $3)")
                .bind(quoted(&table.name))
                .bind(&col.name)
                .bind(last)
                .execute(&mut *tx)
                .await
                .map_err(db_err(&during))?;
            report.sequences.push((format!("{}.{}", table.name, col.name), last + 1));
        }
    }

    // The materialized listing: emptied above, stale now, so the first
    // `serve` rebuilds it from the copied lineup.
    sqlx::query("UPDATE live_listing_state SET version = built + 1 WHERE id = 1")
        .execute(&mut *tx)
        .await
        .map_err(db_err("marking the live listing stale"))?;

    // What went over is what is there.
    for t in &report.tables {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", quoted(&t.table)))
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err(&format!("counting the copied rows of {}", t.table)))?;
        if n as u64 != t.rows {
            return Err(CopyError::Db {
                during: format!("checking {}", t.table),
                message: format!("{} rows copied but {n} in the PostgreSQL catalog", t.rows),
            });
        }
    }
    tx.commit().await.map_err(db_err("committing the copy"))?;
    let _ = src.rollback().await;
    Ok(())
}

/// The tables to copy, parents first, each with its columns as both schemas
/// have them. Refuses any difference but the ones the module doc lists.
async fn tables<F>(
    src: &mut sqlx::SqliteConnection,
    tx: &mut sqlx::PgConnection,
    db_err: &impl Fn(&str) -> F,
) -> Result<Vec<Table>, CopyError>
where
    F: FnOnce(sqlx::Error) -> CopyError,
{
    let source_err = |e: sqlx::Error| CopyError::Source {
        path: "the SQLite catalog".into(),
        reason: format!("cannot read its schema: {e}"),
    };
    let skip = |name: &str| special(name).is_some_and(|s| s != Special::Replaced);

    let pg_columns: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text, is_identity::text
         FROM information_schema.columns c
         WHERE table_schema = current_schema()
           AND EXISTS (SELECT 1 FROM information_schema.tables t WHERE t.table_schema = c.table_schema
                       AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE')
         ORDER BY table_name, ordinal_position",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(db_err("reading the PostgreSQL catalog's columns"))?;
    let mut target: BTreeMap<String, Vec<(String, String, bool)>> = BTreeMap::new();
    for (table, column, data_type, identity) in pg_columns {
        target.entry(table).or_default().push((column, data_type, identity == "YES"));
    }
    let source_tables: BTreeSet<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
    )
    .fetch_all(&mut *src)
    .await
    .map_err(source_err)?
    .into_iter()
    .collect();

    for (listed, _) in SPECIAL {
        if !target.contains_key(*listed) || !source_tables.contains(*listed) {
            return Err(CopyError::Schema(format!("the table {listed} the copy knows of is missing")));
        }
    }
    let missing: Vec<&String> = source_tables.iter().filter(|t| !skip(t) && !target.contains_key(*t)).collect();
    if !missing.is_empty() {
        return Err(CopyError::Schema(format!("the PostgreSQL catalog has no table {missing:?}")));
    }

    let mut tables = Vec::new();
    for (name, columns) in target.iter().filter(|(t, _)| !skip(t)) {
        if !source_tables.contains(name) {
            return Err(CopyError::Schema(format!("the SQLite catalog has no table {name}")));
        }
        let source_columns: BTreeSet<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
            .bind(name)
            .fetch_all(&mut *src)
            .await
            .map_err(source_err)?
            .into_iter()
            .collect();
        let mut copied = Vec::new();
        for (column, data_type, identity) in columns {
            let kind = Kind::from_pg(data_type).ok_or_else(|| {
                CopyError::Schema(format!("{name}.{column} is of type {data_type}, which the copy does not know"))
            })?;
            let source = if source_columns.contains(column) {
                column.clone()
            } else if *identity && column == "id" {
                // SQLite's implicit id (a table without its own, whose
                // queries name rows by rowid): the same number.
                "rowid".into()
            } else {
                return Err(CopyError::Schema(format!("the SQLite catalog's {name} has no column {column}")));
            };
            copied.push(Column { name: column.clone(), source, kind, identity: *identity });
        }
        let extra: Vec<&String> = source_columns.iter().filter(|c| !columns.iter().any(|(t, _, _)| t == *c)).collect();
        if !extra.is_empty() {
            return Err(CopyError::Schema(format!("the PostgreSQL catalog's {name} has no column {extra:?}")));
        }
        tables.push(Table { name: name.clone(), columns: copied });
    }

    // Parents first: the target's foreign keys.
    let edges: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, p.relname::text
         FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE k.contype = 'f' AND n.nspname = current_schema() AND k.conrelid <> k.confrelid",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(db_err("reading the PostgreSQL catalog's foreign keys"))?;
    Ok(parents_first(tables, &edges))
}

/// `tables` ordered so that every table comes after those its foreign keys
/// (`(child, parent)` edges) point to; otherwise by name.
fn parents_first(tables: Vec<Table>, edges: &[(String, String)]) -> Vec<Table> {
    let mut left: Vec<Table> = tables;
    let mut ordered = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let ready = left
            .iter()
            .position(|t| {
                !edges.iter().any(|(child, parent)| {
                    *child == t.name && left.iter().any(|o| o.name == *parent && o.name != t.name)
                })
            })
            // A cycle (none in the catalog): copy in name order and let the
            // foreign keys say what is wrong.
            .unwrap_or(0);
        ordered.push(left.remove(ready));
    }
    ordered
}

/// Copies one table's rows in batches; returns how many.
async fn copy_table<F>(
    src: &mut sqlx::SqliteConnection,
    tx: &mut sqlx::PgConnection,
    table: &Table,
    progress: &mut (dyn FnMut(CopyProgress<'_>) + Send),
    db_err: &impl Fn(&str) -> F,
) -> Result<u64, CopyError>
where
    F: FnOnce(sqlx::Error) -> CopyError,
{
    let source_err = |e: sqlx::Error| CopyError::Source {
        path: "the SQLite catalog".into(),
        reason: format!("cannot read {}: {e}", table.name),
    };
    let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", quoted(&table.name)))
        .fetch_one(&mut *src)
        .await
        .map_err(source_err)?;
    let total = total as u64;
    progress(CopyProgress { table: &table.name, copied: 0, total });

    let select = format!(
        "SELECT {} FROM {}",
        // `rowid` bare: quoted, it would be a column's name.
        table
            .columns
            .iter()
            .map(|c| if c.source == "rowid" { c.source.clone() } else { quoted(&c.source) })
            .collect::<Vec<_>>()
            .join(", "),
        quoted(&table.name)
    );
    let insert = format!(
        "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT * FROM UNNEST({})",
        quoted(&table.name),
        table.columns.iter().map(|c| quoted(&c.name)).collect::<Vec<_>>().join(", "),
        table
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("${}::{}", i + 1, c.kind.pg_array()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut bufs: Vec<Buf> = table.columns.iter().map(|c| Buf::new(c.kind)).collect();
    let mut pending = 0usize;
    let mut copied = 0u64;
    let mut rows = sqlx::query(&select).fetch(&mut *src);
    loop {
        let row = rows.try_next().await.map_err(source_err)?;
        if let Some(row) = &row {
            for (i, (buf, col)) in bufs.iter_mut().zip(&table.columns).enumerate() {
                buf.push(row, i).map_err(|e| CopyError::Source {
                    path: "the SQLite catalog".into(),
                    reason: format!("{}.{} holds a value that is not a {:?}: {e}", table.name, col.name, col.kind),
                })?;
            }
            pending += 1;
        }
        if pending == BATCH_ROWS || (row.is_none() && pending > 0) {
            let mut args = PgArguments::default();
            for buf in &mut bufs {
                buf.bind_into(&mut args)
                    .map_err(|e| CopyError::Db { during: format!("copying {}", table.name), message: e.to_string() })?;
            }
            sqlx::query_with(&insert, args)
                .execute(&mut *tx)
                .await
                .map_err(db_err(&format!("copying {}", table.name)))?;
            copied += pending as u64;
            pending = 0;
            progress(CopyProgress { table: &table.name, copied, total });
        }
        if row.is_none() {
            break;
        }
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str) -> Table {
        Table { name: name.into(), columns: Vec::new() }
    }

    #[test]
    fn parents_come_before_their_children() {
        let edges: Vec<(String, String)> = [("accounts", "providers"), ("streams", "groups"), ("groups", "providers")]
            .iter()
            .map(|(c, p)| (c.to_string(), p.to_string()))
            .collect();
        let ordered =
            parents_first(vec![table("accounts"), table("streams"), table("groups"), table("providers")], &edges);
        let names: Vec<&str> = ordered.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["providers", "accounts", "groups", "streams"]);
    }

    #[test]
    fn the_source_is_a_data_dir_a_file_or_a_sqlite_url() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("other.db");
        assert_eq!(sqlite_file(dir.path()), dir.path().join("tunerpool.db"));
        assert_eq!(sqlite_file(&file), file);
        assert_eq!(
            sqlite_file(Path::new(&format!("sqlite://{}", dir.path().display()))),
            dir.path().join("tunerpool.db")
        );
        assert_eq!(sqlite_file(Path::new(&format!("sqlite:{}", file.display()))), file);
    }
}
