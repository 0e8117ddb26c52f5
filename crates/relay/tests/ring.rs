//! The shared buffer: readers at their own pace, a writer that never waits.

use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::task::JoinHandle;
use tunerpool_relay::ring::{Next, Ring};
use tunerpool_relay::ts::Chunk;
use tunerpool_relay::Reader;

const T: Duration = Duration::from_secs(10);

/// Chunk `n`: `len` bytes whose first 8 bytes are `n`, so order and identity can be checked.
fn chunk(n: u64, len: usize, keyframe: bool) -> Chunk {
    let mut v = vec![(n % 251) as u8; len.max(8)];
    v[..8].copy_from_slice(&n.to_be_bytes());
    Chunk { data: Bytes::from(v), keyframe }
}

fn number(b: &Bytes) -> u64 {
    u64::from_be_bytes(b[..8].try_into().unwrap())
}

async fn next(r: &mut Reader) -> Next {
    tokio::time::timeout(T, r.next()).await.expect("reader stuck")
}

/// Spawns a task calling `r.next()` and returns once that call has been polled (so a
/// reader with nothing to read is parked, its waker registered): an explicit signal
/// instead of sleeping and hoping the task ran. The task gives the reader back with
/// what `next()` returned, so the reader lives as long as the handle's output.
async fn spawn_next(mut r: Reader) -> JoinHandle<(Reader, Next)> {
    let (polled, was_polled) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let got = {
            let mut next = std::pin::pin!(r.next());
            let first = futures_util::poll!(next.as_mut());
            let _ = polled.send(());
            match first {
                Poll::Ready(n) => n,
                Poll::Pending => next.await,
            }
        };
        (r, got)
    });
    was_polled.await.expect("the task polled next()");
    task
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reader_that_keeps_up_gets_every_chunk_in_order() {
    let ring = Ring::new(64 * 1024);
    let mut r = ring.subscribe();
    // The writer never waits for readers; this test paces it (outside the ring) so that the reader is never more
    // than 32 chunks (half the buffer) behind, which is what "keeping up" means.
    let progress = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writer = {
        let ring = Arc::clone(&ring);
        let progress = Arc::clone(&progress);
        tokio::spawn(async move {
            for n in 0..2000 {
                while n >= progress.load(std::sync::atomic::Ordering::SeqCst) + 32 {
                    tokio::task::yield_now().await;
                }
                ring.push(chunk(n, 1000, n % 50 == 0));
            }
            ring.close();
        })
    };
    let mut expect = 0;
    loop {
        match next(&mut r).await {
            Next::Chunk(b) => {
                assert_eq!(number(&b), expect);
                expect += 1;
                progress.store(expect, std::sync::atomic::Ordering::SeqCst);
            }
            Next::Closed => break,
            Next::Jumped { skipped_bytes } => panic!("jumped {skipped_bytes} bytes while keeping up"),
        }
    }
    writer.await.unwrap();
    assert_eq!(expect, 2000);
    assert_eq!(r.jumps(), 0, "a reader keeping up never jumps");
    assert_eq!(r.bytes_read(), 2000 * 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_reader_starts_at_the_latest_keyframe() {
    let ring = Ring::new(1 << 20);
    // Before anything is pushed: waits for the first chunk.
    let mut early = ring.subscribe();
    for n in 0..100 {
        ring.push(chunk(n, 1000, n % 25 == 3));
    }
    assert_eq!(next(&mut early).await, Next::Chunk(chunk(0, 1000, false).data));
    let mut r = ring.subscribe();
    let Next::Chunk(first) = next(&mut r).await else { panic!() };
    assert_eq!(number(&first), 78, "chunks 3, 28, 53, 78 are keyframes; 78 is the latest");
    let Next::Chunk(second) = next(&mut r).await else { panic!() };
    assert_eq!(number(&second), 79);

    // No keyframe in the buffer: the newest chunk.
    let ring = Ring::new(10_000);
    for n in 0..100 {
        ring.push(chunk(n, 1000, n == 5));
    }
    let mut r = ring.subscribe();
    assert_eq!(next(&mut r).await, Next::Chunk(chunk(99, 1000, false).data));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_reader_jumps_to_newest_keyframe() {
    let max = 100 * 1000;
    let ring = Ring::new(max);
    ring.push(chunk(0, 1000, true));
    let mut r = ring.subscribe();
    assert_eq!(next(&mut r).await, Next::Chunk(chunk(0, 1000, true).data));
    // The reader stops while the writer pushes 3 × max_bytes.
    for n in 1..=300 {
        ring.push(chunk(n, 1000, n % 40 == 0));
    }
    let Next::Jumped { skipped_bytes } = next(&mut r).await else { panic!("expected a jump") };
    // Newest keyframe is 280; chunks 1..=279 were skipped.
    assert_eq!(skipped_bytes, 279 * 1000);
    let Next::Chunk(b) = next(&mut r).await else { panic!() };
    assert_eq!(number(&b), 280);
    assert_eq!(r.jumps(), 1);
    let Next::Chunk(b) = next(&mut r).await else { panic!() };
    assert_eq!(number(&b), 281);
    assert_eq!(ring.stats().jumps, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stuck_reader_never_blocks_the_writer_and_memory_stays_bounded() {
    let max = 1 << 20;
    let ring = Ring::new(max);
    ring.push(chunk(0, 32 * 1024, true));
    let mut stuck = ring.subscribe(); // never reads
    let mut waiting = ring.subscribe();
    assert!(matches!(next(&mut waiting).await, Next::Chunk(_)));
    // A reader parked inside `next()` (registered with the notifier) must not slow the writer either.
    let parked = spawn_next(waiting).await;

    let start = Instant::now();
    let mut max_seen = 0;
    for n in 1..=10_000u64 {
        let len = 1316 * (1 + (n as usize % 40)); // 1.3 KB .. 52 KB
        ring.push(chunk(n, len, n % 100 == 0));
        max_seen = max_seen.max(ring.stats().buffered_bytes);
        assert!(ring.stats().buffered_bytes <= (max + len) as u64);
    }
    let took = start.elapsed();
    assert!(took < Duration::from_secs(2), "10 000 pushes took {took:?}");
    let stats = ring.stats();
    assert!(max_seen <= max as u64, "buffered {max_seen} > {max}");
    assert!(stats.buffered_bytes > max as u64 / 2, "the buffer is used: {stats:?}");
    assert_eq!((stats.chunks_in, stats.readers, stats.keyframes), (10_001, 2, 101));

    // The stuck reader, woken up at last, gets the chunk it was given at subscribe (readers start with their
    // first chunk in hand), then jumps once and goes on from the newest keyframe.
    assert_eq!(
        number(&match next(&mut stuck).await {
            Next::Chunk(b) => b,
            other => panic!("{other:?}"),
        }),
        0
    );
    assert!(matches!(next(&mut stuck).await, Next::Jumped { .. }));
    let Next::Chunk(b) = next(&mut stuck).await else { panic!() };
    assert_eq!(number(&b), 10_000);
    assert_eq!(stuck.jumps(), 1);
    parked.abort();
    let _ = parked.await;
    assert_eq!(ring.stats().readers, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_single_chunk_larger_than_the_bound_is_kept_alone() {
    let ring = Ring::new(10_000);
    for n in 0..10 {
        ring.push(chunk(n, 4000, false));
    }
    ring.push(chunk(10, 50_000, true));
    assert_eq!(ring.stats().buffered_bytes, 50_000);
    ring.push(chunk(11, 4000, false));
    assert_eq!(ring.stats().buffered_bytes, 4000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn a_thousand_readers_get_identical_bytes() {
    let ring = Ring::new(8 << 20);
    ring.push(chunk(0, 32 * 1024, true));
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let mut r = ring.subscribe();
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                match next(&mut r).await {
                    Next::Chunk(b) => seen.push(b),
                    Next::Closed => return (seen, r.jumps()),
                    Next::Jumped { .. } => panic!("8 MB of buffer is enough for 500 chunks"),
                }
            }
        }));
    }
    for n in 1..250 {
        ring.push(chunk(n, 32 * 1024, n % 25 == 0));
        if n % 10 == 0 {
            tokio::task::yield_now().await;
        }
    }
    ring.close();
    let expected: Vec<Bytes> = (0..250).map(|n| chunk(n, 32 * 1024, false).data).collect();
    for t in tasks {
        let (seen, jumps) = tokio::time::timeout(T, t).await.unwrap().unwrap();
        assert_eq!(jumps, 0);
        assert!(seen == expected, "every reader got the same 250 chunks");
        // Zero-copy: the reader holds the ring's buffers, not copies.
        assert!(seen.iter().all(|b| b.len() == 32 * 1024));
    }
    assert_eq!(ring.stats().readers, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_drain_then_see_closed() {
    let ring = Ring::new(1 << 20);
    let mut r = ring.subscribe();
    for n in 0..10 {
        ring.push(chunk(n, 100, n == 0));
    }
    ring.close();
    assert!(ring.is_closed());
    ring.push(chunk(99, 100, false)); // ignored after close
    for n in 0..10 {
        assert_eq!(
            number(&match next(&mut r).await {
                Next::Chunk(b) => b,
                other => panic!("{other:?}"),
            }),
            n
        );
    }
    assert_eq!(next(&mut r).await, Next::Closed);
    assert_eq!(next(&mut r).await, Next::Closed);
    // Subscribing after close: the last keyframe chunk onwards, then Closed.
    let mut late = ring.subscribe();
    assert!(matches!(next(&mut late).await, Next::Chunk(_)));

    // A reader waiting when close comes is woken.
    let ring = Ring::new(1 << 20);
    let waiter = spawn_next(ring.subscribe()).await;
    ring.close();
    assert_eq!(tokio::time::timeout(T, waiter).await.unwrap().unwrap().1, Next::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropped_readers_leave_nothing_behind() {
    let ring = Ring::new(1 << 20);
    let readers: Vec<_> = (0..10).map(|_| ring.subscribe()).collect();
    assert_eq!(ring.stats().readers, 10);
    drop(readers);
    assert_eq!(ring.stats().readers, 0);

    // Readers dropped (cancelled) in the middle of waiting.
    let mut tasks = Vec::new();
    for _ in 0..100 {
        tasks.push(spawn_next(ring.subscribe()).await);
    }
    assert_eq!(ring.stats().readers, 100);
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        assert!(t.await.unwrap_err().is_cancelled());
    }
    assert_eq!(ring.stats().readers, 0);
    // A `next()` future dropped by a select/timeout does not lose the chunk either.
    let mut r = ring.subscribe();
    assert!(tokio::time::timeout(Duration::from_millis(10), r.next()).await.is_err());
    ring.push(chunk(1, 100, true));
    assert_eq!(next(&mut r).await, Next::Chunk(chunk(1, 100, true).data));
    // And the ring itself is freed once the session and readers are gone.
    let weak = Arc::downgrade(&ring);
    drop(r);
    drop(ring);
    assert!(weak.upgrade().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writer_and_slow_readers_stay_consistent() {
    // Readers of all speeds against a small ring: whatever they see is in order, each gap is announced by a
    // Jumped whose skipped_bytes matches the gap, and after a jump comes the keyframe chunk.
    let ring = Ring::new(50 * 1000);
    let mut tasks = Vec::new();
    for speed in 0..8u64 {
        let mut r = ring.subscribe();
        tasks.push(tokio::spawn(async move {
            let mut last: Option<u64> = None;
            let mut after_jump: Option<u64> = None;
            loop {
                match next(&mut r).await {
                    Next::Chunk(b) => {
                        let n = number(&b);
                        if let Some(skipped) = after_jump.take() {
                            assert_eq!(n % 10, 0, "after a jump comes a keyframe chunk");
                            let gap = n - last.map_or(0, |l| l + 1);
                            assert_eq!(skipped, gap * 1000);
                        } else if let Some(l) = last {
                            assert_eq!(n, l + 1);
                        }
                        last = Some(n);
                        if speed > 0 && n.is_multiple_of(speed * 7) {
                            tokio::time::sleep(Duration::from_micros(200 * speed)).await;
                        }
                    }
                    Next::Jumped { skipped_bytes } => after_jump = Some(skipped_bytes),
                    Next::Closed => return (last, r.jumps()),
                }
            }
        }));
    }
    for n in 0..20_000 {
        ring.push(chunk(n, 1000, n % 10 == 0));
        if n % 100 == 0 {
            tokio::task::yield_now().await;
        }
    }
    ring.close();
    for t in tasks {
        let (last, _jumps) = tokio::time::timeout(T, t).await.unwrap().unwrap();
        assert_eq!(last, Some(19_999));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tiny_chunks_are_bounded_by_the_slot_count_too() {
    // 16 slots (the minimum); chunks far smaller than planned for: the slot array, not bytes, evicts.
    let ring = Ring::new(1000);
    let mut r = ring.subscribe();
    for n in 0..100 {
        ring.push(chunk(n, 8, n % 30 == 0));
    }
    let stats = ring.stats();
    assert_eq!((stats.buffered_bytes, stats.max_bytes), (16 * 8, 1000));
    let Next::Jumped { skipped_bytes } = next(&mut r).await else { panic!() };
    assert_eq!(skipped_bytes, 90 * 8);
    for n in 90..100 {
        assert_eq!(next(&mut r).await, Next::Chunk(chunk(n, 8, false).data));
    }
}

/// Issue 10 finding 8: the first viewer of a channel that just started (nothing but mid-GOP chunks buffered)
/// skips to the next keyframe chunk, and gets the stream's PAT and PMT (the preamble) before it; a viewer of a
/// running channel starts at the buffered keyframe, preamble first; later chunks come as they are.
#[tokio::test]
async fn a_keyframe_reader_starts_with_the_preamble_and_a_keyframe() {
    let ring = Ring::new(64 * 1024);
    let preamble = Bytes::from_static(b"PAT.....PMT.....");
    ring.set_preamble(preamble.clone());
    let with_preamble = |n: u64| {
        let mut v = preamble.to_vec();
        v.extend_from_slice(&chunk(n, 100, false).data);
        Bytes::from(v)
    };
    ring.push(chunk(0, 100, false));
    // An hour: only a keyframe ends the wait here.
    let mut cold = ring.subscribe_at_keyframe(Duration::from_secs(3600));
    ring.push(chunk(1, 100, false));
    assert!(cold.try_next_now().is_none(), "mid-GOP chunks are skipped");
    ring.push(chunk(2, 100, true));
    ring.push(chunk(3, 100, false));
    assert_eq!(next(&mut cold).await, Next::Chunk(with_preamble(2)));
    assert_eq!(next(&mut cold).await, Next::Chunk(chunk(3, 100, false).data));

    let mut warm = ring.subscribe_at_keyframe(Duration::from_secs(3600));
    assert_eq!(next(&mut warm).await, Next::Chunk(with_preamble(2)));
    assert_eq!(next(&mut warm).await, Next::Chunk(chunk(3, 100, false).data));
    // The plain subscription starts at the same keyframe, with the preamble too.
    let mut plain = ring.subscribe();
    assert_eq!(next(&mut plain).await, Next::Chunk(with_preamble(2)));
}

/// The keyframe wait is bounded: past it, or for a stream without video, the next chunk is taken as it is.
#[tokio::test]
async fn the_keyframe_wait_is_bounded_and_skipped_without_video() {
    let ring = Ring::new(64 * 1024);
    ring.push(chunk(0, 100, false));
    // A keyframe before the PAT and PMT are known is no place to start: the next one is.
    let mut early = ring.subscribe_at_keyframe(Duration::from_secs(3600));
    ring.push(chunk(10, 100, true));
    assert!(early.try_next_now().is_none(), "no preamble yet");
    ring.set_preamble(Bytes::from_static(b"PAT+PMT."));
    ring.push(chunk(11, 100, true));
    let mut with = b"PAT+PMT.".to_vec();
    with.extend_from_slice(&chunk(11, 100, true).data);
    assert_eq!(next(&mut early).await, Next::Chunk(Bytes::from(with)));

    let ring = Ring::new(64 * 1024);
    ring.push(chunk(0, 100, false));
    let mut expired = ring.subscribe_at_keyframe(Duration::ZERO);
    ring.push(chunk(1, 100, false));
    assert_eq!(next(&mut expired).await, Next::Chunk(chunk(1, 100, false).data), "no preamble known: none sent");

    let mut audio_only = ring.subscribe_at_keyframe(Duration::from_secs(3600));
    ring.set_no_video(true);
    ring.push(chunk(2, 100, false));
    assert_eq!(next(&mut audio_only).await, Next::Chunk(chunk(2, 100, false).data));
}
