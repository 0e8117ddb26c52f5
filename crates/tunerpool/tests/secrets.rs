//! No secret leaves the gateway: with M3U providers whose URLs carry
//! credentials in every form (`user:pass@`, `get.php?username=&password=`,
//! `?token=`), a downstream user logging in and watching, the HDHomeRun
//! tuner at the root serving as that user, and the server logging at debug
//! level, every API answer (every route of the OpenAPI document, the live
//! events, the root tuner's) and every log line is searched for every
//! secret.

mod common;

use std::time::Duration;

use common::{first_live_events, send, start_server_with_stderr, tunerpool};
use fakeprovider::{AccountSpec, FakeConfig, FakeProvider};
use futures_util::StreamExt;
use serde_json::{json, Value};

/// The provider account's password (in `get.php?password=` and in the stream URLs of its playlist).
const PROVIDER_PW: &str = "Prov1derPw-9q";
/// Userinfo passwords of the two playlist URLs.
const USERINFO_PW: &str = "Us3rinfoPw-4x";
const OTHER_PW: &str = "Oth3rPw-7k";
/// A token in a query.
const TOKEN: &str = "T0kenValue-2m";
/// The downstream user's password.
const USER_PW: &str = "Kim-Secret-9x";

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_in_any_api_answer_or_log_line() {
    let fake =
        FakeProvider::start(FakeConfig::with_accounts(vec![AccountSpec::new("alice", PROVIDER_PW, 2)])).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log_path = dir.path().join("server.log");
    let mut cmd = tunerpool(dir.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--log-level", "debug", "--set", "hdhomerun.root_user=kim"])
        .arg("--data-dir")
        .arg(&data);
    let server = start_server_with_stderr(cmd, std::fs::File::create(&log_path).unwrap().into());
    let base = server.base.clone();
    let token = server.token.clone();
    let url = |p: &str| format!("{base}{p}");
    // Everything the API answered.
    let seen = std::cell::RefCell::new(String::new());
    let call = |m: &str, p: &str, b: Option<Value>| {
        let (s, v, text) = send(&token, m, &url(p), b);
        seen.borrow_mut().push_str(&text);
        seen.borrow_mut().push('\n');
        (s, v)
    };

    // An M3U provider with credentials in the userinfo and the query; its
    // playlist names a guide and streams with the account's credentials.
    let host = fake.url().trim_start_matches("http://").to_string();
    let playlist = format!(
        "http://alice:{USERINFO_PW}@{host}/get.php?username=alice&password={PROVIDER_PW}&type=m3u_plus&output=ts"
    );
    let (s, a) = call("POST", "/api/v1/providers", Some(json!({"name": "Creds M3U", "kind": "m3u", "url": playlist})));
    assert_eq!(s, 201, "{a}");
    let pa = a["id"].as_i64().unwrap();
    // One that cannot be reached: its sync error (API, events) names the URL.
    let unreachable = format!("http://bob:{OTHER_PW}@127.0.0.1:1/list.m3u?token={TOKEN}");
    let (s, b) =
        call("POST", "/api/v1/providers", Some(json!({"name": "Down M3U", "kind": "m3u", "url": unreachable})));
    assert_eq!(s, 201, "{b}");
    let pb = b["id"].as_i64().unwrap();
    let (s, r) = call("POST", &format!("/api/v1/providers/{pa}/sync"), None);
    assert_eq!(s, 200, "{r}");
    assert!(!r["epg_urls"].as_array().unwrap().is_empty(), "the playlist names a guide: {r}");
    call("POST", &format!("/api/v1/providers/{pb}/sync"), None);
    let (s, g) = call("POST", &format!("/api/v1/providers/{pa}/epg"), None);
    assert_eq!(s, 200, "{g}");

    // A downstream user logs in through every output and watches a channel.
    let (s, u) = call("POST", "/api/v1/users", Some(json!({"username": "kim", "password": USER_PW})));
    assert_eq!(s, 201, "{u}");
    let uid = u["id"].as_i64().unwrap();
    let (_, channels) = call("GET", "/api/v1/channels", None);
    let channel = channels["items"][0]["id"].as_i64().unwrap();
    for path in [
        format!("/get.php?username=kim&password={USER_PW}&type=m3u_plus"),
        format!("/player_api.php?username=kim&password={USER_PW}"),
        format!("/player_api.php?username=kim&password={USER_PW}&action=get_live_streams"),
        format!("/hdhr/kim/{USER_PW}/discover.json"),
        format!("/xmltv.php?username=kim&password={USER_PW}"),
        "/player_api.php?username=kim&password=wrong-one".to_string(),
    ] {
        // Not searched: a user's own playlist carries its password by design.
        let resp = reqwest::get(url(&path)).await.unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
    }
    // The HDHomeRun tuner at the root serves as kim without its password, so
    // its answers are searched like the API's.
    for path in ["/discover.json", "/lineup.json", "/device.xml", "/lineup_status.json"] {
        let resp = reqwest::get(url(path)).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let text = resp.text().await.unwrap();
        seen.borrow_mut().push_str(&text);
        seen.borrow_mut().push('\n');
    }
    let stream = reqwest::get(url(&format!("/live/kim/{USER_PW}/{channel}.ts"))).await.unwrap();
    assert_eq!(stream.status(), 200);
    let mut body = stream.bytes_stream();
    tokio::time::timeout(Duration::from_secs(20), body.next()).await.expect("stream bytes").unwrap().unwrap();

    // While it plays: every GET of the document, for every id, and the live events.
    let (_, doc, _) = send(&token, "GET", &url("/api/v1/openapi.json"), None);
    let mut gets: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(p, ops)| ops.get("get").is_some() && p.as_str() != "/api/v1/live")
        .map(|(p, _)| p.clone())
        .collect();
    gets.sort();
    for path in &gets {
        for id in [pa, pb, uid] {
            let (s, _) = call("GET", &path.replace("{id}", &id.to_string()), None);
            assert!(s == 200 || s == 404, "GET {path}: {s}");
        }
    }
    let (_, sessions) = call("GET", "/api/v1/sessions", None);
    let upstream = sessions[0]["upstream"]["url"].as_str().unwrap_or_default().to_string();
    assert!(upstream.contains("/live/***/***/"), "the session shows its upstream, masked: {sessions}");
    let (_, events) = call("GET", "/api/v1/events", None);
    assert!(events.to_string().contains("127.0.0.1:1"), "the failed sync is in the events: {events}");
    let live = first_live_events(&base, &token).await;
    seen.borrow_mut().push_str(&live);
    drop(body);
    let metrics = reqwest::Client::new().get(url("/metrics")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let metrics = metrics.text().await.unwrap();
    seen.borrow_mut().push_str(&metrics);

    drop(server);
    let seen = seen.into_inner();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("upstream selected"), "the server logged at debug level:\n{log}");
    assert!(log.contains("DEBUG"), "the server logged at debug level");
    for secret in [PROVIDER_PW, USERINFO_PW, OTHER_PW, TOKEN, USER_PW, &token] {
        let api = contexts(&seen, secret);
        let logged = contexts(&log, secret);
        assert!(api.is_empty(), "API answers hold a secret {} times, e.g.:\n{}", api.len(), api.join("\n"));
        assert!(logged.is_empty(), "log lines hold a secret {} times, e.g.:\n{}", logged.len(), logged.join("\n"));
    }
}

/// Up to 5 places where `secret` occurs in `text`, with 80 characters around
/// each (the secret itself shown as `<SECRET>`).
fn contexts(text: &str, secret: &str) -> Vec<String> {
    text.match_indices(secret)
        .take(5)
        .map(|(i, _)| {
            // (str::floor/ceil_char_boundary would do, but need Rust 1.91.)
            let mut start = i.saturating_sub(80);
            while !text.is_char_boundary(start) {
                start -= 1;
            }
            let mut end = (i + secret.len() + 80).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            text[start..end].replace(secret, "<SECRET>")
        })
        .collect()
}
