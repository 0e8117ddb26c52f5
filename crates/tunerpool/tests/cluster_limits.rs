//! Three instances as one cluster under a storm: 300 simultaneous requests over 100 channels, spread over the
//! three, against a provider whose three accounts allow two connections each. The provider's own counters must
//! never count more than an account allows, every request that gets no slot must be refused cleanly (a 503, or
//! the refusal clip with its `x-tunerpool-refused` header), and once the viewers leave every slot comes back
//! (the ledger's usage, the provider's open connections and the records in Redis all return to nothing).
//!
//! Setup as in `cluster.rs`: one shared PostgreSQL catalog, the provider added once through the CLI.

mod cluster_support;
mod common;

#[path = "../../ledger/tests/support/redis_server.rs"]
mod redis_server;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cluster_support::{add_provider, channel_ids, eventually, redis_keys, slots_used, start_instance, Shared, TOKEN};
use fakeprovider::{AccountSpec, FakeConfig, FakeProvider};
use redis_server::RedisServer;

const CHANNELS: usize = 100;
const REQUESTS: usize = 300;
const ACCOUNTS: [(&str, &str); 3] = [("acc1", "pw-acc1"), ("acc2", "pw-acc2"), ("acc3", "pw-acc3")];
const LIMIT: u32 = 2;

/// How one request ended.
enum Outcome {
    /// Bytes of the stream; the body is kept open (the viewer stays) until the test lets go.
    Served(i64, reqwest::Response),
    /// A clean refusal: the status and, for the clip, its reason.
    Refused(u16, String),
    /// Anything else: what happened.
    Broken(String),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_requests_over_a_hundred_channels_never_exceed_the_accounts_and_every_slot_comes_back() {
    let redis = RedisServer::start();
    let accounts = ACCOUNTS.iter().map(|(u, p)| AccountSpec::new(u, p, LIMIT)).collect();
    let fake = FakeProvider::start(FakeConfig { live_channels: CHANNELS, ..FakeConfig::with_accounts(accounts) })
        .await
        .unwrap();
    let fake = Arc::new(fake);
    let dir = tempfile::tempdir().unwrap();
    let shared = Shared::new(dir.path()).await;
    add_provider(&shared, &fake.url(), &ACCOUNTS);

    // A refused request waits 1 s for a slot (not 3): the storm stays short.
    let extra = [("TUNERPOOL_RELAY_ACQUIRE_WAIT", "1s"), ("TUNERPOOL_LOG_LEVEL", "info")];
    let nodes: Vec<_> = (0..3).map(|n| start_instance(&shared, &redis.url(), n, &extra)).collect();
    let token = TOKEN.to_owned();
    let bases: Vec<String> = nodes.iter().map(|s| s.base.clone()).collect();
    let ids = channel_ids(&bases[0], &token, CHANNELS).await;
    assert_eq!(ids.len(), CHANNELS);
    assert_eq!(slots_used(&bases[0], &token).await, 0);

    // The provider's open connections, polled throughout (its own per-account high-water marks are checked too).
    let most = Arc::new(AtomicU32::new(0));
    let poll = {
        let (most, fake) = (most.clone(), fake.clone());
        tokio::spawn(async move {
            loop {
                let open: u32 = fake.counters().accounts.values().map(|a| a.open).sum();
                most.fetch_max(open, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // 300 at once: request i asks instance i % 3 for channel i % 100, so every channel is asked of all three.
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let mut tasks = Vec::new();
    for i in 0..REQUESTS {
        let channel = ids[i % CHANNELS];
        let url = format!("{}/stream/{channel}.ts", bases[i % 3]);
        let (client, token) = (client.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let resp = match client.get(&url).bearer_auth(&token).send().await {
                Ok(r) => r,
                Err(e) => return Outcome::Broken(format!("{url}: {e}")),
            };
            let status = resp.status().as_u16();
            if let Some(reason) = resp.headers().get("x-tunerpool-refused") {
                return Outcome::Refused(status, reason.to_str().unwrap_or("?").to_owned());
            }
            match status {
                200 => {}
                503 => {
                    let body = resp.text().await.unwrap_or_default();
                    return Outcome::Refused(503, body);
                }
                s => return Outcome::Broken(format!("{url}: HTTP {s}: {}", resp.text().await.unwrap_or_default())),
            }
            // Read some of the stream, then keep the response (the viewer stays) for the test to drop.
            let mut resp = resp;
            let mut got = 0usize;
            while got < 188 * 50 {
                match tokio::time::timeout(Duration::from_secs(15), resp.chunk()).await {
                    Ok(Ok(Some(b))) => got += b.len(),
                    Ok(Ok(None)) => return Outcome::Broken(format!("{url}: the stream ended after {got} bytes")),
                    Ok(Err(e)) => return Outcome::Broken(format!("{url}: {e} after {got} bytes")),
                    Err(_) => return Outcome::Broken(format!("{url}: no bytes for 15 s after {got}")),
                }
            }
            Outcome::Served(channel, resp)
        }));
    }
    let mut served = Vec::new();
    let mut refused: BTreeMap<String, usize> = BTreeMap::new();
    let mut broken = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Outcome::Served(channel, resp) => served.push((channel, resp)),
            Outcome::Refused(status, why) => {
                let why: String = why.chars().take(80).collect();
                *refused.entry(format!("{status} {why}")).or_default() += 1;
            }
            Outcome::Broken(what) => broken.push(what),
        }
    }
    let channels_served: std::collections::BTreeSet<i64> = served.iter().map(|(c, _)| *c).collect();
    eprintln!(
        "storm: {} served ({} channels), {} refused {refused:?}, {} broken; the provider counted at most {} open \
         (polled)",
        served.len(),
        channels_served.len(),
        refused.values().sum::<usize>(),
        broken.len(),
        most.load(Ordering::Relaxed)
    );
    assert!(broken.is_empty(), "requests neither served nor refused cleanly: {broken:?}");
    assert_eq!(served.len() + refused.values().sum::<usize>(), REQUESTS);
    let capacity = (ACCOUNTS.len() as u32 * LIMIT) as usize;
    assert!(!served.is_empty(), "nobody was served");
    assert!(channels_served.len() <= capacity, "more channels served than slots: {channels_served:?}");

    // While they watch: the ledger counts at most the capacity, and so does the provider.
    let used = slots_used(&bases[1], &token).await;
    assert!(used as usize <= capacity && used > 0, "the ledger counts {used} slots held");
    let counters = fake.counters();
    for (name, a) in &counters.accounts {
        assert!(a.max_concurrent <= LIMIT, "{name}: the provider counted {} connections at once", a.max_concurrent);
    }
    assert!(most.load(Ordering::Relaxed) as usize <= capacity);

    // The viewers leave: every slot comes back, on the ledger, at the provider and in Redis.
    drop(served);
    let (tok, fakeref, port) = (token.as_str(), &*fake, redis.port());
    for base in &bases {
        eventually("the ledger's usage back to 0", Duration::from_secs(20), || async move {
            slots_used(base, tok).await == 0
        })
        .await;
    }
    eventually("the provider's connections all closed", Duration::from_secs(10), || async move {
        fakeref.counters().accounts.values().all(|a| a.open == 0)
    })
    .await;
    eventually("no lease or ownership record left in Redis", Duration::from_secs(10), || async move {
        let keys = redis_keys(port);
        keys.iter().all(|k| !k.contains("lease:") && !k.contains("owner:"))
    })
    .await;
    poll.abort();
    let counters = fake.counters();
    for (name, a) in &counters.accounts {
        assert!(a.max_concurrent <= LIMIT, "{name}: the provider counted {} connections at once", a.max_concurrent);
    }
}
