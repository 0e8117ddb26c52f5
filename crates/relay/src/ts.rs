//! MPEG-TS tools for the relay: pure, synchronous, allocation-light, and total (no input makes them panic).
//!
//! The upstream reader task runs every byte it receives through this pipeline:
//!
//! ```text
//! bytes (any chunking) ──▶ Aligner ──▶ whole 188-byte packets ──▶ Chunker (uses KeyframeDetector) ──▶ Chunk ──▶ Ring
//! ```
//!
//! - [`probe`] decides, from the first bytes of a response, whether it is MPEG-TS at all (a `200 OK` with an HTML
//!   page or a "stream offline" text must count as a failure so the session can fail over).
//! - [`Aligner`] cuts the byte stream into whole packets and recovers from junk or lost bytes.
//! - [`KeyframeDetector`] finds random access points (where a decoder can start).
//! - [`Chunker`] groups packets into chunks that always *start* at a keyframe when one is present, so a viewer that
//!   starts (or jumps) to a keyframe chunk gets a picture at once.
//! - [`Continuity`] counts continuity-counter gaps, for tests and diagnostics.
//!
//! Upstream data is untrusted: every index is bounds-checked and malformed packets are skipped, never trusted.

use std::fmt;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

/// Size of one MPEG-TS packet.
pub const PACKET: usize = 188;
/// The sync byte every packet starts with.
pub const SYNC: u8 = 0x47;
/// How many bytes [`probe`] needs to give a definite answer for a TS stream: up to one packet of leading junk plus
/// three packets. Read at least this much (or until the response ends) before probing.
pub const PROBE_BYTES: usize = 4 * PACKET;

/// Packets that must be seen at 188-byte cadence before [`probe`] or [`Aligner`] believe in a sync position.
const CONFIRM: usize = 3;

/// Why an upstream response is not MPEG-TS; exists so a session can log and report *what* it got instead
/// (an HTML error page, a text placeholder, nothing) when it fails over to another source.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct NotTs {
    /// Short, printable (sanitized) description, e.g. `got text starting with "<html><head>…"`.
    pub reason: String,
}

impl NotTs {
    fn new(reason: impl Into<String>) -> Self {
        NotTs { reason: reason.into() }
    }
}

/// Checks that the first bytes of an upstream response are MPEG-TS: sync bytes (0x47) at 188-byte cadence, at least
/// 3 consecutive packets, possibly after a little leading junk (at most one packet). Used before a session declares
/// success, so a 200 with an HTML page or a placeholder counts as a failure. Give it at least [`PROBE_BYTES`] bytes
/// (fewer only when the response ended): shorter input is refused as too short.
pub fn probe(data: &[u8]) -> Result<(), NotTs> {
    if data.is_empty() {
        return Err(NotTs::new("empty response"));
    }
    if let Some(offset) = find_sync(data, PACKET + 1, CONFIRM) {
        if data.len() - offset < CONFIRM * PACKET {
            return Err(NotTs::new(format!(
                "only {} bytes, need at least {} to recognise MPEG-TS",
                data.len(),
                offset + CONFIRM * PACKET
            )));
        }
        // All further packets in what we were given must line up too (at most a few, cheap).
        if data[offset..].chunks_exact(PACKET).take(16).all(|p| p[0] == SYNC) {
            return Ok(());
        }
    }
    if looks_like_text(data) {
        return Err(NotTs::new(format!("got text starting with \"{}\"", sanitize(data, 40))));
    }
    if data.len() < CONFIRM * PACKET {
        return Err(NotTs::new(format!(
            "only {} bytes, need at least {} to recognise MPEG-TS",
            data.len(),
            CONFIRM * PACKET
        )));
    }
    if find_sync(data, data.len(), CONFIRM).is_some() {
        return Err(NotTs::new(format!("MPEG-TS sync found only after more than {PACKET} bytes of junk")));
    }
    Err(NotTs::new("no MPEG-TS sync bytes at 188-byte cadence"))
}

/// First offset `< max_offset` where `confirm` sync bytes follow at 188-byte cadence (all inside `data`).
fn find_sync(data: &[u8], max_offset: usize, confirm: usize) -> Option<usize> {
    let span = (confirm - 1) * PACKET;
    let last = data.len().checked_sub(span + 1)?;
    (0..=last.min(max_offset.saturating_sub(1)))
        .find(|&o| data[o] == SYNC && (1..confirm).all(|k| data[o + k * PACKET] == SYNC))
}

fn looks_like_text(data: &[u8]) -> bool {
    let head = &data[..data.len().min(256)];
    // Non-ASCII bytes count as text only where they are valid UTF-8 (a cut character at the end is fine).
    let utf8 = match std::str::from_utf8(head) {
        Ok(s) => s.len(),
        Err(e) => e.valid_up_to(),
    };
    let printable = head
        .iter()
        .enumerate()
        .filter(|&(i, &b)| matches!(b, b'\t' | b'\n' | b'\r' | 0x20..=0x7e) || (b >= 0x80 && i < utf8))
        .count();
    // Allow a few odd bytes (a BOM, stray binary) but demand mostly text.
    printable * 10 >= head.len() * 9 && head.iter().any(|b| b.is_ascii_alphanumeric())
}

/// Up to `max` characters of `data` as printable ASCII (whitespace runs folded to one space, others escaped as `?`),
/// with `…` when cut. Keeps hostile upstream text out of logs and JSON as anything but short plain text.
fn sanitize(data: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(&data[..data.len().min(max * 4)]);
    let mut out = String::new();
    let mut count = 0;
    let mut last_space = false;
    let mut trimmed = text.trim_start().chars().peekable();
    while let Some(c) = trimmed.next() {
        if count == max {
            out.push('…');
            break;
        }
        let c = if c.is_whitespace() {
            if last_space {
                continue;
            }
            ' '
        } else if c.is_ascii_graphic() {
            c
        } else {
            '?'
        };
        last_space = c == ' ';
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
        count += 1;
        if trimmed.peek().is_none() {
            break;
        }
    }
    out.trim_end().to_string()
}

/// Turns an arbitrary byte stream (any chunking) into whole 188-byte packets, resynchronising after junk or a lost
/// byte (it looks for 0x47 at 188-byte cadence again); counts discarded bytes and resyncs. Exists because upstream
/// reads end anywhere and real providers send junk (HTTP leftovers, truncated packets after a hiccup).
///
/// Sync is (re)acquired only where 3 sync bytes line up at 188-byte cadence, so a stray 0x47 in junk is not taken
/// for a packet; once in sync, each packet only needs its own sync byte, so packets are passed on as soon as they
/// are complete (no added latency). Memory: at most `2 × 188` bytes are carried between calls.
#[derive(Debug, Default)]
pub struct Aligner {
    /// Bytes carried over between calls: a partial packet (in sync, starts with 0x47) or a possible sync candidate.
    carry: Vec<u8>,
    synced: bool,
    discarded: u64,
    resyncs: u64,
}

impl Aligner {
    /// A new aligner; it starts out of sync and syncs on the first 3 packets at 188-byte cadence.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `input`, appending every complete, aligned packet to `out` (so `out` grows by a multiple of 188).
    pub fn push(&mut self, input: &[u8], out: &mut BytesMut) {
        self.push_with(input, |packets| out.extend_from_slice(packets));
    }

    /// Feeds `input`, handing every run of complete, aligned packets to `emit` as it is found, in order, without
    /// copying it first: a run is a slice of `input` (or of the few carried bytes that complete a packet split
    /// between reads). What `emit` is given, concatenated, is exactly what [`Aligner::push`] would append. Exists
    /// so that the relay copies each upstream byte once, into the chunk being built ([`Chunker::push_packets`]).
    pub fn push_with(&mut self, mut input: &[u8], mut emit: impl FnMut(&[u8])) {
        // Work on the carried bytes first, topping them up a little at a time so that the carry stays small.
        while !self.carry.is_empty() && !input.is_empty() {
            let take = if self.synced { PACKET.saturating_sub(self.carry.len()).max(1) } else { CONFIRM * PACKET };
            let take = take.min(input.len());
            self.carry.extend_from_slice(&input[..take]);
            input = &input[take..];
            let mut carry = std::mem::take(&mut self.carry);
            let used = self.process(&carry, &mut emit);
            carry.drain(..used);
            self.carry = carry;
        }
        if self.carry.is_empty() && !input.is_empty() {
            let used = self.process(input, &mut emit);
            self.carry.extend_from_slice(&input[used..]);
        }
    }

    /// Emits what it can from `data`; returns how many bytes were used (emitted or discarded). The rest must be
    /// carried: a partial packet when in sync, else at most `2 × 188` bytes that may yet start a packet.
    fn process(&mut self, data: &[u8], emit: &mut impl FnMut(&[u8])) -> usize {
        let mut pos = 0;
        loop {
            let rest = &data[pos..];
            if self.synced {
                if rest.is_empty() {
                    return pos;
                }
                if rest[0] != SYNC {
                    self.synced = false;
                    self.resyncs += 1;
                    continue;
                }
                let whole = rest.chunks_exact(PACKET).take_while(|p| p[0] == SYNC).count();
                if whole == 0 {
                    return pos; // partial packet starting with a sync byte
                }
                emit(&rest[..whole * PACKET]);
                pos += whole * PACKET;
            } else {
                if let Some(o) = find_sync(rest, usize::MAX, CONFIRM) {
                    self.discarded += o as u64;
                    pos += o;
                    self.synced = true;
                    continue;
                }
                // No confirmed sync yet: keep the first position that may still become one once more data arrives
                // (a sync byte with all its followers that are present also sync bytes), drop everything before.
                let keep_from = rest.len().saturating_sub((CONFIRM - 1) * PACKET);
                let keep = (keep_from..rest.len())
                    .find(|&o| rest[o] == SYNC && rest[o..].iter().step_by(PACKET).all(|&b| b == SYNC))
                    .unwrap_or(rest.len());
                self.discarded += keep as u64;
                return pos + keep;
            }
        }
    }

    /// Bytes thrown away because they were not part of an aligned packet (leading junk, junk between packets,
    /// packets broken by a lost byte).
    pub fn discarded(&self) -> u64 {
        self.discarded
    }

    /// How many times sync was lost (a packet did not start with 0x47 where one was due) and had to be found again.
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }
}

/// Video codec of the PID the detector follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Codec {
    Mpeg2,
    H264,
    Hevc,
}

/// What the first NAL units (or MPEG-2 start codes) of a video PES say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EsStart {
    Key,
    NotKey,
    Unknown,
}

/// Finds random access points: a packet whose adaptation field has random_access_indicator set, or (fallback, since
/// many encoders don't set RAI) the start of a PES (payload_unit_start) on the video PID whose payload contains an
/// H.264 IDR (nal_unit_type 5) or SPS (7) NAL, or an HEVC IRAP picture or VPS (or an MPEG-2 sequence header). The
/// video PID is learnt from PAT/PMT (stream_type 0x1B H.264, 0x24 HEVC, 0x01/0x02 MPEG-2); until the PMT is seen,
/// RAI alone counts, on the start of a video PES (stream_id 0xE0-0xEF) of any PID. Once the PMT is known, only the
/// video PID counts (audio sets RAI on every frame);
/// a program without video has no keyframes, and viewers then simply start at the newest chunk.
///
/// It exists so that the [`Chunker`] can start a chunk at each keyframe, which is what lets a viewer start with a
/// picture at once. PAT/PMT sections are read when they fit in one packet (all real PATs/PMTs for one programme
/// do); a longer section is read as far as it goes.
///
/// It also keeps the latest PAT and PMT packets ([`KeyframeDetector::take_psi`]), so that a viewer can be given
/// them before the keyframe it starts at.
#[derive(Debug)]
pub struct KeyframeDetector {
    pmt_pids: Vec<u16>,
    video: Option<(u16, Codec)>,
    pmt_seen: bool,
    scratch: Vec<u8>,
    /// The latest PAT packet, and the latest packet of each PMT PID (starting a section).
    pat: Option<Bytes>,
    pmts: Vec<(u16, Bytes)>,
    /// PAT or PMT content changed since the last [`KeyframeDetector::take_psi`].
    psi_changed: bool,
}

impl Default for KeyframeDetector {
    fn default() -> Self {
        Self::new()
    }
}

/// How many packets of a video PES the NAL fallback looks at when the first one holds only headers/SEI.
const ES_LOOKAHEAD_PACKETS: usize = 8;

impl KeyframeDetector {
    /// A detector that knows no PAT/PMT yet.
    pub fn new() -> Self {
        KeyframeDetector {
            pmt_pids: Vec::new(),
            video: None,
            pmt_seen: false,
            scratch: Vec::new(),
            pat: None,
            pmts: Vec::new(),
            psi_changed: false,
        }
    }

    /// The latest PAT packet followed by the latest packet of each PMT it lists, when that changed since the last
    /// call and all of them have been seen; `None` otherwise. Packets are compared without their continuity
    /// counter (which moves with every repetition), so a stream repeating the same tables yields them once.
    pub fn take_psi(&mut self) -> Option<Bytes> {
        if !self.psi_changed || self.pmt_pids.is_empty() {
            return None;
        }
        let pat = self.pat.as_ref()?;
        let mut out = BytesMut::with_capacity(PACKET * (1 + self.pmt_pids.len()));
        out.extend_from_slice(pat);
        for pid in &self.pmt_pids {
            out.extend_from_slice(&self.pmts.iter().find(|(p, _)| p == pid)?.1);
        }
        self.psi_changed = false;
        Some(out.freeze())
    }

    /// Whether the programme is known to have no video (its PMT lists none): no keyframe will ever come.
    pub fn no_video(&self) -> bool {
        self.pmt_seen && self.video.is_none()
    }

    /// Keep `packet` as the latest of its table (PAT, or the PMT on `pid`); note a change of content.
    fn keep_psi(&mut self, pid: u16, packet: &[u8]) {
        let same = |old: &Bytes| {
            old.len() == packet.len()
                && old[..3] == packet[..3]
                && old[4..] == packet[4..]
                && old[3] & 0xf0 == packet[3] & 0xf0
        };
        let kept = if pid == 0 {
            &mut self.pat
        } else {
            match self.pmts.iter().position(|(p, _)| *p == pid) {
                Some(i) => {
                    if !same(&self.pmts[i].1) {
                        self.pmts[i].1 = Bytes::copy_from_slice(packet);
                        self.psi_changed = true;
                    }
                    return;
                }
                None => {
                    self.pmts.push((pid, Bytes::copy_from_slice(packet)));
                    self.psi_changed = true;
                    return;
                }
            }
        };
        if !kept.as_ref().is_some_and(same) {
            *kept = Some(Bytes::copy_from_slice(packet));
            self.psi_changed = true;
        }
    }

    /// Index of the first packet (in `packets`, a slice of whole packets) that starts a random access point, if any.
    ///
    /// PAT/PMT are learnt from the packets examined, which are those up to and including the returned one (all of
    /// them when `None`): to find the next keyframe, call again with the packets after it. A trailing partial packet
    /// and packets without a sync byte are ignored. The NAL fallback may look ahead (read-only) a few packets of the
    /// same PES in `packets` when the first holds only parameter sets or SEI.
    pub fn scan(&mut self, packets: &[u8]) -> Option<usize> {
        match self.scan_inner(packets, false) {
            Scan::Key(i) => Some(i),
            Scan::None | Scan::NeedMore(_) => None,
        }
    }

    /// [`KeyframeDetector::scan`], except that a video PES start whose first NAL units say nothing yet and whose
    /// look-ahead ran into the end of `packets` is not given up: the scan stops there ([`Scan::NeedMore`]), and the
    /// caller scans again from that packet once more packets follow it. What a chunker that holds the packets it
    /// was given (its chunk being built) uses, so that where a read ended does not decide whether a keyframe is seen.
    pub fn scan_until(&mut self, packets: &[u8]) -> Scan {
        self.scan_inner(packets, true)
    }

    fn scan_inner(&mut self, packets: &[u8], wait_for_more: bool) -> Scan {
        for (i, p) in packets.chunks_exact(PACKET).enumerate() {
            let Some(h) = Header::parse(p) else { continue };
            if h.pid == 0 && h.pusi {
                self.read_pat(h.payload(p));
                self.keep_psi(0, p);
                continue;
            }
            if h.pusi && self.pmt_pids.contains(&h.pid) {
                self.read_pmt(h.payload(p));
                self.keep_psi(h.pid, p);
                continue;
            }
            match self.video {
                None => {
                    // Before the PMT: a RAI on a PES start carrying video (audio sets RAI on every frame).
                    if h.rai && !self.pmt_seen && h.pusi && matches!(h.payload(p), [0, 0, 1, 0xe0..=0xef, ..]) {
                        return Scan::Key(i);
                    }
                }
                Some((pid, codec)) if pid == h.pid => {
                    if h.rai {
                        return Scan::Key(i);
                    }
                    if h.pusi && !h.scrambled {
                        match self.es_starts_with_key(codec, packets, i) {
                            Lookahead::Key => return Scan::Key(i),
                            Lookahead::NotKey => {}
                            Lookahead::RanOut if wait_for_more => return Scan::NeedMore(i),
                            Lookahead::RanOut => {}
                        }
                    }
                }
                Some(_) => {}
            }
        }
        Scan::None
    }

    fn read_pat(&mut self, payload: &[u8]) {
        let Some(section) = section(payload, 0x00) else { return };
        // program loop: from byte 8 to the CRC
        let pids: Vec<u16> = section
            .get(8..)
            .unwrap_or(&[])
            .chunks_exact(4)
            .filter(|e| u16::from_be_bytes([e[0], e[1]]) != 0) // program 0 = network PID
            .map(|e| u16::from_be_bytes([e[2] & 0x1f, e[3]]))
            .collect();
        if !pids.is_empty() {
            self.pmt_pids = pids;
        }
    }

    fn read_pmt(&mut self, payload: &[u8]) {
        let Some(section) = section(payload, 0x02) else { return };
        let Some(&[hi, lo]) = section.get(10..12) else { return };
        let info_len = (usize::from(hi & 0x0f) << 8) | usize::from(lo);
        let mut rest = section.get(12 + info_len..).unwrap_or(&[]);
        let mut video = None;
        while let [stream_type, p_hi, p_lo, l_hi, l_lo, tail @ ..] = rest {
            let pid = (u16::from(p_hi & 0x1f) << 8) | u16::from(*p_lo);
            let codec = match stream_type {
                0x01 | 0x02 => Some(Codec::Mpeg2),
                0x1b => Some(Codec::H264),
                0x24 => Some(Codec::Hevc),
                _ => None,
            };
            if let (None, Some(codec)) = (video, codec) {
                video = Some((pid, codec));
            }
            let es_len = (usize::from(l_hi & 0x0f) << 8) | usize::from(*l_lo);
            rest = tail.get(es_len..).unwrap_or(&[]);
        }
        self.pmt_seen = true;
        self.video = video;
    }

    /// Whether the PES starting in packet `i` of `packets` begins with a keyframe, from its first NAL units; or
    /// that `packets` ended before its first units said (and before the look-ahead's limit or the next PES).
    fn es_starts_with_key(&mut self, codec: Codec, packets: &[u8], i: usize) -> Lookahead {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let mut verdict = EsStart::Unknown;
        let mut settled = false;
        let pid = Header::parse(&packets[i * PACKET..]).map(|h| h.pid);
        for (n, p) in packets[i * PACKET..].chunks_exact(PACKET).enumerate() {
            let Some(h) = Header::parse(p) else { continue };
            if Some(h.pid) != pid || h.scrambled {
                continue;
            }
            if n > 0 && h.pusi {
                settled = true;
                break; // next PES
            }
            let payload = h.payload(p);
            if n == 0 {
                scratch.extend_from_slice(pes_es(payload));
            } else {
                scratch.extend_from_slice(payload);
            }
            verdict = es_start(codec, &scratch);
            if verdict != EsStart::Unknown || scratch.len() >= ES_LOOKAHEAD_PACKETS * (PACKET - 4) {
                settled = true;
                break;
            }
        }
        self.scratch = scratch;
        match verdict {
            EsStart::Key => Lookahead::Key,
            EsStart::NotKey => Lookahead::NotKey,
            EsStart::Unknown if settled => Lookahead::NotKey,
            EsStart::Unknown => Lookahead::RanOut,
        }
    }
}

/// What [`KeyframeDetector::scan_until`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan {
    /// The packet at this index starts a random access point.
    Key(usize),
    /// No random access point in these packets.
    None,
    /// None before the packet at this index, which starts a video PES whose first units are not all there yet:
    /// scan again from it once more packets follow.
    NeedMore(usize),
}

/// What the NAL fallback made of a video PES start.
enum Lookahead {
    Key,
    NotKey,
    RanOut,
}

/// The parts of a TS packet header the tools need (also used by [`crate::quality`]).
pub(crate) struct Header {
    pub(crate) pid: u16,
    pub(crate) pusi: bool,
    pub(crate) scrambled: bool,
    pub(crate) rai: bool,
    pub(crate) discontinuity: bool,
    pub(crate) has_payload: bool,
    pub(crate) cc: u8,
    pub(crate) payload_start: usize,
}

impl Header {
    pub(crate) fn parse(p: &[u8]) -> Option<Header> {
        if p.len() < PACKET || p[0] != SYNC {
            return None;
        }
        if p[1] & 0x80 != 0 {
            return None; // transport_error_indicator: the packet is known to be damaged
        }
        let afc = (p[3] >> 4) & 0x03;
        let (mut rai, mut discontinuity) = (false, false);
        let mut payload_start = 4;
        if afc & 0x02 != 0 {
            let af_len = usize::from(p[4]);
            if af_len > 0 {
                discontinuity = p[5] & 0x80 != 0;
                rai = p[5] & 0x40 != 0;
            }
            payload_start = 5 + af_len;
        }
        let has_payload = afc & 0x01 != 0 && payload_start < PACKET;
        Some(Header {
            pid: (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]),
            pusi: p[1] & 0x40 != 0,
            scrambled: p[3] & 0xc0 != 0,
            rai,
            discontinuity,
            has_payload,
            cc: p[3] & 0x0f,
            payload_start: payload_start.min(PACKET),
        })
    }

    pub(crate) fn payload<'a>(&self, p: &'a [u8]) -> &'a [u8] {
        if self.has_payload {
            p.get(self.payload_start..PACKET).unwrap_or(&[])
        } else {
            &[]
        }
    }
}

/// The PSI section in a PUSI payload (after the pointer field), bounded by its section_length, if it has `table_id`.
pub(crate) fn section(payload: &[u8], table_id: u8) -> Option<&[u8]> {
    let pointer = usize::from(*payload.first()?);
    let s = payload.get(1 + pointer..)?;
    if *s.first()? != table_id || s.len() < 3 {
        return None;
    }
    let len = (usize::from(s[1] & 0x0f) << 8) | usize::from(s[2]);
    let end = (3 + len).saturating_sub(4).min(s.len()); // without the CRC
    s.get(..end)
}

/// The elementary stream bytes in the first packet of a PES (after its header); the whole payload if the header
/// does not look like one.
pub(crate) fn pes_es(payload: &[u8]) -> &[u8] {
    match payload {
        [0, 0, 1, _, _, _, _, _, hdr_len, ..] => payload.get(9 + usize::from(*hdr_len)..).unwrap_or(&[]),
        _ => payload,
    }
}

/// Verdict from the first start codes of a video elementary stream.
fn es_start(codec: Codec, es: &[u8]) -> EsStart {
    let mut i = 0;
    while i + 3 < es.len() {
        if es[i] == 0 && es[i + 1] == 0 && es[i + 2] == 1 {
            let b = es[i + 3];
            let v = match codec {
                Codec::H264 => match b & 0x1f {
                    5 | 7 => EsStart::Key,
                    1..=4 => EsStart::NotKey,
                    _ => EsStart::Unknown,
                },
                Codec::Hevc => match (b >> 1) & 0x3f {
                    16..=23 | 32 => EsStart::Key,
                    0..=15 => EsStart::NotKey,
                    _ => EsStart::Unknown,
                },
                Codec::Mpeg2 => match b {
                    0xb3 => EsStart::Key,
                    0x00 => EsStart::NotKey,
                    _ => EsStart::Unknown,
                },
            };
            if v != EsStart::Unknown {
                return v;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    EsStart::Unknown
}

/// A piece of the live stream as the ring buffer holds it: whole TS packets, about `target` bytes.
#[derive(Clone, Debug)]
pub struct Chunk {
    /// Whole 188-byte packets.
    pub data: Bytes,
    /// `data` starts with a random access point: a viewer can start decoding here.
    pub keyframe: bool,
}

/// Groups aligned packets into chunks of about `target` bytes (rounded down to whole packets), cutting a chunk right
/// BEFORE a keyframe packet so that every keyframe starts a chunk (that is what lets a new viewer start exactly at a
/// keyframe); also flushes what it has once its oldest byte has waited `max_delay` (so low bitrates don't add
/// latency). Time is passed in by the caller (`now`), so it is deterministic and testable; [`Chunker::deadline`] says
/// when a flush will be due, for a caller that wants to wake up for it.
///
/// # One copy, recycled buffers
///
/// Packets are copied once, into the chunk being built (a `BytesMut` of `target` bytes), as the [`Aligner`] finds
/// them ([`Chunker::push_packets`] takes a borrowed slice); a finished chunk is that buffer frozen, not copied. The
/// keyframe detector looks at the packets in the buffer, so its look-ahead reaches the end of what has arrived,
/// whatever the reads' boundaries ([`KeyframeDetector::scan_until`]). When a keyframe is found inside the buffer,
/// the packets from it on (those of the same push, usually a few KiB) move to the next chunk's buffer: a second
/// copy for about 2 % of the bytes at 8 Mbit/s. A chunk shorter than half the target (cut at a keyframe, or by the
/// delay) is copied out to an allocation of its own size, so that a buffered chunk never holds much more memory
/// than its bytes, and its buffer is used again at once.
///
/// Buffers come back: the ring hands each evicted chunk to [`Chunker::recycle`], which keeps its buffer for a
/// next chunk when nobody else holds it any more (`Bytes::try_into_mut`: no viewer, no HLS segment still has
/// it); two are kept ([`SPARE_BUFFERS`]: one chunk is made per chunk evicted, in a steady stream), the rest are
/// freed. So a steady stream allocates no chunk buffer.
#[derive(Debug)]
pub struct Chunker {
    target: usize,
    max_delay: Duration,
    detector: KeyframeDetector,
    /// The chunk being built (no capacity until the first byte of a chunk arrives).
    buf: BytesMut,
    /// How far into `buf` the keyframe detector has looked (whole packets).
    scanned: usize,
    keyframe: bool,
    since: Option<Instant>,
    /// Buffers of `target` bytes ready for the next chunks.
    spare: Vec<BytesMut>,
    /// Chunk buffers allocated so far (not taken from `spare`).
    allocated: u64,
}

/// How many recycled chunk buffers a [`Chunker`] keeps for its next chunks.
pub const SPARE_BUFFERS: usize = 2;

impl Chunker {
    /// `target`: chunk size in bytes, e.g. 32 KiB (rounded down to a multiple of 188, at least one packet);
    /// `max_delay`: the longest a byte waits in the chunker, e.g. 50 ms.
    pub fn new(target: usize, max_delay: Duration) -> Self {
        Chunker {
            target: (target / PACKET).max(1) * PACKET,
            max_delay,
            detector: KeyframeDetector::new(),
            buf: BytesMut::new(),
            scanned: 0,
            keyframe: false,
            since: None,
            spare: Vec::new(),
            allocated: 0,
        }
    }

    /// Adds whole packets (from an [`Aligner`]) and appends finished chunks to `out`. Call it with empty `Bytes`
    /// to just let the delay flush happen. A trailing partial packet is passed through as is. The same as
    /// [`Chunker::push_packets`] (the bytes are copied into the chunk being built).
    pub fn push(&mut self, aligned_packets: Bytes, now: Instant, out: &mut Vec<Chunk>) {
        self.push_packets(&aligned_packets, now, out);
    }

    /// Adds whole packets (a run from [`Aligner::push_with`]) by copying them into the chunk being built, and
    /// appends finished chunks to `out`. Call it with no packets to just let the delay flush happen. Bytes that
    /// are not whole packets are passed through as they are (but their keyframes may go unseen).
    pub fn push_packets(&mut self, mut packets: &[u8], now: Instant, out: &mut Vec<Chunk>) {
        while !packets.is_empty() {
            if self.buf.len() >= self.target {
                self.finish(now, out, true);
            }
            if self.buf.capacity() == 0 {
                self.buf = self.fresh();
            }
            let take = (self.target - self.buf.len()).min(packets.len());
            self.buf.extend_from_slice(&packets[..take]);
            self.since.get_or_insert(now);
            packets = &packets[take..];
            self.cut_at_keyframes(now, out, false);
            if self.buf.len() >= self.target {
                self.finish(now, out, true);
            }
        }
        if self.since.is_some_and(|t| now.saturating_duration_since(t) >= self.max_delay) {
            self.finish(now, out, false);
        }
    }

    /// Gives back the bytes of a chunk the ring no longer holds: its buffer is used for a next chunk if nobody
    /// else holds it any more and fewer than [`SPARE_BUFFERS`] are kept; otherwise it is just dropped.
    pub fn recycle(&mut self, data: Bytes) {
        if self.spare.len() >= SPARE_BUFFERS {
            return;
        }
        if let Ok(mut buf) = data.try_into_mut() {
            buf.clear();
            if buf.capacity() >= self.target {
                self.spare.push(buf);
            }
        }
    }

    /// Chunk buffers allocated so far, i.e. not recycled (for tests and measurements).
    pub fn allocated(&self) -> u64 {
        self.allocated
    }

    /// The stream's latest PAT and PMT packets when they changed since the last call (see
    /// [`KeyframeDetector::take_psi`]).
    pub fn take_psi(&mut self) -> Option<Bytes> {
        self.detector.take_psi()
    }

    /// Whether the stream is known to have no video (see [`KeyframeDetector::no_video`]).
    pub fn no_video(&self) -> bool {
        self.detector.no_video()
    }

    /// When the data held now must be flushed (`None` when nothing is held): pass a `now` at or after it to `push`.
    pub fn deadline(&self) -> Option<Instant> {
        self.since.map(|t| t + self.max_delay)
    }

    /// Emits whatever is held as a (short) chunk, e.g. at the end of the stream.
    pub fn flush(&mut self, out: &mut Vec<Chunk>) {
        let now = self.since.unwrap_or_else(Instant::now);
        self.finish(now, out, false);
    }

    /// Emits what is held, after the detector has looked at every packet of it: one it was waiting to decide on is
    /// decided with what is there, so no packet goes out unexamined (a PMT after it still counts), and a keyframe
    /// found then still starts a chunk of its own. With `only_full`, emits only if a full chunk is still held then.
    fn finish(&mut self, now: Instant, out: &mut Vec<Chunk>, only_full: bool) {
        self.cut_at_keyframes(now, out, true);
        if !only_full || self.buf.len() >= self.target {
            self.emit(out);
        }
    }

    /// A buffer for a chunk: a recycled one, else a new one of `target` bytes.
    fn fresh(&mut self) -> BytesMut {
        self.spare.pop().unwrap_or_else(|| {
            self.allocated += 1;
            BytesMut::with_capacity(self.target)
        })
    }

    /// Looks for keyframes in the packets of `buf` not looked at yet; each one found after the chunk's first packet
    /// ends the chunk before it, and the packets from it on start the next one.
    /// With `last_look`, a video PES start that cannot be decided yet is taken for no keyframe (the bytes go out now).
    fn cut_at_keyframes(&mut self, now: Instant, out: &mut Vec<Chunk>, last_look: bool) {
        loop {
            let whole = self.buf.len() / PACKET * PACKET;
            if self.scanned >= whole {
                return;
            }
            match self.detector.scan_inner(&self.buf[self.scanned..whole], !last_look) {
                Scan::None => {
                    self.scanned = whole;
                    return;
                }
                Scan::NeedMore(i) => {
                    self.scanned += i * PACKET;
                    return;
                }
                Scan::Key(i) => {
                    let at = self.scanned + i * PACKET;
                    if at > 0 {
                        let mut next = self.fresh();
                        next.extend_from_slice(&self.buf[at..]);
                        self.buf.truncate(at);
                        self.emit(out);
                        // A short chunk was copied out and left its buffer: keep that for a next chunk.
                        let left = std::mem::replace(&mut self.buf, next);
                        if left.capacity() >= self.target && self.spare.len() < SPARE_BUFFERS {
                            self.spare.push(left);
                        }
                        self.since = Some(now);
                    }
                    self.keyframe = true;
                    self.scanned = PACKET;
                }
            }
        }
    }

    fn emit(&mut self, out: &mut Vec<Chunk>) {
        let keyframe = std::mem::take(&mut self.keyframe);
        self.since = None;
        self.scanned = 0;
        if self.buf.is_empty() {
            return;
        }
        let data = if self.buf.len() < self.target / 2 {
            let data = Bytes::copy_from_slice(&self.buf);
            self.buf.clear();
            data
        } else {
            std::mem::take(&mut self.buf).freeze()
        };
        out.push(Chunk { data, keyframe });
    }
}

/// Continuity checker for tests and diagnostics: counts per-PID continuity_counter gaps (packets without payload,
/// null packets, duplicates and packets with discontinuity_indicator are not errors). Exists to prove that the relay
/// loses or reorders no packet, and to measure how damaged an upstream is.
pub struct Continuity {
    /// Last counter per PID, or `NONE`.
    last: Box<[u8; 8192]>,
    errors: u64,
}

impl fmt::Debug for Continuity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Continuity").field("errors", &self.errors).finish_non_exhaustive()
    }
}

impl Default for Continuity {
    fn default() -> Self {
        Self::new()
    }
}

const NONE: u8 = 0xff;

impl Continuity {
    /// A checker that has seen no PID yet.
    pub fn new() -> Self {
        Continuity { last: Box::new([NONE; 8192]), errors: 0 }
    }

    /// Checks whole packets (a trailing partial packet and packets without sync byte are ignored).
    pub fn push(&mut self, packets: &[u8]) {
        for p in packets.chunks_exact(PACKET) {
            let Some(h) = Header::parse(p) else { continue };
            if h.pid == 0x1fff || !h.has_payload {
                continue;
            }
            let last = &mut self.last[usize::from(h.pid)];
            if *last != NONE && !h.discontinuity && h.cc != (*last + 1) & 0x0f && h.cc != *last {
                self.errors += 1;
            }
            *last = h.cc;
        }
    }

    /// Gaps seen so far.
    pub fn errors(&self) -> u64 {
        self.errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(pid: u16, pusi: bool, cc: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![SYNC, (if pusi { 0x40 } else { 0 }) | (pid >> 8) as u8, pid as u8, 0x10 | (cc & 0x0f)];
        p.extend_from_slice(payload);
        p.resize(PACKET, 0xff);
        p
    }

    #[test]
    fn probe_reasons() {
        assert_eq!(probe(b"").unwrap_err().reason, "empty response");
        let e = probe(b"<html>\n  <body>Stream \"offline\"</body></html>").unwrap_err();
        assert_eq!(e.reason, r#"got text starting with "<html> <body>Stream \"offline\"</body></ht…""#);
        let e = probe(b"\r\n\x01Offline\n\n").unwrap_err();
        assert_eq!(e.reason, r#"got text starting with "?Offline""#);
        let long = "x".repeat(500);
        assert!(probe(long.as_bytes()).unwrap_err().reason.ends_with("…\""));
        let bin = vec![0u8; 1000];
        assert_eq!(probe(&bin).unwrap_err().reason, "no MPEG-TS sync bytes at 188-byte cadence");
        let short: Vec<u8> = packet(1, false, 0, &[]).into_iter().chain(packet(1, false, 1, &[])).collect();
        assert!(probe(&short).unwrap_err().reason.starts_with("only 376 bytes"));
    }

    #[test]
    fn probe_allows_one_packet_of_junk_only() {
        let ts: Vec<u8> = (0..4).flat_map(|i| packet(0x100, false, i, &[])).collect();
        let mut d = vec![0u8; 100];
        d.extend_from_slice(&ts);
        assert!(probe(&d).is_ok());
        let mut d = vec![0u8; 400];
        d.extend_from_slice(&ts);
        assert!(probe(&d).unwrap_err().reason.contains("junk"));
    }

    #[test]
    fn continuity_rules() {
        let mut c = Continuity::new();
        c.push(&packet(0x100, false, 1, &[]));
        c.push(&packet(0x100, false, 2, &[]));
        c.push(&packet(0x100, false, 2, &[])); // duplicate: allowed
        c.push(&packet(0x100, false, 4, &[])); // gap
        let mut no_payload = packet(0x100, false, 9, &[]);
        no_payload[3] = 0x20 | 9;
        no_payload[4] = 183;
        c.push(&no_payload); // no payload: ignored
        c.push(&packet(0x100, false, 5, &[]));
        assert_eq!(c.errors(), 1);
    }

    #[test]
    fn nal_verdicts() {
        assert_eq!(es_start(Codec::H264, &[0, 0, 0, 1, 9, 0xf0, 0, 0, 1, 0x67]), EsStart::Key);
        assert_eq!(es_start(Codec::H264, &[0, 0, 1, 9, 0xf0, 0, 0, 1, 0x41]), EsStart::NotKey);
        assert_eq!(es_start(Codec::H264, &[0, 0, 1, 0x06, 1, 2]), EsStart::Unknown);
        assert_eq!(es_start(Codec::Hevc, &[0, 0, 1, 0x40, 1]), EsStart::Key); // VPS
        assert_eq!(es_start(Codec::Hevc, &[0, 0, 1, 0x26, 1]), EsStart::Key); // IDR_W_RADL
        assert_eq!(es_start(Codec::Hevc, &[0, 0, 1, 0x02, 1]), EsStart::NotKey); // TRAIL_R
        assert_eq!(es_start(Codec::Mpeg2, &[0, 0, 1, 0xb3]), EsStart::Key);
    }

    /// PAT (programme 1 → PMT on 0x1000) and a PMT listing H.264 on 0x100, and `audio` on 0x101 if given.
    fn pat_pmt(audio: bool) -> Vec<u8> {
        let pat = [0u8, 0x00, 0xb0, 13, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01, 0xf0, 0x00, 0, 0, 0, 0];
        let mut pmt = vec![0u8, 0x02, 0xb0, if audio { 23 } else { 18 }, 0x00, 0x01, 0xc1, 0x00, 0x00, 0xe1, 0x00];
        pmt.extend_from_slice(&[0xf0, 0x00, 0x1b, 0xe1, 0x00, 0xf0, 0x00]);
        if audio {
            pmt.extend_from_slice(&[0x0f, 0xe1, 0x01, 0xf0, 0x00]);
        }
        pmt.extend_from_slice(&[0, 0, 0, 0]);
        let mut out = packet(0, true, 0, &pat);
        out.extend(packet(0x1000, true, 0, &pmt));
        out
    }

    #[test]
    fn a_flushed_chunk_is_scanned_to_its_end() {
        // A video PES start whose first units say nothing yet (AUD, SEI) and no more video after it: the detector
        // waits for more, but the chunk goes out by a flush first; the PMT that follows it in the chunk still counts.
        let sei_only = [0, 0, 1, 0xe0, 0, 0, 0x80, 0x80, 5, 0x21, 0, 1, 0, 1, 0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x06, 5];
        let mut data = pat_pmt(false);
        data.extend(packet(0x100, true, 0, &sei_only));
        data.extend(pat_pmt(true));
        let mut c = Chunker::new(32 * 1024, Duration::from_millis(50));
        let mut out = Vec::new();
        c.push_packets(&data, Instant::now(), &mut out);
        assert_eq!(c.take_psi().map(|p| p.len()), Some(2 * PACKET), "the first PAT and PMT");
        c.flush(&mut out);
        let psi = c.take_psi().expect("the second PMT was looked at before its chunk went out");
        assert_eq!(&psi[PACKET..], &data[4 * PACKET..5 * PACKET]);
        assert_eq!(out.iter().map(|c| c.data.len()).sum::<usize>(), data.len());
    }

    #[test]
    fn chunker_time_flush() {
        let t0 = Instant::now();
        let mut c = Chunker::new(32 * 1024, Duration::from_millis(50));
        let mut out = Vec::new();
        c.push(Bytes::from(packet(0x100, false, 0, &[])), t0, &mut out);
        assert!(out.is_empty());
        assert_eq!(c.deadline(), Some(t0 + Duration::from_millis(50)));
        c.push(Bytes::new(), t0 + Duration::from_millis(49), &mut out);
        assert!(out.is_empty());
        c.push(Bytes::new(), t0 + Duration::from_millis(50), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(c.deadline(), None);
    }
}
