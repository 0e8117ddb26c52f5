//! The relay: which channels are live, joining them, starting them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::Notify;
use tunerpool_domain::{Level, NewEvent};
use tunerpool_ledger::{AnyLedger, Ledger};

use crate::catalog::{Catalog, LookupError};
use crate::metrics::{Refusal, RelayMetrics};
use crate::ring::Next;
use crate::session::{run, Session, SessionInfo, ViewerStats};
use crate::settings::RelaySettings;
use crate::source::Claim;
use crate::users::{UserRefusal, UserStreams, UserTicket, Viewer};

/// A live session's identity: the channel, and the transcoding profile (`None`: the channel as it comes).
pub(crate) type SessionKey = (i64, Option<String>);

fn key_of(session: &Session) -> SessionKey {
    (session.channel_id, session.profile.clone())
}

/// Shared by the relay handle and every session task.
pub(crate) struct Inner {
    pub catalog: Arc<dyn Catalog>,
    pub ledger: Arc<AnyLedger>,
    pub client: reqwest::Client,
    pub settings: RelaySettings,
    pub metrics: RelayMetrics,
    /// The live sessions: each channel's own, and its transcodes (by profile).
    sessions: Mutex<HashMap<SessionKey, Arc<Session>>>,
    /// Movie and episode downloads in progress.
    pub transfers: crate::vod::Transfers,
    /// Ids of sessions, viewers and transfers.
    pub next_id: AtomicU64,
    /// Signalled whenever a session gives a slot back, so that a request
    /// waiting for capacity retries at once.
    pub slot_released: Notify,
    /// Downstream users' own limits.
    pub users: Arc<UserStreams>,
    /// Account id → when an idle session on it was stopped to free its slot (see [`Inner::preempt_for`]).
    taken_over: Mutex<HashMap<i64, std::time::Instant>>,
    /// Always-on channels: channel id → the token that turns its keeper off.
    always_on: Mutex<HashMap<i64, tokio_util::sync::CancellationToken>>,
    /// Probes holding (or getting) a slot: a viewer's request that needs it stops them.
    pub probes: crate::probe::RunningProbes,
    /// The probe scheduler's state, and its wake-up when the API asks for probes.
    pub schedule: Mutex<crate::probe::Schedule>,
    pub probe_requested: Notify,
    /// Cluster mode: this instance's membership ([`Relay::set_cluster`]); unset on a single instance.
    pub cluster: std::sync::OnceLock<Arc<crate::cluster::ClusterLink>>,
}

impl Inner {
    /// This instance's cluster membership, when in cluster mode.
    pub(crate) fn cluster(&self) -> Option<Arc<crate::cluster::ClusterLink>> {
        self.cluster.get().cloned()
    }

    /// Removes a finished session from the map (if it is still the one there).
    pub(crate) fn forget(&self, session: &Arc<Session>) {
        let mut map = self.sessions.lock();
        let key = key_of(session);
        if map.get(&key).is_some_and(|s| Arc::ptr_eq(s, session)) {
            map.remove(&key);
        }
    }

    /// Stops what holds a slot on one of `accounts` that a request may take,
    /// and waits until they have given their slots back. Returns how many
    /// were stopped. First probes and sessions nobody watches (lingering or
    /// warm ones, and always-on ones while `relay.always_on_yields`): this is
    /// what makes zapping on a 1-connection account work — the old channel's
    /// lingering session yields at once — and keeps a probe from ever
    /// delaying a viewer. Only when there is none, and with `pool.preempt`, a
    /// request of `priority` stops the one session of lowest priority below
    /// its own (a session's priority is its viewers' highest); its viewers'
    /// streams end and an event says so.
    pub(crate) async fn preempt_for(
        &self,
        accounts: &std::collections::HashSet<i64>,
        except: u64,
        priority: Option<u8>,
    ) -> usize {
        let probed = self.stop_probes(accounts).await;
        let yields = self.settings.always_on_yields;
        let holds = |s: &Session| {
            s.id != except && s.account_id().is_some_and(|a| accounts.contains(&a)) && (yields || !s.is_pinned())
        };
        let mut idle: Vec<Arc<Session>> =
            self.sessions.lock().values().filter(|s| holds(s) && s.viewer_count() == 0).cloned().collect();
        for s in &idle {
            tracing::info!(session = s.id, channel = %s.channel_name, "stopping an idle session: its slot is needed");
            s.stop.cancel();
        }
        if let Some(p) = priority.filter(|_| idle.is_empty() && probed.is_empty() && self.settings.preempt) {
            let victim = self
                .sessions
                .lock()
                .values()
                .filter(|s| holds(s) && !s.is_stopping())
                .map(|s| (s.priority(), s.clone()))
                .filter(|(sp, _)| *sp < p)
                // The lowest priority; among equals the newest session (the fewest minutes of viewing lost).
                .min_by_key(|(sp, s)| (*sp, std::cmp::Reverse(s.id)));
            if let Some((sp, s)) = victim {
                let viewers = s.viewer_count();
                let msg = format!(
                    "channel {}: stopped for a viewer of priority {p} (its {viewers} viewer(s) had priority {sp} at most)",
                    s.channel_name
                );
                tracing::warn!(session = s.id, channel = %s.channel_name, priority = p, session_priority = sp,
                    viewers, "preempting a session for a viewer of higher priority");
                let mut event = NewEvent::new(Level::Warn, "preempted", msg).channel(s.channel_id);
                if let Some(a) = s.account_id() {
                    event = event.account(a);
                }
                self.catalog.note(event);
                s.stop.cancel();
                idle.push(s);
            }
        }
        let mut freed = probed;
        for s in &idle {
            let account = s.account_id();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), s.closed()).await;
            freed.extend(account);
        }
        if !freed.is_empty() {
            let mut taken = self.taken_over.lock();
            let now = std::time::Instant::now();
            taken.retain(|_, at| now.duration_since(*at) < self.takeover_window());
            for account in &freed {
                taken.insert(*account, now);
            }
        }
        if !idle.is_empty() || !freed.is_empty() {
            // The provider may count the closed connections a little longer: let the ledger's release
            // cool-down pass before the caller asks again.
            tokio::time::sleep(self.ledger.release_cooldown()).await;
        }
        idle.len().max(freed.len())
    }

    /// How long after a takeover a limit refusal on that account still means "not noticed the close yet".
    fn takeover_window(&self) -> std::time::Duration {
        self.ledger.release_cooldown() + self.settings.acquire_wait
    }

    /// Whether an idle session on `account` was stopped for its slot within the takeover window.
    pub(crate) fn taken_over_recently(&self, account: i64) -> bool {
        let taken = self.taken_over.lock();
        taken.get(&account).is_some_and(|at| at.elapsed() < self.takeover_window())
    }
}

/// Why a viewer could not be served.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The channel's session has `relay.max_viewers_per_session` viewers (503).
    #[error("{0}")]
    SessionFull(String),
    #[error("no channel {0}")]
    UnknownChannel(i64),
    /// No slot free (503); the message lists every account's usage.
    #[error("{0}")]
    NoCapacity(String),
    /// Every upstream failed (502).
    #[error("{0}")]
    Upstream(String),
    /// The channel's session was being stopped as the viewer joined, and the next one did not start either
    /// (503: trying again shortly works).
    #[error("{0}")]
    Restarting(String),
    /// The downstream user is at its own connection limit (policy refuse).
    #[error("{0}")]
    UserLimit(String),
    /// No transcoding profile of that name (400).
    #[error("no transcoding profile {0:?} (see GET /api/v1/profiles)")]
    UnknownProfile(String),
    #[error("{0}")]
    Internal(String),
}

/// The relay: one session per live channel, shared by all its viewers.
/// Cheap to clone.
#[derive(Clone)]
pub struct Relay {
    inner: Arc<Inner>,
}

/// The body of one viewer's response: chunks from the session's ring, at
/// this viewer's pace. Dropping it leaves the session.
///
/// Two ways to read it: as a [`Stream`] of chunks (tests, the transcoder, any
/// HTTP body), or, for a server that writes the socket itself, as a
/// [`ViewerFeed`] ([`ViewerStream::into_feed`]) that hands out every chunk
/// ready at a wake-up in one batch, so one write can send them all.
pub struct ViewerStream {
    pub session_id: u64,
    /// The feed until the stream is first polled as a [`Stream`].
    feed: Option<ViewerFeed>,
    /// The feed as a stream, once polled as one.
    polled: Option<ChunkStream>,
}

/// A viewer's chunks as a boxed [`Stream`].
type ChunkStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

impl ViewerStream {
    /// This viewer's chunks as a [`ViewerFeed`], if the stream was not yet
    /// polled as a [`Stream`] (then `None`: the stream has the feed).
    pub fn into_feed(mut self) -> Option<ViewerFeed> {
        self.feed.take()
    }
}

impl Stream for ViewerStream {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        if self.polled.is_none() {
            let Some(feed) = self.feed.take() else {
                return std::task::Poll::Ready(None);
            };
            let stream =
                futures_util::stream::unfold(
                    feed,
                    |mut feed| async move { feed.next_chunk().await.map(|b| (Ok(b), feed)) },
                );
            self.polled = Some(Box::pin(stream));
        }
        match self.polled.as_mut() {
            Some(s) => s.as_mut().poll_next(cx),
            None => std::task::Poll::Ready(None),
        }
    }
}

/// Bytes a viewer sends before it adds them to its upstream's shared
/// `viewer_sent` counter (and whenever it ends): one contended atomic
/// addition per ~256 KiB per viewer instead of one per chunk. The counter
/// lags by at most this much per viewer.
const SENT_FLUSH: u64 = 256 << 10;

/// One viewer's chunks from its session's ring, at this viewer's pace:
/// what a [`ViewerStream`] reads from. It exists so that a server writing the
/// viewer's socket itself can take every chunk ready at a wake-up at once
/// ([`ViewerFeed::next_batch`]) and send them in one write, with the per-chunk
/// bookkeeping (the viewer's counters, the upstream's `viewer_sent`) done once
/// per batch. Dropping it leaves the session.
pub struct ViewerFeed {
    reader: crate::ring::Reader,
    membership: Membership,
    stats: Arc<ViewerStats>,
    metrics: RelayMetrics,
    max_jumps: u64,
    /// See [`RelaySettings::viewer_stall`](crate::settings::RelaySettings::viewer_stall).
    stall_limit: std::time::Duration,
    /// Bytes sent, counted for the session's current upstream; re-read when
    /// the session's counters generation moves on (a failover).
    sent: prometheus_client::metrics::counter::Counter,
    sent_gen: u64,
    /// Bytes handed out and not yet added to `sent`.
    unsent: u64,
    /// The downstream user's claim, if the viewer is one; a revoked claim
    /// (a newer stream of the same user replaced this one) ends the stream.
    ticket: Option<UserTicket>,
    /// The stream ended (closed, revoked or dropped as too slow): every call answers `None` from now on.
    ended: bool,
}

impl ViewerFeed {
    /// The next chunk, waiting for it; `None` once the stream has ended.
    pub async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if self.ended {
                return None;
            }
            let next = self.reader.next().await;
            if let Some(b) = self.take(next) {
                self.count(b.len() as u64);
                return Some(b);
            }
        }
    }

    /// Waits for the next chunk, then appends it and every further chunk
    /// already buffered (at most `max` in all) to `out`; the bytes appended,
    /// 0 once the stream has ended. One call per wake-up: the chunks a slow
    /// write let pile up go out together.
    pub async fn next_batch(&mut self, out: &mut Vec<Bytes>, max: usize) -> u64 {
        let Some(first) = self.next_uncounted().await else {
            return 0;
        };
        let mut bytes = first.len() as u64;
        out.push(first);
        while out.len() < max.max(1) && !self.ended {
            let Some(next) = self.reader.try_next_now() else {
                break;
            };
            if let Some(b) = self.take(next) {
                bytes += b.len() as u64;
                out.push(b);
            }
        }
        self.count(bytes);
        bytes
    }

    /// How long the viewer's connection may take no byte before it is
    /// dropped ([`ViewerFeed::drop_stalled`]).
    pub fn stall_limit(&self) -> std::time::Duration {
        self.stall_limit
    }

    /// Ends the stream of a viewer whose connection took no byte for
    /// [`ViewerFeed::stall_limit`], counted as a drop.
    pub fn drop_stalled(&mut self) {
        let (session, viewer) = (self.membership.session.id, self.membership.viewer);
        tracing::info!(
            session,
            viewer,
            stalled_s = self.stall_limit.as_secs_f64(),
            "dropping a viewer that stopped reading"
        );
        self.metrics.drops.inc();
        self.ended = true;
    }

    async fn next_uncounted(&mut self) -> Option<Bytes> {
        loop {
            if self.ended {
                return None;
            }
            let next = self.reader.next().await;
            if let Some(b) = self.take(next) {
                return Some(b);
            }
        }
    }

    /// The chunk in `next`, if it is one to send; ends the feed when the
    /// stream is over for this viewer.
    fn take(&mut self, next: Next) -> Option<Bytes> {
        if self.ticket.as_ref().is_some_and(UserTicket::is_revoked) {
            self.ended = true;
            return None;
        }
        match next {
            Next::Chunk(b) => Some(b),
            Next::Jumped { skipped_bytes } => {
                let jumps = self.stats.jumps.fetch_add(1, Ordering::Relaxed) + 1;
                self.metrics.jumps.inc();
                let (session, viewer) = (self.membership.session.id, self.membership.viewer);
                tracing::debug!(session, viewer, skipped_bytes, jumps, "slow viewer jumped to the live edge");
                if jumps > self.max_jumps {
                    tracing::info!(session, viewer, jumps, "dropping a viewer that cannot keep up");
                    self.metrics.drops.inc();
                    self.ended = true;
                }
                None
            }
            Next::Closed => {
                self.ended = true;
                None
            }
        }
    }

    /// Counts `bytes` handed out: the viewer's own counter now, the
    /// upstream's shared one in steps of [`SENT_FLUSH`].
    fn count(&mut self, bytes: u64) {
        // The first chunk goes to the shared counter at once, so that a running viewer always shows there.
        let first = self.stats.bytes.fetch_add(bytes, Ordering::Relaxed) == 0;
        let gen = self.membership.session.counters_gen();
        if gen != self.sent_gen {
            // The bytes so far came from the previous upstream.
            self.flush_sent();
            (self.sent, self.sent_gen) = (self.membership.session.counters().sent, gen);
        }
        self.unsent += bytes;
        if first || self.unsent >= SENT_FLUSH {
            self.flush_sent();
        }
    }

    fn flush_sent(&mut self) {
        if self.unsent > 0 {
            self.sent.inc_by(self.unsent);
            self.unsent = 0;
        }
    }
}

impl Drop for ViewerFeed {
    fn drop(&mut self) {
        self.flush_sent();
    }
}

/// Leaves the session when the viewer's stream is dropped.
pub(crate) struct Membership {
    pub session: Arc<Session>,
    pub viewer: u64,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.session.remove_viewer(self.viewer);
    }
}

impl Relay {
    /// A relay reading channels and accounts from `catalog` (the store, in
    /// the gateway) and leasing slots from `ledger`.
    pub fn new(
        catalog: Arc<dyn Catalog>,
        ledger: Arc<AnyLedger>,
        client: reqwest::Client,
        settings: RelaySettings,
    ) -> Relay {
        let metrics = RelayMetrics::default();
        Relay {
            inner: Arc::new(Inner {
                catalog,
                ledger,
                client,
                settings,
                metrics,
                sessions: Mutex::new(HashMap::new()),
                transfers: Arc::default(),
                next_id: AtomicU64::new(1),
                slot_released: Notify::new(),
                users: Arc::default(),
                taken_over: Mutex::default(),
                always_on: Mutex::default(),
                probes: Mutex::default(),
                schedule: Mutex::default(),
                probe_requested: Notify::new(),
                cluster: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Joins the channel's session, starting one if needed, and returns this
    /// viewer's stream once the session runs. A downstream user at its own
    /// limit first has its oldest stream replaced, or is refused, as the
    /// policy says.
    pub async fn watch(&self, channel_id: i64, viewer: Viewer) -> Result<ViewerStream, WatchError> {
        self.watch_as(channel_id, None, viewer).await
    }

    /// [`Relay::watch`], transcoded with `profile` when one is named: the viewer joins that profile's shared
    /// transcode of the channel (started if needed, fed from the channel's own session).
    pub async fn watch_as(
        &self,
        channel_id: i64,
        profile: Option<&str>,
        viewer: Viewer,
    ) -> Result<ViewerStream, WatchError> {
        self.watch_claimed(channel_id, profile, viewer, false).await
    }

    /// A peer instance's internal request (cluster mode): joins this instance's session of the channel like any
    /// viewer — no user, no second upstream — but only if that session owns the channel (a session started for
    /// it must own it, see [`crate::cluster`]); one that follows another instance refuses, so a stream is never
    /// forwarded twice.
    ///
    /// `key` is the channel's key as the peer derived it ([`crate::cluster::channel_key`]): a session of
    /// another channel under the same id (catalogs that differ) refuses.
    pub async fn watch_peer(
        &self,
        channel_id: i64,
        key: Option<&str>,
        peer: &str,
    ) -> Result<ViewerStream, crate::cluster::PeerRefusal> {
        use crate::cluster::{PeerRefusal, Role};
        if self.cluster().is_none() {
            return Err(PeerRefusal::NotClustered);
        }
        let follows = |s: &Session| match &*s.role.lock() {
            Role::Following(owner) => Some(owner.clone()),
            _ => None,
        };
        let refuse = |owner: String| {
            PeerRefusal::NotOwner(format!("instance {owner} owns channel {channel_id}; this instance only relays it"))
        };
        if let Some(owner) = self.live_session(channel_id).and_then(|s| follows(&s)) {
            return Err(refuse(owner));
        }
        // Checked before anything starts: the same id for another channel (catalogs that differ) is refused.
        if let Some(key) = key {
            let channel = match self.inner.catalog.channel(channel_id).await {
                Ok(c) => c,
                Err(LookupError::NotFound { .. }) => return Err(WatchError::UnknownChannel(channel_id).into()),
                Err(e) => return Err(WatchError::Internal(e.to_string()).into()),
            };
            if crate::cluster::channel_key(channel.id, &channel.name) != key {
                return Err(PeerRefusal::NotOwner(format!(
                    "channel {channel_id} here is {:?}, not the peer's channel: the catalogs differ",
                    channel.name
                )));
            }
        }
        let viewer = Viewer { address: format!("instance {peer}"), user: None };
        let stream = self.watch_claimed(channel_id, None, viewer, true).await?;
        // Joined while it was still settling who owns the channel, and it follows another instance: refused.
        let joined = self.live_session(channel_id).filter(|s| s.id == stream.session_id);
        if let Some(owner) = joined.and_then(|s| follows(&s)) {
            return Err(refuse(owner));
        }
        Ok(stream)
    }

    /// This instance's cluster membership, when in cluster mode.
    pub fn cluster(&self) -> Option<Arc<crate::cluster::ClusterLink>> {
        self.inner.cluster()
    }

    /// Turns cluster mode on (once, at start, before any session): channels' sessions are owned by one instance
    /// of the cluster and followed by the others.
    pub fn set_cluster(&self, link: crate::cluster::ClusterLink) {
        if self.inner.cluster.set(Arc::new(link)).is_err() {
            tracing::warn!("cluster mode was already set; keeping the first");
        }
    }

    async fn watch_claimed(
        &self,
        channel_id: i64,
        profile: Option<&str>,
        viewer: Viewer,
        from_peer: bool,
    ) -> Result<ViewerStream, WatchError> {
        if let Some(name) = profile.filter(|p| self.inner.settings.transcode.profile(p).is_none()) {
            return Err(WatchError::UnknownProfile(name.to_string()));
        }
        let ticket = self.claim_user_slot(&viewer, || format!("channel {channel_id}")).await?;
        let priority = viewer.priority();
        let claim = Claim { from_peer, ..Claim::viewer(&self.inner.settings, priority) };
        let Viewer { address, user } = viewer;
        let user = user.map(|u| u.name);
        let cap = self.inner.settings.max_viewers_per_session;
        let key = (channel_id, profile.map(str::to_string));
        let (session, joined) = self
            .join_key(&key, claim, |session| {
                let viewer = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
                let stats = session.add_viewer_within(viewer, address.clone(), user.clone(), priority, cap)?;
                Some((Membership { session: session.clone(), viewer }, stats))
            })
            .await?;
        let Some((membership, stats)) = joined else {
            self.inner.metrics.refused(Refusal::SessionFull);
            let why = format!("channel {} has its maximum of {cap} viewers; try again later", session.channel_name);
            self.inner.catalog.note(NewEvent::new(Level::Warn, "refused", why.clone()).channel(channel_id));
            return Err(WatchError::SessionFull(why));
        };
        session.log_stream_started(membership.viewer);
        self.inner.metrics.viewed(channel_id);
        if let Some(t) = &ticket {
            // Replaced by the same user's newer stream: leave the session at
            // once, so that it can give its slot to that stream.
            let (s, v) = (session.clone(), membership.viewer);
            t.on_revoke(move || s.remove_viewer(v));
        }
        // Starts with PAT, PMT and a keyframe, whether the channel runs (the latest keyframe in the buffer) or the
        // viewer is its first (the next keyframe, within one GOP): a player can decode from its first byte.
        let reader = session.ring.subscribe_at_keyframe(self.inner.settings.keyframe_wait);
        let max_jumps = self.inner.settings.max_jumps as u64;
        let stall_limit = self.inner.settings.viewer_stall;
        let metrics = self.inner.metrics.clone();
        // Everything the stream needs travels in its state: nothing is
        // cloned per chunk.
        let (sent, sent_gen) = (session.counters().sent, session.counters_gen());
        let feed = ViewerFeed {
            reader,
            membership,
            stats,
            metrics,
            max_jumps,
            stall_limit,
            sent,
            sent_gen,
            unsent: 0,
            ticket,
            ended: false,
        };
        Ok(ViewerStream { session_id: session.id, feed: Some(feed), polled: None })
    }

    /// The channel's session (started if needed) once it runs. `enter`
    /// registers the caller's interest before the wait, so that a starting
    /// session does not consider itself idle. A session being stopped (its
    /// linger ran out, it was preempted for its slot, or stopped by the API)
    /// is never joined: a new one is started; and if the session stops or
    /// closes under the caller before it runs, the caller joins the next one
    /// (twice at most, then a 503), never the stopped one's "stopped".
    pub(crate) async fn join<T>(
        &self,
        channel_id: i64,
        claim: Claim,
        enter: impl FnMut(&Arc<Session>) -> T,
    ) -> Result<(Arc<Session>, T), WatchError> {
        self.join_key(&(channel_id, None), claim, enter).await
    }

    /// [`Relay::join`] for a channel's own session or one of its transcodes.
    pub(crate) async fn join_key<T>(
        &self,
        key: &SessionKey,
        claim: Claim,
        mut enter: impl FnMut(&Arc<Session>) -> T,
    ) -> Result<(Arc<Session>, T), WatchError> {
        const ATTEMPTS: u32 = 3;
        let channel_id = key.0;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let session = self.session_for(key, claim).await?;
            let entered = enter(&session);
            let outcome = session.wait_running().await;
            // Stopped (or closed after running, e.g. its linger ran out) under the caller: not an answer about
            // the channel. A session that failed or found no capacity on its own is one.
            let stopped_under = match &outcome {
                Ok(()) => session.is_stopping(),
                Err((no_capacity, _)) => !no_capacity && session.stop.is_cancelled(),
            };
            if stopped_under {
                drop(entered);
                if attempts < ATTEMPTS {
                    continue;
                }
                self.inner.metrics.refused(Refusal::NoCapacity);
                return Err(WatchError::Restarting(format!(
                    "channel {channel_id} is restarting (its session was stopped as you joined); try again"
                )));
            }
            match outcome {
                Ok(()) => return Ok((session, entered)),
                Err((true, why)) => {
                    self.inner.metrics.refused(Refusal::NoCapacity);
                    return Err(WatchError::NoCapacity(why));
                }
                Err((false, why)) => {
                    self.inner.metrics.refused(Refusal::UpstreamFailed);
                    return Err(WatchError::Upstream(why));
                }
            }
        }
    }

    /// Claims one of the downstream user's own stream slots (none for an
    /// anonymous viewer).
    pub(crate) async fn claim_user_slot(
        &self,
        viewer: &Viewer,
        what: impl FnOnce() -> String,
    ) -> Result<Option<UserTicket>, WatchError> {
        let Some(quota) = &viewer.user else { return Ok(None) };
        let s = &self.inner.settings;
        let cluster = self.inner.cluster();
        let directory = cluster.as_ref().map(|c| c.directory());
        match self.inner.users.claim(quota, s.user_limit_policy, s.acquire_wait, &what(), directory).await {
            Ok(t) => Ok(Some(t)),
            Err(UserRefusal::AtLimit(why)) => {
                self.inner.metrics.refused(Refusal::UserLimit);
                self.inner.catalog.note(NewEvent::new(Level::Warn, "refused", why.clone()));
                Err(WatchError::UserLimit(why))
            }
            Err(UserRefusal::Unavailable(why)) => {
                tracing::warn!(user = %quota.name, reason = %why, "refused: the user's limit cannot be counted");
                self.inner.metrics.refused(Refusal::NoCapacity);
                Err(WatchError::Restarting(why))
            }
        }
    }

    /// How many streams a downstream user watches now on this instance.
    pub fn user_connections(&self, user_id: i64) -> usize {
        self.inner.users.count(user_id)
    }

    /// How many streams a downstream user (its id here, its name in the cluster) watches now: on every instance
    /// in cluster mode when it has a limit of its own (`limited`: its leases in Redis; this instance's count if
    /// Redis does not answer), else here (a user without a limit takes no leases).
    pub async fn user_connections_everywhere(&self, user_id: i64, name: &str, limited: bool) -> usize {
        let local = self.inner.users.count(user_id);
        let Some(link) = self.inner.cluster().filter(|_| limited) else { return local };
        match link.directory().user_streams(name).await {
            Ok(n) => n as usize,
            Err(e) => {
                tracing::warn!(user = %name, error = %e, "cannot read the user's streams across the cluster");
                local
            }
        }
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// A handle for a session task that needs the relay's own calls (a transcode joins its channel).
    pub(crate) fn from_inner(inner: Arc<Inner>) -> Relay {
        Relay { inner }
    }

    /// The live session of `key`, or a new one started for `claim` (a transcode within the transcoding caps).
    async fn session_for(&self, key: &SessionKey, claim: Claim) -> Result<Arc<Session>, WatchError> {
        if let Some(s) = self.live_session_of(key) {
            return Ok(s);
        }
        let channel_id = key.0;
        let channel = match self.inner.catalog.channel(channel_id).await {
            Ok(c) => c,
            Err(LookupError::NotFound { .. }) => return Err(WatchError::UnknownChannel(channel_id)),
            Err(e) => return Err(WatchError::Internal(e.to_string())),
        };
        let transcode = &self.inner.settings.transcode;
        let profile = match &key.1 {
            None => None,
            Some(name) => Some(transcode.profile(name).ok_or_else(|| WatchError::UnknownProfile(name.clone()))?),
        };
        let mut map = self.inner.sessions.lock();
        if let Some(s) = map.get(key).filter(|s| !s.is_stopping()) {
            return Ok(s.clone());
        }
        if let Some(p) = profile {
            let running = |only: Option<&str>| {
                map.values()
                    .filter(|s| !s.is_stopping())
                    .filter(|s| s.profile.is_some() && only.is_none_or(|n| s.profile.as_deref() == Some(n)))
                    .count()
            };
            if running(None) >= transcode.max_running as usize {
                self.inner.metrics.refused(Refusal::NoCapacity);
                return Err(WatchError::NoCapacity(format!(
                    "every transcoder is busy: {} of {} running (transcode.max_running)",
                    running(None),
                    transcode.max_running
                )));
            }
            if p.max_running > 0 && running(Some(&p.name)) >= p.max_running as usize {
                self.inner.metrics.refused(Refusal::NoCapacity);
                return Err(WatchError::NoCapacity(format!(
                    "profile {} is at its maximum of {} transcodes",
                    p.name, p.max_running
                )));
            }
        }
        // A session being stopped stays out of the map from here on (it removes itself only if it is still the
        // one there): the new one takes its place.
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let buffer = self.inner.settings.ring_sizing();
        let s = Session::new(id, &channel, buffer, self.inner.metrics.clone(), key.1.clone(), claim);
        map.insert(key.clone(), s.clone());
        match profile {
            None => tokio::spawn(run(s.clone(), self.inner.clone(), channel)),
            Some(p) => tokio::spawn(crate::transcode::run(s.clone(), self.inner.clone(), channel, p.clone())),
        };
        Ok(s)
    }

    /// The channel's own live session.
    pub(crate) fn live_session(&self, channel_id: i64) -> Option<Arc<Session>> {
        self.live_session_of(&(channel_id, None))
    }

    fn live_session_of(&self, key: &SessionKey) -> Option<Arc<Session>> {
        self.inner.sessions.lock().get(key).filter(|s| !s.is_stopping()).cloned()
    }

    /// Every live session and every download in progress.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let mut v: Vec<SessionInfo> = self.inner.sessions.lock().values().map(|s| s.info()).collect();
        v.extend(self.inner.transfers.lock().values().map(|t| t.info()));
        v.sort_by_key(|s| s.id);
        v
    }

    /// Stops a session (its viewers' streams end) or a download. False if
    /// there is none with that id.
    pub fn stop(&self, session_id: u64) -> bool {
        let map = self.inner.sessions.lock();
        if let Some(s) = map.values().find(|s| s.id == session_id) {
            s.stop.cancel();
            return true;
        }
        drop(map);
        match self.inner.transfers.lock().get(&session_id) {
            Some(t) => {
                t.stop.cancel();
                true
            }
            None => false,
        }
    }

    /// Stops the session `session` of the peer instance `instance` (cluster mode): asks it on its internal
    /// endpoint (`DELETE /internal/v1/sessions/{session}`, the cluster secret), where it stops the session as
    /// [`Relay::stop`] does here. `Ok` once the peer answered that it stopped it.
    pub async fn stop_on_peer(&self, instance: &str, session: u64) -> Result<(), crate::cluster::PeerStopError> {
        use crate::cluster::{PeerStopError, INSTANCE_HEADER, PEER_STOP_TIMEOUT, SECRET_HEADER};
        let link = self.cluster().ok_or(PeerStopError::NotClustered)?;
        let peer = match link.directory().instance(instance).await {
            Ok(Some(peer)) => peer,
            Ok(None) => return Err(PeerStopError::UnknownInstance(instance.to_owned())),
            Err(e) => return Err(PeerStopError::Coordination(e.to_string())),
        };
        let unreachable = |why: String| PeerStopError::Unreachable { instance: instance.to_owned(), session, why };
        let url = format!("{}{}", peer.url, crate::cluster::stop_path(session));
        let request = self
            .inner
            .client
            .delete(&url)
            .header(SECRET_HEADER, link.secret_header_value())
            .header(INSTANCE_HEADER, link.instance_id())
            .send();
        let answer = match tokio::time::timeout(PEER_STOP_TIMEOUT, request).await {
            Err(_) => return Err(unreachable(format!("no answer within {PEER_STOP_TIMEOUT:?}"))),
            Ok(Err(e)) => return Err(unreachable(tunerpool_upstream::http::describe_reqwest_error(&e, &[]))),
            Ok(Ok(answer)) => answer,
        };
        match answer.status().as_u16() {
            200..=299 => {
                tracing::info!(session, %instance, "cluster: a peer stopped its session at this instance's request");
                Ok(())
            }
            404 => Err(PeerStopError::NoSession { instance: instance.to_owned(), session }),
            other => Err(unreachable(format!("it answered HTTP {other}"))),
        }
    }

    /// The relay's metrics (the `/metrics` handler adds them to its registry).
    pub fn settings(&self) -> &RelaySettings {
        &self.inner.settings
    }

    /// The relay's counters.
    pub fn metrics(&self) -> &RelayMetrics {
        &self.inner.metrics
    }

    /// Keeps the channel's session running with no viewers (`on`), restarting
    /// it with backoff when it fails; or lets it linger and close like any
    /// other (`!on`). Called for every always-on channel at start-up and
    /// whenever the flag changes.
    pub fn set_always_on(&self, channel_id: i64, on: bool) {
        let mut map = self.inner.always_on.lock();
        match (on, map.contains_key(&channel_id)) {
            (true, false) => {
                let off = tokio_util::sync::CancellationToken::new();
                map.insert(channel_id, off.clone());
                tokio::spawn(keep_on(self.clone(), channel_id, off));
            }
            (false, true) => {
                if let Some(off) = map.remove(&channel_id) {
                    off.cancel();
                }
            }
            _ => {}
        }
    }

    /// The channels kept always on now.
    pub fn always_on(&self) -> Vec<i64> {
        let mut v: Vec<i64> = self.inner.always_on.lock().keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Stops every session (shutdown).
    pub fn stop_all(&self) {
        for off in self.inner.always_on.lock().drain().map(|(_, off)| off) {
            off.cancel();
        }
        for s in self.inner.sessions.lock().values() {
            s.stop.cancel();
        }
        for t in self.inner.transfers.lock().values() {
            t.stop.cancel();
        }
    }
}

/// The keeper of an always-on channel: starts its session (or pins the
/// running one) so that it stays with no viewers, and starts it again when
/// it ends, with a backoff from 1 s to 1 min (back to 1 s after a run of a
/// minute or more). Its starts never stop other sessions for a slot; the
/// sessions it keeps yield to viewers as idle ones (`always_on_yields`).
/// Turned off, it unpins the session, which then lingers and closes.
async fn keep_on(relay: Relay, channel_id: i64, off: tokio_util::sync::CancellationToken) {
    const FIRST: std::time::Duration = std::time::Duration::from_secs(1);
    const MOST: std::time::Duration = std::time::Duration::from_secs(60);
    let claim = Claim { reserve: 0, priority: 0, preempts: false, from_peer: false };
    let mut backoff = FIRST;
    tracing::info!(channel = channel_id, "always on: keeping the channel's session running");
    while !off.is_cancelled() {
        match relay.session_for(&(channel_id, None), claim).await {
            Ok(session) => {
                session.pin(true);
                let started = std::time::Instant::now();
                tokio::select! {
                    _ = off.cancelled() => {
                        session.pin(false);
                        break;
                    }
                    _ = session.closed() => {}
                }
                if started.elapsed() >= MOST {
                    backoff = FIRST;
                }
                tracing::info!(channel = channel_id, state = ?session.state(), retry_in = ?backoff,
                    "always on: the channel's session ended; starting it again");
            }
            Err(WatchError::UnknownChannel(_)) => {
                tracing::info!(channel = channel_id, "always on: the channel is gone");
                relay.inner.always_on.lock().remove(&channel_id);
                return;
            }
            Err(e) => tracing::warn!(channel = channel_id, error = %e, "always on: cannot start the channel"),
        }
        tokio::select! {
            _ = off.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MOST);
    }
    tracing::info!(channel = channel_id, "always on: off; the session lingers and closes like any other");
}
