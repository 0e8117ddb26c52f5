//! Viewers: measured reads of a stream, done by `loadgen`'s client (TTFB, rate, longest gap,
//! TS sync and continuity) so that the harness measures exactly what the benchmarks measure,
//! plus the one reader loadgen has not: a viewer that reads slower than the stream.

use std::sync::Arc;
use std::time::Duration;

use loadgen::client::{ClientRecord, Job, Progress, Shared};
use tokio::time::Instant;

/// Longest wait for response headers or the next body bytes: longer than any gap a fault
/// causes, so a gap is measured as a gap, not as a dead stream.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A pool of measured viewers sharing one HTTP/1.1 client (one connection each).
///
/// Exists so scenarios start viewers with one call and get loadgen's records back.
#[derive(Clone)]
pub struct Viewers {
    shared: Arc<Shared>,
}

impl Viewers {
    /// Viewers for up to `clients` concurrent connections.
    pub fn new(clients: usize) -> anyhow::Result<Viewers> {
        let connect = Duration::from_secs(10);
        Ok(Viewers {
            shared: Arc::new(Shared {
                http: loadgen::client::http_client(connect, clients)?,
                read_timeout: READ_TIMEOUT,
                connect_timeout: connect,
                progress: Progress::default(),
                client: Default::default(),
            }),
        })
    }

    /// Start at `start`, read `url` for `duration`, and return what was measured.
    pub async fn watch(&self, id: usize, url: String, start: Instant, duration: Duration) -> ClientRecord {
        let job = Job {
            id,
            channel: url.rsplit('/').next().unwrap_or_default().to_string(),
            url,
            offset: Duration::ZERO,
            start_at: start,
            end_at: start + duration,
            limiter: None,
        };
        loadgen::client::run(job, self.shared.clone()).await
    }

    /// Start every URL at its offset from one instant (100 ms from now), each read for
    /// `duration`.
    pub async fn storm(&self, urls: Vec<(String, Duration)>, duration: Duration) -> Vec<ClientRecord> {
        let start = Instant::now() + Duration::from_millis(100);
        let tasks: Vec<_> = urls
            .into_iter()
            .enumerate()
            .map(|(i, (url, offset))| {
                let v = self.clone();
                tokio::spawn(async move { v.watch(i, url, start + offset, duration).await })
            })
            .collect();
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            if let Ok(rec) = t.await {
                out.push(rec);
            }
        }
        out
    }
}

/// What a slow viewer got.
#[derive(Debug, Clone, Copy, Default)]
pub struct SlowRead {
    /// HTTP status.
    pub status: u16,
    /// Body bytes read.
    pub bytes: u64,
    /// The server ended (or broke) the stream before the viewer's end.
    pub ended_by_server: bool,
    /// Seconds read.
    pub seconds: f64,
}

/// Read `url` for `duration` at no more than `rate_bps` (bits per second): a viewer on a link
/// too slow for the stream.
pub async fn read_slowly(http: &reqwest::Client, url: &str, rate_bps: u64, duration: Duration) -> SlowRead {
    let start = Instant::now();
    let end = start + duration;
    let mut out = SlowRead::default();
    let Ok(Ok(mut resp)) = tokio::time::timeout(READ_TIMEOUT, http.get(url).send()).await else {
        return out;
    };
    out.status = resp.status().as_u16();
    loop {
        // Sleep until the bytes read so far are "due" at the allowed rate.
        let due = start + Duration::from_secs_f64(out.bytes as f64 * 8.0 / rate_bps as f64);
        if due >= end {
            break;
        }
        tokio::time::sleep_until(due).await;
        match tokio::time::timeout_at(end, resp.chunk()).await {
            Err(_) => break,
            Ok(Ok(Some(c))) => out.bytes += c.len() as u64,
            Ok(Ok(None)) | Ok(Err(_)) => {
                out.ended_by_server = true;
                break;
            }
        }
    }
    out.seconds = start.elapsed().as_secs_f64();
    out
}

/// The URL of an HLS playlist's entry `uri` (absolute, host-relative or relative), the
/// playlist being at `playlist_url` on `base` (`http://host:port`).
pub fn resolve(base: &str, playlist_url: &str, uri: &str) -> String {
    if uri.starts_with("http://") || uri.starts_with("https://") {
        uri.to_string()
    } else if uri.starts_with('/') {
        format!("{base}{uri}")
    } else {
        format!("{}/{uri}", playlist_url.rsplit_once('/').map_or(base, |(dir, _)| dir))
    }
}

/// The first media URI of an HLS playlist's text.
pub fn first_uri(playlist: &str) -> Option<&str> {
    playlist.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Tally of outcomes: `"200"`, `"503"`, … or the failure reason when no response came.
pub fn statuses(records: &[ClientRecord]) -> std::collections::BTreeMap<String, u64> {
    let mut m = std::collections::BTreeMap::new();
    for r in records {
        let key = match r.status {
            Some(s) => s.to_string(),
            None => r.reason.clone().unwrap_or_else(|| "no response".into()),
        };
        *m.entry(key).or_insert(0) += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playlist_entries_resolve_like_a_player() {
        let (base, pl) = ("http://h:1", "http://h:1/live/u/p/7.m3u8");
        assert_eq!(resolve(base, pl, "/hls/u/p/7/3.ts"), "http://h:1/hls/u/p/7/3.ts");
        assert_eq!(resolve(base, pl, "3.ts"), "http://h:1/live/u/p/3.ts");
        assert_eq!(resolve(base, pl, "http://x/1.ts"), "http://x/1.ts");
        assert_eq!(first_uri("#EXTM3U\n#EXTINF:2,\n\n 0.ts \n1.ts\n"), Some("0.ts"));
        assert_eq!(first_uri("#EXTM3U\n"), None);
    }
}
