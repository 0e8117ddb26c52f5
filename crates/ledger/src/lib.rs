//! Connection-slot leases: which provider account gets the next upstream connection.
//!
//! Providers cap how many streams an account (and sometimes a whole provider) may have open at once; one
//! connection too many gets the account banned or the stream cut. Every code path that opens an upstream
//! connection therefore first takes a *lease* from a [`Ledger`]: an atomic "take the first candidate that still
//! has room" that holds under any interleaving, within one process ([`MemoryLedger`]) or across several tunerpool
//! instances sharing one Redis ([`RedisLedger`]).
//!
//! A released slot cools down before anyone gets it again (`pool.release_cooldown`): providers notice a closed
//! connection milliseconds to seconds late, and one opened in between is refused or cuts another viewer.
//!
//! Leases expire: a holder renews its lease (the [`Lease`] guard does it every `ttl / 3`), and a holder that
//! crashes or hangs stops renewing, so its slot comes back after the TTL. No counter can drift, because the
//! ledger never counts anything it cannot see expire: it stores the leases themselves.
//!
//! Modules, one concept each: this file (the contract and its types), [`lease`] (the RAII guard and its
//! heartbeat), [`cluster`] (instances and channel ownership in Redis, for several instances), [`memory`] (single-process ledger), [`redis`] (shared ledger, Lua scripts in `src/lua/`),
//! [`any`] (the runtime choice between the two).

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

pub mod any;
pub mod cluster;
pub mod lease;
pub mod memory;
pub mod redis;

/// `pool.release_cooldown`'s default: long enough for the panels we know to notice a closed connection (and
/// for a provider's scheduler to run under load), short enough that zapping on a one-connection account stays
/// under a second.
pub const DEFAULT_RELEASE_COOLDOWN: Duration = Duration::from_millis(600);

pub use any::AnyLedger;
pub use lease::Lease;
pub use memory::MemoryLedger;
pub use redis::RedisLedger;

/// A provider account's identity in the ledger: the same on every instance that shares the ledger, so NOT the
/// catalog's row id (two instances number the same account differently). The pool derives it from the
/// provider's URL and the account's username (`tunerpool_pool::identity`).
pub type AccountId = i64;
/// A provider's identity in the ledger, derived the same way on every instance (`tunerpool_pool::identity`).
pub type ProviderId = i64;

/// How long a lease lives without renewal. The [`Lease`] guard renews every third of it, so a crashed instance's
/// slots come back within this time.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15);

/// One candidate for a lease: an account with its effective limit, and its provider's cap over all its accounts.
///
/// The pool builds the list in its preferred order; the ledger takes the first that fits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// The account that would open the connection.
    pub account: AccountId,
    /// How many connections this account may have at once. `0` means none: never granted.
    pub account_max: u32,
    /// The account's provider.
    pub provider: ProviderId,
    /// How many connections all of this provider's accounts together may have, if the provider caps that.
    /// `Some(0)` means none: never granted.
    pub provider_max: Option<u32>,
}

/// What a lease is: which candidate won. It is all a holder needs to renew or release the lease.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeaseInfo {
    /// Unique across instances and restarts: `<random instance id>-<counter>`.
    pub id: String,
    /// The account that got the slot.
    pub account: AccountId,
    /// That account's provider.
    pub provider: ProviderId,
    /// The winner's position in the candidate list given to [`Ledger::acquire`].
    pub index: usize,
}

/// Active leases per account and per provider, for the API and for tests.
///
/// Expired leases are never counted. Only accounts and providers with at least one active lease appear; an
/// absent key means zero.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    /// Active leases per account.
    pub accounts: HashMap<AccountId, u32>,
    /// Active leases per provider (over all its accounts).
    pub providers: HashMap<ProviderId, u32>,
}

impl Usage {
    /// Active leases on `account` (zero when absent).
    pub fn account(&self, account: AccountId) -> u32 {
        self.accounts.get(&account).copied().unwrap_or(0)
    }

    /// Active leases on `provider` (zero when absent).
    pub fn provider(&self, provider: ProviderId) -> u32 {
        self.providers.get(&provider).copied().unwrap_or(0)
    }

    /// Active leases in total.
    pub fn total(&self) -> u32 {
        self.accounts.values().sum()
    }
}

/// Why a ledger operation failed. The caller needs exactly this distinction: "all accounts busy" is an answer
/// to show the viewer, "ledger unavailable" is an outage (and opening a connection anyway would break the
/// limits, so the caller must not).
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Every candidate account (or its provider) is at its limit.
    #[error("no candidate account has a free slot")]
    Full,
    /// The backend could not be reached or answered nonsense. The message never contains a password.
    #[error("the lease ledger is unavailable: {0}")]
    Backend(String),
}

/// The contract both ledgers implement, and that the conformance suite (`tests/conformance.rs`) checks for each.
pub trait Ledger: Send + Sync + 'static {
    /// Atomically take a slot on the FIRST candidate (in the given order) whose account has active < account_max
    /// AND whose provider (if provider_max is Some) has total active < provider_max. `holder` is a free-text label
    /// (e.g. "session 12 / channel 5") kept with the lease for diagnostics.
    fn acquire(&self, candidates: &[Slot], holder: &str)
        -> impl Future<Output = Result<LeaseInfo, LedgerError>> + Send;

    /// Extend a lease's expiry to now + ttl. `Ok(false)` when the lease no longer exists (expired or released):
    /// the holder lost it and must stop using the upstream connection.
    fn renew(&self, lease: &LeaseInfo) -> impl Future<Output = Result<bool, LedgerError>> + Send;

    /// Give the slot back: free for others once the release cool-down ([`Ledger::release_cooldown`]) has
    /// passed; until then no acquire gets it. The lease itself is gone at once ([`Ledger::renew`] answers
    /// `false`) and [`Ledger::usage`] no longer counts it: a cooling slot is held by nobody. Idempotent:
    /// releasing a released or expired lease is fine.
    fn release(&self, lease: &LeaseInfo) -> impl Future<Output = Result<(), LedgerError>> + Send;

    /// Current usage (expired leases and cooling slots are not counted).
    fn usage(&self) -> impl Future<Output = Result<Usage, LedgerError>> + Send;

    /// How long a lease lives without renewal.
    fn ttl(&self) -> Duration;

    /// How long a released slot stays taken (see [`MemoryLedger::with_release_cooldown`]): the provider may
    /// still count the closed connection for a moment, so the slot is not reused at once.
    fn release_cooldown(&self) -> Duration {
        Duration::ZERO
    }

    /// Release without awaiting, when the backend can do that without I/O (the in-memory ledger can).
    /// Returns `false` when it cannot; the caller then has to await [`Ledger::release`]. [`Lease`]'s `Drop`
    /// uses this so that an in-memory slot is free the moment the guard is gone.
    fn release_now(&self, _lease: &LeaseInfo) -> bool {
        false
    }
}

/// The id under which a released lease's slot cools down: not the lease's own id, so that the lease is gone
/// (renewing it fails, releasing it again does nothing) while its slot still counts.
pub(crate) fn cooling_id(lease_id: &str) -> String {
    format!("{lease_id}:cooling")
}

/// Whether a member of an account's or provider's holdings is a cooling slot rather than a lease.
pub(crate) fn is_cooling_id(id: &str) -> bool {
    id.ends_with(":cooling")
}

/// A new random instance id, so lease ids from different processes (or a restarted one) never collide.
pub(crate) fn instance_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}
