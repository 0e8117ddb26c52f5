//! Upstream junk never crashes a session: arbitrary bytes through every TS tool.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use tunerpool_relay::ts::{probe, Aligner, Chunker, Continuity, KeyframeDetector, PACKET};

/// Bytes that often look like TS: sync bytes at cadence, PAT/PMT-ish headers, random payload.
fn ts_like() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        (any::<u8>(), 0u16..0x20, any::<u8>(), prop::collection::vec(any::<u8>(), 0..200), any::<bool>()),
        0..40,
    )
    .prop_map(|packets| {
        let mut out = Vec::new();
        for (b1, pid, b3, body, sync) in packets {
            out.push(if sync { 0x47 } else { b1 });
            out.push(b1 & 0xe0);
            out.push(pid as u8);
            out.push(b3);
            out.extend_from_slice(&body);
            out.resize(out.len().div_ceil(PACKET).max(1) * PACKET, 0xff);
        }
        out
    })
}

fn run_all(data: &[u8], pieces: &[usize]) {
    let _ = probe(data);
    let mut a = Aligner::new();
    let mut aligned = BytesMut::new();
    let mut pos = 0;
    for &n in pieces.iter().cycle().take(data.len() + 1) {
        if pos >= data.len() {
            break;
        }
        let n = n.clamp(1, data.len() - pos);
        a.push(&data[pos..pos + n], &mut aligned);
        pos += n;
    }
    assert_eq!(aligned.len() % PACKET, 0);
    assert!(aligned.len() as u64 + a.discarded() <= data.len() as u64);
    let mut d = KeyframeDetector::new();
    let mut off = 0;
    while let Some(k) = d.scan(&data[off..]) {
        off += (k + 1) * PACKET;
        if off > data.len() {
            break;
        }
    }
    let _ = KeyframeDetector::new().scan(&aligned);
    let mut c = Continuity::new();
    c.push(data);
    c.push(&aligned);
    let aligned_len = aligned.len();
    let mut ch = Chunker::new(1000, Duration::from_millis(50));
    let mut out = Vec::new();
    ch.push(Bytes::copy_from_slice(data), Instant::now(), &mut out);
    ch.push(aligned.freeze(), Instant::now(), &mut out);
    ch.flush(&mut out);
    assert_eq!(out.iter().map(|c| c.data.len()).sum::<usize>(), data.len() + aligned_len);
}

/// The relay's one-copy path (`Aligner::push_with` into `Chunker::push_packets`, reads cut anywhere, evicted
/// chunks recycled) gives exactly the packets the plain aligner gives: none lost, none duplicated, in order, every
/// chunk whole packets, and a recycled buffer never changes a chunk already handed out.
fn one_copy_path(data: &[u8], pieces: &[usize], target: usize) {
    let mut plain = Aligner::new();
    let mut expected = BytesMut::new();
    let mut a = Aligner::new();
    let mut ch = Chunker::new(target, Duration::from_millis(50));
    let mut out = Vec::new();
    let mut chunks: Vec<(Bytes, Vec<u8>)> = Vec::new();
    let mut pos = 0;
    let now = Instant::now();
    for &n in pieces.iter().cycle().take(data.len() + 1) {
        if pos >= data.len() {
            break;
        }
        let n = n.clamp(1, data.len() - pos);
        plain.push(&data[pos..pos + n], &mut expected);
        a.push_with(&data[pos..pos + n], |packets| ch.push_packets(packets, now, &mut out));
        pos += n;
        for c in out.drain(..) {
            assert_eq!(c.data.len() % PACKET, 0);
            let copy = c.data.to_vec();
            if chunks.len().is_multiple_of(2) {
                // Evicted and dropped by every viewer at once: its buffer comes back for the next chunks.
                ch.recycle(c.data);
                chunks.push((Bytes::from(copy.clone()), copy));
            } else {
                // Still held by a viewer when the ring evicts it: it must not be reused.
                ch.recycle(c.data.clone());
                chunks.push((c.data, copy));
            }
        }
    }
    ch.flush(&mut out);
    chunks.extend(out.drain(..).map(|c| (c.data.clone(), c.data.to_vec())));
    for (held, copy) in &chunks {
        assert_eq!(&held[..], &copy[..], "a chunk changed after it was handed out");
    }
    let joined: Vec<u8> = chunks.iter().flat_map(|(_, c)| c.iter().copied()).collect();
    assert_eq!(joined, expected.to_vec());
    assert_eq!(a.discarded(), plain.discarded());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_one_copy_path_keeps_every_packet_once(data in ts_like(), junk in prop::collection::vec(any::<u8>(), 0..400),
                                                  pieces in prop::collection::vec(1usize..700, 1..8),
                                                  target in 1usize..6000) {
        let mut input = junk;
        input.extend_from_slice(&data);
        one_copy_path(&input, &pieces, target);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..3000),
                                   pieces in prop::collection::vec(1usize..500, 1..8)) {
        run_all(&data, &pieces);
    }

    #[test]
    fn ts_like_bytes_never_panic(data in ts_like(), pieces in prop::collection::vec(1usize..500, 1..8)) {
        run_all(&data, &pieces);
    }
}
