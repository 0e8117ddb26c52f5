//! The events writer: noting events never spawns a task per event, and no
//! event noted before the store closes is lost (`tunerpool provider add`
//! notes its sync's event and exits at once). On both backends.

use tunerpool_catalog::{EventQuery, Level, NewEvent, Store};
use tunerpool_testkit::{backend_tests, Backend};

backend_tests!(
    #[tokio::test(flavor = "current_thread")]
    a_burst_of_events_is_written_by_one_task,
    #[tokio::test(flavor = "multi_thread")]
    events_noted_just_before_close_are_written,
);

async fn a_burst_of_events_is_written_by_one_task(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = backend.open(dir.path()).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    for i in 0..2000 {
        store.note(NewEvent::new(Level::Info, "session", format!("event {i}")));
    }
    let alive = metrics.num_alive_tasks() - before;
    assert!(alive <= 1, "{alive} tasks alive after noting 2000 events");
    store.flush_events().await;
    let written = store.events(&EventQuery { limit: 1000, ..Default::default() }).await.unwrap();
    assert_eq!(written.len(), 1000);
    assert_eq!(written[0].message, "event 1999", "newest first, none lost");
    assert_eq!(store.dropped_events(), 0);
    store.close().await;
}

async fn events_noted_just_before_close_are_written(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = backend.new_store_url().await;
    let store = Store::open_url(url.as_deref(), dir.path()).await.unwrap();
    for i in 0..3 {
        store.note(NewEvent::new(Level::Info, "sync", format!("synced {i}")).provider(1));
    }
    store.close().await;
    let store = Store::open_url(url.as_deref(), dir.path()).await.unwrap();
    let events = store.events(&EventQuery::default()).await.unwrap();
    let messages: Vec<&str> = events.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(messages, ["synced 2", "synced 1", "synced 0"]);
    store.close().await;
}

/// Issue 16: writers that wait for SQLite's write lock each hold one of the pool's connections while they wait.
/// Here another connection holds the lock and four events are recorded at once, which takes the whole pool of
/// four; a stream request's cache miss (the user a login names) still answers at once, from connections of
/// its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_waiting_for_the_lock_do_not_hold_up_a_logins_read() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let mut locker = sqlx::SqliteConnection::connect(&format!(
        "sqlite://{}",
        store.data_dir().join(tunerpool_catalog::store::DB_FILE).display()
    ))
    .await
    .unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut locker).await.unwrap();
    let writers: Vec<_> = (0..4)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(
                async move { store.record_event(&NewEvent::new(Level::Info, "session", format!("{i}"))).await },
            )
        })
        .collect();
    // Let them take their connections and start waiting for the lock.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let answer = tokio::time::timeout(std::time::Duration::from_secs(20), store.user_by_name_cached("kim")).await;
    let waited = started.elapsed();
    assert!(matches!(answer, Ok(Ok(None))), "{answer:?}");
    assert!(waited < std::time::Duration::from_secs(1), "the login's read waited {waited:?} behind the writers");
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    for w in writers {
        w.await.unwrap().unwrap();
    }
    store.close().await;
}
