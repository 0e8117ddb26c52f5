//! The `/_control` endpoints: the same knobs as the library handle, for a provider that runs
//! as a separate process (benchmarks).
//!
//! * `GET /_control/counters` — the [`Counters`] JSON
//! * `GET /_control/faults` — active faults; `POST` adds one ([`Fault`] JSON); `DELETE` clears all
//! * `GET /_control/accounts/{username}` — the account; `POST` with a partial JSON
//!   (`max_connections`, `auth`, `status`, `exp_date`, `password`, `is_trial`) changes it (404 if unknown)
//! * `GET /_control/limits` — how limits are enforced ([`LimitSettings`]); `POST` with a partial JSON
//!   (`limit_mode`, `release_delay_ms`) changes it at run time
//! * `POST /_control/reset_counters`

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::config::LimitMode;
use crate::faults::Fault;
use crate::limits::Counters;
use crate::state::Shared;

/// A partial account change: only the fields present are applied.
///
/// Exists so control clients can flip one property without restating the account.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct AccountPatch {
    /// New connection limit (0 = unlimited).
    pub max_connections: Option<u32>,
    /// New `auth` flag.
    pub auth: Option<bool>,
    /// New status.
    pub status: Option<String>,
    /// New expiry (unix seconds).
    pub exp_date: Option<i64>,
    /// New password.
    pub password: Option<String>,
    /// New trial flag.
    pub is_trial: Option<bool>,
}

/// How the provider enforces connection limits, as `GET /_control/limits` shows it; `POST` takes the same
/// fields, each optional.
///
/// Exists so a test can switch a running provider between the behaviours of real panels: refuse or cut the
/// oldest connection over the limit, and notice closed connections at once or late.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LimitSettings {
    /// Refuse the new connection, or cut the oldest one.
    pub limit_mode: Option<LimitMode>,
    /// A closed connection keeps counting for this long (slow to notice); 0 = at once.
    pub release_delay_ms: Option<u64>,
}

pub(crate) fn limit_settings(s: &Shared) -> LimitSettings {
    LimitSettings {
        limit_mode: Some(s.limits.mode()),
        release_delay_ms: Some(u64::try_from(s.limits.release_delay().as_millis()).unwrap_or(u64::MAX)),
    }
}

pub(crate) fn apply_limit_settings(s: &Shared, patch: &LimitSettings) {
    if let Some(mode) = patch.limit_mode {
        s.limits.set_mode(mode);
    }
    if let Some(ms) = patch.release_delay_ms {
        s.limits.set_release_delay(std::time::Duration::from_millis(ms));
    }
}

pub(crate) fn counters(s: &Shared) -> Counters {
    let (accounts, total_opened) = s.limits.snapshot(&s.accounts.usernames());
    Counters { accounts, total_opened, api_requests: s.api_requests.load(Ordering::Relaxed) }
}

pub(crate) fn reset_counters(s: &Shared) {
    s.limits.reset();
    s.api_requests.store(0, Ordering::Relaxed);
}

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_control/counters", get(get_counters))
        .route("/_control/faults", get(list_faults).post(add_fault).delete(clear_faults))
        .route("/_control/accounts/{username}", get(get_account).post(patch_account))
        .route("/_control/limits", get(get_limits).post(post_limits))
        .route("/_control/reset_counters", post(post_reset))
}

async fn get_counters(State(s): State<Arc<Shared>>) -> Json<Counters> {
    Json(counters(&s))
}

async fn get_limits(State(s): State<Arc<Shared>>) -> Json<LimitSettings> {
    Json(limit_settings(&s))
}

async fn post_limits(State(s): State<Arc<Shared>>, Json(patch): Json<LimitSettings>) -> Json<LimitSettings> {
    tracing::info!(?patch, "limit enforcement changed");
    apply_limit_settings(&s, &patch);
    Json(limit_settings(&s))
}

async fn list_faults(State(s): State<Arc<Shared>>) -> Json<Vec<Fault>> {
    Json(s.faults.list())
}

async fn add_fault(State(s): State<Arc<Shared>>, Json(fault): Json<Fault>) -> StatusCode {
    tracing::info!(?fault, "fault added");
    s.faults.add(fault);
    StatusCode::NO_CONTENT
}

async fn clear_faults(State(s): State<Arc<Shared>>) -> StatusCode {
    s.faults.clear();
    StatusCode::NO_CONTENT
}

async fn get_account(State(s): State<Arc<Shared>>, Path(user): Path<String>) -> Response {
    match s.accounts.get(&user) {
        Some(spec) => Json(spec).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn patch_account(
    State(s): State<Arc<Shared>>,
    Path(user): Path<String>,
    Json(patch): Json<AccountPatch>,
) -> Response {
    let found = s.accounts.update(&user, |spec| {
        if let Some(v) = patch.max_connections {
            spec.max_connections = v;
        }
        if let Some(v) = patch.auth {
            spec.auth = v;
        }
        if let Some(v) = patch.status.clone() {
            spec.status = v;
        }
        if let Some(v) = patch.exp_date {
            spec.exp_date = Some(v);
        }
        if let Some(v) = patch.password.clone() {
            spec.password = v;
        }
        if let Some(v) = patch.is_trial {
            spec.is_trial = v;
        }
    });
    if !found {
        return StatusCode::NOT_FOUND.into_response();
    }
    tracing::info!(user, ?patch, "account changed");
    match s.accounts.get(&user) {
        Some(spec) => Json(spec).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn post_reset(State(s): State<Arc<Shared>>) -> StatusCode {
    reset_counters(&s);
    StatusCode::NO_CONTENT
}
