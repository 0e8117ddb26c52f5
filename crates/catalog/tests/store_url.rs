//! `store.url`: what opens which store, and what an operator reads when it
//! cannot be opened — never the password.

use tunerpool_catalog::{CatalogError, Db, Store};
use tunerpool_testkit::postgres::PgServer;

#[tokio::test]
async fn an_unreachable_postgres_is_named_with_its_password_masked() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1.
    let err = Store::open_url(Some("postgres://tp:s3cret@127.0.0.1:1/tp"), dir.path()).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, CatalogError::Open { .. }), "{text}");
    assert!(text.contains("postgres://***:***@127.0.0.1:1/tp") && !text.contains("s3cret"), "{text}");
}

#[tokio::test]
async fn a_wrong_scheme_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let err = Store::open_url(Some("mysql://tp:s3cret@db/tp"), dir.path()).await.unwrap_err().to_string();
    assert!(err.contains("store.url") && err.contains("\"mysql\"") && !err.contains("s3cret"), "{err}");
}

#[tokio::test]
async fn the_url_chooses_the_backend_and_the_data_dir_stays_for_files() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open_url(Some("sqlite:"), dir.path()).await.unwrap();
    assert!(matches!(sqlite.db(), Db::Sqlite(_)));
    assert!(dir.path().join("tunerpool.db").exists());
    sqlite.close().await;

    let other = tempfile::tempdir().unwrap();
    let url = PgServer::shared().fresh_database().await;
    let pg = Store::open_url(Some(&url), other.path()).await.unwrap();
    assert!(matches!(pg.db(), Db::Postgres(_)));
    assert_eq!(pg.data_dir(), other.path());
    assert!(!other.path().join("tunerpool.db").exists(), "no SQLite file next to a PostgreSQL store");
    pg.ping().await.unwrap();
    pg.close().await;
    // Opening it again (another instance, a restart) finds the schema migrated.
    let again = Store::open_url(Some(&url), other.path()).await.unwrap();
    assert!(again.providers().await.unwrap().is_empty());
}
