//! Keeps every enabled provider's catalog fresh: syncs a provider when it
//! has never been synced, when its last sync is older than
//! `sync.catalog_interval`, or (sooner) after a failed sync.

use std::time::Duration;

use tunerpool_catalog::sync::sync_provider;
use tunerpool_catalog::Store;
use tunerpool_upstream::UpstreamHttp;

/// A failed sync is retried after this long, or after the catalog interval if shorter.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10 * 60);
/// How often the scheduler looks for due providers.
const TICK: Duration = Duration::from_secs(30);

/// Spawns the scheduler; it stops when the returned guard is dropped.
pub fn spawn(store: Store, http: UpstreamHttp, interval: Duration) -> CancelOnDrop {
    let handle = tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = run_due(&store, &http, interval).await {
                tracing::warn!(error = %e, "catalog scheduler: cannot read providers");
            }
        }
    });
    CancelOnDrop(handle)
}

/// Syncs, one after another, every provider that is due now.
pub async fn run_due(
    store: &Store,
    http: &UpstreamHttp,
    interval: Duration,
) -> Result<usize, tunerpool_catalog::CatalogError> {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let mut synced = 0;
    for p in store.providers().await? {
        if !p.enabled {
            continue;
        }
        let wait = match p.sync.ok {
            Some(false) => RETRY_AFTER_FAILURE.min(interval),
            _ => interval,
        };
        let due = p.sync.last_sync_at.is_none_or(|at| now - at >= wait.as_secs() as i64);
        if due {
            // Errors are recorded on the provider and logged by the sync itself.
            let _ = sync_provider(store, http, p.id).await;
            synced += 1;
        }
    }
    Ok(synced)
}

/// The running scheduler; dropping it stops it.
pub struct CancelOnDrop(tokio::task::JoinHandle<()>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
