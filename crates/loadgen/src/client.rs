//! One viewer: wait for its start, request its channel, read the body until its end, and
//! measure. Everything it measures stays in its own [`ClientRecord`], returned when it ends and
//! merged with the others only then; during the run clients share nothing per chunk (the only
//! shared state is a handful of atomic counters touched at start and end, for progress lines).

use std::error::Error as StdError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::ts::{TsChecker, TsStats};

/// `EMFILE`: this process is out of file descriptors.
const EMFILE: i32 = 24;
/// The failure reason for `EMFILE` (also looked for by the report's hints).
pub const REASON_EMFILE: &str = "too many open files (EMFILE)";

/// What every client shares: the HTTP client (one connection pool) and settings.
///
/// Exists so a client task gets one `Arc` instead of many clones.
#[derive(Debug)]
pub struct Shared {
    /// One client for all viewers: HTTP/1.1 only, no proxy, no decompression.
    pub http: reqwest::Client,
    /// Longest wait for headers (after the connect timeout) or for the next body bytes.
    pub read_timeout: Duration,
    /// Connect timeout, also configured in `http`; used to bound the wait for headers.
    pub connect_timeout: Duration,
    /// Progress counters (touched at client start/stop only).
    pub progress: Progress,
    /// Which HTTP client the viewers use.
    pub client: ClientKind,
}

/// Which HTTP client reads the streams (`--client`).
///
/// Exists because at thousands of viewers on the machine that also runs the servers, the load
/// generator's own cost decides whether the rate is reached at all (BENCHMARKS.md, "2000 and
/// 3000 viewers: the load generator was the limit"): the default goes through reqwest and hyper like a typical
/// Rust client, `raw` reads the socket itself into one scratch buffer per worker thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ClientKind {
    /// reqwest (hyper): redirects, `https`, chunked bodies; a buffer per connection.
    #[default]
    Reqwest,
    /// A plain TCP socket, a minimal HTTP/1.1 `GET` and the response head parsed with
    /// `httparse`; close-delimited or sized bodies only (`http://` only, no redirects); the
    /// body is read into one buffer per worker thread, checked and dropped.
    Raw,
}

/// Counts for the progress lines and the report's `peak_streaming`.
///
/// Exists so the operator sees a long run advance; updated a few times per client, never per
/// chunk.
#[derive(Debug, Default)]
pub struct Progress {
    /// Clients that reached their start time.
    pub started: AtomicU64,
    /// Clients that have a 2xx response and are reading right now.
    pub streaming: AtomicU64,
    /// Most clients streaming at once.
    pub peak_streaming: AtomicU64,
    /// Clients finished (any outcome).
    pub finished: AtomicU64,
    /// Finished clients that failed.
    pub failed: AtomicU64,
}

/// What one client is to do.
///
/// Exists to keep the run loop's spawning readable.
#[derive(Debug)]
pub struct Job {
    /// Client number (0-based, in start order).
    pub id: usize,
    /// Channel id.
    pub channel: String,
    /// The channel's stream URL.
    pub url: String,
    /// Planned start, relative to the run start.
    pub offset: Duration,
    /// When to start.
    pub start_at: Instant,
    /// When to stop reading (`start_at + duration`).
    pub end_at: Instant,
    /// Connection cap for the URL's host, if `--max-connections-per-host`.
    pub limiter: Option<Arc<Semaphore>>,
}

/// Everything measured for one client; one row of `--per-client`.
///
/// Exists as the unit of measurement: built by its own task without sharing, merged at the end.
#[derive(Debug, Clone, Serialize)]
pub struct ClientRecord {
    /// Client number (0-based, in start order).
    pub id: usize,
    /// Channel id.
    pub channel: String,
    /// Planned start after the run start, ms.
    pub start_offset_ms: u64,
    /// HTTP status (after redirects), if a response arrived.
    pub status: Option<u16>,
    /// 2xx, at least one body byte, and read until its end without EOF or error.
    pub ok: bool,
    /// Why it failed: a short key that groups equal failures (`status 403`, `eof`,
    /// `read timeout`, `connect error: …`). `None` when ok.
    pub reason: Option<String>,
    /// The full error text, if an error ended it (no URL in it).
    pub error: Option<String>,
    /// It had a 2xx stream that ended (EOF or error) before the client's end.
    pub ended_early: bool,
    /// Request start to response headers, µs.
    pub headers_us: Option<u64>,
    /// Request start to the first body byte, µs.
    pub ttfb_us: Option<u64>,
    /// Body bytes received.
    pub bytes: u64,
    /// First body byte to the moment it stopped reading, ms.
    pub reading_ms: Option<f64>,
    /// `bytes * 8 / reading time`, bits/s.
    pub rate_bps: Option<u64>,
    /// Longest time without body bytes after the first one, including the time from the last
    /// read until it stopped, ms.
    pub longest_gap_ms: Option<f64>,
    /// MPEG-TS integrity of what it received.
    pub ts: TsStats,
}

impl ClientRecord {
    fn new(job: &Job) -> Self {
        ClientRecord {
            id: job.id,
            channel: job.channel.clone(),
            start_offset_ms: job.offset.as_millis() as u64,
            status: None,
            ok: false,
            reason: None,
            error: None,
            ended_early: false,
            headers_us: None,
            ttfb_us: None,
            bytes: 0,
            reading_ms: None,
            rate_bps: None,
            longest_gap_ms: None,
            ts: TsStats::default(),
        }
    }

    pub(crate) fn fail(&mut self, reason: impl Into<String>, error: Option<String>) {
        self.ok = false;
        self.reason = Some(reason.into());
        self.error = error;
    }

    /// No response head by `deadline`: the client's own end, or the header timeout.
    pub(crate) fn fail_no_head(&mut self, deadline: Instant, job: &Job) {
        let reason = if deadline == job.end_at { "no response headers before its end" } else { "header timeout" };
        self.fail(reason, None);
    }
}

/// How a read loop ended.
pub(crate) enum End {
    /// The client's time was up.
    Completed,
    /// The server ended the body.
    Eof,
    /// No bytes for `read_timeout`.
    ReadTimeout,
    /// The body failed: the grouping key and the full text.
    Error { reason: String, error: String },
}

pub(crate) fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

fn millis_f(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// What every viewer says it is.
pub(crate) const USER_AGENT: &str = concat!("tunerpool-loadgen/", env!("CARGO_PKG_VERSION"));

/// The HTTP client every viewer shares.
///
/// HTTP/1.1 only (one TCP connection per viewer, like players), no proxy from the environment
/// (it would measure the proxy), no transparent decompression (bytes are counted as sent), and
/// an idle pool as large as the viewer count.
pub fn http_client(connect_timeout: Duration, clients: usize) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .http1_only()
        .no_proxy()
        .no_gzip()
        .tcp_nodelay(true)
        .connect_timeout(connect_timeout)
        .pool_max_idle_per_host(clients)
        .pool_idle_timeout(Duration::from_secs(30))
        .user_agent(USER_AGENT)
        .build()
}

/// Run one client to its end and return what it measured.
pub async fn run(job: Job, shared: Arc<Shared>) -> ClientRecord {
    tokio::time::sleep_until(job.start_at).await;
    shared.progress.started.fetch_add(1, Ordering::Relaxed);
    let mut rec = ClientRecord::new(&job);
    let streamed = measure(&job, &shared, &mut rec).await;
    let p = &shared.progress;
    if streamed {
        p.streaming.fetch_sub(1, Ordering::Relaxed);
    }
    if !rec.ok {
        p.failed.fetch_add(1, Ordering::Relaxed);
    }
    p.finished.fetch_add(1, Ordering::Relaxed);
    rec
}

/// The request and read loop; returns whether the client was counted as streaming.
async fn measure(job: &Job, shared: &Shared, rec: &mut ClientRecord) -> bool {
    let Some(_permit) = connection_slot(job, rec).await else { return false };
    match shared.client {
        ClientKind::Reqwest => measure_reqwest(job, shared, rec).await,
        ClientKind::Raw => crate::raw::measure(job, shared, rec).await,
    }
}

/// A connection slot of the job's host (`--max-connections-per-host`), within the client's
/// window; `None` (the record failed) when none came.
async fn connection_slot(job: &Job, rec: &mut ClientRecord) -> Option<Option<OwnedSemaphorePermit>> {
    match &job.limiter {
        None => Some(None),
        Some(sem) => match tokio::time::timeout_at(job.end_at, sem.clone().acquire_owned()).await {
            Ok(Ok(p)) => Some(Some(p)),
            _ => {
                rec.fail("no connection slot (--max-connections-per-host) before its end", None);
                None
            }
        },
    }
}

/// The request through reqwest (hyper), then its body.
async fn measure_reqwest(job: &Job, shared: &Shared, rec: &mut ClientRecord) -> bool {
    let t_req = Instant::now();
    let header_deadline = job.end_at.min(t_req + shared.connect_timeout + shared.read_timeout);
    let sent = tokio::time::timeout_at(header_deadline, shared.http.get(&job.url).send()).await;
    let resp = match sent {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            rec.fail(request_reason(&e), Some(error_text(&e)));
            return false;
        }
        Err(_) => {
            rec.fail_no_head(header_deadline, job);
            return false;
        }
    };
    let Some(reading) = Reading::start(t_req, resp.status().as_u16(), shared, rec) else {
        return false;
    };
    reading.read_body(resp, job, shared, rec).await;
    true
}

/// What one read of a response body gave.
pub(crate) enum Step {
    /// Bytes, fed to the [`Reading`].
    Fed,
    /// Nothing this time (an empty chunk, a spurious wake-up).
    Nothing,
    /// The body is over.
    End(End),
}

/// A response body being read: the one thing the two clients do differently once the head is in.
pub(crate) trait BodySource {
    /// Waits for the next bytes and feeds them to `reading`. Cancel-safe: the read loop drops it
    /// when the client's time is up.
    async fn step(&mut self, reading: &mut Reading) -> Step;
}

impl BodySource for reqwest::Response {
    async fn step(&mut self, reading: &mut Reading) -> Step {
        match self.chunk().await {
            Ok(Some(chunk)) if chunk.is_empty() => Step::Nothing,
            Ok(Some(chunk)) => {
                reading.feed(Instant::now(), &chunk);
                Step::Fed
            }
            Ok(None) => Step::End(End::Eof),
            Err(e) => {
                let reason =
                    if is_emfile(&e) { REASON_EMFILE.to_string() } else { format!("body error: {}", innermost(&e)) };
                Step::End(End::Error { reason, error: error_text(&e) })
            }
        }
    }
}

/// What a client measures while it reads a 2xx body, whichever HTTP client reads it.
pub(crate) struct Reading {
    checker: TsChecker,
    bytes: u64,
    t_req: Instant,
    first: Option<Instant>,
    last: Instant,
    longest: Duration,
}

impl Reading {
    /// The response head arrived now with `status` (recorded): a 2xx counts the client as
    /// streaming and starts its reading; anything else fails it (`None`).
    pub(crate) fn start(t_req: Instant, status: u16, shared: &Shared, rec: &mut ClientRecord) -> Option<Reading> {
        let t_headers = Instant::now();
        rec.headers_us = Some(micros(t_headers - t_req));
        rec.status = Some(status);
        if !(200..300).contains(&status) {
            rec.fail(format!("status {status}"), None);
            return None;
        }
        let p = &shared.progress;
        let now_streaming = p.streaming.fetch_add(1, Ordering::Relaxed) + 1;
        p.peak_streaming.fetch_max(now_streaming, Ordering::Relaxed);
        Some(Reading {
            checker: TsChecker::new(),
            bytes: 0,
            t_req,
            first: None,
            last: t_headers,
            longest: Duration::ZERO,
        })
    }

    /// Body bytes that arrived at `now`.
    pub(crate) fn feed(&mut self, now: Instant, data: &[u8]) {
        if self.first.is_none() {
            self.first = Some(now);
        } else {
            self.longest = self.longest.max(now - self.last);
        }
        self.last = now;
        self.bytes += data.len() as u64;
        self.checker.feed(data);
    }

    /// Reads `body` until the client's end, the body's end or error, or `read_timeout` without a
    /// byte; closes it, then writes the record's figures and outcome.
    pub(crate) async fn read_body(
        mut self,
        mut body: impl BodySource,
        job: &Job,
        shared: &Shared,
        rec: &mut ClientRecord,
    ) {
        let end_sleep = tokio::time::sleep_until(job.end_at);
        let idle_sleep = tokio::time::sleep(shared.read_timeout);
        tokio::pin!(end_sleep, idle_sleep);
        let end = loop {
            tokio::select! {
                biased;
                _ = &mut end_sleep => break End::Completed,
                _ = &mut idle_sleep => break End::ReadTimeout,
                step = body.step(&mut self) => match step {
                    Step::Fed => idle_sleep.as_mut().reset(self.last + shared.read_timeout),
                    Step::Nothing => {}
                    Step::End(end) => break end,
                },
            }
        };
        let stop = Instant::now();
        // Close the connection now, not when the record is merged.
        drop(body);
        self.finish(stop, end, rec);
    }

    /// The reading stopped at `stop` for `end`: the record's figures and outcome.
    fn finish(mut self, stop: Instant, end: End, rec: &mut ClientRecord) {
        rec.bytes = self.bytes;
        rec.ts = self.checker.stats();
        if let Some(first) = self.first {
            rec.ttfb_us = Some(micros(first - self.t_req));
            self.longest = self.longest.max(stop - self.last);
            rec.longest_gap_ms = Some(millis_f(self.longest));
            let reading = stop - first;
            rec.reading_ms = Some(millis_f(reading));
            if !reading.is_zero() {
                rec.rate_bps = Some((self.bytes as f64 * 8.0 / reading.as_secs_f64()).round() as u64);
            }
        }
        match end {
            End::Completed if self.first.is_some() => rec.ok = true,
            End::Completed => rec.fail("no body bytes before its end", None),
            End::ReadTimeout if self.first.is_none() => rec.fail("read timeout (no body bytes)", None),
            End::ReadTimeout => {
                rec.ended_early = true;
                rec.fail("read timeout", None);
            }
            End::Eof => {
                rec.ended_early = true;
                rec.fail("eof", Some("the server ended the stream before the client's end".into()));
            }
            End::Error { reason, error } => {
                rec.ended_early = true;
                rec.fail(reason, Some(error));
            }
        }
    }
}

/// The grouping key of a failed request.
fn request_reason(e: &reqwest::Error) -> String {
    if is_emfile(e) {
        REASON_EMFILE.to_string()
    } else if e.is_connect() && e.is_timeout() {
        "connect timeout".to_string()
    } else if e.is_timeout() {
        "timeout".to_string()
    } else if e.is_connect() {
        format!("connect error: {}", innermost(e))
    } else {
        format!("request error: {}", innermost(e))
    }
}

/// Whether `EMFILE` is anywhere in the error's chain.
pub(crate) fn is_emfile(e: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.raw_os_error() == Some(EMFILE) {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

/// The deepest cause's text (stable across clients, e.g. "Connection refused (os error 111)").
pub(crate) fn innermost(e: &(dyn StdError + 'static)) -> String {
    let mut cur: &(dyn StdError + 'static) = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// The whole chain, `outer: cause: cause`, without repeated parts; reqwest's URL is left out.
fn error_text(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn StdError + 'static)> = e.source();
    // reqwest's own Display includes the URL; describe it by kind instead.
    let head = if e.is_connect() {
        "connect"
    } else if e.is_timeout() {
        "timeout"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else if e.is_request() {
        "request"
    } else {
        "error"
    };
    parts.push(head.to_string());
    while let Some(err) = cur {
        let text = err.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}
