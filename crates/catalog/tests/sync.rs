//! Provider sync against the simulated provider (real sockets) and against
//! real-world playlists on disk, with a real SQLite file.

use std::path::{Path, PathBuf};

use fakeprovider::{AccountSpec, FakeConfig, FakeProvider, Fault, FaultKind};
use tunerpool_catalog::sync::sync_provider;
use tunerpool_catalog::{CatalogError, ChannelQuery, NewProvider, ProviderKind, Secret, Store};
use tunerpool_testkit::{add_m3u_file, backend_tests, fetch_i64, Backend};
use tunerpool_upstream::{HttpSettings, UpstreamHttp};

backend_tests!(
    xtream_sync_stores_the_whole_catalog_with_details,
    ids_are_stable_across_resyncs,
    failed_sync_keeps_previous_catalog_and_says_why_without_the_password,
    m3u_over_http_from_get_php_classifies_live_vod_and_series,
    a_playlist_url_pointing_at_a_live_stream_hits_the_cap_and_keeps_the_catalog,
    m3u_resync_removes_what_is_gone_keeps_ids_and_adds_new,
    real_world_playlists_sync_with_duplicates_kept_apart,
    provider_input_is_validated_with_field_names,
);

const PASSWORD: &str = "s3cr3t/p+ss%";

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata").join(rel)
}

fn fake_config() -> FakeConfig {
    FakeConfig {
        live_channels: 120,
        live_categories: 6,
        vod_count: 30,
        vod_categories: 3,
        series_count: 7,
        series_categories: 2,
        ..FakeConfig::with_accounts(vec![AccountSpec::new("alice", PASSWORD, 2)])
    }
}

fn xtream(fake: &FakeProvider) -> NewProvider {
    NewProvider {
        name: "Fake".into(),
        kind: Some(ProviderKind::Xtream),
        url: format!("{}/player_api.php?username=alice&password=x", fake.url()),
        username: Some("alice".into()),
        password: Some(Secret::new(PASSWORD)),
        enabled: true,
        ..Default::default()
    }
}

async fn all_channels(store: &Store) -> Vec<tunerpool_catalog::Channel> {
    store.channels(&ChannelQuery { per_page: Some(1000), ..Default::default() }).await.unwrap().items
}

async fn xtream_sync_stores_the_whole_catalog_with_details(backend: Backend) {
    let fake = FakeProvider::start(fake_config()).await.unwrap();
    let (_dir, store, http) = backend.open_in_temp_dir().await;
    let p = store.add_provider(&xtream(&fake)).await.unwrap();
    assert_eq!(p.url, fake.url(), "pasted player_api URL is normalized to the base");
    let r = sync_provider(&store, &http, p.id).await.unwrap();
    assert_eq!((r.live, r.vod, r.series), (120, 30, 7));
    assert_eq!(store.counts(p.id).await.unwrap(), (120, 30, 7));

    let channels = all_channels(&store).await;
    assert_eq!(channels.len(), 120);
    assert_eq!(channels[0].name, "Channel 1");
    assert!(channels.iter().all(|c| c.group.is_some() && c.sources.len() == 1));
    let groups = store.channel_groups().await.unwrap();
    assert_eq!(groups.len(), 6);
    assert_eq!(groups.iter().map(|g| g.channels).sum::<i64>(), 120);

    // The authentication of the sync recorded the account's details.
    let primary = store.primary_account(p.id).await.unwrap().unwrap();
    assert_eq!(primary.details.max_connections, Some(2));
    assert_eq!(primary.details.auth, Some(true));
    assert!(primary.details.exp_date.is_some());

    let provider = store.provider(p.id).await.unwrap();
    assert_eq!(provider.sync.ok, Some(true));
    assert!(provider.sync.duration_ms.is_some());
    assert_eq!((provider.sync.live, provider.sync.vod, provider.sync.series), (120, 30, 7));
}

async fn ids_are_stable_across_resyncs(backend: Backend) {
    let fake = FakeProvider::start(fake_config()).await.unwrap();
    let (_dir, store, http) = backend.open_in_temp_dir().await;
    let p = store.add_provider(&xtream(&fake)).await.unwrap();
    sync_provider(&store, &http, p.id).await.unwrap();
    let before = all_channels(&store).await;
    let r = sync_provider(&store, &http, p.id).await.unwrap();
    assert_eq!((r.removed, r.new_channels), (0, 0));
    let after = all_channels(&store).await;
    assert_eq!(before, after);
}

async fn failed_sync_keeps_previous_catalog_and_says_why_without_the_password(backend: Backend) {
    let fake = FakeProvider::start(fake_config()).await.unwrap();
    let (_dir, store, http) = backend.open_in_temp_dir().await;
    let p = store.add_provider(&xtream(&fake)).await.unwrap();
    sync_provider(&store, &http, p.id).await.unwrap();
    let before = all_channels(&store).await;

    // An HTML error page instead of JSON.
    fake.set_fault(Fault::new(FaultKind::ApiHtml));
    let err = sync_provider(&store, &http, p.id).await.unwrap_err().to_string();
    assert!(err.contains("non-JSON"), "{err}");
    assert!(!err.contains(PASSWORD) && !err.contains("s3cr3t"), "password leaked: {err}");
    assert_eq!(all_channels(&store).await, before);
    let provider = store.provider(p.id).await.unwrap();
    assert_eq!(provider.sync.ok, Some(false));
    assert!(provider.sync.error.unwrap().contains("non-JSON"));
    fake.clear_faults();

    // Credentials refused (auth=0): refused clearly, catalog kept.
    fake.update_account("alice", |a| a.auth = false);
    let err = sync_provider(&store, &http, p.id).await.unwrap_err().to_string();
    assert!(err.contains("auth=0"), "{err}");
    assert_eq!(all_channels(&store).await, before);

    // Unreachable provider.
    fake.update_account("alice", |a| a.auth = true);
    let url = fake.url();
    fake.shutdown().await;
    let err = sync_provider(&store, &http, p.id).await.unwrap_err().to_string();
    assert!(err.contains("cannot reach") && err.contains(&url), "{err}");
    assert!(!err.contains("s3cr3t"), "{err}");
    assert_eq!(all_channels(&store).await, before);
}

async fn m3u_over_http_from_get_php_classifies_live_vod_and_series(backend: Backend) {
    let fake = FakeProvider::start(fake_config()).await.unwrap();
    let (_dir, store, http) = backend.open_in_temp_dir().await;
    let url = format!("{}/get.php?username=alice&password={}&type=m3u_plus&output=ts", fake.url(), urlenc(PASSWORD));
    let p = store
        .add_provider(&NewProvider {
            name: "Fake M3U".into(),
            kind: Some(ProviderKind::M3u),
            url,
            enabled: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let r = sync_provider(&store, &http, p.id).await.unwrap();
    assert_eq!(r.live, 120);
    assert_eq!(r.vod, 30);
    assert!(r.series >= 7, "one entry per episode: {}", r.series);
    assert!(r.epg_urls.iter().any(|u| u.contains("xmltv.php")), "{:?}", r.epg_urls);
    let provider = store.provider(p.id).await.unwrap();
    assert!(provider.epg_url.as_deref().unwrap().contains("xmltv.php"));
    // The API view of the provider never shows the password in the URL.
    let json = serde_json::to_string(&provider).unwrap();
    assert!(!json.contains("s3cr3t") && !json.contains(&urlenc(PASSWORD)), "{json}");
}

/// A playlist URL that points at a live stream (an endless body) stops at the
/// playlist cap: the sync fails naming the key to raise, and the previous
/// catalog stays.
async fn a_playlist_url_pointing_at_a_live_stream_hits_the_cap_and_keeps_the_catalog(backend: Backend) {
    let fake = FakeProvider::start(fake_config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = backend.open(dir.path()).await;
    let caps = tunerpool_upstream::Caps { playlist: 256 << 10, ..Default::default() };
    let http =
        UpstreamHttp::new(HttpSettings { spool_dir: dir.path().join("tmp"), caps, ..Default::default() }).unwrap();
    let p = store
        .add_provider(&NewProvider {
            name: "Fake M3U".into(),
            kind: Some(ProviderKind::M3u),
            url: format!("{}/get.php?username=alice&password={}&type=m3u&output=ts", fake.url(), urlenc(PASSWORD)),
            enabled: true,
            ..Default::default()
        })
        .await
        .unwrap();
    sync_provider(&store, &http, p.id).await.unwrap();
    let before = all_channels(&store).await;
    assert_eq!(before.len(), 120);

    let live = format!("{}/live/alice/{}/1.ts", fake.url(), urlenc(PASSWORD));
    let patch = tunerpool_catalog::ProviderPatch { url: Some(live), ..Default::default() };
    store.update_provider(p.id, &patch).await.unwrap();
    let err = tokio::time::timeout(std::time::Duration::from_secs(60), sync_provider(&store, &http, p.id))
        .await
        .expect("the download is stopped at the cap")
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than 256 KiB") && err.contains("sync.max_playlist_bytes"), "{err}");
    assert!(!err.contains("s3cr3t"), "{err}");
    assert_eq!(all_channels(&store).await, before, "the previous catalog is kept");
    let provider = store.provider(p.id).await.unwrap();
    assert!(provider.sync.error.unwrap().contains("sync.max_playlist_bytes"));
    assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0, "no spool file left");
}

fn urlenc(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

async fn m3u_resync_removes_what_is_gone_keeps_ids_and_adds_new(backend: Backend) {
    let (dir, store, http) = backend.open_in_temp_dir().await;
    let file = dir.path().join("list.m3u");
    let entry = |i: u32| format!("#EXTINF:-1 tvg-id=\"c{i}\" group-title=\"G{}\",Chan {i}\nhttp://h/{i}.ts\n", i % 3);
    std::fs::write(&file, format!("#EXTM3U\n{}", (1..=10).map(entry).collect::<String>())).unwrap();
    let id = add_m3u_file(&store, "file", &file).await;
    sync_provider(&store, &http, id).await.unwrap();
    let before = all_channels(&store).await;
    assert_eq!(before.len(), 10);

    // Drop 2 and 5, rename 3, add 11.
    let mut text = String::from("#EXTM3U\n");
    for i in [1, 3, 4, 6, 7, 8, 9, 10, 11] {
        text += &if i == 3 { entry(3).replace("Chan 3", "Channel Three") } else { entry(i) };
    }
    std::fs::write(&file, text).unwrap();
    let r = sync_provider(&store, &http, id).await.unwrap();
    assert_eq!((r.live, r.removed, r.new_channels), (9, 2, 1));
    // The lineup keeps the channels of 2 and 5, unavailable, for when they
    // come back; the channel names are the user's (the source shows the
    // provider's new name).
    let after = all_channels(&store).await;
    assert_eq!(after.len(), 11);
    let id_of = |list: &[tunerpool_catalog::Channel], tvg: &str| {
        list.iter().find(|c| c.tvg_id.as_deref() == Some(tvg)).map(|c| c.id)
    };
    for tvg in ["c1", "c2", "c3", "c4", "c10"] {
        assert_eq!(id_of(&before, tvg), id_of(&after, tvg), "{tvg} kept its id");
    }
    let gone: Vec<&str> = after.iter().filter(|c| !c.available).map(|c| c.name.as_str()).collect();
    assert_eq!(gone, ["Chan 2", "Chan 5"]);
    let three = after.iter().find(|c| c.tvg_id.as_deref() == Some("c3")).unwrap();
    assert_eq!((three.name.as_str(), three.sources[0].name.as_str()), ("Chan 3", "Channel Three"));
    assert!(id_of(&after, "c11").unwrap() > before.iter().map(|c| c.id).max().unwrap());

    // A playlist that turned into an HTML page must not wipe the catalog.
    std::fs::write(&file, "<html><body>Service unavailable</body></html>").unwrap();
    let err = sync_provider(&store, &http, id).await.unwrap_err();
    assert!(matches!(err, CatalogError::Conflict(_)), "{err}");
    assert!(err.to_string().contains("no entries"), "{err}");
    assert_eq!(all_channels(&store).await, after);
}

async fn real_world_playlists_sync_with_duplicates_kept_apart(backend: Backend) {
    let (_dir, store, http) = backend.open_in_temp_dir().await;
    // 32 entries, heavy URL duplication and no #EXTM3U header.
    let id = add_m3u_file(&store, "txt", &testdata("real/m3u/iptv-org_M3u.txt")).await;
    let r = sync_provider(&store, &http, id).await.unwrap();
    assert_eq!(r.live + r.vod + r.series, 32, "{r:?}");
    // 324 entries of the Italian list, all live.
    let id = add_m3u_file(&store, "it", &testdata("real/m3u/iptv-org_it.m3u")).await;
    let r = sync_provider(&store, &http, id).await.unwrap();
    assert_eq!(r.live, 324);
    // User agents from attributes / EXTVLCOPT are kept as stream headers.
    let id = add_m3u_file(&store, "odtv", &testdata("real/m3u/iptv-org_az_odtv.m3u")).await;
    sync_provider(&store, &http, id).await.unwrap();
    let with_headers = fetch_i64(
        &store,
        &format!("SELECT COUNT(*) FROM streams WHERE provider_id = {id} AND headers LIKE '%user-agent%'"),
    )
    .await;
    assert_eq!(with_headers, 32);
}

async fn provider_input_is_validated_with_field_names(backend: Backend) {
    let (_dir, store, _http) = backend.open_in_temp_dir().await;
    let err = store
        .add_provider(&NewProvider {
            name: " ".into(),
            kind: Some(ProviderKind::Xtream),
            url: "panel.example:8080".into(),
            max_streams: Some(-1),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let CatalogError::Invalid(fields) = err else { panic!("{err}") };
    let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(names, ["name", "url", "username", "password", "max_streams"], "{fields:?}");
    assert!(fields[1].message.contains("http://"), "{}", fields[1].message);

    let ok = NewProvider {
        name: "A".into(),
        kind: Some(ProviderKind::Agtv),
        url: "/tmp/a.m3u".into(),
        ..Default::default()
    };
    let p = store.add_provider(&ok).await.unwrap();
    assert_eq!(p.max_streams, Some(5), "AGTV capacity defaults to 5");
    let CatalogError::Refused(fields) = store.add_provider(&ok).await.unwrap_err() else { panic!() };
    assert_eq!(fields[0].field, "name");
    assert!(fields[0].message.contains("already exists"));
}
