//! What a simulated provider offers (accounts, catalog size, bitrate) and how strict it is.
//!
//! Everything here is plain data so that tests can build it in code and the binary can read
//! it from a TOML file. Missing fields take their [`Default`] value.

use serde::{Deserialize, Serialize};

/// The whole description of one simulated provider.
///
/// Exists so that a test states, in one value, the provider it measures against: which
/// accounts exist and how many connections each may open, how big the catalog is, how fast
/// live streams are paced and how the connection limit is enforced.
///
/// `Default` is the same as [`FakeConfig::demo`].
///
/// TOML example (every field optional):
///
/// ```toml
/// live_channels = 200
/// live_categories = 10
/// bitrate_bps = 8000000
/// limit_mode = { mode = "cut_oldest" }   # or { mode = "refuse", status = 403 }
/// release_delay_ms = 500                  # slow to notice closes
///
/// [[accounts]]
/// username = "user1"
/// password = "pass1"
/// max_connections = 2
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FakeConfig {
    /// The subscriber accounts.
    pub accounts: Vec<AccountSpec>,
    /// Number of generated live channels, "Channel 1".."Channel N" with stream ids 1..=N.
    pub live_channels: usize,
    /// Live categories; channels are spread round-robin (channel i is in category ((i-1) % n) + 1).
    pub live_categories: usize,
    /// Number of generated movies.
    pub vod_count: usize,
    /// Movie categories.
    pub vod_categories: usize,
    /// Number of generated series (each has 2 seasons of 3 episodes).
    pub series_count: usize,
    /// Series categories.
    pub series_categories: usize,
    /// Live pacing rate. `None` = the sample file's real rate (2 277 244 bytes per 10 s).
    pub bitrate_bps: Option<u64>,
    /// How `max_connections` is enforced (changeable at run time: `POST /_control/limits`).
    pub limit_mode: LimitMode,
    /// Slow to notice: a closed connection keeps counting against its account's limit for this long, as
    /// real panels that see a close only after milliseconds to seconds. 0 = noticed at once. Changeable at
    /// run time (`POST /_control/limits`).
    pub release_delay_ms: u64,
    /// An HLS viewer with no request for this long is considered gone (its connection is released).
    pub hls_session_timeout_ms: u64,
    /// Live channel names; `{i}` stands for the channel's index (default `"Channel {i}"`).
    /// A second provider that carries the same channels under other names uses e.g.
    /// `"UK: CHANNEL {i} HD"`.
    pub live_name_template: String,
    /// Added to the `{i}` of live names and EPG ids: channel 1 is named and guided as channel
    /// `1 + live_name_offset`, so two providers can carry overlapping ranges of channels.
    pub live_name_offset: u64,
    /// Added to every stream id (live, movie, episode): a panel that renumbered its
    /// streams. Also changeable at run time with `FakeProvider::renumber`.
    pub stream_id_offset: u64,
    /// Whether live channels have EPG ids (`ch{i}.fake`, none for every 7th). Off: no
    /// channel has one, so matching must go by name.
    pub live_epg_ids: bool,
    /// Channels that send something other than the 720p sample: another fixture (HEVC,
    /// interlaced SD, MPEG-2, audio only) or a dead variant (an HTML page). Channels not
    /// listed send the sample. In TOML: `live_media = [{ channel = 3, media = "hevc_360p25" }]`.
    pub live_media: Vec<ChannelMedia>,
}

/// What one live channel sends (see [`FakeConfig::live_media`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelMedia {
    /// The channel's index `{i}` (1-based; stable when the provider renumbers its streams).
    pub channel: u64,
    /// What it sends.
    pub media: LiveMedia,
}

/// The media a live channel sends: a fixture of `testdata/media/` looped at its own
/// bitrate (or at [`FakeConfig::bitrate_bps`] when set), or a dead variant.
///
/// Exists so that tests of source quality (passive measurement, probing, ranking) have
/// channels that differ in resolution, frame rate, codec and bitrate, and channels that
/// are dead in the ways real ones are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LiveMedia {
    /// `sample-720p.ts`: H.264 Main 1280x720 25 fps + AAC, ~1.8 Mbit/s.
    #[default]
    Sample720p,
    /// `hevc-360p25.ts`: HEVC Main 640x360 25 fps + AAC and E-AC-3, ~0.55 Mbit/s.
    Hevc360p25,
    /// `h264-576i25.ts`: H.264 High 720x576 interlaced 25 fps + AC-3 5.1.
    H264_576i25,
    /// `mpeg2-576i25.ts`: MPEG-2 720x576 interlaced 25 fps + MP2.
    Mpeg2_576i25,
    /// `radio-aac.ts`: AAC only, no video.
    RadioAac,
    /// Not a stream: a `200 text/html` page, as a panel's error or "expired" page.
    Html,
    /// A placeholder clip: the 10 s sample played once from its start, then the panel
    /// ends the response, as panels do with their "channel offline" clips.
    Placeholder,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig::demo()
    }
}

impl FakeConfig {
    /// A small provider: accounts `user1`/`pass1` and `user2`/`pass2` (max 1 connection each),
    /// 20 live channels in 4 categories, 10 movies in 2 categories, 3 series in 1 category.
    pub fn demo() -> Self {
        FakeConfig {
            accounts: vec![AccountSpec::new("user1", "pass1", 1), AccountSpec::new("user2", "pass2", 1)],
            live_channels: 20,
            live_categories: 4,
            vod_count: 10,
            vod_categories: 2,
            series_count: 3,
            series_categories: 1,
            bitrate_bps: None,
            limit_mode: LimitMode::default(),
            release_delay_ms: 0,
            hls_session_timeout_ms: 10_000,
            live_name_template: "Channel {i}".to_string(),
            live_name_offset: 0,
            stream_id_offset: 0,
            live_epg_ids: true,
            live_media: Vec::new(),
        }
    }

    /// The same catalog as [`FakeConfig::demo`] but with exactly the given accounts.
    pub fn with_accounts(accounts: Vec<AccountSpec>) -> Self {
        FakeConfig { accounts, ..FakeConfig::demo() }
    }
}

/// One subscriber account of the simulated provider.
///
/// Exists because every provider behaviour that matters to tunerpool (connection limit,
/// expiry, bans, broken credentials) hangs off the account. Can be changed at run time with
/// `FakeProvider::update_account` or `POST /_control/accounts/{username}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountSpec {
    /// Login name.
    pub username: String,
    /// Password (compared exactly).
    pub password: String,
    /// Concurrent stream connections allowed; `0` = unlimited.
    pub max_connections: u32,
    /// Expiry as unix seconds; `None` = provider start + 30 days.
    pub exp_date: Option<i64>,
    /// `"Active"` (default), `"Expired"`, `"Banned"`, `"Disabled"`. Streams need `"Active"`.
    pub status: String,
    /// `false` makes the account behave exactly like wrong credentials.
    pub auth: bool,
    /// Reported as `is_trial` in `user_info`.
    pub is_trial: bool,
}

impl Default for AccountSpec {
    fn default() -> Self {
        AccountSpec {
            username: String::new(),
            password: String::new(),
            max_connections: 1,
            exp_date: None,
            status: "Active".to_string(),
            auth: true,
            is_trial: false,
        }
    }
}

impl AccountSpec {
    /// An active account with the given credentials and connection limit.
    pub fn new(username: &str, password: &str, max_connections: u32) -> Self {
        AccountSpec {
            username: username.to_string(),
            password: password.to_string(),
            max_connections,
            ..AccountSpec::default()
        }
    }
}

/// How the provider enforces `max_connections` when an account already has that many open.
///
/// Exists because real panels differ: most refuse the new connection, some kick the oldest
/// viewer instead. Serialized as `{ "mode": "refuse", "status": 403 }` or `{ "mode": "cut_oldest" }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum LimitMode {
    /// Answer the new request with `status` (empty body) and count it in `refused`.
    Refuse {
        /// HTTP status of the refusal (default 403).
        #[serde(default = "default_refuse_status")]
        status: u16,
    },
    /// End the account's oldest open connection and hand its slot to the new request
    /// (counted in `cut`). `open` never exceeds the limit, not even momentarily.
    CutOldest,
}

fn default_refuse_status() -> u16 {
    403
}

impl Default for LimitMode {
    fn default() -> Self {
        LimitMode::Refuse { status: 403 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trip_with_defaults() {
        let cfg: FakeConfig = toml::from_str(
            r#"
            live_channels = 7
            limit_mode = { mode = "cut_oldest" }
            [[accounts]]
            username = "a"
            password = "b"
            "#,
        )
        .unwrap();
        assert_eq!(cfg.live_channels, 7);
        assert_eq!(cfg.live_categories, 4);
        assert_eq!(cfg.limit_mode, LimitMode::CutOldest);
        assert_eq!(cfg.accounts.len(), 1);
        assert_eq!(cfg.accounts[0].max_connections, 1);
        assert_eq!(cfg.accounts[0].status, "Active");
        assert!(cfg.accounts[0].auth);

        let cfg: FakeConfig = toml::from_str("limit_mode = { mode = \"refuse\" }").unwrap();
        assert_eq!(cfg.limit_mode, LimitMode::Refuse { status: 403 });
        assert_eq!(cfg.accounts.len(), 2);
    }
}
