//! tunerpool's HTTP surface, the last stage before the viewer.
//!
//! For now a read-only JSON API over the catalog (`/api/v1/providers`,
//! `/api/v1/channels`, `/api/v1/groups`) and `/healthz`. Every response body
//! is built from catalog types whose serialization already hides secrets
//! (passwords are [`tunerpool_catalog::Secret`]s and are never serialized;
//! provider URLs are redacted).

pub mod api;
pub mod error;

use std::time::Instant;

use axum::Router;
use tunerpool_catalog::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub started: Instant,
}

/// The whole application router.
pub fn router(state: AppState) -> Router {
    Router::new().merge(api::routes()).layer(tower_http::trace::TraceLayer::new_for_http()).with_state(state)
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}
