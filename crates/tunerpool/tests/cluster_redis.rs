//! A restart of the cluster's Redis during playback. Redis here keeps nothing across the restart (no
//! persistence, the harsher case): every lease and ownership record is gone when it comes back. The promise:
//! the viewers, on every instance, keep their sockets and get bytes again once Redis is back (their sessions
//! take a new lease, claim the channel again or follow whoever did); the provider never counts more connections
//! than the account allows; and once the viewers leave, no lease or ownership record is left behind.
//!
//! Setup as in `cluster.rs`: one shared PostgreSQL catalog, the provider added once through the CLI.

mod cluster_support;
mod common;

#[path = "../../ledger/tests/support/redis_server.rs"]
mod redis_server;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster_support::{
    add_provider, channel_ids, eventually, redis_keys, start_instance, try_slots_used, watch, Seen, Shared, TOKEN,
};
use fakeprovider::{AccountSpec, FakeConfig, FakeProvider};
use redis_server::RedisServer;

const VIEWERS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_during_playback_keeps_the_viewers_and_leaks_no_lease() {
    let mut redis = RedisServer::start();
    let fake =
        FakeProvider::start(FakeConfig::with_accounts(vec![AccountSpec::new("solo", "pw-solo", 1)])).await.unwrap();
    let fake = Arc::new(fake);
    let dir = tempfile::tempdir().unwrap();
    let shared = Shared::new(dir.path()).await;
    add_provider(&shared, &fake.url(), &[("solo", "pw-solo")]);

    let nodes: Vec<_> = (0..3).map(|n| start_instance(&shared, &redis.url(), n, &[])).collect();
    let token = TOKEN.to_owned();
    let bases: Vec<String> = nodes.iter().map(|s| s.base.clone()).collect();
    let channel = channel_ids(&bases[0], &token, 1).await[0];

    let most = Arc::new(AtomicU32::new(0));
    let poll = {
        let (most, fake) = (most.clone(), fake.clone());
        tokio::spawn(async move {
            loop {
                most.fetch_max(fake.counters().accounts["solo"].open, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // Viewers of one channel on every instance.
    let mut seen = Vec::new();
    let mut tasks = Vec::new();
    for v in 0..VIEWERS {
        let s = Arc::new(Mutex::new(Seen::default()));
        tasks.push(watch(format!("{}/stream/{channel}.ts", bases[v % 3]), token.clone(), s.clone()));
        seen.push((v % 3, s));
    }
    let (tok, fakeref, port, seen_ref) = (token.as_str(), &*fake, redis.port(), &seen);
    let all_bytes = move |min: u64| seen_ref.iter().all(|(_, s)| s.lock().unwrap().bytes >= min);
    eventually("every viewer gets bytes", Duration::from_secs(20), || async move { all_bytes(188 * 100) }).await;
    assert_eq!(fake.counters().accounts["solo"].open, 1);

    // Restart Redis: it comes back empty.
    let restarted_at = Instant::now();
    redis.restart();
    let before: Vec<u64> = seen.iter().map(|(_, s)| s.lock().unwrap().bytes).collect();
    let before = &before;
    // Bytes again at every viewer, on the same socket.
    eventually("every viewer gets bytes again after the restart", Duration::from_secs(15), || async move {
        seen_ref.iter().zip(before).all(|((_, s), b)| s.lock().unwrap().bytes > b + 188 * 100)
    })
    .await;
    // And keeps getting them: the sessions settled, not flapping.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut worst_gap = Duration::ZERO;
    for (n, s) in &seen {
        let s = s.lock().unwrap();
        assert!(s.ended.is_none(), "a viewer at node-{n} lost its stream across the restart: {:?}", s.ended);
        assert!(s.arrivals.last().unwrap().elapsed() < Duration::from_secs(2), "a viewer at node-{n} stalled");
        let mut prev = restarted_at;
        for t in s.arrivals.iter().filter(|t| **t > restarted_at) {
            worst_gap = worst_gap.max(*t - prev);
            prev = *t;
        }
    }
    let counters = fake.counters().accounts["solo"].clone();
    eprintln!(
        "redis restart: the longest wait for bytes at a viewer was {worst_gap:?}; the provider counted at most {} \
         (polled), {} (its high-water mark), {} opened in all",
        most.load(Ordering::Relaxed),
        counters.max_concurrent,
        counters.opened
    );
    assert_eq!(counters.max_concurrent, 1, "the provider counted more connections than the account allows");
    assert_eq!(counters.open, 1, "one provider connection for the channel after the restart");
    // Not doubled: the ledger (a fresh Redis) counts the one lease, and one instance owns the channel.
    // Every instance answers at once, also one whose ledger connection sat idle across the restart (found
    // broken by this read, which asks again on the new connection).
    for base in &bases {
        assert_eq!(try_slots_used(base, &token).await, Some(1), "the ledger after the restart, at {base}");
    }
    let owners = redis_keys(port).into_iter().filter(|k| k.contains("owner:")).count();
    assert_eq!(owners, 1, "{:?}", redis_keys(port));
    for base in &bases {
        let (_, health) = cluster_support::get(&format!("{base}/healthz"), "").await;
        assert_eq!(health["cluster"]["redis"], "ok", "{health}");
    }

    // The viewers leave: nothing is left behind.
    for t in tasks {
        t.abort();
    }
    let base = bases[2].as_str();
    eventually("the ledger's usage back to 0", Duration::from_secs(20), || async move {
        try_slots_used(base, tok).await == Some(0)
    })
    .await;
    eventually("no lease or ownership record left in Redis", Duration::from_secs(10), || async move {
        redis_keys(port).iter().all(|k| !k.contains("lease:") && !k.contains("owner:"))
    })
    .await;
    eventually("the provider's connection closed", Duration::from_secs(10), || async move {
        fakeref.counters().accounts["solo"].open == 0
    })
    .await;
    poll.abort();
    assert!(most.load(Ordering::Relaxed) <= 1);
    // Nor did the restart's errors (debug logs) show the secret.
    cluster_support::assert_secret_never_logged(dir.path(), 3);
}
