//! What the relay needs from the catalog, as a narrow trait.
//!
//! A session reads a channel, its providers and their accounts, and where a
//! stream is, when it starts or fails over (never per chunk), and records
//! events and source measurements, and reads what the sources' quality scores
//! rest on, and which sources to probe. Those nine calls are all the relay asks of the catalog, so it does
//! not link the SQLite store: the crate that wires the gateway (`http`)
//! implements [`Catalog`] for the store, and the relay's tests for a map in
//! memory.

use std::collections::HashMap;

use futures_util::future::BoxFuture;
use tunerpool_domain::quality::SourceQuality;
use tunerpool_domain::{Account, Channel, MediaKind, NewEvent, Provider, StreamSource};

use crate::measure::SourceMeasurement;
use crate::probe::ProbeTarget;

/// The catalog as the relay sees it. Object-safe (`Arc<dyn Catalog>`): each
/// lookup returns a boxed future, which costs one allocation per session
/// start or failover.
pub trait Catalog: Send + Sync + 'static {
    /// Records an event. Must not wait: sessions call it on their path.
    fn note(&self, event: NewEvent);

    /// A lineup channel with its sources.
    fn channel(&self, id: i64) -> BoxFuture<'_, Result<Channel, LookupError>>;

    /// A provider.
    fn provider(&self, id: i64) -> BoxFuture<'_, Result<Provider, LookupError>>;

    /// A provider's accounts, primary first, then by priority.
    fn accounts(&self, provider_id: i64) -> BoxFuture<'_, Result<Vec<Account>, LookupError>>;

    /// Where a live stream is and which headers to send.
    fn stream_source(&self, stream_id: i64) -> BoxFuture<'_, Result<StreamSource, LookupError>>;

    /// Where a movie or an episode is, with its name and container extension.
    fn vod_source(&self, kind: MediaKind, id: i64) -> BoxFuture<'_, Result<VodSource, LookupError>>;

    /// Keeps a live source's measurement (the latest per source, and its history). Called from a task of its
    /// own, never on a session's path: once a connection's stream has said what it is, every few minutes
    /// after, and when the connection ends.
    fn record_quality(&self, measurement: SourceMeasurement) -> BoxFuture<'_, Result<(), LookupError>>;

    /// What the quality scores of these streams' sources rest on, for those measured (by stream id). Read
    /// when a session picks its source, for a channel that orders its sources itself.
    fn source_quality(&self, stream_ids: Vec<i64>) -> BoxFuture<'_, Result<HashMap<i64, SourceQuality>, LookupError>>;

    /// Up to `limit` lineup sources worth probing, best first: those never measured, then those found dead, then
    /// the oldest measurements — only sources last measured before `older_than` (unix seconds), of visible
    /// channels and enabled providers. Read by the probe scheduler every few seconds at most.
    fn probe_candidates(&self, older_than: u64, limit: usize) -> BoxFuture<'_, Result<Vec<ProbeTarget>, LookupError>>;
}

/// A movie or an episode: where it is, its name, and the container
/// extension the provider gave (if any).
#[derive(Debug, Clone, PartialEq)]
pub struct VodSource {
    pub source: StreamSource,
    pub name: String,
    pub ext: Option<String>,
}

/// Why a lookup gave nothing. The relay answers "unknown channel" to the
/// first and an internal error to the second; messages never hold secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// There is no such row (`what`: channel, provider, stream, movie, …).
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    /// The backend failed; the message is for the server log.
    #[error("{0}")]
    Backend(String),
}
