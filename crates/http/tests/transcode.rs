//! Shared transcoding end to end (the simulated provider over real sockets, real ffmpeg): viewers of a profile
//! share one ffmpeg fed from the channel's one upstream; ffmpeg is supervised (restarted after `kill -9`, never
//! left behind); a failing template and an unknown profile are told.

mod common;

use std::time::Duration;

use common::{admin_get, api_client, gateway};
use futures_util::StreamExt;
use serde_json::Value;
use tunerpool_relay::settings::RelaySettings;
use tunerpool_relay::transcode::{Profile, TranscodeSettings};
use tunerpool_testkit::eventually;

/// The tests count this process's ffmpeg children: one test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// ffmpeg processes that are children of this test process (running or zombie).
fn our_ffmpegs() -> Vec<(u32, char)> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // pid (comm) state ppid ...
        let Some(close) = stat.rfind(')') else { continue };
        let comm = &stat[stat.find('(').unwrap() + 1..close];
        let mut rest = stat[close + 2..].split(' ');
        let state = rest.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid: u32 = rest.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if comm == "ffmpeg" && ppid == me {
            found.push((pid, state));
        }
    }
    found
}

async fn sessions(base: &str) -> Vec<Value> {
    let v: Value = api_client().get(format!("{base}/api/v1/sessions")).send().await.unwrap().json().await.unwrap();
    v.as_array().unwrap().clone()
}

/// Reads `n` bytes of a stream (or what came before it ended).
async fn read(url: String, n: usize) -> Vec<u8> {
    let resp = admin_get(url).await.unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.headers());
    let mut body = resp.bytes_stream();
    let mut got = Vec::new();
    while got.len() < n {
        match tokio::time::timeout(Duration::from_secs(20), body.next()).await {
            Ok(Some(Ok(b))) => got.extend_from_slice(&b),
            _ => break,
        }
    }
    got
}

/// ffprobe's width x height of the first video stream in `bytes`.
fn probe_size(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("got.ts");
    std::fs::write(&path, bytes).unwrap();
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height", "-of", "csv=p=0:s=x"])
        .arg(&path)
        .output()
        .expect("ffprobe is installed");
    // One line per program carrying the stream.
    String::from_utf8_lossy(&out.stdout).lines().find(|l| !l.trim().is_empty()).unwrap_or_default().trim().to_string()
}

fn settings() -> RelaySettings {
    let bad = Profile { name: "broken".into(), args: vec!["-c:v".into(), "no-such-codec".into()], max_running: 0 };
    RelaySettings {
        linger: Duration::from_millis(300),
        transcode: TranscodeSettings::default().with_profiles(&[bad]),
        ..RelaySettings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_of_a_profile_share_one_ffmpeg_and_one_upstream() {
    let _one = SERIAL.lock().await;
    let g = gateway(settings(), |_| {}).await;
    let url = format!("{}/stream/1.ts?profile=h264-480p", g.base);
    // Ten viewers of the profile and one of the plain channel, at once.
    let mut readers = Vec::new();
    for _ in 0..10 {
        readers.push(tokio::spawn(read(url.clone(), 400_000)));
    }
    let plain = tokio::spawn(read(format!("{}/stream/1.ts", g.base), 400_000));
    let running = eventually("one transcode running", Duration::from_secs(30), || async {
        let s = sessions(&g.base).await;
        let t: Vec<Value> = s.iter().filter(|s| s["profile"] == "h264-480p").cloned().collect();
        let all_in = t.len() == 1 && t[0]["viewers"].as_array().unwrap().len() == 10;
        (all_in && t[0]["state"] == "running" && t[0]["transcoder"]["pid"].is_u64()).then(|| t[0].clone())
    })
    .await;
    assert!(running["transcoder"]["pid"].is_u64(), "{running}");
    assert_eq!(our_ffmpegs().len(), 1, "one ffmpeg: {:?}", our_ffmpegs());
    for r in readers {
        let bytes = r.await.unwrap();
        assert_eq!(probe_size(&bytes), "854x480", "each viewer reads the transcode");
    }
    assert_eq!(probe_size(&plain.await.unwrap()), "1280x720", "the plain viewer the channel as it comes");
    assert_eq!(g.provider_connections(), 1, "plain and transcoded viewers share one upstream");

    // Everyone left: after the linger, no ffmpeg (nor a zombie) is left.
    eventually("no ffmpeg left", Duration::from_secs(10), || async { our_ffmpegs().is_empty().then_some(()) }).await;
    eventually("no session left", Duration::from_secs(10), || async {
        sessions(&g.base).await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_ffmpeg_is_restarted_and_its_viewers_kept() {
    let _one = SERIAL.lock().await;
    let g = gateway(settings(), |_| {}).await;
    let url = format!("{}/stream/2.ts?profile=h264-480p", g.base);
    let resp = admin_get(&url).await.unwrap();
    assert_eq!(resp.status(), 200);
    let (tx, rx) = tokio::sync::watch::channel(0usize);
    let viewer = tokio::spawn(async move {
        let mut body = resp.bytes_stream();
        let mut n = 0;
        while let Some(Ok(b)) = body.next().await {
            n += b.len();
            tx.send_replace(n);
        }
    });
    let first = eventually("ffmpeg running", Duration::from_secs(20), || async {
        match our_ffmpegs().as_slice() {
            [(pid, 'R' | 'S')] => Some(*pid),
            _ => None,
        }
    })
    .await;
    std::process::Command::new("kill").args(["-9", &first.to_string()]).status().unwrap();
    let restarted = eventually("a new ffmpeg", Duration::from_secs(20), || async {
        let s = sessions(&g.base).await;
        let t = s.iter().find(|s| s["profile"] == "h264-480p")?.clone();
        (t["transcoder"]["restarts"] == 1 && t["transcoder"]["pid"].as_u64().is_some_and(|p| p as u32 != first))
            .then_some(t)
    })
    .await;
    assert_eq!(restarted["viewers"].as_array().unwrap().len(), 1, "the viewer stayed: {restarted}");
    let before = *rx.borrow();
    eventually("bytes after the restart", Duration::from_secs(20), || async {
        (*rx.borrow() > before + 100_000).then_some(())
    })
    .await;
    viewer.abort();
    eventually("no ffmpeg left", Duration::from_secs(10), || async { our_ffmpegs().is_empty().then_some(()) }).await;

    // A viewer that leaves while its transcode starts leaves nothing behind either.
    let leaving = tokio::spawn(admin_get(format!("{}/stream/3.ts?profile=h264-720p", g.base)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    leaving.abort();
    eventually("no ffmpeg after a left start", Duration::from_secs(30), || async {
        (our_ffmpegs().is_empty() && sessions(&g.base).await.is_empty()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_template_and_an_unknown_profile_are_told() {
    let _one = SERIAL.lock().await;
    let g = gateway(settings(), |_| {}).await;
    let listed: Value =
        api_client().get(format!("{}/api/v1/profiles", g.base)).send().await.unwrap().json().await.unwrap();
    let names: Vec<&str> = listed.as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["copy", "h264-720p", "h264-480p", "aac-audio", "broken"], "{listed}");
    let resp = admin_get(format!("{}/stream/1.ts?profile=nope", g.base)).await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("\"nope\""));

    let resp = admin_get(format!("{}/stream/1.ts?profile=broken", g.base)).await.unwrap();
    assert_eq!(resp.status(), 502);
    let text = resp.text().await.unwrap();
    assert!(text.contains("profile broken") && text.contains("no-such-codec"), "{text}");
    // Its slot came back: the plain channel plays on the same 1-connection account.
    eventually("no session left", Duration::from_secs(10), || async {
        sessions(&g.base).await.is_empty().then_some(())
    })
    .await;
    assert_eq!(probe_size(&read(format!("{}/stream/1.ts", g.base), 300_000).await), "1280x720");
    assert!(our_ffmpegs().is_empty());
}
