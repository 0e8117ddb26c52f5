//! Who may use the routes outside the admin API.
//!
//! Anything that spends a provider slot or shows the catalog or the guide
//! needs someone to answer for it. The client outputs carry a downstream
//! user in their URLs (`/live/U/P/…`, `get.php?username=…`) and log it in
//! themselves ([`Gate::User`], `outputs::auth`). `/stream`, `/movie`,
//! `/series` and `/epg.xml` name no user, so they want the admin token
//! ([`Gate::Stream`]) — unless `outputs.anonymous_streams` is on, for a
//! trusted LAN: then anyone may use them as the *anonymous* user, whose
//! streams count against `outputs.anonymous_max_connections` exactly like a
//! user's own limit. `/metrics` names providers and accounts, so it wants the
//! token too unless `http.open_metrics` ([`Gate::Metrics`]). Only `/healthz`
//! and the web UI's files are open ([`Gate::Open`]). The HDHomeRun tuner at
//! the root (`/discover.json`, `/lineup.json`, `/auto/v{id}`, …) is for apps
//! that cannot send credentials: it answers 404 unless the operator names
//! the downstream user it serves as, and then only as that user
//! ([`Gate::RootTuner`]).
//!
//! Every route is declared with its gate in one table (`lib.rs`), which
//! builds the router and is what the tests walk: a route cannot be served
//! without a gate.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tunerpool_relay::{UserQuota, Viewer};

use crate::realip::TrustedProxies;
use crate::AppState;

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Anyone: `/healthz` and the web UI's files (the UI asks for the token).
    Open,
    /// The admin token (every `/api/v1` route).
    Admin,
    /// The admin token, or anyone when `outputs.anonymous_streams` is on
    /// (as the anonymous user, with its own connection limit).
    Stream,
    /// The admin token, unless `http.open_metrics` is on.
    Metrics,
    /// A downstream user, whose username and password are in the URL and
    /// are checked by the handler.
    User,
    /// The HDHomeRun tuner at the root: 404 unless `hdhomerun.root_user`
    /// names a user, and then open to the LAN only as that user (what it may
    /// see, its connection limit), as the handler's extractor resolves it.
    RootTuner,
    /// The cluster's internal endpoint: the cluster secret (constant-time
    /// compare), `401` otherwise and always outside cluster mode.
    Cluster,
}

/// What the gates let through, beyond the admin token. Settings, from the
/// binary's configuration.
#[derive(Debug, Clone)]
pub struct AccessSettings {
    /// `outputs.anonymous_streams`: `/stream`, `/movie`, `/series` and the
    /// guide without a login (a trusted LAN only).
    pub anonymous_streams: bool,
    /// `outputs.anonymous_max_connections`: streams the anonymous user may
    /// hold at once.
    pub anonymous_max_connections: u32,
    /// `http.open_metrics`: `/metrics` without the token.
    pub open_metrics: bool,
    /// `http.trusted_proxies`: whose `X-Forwarded-For`/`Forwarded` is believed.
    pub proxies: TrustedProxies,
}

impl Default for AccessSettings {
    /// Closed: streams, the guide and metrics want the token; no proxy is trusted.
    fn default() -> Self {
        AccessSettings {
            anonymous_streams: false,
            anonymous_max_connections: 2,
            open_metrics: false,
            proxies: TrustedProxies::default(),
        }
    }
}

/// The user id the anonymous user's streams are counted under (real users
/// start at 1).
pub(crate) const ANONYMOUS_USER_ID: i64 = 0;

/// Who passed a [`Gate::Stream`]: handlers build the viewer from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    /// The admin token: no limit of its own (the pool's still applies), and
    /// refusals say why in full.
    Admin,
    /// Nobody, with `outputs.anonymous_streams` on.
    Anonymous,
}

/// Who a refusal is for: the admin is told which accounts are busy; a
/// client is not (it learns nothing about the accounts behind the pool).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Audience {
    Admin,
    Client,
}

impl Caller {
    /// The relay's view of this caller at `address`.
    pub(crate) fn viewer(self, st: &AppState, address: String) -> Viewer {
        match self {
            Caller::Admin => Viewer::anonymous(address),
            Caller::Anonymous => Viewer {
                address,
                user: Some(UserQuota {
                    id: ANONYMOUS_USER_ID,
                    name: "anonymous".into(),
                    max_connections: st.access.anonymous_max_connections,
                    priority: 0,
                }),
            },
        }
    }

    /// The HLS user this caller's segments are counted under.
    pub(crate) fn user_id(self) -> Option<i64> {
        (self == Caller::Anonymous).then_some(ANONYMOUS_USER_ID)
    }

    pub(crate) fn audience(self) -> Audience {
        match self {
            Caller::Admin => Audience::Admin,
            Caller::Anonymous => Audience::Client,
        }
    }
}

/// The bearer token in `Authorization`, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// Whether the request carries the admin token: `Some(true)` yes,
/// `Some(false)` a wrong one, `None` none.
fn has_admin_token(st: &AppState, headers: &HeaderMap) -> Option<bool> {
    bearer(headers).map(|t| st.admin_token.matches(t))
}

fn unauthorized(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::WWW_AUTHENTICATE, "Bearer")],
        format!("{message}\n"),
    )
        .into_response()
}

const STREAM_LOGIN: &str = "this needs a login: use a user's URL (/live/USER/PASSWORD/{id}.ts; the M3U, Xtream and \
                            HDHomeRun outputs hand them out) or send the admin token as Authorization: Bearer <token>";
const WRONG_TOKEN: &str = "wrong admin token";

/// [`Gate::Stream`]: the admin token, or anyone as the anonymous user when
/// that is allowed. The handler learns which through a [`Caller`] extension.
pub(crate) async fn stream_gate(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let caller = match has_admin_token(&st, req.headers()) {
        Some(true) => Caller::Admin,
        Some(false) => return unauthorized(WRONG_TOKEN),
        None if st.access.anonymous_streams => Caller::Anonymous,
        None => return unauthorized(STREAM_LOGIN),
    };
    crate::access_log::record_user(match caller {
        Caller::Admin => "admin",
        Caller::Anonymous => "anonymous",
    });
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// [`Gate::Metrics`]: the admin token unless metrics are open.
pub(crate) async fn metrics_gate(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if st.access.open_metrics {
        return next.run(req).await;
    }
    match has_admin_token(&st, req.headers()) {
        Some(true) => next.run(req).await,
        Some(false) => unauthorized(WRONG_TOKEN),
        None => unauthorized(
            "metrics need the admin token (Authorization: Bearer <token>; Prometheus: authorization.credentials_file), \
             or set http.open_metrics = true",
        ),
    }
}
