//! An HDHomeRun network tuner, as Plex, Jellyfin, Emby and Channels DVR
//! discover one: `discover.json`, `lineup.json`, `lineup_status.json`,
//! `device.xml`.
//!
//! These clients cannot send credentials, so each user gets its own tuner
//! at `/hdhr/{user}/{pass}` (enter `http://HOST:PORT/hdhr/USER/PASS` as the
//! tuner address). Apps that accept only an IP address get one more tuner
//! at the root (`/discover.json`, …), bound to the downstream user named by
//! `hdhomerun.root_user` ([`HdhrSettings`]): it is off unless configured,
//! serves only what that user may see, counts against that user's limits,
//! and the URLs it announces carry no password. The same handlers serve
//! both; only the extractor that resolves the user differs ([`PathLogin`],
//! [`RootLogin`]). The root tuner may also answer discovery on the LAN
//! (`discovery`: SSDP and SiliconDust's UDP protocol).
//!
//! The device id is stable per installation and user; the tuner count is
//! what the pool can serve now (capped by the user's own limit). Channels
//! tune at `auto/v{channel id}`, which answers with MPEG-TS bytes as soon as
//! the session runs — the relay starts every viewer at the latest keyframe
//! already buffered, and Plex gives up on a tuner that sends a 200 and then
//! nothing.

pub(crate) mod discovery;
mod packet;
mod ssdp;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tunerpool_catalog::outputs::LiveItem;
use tunerpool_catalog::quality::SourceFormat;
use tunerpool_catalog::{User, UserStatus};

use super::auth::Refused;
use super::body::{paged, Keyed, Paged, PAGE};
use super::{base_url, internal, pool_capacity, refusal, text, Client, PathLogin};
use crate::AppState;

/// Most tuners announced, whatever the pool could do (an M3U provider
/// without a limit would otherwise announce billions).
const MAX_TUNERS: u32 = 64;

/// The model this tuner claims to be (Plex and Jellyfin only accept known ones).
const MODEL: &str = "HDTC-2US";

/// The HDHomeRun tuner at the server's root, as configured (`[hdhomerun]`).
///
/// Exists so that apps that take only an IP address (Plex, Jellyfin,
/// Channels DVR) can add the gateway; off (`root_user: None`) unless the
/// operator names the downstream user it serves as.
#[derive(Debug, Clone)]
pub struct HdhrSettings {
    /// `hdhomerun.root_user`: the downstream user the root tuner serves as;
    /// `None`: no tuner at the root (its routes answer 404).
    pub root_user: Option<String>,
    /// `hdhomerun.friendly_name`: the root tuner's name in the apps.
    pub friendly_name: String,
}

impl Default for HdhrSettings {
    fn default() -> Self {
        HdhrSettings { root_user: None, friendly_name: "tunerpool".to_owned() }
    }
}

/// A resolved tuner: the user it serves, where its URLs live, its name.
pub(crate) struct Tuner {
    client: Client,
    /// The path of its URLs under the base URL: `/hdhr/{u}/{p}`, or empty at the root.
    path: String,
    name: String,
    root: bool,
}

impl From<PathLogin> for Tuner {
    fn from(login: PathLogin) -> Tuner {
        let name = format!("tunerpool ({})", login.client.user.username);
        Tuner { path: format!("/hdhr/{}/{}", login.username, login.password), client: login.client, name, root: false }
    }
}

/// The root tuner's user, logged in without a password because the
/// operator named it (`hdhomerun.root_user`): the extractor of the root
/// routes. Not configured, they answer 404; a configured user that does not
/// exist answers 404 too, one that is disabled or expired 403.
pub(crate) struct RootLogin(Tuner);

impl From<RootLogin> for Tuner {
    fn from(login: RootLogin) -> Tuner {
        login.0
    }
}

/// Why the root tuner cannot serve.
pub(crate) enum RootRefused {
    /// No `hdhomerun.root_user`.
    Off,
    /// The configured user does not exist.
    NoSuchUser,
    /// It exists but may not use the outputs now.
    Inactive(UserStatus),
    /// The store failed (what the client is told: a log reference).
    Internal(String),
}

/// The root tuner's user: configured, existing and active.
pub(crate) async fn root_user(st: &AppState) -> Result<User, RootRefused> {
    let Some(name) = st.hdhr.root_user.as_deref() else { return Err(RootRefused::Off) };
    let user = match st.store.user_by_name_cached(name).await {
        Ok(Some(u)) => u,
        Ok(None) => return Err(RootRefused::NoSuchUser),
        Err(e) => return Err(RootRefused::Internal(crate::error::internal("root tuner: cannot read users", &e))),
    };
    match user.status(tunerpool_catalog::now()) {
        UserStatus::Active => Ok(user),
        status => Err(RootRefused::Inactive(status)),
    }
}

impl FromRequestParts<AppState> for RootLogin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Response> {
        let Some(addr) = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0) else {
            return Err(internal("root tuner", &"no client address"));
        };
        match root_user(st).await {
            Ok(user) => {
                crate::access_log::record_user(&user.username);
                let client = Client { user, addr };
                Ok(RootLogin(Tuner { client, path: String::new(), name: st.hdhr.friendly_name.clone(), root: true }))
            }
            Err(RootRefused::Off) => Err(text(
                StatusCode::NOT_FOUND,
                "no HDHomeRun tuner at the root: use /hdhr/{user}/{password}/, or set hdhomerun.root_user".into(),
            )),
            Err(RootRefused::NoSuchUser) => {
                tracing::warn!(client = %addr, user = st.hdhr.root_user.as_deref().unwrap_or_default(),
                    "root tuner refused: hdhomerun.root_user names no user");
                Err(text(StatusCode::NOT_FOUND, "no HDHomeRun tuner at the root: its user does not exist".into()))
            }
            Err(RootRefused::Inactive(status)) => {
                tracing::warn!(client = %addr, user = st.hdhr.root_user.as_deref().unwrap_or_default(),
                    status = status.as_str(), "root tuner refused: its user is not active");
                Err(refusal(&Refused::Inactive(status)))
            }
            Err(RootRefused::Internal(m)) => Err(text(StatusCode::INTERNAL_SERVER_ERROR, m)),
        }
    }
}

/// The channel of a tune URL (`auto/v{id}`).
#[derive(Deserialize)]
pub(crate) struct Tune {
    channel: String,
}

/// 8 hex digits, stable for this installation and user.
async fn device_id(st: &AppState, user_id: i64) -> String {
    let instance = st.store.instance_id().await.unwrap_or_default();
    let digest = Sha256::new().chain_update(instance.as_bytes()).chain_update(user_id.to_le_bytes()).finalize();
    digest[..4].iter().map(|b| format!("{b:02X}")).collect()
}

/// The root tuner's device id: stable for this installation and user,
/// distinct from the user's own tuner at `/hdhr/…` (apps would take the two
/// for one device at two addresses), and valid by libhdhomerun's check
/// ([`packet::valid_device_id`]) since discovery announces it.
pub(crate) async fn root_device_id(st: &AppState, user_id: i64) -> u32 {
    let instance = st.store.instance_id().await.unwrap_or_default();
    let digest = Sha256::new()
        .chain_update(instance.as_bytes())
        .chain_update(b"root tuner")
        .chain_update(user_id.to_le_bytes())
        .finalize();
    let id = packet::make_valid_device_id(u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]));
    debug_assert!(packet::valid_device_id(id));
    id
}

impl Tuner {
    async fn device_id(&self, st: &AppState) -> String {
        if self.root {
            format!("{:08X}", root_device_id(st, self.client.user.id).await)
        } else {
            device_id(st, self.client.user.id).await
        }
    }

    /// The base of its URLs: the server's base (public URL or `Host`), plus its path.
    fn base(&self, st: &AppState, headers: &HeaderMap) -> String {
        format!("{}{}", base_url(st, headers), self.path)
    }
}

/// How many tuners to announce for `user`: what the pool can serve now,
/// capped by the user's own limit, at least 1.
pub(crate) async fn tuner_count(st: &AppState, user: &User) -> u32 {
    let mut tuners = pool_capacity(st).await.min(MAX_TUNERS);
    if user.max_connections > 0 {
        tuners = tuners.min(user.max_connections);
    }
    tuners.max(1)
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Discover {
    friendly_name: String,
    manufacturer: &'static str,
    model_number: &'static str,
    firmware_name: &'static str,
    firmware_version: &'static str,
    #[serde(rename = "DeviceID")]
    device_id: String,
    device_auth: &'static str,
    #[serde(rename = "BaseURL")]
    base_url: String,
    #[serde(rename = "LineupURL")]
    lineup_url: String,
    tuner_count: u32,
}

/// What `device_auth` is: apps pass it back to SiliconDust's guide service,
/// which this gateway does not use.
const DEVICE_AUTH: &str = "tunerpool";

pub(crate) async fn discover<T: Into<Tuner>>(State(st): State<AppState>, t: T, headers: HeaderMap) -> Response {
    let t: Tuner = t.into();
    let base = t.base(&st, &headers);
    axum::Json(Discover {
        friendly_name: t.name.clone(),
        manufacturer: "tunerpool",
        model_number: MODEL,
        firmware_name: "hdhomeruntc_atsc",
        firmware_version: "20200101",
        device_id: t.device_id(&st).await,
        device_auth: DEVICE_AUTH,
        lineup_url: format!("{base}/lineup.json"),
        base_url: base,
        tuner_count: tuner_count(&st, &t.client.user).await,
    })
    .into_response()
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct LineupRow<'a> {
    guide_number: String,
    guide_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    video_codec: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    audio_codec: Option<&'static str>,
    /// 1 for a picture of 720 lines or more; only when measured.
    #[serde(rename = "HD", skip_serializing_if = "Option::is_none")]
    hd: Option<u8>,
    #[serde(rename = "URL")]
    url: String,
}

/// A lineup entry with its first source's measured format, if any.
struct Entry {
    item: LiveItem,
    format: Option<SourceFormat>,
}

impl Keyed for Entry {
    fn key(&self) -> i64 {
        self.item.number
    }
}

/// A video codec as HDHomeRun lineups name it (ffprobe's name in).
fn video_codec(codec: &str) -> Option<&'static str> {
    Some(match codec {
        "mpeg2video" => "MPEG2",
        "h264" => "H264",
        "hevc" => "HEVC",
        "av1" => "AV1",
        _ => return None,
    })
}

/// An audio codec as HDHomeRun lineups name it (ffprobe's name in).
fn audio_codec(codec: &str) -> Option<&'static str> {
    Some(match codec {
        "ac3" => "AC3",
        "eac3" => "EAC3",
        "aac" => "AAC",
        "mp2" => "MPEG",
        "mp3" => "MP3",
        _ => return None,
    })
}

impl Entry {
    fn row(&self, prefix: &str) -> LineupRow<'_> {
        let f = self.format.as_ref();
        LineupRow {
            guide_number: self.item.number.to_string(),
            guide_name: &self.item.name,
            video_codec: f.and_then(|f| f.video_codec.as_deref()).and_then(video_codec),
            audio_codec: f.and_then(|f| f.audio_codec.as_deref()).and_then(audio_codec),
            hd: f.and_then(|f| f.height).map(|h| u8::from(h >= 720)),
            url: format!("{prefix}{}", self.item.id),
        }
    }
}

pub(crate) async fn lineup<T: Into<Tuner>>(State(st): State<AppState>, t: T, headers: HeaderMap) -> Response {
    let t: Tuner = t.into();
    let prefix = format!("{}/auto/v", t.base(&st, &headers));
    let (store, filter) = (st.store.clone(), t.client.filter());
    let body = paged(Paged {
        head: b"[".to_vec(),
        tail: b"]",
        separator: b",",
        // A page of channels, then one query for their first sources' formats.
        fetch: move |after| {
            let (store, f) = (store.clone(), filter.clone());
            async move {
                let items = store.live_items(&f, after, PAGE).await?;
                let streams: Vec<i64> = items.iter().map(|i| i.stream_id).collect();
                let mut formats = store.source_formats(&streams).await?;
                Ok(items
                    .into_iter()
                    .map(|item| {
                        let format = formats.remove(&item.stream_id);
                        Entry { item, format }
                    })
                    .collect())
            }
        },
        // The lineup number is the guide number (unique); the tune URL takes the channel id.
        write: move |e: &Entry, out: &mut Vec<u8>| {
            let _ = serde_json::to_writer(&mut *out, &e.row(&prefix));
        },
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "cannot build the response".into()))
}

/// Logged in (the extractor), nothing to scan.
pub(crate) async fn lineup_status<T: Into<Tuner>>(_: T) -> Response {
    axum::Json(serde_json::json!({"ScanInProgress": 0, "ScanPossible": 1, "Source": "Cable", "SourceList": ["Cable"]}))
        .into_response()
}

/// `lineup.post?scan=start|abort`: there is nothing to scan; accepted.
pub(crate) async fn lineup_post<T: Into<Tuner>>(_: T) -> Response {
    StatusCode::OK.into_response()
}

/// The UPnP device description (the `LOCATION` SSDP announces).
pub(crate) async fn device_xml<T: Into<Tuner>>(State(st): State<AppState>, t: T, headers: HeaderMap) -> Response {
    let t: Tuner = t.into();
    let id = t.device_id(&st).await;
    let base = quick_xml::escape::escape(t.base(&st, &headers)).into_owned();
    let name = quick_xml::escape::escape(t.name.as_str()).into_owned();
    let udn = ssdp::udn(&id);
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<root xmlns="urn:schemas-upnp-org:device-1-0">
  <specVersion><major>1</major><minor>0</minor></specVersion>
  <URLBase>{base}</URLBase>
  <device>
    <deviceType>urn:schemas-upnp-org:device:MediaServer:1</deviceType>
    <friendlyName>{name}</friendlyName>
    <manufacturer>Silicondust</manufacturer>
    <modelName>{MODEL}</modelName>
    <modelNumber>{MODEL}</modelNumber>
    <serialNumber>{id}</serialNumber>
    <UDN>{udn}</UDN>
  </device>
</root>
"#
    );
    ([(header::CONTENT_TYPE, "application/xml; charset=utf-8")], xml).into_response()
}

/// `auto/v{channel}`: tune a channel. `?transcode=NAME` transcodes with the
/// profile of that name when there is one (name profiles after HDHomeRun
/// EXTEND's `heavy`, `mobile`, `internet720`, … to serve those apps); `none`,
/// absent or unknown is the stream as it is.
pub(crate) async fn tune<T: Into<Tuner>>(
    State(st): State<AppState>,
    Path(Tune { channel }): Path<Tune>,
    RawQuery(query): RawQuery,
    headers: axum::http::HeaderMap,
    t: T,
) -> Response {
    let t: Tuner = t.into();
    let transcode = query.as_deref().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "transcode").map(|(_, v)| v.into_owned())
    });
    // A profile of that name transcodes; other values (HDHomeRun's own `heavy`, `mobile`, … when no profile is
    // named so) get the stream as it is.
    let profile = transcode.filter(|p| !p.is_empty() && p != "none").filter(|p| {
        let known = st.relay.settings().transcode.profile(p).is_some();
        if !known {
            tracing::debug!(profile = %p, "tune: no transcoding profile of that name; the stream goes as it is");
        }
        known
    });
    match channel.strip_prefix('v').and_then(|n| n.parse::<i64>().ok()) {
        Some(id) => {
            let output = crate::clip::Output::HdHomeRun;
            super::streams::play_live(&st, &t.client, id, output, &headers, profile.as_deref()).await
        }
        None => text(StatusCode::NOT_FOUND, format!("no channel {channel:?}: use auto/v{{channel id}}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_are_named_as_hdhomerun_lineups_name_them_and_unknown_ones_left_out() {
        assert_eq!(video_codec("h264"), Some("H264"));
        assert_eq!(video_codec("mpeg2video"), Some("MPEG2"));
        assert_eq!(video_codec("vp9"), None);
        assert_eq!(audio_codec("ac3"), Some("AC3"));
        assert_eq!(audio_codec("mp2"), Some("MPEG"));
        assert_eq!(audio_codec("opus"), None);
    }

    #[test]
    fn a_lineup_row_says_hd_and_codecs_only_when_measured() {
        let item: LiveItem = serde_json::from_str(
            r#"[7, 101, "One", null, null, null, null, null, "101", null, null, 2, "xtream", 55, 12]"#,
        )
        .unwrap();
        let bare = Entry { item: item.clone(), format: None };
        let json = serde_json::to_value(bare.row("http://h/auto/v")).unwrap();
        assert_eq!(json, serde_json::json!({"GuideNumber": "101", "GuideName": "One", "URL": "http://h/auto/v7"}));
        let sd = SourceFormat { height: Some(576), video_codec: Some("mpeg2video".into()), audio_codec: None };
        let json = serde_json::to_value(Entry { item: item.clone(), format: Some(sd) }.row("")).unwrap();
        assert_eq!((json["HD"].as_u64(), json["VideoCodec"].as_str()), (Some(0), Some("MPEG2")));
        assert!(json.get("AudioCodec").is_none(), "{json}");
        let hd = SourceFormat { height: Some(720), video_codec: Some("h264".into()), audio_codec: Some("aac".into()) };
        let json = serde_json::to_value(Entry { item, format: Some(hd) }.row("")).unwrap();
        assert_eq!(
            (json["HD"].as_u64(), json["VideoCodec"].as_str(), json["AudioCodec"].as_str()),
            (Some(1), Some("H264"), Some("AAC"))
        );
    }
}
