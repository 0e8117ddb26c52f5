//! tunerpool's HTTP surface, the last stage before the viewer.
//!
//! The JSON API over the catalog: reads (`api`: providers, channels,
//! groups, `/healthz`) and writes (`write`: providers and accounts, sync now,
//! Test). Every response body
//! is built from catalog types whose serialization already hides secrets
//! (passwords are [`tunerpool_catalog::Secret`]s and are never serialized;
//! provider URLs are redacted).

mod api;
pub mod error;
mod outputs;
pub mod pool_status;
mod stream;
mod users;
mod write;

use std::time::Instant;

use axum::Router;
use tunerpool_catalog::Store;
use tunerpool_ledger::AnyLedger;
use tunerpool_upstream::UpstreamHttp;

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

/// The whole application router: every route of the API, in one place.
pub fn router(state: AppState) -> Router {
    use axum::routing::{get, patch, post};
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/api/v1/providers", get(api::list_providers).post(write::create_provider))
        .route(
            "/api/v1/providers/{id}",
            get(api::get_provider).patch(write::update_provider).delete(write::delete_provider),
        )
        .route("/api/v1/providers/{id}/sync", post(write::sync_now))
        .route("/api/v1/providers/{id}/details", post(write::refresh_provider_details))
        .route("/api/v1/providers/{id}/accounts", get(write::list_accounts).post(write::create_account))
        .route("/api/v1/accounts/{id}", patch(write::update_account).delete(write::delete_account))
        .route("/api/v1/accounts/{id}/test", post(write::test_saved_account))
        .route("/api/v1/accounts/test", post(write::test_unsaved_account))
        .route("/api/v1/channels", get(api::list_channels))
        .route("/api/v1/groups", get(api::list_groups))
        .route("/api/v1/pool", get(pool_status::all))
        .route("/api/v1/sessions", get(stream::sessions))
        .route("/api/v1/sessions/{id}", axum::routing::delete(stream::stop_session))
        .route("/stream/{channel}", get(stream::live))
        .route("/metrics", get(stream::metrics))
        .route("/movie/{file}", get(stream::movie))
        .route("/series/{file}", get(stream::episode))
        .route("/api/v1/providers/{id}/pool", get(pool_status::one))
        .merge(outputs::routes())
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
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
    let shutdown = async move {
        shutdown.await;
        relay.stop_all();
    };
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
