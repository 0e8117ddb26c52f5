//! The two migration sets describe one schema: after every migration of
//! `migrations/` (SQLite) and of `migrations_pg/` (PostgreSQL), both
//! databases have the same tables, each with the same columns (names, loose
//! type classes, NOT NULL) and primary key, and the same indexes (by their
//! columns, uniqueness and whether they are partial; names aside). A
//! SQLite migration without its PostgreSQL counterpart, or the other way
//! round, fails here rather than on the first query that meets the gap.
//!
//! Only what the engines share is compared: triggers differ by design
//! (PostgreSQL's are per statement where the lineup tables change), and
//! SQLite's `INTEGER PRIMARY KEY` is the rowid, where PostgreSQL has an
//! identity with an index (primary keys are compared as columns, apart
//! from the indexes).

use std::collections::BTreeMap;

use tunerpool_catalog::{Db, Store};
use tunerpool_testkit::Backend;

/// A column: its loose type class and whether it is NOT NULL.
type Columns = BTreeMap<String, (&'static str, bool)>;

/// One table as both engines can say it.
#[derive(Debug, Default, PartialEq)]
struct Table {
    columns: Columns,
    primary_key: Vec<String>,
    /// "unique? partial? (col, col, …)", sorted; an expression is `<expr>`.
    indexes: Vec<String>,
}

type Schema = BTreeMap<String, Table>;

/// One column of one index: table, index, unique, partial, the column
/// (`None`: an expression), in the index's column order.
type IndexColumn = (String, String, bool, bool, Option<String>);

/// One PostgreSQL index: table, index, unique, partial, primary, its columns.
type PgIndex = (String, String, bool, bool, bool, Vec<Option<String>>);

/// Tables whose raw rows SQLite's queries name by the implicit `rowid` and
/// PostgreSQL's by an identity column `id` (`dialect!` in `history.rs`):
/// the one deliberate difference in columns. SQLite's side is read as
/// having that `id`.
const ROWID_AS_ID: &[&str] = &["account_samples"];

/// The type class a declared type falls in, by SQLite's affinity rules
/// (PostgreSQL's names fall in the same classes): BIGINT, INTEGER and
/// BOOLEAN are integers in SQLite, so they are one class here.
fn class(declared: &str) -> &'static str {
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") || t.contains("BOOL") {
        "integer"
    } else if t.contains("CHAR") || t.contains("TEXT") || t.contains("CLOB") || t.contains("JSON") {
        "text"
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        "real"
    } else if t.contains("BLOB") || t.contains("BYTEA") {
        "blob"
    } else {
        // No declared type, or NUMERIC: a class of its own, so a mismatch shows.
        "other"
    }
}

fn index_key(unique: bool, partial: bool, columns: &[String]) -> String {
    format!("{}{}({})", if unique { "unique " } else { "" }, if partial { "partial " } else { "" }, columns.join(", "))
}

async fn sqlite_schema(store: &Store) -> Schema {
    let Db::Sqlite(pool) = store.db() else { panic!("a SQLite store") };
    let mut schema = Schema::new();
    let columns: Vec<(String, String, String, bool, i64)> = sqlx::query_as(
        "SELECT m.name, p.name, p.type, p.\"notnull\", p.pk FROM sqlite_master m JOIN pragma_table_info(m.name) p
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '_sqlx_migrations'
         ORDER BY m.name, p.cid",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut pk_order: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for (table, column, declared, not_null, pk) in columns {
        let t = schema.entry(table.clone()).or_default();
        // A primary key is never NULL; SQLite only reports NOT NULL where it was written.
        t.columns.insert(column.clone(), (class(&declared), not_null || pk > 0));
        if pk > 0 {
            pk_order.entry(table).or_default().push((pk, column));
        }
    }
    for table in ROWID_AS_ID {
        let t = schema.get_mut(*table).unwrap_or_else(|| panic!("{table} is in SQLite's schema"));
        assert!(
            !t.columns.contains_key("id") && !pk_order.contains_key(*table),
            "{table} has no id of its own on SQLite"
        );
        t.columns.insert("id".into(), ("integer", true));
        pk_order.insert(table.to_string(), vec![(1, "id".into())]);
    }
    for (table, mut pk) in pk_order {
        pk.sort();
        schema.get_mut(&table).unwrap().primary_key = pk.into_iter().map(|(_, c)| c).collect();
    }
    // Index columns in order; NULL names an expression. Primary keys are compared above.
    let indexes: Vec<IndexColumn> = sqlx::query_as(
        "SELECT m.name, il.name, il.\"unique\", il.partial, ii.name
         FROM sqlite_master m JOIN pragma_index_list(m.name) il JOIN pragma_index_info(il.name) ii
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '_sqlx_migrations' AND il.origin <> 'pk'
         ORDER BY m.name, il.name, ii.seqno",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    collect_indexes(&mut schema, indexes);
    schema
}

async fn postgres_schema(store: &Store) -> Schema {
    let Db::Postgres(pool) = store.db() else { panic!("a PostgreSQL store") };
    let mut schema = Schema::new();
    let columns: Vec<(String, String, String, bool)> = sqlx::query_as(
        "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
           AND c.relname <> '_sqlx_migrations'
         ORDER BY c.relname, a.attnum",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (table, column, declared, not_null) in columns {
        schema.entry(table).or_default().columns.insert(column, (class(&declared), not_null));
    }
    // Each index's columns in order (attnum 0: an expression).
    let indexes: Vec<PgIndex> = sqlx::query_as(
        "SELECT t.relname::text, i.relname::text, x.indisunique, x.indpred IS NOT NULL, x.indisprimary,
                ARRAY(SELECT a.attname::text FROM unnest(x.indkey::int2[]) WITH ORDINALITY k(attnum, n)
                      LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.n)
         FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
              JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE n.nspname = current_schema() AND t.relname <> '_sqlx_migrations'
         ORDER BY t.relname, i.relname",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut rows = Vec::new();
    for (table, index, unique, partial, primary, columns) in indexes {
        if primary {
            schema.get_mut(&table).unwrap().primary_key = columns.into_iter().map(Option::unwrap).collect();
            continue;
        }
        for column in columns {
            rows.push((table.clone(), index.clone(), unique, partial, column));
        }
    }
    collect_indexes(&mut schema, rows);
    schema
}

/// Folds (table, index, unique, partial, column) rows, in column order,
/// into each table's index keys.
fn collect_indexes(schema: &mut Schema, rows: Vec<IndexColumn>) {
    let mut by_index: BTreeMap<(String, String), (bool, bool, Vec<String>)> = BTreeMap::new();
    for (table, index, unique, partial, column) in rows {
        let entry = by_index.entry((table, index)).or_insert((unique, partial, Vec::new()));
        entry.2.push(column.unwrap_or_else(|| "<expr>".into()));
    }
    for ((table, _), (unique, partial, columns)) in by_index {
        schema.get_mut(&table).unwrap().indexes.push(index_key(unique, partial, &columns));
    }
    for table in schema.values_mut() {
        table.indexes.sort();
    }
}

#[tokio::test]
async fn both_migration_sets_give_the_same_schema() {
    let (sqlite_dir, pg_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let sqlite = Backend::Sqlite.open(sqlite_dir.path()).await;
    let postgres = Backend::Postgres.open(pg_dir.path()).await;
    let (s, p) = (sqlite_schema(&sqlite).await, postgres_schema(&postgres).await);

    // The comparison sees something: every table the store reads is there.
    for table in ["providers", "streams", "lineup_channels", "lineup_sources", "live_listing", "alerts"] {
        assert!(s.contains_key(table) && p.contains_key(table), "{table} in both");
    }
    // lineup_sources: a UNIQUE column, an index on two columns, a partial one.
    for (engine, schema) in [("SQLite", &s), ("PostgreSQL", &p)] {
        let sources = &schema["lineup_sources"].indexes;
        assert!(sources.contains(&"unique (stream_id)".to_string()), "{engine}'s unique indexes are read: {sources:?}");
        assert!(sources.contains(&"(channel_id, position)".to_string()), "{engine}'s indexes are read: {sources:?}");
        assert!(
            sources.contains(&"partial (provider_id)".to_string()),
            "{engine}'s partial indexes are read: {sources:?}"
        );
    }

    let names = |schema: &Schema| schema.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&s), names(&p), "the same tables (SQLite left, PostgreSQL right)");
    // Every difference at once, SQLite's side first.
    let mut differences = Vec::new();
    for (table, on_sqlite) in &s {
        let on_pg = &p[table];
        if on_sqlite.columns != on_pg.columns {
            differences.push(format!("{table}: columns {:?} / {:?}", on_sqlite.columns, on_pg.columns));
        }
        if on_sqlite.primary_key != on_pg.primary_key {
            differences.push(format!("{table}: primary key {:?} / {:?}", on_sqlite.primary_key, on_pg.primary_key));
        }
        if on_sqlite.indexes != on_pg.indexes {
            differences.push(format!("{table}: indexes {:?} / {:?}", on_sqlite.indexes, on_pg.indexes));
        }
    }
    assert!(differences.is_empty(), "the schemas differ (SQLite / PostgreSQL):\n{}", differences.join("\n"));
}

#[test]
fn the_type_classes_follow_sqlite_affinity() {
    assert_eq!(class("BIGINT"), class("INTEGER"));
    assert_eq!(class("boolean"), "integer");
    assert_eq!(class("character varying(20)"), "text");
    assert_eq!(class("double precision"), class("REAL"));
    assert_ne!(class("TEXT"), class("INTEGER"));
    assert_eq!(class(""), "other");
}
