//! When a producer with no viewers gives up: the one rule every ring producer follows — a channel's session
//! ([`crate::session`]), a cluster follower ([`crate::cluster`]), a transcode ([`crate::transcode`]).
//!
//! The last viewer leaving starts the linger; a viewer coming back cancels it; when it runs out with still nobody
//! watching, the producer ends. The linger is counted from the *latest* change that left it idle, never from an
//! older one: under load a viewer may join and leave between two wake-ups of the producer, which then sees "idle"
//! twice in a row, and that viewer watched just now (its deadline was once kept from the first change in one copy
//! of this code and fixed in two places; this type is the one place now). Time is passed in, so it is tested
//! without a clock.

use std::time::Duration;

use tokio::time::Instant;

/// A producer's linger: whether it runs out, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Linger {
    deadline: Option<Instant>,
}

/// What a change of viewers made of the producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Watched {
    /// Nobody watches: it lingers until [`Linger::deadline`].
    Lingering,
    /// Somebody watches: no deadline.
    Running,
}

impl Linger {
    /// A producer that starts with nobody watching (`idle`) lingers from `now`; with viewers it has no deadline.
    pub(crate) fn new(idle: bool, linger: Duration, now: Instant) -> Linger {
        Linger { deadline: idle.then(|| now + linger) }
    }

    /// The viewers changed (at `now`), and the producer is `idle` now: an idle one lingers `linger()` from this
    /// change (asked only then: a session's linger depends on how popular its channel is at that moment).
    pub(crate) fn viewers_changed(&mut self, idle: bool, linger: impl FnOnce() -> Duration, now: Instant) -> Watched {
        if idle {
            self.deadline = Some(now + linger());
            Watched::Lingering
        } else {
            self.deadline = None;
            Watched::Running
        }
    }

    /// When it runs out, if it lingers.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The deadline passed: true when the producer should end (still `idle`). A viewer that came back before its
    /// change was seen cancels it instead.
    pub(crate) fn expired(&mut self, idle: bool) -> bool {
        self.deadline = None;
        idle
    }

    /// Resolves at the deadline; never without one (for a `select!` branch).
    pub(crate) async fn run_out(&self) {
        match self.deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINGER: Duration = Duration::from_secs(5);

    #[test]
    fn a_producer_started_without_viewers_lingers_from_its_start() {
        let t0 = Instant::now();
        assert_eq!(Linger::new(true, LINGER, t0).deadline(), Some(t0 + LINGER));
        assert_eq!(Linger::new(false, LINGER, t0).deadline(), None);
    }

    #[test]
    fn the_last_viewer_leaving_starts_it_and_one_coming_back_cancels_it() {
        let t0 = Instant::now();
        let mut l = Linger::new(false, LINGER, t0);
        assert_eq!(l.viewers_changed(true, || LINGER, t0 + Duration::from_secs(1)), Watched::Lingering);
        assert_eq!(l.deadline(), Some(t0 + Duration::from_secs(6)));
        assert_eq!(l.viewers_changed(false, || unreachable!("asked only when idle"), t0), Watched::Running);
        assert_eq!(l.deadline(), None);
    }

    #[test]
    fn it_counts_from_the_latest_change_not_the_first() {
        // A viewer joined and left between two wake-ups: the producer sees "idle" twice; the second counts.
        let t0 = Instant::now();
        let mut l = Linger::new(true, LINGER, t0);
        l.viewers_changed(true, || LINGER, t0 + Duration::from_secs(4));
        assert_eq!(l.deadline(), Some(t0 + Duration::from_secs(9)));
        // And the linger is asked again at each change (a channel that just became popular lingers longer).
        l.viewers_changed(true, || LINGER * 2, t0 + Duration::from_secs(5));
        assert_eq!(l.deadline(), Some(t0 + Duration::from_secs(15)));
    }

    #[test]
    fn it_runs_out_only_if_still_idle() {
        let t0 = Instant::now();
        let mut l = Linger::new(true, LINGER, t0);
        assert!(l.expired(true));
        // A viewer came back before its change was seen: no end, and no deadline until the next change.
        let mut l = Linger::new(true, LINGER, t0);
        assert!(!l.expired(false));
        assert_eq!(l.deadline(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn run_out_waits_for_the_deadline_or_forever() {
        let t0 = Instant::now();
        let l = Linger::new(true, LINGER, t0);
        l.run_out().await;
        assert!(Instant::now() >= t0 + LINGER);
        let none = Linger::new(false, LINGER, Instant::now());
        assert!(tokio::time::timeout(Duration::from_secs(3600), none.run_out()).await.is_err());
    }
}
