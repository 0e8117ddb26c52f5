//! The RAII lease guard and its heartbeat.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::{LeaseInfo, Ledger, LedgerError, Slot};

/// A held slot, for as long as this value lives.
///
/// Forgetting to release a slot is the classic way to leak provider connections, so the guard makes it
/// impossible: a background task renews the lease every `ttl / 3`, and `Drop` stops that task and releases
/// the slot (at once for the in-memory ledger; for Redis by spawning the release on the current Tokio
/// runtime, or, without one, by letting the TTL free it).
///
/// If a renewal finds the lease gone (it expired during a stall, or someone released it), the lease is
/// *lost*: [`Lease::is_lost`] turns true and [`Lease::lost`] resolves, and the holder must stop using the
/// upstream connection, since the slot may already be someone else's. A renewal that merely fails (Redis
/// unreachable) is retried; the lease only counts as lost once its TTL has run out since the last renewal
/// that succeeded, because only then can the ledger have given the slot away.
pub struct Lease<L: Ledger> {
    ledger: Arc<L>,
    info: LeaseInfo,
    lost: watch::Receiver<bool>,
    heartbeat: Renewal,
}

impl<L: Ledger> std::fmt::Debug for Lease<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("info", &self.info).field("lost", &self.is_lost()).finish_non_exhaustive()
    }
}

impl<L: Ledger> Lease<L> {
    /// Take a slot (see [`Ledger::acquire`]) and start renewing it. Must be called within a Tokio runtime
    /// (the heartbeat is a Tokio task); outside one it fails with [`LedgerError::Backend`] before taking a slot.
    pub async fn acquire(ledger: Arc<L>, candidates: &[Slot], holder: &str) -> Result<Lease<L>, LedgerError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| LedgerError::Backend("a lease needs a Tokio runtime for its heartbeat".into()))?;
        let asked = Instant::now();
        let info = ledger.acquire(candidates, holder).await?;
        let (lost_tx, lost) = watch::channel(false);
        let task = runtime.spawn(heartbeat(Arc::clone(&ledger), info.clone(), asked, lost_tx));
        Ok(Lease { ledger, info, lost, heartbeat: Renewal::new(task.abort_handle()) })
    }

    /// Which account won, and the lease id.
    pub fn info(&self) -> &LeaseInfo {
        &self.info
    }

    /// True once a renewal found the lease gone, or renewals kept failing for a whole TTL.
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Resolves when the lease is lost (at once if it already is); never resolves while it is held.
    pub async fn lost(&self) {
        let mut lost = self.lost.clone();
        if lost.wait_for(|lost| *lost).await.is_err() {
            // The heartbeat ended without losing the lease (its runtime is shutting down): nothing to report.
            std::future::pending::<()>().await;
        }
    }

    /// Stop renewing and give the slot back, waiting for the ledger to confirm. A failure is logged: the TTL
    /// frees the slot anyway.
    pub async fn release(mut self) {
        self.heartbeat.stop();
        if let Err(e) = self.ledger.release(&self.info).await {
            tracing::warn!(lease = %self.info.id, error = %e, "releasing a lease failed; its TTL will free the slot");
        }
    }

    /// For tests and crash simulation: stop renewing and forget the lease without releasing it. The slot
    /// comes back when the TTL runs out.
    pub fn abandon(mut self) {
        self.heartbeat.stop();
    }
}

/// The renewal task of a held record (a [`Lease`], a cluster ownership, a user's stream lease), running until
/// its holder releases or abandons it. Whether it still runs is the holder's "nothing released yet" state, so
/// a holder's `Drop` releases only when [`Renewal::stop`] finds it running.
#[derive(Debug)]
pub(crate) struct Renewal(Option<AbortHandle>);

impl Renewal {
    pub(crate) fn new(task: AbortHandle) -> Renewal {
        Renewal(Some(task))
    }

    /// Stops renewing. True if it was still running: the record is still held and nobody released it.
    pub(crate) fn stop(&mut self) -> bool {
        self.0.take().map(|task| task.abort()).is_some()
    }
}

impl<L: Ledger> Drop for Lease<L> {
    fn drop(&mut self) {
        if !self.heartbeat.stop() || self.ledger.release_now(&self.info) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let ledger = Arc::clone(&self.ledger);
                let info = self.info.clone();
                runtime.spawn(async move {
                    if let Err(e) = ledger.release(&info).await {
                        tracing::warn!(lease = %info.id, error = %e, "releasing a dropped lease failed; its TTL will free the slot");
                    }
                });
            }
            Err(_) => {
                tracing::debug!(lease = %self.info.id, "lease dropped outside a runtime; its TTL will free the slot")
            }
        }
    }
}

/// Renew every `ttl / 3`. A confirmed "gone" marks the lease lost at once; failures are retried every
/// `ttl / 15` until the TTL since the last successful renewal (counted from when that renewal was *sent*, so
/// conservatively) has passed, and then the lease is marked lost.
async fn heartbeat<L: Ledger>(ledger: Arc<L>, info: LeaseInfo, asked: Instant, lost: watch::Sender<bool>) {
    let ttl = ledger.ttl();
    let what = format!("lease {} (account {})", info.id, info.account);
    keep_renewed(ttl, asked, &what, Outage::Loses, || ledger.renew(&info), lost).await;
}

/// What a renewal loop does when no renewal succeeds for a whole TTL ([`keep_renewed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outage {
    /// The record counts as lost: the ledger may have given it away (a provider slot, a channel's ownership).
    Loses,
    /// Keep trying: only a renewal that finds the record gone loses it. For records whose loss would end
    /// something nobody else can take meanwhile (a user's stream lease: while Redis does not answer no
    /// instance can claim one either).
    Holds,
}

/// The one renewal loop of every record with a TTL its holder renews: provider leases ([`Lease`]), channel
/// ownerships and cluster locks ([`crate::cluster::Ownership`]) and downstream users' stream leases
/// ([`crate::cluster::UserLease`]).
///
/// `renew` is asked every `ttl / 3` from `asked` (when the record was requested: the record may have been set
/// any time after, so its expiry is counted from then, conservatively). `Ok(true)`: renewed, the next deadline
/// is a TTL after the renewal was *sent*; `Ok(false)`: the record is gone or another's, lost at once; an error
/// (or no answer before the deadline): retried every `ttl / 15`, and once a TTL has passed since the last
/// renewal that succeeded, lost ([`Outage::Loses`]) or still retried ([`Outage::Holds`]). "Lost" is sending
/// `true` on `lost`; the loop then returns. It never returns while the record is held: abort its task to stop
/// it.
pub(crate) async fn keep_renewed<F, Fut>(
    ttl: Duration,
    asked: Instant,
    what: &str,
    outage: Outage,
    mut renew: F,
    lost: watch::Sender<bool>,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, LedgerError>>,
{
    let period = (ttl / 3).max(Duration::from_millis(1));
    let retry = (ttl / 15).max(Duration::from_millis(10));
    let mut deadline = asked + ttl;
    let mut next = asked + period;
    loop {
        tokio::time::sleep_until(next.min(deadline)).await;
        let sent = Instant::now();
        if sent >= deadline {
            if outage == Outage::Holds {
                tracing::warn!(record = %what, "no renewal succeeded within its TTL; still holding it, retrying");
                deadline = sent + ttl;
                continue;
            }
            tracing::warn!(record = %what, "lost: no renewal succeeded within its TTL");
            lost.send_replace(true);
            return;
        }
        match tokio::time::timeout(deadline - sent, renew()).await {
            Ok(Ok(true)) => {
                deadline = sent + ttl;
                next = sent + period;
            }
            Ok(Ok(false)) => {
                tracing::warn!(record = %what, "lost: the record is gone or another holder's");
                lost.send_replace(true);
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(record = %what, error = %e, "renewing failed; retrying");
                next = Instant::now() + retry;
            }
            Err(_elapsed) => next = Instant::now(),
        }
    }
}
