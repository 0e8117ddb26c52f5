//! The cluster's records in a real Redis: instance registration, and the ownership of a channel's session —
//! one owner at a time, renewed while held, expired when its holder dies, deleted only by its holder — and the
//! cluster-wide locks on the same record.

#[path = "support/redis_server.rs"]
mod redis_server;

use std::time::Duration;

use redis_server::RedisServer;
use tunerpool_ledger::cluster::{unix_now, Claimed, Cluster, InstanceInfo, LoginAttempt, Status, UserClaim, UserLease};

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

/// Polls `check` every 20 ms until it holds, or panics naming `what` after `within`.
async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn granted(claim: UserClaim) -> (UserLease, Vec<String>) {
    match claim {
        UserClaim::Granted { lease, replaced } => (lease, replaced),
        UserClaim::Full { watching } => panic!("refused while watching {watching:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_streams_never_pass_its_limit_across_instances_under_concurrent_claims() {
    let server = RedisServer::start();
    let (a, b) = pair(&server, Duration::from_secs(5)).await;
    // 40 claims at once from two instances for a user limited to 3: exactly 3 granted, every time.
    for round in 0..5 {
        let user = format!("kim{round}");
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let (c, user) = (if i % 2 == 0 { a.clone() } else { b.clone() }, user.clone());
                tokio::spawn(async move { c.claim_user(&user, 3, false, &format!("channel {i}")).await.unwrap() })
            })
            .collect();
        let mut held = Vec::new();
        let mut refused = 0;
        for t in tasks {
            match t.await.unwrap() {
                UserClaim::Granted { lease, replaced } => {
                    assert!(replaced.is_empty());
                    held.push(lease);
                }
                UserClaim::Full { watching } => {
                    assert!(watching.len() <= 3, "{watching:?}");
                    refused += 1;
                }
            }
        }
        assert_eq!((held.len(), refused), (3, 37), "round {round}");
        assert_eq!(b.user_streams(&user).await.unwrap(), 3);
        for lease in held {
            lease.release().await;
        }
        assert_eq!(a.user_streams(&user).await.unwrap(), 0, "every lease released");
    }
    // No limit of its own: every claim granted, and counted.
    let mut many = Vec::new();
    for i in 0..10 {
        many.push(granted(a.claim_user("free", 0, false, &format!("c{i}")).await.unwrap()).0);
    }
    assert_eq!(b.user_streams("free").await.unwrap(), 10);
    drop(many);
    eventually("dropped leases released", Duration::from_secs(2), || async {
        b.user_streams("free").await.unwrap() == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_user_is_told_what_it_watches_and_replacing_ends_the_oldest_stream_elsewhere() {
    let server = RedisServer::start();
    let (a, b) = pair(&server, Duration::from_millis(600)).await;
    let (first, _) = granted(a.claim_user("kim", 2, false, "channel 5").await.unwrap());
    let (second, _) = granted(a.claim_user("kim", 2, false, "channel 6").await.unwrap());
    match b.claim_user("kim", 2, false, "channel 7").await.unwrap() {
        UserClaim::Full { watching } => assert_eq!(watching, ["channel 5", "channel 6"]),
        UserClaim::Granted { .. } => panic!("a third stream for a user limited to 2"),
    }
    // Held past several TTLs: renewed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!first.is_lost() && !second.is_lost());
    // Replacing: b's claim takes the oldest (a's "channel 5"), which a learns at its next renewal.
    let (third, replaced) = granted(b.claim_user("kim", 2, true, "channel 7").await.unwrap());
    assert_eq!(replaced, [first.id().to_owned()]);
    assert_eq!(a.user_streams("kim").await.unwrap(), 2);
    let lost = first.lost_flag();
    eventually("the replaced stream's lease is lost", Duration::from_millis(600), || {
        let lost = lost.clone();
        async move { *lost.borrow() }
    })
    .await;
    assert!(!second.is_lost() && !third.is_lost());
    // Releasing the replaced lease must not free another stream's slot.
    first.release().await;
    assert_eq!(a.user_streams("kim").await.unwrap(), 2);
    // A dead instance's lease expires after the TTL.
    second.abandon();
    eventually("the abandoned lease expires", Duration::from_secs(2), || async {
        a.user_streams("kim").await.unwrap() == 1
    })
    .await;
    let (fourth, _) = granted(a.claim_user("kim", 2, false, "channel 8").await.unwrap());
    drop((third, fourth));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_lease_lost_with_an_emptied_redis_is_taken_again_when_there_is_room() {
    let server = RedisServer::start();
    let (a, _b) = pair(&server, Duration::from_millis(600)).await;
    let (lease, _) = granted(a.claim_user("kim", 1, false, "channel 5").await.unwrap());
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    eventually("the lease is back", Duration::from_secs(1), || async { a.user_streams("kim").await.unwrap() == 1 })
        .await;
    assert!(!lease.is_lost());
    assert!(matches!(a.claim_user("kim", 1, false, "channel 6").await.unwrap(), UserClaim::Full { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_attempts_count_across_instances_and_a_forgiven_attempt_lifts_the_block() {
    let server = RedisServer::start();
    let (a, b) = pair(&server, Duration::from_secs(5)).await;
    let (window, block) = (Duration::from_secs(60), Duration::from_secs(60));
    let mut windows = Vec::new();
    for i in 0..10 {
        let c = if i % 2 == 0 { &a } else { &b };
        match c.login_attempt("192.0.2.7", 10, window, block).await.unwrap() {
            LoginAttempt::Counted { window, count } => {
                assert_eq!(count, i + 1);
                windows.push(window)
            }
            refused => panic!("attempt {i} refused: {refused:?}"),
        }
    }
    // The tenth blocks the address for a minute, on every instance; another address is not affected.
    for c in [&a, &b] {
        match c.login_attempt("192.0.2.7", 10, window, block).await.unwrap() {
            LoginAttempt::Refused { retry_after } => assert!(retry_after > Duration::from_secs(55), "{retry_after:?}"),
            counted => panic!("an 11th attempt was counted: {counted:?}"),
        }
    }
    assert!(matches!(a.login_attempt("192.0.2.8", 10, window, block).await.unwrap(), LoginAttempt::Counted { .. }));
    // One of the ten did not fail after all: nine failures, no block.
    a.login_forgive("192.0.2.7", windows[3], 10).await.unwrap();
    assert!(matches!(b.login_attempt("192.0.2.7", 10, window, block).await.unwrap(), LoginAttempt::Counted { .. }));
    // A forgiveness from an older window changes nothing.
    a.login_forgive("192.0.2.7", windows[0] - 60_000, 10).await.unwrap();
    assert!(matches!(b.login_attempt("192.0.2.7", 10, window, block).await.unwrap(), LoginAttempt::Refused { .. }));
    // The record is bounded in time: it expires once its window and block are over.
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("PTTL").arg("t:cluster:login:192.0.2.7").query_async(&mut conn).await.unwrap();
    assert!(ttl > 0 && ttl <= 120_000, "{ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_publish_their_status_and_dead_ones_drop_out() {
    let server = RedisServer::start();
    let (a, b) = pair(&server, Duration::from_millis(600)).await;
    a.set_status(|| r#"{"sessions":[]}"#.to_owned());
    a.register().await.unwrap();
    b.register().await.unwrap();
    let peers = b.peers().await.unwrap();
    let ids: Vec<&str> = peers.iter().map(|p| p.info.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(peers[0].status.as_deref(), Some(r#"{"sessions":[]}"#));
    assert!(peers[0].status_age.is_some_and(|age| age < Duration::from_secs(1)));
    assert_eq!((peers[1].status.as_deref(), peers[1].status_age), (None, None));
    let beat = b.spawn_heartbeat();
    eventually("a, without a heartbeat, drops out", Duration::from_secs(2), || async {
        b.peers().await.unwrap().iter().map(|p| p.info.id.clone()).collect::<Vec<_>>() == ["b"]
    })
    .await;
    beat.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_is_rewritten_only_when_its_shape_changes_or_redis_lost_it() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let server = RedisServer::start();
    let (a, b) = pair(&server, Duration::from_millis(600)).await;
    // The shape and a counter that changes without changing it; `made` counts the texts made (each one written).
    let (shape, counter, made) =
        (Arc::new(AtomicU64::new(1)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (s, c, m) = (shape.clone(), counter.clone(), made.clone());
    a.set_status(move || {
        let (shape, count, made) = (s.load(Ordering::SeqCst), c.load(Ordering::SeqCst), m.clone());
        Status::new(shape, move || {
            made.fetch_add(1, Ordering::SeqCst);
            format!(r#"{{"shape":{shape},"bytes":{count}}}"#)
        })
    });
    let published = || async { b.peers().await.unwrap().into_iter().find(|p| p.info.id == "a").unwrap() };
    a.register().await.unwrap();
    assert_eq!(made.load(Ordering::SeqCst), 1);
    assert_eq!(published().await.status.as_deref(), Some(r#"{"shape":1,"bytes":0}"#));

    // Counters moved, the shape did not: the text is neither made nor sent, its time is confirmed.
    counter.store(5, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.register().await.unwrap();
    assert_eq!(made.load(Ordering::SeqCst), 1, "an unchanged status was written again");
    let peer = published().await;
    assert_eq!(peer.status.as_deref(), Some(r#"{"shape":1,"bytes":0}"#));
    assert!(peer.status_age.is_some_and(|age| age < Duration::from_millis(200)), "not confirmed: {peer:?}");

    // The shape changed: written at once, counters and all.
    shape.store(2, Ordering::SeqCst);
    a.register().await.unwrap();
    assert_eq!(made.load(Ordering::SeqCst), 2);
    assert_eq!(published().await.status.as_deref(), Some(r#"{"shape":2,"bytes":5}"#));

    // Redis lost the record (expired, or restarted empty): the next heartbeat writes it whole again.
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("DEL").arg("t:cluster:instance:a").query_async(&mut conn).await.unwrap();
    a.register().await.unwrap();
    assert_eq!(made.load(Ordering::SeqCst), 3);
    assert_eq!(published().await.status.as_deref(), Some(r#"{"shape":2,"bytes":5}"#));
    // A plain text is its own shape: any change is written.
    b.set_status(|| r#"{"sessions":[]}"#.to_owned());
    b.register().await.unwrap();
    let peer = b.peers().await.unwrap().into_iter().find(|p| p.info.id == "b").unwrap();
    assert_eq!(peer.status.as_deref(), Some(r#"{"sessions":[]}"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_that_do_not_change_a_status_shape_are_refreshed_every_status_refresh() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use tunerpool_ledger::cluster::STATUS_REFRESH;
    let server = RedisServer::start();
    let (a, b) = pair(&server, Duration::from_millis(600)).await;
    let counter = Arc::new(AtomicU64::new(0));
    let c = counter.clone();
    a.set_status(move || {
        let bytes = c.load(Ordering::SeqCst);
        Status::new(1, move || format!(r#"{{"bytes":{bytes}}}"#))
    });
    let beat = a.spawn_heartbeat();
    let published = || async {
        b.peers().await.unwrap().into_iter().find(|p| p.info.id == "a").and_then(|p| p.status).unwrap_or_default()
    };
    eventually("the first status", Duration::from_secs(2), || async { published().await == r#"{"bytes":0}"# }).await;
    counter.store(7, Ordering::SeqCst);
    let moved = std::time::Instant::now();
    eventually("the counters refreshed", STATUS_REFRESH + Duration::from_secs(2), || async {
        published().await == r#"{"bytes":7}"#
    })
    .await;
    // Not at the next heartbeats (every 0.2 s): only once the refresh was due.
    assert!(moved.elapsed() > STATUS_REFRESH - Duration::from_secs(1), "refreshed after {:?}", moved.elapsed());
    beat.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_lease_outlives_a_redis_outage_and_is_taken_again_when_redis_is_back() {
    let mut server = RedisServer::start();
    let ttl = Duration::from_millis(600);
    let (a, _b) = pair(&server, ttl).await;
    let (lease, _) = granted(a.claim_user("kim", 1, false, "channel 5").await.unwrap());
    // Redis gone for over two TTLs: no instance can claim meanwhile, so the stream is not ended.
    server.kill();
    tokio::time::sleep(ttl * 2 + Duration::from_millis(300)).await;
    assert!(!lease.is_lost(), "a Redis outage ended a user's stream");
    assert!(a.claim_user("kim", 1, false, "channel 6").await.is_err(), "a claim without Redis");
    // Back, empty: the next renewal takes the lease again (there is room), and it counts.
    server.restart();
    eventually("the lease is back after the outage", Duration::from_secs(3), || async {
        a.user_streams("kim").await.is_ok_and(|n| n == 1)
    })
    .await;
    assert!(!lease.is_lost());
    assert!(matches!(a.claim_user("kim", 1, false, "channel 6").await.unwrap(), UserClaim::Full { .. }));
}
