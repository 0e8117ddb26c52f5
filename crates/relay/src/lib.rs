//! Live sessions: one upstream connection per live channel, shared by all its viewers.
//!
//! - [`ts`]: MPEG-TS tools (probe, packet alignment, keyframe detection, chunking), pure and synchronous.
//! - [`ring`]: the bounded shared buffer one upstream reader writes and every viewer reads at its own pace.
//! - [`session`]: one live session — the upstream reader task with its lease, failover and linger.
//! - `retry`: how long a session keeps trying a flaky provider (a switch budget streaming earns back, backoff).
//! - [`quality`]: passive source quality (codecs, picture size, frame rate, bitrates, dead-input verdicts) from the
//!   TS bytes.
//! - [`measure`]: every live upstream connection measured by a [`quality::Analyzer`] fed on the reader task,
//!   its reports handed to the catalog off the hot path.
//! - [`probe`]: active probing of the sources nobody watches, with slots a reserve leaves spare, stopped the
//!   moment a viewer needs the slot; and its scheduler.
//! - [`transcode`]: one ffmpeg per (channel, profile), fed from the channel's session, its output a session of
//!   its own that every viewer of that profile shares; supervised (restart, stderr, kill and reap).
//! - [`cluster`]: several instances as one gateway — one instance owns each channel's session (a record in
//!   Redis), the others follow its stream over an internal endpoint; takeover when the owner dies.
//! - [`catalog`]: the narrow trait through which the relay reads channels and accounts and records events.
//! - [`relay`]: the sessions of all channels: join or start, zapping rules, stop, status.
//! - `hls`: live HLS upstreams (master → variant → segments in order, paced) as one TS byte stream.
//! - `hls_out`: HLS output — a channel's shared stream cut at keyframes into segments for `.m3u8` clients.
//! - `source`: from a channel to a leased slot and the URL for that account.
//! - [`vod`]: movies and episodes, proxied with `Range` passed through.
//! - [`users`]: downstream users' own connection limits (replace the oldest stream, or refuse).

pub mod catalog;
pub mod cluster;
mod hls;
mod hls_out;
pub mod measure;
pub mod metrics;
pub mod probe;
pub mod quality;
pub mod relay;
mod retry;
pub mod ring;
pub mod session;
pub mod settings;
mod source;
pub mod transcode;
pub mod ts;
pub mod users;
pub mod vod;

pub use catalog::{Catalog, LookupError, VodSource};
pub use measure::SourceMeasurement;
pub use quality::{Analyzer, QualityReport, Verdict};
pub use ring::{Next, Reader, Ring, RingSizing, RingStats};
pub use ts::{probe, Aligner, Chunk, Chunker, Continuity, KeyframeDetector, NotTs, PACKET};
pub use users::{UserLimitPolicy, UserQuota, Viewer};
