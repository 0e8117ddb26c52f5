//! Active probing: measuring the sources nobody watches, with slots nobody needs.
//!
//! Passive measurement ([`crate::measure`]) only knows the sources viewers play. A probe opens one other source
//! for a few seconds and measures it the same way, under three rules:
//!
//! - **Limits.** It takes its slot through the ledger like any session, with the account's (and the provider's)
//!   limit lowered by [`ProbeSettings::reserve`]: a probe runs only where that many slots stay free for viewers,
//!   and the ledger's atomic grant makes that hold under any interleaving.
//! - **Viewers first.** A viewer's request that finds no free slot stops every probe on the accounts it could
//!   use, the way it stops a lingering session (`Inner::preempt_for`): it waits no longer than when zapping.
//! - **Gently.** The scheduler ([`Relay::run_prober`]) starts at most one probe per provider at a time, and not
//!   more often than [`ProbeSettings::interval`]; requests from the API come first, then (when `auto`) the
//!   catalog's candidates: never-measured and dead sources, then the oldest measurements. A stream a session
//!   plays is never probed: its session measures it.
//!
//! What a probe finds goes to the catalog like a session's measurement (with `probe: true`), with two verdicts
//! only a probe gives: [`Verdict::Refused`] (no stream: an HTTP error, no connection) and
//! [`Verdict::Placeholder`] (the provider ended the stream after a few seconds: a clip, not a channel).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use parking_lot::Mutex;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tunerpool_domain::{Channel, ChannelSource};

use crate::measure::SourceMeasurement;
use crate::quality::{Analyzer, QualityReport, Verdict};
use crate::relay::{Inner, Relay};
use crate::session::{open, unix};
use crate::source::{acquire, AcquireError, Excluded, Media};

/// How probing behaves, from the `[probe]` configuration.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    /// Whether the scheduler picks sources to probe by itself (requests from the API run either way).
    pub auto: bool,
    /// Slots that must stay free on the account (and on its provider, when the provider caps its accounts
    /// together) while a probe holds one.
    pub reserve: u32,
    /// How long a probe streams (less when the source turns out dead sooner).
    pub duration: Duration,
    /// The shortest time between two probe starts on one provider.
    pub interval: Duration,
    /// A source measured more recently than this is not picked by the scheduler.
    pub remeasure_after: Duration,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings {
            auto: false,
            reserve: 1,
            duration: Duration::from_secs(15),
            interval: Duration::from_secs(60),
            remeasure_after: Duration::from_secs(24 * 3600),
        }
    }
}

/// A source to probe: a provider's stream (and the lineup channel it came from, when known, for the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
pub struct ProbeTarget {
    pub stream_id: i64,
    pub provider_id: i64,
    pub channel_id: Option<i64>,
}

/// Why a probe measured nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// A session plays the stream: it measures it already.
    #[error("stream {0} is being watched; its session measures it")]
    Watched(i64),
    /// No account has a slot to spare with the reserve kept free (or none is usable).
    #[error("no spare slot: {0}")]
    NoSpareSlot(String),
    /// A viewer needed the slot before the stream said anything.
    #[error("stopped: a viewer needed the slot")]
    Preempted,
    #[error("{0}")]
    Backend(String),
}

/// One probe in progress, as the relay keeps it: what preemption looks at and waits for.
pub(crate) struct Running {
    pub target: ProbeTarget,
    /// The account whose slot it holds; `None` while it is still getting one.
    pub account: Mutex<Option<(i64, String)>>,
    pub started_at: u64,
    /// Cancelled to stop the probe.
    pub stop: CancellationToken,
    /// Cancelled once the probe has given its slot back.
    pub done: CancellationToken,
}

/// The running probes, by id.
pub(crate) type RunningProbes = Mutex<HashMap<u64, Arc<Running>>>;

/// What the scheduler keeps between ticks.
#[derive(Default)]
pub(crate) struct Schedule {
    /// Requested from the API, in order.
    queued: VecDeque<ProbeTarget>,
    /// Providers with a probe running.
    busy: HashSet<i64>,
    /// When a probe last started on each provider.
    last_start: HashMap<i64, Instant>,
    /// When a probe last ended on each provider: the next waits for the ledger's release cool-down (the
    /// provider may still count the connection just closed).
    last_end: HashMap<i64, Instant>,
    /// When the catalog was last asked for candidates.
    last_auto: Option<Instant>,
    /// The latest results, newest first.
    recent: VecDeque<ProbeResult>,
}

/// Most requests kept waiting (a request for a large group beyond it is cut, and says so).
pub const MAX_QUEUED: usize = 10_000;
/// Results kept for the API.
const MAX_RECENT: usize = 100;
/// How often the scheduler looks at what to start.
const TICK: Duration = Duration::from_millis(250);
/// How often the catalog is asked for candidates at most.
const AUTO_EVERY: Duration = Duration::from_secs(5);
/// Candidates asked of the catalog at a time.
const AUTO_BATCH: usize = 200;

/// The outcome of one probe (API).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProbeResult {
    #[serde(flatten)]
    pub target: ProbeTarget,
    /// Unix seconds: when it ended.
    pub at: u64,
    /// `measured`, `watched`, `no_spare_slot`, `preempted` or `failed`.
    pub outcome: String,
    /// What the source was found to be, when measured.
    pub verdict: Option<Verdict>,
    /// Why: the verdict's reason, or why nothing was measured.
    pub reason: Option<String>,
}

/// A probe in progress (API).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunningProbe {
    pub id: u64,
    #[serde(flatten)]
    pub target: ProbeTarget,
    /// The account whose slot it holds, once it has one.
    pub account: Option<String>,
    /// Unix seconds.
    pub started_at: u64,
}

/// Probing's state for the API: what runs, what waits, what was found lately.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProbeStatus {
    /// Whether the scheduler picks sources by itself.
    pub auto: bool,
    pub reserve: u32,
    pub duration_secs: f64,
    pub interval_secs: f64,
    pub running: Vec<RunningProbe>,
    pub queued: Vec<ProbeTarget>,
    /// Newest first.
    pub recent: Vec<ProbeResult>,
}

impl Inner {
    /// Stops the probes that hold (or are getting) a slot on one of `accounts`, and waits until they have given
    /// it back. Returns the accounts whose slots were freed.
    pub(crate) async fn stop_probes(&self, accounts: &HashSet<i64>) -> Vec<i64> {
        let hit: Vec<Arc<Running>> = self
            .probes
            .lock()
            .values()
            .filter(|p| p.account.lock().as_ref().is_none_or(|(a, _)| accounts.contains(a)))
            .cloned()
            .collect();
        for p in &hit {
            tracing::info!(stream = p.target.stream_id, "stopping a probe: its slot is needed");
            p.stop.cancel();
        }
        let mut freed = Vec::new();
        for p in &hit {
            let _ = tokio::time::timeout(Duration::from_secs(2), p.done.cancelled()).await;
            freed.extend(p.account.lock().as_ref().map(|(a, _)| *a));
        }
        freed
    }
}

/// Removes a probe from the running ones and says it is done, however it ends.
struct Registered<'a> {
    inner: &'a Inner,
    id: u64,
    running: Arc<Running>,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.inner.probes.lock().remove(&self.id);
        self.running.done.cancel();
    }
}

impl Relay {
    /// Probes one source now: takes a slot the reserve allows, streams up to `duration`, records what it found
    /// in the catalog and returns it. Stops at once (giving the slot back) when a viewer needs the slot.
    pub async fn probe(&self, target: ProbeTarget) -> Result<SourceMeasurement, ProbeError> {
        let inner = self.inner();
        if self.playing_streams().contains(&target.stream_id) {
            return Err(ProbeError::Watched(target.stream_id));
        }
        let id = inner.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let running = Arc::new(Running {
            target,
            account: Mutex::new(None),
            started_at: unix(SystemTime::now()),
            stop: CancellationToken::new(),
            done: CancellationToken::new(),
        });
        inner.probes.lock().insert(id, running.clone());
        let registered = Registered { inner, id, running: running.clone() };
        let backend = |e: crate::catalog::LookupError| ProbeError::Backend(e.to_string());
        let provider = inner.catalog.provider(target.provider_id).await.map_err(backend)?;
        let accounts = inner.catalog.accounts(provider.id).await.map_err(backend)?;
        let channel = Channel {
            id: target.channel_id.unwrap_or(0),
            name: format!("probe of stream {}", target.stream_id),
            enabled: true,
            available: true,
            auto_order: true,
            sources: vec![ChannelSource {
                stream_id: target.stream_id,
                provider_id: provider.id,
                provider: provider.name.clone(),
                ..ChannelSource::default()
            }],
            ..Channel::default()
        };
        let holder = format!("probe {id} / stream {}", target.stream_id);
        let providers = [(provider, accounts)];
        let reserve = inner.settings.probe.reserve;
        let mut excluded = Excluded::new();
        let got = tokio::select! {
            _ = running.stop.cancelled() => return Err(ProbeError::Preempted),
            r = acquire(inner, &channel, &providers, &mut excluded, &holder, &Media::Live, reserve) => r,
        };
        let resolved = match got {
            Ok(r) => r,
            Err(AcquireError::NoCapacity(why) | AcquireError::NoCandidates(why)) => {
                return Err(ProbeError::NoSpareSlot(why))
            }
            Err(AcquireError::Backend(why)) => return Err(ProbeError::Backend(why)),
        };
        *running.account.lock() = Some((resolved.account_id, resolved.account.clone()));
        tracing::info!(probe = id, stream = target.stream_id, provider = %resolved.provider,
            account = %resolved.account, "probing a source");
        let started_at = SystemTime::now();
        let measured = measure(inner, &resolved, &running.stop).await;
        resolved.lease.release().await;
        inner.slot_released.notify_waiters();
        // The slot is back: a viewer waiting for it may go on while the measurement is stored.
        drop(registered);
        let Measured { report, ended, failed, preempted, streamed, ttfb } = measured;
        if preempted && report.verdict == Verdict::Pending {
            return Err(ProbeError::Preempted);
        }
        let m = SourceMeasurement {
            stream_id: target.stream_id,
            account_id: resolved.account_id,
            started_at: unix(started_at),
            measured_at: unix(SystemTime::now()),
            streamed_ms: streamed.as_millis() as u64,
            ttfb_ms: ttfb.map(|d| d.as_millis() as u64),
            ended: Some(ended),
            failed,
            probe: true,
            report,
        };
        inner.catalog.record_quality(m.clone()).await.map_err(backend)?;
        Ok(m)
    }

    /// Queues sources to probe (skipping those queued or running already); returns how many were added.
    pub fn request_probes(&self, targets: impl IntoIterator<Item = ProbeTarget>) -> usize {
        let running: HashSet<i64> = self.inner().probes.lock().values().map(|p| p.target.stream_id).collect();
        let mut s = self.inner().schedule.lock();
        let mut known: HashSet<i64> = s.queued.iter().map(|t| t.stream_id).collect();
        known.extend(running);
        let mut added = 0;
        for t in targets {
            if s.queued.len() >= MAX_QUEUED {
                break;
            }
            if known.insert(t.stream_id) {
                s.queued.push_back(t);
                added += 1;
            }
        }
        drop(s);
        self.inner().probe_requested.notify_one();
        added
    }

    /// What probing does now (API).
    pub fn probe_status(&self) -> ProbeStatus {
        let settings = &self.inner().settings.probe;
        let mut running: Vec<RunningProbe> = self
            .inner()
            .probes
            .lock()
            .iter()
            .map(|(id, p)| RunningProbe {
                id: *id,
                target: p.target,
                account: p.account.lock().as_ref().map(|(_, name)| name.clone()),
                started_at: p.started_at,
            })
            .collect();
        running.sort_by_key(|p| p.id);
        let s = self.inner().schedule.lock();
        ProbeStatus {
            auto: settings.auto,
            reserve: settings.reserve,
            duration_secs: settings.duration.as_secs_f64(),
            interval_secs: settings.interval.as_secs_f64(),
            running,
            queued: s.queued.iter().copied().collect(),
            recent: s.recent.iter().cloned().collect(),
        }
    }

    /// The streams live sessions play now.
    fn playing_streams(&self) -> HashSet<i64> {
        self.sessions()
            .into_iter()
            .filter(|s| s.kind == "live")
            .filter_map(|s| s.upstream.map(|u| u.stream_id))
            .collect()
    }

    /// The scheduler: starts probes (requested ones first, then, when `auto`, the catalog's candidates) within
    /// the per-provider rules, until `shutdown`.
    pub async fn run_prober(&self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.inner().probe_requested.notified() => {}
                _ = tokio::time::sleep(TICK) => {}
            }
            for target in self.due_probes().await {
                let relay = self.clone();
                tokio::spawn(async move { relay.run_one(target).await });
            }
        }
        for p in self.inner().probes.lock().values() {
            p.stop.cancel();
        }
    }

    /// The probes to start now, marked as started.
    async fn due_probes(&self) -> Vec<ProbeTarget> {
        let settings = &self.inner().settings.probe;
        let now = Instant::now();
        let playing = self.playing_streams();
        let cooldown = {
            use tunerpool_ledger::Ledger;
            self.inner().ledger.release_cooldown()
        };
        let free = |s: &Schedule, provider: i64| {
            !s.busy.contains(&provider)
                && s.last_start.get(&provider).is_none_or(|t| now - *t >= settings.interval)
                && s.last_end.get(&provider).is_none_or(|t| now - *t >= cooldown)
        };
        let mut starts: Vec<ProbeTarget> = Vec::new();
        let ask_catalog = {
            let mut s = self.inner().schedule.lock();
            let mut i = 0;
            while i < s.queued.len() {
                let t = s.queued[i];
                if playing.contains(&t.stream_id) {
                    s.queued.remove(i);
                    push_recent(&mut s, result(t, "watched", None, Some(ProbeError::Watched(t.stream_id).to_string())));
                } else if free(&s, t.provider_id) && !starts.iter().any(|x| x.provider_id == t.provider_id) {
                    s.queued.remove(i);
                    starts.push(t);
                } else {
                    i += 1;
                }
            }
            // In a cluster, the automatic probes are a scheduled job: one instance runs them.
            let ours = self.cluster().is_none_or(|link| link.runs_jobs());
            let ask = settings.auto && ours && s.last_auto.is_none_or(|t| now - t >= AUTO_EVERY);
            if ask {
                s.last_auto = Some(now);
            }
            ask
        };
        if ask_catalog {
            let older_than = unix(SystemTime::now()).saturating_sub(settings.remeasure_after.as_secs());
            match self.inner().catalog.probe_candidates(older_than, AUTO_BATCH).await {
                Ok(candidates) => {
                    let s = self.inner().schedule.lock();
                    let running: HashSet<i64> =
                        self.inner().probes.lock().values().map(|p| p.target.stream_id).collect();
                    for t in candidates {
                        if free(&s, t.provider_id)
                            && !starts.iter().any(|x| x.provider_id == t.provider_id)
                            && !playing.contains(&t.stream_id)
                            && !running.contains(&t.stream_id)
                        {
                            starts.push(t);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot list sources to probe"),
            }
        }
        let mut s = self.inner().schedule.lock();
        for t in &starts {
            s.busy.insert(t.provider_id);
            s.last_start.insert(t.provider_id, now);
        }
        starts
    }

    /// Runs one scheduled probe and keeps its result.
    async fn run_one(&self, target: ProbeTarget) {
        let outcome = self.probe(target).await;
        let r = match outcome {
            Ok(m) => {
                let reason = m.report.reason.clone().or(m.ended.clone());
                result(target, "measured", Some(m.report.verdict), reason)
            }
            Err(e) => {
                let outcome = match e {
                    ProbeError::Watched(_) => "watched",
                    ProbeError::NoSpareSlot(_) => "no_spare_slot",
                    ProbeError::Preempted => "preempted",
                    ProbeError::Backend(_) => "failed",
                };
                if matches!(e, ProbeError::Backend(_)) {
                    tracing::warn!(stream = target.stream_id, error = %e, "probe failed");
                }
                result(target, outcome, None, Some(e.to_string()))
            }
        };
        let mut s = self.inner().schedule.lock();
        s.busy.remove(&target.provider_id);
        s.last_end.insert(target.provider_id, Instant::now());
        push_recent(&mut s, r);
    }
}

fn result(target: ProbeTarget, outcome: &str, verdict: Option<Verdict>, reason: Option<String>) -> ProbeResult {
    ProbeResult { target, at: unix(SystemTime::now()), outcome: outcome.to_string(), verdict, reason }
}

fn push_recent(s: &mut Schedule, r: ProbeResult) {
    s.recent.push_front(r);
    s.recent.truncate(MAX_RECENT);
}

/// What streaming one source for a probe found.
struct Measured {
    report: QualityReport,
    ended: String,
    failed: bool,
    preempted: bool,
    streamed: Duration,
    ttfb: Option<Duration>,
}

/// How often a running probe looks at its report, to end early on a dead source.
const VERDICT_EVERY: Duration = Duration::from_secs(1);

/// Streams the leased source into an analyzer until `duration`, a dead verdict, the end of the stream, a stall,
/// or `stop`.
async fn measure(inner: &Inner, r: &crate::source::Resolved, stop: &CancellationToken) -> Measured {
    let opened = Instant::now();
    let duration = inner.settings.probe.duration;
    let upstream = tokio::select! {
        _ = stop.cancelled() => Err(None),
        u = open(inner, r) => u.map_err(Some),
    };
    let upstream = match upstream {
        Ok(u) => u,
        Err(failed) => {
            let (verdict, why) = match failed {
                None => (Verdict::Pending, "stopped: a viewer needed the slot".to_string()),
                Some(f) if f.not_ts => (Verdict::NotTs, f.why),
                Some(f) => (Verdict::Refused, f.why),
            };
            let preempted = verdict == Verdict::Pending;
            let report = QualityReport { verdict, reason: Some(why.clone()), ..QualityReport::default() };
            return Measured {
                report,
                ended: why,
                failed: !preempted,
                preempted,
                streamed: opened.elapsed(),
                ttfb: None,
            };
        }
    };
    let crate::session::Upstream { first, mut body, stall, ttfb } = upstream;
    let mut analyzer = Analyzer::new();
    analyzer.feed(&first);
    let deadline = tokio::time::Instant::from_std(opened) + duration;
    let mut last_data = tokio::time::Instant::now();
    let mut look = tokio::time::interval(VERDICT_EVERY);
    look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut failed, mut preempted, mut provider_ended) = (false, false, false);
    let ended = loop {
        tokio::select! {
            _ = stop.cancelled() => {
                preempted = true;
                break "stopped: a viewer needed the slot".to_string();
            }
            _ = r.lease.lost() => {
                failed = true;
                break "the lease on the account was lost".to_string();
            }
            _ = tokio::time::sleep_until(deadline) => break format!("probed for {duration:?}"),
            _ = tokio::time::sleep_until(last_data + stall) => {
                failed = true;
                break format!("stalled: no data for {stall:?}");
            }
            _ = look.tick() => {
                let verdict = analyzer.report().verdict;
                if !matches!(verdict, Verdict::Pending | Verdict::Ok) {
                    break format!("dead after {:.1} s", opened.elapsed().as_secs_f64());
                }
            }
            next = body.next() => match next {
                Some(Ok(data)) => {
                    last_data = tokio::time::Instant::now();
                    analyzer.feed(&data);
                }
                Some(Err(e)) => {
                    failed = true;
                    break format!("the stream broke: {e}");
                }
                None => {
                    provider_ended = true;
                    break "the provider ended the stream".to_string();
                }
            },
        }
    };
    let streamed = opened.elapsed();
    let mut report = analyzer.report();
    if provider_ended && matches!(report.verdict, Verdict::Ok | Verdict::Pending) {
        report.verdict = Verdict::Placeholder;
        report.reason = Some(format!(
            "the provider ended the stream after {:.1} s: a clip, not a live channel",
            streamed.as_secs_f64()
        ));
    }
    Measured { report, ended, failed: failed || provider_ended, preempted, streamed, ttfb }
}
