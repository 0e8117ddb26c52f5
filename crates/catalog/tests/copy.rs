//! `copy::copy_sqlite_to_postgres` on its own: a synced SQLite catalog bigger than two batches copied into a
//! fresh PostgreSQL database (its schema migrated by the copy), every table's rows there, parents before
//! children, progress after every batch, and the stores on both backends answering the same.

use fakeprovider::{AccountSpec, FakeConfig, FakeProvider};
use tunerpool_catalog::copy::{copy_sqlite_to_postgres, CopyOptions, BATCH_ROWS};
use tunerpool_catalog::{ChannelQuery, Store};
use tunerpool_testkit::postgres::PgServer;
use tunerpool_testkit::{add_xtream, fetch_i64, open_store, sync_with_details};

const LIVE: usize = 2 * BATCH_ROWS + 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_goes_over_in_batches_parents_first() {
    let fake = FakeProvider::start(FakeConfig {
        live_channels: LIVE,
        ..FakeConfig::with_accounts(vec![AccountSpec::new("main", "pw-main", 1), AccountSpec::new("b", "pw-b", 1)])
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let single = dir.path().join("single");
    let (store, http) = open_store(&single).await;
    let pid = add_xtream(&store, &fake, &[("main", "pw-main"), ("b", "pw-b")]).await;
    sync_with_details(&store, &http, pid).await;
    store.close().await;

    let url = PgServer::shared().fresh_database().await;
    let mut seen = Vec::new();
    let report = copy_sqlite_to_postgres(&single, &url, &CopyOptions::default(), &mut |p| {
        seen.push((p.table.to_owned(), p.copied, p.total))
    })
    .await
    .unwrap();
    assert!(report.migrated_target);

    // Progress: a table announced with its total, then after every batch.
    let streams: Vec<(u64, u64)> = seen.iter().filter(|(t, ..)| t == "streams").map(|(_, c, n)| (*c, *n)).collect();
    let live = LIVE as u64;
    assert_eq!(streams, [(0, live), (1000, live), (2000, live), (live, live)]);

    // Parents before children, as the foreign keys want.
    let at = |t: &str| report.tables.iter().position(|c| c.table == t).unwrap_or_else(|| panic!("{t} not copied"));
    for (parent, child) in [
        ("providers", "accounts"),
        ("providers", "groups"),
        ("groups", "streams"),
        ("streams", "lineup_sources"),
        ("lineup_groups", "lineup_channels"),
        ("lineup_channels", "lineup_sources"),
        ("series", "episodes"),
        ("alerts", "alert_deliveries"),
    ] {
        assert!(at(parent) < at(child), "{child} copied before {parent}: {:?}", report.tables);
    }
    assert!(!report.tables.iter().any(|t| t.table.starts_with("live_listing") || t.table == "_sqlx_migrations"));

    // Every table holds on PostgreSQL what it held on SQLite.
    let sqlite = Store::open(&single).await.unwrap();
    let pg = Store::open_url(Some(&url), &dir.path().join("pg")).await.unwrap();
    for t in &report.tables {
        let count = format!("SELECT COUNT(*) FROM {}", t.table);
        assert_eq!(fetch_i64(&sqlite, &count).await, t.rows as i64, "{}", t.table);
        assert_eq!(fetch_i64(&pg, &count).await, t.rows as i64, "{}", t.table);
    }
    // And the stores read them the same (providers, accounts with their passwords, the lineup).
    assert_eq!(sqlite.providers().await.unwrap(), pg.providers().await.unwrap());
    let (a, b) = (sqlite.accounts(pid).await.unwrap(), pg.accounts(pid).await.unwrap());
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    let passwords = |accounts: &[tunerpool_catalog::Account]| {
        accounts.iter().map(|a| a.password.expose().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(passwords(&a), ["pw-main", "pw-b"]);
    assert_eq!(passwords(&a), passwords(&b));
    for page in 1..=3 {
        let q = ChannelQuery { page: Some(page), per_page: Some(1000), ..Default::default() };
        assert_eq!(sqlite.channels(&q).await.unwrap(), pg.channels(&q).await.unwrap(), "page {page}");
    }
    assert_eq!(sqlite.instance_id().await.unwrap(), pg.instance_id().await.unwrap());
    sqlite.close().await;
    pg.close().await;
}
