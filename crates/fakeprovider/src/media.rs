//! Media production: the embedded sample, paced live TS looping, the live HLS window and
//! file (VOD) bodies with byte ranges.
//!
//! Every stream body is pull-driven: the next chunk is produced only when the HTTP layer asks
//! for it (after the previous one was taken), so a slow reader never makes the provider
//! buffer more than one chunk per connection.

use std::io;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::config::LiveMedia;
use crate::limits::ConnGuard;

/// The 10 s H.264+AAC MPEG-TS sample, looped as every live channel and served as every movie.
pub(crate) static SAMPLE_TS: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/media/sample-720p.ts"));

/// The other fixtures a live channel may send ([`LiveMedia`]).
static HEVC_360P25: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/media/hevc-360p25.ts"));
static H264_576I25: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/media/h264-576i25.ts"));
static MPEG2_576I25: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/media/mpeg2-576i25.ts"));
static RADIO_AAC: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/media/radio-aac.ts"));

/// Body of a [`LiveMedia::Html`] channel.
pub(crate) const HTML_PAGE: &str = "<!DOCTYPE html><html><head><title>Stream unavailable</title></head>\
<body><h1>This channel is not available in your package</h1></body></html>\n";

impl LiveMedia {
    /// The fixture looped and its duration in seconds; `None` for a dead variant that sends no TS.
    pub(crate) fn looped(self) -> Option<(&'static [u8], f64)> {
        match self {
            LiveMedia::Sample720p => Some((SAMPLE_TS, SAMPLE_SECS)),
            LiveMedia::Hevc360p25 => Some((HEVC_360P25, 4.0)),
            LiveMedia::H264_576i25 => Some((H264_576I25, 2.0)),
            LiveMedia::Mpeg2_576i25 => Some((MPEG2_576I25, 2.0)),
            LiveMedia::RadioAac => Some((RADIO_AAC, 4.0)),
            LiveMedia::Placeholder => Some((SAMPLE_TS, SAMPLE_SECS)),
            LiveMedia::Html => None,
        }
    }

    /// Whether the fixture is played once from its start and the response then ends.
    pub(crate) fn once(self) -> bool {
        self == LiveMedia::Placeholder
    }
}

/// The same content as five 2 s HLS segments.
pub(crate) static HLS_SEGMENTS: [&[u8]; 5] = [
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/media/hls/seg000.ts")),
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/media/hls/seg001.ts")),
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/media/hls/seg002.ts")),
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/media/hls/seg003.ts")),
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/media/hls/seg004.ts")),
];

/// MPEG-TS packet size.
pub(crate) const TS_PACKET: usize = 188;
/// Duration of the sample file.
const SAMPLE_SECS: f64 = 10.0;
/// Duration of one HLS segment.
pub(crate) const HLS_SEGMENT_SECS: u64 = 2;
/// Segments listed in the live HLS playlist.
const HLS_WINDOW: u64 = 4;
/// Live pacing tick.
const TICK: Duration = Duration::from_millis(25);
/// A connection that fell behind gets at most this many ticks' worth at once.
const MAX_BURST_TICKS: f64 = 3.0;
/// Pause between the last byte of a `cut_after` fault and the abort, so the bytes get flushed.
const CUT_FLUSH_DELAY: Duration = Duration::from_millis(100);
/// Chunk size for file (VOD) bodies.
const FILE_CHUNK: usize = 64 * 1024;
/// Body of the `placeholder` fault.
pub(crate) const PLACEHOLDER_BODY: &str = "<html><head><title>Account expired</title></head>\
<body><h1>Your subscription has expired</h1><p>Please contact your reseller.</p></body></html>\n";

/// Live pacing: the configured bitrate, or each fixture's own.
///
/// Exists so that "real bitrate" vs "benchmark bitrate" is decided once, at start.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rate {
    bitrate_bps: Option<u64>,
}

impl Rate {
    pub(crate) fn new(bitrate_bps: Option<u64>) -> Self {
        Rate { bitrate_bps }
    }

    /// Bytes per second for a fixture of `len` bytes lasting `secs`.
    fn bytes_per_sec(&self, len: usize, secs: f64) -> f64 {
        match self.bitrate_bps {
            Some(bps) if bps >= 8 => bps as f64 / 8.0,
            Some(_) => 1.0,
            None => len as f64 / secs,
        }
    }

    /// The live point: where in a looped fixture a viewer joining now starts,
    /// rounded down to a TS packet boundary.
    fn live_offset(&self, data: &[u8], secs: f64, elapsed: Duration) -> usize {
        let total = (elapsed.as_secs_f64() * self.bytes_per_sec(data.len(), secs)) as u128;
        let pos = (total % data.len() as u128) as usize;
        pos - pos % TS_PACKET
    }
}

/// Where a body's bytes come from.
pub(crate) enum Source {
    /// The sample looped forever, paced.
    Live(LivePacer),
    /// A slice of a static file, as fast as the reader takes it.
    File { data: &'static [u8], pos: usize, end: usize },
}

/// Paces the looped sample at a byte rate.
///
/// Exists to make live streams behave like a broadcast: bytes become available with wall
/// time, and a reader that falls behind gets a bounded catch-up burst, not the whole backlog.
pub(crate) struct LivePacer {
    data: &'static [u8],
    pos: usize,
    bytes_per_sec: f64,
    start: Instant,
    /// Bytes accounted for (sent, or forgiven when the reader fell behind).
    credited: f64,
    interval: Interval,
    max_chunk: usize,
    /// Played once from the start (a placeholder clip): the body ends with the fixture.
    once: bool,
}

impl LivePacer {
    /// Paces `data` (a fixture lasting `secs`), joined at the live point `elapsed` after start.
    pub(crate) fn new(data: &'static [u8], secs: f64, rate: Rate, elapsed: Duration) -> Self {
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let bytes_per_sec = rate.bytes_per_sec(data.len(), secs);
        let per_tick = bytes_per_sec * TICK.as_secs_f64();
        let max_chunk = ((per_tick * MAX_BURST_TICKS) as usize / TS_PACKET).max(1) * TS_PACKET;
        LivePacer {
            data,
            pos: rate.live_offset(data, secs, elapsed),
            bytes_per_sec,
            start: Instant::now(),
            credited: 0.0,
            interval,
            max_chunk,
            once: false,
        }
    }

    /// Plays `data` once from its start at its own rate, then ends (see [`LiveMedia::Placeholder`]).
    pub(crate) fn once(mut self) -> Self {
        self.pos = 0;
        self.once = true;
        self
    }

    async fn next(&mut self) -> Option<Bytes> {
        if self.once && self.pos >= self.data.len() {
            return None;
        }
        loop {
            self.interval.tick().await;
            let due = self.bytes_per_sec * self.start.elapsed().as_secs_f64() - self.credited;
            let mut n = (due.max(0.0) as usize / TS_PACKET) * TS_PACKET;
            if n == 0 {
                continue;
            }
            if n > self.max_chunk {
                // The reader fell behind: forgive the backlog instead of bursting it.
                self.credited += (n - self.max_chunk) as f64;
                n = self.max_chunk;
            }
            let end = (self.pos + n).min(self.data.len());
            let chunk = Bytes::from_static(&self.data[self.pos..end]);
            self.pos = if end >= self.data.len() && !self.once { 0 } else { end };
            self.credited += chunk.len() as f64;
            return Some(chunk);
        }
    }
}

impl Source {
    pub(crate) fn file(data: &'static [u8], start: usize, end: usize) -> Self {
        Source::File { data, pos: start.min(data.len()), end: end.min(data.len()) }
    }

    async fn next(&mut self) -> Option<Bytes> {
        match self {
            Source::Live(pacer) => pacer.next().await,
            Source::File { data, pos, end } => {
                if *pos >= *end {
                    return None;
                }
                let stop = (*pos + FILE_CHUNK).min(*end);
                let chunk = Bytes::from_static(&data[*pos..stop]);
                *pos = stop;
                Some(chunk)
            }
        }
    }
}

/// What happens after a number of bytes (the `stall` and `cut_after` faults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Limit {
    Unlimited,
    Stall(u64),
    Cut(u64),
}

struct BodyState {
    source: Source,
    limit: Limit,
    guard: ConnGuard,
    sent: u64,
}

fn cut_error(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, why.to_string())
}

/// A response body streaming `source` for an admitted connection. The guard (and with it the
/// connection slot) lives exactly as long as the body stream.
pub(crate) fn stream_body(source: Source, limit: Limit, guard: ConnGuard) -> Body {
    let state = BodyState { source, limit, guard, sent: 0 };
    let stream = futures_util::stream::unfold(Some(state), |state| async move {
        let mut st = state?;
        match st.limit {
            Limit::Stall(n) if st.sent >= n => {
                // Keep the socket open, send nothing, until cut or shutdown.
                st.guard.cancel.cancelled().await;
                return Some((Err(cut_error("connection cut")), None));
            }
            Limit::Cut(n) if st.sent >= n => {
                // Give the HTTP layer time to flush the last bytes: an error makes it drop
                // whatever it still buffers.
                tokio::select! {
                    _ = st.guard.cancel.cancelled() => {}
                    _ = tokio::time::sleep(CUT_FLUSH_DELAY) => {}
                }
                return Some((Err(cut_error("cut_after fault")), None));
            }
            _ => {}
        }
        let chunk = tokio::select! {
            biased;
            _ = st.guard.cancel.cancelled() => {
                return Some((Err(cut_error("connection cut")), None));
            }
            chunk = st.source.next() => chunk,
        };
        let mut chunk = chunk?;
        if let Limit::Stall(n) | Limit::Cut(n) = st.limit {
            let room = n.saturating_sub(st.sent);
            if (chunk.len() as u64) > room {
                chunk.truncate(room as usize);
            }
        }
        st.sent += chunk.len() as u64;
        st.guard.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        Some((Ok::<Bytes, io::Error>(chunk), Some(st)))
    });
    Body::from_stream(stream)
}

/// The live HLS media playlist at `elapsed` since provider start, for stream `id`.
///
/// The window advances by one segment every 2 s; segment `seq` serves fixture `seq % 5`,
/// with a discontinuity each time the fixture loops.
pub(crate) fn hls_playlist(elapsed: Duration, user: &str, pass: &str, id: u64) -> String {
    let first = elapsed.as_secs() / HLS_SEGMENT_SECS;
    let mut out = String::with_capacity(512);
    out.push_str("#EXTM3U\n#EXT-X-VERSION:3\n");
    out.push_str(&format!("#EXT-X-TARGETDURATION:{HLS_SEGMENT_SECS}\n"));
    out.push_str(&format!("#EXT-X-MEDIA-SEQUENCE:{first}\n"));
    out.push_str(&format!("#EXT-X-DISCONTINUITY-SEQUENCE:{}\n", first / HLS_SEGMENTS.len() as u64));
    for seq in first..first + HLS_WINDOW {
        if seq > first && seq % HLS_SEGMENTS.len() as u64 == 0 {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        out.push_str(&format!("#EXTINF:{HLS_SEGMENT_SECS}.000000,\n/hls/{user}/{pass}/{id}/{seq}.ts\n"));
    }
    out
}

/// The fixture segment served for media sequence number `seq`.
pub(crate) fn hls_segment(seq: u64) -> &'static [u8] {
    HLS_SEGMENTS[(seq % HLS_SEGMENTS.len() as u64) as usize]
}

/// Outcome of interpreting a `Range` header against a body of known length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RangeOutcome {
    /// No (usable) range: send everything with 200.
    Full,
    /// Send bytes `start..=end` with 206.
    Partial { start: usize, end: usize },
    /// 416.
    Unsatisfiable,
}

/// Interpret a single `bytes=` range (`a-b`, `a-`, `-n`). Malformed headers and multi-range
/// requests are ignored (full body), as RFC 9110 allows.
pub(crate) fn parse_range(header: Option<&str>, len: usize) -> RangeOutcome {
    let Some(header) = header else {
        return RangeOutcome::Full;
    };
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeOutcome::Full;
    };
    if spec.contains(',') {
        return RangeOutcome::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeOutcome::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    let parse = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            Some(s.parse::<u64>().unwrap_or(u64::MAX))
        }
    };
    let len64 = len as u64;
    match (a.is_empty(), b.is_empty()) {
        (true, true) => RangeOutcome::Full,
        (true, false) => {
            // Suffix range: the last n bytes.
            let Some(n) = parse(b) else {
                return RangeOutcome::Full;
            };
            if n == 0 || len == 0 {
                return RangeOutcome::Unsatisfiable;
            }
            let n = n.min(len64);
            RangeOutcome::Partial { start: (len64 - n) as usize, end: len - 1 }
        }
        (false, _) => {
            let Some(start) = parse(a) else {
                return RangeOutcome::Full;
            };
            let end = if b.is_empty() {
                len64.saturating_sub(1)
            } else {
                match parse(b) {
                    Some(e) if e >= start => e.min(len64.saturating_sub(1)),
                    _ => return RangeOutcome::Full,
                }
            };
            if start >= len64 {
                return RangeOutcome::Unsatisfiable;
            }
            RangeOutcome::Partial { start: start as usize, end: end as usize }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_is_whole_packets() {
        assert_eq!(SAMPLE_TS.len(), 2_277_244);
        assert_eq!(SAMPLE_TS.len() % TS_PACKET, 0);
        assert!(SAMPLE_TS.chunks(TS_PACKET).all(|p| p[0] == 0x47));
        for seg in HLS_SEGMENTS {
            assert_eq!(seg[0], 0x47);
        }
    }

    #[test]
    fn live_offset_is_aligned_and_wraps() {
        let r = Rate::new(None);
        let at = |ms| r.live_offset(SAMPLE_TS, SAMPLE_SECS, Duration::from_millis(ms));
        assert_eq!(at(0), 0);
        let o = at(3_333);
        assert_eq!(o % TS_PACKET, 0);
        assert!(o > 700_000 && o < 800_000);
        assert_eq!(at(10_000), 0);
        assert_eq!(at(25_000), at(5_000));
    }

    #[test]
    fn every_looped_fixture_is_whole_packets() {
        for media in [
            LiveMedia::Sample720p,
            LiveMedia::Hevc360p25,
            LiveMedia::H264_576i25,
            LiveMedia::Mpeg2_576i25,
            LiveMedia::RadioAac,
        ] {
            let (data, secs) = media.looped().unwrap();
            assert_eq!(data.len() % TS_PACKET, 0, "{media:?}");
            assert!(data.chunks(TS_PACKET).all(|p| p[0] == 0x47), "{media:?}");
            assert!(secs > 0.0);
        }
        assert!(LiveMedia::Html.looped().is_none());
    }

    #[test]
    fn ranges() {
        use RangeOutcome::*;
        assert_eq!(parse_range(None, 100), Full);
        assert_eq!(parse_range(Some("bytes=0-9"), 100), Partial { start: 0, end: 9 });
        assert_eq!(parse_range(Some("bytes=90-"), 100), Partial { start: 90, end: 99 });
        assert_eq!(parse_range(Some("bytes=90-1000"), 100), Partial { start: 90, end: 99 });
        assert_eq!(parse_range(Some("bytes=-10"), 100), Partial { start: 90, end: 99 });
        assert_eq!(parse_range(Some("bytes=-1000"), 100), Partial { start: 0, end: 99 });
        assert_eq!(parse_range(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-2"), 100), Full);
        assert_eq!(parse_range(Some("bytes=a-b"), 100), Full);
        assert_eq!(parse_range(Some("items=0-1"), 100), Full);
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Full);
        assert_eq!(parse_range(Some("bytes=99999999999999999999999-"), 100), Unsatisfiable);
    }

    #[test]
    fn playlist_window() {
        let p = hls_playlist(Duration::from_secs(9), "u", "p", 3);
        assert!(p.contains("#EXT-X-MEDIA-SEQUENCE:4\n"));
        assert!(p.contains("/hls/u/p/3/4.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:2.000000,\n/hls/u/p/3/5.ts"));
        assert!(p.contains("/hls/u/p/3/7.ts"));
        assert!(!p.contains("ENDLIST"));
    }
}
