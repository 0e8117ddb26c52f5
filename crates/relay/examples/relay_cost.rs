//! What the relay's per-byte and per-viewer work costs, as counts that do not depend on how busy the machine is:
//! run it under `valgrind --tool=cachegrind --cache-sim=no` (exact instruction counts; this machine's `perf` has
//! no hardware counters) and divide by what it printed.
//!
//! - `pipeline LOOPS`: the sample (`testdata/media/sample-720p.ts`) looped LOOPS times through a session's path in
//!   16 KiB reads — align, chunk at keyframes, push into a ring sized for 1 s — with no viewer (the per-channel
//!   work: per upstream byte).
//! - `fanout READERS CHUNKS`: one ring, READERS readers as tasks of a one-thread runtime, CHUNKS chunks of 32 KiB
//!   each handed to every reader, the writer yielding after each push so that every reader waits and is woken for
//!   every chunk (the per-viewer work: per chunk per reader).
//!
//! Run: `cargo build --release -p tunerpool-relay --example relay_cost`, then e.g.
//! `valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null target/release/examples/relay_cost pipeline 20`.
//! BENCHMARKS.md ("Relay: one copy, recycled buffers, lock-free wake-ups") has the figures, before and after.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tunerpool_relay::ring::{Next, Ring, RingSizing};
use tunerpool_relay::ts::{Aligner, Chunk, Chunker};

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/media/sample-720p.ts");
const READ: usize = 16 * 1024;
const CHUNK_BYTES: usize = 188 * 174;

/// The session's pump, as `session.rs` (`RingFeed::feed`) does it in this version.
struct Feed {
    aligner: Aligner,
    chunker: Chunker,
    out: Vec<Chunk>,
    chunks: u64,
}

impl Feed {
    fn new() -> Feed {
        Feed {
            aligner: Aligner::new(),
            chunker: Chunker::new(CHUNK_BYTES, Duration::from_millis(50)),
            out: Vec::new(),
            chunks: 0,
        }
    }

    // FEED-BEGIN: the production path of this version.
    fn feed(&mut self, ring: &Ring, data: &[u8], now: Instant) {
        let Feed { aligner, chunker, out, chunks } = self;
        aligner.push_with(data, |packets| chunker.push_packets(packets, now, out));
        chunker.push_packets(&[], now, out);
        for c in out.drain(..) {
            *chunks += 1;
            ring.push_reclaiming_unwoken(c, &mut |data| chunker.recycle(data));
        }
        // The session wakes its readers at most once per read (and only every `relay.wake_interval`): with no
        // reader, a wake costs one load of the empty list.
        ring.wake_readers();
    }
    // FEED-END
}

fn pipeline(loops: usize) {
    let ts = std::fs::read(SAMPLE).expect("testdata/media/sample-720p.ts");
    let ring = Ring::sized(RingSizing { seconds: Duration::from_secs(1), max_bytes: 16 << 20 });
    let mut feed = Feed::new();
    let now = Instant::now();
    for _ in 0..loops {
        for read in ts.chunks(READ) {
            feed.feed(&ring, read, now);
        }
    }
    let bytes = (ts.len() * loops) as u64;
    println!("pipeline: {bytes} bytes in {} chunks; ring {:?}", feed.chunks, ring.stats());
}

fn fanout(readers: usize, chunks: u64) {
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    rt.block_on(async {
        let ring = Ring::new(4 << 20);
        let tasks: Vec<_> = (0..readers)
            .map(|_| {
                let mut r = ring.subscribe();
                tokio::spawn(async move {
                    let mut got = 0u64;
                    loop {
                        match r.next().await {
                            Next::Chunk(_) => got += 1,
                            Next::Jumped { .. } => {}
                            Next::Closed => return got,
                        }
                    }
                })
            })
            .collect();
        tokio::task::yield_now().await;
        let data = Bytes::from(vec![0x47u8; 32 * 1024]);
        for n in 0..chunks {
            ring.push(Chunk { data: data.clone(), keyframe: n.is_multiple_of(64) });
            tokio::task::yield_now().await;
        }
        ring.close();
        let mut got = 0;
        for t in tasks {
            got += t.await.expect("reader");
        }
        println!("fanout: {readers} readers got {got} chunks of {chunks} pushed ({} per reader)", got / readers as u64);
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    match args.get(1).map(String::as_str) {
        Some("pipeline") => pipeline(arg(2, 20) as usize),
        Some("fanout") => fanout(arg(2, 1000) as usize, arg(3, 200)),
        _ => eprintln!("usage: relay_cost pipeline LOOPS | relay_cost fanout READERS CHUNKS"),
    }
}
