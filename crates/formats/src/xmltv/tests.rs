//! Junk guides, merge rules, and the writer's promise of well-formed output.

use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};

use super::*;

/// Checks `xml` with quick-xml in strict mode: balanced and matching tags,
/// no bare `&`, only references XML defines. Returns the number of elements.
pub(crate) fn assert_well_formed(xml: &[u8]) -> usize {
    let mut r = quick_xml::Reader::from_reader(xml);
    r.config_mut().check_end_names = true;
    let (mut depth, mut elements) = (0i64, 0);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_event_into(&mut buf) {
            Ok(quick_xml::events::Event::Start(_)) => {
                depth += 1;
                elements += 1;
            }
            Ok(quick_xml::events::Event::Empty(t)) => {
                elements += 1;
                for a in t.attributes() {
                    a.unwrap_or_else(|e| panic!("bad attribute {e}: {}", String::from_utf8_lossy(xml)));
                }
            }
            Ok(quick_xml::events::Event::End(_)) => depth -= 1,
            Ok(quick_xml::events::Event::GeneralRef(g)) => {
                assert!(text::resolve_ref(&g).is_some(), "undefined entity &{};", String::from_utf8_lossy(&g))
            }
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("not well-formed: {e} at {}:\n{}", r.error_position(), String::from_utf8_lossy(xml)),
        }
        assert!(depth >= 0);
    }
    assert_eq!(depth, 0, "unbalanced:\n{}", String::from_utf8_lossy(xml));
    elements
}

fn read_all(doc: &[u8]) -> (Vec<Element>, ReadStats) {
    let mut r = GuideReader::new(doc).unwrap();
    let mut out = Vec::new();
    while let Some(e) = r.next_element().unwrap() {
        out.push(e);
    }
    (out, r.stats().clone())
}

fn copy(doc: &[u8]) -> (String, ReadStats) {
    let (elements, stats) = read_all(doc);
    let mut w = GuideWriter::new(Vec::new()).unwrap();
    for e in &elements {
        w.write(e, None).unwrap();
    }
    let out = w.finish().unwrap();
    assert_well_formed(&out);
    (String::from_utf8(out).unwrap(), stats)
}

#[test]
fn bom_doctype_and_bad_entities() {
    let doc = "\u{feff}<?xml version=\"1.0\"?>\n<!DOCTYPE tv SYSTEM \"xmltv.dtd\">\n<tv>\
        <channel id=\"a\"><display-name>A &amp; B&nbsp;AT&T &#233;</display-name></channel>\
        <programme start=\"20200101000000 +0530\" channel=\"a\" title=\"x&y\"><title>Q&amp;A</title></programme></tv>";
    let (out, stats) = copy(doc.as_bytes());
    assert_eq!((stats.channels, stats.programmes, stats.skipped, stats.errors), (1, 1, 0, 0));
    assert!(out.contains("<display-name>A &amp; B&amp;nbsp;AT&amp;T &#233;</display-name>"), "{out}");
    assert!(out.contains("<programme start=\"20200101000000 +0530\" channel=\"a\" title=\"x&amp;y\">"), "{out}");
    assert!(out.contains("<title>Q&amp;A</title>"), "{out}");
    let (els, _) = read_all(doc.as_bytes());
    assert_eq!(els[0].to_channel().unwrap().display_names[0].value, "A & B&nbsp;AT&T é");
}

#[test]
fn broken_nesting_is_repaired_and_counted() {
    let doc = b"<tv><channel id=a><display-name>A</channel>\
        <programme start='1' channel=\"a\" channel=\"b\"><title>t</titel><desc>d</programme>\
        <programme channel=\"a\"><title>no start</title></programme>\
        <programme start=\"2\" channel=\"a\"><title>x</title>\
        <programme start=\"3\" channel=\"a\"><title>y</title></programme>\
        <programme start=\"4\" channel=\"a\"><title>cut";
    let (out, stats) = copy(doc);
    assert_eq!(stats.channels, 1);
    assert_eq!(stats.programmes, 3, "{stats:?}");
    assert_eq!(stats.skipped, 2, "no start, cut off: {stats:?}");
    assert!(stats.truncated);
    assert!(stats.repaired >= 3, "{stats:?}");
    assert_eq!(stats.problems.len(), 2, "{stats:?}");
    assert!(out.contains("<channel id=\"a\"><display-name>A</display-name></channel>"), "{out}");
    assert!(out.contains("<programme start=\"1\" channel=\"a\"><title>t</title><desc>d</desc></programme>"), "{out}");
    assert!(out.contains("<programme start=\"2\" channel=\"a\"><title>x</title></programme>"), "{out}");
}

#[test]
fn a_syntax_error_mid_guide_is_read_past() {
    let doc =
        b"<tv><!foo><channel id=\"a\"/><? ?><programme start=\"1\" channel=\"a\">< b>x</b></programme><<<>>></tv>";
    let (out, stats) = copy(doc);
    assert_eq!((stats.channels, stats.programmes, stats.errors), (1, 1, 1), "{stats:?}");
    assert!(out.contains("<channel id=\"a\"/>"));
    assert!(out.contains("<programme start=\"1\" channel=\"a\">x</programme>"), "{out}");
}

#[test]
fn not_a_guide_reads_as_empty() {
    for doc in [
        &b""[..],
        b"<html><body><h1>403 Forbidden</h1></body></html>",
        b"{\"user_info\":{\"auth\":0}}",
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00",
        b"<tv>",
        b"<<<<!!!&&&;;;]]>",
    ] {
        let (out, stats) = copy(doc);
        assert_eq!((stats.channels, stats.programmes), (0, 0), "{stats:?}");
        assert!(out.ends_with("<tv generator-info-name=\"tunerpool\">\n</tv>\n"));
    }
}

#[test]
fn attributes_broken_in_every_way_are_rebuilt() {
    let doc = b"<tv><channel id=\"a\"><icon src=\"x\" src=\"y\" bad/><icon src='q\"t' x=1/></channel></tv>";
    let (out, _) = copy(doc);
    assert!(out.contains("<icon src=\"x\" bad=\"\"/><icon src=\"q&quot;t\" x=\"1\"/>"), "{out}");
}

#[test]
fn latin1_guide_comes_out_utf8() {
    let doc = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><tv><channel id=\"c\"><display-name>Caf\xe9</display-name></channel></tv>";
    let (out, _) = copy(doc);
    assert!(out.contains("<display-name>Café</display-name>"));
    assert!(out.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
}

#[test]
fn the_filter_skips_without_keeping_but_counts() {
    let doc = b"<tv><channel id=\"a\"/><channel id=\"b\"><display-name>B</display-name></channel>\
        <programme start=\"1\" channel=\"a\"><title>1</title></programme>\
        <programme start=\"2\" channel=\"b\"><title>2</title><credits><actor>x</actor></credits></programme></tv>";
    let mut r = GuideReader::new(&doc[..]).unwrap();
    let mut seen = Vec::new();
    while let Some(e) = r.next_element_where(|s| s.key == "b" && s.attr("start").is_none_or(|t| t == "2")).unwrap() {
        seen.push((e.kind(), e.attr("start")));
    }
    assert_eq!(seen, [(ElementKind::Channel, None), (ElementKind::Programme, Some("2".into()))]);
    assert_eq!((r.stats().channels, r.stats().programmes, r.stats().repaired), (2, 2, 0));
}

fn guide(channels: &[&str], programmes: &[(&str, &str, &str)]) -> Vec<u8> {
    let mut s = String::from("<?xml version=\"1.0\"?>\n<tv>\n");
    for c in channels {
        s.push_str(&format!("  <channel id=\"{c}\"><display-name>{c}</display-name></channel>\n"));
    }
    for (ch, start, title) in programmes {
        s.push_str(&format!("  <programme start=\"{start}\" channel=\"{ch}\"><title>{title}</title></programme>\n"));
    }
    s.push_str("</tv>\n");
    s.into_bytes()
}

fn map(pairs: &[(&str, &str)]) -> ChannelMap {
    let mut m = ChannelMap::new();
    for (s, o) in pairs {
        m.insert(*s, *o);
    }
    m
}

fn merged(sources: &mut [MergeSource<Cursor<Vec<u8>>>]) -> (String, MergeStats, Vec<Channel>, Vec<Programme>) {
    let mut out = Vec::new();
    let stats = merge(sources, &mut out).unwrap();
    assert_well_formed(&out);
    let (mut chans, mut progs) = (Vec::new(), Vec::new());
    let read = read_guide(&out[..], |i| match i {
        Item::Channel(c) => chans.push(c),
        Item::Programme(p) => progs.push(p),
    })
    .unwrap();
    assert_eq!((read.skipped, read.repaired, read.errors), (0, 0, 0));
    (String::from_utf8(out).unwrap(), stats, chans, progs)
}

#[test]
fn merge_first_source_wins_and_only_mapped_channels_appear() {
    let a = guide(
        &["cnn.us", "bbc.uk", "extra"],
        &[
            ("cnn.us", "20250101000000 +0530", "A1"),
            ("bbc.uk", "20250101000000 -0330", "A2"),
            ("extra", "20250101000000", "A3"),
        ],
    );
    let b = guide(
        &["CNN.us@HD", "zdf.de"],
        &[("CNN.us@HD", "20250101000000 +0000", "B1"), ("zdf.de", "20250101010000 +0100", "B2")],
    );
    let mut sources = [
        MergeSource::new("a", Cursor::new(a), map(&[("cnn.us", "cnn.us"), ("bbc.uk", "bbc")])),
        MergeSource::new("b", Cursor::new(b), map(&[("CNN.us@HD", "cnn.us"), ("zdf.de", "zdf.de")])),
    ];
    let (out, stats, chans, progs) = merged(&mut sources);
    let ids: Vec<&str> = chans.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["cnn.us", "bbc", "zdf.de"], "{out}");
    let got: Vec<(&str, &str, &str)> =
        progs.iter().map(|p| (p.channel.as_str(), p.start.as_str(), p.titles[0].value.as_str())).collect();
    assert_eq!(
        got,
        [
            ("cnn.us", "20250101000000 +0530", "A1"),
            ("bbc", "20250101000000 -0330", "A2"),
            ("zdf.de", "20250101010000 +0100", "B2"),
        ],
        "B1 is dropped: cnn.us comes from source a"
    );
    assert_eq!((stats.channels, stats.programmes, stats.stub_channels), (3, 3, 0));
    assert_eq!((stats.sources[0].channels, stats.sources[0].programmes), (2, 2));
    assert_eq!((stats.sources[1].channels, stats.sources[1].programmes), (1, 1));
    assert!(!out.contains("extra"), "unmapped channel left out");
    // The display name still says what the guide said.
    assert_eq!(chans[1].display_names[0].value, "bbc.uk");
}

#[test]
fn merge_one_guide_channel_under_two_ids_and_stubs_for_orphans() {
    let a = guide(&["x"], &[("x", "20250101000000 +0200", "X"), ("orphan", "20250101000000", "O")]);
    let mut sources = [MergeSource::new("a", Cursor::new(a), map(&[("x", "one"), ("x", "two"), ("orphan", "orphan")]))];
    let (out, stats, chans, progs) = merged(&mut sources);
    let ids: Vec<&str> = chans.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["one", "two", "orphan"], "{out}");
    assert_eq!(stats.stub_channels, 1);
    let got: Vec<&str> = progs.iter().map(|p| p.channel.as_str()).collect();
    assert_eq!(got, ["one", "two", "orphan"]);
    assert!(out.contains("<programme start=\"20250101000000 +0200\" channel=\"two\"><title>X</title></programme>"));
    assert!(out.contains("<programme start=\"20250101000000\" channel=\"orphan\">"), "no offset stays none");
}

/// A source whose reads fail after `ok` bytes.
struct Failing {
    inner: Cursor<Vec<u8>>,
    ok: u64,
}

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.inner.position() >= self.ok && self.inner.position() < self.inner.get_ref().len() as u64 {
            return Err(io::Error::other("disk on fire"));
        }
        let room = (self.ok - self.inner.position()) as usize;
        let n = buf.len().min(room);
        self.inner.read(&mut buf[..n])
    }
}

impl Seek for Failing {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[test]
fn an_unreadable_source_is_reported_and_skipped() {
    let good = guide(&["g"], &[("g", "1", "G")]);
    let bad = guide(&["b"], &[("b", "1", "B")]);
    let mut sources = [
        MergeSource::new("bad", Failing { inner: Cursor::new(bad), ok: 10 }, map(&[("b", "b")])),
        MergeSource::new("good", Failing { ok: good.len() as u64, inner: Cursor::new(good) }, map(&[("g", "g")])),
    ];
    let mut out = Vec::new();
    let stats = merge(&mut sources, &mut out).unwrap();
    assert!(stats.sources[0].error.as_deref().unwrap().contains("disk on fire"));
    assert_eq!(stats.sources[1].error, None);
    assert_eq!((stats.channels, stats.programmes), (1, 1));
    assert_well_formed(&out);
}

/// Accepts `room` bytes, then fails like a closed socket.
struct Closing {
    room: usize,
}

impl Write for Closing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.room == 0 {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let n = buf.len().min(self.room);
        self.room -= n;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_failing_output_stops_the_merge() {
    let a = guide(&["x"], &[("x", "1", "X"); 100]);
    let mut sources = [MergeSource::new("a", Cursor::new(a), map(&[("x", "x")]))];
    let err = merge(&mut sources, Closing { room: 500 }).unwrap_err();
    assert!(matches!(err, XmltvError::Write(_)), "{err}");
}
