//! Rendering large text responses (API JSON, M3U, XMLTV) as a stream of chunks, optionally
//! gzip-compressed on the fly, so a 200 000-item catalog never exists in memory at once.

use std::convert::Infallible;
use std::io::Write;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use flate2::write::GzEncoder;
use flate2::Compression;

/// Items rendered per chunk.
const ITEMS_PER_CHUNK: usize = 500;

/// Renders items into chunks: an optional head, `per_chunk` items per chunk, an optional tail.
///
/// Exists so each endpoint only says how to render one item; chunking, laziness and the
/// JSON-array commas live here.
pub(crate) struct Chunks<I, F> {
    items: I,
    render: F,
    head: Option<Vec<u8>>,
    tail: Option<Vec<u8>>,
    first: bool,
    done: bool,
}

impl<I, F> Chunks<I, F> {
    pub(crate) fn new(head: &[u8], items: I, tail: &[u8], render: F) -> Self {
        Chunks { items, render, head: Some(head.to_vec()), tail: Some(tail.to_vec()), first: true, done: false }
    }
}

impl<I, F> Iterator for Chunks<I, F>
where
    I: Iterator,
    F: FnMut(I::Item, bool, &mut Vec<u8>),
{
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        if self.done {
            return None;
        }
        let mut buf = self.head.take().unwrap_or_default();
        buf.reserve(32 * 1024);
        for _ in 0..ITEMS_PER_CHUNK {
            match self.items.next() {
                Some(item) => {
                    (self.render)(item, self.first, &mut buf);
                    self.first = false;
                }
                None => {
                    self.done = true;
                    if let Some(tail) = self.tail.take() {
                        buf.extend_from_slice(&tail);
                    }
                    break;
                }
            }
        }
        if buf.is_empty() && self.done {
            None
        } else {
            Some(buf)
        }
    }
}

/// A JSON array of items, each rendered by `render(item, out)`.
pub(crate) fn json_array<I, F>(items: I, mut render: F) -> impl Iterator<Item = Vec<u8>>
where
    I: Iterator,
    F: FnMut(I::Item, &mut Vec<u8>),
{
    Chunks::new(b"[", items, b"]", move |item, first: bool, out: &mut Vec<u8>| {
        if !first {
            out.push(b',');
        }
        render(item, out);
    })
}

/// Compresses a chunk iterator with gzip, emitting compressed output as it becomes available.
struct Gzip<I> {
    inner: I,
    encoder: Option<GzEncoder<Vec<u8>>>,
}

impl<I: Iterator<Item = Vec<u8>>> Iterator for Gzip<I> {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            let encoder = self.encoder.as_mut()?;
            match self.inner.next() {
                Some(chunk) => {
                    // Writing into a Vec cannot fail.
                    let _ = encoder.write_all(&chunk);
                    let out = std::mem::take(encoder.get_mut());
                    if !out.is_empty() {
                        return Some(out);
                    }
                }
                None => {
                    let encoder = self.encoder.take()?;
                    return encoder.finish().ok();
                }
            }
        }
    }
}

/// Whether the client accepts gzip.
pub(crate) fn wants_gzip(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(
        |token| {
            let mut parts = token.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                let p = p.trim().replace(' ', "");
                p == "q=0" || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        },
    )
}

fn with_headers(mut resp: Response, content_type: &'static str, gzip: bool) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    resp
}

/// A 200 response streaming `chunks` (gzip-compressed if `gzip`).
pub(crate) fn chunked<I>(content_type: &'static str, chunks: I, gzip: bool) -> Response
where
    I: Iterator<Item = Vec<u8>> + Send + 'static,
{
    let body = if gzip {
        let gz = Gzip { inner: chunks, encoder: Some(GzEncoder::new(Vec::new(), Compression::fast())) };
        Body::from_stream(futures_util::stream::iter(gz.map(Ok::<_, Infallible>)))
    } else {
        Body::from_stream(futures_util::stream::iter(chunks.map(Ok::<_, Infallible>)))
    };
    with_headers(body.into_response(), content_type, gzip)
}

/// A complete (small) response with a known length (gzip-compressed if `gzip`).
pub(crate) fn full(status: StatusCode, content_type: &'static str, data: Vec<u8>, gzip: bool) -> Response {
    let data = if gzip {
        let mut enc = GzEncoder::new(Vec::with_capacity(data.len() / 4 + 64), Compression::fast());
        let _ = enc.write_all(&data);
        match enc.finish() {
            Ok(d) => d,
            Err(_) => return with_headers((status, data).into_response(), content_type, false),
        }
    } else {
        data
    };
    with_headers((status, data).into_response(), content_type, gzip)
}

/// A JSON value as a complete response.
pub(crate) fn json(value: &serde_json::Value, gzip: bool) -> Response {
    let data = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
    full(StatusCode::OK, "application/json", data, gzip)
}

/// A status with an empty body.
pub(crate) fn status(code: u16) -> Response {
    StatusCode::from_u16(code).unwrap_or(StatusCode::FORBIDDEN).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn json_array_chunks() {
        let all: Vec<u8> =
            json_array(0..1234u32, |i, out| out.extend_from_slice(i.to_string().as_bytes())).flatten().collect();
        let v: Vec<u32> = serde_json::from_slice(&all).unwrap();
        assert_eq!(v, (0..1234).collect::<Vec<_>>());
        let empty: Vec<u8> = json_array(0..0u32, |_, _| {}).flatten().collect();
        assert_eq!(empty, b"[]");
    }

    #[test]
    fn gzip_stream_round_trip() {
        let chunks = json_array(0..5000u32, |i, out| out.extend_from_slice(i.to_string().as_bytes()));
        let gz = Gzip { inner: chunks, encoder: Some(GzEncoder::new(Vec::new(), Compression::fast())) };
        let compressed: Vec<u8> = gz.flatten().collect();
        let mut plain = String::new();
        flate2::read::GzDecoder::new(&compressed[..]).read_to_string(&mut plain).unwrap();
        let v: Vec<u32> = serde_json::from_str(&plain).unwrap();
        assert_eq!(v.len(), 5000);
    }

    #[test]
    fn accept_encoding() {
        let mut h = HeaderMap::new();
        assert!(!wants_gzip(&h));
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("deflate, gzip;q=1.0"));
        assert!(wants_gzip(&h));
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip;q=0"));
        assert!(!wants_gzip(&h));
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("br"));
        assert!(!wants_gzip(&h));
    }
}
