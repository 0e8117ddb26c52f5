//! What the relay's tests run against: an in-memory [`Catalog`], the
//! simulated provider over real sockets, and the in-memory ledger.

#![allow(dead_code)] // each test binary uses its own part of this

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fakeprovider::FakeProvider;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use tunerpool_domain::quality::SourceQuality;
use tunerpool_domain::{
    Account, AccountDetails, Channel, ChannelSource, Level, MediaKind, NewEvent, Provider, ProviderKind, Secret,
    StreamSource, SyncStatus,
};
use tunerpool_ledger::{AnyLedger, MemoryLedger};
use tunerpool_relay::relay::{Relay, ViewerStream};
use tunerpool_relay::settings::RelaySettings;
use tunerpool_relay::{Catalog, LookupError, SourceMeasurement, VodSource};
use tunerpool_upstream::{HttpSettings, UpstreamHttp};

/// The catalog as maps in memory, and the events the relay recorded.
#[derive(Default)]
pub struct MemoryCatalog {
    pub providers: Mutex<HashMap<i64, Provider>>,
    pub accounts: Mutex<HashMap<i64, Vec<Account>>>,
    pub channels: Mutex<HashMap<i64, Channel>>,
    pub streams: Mutex<HashMap<i64, StreamSource>>,
    pub events: Mutex<Vec<NewEvent>>,
    /// The source measurements handed over, in order.
    pub measurements: Mutex<Vec<SourceMeasurement>>,
    /// What each stream's quality score rests on, as a test sets it.
    pub quality: Mutex<HashMap<i64, SourceQuality>>,
}

fn found<T: Clone>(map: &Mutex<HashMap<i64, T>>, what: &'static str, id: i64) -> Result<T, LookupError> {
    map.lock().unwrap().get(&id).cloned().ok_or(LookupError::NotFound { what, id: id.to_string() })
}

impl Catalog for MemoryCatalog {
    fn note(&self, event: NewEvent) {
        self.events.lock().unwrap().push(event);
    }

    fn channel(&self, id: i64) -> BoxFuture<'_, Result<Channel, LookupError>> {
        async move { found(&self.channels, "channel", id) }.boxed()
    }

    fn provider(&self, id: i64) -> BoxFuture<'_, Result<Provider, LookupError>> {
        async move { found(&self.providers, "provider", id) }.boxed()
    }

    fn accounts(&self, provider_id: i64) -> BoxFuture<'_, Result<Vec<Account>, LookupError>> {
        async move { Ok(self.accounts.lock().unwrap().get(&provider_id).cloned().unwrap_or_default()) }.boxed()
    }

    fn stream_source(&self, stream_id: i64) -> BoxFuture<'_, Result<StreamSource, LookupError>> {
        async move { found(&self.streams, "stream", stream_id) }.boxed()
    }

    fn vod_source(&self, kind: MediaKind, id: i64) -> BoxFuture<'_, Result<VodSource, LookupError>> {
        async move { Err(LookupError::NotFound { what: kind.as_str(), id: id.to_string() }) }.boxed()
    }

    fn record_quality(&self, measurement: SourceMeasurement) -> BoxFuture<'_, Result<(), LookupError>> {
        async move {
            self.measurements.lock().unwrap().push(measurement);
            Ok(())
        }
        .boxed()
    }

    fn source_quality(&self, stream_ids: Vec<i64>) -> BoxFuture<'_, Result<HashMap<i64, SourceQuality>, LookupError>> {
        async move {
            let known = self.quality.lock().unwrap();
            Ok(stream_ids.iter().filter_map(|id| known.get(id).map(|q| (*id, q.clone()))).collect())
        }
        .boxed()
    }

    /// The relay's own tests schedule no probes: nothing to probe.
    fn probe_candidates(
        &self,
        _older_than: u64,
        _limit: usize,
    ) -> BoxFuture<'_, Result<Vec<tunerpool_relay::probe::ProbeTarget>, LookupError>> {
        async move { Ok(Vec::new()) }.boxed()
    }
}

impl MemoryCatalog {
    /// An Xtream provider at `fake` with `accounts` (username, password,
    /// the limit its panel reports), the first one primary. Returns the
    /// provider's id; account ids are `provider_id * 100 + 1, + 2, …`.
    pub fn add_xtream(&self, id: i64, name: &str, fake: &FakeProvider, accounts: &[(&str, &str, i64)]) -> i64 {
        let provider = Provider {
            id,
            name: name.into(),
            kind: ProviderKind::Xtream,
            url: fake.url(),
            epg_url: None,
            user_agent: None,
            priority: 0,
            max_streams: None,
            enabled: true,
            created_at: 0,
            sync: SyncStatus::default(),
        };
        let accounts = accounts
            .iter()
            .enumerate()
            .map(|(i, (user, pass, max))| Account {
                id: id * 100 + 1 + i as i64,
                provider_id: id,
                name: if i == 0 { "Primary".into() } else { (*user).into() },
                server_url: None,
                username: Some((*user).into()),
                password: Secret::new(*pass),
                search_pattern: None,
                replace_pattern: None,
                max_streams: None,
                priority: i as i64,
                enabled: true,
                is_primary: i == 0,
                created_at: 0,
                details: AccountDetails {
                    auth: Some(true),
                    status: Some("Active".into()),
                    max_connections: Some(*max),
                    ..AccountDetails::default()
                },
            })
            .collect();
        self.providers.lock().unwrap().insert(id, provider);
        self.accounts.lock().unwrap().insert(id, accounts);
        id
    }

    /// The account id of `username` (see [`MemoryCatalog::add_xtream`]).
    pub fn account_id(&self, username: &str) -> i64 {
        let accounts = self.accounts.lock().unwrap();
        accounts.values().flatten().find(|a| a.username.as_deref() == Some(username)).expect("an account").id
    }

    /// A lineup channel played from the provider's Xtream streams `upstream_ids`, in that order.
    /// Stream row ids are `provider_id * 1000 + upstream id`.
    pub fn add_channel(&self, id: i64, provider_id: i64, upstream_ids: &[i64]) {
        let provider = self.providers.lock().unwrap()[&provider_id].name.clone();
        let mut sources = Vec::new();
        for (position, upstream_id) in upstream_ids.iter().enumerate() {
            let stream_id = provider_id * 1000 + upstream_id;
            self.streams.lock().unwrap().insert(
                stream_id,
                StreamSource { stream_id, provider_id, upstream_id: Some(*upstream_id), url: None, headers: vec![] },
            );
            sources.push(ChannelSource {
                id: id * 10 + position as i64,
                stream_id,
                provider_id,
                provider: provider.clone(),
                upstream_key: upstream_id.to_string(),
                upstream_id: Some(*upstream_id),
                position: position as i64,
                name: format!("Channel {upstream_id}"),
                tvg_id: None,
            });
        }
        let channel = Channel {
            id,
            name: format!("Channel {id}"),
            enabled: true,
            available: true,
            auto_order: false,
            sources,
            ..Channel::default()
        };
        self.channels.lock().unwrap().insert(id, channel);
    }

    /// The events of `kind` recorded so far.
    pub fn events_of(&self, kind: &str) -> Vec<NewEvent> {
        self.events.lock().unwrap().iter().filter(|e| e.kind == kind).cloned().collect()
    }

    /// The source measurements handed over so far.
    pub fn measurements(&self) -> Vec<SourceMeasurement> {
        self.measurements.lock().unwrap().clone()
    }

    /// True once an event of `kind` at `level` was recorded.
    pub fn has_event(&self, kind: &str, level: Level) -> bool {
        self.events_of(kind).iter().any(|e| e.level == level)
    }
}

/// A relay over `catalog`, with a fresh in-memory ledger (no release cool-down).
pub fn relay(catalog: &Arc<MemoryCatalog>, settings: RelaySettings) -> Relay {
    relay_with_ledger(catalog, settings, MemoryLedger::new(Duration::from_secs(15)))
}

/// A relay over `catalog` with `ledger`.
pub fn relay_with_ledger(catalog: &Arc<MemoryCatalog>, settings: RelaySettings, ledger: MemoryLedger) -> Relay {
    let ledger = Arc::new(AnyLedger::Memory(ledger));
    let http = UpstreamHttp::new(HttpSettings::default()).expect("an HTTP client");
    Relay::new(catalog.clone(), ledger, http.client().clone(), settings)
}

/// Short timings, so that failures and lingering show within a test.
pub fn fast() -> RelaySettings {
    RelaySettings {
        linger: Duration::from_millis(500),
        acquire_wait: Duration::from_secs(3),
        stall_timeout: Duration::from_secs(2),
        ..RelaySettings::default()
    }
}

/// Polls `check` every 20 ms until it holds or `within` passes; returns whether it held.
pub async fn wait_for(mut check: impl FnMut() -> bool, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

/// What a viewer got while it read.
#[derive(Debug, Default)]
pub struct Watched {
    pub bytes: usize,
    /// The longest wait for a chunk.
    pub longest_gap: Duration,
    /// Every chunk started on a TS sync byte.
    pub aligned: bool,
    /// The stream ended (rather than the reading stopping).
    pub ended: bool,
}

/// Reads `stream` until `until` holds of what was read so far, the stream
/// ends, or `within` passes.
pub async fn watch(stream: &mut ViewerStream, within: Duration, mut until: impl FnMut(&Watched) -> bool) -> Watched {
    let deadline = tokio::time::Instant::now() + within;
    let mut w = Watched { aligned: true, ..Watched::default() };
    let mut last = Instant::now();
    while !until(&w) {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(chunk))) => {
                w.longest_gap = w.longest_gap.max(last.elapsed());
                last = Instant::now();
                w.aligned &= chunk.first() == Some(&0x47);
                w.bytes += chunk.len();
            }
            Ok(_) => {
                w.ended = true;
                break;
            }
            Err(_) => break,
        }
    }
    w
}

/// Keeps reading `stream` in the background (a viewer that stays), until the
/// returned handle is aborted or dropped with its stream.
pub fn keep_watching(mut stream: ViewerStream) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} })
}
