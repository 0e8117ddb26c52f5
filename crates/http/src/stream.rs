//! `GET /stream/{channel}` (and `/stream/{channel}.ts`): join the channel's
//! live session or start one. Only catalog channels can be streamed — this is
//! never an open relay.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use tunerpool_relay::relay::WatchError;

use crate::AppState;

fn plain(status: StatusCode, text: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text + "\n").into_response()
}

pub(crate) async fn live(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(channel): Path<String>,
) -> Response {
    let raw = channel.strip_suffix(".ts").unwrap_or(&channel);
    let Ok(id) = raw.parse::<i64>() else {
        return plain(StatusCode::NOT_FOUND, format!("no channel {channel:?}: use /stream/{{channel id}}.ts"));
    };
    match st.relay.watch(id, addr.to_string(), None).await {
        Ok(stream) => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "video/mp2t")
            .header(header::CACHE_CONTROL, "no-cache, no-store")
            .header("x-tunerpool-session", stream.session_id.to_string())
            .body(Body::from_stream(stream))
            .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "cannot build the response".into())),
        Err(WatchError::UnknownChannel(id)) => plain(StatusCode::NOT_FOUND, format!("no channel {id}")),
        Err(WatchError::NoCapacity(why)) => {
            tracing::warn!(channel = id, client = %addr, reason = %why, "refused: no capacity");
            plain(StatusCode::SERVICE_UNAVAILABLE, why)
        }
        Err(WatchError::Upstream(why)) => {
            tracing::warn!(channel = id, client = %addr, reason = %why, "refused: no upstream works");
            plain(StatusCode::BAD_GATEWAY, why)
        }
        Err(WatchError::Internal(why)) => {
            tracing::error!(channel = id, reason = %why, "stream failed");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error; see the server log".into())
        }
    }
}

/// Live sessions: channel, provider, account, state, upstream URL (credentials masked), bytes, bitrate,
/// failovers, viewers.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions",
    responses((status = 200, description = "every live session", body = Vec<tunerpool_relay::session::SessionInfo>)))]
pub(crate) async fn sessions(State(st): State<AppState>) -> axum::Json<Vec<tunerpool_relay::session::SessionInfo>> {
    axum::Json(st.relay.sessions())
}

/// Stops a session: its viewers' streams end and its slot is released.
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "sessions",
    params(("id" = u64, Path, description = "session id")),
    responses((status = 204, description = "stopped"), (status = 404, description = "no such session")))]
pub(crate) async fn stop_session(State(st): State<AppState>, Path(id): Path<String>) -> StatusCode {
    match id.parse::<u64>() {
        Ok(id) if st.relay.stop(id) => StatusCode::NO_CONTENT,
        _ => StatusCode::NOT_FOUND,
    }
}

/// Prometheus text exposition.
pub(crate) async fn metrics(State(st): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], st.relay.metrics_text())
        .into_response()
}

/// `GET /movie/{id}.{ext}`.
pub(crate) async fn movie(st: State<AppState>, Path(file): Path<String>, headers: axum::http::HeaderMap) -> Response {
    vod(st, tunerpool_catalog::MediaKind::Movie, file, headers).await
}

/// `GET /series/{id}.{ext}` (an episode).
pub(crate) async fn episode(st: State<AppState>, Path(file): Path<String>, headers: axum::http::HeaderMap) -> Response {
    vod(st, tunerpool_catalog::MediaKind::Series, file, headers).await
}

/// A file from the provider, with the client's `Range` passed through.
async fn vod(
    State(st): State<AppState>,
    kind: tunerpool_catalog::MediaKind,
    file: String,
    headers: axum::http::HeaderMap,
) -> Response {
    let raw = file.split_once('.').map_or(file.as_str(), |(id, _)| id);
    let Ok(id) = raw.parse::<i64>() else {
        return plain(StatusCode::NOT_FOUND, format!("no {} {file:?}", kind.as_str()));
    };
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    match st.relay.open_vod(kind, id, range).await {
        Ok(v) => {
            let mut b = Response::builder().status(v.status);
            for (k, val) in &v.headers {
                b = b.header(k.as_str(), val.as_str());
            }
            b.body(Body::from_stream(v.body))
                .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "cannot build the response".into()))
        }
        Err(WatchError::UnknownChannel(id)) => plain(StatusCode::NOT_FOUND, format!("no {} {id}", kind.as_str())),
        Err(WatchError::NoCapacity(why)) => {
            tracing::warn!(kind = kind.as_str(), id, reason = %why, "refused: no capacity");
            plain(StatusCode::SERVICE_UNAVAILABLE, why)
        }
        Err(WatchError::Upstream(why)) => plain(StatusCode::BAD_GATEWAY, why),
        Err(WatchError::Internal(why)) => {
            tracing::error!(kind = kind.as_str(), id, reason = %why, "VOD failed");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error; see the server log".into())
        }
    }
}
