//! Three `tunerpool serve` processes as one cluster (one Redis, one simulated provider whose only account
//! allows one connection): a channel watched through all three is read from the provider once, and when its
//! owner is killed (`kill -9`) another instance takes it over without the viewers of the survivors losing their
//! sockets, and without the provider ever counting more connections than the account allows.
//!
//! The three instances share one catalog in PostgreSQL (`store.url`; a fresh database on the test's own
//! server), so that channel ids agree; each keeps a data dir of its own. Only one process imports: the provider
//! is added (and synced) once through the CLI before the servers start, and the servers' scheduled jobs are
//! pushed out of the test's time (`sync.*`, `epg.refresh`); each server has its own `cluster.instance_id` and
//! the same `admin.token`.

mod cluster_support;
mod common;

#[path = "../../ledger/tests/support/redis_server.rs"]
mod redis_server;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster_support::{get, start_instance, watch, Seen, Shared, SECRET, TOKEN};
use common::Server;
use fakeprovider::{AccountSpec, FakeConfig, FakeProvider};
use redis_server::RedisServer;

const VIEWERS: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_upstream_per_channel_across_three_instances_and_a_takeover_when_the_owner_dies() {
    let redis = RedisServer::start();
    let fake =
        FakeProvider::start(FakeConfig::with_accounts(vec![AccountSpec::new("solo", "pw-solo", 1)])).await.unwrap();
    let fake = Arc::new(fake);
    let dir = tempfile::tempdir().unwrap();
    let shared = Shared::new(dir.path()).await;

    // The one import, before any server runs.
    let out = shared
        .cli(&["provider", "add", "--name", "Fake", "--kind", "xtream"])
        .args(["--url", &fake.url(), "--username", "solo"])
        .env("TUNERPOOL_PROVIDER_PASSWORD", "pw-solo")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut nodes: Vec<Option<Server>> = Vec::new();
    for n in 0..3 {
        nodes.push(Some(start_instance(&shared, &redis.url(), n, &[])));
    }
    let token = TOKEN.to_owned();
    let bases: Vec<String> = nodes.iter().map(|s| s.as_ref().unwrap().base.clone()).collect();

    // The same channel ids through every instance.
    let mut ids = Vec::new();
    for base in &bases {
        let (status, page) = get(&format!("{base}/api/v1/channels?per_page=3"), &token).await;
        assert_eq!(status, 200, "{page}");
        let page: Vec<(i64, String)> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["id"].as_i64().unwrap(), c["name"].as_str().unwrap().to_owned()))
            .collect();
        ids.push(page);
    }
    assert!(ids.iter().all(|p| *p == ids[0]), "{ids:?}");
    let channel = ids[0][0].0;

    // A downstream user made through one instance logs in at every instance (one catalog), and each lists the
    // same M3U (the stream URLs aside, which carry each instance's address); it is played from at the end.
    let made = reqwest::Client::new()
        .post(format!("{}/api/v1/users", bases[0]))
        .bearer_auth(&token)
        .json(&serde_json::json!({"username": "viewer", "password": "pw-viewer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let mut listings = Vec::new();
    for base in &bases {
        let r = reqwest::get(format!("{base}/get.php?username=viewer&password=pw-viewer&type=m3u_plus")).await.unwrap();
        assert_eq!(r.status(), 200);
        listings.push(r.text().await.unwrap().replace(base.as_str(), "{base}"));
    }
    let entry = format!("{{base}}/live/viewer/pw-viewer/{channel}.ts");
    assert!(listings[0].lines().any(|l| l == entry), "no {entry} in {}", &listings[0][..listings[0].len().min(500)]);
    assert!(listings.iter().all(|l| *l == listings[0]), "the instances list different M3Us");

    // Each names itself in /metrics (an info series; Prometheus labels the rest with the scrape target).
    for (n, base) in bases.iter().enumerate() {
        let text = reqwest::Client::new()
            .get(format!("{base}/metrics"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let line = format!("tunerpool_instance_info{{instance_id=\"node-{n}\"}} 1");
        assert!(text.lines().any(|l| l == line), "no {line} in /metrics of node-{n}");
    }
    // The health of each: a cluster member, Redis reachable.
    for base in &bases {
        let (status, health) = get(&format!("{base}/healthz"), "").await;
        assert_eq!((status, health["role"].as_str()), (200, Some("cluster")), "{health}");
        assert_eq!(health["cluster"]["redis"], "ok", "{health}");
    }

    // The provider's own counters, polled throughout: the most connections it ever saw at once.
    let most = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let poll = {
        let (most, fake) = (most.clone(), fake.clone());
        tokio::spawn(async move {
            loop {
                let open = fake.counters().accounts["solo"].open;
                most.fetch_max(open, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // 30 viewers of one channel, spread over the three instances.
    let mut seen: Vec<(usize, Arc<Mutex<Seen>>)> = Vec::new();
    let mut tasks = Vec::new();
    for v in 0..VIEWERS {
        let node = v % 3;
        let s = Arc::new(Mutex::new(Seen::default()));
        tasks.push(watch(format!("{}/stream/{channel}.ts", bases[node]), token.clone(), s.clone()));
        seen.push((node, s));
    }
    let everyone_watches = Instant::now() + Duration::from_secs(20);
    while seen.iter().any(|(_, s)| s.lock().unwrap().bytes < 188 * 100) {
        let ended: Vec<_> = seen.iter().filter_map(|(n, s)| s.lock().unwrap().ended.clone().map(|e| (*n, e))).collect();
        assert!(ended.is_empty(), "viewers refused: {ended:?}");
        assert!(Instant::now() < everyone_watches, "not every viewer got bytes within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = fake.counters().accounts["solo"].clone();
    assert_eq!((before.open, before.opened), (1, 1), "one provider connection for 30 viewers on 3 instances");

    // Exactly one owner; the others relay it and say who owns it.
    let mut owner = None;
    for (n, base) in bases.iter().enumerate() {
        // Every instance's sessions are listed; this instance's is the one naming it.
        let (_, sessions) = get(&format!("{base}/api/v1/sessions"), &token).await;
        let here = format!("node-{n}");
        let live: Vec<_> = sessions
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["channel_id"] == channel && s["instance"] == here.as_str())
            .collect();
        assert_eq!(live.len(), 1, "{sessions}");
        let (_, health) = get(&format!("{base}/healthz"), "").await;
        if live[0]["owner"] == format!("node-{n}") {
            assert!(owner.replace(n).is_none(), "two owners");
            assert_eq!(health["cluster"]["sessions_owned"], 1, "{health}");
        } else {
            assert!(live[0]["owner"].as_str().is_some_and(|o| o.starts_with("node-")), "{sessions}");
            assert!(live[0]["upstream"].is_null(), "a follower holds no provider connection: {sessions}");
            assert_eq!(health["cluster"]["sessions_relayed"], 1, "{health}");
        }
    }
    let owner = owner.expect("an owner");
    let followers: Vec<usize> = (0..3).filter(|n| *n != owner).collect();

    // The internal endpoint: never without the secret, never from a follower (no chains).
    let internal = |n: usize| format!("{}/internal/v1/live/{channel}", bases[n]);
    let client = reqwest::Client::new();
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(status(client.get(internal(followers[0])).send().await.unwrap()), 401);
    let wrong = client.get(internal(owner)).header("x-tunerpool-cluster-secret", "wrong-secret-wrong-secret-0000");
    assert_eq!(status(wrong.send().await.unwrap()), 401);
    let chained = client.get(internal(followers[0])).header("x-tunerpool-cluster-secret", SECRET);
    assert_eq!(status(chained.send().await.unwrap()), 409, "a follower must not forward the stream again");
    // The same id for another channel (catalogs that differ) is refused too, before anything starts.
    let other = client
        .get(internal(owner))
        .header("x-tunerpool-cluster-secret", SECRET)
        .header("x-tunerpool-channel-key", format!("{channel}-0000000000000000"));
    assert_eq!(status(other.send().await.unwrap()), 409, "another channel under the same id");

    // kill -9 the owner.
    let killed_at = Instant::now();
    let mut dead = nodes[owner].take().unwrap();
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    drop(dead);
    // Let the takeover happen and the new owner stream a while.
    tokio::time::sleep(Duration::from_secs(10)).await;
    poll.abort();

    let mut worst_gap = Duration::ZERO;
    for (n, s) in &seen {
        let s = s.lock().unwrap();
        if *n == owner {
            continue;
        }
        assert!(s.ended.is_none(), "a viewer at node-{n} lost its stream: {:?}", s.ended);
        // The longest wait for bytes from the kill on, up to the last byte (which must be recent).
        let last = *s.arrivals.last().unwrap();
        assert!(last.elapsed() < Duration::from_secs(2), "a viewer at node-{n} stopped receiving bytes");
        let mut prev = killed_at;
        for t in s.arrivals.iter().filter(|t| **t > killed_at) {
            worst_gap = worst_gap.max(*t - prev);
            prev = *t;
        }
    }
    let after = fake.counters().accounts["solo"].clone();
    eprintln!(
        "takeover: the longest wait for bytes at a surviving viewer was {worst_gap:?}; the provider counted at most \
         {} connection(s) (polled), {} (its own high-water mark), {} opened in all",
        most.load(std::sync::atomic::Ordering::Relaxed),
        after.max_concurrent,
        after.opened
    );
    assert!(worst_gap <= Duration::from_secs(3), "viewers waited {worst_gap:?} for bytes after the owner died");
    assert_eq!(after.max_concurrent, 1, "the provider counted more connections than the account allows");
    assert!(most.load(std::sync::atomic::Ordering::Relaxed) <= 1);
    assert_eq!((after.open, after.opened), (1, 2), "one new provider connection, by the new owner");

    // One of the survivors owns the channel now.
    let mut owners = Vec::new();
    for n in &followers {
        let (_, sessions) = get(&format!("{}/api/v1/sessions", bases[*n]), &token).await;
        let here = format!("node-{n}");
        let live: Vec<_> = sessions
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["channel_id"] == channel && s["instance"] == here.as_str())
            .collect();
        owners.push(live[0]["owner"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(owners[0], owners[1], "{owners:?}");
    assert!(followers.iter().any(|n| owners[0] == format!("node-{n}")), "{owners:?}");
    // The M3U's stream URL plays at a survivor, joining the running session: no new provider connection.
    let mut played = reqwest::get(entry.replace("{base}", &bases[followers[0]])).await.unwrap();
    assert_eq!(played.status(), 200);
    assert_eq!(played.chunk().await.unwrap().unwrap()[0], 0x47, "a TS packet");
    drop(played);
    assert_eq!(fake.counters().accounts["solo"].opened, 2, "the M3U's viewer joined the channel's session");
    for t in tasks {
        t.abort();
    }
    // The secrets never reach a log.
    cluster_support::assert_secret_never_logged(dir.path(), 3);
}
