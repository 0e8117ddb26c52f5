//! Extended M3U (`#EXTM3U` / `#EXTINF`) playlists as served by IPTV providers.
//!
//! Provider playlists are the main input of the gateway and are routinely
//! malformed: missing headers, CRLF or CR line endings, byte order marks,
//! non-UTF-8 titles, quotes inside quoted attribute values, junk lines. This
//! module parses them leniently, records every line it had to skip (with the
//! reason) instead of failing, and writes playlists back out in a form that
//! this parser reads back identically.
//!
//! * [`parse`] parses a whole buffer;
//! * [`Parser`] is the incremental (push) form of the same parser, for
//!   playlists that arrive in chunks and are too big to hold at once;
//! * [`write()`], [`write_header`] and [`write_entry`] produce M3U text.
//!
//! Line rules: lines end at LF, CRLF or a lone CR; blank lines are ignored;
//! a UTF-8 BOM is dropped; each line is decoded as UTF-8 when valid and as
//! Windows-1252 otherwise. `#EXTVLCOPT`, `#EXTGRP` and `#KODIPROP` lines
//! belong to the entry whose URL follows them (whether they come before or
//! after its `#EXTINF`); other `#…` lines between an `#EXTINF` and its URL are
//! kept verbatim in [`Entry::extra_lines`]; other `#…` lines outside an entry
//! are comments and ignored. See the `line` and `attrs` submodules for what
//! counts as a URL and how attributes are scanned.

mod attrs;
mod line;
mod parser;
mod writer;

pub use parser::{Parser, Summary, MAX_ENTRY_LINES, MAX_HEADER_ATTRS, MAX_SKIPPED_KEPT};
pub use writer::{write, write_entry, write_header};

use serde::Serialize;

/// The `#EXTM3U` header line and its attributes (e.g. `x-tvg-url`, `url-tvg`).
///
/// Kept separately from the entries because it carries playlist-wide settings,
/// most importantly where to fetch the EPG from.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Header {
    /// Whether an `#EXTM3U` line was seen at all (anywhere in the file).
    pub present: bool,
    /// Header attributes in order, keys as written, values unquoted. When a
    /// file has several `#EXTM3U` lines their attributes are concatenated.
    pub attrs: Vec<(String, String)>,
}

impl Header {
    /// Value of the first attribute named `key` (ASCII case-insensitive).
    pub fn attr(&self, key: &str) -> Option<&str> {
        find_attr(&self.attrs, key)
    }

    /// EPG (XMLTV) URLs announced by `x-tvg-url` or `url-tvg`.
    ///
    /// Values may be comma-separated lists; they are split and trimmed, empty
    /// items and repeats dropped. Order follows the attributes.
    pub fn epg_urls(&self) -> Vec<&str> {
        let mut urls: Vec<&str> = Vec::new();
        let items = self
            .attrs
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("x-tvg-url") || k.eq_ignore_ascii_case("url-tvg"))
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim);
        for url in items {
            if !url.is_empty() && !urls.contains(&url) {
                urls.push(url);
            }
        }
        urls
    }
}

/// One channel or stream of a playlist: its `#EXTINF` data, the option lines
/// that came with it, and its URL.
///
/// Every field is kept as written so that the writer can reproduce the entry;
/// the accessor methods apply the usual fallbacks between attribute spellings.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Entry {
    /// 1-based line number where the entry starts: its `#EXTINF` line, or the
    /// URL line if it has no `#EXTINF`.
    pub line: usize,
    /// Duration as written (`"-1"`, `"40"`, `"-1.000"`); empty when absent.
    pub duration: String,
    /// `#EXTINF` attributes in order, keys as written, values unquoted.
    pub attrs: Vec<(String, String)>,
    /// Text after the first comma outside quotes on the `#EXTINF` line, trimmed.
    pub title: String,
    /// Value of an `#EXTGRP:` line (the last one wins).
    pub extgrp: Option<String>,
    /// `#EXTVLCOPT:key=value` lines; the value is `None` for bare options such
    /// as `no-ssl-verify`.
    pub vlc_opts: Vec<(String, Option<String>)>,
    /// `#KODIPROP:key=value` lines.
    pub kodi_props: Vec<(String, String)>,
    /// Other `#…` lines between the `#EXTINF` and the URL, verbatim (trimmed).
    pub extra_lines: Vec<String>,
    /// The stream URL or path, as written (trimmed).
    pub url: String,
}

impl Entry {
    /// Value of the first attribute named `key` (ASCII case-insensitive),
    /// even if it is empty.
    pub fn attr(&self, key: &str) -> Option<&str> {
        find_attr(&self.attrs, key)
    }

    /// First non-empty (trimmed) value among the attributes `keys`, in order.
    fn attr_nonempty(&self, keys: &[&str]) -> Option<&str> {
        keys.iter().find_map(|k| nonempty(self.attr(k)))
    }

    /// First non-empty (trimmed) `#EXTVLCOPT` value among `keys`.
    fn vlc_opt_nonempty(&self, keys: &[&str]) -> Option<&str> {
        keys.iter().find_map(|key| {
            self.vlc_opts.iter().filter(|(k, _)| k.eq_ignore_ascii_case(key)).find_map(|(_, v)| nonempty(v.as_deref()))
        })
    }

    /// `tvg-id`, the EPG channel id (non-empty, trimmed).
    pub fn tvg_id(&self) -> Option<&str> {
        self.attr_nonempty(&["tvg-id"])
    }

    /// `tvg-name` (non-empty, trimmed).
    pub fn tvg_name(&self) -> Option<&str> {
        self.attr_nonempty(&["tvg-name"])
    }

    /// `tvg-logo` (non-empty, trimmed).
    pub fn tvg_logo(&self) -> Option<&str> {
        self.attr_nonempty(&["tvg-logo"])
    }

    /// Channel number: `tvg-chno`, else `channel-number`, else `tvg-num`.
    pub fn tvg_chno(&self) -> Option<&str> {
        self.attr_nonempty(&["tvg-chno", "channel-number", "tvg-num"])
    }

    /// Group: the `group-title` attribute, else the `#EXTGRP` line.
    pub fn group_title(&self) -> Option<&str> {
        self.attr_nonempty(&["group-title"]).or_else(|| nonempty(self.extgrp.as_deref()))
    }

    /// User agent to send: `user-agent` / `http-user-agent` attribute, else
    /// `#EXTVLCOPT:http-user-agent`.
    pub fn user_agent(&self) -> Option<&str> {
        self.attr_nonempty(&["user-agent", "http-user-agent"]).or_else(|| self.vlc_opt_nonempty(&["http-user-agent"]))
    }

    /// Referrer to send: `http-referrer` / `referrer` attribute (or the
    /// one-r spellings), else `#EXTVLCOPT:http-referrer`.
    pub fn referrer(&self) -> Option<&str> {
        self.attr_nonempty(&["http-referrer", "referrer", "http-referer", "referer"])
            .or_else(|| self.vlc_opt_nonempty(&["http-referrer", "http-referer"]))
    }

    /// Display name: the title, else `tvg-name`, else the URL.
    pub fn name(&self) -> &str {
        nonempty(Some(&self.title)).or_else(|| self.tvg_name()).unwrap_or(&self.url)
    }
}

/// A line the parser could not use, and why.
///
/// Returned instead of an error so that one bad line never costs the rest of
/// the playlist, while still letting callers report what was dropped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    /// 1-based line number.
    pub line: usize,
    /// Human-readable reason.
    pub reason: String,
    /// The first ~120 characters of the line (decoded leniently).
    pub text: String,
}

/// A whole parsed playlist: what [`parse`] returns and [`write()`] consumes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Playlist {
    /// The `#EXTM3U` header.
    pub header: Header,
    /// Entries in file order.
    pub entries: Vec<Entry>,
    /// The first [`MAX_SKIPPED_KEPT`] lines that were skipped, in file order
    /// of detection.
    pub skipped: Vec<Skipped>,
    /// How many lines were skipped in all.
    pub skipped_count: usize,
}

/// Parses a whole playlist buffer. Never fails and never panics; unusable
/// lines are counted in [`Playlist::skipped_count`], the first ones kept in
/// [`Playlist::skipped`].
pub fn parse(input: &[u8]) -> Playlist {
    let mut parser = Parser::new();
    let mut entries = Vec::new();
    parser.feed(input, &mut entries);
    let summary = parser.finish(&mut entries);
    Playlist { header: summary.header, entries, skipped: summary.skipped, skipped_count: summary.skipped_count }
}

fn find_attr<'a>(attrs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
}

fn nonempty(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_and_fallbacks() {
        let p = parse(
            b"#EXTM3U url-tvg=\"a.xml, b.xml\" x-tvg-url=\"c.xml,a.xml\"\n\
              #EXTINF:-1 tvg-id=\" \" tvg-name=\"N\" channel-number=\"7\" http-referrer=\"r\",\n\
              #EXTGRP:Grp\n\
              #EXTVLCOPT:http-user-agent=UA\n\
              http://x/1\n",
        );
        assert_eq!(p.header.epg_urls(), vec!["a.xml", "b.xml", "c.xml"]);
        assert_eq!(p.header.attr("URL-TVG"), Some("a.xml, b.xml"));
        assert_eq!(p.header.attr("x-tvg-url"), Some("c.xml,a.xml"));
        let e = &p.entries[0];
        assert_eq!(e.attr("TVG-ID"), Some(" "));
        assert_eq!(e.tvg_id(), None);
        assert_eq!(e.name(), "N");
        assert_eq!(e.tvg_chno(), Some("7"));
        assert_eq!(e.group_title(), Some("Grp"));
        assert_eq!(e.user_agent(), Some("UA"));
        assert_eq!(e.referrer(), Some("r"));
        assert_eq!(e.line, 2);
    }

    #[test]
    fn name_falls_back_to_url() {
        let p = parse(b"http://x/y\n");
        assert_eq!(p.entries[0].name(), "http://x/y");
        assert!(!p.header.present);
    }
}
