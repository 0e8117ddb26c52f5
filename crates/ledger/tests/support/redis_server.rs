//! A throwaway `redis-server` for tests and benchmarks: own port, own temp dir, no persistence, killed on drop.
//!
//! Shared by `tests/`, `benches/` and `examples/` through `#[path]`. A missing `redis-server` is a failure,
//! never a skip: CI must really run the Redis tests.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server` child; dropping it kills and reaps the process.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Start a server on a free local port and wait until it answers PING. Panics with a clear message if
    /// `redis-server` (or `$REDIS_SERVER`) is not installed.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Like [`RedisServer::start`], with extra `redis-server` arguments (e.g. `["--requirepass", "x"]`).
    pub fn start_with(extra: &[&str]) -> Self {
        let mut last_error = String::new();
        // The free port can be taken between our probe and the server's bind: try a few.
        for _ in 0..5 {
            match Self::try_start(extra) {
                Ok(server) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("could not start redis-server: {last_error}");
    }

    fn try_start(extra: &[&str]) -> Result<Self, String> {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
        Self::try_start_on(port, extra)
    }

    fn try_start_on(port: u16, extra: &[&str]) -> Result<Self, String> {
        let binary = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let spawned = Command::new(&binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--dir", &dir.path().display().to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "`{binary}` not found: install redis-server (apt-get install redis-server) — the Redis ledger tests \
                 need a real server and are not skipped"
            ),
            Err(e) => panic!("cannot run `{binary}`: {e}"),
        };
        let mut server = RedisServer { child: Some(child), port, _dir: dir };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if server.answers_ping() {
                return Ok(server);
            }
            if let Some(child) = server.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("redis-server on port {port} exited with {status}"));
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(format!("redis-server on port {port} did not answer PING within 10 s"))
    }

    fn answers_ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 64];
        // A password-protected server answers -NOAUTH: it is up all the same.
        stream.write_all(b"PING\r\n").is_ok() && matches!(stream.read(&mut reply), Ok(n) if n > 0)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:{port}/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kill the server and start a new one on the same port, as an operator's restart does (no persistence: the
    /// new server starts empty). Panics if it cannot be started again.
    pub fn restart(&mut self) {
        self.kill();
        let mut last_error = String::new();
        // The old server's socket may linger a moment.
        for _ in 0..50 {
            match Self::try_start_on(self.port, &[]) {
                Ok(mut server) => {
                    self.child = server.child.take();
                    std::mem::swap(&mut self._dir, &mut server._dir);
                    return;
                }
                Err(e) => last_error = e,
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("could not restart redis-server on port {}: {last_error}", self.port);
    }

    /// Kill the server now (to test outages).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
