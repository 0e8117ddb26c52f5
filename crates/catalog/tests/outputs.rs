//! What the client outputs read (`outputs.rs`), on both backends: the
//! listings page by page and filtered by the user's groups, single items,
//! visibility of what a client asks to play, and the episodes learned from
//! a provider's series info. The bytes the outputs make of these are held
//! equal across backends by http's `tests/outputs.rs`; this holds the reads
//! themselves.

use fakeprovider::{AccountSpec, FakeConfig, FakeProvider};
use tunerpool_catalog::lineup::ChannelPatch;
use tunerpool_catalog::outputs::{ItemFilter, NewEpisode, EPISODE_ID_BASE};
use tunerpool_catalog::{ChannelQuery, MediaKind, ProviderPatch};
use tunerpool_testkit::{backend_tests, execute, Backend};

backend_tests!(listings_page_filter_and_hide, episodes_are_stored_once_and_playable_where_their_series_is);

async fn synced(backend: Backend) -> (tempfile::TempDir, tunerpool_catalog::Store, i64, FakeProvider) {
    let fake = FakeProvider::start(FakeConfig {
        live_channels: 30,
        vod_count: 25,
        series_count: 7,
        ..FakeConfig::with_accounts(vec![AccountSpec::new("a", "pa", 1)])
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (store, http) = backend.open_with_http(dir.path()).await;
    let pid = tunerpool_testkit::add_xtream(&store, &fake, &[("a", "pa")]).await;
    tunerpool_testkit::sync_with_details(&store, &http, pid).await;
    (dir, store, pid, fake)
}

async fn listings_page_filter_and_hide(backend: Backend) {
    let (_dir, store, pid, _fake) = synced(backend).await;
    let all = ItemFilter::default();

    // Live channels in number order, in pages that join up.
    let first = store.live_items(&all, 0, 10).await.unwrap();
    let second = store.live_items(&all, first.last().unwrap().number, 100).await.unwrap();
    assert_eq!((first.len(), second.len()), (10, 20));
    let numbers: Vec<i64> = first.iter().chain(&second).map(|i| i.number).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    assert!(first.iter().all(|i| i.provider_id == pid && i.chno == Some(i.number.to_string())));
    let movies = store.movie_items(&all, 0, 100).await.unwrap();
    let series = store.series_items(&all, 0, 100).await.unwrap();
    assert_eq!((movies.len(), series.len()), (25, 7));
    assert!(movies.windows(2).all(|w| w[0].id < w[1].id));
    assert!(series.iter().all(|s| !s.has_url), "Xtream series are shows, not episodes");

    // The user's groups filter every kind; one group narrows further.
    let live_groups = store.group_items(MediaKind::Live, &all).await.unwrap();
    let vod_groups = store.group_items(MediaKind::Movie, &all).await.unwrap();
    assert!(live_groups.len() > 1 && !vod_groups.is_empty(), "{live_groups:?} {vod_groups:?}");
    let g = live_groups[1].id;
    let only = ItemFilter { allowed_groups: Some(vec![g, vod_groups[0].id]), group: None };
    let live = store.live_items(&only, 0, 100).await.unwrap();
    assert!(!live.is_empty() && live.len() < 30 && live.iter().all(|i| i.group_id == Some(g)), "{live:?}");
    assert_eq!(store.live_items(&ItemFilter { allowed_groups: None, group: Some(g) }, 0, 100).await.unwrap(), live);
    assert!(store.movie_items(&only, 0, 100).await.unwrap().iter().all(|m| m.group_id == Some(vod_groups[0].id)));
    assert_eq!(store.group_items(MediaKind::Live, &only).await.unwrap(), vec![live_groups[1].clone()]);
    let none = ItemFilter { allowed_groups: Some(vec![]), group: None };
    assert!(store.live_items(&none, 0, 100).await.unwrap().is_empty());
    assert!(store.group_items(MediaKind::Movie, &none).await.unwrap().is_empty());

    // One item, and whether a client may play it.
    let one = &live[0];
    assert_eq!(store.live_item(&only, one.id).await.unwrap().as_ref(), Some(one));
    assert!(store.item_visible(&only, MediaKind::Live, one.id).await.unwrap());
    assert!(!store.item_visible(&none, MediaKind::Live, one.id).await.unwrap());
    assert!(store.item_visible(&all, MediaKind::Movie, movies[0].id).await.unwrap());
    assert!(!store.item_visible(&all, MediaKind::Series, series[0].id).await.unwrap(), "a show has no URL");
    assert_eq!(store.movie_item(&all, movies[3].id).await.unwrap().as_ref(), Some(&movies[3]));

    // A hidden channel, a hidden group and a disabled provider are not listed.
    let c = store.channels(&ChannelQuery::default()).await.unwrap().items.remove(0);
    store.update_channel(c.id, &ChannelPatch { hidden: Some(true), ..Default::default() }).await.unwrap();
    assert!(store.live_item(&all, c.id).await.unwrap().is_none());
    assert_eq!(store.live_items(&all, 0, 100).await.unwrap().len(), 29);
    execute(&store, &format!("UPDATE lineup_groups SET hidden = TRUE WHERE id = {g}")).await;
    assert!(store.live_items(&all, 0, 100).await.unwrap().iter().all(|i| i.group_id != Some(g)));
    assert!(store.group_items(MediaKind::Live, &all).await.unwrap().iter().all(|x| x.id != g));
    store.update_provider(pid, &ProviderPatch { enabled: Some(false), ..Default::default() }).await.unwrap();
    assert!(store.live_items(&all, 0, 100).await.unwrap().is_empty());
    assert!(store.movie_items(&all, 0, 100).await.unwrap().is_empty());
    assert!(store.group_items(MediaKind::Movie, &all).await.unwrap().is_empty());
}

async fn episodes_are_stored_once_and_playable_where_their_series_is(backend: Backend) {
    let (_dir, store, _pid, _fake) = synced(backend).await;
    let all = ItemFilter::default();
    let show = store.series_items(&all, 0, 1).await.unwrap().remove(0);
    let episodes = |names: &[&str]| -> Vec<NewEpisode> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| NewEpisode {
                upstream_id: 500 + i as i64,
                name: n.to_string(),
                container_extension: Some("MKV".into()),
            })
            .collect()
    };
    let ids = store.upsert_episodes(show.id, &episodes(&["E1", "E2"])).await.unwrap();
    assert!(ids.len() == 2 && ids.iter().all(|i| *i > EPISODE_ID_BASE), "{ids:?}");
    // Listed again (renamed): the same ids.
    assert_eq!(store.upsert_episodes(show.id, &episodes(&["E1 new", "E2"])).await.unwrap(), ids);
    assert!(store.item_visible(&all, MediaKind::Series, ids[0]).await.unwrap());
    let other_group = ItemFilter { allowed_groups: Some(vec![-1]), group: None };
    assert!(!store.item_visible(&other_group, MediaKind::Series, ids[0]).await.unwrap());
    assert!(!store.item_visible(&all, MediaKind::Series, EPISODE_ID_BASE + 999_999).await.unwrap());
}
