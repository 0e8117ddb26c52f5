//! Names, entity references and escaping, done leniently: guides use HTML
//! entities (`&nbsp;`), bare ampersands (`AT&T`) and stray `<`; these helpers
//! read such text as what was meant and write it back as valid XML.

use std::borrow::Cow;

use quick_xml::events::Event;

/// Longest entity name looked for after `&` (longer means a bare `&`).
const MAX_REF: usize = 32;

/// An XML name, as far as a guide's tags and attributes need one: a letter,
/// `_`, `:` or any non-ASCII character first, then also digits, `-` and `.`.
pub(crate) fn is_valid_name(name: &[u8]) -> bool {
    let Some((&first, rest)) = name.split_first() else { return false };
    let start = |b: u8| b.is_ascii_alphabetic() || b == b'_' || b == b':' || b >= 0x80;
    start(first) && rest.iter().all(|&b| start(b) || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// What the reference `&name;` stands for, if it is one XML defines (the five
/// predefined entities and character references to characters XML allows).
pub(crate) fn resolve_ref(name: &[u8]) -> Option<char> {
    match name {
        b"amp" => Some('&'),
        b"lt" => Some('<'),
        b"gt" => Some('>'),
        b"quot" => Some('"'),
        b"apos" => Some('\''),
        [b'#', b'x' | b'X', hex @ ..] => char_ref(hex, 16),
        [b'#', dec @ ..] => char_ref(dec, 10),
        _ => None,
    }
}

fn char_ref(digits: &[u8], radix: u32) -> Option<char> {
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let s = std::str::from_utf8(digits).ok()?;
    let c = char::from_u32(u32::from_str_radix(s, radix).ok()?)?;
    let allowed = matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && !matches!(c, '\u{FFFE}' | '\u{FFFF}'));
    allowed.then_some(c)
}

/// Resolves the references XML defines in `raw`; anything else that starts
/// with `&` (an HTML entity, a bare ampersand) stays as written.
pub(crate) fn unescape_lenient(raw: &str) -> Cow<'_, str> {
    if !raw.contains('&') {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let resolved = after
            .char_indices()
            .take(MAX_REF + 1)
            .find(|&(_, c)| c == ';')
            .and_then(|(end, _)| resolve_ref(&after.as_bytes()[..end]).map(|c| (c, end)));
        match resolved {
            Some((c, end)) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// `true` if `raw` (an attribute value as written) can be copied into the
/// output unchanged: no `<`, and every `&` starts a reference XML defines.
pub(crate) fn is_clean_value(raw: &[u8]) -> bool {
    if memchr::memchr(b'<', raw).is_some() {
        return false;
    }
    let mut from = 0;
    while let Some(at) = memchr::memchr(b'&', &raw[from..]) {
        let start = from + at + 1;
        let window = &raw[start..raw.len().min(start + MAX_REF + 1)];
        match memchr::memchr(b';', window) {
            Some(end) if resolve_ref(&window[..end]).is_some() => from = start + end + 1,
            _ => return false,
        }
    }
    true
}

/// Escapes `text` for an attribute value in double quotes.
pub(crate) fn escape_attr(text: &str, out: &mut Vec<u8>) {
    for b in text.bytes() {
        match b {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            _ => out.push(b),
        }
    }
}

/// Copies character data as read by the parser (references already split
/// off, so any `&` left is a bare one) into the output, escaped.
pub(crate) fn escape_text(raw: &[u8], out: &mut Vec<u8>) {
    let mut from = 0;
    for at in memchr::memchr2_iter(b'&', b'>', raw) {
        out.extend_from_slice(&raw[from..at]);
        out.extend_from_slice(if raw[at] == b'&' { b"&amp;" } else { b"&gt;" });
        from = at + 1;
    }
    out.extend_from_slice(&raw[from..]);
}

/// The text of a run of events (an element's content): character data,
/// resolved references and CDATA, line ends normalized, trimmed.
pub(crate) fn text_of(events: &[Event<'static>]) -> String {
    let mut out = String::new();
    for ev in events {
        match ev {
            Event::Text(t) => out.push_str(&String::from_utf8_lossy(t)),
            Event::CData(t) => out.push_str(&String::from_utf8_lossy(t)),
            Event::GeneralRef(r) => match resolve_ref(r) {
                Some(c) => out.push(c),
                None => {
                    out.push('&');
                    out.push_str(&String::from_utf8_lossy(r));
                    out.push(';');
                }
            },
            _ => {}
        }
    }
    let out = if out.contains('\r') { out.replace("\r\n", "\n").replace('\r', "\n") } else { out };
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["tv", "display-name", "sub-title", "x:y", "_a.b1", "név"] {
            assert!(is_valid_name(ok.as_bytes()), "{ok}");
        }
        for bad in ["", "1a", "-a", " a", "a b", "a\"", "a=b", "a/b"] {
            assert!(!is_valid_name(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn references() {
        assert_eq!(resolve_ref(b"amp"), Some('&'));
        assert_eq!(resolve_ref(b"#233"), Some('é'));
        assert_eq!(resolve_ref(b"#x4E2D"), Some('中'));
        assert_eq!(resolve_ref(b"#1"), None, "a control character XML does not allow");
        assert_eq!(resolve_ref(b"#x110000"), None);
        assert_eq!(resolve_ref(b"nbsp"), None);
        assert_eq!(resolve_ref(b"#"), None);
    }

    #[test]
    fn lenient_unescape() {
        assert_eq!(unescape_lenient("a &amp; b"), "a & b");
        assert_eq!(unescape_lenient("AT&T &nbsp; &#233;&lt;"), "AT&T &nbsp; é<");
        assert_eq!(unescape_lenient("tail &"), "tail &");
        assert_eq!(unescape_lenient("&amp"), "&amp");
        assert_eq!(unescape_lenient("é&é;"), "é&é;");
    }

    #[test]
    fn clean_values() {
        assert!(is_clean_value(b"WebGrab+Plus/w MDB &amp; REX"));
        assert!(is_clean_value(b"20221129000000 -0300"));
        assert!(!is_clean_value(b"AT&T"));
        assert!(!is_clean_value(b"a &nbsp; b"));
        assert!(!is_clean_value(b"a<b"));
        assert!(!is_clean_value(b"&"));
    }

    #[test]
    fn escaping() {
        let mut out = Vec::new();
        escape_text(b"AT&T > ]]", &mut out);
        assert_eq!(out, b"AT&amp;T &gt; ]]");
        out.clear();
        escape_attr("a\"b<&>", &mut out);
        assert_eq!(out, b"a&quot;b&lt;&amp;&gt;");
    }
}
