//! tunerpool's HTTP surface, the last stage before the viewer.
//!
//! The admin JSON API under `/api/v1`: reads (`api`: providers, channels,
//! groups), writes (`write`: providers and accounts, sync now, Test), pool
//! status, sessions, live updates (`live`, Server-Sent Events) and its
//! OpenAPI document (`openapi`), all behind the admin token (`auth`); the web
//! UI (`ui`, embedded files); the merged XMLTV guide (`epg`: `/epg.xml`,
//! `/epg.xml.gz`); `/healthz`, `/metrics`, the guide and the streams, which
//! are open. Every response body is built from catalog types whose
//! serialization already hides secrets (passwords are
//! [`tunerpool_catalog::Secret`]s and are never serialized; provider URLs are
//! redacted).

mod api;
pub mod auth;
mod epg;
pub mod error;
mod live;
mod metrics;
mod openapi;
mod outputs;
pub mod pool_status;
mod stream;
mod ui;
mod users;
mod write;

use std::time::Instant;

use axum::Router;
use tokio_util::sync::CancellationToken;
use tunerpool_catalog::Store;
use tunerpool_ledger::AnyLedger;
use tunerpool_upstream::UpstreamHttp;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::AdminToken;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// For provider syncs, details refreshes and Test.
    pub http: UpstreamHttp,
    /// Who holds which connection slot.
    pub ledger: std::sync::Arc<AnyLedger>,
    /// Live sessions.
    pub relay: tunerpool_relay::relay::Relay,
    pub pool: PoolSettings,
    pub started: Instant,
    /// Required as `Authorization: Bearer …` by every `/api/v1` route.
    pub admin_token: AdminToken,
    /// The base of URLs handed to clients (`public_url`); `None`: the
    /// request's `Host`.
    pub public_url: Option<String>,
}

/// The pool settings handlers need.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// Accounts expiring within this many days are flagged.
    pub expiry_warning_days: u32,
}

/// Every `/api/v1` route. Each is registered with `routes!`, which routes
/// the handlers *and* adds their `#[utoipa::path]` to the OpenAPI document:
/// an API route cannot exist without its documentation.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(api::list_providers, write::create_provider))
        .routes(routes!(api::get_provider, write::update_provider, write::delete_provider))
        .routes(routes!(write::sync_now))
        .routes(routes!(write::refresh_provider_details))
        .routes(routes!(write::list_accounts, write::create_account))
        .routes(routes!(pool_status::one))
        .routes(routes!(write::update_account, write::delete_account))
        .routes(routes!(write::test_saved_account))
        .routes(routes!(write::test_unsaved_account))
        .routes(routes!(api::list_channels))
        .routes(routes!(api::list_groups))
        .routes(routes!(pool_status::all))
        .routes(routes!(api::list_events))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::one, users::update, users::remove))
        .routes(routes!(epg::status))
        .routes(routes!(epg::refresh_now))
        .routes(routes!(stream::sessions))
        .routes(routes!(stream::stop_session))
        .routes(routes!(live::live))
        .routes(routes!(openapi::document))
}

/// The OpenAPI document of `/api/v1` (also served at `/api/v1/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api_routes().into_openapi();
    openapi::finish(&mut doc);
    doc
}

/// The whole application router: every route, in one place.
pub fn router(state: AppState) -> Router {
    app(state, CancellationToken::new())
}

/// The router; `shutdown` ends the live event streams when cancelled.
fn app(state: AppState, shutdown: CancellationToken) -> Router {
    use axum::routing::{any, get};
    let (api, _) = api_routes().split_for_parts();
    let http_metrics = std::sync::Arc::new(metrics::HttpMetrics::default());
    let logins = std::sync::Arc::new(outputs::ClientAuth::new(http_metrics.clone()));
    // Unknown API paths answer in JSON too (and only to the admin).
    let api = api
        .route(
            "/api/v1/{*rest}",
            any(|method: axum::http::Method, uri: axum::http::Uri| async move {
                error::ApiError::no_route(method.as_str(), uri.path())
            }),
        )
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_admin))
        .layer(axum::Extension(live::Shutdown(shutdown)))
        .layer(axum::Extension(logins.clone()));
    Router::new()
        .merge(api)
        .route("/healthz", get(api::healthz))
        .route("/stream/{channel}", get(stream::live))
        .route("/stream/{channel}/hls/{file}", get(stream::live_segment))
        .route("/metrics", get(metrics::metrics))
        .route("/movie/{file}", get(stream::movie))
        .route("/series/{file}", get(stream::episode))
        .route("/", get(ui::index))
        .route("/ui/{file}", get(ui::file))
        .route("/epg.xml", get(epg::epg_xml))
        .route("/epg.xml.gz", get(epg::epg_xml_gz))
        .merge(outputs::routes(logins))
        .layer(axum::middleware::from_fn_with_state(http_metrics.clone(), metrics::track))
        .layer(axum::Extension(http_metrics))
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

/// The span of one request in the request trace: its matched route and its
/// target with credentials masked — never the raw URI, which carries users'
/// passwords (`/live/{u}/{p}/…`, `get.php?password=…`).
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let route = req.extensions().get::<axum::extract::MatchedPath>().map_or("-", |m| m.as_str());
    tracing::debug_span!(
        "request",
        method = %req.method(),
        route,
        uri = %tunerpool_upstream::redact::redact_url(&req.uri().to_string(), &[]),
    )
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Live streams never end on their own: stop the sessions when shutdown
    // starts, so that graceful shutdown can finish.
    let relay = state.relay.clone();
    let stopping = CancellationToken::new();
    let cancel = stopping.clone();
    let shutdown = async move {
        shutdown.await;
        relay.stop_all();
        cancel.cancel();
    };
    let app = app(state, stopping).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
