//! Every ledger must pass the same suite (`support/mod.rs`); Redis additionally gets outage and secret tests.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::redis_server::RedisServer;
use support::*;
use tunerpool_ledger::{AnyLedger, Lease, Ledger, LedgerError, RedisLedger};

macro_rules! conformance {
    ($name:ident, $fixture:ty) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_acquires_grant_exactly_capacity() {
                support::concurrent_acquires_grant_exactly_capacity::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn release_frees_the_slot_at_once() {
                support::release_frees_the_slot_at_once::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn released_slot_cools_down_before_reuse() {
                support::released_slot_cools_down_before_reuse::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn abandoned_lease_expires_after_ttl() {
                support::abandoned_lease_expires_after_ttl::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn renewing_holder_keeps_its_slot() {
                support::renewing_holder_keeps_its_slot::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn instances_never_exceed_the_caps() {
                support::instances_never_exceed_the_caps::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn provider_cap_limits_all_accounts() {
                support::provider_cap_limits_all_accounts::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn first_fitting_candidate_wins() {
                support::first_fitting_candidate_wins::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn dropping_a_lease_releases_it() {
                support::dropping_a_lease_releases_it::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn renewing_a_gone_lease_fails_and_lost_resolves() {
                support::renewing_a_gone_lease_fails_and_lost_resolves::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn zero_limits_are_never_granted() {
                support::zero_limits_are_never_granted::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn lease_ids_are_unique() {
                support::lease_ids_are_unique::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn raw_renewals_extend_the_lease() {
                support::raw_renewals_extend_the_lease::<$fixture>().await
            }
        }
    };
}

conformance!(memory, MemoryFixture);
conformance!(any_memory, AnyMemoryFixture);
conformance!(redis_ledger, RedisFixture);

/// In memory, `Drop` frees the slot synchronously: no await needed.
#[tokio::test]
async fn memory_drop_releases_synchronously() {
    let ledger = Arc::new(tunerpool_ledger::MemoryLedger::new(LONG_TTL));
    let one = [slot(1, 1, 1, None)];
    let lease = Lease::acquire(Arc::clone(&ledger), &one, "dropped").await.unwrap();
    drop(lease);
    ledger.acquire(&one, "next").await.expect("free right after drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_ledger_delegates_to_redis() {
    let server = RedisServer::start();
    let redis = RedisLedger::connect(&server.url(), LONG_TTL, "any:").await.unwrap();
    let ledger = Arc::new(AnyLedger::from(redis));
    assert_eq!(ledger.ttl(), LONG_TTL);
    let one = [slot(1, 1, 1, None)];
    let lease = Lease::acquire(Arc::clone(&ledger), &one, "any").await.unwrap();
    assert!(matches!(ledger.acquire(&one, "second").await, Err(LedgerError::Full)));
    assert!(ledger.renew(lease.info()).await.unwrap());
    assert_eq!(ledger.usage().await.unwrap().account(1), 1);
    lease.release().await;
    assert_eq!(ledger.usage().await.unwrap().account(1), 0);
}

/// Redis down: every operation answers `Backend` with a message, none hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_a_backend_error() {
    let mut fx = <RedisFixture as Fixture>::new(LONG_TTL).await;
    let ledger = fx.instance().await;
    let one = [slot(1, 1, 1, None)];
    let lease = ledger.acquire(&one, "before the outage").await.unwrap();
    fx.server.kill();
    let r = within(ledger.acquire(&one, "x")).await;
    let Err(LedgerError::Backend(msg)) = r else { panic!("acquire with Redis down: {r:?}") };
    assert!(msg.contains("Redis"), "{msg}");
    let r = within(ledger.renew(&lease)).await;
    assert!(matches!(r, Err(LedgerError::Backend(_))), "{r:?}");
    let r = within(ledger.release(&lease)).await;
    assert!(matches!(r, Err(LedgerError::Backend(_))), "{r:?}");
    let r = within(ledger.usage()).await;
    assert!(matches!(r, Err(LedgerError::Backend(_))), "{r:?}");
    let text = LedgerError::Backend(msg).to_string();
    assert!(text.starts_with("the lease ledger is unavailable: "), "{text}");
}

/// Fails the test if `f` takes more than 10 s: with Redis down, nothing may hang.
async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f).await.expect("an operation hung with Redis down")
}

/// Connecting to nothing fails quickly, and the message shows the URL without its password.
#[tokio::test]
async fn connect_failure_redacts_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://:hunter2@127.0.0.1:{port}/");
    let started = std::time::Instant::now();
    let err = RedisLedger::connect(&url, LONG_TTL, "x:").await.expect_err("nothing listens there");
    assert!(started.elapsed() < Duration::from_secs(10), "connect took {:?}", started.elapsed());
    let msg = err.to_string();
    assert!(matches!(err, LedgerError::Backend(_)));
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(msg.contains(&format!("redis://:***@127.0.0.1:{port}/")), "{msg}");
}

/// A password-protected Redis: the right password works, a wrong one is an error that does not echo it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_protected_redis() {
    let server = RedisServer::start_with(&["--requirepass", "s3cret-pw"]);
    let url = format!("redis://:s3cret-pw@127.0.0.1:{}/", server.port());
    let ledger = RedisLedger::connect(&url, LONG_TTL, "pw:").await.expect("right password");
    let lease = ledger.acquire(&[slot(1, 1, 1, None)], "pw").await.unwrap();
    assert_eq!(ledger.holder(&lease.id).await.unwrap().as_deref(), Some("pw"));
    let url = format!("redis://:wrong-pw@127.0.0.1:{}/", server.port());
    let msg = RedisLedger::connect(&url, LONG_TTL, "pw:").await.expect_err("wrong password").to_string();
    assert!(!msg.contains("wrong-pw"), "{msg}");
    let msg = RedisLedger::connect(&server.url(), LONG_TTL, "pw:").await.expect_err("no password").to_string();
    assert!(msg.contains("Redis"), "{msg}");
}

/// A Redis outage does not mark a lease lost at once: only once its TTL has run out without a renewal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_marks_lease_lost_only_after_ttl() {
    let ttl = Duration::from_millis(1500);
    let mut fx = <RedisFixture as Fixture>::new(ttl).await;
    let ledger = fx.instance().await;
    let lease = Lease::acquire(ledger, &[slot(1, 1, 1, None)], "outage").await.unwrap();
    tokio::time::sleep(ttl / 2).await;
    assert!(!lease.is_lost());
    fx.server.kill();
    let killed = std::time::Instant::now();
    tokio::time::sleep(ttl / 3).await;
    assert!(!lease.is_lost(), "lost right after the outage began; renewal errors must be retried");
    tokio::time::timeout(ttl * 2, lease.lost()).await.expect("lost once the TTL has run out");
    let after = killed.elapsed();
    assert!(after <= ttl + Duration::from_millis(500), "marked lost only after {after:?}");
}

/// A stall shorter than the TTL (Redis paused) costs no lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_stall_keeps_the_lease() {
    let ttl = Duration::from_secs(3);
    let fx = <RedisFixture as Fixture>::new(ttl).await;
    let ledger = fx.instance().await;
    let lease = Lease::acquire(Arc::clone(&ledger), &[slot(1, 1, 1, None)], "stall").await.unwrap();
    let client = redis::Client::open(fx.server.url()).unwrap();
    let mut control = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("CLIENT").arg("PAUSE").arg(1200).arg("ALL").query_async(&mut control).await.unwrap();
    tokio::time::sleep(ttl + Duration::from_secs(1)).await;
    assert!(!lease.is_lost());
    assert_eq!(ledger.usage().await.unwrap().account(1), 1);
    lease.release().await;
}

/// Keys are namespaced by the prefix, and expire on their own once unused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_prefixed_and_expire() {
    let server = RedisServer::start();
    let ttl = Duration::from_millis(300);
    let a = RedisLedger::connect(&server.url(), ttl, "a:").await.unwrap();
    let b = RedisLedger::connect(&server.url(), ttl, "b:").await.unwrap();
    let one = [slot(1, 1, 1, None)];
    a.acquire(&one, "a").await.unwrap();
    b.acquire(&one, "b").await.expect("another prefix is another ledger");
    let client = redis::Client::open(server.url()).unwrap();
    let mut control = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("a:*").query_async(&mut control).await.unwrap();
    keys.retain(|k| !k.starts_with("a:lease:"));
    keys.sort();
    assert_eq!(keys, ["a:acct:1", "a:accts", "a:prov:1", "a:provs"]);
    tokio::time::sleep(ttl * 2 + Duration::from_millis(300)).await;
    let left: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut control).await.unwrap();
    assert!(left.is_empty(), "keys left behind: {left:?}");
}
