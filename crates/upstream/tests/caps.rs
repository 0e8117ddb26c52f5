//! Bounded memory and disk against hostile bodies served over a real socket:
//! an endless answer (a provider URL pointing at a live stream) hits the cap
//! of its kind with an error naming the key to raise, leaving no spool file
//! behind; a gzip playlist of junk is parsed with its skipped lines counted
//! but only the first examples kept.

use std::io::Write;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tunerpool_upstream::m3u::{fetch, M3uSource};
use tunerpool_upstream::xtream::{Section, XtreamClient};
use tunerpool_upstream::{Caps, HttpSettings, UpstreamError, UpstreamHttp};

/// What the test server answers every request with.
#[derive(Clone)]
enum Answer {
    /// `200 OK` and bytes forever (no length), until the client hangs up.
    Endless(&'static [u8]),
    /// `200 OK` with this body.
    Body(Vec<u8>),
}

/// A plain HTTP/1.1 server on a free loopback port; answers every
/// connection with `answer`.
async fn serve(answer: Answer) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                match answer {
                    Answer::Endless(chunk) => {
                        let _ = sock.write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n").await;
                        let block = chunk.repeat(64 * 1024 / chunk.len());
                        while sock.write_all(&block).await.is_ok() {}
                    }
                    Answer::Body(body) => {
                        let head =
                            format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
                        let _ = sock.write_all(head.as_bytes()).await;
                        let _ = sock.write_all(&body).await;
                    }
                }
            });
        }
    });
    addr
}

fn http(spool: &std::path::Path, caps: Caps) -> UpstreamHttp {
    UpstreamHttp::new(HttpSettings { spool_dir: spool.to_path_buf(), caps, ..Default::default() }).unwrap()
}

const SMALL: Caps = Caps { playlist: 2 << 20, api: 1 << 20, guide: 3 << 20 };

/// Files left in the spool dir.
fn spooled(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[tokio::test]
async fn an_endless_playlist_hits_the_playlist_cap() {
    let addr = serve(Answer::Endless(b"#EXTINF:-1,A\nhttp://h/a.ts\n")).await;
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("tmp");
    let url = format!("http://{addr}/get.php?username=u&password=Secr3t");
    let Err(e) = fetch(&http(&spool, SMALL), &M3uSource::parse(&url).unwrap(), &[]).await else {
        panic!("an endless playlist was accepted")
    };
    let msg = e.to_string();
    assert!(matches!(e, UpstreamError::TooLarge { limit, .. } if limit == 2 << 20), "{msg}");
    assert!(msg.contains("more than 2 MiB") && msg.contains("sync.max_playlist_bytes"), "{msg}");
    assert!(!msg.contains("Secr3t"), "{msg}");
    assert_eq!(spooled(&spool), 0, "the spool file is gone");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&spool).unwrap().permissions().mode() & 0o777, 0o700, "spool dir owner-only");
    }
}

#[tokio::test]
async fn endless_player_api_answers_hit_the_api_cap() {
    let addr = serve(Answer::Endless(b"[{\"stream_id\":1,\"name\":\"x\"},")).await;
    let dir = tempfile::tempdir().unwrap();
    let client = XtreamClient::new(http(dir.path(), SMALL), &format!("http://{addr}"), "u", "Secr3t").unwrap();
    for e in [client.authenticate().await.unwrap_err(), client.download_items(Section::Live).await.err().unwrap()] {
        let msg = e.to_string();
        assert!(msg.contains("more than 1 MiB") && msg.contains("sync.max_api_bytes"), "{msg}");
        assert!(!msg.contains("Secr3t"), "{msg}");
    }
    assert_eq!(spooled(dir.path()), 0);
}

#[tokio::test]
async fn an_endless_guide_hits_the_guide_cap() {
    let addr = serve(Answer::Endless(b"<programme channel=\"a\" start=\"20250101000000\"/>")).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("epg/provider-1.xml");
    let url = format!("http://{addr}/xmltv.php?username=u&password=Secr3t");
    let e = tunerpool_upstream::epg::download_guide(&http(&dir.path().join("tmp"), SMALL), &url, &[], &dest)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("more than 3 MiB") && e.contains("epg.max_guide_bytes"), "{e}");
    assert!(!dest.exists());
}

/// A gzip playlist (no `Content-Encoding`) that unpacks past the cap.
#[tokio::test]
async fn a_gzip_bomb_playlist_hits_the_cap_on_its_unpacked_size() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(b"#EXTM3U\n#EXTINF:-1,A\nhttp://h/a.ts\n").unwrap();
    for _ in 0..8 {
        gz.write_all(&[b'\n'; 1 << 20]).unwrap();
    }
    let body = gz.finish().unwrap();
    assert!(body.len() < 64 * 1024);
    let addr = serve(Answer::Body(body)).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}/list.m3u.gz");
    let mut batches = fetch(&http(dir.path(), SMALL), &M3uSource::parse(&url).unwrap(), &[]).await.unwrap();
    while batches.next().await.is_some() {}
    let e = batches.finish().await.unwrap_err().to_string();
    assert!(e.contains("more than 2 MiB") && e.contains("sync.max_playlist_bytes"), "{e}");
}

/// A gzip playlist of a million junk lines (like the one that made `serve`
/// peak at 1 GB): every junk line is counted, only the first 20 are kept,
/// and the entries around them still come through.
#[tokio::test]
async fn a_junk_playlist_keeps_only_the_first_skipped_examples() {
    const JUNK_LINES: usize = 1_000_000;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"#EXTM3U\n#EXTINF:-1,A\nhttp://h/a.ts\n").unwrap();
    for i in 0..JUNK_LINES {
        writeln!(gz, "<td class=\"junk\">{i}</td>").unwrap();
    }
    gz.write_all(b"#EXTINF:-1,B\nhttp://h/b.ts\n").unwrap();
    let body = gz.finish().unwrap();
    let addr = serve(Answer::Body(body)).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}/junk.m3u.gz");
    let mut batches = fetch(&http(dir.path(), Caps::default()), &M3uSource::parse(&url).unwrap(), &[]).await.unwrap();
    let mut entries = 0;
    while let Some(b) = batches.next().await {
        entries += b.len();
    }
    let summary = batches.finish().await.unwrap();
    assert_eq!(entries, 2);
    assert_eq!(summary.skipped_count, JUNK_LINES, "every junk line is counted");
    assert_eq!(summary.skipped.len(), tunerpool_formats::m3u::MAX_SKIPPED_KEPT, "only the first examples are kept");
    assert_eq!(summary.skipped[0].line, 4);
}
