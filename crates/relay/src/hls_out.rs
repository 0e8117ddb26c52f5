//! HLS output: a live channel's shared stream cut into segments for clients
//! that ask for `.m3u8` (Xtream `output=m3u8`, some Smart-TV players).
//!
//! HLS clients do not hold a connection; they poll a playlist and fetch
//! segments. So a channel's session gets one *segmenter* — a reader of the
//! session's ring like any viewer — that cuts the stream at keyframes into
//! segments of about [`TARGET`] and keeps the newest [`KEEP`]. Segments are
//! lists of the ring's shared `Bytes`: no copies. The segmenter counts as one
//! viewer of the session for as long as some client polled within
//! `RelaySettings::hls_idle`;
//! then it leaves and the session lingers and closes like any other.
//!
//! Downstream users' own limits hold for HLS too: a user watching a channel
//! over HLS holds one [`UserTicket`] for it however many requests it makes,
//! given back when it stops polling.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::relay::{Membership, WatchError};
use crate::ring::{Next, Reader};
use crate::ts::{KeyframeDetector, PACKET};
use crate::users::{UserTicket, Viewer};

/// Segment duration aimed at; segments are cut at the first keyframe after it.
pub(crate) const TARGET: Duration = Duration::from_secs(2);
/// Segments kept (and listed).
const KEEP: usize = 6;
/// A segment without a keyframe is cut anyway at this length.
const MAX_SEGMENT: Duration = Duration::from_secs(10);

/// One finished segment.
pub(crate) struct OutSegment {
    pub seq: u64,
    pub duration: Duration,
    pub chunks: Vec<Bytes>,
}

/// The HLS side of one session.
pub(crate) struct HlsOut {
    /// On tokio's clock, as the segmenter's idle timer is.
    started: tokio::time::Instant,
    segments: Mutex<VecDeque<Arc<OutSegment>>>,
    /// Milliseconds since `started` of the latest client request.
    last_request: AtomicU64,
    /// Signalled when a segment is finished or the segmenter ends.
    pub(crate) changed: Notify,
    /// Users watching over HLS, with when each last asked.
    tickets: Mutex<HashMap<i64, (UserTicket, Instant)>>,
    ended: std::sync::atomic::AtomicBool,
}

impl HlsOut {
    pub(crate) fn new() -> Arc<HlsOut> {
        Arc::new(HlsOut {
            started: tokio::time::Instant::now(),
            segments: Mutex::new(VecDeque::new()),
            last_request: AtomicU64::new(0),
            changed: Notify::new(),
            tickets: Mutex::new(HashMap::new()),
            ended: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// A client asked for something: the output stays alive.
    pub(crate) fn touch(&self, user: Option<i64>) {
        self.last_request.store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
        if let Some(u) = user {
            if let Some(entry) = self.tickets.lock().get_mut(&u) {
                entry.1 = Instant::now();
            }
        }
    }

    fn idle_for(&self) -> Duration {
        self.started.elapsed().saturating_sub(Duration::from_millis(self.last_request.load(Ordering::Relaxed)))
    }

    pub(crate) fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Whether `user` holds a live (not replaced) ticket here.
    pub(crate) fn has_ticket(&self, user: i64) -> bool {
        self.tickets.lock().get(&user).is_some_and(|(t, _)| !t.is_revoked())
    }

    pub(crate) fn add_ticket(&self, user: i64, ticket: UserTicket) {
        self.tickets.lock().insert(user, (ticket, Instant::now()));
    }

    /// The playlist, once at least one segment is finished.
    pub(crate) fn playlist(&self, segment_url: &dyn Fn(u64) -> String) -> Option<String> {
        let segments = self.segments.lock();
        let first = segments.front()?;
        let longest = segments.iter().map(|s| s.duration.as_secs_f64()).fold(0.0, f64::max);
        let mut out = format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{}\n",
            longest.ceil().max(1.0) as u64,
            first.seq
        );
        for s in segments.iter() {
            out.push_str(&format!("#EXTINF:{:.3},\n{}\n", s.duration.as_secs_f64(), segment_url(s.seq)));
        }
        Some(out)
    }

    pub(crate) fn segment(&self, seq: u64) -> Option<Arc<OutSegment>> {
        self.segments.lock().iter().find(|s| s.seq == seq).cloned()
    }

    fn publish(&self, seg: OutSegment) {
        let mut segments = self.segments.lock();
        segments.push_back(Arc::new(seg));
        while segments.len() > KEEP {
            segments.pop_front();
        }
        drop(segments);
        self.changed.notify_waiters();
    }

    /// Gives back the tickets of users that stopped polling, and of users
    /// whose HLS stream was replaced by a newer stream of theirs.
    fn expire_tickets(&self, idle: Duration) {
        self.tickets.lock().retain(|_, (t, seen)| !t.is_revoked() && seen.elapsed() < idle);
    }
}

/// Cuts the session's stream into segments until no client polled for
/// `idle` or the session ends. `membership` keeps the session's viewer
/// count up meanwhile; it is dropped (the viewer leaves) when this returns.
async fn segmenter(out: Arc<HlsOut>, mut reader: Reader, membership: Membership, idle: Duration) {
    let session = &membership.session;
    let mut detector = KeyframeDetector::new();
    let mut seq = 0u64;
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut began = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // Wakes when `idle` has passed since the latest request, not on the next tick after it:
    // the output leaves `idle` after the last poll, so the session's linger (and its slot)
    // starts on time.
    let idle_check = tokio::time::sleep(idle.saturating_sub(out.idle_for()));
    tokio::pin!(idle_check);
    loop {
        tokio::select! {
            next = reader.next() => match next {
                Next::Chunk(b) => {
                    let key = detector.scan(&b[..b.len() / PACKET * PACKET]) == Some(0);
                    let age = began.elapsed();
                    if !chunks.is_empty() && ((key && age >= TARGET) || age >= MAX_SEGMENT) {
                        out.publish(OutSegment { seq, duration: age, chunks: std::mem::take(&mut chunks) });
                        seq += 1;
                    }
                    if chunks.is_empty() {
                        began = Instant::now();
                    }
                    chunks.push(b);
                }
                // A gap in the stream: the partial segment would not play.
                Next::Jumped { .. } => chunks.clear(),
                Next::Closed => break,
            },
            _ = tick.tick() => out.expire_tickets(idle),
            _ = &mut idle_check => {
                let idle_for = out.idle_for();
                if idle_for >= idle {
                    tracing::debug!(session = session.id, "HLS output idle: leaving the session");
                    break;
                }
                idle_check.as_mut().reset(tokio::time::Instant::now() + (idle - idle_for));
            }
        }
    }
    out.ended.store(true, Ordering::Release);
    out.changed.notify_waiters();
    out.tickets.lock().clear();
    drop(membership);
}

impl crate::relay::Relay {
    /// The live HLS playlist of a channel for `viewer`, starting the channel
    /// and its HLS output if needed; answers once a first segment exists.
    /// `segment_url(seq)` is how a client fetches segment `seq` (it goes to
    /// [`Relay::hls_segment`](crate::relay::Relay::hls_segment)).
    pub async fn hls_playlist(
        &self,
        channel_id: i64,
        viewer: Viewer,
        segment_url: &(dyn Fn(u64) -> String + Sync),
    ) -> Result<String, WatchError> {
        let inner = self.inner();
        let existing = self.live_session(channel_id).and_then(|s| s.hls_output());
        let user = viewer.user.as_ref().map(|u| u.id);
        let ticket = match user {
            Some(uid) if !existing.as_ref().is_some_and(|o| o.has_ticket(uid)) => {
                self.claim_user_slot(&viewer, || format!("channel {channel_id} (HLS)")).await?
            }
            _ => None,
        };
        let (session, out) = self
            .join(channel_id, crate::source::Claim::viewer(&inner.settings, viewer.priority()), |session| {
                let (out, fresh) = session.hls_output_or_new();
                let mut started = None;
                if fresh {
                    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
                    let user_name = viewer.user.as_ref().map(|u| u.name.clone());
                    session.add_viewer(id, format!("{} (HLS)", viewer.address), user_name, viewer.priority());
                    let membership = Membership { session: session.clone(), viewer: id };
                    let reader = session.ring.subscribe();
                    tokio::spawn(segmenter(out.clone(), reader, membership, inner.settings.hls_idle));
                    started = Some(id);
                }
                out.touch(None);
                (out, started)
            })
            .await?;
        let (out, started) = out;
        if let Some(id) = started {
            session.log_stream_started(id);
            inner.metrics.viewed(channel_id);
        }
        if let (Some(uid), Some(t)) = (user, ticket) {
            out.add_ticket(uid, t);
        }
        out.touch(user);
        let deadline = tokio::time::Instant::now() + inner.settings.open_timeout + MAX_SEGMENT;
        loop {
            let changed = out.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(p) = out.playlist(segment_url) {
                return Ok(p);
            }
            if out.is_ended() {
                return Err(WatchError::Upstream("the channel's stream ended".into()));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(WatchError::Upstream("no HLS segment in time".into()));
            }
            // A client waiting for the first segment is not idle.
            let _ = tokio::time::timeout(Duration::from_millis(500), changed).await;
            out.touch(user);
        }
    }

    /// Segment `seq` of a channel's HLS output: its chunks, or `None` when
    /// the channel has no HLS output or the segment is not (any more) kept.
    pub fn hls_segment(&self, channel_id: i64, seq: u64, user: Option<i64>) -> Option<Vec<Bytes>> {
        let out = self.live_session(channel_id)?.hls_output()?;
        out.touch(user);
        out.segment(seq).map(|s| s.chunks.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::RelayMetrics;
    use crate::session::Session;
    use tunerpool_domain::Channel;

    /// A segmenter on a session nobody writes to, counting as its viewer 1.
    fn segmenter_on_idle_session(idle: Duration) -> (Arc<HlsOut>, Arc<Session>) {
        let session = Session::new(
            1,
            &Channel { id: 1, name: "one".into(), ..Default::default() },
            crate::ring::RingSizing { seconds: Duration::from_secs(1), max_bytes: 1 << 20 },
            RelayMetrics::default(),
            None,
            crate::source::Claim { reserve: 0, priority: 0, preempts: true, from_peer: false },
        );
        let out = HlsOut::new();
        session.add_viewer(1, "hls".into(), None, 0);
        let membership = Membership { session: session.clone(), viewer: 1 };
        tokio::spawn(segmenter(out.clone(), session.ring.subscribe(), membership, idle));
        (out, session)
    }

    #[tokio::test(start_paused = true)]
    async fn the_output_leaves_its_idle_time_after_the_last_request_not_at_a_later_tick() {
        let idle = Duration::from_secs(20);
        let (out, session) = segmenter_on_idle_session(idle);
        // The last poll comes just after one of the segmenter's 1 s ticks.
        tokio::time::sleep(Duration::from_millis(3050)).await;
        out.touch(None);
        let polled = tokio::time::Instant::now();
        tokio::time::sleep_until(polled + idle - Duration::from_millis(10)).await;
        assert!(!out.is_ended(), "left before its idle time");
        assert_eq!(session.viewer_count(), 1);
        // It leaves `idle` after that poll (so the session's linger starts then), not at the
        // next tick, up to 1 s later.
        tokio::time::sleep_until(polled + idle + Duration::from_millis(10)).await;
        assert!(out.is_ended(), "still there {:?} after the last poll", polled.elapsed());
        assert_eq!(session.viewer_count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn polls_keep_the_output() {
        let idle = Duration::from_secs(2);
        let (out, session) = segmenter_on_idle_session(idle);
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            out.touch(None);
        }
        assert!(!out.is_ended());
        assert_eq!(session.viewer_count(), 1);
        tokio::time::sleep(idle + Duration::from_millis(10)).await;
        assert!(out.is_ended());
    }
}
