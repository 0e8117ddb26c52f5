//! The refusal clip: what a TS player gets instead of a bare 503/403 when a
//! channel cannot be served (every slot in use, every source failed, the
//! user at its own limit under the refuse policy).
//!
//! Players treat a non-200 answer as a broken channel and show a generic
//! error, or nothing; a short MPEG-TS clip saying "all tuners are busy"
//! tells the person in front of the TV what happened. The clip is sent with
//! `200` and `x-tunerpool-refused: <reason>` (so tools still see the
//! refusal), played for `outputs.refusal_clip_seconds`, then the response
//! ends. Clients that ask for JSON and HLS playlists keep the status.
//!
//! To loop the clip without the player seeing time jump backwards, each
//! repetition's PCR, PTS and DTS are moved on by the clip's length and the
//! continuity counters carry on: the loop is one continuous stream, built
//! once at start-up and shared by every refusal (a `Bytes` clone, no copy).

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderMap};
use bytes::Bytes;

/// The clip embedded in the binary (`testdata/media/refused.ts`, made with
/// the ffmpeg command in `testdata/media/README.md`).
pub const BUILT_IN: &[u8] = include_bytes!("../../../testdata/media/refused.ts");

const PACKET: usize = 188;
/// PTS, DTS and PCR bases count 33 bits of 90 kHz.
const WRAP: u64 = 1 << 33;

/// A refusal clip, already looped to its playing time.
#[derive(Debug)]
pub struct RefusalClip {
    looped: Bytes,
}

impl RefusalClip {
    /// The clip `ts` (MPEG-TS with timestamps) repeated to last at least
    /// `play_for`. The error says what is wrong with the file.
    pub fn new(ts: &[u8], play_for: Duration) -> Result<RefusalClip, String> {
        let packets = ts.len() / PACKET;
        if packets == 0 || (0..packets).any(|i| ts[i * PACKET] != 0x47) {
            return Err("not MPEG-TS (every 188-byte packet must start with 0x47)".into());
        }
        let clip = &ts[..packets * PACKET];
        let period = period(clip).ok_or("the clip has no PES timestamps to loop by")?;
        let seconds = period as f64 / 90_000.0;
        let loops = ((play_for.as_secs_f64() / seconds).ceil() as usize).clamp(1, 1000);
        let mut out = Vec::with_capacity(clip.len() * loops);
        let mut counters = [None::<u8>; 8192];
        for i in 0..loops {
            let offset = period * i as u64 % WRAP;
            for p in clip.chunks_exact(PACKET) {
                let mut p: [u8; PACKET] = p.try_into().expect("chunks of 188");
                shift(&mut p, offset, &mut counters, i > 0);
                out.extend_from_slice(&p);
            }
        }
        Ok(RefusalClip { looped: Bytes::from(out) })
    }

    /// The built-in clip looped for `play_for`.
    pub fn built_in(play_for: Duration) -> RefusalClip {
        RefusalClip::new(BUILT_IN, play_for).expect("the built-in clip is MPEG-TS with timestamps")
    }

    /// The whole looped clip (a cheap clone).
    pub fn bytes(&self) -> Bytes {
        self.looped.clone()
    }
}

/// Which client outputs send the refusal clip, and the clip. Off by
/// default (every output answers with its status, as before the clip).
#[derive(Debug, Clone, Default)]
pub struct ClipSettings {
    pub clip: Option<Arc<RefusalClip>>,
    /// `/live/U/P/{id}.ts` and the short `/U/P/{id}` (M3U and Xtream players).
    pub live: bool,
    /// HDHomeRun tune URLs (`/hdhr/U/P/auto/v{n}`, the root tuner's).
    pub hdhomerun: bool,
    /// The admin's (or the anonymous user's) `/stream/{id}.ts`.
    pub stream: bool,
}

/// The endpoint a live TS request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Live,
    HdHomeRun,
    Stream,
}

impl ClipSettings {
    /// The one decision whether a refused TS request gets the clip: only if
    /// its output sends it and the client did not ask for JSON.
    pub(crate) fn for_request(&self, output: Output, headers: &HeaderMap) -> Option<Arc<RefusalClip>> {
        let on = match output {
            Output::Live => self.live,
            Output::HdHomeRun => self.hdhomerun,
            Output::Stream => self.stream,
        };
        let json = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("application/json"));
        self.clip.clone().filter(|_| on && !json)
    }
}

/// The payload of a packet (after its adaptation field), if it has one.
fn payload_start(p: &[u8; PACKET]) -> Option<usize> {
    let control = (p[3] >> 4) & 3;
    let start = if control & 2 != 0 { 5 + p[4] as usize } else { 4 };
    (control & 1 != 0 && start < PACKET).then_some(start)
}

/// The PTS and DTS offsets in a PES header starting at `at`, if any.
fn pes_timestamps(p: &[u8; PACKET], at: usize) -> (Option<usize>, Option<usize>) {
    let h = &p[at..];
    if h.len() < 14 || h[..3] != [0, 0, 1] || matches!(h[3], 0xBC | 0xBE | 0xBF | 0xF0 | 0xF1 | 0xF2 | 0xF8 | 0xFF) {
        return (None, None);
    }
    match h[7] >> 6 {
        2 => (Some(at + 9), None),
        3 if h.len() >= 19 => (Some(at + 9), Some(at + 14)),
        _ => (None, None),
    }
}

fn read_ts(b: &[u8]) -> u64 {
    ((b[0] as u64 >> 1) & 7) << 30
        | (b[1] as u64) << 22
        | (b[2] as u64 >> 1) << 15
        | (b[3] as u64) << 7
        | b[4] as u64 >> 1
}

fn write_ts(b: &mut [u8], ts: u64) {
    b[0] = (b[0] & 0xF1) | ((ts >> 29) as u8 & 0x0E);
    b[1] = (ts >> 22) as u8;
    b[2] = ((ts >> 14) as u8 & 0xFE) | 1;
    b[3] = (ts >> 7) as u8;
    b[4] = ((ts << 1) as u8 & 0xFE) | 1;
}

/// The clip's length in 90 kHz ticks: the span of the PTS of the stream with
/// the most PES packets (the video), plus one of its frames.
fn period(clip: &[u8]) -> Option<u64> {
    let mut per_pid: std::collections::HashMap<u16, (u64, u64, u64)> = std::collections::HashMap::new();
    for p in clip.chunks_exact(PACKET) {
        let p: &[u8; PACKET] = p.try_into().expect("chunks of 188");
        if p[1] & 0x40 == 0 {
            continue;
        }
        let Some(at) = payload_start(p) else { continue };
        if let (Some(pts), _) = pes_timestamps(p, at) {
            let pid = u16::from(p[1] & 0x1F) << 8 | u16::from(p[2]);
            let ts = read_ts(&p[pts..pts + 5]);
            let e = per_pid.entry(pid).or_insert((ts, ts, 0));
            e.0 = e.0.min(ts);
            e.1 = e.1.max(ts);
            e.2 += 1;
        }
    }
    let (min, max, n) = per_pid.into_values().filter(|e| e.2 >= 2).max_by_key(|e| e.2)?;
    let span = max - min;
    (span > 0).then(|| span + span / (n - 1))
}

/// Moves a packet's PCR, PTS and DTS on by `offset`; with `renumber`, sets
/// its continuity counter to follow the previous packet of its PID.
fn shift(p: &mut [u8; PACKET], offset: u64, counters: &mut [Option<u8>; 8192], renumber: bool) {
    let pid = usize::from(p[1] & 0x1F) << 8 | usize::from(p[2]);
    let has_payload = (p[3] >> 4) & 1 != 0;
    let cc = match counters[pid] {
        Some(last) if renumber && has_payload => (last + 1) & 0x0F,
        Some(last) if renumber => last,
        _ => p[3] & 0x0F,
    };
    p[3] = (p[3] & 0xF0) | cc;
    counters[pid] = Some(cc);
    if offset == 0 {
        return;
    }
    // PCR in the adaptation field.
    if (p[3] >> 4) & 2 != 0 && p[4] >= 7 && p[5] & 0x10 != 0 {
        let base =
            (p[6] as u64) << 25 | (p[7] as u64) << 17 | (p[8] as u64) << 9 | (p[9] as u64) << 1 | (p[10] as u64) >> 7;
        let base = (base + offset) % WRAP;
        p[6] = (base >> 25) as u8;
        p[7] = (base >> 17) as u8;
        p[8] = (base >> 9) as u8;
        p[9] = (base >> 1) as u8;
        p[10] = ((base & 1) as u8) << 7 | (p[10] & 0x7F);
    }
    if p[1] & 0x40 != 0 {
        if let Some(at) = payload_start(p) {
            let (pts, dts) = pes_timestamps(p, at);
            for at in [pts, dts].into_iter().flatten() {
                let ts = (read_ts(&p[at..at + 5]) + offset) % WRAP;
                write_ts(&mut p[at..at + 5], ts);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timestamps(ts: &[u8]) -> Vec<u64> {
        ts.chunks_exact(PACKET)
            .filter_map(|p| {
                let p: &[u8; PACKET] = p.try_into().unwrap();
                if p[1] & 0x40 == 0 {
                    return None;
                }
                let at = payload_start(p)?;
                pes_timestamps(p, at).0.map(|o| read_ts(&p[o..o + 5]))
            })
            .collect()
    }

    #[test]
    fn the_built_in_clip_is_five_seconds() {
        assert_eq!(period(BUILT_IN), Some(5 * 90_000));
    }

    #[test]
    fn loops_move_time_forward_and_counters_on() {
        let clip = RefusalClip::built_in(Duration::from_secs(10));
        let bytes = clip.bytes();
        assert_eq!(bytes.len(), BUILT_IN.len() / PACKET * PACKET * 2);
        let (first, second) = bytes.split_at(bytes.len() / 2);
        let (a, b) = (timestamps(first), timestamps(second));
        assert_eq!(a.len(), b.len());
        assert!(a.iter().zip(&b).all(|(x, y)| y - x == 5 * 90_000), "every timestamp moved by the clip's length");
        // The continuity counter of each PID carries on across the seam.
        let mut last = std::collections::HashMap::new();
        for p in bytes.chunks_exact(PACKET) {
            let pid = u16::from(p[1] & 0x1F) << 8 | u16::from(p[2]);
            if (p[3] >> 4) & 1 == 0 {
                continue;
            }
            let cc = p[3] & 0x0F;
            if let Some(prev) = last.insert(pid, cc) {
                assert_eq!(cc, (prev + 1) & 0x0F, "pid {pid}");
            }
        }
    }

    #[test]
    fn refuses_what_is_not_a_clip() {
        assert!(RefusalClip::new(b"<html>busy</html>", Duration::from_secs(10)).is_err());
        assert!(RefusalClip::new(&[0x47; 188 * 4], Duration::from_secs(10)).is_err());
    }

    #[test]
    fn json_clients_and_outputs_that_are_off_get_no_clip() {
        let settings = ClipSettings {
            clip: Some(Arc::new(RefusalClip::built_in(Duration::from_secs(1)))),
            live: true,
            hdhomerun: false,
            stream: true,
        };
        let mut json = HeaderMap::new();
        json.insert(header::ACCEPT, "application/json".parse().unwrap());
        assert!(settings.for_request(Output::Live, &HeaderMap::new()).is_some());
        assert!(settings.for_request(Output::Live, &json).is_none());
        assert!(settings.for_request(Output::HdHomeRun, &HeaderMap::new()).is_none());
        assert!(ClipSettings::default().for_request(Output::Stream, &HeaderMap::new()).is_none());
    }
}
