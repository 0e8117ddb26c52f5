//! The stream URL for an account.
//!
//! A catalog stream was synced with one account's credentials in its URL; to
//! play it with another account of the same provider the URL must be
//! rewritten. Three tools:
//!
//! - [`xtream_url`] builds an Xtream stream URL from parts.
//! - [`rewrite_xtream`] swaps the credentials (and optionally the server) in
//!   an existing Xtream-style URL, structurally.
//! - [`RegexRewrite`] applies an account's `search_pattern` /
//!   `replace_pattern` (seed 003) for generic M3U providers.
//!
//! Unlike m3u-editor's `transformUrl`, nothing here silently hands back the
//! original URL when it does not fit: that would play the stream on the wrong
//! account and break its limit. Every failure is a [`RewriteError`], and no
//! error message contains a password.

use regex::Regex;
use tunerpool_domain::{FieldError, Secret};

/// Why a stream URL could not be made for an account. Messages never contain
/// passwords: any URL included is redacted (passwords, raw or
/// percent-encoded, become `***`).
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum RewriteError {
    /// The URL does not have the shape needed; `reason` says what was expected.
    #[error("cannot rewrite {url}: {reason}")]
    NoMatch { url: String, reason: String },
    /// A user-supplied pattern or URL (`search_pattern`, `replace_pattern`,
    /// `server_url`) is not usable.
    #[error("{field}: {message}")]
    BadPattern { field: &'static str, message: String },
    /// A username or password needed for the URL is empty.
    #[error("the account has no username or password to put in the stream URL")]
    MissingCredentials,
}

/// The path kinds of Xtream stream URLs, so callers cannot misspell one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    Live,
    Movie,
    Series,
    Timeshift,
}

impl StreamKind {
    pub const ALL: [StreamKind; 4] = [StreamKind::Live, StreamKind::Movie, StreamKind::Series, StreamKind::Timeshift];

    /// The path segment: `live`, `movie`, `series` or `timeshift`.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamKind::Live => "live",
            StreamKind::Movie => "movie",
            StreamKind::Series => "series",
            StreamKind::Timeshift => "timeshift",
        }
    }

    fn from_segment(s: &str) -> Option<StreamKind> {
        StreamKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for StreamKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a path segment keeps unescaped: RFC 3986 unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`), so `/ + % $ # ? space` survive any server's
/// decoding.
const SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn encode_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays as is.
fn decode(s: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(s).collect()
}

/// Builds the URL of an Xtream stream for an account: `{base}/{kind}/{user}/{pass}/{id}.{ext}` with user and pass percent-encoded as path segments (so '/', '+', '%', '$', '#', '?', ' ' survive).
///
/// `base` is the server URL (`http://host:port`, possibly with a base path;
/// a trailing `/` is dropped). `id` is put in verbatim: for a timeshift
/// stream pass `{duration}/{start}/{stream id}`. `ext` may be empty (no
/// extension) and may start with a dot. A username or password that is
/// exactly `.` or `..` cannot be expressed in a URL path (clients collapse
/// such segments) and will not reach the panel intact.
pub fn xtream_url(base: &str, kind: StreamKind, username: &str, password: &str, id: &str, ext: &str) -> String {
    let base = base.trim().trim_end_matches('/');
    let ext = ext.trim_start_matches('.');
    let mut url = format!("{base}/{}/{}/{}/{id}", kind.as_str(), encode_segment(username), encode_segment(password));
    if !ext.is_empty() {
        url.push('.');
        url.push_str(ext);
    }
    url
}

/// An absolute URL cut at its structural boundaries.
struct Parts<'a> {
    /// `scheme://authority`.
    origin: &'a str,
    /// From the first `/` after the authority to before `?`/`#` (may be empty).
    path: &'a str,
    /// From `?` to before `#`, or empty.
    query: &'a str,
    /// From `#`, or empty.
    fragment: &'a str,
}

fn split_url(url: &str) -> Option<Parts<'_>> {
    let (scheme, rest) = url.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if authority_len == 0 {
        return None;
    }
    let origin_len = scheme.len() + 3 + authority_len;
    let after = &url[origin_len..];
    let path_len = after.find(['?', '#']).unwrap_or(after.len());
    let (path, tail) = after.split_at(path_len);
    let (query, fragment) = tail.split_at(tail.find('#').unwrap_or(tail.len()));
    Some(Parts { origin: &url[..origin_len], path, query, fragment })
}

/// Byte ranges of the `/`-separated segments of a path that starts with `/`.
fn segments(path: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    if !path.starts_with('/') {
        return out;
    }
    let mut start = 1;
    loop {
        let end = path[start..].find('/').map_or(path.len(), |i| start + i);
        out.push((start, end));
        if end == path.len() {
            return out;
        }
        start = end + 1;
    }
}

/// How many segments from `i` spell `cred` once percent-decoded: one (the
/// credential encoded, `%2F` for `/`), or as many as the credential has raw
/// `/`-separated parts (a raw `/` in a password, unambiguous because the
/// password is known).
fn match_cred(path: &str, segs: &[(usize, usize)], i: usize, cred: &str) -> Option<usize> {
    let parts = cred.matches('/').count() + 1;
    let mut tries = vec![1];
    if parts > 1 {
        tries.push(parts);
    }
    tries.into_iter().find(|&n| i + n <= segs.len() && decode(&path[segs[i].0..segs[i + n - 1].1]) == cred.as_bytes())
}

/// `123` or `123.ts`: the stream of a short Xtream URL.
fn is_short_id(s: &str) -> bool {
    let (id, ext) = match s.split_once('.') {
        Some((id, ext)) => (id, Some(ext)),
        None => (s, None),
    };
    !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_digit())
        && ext.is_none_or(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Where the credentials sit in a source URL.
struct Found<'a> {
    /// Everything before the `/` that starts the Xtream part (kept unless a target base is given).
    head: &'a str,
    /// `live`, `movie`, … for the long form; `None` for the short form.
    kind: Option<&'a str>,
    /// The path after the password (stream id, extension, timeshift parts).
    rest: &'a str,
    query: &'a str,
    fragment: &'a str,
}

fn find_structural<'a>(url: &'a str, user: &str, pass: &str) -> Option<Found<'a>> {
    let parts = split_url(url)?;
    let path = parts.path;
    let segs = segments(path);
    let head = |j: usize| &url[..parts.origin.len() + segs[j].0 - 1];
    let found = |head, kind, rest| Found { head, kind, rest, query: parts.query, fragment: parts.fragment };
    for j in 0..segs.len() {
        let seg = &path[segs[j].0..segs[j].1];
        if StreamKind::from_segment(seg).is_none() {
            continue;
        }
        let Some(u) = match_cred(path, &segs, j + 1, user) else { continue };
        let Some(p) = match_cred(path, &segs, j + 1 + u, pass) else { continue };
        let r = j + 1 + u + p;
        if r < segs.len() && segs[r].0 < path.len() {
            return Some(found(head(j), Some(seg), &path[segs[r].0..]));
        }
    }
    // The short form sits at the root of the server: `/stream/u/p/1.ts` is not one.
    let u = match_cred(path, &segs, 0, user)?;
    let p = match_cred(path, &segs, u, pass)?;
    let r = u + p;
    (r + 1 == segs.len() && is_short_id(&path[segs[r].0..])).then(|| found(head(0), None, &path[segs[r].0..]))
}

/// The raw form: credentials written into the URL unencoded, matched as the
/// literal strings they are (handles raw `?`, `#` or `%` in a password,
/// which break the URL's structure).
fn find_literal<'a>(url: &'a str, user: &str, pass: &str) -> Option<Found<'a>> {
    let (scheme, rest) = url.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let origin_len = url.len() - rest.len() + rest.find('/')?;
    let after = &url[origin_len..];
    let split_tail = |s: &'a str| {
        let end = s.find(['?', '#']).unwrap_or(s.len());
        let (path, tail) = s.split_at(end);
        let (query, fragment) = tail.split_at(tail.find('#').unwrap_or(tail.len()));
        (path, query, fragment)
    };
    for kind in StreamKind::ALL {
        let needle = format!("/{}/{user}/{pass}/", kind.as_str());
        if let Some(pos) = after.find(&needle) {
            let (head, tail) = (&after[..pos], &after[pos + needle.len()..]);
            let (rest, query, fragment) = split_tail(tail);
            if !head.contains(['?', '#']) && !rest.is_empty() {
                let kind = &after[pos + 1..pos + 1 + kind.as_str().len()];
                return Some(Found { head: &url[..origin_len + pos], kind: Some(kind), rest, query, fragment });
            }
        }
    }
    let tail = after.strip_prefix(&format!("/{user}/{pass}/"))?;
    let (rest, query, fragment) = split_tail(tail);
    is_short_id(rest).then(|| Found { head: &url[..origin_len], kind: None, rest, query, fragment })
}

/// Replaces `username=`/`password=` query values equal to the source
/// credentials, so that the rewritten URL never carries the source account.
fn rewrite_query(query: &str, su: &str, sp: &str, tu: &str, tp: &str) -> String {
    let Some(q) = query.strip_prefix('?') else { return query.to_string() };
    let pairs: Vec<String> = q
        .split('&')
        .map(|pair| {
            let Some((k, v)) = url::form_urlencoded::parse(pair.as_bytes()).next() else { return pair.to_string() };
            let target = match k.as_ref() {
                "username" if v == su => tu,
                "password" if v == sp => tp,
                _ => return pair.to_string(),
            };
            format!("{}={}", &pair[..pair.find('=').unwrap_or(pair.len())], form_encode(target))
        })
        .collect();
    format!("?{}", pairs.join("&"))
}

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Validates an account's server URL and returns it as a base
/// (`scheme://host[:port][/path]`, no trailing `/`, no `player_api.php`).
fn target_base(base: &str) -> Result<String, RewriteError> {
    let bad = |message: &str| RewriteError::BadPattern { field: "server_url", message: message.to_string() };
    let trimmed = base.trim().trim_end_matches('/');
    let parsed = url::Url::parse(trimmed).map_err(|e| bad(&format!("is not a valid URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("must start with http:// or https://"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("must name a host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad("must not have a query or fragment: give the server as http://host:port"));
    }
    let mut out = trimmed;
    for suffix in ["/player_api.php", "/get.php"] {
        out = out.strip_suffix(suffix).unwrap_or(out);
    }
    Ok(out.trim_end_matches('/').to_string())
}

/// Structured rewrite of an existing Xtream-style URL (from an M3U of a panel, or another account):
/// `/(live|movie|series|timeshift)/{user}/{pass}/{rest}` and the short form `/{user}/{pass}/{id}` (id numeric, optional extension;
/// at the root of the server, no base path),
/// where {user}/{pass} must equal the SOURCE credentials (compare percent-decoded), replaced by the TARGET credentials,
/// and scheme/host/port (and any base path before /live) replaced by `target_base` when given (the account's server URL).
/// Query strings and the rest of the path are preserved. Not matching → NoMatch (never a silent pass-through).
///
/// Source credentials are recognised percent-encoded (any mix of encoded
/// and plain characters), with raw `/` in them, and as raw literal strings
/// (which covers raw `?`, `#` and `%`). The target credentials are always
/// percent-encoded. In the query, `username=` and `password=` values equal to
/// the source credentials are replaced by the target ones; everything else is
/// kept. The first `/live/`, `/movie/`, `/series/` or `/timeshift/` followed
/// by the source credentials wins over the short form.
pub fn rewrite_xtream(
    url: &str,
    source_user: &str,
    source_pass: &str,
    target_base: Option<&str>,
    target_user: &str,
    target_pass: &str,
) -> Result<String, RewriteError> {
    if [source_user, source_pass, target_user, target_pass].iter().any(|s| s.is_empty()) {
        return Err(RewriteError::MissingCredentials);
    }
    let base = target_base.map(self::target_base).transpose()?;
    let url = url.trim();
    let found = find_structural(url, source_user, source_pass).or_else(|| find_literal(url, source_user, source_pass));
    let Some(f) = found else {
        return Err(RewriteError::NoMatch {
            url: redact(url, &[source_pass, target_pass]),
            reason: no_match_reason(url),
        });
    };
    let mut out = base.unwrap_or_else(|| f.head.to_string());
    if let Some(kind) = f.kind {
        out.push('/');
        out.push_str(kind);
    }
    out.push('/');
    out.push_str(&encode_segment(target_user));
    out.push('/');
    out.push_str(&encode_segment(target_pass));
    out.push('/');
    out.push_str(f.rest);
    out.push_str(&rewrite_query(f.query, source_user, source_pass, target_user, target_pass));
    out.push_str(f.fragment);
    Ok(out)
}

fn no_match_reason(url: &str) -> String {
    let Some(parts) = split_url(url) else {
        return "expected an absolute http:// or https:// URL".to_string();
    };
    let kind = segments(parts.path).iter().find_map(|&(s, e)| StreamKind::from_segment(&parts.path[s..e]));
    match kind {
        Some(kind) => {
            format!("its /{kind}/ is not followed by the source account's username and password and a stream")
        }
        None => "expected /live/, /movie/, /series/ or /timeshift/ followed by the source account's \
                 username, password and stream, or the short form /{username}/{password}/{stream id}"
            .to_string(),
    }
}

/// `url` with its credentials masked (the one redaction of
/// [`tunerpool_domain::redact`]).
pub(crate) fn redact(url: &str, secrets: &[&str]) -> String {
    tunerpool_domain::redact::redact_url(url, secrets)
}

/// Regex rewrite for generic M3U accounts (seed 003): search_pattern / replace_pattern with `$1`, `${name}` back-references
/// (the regex crate's syntax). A pattern that does not match the URL → NoMatch.
///
/// Replacement syntax (the `regex` crate's): `$1` or `${1}` is group 1,
/// `$name` or `${name}` a named group, `$$` a literal `$`. A reference runs
/// over all following letters, digits and `_`, so `$1a` means the group
/// *named* `1a`: write `${1}a` for group 1 followed by `a`. A lone `$` not
/// followed by a name is literal. Every reference must exist in the search
/// pattern (checked by [`RegexRewrite::new`]), because the regex crate would
/// silently put an empty string for a missing one. Every match in the URL is
/// replaced (like Python's `re.sub` in Dispatcharr).
#[derive(Clone)]
pub struct RegexRewrite {
    search: Regex,
    replace: String,
    secrets: Vec<Secret>,
}

impl std::fmt::Debug for RegexRewrite {
    // The patterns hold credentials: print neither.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegexRewrite").field("groups", &(self.search.captures_len() - 1)).finish_non_exhaustive()
    }
}

/// One `$…` reference in a replacement: where it starts and what it names.
enum GroupRef<'a> {
    Index(usize),
    Name(&'a str),
}

/// The group references of a replacement string, with their byte offsets,
/// read by the regex crate's rules (see [`RegexRewrite`]).
fn group_refs(replace: &str) -> Vec<(usize, GroupRef<'_>)> {
    let b = replace.as_bytes();
    let name_char = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut refs = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'$') => {
                i += 2;
                continue;
            }
            Some(b'{') => {
                if let Some(len) = replace[i + 2..].find('}') {
                    let name = &replace[i + 2..i + 2 + len];
                    refs.push((i, to_ref(name)));
                    i += 2 + len + 1;
                } else {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        let end = (i + 1..b.len()).find(|&j| !name_char(b[j])).unwrap_or(b.len());
        if end > i + 1 {
            refs.push((i, to_ref(&replace[i + 1..end])));
        }
        i = end.max(i + 1);
    }
    refs
}

fn to_ref(name: &str) -> GroupRef<'_> {
    match name.parse::<usize>() {
        Ok(n) => GroupRef::Index(n),
        Err(_) => GroupRef::Name(name),
    }
}

/// The regex crate's error, without the echo of the pattern (which may hold
/// credentials): only its `error: …` line.
fn regex_error(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(text) => {
            let reason = text.lines().rev().find_map(|l| l.trim().strip_prefix("error:")).map(str::trim);
            format!("does not compile: {}", reason.unwrap_or("invalid regular expression"))
        }
        regex::Error::CompiledTooBig(limit) => format!("is too big once compiled (over {limit} bytes): simplify it"),
        _ => "does not compile".to_string(),
    }
}

impl RegexRewrite {
    /// Compiles and checks an account's patterns: `search` must compile
    /// (`BadPattern { field: "search_pattern" }`) and every group `replace`
    /// refers to must exist in it (`BadPattern { field: "replace_pattern" }`).
    pub fn new(search: &str, replace: &str) -> Result<Self, RewriteError> {
        let bad = |field, message: String| RewriteError::BadPattern { field, message };
        if search.trim().is_empty() {
            return Err(bad("search_pattern", "must not be empty".to_string()));
        }
        let regex = Regex::new(search).map_err(|e| bad("search_pattern", regex_error(&e)))?;
        let groups = regex.captures_len() - 1;
        let names: Vec<&str> = regex.capture_names().flatten().collect();
        for (at, r) in group_refs(replace) {
            let exists = match r {
                GroupRef::Index(n) => n <= groups,
                GroupRef::Name(name) => names.contains(&name),
            };
            if exists {
                continue;
            }
            // The reference itself is not echoed: a stray `$` in a password
            // would turn the rest of the password into a "group name".
            let position = replace[..at].chars().count() + 1;
            let has = match (groups, names.is_empty()) {
                (0, _) => "search_pattern has no groups".to_string(),
                (n, true) => format!("search_pattern has groups 1 to {n}"),
                (n, false) => format!("search_pattern has groups 1 to {n}, named {}", names.join(", ")),
            };
            return Err(bad(
                "replace_pattern",
                format!(
                    "the `$` at character {position} refers to a group that does not exist ({has}); \
                     write `$$` for a literal `$`, and `${{1}}a` rather than `$1a` for group 1 followed by `a`"
                ),
            ));
        }
        Ok(RegexRewrite { search: regex, replace: replace.to_string(), secrets: Vec::new() })
    }

    /// Passwords to mask in error messages (the source account's, at least):
    /// the URLs this rewrites carry credentials the patterns do not name.
    pub fn with_secrets(mut self, secrets: &[&str]) -> Self {
        self.secrets = secrets.iter().filter(|s| !s.is_empty()).map(|s| Secret::new(*s)).collect();
        self
    }

    /// Rewrites `url`; `NoMatch` when the search pattern does not match it
    /// or the result is not a URL.
    pub fn apply(&self, url: &str) -> Result<String, RewriteError> {
        let no_match = |reason: &str| {
            let secrets: Vec<&str> = self.secrets.iter().map(Secret::expose).collect();
            RewriteError::NoMatch { url: redact(url, &secrets), reason: reason.to_string() }
        };
        if !self.search.is_match(url) {
            return Err(no_match("search_pattern does not match it"));
        }
        let out = self.search.replace_all(url, self.replace.as_str()).into_owned();
        if url::Url::parse(&out).is_err() {
            return Err(no_match("replacing with replace_pattern does not give a valid URL"));
        }
        Ok(out)
    }
}

/// Validation used by the API: returns field-named problems for an account's patterns.
///
/// Both or neither must be set (an empty or blank string counts as not
/// set); the search pattern must compile and the replacement may only refer
/// to groups it has.
pub fn validate_patterns(search: Option<&str>, replace: Option<&str>) -> Vec<FieldError> {
    let search = search.filter(|s| !s.trim().is_empty());
    let replace = replace.filter(|s| !s.trim().is_empty());
    match (search, replace) {
        (None, None) => Vec::new(),
        (Some(_), None) => vec![FieldError::new("replace_pattern", "is required when search_pattern is set")],
        (None, Some(_)) => vec![FieldError::new("search_pattern", "is required when replace_pattern is set")],
        (Some(s), Some(r)) => match RegexRewrite::new(s, r) {
            Ok(_) => Vec::new(),
            Err(RewriteError::BadPattern { field, message }) => vec![FieldError::new(field, message)],
            Err(other) => vec![FieldError::new("search_pattern", other.to_string())],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rw(url: &str, target_base: Option<&str>) -> Result<String, RewriteError> {
        rewrite_xtream(url, "u1", "p1", target_base, "u2", "p2")
    }

    fn no_match(r: Result<String, RewriteError>) -> (String, String) {
        match r {
            Err(RewriteError::NoMatch { url, reason }) => (url, reason),
            other => panic!("expected NoMatch, got {other:?}"),
        }
    }

    #[test]
    fn xtream_url_encodes_credentials() {
        assert_eq!(
            xtream_url("http://h:8080/", StreamKind::Live, "bob", "p/a+s%s$ #?", "123", "ts"),
            "http://h:8080/live/bob/p%2Fa%2Bs%25s%24%20%23%3F/123.ts"
        );
        assert_eq!(
            xtream_url("http://h:8080", StreamKind::Movie, "a.b_c~d-e", "é", "7", ".mkv"),
            "http://h:8080/movie/a.b_c~d-e/%C3%A9/7.mkv"
        );
        assert_eq!(xtream_url("http://h/base", StreamKind::Series, "u", "p", "9", ""), "http://h/base/series/u/p/9");
        assert_eq!(
            xtream_url("http://h", StreamKind::Timeshift, "u", "p", "120/2026-01-02:20-00/55", "ts"),
            "http://h/timeshift/u/p/120/2026-01-02:20-00/55.ts"
        );
    }

    #[test]
    fn rewrites_every_kind() {
        for kind in StreamKind::ALL {
            let rest = if kind == StreamKind::Timeshift { "120/2026-01-02:20-00/55.ts" } else { "55.ts" };
            let url = format!("http://h:8080/{kind}/u1/p1/{rest}");
            assert_eq!(rw(&url, None).unwrap(), format!("http://h:8080/{kind}/u2/p2/{rest}"));
        }
        assert_eq!(rw("http://h/live/u1/p1/55", None).unwrap(), "http://h/live/u2/p2/55");
        assert_eq!(rw("http://h/live/u1/p1/55.m3u8", None).unwrap(), "http://h/live/u2/p2/55.m3u8");
    }

    #[test]
    fn rewrites_the_short_form() {
        assert_eq!(rw("http://h:8080/u1/p1/123", None).unwrap(), "http://h:8080/u2/p2/123");
        assert_eq!(rw("http://h:8080/u1/p1/123.ts", None).unwrap(), "http://h:8080/u2/p2/123.ts");
        assert_eq!(rw("http://h:8080/u1/p1/123.ts", Some("https://b:443")).unwrap(), "https://b:443/u2/p2/123.ts");
        // A user named like a kind still reads as the short form.
        assert_eq!(rewrite_xtream("http://h/live/p1/3", "live", "p1", None, "u2", "p2").unwrap(), "http://h/u2/p2/3");
        no_match(rw("http://h:8080/u1/p1/abc.ts", None));
        no_match(rw("http://h:8080/u1/p1/123/x", None));
        no_match(rw("http://h:8080/u1/p1/", None));
    }

    #[test]
    fn base_paths_and_target_servers() {
        let url = "http://h:8080/panel/x/live/u1/p1/55.ts";
        assert_eq!(rw(url, None).unwrap(), "http://h:8080/panel/x/live/u2/p2/55.ts");
        assert_eq!(
            rw(url, Some("https://backup.example:8443/")).unwrap(),
            "https://backup.example:8443/live/u2/p2/55.ts"
        );
        assert_eq!(rw(url, Some("http://c.example/xc")).unwrap(), "http://c.example/xc/live/u2/p2/55.ts");
        assert_eq!(rw(url, Some("http://c.example/player_api.php")).unwrap(), "http://c.example/live/u2/p2/55.ts");
        // A base path that itself says "live".
        assert_eq!(rw("http://h/live/live/u1/p1/5.ts", None).unwrap(), "http://h/live/live/u2/p2/5.ts");
        let bad = |b: &str| match rw(url, Some(b)) {
            Err(RewriteError::BadPattern { field: "server_url", message }) => message,
            other => panic!("{b}: {other:?}"),
        };
        assert!(bad("ftp://h").contains("http://"));
        assert!(bad("not a url").contains("not a valid URL"));
        assert!(bad("http://h/?x=1").contains("query"));
    }

    #[test]
    fn query_and_fragment_are_kept() {
        assert_eq!(
            rw("http://h/live/u1/p1/55.m3u8?token=abc&x=1#t=5", None).unwrap(),
            "http://h/live/u2/p2/55.m3u8?token=abc&x=1#t=5"
        );
        // Source credentials in the query are swapped too; other values stay.
        assert_eq!(
            rewrite_xtream(
                "http://h/live/u1/p%2B1/5.ts?username=u1&password=p%2B1&output=ts",
                "u1",
                "p+1",
                None,
                "u 2",
                "p&2"
            )
            .unwrap(),
            "http://h/live/u%202/p%262/5.ts?username=u+2&password=p%262&output=ts"
        );
        assert_eq!(
            rw("http://h/live/u1/p1/5.ts?username=other", None).unwrap(),
            "http://h/live/u2/p2/5.ts?username=other"
        );
    }

    #[test]
    fn special_passwords_in_source_and_target() {
        let pass = "p/a+s%s$";
        // Percent-encoded (as we and most panels write it), upper or lower case hex, partly encoded.
        for url in [
            "http://h/live/u1/p%2Fa%2Bs%25s%24/7.ts",
            "http://h/live/u1/p%2fa%2bs%25s%24/7.ts",
            "http://h/live/u1/p%2Fa+s%25s$/7.ts",
        ] {
            assert_eq!(
                rewrite_xtream(url, "u1", pass, None, "u/2", "q+%$").unwrap(),
                "http://h/live/u%2F2/q%2B%25%24/7.ts",
                "{url}"
            );
        }
        // Raw: the `/` splits the path, but the known password spans the two segments.
        assert_eq!(
            rewrite_xtream("http://h/live/u1/p/a+s%s$/7.ts", "u1", pass, None, "u2", "p2").unwrap(),
            "http://h/live/u2/p2/7.ts"
        );
        // Raw `?`, `#` and `%41` (which would decode to `A`) are matched literally.
        for pass in ["pa?ss", "pa#ss", "x%41"] {
            let url = format!("http://h/live/u1/{pass}/7.ts?k=v");
            assert_eq!(rewrite_xtream(&url, "u1", pass, None, "u2", "p2").unwrap(), "http://h/live/u2/p2/7.ts?k=v");
            let short = format!("http://h/u1/{pass}/7.ts");
            assert_eq!(rewrite_xtream(&short, "u1", pass, None, "u2", "p2").unwrap(), "http://h/u2/p2/7.ts");
        }
        // Raw `/` in the short form.
        assert_eq!(rewrite_xtream("http://h/u1/a/b/9", "u1", "a/b", None, "u2", "p2").unwrap(), "http://h/u2/p2/9");
        // A password containing `$` in the target.
        assert_eq!(rw("http://h/live/u1/p1/1.ts", None).unwrap(), "http://h/live/u2/p2/1.ts");
        assert_eq!(
            rewrite_xtream("http://h/live/u1/p1/1.ts", "u1", "p1", None, "u2", "$1${x}").unwrap(),
            "http://h/live/u2/%241%24%7Bx%7D/1.ts"
        );
    }

    #[test]
    fn non_matching_urls_are_errors() {
        // Wrong user, wrong password.
        let (url, reason) = no_match(rw("http://h/live/someone/p1/1.ts", None));
        assert_eq!(url, "http://h/live/***/***/1.ts");
        assert!(reason.contains("/live/ is not followed by the source account's username and password"), "{reason}");
        no_match(rw("http://h/live/u1/p2/1.ts", None));
        // Credentials but no stream.
        no_match(rw("http://h/live/u1/p1/", None));
        no_match(rw("http://h/live/u1/p1", None));
        // Another path shape: not an Xtream URL, even with the credentials in it.
        let (_, reason) = no_match(rw("http://h/stream/u1/p1/1.ts", None));
        assert!(reason.contains("expected /live/, /movie/, /series/ or /timeshift/"), "{reason}");
        // A tokenized HLS playlist (what /live/…/1.m3u8 redirects to) has no credentials to swap.
        no_match(rw("http://h:8080/hls/4f2c9a0b1e/1_0.m3u8", None));
        no_match(rw("http://h:8080/play/u1.m3u8", None));
        // Not an http URL.
        let (_, reason) = no_match(rw("rtmp://h/live/u1/p1/1", None));
        assert_eq!(reason, "expected an absolute http:// or https:// URL");
        no_match(rw("/live/u1/p1/1.ts", None));
        // Kind names are case-sensitive, like the panels.
        no_match(rw("http://h/LIVE/u1/p1/1.ts", None));
    }

    #[test]
    fn errors_never_show_passwords() {
        let secret = "s3/cr+t";
        for url in [
            "http://h/live/other/s3%2Fcr%2Bt/1.ts",
            "http://h/live/other/s3%2fcr%2bt/1.ts",
            "http://h/live/other/s3/cr+t/1.ts",
            "http://h/x?password=s3%2Fcr%2Bt&user=u",
            "http://h/x?pwd=whatever&user=u",
            "http://other:s3%2Fcr%2Bt@h/x",
        ] {
            let err = rewrite_xtream(url, "u1", secret, None, "u2", "tpass").unwrap_err();
            let text = err.to_string();
            for leak in ["s3/cr+t", "s3%2Fcr%2Bt", "s3%2fcr%2bt", "whatever", "cr%2B", "cr+t"] {
                assert!(!text.contains(leak), "{url}: {text}");
            }
            assert!(text.contains("***"), "{text}");
        }
        // The target password is masked too.
        let text = rewrite_xtream("http://h/x/tpass/1", "u1", "p1", None, "u2", "tpass").unwrap_err().to_string();
        assert!(!text.contains("tpass"), "{text}");
    }

    #[test]
    fn missing_credentials() {
        for (su, sp, tu, tp) in [("", "p", "u", "p"), ("u", "", "u", "p"), ("u", "p", "", "p"), ("u", "p", "u", "")] {
            assert_eq!(
                rewrite_xtream("http://h/live/u/p/1.ts", su, sp, None, tu, tp),
                Err(RewriteError::MissingCredentials)
            );
        }
    }

    #[test]
    fn regex_with_numbered_group() {
        let r = RegexRewrite::new(r"^(https?://[^/]+)/u1/p1/", "$1/u2/p2/").unwrap();
        assert_eq!(r.apply("http://h:8080/u1/p1/55.ts").unwrap(), "http://h:8080/u2/p2/55.ts");
        // Seed 003's example: no groups at all.
        let r = RegexRewrite::new("user1/pass1", "user2/pass2").unwrap();
        assert_eq!(
            r.apply("https://provider.com/live/user1/pass1/123.ts").unwrap(),
            "https://provider.com/live/user2/pass2/123.ts"
        );
        // Every match is replaced.
        let r = RegexRewrite::new("u1", "u2").unwrap();
        assert_eq!(r.apply("http://h/live/u1/p/1.ts?username=u1").unwrap(), "http://h/live/u2/p/1.ts?username=u2");
    }

    #[test]
    fn regex_with_named_group_and_braces() {
        let r = RegexRewrite::new(r"^(?P<host>https?://[^/]+)/get/(?P<id>\d+)$", "${host}/play/u2/p2/$id.ts").unwrap();
        assert_eq!(r.apply("http://h/get/42").unwrap(), "http://h/play/u2/p2/42.ts");
        // `${1}a` is group 1 then "a"; `$$` is a literal `$`.
        let r = RegexRewrite::new("/(live)/u1/p1/", "/${1}x/u2/pa$$ss/").unwrap();
        assert_eq!(r.apply("http://h/live/u1/p1/1.ts").unwrap(), "http://h/livex/u2/pa$ss/1.ts");
        // `$1a` would be the group *named* "1a": refused, with the way out.
        let err = RegexRewrite::new("/(live)/u1/p1/", "/$1x/u2/p2/").unwrap_err();
        match &err {
            RewriteError::BadPattern { field: "replace_pattern", message } => {
                assert!(message.contains("`${1}a` rather than `$1a`"), "{message}");
                assert!(message.contains("character 2"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        // A lone `$` at the end or before a non-name character is literal.
        let r = RegexRewrite::new("p1", "p$-2$").unwrap();
        assert_eq!(r.apply("http://h/u/p1/1").unwrap(), "http://h/u/p$-2$/1");
    }

    #[test]
    fn regex_errors() {
        let r = RegexRewrite::new("user1/pass1", "user2/pass2").unwrap().with_secrets(&["pass1"]);
        let (url, reason) = no_match(r.apply("http://h/live/user9/pass1/1.ts?password=pass1"));
        assert_eq!(url, "http://h/live/***/***/1.ts?password=***");
        assert_eq!(reason, "search_pattern does not match it");
        assert!(!format!("{r:?}").contains("pass"), "{r:?}");

        let r = RegexRewrite::new("^.*$", "not a url").unwrap();
        no_match(r.apply("http://h/1.ts"));

        match RegexRewrite::new("(user1/pass1", "x") {
            Err(RewriteError::BadPattern { field: "search_pattern", message }) => {
                assert_eq!(message, "does not compile: unclosed group");
            }
            other => panic!("{other:?}"),
        }
        for replace in ["$2", "${2}", "$name", "${other}", "${}"] {
            match RegexRewrite::new("(?P<name_>u1)/pass1", replace) {
                Err(RewriteError::BadPattern { field: "replace_pattern", message }) => {
                    assert!(message.contains("has groups 1 to 1, named name_"), "{message}");
                    assert!(!message.contains("pass1"), "{message}");
                }
                other => panic!("{replace}: {other:?}"),
            }
        }
        match RegexRewrite::new("u1", "u2/p$word") {
            Err(RewriteError::BadPattern { message, .. }) => {
                assert!(message.contains("no groups") && !message.contains("word"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(RegexRewrite::new(" ", "x"), Err(RewriteError::BadPattern { field: "search_pattern", .. })));
        assert!(RegexRewrite::new("(a)(b)", "$0$1${2}$$3").is_ok());
    }

    #[test]
    fn validate_patterns_names_fields() {
        let fields = |s, r| validate_patterns(s, r).into_iter().map(|e| e.field).collect::<Vec<_>>();
        assert!(validate_patterns(None, None).is_empty());
        assert!(validate_patterns(Some(""), Some("  ")).is_empty());
        assert!(validate_patterns(Some("u1/p1"), Some("u2/p2")).is_empty());
        assert_eq!(fields(Some("u1"), None), vec!["replace_pattern"]);
        assert_eq!(fields(None, Some("u2")), vec!["search_pattern"]);
        assert_eq!(fields(Some("("), Some("x")), vec!["search_pattern"]);
        assert_eq!(fields(Some("(a)"), Some("$2")), vec!["replace_pattern"]);
        assert_eq!(validate_patterns(Some("u1"), None)[0].message, "is required when search_pattern is set");
    }

    fn kind() -> impl Strategy<Value = StreamKind> {
        prop::sample::select(StreamKind::ALL.to_vec())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn rewrite_of_built_url_is_built_url(
            base in prop::sample::select(vec!["http://h:8080", "https://panel.example/base/path", "http://10.0.0.1"]),
            k in kind(),
            u1 in "\\PC{1,16}", p1 in "\\PC{1,16}", u2 in "\\PC{1,16}", p2 in "\\PC{1,16}",
            id in "[0-9]{1,9}",
            ext in prop::sample::select(vec!["ts", "m3u8", "mkv", ""]),
        ) {
            let source = xtream_url(base, k, &u1, &p1, &id, ext);
            prop_assert_eq!(
                rewrite_xtream(&source, &u1, &p1, None, &u2, &p2),
                Ok(xtream_url(base, k, &u2, &p2, &id, ext))
            );
        }

        #[test]
        fn no_match_never_leaks(
            p1 in "[ -~]{4,16}", other in "[a-z]{1,8}",
        ) {
            let url = xtream_url("http://h", StreamKind::Live, &other, &p1, "1", "ts");
            if let Err(e) = rewrite_xtream(&url, "nobody-matches", &p1, None, "u2", "p2") {
                let text = e.to_string();
                prop_assert!(!text.contains(&p1), "{}", text);
                prop_assert!(!text.contains(&encode_segment(&p1)), "{}", text);
            }
        }
    }
}
