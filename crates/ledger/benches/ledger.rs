//! Acquire + release round trip, in memory and against a local Redis that the bench starts itself.
//!
//! Round trips to Redis: acquire 1 (EVALSHA), release 1 (EVALSHA), renew 1, usage 1.

#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use tunerpool_ledger::{Ledger, MemoryLedger, RedisLedger, Slot, DEFAULT_TTL};

fn candidates() -> Vec<Slot> {
    // A realistic list: the first two accounts are busy, the third has room.
    vec![
        Slot { account: 1, account_max: 0, provider: 1, provider_max: Some(10) },
        Slot { account: 2, account_max: 0, provider: 1, provider_max: Some(10) },
        Slot { account: 3, account_max: 2, provider: 1, provider_max: Some(10) },
    ]
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let slots = candidates();

    let memory = MemoryLedger::new(DEFAULT_TTL);
    c.bench_function("memory acquire+release", |b| {
        b.to_async(&rt).iter(|| async {
            let lease = memory.acquire(&slots, "bench").await.expect("acquire");
            memory.release(&lease).await.expect("release");
        })
    });

    let server = redis_server::RedisServer::start();
    let redis = rt.block_on(RedisLedger::connect(&server.url(), DEFAULT_TTL, "bench:")).expect("connect");
    let mut group = c.benchmark_group("redis");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("redis acquire+release", |b| {
        b.to_async(&rt).iter(|| async {
            let lease = redis.acquire(&slots, "bench").await.expect("acquire");
            redis.release(&lease).await.expect("release");
        })
    });
    group.finish();
    drop(server);
}

criterion_group!(benches, bench);
criterion_main!(benches);
