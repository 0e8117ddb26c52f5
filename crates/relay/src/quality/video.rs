//! Video parameters from the start of an elementary stream: the H.264 SPS (`h264-reader`), the HEVC SPS
//! (`scuffle-h265`) and the MPEG-1/2 sequence header (fixed-position fields, read byte-wise).
//!
//! Everything here is pure: given the first bytes of a video PES (after its PES header), find the parameter set and
//! turn it into a [`VideoParams`], or an error saying why it can't be read.

use std::panic::{catch_unwind, AssertUnwindSafe};

use h264_reader::nal::sps::{FrameMbsFlags, SeqParameterSet};
use h264_reader::rbsp::{BitReader, ByteReader};
use serde::{Deserialize, Serialize};

/// Video codec of a source, named as ffprobe's `codec_name` names it, so the report reads like ffprobe's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum VideoCodec {
    /// MPEG-1 video (stream_type 0x01).
    #[serde(rename = "mpeg1video")]
    Mpeg1,
    /// MPEG-2 video (stream_type 0x02): SD broadcast.
    #[serde(rename = "mpeg2video")]
    Mpeg2,
    /// H.264 / AVC (stream_type 0x1B).
    #[serde(rename = "h264")]
    H264,
    /// H.265 / HEVC (stream_type 0x24).
    #[serde(rename = "hevc")]
    Hevc,
}

impl VideoCodec {
    /// The codec for a PMT stream_type, if it is a video type the analyzer knows.
    pub(crate) fn from_stream_type(stream_type: u8) -> Option<VideoCodec> {
        match stream_type {
            0x01 => Some(VideoCodec::Mpeg1),
            0x02 => Some(VideoCodec::Mpeg2),
            0x1b => Some(VideoCodec::H264),
            0x24 => Some(VideoCodec::Hevc),
            _ => None,
        }
    }

    /// Human name for reasons ("no H.264 SPS …").
    pub(crate) fn label(self) -> &'static str {
        match self {
            VideoCodec::Mpeg1 => "MPEG-1 video",
            VideoCodec::Mpeg2 => "MPEG-2 video",
            VideoCodec::H264 => "H.264",
            VideoCodec::Hevc => "HEVC",
        }
    }

    /// What carries this codec's parameters, for reasons.
    pub(crate) fn header_name(self) -> &'static str {
        match self {
            VideoCodec::Mpeg1 | VideoCodec::Mpeg2 => "sequence header",
            VideoCodec::H264 | VideoCodec::Hevc => "SPS",
        }
    }
}

/// What one parameter set (SPS or sequence header) says.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct VideoParams {
    pub profile: Option<String>,
    pub level: Option<u8>,
    pub width: u32,
    pub height: u32,
    /// Frames per second from the stream's own timing information (H.264/HEVC VUI, MPEG-2 frame_rate_code).
    pub fps: Option<f64>,
    pub interlaced: Option<bool>,
}

/// Largest width or height believed; anything above (or below [`MIN_DIM`]) makes the source unreadable.
const MAX_DIM: u32 = 8192;
const MIN_DIM: u32 = 16;

/// Looks for the codec's parameter set in `es` (the start of a PES's elementary stream). `complete`: `es` is the
/// whole PES (or all of it that will be looked at), so a NAL unit running to its end is whole. `None` when there is
/// no parameter set in it (or the one there may still be cut off); otherwise the parameters or why they are
/// unreadable.
pub(crate) fn find_params(codec: VideoCodec, es: &[u8], complete: bool) -> Option<Result<VideoParams, String>> {
    match codec {
        VideoCodec::H264 | VideoCodec::Hevc => {
            let mut units = NalUnits { es, pos: 0 };
            let nal = loop {
                let (nal, terminated) = units.next()?;
                let is_sps = match codec {
                    VideoCodec::H264 => nal.first().is_some_and(|b| b & 0x1f == 7),
                    _ => nal.first().is_some_and(|b| (b >> 1) & 0x3f == 33),
                };
                if is_sps {
                    if !terminated && !complete {
                        return None; // may go on in bytes not seen yet
                    }
                    break nal;
                }
            };
            let parsed = if codec == VideoCodec::H264 { h264_sps(nal) } else { hevc_sps(nal) };
            Some(parsed.and_then(check_dimensions))
        }
        VideoCodec::Mpeg1 | VideoCodec::Mpeg2 => mpeg2_sequence(es, complete).map(|r| r.and_then(check_dimensions)),
    }
}

fn check_dimensions(p: VideoParams) -> Result<VideoParams, String> {
    let ok = |d: u32| (MIN_DIM..=MAX_DIM).contains(&d);
    if ok(p.width) && ok(p.height) {
        Ok(p)
    } else {
        Err(format!("absurd picture size {}x{}", p.width, p.height))
    }
}

/// A frame rate taken from stream timing only when it is plausible (0 < fps ≤ 300).
fn plausible_fps(fps: f64) -> Option<f64> {
    (fps.is_finite() && fps > 0.0 && fps <= 300.0).then_some(fps)
}

/// Runs a third-party parser over untrusted bytes so that a bug in it (an arithmetic overflow on a crafted SPS)
/// costs this source its parameters, never the relay a panic.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| Err(format!("{what} parser failed on malformed data")))
}

fn h264_sps(nal: &[u8]) -> Result<VideoParams, String> {
    guarded("H.264 SPS", || {
        let sps = SeqParameterSet::from_bits(BitReader::new(ByteReader::skipping_h264_header(nal)))
            .map_err(|e| format!("H.264 SPS unreadable: {e:?}"))?;
        let (width, height) = sps.pixel_dimensions().map_err(|e| format!("H.264 SPS unreadable: {e:?}"))?;
        let fps = sps
            .vui_parameters
            .as_ref()
            .and_then(|v| v.timing_info.as_ref())
            .filter(|t| t.num_units_in_tick > 0 && t.time_scale > 0)
            .and_then(|t| plausible_fps(f64::from(t.time_scale) / (2.0 * f64::from(t.num_units_in_tick))));
        Ok(VideoParams {
            profile: Some(h264_profile(sps.profile_idc.into(), sps.constraint_flags.into())),
            level: Some(sps.level_idc),
            width,
            height,
            fps,
            interlaced: Some(matches!(sps.frame_mbs_flags, FrameMbsFlags::Fields { .. })),
        })
    })
}

/// H.264 profile names as ffprobe prints them.
fn h264_profile(profile_idc: u8, constraint_flags: u8) -> String {
    let set = |n: u8| constraint_flags & (0x80 >> n) != 0;
    match profile_idc {
        66 if set(1) => "Constrained Baseline",
        66 => "Baseline",
        77 => "Main",
        88 => "Extended",
        100 => "High",
        110 if set(3) => "High 10 Intra",
        110 => "High 10",
        122 if set(3) => "High 4:2:2 Intra",
        122 => "High 4:2:2",
        244 if set(3) => "High 4:4:4 Intra",
        244 => "High 4:4:4 Predictive",
        44 => "CAVLC 4:4:4",
        other => return format!("profile {other}"),
    }
    .to_string()
}

fn hevc_sps(nal: &[u8]) -> Result<VideoParams, String> {
    guarded("HEVC SPS", || {
        let sps = scuffle_h265::SpsNALUnit::parse(nal).map_err(|e| format!("HEVC SPS unreadable: {e}"))?.rbsp;
        // The crate's cropped_width()/cropped_height() subtract unchecked; a hostile conformance window must give
        // an error here, not an overflow.
        let cw = &sps.conformance_window;
        let crop = |full: u64, sub: u8, a: u64, b: u64| {
            a.checked_add(b)
                .and_then(|s| s.checked_mul(u64::from(sub)))
                .and_then(|s| full.checked_sub(s))
                .and_then(|d| u32::try_from(d).ok())
        };
        let width = crop(
            sps.pic_width_in_luma_samples.get(),
            sps.sub_width_c(),
            cw.conf_win_left_offset,
            cw.conf_win_right_offset,
        );
        let height = crop(
            sps.pic_height_in_luma_samples.get(),
            sps.sub_height_c(),
            cw.conf_win_top_offset,
            cw.conf_win_bottom_offset,
        );
        let (Some(width), Some(height)) = (width, height) else {
            return Err("HEVC SPS unreadable: conformance window larger than the picture".to_string());
        };
        let general = &sps.profile_tier_level.general_profile;
        let vui = sps.vui_parameters.as_ref();
        let fps = vui
            .and_then(|v| v.vui_timing_info.as_ref())
            .and_then(|t| plausible_fps(f64::from(t.time_scale.get()) / f64::from(t.num_units_in_tick.get())));
        let field_seq = vui.is_some_and(|v| v.field_seq_flag);
        let interlaced = match (general.progressive_source_flag, general.interlaced_source_flag) {
            _ if field_seq => Some(true),
            (true, false) => Some(false),
            (false, true) => Some(true),
            _ => None, // unknown or mixed
        };
        let profile = match general.profile_idc {
            1 => "Main".to_string(),
            2 => "Main 10".to_string(),
            3 => "Main Still Picture".to_string(),
            4 => "Rext".to_string(),
            other => format!("profile {other}"),
        };
        Ok(VideoParams { profile: Some(profile), level: general.level_idc, width, height, fps, interlaced })
    })
}

/// MPEG-1/2 `sequence_header()` (ISO/IEC 13818-2 6.2.2.1) and, for MPEG-2, the `sequence_extension()` after it:
/// fixed-position fields, read byte-wise.
fn mpeg2_sequence(es: &[u8], complete: bool) -> Option<Result<VideoParams, String>> {
    let start = find_start_code(es, 0xb3)?;
    let Some(h) = es.get(start..start + 4) else {
        return complete.then(|| Err("MPEG-2 sequence header cut short".to_string()));
    };
    let width = (u32::from(h[0]) << 4) | u32::from(h[1] >> 4);
    let height = (u32::from(h[1] & 0x0f) << 8) | u32::from(h[2]);
    let fps = match h[3] & 0x0f {
        1 => Some(24000.0 / 1001.0),
        2 => Some(24.0),
        3 => Some(25.0),
        4 => Some(30000.0 / 1001.0),
        5 => Some(30.0),
        6 => Some(50.0),
        7 => Some(60000.0 / 1001.0),
        8 => Some(60.0),
        _ => None,
    };
    let mut params = VideoParams { width, height, fps, ..VideoParams::default() };
    // sequence_extension: extension_start_code_identifier 1 in the top nibble of the first byte.
    let rest = &es[start + 4..];
    let mut from = 0;
    while let Some(at) = rest.get(from..).and_then(|r| find_start_code(r, 0xb5)) {
        let at = from + at;
        match rest.get(at..at + 2) {
            Some(&[a, b]) if a >> 4 == 1 => {
                let pl = (a << 4) | (b >> 4);
                params.profile = Some(
                    match (pl & 0x80 != 0, (pl >> 4) & 0x07) {
                        (true, _) => "4:2:2 or multi-view",
                        (false, 1) => "High",
                        (false, 2) => "Spatially Scalable",
                        (false, 3) => "SNR Scalable",
                        (false, 4) => "Main",
                        (false, 5) => "Simple",
                        _ => "unknown",
                    }
                    .to_string(),
                );
                params.level = Some(pl & 0x0f);
                params.interlaced = Some(b & 0x08 == 0); // progressive_sequence == 0
                break;
            }
            Some(_) => from = at,
            None => {
                if !complete {
                    return None; // the extension may be cut; wait for the rest
                }
                break;
            }
        }
    }
    Some(Ok(params))
}

/// Offset just after the first `00 00 01 code` in `es`.
fn find_start_code(es: &[u8], code: u8) -> Option<usize> {
    es.windows(4).position(|w| w == [0, 0, 1, code]).map(|p| p + 4)
}

/// NAL units of an Annex B byte stream: each with whether another start code ends it (else it runs to the end of
/// the bytes given, and may go on).
struct NalUnits<'a> {
    es: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = (&'a [u8], bool);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.es.get(self.pos..)?;
        let start = rest.windows(3).position(|w| w == [0, 0, 1])? + 3;
        let body = &rest[start..];
        match body.windows(3).position(|w| w == [0, 0, 1]) {
            Some(end) => {
                self.pos += start + end;
                // A 4-byte start code's leading zero (and trailing_zero_8bits) belong to no NAL unit.
                let mut nal = &body[..end];
                while let [head @ .., 0] = nal {
                    nal = head;
                }
                Some((nal, true))
            }
            None => {
                self.pos = self.es.len();
                Some((body, false))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SPS of `testdata/media/sample-720p.ts` (x264, Main, 1280x720, 25 fps VUI timing).
    const SPS_720P: &[u8] = &[
        0x67, 0x4d, 0x40, 0x1f, 0xec, 0xa0, 0x28, 0x02, 0xdd, 0x80, 0x88, 0x00, 0x00, 0x03, 0x00, 0x08, 0x00, 0x00,
        0x03, 0x01, 0x90, 0x78, 0xc1, 0x8c, 0xb0,
    ];

    fn annexb(nals: &[&[u8]]) -> Vec<u8> {
        nals.iter().flat_map(|n| [&[0u8, 0, 0, 1][..], n].concat()).collect()
    }

    #[test]
    fn h264_sps_of_the_sample() {
        let es = annexb(&[&[0x09, 0xf0], SPS_720P, &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0]]);
        let p = find_params(VideoCodec::H264, &es, false).unwrap().unwrap();
        assert_eq!((p.width, p.height), (1280, 720));
        assert_eq!(p.profile.as_deref(), Some("Main"));
        assert_eq!(p.level, Some(31));
        assert_eq!(p.fps, Some(25.0));
        assert_eq!(p.interlaced, Some(false));
    }

    #[test]
    fn sps_at_the_end_waits_unless_complete() {
        let es = annexb(&[&[0x09, 0xf0], SPS_720P]);
        assert!(find_params(VideoCodec::H264, &es, false).is_none());
        assert!(find_params(VideoCodec::H264, &es, true).unwrap().is_ok());
    }

    #[test]
    fn truncated_sps_is_unreadable() {
        let es = annexb(&[&SPS_720P[..6], &[0x68, 0xeb]]);
        let err = find_params(VideoCodec::H264, &es, false).unwrap().unwrap_err();
        assert!(err.starts_with("H.264 SPS unreadable"), "{err}");
    }

    #[test]
    fn no_sps_no_answer() {
        let es = annexb(&[&[0x09, 0xf0], &[0x41, 0x9a, 0x00]]);
        assert!(find_params(VideoCodec::H264, &es, true).is_none());
        assert!(find_params(VideoCodec::Hevc, &es, true).is_none());
        assert!(find_params(VideoCodec::Mpeg2, &es, true).is_none());
    }

    #[test]
    fn mpeg2_sequence_header_and_extension() {
        // 720x576, 4:3, 25 fps; extension: Main@Main, progressive_sequence 0.
        let es = [0, 0, 1, 0xb3, 0x2d, 0x02, 0x40, 0x23, 0xff, 0xff, 0xe0, 0x18, 0, 0, 1, 0xb5, 0x14, 0x82, 0, 1];
        let p = find_params(VideoCodec::Mpeg2, &es, false).unwrap().unwrap();
        assert_eq!((p.width, p.height, p.fps), (720, 576, Some(25.0)));
        assert_eq!(p.profile.as_deref(), Some("Main"));
        assert_eq!(p.level, Some(8));
        assert_eq!(p.interlaced, Some(true));
    }

    #[test]
    fn absurd_mpeg2_size() {
        let es = [0, 0, 1, 0xb3, 0x00, 0x00, 0x00, 0x23, 0xff];
        assert_eq!(find_params(VideoCodec::Mpeg2, &es, true), Some(Err("absurd picture size 0x0".to_string())));
    }

    #[test]
    fn hevc_sps_from_scuffle_example() {
        // The example SPS in scuffle-h265's docs: 1920x1080 Main.
        let nal = b"\x42\x01\x01\x01\x40\x00\x00\x03\x00\x90\x00\x00\x03\x00\x00\x03\x00\x78\xa0\x03\xc0\x80\x11\x07\xcb\x96\xb4\xa4\x25\x92\xe3\x01\x6a\x02\x02\x02\x08\x00\x00\x03\x00\x08\x00\x00\x03\x00\xf3\x00\x2e\xf2\x88\x00\x02\x62\x5a\x00\x00\x13\x12\xd0\x20";
        let es = annexb(&[nal]);
        let p = find_params(VideoCodec::Hevc, &es, true).unwrap().unwrap();
        assert_eq!((p.width, p.height), (1920, 1080));
        assert_eq!(p.profile.as_deref(), Some("Main"));
    }

    #[test]
    fn nal_units_split() {
        let es = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65];
        let v: Vec<_> = NalUnits { es: &es, pos: 0 }.collect();
        assert_eq!(v, vec![(&[0x67, 1, 2][..], true), (&[0x68, 3][..], true), (&[0x65][..], false)]);
    }

    #[test]
    fn a_panicking_parser_is_an_error() {
        let r: Result<(), String> = guarded("test", || panic!("overflow"));
        assert_eq!(r, Err("test parser failed on malformed data".to_string()));
    }

    #[test]
    fn h264_profile_names() {
        assert_eq!(h264_profile(66, 0x40), "Constrained Baseline");
        assert_eq!(h264_profile(100, 0), "High");
        assert_eq!(h264_profile(9, 0), "profile 9");
    }
}
