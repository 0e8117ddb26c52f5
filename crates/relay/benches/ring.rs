//! Ring throughput at 32 KiB chunks.
//!
//! - `ring_push`: the writer's cost per chunk with 0, 10 or 1000 readers reading as fast as they can on the same
//!   runtime (a 4 MB ring, as a session at 8 Mbit/s would use). Readers that cannot keep up with a writer running
//!   flat out jump; the writer's speed must not depend on them.
//! - `ring_fanout`: time until *every* reader has received every chunk of a 256-chunk batch (the ring holds the
//!   whole batch, so no reader jumps): the delivery rate to all viewers.
//!
//! Run: `cargo bench -p tunerpool-relay --bench ring`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tunerpool_relay::ring::{Next, Ring};
use tunerpool_relay::ts::Chunk;

const CHUNK: usize = 32 * 1024;
const BATCH: u64 = 256;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime")
}

fn spawn_readers(
    rt: &tokio::runtime::Runtime,
    ring: &Arc<Ring>,
    n: usize,
    jumps: &Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<u64>> {
    (0..n)
        .map(|_| {
            let mut r = ring.subscribe();
            let jumps = Arc::clone(jumps);
            rt.spawn(async move {
                let mut chunks = 0;
                loop {
                    match r.next().await {
                        Next::Chunk(_) => chunks += 1,
                        Next::Jumped { .. } => {
                            jumps.fetch_add(1, Ordering::Relaxed);
                        }
                        Next::Closed => return chunks,
                    }
                }
            })
        })
        .collect()
}

fn push(c: &mut Criterion) {
    let rt = runtime();
    let data = Bytes::from(vec![0x47u8; CHUNK]);
    let mut group = c.benchmark_group("ring_push");
    group.throughput(Throughput::ElementsAndBytes { elements: 1, bytes: CHUNK as u64 });
    group.measurement_time(Duration::from_secs(5));
    for readers in [0usize, 10, 1000] {
        let ring = Ring::new(4 << 20);
        let jumps = Arc::new(AtomicU64::new(0));
        let tasks = spawn_readers(&rt, &ring, readers, &jumps);
        let mut n = 0u64;
        group.bench_with_input(BenchmarkId::from_parameter(readers), &readers, |b, _| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    n += 1;
                    ring.push(Chunk { data: data.clone(), keyframe: n.is_multiple_of(64) });
                }
                start.elapsed()
            })
        });
        ring.close();
        let delivered: u64 = rt.block_on(async { futures_join(tasks).await });
        let pushed = ring.stats().chunks_in;
        if readers > 0 {
            eprintln!(
                "ring_push/{readers}: {pushed} chunks pushed, readers got {:.1}% of them, {} jumps",
                100.0 * delivered as f64 / (pushed as f64 * readers as f64),
                jumps.load(Ordering::Relaxed)
            );
        }
    }
    group.finish();
}

fn fanout(c: &mut Criterion) {
    let rt = runtime();
    let data = Bytes::from(vec![0x47u8; CHUNK]);
    let mut group = c.benchmark_group("ring_fanout");
    group.throughput(Throughput::ElementsAndBytes { elements: BATCH, bytes: BATCH * CHUNK as u64 });
    group.measurement_time(Duration::from_secs(5));
    group.sample_size(20);
    for readers in [1usize, 10, 1000] {
        group.bench_with_input(BenchmarkId::from_parameter(readers), &readers, |b, &readers| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Room for the whole batch (the payload is one shared buffer, so this costs no memory).
                    let ring = Ring::new((BATCH as usize + 1) * CHUNK);
                    let jumps = Arc::new(AtomicU64::new(0));
                    let tasks = spawn_readers(&rt, &ring, readers, &jumps);
                    let start = Instant::now();
                    for n in 0..BATCH {
                        ring.push(Chunk { data: data.clone(), keyframe: n % 64 == 0 });
                    }
                    ring.close();
                    let delivered = rt.block_on(futures_join(tasks));
                    total += start.elapsed();
                    assert_eq!(delivered, BATCH * readers as u64);
                    assert_eq!(jumps.load(Ordering::Relaxed), 0);
                }
                total
            })
        });
    }
    group.finish();
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<u64>>) -> u64 {
    let mut sum = 0;
    for t in tasks {
        sum += t.await.expect("reader task");
    }
    sum
}

criterion_group!(benches, push, fanout);
criterion_main!(benches);
