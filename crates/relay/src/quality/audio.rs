//! Audio codec from the PMT, and channel count / sample rate from the first frame header of the elementary stream
//! (ADTS, MPEG audio, AC-3, E-AC-3). These headers are a few fixed-position fields, read byte-wise.

use serde::{Deserialize, Serialize};

/// Audio codec of a source's audio track, named as ffprobe's `codec_name` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AudioCodec {
    /// AAC in ADTS frames (stream_type 0x0F).
    Aac,
    /// AAC in LATM/LOAS (stream_type 0x11); channels are not read from it.
    AacLatm,
    /// MPEG-1/2 audio layer I or II (stream_type 0x03/0x04).
    Mp2,
    /// MPEG audio layer III (stream_type 0x03/0x04 with layer III frames).
    Mp3,
    /// Dolby Digital (stream_type 0x81, or 0x06 with an AC-3 descriptor).
    Ac3,
    /// Dolby Digital Plus (stream_type 0x87, or 0x06 with an E-AC-3 descriptor).
    Eac3,
    /// Opus (0x06 with the "Opus" registration); channels are not read from it.
    Opus,
}

impl AudioCodec {
    /// The codec for a PMT entry: its stream_type and its ES descriptors (tag, body).
    pub(crate) fn from_pmt(stream_type: u8, descriptors: &[u8]) -> Option<AudioCodec> {
        match stream_type {
            0x03 | 0x04 => Some(AudioCodec::Mp2),
            0x0f => Some(AudioCodec::Aac),
            0x11 => Some(AudioCodec::AacLatm),
            0x81 => Some(AudioCodec::Ac3),
            0x87 => Some(AudioCodec::Eac3),
            0x06 => descriptors_iter(descriptors).find_map(|(tag, body)| match (tag, body) {
                (0x6a, _) => Some(AudioCodec::Ac3),
                (0x7a, _) => Some(AudioCodec::Eac3),
                (0x05, [b'A', b'C', b'-', b'3', ..]) => Some(AudioCodec::Ac3),
                (0x05, [b'E', b'A', b'C', b'3', ..]) => Some(AudioCodec::Eac3),
                (0x05, [b'O', b'p', b'u', b's', ..]) => Some(AudioCodec::Opus),
                _ => None,
            }),
            _ => None,
        }
    }

    /// Name used in reasons.
    pub(crate) fn label(self) -> &'static str {
        match self {
            AudioCodec::Aac => "aac",
            AudioCodec::AacLatm => "aac_latm",
            AudioCodec::Mp2 => "mp2",
            AudioCodec::Mp3 => "mp3",
            AudioCodec::Ac3 => "ac3",
            AudioCodec::Eac3 => "eac3",
            AudioCodec::Opus => "opus",
        }
    }
}

/// The ISO 639 language code from an ES descriptor loop, if one is there and printable.
pub(crate) fn language(descriptors: &[u8]) -> Option<String> {
    descriptors_iter(descriptors).find_map(|(tag, body)| match (tag, body) {
        (0x0a, [a, b, c, ..]) if [a, b, c].iter().all(|x| x.is_ascii_alphabetic()) => {
            Some(String::from_utf8_lossy(&[*a, *b, *c]).to_ascii_lowercase())
        }
        _ => None,
    })
}

/// (tag, body) of each whole descriptor in a descriptor loop.
fn descriptors_iter(mut d: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let [tag, len, rest @ ..] = d else { return None };
        let body = rest.get(..usize::from(*len))?;
        d = &rest[usize::from(*len)..];
        Some((*tag, body))
    })
}

/// What one audio frame header says.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AudioParams {
    /// The codec, refined from the frame (MPEG audio layer III is mp3, not mp2).
    pub codec: AudioCodec,
    pub channels: Option<u8>,
    pub sample_rate: Option<u32>,
    pub profile: Option<String>,
}

/// Finds the first frame header of `codec` in `es` (the start of an audio PES's elementary stream).
pub(crate) fn find_params(codec: AudioCodec, es: &[u8]) -> Option<AudioParams> {
    match codec {
        AudioCodec::Aac => (0..es.len()).find_map(|i| adts(es.get(i..i + 7)?)),
        AudioCodec::Mp2 | AudioCodec::Mp3 => (0..es.len()).find_map(|i| mpeg_audio(es.get(i..i + 4)?)),
        AudioCodec::Ac3 | AudioCodec::Eac3 => (0..es.len()).find_map(|i| dolby(es.get(i..i + 8)?)),
        AudioCodec::AacLatm | AudioCodec::Opus => None,
    }
}

const AAC_RATES: [u32; 13] = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

/// ADTS header (ISO/IEC 14496-3 1.A.2.2): syncword 0xFFF, layer 00.
fn adts(h: &[u8]) -> Option<AudioParams> {
    if h[0] != 0xff || h[1] & 0xf6 != 0xf0 {
        return None;
    }
    let sample_rate = *AAC_RATES.get(usize::from((h[2] >> 2) & 0x0f))?;
    let config = ((h[2] & 0x01) << 2) | (h[3] >> 6);
    let channels = match config {
        0 => None, // given by a program_config_element in the stream
        7 => Some(8),
        n => Some(n),
    };
    let profile = ["Main", "LC", "SSR", "LTP"][usize::from(h[2] >> 6)];
    Some(AudioParams {
        codec: AudioCodec::Aac,
        channels,
        sample_rate: Some(sample_rate),
        profile: Some(profile.to_string()),
    })
}

/// MPEG-1/2 audio frame header (ISO/IEC 11172-3 2.4.1.3).
fn mpeg_audio(h: &[u8]) -> Option<AudioParams> {
    if h[0] != 0xff || h[1] & 0xe0 != 0xe0 {
        return None;
    }
    let version = (h[1] >> 3) & 0x03; // 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
    let layer = (h[1] >> 1) & 0x03; // 3: I, 2: II, 1: III
    let bitrate_index = h[2] >> 4;
    let rate_index = (h[2] >> 2) & 0x03;
    if version == 1 || layer == 0 || bitrate_index == 0x0f || rate_index == 3 {
        return None;
    }
    let base = [44100, 48000, 32000][usize::from(rate_index)];
    let sample_rate = match version {
        3 => base,
        2 => base / 2,
        _ => base / 4,
    };
    Some(AudioParams {
        codec: if layer == 1 { AudioCodec::Mp3 } else { AudioCodec::Mp2 },
        channels: Some(if h[3] >> 6 == 3 { 1 } else { 2 }),
        sample_rate: Some(sample_rate),
        profile: None,
    })
}

/// AC-3 (ATSC A/52 5.4.1-5.4.2) or E-AC-3 (Annex E) sync frame header, told apart by bsid.
fn dolby(h: &[u8]) -> Option<AudioParams> {
    if h[0] != 0x0b || h[1] != 0x77 {
        return None;
    }
    const ACMOD_CHANNELS: [u8; 8] = [2, 1, 2, 3, 3, 4, 4, 5];
    let bsid = h[5] >> 3;
    if bsid <= 10 {
        // AC-3: syncinfo (crc1, fscod|frmsizecod), then bsi: bsid, bsmod, acmod, optional mix levels, lfeon.
        let fscod = h[4] >> 6;
        let sample_rate = *[48000, 44100, 32000].get(usize::from(fscod))?;
        let acmod = h[6] >> 5;
        let mut bit = 3; // bits of h[6] used by acmod
        if acmod & 0x01 != 0 && acmod != 1 {
            bit += 2; // cmixlev
        }
        if acmod & 0x04 != 0 {
            bit += 2; // surmixlev
        }
        if acmod == 2 {
            bit += 2; // dsurmod
        }
        let word = u16::from_be_bytes([h[6], h[7]]);
        let lfeon = (word >> (15 - bit)) & 1;
        Some(AudioParams {
            codec: AudioCodec::Ac3,
            channels: Some(ACMOD_CHANNELS[usize::from(acmod)] + lfeon as u8),
            sample_rate: Some(sample_rate),
            profile: None,
        })
    } else if bsid <= 16 {
        // E-AC-3: strmtyp, substreamid, frmsiz, then fscod, fscod2/numblkscod, acmod, lfeon.
        let fscod = h[4] >> 6;
        let sample_rate = match fscod {
            3 => *[24000, 22050, 16000].get(usize::from((h[4] >> 4) & 0x03))?,
            n => [48000, 44100, 32000][usize::from(n)],
        };
        let acmod = (h[4] >> 1) & 0x07;
        Some(AudioParams {
            codec: AudioCodec::Eac3,
            channels: Some(ACMOD_CHANNELS[usize::from(acmod)] + (h[4] & 0x01)),
            sample_rate: Some(sample_rate),
            profile: None,
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adts_header() {
        // AAC LC, 48 kHz, stereo.
        let p = find_params(AudioCodec::Aac, &[0x00, 0xff, 0xf1, 0x4c, 0x80, 0x2e, 0x7f, 0xfc]).unwrap();
        assert_eq!((p.channels, p.sample_rate, p.profile.as_deref()), (Some(2), Some(48000), Some("LC")));
    }

    #[test]
    fn mpeg_audio_header() {
        // MPEG-1 layer II, 128 kbit/s, 48 kHz, stereo / mono.
        let p = find_params(AudioCodec::Mp2, &[0xff, 0xfd, 0x84, 0x00]).unwrap();
        assert_eq!((p.codec, p.channels, p.sample_rate), (AudioCodec::Mp2, Some(2), Some(48000)));
        let p = find_params(AudioCodec::Mp2, &[0xff, 0xfb, 0x94, 0xc0]).unwrap();
        assert_eq!((p.codec, p.channels, p.sample_rate), (AudioCodec::Mp3, Some(1), Some(48000)));
    }

    #[test]
    fn ac3_channels() {
        // 48 kHz, bsid 8; acmod 7 (3/2) with cmixlev + surmixlev, lfeon = 1 → 5.1.
        let h = [0x0b, 0x77, 0, 0, 0x1e, 0x40, 0b1110_0001, 0b0100_0000];
        let p = find_params(AudioCodec::Ac3, &h).unwrap();
        assert_eq!((p.codec, p.channels, p.sample_rate), (AudioCodec::Ac3, Some(6), Some(48000)));
        // acmod 2 (2/0) with dsurmod, lfeon = 0 → 2.
        let h = [0x0b, 0x77, 0, 0, 0x1e, 0x40, 0b0100_0000, 0];
        assert_eq!(find_params(AudioCodec::Ac3, &h).unwrap().channels, Some(2));
    }

    #[test]
    fn eac3_channels() {
        // bsid 16, 48 kHz, acmod 7, lfeon 1.
        let h = [0x0b, 0x77, 0x00, 0xff, 0b0011_1111, 16 << 3, 0, 0];
        let p = find_params(AudioCodec::Eac3, &h).unwrap();
        assert_eq!((p.codec, p.channels, p.sample_rate), (AudioCodec::Eac3, Some(6), Some(48000)));
    }

    #[test]
    fn pmt_codecs_and_language() {
        assert_eq!(AudioCodec::from_pmt(0x0f, &[]), Some(AudioCodec::Aac));
        assert_eq!(AudioCodec::from_pmt(0x06, &[0x0a, 4, b'd', b'e', b'u', 0, 0x6a, 1, 0]), Some(AudioCodec::Ac3));
        assert_eq!(AudioCodec::from_pmt(0x06, &[0x56, 0]), None); // teletext
        assert_eq!(AudioCodec::from_pmt(0x06, &[0x6a, 9]), None); // descriptor runs past the loop
        assert_eq!(language(&[0x0a, 4, b'D', b'E', b'U', 0]).as_deref(), Some("deu"));
        assert_eq!(language(&[0x0a, 2, b'd', b'e']), None);
    }
}
