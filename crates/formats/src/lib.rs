//! Pure parsers and writers for IPTV formats.
//!
//! This crate performs no I/O of its own and has no async code: callers hand it
//! bytes (whole buffers, chunks as they arrive, or any [`std::io::Read`]) and
//! get typed values back. Everything here is written for the playlists and
//! panel responses found in the wild, which are frequently malformed, so the
//! parsers recover where they sensibly can, report what they had to skip, and
//! never panic on any input.
//!
//! * [`m3u`]: extended M3U playlists (`#EXTM3U` / `#EXTINF`), whole-buffer and
//!   incremental (push) parsing, plus a round-tripping writer.
//! * [`xtream`]: Xtream Codes `player_api.php` JSON responses, with lenient
//!   field decoding and element-by-element streaming of large lists.
//! * [`hls`]: HLS master and media playlists, URI resolution, variant choice.
//! * [`xmltv`]: XMLTV guides, read and written element by element, and
//!   merged from several providers without holding any of them whole.

pub mod hls;
pub mod m3u;
pub mod xmltv;
pub mod xtream;
