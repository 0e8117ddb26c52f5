//! The catalog's domain types, as the rest of tunerpool sees them.

use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::fields::{
    nullable, serialize_redacted_opt_text, serialize_redacted_opt_url, serialize_redacted_text, serialize_redacted_url,
};
use crate::secret::Secret;

/// The capacity of an AGTV-like provider, which cannot tell its own limit.
pub const AGTV_DEFAULT_MAX_STREAMS: i64 = 5;

/// How a provider is reached and what it can tell about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// An Xtream Codes panel: `player_api.php`, per-account limits and details.
    Xtream,
    /// A plain M3U playlist (URL or file).
    M3u,
    /// An M3U-only service with a fixed capacity ([`AGTV_DEFAULT_MAX_STREAMS`] by default).
    Agtv,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Xtream => "xtream",
            ProviderKind::M3u => "m3u",
            ProviderKind::Agtv => "agtv",
        }
    }
}

impl std::str::FromStr for ProviderKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "xtream" | "xc" | "xtream-codes" => Ok(ProviderKind::Xtream),
            "m3u" => Ok(ProviderKind::M3u),
            "agtv" => Ok(ProviderKind::Agtv),
            other => Err(format!("unknown provider kind {other:?}: use xtream, m3u or agtv")),
        }
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a user gives to add a provider. For Xtream the username/password
/// become the provider's *primary* account.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProvider {
    #[serde(default)]
    #[schema(required = true, pattern = r"\S", max_length = 200)]
    pub name: String,
    #[schema(required = true, value_type = ProviderKind)]
    pub kind: Option<ProviderKind>,
    /// Xtream: the panel's http(s) URL; M3U: the playlist's URL or file path.
    #[serde(default)]
    #[schema(pattern = r"\S")]
    pub url: String,
    pub username: Option<String>,
    /// Write-only: accepted, never returned.
    #[schema(value_type = Option<String>, format = Password, write_only)]
    pub password: Option<Secret>,
    pub epg_url: Option<String>,
    pub user_agent: Option<String>,
    #[serde(default)]
    #[schema(minimum = 0)]
    pub priority: i64,
    #[schema(minimum = 0)]
    pub max_streams: Option<i64>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

impl NewProvider {
    /// Every problem with this input, each naming its field.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if self.name.trim().is_empty() {
            errs.push(FieldError::new("name", "must not be empty"));
        } else if self.name.len() > 200 {
            errs.push(FieldError::new("name", "must be at most 200 characters"));
        }
        let Some(kind) = self.kind else {
            errs.push(FieldError::new("kind", "is required: xtream, m3u or agtv"));
            return errs;
        };
        match kind {
            ProviderKind::Xtream => {
                if let Err(e) = crate::location::normalize_base_url(&self.url) {
                    errs.push(FieldError::unusable("url", e));
                }
                if self.username.as_deref().is_none_or(|u| u.trim().is_empty()) {
                    errs.push(FieldError::new("username", "is required for an Xtream provider"));
                }
                if self.password.as_ref().is_none_or(Secret::is_empty) {
                    errs.push(FieldError::new("password", "is required for an Xtream provider"));
                }
            }
            ProviderKind::M3u | ProviderKind::Agtv => {
                if let Err(e) = crate::location::M3uSource::parse(&self.url) {
                    errs.push(FieldError::unusable("url", e));
                }
            }
        }
        if let Some(epg) = self.epg_url.as_deref().filter(|s| !s.trim().is_empty()) {
            if let Err(e) = crate::location::parse_http_url(epg) {
                errs.push(FieldError::unusable("epg_url", e));
            }
        }
        if let Some(m) = self.max_streams {
            if m < 0 {
                errs.push(FieldError::new("max_streams", format!("must be 0 or more (got {m})")));
            }
        }
        if self.priority < 0 {
            errs.push(FieldError::new("priority", format!("must be 0 or more (got {})", self.priority)));
        }
        errs
    }
}

/// Outcome of the last catalog sync of a provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SyncStatus {
    /// The last attempt (Unix seconds).
    pub last_sync_at: Option<i64>,
    pub ok: Option<bool>,
    /// The last successful sync (Unix seconds).
    pub last_ok_at: Option<i64>,
    #[serde(serialize_with = "serialize_redacted_opt_text")]
    pub error: Option<String>,
    pub duration_ms: Option<i64>,
    pub live: i64,
    pub vod: i64,
    pub series: i64,
    pub skipped: i64,
}

/// A provider as stored. Serializing it is safe for API responses: the URL
/// is redacted (an M3U URL often carries `password=`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Provider {
    pub id: i64,
    pub name: String,
    pub kind: ProviderKind,
    #[serde(serialize_with = "serialize_redacted_url")]
    pub url: String,
    #[serde(serialize_with = "serialize_redacted_opt_url")]
    pub epg_url: Option<String>,
    pub user_agent: Option<String>,
    pub priority: i64,
    pub max_streams: Option<i64>,
    pub enabled: bool,
    pub created_at: i64,
    pub sync: SyncStatus,
}

/// One set of credentials at a provider ("profile" in the seeds). The
/// password is a [`Secret`]: not serialized, not printed.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Account {
    pub id: i64,
    pub provider_id: i64,
    pub name: String,
    #[serde(serialize_with = "serialize_redacted_opt_url")]
    pub server_url: Option<String>,
    pub username: Option<String>,
    #[serde(skip)]
    pub password: Secret,
    pub search_pattern: Option<String>,
    pub replace_pattern: Option<String>,
    pub max_streams: Option<i64>,
    pub priority: i64,
    pub enabled: bool,
    pub is_primary: bool,
    pub created_at: i64,
    pub details: AccountDetails,
}

/// What the provider said about an account the last time it was asked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AccountDetails {
    pub auth: Option<bool>,
    pub status: Option<String>,
    pub exp_date: Option<i64>,
    pub is_trial: Option<bool>,
    pub max_connections: Option<i64>,
    pub active_cons: Option<i64>,
    pub last_checked: Option<i64>,
    #[serde(serialize_with = "serialize_redacted_opt_text")]
    pub last_error: Option<String>,
}

/// Kinds of catalog entries, used for groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Live = 0,
    Movie = 1,
    Series = 2,
}

impl MediaKind {
    /// What a playlist entry is, from its URL: Xtream-style `/movie/` and
    /// `/series/` paths are VOD, everything else is live.
    pub fn from_url(url: &str) -> MediaKind {
        let path = url.split(['?', '#']).next().unwrap_or(url);
        if path.contains("/movie/") {
            MediaKind::Movie
        } else if path.contains("/series/") {
            MediaKind::Series
        } else {
            MediaKind::Live
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Live => "live",
            MediaKind::Movie => "movie",
            MediaKind::Series => "series",
        }
    }
}

/// One place a channel can be played from: a provider's stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ChannelSource {
    /// The lineup source's id (0 outside the lineup: a movie or an episode).
    pub id: i64,
    pub stream_id: i64,
    pub provider_id: i64,
    pub provider: String,
    /// Xtream: the stream id; M3U: `tvg:{tvg-id}` or `url:{stream URL}`
    /// (shown with its credentials masked).
    #[serde(serialize_with = "serialize_redacted_text")]
    pub upstream_key: String,
    pub upstream_id: Option<i64>,
    pub position: i64,
    /// The stream's name at its provider.
    pub name: String,
    /// The stream's guide id at its provider.
    pub tvg_id: Option<String>,
}

/// A source whose stream its provider no longer lists (or whose provider
/// was removed): kept so that the stream is re-attached when it comes back
/// (by upstream key, tvg-id or normalized name).
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LostSource {
    /// The source's id (for splitting it off or removing it).
    pub id: i64,
    pub provider_id: i64,
    /// The provider's name; `None` when the provider was removed.
    pub provider: Option<String>,
    #[serde(serialize_with = "serialize_redacted_text")]
    pub upstream_key: String,
    pub tvg_id: Option<String>,
    pub position: i64,
}

/// A channel of the lineup: the user's (its id, number, name, group, logo,
/// guide id and hidden flag survive re-syncs and provider renumbering),
/// played from any of its sources at any provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Channel {
    pub id: i64,
    pub name: String,
    pub group: Option<String>,
    /// The lineup group's id (what users' `allowed_groups` list).
    pub group_id: Option<i64>,
    pub tvg_id: Option<String>,
    pub logo: Option<String>,
    /// The channel number, as text (what players show).
    pub number: Option<String>,
    /// False when the operator hid it (or its group).
    pub enabled: bool,
    /// False when no source can be played: every stream is gone, or every
    /// provider is disabled. The channel and its edits stay.
    pub available: bool,
    /// True: sources are ranked by provider (kind, availability, priority),
    /// their order breaking ties; false: tried in their order.
    pub auto_order: bool,
    /// True: the relay keeps its session running (and holding a slot) with
    /// no viewers, restarting it when it fails.
    pub always_on: bool,
    /// Where it can be played from, in the channel's order (selection ranks
    /// them by provider when `auto_order`).
    pub sources: Vec<ChannelSource>,
    /// Sources whose stream is gone, kept for re-attaching.
    pub lost_sources: Vec<LostSource>,
}

/// Filter and page for listing channels.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ChannelQuery {
    /// 1-based page number.
    pub page: Option<u32>,
    pub per_page: Option<u32>,
    /// Exact group name.
    pub group: Option<String>,
    /// Lineup group id.
    pub group_id: Option<i64>,
    /// Case-insensitive substring of the name.
    pub q: Option<String>,
    /// Only channels that can (true) or cannot (false) be played.
    pub available: Option<bool>,
}

/// Largest page the API hands out.
pub const MAX_PER_PAGE: u32 = 1000;
pub const DEFAULT_PER_PAGE: u32 = 100;

impl ChannelQuery {
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if self.page == Some(0) {
            errs.push(FieldError::new("page", "pages start at 1"));
        }
        if let Some(p) = self.per_page {
            if p == 0 || p > MAX_PER_PAGE {
                errs.push(FieldError::new("per_page", format!("must be between 1 and {MAX_PER_PAGE} (got {p})")));
            }
        }
        errs
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub total: i64,
    pub page: u32,
    pub per_page: u32,
    pub items: Vec<T>,
}

/// A lineup group with how many channels it holds.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct GroupCount {
    pub id: i64,
    pub name: String,
    pub channels: i64,
    /// Its place in the lineup (outputs list groups in this order).
    pub position: i64,
    /// Hidden groups hide their channels from every output.
    pub hidden: bool,
}

/// Changes to an account (PATCH), also the input for creating one (POST).
/// Absent fields are left alone; `null` clears an optional value (e.g.
/// `"max_streams": null` goes back to the detected limit).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    #[schema(max_length = 200)]
    pub name: Option<String>,
    /// Empty or `null`: use the provider's URL.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub server_url: Option<Option<String>>,
    #[schema(pattern = r"\S")]
    pub username: Option<String>,
    /// Write-only: accepted, never returned.
    #[schema(value_type = Option<String>, format = Password, write_only, min_length = 1)]
    pub password: Option<Secret>,
    /// `null`: use the limit the panel reports.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub max_streams: Option<Option<i64>>,
    #[schema(minimum = 0)]
    pub priority: Option<i64>,
    pub enabled: Option<bool>,
    /// Only `true` is meaningful: make this the provider's primary account.
    pub is_primary: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub search_pattern: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub replace_pattern: Option<Option<String>>,
}

impl AccountPatch {
    /// Field-named problems with the values given (the regex syntax of the
    /// patterns is checked by the pool, which knows how they are applied).
    pub fn validate(&self, kind: ProviderKind, creating: bool) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if let Some(name) = &self.name {
            if name.len() > 200 {
                errs.push(FieldError::new("name", "must be at most 200 characters"));
            }
        }
        if let Some(Some(url)) = &self.server_url {
            if !url.trim().is_empty() {
                if let Err(e) = crate::location::normalize_base_url(url) {
                    errs.push(FieldError::unusable("server_url", e));
                }
            }
        }
        if let Some(u) = &self.username {
            if u.trim().is_empty() {
                errs.push(FieldError::new("username", "must not be empty"));
            }
        }
        if matches!(&self.password, Some(p) if p.is_empty()) {
            errs.push(FieldError::new("password", "must not be empty"));
        }
        if let Some(Some(m)) = self.max_streams {
            if m < 0 {
                errs.push(FieldError::new(
                    "max_streams",
                    format!("must be 0 or more (got {m}); leave it empty to use the detected limit"),
                ));
            }
        }
        if let Some(p) = self.priority {
            if p < 0 {
                errs.push(FieldError::new("priority", format!("must be 0 or more (got {p})")));
            }
        }
        if self.is_primary == Some(false) {
            errs.push(FieldError::new("is_primary", "only true is accepted: make another account primary instead"));
        }
        // What the provider's kind asks for: the body alone cannot say (422).
        if creating && kind == ProviderKind::Xtream {
            if self.username.is_none() {
                errs.push(FieldError::unusable("username", "is required for an account of an Xtream provider"));
            }
            if self.password.is_none() {
                errs.push(FieldError::unusable("password", "is required for an account of an Xtream provider"));
            }
        }
        if kind != ProviderKind::Xtream && self.server_url.as_ref().is_some_and(Option::is_some) {
            errs.push(FieldError::unusable(
                "server_url",
                "applies to Xtream providers only; M3U accounts derive their URLs with search_pattern/replace_pattern",
            ));
        }
        errs
    }
}

/// Changes to a provider (PATCH). The kind cannot change: add a new provider.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderPatch {
    #[schema(pattern = r"\S", max_length = 200)]
    pub name: Option<String>,
    #[schema(pattern = r"\S")]
    pub url: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub epg_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub user_agent: Option<Option<String>>,
    #[schema(minimum = 0)]
    pub priority: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub max_streams: Option<Option<i64>>,
    pub enabled: Option<bool>,
}

impl ProviderPatch {
    pub fn validate(&self, kind: ProviderKind) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if let Some(name) = &self.name {
            if name.trim().is_empty() {
                errs.push(FieldError::new("name", "must not be empty"));
            } else if name.len() > 200 {
                errs.push(FieldError::new("name", "must be at most 200 characters"));
            }
        }
        if let Some(url) = &self.url {
            let check = match kind {
                ProviderKind::Xtream => crate::location::normalize_base_url(url).map(|_| ()),
                _ => crate::location::M3uSource::parse(url).map(|_| ()),
            };
            if let Err(e) = check {
                errs.push(FieldError::unusable("url", e));
            }
        }
        if let Some(Some(epg)) = &self.epg_url {
            if let Err(e) = crate::location::parse_http_url(epg) {
                errs.push(FieldError::unusable("epg_url", e));
            }
        }
        if let Some(Some(m)) = self.max_streams {
            if m < 0 {
                errs.push(FieldError::new("max_streams", format!("must be 0 or more (got {m})")));
            }
        }
        if let Some(p) = self.priority {
            if p < 0 {
                errs.push(FieldError::new("priority", format!("must be 0 or more (got {p})")));
            }
        }
        errs
    }
}

/// What the relay needs to open one stream: where it is and how to ask.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSource {
    pub stream_id: i64,
    pub provider_id: i64,
    /// Xtream stream id (the URL is built per account).
    pub upstream_id: Option<i64>,
    /// M3U: the stream URL as the playlist lists it (the primary account's).
    pub url: Option<String>,
    /// Extra request headers from the playlist (user-agent, referer).
    pub headers: Vec<(String, String)>,
}
