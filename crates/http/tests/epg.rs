//! The guide over real sockets: tunerpool's HTTP server in-process, the
//! simulated provider's `xmltv.php` (Xtream) and `x-tvg-url` (M3U) as the
//! guides, `/epg.xml` and `/epg.xml.gz` read back and checked against the
//! catalog.

mod common;

use common::{api_client, app_state, serve, TOKEN};

use std::collections::BTreeSet;
use std::io::Read;

use fakeprovider::{AccountSpec, FakeConfig, FakeProvider};
use tunerpool_catalog::sync::sync_provider;
use tunerpool_catalog::{NewProvider, ProviderKind, Secret, Store};
use tunerpool_formats::xmltv::{self, Item};
use tunerpool_relay::settings::RelaySettings;
use tunerpool_upstream::{HttpSettings, UpstreamHttp};

struct Harness {
    fake: FakeProvider,
    base: String,
    store: Store,
    xtream: i64,
    m3u: i64,
    _dir: tempfile::TempDir,
    _server: tokio::task::JoinHandle<()>,
}

async fn harness() -> Harness {
    let fake = FakeProvider::start(FakeConfig::with_accounts(vec![AccountSpec::new("a", "p/w+1", 2)])).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let http = UpstreamHttp::new(HttpSettings { spool_dir: dir.path().join("tmp"), ..Default::default() }).unwrap();
    let add = |new: NewProvider| {
        let store = store.clone();
        async move { store.add_provider(&NewProvider { enabled: true, ..new }).await.unwrap().id }
    };
    let xtream = add(NewProvider {
        name: "X".into(),
        kind: Some(ProviderKind::Xtream),
        url: fake.url(),
        username: Some("a".into()),
        password: Some(Secret::new("p/w+1")),
        ..Default::default()
    })
    .await;
    // The same panel's playlist as a second provider (lower priority): the
    // same channels and guide ids, so its guide must not double anything.
    let m3u = add(NewProvider {
        name: "M".into(),
        kind: Some(ProviderKind::M3u),
        url: format!("{}/get.php?username=a&password=p%2Fw%2B1&type=m3u_plus&output=ts", fake.url()),
        priority: 5,
        ..Default::default()
    })
    .await;
    sync_provider(&store, &http, xtream).await.unwrap();
    sync_provider(&store, &http, m3u).await.unwrap();
    let (base, server) = serve(app_state(&store, &http, RelaySettings::default())).await;
    Harness { fake, base, store, xtream, m3u, _dir: dir, _server: server }
}

/// A client that does not decode gzip by itself, so the test sees the wire
/// (and sends the admin token, for the API calls).
fn raw_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {TOKEN}").parse().unwrap());
    reqwest::Client::builder().no_gzip().default_headers(headers).build().unwrap()
}

struct Guide {
    channels: Vec<String>,
    programmes: Vec<xmltv::Programme>,
}

fn parse(bytes: &[u8]) -> Guide {
    let mut g = Guide { channels: Vec::new(), programmes: Vec::new() };
    let stats = xmltv::read_guide(bytes, |item| match item {
        Item::Channel(c) => g.channels.push(c.id),
        Item::Programme(p) => g.programmes.push(p),
    })
    .unwrap();
    assert_eq!((stats.skipped, stats.repaired, stats.errors), (0, 0, 0), "{stats:?}");
    g
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

async fn catalog_tvg_ids(h: &Harness) -> BTreeSet<String> {
    let page: serde_json::Value = api_client()
        .get(format!("{}/api/v1/channels?per_page=1000", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["items"].as_array().unwrap().iter().filter_map(|c| c["tvg_id"].as_str()).map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epg_xml_and_gz_serve_the_guide_mapped_to_the_catalog() {
    let h = harness().await;
    let client = raw_client();

    // Before any guide was fetched: a valid, empty guide.
    let empty = client.get(format!("{}/epg.xml", h.base)).send().await.unwrap();
    assert_eq!(empty.status(), 200);
    let empty = parse(&empty.bytes().await.unwrap());
    assert!(empty.channels.is_empty() && empty.programmes.is_empty());

    // Fetch both providers' guides through the API.
    for id in [h.xtream, h.m3u] {
        let r = client.post(format!("{}/api/v1/providers/{id}/epg", h.base)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
        let report: serde_json::Value = r.json().await.unwrap();
        assert_eq!((report["channels"].as_u64(), report["programmes"].as_u64()), (Some(18), Some(540)));
    }
    let status: serde_json::Value =
        client.get(format!("{}/api/v1/epg", h.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(status.as_array().unwrap().len(), 2);
    assert!(status.as_array().unwrap().iter().all(|s| s["ok"] == true && s["error"].is_null()));
    let text = serde_json::to_string(&status).unwrap();
    assert!(!text.contains("p/w+1") && !text.contains("p%2Fw"), "{text}");

    // Plain.
    let resp = client.get(format!("{}/epg.xml", h.base)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/xml; charset=utf-8");
    assert!(resp.headers().get("content-encoding").is_none());
    let plain = resp.bytes().await.unwrap();
    let guide = parse(&plain);
    let ids: BTreeSet<String> = guide.channels.iter().cloned().collect();
    assert_eq!(ids.len(), guide.channels.len(), "each channel once, though two providers have it");
    assert_eq!(ids, catalog_tvg_ids(&h).await, "exactly the catalog's tvg-ids");
    assert_eq!(guide.channels.len(), 18);
    assert_eq!(guide.programmes.len(), 18 * 30, "programmes from one provider only");
    assert!(guide.programmes.iter().all(|p| ids.contains(&p.channel)));
    assert!(guide.programmes.iter().all(|p| p.start.ends_with(" +0000") && !p.titles.is_empty()));

    // A gzip file.
    let resp = client.get(format!("{}/epg.xml.gz", h.base)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/gzip");
    let gz = resp.bytes().await.unwrap();
    assert_eq!(&gz[..2], &[0x1f, 0x8b]);
    assert!(gz.len() * 3 < plain.len(), "compressed: {} vs {}", gz.len(), plain.len());
    assert_eq!(gunzip(&gz), plain);

    // Gzip on the wire when asked for.
    let resp = client.get(format!("{}/epg.xml", h.base)).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    assert_eq!(gunzip(&resp.bytes().await.unwrap()), plain);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guide_refresh_errors_are_named() {
    let h = harness().await;
    let client = raw_client();
    let e = client.post(format!("{}/api/v1/providers/9999/epg", h.base)).send().await.unwrap();
    assert_eq!(e.status(), 404);
    let e = client.post(format!("{}/api/v1/providers/x/epg", h.base)).send().await.unwrap();
    assert_eq!(e.status(), 404);
    let clear = tunerpool_catalog::ProviderPatch { epg_url: Some(None), ..Default::default() };
    h.store.update_provider(h.m3u, &clear).await.unwrap();
    let e = client.post(format!("{}/api/v1/providers/{}/epg", h.base, h.m3u)).send().await.unwrap();
    assert_eq!(e.status(), 409);
    assert!(e.text().await.unwrap().contains("epg_url"));
    // A refused fetch is a 502 naming the provider, without the password.
    let wrong = format!("{}/xmltv.php?username=a&password=n0pe-secret", h.fake.url());
    let patch = tunerpool_catalog::ProviderPatch { epg_url: Some(Some(wrong)), ..Default::default() };
    h.store.update_provider(h.m3u, &patch).await.unwrap();
    let e = client.post(format!("{}/api/v1/providers/{}/epg", h.base, h.m3u)).send().await.unwrap();
    assert_eq!(e.status(), 502);
    let text = e.text().await.unwrap();
    assert!(text.contains("provider M") && text.contains("401") && !text.contains("n0pe"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_go_away_mid_guide_do_not_hurt_the_next_one() {
    let h = harness().await;
    let client = raw_client();
    client.post(format!("{}/api/v1/providers/{}/epg", h.base, h.xtream)).send().await.unwrap();
    // Many requests dropped after the first chunk; the server keeps answering.
    for _ in 0..20 {
        let mut resp = client.get(format!("{}/epg.xml", h.base)).send().await.unwrap();
        let _ = resp.chunk().await.unwrap();
        drop(resp);
    }
    let full = client.get(format!("{}/epg.xml", h.base)).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(parse(&full).programmes.len(), 540);
}
