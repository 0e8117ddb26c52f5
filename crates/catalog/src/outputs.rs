//! What the client outputs (M3U, Xtream, HDHomeRun) read: what a user may
//! see, page by page.
//!
//! Live channels are the lineup's ([`crate::lineup`]); movies and series
//! stay per provider. Listings are keyset-paged (live channels on their
//! number, the rest on the row id: `after`, `limit`), so a
//! 200 000-entry output is read in bounded pages without holding a read
//! transaction (or every row) for the whole response. Only what clients are
//! shown is read: hidden channels and groups, channels without a playable
//! source and disabled providers' entries are left out, and a user's
//! allowed groups filter everything.

use serde::{Deserialize, Serialize};

use crate::db::{dialect, on_conn, on_db, on_tx, Conn, RowGet};
use crate::error::CatalogError;
use crate::model::{MediaKind, ProviderKind};
use crate::store::Store;

/// Clients see an Xtream episode as this plus its `episodes` row id (see the
/// `0002_users` migration), so that it never collides with an M3U episode.
pub const EPISODE_ID_BASE: i64 = 1_000_000_000;

/// Which entries a listing returns.
#[derive(Debug, Clone, Default)]
pub struct ItemFilter {
    /// The user's allowed groups; `None` = every group.
    pub allowed_groups: Option<Vec<i64>>,
    /// Only this group (an Xtream `category_id`).
    pub group: Option<i64>,
}

impl ItemFilter {
    fn groups_json(&self) -> Option<String> {
        self.allowed_groups.as_ref().map(|g| serde_json::to_string(g).unwrap_or_else(|_| "[]".into()))
    }
}

/// A live channel (a lineup channel) as the outputs list it; the
/// provider fields are those of its first playable source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveItem {
    pub id: i64,
    /// The lineup number (listings are in this order).
    pub number: i64,
    pub name: String,
    pub group_id: Option<i64>,
    pub group_name: Option<String>,
    pub tvg_id: Option<String>,
    pub tvg_name: Option<String>,
    pub logo: Option<String>,
    pub chno: Option<String>,
    /// Catch-up mode as the provider announced it (`xc` for Xtream archives).
    pub catchup: Option<String>,
    pub catchup_days: Option<i64>,
    pub provider_id: i64,
    pub provider_kind: ProviderKind,
    pub upstream_id: Option<i64>,
    /// The stream of the source the channel plays first (its measured
    /// format is what a tuner's lineup announces).
    pub stream_id: i64,
}

/// A movie as the outputs list it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MovieItem {
    pub id: i64,
    pub name: String,
    pub group_id: Option<i64>,
    pub group_name: Option<String>,
    pub logo: Option<String>,
    pub rating: Option<String>,
    pub container_extension: Option<String>,
    pub added: Option<i64>,
    pub provider_id: i64,
    pub provider_kind: ProviderKind,
    pub upstream_id: Option<i64>,
}

/// A series (Xtream: a show; M3U: one episode entry) as the outputs list it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesItem {
    pub id: i64,
    pub name: String,
    pub group_id: Option<i64>,
    pub group_name: Option<String>,
    pub cover: Option<String>,
    pub plot: Option<String>,
    pub genre: Option<String>,
    pub release_date: Option<String>,
    pub rating: Option<String>,
    /// M3U: the entry's own URL (it is an episode); Xtream: none.
    #[serde(deserialize_with = "bool_from_int")]
    pub has_url: bool,
    pub provider_id: i64,
    pub provider_kind: ProviderKind,
    pub upstream_id: Option<i64>,
}

/// A group (an Xtream category) as the outputs list it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupItem {
    pub id: i64,
    pub name: String,
}

/// An episode learned from a provider's series info, to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEpisode {
    pub upstream_id: i64,
    pub name: String,
    pub container_extension: Option<String>,
}

/// Lineup channels clients see: not hidden, not in a hidden group, with a
/// source at an enabled provider (the first such source gives the provider
/// fields); $2 allowed groups (a JSON array: `{GROUPS}`, [`with_groups`]),
/// $3 one group.
const LIVE_SELECT: &str = concat!(
    "SELECT c.id, c.number, c.name, c.group_id, g.name AS group_name, ",
    crate::lineup::guide_id_sql!(),
    " AS tvg_id, s.tvg_name, COALESCE(c.logo, s.logo) AS logo,
        CAST(c.number AS TEXT) AS chno, s.catchup, s.catchup_days, s.provider_id, p.kind AS provider_kind, s.upstream_id,
        s.id AS stream_id
    FROM lineup_channels c LEFT JOIN lineup_groups g ON g.id = c.group_id
    JOIN streams s ON s.id = (SELECT ls.stream_id FROM lineup_sources ls JOIN providers lp ON lp.id = ls.provider_id
                              WHERE ls.channel_id = c.id AND ls.stream_id IS NOT NULL AND lp.enabled
                              ORDER BY ls.position, ls.id LIMIT 1)
    JOIN providers p ON p.id = s.provider_id
    WHERE NOT c.hidden AND NOT COALESCE(g.hidden, FALSE)
      AND ($2 IS NULL OR c.group_id IN ({GROUPS}))
      AND ($3 IS NULL OR c.group_id = $3)"
);

const MOVIE_SELECT: &str = "SELECT m.id, m.name, m.group_id, g.name AS group_name, m.logo, m.rating,
        m.container_extension, m.added, m.provider_id, p.kind AS provider_kind, m.upstream_id
    FROM movies m JOIN providers p ON p.id = m.provider_id LEFT JOIN groups g ON g.id = m.group_id
    WHERE p.enabled
      AND ($2 IS NULL OR m.group_id IN ({GROUPS}))
      AND ($3 IS NULL OR m.group_id = $3)";

const SERIES_SELECT: &str = "SELECT s.id, s.name, s.group_id, g.name AS group_name, s.cover, s.plot, s.genre,
        s.release_date, s.rating, CASE WHEN s.url IS NULL THEN 0 ELSE 1 END AS has_url, s.provider_id, p.kind AS provider_kind, s.upstream_id
    FROM series s JOIN providers p ON p.id = s.provider_id LEFT JOIN groups g ON g.id = s.group_id
    WHERE p.enabled
      AND ($2 IS NULL OR s.group_id IN ({GROUPS}))
      AND ($3 IS NULL OR s.group_id = $3)";

/// The ids in the JSON array bound as $2 (the user's allowed groups), as a
/// set to test `IN`: the one place the listings' dialects differ.
fn with_groups(postgres: bool, sql: &str) -> String {
    sql.replace(
        "{GROUPS}",
        if postgres {
            "SELECT jsonb_array_elements_text($2::jsonb)::bigint"
        } else {
            "SELECT value FROM json_each($2)"
        },
    )
}

/// Each listing: its select, its columns, the key it pages on.
const LIVE: (&str, &str, &str) = (LIVE_SELECT, LIVE_COLUMNS, "c.number");
const MOVIES: (&str, &str, &str) = (MOVIE_SELECT, MOVIE_COLUMNS, "m.id");
const SERIES: (&str, &str, &str) = (SERIES_SELECT, SERIES_COLUMNS, "s.id");

/// The columns of each select, in the order of its item's fields: rows
/// come out of the database as JSON arrays and are decoded field by field into
/// the item (`field_order` below holds the two to the same order).
const LIVE_COLUMNS: &str =
    "id, number, name, group_id, group_name, tvg_id, tvg_name, logo, chno, catchup, catchup_days, provider_id, provider_kind, upstream_id, \
    stream_id";
const MOVIE_COLUMNS: &str =
    "id, name, group_id, group_name, logo, rating, container_extension, added, provider_id, provider_kind, upstream_id";
const SERIES_COLUMNS: &str = "id, name, group_id, group_name, cover, plot, genre, release_date, rating, has_url, \
    provider_id, provider_kind, upstream_id";

/// A flag comes as 0 or 1 (SQLite's JSON has no booleans; the select
/// writes it as an integer on both backends).
fn bool_from_int<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(i64::deserialize(d)? != 0)
}

impl Store {
    /// Rows of `select` restricted by `cond` (on $1) and limited to $4, as
    /// one JSON array of arrays built by the database, decoded here: a row
    /// crossing sqlx costs several allocations and a thread hand-off, which
    /// for 200 000 rows dominated the whole response. The order is the
    /// caller's to restore (an aggregate keeps its input's order in
    /// practice, not by promise).
    async fn rows<T: serde::de::DeserializeOwned>(
        &self,
        (select, columns, cond): (&str, &str, &str),
        key: i64,
        f: &ItemFilter,
        limit: u32,
    ) -> Result<Vec<T>, CatalogError> {
        let json: String = on_db!(self.db(), |p| {
            let postgres = dialect!(sqlite: false, postgres: true);
            let aggregate = dialect!(
                sqlite: format!("json_group_array(json_array({columns}))"),
                postgres: format!("COALESCE(json_agg(json_build_array({columns})), '[]')::text"),
            );
            let sql = with_groups(postgres, &format!("SELECT {aggregate} FROM ({select} AND {cond} LIMIT $4) AS rows"));
            sqlx::query_scalar(&sql)
                .bind(key)
                .bind(f.groups_json())
                .bind(f.group)
                .bind(limit as i64)
                .fetch_one(p)
                .await?
        });
        serde_json::from_str(&json).map_err(|e| CatalogError::Internal(format!("listing rows: {e}")))
    }

    /// One page of a listing: up to `limit` rows with `id` above `after`, by `id`.
    async fn page<T: serde::de::DeserializeOwned>(
        &self,
        (select, columns, id): (&str, &str, &str),
        f: &ItemFilter,
        after: i64,
        limit: u32,
    ) -> Result<Vec<T>, CatalogError> {
        self.rows((select, columns, &format!("{id} > $1 ORDER BY {id}")), after, f, limit).await
    }

    /// The row of `select` whose `id` is `key`, if the filter lets it through.
    async fn one<T: serde::de::DeserializeOwned>(
        &self,
        (select, columns, id): (&str, &str, &str),
        f: &ItemFilter,
        key: i64,
    ) -> Result<Option<T>, CatalogError> {
        Ok(self.rows((select, columns, &format!("{id} = $1")), key, f, 1).await?.pop())
    }

    /// Up to `limit` live channels with numbers above `after`, by number.
    pub async fn live_items(&self, f: &ItemFilter, after: i64, limit: u32) -> Result<Vec<LiveItem>, CatalogError> {
        let mut items: Vec<LiveItem> = self.page(LIVE, f, after, limit).await?;
        // json_group_array keeps the subquery's order in practice; make sure.
        items.sort_unstable_by_key(|i| i.number);
        Ok(items)
    }

    /// Up to `limit` movies with ids above `after`, by id.
    pub async fn movie_items(&self, f: &ItemFilter, after: i64, limit: u32) -> Result<Vec<MovieItem>, CatalogError> {
        let mut items: Vec<MovieItem> = self.page(MOVIES, f, after, limit).await?;
        items.sort_unstable_by_key(|i| i.id);
        Ok(items)
    }

    /// Up to `limit` series with ids above `after`, by id.
    pub async fn series_items(&self, f: &ItemFilter, after: i64, limit: u32) -> Result<Vec<SeriesItem>, CatalogError> {
        let mut items: Vec<SeriesItem> = self.page(SERIES, f, after, limit).await?;
        items.sort_unstable_by_key(|i| i.id);
        Ok(items)
    }

    /// One live channel the filter lets through (hidden, unavailable or
    /// filtered out: `None`).
    pub async fn live_item(&self, f: &ItemFilter, id: i64) -> Result<Option<LiveItem>, CatalogError> {
        self.one((LIVE_SELECT, LIVE_COLUMNS, "c.id"), f, id).await
    }

    /// One movie the filter lets through.
    pub async fn movie_item(&self, f: &ItemFilter, id: i64) -> Result<Option<MovieItem>, CatalogError> {
        self.one(MOVIES, f, id).await
    }

    /// One series the filter lets through.
    pub async fn series_item(&self, f: &ItemFilter, id: i64) -> Result<Option<SeriesItem>, CatalogError> {
        self.one(SERIES, f, id).await
    }

    /// Whether the filter lets a client play this item: a live channel, a
    /// movie, or an episode (an M3U series entry or a stored Xtream episode).
    pub async fn item_visible(&self, f: &ItemFilter, kind: MediaKind, id: i64) -> Result<bool, CatalogError> {
        Ok(match kind {
            MediaKind::Live => self.live_item(f, id).await?.is_some(),
            MediaKind::Movie => self.movie_item(f, id).await?.is_some(),
            MediaKind::Series if id > EPISODE_ID_BASE => {
                let series: Option<i64> =
                    on_db!(self.db(), |p| sqlx::query_scalar("SELECT series_id FROM episodes WHERE id = $1")
                        .bind(id - EPISODE_ID_BASE)
                        .fetch_optional(p)
                        .await?);
                match series {
                    Some(s) => self.series_item(f, s).await?.is_some(),
                    None => false,
                }
            }
            MediaKind::Series => self.series_item(f, id).await?.is_some_and(|s| s.has_url),
        })
    }

    /// [`Store::item_visible`] through a short-lived cache, for the check
    /// every client stream request makes (`cache.rs`). Only "visible" is
    /// cached, per (allowed groups, group, kind, id): the key is the filter
    /// itself, so a user whose groups change misses at once.
    ///
    /// Catalog and lineup changes do not clear it: visibility rests on many
    /// tables (channels hidden or regrouped, groups hidden, providers
    /// disabled, syncs) written from many places, too many to clear it
    /// from each without missing one; an answer is trusted for at most
    /// [`READ_CACHE_TTL`](crate::cache::READ_CACHE_TTL) instead, so a
    /// channel just hidden can still be started for 2 s. This is not the
    /// login's boundary (who may use the outputs at all is checked per
    /// request against a user cache that every write to users clears): it
    /// decides which of the catalog's items a logged-in user is offered.
    /// Refusals are not cached, so an item made visible plays at once.
    pub async fn item_visible_cached(&self, f: &ItemFilter, kind: MediaKind, id: i64) -> Result<bool, CatalogError> {
        let key = (f.allowed_groups.clone(), f.group, kind, id);
        let load = || async move {
            Ok::<_, CatalogError>(self.for_stream_reads().item_visible(f, kind, id).await?.then_some(()))
        };
        Ok(self.caches().visible.get_or_load(&key, load).await?.is_some())
    }

    /// The groups of one kind the filter lets through: for live channels the
    /// lineup's visible groups in their order, else the providers' groups in
    /// provider order.
    pub async fn group_items(&self, kind: MediaKind, f: &ItemFilter) -> Result<Vec<GroupItem>, CatalogError> {
        let sql = if kind == MediaKind::Live {
            "SELECT g.id, g.name FROM lineup_groups g
             WHERE NOT g.hidden AND $1 = 'live' AND ($2 IS NULL OR g.id IN ({GROUPS}))
             ORDER BY g.position, g.id"
        } else {
            "SELECT g.id, g.name FROM groups g JOIN providers p ON p.id = g.provider_id
             WHERE g.kind = $1 AND p.enabled AND ($2 IS NULL OR g.id IN ({GROUPS}))
             ORDER BY p.priority, p.id, g.position, g.id"
        };
        let groups = on_db!(self.db(), |p| {
            let sql = with_groups(dialect!(sqlite: false, postgres: true), sql);
            let rows = sqlx::query(&sql).bind(kind.as_str()).bind(f.groups_json()).fetch_all(p).await?;
            rows.iter()
                .map(|r| Ok(GroupItem { id: r.col("id")?, name: r.col("name")? }))
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        Ok(groups)
    }

    /// Stores (or refreshes) a series' episodes as a provider listed them and
    /// returns the ids clients see for them, in the same order.
    pub async fn upsert_episodes(&self, series_id: i64, episodes: &[NewEpisode]) -> Result<Vec<i64>, CatalogError> {
        let mut tx = self.write_tx().await?;
        let mut ids = Vec::with_capacity(episodes.len());
        for e in episodes {
            let id: i64 = on_tx!(&mut tx, |c| sqlx::query_scalar(
                "INSERT INTO episodes (series_id, upstream_id, name, container_extension) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (series_id, upstream_id) DO UPDATE
                 SET name = excluded.name, container_extension = excluded.container_extension
                 RETURNING id",
            )
            .bind(series_id)
            .bind(e.upstream_id)
            .bind(&e.name)
            .bind(e.container_extension.as_deref().map(str::to_ascii_lowercase))
            .fetch_one(&mut *c)
            .await?);
            ids.push(EPISODE_ID_BASE + id);
        }
        tx.commit().await?;
        Ok(ids)
    }
}

/// Moves the materialized live listing's version on, so that it is stale
/// (`0011_live_listing.sql`): called inside the transaction of each write
/// that inserts lineup rows or writes streams or guide channels in bulk,
/// which the migration's per-row triggers leave out (on PostgreSQL,
/// `migrations_pg/0002_live_listing.sql`: the same writes, though its
/// triggers are per statement). Once stale, further calls change nothing
/// (a no-op update, which on PostgreSQL takes no row lock either).
pub(crate) async fn mark_listing_stale(conn: &mut Conn<'_>) -> Result<(), sqlx::Error> {
    on_conn!(conn, |c| sqlx::query(
        "UPDATE live_listing_state SET version = version + 1 WHERE id = 1 AND version = built"
    )
    .execute(&mut *c)
    .await
    .map(|_| ()))
}

/// One channel's entries as the materialized live listing keeps them.
/// The catalog stores them without knowing the formats: the outputs write
/// them ([`LiveRenderer`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderedLive {
    /// The M3U lines before the URL for `type=m3u`, line break included.
    pub m3u: String,
    /// The same for `type=m3u_plus`.
    pub m3u_plus: String,
    /// The Xtream `get_live_streams` JSON object.
    pub xtream: String,
}

/// Writes a live channel's user-independent entries for the materialized
/// listing. It exists so that the catalog can keep rendered entries while
/// the formats stay the outputs' own: they implement it with the same code
/// that writes a listing from the lineup's query, so both give the same bytes.
pub trait LiveRenderer: Send + Sync {
    /// Fills `out` (cleared by the caller) with `item`'s entries.
    fn render(&self, item: &LiveItem, out: &mut RenderedLive);
}

/// Which of the materialized listing's entries a page is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveFormat {
    /// `get.php?type=m3u`: each entry followed by its URL line.
    M3u,
    /// `get.php?type=m3u_plus`: each entry followed by its URL line.
    M3uPlus,
    /// `get_live_streams`: the JSON objects, each preceded by a comma.
    Xtream,
}

/// One page of the materialized live listing, joined by the database into
/// one text: the rows cross from it as one value, not one per row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LivePage {
    /// Rows in the page (fewer than asked: the listing's end).
    pub rows: u32,
    /// The last row's lineup number (the key of the next page).
    pub last: i64,
    /// The entries: M3U entries each with its URL line, or JSON objects
    /// each preceded by a comma (no brackets; the listing's first comma is
    /// the reader's to drop, which it can without copying the page).
    pub text: String,
}

/// Rows rendered per INSERT while rebuilding (5 values each).
const REBUILD_ROWS: usize = 1000;

impl Store {
    /// Whether the materialized live listing reflects every write so far
    /// (else listings take the lineup's query and it wants a rebuild).
    pub async fn live_listing_fresh(&self) -> Result<bool, CatalogError> {
        let fresh: bool =
            on_db!(self.db(), |p| sqlx::query_scalar("SELECT version = built FROM live_listing_state WHERE id = 1")
                .fetch_one(p)
                .await?);
        Ok(fresh)
    }

    /// Rebuilds the materialized live listing if it is stale, in one write
    /// transaction: the lineup's listing read page by page (what clients
    /// may see), each channel rendered by `renderer` and inserted. Holds the
    /// write lock while it runs (~1 s for 200 000 channels), so writes made
    /// meanwhile wait and cannot be missed. One runs at a time: a call made
    /// while another runs waits for it, then rebuilds only if a write came
    /// after it began (so no write is left without a rebuild). Returns
    /// whether it rebuilt (`false`: it was fresh).
    pub async fn rebuild_live_listing(&self, renderer: &dyn LiveRenderer) -> Result<bool, CatalogError> {
        let _one = self.listing_build.lock().await;
        if self.live_listing_fresh().await? {
            return Ok(false);
        }
        let mut tx = self.write_tx().await?;
        let rebuilt = on_tx!(&mut tx, |c| {
            // SQLite: the transaction holds the write lock already. PostgreSQL:
            // the state row's lock stands for it. A write that marks the
            // listing stale meanwhile waits for the rebuild's commit and then
            // finds it fresh, so it marks it stale again: nothing is missed.
            // Another instance's rebuild may have run since the check above.
            let (version, built): (i64, i64) = sqlx::query_as(dialect!(
                sqlite: "SELECT version, built FROM live_listing_state WHERE id = 1",
                postgres: "SELECT version, built FROM live_listing_state WHERE id = 1 FOR UPDATE",
            ))
            .fetch_one(&mut *c)
            .await?;
            if version == built {
                false
            } else {
                sqlx::query("DELETE FROM live_listing").execute(&mut *c).await?;
                sqlx::query("DELETE FROM live_listing_xtream").execute(&mut *c).await?;
                let aggregate = dialect!(
                    sqlite: format!("json_group_array(json_array({LIVE_COLUMNS}))"),
                    postgres: format!("COALESCE(json_agg(json_build_array({LIVE_COLUMNS})), '[]')::text"),
                );
                let sql = with_groups(
                    dialect!(sqlite: false, postgres: true),
                    &format!(
                        "SELECT {aggregate} FROM ({LIVE_SELECT} AND c.number > $1 ORDER BY c.number LIMIT $4) AS rows"
                    ),
                );
                let mut after = 0i64;
                let mut rendered: Vec<RenderedLive> = Vec::new();
                loop {
                    let json: String = sqlx::query_scalar(&sql)
                        .bind(after)
                        .bind(None::<String>)
                        .bind(None::<i64>)
                        .bind(REBUILD_ROWS as i64)
                        .fetch_one(&mut *c)
                        .await?;
                    let mut items: Vec<LiveItem> = serde_json::from_str(&json)
                        .map_err(|e| CatalogError::Internal(format!("listing rows: {e}")))?;
                    items.sort_unstable_by_key(|i| i.number);
                    let Some(last) = items.last() else { break };
                    after = last.number;
                    rendered.resize_with(items.len(), RenderedLive::default);
                    for (item, out) in items.iter().zip(rendered.iter_mut()) {
                        out.m3u.clear();
                        out.m3u_plus.clear();
                        out.xtream.clear();
                        renderer.render(item, out);
                    }
                    let mut qb = sqlx::QueryBuilder::<Backend>::new(
                        "INSERT INTO live_listing (number, channel_id, group_id, m3u, m3u_plus) ",
                    );
                    qb.push_values(items.iter().zip(&rendered), |mut b, (item, r)| {
                        b.push_bind(item.number)
                            .push_bind(item.id)
                            .push_bind(item.group_id)
                            .push_bind(r.m3u.as_str())
                            .push_bind(r.m3u_plus.as_str());
                    });
                    qb.build().execute(&mut *c).await?;
                    let mut qb = sqlx::QueryBuilder::<Backend>::new(
                        "INSERT INTO live_listing_xtream (number, group_id, xtream) ",
                    );
                    qb.push_values(items.iter().zip(&rendered), |mut b, (item, r)| {
                        b.push_bind(item.number).push_bind(item.group_id).push_bind(r.xtream.as_str());
                    });
                    qb.build().execute(&mut *c).await?;
                    if items.len() < REBUILD_ROWS {
                        break;
                    }
                }
                sqlx::query("UPDATE live_listing_state SET built = $1 WHERE id = 1")
                    .bind(version)
                    .execute(&mut *c)
                    .await?;
                true
            }
        });
        if rebuilt {
            tx.commit().await?;
        }
        Ok(rebuilt)
    }

    /// Up to `limit` entries of the materialized live listing with numbers
    /// above `after`, in number order, that the filter lets through, joined
    /// into one text. For the M3U formats each entry is followed by its URL
    /// line, `{url_prefix}{channel id}{url_suffix}` (the prefix carries the
    /// user's credentials: it is never stored). Read it only while
    /// [`Store::live_listing_fresh`]; it is as of its last rebuild.
    pub async fn live_listing_page(
        &self,
        f: &ItemFilter,
        format: LiveFormat,
        (url_prefix, url_suffix): (&str, &str),
        after: i64,
        limit: u32,
    ) -> Result<LivePage, CatalogError> {
        // The entries are joined in the order the subquery gives them, which
        // is its ORDER BY in practice (an aggregate ordered by its own ORDER BY
        // would sort every page again: a third of the query). SQLite does not
        // promise it, so the numbers come joined in the same order and are
        // checked; a page out of order is read again, sorted.
        let mut page = self.live_listing_read(f, format, (url_prefix, url_suffix), after, limit, false).await?;
        if !page.0.split(',').filter(|n| !n.is_empty()).map(|n| n.parse::<i64>().unwrap_or(i64::MAX)).is_sorted() {
            page = self.live_listing_read(f, format, (url_prefix, url_suffix), after, limit, true).await?;
        }
        let (_, rows, last, text) = page;
        Ok(LivePage { rows: rows as u32, last, text })
    }

    /// [`Store::live_listing_page`]'s query: the page's numbers joined, its
    /// row count, its last number and its text.
    async fn live_listing_read(
        &self,
        f: &ItemFilter,
        format: LiveFormat,
        (url_prefix, url_suffix): (&str, &str),
        after: i64,
        limit: u32,
        ordered: bool,
    ) -> Result<(String, i64, i64, String), CatalogError> {
        let (columns, table) = match format {
            LiveFormat::M3u => ("channel_id, m3u", "live_listing"),
            LiveFormat::M3uPlus => ("channel_id, m3u_plus", "live_listing"),
            LiveFormat::Xtream => ("xtream", "live_listing_xtream"),
        };
        let entry = match format {
            LiveFormat::M3u => "m3u || $5 || channel_id || $6",
            LiveFormat::M3uPlus => "m3u_plus || $5 || channel_id || $6",
            LiveFormat::Xtream => "',' || xtream",
        };
        Ok(on_db!(self.db(), |p| {
            // PostgreSQL's string_agg is always ordered: its order costs
            // little there, and it makes no promise either.
            let (concat, number, order) = dialect!(
                sqlite: ("group_concat", "number", if ordered { " ORDER BY number" } else { "" }),
                postgres: ("string_agg", "number::text", " ORDER BY number"),
            );
            let sql = with_groups(
                dialect!(sqlite: false, postgres: true),
                &format!(
                    "SELECT COALESCE({concat}({number}, ','{order}), ''), COUNT(*), COALESCE(MAX(number), 0),
                            COALESCE({concat}({entry}, ''{order}), '') FROM (
                        SELECT number, {columns} FROM {table}
                        WHERE number > $1
                          AND ($2 IS NULL OR group_id IN ({{GROUPS}}))
                          AND ($3 IS NULL OR group_id = $3)
                        ORDER BY number LIMIT $4) AS page"
                ),
            );
            let query = sqlx::query_as(&sql).bind(after).bind(f.groups_json()).bind(f.group).bind(limit as i64);
            let query = match format {
                LiveFormat::M3u | LiveFormat::M3uPlus => query.bind(url_prefix).bind(url_suffix),
                LiveFormat::Xtream => query,
            };
            query.fetch_one(p).await?
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::{self, Visitor};

    /// The field names of a struct's derived `Deserialize`, in order: what
    /// it asks a deserializer for.
    fn field_names<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
        struct Fields<'a>(&'a mut &'static [&'static str]);
        impl<'de> de::Deserializer<'de> for Fields<'_> {
            type Error = de::value::Error;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
                Err(de::Error::custom("not a struct"))
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                *self.0 = fields;
                Err(de::Error::custom("fields captured"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
                unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
            }
        }
        let mut fields: &'static [&'static str] = &[];
        let _ = T::deserialize(Fields(&mut fields));
        fields
    }

    #[test]
    fn each_listing_selects_its_columns_in_the_order_of_its_fields() {
        let columns = |c: &str| c.split(',').map(str::trim).map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(columns(LIVE_COLUMNS), field_names::<LiveItem>());
        assert_eq!(columns(MOVIE_COLUMNS), field_names::<MovieItem>());
        assert_eq!(columns(SERIES_COLUMNS), field_names::<SeriesItem>());
    }

    #[test]
    fn a_row_decodes_from_sqlites_json_array() {
        let row = r#"[7, 101, "One", 3, "News", "one.uk", null, null, "101", "xc", 7, 2, "xtream", 55, 12]"#;
        let item: LiveItem = serde_json::from_str(row).unwrap();
        assert_eq!(
            (item.id, item.number, item.provider_kind, item.upstream_id, item.stream_id),
            (7, 101, ProviderKind::Xtream, Some(55), 12)
        );
        let row = r#"[9, "S", null, null, null, null, null, null, null, 1, 2, "m3u", null]"#;
        assert!(serde_json::from_str::<SeriesItem>(row).unwrap().has_url);
    }
}
