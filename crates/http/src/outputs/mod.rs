//! What client apps and downstream users see: an M3U playlist
//! (`get.php`, `playlist.m3u`), an Xtream Codes API (`player_api.php` and
//! its stream URLs), and an HDHomeRun tuner for Plex/Jellyfin/Emby
//! (`/hdhr/{user}/{pass}/…`, and at the root for the one user the operator
//! names, with its discovery responders: `hdhr`). Every request logs in as a downstream user
//! (`auth`); every stream goes through the same relay calls as `/stream`, so
//! every endpoint refuses the same way; a user only sees and plays what its
//! allowed groups hold.

mod auth;
mod body;
mod guide;
mod hdhr;
mod listing;
mod m3u;
mod streams;
mod xtream;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use tunerpool_catalog::outputs::ItemFilter;
use tunerpool_catalog::User;
use tunerpool_relay::{UserQuota, Viewer};

pub use auth::ClientAuth;
use auth::Refused;
pub use hdhr::discovery::{start as start_discovery, Discovery, DiscoverySettings};
pub use hdhr::HdhrSettings;
pub use listing::keep_fresh as keep_live_listing_fresh;

use crate::AppState;

/// The client-output routes: each logs a downstream user in (the login
/// cache, [`ClientAuth`], reaches them as an extension shared with the
/// users API, which drops a changed user's entries).
pub(crate) fn routes() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        ("/get.php", get(m3u::get_php).post(m3u::get_php)),
        ("/playlist.m3u", get(m3u::get_php)),
        ("/player_api.php", get(xtream::player_api).post(xtream::player_api)),
        ("/xmltv.php", get(guide::xmltv_php).post(guide::xmltv_php)),
        ("/live/{u}/{p}/{file}", get(streams::live)),
        ("/hls/{u}/{p}/{id}/{file}", get(streams::hls_segment)),
        ("/movie/{u}/{p}/{file}", get(streams::movie)),
        ("/series/{u}/{p}/{file}", get(streams::episode)),
        ("/timeshift/{u}/{p}/{duration}/{start}/{file}", get(streams::timeshift)),
        ("/{u}/{p}/{id}", get(streams::short)),
        ("/hdhr/{u}/{p}/discover.json", get(hdhr::discover::<PathLogin>)),
        ("/hdhr/{u}/{p}/lineup.json", get(hdhr::lineup::<PathLogin>)),
        ("/hdhr/{u}/{p}/lineup_status.json", get(hdhr::lineup_status::<PathLogin>)),
        ("/hdhr/{u}/{p}/lineup.post", get(hdhr::lineup_post::<PathLogin>).post(hdhr::lineup_post::<PathLogin>)),
        ("/hdhr/{u}/{p}/device.xml", get(hdhr::device_xml::<PathLogin>)),
        ("/hdhr/{u}/{p}/auto/{channel}", get(hdhr::tune::<PathLogin>)),
    ]
}

/// The HDHomeRun tuner at the root, for apps that take only an IP address:
/// the same handlers as `/hdhr/{u}/{p}/…`, as the user `hdhomerun.root_user`
/// names ([`hdhr::RootLogin`]); without one, 404.
pub(crate) fn root_tuner_routes() -> Vec<(&'static str, MethodRouter<AppState>)> {
    use hdhr::RootLogin;
    vec![
        ("/discover.json", get(hdhr::discover::<RootLogin>)),
        ("/lineup.json", get(hdhr::lineup::<RootLogin>)),
        ("/lineup_status.json", get(hdhr::lineup_status::<RootLogin>)),
        ("/lineup.post", get(hdhr::lineup_post::<RootLogin>).post(hdhr::lineup_post::<RootLogin>)),
        ("/device.xml", get(hdhr::device_xml::<RootLogin>)),
        ("/auto/{channel}", get(hdhr::tune::<RootLogin>)),
    ]
}

/// A logged-in client: who, from where.
pub(crate) struct Client {
    pub user: User,
    pub addr: SocketAddr,
}

impl Client {
    /// What the user may see.
    pub fn filter(&self) -> ItemFilter {
        ItemFilter { allowed_groups: self.user.allowed_groups.clone(), group: None }
    }

    /// The relay's view of this client: its address and its own limit.
    pub fn viewer(&self) -> Viewer {
        Viewer {
            address: self.addr.to_string(),
            user: Some(UserQuota {
                id: self.user.id,
                name: self.user.username.clone(),
                max_connections: self.user.max_connections,
                priority: self.user.priority,
            }),
        }
    }
}

/// A client logged in with the credentials in its URL's path
/// (`/live/{u}/{p}/…`, `/hdhr/{u}/{p}/…`): the extractor of every such
/// route, so a handler runs logged in or not at all, and refuses the same
/// way everywhere. The credentials stay at hand for the URLs answered with
/// them (HLS segments, the tuner's base URL). Put it after the cheaper
/// extractors: a malformed path is refused before any password check.
pub(crate) struct PathLogin {
    pub client: Client,
    pub username: String,
    pub password: String,
}

impl FromRequestParts<AppState> for PathLogin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Response> {
        let params = RawPathParams::from_request_parts(parts, st).await.map_err(IntoResponse::into_response)?;
        let param = |name: &str| params.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_owned());
        let (Some(username), Some(password)) = (param("u"), param("p")) else {
            return Err(internal("path login", &"route without {u} and {p}"));
        };
        let addr = parts.extensions.get::<ConnectInfo<SocketAddr>>().copied();
        let auth = parts.extensions.get::<Arc<ClientAuth>>().cloned();
        let (Some(addr), Some(auth)) = (addr, auth) else {
            return Err(internal("path login", &"no client address or login state"));
        };
        let client = login(st, &auth, addr, &username, &password).await?;
        Ok(PathLogin { client, username, password })
    }
}

/// Logs a client in, or the plain-text refusal a player shows.
pub(crate) async fn login(
    st: &AppState,
    auth: &ClientAuth,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    username: &str,
    password: &str,
) -> Result<Client, Response> {
    match auth.login(st, addr.ip(), username, password).await {
        Ok(user) => Ok(Client { user, addr }),
        Err(r) => Err(refusal(&r)),
    }
}

/// The HTTP answer for a refused login (stream URLs, playlists, tuners).
pub(crate) fn refusal(r: &Refused) -> Response {
    let status = match r {
        Refused::BadCredentials => StatusCode::UNAUTHORIZED,
        Refused::Inactive(_) => StatusCode::FORBIDDEN,
        Refused::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        Refused::Busy => StatusCode::SERVICE_UNAVAILABLE,
        Refused::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut resp = text(status, r.message());
    let retry_after = match r {
        Refused::RateLimited(s) => Some(*s),
        Refused::Busy => Some(1),
        _ => None,
    };
    if let Some(v) = retry_after.and_then(|s| header::HeaderValue::from_str(&s.to_string()).ok()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// A 500 for an internal failure: logged under a reference the client is given.
pub(crate) fn internal(context: &str, err: &dyn std::fmt::Display) -> Response {
    text(StatusCode::INTERNAL_SERVER_ERROR, crate::error::internal(context, err))
}

pub(crate) fn text(status: StatusCode, text: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text + "\n").into_response()
}

/// The base of every URL we hand out: `public_url` when configured, else
/// what the client called us by (its `Host`), over http.
pub(crate) fn base_url(st: &AppState, headers: &HeaderMap) -> String {
    if let Some(u) = &st.public_url {
        return u.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b)))
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// A path under our `public_url` (with its path prefix, e.g.
/// `https://tv.example.org/tp/hls/…` behind a reverse proxy), or the bare
/// path when none is configured — for URLs in answers that a client resolves
/// against the URL it asked (HLS segments), so no `Host` is guessed.
pub(crate) fn public_path(st: &AppState, path: &str) -> String {
    match &st.public_url {
        Some(u) => format!("{}{path}", u.trim_end_matches('/')),
        None => path.to_string(),
    }
}

/// The parameters of a request: its query, then a form body (Xtream
/// clients send both GET and POST).
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub fn new(uri: &Uri, body: &[u8]) -> Params {
        let mut v: Vec<(String, String)> =
            uri.query().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
        v.extend(url::form_urlencoded::parse(body).into_owned());
        Params(v)
    }

    /// The first value of `key`, trimmed; empty counts as absent.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
    }

    /// `key` as a number, or a message naming the field.
    pub fn number(&self, key: &str) -> Result<Option<i64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| format!("{key}: {v:?} is not a number")),
        }
    }
}

/// How many streams the pool can serve now: the effective limits of usable
/// accounts, capped per provider — what the HDHomeRun tuner count and
/// Xtream `max_connections` report.
pub(crate) async fn pool_capacity(st: &AppState) -> u32 {
    let now = tunerpool_catalog::now();
    let mut total = 0u32;
    let Ok(providers) = st.store.providers().await else { return 0 };
    for p in providers.iter().filter(|p| p.enabled) {
        let Ok(accounts) = st.store.accounts(p.id).await else { continue };
        let mut sum = 0u32;
        for a in accounts.iter().filter(|a| tunerpool_pool::limits::is_usable(a, p.kind, now).is_ok()) {
            sum = sum.saturating_add(tunerpool_pool::limits::effective_max(a, p).max);
        }
        if let Some(cap) = p.max_streams {
            sum = sum.min(u32::try_from(cap.max(0)).unwrap_or(u32::MAX));
        }
        total = total.saturating_add(sum);
    }
    total
}

/// The id in a stream file name (`123`, `123.ts`, `123.m3u8`), if any.
pub(crate) fn file_id(file: &str) -> Option<i64> {
    file.split_once('.').map_or(file, |(id, _)| id).parse().ok()
}
