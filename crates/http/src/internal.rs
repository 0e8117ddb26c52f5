//! The cluster's internal endpoints: `GET /internal/v1/live/{channel}`, where a peer instance relays this
//! instance's session of a channel (see `tunerpool_relay::cluster`), and `DELETE /internal/v1/sessions/{id}`,
//! where a peer forwards an admin's request to stop one of this instance's sessions.
//!
//! Behind [`crate::Gate::Cluster`]: the cluster secret in `x-tunerpool-cluster-secret`, compared in constant
//! time; `401` without it, with a wrong one, and always when this instance is not in a cluster (no secret is
//! configured: never open). Not under `/api/v1` and not in the OpenAPI document: it is for peers, not for
//! admins; it is in the route table with its gate.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tunerpool_relay::cluster::{PeerRefusal, CHANNEL_HEADER, INSTANCE_HEADER, SECRET_HEADER};
use tunerpool_relay::relay::WatchError;

use crate::AppState;

/// [`crate::Gate::Cluster`]: the cluster secret, or `401`.
pub(crate) async fn cluster_gate(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let Some(link) = st.relay.cluster() else {
        return unauthorized("this instance is not in a cluster");
    };
    match req.headers().get(SECRET_HEADER) {
        Some(given) if link.accepts(given.as_bytes()) => next.run(req).await,
        Some(_) => unauthorized("wrong cluster secret"),
        None => unauthorized("this endpoint is for the cluster's instances: it needs the cluster secret"),
    }
}

fn unauthorized(message: &str) -> Response {
    (StatusCode::UNAUTHORIZED, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{message}\n"))
        .into_response()
}

/// `GET /internal/v1/live/{channel}`: this instance's session of the channel as MPEG-TS, if this instance owns
/// (or can start and own) it; `409` when another instance does (ask that one: never forwarded twice).
pub(crate) async fn live(State(st): State<AppState>, Path(channel): Path<String>, headers: HeaderMap) -> Response {
    let Ok(id) = channel.strip_suffix(".ts").unwrap_or(&channel).parse::<i64>() else {
        return plain(StatusCode::NOT_FOUND, format!("no channel {channel:?}"));
    };
    let peer = peer_name(&headers);
    let key = headers.get(CHANNEL_HEADER).and_then(|v| v.to_str().ok());
    match st.relay.watch_peer(id, key, &peer).await {
        Ok(stream) => {
            tracing::info!(channel = id, %peer, "cluster: a peer relays this instance's session");
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "video/mp2t")
                .header(header::CACHE_CONTROL, "no-store")
                .body(Body::from_stream(stream))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
        Err(refused) => {
            tracing::info!(channel = id, %peer, reason = %refused, "cluster: a peer's request refused");
            let status = match &refused {
                PeerRefusal::NotClustered => StatusCode::UNAUTHORIZED,
                PeerRefusal::NotOwner(_) => StatusCode::CONFLICT,
                PeerRefusal::Failed(WatchError::UnknownChannel(_)) => StatusCode::NOT_FOUND,
                PeerRefusal::Failed(WatchError::Upstream(_)) => StatusCode::BAD_GATEWAY,
                PeerRefusal::Failed(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            plain(status, refused.to_string())
        }
    }
}

/// `DELETE /internal/v1/sessions/{id}`: stops this instance's session `id` for a peer that an admin asked
/// (`DELETE /api/v1/sessions/{id}?instance=…` there): `204`, or `404` when there is none.
pub(crate) async fn stop_session(State(st): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let peer = peer_name(&headers);
    match id.parse::<u64>() {
        Ok(n) if st.relay.stop(n) => {
            tracing::info!(session = n, %peer, "cluster: session stopped at a peer's request (an admin's, there)");
            StatusCode::NO_CONTENT.into_response()
        }
        _ => plain(StatusCode::NOT_FOUND, format!("no session {id:?} on this instance (it may have ended)")),
    }
}

/// The requesting instance as its header names it (only a well-formed id, for the logs).
fn peer_name(headers: &HeaderMap) -> String {
    headers
        .get(INSTANCE_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|p| p.len() <= 64 && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)))
        .unwrap_or("unnamed peer")
        .to_owned()
}

fn plain(status: StatusCode, text: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{text}\n")).into_response()
}
