//! The store as the relay's catalog: where the gateway wires the two.
//!
//! The relay reads the catalog through its own narrow trait
//! ([`tunerpool_relay::Catalog`]) and does not link the store; this adapter
//! is the one place that knows both.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tunerpool_catalog::quality::SourceQuality;
use tunerpool_catalog::{
    Account, CatalogError, Channel, MediaKind, NewEvent, NewQuality, Provider, Store, StreamSource,
};
use tunerpool_relay::probe::ProbeTarget;
use tunerpool_relay::{Catalog, LookupError, SourceMeasurement, VodSource};

/// [`Store`] seen through the relay's [`Catalog`] trait. A newtype because
/// neither the trait nor the store belongs to this crate.
#[derive(Clone)]
pub struct StoreCatalog(pub Store);

impl StoreCatalog {
    /// The store, ready for `Relay::new`.
    pub fn shared(store: Store) -> Arc<dyn Catalog> {
        Arc::new(StoreCatalog(store))
    }
}

/// Not-found stays not-found (a missing channel answers 404); anything
/// else is the backend's failure, with the store's (secret-free) message.
fn lookup_error(e: CatalogError) -> LookupError {
    match e {
        CatalogError::NotFound { what, id } => LookupError::NotFound { what, id },
        other => LookupError::Backend(other.to_string()),
    }
}

impl Catalog for StoreCatalog {
    fn note(&self, event: NewEvent) {
        self.0.note(event);
    }

    fn channel(&self, id: i64) -> BoxFuture<'_, Result<Channel, LookupError>> {
        async move { self.0.channel(id).await.map_err(lookup_error) }.boxed()
    }

    fn provider(&self, id: i64) -> BoxFuture<'_, Result<Provider, LookupError>> {
        async move { self.0.provider(id).await.map_err(lookup_error) }.boxed()
    }

    fn accounts(&self, provider_id: i64) -> BoxFuture<'_, Result<Vec<Account>, LookupError>> {
        async move { self.0.accounts(provider_id).await.map_err(lookup_error) }.boxed()
    }

    fn stream_source(&self, stream_id: i64) -> BoxFuture<'_, Result<StreamSource, LookupError>> {
        async move { self.0.stream_source(stream_id).await.map_err(lookup_error) }.boxed()
    }

    fn vod_source(&self, kind: MediaKind, id: i64) -> BoxFuture<'_, Result<VodSource, LookupError>> {
        async move {
            let (source, name, ext) = self.0.vod_source(kind, id).await.map_err(lookup_error)?;
            Ok(VodSource { source, name, ext })
        }
        .boxed()
    }

    /// A probe's measurement is written before this returns (the prober reports the outcome); a live session's
    /// is queued for the store's one quality writer and this returns at once, so that a slow or locked database
    /// never holds a task (or a pool connection) per live connection.
    fn record_quality(&self, m: SourceMeasurement) -> BoxFuture<'_, Result<(), LookupError>> {
        async move {
            let q = new_quality(&m).map_err(|e| LookupError::Backend(e.to_string()))?;
            if m.probe {
                self.0.record_quality(&q).await.map_err(lookup_error)
            } else {
                self.0.note_quality(q);
                Ok(())
            }
        }
        .boxed()
    }

    fn source_quality(&self, stream_ids: Vec<i64>) -> BoxFuture<'_, Result<HashMap<i64, SourceQuality>, LookupError>> {
        async move { self.0.source_quality(&stream_ids).await.map_err(lookup_error) }.boxed()
    }

    fn probe_candidates(&self, older_than: u64, limit: usize) -> BoxFuture<'_, Result<Vec<ProbeTarget>, LookupError>> {
        async move {
            let older_than = i64::try_from(older_than).unwrap_or(i64::MAX);
            let found = self.0.probe_candidates(older_than, limit as i64).await.map_err(lookup_error)?;
            Ok(found.into_iter().map(probe_target).collect())
        }
        .boxed()
    }
}

/// A store's lineup source as a probe's target.
pub fn probe_target(s: tunerpool_catalog::SourceRef) -> ProbeTarget {
    ProbeTarget { stream_id: s.stream_id, provider_id: s.provider_id, channel_id: Some(s.channel_id) }
}

/// The relay's measurement as the store keeps it: the whole of it as JSON, and the columns worth searching on.
pub(crate) fn new_quality(m: &SourceMeasurement) -> Result<NewQuality, serde_json::Error> {
    let report = serde_json::to_string(m)?;
    let verdict = serde_json::to_value(m.report.verdict)?.as_str().unwrap_or_default().to_string();
    let video = m.report.video.as_ref();
    let codec = video.map(|v| serde_json::to_value(v.codec)).transpose()?;
    Ok(NewQuality {
        stream_id: m.stream_id,
        measured_at: i64::try_from(m.measured_at).unwrap_or(i64::MAX),
        verdict,
        video_codec: codec.and_then(|c| c.as_str().map(str::to_string)),
        width: video.and_then(|v| v.width).map(i64::from),
        height: video.and_then(|v| v.height).map(i64::from),
        fps: video.and_then(|v| v.fps),
        bitrate: m.report.total_bitrate.and_then(|b| i64::try_from(b).ok()),
        report,
    })
}
