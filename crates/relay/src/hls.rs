//! Live HLS upstreams, turned into one continuous MPEG-TS byte stream.
//!
//! Some sources (often M3U entries) are HLS playlists rather than a TS
//! stream. The session treats them like any other upstream: [`start`] follows
//! a master playlist to the variant [`choose_variant`] picks, refuses what
//! viewers of a TS stream could not play (encrypted or fragmented-MP4
//! segments), fetches the first segment and checks that it is MPEG-TS. From
//! then on a fetcher task polls the media playlist and fetches new segments
//! in sequence order, handing their bytes to the session through a small
//! bounded channel ([`HlsBody`]).
//!
//! The fetcher runs in its own task because the session's pump wakes up
//! every few tens of milliseconds and must not cancel a segment download
//! midway. Segments are passed on *paced* over their duration (faster when
//! the fetcher is behind the live edge): a 6-second segment pushed into the
//! ring at once would be larger than the ring itself, and viewers reading in
//! real time would fall out of it.
//!
//! Errors never carry URLs: segment and playlist URLs hold the account's
//! credentials. They name the segment by its sequence number instead.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::sync::mpsc;
use tunerpool_formats::hls::{self, choose_variant, MediaPlaylist, Playlist, Segment};

use crate::ts::probe;

/// Largest playlist body read, in bytes.
const MAX_PLAYLIST: usize = 1024 * 1024;
/// Largest segment read, in bytes (a 10 s segment at 40 Mbit/s is 50 MB).
const MAX_SEGMENT: usize = 64 * 1024 * 1024;
/// Pieces a segment is handed on in (a multiple of 188).
const PIECE: usize = 188 * 348;
/// How far behind the live edge a stream starts, in segments: enough to
/// absorb a slow segment download, little enough to stay live.
const START_SEGMENTS: usize = 3;
/// Consecutive segment or playlist failures before the upstream counts as failed.
const MAX_FAILURES: u32 = 3;

/// True when a response is an HLS playlist rather than a TS stream: by its
/// content type, its URL's path, or its first bytes.
pub(crate) fn looks_like_hls(content_type: Option<&str>, url: &reqwest::Url, first: &[u8]) -> bool {
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    let body = first.strip_prefix(b"\xef\xbb\xbf").unwrap_or(first);
    let body = &body[body.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(body.len())..];
    ct.contains("mpegurl") || url.path().to_ascii_lowercase().ends_with(".m3u8") || body.starts_with(b"#EXTM3U")
}

/// What the session needs to pump an HLS upstream.
pub(crate) struct HlsStart {
    /// The first segment, checked to be MPEG-TS; sent to viewers at once.
    pub first: Bytes,
    /// The following segments' bytes, in order.
    pub body: HlsBody,
    /// The playlist's target duration: data arrives segment by segment, so
    /// the stall timeout must allow for at least one segment's gap.
    pub target: Duration,
}

/// How the fetcher talks to the provider.
#[derive(Clone)]
struct Fetch {
    client: reqwest::Client,
    headers: Vec<(String, String)>,
}

impl Fetch {
    /// GETs `url` and returns its body (at most `max` bytes) and final URL.
    async fn get(&self, url: &str, max: usize) -> Result<(Bytes, String), String> {
        let mut req = self.client.get(url);
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let mut resp = req.send().await.map_err(|e| tunerpool_upstream::http::describe_reqwest_error(&e, &[]))?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status().as_u16()));
        }
        let final_url = resp.url().to_string();
        let mut body = BytesMut::new();
        while let Some(chunk) =
            resp.chunk().await.map_err(|e| tunerpool_upstream::http::describe_reqwest_error(&e, &[]))?
        {
            if body.len() + chunk.len() > max {
                return Err(format!("larger than {} MB", max / (1024 * 1024)));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body.freeze(), final_url))
    }

    /// Fetches and parses the media playlist at `url`.
    async fn media_playlist(&self, url: &str) -> Result<(MediaPlaylist, String), String> {
        let (body, final_url) = self.get(url, MAX_PLAYLIST).await.map_err(|e| format!("the playlist: {e}"))?;
        match parse(&body)? {
            Playlist::Media(m) => Ok((m, final_url)),
            Playlist::Master(_) => Err("the variant playlist is itself a master playlist".into()),
        }
    }
}

fn parse(body: &[u8]) -> Result<Playlist, String> {
    hls::parse(&String::from_utf8_lossy(body)).map_err(|e| e.to_string())
}

/// The segments of `m` not fetched yet (sequence ≥ `next`).
fn pending_after(m: &MediaPlaylist, next: u64) -> VecDeque<Segment> {
    m.segments.iter().filter(|s| s.sequence >= next).cloned().collect()
}

/// Starts following the HLS playlist `text`, fetched from `url` (its final
/// URL, after redirects). Fails when it cannot be played as MPEG-TS.
pub(crate) async fn start(
    client: reqwest::Client,
    headers: Vec<(String, String)>,
    url: String,
    text: &[u8],
) -> Result<HlsStart, String> {
    let fetch = Fetch { client, headers };
    let (media, media_url) = match parse(text)? {
        Playlist::Media(m) => (m, url),
        Playlist::Master(master) => {
            let variant = choose_variant(&master).ok_or("the master playlist lists no variants")?;
            fetch.media_playlist(&hls::resolve(&url, &variant.uri)).await?
        }
    };
    if media.encrypted {
        return Err("the HLS stream is encrypted, which is not supported".into());
    }
    if media.fmp4 {
        return Err("the HLS stream has fragmented-MP4 segments; only MPEG-TS segments are supported".into());
    }
    if media.segments.is_empty() {
        return Err("the HLS playlist lists no segments".into());
    }
    let target = Duration::from_secs_f64(media.target_duration.unwrap_or(6.0).clamp(1.0, 30.0));
    let skip = if media.ended { 0 } else { media.segments.len().saturating_sub(START_SEGMENTS) };
    let mut pending: VecDeque<Segment> = media.segments[skip..].iter().cloned().collect();
    let first_segment = pending.pop_front().expect("not empty");
    let (first, _) = fetch
        .get(&hls::resolve(&media_url, &first_segment.uri), MAX_SEGMENT)
        .await
        .map_err(|e| format!("segment {}: {e}", first_segment.sequence))?;
    probe(&first).map_err(|e| format!("segment {} is not MPEG-TS: {e}", first_segment.sequence))?;
    let (tx, rx) = mpsc::channel(8);
    let fetcher = Fetcher { fetch, media_url, next: first_segment.sequence + 1, target, ended: media.ended, tx };
    let task = tokio::spawn(fetcher.run(pending));
    Ok(HlsStart { first, body: HlsBody { rx, task }, target })
}

/// The bytes of an HLS upstream's segments after the first, in order; an
/// `Err` item says why the upstream failed. Dropping it stops the fetcher.
pub(crate) struct HlsBody {
    rx: mpsc::Receiver<Result<Bytes, String>>,
    task: tokio::task::JoinHandle<()>,
}

impl Stream for HlsBody {
    type Item = Result<Bytes, String>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for HlsBody {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls the media playlist and passes new segments on, paced.
struct Fetcher {
    fetch: Fetch,
    media_url: String,
    /// Sequence number of the next segment to fetch.
    next: u64,
    target: Duration,
    ended: bool,
    tx: mpsc::Sender<Result<Bytes, String>>,
}

/// The receiver is gone: the session moved on.
struct Gone;

impl Fetcher {
    async fn run(mut self, pending: VecDeque<Segment>) {
        if let Err(why) = self.follow(pending).await {
            let _ = self.tx.send(Err(why)).await;
        }
    }

    /// Runs until the upstream fails (`Err` with the reason) or the session
    /// drops the body (`Ok`).
    async fn follow(&mut self, mut pending: VecDeque<Segment>) -> Result<(), String> {
        let mut failures = 0u32;
        loop {
            while let Some(seg) = pending.pop_front() {
                self.next = seg.sequence + 1;
                let data = match self.fetch.get(&hls::resolve(&self.media_url, &seg.uri), MAX_SEGMENT).await {
                    Ok((data, _)) => data,
                    Err(e) => {
                        failures += 1;
                        tracing::debug!(segment = seg.sequence, reason = %e, "HLS segment failed");
                        if failures >= MAX_FAILURES {
                            return Err(format!("segment {}: {e}", seg.sequence));
                        }
                        continue;
                    }
                };
                failures = 0;
                // Behind the live edge: catch up at twice real time.
                let speed = if pending.len() > 1 { 2.0 } else { 1.0 };
                let max = self.target.as_secs_f64() * 2.0;
                let duration = Duration::from_secs_f64(seg.duration.clamp(0.0, max) / speed);
                if self.send_paced(data, duration).await.is_err() {
                    return Ok(());
                }
            }
            if self.ended {
                return Err("the provider ended the stream (the HLS playlist ended)".into());
            }
            // Wait for the next segment to be listed: half a target duration,
            // as RFC 8216 suggests for a playlist that has not changed.
            let wait = (self.target / 2).max(Duration::from_millis(500));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.tx.closed() => return Ok(()),
            }
            match self.fetch.media_playlist(&self.media_url).await {
                Ok((m, _)) => {
                    failures = 0;
                    if m.media_sequence > self.next {
                        tracing::debug!(
                            missed = m.media_sequence - self.next,
                            "HLS segments expired before they were fetched"
                        );
                    }
                    self.ended = m.ended;
                    pending = pending_after(&m, self.next);
                }
                Err(e) => {
                    failures += 1;
                    if failures >= MAX_FAILURES {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Hands `data` on in pieces spread over `duration`.
    async fn send_paced(&self, data: Bytes, duration: Duration) -> Result<(), Gone> {
        let total = data.len().max(1) as f64;
        let start = tokio::time::Instant::now();
        let mut sent = 0usize;
        let mut rest = data;
        while !rest.is_empty() {
            let piece = rest.split_to(PIECE.min(rest.len()));
            let due = start + duration.mul_f64(sent as f64 / total);
            tokio::time::sleep_until(due).await;
            sent += piece.len();
            self.tx.send(Ok(piece)).await.map_err(|_| Gone)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hls_is_recognised_by_type_path_or_content() {
        let ts_url = reqwest::Url::parse("http://h/live/u/p/1.ts").unwrap();
        let m3u8_url = reqwest::Url::parse("http://h/live/u/p/1.M3U8?token=x").unwrap();
        assert!(looks_like_hls(Some("application/vnd.apple.mpegurl"), &ts_url, b""));
        assert!(looks_like_hls(Some("audio/x-mpegurl"), &ts_url, b""));
        assert!(looks_like_hls(None, &m3u8_url, b"\x47"));
        assert!(looks_like_hls(None, &ts_url, b"\xef\xbb\xbf\r\n#EXTM3U\n"));
        assert!(!looks_like_hls(Some("video/mp2t"), &ts_url, &[0x47; 188]));
        assert!(!looks_like_hls(None, &ts_url, b"<html>"));
    }

    #[test]
    fn pending_skips_what_was_fetched() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:10\n#EXTINF:2,\na.ts\n#EXTINF:2,\nb.ts\n#EXTINF:2,\nc.ts\n";
        let Playlist::Media(m) = hls::parse(text).unwrap() else { panic!("media") };
        let p: Vec<u64> = pending_after(&m, 11).iter().map(|s| s.sequence).collect();
        assert_eq!(p, [11, 12]);
        assert!(pending_after(&m, 13).is_empty());
        // Fallen behind the window: everything listed is new.
        assert_eq!(pending_after(&m, 3).len(), 3);
    }
}
