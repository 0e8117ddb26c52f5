//! Where providers are: the checks every URL or path a user gives for a
//! provider goes through, shared by input validation (here) and the
//! fetches (`upstream`, which re-exports them). Pure: parsing only.

use std::path::PathBuf;

use url::Url;

/// Parses an absolute http(s) URL, with a message that says what is wrong.
pub fn parse_http_url(url: &str) -> Result<Url, String> {
    let parsed = Url::parse(url).map_err(|e| match e {
        url::ParseError::RelativeUrlWithoutBase => {
            "the URL has no scheme: start it with http:// or https://".to_string()
        }
        other => other.to_string(),
    })?;
    match parsed.scheme() {
        "http" | "https" => {}
        other => return Err(format!("unsupported scheme {other}: use http:// or https://")),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".to_string());
    }
    Ok(parsed)
}

/// Turns what users paste as a server URL into the panel's base URL:
/// `http://host:port/`, `http://host:port/player_api.php?…` and
/// `http://host:port/get.php?…` all become `http://host:port`.
pub fn normalize_base_url(input: &str) -> Result<String, String> {
    let trimmed = input.trim();
    let url = parse_http_url(trimmed)?;
    let mut base = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        base.push_str(&format!(":{port}"));
    }
    let mut path = url.path().trim_end_matches('/').to_string();
    for suffix in ["/player_api.php", "/get.php", "/xmltv.php", "/panel_api.php"] {
        if let Some(stripped) = path.strip_suffix(suffix) {
            path = stripped.to_string();
        }
    }
    base.push_str(&path);
    Ok(base)
}

/// Where a playlist comes from: a URL or a file on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum M3uSource {
    Url(String),
    File(PathBuf),
}

impl M3uSource {
    /// `http(s)://…` is a URL, anything without a scheme is a local path, any
    /// other scheme is refused with a message saying what is supported.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("the playlist location is empty: give an http(s):// URL or a file path".into());
        }
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            parse_http_url(s)?;
            return Ok(M3uSource::Url(s.to_string()));
        }
        if let Some(path) = s.strip_prefix("file://") {
            return Ok(M3uSource::File(PathBuf::from(path)));
        }
        if let Some((scheme, _)) = s.split_once("://") {
            return Err(format!("unsupported scheme {scheme}://: use http://, https:// or a file path"));
        }
        Ok(M3uSource::File(PathBuf::from(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_without_scheme_says_so() {
        let e = parse_http_url("provider.example:8080").unwrap_err();
        // "provider.example:8080" parses as scheme "provider.example"; both must be refused clearly.
        assert!(e.contains("scheme"), "{e}");
        let e = parse_http_url("/get.php").unwrap_err();
        assert!(e.contains("http://"), "{e}");
    }

    #[test]
    fn accepts_http_and_https() {
        assert!(parse_http_url("http://a.b:8080/x").is_ok());
        assert!(parse_http_url("https://a.b").is_ok());
        assert!(parse_http_url("ftp://a.b").is_err());
    }

    #[test]
    fn normalizes_pasted_urls() {
        assert_eq!(normalize_base_url("http://h:8080/").unwrap(), "http://h:8080");
        assert_eq!(
            normalize_base_url(" http://h:8080/player_api.php?username=a&password=b ").unwrap(),
            "http://h:8080"
        );
        assert_eq!(normalize_base_url("https://h/get.php?username=a").unwrap(), "https://h");
        assert_eq!(normalize_base_url("http://h/sub/dir/").unwrap(), "http://h/sub/dir");
        assert!(normalize_base_url("h:8080").is_err());
    }

    #[test]
    fn source_kinds() {
        assert_eq!(M3uSource::parse("http://a/b.m3u").unwrap(), M3uSource::Url("http://a/b.m3u".into()));
        assert_eq!(M3uSource::parse("/tmp/x.m3u").unwrap(), M3uSource::File("/tmp/x.m3u".into()));
        assert_eq!(M3uSource::parse("file:///tmp/x.m3u").unwrap(), M3uSource::File("/tmp/x.m3u".into()));
        assert!(M3uSource::parse("rtmp://a/b").unwrap_err().contains("rtmp"));
        assert!(M3uSource::parse("  ").is_err());
    }
}
