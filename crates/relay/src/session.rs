//! One live session: the single upstream reader of a channel, feeding the
//! shared [`Ring`] its viewers read from.
//!
//! The session task owns the lease and the upstream connection. It opens the
//! upstream, checks that the answer really is MPEG-TS (or an HLS playlist of
//! MPEG-TS segments, followed by [`crate::hls`]), aligns and chunks the
//! bytes and pushes them into the ring — never waiting for a viewer. On an
//! error, the end of the stream or a stall (from the first byte on: at most
//! `stall_timeout` without data) it reconnects the same account once (again
//! each time after `healthy_after` of streaming), then fails over to the next
//! candidate (next account, next source). Once every candidate has failed,
//! those that delivered media get another round, so a provider that cuts
//! every few seconds never ends the stream; the switch budget (`crate::retry`:
//! `max_switches` in a row, earned back by delivered media) and a backoff
//! for sources that deliver nothing bound the trying, and a channel whose
//! sources never deliver ends fast. Viewers stay connected throughout. When
//! the last viewer leaves it lingers, then closes and releases its slot — at
//! once if a new request needs that slot.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Instant, SystemTime};

use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::settings::RelaySettings;
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tunerpool_domain::{Channel, Level, NewEvent};

use crate::hls;
use crate::hls_out::HlsOut;
use crate::linger::{Linger, Watched};
use crate::measure::Measurer;
use crate::metrics::{AccountLabels, RelayMetrics, UpstreamCounters};
use crate::relay::Inner;
use crate::retry::{Backoff, SwitchBudget};
use crate::ring::Ring;
use crate::source::{acquire_waiting, AcquireError, Claim, Excluded, Media, Resolved};
use crate::ts::{probe, Aligner, Chunk, Chunker};

/// Where a session is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum State {
    Starting,
    Running,
    /// Between upstreams (failover in progress); viewers stay connected.
    Switching,
    /// No viewers; closes after the linger time unless one comes back.
    Lingering,
    /// Over; the reason says why.
    Closed(String),
}

/// What a viewer sees of one another viewer (sessions API).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ViewerInfo {
    pub id: u64,
    pub address: String,
    pub user: Option<String>,
    /// Unix seconds.
    pub since: u64,
    pub bytes: u64,
    pub jumps: u64,
}

/// Live numbers of one viewer, shared between its stream and the API.
#[derive(Debug, Default)]
pub(crate) struct ViewerStats {
    pub bytes: AtomicU64,
    pub jumps: AtomicU64,
}

pub(crate) struct ViewerEntry {
    pub address: String,
    pub user: Option<String>,
    /// The viewer's user's priority (0 without one).
    pub priority: u8,
    pub since: u64,
    pub stats: Arc<ViewerStats>,
}

/// The upstream currently used (sessions API).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct UpstreamInfo {
    pub provider: String,
    pub account: String,
    pub account_id: i64,
    /// The provider's stream being played (the catalog's stream id).
    pub stream_id: i64,
    /// With credentials masked.
    pub url: String,
}

/// A live session, shared by the manager, the task and the viewers.
pub struct Session {
    pub id: u64,
    pub channel_id: i64,
    pub channel_name: String,
    pub(crate) ring: Arc<Ring>,
    started_at: SystemTime,
    running_since: Mutex<Option<Instant>>,
    state: watch::Sender<State>,
    upstream: Mutex<Option<UpstreamInfo>>,
    failovers: AtomicU64,
    /// Set when the session could not start because every slot was taken.
    no_capacity: std::sync::atomic::AtomicBool,
    viewers: Mutex<HashMap<u64, ViewerEntry>>,
    viewer_count: AtomicUsize,
    viewers_changed: Notify,
    pub(crate) stop: CancellationToken,
    metrics: RelayMetrics,
    /// The byte counters of the current upstream, and a generation that
    /// changes with it (viewers re-read the counters only then).
    counters: Mutex<UpstreamCounters>,
    counters_gen: AtomicU64,
    /// The HLS output, made when the first HLS client asks.
    hls: Mutex<Option<Arc<HlsOut>>>,
    /// The transcoding profile, for a transcode ([`crate::transcode`]); `None` for the channel's own session.
    pub profile: Option<String>,
    /// A transcode's source: the channel's own session it reads as a viewer.
    source: Mutex<Option<Arc<Session>>>,
    /// A transcode's ffmpeg, for the sessions API.
    transcoder: Mutex<Option<crate::transcode::TranscoderInfo>>,
    /// What its starter claimed: the reserve its slot leaves free (for its failovers too), whether it may stop
    /// others for a slot.
    pub(crate) claim: Claim,
    /// Kept running with no viewers (an always-on channel): no linger.
    pinned: std::sync::atomic::AtomicBool,
    /// In cluster mode, which instance reads the provider for this channel: this one, or the peer it follows.
    pub(crate) role: Mutex<crate::cluster::Role>,
}

/// A snapshot for the sessions API.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionInfo {
    pub id: u64,
    /// `live`, or `movie`/`series` for a download.
    pub kind: &'static str,
    pub channel_id: i64,
    pub channel: String,
    #[serde(flatten)]
    pub state: State,
    pub upstream: Option<UpstreamInfo>,
    /// Upstream bytes since the session started.
    pub bytes: u64,
    /// Bytes in the session's shared buffer now (0 for a download).
    pub buffered_bytes: u64,
    /// What the shared buffer may hold now, sized from the measured bitrate and GOP (`relay.buffer_seconds`,
    /// within `relay.buffer_max`); 0 for a download.
    pub buffer_capacity_bytes: u64,
    /// Average upstream rate while running, bits per second.
    pub bitrate_bps: u64,
    pub failovers: u64,
    /// Unix seconds.
    pub started_at: u64,
    pub viewers: Vec<ViewerInfo>,
    /// The transcoding profile its viewers asked for; `null` for the channel as the provider sends it.
    pub profile: Option<String>,
    /// A transcode's ffmpeg: process id, restarts, last stderr lines.
    pub transcoder: Option<crate::transcode::TranscoderInfo>,
    /// In cluster mode, the instance whose session reads the provider: this one's id when it owns the channel,
    /// the peer's when it relays the owner's stream; `null` outside cluster mode (or before it is decided).
    pub owner: Option<String>,
}

pub(crate) fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Session {
    pub(crate) fn new(
        id: u64,
        channel: &Channel,
        buffer: crate::ring::RingSizing,
        metrics: RelayMetrics,
        profile: Option<String>,
        claim: Claim,
    ) -> Arc<Session> {
        let transcoder = profile.as_ref().map(|_| crate::transcode::TranscoderInfo::default());
        Arc::new(Session {
            id,
            channel_id: channel.id,
            channel_name: channel.name.clone(),
            ring: Ring::sized(buffer),
            started_at: SystemTime::now(),
            running_since: Mutex::new(None),
            state: watch::channel(State::Starting).0,
            upstream: Mutex::new(None),
            failovers: AtomicU64::new(0),
            no_capacity: std::sync::atomic::AtomicBool::new(false),
            viewers: Mutex::new(HashMap::new()),
            viewer_count: AtomicUsize::new(0),
            viewers_changed: Notify::new(),
            stop: CancellationToken::new(),
            metrics,
            counters: Mutex::default(),
            counters_gen: AtomicU64::new(0),
            hls: Mutex::new(None),
            profile,
            source: Mutex::new(None),
            transcoder: Mutex::new(transcoder),
            claim,
            pinned: std::sync::atomic::AtomicBool::new(false),
            role: Mutex::new(crate::cluster::Role::Undecided),
        })
    }

    /// Ends the session: its viewers' streams end, waiting requests retry, the relay forgets it.
    pub(crate) fn close(self: &Arc<Self>, inner: &Inner, reason: String) {
        self.ring.close();
        self.set_state(State::Closed(reason));
        inner.slot_released.notify_waiters();
        inner.forget(self);
    }

    /// It could not start because every slot was taken.
    pub(crate) fn set_no_capacity(&self) {
        self.no_capacity.store(true, Ordering::Release);
    }

    /// Whether it has run (delivered a keyframe) at some point.
    pub(crate) fn has_run(&self) -> bool {
        self.running_since.lock().is_some()
    }

    pub(crate) fn mark_running(&self) {
        self.running_since.lock().get_or_insert_with(Instant::now);
    }

    pub(crate) fn set_state_pub(&self, s: State) {
        self.set_state(s);
    }

    /// Resolves when a viewer joins or leaves.
    pub(crate) fn viewers_changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.viewers_changed.notified()
    }

    /// A transcode's source session.
    pub(crate) fn set_source(&self, source: Arc<Session>) {
        *self.source.lock() = Some(source);
    }

    pub(crate) fn transcoder_mut(&self, f: impl FnOnce(&mut crate::transcode::TranscoderInfo)) {
        if let Some(t) = self.transcoder.lock().as_mut() {
            f(t);
        }
    }

    pub(crate) fn transcoder_log(&self) -> Vec<String> {
        self.transcoder.lock().as_ref().map(|t| t.log.clone()).unwrap_or_default()
    }

    /// Keeps the session with no viewers (`true`: always on), or lets it
    /// linger and close like any other (`false`).
    pub(crate) fn pin(&self, on: bool) {
        self.pinned.store(on, Ordering::Release);
        // The pump re-reads whether it is idle.
        self.viewers_changed.notify_one();
    }

    pub(crate) fn is_pinned(&self) -> bool {
        self.pinned.load(Ordering::Acquire)
    }

    /// The highest priority among its viewers (0 with none): what a request
    /// must exceed to preempt it.
    pub(crate) fn priority(&self) -> u8 {
        self.viewers.lock().values().map(|v| v.priority).max().unwrap_or(0)
    }

    pub fn state(&self) -> State {
        self.state.borrow().clone()
    }

    pub(crate) fn is_closed(&self) -> bool {
        matches!(*self.state.borrow(), State::Closed(_))
    }

    /// Closed, or told to stop and on its way there: no new viewer may join it.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stop.is_cancelled() || self.is_closed()
    }

    pub fn viewer_count(&self) -> usize {
        self.viewer_count.load(Ordering::Acquire)
    }

    /// The account whose slot this session holds (a transcode: its source's), if running.
    pub(crate) fn account_id(&self) -> Option<i64> {
        let own = self.upstream.lock().as_ref().map(|u| u.account_id);
        own.or_else(|| self.source.lock().as_ref().and_then(|s| s.account_id()))
    }

    /// Waits until the session runs (Ok) or gives up: Err with whether it
    /// was for lack of capacity, and the reason.
    pub(crate) async fn wait_running(&self) -> Result<(), (bool, String)> {
        let mut rx = self.state.subscribe();
        loop {
            match &*rx.borrow_and_update() {
                State::Starting => {}
                State::Closed(reason) => return Err((self.no_capacity.load(Ordering::Acquire), reason.clone())),
                _ => return Ok(()),
            }
            if rx.changed().await.is_err() {
                return Err((false, "the session ended".into()));
            }
        }
    }

    /// Waits until the session is closed.
    pub(crate) async fn closed(&self) {
        let mut rx = self.state.subscribe();
        while !matches!(*rx.borrow_and_update(), State::Closed(_)) {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// The running HLS output, if any.
    pub(crate) fn hls_output(&self) -> Option<Arc<HlsOut>> {
        self.hls.lock().clone().filter(|o| !o.is_ended())
    }

    /// The running HLS output, or a new one (`true`: the caller starts its segmenter).
    pub(crate) fn hls_output_or_new(&self) -> (Arc<HlsOut>, bool) {
        let mut slot = self.hls.lock();
        match slot.as_ref().filter(|o| !o.is_ended()) {
            Some(o) => (o.clone(), false),
            None => {
                let o = HlsOut::new();
                *slot = Some(o.clone());
                (o, true)
            }
        }
    }

    pub(crate) fn add_viewer(&self, id: u64, address: String, user: Option<String>, priority: u8) -> Arc<ViewerStats> {
        self.add_viewer_within(id, address, user, priority, 0).expect("no cap")
    }

    /// Adds a viewer unless the session already has `cap` (0: no cap); checked
    /// and added under one lock, so concurrent joins never exceed it.
    pub(crate) fn add_viewer_within(
        &self,
        id: u64,
        address: String,
        user: Option<String>,
        priority: u8,
        cap: u32,
    ) -> Option<Arc<ViewerStats>> {
        let stats = Arc::new(ViewerStats::default());
        let entry = ViewerEntry { address, user, priority, since: unix(SystemTime::now()), stats: stats.clone() };
        let mut viewers = self.viewers.lock();
        if cap > 0 && viewers.len() >= cap as usize {
            return None;
        }
        viewers.insert(id, entry);
        drop(viewers);
        self.viewer_count.fetch_add(1, Ordering::AcqRel);
        self.viewers_changed.notify_one();
        Some(stats)
    }

    /// Whether nobody watches and nothing keeps it on: it lingers.
    pub(crate) fn idle(&self) -> bool {
        self.viewer_count() == 0 && !self.is_pinned()
    }

    pub(crate) fn remove_viewer(&self, id: u64) {
        let Some(gone) = self.viewers.lock().remove(&id) else { return };
        self.viewer_count.fetch_sub(1, Ordering::AcqRel);
        self.viewers_changed.notify_one();
        let (provider, account) = self.upstream_names();
        tracing::info!(target: "tunerpool::stream", session = self.id, viewer = id,
            user = gone.user.as_deref().unwrap_or("-"), channel = %self.channel_name, %provider, %account,
            client = %gone.address, bytes = gone.stats.bytes.load(Ordering::Relaxed),
            seconds = unix(SystemTime::now()).saturating_sub(gone.since), "stream stopped");
    }

    /// The operator's "who watches what, through which account" line, once
    /// the viewer's stream is served; "stream stopped" is its pair.
    pub(crate) fn log_stream_started(&self, id: u64) {
        let Some((user, client)) = self.viewers.lock().get(&id).map(|v| (v.user.clone(), v.address.clone())) else {
            return;
        };
        let (provider, account) = self.upstream_names();
        tracing::info!(target: "tunerpool::stream", session = self.id, viewer = id,
            user = user.as_deref().unwrap_or("-"), channel = %self.channel_name, %provider, %account, %client,
            "stream started");
    }

    /// The current upstream's provider and account names, `-` before there is one.
    fn upstream_names(&self) -> (String, String) {
        match &*self.upstream.lock() {
            Some(u) => (u.provider.clone(), u.account.clone()),
            None => ("-".into(), "-".into()),
        }
    }

    pub fn info(&self) -> SessionInfo {
        let ring = self.ring.stats();
        let bytes = ring.bytes_in;
        let running = *self.running_since.lock();
        let bitrate_bps = running
            .map(|t| t.elapsed().as_secs_f64())
            .filter(|s| *s > 0.5)
            .map(|s| (bytes as f64 * 8.0 / s) as u64)
            .unwrap_or(0);
        let viewers = self
            .viewers
            .lock()
            .iter()
            .map(|(id, v)| ViewerInfo {
                id: *id,
                address: v.address.clone(),
                user: v.user.clone(),
                since: v.since,
                bytes: v.stats.bytes.load(Ordering::Relaxed),
                jumps: v.stats.jumps.load(Ordering::Relaxed),
            })
            .collect();
        SessionInfo {
            id: self.id,
            kind: "live",
            channel_id: self.channel_id,
            channel: self.channel_name.clone(),
            state: self.state(),
            upstream: self.upstream.lock().clone(),
            bytes,
            buffered_bytes: ring.buffered_bytes,
            buffer_capacity_bytes: ring.capacity_bytes,
            bitrate_bps,
            failovers: self.failovers.load(Ordering::Relaxed),
            started_at: unix(self.started_at),
            viewers,
            profile: self.profile.clone(),
            transcoder: self.transcoder.lock().clone(),
            owner: self.role.lock().owner().map(str::to_owned),
        }
    }

    pub(crate) fn set_state(&self, s: State) {
        self.state.send_replace(s);
    }

    /// The byte counters of the current upstream.
    pub(crate) fn counters(&self) -> UpstreamCounters {
        self.counters.lock().clone()
    }

    /// Changes whenever the upstream (and so its counters) changes: one
    /// relaxed load per chunk tells a viewer whether to re-read them.
    pub(crate) fn counters_gen(&self) -> u64 {
        self.counters_gen.load(Ordering::Relaxed)
    }

    fn set_counters(&self, c: UpstreamCounters) {
        *self.counters.lock() = c;
        self.counters_gen.fetch_add(1, Ordering::Relaxed);
    }
}

/// How often a slot the provider still counts as busy (just taken over) is tried again, within
/// `relay.acquire_wait`.
const NOT_YET_RELEASED_RETRY: Duration = Duration::from_millis(200);

/// Why pumping one upstream stopped.
enum Pumped {
    /// Stopped on purpose (API, shutdown, preemption).
    Stopped,
    /// Nobody watched for the linger time.
    Idle,
    /// The upstream failed, after delivering media for this long; try again or elsewhere.
    Failed(String, Duration),
}

/// The session task: from first upstream to the last byte. In cluster mode the channel's own session first
/// settles which instance reads the provider ([`crate::cluster::run`]); a transcode joins its channel's session
/// on this instance, whoever owns that.
pub(crate) async fn run(session: Arc<Session>, inner: Arc<Inner>, channel: Channel) {
    let reason = match inner.cluster() {
        Some(link) if session.profile.is_none() => crate::cluster::run(&link, &session, &inner, &channel).await,
        _ => run_upstream(&session, &inner, &channel).await,
    };
    finish(session, inner, channel, reason);
}

/// Reads the provider for the session: lease, open, pump, reconnect, fail over, until it ends; returns why.
pub(crate) async fn run_upstream(session: &Arc<Session>, inner: &Arc<Inner>, channel: &Channel) -> String {
    // Owned, as the loop below has always had them.
    let (session, inner, channel) = (session.clone(), inner.clone(), channel.clone());
    let mut excluded = Excluded::new();
    // Sources that delivered media this session: once every candidate has failed, these get another round.
    let mut delivered_once = Excluded::new();
    let mut switches = SwitchBudget::new(inner.settings.max_switches, inner.settings.healthy_after);
    let mut backoff = Backoff::default();
    let mut last_failure: Option<String> = None;
    let holder = format!("session {} / channel {} {}", session.id, channel.id, channel.name);
    let reason = 'session: loop {
        let (stop, media) = (&session.stop, &Media::Live);
        let resolved =
            match acquire_waiting(&inner, stop, session.id, &channel, &mut excluded, &holder, media, session.claim)
                .await
            {
                Ok(r) => r,
                Err(AcquireError::NoCapacity(why)) => {
                    session.no_capacity.store(true, Ordering::Release);
                    // An always-on keeper waiting for a slot is no viewer refused.
                    if session.claim.preempts {
                        inner.metrics.refused_at(channel.sources.iter().map(|s| s.provider_id));
                    }
                    break 'session why;
                }
                Err(AcquireError::NoCandidates(why)) => {
                    // Every candidate failed. A flaky provider's sources did deliver: try them again (the switch
                    // budget bounds how often); sources that never delivered stay out, so a dead channel ends.
                    let again: Vec<_> = excluded.intersection(&delivered_once).copied().collect();
                    if !again.is_empty() {
                        for source in &again {
                            excluded.remove(source);
                        }
                        tracing::info!(session = session.id, channel = %channel.name, sources = again.len(),
                            "every source failed; trying again those that delivered");
                        if wait_or_stop(&session, backoff.delay()).await {
                            break 'session "stopped".to_string();
                        }
                        continue 'session;
                    }
                    match &last_failure {
                        Some(last) => break 'session format!("{why} (last: {last})"),
                        None => break 'session why,
                    }
                }
                Err(AcquireError::Backend(why)) => break 'session why,
            };
        if session.stop.is_cancelled() {
            break 'session "stopped".to_string();
        }
        tracing::info!(session = session.id, channel = %channel.name, provider = %resolved.provider,
            account = %resolved.account, url = %resolved.shown_url, "upstream selected");
        *session.upstream.lock() = Some(UpstreamInfo {
            provider: resolved.provider.clone(),
            account: resolved.account.clone(),
            account_id: resolved.account_id,
            stream_id: resolved.stream_id,
            url: resolved.shown_url.clone(),
        });
        let labels = AccountLabels::new(&resolved.provider, &resolved.account, resolved.account_id);
        session.set_counters(session.metrics.upstream(&labels));
        // The same account gets one reconnect; a source that streamed fine for
        // `healthy_after` before failing gets it back.
        let mut retries_left = 1;
        // When the provider first refused this slot as over its limit, right after a takeover.
        let mut refused_since: Option<Instant> = None;
        let failure = loop {
            let outcome = match open(&inner, &resolved).await {
                // Right after taking the slot over from an idle session, a limit refusal means the provider
                // still counts that session's connection: wait for it to notice, on the same slot, rather than
                // failing over or refusing the viewer.
                Err(failed) if failed.is_limit_refusal() && inner.taken_over_recently(resolved.account_id) => {
                    let since = *refused_since.get_or_insert_with(Instant::now);
                    if since.elapsed() < inner.settings.acquire_wait {
                        tracing::info!(session = session.id, account = %resolved.account, reason = %failed.why,
                            "the provider still counts the connection just closed; retrying the same slot");
                        if wait_or_stop(&session, NOT_YET_RELEASED_RETRY).await {
                            break 'session "stopped".to_string();
                        }
                        continue;
                    }
                    Pumped::Failed(failed.why, Duration::ZERO)
                }
                Ok(resp) => {
                    refused_since = None;
                    if session.running_since.lock().is_none() {
                        *session.running_since.lock() = Some(Instant::now());
                    }
                    session.set_state(if session.idle() { State::Lingering } else { State::Running });
                    pump(&inner, &session, &resolved, resp).await
                }
                Err(failed) => Pumped::Failed(failed.why, Duration::ZERO),
            };
            match outcome {
                Pumped::Stopped => break 'session "stopped".to_string(),
                Pumped::Idle => break 'session "no viewers".to_string(),
                Pumped::Failed(why, delivered) => {
                    tracing::warn!(session = session.id, channel = %channel.name, account = %resolved.account,
                        reason = %why, delivered_ms = delivered.as_millis() as u64, "upstream failed");
                    switches.earn(delivered);
                    backoff.failed(delivered);
                    if !delivered.is_zero() {
                        delivered_once.insert((resolved.stream_id, resolved.account_id));
                    }
                    if delivered >= inner.settings.healthy_after {
                        retries_left = 1;
                    }
                    if retries_left == 0 {
                        break why;
                    }
                    retries_left -= 1;
                    if wait_or_stop(&session, backoff.delay()).await {
                        break 'session "stopped".to_string();
                    }
                }
            }
        };
        let msg = format!(
            "channel {}: {} / {} failed ({failure}); trying the next source",
            channel.name, resolved.provider, resolved.account
        );
        let event = NewEvent::new(Level::Warn, "failover", msg).channel(channel.id).account(resolved.account_id);
        inner.catalog.note(event);
        excluded.insert((resolved.stream_id, resolved.account_id));
        resolved.lease.release().await;
        inner.slot_released.notify_waiters();
        if !switches.spend() {
            break 'session format!(
                "gave up: the sources failed faster than they delivered ({} switches allowed in a row; last: {failure})",
                inner.settings.max_switches
            );
        }
        last_failure = Some(failure);
        session.failovers.fetch_add(1, Ordering::Relaxed);
        session.metrics.failover(&labels);
        // Viewers of a session that never ran keep waiting for an answer
        // (the next candidate's stream, or the refusal).
        let ran = session.running_since.lock().is_some();
        session.set_state(if ran { State::Switching } else { State::Starting });
    };
    reason
}

/// Logs why the session ended, notes it as an event when it is news, and closes it.
fn finish(session: Arc<Session>, inner: Arc<Inner>, channel: Channel, reason: String) {
    tracing::info!(session = session.id, channel = %channel.name, %reason, "session closed");
    let keeper_waiting = !session.claim.preempts && session.no_capacity.load(Ordering::Acquire);
    if reason != "stopped" && reason != "no viewers" && !keeper_waiting {
        let ran = session.running_since.lock().is_some();
        let (level, kind, what) = match (ran, session.no_capacity.load(Ordering::Acquire)) {
            (false, true) => (Level::Warn, "refused", "refused, no capacity"),
            (false, false) => (Level::Error, "session", "could not start"),
            (true, _) => (Level::Error, "session", "ended"),
        };
        let msg = format!("channel {}: {what}: {reason}", channel.name);
        inner.catalog.note(NewEvent::new(level, kind, msg).channel(channel.id));
    }
    session.close(&inner, reason);
}

/// Sleeps `delay` unless the session is stopped first: true when it was.
async fn wait_or_stop(session: &Session, delay: Duration) -> bool {
    if delay.is_zero() {
        return session.stop.is_cancelled();
    }
    tokio::select! {
        _ = session.stop.cancelled() => true,
        _ = tokio::time::sleep(delay) => false,
    }
}

/// An opened upstream: its first bytes (checked to be MPEG-TS) and the rest.
pub(crate) struct Upstream {
    pub first: Bytes,
    pub body: Body,
    /// No data for this long is a stall.
    pub stall: Duration,
    /// From sending the request to the first byte of the answer's body.
    pub ttfb: Option<Duration>,
}

/// The rest of an upstream's bytes; an `Err` says why it broke.
pub(crate) type Body = Pin<Box<dyn Stream<Item = Result<Bytes, String>> + Send>>;

/// Opens the upstream and checks that it answers MPEG-TS — directly, or as
/// an HLS playlist whose segments are MPEG-TS.
pub(crate) async fn open(inner: &Inner, r: &Resolved) -> Result<Upstream, OpenFailed> {
    let attempt = async {
        let sent = Instant::now();
        let mut ttfb = None;
        let mut req = inner.client.get(&r.url);
        for (k, v) in &r.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let mut resp = req.send().await.map_err(|e| format!("cannot connect: {}", without_url(&e)))?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let why = format!("the provider answered HTTP {status}");
            return Err(OpenFailed { why, status: Some(status), not_ts: false });
        }
        // Enough bytes to tell MPEG-TS from an HTML page or a placeholder. An upstream that answers and then
        // sends nothing is a stall like any other: it gets `stall_timeout`, not the whole open timeout.
        let stall = inner.settings.stall_timeout;
        let mut first = BytesMut::new();
        while first.len() < 188 * 4 {
            let chunk = tokio::time::timeout(stall, resp.chunk())
                .await
                .map_err(|_| format!("stalled at the start: no data for {stall:?}"))?;
            match chunk.map_err(|e| format!("the stream broke at once: {}", without_url(&e)))? {
                Some(b) => {
                    if ttfb.is_none() && !b.is_empty() {
                        ttfb = Some(sent.elapsed());
                    }
                    first.extend_from_slice(&b)
                }
                None => break,
            }
        }
        let content_type = resp.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        if hls::looks_like_hls(content_type, resp.url(), &first) {
            let url = resp.url().to_string();
            while let Some(b) = resp.chunk().await.map_err(|e| format!("the playlist broke: {}", without_url(&e)))? {
                if first.len() + b.len() > 1024 * 1024 {
                    return Err(String::from("not a stream: a playlist larger than 1 MB").into());
                }
                first.extend_from_slice(&b);
            }
            let start = hls::start(inner.client.clone(), r.headers.clone(), url, &first).await?;
            let stall = inner.settings.stall_timeout + start.target;
            return Ok(Upstream { first: start.first, body: Box::pin(start.body), stall, ttfb });
        }
        probe(&first).map_err(|e| OpenFailed { why: format!("not a stream: {e}"), status: None, not_ts: true })?;
        let body = resp.bytes_stream().map(|r| r.map_err(|e| without_url(&e)));
        Ok(Upstream { first: first.freeze(), body: Box::pin(body), stall: inner.settings.stall_timeout, ttfb })
    };
    match tokio::time::timeout(inner.settings.open_timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!("no stream within {:?}", inner.settings.open_timeout).into()),
    }
}

/// Why opening an upstream failed, and the HTTP status if the provider answered with an error.
pub(crate) struct OpenFailed {
    pub why: String,
    status: Option<u16>,
    /// The provider answered, but not with a stream (an HTML page, text, junk).
    pub not_ts: bool,
}

impl From<String> for OpenFailed {
    fn from(why: String) -> Self {
        OpenFailed { why, status: None, not_ts: false }
    }
}

impl OpenFailed {
    /// A refusal the way panels say "this account is at its connection limit".
    fn is_limit_refusal(&self) -> bool {
        matches!(self.status, Some(403 | 429 | 458 | 509))
    }
}

/// A reqwest error as a short sentence without the URL (which carries the
/// account's credentials).
fn without_url(e: &reqwest::Error) -> String {
    tunerpool_upstream::http::describe_reqwest_error(e, &[])
}

/// How long the session lingers with no viewers: `relay.warm_linger` for a
/// channel started at least `relay.warm_after_starts` times in the last hour
/// (a popular channel someone is likely to come back to), else `relay.linger`.
fn linger_of(inner: &Inner, session: &Session) -> Duration {
    let s = &inner.settings;
    let warm = s.warm_linger > s.linger
        && s.warm_after_starts > 0
        && inner.metrics.starts_last_hour(session.channel_id) >= s.warm_after_starts as usize;
    if warm {
        tracing::debug!(session = session.id, channel = %session.channel_name, linger = ?s.warm_linger,
            "a warm channel: lingering longer");
        s.warm_linger
    } else {
        s.linger
    }
}

/// Reads one upstream into the ring until it fails, the session is stopped,
/// or nobody watched for the linger time.
async fn pump(inner: &Inner, session: &Session, r: &Resolved, upstream: Upstream) -> Pumped {
    let Upstream { first, mut body, stall, ttfb } = upstream;
    let settings = &inner.settings;
    // This connection's measurement: fed the packets pushed below, on this task only.
    let mut measurer = Measurer::new(
        inner.catalog.clone(),
        r.stream_id,
        r.account_id,
        ttfb,
        settings.quality_first_after,
        settings.quality_every,
    );
    let mut ring_feed = RingFeed::new(settings);
    // Also called with no data on a timer, so that a partial chunk older
    // than `chunk_delay` reaches the viewers even when the upstream pauses.
    let mut feed = |measurer: &mut Measurer, data: &[u8], now: Instant, flush: bool| {
        ring_feed.feed(&session.ring, data, now, flush, |packets| measurer.feed(packets));
    };
    // The first bytes go out at once: a waiting viewer's time to first byte
    // must not include the coalescing delay.
    let received = session.counters().received;
    received.inc_by(first.len() as u64);
    feed(&mut measurer, &first, Instant::now(), true);
    let mut flush_tick = tokio::time::interval(settings.chunk_delay);
    flush_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut linger = Linger::new(session.idle(), linger_of(inner, session), tokio::time::Instant::now());
    let opened = tokio::time::Instant::now();
    let mut last_data = opened;
    // What a failure reports: how long this upstream delivered media.
    let failed = |why: String, last_data: tokio::time::Instant| Pumped::Failed(why, last_data - opened);
    let outcome = loop {
        let stall_at = last_data + stall;
        tokio::select! {
            _ = session.stop.cancelled() => break Pumped::Stopped,
            _ = r.lease.lost() => break failed("the lease on the account was lost".into(), last_data),
            _ = session.viewers_changed.notified() => {
                // A viewer who joined and left since the last wake-up may have made the channel warm: the linger
                // is asked again.
                let now = tokio::time::Instant::now();
                match linger.viewers_changed(session.idle(), || linger_of(inner, session), now) {
                    Watched::Lingering => {
                        session.set_state(State::Lingering);
                        // Its slot can now be taken by preemption: wake waiting requests.
                        inner.slot_released.notify_waiters();
                    }
                    Watched::Running => session.set_state(State::Running),
                }
            }
            _ = linger.run_out(), if linger.deadline().is_some() => {
                if linger.expired(session.idle()) {
                    break Pumped::Idle;
                }
            }
            _ = tokio::time::sleep_until(stall_at) => {
                break failed(format!("stalled: no data for {stall:?}"), last_data);
            }
            _ = flush_tick.tick() => {
                let now = Instant::now();
                feed(&mut measurer, &[], now, false);
                measurer.tick(now);
            }
            next = body.next() => match next {
                Some(Ok(data)) => {
                    last_data = tokio::time::Instant::now();
                    received.inc_by(data.len() as u64);
                    feed(&mut measurer, &data, Instant::now(), false);
                }
                Some(Err(e)) => break failed(format!("the stream broke: {e}"), last_data),
                None => break failed("the provider ended the stream".into(), last_data),
            },
        }
    };
    match &outcome {
        Pumped::Stopped => measurer.finish("stopped".into(), false),
        Pumped::Idle => measurer.finish("no viewers".into(), false),
        Pumped::Failed(why, _) => measurer.finish(why.clone(), true),
    }
    outcome
}

/// What every producer of a ring does with the bytes it reads — a session's upstream, a follower's owner stream
/// ([`crate::cluster`]), a transcode's ffmpeg output ([`crate::transcode`]): align them into packets, copying each
/// packet once into the chunk being built, cut chunks at keyframes, hand the stream's tables and the chunks to the
/// ring, and the buffers of the chunks the ring evicts back to the chunker (see [`Chunker`]). Until its first
/// keyframe chunk is out nothing is held back: a first viewer waits for that keyframe, and must not wait the
/// coalescing delay on top.
///
/// It also paces the viewers' wake-ups: the ring's readers are woken at most every `wake_interval`
/// ([`RelaySettings::wake_interval`]), so that every chunk pushed in between goes to each viewer in one write — the
/// per-write cost (a wake-up, a system call, the client's read) is paid per interval, not per chunk. Until the first
/// keyframe chunk, on a flush, and with an interval of zero, every push wakes at once.
pub(crate) struct RingFeed {
    aligner: Aligner,
    chunker: Chunker,
    out: Vec<Chunk>,
    keyframe_out: bool,
    wake_interval: Duration,
    /// When the readers were last woken.
    last_wake: Option<Instant>,
    /// Chunks were pushed since.
    unwoken: bool,
}

impl RingFeed {
    pub(crate) fn new(settings: &RelaySettings) -> RingFeed {
        RingFeed {
            aligner: Aligner::new(),
            chunker: Chunker::new(settings.chunk_bytes, settings.chunk_delay),
            out: Vec::new(),
            keyframe_out: false,
            wake_interval: settings.wake_interval,
            last_wake: None,
            unwoken: false,
        }
    }

    /// Feeds `data` (any chunking; empty on a timer, for the delay flush) received at `now` into `ring`, each run
    /// of aligned packets also to `also` (a measurer) before it is chunked; flushes what is held when `flush`.
    /// Returns whether a keyframe chunk went out.
    pub(crate) fn feed(
        &mut self,
        ring: &Ring,
        data: &[u8],
        now: Instant,
        flush: bool,
        mut also: impl FnMut(&[u8]),
    ) -> bool {
        let RingFeed { aligner, chunker, out, keyframe_out, wake_interval, last_wake, unwoken } = self;
        aligner.push_with(data, |packets| {
            also(packets);
            chunker.push_packets(packets, now, out);
        });
        // The delay flush, when nothing was aligned.
        chunker.push_packets(&[], now, out);
        let before_first_keyframe = !*keyframe_out;
        if flush || before_first_keyframe {
            chunker.flush(out);
        }
        let keyframe = out.iter().any(|c| c.keyframe);
        *keyframe_out |= keyframe;
        // Before the chunks that follow them: a viewer starting at one of those gets these tables first.
        if let Some(psi) = chunker.take_psi() {
            ring.set_preamble(psi);
            ring.set_no_video(chunker.no_video());
        }
        for c in out.drain(..) {
            ring.push_reclaiming_unwoken(c, &mut |data| chunker.recycle(data));
            *unwoken = true;
        }
        // Called on every read and on the flush timer, so a pushed chunk waits at most the interval plus one tick.
        if *unwoken
            && (flush || before_first_keyframe || last_wake.is_none_or(|t| now.duration_since(t) >= *wake_interval))
        {
            ring.wake_readers();
            *last_wake = Some(now);
            *unwoken = false;
        }
        keyframe
    }

    /// Whether a keyframe chunk went out since the feed was made.
    pub(crate) fn keyframe_out(&self) -> bool {
        self.keyframe_out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    use std::time::{Duration, Instant};

    use super::RingFeed;
    use crate::ring::{Next, Ring};
    use crate::settings::RelaySettings;

    const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/media/sample-720p.ts");

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Feeds the sample (four times over) at ~1 MB/s (16 KiB every 16 ms of its own clock) to a ring with one waiting reader; the
    /// chunks pushed, the reader's wake-ups, and the longest a pushed chunk waited (in feed-clock time) for one.
    fn run(wake_interval: Duration) -> (usize, usize, Duration) {
        let ts = std::fs::read(SAMPLE).expect("testdata/media/sample-720p.ts").repeat(4);
        let settings = RelaySettings { wake_interval, ..RelaySettings::default() };
        let ring = Ring::new(16 << 20);
        let mut reader = ring.subscribe();
        let mut feed = RingFeed::new(&settings);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let t0 = Instant::now();
        let (mut chunks, mut woken_seen, mut longest) = (0, 0, Duration::ZERO);
        let mut waiting_since: Option<Instant> = None;
        let drain = |reader: &mut crate::ring::Reader, cx: &mut Context<'_>| {
            let mut n = 0;
            while let Poll::Ready(Next::Chunk(_)) = reader.poll_next(cx) {
                n += 1;
            }
            n
        };
        drain(&mut reader, &mut cx);
        for (i, read) in ts.chunks(16 * 1024).enumerate() {
            let now = t0 + Duration::from_millis(16 * i as u64);
            let before = ring.stats().chunks_in;
            feed.feed(&ring, read, now, false, |_| {});
            if ring.stats().chunks_in > before && waiting_since.is_none() {
                waiting_since = Some(now);
            }
            // The flush timer's tick, as the session's loop calls it every `chunk_delay` (50 ms).
            if i % 3 == 2 {
                feed.feed(&ring, &[], now, false, |_| {});
            }
            let woken = count.0.load(Ordering::SeqCst);
            if woken > woken_seen {
                woken_seen = woken;
                chunks += drain(&mut reader, &mut cx);
                if let Some(since) = waiting_since.take() {
                    longest = longest.max(now - since);
                }
            }
        }
        // The flush timer's next ticks hand over what the last reads left.
        let end = t0 + Duration::from_millis(16 * ts.len().div_ceil(16 * 1024) as u64);
        feed.feed(&ring, &[], end + Duration::from_millis(150), false, |_| {});
        chunks += drain(&mut reader, &mut cx);
        (chunks, count.0.load(Ordering::SeqCst), longest)
    }

    #[test]
    fn viewers_are_woken_at_most_every_wake_interval_and_get_every_chunk() {
        let (chunks_each, wakes_each, longest_each) = run(Duration::ZERO);
        assert!(chunks_each > 250, "the sample makes {chunks_each} chunks");
        assert!(wakes_each >= chunks_each * 9 / 10, "interval 0: a wake-up per push ({wakes_each} for {chunks_each})");
        assert!(longest_each <= Duration::from_millis(16), "{longest_each:?}");
        let (chunks, wakes, longest) = run(Duration::from_millis(100));
        assert_eq!(chunks, chunks_each, "paced wake-ups lose no chunk");
        assert!(wakes * 2 < wakes_each, "paced: {wakes} wake-ups, {wakes_each} unpaced");
        // A chunk waits at most the interval plus one read (the feed runs on every read and tick).
        assert!(longest <= Duration::from_millis(116), "a chunk waited {longest:?}");
    }
}
