//! The MPEG-TS tools against real media (`testdata/media`, H.264 + AAC from ffmpeg).

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tunerpool_relay::ts::{probe, Aligner, Chunk, Chunker, Continuity, KeyframeDetector, PACKET};

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/media/sample-720p.ts");
const HLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/media/hls");
const VIDEO_PID: u16 = 0x100;

fn sample() -> Vec<u8> {
    std::fs::read(SAMPLE).expect("testdata/media/sample-720p.ts")
}

/// A tiny deterministic PRNG (xorshift64*), so the tests need no extra crate and are reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn pid(p: &[u8]) -> u16 {
    (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2])
}

fn pusi(p: &[u8]) -> bool {
    p[1] & 0x40 != 0
}

/// Packet indexes where an H.264 IDR access unit starts: PUSI on the video PID and an IDR (type 5) NAL before any
/// other slice in that PES's first bytes. An independent, slower reference for the detector.
fn idr_starts(ts: &[u8]) -> Vec<usize> {
    let packets: Vec<&[u8]> = ts.chunks_exact(PACKET).collect();
    let mut starts = Vec::new();
    for (i, p) in packets.iter().enumerate() {
        if pid(p) != VIDEO_PID || !pusi(p) {
            continue;
        }
        // Gather this PES's first ~2 KB of payload.
        let mut es = Vec::new();
        for (n, q) in packets[i..].iter().enumerate() {
            if pid(q) != VIDEO_PID {
                continue;
            }
            if n > 0 && pusi(q) || es.len() > 2048 {
                break;
            }
            let afc = (q[3] >> 4) & 3;
            let start = if afc & 2 != 0 { 5 + usize::from(q[4]) } else { 4 };
            if afc & 1 != 0 && start < PACKET {
                es.extend_from_slice(&q[start..]);
            }
        }
        let first_slice = es
            .windows(4)
            .find_map(|w| (w[0] == 0 && w[1] == 0 && w[2] == 1 && matches!(w[3] & 0x1f, 1 | 5)).then_some(w[3] & 0x1f));
        if first_slice == Some(5) {
            starts.push(i);
        }
    }
    starts
}

fn align_in_pieces(data: &[u8], rng: &mut Rng, max_piece: usize) -> (Vec<u8>, Aligner) {
    let mut a = Aligner::new();
    let mut out = BytesMut::new();
    let mut pos = 0;
    while pos < data.len() {
        let n = (1 + rng.below(max_piece)).min(data.len() - pos);
        a.push(&data[pos..pos + n], &mut out);
        assert_eq!(out.len() % PACKET, 0);
        pos += n;
    }
    (out.to_vec(), a)
}

#[test]
fn probe_accepts_real_ts_and_rejects_the_rest() {
    let ts = sample();
    assert!(probe(&ts[..4 * PACKET]).is_ok());
    assert!(probe(&ts).is_ok());
    assert!(probe(&ts[100..100 + 4 * PACKET]).is_ok(), "less than a packet of leading junk is fine");
    for entry in std::fs::read_dir(HLS).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "ts") {
            assert!(probe(&std::fs::read(&path).unwrap()).is_ok(), "{path:?}");
        }
    }

    let html = b"<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head><body>nope</body></html>";
    let err = probe(html).unwrap_err().to_string();
    assert!(err.starts_with("got text starting with \"<!DOCTYPE html> <html><head>"), "{err}");
    assert!(err.len() < 80, "{err}");
    let placeholder = "#EXTM3U\n#EXT-X-ERROR: Stream offline\n".repeat(40);
    assert!(probe(placeholder.as_bytes()).unwrap_err().to_string().starts_with("got text starting with \"#EXTM3U"));
    assert_eq!(probe(b"").unwrap_err().to_string(), "empty response");
    assert!(probe(&ts[..2 * PACKET]).unwrap_err().to_string().starts_with("only 376 bytes"));
    assert!(probe(&ts[..100]).is_err());
    let mut junky = vec![0u8; 3 * PACKET];
    junky.extend_from_slice(&ts[..4 * PACKET]);
    assert!(probe(&junky).is_err(), "more than one packet of junk");
    assert_eq!(probe(&vec![0xa5u8; 4096]).unwrap_err().to_string(), "no MPEG-TS sync bytes at 188-byte cadence");
}

#[test]
fn aligner_passes_clean_input_through_with_any_chunking() {
    let ts = sample();
    let mut rng = Rng(7);
    for max_piece in [1, 7, 187, 189, 1000, 65536] {
        let (out, a) = align_in_pieces(&ts, &mut rng, max_piece);
        assert!(out == ts, "max piece {max_piece}");
        assert_eq!((a.discarded(), a.resyncs()), (0, 0));
    }
}

#[test]
fn aligner_recovers_from_junk_and_lost_bytes() {
    let ts = sample();
    let packets: Vec<&[u8]> = ts.chunks_exact(PACKET).collect();
    let mut rng = Rng(42);

    // Junk (without sync bytes) inserted between packets: every packet survives.
    let mut input = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
    let mut injected = 19;
    for (i, p) in packets.iter().enumerate() {
        input.extend_from_slice(p);
        if i % 500 == 499 {
            let n = 1 + rng.below(700);
            input.extend((0..n).map(|_| (rng.below(255) as u8).wrapping_add(0x48)));
            injected += n;
        }
    }
    let (out, a) = align_in_pieces(&input, &mut rng, 5000);
    assert_eq!(out.len() / PACKET, packets.len());
    assert!(out == ts);
    assert_eq!(a.discarded(), injected as u64);
    assert_eq!(a.resyncs(), (packets.len() / 500) as u64);

    // A byte lost inside a packet: that packet and the next are lost or damaged, then we are back in sync.
    let mut input = Vec::new();
    let mut cut = 0;
    for (i, p) in packets.iter().enumerate() {
        if i % 1000 == 500 {
            input.extend_from_slice(&p[..100]);
            input.extend_from_slice(&p[101..]);
            cut += 1;
        } else {
            input.extend_from_slice(p);
        }
    }
    let (out, a) = align_in_pieces(&input, &mut rng, 3000);
    let got = out.len() / PACKET;
    assert!(got >= packets.len() - 2 * cut && got < packets.len(), "{got} of {}", packets.len());
    assert_eq!(a.resyncs(), cut as u64);
    // Everything after the last damage is byte-exact.
    let tail = 600 * PACKET;
    assert!(out[out.len() - tail..] == ts[ts.len() - tail..]);
}

#[test]
fn keyframe_detector_finds_one_idr_per_second() {
    let ts = sample();
    let expected = idr_starts(&ts);
    assert!((9..=11).contains(&expected.len()), "reference found {}", expected.len());

    let mut d = KeyframeDetector::new();
    let mut found = Vec::new();
    let mut pos = 0;
    while let Some(k) = d.scan(&ts[pos * PACKET..]) {
        found.push(pos + k);
        pos += k + 1;
    }
    assert!((9..=11).contains(&found.len()), "{found:?}");
    assert_eq!(found, expected);
    for &i in &found {
        let p = &ts[i * PACKET..(i + 1) * PACKET];
        assert_eq!((pid(p), pusi(p)), (VIDEO_PID, true), "packet {i}");
    }
}

#[test]
fn keyframe_detector_uses_nal_fallback_without_rai() {
    // Clear every random_access_indicator: the detector must still find the IDRs from the NAL units.
    let mut ts = sample();
    for p in ts.chunks_exact_mut(PACKET) {
        if (p[3] >> 4) & 2 != 0 && p[4] > 0 {
            p[5] &= !0x40;
        }
    }
    let mut d = KeyframeDetector::new();
    let mut found = Vec::new();
    let mut pos = 0;
    while let Some(k) = d.scan(&ts[pos * PACKET..]) {
        found.push(pos + k);
        pos += k + 1;
    }
    assert_eq!(found, idr_starts(&ts));
}

fn chunk_all(ts: &[u8], rng: &mut Rng, target: usize) -> Vec<Chunk> {
    let mut c = Chunker::new(target, Duration::from_millis(50));
    let t0 = Instant::now();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < ts.len() {
        let n = ((1 + rng.below(100)) * PACKET).min(ts.len() - pos);
        // 10 ms per push: the delay flush never triggers with pushes this frequent and chunks this small.
        let now = t0 + Duration::from_micros(pos as u64 / 4);
        c.push(Bytes::copy_from_slice(&ts[pos..pos + n]), now, &mut out);
        pos += n;
    }
    c.flush(&mut out);
    out
}

#[test]
fn chunker_starts_a_chunk_at_every_keyframe() {
    let ts = sample();
    let keyframes = idr_starts(&ts);
    let mut rng = Rng(3);
    for target in [32 * 1024, 7 * PACKET, 100_000] {
        let chunks = chunk_all(&ts, &mut rng, target);
        let joined: Vec<u8> = chunks.iter().flat_map(|c| c.data.iter().copied()).collect();
        assert!(joined == ts, "concatenation == input");
        let mut starts = Vec::new();
        let mut pos = 0;
        for c in &chunks {
            assert!(!c.data.is_empty() && c.data.len() % PACKET == 0);
            assert!(c.data.len() <= target + PACKET, "{} > {target}", c.data.len());
            if c.keyframe {
                starts.push(pos / PACKET);
                assert_eq!((pid(&c.data), pusi(&c.data)), (VIDEO_PID, true));
            }
            pos += c.data.len();
        }
        assert_eq!(starts, keyframes, "target {target}");
    }
}

#[test]
fn chunker_flushes_low_bitrate_after_max_delay() {
    let ts = sample();
    let mut c = Chunker::new(32 * 1024, Duration::from_millis(50));
    let t0 = Instant::now();
    let mut out = Vec::new();
    // One packet every 10 ms: 150 kbit/s.
    for (i, p) in ts.chunks_exact(PACKET).take(100).enumerate() {
        c.push(Bytes::copy_from_slice(p), t0 + Duration::from_millis(10 * i as u64), &mut out);
    }
    assert!(out.len() >= 15, "{} chunks", out.len());
    for c in &out {
        assert!(c.data.len() <= 6 * PACKET, "no packet waits more than 50 ms");
    }
}

#[test]
fn continuity_of_real_stream() {
    let ts = sample();
    let mut c = Continuity::new();
    c.push(&ts);
    assert_eq!(c.errors(), 0);

    let mut dropped = ts[..5000 * PACKET].to_vec();
    dropped.extend_from_slice(&ts[5001 * PACKET..]);
    let mut c = Continuity::new();
    c.push(&dropped);
    assert!(c.errors() >= 1);
}

/// The detector keeps the stream's latest PAT and PMT packets and hands them out once per change of content:
/// the sample's tables repeat (with moving continuity counters) but never change.
#[test]
fn keyframe_detector_keeps_the_latest_pat_and_pmt() {
    let ts = sample();
    let mut d = KeyframeDetector::new();
    assert!(d.take_psi().is_none());
    let mut pos = 0;
    let mut taken = Vec::new();
    while pos < ts.len() / PACKET * PACKET {
        let rest = &ts[pos..ts.len() / PACKET * PACKET];
        pos += d.scan(rest).map_or(rest.len(), |k| (k + 1) * PACKET);
        taken.extend(d.take_psi());
    }
    assert_eq!(taken.len(), 1, "the tables never change in the sample");
    let psi = &taken[0];
    assert_eq!(psi.len(), 2 * PACKET);
    assert_eq!((pid(&psi[..PACKET]), pusi(&psi[..PACKET])), (0, true), "the PAT first");
    let pmt_pid = pid(&psi[PACKET..]);
    assert!(pmt_pid != 0 && pmt_pid != VIDEO_PID, "then the PMT, on its own PID ({pmt_pid:#x})");
    // Both are packets of the sample, byte for byte except the continuity counter.
    for p in psi.chunks(PACKET) {
        let same = ts.chunks_exact(PACKET).any(|q| q[..3] == p[..3] && q[4..] == p[4..] && q[3] & 0xf0 == p[3] & 0xf0);
        assert!(same, "a packet of the sample");
    }
    assert!(!d.no_video());
}

/// The relay's path: reads of any size (not packet-aligned) through `Aligner::push_with` straight into
/// `Chunker::push_packets`, the chunks pushed into a ring that hands its evicted chunks back to the chunker.
/// Returns the chunks in order (copied out: like viewers, the test holds no chunk once it has "sent" it) and the
/// chunk buffers the chunker allocated.
fn relay_path(data: &[u8], rng: &mut Rng, max_read: usize, target: usize, ring_bytes: usize) -> (Vec<Chunk>, u64) {
    let ring = tunerpool_relay::Ring::new(ring_bytes);
    let mut aligner = Aligner::new();
    let mut chunker = Chunker::new(target, Duration::from_millis(50));
    let t0 = Instant::now();
    let mut sent = Vec::new();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos <= data.len() {
        let n = (1 + rng.below(max_read)).min(data.len() - pos);
        let now = t0 + Duration::from_micros(pos as u64 / 4);
        aligner.push_with(&data[pos..pos + n], |packets| {
            assert_eq!(packets.len() % PACKET, 0, "runs of whole packets");
            chunker.push_packets(packets, now, &mut out)
        });
        pos += n;
        if pos == data.len() {
            chunker.flush(&mut out);
            pos += 1;
        }
        for c in out.drain(..) {
            sent.push(Chunk { data: Bytes::from(c.data.to_vec()), keyframe: c.keyframe });
            ring.push_reclaiming_unwoken(c, &mut |b| chunker.recycle(b));
        }
    }
    (sent, chunker.allocated())
}

#[test]
fn the_one_copy_path_loses_nothing_and_starts_a_chunk_at_every_keyframe() {
    let ts = sample();
    let keyframes = idr_starts(&ts);
    let mut rng = Rng(11);
    // Reads of 1 byte to 20 KB, cut anywhere (not at packet boundaries), with a little junk first.
    for (max_read, target) in [(20_000, 32 * 1024), (3000, 32 * 1024), (500, 7 * PACKET), (65_536, 100_000)] {
        let mut data = vec![0x11u8; 77];
        data.extend_from_slice(&ts);
        let (chunks, _) = relay_path(&data, &mut rng, max_read, target, 1 << 20);
        let joined: Vec<u8> = chunks.iter().flat_map(|c| c.data.iter().copied()).collect();
        assert!(joined == ts, "concatenation == input without its junk (reads up to {max_read})");
        let mut starts = Vec::new();
        let mut pos = 0;
        for c in &chunks {
            assert!(!c.data.is_empty() && c.data.len() % PACKET == 0);
            assert!(c.data.len() <= target.max(PACKET), "{} > {target}", c.data.len());
            if c.keyframe {
                starts.push(pos / PACKET);
                assert_eq!((pid(&c.data), pusi(&c.data)), (VIDEO_PID, true));
            }
            pos += c.data.len();
        }
        assert_eq!(starts, keyframes, "reads up to {max_read}, target {target}");
    }
}

#[test]
fn chunk_buffers_come_back_once_nobody_holds_them() {
    // The sample relayed ten times through a 1 MB ring: after the ring first fills, every new chunk reuses the
    // buffer of one the ring evicted, so the chunker allocates about a ring's worth of buffers, not one per chunk.
    let ts = sample();
    let data: Vec<u8> = std::iter::repeat_n(&ts[..], 10).flatten().copied().collect();
    let mut rng = Rng(5);
    let (chunks, allocated) = relay_path(&data, &mut rng, 20_000, 32 * 1024, 1 << 20);
    let full = chunks.iter().filter(|c| c.data.len() >= 16 * 1024).count() as u64;
    let ring_worth = (1 << 20) / (16 * 1024) + 2;
    assert!(full > 5 * ring_worth, "{full} chunks of 16 KiB or more");
    assert!(allocated <= ring_worth + 2, "{allocated} buffers allocated for {full} chunks");
    // A chunk somebody still holds is not recycled: its bytes stay what they were.
    let mut chunker = Chunker::new(32 * 1024, Duration::from_millis(50));
    let mut out = Vec::new();
    chunker.push_packets(&ts[..200 * PACKET], Instant::now(), &mut out);
    chunker.flush(&mut out);
    let held = out[0].data.clone();
    let copy = held.to_vec();
    for c in out.drain(..) {
        chunker.recycle(c.data);
    }
    chunker.push_packets(&ts[200 * PACKET..400 * PACKET], Instant::now(), &mut out);
    chunker.flush(&mut out);
    assert_eq!(held.to_vec(), copy, "a held chunk is never written over");
}
