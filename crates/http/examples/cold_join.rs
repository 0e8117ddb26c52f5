//! Cold join: what starting a viewer at PAT, PMT and a keyframe costs the first viewer of a channel.
//!
//! The simulated provider (at the sample's own rate, 1.8 Mbit/s, a keyframe a second) and the gateway run in this process, over loopback
//! sockets. For each of N channels nobody watches, two requests start at the same instant: one straight to the
//! provider (the upstream's own time to first byte, and to its first keyframe, found with the relay's own
//! detector) and one through the gateway (its time to first byte: since issue 10 that byte is the PAT, followed by
//! the PMT and a keyframe). Both start at the same live point of the provider, so the difference is what the
//! gateway adds to the wait the upstream itself imposes. Channels are measured one after the other.
//!
//! Run with `bench/cold_join.sh [CHANNELS]` (release build); results in BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fakeprovider::{AccountSpec, FakeConfig, FakeProvider};
use tunerpool_catalog::{ChannelQuery, NewProvider, ProviderKind, Secret, Store};
use tunerpool_http::{AccessSettings, AdminToken, AppState, ClientAuth, PoolSettings};
use tunerpool_ledger::{AnyLedger, MemoryLedger};
use tunerpool_relay::relay::Relay;
use tunerpool_relay::settings::RelaySettings;
use tunerpool_relay::ts::KeyframeDetector;
use tunerpool_upstream::{HttpSettings, UpstreamHttp};

type Error = Box<dyn std::error::Error + Send + Sync>;

const TOKEN: &str = "cold-join-benchmark-token";
const PACKET: usize = 188;

/// What one request saw: time to its first byte, and to the first byte of its first keyframe packet.
struct Seen {
    first_byte: Duration,
    first_keyframe: Duration,
    /// Index of the packet the keyframe is (0 = the first packet received).
    keyframe_packet: usize,
    starts_with_pat: bool,
}

async fn measure(client: &reqwest::Client, url: String, token: Option<&str>) -> Result<Seen, Error> {
    let start = Instant::now();
    let mut req = client.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let mut resp = req.send().await?.error_for_status()?;
    let mut data = Vec::new();
    let mut first_byte = None;
    let mut detector = KeyframeDetector::new();
    let mut scanned = 0;
    loop {
        let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), resp.chunk()).await?? else {
            return Err("the stream ended before a keyframe".into());
        };
        first_byte.get_or_insert_with(|| start.elapsed());
        data.extend_from_slice(&chunk);
        let whole = data.len() / PACKET * PACKET;
        if let Some(k) = detector.scan(&data[scanned..whole]) {
            let keyframe_packet = scanned / PACKET + k;
            let pid = (u16::from(data[1] & 0x1f) << 8) | u16::from(data[2]);
            return Ok(Seen {
                first_byte: first_byte.unwrap_or_default(),
                first_keyframe: start.elapsed(),
                keyframe_packet,
                starts_with_pat: pid == 0,
            });
        }
        scanned = whole;
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// p50, p90, max of `v` (sorted here), in ms.
fn dist(mut v: Vec<f64>) -> String {
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!("{:7.1} {:7.1} {:7.1}", at(0.5), at(0.9), v[v.len() - 1])
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let channels: usize = std::env::args().nth(1).map(|n| n.parse()).transpose()?.unwrap_or(30);
    let fake = FakeProvider::start(FakeConfig {
        live_channels: channels,
        ..FakeConfig::with_accounts(vec![AccountSpec::new("bench", "bench", 100)])
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path()).await?;
    let http = UpstreamHttp::new(HttpSettings { spool_dir: dir.path().join("tmp"), ..Default::default() })?;
    let provider = NewProvider {
        name: "bench".into(),
        kind: Some(ProviderKind::Xtream),
        url: fake.url(),
        username: Some("bench".into()),
        password: Some(Secret::new("bench")),
        enabled: true,
        ..Default::default()
    };
    let pid = store.add_provider(&provider).await?.id;
    tunerpool_catalog::sync::sync_provider(&store, &http, pid).await?;
    // The account's limit (100) as the panel reports it.
    let provider = store.provider(pid).await?;
    for account in store.accounts(pid).await? {
        tunerpool_catalog::details::refresh_account(&store, &http, &provider, &account).await?;
    }
    let ledger = Arc::new(AnyLedger::Memory(MemoryLedger::new(Duration::from_secs(15))));
    let settings = RelaySettings { linger: Duration::from_millis(200), ..RelaySettings::default() };
    let state = AppState {
        store: store.clone(),
        http: http.clone(),
        relay: Relay::new(
            tunerpool_http::StoreCatalog::shared(store.clone()),
            ledger.clone(),
            http.client().clone(),
            settings,
        ),
        ledger,
        pool: PoolSettings { expiry_warning_days: 7 },
        started: Instant::now(),
        public_url: None,
        admin_token: AdminToken::new(TOKEN),
        access: AccessSettings::default(),
        logins: Arc::new(ClientAuth::default()),
        hdhr: tunerpool_http::HdhrSettings::default(),
        clip: tunerpool_http::ClipSettings::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = tunerpool_http::serve(listener, state, std::future::pending()).await;
    });

    let query = ChannelQuery { per_page: Some(channels as u32), ..ChannelQuery::default() };
    let list = store.channels(&query).await?.items;
    let client = reqwest::Client::builder().no_proxy().build()?;
    let (mut up_first, mut up_key, mut gw_first, mut added) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut not_at_keyframe = 0;
    for (i, channel) in list.iter().enumerate() {
        let stream = channel.sources[0].upstream_id.ok_or("a channel without an upstream id")?;
        let direct = format!("{}/live/bench/bench/{stream}.ts", fake.url());
        let via = format!("{base}/stream/{}.ts", channel.id);
        let (up, gw) = tokio::join!(measure(&client, direct, None), measure(&client, via, Some(TOKEN)));
        let (up, gw) = (up?, gw?);
        // The gateway's first bytes must be PAT, PMT, keyframe (packet 2).
        if !gw.starts_with_pat || gw.keyframe_packet != 2 {
            not_at_keyframe += 1;
        }
        up_first.push(ms(up.first_byte));
        up_key.push(ms(up.first_keyframe));
        gw_first.push(ms(gw.first_byte));
        added.push(ms(gw.first_byte) - ms(up.first_keyframe));
        // Let the session linger out, so that the machine is quiet for the next channel; the pause varies, so
        // that the channels start at every phase of the GOP.
        tokio::time::sleep(Duration::from_millis(400 + (i as u64 * 373) % 1000)).await;
    }
    println!("cold joins: {} channels at the sample's own rate (1.8 Mbit/s, one keyframe a second)", list.len());
    println!("                                              p50     p90     max (ms)");
    println!("upstream: time to first byte              {}", dist(up_first));
    println!("upstream: time to first keyframe          {}", dist(up_key));
    println!("gateway:  time to first byte (PAT+PMT+key) {}", dist(gw_first));
    println!("gateway first byte - upstream keyframe    {}", dist(added));
    println!("gateway streams not starting PAT, PMT, keyframe: {not_at_keyframe}");
    fake.shutdown().await;
    Ok(())
}
