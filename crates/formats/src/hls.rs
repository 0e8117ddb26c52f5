//! HLS (HTTP Live Streaming, RFC 8216) playlists, as far as the relay needs
//! them to follow a live HLS upstream.
//!
//! The relay fetches a master playlist, picks one variant with
//! [`choose_variant`], polls that variant's media playlist and fetches new
//! segments in order. This module covers exactly that: [`parse`] reads a
//! master or media playlist into a small typed model, [`resolve`] turns the
//! (usually relative) URIs found in it into absolute URLs, and
//! [`choose_variant`] makes the variant choice.
//!
//! Parsing is lenient, like everything in this crate: lines end at LF, CRLF or
//! a lone CR; a UTF-8 BOM, blank lines, `#` comments and unknown tags are
//! ignored; `#EXTM3U` may follow leading comment lines; tag names are matched
//! ASCII case-insensitively; attribute values may be quoted and contain
//! commas. A URI line that no `#EXT-X-STREAM-INF` (master) or `#EXTINF`
//! (media) is waiting for is ignored, which is how the stray URI lines some
//! servers put after `#EXT-X-MEDIA` or `#EXT-X-I-FRAME-STREAM-INF` are
//! handled. Nothing here panics on any input.

/// A parsed playlist: either kind, because the relay fetches an upstream URL
/// without knowing in advance whether it names a master or a media playlist.
#[derive(Debug, Clone, PartialEq)]
pub enum Playlist {
    /// A multivariant playlist: a list of alternative streams.
    Master(MasterPlaylist),
    /// A playlist of media segments.
    Media(MediaPlaylist),
}

/// A master (multivariant) playlist, reduced to its variant streams, which is
/// all the relay needs to pick the one stream it follows.
///
/// `#EXT-X-I-FRAME-STREAM-INF` (trick-play) streams and `#EXT-X-MEDIA`
/// renditions are not variants and are not listed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MasterPlaylist {
    /// The `#EXT-X-STREAM-INF` variants, in playlist order.
    pub variants: Vec<Variant>,
}

/// One `#EXT-X-STREAM-INF` variant: where its media playlist is and the
/// attributes [`choose_variant`] decides by.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Variant {
    /// The media playlist URI as written (resolve it with [`resolve`]).
    pub uri: String,
    /// `BANDWIDTH`, in bits per second.
    pub bandwidth: Option<u64>,
    /// `RESOLUTION` as (width, height).
    pub resolution: Option<(u32, u32)>,
    /// `CODECS`, unquoted, as written (e.g. `avc1.4d401f,mp4a.40.2`).
    pub codecs: Option<String>,
}

/// A media playlist: the segments the relay fetches, in order, and the facts
/// it needs to poll it (target duration, media sequence, end) or refuse it
/// (encrypted, fragmented MP4).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaPlaylist {
    /// `#EXT-X-TARGETDURATION`, in seconds.
    pub target_duration: Option<f64>,
    /// `#EXT-X-MEDIA-SEQUENCE`: the sequence number of the first segment (0 when absent).
    pub media_sequence: u64,
    /// The segments in order; segment `i` has sequence `media_sequence + i`.
    pub segments: Vec<Segment>,
    /// `#EXT-X-ENDLIST` seen: no segments will be added (VOD, or a finished event).
    pub ended: bool,
    /// Some `#EXT-X-KEY` has a `METHOD` other than `NONE` (or none at all).
    pub encrypted: bool,
    /// `#EXT-X-MAP` present: segments are fragmented MP4, not MPEG-TS.
    pub fmp4: bool,
}

/// One media segment, identified by its sequence number so that the relay can
/// tell which segments of a re-polled live playlist it has already fetched.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Segment {
    /// The segment URI as written (resolve it with [`resolve`]).
    pub uri: String,
    /// The `#EXTINF` duration in seconds (0 when missing, negative or unreadable).
    pub duration: f64,
    /// Media sequence number: the playlist's `media_sequence` plus the index.
    pub sequence: u64,
    /// An `#EXT-X-DISCONTINUITY` precedes this segment (timestamps/encoding may jump).
    pub discontinuity: bool,
}

/// Why a body is not a playlist at all, so that the relay can report a
/// misbehaving upstream (an HTML error page, an empty body) instead of
/// polling it forever.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HlsError {
    /// No `#EXTM3U` among the first lines (only blank lines and `#` comments
    /// may precede it). Carries a short, sanitized description of the start
    /// of the body.
    #[error("not an HLS playlist: {0}")]
    NotHls(String),
}

/// How many lines may precede `#EXTM3U` (blank lines and `#` comments only).
const MAX_LINES_BEFORE_HEADER: usize = 16;
/// Longest body excerpt put into [`HlsError::NotHls`], in characters.
const SNIPPET_CHARS: usize = 40;

/// Parses a master or media playlist.
///
/// A playlist with at least one `#EXT-X-STREAM-INF` is a master playlist;
/// anything else that starts with `#EXTM3U` is a media playlist (possibly with
/// no segments). An IPTV-style M3U therefore parses as a media playlist whose
/// `#EXTINF:-1` entries are segments of duration 0.
pub fn parse(text: &str) -> Result<Playlist, HlsError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    check_header(text)?;
    let is_master = lines(text).any(|l| tag(l).is_some_and(|(name, _)| name.eq_ignore_ascii_case("EXT-X-STREAM-INF")));
    Ok(if is_master { Playlist::Master(parse_master(text)) } else { Playlist::Media(parse_media(text)) })
}

/// Non-blank, trimmed lines; LF, CRLF and lone CR all end a line.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.split(['\r', '\n']).map(str::trim).filter(|l| !l.is_empty())
}

/// Splits a tag line `#NAME[:value]` into its name and value (empty when
/// there is no `:`). `None` for URI lines.
fn tag(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?;
    Some(match rest.split_once(':') {
        Some((name, value)) => (name.trim(), value.trim()),
        None => (rest.trim(), ""),
    })
}

fn check_header(text: &str) -> Result<(), HlsError> {
    for line in lines(text).take(MAX_LINES_BEFORE_HEADER + 1) {
        if line.len() >= 7 && line.is_char_boundary(7) && line[..7].eq_ignore_ascii_case("#EXTM3U") {
            return Ok(());
        }
        if !line.starts_with('#') {
            return Err(HlsError::NotHls(describe(line)));
        }
    }
    Err(HlsError::NotHls(match lines(text).next() {
        None => String::from("empty body"),
        Some(first) => describe(first),
    }))
}

/// A short, printable excerpt of `line` for an error message.
fn describe(line: &str) -> String {
    let mut s: String =
        line.chars().take(SNIPPET_CHARS).map(|c| if c.is_control() || c == '"' { ' ' } else { c }).collect();
    if line.chars().nth(SNIPPET_CHARS).is_some() {
        s.push('…');
    }
    format!("starts with \"{s}\"")
}

fn parse_master(text: &str) -> MasterPlaylist {
    let mut variants = Vec::new();
    // The attributes of the last #EXT-X-STREAM-INF, waiting for its URI line.
    let mut pending: Option<Variant> = None;
    for line in lines(text) {
        match tag(line) {
            Some((name, value)) => {
                if name.eq_ignore_ascii_case("EXT-X-STREAM-INF") {
                    pending = Some(stream_inf(value));
                }
            }
            None => {
                if let Some(mut v) = pending.take() {
                    v.uri = line.to_string();
                    variants.push(v);
                }
            }
        }
    }
    MasterPlaylist { variants }
}

fn stream_inf(attrs: &str) -> Variant {
    let mut v = Variant::default();
    for (key, value) in Attrs::new(attrs) {
        if key.eq_ignore_ascii_case("BANDWIDTH") {
            v.bandwidth = parse_u64(value);
        } else if key.eq_ignore_ascii_case("RESOLUTION") {
            v.resolution =
                value.split_once(['x', 'X']).and_then(|(w, h)| Some((w.trim().parse().ok()?, h.trim().parse().ok()?)));
        } else if key.eq_ignore_ascii_case("CODECS") {
            v.codecs = Some(value.trim().to_string()).filter(|c| !c.is_empty());
        }
    }
    v
}

fn parse_media(text: &str) -> MediaPlaylist {
    let mut m = MediaPlaylist::default();
    // The duration of the last #EXTINF, waiting for its URI line.
    let mut pending: Option<f64> = None;
    let mut discontinuity = false;
    for line in lines(text) {
        let Some((name, value)) = tag(line) else {
            if let Some(duration) = pending.take() {
                m.segments.push(Segment { uri: line.to_string(), duration, sequence: 0, discontinuity });
                discontinuity = false;
            }
            continue;
        };
        let is = |n: &str| name.eq_ignore_ascii_case(n);
        if is("EXTINF") {
            pending = Some(extinf_duration(value));
        } else if is("EXT-X-TARGETDURATION") {
            m.target_duration = parse_f64(value);
        } else if is("EXT-X-MEDIA-SEQUENCE") {
            m.media_sequence = parse_u64(value).unwrap_or(0);
        } else if is("EXT-X-DISCONTINUITY") {
            discontinuity = true;
        } else if is("EXT-X-ENDLIST") {
            m.ended = true;
        } else if is("EXT-X-MAP") {
            m.fmp4 = true;
        } else if is("EXT-X-KEY") {
            let method = Attrs::new(value).find(|(k, _)| k.eq_ignore_ascii_case("METHOD")).map(|(_, v)| v.trim());
            if !method.is_some_and(|v| v.eq_ignore_ascii_case("NONE")) {
                m.encrypted = true;
            }
        }
    }
    let first = m.media_sequence;
    for (i, s) in m.segments.iter_mut().enumerate() {
        s.sequence = first.saturating_add(i as u64);
    }
    m
}

/// The duration of `#EXTINF:<duration>,<title>`; tolerates IPTV-style
/// attributes after the number and a missing comma.
fn extinf_duration(value: &str) -> f64 {
    let number = value.split([',', ' ', '\t']).next().unwrap_or("");
    parse_f64(number).unwrap_or(0.0)
}

/// A finite, non-negative decimal number.
fn parse_f64(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)
}

/// An unsigned integer; a decimal like `1500000.0` is truncated.
fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    s.parse::<u64>().ok().or_else(|| parse_f64(s).filter(|v| *v < u64::MAX as f64).map(|v| v as u64))
}

/// Iterator over the `KEY=value` pairs of an attribute list; values are
/// unquoted, and quoted values may contain commas. Malformed pieces (no `=`)
/// are skipped.
struct Attrs<'a> {
    rest: &'a str,
}

impl<'a> Attrs<'a> {
    fn new(list: &'a str) -> Self {
        Attrs { rest: list }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let rest = self.rest.trim_start_matches([',', ' ', '\t']);
            if rest.is_empty() {
                self.rest = rest;
                return None;
            }
            // The key runs to '=', unless a ',' comes first (a malformed piece).
            let Some(eq) = rest.find(['=', ',']).filter(|&i| rest.as_bytes()[i] == b'=') else {
                self.rest = rest.find(',').map_or("", |i| &rest[i + 1..]);
                continue;
            };
            let key = rest[..eq].trim();
            let after = rest[eq + 1..].trim_start();
            let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
                match quoted.find('"') {
                    Some(end) => (&quoted[..end], &quoted[end + 1..]),
                    None => (quoted, ""),
                }
            } else {
                match after.find(',') {
                    Some(end) => (after[..end].trim_end(), &after[end..]),
                    None => (after.trim_end(), ""),
                }
            };
            // Skip anything between a closing quote and the next comma.
            self.rest = tail.find(',').map_or("", |i| &tail[i..]);
            if key.is_empty() {
                continue;
            }
            return Some((key, value));
        }
    }
}

/// Resolves a URI found in a playlist against the playlist's own URL.
///
/// Absolute URIs (with a scheme) come back unchanged; `//host/x` takes the
/// base's scheme; `/x` the base's scheme and authority (`user@host:port`);
/// `?q` replaces the base's query; anything else is relative to the base's
/// directory (its path up to the last `/`, ignoring the base's query). `.`
/// and `..` segments of the resulting path are removed (never above the
/// root); the URI's own query and fragment are kept as written. A base without
/// a scheme (a bare path) is handled the same way, with no authority.
pub fn resolve(base_url: &str, uri: &str) -> String {
    let uri = uri.trim();
    let base = base_url.trim();
    if has_scheme(uri) {
        return uri.to_string();
    }
    let base = base.split_once('#').map_or(base, |(b, _)| b);
    // prefix = "scheme://authority" (or "" when the base has none), then path and query.
    let (prefix, base_path_query) = split_authority(base);
    let (base_path, _base_query) = base_path_query.split_once('?').unwrap_or((base_path_query, ""));
    if uri.is_empty() {
        return base.to_string();
    }
    if let Some(rest) = uri.strip_prefix("//") {
        let scheme = base.find("://").map_or("", |i| &base[..i]);
        return if scheme.is_empty() { format!("//{rest}") } else { format!("{scheme}://{rest}") };
    }
    if uri.starts_with('?') {
        return format!("{prefix}{base_path}{uri}");
    }
    if uri.starts_with('#') {
        return format!("{base}{uri}");
    }
    let split = uri.find(['?', '#']).unwrap_or(uri.len());
    let (uri_path, uri_tail) = uri.split_at(split);
    let merged = if uri_path.starts_with('/') {
        uri_path.to_string()
    } else {
        let dir = match base_path.rfind('/') {
            Some(i) => &base_path[..=i],
            None if !prefix.is_empty() => "/",
            None => "",
        };
        format!("{dir}{uri_path}")
    };
    format!("{prefix}{}{uri_tail}", remove_dot_segments(&merged))
}

/// Whether `uri` starts with `scheme:` (RFC 3986: a letter, then letters,
/// digits, `+`, `-` or `.`).
fn has_scheme(uri: &str) -> bool {
    let Some(colon) = uri.find(':') else { return false };
    let scheme = &uri[..colon];
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Splits `scheme://authority/path?query` into `("scheme://authority", "/path?query")`.
/// Without `://` before the path the whole string is path (and query).
fn split_authority(base: &str) -> (&str, &str) {
    match base.find("://") {
        Some(i) if has_scheme(base) && !base[..i].contains(['/', '?']) => {
            let after = i + 3;
            let end = base[after..].find(['/', '?']).map_or(base.len(), |j| after + j);
            base.split_at(end)
        }
        _ => ("", base),
    }
}

/// RFC 3986 §5.2.4, on a path without query or fragment.
fn remove_dot_segments(path: &str) -> String {
    let absolute = path.starts_with('/');
    let body = if absolute { &path[1..] } else { path };
    let segments: Vec<&str> = body.split('/').collect();
    let last = segments.len().saturating_sub(1);
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {}
            ".." => {
                out.pop();
            }
            s => {
                out.push(s);
                continue;
            }
        }
        // A trailing "." or ".." leaves a directory: keep the final slash.
        if i == last {
            out.push("");
        }
    }
    let joined = out.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

/// Picks the variant the relay follows.
///
/// Variants whose `CODECS` mention HEVC or Dolby Vision (`hvc1`, `hev1`,
/// `dvh…`) are avoided, since many viewers cannot play them; among the rest,
/// those declaring H.264 (`avc1`/`avc3`) come first, then those without
/// `CODECS`, then other codecs (e.g. audio only). Within the best group the
/// highest `BANDWIDTH` wins (a variant without one counts as lowest), and ties
/// go to the earlier variant: so with all variants HEVC this is the highest
/// bandwidth, and with no bandwidths at all the first. `None` only when there
/// are no variants.
pub fn choose_variant(master: &MasterPlaylist) -> Option<&Variant> {
    let key = |v: &Variant| (codec_rank(v.codecs.as_deref()), v.bandwidth);
    let mut best: Option<&Variant> = None;
    for v in &master.variants {
        if best.is_none_or(|b| key(v) > key(b)) {
            best = Some(v);
        }
    }
    best
}

/// Preference of a variant by its `CODECS`: higher is better.
fn codec_rank(codecs: Option<&str>) -> u8 {
    let Some(codecs) = codecs else { return 2 };
    let codecs = codecs.to_ascii_lowercase();
    if ["hvc1", "hev1", "dvh"].iter().any(|c| codecs.contains(c)) {
        0
    } else if codecs.contains("avc1") || codecs.contains("avc3") {
        3
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media(text: &str) -> MediaPlaylist {
        match parse(text) {
            Ok(Playlist::Media(m)) => m,
            other => panic!("not media: {other:?}"),
        }
    }

    fn master(text: &str) -> MasterPlaylist {
        match parse(text) {
            Ok(Playlist::Master(m)) => m,
            other => panic!("not master: {other:?}"),
        }
    }

    #[test]
    fn resolve_absolute_uri_is_unchanged() {
        let base = "http://a.example/live/index.m3u8";
        assert_eq!(resolve(base, "https://cdn.example/x/seg1.ts?t=1"), "https://cdn.example/x/seg1.ts?t=1");
        assert_eq!(resolve(base, "HTTP://cdn.example/a.ts"), "HTTP://cdn.example/a.ts");
    }

    #[test]
    fn resolve_root_relative() {
        assert_eq!(
            resolve("http://a.example/live/ch1/index.m3u8?token=abc", "/hls/seg.ts"),
            "http://a.example/hls/seg.ts"
        );
        assert_eq!(resolve("http://a.example:8080/live/index.m3u8", "/seg.ts?x=1"), "http://a.example:8080/seg.ts?x=1");
        assert_eq!(resolve("http://a.example", "/seg.ts"), "http://a.example/seg.ts");
        assert_eq!(resolve("http://u:p@a.example:81/x/y.m3u8", "/z.ts"), "http://u:p@a.example:81/z.ts");
        assert_eq!(resolve("http://a.example/x/y.m3u8", "/a/../b/./c.ts"), "http://a.example/b/c.ts");
    }

    #[test]
    fn resolve_relative_to_directory() {
        assert_eq!(resolve("http://a.example/live/ch1/index.m3u8", "seg1.ts"), "http://a.example/live/ch1/seg1.ts");
        assert_eq!(resolve("http://a.example/live/ch1/", "seg1.ts"), "http://a.example/live/ch1/seg1.ts");
        assert_eq!(resolve("http://a.example", "seg1.ts"), "http://a.example/seg1.ts");
        assert_eq!(resolve("http://a.example/index.m3u8", "./sub/seg1.ts"), "http://a.example/sub/seg1.ts");
        assert_eq!(
            resolve("http://a.example:8000/live/ch1/index.m3u8", "hi/index.m3u8"),
            "http://a.example:8000/live/ch1/hi/index.m3u8"
        );
    }

    #[test]
    fn resolve_dot_dot() {
        let base = "http://a.example/live/ch1/index.m3u8";
        assert_eq!(resolve(base, "../ch2/seg.ts"), "http://a.example/live/ch2/seg.ts");
        assert_eq!(resolve(base, "../../seg.ts"), "http://a.example/seg.ts");
        // Never above the root.
        assert_eq!(resolve(base, "../../../../seg.ts"), "http://a.example/seg.ts");
        assert_eq!(resolve(base, ".."), "http://a.example/live/");
    }

    #[test]
    fn resolve_queries() {
        // The base's query is not inherited by relative URIs...
        assert_eq!(
            resolve("http://a.example/live/index.m3u8?token=abc&u=1", "seg1.ts"),
            "http://a.example/live/seg1.ts"
        );
        // ...and the URI's own query is kept, even with a '/' or '..' in it.
        assert_eq!(
            resolve("http://a.example/live/index.m3u8?token=abc", "seg1.ts?token=abc&p=/x/../y"),
            "http://a.example/live/seg1.ts?token=abc&p=/x/../y"
        );
        assert_eq!(resolve("http://a.example/live/index.m3u8?a=1", "?b=2"), "http://a.example/live/index.m3u8?b=2");
        // A base with a query but no path.
        assert_eq!(resolve("http://a.example?a=1", "seg.ts"), "http://a.example/seg.ts");
        // A '/' inside the base's query does not count as a directory.
        assert_eq!(resolve("http://a.example/live/index.m3u8?next=/x/y", "seg.ts"), "http://a.example/live/seg.ts");
    }

    #[test]
    fn resolve_odd_inputs() {
        assert_eq!(resolve("https://a.example/x/i.m3u8", "//cdn.example/s.ts"), "https://cdn.example/s.ts");
        assert_eq!(resolve("http://a.example/x/i.m3u8#f", ""), "http://a.example/x/i.m3u8");
        assert_eq!(resolve("/srv/hls/index.m3u8", "seg.ts"), "/srv/hls/seg.ts");
        assert_eq!(resolve("index.m3u8", "seg.ts"), "seg.ts");
        assert_eq!(resolve("", "seg.ts"), "seg.ts");
        assert_eq!(resolve("http://a.example/x/i.m3u8", "  seg.ts \r"), "http://a.example/x/seg.ts");
    }

    fn variant(bw: Option<u64>, codecs: Option<&str>) -> Variant {
        Variant { uri: format!("{bw:?}{codecs:?}"), bandwidth: bw, resolution: None, codecs: codecs.map(String::from) }
    }

    #[test]
    fn choose_variant_prefers_highest_h264() {
        let m = MasterPlaylist {
            variants: vec![
                variant(Some(1_000), Some("avc1.4d401f,mp4a.40.2")),
                variant(Some(9_000), Some("hvc1.2.4.L123.B0")),
                variant(Some(8_000), Some("dvh1.05.01")),
                variant(Some(3_000), Some("avc1.640028,mp4a.40.2")),
                variant(Some(50), Some("mp4a.40.2")),
                variant(Some(2_000), Some("AVC1.4d401f")),
            ],
        };
        assert_eq!(choose_variant(&m), Some(&m.variants[3]));
    }

    #[test]
    fn choose_variant_without_codecs_takes_highest_bandwidth() {
        let m = MasterPlaylist {
            variants: vec![
                variant(Some(300), None),
                variant(Some(2_000), None),
                variant(None, None),
                variant(Some(850), None),
            ],
        };
        assert_eq!(choose_variant(&m), Some(&m.variants[1]));
    }

    #[test]
    fn choose_variant_falls_back() {
        // All HEVC: the highest bandwidth anyway.
        let hevc =
            MasterPlaylist { variants: vec![variant(Some(5), Some("hev1.1")), variant(Some(7), Some("hvc1.2"))] };
        assert_eq!(choose_variant(&hevc), Some(&hevc.variants[1]));
        // No bandwidth anywhere: the first.
        let bare = MasterPlaylist { variants: vec![variant(None, None), variant(None, None)] };
        assert!(std::ptr::eq(choose_variant(&bare).unwrap(), &bare.variants[0]));
        // Audio-only is still better than HEVC; unknown codecs beat audio-only.
        let mixed = MasterPlaylist {
            variants: vec![variant(Some(9), Some("hvc1")), variant(Some(1), Some("mp4a.40.2")), variant(Some(2), None)],
        };
        assert_eq!(choose_variant(&mixed), Some(&mixed.variants[2]));
        assert_eq!(choose_variant(&MasterPlaylist::default()), None);
    }

    #[test]
    fn not_hls() {
        for body in [
            "",
            "\n\r\n  \n",
            "<!DOCTYPE html>\n<html><body>#EXTM3U</body></html>",
            "{\"user_info\":{\"auth\":0}}",
            "\u{feff}<html>",
            "# just a comment\n# another\n",
            "seg1.ts\n#EXTM3U\n",
        ] {
            assert!(matches!(parse(body), Err(HlsError::NotHls(_))), "{body:?}");
        }
        let Err(HlsError::NotHls(msg)) = parse("<html>\u{1b}[31m\"x\"</html>") else { panic!() };
        assert!(!msg.contains('\u{1b}') && !msg.contains("\"x"), "{msg}");
        let Err(e) = parse(&"A".repeat(10_000)) else { panic!() };
        assert!(e.to_string().chars().count() < 80, "{e}");
        assert_eq!(parse("").unwrap_err().to_string(), "not an HLS playlist: empty body");
    }

    #[test]
    fn iptv_m3u_parses_as_media() {
        let m = media("#EXTM3U x-tvg-url=\"http://e/epg.xml\"\n#EXTINF:-1 tvg-id=\"a\" group-title=\"News, World\",A\nhttp://p/1.ts\n#EXTINF:-1,B\nhttp://p/2.ts\n");
        assert_eq!(m.segments.len(), 2);
        assert_eq!(m.segments[0].duration, 0.0);
        assert_eq!(m.segments[1].uri, "http://p/2.ts");
        assert!(!m.ended);
    }

    #[test]
    fn header_only_is_an_empty_media_playlist() {
        assert_eq!(media("#EXTM3U"), MediaPlaylist::default());
        assert_eq!(media("# comment\n\n#extm3u\n"), MediaPlaylist::default());
    }

    #[test]
    fn media_playlist_details() {
        let text = "\u{feff}#EXTM3U\r\n#EXT-X-TARGETDURATION:6\r\n#EXT-X-MEDIA-SEQUENCE: 18446744073709551614\r\n\
            orphan.ts\r\n#EXTINF:5.5,title, with comma\r\n\r\n# comment\r\n#EXT-X-PROGRAM-DATE-TIME:2020-01-01T00:00:00Z\r\na.ts\r\n\
            #EXT-X-DISCONTINUITY\r\n#EXTINF:bogus,\r\nb.ts?x=1,2\r\n#EXTINF:4\rc.ts\r#EXT-X-KEY:METHOD=NONE\n#EXTINF:3,";
        let m = media(text);
        assert_eq!(m.target_duration, Some(6.0));
        assert_eq!(m.media_sequence, u64::MAX - 1);
        assert!(!m.ended && !m.encrypted && !m.fmp4);
        let got: Vec<_> =
            m.segments.iter().map(|s| (s.uri.as_str(), s.duration, s.sequence, s.discontinuity)).collect();
        assert_eq!(
            got,
            [("a.ts", 5.5, u64::MAX - 1, false), ("b.ts?x=1,2", 0.0, u64::MAX, true), ("c.ts", 4.0, u64::MAX, false),]
        );
    }

    #[test]
    fn key_methods() {
        assert!(media("#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=\"k\"\n").encrypted);
        assert!(media("#EXTM3U\n#EXT-X-KEY:METHOD=SAMPLE-AES\n").encrypted);
        assert!(media("#EXTM3U\n#EXT-X-KEY:URI=\"k\"\n").encrypted);
        assert!(!media("#EXTM3U\n#EXT-X-KEY:METHOD=none\n").encrypted);
        assert!(!media("#EXTM3U\n#EXT-X-SESSION-KEY:METHOD=AES-128\n").encrypted);
    }

    #[test]
    fn master_attributes() {
        let m = master(
            "#EXTM3U\n#EXT-X-STREAM-INF:CODECS=\"avc1.4d401f, mp4a.40.2\",BANDWIDTH=1500000,RESOLUTION=1280X720,NAME=\"a,b=c\"\n\
             hi.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=abc,RESOLUTION=big,CODECS=\"\"\nlo.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=1.5e3 , garbage, =x,,RESOLUTION = 2x3\n#EXT-X-STREAM-INF:BANDWIDTH=7\nlast.m3u8\nstray.m3u8\n",
        );
        assert_eq!(
            m.variants,
            [
                Variant {
                    uri: "hi.m3u8".into(),
                    bandwidth: Some(1_500_000),
                    resolution: Some((1280, 720)),
                    codecs: Some("avc1.4d401f, mp4a.40.2".into()),
                },
                Variant { uri: "lo.m3u8".into(), bandwidth: None, resolution: None, codecs: None },
                Variant { uri: "last.m3u8".into(), bandwidth: Some(7), resolution: None, codecs: None },
            ]
        );
    }

    #[test]
    fn attribute_list_scanner() {
        let got: Vec<_> = Attrs::new("A=1,B=\"x,y\",C=\"unterminated").collect();
        assert_eq!(got, [("A", "1"), ("B", "x,y"), ("C", "unterminated")]);
        let got: Vec<_> = Attrs::new(" ,A = 1 ,junk,B=\"q\"tail,C=").collect();
        assert_eq!(got, [("A", "1"), ("B", "q"), ("C", "")]);
        assert_eq!(Attrs::new("").count(), 0);
    }
}
