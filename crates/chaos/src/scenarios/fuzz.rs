//! R6 fuzz: mutated real playlists, guides, HLS playlists and Xtream JSON (from
//! `testdata/real/`), fed two ways:
//!
//! * to the parsers directly (`tunerpool-formats`), thousands of cases: no panic;
//! * served by a local "mutating panel" to a real gateway process — M3U syncs, guide fetches,
//!   Xtream syncs and live HLS sessions — then a junk playlist of many megabytes: the process
//!   stays up and healthy after every case, and its peak memory (from `/proc`) stays bounded.

use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tunerpool_formats::{hls, m3u, xmltv, xtream};

use super::{PASS, USER};
use crate::env::{Gateway, GatewayOptions};
use crate::mutate::{testdata, Corpus};
use crate::report::mb;
use crate::{Scale, ScenarioReport};

/// Peak resident memory the gateway may reach, bytes.
const MEMORY_BOUND: u64 = 200_000_000;
/// Seeds for the direct cases are cut to this (the parsers' cost grows with the input, the
/// interesting edits do not).
const DIRECT_SEED_LEN: usize = 64 << 10;

/// Run R6.
pub async fn run(scale: Scale) -> anyhow::Result<ScenarioReport> {
    let direct_cases = scale.pick(2_000, 20_000);
    let rounds = scale.pick(12, 100);
    let junk_mb = scale.pick(40, 200);
    let seed: u64 = std::env::var("CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20_260_101);
    let mut r = ScenarioReport::new("R6", "fuzz: mutated playlists, guides, HLS and Xtream JSON");
    r.param("direct_cases", direct_cases);
    r.param("served_rounds", rounds);
    r.param("junk_playlist_mb", junk_mb);
    r.param("seed", seed);

    let corpora = Arc::new(Corpora {
        m3u: Corpus::load("m3u", usize::MAX)?,
        xmltv: Corpus::load("xmltv", usize::MAX)?,
        hls: Corpus::load("hls", usize::MAX)?,
        xtream: Corpus::load("xtream", usize::MAX)?,
    });

    // 1. The parsers, directly (on a blocking thread: this is CPU work).
    let c = corpora.clone();
    let (cases, panics) = tokio::task::spawn_blocking(move || direct(&c, direct_cases, seed)).await?;
    r.info("parsers.cases", cases);
    r.check("parsers.panics", panics.len(), "0", panics.is_empty());
    if !panics.is_empty() {
        r.info("parsers.panicking_cases", panics.into_iter().take(5).collect::<Vec<_>>());
    }

    // 2. Served to a real gateway.
    let panel = Panel::start(corpora, seed, junk_mb).await?;
    let mut gw = Gateway::start(&GatewayOptions::default()).await?;
    let m3u_id = gw.add_m3u("fuzz-m3u", &panel.url("/m3u"), Some(&panel.url("/guide.xml"))).await?;
    let xtream_id = gw.add_xtream("fuzz-xtream", &panel.url("/xtream"), &[("fz", "fz-pw")]).await?;
    let stable_id = gw.add_m3u("hls", &panel.url("/stable.m3u"), None).await?;
    gw.add_user(USER, PASS, 0).await?;
    // The syncs that adding them started must be over before ours begin.
    for id in [m3u_id, xtream_id, stable_id] {
        gw.wait_synced(id).await?;
    }
    let hls_channels: Vec<i64> = gw.api_ok("/api/v1/channels?per_page=1000&q=HLS%20fuzz").await?["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["id"].as_i64()).collect())
        .unwrap_or_default();
    if hls_channels.is_empty() {
        anyhow::bail!("the HLS channels were not synced; log: {}", gw.log_tail(2000));
    }
    gw.login(USER, PASS).await?;

    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60)).build()?;
    let mut served = 0u64;
    let mut answers = std::collections::BTreeMap::<String, u64>::new();
    let mut down_after: Option<String> = None;
    'rounds: for round in 0..rounds {
        let steps = [
            ("m3u_sync", format!("/api/v1/providers/{m3u_id}/sync")),
            ("guide_fetch", format!("/api/v1/providers/{m3u_id}/epg")),
            ("xtream_sync", format!("/api/v1/providers/{xtream_id}/sync")),
        ];
        for (what, path) in &steps {
            let status = gw.api("POST", path, None).await.map_or(0, |(s, _)| s);
            *answers.entry(format!("{what} {status}")).or_insert(0) += 1;
            served += 1;
            if !gw.healthy().await {
                down_after = Some(format!("{what} of round {round}"));
                break 'rounds;
            }
        }
        // A live HLS session over a mutated playlist, watched briefly.
        let id = hls_channels[round % hls_channels.len()];
        let url = gw.url(&format!("/live/{USER}/{PASS}/{id}.ts"));
        let status = match tokio::time::timeout(Duration::from_secs(12), http.get(&url).send()).await {
            Ok(Ok(mut resp)) => {
                let s = resp.status().as_u16();
                let _ = tokio::time::timeout(Duration::from_millis(1500), async {
                    while let Ok(Some(_)) = resp.chunk().await {}
                })
                .await;
                s.to_string()
            }
            Ok(Err(_)) => "error".into(),
            Err(_) => "no headers in 12 s".into(),
        };
        *answers.entry(format!("hls_play {status}")).or_insert(0) += 1;
        served += 1;
        if !gw.healthy().await {
            down_after = Some(format!("hls_play of round {round}"));
            break;
        }
    }
    r.info("served.cases", served);
    for (name, id) in [("m3u", m3u_id), ("xtream", xtream_id)] {
        let sync = &gw.api_ok(&format!("/api/v1/providers/{id}")).await?["sync"];
        r.info(&format!("served.last_{name}_sync"), short(&sync.to_string(), 300));
    }
    r.info("served.answers", serde_json::to_value(&answers)?);
    r.check("served.server_down", down_after.clone().unwrap_or_else(|| "never".into()), "never", down_after.is_none());
    let peak = gw.peak_rss().unwrap_or(0);
    r.at_most("served.server_peak_rss_mb", mb(peak), mb(MEMORY_BOUND));

    // 3. A playlist of nothing but junk lines.
    if down_after.is_none() {
        let junk_id = gw.add_m3u("junk", &panel.url("/junk.m3u"), None).await?;
        let sync = gw.wait_synced(junk_id).await?;
        r.info("junk_playlist.sync", short(&sync.to_string(), 300));
        let healthy = gw.healthy().await;
        r.check("junk_playlist.server_up", healthy, "true", healthy);
        let peak = gw.peak_rss().unwrap_or(u64::MAX);
        r.at_most("junk_playlist.server_peak_rss_mb", mb(peak), mb(MEMORY_BOUND));
    }
    drop(gw);
    Ok(r)
}

fn short(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// The seed documents of each kind.
struct Corpora {
    m3u: Corpus,
    xmltv: Corpus,
    hls: Corpus,
    xtream: Corpus,
}

/// `cases` mutated documents through the matching parser; returns the count and a
/// description of every case that panicked.
fn direct(c: &Corpora, cases: usize, seed: u64) -> (usize, Vec<String>) {
    let cut = |corpus: &Corpus| Corpus {
        files: corpus.files.iter().map(|(n, b)| (n.clone(), b[..b.len().min(DIRECT_SEED_LEN)].to_vec())).collect(),
    };
    let (m3u_c, xmltv_c, hls_c, xtream_c) = (cut(&c.m3u), cut(&c.xmltv), cut(&c.hls), cut(&c.xtream));
    let mut rng = StdRng::seed_from_u64(seed);
    let mut panics = Vec::new();
    // Keep the default hook's message per panic short: one line on stderr each.
    for i in 0..cases {
        let kind = i % 4;
        let corpus = [&m3u_c, &xmltv_c, &hls_c, &xtream_c][kind];
        let (name, data) = corpus.mutant(&mut rng);
        let name = name.to_string();
        let outcome = catch_unwind(AssertUnwindSafe(|| match kind {
            0 => {
                let _ = m3u::parse(&data);
            }
            1 => {
                let _ = xmltv::read_guide(std::io::Cursor::new(&data), |_| {});
            }
            2 => {
                let _ = hls::parse(&String::from_utf8_lossy(&data));
            }
            _ => {
                let _ = xtream::parse_auth(&data);
                let _ = xtream::parse_list::<xtream::LiveStream>(&data);
                let _ = xtream::parse_list::<xtream::VodStream>(&data);
                let _ = xtream::parse_list::<xtream::Series>(&data);
                let _ = xtream::parse_list::<xtream::Category>(&data);
            }
        }));
        if outcome.is_err() {
            panics.push(format!("case {i}: mutation of {name} (seed {seed})"));
        }
    }
    (cases, panics)
}

/// A local HTTP server that answers like a broken panel: every request gets a fresh mutation
/// of a real document of the kind asked for.
struct Panel {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

struct PanelState {
    corpora: Arc<Corpora>,
    rng: Mutex<StdRng>,
    junk_mb: usize,
    base: String,
}

impl Drop for Panel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Panel {
    async fn start(corpora: Arc<Corpora>, seed: u64, junk_mb: usize) -> anyhow::Result<Panel> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(PanelState {
            corpora,
            rng: Mutex::new(StdRng::seed_from_u64(seed ^ 0x5eed)),
            junk_mb,
            base: format!("http://{addr}"),
        });
        let app = Router::new()
            .route("/m3u", get(m3u_list))
            .route("/guide.xml", get(guide))
            .route("/xtream/player_api.php", get(player_api))
            .route("/stable.m3u", get(stable))
            .route("/hls/{n}/{file}", get(hls_file))
            .route("/junk.m3u", get(junk))
            .with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Panel { addr, task })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

type St = State<Arc<PanelState>>;

fn mutant(s: &PanelState, pick: impl FnOnce(&Corpora) -> &Corpus) -> Vec<u8> {
    let mut rng = s.rng.lock().unwrap_or_else(|e| e.into_inner());
    pick(&s.corpora).mutant(&mut rng).1
}

async fn m3u_list(State(s): St) -> Vec<u8> {
    mutant(&s, |c| &c.m3u)
}

async fn guide(State(s): St) -> Vec<u8> {
    mutant(&s, |c| &c.xmltv)
}

/// `player_api.php`: the real file for the action asked, mutated one time in four.
async fn player_api(State(s): St, Query(q): Query<std::collections::HashMap<String, String>>) -> Response {
    let action = q.get("action").map(String::as_str).unwrap_or("");
    let file = match action {
        "" => "tellytv_tnt_auth.json",
        "get_live_categories" | "get_vod_categories" => "tellytv_hellraiser_get_live_categories.json",
        "get_series_categories" => "tellytv_tnt_get_series_categories.json",
        "get_live_streams" => "tellytv_eternal_get_live_streams.json",
        "get_vod_streams" => "tellytv_iris_get_vod_streams.json",
        "get_series" => "tellytv_hellraiser_get_series.json",
        _ => return (StatusCode::OK, "[]").into_response(),
    };
    let Some((_, real)) = s.corpora.xtream.files.iter().find(|(n, _)| n == file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut rng = s.rng.lock().unwrap_or_else(|e| e.into_inner());
    // One answer in four is broken, so that some syncs get through to the store and others
    // fail at every step.
    let body = if rng.random_bool(0.75) { real.clone() } else { crate::mutate::mutate(real, &mut rng) };
    ([("content-type", "application/json")], body).into_response()
}

/// A fixed playlist of three live HLS channels on this panel.
async fn stable(State(s): St) -> String {
    let mut out = String::from("#EXTM3U\n");
    for n in 1..=3 {
        out +=
            &format!("#EXTINF:-1 tvg-id=\"hls{n}\" group-title=\"HLS\",HLS fuzz {n}\n{}/hls/{n}/index.m3u8\n", s.base);
    }
    out
}

/// A live HLS playlist (a mutation of the sample's, whose segments are relative URIs), and the
/// sample's real segments. The real-world HLS playlists name hosts elsewhere: they go to the
/// parser only.
async fn hls_file(State(s): St, Path((_n, file)): Path<(u32, String)>) -> Response {
    let media = testdata().join("media/hls");
    if file == "index.m3u8" {
        let real = tokio::fs::read(media.join("index.m3u8")).await.unwrap_or_default();
        let mut body = crate::mutate::mutate(&real, &mut s.rng.lock().unwrap_or_else(|e| e.into_inner()));
        // The gateway follows the URIs it finds: never let a mutation point it off this machine.
        // (No scheme, no `//host`, and no backslash, which URL parsers read as a slash.)
        for b in body.iter_mut().filter(|b| **b == b'\\') {
            *b = b'_';
        }
        while let Some(i) = body.windows(4).position(|w| w.eq_ignore_ascii_case(b"http")) {
            body[i + 1] = b'x';
        }
        while let Some(i) = body.windows(2).position(|w| w == b"//") {
            body[i + 1] = b'_';
        }
        return ([("content-type", "application/vnd.apple.mpegurl")], body).into_response();
    }
    if !file.starts_with("seg") || file.contains('/') || file.contains("..") {
        return StatusCode::NOT_FOUND.into_response();
    }
    match tokio::fs::read(media.join(&file)).await {
        Ok(b) => ([("content-type", "video/mp2t")], b).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `#EXTM3U` and then `junk_mb` megabytes of lines that are not playlist lines, streamed.
async fn junk(State(s): St) -> Response {
    let line = b"this is not a playlist line, it is junk #### 0123456789 ....\n";
    let block = Bytes::from(line.repeat((1 << 20) / line.len()));
    let n = s.junk_mb;
    let chunks = std::iter::once(Bytes::from_static(b"#EXTM3U\n"))
        .chain(std::iter::repeat_n(block, n))
        .map(Ok::<_, std::io::Error>);
    axum::body::Body::from_stream(futures_util::stream::iter(chunks)).into_response()
}
