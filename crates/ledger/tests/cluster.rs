//! The cluster's records in a real Redis: instance registration, and the ownership of a channel's session —
//! one owner at a time, renewed while held, expired when its holder dies, deleted only by its holder — and the
//! cluster-wide locks on the same record.

#[path = "support/redis_server.rs"]
mod redis_server;

use std::time::Duration;

use redis_server::RedisServer;
use tunerpool_ledger::cluster::{unix_now, Claimed, Cluster, InstanceInfo};

fn me(id: &str) -> InstanceInfo {
    InstanceInfo { id: id.into(), url: format!("http://{id}.example:8080/"), started_at: unix_now() }
}

async fn pair(server: &RedisServer, ttl: Duration) -> (Cluster, Cluster) {
    let a = Cluster::connect(&server.url(), ttl, "t:", me("a")).await.unwrap();
    let b = Cluster::connect(&server.url(), ttl, "t:", me("b")).await.unwrap();
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_register_and_expire_without_a_heartbeat() {
    let server = RedisServer::start();
    let (a, b) = pair(&server, Duration::from_millis(600)).await;
    let seen = b.instance("a").await.unwrap().expect("a is registered");
    assert_eq!((seen.id.as_str(), seen.url.as_str()), ("a", "http://a.example:8080"));
    assert!(a.redis_reachable());
    let beat = b.spawn_heartbeat();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(b.instance("a").await.unwrap(), None, "a stopped renewing: its record expired");
    assert!(a.instance("b").await.unwrap().is_some(), "b's heartbeat keeps it registered");
    beat.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_owner_at_a_time_renewed_while_held_and_released_only_by_its_holder() {
    let server = RedisServer::start();
    let (a, b) = pair(&server, Duration::from_millis(600)).await;
    let Claimed::Ours(owned) = a.claim("7", 1).await.unwrap() else { panic!("a claims a free channel") };
    match b.claim("7", 9).await.unwrap() {
        Claimed::Theirs { instance, session } => assert_eq!((instance.as_str(), session), ("a", 1)),
        Claimed::Ours(_) => panic!("two owners"),
    }
    // Held past several TTLs: the guard renews it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!owned.is_lost());
    assert_eq!(b.owner("7").await.unwrap().as_deref(), Some("a"));
    assert!(owned.release().await, "the holder deletes its own record");
    assert_eq!(b.owner("7").await.unwrap(), None);

    // Compare-and-delete: a holder whose record lapsed (deleted here behind its back, as an expiry during a
    // stall would) and was claimed by b cannot delete b's, and learns at its next renewal that it lost it.
    let Claimed::Ours(stale) = a.claim("8", 2).await.unwrap() else { panic!() };
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("DEL").arg("t:cluster:owner:8").query_async(&mut conn).await.unwrap();
    let Claimed::Ours(fresh) = b.claim("8", 3).await.unwrap() else { panic!("b claims the lapsed record") };
    tokio::time::timeout(Duration::from_secs(2), stale.lost()).await.expect("a learns that it lost the channel");
    assert!(!stale.release().await, "a's release must not delete b's record");
    assert_eq!(a.owner("8").await.unwrap().as_deref(), Some("b"));
    drop(fresh);
    // Dropping the guard releases it too (from a spawned task).
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(a.owner("8").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_owners_record_expires_and_the_next_claim_wins() {
    let server = RedisServer::start();
    let (a, b) = pair(&server, Duration::from_millis(500)).await;
    let Claimed::Ours(owned) = a.claim("5", 1).await.unwrap() else { panic!() };
    // kill -9: no renewal, no release.
    owned.abandon();
    assert!(matches!(b.claim("5", 2).await.unwrap(), Claimed::Theirs { .. }));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let Claimed::Ours(taken) = b.claim("5", 2).await.unwrap() else { panic!("the expired record is claimable") };
    assert_eq!(a.owner("5").await.unwrap().as_deref(), Some("b"));
    assert!(taken.release().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_has_one_holder_even_on_one_instance_and_frees_on_release_or_expiry() {
    let server = RedisServer::start();
    let (a, b) = pair(&server, Duration::from_millis(600)).await;
    let Claimed::Ours(held) = a.lock("sync:3").await.unwrap() else { panic!("a takes a free lock") };
    // Another instance, and another holder on the same instance, find it taken, by a.
    for c in [&b, &a] {
        match c.lock("sync:3").await.unwrap() {
            Claimed::Theirs { instance, .. } => assert_eq!(instance, "a"),
            Claimed::Ours(_) => panic!("two holders of one lock"),
        }
    }
    // Locks and ownership records do not share names.
    assert!(matches!(b.claim("sync:3", 1).await.unwrap(), Claimed::Ours(_)));
    // Held past several TTLs: renewed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!held.is_lost());
    assert_eq!(b.lock_holder("sync:3").await.unwrap().as_deref(), Some("a"));
    assert!(held.release().await);
    let Claimed::Ours(dead) = b.lock("sync:3").await.unwrap() else { panic!("b takes the released lock") };
    // A holder that dies (stops renewing) loses it after the TTL.
    dead.abandon();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(a.lock_holder("sync:3").await.unwrap(), None);
    assert!(matches!(a.lock("sync:3").await.unwrap(), Claimed::Ours(_)));
}
