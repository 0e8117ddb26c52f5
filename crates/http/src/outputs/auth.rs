//! Client logins: username and password (from the query or the path),
//! checked against the user's argon2 hash.
//!
//! argon2 is slow on purpose (tens of ms of CPU, 19 MiB), and players hit
//! `player_api.php` and stream URLs over and over, so a successful check is
//! remembered for a short while. The cache key is a salted digest of the
//! given password together with the stored hash and the user's last update,
//! so a changed password (or any change to the user) misses the cache; the
//! users API also drops a user's entry when it changes or deletes it. The
//! user itself is read through the store's short-lived user cache
//! ([`Store::user_by_name_cached`](tunerpool_catalog::Store::user_by_name_cached):
//! 2 s at most, cleared by every write to users), so a request that hits
//! both caches asks SQLite nothing; its status (disabled, expired) is
//! still evaluated on every request.
//!
//! Checks themselves are bounded ([`PasswordChecks`]: as many at once as
//! cores, the rest wait briefly and are then refused with 503), and a
//! username that does not exist is checked against a dummy hash, so it takes
//! as long as a wrong password. Requests with the same username and password
//! that arrive while a check for them runs wait for its answer instead of
//! running their own (a player or a Plex server opening several streams at
//! once after the cache expired costs one check, and is not mistaken for a
//! burst of attempts); this holds for unknown usernames too, so it shows
//! nothing about which exist.
//!
//! Attempts are counted per client address (behind a trusted proxy, the
//! client's: `realip`; IPv6 by /64, what one client usually holds) from the
//! moment they start: an address with [`MAX_FAILURES`] failures within a
//! minute, counting the checks it has in flight, is refused (429) without
//! any check — a burst of parallel wrong passwords cannot slip past the
//! limit. Ten failures block the address for a minute. The table is bounded
//! ([`MAX_ENTRIES`] addresses). Every refusal is logged with the address, the
//! username and the reason — never the password.
//!
//! In cluster mode ([`ClientAuth::set_cluster`]) the counts are the
//! cluster's, in Redis (`tunerpool_ledger::cluster`, one Lua script per
//! attempt): an attempt is counted as a failure from its start and taken
//! back when it does not fail (a second round trip, on success only), so ten
//! wrong passwords spread over any number of instances block the address on
//! all of them. If Redis does not answer, this instance's own table counts
//! (logins keep working; the limit is then per instance). The instance where
//! the blocking failure happens notes the block in its own table too, so it
//! refuses the address even for a login it has cached; a block set on
//! another instance does not stop a login this instance already verified in
//! the last [`CACHE_TTL`] (it asks Redis only when it runs a check).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt, Shared};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tunerpool_catalog::users::{Busy, PasswordChecks};
use tunerpool_catalog::{Secret, User, UserStatus};
use tunerpool_ledger::cluster::{Cluster, LoginAttempt};

use crate::metrics::HttpMetrics;
use crate::AppState;

/// How long a verified password is trusted without running argon2 again.
const CACHE_TTL: Duration = Duration::from_secs(120);
/// Failed logins (and checks in flight) from one address within
/// [`FAIL_WINDOW`] that stop further attempts.
pub(crate) const MAX_FAILURES: u32 = 10;
const FAIL_WINDOW: Duration = Duration::from_secs(60);
/// How long a blocked address is refused.
const BLOCK_FOR: Duration = Duration::from_secs(60);
/// Bounds on the in-memory maps.
pub(crate) const MAX_ENTRIES: usize = 10_000;

/// Why a login was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Unknown user or wrong password (clients are not told which).
    BadCredentials,
    /// Known user, right password, but disabled or expired.
    Inactive(UserStatus),
    /// Too many failed (or pending) logins from this address; retry after
    /// this many seconds.
    RateLimited(u64),
    /// Too many password checks at once on this server; retry in a moment.
    Busy,
    /// The store failed; what the client is told (a log reference).
    Internal(String),
}

impl Refused {
    /// What the client is told.
    pub(crate) fn message(&self) -> String {
        match self {
            Refused::BadCredentials => "wrong username or password".into(),
            Refused::Inactive(UserStatus::Expired) => "this user has expired".into(),
            Refused::Inactive(_) => "this user is disabled".into(),
            Refused::RateLimited(s) => format!("too many failed logins from this address: try again in {s} s"),
            Refused::Busy => "too many logins are being checked right now: try again in a moment".into(),
            Refused::Internal(m) => m.clone(),
        }
    }

    /// The `reason` label of `tunerpool_login_failures_total`.
    fn label(&self) -> &'static str {
        match self {
            Refused::BadCredentials => "bad_credentials",
            Refused::Inactive(_) => "inactive",
            Refused::RateLimited(_) => "rate_limited",
            Refused::Busy => "busy",
            Refused::Internal(_) => "internal",
        }
    }
}

struct Cached {
    digest: [u8; 32],
    at: Instant,
}

/// One address's recent attempts.
struct Attempts {
    window_start: Instant,
    /// Failures since `window_start`.
    failed: u32,
    /// Checks running or waiting now.
    in_flight: u32,
    blocked_until: Option<Instant>,
}

impl Attempts {
    /// Whether this entry still matters at `now` (a forgotten one would let
    /// its address start over).
    fn live(&self, now: Instant) -> bool {
        self.in_flight > 0
            || now.duration_since(self.window_start) < FAIL_WINDOW
            || self.blocked_until.is_some_and(|b| b > now)
    }
}

/// A password check in flight, which requests with the same credentials join.
type Flight = Shared<BoxFuture<'static, Result<bool, Busy>>>;

/// Client login checks with their cache, per-address attempt counts and
/// bounded password checks. One per server; shared by every output and the
/// users API (which invalidates entries).
pub struct ClientAuth {
    salt: [u8; 32],
    cache: Mutex<HashMap<i64, Cached>>,
    attempts: Mutex<HashMap<IpAddr, Attempts>>,
    /// Checks running now, by a salted digest of username and password.
    flights: Mutex<HashMap<[u8; 32], Flight>>,
    checks: PasswordChecks,
    /// Counts refused logins (`tunerpool_login_failures_total`); the router
    /// counts its requests into the same [`HttpMetrics`].
    metrics: Arc<HttpMetrics>,
    /// Cluster mode: where the attempts are counted instead of `attempts`.
    cluster: std::sync::OnceLock<Cluster>,
}

/// The request that started a check: its attempt counts against its
/// address, and when it ends (answered or dropped) the check is no longer
/// joinable — a later request checks afresh, against the user as it is then.
struct Leader<'a> {
    attempt: Attempt<'a>,
    key: [u8; 32],
    flight: Flight,
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        let mut flights = self.attempt.auth.flights.lock();
        if flights.get(&self.key).is_some_and(|f| f.ptr_eq(&self.flight)) {
            flights.remove(&self.key);
        }
    }
}

impl Default for ClientAuth {
    /// Checks bounded by this machine's cores.
    fn default() -> Self {
        ClientAuth::new(PasswordChecks::for_this_machine())
    }
}

/// An attempt in flight from one address. Dropped, it is no longer in
/// flight; [`Attempt::failed`] counts it as a failure first.
struct Attempt<'a> {
    auth: &'a ClientAuth,
    key: IpAddr,
    /// Counted in the cluster's record instead (as a failure from its start).
    remote: Option<Remote>,
}

/// An attempt counted in Redis: taken back when it is dropped without having failed.
struct Remote {
    cluster: Cluster,
    /// The window it was counted in.
    window: u64,
    /// It was the address's [`MAX_FAILURES`]th: failing, it blocks the address.
    blocks: bool,
    failed: std::sync::atomic::AtomicBool,
}

impl Attempt<'_> {
    fn failed(&self) {
        let now = Instant::now();
        if let Some(remote) = &self.remote {
            // Counted as a failure in Redis when it started. The failure that blocks the address is noted here
            // too, so that this instance refuses the address even for a login it has cached (as one instance does).
            remote.failed.store(true, std::sync::atomic::Ordering::Relaxed);
            if remote.blocks {
                tracing::warn!(client = %self.key, failures = MAX_FAILURES, block_s = BLOCK_FOR.as_secs(),
                    "too many failed logins across the cluster: refusing this address for a while");
                let mut map = self.auth.attempts.lock();
                if map.len() >= MAX_ENTRIES && !map.contains_key(&self.key) {
                    make_room(&mut map, now);
                }
                let a = map.entry(self.key).or_insert(Attempts {
                    window_start: now,
                    failed: 0,
                    in_flight: 0,
                    blocked_until: None,
                });
                a.blocked_until = Some(now + BLOCK_FOR);
            }
            return;
        }
        let mut map = self.auth.attempts.lock();
        if let Some(a) = map.get_mut(&self.key) {
            a.failed += 1;
            if a.failed >= MAX_FAILURES && a.blocked_until.is_none_or(|b| b <= now) {
                a.blocked_until = Some(now + BLOCK_FOR);
                tracing::warn!(client = %self.key, failures = a.failed, block_s = BLOCK_FOR.as_secs(),
                    "too many failed logins: refusing this address for a while");
            }
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if let Some(remote) = self.remote.take() {
            if !remote.failed.load(std::sync::atomic::Ordering::Relaxed) {
                let address = limit_key(self.key).to_string();
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        if let Err(e) = remote.cluster.login_forgive(&address, remote.window, MAX_FAILURES).await {
                            tracing::warn!(client = %address, error = %e, "cannot take back a login attempt that did not fail");
                        }
                    });
                }
            }
            return;
        }
        let mut map = self.auth.attempts.lock();
        if let Some(a) = map.get_mut(&self.key) {
            a.in_flight = a.in_flight.saturating_sub(1);
        }
    }
}

/// Whose attempts an address counts as: itself, or for IPv6 its /64 (one
/// client usually holds a whole /64 and could rotate through it).
fn limit_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut o = v6.octets();
            o[8..].fill(0);
            IpAddr::from(o)
        }
        v4 => v4,
    }
}

impl ClientAuth {
    /// Logins whose password checks go through `checks`.
    pub fn new(checks: PasswordChecks) -> Self {
        ClientAuth {
            salt: rand::random(),
            cache: Mutex::default(),
            attempts: Mutex::default(),
            flights: Mutex::default(),
            checks,
            metrics: Arc::default(),
            cluster: std::sync::OnceLock::new(),
        }
    }

    /// Cluster mode (once, at start): count login attempts across the cluster, in its Redis.
    pub fn set_cluster(&self, cluster: Cluster) {
        if self.cluster.set(cluster).is_err() {
            tracing::warn!("logins: cluster mode was already set; keeping the first");
        }
    }

    /// Starts an attempt from `ip` as [`ClientAuth::begin`] does, counted across the cluster in cluster mode
    /// (this instance's table when Redis does not answer).
    async fn begin_any(&self, ip: IpAddr) -> Result<Attempt<'_>, u64> {
        if let Some(cluster) = self.cluster.get() {
            let key = limit_key(ip);
            match cluster.login_attempt(&key.to_string(), MAX_FAILURES, FAIL_WINDOW, BLOCK_FOR).await {
                Ok(LoginAttempt::Counted { window, count }) => {
                    let blocks = count >= MAX_FAILURES;
                    let remote = Remote { cluster: cluster.clone(), window, blocks, failed: Default::default() };
                    return Ok(Attempt { auth: self, key, remote: Some(remote) });
                }
                Ok(LoginAttempt::Refused { retry_after }) => return Err(retry_after.as_secs().max(1)),
                Err(e) => tracing::warn!(client = %ip, error = %e,
                    "logins: cannot count this attempt across the cluster; counting it on this instance"),
            }
        }
        self.begin(ip)
    }

    /// The HTTP metrics these logins count into.
    pub(crate) fn metrics(&self) -> &Arc<HttpMetrics> {
        &self.metrics
    }

    /// The password checks (their counters show how many ran, and the most at once).
    pub fn checks(&self) -> &PasswordChecks {
        &self.checks
    }

    fn digest(&self, user: &User, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(user.id.to_le_bytes());
        h.update(user.updated_at.to_le_bytes());
        h.update(user.password_hash.expose().as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// What identifies a check: the username and password, salted.
    fn flight_key(&self, username: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(b"flight");
        h.update((username.len() as u64).to_le_bytes());
        h.update(username.as_bytes());
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// Joins the check running for these credentials, or starts one (an
    /// attempt from `ip`, or how long `ip` must wait).
    async fn flight(
        &self,
        ip: IpAddr,
        username: &str,
        password: &str,
        hash: Option<&Secret>,
    ) -> Result<(Flight, Option<Leader<'_>>), u64> {
        let key = self.flight_key(username, password);
        let running = self.flights.lock().get(&key).cloned();
        if let Some(f) = running {
            return Ok((f, None));
        }
        // Counted before the check starts (across the cluster: an await, outside the lock).
        let attempt = self.begin_any(ip).await?;
        let mut flights = self.flights.lock();
        if let Some(f) = flights.get(&key) {
            // Another request started the same check meanwhile: join it; this attempt did not fail (yet).
            return Ok((f.clone(), None));
        }
        let (checks, hash, password) = (self.checks.clone(), hash.cloned(), password.to_string());
        let flight = async move { checks.verify(hash.as_ref(), &password).await }.boxed().shared();
        flights.insert(key, flight.clone());
        Ok((flight.clone(), Some(Leader { attempt, key, flight })))
    }

    /// Forgets a user's cached login (its password or status changed).
    pub(crate) fn forget(&self, user_id: i64) {
        self.cache.lock().remove(&user_id);
    }

    /// Seconds left in this address's block, if it is blocked.
    fn blocked(&self, ip: IpAddr) -> Option<u64> {
        let map = self.attempts.lock();
        let until = map.get(&limit_key(ip))?.blocked_until?;
        let left = until.checked_duration_since(Instant::now())?;
        Some(left.as_secs().max(1))
    }

    /// Starts an attempt from `ip`, or says how many seconds it must wait:
    /// blocked, or its failures and checks in flight already reach the limit.
    fn begin(&self, ip: IpAddr) -> Result<Attempt<'_>, u64> {
        let now = Instant::now();
        let key = limit_key(ip);
        let mut map = self.attempts.lock();
        if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
            make_room(&mut map, now);
        }
        let a = map.entry(key).or_insert(Attempts { window_start: now, failed: 0, in_flight: 0, blocked_until: None });
        if let Some(left) = a.blocked_until.and_then(|b| b.checked_duration_since(now)) {
            return Err(left.as_secs().max(1));
        }
        if now.duration_since(a.window_start) >= FAIL_WINDOW {
            a.window_start = now;
            a.failed = 0;
            a.blocked_until = None;
        }
        if a.failed + a.in_flight >= MAX_FAILURES {
            let left = FAIL_WINDOW.saturating_sub(now.duration_since(a.window_start));
            // Checks in flight end within seconds; finished failures with the window.
            return Err(if a.failed >= MAX_FAILURES { left.as_secs().max(1) } else { 1 });
        }
        a.in_flight += 1;
        Ok(Attempt { auth: self, key, remote: None })
    }

    /// Checks a client's credentials; on success the user (active).
    pub(crate) async fn login(
        &self,
        st: &AppState,
        ip: IpAddr,
        username: &str,
        password: &str,
    ) -> Result<User, Refused> {
        let result = self.check(st, ip, username, password).await;
        match &result {
            Ok(user) => crate::access_log::record_user(&user.username),
            Err(refused) => self.metrics.login_failed(refused.label()),
        }
        result
    }

    async fn check(&self, st: &AppState, ip: IpAddr, username: &str, password: &str) -> Result<User, Refused> {
        let rate_limited = |left: u64| {
            tracing::warn!(client = %ip, user = %username, "login refused: too many failed logins from this address");
            Refused::RateLimited(left)
        };
        if let Some(left) = self.blocked(ip) {
            return Err(rate_limited(left));
        }
        if username.is_empty() || password.is_empty() {
            // Nothing to check (and nothing to hide: the request shows it).
            self.begin_any(ip).await.map_err(rate_limited)?.failed();
            tracing::warn!(client = %ip, user = %username, "login refused: no username or password given");
            return Err(Refused::BadCredentials);
        }
        let user = match st.store.user_by_name_cached(username).await {
            Ok(u) => u,
            Err(e) => return Err(Refused::Internal(crate::error::internal("login: cannot read users", &e))),
        };
        if let Some(u) = &user {
            let digest = self.digest(u, password);
            let cache = self.cache.lock();
            if cache.get(&u.id).is_some_and(|c| c.digest == digest && c.at.elapsed() < CACHE_TTL) {
                drop(cache);
                return active(u.clone(), ip);
            }
        }
        // An unknown user is checked too (against a dummy hash): same time.
        let (flight, leader) =
            self.flight(ip, username, password, user.as_ref().map(|u| &u.password_hash)).await.map_err(rate_limited)?;
        let matched = match flight.await {
            Ok(m) => m,
            Err(Busy) => {
                tracing::warn!(client = %ip, user = %username, "login refused: too many password checks at once");
                return Err(Refused::Busy);
            }
        };
        match user {
            Some(u) if matched => {
                drop(leader);
                let digest = self.digest(&u, password);
                let mut cache = self.cache.lock();
                if cache.len() >= MAX_ENTRIES {
                    cache.retain(|_, c| c.at.elapsed() < CACHE_TTL);
                }
                cache.insert(u.id, Cached { digest, at: Instant::now() });
                drop(cache);
                active(u, ip)
            }
            found => {
                match &leader {
                    Some(leader) => leader.attempt.failed(),
                    // A request that joined another's check fails on its own account too.
                    None => {
                        if let Ok(attempt) = self.begin_any(ip).await {
                            attempt.failed();
                        }
                    }
                }
                let reason = if found.is_some() { "wrong password" } else { "no such user" };
                tracing::warn!(client = %ip, user = %username, "login refused: {reason}");
                Err(Refused::BadCredentials)
            }
        }
    }
}

/// The user if it may use the outputs now.
fn active(user: User, ip: IpAddr) -> Result<User, Refused> {
    match user.status(tunerpool_catalog::now()) {
        UserStatus::Active => Ok(user),
        status => {
            tracing::warn!(client = %ip, user = %user.username, status = status.as_str(), "login refused: user not active");
            Err(Refused::Inactive(status))
        }
    }
}

/// Makes room in a full attempts table: drops entries that no longer
/// matter, and if every one still does (a client behind a trusted proxy
/// inventing addresses), the one whose window started first — never one
/// with a check in flight.
fn make_room(map: &mut HashMap<IpAddr, Attempts>, now: Instant) {
    map.retain(|_, a| a.live(now));
    if map.len() >= MAX_ENTRIES {
        let oldest = map.iter().filter(|(_, a)| a.in_flight == 0).min_by_key(|(_, a)| a.window_start).map(|(k, _)| *k);
        if let Some(k) = oldest {
            map.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> ClientAuth {
        ClientAuth::new(PasswordChecks::new(1, Duration::from_millis(10)))
    }

    #[test]
    fn attempts_in_flight_count_against_the_limit() {
        let a = auth();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let pending: Vec<_> = (0..MAX_FAILURES).map(|_| a.begin(ip).expect("under the limit")).collect();
        assert_eq!(a.begin(ip).err(), Some(1), "the 11th attempt waits while 10 are in flight");
        drop(pending); // they succeeded
        let failing: Vec<_> = (0..MAX_FAILURES).map(|_| a.begin(ip).expect("in flight again")).collect();
        failing.iter().for_each(Attempt::failed);
        drop(failing);
        assert!(a.blocked(ip).is_some_and(|s| s > 50), "10 failures block for a minute");
        assert!(a.begin(ip).is_err());
        // Another address is not affected; an IPv6 neighbour in the same /64 is.
        assert!(a.begin("192.0.2.8".parse().unwrap()).is_ok());
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        (0..MAX_FAILURES).map(|_| a.begin(v6).unwrap()).for_each(|at| at.failed());
        assert!(a.begin("2001:db8::ffff:2".parse().unwrap()).is_err());
        assert!(a.begin("2001:db8:0:1::1".parse().unwrap()).is_ok());
    }

    #[test]
    fn the_attempts_table_stays_bounded_whatever_the_addresses() {
        let a = auth();
        for i in 0..(MAX_ENTRIES as u32 + 2_000) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            a.begin(ip).unwrap().failed();
        }
        assert!(a.attempts.lock().len() <= MAX_ENTRIES);
    }
}
