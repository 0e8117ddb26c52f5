//! Probes in the admin API: ask for a channel's or a group's sources to be measured now, and see what probing
//! does (running, waiting, found lately). The probing itself is the relay's ([`tunerpool_relay::probe`]).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tunerpool_catalog::{FieldError, ProbeScope};
use tunerpool_relay::probe::{ProbeStatus, ProbeTarget};

use crate::error::{ApiError, ErrorBody};
use crate::relay_catalog::probe_target;
use crate::write::json_body;
use crate::AppState;

/// What to probe: one lineup channel's sources, or those of every channel of a lineup group.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeRequest {
    /// A lineup channel's id.
    pub channel_id: Option<i64>,
    /// A lineup group's id.
    pub group_id: Option<i64>,
}

/// What a probe request queued.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProbesQueued {
    /// Sources added to the queue (those queued or running already are not counted).
    pub queued: usize,
    /// Every source the request named.
    pub sources: Vec<ProbeTarget>,
}

/// Queues the sources of a channel or a group for probing. Each runs when its provider's turn comes (one
/// probe per provider at a time, `probe.interval` apart) and only on a slot that leaves `probe.reserve` free.
#[utoipa::path(post, path = "/api/v1/probes", operation_id = "request_probes", tag = "quality", request_body = ProbeRequest,
    responses((status = 202, description = "queued", body = ProbesQueued),
        (status = 400, description = "a malformed body", body = ErrorBody),
        (status = 404, description = "no such channel or group", body = ErrorBody),
        (status = 422, description = "neither or both of channel_id and group_id", body = ErrorBody)))]
pub(crate) async fn request(
    State(st): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<ProbesQueued>), ApiError> {
    let req: ProbeRequest = json_body(&body)?;
    let scope = match (req.channel_id, req.group_id) {
        (Some(id), None) => ProbeScope::Channel(id),
        (None, Some(id)) => ProbeScope::Group(id),
        (a, b) => {
            let msg = if a.is_some() && b.is_some() {
                "give channel_id or group_id, not both"
            } else {
                "give channel_id or group_id"
            };
            return Err(ApiError::invalid(vec![FieldError::unusable(
                if a.is_some() { "group_id" } else { "channel_id" },
                msg,
            )]));
        }
    };
    let sources: Vec<ProbeTarget> = st.store.sources_to_probe(scope).await?.into_iter().map(probe_target).collect();
    let queued = st.relay.request_probes(sources.iter().copied());
    Ok((StatusCode::ACCEPTED, Json(ProbesQueued { queued, sources })))
}

/// What probing does now: its settings, the probes running (with the account each holds), those waiting, and
/// the latest results.
#[utoipa::path(get, path = "/api/v1/probes", operation_id = "probe_status", tag = "quality",
    responses((status = 200, description = "probing now", body = ProbeStatus)))]
pub(crate) async fn status(State(st): State<AppState>) -> Json<ProbeStatus> {
    Json(st.relay.probe_status())
}

/// A transcoding profile and how many transcodes of it run now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProfileStatus {
    #[serde(flatten)]
    pub profile: tunerpool_relay::transcode::Profile,
    /// Transcodes of it running now.
    pub running: usize,
}

/// The transcoding profiles viewers may ask for with `?profile=NAME` (built-in and configured), with how many
/// transcodes of each run now.
#[utoipa::path(get, path = "/api/v1/profiles", operation_id = "list_profiles", tag = "sessions",
    responses((status = 200, description = "every profile", body = Vec<ProfileStatus>)))]
pub(crate) async fn profiles(State(st): State<AppState>) -> Json<Vec<ProfileStatus>> {
    let sessions = st.relay.sessions();
    let list = st
        .relay
        .settings()
        .transcode
        .profiles
        .iter()
        .map(|p| ProfileStatus {
            running: sessions.iter().filter(|s| s.profile.as_deref() == Some(p.name.as_str())).count(),
            profile: p.clone(),
        })
        .collect();
    Json(list)
}
