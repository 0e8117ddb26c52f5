//! The programme guide: `GET /epg.xml` and `GET /epg.xml.gz`, one XMLTV
//! document merged from the providers' stored guides, with the guide
//! channels mapped to our channels (see `tunerpool_catalog::epg::guide_links`);
//! and the guide status/refresh API.
//!
//! Guides run to hundreds of megabytes, so the merge never holds one: it runs
//! on a blocking thread, reading each guide file twice (channels, then
//! programmes) and writing into a bounded channel of ~64 KiB chunks that is
//! the response body. A slow client slows the merge down; a client that goes
//! away stops it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use tunerpool_catalog::epg::{guide_links, guide_path, refresh_guide, statuses, EpgStatus, GuideReport};
use tunerpool_formats::xmltv::{merge, ChannelMap, MergeSource, MergeStats, XmltvError};

use crate::error::ApiError;
use crate::AppState;

/// Size of the body chunks the merge hands to the response.
const CHUNK: usize = 64 * 1024;
/// Chunks in flight between the merge and the client (bounded memory).
const CHUNKS_IN_FLIGHT: usize = 4;

/// How the guide is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// `application/xml`.
    Plain,
    /// `application/xml` with `Content-Encoding: gzip` (the client asked).
    GzipTransfer,
    /// A gzip file (`/epg.xml.gz`): `application/gzip`.
    GzipFile,
}

/// `GET /epg.xml`: gzip-encoded on the wire if the client accepts it.
pub(crate) async fn epg_xml(State(st): State<AppState>, headers: HeaderMap) -> Response {
    guide_response(&st, &headers, None).await
}

/// `GET /epg.xml.gz`: the guide as a gzip file.
pub(crate) async fn epg_xml_gz(State(st): State<AppState>) -> Response {
    respond(&st, Encoding::GzipFile, None).await
}

/// The merged guide as a response for a client that sent `headers`
/// (gzip-encoded on the wire if it accepts that). `allowed_groups` (group
/// ids) limits it to the channels of those groups, for outputs that serve a
/// user who may see only some groups; `None` means every channel. No
/// authentication here: callers do that first.
pub(crate) async fn guide_response(
    state: &AppState,
    headers: &HeaderMap,
    allowed_groups: Option<Vec<i64>>,
) -> Response {
    let encoding = if accepts_gzip(headers) { Encoding::GzipTransfer } else { Encoding::Plain };
    respond(state, encoding, allowed_groups).await
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(
        |item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let refused = parts.any(
                |p| matches!(p.trim().strip_prefix("q="), Some(q) if q.trim().parse::<f32>().is_ok_and(|q| q == 0.0)),
            );
            coding.eq_ignore_ascii_case("gzip") && !refused
        },
    )
}

async fn respond(state: &AppState, encoding: Encoding, allowed_groups: Option<Vec<i64>>) -> Response {
    let links = match guide_links(&state.store, allowed_groups.as_deref()).await {
        Ok(l) => l,
        Err(e) => return ApiError::from(e).into_response(),
    };
    // One source per provider, in the order the links come (provider priority).
    let mut order: Vec<i64> = Vec::new();
    let mut maps: HashMap<i64, ChannelMap> = HashMap::new();
    for l in links {
        if !maps.contains_key(&l.provider_id) {
            order.push(l.provider_id);
        }
        maps.entry(l.provider_id).or_default().insert(l.source_id, l.output_id);
    }
    let data_dir = state.store.data_dir().to_path_buf();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(CHUNKS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut sources: Vec<MergeSource<File>> = Vec::new();
        for id in order {
            // A provider whose guide was never fetched simply contributes nothing.
            if let Ok(file) = File::open(guide_path(&data_dir, id)) {
                let map = maps.remove(&id).unwrap_or_default();
                sources.push(MergeSource::new(format!("provider {id}"), file, map));
            }
        }
        let sink = ChunkSink { tx: tx.clone(), buf: Vec::with_capacity(CHUNK) };
        match write_guide(&mut sources, sink, encoding) {
            Ok(stats) => {
                for s in stats.sources.iter().filter(|s| s.error.is_some()) {
                    tracing::warn!(source = %s.label, error = ?s.error, "guide: a provider's guide could not be read to the end");
                }
                tracing::info!(
                    channels = stats.channels,
                    programmes = stats.programmes,
                    sources = stats.sources.len(),
                    ?encoding,
                    ms = started.elapsed().as_millis() as u64,
                    "guide served"
                );
            }
            Err(XmltvError::Write(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
                tracing::debug!("guide: the client went away");
            }
            Err(e) => {
                tracing::warn!(error = %e, "guide: the merge failed; the response is cut off");
                let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
            }
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    match encoding {
        Encoding::Plain => {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml; charset=utf-8"));
            h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        }
        Encoding::GzipTransfer => {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml; charset=utf-8"));
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        }
        Encoding::GzipFile => {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/gzip"));
        }
    }
    resp
}

/// Runs the merge into `sink`, compressed if asked, and sends the last chunk.
fn write_guide(
    sources: &mut [MergeSource<File>],
    mut sink: ChunkSink,
    encoding: Encoding,
) -> Result<MergeStats, XmltvError> {
    let stats = match encoding {
        Encoding::Plain => merge(sources, &mut sink)?,
        Encoding::GzipTransfer | Encoding::GzipFile => {
            let mut gz = flate2::write::GzEncoder::new(&mut sink, flate2::Compression::fast());
            let stats = merge(sources, &mut gz)?;
            gz.finish().map_err(XmltvError::Write)?;
            stats
        }
    };
    sink.flush().map_err(XmltvError::Write)?;
    Ok(stats)
}

/// A `Write` that hands the bytes to the response body in ~64 KiB chunks,
/// waiting while the channel is full (the client sets the pace). Fails with
/// `BrokenPipe` once the response is gone.
struct ChunkSink {
    tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChunkSink {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }
}

impl Write for ChunkSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    /// Sends what is buffered. The merge flushes only at the end, so chunks
    /// stay large.
    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// `GET /api/v1/epg`: every provider's guide status.
#[utoipa::path(get, path = "/api/v1/epg", tag = "guide",
    responses((status = 200, description = "each provider's last guide fetch", body = Vec<EpgStatus>)))]
pub(crate) async fn status(State(st): State<AppState>) -> Result<Json<Vec<EpgStatus>>, ApiError> {
    Ok(Json(statuses(&st.store).await?))
}

/// `POST /api/v1/providers/{id}/epg`: fetch the provider's guide now.
#[utoipa::path(post, path = "/api/v1/providers/{id}/epg", tag = "guide", params(("id" = i64, Path, description = "provider id")),
    responses((status = 200, description = "what the fetch stored", body = GuideReport),
        (status = 404, description = "no such provider", body = crate::error::ErrorBody),
        (status = 409, description = "the provider has no guide URL", body = crate::error::ErrorBody),
        (status = 502, description = "the fetch failed; the previous guide is kept", body = crate::error::ErrorBody)))]
pub(crate) async fn refresh_now(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<GuideReport>, ApiError> {
    let id = id.parse::<i64>().map_err(|_| ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!("no provider {id:?}: use its numeric id"),
        fields: vec![],
    })?;
    let provider = st.store.provider(id).await?;
    match refresh_guide(&st.store, &st.http, id).await {
        Ok(Some(report)) => Ok(Json(report)),
        Ok(None) => Err(ApiError {
            status: StatusCode::CONFLICT,
            message: format!(
                "provider {} has no guide: set its epg_url (M3U playlists may name one with x-tvg-url, read at sync)",
                provider.name
            ),
            fields: vec![],
        }),
        Err(tunerpool_catalog::CatalogError::Guide { provider, source }) => {
            Err(ApiError::upstream(format!("guide fetch of provider {provider} failed: {source}")))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_acceptance() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            accepts_gzip(&m)
        };
        assert!(h("gzip"));
        assert!(h("br, GZIP;q=0.5, deflate"));
        assert!(!h("gzip;q=0"));
        assert!(!h("deflate, br"));
        assert!(!h("x-gzip"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
