//! The measuring pieces of `loadgen`, as a library so that other instruments (the `chaos`
//! reliability harness) measure viewers exactly the way the load generator does instead of
//! re-implementing it:
//!
//! * [`client`]: one HTTP viewer — request, read until its end, TTFB, rate, longest gap, TS
//!   integrity — as a [`client::ClientRecord`], through reqwest or (`raw`) a plain socket;
//! * [`ts`]: incremental MPEG-TS sync and continuity checking;
//! * [`sys`]: CPU time, peak memory and the open-file limit from `/proc`;
//! * [`bare`]: the bare broadcast server of the `barecast` binary, the reference the relay
//!   benchmark measures tunerpool against in the same run.
//!
//! The command line, the run plan and the JSON report stay in the binary.

pub mod bare;
pub mod client;
mod raw;
pub mod sys;
pub mod ts;
