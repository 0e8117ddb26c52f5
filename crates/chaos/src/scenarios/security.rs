//! S1 security, from outside the process, as an attacker would see it:
//!
//! * every route without credentials (or with made-up ones): a refusal (401/403/404, or 429
//!   once the address is blocked; Xtream's `player_api.php` may answer `auth: 0`), never
//!   content. The admin API's routes come from its own OpenAPI document; the HDHomeRun tuner
//!   at the root is off by default (404), and when configured serves only as its user;
//! * 100 (and 300) concurrent wrong passwords for an existing user on `player_api.php`: the
//!   server's memory stays under 200 MB and some answers are 429;
//! * a secrets grep: a gateway at `log_level=debug` with an M3U provider whose URL carries
//!   `user:pass@` and `password=`, a user logging in and streaming (TS, HLS, a movie), a sync
//!   that fails; then every API response, every client output and the whole log are searched
//!   for every secret; and the data dir and database files must be private to their owner.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use fakeprovider::{AccountSpec, FakeConfig, FakeProvider, LimitMode};
use serde_json::Value;
use tokio::time::Instant;

use super::{gateway, provider, PASS, USER};
use crate::env::{Gateway, GatewayOptions, ADMIN_TOKEN};
use crate::report::mb;
use crate::view::{first_uri, resolve};
use crate::{Scale, ScenarioReport};

/// Memory the gateway may reach under a bad-login storm, bytes.
const MEMORY_BOUND: u64 = 200_000_000;
/// The M3U provider URL's userinfo password.
const USERINFO_PASS: &str = "Ui-pass-7d2e9a";
/// The provider account's password (in `password=` of the playlist URL, and in its stream URLs).
const ACCOUNT_PASS: &str = "Acct-pass-c41f08";

/// Run S1.
pub async fn run(scale: Scale) -> anyhow::Result<ScenarioReport> {
    let storms: Vec<usize> = scale.pick(vec![100], vec![100, 300]);
    let mut r = report();
    r.param("bad_login_storms", format!("{storms:?}"));
    routes(&mut r).await?;
    for n in storms {
        bad_logins(&mut r, n).await?;
    }
    secrets(&mut r).await?;
    Ok(r)
}

/// An empty S1 report (for running its parts one by one).
pub fn report() -> ScenarioReport {
    ScenarioReport::new("S1", "security: open routes, bad-login storms, secrets in output")
}

/// What a request without valid credentials got.
fn is_refusal(path: &str, status: u16, body: &str) -> bool {
    if matches!(status, 401 | 403 | 404 | 429) {
        return true;
    }
    // Xtream clients expect a 200 with `auth: 0` for wrong credentials, and nothing else.
    path.starts_with("/player_api.php")
        && status == 200
        && serde_json::from_str::<Value>(body)
            .is_ok_and(|v| v["user_info"]["auth"].as_i64() == Some(0) && v.as_object().is_some_and(|o| o.len() == 1))
}

/// Every route without credentials (figures `routes.*`).
pub async fn routes(r: &mut ScenarioReport) -> anyhow::Result<()> {
    let fake = provider(&[("sec-a", 2)], 5, 3, LimitMode::default(), None).await?;
    let (gw, ids) = gateway(&GatewayOptions::default(), &fake.url(), &["sec-a"], 5).await?;
    let movie = gw.movie_ids(USER, PASS).await?.first().copied().unwrap_or(1);
    let ch = ids[0];
    let doc = gw.api_ok("/api/v1/openapi.json").await?;
    let http = reqwest::Client::builder().no_proxy().build()?;

    let mut requests: Vec<(String, String)> = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, ops) in paths {
            for method in ops.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default() {
                requests.push((method.to_ascii_uppercase(), path.replace("{id}", "1")));
            }
        }
    }
    requests.push(("GET".into(), "/api/v1/no-such-route".into()));
    let (u, p) = ("nobody", "nothing");
    for path in [
        format!("/stream/{ch}.ts"),
        format!("/stream/{ch}.m3u8"),
        format!("/stream/{ch}/hls/0.ts"),
        format!("/movie/{movie}.mp4"),
        "/series/1.mp4".into(),
        "/epg.xml".into(),
        "/epg.xml.gz".into(),
        "/get.php".into(),
        format!("/get.php?username={u}&password={p}"),
        "/playlist.m3u".into(),
        "/player_api.php".into(),
        format!("/player_api.php?username={u}&password={p}&action=get_live_streams"),
        "/xmltv.php".into(),
        format!("/xmltv.php?username={u}&password={p}"),
        format!("/live/{u}/{p}/{ch}.ts"),
        format!("/live/{u}/{p}/{ch}.m3u8"),
        format!("/hls/{u}/{p}/{ch}/0.ts"),
        format!("/movie/{u}/{p}/{movie}.mp4"),
        format!("/series/{u}/{p}/1.mp4"),
        format!("/timeshift/{u}/{p}/60/2026-01-01:00-00/{ch}.ts"),
        format!("/{u}/{p}/{ch}"),
        format!("/hdhr/{u}/{p}/discover.json"),
        format!("/hdhr/{u}/{p}/lineup.json"),
        format!("/hdhr/{u}/{p}/lineup_status.json"),
        format!("/hdhr/{u}/{p}/device.xml"),
        format!("/hdhr/{u}/{p}/auto/v{ch}"),
        // The HDHomeRun tuner at the root: 404 unless hdhomerun.root_user names a user.
        "/discover.json".into(),
        "/lineup.json".into(),
        "/lineup_status.json".into(),
        "/lineup.post".into(),
        "/device.xml".into(),
        format!("/auto/v{ch}"),
    ] {
        requests.push(("GET".into(), path));
    }

    let mut open = Vec::new();
    for (method, path) in &requests {
        let req = http.request(method.parse()?, gw.url(path));
        let (status, body) = match tokio::time::timeout(Duration::from_secs(15), req.send()).await {
            Ok(Ok(mut resp)) => {
                let status = resp.status().as_u16();
                // A stream never ends: its first bytes are enough.
                let first = tokio::time::timeout(Duration::from_secs(2), resp.chunk()).await;
                let body = match first {
                    Ok(Ok(Some(b))) => String::from_utf8_lossy(&b).into_owned(),
                    _ => String::new(),
                };
                (status, body)
            }
            _ => (0, String::new()),
        };
        if !is_refusal(path, status, &body) {
            open.push(format!("{method} {path} → {status}"));
        }
    }
    r.info("routes.checked", requests.len());
    r.info("routes.open_by_design", "/healthz, /metrics, / and /ui/* (the UI's files; it asks for the token)");
    r.check("routes.answered_without_credentials", open.len(), "0", open.is_empty());
    if !open.is_empty() {
        r.info("routes.answering", open);
    }
    drop(gw);
    fake.shutdown().await;
    Ok(())
}

/// `n` concurrent wrong passwords for an existing user (figures `bad_logins_{n}.*`).
pub async fn bad_logins(r: &mut ScenarioReport, n: usize) -> anyhow::Result<()> {
    let fake = provider(&[("sec-a", 2)], 5, 0, LimitMode::default(), None).await?;
    let (gw, _) = gateway(&GatewayOptions::default(), &fake.url(), &["sec-a"], 5).await?;
    let before = gw.rss().unwrap_or(0);
    let http = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(n).build()?;
    let start = Instant::now() + Duration::from_millis(100);
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (http, url) = (http.clone(), gw.url(&format!("/player_api.php?username={USER}&password=wrong-{i}")));
            tokio::spawn(async move {
                tokio::time::sleep_until(start).await;
                match tokio::time::timeout(Duration::from_secs(120), http.get(&url).send()).await {
                    Ok(Ok(resp)) => resp.status().as_u16(),
                    _ => 0,
                }
            })
        })
        .collect();
    // Sample the server's memory while the storm lasts.
    let pid = gw.pid();
    let sampler = tokio::spawn(async move {
        let mut peak = 0;
        loop {
            peak = peak.max(loadgen::sys::rss_bytes_of(pid).unwrap_or(0));
            tokio::time::sleep(Duration::from_millis(20)).await;
            if start.elapsed() > Duration::from_secs(180) {
                return peak;
            }
        }
    });
    let mut tally = std::collections::BTreeMap::<String, u64>::new();
    for t in tasks {
        *tally.entry(t.await?.to_string()).or_insert(0) += 1;
    }
    let took = start.elapsed().as_secs_f64();
    sampler.abort();
    let peak = gw.peak_rss().unwrap_or(u64::MAX);
    let label = format!("bad_logins_{n}");
    r.info(&format!("{label}.answers"), serde_json::to_value(&tally)?);
    r.info(&format!("{label}.seconds"), (took * 10.0).round() / 10.0);
    r.info(&format!("{label}.server_rss_before_mb"), mb(before));
    r.at_most(&format!("{label}.server_peak_rss_mb"), mb(peak), mb(MEMORY_BOUND));
    r.at_least(&format!("{label}.answers_429"), *tally.get("429").unwrap_or(&0) as f64, 1.0);
    drop(gw);
    fake.shutdown().await;
    Ok(())
}

/// Where a secret turned up.
#[derive(Default)]
struct Findings {
    api: Vec<String>,
    client: Vec<String>,
    log: Vec<String>,
    checked: usize,
}

impl Findings {
    /// Search one response: provider secrets and the admin token anywhere; the user's own
    /// password only outside client outputs (a user's playlist carries its own credentials).
    fn search(&mut self, what: &str, text: &str, client_output: bool) {
        self.checked += 1;
        for (name, secret) in secrets_list() {
            if client_output && secret == PASS {
                continue;
            }
            if text.contains(secret) {
                let hit = format!("{name} in {what}");
                if client_output {
                    self.client.push(hit);
                } else {
                    self.api.push(hit);
                }
            }
        }
    }
}

fn secrets_list() -> [(&'static str, &'static str); 4] {
    [
        ("userinfo password", USERINFO_PASS),
        ("account password", ACCOUNT_PASS),
        ("user password", PASS),
        ("admin token", ADMIN_TOKEN),
    ]
}

/// The secrets grep and the data files' modes (figures `secrets.*`, `files.*`).
pub async fn secrets(r: &mut ScenarioReport) -> anyhow::Result<()> {
    let fake = FakeProvider::start(FakeConfig {
        live_channels: 5,
        vod_count: 3,
        series_count: 1,
        ..FakeConfig::with_accounts(vec![AccountSpec::new("sec-acct", ACCOUNT_PASS, 3)])
    })
    .await?;
    let port = fake.addr().port();
    let playlist = format!(
        "http://sec-user:{USERINFO_PASS}@127.0.0.1:{port}/get.php?username=sec-acct&password={ACCOUNT_PASS}&type=m3u_plus&output=ts"
    );
    let gw = Gateway::start(&GatewayOptions { log_level: "debug".into(), ..GatewayOptions::default() }).await?;
    let mut f = Findings::default();
    let http = reqwest::Client::builder().no_proxy().build()?;

    let (_, v) = gw
        .api("POST", "/api/v1/providers", Some(serde_json::json!({"name": "m3u", "kind": "m3u", "url": playlist})))
        .await?;
    f.search("POST /api/v1/providers", &v.to_string(), false);
    let provider_id = v["id"].as_i64().unwrap_or(1);
    let (_, v) = gw
        .api(
            "POST",
            "/api/v1/users",
            Some(serde_json::json!({"username": USER, "password": PASS, "max_connections": 0})),
        )
        .await?;
    f.search("POST /api/v1/users", &v.to_string(), false);
    let ids = gw.wait_channels(5).await?;
    gw.login(USER, PASS).await?;

    // A client's view: login, playlists, guide, tuner.
    for path in [
        format!("/player_api.php?username={USER}&password={PASS}"),
        format!("/player_api.php?username={USER}&password={PASS}&action=get_live_streams"),
        format!("/player_api.php?username={USER}&password={PASS}&action=get_vod_streams"),
        format!("/get.php?username={USER}&password={PASS}&type=m3u_plus&output=ts"),
        format!("/xmltv.php?username={USER}&password={PASS}"),
        format!("/hdhr/{USER}/{PASS}/lineup.json"),
        format!("/hdhr/{USER}/{PASS}/discover.json"),
    ] {
        let (status, body) = gw.get(&path).await?;
        f.search(&format!("GET {} ({status})", path.split('?').next().unwrap_or("")), &body, true);
    }
    // Streaming: a TS viewer and an HLS viewer held open while the API is read.
    let mut ts = http.get(gw.url(&format!("/live/{USER}/{PASS}/{}.ts", ids[0]))).send().await?;
    let _ = tokio::time::timeout(Duration::from_secs(2), ts.chunk()).await;
    let playlist = format!("/live/{USER}/{PASS}/{}.m3u8", ids[1]);
    let (status, m3u8) = gw.get(&playlist).await?;
    f.search(&format!("GET /live/…/{}.m3u8 ({status})", ids[1]), &m3u8, true);
    if let Some(seg) = first_uri(&m3u8) {
        if let Ok(resp) = http.get(resolve(&gw.base, &gw.url(&playlist), seg)).send().await {
            let _ = resp.bytes().await;
        }
    }
    let movies = gw.movie_ids(USER, PASS).await.unwrap_or_default();
    if let Some(m) = movies.first() {
        let mut resp =
            http.get(gw.url(&format!("/movie/{USER}/{PASS}/{m}.mp4"))).header("Range", "bytes=0-").send().await?;
        let _ = tokio::time::timeout(Duration::from_secs(2), resp.chunk()).await;
        read_api(&gw, &http, &mut f, provider_id).await?;
        drop(resp);
    } else {
        read_api(&gw, &http, &mut f, provider_id).await?;
    }
    drop(ts);
    for path in ["/metrics", "/healthz"] {
        let (_, body) = gw.get(path).await?;
        f.search(&format!("GET {path}"), &body, false);
    }
    // Syncs and guide fetches, then a sync that fails (the panel now refuses the account).
    for path in [format!("/api/v1/providers/{provider_id}/sync"), format!("/api/v1/providers/{provider_id}/epg")] {
        let (s, v) = gw.api("POST", &path, None).await?;
        f.search(&format!("POST {path} ({s})"), &v.to_string(), false);
    }
    fake.update_account("sec-acct", |a| a.auth = false);
    let path = format!("/api/v1/providers/{provider_id}/sync");
    let (s, v) = gw.api("POST", &path, None).await?;
    f.search(&format!("POST {path} failing ({s})"), &v.to_string(), false);
    for path in [format!("/api/v1/providers/{provider_id}"), "/api/v1/events?limit=1000".into()] {
        let (s, v) = gw.api("GET", &path, None).await?;
        f.search(&format!("GET {path} after the failed sync ({s})"), &v.to_string(), false);
    }

    // The whole log.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = gw.log_text();
    for (name, secret) in secrets_list() {
        let n = log.matches(secret).count();
        if n > 0 {
            f.log.push(format!("{name} ×{n}"));
        }
    }
    r.info("secrets.responses_checked", f.checked);
    r.info("secrets.log_bytes", log.len());
    for (what, hits) in [("api_output", &f.api), ("client_output", &f.client), ("log", &f.log)] {
        r.check(&format!("secrets.hits_in_{what}"), hits.len(), "0", hits.is_empty());
        if !hits.is_empty() {
            r.info(&format!("secrets.where_in_{what}"), hits.iter().take(12).cloned().collect::<Vec<_>>());
        }
    }

    // Files: the data dir is its owner's only, and so is the database.
    let dir = gw.data_dir();
    let mode = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
    let dir_mode = mode(&dir);
    r.check("files.data_dir_mode", format!("{dir_mode:o}"), "700", dir_mode == 0o700);
    let mut loose = Vec::new();
    for entry in std::fs::read_dir(&dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let m = mode(&entry.path());
        if entry.path().is_file() && m & 0o077 != 0 {
            loose.push(format!("{name} {m:o}"));
        }
    }
    r.check("files.readable_by_others", loose.join(", "), "none", loose.is_empty());
    drop(gw);
    fake.shutdown().await;
    Ok(())
}

/// Every GET of the admin API (from its OpenAPI document), ids filled in, searched.
async fn read_api(gw: &Gateway, http: &reqwest::Client, f: &mut Findings, provider_id: i64) -> anyhow::Result<()> {
    let doc = gw.api_ok("/api/v1/openapi.json").await?;
    let sessions = gw.api_ok("/api/v1/sessions").await?;
    f.search("GET /api/v1/sessions (streaming)", &sessions.to_string(), false);
    let account_id =
        gw.api_ok(&format!("/api/v1/providers/{provider_id}/accounts")).await?[0]["id"].as_i64().unwrap_or(1);
    let paths: Vec<String> = doc["paths"]
        .as_object()
        .map(|p| p.iter().filter(|(_, ops)| ops.get("get").is_some()).map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    for path in paths {
        let id = if path.contains("/accounts/") { account_id } else { provider_id };
        let path = path.replace("{id}", &id.to_string());
        let req = http.get(gw.url(&path)).bearer_auth(ADMIN_TOKEN).send();
        let text = match tokio::time::timeout(Duration::from_secs(10), req).await {
            Ok(Ok(mut resp)) => {
                // `/api/v1/live` is an event stream: what it sends in 2 s.
                let mut text = String::new();
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while let Ok(Some(c)) = resp.chunk().await {
                        text.push_str(&String::from_utf8_lossy(&c));
                    }
                })
                .await;
                text
            }
            _ => String::new(),
        };
        f.search(&format!("GET {path}"), &text, false);
    }
    Ok(())
}
