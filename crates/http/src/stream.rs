//! `GET /stream/{channel}` (and `/stream/{channel}.ts`): join the channel's
//! live session or start one. Only catalog channels can be streamed — this is
//! never an open relay. These routes (and `/movie`, `/series`) are the
//! admin's, or the anonymous user's when allowed (`access`); the responses
//! and refusals here are shared by every endpoint, the client outputs too.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use tunerpool_relay::relay::WatchError;
use tunerpool_relay::Viewer;

use crate::access::{Audience, Caller};
use crate::clip::{Output, RefusalClip};
use crate::AppState;

fn plain(status: StatusCode, text: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text + "\n").into_response()
}

pub(crate) async fn live(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(channel): Path<String>,
    headers: axum::http::HeaderMap,
    Query(ProfileParam { profile }): Query<ProfileParam>,
) -> Response {
    let (raw, hls) = match channel.strip_suffix(".m3u8") {
        Some(id) => (id, true),
        None => (channel.strip_suffix(".ts").unwrap_or(&channel), false),
    };
    let Ok(id) = raw.parse::<i64>() else {
        return plain(StatusCode::NOT_FOUND, format!("no channel {channel:?}: use /stream/{{channel id}}.ts or .m3u8"));
    };
    let viewer = caller.viewer(&st, addr.to_string());
    if hls {
        let segments = crate::outputs::public_path(&st, &format!("/stream/{id}/hls/"));
        return hls_playlist_response(&st, id, viewer, segments, caller.audience()).await;
    }
    let clip = st.clip.for_request(Output::Stream, &headers);
    live_response(&st, id, viewer, caller.audience(), clip, profile.as_deref()).await
}

/// `?profile=NAME` on a live stream URL: watch the channel transcoded with that profile (empty: as it comes).
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct ProfileParam {
    #[serde(default, deserialize_with = "empty_is_none")]
    pub profile: Option<String>,
}

fn empty_is_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v: Option<String> = serde::Deserialize::deserialize(d)?;
    Ok(v.filter(|p| !p.trim().is_empty()))
}

/// `GET /stream/{channel}/hls/{seq}.ts`: a segment of the channel's HLS output.
pub(crate) async fn live_segment(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((channel, file)): Path<(String, String)>,
) -> Response {
    match channel.parse::<i64>() {
        Ok(id) => hls_segment_response(&st, id, &file, caller.user_id()),
        Err(_) => plain(StatusCode::NOT_FOUND, format!("no channel {channel:?}")),
    }
}

/// A live channel as an HLS playlist for `viewer`; segment `n` is at
/// `{segment_base}{n}.ts` (relative to the playlist, or absolute).
pub(crate) async fn hls_playlist_response(
    st: &AppState,
    id: i64,
    viewer: Viewer,
    segment_base: String,
    audience: Audience,
) -> Response {
    let client = viewer.address.clone();
    let url = move |seq: u64| format!("{segment_base}{seq}.ts");
    match st.relay.hls_playlist(id, viewer, &url).await {
        Ok(text) => (
            [(header::CONTENT_TYPE, "application/vnd.apple.mpegurl"), (header::CACHE_CONTROL, "no-cache, no-store")],
            text,
        )
            .into_response(),
        Err(e) => channel_refusal(st, e, id, &client, audience).await,
    }
}

/// Segment `{seq}.ts` of a channel's HLS output (404 once it has expired).
pub(crate) fn hls_segment_response(st: &AppState, id: i64, file: &str, user: Option<i64>) -> Response {
    let seq = file.strip_suffix(".ts").unwrap_or(file).parse::<u64>().ok();
    match seq.and_then(|seq| st.relay.hls_segment(id, seq, user)) {
        Some(chunks) => {
            let len: usize = chunks.iter().map(|c| c.len()).sum();
            let body = futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "video/mp2t")
                .header(header::CONTENT_LENGTH, len)
                .body(Body::from_stream(body))
                .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "cannot build the response".into()))
        }
        None => plain(StatusCode::NOT_FOUND, format!("no segment {file:?} of channel {id} (expired or not live)")),
    }
}

/// A live channel's MPEG-TS for `viewer`, or the refusal saying why not —
/// as the refusal clip when `clip` is given (see [`ClipSettings::for_request`](crate::clip::ClipSettings)).
/// Every live endpoint (admin `/stream`, the client outputs) answers with this.
pub(crate) async fn live_response(
    st: &AppState,
    id: i64,
    viewer: Viewer,
    audience: Audience,
    clip: Option<std::sync::Arc<RefusalClip>>,
    profile: Option<&str>,
) -> Response {
    let client = viewer.address.clone();
    match st.relay.watch_as(id, profile, viewer).await {
        Ok(stream) => {
            // The server's fast path may write this stream itself, close-delimited (see `server`); as a body it
            // streams the same chunks.
            let session = stream.session_id;
            let live = crate::server::LiveBody::new(stream);
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "video/mp2t")
                .header(header::CACHE_CONTROL, "no-cache, no-store")
                .header("x-tunerpool-session", session.to_string())
                .extension(live.clone())
                .body(live.body())
                .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "cannot build the response".into()))
        }
        Err(e) => {
            let reason = refused_reason(&e);
            let refused = channel_refusal(st, e, id, &client, audience).await;
            match (clip, reason) {
                (Some(clip), Some(reason)) => clip_response(&clip, reason, id, &client),
                _ => refused,
            }
        }
    }
}

/// The refusals a player may be shown the clip for, by the reason the
/// `x-tunerpool-refused` header names (the `refusals_total` metric's names):
/// not an unknown channel (404) nor an internal error.
fn refused_reason(err: &WatchError) -> Option<&'static str> {
    match err {
        WatchError::NoCapacity(_) | WatchError::Restarting(_) => Some("no_capacity"),
        WatchError::UserLimit(_) => Some("user_limit"),
        WatchError::Upstream(_) => Some("upstream_failed"),
        WatchError::SessionFull(_) => Some("session_full"),
        WatchError::UnknownChannel(_) | WatchError::UnknownProfile(_) | WatchError::Internal(_) => None,
    }
}

/// The refusal clip in place of a refusal already logged: `200` (players
/// show nothing for anything else), `x-tunerpool-refused: <reason>`.
fn clip_response(clip: &RefusalClip, reason: &'static str, id: i64, client: &str) -> Response {
    tracing::info!(what = "channel", id, client, reason, "refused: sent the refusal clip");
    let body = clip.bytes();
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "video/mp2t")
        .header(header::CACHE_CONTROL, "no-cache, no-store")
        .header(header::CONTENT_LENGTH, body.len())
        .header("x-tunerpool-refused", reason)
        .body(Body::from(body))
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "cannot build the response".into()))
}

/// The refusal for a live channel. A client refused for capacity is told,
/// source by source, why each was refused — how many of its provider's
/// connections are in use, or that it is unusable — naming neither
/// providers nor accounts (the admin gets the full story, both named).
async fn channel_refusal(st: &AppState, err: WatchError, id: i64, client: &str, audience: Audience) -> Response {
    if let (WatchError::NoCapacity(why), Audience::Client) = (&err, audience) {
        if let Some(sources) = sources_refused(st, id).await {
            tracing::warn!(what = "channel", id, client, reason = %why, "refused: no capacity");
            let text = format!("no free connection for channel {id}; try again shortly. {sources}");
            return plain(StatusCode::SERVICE_UNAVAILABLE, text);
        }
    }
    refusal(err, "channel", id, client, audience)
}

/// The providers of a channel's sources with all their accounts, each once:
/// what source selection plans with.
pub(crate) async fn channel_providers(
    st: &AppState,
    channel: &tunerpool_catalog::Channel,
) -> Result<Vec<(tunerpool_catalog::Provider, Vec<tunerpool_catalog::Account>)>, tunerpool_catalog::CatalogError> {
    let mut loaded: Vec<(tunerpool_catalog::Provider, Vec<tunerpool_catalog::Account>)> = Vec::new();
    for s in &channel.sources {
        if loaded.iter().any(|(p, _)| p.id == s.provider_id) {
            continue;
        }
        let p = st.store.provider(s.provider_id).await?;
        let accounts = st.store.accounts(p.id).await?;
        loaded.push((p, accounts));
    }
    Ok(loaded)
}

/// "source 1: 2 of 2 connections in use; source 2: unusable (expired)": why
/// each source of a lineup channel was refused, in the order they were
/// tried (by provider), naming no provider and no account.
async fn sources_refused(st: &AppState, channel_id: i64) -> Option<String> {
    use std::collections::HashMap;
    use tunerpool_ledger::Ledger;
    use tunerpool_pool::select::{no_capacity, ProviderPool, SelectInput};
    let channel = st.store.channel(channel_id).await.ok()?;
    let loaded = channel_providers(st, &channel).await.ok()?;
    let pools: HashMap<i64, ProviderPool> =
        loaded.iter().map(|(p, a)| (p.id, ProviderPool { provider: p, accounts: a.as_slice() })).collect();
    let usage = st.ledger.usage().await.ok()?;
    let input = SelectInput {
        sources: &channel.sources,
        providers: &pools,
        active: &usage.accounts,
        policy: Default::default(),
        now_unix: tunerpool_catalog::now(),
        scores: &[],
        quality_policy: Default::default(),
    };
    let mut parts: Vec<String> = no_capacity(&input)
        .providers
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let usable: Vec<_> = p.accounts.iter().filter(|a| a.unusable.is_none()).collect();
            let state = if p.accounts.is_empty() {
                "no accounts".to_string()
            } else if usable.is_empty() {
                let mut why: Vec<&str> = p.accounts.iter().filter_map(|a| a.unusable.as_deref()).collect();
                why.dedup();
                format!("unusable ({})", why.join(", "))
            } else {
                let active: u32 = usable.iter().map(|a| a.active.min(a.max)).sum();
                let max: u32 = usable.iter().map(|a| a.max).sum();
                format!("{active} of {max} connections in use")
            };
            format!("source {}: {state}", i + 1)
        })
        .collect();
    if !channel.lost_sources.is_empty() {
        parts.push(format!("{} source(s) no longer listed by their provider", channel.lost_sources.len()));
    }
    if parts.is_empty() {
        parts.push("the channel has no source left".into());
    }
    Some(format!("Sources: {}.", parts.join("; ")))
}

/// The response (and log line) for a stream that cannot be served. The log
/// says why in full; a client is not told which accounts are busy or failed
/// (the admin is).
fn refusal(err: WatchError, what: &str, id: i64, client: &str, audience: Audience) -> Response {
    let told = |why: String, general: String| match audience {
        Audience::Admin => why,
        Audience::Client => general,
    };
    match err {
        WatchError::UnknownChannel(id) => plain(StatusCode::NOT_FOUND, format!("no {what} {id}")),
        WatchError::NoCapacity(why) => {
            tracing::warn!(what, id, client, reason = %why, "refused: no capacity");
            let general = "no free connection: every provider connection is in use; try again shortly".to_string();
            plain(StatusCode::SERVICE_UNAVAILABLE, told(why, general))
        }
        WatchError::UserLimit(why) => {
            tracing::warn!(what, id, client, reason = %why, "refused: user at its connection limit");
            plain(StatusCode::FORBIDDEN, why)
        }
        WatchError::Upstream(why) => {
            tracing::warn!(what, id, client, reason = %why, "refused: no upstream works");
            let general = format!("the provider did not deliver {what} {id}; try again later");
            plain(StatusCode::BAD_GATEWAY, told(why, general))
        }
        WatchError::Restarting(why) => {
            tracing::warn!(what, id, client, reason = %why, "refused: the session was restarting");
            plain(StatusCode::SERVICE_UNAVAILABLE, why)
        }
        WatchError::UnknownProfile(_) => plain(StatusCode::BAD_REQUEST, err.to_string()),
        WatchError::SessionFull(why) => {
            tracing::warn!(what, id, client, reason = %why, "refused: the session has its maximum of viewers");
            plain(StatusCode::SERVICE_UNAVAILABLE, why)
        }
        WatchError::Internal(why) => {
            plain(StatusCode::INTERNAL_SERVER_ERROR, crate::error::internal(&format!("{what} {id}"), &why))
        }
    }
}

/// Live sessions: channel, provider, account, state, upstream URL (credentials masked), bytes, bitrate,
/// failovers, viewers; in cluster mode every instance's, each naming its `instance` (the others' as they
/// published them, at most a third of `cluster.ttl` ago).
#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions",
    responses((status = 200, description = "every live session (of every instance, in cluster mode)",
        body = Vec<crate::cluster_view::SessionEntry>)))]
pub(crate) async fn sessions(State(st): State<AppState>) -> axum::Json<Vec<serde_json::Value>> {
    axum::Json(crate::cluster_view::sessions(&st).await)
}

/// Stops a session: its viewers' streams end and its slot is released. In cluster mode, any instance's: the
/// request goes to the instance `instance` names (as the sessions list shows it), over the cluster's internal
/// endpoint; without `instance`, to this instance's session with that id, else to the one instance whose
/// published sessions have it.
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "sessions",
    params(("id" = u64, Path, description = "session id (per instance)"),
        ("instance" = Option<String>, Query, pattern = r"^[A-Za-z0-9._-]{1,64}$", max_length = 64,
            description = "the instance whose session it is (its `instance` in `GET /api/v1/sessions`); default: this one, else the one instance that has a session with this id")),
    responses((status = 204, description = "stopped"),
        (status = 400, description = "a bad parameter", body = crate::error::ErrorBody),
        (status = 404, description = "no such session (or no such instance)", body = crate::error::ErrorBody),
        (status = 409, description = "several instances have a session with this id: name one with `instance`", body = crate::error::ErrorBody),
        (status = 502, description = "the session's instance could not be asked", body = crate::error::ErrorBody),
        (status = 503, description = "Redis does not answer: the session's instance cannot be found", body = crate::error::ErrorBody)))]
pub(crate) async fn stop_session(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<std::collections::HashMap<String, String>>,
) -> Result<StatusCode, crate::error::ApiError> {
    use crate::error::ApiError;
    use tunerpool_relay::cluster::PeerStopError;
    let mut errs = Vec::new();
    for k in params.keys().filter(|k| k.as_str() != "instance") {
        errs.push(tunerpool_catalog::FieldError::new(k, "unknown parameter: use instance"));
    }
    let instance = params.get("instance").map(String::as_str);
    if let Some(i) = instance {
        if i.is_empty() || i.len() > 64 || !i.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
            errs.push(tunerpool_catalog::FieldError::new(
                "instance",
                "not an instance id (letters, digits, '.', '_', '-'; at most 64): use an `instance` of GET /api/v1/sessions",
            ));
        }
    }
    if !errs.is_empty() {
        return Err(ApiError::invalid(errs));
    }
    let not_found = || ApiError::not_found(format!("session {id} not found (it may have ended)"));
    let Ok(n) = id.parse::<u64>() else { return Err(not_found()) };
    let link = st.relay.cluster();
    let me = link.as_ref().map(|l| l.instance_id().to_owned());
    let holder = match instance {
        // Another instance's, named.
        Some(other) if Some(other) != me.as_deref() => match link {
            None => return Err(ApiError::not_found(format!("no instance {other}: this instance is not in a cluster"))),
            Some(_) => other.to_owned(),
        },
        // This instance's, named or by default.
        _ => {
            if st.relay.stop(n) {
                return Ok(StatusCode::NO_CONTENT);
            }
            if instance.is_some() || link.is_none() {
                return Err(not_found());
            }
            // Not here: the one peer whose published sessions have it.
            let holders = crate::cluster_view::holders(&st, n)
                .await
                .map_err(|e| ApiError::unavailable(PeerStopError::Coordination(e.to_string()).to_string()))?;
            match holders.as_slice() {
                [] => return Err(not_found()),
                [one] => one.clone(),
                several => {
                    return Err(ApiError::busy(format!(
                        "session {n} is on instances {}: name one with ?instance=",
                        several.join(", ")
                    )))
                }
            }
        }
    };
    match st.relay.stop_on_peer(&holder, n).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(
            e @ (PeerStopError::UnknownInstance(_) | PeerStopError::NoSession { .. } | PeerStopError::NotClustered),
        ) => Err(ApiError::not_found(e.to_string())),
        Err(e @ PeerStopError::Unreachable { .. }) => {
            tracing::warn!(error = %e, "stopping a peer's session failed");
            Err(ApiError::upstream(e.to_string()))
        }
        Err(e @ PeerStopError::Coordination(_)) => Err(ApiError::unavailable(e.to_string())),
    }
}

/// `GET /movie/{id}.{ext}`.
pub(crate) async fn movie(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(file): Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    let viewer = caller.viewer(&st, addr.to_string());
    vod_file(&st, tunerpool_catalog::MediaKind::Movie, &file, &headers, viewer, caller.audience()).await
}

/// `GET /series/{id}.{ext}` (an episode).
pub(crate) async fn episode(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(file): Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    let viewer = caller.viewer(&st, addr.to_string());
    vod_file(&st, tunerpool_catalog::MediaKind::Series, &file, &headers, viewer, caller.audience()).await
}

/// A movie or episode named `{id}.{ext}` (or just `{id}`) for `viewer`, with
/// the client's `Range` passed through. Every VOD endpoint answers with this.
pub(crate) async fn vod_file(
    st: &AppState,
    kind: tunerpool_catalog::MediaKind,
    file: &str,
    headers: &axum::http::HeaderMap,
    viewer: Viewer,
    audience: Audience,
) -> Response {
    let raw = file.split_once('.').map_or(file, |(id, _)| id);
    let Ok(id) = raw.parse::<i64>() else {
        return plain(StatusCode::NOT_FOUND, format!("no {} {file:?}", kind.as_str()));
    };
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    file_response(st.relay.open_vod(kind, id, range, &viewer).await, kind.as_str(), id, &viewer.address, audience)
}

/// A live channel's archive (catch-up) for `viewer`: `duration` minutes from
/// `start` (`YYYY-MM-DD:HH-MM`), with the client's `Range` passed through.
pub(crate) async fn timeshift_file(
    st: &AppState,
    id: i64,
    duration: u32,
    start: &str,
    headers: &axum::http::HeaderMap,
    viewer: Viewer,
) -> Response {
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let opened = st.relay.open_timeshift(id, duration, start, range, &viewer).await;
    file_response(opened, "channel archive", id, &viewer.address, Audience::Client)
}

/// A provider's file answer passed on, or the refusal.
fn file_response(
    opened: Result<tunerpool_relay::vod::VodResponse, WatchError>,
    what: &str,
    id: i64,
    client: &str,
    audience: Audience,
) -> Response {
    match opened {
        Ok(v) => {
            let mut b = Response::builder().status(v.status);
            for (k, val) in &v.headers {
                b = b.header(k.as_str(), val.as_str());
            }
            b.body(Body::from_stream(v.body))
                .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "cannot build the response".into()))
        }
        Err(e) => refusal(e, what, id, client, audience),
    }
}
