//! Active probing end to end (the simulated provider over real sockets, the real store, the admin API): a probe
//! only takes a slot that leaves the reserve free, never shows the provider more connections than allowed,
//! yields its slot to a viewer within a second, and marks dead sources with the right reason.

mod common;

use std::time::{Duration, Instant};

use common::{admin_get, api_client, app_state_with_ledger, serve};
use fakeprovider::{AccountSpec, ChannelMedia, FakeConfig, FakeProvider, Fault, FaultKind, LiveMedia};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tunerpool_ledger::MemoryLedger;
use tunerpool_relay::probe::ProbeSettings;
use tunerpool_relay::settings::RelaySettings;
use tunerpool_testkit::eventually;

struct Probing {
    fake: FakeProvider,
    base: String,
    _dir: tempfile::TempDir,
}

/// One provider with one account `a` of `max` connections, `media` on some channels, and a gateway whose
/// probes follow `probe`. The ledger keeps the production default release cool-down (600 ms).
async fn probing(max: u32, media: Vec<ChannelMedia>, probe: ProbeSettings) -> Probing {
    let config = FakeConfig { live_media: media, ..FakeConfig::with_accounts(vec![AccountSpec::new("a", "pa", max)]) };
    let fake = FakeProvider::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (store, http) = tunerpool_testkit::open_store(dir.path()).await;
    let pid = tunerpool_testkit::add_xtream(&store, &fake, &[("a", "pa")]).await;
    tunerpool_testkit::sync_with_details(&store, &http, pid).await;
    let settings = RelaySettings { linger: Duration::ZERO, probe, ..RelaySettings::default() };
    let ledger = MemoryLedger::new(Duration::from_secs(15)).with_release_cooldown(Duration::from_millis(600));
    let (base, _server) = serve(app_state_with_ledger(&store, &http, settings, ledger)).await;
    Probing { fake, base, _dir: dir }
}

impl Probing {
    async fn request(&self, body: Value) -> (u16, Value) {
        let resp = api_client().post(format!("{}/api/v1/probes", self.base)).json(&body).send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    async fn status(&self) -> Value {
        api_client().get(format!("{}/api/v1/probes", self.base)).send().await.unwrap().json().await.unwrap()
    }

    async fn channel(&self, id: i64) -> Value {
        api_client().get(format!("{}/api/v1/channels/{id}", self.base)).send().await.unwrap().json().await.unwrap()
    }

    fn open(&self) -> u32 {
        self.fake.counters().accounts["a"].open
    }

    fn most_open(&self) -> u32 {
        self.fake.counters().accounts["a"].max_concurrent
    }

    /// The latest result of the probe of `channel`'s source.
    async fn result_of(&self, channel: i64) -> Option<Value> {
        let s = self.status().await;
        s["recent"].as_array().unwrap().iter().find(|r| r["channel_id"] == channel).cloned()
    }
}

/// A viewer of channel `id` reading in the background; the time its response took.
async fn watch(base: &str, id: i64) -> (Duration, tokio::task::JoinHandle<()>) {
    let asked = Instant::now();
    let resp = admin_get(format!("{base}/stream/{id}.ts")).await.unwrap();
    let took = asked.elapsed();
    assert_eq!(resp.status(), 200, "channel {id}: {:?}", resp.text().await);
    let reader = tokio::spawn(async move {
        let mut body = resp.bytes_stream();
        while let Some(Ok(_)) = body.next().await {}
    });
    (took, reader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_keeps_the_reserve_and_yields_its_slot_to_a_viewer_within_a_second() {
    let settings = ProbeSettings {
        reserve: 1,
        duration: Duration::from_secs(60),
        interval: Duration::ZERO,
        ..ProbeSettings::default()
    };
    let p = probing(2, Vec::new(), settings).await;

    // Account a: 2 connections, 1 kept free. Nobody watches: the probe may take one.
    let (code, queued) = p.request(json!({"channel_id": 1})).await;
    assert_eq!((code, queued["queued"].as_u64()), (202, Some(1)), "{queued}");
    eventually("the probe's connection", Duration::from_secs(10), || async { (p.open() == 1).then_some(()) }).await;
    let status = p.status().await;
    assert_eq!(status["running"][0]["channel_id"], 1, "{status}");
    assert_eq!(status["running"][0]["account"], "Primary", "{status}");

    // A viewer takes the other slot (the reserve is for viewers).
    let (_, first) = watch(&p.base, 3).await;
    assert_eq!(p.open(), 2);

    // Another viewer: the only slot left is the probe's. It stops, and the viewer plays within a second.
    let (took, second) = watch(&p.base, 4).await;
    eprintln!("the viewer waited {took:?} for the probe's slot");
    assert!(took < Duration::from_secs(1), "the viewer waited {took:?} for the probe's slot");
    let result = eventually("the probe's result", Duration::from_secs(5), || p.result_of(1)).await;
    assert!(
        result["outcome"] == "preempted" || result["reason"].as_str().is_some_and(|r| r.contains("viewer")),
        "{result}"
    );
    assert!(p.status().await["running"].as_array().unwrap().is_empty());
    eventually("two viewers' connections", Duration::from_secs(5), || async { (p.open() == 2).then_some(()) }).await;

    // One viewer left: 1 slot free, but it is the reserve; a probe now must not take it.
    second.abort();
    eventually("one viewer's connection", Duration::from_secs(5), || async { (p.open() == 1).then_some(()) }).await;
    let opened = p.fake.counters().total_opened;
    p.request(json!({"channel_id": 5})).await;
    let result = eventually("the refused probe's result", Duration::from_secs(5), || p.result_of(5)).await;
    assert_eq!(result["outcome"], "no_spare_slot", "{result}");
    assert_eq!(p.fake.counters().total_opened, opened, "no connection was opened for it");

    assert!(p.most_open() <= 2, "the provider saw {} connections of 2", p.most_open());
    first.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_mark_dead_sources_with_the_reason_and_measure_live_ones() {
    let media = vec![
        ChannelMedia { channel: 2, media: LiveMedia::Html },
        ChannelMedia { channel: 3, media: LiveMedia::RadioAac },
        ChannelMedia { channel: 4, media: LiveMedia::Placeholder },
        ChannelMedia { channel: 6, media: LiveMedia::Hevc360p25 },
    ];
    // Longer than the 10 s placeholder clip.
    let settings =
        ProbeSettings { reserve: 0, duration: Duration::from_secs(12), interval: Duration::ZERO, ..Default::default() };
    let p = probing(1, media, settings).await;
    p.fake.set_fault(Fault::new(FaultKind::Refuse { status: 404 }).for_stream(5));

    // Bad requests name the field.
    let (code, err) = p.request(json!({})).await;
    assert_eq!(code, 422, "{err}");
    assert_eq!(err["fields"][0]["field"], "channel_id", "{err}");
    let (code, err) = p.request(json!({"channel_id": 2, "group_id": 1})).await;
    assert_eq!(code, 422, "{err}");
    let (code, err) = p.request(json!({"channel_id": 999999})).await;
    assert_eq!(code, 404, "{err}");
    let (code, err) = p.request(json!({"channel": 2})).await;
    assert_eq!((code, err["fields"][0]["field"].as_str()), (400, Some("channel")), "{err}");

    for id in [2, 3, 4, 5, 6] {
        let (code, queued) = p.request(json!({"channel_id": id})).await;
        assert_eq!(code, 202, "{queued}");
    }
    let expected = [
        (2, "not_ts", "not a stream"),
        (3, "no_video", ""),
        (4, "placeholder", "clip"),
        (5, "refused", "HTTP 404"),
        (6, "ok", ""),
    ];
    for (id, verdict, why) in expected {
        let result = eventually(&format!("channel {id}'s probe"), Duration::from_secs(40), || p.result_of(id)).await;
        assert_eq!(result["outcome"], "measured", "channel {id}: {result}");
        assert_eq!(result["verdict"], verdict, "channel {id}: {result}");
        assert!(result["reason"].as_str().unwrap_or_default().contains(why), "channel {id}: {result}");
        // The channel's source shows it, marked as a probe's measurement.
        let source = &p.channel(id).await["sources"][0];
        assert_eq!(source["quality"]["probe"], true, "channel {id}: {source}");
        assert_eq!(source["quality"]["report"]["verdict"], verdict, "channel {id}: {source}");
        let badge = source["badge"].as_str().unwrap();
        if verdict == "ok" {
            assert!(badge.starts_with("360p25 HEVC"), "channel {id}: {badge}");
            let score = source["score"].as_f64().unwrap();
            assert!(score > 0.0 && score != 50.0, "measured, so scored: {score}");
        } else {
            assert_eq!(badge, format!("dead: {verdict}"), "channel {id}");
            assert_eq!(source["score"].as_f64(), Some(0.0), "channel {id}");
        }
    }
    // The source's history has the probe's measurement.
    let stream = p.channel(6).await["sources"][0]["stream_id"].as_i64().unwrap();
    let url = format!("{}/api/v1/history/sources?stream_id={stream}", p.base);
    let history: Value = api_client().get(url).send().await.unwrap().json().await.unwrap();
    let kept = history.as_array().unwrap();
    assert!(!kept.is_empty() && kept.iter().all(|m| m["probe"] == true && m["stream_id"] == stream), "{history}");
    assert_eq!(kept.last().unwrap()["report"]["video"]["codec"], "hevc", "{history}");
    let resp = api_client().get(format!("{}/api/v1/history/sources?stream_id=x", p.base)).send().await.unwrap();
    assert_eq!(resp.status(), 400, "a bad stream id is named");
    let all: Value =
        api_client().get(format!("{}/api/v1/history/sources", p.base)).send().await.unwrap().json().await.unwrap();
    assert!(all.as_array().unwrap().len() >= 5, "every probed source's measurements: {all}");

    assert!(p.most_open() <= 1, "one probe at a time on a 1-connection account: {}", p.most_open());
    assert_eq!(p.open(), 0, "every probe gave its connection back");
}
