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

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
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
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let found = {
            let inner = self.lock();
            inner.map.get(key).filter(|(_, at)| at.elapsed() < self.ttl).map(|(v, _)| v.clone())
        };
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// The generation to pass to [`TtlCache::insert`]: read it before the
    /// query whose answer will be stored.
    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Stores `value`, unless the cache was cleared since `generation` was
    /// read (the value may predate a write) or it is full of fresh entries.
    pub(crate) fn insert(&self, generation: u64, key: K, value: V) {
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
