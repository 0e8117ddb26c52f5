//! Knobs of the relay, from the `[relay]` and `[pool]` configuration.

use std::time::Duration;

use tunerpool_pool::select::AccountPolicy;

/// How sessions behave. The defaults are what the configuration defaults to.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// How long a session with no viewers keeps its upstream before closing
    /// (a viewer coming back within it joins at once).
    pub linger: Duration,
    /// How long a request that finds no free slot waits for one (players
    /// often open the new channel before closing the old one).
    pub acquire_wait: Duration,
    /// No upstream bytes for this long counts as a failure.
    pub stall_timeout: Duration,
    /// Time to connect, get the response head and the first bytes.
    pub open_timeout: Duration,
    /// How much of the stream a session's shared buffer holds, at the bitrate it measures (`relay.buffer_seconds`);
    /// it also holds at least the last GOP plus a quarter, so that a joining viewer starts at a keyframe.
    pub buffer_seconds: Duration,
    /// The most a session's shared buffer may hold, whatever the bitrate or GOP (`relay.buffer_max`).
    pub buffer_bytes: usize,
    /// Target size of a buffered chunk (a multiple of 188).
    pub chunk_bytes: usize,
    /// A partial chunk is handed to viewers after this long.
    pub chunk_delay: Duration,
    /// A session wakes its viewers at most this often (`relay.wake_interval`); what was buffered in between goes
    /// to each viewer in one write. Adds at most this (plus `chunk_delay`) to the live delay, nothing to a join or
    /// to a cold start's first keyframe; zero wakes them for every chunk.
    pub wake_interval: Duration,
    /// Upstream switches (failovers) a session may make in a row before giving up; delivered media earns them
    /// back, one per `healthy_after`.
    pub max_switches: u32,
    /// Jumps to the live edge a viewer may need before it is dropped as too slow.
    pub max_jumps: u32,
    /// A live viewer whose connection takes no byte for this long is dropped: a client that stopped reading (or a
    /// peer gone without a word) would otherwise hold its place, its user's stream and the upstream forever, since
    /// it cannot jump while its write waits. A shorter pause resumes at the live edge.
    pub viewer_stall: Duration,
    /// A source that streamed this long before failing gets its reconnect back, and this much delivered media
    /// earns the session one switch back: a provider that cuts every few seconds never ends the stream.
    pub healthy_after: Duration,
    pub policy: AccountPolicy,
    /// An HLS output nobody polled for this long leaves its session.
    pub hls_idle: Duration,
    /// The longest a viewer of a channel that just started waits for its first keyframe (one GOP is usually
    /// 0.5 to 4 s); after it, the viewer gets the stream from wherever it is.
    pub keyframe_wait: Duration,
    /// What a downstream user at its own limit gets for a new stream.
    pub user_limit_policy: crate::users::UserLimitPolicy,
    /// A live upstream's first quality report is handed to the catalog once it has streamed this long and its
    /// stream has said what it is (and always when the connection ends).
    pub quality_first_after: Duration,
    /// Then again every this long while it streams.
    pub quality_every: Duration,
    /// How much each aspect of a source's measured quality counts in its score.
    pub quality_weights: tunerpool_domain::quality::QualityWeights,
    /// Whether the provider ranking or the quality score orders a channel's sources first.
    pub quality_policy: tunerpool_domain::quality::QualityPolicy,
    /// Active probing of the sources nobody watches.
    pub probe: crate::probe::ProbeSettings,
    /// Shared transcoding: ffmpeg and the profiles viewers may ask for.
    pub transcode: crate::transcode::TranscodeSettings,
    /// Slots kept free on each account (and capped provider) for viewers of
    /// at least `reserved_priority`: a viewer below it starts a session only
    /// where this many stay free after its own (`pool.reserved_slots`).
    pub reserved_slots: u32,
    /// The priority that may use the reserved slots (`pool.reserved_priority`).
    pub reserved_priority: u8,
    /// When nothing is free, a viewer's request stops the session of lowest
    /// priority below its own on an account the channel could use (`pool.preempt`).
    pub preempt: bool,
    /// Viewers one shared session may have; 0: no cap (`relay.max_viewers_per_session`).
    pub max_viewers_per_session: u32,
    /// How long a channel started at least `warm_after_starts` times in the
    /// last hour lingers with no viewers (when longer than `linger`; 0: off).
    pub warm_linger: Duration,
    /// Starts within the last hour that make a channel warm.
    pub warm_after_starts: u32,
    /// Whether an always-on session with no viewers yields its slot to a
    /// viewer's request like any idle session.
    pub always_on_yields: bool,
}

impl RelaySettings {
    /// How a session's shared buffer sizes itself.
    pub fn ring_sizing(&self) -> crate::ring::RingSizing {
        crate::ring::RingSizing { seconds: self.buffer_seconds, max_bytes: self.buffer_bytes }
    }
}

impl Default for RelaySettings {
    fn default() -> Self {
        RelaySettings {
            linger: Duration::from_secs(3),
            acquire_wait: Duration::from_secs(3),
            stall_timeout: Duration::from_secs(5),
            open_timeout: Duration::from_secs(10),
            buffer_seconds: Duration::from_secs(1),
            buffer_bytes: 16 * 1024 * 1024,
            chunk_bytes: 188 * 174,
            chunk_delay: Duration::from_millis(50),
            wake_interval: Duration::from_millis(100),
            max_switches: 8,
            max_jumps: 5,
            viewer_stall: Duration::from_secs(30),
            healthy_after: Duration::from_secs(2),
            policy: AccountPolicy::Priority,
            hls_idle: Duration::from_secs(20),
            keyframe_wait: Duration::from_secs(5),
            user_limit_policy: crate::users::UserLimitPolicy::ReplaceOldest,
            quality_first_after: Duration::from_secs(10),
            quality_every: Duration::from_secs(300),
            quality_weights: Default::default(),
            quality_policy: Default::default(),
            probe: Default::default(),
            transcode: Default::default(),
            reserved_slots: 0,
            reserved_priority: 5,
            preempt: false,
            max_viewers_per_session: 0,
            warm_linger: Duration::ZERO,
            warm_after_starts: 3,
            always_on_yields: true,
        }
    }
}
