//! `/metrics` against the real binary: after a provider synced, its guide
//! was fetched and a downstream user watched a channel, the exposition
//! passes `promtool check metrics` (Debian package `prometheus`; the test
//! fails, never skips, without it) and carries the labelled series, with
//! no URL or credential among the label values.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{send, start_server, tunerpool};
use fakeprovider::{AccountSpec, FakeConfig, FakeProvider};
use futures_util::StreamExt;
use serde_json::json;

const PW: &str = "Metr1cs-Pw";
const USER_PW: &str = "Viewer-Pw-3";

/// `promtool check metrics` on `text`: its complaints, empty when clean.
fn promtool(text: &str) -> String {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is needed (apt-get install prometheus)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let complaints = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() || !complaints.is_empty(), "promtool failed without saying why");
    if out.status.success() {
        String::new()
    } else {
        complaints
    }
}

/// The samples of `name` (exact metric name), as whole lines.
fn samples<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with(['{', ' ']))).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_labelled_and_promtool_clean() {
    let fake = FakeProvider::start(FakeConfig::with_accounts(vec![AccountSpec::new("alice", PW, 2)])).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tunerpool(dir.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(dir.path().join("data"));
    let server = start_server(cmd);
    let (base, token) = (server.base.clone(), server.token.clone());
    let url = |p: &str| format!("{base}{p}");

    let provider = json!({"name": "Fake TV", "kind": "xtream", "url": fake.url(), "username": "alice", "password": PW});
    let (s, p, _) = send(&token, "POST", &url("/api/v1/providers"), Some(provider));
    assert_eq!(s, 201, "{p}");
    let pid = p["id"].as_i64().unwrap();
    let (s, r, _) = send(&token, "POST", &url(&format!("/api/v1/providers/{pid}/sync")), None);
    assert_eq!(s, 200, "{r}");
    let (s, r, _) = send(&token, "POST", &url(&format!("/api/v1/providers/{pid}/epg")), None);
    assert_eq!(s, 200, "{r}");
    let (s, _, _) = send(&token, "POST", &url("/api/v1/users"), Some(json!({"username": "kim", "password": USER_PW})));
    assert_eq!(s, 201);
    // A failed admin login and a failed client login.
    assert_eq!(send("wrong-token-0123456789", "GET", &url("/api/v1/pool"), None).0, 401);
    let bad = reqwest::get(url("/player_api.php?username=kim&password=nope")).await.unwrap();
    assert_eq!(bad.status(), 200);

    // Watch a channel: while it plays, scrape.
    let stream = reqwest::get(url(&format!("/live/kim/{USER_PW}/1.ts"))).await.unwrap();
    assert_eq!(stream.status(), 200);
    let mut body = stream.bytes_stream();
    for _ in 0..3 {
        tokio::time::timeout(Duration::from_secs(20), body.next()).await.expect("stream bytes").unwrap().unwrap();
    }
    // Metrics need the admin token (http.open_metrics is off), as Prometheus sends it.
    let resp = reqwest::Client::new().get(url("/metrics")).bearer_auth(&token).send().await.unwrap();
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = resp.text().await.unwrap();
    assert_eq!(promtool(&text), "", "promtool complains about:\n{text}");

    let account = r#"provider="Fake TV",account="Primary",account_id="1""#;
    for (name, want) in [
        ("tunerpool_account_slots_used", format!("{{{account}}} 1")),
        ("tunerpool_account_slots_max", format!("{{{account}}} 2")),
        ("tunerpool_provider_slots_used", r#"{provider="Fake TV"} 1"#.to_string()),
        ("tunerpool_sessions", format!(r#"{{kind="live",{account}}} 1"#)),
        ("tunerpool_viewers", format!("{{{account}}} 1")),
        ("tunerpool_sync_ok", r#"{provider="Fake TV"} 1"#.to_string()),
        ("tunerpool_catalog_items", r#"{provider="Fake TV",kind="live"} 20"#.to_string()),
        ("tunerpool_guide_ok", r#"{provider="Fake TV"} 1"#.to_string()),
        ("tunerpool_login_failures_total", r#"{reason="admin_token"} 1"#.to_string()),
        ("tunerpool_login_failures_total", r#"{reason="bad_credentials"} 1"#.to_string()),
        ("tunerpool_http_requests_total", r#"{route="/live/{u}/{p}/{file}",method="GET",status="200"} 1"#.to_string()),
        ("tunerpool_events_dropped_total", " 0".to_string()),
    ] {
        let lines = samples(&text, name);
        assert!(lines.iter().any(|l| l.ends_with(&want) || *l == format!("{name}{want}")), "{name}{want} in {lines:?}");
    }
    for name in [
        "tunerpool_upstream_received_bytes_total",
        "tunerpool_viewer_sent_bytes_total",
        "tunerpool_sync_last_success_timestamp_seconds",
        "tunerpool_sync_duration_seconds",
        "tunerpool_guide_last_success_timestamp_seconds",
        "tunerpool_guide_size_bytes",
    ] {
        let lines = samples(&text, name);
        let value = |l: &&str| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()).unwrap_or(0.0);
        assert!(lines.iter().any(|l| l.contains(r#"provider="Fake TV""#) && value(l) > 0.0), "{name}: {lines:?}");
    }
    // Label values are names, ids, reasons and routes: no URL, no credential.
    for bad in [PW, USER_PW, "alice", "http://", &token] {
        assert!(!text.contains(bad), "the exposition holds {bad:?}");
    }
    // A Prometheus server asks for OpenMetrics and gets it.
    let om = reqwest::Client::new()
        .get(url("/metrics"))
        .bearer_auth(&token)
        .header("accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
        .send()
        .await
        .unwrap();
    assert!(om.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    assert!(om.text().await.unwrap().ends_with("# EOF\n"));
    drop(body);
}
