//! R2 churn: concurrent viewers doing random actions — join a channel, zap (open the next
//! channel before closing the current one, as players do), leave, abort a request mid-way,
//! play a channel as HLS for a segment, read part of a movie with a `Range` — against one
//! gateway pooling three simulated providers of 3 accounts × 2 connections: one that refuses a
//! connection over the limit, one that cuts its oldest connection instead, and one that
//! notices closed connections only after a delay (fakeprovider's `release_delay_ms`). Once
//! the viewers are gone and the linger (and HLS idle time) has passed, nothing may be held:
//! no slot in the pool, no session, no provider connection; and no provider ever had to refuse
//! or cut.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fakeprovider::{FakeConfig, FakeProvider, LimitMode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{live_url, provider_config, totals, PASS, USER};
use crate::env::{Gateway, GatewayOptions};
use crate::view::{first_uri, resolve};
use crate::{Scale, ScenarioReport};

/// `relay.linger`'s default.
const LINGER: Duration = Duration::from_secs(3);
/// The relay's HLS output leaves its session after this long without a request (not
/// configurable): an HLS client never says goodbye.
const HLS_IDLE: Duration = Duration::from_secs(20);
/// What the slow-to-notice provider takes to see a connection closed.
const RELEASE_DELAY_MS: u64 = 500;
const CHANNELS: usize = 30;
const MOVIES: usize = 10;

/// Run R2.
pub async fn run(scale: Scale) -> anyhow::Result<ScenarioReport> {
    let actions = scale.pick(200, 3000);
    let workers = 10;
    let seed: u64 = std::env::var("CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20_260_101);
    let mut r = ScenarioReport::new("R2", "churn: random join/leave/zap/abort over TS, HLS and VOD");
    r.param("actions", actions);
    r.param("viewers", workers);
    r.param("seed", seed);

    let accounts = |p: &str| [(format!("{p}-a"), 2), (format!("{p}-b"), 2), (format!("{p}-c"), 2)];
    let mut fakes: Vec<(&str, FakeProvider)> = Vec::new();
    let modes = [
        ("refuse", LimitMode::default()),
        ("cut_oldest", LimitMode::CutOldest),
        ("slow_release", LimitMode::default()),
    ];
    for (n, (label, mode)) in modes.into_iter().enumerate() {
        let acc = accounts(label);
        let acc: Vec<(&str, u32)> = acc.iter().map(|(u, m)| (u.as_str(), *m)).collect();
        // Each provider carries its own channels (Channel 1–30, 31–60, 61–90): the lineup
        // (issue 11) merges channels of the same name across providers into one, and this
        // scenario is about 90 channels each on one provider, so that every limit mode is hit
        // by its own share of the viewers.
        let config = FakeConfig {
            live_name_offset: (n * CHANNELS) as u64,
            ..provider_config(&acc, CHANNELS, MOVIES, mode, None)
        };
        fakes.push((label, FakeProvider::start(config).await?));
    }
    if !set_release_delay(&fakes[2].1, RELEASE_DELAY_MS).await {
        anyhow::bail!("the slow_release provider did not take release_delay_ms (POST /_control/limits)");
    }
    r.info("slow_release.mode", format!("closed connections count {RELEASE_DELAY_MS} ms longer"));

    let gw = Gateway::start(&GatewayOptions::default()).await?;
    for (label, fake) in &fakes {
        let acc = accounts(label);
        let creds: Vec<(String, String)> = acc.iter().map(|(u, _)| (u.clone(), format!("{u}-pw"))).collect();
        let creds: Vec<(&str, &str)> = creds.iter().map(|(u, p)| (u.as_str(), p.as_str())).collect();
        gw.add_xtream(label, &fake.url(), &creds).await?;
    }
    gw.add_user(USER, PASS, 0).await?;
    let channels = gw.wait_channels(CHANNELS * fakes.len()).await?;
    gw.login(USER, PASS).await?;
    let movies = gw.movie_ids(USER, PASS).await?;
    if movies.is_empty() {
        anyhow::bail!("no movies in the catalog");
    }

    let ctx = Arc::new(Ctx {
        base: gw.base.clone(),
        ts_urls: channels.iter().map(|id| live_url(&gw, *id)).collect(),
        channels,
        movies,
        http: reqwest::Client::builder().no_proxy().http1_only().build()?,
        left: AtomicUsize::new(actions),
        total: actions,
        hold_ms: scale.pick((30, 300), (50, 1000)),
        tally: Mutex::new(BTreeMap::new()),
        last_hls: Mutex::new(None),
    });
    let started = Instant::now();
    let tasks: Vec<_> =
        (0..workers).map(|w| tokio::spawn(worker(ctx.clone(), StdRng::seed_from_u64(seed + w as u64)))).collect();
    for t in tasks {
        t.await?;
    }
    let ended = Instant::now();
    r.info("run_s", round1((ended - started).as_secs_f64()));
    let tally = ctx.tally.lock().map(|t| t.clone()).unwrap_or_default();
    r.info("answers_by_action", serde_json::to_value(&tally)?);

    // Everything must be free once the last viewer's linger has passed (and, for HLS outputs,
    // which learn of a departure only by silence, their idle time too).
    let mut settle_at = ended + LINGER + Duration::from_secs(1);
    if let Some(h) = *ctx.last_hls.lock().map_err(|_| anyhow::anyhow!("poisoned"))? {
        settle_at = settle_at.max(h + HLS_IDLE + LINGER + Duration::from_secs(1));
    }
    let provider_open = || fakes.iter().map(|(_, f)| u64::from(totals(f).open)).sum::<u64>();
    let mut idle_after: Option<Duration> = None;
    while Instant::now() < settle_at {
        if idle_after.is_none() && is_idle(&gw, provider_open()).await {
            idle_after = Some(ended.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    r.info("settle_s", round1((settle_at - ended).as_secs_f64()));
    let slots = gw.slots_held().await?;
    let sessions = gw.sessions().await?;
    let open = provider_open();
    r.at_most("after_settle.slots_held", slots as f64, 0.0);
    r.at_most("after_settle.sessions", sessions as f64, 0.0);
    r.at_most("after_settle.provider_connections", open as f64, 0.0);
    if idle_after.is_none() {
        idle_after = gw.time_to_idle(Duration::from_secs(30), provider_open).await.map(|d| d + (settle_at - ended));
    }
    r.info(
        "everything_free_after_s",
        idle_after.map_or_else(|| "not within settle + 30 s".to_string(), |d| format!("{:.1}", d.as_secs_f64())),
    );

    let mut peak = 0;
    for (label, fake) in &fakes {
        let t = totals(fake);
        peak = peak.max(t.peak_per_account);
        r.info(&format!("{label}.provider_connections_opened"), t.opened);
        match *label {
            "cut_oldest" => r.at_most("cut_oldest.streams_cut", t.cut as f64, 0.0),
            _ => r.at_most(&format!("{label}.provider_refusals"), t.refused as f64, 0.0),
        }
    }
    r.at_most("provider_peak_per_account", f64::from(peak), 2.0);
    drop(gw);
    for (_, f) in fakes {
        f.shutdown().await;
    }
    Ok(r)
}

/// Ask the provider to count closed connections for `ms` longer (`POST /_control/limits`, the
/// "slow to notice" mode, set at run time); false if the provider did not take it.
async fn set_release_delay(fake: &FakeProvider, ms: u64) -> bool {
    let body = serde_json::json!({ "release_delay_ms": ms });
    match reqwest::Client::new().post(format!("{}/_control/limits", fake.url())).json(&body).send().await {
        Ok(resp) => resp.status().is_success(),
        Err(_) => false,
    }
}

async fn is_idle(gw: &Gateway, provider_open: u64) -> bool {
    provider_open == 0 && matches!(gw.slots_held().await, Ok(0)) && matches!(gw.sessions().await, Ok(0))
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// What the workers share.
struct Ctx {
    base: String,
    channels: Vec<i64>,
    ts_urls: Vec<String>,
    movies: Vec<i64>,
    http: reqwest::Client,
    /// Actions still to do, over all workers.
    left: AtomicUsize,
    /// All actions of the run.
    total: usize,
    /// Pause between two actions of a viewer, ms (random in this range).
    hold_ms: (u64, u64),
    /// `action status` → count.
    tally: Mutex<BTreeMap<String, u64>>,
    /// When an HLS output was last polled.
    last_hls: Mutex<Option<Instant>>,
}

impl Ctx {
    fn count(&self, action: &str, outcome: &str) {
        if let Ok(mut t) = self.tally.lock() {
            *t.entry(format!("{action} {outcome}")).or_insert(0) += 1;
        }
    }
}

/// A stream being read in the background; dropping it closes the connection.
struct Playing(JoinHandle<()>);

impl Drop for Playing {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One viewer: random actions until the shared budget is spent.
async fn worker(ctx: Arc<Ctx>, mut rng: StdRng) {
    let mut current: Option<Playing> = None;
    while ctx.left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
        let roll = rng.random_range(0..100);
        let url = ctx.ts_urls[rng.random_range(0..ctx.ts_urls.len())].clone();
        match roll {
            0..30 => {
                // Join: the current channel closes first.
                drop(current.take());
                current = open_ts(&ctx, "join", &url).await;
            }
            30..55 => {
                // Zap: the new channel opens while the old one still plays.
                let next = open_ts(&ctx, "zap", &url).await;
                current = next;
            }
            55..70 => {
                current = None;
                ctx.count("leave", "done");
            }
            70..80 => {
                let req = ctx.http.get(&url).send();
                let wait = Duration::from_millis(rng.random_range(0..150));
                let outcome = match tokio::time::timeout(wait, req).await {
                    Ok(Ok(resp)) => format!("{} (then aborted)", resp.status().as_u16()),
                    Ok(Err(_)) => "error".into(),
                    Err(_) => "aborted before headers".into(),
                };
                ctx.count("abort", &outcome);
            }
            // HLS plays happen in the first half of the run, so that the 20 s their outputs
            // stay after the last poll overlap the rest of it instead of adding to the wait.
            80..90 if ctx.left.load(Ordering::SeqCst) * 2 >= ctx.total => {
                let id = ctx.channels[rng.random_range(0..ctx.channels.len())];
                hls(&ctx, id).await;
            }
            _ => {
                let id = ctx.movies[rng.random_range(0..ctx.movies.len())];
                let from = rng.random_range(0..200_000u64);
                vod(&ctx, id, from, rng.random_range(16_384..262_144)).await;
            }
        }
        let hold = rng.random_range(ctx.hold_ms.0..ctx.hold_ms.1);
        tokio::time::sleep(Duration::from_millis(hold)).await;
    }
    drop(current);
}

/// Open a TS stream; on 200 keep reading it in the background.
async fn open_ts(ctx: &Ctx, action: &str, url: &str) -> Option<Playing> {
    let resp = match tokio::time::timeout(Duration::from_secs(15), ctx.http.get(url).send()).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(_)) => {
            ctx.count(action, "error");
            return None;
        }
        Err(_) => {
            ctx.count(action, "no headers in 15 s");
            return None;
        }
    };
    let status = resp.status().as_u16();
    ctx.count(action, &status.to_string());
    (status == 200).then(|| {
        Playing(tokio::spawn(async move {
            let mut resp = resp;
            while let Ok(Some(_)) = resp.chunk().await {}
        }))
    })
}

/// Play a channel as HLS: the playlist, then its first segment; then go silent.
async fn hls(ctx: &Ctx, id: i64) {
    let url = format!("{}/live/{USER}/{PASS}/{id}.m3u8", ctx.base);
    let fetch = async {
        let resp = ctx.http.get(&url).send().await.ok()?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Some(status.to_string());
        }
        let text = resp.text().await.ok()?;
        let seg_url = resolve(&ctx.base, &url, first_uri(&text)?);
        let seg = ctx.http.get(&seg_url).send().await.ok()?;
        let seg_status = seg.status().as_u16();
        let _ = seg.bytes().await;
        Some(format!("200, segment {seg_status}"))
    };
    let outcome = tokio::time::timeout(Duration::from_secs(20), fetch).await;
    if let Ok(mut h) = ctx.last_hls.lock() {
        *h = Some(Instant::now());
    }
    ctx.count("hls", &outcome.ok().flatten().unwrap_or_else(|| "failed".into()));
}

/// Read `len` bytes of a movie from byte `from`, then hang up.
async fn vod(ctx: &Ctx, id: i64, from: u64, len: u64) {
    let url = format!("{}/movie/{USER}/{PASS}/{id}.mp4", ctx.base);
    let req = ctx.http.get(&url).header("Range", format!("bytes={from}-")).send();
    let outcome = match tokio::time::timeout(Duration::from_secs(15), req).await {
        Ok(Ok(mut resp)) => {
            let status = resp.status().as_u16();
            let mut got = 0u64;
            while got < len {
                match tokio::time::timeout(Duration::from_secs(10), resp.chunk()).await {
                    Ok(Ok(Some(c))) => got += c.len() as u64,
                    _ => break,
                }
            }
            status.to_string()
        }
        Ok(Err(_)) => "error".into(),
        Err(_) => "no headers in 15 s".into(),
    };
    ctx.count("vod", &outcome);
}
