//! Property tests: the parsers never panic on any input, chunked M3U parsing
//! equals whole-buffer parsing, generated entries survive write → parse,
//! HLS parsing, URI resolution and variant choice never panic, and an XMLTV
//! merge of any input writes well-formed XML that reads back to what it wrote.

use proptest::prelude::*;
use tunerpool_formats::hls;
use tunerpool_formats::m3u::{self, Entry, Parser, Playlist};
use tunerpool_formats::xmltv::{self, ChannelMap, MergeSource};
use tunerpool_formats::xtream::{self, LiveStream};

/// Feeds `input` split at the given (unsorted, possibly out of range) points.
fn parse_chunked(input: &[u8], cuts: &[usize]) -> Playlist {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.sort_unstable();
    let mut parser = Parser::new();
    let mut entries = Vec::new();
    let mut from = 0;
    for p in points {
        parser.feed(&input[from..p], &mut entries);
        from = p;
    }
    parser.feed(&input[from..], &mut entries);
    let summary = parser.finish(&mut entries);
    assert_eq!(summary.entries, entries.len());
    Playlist { header: summary.header, entries, skipped: summary.skipped, skipped_count: summary.skipped_count }
}

/// Byte strings built from M3U-ish fragments, to reach the interesting paths
/// far more often than uniformly random bytes would.
fn m3u_like() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        Just(b"#EXTM3U".to_vec()),
        Just(b"#EXTINF:".to_vec()),
        Just(b"#extinf".to_vec()),
        Just(b"-1".to_vec()),
        Just(b" tvg-id=".to_vec()),
        Just(b" group-title=".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"'".to_vec()),
        Just(b",".to_vec()),
        Just(b"=".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\t".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"http://a/b.m3u8".to_vec()),
        Just(b"/local.ts".to_vec()),
        Just(b"#EXTVLCOPT:".to_vec()),
        Just(b"#EXTGRP:".to_vec()),
        Just(b"#KODIPROP:".to_vec()),
        Just(b"#EXT-X-FOO".to_vec()),
        Just(b"# comment".to_vec()),
        Just(b"<div>".to_vec()),
        Just(b"\xEF\xBB\xBF".to_vec()),
        Just("Tëvë中".as_bytes().to_vec()),
        Just(b"\xe9\xff\xc3".to_vec()),
        "[a-z]{1,6}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 1..4),
    ];
    proptest::collection::vec(fragment, 0..60).prop_map(|v| v.concat())
}

/// Text built from HLS-ish fragments (tags, attribute lists, URIs, line ends).
fn hls_like() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        Just("#EXTM3U".to_string()),
        Just("#EXT-X-STREAM-INF:".to_string()),
        Just("#EXT-X-I-FRAME-STREAM-INF:".to_string()),
        Just("#EXTINF:".to_string()),
        Just("#EXT-X-MEDIA-SEQUENCE:".to_string()),
        Just("#EXT-X-TARGETDURATION:".to_string()),
        Just("#EXT-X-KEY:METHOD=".to_string()),
        Just("#EXT-X-MAP:URI=".to_string()),
        Just("#EXT-X-DISCONTINUITY".to_string()),
        Just("#EXT-X-ENDLIST".to_string()),
        Just("BANDWIDTH=".to_string()),
        Just("RESOLUTION=".to_string()),
        Just("CODECS=".to_string()),
        Just("1920x1080".to_string()),
        Just("\"".to_string()),
        Just(",".to_string()),
        Just("=".to_string()),
        Just(" ".to_string()),
        Just("\n".to_string()),
        Just("\r\n".to_string()),
        Just("\r".to_string()),
        Just("\u{feff}".to_string()),
        Just("# c".to_string()),
        Just("seg.ts?a=b".to_string()),
        Just("../".to_string()),
        Just("http://h:1/".to_string()),
        Just("é中".to_string()),
        "-?[0-9]{1,25}(\\.[0-9]{0,4})?".prop_map(String::from),
        "[a-z]{1,6}".prop_map(String::from),
        any::<String>(),
    ];
    proptest::collection::vec(fragment, 0..60).prop_map(|v| v.concat())
}

fn trimmed(re: &'static str) -> impl Strategy<Value = String> {
    re.prop_map(|s| s.trim().to_string())
}

fn entry_strategy() -> impl Strategy<Value = Entry> {
    let duration = prop_oneof![
        Just(String::from("-1")),
        Just(String::from("0")),
        Just(String::from("40")),
        Just(String::from("-1.000")),
        Just(String::new()),
    ];
    let attr = ("[a-zA-Z][a-zA-Z0-9_:-]{0,10}", "[a-zA-Z0-9 ,\"'=é中/.:-]{0,20}");
    let vlc = ("[a-z][a-z-]{0,10}", proptest::option::of(trimmed("[a-zA-Z0-9 =/.;()]{0,15}")));
    let kodi = ("[a-z][a-z.-]{0,10}", trimmed("[a-zA-Z0-9 =/.]{0,15}"));
    (
        duration,
        proptest::collection::vec(attr, 0..5),
        trimmed("[a-zA-Z0-9 ,\"'=é中()\\[\\]-]{0,25}"),
        proptest::option::of(trimmed("[a-zA-Z0-9 ,é]{0,10}")),
        proptest::collection::vec(vlc, 0..3),
        proptest::collection::vec(kodi, 0..2),
        proptest::collection::vec(trimmed("#EXT-X-[A-Z]{1,5}:[a-z0-9 ,=]{0,8}"), 0..2),
        "(https?|rtmp|udp)://[a-z]{1,8}\\.[a-z]{2,3}(:[0-9]{2,4})?/[a-zA-Z0-9_./?=&%-]{0,20}",
    )
        .prop_map(|(duration, attrs, title, extgrp, vlc_opts, kodi_props, extra_lines, url)| Entry {
            line: 0,
            duration,
            attrs: attrs.into_iter().collect(),
            title,
            extgrp,
            vlc_opts: vlc_opts.into_iter().collect(),
            kodi_props: kodi_props.into_iter().collect(),
            extra_lines,
            url,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn m3u_arbitrary_bytes_never_panic_and_chunking_is_invisible(
        input in proptest::collection::vec(any::<u8>(), 0..400),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let whole = m3u::parse(&input);
        let chunked = parse_chunked(&input, &cuts);
        prop_assert_eq!(&chunked, &whole);
        // Writing whatever was parsed must not panic either, and reads back.
        let again = m3u::parse(m3u::write(&whole).as_bytes());
        prop_assert_eq!(again.entries.len(), whole.entries.len());
    }

    #[test]
    fn m3u_like_input_chunking_is_invisible(
        input in m3u_like(),
        cuts in proptest::collection::vec(any::<usize>(), 0..16),
    ) {
        let whole = m3u::parse(&input);
        let chunked = parse_chunked(&input, &cuts);
        prop_assert_eq!(&chunked, &whole);
        for e in &whole.entries {
            prop_assert!(!e.url.is_empty());
            prop_assert!(!e.url.contains(['\r', '\n']));
        }
        for s in &whole.skipped {
            prop_assert!(s.text.chars().count() <= 121);
        }
        let rewritten = m3u::parse(m3u::write(&whole).as_bytes());
        prop_assert!(rewritten.skipped.is_empty(), "{:?}", rewritten.skipped);
        prop_assert_eq!(rewritten.entries.len(), whole.entries.len());
        for (a, b) in rewritten.entries.iter().zip(&whole.entries) {
            prop_assert_eq!(&a.url, &b.url);
            prop_assert_eq!(&a.title, &b.title);
            prop_assert_eq!(&a.vlc_opts, &b.vlc_opts);
        }
    }

    #[test]
    fn generated_entries_round_trip(
        entries in proptest::collection::vec(entry_strategy(), 0..6),
        header_attrs in proptest::collection::vec(
            ("[a-z][a-z-]{0,8}", "[a-zA-Z0-9 ,\"'=/.:]{0,20}"), 0..3),
    ) {
        let playlist = Playlist {
            header: m3u::Header { present: true, attrs: header_attrs },
            entries,
            skipped: Vec::new(),
            skipped_count: 0,
        };
        let text = m3u::write(&playlist);
        let parsed = m3u::parse(text.as_bytes());
        prop_assert!(parsed.skipped.is_empty(), "{:?}\n{}", parsed.skipped, text);
        prop_assert_eq!(parsed.entries.len(), playlist.entries.len(), "{}", text);
        prop_assert_eq!(parsed.header.attrs.len(), playlist.header.attrs.len());
        for ((k, v), (gk, gv)) in playlist.header.attrs.iter().zip(&parsed.header.attrs) {
            prop_assert_eq!(k, gk);
            prop_assert!(attr_value_ok(v, gv), "{:?} -> {:?}\n{}", v, gv, text);
        }
        for (want, got) in playlist.entries.iter().zip(&parsed.entries) {
            prop_assert_eq!(&got.duration, &want.duration, "{}", text);
            prop_assert_eq!(&got.title, &want.title, "{}", text);
            prop_assert_eq!(&got.extgrp, &want.extgrp);
            prop_assert_eq!(&got.vlc_opts, &want.vlc_opts);
            prop_assert_eq!(&got.kodi_props, &want.kodi_props);
            prop_assert_eq!(&got.extra_lines, &want.extra_lines);
            prop_assert_eq!(&got.url, &want.url);
            prop_assert_eq!(got.attrs.len(), want.attrs.len(), "{}", text);
            for ((k, v), (gk, gv)) in want.attrs.iter().zip(&got.attrs) {
                prop_assert_eq!(k, gk);
                prop_assert!(attr_value_ok(v, gv), "{:?} -> {:?}\n{}", v, gv, text);
            }
        }
        // A second write is byte-identical (the writer's output is a fixpoint).
        prop_assert_eq!(m3u::write(&parsed), text);
    }

    #[test]
    fn xtream_arbitrary_bytes_never_panic(
        input in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let streamed = xtream::for_each_item::<_, LiveStream>(&input[..], |_| {});
        let listed = xtream::parse_list::<LiveStream>(&input);
        prop_assert_eq!(streamed.is_ok(), listed.is_ok());
        let _ = xtream::parse_auth(&input);
    }

    #[test]
    fn xtream_json_like_bytes_never_panic(input in json_like()) {
        let mut n = 0usize;
        let streamed = xtream::for_each_item::<_, LiveStream>(input.as_bytes(), |_| n += 1);
        let listed = xtream::parse_list::<LiveStream>(input.as_bytes());
        if let (Ok(a), Ok(b)) = (&streamed, &listed) {
            prop_assert_eq!(a, &b.counts);
            prop_assert_eq!(a.ok, n);
        }
        let _ = xtream::parse_list::<xtream::Series>(input.as_bytes());
        let _ = xtream::parse_auth(input.as_bytes());
    }
}

/// An attribute value read back equals the written one, except in the one
/// documented lossy case (both quote kinds in positions that would end the
/// value early), where `"` is replaced by `'`.
fn attr_value_ok(want: &str, got: &str) -> bool {
    got == want || (want.contains('"') && want.contains('\'') && got == want.replace('"', "'"))
}

/// JSON-ish text from Xtream-like fragments.
fn json_like() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        Just("[".to_string()),
        Just("]".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just(",".to_string()),
        Just(":".to_string()),
        Just("\"stream_id\"".to_string()),
        Just("\"name\"".to_string()),
        Just("\"tv_archive\"".to_string()),
        Just("\"added\"".to_string()),
        Just("\"1\"".to_string()),
        Just("\"\"".to_string()),
        Just("null".to_string()),
        Just("1.5".to_string()),
        Just("-7".to_string()),
        Just("1e999".to_string()),
        Just("18446744073709551616".to_string()),
        Just("true".to_string()),
        Just(" ".to_string()),
        Just("\"\\u00e9\"".to_string()),
        Just("<html>".to_string()),
        "[0-9]{1,4}".prop_map(|s| s),
    ];
    proptest::collection::vec(fragment, 0..40).prop_map(|v| v.concat())
}

fn check_hls(text: &str, base: &str) -> Result<(), TestCaseError> {
    match hls::parse(text) {
        Ok(hls::Playlist::Master(m)) => {
            prop_assert_eq!(hls::choose_variant(&m).is_some(), !m.variants.is_empty());
            for v in &m.variants {
                prop_assert!(!v.uri.is_empty() && !v.uri.contains(['\r', '\n']));
                let _ = hls::resolve(base, &v.uri);
            }
        }
        Ok(hls::Playlist::Media(m)) => {
            for (i, s) in m.segments.iter().enumerate() {
                prop_assert_eq!(s.sequence, m.media_sequence.saturating_add(i as u64));
                prop_assert!(s.duration.is_finite() && s.duration >= 0.0);
                prop_assert!(!s.uri.is_empty() && !s.uri.contains(['\r', '\n']));
                let _ = hls::resolve(base, &s.uri);
            }
        }
        Err(hls::HlsError::NotHls(msg)) => prop_assert!(msg.chars().count() <= 60, "{}", msg),
    }
    let _ = hls::resolve(base, text);
    let _ = hls::resolve(text, base);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn hls_arbitrary_text_never_panics(text in any::<String>(), base in any::<String>()) {
        check_hls(&text, &base)?;
    }

    #[test]
    fn hls_like_text_never_panics(text in hls_like(), base in hls_like()) {
        check_hls(&text, &base)?;
    }
}

/// Bytes built from XMLTV-ish fragments: well-formed pieces in any order,
/// plus the junk real guides carry.
fn xmltv_like() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        Just(b"<tv>".to_vec()),
        Just(b"</tv>".to_vec()),
        Just(b"<channel id=\"a\">".to_vec()),
        Just(b"<channel id='b'>".to_vec()),
        Just(b"<channel id=c/>".to_vec()),
        Just(b"<channel>".to_vec()),
        Just(b"</channel>".to_vec()),
        Just(b"<programme start=\"20250101000000 +0530\" channel=\"a\">".to_vec()),
        Just(b"<programme channel='b' start='1' stop=\"2 -0330\">".to_vec()),
        Just(b"<programme start=\"3\" channel=\"c\"/>".to_vec()),
        Just(b"<programme>".to_vec()),
        Just(b"</programme>".to_vec()),
        Just(b"<title lang=\"en\">".to_vec()),
        Just(b"</title>".to_vec()),
        Just(b"<desc>".to_vec()),
        Just(b"</desc>".to_vec()),
        Just(b"<display-name>".to_vec()),
        Just(b"</display-name>".to_vec()),
        Just(b"<icon src=\"x&y\" src=z/>".to_vec()),
        Just(b"<credits><actor>".to_vec()),
        Just(b"</actor></credits>".to_vec()),
        Just(b"<!DOCTYPE tv SYSTEM \"xmltv.dtd\">".to_vec()),
        Just(b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>".to_vec()),
        Just(b"<!--".to_vec()),
        Just(b"-->".to_vec()),
        Just(b"<![CDATA[".to_vec()),
        Just(b"]]>".to_vec()),
        Just(b"<!x".to_vec()),
        Just(b"&amp;".to_vec()),
        Just(b"&nbsp;".to_vec()),
        Just(b"&#233;".to_vec()),
        Just(b"&#1;".to_vec()),
        Just(b"&".to_vec()),
        Just(b"<".to_vec()),
        Just(b">".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"'".to_vec()),
        Just(b"=".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\xEF\xBB\xBF".to_vec()),
        Just("é中".as_bytes().to_vec()),
        "[a-z]{1,6}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 1..4),
    ];
    proptest::collection::vec(fragment, 0..80).prop_map(|v| v.concat())
}

/// Panics unless `xml` is well-formed in quick-xml's strict mode (matching
/// end tags, no bare `&`, only references XML defines, valid attributes).
fn assert_strict_xml(xml: &[u8]) {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_reader(xml);
    r.config_mut().check_end_names = true;
    let mut depth = 0i64;
    let mut buf = Vec::new();
    let show = || String::from_utf8_lossy(xml).into_owned();
    loop {
        buf.clear();
        match r.read_event_into(&mut buf) {
            Ok(Event::Start(t)) => {
                assert!(t.attributes().all(|a| a.is_ok()), "bad attribute in {}", show());
                depth += 1;
            }
            Ok(Event::Empty(t)) => assert!(t.attributes().all(|a| a.is_ok()), "bad attribute in {}", show()),
            Ok(Event::End(_)) => depth -= 1,
            Ok(Event::GeneralRef(g)) => {
                let name = String::from_utf8_lossy(&g).into_owned();
                let predefined = ["amp", "lt", "gt", "quot", "apos"].contains(&name.as_str());
                assert!(predefined || name.starts_with('#'), "undefined entity &{name}; in {}", show());
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("not well-formed ({e}): {}", show()),
        }
        assert!(depth >= 0, "unbalanced: {}", show());
    }
    assert_eq!(depth, 0, "unclosed: {}", show());
}

fn check_merge(input: &[u8]) -> Result<(), TestCaseError> {
    // Reading never panics (and never fails: a slice does not error).
    let mut n = 0u64;
    let stats = xmltv::read_guide(input, |_| n += 1).expect("reading a slice cannot fail");
    prop_assert_eq!(n, stats.channels + stats.programmes);

    let mut first = ChannelMap::new();
    first.insert("a", "a");
    first.insert("b", "x&y \"b\"");
    let mut second = ChannelMap::new();
    second.insert("a", "a");
    second.insert("c", "c");
    let mut sources = [
        MergeSource::new("1", std::io::Cursor::new(input), first),
        MergeSource::new("2", std::io::Cursor::new(input), second),
    ];
    let mut out = Vec::new();
    let merged = xmltv::merge(&mut sources, &mut out).expect("writing to a Vec cannot fail");
    assert_strict_xml(&out);
    let mut ids = Vec::new();
    let mut programmes = 0u64;
    let again = xmltv::read_guide(&out[..], |item| match item {
        xmltv::Item::Channel(c) => ids.push(c.id),
        xmltv::Item::Programme(_) => programmes += 1,
    })
    .unwrap();
    prop_assert_eq!((again.skipped, again.repaired, again.errors), (0, 0, 0), "{}", String::from_utf8_lossy(&out));
    prop_assert_eq!(ids.len() as u64, merged.channels);
    prop_assert_eq!(programmes, merged.programmes);
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    prop_assert_eq!(unique.len(), ids.len(), "a channel id written twice: {:?}", ids);
    for id in &ids {
        prop_assert!(["a", "x&y \"b\"", "c"].contains(&id.as_str()), "unmapped id {}", id);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn xmltv_arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..400)) {
        check_merge(&input)?;
    }

    #[test]
    fn xmltv_like_input_merges_to_well_formed_xml(input in xmltv_like()) {
        check_merge(&input)?;
    }
}
