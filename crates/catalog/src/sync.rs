//! Provider sync: pull a provider's catalog and make the store match it.
//!
//! The shape of a sync:
//! 1. download everything the provider lists (spooled to disk by `upstream`,
//!    so a slow or failing provider never holds the database);
//! 2. in **one transaction**, parse the spooled lists in batches and upsert
//!    them on `(provider, upstream key)` — which keeps ids stable — stamping
//!    each row with this sync's generation;
//! 3. delete what the provider no longer lists (older generation), bring the
//!    lineup up to date ([`crate::lineup::maintain`]: re-attach renumbered
//!    streams, match new ones to channels, create channels) and record the
//!    outcome.
//!
//! Any error rolls the transaction back: the previous catalog stays whole and
//! the provider's `last_sync_error` says what went wrong.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::LazyLock;
use std::time::Instant;

use serde::Serialize;
use sqlx::QueryBuilder;
use tunerpool_formats::m3u::Entry;
use tunerpool_formats::xtream::{Category, LiveStream, Series, VodStream};
use tunerpool_upstream::m3u::M3uSource;
use tunerpool_upstream::xtream::{parse_items_map, Section, XtreamClient};
use tunerpool_upstream::{UpstreamError, UpstreamHttp};

use crate::db::{on_db, on_tx, Tx};
use crate::error::CatalogError;
use crate::events::{Level, NewEvent};
use crate::model::{MediaKind, Provider, ProviderKind};
use crate::store::{now, Store};

/// What a sync did; returned to the CLI/API and logged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SyncReport {
    pub provider_id: i64,
    pub provider: String,
    pub live: u64,
    pub vod: u64,
    pub series: u64,
    pub groups: u64,
    pub removed: u64,
    /// Live streams this sync saw for the first time.
    pub new_channels: u64,
    /// Entries or lines that could not be used (malformed, no id, ...).
    pub skipped: u64,
    /// The first few skipped lines, with line numbers and reasons.
    #[serde(serialize_with = "tunerpool_domain::fields::serialize_redacted_texts")]
    pub skipped_examples: Vec<String>,
    /// Guide URLs the provider advertised (M3U `x-tvg-url`), credentials masked.
    #[serde(serialize_with = "tunerpool_domain::fields::serialize_redacted_texts")]
    pub epg_urls: Vec<String>,
    /// What the sync did to the lineup (re-attached, joined, created).
    pub lineup: crate::lineup::LineupReport,
    pub duration_ms: u64,
}

const SKIPPED_EXAMPLES: usize = 20;

/// Syncs one provider and records the outcome on it. On failure the
/// previous catalog is kept and the error is returned (and stored).
pub async fn sync_provider(store: &Store, http: &UpstreamHttp, provider_id: i64) -> Result<SyncReport, CatalogError> {
    let provider = store.provider(provider_id).await?;
    let started = Instant::now();
    let result = match provider.kind {
        ProviderKind::Xtream => sync_xtream(store, http, &provider, started).await,
        ProviderKind::M3u | ProviderKind::Agtv => sync_m3u(store, http, &provider, started).await,
    };
    let elapsed_ms = started.elapsed().as_millis() as i64;
    match result {
        Ok(report) => {
            tracing::info!(
                provider = %provider.name, live = report.live, vod = report.vod, series = report.series,
                removed = report.removed, skipped = report.skipped, ms = elapsed_ms, "catalog sync done"
            );
            let msg = format!(
                "{}: catalog synced in {elapsed_ms} ms: {} live, {} movies, {} series ({} removed, {} bad lines skipped)",
                provider.name, report.live, report.vod, report.series, report.removed, report.skipped
            );
            store.note(NewEvent::new(Level::Info, "sync", msg).provider(provider.id));
            Ok(report)
        }
        Err(e) => {
            let msg = e.to_string();
            tracing::warn!(provider = %provider.name, error = %msg, ms = elapsed_ms, "catalog sync failed; previous catalog kept");
            on_db!(store.db(), |p| sqlx::query(
                "UPDATE providers SET last_sync_at = $1, last_sync_ok = FALSE, last_sync_error = $2, last_sync_ms = $3
                 WHERE id = $4"
            )
            .bind(now())
            .bind(&msg)
            .bind(elapsed_ms)
            .bind(provider.id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
            let event = format!("catalog sync failed, previous catalog kept: {msg}");
            store.note(NewEvent::new(Level::Warn, "sync", event).provider(provider.id));
            Err(e)
        }
    }
}

fn upstream_err(provider: &Provider, source: UpstreamError) -> CatalogError {
    CatalogError::Sync { provider: provider.name.clone(), source }
}

async fn sync_xtream(
    store: &Store,
    http: &UpstreamHttp,
    provider: &Provider,
    started: Instant,
) -> Result<SyncReport, CatalogError> {
    let account = store.primary_account(provider.id).await?.ok_or_else(|| {
        CatalogError::Conflict(format!(
            "provider {} has no primary account: add its username and password",
            provider.name
        ))
    })?;
    let client = XtreamClient::new(
        http.clone(),
        account.server_url.as_deref().unwrap_or(&provider.url),
        account.username.as_deref().unwrap_or_default(),
        account.password.expose(),
    )
    .map_err(|e| upstream_err(provider, e))?;
    let err = |e| upstream_err(provider, e);

    // Refuse early and clearly when the credentials are wrong: panels answer
    // the list actions with `[]` then, which would wipe the catalog.
    let auth = client.authenticate().await.map_err(err)?;
    if !auth.user_info.auth {
        return Err(CatalogError::Conflict(format!(
            "provider {}: the panel refused the primary account's credentials (auth=0{}); check the username and password",
            provider.name,
            auth.user_info.status.as_deref().map(|s| format!(", status {s}")).unwrap_or_default()
        )));
    }

    // Everything is fetched before the transaction starts.
    let live_cats = client.categories(Section::Live).await.map_err(err)?;
    let vod_cats = client.categories(Section::Vod).await.map_err(err)?;
    let series_cats = client.categories(Section::Series).await.map_err(err)?;
    let live = client.download_items(Section::Live).await.map_err(err)?;
    let vod = client.download_items(Section::Vod).await.map_err(err)?;
    let series = client.download_items(Section::Series).await.map_err(err)?;
    tracing::debug!(provider = %provider.name, ms = started.elapsed().as_millis() as u64, "sync: downloaded");

    store.record_details(account.id, &auth.user_info).await?;

    let mut w = Writer::begin(store, provider).await?;
    let live_groups = w.categories(MediaKind::Live, &live_cats).await?;
    let vod_groups = w.categories(MediaKind::Movie, &vod_cats).await?;
    let series_groups = w.categories(MediaKind::Series, &series_cats).await?;

    // Rows are built on the parsing thread; this task only writes them.
    let mut position = 0i64;
    let mut batches = parse_items_map(live, move |s: LiveStream| {
        position += 1;
        StreamRow {
            upstream_key: s.stream_id.to_string(),
            upstream_id: Some(s.stream_id),
            group_id: s.category_id.as_deref().and_then(|c| live_groups.get(c).copied()),
            tvg_id: s.epg_channel_id.filter(|t| !t.trim().is_empty()),
            tvg_name: None,
            logo: s.stream_icon.filter(|l| !l.is_empty()),
            chno: s.num.map(|n| n.to_string()),
            url: None,
            catchup: s.tv_archive.then(|| "xc".to_string()),
            catchup_days: s.tv_archive_duration.filter(|_| s.tv_archive),
            catchup_source: None,
            headers: None,
            norm_name: crate::lineup::normalize_name(&s.name),
            name: s.name,
            position,
        }
    });
    while let Some(rows) = batches.next().await {
        w.report.live += rows.len() as u64;
        w.insert_streams(rows).await?;
    }
    w.add_counts(batches.finish().await.map_err(err)?);

    let mut batches = parse_items_map(vod, move |m: VodStream| {
        position += 1;
        MovieRow {
            upstream_key: m.stream_id.to_string(),
            upstream_id: Some(m.stream_id),
            group_id: m.category_id.as_deref().and_then(|c| vod_groups.get(c).copied()),
            logo: m.stream_icon.filter(|l| !l.is_empty()),
            rating: m.rating.filter(|r| !r.is_empty()),
            container_extension: m.container_extension.map(|e| e.to_ascii_lowercase()),
            url: None,
            added: m.added,
            name: m.name,
            position,
        }
    });
    while let Some(rows) = batches.next().await {
        w.report.vod += rows.len() as u64;
        w.insert_movies(rows).await?;
    }
    w.add_counts(batches.finish().await.map_err(err)?);

    let mut batches = parse_items_map(series, move |s: Series| {
        position += 1;
        SeriesRow {
            upstream_key: s.series_id.to_string(),
            upstream_id: Some(s.series_id),
            group_id: s.category_id.as_deref().and_then(|c| series_groups.get(c).copied()),
            cover: s.cover.filter(|c| !c.is_empty()),
            plot: s.plot,
            genre: s.genre,
            release_date: s.release_date,
            rating: s.rating,
            url: None,
            name: s.name,
            position,
        }
    });
    while let Some(rows) = batches.next().await {
        w.report.series += rows.len() as u64;
        w.insert_series(rows).await?;
    }
    w.add_counts(batches.finish().await.map_err(err)?);

    w.commit(None, started).await
}

async fn sync_m3u(
    store: &Store,
    http: &UpstreamHttp,
    provider: &Provider,
    started: Instant,
) -> Result<SyncReport, CatalogError> {
    let source = M3uSource::parse(&provider.url).map_err(|reason| {
        let url = tunerpool_upstream::redact::redact_url(&provider.url, &[]);
        upstream_err(provider, UpstreamError::InvalidUrl { url, reason })
    })?;
    let primary = store.primary_account(provider.id).await?;
    let password = primary.as_ref().map(|a| a.password.expose().to_string()).unwrap_or_default();
    let mut seen: HashMap<u64, u32> = HashMap::new();
    let mut position = 0i64;
    let to_row = move |e: Entry| {
        position += 1;
        m3u_row(e, &mut seen, position)
    };
    let mut batches = tunerpool_upstream::m3u::fetch_map(http, &source, &[&password], to_row)
        .await
        .map_err(|e| upstream_err(provider, e))?;

    let mut w = Writer::begin(store, provider).await?;
    let mut groups: [HashMap<String, i64>; 3] = Default::default();
    while let Some(batch) = batches.next().await {
        let (mut live, mut movies, mut series) = (Vec::new(), Vec::new(), Vec::new());
        for item in batch {
            let group_id = match &item.group {
                Some(g) => Some(w.group(&mut groups, item.kind, g).await?),
                None => None,
            };
            match item.row {
                M3uRow::Live(r) => live.push(StreamRow { group_id, ..r }),
                M3uRow::Movie(r) => movies.push(MovieRow { group_id, ..r }),
                M3uRow::Series(r) => series.push(SeriesRow { group_id, ..r }),
            }
        }
        w.report.live += live.len() as u64;
        w.report.vod += movies.len() as u64;
        w.report.series += series.len() as u64;
        w.insert_streams(live).await?;
        w.insert_movies(movies).await?;
        w.insert_series(series).await?;
    }
    let summary = batches.finish().await.map_err(|e| upstream_err(provider, e))?;
    w.report.skipped += summary.skipped_count as u64;
    for s in summary.skipped.iter().take(SKIPPED_EXAMPLES) {
        w.report.skipped_examples.push(format!("line {}: {}", s.line, s.reason));
    }
    w.report.epg_urls = summary.header.epg_urls().into_iter().map(str::to_string).collect();
    if w.report.live + w.report.vod + w.report.series == 0 {
        // An empty or junk answer (an HTML page, a login wall) must not wipe a catalog.
        return Err(CatalogError::Conflict(format!(
            "provider {}: the playlist has no entries ({} lines skipped{}); the previous catalog was kept",
            provider.name,
            summary.skipped_count,
            summary.skipped.first().map(|s| format!(", first: line {}: {}", s.line, s.reason)).unwrap_or_default()
        )));
    }
    let epg = w.report.epg_urls.first().cloned();
    w.commit(epg, started).await
}

fn extension(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let last = path.rsplit('/').next()?;
    let (_, ext) = last.rsplit_once('.')?;
    (!ext.is_empty() && ext.len() <= 5).then(|| ext.to_ascii_lowercase())
}

/// An M3U entry's stable key: its tvg-id, else its URL; a repeat within one
/// playlist gets `#2`, `#3`, ... so that no entry overwrites another.
fn m3u_key(e: &Entry, kind: MediaKind, seen: &mut HashMap<u64, u32>) -> String {
    let base = match e.tvg_id() {
        Some(id) => format!("tvg:{id}"),
        None => format!("url:{}", e.url),
    };
    let mut h = DefaultHasher::new();
    (kind, &base).hash(&mut h);
    let n = seen.entry(h.finish()).or_insert(0);
    *n += 1;
    if *n == 1 {
        base
    } else {
        format!("{base}#{n}")
    }
}

/// An M3U entry made ready for the store on the parsing thread; only its
/// group id is filled in by the writer.
struct M3uItem {
    kind: MediaKind,
    group: Option<String>,
    row: M3uRow,
}

enum M3uRow {
    Live(StreamRow),
    Movie(MovieRow),
    Series(SeriesRow),
}

fn m3u_row(e: Entry, seen: &mut HashMap<u64, u32>, position: i64) -> M3uItem {
    let kind = MediaKind::from_url(&e.url);
    let upstream_key = m3u_key(&e, kind, seen);
    let group = e.group_title().map(str::to_string);
    let logo = e.tvg_logo().map(str::to_string);
    let name = e.name().to_string();
    let row = match kind {
        MediaKind::Live => {
            let mut headers = serde_json::Map::new();
            if let Some(ua) = e.user_agent() {
                headers.insert("user-agent".into(), ua.into());
            }
            if let Some(r) = e.referrer() {
                headers.insert("referer".into(), r.into());
            }
            M3uRow::Live(StreamRow {
                upstream_key,
                upstream_id: None,
                group_id: None,
                tvg_id: e.tvg_id().map(str::to_string),
                tvg_name: e.tvg_name().map(str::to_string),
                logo,
                chno: e.tvg_chno().map(str::to_string),
                catchup: e.attr("catchup").filter(|s| !s.is_empty()).map(str::to_string),
                catchup_days: e.attr("catchup-days").and_then(|d| d.trim().parse().ok()),
                catchup_source: e.attr("catchup-source").filter(|s| !s.is_empty()).map(str::to_string),
                headers: (!headers.is_empty()).then(|| serde_json::Value::Object(headers).to_string()),
                norm_name: crate::lineup::normalize_name(&name),
                name,
                url: Some(e.url),
                position,
            })
        }
        MediaKind::Movie => M3uRow::Movie(MovieRow {
            upstream_key,
            upstream_id: None,
            group_id: None,
            logo,
            rating: None,
            container_extension: extension(&e.url),
            added: None,
            name,
            url: Some(e.url),
            position,
        }),
        MediaKind::Series => M3uRow::Series(SeriesRow {
            upstream_key,
            upstream_id: None,
            group_id: None,
            cover: logo,
            plot: None,
            genre: None,
            release_date: None,
            rating: None,
            name,
            url: Some(e.url),
            position,
        }),
    };
    M3uItem { kind, group, row }
}

/// Rows per INSERT statement on SQLite. 18 columns × 500 stays far below
/// SQLite's 32 766 bound parameters; fewer, larger statements are what make
/// a 200 000-entry sync fast.
const ROWS_PER_STATEMENT: usize = 500;

/// Declares a row a sync writes to one catalog table, and its batch upsert
/// on both backends, from one list of fields: each field is the column of
/// the same name, in that order, so the SQLite and the PostgreSQL statements
/// cannot disagree on a column, its position or its type.
///
/// The first field is the upstream key (`ON CONFLICT (provider_id, key)`);
/// every other field is updated on conflict. Besides the fields, a row gets
/// `provider_id` and the sync's generation in `sync_gen` (updated on
/// conflict); `with first_gen` adds an insert-only generation column (the
/// sync that first saw the row).
///
/// SQLite gets multi-row `VALUES` of [`ROWS_PER_STATEMENT`] rows;
/// PostgreSQL the whole batch as one array per column in one short statement
/// (`INSERT … SELECT … FROM UNNEST`), where a multi-row `VALUES` of
/// thousands of parameters costs the server milliseconds to parse and plan
/// at every execution. The arrays' types come from the fields' Rust types
/// (sqlx's own PostgreSQL type names).
macro_rules! sync_table {
    (
        $(#[$meta:meta])*
        struct $row:ident in $table:literal $(with $first_gen:ident)? {
            $key:ident: $key_ty:ty,
            $($(#[$fmeta:meta])* $field:ident: $ty:ty),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        struct $row {
            $key: $key_ty,
            $($(#[$fmeta])* $field: $ty,)+
        }

        impl $row {
            /// This table's statements, made once from the field list.
            fn sql() -> &'static UpsertSql {
                static SQL: LazyLock<UpsertSql> = LazyLock::new(|| {
                    UpsertSql::new(
                        $table,
                        &[(stringify!($key), pg_array::<$key_ty>()), $((stringify!($field), pg_array::<$ty>())),+],
                        &[$(stringify!($first_gen))?],
                    )
                });
                &SQL
            }

            /// Upserts a batch of this sync's rows (see [`sync_table!`]).
            async fn upsert(tx: &mut Tx, provider_id: i64, gen: i64, rows: Vec<Self>) -> Result<(), sqlx::Error> {
                if rows.is_empty() {
                    return Ok(());
                }
                let sql = Self::sql();
                match tx {
                    Tx::Postgres(t) => {
                        let len = rows.len();
                        let mut $key = Vec::with_capacity(len);
                        $(let mut $field = Vec::with_capacity(len);)+
                        for r in rows {
                            $key.push(r.$key);
                            $($field.push(r.$field);)+
                        }
                        sqlx::query(&sql.postgres)
                            .bind(provider_id)
                            .bind(gen)
                            .bind($key)
                            $(.bind($field))+
                            .execute(&mut **t)
                            .await?;
                    }
                    Tx::Sqlite(t) => {
                        let mut rows = rows.into_iter().peekable();
                        while rows.peek().is_some() {
                            let mut qb = QueryBuilder::<sqlx::Sqlite>::new(&sql.sqlite_insert);
                            qb.push_values(rows.by_ref().take(ROWS_PER_STATEMENT), |mut b, r| {
                                b.push_bind(provider_id).push_bind(r.$key)$(.push_bind(r.$field))+;
                                for _ in 0..sql.generations {
                                    b.push_bind(gen);
                                }
                            });
                            qb.push(&sql.conflict);
                            qb.build().execute(&mut **t).await?;
                        }
                    }
                }
                Ok(())
            }
        }
    };
}

/// The PostgreSQL array type of a column of Rust type `T` (`TEXT[]`,
/// `INT8[]`), as sqlx binds it.
fn pg_array<T>() -> String
where
    Vec<T>: sqlx::Type<sqlx::Postgres>,
{
    use sqlx::TypeInfo;
    <Vec<T> as sqlx::Type<sqlx::Postgres>>::type_info().name().to_string()
}

/// The statements of one table's batch upsert ([`sync_table!`]), made from
/// its column list.
struct UpsertSql {
    /// `INSERT INTO t (columns) `, to which SQLite's `VALUES` are pushed.
    sqlite_insert: String,
    /// ` ON CONFLICT … DO UPDATE SET …`, the same on both backends.
    conflict: String,
    /// The whole PostgreSQL statement: `$1` the provider, `$2` the
    /// generation, `$3…` one array per field.
    postgres: String,
    /// How many generation columns end a row (bound to the generation).
    generations: usize,
}

impl UpsertSql {
    /// `fields`: (name, PostgreSQL array type), the key first;
    /// `first_gen`: insert-only generation columns, written before `sync_gen`.
    fn new(table: &str, fields: &[(&str, String)], first_gen: &[&str]) -> UpsertSql {
        let names: Vec<&str> = fields.iter().map(|(name, _)| *name).collect();
        let generations: Vec<&str> = first_gen.iter().copied().chain(["sync_gen"]).collect();
        let columns = ["provider_id"].iter().chain(&names).chain(&generations).copied().collect::<Vec<_>>().join(", ");
        let updates = names[1..]
            .iter()
            .chain(&["sync_gen"])
            .map(|c| format!("{c} = excluded.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let conflict = format!(" ON CONFLICT (provider_id, {}) DO UPDATE SET {updates}", names[0]);
        let arrays = (3..).zip(fields).map(|(n, (_, ty))| format!("${n}::{ty}")).collect::<Vec<_>>().join(", ");
        let gens = vec!["$2"; generations.len()].join(", ");
        UpsertSql {
            sqlite_insert: format!("INSERT INTO {table} ({columns}) "),
            postgres: format!(
                "INSERT INTO {table} ({columns}) SELECT $1, u.*, {gens} FROM UNNEST({arrays}) AS u{conflict}"
            ),
            conflict,
            generations: generations.len(),
        }
    }
}

sync_table! {
    /// A live stream as a sync writes it to `streams`.
    struct StreamRow in "streams" with first_gen {
        upstream_key: String,
        upstream_id: Option<i64>,
        name: String,
        group_id: Option<i64>,
        tvg_id: Option<String>,
        tvg_name: Option<String>,
        logo: Option<String>,
        chno: Option<String>,
        url: Option<String>,
        catchup: Option<String>,
        catchup_days: Option<i64>,
        catchup_source: Option<String>,
        headers: Option<String>,
        /// [`crate::lineup::normalize_name`] of the name, computed on the parsing thread.
        norm_name: String,
        position: i64,
    }
}

sync_table! {
    /// A movie as a sync writes it to `movies`.
    struct MovieRow in "movies" {
        upstream_key: String,
        upstream_id: Option<i64>,
        name: String,
        group_id: Option<i64>,
        logo: Option<String>,
        rating: Option<String>,
        container_extension: Option<String>,
        url: Option<String>,
        added: Option<i64>,
        position: i64,
    }
}

sync_table! {
    /// A series as a sync writes it to `series`.
    struct SeriesRow in "series" {
        upstream_key: String,
        upstream_id: Option<i64>,
        name: String,
        group_id: Option<i64>,
        cover: Option<String>,
        plot: Option<String>,
        genre: Option<String>,
        release_date: Option<String>,
        rating: Option<String>,
        url: Option<String>,
        position: i64,
    }
}

/// The write side of one sync: a transaction plus this sync's generation.
struct Writer {
    tx: Tx,
    provider_id: i64,
    provider_name: String,
    gen: i64,
    lineup: crate::lineup::LineupSettings,
    report: SyncReport,
}

impl Writer {
    async fn begin(store: &Store, provider: &Provider) -> Result<Writer, CatalogError> {
        let mut tx = store.write_tx().await?;
        let gen: i64 = on_tx!(&mut tx, |c| sqlx::query_scalar(
            "UPDATE providers SET sync_gen = sync_gen + 1 WHERE id = $1 RETURNING sync_gen"
        )
        .bind(provider.id)
        .fetch_one(&mut *c)
        .await)?;
        Ok(Writer {
            tx,
            provider_id: provider.id,
            provider_name: provider.name.clone(),
            gen,
            lineup: store.lineup_settings(),
            report: SyncReport { provider_id: provider.id, provider: provider.name.clone(), ..Default::default() },
        })
    }

    fn add_counts(&mut self, c: tunerpool_formats::xtream::ItemCounts) {
        self.report.skipped += c.skipped as u64;
        if let Some(e) = c.first_error {
            if self.report.skipped_examples.len() < SKIPPED_EXAMPLES {
                self.report.skipped_examples.push(e);
            }
        }
    }

    async fn upsert_group(
        &mut self,
        kind: MediaKind,
        key: &str,
        name: &str,
        position: i64,
    ) -> Result<i64, sqlx::Error> {
        self.report.groups += 1;
        on_tx!(&mut self.tx, |c| {
            sqlx::query_scalar(
            "INSERT INTO groups (provider_id, kind, upstream_key, name, position, sync_gen) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (provider_id, kind, upstream_key) DO UPDATE SET name = excluded.name, position = excluded.position,
             sync_gen = excluded.sync_gen RETURNING id",
        )
        .bind(self.provider_id)
        .bind(kind.as_str())
        .bind(key)
        .bind(name)
        .bind(position)
        .bind(self.gen)
        .fetch_one(&mut *c)
        .await
        })
    }

    /// Xtream categories → group ids by category_id.
    async fn categories(&mut self, kind: MediaKind, cats: &[Category]) -> Result<HashMap<String, i64>, CatalogError> {
        let mut map = HashMap::with_capacity(cats.len());
        for (i, c) in cats.iter().enumerate() {
            let id = self.upsert_group(kind, &c.category_id, &c.category_name, i as i64).await?;
            map.insert(c.category_id.clone(), id);
        }
        Ok(map)
    }

    /// M3U group titles → group ids, created on first sight.
    async fn group(
        &mut self,
        cache: &mut [HashMap<String, i64>; 3],
        kind: MediaKind,
        name: &str,
    ) -> Result<i64, CatalogError> {
        let cache = &mut cache[kind as usize];
        if let Some(id) = cache.get(name) {
            return Ok(*id);
        }
        let id = self.upsert_group(kind, name, name, cache.len() as i64).await?;
        cache.insert(name.to_string(), id);
        Ok(id)
    }

    async fn insert_streams(&mut self, rows: Vec<StreamRow>) -> Result<(), CatalogError> {
        Ok(StreamRow::upsert(&mut self.tx, self.provider_id, self.gen, rows).await?)
    }

    async fn insert_movies(&mut self, rows: Vec<MovieRow>) -> Result<(), CatalogError> {
        Ok(MovieRow::upsert(&mut self.tx, self.provider_id, self.gen, rows).await?)
    }

    async fn insert_series(&mut self, rows: Vec<SeriesRow>) -> Result<(), CatalogError> {
        Ok(SeriesRow::upsert(&mut self.tx, self.provider_id, self.gen, rows).await?)
    }

    /// Removes what this sync did not see, maintains channels, records the
    /// outcome, and commits.
    async fn commit(mut self, detected_epg: Option<String>, started: Instant) -> Result<SyncReport, CatalogError> {
        tracing::debug!(provider = %self.provider_name, ms = started.elapsed().as_millis() as u64, "sync: rows written");
        let (provider_id, gen) = (self.provider_id, self.gen);
        for table in ["streams", "movies", "series", "groups"] {
            let n = on_tx!(&mut self.tx, |c| sqlx::query(&format!(
                "DELETE FROM {table} WHERE provider_id = $1 AND sync_gen < $2"
            ))
            .bind(provider_id)
            .bind(gen)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))?;
            if table != "groups" {
                self.report.removed += n;
            }
        }
        tracing::debug!(provider = %self.provider_name, ms = started.elapsed().as_millis() as u64, "sync: swept");
        self.report.lineup = crate::lineup::maintain(&mut self.tx.conn(), provider_id, &self.lineup).await?;
        tracing::debug!(provider = %self.provider_name, ms = started.elapsed().as_millis() as u64, "sync: lineup maintained");
        let duration_ms = started.elapsed().as_millis() as i64;
        let skipped = self.report.skipped as i64;
        let new_channels = on_tx!(&mut self.tx, |c| {
            let new_channels =
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM streams WHERE provider_id = $1 AND first_gen = $2")
                    .bind(provider_id)
                    .bind(gen)
                    .fetch_one(&mut *c)
                    .await?;
            let (live, vod, series): (i64, i64, i64) = sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM streams WHERE provider_id = $1), (SELECT COUNT(*) FROM movies WHERE provider_id = $1),
                        (SELECT COUNT(*) FROM series WHERE provider_id = $1)",
            )
            .bind(provider_id)
            .fetch_one(&mut *c)
            .await?;
            sqlx::query(
                "UPDATE providers SET last_sync_at = $1, last_sync_ok = TRUE, last_sync_ok_at = $1, last_sync_error = NULL,
                 last_sync_ms = $2, live_count = $3, vod_count = $4, series_count = $5, skipped_count = $6,
                 epg_url = COALESCE(epg_url, $7) WHERE id = $8",
            )
            .bind(now())
            .bind(duration_ms)
            .bind(live)
            .bind(vod)
            .bind(series)
            .bind(skipped)
            .bind(detected_epg)
            .bind(provider_id)
            .execute(&mut *c)
            .await?;
            new_channels
        });
        // Streams were written and lineup rows inserted in bulk: the
        // materialized listing's triggers do not see those.
        crate::outputs::mark_listing_stale(&mut self.tx.conn()).await?;
        self.report.new_channels = new_channels as u64;
        self.report.duration_ms = duration_ms as u64;
        self.tx.commit().await?;
        tracing::debug!(provider = %self.provider_name, gen = self.gen, ms = started.elapsed().as_millis() as u64, "sync: committed");
        Ok(self.report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_xtream_style_paths() {
        assert_eq!(MediaKind::from_url("http://h/live/u/p/1.ts"), MediaKind::Live);
        assert_eq!(MediaKind::from_url("http://h/movie/u/p/1.mkv"), MediaKind::Movie);
        assert_eq!(MediaKind::from_url("http://h/series/u/p/1.mp4?x=/movie/"), MediaKind::Series);
        assert_eq!(MediaKind::from_url("http://h/a.m3u8?next=/movie/"), MediaKind::Live);
    }

    #[test]
    fn extensions() {
        assert_eq!(extension("http://h/movie/u/p/1.MKV?t=1").as_deref(), Some("mkv"));
        assert_eq!(extension("http://h/movie/u/p/1"), None);
    }

    #[test]
    fn the_upserts_are_made_from_the_field_lists() {
        let streams = StreamRow::sql();
        let columns = "provider_id, upstream_key, upstream_id, name, group_id, tvg_id, tvg_name, logo, chno, url, \
                       catchup, catchup_days, catchup_source, headers, norm_name, position, first_gen, sync_gen";
        assert_eq!(streams.sqlite_insert, format!("INSERT INTO streams ({columns}) "));
        assert_eq!(
            streams.conflict,
            " ON CONFLICT (provider_id, upstream_key) DO UPDATE SET upstream_id = excluded.upstream_id, \
             name = excluded.name, group_id = excluded.group_id, tvg_id = excluded.tvg_id, tvg_name = excluded.tvg_name, \
             logo = excluded.logo, chno = excluded.chno, url = excluded.url, catchup = excluded.catchup, \
             catchup_days = excluded.catchup_days, catchup_source = excluded.catchup_source, headers = excluded.headers, \
             norm_name = excluded.norm_name, position = excluded.position, sync_gen = excluded.sync_gen"
        );
        assert_eq!(
            streams.postgres,
            format!(
                "INSERT INTO streams ({columns}) SELECT $1, u.*, $2, $2 FROM UNNEST($3::TEXT[], $4::INT8[], $5::TEXT[], \
                 $6::INT8[], $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::TEXT[], $11::TEXT[], $12::TEXT[], $13::INT8[], \
                 $14::TEXT[], $15::TEXT[], $16::TEXT[], $17::INT8[]) AS u{}",
                streams.conflict
            )
        );
        assert_eq!(streams.generations, 2);
        // Without first_gen: sync_gen alone ends a row.
        let movies = MovieRow::sql();
        assert!(movies.postgres.starts_with(
            "INSERT INTO movies (provider_id, upstream_key, upstream_id, name, group_id, logo, rating, \
             container_extension, url, added, position, sync_gen) SELECT $1, u.*, $2 FROM UNNEST($3::TEXT[], "
        ));
        assert!(movies.postgres.ends_with("$12::INT8[]) AS u ON CONFLICT (provider_id, upstream_key) DO UPDATE SET upstream_id = excluded.upstream_id, name = excluded.name, group_id = excluded.group_id, logo = excluded.logo, rating = excluded.rating, container_extension = excluded.container_extension, url = excluded.url, added = excluded.added, position = excluded.position, sync_gen = excluded.sync_gen"), "{}", movies.postgres);
        assert_eq!(movies.generations, 1);
        assert!(SeriesRow::sql().conflict.contains("release_date = excluded.release_date"));
    }

    #[test]
    fn repeated_keys_get_suffixes() {
        let mut seen = HashMap::new();
        let e = Entry { url: "http://x/a".into(), ..Default::default() };
        assert_eq!(m3u_key(&e, MediaKind::Live, &mut seen), "url:http://x/a");
        assert_eq!(m3u_key(&e, MediaKind::Live, &mut seen), "url:http://x/a#2");
        assert_eq!(m3u_key(&e, MediaKind::Movie, &mut seen), "url:http://x/a");
    }
}
