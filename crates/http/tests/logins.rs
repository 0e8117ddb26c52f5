//! Client logins under attack, over real sockets: parallel wrong passwords
//! are limited from their start and never run more argon2 checks at once
//! than allowed; an unknown username costs a check like a wrong password;
//! checks beyond capacity are refused with 503; `X-Forwarded-For` is
//! believed only from a trusted proxy.

mod common;

use std::time::{Duration, Instant};

use common::{api_client, gateway};
use serde_json::Value;
use tunerpool_catalog::users::PasswordChecks;
use tunerpool_http::realip::{ClientIpHeader, TrustedProxies};
use tunerpool_http::ClientAuth;
use tunerpool_relay::settings::RelaySettings;

fn trusting_loopback() -> TrustedProxies {
    TrustedProxies::new(vec!["127.0.0.1/32".parse().unwrap()], ClientIpHeader::XForwardedFor)
}

/// `player_api.php` as `user`/`password`, from `forwarded_for` if given:
/// the status and the body.
async fn login(base: &str, user: &str, password: &str, forwarded_for: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().get(format!("{base}/player_api.php?username={user}&password={password}"));
    if let Some(ip) = forwarded_for {
        req = req.header("x-forwarded-for", ip);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

fn authenticated(body: &str) -> bool {
    serde_json::from_str::<Value>(body).is_ok_and(|v| v["user_info"]["auth"] == 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_wrong_passwords_are_limited_from_their_start_and_checks_are_bounded() {
    let g = gateway(RelaySettings::default(), |st| {
        st.logins = ClientAuth::new(PasswordChecks::new(2, Duration::from_secs(5))).into();
    })
    .await;
    g.user("kim", "k1m", 0).await;
    // A brute force: 100 different wrong passwords at once.
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let base = g.base.clone();
            tokio::spawn(async move { login(&base, "kim", &format!("wrong{i}"), None).await })
        })
        .collect();
    let (mut limited, mut refused) = (0, 0);
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            429 => limited += 1,
            200 => {
                assert_eq!(body, r#"{"user_info":{"auth":0}}"#);
                refused += 1;
            }
            other => panic!("{other}: {body}"),
        }
    }
    let checks = g.state.logins.checks();
    assert!(checks.peak() <= 2, "{} argon2 checks ran at once", checks.peak());
    assert!(checks.done() <= 10, "{} checks ran for one address", checks.done());
    assert_eq!(refused as u64, checks.done(), "every answer that was not a 429 ran a check");
    assert!(limited >= 90, "only {limited} of 100 got 429");
    // The address is blocked now, even for the right password.
    assert_eq!(login(&g.base, "kim", "k1m", None).await.0, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_right_passwords_share_one_check_and_all_get_in() {
    // A player (or a Plex server) opening many streams at once, nothing cached yet.
    let g = gateway(RelaySettings::default(), |st| {
        st.logins = ClientAuth::new(PasswordChecks::new(2, Duration::from_secs(5))).into();
    })
    .await;
    g.user("kim", "k1m", 0).await;
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let base = g.base.clone();
            tokio::spawn(async move { login(&base, "kim", "k1m", None).await })
        })
        .collect();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert!(status == 200 && authenticated(&body), "{status}: {body}");
    }
    let done = g.state.logins.checks().done();
    assert!(done <= 3, "{done} checks for one user's 100 parallel logins");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_user_costs_a_check_like_a_wrong_password() {
    let g = gateway(RelaySettings::default(), |_| {}).await;
    g.user("kim", "k1m", 0).await;
    let checks = || g.state.logins.checks().done();
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..4 {
        let before = checks();
        let t = Instant::now();
        assert!(!authenticated(&login(&g.base, "kim", "wrong", None).await.1));
        known.push(t.elapsed());
        assert_eq!(checks(), before + 1);
        let t = Instant::now();
        assert!(!authenticated(&login(&g.base, "nobody", "wrong", None).await.1));
        unknown.push(t.elapsed());
        assert_eq!(checks(), before + 2, "the unknown user's password was checked too");
    }
    // And it shows: not the 50x difference there was (generous bound, the machine is shared).
    known.sort();
    unknown.sort();
    assert!(unknown[1] * 4 >= known[1], "unknown user {unknown:?}, wrong password {known:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_beyond_capacity_wait_briefly_then_get_503() {
    // One check at a time, 100 ms to start: a burst from many addresses
    // (each under its own limit) cannot all be checked.
    let g = gateway(RelaySettings::default(), |st| {
        st.logins = ClientAuth::new(PasswordChecks::new(1, Duration::from_millis(100))).into();
        st.access.proxies = trusting_loopback();
    })
    .await;
    g.user("kim", "k1m", 0).await;
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let base = g.base.clone();
            tokio::spawn(async move {
                let mut req = reqwest::Client::new()
                    .get(format!("{base}/player_api.php?username=kim&password=wrong{i}"))
                    .header("x-forwarded-for", format!("203.0.113.{}", i + 1));
                req = req.timeout(Duration::from_secs(60));
                let resp = req.send().await.unwrap();
                (resp.status().as_u16(), resp.headers().get("retry-after").cloned())
            })
        })
        .collect();
    let mut busy = 0;
    for t in tasks {
        let (status, retry_after) = t.await.unwrap();
        assert!(status == 200 || status == 503, "{status}");
        if status == 503 {
            busy += 1;
            assert_eq!(retry_after.unwrap(), "1");
        }
    }
    assert!(busy > 0, "40 checks, one at a time, 100 ms to start: some must be refused");
    assert_eq!(g.state.logins.checks().peak(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let g = gateway(RelaySettings::default(), |_| {}).await;
    g.user("kim", "k1m", 0).await;
    // Ten wrong passwords, each claiming another address: all count against the peer.
    for i in 1..=10 {
        login(&g.base, "kim", "wrong", Some(&format!("198.51.100.{i}"))).await;
    }
    let (status, _) = login(&g.base, "kim", "k1m", Some("198.51.100.99")).await;
    assert_eq!(status, 429, "a spoofed X-Forwarded-For escaped the limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_from_a_trusted_proxy_is_the_client() {
    let g = gateway(RelaySettings::default(), |st| st.access.proxies = trusting_loopback()).await;
    g.user("kim", "k1m", 0).await;
    for _ in 0..10 {
        login(&g.base, "kim", "wrong", Some("203.0.113.1")).await;
    }
    // That client is blocked; another behind the same proxy is not.
    assert_eq!(login(&g.base, "kim", "k1m", Some("203.0.113.1")).await.0, 429);
    let (status, body) = login(&g.base, "kim", "k1m", Some("203.0.113.2")).await;
    assert!(status == 200 && authenticated(&body), "{status} {body}");
    // What the client wrote itself (left of what the proxy appended) is not believed.
    let (status, _) = login(&g.base, "kim", "k1m", Some("203.0.113.2, 203.0.113.1")).await;
    assert_eq!(status, 429);

    // The sessions show the client, not the proxy.
    let stream = reqwest::Client::new()
        .get(format!("{}/live/kim/k1m/1.ts", g.base))
        .header("x-forwarded-for", "6.6.6.6, 203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let sessions: Value =
        api_client().get(format!("{}/api/v1/sessions", g.base)).send().await.unwrap().json().await.unwrap();
    let address = sessions[0]["viewers"][0]["address"].as_str().unwrap();
    assert!(address.starts_with("203.0.113.9:"), "{sessions}");
    drop(stream);
}

/// A stream request's status; on 200, the first bytes are read and must be TS.
async fn stream_status(base: &str, path: &str) -> u16 {
    let mut resp = reqwest::get(format!("{base}{path}")).await.unwrap();
    let status = resp.status().as_u16();
    if status == 200 {
        let first = tokio::time::timeout(Duration::from_secs(10), resp.chunk()).await.unwrap().unwrap().unwrap();
        assert_eq!(first.first(), Some(&0x47), "{path}: not TS");
    }
    status
}

/// A user's id, read from the store as it is now.
async fn user_id(g: &common::Gateway, username: &str) -> i64 {
    g.state.store.user_by_name(username).await.unwrap().unwrap().id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_or_deleted_user_is_refused_on_its_very_next_stream_request() {
    let g = gateway(RelaySettings::default(), |_| {}).await;
    g.user("kim", "k1m", 0).await;
    g.user("lee", "l33", 0).await;
    // Both watch a running channel: their logins, users and the channel's
    // visibility are all cached now.
    let mut held = reqwest::get(format!("{}/live/kim/k1m/1.ts", g.base)).await.unwrap();
    assert_eq!(held.status(), 200);
    held.chunk().await.unwrap().unwrap();
    assert_eq!(stream_status(&g.base, "/live/kim/k1m/1.ts").await, 200);
    assert_eq!(stream_status(&g.base, "/live/lee/l33/1.ts").await, 200);
    let (kim, lee) = (user_id(&g, "kim").await, user_id(&g, "lee").await);

    // Disabled through the store itself (no API handler to drop anything).
    let off = tunerpool_catalog::UserPatch { enabled: Some(false), ..Default::default() };
    g.state.store.update_user(kim, &off).await.unwrap();
    assert_eq!(stream_status(&g.base, "/live/kim/k1m/1.ts").await, 403);
    assert_eq!(stream_status(&g.base, "/kim/k1m/1").await, 403, "the short form too");
    assert_eq!(stream_status(&g.base, "/hdhr/kim/k1m/auto/v1").await, 403, "the tuner too");
    // Enabled again through the API: in at once.
    let api = api_client();
    let on = api.patch(format!("{}/api/v1/users/{kim}", g.base)).json(&serde_json::json!({"enabled": true}));
    assert_eq!(on.send().await.unwrap().status(), 200);
    assert_eq!(stream_status(&g.base, "/live/kim/k1m/1.ts").await, 200);
    // Disabled through the API.
    let off = api.patch(format!("{}/api/v1/users/{kim}", g.base)).json(&serde_json::json!({"enabled": false}));
    assert_eq!(off.send().await.unwrap().status(), 200);
    assert_eq!(stream_status(&g.base, "/live/kim/k1m/1.ts").await, 403);

    // Deleted through the API, and through the store.
    assert_eq!(api.delete(format!("{}/api/v1/users/{kim}", g.base)).send().await.unwrap().status(), 204);
    assert_eq!(stream_status(&g.base, "/live/kim/k1m/1.ts").await, 401);
    assert_eq!(stream_status(&g.base, "/live/lee/l33/1.ts").await, 200, "lee is still cached and in");
    g.state.store.delete_user(lee).await.unwrap();
    assert_eq!(stream_status(&g.base, "/live/lee/l33/1.ts").await, 401);
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_to_a_running_channel_ask_sqlite_nothing() {
    use tunerpool_catalog::cache::READ_CACHE_TTL;
    let g = gateway(RelaySettings::default(), |_| {}).await;
    g.user("kim", "k1m", 0).await;
    g.user("lee", "l33", 0).await;
    let mut held = reqwest::get(format!("{}/live/kim/k1m/1.ts", g.base)).await.unwrap();
    assert_eq!(held.status(), 200);
    held.chunk().await.unwrap().unwrap();
    // Let what the first request cached expire (starting the channel took a
    // while), then one join caches kim and the channel afresh.
    tokio::time::sleep(READ_CACHE_TTL + Duration::from_millis(100)).await;
    assert_eq!(stream_status(&g.base, "/live/kim/k1m/1.ts").await, 200);
    let warmed = std::time::Instant::now();
    let before = g.state.store.read_cache_stats();

    // The database is closed (the main pool and the stream requests' own connections): any query now fails
    // (and the request with a 500).
    g.state.store.pool().close().await;
    g.state.store.stream_reads_pool().close().await;
    let joins: Vec<_> = (0..40)
        .map(|_| {
            let base = g.base.clone();
            tokio::spawn(async move { stream_status(&base, "/live/kim/k1m/1.ts").await })
        })
        .collect();
    for j in joins {
        assert_eq!(j.await.unwrap(), 200, "a join needed the database");
    }
    let elapsed = warmed.elapsed();
    assert!(elapsed < READ_CACHE_TTL, "the joins took {elapsed:?}: longer than the cache keeps anything");
    let after = g.state.store.read_cache_stats();
    assert_eq!((after.0.misses, after.1.misses), (before.0.misses, before.1.misses), "no user or visibility miss");
    assert_eq!(after.0.hits - before.0.hits, 40, "every join's user came from the cache");
    assert_eq!(after.1.hits - before.1.hits, 40, "every join's visibility came from the cache");
    // The observable is real: a login that is not cached needs the database, and fails without it.
    assert_eq!(stream_status(&g.base, "/live/lee/l33/1.ts").await, 500);
    drop(held);
}
