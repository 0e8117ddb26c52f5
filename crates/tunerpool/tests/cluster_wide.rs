//! What holds across a cluster's instances as it does on one (issue 15): a downstream user's own connection
//! limit (its streams counted in Redis, one lease each), the failed-login limit (counted in Redis, the client's
//! address taken from `X-Forwarded-For` only from a trusted proxy), the sessions and pool views (every
//! instance's sessions, each naming its instance), stopping a session through any instance, and the health
//! check naming what is down (the store, Redis).
//!
//! Setup as in `cluster.rs`: `tunerpool serve` processes against one Redis and one shared PostgreSQL catalog
//! (the health test on a PostgreSQL server of its own, which it stops), the provider and the user added once
//! through the CLI before any server runs.

mod cluster_support;
mod common;

#[path = "../../ledger/tests/support/redis_server.rs"]
mod redis_server;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster_support::{
    add_provider, assert_secret_never_logged, channel_ids, eventually, get, start_instance, watch, Seen, Shared,
};
use common::{start_server_with_stderr, tunerpool, Server};
use fakeprovider::{AccountSpec, FakeConfig, FakeProvider};
use redis_server::RedisServer;

/// Adds the downstream user `name` with `password` and its own limit, through the CLI.
fn add_user(shared: &Shared, name: &str, password: &str, max: u32) {
    let out = shared
        .cli(&["user", "add", "--username", name, "--max-connections", &max.to_string()])
        .env("TUNERPOOL_USER_PASSWORD", password)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

struct Nodes {
    _redis: RedisServer,
    _fake: FakeProvider,
    dir: tempfile::TempDir,
    shared: Shared,
    redis_url: String,
    nodes: Vec<Option<Server>>,
    token: String,
}

impl Nodes {
    /// `n` instances over a provider with one account of `connections`, and the user `kim` (password `k1m`)
    /// limited to `kim_max`; `extra` settings for every instance.
    async fn start(n: usize, connections: u32, kim_max: u32, extra: &[(&str, &str)]) -> Nodes {
        let redis = RedisServer::start();
        let fake = FakeProvider::start(FakeConfig::with_accounts(vec![AccountSpec::new("acc", "pw-acc", connections)]))
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let shared = Shared::new(dir.path()).await;
        add_provider(&shared, &fake.url(), &[("acc", "pw-acc")]);
        add_user(&shared, "kim", "k1m", kim_max);
        let nodes: Vec<Option<Server>> =
            (0..n).map(|i| Some(start_instance(&shared, &redis.url(), i, extra))).collect();
        let token = cluster_support::TOKEN.to_owned();
        Nodes { redis_url: redis.url(), _redis: redis, _fake: fake, dir, shared, nodes, token }
    }

    fn base(&self, i: usize) -> String {
        self.nodes[i].as_ref().expect("a running instance").base.clone()
    }
}

/// `GET url` without credentials beyond those in the URL: the status and the body (the whole body for a
/// refusal; for a stream, its first chunk is awaited and the response kept open in `keep`).
async fn open(url: &str, keep: &mut Vec<reqwest::Response>) -> (u16, String) {
    let mut r = reqwest::Client::new().get(url).send().await.unwrap();
    let status = r.status().as_u16();
    if status == 200 && r.headers().get("x-tunerpool-refused").is_none() {
        let first = r.chunk().await.unwrap();
        assert!(first.is_some_and(|c| !c.is_empty()), "a stream with no bytes");
        keep.push(r);
        return (status, String::new());
    }
    (status, r.text().await.unwrap_or_default())
}

fn live(base: &str, channel: i64) -> String {
    format!("{base}/live/kim/k1m/{channel}.ts")
}

/// The user's streams on every instance, as one instance's users API counts them.
async fn kims_streams(base: &str, token: &str) -> u64 {
    let (status, users) = get(&format!("{base}/api/v1/users"), token).await;
    assert_eq!(status, 200, "{users}");
    let kim = users.as_array().unwrap().iter().find(|u| u["username"] == "kim").expect("kim is listed").clone();
    kim["active_connections"].as_u64().unwrap()
}

fn at_limit(channel: i64) -> String {
    // What a single instance answers (relay `users`): the same words across a cluster.
    format!("user kim is at its limit of 1 connection (watching: channel {channel}); close a stream first\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_at_its_limit_on_one_instance_is_at_its_limit_on_every_other_until_its_stream_ends_or_dies() {
    let settings = [
        ("TUNERPOOL_RELAY_USER_LIMIT_POLICY", "refuse"),
        ("TUNERPOOL_RELAY_ACQUIRE_WAIT", "500ms"),
        // The status and the words of the refusal, not the clip.
        ("TUNERPOOL_OUTPUTS_REFUSAL_CLIP_LIVE", "false"),
    ];
    let mut c = Nodes::start(3, 3, 1, &settings).await;
    let ids = channel_ids(&c.base(0), &c.token, 3).await;

    // Nine requests at once, three per instance, each for another channel: exactly one is served, every other
    // one gets the single instance's refusal.
    let mut keep = Vec::new();
    let tasks: Vec<_> = (0..9)
        .map(|i| {
            let url = live(&c.base(i % 3), ids[i / 3]);
            tokio::spawn(async move {
                let mut keep = Vec::new();
                let answer = open(&url, &mut keep).await;
                (answer, keep)
            })
        })
        .collect();
    let mut served = 0;
    for t in tasks {
        let ((status, body), kept) = t.await.unwrap();
        match status {
            200 => served += 1,
            403 => assert!(body.starts_with("user kim is at its limit of 1 connection (watching: channel "), "{body}"),
            other => panic!("HTTP {other}: {body}"),
        }
        keep.extend(kept);
    }
    assert_eq!(served, 1, "a user limited to 1 got {served} streams at once across three instances");
    assert_eq!(kims_streams(&c.base(2), &c.token).await, 1);
    drop(keep);
    eventually("the stream's lease released", Duration::from_secs(3), || async {
        kims_streams(&c.base(1), &c.token).await == 0
    })
    .await;

    // Watching on instance 0: refused on 1 and 2 with the words a single instance uses.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let viewer = watch(live(&c.base(0), ids[0]), c.token.clone(), seen.clone());
    eventually("bytes on instance 0", Duration::from_secs(10), || async { seen.lock().unwrap().bytes > 0 }).await;
    for i in [1, 2] {
        let (status, body) = open(&live(&c.base(i), ids[1]), &mut Vec::new()).await;
        assert_eq!((status, body), (403, at_limit(ids[0])), "instance {i}");
    }
    assert_eq!(kims_streams(&c.base(1), &c.token).await, 1, "instance 1 counts instance 0's stream");

    // The viewer leaves: instance 1 admits.
    viewer.abort();
    let left = Instant::now();
    let mut kept = Vec::new();
    while open(&live(&c.base(1), ids[1]), &mut kept).await.0 != 200 {
        assert!(left.elapsed() < Duration::from_secs(5), "instance 1 still refuses after the stream on 0 ended");
    }
    println!("admitted on instance 1 {:?} after the viewer on instance 0 left", left.elapsed());
    drop(kept);
    eventually("the stream on 1 released", Duration::from_secs(3), || async {
        kims_streams(&c.base(2), &c.token).await == 0
    })
    .await;

    // Watching on instance 0 again, and instance 0 dies (kill -9: no release): instance 1 admits once the
    // lease's TTL (cluster.ttl, 2 s) has run out, not before.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let _viewer = watch(live(&c.base(0), ids[0]), c.token.clone(), seen.clone());
    eventually("bytes on instance 0", Duration::from_secs(10), || async { seen.lock().unwrap().bytes > 0 }).await;
    let mut dead = c.nodes[0].take().unwrap();
    let killed = Instant::now();
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    // Renewed at most a third of the TTL before the kill, the lease still counts for over a second.
    let (status, body) = open(&live(&c.base(1), ids[1]), &mut Vec::new()).await;
    assert_eq!((status, body), (403, at_limit(ids[0])), "the dead instance's stream still counts");
    eventually("the dead instance's lease expires", Duration::from_secs(4), || async {
        kims_streams(&c.base(1), &c.token).await == 0
    })
    .await;
    let expired = killed.elapsed();
    let mut kept = Vec::new();
    let (status, body) = open(&live(&c.base(1), ids[1]), &mut kept).await;
    assert_eq!(status, 200, "{body}");
    let admitted = killed.elapsed();
    println!(
        "after the kill of instance 0: its lease gone after {expired:?}, the user streaming on 1 after {admitted:?}"
    );
    assert!(expired < Duration::from_millis(2_500), "the dead instance's lease counted {expired:?} (TTL 2 s)");
    drop(kept);
    assert_secret_never_logged(c.dir.path(), 3);
}

/// `player_api.php` as kim with `password` at `base`, from `forwarded_for` if given: the status, and whether it
/// logged in.
async fn login(base: &str, password: &str, forwarded_for: Option<&str>) -> (u16, bool) {
    let mut req = reqwest::Client::new().get(format!("{base}/player_api.php?username=kim&password={password}"));
    if let Some(ip) = forwarded_for {
        req = req.header("x-forwarded-for", ip);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    (status, body["user_info"]["auth"] == 1)
}

/// 100 wrong passwords at once spread over `bases`: (refused without a check, checked and refused).
async fn brute_force(bases: &[String]) -> (usize, usize) {
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let base = bases[i % bases.len()].clone();
            tokio::spawn(async move { login(&base, &format!("wrong{i}"), None).await })
        })
        .collect();
    let (mut limited, mut checked) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            (429, _) => limited += 1,
            (200, false) => checked += 1,
            other => panic!("{other:?}"),
        }
    }
    (limited, checked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_spread_over_instances_meet_the_limit_of_one_instance_and_spoofing_does_not_reset_it() {
    // Instance 2 trusts the loopback as a proxy; 0 and 1 trust nobody.
    let mut c = Nodes::start(2, 1, 0, &[]).await;
    let proxy = start_instance(&c.shared, &c.redis_url, 2, &[("TUNERPOOL_HTTP_TRUSTED_PROXIES", "127.0.0.1")]);
    c.nodes.push(Some(proxy));
    let bases: Vec<String> = (0..3).map(|i| c.base(i)).collect();

    // One instance alone (no cluster, the same database) as the reference.
    let port = cluster_support::free_port();
    let mut cmd = tunerpool(c.dir.path());
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir", &c.shared.data_dir("single")])
        .env("TUNERPOOL_STORE_URL", &c.shared.store_url);
    let log = std::fs::File::create(c.dir.path().join("single.log")).unwrap();
    let single = start_server_with_stderr(cmd, std::process::Stdio::from(log));
    let alone = brute_force(std::slice::from_ref(&single.base)).await;
    let spread = brute_force(&bases).await;
    println!("100 wrong passwords at once: one instance {alone:?}, three instances {spread:?} (429s, checks)");
    assert_eq!(alone, (90, 10), "one instance");
    assert_eq!(spread, alone, "three instances refuse as one does");

    // Blocked everywhere, even with the right password; a spoofed X-Forwarded-For from a peer that is no
    // trusted proxy changes nothing.
    for base in &bases[..2] {
        assert_eq!(login(base, "k1m", None).await, (429, false), "{base}");
        assert_eq!(login(base, "k1m", Some("198.51.100.7")).await, (429, false), "{base}, spoofed");
    }
    // From the instance that trusts this peer as a proxy, the header names the client: another address, not
    // blocked; and without the header the peer itself is the client, blocked as everywhere.
    assert_eq!(login(&bases[2], "k1m", None).await, (429, false));
    assert_eq!(login(&bases[2], "k1m", Some("198.51.100.7")).await, (200, true));
    // Another client's wrong passwords through the proxy count across the cluster too: blocked on the instance
    // where they failed, even though the right password is cached there (it is the same user), as on one
    // instance.
    for i in 0..10 {
        assert_eq!(login(&bases[2], &format!("bad{i}"), Some("198.51.100.8")).await, (200, false));
    }
    assert_eq!(login(&bases[2], "k1m", Some("198.51.100.8")).await, (429, false));
    assert_eq!(login(&bases[2], "k1m", Some("198.51.100.7")).await, (200, true));
    assert_secret_never_logged(c.dir.path(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sessions_and_pool_views_show_every_instance_and_drop_a_dead_one() {
    let mut c = Nodes::start(2, 1, 0, &[]).await;
    let ids = channel_ids(&c.base(0), &c.token, 1).await;
    let channel = ids[0];
    // A viewer on each instance of the same channel: one reads the provider, the other relays it.
    let stream = |i: usize| format!("{}/stream/{channel}.ts", c.base(i));
    let (s0, s1) = (Arc::new(Mutex::new(Seen::default())), Arc::new(Mutex::new(Seen::default())));
    // The first as kim, who has no limit of its own: it takes no lease in Redis, and counts where it watches.
    let v0 = watch(live(&c.base(0), channel), c.token.clone(), s0.clone());
    eventually("bytes on instance 0", Duration::from_secs(10), || async { s0.lock().unwrap().bytes > 0 }).await;
    assert_eq!(kims_streams(&c.base(0), &c.token).await, 1);
    let keys = cluster_support::redis_keys(c._redis.port());
    assert!(keys.iter().any(|k| k.contains(":owner:")), "the keys were read: {keys:?}");
    assert!(keys.iter().all(|k| !k.contains(":user-")), "a lease for a user without a limit: {keys:?}");
    let _v1 = watch(stream(1), c.token.clone(), s1.clone());
    eventually("bytes on instance 1", Duration::from_secs(10), || async { s1.lock().unwrap().bytes > 0 }).await;

    // Either instance lists both sessions, each naming its instance, once instance 1 has published its own.
    let token = c.token.clone();
    let sessions = |base: String| {
        let token = token.clone();
        async move { session_rows(&base, &token).await }
    };
    let instances = |base: String| {
        let token = token.clone();
        async move { instance_rows(&base, &token).await }
    };
    let (b0, b1) = (c.base(0), c.base(1));
    let want = vec![
        ("node-0".to_owned(), "node-0".to_owned(), channel, 2), // the test's viewer and instance 1
        ("node-1".to_owned(), "node-0".to_owned(), channel, 1),
    ];
    for i in [0, 1] {
        let base = [&b0, &b1][i].clone();
        eventually(&format!("instance {i} lists both sessions"), Duration::from_secs(3), || {
            let (rows, want) = (sessions(base.clone()), want.clone());
            async move { rows.await == want }
        })
        .await;
    }
    // The pool status lists both instances with their counts (peers relaying a channel are not viewers).
    assert_eq!(
        instances(b1.clone()).await,
        [("node-0".to_owned(), false, 1, 0, 1), ("node-1".to_owned(), true, 0, 1, 1)],
        "as instance 1 sees it"
    );

    // Instance 1 dies: its entries are gone from instance 0's views within the TTL.
    let mut dead = c.nodes[1].take().unwrap();
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    eventually("instance 1 gone from instance 0's pool view", Duration::from_secs(4), || {
        let list = instances(b0.clone());
        async move { list.await.iter().map(|i| i.0.clone()).collect::<Vec<_>>() == ["node-0"] }
    })
    .await;
    eventually("instance 1's session gone from instance 0's sessions", Duration::from_secs(4), || {
        let rows = sessions(b0.clone());
        async move { rows.await.iter().all(|r| r.0 == "node-0") }
    })
    .await;
    v0.abort();
    eventually("no session left", Duration::from_secs(10), || {
        let rows = sessions(b0.clone());
        async move { rows.await.is_empty() }
    })
    .await;
    assert_secret_never_logged(c.dir.path(), 1);
}

/// `GET /api/v1/sessions` as (instance, owner, channel, viewers), sorted.
async fn session_rows(base: &str, token: &str) -> Vec<(String, String, i64, usize)> {
    let (status, list) = get(&format!("{base}/api/v1/sessions"), token).await;
    assert_eq!(status, 200, "{list}");
    let mut rows: Vec<(String, String, i64, usize)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["instance"].as_str().unwrap_or("?").to_owned(),
                s["owner"].as_str().unwrap_or("?").to_owned(),
                s["channel_id"].as_i64().unwrap(),
                s["viewers"].as_array().unwrap().len(),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// `GET /api/v1/pool`'s instances as (id, this, owned, relayed, viewers).
async fn instance_rows(base: &str, token: &str) -> Vec<(String, bool, u64, u64, u64)> {
    let (status, pool) = get(&format!("{base}/api/v1/pool"), token).await;
    assert_eq!(status, 200, "{pool}");
    pool["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_owned(),
                i["this"].as_bool().unwrap(),
                i["sessions_owned"].as_u64().unwrap(),
                i["sessions_relayed"].as_u64().unwrap(),
                i["viewers"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_the_oldest_stream_ends_it_on_the_other_instance_within_a_third_of_the_ttl() {
    // The default policy: a user at its limit zaps, its oldest stream ends.
    let c = Nodes::start(2, 3, 1, &[]).await;
    let ids = channel_ids(&c.base(0), &c.token, 2).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let _old = watch(live(&c.base(0), ids[0]), c.token.clone(), seen.clone());
    eventually("bytes on instance 0", Duration::from_secs(10), || async { seen.lock().unwrap().bytes > 0 }).await;
    let asked = Instant::now();
    let mut kept = Vec::new();
    let (status, body) = open(&live(&c.base(1), ids[1]), &mut kept).await;
    assert_eq!(status, 200, "{body}");
    eventually("the replaced stream on instance 0 ends", Duration::from_secs(3), || async {
        seen.lock().unwrap().ended.is_some()
    })
    .await;
    // How long the old stream kept sending after the new one was asked for: its instance finds its lease taken
    // at its next renewal (every third of the TTL, 0.67 s).
    let last = *seen.lock().unwrap().arrivals.last().unwrap();
    let overlap = last.saturating_duration_since(asked);
    println!("the oldest stream on instance 0 sent its last bytes {overlap:?} after instance 1 was asked");
    assert!(overlap < Duration::from_millis(1_200), "the replaced stream went on for {overlap:?}");
    assert_eq!(kims_streams(&c.base(0), &c.token).await, 1, "one stream counted, the new one");
    drop(kept);
}

/// `GET /healthz` without credentials: the status, the body, and how long it took.
async fn health(base: &str) -> (u16, serde_json::Value, Duration) {
    let asked = Instant::now();
    let r = reqwest::Client::new().get(format!("{base}/healthz")).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert!(!text.contains(cluster_support::PG_PASSWORD), "the store's password in /healthz: {text}");
    (status, serde_json::from_str(&text).unwrap(), asked.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_check_names_what_is_down_the_store_or_redis_and_recovers_with_it() {
    // A PostgreSQL server of this test's own: it is stopped mid-run (the shared one serves the other tests).
    let pg = Arc::new(tunerpool_testkit::postgres::PgServer::start());
    let mut redis = RedisServer::start();
    let fake =
        FakeProvider::start(FakeConfig::with_accounts(vec![AccountSpec::new("acc", "pw-acc", 1)])).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let shared = Shared::on(dir.path(), &pg).await;
    add_provider(&shared, &fake.url(), &[("acc", "pw-acc")]);
    let node = start_instance(&shared, &redis.url(), 0, &[]);
    let base = node.base.clone();

    let (status, body, _) = health(&base).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["status"].as_str(), body["role"].as_str()), (Some("ok"), Some("cluster")), "{body}");
    assert_eq!(body["store"], serde_json::json!({"engine": "postgresql", "status": "ok"}), "{body}");
    assert_eq!(body["cluster"]["redis"], "ok", "{body}");
    assert!(body.get("problems").is_none(), "{body}");

    // The database stops: 503, naming the store, within the ping's bound (Docker's check waits 5 s).
    let stopping = pg.clone();
    tokio::task::spawn_blocking(move || stopping.stop()).await.unwrap();
    eventually("a 503 naming the store", Duration::from_secs(10), || async {
        let (status, body, took) = health(&base).await;
        assert!(took < Duration::from_secs(4), "/healthz took {took:?} with the store down");
        status == 503
            && body["status"] == "unavailable"
            && body["store"] == serde_json::json!({"engine": "postgresql", "status": "unreachable"})
            && body["cluster"]["redis"] == "ok"
            && body["problems"].as_array().is_some_and(|p| {
                p.len() == 1 && p[0].as_str().is_some_and(|t| t.starts_with("the store (postgresql) does not answer"))
            })
    })
    .await;

    // It is back: 200 again.
    let restarting = pg.clone();
    tokio::task::spawn_blocking(move || restarting.restart()).await.unwrap();
    eventually("a 200 once the store is back", Duration::from_secs(15), || async {
        let (status, body, _) = health(&base).await;
        status == 200 && body["store"]["status"] == "ok" && body["status"] == "ok"
    })
    .await;

    // Redis stops: 503 naming Redis (the store answers); back, 200.
    redis.kill();
    eventually("a 503 naming Redis", Duration::from_secs(10), || async {
        let (status, body, _) = health(&base).await;
        status == 503
            && body["cluster"]["redis"] == "unreachable"
            && body["store"]["status"] == "ok"
            && body["problems"]
                .as_array()
                .is_some_and(|p| p.len() == 1 && p[0].as_str().is_some_and(|t| t.starts_with("Redis did not answer")))
    })
    .await;
    redis.restart();
    eventually("a 200 once Redis is back", Duration::from_secs(10), || async {
        let (status, body, _) = health(&base).await;
        status == 200 && body["cluster"]["redis"] == "ok"
    })
    .await;
    drop(node);
    assert_secret_never_logged(dir.path(), 1);
}

/// The id of the live session of `channel` that `base` lists on `instance`, once it lists one (within 5 s).
async fn session_id(base: &str, token: &str, instance: &str, channel: i64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, list) = get(&format!("{base}/api/v1/sessions"), token).await;
        assert_eq!(status, 200, "{list}");
        let found = list
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["instance"] == instance && s["channel_id"] == channel)
            .and_then(|s| s["id"].as_u64());
        if let Some(id) = found {
            return id;
        }
        assert!(Instant::now() < deadline, "{base} does not list {instance}'s session of channel {channel}: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `DELETE /api/v1/sessions/{id}{query}` at `base`: the status and the body.
async fn stop(base: &str, token: &str, id: u64, query: &str) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .delete(format!("{base}/api/v1/sessions/{id}{query}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_stopped_through_any_instance_and_gone_from_every_list() {
    let mut c = Nodes::start(3, 3, 0, &[]).await;
    let ids = channel_ids(&c.base(0), &c.token, 2).await;
    let bases: Vec<String> = (0..3).map(|i| c.base(i)).collect();
    let all_empty = || async {
        for base in &bases {
            if !session_rows(base, &c.token).await.is_empty() {
                return false;
            }
        }
        true
    };

    // A viewer on instance 0; instance 1 lists its session, naming instance 0.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let _viewer = watch(format!("{}/stream/{}.ts", bases[0], ids[0]), c.token.clone(), seen.clone());
    eventually("bytes on instance 0", Duration::from_secs(10), || async { seen.lock().unwrap().bytes > 0 }).await;
    let id = session_id(&bases[1], &c.token, "node-0", ids[0]).await;

    // The internal endpoint wants the cluster secret: without it, or with a wrong one, nothing stops.
    let internal = format!("{}/internal/v1/sessions/{id}", bases[0]);
    let client = reqwest::Client::new();
    assert_eq!(client.delete(&internal).send().await.unwrap().status(), 401);
    let wrong = client.delete(&internal).header("x-tunerpool-cluster-secret", "not-the-secret").send();
    assert_eq!(wrong.await.unwrap().status(), 401);
    assert_eq!(session_id(&bases[0], &c.token, "node-0", ids[0]).await, id, "stopped without the secret");

    // Stopped through instance 1, naming instance 0: the viewer's stream there ends, and every list drops it.
    let (status, body) = stop(&bases[1], &c.token, id, "?instance=node-0").await;
    assert_eq!(status, 204, "{body}");
    eventually("the viewer's stream on instance 0 ends", Duration::from_secs(3), || async {
        seen.lock().unwrap().ended.is_some()
    })
    .await;
    eventually("the session gone from every instance's list", Duration::from_secs(3), all_empty).await;
    // Again: it is gone (404 naming it), as is an instance that does not exist.
    let (status, body) = stop(&bases[1], &c.token, id, "?instance=node-0").await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains(&format!("instance node-0 has no session {id}")), "{body}");
    let (status, body) = stop(&bases[1], &c.token, id, "?instance=node-9").await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("instance node-9 is not in the cluster"), "{body}");
    let (status, body) = stop(&bases[1], &c.token, id, "?instance=no%20such").await;
    assert_eq!((status, body["fields"][0]["field"].as_str()), (400, Some("instance")), "{body}");

    // Without `instance`: instance 1 has no session with the id, so it asks the one instance that has.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let _viewer = watch(format!("{}/stream/{}.ts", bases[2], ids[1]), c.token.clone(), seen.clone());
    eventually("bytes on instance 2", Duration::from_secs(10), || async { seen.lock().unwrap().bytes > 0 }).await;
    let id = session_id(&bases[1], &c.token, "node-2", ids[1]).await;
    let (status, body) = stop(&bases[1], &c.token, id, "").await;
    assert_eq!(status, 204, "{body}");
    eventually("the viewer's stream on instance 2 ends", Duration::from_secs(3), || async {
        seen.lock().unwrap().ended.is_some()
    })
    .await;
    eventually("that session gone from every instance's list", Duration::from_secs(3), all_empty).await;
    let (status, body) = stop(&bases[1], &c.token, id, "").await;
    assert_eq!(status, 404, "{body}");

    // The holder is dead but still registered (its record lives out its TTL): 502, naming it.
    let mut dead = c.nodes[2].take().unwrap();
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    let (status, body) = stop(&bases[1], &c.token, 1, "?instance=node-2").await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"].as_str().unwrap().starts_with("instance node-2 could not be asked to stop session 1"),
        "{body}"
    );
    assert_secret_never_logged(c.dir.path(), 2);
}
