//! The HTTP server: our own accept loop over hyper's HTTP/1 connections, and
//! the fast path for live MPEG-TS.
//!
//! # Why not `axum::serve`
//!
//! A live viewer is one long response of 32 KiB chunks, about 30 a second at
//! 8 Mbit/s, to each of thousands of clients. Through hyper every chunk is a
//! body frame that travels through the body wrappers of each middleware, is
//! framed with chunked transfer-encoding (a hex size line and a CRLF around
//! it, a three-part `writev`) and queued in hyper's write buffer, and the
//! connection keeps an 8 KiB read buffer and an 8 KiB head buffer for the
//! life of the stream. `axum::serve` exposes none of this; serving the
//! connections ourselves lets a live TS response leave hyper once its
//! request is answered.
//!
//! # The live TS fast path
//!
//! A live TS handler answers with a normal streaming response that also
//! carries a [`LiveBody`] extension holding the viewer's stream. Everything
//! above the handler (the access log, metrics, real-IP, tracing) sees that
//! response as usual. At the top, [`ConnService`] looks for the extension: for
//! a `GET` over HTTP/1.0 or 1.1 it takes the viewer's stream out, keeps the
//! response head, and ends hyper's part of the connection (its service
//! answers with the [`TakenOver`] marker, so hyper writes nothing). The
//! connection task then takes the socket back from hyper (`into_parts`) and
//! writes the response itself ([`pump`]):
//!
//! - a close-delimited body (RFC 9112 §6.3, the last rule): `connection:
//!   close`, no `content-length`, no `transfer-encoding`; the bytes on the
//!   wire are the TS bytes and nothing else, the end of the stream is the end
//!   of the connection. Every HTTP/1.0 and 1.1 client reads this (it is how
//!   HTTP/1.0 streams, and how many IPTV servers answer); keep-alive clients
//!   simply get no keep-alive for this response. The status line carries the
//!   request's version.
//! - every chunk ready when the viewer wakes goes out in one vectored write
//!   ([`ViewerFeed::next_batch`]), with the counters updated once per batch.
//! - hyper's buffers are freed for the rest of the stream: what a viewer
//!   costs is its socket, its task and its place in the ring.
//!
//! Anything else — `HEAD`, HTTP/2, a server built on [`crate::router`]
//! without this loop (tests), the refusal clip, HLS, VOD with `Range` — is
//! served by hyper as before: the extension is only a hint, and the body
//! streams the same chunks (chunked) when nobody takes it over.

use std::future::Future;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Method, Request, Response, StatusCode, Version};
use axum::Router;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tunerpool_relay::relay::{ViewerFeed, ViewerStream};

/// At most this many chunks go out in one write (~512 KiB of 32 KiB chunks):
/// a viewer that fell behind catches up in a few writes, none unbounded.
const MAX_BATCH: usize = 16;

/// A live TS response's stream, as a response extension: the hint that
/// [`ConnService`] may write it itself (see the module doc). Exists so the
/// one value can serve both ways: taken over by the server, or polled by
/// hyper as the response's body ([`LiveBody::body`]) when nobody takes it.
/// Cheap to clone (shared).
#[derive(Clone)]
pub(crate) struct LiveBody {
    inner: Arc<LiveInner>,
}

struct LiveInner {
    stream: Mutex<Option<ViewerStream>>,
    /// Bytes the server wrote itself, for the access log.
    sent: AtomicU64,
}

impl LiveBody {
    pub(crate) fn new(stream: ViewerStream) -> LiveBody {
        LiveBody { inner: Arc::new(LiveInner { stream: Mutex::new(Some(stream)), sent: AtomicU64::new(0) }) }
    }

    /// The response body for hyper: the viewer's chunks, unless the server
    /// took the stream over (then nothing: this body is never polled).
    pub(crate) fn body(&self) -> Body {
        let live = self.clone();
        let stream = futures_util::stream::unfold((live, None::<ViewerStream>), |(live, taken)| async move {
            use futures_util::StreamExt;
            let mut stream = match taken {
                Some(s) => s,
                None => live.inner.stream.lock().take()?,
            };
            let next = stream.next().await?;
            Some((next, (live, Some(stream))))
        });
        Body::from_stream(stream)
    }

    fn take(&self) -> Option<ViewerStream> {
        self.inner.stream.lock().take()
    }

    /// Bytes the server wrote itself for this response (0 when hyper sent the body).
    pub(crate) fn sent(&self) -> u64 {
        self.inner.sent.load(Ordering::Relaxed)
    }
}

/// What the service answers hyper with when it took a live response over:
/// not an error of the request, the sign that the connection is ours now.
#[derive(Debug)]
pub(crate) struct TakenOver;

impl std::fmt::Display for TakenOver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("live stream taken over by the server")
    }
}

impl std::error::Error for TakenOver {}

/// A live response the connection task writes itself, once hyper let go.
struct Takeover {
    head: Vec<u8>,
    feed: ViewerFeed,
    live: LiveBody,
    /// The response's body (the middleware's wrappers around [`LiveBody::body`]), kept unpolled until the stream
    /// ends, so that the access log writes its line when the viewer leaves, not when the stream starts.
    body: Body,
}

/// The router as one connection's hyper service: the client's address as
/// [`ConnectInfo`] (which `realip` may replace), and the live TS takeover.
#[derive(Clone)]
struct ConnService {
    router: Router,
    peer: SocketAddr,
    taken: Arc<Mutex<Option<Takeover>>>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Body>;
    type Error = TakenOver;
    type Future = BoxFuture<Result<Response<Body>, TakenOver>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let version = req.version();
        let eligible = req.method() == Method::GET && matches!(version, Version::HTTP_10 | Version::HTTP_11);
        let mut router = self.router.clone();
        let taken = self.taken.clone();
        Box::pin(async move {
            let resp = match tower_service::Service::call(&mut router, req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            };
            if !eligible || resp.status() != StatusCode::OK {
                return Ok(resp);
            }
            let Some(live) = resp.extensions().get::<LiveBody>().cloned() else {
                return Ok(resp);
            };
            let Some(feed) = live.take().and_then(ViewerStream::into_feed) else {
                return Ok(resp);
            };
            let head = close_delimited_head(version, resp.status(), resp.headers());
            *taken.lock() = Some(Takeover { head, feed, live, body: resp.into_body() });
            Err(TakenOver)
        })
    }
}

/// The head of a close-delimited response: the status line in the request's
/// version, the response's headers but those that frame a body, then
/// `connection: close` and the date.
fn close_delimited_head(version: Version, status: StatusCode, headers: &HeaderMap) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(if version == Version::HTTP_10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
    head.extend_from_slice(status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(status.canonical_reason().unwrap_or("OK").as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if [header::CONTENT_LENGTH, header::TRANSFER_ENCODING, header::CONNECTION, header::DATE].contains(name)
            || name.as_str() == "keep-alive"
        {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"connection: close\r\ndate: ");
    head.extend_from_slice(httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
    head.extend_from_slice(b"\r\n\r\n");
    head
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops
/// accepting, lets every connection finish its request (keep-alive ends) and
/// waits for all of them, live streams included (they end when their
/// sessions stop).
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Closed (the sender dropped) when shutdown starts; every connection watches it.
    let (signal_tx, signal_rx) = tokio::sync::watch::channel(());
    tokio::spawn(async move {
        shutdown.await;
        drop(signal_rx);
    });
    // Every connection task holds a receiver; all dropped = all done.
    let (close_tx, close_rx) = tokio::sync::watch::channel(());
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            _ = signal_tx.closed() => break,
        };
        let (signal, close) = (signal_tx.clone(), close_rx.clone());
        let router = router.clone();
        tokio::spawn(async move {
            connection(tcp, peer, router, signal).await;
            drop(close);
        });
    }
    drop(close_rx);
    drop(listener);
    close_tx.closed().await;
    Ok(())
}

/// An accept error: a client that went away is nothing; anything else (out
/// of file descriptors, most likely) is logged and waited out for a second,
/// as hyper's own server did.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset) {
        return;
    }
    tracing::error!("accept error: {e}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// One connection: hyper serves its requests until it ends, or until a live
/// TS response is taken over, which this task then writes itself.
async fn connection(tcp: TcpStream, peer: SocketAddr, router: Router, signal: tokio::sync::watch::Sender<()>) {
    let taken = Arc::new(Mutex::new(None));
    let service = ConnService { router, peer, taken: taken.clone() };
    // Boxed: hyper's connection state is freed before a taken-over stream runs for hours in this task.
    let mut conn = Box::new(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), service));
    let mut shutting_down = false;
    let served = loop {
        tokio::select! {
            served = &mut *conn => break served,
            _ = signal.closed(), if !shutting_down => {
                shutting_down = true;
                Pin::new(&mut *conn).graceful_shutdown();
            }
        }
    };
    drop(signal);
    let takeover = taken.lock().take();
    match (served, takeover) {
        (Err(_), Some(takeover)) => {
            let io = conn.into_parts().io.into_inner();
            pump(io, takeover).await;
        }
        (Err(e), None) => tracing::trace!("connection from {peer} ended: {e}"),
        (Ok(()), _) => {}
    }
}

/// Writes a taken-over live response: its head, then the viewer's chunks as
/// they come, every chunk ready at a wake-up in one write, until the stream
/// ends or the client goes away (a write fails, or the client closes its
/// side); then closes the connection.
async fn pump(tcp: TcpStream, takeover: Takeover) {
    let Takeover { head, mut feed, live, body } = takeover;
    let mut tcp = tcp;
    // The kernel's send buffer keeps its autotuning (bounded by the system's tcp_wmem): it absorbs a client's
    // hiccups, where a fixed 256 KiB (~0.5 s of 8 Mbit/s) made viewers of a busy load generator fall out of the
    // ring and jump (BENCHMARKS.md, "Paced wake-ups"). A client that stops reading is dropped after
    // `relay.viewer_stall` instead (see `write_all_vectored`).
    let mut sent = 0u64;
    let head_sent = tcp.write_all(&head).await.is_ok();
    drop(head);
    if head_sent {
        let (mut rd, mut wr) = tcp.split();
        // Resolves when the client closes its side (or the socket fails): the viewer left, even if no chunk
        // comes to fail a write (a stalled upstream). Whatever else the client sends is read and ignored.
        let gone = async move {
            let mut scratch = [0u8; 64];
            while let Ok(1..) = rd.read(&mut scratch).await {}
        };
        tokio::pin!(gone);
        let mut batch: Vec<Bytes> = Vec::with_capacity(MAX_BATCH);
        loop {
            batch.clear();
            let n = tokio::select! {
                biased;
                n = feed.next_batch(&mut batch, MAX_BATCH) => n,
                _ = &mut gone => 0,
            };
            if n == 0 {
                break;
            }
            match write_all_vectored(&mut wr, &batch, feed.stall_limit()).await {
                Ok(()) => {}
                Err(e) => {
                    if e.kind() == std::io::ErrorKind::TimedOut {
                        feed.drop_stalled();
                    }
                    break;
                }
            }
            sent += n;
        }
        let _ = wr.shutdown().await;
    }
    live.inner.sent.store(sent, Ordering::Relaxed);
    drop(feed);
    drop(body);
}

/// Writes every byte of `chunks`, as few `writev`s as the socket takes; a
/// `TimedOut` error when the socket took no byte for `stall`. The timer is
/// armed only for a write that has to wait, not for each chunk.
async fn write_all_vectored<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    chunks: &[Bytes],
    stall: Duration,
) -> std::io::Result<()> {
    let (mut first, mut offset) = (0, 0);
    while first < chunks.len() {
        let mut slices = [IoSlice::new(&[]); MAX_BATCH];
        let mut n = 0;
        for (i, c) in chunks[first..].iter().take(MAX_BATCH).enumerate() {
            slices[n] = IoSlice::new(if i == 0 { &c[offset..] } else { c });
            n += 1;
        }
        let write = w.write_vectored(&slices[..n]);
        tokio::pin!(write);
        let mut written = match futures_util::FutureExt::now_or_never(&mut write) {
            Some(r) => r?,
            None => tokio::time::timeout(stall, write)
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??,
        };
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while first < chunks.len() && written > 0 {
            let left = chunks[first].len() - offset;
            if written >= left {
                written -= left;
                first += 1;
                offset = 0;
            } else {
                offset += written;
                written = 0;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `max` bytes per call, to exercise partial writes.
    struct Trickle {
        out: Vec<u8>,
        max: usize,
    }

    impl tokio::io::AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let n = buf.len().min(self.max);
            self.out.extend_from_slice(&buf[..n]);
            std::task::Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.max - n);
                self.out.extend_from_slice(&b[..take]);
                n += take;
                if n == self.max {
                    break;
                }
            }
            std::task::Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn vectored_writes_send_every_byte_in_order_whatever_the_partial_writes() {
        let chunks: Vec<Bytes> =
            (0..40u8).map(|i| Bytes::from(vec![i; 1 + (i as usize * 37) % 300])).collect::<Vec<_>>();
        let want: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        for max in [1, 7, 256, 1000, 1 << 20] {
            let mut w = Trickle { out: Vec::new(), max };
            write_all_vectored(&mut w, &chunks, Duration::from_secs(1)).await.unwrap();
            assert_eq!(w.out, want, "max {max}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_the_client_takes_nothing_of_for_the_stall_limit_times_out() {
        use tokio::io::AsyncReadExt;
        let chunks: Vec<Bytes> = (0..8u8).map(|i| Bytes::from(vec![i; 4096])).collect();
        let stall = Duration::from_secs(5);
        // A client that never reads: the pipe fills, then no byte is taken for the stall limit.
        let (mut w, _r) = tokio::io::duplex(1024);
        let t0 = tokio::time::Instant::now();
        let err = write_all_vectored(&mut w, &chunks, stall).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(t0.elapsed(), stall);
        // A slow client (1 KiB every 2 s) takes a byte well within the limit each time: never timed out, however
        // long the whole batch takes.
        let (mut w, mut r) = tokio::io::duplex(1024);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => return got,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        });
        write_all_vectored(&mut w, &chunks, stall).await.unwrap();
        drop(w);
        let got = reader.await.unwrap();
        assert_eq!(got, chunks.iter().flat_map(|c| c.iter().copied()).collect::<Vec<_>>());
    }

    #[test]
    fn the_head_is_close_delimited_in_the_request_version() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "video/mp2t".parse().unwrap());
        headers.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        headers.insert(header::CONTENT_LENGTH, "5".parse().unwrap());
        headers.insert(header::CONNECTION, "keep-alive".parse().unwrap());
        headers.insert("x-tunerpool-session", "7".parse().unwrap());
        let head = String::from_utf8(close_delimited_head(Version::HTTP_11, StatusCode::OK, &headers)).unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("content-type: video/mp2t\r\n") && head.contains("x-tunerpool-session: 7\r\n"));
        assert!(head.contains("connection: close\r\n") && head.contains("date: "), "{head}");
        assert!(!head.contains("chunked") && !head.contains("content-length") && !head.contains("keep-alive"));
        assert!(head.ends_with("\r\n\r\n") && !head[..head.len() - 4].contains("\r\n\r\n"), "{head}");
        let head = String::from_utf8(close_delimited_head(Version::HTTP_10, StatusCode::OK, &headers)).unwrap();
        assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
    }
}
