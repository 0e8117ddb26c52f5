//! The scheduled jobs run once per cluster, and a provider is synced by one instance at a time: two instances
//! start against a provider that was never synced (so the catalog job finds it due at once on both) and answers
//! its API slowly (so the sync lasts seconds); the provider is synced once, and "sync now" on either instance
//! while that sync runs answers 409, naming the instance that syncs. Once it is done, "sync now" works again.
//! The history job (every 5 s) writes one pool sample per tick for the cluster, not one per instance.
//!
//! Setup as in `cluster.rs`: one shared PostgreSQL catalog, the provider added once through the CLI (here without
//! its sync).

mod cluster_support;
mod common;

#[path = "../../ledger/tests/support/redis_server.rs"]
mod redis_server;

use std::time::Duration;

use cluster_support::{eventually, get, redis_keys, start_instance, Shared, TOKEN};
use fakeprovider::{AccountSpec, FakeConfig, FakeProvider, Fault, FaultKind};
use redis_server::RedisServer;

async fn sync_now(base: &str, token: &str, provider: i64) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/providers/{provider}/sync"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

async fn catalog_syncs(base: &str, token: &str) -> usize {
    let (status, events) = get(&format!("{base}/api/v1/events?kind=sync&limit=1000"), token).await;
    assert_eq!(status, 200, "{events}");
    events.as_array().unwrap().iter().filter(|e| e["message"].as_str().unwrap_or("").contains("catalog synced")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_sync_runs_once_per_cluster_and_sync_now_meanwhile_is_a_conflict() {
    let redis = RedisServer::start();
    let fake =
        FakeProvider::start(FakeConfig::with_accounts(vec![AccountSpec::new("solo", "pw-solo", 1)])).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let shared = Shared::new(dir.path()).await;
    let out = shared
        .cli(&["provider", "add", "--name", "Fake", "--kind", "xtream", "--no-sync"])
        .args(["--url", &fake.url(), "--username", "solo"])
        .env("TUNERPOOL_PROVIDER_PASSWORD", "pw-solo")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Every API answer takes 0.8 s: a sync (several calls) lasts seconds, long enough to overlap.
    fake.set_fault(Fault::new(FaultKind::ApiSlow { delay_ms: 800 }));

    // The catalog job is due at once (never synced), whatever its interval.
    // The history job samples every 5 s: run by both instances, the store would get two samples per tick.
    let started = unix_now();
    let extra = [("TUNERPOOL_HISTORY_SAMPLE_INTERVAL", "5s")];
    let nodes: Vec<_> = (0..2).map(|n| start_instance(&shared, &redis.url(), n, &extra)).collect();
    let token = TOKEN.to_owned();
    let bases: Vec<String> = nodes.iter().map(|s| s.base.clone()).collect();
    let (_, providers) = get(&format!("{}/api/v1/providers", bases[1]), &token).await;
    let provider = providers.as_array().unwrap()[0]["id"].as_i64().unwrap();

    // A sync holds the provider's lock: "sync now" on either instance meanwhile is a conflict, named.
    let port = redis.port();
    let lock = format!("lock:sync:{provider}");
    eventually("a scheduled sync starts", Duration::from_secs(20), || {
        let lock = lock.clone();
        async move { redis_keys(port).iter().any(|k| k.ends_with(&lock)) }
    })
    .await;
    for base in &bases {
        let (status, body) = sync_now(base, &token, provider).await;
        assert_eq!(status, 409, "{body}");
        let message = body["error"].as_str().unwrap();
        assert!(message.contains("being synced") && message.contains("node-"), "{message}");
    }
    eventually("the scheduled sync ends", Duration::from_secs(60), || {
        let lock = lock.clone();
        async move { !redis_keys(port).iter().any(|k| k.ends_with(&lock)) }
    })
    .await;
    // The other instance had its chance: its first tick came at its start, within the sync.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let keys = redis_keys(port);
    assert!(keys.iter().any(|k| k.ends_with("lock:scheduler")), "one instance runs the jobs: {keys:?}");
    let (tok, b0) = (token.as_str(), bases[0].as_str());
    eventually(
        "the sync's event is recorded",
        Duration::from_secs(10),
        || async move { catalog_syncs(b0, tok).await >= 1 },
    )
    .await;
    assert_eq!(catalog_syncs(&bases[1], &token).await, 1, "the provider was synced once for the cluster");

    // Free again: "sync now" works on any instance.
    fake.clear_faults();
    let (status, report) = sync_now(&bases[1], &token, provider).await;
    assert_eq!(status, 200, "{report}");
    eventually("the manual sync's event is recorded", Duration::from_secs(10), || async move {
        catalog_syncs(b0, tok).await == 2
    })
    .await;

    // The history job ran on one instance: at most one pool sample per 5 s since the start (and one at it).
    let (status, samples) =
        get(&format!("{}/api/v1/history/pool?from={}&provider_id={provider}", bases[0], started - 1), &token).await;
    assert_eq!(status, 200, "{samples}");
    let samples = samples.as_array().unwrap().len() as u64;
    let window = unix_now() - started;
    eprintln!("history: {samples} pool samples in {window} s from two instances (5 s interval)");
    assert!(samples >= 1 && samples <= window / 5 + 1, "{samples} pool samples in {window} s: sampled twice per tick");
    cluster_support::assert_secret_never_logged(dir.path(), 2);
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}
