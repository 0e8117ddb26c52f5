//! Behind a reverse proxy under a path prefix (`http://proxy/tp/…` →
//! gateway `/…`), with `public_url` set to the proxy's address: every URL
//! the gateway hands out — M3U entries, the guide link, HLS playlists and
//! their segments, HDHomeRun's discover and lineup, Xtream's server_info —
//! goes through the proxy, and following each one plays.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use futures_util::StreamExt;
use tunerpool_relay::settings::RelaySettings;

/// A reverse proxy that strips `/tp` and forwards GETs to `upstream`,
/// streaming the answer back.
async fn proxy(State(upstream): State<String>, req: Request) -> Response {
    let path = req.uri().path().strip_prefix("/tp").unwrap_or("/not-under-the-prefix");
    let query = req.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
    let resp = reqwest::get(format!("{upstream}{path}{query}")).await.unwrap();
    let mut out = Response::builder().status(resp.status().as_u16());
    if let Some(ct) = resp.headers().get("content-type") {
        out = out.header("content-type", ct.as_bytes());
    }
    out.body(Body::from_stream(resp.bytes_stream())).unwrap()
}

/// The first bytes of `url`: its status and whether any body came.
async fn plays(url: &str) -> (u16, bool) {
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status().as_u16();
    let mut body = resp.bytes_stream();
    let got = tokio::time::timeout(Duration::from_secs(20), body.next()).await;
    (status, matches!(got, Ok(Some(Ok(b))) if !b.is_empty()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_handed_out_url_goes_through_the_prefix() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = format!("http://{}/tp", listener.local_addr().unwrap());
    let settings = RelaySettings { linger: Duration::from_millis(300), ..RelaySettings::default() };
    let gw = common::gateway(settings, |st| st.public_url = Some(format!("{public}/"))).await;
    let app = axum::Router::new().fallback(proxy).with_state(gw.base.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    gw.user("kim", "k1m", 4).await;
    let (u, p) = ("kim", "k1m");

    // M3U: the guide link and every entry under the prefix; one plays.
    let m3u = reqwest::get(format!("{public}/get.php?username={u}&password={p}&type=m3u_plus&output=ts"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let urls: Vec<&str> = m3u.lines().filter(|l| l.starts_with("http")).collect();
    assert!(!urls.is_empty(), "{m3u}");
    assert!(urls.iter().all(|l| l.starts_with(&format!("{public}/live/"))), "{m3u}");
    assert!(
        m3u.contains(&format!("url-tvg=\"{public}/xmltv.php?"))
            || m3u.contains(&format!("x-tvg-url=\"{public}/xmltv.php?")),
        "{m3u}"
    );

    // HLS: the playlist's segments are under the prefix, and one is served.
    let playlist = reqwest::get(format!("{public}/live/{u}/{p}/1.m3u8")).await.unwrap();
    assert_eq!(playlist.status(), 200);
    let playlist = playlist.text().await.unwrap();
    let segment = playlist.lines().find(|l| !l.starts_with('#') && !l.is_empty()).expect("a segment").to_string();
    assert!(segment.starts_with(&format!("{public}/hls/{u}/{p}/1/")), "{playlist}");
    let (status, body) = plays(&segment).await;
    assert_eq!((status, body), (200, true), "{segment}");

    // HDHomeRun: BaseURL, LineupURL and each channel's URL.
    let discover: serde_json::Value =
        reqwest::get(format!("{public}/hdhr/{u}/{p}/discover.json")).await.unwrap().json().await.unwrap();
    let base = discover["BaseURL"].as_str().unwrap();
    assert_eq!(base, format!("{public}/hdhr/{u}/{p}"), "{discover}");
    let lineup: serde_json::Value =
        reqwest::get(discover["LineupURL"].as_str().unwrap()).await.unwrap().json().await.unwrap();
    let first = lineup[0]["URL"].as_str().unwrap();
    assert!(first.starts_with(&format!("{public}/")), "{lineup}");
    assert_eq!(plays(first).await, (200, true), "{first}");

    // Xtream: server_info names the proxy (clients join it with the prefix they were given).
    let login: serde_json::Value =
        reqwest::get(format!("{public}/player_api.php?username={u}&password={p}")).await.unwrap().json().await.unwrap();
    let port = public.split(':').nth(2).unwrap().trim_end_matches("/tp");
    assert_eq!(login["server_info"]["url"], "127.0.0.1", "{login}");
    assert_eq!(login["server_info"]["port"], port, "{login}");
}
