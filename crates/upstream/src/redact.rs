//! Removing credentials from URLs and messages before they reach a log, an API
//! response or an error.
//!
//! Xtream URLs carry the password twice over: `player_api.php?password=…` and
//! `/live/{user}/{pass}/{id}.ts`. Both forms are handled: well-known secret
//! query parameters are masked by name, and any caller-supplied secret (the
//! account's password) is masked wherever it appears, raw or percent-encoded.

/// What a redacted secret is replaced with.
pub const MASK: &str = "***";

/// Query parameters whose values are always secret.
const SECRET_PARAMS: &[&str] = &["password", "pass", "pwd", "passwd", "token", "auth", "key"];

/// Returns `url` with the values of secret query parameters and every
/// occurrence of each non-empty string in `secrets` replaced by [`MASK`].
pub fn redact_url(url: &str, secrets: &[&str]) -> String {
    let mut out = mask_query(url);
    out = redact_text(&out, secrets);
    out
}

/// Replaces every occurrence of each non-empty secret (raw and
/// percent-encoded) in `text` with [`MASK`].
pub fn redact_text(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        if out.contains(secret) {
            out = out.replace(secret, MASK);
        }
        let encoded = percent_encode(secret);
        if encoded != *secret && out.contains(&encoded) {
            out = out.replace(&encoded, MASK);
        }
    }
    out
}

fn mask_query(url: &str) -> String {
    let Some(q) = url.find('?') else {
        return url.to_string();
    };
    let (head, query) = url.split_at(q + 1);
    let (query, fragment) = match query.find('#') {
        Some(f) => query.split_at(f),
        None => (query, ""),
    };
    let masked: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !v.is_empty() && SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str()) => {
                format!("{k}={MASK}")
            }
            _ => pair.to_string(),
        })
        .collect();
    format!("{head}{}{fragment}", masked.join("&"))
}

fn percent_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_password_query_param() {
        let u = "http://h:8080/player_api.php?username=bob&password=s3cret&action=get_live_streams";
        let r = redact_url(u, &[]);
        assert_eq!(r, "http://h:8080/player_api.php?username=bob&password=***&action=get_live_streams");
    }

    #[test]
    fn masks_password_in_path_raw_and_encoded() {
        let pw = "p/a+ss%1";
        let u = format!("http://h/live/bob/{}/12.ts and http://h/live/bob/{pw}/12.ts", percent_encode(pw));
        let r = redact_url(&u, &[pw]);
        assert!(!r.contains(pw), "{r}");
        assert!(!r.contains(&percent_encode(pw)), "{r}");
        assert_eq!(r.matches(MASK).count(), 2);
    }

    #[test]
    fn leaves_urls_without_secrets_alone() {
        let u = "http://example.com/a.m3u8?x=1#frag";
        assert_eq!(redact_url(u, &["", "nothere"]), u);
    }

    #[test]
    fn keeps_fragment_and_empty_values() {
        let u = "http://h/x?password=&token=abc#f";
        assert_eq!(redact_url(u, &[]), "http://h/x?password=&token=***#f");
    }
}
