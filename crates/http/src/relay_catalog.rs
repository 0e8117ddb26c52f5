//! The store as the relay's catalog: where the gateway wires the two.
//!
//! The relay reads the catalog through its own narrow trait
//! ([`tunerpool_relay::Catalog`]) and does not link the store; this adapter
//! is the one place that knows both.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tunerpool_catalog::{Account, CatalogError, Channel, MediaKind, NewEvent, Provider, Store, StreamSource};
use tunerpool_relay::{Catalog, LookupError, VodSource};

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
}
