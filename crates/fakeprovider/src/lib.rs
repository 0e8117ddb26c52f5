//! A simulated Xtream Codes IPTV provider: the instrument every tunerpool test and benchmark
//! measures against.
//!
//! It serves a generated catalog (`player_api.php`, `get.php`, `xmltv.php`), live channels
//! as paced, looped MPEG-TS or as a live HLS window, and movies/episodes as files with byte
//! ranges, all from one embedded 10 s sample. Its connection counters ([`Counters`]) are the
//! ground truth for "never more upstream connections than an account allows"; see the
//! `limits` module docs for the exact semantics. Faults ([`Fault`]) make it misbehave like
//! real panels do.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use fakeprovider::{FakeConfig, FakeProvider};
//! let provider = FakeProvider::start(FakeConfig::demo()).await?;
//! let url = format!("{}/live/user1/pass1/1.ts", provider.url());
//! // ... point the system under test at provider.url() ...
//! assert!(provider.counters().accounts["user1"].max_concurrent <= 1);
//! provider.shutdown().await;
//! # let _ = url; Ok(()) }
//! ```

#![warn(missing_docs)]

mod accounts;
mod api;
mod body;
mod catalog;
mod clock;
mod config;
mod control;
mod escape;
mod faults;
mod images;
mod limits;
mod media;
mod playlist;
mod state;
mod streams;
mod tokens;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{AccountSpec, ChannelMedia, FakeConfig, LimitMode, LiveMedia};
pub use control::{AccountPatch, LimitSettings};
pub use faults::{Fault, FaultKind};
pub use limits::{AccountCounters, Counters};

use state::Shared;

/// How long `shutdown` waits for connections to finish before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running simulated provider on one local port.
///
/// Exists so tests can start a provider in-process, point the system under test at
/// [`FakeProvider::url`], inject faults, and read the connection counters. Stops on
/// [`FakeProvider::shutdown`] or when dropped (open streams are ended either way).
#[derive(Debug)]
pub struct FakeProvider {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl FakeProvider {
    /// Start on `127.0.0.1` with an ephemeral port.
    pub async fn start(config: FakeConfig) -> anyhow::Result<FakeProvider> {
        Self::start_on(config, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Start on the given address (port 0 = ephemeral).
    pub async fn start_on(config: FakeConfig, addr: SocketAddr) -> anyhow::Result<FakeProvider> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let shared = Arc::new(Shared::new(&config, addr, shutdown.clone()));
        let app = router(shared.clone());

        let stop = shutdown.clone();
        let server = tokio::spawn(async move {
            let result = axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await;
            if let Err(e) = result {
                tracing::error!(error = %e, "fakeprovider server failed");
            }
        });

        let sweeper_shared = shared.clone();
        let stop = shutdown.clone();
        let sweeper = tokio::spawn(async move {
            let timeout = sweeper_shared.hls_timeout;
            let period = (timeout / 10).clamp(Duration::from_millis(20), Duration::from_secs(1));
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => sweeper_shared.limits.sweep_hls(timeout),
                }
            }
        });

        tracing::info!(%addr, accounts = config.accounts.len(), live = config.live_channels, "fakeprovider started");
        Ok(FakeProvider { shared, addr, shutdown, tasks: vec![server, sweeper] })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (loopback if bound to an unspecified address).
    pub fn url(&self) -> String {
        if self.addr.ip().is_unspecified() {
            format!("http://127.0.0.1:{}", self.addr.port())
        } else {
            format!("http://{}", self.addr)
        }
    }

    /// A snapshot of the connection counters (same as `GET /_control/counters`).
    pub fn counters(&self) -> Counters {
        control::counters(&self.shared)
    }

    /// How limits are enforced now (same as `GET /_control/limits`).
    pub fn limit_settings(&self) -> LimitSettings {
        control::limit_settings(&self.shared)
    }

    /// Change how limits are enforced at run time (same as `POST /_control/limits`): the fields present apply.
    pub fn set_limit_settings(&self, patch: &LimitSettings) {
        control::apply_limit_settings(&self.shared, patch)
    }

    /// Zero the counters (same as `POST /_control/reset_counters`); open connections stay
    /// open and `max_concurrent` restarts at the current `open`.
    pub fn reset_counters(&self) {
        control::reset_counters(&self.shared)
    }

    /// Add a fault (same as `POST /_control/faults`). Faults are matched in the order added.
    pub fn set_fault(&self, fault: Fault) {
        self.shared.faults.add(fault);
    }

    /// Remove all faults (same as `DELETE /_control/faults`).
    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// Change an account at run time; false if there is no such account. Lowering
    /// `max_connections` does not end open connections; it only affects new admissions.
    pub fn update_account(&self, username: &str, f: impl FnOnce(&mut AccountSpec)) -> bool {
        self.shared.accounts.update(username, f)
    }

    /// Add (or replace) an account at run time.
    pub fn add_account(&self, spec: AccountSpec) {
        self.shared.accounts.insert(spec);
    }

    /// Renumbers every stream (live, movie, episode) to `offset + …`, as panels do:
    /// the catalog keeps its channels, under new stream ids.
    pub fn renumber(&self, offset: u64) {
        self.shared.catalog.renumber(offset);
    }

    /// Stop accepting, end all open streams, and wait (bounded) for the server to finish.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        for task in std::mem::take(&mut self.tasks) {
            let abort = task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// All routes of a provider.
fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/player_api.php", get(api::player_api).post(api::player_api))
        .route("/get.php", get(api::get_php).post(api::get_php))
        .route("/xmltv.php", get(api::xmltv_php).post(api::xmltv_php))
        .route("/live/{u}/{p}/{file}", get(streams::live))
        .route("/movie/{u}/{p}/{file}", get(streams::movie))
        .route("/series/{u}/{p}/{file}", get(streams::series))
        .route("/timeshift/{u}/{p}/{duration}/{start}/{file}", get(streams::timeshift))
        .route("/hls/{u}/{p}/{id}/{file}", get(streams::hls_segment))
        .route("/token/{token}/live/{u}/{p}/{file}", get(streams::token))
        .route("/logos/{file}", get(images::logo))
        .route("/posters/{file}", get(images::poster))
        .merge(control::router())
        .fallback(streams::fallback)
        .with_state(shared)
}
