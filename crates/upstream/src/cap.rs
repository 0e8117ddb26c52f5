//! Size caps on what providers send.
//!
//! A provider URL can point at anything — a live stream instead of a
//! playlist, an endless error page, a gzip bomb — and a download that never
//! ends would fill the disk (and a body read into memory, the memory). Every
//! body is held to a cap by its kind, counted as it arrives and again after
//! decompression; going over is an error that names the cap and the
//! configuration key that raises it.

use std::io::{self, Read};

use crate::error::UpstreamError;

/// What a provider body is, which decides its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// An M3U playlist (downloaded, and after gunzip).
    Playlist,
    /// A `player_api.php` answer (account details, categories, item lists).
    Api,
    /// An XMLTV guide (downloaded, and after gunzip).
    Guide,
}

impl BodyKind {
    /// The configuration key that sets this kind's cap.
    pub fn config_key(self) -> &'static str {
        match self {
            BodyKind::Playlist => "sync.max_playlist_bytes",
            BodyKind::Api => "sync.max_api_bytes",
            BodyKind::Guide => "epg.max_guide_bytes",
        }
    }

    /// The error for a body of this kind from `url` (already redacted) that
    /// went over `limit` bytes.
    pub fn too_large(self, url: &str, limit: u64) -> UpstreamError {
        UpstreamError::TooLarge { url: url.to_string(), limit, key: self.config_key() }
    }
}

/// Caps, in bytes, per kind of body; from the `sync.max_*_bytes` and
/// `epg.max_guide_bytes` configuration keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub playlist: u64,
    pub api: u64,
    pub guide: u64,
}

impl Default for Caps {
    /// Generous for real providers: a 200 000-entry playlist is ~50 MB, an
    /// Xtream VOD list of that size ~100 MB, guides reach 300+ MB unpacked.
    fn default() -> Self {
        Caps { playlist: 256 << 20, api: 256 << 20, guide: 1 << 30 }
    }
}

impl Caps {
    pub fn of(&self, kind: BodyKind) -> u64 {
        match kind {
            BodyKind::Playlist => self.playlist,
            BodyKind::Api => self.api,
            BodyKind::Guide => self.guide,
        }
    }
}

/// `n` bytes for people: `256 MiB`, `1 GiB`, `1500 bytes`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (size, unit) in UNITS {
        // Sizes are powers of two: whole units have no lower bits set.
        if n >= size && n & (size - 1) == 0 {
            return format!("{} {unit}", n / size);
        }
    }
    for (size, unit) in UNITS {
        if n >= size {
            return format!("{:.1} {unit}", n as f64 / size as f64);
        }
    }
    format!("{n} bytes")
}

/// A reader that fails once more than `limit` bytes came through it (the
/// decompressed side of a gzip body).
pub(crate) struct CappedReader<R> {
    inner: R,
    limit: u64,
    read: u64,
}

/// The marker error of a [`CappedReader`] over its limit.
#[derive(Debug)]
pub(crate) struct OverCap;

impl std::fmt::Display for OverCap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("over the size cap")
    }
}

impl std::error::Error for OverCap {}

impl<R> CappedReader<R> {
    pub(crate) fn new(inner: R, limit: u64) -> Self {
        CappedReader { inner, limit, read: 0 }
    }
}

/// Whether `e` is a [`CappedReader`] saying that its cap was reached.
pub(crate) fn is_over_cap(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<OverCap>())
}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(io::Error::other(OverCap));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_reader_stops_past_the_limit() {
        let mut r = CappedReader::new(&[7u8; 100][..], 60);
        let mut out = Vec::new();
        let e = r.read_to_end(&mut out).unwrap_err();
        assert!(is_over_cap(&e));
        let mut r = CappedReader::new(&[7u8; 60][..], 60);
        assert_eq!(r.read_to_end(&mut Vec::new()).unwrap(), 60);
    }

    #[test]
    fn human() {
        assert_eq!(human_bytes(256 << 20), "256 MiB");
        assert_eq!(human_bytes(1 << 30), "1 GiB");
        assert_eq!(human_bytes(1500), "1.5 KiB");
        assert_eq!(human_bytes(10), "10 bytes");
    }
}
