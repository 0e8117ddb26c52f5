//! Provider guides (XMLTV): where each provider's guide comes from, where it
//! is kept, what its last fetch did, and which guide channels belong to
//! which of our channels.
//!
//! A guide is a file, `{data_dir}/epg/provider-{id}.xml` (plain XML, replaced
//! atomically by each successful fetch, see `tunerpool_upstream::epg`); only
//! the outcome of the last fetch is in the database (`epg_status`). The
//! guide comes from the provider's `epg_url` if it has one (set by the
//! operator, or detected from an M3U playlist's `x-tvg-url` by the catalog
//! sync), else, for an Xtream provider, from the panel's `xmltv.php` with the
//! primary account's credentials.
//!
//! After each successful fetch the guide's channels (id and first display
//! name) are indexed in `guide_channels`: the guide feeds a lineup channel
//! whose sources have no tvg-id by its normalized name, and the admin can
//! search them to set a channel's guide id.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use tunerpool_upstream::epg::{download_guide, GuideSummary};
use tunerpool_upstream::xtream::XtreamClient;
use tunerpool_upstream::{UpstreamError, UpstreamHttp};

use crate::db::{dialect, on_db, on_tx, RowGet};
use crate::error::CatalogError;
use crate::model::{Provider, ProviderKind};
use crate::store::{now, Store};

/// The guides' directory inside the data dir.
pub const EPG_DIR: &str = "epg";

/// Where provider `provider_id`'s guide is kept.
pub fn guide_path(data_dir: &Path, provider_id: i64) -> PathBuf {
    data_dir.join(EPG_DIR).join(format!("provider-{provider_id}.xml"))
}

/// The provider id of a guide file name (`provider-12.xml` → 12).
pub fn provider_of_guide_file(name: &str) -> Option<i64> {
    name.strip_prefix("provider-")?.strip_suffix(".xml")?.parse().ok()
}

/// What the last guide fetch of a provider did; shown in logs and the API
/// so that an operator can see why a channel has no programmes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EpgStatus {
    pub provider_id: i64,
    /// Last attempt (Unix seconds); `None`: never tried.
    pub fetched_at: Option<i64>,
    pub ok: Option<bool>,
    /// Why the last attempt failed (credentials redacted).
    #[serde(serialize_with = "tunerpool_domain::fields::serialize_redacted_opt_text")]
    pub error: Option<String>,
    /// Last success.
    pub ok_at: Option<i64>,
    pub channels: Option<i64>,
    pub programmes: Option<i64>,
    pub bytes: Option<i64>,
    pub duration_ms: Option<i64>,
}

/// What one successful guide fetch stored.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct GuideReport {
    pub provider_id: i64,
    pub provider: String,
    pub channels: u64,
    pub programmes: u64,
    pub skipped: u64,
    pub bytes: u64,
    pub gzip: bool,
    pub duration_ms: u64,
}

/// Where a provider's guide is fetched from.
enum GuideSource {
    /// The panel's `xmltv.php` for the primary account.
    Xtream(XtreamClient),
    /// A guide URL, with the secrets to mask in errors.
    Url { url: String, secrets: Vec<String> },
}

/// Where `provider`'s guide comes from, or `None` if it has none (an M3U
/// provider without `epg_url` and without `x-tvg-url` in its playlist).
async fn guide_source(
    store: &Store,
    http: &UpstreamHttp,
    provider: &Provider,
) -> Result<Option<GuideSource>, CatalogError> {
    let primary = store.primary_account(provider.id).await?;
    if let Some(url) = provider.epg_url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        let secrets = primary.iter().map(|a| a.password.expose().to_string()).filter(|p| !p.is_empty()).collect();
        return Ok(Some(GuideSource::Url { url: url.to_string(), secrets }));
    }
    if provider.kind != ProviderKind::Xtream {
        return Ok(None);
    }
    let Some(account) = primary else { return Ok(None) };
    let client = XtreamClient::new(
        http.clone(),
        account.server_url.as_deref().unwrap_or(&provider.url),
        account.username.as_deref().unwrap_or_default(),
        account.password.expose(),
    )
    .map_err(|source| CatalogError::Guide { provider: provider.name.clone(), source })?;
    Ok(Some(GuideSource::Xtream(client)))
}

/// `true` if `provider` has somewhere to fetch a guide from.
pub async fn has_guide_source(store: &Store, http: &UpstreamHttp, provider: &Provider) -> Result<bool, CatalogError> {
    Ok(guide_source(store, http, provider).await?.is_some())
}

/// Fetches `provider_id`'s guide into its file and records the outcome.
/// `Ok(None)` when the provider has no guide source. On failure the
/// previous guide file stays as it was, and the error is recorded and
/// returned.
pub async fn refresh_guide(
    store: &Store,
    http: &UpstreamHttp,
    provider_id: i64,
) -> Result<Option<GuideReport>, CatalogError> {
    let provider = store.provider(provider_id).await?;
    let Some(source) = guide_source(store, http, &provider).await? else { return Ok(None) };
    let dest = guide_path(store.data_dir(), provider.id);
    let started = Instant::now();
    let result: Result<GuideSummary, UpstreamError> = match &source {
        GuideSource::Xtream(client) => client.download_guide(&dest).await,
        GuideSource::Url { url, secrets } => {
            let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
            download_guide(http, url, &secrets, &dest).await
        }
    };
    let ms = started.elapsed().as_millis() as i64;
    match result {
        Ok(s) => {
            on_db!(store.db(), |p| {
                sqlx::query(
                "INSERT INTO epg_status (provider_id, fetched_at, ok, error, ok_at, channels, programmes, bytes, duration_ms)
                 VALUES ($1, $2, TRUE, NULL, $2, $3, $4, $5, $6)
                 ON CONFLICT (provider_id) DO UPDATE SET fetched_at = excluded.fetched_at, ok = TRUE, error = NULL,
                 ok_at = excluded.ok_at, channels = excluded.channels, programmes = excluded.programmes,
                 bytes = excluded.bytes, duration_ms = excluded.duration_ms",
            )
            .bind(provider.id)
            .bind(now())
            .bind(s.channels as i64)
            .bind(s.programmes as i64)
            .bind(s.bytes as i64)
            .bind(ms)
            .execute(p)
            .await.map(|r| r.rows_affected())
            })?;
            let indexed = index_guide_channels(store, provider.id, dest.clone()).await?;
            tracing::info!(
                provider = %provider.name, channels = s.channels, indexed, programmes = s.programmes, skipped = s.skipped,
                bytes = s.bytes, gzip = s.gzip, ms, "guide fetched"
            );
            Ok(Some(GuideReport {
                provider_id: provider.id,
                provider: provider.name,
                channels: s.channels,
                programmes: s.programmes,
                skipped: s.skipped,
                bytes: s.bytes,
                gzip: s.gzip,
                duration_ms: ms as u64,
            }))
        }
        Err(source) => {
            let e = CatalogError::Guide { provider: provider.name.clone(), source };
            let msg = e.to_string();
            tracing::warn!(provider = %provider.name, error = %msg, ms, "guide fetch failed; previous guide kept");
            on_db!(store.db(), |p| {
                sqlx::query(
                "INSERT INTO epg_status (provider_id, fetched_at, ok, error, duration_ms) VALUES ($1, $2, FALSE, $3, $4)
                 ON CONFLICT (provider_id) DO UPDATE SET fetched_at = excluded.fetched_at, ok = FALSE, error = excluded.error,
                 duration_ms = excluded.duration_ms",
            )
            .bind(provider.id)
            .bind(now())
            .bind(&msg)
            .bind(ms)
            .execute(p)
            .await.map(|r| r.rows_affected())
            })?;
            Err(e)
        }
    }
}

/// Most guide channels indexed per provider.
const MAX_GUIDE_CHANNELS: usize = 200_000;

/// Reads the channels of a stored guide (element by element, programmes
/// skipped unread) into `guide_channels`, replacing the provider's previous
/// ones. Returns how many.
async fn index_guide_channels(store: &Store, provider_id: i64, path: PathBuf) -> Result<u64, CatalogError> {
    use tunerpool_formats::xmltv::{ElementKind, GuideReader};
    let channels = tokio::task::spawn_blocking(move || {
        let mut out: Vec<(String, String, String)> = Vec::new();
        let Ok(file) = std::fs::File::open(&path) else { return out };
        let Ok(mut reader) = GuideReader::new(std::io::BufReader::with_capacity(64 * 1024, file)) else { return out };
        while let Ok(Some(e)) = reader.next_element_where(|s| s.kind == ElementKind::Channel) {
            if let Some(c) = e.to_channel() {
                let name = c.display_names.first().map(|t| t.value.trim().to_string()).unwrap_or_default();
                let norm = crate::lineup::normalize_name(&name);
                out.push((c.id, name, norm));
            }
            if out.len() >= MAX_GUIDE_CHANNELS {
                break;
            }
        }
        out
    })
    .await
    .map_err(|e| CatalogError::Internal(format!("guide channels: {e}")))?;
    let mut tx = store.write_tx().await?;
    on_tx!(&mut tx, |c| {
        sqlx::query("DELETE FROM guide_channels WHERE provider_id = $1").bind(provider_id).execute(&mut *c).await?;
        for chunk in channels.chunks(2000) {
            let mut qb =
                sqlx::QueryBuilder::<Backend>::new("INSERT INTO guide_channels (provider_id, id, name, norm_name) ");
            qb.push_values(chunk, |mut b, (id, name, norm)| {
                b.push_bind(provider_id).push_bind(id).push_bind(name).push_bind(norm);
            });
            // A guide listing a channel id twice: the first is kept.
            qb.push(" ON CONFLICT DO NOTHING");
            qb.build().execute(&mut *c).await?;
        }
    });
    // Guide ids of lineup channels come from these (by name).
    crate::outputs::mark_listing_stale(&mut tx.conn()).await?;
    tx.commit().await?;
    Ok(channels.len() as u64)
}

/// A channel of a provider's guide, for choosing a lineup channel's guide id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct GuideChannel {
    pub provider_id: i64,
    pub provider: String,
    /// The id to set as a lineup channel's `tvg_id`.
    pub id: String,
    pub name: String,
}

/// Guide channels whose name or id contains `q` (any case), at most `limit`,
/// by name.
pub async fn search_guide_channels(store: &Store, q: &str, limit: u32) -> Result<Vec<GuideChannel>, CatalogError> {
    let pattern = format!("%{}%", q.trim().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
    // LIKE ignores ASCII case in SQLite; PostgreSQL's ILIKE ignores case.
    Ok(on_db!(store.db(), |p| sqlx::query_as(&format!(
        "SELECT gc.provider_id, p.name AS provider, gc.id, gc.name FROM guide_channels gc
         JOIN providers p ON p.id = gc.provider_id
         WHERE gc.name {like} $1 ESCAPE '\\' OR gc.id {like} $1 ESCAPE '\\'
         ORDER BY gc.name, p.priority, gc.provider_id LIMIT $2",
        like = dialect!(sqlite: "LIKE", postgres: "ILIKE"),
    ))
    .bind(pattern)
    .bind(limit as i64)
    .fetch_all(p)
    .await)?)
}

/// The guide status of every provider (never-fetched ones included), in
/// provider order.
pub async fn statuses(store: &Store) -> Result<Vec<EpgStatus>, CatalogError> {
    on_db!(store.db(), |p| {
        let rows = sqlx::query(
        "SELECT p.id AS provider_id, e.fetched_at, e.ok, e.error, e.ok_at, e.channels, e.programmes, e.bytes, e.duration_ms
         FROM providers p LEFT JOIN epg_status e ON e.provider_id = p.id ORDER BY p.priority, p.id",
    )
    .fetch_all(p)
    .await?;
        rows.iter()
            .map(|r| {
                Ok(EpgStatus {
                    provider_id: r.col("provider_id")?,
                    fetched_at: r.col("fetched_at")?,
                    ok: r.col("ok")?,
                    error: r.col("error")?,
                    ok_at: r.col("ok_at")?,
                    channels: r.col("channels")?,
                    programmes: r.col("programmes")?,
                    bytes: r.col("bytes")?,
                    duration_ms: r.col("duration_ms")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(CatalogError::from)
    })
}

/// One guide channel of one provider that feeds one of our channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuideLink {
    /// Whose guide.
    pub provider_id: i64,
    /// The channel id in that guide (the stream's tvg-id / `epg_channel_id`).
    pub source_id: String,
    /// The id our outputs use for the channel: its own tvg-id.
    pub output_id: String,
}

/// Which guide channels feed our channels: for every visible lineup
/// channel with a guide id (its own, else its first source's tvg-id, else
/// the guide channel named like one of its sources), the tvg-id of each of
/// its sources in that source's provider guide — or, for a source without a
/// tvg-id, the guide channel of its provider with the same normalized name
/// — and a guide channel whose id the user chose as the channel's guide
/// id, all mapped to the channel's guide id. Ordered by provider priority,
/// so that the first provider's guide wins where several have the same
/// channel. `groups` limits the channels to those lineup groups (ids).
pub async fn guide_links(store: &Store, groups: Option<&[i64]>) -> Result<Vec<GuideLink>, CatalogError> {
    on_db!(store.db(), |p| {
        let mut qb = sqlx::QueryBuilder::<Backend>::new(concat!(
        "SELECT DISTINCT * FROM (
         SELECT s.provider_id, CASE WHEN TRIM(COALESCE(s.tvg_id, '')) <> '' THEN TRIM(s.tvg_id)
                ELSE (SELECT gc.id FROM guide_channels gc WHERE gc.provider_id = s.provider_id AND gc.norm_name = s.norm_name
                      AND s.norm_name <> '' ORDER BY gc.id LIMIT 1) END AS source_id, ",
        crate::lineup::guide_id_sql!(),
        " AS output_id, p.priority, c.id AS channel_id, c.group_id
         FROM lineup_channels c LEFT JOIN lineup_groups g ON g.id = c.group_id
         JOIN lineup_sources ls ON ls.channel_id = c.id
         JOIN streams s ON s.id = ls.stream_id
         JOIN providers p ON p.id = s.provider_id
         WHERE NOT c.hidden AND NOT COALESCE(g.hidden, FALSE)
         UNION ALL
         SELECT gc.provider_id, gc.id, gc.id, p.priority, c.id, c.group_id
         FROM lineup_channels c LEFT JOIN lineup_groups g ON g.id = c.group_id
         JOIN guide_channels gc ON gc.id = TRIM(c.tvg_id)
         JOIN providers p ON p.id = gc.provider_id
         WHERE NOT c.hidden AND NOT COALESCE(g.hidden, FALSE)) links
         WHERE output_id IS NOT NULL AND source_id IS NOT NULL"
    ));
        if let Some(groups) = groups {
            if groups.is_empty() {
                return Ok(Vec::new());
            }
            qb.push(" AND group_id IN (");
            let mut sep = qb.separated(", ");
            for g in groups {
                sep.push_bind(*g);
            }
            qb.push(")");
        }
        qb.push(" ORDER BY priority, provider_id, channel_id");
        let rows = qb.build().fetch_all(p).await?;
        rows.iter()
            .map(|r| {
                Ok(GuideLink {
                    provider_id: r.col("provider_id")?,
                    source_id: r.col("source_id")?,
                    output_id: r.col("output_id")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(CatalogError::from)
    })
}
