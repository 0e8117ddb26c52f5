//! Source measurements: the latest per source, a bounded history, kept under the stream's identity.

use tunerpool_catalog::quality::KEEP_SECONDS;
use tunerpool_catalog::{CatalogError, NewProvider, NewQuality, ProviderKind, Secret, Store};
use tunerpool_testkit::{backend_tests, execute, fetch_i64, Backend};

backend_tests!(
    the_latest_measurement_is_kept_per_source_and_every_one_in_the_history,
    the_history_keeps_thirty_days,
    a_measurement_follows_its_streams_identity_not_its_row,
    measurements_go_with_their_provider,
    what_the_score_rests_on_counts_failures_per_hour_of_ended_connections,
    probes_go_to_unmeasured_then_dead_then_oldest_sources_of_visible_channels,
);

async fn setup(backend: Backend) -> (tempfile::TempDir, Store, i64) {
    let dir = tempfile::tempdir().unwrap();
    let store = backend.open(dir.path()).await;
    let provider = store
        .add_provider(&NewProvider {
            name: "P".into(),
            kind: Some(ProviderKind::Xtream),
            url: "http://127.0.0.1:9".into(),
            username: Some("u".into()),
            password: Some(Secret::new("p")),
            enabled: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .id;
    (dir, store, provider)
}

/// A stream row of `provider` with this id and upstream key, as a sync writes it.
async fn stream(store: &Store, provider: i64, id: i64, key: &str) {
    execute(
        store,
        &format!(
            "INSERT INTO streams (id, provider_id, upstream_key, name, position, first_gen, sync_gen) \
             VALUES ({id}, {provider}, '{key}', 'S', 0, 1, 1)"
        ),
    )
    .await;
}

fn measurement(stream_id: i64, at: i64, height: i64) -> NewQuality {
    NewQuality {
        stream_id,
        measured_at: at,
        verdict: "ok".into(),
        video_codec: Some("h264".into()),
        width: Some(height * 16 / 9),
        height: Some(height),
        fps: Some(25.0),
        bitrate: Some(8_000_000),
        report: format!(r#"{{"height":{height}}}"#),
    }
}

async fn the_latest_measurement_is_kept_per_source_and_every_one_in_the_history(backend: Backend) {
    let (_dir, store, p) = setup(backend).await;
    stream(&store, p, 1, "101").await;
    stream(&store, p, 2, "102").await;
    let t = 1_800_000_000;
    store.record_quality(&measurement(1, t, 720)).await.unwrap();
    store.record_quality(&measurement(1, t + 300, 1080)).await.unwrap();
    // Late: a report taken before the one kept does not replace it (it still joins the history).
    store.record_quality(&measurement(1, t + 100, 576)).await.unwrap();
    let latest = store.latest_quality(&[1, 2, 3]).await.unwrap();
    assert_eq!(latest.len(), 1, "only stream 1 was measured: {latest:?}");
    let q = &latest[&1];
    assert_eq!((q.measured_at, q.height, q.width), (t + 300, Some(1080), Some(1920)));
    assert_eq!((q.verdict.as_str(), q.video_codec.as_deref(), q.fps), ("ok", Some("h264"), Some(25.0)));
    assert_eq!(q.report, r#"{"height":1080}"#);
    let history: Vec<_> = store.quality_history(1).await.unwrap().iter().map(|h| h.height).collect();
    assert_eq!(history, [Some(720), Some(576), Some(1080)], "oldest first");
    assert!(store.quality_history(2).await.unwrap().is_empty());
}

async fn the_history_keeps_thirty_days(backend: Backend) {
    let (_dir, store, p) = setup(backend).await;
    stream(&store, p, 1, "101").await;
    stream(&store, p, 2, "102").await;
    let t = 1_800_000_000;
    store.record_quality(&measurement(1, t, 720)).await.unwrap();
    store.record_quality(&measurement(2, t + 10, 720)).await.unwrap();
    store.record_quality(&measurement(1, t + KEEP_SECONDS, 1080)).await.unwrap();
    assert_eq!(store.quality_history(1).await.unwrap().len(), 2, "exactly 30 days old is kept");
    store.record_quality(&measurement(2, t + KEEP_SECONDS + 11, 576)).await.unwrap();
    let one: Vec<_> = store.quality_history(1).await.unwrap().iter().map(|h| h.measured_at).collect();
    let two: Vec<_> = store.quality_history(2).await.unwrap().iter().map(|h| h.measured_at).collect();
    assert_eq!(one, [t + KEEP_SECONDS], "older than 30 days pruned, whichever source");
    assert_eq!(two, [t + KEEP_SECONDS + 11]);
    // The latest stays, however old.
    assert_eq!(store.latest_quality(&[1]).await.unwrap()[&1].measured_at, t + KEEP_SECONDS);
}

async fn a_measurement_follows_its_streams_identity_not_its_row(backend: Backend) {
    let (_dir, store, p) = setup(backend).await;
    stream(&store, p, 1, "101").await;
    store.record_quality(&measurement(1, 1_800_000_000, 720)).await.unwrap();
    // A sync dropped the stream, a later one brought it back under another row id.
    execute(&store, "DELETE FROM streams WHERE id = 1").await;
    assert!(store.latest_quality(&[1]).await.unwrap().is_empty());
    stream(&store, p, 7, "101").await;
    assert_eq!(store.latest_quality(&[7]).await.unwrap()[&7].height, Some(720));
    // An unknown stream has no source to keep it under.
    match store.record_quality(&measurement(99, 1_800_000_000, 720)).await {
        Err(CatalogError::NotFound { what: "stream", .. }) => {}
        other => panic!("expected not found, got {other:?}"),
    }
}

async fn measurements_go_with_their_provider(backend: Backend) {
    let (_dir, store, p) = setup(backend).await;
    stream(&store, p, 1, "101").await;
    store.record_quality(&measurement(1, 1_800_000_000, 720)).await.unwrap();
    store.delete_provider(p).await.unwrap();
    let left = fetch_i64(
        &store,
        "SELECT (SELECT COUNT(*) FROM source_quality) + (SELECT COUNT(*) FROM source_quality_history)",
    )
    .await;
    assert_eq!(left, 0);
}

async fn what_the_score_rests_on_counts_failures_per_hour_of_ended_connections(backend: Backend) {
    let (_dir, store, p) = setup(backend).await;
    stream(&store, p, 1, "101").await;
    stream(&store, p, 2, "102").await;
    stream(&store, p, 3, "103").await;
    let now = tunerpool_catalog::now();
    let ended = |id, at, failed: bool, streamed_ms: u64| NewQuality {
        report: format!(
            r#"{{"stream_id":{id},"ttfb_ms":300,"streamed_ms":{streamed_ms},"ended":"stall","failed":{failed},
               "report":{{"verdict":"ok","video":{{"bitrate":5000000}},"time_to_first_keyframe_ms":700}}}}"#
        ),
        ..measurement(id, at, 1080)
    };
    // Stream 1: two hours in two connections, one of which failed: 0.5 per hour.
    store.record_quality(&ended(1, now - 7200, false, 3_600_000)).await.unwrap();
    store.record_quality(&ended(1, now - 60, true, 3_600_000)).await.unwrap();
    // Stream 2: a running report only: nothing ended yet.
    store.record_quality(&measurement(2, now, 576)).await.unwrap();
    let q = store.source_quality(&[1, 2, 3]).await.unwrap();
    assert_eq!(q.len(), 2, "stream 3 was never measured");
    let one = &q[&1];
    assert_eq!((one.verdict.as_str(), one.height, one.fps), ("ok", Some(1080), Some(25.0)));
    assert_eq!(one.bitrate, Some(5_000_000), "the video's own bitrate");
    assert_eq!(one.start_ms, Some(1000), "first byte + first keyframe");
    assert_eq!(one.faults_per_hour, Some(0.5));
    let two = &q[&2];
    assert_eq!((two.height, two.bitrate, two.faults_per_hour, two.start_ms), (Some(576), Some(8_000_000), None, None));
}

async fn probes_go_to_unmeasured_then_dead_then_oldest_sources_of_visible_channels(backend: Backend) {
    use tunerpool_catalog::ProbeScope;
    let (_dir, store, p) = setup(backend).await;
    let mut channels = Vec::new();
    for id in 1..=6 {
        stream(&store, p, id, &id.to_string()).await;
        channels.push(store.create_channel_from_stream(id).await.unwrap().id);
    }
    let now = tunerpool_domain::now();
    let day = 86_400;
    store.record_quality(&measurement(2, now - 10 * day, 720)).await.unwrap();
    let dead = NewQuality { verdict: "not_ts".into(), ..measurement(3, now - 5 * day, 720) };
    store.record_quality(&dead).await.unwrap();
    store.record_quality(&measurement(4, now - 60, 720)).await.unwrap();
    store.record_quality(&measurement(5, now - 20 * day, 720)).await.unwrap();
    // Stream 6's channel is hidden: nobody watches it through tunerpool, so it is not probed.
    execute(&store, &format!("UPDATE lineup_channels SET hidden = TRUE WHERE id = {}", channels[5])).await;

    let got = store.probe_candidates(now - day, 10).await.unwrap();
    let order: Vec<i64> = got.iter().map(|s| s.stream_id).collect();
    assert_eq!(order, vec![1, 3, 5, 2], "never measured, dead, then oldest; 4 is recent and 6 hidden");
    assert!(got.iter().all(|s| s.provider_id == p));
    assert_eq!(got[0].channel_id, channels[0]);
    assert_eq!(store.probe_candidates(now - day, 2).await.unwrap().len(), 2, "limited");

    let one = store.sources_to_probe(ProbeScope::Channel(channels[3])).await.unwrap();
    assert_eq!(one.iter().map(|s| s.stream_id).collect::<Vec<_>>(), vec![4], "asked for: probed however recent");
    match store.sources_to_probe(ProbeScope::Channel(999_999)).await {
        Err(CatalogError::NotFound { what: "channel", .. }) => {}
        other => panic!("expected not found, got {other:?}"),
    }
    match store.sources_to_probe(ProbeScope::Group(999_999)).await {
        Err(CatalogError::NotFound { what: "group", .. }) => {}
        other => panic!("expected not found, got {other:?}"),
    }
}
