//! Decoding and classification of single playlist lines.
//!
//! Lines arrive as raw bytes because real playlists are not always UTF-8.
//! Each line is decoded on its own (UTF-8 when valid, Windows-1252 otherwise)
//! so that one badly encoded title does not garble the rest of the file, and is
//! then classified as a directive, a URL, or junk.
//!
//! # What counts as a URL line
//!
//! A non-empty line not starting with `#` is accepted as a URL when it
//!
//! * starts with a scheme followed by `://` (`http://`, `rtmp://`, `udp://@…`, …), or
//! * is an absolute or explicitly relative path (`/…`, `./…`, `../…`, `~/…`,
//!   `\\server\…`, `C:\…`, `C:/…`), or
//! * is a relative file name whose last segment has a 1–5 character
//!   alphanumeric extension (`stream.ts`, `Movies/My Film.mkv`).
//!
//! Lines starting with `<`, `{` or `[` (HTML, JSON) and relative names
//! containing `<`, `>` or `"` are junk, as is anything else (e.g. error text).

use std::borrow::Cow;

/// Maximum number of characters of a line kept in [`super::Skipped::text`].
pub(crate) const SNIPPET_CHARS: usize = 120;

/// Decodes one line: UTF-8 when valid, otherwise Windows-1252 (never fails).
pub(crate) fn decode(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes).0,
    }
}

/// First [`SNIPPET_CHARS`] characters of `s` (char-boundary safe).
pub(crate) fn snippet(s: &str) -> String {
    match s.char_indices().nth(SNIPPET_CHARS) {
        Some((idx, _)) => format!("{}…", &s[..idx]),
        None => s.to_string(),
    }
}

/// What one (trimmed, non-empty) line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind<'a> {
    /// `#EXTM3U` with the text after it.
    Header(&'a str),
    /// `#EXTINF` with the text after `#EXTINF:`.
    ExtInf(&'a str),
    /// `#EXTVLCOPT:` with the text after the colon.
    VlcOpt(&'a str),
    /// `#EXTGRP:` with the text after the colon.
    ExtGrp(&'a str),
    /// `#KODIPROP:` with the text after the colon.
    KodiProp(&'a str),
    /// Any other line starting with `#`.
    OtherDirective,
    /// A stream URL or path.
    Url,
    /// Anything else.
    Junk,
}

/// ASCII case-insensitive prefix strip that never panics.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

/// Classifies a trimmed, non-empty line.
pub(crate) fn classify(line: &str) -> Kind<'_> {
    if line.starts_with('#') {
        if let Some(rest) = strip_prefix_ci(line, "#EXTM3U") {
            if !rest.starts_with(|c: char| c.is_ascii_alphanumeric()) {
                return Kind::Header(rest);
            }
        }
        if let Some(rest) = strip_prefix_ci(line, "#EXTINF") {
            if let Some(after) = rest.strip_prefix(':') {
                return Kind::ExtInf(after);
            }
            if rest.is_empty() || rest.starts_with([' ', '\t']) {
                return Kind::ExtInf(rest);
            }
        }
        if let Some(rest) = strip_prefix_ci(line, "#EXTVLCOPT:") {
            return Kind::VlcOpt(rest);
        }
        if let Some(rest) = strip_prefix_ci(line, "#EXTGRP:") {
            return Kind::ExtGrp(rest);
        }
        if let Some(rest) = strip_prefix_ci(line, "#KODIPROP:") {
            return Kind::KodiProp(rest);
        }
        return Kind::OtherDirective;
    }
    if is_url_like(line) {
        Kind::Url
    } else {
        Kind::Junk
    }
}

/// See the module documentation for the rules.
pub(crate) fn is_url_like(line: &str) -> bool {
    let bytes = line.as_bytes();
    let Some(&first) = bytes.first() else {
        return false;
    };
    if matches!(first, b'<' | b'{' | b'[') {
        return false;
    }
    if has_scheme(bytes) {
        return true;
    }
    if line.contains(['<', '>', '"']) || line.chars().any(char::is_control) {
        return false;
    }
    if matches!(first, b'/' | b'\\') || line.starts_with("./") || line.starts_with("../") || line.starts_with("~/") {
        return true;
    }
    // Windows drive path: `C:\` or `C:/`.
    if bytes.len() >= 3 && first.is_ascii_alphabetic() && bytes[1] == b':' && matches!(bytes[2], b'\\' | b'/') {
        return true;
    }
    // Relative file name with an extension.
    let name = line.rsplit(['/', '\\']).next().unwrap_or(line);
    match name.rsplit_once('.') {
        Some((stem, ext)) => {
            !stem.trim().is_empty() && (1..=5).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_alphanumeric())
        }
        None => false,
    }
}

/// `[A-Za-z][A-Za-z0-9+.-]*://` at the start of the line.
fn has_scheme(bytes: &[u8]) -> bool {
    let Some(&first) = bytes.first() else {
        return false;
    };
    if !first.is_ascii_alphabetic() {
        return false;
    }
    let mut i = 1;
    while i < bytes.len() && i <= 32 {
        let b = bytes[i];
        if b == b':' {
            return bytes.get(i + 1..i + 3) == Some(b"//");
        }
        if !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-')) {
            return false;
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        for ok in [
            "http://a/b.m3u8",
            "HTTPS://A",
            "rtmp://x/y live=1",
            "udp://@239.0.0.1:1234",
            "/var/media/a.ts",
            "./a",
            "../x/y",
            "C:\\Videos\\a.mkv",
            "stream.ts",
            "Movies/My Film (2020).mkv",
            "plugin://plugin.video.x/?a=b",
        ] {
            assert!(is_url_like(ok), "{ok}");
        }
        for bad in [
            "<div style='x'><iframe src='https://a'></iframe></div>",
            "{\"error\":1}",
            "Your subscription has expired.",
            "hello world",
            "Error: see http://x",
            "a.\"b",
        ] {
            assert!(!is_url_like(bad), "{bad}");
        }
    }

    #[test]
    fn classify_directives() {
        assert_eq!(classify("#EXTM3U x=1"), Kind::Header(" x=1"));
        assert_eq!(classify("#extm3u"), Kind::Header(""));
        assert_eq!(classify("#EXTINF:-1,a"), Kind::ExtInf("-1,a"));
        assert_eq!(classify("#EXTINF -1,a"), Kind::ExtInf(" -1,a"));
        assert_eq!(classify("#EXTINFO:x"), Kind::OtherDirective);
        assert_eq!(classify("#EXTVLCOPT:a=b"), Kind::VlcOpt("a=b"));
        assert_eq!(classify("#EXTGRP:News"), Kind::ExtGrp("News"));
        assert_eq!(classify("#KODIPROP:a=b"), Kind::KodiProp("a=b"));
        assert_eq!(classify("# comment"), Kind::OtherDirective);
        assert_eq!(classify("#Ä"), Kind::OtherDirective);
    }

    #[test]
    fn decode_falls_back_to_cp1252() {
        assert_eq!(decode(b"caf\xe9"), "café");
        assert_eq!(decode("café".as_bytes()), "café");
    }

    #[test]
    fn snippet_is_char_safe() {
        let s = "é".repeat(300);
        let sn = snippet(&s);
        assert_eq!(sn.chars().count(), SNIPPET_CHARS + 1);
    }
}
