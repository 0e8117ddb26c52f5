//! The one error type of the upstream crate.

/// Why talking to a provider failed. Every message is safe to log and to show
/// in the API: URLs are redacted before they are put in here.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The URL the provider was configured with cannot be used.
    #[error("invalid provider URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// No answer: DNS, refused connection, TLS, timeout.
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The provider answered with a non-success status.
    #[error("{url} answered HTTP {status}{}", hint_for_status(*status))]
    Status { url: String, status: u16 },
    /// The provider answered 200 but not with what was asked for (an HTML
    /// error page instead of JSON, a truncated body, ...).
    #[error("{url} did not return {expected}: {detail}")]
    BadBody { url: String, expected: &'static str, detail: String },
    /// The provider sent more than the cap for this kind of body (a URL that
    /// points at a live stream, an endless answer, a gzip bomb).
    #[error("{url} sent more than {} (the {key} limit): the download was stopped; raise {key} if this provider really serves that much", crate::cap::human_bytes(*limit))]
    TooLarge { url: String, limit: u64, key: &'static str },
    /// Reading a local playlist file failed.
    #[error("cannot read {path}: {reason}")]
    File { path: String, reason: String },
    /// The consumer of a streamed catalog went away (e.g. the sync was cancelled).
    #[error("catalog consumer stopped")]
    Cancelled,
}

fn hint_for_status(status: u16) -> &'static str {
    match status {
        401 | 403 => " (check the username and password, or whether the account is expired or banned)",
        404 => " (check the server URL and port)",
        429 => " (the provider is rate-limiting: try again later)",
        500..=599 => " (the provider has a problem: try again later)",
        _ => "",
    }
}
