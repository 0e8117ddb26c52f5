//! Live HLS upstreams over real sockets: an M3U provider whose entries are
//! HLS playlists of the simulated provider (directly, or behind a master
//! playlist), relayed to viewers as one continuous MPEG-TS stream.

mod common;

use common::{admin_get, api_client, app_state, ffprobe_auth, serve, TOKEN};

use std::time::{Duration, Instant};

use axum::routing::get;
use fakeprovider::{AccountSpec, FakeConfig, FakeProvider};
use futures_util::StreamExt;
use tunerpool_catalog::sync::sync_provider;
use tunerpool_catalog::{ChannelQuery, NewProvider, ProviderKind, Store};
use tunerpool_relay::settings::RelaySettings;
use tunerpool_upstream::{HttpSettings, UpstreamHttp};

struct Harness {
    fake: FakeProvider,
    base: String,
    /// Channel ids by name.
    channels: std::collections::HashMap<String, i64>,
    _dir: tempfile::TempDir,
}

/// Playlists the simulated provider does not serve: a master playlist in
/// front of its live HLS, and an encrypted media playlist.
async fn playlist_server(fake_url: String) -> String {
    let media = format!("{fake_url}/live/a/pa/1.m3u8");
    let master = format!(
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=9000000,CODECS=\"hvc1.1.6.L93.B0,mp4a.40.2\"\nhevc/missing.m3u8\n\
         #EXT-X-STREAM-INF:BANDWIDTH=2000000,RESOLUTION=1280x720,CODECS=\"avc1.64001f,mp4a.40.2\"\n{media}\n"
    );
    let encrypted = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-KEY:METHOD=AES-128,URI=\"key.bin\"\n#EXTINF:2,\na.ts\n";
    let app = axum::Router::new()
        .route("/master.m3u8", get(move || async move { master }))
        .route("/enc.m3u8", get(move || async move { encrypted }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

async fn harness() -> Harness {
    let fake = FakeProvider::start(FakeConfig::with_accounts(vec![AccountSpec::new("a", "pa", 1)])).await.unwrap();
    let extra = playlist_server(fake.url()).await;
    let dir = tempfile::tempdir().unwrap();
    let m3u = dir.path().join("hls.m3u");
    std::fs::write(
        &m3u,
        format!(
            "#EXTM3U\n#EXTINF:-1 tvg-id=\"media\" group-title=\"HLS\",Media playlist\n{}/live/a/pa/1.m3u8\n\
             #EXTINF:-1 tvg-id=\"master\" group-title=\"HLS\",Master playlist\n{extra}/master.m3u8\n\
             #EXTINF:-1 tvg-id=\"enc\" group-title=\"HLS\",Encrypted\n{extra}/enc.m3u8\n",
            fake.url()
        ),
    )
    .unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let http = UpstreamHttp::new(HttpSettings { spool_dir: dir.path().join("tmp"), ..Default::default() }).unwrap();
    let pid = store
        .add_provider(&NewProvider {
            name: "HLS".into(),
            kind: Some(ProviderKind::M3u),
            url: m3u.to_string_lossy().into_owned(),
            enabled: true,
            max_streams: Some(1),
            ..Default::default()
        })
        .await
        .unwrap()
        .id;
    sync_provider(&store, &http, pid).await.unwrap();
    let channels =
        store.channels(&ChannelQuery::default()).await.unwrap().items.into_iter().map(|c| (c.name, c.id)).collect();
    let settings = RelaySettings { linger: Duration::from_millis(300), ..RelaySettings::default() };
    let (base, _) = serve(app_state(&store, &http, settings)).await;
    Harness { fake, base, channels, _dir: dir }
}

/// Reads `resp` for `dur`: the bytes, and the longest wait between two reads
/// after the first.
async fn read_for(resp: reqwest::Response, dur: Duration) -> (Vec<u8>, Duration) {
    let mut out = Vec::new();
    let mut body = resp.bytes_stream();
    let deadline = tokio::time::Instant::now() + dur;
    let mut last: Option<Instant> = None;
    let mut longest = Duration::ZERO;
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, body.next()).await {
        if let Some(t) = last {
            longest = longest.max(t.elapsed());
        }
        last = Some(Instant::now());
        out.extend_from_slice(&chunk);
    }
    (out, longest)
}

fn all_packets_synced(data: &[u8]) -> bool {
    data.len() >= 188 * 100 && data.chunks_exact(188).all(|p| p[0] == 0x47)
}

/// The simulated provider's HLS is 2-second segments of about 450 KB.
const SEGMENT_BYTES: usize = 400_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_media_playlist_is_relayed_as_continuous_ts() {
    let h = harness().await;
    let id = h.channels["Media playlist"];
    let resp = admin_get(format!("{}/stream/{id}.ts", h.base)).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "video/mp2t");
    let (data, longest_gap) = read_for(resp, Duration::from_secs(7)).await;
    assert!(all_packets_synced(&data), "{} bytes, not all TS packets", data.len());
    // The first segment at once, then about one every 2 s (faster while
    // catching up with the live edge): new segments keep arriving.
    assert!(data.len() >= 3 * SEGMENT_BYTES, "only {} bytes in 7 s", data.len());
    // Paced over each segment's duration, not in bursts with silences.
    assert!(longest_gap < Duration::from_secs(2), "a gap of {longest_gap:?}");
    // One HLS session is one connection of the account.
    assert_eq!(h.fake.counters().accounts["a"].max_concurrent, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_playlist_follows_the_h264_variant_and_ffprobe_reads_it() {
    let h = harness().await;
    let id = h.channels["Master playlist"];
    let url = format!("{}/stream/{id}.ts", h.base);
    let out = tokio::process::Command::new("ffprobe")
        .args([
            "-headers",
            &ffprobe_auth(),
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
            "-read_intervals",
            "%+3",
            &url,
        ])
        .output()
        .await
        .expect("ffprobe must be installed (apt-get install ffmpeg)");
    let codecs = String::from_utf8_lossy(&out.stdout);
    assert!(codecs.contains("h264") && codecs.contains("aac"), "ffprobe found: {codecs:?}");
    // The HEVC variant (listed first, higher bandwidth) was not chosen: it
    // does not exist, so choosing it would have failed the stream.
    let sessions = api_client().get(format!("{}/api/v1/sessions", h.base)).bearer_auth(TOKEN).send().await.unwrap();
    let sessions: serde_json::Value = sessions.json().await.unwrap();
    let failovers = sessions.as_array().unwrap().iter().map(|s| s["failovers"].as_u64().unwrap()).sum::<u64>();
    assert_eq!(failovers, 0, "{sessions}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_playlist_is_refused_with_the_reason() {
    let h = harness().await;
    let id = h.channels["Encrypted"];
    let resp = admin_get(format!("{}/stream/{id}.ts", h.base)).await.unwrap();
    assert_eq!(resp.status(), 502);
    let text = resp.text().await.unwrap();
    assert!(text.contains("encrypted"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hls_upstream_stops_within_the_linger_after_the_last_viewer() {
    let h = harness().await;
    let id = h.channels["Media playlist"];
    let resp = admin_get(format!("{}/stream/{id}.ts", h.base)).await.unwrap();
    let (data, _) = read_for(resp, Duration::from_millis(1500)).await;
    assert!(all_packets_synced(&data));
    // The viewer left: the session ends after the linger (0.3 s)…
    tunerpool_testkit::eventually("the session to end after its linger", Duration::from_secs(5), || async {
        let sessions: serde_json::Value = api_client()
            .get(format!("{}/api/v1/sessions", h.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        sessions.as_array().unwrap().is_empty().then_some(())
    })
    .await;
    // …and from then on nothing more is fetched: after 1 s for a request in
    // flight when it ended, watched for 2 s (more than a segment's duration).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = h.fake.counters().accounts["a"].bytes_sent;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(h.fake.counters().accounts["a"].bytes_sent, before, "still fetching after the session ended");
}
