//! Cluster coordination in Redis: which instances are alive, and which instance owns each channel's live session.
//!
//! Several instances sharing one Redis (the one the [`crate::RedisLedger`] uses) must open at most one provider
//! connection per channel between them. Two kinds of records do it, both with a short TTL their holder renews:
//!
//! - `P instance:{id}`: a hash (`id`, `url`, `started_at`, and `status`: what the instance publishes for the
//!   cluster-wide views, its sessions, with `status_version` and `status_at`) per running instance, renewed by
//!   its heartbeat, which rewrites the status only when it changed ([`Status`]); how a peer finds the owner's
//!   internal endpoint. `P instances`: the ids, scored by expiry, to list them without `SCAN`.
//! - `P owner:{channel}` (the channel's key, the same on every instance): the value `"{instance} {session}"` of the one session that reads the channel from the
//!   provider. Claimed with "set if absent" ([`Cluster::claim`]), renewed only while it is still ours, and
//!   deleted only if it is still ours (compare-and-delete in Lua, [`Ownership::release`]): an expired record may
//!   already be another instance's, which must keep it.
//!
//! - `P user-leases:{name}` and `P user-streams:{name}`: a downstream user's streams across the cluster, one
//!   lease each (a sorted set of lease ids scored by expiry, and what each stream is with its start), claimed
//!   only while the user is under its limit ([`Cluster::claim_user`], the RAII [`UserLease`]).
//! - `P login:{address}`: a client address's login attempts in the current window and its block, for the
//!   failed-login limit across the cluster ([`Cluster::login_attempt`]), expiring with them.
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
use tokio::time::Instant;

use crate::lease::Renewal;
use crate::redis::{connect_with_scripts, scrub, url_password};
use crate::LedgerError;

static CLAIM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/own_claim.lua")));
static RENEW: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/own_renew.lua")));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/own_release.lua")));
/// Distinguishes the holders of [`Cluster::lock`] within this process.
static LOCK_HOLDERS: AtomicU64 = AtomicU64::new(1);
static REGISTER: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/register.lua")));
static INSTANCES: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/instances.lua")));
/// The clock and expiry sweep both user-lease scripts start with (a Lua script is loaded whole, so the
/// shared part is concatenated rather than called).
const USER_SWEEP: &str = include_str!("lua/user_sweep.lua");
static USER_CLAIM: LazyLock<Script> =
    LazyLock::new(|| Script::new(&[USER_SWEEP, include_str!("lua/user_claim.lua")].concat()));
static USER_RENEW: LazyLock<Script> =
    LazyLock::new(|| Script::new(&[USER_SWEEP, include_str!("lua/user_renew.lua")].concat()));
static USER_RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/user_release.lua")));
static USER_COUNT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/user_count.lua")));
static LOGIN_ATTEMPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/login_attempt.lua")));
static LOGIN_FORGIVE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/login_forgive.lua")));
/// Distinguishes the downstream users' stream leases this process hands out.
static USER_LEASES: AtomicU64 = AtomicU64::new(1);

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
    ttl: Duration,
    /// The rest, shared by every clone (kept out of line: every guard holds a `Cluster`).
    shared: Arc<Shared>,
}

struct Shared {
    prefix: String,
    me: InstanceInfo,
    password: Option<String>,
    /// When the last heartbeat succeeded (ms since `epoch`), 0 for never.
    last_ok: AtomicU64,
    epoch: Instant,
    /// What this instance publishes with each heartbeat ([`Cluster::set_status`]).
    status: std::sync::OnceLock<StatusSource>,
    /// What the last heartbeat wrote of it (`None`: nothing yet, or the last write may have failed).
    published: std::sync::Mutex<Option<Published>>,
    /// Numbers the status writes (with `started_at`, each write's version).
    writes: AtomicU64,
}

/// Writes what an instance publishes for the cluster's views (a JSON text its readers understand).
type StatusSource = Box<dyn Fn() -> Status + Send + Sync>;

/// The status text in Redis as this instance last wrote it.
#[derive(Debug, Clone)]
struct Published {
    shape: u64,
    version: String,
    at: Instant,
}

/// How long a status whose [`Status::shape`] stays the same may go without being rewritten: what changes all
/// the time without changing its shape (byte counters, bitrates) is at most this old in the peers' views.
pub const STATUS_REFRESH: Duration = Duration::from_secs(10);

/// What an instance publishes for the cluster's views at one heartbeat: a digest of its shape, and the text,
/// made only if it is to be written.
///
/// Exists so that the heartbeat (every third of the TTL) rewrites an instance's status in Redis only when it
/// changed: an instance with thousands of sessions would otherwise send and store its whole sessions text some
/// 1.5 times a second. The shape is what the peers must see at once (sessions, their states and viewers); when
/// it is the same as at the last write the heartbeat only confirms the written text (its time, the record's
/// expiry), and rewrites it every [`STATUS_REFRESH`] for what changes without changing the shape (counters).
pub struct Status {
    shape: u64,
    text: Box<dyn FnOnce() -> String + Send>,
}

impl Status {
    /// A status of shape `shape` (a digest: equal for two statuses the peers need not be told apart at once)
    /// whose text `text` makes.
    pub fn new(shape: u64, text: impl FnOnce() -> String + Send + 'static) -> Status {
        Status { shape, text: Box::new(text) }
    }

    /// Its shape.
    pub fn shape(&self) -> u64 {
        self.shape
    }
}

/// A text whose every change is its shape's (rewritten whenever it differs).
impl From<String> for Status {
    fn from(text: String) -> Status {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut h);
        Status::new(h.finish(), move || text)
    }
}

/// A registered instance and what it last published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub info: InstanceInfo,
    /// Its status text ([`Cluster::set_status`]); `None` before its first heartbeat with one.
    pub status: Option<String>,
    /// How long ago its instance last wrote that status or confirmed it current (Redis time): its shape is that
    /// old, its counters at most [`STATUS_REFRESH`] older ([`Status`]).
    pub status_age: Option<Duration>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("me", &self.shared.me).field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl Cluster {
    /// Connects to `url` (its password never shown in errors), loads the scripts and registers `me` once.
    /// `key_prefix` namespaces the keys (`tunerpool:` as the ledger; the records go under `{prefix}cluster:`).
    pub async fn connect(url: &str, ttl: Duration, key_prefix: &str, me: InstanceInfo) -> Result<Self, LedgerError> {
        let password = url_password(url);
        let response_timeout = ttl.clamp(Duration::from_millis(200), Duration::from_secs(2));
        let conn = connect_with_scripts(
            url,
            response_timeout,
            &[
                &CLAIM,
                &RENEW,
                &RELEASE,
                &REGISTER,
                &INSTANCES,
                &USER_CLAIM,
                &USER_RENEW,
                &USER_RELEASE,
                &USER_COUNT,
                &LOGIN_ATTEMPT,
                &LOGIN_FORGIVE,
            ],
        )
        .await?;
        let me = InstanceInfo { url: me.url.trim_end_matches('/').to_owned(), ..me };
        let shared = Shared {
            prefix: format!("{key_prefix}cluster:"),
            me,
            password,
            last_ok: AtomicU64::new(0),
            epoch: Instant::now(),
            status: std::sync::OnceLock::new(),
            published: std::sync::Mutex::new(None),
            writes: AtomicU64::new(0),
        };
        let cluster = Cluster { conn, ttl, shared: Arc::new(shared) };
        cluster.register().await?;
        Ok(cluster)
    }

    /// This instance.
    pub fn me(&self) -> &InstanceInfo {
        &self.shared.me
    }

    /// How long a record lives without renewal; holders renew every third of it.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn backend(&self, e: redis::RedisError) -> LedgerError {
        LedgerError::Backend(scrub(&format!("redis: {e}"), self.shared.password.as_deref()))
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX).max(1)
    }

    fn owner_key(&self, channel: &str) -> String {
        format!("{}owner:{channel}", self.shared.prefix)
    }

    fn instance_key(&self, id: &str) -> String {
        format!("{}instance:{id}", self.shared.prefix)
    }

    /// Registers this instance (or renews its record) for one TTL, with its status when one is set: the whole
    /// text when its shape changed since the last write (or [`STATUS_REFRESH`] passed, or Redis lost it), else
    /// only a confirmation that the written text is current ([`Status`]).
    pub async fn register(&self) -> Result<(), LedgerError> {
        let Some(source) = self.shared.status.get() else {
            return self.register_with(String::new(), "").await.map(|_| ());
        };
        let status = source();
        let last = self.shared.published.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(last) = last.filter(|l| l.shape == status.shape && l.at.elapsed() < STATUS_REFRESH) {
            match self.register_with(String::new(), &last.version).await {
                Ok(true) => return Ok(()),
                Ok(false) => tracing::debug!("cluster: this instance's status was gone from Redis; writing it again"),
                Err(e) => {
                    *self.shared.published.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    return Err(e);
                }
            }
        }
        // Forgotten first: if the write fails midway, the next heartbeat writes the whole text again.
        *self.shared.published.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let version = format!("{}-{}", self.shared.me.started_at, self.shared.writes.fetch_add(1, Ordering::Relaxed));
        let at = Instant::now();
        self.register_with((status.text)(), &version).await?;
        *self.shared.published.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Published { shape: status.shape, version, at });
        Ok(())
    }

    /// One registration: `status` with its `version` (both empty: none), or, with an empty `status`, the
    /// confirmation of the one written as `version` — false if Redis holds another (nothing was written).
    async fn register_with(&self, status: String, version: &str) -> Result<bool, LedgerError> {
        let mut conn = self.conn.clone();
        let mut call = REGISTER.key(self.instance_key(&self.shared.me.id));
        call.key(format!("{}instances", self.shared.prefix));
        call.arg(&self.shared.me.id)
            .arg(&self.shared.me.url)
            .arg(self.shared.me.started_at)
            .arg(self.ttl_ms())
            .arg(status)
            .arg(version);
        let done: i64 = call.invoke_async(&mut conn).await.map_err(|e| self.backend(e))?;
        if done == 1 {
            self.shared.last_ok.store(self.shared.epoch.elapsed().as_millis().max(1) as u64, Ordering::Relaxed);
        }
        Ok(done == 1)
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

    /// What this instance publishes with every heartbeat (every third of the TTL), for the cluster-wide views
    /// ([`Cluster::peers`]); set once, at start. Called on the heartbeat's task: keep it quick (the text is made
    /// only when it is written: [`Status`]).
    pub fn set_status<S: Into<Status>>(&self, source: impl Fn() -> S + Send + Sync + 'static) {
        if self.shared.status.set(Box::new(move || source().into())).is_err() {
            tracing::warn!("cluster: the status source was already set; keeping the first");
        }
    }

    /// Every registered instance (this one included) with what it last published, in one round trip. An
    /// instance that died is gone from the list within a TTL.
    pub async fn peers(&self) -> Result<Vec<Peer>, LedgerError> {
        let mut conn = self.conn.clone();
        let mut call = INSTANCES.key(format!("{}instances", self.shared.prefix));
        call.arg(format!("{}instance:", self.shared.prefix));
        let flat: Vec<String> = call.invoke_async(&mut conn).await.map_err(|e| self.backend(e))?;
        Ok(flat
            .chunks_exact(5)
            .map(|r| Peer {
                info: InstanceInfo { id: r[0].clone(), url: r[1].clone(), started_at: r[2].parse().unwrap_or(0) },
                status: Some(r[3].clone()).filter(|s| !s.is_empty()),
                status_age: r[4].parse().ok().map(Duration::from_millis),
            })
            .collect())
    }

    /// Whether Redis answered this instance's heartbeat within the last TTL.
    pub fn redis_reachable(&self) -> bool {
        let last = self.shared.last_ok.load(Ordering::Relaxed);
        last > 0 && (self.shared.epoch.elapsed().as_millis() as u64).saturating_sub(last) < self.ttl_ms()
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
        self.claim_record(self.owner_key(channel), format!("{} {session}", self.shared.me.id)).await
    }

    /// Takes the cluster-wide lock `name` (e.g. `sync:{provider}`, `scheduler`) unless another holder has it:
    /// the same record as a channel's ownership, under `{prefix}cluster:lock:{name}` — set if absent with the
    /// TTL, renewed by the returned guard's heartbeat while it lives, deleted by compare-and-delete when the guard
    /// is released or dropped, expired after the TTL when its holder dies. Each call is a new holder, so a second
    /// call on the same instance finds the lock [`Claimed::Theirs`] (with this instance's id) too.
    pub async fn lock(&self, name: &str) -> Result<Claimed, LedgerError> {
        let holder = LOCK_HOLDERS.fetch_add(1, Ordering::Relaxed);
        self.claim_record(format!("{}lock:{name}", self.shared.prefix), format!("{} {holder}", self.shared.me.id)).await
    }

    /// Who holds the lock `name` now (an instance id), if anyone.
    pub async fn lock_holder(&self, name: &str) -> Result<Option<String>, LedgerError> {
        let mut conn = self.conn.clone();
        let v: Option<String> = redis::cmd("GET")
            .arg(format!("{}lock:{name}", self.shared.prefix))
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
                heartbeat: Renewal::new(task.abort_handle()),
            }));
        }
        let (instance, session) = parse_owner(&current);
        Ok(Claimed::Theirs { instance, session })
    }

    fn user_keys(&self, user: &str) -> (String, String) {
        (format!("{}user-leases:{user}", self.shared.prefix), format!("{}user-streams:{user}", self.shared.prefix))
    }

    /// Claims one of the downstream user `user`'s stream slots across the cluster, for a stream described by
    /// `what` (shown in refusals): granted while the user holds fewer than `max` streams on every instance
    /// together (`0`: no limit of its own), atomically (one Lua script), so no interleaving of instances gives a
    /// user more than its limit. At the limit, with `replace`, the user's oldest streams' leases are taken from
    /// them (their ids are returned: the holder on this instance ends them at once, another instance when its
    /// next renewal finds the lease gone, within a third of the TTL); without, the claim is refused with what
    /// the user watches, oldest first. The returned guard renews the lease until it is released or dropped; a
    /// dead instance's leases expire after the TTL.
    pub async fn claim_user(&self, user: &str, max: u32, replace: bool, what: &str) -> Result<UserClaim, LedgerError> {
        let asked = Instant::now();
        let id = format!("{}-u{}", self.shared.me.id, USER_LEASES.fetch_add(1, Ordering::Relaxed));
        let (leases, streams) = self.user_keys(user);
        let mut call = USER_CLAIM.key(&leases);
        call.key(&streams).arg(&id).arg(self.ttl_ms()).arg(max).arg(if replace { "1" } else { "0" }).arg(what);
        let mut conn = self.conn.clone();
        let answer: Vec<redis::Value> = call.invoke_async(&mut conn).await.map_err(|e| self.backend(e))?;
        let mut items = answer.into_iter();
        let granted = match items.next() {
            Some(redis::Value::Int(n)) => n == 1,
            other => return Err(LedgerError::Backend(format!("Redis answered a user claim with {other:?}"))),
        };
        let rest: Vec<String> = items
            .map(|v| {
                redis::from_redis_value::<String>(v)
                    .map_err(|e| LedgerError::Backend(format!("Redis answered a user claim oddly: {e}")))
            })
            .collect::<Result<_, _>>()?;
        if !granted {
            return Ok(UserClaim::Full { watching: rest });
        }
        let (lost_tx, lost) = watch::channel(false);
        let task = tokio::spawn(renew_user_lease(
            self.clone(),
            user.to_owned(),
            id.clone(),
            max,
            what.to_owned(),
            asked,
            lost_tx,
        ));
        let lease = UserLease {
            cluster: self.clone(),
            user: user.to_owned(),
            id,
            lost,
            heartbeat: Renewal::new(task.abort_handle()),
        };
        Ok(UserClaim::Granted { lease, replaced: rest })
    }

    /// How many streams the downstream user `user` holds across the cluster now.
    pub async fn user_streams(&self, user: &str) -> Result<u32, LedgerError> {
        let mut conn = self.conn.clone();
        let n: i64 =
            USER_COUNT.key(self.user_keys(user).0).invoke_async(&mut conn).await.map_err(|e| self.backend(e))?;
        Ok(u32::try_from(n).unwrap_or(0))
    }

    async fn renew_user(&self, user: &str, id: &str, max: u32, what: &str) -> Result<bool, LedgerError> {
        let (leases, streams) = self.user_keys(user);
        let mut call = USER_RENEW.key(&leases);
        call.key(&streams).arg(id).arg(self.ttl_ms()).arg(max).arg(what);
        let mut conn = self.conn.clone();
        let answer: i64 = call.invoke_async(&mut conn).await.map_err(|e| self.backend(e))?;
        if answer == 2 {
            tracing::info!(lease = %id, "cluster: a user's stream lease was gone (Redis restarted?); taken again");
        }
        Ok(answer != 0)
    }

    async fn release_user(&self, user: &str, id: &str) -> Result<(), LedgerError> {
        let (leases, streams) = self.user_keys(user);
        let mut call = USER_RELEASE.key(&leases);
        call.key(&streams).arg(id);
        let mut conn = self.conn.clone();
        let _: i64 = call.invoke_async(&mut conn).await.map_err(|e| self.backend(e))?;
        Ok(())
    }

    /// Counts one login attempt from `address` (the client's address as the limit keys it) across the cluster,
    /// from its start, in one Lua script: refused while the address is blocked or has `max` attempts in the
    /// current `window`; the attempt that reaches `max` blocks it for `block`. An attempt that did not fail is
    /// taken back with [`Cluster::login_forgive`] (which lifts a block the address no longer deserves). The
    /// record expires once neither its window nor its block matters: Redis holds one small hash per address
    /// seen in the last `window + block`.
    pub async fn login_attempt(
        &self,
        address: &str,
        max: u32,
        window: Duration,
        block: Duration,
    ) -> Result<LoginAttempt, LedgerError> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut call = LOGIN_ATTEMPT.key(format!("{}login:{address}", self.shared.prefix));
        call.arg(max).arg(ms(window)).arg(ms(block));
        let mut conn = self.conn.clone();
        let answer: Vec<i64> = call.invoke_async(&mut conn).await.map_err(|e| self.backend(e))?;
        let at = |i: usize| answer.get(i).map_or(0, |v| u64::try_from(*v).unwrap_or(0));
        Ok(match answer.first() {
            Some(1) => LoginAttempt::Counted { window: at(1), count: u32::try_from(at(2)).unwrap_or(u32::MAX) },
            _ => LoginAttempt::Refused { retry_after: Duration::from_millis(at(1)) },
        })
    }

    /// Takes back an attempt [`Cluster::login_attempt`] counted in the window that started at `window` (it did
    /// not fail). Nothing happens once that window is over.
    pub async fn login_forgive(&self, address: &str, window: u64, max: u32) -> Result<(), LedgerError> {
        let mut call = LOGIN_FORGIVE.key(format!("{}login:{address}", self.shared.prefix));
        call.arg(window).arg(max);
        let mut conn = self.conn.clone();
        let _: i64 = call.invoke_async(&mut conn).await.map_err(|e| self.backend(e))?;
        Ok(())
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
    heartbeat: Renewal,
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
        self.heartbeat.stop();
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
        self.heartbeat.stop();
    }
}

impl Drop for Ownership {
    fn drop(&mut self) {
        if !self.heartbeat.stop() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (cluster, key, value) = (self.cluster.clone(), self.key.clone(), self.value.clone());
            runtime.spawn(async move {
                let _ = cluster.release(&key, &value).await;
            });
        }
    }
}

/// What [`Cluster::login_attempt`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginAttempt {
    /// Counted (as a failure until forgiven) in the window that started at `window` (ms, Redis time), as its
    /// `count`th attempt: go on. At `max`, the address is blocked if this attempt fails too.
    Counted { window: u64, count: u32 },
    /// Blocked, or at the limit: refuse without a check; it may try again after `retry_after`.
    Refused { retry_after: Duration },
}

/// What [`Cluster::claim_user`] found.
#[derive(Debug)]
pub enum UserClaim {
    /// A slot is the stream's: keep the guard while it plays. `replaced`: the leases of the user's oldest
    /// streams that were taken to make room (the replace policy), to end at once where they are held.
    Granted { lease: UserLease, replaced: Vec<String> },
    /// The user is at its limit across the cluster: what it watches, oldest first.
    Full { watching: Vec<String> },
}

/// One of a downstream user's stream slots across the cluster, held while this value lives.
///
/// Exists so that the slot is given back on every path: [`UserLease::release`], dropping the guard (a release
/// from a spawned task) or, when the instance dies, the TTL. Its heartbeat renews it every third of the TTL
/// through the one renewal loop; when a renewal finds it gone and the user's slots taken (a newer stream
/// replaced it, or it expired in a stall and another stream took the slot) it is *lost*
/// ([`UserLease::is_lost`]) and the stream must end. Renewals that fail (Redis unreachable) are retried
/// without losing it: no instance can claim a slot of the user meanwhile.
pub struct UserLease {
    cluster: Cluster,
    user: String,
    id: String,
    lost: watch::Receiver<bool>,
    heartbeat: Renewal,
}

impl std::fmt::Debug for UserLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserLease").field("user", &self.user).field("id", &self.id).finish_non_exhaustive()
    }
}

impl UserLease {
    /// The lease id (what [`UserClaim::Granted`]'s `replaced` names).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether the lease was lost: the stream must end.
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// A receiver that turns `true` when the lease is lost (for whoever checks the stream).
    pub fn lost_flag(&self) -> watch::Receiver<bool> {
        self.lost.clone()
    }

    /// Stops renewing and gives the slot back, waiting for Redis; a failure is logged (the TTL frees it).
    pub async fn release(mut self) {
        self.heartbeat.stop();
        if let Err(e) = self.cluster.release_user(&self.user, &self.id).await {
            tracing::warn!(error = %e, "cluster: releasing a user's stream lease failed; its TTL will free it");
        }
    }

    /// For tests and crash simulation: stop renewing without releasing; the slot comes back after the TTL.
    pub fn abandon(mut self) {
        self.heartbeat.stop();
    }
}

impl Drop for UserLease {
    fn drop(&mut self) {
        if !self.heartbeat.stop() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (cluster, user, id) =
                (self.cluster.clone(), std::mem::take(&mut self.user), std::mem::take(&mut self.id));
            runtime.spawn(async move {
                if let Err(e) = cluster.release_user(&user, &id).await {
                    tracing::warn!(error = %e, "cluster: releasing a user's stream lease failed; its TTL will free it");
                }
            });
        }
    }
}

async fn renew_user_lease(
    cluster: Cluster,
    user: String,
    id: String,
    max: u32,
    what: String,
    asked: Instant,
    lost: watch::Sender<bool>,
) {
    let label = format!("user {user}'s stream lease {id}");
    // Redis not answering does not end the stream: no instance can claim a user's slot meanwhile, and once it
    // answers, a lease it lost is taken again if there is room, else the stream ends.
    let renew = || cluster.renew_user(&user, &id, max, &what);
    crate::lease::keep_renewed(cluster.ttl, asked, &label, crate::lease::Outage::Holds, renew, lost).await;
}

/// Renews through the one renewal loop ([`crate::lease::keep_renewed`]): "not ours" is lost at once, failures
/// are retried until a TTL has passed since the last renewal that succeeded (counted from when it was sent).
async fn renew_ownership(cluster: Cluster, key: String, value: String, asked: Instant, lost: watch::Sender<bool>) {
    let what = format!("cluster record {key}");
    let renew = || cluster.renew(&key, &value);
    crate::lease::keep_renewed(cluster.ttl, asked, &what, crate::lease::Outage::Loses, renew, lost).await;
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
