//! Downloading (or reading) an M3U playlist and parsing it as it arrives.

use std::io::{BufRead, BufReader, Read};

use tunerpool_formats::m3u::{Entry, Parser, Summary};

use crate::batches::{BatchSender, Batches};
use crate::cap::{is_over_cap, BodyKind, CappedReader};
use crate::error::UpstreamError;
use crate::http::UpstreamHttp;
use crate::redact::redact_url;
pub use tunerpool_domain::location::M3uSource;

const READ_CHUNK: usize = 64 * 1024;

/// Opens `source` (downloading a URL to a spool file first) and streams its
/// entries in batches, parsed on a blocking thread. Gzip is handled both as
/// `Content-Encoding` (by the HTTP client) and as a gzip file (`.m3u.gz`).
/// The playlist cap (`sync.max_playlist_bytes`) holds for the download and
/// for the decompressed text. `secrets` are masked in errors.
pub async fn fetch(
    http: &UpstreamHttp,
    source: &M3uSource,
    secrets: &[&str],
) -> Result<Batches<Entry, Summary>, UpstreamError> {
    fetch_map(http, source, secrets, |e| e).await
}

/// Like [`fetch`], but turns each entry into a `T` on the parsing thread, so
/// that the consumer (a database writer) does not pay for the conversion.
pub async fn fetch_map<T, F>(
    http: &UpstreamHttp,
    source: &M3uSource,
    secrets: &[&str],
    map: F,
) -> Result<Batches<T, Summary>, UpstreamError>
where
    T: Send + 'static,
    F: FnMut(Entry) -> T + Send + 'static,
{
    let (file, shown) = match source {
        M3uSource::Url(url) => (http.download(url, secrets, BodyKind::Playlist).await?, redact_url(url, secrets)),
        M3uSource::File(path) => {
            let shown = path.display().to_string();
            let file = std::fs::File::open(path)
                .map_err(|e| UpstreamError::File { path: shown.clone(), reason: e.to_string() })?;
            (file, shown)
        }
    };
    let limit = http.settings().caps.playlist;
    Ok(Batches::spawn(move |sender| {
        tokio::task::spawn_blocking(move || parse_blocking(file, &shown, limit, sender, map))
    }))
}

fn parse_blocking<T>(
    file: std::fs::File,
    shown: &str,
    limit: u64,
    mut sender: BatchSender<T>,
    mut map: impl FnMut(Entry) -> T,
) -> Result<Summary, UpstreamError> {
    let read_err = |e: std::io::Error| {
        if is_over_cap(&e) {
            return BodyKind::Playlist.too_large(shown, limit);
        }
        UpstreamError::File { path: shown.to_string(), reason: e.to_string() }
    };
    let mut buffered = BufReader::with_capacity(READ_CHUNK, file);
    let is_gzip = buffered.fill_buf().map_err(read_err)?.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read> =
        if is_gzip { Box::new(flate2::bufread::MultiGzDecoder::new(buffered)) } else { Box::new(buffered) };
    let mut reader = CappedReader::new(reader, limit);
    let mut parser = Parser::new();
    let mut buf = vec![0u8; READ_CHUNK];
    let mut out = Vec::new();
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        };
        parser.feed(&buf[..n], &mut out);
        for e in out.drain(..) {
            if !sender.push_blocking(map(e)) {
                return Err(UpstreamError::Cancelled);
            }
        }
    }
    let summary = parser.finish(&mut out);
    for e in out.drain(..) {
        if !sender.push_blocking(map(e)) {
            return Err(UpstreamError::Cancelled);
        }
    }
    if !sender.flush_blocking() {
        return Err(UpstreamError::Cancelled);
    }
    Ok(summary)
}
