//! The provider's notion of time: a monotonic start instant (for the live position and the
//! HLS window) and wall-clock unix seconds with the date formats panels use.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// When the provider started, both as a monotonic instant and as unix seconds.
///
/// Exists so that "live" content is a pure function of elapsed time: every viewer that joins
/// at the same moment sees the same position, like a real broadcast.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    start: Instant,
    start_unix: i64,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Clock { start: Instant::now(), start_unix: unix_now() }
    }

    /// Time since the provider started.
    pub(crate) fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Unix seconds when the provider started.
    pub(crate) fn start_unix(&self) -> i64 {
        self.start_unix
    }
}

/// Current wall-clock time in unix seconds.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Civil UTC date and time of a unix timestamp: (year, month, day, hour, minute, second).
fn civil(unix: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400) as u32;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = if m <= 2 { y + 1 } else { y };
    (y, m, d, secs / 3600, (secs / 60) % 60, secs % 60)
}

/// `2026-11-21 18:00:00` (panels' `time_now`, EPG `start`/`end`).
pub(crate) fn format_datetime(unix: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

/// `20261121180000 +0000` (XMLTV).
pub(crate) fn format_xmltv(unix: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix);
    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02} +0000")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(format_datetime(0), "1970-01-01 00:00:00");
        assert_eq!(format_datetime(1_767_225_600), "2026-01-01 00:00:00");
        assert_eq!(format_xmltv(1_795_284_000), "20261121180000 +0000");
        assert_eq!(format_datetime(951_782_400), "2000-02-29 00:00:00");
    }
}
