//! Element-by-element decoding of Xtream list responses.
//!
//! `get_live_streams` on a big panel returns a JSON array of 200 000 objects
//! and more. [`for_each_item`] walks such a body straight from a reader,
//! holding one element at a time: each element is first captured as raw JSON
//! (which only requires it to be syntactically valid) and then decoded into
//! the target type, so one odd element is skipped and counted instead of
//! failing the whole list. Besides arrays, `{}` (an empty list on some
//! panels) and objects keyed by id (`{"123": {...}, ...}`) are accepted.

use super::XtreamError;
use serde::de::{DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Serialize;
use serde_json::value::RawValue;
use std::fmt;
use std::io::{BufReader, Read};
use std::marker::PhantomData;

/// How many list elements were decoded and how many were skipped.
///
/// Lets callers notice (and log) a panel whose data is partly unusable
/// without losing the usable part.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ItemCounts {
    /// Elements decoded and handed to the callback.
    pub ok: usize,
    /// Elements that were valid JSON but not a usable item (e.g. no id).
    pub skipped: usize,
    /// Why the first skipped element was rejected, with its index or key.
    pub first_error: Option<String>,
}

/// A fully collected list plus its [`ItemCounts`]; what
/// [`super::parse_list`] returns for bodies small enough to hold at once.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ListResult<T> {
    /// The decoded elements, in body order.
    pub items: Vec<T>,
    /// Decoded / skipped counts.
    pub counts: ItemCounts,
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
/// Bytes of a non-JSON body looked at for the error snippet.
const SNIPPET_BYTES: usize = 320;
/// Characters kept in the error snippet.
const SNIPPET_CHARS: usize = 80;
/// Leading whitespace kept in memory while looking for the first JSON byte.
const MAX_LEADING_WS: usize = 64 * 1024;

/// Streams the elements of a JSON array (or id-keyed object, or `{}`) from
/// `reader`, calling `on_item` for each element that decodes as `T`.
///
/// Never holds the whole body. Elements that are valid JSON but do not decode
/// (e.g. a stream without `stream_id`) are skipped and counted. A body whose
/// first non-whitespace byte is not `[` or `{` is [`XtreamError::NotJson`];
/// malformed or truncated JSON is [`XtreamError::Json`] (elements before the
/// damage have already been delivered). Trailing bytes after the list are
/// ignored.
pub fn for_each_item<R: Read, T: DeserializeOwned>(
    reader: R,
    on_item: impl FnMut(T),
) -> Result<ItemCounts, XtreamError> {
    let mut reader = reader;
    let head = read_head(&mut reader)?;
    let body = BufReader::with_capacity(64 * 1024, std::io::Cursor::new(head).chain(reader));
    let mut de = serde_json::Deserializer::from_reader(body);
    drive(&mut de, on_item).map_err(json_error)
}

/// Decodes a whole list body held in memory; same rules as [`for_each_item`].
pub fn parse_list<T: DeserializeOwned>(body: &[u8]) -> Result<ListResult<T>, XtreamError> {
    let start = json_start(body)?;
    let mut items = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(&body[start..]);
    let counts = drive(&mut de, |item| items.push(item)).map_err(json_error)?;
    Ok(ListResult { items, counts })
}

/// Index of the first JSON byte of an in-memory body, or `NotJson`.
pub(crate) fn json_start(body: &[u8]) -> Result<usize, XtreamError> {
    let start = significant_start(body);
    match body.get(start) {
        Some(b'[' | b'{') => Ok(start),
        Some(_) => Err(not_json(&body[start..])),
        None => Err(not_json(&[])),
    }
}

/// Maps serde_json errors, keeping I/O failures distinguishable.
pub(crate) fn json_error(e: serde_json::Error) -> XtreamError {
    if e.is_io() {
        XtreamError::Io(e.into())
    } else {
        XtreamError::Json(e)
    }
}

/// Skips a leading UTF-8 BOM and ASCII whitespace.
fn significant_start(buf: &[u8]) -> usize {
    let mut i = if buf.starts_with(UTF8_BOM) { UTF8_BOM.len() } else { 0 };
    while i < buf.len() && buf[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// Reads just enough of the body to see its first significant byte; returns
/// the bytes from that byte on (to be chained before the rest of the reader),
/// or `NotJson` with a snippet.
fn read_head<R: Read>(reader: &mut R) -> Result<Vec<u8>, XtreamError> {
    let mut head = Vec::with_capacity(512);
    let mut eof = false;
    let mut buf = [0u8; 512];
    loop {
        let start = significant_start(&head);
        let maybe_partial_bom = head.len() < UTF8_BOM.len() && UTF8_BOM.starts_with(&head);
        if eof || (start < head.len() && !maybe_partial_bom) {
            break;
        }
        if start == head.len() && head.len() > MAX_LEADING_WS {
            head.clear();
        }
        eof = read_some(reader, &mut buf, &mut head)?;
    }
    let start = significant_start(&head);
    match head.get(start) {
        Some(b'[' | b'{') => Ok(head.split_off(start)),
        Some(_) => {
            while !eof && head.len() < start + SNIPPET_BYTES {
                eof = read_some(reader, &mut buf, &mut head)?;
            }
            Err(not_json(&head[start..]))
        }
        None => Err(not_json(&[])),
    }
}

/// One `read` into `head`; returns whether the reader is at EOF.
fn read_some<R: Read>(reader: &mut R, buf: &mut [u8], head: &mut Vec<u8>) -> std::io::Result<bool> {
    loop {
        match reader.read(buf) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                head.extend_from_slice(&buf[..n.min(buf.len())]);
                return Ok(false);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `NotJson` with a short sanitized snippet of `body`.
fn not_json(body: &[u8]) -> XtreamError {
    let text = String::from_utf8_lossy(&body[..body.len().min(SNIPPET_BYTES)]);
    let mut snippet = String::new();
    let mut chars = 0;
    let mut pending_space = false;
    for c in text.chars() {
        if c.is_whitespace() || c.is_control() {
            pending_space = !snippet.is_empty();
            continue;
        }
        if chars >= SNIPPET_CHARS {
            break;
        }
        if pending_space {
            snippet.push(' ');
            chars += 1;
            pending_space = false;
        }
        snippet.push(c);
        chars += 1;
    }
    XtreamError::NotJson { snippet }
}

/// Runs the element visitor over one deserializer.
fn drive<'de, D, T, F>(de: D, on_item: F) -> Result<ItemCounts, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
    F: FnMut(T),
{
    de.deserialize_any(ItemsVisitor { on_item, counts: ItemCounts::default(), _item: PhantomData })
}

struct ItemsVisitor<T, F> {
    on_item: F,
    counts: ItemCounts,
    _item: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned, F: FnMut(T)> ItemsVisitor<T, F> {
    fn handle(&mut self, raw: &RawValue, position: impl FnOnce() -> String) {
        match serde_json::from_str::<T>(raw.get()) {
            Ok(item) => {
                self.counts.ok += 1;
                (self.on_item)(item);
            }
            Err(e) => {
                self.counts.skipped += 1;
                if self.counts.first_error.is_none() {
                    self.counts.first_error = Some(format!("element {}: {e}", position()));
                }
            }
        }
    }
}

impl<'de, T: DeserializeOwned, F: FnMut(T)> Visitor<'de> for ItemsVisitor<T, F> {
    type Value = ItemCounts;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array or an object keyed by id")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<ItemCounts, A::Error> {
        let mut index = 0usize;
        while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
            self.handle(&raw, || index.to_string());
            index += 1;
        }
        Ok(self.counts)
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<ItemCounts, A::Error> {
        while let Some((key, raw)) = map.next_entry::<String, Box<RawValue>>()? {
            self.handle(&raw, || format!("{key:?}"));
        }
        Ok(self.counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Item {
        id: i64,
    }

    /// A reader returning one byte per call, to exercise partial reads.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match (self.0.split_first(), buf.first_mut()) {
                (Some((&b, rest)), Some(slot)) => {
                    *slot = b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    fn collect(body: &[u8]) -> Result<(Vec<i64>, ItemCounts), XtreamError> {
        let mut ids = Vec::new();
        let counts = for_each_item(Trickle(body), |i: Item| ids.push(i.id))?;
        let whole = parse_list::<Item>(body)?;
        assert_eq!(whole.counts, counts);
        assert_eq!(whole.items.iter().map(|i| i.id).collect::<Vec<_>>(), ids);
        Ok((ids, counts))
    }

    #[test]
    fn bom_whitespace_and_shapes() {
        let (ids, c) = collect(b"\xEF\xBB\xBF \n [{\"id\":1},{\"id\":2}]").unwrap();
        assert_eq!(ids, vec![1, 2]);
        assert_eq!(c.ok, 2);
        let (ids, _) = collect(br#"{"7":{"id":7},"8":{"id":8}}"#).unwrap();
        assert_eq!(ids, vec![7, 8]);
        let (ids, c) = collect(b"{}").unwrap();
        assert!(ids.is_empty());
        assert_eq!(c, ItemCounts::default());
    }

    #[test]
    fn bad_element_skipped() {
        let (ids, c) = collect(br#"[{"id":1},{"nope":2},3,{"id":4}]"#).unwrap();
        assert_eq!(ids, vec![1, 4]);
        assert_eq!((c.ok, c.skipped), (2, 2));
        assert!(c.first_error.unwrap().starts_with("element 1:"));
    }

    #[test]
    fn not_json_snippets() {
        let body = b"\n\n<html>\n  <head><title>403   Forbidden</title></head>\n<body>lots of text here that goes on and on and on and on and on and on</body></html>";
        match collect(body) {
            Err(XtreamError::NotJson { snippet }) => {
                assert!(snippet.starts_with("<html> <head><title>403 Forbidden</title>"), "{snippet}");
                assert_eq!(snippet.chars().count(), SNIPPET_CHARS);
            }
            other => panic!("{other:?}"),
        }
        match collect(b"  \n ") {
            Err(e @ XtreamError::NotJson { .. }) => assert!(e.to_string().contains("empty")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(collect(b"null"), Err(XtreamError::NotJson { .. })));
    }

    #[test]
    fn truncated_is_json_error() {
        let mut ids = Vec::new();
        let r = for_each_item(Trickle(br#"[{"id":1},{"id":2},{"id"#), |i: Item| ids.push(i.id));
        assert!(matches!(r, Err(XtreamError::Json(_))), "{r:?}");
        assert_eq!(ids, vec![1, 2]);
    }

    #[test]
    fn io_error_is_io() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("boom"))
            }
        }
        let r = for_each_item(Failing, |_: Item| {});
        assert!(matches!(r, Err(XtreamError::Io(_))));
        let r = for_each_item(std::io::Cursor::new(b"[{\"id\":1},".to_vec()).chain(Failing), |_: Item| {});
        assert!(matches!(r, Err(XtreamError::Io(_))), "{r:?}");
    }
}
