//! Client logins: username and password (from the query or the path),
//! checked against the user's argon2 hash.
//!
//! argon2 is slow on purpose (tens of ms of CPU), and players hit
//! `player_api.php` and stream URLs over and over, so a successful check is
//! remembered for a short while. The cache key is a salted digest of the
//! given password together with the stored hash and the user's last update,
//! so a changed password (or any change to the user) misses the cache; the
//! users API also drops a user's entry when it changes or deletes it.
//!
//! Failed logins are counted per client address: too many within a minute
//! and that address is refused (429) for a while without any check. Every
//! refusal is logged with the address, the username and the reason — never
//! the password.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tunerpool_catalog::{User, UserStatus};

use crate::metrics::HttpMetrics;
use crate::AppState;

/// How long a verified password is trusted without running argon2 again.
const CACHE_TTL: Duration = Duration::from_secs(120);
/// Failed logins from one address within [`FAIL_WINDOW`] that trigger a block.
pub(crate) const MAX_FAILURES: u32 = 10;
const FAIL_WINDOW: Duration = Duration::from_secs(60);
/// How long a blocked address is refused.
const BLOCK_FOR: Duration = Duration::from_secs(60);
/// Bounds on the in-memory maps.
const MAX_ENTRIES: usize = 10_000;

/// Why a login was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Unknown user or wrong password (clients are not told which).
    BadCredentials,
    /// Known user, right password, but disabled or expired.
    Inactive(UserStatus),
    /// Too many failed logins from this address; retry after this many seconds.
    RateLimited(u64),
    /// The store failed.
    Internal,
}

impl Refused {
    /// What the client is told.
    pub(crate) fn message(&self) -> String {
        match self {
            Refused::BadCredentials => "wrong username or password".into(),
            Refused::Inactive(UserStatus::Expired) => "this user has expired".into(),
            Refused::Inactive(_) => "this user is disabled".into(),
            Refused::RateLimited(s) => format!("too many failed logins from this address: try again in {s} s"),
            Refused::Internal => "internal error; see the server log".into(),
        }
    }
}

struct Cached {
    digest: [u8; 32],
    at: Instant,
}

struct Failures {
    window_start: Instant,
    count: u32,
    blocked_until: Option<Instant>,
}

/// Client login checks with their cache and per-address failure counts.
/// One per router; shared by every output and the users API (which
/// invalidates entries).
pub(crate) struct ClientAuth {
    salt: [u8; 32],
    cache: Mutex<HashMap<i64, Cached>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
    /// Counts refused logins (`tunerpool_login_failures_total`).
    metrics: Arc<HttpMetrics>,
}

impl ClientAuth {
    pub(crate) fn new(metrics: Arc<HttpMetrics>) -> Self {
        ClientAuth { salt: rand::random(), cache: Mutex::default(), failures: Mutex::default(), metrics }
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

    /// Forgets a user's cached login (its password or status changed).
    pub(crate) fn forget(&self, user_id: i64) {
        self.cache.lock().expect("not poisoned").remove(&user_id);
    }

    /// Seconds left in this address's block, if it is blocked.
    fn blocked(&self, ip: IpAddr) -> Option<u64> {
        let map = self.failures.lock().expect("not poisoned");
        let until = map.get(&ip)?.blocked_until?;
        let left = until.checked_duration_since(Instant::now())?;
        Some(left.as_secs().max(1))
    }

    fn failed(&self, ip: IpAddr) {
        self.metrics.login_failed("bad_credentials");
        let now = Instant::now();
        let mut map = self.failures.lock().expect("not poisoned");
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, f| {
                now.duration_since(f.window_start) < FAIL_WINDOW || f.blocked_until.is_some_and(|b| b > now)
            });
        }
        let f = map.entry(ip).or_insert(Failures { window_start: now, count: 0, blocked_until: None });
        if now.duration_since(f.window_start) >= FAIL_WINDOW {
            f.window_start = now;
            f.count = 0;
        }
        f.count += 1;
        if f.count >= MAX_FAILURES {
            f.blocked_until = Some(now + BLOCK_FOR);
            tracing::warn!(client = %ip, failures = f.count, block_s = BLOCK_FOR.as_secs(),
                "too many failed logins: refusing this address for a while");
        }
    }

    /// Checks a client's credentials; on success the user (active).
    pub(crate) async fn login(
        &self,
        st: &AppState,
        ip: IpAddr,
        username: &str,
        password: &str,
    ) -> Result<User, Refused> {
        if let Some(left) = self.blocked(ip) {
            tracing::warn!(client = %ip, user = %username, "login refused: too many failed logins from this address");
            self.metrics.login_failed("rate_limited");
            return Err(Refused::RateLimited(left));
        }
        if username.is_empty() || password.is_empty() {
            tracing::warn!(client = %ip, user = %username, "login refused: no username or password given");
            self.failed(ip);
            return Err(Refused::BadCredentials);
        }
        let user = match st.store.user_by_name(username).await {
            Ok(Some(u)) => u,
            Ok(None) => {
                tracing::warn!(client = %ip, user = %username, "login refused: no such user");
                self.failed(ip);
                return Err(Refused::BadCredentials);
            }
            Err(e) => {
                tracing::error!(error = %e, "login: cannot read users");
                return Err(Refused::Internal);
            }
        };
        let digest = self.digest(&user, password);
        let cached = self
            .cache
            .lock()
            .expect("not poisoned")
            .get(&user.id)
            .is_some_and(|c| c.digest == digest && c.at.elapsed() < CACHE_TTL);
        if !cached {
            if !tunerpool_catalog::users::verify_password(&user.password_hash, password).await {
                tracing::warn!(client = %ip, user = %username, "login refused: wrong password");
                self.failed(ip);
                return Err(Refused::BadCredentials);
            }
            let mut cache = self.cache.lock().expect("not poisoned");
            if cache.len() >= MAX_ENTRIES {
                cache.retain(|_, c| c.at.elapsed() < CACHE_TTL);
            }
            cache.insert(user.id, Cached { digest, at: Instant::now() });
        }
        match user.status(tunerpool_catalog::now()) {
            UserStatus::Active => Ok(user),
            status => {
                tracing::warn!(client = %ip, user = %username, status = status.as_str(), "login refused: user not active");
                Err(Refused::Inactive(status))
            }
        }
    }
}
