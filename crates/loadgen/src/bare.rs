//! A bare broadcast server: the floor tunerpool's relay is measured against.
//!
//! Exists because absolute figures from a shared 2-core machine move from one session to the
//! next (see BENCHMARKS.md), while the ratio of two servers measured in the same run against the
//! same simulated provider and the same load does not. This server does the least a live relay
//! must do and nothing else, so `tunerpool ÷ bare` says how much the relay's features and
//! framing cost over moving the bytes at all (issue 16).
//!
//! What it does, per channel:
//!
//! * the first viewer of a channel opens ONE upstream HTTP connection
//!   (`--upstream-template` with `{channel}` replaced), like a tunerpool session;
//! * the upstream bytes are cut into chunks of [`CHUNK_BYTES`] (188 × 174 = 32 712 bytes, the
//!   relay's default `RelaySettings::chunk_bytes` in `crates/relay/src/settings.rs`: 32 KiB
//!   rounded down to whole TS packets);
//! * each chunk (a `bytes::Bytes`, never copied again) goes through one
//!   `tokio::sync::broadcast` channel to every viewer of the channel;
//! * each viewer is one task writing every chunk to its socket with one `write_all`.
//!
//! What it does not do, on purpose: no login, no lease or limit, no keyframe or PAT/PMT logic
//! (chunks are fixed-size slices of the upstream byte stream, so they stay packet-aligned as long
//! as the upstream is; the relay also cuts at keyframes and after 50 ms, i.e. a few more, smaller
//! chunks), no reconnect or failover (a failed upstream ends its viewers), no linger (the upstream
//! closes when its last viewer is gone), no metrics per chunk.
//!
//! HTTP: a plain `tokio::net::TcpListener`, no hyper. The request head is read (up to 8 KiB),
//! its path's last segment, without `.ts`, is the channel id (so `/live/u/p/{channel}.ts`,
//! `/stream/{channel}` and `/{channel}` all work, with `loadgen --url-template` unchanged but for
//! the address), and the answer is a minimal HTTP/1.1 `200` with `Connection: close` and a
//! close-delimited body: the raw chunks, no chunked framing. That is the least any HTTP server
//! can send; tunerpool's axum/hyper answer is chunked (a hex size line around every chunk).
//! Sockets keep their defaults (no `TCP_NODELAY`), as tunerpool's listener does.
//!
//! A joining viewer gets the channel's latest chunk at once and then every later one (tunerpool
//! likewise starts a joiner from its buffer, at the newest keyframe), so its time to first byte
//! does not include waiting for the next chunk.
//!
//! Slow viewers: the broadcast channel holds `buffer_chunks` chunks (default 16, about 0.5 s at
//! 8 Mbit/s). A viewer that falls further behind gets `RecvError::Lagged` and skips ahead to the
//! oldest chunk still held (its TS then has a continuity gap); it is never dropped for it. Such
//! skips are counted and shown at `GET /_stats`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::{self, error::RecvError};

/// The relay's chunk size: `RelaySettings::chunk_bytes` (crates/relay/src/settings.rs), 32 KiB
/// rounded down to a multiple of the 188-byte TS packet.
pub const CHUNK_BYTES: usize = 188 * 174;
// 32 KiB in whole packets: the largest multiple of 188 that fits.
const _: () = assert!(CHUNK_BYTES.is_multiple_of(188) && CHUNK_BYTES <= 32 * 1024 && CHUNK_BYTES + 188 > 32 * 1024);

/// Default capacity of a channel's broadcast, in chunks (~0.5 s at 8 Mbit/s).
pub const BUFFER_CHUNKS: usize = 16;

/// The longest the request head may take to arrive.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// No upstream bytes for this long ends the channel (tunerpool's default `stall_timeout`).
const STALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Connecting to the upstream (tunerpool's default `open_timeout`).
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// The response head of every stream.
const STREAM_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nConnection: close\r\n\r\n";

/// How the server is set up.
#[derive(Clone, Debug)]
pub struct Config {
    /// Upstream URL with `{channel}` in it, e.g. `http://127.0.0.1:19577/live/u/p/{channel}.ts`.
    pub upstream_template: String,
    /// Chunk size in bytes (default [`CHUNK_BYTES`]).
    pub chunk_bytes: usize,
    /// Capacity of each channel's broadcast in chunks (default [`BUFFER_CHUNKS`]).
    pub buffer_chunks: usize,
}

impl Config {
    /// The defaults with this upstream template.
    pub fn new(upstream_template: impl Into<String>) -> Config {
        Config { upstream_template: upstream_template.into(), chunk_bytes: CHUNK_BYTES, buffer_chunks: BUFFER_CHUNKS }
    }
}

/// What the server has done so far (`GET /_stats`).
#[derive(Debug, Default)]
pub struct Stats {
    /// Viewers streaming now.
    pub viewers_now: AtomicU64,
    /// Viewers ever started.
    pub viewers_total: AtomicU64,
    /// Upstream connections opened.
    pub upstreams_opened: AtomicU64,
    /// Times a viewer fell out of the broadcast buffer.
    pub lagged_events: AtomicU64,
    /// Chunks skipped by those viewers.
    pub chunks_skipped: AtomicU64,
}

/// One live channel: its broadcast and its latest chunk.
struct Channel {
    tx: broadcast::Sender<Bytes>,
    /// The latest chunk sent, for a joining viewer. Set together with the send under this lock,
    /// and read together with `subscribe`, so a joiner gets it and then exactly what follows.
    latest: Mutex<Option<Bytes>>,
}

/// The server: its configuration, the live channels and the stats.
pub struct Server {
    config: Config,
    http: reqwest::Client,
    /// Live channels by id. A receiver is only ever added under this lock, so the pump can
    /// decide "no viewers left" under it without racing a joiner.
    channels: Mutex<HashMap<String, Arc<Channel>>>,
    stats: Stats,
}

impl Server {
    /// A server with this configuration.
    pub fn new(config: Config) -> anyhow::Result<Arc<Server>> {
        anyhow::ensure!(config.upstream_template.contains("{channel}"), "the upstream template has no {{channel}}");
        anyhow::ensure!(config.chunk_bytes > 0 && config.buffer_chunks > 0, "chunk size and buffer must be > 0");
        let http = reqwest::Client::builder()
            .http1_only()
            .no_proxy()
            .no_gzip()
            .connect_timeout(OPEN_TIMEOUT)
            .read_timeout(STALL_TIMEOUT)
            .build()?;
        Ok(Arc::new(Server { config, http, channels: Mutex::new(HashMap::new()), stats: Stats::default() }))
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Accept viewers forever (until the listener fails).
    pub async fn run(self: Arc<Self>, listener: TcpListener) -> io::Result<()> {
        loop {
            let (sock, _) = match listener.accept().await {
                Ok(s) => s,
                // Out of file descriptors and the like: say so, breathe, go on.
                Err(e) => {
                    eprintln!("barecast: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            tokio::spawn(self.clone().viewer(sock));
        }
    }

    /// One HTTP connection: read the request, answer it.
    async fn viewer(self: Arc<Self>, mut sock: TcpStream) {
        let path = match tokio::time::timeout(REQUEST_TIMEOUT, read_request_path(&mut sock)).await {
            Ok(Ok(p)) => p,
            Ok(Err(status)) => return respond(&mut sock, status, "").await,
            Err(_) => return,
        };
        if path == "/_stats" {
            let body = self.stats_text();
            return respond(&mut sock, "200 OK", &body).await;
        }
        let Some(id) = channel_id(&path) else { return respond(&mut sock, "404 Not Found", "").await };

        let (first, mut rx) = self.join(id);
        self.stats.viewers_total.fetch_add(1, Ordering::Relaxed);
        self.stats.viewers_now.fetch_add(1, Ordering::Relaxed);
        let _ = self.stream(&mut sock, first, &mut rx).await;
        self.stats.viewers_now.fetch_sub(1, Ordering::Relaxed);
    }

    /// Write the response head and every chunk until the channel ends or the viewer leaves.
    async fn stream(
        &self,
        sock: &mut TcpStream,
        first: Option<Bytes>,
        rx: &mut broadcast::Receiver<Bytes>,
    ) -> io::Result<()> {
        sock.write_all(STREAM_HEAD).await?;
        if let Some(chunk) = first {
            sock.write_all(&chunk).await?;
        }
        loop {
            match rx.recv().await {
                Ok(chunk) => sock.write_all(&chunk).await?,
                Err(RecvError::Lagged(n)) => {
                    self.stats.lagged_events.fetch_add(1, Ordering::Relaxed);
                    self.stats.chunks_skipped.fetch_add(n, Ordering::Relaxed);
                }
                Err(RecvError::Closed) => return Ok(()),
            }
        }
    }

    /// Subscribe to a channel, starting it if nobody watches it: the latest chunk, if any, and
    /// the receiver of every later one.
    fn join(self: &Arc<Self>, id: &str) -> (Option<Bytes>, broadcast::Receiver<Bytes>) {
        let mut channels = self.channels.lock().expect("channels lock");
        if let Some(ch) = channels.get(id) {
            let latest = ch.latest.lock().expect("latest lock");
            return (latest.clone(), ch.tx.subscribe());
        }
        let (tx, rx) = broadcast::channel(self.config.buffer_chunks);
        let ch = Arc::new(Channel { tx, latest: Mutex::new(None) });
        channels.insert(id.to_owned(), ch.clone());
        tokio::spawn(self.clone().pump(id.to_owned(), ch));
        (None, rx)
    }

    /// The channel's one upstream connection, cut into chunks and broadcast; then the channel
    /// is removed (its viewers see the end once they have read what is buffered).
    async fn pump(self: Arc<Self>, id: String, ch: Arc<Channel>) {
        match self.pump_upstream(&id, &ch).await {
            Ok(()) => {}
            Err(e) => eprintln!("barecast: channel {id}: {e:#}"),
        }
        let mut channels = self.channels.lock().expect("channels lock");
        if channels.get(&id).is_some_and(|c| Arc::ptr_eq(c, &ch)) {
            channels.remove(&id);
        }
    }

    /// Read the upstream until it ends, fails, or nobody watches; `Ok` for the last.
    async fn pump_upstream(&self, id: &str, ch: &Channel) -> anyhow::Result<()> {
        let url = self.config.upstream_template.replace("{channel}", id);
        self.stats.upstreams_opened.fetch_add(1, Ordering::Relaxed);
        let mut resp = self.http.get(&url).send().await?;
        anyhow::ensure!(resp.status().is_success(), "upstream answered {}", resp.status());
        let size = self.config.chunk_bytes;
        let mut pending = BytesMut::with_capacity(size * 2);
        while let Some(data) = resp.chunk().await? {
            pending.extend_from_slice(&data);
            while pending.len() >= size {
                let chunk = pending.split_to(size).freeze();
                if !self.send(id, ch, chunk) {
                    return Ok(());
                }
            }
        }
        anyhow::bail!("upstream ended")
    }

    /// Broadcast one chunk; `false` once nobody watches (the channel is then removed here, under
    /// the lock joiners take, so none can subscribe to a channel that is going away).
    fn send(&self, id: &str, ch: &Channel, chunk: Bytes) -> bool {
        let sent = {
            let mut latest = ch.latest.lock().expect("latest lock");
            *latest = Some(chunk.clone());
            ch.tx.send(chunk).is_ok()
        };
        if sent {
            return true;
        }
        let mut channels = self.channels.lock().expect("channels lock");
        if ch.tx.receiver_count() > 0 {
            // A viewer joined between the send and the lock: it got this chunk as `latest`.
            return true;
        }
        channels.remove(id);
        false
    }

    /// The counters as `name value` lines.
    fn stats_text(&self) -> String {
        let s = &self.stats;
        let channels = self.channels.lock().expect("channels lock").len();
        let mut out = String::new();
        for (name, v) in [
            ("viewers_now", s.viewers_now.load(Ordering::Relaxed)),
            ("viewers_total", s.viewers_total.load(Ordering::Relaxed)),
            ("channels_now", channels as u64),
            ("upstreams_opened", s.upstreams_opened.load(Ordering::Relaxed)),
            ("lagged_events", s.lagged_events.load(Ordering::Relaxed)),
            ("chunks_skipped", s.chunks_skipped.load(Ordering::Relaxed)),
        ] {
            let _ = writeln!(out, "{name} {v}");
        }
        out
    }
}

/// Read the request head and return its path (query removed); `Err` is the status to answer.
async fn read_request_path(sock: &mut TcpStream) -> Result<String, &'static str> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() >= MAX_HEAD {
            return Err("431 Request Header Fields Too Large");
        }
        let n = sock.read(&mut buf).await.map_err(|_| "400 Bad Request")?;
        if n == 0 {
            return Err("400 Bad Request");
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = std::str::from_utf8(line).map_err(|_| "400 Bad Request")?;
    let mut parts = line.split(' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("GET"), Some(target), Some(v)) if v.starts_with("HTTP/1.") => {
            Ok(target.split('?').next().unwrap_or_default().to_owned())
        }
        (Some(_), Some(_), Some(_)) => Err("405 Method Not Allowed"),
        _ => Err("400 Bad Request"),
    }
}

/// The channel id of a stream path: its last segment without `.ts`, if it is a plain id
/// (ASCII letters, digits, `-`, `_`).
pub fn channel_id(path: &str) -> Option<&str> {
    let last = path.rsplit('/').next()?;
    let id = last.strip_suffix(".ts").unwrap_or(last);
    let plain = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plain.then_some(id)
}

/// A short complete answer (errors, stats).
async fn respond(sock: &mut TcpStream, status: &str, body: &str) {
    let msg = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = sock.write_all(msg.as_bytes()).await;
    let _ = sock.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_ids_come_from_the_last_segment() {
        assert_eq!(channel_id("/live/viewer/viewer/17.ts"), Some("17"));
        assert_eq!(channel_id("/stream/abc-1_2"), Some("abc-1_2"));
        assert_eq!(channel_id("/5"), Some("5"));
        assert_eq!(channel_id("/"), None);
        assert_eq!(channel_id("/live/x/.ts"), None);
        assert_eq!(channel_id("/live/a%20b.ts"), None);
    }
}
