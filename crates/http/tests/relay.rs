//! The relay over real sockets: tunerpool's HTTP server in-process, the
//! simulated provider as the upstream, real MPEG-TS.

mod common;

use common::{admin_get, api_client, app_state_with_ledger, ffprobe_auth, serve, TOKEN};

use std::time::{Duration, Instant};

use fakeprovider::{AccountSpec, FakeConfig, FakeProvider, Fault, FaultKind, LimitMode, LimitSettings};
use futures_util::StreamExt;
use tunerpool_catalog::sync::sync_provider;
use tunerpool_catalog::{AccountPatch, NewProvider, ProviderKind, Secret, Store};
use tunerpool_ledger::MemoryLedger;
use tunerpool_relay::relay::Relay;
use tunerpool_relay::settings::RelaySettings;
use tunerpool_upstream::{HttpSettings, UpstreamHttp};

struct Harness {
    fake: FakeProvider,
    base: String,
    /// The server's relay, for calls as a downstream user.
    relay: Relay,
    _dir: tempfile::TempDir,
    _server: tokio::task::JoinHandle<()>,
}

async fn harness(accounts: Vec<AccountSpec>, bitrate_bps: Option<u64>, settings: RelaySettings) -> Harness {
    let config = FakeConfig { bitrate_bps, ..FakeConfig::with_accounts(accounts) };
    harness_with(config, settings, MemoryLedger::new(Duration::from_secs(15))).await
}

/// A gateway over a provider configured by `config` (its accounts, the first one primary), with `ledger`.
async fn harness_with(config: FakeConfig, settings: RelaySettings, ledger: MemoryLedger) -> Harness {
    let accounts = config.accounts.clone();
    let fake = FakeProvider::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let http = UpstreamHttp::new(HttpSettings { spool_dir: dir.path().join("tmp"), ..Default::default() }).unwrap();
    let first = &accounts[0];
    let pid = store
        .add_provider(&NewProvider {
            name: "Fake".into(),
            kind: Some(ProviderKind::Xtream),
            url: fake.url(),
            username: Some(first.username.clone()),
            password: Some(Secret::new(first.password.clone())),
            enabled: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .id;
    for (i, a) in accounts.iter().enumerate().skip(1) {
        let input = AccountPatch {
            username: Some(a.username.clone()),
            password: Some(Secret::new(a.password.clone())),
            priority: Some(i as i64),
            ..Default::default()
        };
        store.create_account(pid, &input).await.unwrap();
    }
    sync_provider(&store, &http, pid).await.unwrap();
    let provider = store.provider(pid).await.unwrap();
    for a in store.accounts(pid).await.unwrap() {
        tunerpool_catalog::details::refresh_account(&store, &http, &provider, &a).await.unwrap();
    }
    let state = app_state_with_ledger(&store, &http, settings, ledger);
    let relay = state.relay.clone();
    let (base, server) = serve(state).await;
    Harness { fake, base, relay, _dir: dir, _server: server }
}

/// `GET /api/v1/sessions` with the admin token.
async fn get_sessions(h: &Harness) -> serde_json::Value {
    let resp = api_client().get(format!("{}/api/v1/sessions", h.base)).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn fast() -> RelaySettings {
    RelaySettings {
        linger: Duration::from_millis(500),
        acquire_wait: Duration::from_secs(3),
        stall_timeout: Duration::from_secs(2),
        ..RelaySettings::default()
    }
}

/// Reads a stream for `dur` (or until it ends); returns the bytes.
async fn read_for(resp: reqwest::Response, dur: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let mut body = resp.bytes_stream();
    let deadline = tokio::time::Instant::now() + dur;
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, body.next()).await {
        out.extend_from_slice(&chunk);
    }
    out
}

fn ts_ok(data: &[u8]) -> bool {
    data.len() >= 188 * 10 && data.chunks(188).filter(|p| p.len() == 188).all(|p| p[0] == 0x47)
}

async fn open_count(fake: &FakeProvider) -> u32 {
    fake.counters().accounts.values().map(|a| a.open).sum()
}

/// Waits until `check` holds, failing the test after `within`.
async fn wait_for(what: &str, mut check: impl FnMut() -> bool, within: Duration) {
    tunerpool_testkit::eventually(what, within, || {
        let ok = check();
        async move { ok.then_some(()) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_viewers_share_one_upstream_connection() {
    let h = harness(vec![AccountSpec::new("a", "pa", 1), AccountSpec::new("b", "pb", 1)], None, fast()).await;
    let url = format!("{}/stream/1.ts", h.base);
    let client = api_client();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let resp = client.get(&url).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.headers()["content-type"], "video/mp2t");
            read_for(resp, Duration::from_millis(1500)).await
        }));
    }
    for t in tasks {
        let data = t.await.unwrap();
        assert!(ts_ok(&data), "every viewer gets aligned MPEG-TS ({} bytes)", data.len());
    }
    let c = h.fake.counters();
    assert_eq!(c.total_opened, 1, "{c:?}");
    assert_eq!(c.accounts["a"].max_concurrent, 1);
    assert_eq!(c.accounts["b"].opened, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_closes_within_linger_after_the_last_viewer() {
    let h = harness(vec![AccountSpec::new("a", "pa", 1)], None, fast()).await;
    let resp = admin_get(format!("{}/stream/1.ts", h.base)).await.unwrap();
    assert!(ts_ok(&read_for(resp, Duration::from_millis(1500)).await));
    assert_eq!(open_count(&h.fake).await, 1);
    let left = Instant::now();
    wait_for(
        "the upstream connections closed",
        || h.fake.counters().accounts["a"].open == 0,
        Duration::from_millis(500 + 1000),
    )
    .await;
    assert!(left.elapsed() >= Duration::from_millis(400), "lingered");
    let sessions: serde_json::Value = get_sessions(&h).await;
    assert_eq!(sessions, serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_rapid_zaps_on_one_connection_account_never_503() {
    // The default release cool-down, as served: with none, nothing can make sure the provider noticed the old
    // connection close before the new one arrives (it may not even have been scheduled yet), and a refusal
    // then is the configuration's doing, not the relay's.
    let ledger =
        MemoryLedger::new(Duration::from_secs(15)).with_release_cooldown(tunerpool_ledger::DEFAULT_RELEASE_COOLDOWN);
    let config = FakeConfig::with_accounts(vec![AccountSpec::new("a", "pa", 1)]);
    let h = harness_with(config, RelaySettings { linger: Duration::from_secs(5), ..fast() }, ledger).await;
    let client = api_client();
    let mut current = client.get(format!("{}/stream/1.ts", h.base)).send().await.unwrap();
    assert_eq!(current.status(), 200);
    current.chunk().await.unwrap();
    for i in 0..20 {
        // Open the new channel first, then close the old one while the new
        // request is in flight — as players do.
        let channel = 2 + (i % 5);
        let next = tokio::spawn(client.get(format!("{}/stream/{channel}.ts", h.base)).send());
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(current);
        let next = next.await.unwrap().unwrap();
        assert_eq!(next.status(), 200, "zap {i}: {}", next.text().await.unwrap_or_default());
        current = next;
        let first = current.chunk().await.unwrap().unwrap();
        assert_eq!(first[0], 0x47, "zap {i}");
    }
    let c = h.fake.counters();
    assert_eq!(c.accounts["a"].max_concurrent, 1, "never two connections: {c:?}");
    assert_eq!(c.accounts["a"].refused, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_capacity_is_a_503_that_says_why() {
    let h = harness(
        vec![AccountSpec::new("a", "pa", 1)],
        None,
        RelaySettings { acquire_wait: Duration::from_millis(300), ..fast() },
    )
    .await;
    let busy = admin_get(format!("{}/stream/1.ts", h.base)).await.unwrap();
    assert_eq!(busy.status(), 200);
    let started = Instant::now();
    let refused = admin_get(format!("{}/stream/2.ts", h.base)).await.unwrap();
    assert_eq!(refused.status(), 503);
    assert!(started.elapsed() >= Duration::from_millis(250), "waited for a slot first");
    let why = refused.text().await.unwrap();
    assert!(why.contains("Fake") && why.contains("1/1"), "{why}");
    assert!(!why.contains("pa"), "{why}");
    let missing = admin_get(format!("{}/stream/999999.ts", h.base)).await.unwrap();
    assert_eq!(missing.status(), 404);
    let metrics = admin_get(format!("{}/metrics", h.base)).await.unwrap().text().await.unwrap();
    assert_eq!(metric(&metrics, "tunerpool_refusals_total"), 1.0, "{metrics}");
    assert!(metrics.contains("tunerpool_refusals_total{reason=\"no_capacity\"} 1"), "{metrics}");
    assert_eq!(metric(&metrics, "tunerpool_viewers"), 1.0, "{metrics}");
    drop(busy);
}

/// Reads `resp` for `dur`, returning (bytes, longest gap between chunks).
async fn watch_gaps(mut resp: reqwest::Response, dur: Duration) -> (usize, Duration) {
    let t0 = Instant::now();
    let (mut bytes, mut gap, mut last) = (0, Duration::ZERO, Instant::now());
    while t0.elapsed() < dur {
        match tokio::time::timeout(Duration::from_secs(4), resp.chunk()).await {
            Ok(Ok(Some(c))) => {
                gap = gap.max(last.elapsed());
                last = Instant::now();
                bytes += c.len();
            }
            other => panic!("the viewer lost the stream after {:?}: {other:?}", t0.elapsed()),
        }
    }
    (bytes, gap)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_upstream_fails_over_to_the_next_account_within_two_seconds() {
    let h = harness(vec![AccountSpec::new("a", "pa", 1), AccountSpec::new("b", "pb", 1)], None, fast()).await;
    // Account a's streams (reconnects included) are cut after 300 KB, about 1.3 s.
    h.fake.set_fault(Fault::new(FaultKind::CutAfter { bytes: 300_000 }).for_user("a"));
    let resp = admin_get(format!("{}/stream/1.ts", h.base)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let (bytes, gap) = watch_gaps(resp, Duration::from_secs(5)).await;
    let c = h.fake.counters();
    assert_eq!(c.accounts["a"].opened, 2, "one reconnect on the same account: {c:?}");
    assert_eq!(c.accounts["b"].opened, 1, "then the next account: {c:?}");
    assert!(gap < Duration::from_secs(2), "longest gap {gap:?}");
    assert!(bytes > 600_000, "{bytes}");
    let sessions: serde_json::Value = get_sessions(&h).await;
    assert_eq!(sessions[0]["failovers"], 1);
    assert_eq!(sessions[0]["upstream"]["account"], "b");
    let url = sessions[0]["upstream"]["url"].as_str().unwrap();
    assert!(!url.contains("/pb/") && url.contains("***"), "credentials masked: {url}");
    let metrics = admin_get(format!("{}/metrics", h.base)).await.unwrap().text().await.unwrap();
    assert!(metric(&metrics, "tunerpool_failovers_total") == 1.0, "{metrics}");
    assert!(metrics.contains("tunerpool_failovers_total{provider=\"Fake\",account=\"Primary\""), "{metrics}");
    assert!(metric(&metrics, "tunerpool_sessions") == 1.0, "{metrics}");
    let (sent, received) = ("tunerpool_viewer_sent_bytes_total", "tunerpool_upstream_received_bytes_total");
    assert!(metric(&metrics, sent) > 600_000.0, "{metrics}");
    assert!(metric(&metrics, received) >= metric(&metrics, sent), "{metrics}");
    // The events log tells the story, without the password.
    let client = api_client();
    let url = format!("{}/api/v1/events?level=warn&kind=failover", h.base);
    let events = client.get(url).bearer_auth(TOKEN).send().await.unwrap();
    let events: serde_json::Value = events.json().await.unwrap();
    let e = &events[0];
    assert_eq!((e["level"].as_str(), e["channel_id"].as_i64()), (Some("warn"), Some(1)), "{events}");
    let text = e["message"].as_str().unwrap();
    assert!(text.contains("failed") && text.contains("next source") && !text.contains("pa"), "{text}");
    let url = format!("{}/api/v1/events?level=loud&limit=0", h.base);
    let bad = client.get(url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let body = bad.text().await.unwrap();
    assert!(body.contains("level") && body.contains("limit"), "{body}");
}

/// A metric's value in a Prometheus text exposition: the sum of its samples
/// over all their labels.
fn metric(text: &str, name: &str) -> f64 {
    let values: Vec<f64> = text
        .lines()
        .filter_map(|l| l.strip_prefix(name))
        .filter_map(|rest| match rest.strip_prefix('{') {
            Some(labelled) => labelled.rsplit_once("} ").map(|(_, v)| v),
            None => rest.strip_prefix(' '),
        })
        .map(|v| v.trim().parse::<f64>().unwrap())
        .collect();
    assert!(!values.is_empty(), "no {name} in {text}");
    values.iter().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placeholder_or_a_stall_is_a_failure_not_a_stream() {
    let h = harness(vec![AccountSpec::new("a", "pa", 1), AccountSpec::new("b", "pb", 1)], None, fast()).await;
    // a answers 200 with a text placeholder: not MPEG-TS, so b is used at once.
    h.fake.set_fault(Fault::new(FaultKind::Placeholder).for_user("a"));
    let resp = admin_get(format!("{}/stream/1.ts", h.base)).await.unwrap();
    assert_eq!(resp.status(), 200);
    // 3 s: the failover and the first keyframe must fit on a busy 2-core CI machine too.
    let data = read_for(resp, Duration::from_secs(3)).await;
    assert!(ts_ok(&data), "{} bytes, starting {:02x?}", data.len(), &data[..data.len().min(8)]);
    let c = h.fake.counters();
    assert_eq!(c.accounts["b"].opened, 1, "{c:?}");
    wait_for(
        "the upstream connections closed",
        || h.fake.counters().accounts.values().all(|a| a.open == 0),
        Duration::from_secs(3),
    )
    .await;

    // Channel 2: a stalls after 100 KB; the stall timeout (2 s) moves it on.
    h.fake.clear_faults();
    h.fake.set_fault(Fault::new(FaultKind::Stall { after_bytes: 100_000 }).for_user("a"));
    let resp = admin_get(format!("{}/stream/2.ts", h.base)).await.unwrap();
    let (_, gap) = watch_gaps(resp, Duration::from_secs(8)).await;
    assert!(gap < Duration::from_secs(4), "stall 2 s x (1 reconnect + switch): gap {gap:?}");
    let c = h.fake.counters();
    assert!(c.accounts["b"].opened >= 2, "{c:?}");
}

/// A viewer that reads the response head and then never reads again. Its
/// receive buffer is small (16 KiB) so that the server's writes to it block
/// soon, as a stuck TV's would: an HTTP client library, or the machine's TCP
/// autotuning, could otherwise absorb megabytes first and hide the stall.
async fn stuck_viewer(base: &str, path: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 512];
    let n = stream.read(&mut head).await.unwrap();
    assert!(head[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&head[..n]));
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_stops_reading_does_not_slow_the_others() {
    // 8 Mbit/s upstream, a 1 MB buffer: a stuck viewer falls out of it within a second; its write waits on a full
    // socket, so it cannot jump, and it is dropped once its connection took no byte for the stall limit.
    let settings = RelaySettings { buffer_bytes: 1_000_000, viewer_stall: Duration::from_millis(1500), ..fast() };
    let h = harness(vec![AccountSpec::new("a", "pa", 1)], Some(8_000_000), settings).await;
    let url = format!("{}/stream/1.ts", h.base);
    // The stuck viewer: connects, reads the response head, then never reads again.
    let stuck = stuck_viewer(&h.base, "/stream/1.ts").await;
    let good = admin_get(&url).await.unwrap();
    let t0 = Instant::now();
    let (bytes, gap) = watch_gaps(good, Duration::from_secs(4)).await;
    let rate = bytes as f64 * 8.0 / t0.elapsed().as_secs_f64();
    assert!(rate > 6_500_000.0, "the reading viewer got {:.1} Mbit/s", rate / 1e6);
    assert!(gap < Duration::from_millis(500), "{gap:?}");
    // The reading viewer has left too (its response was dropped); the stuck one must have been dropped, not be
    // waiting on its socket: the session has no viewer left, and the drop was counted.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sessions: serde_json::Value = get_sessions(&h).await;
        let viewers = sessions.as_array().unwrap().first().map_or(0, |s| s["viewers"].as_array().unwrap().len());
        if viewers == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the stuck viewer was never dropped: {sessions}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = admin_get(format!("{}/metrics", h.base)).await.unwrap().text().await.unwrap();
    assert_eq!(metric(&metrics, "tunerpool_viewer_drops_total"), 1.0, "{metrics}");
    drop(stuck);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_session_ends_its_viewers_and_frees_the_slot() {
    let h = harness(vec![AccountSpec::new("a", "pa", 1)], None, fast()).await;
    let resp = admin_get(format!("{}/stream/3.ts", h.base)).await.unwrap();
    let id = resp.headers()["x-tunerpool-session"].to_str().unwrap().to_string();
    let client = api_client();
    let del = client.delete(format!("{}/api/v1/sessions/{id}", h.base)).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(del.status(), 204);
    let data = read_for(resp, Duration::from_secs(3)).await;
    assert!(data.len() < 20_000_000, "the stream ended");
    wait_for("the upstream connections closed", || h.fake.counters().accounts["a"].open == 0, Duration::from_secs(2))
        .await;
    let again = client.delete(format!("{}/api/v1/sessions/{id}", h.base)).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(again.status(), 404);
}

/// ffprobe (installed by .ci/run) must find H.264 and AAC in the proxied stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffprobe_finds_h264_and_aac() {
    let h = harness(vec![AccountSpec::new("a", "pa", 1)], None, fast()).await;
    let url = format!("{}/stream/1.ts", h.base);
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
    assert!(
        codecs.contains("h264") && codecs.contains("aac"),
        "ffprobe found: {codecs:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn movies_pass_ranges_through_and_hold_a_slot_while_sent() {
    let settings = RelaySettings { acquire_wait: Duration::from_millis(300), ..fast() };
    let h = harness(vec![AccountSpec::new("a", "pa", 1)], None, settings).await;
    let sample = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/media/sample-720p.ts")).unwrap();
    let client = api_client();
    let resp = client.get(format!("{}/movie/1.ts", h.base)).header("range", "bytes=1000-1999").send().await.unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.headers()["content-range"], format!("bytes 1000-1999/{}", sample.len()));
    assert_eq!(&resp.bytes().await.unwrap()[..], &sample[1000..2000]);

    // While a movie is being sent its account's only slot is taken. (The
    // provider stalls it after 100 KB: a whole 2.2 MB file would fit in the
    // loopback socket buffers and be "sent" at once.)
    h.fake.set_fault(Fault::new(FaultKind::Stall { after_bytes: 100_000 }).for_stream(22));
    let mut held = client.get(format!("{}/movie/2.mkv", h.base)).send().await.unwrap();
    assert_eq!(held.status(), 200);
    assert_eq!(held.headers()["content-length"], sample.len().to_string());
    held.chunk().await.unwrap();
    let live = client.get(format!("{}/stream/1.ts", h.base)).send().await.unwrap();
    assert_eq!(live.status(), 503);
    // ... and given back when the viewer goes away.
    drop(held);
    wait_for("the upstream connections closed", || h.fake.counters().accounts["a"].open == 0, Duration::from_secs(3))
        .await;
    let live = client.get(format!("{}/stream/1.ts", h.base)).send().await.unwrap();
    assert_eq!(live.status(), 200);
    drop(live);
    h.fake.clear_faults();
    let missing = client.get(format!("{}/movie/424242.mkv", h.base)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let bad = client.get(format!("{}/movie/1.ts", h.base)).header("range", "bytes=99999999-").send().await.unwrap();
    assert_eq!(bad.status(), 416);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_is_listed_with_the_sessions_and_can_be_stopped() {
    let settings = RelaySettings { acquire_wait: Duration::from_millis(300), ..fast() };
    let h = harness(vec![AccountSpec::new("a", "pa", 1)], None, settings).await;
    h.fake.set_fault(Fault::new(FaultKind::Stall { after_bytes: 100_000 }).for_stream(21));
    let client = api_client();
    let mut held = client.get(format!("{}/movie/1.mp4", h.base)).send().await.unwrap();
    assert_eq!(held.status(), 200);
    held.chunk().await.unwrap();
    let sessions: serde_json::Value = client
        .get(format!("{}/api/v1/sessions", h.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = sessions.as_array().unwrap();
    assert_eq!(list.len(), 1, "{sessions}");
    let movie = &list[0];
    assert_eq!(movie["kind"], "movie");
    assert_eq!(movie["upstream"]["account"], "Primary");
    assert!(!movie["upstream"]["url"].as_str().unwrap().contains("pa"), "{movie}");
    assert!(movie["viewers"][0]["bytes"].as_u64().unwrap() > 0, "{movie}");
    let id = movie["id"].as_u64().unwrap();
    let del = client.delete(format!("{}/api/v1/sessions/{id}", h.base)).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(del.status(), 204);
    // Stopping ends the body; the slot comes back and the list empties.
    while let Ok(Some(_)) = held.chunk().await {}
    wait_for("the upstream connections closed", || h.fake.counters().accounts["a"].open == 0, Duration::from_secs(3))
        .await;
    let sessions: serde_json::Value = client
        .get(format!("{}/api/v1/sessions", h.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sessions, serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_clients_get_segments_of_the_same_shared_upstream() {
    let settings = RelaySettings { hls_idle: Duration::from_secs(2), ..fast() };
    let h = harness(vec![AccountSpec::new("a", "pa", 1)], None, settings).await;
    let client = api_client();
    // A TS viewer and an HLS client of the same channel share one upstream.
    let ts = client.get(format!("{}/stream/1.ts", h.base)).send().await.unwrap();
    assert_eq!(ts.status(), 200);
    let playlist = client.get(format!("{}/stream/1.m3u8", h.base)).send().await.unwrap();
    assert_eq!(playlist.status(), 200, "{:?}", playlist.text().await);
    assert_eq!(playlist.headers()["content-type"], "application/vnd.apple.mpegurl");
    let text = playlist.text().await.unwrap();
    assert!(
        text.starts_with("#EXTM3U") && text.contains("#EXT-X-MEDIA-SEQUENCE:") && text.contains("#EXTINF:"),
        "{text}"
    );
    let segment = text.lines().find(|l| l.starts_with("/stream/1/hls/")).expect("a segment URL").to_string();
    let data = client.get(format!("{}{segment}", h.base)).send().await.unwrap().bytes().await.unwrap();
    assert!(data.len() > 100_000 && data.chunks(188).all(|p| p[0] == 0x47), "{} bytes", data.len());
    // Players read it: ffprobe follows the playlist and finds both streams.
    let url = format!("{}/stream/1.m3u8", h.base);
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
            &url,
        ])
        .output()
        .await
        .expect("ffprobe must be installed (apt-get install ffmpeg)");
    let codecs = String::from_utf8_lossy(&out.stdout);
    assert!(codecs.contains("h264") && codecs.contains("aac"), "ffprobe found: {codecs:?}");
    assert_eq!(h.fake.counters().accounts["a"].max_concurrent, 1);
    let missing = client.get(format!("{}/stream/1/hls/999999.ts", h.base)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    // With the TS viewer gone and no HLS request for hls_idle, the channel
    // closes: idle 2 s + linger 0.5 s (+1 s).
    drop(ts);
    wait_for(
        "the upstream connections closed",
        || h.fake.counters().accounts["a"].open == 0,
        Duration::from_millis(3500),
    )
    .await;
}

fn user(max_connections: u32) -> tunerpool_relay::Viewer {
    let quota = tunerpool_relay::UserQuota { id: 1, name: "kim".into(), max_connections, priority: 0 };
    tunerpool_relay::Viewer { address: "10.0.0.9:5000".into(), user: Some(quota) }
}

/// Reads a viewer stream until it ends or `within` passes; true if it ended.
async fn ends_within(mut s: tunerpool_relay::relay::ViewerStream, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.next()).await {
            Ok(Some(Ok(_))) => continue,
            Ok(_) => return true,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_at_its_limit_zapping_gets_the_new_channel_and_loses_the_old() {
    // One connection on the account and one for the user: the player opens
    // the new channel before closing the old, every time.
    let h = harness(vec![AccountSpec::new("a", "pa", 1)], None, fast()).await;
    let mut old = h.relay.watch(1, user(1)).await.unwrap();
    assert!(old.next().await.is_some());
    for channel in [2, 3, 1, 2] {
        let mut new = h.relay.watch(channel, user(1)).await.expect("the new channel is served");
        assert!(!new.next().await.unwrap().unwrap().is_empty());
        assert!(ends_within(old, Duration::from_secs(2)).await, "the replaced stream ends");
        old = new;
    }
    assert_eq!(h.relay.user_connections(1), 1);
    assert_eq!(h.fake.counters().accounts["a"].max_concurrent, 1, "never over the account's limit");
    drop(old);
    wait_for("the user's connections released", || h.relay.user_connections(1) == 0, Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_at_its_limit_is_refused_under_the_refuse_policy() {
    let settings = RelaySettings {
        acquire_wait: Duration::from_millis(200),
        user_limit_policy: tunerpool_relay::UserLimitPolicy::Refuse,
        ..fast()
    };
    let h = harness(vec![AccountSpec::new("a", "pa", 2)], None, settings).await;
    let mut first = h.relay.watch(1, user(1)).await.unwrap();
    assert!(first.next().await.is_some());
    let err = h.relay.watch(2, user(1)).await.err().expect("refused");
    let text = err.to_string();
    assert!(matches!(err, tunerpool_relay::relay::WatchError::UserLimit(_)), "{text}");
    assert!(text.contains("kim") && text.contains("limit of 1"), "{text}");
    // The first stream is untouched, and another user is not affected.
    assert!(first.next().await.is_some());
    let other = tunerpool_relay::Viewer {
        address: "10.0.0.10:5000".into(),
        user: Some(tunerpool_relay::UserQuota { id: 2, name: "lee".into(), max_connections: 1, priority: 0 }),
    };
    assert!(h.relay.watch(2, other).await.is_ok());
}

/// Issue 10 finding 7: a provider that cuts every stream of a channel (every account) every 1.5 s must not end
/// the viewer's stream: the sources deliver, so the session keeps coming back to them. Before the fix each
/// account had two tries and the stream ended after about 6 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_cutting_every_stream_every_second_and_a_half_never_ends_the_viewers_stream() {
    let h = harness(vec![AccountSpec::new("a", "pa", 1), AccountSpec::new("b", "pb", 1)], None, fast()).await;
    // The sample's own rate is about 227 KB/s: 340 KB is 1.5 s.
    h.fake.set_fault(Fault::new(FaultKind::CutAfter { bytes: 340_000 }).for_stream(1));
    let resp = admin_get(format!("{}/stream/1.ts", h.base)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let (bytes, gap) = watch_gaps(resp, Duration::from_secs(15)).await;
    let c = h.fake.counters();
    let opened = c.accounts["a"].opened + c.accounts["b"].opened;
    assert!(opened >= 8, "the provider cut it about 10 times: {c:?}");
    assert!(bytes > 2_000_000, "{bytes}");
    assert!(gap < Duration::from_secs(2), "longest gap {gap:?}");
    assert!(c.accounts.values().all(|a| a.max_concurrent <= 1), "{c:?}");
}

/// A source that never delivers is still abandoned fast: every account refused means a quick 502, after a
/// bounded number of tries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_whose_sources_never_deliver_is_refused_fast() {
    let h = harness(vec![AccountSpec::new("a", "pa", 1), AccountSpec::new("b", "pb", 1)], None, fast()).await;
    h.fake.set_fault(Fault::new(FaultKind::Placeholder).for_stream(2));
    let t0 = Instant::now();
    let resp = admin_get(format!("{}/stream/2.ts", h.base)).await.unwrap();
    assert_eq!(resp.status(), 502);
    assert!(t0.elapsed() < Duration::from_secs(3), "refused after {:?}", t0.elapsed());
    let body = resp.text().await.unwrap();
    assert!(body.contains("not a stream"), "{body}");
}

/// Issue 10 finding 7: an upstream that answers 200 and then sends nothing is a stall: the first byte is
/// bounded by `relay.stall_timeout` (2 s here), not by the 10 s open timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_at_the_start_costs_the_stall_timeout_not_the_open_timeout() {
    let h = harness(vec![AccountSpec::new("a", "pa", 1)], None, fast()).await;
    h.fake.set_fault(Fault::new(FaultKind::Stall { after_bytes: 0 }).for_user("a").times(1));
    let t0 = Instant::now();
    let mut resp = admin_get(format!("{}/stream/3.ts", h.base)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let first = resp.chunk().await.unwrap().unwrap();
    let ttfb = t0.elapsed();
    assert_eq!(first[0], 0x47);
    assert!(ttfb < Duration::from_millis(3500), "first byte after {ttfb:?} (stall timeout 2 s, open timeout 10 s)");
    assert_eq!(h.fake.counters().accounts["a"].opened, 2, "the stalled connection and the reconnect");
}

/// Zaps on a one-connection account as players do them (the new channel is requested, then the old one
/// closed), `n` times; every zap must get the new channel. Returns the provider's counters.
async fn zap(h: &Harness, n: usize) -> fakeprovider::Counters {
    let client = api_client();
    let mut current = client.get(format!("{}/stream/1.ts", h.base)).send().await.unwrap();
    assert_eq!(current.status(), 200);
    current.chunk().await.unwrap();
    for i in 0..n {
        let channel = 2 + (i % 5);
        let next = tokio::spawn(client.get(format!("{}/stream/{channel}.ts", h.base)).send());
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(current);
        let next = next.await.unwrap().unwrap();
        assert_eq!(next.status(), 200, "zap {i}: {}", next.text().await.unwrap_or_default());
        current = next;
        let first = current.chunk().await.unwrap().unwrap();
        assert_eq!(first[0], 0x47, "zap {i}");
    }
    h.fake.counters()
}

/// Issue 10 finding 4: providers that notice a closed connection late (here 400 ms) must never see the
/// slot of a just-closed session reused: no refusal in refuse mode, no cut viewer in cut-oldest mode (both
/// set at run time). Before the fix the slot was reused about 1 ms after the close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zapping_against_a_provider_slow_to_notice_closes_is_never_refused_or_cut() {
    let config =
        FakeConfig { release_delay_ms: 400, ..FakeConfig::with_accounts(vec![AccountSpec::new("a", "pa", 1)]) };
    let settings = RelaySettings { linger: Duration::from_secs(5), ..fast() };
    let ledger = MemoryLedger::new(Duration::from_secs(15)).with_release_cooldown(Duration::from_millis(600));
    let h = harness_with(config, settings, ledger).await;
    let c = zap(&h, 6).await;
    assert_eq!((c.accounts["a"].refused, c.accounts["a"].cut), (0, 0), "{c:?}");
    assert_eq!(c.accounts["a"].max_concurrent, 1, "{c:?}");

    h.fake.set_limit_settings(&LimitSettings { limit_mode: Some(LimitMode::CutOldest), release_delay_ms: None });
    h.fake.reset_counters();
    let c = zap(&h, 6).await;
    assert_eq!((c.accounts["a"].refused, c.accounts["a"].cut), (0, 0), "{c:?}");
}

/// Issue 10 finding 4: a provider slower to notice a close than the cool-down (1.2 s against 300 ms) refuses the
/// slot right after a takeover; that refusal means "not released yet", so the same slot is tried again within
/// `relay.acquire_wait` (3 s) and the viewer gets the new channel, not an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_refusal_right_after_a_takeover_waits_for_the_provider_instead_of_failing() {
    let config = FakeConfig::with_accounts(vec![AccountSpec::new("a", "pa", 1)]);
    let settings = RelaySettings { linger: Duration::from_secs(5), ..fast() };
    let ledger = MemoryLedger::new(Duration::from_secs(15)).with_release_cooldown(Duration::from_millis(300));
    let h = harness_with(config, settings, ledger).await;
    h.fake.set_limit_settings(&LimitSettings { limit_mode: None, release_delay_ms: Some(1200) });
    assert_eq!(h.fake.limit_settings().release_delay_ms, Some(1200));
    let c = zap(&h, 3).await;
    assert!(c.accounts["a"].refused >= 1, "the provider did refuse at first: {c:?}");
    assert_eq!(c.accounts["a"].max_concurrent, 1, "{c:?}");
}

/// Issue 10 finding 8: viewers asking for a channel whose session is being stopped (here: stopped through the
/// API while its upstream stalls at the start, so it takes a moment to close) must get the next session's
/// stream, not a 502 "stopped". Before the fix the second viewer joined the stopping session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_joining_a_stopping_session_gets_the_next_session() {
    let h = harness(vec![AccountSpec::new("a", "pa", 1)], None, fast()).await;
    h.fake.set_fault(Fault::new(FaultKind::Stall { after_bytes: 0 }).for_user("a").times(1));
    let url = format!("{}/stream/1.ts", h.base);
    let first = tokio::spawn(admin_get(url.clone()));
    let mut id = None;
    wait_for(
        "a session to start",
        || {
            id = h.relay.sessions().first().map(|s| s.id);
            id.is_some()
        },
        Duration::from_secs(2),
    )
    .await;
    let client = api_client();
    let stop = format!("{}/api/v1/sessions/{}", h.base, id.unwrap());
    assert_eq!(client.delete(stop).bearer_auth(TOKEN).send().await.unwrap().status(), 204);
    let second = admin_get(&url).await.unwrap();
    let first = first.await.unwrap().unwrap();
    for (who, resp) in [("joined after the stop", second), ("waiting when it was stopped", first)] {
        let status = resp.status();
        let data = read_for(resp, Duration::from_millis(1500)).await;
        assert_eq!(status, 200, "{who}: {}", String::from_utf8_lossy(&data[..data.len().min(200)]));
        assert!(ts_ok(&data), "{who}");
    }
    assert_eq!(h.fake.counters().accounts["a"].max_concurrent, 1);
}

/// Issue 10 finding 8: the first viewer of a cold channel gets, like any later one, a stream a player can decode
/// from its first byte: the PAT, the PMT, then a keyframe (the upstream starts mid-GOP; the viewer waits for its
/// next keyframe). Before the fix it got the upstream's first bytes, and ffmpeg reported "non-existing PPS".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_viewer_of_a_cold_channel_starts_with_pat_pmt_and_a_keyframe() {
    let h = harness(vec![AccountSpec::new("a", "pa", 4)], None, fast()).await;
    for channel in [4, 5, 6] {
        let resp = admin_get(format!("{}/stream/{channel}.ts", h.base)).await.unwrap();
        assert_eq!(resp.status(), 200);
        let data = read_for(resp, Duration::from_millis(1500)).await;
        assert!(ts_ok(&data), "channel {channel}");
        let packets: Vec<&[u8]> = data.chunks_exact(188).take(2).collect();
        let pid = |p: &[u8]| (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]);
        assert_eq!(pid(packets[0]), 0, "channel {channel}: the PAT first");
        assert!(pid(packets[1]) != 0 && packets[1][1] & 0x40 != 0, "channel {channel}: then the PMT");
        let mut detector = tunerpool_relay::ts::KeyframeDetector::new();
        assert_eq!(detector.scan(&data[..data.len() / 188 * 188]), Some(2), "channel {channel}: then a keyframe");

        let file = h._dir.path().join(format!("first-{channel}.ts"));
        std::fs::write(&file, &data).unwrap();
        let out = tokio::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-v", "error", "-i"])
            .arg(&file)
            .args(["-f", "null", "-"])
            .output()
            .await
            .expect("ffmpeg must be installed (apt-get install ffmpeg)");
        let errors = String::from_utf8_lossy(&out.stderr);
        assert!(!errors.contains("non-existing PPS") && !errors.contains("no frame"), "channel {channel}: {errors}");
    }
}
