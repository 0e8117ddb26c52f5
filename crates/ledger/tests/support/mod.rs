//! The conformance suite: one body per property, instantiated for every ledger by `tests/conformance.rs`.
#![allow(dead_code)]

pub mod redis_server;

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tunerpool_ledger::{
    AccountId, AnyLedger, Lease, Ledger, LedgerError, MemoryLedger, ProviderId, RedisLedger, Slot, Usage,
};

use redis_server::RedisServer;

/// A TTL that no test outlives: for tests that are not about expiry.
pub const LONG_TTL: Duration = Duration::from_secs(60);
/// A TTL short enough to watch expire.
pub const SHORT_TTL: Duration = Duration::from_millis(800);

/// How a test gets a ledger of one kind.
pub trait Fixture: Sized + Send + Sync + 'static {
    type L: Ledger;
    fn new(ttl: Duration) -> impl Future<Output = Self> + Send {
        Self::with_cooldown(ttl, Duration::ZERO)
    }
    /// A ledger whose released slots stay taken for `cooldown`.
    fn with_cooldown(ttl: Duration, cooldown: Duration) -> impl Future<Output = Self> + Send;
    /// A handle on the fixture's one ledger state. For Redis each call is a new connection and a new instance
    /// id (another tunerpool instance); for memory it is another `Arc` of the same ledger.
    fn instance(&self) -> impl Future<Output = Arc<Self::L>> + Send;
}

pub struct MemoryFixture(Arc<MemoryLedger>);

impl Fixture for MemoryFixture {
    type L = MemoryLedger;
    async fn with_cooldown(ttl: Duration, cooldown: Duration) -> Self {
        MemoryFixture(Arc::new(MemoryLedger::new(ttl).with_release_cooldown(cooldown)))
    }
    async fn instance(&self) -> Arc<MemoryLedger> {
        Arc::clone(&self.0)
    }
}

pub struct AnyMemoryFixture(Arc<AnyLedger>);

impl Fixture for AnyMemoryFixture {
    type L = AnyLedger;
    async fn with_cooldown(ttl: Duration, cooldown: Duration) -> Self {
        AnyMemoryFixture(Arc::new(AnyLedger::Memory(MemoryLedger::new(ttl).with_release_cooldown(cooldown))))
    }
    async fn instance(&self) -> Arc<AnyLedger> {
        Arc::clone(&self.0)
    }
}

pub struct RedisFixture {
    pub server: RedisServer,
    pub ttl: Duration,
    pub cooldown: Duration,
}

impl Fixture for RedisFixture {
    type L = RedisLedger;
    async fn with_cooldown(ttl: Duration, cooldown: Duration) -> Self {
        RedisFixture { server: RedisServer::start(), ttl, cooldown }
    }
    async fn instance(&self) -> Arc<RedisLedger> {
        let ledger = RedisLedger::connect(&self.server.url(), self.ttl, "tunerpool:").await;
        let ledger = ledger.unwrap_or_else(|e| panic!("connecting to the test Redis: {e}"));
        Arc::new(ledger.with_release_cooldown(self.cooldown))
    }
}

pub fn slot(account: AccountId, account_max: u32, provider: ProviderId, provider_max: Option<u32>) -> Slot {
    Slot { account, account_max, provider, provider_max }
}

fn usage_of(accounts: &[(AccountId, u32)], providers: &[(ProviderId, u32)]) -> Usage {
    Usage { accounts: accounts.iter().copied().collect(), providers: providers.iter().copied().collect() }
}

async fn usage<L: Ledger>(ledger: &L) -> Usage {
    ledger.usage().await.expect("usage")
}

/// 1. 1000 concurrent acquires over 3 accounts × 2 slots grant exactly 6.
pub async fn concurrent_acquires_grant_exactly_capacity<F: Fixture>() {
    let fx = F::new(LONG_TTL).await;
    let ledger = fx.instance().await;
    let candidates: Arc<[Slot]> = (1..=3).map(|a| slot(a, 2, 1, None)).collect();
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let (ledger, candidates) = (Arc::clone(&ledger), Arc::clone(&candidates));
            tokio::spawn(async move { ledger.acquire(&candidates, &format!("task {i}")).await })
        })
        .collect();
    let (mut granted, mut full) = (Vec::new(), 0);
    for task in tasks {
        match task.await.expect("task") {
            Ok(lease) => granted.push(lease),
            Err(LedgerError::Full) => full += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(granted.len(), 6, "granted");
    assert_eq!(full, 994);
    assert_eq!(usage(&*ledger).await, usage_of(&[(1, 2), (2, 2), (3, 2)], &[(1, 6)]));
    for lease in &granted {
        ledger.release(lease).await.expect("release");
    }
    assert_eq!(usage(&*ledger).await, Usage::default());
}

/// 2. A released slot is free at once; release is idempotent.
pub async fn release_frees_the_slot_at_once<F: Fixture>() {
    let fx = F::new(LONG_TTL).await;
    let ledger = fx.instance().await;
    let one = [slot(1, 1, 1, None)];
    let lease = ledger.acquire(&one, "first").await.expect("first acquire");
    assert!(matches!(ledger.acquire(&one, "second").await, Err(LedgerError::Full)));
    ledger.release(&lease).await.expect("release");
    assert_eq!(usage(&*ledger).await, Usage::default());
    ledger.release(&lease).await.expect("second release is fine");
    let again = ledger.acquire(&one, "third").await.expect("acquire right after release");
    assert_eq!(usage(&*ledger).await, usage_of(&[(1, 1)], &[(1, 1)]));
    ledger.release(&again).await.expect("release");
}

/// 2b. With a release cool-down, a released slot stays taken until the cool-down has passed, for every
/// instance, while the lease itself is gone at once (not renewable, not in the usage); a dropped lease cools
/// down too.
pub async fn released_slot_cools_down_before_reuse<F: Fixture>() {
    let cooldown = Duration::from_millis(600);
    let fx = F::with_cooldown(LONG_TTL, cooldown).await;
    let (ledger, other) = (fx.instance().await, fx.instance().await);
    assert_eq!(ledger.release_cooldown(), cooldown);
    for (n, how) in [(1, "release"), (2, "drop")] {
        let one = [slot(n, 1, n, Some(1))];
        let lease = Lease::acquire(Arc::clone(&ledger), &one, "first").await.expect("acquire");
        let info = lease.info().clone();
        if how == "release" {
            lease.release().await;
        } else {
            drop(lease);
        }
        let released = Instant::now();
        // Redis releases a dropped lease from a spawned task: wait for it to land (a renewal meanwhile only
        // extends what the release then removes).
        while ledger.renew(&info).await.expect("renew") {
            assert!(how == "drop" && released.elapsed() < Duration::from_secs(2), "{how}: the lease is still there");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(matches!(other.acquire(&one, "too early").await, Err(LedgerError::Full)), "{how}");
        let cooling = usage(&*other).await;
        assert_eq!((cooling.account(n), cooling.provider(n)), (0, 0), "{how}: a cooling slot is held by nobody");
        ledger.release(&info).await.expect("releasing again is fine");
        let again = loop {
            match other.acquire(&one, "after the cool-down").await {
                Ok(lease) => break lease,
                Err(LedgerError::Full) => {
                    assert!(released.elapsed() < cooldown * 5, "{how}: the slot never came back");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert!(
            released.elapsed() >= cooldown - Duration::from_millis(50),
            "{how}: back after {:?}",
            released.elapsed()
        );
        let held = usage(&*other).await;
        assert_eq!((held.account(n), held.provider(n)), (1, 1), "{how}");
        other.release(&again).await.expect("release");
        let freed = Instant::now();
        while ledger.acquire(&one, "probe").await.map(|l| l.id).is_err() {
            assert!(freed.elapsed() < cooldown * 5, "{how}: the last cool-down never ended");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// 3a. A holder that stops renewing loses its slot after the TTL (and not before).
pub async fn abandoned_lease_expires_after_ttl<F: Fixture>() {
    let fx = F::new(SHORT_TTL).await;
    let ledger = fx.instance().await;
    let one = [slot(1, 1, 1, Some(1))];
    let lease = Lease::acquire(Arc::clone(&ledger), &one, "crashing holder").await.expect("acquire");
    let abandoned_at = Instant::now();
    lease.abandon();
    assert!(matches!(ledger.acquire(&one, "too early").await, Err(LedgerError::Full)));
    assert_eq!(usage(&*ledger).await.account(1), 1);
    tokio::time::sleep(SHORT_TTL + Duration::from_millis(200)).await;
    assert!(abandoned_at.elapsed() > SHORT_TTL);
    assert_eq!(usage(&*ledger).await, Usage::default(), "expired leases are not counted");
    let next = ledger.acquire(&one, "after expiry").await.expect("slot is back after the TTL");
    ledger.release(&next).await.expect("release");
}

/// 3b. A renewing holder keeps its slot well past the TTL.
pub async fn renewing_holder_keeps_its_slot<F: Fixture>() {
    let fx = F::new(SHORT_TTL).await;
    let ledger = fx.instance().await;
    let one = [slot(1, 1, 1, None)];
    let lease = Lease::acquire(Arc::clone(&ledger), &one, "healthy holder").await.expect("acquire");
    tokio::time::sleep(SHORT_TTL * 3).await;
    assert!(!lease.is_lost());
    assert!(matches!(ledger.acquire(&one, "intruder").await, Err(LedgerError::Full)));
    assert_eq!(usage(&*ledger).await.account(1), 1);
    // A raw renew extends too.
    assert!(ledger.renew(lease.info()).await.expect("renew"));
    lease.release().await;
    assert_eq!(usage(&*ledger).await, Usage::default());
}

/// Slots each worker of the two-instance test takes and gives back.
const GRANTS_PER_WORKER: usize = 40;

/// 4. Two instances hammering one ledger never together exceed the caps.
pub async fn instances_never_exceed_the_caps<F: Fixture>() {
    let fx = F::new(LONG_TTL).await;
    let instances = [fx.instance().await, fx.instance().await];
    // 2 accounts × 2 slots under a provider cap of 3.
    let candidates: Arc<[Slot]> = Arc::new([slot(1, 2, 1, Some(3)), slot(2, 2, 1, Some(3))]);
    let held = Arc::new(AtomicU32::new(0));
    let max_held = Arc::new(AtomicU32::new(0));
    let grants = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (ledger, stop) = (Arc::clone(&instances[0]), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut checks = 0;
            while !stop.load(Ordering::Relaxed) {
                let u = ledger.usage().await.expect("usage");
                assert!(u.provider(1) <= 3 && u.account(1) <= 2 && u.account(2) <= 2, "over the caps: {u:?}");
                checks += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            checks
        })
    };
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let ledger = Arc::clone(&instances[w % 2]);
            let (candidates, held, max_held, grants) =
                (Arc::clone(&candidates), Arc::clone(&held), Arc::clone(&max_held), Arc::clone(&grants));
            tokio::spawn(async move {
                // Each worker runs until it got GRANTS_PER_WORKER slots: a
                // "full" answer does not use up a round, so a loaded machine
                // (holders sleeping longer) cannot starve the test of grants.
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                let mut i = 0;
                while i < GRANTS_PER_WORKER && std::time::Instant::now() < deadline {
                    match ledger.acquire(&candidates, &format!("worker {w} round {i}")).await {
                        Ok(lease) => {
                            i += 1;
                            grants.fetch_add(1, Ordering::Relaxed);
                            // Counted after the grant and uncounted before the release: never more than the ledger holds.
                            let now = held.fetch_add(1, Ordering::SeqCst) + 1;
                            max_held.fetch_max(now, Ordering::SeqCst);
                            if i % 3 == 0 {
                                tokio::time::sleep(Duration::from_micros(300)).await;
                            } else {
                                tokio::task::yield_now().await;
                            }
                            held.fetch_sub(1, Ordering::SeqCst);
                            ledger.release(&lease).await.expect("release");
                        }
                        Err(LedgerError::Full) => tokio::time::sleep(Duration::from_micros(50)).await,
                        Err(e) => panic!("unexpected error: {e}"),
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    stop.store(true, Ordering::Relaxed);
    let checks = watcher.await.expect("watcher");
    let max = max_held.load(Ordering::SeqCst);
    assert!(max <= 3, "{max} leases held at once under a cap of 3");
    assert!(max >= 2, "the test never had contention (max held {max})");
    assert_eq!(grants.load(Ordering::Relaxed), 16 * GRANTS_PER_WORKER, "every worker got its grants in time");
    assert!(checks > 0);
    assert_eq!(usage(&*instances[1]).await, Usage::default());
}

/// 5. A provider cap binds across accounts: 2 accounts × 2 slots under a cap of 3 → exactly 3.
pub async fn provider_cap_limits_all_accounts<F: Fixture>() {
    let fx = F::new(LONG_TTL).await;
    let ledger = fx.instance().await;
    let candidates: Arc<[Slot]> = Arc::new([slot(1, 2, 7, Some(3)), slot(2, 2, 7, Some(3))]);
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (ledger, candidates) = (Arc::clone(&ledger), Arc::clone(&candidates));
            tokio::spawn(async move { ledger.acquire(&candidates, "capped").await })
        })
        .collect();
    let mut granted = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => granted += 1,
            Err(LedgerError::Full) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(granted, 3);
    assert_eq!(usage(&*ledger).await, usage_of(&[(1, 2), (2, 1)], &[(7, 3)]));
    // A provider without a cap is not limited by its sum.
    let uncapped = [slot(3, 2, 8, None), slot(4, 2, 8, None)];
    for _ in 0..4 {
        ledger.acquire(&uncapped, "uncapped").await.expect("uncapped acquire");
    }
    assert!(matches!(ledger.acquire(&uncapped, "fifth").await, Err(LedgerError::Full)));
    assert_eq!(usage(&*ledger).await.provider(8), 4);
}

/// 6. The first candidate with room wins; a full one falls through to the next; `index` says which.
pub async fn first_fitting_candidate_wins<F: Fixture>() {
    let fx = F::new(LONG_TTL).await;
    let ledger = fx.instance().await;
    let candidates = [slot(10, 1, 1, None), slot(20, 1, 1, None), slot(30, 1, 2, None)];
    for (expect_index, expect_account) in [(0, 10), (1, 20), (2, 30)] {
        let lease = ledger.acquire(&candidates, "order").await.expect("acquire");
        assert_eq!((lease.index, lease.account), (expect_index, expect_account));
        assert_eq!(lease.provider, candidates[expect_index].provider);
    }
    assert!(matches!(ledger.acquire(&candidates, "none left").await, Err(LedgerError::Full)));

    // A full provider makes its accounts fall through even when they have room.
    let candidates = [slot(40, 5, 3, Some(1)), slot(41, 5, 3, Some(1)), slot(42, 5, 4, None)];
    let first = ledger.acquire(&candidates, "p3").await.expect("acquire");
    assert_eq!((first.index, first.account), (0, 40));
    let second = ledger.acquire(&candidates, "p3 full").await.expect("acquire");
    assert_eq!((second.index, second.account, second.provider), (2, 42, 4));
    // No candidates at all: full, not an error.
    assert!(matches!(ledger.acquire(&[], "nobody").await, Err(LedgerError::Full)));
}

/// 7. Dropping a `Lease` releases its slot (at once in memory; within moments for Redis).
pub async fn dropping_a_lease_releases_it<F: Fixture>() {
    let fx = F::new(LONG_TTL).await;
    let ledger = fx.instance().await;
    let one = [slot(1, 1, 1, None)];
    let lease = Lease::acquire(Arc::clone(&ledger), &one, "dropped").await.expect("acquire");
    assert_eq!(usage(&*ledger).await.account(1), 1);
    drop(lease);
    let deadline = Instant::now() + Duration::from_secs(2);
    while usage(&*ledger).await.account(1) != 0 {
        assert!(Instant::now() < deadline, "a dropped lease was not released within 2 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let next = ledger.acquire(&one, "next").await.expect("slot is free after drop");
    ledger.release(&next).await.expect("release");
}

/// 8. Renewing a released or expired lease answers false, and the guard reports the loss.
pub async fn renewing_a_gone_lease_fails_and_lost_resolves<F: Fixture>() {
    let fx = F::new(SHORT_TTL).await;
    let ledger = fx.instance().await;
    let one = [slot(1, 1, 1, None)];

    let released = ledger.acquire(&one, "released").await.expect("acquire");
    ledger.release(&released).await.expect("release");
    assert!(!ledger.renew(&released).await.expect("renew"), "renewed a released lease");

    let expired = ledger.acquire(&one, "expired").await.expect("acquire");
    tokio::time::sleep(SHORT_TTL + Duration::from_millis(200)).await;
    assert!(!ledger.renew(&expired).await.expect("renew"), "renewed an expired lease");
    // The failed renew did not resurrect it.
    assert_eq!(usage(&*ledger).await, Usage::default());

    let lease = Lease::acquire(Arc::clone(&ledger), &one, "taken away").await.expect("acquire");
    assert!(!lease.is_lost());
    ledger.release(lease.info()).await.expect("release behind the guard's back");
    tokio::time::timeout(SHORT_TTL * 2, lease.lost()).await.expect("lost() resolves after the lease is gone");
    assert!(lease.is_lost());
}

/// 9. An account (or provider) limit of 0 is never granted.
pub async fn zero_limits_are_never_granted<F: Fixture>() {
    let fx = F::new(LONG_TTL).await;
    let ledger = fx.instance().await;
    assert!(matches!(ledger.acquire(&[slot(1, 0, 1, None)], "zero").await, Err(LedgerError::Full)));
    assert!(matches!(ledger.acquire(&[slot(2, 3, 2, Some(0))], "zero cap").await, Err(LedgerError::Full)));
    let lease = ledger.acquire(&[slot(1, 0, 1, None), slot(3, 1, 1, None)], "falls through").await.expect("acquire");
    assert_eq!((lease.index, lease.account), (1, 3));
    assert_eq!(usage(&*ledger).await, usage_of(&[(3, 1)], &[(1, 1)]));
}

/// Lease ids are unique, across instances too.
pub async fn lease_ids_are_unique<F: Fixture>() {
    let fx = F::new(LONG_TTL).await;
    let (a, b) = (fx.instance().await, fx.instance().await);
    let many = [slot(1, 1000, 1, None)];
    let mut ids = HashSet::new();
    for _ in 0..200 {
        assert!(ids.insert(a.acquire(&many, "a").await.expect("acquire").id));
        assert!(ids.insert(b.acquire(&many, "b").await.expect("acquire").id));
    }
    assert_eq!(ids.len(), 400);
    assert_eq!(usage(&*a).await.account(1), 400);
}

/// Raw renewals keep a lease alive past its TTL.
pub async fn raw_renewals_extend_the_lease<F: Fixture>() {
    let fx = F::new(SHORT_TTL).await;
    let ledger = fx.instance().await;
    let one = [slot(1, 1, 1, None)];
    let lease = ledger.acquire(&one, "renewer").await.expect("acquire");
    for _ in 0..4 {
        tokio::time::sleep(SHORT_TTL / 2).await;
        assert!(ledger.renew(&lease).await.expect("renew"));
    }
    // 2 × TTL after the acquire, still held.
    assert_eq!(usage(&*ledger).await.account(1), 1);
    assert!(matches!(ledger.acquire(&one, "intruder").await, Err(LedgerError::Full)));
}
