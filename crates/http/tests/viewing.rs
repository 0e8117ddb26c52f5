//! Viewing over real sockets (issue 14): the refusal clip players get instead
//! of a bare 503, reserved slots and preemption by user priority, the cap on
//! viewers per session, always-on channels and the warm linger.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{api_client, app_state, serve, Gateway, TOKEN};
use fakeprovider::{AccountSpec, FakeConfig, FakeProvider};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tunerpool_http::{AppState, ClipSettings, RefusalClip};
use tunerpool_relay::settings::RelaySettings;
use tunerpool_testkit::eventually;

fn fast() -> RelaySettings {
    RelaySettings {
        linger: Duration::from_millis(300),
        acquire_wait: Duration::from_millis(300),
        stall_timeout: Duration::from_secs(2),
        ..RelaySettings::default()
    }
}

/// A gateway over one simulated account `a`/`pa` with `slots` connections.
async fn one_account(slots: u32, settings: RelaySettings, configure: impl FnOnce(&mut AppState)) -> Gateway {
    let fake = FakeProvider::start(FakeConfig::with_accounts(vec![AccountSpec::new("a", "pa", slots)])).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (store, http) = tunerpool_testkit::open_store(dir.path()).await;
    let pid = tunerpool_testkit::add_xtream(&store, &fake, &[("a", "pa")]).await;
    tunerpool_testkit::sync_with_details(&store, &http, pid).await;
    let mut state = app_state(&store, &http, settings);
    configure(&mut state);
    let (base, server) = serve(state.clone()).await;
    Gateway { fake, base, state, dir, server }
}

async fn add_user(g: &Gateway, name: &str, priority: u8) {
    let resp = api_client()
        .post(format!("{}/api/v1/users", g.base))
        .json(&json!({"username": name, "password": "pw", "max_connections": 0, "priority": priority}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}

/// Channel ids in lineup order.
async fn channel_ids(g: &Gateway) -> Vec<i64> {
    let page: Value = api_client()
        .get(format!("{}/api/v1/channels?per_page=100", g.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["items"].as_array().unwrap().iter().map(|c| c["id"].as_i64().unwrap()).collect()
}

/// `/live/{user}/pw/{id}.ts` as a TS player asks for it.
async fn live(g: &Gateway, user: &str, id: i64) -> reqwest::Response {
    reqwest::get(format!("{}/live/{user}/pw/{id}.ts", g.base)).await.unwrap()
}

/// Reads `n` bytes of a stream (it must be streaming), keeping the rest for later.
async fn started(resp: reqwest::Response) -> impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> {
    assert_eq!(resp.status(), 200, "{:?}", resp.headers());
    assert!(resp.headers().get("x-tunerpool-refused").is_none(), "a real stream, not the clip");
    let mut body = Box::pin(resp.bytes_stream());
    let first = tokio::time::timeout(Duration::from_secs(10), body.next()).await.expect("first bytes in time");
    assert!(first.is_some_and(|c| c.is_ok_and(|c| !c.is_empty())), "the stream started");
    body
}

/// Whether the stream ends (the server closed it) within `within`.
async fn ends(
    mut body: impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin,
    within: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(_))) => continue,
            Ok(_) => return true,
            Err(_) => return false,
        }
    }
}

fn provider_open(g: &Gateway) -> u32 {
    g.fake.counters().accounts.values().map(|a| a.open).sum()
}

async fn sessions(g: &Gateway) -> Vec<Value> {
    api_client().get(format!("{}/api/v1/sessions", g.base)).send().await.unwrap().json().await.unwrap()
}

fn clip_on(state: &mut AppState) {
    state.clip = ClipSettings {
        clip: Some(Arc::new(RefusalClip::built_in(Duration::from_secs(10)))),
        live: true,
        hdhomerun: true,
        stream: true,
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ts_player_refused_for_capacity_gets_the_busy_clip_and_a_json_client_the_503() {
    let g = common::gateway(fast(), clip_on).await;
    add_user(&g, "kim", 0).await;
    let ids = channel_ids(&g).await;
    // Both accounts' single slots in use.
    let _one = started(live(&g, "kim", ids[0]).await).await;
    let _two = started(live(&g, "kim", ids[1]).await).await;

    let resp = live(&g, "kim", ids[2]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-tunerpool-refused"], "no_capacity");
    assert_eq!(resp.headers()["content-type"], "video/mp2t");
    let body = resp.bytes().await.unwrap();
    assert_eq!(
        body.len(),
        RefusalClip::built_in(Duration::from_secs(10)).bytes().len(),
        "the whole clip, then the end"
    );
    let file = g.dir.path().join("received.ts");
    std::fs::write(&file, &body).unwrap();
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name,width:format=duration", "-of", "json"])
        .arg(&file)
        .output()
        .expect("ffprobe must be installed (apt-get install ffmpeg)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let probed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let streams = probed["streams"].as_array().unwrap();
    assert!(streams.iter().any(|s| s["codec_name"] == "h264" && s["width"] == 1280), "{probed}");
    assert!(streams.iter().any(|s| s["codec_name"] == "aac"), "{probed}");
    let seconds: f64 = probed["format"]["duration"].as_str().unwrap().parse().unwrap();
    assert!((9.5..=11.0).contains(&seconds), "looped to 10 s: {seconds}");

    // A client asking for JSON gets the refusal as before, with its reason.
    let resp = reqwest::Client::new()
        .get(format!("{}/live/kim/pw/{}.ts", g.base, ids[2]))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().get("x-tunerpool-refused").is_none());
    assert!(resp.text().await.unwrap().contains("no free connection"));

    // The HLS playlist keeps its status too.
    let resp = reqwest::get(format!("{}/live/kim/pw/{}.m3u8", g.base, ids[2])).await.unwrap();
    assert_eq!(resp.status(), 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_clip_off_a_ts_player_gets_the_bare_503() {
    let g = common::gateway(fast(), |_| {}).await;
    add_user(&g, "kim", 0).await;
    let ids = channel_ids(&g).await;
    let _one = started(live(&g, "kim", ids[0]).await).await;
    let _two = started(live(&g, "kim", ids[1]).await).await;
    let resp = live(&g, "kim", ids[2]).await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().get("x-tunerpool-refused").is_none());
    // The admin's /stream, with only that output's clip off, too.
    let g2 = common::gateway(fast(), |s| {
        clip_on(s);
        s.clip.stream = false;
    })
    .await;
    let ids = channel_ids(&g2).await;
    let auth = |url: String| reqwest::Client::new().get(url).bearer_auth(TOKEN).send();
    let _one = started(auth(format!("{}/stream/{}.ts", g2.base, ids[0])).await.unwrap()).await;
    let _two = started(auth(format!("{}/stream/{}.ts", g2.base, ids[1])).await.unwrap()).await;
    assert_eq!(auth(format!("{}/stream/{}.ts", g2.base, ids[2])).await.unwrap().status(), 503);
}

fn json_client() -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(reqwest::header::ACCEPT, "application/json".parse().unwrap());
    reqwest::Client::builder().default_headers(h).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserved_slot_is_left_to_users_of_high_enough_priority() {
    let settings = RelaySettings { reserved_slots: 1, reserved_priority: 5, ..fast() };
    let g = one_account(2, settings, |_| {}).await;
    add_user(&g, "low", 1).await;
    add_user(&g, "high", 5).await;
    let ids = channel_ids(&g).await;

    let _low = started(live(&g, "low", ids[0]).await).await;
    let refused = json_client().get(format!("{}/live/low/pw/{}.ts", g.base, ids[1])).send().await.unwrap();
    assert_eq!(refused.status(), 503, "the second slot is reserved");
    assert_eq!(provider_open(&g), 1);

    let _high = started(live(&g, "high", ids[1]).await).await;
    assert_eq!(provider_open(&g), 2);
    assert_eq!(g.fake.counters().accounts["a"].max_concurrent, 2, "never over the account's limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_preemption_a_higher_priority_user_stops_a_lower_ones_session() {
    let settings = RelaySettings { preempt: true, acquire_wait: Duration::from_secs(3), ..fast() };
    let g = one_account(1, settings, |_| {}).await;
    add_user(&g, "low", 1).await;
    add_user(&g, "high", 5).await;
    let ids = channel_ids(&g).await;

    let low = started(live(&g, "low", ids[0]).await).await;
    // A user of the same priority does not preempt.
    add_user(&g, "peer", 1).await;
    let refused = json_client().get(format!("{}/live/peer/pw/{}.ts", g.base, ids[1])).send().await.unwrap();
    assert_eq!(refused.status(), 503);

    let _high = started(live(&g, "high", ids[1]).await).await;
    assert!(ends(Box::pin(low), Duration::from_secs(5)).await, "the preempted viewer's stream ended");
    assert_eq!(g.fake.counters().accounts["a"].max_concurrent, 1, "never over the account's limit");
    let events: Value = api_client()
        .get(format!("{}/api/v1/events?kind=preempted", g.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = events.to_string();
    assert!(text.contains("priority 5") && text.contains("priority 1"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_takes_no_more_viewers_than_its_cap() {
    let settings = RelaySettings { max_viewers_per_session: 2, ..fast() };
    let g = one_account(1, settings, |_| {}).await;
    add_user(&g, "kim", 0).await;
    let id = channel_ids(&g).await[0];
    let _one = started(live(&g, "kim", id).await).await;
    let _two = started(live(&g, "kim", id).await).await;
    let refused = live(&g, "kim", id).await;
    assert_eq!(refused.status(), 503);
    let text = refused.text().await.unwrap();
    assert!(text.contains("has its maximum of 2 viewers"), "{text}");
    assert_eq!(g.fake.counters().accounts["a"].opened, 1, "one shared upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_always_on_channel_holds_its_session_with_no_viewers_until_turned_off() {
    let g = one_account(2, fast(), |_| {}).await;
    let id = channel_ids(&g).await[0];
    let patch = |on: bool| {
        api_client().patch(format!("{}/api/v1/channels/{id}", g.base)).json(&json!({ "always_on": on })).send()
    };
    let resp = patch(true).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["always_on"], true);
    eventually("the always-on session holds one provider connection", Duration::from_secs(10), || async {
        (provider_open(&g) == 1).then_some(())
    })
    .await;
    // Well past its linger it is still there, with nobody watching: compare with a channel that lingers.
    add_user(&g, "kim", 0).await;
    let other = channel_ids(&g).await[1];
    drop(started(live(&g, "kim", other).await).await);
    eventually("the other channel's session lingers and closes", Duration::from_secs(10), || async {
        let s = sessions(&g).await;
        (!s.iter().any(|s| s["channel_id"] == other)).then_some(())
    })
    .await;
    let s = sessions(&g).await;
    let kept = s.iter().find(|s| s["channel_id"] == id).expect("the always-on session is still there");
    assert_eq!(kept["viewers"].as_array().unwrap().len(), 0);
    assert_eq!(provider_open(&g), 1);

    assert_eq!(patch(false).await.unwrap().status(), 200);
    eventually("turned off, it lingers and frees its slot", Duration::from_secs(10), || async {
        (provider_open(&g) == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_always_on_session_yields_its_slot_to_a_viewer() {
    let g = one_account(1, fast(), |_| {}).await;
    add_user(&g, "kim", 0).await;
    let ids = channel_ids(&g).await;
    let resp = api_client()
        .patch(format!("{}/api/v1/channels/{}", g.base, ids[0]))
        .json(&json!({ "always_on": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    eventually("the always-on session runs", Duration::from_secs(10), || async {
        (provider_open(&g) == 1).then_some(())
    })
    .await;
    let viewer = started(live(&g, "kim", ids[1]).await).await;
    assert_eq!(g.fake.counters().accounts["a"].max_concurrent, 1, "never over the account's limit");
    drop(viewer);
    eventually("once the slot is free, the always-on channel runs again", Duration::from_secs(15), || async {
        let s = sessions(&g).await;
        s.iter().any(|s| s["channel_id"] == ids[0] && s["state"] != "starting").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_channel_lingers_longer_than_a_cold_one() {
    let settings = RelaySettings { warm_linger: Duration::from_secs(30), warm_after_starts: 2, ..fast() };
    let g = one_account(2, settings, |_| {}).await;
    add_user(&g, "kim", 0).await;
    let ids = channel_ids(&g).await;
    let (warm, cold) = (ids[0], ids[1]);
    // Two starts make the first channel warm; the second is watched once.
    drop(started(live(&g, "kim", warm).await).await);
    drop(started(live(&g, "kim", warm).await).await);
    drop(started(live(&g, "kim", cold).await).await);
    eventually("the cold channel closes after its linger", Duration::from_secs(10), || async {
        let s = sessions(&g).await;
        (!s.iter().any(|s| s["channel_id"] == cold)).then_some(())
    })
    .await;
    let s = sessions(&g).await;
    let kept = s.iter().find(|s| s["channel_id"] == warm).expect("the warm channel still lingers");
    assert_eq!(kept["state"], "lingering");
    // Lingering, it still yields its slot to a viewer who needs it.
    let _a = started(live(&g, "kim", ids[2]).await).await;
    let _b = started(live(&g, "kim", ids[3]).await).await;
    assert_eq!(g.fake.counters().accounts["a"].max_concurrent, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_is_validated_naming_the_field() {
    let g = one_account(1, fast(), |_| {}).await;
    let resp = api_client()
        .post(format!("{}/api/v1/users", g.base))
        .json(&json!({"username": "x", "password": "pw", "priority": 101}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["fields"][0]["field"], "priority", "{body}");
}
