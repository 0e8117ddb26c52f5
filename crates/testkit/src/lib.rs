//! What the integration tests of several crates need alike, kept once: a
//! store with an Xtream provider over the simulated one ([`fakeprovider`]),
//! synced the way the gateway does it, and [`eventually`], the way to wait
//! for something to happen (never a bare sleep); and [`postgres`], a
//! throwaway PostgreSQL server for the store's tests on that backend.

pub mod postgres;

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use fakeprovider::{AccountSpec, FakeConfig, FakeProvider};
use tunerpool_catalog::{AccountPatch, Channel, ChannelQuery, Db, NewProvider, ProviderKind, Secret, Store};
use tunerpool_upstream::{HttpSettings, UpstreamHttp};

/// A store in `dir` and the upstream client the gateway would use with it
/// (its downloads spooled under `dir/tmp`).
pub async fn open_store(dir: &Path) -> (Store, UpstreamHttp) {
    let store = Store::open(dir).await.expect("the store opens");
    let http = UpstreamHttp::new(HttpSettings { spool_dir: dir.join("tmp"), ..Default::default() })
        .expect("the upstream client builds");
    (store, http)
}

/// The store backends the catalog's tests run on: every store test runs on
/// both ([`backend_test!`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The SQLite file in the test's data dir.
    Sqlite,
    /// A fresh database on the test binary's PostgreSQL server
    /// ([`postgres::PgServer::shared`]).
    Postgres,
}

impl Backend {
    /// The `store.url` of a new store for one test: `None` (the SQLite file
    /// in the data dir), or a fresh PostgreSQL database. Open it again with
    /// the same URL to reopen the same store.
    pub async fn new_store_url(self) -> Option<String> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some(postgres::PgServer::shared().fresh_database().await),
        }
    }

    /// A new, empty store on this backend with its data dir in `dir`.
    pub async fn open(self, dir: &Path) -> Store {
        let url = self.new_store_url().await;
        Store::open_url(url.as_deref(), dir).await.expect("the store opens")
    }

    /// [`open_store`] on this backend.
    pub async fn open_with_http(self, dir: &Path) -> (Store, UpstreamHttp) {
        let store = self.open(dir).await;
        let http = UpstreamHttp::new(HttpSettings { spool_dir: dir.join("tmp"), ..Default::default() })
            .expect("the upstream client builds");
        (store, http)
    }

    /// [`Backend::open_with_http`] in a new temp dir, which lives as long
    /// as the returned handle.
    pub async fn open_in_temp_dir(self) -> (tempfile::TempDir, Store, UpstreamHttp) {
        let dir = tempfile::tempdir().expect("a temp dir");
        let (store, http) = self.open_with_http(dir.path()).await;
        (dir, store, http)
    }
}

/// Runs one SQL statement on the store's database, whichever its backend
/// (tests that set up rows or break something on purpose), and returns how
/// many rows it changed. Write SQL both dialects take (values inline).
pub async fn execute(store: &Store, sql: &str) -> u64 {
    let done = match store.db() {
        Db::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|r| r.rows_affected()),
        Db::Postgres(p) => sqlx::query(sql).execute(p).await.map(|r| r.rows_affected()),
    };
    done.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The one integer `sql` selects, on the store's database (see [`execute`]).
pub async fn fetch_i64(store: &Store, sql: &str) -> i64 {
    let got = match store.db() {
        Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await,
        Db::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await,
    };
    got.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Runs tests on each [`Backend`]: a test is written once as
/// `async fn name(backend: Backend)`, and `backend_tests!(name, …)` makes
/// the module `name` with the tests `sqlite` and `postgres` calling it. A
/// test that needs another runtime says so before its name:
/// `backend_tests!(#[tokio::test(flavor = "current_thread")] name)`.
#[macro_export]
macro_rules! backend_tests {
    ($($(#[$attr:meta])* $name:ident),+ $(,)?) => {
        $($crate::backend_tests!(@one [$(#[$attr])*] $name);)+
    };
    (@one [] $name:ident) => {
        $crate::backend_tests!(@one [#[::tokio::test]] $name);
    };
    (@one [$(#[$attr:meta])+] $name:ident) => {
        mod $name {
            $(#[$attr])+
            async fn sqlite() {
                super::$name($crate::Backend::Sqlite).await
            }

            $(#[$attr])+
            async fn postgres() {
                super::$name($crate::Backend::Postgres).await
            }
        }
    };
}

/// Adds the simulated provider as Xtream provider "Fake" with these
/// accounts (username, password): the first is the primary, the others
/// follow at priority 1, 2, …. Returns the provider's id. Nothing is synced.
pub async fn add_xtream(store: &Store, fake: &FakeProvider, accounts: &[(&str, &str)]) -> i64 {
    add_xtream_named(store, "Fake", fake, accounts).await
}

/// [`add_xtream`] under another name (tests with several providers).
pub async fn add_xtream_named(store: &Store, name: &str, fake: &FakeProvider, accounts: &[(&str, &str)]) -> i64 {
    let ((user, pass), others) = accounts.split_first().expect("at least one account");
    let pid = store
        .add_provider(&NewProvider {
            name: name.into(),
            kind: Some(ProviderKind::Xtream),
            url: fake.url(),
            username: Some((*user).into()),
            password: Some(Secret::new(*pass)),
            enabled: true,
            ..Default::default()
        })
        .await
        .expect("the provider is added")
        .id;
    for (priority, (user, pass)) in (1..).zip(others) {
        let input = AccountPatch {
            username: Some((*user).into()),
            password: Some(Secret::new(*pass)),
            priority: Some(priority),
            ..Default::default()
        };
        store.create_account(pid, &input).await.expect("the account is added");
    }
    pid
}

/// Syncs the provider's catalog, then fetches every account's details
/// (limits, expiry) from the panel, as the gateway's jobs do.
pub async fn sync_with_details(store: &Store, http: &UpstreamHttp, pid: i64) {
    tunerpool_catalog::sync::sync_provider(store, http, pid).await.expect("the provider syncs");
    let provider = store.provider(pid).await.expect("the provider exists");
    for a in store.accounts(pid).await.expect("its accounts") {
        tunerpool_catalog::details::refresh_account(store, http, &provider, &a).await.expect("the details load");
    }
}

/// Adds a playlist file as M3U provider `name` (enabled, no account).
/// Returns the provider's id. Nothing is synced.
pub async fn add_m3u_file(store: &Store, name: &str, path: &Path) -> i64 {
    let provider = NewProvider {
        name: name.into(),
        kind: Some(ProviderKind::M3u),
        url: path.display().to_string(),
        enabled: true,
        ..Default::default()
    };
    store.add_provider(&provider).await.expect("the provider is added").id
}

/// The whole lineup: every channel, in number order, with its sources
/// (tests' lineups have far fewer than 1000).
pub async fn lineup(store: &Store) -> Vec<Channel> {
    store.channels(&ChannelQuery { per_page: Some(1000), ..Default::default() }).await.expect("the lineup").items
}

/// Two simulated providers whose catalogs overlap, as the lineup's tests
/// use them: the same channels under other names and stream ids, mostly
/// with the same tvg-ids, and some of B's own. Start them with
/// `FakeProvider::start`; their accounts are `a`/`pa` and `b`/`pb`, one
/// connection each.
pub mod overlapping {
    use super::*;

    /// Provider A: 20 live channels "Channel i" under stream ids i, tvg-ids
    /// `ch{i}.fake` (none for every 7th); account `a`/`pa`.
    pub fn provider_a() -> FakeConfig {
        FakeConfig { live_channels: 20, ..FakeConfig::with_accounts(vec![AccountSpec::new("a", "pa", 1)]) }
    }

    /// Provider B: A's channels 1..=20 and five more, as "UK: CHANNEL i HD"
    /// under stream ids 1000 + i, with A's tvg-ids; account `b`/`pb`.
    pub fn provider_b() -> FakeConfig {
        FakeConfig {
            live_channels: 25,
            live_name_template: "UK: CHANNEL {i} HD".into(),
            stream_id_offset: 1000,
            ..FakeConfig::with_accounts(vec![AccountSpec::new("b", "pb", 1)])
        }
    }
}

/// Polls `check` every 20 ms until it gives `Some`, and returns that; after
/// `within`, panics naming `what`. The way tests wait for something to
/// happen: as soon as it has, and with a clear failure if it never does.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < within, "{what}: not after {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn eventually_returns_as_soon_as_the_check_holds() {
        let mut calls = 0;
        let got = eventually("three calls", Duration::from_secs(5), || {
            calls += 1;
            let n = calls;
            async move { (n >= 3).then_some(n) }
        })
        .await;
        assert_eq!(got, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "never: not after")]
    async fn eventually_fails_naming_what_never_happened() {
        eventually("never", Duration::from_millis(50), || async { None::<()> }).await;
    }
}
