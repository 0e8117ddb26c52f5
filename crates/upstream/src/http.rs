//! The HTTP client every provider request goes through.

use std::time::Duration;

use crate::cap::{BodyKind, Caps};
use crate::error::UpstreamError;
use crate::redact::redact_url;
pub use tunerpool_domain::location::parse_http_url;

/// How tunerpool talks HTTP to providers; comes from the `upstream.*` config keys.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Total time for a small API call (account details, categories).
    pub timeout: Duration,
    /// Time to establish a TCP/TLS connection.
    pub connect_timeout: Duration,
    /// Sent as `User-Agent`; some panels block unknown agents.
    pub user_agent: String,
    /// Redirects followed before giving up.
    pub max_redirects: u32,
    /// Where large downloads are spooled before parsing (the data dir's
    /// `tmp`; not `/tmp`, which may be RAM-backed).
    pub spool_dir: std::path::PathBuf,
    /// The most a provider may send, per kind of body.
    pub caps: Caps,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            user_agent: concat!("tunerpool/", env!("CARGO_PKG_VERSION")).to_string(),
            max_redirects: 5,
            spool_dir: std::env::temp_dir(),
            caps: Caps::default(),
        }
    }
}

/// A shared, configured HTTP client with error mapping that never leaks
/// credentials. Cheap to clone.
#[derive(Debug, Clone)]
pub struct UpstreamHttp {
    client: reqwest::Client,
    settings: HttpSettings,
}

/// Whether a request is a small API call (bounded by the total timeout) or a
/// large body that streams for as long as data keeps arriving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodySize {
    Small,
    Large,
}

impl UpstreamHttp {
    pub fn new(settings: HttpSettings) -> Result<Self, UpstreamError> {
        let client = reqwest::Client::builder()
            .user_agent(settings.user_agent.clone())
            .connect_timeout(settings.connect_timeout)
            // A large catalog may take longer than `timeout` in total; what
            // matters is that bytes keep coming.
            .read_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::limited(settings.max_redirects as usize))
            .build()
            .map_err(|e| UpstreamError::InvalidUrl {
                url: String::new(),
                reason: format!("cannot build HTTP client: {e}"),
            })?;
        Ok(UpstreamHttp { client, settings })
    }

    pub fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    /// The underlying client (connect timeout, redirect cap, user agent), for
    /// long-lived stream requests made by the relay.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// GET `url`, check the status, and return the response with its body
    /// unread. `secrets` are masked in any error message.
    pub async fn get(&self, url: &str, secrets: &[&str], size: BodySize) -> Result<reqwest::Response, UpstreamError> {
        let shown = redact_url(url, secrets);
        self.get_shown(url, &shown, secrets, size).await
    }

    async fn get_shown(
        &self,
        url: &str,
        shown: &str,
        secrets: &[&str],
        size: BodySize,
    ) -> Result<reqwest::Response, UpstreamError> {
        let parsed =
            parse_http_url(url).map_err(|reason| UpstreamError::InvalidUrl { url: shown.to_string(), reason })?;
        let mut req = self.client.get(parsed);
        if size == BodySize::Small {
            req = req.timeout(self.settings.timeout);
        }
        let resp = req.send().await.map_err(|e| UpstreamError::Unreachable {
            url: shown.to_string(),
            reason: describe_reqwest_error(&e, secrets),
        })?;
        let status = resp.status();
        if !status.is_success() {
            return Err(UpstreamError::Status { url: shown.to_string(), status: status.as_u16() });
        }
        Ok(resp)
    }

    /// GET a small body (an API answer) into memory, at most the cap of
    /// `kind`.
    pub async fn get_bytes(&self, url: &str, secrets: &[&str], kind: BodyKind) -> Result<bytes::Bytes, UpstreamError> {
        let shown = redact_url(url, secrets);
        let mut resp = self.get_shown(url, &shown, secrets, BodySize::Small).await?;
        let limit = self.settings.caps.of(kind);
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(kind.too_large(&shown, limit));
        }
        let mut body = bytes::BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| UpstreamError::Unreachable {
            url: shown.clone(),
            reason: describe_reqwest_error(&e, secrets),
        })? {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(kind.too_large(&shown, limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }
}

impl UpstreamHttp {
    /// Downloads `url` into an anonymous temporary file in the spool dir and
    /// returns it rewound. A large catalog is thus fully received before any
    /// of it is written to the store, and memory stays flat: the file lives
    /// in the page cache, not in this process. A body larger than the cap of
    /// `kind` (counted as received, after any `Content-Encoding`) is an
    /// error, and its spool file is gone with it.
    pub async fn download(&self, url: &str, secrets: &[&str], kind: BodyKind) -> Result<std::fs::File, UpstreamError> {
        use futures_util::StreamExt;
        use std::io::Seek;
        use tokio::io::AsyncWriteExt;

        let shown = redact_url(url, secrets);
        let resp = self.get_shown(url, &shown, secrets, BodySize::Large).await?;
        let limit = self.settings.caps.of(kind);
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(kind.too_large(&shown, limit));
        }
        crate::owner_only::create_dir(&self.settings.spool_dir)
            .map_err(|e| spool_error(&self.settings.spool_dir, e))?;
        let file =
            tempfile::tempfile_in(&self.settings.spool_dir).map_err(|e| spool_error(&self.settings.spool_dir, e))?;
        let mut out = tokio::io::BufWriter::with_capacity(256 * 1024, tokio::fs::File::from_std(file));
        let mut body = resp.bytes_stream();
        let mut received = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| UpstreamError::BadBody {
                url: shown.clone(),
                expected: "a complete response",
                detail: format!("the download was interrupted: {}", describe_reqwest_error(&e, secrets)),
            })?;
            received += chunk.len() as u64;
            if received > limit {
                return Err(kind.too_large(&shown, limit));
            }
            out.write_all(&chunk).await.map_err(|e| spool_error(&self.settings.spool_dir, e))?;
        }
        out.flush().await.map_err(|e| spool_error(&self.settings.spool_dir, e))?;
        let mut file = out.into_inner().into_std().await;
        file.rewind().map_err(|e| spool_error(&self.settings.spool_dir, e))?;
        Ok(file)
    }
}

fn spool_error(dir: &std::path::Path, e: std::io::Error) -> UpstreamError {
    UpstreamError::File { path: dir.display().to_string(), reason: format!("cannot spool a download: {e}") }
}

/// A reqwest error as a short sentence, without the URL (which may hold a
/// password) and with the root cause.
pub fn describe_reqwest_error(e: &reqwest::Error, secrets: &[&str]) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_redirect() {
        "too many redirects"
    } else if e.is_body() || e.is_decode() {
        "the response body was cut or malformed"
    } else {
        "request failed"
    };
    let mut root: &dyn std::error::Error = e;
    while let Some(next) = root.source() {
        root = next;
    }
    let root = crate::redact::redact_text(&root.to_string(), secrets);
    let root = crate::redact::redact_url(&root, secrets);
    if root.is_empty() || std::ptr::eq(root.as_str(), kind) {
        kind.to_string()
    } else {
        format!("{kind}: {root}")
    }
}
