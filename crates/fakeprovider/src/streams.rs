//! Stream endpoints: live TS (three URL forms), live HLS (playlist + segments), VOD and series
//! files with byte ranges, and the one-time redirect-token URLs.
//!
//! Every endpoint checks, in this order: credentials (401 bad / 403 inactive account), that the
//! stream exists (404), injected faults, then the connection limit (see `limits`).

// Handlers return ready-made responses as their error values; boxing them buys nothing here.
#![allow(clippy::result_large_err)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::accounts::Account;
use crate::body::status;
use crate::escape::{path_decode, url_segment};
use crate::faults::{FaultKind, Target};
use crate::limits::ConnGuard;
use crate::media::{
    self, parse_range, stream_body, Limit, LivePacer, RangeOutcome, Source, HTML_PAGE, PLACEHOLDER_BODY, SAMPLE_TS,
};
use crate::state::{sanitize_status, Shared};
use crate::tokens::TokenTarget;

type St = State<Arc<Shared>>;

/// Split `"123.ts"` into `(123, "ts")`; `"123"` gives `(123, "")`.
fn split_file(file: &str) -> Option<(u64, &str)> {
    let (id, ext) = file.split_once('.').unwrap_or((file, ""));
    Some((id.parse().ok()?, ext))
}

fn with_type(mut resp: Response, content_type: &'static str) -> Response {
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn placeholder() -> Response {
    with_type(PLACEHOLDER_BODY.into_response(), "video/mp2t")
}

/// Take a connection slot for `account`, or the refusal response.
fn admit(s: &Shared, account: &Account) -> Result<ConnGuard, Response> {
    let max = s.accounts.max_connections(&account.username).unwrap_or(account.max_connections);
    s.limits.admit(&account.username, max).map_err(|_| s.limit_refusal())
}

/// `GET /live/{u}/{p}/{id}[.ts|.m3u8]`
pub(crate) async fn live(
    State(s): St,
    Path((u, p, file)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    live_request(&s, &u, &p, &file, &headers)
}

fn live_request(s: &Shared, u: &str, p: &str, file: &str, headers: &HeaderMap) -> Response {
    let account = match s.authorize(u, p) {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    match split_file(file) {
        Some((id, "" | "ts")) => live_ts(s, account, id, false, headers),
        Some((id, "m3u8")) => hls_playlist(s, account, id),
        _ => status(404),
    }
}

fn live_ts(s: &Shared, account: Account, id: u64, via_token: bool, headers: &HeaderMap) -> Response {
    if !s.catalog.is_live(id) {
        return status(404);
    }
    let mut limit = Limit::Unlimited;
    let fault = if via_token { None } else { s.faults.take(Target::LiveTs, &account.username, Some(id)) };
    match fault {
        Some(FaultKind::Refuse { status: code }) => return status(sanitize_status(code, 503)),
        Some(FaultKind::Placeholder) => return placeholder(),
        Some(FaultKind::RedirectToken) => {
            let token = s.tokens.issue(TokenTarget {
                username: account.username.clone(),
                password: account.password.clone(),
                stream_id: id,
            });
            let location = format!(
                "{}/token/{token}/live/{}/{}/{id}.ts",
                s.base_url(headers),
                url_segment(&account.username),
                url_segment(&account.password)
            );
            let mut resp = StatusCode::FOUND.into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            return resp;
        }
        Some(FaultKind::Stall { after_bytes }) => limit = Limit::Stall(after_bytes),
        Some(FaultKind::CutAfter { bytes }) => limit = Limit::Cut(bytes),
        _ => {}
    }
    let guard = match admit(s, &account) {
        Ok(g) => g,
        Err(resp) => return resp,
    };
    let media = s.catalog.live_index(id).map(|i| s.live_media(i)).unwrap_or_default();
    let Some((data, secs)) = media.looped() else {
        // A dead channel: the panel answers with a page, not a stream (the slot is held
        // only while the page is sent, as a real panel's would be).
        drop(guard);
        return with_type(HTML_PAGE.into_response(), "text/html; charset=utf-8");
    };
    let pacer = LivePacer::new(data, secs, s.rate, s.clock.elapsed());
    let source = Source::Live(if media.once() { pacer.once() } else { pacer });
    let mut resp = with_type(stream_body(source, limit, guard).into_response(), "video/mp2t");
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// `GET /token/{token}/live/{u}/{p}/{id}.ts` — valid once.
pub(crate) async fn token(
    State(s): St,
    Path((token, u, p, file)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(target) = s.tokens.redeem(&token) else {
        return status(403);
    };
    let id = match split_file(&file) {
        Some((id, "" | "ts")) => id,
        _ => return status(404),
    };
    if target.username != u || target.password != p || target.stream_id != id {
        return status(403);
    }
    match s.authorize(&u, &p) {
        Ok(account) => live_ts(&s, account, id, true, &headers),
        Err(resp) => resp,
    }
}

/// HLS gate: stream exists, no refuse fault, session admitted. Returns the byte counter.
fn hls_gate(s: &Shared, account: &Account, id: u64) -> Result<Arc<AtomicU64>, Response> {
    if !s.catalog.is_live(id) {
        return Err(status(404));
    }
    if let Some(FaultKind::Refuse { status: code }) = s.faults.take(Target::Hls, &account.username, Some(id)) {
        return Err(status(sanitize_status(code, 503)));
    }
    let max = s.accounts.max_connections(&account.username).unwrap_or(account.max_connections);
    s.limits.touch_hls(&account.username, id, max).map_err(|_| s.limit_refusal())
}

fn hls_playlist(s: &Shared, account: Account, id: u64) -> Response {
    let bytes = match hls_gate(s, &account, id) {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let text =
        media::hls_playlist(s.clock.elapsed(), &url_segment(&account.username), &url_segment(&account.password), id);
    bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
    let mut resp = with_type(text.into_response(), "application/vnd.apple.mpegurl");
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// `GET /hls/{u}/{p}/{id}/{seq}.ts`
pub(crate) async fn hls_segment(
    State(s): St,
    Path((u, p, id, file)): Path<(String, String, String, String)>,
) -> Response {
    let account = match s.authorize(&u, &p) {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let (Ok(id), Some((seq, "ts"))) = (id.parse::<u64>(), split_file(&file)) else {
        return status(404);
    };
    let bytes = match hls_gate(&s, &account, id) {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let data = media::hls_segment(seq);
    bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
    with_type(Bytes::from_static(data).into_response(), "video/mp2t")
}

/// Which VOD URL space a request is in.
#[derive(Clone, Copy, Debug)]
enum VodKind {
    Movie,
    Series,
    /// A live channel's archive (catch-up), served like a file.
    Timeshift,
}

/// `GET /movie/{u}/{p}/{id}.{ext}`
pub(crate) async fn movie(
    State(s): St,
    Path((u, p, file)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    vod(&s, VodKind::Movie, &u, &p, &file, &headers)
}

/// `GET /series/{u}/{p}/{id}.{ext}`
pub(crate) async fn series(
    State(s): St,
    Path((u, p, file)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    vod(&s, VodKind::Series, &u, &p, &file, &headers)
}

/// `GET /timeshift/{u}/{p}/{duration}/{start}/{id}.ts`: a channel's archive
/// from `start` (`YYYY-MM-DD:HH-MM`) for `duration` minutes; only channels
/// listed with `tv_archive: 1` have one. Served (and counted) like a movie.
pub(crate) async fn timeshift(
    State(s): St,
    Path((u, p, duration, start, file)): Path<(String, String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let valid_start = start.len() == 16 && start.chars().all(|c| c.is_ascii_digit() || c == '-' || c == ':');
    if duration.parse::<u32>().is_err() || !valid_start {
        return status(400);
    }
    vod(&s, VodKind::Timeshift, &u, &p, &file, &headers)
}

fn vod_content_type(ext: &str) -> &'static str {
    match ext.to_ascii_lowercase().as_str() {
        "" | "ts" => "video/mp2t",
        "mp4" | "m4v" => "video/mp4",
        "mkv" => "video/x-matroska",
        "avi" => "video/x-msvideo",
        _ => "application/octet-stream",
    }
}

fn vod(s: &Shared, kind: VodKind, u: &str, p: &str, file: &str, headers: &HeaderMap) -> Response {
    let account = match s.authorize(u, p) {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let Some((id, ext)) = split_file(file) else {
        return status(404);
    };
    let exists = match kind {
        VodKind::Movie => s.catalog.vod_index(id).is_some(),
        VodKind::Series => s.catalog.episode_of(id).is_some(),
        VodKind::Timeshift => s.catalog.live_index(id).is_some_and(|i| s.catalog.has_archive(i)),
    };
    if !exists {
        return status(404);
    }
    let len = SAMPLE_TS.len();
    let range = parse_range(headers.get(header::RANGE).and_then(|v| v.to_str().ok()), len);
    if range == RangeOutcome::Unsatisfiable {
        let mut resp = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
        if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        return resp;
    }
    let mut limit = Limit::Unlimited;
    match s.faults.take(Target::Vod, &account.username, Some(id)) {
        Some(FaultKind::Refuse { status: code }) => return status(sanitize_status(code, 503)),
        Some(FaultKind::Placeholder) => return placeholder(),
        Some(FaultKind::Stall { after_bytes }) => limit = Limit::Stall(after_bytes),
        Some(FaultKind::CutAfter { bytes }) => limit = Limit::Cut(bytes),
        _ => {}
    }
    let guard = match admit(s, &account) {
        Ok(g) => g,
        Err(resp) => return resp,
    };
    let (code, start, end) = match range {
        RangeOutcome::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, start, end),
        _ => (StatusCode::OK, 0, len - 1),
    };
    let body = stream_body(Source::file(SAMPLE_TS, start, end + 1), limit, guard);
    let mut resp = (code, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(vod_content_type(ext)));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end + 1 - start));
    if code == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    resp
}

/// Everything no route matched: the short live form `/{u}/{p}/{id}[.ts|.m3u8]`, else 404.
pub(crate) async fn fallback(State(s): St, uri: Uri, headers: HeaderMap) -> Response {
    let parts: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        [u, p, file] if !u.is_empty() && !p.is_empty() && !file.is_empty() => {
            live_request(&s, &path_decode(u), &path_decode(p), &path_decode(file), &headers)
        }
        _ => status(404),
    }
}
