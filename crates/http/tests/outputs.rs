//! Client outputs over real sockets: tunerpool's HTTP server in-process with
//! a real SQLite store, the simulated provider as the upstream, and clients
//! that log in as downstream users (M3U, Xtream API, HDHomeRun).

mod common;

use common::{app_state, serve, synced_store, TOKEN};

use std::time::Duration;

use fakeprovider::{AccountSpec, FakeConfig, FakeProvider, Fault, FaultKind};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tunerpool_relay::settings::RelaySettings;
use tunerpool_relay::UserLimitPolicy;

struct Harness {
    fake: FakeProvider,
    base: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
    _server: tokio::task::JoinHandle<()>,
}

fn fast() -> RelaySettings {
    RelaySettings {
        linger: Duration::from_millis(500),
        acquire_wait: Duration::from_secs(3),
        stall_timeout: Duration::from_secs(2),
        ..RelaySettings::default()
    }
}

/// The simulated provider (accounts `a`/`pa` and `b`/`pb`, 1 connection
/// each) synced into a fresh store, and the gateway serving it.
async fn harness(settings: RelaySettings) -> Harness {
    harness_with(settings, 20).await
}

async fn harness_with(settings: RelaySettings, live_channels: usize) -> Harness {
    let accounts = vec![AccountSpec::new("a", "pa", 1), AccountSpec::new("b", "pb", 1)];
    let config = FakeConfig { live_channels, ..FakeConfig::with_accounts(accounts.clone()) };
    let fake = FakeProvider::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (store, http) = synced_store(&fake, dir.path()).await;
    let (base, server) = serve(app_state(&store, &http, settings)).await;
    Harness { fake, base, client: reqwest::Client::new(), _dir: dir, _server: server }
}

impl Harness {
    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.client.request(method.parse().unwrap(), format!("{}{path}", self.base));
        if path.starts_with("/api/v1/") {
            req = req.bearer_auth(TOKEN);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
    }

    /// Creates a downstream user through the admin API.
    async fn user(&self, body: Value) -> Value {
        let (status, u) = self.send("POST", "/api/v1/users", Some(body)).await;
        assert_eq!(status, 201, "{u}");
        u
    }

    async fn api(&self, query: &str) -> Value {
        let resp = self.client.get(format!("{}/player_api.php?{query}", self.base)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{query}");
        resp.json().await.unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{path}", self.base)).send().await.unwrap()
    }
}

async fn channels(h: &Harness) -> Vec<Value> {
    let (_, page) = h.send("GET", "/api/v1/channels?per_page=1000", None).await;
    page["items"].as_array().unwrap().clone()
}

/// Reads a stream until it ends or `dur` passes; returns the bytes and
/// whether it ended.
async fn read_for(resp: reqwest::Response, dur: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut body = resp.bytes_stream();
    let deadline = tokio::time::Instant::now() + dur;
    loop {
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(chunk))) => out.extend_from_slice(&chunk),
            Ok(_) => return (out, true),
            Err(_) => return (out, false),
        }
    }
}

async fn ffprobe_codecs(url: &str) -> String {
    let out = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", "-read_intervals", "%+3", url])
        .output()
        .await
        .expect("ffprobe must be installed (apt-get install ffmpeg)");
    format!("{} {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xtream_client_flow_login_categories_streams_play() {
    let h = harness(fast()).await;
    h.user(json!({"username": "kim", "password": "k1m", "max_connections": 2})).await;
    let creds = "username=kim&password=k1m";

    // Login: full user_info and server_info, numbers as strings.
    let login = h.api(creds).await;
    let ui = &login["user_info"];
    assert_eq!(ui["auth"], 1);
    assert_eq!(ui["username"], "kim");
    assert_eq!(ui["status"], "Active");
    assert_eq!(ui["max_connections"], "2");
    assert_eq!(ui["active_cons"], "0");
    assert_eq!(ui["is_trial"], "0");
    assert!(ui["created_at"].is_string() && ui["exp_date"].is_null(), "{ui}");
    assert_eq!(ui["allowed_output_formats"], json!(["m3u8", "ts"]));
    let si = &login["server_info"];
    assert_eq!(si["url"], "127.0.0.1");
    assert_eq!(si["port"], h.base.rsplit(':').next().unwrap());
    assert_eq!(si["server_protocol"], "http");
    assert!(si["timestamp_now"].is_i64() && si["time_now"].as_str().unwrap().len() == 19, "{si}");
    // POST with a form body works the same.
    let posted: Value = h
        .client
        .post(format!("{}/player_api.php", h.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("{creds}&action=get_live_categories"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // Categories, then the streams of one category.
    let cats = h.api(&format!("{creds}&action=get_live_categories")).await;
    assert_eq!(posted, cats);
    let cats = cats.as_array().unwrap();
    assert_eq!(cats.len(), 4, "{cats:?}");
    let cat = cats[0]["category_id"].as_str().unwrap().to_string();
    assert!(cats[0]["category_name"].is_string());
    let all = h.api(&format!("{creds}&action=get_live_streams")).await;
    assert_eq!(all.as_array().unwrap().len(), 20);
    let in_cat = h.api(&format!("{creds}&action=get_live_streams&category_id={cat}")).await;
    let in_cat = in_cat.as_array().unwrap();
    assert!(!in_cat.is_empty() && in_cat.len() < 20);
    assert!(in_cat.iter().all(|s| s["category_id"] == cat.as_str()), "{in_cat:?}");
    let first = &in_cat[0];
    assert_eq!(first["stream_type"], "live");
    assert!(first["stream_id"].is_i64() && first["num"].is_i64() && first["name"].is_string(), "{first}");

    // Play it the way the client builds the URL: ffprobe finds video and audio.
    let id = first["stream_id"].as_i64().unwrap();
    let codecs = ffprobe_codecs(&format!("{}/live/kim/k1m/{id}.ts", h.base)).await;
    assert!(codecs.contains("h264") && codecs.contains("aac"), "ffprobe found: {codecs}");
    // The short form plays too.
    let resp = h.get(&format!("/kim/k1m/{id}")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "video/mp2t");
    drop(resp);

    // VOD: list, info (asked of the provider, ids rewritten), play.
    let vod = h.api(&format!("{creds}&action=get_vod_streams")).await;
    let vod = vod.as_array().unwrap();
    assert_eq!(vod.len(), 10);
    let movie = vod[0]["stream_id"].as_i64().unwrap();
    let info = h.api(&format!("{creds}&action=get_vod_info&vod_id={movie}")).await;
    assert_eq!(info["movie_data"]["stream_id"], movie);
    assert_eq!(info["info"]["name"], vod[0]["name"]);
    let text = info.to_string();
    assert!(!text.contains("pa\"") && !text.contains("/a/pa/"), "provider credentials leaked: {text}");
    let ext = vod[0]["container_extension"].as_str().unwrap();
    let resp = h.client.get(format!("{}/movie/kim/k1m/{movie}.{ext}", h.base)).header("range", "bytes=0-187").send();
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().await.unwrap()[0], 0x47);

    // Series: list, info with episodes we can play.
    let series = h.api(&format!("{creds}&action=get_series")).await;
    let series = series.as_array().unwrap();
    assert_eq!(series.len(), 3);
    assert_eq!(h.api(&format!("{creds}&action=get_series_categories")).await.as_array().unwrap().len(), 1);
    let sid = series[0]["series_id"].as_i64().unwrap();
    let info = h.api(&format!("{creds}&action=get_series_info&series_id={sid}")).await;
    let episodes: Vec<&Value> =
        info["episodes"].as_object().unwrap().values().flat_map(|l| l.as_array().unwrap()).collect();
    assert_eq!(episodes.len(), 6, "{info}");
    let ep = episodes[0];
    let ep_id: i64 = ep["id"].as_str().unwrap().parse().unwrap();
    assert!(ep_id > 1_000_000_000, "episode ids are ours: {ep_id}");
    let ext = ep["container_extension"].as_str().unwrap();
    let resp = h.client.get(format!("{}/series/kim/k1m/{ep_id}.{ext}", h.base)).header("range", "bytes=0-187");
    let resp = resp.send().await.unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().await.unwrap()[0], 0x47);
    // Asking again keeps the episode ids.
    let again = h.api(&format!("{creds}&action=get_series_info&series_id={sid}")).await;
    assert_eq!(again["episodes"], info["episodes"]);

    // Short EPG: the provider's listings under our stream id.
    let epg = h.api(&format!("{creds}&action=get_short_epg&stream_id={id}&limit=2")).await;
    assert!(epg["epg_listings"].is_array(), "{epg}");
    let table = h.api(&format!("{creds}&action=get_simple_data_table&stream_id={id}")).await;
    assert!(table["epg_listings"].is_array(), "{table}");

    // Bad input is named.
    let resp = h.get(&format!("/player_api.php?{creds}&action=get_live_streams&category_id=x")).await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("category_id"));
    let resp = h.get(&format!("/player_api.php?{creds}&action=nope")).await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("action"));
    // No request to the provider carried anything but its own accounts.
    assert!(h.fake.counters().accounts.keys().all(|k| k == "a" || k == "b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m3u_output_parses_back_to_the_catalog() {
    let h = harness(fast()).await;
    h.user(json!({"username": "kim", "password": "k1m"})).await;
    let resp = h.get("/get.php?username=kim&password=k1m&type=m3u_plus&output=ts").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("audio/x-mpegurl"));
    let body = resp.bytes().await.unwrap();
    let playlist = tunerpool_formats::m3u::parse(&body);
    assert!(playlist.skipped.is_empty(), "{:?}", playlist.skipped);
    assert_eq!(
        playlist.header.attr("x-tvg-url"),
        Some(format!("{}/xmltv.php?username=kim&password=k1m", h.base).as_str())
    );
    let chans = channels(&h).await;
    assert_eq!(playlist.entries.len(), chans.len());
    for (e, c) in playlist.entries.iter().zip(&chans) {
        let id = c["id"].as_i64().unwrap();
        assert_eq!(e.url, format!("{}/live/kim/k1m/{id}.ts", h.base));
        assert_eq!(e.duration, "-1");
        assert_eq!(e.title, c["name"].as_str().unwrap());
        assert_eq!(e.tvg_name(), c["name"].as_str());
        assert_eq!(e.tvg_id(), c["tvg_id"].as_str());
        assert_eq!(e.tvg_logo(), c["logo"].as_str());
        assert_eq!(e.tvg_chno(), c["number"].as_str());
        assert_eq!(e.group_title(), c["group"].as_str());
    }
    // Its first URL plays.
    let resp = h.get(playlist.entries[0].url.strip_prefix(&h.base).unwrap()).await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    assert_eq!(body.next().await.unwrap().unwrap()[0], 0x47);
    drop(body);

    // The per-user form, HLS-style URLs, movies, plain m3u.
    let text = h.get("/playlist.m3u?username=kim&password=k1m").await.text().await.unwrap();
    assert_eq!(text.as_bytes(), &body_of(&h, "/get.php?username=kim&password=k1m").await[..]);
    let hls = tunerpool_formats::m3u::parse(&body_of(&h, "/get.php?username=kim&password=k1m&output=m3u8").await);
    assert!(hls.entries.iter().all(|e| e.url.ends_with(".m3u8")));
    let with_vod = tunerpool_formats::m3u::parse(&body_of(&h, "/get.php?username=kim&password=k1m&vod=1").await);
    assert_eq!(with_vod.entries.len(), 30);
    assert!(with_vod.entries[20].url.contains("/movie/kim/k1m/"));
    let plain = tunerpool_formats::m3u::parse(&body_of(&h, "/get.php?username=kim&password=k1m&type=m3u").await);
    assert!(plain.entries[0].attrs.is_empty());
    let resp = h.get("/get.php?username=kim&password=k1m&output=rtmp").await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().starts_with("output:"));
}

async fn body_of(h: &Harness, path: &str) -> Vec<u8> {
    let resp = h.get(path).await;
    assert_eq!(resp.status(), 200, "{path}");
    resp.bytes().await.unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hdhomerun_lineup_matches_the_channels_and_tunes() {
    let h = harness(fast()).await;
    h.user(json!({"username": "plex", "password": "px"})).await;
    let d: Value = h.get("/hdhr/plex/px/discover.json").await.json().await.unwrap();
    assert_eq!(d["ModelNumber"], "HDTC-2US");
    assert_eq!(d["TunerCount"], 2, "two accounts of one connection: {d}");
    let id = d["DeviceID"].as_str().unwrap();
    assert!(id.len() == 8 && id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    assert_eq!(d["BaseURL"], format!("{}/hdhr/plex/px", h.base));
    assert_eq!(d["LineupURL"], format!("{}/hdhr/plex/px/lineup.json", h.base));
    assert!(d["FirmwareName"].is_string() && d["DeviceAuth"].is_string() && d["FriendlyName"].is_string());
    // Stable, and per user.
    let again: Value = h.get("/hdhr/plex/px/discover.json").await.json().await.unwrap();
    assert_eq!(again["DeviceID"], d["DeviceID"]);
    h.user(json!({"username": "emby", "password": "em", "max_connections": 1})).await;
    let other: Value = h.get("/hdhr/emby/em/discover.json").await.json().await.unwrap();
    assert_ne!(other["DeviceID"], d["DeviceID"]);
    assert_eq!(other["TunerCount"], 1, "capped by the user's own limit");

    let lineup: Value = h.get("/hdhr/plex/px/lineup.json").await.json().await.unwrap();
    let lineup = lineup.as_array().unwrap();
    let chans = channels(&h).await;
    assert_eq!(lineup.len(), chans.len());
    for (l, c) in lineup.iter().zip(&chans) {
        assert_eq!(l["GuideNumber"], c["id"].as_i64().unwrap().to_string());
        assert_eq!(l["GuideName"], c["name"]);
        assert_eq!(l["URL"], format!("{}/hdhr/plex/px/auto/v{}", h.base, c["id"]));
    }
    let status: Value = h.get("/hdhr/plex/px/lineup_status.json").await.json().await.unwrap();
    assert_eq!(status["ScanInProgress"], 0);
    let xml = h.get("/hdhr/plex/px/device.xml").await.text().await.unwrap();
    assert!(xml.contains("<modelNumber>HDTC-2US</modelNumber>") && xml.contains(id), "{xml}");
    assert_eq!(
        h.client.post(format!("{}/hdhr/plex/px/lineup.post?scan=start", h.base)).send().await.unwrap().status(),
        200
    );

    // Tuning sends TS bytes right after the 200.
    let url = lineup[0]["URL"].as_str().unwrap();
    let resp = h.client.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(5), body.next()).await.expect("bytes promptly");
    assert_eq!(first.unwrap().unwrap()[0], 0x47);
    assert_eq!(h.get("/hdhr/plex/wrong/discover.json").await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_oldest_a_user_zapping_gets_the_new_channel_and_the_old_one_ends() {
    let h = harness(RelaySettings { user_limit_policy: UserLimitPolicy::ReplaceOldest, ..fast() }).await;
    h.user(json!({"username": "zap", "password": "z", "max_connections": 1})).await;
    let first = h.get("/live/zap/z/1.ts").await;
    assert_eq!(first.status(), 200);
    let mut first_body = first.bytes_stream();
    assert_eq!(first_body.next().await.unwrap().unwrap()[0], 0x47);
    let second = h.get("/live/zap/z/2.ts").await;
    assert_eq!(second.status(), 200, "the new channel is served");
    // The first stream ends (possibly after what was already in flight).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut ended = false;
    while let Ok(next) = tokio::time::timeout_at(deadline, first_body.next()).await {
        if !matches!(next, Some(Ok(_))) {
            ended = true;
            break;
        }
    }
    assert!(ended, "the replaced stream ended");
    let (data, _) = read_for(second, Duration::from_millis(1500)).await;
    assert!(data.len() >= 188 && data[0] == 0x47);
    let (_, users) = h.send("GET", "/api/v1/users", None).await;
    assert!(users[0]["active_connections"].as_u64().unwrap() <= 1, "{users}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_a_user_over_its_limit_gets_403_with_the_reason() {
    let settings = RelaySettings {
        user_limit_policy: UserLimitPolicy::Refuse,
        acquire_wait: Duration::from_millis(300),
        ..fast()
    };
    let h = harness(settings).await;
    h.user(json!({"username": "one", "password": "o", "max_connections": 1})).await;
    let first = h.get("/live/one/o/1.ts").await;
    assert_eq!(first.status(), 200);
    for path in ["/live/one/o/2.ts", "/hdhr/one/o/auto/v3", "/movie/one/o/1.mp4"] {
        let refused = h.get(path).await;
        assert_eq!(refused.status(), 403, "{path}");
        let why = refused.text().await.unwrap();
        assert!(why.contains("one") && why.contains("limit of 1 connection"), "{path}: {why}");
        assert!(!why.contains("\"o\""), "{why}");
    }
    let (_, u) = h.send("GET", "/api/v1/users/1", None).await;
    assert_eq!(u["active_connections"], 1);
    drop(first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_answered_the_way_clients_expect() {
    let h = harness(fast()).await;
    h.user(json!({"username": "kim", "password": "k1m"})).await;
    // Xtream: HTTP 200, auth 0.
    assert_eq!(h.api("username=kim&password=nope").await, json!({"user_info": {"auth": 0}}));
    assert_eq!(h.api("username=nobody&password=x&action=get_live_streams").await, json!({"user_info": {"auth": 0}}));
    assert_eq!(h.api("").await, json!({"user_info": {"auth": 0}}));
    // Playlists, streams, tuners: 401 with the reason, never the password.
    for path in
        ["/get.php?username=kim&password=nope", "/live/kim/nope/1.ts", "/kim/nope/1", "/hdhr/kim/nope/lineup.json"]
    {
        let resp = h.get(path).await;
        assert_eq!(resp.status(), 401, "{path}");
        let text = resp.text().await.unwrap();
        assert!(text.contains("wrong username or password") && !text.contains("nope"), "{text}");
    }
    // Disabled and expired users: auth 0 with the status; streams 403 with why.
    let (_, u) =
        h.send("POST", "/api/v1/users", Some(json!({"username": "off", "password": "x", "enabled": false}))).await;
    let off = h.api("username=off&password=x").await;
    assert_eq!((off["user_info"]["auth"].clone(), off["user_info"]["status"].clone()), (json!(0), json!("Disabled")));
    let resp = h.get("/live/off/x/1.ts").await;
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("disabled"));
    let patched = h
        .send("PATCH", &format!("/api/v1/users/{}", u["id"]), Some(json!({"enabled": true, "expires_at": 1000})))
        .await;
    assert_eq!(patched.0, 200);
    assert_eq!(h.api("username=off&password=x").await["user_info"]["status"], "Expired");
    let resp = h.get("/get.php?username=off&password=x").await;
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("expired"));
    // Unknown channels and ones outside the catalog are 404 even when logged in.
    assert_eq!(h.get("/live/kim/k1m/999999.ts").await.status(), 404);
    // A mistyped API path is the admin API's business, not a failed client login.
    for _ in 0..12 {
        assert_eq!(h.get("/api/v1/nothing").await.status(), 401, "the admin API's, not a client login");
    }
    assert_eq!(h.api("username=kim&password=k1m").await["user_info"]["auth"], 1);

    // Failed logins are limited per address: after 10, even the right
    // password is refused with 429 for a while.
    for _ in 0..10 {
        h.get("/player_api.php?username=kim&password=wrong").await;
    }
    let limited = h.get("/player_api.php?username=kim&password=k1m").await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(h.get("/live/kim/k1m/1.ts").await.status(), 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_groups_filter_every_listing_and_stream() {
    let h = harness(fast()).await;
    h.user(json!({"username": "all", "password": "a"})).await;
    let cats = h.api("username=all&password=a&action=get_live_categories").await;
    let group: i64 = cats[1]["category_id"].as_str().unwrap().parse().unwrap();
    let gs = group.to_string();
    let u = h.user(json!({"username": "kid", "password": "k", "allowed_groups": [group]})).await;
    assert_eq!(u["allowed_groups"], json!([group]));
    let creds = "username=kid&password=k";
    let cats = h.api(&format!("{creds}&action=get_live_categories")).await;
    assert_eq!(cats.as_array().unwrap().len(), 1);
    assert_eq!(h.api(&format!("{creds}&action=get_vod_categories")).await, json!([]));
    let streams = h.api(&format!("{creds}&action=get_live_streams")).await;
    let streams = streams.as_array().unwrap();
    assert!(!streams.is_empty() && streams.iter().all(|s| s["category_id"] == gs.as_str()));
    assert_eq!(h.api(&format!("{creds}&action=get_vod_streams")).await, json!([]));
    let m3u = tunerpool_formats::m3u::parse(&body_of(&h, &format!("/get.php?{creds}")).await);
    assert_eq!(m3u.entries.len(), streams.len());
    let lineup: Value = h.get("/hdhr/kid/k/lineup.json").await.json().await.unwrap();
    assert_eq!(lineup.as_array().unwrap().len(), streams.len());
    // A channel outside the user's groups does not exist for it.
    let all = h.api("username=all&password=a&action=get_live_streams").await;
    let outside = all.as_array().unwrap().iter().find(|s| s["category_id"] != gs.as_str()).unwrap();
    let id = outside["stream_id"].as_i64().unwrap();
    assert_eq!(h.get(&format!("/live/kid/k/{id}.ts")).await.status(), 404);
    assert_eq!(h.get(&format!("/hdhr/kid/k/auto/v{id}")).await.status(), 404);
    assert_eq!(h.get("/movie/kid/k/1.mp4").await.status(), 404);
    let inside = streams[0]["stream_id"].as_i64().unwrap();
    assert_eq!(h.get(&format!("/live/kid/k/{inside}.ts")).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_api_contract() {
    let h = harness(fast()).await;
    let u = h.user(json!({"username": "demo", "password": "demo", "max_connections": 1})).await;
    let created_at = u["created_at"].as_i64().unwrap();
    assert!(created_at > 1_600_000_000);
    assert_eq!(
        u,
        json!({"id": 1, "username": "demo", "enabled": true, "expires_at": null, "max_connections": 1,
               "priority": 0, "allowed_groups": null, "created_at": created_at, "active_connections": 0})
    );
    let (status, list) = h.send("GET", "/api/v1/users", None).await;
    assert_eq!((status, list), (200, json!([u])));
    let (status, one) = h.send("GET", "/api/v1/users/1", None).await;
    assert_eq!((status, one), (200, u.clone()));

    // A name taken is a conflict (409), bad input a 400; both name the field.
    let (status, e) = h.send("POST", "/api/v1/users", Some(json!({"username": "demo", "password": "x"}))).await;
    assert_eq!(status, 409);
    assert_eq!(e["fields"][0]["field"], "username", "{e}");
    let (status, e) =
        h.send("POST", "/api/v1/users", Some(json!({"username": "a b", "password": "", "max_connections": -1}))).await;
    assert_eq!(status, 400);
    let fields: Vec<&str> = e["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["username", "password", "max_connections"]);
    let (status, e) =
        h.send("POST", "/api/v1/users", Some(json!({"username": "x", "password": "y", "admin": true}))).await;
    assert_eq!((status, e["fields"][0]["field"].as_str()), (400, Some("admin")));
    let (status, e) = h
        .send("POST", "/api/v1/users", Some(json!({"username": "x", "password": "y", "allowed_groups": [999999]})))
        .await;
    assert_eq!((status, e["fields"][0]["field"].as_str()), (409, Some("allowed_groups")));

    // PATCH: fields optional, null clears. Groups are lineup groups.
    let (_, groups) = h.send("GET", "/api/v1/groups", None).await;
    let group = groups[0]["id"].as_i64().unwrap();
    let (status, p) = h
        .send("PATCH", "/api/v1/users/1", Some(json!({"expires_at": 4_000_000_000i64, "allowed_groups": [group]})))
        .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!((p["expires_at"].as_i64(), p["allowed_groups"].clone()), (Some(4_000_000_000), json!([group])));
    let (_, p) = h.send("PATCH", "/api/v1/users/1", Some(json!({"expires_at": null, "allowed_groups": null}))).await;
    assert_eq!((p["expires_at"].clone(), p["allowed_groups"].clone()), (Value::Null, Value::Null));
    assert_eq!(p["max_connections"], 1);

    // A new password takes effect at once (the login cache does not keep the old one).
    assert_eq!(h.api("username=demo&password=demo").await["user_info"]["auth"], 1);
    let (status, p) = h.send("PATCH", "/api/v1/users/1", Some(json!({"password": "fresh"}))).await;
    assert_eq!(status, 200);
    assert!(!p.to_string().contains("fresh") && !p.to_string().contains("argon"), "{p}");
    assert_eq!(h.api("username=demo&password=demo").await["user_info"]["auth"], 0);
    assert_eq!(h.api("username=demo&password=fresh").await["user_info"]["auth"], 1);

    let (status, _) = h.send("DELETE", "/api/v1/users/1", None).await;
    assert_eq!(status, 204);
    assert_eq!(h.send("GET", "/api/v1/users/1", None).await.0, 404);
    assert_eq!(h.send("DELETE", "/api/v1/users/1", None).await.0, 404);
    assert_eq!(h.api("username=demo&password=fresh").await["user_info"]["auth"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_page_through_a_catalog_larger_than_a_page() {
    let h = harness_with(fast(), 2345).await;
    h.user(json!({"username": "kim", "password": "k1m"})).await;
    let m3u = tunerpool_formats::m3u::parse(&body_of(&h, "/get.php?username=kim&password=k1m").await);
    assert_eq!(m3u.entries.len(), 2345);
    let ids: Vec<i64> = m3u
        .entries
        .iter()
        .map(|e| e.url.rsplit('/').next().unwrap().trim_end_matches(".ts").parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in id order, no repeats");
    let streams = h.api("username=kim&password=k1m&action=get_live_streams").await;
    let streams = streams.as_array().unwrap();
    assert_eq!(streams.len(), 2345);
    let api_ids: Vec<i64> = streams.iter().map(|s| s["stream_id"].as_i64().unwrap()).collect();
    assert_eq!(api_ids, ids);
    assert_eq!(streams[2344]["num"], 2345);
    let lineup: Value = h.get("/hdhr/kim/k1m/lineup.json").await.json().await.unwrap();
    assert_eq!(lineup.as_array().unwrap().len(), 2345);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m3u8_urls_serve_hls_segments_that_count_against_the_user() {
    let h = harness(fast()).await;
    h.user(json!({"username": "hl", "password": "h", "max_connections": 1})).await;
    let resp = h.get("/live/hl/h/1.m3u8").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/vnd.apple.mpegurl");
    let playlist = resp.text().await.unwrap();
    let segment = playlist.lines().find(|l| l.starts_with("/hls/hl/h/1/")).expect("a segment URL").to_string();
    let data = h.get(&segment).await.bytes().await.unwrap();
    assert!(data.len() > 1000 && data.chunks(188).all(|p| p[0] == 0x47), "{} bytes", data.len());
    // The HLS client holds one of the user's connections however often it polls.
    for _ in 0..3 {
        assert_eq!(h.get("/live/hl/h/1.m3u8").await.status(), 200);
    }
    let (_, users) = h.send("GET", "/api/v1/users", None).await;
    assert_eq!(users[0]["active_connections"], 1, "{users}");
    // Wrong credentials and other users' channels get no segments.
    assert_eq!(h.get(&segment.replace("/hl/h/", "/hl/wrong/")).await.status(), 401);
    // Zapping to a TS stream replaces the HLS one (limit 1).
    let ts = h.get("/live/hl/h/2.ts").await;
    assert_eq!(ts.status(), 200);
    let (_, users) = h.send("GET", "/api/v1/users", None).await;
    assert_eq!(users[0]["active_connections"], 1, "{users}");
    drop(ts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xmltv_php_serves_the_guide_the_playlist_points_at() {
    let h = harness(fast()).await;
    h.user(json!({"username": "tv", "password": "t"})).await;
    let (status, report) = h.send("POST", "/api/v1/providers/1/epg", None).await;
    assert_eq!(status, 200, "{report}");
    // The playlist names the guide…
    let playlist = h.get("/get.php?username=tv&password=t").await.text().await.unwrap();
    let header = playlist.lines().next().unwrap();
    let guide_url = header.split("x-tvg-url=\"").nth(1).and_then(|r| r.split('"').next()).expect("x-tvg-url");
    assert!(guide_url.ends_with("/xmltv.php?username=tv&password=t"), "{header}");
    // …and it is there, with our channels' programmes.
    let resp = h.client.get(guide_url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let xml = resp.text().await.unwrap();
    assert!(xml.contains("<tv") && xml.contains("<channel ") && xml.contains("<programme "), "{}", &xml[..200]);
    assert_eq!(h.get("/xmltv.php?username=tv&password=wrong").await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_plays_the_archive_of_channels_that_have_one() {
    let h = harness(fast()).await;
    h.user(json!({"username": "cu", "password": "c"})).await;
    let streams = h.api("username=cu&password=c&action=get_live_streams").await;
    let streams = streams.as_array().unwrap();
    let with = streams.iter().find(|s| s["tv_archive"] == 1).expect("a channel with an archive");
    let without = streams.iter().find(|s| s["tv_archive"] == 0).expect("a channel without");
    assert!(with["tv_archive_duration"].as_i64().unwrap() > 0, "{with}");
    let id = with["stream_id"].as_i64().unwrap();
    // The provider stalls after 100 KB, so the body is still being sent when
    // the sessions are read (2 MB would fit in the loopback buffers at once).
    let upstream: u64 = with["name"].as_str().unwrap().trim_start_matches("Channel ").parse().unwrap();
    h.fake.set_fault(Fault::new(FaultKind::Stall { after_bytes: 100_000 }).for_stream(upstream));
    let mut resp = h.get(&format!("/timeshift/cu/c/60/2026-11-20:21-00/{id}.ts")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.chunk().await.unwrap().unwrap()[0], 0x47);
    // While it is sent it holds a slot and is listed with the sessions.
    let (_, sessions) = h.send("GET", "/api/v1/sessions", None).await;
    assert_eq!(sessions[0]["kind"], "timeshift", "{sessions}");
    assert!(!sessions[0]["upstream"]["url"].as_str().unwrap().contains("/pa/"), "{sessions}");
    drop(resp);
    // A channel without an archive: the provider says no, and so do we.
    let no = h.get(&format!("/timeshift/cu/c/60/2026-11-20:21-00/{}.ts", without["stream_id"])).await;
    assert_eq!(no.status(), 502);
    // Bad parameters are named.
    let bad = h.get(&format!("/timeshift/cu/c/60/yesterday/{id}.ts")).await;
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().starts_with("start:"));
    let bad = h.get(&format!("/timeshift/cu/c/0/2026-11-20:21-00/{id}.ts")).await;
    assert_eq!(bad.status(), 400);
}

/// The live listings come from the catalog's materialized listing once it
/// is fresh, and from the lineup's query while it is stale: both must give
/// the same bytes, for every format, URL style, category and user filter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_materialized_listing_gives_the_bytes_the_lineup_query_gives() {
    let accounts = vec![AccountSpec::new("a", "pa", 1)];
    let fake =
        FakeProvider::start(FakeConfig { live_channels: 2345, ..FakeConfig::with_accounts(accounts) }).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (store, http) = synced_store(&fake, dir.path()).await;
    let (base, _server) = serve(app_state(&store, &http, fast())).await;
    let h = Harness { fake, base, client: reqwest::Client::new(), _dir: dir, _server: tokio::spawn(async {}) };
    h.user(json!({"username": "kim", "password": "k1m"})).await;
    let cats = h.api("username=kim&password=k1m&action=get_live_categories").await;
    let group: i64 = cats[1]["category_id"].as_str().unwrap().parse().unwrap();
    h.user(json!({"username": "kid", "password": "k", "allowed_groups": [group]})).await;
    let paths = [
        "/get.php?username=kim&password=k1m&type=m3u_plus&output=ts".to_string(),
        "/get.php?username=kim&password=k1m&type=m3u&output=m3u8".to_string(),
        "/get.php?username=kim&password=k1m&vod=1".to_string(),
        "/get.php?username=kid&password=k".to_string(),
        "/player_api.php?username=kim&password=k1m&action=get_live_streams".to_string(),
        format!("/player_api.php?username=kim&password=k1m&action=get_live_streams&category_id={group}"),
        "/player_api.php?username=kid&password=k&action=get_live_streams".to_string(),
    ];
    let first = channels(&h).await.remove(0);
    let (id, name) = (first["id"].as_i64().unwrap(), first["name"].as_str().unwrap().to_string());
    let fresh = || async {
        tunerpool_testkit::eventually("the listing rebuilt", Duration::from_secs(20), || async {
            store.live_listing_fresh().await.unwrap().then_some(())
        })
        .await
    };
    let mut from_lineup = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        if i > 0 {
            // The rebuild the previous request started is over: none can
            // finish between the write below and this request's check.
            fresh().await;
        }
        // A write that changes nothing listed still makes the listing stale:
        // this request reads the lineup's query (and starts a rebuild).
        let (status, _) = h.send("PATCH", &format!("/api/v1/channels/{id}"), Some(json!({"name": name}))).await;
        assert_eq!(status, 200);
        assert!(!store.live_listing_fresh().await.unwrap());
        from_lineup.push(body_of(&h, p).await);
    }
    fresh().await;
    for (p, expected) in paths.iter().zip(&from_lineup) {
        let got = body_of(&h, p).await;
        assert!(got.len() > 100, "{p}");
        assert!(got == *expected, "{p}: {} bytes against {}", got.len(), expected.len());
    }
    assert!(store.live_listing_fresh().await.unwrap(), "still fresh: every body above came from it");
}

/// The same catalog on SQLite and on PostgreSQL is served as the same bytes:
/// every listing, from the lineup's query (the materialized listing stale)
/// and from the materialized listing (once rebuilt), on both backends. The
/// two gateways share a public URL, so the stream URLs agree too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listings_are_the_same_bytes_on_sqlite_and_on_postgresql() {
    use tunerpool_testkit::Backend;
    let accounts = vec![AccountSpec::new("a", "pa", 1)];
    let fake = FakeProvider::start(FakeConfig {
        live_channels: 1234,
        vod_count: 120,
        series_count: 30,
        ..FakeConfig::with_accounts(accounts)
    })
    .await
    .unwrap();
    // Per backend: every path's body while the listing is stale, then
    // once it is fresh.
    let mut served = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let dir = tempfile::tempdir().unwrap();
        let (store, http) = backend.open_with_http(dir.path()).await;
        let pid = tunerpool_testkit::add_xtream(&store, &fake, &[("a", "pa")]).await;
        tunerpool_testkit::sync_with_details(&store, &http, pid).await;
        let mut state = app_state(&store, &http, fast());
        state.public_url = Some("http://tv.example:8080".into());
        let (base, _server) = serve(state).await;
        let h = Harness {
            fake: FakeProvider::start(FakeConfig::with_accounts(vec![])).await.unwrap(),
            base,
            client: reqwest::Client::new(),
            _dir: dir,
            _server: tokio::spawn(async {}),
        };
        h.user(json!({"username": "kim", "password": "k1m"})).await;
        // Curation, so that names with quotes, commas and non-ASCII letters,
        // a hidden channel and a renumbered one are listed (or not) too.
        let all = channels(&h).await;
        let edits = [
            json!({"name": "Ünïcode \"quoted\", <b>&amp; 日本"}),
            json!({"hidden": true}),
            json!({"number": 5000, "logo": "http://logo.example/x.png"}),
        ];
        for (c, edit) in all.iter().zip(edits) {
            let (status, body) = h.send("PATCH", &format!("/api/v1/channels/{}", c["id"]), Some(edit)).await;
            assert_eq!(status, 200, "{body}");
        }
        let cats = h.api("username=kim&password=k1m&action=get_live_categories").await;
        let group: i64 = cats[1]["category_id"].as_str().unwrap().parse().unwrap();
        let vod = h.api("username=kim&password=k1m&action=get_vod_categories").await;
        let vod: i64 = vod[0]["category_id"].as_str().unwrap().parse().unwrap();
        h.user(json!({"username": "kid", "password": "k", "allowed_groups": [group, vod]})).await;
        let paths = [
            "/get.php?username=kim&password=k1m&type=m3u_plus&output=ts",
            "/get.php?username=kim&password=k1m&type=m3u&output=m3u8",
            "/get.php?username=kim&password=k1m&vod=1",
            "/get.php?username=kid&password=k",
            "/player_api.php?username=kim&password=k1m&action=get_live_streams",
            "/player_api.php?username=kid&password=k&action=get_live_streams",
            "/player_api.php?username=kim&password=k1m&action=get_live_streams&category_id={group}",
            "/player_api.php?username=kim&password=k1m&action=get_live_categories",
            "/player_api.php?username=kim&password=k1m&action=get_vod_categories",
            "/player_api.php?username=kim&password=k1m&action=get_series_categories",
            "/player_api.php?username=kim&password=k1m&action=get_vod_streams",
            "/player_api.php?username=kid&password=k&action=get_vod_streams",
            "/player_api.php?username=kim&password=k1m&action=get_series",
            "/hdhr/kim/k1m/lineup.json",
        ]
        .map(|p| p.replace("{group}", &group.to_string()));
        // Rebuilt as `serve` keeps it fresh; only some listings start a rebuild themselves.
        let rebuilt = || async {
            let job = tunerpool_http::keep_live_listing_fresh(store.clone(), Duration::from_millis(50), || true);
            tunerpool_testkit::eventually("the listing rebuilt", Duration::from_secs(20), || async {
                store.live_listing_fresh().await.unwrap().then_some(())
            })
            .await;
            job.abort();
        };
        let (renamed, name) = (all[3]["id"].as_i64().unwrap(), all[3]["name"].clone());
        let mut stale = Vec::new();
        for p in &paths {
            // A write that changes nothing listed still makes the listing
            // stale: this request reads the lineup's query.
            let patch = json!({ "name": name });
            let (status, _) = h.send("PATCH", &format!("/api/v1/channels/{renamed}"), Some(patch)).await;
            assert_eq!(status, 200);
            assert!(!store.live_listing_fresh().await.unwrap(), "{backend:?}: stale after a write");
            stale.push(body_of(&h, p).await);
            rebuilt().await;
        }
        let mut fresh = Vec::new();
        for p in &paths {
            fresh.push(body_of(&h, p).await);
        }
        assert!(store.live_listing_fresh().await.unwrap(), "{backend:?}: every body above came from the listing");
        served.push((backend, paths, stale, fresh));
    }
    let (_, sqlite_paths, sqlite, _) = &served[0];
    for (backend, paths, stale, fresh) in &served {
        assert_eq!(paths, sqlite_paths, "the same groups on both");
        for (i, p) in paths.iter().enumerate() {
            assert!(sqlite[i].len() > 20, "{p}: {}", String::from_utf8_lossy(&sqlite[i]));
            for (what, got) in [("stale", &stale[i]), ("fresh", &fresh[i])] {
                assert!(
                    got == &sqlite[i],
                    "{p} on {backend:?} ({what}): {} bytes against SQLite's {}; first difference at byte {:?}",
                    got.len(),
                    sqlite[i].len(),
                    got.iter().zip(&sqlite[i]).position(|(a, b)| a != b)
                );
            }
        }
    }
}
