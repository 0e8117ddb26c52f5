//! The state shared by all request handlers of one provider, and request helpers that need it.

// Handlers return ready-made responses as their error values; boxing them buys nothing here.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderMap};
use axum::response::Response;
use tokio_util::sync::CancellationToken;

use crate::accounts::{Account, Accounts};
use crate::body;
use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::config::{FakeConfig, LimitMode, LiveMedia};
use crate::faults::Faults;
use crate::limits::Limits;
use crate::media::Rate;
use crate::tokens::Tokens;

/// Everything a request handler may need, behind one `Arc`.
///
/// Exists so that the library handle (`FakeProvider`), the HTTP handlers and the control
/// endpoints all act on the very same books.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) clock: Clock,
    pub(crate) catalog: Catalog,
    pub(crate) accounts: Accounts,
    pub(crate) limits: Arc<Limits>,
    pub(crate) faults: Faults,
    pub(crate) tokens: Tokens,
    pub(crate) rate: Rate,
    /// What each listed live channel (by index) sends instead of the sample.
    live_media: HashMap<u64, LiveMedia>,
    pub(crate) hls_timeout: Duration,
    pub(crate) api_requests: AtomicU64,
    pub(crate) addr: SocketAddr,
    /// Cancelled when the provider shuts down.
    pub(crate) shutdown: CancellationToken,
}

impl Shared {
    pub(crate) fn new(config: &FakeConfig, addr: SocketAddr, shutdown: CancellationToken) -> Self {
        let clock = Clock::new();
        Shared {
            clock,
            catalog: Catalog::new(config, clock.start_unix()),
            accounts: Accounts::new(&config.accounts, clock.start_unix()),
            limits: Limits::new(shutdown.clone(), config.limit_mode, Duration::from_millis(config.release_delay_ms)),
            faults: Faults::default(),
            tokens: Tokens::default(),
            rate: Rate::new(config.bitrate_bps),
            live_media: config.live_media.iter().map(|m| (m.channel, m.media)).collect(),
            hls_timeout: Duration::from_millis(config.hls_session_timeout_ms),
            api_requests: AtomicU64::new(0),
            addr,
            shutdown,
        }
    }

    /// What live channel `index` sends.
    pub(crate) fn live_media(&self, index: u64) -> LiveMedia {
        self.live_media.get(&index).copied().unwrap_or_default()
    }

    /// Credentials check for stream endpoints: 401 for bad credentials, 403 for an account
    /// that is not active (expired, banned, disabled).
    pub(crate) fn authorize(&self, user: &str, pass: &str) -> Result<Account, Response> {
        match self.accounts.authenticate(user, pass) {
            None => Err(body::status(401)),
            Some(a) if !a.is_active() => Err(body::status(403)),
            Some(a) => Ok(a),
        }
    }

    /// The response for a request refused because its account is at its limit.
    pub(crate) fn limit_refusal(&self) -> Response {
        match self.limits.mode() {
            LimitMode::Refuse { status } => body::status(sanitize_status(status, 403)),
            LimitMode::CutOldest => body::status(403),
        }
    }

    /// `host[:port]` the client used to reach us (from `Host`, if sane), else our address.
    pub(crate) fn host(&self, headers: &HeaderMap) -> String {
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| {
                !h.is_empty()
                    && h.len() <= 255
                    && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
            })
            .map(str::to_string)
            .unwrap_or_else(|| {
                if self.addr.ip().is_unspecified() {
                    format!("127.0.0.1:{}", self.addr.port())
                } else {
                    self.addr.to_string()
                }
            })
    }

    /// `http://host[:port]` for absolute URLs in playlists and catalogs.
    pub(crate) fn base_url(&self, headers: &HeaderMap) -> String {
        format!("http://{}", self.host(headers))
    }
}

/// A status code usable for a refusal: anything outside 200..=599 becomes `fallback`.
pub(crate) fn sanitize_status(status: u16, fallback: u16) -> u16 {
    if (200..=599).contains(&status) {
        status
    } else {
        fallback
    }
}
