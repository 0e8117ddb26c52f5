//! Media: live pacing, live HLS window and sessions, VOD byte ranges.

mod common;

use std::time::{Duration, Instant};

use common::*;
use fakeprovider::LimitMode;

/// Bytes received in `window` after the first chunk arrived.
async fn measure(resp: &mut reqwest::Response, window: Duration) -> (usize, Vec<u8>) {
    let first = resp.chunk().await.unwrap().unwrap();
    let start = Instant::now();
    let mut total = 0;
    while start.elapsed() < window {
        match tokio::time::timeout(window.saturating_sub(start.elapsed()), resp.chunk()).await {
            Ok(Ok(Some(c))) => total += c.len(),
            Ok(_) => panic!("live stream ended"),
            Err(_) => break,
        }
    }
    (total, first.to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_is_paced_at_the_real_bitrate_and_is_ts() {
    let p = start(config(&[("u", "p", 1)])).await;
    let mut r = client().get(format!("{}/live/u/p/1.ts", p.url())).send().await.unwrap();
    let (bytes, first) = measure(&mut r, Duration::from_secs(2)).await;
    let expected = 2_277_244.0 / 10.0 * 2.0;
    let ratio = bytes as f64 / expected;
    assert!((0.85..=1.15).contains(&ratio), "got {bytes} bytes, expected ~{expected}");
    assert_eq!(first.len() % 188, 0);
    assert!(is_ts(&first));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_is_paced_at_a_configured_bitrate() {
    let mut cfg = config(&[("u", "p", 1)]);
    cfg.bitrate_bps = Some(8_000_000);
    let p = start(cfg).await;
    let mut r = client().get(format!("{}/u/p/1.ts", p.url())).send().await.unwrap();
    let (bytes, _) = measure(&mut r, Duration::from_secs(2)).await;
    let ratio = bytes as f64 / 2_000_000.0;
    assert!((0.85..=1.15).contains(&ratio), "got {bytes} bytes");
    let sent = p.counters().accounts["u"].bytes_sent;
    assert!(sent as usize >= bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_joins_at_the_live_point_and_loops() {
    let mut cfg = config(&[("u", "p", 0)]);
    cfg.bitrate_bps = Some(20_000_000); // the 2.2 MB file loops in < 1 s
    let p = start(cfg).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sample = sample();
    let mut r = client().get(format!("{}/live/u/p/5.ts", p.url())).send().await.unwrap();
    let data = read_n(&mut r, 3_000_000).await;
    assert!(data.len() >= 3_000_000);
    assert!(is_ts(&data[..2_999_976]));
    // The stream is the sample, started somewhere (not at 0) and wrapped around.
    let start = sample
        .windows(188 * 4)
        .step_by(188)
        .position(|w| w == &data[..188 * 4])
        .expect("stream content comes from the sample")
        * 188;
    assert!(start > 0, "joined at the live point, not the file start");
    let tail = sample.len() - start;
    assert_eq!(&data[..tail], &sample[start..]);
    assert_eq!(&data[tail..tail + 10_000], &sample[..10_000]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_reader_gets_no_large_burst() {
    let p = start(config(&[("u", "p", 1)])).await;
    let mut r = client().get(format!("{}/live/u/p/1.ts", p.url())).send().await.unwrap();
    r.chunk().await.unwrap();
    // Not reading for a while: the provider must not pile up the backlog.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent_before = p.counters().accounts["u"].bytes_sent;
    // Produced bytes stay bounded by time (plus at most a few ticks).
    assert!(sent_before < 2_277_244 / 10 * 2, "sent {sent_before}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hls_window_advances_and_segments_are_ts() {
    let p = start(config(&[("u", "p", 1)])).await;
    let c = client();
    let url = format!("{}/live/u/p/3.m3u8", p.url());
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/vnd.apple.mpegurl");
    let text = r.text().await.unwrap();
    assert!(text.starts_with("#EXTM3U"));
    assert!(text.contains("#EXT-X-TARGETDURATION:2"));
    assert!(!text.contains("#EXT-X-ENDLIST"));
    let seq =
        |t: &str| -> u64 { t.lines().find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:")).unwrap().parse().unwrap() };
    let s0 = seq(&text);
    let uris: Vec<&str> = text.lines().filter(|l| l.starts_with("/hls/")).collect();
    assert!((3..=5).contains(&uris.len()));
    assert_eq!(uris[0], format!("/hls/u/p/3/{s0}.ts"));

    let seg = c.get(format!("{}{}", p.url(), uris[0])).send().await.unwrap().bytes().await.unwrap();
    assert!(seg.len() > 400_000);
    assert!(is_ts(&seg));
    // seq % 5 selects the fixture
    let fixture =
        std::fs::read(format!("{}/../../testdata/media/hls/seg{:03}.ts", env!("CARGO_MANIFEST_DIR"), s0 % 5)).unwrap();
    assert_eq!(&seg[..], &fixture[..]);

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let text2 = c.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(seq(&text2) > s0, "media sequence advances");
    // One viewer = one connection, however many requests it makes.
    let u = p.counters().accounts["u"].clone();
    assert_eq!((u.open, u.opened), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hls_sessions_are_limited_and_expire() {
    let mut cfg = config(&[("u", "p", 1)]);
    cfg.hls_session_timeout_ms = 400;
    let p = start(cfg).await;
    let c = client();
    let get = |path: &str| {
        let c = c.clone();
        let url = format!("{}{path}", p.url());
        async move { c.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get("/live/u/p/1.m3u8").await, 200);
    assert_eq!(get("/hls/u/p/1/0.ts").await, 200);
    assert_eq!(p.counters().accounts["u"].open, 1);
    // At the limit: another channel (HLS or TS) is refused.
    assert_eq!(get("/live/u/p/2.m3u8").await, 403);
    assert_eq!(get("/hls/u/p/2/7.ts").await, 403);
    assert_eq!(get("/live/u/p/2.ts").await, 403);
    // Requests keep the session alive...
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(get("/live/u/p/1.m3u8").await, 200);
    }
    assert_eq!(p.counters().accounts["u"].opened, 1);
    // ...and silence releases it.
    wait_counters(&p, Duration::from_secs(2), |c| c.accounts["u"].open == 0).await;
    assert_eq!(get("/live/u/p/2.m3u8").await, 200);
    let u = p.counters().accounts["u"].clone();
    assert_eq!((u.opened, u.refused, u.max_concurrent), (2, 3, 1));
    assert_eq!(get("/hls/u/p/2/x.ts").await, 404);
    assert_eq!(get("/hls/u/p/99/1.ts").await, 404);
    assert_eq!(get("/hls/u/bad/2/1.ts").await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hls_cut_oldest_replaces_session() {
    let mut cfg = config(&[("u", "p", 1)]);
    cfg.limit_mode = LimitMode::CutOldest;
    let p = start(cfg).await;
    let c = client();
    for id in [1, 2] {
        let r = c.get(format!("{}/live/u/p/{id}.m3u8", p.url())).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let u = p.counters().accounts["u"].clone();
    assert_eq!((u.open, u.cut, u.max_concurrent), (1, 1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vod_ranges() {
    let p = start(config(&[("u", "p", 0)])).await;
    let c = client();
    let sample = sample();
    let url = format!("{}/movie/u/p/21.ts", p.url());

    let r = c.get(&url).header("Range", "bytes=1000-1999").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 1000-1999/2277244");
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert_eq!(r.headers()["content-length"], "1000");
    assert_eq!(&r.bytes().await.unwrap()[..], &sample[1000..2000]);

    let r = c.get(&url).header("Range", "bytes=2277000-").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 2277000-2277243/2277244");
    assert_eq!(&r.bytes().await.unwrap()[..], &sample[2_277_000..]);

    let r = c.get(&url).header("Range", "bytes=-188").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(&r.bytes().await.unwrap()[..], &sample[sample.len() - 188..]);

    let r = c.get(&url).header("Range", "bytes=3000000-").send().await.unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */2277244");

    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert_eq!(r.headers()["content-length"], "2277244");
    assert_eq!(&r.bytes().await.unwrap()[..], &sample[..]);

    let r = c.get(format!("{}/series/u/p/31.mkv", p.url())).header("Range", "bytes=0-187").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(&r.bytes().await.unwrap()[..], &sample[..188]);

    wait_counters(&p, Duration::from_secs(2), |c| c.accounts["u"].open == 0).await;
    let u = p.counters().accounts["u"].clone();
    assert_eq!(u.opened, 5, "416 is not a connection");
    assert_eq!(u.bytes_sent, 1000 + 244 + 188 + 2_277_244 + 188);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_channel_can_send_another_fixture_or_a_page() {
    let mut cfg = config(&[("u", "p", 1)]);
    cfg.live_media = vec![
        fakeprovider::ChannelMedia { channel: 2, media: fakeprovider::LiveMedia::Hevc360p25 },
        fakeprovider::ChannelMedia { channel: 3, media: fakeprovider::LiveMedia::Html },
    ];
    let p = start(cfg).await;
    let fixture = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/media/hevc-360p25.ts")).unwrap();
    // Channel 2 loops the HEVC fixture at its own rate (~69 KB/s): every packet it sends is
    // one of the fixture's.
    let mut r = client().get(format!("{}/live/u/p/2.ts", p.url())).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "video/mp2t");
    let (bytes, first) = measure(&mut r, Duration::from_secs(1)).await;
    let expected = fixture.len() as f64 / 4.0;
    assert!((0.7..=1.3).contains(&(bytes as f64 / expected)), "got {bytes} bytes in 1 s, expected ~{expected}");
    let packets: std::collections::HashSet<&[u8]> = fixture.chunks(188).collect();
    assert!(first.chunks(188).all(|pkt| packets.contains(pkt)), "not the HEVC fixture's packets");
    drop(r);
    // Channel 3 is dead: a web page, and the slot is free again once it is sent.
    let page = client().get(format!("{}/live/u/p/3.ts", p.url())).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(page.text().await.unwrap().contains("<html>"));
    wait_counters(&p, Duration::from_secs(2), |c| c.accounts["u"].open == 0).await;
    let mut r = client().get(format!("{}/live/u/p/1.ts", p.url())).send().await.unwrap();
    assert_eq!(r.status(), 200, "the page kept the only slot");
    assert!(is_ts(&r.chunk().await.unwrap().unwrap()));
}
