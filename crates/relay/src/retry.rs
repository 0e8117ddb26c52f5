//! How long a session keeps trying a flaky provider: a switch budget that streaming earns back, and a backoff
//! for sources that deliver nothing.
//!
//! A provider that cuts every stream every few seconds still delivers almost all of it: the viewer's buffer
//! bridges the reconnects. Such a source must never end the viewer's stream. A source that delivers nothing
//! (refused, stalled at the start, not a stream) must still be abandoned fast, and must not be hammered. So
//! the session judges each failure by what came before it: how long the upstream delivered media.
//!
//! - [`SwitchBudget`]: leaving a source (a failover) costs one token; every `earn_every` of delivered media
//!   earns one back, up to the cap (`relay.max_switches`). A session gives up only when its sources keep
//!   failing faster than they deliver.
//! - [`Backoff`]: the wait before reconnecting a source (or trying the failed ones again) grows with the
//!   failures in a row that delivered less than [`PRODUCTIVE`], and is zero after one that delivered.

use std::time::Duration;

/// A run that delivered at least this much media was productive: the next reconnect waits for nothing.
pub(crate) const PRODUCTIVE: Duration = Duration::from_secs(1);
/// The first wait after an unproductive failure; it doubles with each further one in a row.
const BACKOFF_FIRST: Duration = Duration::from_millis(200);
/// The longest wait between two tries.
const BACKOFF_MAX: Duration = Duration::from_secs(3);

/// Failovers a session may still make; delivered media earns them back (see the module doc).
#[derive(Debug, Clone)]
pub(crate) struct SwitchBudget {
    tokens: f64,
    cap: f64,
    earn_every: Duration,
}

impl SwitchBudget {
    /// A full budget of `cap` switches; each `earn_every` of delivered media earns one back.
    pub(crate) fn new(cap: u32, earn_every: Duration) -> Self {
        SwitchBudget {
            tokens: f64::from(cap),
            cap: f64::from(cap),
            earn_every: earn_every.max(Duration::from_millis(1)),
        }
    }

    /// Credit `delivered` media (up to the cap).
    pub(crate) fn earn(&mut self, delivered: Duration) {
        self.tokens = (self.tokens + delivered.as_secs_f64() / self.earn_every.as_secs_f64()).min(self.cap);
    }

    /// Take one switch: false when none is left (the session gives up).
    pub(crate) fn spend(&mut self) -> bool {
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The wait before the next try, from the failures in a row that delivered (almost) nothing.
#[derive(Debug, Clone, Default)]
pub(crate) struct Backoff {
    unproductive: u32,
}

impl Backoff {
    /// Record a failure after `delivered` media.
    pub(crate) fn failed(&mut self, delivered: Duration) {
        if delivered >= PRODUCTIVE {
            self.unproductive = 0;
        } else {
            self.unproductive = self.unproductive.saturating_add(1);
        }
    }

    /// How long to wait before the next try: zero after a productive run, then 200 ms, 400 ms, ... up to 3 s.
    pub(crate) fn delay(&self) -> Duration {
        match self.unproductive {
            0 => Duration::ZERO,
            n => BACKOFF_FIRST.saturating_mul(1 << (n - 1).min(16)).min(BACKOFF_MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn cuts_every_two_seconds_never_exhaust_the_budget() {
        let mut b = SwitchBudget::new(8, 2 * S);
        // Two failures per source, one switch per source: 4 s delivered per switch.
        for _ in 0..10_000 {
            b.earn(2 * S);
            b.earn(2 * S);
            assert!(b.spend());
        }
    }

    #[test]
    fn sources_that_deliver_nothing_exhaust_it_after_cap_switches() {
        let mut b = SwitchBudget::new(3, 2 * S);
        let spent = (0..10).take_while(|_| {
            b.earn(Duration::ZERO);
            b.spend()
        });
        assert_eq!(spent.count(), 3);
        let mut none = SwitchBudget::new(0, 2 * S);
        none.earn(Duration::from_secs(3600));
        assert!(!none.spend(), "max_switches = 0 never switches");
    }

    #[test]
    fn delivering_less_than_it_costs_runs_out() {
        let mut b = SwitchBudget::new(8, 2 * S);
        // 0.5 s per switch earns a quarter back: 8 / 0.75 switches and a bit.
        let n = (0..100)
            .take_while(|_| {
                b.earn(S / 2);
                b.spend()
            })
            .count();
        assert!((10..=12).contains(&n), "{n}");
    }

    #[test]
    fn backoff_grows_on_nothing_and_resets_on_media() {
        let mut b = Backoff::default();
        assert_eq!(b.delay(), Duration::ZERO);
        let mut delays = Vec::new();
        for _ in 0..6 {
            b.failed(Duration::from_millis(100));
            delays.push(b.delay().as_millis());
        }
        assert_eq!(delays, [200, 400, 800, 1600, 3000, 3000]);
        b.failed(PRODUCTIVE);
        assert_eq!(b.delay(), Duration::ZERO);
        for _ in 0..100 {
            b.failed(Duration::ZERO);
        }
        assert_eq!(b.delay(), BACKOFF_MAX);
    }
}
