//! What the cluster tests share: instances started against one Redis and one PostgreSQL catalog (a fresh
//! database on the test binary's own server, `tunerpool_testkit::postgres`; each instance keeps its own data
//! dir for what stays local), the provider added once through the CLI, viewers that record what they saw, and
//! a look into Redis.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::common::{start_server_with_stderr, tunerpool, Server};

pub const SECRET: &str = "cluster-secret-for-the-test-0123456789";

/// The admin token of every instance (`admin.token`): each has a data dir of its own, where a generated one
/// would differ.
pub const TOKEN: &str = "cluster-admin-token-for-the-test-0123456789";

/// The password in the shared catalog's URL. The test server trusts every local connection, so it checks
/// nothing; it is there to be looked for in the logs, which must never show it.
pub const PG_PASSWORD: &str = "pg-password-for-the-test-0123456789";

/// The catalog the instances share: its `store.url`, and the test's dir under which each instance (and the
/// CLI) gets a data dir of its own.
pub struct Shared {
    dir: PathBuf,
    pub store_url: String,
}

impl Shared {
    /// A fresh PostgreSQL database for one test's cluster. Fails (never skips) without PostgreSQL.
    pub async fn new(dir: &Path) -> Shared {
        Shared::on(dir, tunerpool_testkit::postgres::PgServer::shared()).await
    }

    /// A fresh database on `server`: a test's own server, for a test that stops it.
    pub async fn on(dir: &Path, server: &tunerpool_testkit::postgres::PgServer) -> Shared {
        let url = server.fresh_database().await;
        let store_url = url.replacen("postgres://tunerpool@", &format!("postgres://tunerpool:{PG_PASSWORD}@"), 1);
        assert_ne!(store_url, url, "the test server's URL changed form: {url}");
        Shared { dir: dir.to_path_buf(), store_url }
    }

    /// Instance `n`'s data dir (`"cli"`: the CLI's).
    pub fn data_dir(&self, n: &str) -> String {
        self.dir.join(format!("data-{n}")).to_str().unwrap().to_owned()
    }

    /// `tunerpool` with `args` (a subcommand and its flags) on the shared catalog, with the CLI's data dir.
    pub fn cli(&self, args: &[&str]) -> Command {
        let mut cmd = tunerpool(&self.dir);
        cmd.args(args).args(["--data-dir", &self.data_dir("cli")]);
        cmd.env("TUNERPOOL_STORE_URL", &self.store_url);
        cmd
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts instance `node-{n}` on the shared catalog, with a data dir of its own; `extra` environment variables
/// come last (they override the defaults here).
pub fn start_instance(shared: &Shared, redis: &str, n: usize, extra: &[(&str, &str)]) -> Server {
    let port = free_port();
    let dir = &shared.dir;
    let mut cmd = tunerpool(dir);
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir", &shared.data_dir(&n.to_string())])
        .env("TUNERPOOL_STORE_URL", &shared.store_url)
        .env("TUNERPOOL_ADMIN_TOKEN", TOKEN)
        .env("TUNERPOOL_POOL_REDIS_URL", redis)
        .env("TUNERPOOL_CLUSTER_SECRET", SECRET)
        .env("TUNERPOOL_CLUSTER_ADVERTISE_URL", format!("http://127.0.0.1:{port}"))
        .env("TUNERPOOL_CLUSTER_INSTANCE_ID", format!("node-{n}"))
        // One importer: the CLI did it; the servers' jobs stay out of the test's time.
        .env("TUNERPOOL_SYNC_CATALOG_INTERVAL", "24h")
        .env("TUNERPOOL_SYNC_DETAILS_INITIAL_DELAY", "1h")
        .env("TUNERPOOL_SYNC_DETAILS_INTERVAL", "1h")
        .env("TUNERPOOL_RELAY_LINGER", "2s")
        // Debug: the secrets check at the end reads everything that is logged.
        .env("TUNERPOOL_LOG_LEVEL", "debug");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let log = std::fs::File::create(dir.join(format!("node-{n}.log"))).unwrap();
    start_server_with_stderr(cmd, Stdio::from(log))
}

/// Adds the provider `Fake` at `url` with its accounts `(username, password)` through the CLI (the first as the
/// provider's own login, the others with `account add`), before any server runs: the one import.
pub fn add_provider(shared: &Shared, url: &str, accounts: &[(&str, &str)]) {
    let (user, pw) = accounts[0];
    let out = shared
        .cli(&["provider", "add", "--name", "Fake", "--kind", "xtream"])
        .args(["--url", url, "--username", user])
        .env("TUNERPOOL_PROVIDER_PASSWORD", pw)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for (user, pw) in &accounts[1..] {
        let out = shared
            .cli(&["account", "add", "--provider", "Fake", "--username", user])
            .env("TUNERPOOL_PROVIDER_PASSWORD", pw)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

pub async fn get(url: &str, token: &str) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new().get(url).bearer_auth(token).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// The first `n` channel ids as an instance lists them.
pub async fn channel_ids(base: &str, token: &str, n: usize) -> Vec<i64> {
    let (status, page) = get(&format!("{base}/api/v1/channels?per_page={n}"), token).await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().iter().map(|c| c["id"].as_i64().unwrap()).collect()
}

/// The slots the ledger counts as held, cluster-wide (`GET /api/v1/pool`'s totals).
pub async fn slots_used(base: &str, token: &str) -> u64 {
    let (status, pool) = get(&format!("{base}/api/v1/pool"), token).await;
    assert_eq!(status, 200, "{pool}");
    pool["totals"]["active"].as_u64().unwrap()
}

/// [`slots_used`], or `None` while the ledger does not answer (a 503).
pub async fn try_slots_used(base: &str, token: &str) -> Option<u64> {
    let (status, pool) = get(&format!("{base}/api/v1/pool"), token).await;
    match status {
        200 => pool["totals"]["active"].as_u64(),
        503 => None,
        _ => panic!("HTTP {status}: {pool}"),
    }
}

/// The keys in Redis under `tunerpool:` (one `KEYS`, fine for a test's few keys).
pub fn redis_keys(port: u16) -> Vec<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    s.write_all(b"*2\r\n$4\r\nKEYS\r\n$11\r\ntunerpool:*\r\n").unwrap();
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&text);
    text.lines().filter(|l| l.starts_with("tunerpool:")).map(str::to_owned).collect()
}

/// What one viewer saw: when each chunk arrived, and whether its stream ended.
#[derive(Default)]
pub struct Seen {
    pub arrivals: Vec<Instant>,
    pub bytes: u64,
    pub ended: Option<String>,
}

pub fn watch(url: String, token: String, seen: Arc<Mutex<Seen>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let resp = match reqwest::Client::new().get(&url).bearer_auth(&token).send().await {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                seen.lock().unwrap().ended = Some(format!("HTTP {}", r.status()));
                return;
            }
            Err(e) => {
                seen.lock().unwrap().ended = Some(e.to_string());
                return;
            }
        };
        let mut body = resp.bytes_stream();
        loop {
            match body.next().await {
                Some(Ok(b)) => {
                    let mut s = seen.lock().unwrap();
                    s.arrivals.push(Instant::now());
                    s.bytes += b.len() as u64;
                }
                Some(Err(e)) => {
                    seen.lock().unwrap().ended = Some(e.to_string());
                    return;
                }
                None => {
                    seen.lock().unwrap().ended = Some("the stream ended".into());
                    return;
                }
            }
        }
    })
}

/// Polls `check` every 100 ms until it holds, or panics naming `what` after `within`.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Panics if any instance's log (`node-{n}.log` in `dir`) holds the cluster secret or the catalog's password.
pub fn assert_secret_never_logged(dir: &std::path::Path, nodes: usize) {
    for n in 0..nodes {
        let log = std::fs::read_to_string(dir.join(format!("node-{n}.log"))).unwrap();
        assert!(!log.contains(SECRET), "node-{n} logged the cluster secret");
        assert!(!log.contains(PG_PASSWORD), "node-{n} logged the catalog's password");
    }
}
