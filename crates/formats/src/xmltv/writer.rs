//! Writing a guide: elements copied through as read, with only the channel
//! id changed, and always well-formed.

use std::io::{self, Write};

use quick_xml::events::{BytesStart, Event};

use super::reader::Element;
use super::text::{escape_attr, escape_text, is_clean_value, is_valid_name, resolve_ref, unescape_lenient};

/// The start of every guide tunerpool writes.
const HEAD: &[u8] = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE tv SYSTEM \"xmltv.dtd\">\n<tv generator-info-name=\"tunerpool\">\n";
const TAIL: &[u8] = b"</tv>\n";

/// Writes one `<tv>` document element by element, so that a guide of any
/// size streams through a small buffer.
///
/// Elements are copied as they were read: attribute values (so `start` and
/// `stop` with whatever timezone offset they had, or none), text, CDATA and
/// child elements are written byte for byte where they are valid XML. What
/// is not (a bare `&`, an HTML entity, an unquoted or duplicated attribute)
/// is rewritten to the valid XML that means the same, so the output always
/// parses. Writing into a `BufWriter` is the caller's choice; each element is
/// handed to `out` in one `write_all`.
pub struct GuideWriter<W: Write> {
    out: W,
    scratch: Vec<u8>,
}

impl<W: Write> GuideWriter<W> {
    /// Writes the XML declaration and the `<tv>` start tag.
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(HEAD)?;
        Ok(GuideWriter { out, scratch: Vec::with_capacity(8 * 1024) })
    }

    /// Writes `element`, with its channel id (a channel's `id`, a
    /// programme's `channel`) replaced by `rename` if given.
    pub fn write(&mut self, element: &Element, rename: Option<&str>) -> io::Result<()> {
        let buf = &mut self.scratch;
        buf.clear();
        buf.extend_from_slice(b"  ");
        let key_attr = element.kind().key_attr();
        for (i, ev) in element.events.iter().enumerate() {
            let rename = if i == 0 { rename.map(|r| (key_attr, r)) } else { None };
            match ev {
                Event::Start(t) => write_start(t, false, rename, buf),
                Event::Empty(t) => write_start(t, true, rename, buf),
                Event::End(e) => {
                    buf.extend_from_slice(b"</");
                    buf.extend_from_slice(e.name().as_ref());
                    buf.push(b'>');
                }
                Event::Text(t) => escape_text(t, buf),
                Event::GeneralRef(r) => {
                    buf.extend_from_slice(if resolve_ref(r).is_some() { b"&" } else { b"&amp;" });
                    buf.extend_from_slice(r);
                    buf.push(b';');
                }
                Event::CData(c) => {
                    buf.extend_from_slice(b"<![CDATA[");
                    buf.extend_from_slice(c);
                    buf.extend_from_slice(b"]]>");
                }
                _ => {}
            }
        }
        buf.push(b'\n');
        self.out.write_all(buf)
    }

    /// Writes a minimal `<channel>` for a channel that has programmes but no
    /// `<channel>` element in its guide (players want one for every id).
    pub fn write_channel_stub(&mut self, id: &str, display_name: &str) -> io::Result<()> {
        let buf = &mut self.scratch;
        buf.clear();
        buf.extend_from_slice(b"  <channel id=\"");
        escape_attr(id, buf);
        buf.extend_from_slice(b"\"><display-name>");
        escape_attr(display_name, buf);
        buf.extend_from_slice(b"</display-name></channel>\n");
        self.out.write_all(buf)
    }

    /// Writes `</tv>`, flushes, and hands back the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(TAIL)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// `true` if the tag can be copied byte for byte: strict attribute syntax
/// (quoted, no duplicates), valid names, clean values.
fn is_clean_tag(tag: &BytesStart<'_>) -> bool {
    tag.attributes().all(|a| match a {
        Ok(a) => is_valid_name(a.key.as_ref()) && is_clean_value(&a.value),
        Err(_) => false,
    })
}

fn write_start(tag: &BytesStart<'_>, empty: bool, rename: Option<(&str, &str)>, buf: &mut Vec<u8>) {
    buf.push(b'<');
    if rename.is_none() && is_clean_tag(tag) {
        buf.extend_from_slice(tag.as_ref());
    } else {
        // Rebuilt from a lenient reading; values that were fine stay as written.
        buf.extend_from_slice(tag.name().as_ref());
        let mut seen: Vec<&[u8]> = Vec::new();
        for a in tag.html_attributes().with_checks(false).flatten() {
            let key: &[u8] = a.key.into_inner();
            if !is_valid_name(key) || seen.contains(&key) {
                continue;
            }
            seen.push(key);
            buf.push(b' ');
            buf.extend_from_slice(key);
            buf.extend_from_slice(b"=\"");
            match rename {
                Some((attr, value)) if attr.as_bytes() == key => escape_attr(value, buf),
                _ if is_clean_value(&a.value) && memchr::memchr(b'"', &a.value).is_none() => {
                    buf.extend_from_slice(&a.value)
                }
                _ => escape_attr(&unescape_lenient(&String::from_utf8_lossy(&a.value)), buf),
            }
            buf.push(b'"');
        }
    }
    if empty {
        buf.push(b'/');
    }
    buf.push(b'>');
}
