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
