//! The shared buffer of one live session: one writer (the upstream reader task), many readers (viewers).
//!
//! # Concurrency design
//!
//! The one rule: **the writer never waits for a reader.** A slow viewer must not throttle the upstream or the other
//! viewers, so nothing a reader does can make [`Ring::push`] block, and a reader that falls behind loses data (it
//! jumps ahead to a keyframe) instead of holding data back.
//!
//! - **Slots.** Chunks live in a fixed array of slots; chunk number `seq` goes to slot `seq % slots`. Each slot is an
//!   [`ArcSwapOption`] holding an immutable `Entry { seq, offset, data }`. The writer replaces a slot's
//!   entry with one atomic pointer swap; a reader loads it lock-free (arc-swap's wait-free `load`) and clones the
//!   `Bytes` out: a reference-count bump, never a copy of the payload. Because `seq` travels *inside* the entry, a
//!   reader can never see a torn slot: it sees either its chunk (`entry.seq == seq`) or something else, which means
//!   its chunk was evicted.
//! - **Positions.** `head` (chunks pushed), `tail` (oldest chunk still buffered) and `last_key` (newest keyframe
//!   chunk) are atomics published by the writer. The writer advances `tail` *before* it clears or overwrites a slot,
//!   and fills a slot *before* it advances `head`, so a reader that finds its slot gone knows from `tail` that it was
//!   evicted. All these accesses are `SeqCst`; they are a handful per chunk, not per byte.
//! - **Locks.** The only mutex (`writer`) serialises pushes (there is one writer, so it is uncontended; it only makes
//!   a second concurrent writer harmless) and gives [`Ring::subscribe`] a consistent snapshot. Readers never take it
//!   in [`Reader::next`]. The writer's cost per chunk is O(1) whatever the number of readers, plus waking waiters.
//! - **Waking.** Readers that caught up wait on a [`tokio::sync::Notify`]; every push calls `notify_waiters`, which
//!   wakes all registered waiters and stores no permit (a reader re-checks `head` after registering, so no wake-up
//!   is lost). `Notify` was chosen over `event-listener` because it is already a dependency, its `Notified` future
//!   unregisters itself when dropped (a viewer that disconnects mid-wait leaves nothing behind), and it wakes in
//!   batches without holding its internal lock while running wakers. Its list lock is held only for list edits.
//! - **Memory bound.** Before inserting a chunk the writer evicts the oldest chunks until the buffered bytes plus the
//!   new chunk fit in `max_bytes`, dropping the evicted `Bytes` (so buffered bytes ≤ `max_bytes`, or one chunk if a
//!   single chunk is larger). The newest chunk is never evicted. Readers only ever hold the one chunk they are
//!   handing out (the one a new or jumping reader will return next), never a backlog.
//! - **Slot count.** `max_bytes / 1316` rounded up (1316 = 7 packets, the classic UDP/RTP TS payload and about the
//!   smallest chunk a [`Chunker`](crate::ts::Chunker) makes at a low bitrate with its delay flush), at least 16 and
//!   at most 65 536. So the byte bound, not the slot count, is what normally limits the buffer; should chunks be
//!   smaller still, a full slot array evicts the oldest chunk early — the buffer then holds fewer bytes, never more.
//!   A slot costs one pointer: 4 MB of buffer is ~3 200 slots, ~25 KB.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use arc_swap::ArcSwapOption;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;

use crate::ts::Chunk;

/// Smallest chunk size the slot count is planned for (7 TS packets).
const SMALL_CHUNK: usize = 7 * crate::ts::PACKET;
const MIN_SLOTS: usize = 16;
const MAX_SLOTS: usize = 1 << 16;

/// One buffered chunk; immutable once published.
#[derive(Debug)]
struct Entry {
    seq: u64,
    /// Stream byte offset of the first byte of `data`.
    offset: u64,
    data: Bytes,
    /// `data` starts with a keyframe.
    keyframe: bool,
}

/// What only the writer changes (under the `writer` mutex).
#[derive(Debug, Default)]
struct WriterState {
    head: u64,
    tail: u64,
    buffered: usize,
    bytes_in: u64,
    keyframes: u64,
    /// `seq + 1` of the newest keyframe chunk, 0 for none.
    last_key: u64,
}

/// Bounded shared buffer of one live session. One writer (the upstream reader task), many readers (viewers). It
/// exists so that a channel needs one upstream connection however many people watch it, and so that no viewer can
/// slow down the upstream or another viewer (see the module doc for how).
pub struct Ring {
    slots: Box<[ArcSwapOption<Entry>]>,
    max_bytes: usize,
    writer: Mutex<WriterState>,
    head: AtomicU64,
    tail: AtomicU64,
    last_key: AtomicU64,
    closed: AtomicBool,
    notify: Notify,
    /// The stream's latest PAT and PMT packets, handed to every new reader before its first chunk.
    preamble: ArcSwapOption<Bytes>,
    /// The stream has no video (its PMT says so): a new reader has no keyframe to wait for.
    no_video: AtomicBool,
    // Statistics, published for `stats()` without the lock.
    bytes_in: AtomicU64,
    buffered: AtomicU64,
    keyframes: AtomicU64,
    readers: AtomicUsize,
    jumps: AtomicU64,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("slots", &self.slots.len())
            .field("closed", &self.is_closed())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// A snapshot of a ring's counters, for the session's status and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Bytes pushed since the ring was made.
    pub bytes_in: u64,
    /// Chunks pushed since the ring was made.
    pub chunks_in: u64,
    /// Bytes currently buffered (≤ `max_bytes`, or one chunk if a single chunk is larger).
    pub buffered_bytes: u64,
    /// Readers currently subscribed.
    pub readers: usize,
    /// Keyframe chunks pushed since the ring was made.
    pub keyframes: u64,
    /// Jumps made by all readers so far (a reader fell behind and skipped ahead).
    pub jumps: u64,
    /// The memory bound the ring was made with.
    pub max_bytes: u64,
}

/// What [`Reader::next`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// The next chunk of the stream for this viewer.
    Chunk(Bytes),
    /// This viewer fell behind, the chunks it had not read yet were evicted, and it skipped `skipped_bytes` of the
    /// stream; the next chunk is the newest keyframe chunk (or the newest chunk when none is buffered).
    Jumped {
        /// Stream bytes this reader will never see.
        skipped_bytes: u64,
    },
    /// The ring was closed and this reader has read everything.
    Closed,
}

impl Ring {
    /// `max_bytes`: memory bound of buffered chunks (e.g. seconds × bitrate, ≤ 4 MB at 8 Mbit/s).
    pub fn new(max_bytes: usize) -> Arc<Ring> {
        let slots = max_bytes.div_ceil(SMALL_CHUNK).clamp(MIN_SLOTS, MAX_SLOTS);
        Arc::new(Ring {
            slots: (0..slots).map(|_| ArcSwapOption::empty()).collect(),
            max_bytes,
            writer: Mutex::new(WriterState::default()),
            head: AtomicU64::new(0),
            tail: AtomicU64::new(0),
            last_key: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            notify: Notify::new(),
            preamble: ArcSwapOption::empty(),
            no_video: AtomicBool::new(false),
            bytes_in: AtomicU64::new(0),
            buffered: AtomicU64::new(0),
            keyframes: AtomicU64::new(0),
            readers: AtomicUsize::new(0),
            jumps: AtomicU64::new(0),
        })
    }

    fn slot(&self, seq: u64) -> &ArcSwapOption<Entry> {
        // The modulo result is < slots.len(), so the cast back to usize is lossless.
        &self.slots[(seq % self.slots.len() as u64) as usize]
    }

    fn lock(&self) -> MutexGuard<'_, WriterState> {
        // parking_lot's lock does not poison: a panic while holding it loses at most that
        // session's state, and the ring keeps working.
        self.writer.lock()
    }

    /// Append a chunk. Never blocks or awaits, whatever the readers do; O(1) for the writer regardless of the
    /// number of readers (except waking them). Evicts the oldest chunks beyond `max_bytes`. Empty chunks and chunks
    /// pushed after [`Ring::close`] are ignored.
    pub fn push(&self, chunk: Chunk) {
        if chunk.data.is_empty() || self.is_closed() {
            return;
        }
        let len = chunk.data.len();
        {
            let mut w = self.lock();
            let seq = w.head;
            // Room in the slot array: the slot `seq` goes to must not hold a buffered chunk.
            if seq - w.tail >= self.slots.len() as u64 {
                self.evict_oldest(&mut w);
            }
            // Room in bytes (the newest chunk always stays, even if it alone is larger than max_bytes).
            while w.tail < seq && w.buffered + len > self.max_bytes {
                self.evict_oldest(&mut w);
            }
            let entry = Entry { seq, offset: w.bytes_in, data: chunk.data, keyframe: chunk.keyframe };
            self.slot(seq).store(Some(Arc::new(entry)));
            w.buffered += len;
            w.bytes_in += len as u64;
            if chunk.keyframe {
                w.keyframes += 1;
                w.last_key = seq + 1;
                self.last_key.store(seq + 1, SeqCst);
                self.keyframes.store(w.keyframes, SeqCst);
            }
            w.head = seq + 1;
            self.head.store(seq + 1, SeqCst);
            self.bytes_in.store(w.bytes_in, SeqCst);
            self.buffered.store(w.buffered as u64, SeqCst);
        }
        self.notify.notify_waiters();
    }

    /// Drops the oldest buffered chunk. `tail` moves first so a reader that then misses its slot sees why.
    fn evict_oldest(&self, w: &mut WriterState) {
        let seq = w.tail;
        w.tail = seq + 1;
        self.tail.store(seq + 1, SeqCst);
        if let Some(old) = self.slot(seq).swap(None) {
            w.buffered = w.buffered.saturating_sub(old.data.len());
        }
    }

    /// A new reader positioned at the most recent keyframe chunk still in the buffer (else at the newest chunk, else
    /// at the next chunk to come), so it gets a decodable picture at once.
    /// Its first chunk comes after the stream's PAT and PMT (see [`Ring::set_preamble`]).
    pub fn subscribe(self: &Arc<Self>) -> Reader {
        self.subscribe_with(None)
    }

    /// A new reader that starts with the stream's PAT and PMT and a keyframe: at the most recent keyframe chunk
    /// still in the buffer, or, when there is none yet (a channel just started: its first bytes are mid-GOP), at
    /// the next keyframe chunk to come once the PAT and PMT are known, skipping what comes before it — for at most
    /// `max_wait`, after which (or once the stream turns out to have no video) it takes the next chunk whatever
    /// it is.
    pub fn subscribe_at_keyframe(self: &Arc<Self>, max_wait: Duration) -> Reader {
        self.subscribe_with(Some(max_wait))
    }

    fn subscribe_with(self: &Arc<Self>, keyframe_wait: Option<Duration>) -> Reader {
        self.readers.fetch_add(1, SeqCst);
        let w = self.lock();
        let mut reader = Reader {
            ring: Arc::clone(self),
            next: w.head,
            next_offset: w.bytes_in,
            pending: None,
            jumps: 0,
            read: 0,
            preamble_due: true,
            until_key: None,
        };
        if let Some(wait) = keyframe_wait.filter(|_| w.last_key <= w.tail) {
            reader.until_key = Some(Instant::now() + wait);
        } else if let Some(seq) = start_position(w.head, w.tail, w.last_key) {
            // Under the writer lock nothing is evicted, so the entry is there.
            if let Some(e) = self.slot(seq).load_full().filter(|e| e.seq == seq) {
                reader.next = seq + 1;
                reader.next_offset = e.offset + e.data.len() as u64;
                reader.pending = Some(e.data.clone());
            }
        }
        drop(w);
        reader
    }

    /// No more data (upstream finished for good): readers drain what is left, then get [`Next::Closed`].
    pub fn close(&self) {
        {
            // Under the lock so that no push is half done.
            let _w = self.lock();
            self.closed.store(true, SeqCst);
        }
        self.notify.notify_waiters();
    }

    /// The stream's latest PAT and PMT packets (whole packets), which every new reader gets before its first
    /// chunk: a player needs them to find the programme, and a chunk starting at a keyframe does not repeat them.
    pub fn set_preamble(&self, packets: Bytes) {
        self.preamble.store(Some(Arc::new(packets)));
    }

    /// Tell new readers that the stream has no video, so no keyframe will come to wait for.
    pub fn set_no_video(&self, no_video: bool) {
        self.no_video.store(no_video, SeqCst);
    }

    /// Whether [`Ring::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    /// Counters (each read atomically; together a near-consistent snapshot).
    pub fn stats(&self) -> RingStats {
        RingStats {
            bytes_in: self.bytes_in.load(SeqCst),
            chunks_in: self.head.load(SeqCst),
            buffered_bytes: self.buffered.load(SeqCst),
            readers: self.readers.load(SeqCst),
            keyframes: self.keyframes.load(SeqCst),
            jumps: self.jumps.load(SeqCst),
            max_bytes: self.max_bytes as u64,
        }
    }
}

/// Where a new or jumping reader starts: the newest keyframe chunk still buffered, else the newest chunk.
///
/// A jumping reader loads `head`, `tail` and `last_key` one after the other while the writer runs, and the writer
/// publishes `last_key` before `head`: a `last_key` newer than the reader's `head` is a real keyframe whose slot is
/// already stored (the caller checks the slot's sequence number), not a reason to fall back to a non-keyframe chunk.
fn start_position(head: u64, tail: u64, last_key: u64) -> Option<u64> {
    if last_key > tail {
        Some(last_key - 1)
    } else if head > tail {
        Some(head - 1)
    } else {
        None
    }
}

/// One viewer's position in a [`Ring`]; exists so each viewer reads at its own pace without affecting anyone.
/// Dropping it decrements the ring's reader count (and, if it was waiting, unregisters the wait).
#[derive(Debug)]
pub struct Reader {
    ring: Arc<Ring>,
    /// Sequence number of the next chunk to read from the ring.
    next: u64,
    /// Stream offset of chunk `next`.
    next_offset: u64,
    /// A chunk already taken out of the ring, returned by the next call (start or jump target).
    pending: Option<Bytes>,
    jumps: u64,
    read: u64,
    /// The ring's preamble (PAT, PMT) still has to go before the next chunk: this reader has read nothing yet.
    preamble_due: bool,
    /// Skipping chunks that do not start with a keyframe, until this instant ([`Ring::subscribe_at_keyframe`]).
    until_key: Option<Instant>,
}

enum Try {
    Ready(Next),
    Empty,
}

impl Reader {
    /// The next chunk for this viewer. If this reader fell so far behind that its next chunk was evicted, it jumps to
    /// the newest keyframe chunk (or newest chunk) and returns [`Next::Jumped`] first; then chunks, starting with
    /// that one. Cancel-safe: dropping the future loses nothing.
    pub async fn next(&mut self) -> Next {
        loop {
            if let Try::Ready(n) = self.try_next() {
                return n;
            }
            // A clone of the Arc (one atomic increment per wait, not per chunk) so the wait can borrow the ring
            // while `try_next` borrows the reader mutably.
            let ring = Arc::clone(&self.ring);
            let notified = ring.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Re-check after registering: a push between the first check and `enable` would otherwise be missed.
            if let Try::Ready(n) = self.try_next() {
                return n;
            }
            notified.await;
        }
    }

    /// The next chunk if one is ready, without waiting: `None` when this reader has caught up with the writer.
    pub fn try_next_now(&mut self) -> Option<Next> {
        match self.try_next() {
            Try::Ready(n) => Some(n),
            Try::Empty => None,
        }
    }

    fn try_next(&mut self) -> Try {
        if let Some(data) = self.pending.take() {
            return Try::Ready(self.deliver(data));
        }
        loop {
            let ring = &*self.ring;
            let seq = self.next;
            if seq >= ring.head.load(SeqCst) {
                // `close` happens after the last push, so a `closed` seen here means `head` is final.
                if ring.closed.load(SeqCst) && seq >= ring.head.load(SeqCst) {
                    return Try::Ready(Next::Closed);
                }
                if seq >= ring.head.load(SeqCst) {
                    return Try::Empty;
                }
            }
            if seq >= ring.tail.load(SeqCst) {
                let guard = ring.slot(seq).load();
                if let Some(e) = guard.as_ref().filter(|e| e.seq == seq) {
                    let (data, keyframe) = (e.data.clone(), e.keyframe);
                    drop(guard);
                    self.next = seq + 1;
                    self.next_offset += data.len() as u64;
                    if let Some(deadline) = self.until_key {
                        // A keyframe is where to start once the PAT and PMT that go before it are known (an upstream
                        // that starts between its tables and a keyframe makes the reader wait for the next one).
                        let start_here = keyframe && ring.preamble.load().is_some();
                        if !start_here && !ring.no_video.load(SeqCst) && Instant::now() < deadline {
                            // Not decodable from here: skip it, the keyframe is still to come.
                            continue;
                        }
                        self.until_key = None;
                    }
                    return Try::Ready(self.deliver(data));
                }
                // The slot no longer holds `seq`: the writer evicted it after our `tail` check.
            }
            return Try::Ready(self.jump());
        }
    }

    fn deliver(&mut self, data: Bytes) -> Next {
        let data = match self.preamble_due {
            true => {
                self.preamble_due = false;
                match self.ring.preamble.load_full() {
                    Some(pre) => {
                        let mut with = BytesMut::with_capacity(pre.len() + data.len());
                        with.extend_from_slice(&pre);
                        with.extend_from_slice(&data);
                        with.freeze()
                    }
                    None => data,
                }
            }
            false => data,
        };
        self.read += data.len() as u64;
        Next::Chunk(data)
    }

    /// Moves to the newest keyframe chunk (or newest chunk), taking it out as `pending`.
    fn jump(&mut self) -> Next {
        let ring = &*self.ring;
        let mut spins = 0u32;
        loop {
            let head = ring.head.load(SeqCst);
            let tail = ring.tail.load(SeqCst);
            let last_key = ring.last_key.load(SeqCst);
            if let Some(target) = start_position(head, tail, last_key) {
                if let Some(e) = ring.slot(target).load_full().filter(|e| e.seq == target) {
                    let skipped_bytes = e.offset.saturating_sub(self.next_offset);
                    self.until_key = None;
                    self.next = target + 1;
                    self.next_offset = e.offset + e.data.len() as u64;
                    self.pending = Some(e.data.clone());
                    self.jumps += 1;
                    ring.jumps.fetch_add(1, SeqCst);
                    return Next::Jumped { skipped_bytes };
                }
            }
            // The writer is between evicting and publishing (or evicted our target meanwhile): it is running, not
            // waiting for anything, so this settles within a push.
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// How many times this reader fell behind and jumped ahead.
    pub fn jumps(&self) -> u64 {
        self.jumps
    }

    /// Bytes handed out by [`Reader::next`] so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// The ring this reader reads from.
    pub fn ring(&self) -> &Arc<Ring> {
        &self.ring
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.ring.readers.fetch_sub(1, SeqCst);
    }
}
