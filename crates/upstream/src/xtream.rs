//! An Xtream Codes panel seen from tunerpool: `player_api.php`.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use tunerpool_formats::xtream::{self, AuthResponse, Category, ItemCounts, XtreamError};

use crate::batches::{BatchSender, Batches};
use crate::cap::BodyKind;
use crate::error::UpstreamError;
use crate::http::UpstreamHttp;
use crate::redact::redact_url;
pub use tunerpool_domain::location::normalize_base_url;

/// Which part of an Xtream catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Live,
    Vod,
    Series,
}

impl Section {
    fn categories_action(self) -> &'static str {
        match self {
            Section::Live => "get_live_categories",
            Section::Vod => "get_vod_categories",
            Section::Series => "get_series_categories",
        }
    }
    fn items_action(self) -> &'static str {
        match self {
            Section::Live => "get_live_streams",
            Section::Vod => "get_vod_streams",
            Section::Series => "get_series",
        }
    }
}

/// One account on one Xtream server: builds the API URLs and reads the answers
/// leniently (real panels send numbers as strings, nulls, HTML error pages).
#[derive(Clone)]
pub struct XtreamClient {
    http: UpstreamHttp,
    base: String,
    username: String,
    password: String,
}

impl std::fmt::Debug for XtreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XtreamClient")
            .field("base", &self.base)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl XtreamClient {
    pub fn new(http: UpstreamHttp, server_url: &str, username: &str, password: &str) -> Result<Self, UpstreamError> {
        let base = normalize_base_url(server_url)
            .map_err(|reason| UpstreamError::InvalidUrl { url: redact_url(server_url, &[password]), reason })?;
        Ok(XtreamClient { http, base, username: username.to_string(), password: password.to_string() })
    }

    /// The panel's base URL (`http://host:port`), without credentials.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn api_url(&self, action: Option<&str>, extra: &[(&str, &str)]) -> String {
        let mut url = reqwest::Url::parse(&format!("{}/player_api.php", self.base)).expect("base URL was validated");
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("username", &self.username);
            q.append_pair("password", &self.password);
            if let Some(a) = action {
                q.append_pair("action", a);
            }
            for (k, v) in extra {
                q.append_pair(k, v);
            }
        }
        url.to_string()
    }

    /// `xmltv.php` with this account's credentials: the panel's whole guide.
    pub fn xmltv_url(&self) -> String {
        let mut url = reqwest::Url::parse(&format!("{}/xmltv.php", self.base)).expect("base URL was validated");
        url.query_pairs_mut().append_pair("username", &self.username).append_pair("password", &self.password);
        url.to_string()
    }

    /// Downloads the panel's guide (`xmltv.php`) and stores it at `dest`;
    /// see [`crate::epg::download_guide`].
    pub async fn download_guide(&self, dest: &std::path::Path) -> Result<crate::epg::GuideSummary, UpstreamError> {
        crate::epg::download_guide(&self.http, &self.xmltv_url(), &[&self.password], dest).await
    }

    fn redacted(&self, url: &str) -> String {
        redact_url(url, &[&self.password])
    }

    async fn get_small(&self, url: &str) -> Result<bytes::Bytes, UpstreamError> {
        self.http.get_bytes(url, &[&self.password], BodyKind::Api).await
    }

    fn bad_body(&self, url: &str, expected: &'static str, e: XtreamError) -> UpstreamError {
        let detail = match e {
            XtreamError::NotJson { snippet } => {
                format!("got a non-JSON answer starting with {snippet:?}")
            }
            other => other.to_string(),
        };
        UpstreamError::BadBody {
            url: self.redacted(url),
            expected,
            detail: crate::redact::redact_text(&detail, &[&self.password]),
        }
    }

    /// `player_api.php` without an action: the account's `user_info` and the
    /// panel's `server_info`. Bad credentials are *not* an error here (panels
    /// answer 200 with `auth: 0`); the caller decides.
    pub async fn authenticate(&self) -> Result<AuthResponse, UpstreamError> {
        let url = self.api_url(None, &[]);
        let body = self.get_small(&url).await?;
        xtream::parse_auth(&body).map_err(|e| self.bad_body(&url, "account details (JSON with user_info)", e))
    }

    /// The categories of one section.
    pub async fn categories(&self, section: Section) -> Result<Vec<Category>, UpstreamError> {
        let url = self.api_url(Some(section.categories_action()), &[]);
        let body = self.get_small(&url).await?;
        let list =
            xtream::parse_list::<Category>(&body).map_err(|e| self.bad_body(&url, "a JSON list of categories", e))?;
        Ok(list.items)
    }

    /// Any other `player_api.php` action with small JSON answers
    /// (`get_vod_info`, `get_series_info`, `get_short_epg`, …), as JSON.
    /// What the panel said is returned as is: callers that pass it on must
    /// remove what identifies this account.
    pub async fn action(&self, action: &str, extra: &[(&str, &str)]) -> Result<serde_json::Value, UpstreamError> {
        let url = self.api_url(Some(action), extra);
        let body = self.get_small(&url).await?;
        let start = body.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(body.len());
        if !matches!(body.get(start), Some(b'{' | b'[')) {
            let snippet = String::from_utf8_lossy(&body[start..body.len().min(start + 60)]).into_owned();
            return Err(self.bad_body(&url, "a JSON answer", XtreamError::NotJson { snippet }));
        }
        serde_json::from_slice(&body[start..]).map_err(|e| self.bad_body(&url, "a JSON answer", XtreamError::Json(e)))
    }

    /// Downloads the item list of one section (live streams, VOD or series)
    /// to a spool file; parse it with [`parse_items`].
    pub async fn download_items(&self, section: Section) -> Result<Spooled, UpstreamError> {
        let url = self.api_url(Some(section.items_action()), &[]);
        let file = self.http.download(&url, &[&self.password], BodyKind::Api).await?;
        Ok(Spooled { file, shown_url: self.redacted(&url), password: self.password.clone() })
    }
}

/// A downloaded Xtream list waiting to be parsed.
pub struct Spooled {
    file: std::fs::File,
    shown_url: String,
    password: String,
}

/// Parses a spooled list on a blocking thread and hands the items over in
/// batches. Elements that do not fit `T` are skipped and counted.
pub fn parse_items<T>(spooled: Spooled) -> Batches<T, ItemCounts>
where
    T: DeserializeOwned + Send + 'static,
{
    parse_items_map(spooled, |t: T| t)
}

/// Like [`parse_items`], but turns each item into an `R` on the parsing
/// thread, so that the consumer (a database writer) does not pay for it.
pub fn parse_items_map<T, R, F>(spooled: Spooled, map: F) -> Batches<R, ItemCounts>
where
    T: DeserializeOwned + Send + 'static,
    R: Send + 'static,
    F: FnMut(T) -> R + Send + 'static,
{
    Batches::spawn(move |sender| tokio::task::spawn_blocking(move || parse_blocking::<T, R>(spooled, sender, map)))
}

/// A reader that fails once the consumer is gone, so the parser stops early.
struct StopOnCancel<R> {
    inner: R,
    cancelled: Arc<AtomicBool>,
}

impl<R: Read> Read for StopOnCancel<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.cancelled.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("cancelled"));
        }
        self.inner.read(buf)
    }
}

fn parse_blocking<T: DeserializeOwned, R>(
    spooled: Spooled,
    mut sender: BatchSender<R>,
    mut map: impl FnMut(T) -> R,
) -> Result<ItemCounts, UpstreamError> {
    let cancelled = Arc::new(AtomicBool::new(false));
    let reader = StopOnCancel {
        inner: std::io::BufReader::with_capacity(256 * 1024, spooled.file),
        cancelled: cancelled.clone(),
    };
    let result = xtream::for_each_item::<_, T>(reader, |item| {
        if !sender.push_blocking(map(item)) {
            cancelled.store(true, Ordering::Relaxed);
        }
    });
    if cancelled.load(Ordering::Relaxed) || !sender.flush_blocking() {
        return Err(UpstreamError::Cancelled);
    }
    result.map_err(|e| {
        let detail = match e {
            XtreamError::NotJson { snippet } => {
                format!("got a non-JSON answer starting with {snippet:?}")
            }
            other => other.to_string(),
        };
        UpstreamError::BadBody {
            url: spooled.shown_url,
            expected: "a JSON list",
            detail: crate::redact::redact_text(&detail, &[&spooled.password]),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_url_encodes_credentials() {
        let http = UpstreamHttp::new(Default::default()).unwrap();
        let c = XtreamClient::new(http, "http://h:1", "u s", "p&w/+").unwrap();
        let u = c.api_url(Some("get_live_streams"), &[]);
        assert_eq!(u, "http://h:1/player_api.php?username=u+s&password=p%26w%2F%2B&action=get_live_streams");
        assert!(!c.redacted(&u).contains("p%26w"));
        assert!(!format!("{c:?}").contains("p&w"));
    }
}
