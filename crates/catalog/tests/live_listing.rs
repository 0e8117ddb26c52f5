//! The materialized live listing (`0011_live_listing.sql`) against the
//! lineup's own query: after every kind of write that changes what clients
//! are listed (syncs, re-attaching renumbered streams, merges, splits,
//! source order, renumbering, groups, deletes, providers disabled and
//! removed), the listing is stale until rebuilt, and once rebuilt it lists
//! exactly what the lineup's query lists, for every filter. On both
//! backends: PostgreSQL's triggers (`migrations_pg/0002_live_listing.sql`)
//! are per statement where SQLite's are per row.

use fakeprovider::{FakeConfig, FakeProvider};
use tunerpool_catalog::lineup::{BulkChange, ChannelPatch, GroupPatch, LineupSettings};
use tunerpool_catalog::outputs::{ItemFilter, LiveFormat, LiveItem, LiveRenderer, RenderedLive};
use tunerpool_catalog::sync::sync_provider;
use tunerpool_catalog::{ChannelQuery, ProviderPatch, Store};
use tunerpool_testkit::{add_xtream_named, backend_tests, lineup, overlapping, Backend};

backend_tests!(
    the_materialized_listing_follows_every_write,
    writes_that_change_no_listing_leave_it_fresh_and_one_rebuild_runs_at_a_time,
);

/// Writes every field of the item, so that any difference shows.
struct Everything;

impl LiveRenderer for Everything {
    fn render(&self, item: &LiveItem, out: &mut RenderedLive) {
        out.m3u = format!("#{}|{}\n", item.number, item.name);
        out.m3u_plus = format!("#{item:?}\n");
        out.xtream = serde_json::to_string(item).unwrap();
    }
}

/// What the lineup's query lists for `f`, in each format, with the URL
/// `P{id}.x`.
async fn expected(store: &Store, f: &ItemFilter) -> (String, String, String) {
    let (mut m3u, mut plus, mut json) = (String::new(), String::new(), Vec::new());
    let mut after = 0;
    loop {
        // Small pages: the paging of both sides is exercised too.
        let items = store.live_items(f, after, 7).await.unwrap();
        for i in &items {
            let mut r = RenderedLive::default();
            Everything.render(i, &mut r);
            m3u += &format!("{}P{}.x\n", r.m3u, i.id);
            plus += &format!("{}P{}.x\n", r.m3u_plus, i.id);
            json.push(r.xtream);
        }
        match items.last() {
            Some(last) if items.len() == 7 => after = last.number,
            _ => break,
        }
    }
    (m3u, plus, json.join(","))
}

/// What the materialized listing lists for `f`, page by page as the outputs read it.
async fn listed(store: &Store, f: &ItemFilter, format: LiveFormat) -> String {
    let (mut out, mut after) = (String::new(), 0);
    loop {
        let page = store.live_listing_page(f, format, ("P", ".x\n"), after, 5).await.unwrap();
        out += &page.text;
        if page.rows < 5 {
            // JSON objects each come after a comma; the reader drops the first.
            return match format {
                LiveFormat::Xtream => out.strip_prefix(',').unwrap_or(&out).to_string(),
                _ => out,
            };
        }
        after = page.last;
    }
}

/// The write just made must have made the listing stale; rebuilt, it must
/// list what the lineup lists, unfiltered, per allowed groups and per group.
async fn check(store: &Store, what: &str) {
    assert!(!store.live_listing_fresh().await.unwrap(), "{what}: the listing must be stale after the write");
    assert!(store.rebuild_live_listing(&Everything).await.unwrap(), "{what}: rebuilt");
    assert!(store.live_listing_fresh().await.unwrap(), "{what}: fresh once rebuilt");
    let groups: Vec<i64> =
        store.channels(&ChannelQuery::default()).await.unwrap().items.iter().filter_map(|c| c.group_id).collect();
    let mut filters = vec![ItemFilter::default(), ItemFilter { allowed_groups: Some(vec![]), group: None }];
    if let Some(&g) = groups.first() {
        filters.push(ItemFilter { allowed_groups: Some(vec![g]), group: None });
        filters.push(ItemFilter { allowed_groups: None, group: Some(g) });
    }
    for f in &filters {
        let (m3u, plus, json) = expected(store, f).await;
        assert_eq!(listed(store, f, LiveFormat::M3u).await, m3u, "{what}: m3u, {f:?}");
        assert_eq!(listed(store, f, LiveFormat::M3uPlus).await, plus, "{what}: m3u_plus, {f:?}");
        assert_eq!(listed(store, f, LiveFormat::Xtream).await, json, "{what}: xtream, {f:?}");
    }
}

async fn the_materialized_listing_follows_every_write(backend: Backend) {
    let a = FakeProvider::start(overlapping::provider_a()).await.unwrap();
    let b = FakeProvider::start(overlapping::provider_b()).await.unwrap();
    let (_dir, store, http) = backend.open_in_temp_dir().await;

    // A new database: stale (nothing built yet), and empty once built.
    check(&store, "empty").await;
    assert_eq!(
        store.live_listing_page(&ItemFilter::default(), LiveFormat::Xtream, ("", ""), 0, 10).await.unwrap().rows,
        0
    );

    let pa = add_xtream_named(&store, "A", &a, &[("a", "pa")]).await;
    sync_provider(&store, &http, pa).await.unwrap();
    check(&store, "first sync").await;
    let pb = add_xtream_named(&store, "B", &b, &[("b", "pb")]).await;
    sync_provider(&store, &http, pb).await.unwrap();
    check(&store, "second provider joins").await;
    assert_eq!(
        store.live_listing_page(&ItemFilter::default(), LiveFormat::Xtream, ("", ""), 0, 100).await.unwrap().rows,
        25
    );

    // A re-sync with nothing new still leaves a correct listing.
    sync_provider(&store, &http, pa).await.unwrap();
    check(&store, "re-sync").await;
    // Renumbered streams re-attach to the same channels.
    a.renumber(5000);
    sync_provider(&store, &http, pa).await.unwrap();
    check(&store, "renumbered upstream").await;

    let all = lineup(&store).await;
    let (one, two, seven) = (&all[0], &all[1], &all[6]);
    store
        .update_channel(seven.id, &ChannelPatch { name: Some("Seven".into()), number: Some(700), ..Default::default() })
        .await
        .unwrap();
    check(&store, "rename and renumber a channel").await;
    store.update_channel(two.id, &ChannelPatch { hidden: Some(true), ..Default::default() }).await.unwrap();
    check(&store, "hide a channel").await;
    store.update_channel(two.id, &ChannelPatch { hidden: Some(false), ..Default::default() }).await.unwrap();
    check(&store, "show it again").await;

    // Source order: B's source first makes B's stream the one listed.
    let ids: Vec<i64> = one.sources.iter().rev().map(|s| s.id).collect();
    assert_eq!(ids.len(), 2);
    store.order_sources(one.id, Some(&ids)).await.unwrap();
    check(&store, "reorder sources").await;
    let split = store.split_source(one.id, ids[0]).await.unwrap();
    check(&store, "split a source off").await;
    store.merge_channels(one.id, &[split.id]).await.unwrap();
    check(&store, "merge it back").await;

    // Groups: a new one, channels moved into it in bulk, renumbered, hidden.
    let sports = store.create_group(&GroupPatch { name: Some("Sports".into()), ..Default::default() }).await.unwrap();
    store
        .bulk_change(&BulkChange {
            q: Some("UK: CHANNEL 2".into()),
            group_id: Some(Some(sports.id)),
            ..Default::default()
        })
        .await
        .unwrap();
    check(&store, "move channels into a group").await;
    store.renumber_group(sports.id, 101).await.unwrap();
    check(&store, "renumber a group").await;
    store.update_group(sports.id, &GroupPatch { name: Some("Sport".into()), ..Default::default() }).await.unwrap();
    check(&store, "rename a group").await;
    store.update_group(sports.id, &GroupPatch { hidden: Some(true), ..Default::default() }).await.unwrap();
    check(&store, "hide a group").await;
    store.delete_group(sports.id).await.unwrap();
    check(&store, "delete a group").await;
    store.delete_channel(two.id).await.unwrap();
    check(&store, "delete a channel").await;

    // Streams waiting for the user, made channels or added as sources.
    store.set_lineup_settings(LineupSettings { match_streams: false, auto_create: false, ..Default::default() });
    b.renumber(100);
    sync_provider(&store, &http, pb).await.unwrap();
    check(&store, "B renumbered, matching off").await;
    // The deleted channel's streams wait for the user.
    let waiting = store.unassigned_streams(100).await.unwrap();
    assert!(waiting.len() >= 2, "{waiting:?}");
    store.create_channel_from_stream(waiting[0].stream_id).await.unwrap();
    check(&store, "a stream made a channel").await;
    store.add_source(seven.id, waiting[1].stream_id).await.unwrap();
    check(&store, "a stream added as a source").await;

    // Providers: disabled (its channels without another source go), enabled,
    // removed (the same), re-added.
    store.update_provider(pa, &ProviderPatch { enabled: Some(false), ..Default::default() }).await.unwrap();
    check(&store, "disable a provider").await;
    store.update_provider(pa, &ProviderPatch { enabled: Some(true), ..Default::default() }).await.unwrap();
    check(&store, "enable it again").await;
    store.update_provider(pa, &ProviderPatch { priority: Some(9), ..Default::default() }).await.unwrap();
    check(&store, "provider priority").await;
    store.delete_provider(pb).await.unwrap();
    check(&store, "remove a provider").await;
    store.set_lineup_settings(LineupSettings::default());
    let pb2 = add_xtream_named(&store, "B again", &b, &[("b", "pb")]).await;
    sync_provider(&store, &http, pb2).await.unwrap();
    check(&store, "provider re-added").await;
}

async fn writes_that_change_no_listing_leave_it_fresh_and_one_rebuild_runs_at_a_time(backend: Backend) {
    let a = FakeProvider::start(FakeConfig { live_channels: 5, ..overlapping::provider_a() }).await.unwrap();
    let (_dir, store, http) = backend.open_in_temp_dir().await;
    let pa = add_xtream_named(&store, "A", &a, &[("a", "pa")]).await;
    sync_provider(&store, &http, pa).await.unwrap();
    check(&store, "first sync").await;
    // A provider's name is not listed.
    store.update_provider(pa, &ProviderPatch { name: Some("A2".into()), ..Default::default() }).await.unwrap();
    assert!(store.live_listing_fresh().await.unwrap());
    // Already fresh: a rebuild changes nothing and says so.
    assert!(!store.rebuild_live_listing(&Everything).await.unwrap());
    // Two at once: the second waits for the first, then finds nothing to do;
    // the listing ends up right.
    let c = lineup(&store).await.remove(0);
    store.update_channel(c.id, &ChannelPatch { name: Some("Renamed".into()), ..Default::default() }).await.unwrap();
    let (x, y) = tokio::join!(store.rebuild_live_listing(&Everything), store.rebuild_live_listing(&Everything));
    assert!(x.unwrap() ^ y.unwrap(), "exactly one of two concurrent rebuilds rebuilds");
    assert!(store.live_listing_fresh().await.unwrap());
    let page = store.live_listing_page(&ItemFilter::default(), LiveFormat::M3u, ("P", ".x\n"), 0, 10).await.unwrap();
    assert!(page.text.starts_with(&format!("#1|Renamed\nP{}.x\n", c.id)), "{}", page.text);
}
