//! The M3U playlist a user's player loads:
//! `GET|POST /get.php?username=U&password=P&type=m3u_plus&output=ts` (as
//! Xtream panels serve it) and `GET /playlist.m3u?username=U&password=P`
//! (the same, with the defaults). Written by our own M3U writer so that our
//! parser reads it back exactly, and streamed page by page.
//!
//! Parameters: `type` `m3u_plus` (attributes; default) or `m3u` (names
//! only); `output` `ts` (default) or `m3u8`/`hls` (URLs end in `.m3u8`, the
//! bytes are MPEG-TS either way); `vod=1` adds movies.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::Extension;
use tunerpool_catalog::outputs::{LiveFormat, LiveItem, MovieItem};
use tunerpool_formats::m3u::{write_entry, write_header, Entry, Header};

use super::body::{paged, Paged, PAGE};
use super::listing::{self, Listing};
use super::{base_url, login, text, ClientAuth, Params};
use crate::AppState;

pub(crate) async fn get_php(
    State(st): State<AppState>,
    Extension(auth): Extension<Arc<ClientAuth>>,
    addr: ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = Params::new(&uri, &body);
    let plus = match params.get("type").unwrap_or("m3u_plus") {
        "m3u_plus" => true,
        "m3u" => false,
        other => {
            return text(StatusCode::BAD_REQUEST, format!("type: {other:?} is not supported; use m3u_plus or m3u"))
        }
    };
    let ext = match params.get("output").unwrap_or("ts") {
        "ts" | "mpegts" => "ts",
        "m3u8" | "hls" => "m3u8",
        other => return text(StatusCode::BAD_REQUEST, format!("output: {other:?} is not supported; use ts or m3u8")),
    };
    let vod = match params.get("vod") {
        None | Some("0") => false,
        Some("1") => true,
        Some(other) => return text(StatusCode::BAD_REQUEST, format!("vod: {other:?} must be 0 or 1")),
    };
    let (username, password) = (params.get("username").unwrap_or(""), params.get("password").unwrap_or(""));
    let client = match login(&st, &auth, addr, username, password).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let base = base_url(&st, &headers);
    let u = client.user.username.clone();
    let p = password.to_string();

    let mut head = String::new();
    let epg = format!("{base}/xmltv.php?username={u}&password={p}");
    write_header(&Header { present: true, attrs: vec![("x-tvg-url".into(), epg)] }, &mut head);

    let filter = client.filter();
    let live_prefix = format!("{base}/live/{u}/{p}/");
    let store = st.store.clone();
    let live_filter = filter.clone();
    let live = if listing::ready(&store).await {
        listing::body(
            store,
            Listing {
                head: head.into_bytes(),
                tail: b"",
                separator: b"",
                format: if plus { LiveFormat::M3uPlus } else { LiveFormat::M3u },
                url: (one_line(&live_prefix).into_owned(), format!(".{ext}\n")),
                filter: live_filter,
            },
        )
    } else {
        paged(Paged {
            head: head.into_bytes(),
            tail: b"",
            separator: b"",
            fetch: move |after| {
                let (store, f) = (store.clone(), live_filter.clone());
                async move { store.live_items(&f, after, PAGE).await }
            },
            write: move |c: &LiveItem, out: &mut Vec<u8>| write_live(c, plus, &live_prefix, ext, out),
        })
    };
    let body = if vod {
        let store = st.store.clone();
        let movie_prefix = format!("{base}/movie/{u}/{p}/");
        let movies = paged(Paged {
            head: Vec::new(),
            tail: b"",
            separator: b"",
            fetch: move |after| {
                let (store, f) = (store.clone(), filter.clone());
                async move { store.movie_items(&f, after, PAGE).await }
            },
            write: move |m: &MovieItem, out: &mut Vec<u8>| write_movie(m, plus, &movie_prefix, out),
        });
        use futures_util::StreamExt;
        axum::body::Body::from_stream(live.into_data_stream().chain(movies.into_data_stream()))
    } else {
        live
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "audio/x-mpegurl; charset=utf-8")
        .header(header::CONTENT_DISPOSITION, "inline; filename=\"playlist.m3u\"")
        .header(header::CACHE_CONTROL, "no-store")
        .body(body)
        .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "cannot build the response".into()))
}

fn push_attr(attrs: &mut Vec<(String, String)>, key: &str, value: Option<&str>) {
    if let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) {
        attrs.push((key.to_string(), v.to_string()));
    }
}

fn write_live(c: &LiveItem, plus: bool, prefix: &str, ext: &str, out: &mut Vec<u8>) {
    let mut head = String::with_capacity(256);
    live_head(c, plus, &mut head);
    out.extend_from_slice(head.as_bytes());
    let url = format!("{prefix}{}.{ext}", c.id);
    out.extend_from_slice(one_line(&url).as_bytes());
    out.push(b'\n');
}

/// A live channel's entry up to its URL line (`#EXTINF…` and its line
/// break): what every user's playlist has in common, kept by the
/// materialized listing; [`write_live`] adds the user's URL.
pub(super) fn live_head(c: &LiveItem, plus: bool, out: &mut String) {
    let mut attrs = Vec::new();
    if plus {
        push_attr(&mut attrs, "tvg-id", c.tvg_id.as_deref());
        // The lineup's name (the user's), which guides map by too.
        push_attr(&mut attrs, "tvg-name", Some(&c.name));
        push_attr(&mut attrs, "tvg-logo", c.logo.as_deref());
        push_attr(&mut attrs, "tvg-chno", c.chno.as_deref());
        push_attr(&mut attrs, "group-title", c.group_name.as_deref());
    }
    let entry = Entry { duration: "-1".into(), attrs, title: c.name.clone(), ..Entry::default() };
    // The writer ends the entry with its (here empty) URL line: one `\n`.
    write_entry(&entry, out);
    out.pop();
}

/// A URL line as the M3U writer writes one: on one line.
pub(super) fn one_line(url: &str) -> std::borrow::Cow<'_, str> {
    if url.contains(['\r', '\n']) {
        std::borrow::Cow::Owned(url.replace(['\r', '\n'], " "))
    } else {
        std::borrow::Cow::Borrowed(url)
    }
}

fn write_movie(m: &MovieItem, plus: bool, prefix: &str, out: &mut Vec<u8>) {
    let mut attrs = Vec::new();
    if plus {
        push_attr(&mut attrs, "tvg-name", Some(&m.name));
        push_attr(&mut attrs, "tvg-logo", m.logo.as_deref());
        push_attr(&mut attrs, "group-title", m.group_name.as_deref());
    }
    let ext = m.container_extension.as_deref().unwrap_or("mp4");
    let entry = Entry {
        duration: "-1".into(),
        attrs,
        title: m.name.clone(),
        url: format!("{prefix}{}.{ext}", m.id),
        ..Entry::default()
    };
    write(&entry, out);
}

fn write(entry: &Entry, out: &mut Vec<u8>) {
    let mut s = String::with_capacity(256);
    write_entry(entry, &mut s);
    out.extend_from_slice(s.as_bytes());
}
