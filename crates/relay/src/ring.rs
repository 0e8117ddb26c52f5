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
//! - **Locks.** The mutex `writer` serialises pushes (there is one writer, so it is uncontended; it only makes
//!   a second concurrent writer harmless) and gives [`Ring::subscribe`] a consistent snapshot. Readers never take it
//!   in [`Reader::next`]. The writer's cost per chunk is O(1) whatever the number of readers, plus waking them. The
//!   other mutex, `wakers_edit`, is taken only when a reader subscribes or is dropped.
//! - **Waking.** Each reader has its own [`AtomicWaker`]; the ring keeps the list of them (copy-on-write behind an
//!   [`ArcSwap`], edited under a mutex only when a reader comes or goes). A reader that caught up registers its
//!   task's waker in its own `AtomicWaker` (a compare-and-swap, no lock) and re-checks `head`; every push loads the
//!   list (lock-free) and wakes each registered waker (a reader not waiting costs two atomic operations), so no
//!   wake-up is lost and no lock is taken per chunk by the writer or by any reader. It replaced a
//!   [`tokio::sync::Notify`], whose waiter list is a mutex that every waiting reader took once per chunk to
//!   register and the writer once per batch of 32 wake-ups (BENCHMARKS.md, "Relay: one copy, recycled buffers,
//!   lock-free wake-ups"). A reader dropped mid-wait leaves at most a stale waker, woken once for nothing. A writer
//!   may push without waking ([`Ring::push_reclaiming_unwoken`]) and wake once for several chunks
//!   ([`Ring::wake_readers`]): the session's feed wakes its viewers at most every `relay.wake_interval`, so each
//!   viewer sends what piled up in one write instead of one write per chunk.
//! - **Memory bound.** Before inserting a chunk the writer evicts the oldest chunks until the buffered bytes plus the
//!   new chunk fit in the ring's current capacity, dropping the evicted `Bytes` (so buffered bytes ≤ the capacity,
//!   or one chunk if a single chunk is larger). The newest chunk is never evicted. Readers only ever hold the one
//!   chunk they are handing out (the one a new or jumping reader will return next), never a backlog.
//! - **Capacity by bitrate.** A ring made with [`Ring::sized`] holds what its channel needs rather than a fixed
//!   size: the larger of `seconds` × the bitrate it measures on its own pushes (bytes per second over the last few
//!   one-second windows; 8 Mbit/s is assumed until the first window closes) and the join need, the largest of the
//!   last few GOPs (keyframe to keyframe, in bytes) plus a quarter; never less than 128 KiB, never more than
//!   `max_bytes`. On top of that the newest keyframe chunk is never evicted below `max_bytes`, so a joining viewer
//!   always finds a keyframe to start at, even before a GOP was measured or when one is longer than the last ones.
//!   The capacity moves with every push (a clock read per chunk, a few dozen a second per channel); a shrink
//!   evicts at the next push. [`Ring::new`] makes a ring of a fixed size instead.
//! - **Slot count.** `max_bytes / 1316` rounded up (1316 = 7 packets, the classic UDP/RTP TS payload and about the
//!   smallest chunk a [`Chunker`](crate::ts::Chunker) makes at a low bitrate with its delay flush), at least 16 and
//!   at most 65 536. So the byte bound, not the slot count, is what normally limits the buffer; should chunks be
//!   smaller still, a full slot array evicts the oldest chunk early — the buffer then holds fewer bytes, never more.
//!   A slot costs one pointer: 4 MB of buffer is ~3 200 slots, ~25 KB. A sized ring plans its slots for at most
//!   4 MiB of such chunks whatever its hard cap (a buffer that holds more does so at a high bitrate, whose chunks
//!   are ~32 KiB: 3 200 of them are 100 MB), so a 16 MiB cap costs 25 KB of slots, not 100 KB.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use arc_swap::{ArcSwap, ArcSwapOption};
use futures_util::task::AtomicWaker;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::ts::Chunk;

/// Smallest chunk size the slot count is planned for (7 TS packets).
const SMALL_CHUNK: usize = 7 * crate::ts::PACKET;
const MIN_SLOTS: usize = 16;
const MAX_SLOTS: usize = 1 << 16;
/// A sized ring plans its slots for this many bytes of the smallest chunks: only a high bitrate (chunks of ~32 KiB)
/// makes it hold more, and 3 200 slots of those are 100 MB.
const SIZED_SLOT_PLAN: usize = 4 << 20;

/// The least a sized ring holds (if its hard cap allows): a few chunks, whatever the bitrate.
const MIN_CAPACITY: usize = 128 << 10;
/// Bytes per second a sized ring assumes until it has measured its stream (8 Mbit/s).
const ASSUMED_RATE: u64 = 1_000_000;
/// The bitrate is measured over windows of at least this long...
const RATE_WINDOW: Duration = Duration::from_secs(1);
/// ...and averaged over the last this many.
const RATE_WINDOWS: usize = 4;
/// The join need is the largest of the last this many GOPs...
const GOPS: usize = 4;
/// ...plus this fraction of it (1/4): a viewer that just joined at the previous keyframe still has its GOP when
/// the next keyframe arrives.
const GOP_MARGIN_DIV: usize = 4;

/// How a ring sizes itself from what it measures (see [`Ring::sized`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingSizing {
    /// Hold at least this much of the stream at its measured bitrate (the slack a slow viewer has before it jumps).
    pub seconds: Duration,
    /// Never more than this many bytes, whatever the bitrate or GOP (the hard cap).
    pub max_bytes: usize,
}

/// What a sized ring measures of its stream, under the writer lock.
#[derive(Debug)]
struct Sizer {
    seconds: Duration,
    /// Start of the current rate window and bytes pushed in it.
    window: Option<(Instant, u64)>,
    /// Bytes per second of the last closed windows (`rates[n % RATE_WINDOWS]`), `rated` of them so far.
    rates: [u64; RATE_WINDOWS],
    rated: usize,
    /// Stream offset of the newest keyframe chunk.
    last_key_offset: Option<u64>,
    /// The last GOPs in bytes (`gops[n % GOPS]`).
    gops: [u64; GOPS],
    gops_seen: usize,
}

impl Sizer {
    fn new(seconds: Duration) -> Sizer {
        Sizer {
            seconds,
            window: None,
            rates: [0; RATE_WINDOWS],
            rated: 0,
            last_key_offset: None,
            gops: [0; GOPS],
            gops_seen: 0,
        }
    }

    /// Counts a pushed chunk of `len` bytes starting at stream offset `offset`.
    fn record(&mut self, now: Instant, offset: u64, len: usize, keyframe: bool) {
        let (start, bytes) = self.window.get_or_insert((now, 0));
        *bytes += len as u64;
        let elapsed = now.saturating_duration_since(*start);
        if elapsed >= RATE_WINDOW {
            // Bytes per second; the window's own last chunk counts (it arrived within the window's time).
            let rate = u128::from(*bytes) * 1_000_000 / elapsed.as_micros().max(1);
            self.rates[self.rated % RATE_WINDOWS] = u64::try_from(rate).unwrap_or(u64::MAX);
            self.rated += 1;
            self.window = Some((now, 0));
        }
        if keyframe {
            if let Some(prev) = self.last_key_offset {
                self.gops[self.gops_seen % GOPS] = offset - prev;
                self.gops_seen += 1;
            }
            self.last_key_offset = Some(offset);
        }
    }

    /// Bytes per second: the mean of the closed windows, or the assumed rate before the first one closes.
    fn rate(&self) -> u64 {
        let n = self.rated.min(RATE_WINDOWS);
        match n {
            0 => ASSUMED_RATE,
            _ => self.rates[..n].iter().sum::<u64>() / n as u64,
        }
    }

    /// What the ring should hold now, before the bounds.
    fn want(&self) -> usize {
        let by_time = self.seconds.as_secs_f64() * self.rate() as f64;
        let gop = usize::try_from(self.gops.iter().copied().max().unwrap_or(0)).unwrap_or(usize::MAX);
        let join = gop.saturating_add(gop / GOP_MARGIN_DIV);
        // `as` saturates for floats: a huge product becomes usize::MAX, bounded by the caller.
        (by_time as usize).max(join)
    }
}

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
#[derive(Debug)]
struct WriterState {
    head: u64,
    tail: u64,
    buffered: usize,
    bytes_in: u64,
    keyframes: u64,
    /// `seq + 1` of the newest keyframe chunk, 0 for none.
    last_key: u64,
    /// What the buffer may hold now (bytes); fixed for [`Ring::new`], moving for [`Ring::sized`].
    capacity: usize,
    /// Measures the stream for a sized ring; `None` for a fixed one.
    sizer: Option<Sizer>,
}

/// Bounded shared buffer of one live session. One writer (the upstream reader task), many readers (viewers). It
/// exists so that a channel needs one upstream connection however many people watch it, and so that no viewer can
/// slow down the upstream or another viewer (see the module doc for how).
pub struct Ring {
    slots: Box<[ArcSwapOption<Entry>]>,
    /// The hard cap: the buffer never holds more (unless one chunk alone is larger).
    max_bytes: usize,
    writer: Mutex<WriterState>,
    head: AtomicU64,
    tail: AtomicU64,
    last_key: AtomicU64,
    closed: AtomicBool,
    /// The wakers of the readers (see the module doc, "Waking").
    wakers: ArcSwap<Vec<Arc<AtomicWaker>>>,
    /// Held to edit `wakers` (a reader comes or goes), never to wake.
    wakers_edit: Mutex<()>,
    /// The stream's latest PAT and PMT packets, handed to every new reader before its first chunk.
    preamble: ArcSwapOption<Bytes>,
    /// The stream has no video (its PMT says so): a new reader has no keyframe to wait for.
    no_video: AtomicBool,
    // Statistics, published for `stats()` without the lock.
    bytes_in: AtomicU64,
    buffered: AtomicU64,
    capacity: AtomicU64,
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
    /// What the buffer may hold now: `max_bytes` for a fixed ring, what the stream needs for a sized one.
    pub capacity_bytes: u64,
    /// Readers currently subscribed.
    pub readers: usize,
    /// Keyframe chunks pushed since the ring was made.
    pub keyframes: u64,
    /// Jumps made by all readers so far (a reader fell behind and skipped ahead).
    pub jumps: u64,
    /// The memory bound the ring was made with (its hard cap).
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
    /// A ring of a fixed size: `max_bytes` of buffered chunks, whatever the stream.
    pub fn new(max_bytes: usize) -> Arc<Ring> {
        Ring::make(max_bytes.div_ceil(SMALL_CHUNK), max_bytes, max_bytes, None)
    }

    /// A ring that sizes itself from its stream: `sizing.seconds` at the bitrate it measures, and at least the
    /// largest recent GOP plus a quarter (so a joining viewer finds a keyframe), within 128 KiB and
    /// `sizing.max_bytes` (see the module doc). Until it has measured a second of stream it holds `seconds` at
    /// 8 Mbit/s.
    pub fn sized(sizing: RingSizing) -> Arc<Ring> {
        let sizer = Sizer::new(sizing.seconds);
        let capacity = sizer.want().clamp(MIN_CAPACITY.min(sizing.max_bytes), sizing.max_bytes);
        let slots = sizing.max_bytes.min(SIZED_SLOT_PLAN).div_ceil(SMALL_CHUNK);
        Ring::make(slots, sizing.max_bytes, capacity, Some(sizer))
    }

    fn make(slots: usize, max_bytes: usize, capacity: usize, sizer: Option<Sizer>) -> Arc<Ring> {
        let slots = slots.clamp(MIN_SLOTS, MAX_SLOTS);
        let state =
            WriterState { head: 0, tail: 0, buffered: 0, bytes_in: 0, keyframes: 0, last_key: 0, capacity, sizer };
        Arc::new(Ring {
            slots: (0..slots).map(|_| ArcSwapOption::empty()).collect(),
            max_bytes,
            writer: Mutex::new(state),
            head: AtomicU64::new(0),
            tail: AtomicU64::new(0),
            last_key: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            wakers: ArcSwap::from_pointee(Vec::new()),
            wakers_edit: Mutex::new(()),
            preamble: ArcSwapOption::empty(),
            no_video: AtomicBool::new(false),
            bytes_in: AtomicU64::new(0),
            buffered: AtomicU64::new(0),
            capacity: AtomicU64::new(capacity as u64),
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
    /// number of readers (except waking them). Evicts the oldest chunks beyond the ring's capacity. Empty chunks and
    /// chunks pushed after [`Ring::close`] are ignored.
    pub fn push(&self, chunk: Chunk) {
        self.push_and_wake(chunk, Instant::now());
    }

    /// [`Ring::push`] without waking the readers, handing the data of each chunk it evicts to `reclaim` when the
    /// ring held the chunk's only entry (no reader was loading it); whether a viewer still holds the bytes is for
    /// `reclaim` to find out ([`Chunker::recycle`](crate::ts::Chunker::recycle) keeps the buffer only if nobody
    /// does). Called under the writer lock: `reclaim` must be quick. The writer paces its wake-ups (a session's
    /// feed does, `relay.wake_interval`) and calls [`Ring::wake_readers`] itself, so that the chunks pushed in
    /// between reach each viewer together, in one write.
    pub fn push_reclaiming_unwoken(&self, chunk: Chunk, reclaim: &mut dyn FnMut(Bytes)) {
        self.push_inner(chunk, Instant::now(), reclaim);
    }

    /// [`Ring::push`] at a given instant (a sized ring measures its bitrate by it).
    #[cfg(test)]
    fn push_at(&self, chunk: Chunk, now: Instant) {
        self.push_and_wake(chunk, now);
    }

    fn push_and_wake(&self, chunk: Chunk, now: Instant) {
        if self.push_inner(chunk, now, &mut |_| {}) {
            self.wake_readers();
        }
    }

    /// Stores the chunk; whether it did (not empty, ring not closed).
    fn push_inner(&self, chunk: Chunk, now: Instant, reclaim: &mut dyn FnMut(Bytes)) -> bool {
        if chunk.data.is_empty() || self.is_closed() {
            return false;
        }
        let len = chunk.data.len();
        {
            let mut w = self.lock();
            let seq = w.head;
            let offset = w.bytes_in;
            if let Some(sizer) = w.sizer.as_mut() {
                sizer.record(now, offset, len, chunk.keyframe);
                let capacity = sizer.want().clamp(MIN_CAPACITY.min(self.max_bytes), self.max_bytes);
                w.capacity = capacity;
                self.capacity.store(capacity as u64, SeqCst);
            }
            // Room in the slot array: the slot `seq` goes to must not hold a buffered chunk.
            if seq - w.tail >= self.slots.len() as u64 {
                self.evict_oldest(&mut w, reclaim);
            }
            // Room in bytes (the newest chunk always stays, even if it alone is larger than the capacity). A sized
            // ring keeps its newest keyframe chunk and what follows it up to the hard cap, so that a joining viewer
            // finds a keyframe; a new keyframe chunk releases the one before.
            let keep_from = match (&w.sizer, chunk.keyframe) {
                (Some(_), false) if w.last_key > w.tail => w.last_key - 1,
                _ => seq,
            };
            while w.tail < seq
                && (w.buffered + len > self.max_bytes || (w.buffered + len > w.capacity && w.tail < keep_from))
            {
                self.evict_oldest(&mut w, reclaim);
            }
            let entry = Entry { seq, offset, data: chunk.data, keyframe: chunk.keyframe };
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
        true
    }

    /// Wakes every reader waiting for a chunk: one lock-free load of the list, one atomic operation or two per
    /// reader.
    pub fn wake_readers(&self) {
        for waker in self.wakers.load().iter() {
            waker.wake();
        }
    }

    /// Adds a reader's waker to the list (when it subscribes).
    fn add_waker(&self, waker: &Arc<AtomicWaker>) {
        let _edit = self.wakers_edit.lock();
        let mut list = Vec::clone(&self.wakers.load());
        list.push(Arc::clone(waker));
        self.wakers.store(Arc::new(list));
    }

    /// Takes a reader's waker out of the list (when it is dropped).
    fn remove_waker(&self, waker: &Arc<AtomicWaker>) {
        let _edit = self.wakers_edit.lock();
        let mut list = Vec::clone(&self.wakers.load());
        list.retain(|w| !Arc::ptr_eq(w, waker));
        self.wakers.store(Arc::new(list));
    }

    /// Drops the oldest buffered chunk. `tail` moves first so a reader that then misses its slot sees why.
    fn evict_oldest(&self, w: &mut WriterState, reclaim: &mut dyn FnMut(Bytes)) {
        let seq = w.tail;
        w.tail = seq + 1;
        self.tail.store(seq + 1, SeqCst);
        if let Some(old) = self.slot(seq).swap(None) {
            w.buffered = w.buffered.saturating_sub(old.data.len());
            if let Ok(entry) = Arc::try_unwrap(old) {
                reclaim(entry.data);
            }
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
        let waker = Arc::new(AtomicWaker::new());
        self.add_waker(&waker);
        let w = self.lock();
        let mut reader = Reader {
            ring: Arc::clone(self),
            waker,
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
        self.wake_readers();
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
            capacity_bytes: self.capacity.load(SeqCst),
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
    /// Where this reader's task waits to be woken by a push (in the ring's list while the reader lives).
    waker: Arc<AtomicWaker>,
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
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// [`Reader::next`] as a poll: `Pending` once this reader's task is registered to be woken by the next push.
    pub fn poll_next(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Next> {
        if let Try::Ready(n) = self.try_next() {
            return std::task::Poll::Ready(n);
        }
        self.waker.register(cx.waker());
        // Re-check after registering: a push between the first check and the registration would otherwise be
        // missed (a push after it wakes the waker just registered).
        match self.try_next() {
            Try::Ready(n) => std::task::Poll::Ready(n),
            Try::Empty => std::task::Poll::Pending,
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
        self.ring.remove_waker(&self.waker);
        self.ring.readers.fetch_sub(1, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: usize = 32 * 1024;

    /// Chunk `n` of `len` bytes, its first 8 bytes `n`.
    fn chunk(n: u64, len: usize, keyframe: bool) -> Chunk {
        let mut v = vec![0u8; len.max(8)];
        v[..8].copy_from_slice(&n.to_be_bytes());
        Chunk { data: Bytes::from(v), keyframe }
    }

    fn number(b: &[u8]) -> u64 {
        u64::from_be_bytes(b[..8].try_into().unwrap())
    }

    /// Pushes `seconds` of a stream of `rate` bytes/s in 32 KiB chunks from `*n` on, a keyframe every `gop`
    /// chunks, the clock running from `*at`.
    fn stream(ring: &Ring, n: &mut u64, at: &mut Instant, rate: u64, seconds: u64, gop: u64) {
        let chunks = rate * seconds / CHUNK as u64;
        let step = Duration::from_secs(seconds) / chunks as u32;
        for _ in 0..chunks {
            ring.push_at(chunk(*n, CHUNK, (*n).is_multiple_of(gop)), *at);
            *n += 1;
            *at += step;
        }
    }

    fn sized(seconds: u64, max_bytes: usize) -> Arc<Ring> {
        Ring::sized(RingSizing { seconds: Duration::from_secs(seconds), max_bytes })
    }

    /// The first chunk a new reader gets (no preamble set: the chunk itself).
    fn first(ring: &Arc<Ring>) -> Bytes {
        match ring.subscribe().try_next_now() {
            Some(Next::Chunk(b)) => b,
            other => panic!("no chunk for a new reader: {other:?}"),
        }
    }

    #[test]
    fn capacity_follows_the_measured_bitrate() {
        let ring = sized(1, 16 << 20);
        // Until a second is measured: 1 s at the assumed 8 Mbit/s.
        assert_eq!(ring.stats().capacity_bytes, 1_000_000);
        let (mut n, mut at) = (0, Instant::now());
        // 2 MB/s (16 Mbit/s), a keyframe every 16 chunks (0.26 s): 1 s of it is 2 MB.
        stream(&ring, &mut n, &mut at, 2_000_000, 6, 16);
        let s = ring.stats();
        assert!((1_900_000..=2_100_000).contains(&s.capacity_bytes), "{s:?}");
        assert!(s.buffered_bytes <= s.capacity_bytes, "{s:?}");
        assert!(s.buffered_bytes + CHUNK as u64 > s.capacity_bytes, "{s:?}");
        // The same channel at 250 kB/s (2 Mbit/s): the ring shrinks to what 1 s of that is, at the next pushes.
        stream(&ring, &mut n, &mut at, 250_000, 8, 4);
        let s = ring.stats();
        assert!((200_000..=300_000).contains(&s.capacity_bytes), "{s:?}");
        assert!(s.buffered_bytes <= s.capacity_bytes, "{s:?}");
        // Twice the seconds, twice the bytes.
        let (ring, mut n, mut at) = (sized(2, 16 << 20), 0, Instant::now());
        stream(&ring, &mut n, &mut at, 2_000_000, 6, 16);
        assert!((3_800_000..=4_200_000).contains(&ring.stats().capacity_bytes), "{:?}", ring.stats());
    }

    #[test]
    fn capacity_covers_the_last_gops_plus_a_margin() {
        // 1 MB/s with a keyframe every 96 chunks (~3 s): 1 s would not hold a GOP; the ring holds 1.25 GOP.
        let ring = sized(1, 16 << 20);
        let (mut n, mut at) = (0, Instant::now());
        stream(&ring, &mut n, &mut at, 1_000_000, 12, 96);
        let gop = 96 * CHUNK as u64;
        let s = ring.stats();
        assert_eq!(s.capacity_bytes, gop + gop / 4, "{s:?}");
        assert!(s.buffered_bytes > gop, "{s:?}");
    }

    #[test]
    fn a_new_reader_starts_at_the_newest_keyframe_after_a_resize() {
        let ring = sized(1, 16 << 20);
        let (mut n, mut at) = (0, Instant::now());
        stream(&ring, &mut n, &mut at, 4_000_000, 5, 50);
        // Shrink: a tenth of the bitrate, the same GOP in chunks (so ten times as long: ~4 s).
        let before = n;
        stream(&ring, &mut n, &mut at, 400_000, 10, 50);
        let newest_key = (before..n).filter(|k| k % 50 == 0).max().unwrap();
        assert_eq!(number(&first(&ring)), newest_key);
        // And after growing again.
        stream(&ring, &mut n, &mut at, 4_000_000, 5, 50);
        let newest_key = (0..n).filter(|k| k % 50 == 0).max().unwrap();
        assert_eq!(number(&first(&ring)), newest_key);
    }

    #[test]
    fn the_newest_keyframe_stays_even_before_a_gop_is_measured() {
        // Seconds 0 and a first GOP far longer than the floor: the capacity alone would evict the keyframe.
        let ring = Ring::sized(RingSizing { seconds: Duration::ZERO, max_bytes: 16 << 20 });
        let at = Instant::now();
        for n in 0..100u64 {
            ring.push_at(chunk(n, CHUNK, n == 3), at + Duration::from_millis(n * 30));
        }
        assert_eq!(number(&first(&ring)), 3);
        // Up to the hard cap: past it the keyframe goes too.
        let ring = Ring::sized(RingSizing { seconds: Duration::ZERO, max_bytes: 1 << 20 });
        for n in 0..100u64 {
            ring.push_at(chunk(n, CHUNK, n == 3), at + Duration::from_millis(n * 30));
        }
        let s = ring.stats();
        assert!(s.buffered_bytes <= 1 << 20, "{s:?}");
        assert_eq!(number(&first(&ring)), 99);
    }

    #[test]
    fn capacity_is_bounded_by_the_hard_cap_and_the_floor() {
        // 10 s at 5 MB/s would be 50 MB: the cap is 4 MiB.
        let ring = sized(10, 4 << 20);
        let (mut n, mut at) = (0, Instant::now());
        stream(&ring, &mut n, &mut at, 5_000_000, 6, 32);
        let s = ring.stats();
        assert_eq!(s.capacity_bytes, 4 << 20, "{s:?}");
        assert!(s.buffered_bytes <= 4 << 20, "{s:?}");
        // A 16 MiB cap filled at 5 MB/s: the slots, planned for 4 MiB of the smallest chunks, do not cut it short.
        let ring = sized(10, 16 << 20);
        let (mut n, mut at) = (0, Instant::now());
        stream(&ring, &mut n, &mut at, 5_000_000, 6, 32);
        let s = ring.stats();
        assert_eq!(s.capacity_bytes, 16 << 20, "{s:?}");
        assert!(s.buffered_bytes > (16 << 20) - CHUNK as u64, "{s:?}");
        // A trickle (20 kB/s): at least the floor.
        let ring = sized(1, 4 << 20);
        let (mut n, mut at) = (0, Instant::now());
        for _ in 0..200 {
            ring.push_at(chunk(n, 1316, n % 20 == 0), at);
            n += 1;
            at += Duration::from_millis(65);
        }
        assert_eq!(ring.stats().capacity_bytes, MIN_CAPACITY as u64);
    }

    #[test]
    fn a_fixed_ring_keeps_its_size() {
        let ring = Ring::new(1 << 20);
        let (mut n, mut at) = (0, Instant::now());
        stream(&ring, &mut n, &mut at, 100_000, 5, 10);
        let s = ring.stats();
        assert_eq!((s.capacity_bytes, s.max_bytes), (1 << 20, 1 << 20));
    }
}
