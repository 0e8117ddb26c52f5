//! The alerts record: one alert per open condition, resolved when it goes,
//! and the delivery outbox (queued, done, retried, given up, dropped with
//! its webhook). On both backends.

use tunerpool_catalog::alerts::{AlertState, Condition, Reconciled, Severity};
use tunerpool_testkit::{backend_tests, Backend};

backend_tests!(a_condition_is_one_alert_until_it_resolves);

fn cond(key: &str, message: &str) -> Condition {
    Condition {
        key: key.into(),
        kind: "sync_failed",
        severity: Severity::Critical,
        title: "sync failing".into(),
        message: message.into(),
        provider_id: Some(1),
        account_id: None,
        user_id: None,
    }
}

async fn a_condition_is_one_alert_until_it_resolves(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = backend.open(dir.path()).await;
    let targets = vec!["t1".to_string(), "t2".to_string()];
    let r = store.reconcile_alerts(100, &[cond("a", "m1")], &targets, true).await.unwrap();
    assert_eq!(r.opened.len(), 1);
    // Still true, with new words: the same alert, nothing queued again.
    let r = store.reconcile_alerts(200, &[cond("a", "m2")], &targets, true).await.unwrap();
    assert_eq!(r, Reconciled::default());
    let open = store.alerts(AlertState::Open, 10).await.unwrap();
    assert_eq!((open.len(), open[0].message.as_str(), open[0].opened_at), (1, "m2", 100));
    assert_eq!(store.due_deliveries(i64::MAX, 10).await.unwrap().len(), 2);

    let r = store.reconcile_alerts(300, &[], &targets, true).await.unwrap();
    assert_eq!(r.resolved.len(), 1);
    assert!(store.alerts(AlertState::Open, 10).await.unwrap().is_empty());
    let due = store.due_deliveries(i64::MAX, 10).await.unwrap();
    assert_eq!(due.iter().filter(|d| d.event == "resolved").count(), 2);

    // The same condition again later is a new alert.
    let r = store.reconcile_alerts(400, &[cond("a", "m3")], &targets, false).await.unwrap();
    assert_eq!(r.opened.len(), 1);
    let all = store.alerts(AlertState::All, 10).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].resolved_at, None, "open alerts first");

    // Deliveries: done, retried later, given up.
    let due = store.due_deliveries(400_000, 10).await.unwrap();
    store.delivery_done(due[0].id, 400).await.unwrap();
    store.delivery_failed(due[1].id, 400, "down", Some(500_000)).await.unwrap();
    store.delivery_failed(due[2].id, 400, "down", None).await.unwrap();
    let later = store.due_deliveries(400_000, 10).await.unwrap();
    assert!(later.iter().all(|d| ![due[0].id, due[1].id, due[2].id].contains(&d.id)));
    let retried = store.due_deliveries(500_000, 10).await.unwrap();
    let again = retried.iter().find(|d| d.id == due[1].id).unwrap();
    assert_eq!(again.attempts, 1);
    assert!(store.drop_deliveries_except(&["t1".into()]).await.unwrap() > 0);
    assert!(store.due_deliveries(i64::MAX, 100).await.unwrap().iter().all(|d| d.target == "t1"));
}
