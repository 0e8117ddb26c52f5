//! The `--client raw` viewer: a plain TCP socket instead of reqwest.
//!
//! Exists because the load generator shares the machine with the servers it measures: at
//! 2000 viewers × 8 Mbit/s (2 GB/s over loopback on 2 cores) the reqwest client's own work —
//! hyper's read buffer per connection (the load generator's peak RSS reached 1.2 GB), its
//! body layers per read, a wake-up per 32 KiB — decided whether the viewers got the rate at
//! all, for the bare reference as much as for tunerpool (BENCHMARKS.md, "2000 and 3000 viewers:
//! the load generator was the limit"). This client does the least a player must: send a `GET`, parse the
//! response head (`httparse`), then read the body straight from the socket into one scratch
//! buffer per worker thread, where it is counted and TS-checked and dropped, so no viewer
//! holds a buffer of its own.
//!
//! What it does not do: `https`, redirects, chunked bodies (refused with a reason naming the
//! default client), keep-alive. The body is close-delimited (what a live stream is, from
//! tunerpool's fast path and from the bare server) or sized by `Content-Length`.

use std::cell::RefCell;
use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::client::{
    innermost, is_emfile, BodySource, ClientRecord, End, Job, Reading, Shared, Step, REASON_EMFILE, USER_AGENT,
};

/// The most a response head may take.
const MAX_HEAD: usize = 16 * 1024;
/// Headers parsed at most.
const MAX_HEADERS: usize = 64;
/// The per-thread read buffer: large enough that a burst of several chunks is one read.
const SCRATCH: usize = 256 * 1024;

thread_local! {
    static SCRATCH_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH]);
}

/// Where a URL's request goes: `host:port` to connect to, the `Host` header, the request target.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    addr: String,
    host: String,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, String> {
        let u = reqwest::Url::parse(url).map_err(|e| format!("bad url: {e}"))?;
        if u.scheme() != "http" {
            return Err(format!("the raw client speaks http only, not {}: drop --client raw", u.scheme()));
        }
        let host = u.host_str().ok_or("bad url: no host")?;
        let port = u.port_or_known_default().unwrap_or(80);
        let path = match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        };
        let host_header = match u.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        Ok(Target { addr: format!("{host}:{port}"), host: host_header, path })
    }
}

/// How the body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Body {
    /// At the server's close.
    Close,
    /// After this many more bytes.
    Sized(u64),
}

/// The response head: its status, how the body ends, and its length in `buf`.
fn parse_head(buf: &[u8]) -> Result<Option<(u16, Body, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("bad response head: {e}")),
    };
    let status = resp.code.unwrap_or(0);
    let mut body = Body::Close;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("chunked body: the raw client reads close-delimited or sized bodies; drop --client raw".into());
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse().ok());
            body = Body::Sized(n.ok_or("bad response head: Content-Length is not a number")?);
        }
    }
    Ok(Some((status, body, len)))
}

fn io_reason(what: &str, e: &io::Error) -> String {
    if is_emfile(e) {
        REASON_EMFILE.to_string()
    } else {
        format!("{what}: {}", innermost(e))
    }
}

/// Connect, request, read the head; then read the body as [`Reading`]. Returns whether the
/// client was counted as streaming.
pub(crate) async fn measure(job: &Job, shared: &Shared, rec: &mut ClientRecord) -> bool {
    let target = match Target::parse(&job.url) {
        Ok(t) => t,
        Err(e) => {
            rec.fail("request error", Some(e));
            return false;
        }
    };
    let t_req = Instant::now();
    let header_deadline = job.end_at.min(t_req + shared.connect_timeout + shared.read_timeout);
    let connect_deadline = header_deadline.min(t_req + shared.connect_timeout);
    let mut tcp = match tokio::time::timeout_at(connect_deadline, TcpStream::connect(&target.addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            rec.fail(io_reason("connect error", &e), Some(format!("connect: {e}")));
            return false;
        }
        Err(_) => {
            rec.fail("connect timeout", None);
            return false;
        }
    };
    let _ = tcp.set_nodelay(true);
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {USER_AGENT}\r\nAccept: */*\r\n\r\n",
        target.path, target.host
    );
    let mut head = Vec::with_capacity(4096);
    let got_head = tokio::time::timeout_at(header_deadline, async {
        let request_error = |e: io::Error| (io_reason("request error", &e), Some(e.to_string()));
        tcp.write_all(request.as_bytes()).await.map_err(request_error)?;
        loop {
            if head.len() >= MAX_HEAD {
                return Err(("bad response head: longer than 16 KiB".to_string(), None));
            }
            let mut part = [0u8; 4096];
            let n = tcp.read(&mut part).await.map_err(request_error)?;
            if n == 0 {
                return Err(("request error: closed before a response head".to_string(), None));
            }
            head.extend_from_slice(&part[..n]);
            if let Some(parsed) = parse_head(&head).map_err(|e| (e, None))? {
                return Ok(parsed);
            }
        }
    })
    .await;
    let (status, body, head_len) = match got_head {
        Ok(Ok(h)) => h,
        Ok(Err((reason, error))) => {
            rec.fail(reason, error);
            return false;
        }
        Err(_) => {
            rec.fail_no_head(header_deadline, job);
            return false;
        }
    };
    let Some(mut reading) = Reading::start(t_req, status, shared, rec) else {
        return false;
    };
    let mut left = match body {
        Body::Close => u64::MAX,
        Body::Sized(n) => n,
    };
    // What came with the head is the body's start.
    let early = &head[head_len..];
    let early = &early[..early.len().min(usize::try_from(left).unwrap_or(usize::MAX))];
    if !early.is_empty() {
        reading.feed(Instant::now(), early);
        left -= early.len() as u64;
    }
    drop(head);
    reading.read_body(RawBody { tcp, left }, job, shared, rec).await;
    true
}

/// A body read straight from the socket into the thread's scratch buffer.
struct RawBody {
    tcp: TcpStream,
    /// Bytes still to come (`u64::MAX`: until the server closes).
    left: u64,
}

impl BodySource for RawBody {
    async fn step(&mut self, reading: &mut Reading) -> Step {
        if self.left == 0 {
            return Step::End(End::Eof);
        }
        let body_error =
            |e: io::Error| Step::End(End::Error { reason: io_reason("body error", &e), error: format!("body: {e}") });
        if let Err(e) = self.tcp.readable().await {
            return body_error(e);
        }
        let read = SCRATCH_BUF.with(|buf| {
            let mut buf = buf.borrow_mut();
            let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
            let n = self.tcp.try_read(&mut buf[..want])?;
            if n > 0 {
                reading.feed(Instant::now(), &buf[..n]);
            }
            Ok::<_, io::Error>(n)
        });
        match read {
            Ok(0) => Step::End(End::Eof),
            Ok(n) => {
                self.left -= n as u64;
                Step::Fed
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Step::Nothing,
            Err(e) => body_error(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_keep_the_port_and_the_query() {
        assert_eq!(
            Target::parse("http://127.0.0.1:8080/live/u/p/7.ts?profile=x").unwrap(),
            Target {
                addr: "127.0.0.1:8080".into(),
                host: "127.0.0.1:8080".into(),
                path: "/live/u/p/7.ts?profile=x".into()
            }
        );
        assert_eq!(Target::parse("http://tv.example/s/1").unwrap().addr, "tv.example:80");
        assert!(Target::parse("https://tv.example/s/1").unwrap_err().contains("http only"));
    }

    #[test]
    fn heads_say_how_the_body_ends() {
        let close = b"HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nConnection: close\r\n\r\nG";
        assert_eq!(parse_head(close).unwrap(), Some((200, Body::Close, close.len() - 1)));
        let sized = b"HTTP/1.1 404 Not Found\r\ncontent-length: 12\r\n\r\n";
        assert_eq!(parse_head(sized).unwrap(), Some((404, Body::Sized(12), sized.len())));
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Type: vid").unwrap(), None);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap_err().contains("chunked"));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").unwrap_err().contains("Content-Length"));
        assert!(parse_head(b"NOT HTTP\r\n\r\n").is_err());
    }
}
