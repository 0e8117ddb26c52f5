//! The error type of the Xtream parsers.
//!
//! Panels fail in a few recognisable ways (an HTML error page or an empty body
//! instead of JSON, truncated JSON, a dropped connection); each gets its own
//! variant so callers can tell "wrong URL/credentials/blocked" from "broken
//! transfer" and report it usefully.

/// Why an Xtream response could not be parsed at all.
///
/// Problems with individual list elements are not errors: they are counted in
/// [`super::ItemCounts`].
#[derive(Debug, thiserror::Error)]
pub enum XtreamError {
    /// The body is not JSON (HTML error page, plain text, empty body, ...).
    #[error("{}", not_json_message(snippet))]
    NotJson {
        /// The start of the body (~80 chars), whitespace collapsed, control
        /// characters removed; empty for an empty body.
        snippet: String,
    },
    /// The body looked like JSON but is malformed or truncated.
    #[error(
        "Xtream response is not valid JSON ({0}); the panel sent a broken or truncated body, retry or check the panel"
    )]
    Json(#[from] serde_json::Error),
    /// Reading the body failed.
    #[error("reading the Xtream response failed: {0}")]
    Io(#[from] std::io::Error),
}

fn not_json_message(snippet: &str) -> String {
    if snippet.is_empty() {
        "Xtream response body is empty; check the panel URL and credentials".to_string()
    } else {
        format!(
            "Xtream response is not JSON (starts with {snippet:?}); the panel probably returned an error page, check the URL, credentials and whether the panel blocks this client"
        )
    }
}
