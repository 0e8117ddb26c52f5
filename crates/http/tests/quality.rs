//! Passive source measurement end to end: a channel played through the gateway (the simulated provider over real
//! sockets, the real store) shows what its source is in the admin API.

mod common;

use std::time::Duration;

use common::{admin_get, api_client, gateway};
use futures_util::StreamExt;
use serde_json::Value;
use tunerpool_relay::settings::RelaySettings;
use tunerpool_testkit::eventually;

async fn channel(base: &str, id: i64) -> Value {
    let resp = api_client().get(format!("{base}/api/v1/channels/{id}")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_played_channels_source_shows_its_measurement_in_the_api() {
    let settings = RelaySettings {
        linger: Duration::from_millis(300),
        quality_first_after: Duration::from_secs(2),
        ..RelaySettings::default()
    };
    let g = gateway(settings, |_| {}).await;
    let before = channel(&g.base, 1).await;
    let source = &before["sources"][0];
    assert!(source["quality"].is_null(), "not measured before it is played: {before}");
    let stream_id = source["stream_id"].as_i64().expect("a stream id");

    let resp = admin_get(format!("{}/stream/1.ts", g.base)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let (got_bytes, mut got) = tokio::sync::watch::channel(0usize);
    let viewer = tokio::spawn(async move {
        let mut body = resp.bytes_stream();
        let mut n = 0;
        while let Some(Ok(b)) = body.next().await {
            n += b.len();
            got_bytes.send_replace(n);
        }
    });
    // The report taken while it plays (after 2 s of streaming).
    let quality = eventually("a measurement while the channel plays", Duration::from_secs(15), || async {
        let q = channel(&g.base, 1).await["sources"][0]["quality"].clone();
        (!q.is_null()).then_some(q)
    })
    .await;
    assert!(*got.borrow_and_update() > 188 * 100, "the viewer was streaming meanwhile");
    assert_eq!(quality["stream_id"], stream_id, "{quality}");
    assert!(quality["ended"].is_null() && quality["failed"] == false, "{quality}");
    assert!(quality["ttfb_ms"].is_u64() && quality["streamed_ms"].as_u64() >= Some(2000), "{quality}");
    let report = &quality["report"];
    assert_eq!(report["verdict"], "ok", "{quality}");
    let video = &report["video"];
    assert_eq!(
        (video["codec"].as_str(), video["width"].as_u64(), video["height"].as_u64()),
        (Some("h264"), Some(1280), Some(720))
    );
    let fps = video["fps"].as_f64().expect("a frame rate");
    assert!((fps - 25.0).abs() < 0.1, "fps {fps}");
    assert!(report["total_bitrate"].as_u64().is_some_and(|b| b > 100_000), "{report}");
    assert_eq!(report["audio"][0]["codec"], "aac", "{report}");

    // The viewer leaves; after lingering, the session ends and its last report says so.
    viewer.abort();
    let last = eventually("the measurement at the session's end", Duration::from_secs(10), || async {
        let q = channel(&g.base, 1).await["sources"][0]["quality"].clone();
        (q["ended"] == "no viewers").then_some(q)
    })
    .await;
    assert_eq!(last["report"]["video"]["codec"], "h264", "{last}");
    assert!(last["streamed_ms"].as_u64() >= quality["streamed_ms"].as_u64(), "{last}");
    // The other source-less or unplayed channels stay unmeasured.
    assert!(channel(&g.base, 2).await["sources"][0]["quality"].is_null());
}

/// Issue 16: at 2000 viewers the store's pool of four connections was held by measurement writes waiting for
/// SQLite's write lock, and joins waited seconds for a connection. Here another process holds the write lock
/// (as a long sync or a slow disk would) while fifty live connections hand over their reports at once, the way
/// fifty channels started together do ten seconds later: a viewer starting a channel still gets its stream at
/// once, because the reports wait in the one quality writer's queue, not in the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_does_not_delay_a_join_while_sessions_report() {
    use sqlx::Connection;
    use tunerpool_relay::{QualityReport, SourceMeasurement};

    let g = gateway(RelaySettings::default(), |_| {}).await;
    let store = g.state.store.clone();
    let stream_id = channel(&g.base, 1).await["sources"][0]["stream_id"].as_i64().expect("a stream id");
    let mut locker = sqlx::SqliteConnection::connect(&format!(
        "sqlite://{}",
        store.data_dir().join(tunerpool_catalog::store::DB_FILE).display()
    ))
    .await
    .unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut locker).await.unwrap();

    let catalog = tunerpool_http::StoreCatalog::shared(store.clone());
    for n in 0..50u64 {
        let catalog = catalog.clone();
        let m = SourceMeasurement {
            stream_id,
            account_id: 1,
            started_at: 1_800_000_000 + n,
            measured_at: 1_800_000_010 + n,
            streamed_ms: 10_000,
            ttfb_ms: Some(20),
            ended: None,
            failed: false,
            probe: false,
            report: QualityReport::default(),
        };
        // As the session's measurer does: from a task of its own.
        tokio::spawn(async move { catalog.record_quality(m).await });
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = std::time::Instant::now();
    let resp = tokio::time::timeout(Duration::from_secs(20), admin_get(format!("{}/stream/1.ts", g.base)))
        .await
        .expect("the join answers")
        .unwrap();
    let mut body = resp.bytes_stream();
    let first = body.next().await.expect("a first chunk").expect("bytes");
    let waited = started.elapsed();
    assert!(!first.is_empty());
    assert!(waited < Duration::from_secs(3), "the join waited {waited:?} behind the locked database");

    // Once the lock is gone the queued reports are written.
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    drop(locker);
    store.flush_quality().await;
    let q = eventually("the queued measurements written", Duration::from_secs(15), || async {
        let q = channel(&g.base, 1).await["sources"][0]["quality"].clone();
        (!q.is_null()).then_some(q)
    })
    .await;
    assert_eq!(q["stream_id"], stream_id, "{q}");
}
