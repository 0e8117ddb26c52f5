//! Prometheus metrics of the relay: what happens to streams, per provider
//! and account. Counters are atomics updated where things happen; the
//! labelled counter of an upstream is looked up once, when the upstream is
//! chosen, so a chunk to a viewer stays one relaxed add (no label lookup, no
//! lock). What is a state rather than an event — sessions, viewers, slots —
//! is read at scrape time by the `/metrics` handler, not kept here. The
//! metrics belong to the relay (not a global), so every instance — and every
//! test — has its own.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::{Registry, Unit};
use std::time::Instant;

/// Labels of a per-account series: names for people, the id to tell apart
/// accounts of the same name. Never a URL or a credential.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccountLabels {
    pub provider: String,
    pub account: String,
    pub account_id: i64,
}

impl AccountLabels {
    pub fn new(provider: &str, account: &str, account_id: i64) -> AccountLabels {
        AccountLabels { provider: provider.to_string(), account: account.to_string(), account_id }
    }
}

const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);
/// The most recent starts kept per channel (more than any `relay.warm_after_starts`).
pub(crate) const RECENT_STARTS: usize = 1000;

/// Why a viewer's request was refused.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Refusal {
    /// Every account was at its limit (503).
    NoCapacity,
    /// The downstream user was at its own limit (403).
    UserLimit,
    /// No upstream worked (502).
    UpstreamFailed,
    /// The channel's session had its maximum of viewers (503).
    SessionFull,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    reason: &'static str,
}

/// The byte counters of one upstream (a provider's account), resolved once.
#[derive(Debug, Clone, Default)]
pub(crate) struct UpstreamCounters {
    /// Bytes read from the upstream.
    pub received: Counter,
    /// Bytes sent to viewers of it.
    pub sent: Counter,
}

/// What happened since the history sampler last asked: stream starts per
/// lineup channel and, per provider, stream starts refused for lack of
/// capacity while it was among the candidates. Exists because history
/// (views per channel, refusals per provider) needs counts keyed by ids the
/// Prometheus counters do not carry; drained by [`RelayMetrics::take_tally`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Channel id → viewers that started watching it (TS streams and HLS outputs).
    pub views: std::collections::HashMap<i64, u64>,
    /// Provider id → refusals for no capacity with it a candidate.
    pub refusals: std::collections::HashMap<i64, u64>,
}

/// The relay's metrics, cheap to clone (shared atomics).
#[derive(Clone, Default)]
pub struct RelayMetrics {
    tally: std::sync::Arc<parking_lot::Mutex<Tally>>,
    /// Channel id → when its latest viewers started (the last hour, at most
    /// [`RECENT_STARTS`] each): what makes a channel warm.
    recent: std::sync::Arc<parking_lot::Mutex<std::collections::HashMap<i64, std::collections::VecDeque<Instant>>>>,
    received: Family<AccountLabels, Counter>,
    sent: Family<AccountLabels, Counter>,
    failovers: Family<AccountLabels, Counter>,
    refusals: Family<RefusalLabels, Counter>,
    pub(crate) jumps: Counter,
    pub(crate) drops: Counter,
}

impl RelayMetrics {
    /// Adds these metrics to `registry` (which carries the `tunerpool_` prefix).
    pub fn register(&self, r: &mut Registry) {
        r.register_with_unit(
            "upstream_received",
            "Bytes read from providers, by account",
            Unit::Bytes,
            self.received.clone(),
        );
        r.register_with_unit(
            "viewer_sent",
            "Bytes sent to viewers (live and VOD), by the account they came from",
            Unit::Bytes,
            self.sent.clone(),
        );
        r.register("failovers", "Upstream switches away from an account that failed", self.failovers.clone());
        r.register("refusals", "Viewer requests refused, by reason", self.refusals.clone());
        r.register("viewer_jumps", "Times a slow viewer jumped to the live edge", self.jumps.clone());
        r.register(
            "viewer_drops",
            "Viewers dropped for being too slow: out of jumps to the live edge, or no byte taken for the stall limit",
            self.drops.clone(),
        );
    }

    /// The byte counters of an account's upstream.
    pub(crate) fn upstream(&self, labels: &AccountLabels) -> UpstreamCounters {
        UpstreamCounters {
            received: self.received.get_or_create(labels).clone(),
            sent: self.sent.get_or_create(labels).clone(),
        }
    }

    /// An upstream switch away from this account.
    pub(crate) fn failover(&self, labels: &AccountLabels) {
        self.failovers.get_or_create(labels).inc();
    }

    /// A viewer started watching a channel (once per viewer, never per chunk).
    pub(crate) fn viewed(&self, channel_id: i64) {
        *self.tally.lock().views.entry(channel_id).or_default() += 1;
        let now = Instant::now();
        let mut recent = self.recent.lock();
        let starts = recent.entry(channel_id).or_default();
        while starts.front().is_some_and(|t| now.duration_since(*t) > HOUR) || starts.len() >= RECENT_STARTS {
            starts.pop_front();
        }
        starts.push_back(now);
    }

    /// How many viewers started watching the channel within the last hour
    /// (counted up to [`RECENT_STARTS`]).
    pub(crate) fn starts_last_hour(&self, channel_id: i64) -> usize {
        let now = Instant::now();
        self.recent.lock().get(&channel_id).map_or(0, |s| s.iter().filter(|t| now.duration_since(**t) <= HOUR).count())
    }

    /// A start refused for no capacity, each of `providers` a candidate.
    pub(crate) fn refused_at(&self, providers: impl IntoIterator<Item = i64>) {
        let mut providers: Vec<i64> = providers.into_iter().collect();
        providers.sort_unstable();
        providers.dedup();
        let mut tally = self.tally.lock();
        for p in providers {
            *tally.refusals.entry(p).or_default() += 1;
        }
    }

    /// What happened since the last call (the history sampler's minute).
    pub fn take_tally(&self) -> Tally {
        std::mem::take(&mut *self.tally.lock())
    }

    /// A refused viewer request.
    pub(crate) fn refused(&self, why: Refusal) {
        let reason = match why {
            Refusal::NoCapacity => "no_capacity",
            Refusal::UserLimit => "user_limit",
            Refusal::UpstreamFailed => "upstream_failed",
            Refusal::SessionFull => "session_full",
        };
        self.refusals.get_or_create(&RefusalLabels { reason }).inc();
    }
}
