//! The data dir holds provider passwords: it and everything the gateway
//! writes in it (database and its WAL files, guides, spool files) is for the
//! owner only, and a data dir left open to others is tightened at start.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tunerpool_catalog::{Level, NewEvent, Store};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

#[tokio::test]
async fn data_dir_and_database_files_are_owner_only() {
    let tmp = tempfile::tempdir().unwrap();
    // A fresh data dir (nested: parents are created too).
    let data = tmp.path().join("nested/data");
    let store = Store::open(&data).await.unwrap();
    store.record_event(&NewEvent::new(Level::Info, "sync", "x")).await.unwrap();
    assert_eq!(mode(&data), 0o700);
    let db = data.join("tunerpool.db");
    for f in [db.clone(), data.join("tunerpool.db-wal"), data.join("tunerpool.db-shm")] {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    store.close().await;

    // An existing data dir and database opened up by someone (or an older
    // version): tightened on the next start.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = Store::open(&data).await.unwrap();
    store.record_event(&NewEvent::new(Level::Info, "sync", "y")).await.unwrap();
    assert_eq!(mode(&data), 0o700);
    for f in [db, data.join("tunerpool.db-wal"), data.join("tunerpool.db-shm")] {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    store.close().await;
}

#[tokio::test]
async fn guides_and_spool_files_are_owner_only() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let store = Store::open(&data).await.unwrap();
    let dest = tunerpool_catalog::epg::guide_path(store.data_dir(), 1);
    let mut input = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut input, b"<tv><channel id=\"a\"/></tv>").unwrap();
    std::io::Seek::rewind(&mut input).unwrap();
    tunerpool_upstream::epg::store_guide(input, &dest, "http://h/x", &[], 1 << 20).unwrap();
    assert_eq!(mode(dest.parent().unwrap()), 0o700);
    assert_eq!(mode(&dest), 0o600);
    store.close().await;
}
