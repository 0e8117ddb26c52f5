//! The one place that removes credentials from URLs and messages before they
//! reach a log, an API response, an event, a metric or an error.
//!
//! IPTV URLs carry credentials in every part, usually in plain text:
//!
//! * the userinfo: `http://user:pass@host/list.m3u`;
//! * the query: `get.php?username=U&password=P`, `?token=…`, `?auth=…`,
//!   `?api_key=…` — any parameter whose name looks like a secret, and then
//!   the username that pairs with it;
//! * the path of Xtream-style URLs: `/live/U/P/1.ts`, `/movie/U/P/…`,
//!   `/series/U/P/…`, `/timeshift/U/P/…`, `/hls/U/P/…`, `/hdhr/U/P/…` and
//!   the short form `/U/P/1`.
//!
//! All of these are masked from the shape of the URL alone, so a secret need
//! not be known in advance. Secrets that *are* known (an account's password)
//! are masked too wherever they appear, raw or percent-encoded. URLs are
//! taken apart with the `url` crate and queries with `form_urlencoded`;
//! a URL with nothing to mask is returned exactly as given.

use std::borrow::Cow;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use url::{Position, Url};

/// What a redacted secret is replaced with.
pub const MASK: &str = "***";

/// Parts of query parameter names whose values are secret (`password`,
/// `pass`, `pwd`, `token`, `access_token`, `auth`, `api_key`, `sig`, …).
const SECRET_PARAM_PARTS: &[&str] = &["pass", "pwd", "token", "secret", "auth", "key", "sig", "credential"];

/// Query parameters that name the account a secret parameter belongs to.
const USER_PARAMS: &[&str] = &["username", "user", "login", "email", "uname", "u"];

/// Path segments that Xtream-style URLs put before `{user}/{password}`, and
/// how many segments at least follow the marker in such a URL.
const CREDENTIAL_MARKERS: &[(&str, usize)] =
    &[("live", 3), ("movie", 3), ("series", 3), ("timeshift", 3), ("hls", 3), ("hdhr", 2)];

/// Returns `url` with its credentials masked: userinfo, secret query
/// parameters (and the username paired with them), the credential segments
/// of Xtream-style paths, and every occurrence of each non-empty string in
/// `secrets`. Works on absolute URLs and on request targets (`/live/U/P/1.ts?…`);
/// anything else only has the known `secrets` masked.
pub fn redact_url(url: &str, secrets: &[&str]) -> String {
    // Known secrets first: a raw one may hold a `/` and span path segments.
    let known = mask_known(url, secrets);
    let text = known.as_deref().unwrap_or(url);
    mask_structure(text, secrets).unwrap_or_else(|| text.to_owned())
}

/// Returns `text` (a message, an error, a log line) with every URL in it
/// redacted as by [`redact_url`] and every occurrence of each non-empty
/// string in `secrets` masked.
pub fn redact_text(text: &str, secrets: &[&str]) -> String {
    let known = mask_known(text, secrets);
    let mut rest = known.as_deref().unwrap_or(text);
    let mut out = String::with_capacity(rest.len());
    while let Some((start, end)) = next_url(rest) {
        out.push_str(&rest[..start]);
        let url = &rest[start..end];
        match mask_structure(url, secrets) {
            Some(masked) => out.push_str(&masked),
            None => out.push_str(url),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The byte range of the next `scheme://…` URL in `text`: from the scheme to
/// the first whitespace, quote or angle bracket, less a closing parenthesis
/// that has no opening one in the URL (`(see http://h/x)`).
fn next_url(text: &str) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(found) = text[from..].find("://") {
        let sep = from + found;
        let start = text[..sep]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |i| i + 1);
        if start < sep {
            let mut end = text[sep..]
                .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`'))
                .map_or(text.len(), |i| sep + i);
            loop {
                let url = &text[start..end];
                let trailing = url.trim_end_matches(['.', ',', ';', ':']);
                if trailing.ends_with(')') && url.matches(')').count() > url.matches('(').count() {
                    end = start + trailing.len() - 1;
                } else {
                    break;
                }
            }
            return Some((start, end));
        }
        from = sep + 3;
    }
    None
}

/// `url` with userinfo, secret query values and credential path segments
/// masked; `None` when there was nothing to mask (or it is not a URL).
fn mask_structure(url: &str, secrets: &[&str]) -> Option<String> {
    let relative = url.starts_with('/') && !url.starts_with("//");
    let mut parsed = if relative {
        // A request target: resolve it against any base, show it without one.
        Url::parse("http://h").ok()?.join(url).ok()?
    } else {
        Url::parse(url).ok()?
    };
    let changed = [mask_userinfo(&mut parsed), mask_query(&mut parsed, secrets), mask_path(&mut parsed, secrets)];
    if !changed.contains(&true) {
        return None;
    }
    Some(if relative { parsed[Position::BeforePath..].to_owned() } else { parsed.into() })
}

fn mask_userinfo(url: &mut Url) -> bool {
    let mut changed = false;
    if !url.username().is_empty() {
        changed |= url.set_username(MASK).is_ok();
    }
    if url.password().is_some() {
        changed |= url.set_password(Some(MASK)).is_ok();
    }
    changed
}

fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARAM_PARTS.iter().any(|part| name.contains(part))
}

fn is_user_param(name: &str) -> bool {
    USER_PARAMS.iter().any(|u| name.eq_ignore_ascii_case(u))
}

fn mask_query(url: &mut Url, secrets: &[&str]) -> bool {
    if url.query().is_none_or(str::is_empty) {
        return false;
    }
    let pairs: Vec<(Cow<'_, str>, Cow<'_, str>)> = url.query_pairs().collect();
    let known = |v: &str| secrets.iter().any(|s| !s.is_empty() && *s == v);
    let has_secret = pairs.iter().any(|(k, v)| !v.is_empty() && (is_secret_param(k) || known(v)));
    if !has_secret {
        return false;
    }
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &pairs {
        let secret = is_secret_param(k) || is_user_param(k) || known(v);
        query.append_pair(k, if secret && !v.is_empty() { MASK } else { v });
    }
    let query = query.finish();
    url.set_query(Some(&query));
    true
}

/// Whether a path segment is a stream id: digits, with an optional extension.
fn is_stream_id(segment: &str) -> bool {
    let id = segment.split_once('.').map_or(segment, |(id, _)| id);
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())
}

fn mask_path(url: &mut Url, secrets: &[&str]) -> bool {
    let Some(segments) = url.path_segments() else { return false };
    let mut segments: Vec<String> = segments.map(str::to_owned).collect();
    let mut mask = vec![false; segments.len()];
    // Xtream-style: a marker, then user and password (anywhere: panels may sit under a base path).
    for (i, seg) in segments.iter().enumerate() {
        let after = segments.len() - i - 1;
        if CREDENTIAL_MARKERS.iter().any(|(m, min)| seg.eq_ignore_ascii_case(m) && after >= *min) {
            mask[i + 1] = true;
            mask[i + 2] = true;
        }
    }
    // The short form `/{user}/{password}/{stream id}`.
    if segments.len() == 3 && is_stream_id(&segments[2]) && !segments[0].is_empty() && !segments[1].is_empty() {
        mask[0] = true;
        mask[1] = true;
    }
    // Any segment that is a known secret.
    for (i, seg) in segments.iter().enumerate() {
        let decoded = percent_encoding::percent_decode_str(seg).decode_utf8_lossy();
        if secrets.iter().any(|s| !s.is_empty() && *s == decoded) {
            mask[i] = true;
        }
    }
    let mut changed = false;
    for (seg, masked) in segments.iter_mut().zip(&mask) {
        if *masked && seg != MASK {
            *seg = MASK.to_owned();
            changed = true;
        }
    }
    if changed {
        url.set_path(&format!("/{}", segments.join("/")));
    }
    changed
}

/// `text` with each known secret masked in the forms it takes in URLs (raw,
/// percent-encoded in upper or lower case, form-encoded); `None` if none of
/// them occurs.
fn mask_known(text: &str, secrets: &[&str]) -> Option<String> {
    let mut out: Option<String> = None;
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        let encoded = utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string();
        let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        let path: String = {
            let mut u = Url::parse("http://h/").expect("a valid base");
            u.path_segments_mut().expect("http URLs have paths").push(secret);
            u.path()[1..].to_owned()
        };
        for variant in [secret.to_string(), lower_hex(&encoded), encoded, form, path] {
            let current = out.as_deref().unwrap_or(text);
            if current.contains(&variant) {
                out = Some(current.replace(&variant, MASK));
            }
        }
    }
    out
}

/// `%2F` → `%2f`: the same escapes in lower case.
fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut chars = encoded.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            out.extend(chars.by_ref().take(2).map(|h| h.to_ascii_lowercase()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_secrets_and_their_usernames() {
        let u = "http://h:8080/player_api.php?username=bob&password=s3cret&action=get_live_streams";
        assert_eq!(
            redact_url(u, &[]),
            "http://h:8080/player_api.php?username=***&password=***&action=get_live_streams"
        );
        let u = "http://h/get.php?username=U&password=X&type=m3u_plus&output=ts";
        assert_eq!(redact_url(u, &[]), "http://h/get.php?username=***&password=***&type=m3u_plus&output=ts");
        assert_eq!(redact_url("http://h/x?token=abc&q=1", &[]), "http://h/x?token=***&q=1");
        assert_eq!(redact_url("http://h/x?API_KEY=abc", &[]), "http://h/x?API_KEY=***");
        assert_eq!(redact_url("http://h/x?access_token=abc&user=me", &[]), "http://h/x?access_token=***&user=***");
        // A username alone is not a secret.
        assert_eq!(redact_url("http://h/x?username=bob", &[]), "http://h/x?username=bob");
    }

    #[test]
    fn userinfo() {
        assert_eq!(redact_url("http://user:pass@h:1/list.m3u", &[]), "http://***:***@h:1/list.m3u");
        assert_eq!(redact_url("https://tok@h/list.m3u", &[]), "https://***@h/list.m3u");
    }

    #[test]
    fn xtream_paths_with_unknown_secrets() {
        for (u, want) in [
            ("http://h/live/U/P/1.ts", "http://h/live/***/***/1.ts"),
            ("http://h/movie/U/P/7.mkv", "http://h/movie/***/***/7.mkv"),
            ("http://h/series/U/P/7.mp4", "http://h/series/***/***/7.mp4"),
            ("http://h/timeshift/U/P/60/2025-01-01:10-00/5.ts", "http://h/timeshift/***/***/60/2025-01-01:10-00/5.ts"),
            ("http://h/hls/U/P/5/3.ts", "http://h/hls/***/***/5/3.ts"),
            ("http://h/hdhr/U/P", "http://h/hdhr/***/***"),
            ("http://h/hdhr/U/P/lineup.json", "http://h/hdhr/***/***/lineup.json"),
            ("http://h:8080/U/P/12345", "http://h:8080/***/***/12345"),
            ("http://h/U/P/12345.ts", "http://h/***/***/12345.ts"),
            ("http://h/base/live/U/P/1.m3u8", "http://h/base/live/***/***/1.m3u8"),
            ("/live/U/P/1.ts", "/live/***/***/1.ts"),
            ("/U/P/1", "/***/***/1"),
            ("/get.php?username=U&password=P", "/get.php?username=***&password=***"),
        ] {
            assert_eq!(redact_url(u, &[]), want, "{u}");
        }
    }

    #[test]
    fn known_secrets_raw_and_encoded() {
        let pw = "p/a+ss%1";
        let encoded: String = utf8_percent_encode(pw, NON_ALPHANUMERIC).to_string();
        let u = format!("http://h/x/{encoded}/y and http://h/a/{pw}");
        let r = redact_text(&u, &[pw]);
        assert!(!r.contains(pw) && !r.contains(&encoded), "{r}");
        assert_eq!(redact_url("http://h/a/P%41SS/b", &["PASS"]), "http://h/a/***/b");
        assert_eq!(redact_url("not a url with pw inside", &["pw"]), "not a url with *** inside");
        assert_eq!(redact_url("http://h/x?v=secret1", &["secret1"]), "http://h/x?v=***");
    }

    #[test]
    fn urls_without_secrets_are_returned_as_given() {
        for u in [
            "http://example.com/a.m3u8?x=1#frag",
            "http://h:8080",
            "HTTP://Example.com/A%20b",
            "/stream/5.ts",
            "/tmp/list.m3u",
            "list.m3u",
            "",
        ] {
            assert_eq!(redact_url(u, &["", "nothere"]), u);
        }
        assert_eq!(redact_url("http://h/x?password=&token=abc#f", &[]), "http://h/x?password=&token=***#f");
    }

    #[test]
    fn urls_inside_text() {
        let t = "error sending request for url (http://h/get.php?username=u&password=p): connection refused";
        assert_eq!(
            redact_text(t, &[]),
            "error sending request for url (http://h/get.php?username=***&password=***): connection refused"
        );
        let t = "\"http://a:b@h/x\" then https://h/live/u/p/1.ts.";
        assert_eq!(redact_text(t, &[]), "\"http://***:***@h/x\" then https://h/live/***/***/1.ts.");
        assert_eq!(redact_text("no url here :// at all", &[]), "no url here :// at all");
    }
}
