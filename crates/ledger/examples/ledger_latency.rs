//! Latency distribution of acquire + release: 100 000 rounds in memory, 10 000 against a local Redis that this
//! example starts itself (needs `redis-server`). Prints p50 / p99 / p99.9 / max.
//!
//! `cargo run --release -p tunerpool-ledger --example ledger_latency`

#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use std::time::{Duration, Instant};

use tunerpool_ledger::{Ledger, MemoryLedger, RedisLedger, Slot, DEFAULT_TTL};

async fn measure<L: Ledger>(ledger: &L, rounds: usize, slots: &[Slot]) -> Vec<Duration> {
    // Warm up (script cache, allocator, connection).
    for _ in 0..rounds / 10 {
        let lease = ledger.acquire(slots, "warmup").await.expect("acquire");
        ledger.release(&lease).await.expect("release");
    }
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        let lease = ledger.acquire(slots, "latency").await.expect("acquire");
        ledger.release(&lease).await.expect("release");
        samples.push(start.elapsed());
    }
    samples.sort_unstable();
    samples
}

fn report(name: &str, samples: &[Duration]) {
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "{name:<8} n={:<6} mean={mean:>9.1?} p50={:>9.1?} p99={:>9.1?} p99.9={:>9.1?} max={:>9.1?}",
        samples.len(),
        at(0.50),
        at(0.99),
        at(0.999),
        samples[samples.len() - 1]
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let slots = [
        Slot { account: 1, account_max: 0, provider: 1, provider_max: Some(10) },
        Slot { account: 2, account_max: 0, provider: 1, provider_max: Some(10) },
        Slot { account: 3, account_max: 2, provider: 1, provider_max: Some(10) },
    ];
    let memory = MemoryLedger::new(DEFAULT_TTL);
    report("memory", &measure(&memory, 100_000, &slots).await);

    let server = redis_server::RedisServer::start();
    let redis = RedisLedger::connect(&server.url(), DEFAULT_TTL, "latency:").await.expect("connect");
    report("redis", &measure(&redis, 10_000, &slots).await);
}
