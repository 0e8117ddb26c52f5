//! `chaos`: the reliability harness. It runs the real `tunerpool` binary (one process per
//! instance, each with its own SQLite data dir), the simulated provider (`fakeprovider`), a
//! real `redis-server` and load against each other, over real sockets, and reports figures
//! against targets (see `RELIABILITY.md` at the repository root):
//!
//! | id | scenario | module |
//! |---|---|---|
//! | R1 | request storm on a small pool, 1 and 2 instances | [`scenarios::storm`] |
//! | R2 | random join/leave/zap/abort churn over TS, HLS and VOD | [`scenarios::churn`] |
//! | R3 | `kill -9` of an instance holding slots | [`scenarios::kill`] |
//! | R4 | provider faults and the gap a viewer sees | [`scenarios::faults`] |
//! | R5 | one slow viewer among normal ones | [`scenarios::slow`] |
//! | R6 | mutated real playlists, guides, HLS and Xtream JSON | [`scenarios::fuzz`] |
//! | S1 | routes without credentials, bad-login storms, secrets in output | [`scenarios::security`] |
//!
//! Every scenario takes a [`Scale`]: `Quick` is the bounded run of the test suite
//! (`tests/quick.rs`), `Full` the run of `bench/chaos.sh`.

pub mod env;
pub mod mutate;
pub mod report;
pub mod scenarios;
pub mod view;

pub use report::{Figure, ScenarioReport};

/// How big a run is.
///
/// Exists so one scenario implementation serves both the test suite (small, bounded in time)
/// and the full figures (the sizes the issue names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
pub enum Scale {
    /// The bounded run of the test suite.
    Quick,
    /// The full run (`bench/chaos.sh`).
    Full,
}

impl Scale {
    /// `quick` or `full` value by scale.
    pub fn pick<T>(self, quick: T, full: T) -> T {
        match self {
            Scale::Quick => quick,
            Scale::Full => full,
        }
    }
}
