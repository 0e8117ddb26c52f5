//! The processes a scenario runs against each other: the real `tunerpool` binary (one
//! [`Gateway`] per instance, each with its own SQLite data dir), a throwaway `redis-server`
//! ([`Redis`]) for the two-instance scenarios, and the admin-API calls that configure a gateway
//! the way an operator would (providers, accounts, users).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

#[path = "../../ledger/tests/support/redis_server.rs"]
mod redis_server;

/// A `redis-server` on a free local port, killed on drop (the ledger tests' helper).
pub use redis_server::RedisServer as Redis;

/// The admin token every gateway is started with (`TUNERPOOL_ADMIN_TOKEN`).
pub const ADMIN_TOKEN: &str = "chaos-admin-token-0123456789";

/// The `tunerpool` executable: `$CHAOS_TUNERPOOL`, else the one built beside this program
/// (`target/{debug,release}/tunerpool`, looked for from the running executable upwards).
pub fn tunerpool_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("CHAOS_TUNERPOOL") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("CHAOS_TUNERPOOL={} is not a file", p.display());
        }
        return Ok(p);
    }
    let exe = std::env::current_exe().context("cannot tell where this program is")?;
    for dir in exe.ancestors().skip(1).take(3) {
        let candidate = dir.join("tunerpool");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "no tunerpool binary next to {} (build it with `cargo build -p tunerpool`, or set CHAOS_TUNERPOOL)",
        exe.display()
    )
}

/// Raise this process's open-file limit to its hard limit (every viewer is a socket; children
/// inherit the limit, so the gateways get it too).
pub fn raise_file_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    lim.rlim_cur
}

/// How to start one gateway.
///
/// Exists so scenarios state only what differs from the defaults (`--set key=value` pairs,
/// the log level).
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// `--set key=value` pairs.
    pub set: Vec<(String, String)>,
    /// `--log-level`.
    pub log_level: String,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions { set: Vec::new(), log_level: "info".into() }
    }
}

impl GatewayOptions {
    /// Add a `--set key=value`.
    pub fn set(mut self, key: &str, value: impl ToString) -> Self {
        self.set.push((key.to_string(), value.to_string()));
        self
    }

    /// Join a Redis ledger (`pool.ledger=redis`) with this lease TTL.
    pub fn redis(self, redis: &Redis, lease_ttl: &str) -> Self {
        self.set("pool.ledger", "redis").set("pool.redis_url", redis.url()).set("pool.lease_ttl", lease_ttl)
    }
}

/// One running `tunerpool serve` process with its own data dir; killed on drop.
///
/// Exists so a scenario can start, query, SIGKILL and measure a real gateway process: its
/// admin API (with [`ADMIN_TOKEN`]), its client routes, its memory from `/proc`, and its whole
/// log output (stderr and stdout, kept in a file for the secrets grep).
pub struct Gateway {
    child: Child,
    pid: u32,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    dir: tempfile::TempDir,
    log: PathBuf,
    http: reqwest::Client,
}

impl Gateway {
    /// Start `tunerpool serve` on a free port and wait until it listens.
    pub async fn start(opts: &GatewayOptions) -> anyhow::Result<Gateway> {
        let binary = tunerpool_binary()?;
        let dir = tempfile::Builder::new().prefix("chaos-gw-").tempdir()?;
        let log = dir.path().join("gateway.log");
        let log_file = std::fs::File::create(&log)?;
        let mut cmd = Command::new(&binary);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen", "127.0.0.1:0", "--log-level", &opts.log_level])
            .current_dir(dir.path());
        for (k, v) in &opts.set {
            cmd.arg("--set").arg(format!("{k}={v}"));
        }
        for (k, _) in std::env::vars() {
            if k.starts_with("TUNERPOOL_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("TUNERPOOL_ADMIN_TOKEN", ADMIN_TOKEN)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file.try_clone()?))
            .kill_on_drop(true);
        let mut child = cmd.spawn().with_context(|| format!("cannot run {}", binary.display()))?;
        let pid = child.id().ok_or_else(|| anyhow!("tunerpool exited at once"))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(60);
        let base = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, lines.next_line()).await {
                Ok(Ok(Some(line))) => {
                    if let Some(url) = line.strip_prefix("tunerpool listening on ") {
                        break url.trim().to_string();
                    }
                }
                Ok(Ok(None)) | Ok(Err(_)) => {
                    bail!("tunerpool exited before listening; its log: {}", tail(&log, 2000))
                }
                Err(_) => bail!("tunerpool did not listen within 60 s; its log: {}", tail(&log, 2000)),
            }
        };
        // Keep stdout drained into the log, so nothing it prints is lost to the secrets grep.
        let mut out = log_file;
        tokio::spawn(async move {
            use std::io::Write;
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = writeln!(out, "{line}");
            }
        });
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60)).build()?;
        Ok(Gateway { child, pid, base, dir, log, http })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Where its data dir is.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Everything it has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` bytes of its log (for error messages).
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log, n)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Running and `GET /healthz` answers 200.
    pub async fn healthy(&mut self) -> bool {
        self.alive() && matches!(self.get("/healthz").await, Ok((200, _)))
    }

    /// Resident memory now, bytes.
    pub fn rss(&self) -> Option<u64> {
        loadgen::sys::rss_bytes_of(self.pid)
    }

    /// Peak resident memory since start (`VmHWM`), bytes.
    pub fn peak_rss(&self) -> Option<u64> {
        loadgen::sys::peak_rss_bytes_of(self.pid)
    }

    /// `kill -9` and reap it.
    pub async fn kill9(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// An admin API call: status and JSON body (`null` when empty or not JSON).
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
        let mut req = self.http.request(method.parse()?, self.url(path)).bearer_auth(ADMIN_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.with_context(|| format!("{method} {path}"))?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// An admin GET that must answer 200.
    pub async fn api_ok(&self, path: &str) -> anyhow::Result<Value> {
        match self.api("GET", path, None).await? {
            (200, v) => Ok(v),
            (s, v) => bail!("GET {path}: {s} {v}"),
        }
    }

    /// A GET without the admin token: status and body text.
    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let resp = self.http.get(self.url(path)).send().await.with_context(|| format!("GET {path}"))?;
        let status = resp.status().as_u16();
        Ok((status, resp.text().await.unwrap_or_default()))
    }

    /// Slots held now, summed over every provider (`GET /api/v1/pool`, from the ledger).
    pub async fn slots_held(&self) -> anyhow::Result<u64> {
        Ok(self.api_ok("/api/v1/pool").await?["totals"]["active"].as_u64().unwrap_or(0))
    }

    /// Live sessions and downloads now (`GET /api/v1/sessions`).
    pub async fn sessions(&self) -> anyhow::Result<usize> {
        Ok(self.api_ok("/api/v1/sessions").await?.as_array().map_or(0, Vec::len))
    }

    /// Add an Xtream provider whose accounts are `accounts` (the first is its primary), in
    /// that order, and return its id. The catalog sync starts in the background.
    pub async fn add_xtream(&self, name: &str, url: &str, accounts: &[(&str, &str)]) -> anyhow::Result<i64> {
        let (user, pass) = accounts.first().ok_or_else(|| anyhow!("a provider needs an account"))?;
        let body = json!({"name": name, "kind": "xtream", "url": url, "username": user, "password": pass});
        let id = self.create("/api/v1/providers", body).await?;
        for (user, pass) in &accounts[1..] {
            let body = json!({"name": user, "username": user, "password": pass});
            self.create(&format!("/api/v1/providers/{id}/accounts"), body).await?;
        }
        Ok(id)
    }

    /// Add an M3U provider (playlist URL, optional guide URL) and return its id.
    pub async fn add_m3u(&self, name: &str, url: &str, epg_url: Option<&str>) -> anyhow::Result<i64> {
        let body = json!({"name": name, "kind": "m3u", "url": url, "epg_url": epg_url});
        self.create("/api/v1/providers", body).await
    }

    /// Add a downstream user (0 = no limit of its own).
    pub async fn add_user(&self, username: &str, password: &str, max_connections: u32) -> anyhow::Result<i64> {
        let body = json!({"username": username, "password": password, "max_connections": max_connections});
        self.create("/api/v1/users", body).await
    }

    async fn create(&self, path: &str, body: Value) -> anyhow::Result<i64> {
        match self.api("POST", path, Some(body)).await? {
            (200 | 201, v) => v["id"].as_i64().ok_or_else(|| anyhow!("POST {path}: no id in {v}")),
            (s, v) => bail!("POST {path}: {s} {v}"),
        }
    }

    /// Wait until the catalog holds at least `n` live channels; their ids, ascending.
    pub async fn wait_channels(&self, n: usize) -> anyhow::Result<Vec<i64>> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ids = self.channel_ids().await?;
            if ids.len() >= n {
                return Ok(ids);
            }
            if Instant::now() > deadline {
                bail!("only {} of {n} channels after 60 s; log: {}", ids.len(), self.log_tail(2000));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Wait until the provider's first catalog sync has finished (the one adding it started);
    /// its sync status (`ok`, `error`, counts).
    pub async fn wait_synced(&self, provider_id: i64) -> anyhow::Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let p = self.api_ok(&format!("/api/v1/providers/{provider_id}")).await?;
            if !p["sync"]["last_sync_at"].is_null() {
                return Ok(p["sync"].clone());
            }
            if Instant::now() > deadline {
                bail!("provider {provider_id} not synced after 120 s; log: {}", self.log_tail(2000));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every live channel id (admin API, all pages).
    pub async fn channel_ids(&self) -> anyhow::Result<Vec<i64>> {
        let mut ids = Vec::new();
        for page in 1.. {
            let v = self.api_ok(&format!("/api/v1/channels?per_page=1000&page={page}")).await?;
            let items = v["items"].as_array().cloned().unwrap_or_default();
            ids.extend(items.iter().filter_map(|c| c["id"].as_i64()));
            if items.len() < 1000 {
                break;
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// The movie ids a client user sees (`player_api.php?action=get_vod_streams`).
    pub async fn movie_ids(&self, user: &str, pass: &str) -> anyhow::Result<Vec<i64>> {
        let (status, body) =
            self.get(&format!("/player_api.php?username={user}&password={pass}&action=get_vod_streams")).await?;
        let v: Value = serde_json::from_str(&body).with_context(|| format!("get_vod_streams: {status} {body}"))?;
        Ok(v.as_array().map(|a| a.iter().filter_map(|m| m["stream_id"].as_i64()).collect()).unwrap_or_default())
    }

    /// Log `user` in once (`player_api.php`), as players do first, so its streams use the
    /// cached login.
    pub async fn login(&self, user: &str, pass: &str) -> anyhow::Result<()> {
        let (status, body) = self.get(&format!("/player_api.php?username={user}&password={pass}")).await?;
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if status != 200 || v["user_info"]["auth"].as_i64() != Some(1) {
            bail!("login as {user} failed: {status} {body}");
        }
        Ok(())
    }

    /// Poll until slots, sessions and the given provider's open connections are all 0, or
    /// `limit` passes; returns how long it took (`None`: not within `limit`).
    pub async fn time_to_idle(&self, limit: Duration, provider_open: impl Fn() -> u64) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            let idle = matches!(self.slots_held().await, Ok(0))
                && matches!(self.sessions().await, Ok(0))
                && provider_open() == 0;
            if idle {
                return Some(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }
}

/// The last `n` bytes of a file, as text.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut start = text.len().saturating_sub(n);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}
