//! One provider's sync at a time across a cluster: every sync — scheduled, manual ("sync now"), or a new
//! provider's first — holds the cluster-wide lock `sync:{provider}` in Redis while it runs (the ledger's
//! [`Cluster::lock`]: set if absent with a TTL, renewed while held, compare-and-delete at the end). Outside cluster
//! mode there is nothing to share and a sync just runs.

use tunerpool_catalog::sync::{sync_provider, SyncReport};
use tunerpool_catalog::{CatalogError, Store};
use tunerpool_ledger::cluster::{Claimed, Cluster};
use tunerpool_ledger::LedgerError;
use tunerpool_upstream::UpstreamHttp;

/// Why a sync through [`sync_provider_exclusive`] did not happen, or failed.
///
/// Exists so that callers tell "someone else is syncing it" (the API's 409, the scheduler's skip) from a failed
/// sync, and from a cluster that cannot coordinate (Redis down: no sync rather than two).
#[derive(Debug, thiserror::Error)]
pub enum ExclusiveSyncError {
    /// Another sync of the provider holds the lock, on this instance or another.
    #[error("provider {provider} is being synced right now by instance {instance}; try again when that sync is done")]
    Busy { provider: i64, instance: String },
    /// The cluster's Redis did not answer (its URL and password are never in the message).
    #[error("cannot coordinate the sync with the other instances: {0}")]
    Coordination(LedgerError),
    /// The sync ran and failed.
    #[error(transparent)]
    Sync(#[from] CatalogError),
}

/// The name of provider `id`'s sync lock.
pub fn sync_lock(id: i64) -> String {
    format!("sync:{id}")
}

/// Syncs provider `id` unless another sync of it runs somewhere in the cluster (`cluster`: `None` outside
/// cluster mode). The lock is held until the sync's transaction is over.
pub async fn sync_provider_exclusive(
    cluster: Option<&Cluster>,
    store: &Store,
    http: &UpstreamHttp,
    id: i64,
) -> Result<SyncReport, ExclusiveSyncError> {
    let guard = match cluster {
        None => None,
        Some(c) => match c.lock(&sync_lock(id)).await {
            Ok(Claimed::Ours(guard)) => Some(guard),
            Ok(Claimed::Theirs { instance, .. }) => {
                return Err(ExclusiveSyncError::Busy { provider: id, instance });
            }
            Err(e) => return Err(ExclusiveSyncError::Coordination(e)),
        },
    };
    let result = sync_provider(store, http, id).await;
    if let Some(guard) = guard {
        guard.release().await;
    }
    Ok(result?)
}
