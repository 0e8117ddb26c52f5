//! Who may use what, over real sockets against the simulated provider.
//!
//! Every route the server answers — read from its own route table and the
//! OpenAPI document, so a new one cannot slip by — is called without
//! credentials (and with a real user's wrong password): none answers with
//! content, none spends a provider slot. The admin token opens the admin's
//! streams and metrics; the anonymous opt-in opens streams under its own
//! limit; a client's 503 names no account.

mod common;

use std::time::Duration;

use common::{admin_get, gateway, TOKEN};
use futures_util::StreamExt;
use serde_json::Value;
use tunerpool_http::realip::{ClientIpHeader, TrustedProxies};
use tunerpool_http::Gate;
use tunerpool_relay::settings::RelaySettings;
use tunerpool_relay::UserLimitPolicy;

/// `path` with its parameters filled in with values that exist (channel 1,
/// the UI's app.js), for the user `u` with password `p`.
fn fill(path: &str, u: &str, p: &str) -> String {
    let channel = if path.starts_with("/hdhr/") || path.starts_with("/auto/") { "v1" } else { "1.ts" };
    let file = match path {
        "/ui/{file}" => "app.js",
        "/stream/{channel}/hls/{file}" | "/hls/{u}/{p}/{id}/{file}" => "0.ts",
        _ => "1.ts",
    };
    path.replace("{channel}", channel)
        .replace("{file}", file)
        .replace("{u}", u)
        .replace("{p}", p)
        .replace("{id}", "1")
        .replace("{duration}", "60")
        .replace("{start}", "2026-11-20:21-00")
        .replace("{*rest}", "nothing")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_answers_or_spends_a_slot_without_credentials() {
    // Trust the test's own address as a proxy so that each request can come
    // from an address of its own: the failed-login limit must not be what
    // refuses them.
    let g = gateway(RelaySettings::default(), |st| {
        st.access.proxies = TrustedProxies::new(vec!["127.0.0.1/32".parse().unwrap()], ClientIpHeader::XForwardedFor)
    })
    .await;
    g.user("kim", "k1m", 0).await;
    let table = tunerpool_http::route_table();
    assert!(table.len() > 40, "{} routes", table.len());
    for (path, gate) in &table {
        let want = match path.as_str() {
            "/healthz" | "/" | "/ui/{file}" => Gate::Open,
            "/metrics" => Gate::Metrics,
            "/internal/v1/live/{channel}" | "/internal/v1/sessions/{id}" => Gate::Cluster,
            p if p.starts_with("/api/v1/") => Gate::Admin,
            "/stream/{channel}"
            | "/stream/{channel}/hls/{file}"
            | "/movie/{file}"
            | "/series/{file}"
            | "/epg.xml"
            | "/epg.xml.gz" => Gate::Stream,
            // The HDHomeRun tuner at the root: 404 here (no hdhomerun.root_user).
            "/discover.json"
            | "/lineup.json"
            | "/lineup_status.json"
            | "/lineup.post"
            | "/device.xml"
            | "/auto/{channel}" => Gate::RootTuner,
            _ => Gate::User,
        };
        assert_eq!(*gate, want, "{path}");
    }

    let client = reqwest::Client::new();
    let mut n = 0u32;
    let mut open = Vec::new();
    for (path, gate) in &table {
        // No user at all, and a real user with a wrong password.
        for (u, p) in [("nobody", "x"), ("kim", "wrong")] {
            for method in ["GET", "POST"] {
                n += 1;
                let url = format!("{}{}?username={u}&password={p}", g.base, fill(path, u, p));
                let resp = client
                    .request(method.parse().unwrap(), &url)
                    .header("x-forwarded-for", format!("198.51.{}.{}", n / 250, n % 250 + 1))
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                let expected = if *gate == Gate::Open && method == "GET" {
                    open.push(path.clone());
                    status == 200
                } else {
                    // Xtream clients expect 200 with auth 0 for bad credentials.
                    [401, 403, 404, 405].contains(&status) || (path == "/player_api.php" && status == 200)
                };
                // Checked before the body is read: a stream that got through never ends.
                assert!(expected, "{method} {url} answered {status} without credentials");
                let body = tokio::time::timeout(Duration::from_secs(10), resp.text()).await.unwrap().unwrap();
                if path == "/player_api.php" && status == 200 {
                    assert_eq!(body, r#"{"user_info":{"auth":0}}"#, "{method} {url}");
                }
                assert!(!body.contains("Channel 1") && !body.contains("#EXTM3U"), "{method} {url}: {body}");
            }
        }
    }
    open.dedup();
    assert_eq!(open, ["/healthz", "/", "/ui/{file}"], "the only open routes");
    assert!(g.state.relay.sessions().is_empty(), "{:?}", g.state.relay.sessions());
    assert_eq!(g.provider_connections(), 0, "a provider slot was spent without credentials");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_token_opens_the_admins_routes_and_clients_503_names_no_account() {
    let settings = RelaySettings { acquire_wait: Duration::from_millis(300), ..RelaySettings::default() };
    let g = gateway(settings, |_| {}).await;
    g.user("kim", "k1m", 0).await;
    let wrong = reqwest::Client::new().get(format!("{}/stream/1.ts", g.base)).bearer_auth("not-the-token");
    assert_eq!(wrong.send().await.unwrap().status(), 401);
    assert_eq!(reqwest::get(format!("{}/metrics", g.base)).await.unwrap().status(), 401);
    let metrics = admin_get(format!("{}/metrics", g.base)).await.unwrap();
    assert_eq!(metrics.status(), 200);
    assert_eq!(admin_get(format!("{}/epg.xml", g.base)).await.unwrap().status(), 200);

    // The admin's stream and a user's take both accounts.
    let admin = admin_get(format!("{}/stream/1.ts", g.base)).await.unwrap();
    assert_eq!(admin.status(), 200);
    let mut admin = admin.bytes_stream();
    assert_eq!(admin.next().await.unwrap().unwrap()[0], 0x47);
    let user = reqwest::get(format!("{}/live/kim/k1m/2.ts", g.base)).await.unwrap();
    assert_eq!(user.status(), 200);
    // No slot left: the user is told so without the accounts behind the pool…
    let refused = reqwest::get(format!("{}/live/kim/k1m/3.ts", g.base)).await.unwrap();
    assert_eq!(refused.status(), 503);
    let text = refused.text().await.unwrap();
    assert!(text.contains("no free connection"), "{text}");
    for secret in ["Fake", "Primary", "1/1", " b "] {
        assert!(!text.contains(secret), "the client's 503 names {secret:?}: {text}");
    }
    // …the admin with them.
    let refused = admin_get(format!("{}/stream/3.ts", g.base)).await.unwrap();
    assert_eq!(refused.status(), 503);
    let text = refused.text().await.unwrap();
    assert!(text.contains("Fake") && text.contains("1/1"), "{text}");
    drop((admin, user));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_streams_are_an_opt_in_with_their_own_limit() {
    let settings = RelaySettings {
        acquire_wait: Duration::from_millis(300),
        user_limit_policy: UserLimitPolicy::Refuse,
        ..RelaySettings::default()
    };
    let g = gateway(settings, |st| {
        st.access.anonymous_streams = true;
        st.access.anonymous_max_connections = 1;
        st.access.open_metrics = true;
    })
    .await;
    let first = reqwest::get(format!("{}/stream/1.ts", g.base)).await.unwrap();
    assert_eq!(first.status(), 200);
    let mut first = first.bytes_stream();
    assert_eq!(first.next().await.unwrap().unwrap()[0], 0x47);
    // The anonymous viewers share one limit, like a user's own.
    for path in ["/stream/2.ts", "/movie/1.mp4"] {
        let refused = reqwest::get(format!("{}{path}", g.base)).await.unwrap();
        assert_eq!(refused.status(), 403, "{path}");
        let why = refused.text().await.unwrap();
        assert!(why.contains("anonymous") && why.contains("limit of 1 connection"), "{path}: {why}");
    }
    let sessions = g.state.relay.sessions();
    let viewers: Vec<_> = sessions.iter().flat_map(|s| s.viewers.iter()).collect();
    assert_eq!(viewers.len(), 1, "{sessions:?}");
    assert_eq!(viewers[0].user.as_deref(), Some("anonymous"));
    // The guide and (opted in too) metrics are open; the admin has no limit of its own.
    assert_eq!(reqwest::get(format!("{}/epg.xml", g.base)).await.unwrap().status(), 200);
    assert_eq!(reqwest::get(format!("{}/metrics", g.base)).await.unwrap().status(), 200);
    let admin = admin_get(format!("{}/stream/2.ts", g.base)).await.unwrap();
    assert_eq!(admin.status(), 200);
    // A wrong token is still refused: it is not "no token".
    let wrong = reqwest::Client::new().get(format!("{}/stream/2.ts", g.base)).bearer_auth("nope");
    assert_eq!(wrong.send().await.unwrap().status(), 401);
    // The anonymous slot comes back when its stream ends.
    drop(first);
    let _again = tunerpool_testkit::eventually("the anonymous limit given back", Duration::from_secs(5), || async {
        let resp = reqwest::get(format!("{}/stream/2.ts", g.base)).await.unwrap();
        (resp.status() == 200).then_some(resp)
    })
    .await;
    let sessions: Value = serde_json::to_value(g.state.relay.sessions()).unwrap();
    assert!(!sessions.to_string().contains(TOKEN));
}
