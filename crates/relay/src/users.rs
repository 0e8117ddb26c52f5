//! Downstream users' own connection limits, enforced on top of the pool.
//!
//! A client user (a login of our M3U/Xtream/HDHomeRun outputs) may have a
//! limit on how many streams it watches at once. When a user at its limit
//! asks for another stream, the policy decides: end the user's oldest stream
//! (a player zapping usually opens the new channel before closing the old
//! one) or refuse after a short wait for one of its streams to end.
//!
//! Each stream a user watches holds a [`UserTicket`]; dropping it frees the
//! user's slot. A replaced stream's ticket is revoked at once — the limit is
//! exact from that moment — and the stream itself ends at its next chunk.
//!
//! In cluster mode the count is the cluster's, in Redis: each ticket also
//! holds a [`UserLease`] (one lease per stream, renewed, released with the
//! ticket, expired with a dead instance: `tunerpool_ledger::cluster`), and a
//! claim is granted only while the user's leases on every instance together
//! are under its limit. The user is known by name there (instances number
//! users differently until they share one store). A stream replaced by a
//! claim on another instance ends when its own instance's next renewal finds
//! its lease gone (within a third of `cluster.ttl`). A user without a limit
//! of its own takes no lease: there is nothing to hold across instances.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use tunerpool_ledger::cluster::{Cluster, UserClaim, UserLease};

/// Who asks for a stream: where from, and as which downstream user.
#[derive(Debug, Clone, Default)]
pub struct Viewer {
    /// The client's address, for the sessions view and logs (never used to
    /// guess who a viewer is: a NAT or a Plex server has many behind it).
    pub address: String,
    /// The downstream user, when the request was authenticated as one.
    pub user: Option<UserQuota>,
}

impl Viewer {
    /// An anonymous viewer (admin/stream URLs without a downstream user).
    pub fn anonymous(address: impl Into<String>) -> Viewer {
        Viewer { address: address.into(), user: None }
    }

    /// The viewer's priority: its user's, 0 without one.
    pub fn priority(&self) -> u8 {
        self.user.as_ref().map_or(0, |u| u.priority)
    }
}

/// A downstream user and its own limit.
#[derive(Debug, Clone)]
pub struct UserQuota {
    pub id: i64,
    pub name: String,
    /// Streams this user may watch at once; 0 means no limit of its own.
    pub max_connections: u32,
    /// 0 to 100: at or above `pool.reserved_priority` the user may take the
    /// slots kept in reserve; with `pool.preempt` its request may stop a
    /// session whose viewers all have a lower priority.
    pub priority: u8,
}

/// What to do when a user at its limit asks for another stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserLimitPolicy {
    /// End the user's oldest stream and serve the new one.
    #[default]
    ReplaceOldest,
    /// Wait briefly for one of the user's streams to end, then refuse.
    Refuse,
}

impl UserLimitPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            UserLimitPolicy::ReplaceOldest => "replace_oldest",
            UserLimitPolicy::Refuse => "refuse",
        }
    }

    pub fn parse(s: &str) -> Option<UserLimitPolicy> {
        match s {
            "replace_oldest" => Some(UserLimitPolicy::ReplaceOldest),
            "refuse" => Some(UserLimitPolicy::Refuse),
            _ => None,
        }
    }
}

/// One stream a user holds.
struct Held {
    key: u64,
    since: Instant,
    what: String,
    revoked: Arc<AtomicBool>,
    /// Run when the stream is replaced, e.g. to leave its session at once
    /// so that the session can give its upstream slot to the new stream.
    on_revoke: Option<Box<dyn FnOnce() + Send>>,
    /// In cluster mode, the stream's lease in Redis (dropped with this entry: released).
    remote: Option<UserLease>,
}

/// Every user's held streams. One small mutex, taken when a stream starts
/// or ends — never per chunk.
#[derive(Default)]
pub(crate) struct UserStreams {
    held: Mutex<HashMap<i64, Vec<Held>>>,
    next_key: std::sync::atomic::AtomicU64,
    released: Notify,
}

/// A user's claim on one of its own stream slots; dropping it gives the
/// slot back. `is_revoked` turns true when a newer stream replaced it.
pub(crate) struct UserTicket {
    owner: Arc<UserStreams>,
    user: i64,
    key: u64,
    revoked: Arc<AtomicBool>,
    /// In cluster mode: turns true when the stream's lease in Redis is lost (replaced from another instance).
    lost: Option<watch::Receiver<bool>>,
}

/// Why a user's stream slot was not granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UserRefusal {
    /// At its limit (the refuse policy): the message names the user and what it watches.
    AtLimit(String),
    /// Cluster mode, and Redis did not answer: the limit cannot be checked, so nothing is granted.
    Unavailable(String),
}

/// The refusal of a user at its limit, the same on one instance and across a cluster.
fn at_limit(quota: &UserQuota, watching: &[&str]) -> String {
    let max = quota.max_connections;
    format!(
        "user {} is at its limit of {} connection{} (watching: {}); close a stream first",
        quota.name,
        max,
        if max == 1 { "" } else { "s" },
        watching.join(", ")
    )
}

/// How often a claim waiting for another instance's stream of the user to end asks Redis again.
const CLUSTER_POLL: Duration = Duration::from_millis(100);

impl UserTicket {
    pub(crate) fn is_revoked(&self) -> bool {
        self.revoked.load(Ordering::Relaxed) || self.lost.as_ref().is_some_and(|l| *l.borrow())
    }

    /// Sets what to do when this stream is replaced by a newer one (run at
    /// once if that already happened).
    pub(crate) fn on_revoke(&self, f: impl FnOnce() + Send + 'static) {
        let mut map = self.owner.held.lock();
        match map.get_mut(&self.user).and_then(|l| l.iter_mut().find(|h| h.key == self.key)) {
            Some(h) => h.on_revoke = Some(Box::new(f)),
            None => {
                drop(map);
                f();
            }
        }
    }
}

impl Drop for UserTicket {
    fn drop(&mut self) {
        let mut map = self.owner.held.lock();
        if let Some(list) = map.get_mut(&self.user) {
            list.retain(|h| h.key != self.key);
            if list.is_empty() {
                map.remove(&self.user);
            }
        }
        drop(map);
        self.owner.released.notify_waiters();
    }
}

impl UserStreams {
    /// How many streams the user holds now.
    pub(crate) fn count(&self, user: i64) -> usize {
        self.held.lock().get(&user).map_or(0, Vec::len)
    }

    /// Claims a slot of `quota` for a stream described by `what`. Under the
    /// replace policy a user at its limit loses its oldest stream(s); under
    /// the refuse policy this waits up to `wait` for one to end, then fails
    /// with a message saying what the user is watching. With `cluster`, the
    /// count is the cluster's ([`UserStreams::claim_clustered`]).
    pub(crate) async fn claim(
        self: &Arc<Self>,
        quota: &UserQuota,
        policy: UserLimitPolicy,
        wait: Duration,
        what: &str,
        cluster: Option<&Cluster>,
    ) -> Result<UserTicket, UserRefusal> {
        // A user without a limit of its own has nothing to count across the cluster: no lease (one renewal per
        // stream every third of the TTL would load Redis for nothing).
        if let Some(cluster) = cluster.filter(|_| quota.max_connections > 0) {
            return self.claim_clustered(cluster, quota, policy, wait, what).await;
        }
        let deadline = tokio::time::Instant::now() + wait;
        let mut replaced = Vec::new();
        let result = loop {
            let released = self.released.notified();
            tokio::pin!(released);
            // Register for the wake-up before checking, so a release between
            // the check and the wait is not missed.
            released.as_mut().enable();
            {
                let mut map = self.held.lock();
                let list = map.entry(quota.id).or_default();
                let max = quota.max_connections as usize;
                if max > 0 && list.len() >= max && policy == UserLimitPolicy::ReplaceOldest {
                    list.sort_by_key(|h| h.since);
                    let excess = list.len() + 1 - max;
                    for old in list.drain(..excess) {
                        old.revoked.store(true, Ordering::Relaxed);
                        tracing::info!(user = %quota.name, replaced = %old.what, by = %what,
                            "user at its connection limit: ending its oldest stream");
                        replaced.extend(old.on_revoke);
                    }
                }
                if max == 0 || list.len() < max {
                    let key = self.next_key.fetch_add(1, Ordering::Relaxed);
                    let revoked = Arc::new(AtomicBool::new(false));
                    let held = Held {
                        key,
                        since: Instant::now(),
                        what: what.to_string(),
                        revoked: revoked.clone(),
                        on_revoke: None,
                        remote: None,
                    };
                    list.push(held);
                    break Ok(UserTicket { owner: self.clone(), user: quota.id, key, revoked, lost: None });
                }
                if tokio::time::Instant::now() >= deadline {
                    let watching: Vec<&str> = list.iter().map(|h| h.what.as_str()).collect();
                    break Err(UserRefusal::AtLimit(at_limit(quota, &watching)));
                }
            }
            let _ = tokio::time::timeout_at(deadline, released).await;
        };
        // Outside the lock: the callbacks take other locks.
        for f in replaced {
            f();
        }
        result
    }
}

impl UserStreams {
    /// [`UserStreams::claim`] in cluster mode: the user's streams on every instance count, through its leases in
    /// Redis ([`Cluster::claim_user`], atomic). A grant that replaced the user's oldest streams ends those held
    /// here at once; the refuse policy asks again whenever a stream of the user ends here, and every
    /// [`CLUSTER_POLL`] for the other instances', until `wait` has passed. Redis not answering refuses: a limit
    /// that cannot be counted is not granted past.
    async fn claim_clustered(
        self: &Arc<Self>,
        cluster: &Cluster,
        quota: &UserQuota,
        policy: UserLimitPolicy,
        wait: Duration,
        what: &str,
    ) -> Result<UserTicket, UserRefusal> {
        let deadline = tokio::time::Instant::now() + wait;
        let replace = policy == UserLimitPolicy::ReplaceOldest;
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            let claimed = cluster.claim_user(&quota.name, quota.max_connections, replace, what).await.map_err(|e| {
                UserRefusal::Unavailable(format!(
                    "cannot count user {}'s streams across the cluster ({e}); try again shortly",
                    quota.name
                ))
            })?;
            match claimed {
                UserClaim::Granted { lease, replaced } => return Ok(self.hold(quota, what, lease, &replaced)),
                UserClaim::Full { watching } => {
                    if tokio::time::Instant::now() >= deadline {
                        let watching: Vec<&str> = watching.iter().map(String::as_str).collect();
                        return Err(UserRefusal::AtLimit(at_limit(quota, &watching)));
                    }
                    let poll = (tokio::time::Instant::now() + CLUSTER_POLL).min(deadline);
                    let _ = tokio::time::timeout_at(poll, released).await;
                }
            }
        }
    }

    /// Records a stream granted by the cluster, ending at once this instance's streams whose leases it replaced.
    fn hold(self: &Arc<Self>, quota: &UserQuota, what: &str, lease: UserLease, replaced: &[String]) -> UserTicket {
        let mut callbacks = Vec::new();
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let revoked = Arc::new(AtomicBool::new(false));
        let lost = Some(lease.lost_flag());
        let mut map = self.held.lock();
        let list = map.entry(quota.id).or_default();
        let (gone, kept): (Vec<Held>, Vec<Held>) = std::mem::take(list)
            .into_iter()
            .partition(|h| h.remote.as_ref().is_some_and(|l| replaced.iter().any(|r| r == l.id())));
        *list = kept;
        for old in gone {
            old.revoked.store(true, Ordering::Relaxed);
            tracing::info!(user = %quota.name, replaced = %old.what, by = %what,
                "user at its connection limit across the cluster: ending its oldest stream");
            callbacks.extend(old.on_revoke);
        }
        list.push(Held {
            key,
            since: Instant::now(),
            what: what.to_string(),
            revoked: revoked.clone(),
            on_revoke: None,
            remote: Some(lease),
        });
        drop(map);
        // Outside the lock: the callbacks take other locks.
        for f in callbacks {
            f();
        }
        UserTicket { owner: self.clone(), user: quota.id, key, revoked, lost }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(max: u32) -> UserQuota {
        UserQuota { id: 7, name: "kim".into(), max_connections: max, priority: 0 }
    }

    #[tokio::test]
    async fn replace_oldest_revokes_the_oldest_and_keeps_the_count() {
        let u = Arc::new(UserStreams::default());
        let q = quota(2);
        let a = u.claim(&q, UserLimitPolicy::ReplaceOldest, Duration::ZERO, "a", None).await.unwrap();
        let b = u.claim(&q, UserLimitPolicy::ReplaceOldest, Duration::ZERO, "b", None).await.unwrap();
        let (a_left, b_left) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let flag = |f: &Arc<AtomicBool>| {
            let f = f.clone();
            move || f.store(true, Ordering::Relaxed)
        };
        a.on_revoke(flag(&a_left));
        b.on_revoke(flag(&b_left));
        let c = u.claim(&q, UserLimitPolicy::ReplaceOldest, Duration::ZERO, "c", None).await.unwrap();
        assert!(a.is_revoked() && a_left.load(Ordering::Relaxed));
        assert!(!b.is_revoked() && !c.is_revoked() && !b_left.load(Ordering::Relaxed));
        // A callback set after the revocation runs at once.
        let late = Arc::new(AtomicBool::new(false));
        a.on_revoke(flag(&late));
        assert!(late.load(Ordering::Relaxed));
        assert_eq!(u.count(7), 2);
        drop(a); // a revoked ticket dropping late must not free another slot
        assert_eq!(u.count(7), 2);
        drop(b);
        assert_eq!(u.count(7), 1);
    }

    #[tokio::test]
    async fn refuse_names_the_user_and_what_it_watches() {
        let u = Arc::new(UserStreams::default());
        let q = quota(1);
        let _a = u.claim(&q, UserLimitPolicy::Refuse, Duration::ZERO, "channel 5 News", None).await.unwrap();
        let Some(UserRefusal::AtLimit(err)) =
            u.claim(&q, UserLimitPolicy::Refuse, Duration::from_millis(20), "b", None).await.err()
        else {
            panic!("refused at the limit")
        };
        assert!(
            err.contains("kim") && err.contains("limit of 1 connection ") && err.contains("channel 5 News"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn refuse_waits_for_a_stream_to_end() {
        let u = Arc::new(UserStreams::default());
        let q = quota(1);
        let a = u.claim(&q, UserLimitPolicy::Refuse, Duration::ZERO, "a", None).await.unwrap();
        let later = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(a);
        });
        let b = u.claim(&q, UserLimitPolicy::Refuse, Duration::from_secs(10), "b", None).await;
        assert!(b.is_ok());
        later.await.unwrap();
    }

    #[tokio::test]
    async fn zero_means_no_own_limit() {
        let u = Arc::new(UserStreams::default());
        let q = quota(0);
        let mut held = Vec::new();
        for i in 0..20 {
            held.push(u.claim(&q, UserLimitPolicy::Refuse, Duration::ZERO, &i.to_string(), None).await.unwrap());
        }
        assert_eq!(u.count(7), 20);
        drop(held);
        assert_eq!(u.count(7), 0);
    }
}
