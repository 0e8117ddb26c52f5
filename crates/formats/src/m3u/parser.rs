//! The incremental (push) M3U parser.
//!
//! A provider playlist can hold hundreds of thousands of entries and arrives
//! over HTTP in arbitrary chunks. [`Parser`] accepts those chunks as they come
//! (split anywhere, even inside a line or a UTF-8 character), emits each entry
//! as soon as its URL line is complete, and only ever buffers one partial line
//! plus the entry being assembled. Whatever the input, its memory is bounded:
//! skipped lines are all counted but only the first [`MAX_SKIPPED_KEPT`] are
//! kept as examples, an entry keeps at most [`MAX_ENTRY_LINES`] option lines
//! and the header at most [`MAX_HEADER_ATTRS`] attributes (the rest are
//! skipped lines too).

use super::attrs;
use super::line::{self, Kind};
use super::{Entry, Header, Skipped};
use serde::Serialize;

/// Lines longer than this are skipped rather than buffered without bound.
const MAX_LINE: usize = 1 << 20;

/// Bytes of an overlong line kept for its [`Skipped::text`].
const OVERLONG_KEEP: usize = 512;

/// Skipped lines kept as examples; the others are only counted. A playlist
/// of junk must not cost memory in proportion to its size.
pub const MAX_SKIPPED_KEPT: usize = 20;

/// `#EXTVLCOPT`, `#KODIPROP` and other `#…` lines kept for one entry.
pub const MAX_ENTRY_LINES: usize = 100;

/// Attributes kept from `#EXTM3U` lines.
pub const MAX_HEADER_ATTRS: usize = 100;

/// What [`Parser::finish`] reports once the input is exhausted.
///
/// Entries have already been handed out by then; this carries everything else
/// a caller needs to log or store about the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// The `#EXTM3U` header (`present == false` if there was none).
    pub header: Header,
    /// The first [`MAX_SKIPPED_KEPT`] lines that were skipped, with reasons.
    pub skipped: Vec<Skipped>,
    /// How many lines were skipped in all.
    pub skipped_count: usize,
    /// Number of lines seen (blank ones included).
    pub lines: usize,
    /// Number of entries emitted.
    pub entries: usize,
}

/// An entry under construction: started by `#EXTINF` or by an option line
/// (`#EXTVLCOPT` etc.) and completed by a URL line.
#[derive(Debug)]
struct Pending {
    entry: Entry,
    has_extinf: bool,
    /// Line number and text of the line that started it (for `Skipped`).
    first_line: usize,
    first_text: String,
}

/// Incremental extended-M3U parser; see the module documentation.
///
/// Feeding a whole buffer at once or the same bytes in any chunking yields
/// exactly the same entries, header and skipped lines.
#[derive(Debug)]
pub struct Parser {
    /// Bytes of the current, not yet terminated line.
    partial: Vec<u8>,
    /// The current line exceeded [`MAX_LINE`]; its remaining bytes are dropped.
    overlong: bool,
    /// The previous chunk ended with `\r`: a `\n` starting the next chunk
    /// belongs to that line ending.
    skip_lf: bool,
    lines: usize,
    entries: usize,
    header: Header,
    skipped: Vec<Skipped>,
    skipped_count: usize,
    pending: Option<Pending>,
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl Parser {
    /// Creates a parser with no input seen yet.
    pub fn new() -> Self {
        Parser {
            partial: Vec::new(),
            overlong: false,
            skip_lf: false,
            lines: 0,
            entries: 0,
            header: Header::default(),
            skipped: Vec::new(),
            skipped_count: 0,
            pending: None,
        }
    }

    /// The header seen so far. Complete once the `#EXTM3U` line has been fed
    /// (normally the first line).
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Feeds the next chunk of input, split anywhere. Entries completed by this
    /// chunk are appended to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Entry>) {
        let mut rest = chunk;
        if self.skip_lf {
            if let Some((&first, tail)) = rest.split_first() {
                self.skip_lf = false;
                if first == b'\n' {
                    rest = tail;
                }
            }
        }
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', rest) {
            let part = &rest[..pos];
            if self.partial.is_empty() && !self.overlong {
                self.line_complete(part, out);
            } else {
                self.push_partial(part);
                let buf = std::mem::take(&mut self.partial);
                self.line_complete(&buf, out);
                self.partial = buf;
                self.partial.clear();
            }
            let terminator = rest[pos];
            rest = &rest[pos + 1..];
            if terminator == b'\r' {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
        }
        self.push_partial(rest);
    }

    /// Signals the end of input: processes a last line without a newline,
    /// reports a trailing `#EXTINF` that never got a URL, and returns the
    /// header, skipped lines and counters.
    pub fn finish(mut self, out: &mut Vec<Entry>) -> Summary {
        if !self.partial.is_empty() || self.overlong {
            let buf = std::mem::take(&mut self.partial);
            self.line_complete(&buf, out);
        }
        if let Some(p) = self.pending.take() {
            self.skip_pending(p);
        }
        Summary {
            header: self.header,
            skipped: self.skipped,
            skipped_count: self.skipped_count,
            lines: self.lines,
            entries: self.entries,
        }
    }

    /// Appends bytes to the current partial line, switching to overlong mode
    /// once the line exceeds [`MAX_LINE`].
    fn push_partial(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.overlong {
            return;
        }
        if self.partial.len() + bytes.len() > MAX_LINE {
            self.overlong = true;
            let keep = OVERLONG_KEEP.saturating_sub(self.partial.len());
            self.partial.extend_from_slice(&bytes[..keep.min(bytes.len())]);
            self.partial.truncate(OVERLONG_KEEP);
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }

    /// Handles one complete line (without its terminator).
    fn line_complete(&mut self, raw: &[u8], out: &mut Vec<Entry>) {
        self.lines += 1;
        let line_no = self.lines;
        if self.overlong || raw.len() > MAX_LINE {
            self.overlong = false;
            let head = &raw[..raw.len().min(OVERLONG_KEEP)];
            let text = String::from_utf8_lossy(head);
            self.skip(line_no, format!("line is longer than {MAX_LINE} bytes; ignored"), &text);
            return;
        }
        let decoded = line::decode(raw);
        let text = decoded.trim().trim_start_matches('\u{feff}').trim_start();
        if text.is_empty() {
            return;
        }
        match line::classify(text) {
            Kind::Header(rest) => {
                self.header.present = true;
                attrs::parse_header_attrs(rest, &mut self.header.attrs);
                if self.header.attrs.len() > MAX_HEADER_ATTRS {
                    self.header.attrs.truncate(MAX_HEADER_ATTRS);
                    self.skip(
                        line_no,
                        format!("more than {MAX_HEADER_ATTRS} header attributes; the rest ignored"),
                        text,
                    );
                }
            }
            Kind::ExtInf(rest) => {
                let previous = match self.pending.take() {
                    Some(p) if p.has_extinf => {
                        self.skip_pending(p);
                        None
                    }
                    other => other,
                };
                match attrs::parse_extinf(rest) {
                    Ok(info) => {
                        let mut p = previous.unwrap_or_else(|| Pending {
                            entry: Entry::default(),
                            has_extinf: false,
                            first_line: line_no,
                            first_text: String::new(),
                        });
                        p.has_extinf = true;
                        p.first_line = line_no;
                        p.first_text = line::snippet(text);
                        p.entry.line = line_no;
                        p.entry.duration = info.duration;
                        p.entry.attrs = info.attrs;
                        p.entry.title = info.title;
                        self.pending = Some(p);
                    }
                    Err(reason) => {
                        self.skip(line_no, reason.to_string(), text);
                        self.pending = previous;
                    }
                }
            }
            Kind::VlcOpt(rest) => {
                let opt = match rest.split_once('=') {
                    Some((k, v)) => (k.trim().to_string(), Some(v.to_string())),
                    None => (rest.trim().to_string(), None),
                };
                if let Some(e) = self.entry_for_option(line_no, text) {
                    e.vlc_opts.push(opt);
                }
            }
            Kind::ExtGrp(rest) => {
                self.pending_mut(line_no, text).entry.extgrp = Some(rest.trim().to_string());
            }
            Kind::KodiProp(rest) => {
                let prop = match rest.split_once('=') {
                    Some((k, v)) => (k.trim().to_string(), v.to_string()),
                    None => (rest.trim().to_string(), String::new()),
                };
                if let Some(e) = self.entry_for_option(line_no, text) {
                    e.kodi_props.push(prop);
                }
            }
            Kind::OtherDirective => {
                if self.pending.as_ref().is_some_and(|p| p.has_extinf) {
                    if let Some(e) = self.entry_for_option(line_no, text) {
                        e.extra_lines.push(text.to_string());
                    }
                }
            }
            Kind::Url => {
                let mut entry = match self.pending.take() {
                    Some(p) => {
                        let mut e = p.entry;
                        if !p.has_extinf {
                            e.line = line_no;
                        }
                        e
                    }
                    None => Entry { line: line_no, ..Entry::default() },
                };
                entry.url = text.to_string();
                self.entries += 1;
                out.push(entry);
            }
            Kind::Junk => {
                self.skip(
                    line_no,
                    "not a URL, a path or a #directive (HTML or error text?); ignored".to_string(),
                    text,
                );
            }
        }
    }

    /// The entry being assembled, starting one (from an option line) if needed.
    fn pending_mut(&mut self, line_no: usize, text: &str) -> &mut Pending {
        self.pending.get_or_insert_with(|| Pending {
            entry: Entry::default(),
            has_extinf: false,
            first_line: line_no,
            first_text: line::snippet(text),
        })
    }

    /// The entry an option line belongs to (started if needed), or `None`
    /// (and the line skipped) when that entry already has
    /// [`MAX_ENTRY_LINES`] of them.
    fn entry_for_option(&mut self, line_no: usize, text: &str) -> Option<&mut Entry> {
        let e = &self.pending_mut(line_no, text).entry;
        if e.vlc_opts.len() + e.kodi_props.len() + e.extra_lines.len() >= MAX_ENTRY_LINES {
            self.skip(line_no, format!("more than {MAX_ENTRY_LINES} option lines for one entry; ignored"), text);
            return None;
        }
        self.pending.as_mut().map(|p| &mut p.entry)
    }

    /// Records an unfinished entry as skipped.
    fn skip_pending(&mut self, p: Pending) {
        let reason =
            if p.has_extinf { "EXTINF without URL" } else { "#EXTVLCOPT/#EXTGRP/#KODIPROP without a following URL" };
        self.record(Skipped { line: p.first_line, reason: reason.to_string(), text: p.first_text });
    }

    fn skip(&mut self, line: usize, reason: String, text: &str) {
        if self.skipped.len() < MAX_SKIPPED_KEPT {
            self.record(Skipped { line, reason, text: line::snippet(text) });
        } else {
            self.skipped_count += 1;
        }
    }

    /// Counts a skipped line, keeping it only as one of the first examples.
    fn record(&mut self, s: Skipped) {
        self.skipped_count += 1;
        if self.skipped.len() < MAX_SKIPPED_KEPT {
            self.skipped.push(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    fn chunked(input: &[u8], size: usize) -> (Vec<Entry>, Summary) {
        let mut p = Parser::new();
        let mut out = Vec::new();
        for c in input.chunks(size.max(1)) {
            p.feed(c, &mut out);
        }
        let s = p.finish(&mut out);
        (out, s)
    }

    #[test]
    fn line_endings() {
        let input = b"\xEF\xBB\xBF#EXTM3U\r\n#EXTINF:-1,A\r#EXTVLCOPT:x=1\r\nhttp://a\n\n#EXTINF:-1,B\rhttp://b";
        for size in 1..input.len() + 1 {
            let (entries, s) = chunked(input, size);
            assert!(s.header.present, "size {size}");
            assert_eq!(entries.len(), 2, "size {size}");
            assert_eq!(entries[0].title, "A");
            assert_eq!(entries[0].vlc_opts, vec![("x".into(), Some("1".into()))]);
            assert_eq!(entries[0].url, "http://a");
            assert_eq!(entries[1].line, 6);
            assert_eq!(entries[1].url, "http://b");
            assert_eq!(s.lines, 7);
            assert!(s.skipped.is_empty());
        }
    }

    #[test]
    fn double_extinf_and_trailing_extinf() {
        let p = parse(b"#EXTINF:-1,A\n#EXTINF:-1,B\nhttp://b\n#EXTINF:-1,C\n");
        assert_eq!(p.entries.len(), 1);
        assert_eq!(p.entries[0].title, "B");
        assert_eq!(p.skipped.len(), 2);
        assert_eq!(p.skipped[0].line, 1);
        assert_eq!(p.skipped[0].reason, "EXTINF without URL");
        assert_eq!(p.skipped[0].text, "#EXTINF:-1,A");
        assert_eq!(p.skipped[1].line, 4);
    }

    #[test]
    fn options_before_extinf_and_url_only() {
        let p = parse(b"#EXTM3U\n# a comment\n#EXTVLCOPT:no-ssl-verify\n#EXTINF:-1,A\n#EXT-X-FOO:1\n#KODIPROP:k=v\nhttp://a\n#EXTGRP:G\nhttp://b\n");
        assert_eq!(p.entries.len(), 2);
        let a = &p.entries[0];
        assert_eq!(a.vlc_opts, vec![("no-ssl-verify".into(), None)]);
        assert_eq!(a.extra_lines, vec!["#EXT-X-FOO:1".to_string()]);
        assert_eq!(a.kodi_props, vec![("k".into(), "v".into())]);
        assert_eq!(a.line, 4);
        let b = &p.entries[1];
        assert_eq!(b.extgrp.as_deref(), Some("G"));
        assert_eq!(b.line, 9);
        assert_eq!(b.title, "");
    }

    #[test]
    fn junk_and_bad_extinf() {
        let p = parse(b"<html><body>Error</body></html>\n#EXTINF:\nhttp://a\n");
        assert_eq!(p.entries.len(), 1);
        assert_eq!(p.skipped.len(), 2);
        assert_eq!(p.skipped[0].line, 1);
        assert_eq!(p.skipped[1].line, 2);
    }

    #[test]
    fn cp1252_line_and_split_utf8() {
        let mut input = b"#EXTINF:-1,Caf\xe9\nhttp://a\n".to_vec();
        input.extend_from_slice("#EXTINF:-1,Tëvë1\nhttp://b\n".as_bytes());
        for size in 1..8 {
            let (entries, _) = chunked(&input, size);
            assert_eq!(entries[0].title, "Café");
            assert_eq!(entries[1].title, "Tëvë1");
        }
    }

    #[test]
    fn header_not_on_first_line() {
        let mut p = Parser::new();
        let mut out = Vec::new();
        p.feed(b"# generated\n#EXTM3U x-tvg-url=\"e.xml\"\n", &mut out);
        assert_eq!(p.header().epg_urls(), vec!["e.xml"]);
    }

    #[test]
    fn junk_is_counted_but_only_the_first_examples_are_kept() {
        let mut input = b"#EXTM3U\n#EXTINF:-1,A\nhttp://a\n".to_vec();
        for i in 0..100_000 {
            input.extend_from_slice(format!("<p>junk line {i} of an error page</p>\n").as_bytes());
        }
        input.extend_from_slice(b"#EXTINF:-1,B\n");
        for i in 0..1000 {
            input.extend_from_slice(format!("#EXTVLCOPT:opt{i}=x\n").as_bytes());
        }
        input.extend_from_slice(b"http://b\n");
        let (entries, s) = chunked(&input, 64 * 1024);
        assert_eq!(entries.len(), 2);
        assert_eq!(s.skipped.len(), MAX_SKIPPED_KEPT, "examples kept");
        assert_eq!(s.skipped_count, 100_000 + 1000 - MAX_ENTRY_LINES, "every skipped line counted");
        assert_eq!((s.skipped[0].line, s.skipped[19].line), (4, 23));
        assert_eq!(entries[1].vlc_opts.len(), MAX_ENTRY_LINES);
        assert_eq!(parse(&input).skipped_count, s.skipped_count);
    }

    #[test]
    fn overlong_line_is_skipped_consistently() {
        let mut input = b"#EXTINF:-1,".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        input.extend_from_slice(b"\nhttp://a\n");
        let whole = parse(&input);
        let (entries, s) = chunked(&input, 4096);
        assert_eq!(whole.entries, entries);
        assert_eq!(whole.skipped, s.skipped);
        assert_eq!(entries.len(), 1);
        assert_eq!(s.skipped.len(), 1);
        assert_eq!(entries[0].line, 2);
    }
}
