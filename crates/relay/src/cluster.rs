//! Several instances as one gateway: one provider connection per channel across the cluster.
//!
//! In cluster mode (a shared Redis and a cluster secret) a channel's own session first settles who reads the
//! provider. It claims the channel's ownership record ([`tunerpool_ledger::cluster`]): the winner (the *owner*)
//! runs the session as a single instance does (lease, provider, failover) and renews the record while it lives;
//! every other instance's session *follows* it: its upstream is the owner's internal endpoint
//! (`GET /internal/v1/live/{channel}` with the cluster secret), where it joins the owner's session as one more
//! viewer ([`crate::relay::Relay::watch_peer`]) — no lease, no second provider connection — and fans the bytes
//! out to its own viewers through its own ring. So each instance holds at most one internal connection per
//! channel, and the provider sees one.
//!
//! A session started for a peer's request must own the channel itself: it never follows (no chains, no loops),
//! and the owner answers a peer only if its own session owns the channel. When the owner dies, its peers'
//! streams break; each follower claims the record again as soon as it expires, the one that wins takes a lease
//! (waiting for the dead owner's to expire: limits stay sacred) and opens the provider, the others follow it.
//! Viewers keep their sockets throughout, as in a mid-stream failover.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tunerpool_domain::{Channel, Secret};
use tunerpool_ledger::cluster::{Claimed, Cluster, InstanceInfo};

use crate::linger::{Linger, Watched};
use crate::relay::Inner;
use crate::session::{run_upstream, Session, State};

/// The header that carries the cluster secret on internal requests.
pub const SECRET_HEADER: &str = "x-tunerpool-cluster-secret";
/// The header that names the requesting instance (for the owner's sessions API and logs).
pub const INSTANCE_HEADER: &str = "x-tunerpool-instance";
/// The header that carries the channel's key ([`channel_key`]): the owner serves only the same channel.
pub const CHANNEL_HEADER: &str = "x-tunerpool-channel-key";

/// A channel's key in the cluster: its id and a digest of its name (FNV-1a, stable across builds). Instances
/// that share one catalog derive the same key; instances whose catalogs differ (the same id for different
/// channels) derive different keys, so they never relay each other's different channels — each reads its own.
pub fn channel_key(id: i64, name: &str) -> String {
    let digest = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{id}-{digest:016x}")
}

/// How long a follower waits between two attempts to find or reach the owner.
const RETRY: Duration = Duration::from_millis(150);
/// The most a follower lingers with no viewers.
const FOLLOWER_LINGER: Duration = Duration::from_millis(500);

/// This instance's membership in a cluster, as the relay uses it.
///
/// Exists so that the relay has one handle for the cluster's records in Redis and the shared secret its internal
/// requests carry (and its internal endpoint checks), set once at start ([`crate::relay::Relay::set_cluster`]).
pub struct ClusterLink {
    directory: Cluster,
    secret: Secret,
    /// Whether this instance runs the cluster's scheduled jobs now (the automatic probes among them).
    runs_jobs: Arc<AtomicBool>,
}

impl std::fmt::Debug for ClusterLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterLink").field("directory", &self.directory).finish_non_exhaustive()
    }
}

impl ClusterLink {
    /// A link over `directory` whose internal requests carry `secret`.
    pub fn new(directory: Cluster, secret: Secret) -> ClusterLink {
        ClusterLink { directory, secret, runs_jobs: Arc::new(AtomicBool::new(true)) }
    }

    /// The same link, told by `flag` whether this instance runs the cluster's scheduled jobs (the holder of the
    /// scheduler's lock sets it): the automatic probes run only there, once per cluster.
    pub fn with_jobs_flag(self, flag: Arc<AtomicBool>) -> ClusterLink {
        ClusterLink { runs_jobs: flag, ..self }
    }

    /// Whether this instance runs the cluster's scheduled jobs now.
    pub fn runs_jobs(&self) -> bool {
        self.runs_jobs.load(Ordering::Relaxed)
    }

    /// This instance's id.
    pub fn instance_id(&self) -> &str {
        &self.directory.me().id
    }

    /// The records in Redis.
    pub fn directory(&self) -> &Cluster {
        &self.directory
    }

    /// The cluster secret, for the header of an internal request to a peer (never shown elsewhere).
    pub(crate) fn secret_header_value(&self) -> &str {
        self.secret.expose()
    }

    /// Whether `given` is the cluster secret, compared in constant time (for equal lengths; the length itself
    /// is not secret enough to matter against a random secret of fixed length).
    pub fn accepts(&self, given: &[u8]) -> bool {
        let want = self.secret.expose().as_bytes();
        if want.is_empty() || want.len() != given.len() {
            return false;
        }
        want.iter().zip(given).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// Which instance reads the provider for a session, in cluster mode.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Role {
    /// Not settled yet (or not in cluster mode).
    #[default]
    Undecided,
    /// This instance (its id): the session holds the ownership record, the lease and the provider connection.
    Owner(String),
    /// The owner's id: the session relays that instance's stream.
    Following(String),
}

impl Role {
    /// The owning instance's id, once settled.
    pub fn owner(&self) -> Option<&str> {
        match self {
            Role::Undecided => None,
            Role::Owner(id) | Role::Following(id) => Some(id),
        }
    }
}

/// The path of a peer's internal endpoint that stops one of its sessions (`DELETE`, the cluster secret).
pub fn stop_path(session: u64) -> String {
    format!("/internal/v1/sessions/{session}")
}

/// How long an instance waits for a peer to answer a stop request it forwards.
pub const PEER_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a stop request for another instance's session did not stop it ([`crate::relay::Relay::stop_on_peer`]).
///
/// Exists so that the admin API can answer each case with its status: the session or its instance is gone
/// (404), the holder cannot be reached or answered oddly (502), the cluster's records cannot be read (503).
#[derive(Debug, thiserror::Error)]
pub enum PeerStopError {
    /// Not in cluster mode: there are no other instances.
    #[error("this instance is not in a cluster: it has no other instances to ask")]
    NotClustered,
    /// No live instance has that id (it stopped, and its sessions ended with it).
    #[error("instance {0} is not in the cluster (it may have stopped: its sessions ended with it)")]
    UnknownInstance(String),
    /// The instance answered that it has no such session.
    #[error("instance {instance} has no session {session} (it may have ended)")]
    NoSession { instance: String, session: u64 },
    /// The instance did not answer, or answered something else than stopped or not found.
    #[error("instance {instance} could not be asked to stop session {session}: {why}; try again, or stop it there")]
    Unreachable { instance: String, session: u64, why: String },
    /// Redis did not answer: where the instance is cannot be read.
    #[error("cluster coordination unavailable ({0}): where the session's instance is cannot be read; try again")]
    Coordination(String),
}

/// Why a peer's internal request was not served.
#[derive(Debug, thiserror::Error)]
pub enum PeerRefusal {
    /// Not in cluster mode: the internal endpoint serves nobody.
    #[error("this instance is not in a cluster")]
    NotClustered,
    /// Another instance owns the channel (or this one only follows it): ask the owner, never forward twice.
    #[error("{0}")]
    NotOwner(String),
    /// The owner could not serve it (no channel, no capacity, every upstream failed).
    #[error("{0}")]
    Failed(#[from] crate::relay::WatchError),
}

/// What following the owner's stream ended with.
enum Followed {
    Stopped,
    Idle,
    /// The peer stream failed or never answered; whether it delivered anything.
    Failed(String, bool),
}

/// The channel's own session in cluster mode: claim the channel and run it as its owner, or follow its owner,
/// again and again until the session ends (a follower whose owner died tries to become the owner). Returns why it
/// ended.
pub(crate) async fn run(link: &ClusterLink, session: &Arc<Session>, inner: &Arc<Inner>, channel: &Channel) -> String {
    let me = link.instance_id().to_owned();
    let ttl = link.directory.ttl();
    // Without any stream for this long (the owner gone, its record not yet expired, the new owner waiting for
    // the dead one's lease), the session gives up.
    let give_up_after = ttl * 3 + inner.settings.acquire_wait + inner.settings.open_timeout;
    let key = channel_key(channel.id, &channel.name);
    let mut trying_since = Instant::now();
    // Failures in a row: the first is worth a warning, the retries that follow (every RETRY) are not.
    let mut failures = 0u32;
    loop {
        if session.stop.is_cancelled() {
            return "stopped".into();
        }
        let last = match link.directory.claim(&key, session.id).await {
            Ok(Claimed::Ours(ownership)) => {
                *session.role.lock() = crate::cluster::Role::Owner(me.clone());
                tracing::info!(session = session.id, channel = %channel.name, "cluster: this instance owns the channel");
                let reason = tokio::select! {
                    r = run_upstream(session, inner, channel) => r,
                    _ = ownership.lost() => {
                        "lost the channel's ownership (Redis unreachable for a whole TTL, or restarted)".to_string()
                    }
                };
                let lost = ownership.is_lost();
                ownership.release().await;
                if !lost {
                    return reason;
                }
                // The upstream is closed (its lease dropped with it), but the viewers stay: claim the channel
                // again, or follow whoever claimed it meanwhile, as a follower whose owner died does.
                tracing::warn!(session = session.id, channel = %channel.name, reason = %reason,
                    "cluster: claiming the channel again or following its new owner; the viewers stay");
                if session.has_run() {
                    session.set_state(State::Switching);
                }
                trying_since = Instant::now();
                failures = 0;
                reason
            }
            Ok(Claimed::Theirs { instance, .. }) if instance == me => {
                // An earlier session of ours (being stopped) still holds it: it releases it in a moment.
                "an earlier session of this instance still owns the channel".to_string()
            }
            Ok(Claimed::Theirs { instance, .. }) if session.claim.from_peer => {
                return format!("channel {} is owned by instance {instance}", channel.id);
            }
            Ok(Claimed::Theirs { instance, .. }) => match link.directory.instance(&instance).await {
                Ok(Some(peer)) => {
                    *session.role.lock() = Role::Following(instance.clone());
                    match follow(link, inner, session, &peer, channel.id, &key).await {
                        Followed::Stopped => return "stopped".into(),
                        Followed::Idle => return "no viewers".into(),
                        Followed::Failed(why, delivered) => {
                            if delivered {
                                trying_since = Instant::now();
                                failures = 0;
                            }
                            failures += 1;
                            if failures == 1 {
                                tracing::warn!(session = session.id, channel = %channel.name, owner = %instance,
                                    reason = %why, "cluster: the owner's stream failed; claiming the channel or following its owner");
                            } else {
                                tracing::debug!(session = session.id, owner = %instance, reason = %why, failures,
                                    "cluster: the owner still cannot serve the channel");
                            }
                            if session.has_run() {
                                session.set_state(State::Switching);
                            }
                            why
                        }
                    }
                }
                Ok(None) => format!("the owner {instance} is gone; waiting for its record to expire"),
                Err(e) => format!("cluster: {e}"),
            },
            Err(e) => {
                tracing::warn!(session = session.id, error = %e, "cluster: cannot read the channel's owner");
                format!("cluster coordination unavailable: {e}")
            }
        };
        if trying_since.elapsed() > give_up_after {
            return last;
        }
        tokio::select! {
            _ = session.stop.cancelled() => return "stopped".into(),
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// Reads the owner's internal stream into the session's ring until it fails, the session is stopped, or nobody
/// watched for the linger time.
async fn follow(
    link: &ClusterLink,
    inner: &Inner,
    session: &Session,
    peer: &InstanceInfo,
    channel: i64,
    key: &str,
) -> Followed {
    let settings = &inner.settings;
    let url = format!("{}/internal/v1/live/{channel}", peer.url);
    let request = inner
        .client
        .get(&url)
        .header(SECRET_HEADER, link.secret.expose())
        .header(INSTANCE_HEADER, link.instance_id())
        .header(CHANNEL_HEADER, key)
        .send();
    let resp = match tokio::time::timeout(settings.open_timeout, request).await {
        Err(_) => return Followed::Failed(format!("instance {} did not answer in time", peer.id), false),
        Ok(Err(e)) => {
            let why = tunerpool_upstream::http::describe_reqwest_error(&e, &[]);
            return Followed::Failed(format!("cannot reach instance {}: {why}", peer.id), false);
        }
        Ok(Ok(r)) => r,
    };
    if !resp.status().is_success() {
        return Followed::Failed(format!("instance {} answered HTTP {}", peer.id, resp.status().as_u16()), false);
    }
    tracing::info!(session = session.id, channel, owner = %peer.id, "cluster: following the owner's stream");
    let mut body = resp.bytes_stream();
    let mut ring_feed = crate::session::RingFeed::new(settings);
    let mut delivered = false;
    let mut feed = |data: &[u8], flush: bool| {
        ring_feed.feed(&session.ring, data, std::time::Instant::now(), flush, |_| {});
    };
    let mut flush_tick = tokio::time::interval(settings.chunk_delay);
    flush_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A follower keeps nothing worth lingering for (the owner lingers with the provider connection): it leaves at
    // once, so the owner's session turns idle and its slot can be taken for another channel sooner. The short
    // grace covers a first viewer still joining.
    let grace = settings.linger.min(FOLLOWER_LINGER);
    let mut linger = Linger::new(session.idle(), grace, tokio::time::Instant::now());
    let mut last_data = tokio::time::Instant::now();
    loop {
        let stall_at = last_data + settings.stall_timeout;
        tokio::select! {
            _ = session.stop.cancelled() => return Followed::Stopped,
            _ = session.viewers_changed() => {
                match linger.viewers_changed(session.idle(), || grace, tokio::time::Instant::now()) {
                    Watched::Lingering => session.set_state(State::Lingering),
                    Watched::Running if session.has_run() => session.set_state(State::Running),
                    Watched::Running => {}
                }
            }
            _ = linger.run_out(), if linger.deadline().is_some() => {
                if linger.expired(session.idle()) {
                    return Followed::Idle;
                }
            }
            _ = tokio::time::sleep_until(stall_at) => {
                return Followed::Failed(format!("instance {}'s stream stalled", peer.id), delivered);
            }
            _ = flush_tick.tick() => feed(&[], false),
            next = body.next() => match next {
                Some(Ok(data)) => {
                    last_data = tokio::time::Instant::now();
                    feed(&data, !delivered);
                    if !delivered {
                        delivered = true;
                        session.mark_running();
                        session.set_state(if session.idle() { State::Lingering } else { State::Running });
                    }
                }
                Some(Err(e)) => {
                    let why = tunerpool_upstream::http::describe_reqwest_error(&e, &[]);
                    return Followed::Failed(format!("instance {}'s stream broke: {why}", peer.id), delivered);
                }
                None => return Followed::Failed(format!("instance {} ended the stream", peer.id), delivered),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::channel_key;

    #[test]
    fn channel_keys_are_stable_and_tell_channels_apart() {
        // Fixed: every instance, whatever its build, must derive the same key.
        assert_eq!(channel_key(5, "BBC One"), channel_key(5, "BBC One"));
        assert_eq!(channel_key(1, ""), "1-cbf29ce484222325");
        assert_ne!(channel_key(5, "BBC One"), channel_key(5, "CNN"));
        assert_ne!(channel_key(5, "BBC One"), channel_key(6, "BBC One"));
    }
}
