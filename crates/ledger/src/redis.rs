//! The shared ledger: leases in Redis sorted sets, changed only by Lua scripts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use crate::{LeaseInfo, Ledger, LedgerError, Slot, Usage};

static ACQUIRE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/acquire.lua")));
static RENEW: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/renew.lua")));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/release.lua")));
static USAGE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/usage.lua")));

/// How long one command may take before it counts as failed (the heartbeat then retries).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connecting may take, in [`RedisLedger::connect`] and on each reconnect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The ledger shared by several tunerpool instances through one Redis.
///
/// Layout under the key prefix `P`:
/// - `P acct:{id}` and `P prov:{id}`: sorted sets, lease id → expiry in ms (Redis server time);
/// - `P lease:{id}`: the holder label of a lease, expiring with it;
/// - a released lease's slot cools down as the member `{id}:cooling` of the same two sorted sets;
/// - `P accts` / `P provs`: the account / provider ids seen, so [`Ledger::usage`] needs no `SCAN`.
///
/// Every operation is one Lua script run with `EVALSHA` (one round trip; the scripts are loaded at connect,
/// and reloaded automatically if Redis restarts). Scripts take the time from `redis.call('TIME')`, so the
/// instances' clocks do not matter. All keys expire 2 × ttl after their last use, so a crashed fleet leaves
/// nothing behind. The connection is a [`ConnectionManager`]: it reconnects by itself after an outage.
#[derive(Clone)]
pub struct RedisLedger {
    conn: ConnectionManager,
    ttl: Duration,
    cooldown: Duration,
    prefix: String,
    instance: String,
    counter: std::sync::Arc<AtomicU64>,
    /// The URL's password, so that it can be scrubbed from any error text.
    password: Option<String>,
}

impl std::fmt::Debug for RedisLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLedger")
            .field("ttl", &self.ttl)
            .field("prefix", &self.prefix)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

/// The password in a Redis URL, kept to scrub it from any error text.
pub(crate) fn url_password(url: &str) -> Option<String> {
    url::Url::parse(url).ok().and_then(|u| u.password().map(str::to_owned))
}

/// A connection manager to `url` with the project's timeouts and retries, once Redis answered and `scripts`
/// are loaded; errors name the URL with its password masked and never contain it. The one way the ledger and
/// the cluster's records connect.
pub(crate) async fn connect_with_scripts(
    url: &str,
    response_timeout: Duration,
    scripts: &[&Script],
) -> Result<ConnectionManager, LedgerError> {
    let password = url_password(url);
    let shown = redact_url(url);
    let fail = |what: &str, e: redis::RedisError| {
        LedgerError::Backend(scrub(&format!("{what} {shown}: {e}"), password.as_deref()))
    };
    let client = redis::Client::open(url).map_err(|e| fail("invalid Redis URL", e))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(response_timeout))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(1));
    let mut conn =
        ConnectionManager::new_with_config(client, config).await.map_err(|e| fail("cannot connect to Redis at", e))?;
    for script in scripts {
        script
            .prepare_invoke()
            .load_async(&mut conn)
            .await
            .map_err(|e| fail("cannot load the Lua scripts into Redis at", e))?;
    }
    Ok(conn)
}

impl RedisLedger {
    /// Connect to `url` (`redis://[:password@]host:port[/db]`), check that Redis answers and load the scripts.
    /// `key_prefix` (e.g. `tunerpool:`) namespaces the keys; instances that share slots must use the same one.
    pub async fn connect(url: &str, ttl: Duration, key_prefix: &str) -> Result<Self, LedgerError> {
        let password = url_password(url);
        let conn = connect_with_scripts(url, RESPONSE_TIMEOUT, &[&ACQUIRE, &RENEW, &RELEASE, &USAGE]).await?;
        Ok(RedisLedger {
            conn,
            ttl,
            cooldown: Duration::ZERO,
            prefix: key_prefix.to_owned(),
            instance: crate::instance_id(),
            counter: Default::default(),
            password,
        })
    }

    /// Released slots stay taken for `cooldown` more (see [`Ledger::release`]); zero by default. Instances
    /// sharing a Redis should use the same value.
    pub fn with_release_cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// The random id of this instance; every lease id it hands out starts with it.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The holder label of a lease, if the lease is still active (diagnostics).
    pub async fn holder(&self, lease_id: &str) -> Result<Option<String>, LedgerError> {
        let mut conn = self.conn.clone();
        redis::cmd("GET").arg(self.lease_key(lease_id)).query_async(&mut conn).await.map_err(|e| self.backend(e))
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX).max(1)
    }

    fn lease_key(&self, id: &str) -> String {
        format!("{}lease:{id}", self.prefix)
    }

    fn account_key(&self, id: i64) -> String {
        format!("{}acct:{id}", self.prefix)
    }

    fn provider_key(&self, id: i64) -> String {
        format!("{}prov:{id}", self.prefix)
    }

    fn backend(&self, e: redis::RedisError) -> LedgerError {
        LedgerError::Backend(scrub(&format!("Redis: {e}"), self.password.as_deref()))
    }
}

impl Ledger for RedisLedger {
    async fn acquire(&self, candidates: &[Slot], holder: &str) -> Result<LeaseInfo, LedgerError> {
        if candidates.is_empty() {
            return Err(LedgerError::Full);
        }
        let id = format!("{}-{}", self.instance, self.counter.fetch_add(1, Ordering::Relaxed));
        let mut call = ACQUIRE.prepare_invoke();
        call.key(self.lease_key(&id))
            .key(format!("{}accts", self.prefix))
            .key(format!("{}provs", self.prefix))
            .arg(&id)
            .arg(self.ttl_ms())
            .arg(holder);
        for slot in candidates {
            call.key(self.account_key(slot.account))
                .key(self.provider_key(slot.provider))
                .arg(slot.account)
                .arg(slot.provider)
                .arg(slot.account_max)
                .arg(slot.provider_max.map_or(-1, i64::from));
        }
        let mut conn = self.conn.clone();
        let index: i64 = call.invoke_async(&mut conn).await.map_err(|e| self.backend(e))?;
        let index = usize::try_from(index).map_err(|_| LedgerError::Full)?;
        let slot = candidates
            .get(index)
            .ok_or_else(|| LedgerError::Backend(format!("Redis answered candidate {index} of {}", candidates.len())))?;
        Ok(LeaseInfo { id, account: slot.account, provider: slot.provider, index })
    }

    async fn renew(&self, lease: &LeaseInfo) -> Result<bool, LedgerError> {
        let mut call = RENEW.prepare_invoke();
        call.key(self.lease_key(&lease.id))
            .key(self.account_key(lease.account))
            .key(self.provider_key(lease.provider))
            .key(format!("{}accts", self.prefix))
            .key(format!("{}provs", self.prefix))
            .arg(&lease.id)
            .arg(self.ttl_ms());
        let mut conn = self.conn.clone();
        let renewed: i64 = call.invoke_async(&mut conn).await.map_err(|e| self.backend(e))?;
        Ok(renewed == 1)
    }

    async fn release(&self, lease: &LeaseInfo) -> Result<(), LedgerError> {
        let mut call = RELEASE.prepare_invoke();
        call.key(self.lease_key(&lease.id))
            .key(self.account_key(lease.account))
            .key(self.provider_key(lease.provider))
            .arg(&lease.id)
            .arg(crate::cooling_id(&lease.id))
            .arg(u64::try_from(self.cooldown.as_millis()).unwrap_or(u64::MAX));
        let mut conn = self.conn.clone();
        let _: i64 = call.invoke_async(&mut conn).await.map_err(|e| self.backend(e))?;
        Ok(())
    }

    async fn usage(&self) -> Result<Usage, LedgerError> {
        let mut call = USAGE.prepare_invoke();
        call.key(format!("{}accts", self.prefix)).key(format!("{}provs", self.prefix)).arg(&self.prefix);
        let mut conn = self.conn.clone();
        let answer: Result<(Vec<String>, Vec<String>), _> = call.invoke_async(&mut conn).await;
        let (accounts, providers) = match answer {
            // A connection found broken (Redis restarted while it sat idle) reconnects on this failure: a read
            // changes nothing, so ask once more rather than answer a 503 for a Redis that is back.
            Err(e) if e.is_connection_dropped() || e.is_io_error() => {
                call.invoke_async(&mut conn).await.map_err(|e| self.backend(e))?
            }
            other => other.map_err(|e| self.backend(e))?,
        };
        Ok(Usage { accounts: pairs(&accounts)?, providers: pairs(&providers)? })
    }

    fn ttl(&self) -> Duration {
        self.ttl
    }

    fn release_cooldown(&self) -> Duration {
        self.cooldown
    }
}

/// `[id, count, id, count, ...]` (strings) into a map.
fn pairs(flat: &[String]) -> Result<std::collections::HashMap<i64, u32>, LedgerError> {
    let bad = || LedgerError::Backend(format!("Redis usage answer is malformed: {flat:?}"));
    flat.chunks(2)
        .map(|pair| match pair {
            [id, count] => Ok((id.parse().map_err(|_| bad())?, count.parse().map_err(|_| bad())?)),
            _ => Err(bad()),
        })
        .collect()
}

/// The URL as it may be shown: the password replaced by `***`. An unparsable URL is not shown at all (it might
/// be a password pasted in the wrong place).
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                // Cannot fail: a URL with a password has a host.
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<unparsable URL>".to_owned(),
    }
}

/// `text` with every occurrence of `secret` (and its percent-decoded form) replaced by `***`.
pub(crate) fn scrub(text: &str, secret: Option<&str>) -> String {
    let mut out = text.to_owned();
    if let Some(secret) = secret.filter(|s| !s.is_empty()) {
        out = out.replace(secret, "***");
        let decoded = url::form_urlencoded::parse(format!("x={secret}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        if !decoded.is_empty() {
            out = out.replace(&decoded, "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_the_password_only() {
        assert_eq!(redact_url("redis://:hunter2@cache:6379/0"), "redis://:***@cache:6379/0");
        assert_eq!(redact_url("redis://user:hunter2@cache/"), "redis://user:***@cache/");
        assert_eq!(redact_url("redis://cache:6379"), "redis://cache:6379");
        assert_eq!(redact_url("hunter2"), "<unparsable URL>");
    }

    #[test]
    fn scrub_removes_raw_and_decoded_password() {
        assert_eq!(scrub("auth p%40ss failed p@ss", Some("p%40ss")), "auth *** failed ***");
        assert_eq!(scrub("nothing", None), "nothing");
        assert_eq!(scrub("nothing", Some("")), "nothing");
    }

    #[test]
    fn usage_pairs_parse_and_reject_garbage() {
        let ok = pairs(&["7".into(), "2".into(), "-3".into(), "1".into()]).unwrap();
        assert_eq!(ok.get(&7), Some(&2));
        assert_eq!(ok.get(&-3), Some(&1));
        assert!(pairs(&["7".into()]).is_err());
        assert!(pairs(&["x".into(), "1".into()]).is_err());
    }
}
