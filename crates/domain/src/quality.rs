//! How good a source is, as one number: the score that orders a channel's
//! sources when the user lets tunerpool order them.
//!
//! The relay measures what it relays (codec, resolution, frame rate,
//! bitrate, time to the first keyframe, stalls and failovers); this module
//! turns the latest measurement of a source into a score from 0 to 100 with
//! weights the operator chooses. It is pure arithmetic on plain data so that
//! the pool's selection, the catalog's listings and the UI's "why this
//! order" all agree.

use serde::{Deserialize, Serialize};

/// What a measurement found, reduced to what the score needs.
///
/// Exists so that the score does not depend on the relay's analyzer types:
/// the catalog stores these fields next to the full report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SourceQuality {
    /// The analyzer's verdict: `ok`, `pending`, `not_ts`, `no_video`, `unreadable`
    /// (or a probe's `refused`, `dead`).
    pub verdict: String,
    /// Video codec as ffprobe names it (`h264`, `hevc`, `mpeg2video`, ...).
    pub video_codec: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<f64>,
    /// Video bitrate in bit/s (the total when the video's own is unknown).
    pub bitrate: Option<u64>,
    /// Milliseconds from the request to the first keyframe.
    pub start_ms: Option<u64>,
    /// Stalls, failovers away from the source and continuity errors per hour
    /// of measured playback (0 for a clean source).
    pub faults_per_hour: Option<f64>,
}

impl SourceQuality {
    /// A source that was measured and found not to carry a picture (or not
    /// to answer): it goes last whatever the weights.
    pub fn is_dead(&self) -> bool {
        !matches!(self.verdict.as_str(), "ok" | "pending")
    }

    /// A short label for badges: `1080p50 H.264 6.1 Mbit/s`, `dead: no_video`.
    pub fn badge(&self) -> String {
        if self.is_dead() {
            return format!("dead: {}", self.verdict);
        }
        let mut parts = Vec::new();
        if let Some(h) = self.height {
            let fps = self.fps.map(|f| format!("{}", f.round() as u32)).unwrap_or_default();
            parts.push(format!("{h}p{fps}"));
        }
        if let Some(c) = &self.video_codec {
            parts.push(codec_label(c).to_owned());
        }
        if let Some(b) = self.bitrate {
            parts.push(format!("{:.1} Mbit/s", b as f64 / 1e6));
        }
        if parts.is_empty() {
            "measuring".to_owned()
        } else {
            parts.join(" ")
        }
    }
}

fn codec_label(codec: &str) -> &str {
    match codec {
        "h264" => "H.264",
        "hevc" => "HEVC",
        "mpeg2video" => "MPEG-2",
        "mpeg1video" => "MPEG-1",
        other => other,
    }
}

/// How much each aspect counts in the score (any non-negative numbers; they
/// are normalised by their sum). All zero: every live source scores 50.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QualityWeights {
    pub resolution: f64,
    pub fps: f64,
    pub bitrate: f64,
    pub codec: f64,
    pub stability: f64,
    pub start_time: f64,
}

impl Default for QualityWeights {
    /// Picture first (resolution, then stability: a source that drops is worse
    /// than a softer one), then frame rate, bitrate, start time and codec.
    fn default() -> Self {
        QualityWeights { resolution: 6.0, fps: 3.0, bitrate: 2.0, codec: 1.0, stability: 4.0, start_time: 2.0 }
    }
}

/// The score of an unmeasured source: the middle, so that measuring a source
/// can move it either way.
pub const UNMEASURED: f64 = 50.0;

/// The score of `q` from 0 (dead) to 100 with weights `w`; [`UNMEASURED`] for
/// a source never measured (`None`). An aspect the measurement does not know
/// counts as average (0.5).
pub fn score(q: Option<&SourceQuality>, w: &QualityWeights) -> f64 {
    let Some(q) = q else { return UNMEASURED };
    if q.is_dead() {
        return 0.0;
    }
    let parts = [
        (w.resolution, q.height.map(resolution_part)),
        (w.fps, q.fps.map(|f| (f / 50.0).clamp(0.0, 1.0))),
        (w.bitrate, q.bitrate.map(bitrate_part)),
        (w.codec, q.video_codec.as_deref().map(codec_part)),
        (w.stability, q.faults_per_hour.map(|f| 1.0 / (1.0 + f.max(0.0) / 6.0))),
        (w.start_time, q.start_ms.map(|ms| 1.0 - (ms as f64 / 8000.0).clamp(0.0, 1.0))),
    ];
    let total: f64 = parts.iter().map(|(weight, _)| weight.max(0.0)).sum();
    if total <= 0.0 {
        return UNMEASURED;
    }
    let sum: f64 = parts.iter().map(|(weight, part)| weight.max(0.0) * part.unwrap_or(0.5)).sum();
    (100.0 * sum / total).clamp(0.0, 100.0)
}

/// 2160 lines and more: 1; 1080: 0.75; 720: 0.58; 576: 0.5; 360: 0.35.
fn resolution_part(height: u32) -> f64 {
    (height as f64 / 2160.0).clamp(0.0, 1.0).powf(0.42)
}

/// On a log scale from 0.5 Mbit/s (0) to 16 Mbit/s (1): 2 Mbit/s ≈ 0.4,
/// 8 Mbit/s = 0.8.
fn bitrate_part(bps: u64) -> f64 {
    ((bps.max(1) as f64 / 500_000.0).log2() / 5.0).clamp(0.0, 1.0)
}

/// Modern codecs first; every player decodes H.264, so it is not behind HEVC.
fn codec_part(codec: &str) -> f64 {
    match codec {
        "h264" | "hevc" | "av1" => 1.0,
        "mpeg2video" => 0.5,
        _ => 0.3,
    }
}

/// How a channel's sources are ordered when the channel orders itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QualityPolicy {
    /// The brief's provider ranking first (kind, availability, priority); the
    /// score orders sources the ranking does not tell apart.
    #[default]
    AvailabilityFirst,
    /// The best score first; the provider ranking orders equal scores.
    QualityFirst,
}

impl QualityPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            QualityPolicy::AvailabilityFirst => "availability_first",
            QualityPolicy::QualityFirst => "quality_first",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(height: u32, fps: f64, bitrate: u64, codec: &str) -> SourceQuality {
        SourceQuality {
            verdict: "ok".into(),
            video_codec: Some(codec.into()),
            width: Some(height * 16 / 9),
            height: Some(height),
            fps: Some(fps),
            bitrate: Some(bitrate),
            start_ms: Some(800),
            faults_per_hour: Some(0.0),
        }
    }

    #[test]
    fn better_pictures_score_higher() {
        let w = QualityWeights::default();
        let uhd = score(Some(&q(2160, 50.0, 16_000_000, "hevc")), &w);
        let fhd = score(Some(&q(1080, 50.0, 6_000_000, "h264")), &w);
        let hd = score(Some(&q(720, 25.0, 2_000_000, "h264")), &w);
        let sd = score(Some(&q(576, 25.0, 1_500_000, "mpeg2video")), &w);
        assert!(uhd > fhd && fhd > hd && hd > sd, "{uhd} {fhd} {hd} {sd}");
        assert!(sd > 0.0 && uhd <= 100.0);
    }

    #[test]
    fn dead_is_zero_unmeasured_is_the_middle() {
        let w = QualityWeights::default();
        let dead = SourceQuality { verdict: "no_video".into(), ..Default::default() };
        assert_eq!(score(Some(&dead), &w), 0.0);
        assert_eq!(score(None, &w), UNMEASURED);
        assert_eq!(dead.badge(), "dead: no_video");
    }

    #[test]
    fn an_unstable_source_loses_to_a_softer_stable_one() {
        let w = QualityWeights::default();
        let mut shaky = q(1080, 50.0, 6_000_000, "h264");
        shaky.faults_per_hour = Some(30.0);
        let steady = q(720, 50.0, 4_000_000, "h264");
        assert!(score(Some(&steady), &w) > score(Some(&shaky), &w));
    }

    #[test]
    fn weights_decide() {
        let only_fps =
            QualityWeights { resolution: 0.0, fps: 1.0, bitrate: 0.0, codec: 0.0, stability: 0.0, start_time: 0.0 };
        let a = q(2160, 25.0, 16_000_000, "hevc");
        let b = q(576, 50.0, 1_000_000, "h264");
        assert!(score(Some(&b), &only_fps) > score(Some(&a), &only_fps));
        let none =
            QualityWeights { resolution: 0.0, fps: 0.0, bitrate: 0.0, codec: 0.0, stability: 0.0, start_time: 0.0 };
        assert_eq!(score(Some(&a), &none), UNMEASURED);
    }

    #[test]
    fn badges_read_like_a_tv_guide() {
        assert_eq!(q(1080, 50.0, 6_100_000, "h264").badge(), "1080p50 H.264 6.1 Mbit/s");
        let pending = SourceQuality { verdict: "pending".into(), ..Default::default() };
        assert_eq!(pending.badge(), "measuring");
    }

    #[test]
    fn parts_are_bounded() {
        for h in [0, 1, 240, 720, 1080, 2160, 4320, u32::MAX] {
            let p = resolution_part(h);
            assert!((0.0..=1.0).contains(&p), "{h}: {p}");
        }
        for b in [0, 1, 500_000, 8_000_000, u64::MAX] {
            let p = bitrate_part(b);
            assert!((0.0..=1.0).contains(&p), "{b}: {p}");
        }
        assert!((bitrate_part(8_000_000) - 0.8).abs() < 1e-9);
    }
}
