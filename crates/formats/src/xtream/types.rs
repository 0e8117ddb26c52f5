//! Typed Xtream Codes `player_api.php` responses.
//!
//! Field names follow the API. Every field is decoded through the lenient
//! helpers in [`super::de`], so wrong JSON types degrade to "absent" instead
//! of failing the element; only the ids (`stream_id`, `series_id`) are
//! required, because an element without one cannot be played or linked.
//! Blank strings are read as `None`.

use super::de;
use serde::{Deserialize, Serialize};

/// The `user_info` part of a login response: whether the credentials work and
/// what the subscription allows.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct UserInfo {
    #[serde(default, deserialize_with = "de::opt_string")]
    pub username: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub password: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub message: Option<String>,
    /// `auth: 1` for valid credentials; missing or `0` means rejected.
    #[serde(default, deserialize_with = "de::bool_like")]
    pub auth: bool,
    /// e.g. `"Active"`, `"Expired"`, `"Banned"`, `"Disabled"`.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub status: Option<String>,
    /// Expiry as a Unix timestamp; `None` for unlimited.
    #[serde(default, deserialize_with = "de::opt_i64")]
    pub exp_date: Option<i64>,
    #[serde(default, deserialize_with = "de::bool_like")]
    pub is_trial: bool,
    #[serde(default, deserialize_with = "de::opt_i64")]
    pub active_cons: Option<i64>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    pub created_at: Option<i64>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    pub max_connections: Option<i64>,
    /// e.g. `["m3u8", "ts", "rtmp"]`.
    #[serde(default, deserialize_with = "de::string_list")]
    pub allowed_output_formats: Vec<String>,
}

/// The `server_info` part of a login response: where the panel serves streams.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ServerInfo {
    #[serde(default, deserialize_with = "de::opt_string")]
    pub url: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub port: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub https_port: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub server_protocol: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub rtmp_port: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub timezone: Option<String>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    pub timestamp_now: Option<i64>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub time_now: Option<String>,
}

/// A whole login (`player_api.php` without `action`) response.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct AuthResponse {
    /// Defaults (with `auth == false`) when missing or malformed.
    #[serde(default, deserialize_with = "de::lenient")]
    pub user_info: UserInfo,
    /// `None` when missing or not an object (panels send it only on success).
    #[serde(default, deserialize_with = "de::lenient_opt")]
    pub server_info: Option<ServerInfo>,
}

/// One entry of `get_live_categories` / `get_vod_categories` /
/// `get_series_categories`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Category {
    /// Category ids are strings in the API (numbers are accepted too).
    #[serde(default, deserialize_with = "de::string")]
    pub category_id: String,
    #[serde(default, deserialize_with = "de::string")]
    pub category_name: String,
    #[serde(default, deserialize_with = "de::opt_i64")]
    pub parent_id: Option<i64>,
}

/// One entry of `get_live_streams`: a live channel.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct LiveStream {
    #[serde(default, deserialize_with = "de::opt_i64")]
    pub num: Option<i64>,
    #[serde(default, deserialize_with = "de::string")]
    pub name: String,
    /// `"live"`, `"created_live"`, `"radio_streams"`, ...
    #[serde(default, deserialize_with = "de::opt_string")]
    pub stream_type: Option<String>,
    /// Required: elements without a numeric `stream_id` are skipped.
    #[serde(deserialize_with = "de::id")]
    pub stream_id: i64,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub stream_icon: Option<String>,
    /// XMLTV channel id; `None` when the panel has no EPG mapping.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub epg_channel_id: Option<String>,
    /// Unix timestamp.
    #[serde(default, deserialize_with = "de::opt_i64")]
    pub added: Option<i64>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub category_id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub custom_sid: Option<String>,
    /// Catch-up available.
    #[serde(default, deserialize_with = "de::bool_like")]
    pub tv_archive: bool,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub direct_source: Option<String>,
    /// Catch-up window in days.
    #[serde(default, deserialize_with = "de::opt_i64")]
    pub tv_archive_duration: Option<i64>,
}

/// One entry of `get_vod_streams`: a movie.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct VodStream {
    #[serde(default, deserialize_with = "de::opt_i64")]
    pub num: Option<i64>,
    #[serde(default, deserialize_with = "de::string")]
    pub name: String,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub stream_type: Option<String>,
    /// Required: elements without a numeric `stream_id` are skipped.
    #[serde(deserialize_with = "de::id")]
    pub stream_id: i64,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub stream_icon: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub rating: Option<String>,
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub rating_5based: Option<f64>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    pub added: Option<i64>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub category_id: Option<String>,
    /// File extension to request (`mkv`, `mp4`, ...), as sent (case kept).
    #[serde(default, deserialize_with = "de::opt_string")]
    pub container_extension: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub custom_sid: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub direct_source: Option<String>,
}

/// One entry of `get_series`: a show (episodes come from `get_series_info`).
///
/// Deserialized through a private wire struct so that both `release_date`
/// and `releaseDate` are accepted, even when a panel sends both.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(from = "SeriesWire")]
pub struct Series {
    pub num: Option<i64>,
    pub name: String,
    pub series_id: i64,
    pub cover: Option<String>,
    pub plot: Option<String>,
    pub cast: Option<String>,
    pub director: Option<String>,
    pub genre: Option<String>,
    /// From `release_date` or, failing that, `releaseDate`.
    pub release_date: Option<String>,
    pub last_modified: Option<i64>,
    pub rating: Option<String>,
    pub rating_5based: Option<f64>,
    pub backdrop_path: Vec<String>,
    pub youtube_trailer: Option<String>,
    pub episode_run_time: Option<String>,
    pub category_id: Option<String>,
}

/// Wire form of [`Series`].
#[derive(Deserialize)]
struct SeriesWire {
    #[serde(default, deserialize_with = "de::opt_i64")]
    num: Option<i64>,
    #[serde(default, deserialize_with = "de::string")]
    name: String,
    #[serde(deserialize_with = "de::id")]
    series_id: i64,
    #[serde(default, deserialize_with = "de::opt_string")]
    cover: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    plot: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    cast: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    director: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    genre: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    release_date: Option<String>,
    #[serde(default, rename = "releaseDate", deserialize_with = "de::opt_string")]
    release_date_camel: Option<String>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    last_modified: Option<i64>,
    #[serde(default, deserialize_with = "de::opt_string")]
    rating: Option<String>,
    #[serde(default, deserialize_with = "de::opt_f64")]
    rating_5based: Option<f64>,
    #[serde(default, deserialize_with = "de::string_list")]
    backdrop_path: Vec<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    youtube_trailer: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    episode_run_time: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    category_id: Option<String>,
}

impl From<SeriesWire> for Series {
    fn from(w: SeriesWire) -> Self {
        Series {
            num: w.num,
            name: w.name,
            series_id: w.series_id,
            cover: w.cover,
            plot: w.plot,
            cast: w.cast,
            director: w.director,
            genre: w.genre,
            release_date: w.release_date.or(w.release_date_camel),
            last_modified: w.last_modified,
            rating: w.rating,
            rating_5based: w.rating_5based,
            backdrop_path: w.backdrop_path,
            youtube_trailer: w.youtube_trailer,
            episode_run_time: w.episode_run_time,
            category_id: w.category_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_stream_lenient() {
        let s: LiveStream = serde_json::from_str(
            r#"{"num":"3","name":123,"stream_id":"42","tv_archive":"1","tv_archive_duration":"7",
                "epg_channel_id":"","added":1.5e9,"category_id":5,"extra":{"x":[1]}}"#,
        )
        .unwrap();
        assert_eq!(s.num, Some(3));
        assert_eq!(s.name, "123");
        assert_eq!(s.stream_id, 42);
        assert!(s.tv_archive);
        assert_eq!(s.tv_archive_duration, Some(7));
        assert_eq!(s.epg_channel_id, None);
        assert_eq!(s.added, Some(1_500_000_000));
        assert_eq!(s.category_id.as_deref(), Some("5"));
        assert!(serde_json::from_str::<LiveStream>(r#"{"name":"x"}"#).is_err());
    }

    #[test]
    fn series_release_date_both_spellings() {
        let s: Series = serde_json::from_str(r#"{"series_id":1,"releaseDate":"2001","backdrop_path":"a"}"#).unwrap();
        assert_eq!(s.release_date.as_deref(), Some("2001"));
        assert_eq!(s.backdrop_path, vec!["a"]);
        let s: Series = serde_json::from_str(r#"{"series_id":1,"releaseDate":"2001","release_date":"2002"}"#).unwrap();
        assert_eq!(s.release_date.as_deref(), Some("2002"));
    }

    #[test]
    fn auth_tolerates_bad_server_info() {
        let a: AuthResponse = serde_json::from_str(r#"{"user_info":{"auth":0},"server_info":[]}"#).unwrap();
        assert!(!a.user_info.auth);
        assert_eq!(a.server_info, None);
        let a: AuthResponse = serde_json::from_str(r#"{"user_info":[]}"#).unwrap();
        assert_eq!(a, AuthResponse::default());
    }
}
