//! The panel API: `player_api.php`, `get.php` and `xmltv.php`, shaped like a real Xtream
//! Codes panel (numbers as strings where panels send strings, auth failures as HTTP 200).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde_json::json;

use crate::accounts::Account;
use crate::body::{self, json_array};
use crate::catalog::Kind;
use crate::clock::{format_datetime, unix_now};
use crate::escape::parse_form;
use crate::faults::{FaultKind, Target};
use crate::playlist::{self, M3uRequest};
use crate::state::Shared;

/// Longest `api_slow` delay honoured.
const MAX_API_DELAY: Duration = Duration::from_secs(600);

/// Request parameters from the query string and (for POST) a form body; the query wins.
///
/// Exists because panels accept credentials either way and clients use both.
struct Params(Vec<(String, String)>);

impl Params {
    fn new(uri: &Uri, body: &[u8]) -> Self {
        let mut pairs = parse_form(uri.query().unwrap_or(""));
        if !body.is_empty() {
            pairs.extend(parse_form(&String::from_utf8_lossy(body)));
        }
        Params(pairs)
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn user(&self) -> &str {
        self.get("username").unwrap_or("")
    }

    fn pass(&self) -> &str {
        self.get("password").unwrap_or("")
    }

    fn number(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(|v| v.trim().parse().ok())
    }
}

/// Count the request and apply an `api_slow` fault, if one matches.
async fn api_preamble(s: &Shared, user: &str) {
    s.api_requests.fetch_add(1, Ordering::Relaxed);
    if let Some(FaultKind::ApiSlow { delay_ms }) = s.faults.take(Target::ApiSlow, user, None) {
        tokio::time::sleep(Duration::from_millis(delay_ms).min(MAX_API_DELAY)).await;
    }
}

/// A large chunked response that stops if the provider shuts down.
fn streamed<I>(s: &Shared, content_type: &'static str, chunks: I, gzip: bool) -> Response
where
    I: Iterator<Item = Vec<u8>> + Send + 'static,
{
    // Stop producing between chunks once shutdown starts (bounded shutdown time).
    let stop = s.shutdown.clone();
    let chunks = chunks.take_while(move |_| !stop.is_cancelled());
    body::chunked(content_type, chunks, gzip)
}

const API_HTML: &str = "<!DOCTYPE html>\n<html><head><title>503 Service Temporarily Unavailable</title></head>\
<body><center><h1>503 Service Temporarily Unavailable</h1></center><hr><center>nginx</center></body></html>\n";

/// `GET|POST /player_api.php`
pub(crate) async fn player_api(State(s): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let params = Params::new(&uri, &body);
    let gzip = body::wants_gzip(&headers);
    api_preamble(&s, params.user()).await;
    if let Some(FaultKind::ApiHtml) = s.faults.take(Target::ApiHtml, params.user(), None) {
        return body::full(StatusCode::OK, "text/html; charset=UTF-8", API_HTML.as_bytes().to_vec(), gzip);
    }
    let Some(account) = s.accounts.authenticate(params.user(), params.pass()) else {
        return body::json(&json!({"user_info": {"auth": 0}}), gzip);
    };
    let base = s.base_url(&headers);
    let category = params.get("category_id").map(str::to_string);
    let catalog = s.catalog.clone();
    match params.get("action").unwrap_or("") {
        "" => body::json(&login_info(&s, &account, &headers), gzip),
        "get_live_categories" => categories(&s, Kind::Live, gzip),
        "get_vod_categories" => categories(&s, Kind::Vod, gzip),
        "get_series_categories" => categories(&s, Kind::Series, gzip),
        "get_live_streams" => {
            let items = catalog.indexes(Kind::Live, category.as_deref());
            let rows = json_array(items, move |i, out| catalog.write_live(&base, i, out));
            streamed(&s, "application/json", rows, gzip)
        }
        "get_vod_streams" => {
            let items = catalog.indexes(Kind::Vod, category.as_deref());
            let rows = json_array(items, move |k, out| catalog.write_vod(&base, k, out));
            streamed(&s, "application/json", rows, gzip)
        }
        "get_series" => {
            let items = catalog.indexes(Kind::Series, category.as_deref());
            let rows = json_array(items, move |k, out| catalog.write_series(&base, k, out));
            streamed(&s, "application/json", rows, gzip)
        }
        "get_vod_info" => {
            let id = params.number("vod_id").unwrap_or(0);
            body::json(&catalog.vod_info(&base, id), gzip)
        }
        "get_series_info" => {
            let id = params.number("series_id").unwrap_or(0);
            body::json(&catalog.series_info(&base, id), gzip)
        }
        "get_short_epg" | "get_simple_data_table" => {
            let id = params.number("stream_id").unwrap_or(0);
            let limit = params.number("limit").unwrap_or(4);
            body::json(&catalog.short_epg(id, unix_now(), limit), gzip)
        }
        _ => body::json(&json!([]), gzip),
    }
}

fn categories(s: &Shared, kind: Kind, gzip: bool) -> Response {
    let catalog = s.catalog.clone();
    let ids = catalog.category_ids(kind);
    let rows = json_array(ids, move |id, out| catalog.write_category(kind, id, out));
    streamed(s, "application/json", rows, gzip)
}

/// The `user_info` + `server_info` answer of a login.
fn login_info(s: &Shared, a: &Account, headers: &HeaderMap) -> serde_json::Value {
    let host = s.host(headers);
    let (url, port) = match host.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (h.to_string(), p.to_string()),
        _ => (host.clone(), "80".to_string()),
    };
    let now = unix_now();
    json!({
        "user_info": {
            "username": a.username,
            "password": a.password,
            "message": "Welcome to fakeprovider",
            "auth": 1,
            "status": a.status,
            "exp_date": a.exp_date.to_string(),
            "is_trial": if a.is_trial { "1" } else { "0" },
            "active_cons": s.limits.open_count(&a.username).to_string(),
            "created_at": (s.clock.start_unix() - 365 * 86_400).to_string(),
            "max_connections": a.max_connections.to_string(),
            "allowed_output_formats": ["m3u8", "ts"],
        },
        "server_info": {
            "url": url,
            "port": port,
            "https_port": "443",
            "server_protocol": "http",
            "rtmp_port": "8880",
            "timezone": "UTC",
            "timestamp_now": now,
            "time_now": format_datetime(now),
            "process": true,
        }
    })
}

/// `GET|POST /get.php?type=m3u_plus&output=ts|m3u8`
pub(crate) async fn get_php(State(s): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let params = Params::new(&uri, &body);
    api_preamble(&s, params.user()).await;
    let account = match s.authorize(params.user(), params.pass()) {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let req = M3uRequest {
        base: s.base_url(&headers),
        username: account.username,
        password: account.password,
        plus: params.get("type") != Some("m3u"),
        hls: matches!(params.get("output"), Some("m3u8" | "hls")),
    };
    let chunks = playlist::m3u(s.catalog.clone(), req);
    let mut resp = streamed(&s, "audio/x-mpegurl", chunks, body::wants_gzip(&headers));
    resp.headers_mut().insert(
        axum::http::header::CONTENT_DISPOSITION,
        axum::http::HeaderValue::from_static("attachment; filename=\"tv_channels.m3u\""),
    );
    resp
}

/// `GET /xmltv.php`
pub(crate) async fn xmltv_php(State(s): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let params = Params::new(&uri, &body);
    api_preamble(&s, params.user()).await;
    if let Err(resp) = s.authorize(params.user(), params.pass()) {
        return resp;
    }
    let chunks = playlist::xmltv(s.catalog.clone(), s.base_url(&headers), unix_now());
    streamed(&s, "application/xml", chunks, body::wants_gzip(&headers))
}
