//! The lineup against two simulated providers whose catalogs overlap (real
//! sockets, a real SQLite file): matching on sync, re-attaching renumbered
//! streams, curation, and the normalizer on real-world names.

use std::path::{Path, PathBuf};

use fakeprovider::FakeProvider;
use tunerpool_catalog::lineup::{normalize_name, BulkChange, ChannelPatch, GroupPatch, LineupSettings};
use tunerpool_catalog::sync::sync_provider;
use tunerpool_catalog::{CatalogError, Channel};
use tunerpool_testkit::{add_m3u_file, add_xtream_named, backend_tests, execute, lineup, overlapping, Backend};

backend_tests!(
    overlapping_providers_share_channels_and_renumbering_keeps_them,
    matching_follows_the_settings,
    curation_edits_and_refuses_bad_input_without_changing_anything,
    a_failed_sync_changes_no_lineup_channel,
    a_sync_failing_mid_way_through_the_lineup_changes_nothing,
    the_first_import_fast_path_gives_what_the_general_path_gives,
);

fn field(e: CatalogError) -> String {
    match e {
        CatalogError::Invalid(f) | CatalogError::Refused(f) => f[0].field.clone(),
        other => panic!("expected a field error, got {other}"),
    }
}

async fn overlapping_providers_share_channels_and_renumbering_keeps_them(backend: Backend) {
    let a = FakeProvider::start(overlapping::provider_a()).await.unwrap();
    let b = FakeProvider::start(overlapping::provider_b()).await.unwrap();
    let (_dir, store, http) = backend.open_in_temp_dir().await;
    let pa = add_xtream_named(&store, "A", &a, &[("a", "pa")]).await;
    let pb = add_xtream_named(&store, "B", &b, &[("b", "pb")]).await;

    let r = sync_provider(&store, &http, pa).await.unwrap();
    assert_eq!((r.lineup.created, r.lineup.joined), (20, 0));
    let r = sync_provider(&store, &http, pb).await.unwrap();
    // 1..=20 join A's channels (by tvg-id; every 7th has none and joins by
    // name: "UK: CHANNEL 7 HD" ~ "Channel 7"), 21..=25 are new.
    assert_eq!((r.lineup.joined, r.lineup.created), (20, 5), "{r:?}");

    let channels = lineup(&store).await;
    assert_eq!(channels.len(), 25);
    let numbers: Vec<String> = channels.iter().map(|c| c.number.clone().unwrap()).collect();
    assert_eq!(numbers, (1..=25).map(|n| n.to_string()).collect::<Vec<_>>());
    for c in &channels[..20] {
        let providers: Vec<i64> = c.sources.iter().map(|s| s.provider_id).collect();
        assert_eq!(providers, [pa, pb], "{}", c.name);
        assert!(c.available);
    }
    let seven = &channels[6];
    assert_eq!(seven.name, "Channel 7");
    assert_eq!(seven.sources[1].name, "UK: CHANNEL 7 HD");
    assert_eq!(seven.sources[1].upstream_id, Some(1007));
    assert_eq!(channels[22].sources.len(), 1);
    assert_eq!(channels[22].name, "UK: CHANNEL 23 HD");

    // The user's edits.
    let edited = store
        .update_channel(
            seven.id,
            &ChannelPatch { name: Some("Seven".into()), number: Some(700), hidden: Some(true), ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!((edited.name.as_str(), edited.number.as_deref(), edited.enabled), ("Seven", Some("700"), false));

    // A renumbers every stream: ids, numbers, names, hidden flags stay, the
    // sources are re-attached.
    let before = lineup(&store).await;
    a.renumber(5000);
    let r = sync_provider(&store, &http, pa).await.unwrap();
    assert_eq!((r.removed, r.lineup.reattached, r.lineup.created, r.lineup.joined), (20 + 10, 20, 0, 0), "{r:?}");
    let after = lineup(&store).await;
    assert_eq!(after.len(), before.len());
    for (x, y) in before.iter().zip(&after) {
        assert_eq!((x.id, &x.number, &x.name, x.enabled), (y.id, &y.number, &y.name, y.enabled));
        assert_eq!(x.sources.len(), y.sources.len());
        for (s, t) in x.sources.iter().zip(&y.sources) {
            assert_eq!((s.id, s.provider_id), (t.id, t.provider_id));
            if s.provider_id == pa {
                assert_eq!(t.upstream_id.unwrap(), s.upstream_id.unwrap() + 5000, "re-attached to the new stream id");
            }
        }
    }

    // B disappears and comes back as a new provider: its sources wait
    // (lost), the channels stay; the re-added B's streams re-attach.
    store.delete_provider(pb).await.unwrap();
    let gone = lineup(&store).await;
    assert_eq!(gone.len(), 25, "no channel is silently deleted");
    let only_b = gone.iter().find(|c| c.name == "UK: CHANNEL 23 HD").unwrap();
    assert!(!only_b.available && only_b.sources.is_empty() && only_b.lost_sources.len() == 1);
    let pb2 = add_xtream_named(&store, "B again", &b, &[("b", "pb")]).await;
    let r = sync_provider(&store, &http, pb2).await.unwrap();
    assert_eq!((r.lineup.reattached, r.lineup.created), (25, 0), "{r:?}");
    let back = lineup(&store).await;
    assert!(back.iter().all(|c| c.available && c.lost_sources.is_empty()));
    assert_eq!(back.iter().map(|c| c.id).collect::<Vec<_>>(), after.iter().map(|c| c.id).collect::<Vec<_>>());
}

async fn matching_follows_the_settings(backend: Backend) {
    let a = FakeProvider::start(overlapping::provider_a()).await.unwrap();
    let b = FakeProvider::start(overlapping::provider_b()).await.unwrap();
    let (_dir, store, http) = backend.open_in_temp_dir().await;
    let pa = add_xtream_named(&store, "A", &a, &[("a", "pa")]).await;
    let pb = add_xtream_named(&store, "B", &b, &[("b", "pb")]).await;
    sync_provider(&store, &http, pa).await.unwrap();

    // Matching off, new streams wait for the user.
    store.set_lineup_settings(LineupSettings { match_streams: false, auto_create: false, ..Default::default() });
    let r = sync_provider(&store, &http, pb).await.unwrap();
    assert_eq!((r.lineup.joined, r.lineup.created, r.lineup.unassigned), (0, 0, 25));
    let waiting = store.unassigned_streams(100).await.unwrap();
    assert_eq!(waiting.len(), 25);
    // The user makes one a channel and adds another to an existing channel.
    let own = store.create_channel_from_stream(waiting[24].stream_id).await.unwrap();
    assert_eq!((own.name.as_str(), own.number.as_deref()), ("UK: CHANNEL 25 HD", Some("21")));
    let first = lineup(&store).await.remove(0);
    let joined = store.add_source(first.id, waiting[0].stream_id).await.unwrap();
    assert_eq!(joined.sources.len(), 2);
    assert_eq!(field(store.add_source(first.id, waiting[0].stream_id).await.unwrap_err()), "stream_id");

    // Matching limited to one group ("News": channels 1, 5, 9, ...).
    store.set_lineup_settings(LineupSettings { match_groups: vec!["news".into()], ..Default::default() });
    store.delete_provider(pb).await.unwrap();
    let pb2 = add_xtream_named(&store, "B2", &b, &[("b", "pb")]).await;
    let r = sync_provider(&store, &http, pb2).await.unwrap();
    // Two lost sources re-attach; of the others, News channels 5, 9, 13, 17
    // match (1 was re-attached), the rest become channels.
    assert_eq!((r.lineup.reattached, r.lineup.joined, r.lineup.created), (2, 4, 19), "{r:?}");
}

async fn curation_edits_and_refuses_bad_input_without_changing_anything(backend: Backend) {
    let a = FakeProvider::start(overlapping::provider_a()).await.unwrap();
    let b = FakeProvider::start(overlapping::provider_b()).await.unwrap();
    let (_dir, store, http) = backend.open_in_temp_dir().await;
    let pa = add_xtream_named(&store, "A", &a, &[("a", "pa")]).await;
    let pb = add_xtream_named(&store, "B", &b, &[("b", "pb")]).await;
    sync_provider(&store, &http, pa).await.unwrap();
    store.set_lineup_settings(LineupSettings { match_streams: false, ..Default::default() });
    sync_provider(&store, &http, pb).await.unwrap();
    let all = lineup(&store).await;
    assert_eq!(all.len(), 45);
    let (one, b_one) = (&all[0], &all[20]);
    assert_eq!(b_one.name, "UK: CHANNEL 1 HD");

    // Merge B's "Channel 1" into A's; then split it off again.
    let merged = store.merge_channels(one.id, &[b_one.id]).await.unwrap();
    assert_eq!(merged.sources.iter().map(|s| s.provider_id).collect::<Vec<_>>(), [pa, pb]);
    assert!(store.channel(b_one.id).await.is_err());
    assert_eq!(field(store.merge_channels(one.id, &[one.id]).await.unwrap_err()), "channels");
    assert_eq!(field(store.merge_channels(one.id, &[999_999]).await.unwrap_err()), "channels");
    assert_eq!(field(store.merge_channels(one.id, &[]).await.unwrap_err()), "channels");
    assert_eq!(lineup(&store).await.len(), 44);

    // Reorder: B first, by hand; then back to automatic.
    let ids: Vec<i64> = merged.sources.iter().rev().map(|s| s.id).collect();
    let ordered = store.order_sources(one.id, Some(&ids)).await.unwrap();
    assert_eq!(ordered.sources[0].provider_id, pb);
    assert!(!ordered.auto_order);
    assert_eq!(field(store.order_sources(one.id, Some(&ids[..1])).await.unwrap_err()), "sources");
    assert!(store.order_sources(one.id, None).await.unwrap().auto_order);

    let split = store.split_source(one.id, ids[0]).await.unwrap();
    assert_eq!((split.name.as_str(), split.sources.len()), ("UK: CHANNEL 1 HD", 1));
    assert_eq!(field(store.split_source(split.id, split.sources[0].id).await.unwrap_err()), "source_id");

    // Renumbering, with the number taken and an empty name refused.
    let two = &all[1];
    assert_eq!(
        field(store.update_channel(two.id, &ChannelPatch { number: Some(3), ..Default::default() }).await.unwrap_err()),
        "number"
    );
    assert_eq!(
        field(
            store
                .update_channel(two.id, &ChannelPatch { name: Some(" ".into()), ..Default::default() })
                .await
                .unwrap_err()
        ),
        "name"
    );
    assert!(matches!(
        store.update_channel(999_999, &ChannelPatch::default()).await.unwrap_err(),
        CatalogError::NotFound { .. }
    ));
    assert_eq!(store.channel(two.id).await.unwrap(), *two, "refused edits changed nothing");

    // Groups: create, rename, hide, move channels in bulk, number from 101.
    let sports = store.create_group(&GroupPatch { name: Some("Sports".into()), ..Default::default() }).await.unwrap();
    assert!(sports.id > 1_000_000);
    assert_eq!(
        field(store.create_group(&GroupPatch { name: Some("Sports".into()), ..Default::default() }).await.unwrap_err()),
        "name"
    );
    let moved = store
        .bulk_change(&BulkChange {
            q: Some("UK: CHANNEL 2".into()),
            group_id: Some(Some(sports.id)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(moved, 7, "UK: CHANNEL 2, 20..25");
    assert_eq!(
        field(
            store
                .bulk_change(&BulkChange { ids: Some(vec![999_999]), hidden: Some(true), ..Default::default() })
                .await
                .unwrap_err()
        ),
        "ids"
    );
    assert_eq!(field(store.renumber_group(sports.id, 3).await.unwrap_err()), "start");
    let renumbered = store.renumber_group(sports.id, 101).await.unwrap();
    assert_eq!(
        renumbered.iter().map(|c| c.number.clone().unwrap()).collect::<Vec<_>>(),
        ["101", "102", "103", "104", "105", "106", "107"]
    );
    let g = store
        .update_group(sports.id, &GroupPatch { name: Some("Sport".into()), hidden: Some(true), ..Default::default() })
        .await
        .unwrap();
    assert_eq!((g.name.as_str(), g.hidden, g.channels), ("Sport", true, 7));
    assert!(!store.channel(renumbered[0].id).await.unwrap().enabled, "a hidden group hides its channels");
}

async fn a_failed_sync_changes_no_lineup_channel(backend: Backend) {
    let a = FakeProvider::start(overlapping::provider_a()).await.unwrap();
    let (_dir, store, http) = backend.open_in_temp_dir().await;
    let pa = add_xtream_named(&store, "A", &a, &[("a", "pa")]).await;
    sync_provider(&store, &http, pa).await.unwrap();
    let before = lineup(&store).await;
    a.renumber(100);
    a.set_fault(fakeprovider::Fault::new(fakeprovider::FaultKind::ApiHtml));
    assert!(sync_provider(&store, &http, pa).await.is_err());
    assert_eq!(lineup(&store).await, before);
}

/// A sync that fails inside its transaction, after it has upserted the
/// renumbered streams and while it re-attaches them to the lineup (a
/// failure injected with a trigger): every channel, source and stream stays
/// as it was; the next sync does the work.
async fn a_sync_failing_mid_way_through_the_lineup_changes_nothing(backend: Backend) {
    let a = FakeProvider::start(overlapping::provider_a()).await.unwrap();
    let b = FakeProvider::start(overlapping::provider_b()).await.unwrap();
    let (_dir, store, http) = backend.open_in_temp_dir().await;
    let pa = add_xtream_named(&store, "A", &a, &[("a", "pa")]).await;
    let pb = add_xtream_named(&store, "B", &b, &[("b", "pb")]).await;
    sync_provider(&store, &http, pa).await.unwrap();
    sync_provider(&store, &http, pb).await.unwrap();
    let first = lineup(&store).await.remove(0);
    store.update_channel(first.id, &ChannelPatch { hidden: Some(true), ..Default::default() }).await.unwrap();
    let before = lineup(&store).await;
    let streams_before = store.counts(pb).await.unwrap();

    b.renumber(3000);
    // A trigger that fails the re-attaching, in each dialect.
    if backend == Backend::Sqlite {
        execute(
            &store,
            "CREATE TRIGGER fail_reattach AFTER UPDATE OF stream_id ON lineup_sources
             WHEN OLD.stream_id IS NULL AND NEW.stream_id IS NOT NULL
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
        )
        .await;
    } else {
        execute(
            &store,
            "CREATE FUNCTION fail_reattach() RETURNS trigger LANGUAGE plpgsql AS $f$
             BEGIN
                 IF OLD.stream_id IS NULL AND NEW.stream_id IS NOT NULL THEN RAISE EXCEPTION 'injected failure'; END IF;
                 RETURN NEW;
             END $f$",
        )
        .await;
        execute(
            &store,
            "CREATE TRIGGER fail_reattach AFTER UPDATE OF stream_id ON lineup_sources
             FOR EACH ROW EXECUTE FUNCTION fail_reattach()",
        )
        .await;
    }
    let err = sync_provider(&store, &http, pb).await.unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert_eq!(lineup(&store).await, before, "channels, sources and their streams as they were");
    assert_eq!(store.counts(pb).await.unwrap(), streams_before);

    let drop = if backend == Backend::Sqlite {
        "DROP TRIGGER fail_reattach"
    } else {
        "DROP TRIGGER fail_reattach ON lineup_sources"
    };
    execute(&store, drop).await;
    let r = sync_provider(&store, &http, pb).await.unwrap();
    assert_eq!((r.lineup.reattached, r.lineup.created), (25, 0), "{r:?}");
    let after = lineup(&store).await;
    assert_eq!(
        after.iter().map(|c| (c.id, &c.number, &c.name, c.enabled)).collect::<Vec<_>>(),
        before.iter().map(|c| (c.id, &c.number, &c.name, c.enabled)).collect::<Vec<_>>()
    );
    assert_eq!(after[0].sources[1].upstream_id, Some(3001));
}

/// A first import with nothing to re-attach or join takes a set-based path
/// (every stream a channel, in SQL alone); a sync with something to match
/// takes the general one. Both give the same channels and groups: ids and
/// numbers after the highest, names, groups
/// created in the order of their first channel, guide ids trimmed, sources.
async fn the_first_import_fast_path_gives_what_the_general_path_gives(backend: Backend) {
    let (dir, fast, http) = backend.open_in_temp_dir().await;
    let list = dir.path().join("x.m3u");
    let mut text = String::from("#EXTM3U\n");
    for i in 1..=30 {
        // Groups interleaved and out of name order, some entries without a
        // group, guide ids with spaces, repeated names.
        let group = match i % 4 {
            0 => String::new(),
            k => format!(" group-title=\"G{}\"", 4 - k),
        };
        let name = match i {
            17 | 18 => "Same Name".to_string(),
            _ => format!("Chan {i}"),
        };
        let tvg = if i % 5 == 0 { format!(" tvg-id=\" t{i} \"") } else { String::new() };
        text += &format!("#EXTINF:-1{tvg}{group} tvg-logo=\"http://l/{i}.png\",{name}\nhttp://h/{i}.ts\n");
    }
    std::fs::write(&list, text).unwrap();

    // Fast: a fresh lineup.
    let x = add_m3u_file(&fast, "X", &list).await;
    let r_fast = sync_provider(&fast, &http, x).await.unwrap();
    assert_eq!((r_fast.lineup.created, r_fast.lineup.joined, r_fast.lineup.reattached), (30, 0, 0));

    // General: a lineup holding one channel whose provider was removed (a
    // lost source to try to re-attach, a channel to try to join), matching nothing.
    let dir2 = tempfile::tempdir().unwrap();
    let slow = backend.open(dir2.path()).await;
    let z_list = dir2.path().join("z.m3u");
    std::fs::write(&z_list, "#EXTM3U\n#EXTINF:-1 group-title=\"ZG\",Zeta Unique\nhttp://z/1.ts\n").unwrap();
    let z = add_m3u_file(&slow, "Z", &z_list).await;
    sync_provider(&slow, &http, z).await.unwrap();
    let zeta = lineup(&slow).await.remove(0);
    slow.delete_group(zeta.group_id.unwrap()).await.unwrap();
    slow.delete_provider(z).await.unwrap();
    let x2 = add_m3u_file(&slow, "X", &list).await;
    let r_slow = sync_provider(&slow, &http, x2).await.unwrap();
    assert_eq!(r_slow.lineup, r_fast.lineup);

    let fast_channels = lineup(&fast).await;
    let slow_channels: Vec<Channel> = lineup(&slow).await.into_iter().filter(|c| c.id != zeta.id).collect();
    assert_eq!(fast_channels.len(), 30);
    assert_eq!(fast_channels[4].tvg_id.as_deref(), Some("t5"), "trimmed");
    let key = |c: &Channel, id_off: i64, number_off: i64| {
        let sources: Vec<_> =
            c.sources.iter().map(|s| (s.upstream_key.clone(), s.name.clone(), s.tvg_id.clone(), s.position)).collect();
        (
            c.id - id_off,
            c.number.as_deref().unwrap().parse::<i64>().unwrap() - number_off,
            c.name.clone(),
            c.group.clone(),
            c.tvg_id.clone(),
            c.logo.clone(),
            c.enabled,
            sources,
            c.lost_sources.len(),
        )
    };
    let one = zeta.number.as_deref().unwrap().parse::<i64>().unwrap();
    for (f, s) in fast_channels.iter().zip(&slow_channels) {
        assert_eq!(key(f, 0, 0), key(s, zeta.id, one), "{} / {}", f.name, s.name);
    }
    assert_eq!(slow_channels.len(), 30);
    let groups = |g: Vec<tunerpool_catalog::GroupCount>| -> Vec<(String, i64, i64)> {
        g.into_iter().map(|g| (g.name, g.position, g.channels)).collect()
    };
    let fast_groups = groups(fast.channel_groups().await.unwrap());
    assert_eq!(
        fast_groups,
        [("G3".to_string(), 0, 8), ("G2".to_string(), 1, 8), ("G1".to_string(), 2, 7)],
        "in the order of their first channel"
    );
    assert_eq!(groups(slow.channel_groups().await.unwrap()), fast_groups);

    // A re-sync that adds streams, with every channel already holding one of
    // this provider's: the fast path again, numbered after the highest.
    let before = lineup(&fast).await;
    std::fs::write(
        &list,
        format!("{}#EXTINF:-1 group-title=\"G9\",Chan 31\nhttp://h/31.ts\n", std::fs::read_to_string(&list).unwrap()),
    )
    .unwrap();
    let r = sync_provider(&fast, &http, x).await.unwrap();
    assert_eq!((r.lineup.created, r.lineup.joined, r.lineup.reattached), (1, 0, 0));
    let after = lineup(&fast).await;
    assert_eq!(&after[..30], &before[..]);
    assert_eq!((after[30].id, after[30].number.as_deref(), after[30].group.as_deref()), (31, Some("31"), Some("G9")));
}

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata").join(rel)
}

/// Every name in the real-world playlists and panel answers: normalizing
/// never panics, is idempotent, ignores case and quality tags and country
/// prefixes, and gives nothing empty for a name with a letter or digit.
#[test]
fn the_normalizer_on_real_world_names() {
    let mut names = Vec::new();
    for dir in ["m3u"] {
        for f in std::fs::read_dir(testdata(&format!("real/{dir}"))).unwrap() {
            let text = String::from_utf8_lossy(&std::fs::read(f.unwrap().path()).unwrap()).into_owned();
            names.extend(
                text.lines()
                    .filter(|l| l.starts_with("#EXTINF"))
                    .filter_map(|l| l.rsplit_once(','))
                    .map(|(_, n)| n.to_string()),
            );
        }
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(testdata("real/xtream/tellytv_eternal_get_live_streams.json")).unwrap())
            .unwrap();
    names.extend(json.as_array().unwrap().iter().filter_map(|s| s["name"].as_str().map(str::to_string)));
    assert!(names.len() > 3000, "{}", names.len());
    for name in &names {
        let n = normalize_name(name);
        assert_eq!(normalize_name(&n), n, "idempotent: {name:?}");
        assert_eq!(normalize_name(&name.to_uppercase()), normalize_name(&name.to_lowercase()), "case: {name:?}");
        if name.chars().any(char::is_alphanumeric) {
            assert!(!n.is_empty(), "{name:?}");
            assert_eq!(normalize_name(&format!("UK: {name} HD")), n, "prefix and tag: {name:?}");
            assert_eq!(normalize_name(&format!("|EN| {name} [FHD]")), n, "prefix and tag: {name:?}");
        }
    }
}

proptest::proptest! {
    /// Any text: normalizing never panics, is idempotent and ignores ASCII case.
    #[test]
    fn normalizing_is_idempotent(name in "\\PC{0,60}") {
        let n = normalize_name(&name);
        proptest::prop_assert_eq!(normalize_name(&n), n.clone());
        proptest::prop_assert_eq!(normalize_name(&name.to_ascii_uppercase()), normalize_name(&name.to_ascii_lowercase()));
    }

    /// A channel name of plain words (as long as one is not a tag) is the
    /// same with a country prefix, a language suffix and quality tags.
    #[test]
    fn decorations_do_not_change_a_name(
        words in proptest::collection::vec("[a-z]{4,9}", 1..4),
        prefix in "(UK|US|DE|\\|EN\\||FR -)",
        suffix in "( \\(US\\)| \\[DE\\]| \\| UK|)",
        tag in "(HD|FHD|UHD|4K|SD|HEVC|50fps| )",
    ) {
        let name = words.join(" ");
        let plain = normalize_name(&name);
        let decorated = format!("{prefix}: {name} {tag}{suffix}");
        proptest::prop_assert_eq!(normalize_name(&decorated), plain, "{}", decorated);
    }
}
