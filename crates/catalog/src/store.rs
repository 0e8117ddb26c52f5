//! The store: SQLite by default (one file in the data dir, WAL mode), or
//! PostgreSQL for several instances sharing one catalog ([`Store::open_url`]);
//! each backend's migrations embedded (`migrations/`, `migrations_pg/`).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use crate::db::{dialect, on_db, on_tx, Db, RowGet};

use crate::error::{CatalogError, FieldError};
use crate::model::*;
use crate::secret::Secret;

/// The lineup channels a [`ChannelQuery`] selects: $1 group name, $2 name
/// pattern, $3 group id, $4 available, $5 one channel id. `{LIKE}` is the
/// dialect's case-insensitive match ([`channel_from`]).
const CHANNEL_FROM: &str = "FROM lineup_channels c LEFT JOIN lineup_groups g ON g.id = c.group_id
    WHERE ($1 IS NULL OR g.name = $1) AND ($2 IS NULL OR c.name {LIKE} $2 ESCAPE '\\')
      AND ($3 IS NULL OR c.group_id = $3)
      AND ($4 IS NULL OR $4 = EXISTS (SELECT 1 FROM lineup_sources ls JOIN providers p ON p.id = ls.provider_id
                                     WHERE ls.channel_id = c.id AND ls.stream_id IS NOT NULL AND p.enabled))
      AND ($5 IS NULL OR c.id = $5)";

/// [`CHANNEL_FROM`] with the name match of `like`: SQLite's `LIKE` ignores
/// ASCII case, PostgreSQL's does not (its `ILIKE` does).
fn channel_from(like: &str) -> String {
    CHANNEL_FROM.replace("{LIKE}", like)
}

/// Connections the stream requests' cache misses have to themselves ([`Store::for_stream_reads`]).
const STREAM_READ_CONNECTIONS: u32 = 2;

/// The database file's name inside the data dir.
pub const DB_FILE: &str = "tunerpool.db";

/// Connections to PostgreSQL per instance: a server has ~100 in all, and
/// several instances share it.
const PG_CONNECTIONS: u32 = 8;

/// What `store.url` names, checked: the SQLite file in the data dir, or a
/// PostgreSQL URL. Parsing is the one check of the key, shared by the
/// configuration (which reports it at start-up) and [`Store::open_url`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite,
    Postgres(String),
}

impl StoreUrl {
    /// `None`, `""`, `sqlite:` or `sqlite://` (the file in the data dir is
    /// the only SQLite database) → SQLite; `postgres://…` or
    /// `postgresql://…` → PostgreSQL. Anything else is refused naming its
    /// scheme, never the whole URL (it may hold a password).
    pub fn parse(url: Option<&str>) -> Result<StoreUrl, CatalogError> {
        let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else { return Ok(StoreUrl::Sqlite) };
        let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("sqlite") if matches!(url.split_once(':').map(|(_, r)| r), Some("" | "//")) => Ok(StoreUrl::Sqlite),
            Some("sqlite") => Err(CatalogError::Invalid(vec![FieldError::new(
                "store.url",
                "a SQLite store is always the file in the data dir: write `sqlite:` (or leave store.url unset) \
                 and choose the data dir with --data-dir",
            )])),
            Some("postgres" | "postgresql") if url.contains("://") => Ok(StoreUrl::Postgres(url.to_owned())),
            Some(other)
                if !other.is_empty() && other.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
            {
                Err(CatalogError::Invalid(vec![FieldError::new(
                    "store.url",
                    format!(
                        "unsupported scheme {other:?}: use postgres://user:password@host:port/database, or sqlite:"
                    ),
                )]))
            }
            _ => Err(CatalogError::Invalid(vec![FieldError::new(
                "store.url",
                "not a URL: use postgres://user:password@host:port/database, or sqlite:",
            )])),
        }
    }
}

/// Handle to the catalog database. Cheap to clone (a connection pool, and
/// the queue of the events writer).
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
    /// Where guides and spool files go (and, on SQLite, the database).
    data_dir: PathBuf,
    events: std::sync::Arc<crate::events::EventWriter>,
    /// The one task that writes source measurements (`quality.rs`).
    quality: std::sync::Arc<crate::quality::QualityWriter>,
    /// Connections of their own for the stream requests' cache misses (the user a login names, whether it may
    /// see the item): never waiting behind writers that hold the main pool's connections while SQLite makes
    /// them wait for the write lock ([`Store::for_stream_reads`]). The main pool on PostgreSQL.
    stream_reads: Db,
    lineup: std::sync::Arc<std::sync::RwLock<crate::lineup::LineupSettings>>,
    /// The read caches of the stream requests' hot path (`cache.rs`),
    /// shared by every clone.
    caches: std::sync::Arc<ReadCaches>,
    /// Held while the materialized live listing is rebuilt, so that one
    /// rebuild runs at a time (`outputs.rs`).
    pub(crate) listing_build: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// A visibility answer's key: the user's allowed groups, the filter's one
/// group, the kind and the id asked for.
pub(crate) type VisibleKey = (Option<Vec<i64>>, Option<i64>, MediaKind, i64);

/// The store's read caches (see `cache.rs`).
pub(crate) struct ReadCaches {
    /// Users that exist, by username.
    pub(crate) users: crate::cache::TtlCache<String, crate::users::User>,
    /// Items a filter lets through (positive answers only).
    pub(crate) visible: crate::cache::TtlCache<VisibleKey, ()>,
}

impl Default for ReadCaches {
    fn default() -> Self {
        use crate::cache::{TtlCache, MAX_CACHED_USERS, MAX_CACHED_VISIBLE, READ_CACHE_TTL};
        ReadCaches {
            users: TtlCache::new(READ_CACHE_TTL, MAX_CACHED_USERS),
            visible: TtlCache::new(READ_CACHE_TTL, MAX_CACHED_VISIBLE),
        }
    }
}

impl std::fmt::Debug for ReadCaches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCaches").field("users", &self.users.len()).field("visible", &self.visible.len()).finish()
    }
}

pub use tunerpool_domain::now;

impl Store {
    /// Opens (creating if needed) the SQLite store in `data_dir` and runs
    /// migrations.
    ///
    /// The data dir is made readable by its owner only (0700; a wider one is
    /// tightened, with a warning) and so are the database and its `-wal` and
    /// `-shm` files (0600: SQLite gives those the database file's mode):
    /// they hold provider passwords.
    pub async fn open(data_dir: &Path) -> Result<Store, CatalogError> {
        Self::open_url(None, data_dir).await
    }

    /// Opens the store `url` names (`store.url`): `None` or a `sqlite:` URL
    /// is the SQLite file in `data_dir` ([`Store::open`]); a `postgres://` (or
    /// `postgresql://`) URL a PostgreSQL database, migrated to the current
    /// schema. The data dir is kept for guides and spool files either way.
    /// Errors name the URL with its password masked.
    pub async fn open_url(url: Option<&str>, data_dir: &Path) -> Result<Store, CatalogError> {
        use tunerpool_upstream::owner_only;
        let open_err = |path: &Path, e: std::io::Error| CatalogError::Open {
            path: path.display().to_string(),
            reason: format!("{e} (check that the data dir is writable, or choose another with --data-dir)"),
        };
        if let Some(mode) = owner_only::create_private_dir(data_dir).map_err(|e| open_err(data_dir, e))? {
            tracing::warn!(data_dir = %data_dir.display(), was = format!("{mode:o}"),
                "the data dir was open to other users; it is now readable by its owner only (0700)");
        }
        let (db, stream_reads) = match StoreUrl::parse(url)? {
            StoreUrl::Sqlite => {
                let (pool, stream_reads) = Self::open_sqlite(data_dir).await?;
                (Db::Sqlite(pool), Db::Sqlite(stream_reads))
            }
            StoreUrl::Postgres(url) => {
                let pool = Db::Postgres(Self::open_postgres(&url).await?);
                (pool.clone(), pool)
            }
        };
        let events = std::sync::Arc::new(crate::events::EventWriter::start(db.clone(), crate::events::QUEUE));
        let quality =
            std::sync::Arc::new(crate::quality::QualityWriter::start(db.clone(), crate::quality::QUALITY_QUEUE));
        Ok(Store {
            db,
            data_dir: data_dir.to_path_buf(),
            events,
            quality,
            stream_reads,
            lineup: Default::default(),
            caches: Default::default(),
            listing_build: Default::default(),
        })
    }

    async fn open_sqlite(data_dir: &Path) -> Result<(SqlitePool, SqlitePool), CatalogError> {
        use tunerpool_upstream::owner_only;
        let open_err = |path: &Path, e: std::io::Error| CatalogError::Open {
            path: path.display().to_string(),
            reason: format!("{e} (check that the data dir is writable, or choose another with --data-dir)"),
        };
        let path = data_dir.join(DB_FILE);
        owner_only::file(&path, true).map_err(|e| open_err(&path, e))?;
        for suffix in ["-wal", "-shm", "-journal"] {
            let side = data_dir.join(format!("{DB_FILE}{suffix}"));
            owner_only::file(&side, false).map_err(|e| open_err(&side, e))?;
        }
        let opts = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|e| CatalogError::Open { path: path.display().to_string(), reason: e.to_string() })?
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // 32 MiB of page cache per connection (the default is 2 MiB): a
            // 200 000-entry sync touches several indexes at once, and pages
            // spilled mid-transaction are written twice.
            .pragma("cache_size", "-32768")
            .pragma("temp_store", "memory");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.clone())
            .await
            .map_err(|e| CatalogError::Open { path: path.display().to_string(), reason: e.to_string() })?;
        SQLITE_MIGRATIONS.run(&pool).await?;
        // Opened lazily: a process that serves no stream (the CLI's commands) never opens them.
        let stream_reads = SqlitePoolOptions::new().max_connections(STREAM_READ_CONNECTIONS).connect_lazy_with(opts);
        Ok((pool, stream_reads))
    }

    /// Connects to PostgreSQL and migrates it (`migrations_pg/`). Every
    /// error names the URL with its password masked, and has the password
    /// masked from the driver's own text too.
    async fn open_postgres(url: &str) -> Result<sqlx::PgPool, CatalogError> {
        let pool = connect_postgres(url, PG_CONNECTIONS).await?;
        PG_MIGRATIONS.run(&pool).await.map_err(|e| open_failed(url, "migration failed: ", &e))?;
        Ok(pool)
    }

    /// How syncs fill the lineup from now on (the `lineup.*` settings).
    pub fn set_lineup_settings(&self, settings: crate::lineup::LineupSettings) {
        *self.lineup.write().unwrap_or_else(|e| e.into_inner()) = settings;
    }

    /// How syncs fill the lineup.
    pub fn lineup_settings(&self) -> crate::lineup::LineupSettings {
        self.lineup.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn caches(&self) -> &ReadCaches {
        &self.caches
    }

    /// How often the read caches of the stream path answered without SQLite
    /// (users by name, visibility), and how often they asked it.
    pub fn read_cache_stats(&self) -> (crate::cache::CacheStats, crate::cache::CacheStats) {
        (self.caches.users.stats(), self.caches.visible.stats())
    }

    pub(crate) fn event_writer(&self) -> &crate::events::EventWriter {
        &self.events
    }

    pub(crate) fn quality_writer(&self) -> &crate::quality::QualityWriter {
        &self.quality
    }

    /// The same store with an event queue of `capacity` (tests of a full queue).
    #[cfg(test)]
    pub(crate) fn with_event_queue(mut self, capacity: usize) -> Store {
        self.events = std::sync::Arc::new(crate::events::EventWriter::start(self.db.clone(), capacity));
        self
    }

    /// The database, on whichever backend (tests that reach into it).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The pool of a SQLite store, for tests that reach into the database
    /// (the default store is SQLite). Panics on a PostgreSQL store: code
    /// that runs on both uses [`Store::db`].
    pub fn pool(&self) -> &SqlitePool {
        self.db.as_sqlite().expect("Store::pool is for SQLite stores: use Store::db")
    }

    /// This store reading through the stream requests' own connections: for the reads a join makes when its
    /// cache misses. Why: on SQLite every writer that starts a transaction holds one of the main pool's four
    /// connections while SQLite's busy handler makes it wait for the write lock; a few of them at once (the minute
    /// jobs, the events and measurement writers, a sync) took the whole pool, and a join's read waited seconds for
    /// a connection (BENCHMARKS.md, issue 16, "slow acquire"). Only reads go through it. On PostgreSQL, whose
    /// writers do not queue for one lock, it is the main pool.
    pub(crate) fn for_stream_reads(&self) -> Store {
        Store { db: self.stream_reads.clone(), ..self.clone() }
    }

    /// The stream requests' own read connections of a SQLite store ([`Store::for_stream_reads`]); with
    /// [`Store::pool`], every connection the store has (a test that closes the database closes both).
    pub fn stream_reads_pool(&self) -> &SqlitePool {
        self.stream_reads.as_sqlite().expect("Store::stream_reads_pool is for SQLite stores")
    }

    /// Starts a write transaction ([`Db::write_tx`]).
    pub(crate) async fn write_tx(&self) -> Result<crate::db::Tx, CatalogError> {
        Ok(self.db.write_tx().await?)
    }

    /// The data dir (where guides and spool files go, and the SQLite file).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), CatalogError> {
        on_db!(&self.db, |p| sqlx::query("SELECT 1").execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Writes the events and source measurements still queued, then closes the database.
    pub async fn close(&self) {
        self.flush_events().await;
        self.flush_quality().await;
        self.stream_reads.close().await;
        self.db.close().await;
    }

    // ---- providers -------------------------------------------------------

    /// Adds a provider; its credentials (if any) become its primary account.
    pub async fn add_provider(&self, new: &NewProvider) -> Result<Provider, CatalogError> {
        let errs = new.validate();
        if !errs.is_empty() {
            return Err(CatalogError::Invalid(errs));
        }
        let kind = new.kind.expect("validated");
        let url = match kind {
            ProviderKind::Xtream => tunerpool_upstream::xtream::normalize_base_url(&new.url).expect("validated"),
            _ => new.url.trim().to_string(),
        };
        let max_streams = match (kind, new.max_streams) {
            (ProviderKind::Agtv, None) => Some(AGTV_DEFAULT_MAX_STREAMS),
            (_, m) => m,
        };
        let mut tx = self.write_tx().await?;
        let id = on_tx!(&mut tx, |c| {
            let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM providers WHERE name = $1")
                .bind(new.name.trim())
                .fetch_optional(&mut *c)
                .await?;
            if exists.is_some() {
                return Err(CatalogError::Refused(vec![FieldError::new(
                    "name",
                    format!("a provider named {:?} already exists: choose another name", new.name.trim()),
                )]));
            }
            let created = now();
            let id: i64 = sqlx::query_scalar(
            "INSERT INTO providers (name, kind, url, epg_url, user_agent, priority, max_streams, enabled, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(new.name.trim())
        .bind(kind.as_str())
        .bind(&url)
        .bind(new.epg_url.as_deref().map(str::trim).filter(|s| !s.is_empty()))
        .bind(new.user_agent.as_deref().map(str::trim).filter(|s| !s.is_empty()))
        .bind(new.priority)
        .bind(max_streams)
        .bind(new.enabled)
        .bind(created)
        .fetch_one(&mut *c)
        .await?;
            // Every provider has a primary account: the pool leases slots on
            // accounts, and for M3U/AGTV providers it is the playlist's own
            // (credential-less) access.
            sqlx::query(
            "INSERT INTO accounts (provider_id, name, username, password, priority, enabled, is_primary, created_at)
             VALUES ($1, 'Primary', $2, $3, 0, TRUE, TRUE, $4)",
        )
        .bind(id)
        .bind(new.username.as_deref().map(str::trim).filter(|u| !u.is_empty()))
        .bind(new.password.as_ref().map(Secret::expose).filter(|p| !p.is_empty()))
        .bind(created)
        .execute(&mut *c)
        .await?;
            id
        });
        tx.commit().await?;
        self.provider(id).await
    }

    pub async fn provider(&self, id: i64) -> Result<Provider, CatalogError> {
        on_db!(&self.db, |p| {
            let row = sqlx::query(&format!("{PROVIDER_SELECT} WHERE id = $1"))
                .bind(id)
                .fetch_optional(p)
                .await?
                .ok_or_else(|| CatalogError::NotFound { what: "provider", id: id.to_string() })?;
            provider_from_row(&row)
        })
    }

    /// Finds a provider by id or by exact name (what CLI users type).
    pub async fn find_provider(&self, id_or_name: &str) -> Result<Provider, CatalogError> {
        if let Ok(id) = id_or_name.parse::<i64>() {
            return self.provider(id).await;
        }
        on_db!(&self.db, |p| {
            let row = sqlx::query(&format!("{PROVIDER_SELECT} WHERE name = $1"))
                .bind(id_or_name)
                .fetch_optional(p)
                .await?
                .ok_or_else(|| CatalogError::NotFound { what: "provider", id: id_or_name.to_string() })?;
            provider_from_row(&row)
        })
    }

    pub async fn providers(&self) -> Result<Vec<Provider>, CatalogError> {
        on_db!(&self.db, |p| {
            let rows = sqlx::query(&format!("{PROVIDER_SELECT} ORDER BY priority, id")).fetch_all(p).await?;
            rows.iter().map(provider_from_row).collect()
        })
    }

    /// Points a provider at another URL (validated like on add).
    pub async fn set_provider_url(&self, id: i64, url: &str) -> Result<(), CatalogError> {
        let p = self.provider(id).await?;
        let url = match p.kind {
            ProviderKind::Xtream => tunerpool_upstream::xtream::normalize_base_url(url),
            _ => tunerpool_upstream::m3u::M3uSource::parse(url).map(|_| url.trim().to_string()),
        }
        .map_err(|e| CatalogError::Invalid(vec![FieldError::unusable("url", e)]))?;
        on_db!(&self.db, |p| sqlx::query("UPDATE providers SET url = $1 WHERE id = $2")
            .bind(url)
            .bind(id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn delete_provider(&self, id: i64) -> Result<(), CatalogError> {
        let n = on_db!(&self.db, |p| sqlx::query("DELETE FROM providers WHERE id = $1")
            .bind(id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        if n == 0 {
            return Err(CatalogError::NotFound { what: "provider", id: id.to_string() });
        }
        Ok(())
    }

    // ---- accounts --------------------------------------------------------

    pub async fn accounts(&self, provider_id: i64) -> Result<Vec<Account>, CatalogError> {
        on_db!(&self.db, |p| {
            let rows =
                sqlx::query(&format!("{ACCOUNT_SELECT} WHERE provider_id = $1 ORDER BY is_primary DESC, priority, id"))
                    .bind(provider_id)
                    .fetch_all(p)
                    .await?;
            rows.iter().map(account_from_row).collect()
        })
    }

    /// The provider's primary account, if it has credentials.
    pub async fn primary_account(&self, provider_id: i64) -> Result<Option<Account>, CatalogError> {
        on_db!(&self.db, |p| {
            let row = sqlx::query(&format!("{ACCOUNT_SELECT} WHERE provider_id = $1 AND is_primary"))
                .bind(provider_id)
                .fetch_optional(p)
                .await?;
            row.as_ref().map(account_from_row).transpose()
        })
    }

    pub async fn account(&self, id: i64) -> Result<Account, CatalogError> {
        on_db!(&self.db, |p| {
            let row = sqlx::query(&format!("{ACCOUNT_SELECT} WHERE id = $1"))
                .bind(id)
                .fetch_optional(p)
                .await?
                .ok_or_else(|| CatalogError::NotFound { what: "account", id: id.to_string() })?;
            account_from_row(&row)
        })
    }

    /// Adds a further account to a provider.
    pub async fn create_account(&self, provider_id: i64, input: &AccountPatch) -> Result<Account, CatalogError> {
        let provider = self.provider(provider_id).await?;
        let errs = input.validate(provider.kind, true);
        if !errs.is_empty() {
            return Err(CatalogError::Invalid(errs));
        }
        let username = input.username.as_deref().map(str::trim);
        let name = input.name.as_deref().map(str::trim).filter(|n| !n.is_empty()).or(username).unwrap_or("Account");
        let mut tx = self.write_tx().await?;
        let id = on_tx!(&mut tx, |c| sqlx::query_scalar::<_, i64>(
            "INSERT INTO accounts (provider_id, name, server_url, username, password, search_pattern, replace_pattern,
             max_streams, priority, enabled, is_primary, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, FALSE, $11) RETURNING id",
        )
        .bind(provider_id)
        .bind(name)
        .bind(normalized_server_url(input.server_url.clone().flatten()))
        .bind(username)
        .bind(input.password.as_ref().map(Secret::expose))
        .bind(input.search_pattern.clone().flatten())
        .bind(input.replace_pattern.clone().flatten())
        .bind(input.max_streams.flatten())
        .bind(input.priority.unwrap_or(1))
        .bind(input.enabled.unwrap_or(true))
        .bind(now())
        .fetch_one(&mut *c)
        .await)
        .map_err(|e| unique_username(e, username))?;
        if input.is_primary == Some(true) {
            make_primary(&mut tx, provider_id, id).await?;
        }
        tx.commit().await?;
        self.account(id).await
    }

    /// Applies a PATCH to an account.
    pub async fn update_account(&self, id: i64, patch: &AccountPatch) -> Result<Account, CatalogError> {
        let current = self.account(id).await?;
        let provider = self.provider(current.provider_id).await?;
        let errs = patch.validate(provider.kind, false);
        if !errs.is_empty() {
            return Err(CatalogError::Invalid(errs));
        }
        let username = patch.username.as_deref().map(str::trim).or(current.username.as_deref());
        let server_url = match &patch.server_url {
            Some(v) => normalized_server_url(v.clone()),
            None => current.server_url.clone(),
        };
        let mut tx = self.write_tx().await?;
        on_tx!(&mut tx, |c| sqlx::query(
            "UPDATE accounts SET name = $1, server_url = $2, username = $3, password = $4, search_pattern = $5, replace_pattern = $6,
             max_streams = $7, priority = $8, enabled = $9 WHERE id = $10",
        )
        .bind(patch.name.as_deref().map(str::trim).filter(|n| !n.is_empty()).unwrap_or(&current.name))
        .bind(server_url)
        .bind(username)
        .bind(patch.password.as_ref().unwrap_or(&current.password).expose())
        .bind(patch.search_pattern.clone().unwrap_or(current.search_pattern.clone()))
        .bind(patch.replace_pattern.clone().unwrap_or(current.replace_pattern.clone()))
        .bind(patch.max_streams.unwrap_or(current.max_streams))
        .bind(patch.priority.unwrap_or(current.priority))
        .bind(patch.enabled.unwrap_or(current.enabled))
        .bind(id)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(|e| unique_username(e, username))?;
        if patch.is_primary == Some(true) && !current.is_primary {
            make_primary(&mut tx, current.provider_id, id).await?;
        }
        tx.commit().await?;
        self.account(id).await
    }

    /// Removes an account. The primary account cannot be removed: make
    /// another one primary first (or remove the provider).
    pub async fn delete_account(&self, id: i64) -> Result<(), CatalogError> {
        let account = self.account(id).await?;
        if account.is_primary {
            return Err(CatalogError::Conflict(format!(
                "account {id} is the provider's primary account: make another account primary first, or remove the provider"
            )));
        }
        on_db!(&self.db, |p| sqlx::query("DELETE FROM accounts WHERE id = $1")
            .bind(id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Records that the panel refused an account's credentials, keeping its
    /// last known details.
    pub async fn record_rejected(&self, account_id: i64, error: &str) -> Result<(), CatalogError> {
        let at = now();
        on_db!(&self.db, |p| sqlx::query(
            "UPDATE accounts SET auth = FALSE, last_checked = $1, last_error = $2 WHERE id = $3"
        )
        .bind(at)
        .bind(error)
        .bind(account_id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        self.sample_account(account_id, at).await
    }

    /// Records that asking the provider about an account failed, keeping the
    /// last known details.
    pub async fn record_details_error(&self, account_id: i64, error: &str) -> Result<(), CatalogError> {
        let at = now();
        on_db!(&self.db, |p| sqlx::query("UPDATE accounts SET last_checked = $1, last_error = $2 WHERE id = $3")
            .bind(at)
            .bind(error)
            .bind(account_id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        self.sample_account(account_id, at).await
    }

    /// Applies a PATCH to a provider.
    pub async fn update_provider(&self, id: i64, patch: &ProviderPatch) -> Result<Provider, CatalogError> {
        let current = self.provider(id).await?;
        let errs = patch.validate(current.kind);
        if !errs.is_empty() {
            return Err(CatalogError::Invalid(errs));
        }
        let url = match (&patch.url, current.kind) {
            (Some(u), ProviderKind::Xtream) => tunerpool_upstream::xtream::normalize_base_url(u).expect("validated"),
            (Some(u), _) => u.trim().to_string(),
            (None, _) => current.url.clone(),
        };
        let name = patch.name.as_deref().map(str::trim).unwrap_or(&current.name);
        let res = on_db!(&self.db, |p| {
            sqlx::query(
            "UPDATE providers SET name = $1, url = $2, epg_url = $3, user_agent = $4, priority = $5, max_streams = $6, enabled = $7
             WHERE id = $8",
        )
        .bind(name)
        .bind(url)
        .bind(patch.epg_url.clone().unwrap_or(current.epg_url.clone()))
        .bind(patch.user_agent.clone().unwrap_or(current.user_agent.clone()))
        .bind(patch.priority.unwrap_or(current.priority))
        .bind(patch.max_streams.unwrap_or(current.max_streams))
        .bind(patch.enabled.unwrap_or(current.enabled))
        .bind(id)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
        });
        match res {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(CatalogError::Refused(vec![FieldError::new(
                    "name",
                    format!("a provider named {name:?} already exists: choose another name"),
                )]))
            }
            other => other?,
        };
        self.provider(id).await
    }

    /// Stores what the panel said about an account (`user_info`), clearing
    /// any previous error.
    pub async fn record_details(
        &self,
        account_id: i64,
        info: &tunerpool_formats::xtream::UserInfo,
    ) -> Result<(), CatalogError> {
        let at = now();
        on_db!(&self.db, |p| {
            sqlx::query(
            "UPDATE accounts SET auth = $1, status = $2, exp_date = $3, is_trial = $4, max_connections = $5, active_cons = $6,
             last_checked = $7, last_error = NULL WHERE id = $8",
        )
        .bind(info.auth)
        .bind(&info.status)
        .bind(info.exp_date)
        .bind(info.is_trial)
        .bind(info.max_connections)
        .bind(info.active_cons)
        .bind(at)
        .bind(account_id)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
        })?;
        // One history sample per refresh (crate::history).
        self.sample_account(account_id, at).await
    }

    // ---- channels --------------------------------------------------------

    /// A page of lineup channels by number, optionally filtered by group,
    /// name and availability, each with its sources.
    pub async fn channels(&self, q: &ChannelQuery) -> Result<Page<Channel>, CatalogError> {
        self.channels_where(None, q).await
    }

    /// The lineup channel ids a filter selects (for bulk operations), by number.
    pub async fn channel_ids(&self, q: &ChannelQuery) -> Result<Vec<i64>, CatalogError> {
        let (group, pattern) = Self::channel_filter(q);
        on_db!(&self.db, |p| {
            let from = channel_from(dialect!(sqlite: "LIKE", postgres: "ILIKE"));
            Ok(sqlx::query_scalar(&format!("SELECT c.id {from} ORDER BY c.number"))
                .bind(group)
                .bind(pattern.as_deref())
                .bind(q.group_id)
                .bind(q.available)
                .bind(None::<i64>)
                .fetch_all(p)
                .await?)
        })
    }

    /// The ids of the channels marked always-on (the relay keeps them
    /// running at start-up and whenever the flag is set).
    pub async fn always_on_channels(&self) -> Result<Vec<i64>, CatalogError> {
        on_db!(&self.db, |p| Ok(sqlx::query_scalar("SELECT id FROM lineup_channels WHERE always_on ORDER BY number")
            .fetch_all(p)
            .await?))
    }

    fn channel_filter(q: &ChannelQuery) -> (Option<&str>, Option<String>) {
        let group = q.group.as_deref().filter(|g| !g.is_empty());
        let pattern = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(like_pattern);
        (group, pattern)
    }

    async fn channels_where(&self, only: Option<i64>, q: &ChannelQuery) -> Result<Page<Channel>, CatalogError> {
        let errs = q.validate();
        if !errs.is_empty() {
            return Err(CatalogError::Invalid(errs));
        }
        let page = q.page.unwrap_or(1);
        let per_page = q.per_page.unwrap_or(DEFAULT_PER_PAGE);
        let (group, pattern) = Self::channel_filter(q);
        let limit = per_page as i64;
        let offset = (page as i64 - 1) * per_page as i64;
        on_db!(&self.db, |p| {
            let from = channel_from(dialect!(sqlite: "LIKE", postgres: "ILIKE"));
            let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) {from}"))
                .bind(group)
                .bind(pattern.as_deref())
                .bind(q.group_id)
                .bind(q.available)
                .bind(only)
                .fetch_one(p)
                .await?;
            let rows = sqlx::query(&format!(
                "SELECT c.id, c.name, g.name AS group_name, c.group_id, c.tvg_id, c.logo, c.number, c.hidden,
                        COALESCE(g.hidden, FALSE) AS group_hidden, c.auto_order, c.always_on
                 {from} ORDER BY c.number LIMIT $6 OFFSET $7"
            ))
            .bind(group)
            .bind(pattern.as_deref())
            .bind(q.group_id)
            .bind(q.available)
            .bind(only)
            .bind(limit)
            .bind(offset)
            .fetch_all(p)
            .await?;
            let mut items: Vec<Channel> = rows
                .iter()
                .map(|r| {
                    let hidden: bool = r.col("hidden")?;
                    let group_hidden: bool = r.col("group_hidden")?;
                    let number: i64 = r.col("number")?;
                    Ok(Channel {
                        id: r.col("id")?,
                        name: r.col("name")?,
                        group: r.col("group_name")?,
                        group_id: r.col("group_id")?,
                        tvg_id: r.col("tvg_id")?,
                        logo: r.col("logo")?,
                        number: Some(number.to_string()),
                        enabled: !hidden && !group_hidden,
                        available: false,
                        auto_order: r.col("auto_order")?,
                        always_on: r.col("always_on")?,
                        sources: Vec::new(),
                        lost_sources: Vec::new(),
                    })
                })
                .collect::<Result<_, sqlx::Error>>()?;
            if !items.is_empty() {
                let index: std::collections::HashMap<i64, usize> =
                    items.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
                let mut qb = sqlx::QueryBuilder::<Backend>::new(
                    "SELECT ls.id AS source_id, ls.channel_id, ls.position, ls.stream_id, ls.provider_id, p.name AS provider,
                            ls.upstream_key, s.upstream_id, s.name AS stream_name, ls.tvg_id, p.enabled AS provider_enabled
                     FROM lineup_sources ls LEFT JOIN streams s ON s.id = ls.stream_id
                     LEFT JOIN providers p ON p.id = ls.provider_id
                     WHERE ls.channel_id IN (",
                );
                let mut sep = qb.separated(", ");
                for c in &items {
                    sep.push_bind(c.id);
                }
                qb.push(") ORDER BY ls.channel_id, ls.position, ls.id");
                for r in qb.build().fetch_all(p).await? {
                    let cid: i64 = r.col("channel_id")?;
                    let Some(&i) = index.get(&cid) else { continue };
                    let stream_id: Option<i64> = r.col("stream_id")?;
                    match stream_id {
                        Some(stream_id) => {
                            let enabled: Option<bool> = r.col("provider_enabled")?;
                            if enabled == Some(true) {
                                items[i].available = true;
                            }
                            items[i].sources.push(ChannelSource {
                                id: r.col("source_id")?,
                                stream_id,
                                provider_id: r.col("provider_id")?,
                                provider: r.col::<Option<String>>("provider")?.unwrap_or_default(),
                                upstream_key: r.col("upstream_key")?,
                                upstream_id: r.col("upstream_id")?,
                                position: r.col("position")?,
                                name: r.col::<Option<String>>("stream_name")?.unwrap_or_default(),
                                tvg_id: r.col("tvg_id")?,
                            });
                        }
                        None => items[i].lost_sources.push(LostSource {
                            id: r.col("source_id")?,
                            provider_id: r.col("provider_id")?,
                            provider: r.col("provider")?,
                            upstream_key: r.col("upstream_key")?,
                            tvg_id: r.col("tvg_id")?,
                            position: r.col("position")?,
                        }),
                    }
                }
            }
            Ok(Page { total, page, per_page, items })
        })
    }

    /// One lineup channel with its sources.
    pub async fn channel(&self, id: i64) -> Result<Channel, CatalogError> {
        let page = self.channels_where(Some(id), &ChannelQuery { per_page: Some(1), ..Default::default() }).await?;
        page.items.into_iter().next().ok_or_else(|| CatalogError::NotFound { what: "channel", id: id.to_string() })
    }

    /// Where a stream is and which headers to send.
    pub async fn stream_source(&self, stream_id: i64) -> Result<StreamSource, CatalogError> {
        on_db!(&self.db, |p| {
            let row = sqlx::query("SELECT id, provider_id, upstream_id, url, headers FROM streams WHERE id = $1")
                .bind(stream_id)
                .fetch_optional(p)
                .await?
                .ok_or_else(|| CatalogError::NotFound { what: "stream", id: stream_id.to_string() })?;
            let headers: Option<String> = row.col("headers")?;
            let headers = headers
                .and_then(|h| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&h).ok())
                .map(|m| m.into_iter().filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_string()))).collect())
                .unwrap_or_default();
            Ok(StreamSource {
                stream_id: row.col("id")?,
                provider_id: row.col("provider_id")?,
                upstream_id: row.col("upstream_id")?,
                url: row.col("url")?,
                headers,
            })
        })
    }

    /// A movie or an (M3U) episode as a source to open, with its name and
    /// container extension.
    pub async fn vod_source(
        &self,
        kind: MediaKind,
        id: i64,
    ) -> Result<(StreamSource, String, Option<String>), CatalogError> {
        // A series row is playable only when it is itself an episode (an M3U
        // entry with a URL); an Xtream series is played episode by episode.
        let (table, ext, playable) = match kind {
            MediaKind::Series if id > crate::outputs::EPISODE_ID_BASE => return self.episode_source(id).await,
            MediaKind::Movie => ("movies", "container_extension", ""),
            MediaKind::Series => ("series", "NULL", " AND url IS NOT NULL"),
            MediaKind::Live => return self.stream_source(id).await.map(|s| (s, String::new(), None)),
        };
        on_db!(&self.db, |p| {
            let row = sqlx::query(&format!(
                "SELECT id, provider_id, upstream_id, url, name, {ext} AS ext FROM {table} WHERE id = $1{playable}"
            ))
            .bind(id)
            .fetch_optional(p)
            .await?
            .ok_or_else(|| CatalogError::NotFound { what: kind.as_str(), id: id.to_string() })?;
            let source = StreamSource {
                stream_id: row.col("id")?,
                provider_id: row.col("provider_id")?,
                upstream_id: row.col("upstream_id")?,
                url: row.col("url")?,
                headers: Vec::new(),
            };
            Ok((source, row.col("name")?, row.col("ext")?))
        })
    }

    /// An Xtream episode stored from a series' info (client id
    /// [`crate::outputs::EPISODE_ID_BASE`] + row id) as a source to open.
    async fn episode_source(&self, id: i64) -> Result<(StreamSource, String, Option<String>), CatalogError> {
        on_db!(&self.db, |p| {
            let row = sqlx::query(
                "SELECT s.provider_id, e.upstream_id, e.name, e.container_extension AS ext
                 FROM episodes e JOIN series s ON s.id = e.series_id WHERE e.id = $1",
            )
            .bind(id - crate::outputs::EPISODE_ID_BASE)
            .fetch_optional(p)
            .await?
            .ok_or_else(|| CatalogError::NotFound { what: "episode", id: id.to_string() })?;
            let source = StreamSource {
                stream_id: id,
                provider_id: row.col("provider_id")?,
                upstream_id: row.col("upstream_id")?,
                url: None,
                headers: Vec::new(),
            };
            Ok((source, row.col("name")?, row.col("ext")?))
        })
    }

    /// Lineup groups with their channel counts, in their order.
    pub async fn channel_groups(&self) -> Result<Vec<GroupCount>, CatalogError> {
        on_db!(&self.db, |p| {
            let rows = sqlx::query(
                "SELECT g.id, g.name AS group_name, g.position, g.hidden,
                        (SELECT COUNT(*) FROM lineup_channels c WHERE c.group_id = g.id) AS n
                 FROM lineup_groups g ORDER BY g.position, g.id",
            )
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(GroupCount {
                        id: r.col("id")?,
                        name: r.col("group_name")?,
                        channels: r.col("n")?,
                        position: r.col("position")?,
                        hidden: r.col("hidden")?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(Into::into)
        })
    }

    /// Counts of what a provider's last successful sync stored.
    pub async fn counts(&self, provider_id: i64) -> Result<(i64, i64, i64), CatalogError> {
        on_db!(&self.db, |p| {
            let row = sqlx::query(
                "SELECT (SELECT COUNT(*) FROM streams WHERE provider_id = $1) AS live,
                        (SELECT COUNT(*) FROM movies WHERE provider_id = $1) AS vod,
                        (SELECT COUNT(*) FROM series WHERE provider_id = $1) AS series",
            )
            .bind(provider_id)
            .fetch_one(p)
            .await?;
            Ok((row.col("live")?, row.col("vod")?, row.col("series")?))
        })
    }
}

fn normalized_server_url(url: Option<String>) -> Option<String> {
    let url = url?.trim().to_string();
    if url.is_empty() {
        return None;
    }
    Some(tunerpool_upstream::xtream::normalize_base_url(&url).unwrap_or(url))
}

fn unique_username(e: sqlx::Error, username: Option<&str>) -> CatalogError {
    match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => CatalogError::Refused(vec![FieldError::new(
            "username",
            format!("this provider already has an account with username {:?}", username.unwrap_or_default()),
        )]),
        other => other.into(),
    }
}

async fn make_primary(tx: &mut crate::db::Tx, provider_id: i64, account_id: i64) -> Result<(), sqlx::Error> {
    on_tx!(tx, |c| {
        sqlx::query("UPDATE accounts SET is_primary = FALSE WHERE provider_id = $1 AND id <> $2")
            .bind(provider_id)
            .bind(account_id)
            .execute(&mut *c)
            .await?;
        sqlx::query("UPDATE accounts SET is_primary = TRUE WHERE id = $1").bind(account_id).execute(&mut *c).await?;
    });
    Ok(())
}

/// The password of a `scheme://user:password@host/…` URL, if it has one
/// (to mask it wherever the driver might repeat it).
/// Connects to the PostgreSQL database `url` names, with up to
/// `connections` connections, without migrating it (the store's
/// [`Store::open_url`] migrates; `tunerpool store copy` checks the version
/// first). Every error names the URL with its password masked, and has the
/// password masked from the driver's own text too.
pub(crate) async fn connect_postgres(url: &str, connections: u32) -> Result<sqlx::PgPool, CatalogError> {
    let opts = pg_options(url)?;
    PgPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(opts)
        .await
        .map_err(|e| open_failed(url, "", &e))
}

/// The connection options `url` names (the password masked from any error).
pub(crate) fn pg_options(url: &str) -> Result<PgConnectOptions, CatalogError> {
    Ok(PgConnectOptions::from_str(url)
        .map_err(|e| open_failed(url, "not a PostgreSQL URL: ", &e))?
        .application_name("tunerpool"))
}

/// [`CatalogError::Open`] for the PostgreSQL database `url`: the URL and the
/// error's text with the URL's password masked.
pub(crate) fn open_failed(url: &str, what: &str, e: &dyn std::fmt::Display) -> CatalogError {
    use tunerpool_upstream::redact::{redact_text, redact_url};
    let password = url_password(url);
    let secrets: Vec<&str> = password.iter().map(String::as_str).collect();
    CatalogError::Open {
        path: redact_url(url, &secrets),
        reason: format!("{what}{}", redact_text(&e.to_string(), &secrets)),
    }
}

/// The SQLite schema's migrations (`migrations/`), embedded.
pub(crate) static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The PostgreSQL schema's migrations (`migrations_pg/`), embedded.
pub(crate) static PG_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations_pg");

pub(crate) fn url_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let userinfo = rest.split(['/', '?']).next()?.rsplit_once('@')?.0;
    let password = userinfo.split_once(':')?.1;
    (!password.is_empty()).then(|| password.to_owned())
}

/// `%text%` for LIKE, with LIKE's wildcards in the text escaped.
fn like_pattern(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

const PROVIDER_SELECT: &str =
    "SELECT id, name, kind, url, epg_url, user_agent, priority, max_streams, enabled, created_at,
    last_sync_at, last_sync_ok, last_sync_ok_at, last_sync_error, last_sync_ms, live_count, vod_count, series_count,
    skipped_count FROM providers";

fn provider_from_row(r: &impl RowGet) -> Result<Provider, CatalogError> {
    let kind: String = r.col("kind")?;
    Ok(Provider {
        id: r.col("id")?,
        name: r.col("name")?,
        kind: kind.parse().map_err(CatalogError::Internal)?,
        url: r.col("url")?,
        epg_url: r.col("epg_url")?,
        user_agent: r.col("user_agent")?,
        priority: r.col("priority")?,
        max_streams: r.col("max_streams")?,
        enabled: r.col("enabled")?,
        created_at: r.col("created_at")?,
        sync: SyncStatus {
            last_sync_at: r.col("last_sync_at")?,
            ok: r.col("last_sync_ok")?,
            last_ok_at: r.col("last_sync_ok_at")?,
            error: r.col("last_sync_error")?,
            duration_ms: r.col("last_sync_ms")?,
            live: r.col("live_count")?,
            vod: r.col("vod_count")?,
            series: r.col("series_count")?,
            skipped: r.col("skipped_count")?,
        },
    })
}

const ACCOUNT_SELECT: &str = "SELECT id, provider_id, name, server_url, username, password, search_pattern, replace_pattern,
    max_streams, priority, enabled, is_primary, created_at, auth, status, exp_date, is_trial, max_connections, active_cons,
    last_checked, last_error FROM accounts";

fn account_from_row(r: &impl RowGet) -> Result<Account, CatalogError> {
    let password: Option<String> = r.col("password")?;
    Ok(Account {
        id: r.col("id")?,
        provider_id: r.col("provider_id")?,
        name: r.col("name")?,
        server_url: r.col("server_url")?,
        username: r.col("username")?,
        password: Secret::new(password.unwrap_or_default()),
        search_pattern: r.col("search_pattern")?,
        replace_pattern: r.col("replace_pattern")?,
        max_streams: r.col("max_streams")?,
        priority: r.col("priority")?,
        enabled: r.col("enabled")?,
        is_primary: r.col("is_primary")?,
        created_at: r.col("created_at")?,
        details: AccountDetails {
            auth: r.col("auth")?,
            status: r.col("status")?,
            exp_date: r.col("exp_date")?,
            is_trial: r.col("is_trial")?,
            max_connections: r.col("max_connections")?,
            active_cons: r.col("active_cons")?,
            last_checked: r.col("last_checked")?,
            last_error: r.col("last_error")?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn store_urls_are_checked_without_showing_them() {
        use super::{url_password, StoreUrl};
        assert_eq!(StoreUrl::parse(None).unwrap(), StoreUrl::Sqlite);
        assert_eq!(StoreUrl::parse(Some(" ")).unwrap(), StoreUrl::Sqlite);
        assert_eq!(StoreUrl::parse(Some("sqlite:")).unwrap(), StoreUrl::Sqlite);
        let pg = "postgres://u:s3cret@db:5432/tp";
        assert_eq!(StoreUrl::parse(Some(pg)).unwrap(), StoreUrl::Postgres(pg.into()));
        assert!(matches!(StoreUrl::parse(Some("postgresql://db/tp")), Ok(StoreUrl::Postgres(_))));
        for (bad, says) in [
            ("mysql://u:s3cret@db/tp", "unsupported scheme \"mysql\""),
            ("sqlite:///var/lib/x.db", "always the file in the data dir"),
            ("u:s3cret@db", "unsupported scheme \"u\""),
            ("s3cret", "not a URL"),
        ] {
            let e = StoreUrl::parse(Some(bad)).unwrap_err().to_string();
            assert!(e.contains(says) && !e.contains("s3cret"), "{bad}: {e}");
        }
        assert_eq!(url_password(pg).as_deref(), Some("s3cret"));
        assert_eq!(url_password("postgres://u@db/tp"), None);
        assert_eq!(url_password("postgres://u:p@ss@db/tp").as_deref(), Some("p@ss"));
    }

    #[test]
    fn like_escapes_wildcards() {
        assert_eq!(like_pattern("a%b_c\\"), "%a\\%b\\_c\\\\%");
    }
}
