//! tunerpool's HTTP surface, the last stage before the viewer.
//!
//! The admin JSON API under `/api/v1`: reads (`api`: providers, channels,
//! groups), writes (`write`: providers and accounts, sync now, Test), the
//! lineup's curation (`lineup`: channels, sources, groups), pool
//! status, probes of sources (`probes`), history and alerts (`history`, which also takes the pool's
//! minute sample), sessions, live updates (`live`, Server-Sent Events) and its
//! OpenAPI document (`openapi`), all behind the admin token (`auth`); the web
//! UI (`ui`, embedded files); the merged XMLTV guide (`epg`: `/epg.xml`,
//! `/epg.xml.gz`), `/metrics` and the admin's streams, which want the token
//! too (or, opted in, anyone: `access`); the client outputs, which log in a
//! downstream user (`outputs`; among them the HDHomeRun tuner at the root
//! and its LAN discovery, off unless configured); `/healthz`; the cluster's internal endpoint (`internal`: a
//! peer instance relays a channel this one owns, with the cluster secret). Behind a reverse proxy the
//! client's address comes from the proxy's header (`realip`). Every response
//! body is built from catalog types whose serialization already hides
//! secrets (passwords are [`tunerpool_catalog::Secret`]s and are never
//! serialized; provider URLs are redacted).

pub mod access;
mod access_log;
mod api;
pub mod auth;
pub mod clip;
pub mod cluster_view;
pub mod coord;
mod epg;
pub mod error;
pub mod history;
mod internal;
mod lineup;
mod live;
mod metrics;
mod openapi;
mod outputs;
pub mod pool_status;
mod probes;
pub mod realip;
pub mod relay_catalog;
mod server;
mod stream;
mod ui;
mod users;
mod write;

use std::time::Instant;

use axum::routing::MethodRouter;
use axum::Router;
use tokio_util::sync::CancellationToken;
use tunerpool_catalog::Store;
use tunerpool_ledger::AnyLedger;
use tunerpool_upstream::UpstreamHttp;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use access::{AccessSettings, Gate};
pub use auth::AdminToken;
pub use clip::{ClipSettings, RefusalClip};
pub use outputs::{keep_live_listing_fresh, start_discovery, ClientAuth, Discovery, DiscoverySettings, HdhrSettings};
pub use relay_catalog::StoreCatalog;

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
    /// What the routes outside the admin API let through.
    pub access: AccessSettings,
    /// Client logins: their cache, per-address limits and bounded checks.
    pub logins: std::sync::Arc<ClientAuth>,
    /// The HDHomeRun tuner at the root (`[hdhomerun]`); off by default.
    pub hdhr: HdhrSettings,
    /// Which outputs send TS players the refusal clip instead of a bare
    /// 503/403 (`clip`); off by default.
    pub clip: clip::ClipSettings,
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
        .routes(routes!(api::list_channels, lineup::create))
        .routes(routes!(lineup::one, lineup::update, lineup::remove))
        .routes(routes!(lineup::merge))
        .routes(routes!(lineup::split))
        .routes(routes!(lineup::order, lineup::add_source))
        .routes(routes!(lineup::bulk))
        .routes(routes!(lineup::unassigned))
        .routes(routes!(api::list_groups, lineup::create_group))
        .routes(routes!(lineup::update_group, lineup::remove_group))
        .routes(routes!(lineup::renumber))
        .routes(routes!(lineup::guide_channels))
        .routes(routes!(pool_status::all))
        .routes(routes!(api::list_events))
        .routes(routes!(history::accounts))
        .routes(routes!(history::pool))
        .routes(routes!(history::channels))
        .routes(routes!(history::sources))
        .routes(routes!(history::alerts))
        .routes(routes!(probes::status, probes::request))
        .routes(routes!(probes::profiles))
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

/// The path of the admin API's catch-all (unknown API paths answer 404 in
/// JSON, and only to the admin).
const API_REST: &str = "/api/v1/{*rest}";

/// Every route outside `/api/v1`, with its gate. The router is built from
/// this list and [`route_table`] reads it, so no route is served without a
/// gate the tests check.
fn routes() -> Vec<(&'static str, Gate, MethodRouter<AppState>)> {
    use axum::routing::get;
    let mut v = vec![
        ("/healthz", Gate::Open, get(api::healthz)),
        ("/", Gate::Open, get(ui::index)),
        ("/ui/{file}", Gate::Open, get(ui::file)),
        ("/metrics", Gate::Metrics, get(metrics::metrics)),
        ("/stream/{channel}", Gate::Stream, get(stream::live)),
        ("/stream/{channel}/hls/{file}", Gate::Stream, get(stream::live_segment)),
        ("/movie/{file}", Gate::Stream, get(stream::movie)),
        ("/series/{file}", Gate::Stream, get(stream::episode)),
        ("/epg.xml", Gate::Stream, get(epg::epg_xml)),
        ("/epg.xml.gz", Gate::Stream, get(epg::epg_xml_gz)),
        ("/internal/v1/live/{channel}", Gate::Cluster, get(internal::live)),
        ("/internal/v1/sessions/{id}", Gate::Cluster, axum::routing::delete(internal::stop_session)),
    ];
    v.extend(outputs::routes().into_iter().map(|(path, route)| (path, Gate::User, route)));
    v.extend(outputs::root_tuner_routes().into_iter().map(|(path, route)| (path, Gate::RootTuner, route)));
    v
}

/// Every route the server answers and who may use it: each `/api/v1`
/// operation of the OpenAPI document and the API's catch-all (the admin
/// token), and every other route with its gate.
pub fn route_table() -> Vec<(String, Gate)> {
    let doc = openapi();
    let mut table: Vec<(String, Gate)> = doc.paths.paths.keys().map(|p| (p.clone(), Gate::Admin)).collect();
    table.push((API_REST.to_string(), Gate::Admin));
    table.extend(routes().into_iter().map(|(path, gate, _)| (path.to_string(), gate)));
    table
}

/// The whole application router: every route, in one place.
pub fn router(state: AppState) -> Router {
    app(state, CancellationToken::new())
}

/// The router; `shutdown` ends the live event streams when cancelled.
fn app(state: AppState, shutdown: CancellationToken) -> Router {
    use axum::middleware::from_fn_with_state;
    let (api, _) = api_routes().split_for_parts();
    let http_metrics = state.logins.metrics().clone();
    // Unknown API paths answer in JSON too (and only to the admin).
    let api = api
        .route(
            API_REST,
            axum::routing::any(|method: axum::http::Method, uri: axum::http::Uri| async move {
                error::ApiError::no_route(method.as_str(), uri.path())
            }),
        )
        .layer(from_fn_with_state(state.clone(), auth::require_admin))
        .layer(axum::Extension(live::Shutdown(shutdown)));
    let mut router = Router::new().merge(api);
    for (path, gate, route) in routes() {
        let route = match gate {
            Gate::Stream => route.route_layer(from_fn_with_state(state.clone(), access::stream_gate)),
            Gate::Metrics => route.route_layer(from_fn_with_state(state.clone(), access::metrics_gate)),
            Gate::Cluster => route.route_layer(from_fn_with_state(state.clone(), internal::cluster_gate)),
            // The admin API has its own middleware above; users log in in their handlers.
            Gate::Open | Gate::Admin | Gate::User | Gate::RootTuner => route,
        };
        router = router.route(path, route);
    }
    router
        .layer(axum::Extension(state.logins.clone()))
        .layer(from_fn_with_state(http_metrics.clone(), metrics::track))
        .layer(axum::Extension(http_metrics))
        .layer(axum::middleware::from_fn(access_log::log))
        .layer(from_fn_with_state(state.clone(), realip::real_client))
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
    // The probe scheduler: requests from the API, and sources it picks itself when `probe.auto` is on.
    let prober = relay.clone();
    let probing = stopping.clone();
    tokio::spawn(async move { prober.run_prober(probing).await });
    let cancel = stopping.clone();
    let shutdown = async move {
        shutdown.await;
        relay.stop_all();
        cancel.cancel();
    };
    server::serve(listener, app(state, stopping), shutdown).await
}
