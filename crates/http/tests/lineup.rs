//! The lineup over real sockets with two simulated providers whose catalogs
//! overlap (same tvg-ids, the same channels under other names and stream
//! ids): one channel with two sources, and selection and failover across
//! providers.

mod common;

use std::time::{Duration, Instant};

use common::{admin_get, api_client, app_state, serve, TOKEN};
use fakeprovider::{FakeProvider, Fault, FaultKind};
use serde_json::{json, Value};
use tunerpool_catalog::sync::sync_provider;
use tunerpool_catalog::Store;
use tunerpool_relay::settings::RelaySettings;
use tunerpool_testkit::{add_xtream_named, open_store, overlapping, sync_with_details};
use tunerpool_upstream::UpstreamHttp;

struct TwoProviders {
    a: FakeProvider,
    b: FakeProvider,
    base: String,
    store: Store,
    http: UpstreamHttp,
    provider_a: i64,
    _dir: tempfile::TempDir,
    _server: tokio::task::JoinHandle<()>,
}

fn fast() -> RelaySettings {
    RelaySettings {
        linger: Duration::from_millis(300),
        acquire_wait: Duration::from_millis(300),
        stall_timeout: Duration::from_secs(2),
        ..RelaySettings::default()
    }
}

/// Adds the simulated provider as an Xtream provider and syncs it with its
/// account's details, as the gateway does.
async fn add(store: &Store, http: &UpstreamHttp, name: &str, fake: &FakeProvider, user: &str, pass: &str) -> i64 {
    let id = add_xtream_named(store, name, fake, &[(user, pass)]).await;
    sync_with_details(store, http, id).await;
    id
}

/// A: "Channel i" (stream id i), account `a`; B: "UK: CHANNEL i HD" (stream
/// id 1000 + i) and five channels of its own, account `b`. One connection each.
async fn two_providers() -> TwoProviders {
    let a = FakeProvider::start(overlapping::provider_a()).await.unwrap();
    let b = FakeProvider::start(overlapping::provider_b()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (store, http) = open_store(dir.path()).await;
    let provider_a = add(&store, &http, "Provider A", &a, "a", "pa").await;
    add(&store, &http, "Provider B", &b, "b", "pb").await;
    let state = app_state(&store, &http, fast());
    let (base, server) = serve(state).await;
    TwoProviders { a, b, base, store, http, provider_a, _dir: dir, _server: server }
}

async fn get(h: &TwoProviders, path: &str) -> Value {
    let resp = api_client().get(format!("{}{path}", h.base)).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

async fn sessions(h: &TwoProviders) -> Value {
    get(h, "/api/v1/sessions").await
}

/// Reads `resp` for `dur`, failing if it stops for 4 s; returns the bytes.
async fn watch(resp: &mut reqwest::Response, dur: Duration) -> usize {
    let t0 = Instant::now();
    let mut bytes = 0;
    while t0.elapsed() < dur {
        match tokio::time::timeout(Duration::from_secs(4), resp.chunk()).await {
            Ok(Ok(Some(c))) => bytes += c.len(),
            other => panic!("the viewer lost the stream after {:?}: {other:?}", t0.elapsed()),
        }
    }
    bytes
}

fn opened(fake: &FakeProvider, user: &str) -> u64 {
    fake.counters().accounts.get(user).map(|a| a.opened).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_providers_give_one_channel_with_two_sources() {
    let h = two_providers().await;
    let page = get(&h, "/api/v1/channels?per_page=100").await;
    assert_eq!(page["total"], 25);
    let first = &page["items"][0];
    assert_eq!((first["name"].as_str(), first["number"].as_str()), (Some("Channel 1"), Some("1")));
    let providers: Vec<&str> =
        first["sources"].as_array().unwrap().iter().map(|s| s["provider"].as_str().unwrap()).collect();
    assert_eq!(providers, ["Provider A", "Provider B"]);
    assert_eq!(first["sources"][1]["name"], "UK: CHANNEL 1 HD");
    // Channel 7 has no tvg-id at either provider: matched by its name.
    assert_eq!(page["items"][6]["sources"].as_array().unwrap().len(), 2);
    assert_eq!(page["items"][24]["sources"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_full_the_channel_plays_from_b() {
    let h = two_providers().await;
    // Channel 2 takes A's only connection (A ranks first: same kind and
    // availability, and it is the first source).
    let mut busy = admin_get(format!("{}/stream/2.ts", h.base)).await.unwrap();
    assert_eq!(busy.status(), 200);
    watch(&mut busy, Duration::from_millis(300)).await;
    assert_eq!(opened(&h.a, "a"), 1);
    // Channel 1: A is full, so B (availability 1) ranks first.
    let mut resp = admin_get(format!("{}/stream/1.ts", h.base)).await.unwrap();
    assert_eq!(resp.status(), 200);
    // Its first bytes wait for a keyframe (up to one GOP, ~1 s), then it plays.
    assert!(watch(&mut resp, Duration::from_millis(2500)).await > 100_000);
    assert_eq!((opened(&h.a, "a"), opened(&h.b, "b")), (1, 1));
    let s = sessions(&h).await;
    let one = s.as_array().unwrap().iter().find(|s| s["channel_id"] == 1).unwrap();
    assert_eq!(one["upstream"]["provider"], "Provider B", "{s}");

    // Both full: a client's 503 says why each source was refused, naming
    // no provider and no account.
    let user = api_client()
        .post(format!("{}/api/v1/users", h.base))
        .json(&json!({"username": "kim", "password": "k1m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(user.status(), 201);
    let refused = reqwest::get(format!("{}/live/kim/k1m/3.ts", h.base)).await.unwrap();
    assert_eq!(refused.status(), 503);
    let why = refused.text().await.unwrap();
    assert!(why.contains("source 1: 1 of 1 connections in use"), "{why}");
    assert!(why.contains("source 2: 1 of 1 connections in use"), "{why}");
    for secret in ["Primary", "Provider", "1/1", " a ", " b "] {
        assert!(!why.contains(secret), "the client's 503 names {secret:?}: {why}");
    }
    // The admin is told which accounts.
    let admin = admin_get(format!("{}/stream/3.ts", h.base)).await.unwrap();
    assert_eq!(admin.status(), 503);
    assert!(admin.text().await.unwrap().contains("Primary"));
    drop((busy, resp));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_refusing_the_channel_plays_from_b() {
    let h = two_providers().await;
    h.a.set_fault(Fault::new(FaultKind::Refuse { status: 403 }).for_user("a"));
    let mut resp = admin_get(format!("{}/stream/1.ts", h.base)).await.unwrap();
    assert_eq!(resp.status(), 200);
    // Its first bytes wait for a keyframe (up to one GOP, ~1 s), then it plays.
    assert!(watch(&mut resp, Duration::from_millis(2500)).await > 100_000);
    assert_eq!(opened(&h.b, "b"), 1);
    let s = sessions(&h).await;
    assert_eq!(s[0]["upstream"]["provider"], "Provider B", "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_at_a_fails_over_to_b_and_keeps_the_viewer() {
    let h = two_providers().await;
    // A's streams (its reconnect too) are cut after 300 KB, about 1.3 s.
    h.a.set_fault(Fault::new(FaultKind::CutAfter { bytes: 300_000 }).for_user("a"));
    let mut resp = admin_get(format!("{}/stream/1.ts", h.base)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let bytes = watch(&mut resp, Duration::from_secs(5)).await;
    assert!(bytes > 600_000, "{bytes}");
    assert!(opened(&h.a, "a") >= 1 && opened(&h.b, "b") == 1, "{:?} {:?}", h.a.counters(), h.b.counters());
    let s = sessions(&h).await;
    assert_eq!(s[0]["upstream"]["provider"], "Provider B", "{s}");
    assert!(s[0]["failovers"].as_u64().unwrap() >= 1, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renumbering_resync_keeps_the_lineup_and_its_outputs() {
    let h = two_providers().await;
    let user = api_client()
        .post(format!("{}/api/v1/users", h.base))
        .json(&json!({"username": "kim", "password": "k1m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(user.status(), 201);
    let creds = "username=kim&password=k1m";
    let before: Value = reqwest::get(format!("{}/player_api.php?{creds}&action=get_live_streams", h.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(before.as_array().unwrap().len(), 25);
    assert_eq!((before[0]["num"].as_u64(), before[0]["stream_id"].as_i64()), (Some(1), Some(1)));

    h.a.renumber(7000);
    let r = sync_provider(&h.store, &h.http, h.provider_a).await.unwrap();
    assert_eq!(r.lineup.reattached, 20);
    let after: Value = reqwest::get(format!("{}/player_api.php?{creds}&action=get_live_streams", h.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(before, after, "the same lineup, ids and numbers");
    // And channel 1 still plays from A, under its new stream id.
    let mut resp = reqwest::get(format!("{}/live/kim/k1m/1.ts", h.base)).await.unwrap();
    assert_eq!(resp.status(), 200);
    watch(&mut resp, Duration::from_millis(300)).await;
    let s = sessions(&h).await;
    assert!(s[0]["upstream"]["url"].as_str().unwrap().ends_with("/7001.ts"), "{s}");
}

async fn send(h: &TwoProviders, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let client = api_client();
    let url = format!("{}{path}", h.base);
    let req = match method {
        "GET" => client.get(url),
        "POST" => client.post(url),
        "PUT" => client.put(url),
        "PATCH" => client.patch(url),
        "DELETE" => client.delete(url),
        _ => unreachable!(),
    };
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let resp = req.bearer_auth(TOKEN).send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The field a 400 names: the request is wrong on its own.
fn bad_field(r: &(u16, Value)) -> &str {
    assert_eq!(r.0, 400, "{}", r.1);
    r.1["fields"][0]["field"].as_str().unwrap()
}

/// The field a 409 names: the request is well formed, the lineup refuses it
/// (an unknown stream, group or source named in the body, a number taken).
fn refused_field(r: &(u16, Value)) -> &str {
    assert_eq!(r.0, 409, "{}", r.1);
    r.1["fields"][0]["field"].as_str().unwrap()
}

async fn m3u_titles(h: &TwoProviders) -> Vec<(String, String)> {
    let body = reqwest::get(format!("{}/get.php?username=kim&password=k1m&type=m3u_plus", h.base))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let m3u = tunerpool_formats::m3u::parse(&body);
    m3u.entries.iter().map(|e| (e.tvg_chno().unwrap_or_default().to_string(), e.title.clone())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curation_through_the_api_shows_in_the_outputs_at_once() {
    let h = two_providers().await;
    let (status, _) = send(&h, "POST", "/api/v1/users", Some(json!({"username": "kim", "password": "k1m"}))).await;
    assert_eq!(status, 201);
    let before = m3u_titles(&h).await;
    assert_eq!(before.len(), 25);
    assert_eq!(before[0], ("1".into(), "Channel 1".into()));

    // Split B's source off channel 1, then merge it back.
    let (_, one) = send(&h, "GET", "/api/v1/channels/1", None).await;
    let b_source = one["sources"][1]["id"].as_i64().unwrap();
    let (status, split) = send(&h, "POST", "/api/v1/channels/1/split", Some(json!({"source_id": b_source}))).await;
    assert_eq!(status, 201, "{split}");
    assert_eq!((split["name"].as_str(), split["number"].as_str()), (Some("UK: CHANNEL 1 HD"), Some("26")));
    let new_id = split["id"].as_i64().unwrap();
    assert_eq!(m3u_titles(&h).await.len(), 26);
    assert_eq!(
        refused_field(&send(&h, "POST", "/api/v1/channels/1/split", Some(json!({"source_id": 999}))).await),
        "source_id"
    );
    let (status, merged) = send(&h, "POST", "/api/v1/channels/1/merge", Some(json!({"channels": [new_id]}))).await;
    assert_eq!(status, 200, "{merged}");
    assert_eq!(merged["sources"].as_array().unwrap().len(), 2);
    assert_eq!(
        refused_field(&send(&h, "POST", "/api/v1/channels/1/merge", Some(json!({"channels": [1]}))).await),
        "channels"
    );
    assert_eq!(
        refused_field(&send(&h, "POST", "/api/v1/channels/1/merge", Some(json!({"channels": [4242]}))).await),
        "channels"
    );
    assert_eq!(send(&h, "POST", "/api/v1/channels/4242/merge", Some(json!({"channels": [2]}))).await.0, 404);
    // A stream already in a channel cannot go into a second one.
    let b_stream = merged["sources"][1]["stream_id"].as_i64().unwrap();
    assert_eq!(
        refused_field(&send(&h, "POST", "/api/v1/channels/2/sources", Some(json!({"stream_id": b_stream}))).await),
        "stream_id"
    );

    // Reorder by hand, then back to automatic.
    let ids: Vec<i64> = merged["sources"].as_array().unwrap().iter().rev().map(|s| s["id"].as_i64().unwrap()).collect();
    let (status, ordered) = send(&h, "PUT", "/api/v1/channels/1/sources", Some(json!({"sources": ids}))).await;
    assert_eq!(status, 200);
    assert_eq!(
        (ordered["sources"][0]["provider"].as_str(), ordered["auto_order"].as_bool()),
        (Some("Provider B"), Some(false))
    );
    assert_eq!(
        refused_field(&send(&h, "PUT", "/api/v1/channels/1/sources", Some(json!({"sources": [ids[0]]}))).await),
        "sources"
    );
    let (_, auto) = send(&h, "PUT", "/api/v1/channels/1/sources", Some(json!({"sources": null}))).await;
    assert_eq!(auto["auto_order"], true);

    // Rename, renumber, hide; the bad cases change nothing.
    let (status, renamed) =
        send(&h, "PATCH", "/api/v1/channels/2", Some(json!({"name": "Two", "number": 200, "tvg_id": "two.tv"}))).await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(refused_field(&send(&h, "PATCH", "/api/v1/channels/3", Some(json!({"number": 200}))).await), "number");
    assert_eq!(bad_field(&send(&h, "PATCH", "/api/v1/channels/3", Some(json!({"name": ""}))).await), "name");
    assert_eq!(bad_field(&send(&h, "PATCH", "/api/v1/channels/3", Some(json!({"colour": "red"}))).await), "colour");
    assert_eq!(send(&h, "PATCH", "/api/v1/channels/4242", Some(json!({"name": "x"}))).await.0, 404);
    let (_, three) = send(&h, "GET", "/api/v1/channels/3", None).await;
    assert_eq!((three["name"].as_str(), three["number"].as_str()), (Some("Channel 3"), Some("3")));
    send(&h, "PATCH", "/api/v1/channels/3", Some(json!({"hidden": true}))).await;
    let now = m3u_titles(&h).await;
    assert!(now.contains(&("200".into(), "Two".into())), "{now:?}");
    assert!(!now.iter().any(|(_, t)| t == "Channel 3"), "hidden");
    assert_eq!(now.last().unwrap().0, "200", "listed by number");

    // Groups: create, move channels in bulk, number from 101, rename, hide.
    let (status, g) = send(&h, "POST", "/api/v1/groups", Some(json!({"name": "Favourites"}))).await;
    assert_eq!(status, 201, "{g}");
    let gid = g["id"].as_i64().unwrap();
    assert_eq!(refused_field(&send(&h, "POST", "/api/v1/groups", Some(json!({"name": "Favourites"}))).await), "name");
    assert_eq!(bad_field(&send(&h, "POST", "/api/v1/groups", Some(json!({"name": " "}))).await), "name");
    let (status, n) = send(&h, "POST", "/api/v1/channels/bulk", Some(json!({"ids": [1, 4, 5], "group_id": gid}))).await;
    assert_eq!((status, n["changed"].as_u64()), (200, Some(3)));
    assert_eq!(
        refused_field(
            &send(&h, "POST", "/api/v1/channels/bulk", Some(json!({"ids": [1, 4242], "hidden": true}))).await
        ),
        "ids"
    );
    assert_eq!(
        refused_field(&send(&h, "POST", "/api/v1/channels/bulk", Some(json!({"ids": [1], "group_id": 4242}))).await),
        "group_id"
    );
    assert_eq!(
        refused_field(&send(&h, "POST", &format!("/api/v1/groups/{gid}/renumber"), Some(json!({"start": 2}))).await),
        "start"
    );
    let (status, list) = send(&h, "POST", &format!("/api/v1/groups/{gid}/renumber"), Some(json!({"start": 101}))).await;
    assert_eq!(status, 200, "{list}");
    let numbers: Vec<&str> = list.as_array().unwrap().iter().map(|c| c["number"].as_str().unwrap()).collect();
    assert_eq!(numbers, ["101", "102", "103"]);
    let (_, g) =
        send(&h, "PATCH", &format!("/api/v1/groups/{gid}"), Some(json!({"name": "Favs", "position": 0}))).await;
    assert_eq!((g["name"].as_str(), g["channels"].as_i64()), (Some("Favs"), Some(3)));
    let cats: Value =
        reqwest::get(format!("{}/player_api.php?username=kim&password=k1m&action=get_live_categories", h.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(cats[0]["category_name"], "Favs", "lineup groups, in their order: {cats}");
    let streams: Value =
        reqwest::get(format!("{}/player_api.php?username=kim&password=k1m&action=get_live_streams", h.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let one = streams.as_array().unwrap().iter().find(|s| s["stream_id"] == 1).unwrap();
    assert_eq!((one["num"].as_u64(), one["category_id"].as_str()), (Some(101), Some(gid.to_string().as_str())));
    send(&h, "PATCH", &format!("/api/v1/groups/{gid}"), Some(json!({"hidden": true}))).await;
    assert_eq!(m3u_titles(&h).await.len(), 26 - 1 - 1 - 3, "the merged, the hidden and the hidden group's are gone");
    // The guide id set by hand is what the playlist gives.
    let body = reqwest::get(format!("{}/get.php?username=kim&password=k1m&type=m3u_plus", h.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("tvg-id=\"two.tv\""), "{body}");
    assert_eq!(send(&h, "DELETE", &format!("/api/v1/groups/{gid}"), None).await.0, 204);
    assert_eq!(send(&h, "DELETE", &format!("/api/v1/groups/{gid}"), None).await.0, 404);
}
