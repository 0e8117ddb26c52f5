//! Scanning of `key="value"` attribute lists on `#EXTINF` and `#EXTM3U` lines.
//!
//! Real playlists quote values with `"` or `'`, leave them unquoted, put commas
//! inside quoted values and even put unescaped quotes inside quoted values.
//! The rules implemented here (and relied on by the writer) are:
//!
//! * a key is a run of bytes other than whitespace, `=`, `,`, `"` and `'`;
//!   whitespace is allowed before the `=`;
//! * a value starting with `"` or `'` is quoted; the quote that closes it is the
//!   first matching quote that is followed by the end of the line, by a comma,
//!   or by whitespace and then the end of the line, a comma or the start of the
//!   next attribute (`key=`). Any other quote is part of the value, so
//!   `tvg-name="The "Best" TV",Title` yields `The "Best" TV`;
//! * an unterminated quoted value ends at the next comma (the title follows it)
//!   or at the end of the line;
//! * an unquoted value runs to the next whitespace or comma (on `#EXTM3U` lines
//!   commas do not end it, so `url-tvg=a.xml,b.xml` stays one value);
//! * bare words without `=` are ignored;
//! * on `#EXTINF` lines the first comma outside a value starts the title.
//!
//! All delimiters are ASCII, so every slice taken here lies on a UTF-8 char
//! boundary and cannot panic.

/// Where the attribute list being scanned comes from; the two differ only in
/// how a comma outside quotes is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `#EXTINF` line: a top-level comma ends the attributes and starts the title.
    ExtInf,
    /// `#EXTM3U` line: there is no title; commas are just separators/value bytes.
    Header,
}

/// The pieces of one `#EXTINF` line.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ExtInf {
    pub duration: String,
    pub attrs: Vec<(String, String)>,
    pub title: String,
}

/// Whitespace that separates attributes (CR and LF never reach this code).
pub(crate) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | 0x0B | 0x0C)
}

/// Bytes allowed in an attribute key.
pub(crate) fn is_key_byte(b: u8) -> bool {
    !is_ws(b) && !matches!(b, b'=' | b',' | b'"' | b'\'')
}

fn skip_ws(bytes: &[u8], mut pos: usize) -> usize {
    while pos < bytes.len() && is_ws(bytes[pos]) {
        pos += 1;
    }
    pos
}

/// Parses the text that follows `#EXTINF:`.
///
/// Returns an error message when the line carries nothing usable at all (no
/// duration, no attribute and no title comma).
pub(crate) fn parse_extinf(rest: &str) -> Result<ExtInf, &'static str> {
    let bytes = rest.as_bytes();
    let start = skip_ws(bytes, 0);
    let mut end = start;
    while end < bytes.len() && !is_ws(bytes[end]) && bytes[end] != b',' {
        end += 1;
    }
    let token = &rest[start..end];
    let (duration, attrs_from) = if token.contains('=') {
        // No duration: the line starts directly with an attribute.
        (String::new(), start)
    } else {
        (token.to_string(), end)
    };
    let mut attrs = Vec::new();
    let comma = scan_attrs(rest, attrs_from, Mode::ExtInf, &mut attrs);
    let title = match comma {
        Some(pos) => rest[pos + 1..].trim().to_string(),
        None => String::new(),
    };
    if duration.is_empty() && attrs.is_empty() && comma.is_none() {
        return Err(
            "#EXTINF has no duration, no attributes and no ',title'; expected '#EXTINF:-1 key=\"value\",Title'",
        );
    }
    Ok(ExtInf { duration, attrs, title })
}

/// Parses the attributes that follow `#EXTM3U`, appending them to `attrs`.
pub(crate) fn parse_header_attrs(rest: &str, attrs: &mut Vec<(String, String)>) {
    // In header mode scan_attrs never stops at a comma, so one call suffices.
    let _ = scan_attrs(rest, 0, Mode::Header, attrs);
}

/// Scans attributes from `s[pos..]`, appending them to `attrs`.
///
/// In [`Mode::ExtInf`] returns the byte index of the comma that starts the
/// title, if any. In [`Mode::Header`] always returns `None`.
pub(crate) fn scan_attrs(s: &str, mut pos: usize, mode: Mode, attrs: &mut Vec<(String, String)>) -> Option<usize> {
    let bytes = s.as_bytes();
    loop {
        pos = skip_ws(bytes, pos);
        let &b = bytes.get(pos)?;
        if b == b',' {
            match mode {
                Mode::ExtInf => return Some(pos),
                Mode::Header => {
                    pos += 1;
                    continue;
                }
            }
        }
        let key_start = pos;
        while pos < bytes.len() && is_key_byte(bytes[pos]) {
            pos += 1;
        }
        if pos == key_start {
            // A stray '=' or quote (all ASCII): step over it.
            pos += 1;
            continue;
        }
        let key = &s[key_start..pos];
        let eq = skip_ws(bytes, pos);
        if bytes.get(eq) != Some(&b'=') {
            // Bare word without a value: ignored.
            continue;
        }
        let mut value_start = eq + 1;
        // Allow `key = "value"`, but not `key= next="x"` (an empty unquoted value).
        let after_ws = skip_ws(bytes, value_start);
        if matches!(bytes.get(after_ws), Some(b'"' | b'\'')) {
            value_start = after_ws;
        }
        let (value, next) = read_value(s, value_start, mode);
        attrs.push((key.to_string(), value.to_string()));
        pos = next;
    }
}

/// Reads one value starting at `s[pos..]` (just after the `=`).
///
/// Returns the value (without quotes) and the index just past it.
pub(crate) fn read_value(s: &str, pos: usize, mode: Mode) -> (&str, usize) {
    let bytes = s.as_bytes();
    match bytes.get(pos) {
        Some(&q @ (b'"' | b'\'')) => {
            let start = pos + 1;
            let mut i = start;
            while let Some(off) = memchr::memchr(q, &bytes[i..]) {
                let qi = i + off;
                if closes(bytes, qi + 1) {
                    return (&s[start..qi], qi + 1);
                }
                i = qi + 1;
            }
            // Unterminated: end at the next comma (title follows) or end of line.
            let stop = match mode {
                Mode::ExtInf => memchr::memchr(b',', &bytes[start..]).map(|off| start + off),
                Mode::Header => None,
            };
            match stop {
                Some(c) => (&s[start..c], c),
                None => (&s[start..], s.len()),
            }
        }
        _ => {
            let mut end = pos;
            while end < bytes.len() && !is_ws(bytes[end]) && !(mode == Mode::ExtInf && bytes[end] == b',') {
                end += 1;
            }
            (&s[pos..end], end)
        }
    }
}

/// Whether a quote whose next byte is at `after` closes the value.
fn closes(bytes: &[u8], after: usize) -> bool {
    let Some(&b) = bytes.get(after) else {
        return true;
    };
    if b == b',' {
        return true;
    }
    if !is_ws(b) {
        return false;
    }
    let mut p = skip_ws(bytes, after);
    match bytes.get(p) {
        None | Some(b',') => return true,
        _ => {}
    }
    let key_start = p;
    while p < bytes.len() && is_key_byte(bytes[p]) {
        p += 1;
    }
    if p == key_start {
        return false;
    }
    p = skip_ws(bytes, p);
    bytes.get(p) == Some(&b'=')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn simple() {
        let e = parse_extinf(r#"-1 tvg-id="a.b" group-title="News",Title here"#).unwrap();
        assert_eq!(e.duration, "-1");
        assert_eq!(e.attrs, attrs(&[("tvg-id", "a.b"), ("group-title", "News")]));
        assert_eq!(e.title, "Title here");
    }

    #[test]
    fn no_attrs_and_float_duration() {
        let e = parse_extinf("40,MNB HD").unwrap();
        assert_eq!((e.duration.as_str(), e.title.as_str()), ("40", "MNB HD"));
        assert!(e.attrs.is_empty());
        let e = parse_extinf(" -1.000 ,  Spaced  ").unwrap();
        assert_eq!((e.duration.as_str(), e.title.as_str()), ("-1.000", "Spaced"));
    }

    #[test]
    fn comma_inside_quotes() {
        let e = parse_extinf(r#"-1 group-title="Movies, Action" tvg-name="A,B",Real, title"#).unwrap();
        assert_eq!(e.attrs, attrs(&[("group-title", "Movies, Action"), ("tvg-name", "A,B")]));
        assert_eq!(e.title, "Real, title");
    }

    #[test]
    fn single_quotes_and_unquoted() {
        let e = parse_extinf(r#"-1 tvg-name='He said "hi"' tvg-chno=5 x:y_z=ok,T"#).unwrap();
        assert_eq!(e.attrs, attrs(&[("tvg-name", r#"He said "hi""#), ("tvg-chno", "5"), ("x:y_z", "ok")]));
        assert_eq!(e.title, "T");
    }

    #[test]
    fn inner_quotes_recovered() {
        let e = parse_extinf(r#"-1 tvg-name="The "Best" TV" tvg-id="x",Name"#).unwrap();
        assert_eq!(e.attrs, attrs(&[("tvg-name", r#"The "Best" TV"#), ("tvg-id", "x")]));
        assert_eq!(e.title, "Name");
        let e = parse_extinf(r#"-1 tvg-name="The "Best" TV",Name"#).unwrap();
        assert_eq!(e.attrs, attrs(&[("tvg-name", r#"The "Best" TV"#)]));
        assert_eq!(e.title, "Name");
    }

    #[test]
    fn unterminated_quote_ends_at_comma() {
        let e = parse_extinf(r#"-1 tvg-name="Broken,Title"#).unwrap();
        assert_eq!(e.attrs, attrs(&[("tvg-name", "Broken")]));
        assert_eq!(e.title, "Title");
        let e = parse_extinf(r#"-1 tvg-name="Broken"#).unwrap();
        assert_eq!(e.attrs, attrs(&[("tvg-name", "Broken")]));
        assert_eq!(e.title, "");
    }

    #[test]
    fn empty_values_and_spaces_around_equals() {
        let e = parse_extinf(r#"-1 tvg-id="" tvg-logo= group-title = "G",T"#).unwrap();
        assert_eq!(e.attrs, attrs(&[("tvg-id", ""), ("tvg-logo", ""), ("group-title", "G")]));
    }

    #[test]
    fn missing_duration() {
        let e = parse_extinf(r#"tvg-id="x",T"#).unwrap();
        assert_eq!(e.duration, "");
        assert_eq!(e.attrs, attrs(&[("tvg-id", "x")]));
        assert_eq!(e.title, "T");
    }

    #[test]
    fn bare_words_ignored_and_garbage_rejected() {
        let e = parse_extinf(r#"-1 catchup tvg-id="x",T"#).unwrap();
        assert_eq!(e.attrs, attrs(&[("tvg-id", "x")]));
        assert!(parse_extinf("").is_err());
        assert!(parse_extinf("   ").is_err());
        assert!(parse_extinf(",").is_ok());
    }

    #[test]
    fn title_keeps_quotes_and_unicode() {
        let e = parse_extinf(r#"-1 tvg-id="",Tëvë1 "quoted", more"#).unwrap();
        assert_eq!(e.title, r#"Tëvë1 "quoted", more"#);
    }

    #[test]
    fn stray_quotes_do_not_loop() {
        let e = parse_extinf(r#"-1 "" '' = == "x,T"#).unwrap();
        assert_eq!(e.duration, "-1");
        let _ = parse_extinf(r#""""""""#);
        let _ = parse_extinf("=====");
    }

    #[test]
    fn header_attrs_keep_commas() {
        let mut a = Vec::new();
        parse_header_attrs(r#" url-tvg=a.xml,b.xml x-tvg-url="c.xml, d.xml" tvg-shift=2"#, &mut a);
        assert_eq!(a, attrs(&[("url-tvg", "a.xml,b.xml"), ("x-tvg-url", "c.xml, d.xml"), ("tvg-shift", "2")]));
    }
}
