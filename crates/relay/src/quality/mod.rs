//! Passive source quality: what a provider's stream *is* (codec, profile, picture size, frame rate, interlacing,
//! audio tracks, bitrates, time to the first keyframe, continuity errors), measured from the MPEG-TS bytes the relay
//! reads anyway, with no extra request and no decoding.
//!
//! ```text
//! bytes (any chunking) ──▶ Aligner ──▶ packets ──▶ PAT/PMT ──▶ tracks ──▶ video: SPS / sequence header, PTS
//!                                                                     └──▶ audio: first frame header
//!                                      └──▶ PCR (clock) ─▶ bytes per PID over time = bitrates
//! ```
//!
//! [`Analyzer`] is incremental and cheap once it has its answers: after the video parameters (and a frame rate) and
//! each audio track's first frame header are known, a packet costs a header parse, a continuity check and a few
//! additions. It is not wired into the relay's reader yet.
//!
//! The stream is untrusted: nothing here panics on any input (the third-party SPS parsers run behind
//! `catch_unwind` as well, see `video.rs`), and all buffering is bounded.

mod audio;
mod video;

use bytes::BytesMut;
use serde::{Deserialize, Serialize};

pub use audio::AudioCodec;
pub use video::VideoCodec;

use crate::ts::{pes_es, probe, section, Aligner, Continuity, Header, KeyframeDetector, PACKET, PROBE_BYTES};

/// How much of each video PES's start is searched for the parameter set (an SPS sits in the first few hundred
/// bytes of a keyframe's access unit; x264's SEI before the slice can be ~1 KB).
const ES_SCAN_LIMIT: usize = 4096;
/// Video bytes (TS payload) after which a missing parameter set makes the source unreadable: several GOPs at any
/// real bitrate.
const NO_PARAMS_LIMIT: u64 = 8 * 1024 * 1024;
/// Packets after which a stream with no PAT/PMT, or whose PMT's video PID carries nothing, is given up on.
const NO_PSI_PACKETS: u64 = 20_000;
/// PES timestamps used for the frame rate when the stream carries no timing information.
const FPS_SAMPLES: usize = 50;
/// The longest gap between two PCRs (or DTSs) still counted as elapsed time; a larger one, or a jump backwards, is
/// a discontinuity and the time across it is not counted.
const MAX_CLOCK_STEP: u64 = 27_000_000; // 1 s in 27 MHz ticks
/// Counted time needed before a bitrate is reported.
const MIN_SPAN: u64 = 27_000_000 / 10;
/// 2^33 × 300: where the 27 MHz PCR wraps.
const PCR_WRAP: u64 = (1 << 33) * 300;

/// Whether a source is usable, as far as the bytes seen so far tell; exists so that a dead input (an HTML page, a
/// radio stream on a TV channel, garbage) can be told from a good one without a player.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Not enough seen yet to say (no data, or the PMT or the video parameters have not come by yet).
    #[default]
    Pending,
    /// MPEG-TS with a readable video track.
    Ok,
    /// The bytes are not MPEG-TS (an HTML error page, a text placeholder, binary junk).
    NotTs,
    /// MPEG-TS without a video track (audio only), or whose video PID carries nothing.
    NoVideo,
    /// MPEG-TS whose video can't be read: an unreadable or truncated SPS, absurd dimensions, scrambled video, no
    /// PMT or no parameter set for too long.
    Unreadable,
    /// The provider did not give the stream: an HTTP error, no connection, nothing within the open timeout. Set
    /// by a probe ([`crate::probe`]), never by the analyzer.
    Refused,
    /// A clip, not a live channel: the provider ended the stream after a few seconds (a "channel offline"
    /// placeholder). Set by a probe, never by the analyzer.
    Placeholder,
}

/// Where a reported frame rate comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FpsSource {
    /// The codec's own timing information (H.264/HEVC VUI, MPEG-2 frame_rate_code).
    Stream,
    /// Estimated from the spacing of the video PES timestamps (DTS, else PTS).
    Timestamps,
}

/// The video track of a source, as far as it is known; exists as the video half of [`QualityReport`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VideoReport {
    /// The PID carrying it.
    pub pid: u16,
    pub codec: VideoCodec,
    /// Profile as ffprobe names it ("Main", "High", …).
    pub profile: Option<String>,
    /// Level as coded (H.264 level_idc 31 = 3.1, HEVC general_level_idc 93 = 3.1, MPEG-2 level code 8 = Main).
    pub level: Option<u8>,
    /// Displayed size (after cropping).
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Frames per second (not fields), rounded to 3 decimals.
    pub fps: Option<f64>,
    pub fps_source: Option<FpsSource>,
    /// Coded as fields (H.264 frame_mbs_only_flag 0, MPEG-2 progressive_sequence 0, HEVC interlaced source).
    pub interlaced: Option<bool>,
    /// TS payload bits per second on the video PID (elementary stream plus PES headers, without TS headers and
    /// adaptation-field stuffing), over PCR time.
    pub bitrate: Option<u64>,
}

/// One audio track of a source; exists as the audio half of [`QualityReport`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AudioReport {
    pub pid: u16,
    pub codec: AudioCodec,
    pub channels: Option<u8>,
    pub sample_rate: Option<u32>,
    /// AAC profile ("LC", …).
    pub profile: Option<String>,
    /// ISO 639 code from the PMT.
    pub language: Option<String>,
    /// TS payload bits per second on the PID, like [`VideoReport::bitrate`].
    pub bitrate: Option<u64>,
}

/// What the analyzer knows about a source so far; exists so that sources can be ranked and dead ones flagged from
/// what the relay already reads. Every measurement is optional: it is `None` until the stream has shown it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QualityReport {
    pub verdict: Verdict,
    /// Why the verdict is not `ok` (printable, short).
    pub reason: Option<String>,
    pub video: Option<VideoReport>,
    pub audio: Vec<AudioReport>,
    /// All bits per second (whole TS packets, null packets included), over PCR time.
    pub total_bitrate: Option<u64>,
    /// Stream time from the first byte to the first keyframe (random access point) of the video, at the measured
    /// total bitrate: how long a viewer starting here waits for a picture.
    pub time_to_first_keyframe_ms: Option<u64>,
    /// Continuity-counter gaps (lost or reordered packets), all PIDs.
    pub cc_errors: u64,
    /// Bytes fed.
    pub bytes: u64,
    /// Whole 188-byte packets found in them.
    pub packets: u64,
    /// Bytes that were not part of an aligned packet (junk, broken packets).
    pub discarded_bytes: u64,
}

/// Bytes counted on one PID: since the last clock reference (`pending`), and over counted time (`counted`).
#[derive(Debug, Default)]
struct Counter {
    pending: u64,
    counted: u64,
}

impl Counter {
    fn commit(&mut self, keep: bool) {
        if keep {
            self.counted += self.pending;
        }
        self.pending = 0;
    }

    fn bitrate(&self, span: u64) -> Option<u64> {
        (span >= MIN_SPAN).then(|| (u128::from(self.counted) * 8 * 27_000_000 / u128::from(span)) as u64)
    }
}

/// Which clock the bitrates are measured against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClockSource {
    Pcr,
    /// Video DTS (or PTS), used only while no PCR has been seen.
    Dts,
}

#[derive(Debug)]
struct VideoTrack {
    pid: u16,
    codec: VideoCodec,
    params: Option<video::VideoParams>,
    /// Why the last parameter set seen could not be read (cleared by a good one).
    error: Option<String>,
    /// The start of the current PES's elementary stream, while the parameters are unknown.
    es: Vec<u8>,
    /// `es` is still being filled (the PES start was seen and the scan limit not reached).
    es_open: bool,
    /// DTS (else PTS) of successive PES starts, in 90 kHz, while the frame rate is unknown.
    stamps: Vec<u64>,
    /// Frame rate from `stamps`, fixed once enough are seen.
    stamp_fps: Option<f64>,
    scrambled: bool,
    payload_bytes: u64,
    bytes: Counter,
}

impl VideoTrack {
    fn new(pid: u16, codec: VideoCodec) -> Self {
        VideoTrack {
            pid,
            codec,
            params: None,
            error: None,
            es: Vec::new(),
            es_open: false,
            stamps: Vec::new(),
            stamp_fps: None,
            scrambled: false,
            payload_bytes: 0,
            bytes: Counter::default(),
        }
    }

    fn wants_es(&self) -> bool {
        self.params.is_none()
    }

    fn wants_stamps(&self) -> bool {
        self.stamp_fps.is_none() && self.params.as_ref().is_none_or(|p| p.fps.is_none())
    }

    /// Looks for the parameters in the buffered PES start.
    fn scan(&mut self, complete: bool) {
        match video::find_params(self.codec, &self.es, complete) {
            Some(Ok(p)) => {
                self.params = Some(p);
                self.error = None;
                self.es = Vec::new(); // free it: not needed any more
                self.es_open = false;
            }
            Some(Err(e)) => self.error = Some(e),
            None => {}
        }
    }

    /// What the PES start buffered but not scanned yet says: a stream may end (or the report be asked for) right
    /// after a parameter set. A NAL unit running to the end of the buffer is taken as whole only if it parses.
    fn pending(&self) -> Option<Result<video::VideoParams, String>> {
        if self.params.is_some() || self.es.is_empty() {
            return None;
        }
        video::find_params(self.codec, &self.es, false)
            .or_else(|| video::find_params(self.codec, &self.es, true).filter(Result::is_ok))
    }

    /// Why the video can't be read, if it can't.
    fn error(&self) -> Option<String> {
        self.error.clone().or_else(|| self.pending().and_then(Result::err))
    }

    /// A PES timestamp (90 kHz) for the frame rate estimate.
    fn stamp(&mut self, t: u64) {
        self.stamps.push(t);
        if self.stamps.len() > FPS_SAMPLES {
            self.stamp_fps = fps_from_stamps(&self.stamps);
            self.stamps = Vec::new();
        }
    }

    fn report(&self, span: u64) -> VideoReport {
        let pending = self.pending().and_then(Result::ok);
        let params = self.params.as_ref().or(pending.as_ref());
        let stream_fps = params.and_then(|p| p.fps);
        let (fps, fps_source) = match (stream_fps, self.stamp_fps.or_else(|| fps_from_stamps(&self.stamps))) {
            (Some(f), _) => (Some(f), Some(FpsSource::Stream)),
            (None, Some(f)) => (Some(f), Some(FpsSource::Timestamps)),
            (None, None) => (None, None),
        };
        VideoReport {
            pid: self.pid,
            codec: self.codec,
            profile: params.and_then(|p| p.profile.clone()),
            level: params.and_then(|p| p.level),
            width: params.map(|p| p.width),
            height: params.map(|p| p.height),
            fps: fps.map(|f| (f * 1000.0).round() / 1000.0),
            fps_source,
            interlaced: params.and_then(|p| p.interlaced),
            bitrate: self.bytes.bitrate(span),
        }
    }
}

/// Frames per second from successive decode timestamps: the average step, steps that are not plausible frame
/// intervals (a discontinuity, a wrap) left out.
fn fps_from_stamps(stamps: &[u64]) -> Option<f64> {
    let (mut sum, mut n) = (0u64, 0u64);
    for w in stamps.windows(2) {
        let d = w[1].wrapping_sub(w[0]) & ((1 << 33) - 1);
        if d > 0 && d <= 90_000 {
            sum += d;
            n += 1;
        }
    }
    (n >= 2).then(|| 90_000.0 * n as f64 / sum as f64)
}

#[derive(Debug)]
struct AudioTrack {
    pid: u16,
    codec: AudioCodec,
    language: Option<String>,
    params: Option<audio::AudioParams>,
    bytes: Counter,
}

/// Measures a source's quality from its MPEG-TS bytes; exists so that every source is measured for free, from the
/// bytes the relay relays anyway (see the module docs). Feed it all bytes in order, in chunks split anywhere;
/// ask for a [`QualityReport`] whenever.
#[derive(Debug)]
pub struct Analyzer {
    aligner: Aligner,
    aligned: BytesMut,
    /// The first bytes fed, to say what a non-TS input was.
    head: Vec<u8>,
    bytes: u64,
    packets: u64,
    continuity: Continuity,
    /// Finds the first keyframe; dropped once it has.
    keyframes: Option<KeyframeDetector>,
    first_keyframe_at: Option<u64>,
    pmt_pid: Option<u16>,
    /// The last PMT section read (without CRC), so that repetitions are not parsed again.
    pmt: Vec<u8>,
    pcr_pid: Option<u16>,
    /// Stream types of the PMT's elementary streams (for the reason when there is no video).
    stream_types: Vec<u8>,
    video: Option<VideoTrack>,
    audio: Vec<AudioTrack>,
    clock: Option<ClockSource>,
    last_tick: Option<u64>,
    span: u64,
    total: Counter,
}

impl Default for Analyzer {
    fn default() -> Self {
        Self::new()
    }
}

impl Analyzer {
    /// An analyzer that has seen nothing.
    pub fn new() -> Self {
        Analyzer {
            aligner: Aligner::new(),
            aligned: BytesMut::new(),
            head: Vec::new(),
            bytes: 0,
            packets: 0,
            continuity: Continuity::new(),
            keyframes: Some(KeyframeDetector::new()),
            first_keyframe_at: None,
            pmt_pid: None,
            pmt: Vec::new(),
            pcr_pid: None,
            stream_types: Vec::new(),
            video: None,
            audio: Vec::new(),
            clock: None,
            last_tick: None,
            span: 0,
            total: Counter::default(),
        }
    }

    /// Feeds the next bytes of the stream; `chunk` may start and end anywhere (mid-packet, in junk).
    pub fn feed(&mut self, chunk: &[u8]) {
        self.bytes += chunk.len() as u64;
        if self.head.len() < PROBE_BYTES {
            let take = (PROBE_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        let mut aligned = std::mem::take(&mut self.aligned);
        aligned.clear();
        self.aligner.push(chunk, &mut aligned);
        self.packets_in(&aligned);
        self.aligned = aligned;
    }

    /// Feeds whole, aligned 188-byte packets (what [`Aligner`] produces, e.g. a relay [`crate::ts::Chunk`]),
    /// skipping the analyzer's own alignment. Use either this or [`Analyzer::feed`] for one stream, not both.
    pub fn feed_packets(&mut self, packets: &[u8]) {
        self.bytes += packets.len() as u64;
        if self.head.len() < PROBE_BYTES {
            let take = (PROBE_BYTES - self.head.len()).min(packets.len());
            self.head.extend_from_slice(&packets[..take]);
        }
        self.packets_in(packets);
    }

    fn packets_in(&mut self, data: &[u8]) {
        let whole = &data[..data.len() / PACKET * PACKET];
        if let Some(det) = &mut self.keyframes {
            if let Some(i) = det.scan(whole) {
                self.first_keyframe_at = Some((self.packets + i as u64) * PACKET as u64);
                self.keyframes = None;
            }
        }
        self.continuity.push(whole);
        for p in whole.chunks_exact(PACKET) {
            self.packet(p);
        }
    }

    fn packet(&mut self, p: &[u8]) {
        self.packets += 1;
        let Some(h) = Header::parse(p) else {
            self.total.pending += PACKET as u64;
            return;
        };
        if Some(h.pid) == self.pcr_pid {
            if let Some(pcr) = pcr(p) {
                self.tick(ClockSource::Pcr, pcr, h.discontinuity);
            }
        }
        self.total.pending += PACKET as u64;
        let payload = h.payload(p);
        if h.pid == 0 {
            if h.pusi {
                self.read_pat(payload);
            }
            return;
        }
        if Some(h.pid) == self.pmt_pid {
            if h.pusi {
                self.read_pmt(payload);
            }
            return;
        }
        if let Some(v) = self.video.as_mut().filter(|v| v.pid == h.pid) {
            v.payload_bytes += payload.len() as u64;
            v.bytes.pending += payload.len() as u64;
            if h.scrambled {
                v.scrambled = true;
                return;
            }
            let want_dts_clock = self.clock != Some(ClockSource::Pcr);
            if h.pusi {
                if v.wants_stamps() || want_dts_clock {
                    if let Some(t) = pes_time(payload) {
                        if v.wants_stamps() {
                            v.stamp(t);
                        }
                        if want_dts_clock {
                            self.tick(ClockSource::Dts, t * 300, h.discontinuity);
                        }
                    }
                }
                let Some(v) = self.video.as_mut() else { return };
                if v.wants_es() {
                    if v.es_open && !v.es.is_empty() {
                        v.scan(true);
                    }
                    if v.wants_es() {
                        v.es.clear();
                        let es = pes_es(payload);
                        v.es.extend_from_slice(&es[..es.len().min(ES_SCAN_LIMIT)]);
                        v.es_open = true;
                    }
                }
            } else if v.wants_es() && v.es_open {
                let room = ES_SCAN_LIMIT.saturating_sub(v.es.len());
                v.es.extend_from_slice(&payload[..payload.len().min(room)]);
                if v.es.len() >= ES_SCAN_LIMIT {
                    v.scan(true);
                    v.es_open = false;
                }
            }
            return;
        }
        if let Some(a) = self.audio.iter_mut().find(|a| a.pid == h.pid) {
            a.bytes.pending += payload.len() as u64;
            if a.params.is_none() && h.pusi && !h.scrambled {
                a.params = audio::find_params(a.codec, pes_es(payload));
            }
        }
    }

    /// A clock reference (27 MHz): counts the time since the last one and the bytes in between.
    fn tick(&mut self, source: ClockSource, t: u64, discontinuity: bool) {
        if self.clock != Some(source) {
            if self.clock == Some(ClockSource::Pcr) {
                return; // the PCR, once seen, is the only clock
            }
            // First clock, or PCR taking over from DTS: start counting afresh.
            self.clock = Some(source);
            self.last_tick = None;
            self.span = 0;
            self.total.counted = 0;
            if let Some(v) = &mut self.video {
                v.bytes.counted = 0;
            }
            for a in &mut self.audio {
                a.bytes.counted = 0;
            }
        }
        let step = self.last_tick.map(|last| (t + PCR_WRAP - last) % PCR_WRAP);
        let keep = !discontinuity && step.is_some_and(|s| s > 0 && s <= MAX_CLOCK_STEP);
        if keep {
            self.span += step.unwrap_or(0);
        }
        self.total.commit(keep);
        if let Some(v) = &mut self.video {
            v.bytes.commit(keep);
        }
        for a in &mut self.audio {
            a.bytes.commit(keep);
        }
        self.last_tick = Some(t);
    }

    fn read_pat(&mut self, payload: &[u8]) {
        let Some(s) = section(payload, 0x00) else { return };
        // The first programme (program_number 0 is the network PID). IPTV sources are single-programme.
        let pmt = s
            .get(8..)
            .unwrap_or(&[])
            .chunks_exact(4)
            .find(|e| u16::from_be_bytes([e[0], e[1]]) != 0)
            .map(|e| u16::from_be_bytes([e[2] & 0x1f, e[3]]));
        if pmt.is_some() && pmt != self.pmt_pid {
            self.pmt_pid = pmt;
            self.pmt.clear();
        }
    }

    fn read_pmt(&mut self, payload: &[u8]) {
        let Some(s) = section(payload, 0x02) else { return };
        if s == self.pmt.as_slice() {
            return; // a repetition
        }
        let Some(&[pcr_hi, pcr_lo, info_hi, info_lo]) = s.get(8..12) else { return };
        self.pmt = s.to_vec();
        let pcr_pid = (u16::from(pcr_hi & 0x1f) << 8) | u16::from(pcr_lo);
        self.pcr_pid = (pcr_pid != 0x1fff).then_some(pcr_pid);
        let info_len = (usize::from(info_hi & 0x0f) << 8) | usize::from(info_lo);
        let mut rest = s.get(12 + info_len..).unwrap_or(&[]);
        let mut video = None;
        let mut audio = Vec::new();
        self.stream_types.clear();
        while let [stream_type, p_hi, p_lo, l_hi, l_lo, tail @ ..] = rest {
            let pid = (u16::from(p_hi & 0x1f) << 8) | u16::from(*p_lo);
            let es_len = (usize::from(l_hi & 0x0f) << 8) | usize::from(*l_lo);
            let descriptors = tail.get(..es_len).unwrap_or(tail);
            rest = tail.get(es_len..).unwrap_or(&[]);
            self.stream_types.push(*stream_type);
            if let Some(codec) = VideoCodec::from_stream_type(*stream_type) {
                video.get_or_insert((pid, codec));
            } else if let Some(codec) = AudioCodec::from_pmt(*stream_type, descriptors) {
                let language = audio::language(descriptors);
                audio.push((pid, codec, language));
            }
        }
        // Keep what is known of tracks that stay the same.
        self.video = match (self.video.take(), video) {
            (Some(old), Some((pid, codec))) if old.pid == pid && old.codec == codec => Some(old),
            (_, new) => new.map(|(pid, codec)| VideoTrack::new(pid, codec)),
        };
        let mut old_audio = std::mem::take(&mut self.audio);
        self.audio = audio
            .into_iter()
            .map(|(pid, codec, language)| match old_audio.iter().position(|a| a.pid == pid && a.codec == codec) {
                Some(i) => {
                    let mut a = old_audio.swap_remove(i);
                    a.language = language;
                    a
                }
                None => AudioTrack { pid, codec, language, params: None, bytes: Counter::default() },
            })
            .collect();
    }

    /// What is known so far. Cheap enough to call now and then (it allocates the report, nothing more).
    pub fn report(&self) -> QualityReport {
        let span = self.span;
        let total_bitrate = self.total.bitrate(span);
        let video = self.video.as_ref().map(|v| v.report(span));
        let (verdict, reason) = self.verdict(video.as_ref());
        let time_to_first_keyframe_ms = match (self.first_keyframe_at, total_bitrate) {
            (Some(0), _) => Some(0),
            (Some(at), Some(rate)) if rate > 0 => Some((u128::from(at) * 8 * 1000 / u128::from(rate)) as u64),
            _ => None,
        };
        QualityReport {
            verdict,
            reason,
            video,
            audio: self
                .audio
                .iter()
                .map(|a| AudioReport {
                    pid: a.pid,
                    codec: a.params.as_ref().map_or(a.codec, |p| p.codec),
                    channels: a.params.as_ref().and_then(|p| p.channels),
                    sample_rate: a.params.as_ref().and_then(|p| p.sample_rate),
                    profile: a.params.as_ref().and_then(|p| p.profile.clone()),
                    language: a.language.clone(),
                    bitrate: a.bytes.bitrate(span),
                })
                .collect(),
            total_bitrate,
            time_to_first_keyframe_ms,
            cc_errors: self.continuity.errors(),
            bytes: self.bytes,
            packets: self.packets,
            discarded_bytes: self.aligner.discarded(),
        }
    }

    fn verdict(&self, video: Option<&VideoReport>) -> (Verdict, Option<String>) {
        use Verdict::*;
        if self.packets == 0 {
            if self.bytes == 0 {
                return (Pending, Some("no data yet".into()));
            }
            return match probe(&self.head) {
                Err(e) if self.bytes >= PROBE_BYTES as u64 || e.reason.starts_with("got text") => {
                    (NotTs, Some(e.reason))
                }
                Result::Ok(()) if self.bytes >= PROBE_BYTES as u64 => {
                    (NotTs, Some(format!("no whole MPEG-TS packet in {} bytes", self.bytes)))
                }
                _ => (Pending, Some(format!("only {} bytes so far", self.bytes))),
            };
        }
        if self.pmt.is_empty() {
            return if self.packets >= NO_PSI_PACKETS {
                (Unreadable, Some(format!("no PAT/PMT in {} packets", self.packets)))
            } else {
                (Pending, Some("waiting for PAT/PMT".into()))
            };
        }
        let (Some(v), Some(vr)) = (&self.video, video) else {
            let audio: Vec<&str> = self.audio.iter().map(|a| a.codec.label()).collect();
            let reason = if audio.is_empty() {
                let types: Vec<String> = self.stream_types.iter().map(|t| format!("0x{t:02x}")).collect();
                format!("no video or audio track in the PMT (stream types: {})", types.join(", "))
            } else {
                format!("no video track in the PMT (audio only: {})", audio.join(", "))
            };
            return (NoVideo, Some(reason));
        };
        let what = v.codec.label();
        if vr.width.is_some() {
            return (Ok, None);
        }
        if let Some(e) = v.error() {
            return (Unreadable, Some(e));
        }
        if v.scrambled {
            return (Unreadable, Some(format!("{what} video on PID {} is scrambled", v.pid)));
        }
        if v.payload_bytes == 0 && self.packets >= NO_PSI_PACKETS {
            return (NoVideo, Some(format!("the PMT lists {what} on PID {} but no packet carries it", v.pid)));
        }
        if v.payload_bytes >= NO_PARAMS_LIMIT {
            return (
                Unreadable,
                Some(format!("no {what} {} in {} KiB of video", v.codec.header_name(), v.payload_bytes / 1024)),
            );
        }
        (Pending, Some(format!("waiting for the {what} {}", v.codec.header_name())))
    }
}

/// The PCR (27 MHz) of a packet's adaptation field, if it has one.
fn pcr(p: &[u8]) -> Option<u64> {
    if p[3] & 0x20 == 0 || p[4] < 7 || p[5] & 0x10 == 0 {
        return None;
    }
    let b = p.get(6..12)?;
    let base = (u64::from(b[0]) << 25)
        | (u64::from(b[1]) << 17)
        | (u64::from(b[2]) << 9)
        | (u64::from(b[3]) << 1)
        | (u64::from(b[4]) >> 7);
    let ext = (u64::from(b[4] & 0x01) << 8) | u64::from(b[5]);
    Some(base * 300 + ext.min(299))
}

/// The DTS, else the PTS (90 kHz), of a PES starting in `payload`.
fn pes_time(payload: &[u8]) -> Option<u64> {
    let [0, 0, 1, _stream_id, _, _, _, flags, hdr_len, rest @ ..] = payload else { return None };
    let rest = rest.get(..usize::from(*hdr_len))?;
    let stamp = |b: &[u8]| -> Option<u64> {
        let b = b.get(..5)?;
        Some(
            (u64::from(b[0] >> 1 & 0x07) << 30)
                | (u64::from(b[1]) << 22)
                | (u64::from(b[2] >> 1) << 15)
                | (u64::from(b[3]) << 7)
                | u64::from(b[4] >> 1),
        )
    };
    match flags >> 6 {
        3 => stamp(rest.get(5..)?),
        2 => stamp(rest),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
