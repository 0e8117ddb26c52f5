//! Cluster coordination in Redis: which instances are alive, and which instance owns each channel's live session.
//!
//! Several instances sharing one Redis (the one the [`crate::RedisLedger`] uses) must open at most one provider
//! connection per channel between them. Two kinds of records do it, both with a short TTL their holder renews:
//!
//! - `P instance:{id}`: a hash (`id`, `url`, `started_at`) per running instance, renewed by its heartbeat; how a
//!   peer finds the owner's internal endpoint.
//! - `P owner:{channel}` (the channel's key, the same on every instance): the value `"{instance} {session}"` of the one session that reads the channel from the
//!   provider. Claimed with "set if absent" ([`Cluster::claim`]), renewed only while it is still ours, and
//!   deleted only if it is still ours (compare-and-delete in Lua, [`Ownership::release`]): an expired record may
//!   already be another instance's, which must keep it.
//!
//! - `P lock:{name}`: the same record as a cluster-wide lock ([`Cluster::lock`]): one provider's sync at a time,
//!   and the one instance that runs the scheduled jobs.
//!
//! A dead owner stops renewing; its record expires after the TTL and the next instance that needs the channel
//! claims it. Everything is a Lua script or a single command: one round trip, atomic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use redis::aio::ConnectionManager;
use redis::Script;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::redis::{connect_with_scripts, scrub, url_password};
use crate::LedgerError;

static CLAIM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/own_claim.lua")));
static RENEW: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/own_renew.lua")));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/own_release.lua")));
/// Distinguishes the holders of [`Cluster::lock`] within this process.
static LOCK_HOLDERS: AtomicU64 = AtomicU64::new(1);
static REGISTER: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/register.lua")));

/// One registered instance: how peers reach it.
///
/// Exists so that a non-owner can find the owner's internal endpoint from the owner's id alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceInfo {
    /// The instance's id (`cluster.instance_id`): letters, digits, `.`, `_`, `-`.
    pub id: String,
    /// The base URL peers reach it at (`cluster.advertise_url`), without a trailing slash.
    pub url: String,
    /// Unix seconds.
    pub started_at: u64,
}

/// Who holds a channel's ownership record, as [`Cluster::claim`] found it.
#[derive(Debug)]
pub enum Claimed {
    /// We do now: keep the guard while the session lives.
    Ours(Ownership),
    /// Another session (or, for a [`Cluster::lock`], another holder) does: the instance id and the session id
    /// (the holder's number) of the record.
    Theirs { instance: String, session: u64 },
}

/// This instance's handle on the cluster's records in Redis. Cheap to clone.
///
/// Exists so that the relay can ask "who owns this channel" and "claim it" without knowing Redis, and so that
/// the records' layout and scripts live in one place, next to the ledger's.
#[derive(Clone)]
pub struct Cluster {
    conn: ConnectionManager,
    prefix: String,
    me: InstanceInfo,
    ttl: Duration,
    password: Option<String>,
    /// When the last heartbeat succeeded (ms since `epoch`), 0 for never.
    last_ok: Arc<AtomicU64>,
    epoch: Instant,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("me", &self.me).field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl Cluster {
    /// Connects to `url` (its password never shown in errors), loads the scripts and registers `me` once.
    /// `key_prefix` namespaces the keys (`tunerpool:` as the ledger; the records go under `{prefix}cluster:`).
    pub async fn connect(url: &str, ttl: Duration, key_prefix: &str, me: InstanceInfo) -> Result<Self, LedgerError> {
        let password = url_password(url);
        let response_timeout = ttl.clamp(Duration::from_millis(200), Duration::from_secs(2));
        let conn = connect_with_scripts(url, response_timeout, &[&CLAIM, &RENEW, &RELEASE, &REGISTER]).await?;
        let me = InstanceInfo { url: me.url.trim_end_matches('/').to_owned(), ..me };
        let cluster = Cluster {
            conn,
            prefix: format!("{key_prefix}cluster:"),
            me,
            ttl,
            password,
            last_ok: Arc::default(),
            epoch: Instant::now(),
        };
        cluster.register().await?;
        Ok(cluster)
    }

    /// This instance.
    pub fn me(&self) -> &InstanceInfo {
        &self.me
    }

    /// How long a record lives without renewal; holders renew every third of it.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn backend(&self, e: redis::RedisError) -> LedgerError {
        LedgerError::Backend(scrub(&format!("redis: {e}"), self.password.as_deref()))
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX).max(1)
    }

    fn owner_key(&self, channel: &str) -> String {
        format!("{}owner:{channel}", self.prefix)
    }

    fn instance_key(&self, id: &str) -> String {
        format!("{}instance:{id}", self.prefix)
    }

    /// Registers this instance (or renews its record) for one TTL.
    pub async fn register(&self) -> Result<(), LedgerError> {
        let mut conn = self.conn.clone();
        let mut call = REGISTER.key(self.instance_key(&self.me.id));
        call.arg(&self.me.id).arg(&self.me.url).arg(self.me.started_at).arg(self.ttl_ms());
        let _: i64 = call.invoke_async(&mut conn).await.map_err(|e| self.backend(e))?;
        self.last_ok.store(self.epoch.elapsed().as_millis().max(1) as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Keeps this instance registered: renews its record every third of the TTL until the handle is aborted.
    pub fn spawn_heartbeat(&self) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        let period = (self.ttl / 3).max(Duration::from_millis(100));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                if let Err(e) = me.register().await {
                    tracing::warn!(error = %e, "cluster: renewing this instance's registration failed; retrying");
                }
            }
        })
    }

    /// Whether Redis answered this instance's heartbeat within the last TTL.
    pub fn redis_reachable(&self) -> bool {
        let last = self.last_ok.load(Ordering::Relaxed);
        last > 0 && (self.epoch.elapsed().as_millis() as u64).saturating_sub(last) < self.ttl_ms()
    }

    /// A registered instance (`None` once its record expired: it is gone).
    pub async fn instance(&self, id: &str) -> Result<Option<InstanceInfo>, LedgerError> {
        let mut conn = self.conn.clone();
        let map: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.instance_key(id))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.backend(e))?;
        let (Some(id), Some(url)) = (map.get("id"), map.get("url")) else { return Ok(None) };
        let started_at = map.get("started_at").and_then(|s| s.parse().ok()).unwrap_or(0);
        Ok(Some(InstanceInfo { id: id.clone(), url: url.clone(), started_at }))
    }

    /// Claims `channel` (a key every instance derives the same way for the same channel) for this instance's
    /// `session`, unless a record holds it already. A claimed record is
    /// renewed by the returned guard's heartbeat until the guard is released or dropped.
    pub async fn claim(&self, channel: &str, session: u64) -> Result<Claimed, LedgerError> {
        self.claim_record(self.owner_key(channel), format!("{} {session}", self.me.id)).await
    }

    /// Takes the cluster-wide lock `name` (e.g. `sync:{provider}`, `scheduler`) unless another holder has it:
    /// the same record as a channel's ownership, under `{prefix}cluster:lock:{name}` — set if absent with the
    /// TTL, renewed by the returned guard's heartbeat while it lives, deleted by compare-and-delete when the guard
    /// is released or dropped, expired after the TTL when its holder dies. Each call is a new holder, so a second
    /// call on the same instance finds the lock [`Claimed::Theirs`] (with this instance's id) too.
    pub async fn lock(&self, name: &str) -> Result<Claimed, LedgerError> {
        let holder = LOCK_HOLDERS.fetch_add(1, Ordering::Relaxed);
        self.claim_record(format!("{}lock:{name}", self.prefix), format!("{} {holder}", self.me.id)).await
    }

    /// Who holds the lock `name` now (an instance id), if anyone.
    pub async fn lock_holder(&self, name: &str) -> Result<Option<String>, LedgerError> {
        let mut conn = self.conn.clone();
        let v: Option<String> = redis::cmd("GET")
            .arg(format!("{}lock:{name}", self.prefix))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.backend(e))?;
        Ok(v.map(|v| parse_owner(&v).0))
    }

    async fn claim_record(&self, key: String, value: String) -> Result<Claimed, LedgerError> {
        let asked = Instant::now();
        let mut conn = self.conn.clone();
        let mut call = CLAIM.key(&key);
        call.arg(&value).arg(self.ttl_ms());
        let (won, current): (i64, String) = call.invoke_async(&mut conn).await.map_err(|e| self.backend(e))?;
        if won == 1 {
            let (lost_tx, lost) = watch::channel(false);
            let task = tokio::spawn(renew_ownership(self.clone(), key.clone(), value.clone(), asked, lost_tx));
            return Ok(Claimed::Ours(Ownership {
                cluster: self.clone(),
                key,
                value,
                lost,
                heartbeat: Some(task.abort_handle()),
                done: false,
            }));
        }
        let (instance, session) = parse_owner(&current);
        Ok(Claimed::Theirs { instance, session })
    }

    /// The instance whose session owns `channel`, if any.
    pub async fn owner(&self, channel: &str) -> Result<Option<String>, LedgerError> {
        let mut conn = self.conn.clone();
        let v: Option<String> =
            redis::cmd("GET").arg(self.owner_key(channel)).query_async(&mut conn).await.map_err(|e| self.backend(e))?;
        Ok(v.map(|v| parse_owner(&v).0))
    }

    async fn renew(&self, key: &str, value: &str) -> Result<bool, LedgerError> {
        let mut conn = self.conn.clone();
        let mut call = RENEW.key(key);
        call.arg(value).arg(self.ttl_ms());
        let renewed: i64 = call.invoke_async(&mut conn).await.map_err(|e| self.backend(e))?;
        Ok(renewed == 1)
    }

    async fn release(&self, key: &str, value: &str) -> Result<bool, LedgerError> {
        let mut conn = self.conn.clone();
        let mut call = RELEASE.key(key);
        call.arg(value);
        let deleted: i64 = call.invoke_async(&mut conn).await.map_err(|e| self.backend(e))?;
        Ok(deleted == 1)
    }
}

/// `"{instance} {session}"` → its parts (a malformed value: the whole text as the instance, session 0).
fn parse_owner(value: &str) -> (String, u64) {
    match value.rsplit_once(' ') {
        Some((instance, session)) => (instance.to_owned(), session.parse().unwrap_or(0)),
        None => (value.to_owned(), 0),
    }
}

/// The current time as Unix seconds (an instance's `started_at`).
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// This instance's ownership of one channel, renewed while it lives.
///
/// Exists so that ownership is released on every path: [`Ownership::release`] deletes the record if it is still
/// ours; dropping the guard does the same from a spawned task; a crash leaves it to the TTL. When a renewal finds
/// the record gone or another's, or renewals fail for a whole TTL, the ownership is *lost* ([`Ownership::lost`]):
/// the session must stop reading the provider, since another instance may have claimed the channel.
pub struct Ownership {
    cluster: Cluster,
    key: String,
    value: String,
    lost: watch::Receiver<bool>,
    heartbeat: Option<AbortHandle>,
    done: bool,
}

impl std::fmt::Debug for Ownership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ownership").field("key", &self.key).field("value", &self.value).finish_non_exhaustive()
    }
}

impl Ownership {
    /// Resolves when the ownership is lost; never while it is held.
    pub async fn lost(&self) {
        let mut lost = self.lost.clone();
        if lost.wait_for(|l| *l).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Whether the ownership was lost.
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Stops renewing and deletes the record if it is still ours. True when it was deleted; a failure is logged
    /// (the TTL frees it).
    pub async fn release(mut self) -> bool {
        self.stop();
        match self.cluster.release(&self.key, &self.value).await {
            Ok(deleted) => deleted,
            Err(e) => {
                tracing::warn!(error = %e, "cluster: releasing an ownership record failed; its TTL will free it");
                false
            }
        }
    }

    /// For tests and crash simulation: stop renewing without releasing; the record expires after the TTL.
    pub fn abandon(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.done = true;
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
    }
}

impl Drop for Ownership {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.stop();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (cluster, key, value) = (self.cluster.clone(), self.key.clone(), self.value.clone());
            runtime.spawn(async move {
                let _ = cluster.release(&key, &value).await;
            });
        }
    }
}

/// Renews every `ttl / 3`; "not ours" is lost at once, failures are retried until a TTL has passed since the
/// last renewal that succeeded (counted from when it was sent).
async fn renew_ownership(cluster: Cluster, key: String, value: String, asked: Instant, lost: watch::Sender<bool>) {
    let ttl = cluster.ttl;
    let period = (ttl / 3).max(Duration::from_millis(10));
    let retry = (ttl / 15).max(Duration::from_millis(10));
    let mut deadline = asked + ttl;
    let mut next = asked + period;
    loop {
        tokio::time::sleep_until(next.min(deadline)).await;
        let sent = Instant::now();
        if sent >= deadline {
            tracing::warn!(%key, "cluster: ownership lost: no renewal succeeded within its TTL");
            lost.send_replace(true);
            return;
        }
        match tokio::time::timeout(deadline - sent, cluster.renew(&key, &value)).await {
            Ok(Ok(true)) => {
                deadline = sent + ttl;
                next = sent + period;
            }
            Ok(Ok(false)) => {
                tracing::warn!(%key, "cluster: ownership lost: the record is gone or another instance's");
                lost.send_replace(true);
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(%key, error = %e, "cluster: renewing an ownership record failed; retrying");
                next = Instant::now() + retry;
            }
            Err(_) => next = Instant::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_owner;

    #[test]
    fn owner_values_parse() {
        assert_eq!(parse_owner("a-1 42"), ("a-1".to_owned(), 42));
        assert_eq!(parse_owner("odd"), ("odd".to_owned(), 0));
    }
}
