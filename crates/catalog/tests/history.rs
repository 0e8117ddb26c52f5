//! History: samples folded into hours past the raw retention, dropped past
//! the retention; views per channel. On both backends.

use std::collections::HashMap;

use tunerpool_catalog::history::{HourViews, NewPoolSample, PruneReport, Range, Retention, HOUR, MAX_ROWS};
use tunerpool_catalog::{NewProvider, ProviderKind, Secret};
use tunerpool_testkit::{backend_tests, execute, Backend};

backend_tests!(
    pruning_folds_old_hours_and_drops_what_is_past_the_retention,
    account_samples_fold_to_the_hours_last_values,
);

fn hour_of(at: i64) -> i64 {
    at.div_euclid(HOUR) * HOUR
}

fn sample(provider_id: i64, used: i64, refusals: i64) -> NewPoolSample {
    NewPoolSample { provider_id, slots_used: used, slots_max: 4, sessions: used, viewers: used * 2, refusals }
}

const ALL: Range = Range { from: 0, to: i64::MAX };

async fn pruning_folds_old_hours_and_drops_what_is_past_the_retention(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = backend.open(dir.path()).await;
    let retention = Retention { raw_secs: 48 * HOUR, keep_secs: 30 * 24 * HOUR };
    // A fixed "now" on an hour boundary plus 10 minutes.
    let now = 1_800_000_000 / HOUR * HOUR + 600;
    let old_hour = hour_of(now - 50 * HOUR); // past the raw retention: folded
    let recent = now - 3600; // within it: kept raw
    let ancient = now - 31 * 24 * HOUR; // past the retention: deleted

    for (minute, used, refused) in [(0, 1, 0), (1, 3, 2), (59, 2, 1)] {
        store.record_pool_samples(old_hour + minute * 60, &[sample(1, used, refused)]).await.unwrap();
    }
    store.record_pool_samples(old_hour + 60, &[sample(2, 1, 0)]).await.unwrap();
    store.record_pool_samples(recent, &[sample(1, 4, 5)]).await.unwrap();
    store.record_pool_samples(ancient, &[sample(1, 4, 5)]).await.unwrap();
    store.count_views(ancient, &HashMap::from([(7, 3)])).await.unwrap();
    store.count_views(recent, &HashMap::from([(7, 2), (8, 1)])).await.unwrap();
    store.count_views(recent + 1, &HashMap::from([(7, 1)])).await.unwrap();

    let report = store.prune_history(now, retention).await.unwrap();
    // Two hours folded (provider 1, provider 2); the ancient hour folded, then expired with the ancient views.
    assert_eq!(report.folded, 3);
    assert_eq!(report.expired, 2);

    let rows = store.pool_history(ALL, None, MAX_ROWS).await.unwrap();
    let summary: Vec<_> = rows.iter().map(|s| (s.at, s.resolution, s.provider_id, s.slots_used, s.refusals)).collect();
    assert_eq!(
        summary,
        [(old_hour, 3600, 1, 3, 3), (old_hour, 3600, 2, 1, 0), (recent, 0, 1, 4, 5)],
        "the old hour is one row per provider (max used, summed refusals); the recent minute stays raw"
    );
    assert_eq!(rows[0].viewers, 6);

    // Pruning again changes nothing.
    assert_eq!(store.prune_history(now, retention).await.unwrap(), PruneReport::default());

    let views = store.channel_views(ALL, 100).await.unwrap();
    assert_eq!(views.iter().map(|v| (v.channel_id, v.views)).collect::<Vec<_>>(), [(7, 3), (8, 1)]);
    assert_eq!(views[0].hours, [HourViews { hour: hour_of(recent), views: 3 }]);
    // A range before the recent hour sees none of it.
    assert!(store.channel_views(Range { from: 0, to: hour_of(recent) - 1 }, 100).await.unwrap().is_empty());
}

async fn account_samples_fold_to_the_hours_last_values(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = backend.open(dir.path()).await;
    let p = store
        .add_provider(&NewProvider {
            name: "p".into(),
            kind: Some(ProviderKind::Xtream),
            url: "http://example.com".into(),
            username: Some("u".into()),
            password: Some(Secret::new("pw")),
            enabled: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let account = store.primary_account(p.id).await.unwrap().unwrap().id;
    let now = 1_800_000_000 / HOUR * HOUR;
    let hour = now - 72 * HOUR;
    let info = |active, status: &str| tunerpool_formats::xtream::UserInfo {
        auth: true,
        status: Some(status.into()),
        exp_date: Some(now + 86_400),
        max_connections: Some(2),
        active_cons: Some(active),
        ..Default::default()
    };
    store.record_details(account, &info(2, "Active")).await.unwrap();
    store.record_details_error(account, "the panel did not answer").await.unwrap();
    store.record_details(account, &info(1, "Banned")).await.unwrap();
    // Move the three samples into one old hour, in order.
    for (i, at) in [hour + 10, hour + 20, hour + 30].into_iter().enumerate() {
        // A raw sample's own id: SQLite's rowid, PostgreSQL's id column.
        let row_id = if backend == Backend::Sqlite { "rowid" } else { "id" };
        execute(&store, &format!("UPDATE account_samples SET at = {at} WHERE {row_id} = {}", i + 1)).await;
    }
    store.prune_history(now, Retention::default()).await.unwrap();
    let rows = store.account_history(ALL, Some(account), MAX_ROWS).await.unwrap();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!((r.at, r.resolution, r.provider_id), (hour, 3600, p.id));
    assert_eq!((r.active_cons, r.status.as_deref(), r.ok), (Some(2), Some("Banned"), false));
}
