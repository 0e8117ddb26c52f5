//! What the HTTP integration tests share: the app state over a fresh store
//! and an in-memory ledger, served in-process on a free loopback port.
#![allow(dead_code)] // each test file uses its own part of this

use std::sync::Arc;
use std::time::{Duration, Instant};

use tunerpool_catalog::Store;
use tunerpool_http::{AdminToken, AppState, PoolSettings};
use tunerpool_ledger::{AnyLedger, MemoryLedger};
use tunerpool_relay::relay::Relay;
use tunerpool_relay::settings::RelaySettings;
use tunerpool_upstream::UpstreamHttp;

/// The admin token the test servers require on `/api/v1`.
pub const TOKEN: &str = "http-tests-admin-token";

/// The state of a gateway over `store`, with a memory ledger and `settings`
/// for its relay.
pub fn app_state(store: &Store, http: &UpstreamHttp, settings: RelaySettings) -> AppState {
    let ledger = Arc::new(AnyLedger::Memory(MemoryLedger::new(Duration::from_secs(15))));
    AppState {
        store: store.clone(),
        http: http.clone(),
        relay: Relay::new(store.clone(), ledger.clone(), http.client().clone(), settings),
        ledger,
        pool: PoolSettings { expiry_warning_days: 7 },
        started: Instant::now(),
        public_url: None,
        admin_token: AdminToken::new(TOKEN),
    }
}

/// Serves `state` on a free loopback port until the test ends: the base URL
/// and the server task.
pub async fn serve(state: AppState) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let _ = tunerpool_http::serve(listener, state, std::future::pending()).await;
    });
    (base, server)
}

/// A client that sends the admin token.
pub fn api_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {TOKEN}").parse().unwrap());
    reqwest::Client::builder().default_headers(headers).build().unwrap()
}
