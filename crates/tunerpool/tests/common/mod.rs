//! Helpers shared by the binary's integration tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata").join(rel)
}

/// The tunerpool binary, run in `cwd` with no TUNERPOOL_* variables from the
/// developer's environment.
pub fn tunerpool(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tunerpool"));
    cmd.current_dir(cwd);
    for (k, _) in std::env::vars() {
        if k.starts_with("TUNERPOOL_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// A running server child process, killed on drop.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub stdout: Vec<String>,
    /// The admin token it printed (`admin token: …` at first start, or the
    /// demo's `Token:` line); empty when it printed none.
    pub token: String,
}

impl Server {
    /// Asks the server to stop with SIGTERM (as a service manager would) and
    /// waits up to 10 s for it to exit; returns whether it exited cleanly.
    pub fn terminate(&mut self) -> bool {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(Some(_))) && !self.terminate() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts `cmd` (which must print `tunerpool listening on http://ADDR`) and
/// waits for that line.
pub fn start_server(cmd: Command) -> Server {
    start_server_with_stderr(cmd, Stdio::inherit())
}

/// Like [`start_server`], with the server's log (stderr) going to `stderr`
/// (e.g. a file the test reads afterwards).
pub fn start_server_with_stderr(mut cmd: Command, stderr: Stdio) -> Server {
    cmd.stdout(Stdio::piped()).stderr(stderr);
    let mut server = Server {
        child: cmd.spawn().expect("spawn tunerpool"),
        base: String::new(),
        stdout: Vec::new(),
        token: String::new(),
    };
    let stdout = server.child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line =
            rx.recv_timeout(left).unwrap_or_else(|_| panic!("server did not start; output: {:?}", server.stdout));
        let url = line.strip_prefix("tunerpool listening on ").map(|u| u.trim().to_string());
        server.stdout.push(line);
        if let Some(base) = url {
            // Collect what follows (the demo prints URLs and its token after)
            // until the output pauses.
            let until = Instant::now() + Duration::from_secs(5);
            while let Ok(l) = rx.recv_timeout(Duration::from_millis(300)) {
                server.stdout.push(l);
                if Instant::now() > until {
                    break;
                }
            }
            server.base = base;
            server.token = printed_token(&server.stdout).unwrap_or_default();
            return server;
        }
    }
}

/// The admin token in a server's output: `admin token: TOKEN, stored in …`
/// (serve, first start) or `Token: TOKEN` (demo).
pub fn printed_token(stdout: &[String]) -> Option<String> {
    stdout.iter().find_map(|l| {
        let l = l.trim();
        let t =
            l.strip_prefix("admin token: ").and_then(|r| r.split(',').next()).or_else(|| l.strip_prefix("Token:"))?;
        Some(t.trim().to_string())
    })
}

/// GET without credentials (open routes, or to see a 401).
pub fn get_json(url: &str) -> (u16, serde_json::Value) {
    get_json_as("", url)
}

/// GET with `Authorization: Bearer {token}` (no header when `token` is empty).
pub fn get_json_as(token: &str, url: &str) -> (u16, serde_json::Value) {
    let (token, url) = (token.to_string(), url.to_string());
    std::thread::spawn(move || get_json_blocking(&token, &url)).join().unwrap()
}

/// GET `url` as text: status and body.
pub fn get_text(url: &str) -> (u16, String) {
    get_text_as("", url)
}

/// GET `url` as text with `Authorization: Bearer {token}` (none when empty).
pub fn get_text_as(token: &str, url: &str) -> (u16, String) {
    let (token, url) = (token.to_string(), url.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut req = reqwest::Client::new().get(&url);
            if !token.is_empty() {
                req = req.bearer_auth(&token);
            }
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        })
    })
    .join()
    .unwrap()
}

/// GET `url` (with the bearer `token` unless empty) and read the first
/// bytes of its body — enough for a stream that never ends.
pub fn get_start(token: &str, url: &str) -> (u16, Vec<u8>) {
    let (token, url) = (token.to_string(), url.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut req = reqwest::Client::new().get(&url);
            if !token.is_empty() {
                req = req.bearer_auth(&token);
            }
            let mut resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let first = resp.chunk().await.ok().flatten().map(|b| b.to_vec()).unwrap_or_default();
            (status, first)
        })
    })
    .join()
    .unwrap()
}

fn get_json_blocking(token: &str, url: &str) -> (u16, serde_json::Value) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut req = reqwest::Client::new().get(url);
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {text}")))
    })
}

/// Sends a JSON request with `Authorization: Bearer {token}` (none when
/// `token` is empty); returns status and the body (JSON, or null when empty).
pub fn send(token: &str, method: &str, url: &str, body: Option<serde_json::Value>) -> (u16, serde_json::Value, String) {
    let (token, method, url) = (token.to_string(), method.to_string(), url.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let client = reqwest::Client::new();
            let mut req = client.request(method.parse().unwrap(), &url);
            if !token.is_empty() {
                req = req.bearer_auth(&token);
            }
            if let Some(b) = body {
                req = req.json(&b);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            let json = if text.is_empty() { serde_json::Value::Null } else { serde_json::from_str(&text).unwrap() };
            (status, json, text)
        })
    })
    .join()
    .unwrap()
}

/// `GET /api/v1/live` with the token: the first `pool` and `sessions` events, as text.
pub async fn first_live_events(base: &str, token: &str) -> String {
    use futures_util::StreamExt;
    let resp = reqwest::Client::new().get(format!("{base}/api/v1/live")).bearer_auth(token).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    let read = async {
        while !(text.contains("event: pool") && text.contains("event: sessions")) {
            match body.next().await {
                Some(Ok(chunk)) => text.push_str(&String::from_utf8_lossy(&chunk)),
                _ => break,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read).await.expect("live events within 30 s");
    text
}
