//! The single-process ledger: a mutex around plain maps.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::{AccountId, LeaseInfo, Ledger, LedgerError, ProviderId, Slot, Usage};

/// Lease id → expiry: the live leases of one account or one provider.
type Holdings = HashMap<String, Instant>;

/// The ledger for a single tunerpool instance (no Redis configured).
///
/// It keeps the same semantics as [`crate::RedisLedger`], including expiry: a holder that stops renewing loses
/// its slot after the TTL. Expired leases are dropped lazily, when an acquire looks at that account or
/// provider and when usage is read, so no background task is needed. Acquire is one uncontended mutex and a
/// few small map operations (about a microsecond).
#[derive(Debug)]
pub struct MemoryLedger {
    ttl: Duration,
    cooldown: Duration,
    instance: String,
    counter: AtomicU64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    accounts: HashMap<AccountId, Holdings>,
    providers: HashMap<ProviderId, Holdings>,
    /// Lease id → holder label, for diagnostics. Entries go when the lease leaves its account's holdings.
    holders: HashMap<String, String>,
}

impl MemoryLedger {
    /// A ledger whose leases live `ttl` without renewal.
    pub fn new(ttl: Duration) -> Self {
        MemoryLedger {
            ttl,
            cooldown: Duration::ZERO,
            instance: crate::instance_id(),
            counter: AtomicU64::new(0),
            state: Mutex::default(),
        }
    }

    /// Released slots stay taken for `cooldown` more (see [`Ledger::release`]); zero by default.
    pub fn with_release_cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// The holder label of an active lease, if it is still active.
    pub fn holder(&self, lease_id: &str) -> Option<String> {
        self.lock().holders.get(lease_id).cloned()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No code path panics while holding the lock, but a poisoned lock must not take the gateway down.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn next_id(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.instance)
    }

    fn acquire_now(&self, candidates: &[Slot], holder: &str) -> Result<LeaseInfo, LedgerError> {
        let now = Instant::now();
        let mut guard = self.lock();
        let state = &mut *guard;
        for (index, slot) in candidates.iter().enumerate() {
            if slot.account_max == 0 || slot.provider_max == Some(0) {
                continue;
            }
            let account_active = live_count(state.accounts.get_mut(&slot.account), now, Some(&mut state.holders));
            if account_active >= slot.account_max as usize {
                continue;
            }
            if let Some(provider_max) = slot.provider_max {
                if live_count(state.providers.get_mut(&slot.provider), now, None) >= provider_max as usize {
                    continue;
                }
            }
            let id = self.next_id();
            let expires = now + self.ttl;
            state.accounts.entry(slot.account).or_default().insert(id.clone(), expires);
            state.providers.entry(slot.provider).or_default().insert(id.clone(), expires);
            state.holders.insert(id.clone(), holder.to_owned());
            return Ok(LeaseInfo { id, account: slot.account, provider: slot.provider, index });
        }
        Err(LedgerError::Full)
    }

    fn renew_now(&self, lease: &LeaseInfo) -> bool {
        let now = Instant::now();
        let mut guard = self.lock();
        let state = &mut *guard;
        let alive = matches!(
            state.accounts.get(&lease.account).and_then(|h| h.get(&lease.id)),
            Some(expires) if *expires > now
        );
        if !alive {
            remove(state, lease);
            return false;
        }
        let expires = now + self.ttl;
        for expiry in [
            state.accounts.get_mut(&lease.account).and_then(|h| h.get_mut(&lease.id)),
            state.providers.get_mut(&lease.provider).and_then(|h| h.get_mut(&lease.id)),
        ]
        .into_iter()
        .flatten()
        {
            *expiry = expires;
        }
        true
    }

    fn usage_now(&self) -> Usage {
        let now = Instant::now();
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut usage = Usage::default();
        let holders = &mut state.holders;
        // Cooling slots of released leases stay in the maps (acquire counts them) but are no lease: not usage.
        let leases = |h: &Holdings| h.keys().filter(|id| !crate::is_cooling_id(id)).count() as u32;
        state.accounts.retain(|account, holdings| {
            let n = live_count(Some(holdings), now, Some(holders));
            if leases(holdings) > 0 {
                usage.accounts.insert(*account, leases(holdings));
            }
            n > 0
        });
        state.providers.retain(|provider, holdings| {
            let n = live_count(Some(holdings), now, None);
            if leases(holdings) > 0 {
                usage.providers.insert(*provider, leases(holdings));
            }
            n > 0
        });
        usage
    }
}

/// Drop expired leases from `holdings` (and their holder labels, when given) and count what is left.
fn live_count(holdings: Option<&mut Holdings>, now: Instant, holders: Option<&mut HashMap<String, String>>) -> usize {
    let Some(holdings) = holdings else { return 0 };
    match holders {
        Some(holders) => holdings.retain(|id, expires| {
            let live = *expires > now;
            if !live {
                holders.remove(id);
            }
            live
        }),
        None => holdings.retain(|_, expires| *expires > now),
    }
    holdings.len()
}

/// Remove the lease; with a cool-down, its slot stays taken under [`crate::cooling_id`] until
/// `min(its expiry, now + cooldown)`.
fn release(state: &mut State, lease: &LeaseInfo, cooldown: Duration) {
    let expiry = state.accounts.get(&lease.account).and_then(|h| h.get(&lease.id)).copied();
    remove(state, lease);
    let now = Instant::now();
    if let Some(expiry) = expiry.filter(|e| *e > now && !cooldown.is_zero()) {
        let until = expiry.min(now + cooldown);
        let id = crate::cooling_id(&lease.id);
        state.accounts.entry(lease.account).or_default().insert(id.clone(), until);
        state.providers.entry(lease.provider).or_default().insert(id, until);
    }
}

fn remove(state: &mut State, lease: &LeaseInfo) {
    if let Some(h) = state.accounts.get_mut(&lease.account) {
        h.remove(&lease.id);
        if h.is_empty() {
            state.accounts.remove(&lease.account);
        }
    }
    if let Some(h) = state.providers.get_mut(&lease.provider) {
        h.remove(&lease.id);
        if h.is_empty() {
            state.providers.remove(&lease.provider);
        }
    }
    state.holders.remove(&lease.id);
}

impl Ledger for MemoryLedger {
    async fn acquire(&self, candidates: &[Slot], holder: &str) -> Result<LeaseInfo, LedgerError> {
        self.acquire_now(candidates, holder)
    }

    async fn renew(&self, lease: &LeaseInfo) -> Result<bool, LedgerError> {
        Ok(self.renew_now(lease))
    }

    async fn release(&self, lease: &LeaseInfo) -> Result<(), LedgerError> {
        release(&mut self.lock(), lease, self.cooldown);
        Ok(())
    }

    async fn usage(&self) -> Result<Usage, LedgerError> {
        Ok(self.usage_now())
    }

    fn ttl(&self) -> Duration {
        self.ttl
    }

    fn release_cooldown(&self) -> Duration {
        self.cooldown
    }

    fn release_now(&self, lease: &LeaseInfo) -> bool {
        release(&mut self.lock(), lease, self.cooldown);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(account: AccountId, max: u32) -> Slot {
        Slot { account, account_max: max, provider: 1, provider_max: None }
    }

    #[test]
    fn holder_label_is_kept_while_active_and_dropped_on_release() {
        let ledger = MemoryLedger::new(Duration::from_secs(10));
        let lease = ledger.acquire_now(&[slot(1, 1)], "session 1 / channel 2").unwrap();
        assert_eq!(ledger.holder(&lease.id).as_deref(), Some("session 1 / channel 2"));
        assert!(ledger.release_now(&lease));
        assert_eq!(ledger.holder(&lease.id), None);
        assert_eq!(ledger.usage_now(), Usage::default());
    }

    #[test]
    fn expired_leases_leave_no_state_behind() {
        let ledger = MemoryLedger::new(Duration::from_millis(1));
        let lease = ledger.acquire_now(&[slot(1, 1)], "h").unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(ledger.usage_now(), Usage::default());
        let state = ledger.lock();
        assert!(state.accounts.is_empty() && state.providers.is_empty() && state.holders.is_empty());
        drop(state);
        assert!(!ledger.renew_now(&lease));
    }

    #[test]
    fn ids_carry_instance_and_counter() {
        let ledger = MemoryLedger::new(Duration::from_secs(10));
        let a = ledger.acquire_now(&[slot(1, 5)], "h").unwrap();
        let b = ledger.acquire_now(&[slot(1, 5)], "h").unwrap();
        assert_ne!(a.id, b.id);
        assert!(a.id.starts_with(&ledger.instance) && a.id.ends_with("-0"), "{}", a.id);
    }
}
