//! What the HTTP integration tests share: the app state over a fresh store
//! and an in-memory ledger, served in-process on a free loopback port.
#![allow(dead_code)] // each test file uses its own part of this

use std::sync::Arc;
use std::time::{Duration, Instant};

use tunerpool_catalog::Store;
use tunerpool_http::{AccessSettings, AdminToken, AppState, ClientAuth, PoolSettings};
use tunerpool_ledger::{AnyLedger, MemoryLedger};
use tunerpool_relay::relay::Relay;
use tunerpool_relay::settings::RelaySettings;
use tunerpool_upstream::UpstreamHttp;

/// The admin token the test servers require on `/api/v1`.
pub const TOKEN: &str = "http-tests-admin-token";

/// The state of a gateway over `store`, with a memory ledger and `settings`
/// for its relay.
pub fn app_state(store: &Store, http: &UpstreamHttp, settings: RelaySettings) -> AppState {
    app_state_with_ledger(store, http, settings, MemoryLedger::new(Duration::from_secs(15)))
}

/// [`app_state`] over the given ledger (e.g. one with a release cool-down).
pub fn app_state_with_ledger(
    store: &Store,
    http: &UpstreamHttp,
    settings: RelaySettings,
    ledger: MemoryLedger,
) -> AppState {
    let ledger = Arc::new(AnyLedger::Memory(ledger));
    AppState {
        store: store.clone(),
        http: http.clone(),
        relay: Relay::new(
            tunerpool_http::StoreCatalog::shared(store.clone()),
            ledger.clone(),
            http.client().clone(),
            settings,
        ),
        ledger,
        pool: PoolSettings { expiry_warning_days: 7 },
        started: Instant::now(),
        public_url: None,
        admin_token: AdminToken::new(TOKEN),
        access: AccessSettings::default(),
        logins: Arc::new(ClientAuth::default()),
        hdhr: tunerpool_http::HdhrSettings::default(),
        clip: tunerpool_http::ClipSettings::default(),
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

/// GET with the admin token: the admin's `/stream`, `/movie`, `/series`,
/// `/epg.xml` and `/metrics` want it.
pub async fn admin_get<U: reqwest::IntoUrl>(url: U) -> reqwest::Result<reqwest::Response> {
    api_client().get(url).send().await
}

/// ffprobe's `-headers` value that sends the admin token.
pub fn ffprobe_auth() -> String {
    format!("Authorization: Bearer {TOKEN}\r\n")
}

/// A gateway in front of the simulated provider: accounts `a`/`pa` and
/// `b`/`pb` (1 connection each), synced into a fresh store, served on a free
/// port.
pub struct Gateway {
    pub fake: fakeprovider::FakeProvider,
    pub base: String,
    pub state: AppState,
    pub dir: tempfile::TempDir,
    pub server: tokio::task::JoinHandle<()>,
}

/// The store and upstream client of a [`Gateway`], synced from `fake`, so
/// that a test can build the state it needs before serving it.
pub async fn synced_store(fake: &fakeprovider::FakeProvider, dir: &std::path::Path) -> (Store, UpstreamHttp) {
    let (store, http) = tunerpool_testkit::open_store(dir).await;
    let pid = tunerpool_testkit::add_xtream(&store, fake, &[("a", "pa"), ("b", "pb")]).await;
    tunerpool_testkit::sync_with_details(&store, &http, pid).await;
    (store, http)
}

/// The simulated provider (2 accounts of 1 connection) and a gateway over
/// it whose state `configure` may change before it is served.
pub async fn gateway(settings: RelaySettings, configure: impl FnOnce(&mut AppState)) -> Gateway {
    use fakeprovider::{AccountSpec, FakeConfig, FakeProvider};
    let accounts = vec![AccountSpec::new("a", "pa", 1), AccountSpec::new("b", "pb", 1)];
    let fake = FakeProvider::start(FakeConfig::with_accounts(accounts)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (store, http) = synced_store(&fake, dir.path()).await;
    let mut state = app_state(&store, &http, settings);
    configure(&mut state);
    let (base, server) = serve(state.clone()).await;
    Gateway { fake, base, state, dir, server }
}

impl Gateway {
    /// Creates a downstream user through the admin API.
    pub async fn user(&self, username: &str, password: &str, max_connections: u32) {
        let resp = api_client()
            .post(format!("{}/api/v1/users", self.base))
            .json(&serde_json::json!({"username": username, "password": password, "max_connections": max_connections}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    }

    /// Connections the simulated provider has admitted so far.
    pub fn provider_connections(&self) -> u64 {
        self.fake.counters().total_opened
    }
}
