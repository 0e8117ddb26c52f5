//! The log of a short session, read as an operator would read a log file:
//! an access line per request (route, never the raw URI; status, bytes,
//! duration, client, user), a line when a stream starts and stops (user,
//! channel, account, client), plain text without colour codes when it is
//! not a terminal, and no password anywhere.

mod common;

use std::time::Duration;

use common::{send, start_server_with_stderr, tunerpool};
use fakeprovider::{AccountSpec, FakeConfig, FakeProvider};
use futures_util::StreamExt;
use serde_json::json;

const PROVIDER_PW: &str = "Prov1der-Log-8z";
const USER_PW: &str = "Kim-Log-Secret-3q";

/// The `key=value` of a log line (values may be quoted).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[at..];
    Some(rest.split(' ').next().unwrap_or_default().trim_matches('"'))
}

#[tokio::test(flavor = "multi_thread")]
async fn access_lines_plain_text_and_no_password() {
    let fake =
        FakeProvider::start(FakeConfig::with_accounts(vec![AccountSpec::new("alice", PROVIDER_PW, 2)])).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let mut cmd = tunerpool(dir.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(dir.path().join("data"));
    let mut server = start_server_with_stderr(cmd, std::fs::File::create(&log_path).unwrap().into());
    let (base, token) = (server.base.clone(), server.token.clone());
    let url = |p: &str| format!("{base}{p}");

    let provider =
        json!({"name": "Log TV", "kind": "xtream", "url": fake.url(), "username": "alice", "password": PROVIDER_PW});
    let (s, p, _) = send(&token, "POST", &url("/api/v1/providers"), Some(provider));
    assert_eq!(s, 201, "{p}");
    let (s, u, _) = send(&token, "POST", &url("/api/v1/users"), Some(json!({"username": "kim", "password": USER_PW})));
    assert_eq!(s, 201, "{u}");

    let playlist = reqwest::get(url(&format!("/get.php?username=kim&password={USER_PW}&type=m3u_plus"))).await.unwrap();
    assert_eq!(playlist.status(), 200);
    let playlist_bytes = playlist.bytes().await.unwrap().len();
    let stream = reqwest::get(url(&format!("/live/kim/{USER_PW}/1.ts"))).await.unwrap();
    assert_eq!(stream.status(), 200);
    let mut body = stream.bytes_stream();
    let mut got = 0;
    while got < 100_000 {
        got += tokio::time::timeout(Duration::from_secs(20), body.next()).await.expect("bytes").unwrap().unwrap().len();
    }
    drop(body);
    let wrong = reqwest::get(url("/live/kim/not-the-password/1.ts")).await.unwrap();
    assert_eq!(wrong.status(), 401);
    // The stream's line is written when the gateway notices the client left.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let written = |l: &str| l.contains("route=/live/{u}/{p}/{file} status=200") && l.contains("stream stopped");
    while !written(&std::fs::read_to_string(&log_path).unwrap()) {
        assert!(std::time::Instant::now() < deadline, "no access line for the stream");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(server.terminate());
    let log = std::fs::read_to_string(&log_path).unwrap();

    assert!(!log.contains('\u{1b}'), "colour codes in a log file:\n{log}");
    for secret in [USER_PW, PROVIDER_PW, &token] {
        assert!(!log.contains(secret), "the log holds a secret");
    }
    let access: Vec<&str> = log.lines().filter(|l| l.contains("tunerpool::access")).collect();
    let find = |route: &str, status: &str| {
        access
            .iter()
            .find(|l| field(l, "route") == Some(route) && field(l, "status") == Some(status))
            .unwrap_or_else(|| panic!("no access line for {route} {status}:\n{}", access.join("\n")))
    };
    let line = find("/get.php", "200");
    assert_eq!(field(line, "user"), Some("kim"), "{line}");
    assert_eq!(field(line, "client"), Some("127.0.0.1"), "{line}");
    assert_eq!(field(line, "bytes"), Some(playlist_bytes.to_string().as_str()), "{line}");
    assert_eq!(field(line, "complete"), Some("true"), "{line}");
    let line = find("/live/{u}/{p}/{file}", "200");
    assert_eq!(field(line, "user"), Some("kim"), "{line}");
    assert!(field(line, "bytes").unwrap().parse::<usize>().unwrap() >= got, "{line}");
    assert_eq!(field(line, "complete"), Some("false"), "the viewer left mid-stream: {line}");
    let line = find("/live/{u}/{p}/{file}", "401");
    assert_eq!(field(line, "user"), Some("-"), "{line}");
    // The stream's own lines: who watched which channel, through which account, from where.
    for what in ["stream started", "stream stopped"] {
        let line = log
            .lines()
            .find(|l| l.contains("tunerpool::stream") && l.contains(what))
            .unwrap_or_else(|| panic!("no \"{what}\" line:\n{log}"));
        assert_eq!(field(line, "user"), Some("kim"), "{line}");
        assert_eq!(field(line, "account"), Some("Primary"), "{line}");
        assert!(field(line, "client").is_some_and(|c| c.starts_with("127.0.0.1:")), "{line}");
        assert!(field(line, "channel").is_some_and(|c| !c.is_empty() && c != "-"), "{line}");
    }
    let stopped = log.lines().find(|l| l.contains("stream stopped")).unwrap();
    assert!(field(stopped, "bytes").unwrap().parse::<usize>().unwrap() >= got, "{stopped}");
    let line = find("/api/v1/users", "201");
    assert_eq!(field(line, "user"), Some("admin"), "{line}");
    assert!(field(line, "ms").unwrap().parse::<u64>().is_ok(), "{line}");
}
