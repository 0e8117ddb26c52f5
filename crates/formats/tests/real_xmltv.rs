//! Every real-world guide in `testdata/real/xmltv/` (see SOURCES.md) reads
//! with the documented content, and merging it copies its elements through
//! byte for byte, timezone offsets included.

use std::collections::BTreeMap;
use std::io::Cursor;

use tunerpool_formats::xmltv::{self, ChannelMap, Item, MergeSource, Programme, ReadStats};

macro_rules! fixture {
    ($name:literal) => {
        ($name, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/real/xmltv/", $name)))
    };
}

const FILES: &[(&str, &[u8])] = &[
    fixture!("iptv-org-epg_energeek.cl_content.xml"),
    fixture!("iptv-org-epg_epg.iptvx.one_content.xml"),
    fixture!("iptv-org-epg_epg.tmacaraibes.com_content.xml"),
    fixture!("iptv-org-epg_epgshare01.online_content.xml"),
];

fn file(name: &str) -> &'static [u8] {
    FILES.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no fixture {name}")).1
}

struct Guide {
    channels: Vec<xmltv::Channel>,
    programmes: Vec<Programme>,
    stats: ReadStats,
}

fn read(bytes: &[u8]) -> Guide {
    let mut g = Guide { channels: Vec::new(), programmes: Vec::new(), stats: ReadStats::default() };
    g.stats = xmltv::read_guide(bytes, |item| match item {
        Item::Channel(c) => g.channels.push(c),
        Item::Programme(p) => g.programmes.push(p),
    })
    .unwrap();
    g
}

fn per_channel(g: &Guide) -> BTreeMap<&str, usize> {
    let mut m = BTreeMap::new();
    for p in &g.programmes {
        *m.entry(p.channel.as_str()).or_default() += 1;
    }
    m
}

fn ids(g: &Guide) -> Vec<&str> {
    g.channels.iter().map(|c| c.id.as_str()).collect()
}

fn titles(p: &Programme) -> Vec<(Option<&str>, &str)> {
    p.titles.iter().map(|t| (t.lang.as_deref(), t.value.as_str())).collect()
}

/// Offsets (the part after the space) of every start and stop.
fn offsets(g: &Guide) -> Vec<&str> {
    let mut v: Vec<&str> = g
        .programmes
        .iter()
        .flat_map(|p| [Some(p.start.as_str()), p.stop.as_deref()])
        .flatten()
        .map(|t| t.split_once(' ').map_or("", |(_, o)| o))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn clean(stats: &ReadStats) {
    assert_eq!((stats.skipped, stats.repaired, stats.errors, stats.truncated), (0, 0, 0, false), "{stats:?}");
}

#[test]
fn energeek_webgrab_output() {
    let g = read(file("iptv-org-epg_energeek.cl_content.xml"));
    clean(&g.stats);
    assert_eq!(
        ids(&g),
        ["EnerGeek Retro", "EnerGeek Fanpop", "EnerGeek Animate", "EnerGeek 4", "EnerGeek Radio TV"],
        "ids with spaces"
    );
    assert_eq!(g.channels[1].display_names[0].lang.as_deref(), Some("es"));
    assert_eq!(g.channels[1].icons, ["https://i.imgur.com/cbnBZRv.jpg"]);
    assert_eq!(g.channels[0].urls, ["http://www.compulms.com"]);
    assert_eq!(g.programmes.len(), 294);
    assert_eq!(
        per_channel(&g).into_iter().collect::<Vec<_>>(),
        [
            ("EnerGeek 4", 24),
            ("EnerGeek Animate", 24),
            ("EnerGeek Fanpop", 105),
            ("EnerGeek Radio TV", 24),
            ("EnerGeek Retro", 117)
        ]
    );
    let first = &g.programmes[0];
    assert_eq!((first.start.as_str(), first.stop.as_deref()), ("20221129000000 -0300", Some("20221129003000 -0300")));
    assert_eq!(titles(first), [(Some("es"), "Noir")]);
    assert!(first.descs[0].value.starts_with("Kirika Yuumura es una adolescente japonesa"));
    assert_eq!(first.icons.len(), 1);
    assert_eq!(titles(g.programmes.last().unwrap()), [(Some("es"), "Videos Musicales Especiales")]);
    assert_eq!(offsets(&g), ["-0300"]);
    let t = xmltv::parse_time(&first.start).unwrap();
    assert_eq!((t.unix, t.offset_minutes), (1_669_690_800, Some(-180)), "00:00 at -03:00 is 03:00 UTC");
}

#[test]
fn iptvx_one_line_elements_cyrillic_doctype() {
    let g = read(file("iptv-org-epg_epg.iptvx.one_content.xml"));
    clean(&g.stats);
    assert_eq!(ids(&g), ["12-omsk"]);
    let names: Vec<&str> = g.channels[0].display_names.iter().map(|t| t.value.as_str()).collect();
    assert_eq!(names, ["12 канал Омск", "12 канал (Омск)"]);
    assert_eq!(g.channels[0].icons, ["https://iptvx.one/picons/12-omsk.png"]);
    assert_eq!(g.programmes.len(), 230);
    assert_eq!(titles(&g.programmes[0]), [(None, "д/с Необыкновенные люди")]);
    assert_eq!(g.programmes[0].start, "20250922014500 +0300");
    assert_eq!(titles(g.programmes.last().unwrap()), [(None, "т/с Тайны города Эн. 5 с.")]);
    assert_eq!(g.programmes.iter().filter(|p| p.descs.is_empty()).count(), 1, "one programme has no <desc>");
    assert_eq!(offsets(&g), ["+0300"]);
}

#[test]
fn tmacaraibes_four_languages() {
    let g = read(file("iptv-org-epg_epg.tmacaraibes.com_content.xml"));
    clean(&g.stats);
    assert_eq!(ids(&g), ["TMA.gp@SD"]);
    assert_eq!(g.channels[0].display_names[0].value, "TMA");
    assert_eq!(g.programmes.len(), 318);
    let p = &g.programmes[0];
    assert_eq!(
        titles(p),
        [(Some("fr"), "GLOBAL"), (Some("en"), "GLOBAL"), (Some("es"), "GLOBAL"), (Some("pt"), "GLOBAL")]
    );
    assert_eq!(p.descs.len(), 4);
    assert_eq!(p.descs[0].value, "Toutes les musiques africaines et caribéennes.");
    assert_eq!(p.descs[2].value, "Toda la música africana y caribeña.");
    assert!(g.programmes.iter().all(|p| p.categories.len() == 1 && p.categories[0].value == "music"));
    assert_eq!(offsets(&g), ["-0400"]);
}

#[test]
fn epgshare01_entities_and_duplicate_icons() {
    let g = read(file("iptv-org-epg_epgshare01.online_content.xml"));
    clean(&g.stats);
    assert_eq!(ids(&g), ["AlJazeera.Arabic.net", "AlJazeera.English.net"]);
    assert_eq!(g.channels[0].icons.len(), 2, "duplicate <icon> kept");
    assert_eq!(
        per_channel(&g).into_iter().collect::<Vec<_>>(),
        [("AlJazeera.Arabic.net", 41), ("AlJazeera.English.net", 162)]
    );
    assert_eq!(titles(&g.programmes[0]), [(Some("en"), "نشرة الأخبار")]);
    assert!(g.programmes.iter().any(|p| p.titles[0].value == "People & Power : Frontline of Care"), "&amp; resolved");
    assert_eq!(offsets(&g), ["+0100"]);
}

/// The `<programme …>…</programme>` elements of a guide as written.
fn raw_programmes(bytes: &[u8]) -> Vec<&str> {
    let text = std::str::from_utf8(bytes).unwrap();
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("<programme ") {
        let end = rest[at..].find("</programme>").unwrap() + at + "</programme>".len();
        out.push(&rest[at..end]);
        rest = &rest[end..];
    }
    out
}

fn identity_map(g: &Guide) -> ChannelMap {
    let mut map = ChannelMap::new();
    for c in &g.channels {
        map.insert(c.id.clone(), c.id.clone());
    }
    map
}

#[test]
fn merging_one_guide_copies_every_element_verbatim() {
    for (name, bytes) in FILES {
        let g = read(bytes);
        let mut sources = [MergeSource::new(*name, Cursor::new(*bytes), identity_map(&g))];
        let mut out = Vec::new();
        let stats = xmltv::merge(&mut sources, &mut out).unwrap();
        assert_eq!((stats.channels, stats.programmes), (g.channels.len() as u64, g.programmes.len() as u64), "{name}");
        let text = String::from_utf8(out.clone()).unwrap();
        for p in raw_programmes(bytes) {
            assert!(text.contains(p), "{name}: not copied verbatim: {p}");
        }
        // And the result reads back to the same content.
        let again = read(&out);
        clean(&again.stats);
        assert_eq!(again.channels, g.channels, "{name}");
        assert_eq!(again.programmes, g.programmes, "{name}");
    }
}

#[test]
fn merging_all_guides_maps_ids_and_keeps_offsets() {
    let guides: Vec<Guide> = FILES.iter().map(|(_, b)| read(b)).collect();
    let mut sources = Vec::new();
    for ((name, bytes), g) in FILES.iter().zip(&guides) {
        let mut map = ChannelMap::new();
        // Take every second channel, renamed; the rest stays out.
        for (i, c) in g.channels.iter().enumerate() {
            if i % 2 == 0 {
                map.insert(c.id.clone(), format!("out.{}", c.id.replace(' ', "_")));
            }
        }
        sources.push(MergeSource::new(*name, Cursor::new(*bytes), map));
    }
    let mut out = Vec::new();
    let stats = xmltv::merge(&mut sources, &mut out).unwrap();
    let merged = read(&out);
    clean(&merged.stats);
    let want_ids: Vec<String> = guides
        .iter()
        .flat_map(|g| g.channels.iter().step_by(2).map(|c| format!("out.{}", c.id.replace(' ', "_"))))
        .collect();
    assert_eq!(ids(&merged), want_ids);
    assert_eq!(stats.channels as usize, want_ids.len());
    // energeek: Retro 117 + Animate 24 + Radio TV 24; iptvx 230; tma 318; epgshare Arabic 41.
    assert_eq!(merged.programmes.len(), 117 + 24 + 24 + 230 + 318 + 41);
    assert_eq!(stats.programmes as usize, merged.programmes.len());
    assert_eq!(offsets(&merged), ["+0100", "+0300", "-0300", "-0400"]);
    // Channels first, then programmes; every programme's channel is an output id.
    let text = String::from_utf8(out).unwrap();
    assert!(text.rfind("<channel ").unwrap() < text.find("<programme ").unwrap());
    assert!(merged.programmes.iter().all(|p| want_ids.contains(&p.channel)));
    // Other attributes and content stay as written.
    assert!(text.contains(
        "<programme start=\"20221129000000 -0300\" stop=\"20221129003000 -0300\" channel=\"out.EnerGeek_Retro\">"
    ));
    assert!(text.contains("<channel id=\"out.12-omsk\"><display-name>12 канал Омск</display-name>"));
    assert_eq!(stats.sources.len(), 4);
    assert_eq!(stats.sources[0].read.programmes, 294, "the first pass sees every element");
}
