//! Connection tracking: the ground truth for "how many upstream connections were open".
//!
//! Semantics (exact, and what the counters mean):
//!
//! * A live TS, VOD or series request that is admitted takes one *slot* of its account. The
//!   slot is held by a [`ConnGuard`] that lives inside the response body stream and gives the
//!   slot back exactly when that stream is dropped (body finished, client gone, error, cut,
//!   shutdown).
//! * An HLS viewer, keyed by (account, stream id), takes one slot on its first playlist or
//!   segment request and keeps it while requests keep coming; [`Limits::sweep_hls`] frees it
//!   once no request arrived for the session timeout.
//! * Admission is atomic under one mutex. When `open >= max_connections` (and the limit is not
//!   0 = unlimited): in `Refuse` mode the request is refused (`refused += 1`); in `CutOldest`
//!   mode the oldest slots are removed from the books *in the same critical section* (their
//!   bodies are told to end through their cancellation token, `cut += 1` each) and the freed
//!   slot is handed to the new request. Hence `open` — and therefore `max_concurrent` — never
//!   exceeds the limit, even though the cut connection's socket may need a few more
//!   milliseconds to close (it sends no further bytes after the cut).
//! * Slow to notice (`release_delay`, 0 by default): a closed connection keeps its slot for that long
//!   after its body is dropped, as real panels that notice a close only after their own timeout. During
//!   that time it counts in `open` and against the limit (so a new connection then is refused, or in
//!   `CutOldest` mode evicts it as a cut). Closed slots are dropped lazily, under the same mutex, whenever
//!   the books are read or changed.
//! * The mode and the delay can change at run time ([`Limits::set_mode`], [`Limits::set_release_delay`]).
//! * `opened` counts admitted connections, `bytes_sent` the body bytes produced for them.
//! * Requests rejected for other reasons (bad credentials, unknown stream, injected faults)
//!   are not counted as connections at all.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::config::LimitMode;

/// A snapshot of all connection counters (also served as `GET /_control/counters`).
///
/// Exists so tests can assert what the provider actually saw, independently of what the
/// system under test believes it did.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Counters {
    /// Per account (every configured account is present, even with all zeros).
    pub accounts: BTreeMap<String, AccountCounters>,
    /// Sum of `opened` over all accounts.
    pub total_opened: u64,
    /// `player_api.php`, `get.php` and `xmltv.php` requests (any credentials).
    pub api_requests: u64,
}

/// Connection counters of one account.
///
/// Exists because the per-account limit is what a provider enforces and what tunerpool must
/// respect.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct AccountCounters {
    /// Connections open right now (live TS + VOD/series bodies in flight + HLS sessions).
    pub open: u32,
    /// Connections admitted since start (or the last reset).
    pub opened: u64,
    /// High-water mark of `open`.
    pub max_concurrent: u32,
    /// Requests refused because the account was at its limit (`Refuse` mode).
    pub refused: u64,
    /// Connections ended to make room for a newer one (`CutOldest` mode).
    pub cut: u64,
    /// Stream body bytes sent (live, VOD, HLS playlists and segments).
    pub bytes_sent: u64,
}

/// The books of all open connections, per account.
///
/// Exists so that admission, release, cutting and counting are one atomic, auditable piece.
#[derive(Debug)]
pub(crate) struct Limits {
    state: Mutex<State>,
    /// Parent of every connection's token; cancelled at shutdown.
    root: CancellationToken,
}

#[derive(Debug, Default)]
struct State {
    accounts: BTreeMap<String, AccountState>,
    next_id: u64,
    mode: LimitMode,
    /// How long a closed connection keeps counting.
    release_delay: Duration,
}

#[derive(Debug, Default)]
struct AccountState {
    /// Open slots by admission id (ascending = oldest first).
    open: BTreeMap<u64, Slot>,
    /// HLS sessions: stream id -> slot id.
    hls: HashMap<u64, u64>,
    opened: u64,
    max_concurrent: u32,
    refused: u64,
    cut: u64,
    bytes: Arc<AtomicU64>,
}

#[derive(Debug)]
struct Slot {
    cancel: CancellationToken,
    /// For HLS sessions: (stream id, last request).
    hls: Option<(u64, Instant)>,
    /// When the connection closed, if it did and the provider has not noticed yet (slow to notice).
    closed: Option<Instant>,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AtLimit;

/// One admitted streaming connection; dropping it releases the slot.
///
/// Exists so that release is tied to the lifetime of the response body, not to handler code
/// paths that could forget it.
#[derive(Debug)]
pub(crate) struct ConnGuard {
    limits: Arc<Limits>,
    username: String,
    id: u64,
    /// Cancelled when this connection is cut (or the provider shuts down).
    pub(crate) cancel: CancellationToken,
    /// The account's `bytes_sent` counter.
    pub(crate) bytes: Arc<AtomicU64>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut state = self.limits.lock();
        let delay = state.release_delay;
        if let Some(acc) = state.accounts.get_mut(&self.username) {
            // Already gone if this connection was cut: its slot was handed over.
            if delay.is_zero() {
                acc.open.remove(&self.id);
            } else if let Some(slot) = acc.open.get_mut(&self.id) {
                slot.closed = Some(Instant::now());
            }
        }
        tracing::trace!(user = %self.username, id = self.id, "connection released");
    }
}

impl AccountState {
    /// Forget closed connections the provider has noticed by `now`.
    fn notice_closes(&mut self, now: Instant, delay: Duration) {
        self.open.retain(|_, slot| slot.closed.is_none_or(|at| now.duration_since(at) < delay));
    }

    /// Make room for one more slot under `max`. Returns false if the request must be refused.
    fn make_room(&mut self, max: u32, mode: LimitMode) -> bool {
        if max == 0 || (self.open.len() as u64) < u64::from(max) {
            return true;
        }
        match mode {
            LimitMode::Refuse { .. } => {
                self.refused += 1;
                false
            }
            LimitMode::CutOldest => {
                while (self.open.len() as u64) >= u64::from(max) {
                    let Some((_, slot)) = self.open.pop_first() else {
                        break;
                    };
                    if let Some((stream_id, _)) = slot.hls {
                        self.hls.remove(&stream_id);
                    }
                    slot.cancel.cancel();
                    self.cut += 1;
                }
                true
            }
        }
    }

    fn insert(&mut self, id: u64, slot: Slot) {
        self.open.insert(id, slot);
        self.opened += 1;
        self.max_concurrent = self.max_concurrent.max(self.open.len() as u32);
    }
}

impl Limits {
    pub(crate) fn new(root: CancellationToken, mode: LimitMode, release_delay: Duration) -> Arc<Self> {
        Arc::new(Limits { state: Mutex::new(State { mode, release_delay, ..State::default() }), root })
    }

    /// The books, with every close the provider has noticed by now applied.
    fn lock(&self) -> MutexGuard<'_, State> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (now, delay) = (Instant::now(), state.release_delay);
        for acc in state.accounts.values_mut() {
            acc.notice_closes(now, delay);
        }
        state
    }

    /// How the limit is enforced now.
    pub(crate) fn mode(&self) -> LimitMode {
        self.lock().mode
    }

    /// Change how the limit is enforced (applies to the next admission).
    pub(crate) fn set_mode(&self, mode: LimitMode) {
        self.lock().mode = mode;
    }

    /// How long a closed connection keeps counting.
    pub(crate) fn release_delay(&self) -> Duration {
        self.lock().release_delay
    }

    /// Change how long a closed connection keeps counting; already closed ones follow the new delay.
    pub(crate) fn set_release_delay(&self, delay: Duration) {
        let mut state = self.lock();
        state.release_delay = delay;
        let now = Instant::now();
        for acc in state.accounts.values_mut() {
            acc.notice_closes(now, delay);
        }
    }

    /// Admit one streaming connection (live TS, VOD, series) for `username`.
    pub(crate) fn admit(self: &Arc<Self>, username: &str, max: u32) -> Result<ConnGuard, AtLimit> {
        let mut state = self.lock();
        let mode = state.mode;
        state.next_id += 1;
        let id = state.next_id;
        let acc = state.accounts.entry(username.to_string()).or_default();
        if !acc.make_room(max, mode) {
            tracing::debug!(user = username, max, "connection refused: at limit");
            return Err(AtLimit);
        }
        let cancel = self.root.child_token();
        acc.insert(id, Slot { cancel: cancel.clone(), hls: None, closed: None });
        let bytes = acc.bytes.clone();
        tracing::debug!(user = username, id, open = acc.open.len(), "connection admitted");
        Ok(ConnGuard { limits: self.clone(), username: username.to_string(), id, cancel, bytes })
    }

    /// Register a request of an HLS viewer: opens the session if needed (subject to the limit)
    /// and refreshes its last-seen time. Returns the account's byte counter.
    pub(crate) fn touch_hls(&self, username: &str, stream_id: u64, max: u32) -> Result<Arc<AtomicU64>, AtLimit> {
        let now = Instant::now();
        let mut state = self.lock();
        let mode = state.mode;
        state.next_id += 1;
        let id = state.next_id;
        let acc = state.accounts.entry(username.to_string()).or_default();
        if let Some(existing) = acc.hls.get(&stream_id).copied() {
            if let Some(slot) = acc.open.get_mut(&existing) {
                slot.hls = Some((stream_id, now));
                return Ok(acc.bytes.clone());
            }
            acc.hls.remove(&stream_id);
        }
        if !acc.make_room(max, mode) {
            tracing::debug!(user = username, stream_id, "HLS session refused: at limit");
            return Err(AtLimit);
        }
        acc.insert(id, Slot { cancel: self.root.child_token(), hls: Some((stream_id, now)), closed: None });
        acc.hls.insert(stream_id, id);
        tracing::debug!(user = username, stream_id, id, "HLS session opened");
        Ok(acc.bytes.clone())
    }

    /// Release HLS sessions idle for longer than `timeout`.
    pub(crate) fn sweep_hls(&self, timeout: Duration) {
        let now = Instant::now();
        let mut state = self.lock();
        for (user, acc) in state.accounts.iter_mut() {
            let expired: Vec<(u64, u64)> = acc
                .open
                .iter()
                .filter_map(|(id, slot)| match slot.hls {
                    Some((stream_id, seen)) if now.duration_since(seen) >= timeout => Some((*id, stream_id)),
                    _ => None,
                })
                .collect();
            for (id, stream_id) in expired {
                acc.open.remove(&id);
                acc.hls.remove(&stream_id);
                tracing::debug!(user = %user, stream_id, "HLS session expired");
            }
        }
    }

    /// Connections open now for one account.
    pub(crate) fn open_count(&self, username: &str) -> u32 {
        self.lock().accounts.get(username).map_or(0, |a| a.open.len() as u32)
    }

    /// Counters of the given accounts (plus any other account that has state).
    pub(crate) fn snapshot(&self, usernames: &[String]) -> (BTreeMap<String, AccountCounters>, u64) {
        let state = self.lock();
        let mut out: BTreeMap<String, AccountCounters> =
            usernames.iter().map(|u| (u.clone(), AccountCounters::default())).collect();
        let mut total = 0;
        for (user, acc) in &state.accounts {
            total += acc.opened;
            out.insert(
                user.clone(),
                AccountCounters {
                    open: acc.open.len() as u32,
                    opened: acc.opened,
                    max_concurrent: acc.max_concurrent,
                    refused: acc.refused,
                    cut: acc.cut,
                    bytes_sent: acc.bytes.load(Ordering::Relaxed),
                },
            );
        }
        (out, total)
    }

    /// Zero the counters. Open connections stay open (and `max_concurrent` restarts at the
    /// current `open`).
    pub(crate) fn reset(&self) {
        let mut state = self.lock();
        for acc in state.accounts.values_mut() {
            acc.opened = 0;
            acc.refused = 0;
            acc.cut = 0;
            acc.max_concurrent = acc.open.len() as u32;
            acc.bytes.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFUSE: LimitMode = LimitMode::Refuse { status: 403 };

    fn limits(mode: LimitMode) -> Arc<Limits> {
        Limits::new(CancellationToken::new(), mode, Duration::ZERO)
    }

    #[test]
    fn refuse_and_release() {
        let l = limits(REFUSE);
        let a = l.admit("u", 2).unwrap();
        let b = l.admit("u", 2).unwrap();
        assert_eq!(l.admit("u", 2).unwrap_err(), AtLimit);
        assert_eq!(l.open_count("u"), 2);
        drop(a);
        assert_eq!(l.open_count("u"), 1);
        let _c = l.admit("u", 2).unwrap();
        drop(b);
        let (c, total) = l.snapshot(&["u".into(), "other".into()]);
        assert_eq!(total, 3);
        assert_eq!(c["u"].open, 1);
        assert_eq!(c["u"].max_concurrent, 2);
        assert_eq!(c["u"].refused, 1);
        assert_eq!(c["other"], AccountCounters::default());
    }

    #[test]
    fn cut_oldest_hands_over_slot() {
        let l = limits(LimitMode::CutOldest);
        let a = l.admit("u", 1).unwrap();
        let b = l.admit("u", 1).unwrap();
        assert!(a.cancel.is_cancelled());
        assert!(!b.cancel.is_cancelled());
        drop(a); // must not release b's slot
        assert_eq!(l.open_count("u"), 1);
        let (c, _) = l.snapshot(&[]);
        assert_eq!((c["u"].cut, c["u"].max_concurrent, c["u"].opened), (1, 1, 2));
        drop(b);
        assert_eq!(l.open_count("u"), 0);
    }

    #[test]
    fn unlimited_and_hls() {
        let l = limits(REFUSE);
        let guards: Vec<_> = (0..10).map(|_| l.admit("u", 0).unwrap()).collect();
        assert_eq!(l.open_count("u"), 10);
        drop(guards);
        l.touch_hls("h", 5, 1).unwrap();
        l.touch_hls("h", 5, 1).unwrap();
        assert_eq!(l.open_count("h"), 1);
        assert!(l.touch_hls("h", 6, 1).is_err());
        l.sweep_hls(Duration::ZERO);
        assert_eq!(l.open_count("h"), 0);
        let (c, _) = l.snapshot(&[]);
        assert_eq!((c["h"].opened, c["h"].refused), (1, 1));
    }

    #[test]
    fn slow_to_notice_keeps_a_closed_connection_counting_until_the_delay_is_lifted() {
        // An hour: the close can only be noticed through the run-time change below, so the test is not timed.
        let l = Limits::new(CancellationToken::new(), REFUSE, Duration::from_secs(3600));
        let a = l.admit("u", 1).unwrap();
        drop(a);
        assert_eq!(l.open_count("u"), 1, "still counted after the close");
        assert_eq!(l.admit("u", 1).unwrap_err(), AtLimit);
        l.set_mode(LimitMode::CutOldest);
        let b = l.admit("u", 1).unwrap();
        let (c, _) = l.snapshot(&[]);
        assert_eq!((c["u"].refused, c["u"].cut, c["u"].open), (1, 1, 1), "the ghost was evicted");
        drop(b);
        assert_eq!(l.open_count("u"), 1);
        l.set_release_delay(Duration::ZERO);
        assert_eq!(l.open_count("u"), 0);
        assert_eq!(l.release_delay(), Duration::ZERO);
        let _c = l.admit("u", 1).unwrap();
    }
}
