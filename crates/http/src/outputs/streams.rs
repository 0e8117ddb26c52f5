//! Xtream-style stream URLs: `/live/{u}/{p}/{id}.ts|.m3u8`, the short form
//! `/{u}/{p}/{id}`, `/movie/{u}/{p}/{id}.{ext}`, `/series/{u}/{p}/{id}.{ext}`.
//! Each logs in ([`PathLogin`]), checks that the item is one the user may see (404
//! otherwise, like anything not in the catalog), and hands over to the same
//! relay calls as `/stream`, `/movie` and `/series`, with the user's own
//! limit attached. `.m3u8` asks for the channel as HLS: a playlist of
//! segments cut from the same shared stream (`/hls/{u}/{p}/{id}/{n}.ts`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use serde::Deserialize;
use tunerpool_catalog::MediaKind;

use super::{file_id, login, text, Client, ClientAuth, PathLogin};
use crate::access::Audience;
use crate::clip::Output;
use crate::stream::ProfileParam;
use crate::AppState;

/// Whether `client` may play this item; the 404 (or 500) if not.
pub(crate) async fn check_visible(st: &AppState, client: &Client, kind: MediaKind, id: i64) -> Result<(), Response> {
    match st.store.item_visible_cached(&client.filter(), kind, id).await {
        Ok(true) => Ok(()),
        Ok(false) => {
            tracing::info!(user = %client.user.username, client = %client.addr, kind = kind.as_str(), id,
                "refused: not in this user's catalog");
            Err(text(StatusCode::NOT_FOUND, format!("no {} {id}", kind.as_str())))
        }
        Err(e) => Err(super::internal("visibility check", &e)),
    }
}

/// A live channel for a logged-in client, through `output` (which decides,
/// with the request's `headers`, whether a refusal is the refusal clip),
/// transcoded with `profile` when one is named.
pub(crate) async fn play_live(
    st: &AppState,
    client: &Client,
    id: i64,
    output: Output,
    headers: &HeaderMap,
    profile: Option<&str>,
) -> Response {
    if let Err(r) = check_visible(st, client, MediaKind::Live, id).await {
        return r;
    }
    let clip = st.clip.for_request(output, headers);
    crate::stream::live_response(st, id, client.viewer(), Audience::Client, clip, profile).await
}

fn live_id(file: &str) -> Option<i64> {
    match file.split_once('.') {
        None => file.parse().ok(),
        Some((id, "ts" | "m3u8")) => id.parse().ok(),
        Some(_) => None,
    }
}

/// The file of a stream URL (`{id}.ts`, `{id}.mkv`).
#[derive(Deserialize)]
pub(crate) struct File {
    file: String,
}

pub(crate) async fn live(
    State(st): State<AppState>,
    Path(File { file }): Path<File>,
    Query(ProfileParam { profile }): Query<ProfileParam>,
    login: PathLogin,
    headers: HeaderMap,
) -> Response {
    live_for(&st, &login, &file, &headers, profile.as_deref()).await
}

async fn live_for(
    st: &AppState,
    login: &PathLogin,
    file: &str,
    headers: &HeaderMap,
    profile: Option<&str>,
) -> Response {
    let client = &login.client;
    match live_id(file) {
        Some(id) if file.ends_with(".m3u8") => {
            if let Err(r) = check_visible(st, client, MediaKind::Live, id).await {
                return r;
            }
            let (u, p) = (&login.username, &login.password);
            let segments = super::public_path(st, &format!("/hls/{u}/{p}/{id}/"));
            crate::stream::hls_playlist_response(st, id, client.viewer(), segments, Audience::Client).await
        }
        Some(id) => play_live(st, client, id, Output::Live, headers, profile).await,
        None => text(StatusCode::NOT_FOUND, format!("no channel {file:?}: use /live/{{user}}/{{pass}}/{{id}}.ts")),
    }
}

/// A segment of a channel's HLS output.
#[derive(Deserialize)]
pub(crate) struct Segment {
    id: i64,
    file: String,
}

/// `/hls/{u}/{p}/{id}/{n}.ts`: a segment of a channel's HLS output.
pub(crate) async fn hls_segment(
    State(st): State<AppState>,
    Path(Segment { id, file }): Path<Segment>,
    login: PathLogin,
) -> Response {
    if let Err(r) = check_visible(&st, &login.client, MediaKind::Live, id).await {
        return r;
    }
    crate::stream::hls_segment_response(&st, id, &file, Some(login.client.user.id))
}

/// `/{u}/{p}/{id}`: the short form some players use for live channels.
/// A path under one of our own prefixes (`/api/v1/nothing`) is a plain 404,
/// not a failed login — so this one checks the path before logging in.
pub(crate) async fn short(
    State(st): State<AppState>,
    Extension(auth): Extension<Arc<ClientAuth>>,
    addr: ConnectInfo<SocketAddr>,
    Path((username, password, file)): Path<(String, String, String)>,
    headers: HeaderMap,
    Query(ProfileParam { profile }): Query<ProfileParam>,
) -> Response {
    if tunerpool_catalog::users::RESERVED.contains(&username.to_ascii_lowercase().as_str()) {
        return text(StatusCode::NOT_FOUND, "not found".into());
    }
    match login(&st, &auth, addr, &username, &password).await {
        Ok(client) => {
            live_for(&st, &PathLogin { client, username, password }, &file, &headers, profile.as_deref()).await
        }
        Err(r) => r,
    }
}

async fn vod(st: &AppState, client: &Client, kind: MediaKind, file: &str, headers: &HeaderMap) -> Response {
    let Some(id) = file_id(file) else {
        return text(StatusCode::NOT_FOUND, format!("no {} {file:?}", kind.as_str()));
    };
    if let Err(r) = check_visible(st, client, kind, id).await {
        return r;
    }
    crate::stream::vod_file(st, kind, file, headers, client.viewer(), Audience::Client).await
}

pub(crate) async fn movie(
    State(st): State<AppState>,
    Path(File { file }): Path<File>,
    login: PathLogin,
    headers: HeaderMap,
) -> Response {
    vod(&st, &login.client, MediaKind::Movie, &file, &headers).await
}

pub(crate) async fn episode(
    State(st): State<AppState>,
    Path(File { file }): Path<File>,
    login: PathLogin,
    headers: HeaderMap,
) -> Response {
    vod(&st, &login.client, MediaKind::Series, &file, &headers).await
}

/// The catch-up part of a `/timeshift/…` URL.
#[derive(Deserialize)]
pub(crate) struct Timeshift {
    duration: String,
    start: String,
    file: String,
}

/// `/timeshift/{u}/{p}/{duration}/{start}/{id}.ts`: catch-up — the
/// channel's archive from `start` (`YYYY-MM-DD:HH-MM`) for `duration`
/// minutes, from a provider that keeps one (listed with `tv_archive: 1`).
pub(crate) async fn timeshift(
    State(st): State<AppState>,
    Path(Timeshift { duration, start, file }): Path<Timeshift>,
    login: PathLogin,
    headers: HeaderMap,
) -> Response {
    let client = &login.client;
    let Some(id) = file_id(&file) else {
        return text(StatusCode::NOT_FOUND, format!("no channel {file:?}"));
    };
    let Some(duration) = duration.parse::<u32>().ok().filter(|d| (1..=7 * 24 * 60).contains(d)) else {
        return text(StatusCode::BAD_REQUEST, format!("duration: {duration:?} must be minutes, 1 to 10080"));
    };
    if !valid_start(&start) {
        return text(StatusCode::BAD_REQUEST, format!("start: {start:?} must be YYYY-MM-DD:HH-MM"));
    }
    if let Err(r) = check_visible(&st, client, MediaKind::Live, id).await {
        return r;
    }
    crate::stream::timeshift_file(&st, id, duration, &start, &headers, client.viewer()).await
}

/// `YYYY-MM-DD:HH-MM`, as Xtream panels take a catch-up start.
fn valid_start(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 16
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 | 13 => *c == b'-',
            10 => *c == b':',
            _ => c.is_ascii_digit(),
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn catch_up_start_format() {
        assert!(super::valid_start("2026-11-20:21-05"));
        for bad in ["2026-11-20 21:05", "2026-11-20:21-5", "../../../etc", "2026-11-20:21-05x", ""] {
            assert!(!super::valid_start(bad), "{bad}");
        }
    }
}
