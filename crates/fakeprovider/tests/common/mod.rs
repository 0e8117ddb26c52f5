//! Helpers shared by the integration tests (real sockets, reqwest).
#![allow(dead_code)]

use std::time::{Duration, Instant};

use fakeprovider::{AccountSpec, Counters, FakeConfig, FakeProvider};

/// The sample file, read independently of the crate, to compare bodies against.
pub fn sample() -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/media/sample-720p.ts")).expect("sample file")
}

/// A demo catalog with exactly these accounts.
pub fn config(accounts: &[(&str, &str, u32)]) -> FakeConfig {
    FakeConfig::with_accounts(accounts.iter().map(|(u, p, m)| AccountSpec::new(u, p, *m)).collect())
}

pub async fn start(cfg: FakeConfig) -> FakeProvider {
    FakeProvider::start(cfg).await.expect("provider starts")
}

/// A client that never follows redirects and never decompresses (we see the wire).
pub fn raw_client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).no_gzip().build().unwrap()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// Read from a response until at least `n` bytes arrived or the body ended.
pub async fn read_n(resp: &mut reqwest::Response, n: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    while buf.len() < n {
        match resp.chunk().await {
            Ok(Some(c)) => buf.extend_from_slice(&c),
            _ => break,
        }
    }
    buf
}

/// Read a body until it ends; returns the bytes and whether it ended with an error.
pub async fn read_to_end(resp: &mut reqwest::Response, timeout: Duration) -> (Vec<u8>, bool) {
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, resp.chunk()).await {
            Ok(Ok(Some(c))) => buf.extend_from_slice(&c),
            Ok(Ok(None)) => return (buf, false),
            Ok(Err(_)) => return (buf, true),
            Err(_) => panic!("body did not end within {timeout:?} ({} bytes)", buf.len()),
        }
    }
}

/// Poll the counters until `pred` holds (or panic after `timeout`).
pub async fn wait_counters(p: &FakeProvider, timeout: Duration, pred: impl Fn(&Counters) -> bool) -> Counters {
    let start = Instant::now();
    loop {
        let c = p.counters();
        if pred(&c) {
            return c;
        }
        if start.elapsed() > timeout {
            panic!("counters never satisfied the condition: {c:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every 188th byte is a TS sync byte.
pub fn is_ts(data: &[u8]) -> bool {
    !data.is_empty() && data.chunks(188).all(|p| p[0] == 0x47)
}
