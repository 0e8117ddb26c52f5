//! Unit tests on synthetic streams (PAT, PMT and PES packets built here); the real-media comparison with ffprobe
//! is in `tests/quality.rs`.

use proptest::prelude::*;

use super::*;
use crate::ts::SYNC;

const VIDEO: u16 = 0x100;
const AUDIO: u16 = 0x101;
const PMT: u16 = 0x1000;

/// The SPS of `testdata/media/sample-720p.ts`: H.264 Main@3.1, 1280x720, 25 fps in its VUI.
const SPS_720P: &[u8] = &[
    0x67, 0x4d, 0x40, 0x1f, 0xec, 0xa0, 0x28, 0x02, 0xdd, 0x80, 0x88, 0x00, 0x00, 0x03, 0x00, 0x08, 0x00, 0x00, 0x03,
    0x01, 0x90, 0x78, 0xc1, 0x8c, 0xb0,
];

/// Builds streams packet by packet with correct continuity counters.
#[derive(Default)]
struct Mux {
    out: Vec<u8>,
    cc: std::collections::HashMap<u16, u8>,
}

impl Mux {
    /// One packet; `af` is the adaptation field body (flags onward), stuffed so that `payload` fills the packet.
    fn packet(&mut self, pid: u16, pusi: bool, af: Option<&[u8]>, payload: &[u8]) -> usize {
        let cc = self.cc.entry(pid).or_insert(0);
        let room = PACKET - 4;
        let af_min = af.map_or(0, |a| 1 + a.len());
        let take = payload.len().min(room - af_min);
        let af_len = room - take; // bytes taken by the adaptation field, length byte included
        let afc = match (af_len > 0, take > 0) {
            (true, true) => 0x30,
            (true, false) => 0x20,
            _ => 0x10,
        };
        let mut p = vec![SYNC, (if pusi { 0x40 } else { 0 }) | (pid >> 8) as u8, pid as u8, afc | *cc];
        if take > 0 {
            *cc = (*cc + 1) & 0x0f;
        }
        if af_len > 0 {
            p.push((af_len - 1) as u8);
            if af_len > 1 {
                let body = af.unwrap_or(&[0x00]);
                p.extend_from_slice(body);
                p.resize(4 + af_len, 0xff);
            }
        }
        p.extend_from_slice(&payload[..take]);
        assert_eq!(p.len(), PACKET);
        self.out.extend_from_slice(&p);
        take
    }

    fn section(&mut self, pid: u16, table_id: u8, body: &[u8]) {
        let len = body.len() + 5 + 4; // after section_length: 5 header bytes, body, CRC
        let mut s = vec![0, table_id, 0xb0 | (len >> 8) as u8, len as u8, 0, 1, 0xc1, 0, 0];
        s.extend_from_slice(body);
        s.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]); // CRC: not checked
        s.resize(PACKET - 4, 0xff);
        self.packet(pid, true, None, &s);
    }

    fn pat(&mut self) {
        self.section(0, 0x00, &[0, 1, 0xe0 | (PMT >> 8) as u8, PMT as u8]);
    }

    /// A PMT with PCR on the video PID; `streams`: (stream_type, pid, descriptors).
    fn pmt(&mut self, pcr_pid: u16, streams: &[(u8, u16, &[u8])]) {
        let mut b = vec![0xe0 | (pcr_pid >> 8) as u8, pcr_pid as u8, 0xf0, 0];
        for (t, pid, d) in streams {
            b.extend_from_slice(&[*t, 0xe0 | (pid >> 8) as u8, *pid as u8, 0xf0 | (d.len() >> 8) as u8, d.len() as u8]);
            b.extend_from_slice(d);
        }
        self.section(PMT, 0x02, &b);
    }

    /// A PES with PTS (and DTS when given) carrying `es`, the first packet with a PCR when given.
    fn pes(&mut self, pid: u16, stream_id: u8, pts: u64, dts: Option<u64>, pcr: Option<u64>, es: &[u8]) {
        let stamp = |prefix: u8, t: u64| {
            [
                prefix << 4 | ((t >> 29) as u8 & 0x0e) | 1,
                (t >> 22) as u8,
                ((t >> 14) as u8 & 0xfe) | 1,
                (t >> 7) as u8,
                ((t << 1) as u8) | 1,
            ]
        };
        let mut pes = vec![0, 0, 1, stream_id, 0, 0, 0x80];
        match dts {
            Some(d) => {
                pes.extend_from_slice(&[0xc0, 10]);
                pes.extend_from_slice(&stamp(3, pts));
                pes.extend_from_slice(&stamp(1, d));
            }
            None => {
                pes.extend_from_slice(&[0x80, 5]);
                pes.extend_from_slice(&stamp(2, pts));
            }
        }
        pes.extend_from_slice(es);
        let af = pcr.map(pcr_field);
        let mut rest = &pes[..];
        let mut first = true;
        while !rest.is_empty() {
            let af = if first { af.as_ref().map(|a| &a[..]) } else { None };
            let n = self.packet(pid, first, af, rest);
            rest = &rest[n..];
            first = false;
        }
    }
}

/// Adaptation field body (flags onward) with a PCR.
fn pcr_field(pcr: u64) -> [u8; 7] {
    let base = pcr / 300;
    let ext = pcr % 300;
    [
        0x10,
        (base >> 25) as u8,
        (base >> 17) as u8,
        (base >> 9) as u8,
        (base >> 1) as u8,
        ((base as u8 & 1) << 7) | 0x7e | (ext >> 8) as u8,
        ext as u8,
    ]
}

fn annexb(nals: &[&[u8]]) -> Vec<u8> {
    nals.iter().flat_map(|n| [&[0u8, 0, 0, 1][..], n].concat()).collect()
}

/// An H.264 access unit: AUD, the SPS given, PPS, a slice of `slice_len` bytes (IDR when `key`).
fn h264_au(sps: &[u8], key: bool, slice_len: usize) -> Vec<u8> {
    let mut slice = vec![if key { 0x65 } else { 0x41 }, 0x88];
    slice.resize(slice_len, 0x5a);
    if key {
        annexb(&[&[0x09, 0x10], sps, &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0], &slice])
    } else {
        annexb(&[&[0x09, 0x30], &slice])
    }
}

const ADTS_STEREO_48K: &[u8] = &[0xff, 0xf1, 0x4c, 0x80, 0x2e, 0x7f, 0xfc, 1, 2, 3];

/// `seconds` of 25 fps H.264 (keyframe every 25 frames, `frame_len`-byte slices) with AAC, PCR on the video PID
/// every frame. Starts with PAT/PMT.
fn h264_stream(sps: &[u8], seconds: u64, frame_len: usize) -> Vec<u8> {
    let mut m = Mux::default();
    m.pat();
    m.pmt(VIDEO, &[(0x1b, VIDEO, &[]), (0x0f, AUDIO, &[0x0a, 4, b'e', b'n', b'g', 0])]);
    for f in 0..seconds * 25 {
        let t = 90_000 + f * 3600;
        m.pes(VIDEO, 0xe0, t + 3600, Some(t), Some(t * 300), &h264_au(sps, f % 25 == 0, frame_len));
        m.pes(AUDIO, 0xc0, t, None, None, ADTS_STEREO_48K);
        if f % 10 == 0 {
            m.pat();
            m.pmt(VIDEO, &[(0x1b, VIDEO, &[]), (0x0f, AUDIO, &[0x0a, 4, b'e', b'n', b'g', 0])]);
        }
    }
    m.out
}

fn analyze(data: &[u8]) -> QualityReport {
    let mut a = Analyzer::new();
    a.feed(data);
    a.report()
}

#[test]
fn nothing_yet() {
    let r = Analyzer::new().report();
    assert_eq!(r.verdict, Verdict::Pending);
    assert_eq!(r.reason.as_deref(), Some("no data yet"));
}

#[test]
fn html_is_not_ts() {
    let r = analyze(b"<!DOCTYPE html><html><body>Stream offline</body></html>");
    assert_eq!(r.verdict, Verdict::NotTs);
    assert!(r.reason.unwrap().starts_with("got text starting with \"<!DOCTYPE html>"));
}

#[test]
fn binary_junk_is_not_ts() {
    let junk: Vec<u8> = (0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 & 0x3f).collect();
    let r = analyze(&junk);
    assert_eq!(r.verdict, Verdict::NotTs);
    assert_eq!(r.reason.as_deref(), Some("no MPEG-TS sync bytes at 188-byte cadence"));
    assert_eq!(r.packets, 0);
}

#[test]
fn a_few_bytes_are_pending() {
    let r = analyze(&[SYNC, 0, 0, 0x10]);
    assert_eq!(r.verdict, Verdict::Pending);
}

#[test]
fn h264_with_aac() {
    let data = h264_stream(SPS_720P, 4, 3000);
    let r = analyze(&data);
    assert_eq!(r.verdict, Verdict::Ok, "{r:?}");
    assert_eq!(r.reason, None);
    let v = r.video.unwrap();
    assert_eq!((v.pid, v.codec), (VIDEO, VideoCodec::H264));
    assert_eq!((v.width, v.height), (Some(1280), Some(720)));
    assert_eq!((v.fps, v.fps_source), (Some(25.0), Some(FpsSource::Stream)));
    assert_eq!(v.profile.as_deref(), Some("Main"));
    assert_eq!(v.level, Some(31));
    assert_eq!(v.interlaced, Some(false));
    assert_eq!(r.audio.len(), 1);
    let a = &r.audio[0];
    assert_eq!((a.codec, a.channels, a.sample_rate), (AudioCodec::Aac, Some(2), Some(48000)));
    assert_eq!(a.language.as_deref(), Some("eng"));
    // The keyframe follows PAT and PMT: 376 bytes at about 0.8 Mbit/s.
    assert!(r.time_to_first_keyframe_ms.unwrap() <= 5, "{:?}", r.time_to_first_keyframe_ms);
    assert_eq!(r.cc_errors, 0);
    assert_eq!(r.packets * PACKET as u64, data.len() as u64);
}

/// TS payload bytes on `pid` (an independent count for the bitrate tests).
fn payload_bytes(data: &[u8], pid: u16) -> u64 {
    data.chunks_exact(PACKET)
        .filter_map(|p| Header::parse(p).filter(|h| h.pid == pid).map(|h| h.payload(p).len() as u64))
        .sum()
}

/// `a` is within `percent` % of `b`.
fn near(a: u64, b: u64, percent: u64) -> bool {
    a.abs_diff(b) * 100 <= b * percent
}

#[test]
fn bitrates_over_pcr_time() {
    let data = h264_stream(SPS_720P, 4, 1766);
    let r = analyze(&data);
    let v = r.video.unwrap();
    let (vb, expect) = (v.bitrate.unwrap(), payload_bytes(&data, VIDEO) * 8 / 4);
    assert!(near(vb, expect, 2), "video {vb} vs {expect}");
    let (tb, expect) = (r.total_bitrate.unwrap(), data.len() as u64 * 8 / 4);
    assert!(near(tb, expect, 2), "total {tb} vs {expect}");
    let (ab, expect) = (r.audio[0].bitrate.unwrap(), payload_bytes(&data, AUDIO) * 8 / 4);
    assert!(near(ab, expect, 2), "audio {ab} vs {expect}");
}

#[test]
fn time_to_first_keyframe_after_a_cut() {
    let data = h264_stream(SPS_720P, 4, 3000);
    // Start 10 frames into the first GOP (about 400 ms before the next keyframe), at a packet boundary.
    let video_pes_starts: Vec<usize> = data
        .chunks_exact(PACKET)
        .enumerate()
        .filter(|(_, p)| p[1] & 0x40 != 0 && u16::from_be_bytes([p[1] & 0x1f, p[2]]) == VIDEO)
        .map(|(i, _)| i * PACKET)
        .collect();
    let r = analyze(&data[video_pes_starts[15]..]);
    let ms = r.time_to_first_keyframe_ms.unwrap();
    assert!((350..=450).contains(&ms), "{ms} ms");
    // No PAT/PMT until the next repetition: still measured.
    assert_eq!(r.verdict, Verdict::Ok);
}

#[test]
fn any_chunking_gives_the_same_report() {
    let data = h264_stream(SPS_720P, 2, 1500);
    let whole = analyze(&data);
    for step in [1, 7, 188, 189, 1000] {
        let mut a = Analyzer::new();
        for c in data.chunks(step) {
            a.feed(c);
        }
        assert_eq!(a.report(), whole, "chunks of {step}");
    }
    let mut a = Analyzer::new();
    a.feed_packets(&data);
    assert_eq!(a.report(), whole);
}

#[test]
fn audio_only_is_no_video() {
    let mut m = Mux::default();
    m.pat();
    m.pmt(AUDIO, &[(0x0f, AUDIO, &[])]);
    for f in 0..20u64 {
        m.pes(AUDIO, 0xc0, f * 1920, None, Some(f * 1920 * 300), ADTS_STEREO_48K);
    }
    let r = analyze(&m.out);
    assert_eq!(r.verdict, Verdict::NoVideo);
    assert_eq!(r.reason.as_deref(), Some("no video track in the PMT (audio only: aac)"));
    assert_eq!(r.audio[0].channels, Some(2));
    assert!(r.video.is_none());
}

#[test]
fn data_only_is_no_video() {
    let mut m = Mux::default();
    m.pat();
    m.pmt(0x1fff, &[(0x06, 0x200, &[0x56, 0])]);
    m.packet(0x1fff, false, None, &[0xff; 184]);
    let r = analyze(&m.out);
    assert_eq!(r.verdict, Verdict::NoVideo);
    assert_eq!(r.reason.as_deref(), Some("no video or audio track in the PMT (stream types: 0x06)"));
}

#[test]
fn truncated_sps_is_unreadable() {
    let data = h264_stream(&SPS_720P[..8], 1, 500);
    let r = analyze(&data);
    assert_eq!(r.verdict, Verdict::Unreadable);
    let reason = r.reason.unwrap();
    assert!(reason.starts_with("H.264 SPS unreadable"), "{reason}");
    assert_eq!(r.video.unwrap().width, None);
}

#[test]
fn a_good_sps_after_a_bad_one_wins() {
    let mut data = h264_stream(&SPS_720P[..8], 1, 500);
    data.extend_from_slice(&h264_stream(SPS_720P, 1, 500));
    let r = analyze(&data);
    assert_eq!(r.verdict, Verdict::Ok, "{:?}", r.reason);
    assert!(r.cc_errors > 0); // the second stream's counters start again
}

#[test]
fn absurd_dimensions_are_unreadable() {
    let mut m = Mux::default();
    m.pat();
    m.pmt(VIDEO, &[(0x02, VIDEO, &[])]);
    // MPEG-2 sequence header saying 0x0.
    m.pes(VIDEO, 0xe0, 0, None, Some(0), &[0, 0, 1, 0xb3, 0, 0, 0, 0x23, 0xff, 0xff, 0xe0, 0x18, 0, 0, 1, 0]);
    let r = analyze(&m.out);
    assert_eq!(r.verdict, Verdict::Unreadable, "{r:?}");
    assert_eq!(r.reason.as_deref(), Some("absurd picture size 0x0"));
}

#[test]
fn fps_from_timestamps_without_stream_timing() {
    // MPEG-2 720x576 with a forbidden frame_rate_code (0): the rate comes from the DTS spacing (50 fps).
    let mut m = Mux::default();
    m.pat();
    m.pmt(VIDEO, &[(0x02, VIDEO, &[])]);
    for f in 0..80u64 {
        let es = [0, 0, 1, 0xb3, 0x2d, 0x02, 0x40, 0x20, 0xff, 0xff, 0xe0, 0x18, 0, 0, 1, 0, 0, 0];
        m.pes(VIDEO, 0xe0, f * 1800 + 1800, Some(f * 1800), Some(f * 1800 * 300), &es);
    }
    let r = analyze(&m.out);
    assert_eq!(r.verdict, Verdict::Ok);
    let v = r.video.unwrap();
    assert_eq!((v.width, v.height), (Some(720), Some(576)));
    assert_eq!((v.fps, v.fps_source), (Some(50.0), Some(FpsSource::Timestamps)));
    // Fewer stamps than the sample size: estimated from what there is.
    let r = analyze(&m.out[..m.out.len() / 4]);
    assert_eq!(r.video.unwrap().fps, Some(50.0));
}

#[test]
fn bitrate_from_dts_without_pcr() {
    let mut m = Mux::default();
    m.pat();
    m.pmt(0x1fff, &[(0x1b, VIDEO, &[])]);
    for f in 0..50u64 {
        m.pes(VIDEO, 0xe0, f * 3600 + 3600, Some(f * 3600), None, &h264_au(SPS_720P, f == 0, 5 * 184 - 19));
    }
    let r = analyze(&m.out);
    let (vb, expect) = (r.video.unwrap().bitrate.unwrap(), payload_bytes(&m.out, VIDEO) * 8 / 2);
    assert!(near(vb, expect, 3), "{vb} vs {expect}");
}

#[test]
fn scrambled_video_is_unreadable() {
    let mut m = Mux::default();
    m.pat();
    m.pmt(VIDEO, &[(0x1b, VIDEO, &[])]);
    m.pes(VIDEO, 0xe0, 0, None, None, &h264_au(SPS_720P, true, 1000));
    let mut data = m.out;
    for p in data.chunks_exact_mut(PACKET).skip(2) {
        p[3] |= 0x80; // transport_scrambling_control: odd key
    }
    let r = analyze(&data);
    assert_eq!(r.verdict, Verdict::Unreadable);
    assert_eq!(r.reason.as_deref(), Some("H.264 video on PID 256 is scrambled"));
}

#[test]
fn no_pmt_for_long_is_unreadable() {
    let mut m = Mux::default();
    for _ in 0..NO_PSI_PACKETS {
        m.packet(0x300, false, None, &[0xaa; 184]);
    }
    let r = analyze(&m.out);
    assert_eq!(r.verdict, Verdict::Unreadable);
    assert_eq!(r.reason.as_deref(), Some("no PAT/PMT in 20000 packets"));
    let r = analyze(&m.out[..PACKET * 100]);
    assert_eq!(r.verdict, Verdict::Pending);
}

#[test]
fn continuity_errors_are_counted() {
    let mut data = h264_stream(SPS_720P, 1, 1000);
    // Drop one video packet that is not a PES start.
    let victim = data
        .chunks_exact(PACKET)
        .position(|p| p[1] & 0x40 == 0 && u16::from_be_bytes([p[1] & 0x1f, p[2]]) == VIDEO)
        .unwrap();
    data.drain(victim * PACKET..(victim + 1) * PACKET);
    assert_eq!(analyze(&data).cc_errors, 1);
}

#[test]
fn report_serializes() {
    let r = analyze(&h264_stream(SPS_720P, 1, 1000));
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["verdict"], "ok");
    assert_eq!(json["video"]["codec"], "h264");
    assert_eq!(json["audio"][0]["codec"], "aac");
    let back: QualityReport = serde_json::from_value(json).unwrap();
    assert_eq!(back, r);
}

#[test]
fn pcr_and_pes_time_parsing() {
    let mut m = Mux::default();
    m.packet(VIDEO, false, Some(&pcr_field(123_456_789_012)), &[]);
    assert_eq!(pcr(&m.out), Some(123_456_789_012));
    let mut m = Mux::default();
    m.pes(VIDEO, 0xe0, 8_589_934_000, Some(8_589_933_000), None, &[1]);
    assert_eq!(pes_time(Header::parse(&m.out).unwrap().payload(&m.out)), Some(8_589_933_000));
}

/// A PAT/PMT for `stream_type` on VIDEO and then `es` in a video PES: for fuzzing the parameter-set parsers.
fn video_with_es(stream_type: u8, es: &[u8]) -> Vec<u8> {
    let mut m = Mux::default();
    m.pat();
    m.pmt(VIDEO, &[(stream_type, VIDEO, &[])]);
    m.pes(VIDEO, 0xe0, 0, None, Some(0), es);
    m.pes(VIDEO, 0xe0, 3600, None, Some(3600 * 300), &[0, 0, 1, 9, 0x10]);
    m.out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary bytes, split arbitrarily: never a panic, and the split does not change the report.
    #[test]
    fn arbitrary_bytes_any_split(data in proptest::collection::vec(any::<u8>(), 0..4000), cuts in proptest::collection::vec(0usize..4000, 0..8)) {
        let mut a = Analyzer::new();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
        cuts.sort_unstable();
        let mut from = 0;
        for c in cuts.into_iter().chain([data.len()]) {
            a.feed(&data[from..c]);
            from = c;
        }
        let r = a.report();
        prop_assert_eq!(r.bytes, data.len() as u64);
        prop_assert_eq!(r, analyze(&data));
    }

    /// Valid TS packets with arbitrary contents (sync bytes in place, PIDs among the interesting ones).
    #[test]
    fn arbitrary_packets(packets in proptest::collection::vec((prop_oneof![Just(0u16), Just(PMT), Just(VIDEO), Just(AUDIO), any::<u16>()], proptest::collection::vec(any::<u8>(), 185)), 1..40)) {
        let mut data = Vec::new();
        for (pid, body) in packets {
            data.extend_from_slice(&[SYNC, (body[0] & 0xe0) | (pid >> 8 & 0x1f) as u8, pid as u8]);
            data.extend_from_slice(&body[1..]);
        }
        let _ = serde_json::to_string(&analyze(&data)).unwrap();
    }

    /// Arbitrary bytes where an H.264, HEVC or MPEG-2 parameter set is expected.
    #[test]
    fn arbitrary_parameter_sets(stream_type in prop_oneof![Just(0x1bu8), Just(0x24u8), Just(0x02u8)], body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let header: &[u8] = match stream_type {
            0x1b => &[0, 0, 0, 1, 0x67],
            0x24 => &[0, 0, 0, 1, 0x42, 0x01],
            _ => &[0, 0, 1, 0xb3],
        };
        let es = [header, &body].concat();
        let r = analyze(&video_with_es(stream_type, &es));
        prop_assert!(r.verdict != Verdict::NotTs);
    }

    /// Mutations of the real SPS: the parser sees nearly valid input.
    #[test]
    fn mutated_real_sps(flips in proptest::collection::vec((1usize..25, any::<u8>()), 1..4)) {
        let mut sps = SPS_720P.to_vec();
        for (i, x) in flips {
            sps[i] ^= x;
        }
        let r = analyze(&video_with_es(0x1b, &annexb(&[&sps, &[0x68, 0xeb]])));
        if let Some(w) = r.video.and_then(|v| v.width) {
            prop_assert!((16..=8192).contains(&w));
        }
    }
}
