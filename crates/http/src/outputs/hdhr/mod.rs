//! An HDHomeRun network tuner, as Plex, Jellyfin and Emby discover one:
//! `discover.json`, `lineup.json`, `lineup_status.json`, `device.xml`.
//!
//! These clients cannot send credentials, so each user gets its own tuner
//! at `/hdhr/{user}/{pass}` (enter `http://HOST:PORT/hdhr/USER/PASS` as the
//! tuner address). The device id is stable per installation and user; the
//! tuner count is what the pool can serve now (capped by the user's own
//! limit). Channels tune at `/hdhr/{user}/{pass}/auto/v{channel id}`, which
//! answers with MPEG-TS bytes as soon as the session runs — the relay starts
//! every viewer at the latest keyframe already buffered, and Plex gives up
//! on a tuner that sends a 200 and then nothing.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tunerpool_catalog::outputs::LiveItem;

use super::body::{paged, Paged, PAGE};
use super::{base_url, pool_capacity, text, PathLogin};
use crate::AppState;

/// Most tuners announced, whatever the pool could do (an M3U provider
/// without a limit would otherwise announce billions).
const MAX_TUNERS: u32 = 64;

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

fn tuner_base(st: &AppState, headers: &HeaderMap, login: &PathLogin) -> String {
    format!("{}/hdhr/{}/{}", base_url(st, headers), login.username, login.password)
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

pub(crate) async fn discover(State(st): State<AppState>, login: PathLogin, headers: HeaderMap) -> Response {
    let c = &login.client;
    let mut tuners = pool_capacity(&st).await.min(MAX_TUNERS);
    if c.user.max_connections > 0 {
        tuners = tuners.min(c.user.max_connections);
    }
    let base = tuner_base(&st, &headers, &login);
    axum::Json(Discover {
        friendly_name: format!("tunerpool ({})", c.user.username),
        manufacturer: "tunerpool",
        model_number: "HDTC-2US",
        firmware_name: "hdhomeruntc_atsc",
        firmware_version: "20200101",
        device_id: device_id(&st, c.user.id).await,
        device_auth: "tunerpool",
        lineup_url: format!("{base}/lineup.json"),
        base_url: base,
        tuner_count: tuners.max(1),
    })
    .into_response()
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct LineupRow<'a> {
    guide_number: String,
    guide_name: &'a str,
    #[serde(rename = "URL")]
    url: String,
}

pub(crate) async fn lineup(State(st): State<AppState>, login: PathLogin, headers: HeaderMap) -> Response {
    let c = &login.client;
    let prefix = format!("{}/auto/v", tuner_base(&st, &headers, &login));
    let (store, filter) = (st.store.clone(), c.filter());
    let body = paged(Paged {
        head: b"[".to_vec(),
        tail: b"]",
        separator: b",",
        fetch: move |after| {
            let (store, f) = (store.clone(), filter.clone());
            async move { store.live_items(&f, after, PAGE).await }
        },
        // The lineup number is the guide number (unique); the tune URL takes the channel id.
        write: move |c: &LiveItem, out: &mut Vec<u8>| {
            let row =
                LineupRow { guide_number: c.number.to_string(), guide_name: &c.name, url: format!("{prefix}{}", c.id) };
            let _ = serde_json::to_writer(&mut *out, &row);
        },
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "cannot build the response".into()))
}

/// Logged in (the extractor), nothing to scan.
pub(crate) async fn lineup_status(_: PathLogin) -> Response {
    axum::Json(serde_json::json!({"ScanInProgress": 0, "ScanPossible": 1, "Source": "Cable", "SourceList": ["Cable"]}))
        .into_response()
}

/// `lineup.post?scan=start|abort`: there is nothing to scan; accepted.
pub(crate) async fn lineup_post(_: PathLogin) -> Response {
    StatusCode::OK.into_response()
}

pub(crate) async fn device_xml(State(st): State<AppState>, login: PathLogin, headers: HeaderMap) -> Response {
    let c = &login.client;
    let id = device_id(&st, c.user.id).await;
    let base = quick_xml::escape::escape(tuner_base(&st, &headers, &login)).into_owned();
    let name = quick_xml::escape::escape(format!("tunerpool ({})", c.user.username)).into_owned();
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<root xmlns="urn:schemas-upnp-org:device-1-0">
  <specVersion><major>1</major><minor>0</minor></specVersion>
  <URLBase>{base}</URLBase>
  <device>
    <deviceType>urn:schemas-upnp-org:device:MediaServer:1</deviceType>
    <friendlyName>{name}</friendlyName>
    <manufacturer>Silicondust</manufacturer>
    <modelName>HDTC-2US</modelName>
    <modelNumber>HDTC-2US</modelNumber>
    <serialNumber>{id}</serialNumber>
    <UDN>uuid:{id}-0000-0000-0000-000000000000</UDN>
  </device>
</root>
"#
    );
    ([(header::CONTENT_TYPE, "application/xml; charset=utf-8")], xml).into_response()
}

/// `auto/v{channel}`: tune a channel.
pub(crate) async fn tune(State(st): State<AppState>, Path(Tune { channel }): Path<Tune>, login: PathLogin) -> Response {
    let c = &login.client;
    match channel.strip_prefix('v').and_then(|n| n.parse::<i64>().ok()) {
        Some(id) => super::streams::play_live(&st, c, id).await,
        None => text(StatusCode::NOT_FOUND, format!("no channel {channel:?}: use auto/v{{channel id}}")),
    }
}
