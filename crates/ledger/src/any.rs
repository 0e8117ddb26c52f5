//! The runtime choice between the two ledgers.

use std::time::Duration;

use crate::{LeaseInfo, Ledger, LedgerError, MemoryLedger, RedisLedger, Slot, Usage};

/// The ledger the configuration picked: in-memory for a single instance, Redis when several instances share
/// accounts. Code above takes `AnyLedger` (or is generic over [`Ledger`]) and never cares which.
#[derive(Debug)]
pub enum AnyLedger {
    /// One process: [`MemoryLedger`].
    Memory(MemoryLedger),
    /// Several instances on one Redis: [`RedisLedger`].
    Redis(RedisLedger),
}

impl From<MemoryLedger> for AnyLedger {
    fn from(ledger: MemoryLedger) -> Self {
        AnyLedger::Memory(ledger)
    }
}

impl From<RedisLedger> for AnyLedger {
    fn from(ledger: RedisLedger) -> Self {
        AnyLedger::Redis(ledger)
    }
}

impl Ledger for AnyLedger {
    async fn acquire(&self, candidates: &[Slot], holder: &str) -> Result<LeaseInfo, LedgerError> {
        match self {
            AnyLedger::Memory(l) => l.acquire(candidates, holder).await,
            AnyLedger::Redis(l) => l.acquire(candidates, holder).await,
        }
    }

    async fn renew(&self, lease: &LeaseInfo) -> Result<bool, LedgerError> {
        match self {
            AnyLedger::Memory(l) => l.renew(lease).await,
            AnyLedger::Redis(l) => l.renew(lease).await,
        }
    }

    async fn release(&self, lease: &LeaseInfo) -> Result<(), LedgerError> {
        match self {
            AnyLedger::Memory(l) => l.release(lease).await,
            AnyLedger::Redis(l) => l.release(lease).await,
        }
    }

    async fn usage(&self) -> Result<Usage, LedgerError> {
        match self {
            AnyLedger::Memory(l) => l.usage().await,
            AnyLedger::Redis(l) => l.usage().await,
        }
    }

    fn ttl(&self) -> Duration {
        match self {
            AnyLedger::Memory(l) => l.ttl(),
            AnyLedger::Redis(l) => l.ttl(),
        }
    }

    fn release_cooldown(&self) -> Duration {
        match self {
            AnyLedger::Memory(l) => l.release_cooldown(),
            AnyLedger::Redis(l) => l.release_cooldown(),
        }
    }

    fn release_now(&self, lease: &LeaseInfo) -> bool {
        match self {
            AnyLedger::Memory(l) => l.release_now(lease),
            AnyLedger::Redis(l) => l.release_now(lease),
        }
    }
}
