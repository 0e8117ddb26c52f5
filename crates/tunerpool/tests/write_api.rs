//! The write API and account commands, against the simulated provider.

mod common;

use std::time::{Duration, Instant};

use common::{send, start_server, tunerpool};
use fakeprovider::{AccountSpec, FakeConfig, FakeProvider};
use serde_json::json;

const PW1: &str = "first/pa+ss$";
const PW2: &str = "second%pass";

fn fields(v: &serde_json::Value) -> Vec<String> {
    v["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn providers_and_accounts_over_the_api() {
    let fake = FakeProvider::start(FakeConfig::with_accounts(vec![
        AccountSpec::new("one", PW1, 1),
        AccountSpec::new("two", PW2, 2),
    ]))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tunerpool(dir.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(dir.path().join("data"));
    let server = start_server(cmd);
    assert_eq!(server.token.len(), 64, "a new token is printed at first start: {:?}", server.stdout);
    let api = |p: &str| format!("{}/api/v1{p}", server.base);
    let mut seen = String::new();
    let mut call = |m: &str, p: &str, b: Option<serde_json::Value>| {
        let (s, v, text) = send(&server.token, m, &api(p), b);
        seen.push_str(&text);
        (s, v)
    };

    // Bad input: every problem named.
    let (s, v) = call("POST", "/providers", Some(json!({"name": "P", "kind": "xtream", "url": "panel:80"})));
    assert_eq!(s, 400);
    assert_eq!(fields(&v), ["url", "username", "password"]);
    let (s, v) = call("POST", "/providers", Some(json!({"name": "P", "kind": "xtream", "max_streams": "two"})));
    assert_eq!((s, fields(&v)), (400, vec!["max_streams".to_string()]));
    let (s, v) = call("POST", "/providers", Some(json!({"name": "P", "kind": "xc2"})));
    assert_eq!((s, fields(&v)), (400, vec!["kind".to_string()]));
    let (s, v) = call("POST", "/providers", Some(json!({"name": "P", "passwd": "x"})));
    assert_eq!((s, fields(&v)), (400, vec!["passwd".to_string()]));

    // Add: 201, details of the primary fetched, first sync in the background.
    let (s, p) = call(
        "POST",
        "/providers",
        Some(json!({"name": "Fake", "kind": "xtream", "url": fake.url(), "username": "one", "password": PW1})),
    );
    assert_eq!(s, 201, "{p}");
    let pid = p["id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, p) = call("GET", &format!("/providers/{pid}"), None);
        if p["sync"]["ok"] == true {
            assert_eq!(p["sync"]["live"], 20);
            break;
        }
        assert!(Instant::now() < deadline, "first sync did not finish: {p}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, accounts) = call("GET", &format!("/providers/{pid}/accounts"), None);
    assert_eq!(accounts[0]["details"]["max_connections"], 1);

    // A second account: its limit is detected at once.
    let body = json!({"name": "Backup", "username": "two", "password": PW2, "priority": 2});
    let (s, a) = call("POST", &format!("/providers/{pid}/accounts"), Some(body.clone()));
    assert_eq!(s, 201, "{a}");
    assert_eq!(a["details"]["max_connections"], 2);
    let aid = a["id"].as_i64().unwrap();
    // The same username again: the state refuses it (409), naming the field.
    let (s, v) = call("POST", &format!("/providers/{pid}/accounts"), Some(body));
    assert_eq!((s, fields(&v)), (409, vec!["username".to_string()]));

    // PATCH: set, then clear, the manual limit.
    let (s, a) = call("PATCH", &format!("/accounts/{aid}"), Some(json!({"max_streams": 1})));
    assert_eq!((s, a["max_streams"].as_i64()), (200, Some(1)));
    let (_, a) = call("PATCH", &format!("/accounts/{aid}"), Some(json!({"max_streams": null})));
    assert!(a["max_streams"].is_null());
    let (s, v) = call("PATCH", &format!("/accounts/{aid}"), Some(json!({"max_streams": -1, "server_url": "x:1"})));
    assert_eq!((s, fields(&v)), (400, vec!["server_url".to_string(), "max_streams".to_string()]));

    // Test: saved and unsaved.
    let (s, r) = call("POST", &format!("/accounts/{aid}/test"), None);
    assert_eq!((s, r["ok"].as_bool(), r["max_connections"].as_i64()), (200, Some(true), Some(2)));
    assert_eq!(r["suggested_max_streams"], 2);
    let (_, r) =
        call("POST", "/accounts/test", Some(json!({"provider_id": pid, "username": "two", "password": "nope"})));
    assert_eq!(r["ok"], false);
    assert!(r["reason"].as_str().unwrap().contains("rejected"), "{r}");

    // Regex patterns are checked the way the pool applies them.
    let (s, v) = call(
        "PATCH",
        &format!("/accounts/{aid}"),
        Some(json!({"search_pattern": "(unclosed", "replace_pattern": "x"})),
    );
    assert_eq!((s, fields(&v)), (400, vec!["search_pattern".to_string()]), "{v}");
    let (s, v) =
        call("PATCH", &format!("/accounts/{aid}"), Some(json!({"search_pattern": "u1/(p1)", "replace_pattern": "$2"})));
    assert_eq!((s, fields(&v)), (400, vec!["replace_pattern".to_string()]), "{v}");
    let (s, v) = call("PATCH", &format!("/accounts/{aid}"), Some(json!({"search_pattern": "u1"})));
    assert_eq!(s, 400, "both or neither: {v}");

    // Pool status: limits with their origin, usage from the ledger, totals over enabled accounts.
    let (s, pool) = call("GET", &format!("/providers/{pid}/pool"), None);
    assert_eq!(s, 200, "{pool}");
    let accts = pool["accounts"].as_array().unwrap();
    assert_eq!(accts.len(), 2);
    assert_eq!(
        (accts[0]["max_streams"].as_u64(), accts[0]["max_streams_origin"].as_str()),
        (Some(1), Some("detected"))
    );
    assert_eq!((accts[1]["max_streams"].as_u64(), accts[1]["active"].as_u64()), (Some(2), Some(0)));
    assert!(accts.iter().all(|a| a["usable"] == true && a["days_left"].as_i64().unwrap() >= 29));
    assert_eq!(pool["totals"], json!({"capacity": 3, "active": 0, "available": 3}));
    let (_, all) = call("GET", "/pool", None);
    assert_eq!(all["totals"]["capacity"], 3);
    // A manual limit above the detected one does not raise it; below, it applies.
    call("PATCH", &format!("/accounts/{aid}"), Some(json!({"max_streams": 5})));
    let (_, pool) = call("GET", &format!("/providers/{pid}/pool"), None);
    assert_eq!(
        (pool["accounts"][1]["max_streams"].as_u64(), pool["accounts"][1]["max_streams_origin"].as_str()),
        (Some(2), Some("detected"))
    );
    call("PATCH", &format!("/accounts/{aid}"), Some(json!({"max_streams": 1, "enabled": false})));
    let (_, pool) = call("GET", &format!("/providers/{pid}/pool"), None);
    assert_eq!(pool["accounts"][1]["max_streams_origin"], "manual");
    assert_eq!(pool["totals"]["capacity"], 1, "disabled accounts do not count");
    call("PATCH", &format!("/accounts/{aid}"), Some(json!({"max_streams": null, "enabled": true})));

    // Sync now, delete.
    let (s, r) = call("POST", &format!("/providers/{pid}/sync"), None);
    assert_eq!((s, r["live"].as_i64()), (200, Some(20)));
    let primary = accounts[0]["id"].as_i64().unwrap();
    let (s, _) = call("DELETE", &format!("/accounts/{primary}"), None);
    assert_eq!(s, 409);
    let (s, _) = call("DELETE", &format!("/accounts/{aid}"), None);
    assert_eq!(s, 204);
    let (s, _) = call("PATCH", &format!("/providers/{pid}"), Some(json!({"name": "Renamed", "max_streams": 3})));
    assert_eq!(s, 200);
    let (s, _) = call("DELETE", &format!("/providers/{pid}"), None);
    assert_eq!(s, 204);
    let (s, _) = call("GET", &format!("/providers/{pid}"), None);
    assert_eq!(s, 404);

    for secret in [PW1, PW2, "first%2Fpa", "second%25pass"] {
        assert!(!seen.contains(secret), "a response contained {secret}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn account_test_command() {
    let fake = FakeProvider::start(FakeConfig::with_accounts(vec![AccountSpec::new("one", PW1, 3)])).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = tunerpool(dir.path())
        .args(["account", "test", "--url", &fake.url(), "--username", "one"])
        .env("TUNERPOOL_PROVIDER_PASSWORD", PW1)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((r["max_connections"].as_i64(), r["suggested_max_streams"].as_i64()), (Some(3), Some(3)));
    let out = tunerpool(dir.path())
        .args(["account", "test", "--url", &fake.url(), "--username", "one", "--password", "bad"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r["reason"].as_str().unwrap().contains("rejected"));
    let out = tunerpool(dir.path())
        .args(["account", "test", "--url", "http://127.0.0.1:1", "--username", "one", "--password", PW1])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cannot reach") && !text.contains("pa+ss") && !text.contains("pa%2Bss"), "{text}");
}
