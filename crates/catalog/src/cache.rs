//! Short-lived, bounded read caches in front of SQLite for the two reads
//! every client stream request makes before it reaches the relay: the user
//! a login names ([`Store::user_by_name_cached`](crate::Store::user_by_name_cached))
//! and whether that user may see the item it asks for
//! ([`Store::item_visible_cached`](crate::Store::item_visible_cached)).
//!
//! Why: 2000 viewers joining running channels within seconds made 4000+
//! queries through a pool of 4 SQLite connections, and joins queued for
//! seconds behind `sqlx::pool::acquire` while the relay itself had nothing to
//! do but add a reader to a ring (BENCHMARKS.md, issue 16). With these
//! caches a join to a running channel asks SQLite nothing, as long as the
//! same user (and filter, and item) was looked up within [`READ_CACHE_TTL`].
//!
//! Correctness: a [`TtlCache`] entry is at most [`READ_CACHE_TTL`] old, and
//! [`TtlCache::clear`] empties it and moves its generation on, so an answer
//! read from SQLite before a write but stored after it is thrown away
//! ([`TtlCache::insert`] takes the generation seen *before* the query).
//! Every write to users in this process clears the users cache
//! (`users.rs`), so a disabled or deleted user is refused on its next
//! request here; another process writing the same database (the
//! `tunerpool user …` commands) is seen within the TTL.
//!
//! Crowds: [`TtlCache::get_or_load`] lets one request per key ask SQLite
//! while the others that missed the same key wait for its answer. Without
//! it, a channel's entry expiring under 300 joins a second on starved cores
//! sends every join that arrives during the next query to the pool as a
//! query of its own, each making the next slower — the likely cause of the
//! 6.6 s pool acquire of a saturated 3000-viewer run (BENCHMARKS.md, "Paced
//! wake-ups"); runs on a quiet machine never waited for SQLite either way.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a cached read is trusted: 2 s. Short enough that a change made
/// by another process on the same database (the `tunerpool user …`
/// commands), or a catalog change that hides a channel, takes effect within
/// a player's reconnect; long enough that a crowd joining a channel at once
/// (thousands of requests a second for a handful of users and channels)
/// costs one query per user and per item, not one per request.
pub const READ_CACHE_TTL: Duration = Duration::from_secs(2);

/// Most users kept by name. Only users that exist are cached (names come
/// from unauthenticated requests: an unknown one is never stored), so this
/// bounds memory even for a huge user table.
pub const MAX_CACHED_USERS: usize = 4096;

/// Most visibility answers kept (per user filter, kind and item id). Only
/// logged-in users reach the check, but the ids are theirs to choose, so
/// the table is bounded too.
pub const MAX_CACHED_VISIBLE: usize = 16_384;

/// A bounded map whose entries expire after a fixed time, with a
/// generation that every [`TtlCache::clear`] moves on.
pub(crate) struct TtlCache<K, V> {
    inner: Mutex<Inner<K, V>>,
    /// The keys being loaded now ([`TtlCache::get_or_load`]): one lock per key, held by the request that asks
    /// SQLite; a key leaves when that request is done or dropped, so the map holds at most one entry per request
    /// in flight.
    flights: Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
    ttl: Duration,
    cap: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

struct Inner<K, V> {
    map: HashMap<K, (V, Instant)>,
    generation: u64,
}

/// How often a cache answered, and how often it had to ask SQLite.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    pub(crate) fn new(ttl: Duration, cap: usize) -> Self {
        TtlCache {
            inner: Mutex::new(Inner { map: HashMap::new(), generation: 0 }),
            flights: Mutex::new(HashMap::new()),
            ttl,
            cap,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K, V>> {
        // A panic while holding the lock cannot leave the map half-changed
        // in a way that matters: every entry is checked for age on read.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The fresh entry for `key`, if any (counted as a hit or a miss).
    fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let found = self.peek(key);
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// The fresh entry for `key`, else what `load` answers: `Some` is stored
    /// (read against the generation seen before `load` ran), `None` (an
    /// unknown user, an item not visible) is returned and not stored.
    /// Requests that miss the same key while one of them loads it wait for
    /// that load and take its stored answer; only where it stored none (or
    /// failed, or its request went away) does each ask for itself.
    pub(crate) async fn get_or_load<Q, E, Fut>(&self, key: &Q, load: impl FnOnce() -> Fut) -> Result<Option<V>, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        if let Some(v) = self.get(key) {
            return Ok(Some(v));
        }
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
            flights.entry(key.to_owned()).or_default().clone()
        };
        let held = flight.clone().lock_owned().await;
        let _landing = Landing { flights: &self.flights, key, flight, _held: held };
        // Another request may have loaded it while this one waited.
        if let Some(v) = self.peek(key) {
            return Ok(Some(v));
        }
        let generation = self.generation();
        let found = load().await?;
        if let Some(v) = &found {
            self.insert(generation, key.to_owned(), v.clone());
        }
        Ok(found)
    }

    /// The fresh entry for `key`, not counted (a request that waited for
    /// another's load was already counted as a miss).
    fn peek<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let inner = self.lock();
        inner.map.get(key).filter(|(_, at)| at.elapsed() < self.ttl).map(|(v, _)| v.clone())
    }

    /// The generation to pass to [`TtlCache::insert`]: read it before the
    /// query whose answer will be stored.
    fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Stores `value`, unless the cache was cleared since `generation` was
    /// read (the value may predate a write) or it is full of fresh entries.
    fn insert(&self, generation: u64, key: K, value: V) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.map.len() >= self.cap && !inner.map.contains_key(&key) {
            let ttl = self.ttl;
            inner.map.retain(|_, (_, at)| at.elapsed() < ttl);
            if inner.map.len() >= self.cap {
                return;
            }
        }
        inner.map.insert(key, (value, Instant::now()));
    }

    /// Forgets every entry, and every answer read before now that is not
    /// stored yet.
    pub(crate) fn clear(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.map.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats { hits: self.hits.load(Ordering::Relaxed), misses: self.misses.load(Ordering::Relaxed) }
    }
}

/// A request's turn to load a key: leaving it (done, failed or dropped)
/// takes the key's entry out of the flights, unless a newer flight replaced
/// it, then lets the next waiter in.
struct Landing<'a, K: Hash + Eq + Borrow<Q>, Q: Hash + Eq + ?Sized> {
    flights: &'a Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
    key: &'a Q,
    flight: Arc<tokio::sync::Mutex<()>>,
    _held: tokio::sync::OwnedMutexGuard<()>,
}

impl<K: Hash + Eq + Borrow<Q>, Q: Hash + Eq + ?Sized> Drop for Landing<'_, K, Q> {
    fn drop(&mut self) {
        let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
        if flights.get(self.key).is_some_and(|f| Arc::ptr_eq(f, &self.flight)) {
            flights.remove(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_the_ttl() {
        let c = TtlCache::new(Duration::from_millis(50), 10);
        c.insert(c.generation(), "kim", 1);
        assert_eq!(c.get(&"kim"), Some(1));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.get(&"kim"), None);
        assert_eq!(c.stats(), CacheStats { hits: 1, misses: 1 });
    }

    #[test]
    fn an_answer_read_before_a_clear_is_not_stored_after_it() {
        let c = TtlCache::new(Duration::from_secs(60), 10);
        let before = c.generation();
        // A write lands and clears the cache while the query was running.
        c.clear();
        c.insert(before, "kim", "enabled");
        assert_eq!(c.get(&"kim"), None, "the stale answer was thrown away");
        c.insert(c.generation(), "kim", "disabled");
        assert_eq!(c.get(&"kim"), Some("disabled"));
        c.clear();
        assert_eq!(c.get(&"kim"), None);
    }

    #[test]
    fn the_cache_never_grows_past_its_cap() {
        let c = TtlCache::new(Duration::from_secs(60), 100);
        for i in 0..10_000 {
            c.insert(c.generation(), i, i);
        }
        assert_eq!(c.len(), 100);
        // The first ones stay (fresh entries are not pushed out by newcomers)…
        assert_eq!(c.get(&0), Some(0));
        assert_eq!(c.get(&5000), None);
        // …and an entry already there can still be refreshed.
        c.insert(c.generation(), 0, 7);
        assert_eq!(c.get(&0), Some(7));
    }

    /// A crowd missing one key makes one load; the others take its answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crowd_that_misses_one_key_loads_it_once() {
        let c = Arc::new(TtlCache::<String, u32>::new(Duration::from_secs(60), 10));
        let loads = Arc::new(AtomicU64::new(0));
        let crowd: Vec<_> = (0..50)
            .map(|_| {
                let (c, loads) = (c.clone(), loads.clone());
                tokio::spawn(async move {
                    c.get_or_load("kim", || async {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok::<_, ()>(Some(7))
                    })
                    .await
                })
            })
            .collect();
        for r in futures_util::future::join_all(crowd).await {
            assert_eq!(r.unwrap(), Ok(Some(7)));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1, "one query for the whole crowd");
        assert!(c.flights.lock().unwrap().is_empty(), "no flight is left behind");
    }

    /// An answer that is not stored (an unknown user) is not shared either:
    /// each request asks for itself, so none takes another's stale "no".
    #[tokio::test]
    async fn an_answer_not_stored_is_asked_again() {
        let c = TtlCache::<String, u32>::new(Duration::from_secs(60), 10);
        let loads = AtomicU64::new(0);
        for _ in 0..3 {
            let found = c
                .get_or_load("nobody", || async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, ()>(None)
                })
                .await;
            assert_eq!(found, Ok(None));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 3);
        assert_eq!(c.len(), 0);
    }

    /// A request dropped mid-load (its client went away) lets the next one
    /// load, and leaves no flight behind; a failed load is not stored.
    #[tokio::test]
    async fn a_dropped_or_failed_load_lets_the_next_request_load() {
        let c = Arc::new(TtlCache::<String, u32>::new(Duration::from_secs(60), 10));
        let stuck = {
            let c = c.clone();
            tokio::spawn(async move { c.get_or_load("kim", std::future::pending::<Result<Option<u32>, ()>>).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(c.flights.lock().unwrap().len(), 1);
        stuck.abort();
        let _ = stuck.await;
        assert!(c.flights.lock().unwrap().is_empty());
        assert_eq!(c.get_or_load("kim", || async { Err::<Option<u32>, _>("down") }).await, Err("down"));
        assert_eq!(c.get_or_load("kim", || async { Ok::<_, ()>(Some(3)) }).await, Ok(Some(3)));
        assert_eq!(c.get(&"kim".to_string()), Some(3));
    }

    #[test]
    fn a_full_cache_makes_room_by_dropping_expired_entries() {
        let c = TtlCache::new(Duration::from_millis(30), 10);
        for i in 0..10 {
            c.insert(c.generation(), i, i);
        }
        std::thread::sleep(Duration::from_millis(40));
        c.insert(c.generation(), 99, 99);
        assert_eq!(c.len(), 1);
        assert_eq!(c.get(&99), Some(99));
    }
}
