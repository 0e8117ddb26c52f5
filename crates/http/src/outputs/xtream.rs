//! An Xtream Codes API for client apps (TiviMate, IPTV Smarters, Kodi…):
//! `GET|POST /player_api.php?username=U&password=P[&action=…]`.
//!
//! Answers are shaped like real panels' (ids and counts as strings where
//! panels send strings, `auth: 0` with HTTP 200 for bad credentials). Ids
//! are ours: category = group id, stream = channel / movie id, series =
//! series id, episode = `EPISODE_ID_BASE` + stored episode (see
//! `tunerpool_catalog::outputs`). Lists are
//! streamed. What the catalog does not keep (movie and series details,
//! episodes, short EPG) is asked of the provider with its primary account,
//! and passed on with ids rewritten and anything carrying that account's
//! credentials removed.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Serialize;
use serde_json::{json, Value};
use tunerpool_catalog::outputs::{ItemFilter, LiveFormat, LiveItem, MovieItem, NewEpisode, SeriesItem};
use tunerpool_catalog::{MediaKind, ProviderKind, User};
use tunerpool_upstream::xtream::XtreamClient;

use super::auth::Refused;
use super::body::{paged, Paged, PAGE};
use super::listing::{self, Listing};
use super::{base_url, pool_capacity, ClientAuth, Params};
use crate::AppState;

const ACTIONS: &str = "get_live_categories, get_live_streams, get_vod_categories, get_vod_streams, get_vod_info, \
                       get_series_categories, get_series, get_series_info, get_short_epg, get_simple_data_table";

fn json_response(status: StatusCode, v: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

fn ok(v: &Value) -> Response {
    json_response(StatusCode::OK, v)
}

fn bad_request(message: String) -> Response {
    json_response(StatusCode::BAD_REQUEST, &json!({ "error": message }))
}

/// A refused login, the way Xtream clients expect it: HTTP 200 and
/// `auth: 0` (with the status for a disabled or expired user).
fn refused(r: &Refused, username: &str) -> Response {
    match r {
        Refused::BadCredentials => ok(&json!({"user_info": {"auth": 0}})),
        Refused::Inactive(status) => ok(&json!({"user_info": {
            "username": username, "auth": 0, "status": status.as_str(), "message": r.message(),
        }})),
        Refused::RateLimited(_) | Refused::Busy | Refused::Internal(_) => super::refusal(r),
    }
}

pub(crate) async fn player_api(
    State(st): State<AppState>,
    Extension(auth): Extension<Arc<ClientAuth>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = Params::new(&uri, &body);
    let (username, password) = (params.get("username").unwrap_or(""), params.get("password").unwrap_or(""));
    let user = match auth.login(&st, addr.ip(), username, password).await {
        Ok(u) => u,
        Err(r) => return refused(&r, username),
    };
    let filter = ItemFilter { allowed_groups: user.allowed_groups.clone(), group: None };
    let category = match params.number("category_id") {
        Ok(c) => c,
        // Some clients send `category_id=*` or `all` for every category.
        Err(_) if matches!(params.get("category_id"), Some("*" | "all")) => None,
        Err(e) => return bad_request(e),
    };
    let action = params.get("action").unwrap_or("");
    let listed = ItemFilter { group: category, ..filter.clone() };
    match action {
        "" => ok(&login_info(&st, &user, password, &base_url(&st, &headers)).await),
        "get_live_categories" => categories(&st, MediaKind::Live, &filter).await,
        "get_vod_categories" => categories(&st, MediaKind::Movie, &filter).await,
        "get_series_categories" => categories(&st, MediaKind::Series, &filter).await,
        "get_live_streams" => live_streams(&st, listed).await,
        "get_vod_streams" => vod_streams(&st, listed),
        "get_series" => series_list(&st, listed),
        "get_vod_info" => match params.number("vod_id") {
            Ok(Some(id)) => vod_info(&st, &filter, id).await,
            Ok(None) => bad_request("vod_id: is required".into()),
            Err(e) => bad_request(e),
        },
        "get_series_info" => match params.number("series_id") {
            Ok(Some(id)) => series_info(&st, &filter, id).await,
            Ok(None) => bad_request("series_id: is required".into()),
            Err(e) => bad_request(e),
        },
        "get_short_epg" | "get_simple_data_table" => {
            let limit = match params.number("limit") {
                Ok(l) => l,
                Err(e) => return bad_request(e),
            };
            match params.number("stream_id") {
                Ok(Some(id)) => short_epg(&st, &filter, action, id, limit).await,
                Ok(None) => bad_request("stream_id: is required".into()),
                Err(e) => bad_request(e),
            }
        }
        other => bad_request(format!("action: unknown action {other:?}; use one of {ACTIONS}")),
    }
}

/// `user_info` and `server_info`, numbers as strings as panels send them.
async fn login_info(st: &AppState, user: &User, password: &str, base: &str) -> Value {
    let capacity = pool_capacity(st).await;
    let max = if user.max_connections > 0 { user.max_connections } else { capacity };
    let url = url::Url::parse(base).ok();
    let scheme = url.as_ref().map_or("http", |u| u.scheme()).to_string();
    let host = url.as_ref().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_else(|| "localhost".into());
    let port = url.as_ref().and_then(|u| u.port_or_known_default()).unwrap_or(80);
    let now = tunerpool_catalog::now();
    json!({
        "user_info": {
            "username": user.username,
            // The client's own password, echoed as panels do (clients build
            // stream URLs from it); never a provider's.
            "password": password,
            "message": "",
            "auth": 1,
            "status": "Active",
            "exp_date": user.expires_at.map(|e| e.to_string()),
            "is_trial": "0",
            "active_cons": st.relay.user_connections(user.id).to_string(),
            "created_at": user.created_at.to_string(),
            "max_connections": max.to_string(),
            "allowed_output_formats": ["m3u8", "ts"],
        },
        "server_info": {
            "url": host,
            "port": if scheme == "https" { "80".to_string() } else { port.to_string() },
            "https_port": if scheme == "https" { port.to_string() } else { "443".to_string() },
            "server_protocol": scheme,
            "rtmp_port": "",
            "timezone": "UTC",
            "timestamp_now": now,
            "time_now": format_utc(now),
            "process": true,
        }
    })
}

/// `YYYY-MM-DD HH:MM:SS` in UTC, as panels write `time_now`.
fn format_utc(unix: i64) -> String {
    const FORMAT: &[time::format_description::FormatItem<'_>] =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(FORMAT).ok())
        .unwrap_or_else(|| "1970-01-01 00:00:00".into())
}

async fn categories(st: &AppState, kind: MediaKind, filter: &ItemFilter) -> Response {
    match st.store.group_items(kind, filter).await {
        Ok(groups) => {
            let list: Vec<Value> = groups
                .iter()
                .map(|g| json!({"category_id": g.id.to_string(), "category_name": g.name, "parent_id": 0}))
                .collect();
            ok(&Value::Array(list))
        }
        Err(e) => super::internal("categories", &e),
    }
}

fn streamed_json(body: Body) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap_or_else(|e| super::internal("listing", &e))
}

fn category(group: Option<i64>) -> Option<String> {
    group.map(|g| g.to_string())
}

#[derive(Serialize)]
struct LiveRow<'a> {
    num: u64,
    name: &'a str,
    stream_type: &'static str,
    stream_id: i64,
    stream_icon: &'a str,
    epg_channel_id: Option<&'a str>,
    added: &'static str,
    is_adult: &'static str,
    category_id: Option<String>,
    category_ids: Vec<i64>,
    custom_sid: &'static str,
    /// 1 when the provider keeps an archive (served at `/timeshift/…`).
    tv_archive: u8,
    direct_source: &'static str,
    /// Days of archive.
    tv_archive_duration: i64,
}

async fn live_streams(st: &AppState, filter: ItemFilter) -> Response {
    let store = st.store.clone();
    if listing::ready(&store).await {
        let listing = Listing {
            head: b"[".to_vec(),
            tail: b"]",
            separator: b",",
            format: LiveFormat::Xtream,
            url: (String::new(), String::new()),
            filter,
        };
        return streamed_json(listing::body(store, listing));
    }
    streamed_json(paged(Paged {
        head: b"[".to_vec(),
        tail: b"]",
        separator: b",",
        fetch: move |after| {
            let (store, f) = (store.clone(), filter.clone());
            async move { store.live_items(&f, after, PAGE).await }
        },
        write: move |c: &LiveItem, out: &mut Vec<u8>| live_row(c, out),
    }))
}

/// One channel of `get_live_streams`: the same for every user (the
/// materialized listing keeps it). `num` is the lineup number; categories
/// are the lineup groups.
pub(super) fn live_row(c: &LiveItem, out: &mut Vec<u8>) {
    let row = LiveRow {
        num: c.number.max(0) as u64,
        name: &c.name,
        stream_type: "live",
        stream_id: c.id,
        stream_icon: c.logo.as_deref().unwrap_or(""),
        epg_channel_id: c.tvg_id.as_deref(),
        added: "0",
        is_adult: "0",
        category_id: category(c.group_id),
        category_ids: c.group_id.into_iter().collect(),
        custom_sid: "",
        tv_archive: u8::from(c.catchup.as_deref() == Some("xc")),
        direct_source: "",
        tv_archive_duration: c.catchup_days.filter(|_| c.catchup.as_deref() == Some("xc")).unwrap_or(0),
    };
    let _ = serde_json::to_writer(&mut *out, &row);
}

#[derive(Serialize)]
struct VodRow<'a> {
    num: u64,
    name: &'a str,
    stream_type: &'static str,
    stream_id: i64,
    stream_icon: &'a str,
    rating: &'a str,
    rating_5based: f64,
    added: String,
    is_adult: &'static str,
    category_id: Option<String>,
    category_ids: Vec<i64>,
    container_extension: &'a str,
    custom_sid: &'static str,
    direct_source: &'static str,
}

fn rating_5(rating: Option<&str>) -> f64 {
    rating.and_then(|r| r.trim().parse::<f64>().ok()).map_or(0.0, |r| (r / 2.0 * 10.0).round() / 10.0)
}

fn vod_streams(st: &AppState, filter: ItemFilter) -> Response {
    let store = st.store.clone();
    let mut num = 0u64;
    streamed_json(paged(Paged {
        head: b"[".to_vec(),
        tail: b"]",
        separator: b",",
        fetch: move |after| {
            let (store, f) = (store.clone(), filter.clone());
            async move { store.movie_items(&f, after, PAGE).await }
        },
        write: move |m: &MovieItem, out: &mut Vec<u8>| {
            num += 1;
            let row = VodRow {
                num,
                name: &m.name,
                stream_type: "movie",
                stream_id: m.id,
                stream_icon: m.logo.as_deref().unwrap_or(""),
                rating: m.rating.as_deref().unwrap_or(""),
                rating_5based: rating_5(m.rating.as_deref()),
                added: m.added.unwrap_or(0).to_string(),
                is_adult: "0",
                category_id: category(m.group_id),
                category_ids: m.group_id.into_iter().collect(),
                container_extension: m.container_extension.as_deref().unwrap_or("mp4"),
                custom_sid: "",
                direct_source: "",
            };
            let _ = serde_json::to_writer(&mut *out, &row);
        },
    }))
}

#[derive(Serialize)]
struct SeriesRow<'a> {
    num: u64,
    name: &'a str,
    series_id: i64,
    cover: &'a str,
    plot: &'a str,
    cast: &'static str,
    director: &'static str,
    genre: &'a str,
    #[serde(rename = "releaseDate")]
    release_date_camel: &'a str,
    release_date: &'a str,
    last_modified: &'static str,
    rating: &'a str,
    rating_5based: f64,
    backdrop_path: [&'static str; 0],
    youtube_trailer: &'static str,
    episode_run_time: &'static str,
    category_id: Option<String>,
    category_ids: Vec<i64>,
}

fn series_list(st: &AppState, filter: ItemFilter) -> Response {
    let store = st.store.clone();
    let mut num = 0u64;
    streamed_json(paged(Paged {
        head: b"[".to_vec(),
        tail: b"]",
        separator: b",",
        fetch: move |after| {
            let (store, f) = (store.clone(), filter.clone());
            async move { store.series_items(&f, after, PAGE).await }
        },
        write: move |s: &SeriesItem, out: &mut Vec<u8>| {
            num += 1;
            let date = s.release_date.as_deref().unwrap_or("");
            let row = SeriesRow {
                num,
                name: &s.name,
                series_id: s.id,
                cover: s.cover.as_deref().unwrap_or(""),
                plot: s.plot.as_deref().unwrap_or(""),
                cast: "",
                director: "",
                genre: s.genre.as_deref().unwrap_or(""),
                release_date_camel: date,
                release_date: date,
                last_modified: "0",
                rating: s.rating.as_deref().unwrap_or(""),
                rating_5based: rating_5(s.rating.as_deref()),
                backdrop_path: [],
                youtube_trailer: "",
                episode_run_time: "",
                category_id: category(s.group_id),
                category_ids: s.group_id.into_iter().collect(),
            };
            let _ = serde_json::to_writer(&mut *out, &row);
        },
    }))
}

/// The provider's panel, logged in as its primary account, and the strings
/// that must not reach clients.
async fn provider_client(st: &AppState, provider_id: i64) -> Option<(XtreamClient, Vec<String>)> {
    let provider = st.store.provider(provider_id).await.ok()?;
    if provider.kind != ProviderKind::Xtream {
        return None;
    }
    let account = st.store.primary_account(provider_id).await.ok()??;
    let username = account.username.clone().unwrap_or_default();
    let password = account.password.expose().to_string();
    let server = account.server_url.clone().unwrap_or_else(|| provider.url.clone());
    let client = XtreamClient::new(st.http.clone(), &server, &username, &password).ok()?;
    Some((client, vec![username, password]))
}

/// Removes what identifies the provider account: any string that carries
/// its password (stream URLs, `direct_source`) or is its username, and
/// every `direct_source`.
fn scrub(v: &mut Value, secrets: &[String]) {
    match v {
        Value::String(s) => {
            let leaks = secrets.iter().filter(|x| !x.is_empty()).any(|x| s == x)
                || secrets.get(1).is_some_and(|pw| !pw.is_empty() && s.contains(pw.as_str()));
            if leaks {
                s.clear();
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| scrub(x, secrets)),
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                if k == "direct_source" {
                    *x = Value::String(String::new());
                } else {
                    scrub(x, secrets);
                }
            }
        }
        _ => {}
    }
}

/// Asks the provider, logging (not failing on) errors.
async fn ask(st: &AppState, provider_id: i64, action: &str, extra: &[(&str, &str)]) -> Option<Value> {
    let (client, secrets) = provider_client(st, provider_id).await?;
    match client.action(action, extra).await {
        Ok(mut v) => {
            scrub(&mut v, &secrets);
            Some(v)
        }
        Err(e) => {
            tracing::warn!(action, error = %e, "the provider did not answer; serving what the catalog has");
            None
        }
    }
}

async fn vod_info(st: &AppState, filter: &ItemFilter, id: i64) -> Response {
    let m = match st.store.movie_item(filter, id).await {
        Ok(Some(m)) => m,
        Ok(None) => return ok(&json!({"info": [], "movie_data": []})),
        Err(e) => return super::internal("vod info", &e),
    };
    let ext = m.container_extension.clone().unwrap_or_else(|| "mp4".into());
    let movie_data = json!({
        "stream_id": m.id,
        "name": m.name,
        "added": m.added.unwrap_or(0).to_string(),
        "category_id": category(m.group_id),
        "category_ids": m.group_id.into_iter().collect::<Vec<_>>(),
        "container_extension": ext,
        "custom_sid": "",
        "direct_source": "",
    });
    let upstream = match (m.provider_kind, m.upstream_id) {
        (ProviderKind::Xtream, Some(up)) => {
            ask(st, m.provider_id, "get_vod_info", &[("vod_id", &up.to_string())]).await
        }
        _ => None,
    };
    let info = match upstream {
        Some(Value::Object(mut o)) => o.remove("info").filter(Value::is_object),
        _ => None,
    };
    let info = info.unwrap_or_else(|| {
        json!({
            "name": m.name, "movie_image": m.logo.clone().unwrap_or_default(),
            "cover_big": m.logo.clone().unwrap_or_default(), "rating": m.rating.clone().unwrap_or_default(),
            "plot": "", "genre": "", "releasedate": "", "duration_secs": 0, "duration": "",
        })
    });
    ok(&json!({"info": info, "movie_data": movie_data}))
}

fn id_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

async fn series_info(st: &AppState, filter: &ItemFilter, id: i64) -> Response {
    let s = match st.store.series_item(filter, id).await {
        Ok(Some(s)) => s,
        Ok(None) => return ok(&json!({"seasons": [], "info": {}, "episodes": {}})),
        Err(e) => return super::internal("series info", &e),
    };
    let info = json!({
        "name": s.name, "cover": s.cover.clone().unwrap_or_default(), "plot": s.plot.clone().unwrap_or_default(),
        "cast": "", "director": "", "genre": s.genre.clone().unwrap_or_default(),
        "releaseDate": s.release_date.clone().unwrap_or_default(), "last_modified": "0",
        "rating": s.rating.clone().unwrap_or_default(), "rating_5based": rating_5(s.rating.as_deref()),
        "backdrop_path": [], "youtube_trailer": "", "episode_run_time": "",
        "category_id": category(s.group_id),
    });
    if s.has_url {
        // An M3U series entry is itself the one episode.
        let episode = json!({"id": s.id.to_string(), "episode_num": 1, "title": s.name, "container_extension": "mp4",
            "info": {}, "custom_sid": "", "added": "0", "season": 1, "direct_source": ""});
        return ok(&json!({"seasons": [], "info": info, "episodes": {"1": [episode]}}));
    }
    let upstream = match (s.provider_kind, s.upstream_id) {
        (ProviderKind::Xtream, Some(up)) => {
            ask(st, s.provider_id, "get_series_info", &[("series_id", &up.to_string())]).await
        }
        _ => None,
    };
    let Some(Value::Object(mut answer)) = upstream else {
        return ok(&json!({"seasons": [], "info": info, "episodes": {}}));
    };
    // Episodes come as {"1": [..], "2": [..]} or as [[..], [..]].
    let mut episodes = answer.remove("episodes").unwrap_or(Value::Null);
    let mut all: Vec<&mut Value> = Vec::new();
    match &mut episodes {
        Value::Object(seasons) => seasons.values_mut().for_each(|l| all.extend(l.as_array_mut().into_iter().flatten())),
        Value::Array(seasons) => seasons.iter_mut().for_each(|l| all.extend(l.as_array_mut().into_iter().flatten())),
        _ => {}
    }
    let mut learned = Vec::new();
    let mut slots = Vec::new();
    for ep in all {
        let Some(up) = ep.get("id").and_then(id_of) else { continue };
        let name = ep.get("title").and_then(Value::as_str).unwrap_or_default().to_string();
        let ext = ep.get("container_extension").and_then(Value::as_str).map(str::to_string);
        learned.push(NewEpisode { upstream_id: up, name, container_extension: ext });
        slots.push(ep);
    }
    match st.store.upsert_episodes(s.id, &learned).await {
        Ok(ids) => {
            for (ep, our) in slots.into_iter().zip(ids) {
                ep["id"] = Value::String(our.to_string());
            }
        }
        Err(e) => return super::internal("cannot store episodes", &e),
    }
    let mut upstream_info = answer.remove("info").filter(Value::is_object).unwrap_or(info);
    upstream_info["category_id"] = json!(category(s.group_id));
    let seasons = answer.remove("seasons").unwrap_or(json!([]));
    ok(&json!({"seasons": seasons, "info": upstream_info, "episodes": episodes}))
}

/// Sets every `stream_id` in `v` to ours.
fn rewrite_stream_ids(v: &mut Value, ours: i64) {
    match v {
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite_stream_ids(x, ours)),
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                if k == "stream_id" {
                    *x = Value::String(ours.to_string());
                } else {
                    rewrite_stream_ids(x, ours);
                }
            }
        }
        _ => {}
    }
}

async fn short_epg(st: &AppState, filter: &ItemFilter, action: &str, id: i64, limit: Option<i64>) -> Response {
    let empty = json!({"epg_listings": []});
    let c = match st.store.live_item(filter, id).await {
        Ok(Some(c)) => c,
        Ok(None) => return ok(&empty),
        Err(e) => return super::internal("short epg", &e),
    };
    let (ProviderKind::Xtream, Some(up)) = (c.provider_kind, c.upstream_id) else { return ok(&empty) };
    let up = up.to_string();
    let limit = limit.map(|l| l.clamp(1, 1000).to_string());
    let mut extra = vec![("stream_id", up.as_str())];
    if let Some(l) = &limit {
        extra.push(("limit", l.as_str()));
    }
    match ask(st, c.provider_id, action, &extra).await {
        Some(mut v) => {
            rewrite_stream_ids(&mut v, c.id);
            ok(&v)
        }
        None => ok(&empty),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_format() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00");
        assert_eq!(format_utc(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00");
    }

    #[test]
    fn scrub_removes_account_traces() {
        let secrets = vec!["acct".to_string(), "s3cr3t".to_string()];
        let mut v = json!({"a": "http://p/movie/acct/s3cr3t/1.mkv", "b": ["acct", "fine"], "direct_source": "x",
            "c": {"d": "keep"}});
        scrub(&mut v, &secrets);
        assert_eq!(v, json!({"a": "", "b": ["", "fine"], "direct_source": "", "c": {"d": "keep"}}));
    }
}
