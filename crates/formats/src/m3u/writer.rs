//! Writing extended M3U.
//!
//! The gateway re-serves playlists it parsed or built, so the writer's output
//! must parse back to the same header and entries (line numbers aside).
//! Rules:
//!
//! * the `#EXTM3U` line is always written (so `header.present` is `true` after
//!   a round trip even if the source had no header);
//! * attribute values are written in double quotes; a value whose own `"`
//!   characters would end it early (see the `attrs` module) is written in
//!   single quotes instead; if neither quoting reads back exactly, its `"`
//!   are replaced by `'` (the only lossy case);
//! * an entry with no duration, attributes, title or extra lines is written as
//!   its option lines followed by the bare URL (no `#EXTINF`);
//! * CR/LF inside any field are replaced by spaces, characters that
//!   cannot appear in a key are replaced by `_`, and a duration that would
//!   not read back is written as `-1`.

use super::attrs::{self, Mode};
use super::{Entry, Header, Playlist};
use std::borrow::Cow;
use std::fmt::Write as _;

/// Writes a whole playlist: header line, then every entry.
pub fn write(playlist: &Playlist) -> String {
    let mut out = String::with_capacity(64 + playlist.entries.len() * 160);
    write_header(&playlist.header, &mut out);
    for entry in &playlist.entries {
        write_entry(entry, &mut out);
    }
    out
}

/// Writes the `#EXTM3U` line with the header attributes.
pub fn write_header(header: &Header, out: &mut String) {
    out.push_str("#EXTM3U");
    write_attrs(&header.attrs, Mode::Header, out);
    out.push('\n');
}

/// Writes one entry: `#EXTINF`, `#EXTGRP`, `#EXTVLCOPT`, `#KODIPROP`, extra
/// lines, then the URL.
pub fn write_entry(entry: &Entry, out: &mut String) {
    let bare = entry.duration.is_empty()
        && entry.attrs.is_empty()
        && entry.title.trim().is_empty()
        && entry.extra_lines.is_empty();
    if !bare {
        out.push_str("#EXTINF:");
        out.push_str(&duration(&entry.duration));
        write_attrs(&entry.attrs, Mode::ExtInf, out);
        out.push(',');
        out.push_str(&one_line(&entry.title));
        out.push('\n');
    }
    if let Some(grp) = &entry.extgrp {
        let _ = writeln!(out, "#EXTGRP:{}", one_line(grp));
    }
    for (k, v) in &entry.vlc_opts {
        let key = one_line(k).replace('=', "_");
        match v {
            Some(v) => {
                let _ = writeln!(out, "#EXTVLCOPT:{key}={}", one_line(v));
            }
            None => {
                let _ = writeln!(out, "#EXTVLCOPT:{key}");
            }
        }
    }
    for (k, v) in &entry.kodi_props {
        let key = one_line(k).replace('=', "_");
        let _ = writeln!(out, "#KODIPROP:{key}={}", one_line(v));
    }
    if !bare {
        for line in &entry.extra_lines {
            let line = one_line(line);
            if line.starts_with('#') {
                out.push_str(&line);
            } else {
                out.push_str("# ");
                out.push_str(&line);
            }
            out.push('\n');
        }
    }
    out.push_str(&one_line(&entry.url));
    out.push('\n');
}

fn write_attrs(list: &[(String, String)], mode: Mode, out: &mut String) {
    for (k, v) in list {
        let bad = |c: char| (c.is_ascii() && !attrs::is_key_byte(c as u8)) || is_line_break(c);
        // Keys are nearly always clean: copy only when one needs fixing.
        let key: Cow<'_, str> = if k.contains(bad) {
            Cow::Owned(k.chars().map(|c| if bad(c) { '_' } else { c }).collect())
        } else {
            Cow::Borrowed(k)
        };
        if key.is_empty() {
            continue;
        }
        out.push(' ');
        out.push_str(&key);
        out.push('=');
        let value = one_line(v);
        push_quoted(&value, mode, out);
    }
}

/// Writes `value` quoted so that [`attrs::read_value`] returns it unchanged.
fn push_quoted(value: &str, mode: Mode, out: &mut String) {
    for q in ['"', '\''] {
        if !value.contains(q) || reads_back(value, q, mode) {
            out.push(q);
            out.push_str(value);
            out.push(q);
            return;
        }
    }
    out.push('"');
    out.push_str(&value.replace('"', "'"));
    out.push('"');
}

fn reads_back(value: &str, q: char, mode: Mode) -> bool {
    let mut candidate = String::with_capacity(value.len() + 2);
    candidate.push(q);
    candidate.push_str(value);
    candidate.push(q);
    let (read, next) = attrs::read_value(&candidate, 0, mode);
    read == value && next == candidate.len()
}

/// A duration token that reads back as itself, or `-1`.
fn duration(d: &str) -> Cow<'_, str> {
    let ok = d.bytes().all(|b| !attrs::is_ws(b) && b != b',' && b != b'=') && !d.contains(is_line_break);
    if ok {
        Cow::Borrowed(d)
    } else {
        Cow::Borrowed("-1")
    }
}

/// The characters that end a line for the parser.
fn is_line_break(c: char) -> bool {
    c == '\r' || c == '\n'
}

/// Replaces line breaks by spaces so a field cannot split its line.
fn one_line(s: &str) -> Cow<'_, str> {
    if s.contains(is_line_break) {
        Cow::Owned(s.replace(is_line_break, " "))
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    fn entry(attrs: &[(&str, &str)], title: &str) -> Entry {
        Entry {
            line: 2,
            duration: "-1".into(),
            attrs: attrs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            title: title.into(),
            url: "http://x/y".into(),
            ..Entry::default()
        }
    }

    #[test]
    fn quotes_round_trip() {
        for v in [r#"The "Best" TV"#, r#"a" b=c"#, r#"x", 'y' z='"#, r#"""#, "'", r#"end""#, "", "a, b"] {
            let e = entry(&[("tvg-name", v), ("tvg-id", "id")], "T, with \"quotes\"");
            let mut s = String::new();
            write_entry(&e, &mut s);
            let p = parse(s.as_bytes());
            let got = &p.entries[0];
            let expected_ok = got.attrs[0].1 == v || got.attrs[0].1 == v.replace('"', "'");
            assert!(expected_ok, "{v:?} -> {s:?} -> {:?}", got.attrs);
            assert_eq!(got.attrs[1].1, "id", "{s}");
            assert_eq!(got.title, e.title);
        }
    }

    #[test]
    fn value_with_quote_uses_single_quotes() {
        let e = entry(&[("tvg-name", r#"a" b=c"#)], "T");
        let mut s = String::new();
        write_entry(&e, &mut s);
        assert_eq!(s, "#EXTINF:-1 tvg-name='a\" b=c',T\nhttp://x/y\n");
    }

    #[test]
    fn bare_entry_written_without_extinf() {
        let e = Entry { vlc_opts: vec![("no-ssl-verify".into(), None)], url: "http://a".into(), ..Entry::default() };
        let mut s = String::new();
        write_entry(&e, &mut s);
        assert_eq!(s, "#EXTVLCOPT:no-ssl-verify\nhttp://a\n");
        let p = parse(s.as_bytes());
        assert_eq!(p.entries[0].vlc_opts, e.vlc_opts);
    }

    #[test]
    fn header_always_written() {
        let s = write(&Playlist::default());
        assert_eq!(s, "#EXTM3U\n");
        let h = Header { present: true, attrs: vec![("x-tvg-url".into(), "a.xml,b.xml".into())] };
        let mut s = String::new();
        write_header(&h, &mut s);
        assert_eq!(s, "#EXTM3U x-tvg-url=\"a.xml,b.xml\"\n");
        assert_eq!(parse(s.as_bytes()).header, h);
    }
}
