//! `GET /api/v1/live`: Server-Sent Events for the web UI, so the dashboard
//! and the sessions page update without polling or reloading.
//!
//! The pool status and the session list are taken every second and sent
//! (`event: pool`, `event: sessions`, the same JSON as `GET /api/v1/pool` and
//! `GET /api/v1/sessions`) only when they changed; the first of each is sent
//! at once. A comment every 15 s keeps proxies from closing an idle stream.
//! The stream ends when the client goes away or the server shuts down.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Extension;
use futures_util::Stream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::AppState;

/// How often the state is checked for changes.
const TICK: Duration = Duration::from_secs(1);

/// Cancelled when the server starts shutting down, so that open event
/// streams end and graceful shutdown can finish.
#[derive(Clone, Default)]
pub(crate) struct Shutdown(pub CancellationToken);

/// Live updates (Server-Sent Events): `pool` and `sessions` events carrying the same JSON as
/// `GET /api/v1/pool` and `GET /api/v1/sessions`, sent when they change (checked every second), and
/// `problem` (`{"error": ...}`) when the pool cannot be read.
#[utoipa::path(get, path = "/api/v1/live", tag = "meta",
    responses((status = 200, description = "an endless text/event-stream", content_type = "text/event-stream")))]
pub(crate) async fn live(
    State(st): State<AppState>,
    Extension(shutdown): Extension<Shutdown>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (tx, rx) = mpsc::channel::<Event>(4);
    tokio::spawn(watch(st, tx, shutdown.0));
    let events = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Sends an event for each part whose JSON changed, every [`TICK`], until the
/// client is gone or the server shuts down.
async fn watch(st: AppState, tx: mpsc::Sender<Event>, shutdown: CancellationToken) {
    let mut last_pool = String::new();
    let mut last_sessions = String::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
            _ = tx.closed() => return,
        }
        let (name, pool) = match crate::pool_status::snapshot(&st).await {
            Ok(p) => ("pool", serde_json::to_string(&p)),
            Err(e) => ("problem", serde_json::to_string(&serde_json::json!({ "error": e.message }))),
        };
        let sessions = serde_json::to_string(&crate::cluster_view::sessions(&st).await);
        for (name, json, last) in [(name, pool, &mut last_pool), ("sessions", sessions, &mut last_sessions)] {
            let Ok(json) = json else { continue };
            if json != *last {
                if tx.send(Event::default().event(name).data(&json)).await.is_err() {
                    return;
                }
                *last = json;
            }
        }
    }
}
