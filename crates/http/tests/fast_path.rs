//! The live TS fast path (`server`): a live stream answered over HTTP/1.x is
//! written by the server itself, close-delimited — `connection: close`, no
//! `transfer-encoding`, no `content-length`, nothing but TS bytes on the wire
//! — and players read it; other responses (HEAD, the API) are hyper's as before.

mod common;

use std::time::Duration;

use common::{ffprobe_auth, gateway, TOKEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tunerpool_relay::settings::RelaySettings;

fn fast() -> RelaySettings {
    RelaySettings { linger: Duration::from_millis(300), ..RelaySettings::default() }
}

/// Sends `request` on a raw socket and reads until the head and at least `body` bytes of body arrived (or the
/// connection ended); returns the head and the body bytes read.
async fn raw(base: &str, request: String, body: usize) -> (String, Vec<u8>, tokio::net::TcpStream) {
    let addr = base.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            if got.len() - end - 4 >= body {
                let head = String::from_utf8(got[..end + 4].to_vec()).unwrap();
                return (head, got[end + 4..].to_vec(), tcp);
            }
        }
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await.expect("the stream arrives") {
            Ok(0) | Err(_) => {
                let end = got.windows(4).position(|w| w == b"\r\n\r\n").expect("a head");
                let head = String::from_utf8(got[..end + 4].to_vec()).unwrap();
                return (head, got[end + 4..].to_vec(), tcp);
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Whole TS packets from the first byte: every 188th byte a sync byte.
fn ts_aligned(body: &[u8]) -> bool {
    body.len() >= 188 * 100 && body.chunks_exact(188).all(|p| p[0] == 0x47)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_ts_is_close_delimited_raw_ts_for_http_1_1_and_1_0() {
    let g = gateway(fast(), |_| {}).await;
    let auth = format!("authorization: Bearer {TOKEN}\r\n");
    // An HTTP/1.1 client asking for keep-alive: the stream is close-delimited all the same.
    let request = format!("GET /stream/1.ts HTTP/1.1\r\nhost: x\r\nconnection: keep-alive\r\n{auth}\r\n");
    let (head, body, tcp) = raw(&g.base, request, 400_000).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(header(&head, "connection"), Some("close"), "{head}");
    assert_eq!(header(&head, "content-type"), Some("video/mp2t"), "{head}");
    assert!(header(&head, "x-tunerpool-session").is_some() && header(&head, "date").is_some(), "{head}");
    assert!(header(&head, "transfer-encoding").is_none() && header(&head, "content-length").is_none(), "{head}");
    assert!(ts_aligned(&body), "not raw TS from the first byte (chunk framing?): {:02x?}", &body[..16]);
    drop(tcp);

    // An HTTP/1.0 client: an HTTP/1.0 answer, the same bytes.
    let request = format!("GET /stream/1.ts HTTP/1.0\r\n{auth}\r\n");
    let (head, body, tcp) = raw(&g.base, request, 200_000).await;
    assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
    assert!(header(&head, "transfer-encoding").is_none() && header(&head, "content-length").is_none(), "{head}");
    assert!(ts_aligned(&body), "{:02x?}", &body[..16]);
    drop(tcp);

    // The viewers that left are noticed, and the session lingers out and ends.
    let sessions = || async {
        let resp =
            reqwest::Client::new().get(format!("{}/api/v1/sessions", g.base)).bearer_auth(TOKEN).send().await.unwrap();
        resp.json::<serde_json::Value>().await.unwrap()
    };
    tunerpool_testkit::eventually("the session ended once its viewers left", Duration::from_secs(5), || async {
        sessions().await.as_array().is_some_and(|a| a.is_empty()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_closes_leaves_at_once_even_without_data() {
    // The upstream sends 600 kB (a few keyframes) and then nothing, long before the relay would call it stalled:
    // no chunk comes that a write could fail on, the closed socket alone must tell.
    let settings = RelaySettings { stall_timeout: Duration::from_secs(30), ..fast() };
    let g = gateway(settings, |_| {}).await;
    g.fake.set_fault(fakeprovider::Fault::new(fakeprovider::FaultKind::Stall { after_bytes: 600_000 }));
    let request = format!("GET /stream/1.ts HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\n\r\n");
    let (_, _, tcp) = raw(&g.base, request, 1000).await;
    let viewers = || async {
        let resp =
            reqwest::Client::new().get(format!("{}/api/v1/sessions", g.base)).bearer_auth(TOKEN).send().await.unwrap();
        let v: serde_json::Value = resp.json().await.unwrap();
        v[0]["viewers"].as_array().map_or(0, Vec::len)
    };
    assert_eq!(viewers().await, 1);
    // Wait until the upstream went quiet (600 kB at 8 Mbit/s is 0.6 s), then leave.
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(tcp);
    tunerpool_testkit::eventually("the viewer left its session", Duration::from_secs(2), || async {
        (viewers().await == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_and_keep_alive_requests_stay_with_hyper() {
    let g = gateway(fast(), |_| {}).await;
    // Two API requests on one keep-alive connection, then a live stream on the same connection.
    let addr = g.base.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = format!("authorization: Bearer {TOKEN}\r\n");
    for _ in 0..2 {
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tcp.read(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
        assert!(header(&text, "connection").is_none(), "kept alive: {text}");
    }
    tcp.write_all(format!("GET /stream/1.ts HTTP/1.1\r\nhost: x\r\n{auth}\r\n").as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    while got.len() < 300_000 {
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "the stream ended");
        got.extend_from_slice(&buf[..n]);
    }
    let end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&got[..end]).to_string();
    assert_eq!(header(&head, "connection"), Some("close"), "{head}");
    assert!(ts_aligned(&got[end + 4..]), "{head}");
    drop(tcp);

    // HEAD: hyper's answer, no body.
    let resp = reqwest::Client::new()
        .head(format!("{}/stream/1.ts", g.base))
        .bearer_auth(TOKEN)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "video/mp2t");
}

/// Real players read the fast path: ffprobe finds the programme, ffmpeg remuxes it without an error, VLC and
/// mpv play it (`.ci/run` installs them; a missing player fails the test, never skips it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_read_the_close_delimited_stream() {
    let g = gateway(fast(), |_| {}).await;
    let url = format!("{}/stream/1.ts", g.base);
    let out = tokio::process::Command::new("ffprobe")
        .args(["-headers", &ffprobe_auth(), "-v", "error", "-show_entries", "stream=codec_name"])
        .args(["-of", "csv=p=0", "-read_intervals", "%+3", &url])
        .output()
        .await
        .expect("ffprobe must be installed (apt-get install ffmpeg)");
    let codecs = String::from_utf8_lossy(&out.stdout);
    assert!(codecs.contains("h264") && codecs.contains("aac"), "{codecs:?} {}", String::from_utf8_lossy(&out.stderr));

    // ffmpeg reads 3 s of it as any player would and reports no error.
    let out = tokio::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-headers", &ffprobe_auth(), "-i", &url, "-t", "3", "-f", "null", "-"])
        .output()
        .await
        .expect("ffmpeg must be installed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(!errors.to_lowercase().contains("invalid data"), "{errors}");

    // VLC (`apt-get install vlc-bin vlc-plugin-base`): 3 s of the stream to a file, demuxed as TS.
    // VLC refuses to run as root: then it runs as `nobody` (through setpriv), which the CI container has.
    let runs =
        |cmd: &[&str]| std::process::Command::new(cmd[0]).args(&cmd[1..]).output().is_ok_and(|o| o.status.success());
    let as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];
    let vlc: Vec<&str> = if runs(&["cvlc", "--version"]) {
        vec!["cvlc"]
    } else if runs(&[as_nobody.as_slice(), &["cvlc", "--version"]].concat()) {
        [as_nobody.as_slice(), &["cvlc"]].concat()
    } else {
        panic!("VLC must be installed for this test (apt-get install vlc-bin vlc-plugin-base; .ci/run does it)")
    };
    {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let file = dir.path().join("vlc.ts");
        // VLC sends no custom headers: it logs in as a downstream user, through the client output.
        g.user("vlc", "vlcpw", 0).await;
        let url = format!("{}/live/vlc/vlcpw/1.ts", g.base);
        let sout = format!("--sout=#std{{access=file,mux=ts,dst={}}}", file.display());
        let out = tokio::process::Command::new(vlc[0])
            .args(&vlc[1..])
            .args(["-I", "dummy", "--no-audio", "--run-time=3", "--play-and-exit", &sout, &url])
            .env("HOME", dir.path())
            .output()
            .await
            .unwrap();
        let written = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        assert!(written > 200_000, "VLC wrote {written} bytes: {}", String::from_utf8_lossy(&out.stderr));
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains("h264"), "{}", String::from_utf8_lossy(&out.stderr));
    }

    // mpv (`apt-get install mpv`): plays 3 s of it, video and audio decoded to null outputs, and ends at
    // that mark ("End of file"), not at an error.
    g.user("mpv", "mpvpw", 0).await;
    let url = format!("{}/live/mpv/mpvpw/1.ts", g.base);
    let out = tokio::process::Command::new("mpv")
        .args(["--no-config", "--ytdl=no", "--vo=null", "--ao=null", "--end=3", "--term-status-msg=", &url])
        .output()
        .await
        .expect("mpv must be installed for this test (apt-get install mpv; .ci/run does it)");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "mpv: {said}");
    assert!(said.contains("Video --vid=1 (h264") && said.contains("Audio --aid=1 (aac"), "mpv: {said}");
    assert!(said.contains("Exiting... (End of file)"), "mpv: {said}");
}
