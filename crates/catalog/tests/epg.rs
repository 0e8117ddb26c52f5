//! Provider guides: fetched from the simulated panel (Xtream `xmltv.php`,
//! M3U `x-tvg-url`), stored as files, status recorded, and guide channels
//! linked to our channels.

use fakeprovider::{AccountSpec, FakeConfig, FakeProvider};
use tunerpool_catalog::epg::{guide_links, guide_path, refresh_guide, search_guide_channels, statuses, GuideLink};
use tunerpool_catalog::lineup::ChannelPatch;
use tunerpool_catalog::sync::sync_provider;
use tunerpool_catalog::{CatalogError, ChannelQuery, NewProvider, ProviderKind, ProviderPatch, Secret, Store};
use tunerpool_testkit::{backend_tests, execute, Backend};
use tunerpool_upstream::UpstreamHttp;

backend_tests!(
    xtream_guide_is_fetched_stored_and_linked,
    m3u_guide_comes_from_x_tvg_url_and_failures_keep_the_old_guide,
    links_follow_merges_hidden_channels_and_groups,
    guide_channels_map_by_name_and_can_be_chosen,
);

const PW: &str = "m/p+w$";

async fn setup(backend: Backend) -> (tempfile::TempDir, Store, UpstreamHttp, FakeProvider) {
    let (dir, store, http) = backend.open_in_temp_dir().await;
    let fake = FakeProvider::start(FakeConfig::with_accounts(vec![AccountSpec::new("main", PW, 2)])).await.unwrap();
    (dir, store, http, fake)
}

async fn add(store: &Store, new: NewProvider) -> i64 {
    store.add_provider(&NewProvider { enabled: true, ..new }).await.unwrap().id
}

async fn xtream(store: &Store, fake: &FakeProvider, name: &str) -> i64 {
    add(
        store,
        NewProvider {
            name: name.into(),
            kind: Some(ProviderKind::Xtream),
            url: fake.url(),
            username: Some("main".into()),
            password: Some(Secret::new(PW)),
            ..Default::default()
        },
    )
    .await
}

fn links(v: &[GuideLink]) -> Vec<(i64, &str, &str)> {
    v.iter().map(|l| (l.provider_id, l.source_id.as_str(), l.output_id.as_str())).collect()
}

async fn xtream_guide_is_fetched_stored_and_linked(backend: Backend) {
    let (dir, store, http, fake) = setup(backend).await;
    let pid = xtream(&store, &fake, "X").await;
    sync_provider(&store, &http, pid).await.unwrap();
    let report = refresh_guide(&store, &http, pid).await.unwrap().expect("an Xtream provider has a guide");
    assert_eq!((report.channels, report.programmes), (18, 18 * 30));
    let path = guide_path(dir.path(), pid);
    assert_eq!(path, dir.path().join("epg").join(format!("provider-{pid}.xml")));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), report.bytes);
    let status = &statuses(&store).await.unwrap()[0];
    assert_eq!(
        (status.ok, status.channels, status.programmes, status.error.as_deref()),
        (Some(true), Some(18), Some(540), None)
    );
    assert_eq!(status.fetched_at, status.ok_at);

    // Every channel with an EPG id is linked to itself (tvg-id = the guide's id).
    let all = guide_links(&store, None).await.unwrap();
    assert_eq!(all.len(), 18);
    assert_eq!(links(&all)[0], (pid, "ch1.fake", "ch1.fake"));
    assert!(!all.iter().any(|l| l.source_id == "ch7.fake"));
}

async fn m3u_guide_comes_from_x_tvg_url_and_failures_keep_the_old_guide(backend: Backend) {
    let (dir, store, http, fake) = setup(backend).await;
    let playlist = format!("{}/get.php?username=main&password=m%2Fp%2Bw%24&type=m3u_plus&output=ts", fake.url());
    let pid = add(
        &store,
        NewProvider { name: "M".into(), kind: Some(ProviderKind::M3u), url: playlist, ..Default::default() },
    )
    .await;
    // Before the first sync nothing is known about a guide.
    assert!(refresh_guide(&store, &http, pid).await.unwrap().is_none());
    sync_provider(&store, &http, pid).await.unwrap();
    let detected = store.provider(pid).await.unwrap().epg_url.unwrap();
    assert!(detected.contains("/xmltv.php?username=main&password="), "{detected}");
    let report = refresh_guide(&store, &http, pid).await.unwrap().unwrap();
    assert_eq!(report.channels, 18);
    let good = std::fs::read(guide_path(dir.path(), pid)).unwrap();

    // A wrong password: the error is recorded without it, the guide stays.
    let wrong = format!("{}/xmltv.php?username=main&password=s3cr3t-wrong", fake.url());
    store.update_provider(pid, &ProviderPatch { epg_url: Some(Some(wrong)), ..Default::default() }).await.unwrap();
    let e = refresh_guide(&store, &http, pid).await.unwrap_err();
    assert!(matches!(e, CatalogError::Guide { .. }), "{e}");
    let status = &statuses(&store).await.unwrap()[0];
    let msg = status.error.clone().unwrap();
    assert!(msg.contains("401") && !msg.contains("s3cr3t"), "{msg}");
    assert_eq!((status.ok, status.channels), (Some(false), Some(18)), "counts of the kept guide stay");
    assert!(status.fetched_at >= status.ok_at);
    assert_eq!(std::fs::read(guide_path(dir.path(), pid)).unwrap(), good);
}

async fn links_follow_merges_hidden_channels_and_groups(backend: Backend) {
    let (_dir, store, http, fake) = setup(backend).await;
    let a = xtream(&store, &fake, "A").await;
    let b = xtream(&store, &fake, "B").await;
    store.update_provider(b, &ProviderPatch { priority: Some(5), ..Default::default() }).await.unwrap();
    sync_provider(&store, &http, a).await.unwrap();
    sync_provider(&store, &http, b).await.unwrap();
    // Both providers list the same channels: B's streams joined A's
    // channels. B's channel 2 (under another guide id) is split off and
    // merged into channel 1 as a further source; channel 3 is hidden.
    let channels = store.channels(&ChannelQuery { per_page: Some(1000), ..Default::default() }).await.unwrap().items;
    let (ch1, ch2, ch3) = (&channels[0], &channels[1], &channels[2]);
    assert_eq!(ch2.sources.iter().map(|s| s.provider_id).collect::<Vec<_>>(), [a, b]);
    execute(&store, &format!("UPDATE streams SET tvg_id = 'CH2.other@HD' WHERE id = {}", ch2.sources[1].stream_id))
        .await;
    let b2 = store.split_source(ch2.id, ch2.sources[1].id).await.unwrap();
    store.merge_channels(ch1.id, &[b2.id]).await.unwrap();
    store.update_channel(ch3.id, &ChannelPatch { hidden: Some(true), ..Default::default() }).await.unwrap();

    let all = guide_links(&store, None).await.unwrap();
    let l = links(&all);
    assert!(l.contains(&(b, "CH2.other@HD", "ch1.fake")), "merged source maps to the channel's id");
    assert!(l.contains(&(a, "ch2.fake", "ch2.fake")) && l.contains(&(b, "ch4.fake", "ch4.fake")));
    assert!(!l.iter().any(|x| x.1 == "ch3.fake"), "hidden channel left out, whatever the source");
    assert!(!l.iter().any(|(_, _, o)| *o == "CH2.other@HD"), "a merged stream is not a channel");
    // Provider A (priority 0) comes before B (priority 5).
    let first_b = l.iter().position(|x| x.0 == b).unwrap();
    assert!(l[..first_b].iter().all(|x| x.0 == a) && l[first_b..].iter().all(|x| x.0 == b));

    // Groups: only the channels of those lineup groups (and their merged sources).
    let group = ch1.group_id.unwrap();
    let in_group = guide_links(&store, Some(&[group])).await.unwrap();
    assert!(!in_group.is_empty() && in_group.len() < all.len());
    assert!(links(&in_group).contains(&(b, "CH2.other@HD", "ch1.fake")));
    assert!(guide_links(&store, Some(&[])).await.unwrap().is_empty());
}

/// The guide's channels are indexed at each fetch: a source without a
/// tvg-id is fed by the guide channel named like it, and a guide id chosen
/// from a search feeds the channel it was set on.
async fn guide_channels_map_by_name_and_can_be_chosen(backend: Backend) {
    let (_dir, store, http, fake) = setup(backend).await;
    let pid = xtream(&store, &fake, "X").await;
    sync_provider(&store, &http, pid).await.unwrap();
    refresh_guide(&store, &http, pid).await.unwrap().unwrap();
    let found = search_guide_channels(&store, "channel 1", 50).await.unwrap();
    let names: Vec<&str> = found.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Channel 1",
            "Channel 10",
            "Channel 11",
            "Channel 12",
            "Channel 13",
            "Channel 15",
            "Channel 16",
            "Channel 17",
            "Channel 18",
            "Channel 19"
        ]
    );
    assert_eq!((found[0].id.as_str(), found[0].provider.as_str()), ("ch1.fake", "X"));
    assert!(search_guide_channels(&store, "%", 50).await.unwrap().is_empty(), "LIKE wildcards are literal");

    let channels = store.channels(&ChannelQuery { per_page: Some(100), ..Default::default() }).await.unwrap().items;
    // Channel 1's stream loses its tvg-id at the provider: the guide still feeds it, by name.
    execute(&store, &format!("UPDATE streams SET tvg_id = NULL WHERE id = {}", channels[0].sources[0].stream_id)).await;
    store.update_channel(channels[0].id, &ChannelPatch { tvg_id: Some(None), ..Default::default() }).await.unwrap();
    // Channel 7 has no guide id at all; the user picks ch9.fake for it, and hides channel 9.
    store
        .update_channel(
            channels[6].id,
            &ChannelPatch { tvg_id: Some(Some(found[0].id.replace('1', "9"))), ..Default::default() },
        )
        .await
        .unwrap();
    store.update_channel(channels[8].id, &ChannelPatch { hidden: Some(true), ..Default::default() }).await.unwrap();
    let l = guide_links(&store, None).await.unwrap();
    let l = links(&l);
    assert!(l.contains(&(pid, "ch1.fake", "ch1.fake")), "by name: {l:?}");
    assert!(l.contains(&(pid, "ch9.fake", "ch9.fake")), "chosen: {l:?}");
    assert_eq!(l.iter().filter(|x| x.1 == "ch9.fake").count(), 1);
    assert_eq!(l.len(), 18, "{l:?}");
}
