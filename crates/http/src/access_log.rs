//! The access log: one `info` line per request, written when its response
//! body ends (or the client goes away), so a stream's line carries the bytes
//! it sent and how long it ran.
//!
//! The line names the matched route — never the raw URI, which carries
//! users' passwords (`/live/{u}/{p}/…`, `get.php?password=…`) — the status,
//! bytes, duration, the client's address (after trusted-proxy handling) and
//! the user the request logged in as, if any.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};

tokio::task_local! {
    /// Who the request being handled logged in as; set by the login code,
    /// read when the handler returns.
    static WHO: RefCell<Option<String>>;
}

/// Records that the request being handled is `who` (a username, `admin`,
/// `anonymous`). Outside a request (tests calling handlers directly) it does
/// nothing.
pub(crate) fn record_user(who: &str) {
    let _ = WHO.try_with(|w| *w.borrow_mut() = Some(who.to_string()));
}

/// Middleware over every route (inside the real-client one).
pub(crate) async fn log(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let line = Line {
        method: req.method().clone(),
        route: req.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_string(),
        client: req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()),
        user: None,
        status: 0,
        bytes: 0,
        started,
    };
    let (resp, who) = WHO
        .scope(RefCell::new(None), async move {
            let resp = next.run(req).await;
            (resp, WHO.with(|w| w.borrow_mut().take()))
        })
        .await;
    let line = Line { user: who, status: resp.status().as_u16(), ..line };
    // A live stream the server may write itself: its bytes are counted there.
    let live = resp.extensions().get::<crate::server::LiveBody>().cloned();
    resp.map(|body| Body::new(Logged { inner: body, line: Some(line), live }))
}

/// What the line says; written once, when the body is done or dropped.
struct Line {
    method: axum::http::Method,
    route: String,
    client: Option<String>,
    user: Option<String>,
    status: u16,
    bytes: u64,
    started: Instant,
}

impl Line {
    fn write(&self, complete: bool) {
        tracing::info!(
            target: "tunerpool::access",
            method = %self.method,
            route = %self.route,
            status = self.status,
            bytes = self.bytes,
            ms = self.started.elapsed().as_millis() as u64,
            client = self.client.as_deref().unwrap_or("-"),
            user = self.user.as_deref().unwrap_or("-"),
            complete,
            "request"
        );
    }
}

/// The response body, counting what goes out.
struct Logged {
    inner: Body,
    line: Option<Line>,
    /// The live stream of this response, when the server's fast path may send it instead of this body.
    live: Option<crate::server::LiveBody>,
}

impl http_body::Body for Logged {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(line)) = (frame.data_ref(), self.line.as_mut()) {
                    line.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => {
                if let Some(line) = self.line.take() {
                    line.write(true);
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        // Dropped before its end: the client went away (a viewer zapping),
        // or the body was empty and never polled to its end.
        if let Some(mut line) = self.line.take() {
            line.bytes += self.live.as_ref().map_or(0, crate::server::LiveBody::sent);
            let complete = http_body::Body::is_end_stream(&self.inner);
            line.write(complete);
        }
    }
}
