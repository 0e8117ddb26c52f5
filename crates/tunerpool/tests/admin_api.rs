//! The admin API as a whole, against the real binary: the token (generated,
//! stored 0600, printed once), 401 on every documented route without it, the
//! OpenAPI document (parsed as OpenAPI 3.1, every reference resolves, every
//! operation routed), the open routes, and no password in any answer.

mod common;

use std::collections::BTreeSet;

use common::{first_live_events, send, start_server, tunerpool};
use fakeprovider::{AccountSpec, FakeConfig, FakeProvider};
use serde_json::{json, Value};

/// Downstream users' passwords (no characters that cannot travel in a URL).
const USER_PW1: &str = "Kim-Secret-9x";
const USER_PW2: &str = "Kim-Other-7q";
const PW1: &str = "primary/pa+ss$word";
const PW2: &str = "backup%pass&word";
const PW3: &str = "changed#Pass=word";

/// Every `/api/v1` operation the README documents; the OpenAPI document must have at least these.
const EXPECTED: &[(&str, &str)] = &[
    ("GET", "/api/v1/providers"),
    ("POST", "/api/v1/providers"),
    ("GET", "/api/v1/providers/{id}"),
    ("PATCH", "/api/v1/providers/{id}"),
    ("DELETE", "/api/v1/providers/{id}"),
    ("POST", "/api/v1/providers/{id}/sync"),
    ("POST", "/api/v1/providers/{id}/details"),
    ("GET", "/api/v1/providers/{id}/accounts"),
    ("POST", "/api/v1/providers/{id}/accounts"),
    ("GET", "/api/v1/providers/{id}/pool"),
    ("PATCH", "/api/v1/accounts/{id}"),
    ("DELETE", "/api/v1/accounts/{id}"),
    ("POST", "/api/v1/accounts/{id}/test"),
    ("POST", "/api/v1/accounts/test"),
    ("GET", "/api/v1/pool"),
    ("GET", "/api/v1/sessions"),
    ("DELETE", "/api/v1/sessions/{id}"),
    ("GET", "/api/v1/channels"),
    ("GET", "/api/v1/probes"),
    ("GET", "/api/v1/profiles"),
    ("GET", "/api/v1/history/sources"),
    ("POST", "/api/v1/probes"),
    ("GET", "/api/v1/groups"),
    ("GET", "/api/v1/live"),
    ("GET", "/api/v1/openapi.json"),
];

/// Every `$ref` in the document, wherever it is.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_api_is_guarded_documented_and_never_returns_a_password() {
    let fake = FakeProvider::start(FakeConfig::with_accounts(vec![
        AccountSpec::new("one", PW1, 1),
        AccountSpec::new("two", PW2, 2),
    ]))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut cmd = tunerpool(dir.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(&data);
    let server = start_server(cmd);
    let base = server.base.clone();
    let url = |p: &str| format!("{base}{p}");

    // The token: generated at first start, printed once, stored for the owner only.
    let token = server.token.clone();
    assert!(token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()), "{:?}", server.stdout);
    let file = data.join("admin-token");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert!(server.stdout.iter().any(|l| l.contains(&format!("stored in {}", file.display()))), "{:?}", server.stdout);

    // The document: OpenAPI 3.1 that parses, every reference resolves, bearer auth on every operation.
    let (status, doc, text) = send(&token, "GET", &url("/api/v1/openapi.json"), None);
    assert_eq!(status, 200);
    let spec = oas3::from_json(&text).unwrap_or_else(|e| panic!("not an OpenAPI 3.1 document: {e}"));
    spec.validate_version().expect("a supported OpenAPI version");
    let mut all_refs = Vec::new();
    refs(&doc, &mut all_refs);
    assert!(!all_refs.is_empty());
    for r in &all_refs {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(doc["components"]["schemas"][name].is_object(), "$ref {r} does not resolve");
    }
    assert_eq!(doc["components"]["securitySchemes"]["admin_token"]["scheme"], "bearer");
    assert_eq!(doc["security"], json!([{"admin_token": []}]));
    let ops: BTreeSet<(String, String)> =
        spec.operations().map(|(path, method, _)| (method.as_str().to_string(), path)).collect();
    for (m, p) in EXPECTED {
        assert!(ops.contains(&(m.to_string(), p.to_string())), "{m} {p} is not in the OpenAPI document");
    }
    let mut ids = BTreeSet::new();
    for (path, _, op) in spec.operations() {
        let responses = op.responses.as_ref().unwrap();
        assert!(responses.contains_key("401"), "{:?} does not document 401", op.operation_id);
        assert!(responses.contains_key("500"), "{:?} does not document 500", op.operation_id);
        let queried = op.parameters.iter().any(
            |p| !matches!(p, oas3::spec::ObjectOrReference::Object(p) if p.location == oas3::spec::ParameterIn::Path),
        );
        if queried || op.request_body.is_some() {
            assert!(responses.contains_key("400"), "{:?} takes input but does not document 400", op.operation_id);
        }
        if path.contains('{') {
            assert!(responses.contains_key("404"), "{:?} takes an id but does not document 404", op.operation_id);
        }
        let id = op.operation_id.clone().unwrap_or_else(|| panic!("{path}: no operationId"));
        assert!(ids.insert(id.clone()), "operationId {id} is used twice");
    }
    assert!(!text.contains("\"password\": \"") && !doc.to_string().contains(PW1));

    // Without the token (or with a wrong one, or another scheme) every documented operation is 401, in JSON.
    for (method, path) in &ops {
        let u = url(&path.replace("{id}", "1"));
        for t in ["", "wrong-token-0123456789abcdef"] {
            let (status, v, body) = send(t, method, &u, None);
            assert_eq!(status, 401, "{method} {path} with {t:?}: {body}");
            assert!(v["error"].as_str().is_some_and(|e| e.contains("admin token")), "{body}");
            assert_eq!(v["fields"][0]["field"], "Authorization", "{body}");
            assert!(t.is_empty() || !body.contains(t), "the wrong token is echoed: {body}");
        }
        let basic = reqwest::Client::new()
            .request(method.parse().unwrap(), &u)
            .header("Authorization", format!("Basic {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(basic.status(), 401, "{method} {path} with Basic");
        assert_eq!(basic.headers()["www-authenticate"], "Bearer");
    }

    // With it, every documented operation reaches its handler (not the JSON 404 of unknown API routes).
    for (method, path) in &ops {
        if path == "/api/v1/live" {
            continue; // an endless stream: read below
        }
        let (status, _, body) = send(&token, method, &url(&path.replace("{id}", "999999")), None);
        assert!(!body.contains("no API route") && status != 405, "{method} {path} is documented but not routed");
    }
    let (status, v, _) = send(&token, "GET", &url("/api/v1/nothing/here"), None);
    assert_eq!((status, v["error"].as_str().map(|e| e.contains("no API route"))), (404, Some(true)));
    let (status, _, _) = send("", "GET", &url("/api/v1/nothing/here"), None);
    assert_eq!(status, 401, "unknown API routes are for the admin too");

    // Open routes stay open: health and the UI. Metrics, the guide and the
    // admin's streams want the token (a 401 before any lookup).
    for (path, want, content_type) in [
        ("/healthz", 200, "application/json"),
        ("/", 200, "text/html"),
        ("/ui/app.js", 200, "text/javascript"),
        ("/ui/style.css", 200, "text/css"),
        ("/ui/nope.js", 404, "text/plain"),
        ("/metrics", 401, "text/plain"),
        ("/epg.xml", 401, "text/plain"),
        ("/stream/999999.ts", 401, "text/plain"),
    ] {
        let resp = reqwest::get(url(path)).await.unwrap();
        assert_eq!(resp.status().as_u16(), want, "{path}");
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with(content_type), "{path}");
    }
    for (path, want, content_type) in
        [("/metrics", 200, "text/plain; version=0.0.4"), ("/stream/999999.ts", 404, "text/plain")]
    {
        let resp = reqwest::Client::new().get(url(path)).bearer_auth(&token).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), want, "{path} with the token");
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with(content_type), "{path}");
    }

    // No answer ever carries a password: add, change and test accounts with known ones, then read everything.
    let mut seen = String::new();
    let mut call = |m: &str, p: &str, b: Option<Value>| {
        let (s, v, text) = send(&token, m, &url(p), b);
        seen.push_str(&text);
        (s, v)
    };
    let (s, p) = call(
        "POST",
        "/api/v1/providers",
        Some(json!({"name": "Fake", "kind": "xtream", "url": fake.url(), "username": "one", "password": PW1})),
    );
    assert_eq!(s, 201, "{p}");
    let pid = p["id"].as_i64().unwrap();
    let (s, a) = call(
        "POST",
        &format!("/api/v1/providers/{pid}/accounts"),
        Some(json!({"name": "Backup", "username": "two", "password": PW2})),
    );
    assert_eq!(s, 201, "{a}");
    let aid = a["id"].as_i64().unwrap();
    let (s, r) =
        call("POST", "/api/v1/accounts/test", Some(json!({"provider_id": pid, "username": "two", "password": PW2})));
    assert_eq!((s, r["max_connections"].as_i64()), (200, Some(2)), "{r}");
    call("POST", "/api/v1/accounts/test", Some(json!({"provider_id": pid, "username": "two", "password": PW3})));
    call(
        "POST",
        "/api/v1/accounts/test",
        Some(json!({"server_url": "http://127.0.0.1:1", "username": "x", "password": PW3})),
    );
    let (s, _) = call("PATCH", &format!("/api/v1/accounts/{aid}"), Some(json!({"password": PW3})));
    assert_eq!(s, 200);
    call("POST", &format!("/api/v1/accounts/{aid}/test"), None);
    call("PATCH", &format!("/api/v1/accounts/{aid}"), Some(json!({"password": PW2})));
    call("POST", &format!("/api/v1/providers/{pid}/sync"), None);
    call("POST", &format!("/api/v1/providers/{pid}/details"), None);
    // Bad input echoes field names, not values.
    let (s, _) = call("PATCH", &format!("/api/v1/accounts/{aid}"), Some(json!({"password": PW3, "max_streams": -1})));
    assert_eq!(s, 400);
    // A downstream user, with a known password too.
    let (s, u) =
        call("POST", "/api/v1/users", Some(json!({"username": "kim", "password": USER_PW1, "max_connections": 1})));
    assert_eq!(s, 201, "{u}");
    let uid = u["id"].as_i64().unwrap();
    let (s, _) = call("PATCH", &format!("/api/v1/users/{uid}"), Some(json!({"password": USER_PW2})));
    assert_eq!(s, 200);
    for (method, path) in ops.iter().filter(|(m, p)| m == "GET" && p != "/api/v1/live") {
        let id = if path.starts_with("/api/v1/users/") { uid } else { pid };
        let (s, _) = call(method, &path.replace("{id}", &id.to_string()), None);
        assert_eq!(s, 200, "GET {path}");
    }
    seen.push_str(&first_live_events(&base, &token).await);
    assert!(seen.contains("\"username\":\"two\""), "the answers were read");
    for secret in [PW1, PW2, PW3, USER_PW1, USER_PW2, "pa%2Bss", "pass%26word", "Pass%3Dword", &token] {
        assert!(!seen.contains(secret), "an API answer contained a secret ({})", secret.len());
    }
    drop(server);
}
