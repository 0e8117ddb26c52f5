//! SiliconDust's discovery packets (UDP port 65001), as libhdhomerun's
//! `hdhomerun_pkt.h` describes them: a big-endian packet type and payload
//! length, the payload as tag-length-value items, and an Ethernet CRC-32 of
//! all that, little-endian. A length is one byte up to 127, else two: the
//! low 7 bits with the top bit set, then the rest.
//!
//! Written from that description; pure functions over bytes, so that every
//! malformed datagram is an error to ignore, never a panic.

/// A discover request.
pub(crate) const TYPE_DISCOVER_REQ: u16 = 0x0002;
/// A discover reply.
pub(crate) const TYPE_DISCOVER_RPY: u16 = 0x0003;

pub(crate) const TAG_DEVICE_TYPE: u8 = 0x01;
pub(crate) const TAG_DEVICE_ID: u8 = 0x02;
pub(crate) const TAG_TUNER_COUNT: u8 = 0x10;
pub(crate) const TAG_LINEUP_URL: u8 = 0x27;
pub(crate) const TAG_BASE_URL: u8 = 0x2A;
pub(crate) const TAG_DEVICE_AUTH_STR: u8 = 0x2B;

/// The device type of a tuner.
pub(crate) const DEVICE_TYPE_TUNER: u32 = 0x0000_0001;
/// "Any device type" / "any device id" in a request.
pub(crate) const WILDCARD: u32 = 0xFFFF_FFFF;

/// The longest value a two-byte length can say.
const MAX_VALUE: usize = 0x7F + (0xFF << 7);

/// Why a datagram was ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PacketError {
    #[error("{0} bytes: shorter than a header and a CRC")]
    Short(usize),
    #[error("the header says {said} payload bytes, the datagram holds {held}")]
    Length { said: usize, held: usize },
    #[error("CRC mismatch")]
    Crc,
    #[error("a tag's value runs past the payload")]
    Truncated,
    #[error("packet type {0:#06x} is not a discover request")]
    NotDiscover(u16),
    #[error("tag {0:#04x} should hold 4 bytes")]
    BadValue(u8),
}

/// A decoded packet: its type and its tags with their values, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Packet<'a> {
    pub kind: u16,
    pub tags: Vec<(u8, &'a [u8])>,
}

/// Decodes a datagram: header, CRC, then every tag.
pub(crate) fn decode(buf: &[u8]) -> Result<Packet<'_>, PacketError> {
    if buf.len() < 8 {
        return Err(PacketError::Short(buf.len()));
    }
    let kind = u16::from_be_bytes([buf[0], buf[1]]);
    let said = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    let held = buf.len() - 8;
    if said != held {
        return Err(PacketError::Length { said, held });
    }
    let (body, crc) = buf.split_at(4 + said);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(PacketError::Crc);
    }
    let mut tags = Vec::new();
    let mut rest = &body[4..];
    while let Some((&tag, after)) = rest.split_first() {
        let (len, after) = match after {
            [l, r @ ..] if l & 0x80 == 0 => (usize::from(*l), r),
            [l, h, r @ ..] => (usize::from(l & 0x7F) | (usize::from(*h) << 7), r),
            _ => return Err(PacketError::Truncated),
        };
        if after.len() < len {
            return Err(PacketError::Truncated);
        }
        let (value, after) = after.split_at(len);
        tags.push((tag, value));
        rest = after;
    }
    Ok(Packet { kind, tags })
}

/// Encodes a packet of `kind` with these tags (a value longer than a length
/// can say is cut to that length).
pub(crate) fn encode(kind: u16, tags: &[(u8, &[u8])]) -> Vec<u8> {
    let mut out = vec![0; 4];
    out[..2].copy_from_slice(&kind.to_be_bytes());
    for (tag, value) in tags {
        let value = &value[..value.len().min(MAX_VALUE)];
        out.push(*tag);
        let len = value.len();
        if len <= 0x7F {
            out.push(len as u8);
        } else {
            out.push((len & 0x7F) as u8 | 0x80);
            out.push((len >> 7) as u8);
        }
        out.extend_from_slice(value);
    }
    // Every value is bounded, but a packet can still hold too many: keep what fits.
    let payload = u16::try_from(out.len() - 4).unwrap_or(u16::MAX);
    out.truncate(4 + usize::from(payload));
    out[2..4].copy_from_slice(&payload.to_be_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// What a discover request asks for: `None` where it says nothing (any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Request {
    /// Every device type asked for (newer clients ask for several at once).
    pub device_types: Vec<u32>,
    pub device_id: Option<u32>,
}

impl Request {
    /// Whether a tuner with this id should answer.
    pub fn wants(&self, device_id: u32) -> bool {
        let type_ok =
            self.device_types.is_empty() || self.device_types.iter().any(|t| *t == WILDCARD || *t == DEVICE_TYPE_TUNER);
        let id_ok = self.device_id.is_none_or(|id| id == WILDCARD || id == device_id);
        type_ok && id_ok
    }
}

fn be_u32(tag: u8, value: &[u8]) -> Result<u32, PacketError> {
    <[u8; 4]>::try_from(value).map(u32::from_be_bytes).map_err(|_| PacketError::BadValue(tag))
}

/// Decodes a discover request (unknown tags are skipped).
pub(crate) fn parse_request(buf: &[u8]) -> Result<Request, PacketError> {
    let packet = decode(buf)?;
    if packet.kind != TYPE_DISCOVER_REQ {
        return Err(PacketError::NotDiscover(packet.kind));
    }
    let mut req = Request::default();
    for (tag, value) in packet.tags {
        match tag {
            TAG_DEVICE_TYPE => req.device_types.push(be_u32(tag, value)?),
            TAG_DEVICE_ID => req.device_id = Some(be_u32(tag, value)?),
            _ => {}
        }
    }
    Ok(req)
}

/// What a tuner says of itself in a discover reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub device_id: u32,
    pub tuner_count: u8,
    pub base_url: String,
    pub lineup_url: String,
    pub device_auth: String,
}

impl Reply {
    pub fn encode(&self) -> Vec<u8> {
        encode(
            TYPE_DISCOVER_RPY,
            &[
                (TAG_DEVICE_TYPE, &DEVICE_TYPE_TUNER.to_be_bytes()),
                (TAG_DEVICE_ID, &self.device_id.to_be_bytes()),
                (TAG_TUNER_COUNT, &[self.tuner_count]),
                (TAG_BASE_URL, self.base_url.as_bytes()),
                (TAG_LINEUP_URL, self.lineup_url.as_bytes()),
                (TAG_DEVICE_AUTH_STR, self.device_auth.as_bytes()),
            ],
        )
    }
}

/// libhdhomerun's check digit of a device id: the eight nibbles, every
/// other one through a fixed permutation, XORed together must be zero.
const ID_PERMUTATION: [u8; 16] = [0xA, 0x5, 0xF, 0x6, 0x7, 0xC, 0x1, 0xB, 0x9, 0x2, 0x8, 0xD, 0x4, 0x3, 0xE, 0x0];

fn id_check(id: u32) -> u8 {
    (0..8).fold(0u8, |acc, i| {
        let nibble = ((id >> (28 - 4 * i)) & 0xF) as u8;
        acc ^ if i % 2 == 0 { ID_PERMUTATION[usize::from(nibble)] } else { nibble }
    })
}

/// Whether libhdhomerun (and the apps built on it) accepts `id` as a device id.
pub(crate) fn valid_device_id(id: u32) -> bool {
    id_check(id) == 0
}

/// `id` with its last nibble set so that it is valid (the last nibble
/// enters the check as itself).
pub(crate) fn make_valid_device_id(id: u32) -> u32 {
    let without_last = id & !0xF;
    without_last | u32::from(id_check(without_last))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libhdhomerun's request for any tuner, as captured on a LAN (a
    /// published capture: device type tuner, device id wildcard).
    const CAPTURED_REQUEST: [u8; 20] = [
        0x00, 0x02, 0x00, 0x0c, 0x01, 0x04, 0x00, 0x00, 0x00, 0x01, 0x02, 0x04, 0xff, 0xff, 0xff, 0xff, 0x4e, 0x50,
        0x7f, 0x35,
    ];

    #[test]
    fn a_captured_request_decodes_and_encodes_to_the_same_bytes() {
        let req = parse_request(&CAPTURED_REQUEST).unwrap();
        assert_eq!(req, Request { device_types: vec![DEVICE_TYPE_TUNER], device_id: Some(WILDCARD) });
        assert!(req.wants(0x1234_5678));
        let again = encode(
            TYPE_DISCOVER_REQ,
            &[(TAG_DEVICE_TYPE, &DEVICE_TYPE_TUNER.to_be_bytes()), (TAG_DEVICE_ID, &WILDCARD.to_be_bytes())],
        );
        assert_eq!(again, CAPTURED_REQUEST);
    }

    #[test]
    fn a_reply_round_trips_with_long_values_in_two_byte_lengths() {
        let reply = Reply {
            device_id: make_valid_device_id(0x1040_2B3F),
            tuner_count: 4,
            base_url: format!("http://192.168.1.10:8080/{}", "x".repeat(200)),
            lineup_url: "http://192.168.1.10:8080/lineup.json".into(),
            device_auth: "tunerpool".into(),
        };
        let bytes = reply.encode();
        let p = decode(&bytes).unwrap();
        assert_eq!(p.kind, TYPE_DISCOVER_RPY);
        let get = |tag| p.tags.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v).unwrap();
        assert_eq!(get(TAG_BASE_URL), reply.base_url.as_bytes());
        assert_eq!(get(TAG_BASE_URL).len(), 225, "a length over 127 takes two bytes");
        assert_eq!(get(TAG_LINEUP_URL), reply.lineup_url.as_bytes());
        assert_eq!(get(TAG_DEVICE_AUTH_STR), b"tunerpool");
        assert_eq!(get(TAG_TUNER_COUNT), [4]);
        assert_eq!(get(TAG_DEVICE_ID), reply.device_id.to_be_bytes());
        assert_eq!(get(TAG_DEVICE_TYPE), DEVICE_TYPE_TUNER.to_be_bytes());
    }

    #[test]
    fn requests_for_another_type_or_device_are_not_ours() {
        let ours = 0x1234_5678;
        assert!(!Request { device_types: vec![5], device_id: None }.wants(ours));
        assert!(Request { device_types: vec![5, DEVICE_TYPE_TUNER], device_id: None }.wants(ours));
        assert!(!Request { device_types: vec![], device_id: Some(0x1111_1111) }.wants(ours));
        assert!(Request { device_types: vec![WILDCARD], device_id: Some(ours) }.wants(ours));
    }

    #[test]
    fn bad_packets_are_errors() {
        let mut wrong_crc = CAPTURED_REQUEST;
        wrong_crc[19] ^= 1;
        assert_eq!(parse_request(&wrong_crc), Err(PacketError::Crc));
        assert_eq!(parse_request(&CAPTURED_REQUEST[..7]), Err(PacketError::Short(7)));
        assert!(matches!(parse_request(&CAPTURED_REQUEST[..19]), Err(PacketError::Length { said: 12, held: 11 })));
        // A tag whose length runs past the payload, with a correct CRC.
        let truncated = {
            let mut b = vec![0x00, 0x02, 0x00, 0x03, 0x01, 0x04, 0x00];
            let crc = crc32fast::hash(&b);
            b.extend_from_slice(&crc.to_le_bytes());
            b
        };
        assert_eq!(parse_request(&truncated), Err(PacketError::Truncated));
        // A device id of 3 bytes.
        let short_id = encode(TYPE_DISCOVER_REQ, &[(TAG_DEVICE_ID, &[1, 2, 3])]);
        assert_eq!(parse_request(&short_id), Err(PacketError::BadValue(TAG_DEVICE_ID)));
        let reply = Reply {
            device_id: 1,
            tuner_count: 1,
            base_url: String::new(),
            lineup_url: String::new(),
            device_auth: String::new(),
        };
        assert_eq!(parse_request(&reply.encode()), Err(PacketError::NotDiscover(TYPE_DISCOVER_RPY)));
    }

    /// Every truncation and every single-bit flip of a request and a reply,
    /// and a deterministic stream of random datagrams: each decodes or is an
    /// error, none panics; a flipped bit never passes the CRC.
    #[test]
    fn no_datagram_panics() {
        let reply = Reply {
            device_id: 0x1040_2B3F,
            tuner_count: 2,
            base_url: "http://10.0.0.2:8080".into(),
            lineup_url: "http://10.0.0.2:8080/lineup.json".into(),
            device_auth: "a".repeat(130),
        }
        .encode();
        for packet in [CAPTURED_REQUEST.to_vec(), reply] {
            for n in 0..packet.len() {
                assert!(decode(&packet[..n]).is_err(), "a truncation to {n} bytes decoded");
            }
            for bit in 0..packet.len() * 8 {
                let mut b = packet.clone();
                b[bit / 8] ^= 1 << (bit % 8);
                assert!(decode(&b).is_err(), "bit {bit} flipped and the packet still decoded");
            }
        }
        // xorshift: the same datagrams on every run.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let len = (next() % 64) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Half of them with a consistent header and CRC, so the tags are parsed.
            if len >= 8 && next() % 2 == 0 {
                let payload = ((len - 8) as u16).to_be_bytes();
                b[0..4].copy_from_slice(&[0, 2, payload[0], payload[1]]);
                let crc = crc32fast::hash(&b[..len - 4]);
                b[len - 4..].copy_from_slice(&crc.to_le_bytes());
            }
            let _ = parse_request(&b);
        }
    }

    #[test]
    fn device_ids_are_made_valid_as_libhdhomerun_checks_them() {
        // A real device's id (from a published discovery capture) passes; one digit off does not.
        assert!(valid_device_id(0x1322_F2F9));
        assert!(!valid_device_id(0x1322_F2F8));
        for id in [0u32, 0x1234_5678, 0xFFFF_FFF0, 0xDEAD_BEEF] {
            let v = make_valid_device_id(id);
            assert!(valid_device_id(v), "{v:08X}");
            assert_eq!(v & !0xF, id & !0xF, "only the last digit changes");
            assert!(!valid_device_id(v ^ 1), "{v:08X} with its last digit changed");
        }
    }
}
