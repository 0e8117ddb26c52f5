//! The bare broadcast server (`loadgen::bare`, the `barecast` binary) against an in-process
//! `fakeprovider`, over real sockets: many viewers of a channel, one upstream connection.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fakeprovider::{AccountSpec, FakeConfig, FakeProvider};
use loadgen::bare::{Config, Server, CHUNK_BYTES};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Body bytes each viewer reads: a few chunks.
const READ: usize = 3 * CHUNK_BYTES;

async fn provider() -> FakeProvider {
    let cfg =
        FakeConfig { bitrate_bps: Some(8_000_000), ..FakeConfig::with_accounts(vec![AccountSpec::new("u", "p", 0)]) };
    FakeProvider::start(cfg).await.expect("fakeprovider starts")
}

/// A bare server in front of the provider, on a free port.
async fn bare(p: &FakeProvider) -> (std::sync::Arc<Server>, SocketAddr) {
    let server = Server::new(Config::new(format!("{}/live/u/p/{{channel}}.ts", p.url()))).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.clone().run(listener));
    (server, addr)
}

/// One viewer: the response head and the first `n` body bytes; the connection is closed after.
async fn watch(addr: SocketAddr, path: &str, n: usize) -> (String, Vec<u8>) {
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes()).await.unwrap();
    let mut data = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let k = sock.read(&mut buf).await.unwrap();
        assert!(k > 0, "connection closed before the head: {:?}", String::from_utf8_lossy(&data));
        data.extend_from_slice(&buf[..k]);
    };
    while data.len() < head_end + n {
        let k = sock.read(&mut buf).await.unwrap();
        assert!(k > 0, "stream ended after {} body bytes", data.len() - head_end);
        data.extend_from_slice(&buf[..k]);
    }
    let head = String::from_utf8(data[..head_end].to_vec()).unwrap();
    (head, data[head_end..head_end + n].to_vec())
}

/// Every 188th byte is a TS sync byte, from the first.
fn assert_ts(body: &[u8]) {
    assert_eq!(body.len() % 188, 0);
    let bad = body.chunks(188).filter(|p| p[0] != 0x47).count();
    assert_eq!(bad, 0, "{bad} of {} packets without the sync byte", body.len() / 188);
}

/// Wait until `what` holds, polling, at most 10 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_of_one_channel_share_one_upstream_connection() {
    let p = provider().await;
    let (server, addr) = bare(&p).await;

    let ((head_a, a), (head_b, b)) =
        tokio::join!(watch(addr, "/live/x/y/1.ts", READ), watch(addr, "/live/x/y/1.ts", READ));
    for head in [&head_a, &head_b] {
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("Content-Type: video/mp2t\r\n"), "{head}");
        assert!(head.contains("Connection: close\r\n"), "{head}");
    }
    assert_ts(&a);
    assert_ts(&b);

    let c = p.counters();
    assert_eq!(c.accounts["u"].opened, 1, "{c:?}");
    assert_eq!(c.total_opened, 1);
    assert_eq!(server.stats().upstreams_opened.load(Ordering::Relaxed), 1);
    assert_eq!(server.stats().viewers_total.load(Ordering::Relaxed), 2);

    // Both left: the channel closes its upstream (no linger), and a later viewer opens a new one.
    eventually("the upstream closes with its last viewer", || p.counters().accounts["u"].open == 0).await;
    let (_, again) = watch(addr, "/1", CHUNK_BYTES).await;
    assert_ts(&again);
    assert_eq!(p.counters().total_opened, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_channel_has_its_own_upstream_and_bad_paths_are_refused() {
    let p = provider().await;
    let (_server, addr) = bare(&p).await;

    let ((_, one), (_, two)) = tokio::join!(watch(addr, "/s/1.ts", READ), watch(addr, "/s/2.ts", READ));
    assert_ts(&one);
    assert_ts(&two);
    assert_eq!(p.counters().total_opened, 2);

    // Not a channel id: 404, and no upstream is opened for it.
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(b"GET /live/a%20b.ts HTTP/1.1\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    sock.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert_eq!(p.counters().total_opened, 2);
}
