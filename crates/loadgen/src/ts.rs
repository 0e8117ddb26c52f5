//! MPEG-TS integrity checking of a byte stream as it arrives: packet sync and per-PID
//! continuity counters.
//!
//! The checker is fed the body chunks exactly as the socket delivers them (packets may be split
//! anywhere) and never allocates per chunk: whole packets are inspected in place, a packet split
//! across chunks only has its first six bytes copied.
//!
//! Rules, exactly:
//!
//! * **Alignment.** Bytes are skipped (`skipped_bytes`) until a `0x47` is found whose packet is
//!   followed, 188 bytes later, by another `0x47`; that packet is the first one counted. A stream
//!   that starts mid-packet or with junk therefore costs skipped bytes, not sync errors.
//! * **Sync errors.** Once aligned, every packet must start with `0x47` at the 188-byte cadence.
//!   Each time it does not, `sync_errors` goes up by one and the checker re-aligns as above (the
//!   bytes skipped while re-aligning go to `skipped_bytes`). One loss of sync counts once, however
//!   many bytes it takes to find the cadence again.
//! * **Continuity errors** (ISO/IEC 13818-1 §2.4.3.3). Per PID, the 4-bit `continuity_counter` of a
//!   packet with payload must be the previous one plus 1 (mod 16). Not checked: the null PID
//!   `0x1FFF`, packets without payload (adaptation_field_control `00`/`10`), packets with
//!   `transport_error_indicator` set (their header is unreliable; counted apart), and the first
//!   packet of a PID. A packet with `discontinuity_indicator` set may carry any counter (it
//!   restarts the PID). One repeated counter is a legal duplicate packet; a second repeat is an
//!   error. Each wrong counter counts once and the PID continues from it.

use serde::Serialize;

/// MPEG-TS packet size.
pub const PACKET: usize = 188;
/// The sync byte that starts every packet.
const SYNC: u8 = 0x47;
/// The null (stuffing) PID, whose counter means nothing.
const NULL_PID: u16 = 0x1fff;
/// Header bytes needed to judge a packet: 4 of header, adaptation_field_length, its flags.
const HDR: usize = 6;
/// "No counter seen yet" for a PID.
const NO_CC: u8 = 0xff;

/// What the checker found in one stream.
///
/// Exists so that a client's integrity result is a small `Copy` value that can be summed over
/// clients at the end of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TsStats {
    /// Packets counted (aligned, complete headers).
    pub packets: u64,
    /// Times the 188-byte sync cadence was lost after alignment.
    pub sync_errors: u64,
    /// Bytes discarded while looking for (or re-gaining) alignment.
    pub skipped_bytes: u64,
    /// Continuity counter jumps (see the module docs).
    pub continuity_errors: u64,
    /// Packets with `transport_error_indicator` set.
    pub transport_error_packets: u64,
}

/// Where the checker is in the byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Looking for a `0x47`.
    Searching,
    /// Inside a packet that starts with `0x47` but is only accepted if the next packet does too.
    Candidate,
    /// Aligned: packets follow at the 188-byte cadence.
    Locked,
}

/// Continuity state of one PID.
#[derive(Clone, Copy, Debug)]
struct PidState {
    pid: u16,
    /// Last counter of a payload packet, or [`NO_CC`].
    last: u8,
    /// The last packet repeated its predecessor's counter (one duplicate is allowed).
    dup: bool,
}

/// Incremental sync and continuity checker for one stream.
///
/// Exists because each client must verify what it received without buffering it: it keeps only
/// the position inside the current packet, the first bytes of a split packet and one small
/// entry per PID seen (a handful in a real stream).
#[derive(Debug)]
pub struct TsChecker {
    mode: Mode,
    /// Bytes of the current packet consumed (0..=188; 188 only for a finished candidate).
    pos: usize,
    /// First bytes of the current packet when it is split across chunks.
    hdr: [u8; HDR],
    pids: Vec<PidState>,
    stats: TsStats,
}

impl Default for TsChecker {
    fn default() -> Self {
        TsChecker::new()
    }
}

impl TsChecker {
    /// A checker at the start of a stream.
    pub fn new() -> Self {
        TsChecker {
            mode: Mode::Searching,
            pos: 0,
            hdr: [0; HDR],
            pids: Vec::with_capacity(8),
            stats: TsStats::default(),
        }
    }

    /// The counts so far.
    pub fn stats(&self) -> TsStats {
        self.stats
    }

    /// Check the next bytes of the stream.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match self.mode {
                Mode::Searching => match data.iter().position(|&b| b == SYNC) {
                    None => {
                        self.stats.skipped_bytes += data.len() as u64;
                        return;
                    }
                    Some(i) => {
                        self.stats.skipped_bytes += i as u64;
                        data = &data[i..];
                        self.mode = Mode::Candidate;
                        self.pos = 0;
                    }
                },
                Mode::Candidate if self.pos == PACKET => {
                    // The byte after the candidate packet decides whether we found the cadence.
                    if data[0] == SYNC {
                        let hdr = self.hdr;
                        self.on_packet(&hdr);
                        self.mode = Mode::Locked;
                    } else {
                        // A 0x47 inside payload or junk. Its bytes are gone; search on from here.
                        self.stats.skipped_bytes += PACKET as u64;
                        self.mode = Mode::Searching;
                    }
                    self.pos = 0;
                }
                Mode::Locked if self.pos == 0 && data[0] != SYNC => {
                    self.stats.sync_errors += 1;
                    self.mode = Mode::Searching;
                }
                Mode::Locked if self.pos == 0 && data.len() >= PACKET => {
                    // Fast path: a whole packet in place.
                    self.on_packet(&data[..HDR]);
                    data = &data[PACKET..];
                }
                Mode::Candidate | Mode::Locked => {
                    // Part of a packet: keep its header bytes, judge it once they are complete.
                    let n = (PACKET - self.pos).min(data.len());
                    let before = self.pos;
                    if before < HDR {
                        let k = (HDR - before).min(n);
                        self.hdr[before..before + k].copy_from_slice(&data[..k]);
                    }
                    self.pos += n;
                    data = &data[n..];
                    if self.mode == Mode::Locked {
                        if before < HDR && self.pos >= HDR {
                            let hdr = self.hdr;
                            self.on_packet(&hdr);
                        }
                        if self.pos == PACKET {
                            self.pos = 0;
                        }
                    }
                }
            }
        }
    }

    /// Judge one aligned packet from its first [`HDR`] bytes.
    fn on_packet(&mut self, h: &[u8]) {
        self.stats.packets += 1;
        if h[1] & 0x80 != 0 {
            self.stats.transport_error_packets += 1;
            return;
        }
        let pid = (u16::from(h[1] & 0x1f) << 8) | u16::from(h[2]);
        if pid == NULL_PID {
            return;
        }
        let afc = (h[3] >> 4) & 0x03;
        let cc = h[3] & 0x0f;
        let has_payload = afc & 0x01 != 0;
        let discontinuity = afc & 0x02 != 0 && h[4] > 0 && h[5] & 0x80 != 0;

        let idx = match self.pids.iter().position(|p| p.pid == pid) {
            Some(i) => i,
            None => {
                self.pids.push(PidState { pid, last: NO_CC, dup: false });
                self.pids.len() - 1
            }
        };
        let st = &mut self.pids[idx];
        if discontinuity {
            st.last = if has_payload { cc } else { NO_CC };
            st.dup = false;
            return;
        }
        if !has_payload {
            return;
        }
        if st.last == NO_CC || cc == (st.last + 1) & 0x0f {
            st.dup = false;
        } else if cc == st.last && !st.dup {
            st.dup = true;
        } else {
            self.stats.continuity_errors += 1;
            st.dup = false;
        }
        st.last = cc;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// adaptation_field_control values.
    const PAYLOAD: u8 = 0b01;
    const AF_ONLY: u8 = 0b10;
    const AF_PAYLOAD: u8 = 0b11;

    /// A packet of `pid` with counter `cc`; an adaptation field (with the discontinuity flag if
    /// asked) when `afc` has one; the rest is 0xFF stuffing.
    fn packet(pid: u16, cc: u8, afc: u8, discontinuity: bool) -> [u8; PACKET] {
        let mut p = [0xff; PACKET];
        p[0] = SYNC;
        p[1] = (pid >> 8) as u8 & 0x1f;
        p[2] = pid as u8;
        p[3] = (afc << 4) | (cc & 0x0f);
        if afc & 0b10 != 0 {
            p[4] = 1;
            p[5] = if discontinuity { 0x80 } else { 0x00 };
        }
        p
    }

    /// `n` clean packets per PID, interleaved, counters running from 0 (wrapping).
    fn clean_stream(pids: &[u16], n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            for &pid in pids {
                out.extend_from_slice(&packet(pid, i as u8, PAYLOAD, false));
            }
        }
        out
    }

    fn check_in_chunks(data: &[u8], chunk: usize) -> TsStats {
        let mut c = TsChecker::new();
        for part in data.chunks(chunk) {
            c.feed(part);
        }
        c.stats()
    }

    #[test]
    fn clean_stream_any_split_has_no_errors() {
        let data = clean_stream(&[0x100, 0x101, 0], 40);
        for chunk in [1, 2, 5, 6, 7, 100, 187, 188, 189, 376, 1000, data.len()] {
            let s = check_in_chunks(&data, chunk);
            // Packet 0 is confirmed by packet 1's sync byte, so every packet counts.
            assert_eq!(s, TsStats { packets: 120, ..TsStats::default() }, "chunk size {chunk}");
        }
    }

    #[test]
    fn counter_gap_is_one_error_per_jump() {
        let mut data = Vec::new();
        for cc in [13u8, 14, 15, 0, 1, 4, 5, 6, 7] {
            data.extend_from_slice(&packet(0x100, cc, PAYLOAD, false));
        }
        for chunk in [1, 50, 188, 10_000] {
            let s = check_in_chunks(&data, chunk);
            assert_eq!(s.continuity_errors, 1, "1 -> 4 only (15 -> 0 wraps); chunk {chunk}");
            assert_eq!(s.packets, 9);
            assert_eq!(s.sync_errors, 0);
        }
    }

    #[test]
    fn pids_are_independent() {
        let mut data = Vec::new();
        for (pid, cc) in [(1u16, 3u8), (2, 9), (1, 4), (2, 10), (1, 5), (2, 12)] {
            data.extend_from_slice(&packet(pid, cc, PAYLOAD, false));
        }
        assert_eq!(check_in_chunks(&data, 7).continuity_errors, 1);
    }

    #[test]
    fn one_duplicate_is_allowed_two_are_not() {
        let mut data = Vec::new();
        for cc in [0u8, 1, 1, 2, 2, 2, 3] {
            data.extend_from_slice(&packet(0x100, cc, PAYLOAD, false));
        }
        assert_eq!(check_in_chunks(&data, 188).continuity_errors, 1);
    }

    #[test]
    fn packets_without_payload_and_null_pid_are_ignored() {
        let mut data = Vec::new();
        data.extend_from_slice(&packet(0x100, 0, PAYLOAD, false));
        data.extend_from_slice(&packet(0x100, 9, AF_ONLY, false)); // counter does not count
        data.extend_from_slice(&packet(0x100, 1, AF_PAYLOAD, false));
        data.extend_from_slice(&packet(NULL_PID, 7, PAYLOAD, false));
        data.extend_from_slice(&packet(NULL_PID, 3, PAYLOAD, false));
        data.extend_from_slice(&packet(0x100, 4, 0b00, false)); // reserved afc: no payload
        data.extend_from_slice(&packet(0x100, 2, PAYLOAD, false));
        let s = check_in_chunks(&data, 100);
        assert_eq!(s.continuity_errors, 0);
        assert_eq!(s.packets, 7);
    }

    #[test]
    fn discontinuity_indicator_allows_a_jump() {
        let mut data = Vec::new();
        data.extend_from_slice(&packet(0x100, 6, PAYLOAD, false));
        data.extend_from_slice(&packet(0x100, 0, AF_PAYLOAD, true)); // signalled: fine
        data.extend_from_slice(&packet(0x100, 1, PAYLOAD, false));
        data.extend_from_slice(&packet(0x100, 9, AF_ONLY, true)); // signalled without payload
        data.extend_from_slice(&packet(0x100, 12, PAYLOAD, false)); // so any counter next
        data.extend_from_slice(&packet(0x100, 13, PAYLOAD, false));
        data.extend_from_slice(&packet(0x100, 0, AF_PAYLOAD, false)); // AF, flag not set: error
        assert_eq!(check_in_chunks(&data, 33).continuity_errors, 1);
    }

    #[test]
    fn transport_error_packets_are_counted_not_checked() {
        let mut data = Vec::new();
        data.extend_from_slice(&packet(0x100, 0, PAYLOAD, false));
        let mut bad = packet(0x100, 9, PAYLOAD, false);
        bad[1] |= 0x80;
        data.extend_from_slice(&bad);
        data.extend_from_slice(&packet(0x100, 1, PAYLOAD, false));
        let s = check_in_chunks(&data, 188);
        assert_eq!((s.transport_error_packets, s.continuity_errors, s.packets), (1, 0, 3));
    }

    #[test]
    fn leading_junk_is_skipped_not_an_error() {
        // Junk that contains a lone 0x47 (not followed by one 188 bytes later), then a stream
        // that starts mid-packet.
        let stream = clean_stream(&[0x100], 10);
        let mut data = vec![0u8; 300];
        data[20] = SYNC;
        data.extend_from_slice(&stream[100..]);
        for chunk in [1, 64, 188, 5000] {
            let s = check_in_chunks(&data, chunk);
            assert_eq!(s.sync_errors, 0, "chunk {chunk}");
            assert_eq!(s.packets, 9, "chunk {chunk}");
            assert_eq!(s.continuity_errors, 0, "chunk {chunk}");
            // The 20 zeros, the false candidate's 188 bytes, the rest of the junk and of the
            // partial first packet: everything before packet 1.
            assert_eq!(s.skipped_bytes, 300 + 88, "chunk {chunk}");
        }
    }

    #[test]
    fn inserted_junk_is_one_sync_error_then_resync() {
        let stream = clean_stream(&[0x100, 0x101], 10);
        let mut data = stream[..5 * PACKET].to_vec();
        data.extend_from_slice(&[0u8; 13]);
        data.extend_from_slice(&stream[5 * PACKET..]);
        for chunk in [1, 10, 188, 200, 100_000] {
            let s = check_in_chunks(&data, chunk);
            assert_eq!(s.sync_errors, 1, "chunk {chunk}");
            assert_eq!(s.skipped_bytes, 13, "chunk {chunk}");
            assert_eq!(s.packets, 20, "chunk {chunk}");
            assert_eq!(s.continuity_errors, 0, "nothing was lost; chunk {chunk}");
        }
    }

    #[test]
    fn lost_bytes_are_a_sync_error_and_a_lost_packet_a_continuity_error() {
        let stream = clean_stream(&[0x100], 20);
        // 50 bytes cut out of packet 3: its header was fine, the next boundary is not. Packet 4's
        // header is swallowed while sync is lost, so its counter is missed too.
        let mut data = stream[..3 * PACKET + 60].to_vec();
        data.extend_from_slice(&stream[3 * PACKET + 110..]);
        for chunk in [1, 64, 188, 10_000] {
            let s = check_in_chunks(&data, chunk);
            assert_eq!((s.sync_errors, s.continuity_errors, s.packets), (1, 1, 19), "chunk {chunk}");
            assert_eq!(s.skipped_bytes, 138, "rest of packet 4; chunk {chunk}");
        }

        // A whole packet missing keeps the cadence but breaks the counter.
        let mut data = stream[..7 * PACKET].to_vec();
        data.extend_from_slice(&stream[8 * PACKET..]);
        let s = check_in_chunks(&data, 1000);
        assert_eq!((s.sync_errors, s.continuity_errors, s.packets), (0, 1, 19));
    }

    #[test]
    fn non_ts_body_counts_only_skipped_bytes() {
        let html = b"<html><body>Your subscription has expired</body></html>".repeat(20);
        let s = check_in_chunks(&html, 77);
        assert_eq!(s.packets, 0);
        assert_eq!(s.sync_errors, 0);
        assert_eq!(s.skipped_bytes, html.len() as u64);
    }

    /// The real sample the fake provider loops: clean on its own, and looping it (as the fake
    /// does, without a discontinuity_indicator) costs exactly one continuity error per PID.
    #[test]
    fn real_sample_is_clean_and_its_loop_point_is_five_jumps() {
        let sample = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/media/sample-720p.ts"))
            .expect("testdata/media/sample-720p.ts");
        let packets = (sample.len() / PACKET) as u64;
        let s = check_in_chunks(&sample, 1316);
        assert_eq!(s, TsStats { packets, ..TsStats::default() });

        let mut looped = sample.clone();
        looped.extend_from_slice(&sample);
        let s = check_in_chunks(&looped, 6250);
        // PAT, PMT, SDT, video and audio each restart at counter 0.
        assert_eq!((s.packets, s.sync_errors, s.continuity_errors), (2 * packets, 0, 5));
    }
}
