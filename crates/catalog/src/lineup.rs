//! The lineup: the user's channels, each with sources at any provider.
//!
//! Between the providers' catalogs (`streams`, per provider) and what
//! clients see sits the lineup (`lineup_channels`, `lineup_groups`,
//! `lineup_sources`; migration `0006_lineup.sql`). A client-visible live
//! channel is a lineup channel: its id, number, name, group, logo, guide id
//! and hidden flag belong to the user and survive re-syncs. Its sources are
//! streams of any provider, tried in the order selection ranks them.
//!
//! Each sync ends, inside its transaction, with [`maintain`]:
//! 1. streams the provider renumbered (or that came back after their
//!    provider was removed and added again) are **re-attached** to the
//!    source that lost them, by upstream key, else tvg-id, else normalized
//!    name;
//! 2. new streams **join** an existing channel that has no source at this
//!    provider yet, by tvg-id, else by normalized name ([`normalize_name`]),
//!    when matching is on (`lineup.match`, limited to `lineup.match_groups`);
//! 3. the rest become **new channels** (`lineup.auto_create`), numbered after
//!    the highest number, in a lineup group of their provider group's name;
//!    or wait, unassigned, for the user.
//!
//! A source whose stream disappears keeps its identity with `stream_id`
//! NULL; a channel whose sources are all gone stays, unavailable, with its
//! edits. Matching works on in-memory hash maps and writes through a
//! temporary table with set-based SQL, so a 200 000-entry import stays fast.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use sqlx::QueryBuilder;
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use crate::db::{dialect, on_conn, on_db, on_tx, Conn};
use crate::error::CatalogError;

/// SQL for a lineup channel's guide id (alias `c`): its own, else the first
/// source's tvg-id, else the id of the guide channel (of a source's
/// provider) named like a source. The outputs list it and the guide maps to it.
macro_rules! guide_id_sql {
    () => {
        "COALESCE(NULLIF(TRIM(c.tvg_id), ''),
    (SELECT TRIM(xs.tvg_id) FROM lineup_sources x JOIN streams xs ON xs.id = x.stream_id
     WHERE x.channel_id = c.id AND TRIM(COALESCE(xs.tvg_id, '')) <> '' ORDER BY x.position, x.id LIMIT 1),
    (SELECT gc.id FROM lineup_sources x JOIN streams xs ON xs.id = x.stream_id
     JOIN guide_channels gc ON gc.provider_id = xs.provider_id AND gc.norm_name = xs.norm_name
     WHERE x.channel_id = c.id AND xs.norm_name <> '' ORDER BY x.position, x.id, gc.id LIMIT 1))"
    };
}
pub(crate) use guide_id_sql;

/// How syncs fill the lineup (`lineup.*` configuration keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineupSettings {
    /// `lineup.match`: new streams join existing channels (of other
    /// providers) with the same tvg-id or normalized name.
    pub match_streams: bool,
    /// `lineup.match_groups`: only streams in these provider groups (names,
    /// case-insensitive) are matched; empty = every group.
    pub match_groups: Vec<String>,
    /// `lineup.auto_create`: a new stream that joins no channel becomes a
    /// channel of its own; off, it waits (unassigned) for the user.
    pub auto_create: bool,
}

impl Default for LineupSettings {
    fn default() -> Self {
        LineupSettings { match_streams: true, match_groups: Vec::new(), auto_create: true }
    }
}

/// What [`maintain`] did in one sync.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LineupReport {
    /// Streams given back to the source that had lost them (renumbered, re-added).
    pub reattached: u64,
    /// New streams that joined an existing channel as a further source.
    pub joined: u64,
    /// New channels created for streams that matched nothing.
    pub created: u64,
    /// New streams left unassigned (`lineup.auto_create` off).
    pub unassigned: u64,
}

/// Quality and format tags dropped by [`normalize_name`], as whole words.
const QUALITY_TAGS: &[&str] = &[
    "sd", "hd", "fhd", "uhd", "qhd", "hq", "lq", "4k", "8k", "hdr", "hdr10", "sdr", "hevc", "h264", "h265", "x264",
    "x265", "avc", "raw", "50fps", "60fps", "25fps", "30fps", "fps", "2160p", "1440p", "1080p", "1080i", "720p",
    "576p", "576i", "540p", "480p", "360p", "240p", "multi", "multisub", "backup", "vip",
];

/// Three-letter country or language codes dropped as prefixes or bracketed
/// suffixes (any two-letter code is dropped there too).
const CODES3: &[&str] = &[
    "usa", "eng", "ger", "deu", "fra", "fre", "ita", "esp", "spa", "por", "bra", "arb", "ara", "tur", "pol", "rus",
    "nld", "dut", "swe", "nor", "den", "dan", "fin", "gre", "ell", "rom", "ron", "hun", "cze", "ces", "alb", "srb",
    "cro", "hrv", "bih", "mkd", "bul", "ukr", "ind", "pak", "can", "aus", "lat", "mex", "arg", "col", "chi", "afr",
];

fn is_code(word: &str) -> bool {
    let n = word.chars().count();
    word.chars().all(|c| c.is_alphabetic()) && (n == 2 || (n == 3 && CODES3.contains(&word)))
}

/// A channel name as matching compares it: "BBC One HD", "UK: BBC One",
/// "|EN| bbc one (UK)" and "BBC ONE [FHD] 50fps" all give `bbc one`.
///
/// Unicode compatibility-decomposed with accents dropped (NFKD, combining
/// marks removed: "Télé" → `tele`), lower-cased; punctuation separates words
/// (`&` reads `and`, `+` reads `plus`, so "Channel 4 +1" stays apart from
/// "Channel 4"); quality tags (HD, FHD, UHD, 4K, SD, HEVC, 50fps, 1080p, …)
/// dropped; a country or language code before `:`/`|`/`-` or between
/// bars (`UK:`, `|EN|`, `US -`) and one in brackets (`(US)`, `[DE]`) or after
/// a bar at the end dropped. A name that would come out empty keeps its
/// words instead (a channel called "HD" is `hd`).
pub fn normalize_name(name: &str) -> String {
    // Case-folded: lower case, and the Greek final sigma as a sigma.
    let folded: String = name
        .nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .map(|c| if c == 'ς' { 'σ' } else { c })
        .collect();
    // Tokens: words, and the separators that carry meaning for prefixes.
    #[derive(PartialEq)]
    enum Tok {
        Word(String),
        Sep,   // ':' '|' '-' '/' and friends: a prefix boundary
        Open,  // ( [ {
        Close, // ) ] }
    }
    let mut toks: Vec<Tok> = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, toks: &mut Vec<Tok>| {
        if !word.is_empty() {
            toks.push(Tok::Word(std::mem::take(word)));
        }
    };
    let chars: Vec<char> = folded.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_alphanumeric() {
            word.push(c);
            continue;
        }
        flush(&mut word, &mut toks);
        let spaced = |i: usize| {
            i.checked_sub(1).and_then(|p| chars.get(p)).is_none_or(|c| c.is_whitespace())
                && chars.get(i + 1).is_none_or(|c| c.is_whitespace())
        };
        match c {
            '&' => toks.push(Tok::Word("and".into())),
            '+' => toks.push(Tok::Word("plus".into())),
            ':' | '|' | '»' | '•' | '·' => toks.push(Tok::Sep),
            // A dash separates only with spaces around it ("US - CNN"), not in "TV-5".
            '-' | '–' | '—' if spaced(i) => toks.push(Tok::Sep),
            '(' | '[' | '{' => toks.push(Tok::Open),
            ')' | ']' | '}' => toks.push(Tok::Close),
            _ => {}
        }
    }
    flush(&mut word, &mut toks);

    let mut keep = vec![true; toks.len()];
    // Bracketed code or quality tag: "(US)", "[DE]", "(576p)".
    for i in 0..toks.len() {
        if let (Some(Tok::Open), Some(Tok::Word(w)), Some(Tok::Close)) = (toks.get(i), toks.get(i + 1), toks.get(i + 2))
        {
            if is_code(w) || QUALITY_TAGS.contains(&w.as_str()) {
                keep[i + 1] = false;
            }
        }
    }
    // Leading code before a separator: "UK:", "|EN|", "US -"; repeated ("|UK| |HD|" style).
    let mut i = 0;
    while i < toks.len() && toks[i] == Tok::Sep {
        i += 1;
    }
    while let (Some(Tok::Word(w)), Some(Tok::Sep)) = (toks.get(i), toks.get(i + 1)) {
        if !(is_code(w) || QUALITY_TAGS.contains(&w.as_str())) {
            break;
        }
        keep[i] = false;
        i += 1;
        while i < toks.len() && toks[i] == Tok::Sep {
            i += 1;
        }
    }
    // Trailing code after a separator: "BBC One | UK".
    let words: Vec<usize> = (0..toks.len())
        .filter(|&i| keep[i] && matches!(&toks[i], Tok::Word(w) if !QUALITY_TAGS.contains(&w.as_str())))
        .collect();
    if let Some(&last) = words.last() {
        if let Tok::Word(w) = &toks[last] {
            let after_sep = last > 0 && toks[last - 1] == Tok::Sep;
            if after_sep && is_code(w) && words.len() > 1 {
                keep[last] = false;
            }
        }
    }
    let out: Vec<&str> = toks
        .iter()
        .zip(&keep)
        .filter_map(|(t, k)| match t {
            Tok::Word(w) if *k && !QUALITY_TAGS.contains(&w.as_str()) => Some(w.as_str()),
            _ => None,
        })
        .collect();
    if out.is_empty() {
        // Only tags ("HD", "UK: 4K"): keep the tags rather than match
        // everything to "" (still without codes, so that this is idempotent).
        let tags: Vec<&str> = toks
            .iter()
            .zip(&keep)
            .filter_map(|(t, k)| match t {
                Tok::Word(w) if *k => Some(w.as_str()),
                _ => None,
            })
            .collect();
        if !tags.is_empty() {
            return tags.join(" ");
        }
        return toks
            .iter()
            .filter_map(|t| match t {
                Tok::Word(w) => Some(w.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(" ");
    }
    out.join(" ")
}

/// A tvg-id as matching compares it: trimmed, lower-cased; empty is none.
pub fn normalize_tvg_id(id: Option<&str>) -> Option<String> {
    id.map(str::trim).filter(|t| !t.is_empty()).map(str::to_lowercase)
}

/// A stream of the syncing provider that no source holds.
#[derive(sqlx::FromRow)]
struct Loose {
    id: i64,
    upstream_key: String,
    tvg_id: Option<String>,
    norm_name: String,
    group_id: Option<i64>,
}

/// A source whose stream is gone.
#[derive(sqlx::FromRow)]
struct Lost {
    id: i64,
    provider_id: i64,
    upstream_key: String,
    tvg_id: Option<String>,
    norm_name: String,
}

/// Pairs per INSERT into the scratch table (3 ints: well under SQLite's
/// bound-parameter limit).
const PAIRS_PER_STATEMENT: usize = 5000;

/// The scratch tables are temporary: SQLite names their schema `temp`,
/// PostgreSQL `pg_temp`. In SQL texts, `temp.` is written and this maps it.
fn temp_sql(postgres: bool, sql: &str) -> std::borrow::Cow<'_, str> {
    if postgres {
        sql.replace("temp.", "pg_temp.").into()
    } else {
        sql.into()
    }
}

/// Runs a statement that names the scratch tables ([`temp_sql`]) on the
/// transaction's connection; how many rows it changed.
async fn exec_temp(conn: &mut Conn<'_>, sql: &str, binds: &[i64]) -> Result<u64, sqlx::Error> {
    on_conn!(conn, |c| {
        let sql = temp_sql(dialect!(sqlite: false, postgres: true), sql);
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = q.bind(*b);
        }
        q.execute(&mut *c).await.map(|r| r.rows_affected())
    })
}

async fn scratch(conn: &mut Conn<'_>, rows: &[(i64, i64, i64)]) -> Result<(), sqlx::Error> {
    on_conn!(conn, |c| {
        // In PostgreSQL `a` is not filled by itself as SQLite's INTEGER
        // PRIMARY KEY is: the statements that leave it out number it.
        sqlx::query(dialect!(
            sqlite: "CREATE TEMP TABLE IF NOT EXISTS lineup_scratch (a INTEGER PRIMARY KEY, b INTEGER NOT NULL, c INTEGER)",
            postgres: "CREATE TEMP TABLE IF NOT EXISTS lineup_scratch (a BIGINT PRIMARY KEY, b BIGINT NOT NULL, c BIGINT)",
        ))
        .execute(&mut *c)
        .await?;
        sqlx::query(
            dialect!(sqlite: "DELETE FROM temp.lineup_scratch", postgres: "DELETE FROM pg_temp.lineup_scratch"),
        )
        .execute(&mut *c)
        .await?;
        for chunk in rows.chunks(PAIRS_PER_STATEMENT) {
            let mut qb = QueryBuilder::<Backend>::new(dialect!(
                sqlite: "INSERT INTO temp.lineup_scratch (a, b, c) ",
                postgres: "INSERT INTO pg_temp.lineup_scratch (a, b, c) ",
            ));
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(r.0).push_bind(r.1).push_bind(r.2);
            });
            qb.build().execute(&mut *c).await?;
        }
    });
    Ok(())
}

/// Every attached source of the provider carries its stream's current
/// identity (what re-attaching compares once the stream is gone).
async fn refresh_identities(conn: &mut Conn<'_>, provider_id: i64) -> Result<(), sqlx::Error> {
    exec_temp(
        conn,
        "UPDATE lineup_sources SET upstream_key = s.upstream_key, tvg_id = s.tvg_id, norm_name = s.norm_name
         FROM streams s
         WHERE s.id = lineup_sources.stream_id AND s.provider_id = $1
           AND (lineup_sources.upstream_key <> s.upstream_key OR lineup_sources.tvg_id IS DISTINCT FROM s.tvg_id
                OR lineup_sources.norm_name <> s.norm_name)",
        &[provider_id],
    )
    .await?;
    Ok(())
}

/// Makes every stream of the provider that no source holds a channel of its
/// own: step 3 of [`maintain`] when nothing was re-attached or joined, with
/// the list of streams built in SQL instead of loaded.
async fn create_all_loose(conn: &mut Conn<'_>, provider_id: i64) -> Result<u64, CatalogError> {
    scratch(conn, &[]).await?;
    // The table is empty: in SQLite, row ids 1, 2, … in the provider's
    // order; PostgreSQL numbers them with ROW_NUMBER().
    let sql = match conn {
        Conn::Sqlite(_) => {
            "INSERT INTO temp.lineup_scratch (b, c)
             SELECT s.id, s.group_id FROM streams s
             WHERE s.provider_id = $1 AND NOT EXISTS (SELECT 1 FROM lineup_sources ls WHERE ls.stream_id = s.id)
             ORDER BY s.position, s.id"
        }
        Conn::Postgres(_) => {
            "INSERT INTO temp.lineup_scratch (a, b, c)
             SELECT ROW_NUMBER() OVER (ORDER BY s.position, s.id), s.id, s.group_id FROM streams s
             WHERE s.provider_id = $1 AND NOT EXISTS (SELECT 1 FROM lineup_sources ls WHERE ls.stream_id = s.id)"
        }
    };
    exec_temp(conn, sql, &[provider_id]).await?;
    create_from_scratch(conn, provider_id).await
}

/// Creates a channel for each row of the scratch table (`a`: 1, 2, … in the
/// provider's order; `b`: the stream; `c`: its provider group), numbered
/// after the highest number, with a source holding the stream, in the
/// lineup group named like its provider group — created as needed, in the
/// order of their first channel; provider groups sharing a name share one.
/// All in SQL, so that a 200 000-entry import loads nothing. Returns how many.
async fn create_from_scratch(conn: &mut Conn<'_>, provider_id: i64) -> Result<u64, CatalogError> {
    exec_temp(
        conn,
        "INSERT INTO lineup_groups (name, position)
         SELECT f.name, (SELECT COALESCE(MAX(position), -1) FROM lineup_groups) + ROW_NUMBER() OVER (ORDER BY f.first)
         FROM (SELECT g.name AS name, MIN(x.first) AS first
               FROM (SELECT t.c, MIN(t.a) AS first FROM temp.lineup_scratch t GROUP BY t.c) x
               JOIN groups g ON g.id = x.c AND g.provider_id = $1 AND g.kind = 'live'
               WHERE NOT EXISTS (SELECT 1 FROM lineup_groups lg WHERE lg.name = g.name)
               GROUP BY g.name) f",
        &[provider_id],
    )
    .await?;
    // Provider group → lineup group, looked up once per channel below (one
    // lookup instead of a join of two tables: -25% for the channels' insert).
    let create_map = match conn {
        Conn::Sqlite(_) => {
            "CREATE TEMP TABLE IF NOT EXISTS lineup_group_map (g INTEGER PRIMARY KEY, lg INTEGER NOT NULL)"
        }
        Conn::Postgres(_) => {
            "CREATE TEMP TABLE IF NOT EXISTS lineup_group_map (g BIGINT PRIMARY KEY, lg BIGINT NOT NULL)"
        }
    };
    exec_temp(conn, create_map, &[]).await?;
    exec_temp(conn, "DELETE FROM temp.lineup_group_map", &[]).await?;
    exec_temp(
        conn,
        "INSERT INTO temp.lineup_group_map (g, lg)
         SELECT g.id, lg.id FROM groups g JOIN lineup_groups lg ON lg.name = g.name
         WHERE g.provider_id = $1 AND g.kind = 'live'",
        &[provider_id],
    )
    .await?;
    // Ids are never reused: after the highest ever given (SQLite's
    // AUTOINCREMENT counter, PostgreSQL's identity sequence — which the
    // explicit ids below do not move, so it is set after them).
    let (max_id, max_number): (i64, i64) = on_conn!(conn, |c| {
        sqlx::query_as(dialect!(
        sqlite: "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'lineup_channels'), 0),
                            COALESCE((SELECT MAX(id) FROM lineup_channels), 0)),
                        COALESCE((SELECT MAX(number) FROM lineup_channels), 0)",
        postgres: "SELECT GREATEST((SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM lineup_channels_id_seq),
                                   COALESCE((SELECT MAX(id) FROM lineup_channels), 0)),
                          COALESCE((SELECT MAX(number) FROM lineup_channels), 0)",
    ))
    .fetch_one(&mut *c)
    .await
    })?;
    let now = crate::store::now();
    let created = exec_temp(
        conn,
        "INSERT INTO lineup_channels (id, number, name, group_id, logo, tvg_id, created_at)
         SELECT $1 + t.a, $2 + t.a, CASE WHEN TRIM(s.name) = '' THEN 'Channel ' || ($2 + t.a) ELSE s.name END,
                (SELECT m.lg FROM temp.lineup_group_map m WHERE m.g = t.c), s.logo, NULLIF(TRIM(s.tvg_id), ''), $3
         FROM temp.lineup_scratch t JOIN streams s ON s.id = t.b ORDER BY t.a",
        &[max_id, max_number, now],
    )
    .await?;
    exec_temp(
        conn,
        "INSERT INTO lineup_sources (channel_id, stream_id, provider_id, upstream_key, tvg_id, norm_name, position)
         SELECT $1 + t.a, s.id, s.provider_id, s.upstream_key, s.tvg_id, s.norm_name, 0
         FROM temp.lineup_scratch t JOIN streams s ON s.id = t.b ORDER BY t.a",
        &[max_id],
    )
    .await?;
    if let (Conn::Postgres(c), true) = (&mut *conn, created > 0) {
        sqlx::query("SELECT setval('lineup_channels_id_seq', $1)")
            .bind(max_id + created as i64)
            .execute(&mut **c)
            .await?;
    }
    Ok(created)
}

/// Brings the lineup up to date with one provider's freshly synced streams
/// (see the module doc). Runs inside the sync's transaction.
pub(crate) async fn maintain(
    conn: &mut Conn<'_>,
    provider_id: i64,
    settings: &LineupSettings,
) -> Result<LineupReport, CatalogError> {
    let mut report = LineupReport::default();
    // Nothing to re-attach and no channel to join (a first import, or
    // matching off): every new stream becomes a channel, in SQL alone —
    // nothing is loaded, which keeps a 200 000-entry import fast and small.
    // Lineup ids and numbers are handed out below from the highest ones:
    // on PostgreSQL another instance's sync may run at the same time, and
    // waits here for this one's transaction (SQLite has one writer anyway).
    if let Conn::Postgres(c) = conn {
        sqlx::query("LOCK TABLE lineup_channels, lineup_groups, lineup_sources IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut **c)
            .await?;
    }
    let (lost, joinable): (bool, bool) = on_conn!(conn, |c| {
        sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM lineup_sources WHERE stream_id IS NULL
                        AND (provider_id = $1 OR provider_id NOT IN (SELECT id FROM providers))),
                $2 AND EXISTS (SELECT 1 FROM lineup_channels c
                               WHERE NOT EXISTS (SELECT 1 FROM lineup_sources x WHERE x.channel_id = c.id AND x.provider_id = $1))",
    )
    .bind(provider_id)
    .bind(settings.match_streams)
    .fetch_one(&mut *c)
    .await
    })?;
    if !lost && !joinable {
        refresh_identities(conn, provider_id).await?;
        if settings.auto_create {
            report.created = create_all_loose(conn, provider_id).await?;
        } else {
            report.unassigned = on_conn!(conn, |c| sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM streams s WHERE s.provider_id = $1
                 AND NOT EXISTS (SELECT 1 FROM lineup_sources ls WHERE ls.stream_id = s.id)",
            )
            .bind(provider_id)
            .fetch_one(&mut *c)
            .await)? as u64;
        }
        return Ok(report);
    }
    let loose: Vec<Loose> = on_conn!(conn, |c| sqlx::query_as(
        "SELECT s.id, s.upstream_key, s.tvg_id, s.norm_name, s.group_id
         FROM streams s
         WHERE s.provider_id = $1 AND NOT EXISTS (SELECT 1 FROM lineup_sources ls WHERE ls.stream_id = s.id)
         ORDER BY s.position, s.id",
    )
    .bind(provider_id)
    .fetch_all(&mut *c)
    .await)?;
    // The provider's group names, once (not per stream).
    let group_names: HashMap<i64, String> = if loose.is_empty() {
        HashMap::new()
    } else {
        on_conn!(conn, |c| sqlx::query_as::<_, (i64, String)>(
            "SELECT id, name FROM groups WHERE provider_id = $1 AND kind = 'live'"
        )
        .bind(provider_id)
        .fetch_all(&mut *c)
        .await)?
        .into_iter()
        .collect()
    };
    let group_name = |s: &Loose| s.group_id.and_then(|g| group_names.get(&g)).map(String::as_str);
    let mut taken = vec![false; loose.len()];

    if !loose.is_empty() {
        // 1. Re-attach lost sources: this provider's by upstream key, tvg-id
        //    or name; those of removed providers by tvg-id or name.
        let lost: Vec<Lost> = on_conn!(conn, |c| sqlx::query_as(
            "SELECT id, provider_id, upstream_key, tvg_id, norm_name FROM lineup_sources
             WHERE stream_id IS NULL AND (provider_id = $1 OR provider_id NOT IN (SELECT id FROM providers))
             ORDER BY provider_id <> $1, id",
        )
        .bind(provider_id)
        .fetch_all(&mut *c)
        .await)?;
        if !lost.is_empty() {
            let mut by_key: HashMap<&str, Vec<usize>> = HashMap::new();
            let mut by_tvg: HashMap<String, Vec<usize>> = HashMap::new();
            let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
            for (i, l) in lost.iter().enumerate() {
                if l.provider_id == provider_id {
                    by_key.entry(l.upstream_key.as_str()).or_default().push(i);
                }
                if let Some(t) = normalize_tvg_id(l.tvg_id.as_deref()) {
                    by_tvg.entry(t).or_default().push(i);
                }
                if !l.norm_name.is_empty() {
                    by_name.entry(l.norm_name.as_str()).or_default().push(i);
                }
            }
            let mut used = vec![false; lost.len()];
            let mut pairs = Vec::new();
            let pick = |list: Option<&Vec<usize>>, used: &mut Vec<bool>| -> Option<usize> {
                let i = list?.iter().copied().find(|&i| !used[i])?;
                used[i] = true;
                Some(i)
            };
            // Upstream keys first, for every stream, so that a key match is
            // never taken by another stream's weaker tvg-id or name match.
            let mut chosen: Vec<Option<usize>> =
                loose.iter().map(|s| pick(by_key.get(s.upstream_key.as_str()), &mut used)).collect();
            for (s, c) in loose.iter().zip(chosen.iter_mut()) {
                if c.is_none() {
                    if let Some(t) = normalize_tvg_id(s.tvg_id.as_deref()) {
                        *c = pick(by_tvg.get(&t), &mut used);
                    }
                }
            }
            for (s, c) in loose.iter().zip(chosen.iter_mut()) {
                if c.is_none() && !s.norm_name.is_empty() {
                    *c = pick(by_name.get(s.norm_name.as_str()), &mut used);
                }
            }
            for (k, c) in chosen.iter().enumerate() {
                if let Some(i) = c {
                    pairs.push((lost[*i].id, loose[k].id, 0));
                    taken[k] = true;
                }
            }
            if !pairs.is_empty() {
                report.reattached = pairs.len() as u64;
                scratch(conn, &pairs).await?;
                exec_temp(
                    conn,
                    "UPDATE lineup_sources SET stream_id = t.b, provider_id = $1
                     FROM temp.lineup_scratch t WHERE t.a = lineup_sources.id",
                    &[provider_id],
                )
                .await?;
            }
        }
    }

    refresh_identities(conn, provider_id).await?;

    if taken.iter().all(|t| *t) {
        return Ok(report);
    }

    // 2. Join channels that have no source at this provider yet.
    if settings.match_streams {
        let groups: HashSet<String> = settings.match_groups.iter().map(|g| g.trim().to_lowercase()).collect();
        let in_scope =
            |s: &Loose| groups.is_empty() || group_name(s).is_some_and(|g| groups.contains(&g.trim().to_lowercase()));
        if loose.iter().zip(&taken).any(|(s, t)| !t && in_scope(s)) {
            let keys: Vec<(i64, Option<String>, String)> = on_conn!(conn, |c| {
                sqlx::query_as(
                "SELECT ls.channel_id, ls.tvg_id, ls.norm_name FROM lineup_sources ls
                 WHERE NOT EXISTS (SELECT 1 FROM lineup_sources x WHERE x.channel_id = ls.channel_id AND x.provider_id = $1)
                 ORDER BY ls.channel_id, ls.position",
            )
            .bind(provider_id)
            .fetch_all(&mut *c)
            .await
            })?;
            let own: Vec<(i64, Option<String>, String)> = on_conn!(conn, |c| sqlx::query_as(
                "SELECT c.id, c.tvg_id, c.name FROM lineup_channels c
                 WHERE NOT EXISTS (SELECT 1 FROM lineup_sources x WHERE x.channel_id = c.id AND x.provider_id = $1)
                 ORDER BY c.id",
            )
            .bind(provider_id)
            .fetch_all(&mut *c)
            .await)?;
            let mut by_tvg: HashMap<String, i64> = HashMap::new();
            let mut by_name: HashMap<String, i64> = HashMap::new();
            // The channel's own guide id and name (the user's edits) first.
            for (id, tvg, name) in &own {
                if let Some(t) = normalize_tvg_id(tvg.as_deref()) {
                    by_tvg.entry(t).or_insert(*id);
                }
                by_name.entry(normalize_name(name)).or_insert(*id);
            }
            for (id, tvg, norm) in keys {
                if let Some(t) = normalize_tvg_id(tvg.as_deref()) {
                    by_tvg.entry(t).or_insert(id);
                }
                if !norm.is_empty() {
                    by_name.entry(norm).or_insert(id);
                }
            }
            by_name.remove("");
            let mut joined: HashSet<i64> = HashSet::new();
            let mut pairs = Vec::new();
            for (k, s) in loose.iter().enumerate() {
                if taken[k] || !in_scope(s) {
                    continue;
                }
                let by_t = normalize_tvg_id(s.tvg_id.as_deref()).and_then(|t| by_tvg.get(&t).copied());
                let target = by_t
                    .filter(|c| !joined.contains(c))
                    .or_else(|| by_name.get(s.norm_name.as_str()).copied().filter(|c| !joined.contains(c)));
                if let Some(c) = target {
                    joined.insert(c);
                    pairs.push((s.id, c, 0));
                    taken[k] = true;
                }
            }
            if !pairs.is_empty() {
                report.joined = pairs.len() as u64;
                scratch(conn, &pairs).await?;
                exec_temp(
                    conn,
                    "INSERT INTO lineup_sources (channel_id, stream_id, provider_id, upstream_key, tvg_id, norm_name, position)
                     SELECT t.b, s.id, s.provider_id, s.upstream_key, s.tvg_id, s.norm_name,
                            (SELECT COALESCE(MAX(x.position), -1) + 1 FROM lineup_sources x WHERE x.channel_id = t.b)
                     FROM temp.lineup_scratch t JOIN streams s ON s.id = t.a ORDER BY t.a",
                    &[],
                )
                .await?;
            }
        }
    }

    // 3. New channels for the rest, or leave them for the user.
    let rest: Vec<&Loose> = loose.iter().zip(&taken).filter(|(_, t)| !**t).map(|(s, _)| s).collect();
    if rest.is_empty() {
        return Ok(report);
    }
    if !settings.auto_create {
        report.unassigned = rest.len() as u64;
        return Ok(report);
    }
    let rows: Vec<(i64, i64, i64)> =
        rest.iter().enumerate().map(|(i, s)| (i as i64 + 1, s.id, s.group_id.unwrap_or(-1))).collect();
    scratch(conn, &rows).await?;
    report.created = create_from_scratch(conn, provider_id).await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_channel_different_spellings() {
        for name in [
            "BBC One HD",
            "UK: BBC One",
            "|EN| bbc one (UK)",
            "BBC ONE [FHD] 50fps",
            "UK | BBC One HEVC",
            "bbc-one",
            "BBC One | UK",
            "BBC One 4K",
            "BBC One (US)",
            "[DE] BBC One",
            "UK - BBC One UHD",
        ] {
            let n = normalize_name(name);
            assert_eq!(n.replace(' ', ""), "bbcone", "{name} → {n}");
        }
        assert_eq!(normalize_name("BBC One HD"), "bbc one");
    }

    #[test]
    fn accents_and_symbols() {
        assert_eq!(normalize_name("Télé Québec"), "tele quebec");
        assert_eq!(normalize_name("TÉLÉ-QUÉBEC HD"), normalize_name("Tele Quebec"));
        assert_eq!(normalize_name("Fast & Loud"), "fast and loud");
        assert_ne!(normalize_name("Channel 4 +1"), normalize_name("Channel 4"));
        assert_eq!(normalize_name("ＢＢＣ Ｏｎｅ"), "bbc one", "full-width letters fold (NFKD)");
        assert_eq!(normalize_name("ЧП Инфо (576p)"), "чп инфо");
    }

    #[test]
    fn tags_only_names_keep_their_words() {
        assert_eq!(normalize_name("HD"), "hd");
        assert_eq!(normalize_name("UK: HD"), "hd");
        assert_eq!(normalize_name("UK:"), "uk");
        assert_eq!(normalize_name(""), "");
        assert_eq!(normalize_name("  ::  "), "");
    }

    #[test]
    fn real_words_are_not_codes() {
        // A two-word channel whose first word is short stays whole.
        assert_eq!(normalize_name("E! Entertainment"), "e entertainment");
        assert_eq!(normalize_name("TV5 HD"), "tv5");
        assert_eq!(normalize_name("24/7 COPS (ETV)"), "24 7 cops etv");
    }

    #[test]
    fn tvg_ids() {
        assert_eq!(normalize_tvg_id(Some(" BBCOne.uk ")), Some("bbcone.uk".into()));
        assert_eq!(normalize_tvg_id(Some("  ")), None);
        assert_eq!(normalize_tvg_id(None), None);
    }
}

// ---- curation -------------------------------------------------------------

use crate::error::FieldError;
use crate::model::{Channel, GroupCount};
use crate::store::Store;
use tunerpool_domain::fields::nullable;

/// Changes to a lineup channel (PATCH). Absent fields are left alone;
/// `null` clears an optional one.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelPatch {
    #[schema(pattern = r"\S", max_length = 200)]
    pub name: Option<String>,
    /// Unique over the lineup, 1 to 9 999 999 ([`MAX_NUMBER`]).
    #[schema(minimum = 1, maximum = 9_999_999)]
    pub number: Option<i64>,
    /// A lineup group id; `null`: no group.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub group_id: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub logo: Option<Option<String>>,
    /// The guide id (`tvg-id`) the outputs and the guide use; `null`: the
    /// first source's.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub tvg_id: Option<Option<String>>,
    pub hidden: Option<bool>,
    /// True: sources ranked by provider; false: tried in their order.
    pub auto_order: Option<bool>,
    /// True: keep the channel's session running with no viewers (it holds a
    /// slot all the time); false: it lingers and closes like any other.
    pub always_on: Option<bool>,
}

/// Changes to a lineup group (POST creates one: `name` is required).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupPatch {
    #[schema(pattern = r"\S", max_length = 200)]
    pub name: Option<String>,
    /// Place among the groups, 0 = first (outputs list them in this order).
    #[schema(minimum = 0)]
    pub position: Option<i64>,
    pub hidden: Option<bool>,
}

/// A change to many channels at once, chosen by ids or by a filter.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkChange {
    /// These channels; or, when absent, every channel the filter selects.
    pub ids: Option<Vec<i64>>,
    /// Filter: exact lineup group name.
    pub group: Option<String>,
    /// Filter: lineup group id.
    pub filter_group_id: Option<i64>,
    /// Filter: substring of the name.
    pub q: Option<String>,
    /// Set: hidden or shown.
    pub hidden: Option<bool>,
    /// Set: move to this lineup group (`null`: no group).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub group_id: Option<Option<i64>>,
}

/// A stream no lineup channel holds yet (`lineup.auto_create` off, or split
/// off and removed): the user may make it a channel or add it to one.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct UnassignedStream {
    pub stream_id: i64,
    pub provider_id: i64,
    pub provider: String,
    pub name: String,
    pub group: Option<String>,
    pub tvg_id: Option<String>,
}

fn invalid(field: &str, msg: impl Into<String>) -> CatalogError {
    CatalogError::Invalid(vec![FieldError::new(field, msg)])
}

fn refused(field: &str, msg: impl Into<String>) -> CatalogError {
    CatalogError::Refused(vec![FieldError::new(field, msg)])
}

/// The highest channel number: numbers are shown by players and tuners,
/// and a renumbering moves numbers out of the way above it.
pub const MAX_NUMBER: i64 = 9_999_999;

/// A channel number in 1..=[`MAX_NUMBER`].
fn check_number(field: &str, number: i64) -> Result<(), CatalogError> {
    if !(1..=MAX_NUMBER).contains(&number) {
        return Err(invalid(field, format!("channel numbers go from 1 to {MAX_NUMBER} (got {number})")));
    }
    Ok(())
}

fn not_found(what: &'static str, id: i64) -> CatalogError {
    CatalogError::NotFound { what, id: id.to_string() }
}

async fn channel_exists(conn: &mut Conn<'_>, id: i64) -> Result<(), CatalogError> {
    let found: Option<i64> = on_conn!(conn, |cx| sqlx::query_scalar("SELECT id FROM lineup_channels WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *cx)
        .await)?;
    found.map(|_| ()).ok_or_else(|| not_found("channel", id))
}

async fn group_exists(conn: &mut Conn<'_>, field: &str, id: i64) -> Result<(), CatalogError> {
    let found: Option<i64> = on_conn!(conn, |cx| sqlx::query_scalar("SELECT id FROM lineup_groups WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *cx)
        .await)?;
    found.map(|_| ()).ok_or_else(|| refused(field, format!("no lineup group with id {id} (see GET /api/v1/groups)")))
}

async fn number_free(conn: &mut Conn<'_>, field: &str, number: i64, except: i64) -> Result<(), CatalogError> {
    let holder: Option<(i64, String)> =
        on_conn!(conn, |cx| sqlx::query_as("SELECT id, name FROM lineup_channels WHERE number = $1 AND id <> $2")
            .bind(number)
            .bind(except)
            .fetch_optional(&mut *cx)
            .await)?;
    match holder {
        Some((id, name)) => Err(refused(field, format!("number {number} is taken by channel {id} ({name})"))),
        None => Ok(()),
    }
}

async fn next_number(conn: &mut Conn<'_>) -> Result<i64, sqlx::Error> {
    on_conn!(conn, |cx| sqlx::query_scalar("SELECT COALESCE(MAX(number), 0) + 1 FROM lineup_channels")
        .fetch_one(&mut *cx)
        .await)
}

/// Renumbers a channel's sources 0.. in their current order.
async fn compact_positions(conn: &mut Conn<'_>, channel: i64) -> Result<(), sqlx::Error> {
    on_conn!(conn, |cx| {
        sqlx::query(
        "UPDATE lineup_sources SET position = (SELECT COUNT(*) FROM lineup_sources x WHERE x.channel_id = $1
            AND (x.position < lineup_sources.position OR (x.position = lineup_sources.position AND x.id < lineup_sources.id)))
         WHERE channel_id = $1",
    )
    .bind(channel)
    .execute(&mut *cx)
    .await.map(|r| r.rows_affected())
    })?;
    Ok(())
}

fn clean_name(field: &str, name: &str) -> Result<String, CatalogError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if name.chars().count() > 200 {
        return Err(invalid(field, "at most 200 characters"));
    }
    Ok(name.to_string())
}

impl Store {
    /// Edits a lineup channel; on any invalid field nothing changes.
    pub async fn update_channel(&self, id: i64, patch: &ChannelPatch) -> Result<Channel, CatalogError> {
        let mut tx = self.write_tx().await?;
        channel_exists(&mut tx.conn(), id).await?;
        let mut errs = Vec::new();
        let name = match patch.name.as_deref().map(|n| clean_name("name", n)) {
            Some(Err(CatalogError::Invalid(mut e))) => {
                errs.append(&mut e);
                None
            }
            Some(Ok(n)) => Some(n),
            _ => None,
        };
        if let Some(Err(CatalogError::Invalid(mut e))) = patch.number.map(|n| check_number("number", n)) {
            errs.append(&mut e);
        }
        if !errs.is_empty() {
            return Err(CatalogError::Invalid(errs));
        }
        // What the stored lineup refuses, after what the request itself gets wrong.
        let mut refusals = Vec::new();
        let mut refuse = |r: Result<(), CatalogError>| match r {
            Err(CatalogError::Refused(mut e)) => {
                refusals.append(&mut e);
                Ok(())
            }
            other => other,
        };
        if let Some(n) = patch.number {
            refuse(number_free(&mut tx.conn(), "number", n, id).await)?;
        }
        if let Some(Some(g)) = patch.group_id {
            refuse(group_exists(&mut tx.conn(), "group_id", g).await)?;
        }
        if !refusals.is_empty() {
            return Err(CatalogError::Refused(refusals));
        }
        let blank =
            |v: &Option<Option<String>>| v.clone().map(|o| o.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()));
        on_tx!(&mut tx, |cx| sqlx::query(
            "UPDATE lineup_channels SET name = COALESCE($1, name), number = COALESCE($2, number),
                 group_id = CASE WHEN $3 THEN $4 ELSE group_id END, logo = CASE WHEN $5 THEN $6 ELSE logo END,
                 tvg_id = CASE WHEN $7 THEN $8 ELSE tvg_id END, hidden = COALESCE($9, hidden),
                 auto_order = COALESCE($10, auto_order), always_on = COALESCE($12, always_on)
             WHERE id = $11",
        )
        .bind(name)
        .bind(patch.number)
        .bind(patch.group_id.is_some())
        .bind(patch.group_id.flatten())
        .bind(patch.logo.is_some())
        .bind(blank(&patch.logo).flatten())
        .bind(patch.tvg_id.is_some())
        .bind(blank(&patch.tvg_id).flatten())
        .bind(patch.hidden)
        .bind(patch.auto_order)
        .bind(id)
        .bind(patch.always_on)
        .execute(&mut *cx)
        .await
        .map(|r| r.rows_affected()))?;
        tx.commit().await?;
        self.channel(id).await
    }

    /// Merges channels into `into`: their sources are appended to its own
    /// (in order; a channel listed twice is merged once), then they are
    /// deleted. Unknown ids, `into` among `from`, or an empty list: a 4xx
    /// naming `channels`, nothing changed.
    pub async fn merge_channels(&self, into: i64, from: &[i64]) -> Result<Channel, CatalogError> {
        if from.is_empty() {
            return Err(invalid("channels", "name at least one channel to merge"));
        }
        if from.contains(&into) {
            return Err(refused("channels", format!("channel {into} cannot be merged into itself")));
        }
        let mut seen = HashSet::new();
        let from: Vec<i64> = from.iter().copied().filter(|c| seen.insert(*c)).collect();
        let mut tx = self.write_tx().await?;
        channel_exists(&mut tx.conn(), into).await?;
        for &c in &from {
            match channel_exists(&mut tx.conn(), c).await {
                Err(CatalogError::NotFound { .. }) => {
                    return Err(refused("channels", format!("no channel with id {c}")))
                }
                other => other?,
            }
        }
        for &c in &from {
            let base: i64 = on_tx!(&mut tx, |cx| sqlx::query_scalar(
                "SELECT COALESCE(MAX(position), -1) + 1 FROM lineup_sources WHERE channel_id = $1"
            )
            .bind(into)
            .fetch_one(&mut *cx)
            .await)?;
            on_tx!(&mut tx, |cx| sqlx::query(
                "UPDATE lineup_sources SET channel_id = $1, position = position + $3 WHERE channel_id = $2"
            )
            .bind(into)
            .bind(c)
            .bind(base)
            .execute(&mut *cx)
            .await
            .map(|r| r.rows_affected()))?;
            on_tx!(&mut tx, |cx| sqlx::query("DELETE FROM lineup_channels WHERE id = $1")
                .bind(c)
                .execute(&mut *cx)
                .await
                .map(|r| r.rows_affected()))?;
        }
        compact_positions(&mut tx.conn(), into).await?;
        tx.commit().await?;
        self.channel(into).await
    }

    /// Splits a source off a channel into a new channel of its own (next
    /// free number, same group, the stream's name). The last source cannot
    /// be split off.
    pub async fn split_source(&self, channel: i64, source: i64) -> Result<Channel, CatalogError> {
        let mut tx = self.write_tx().await?;
        channel_exists(&mut tx.conn(), channel).await?;
        let row: Option<(Option<String>, Option<String>, Option<String>)> = on_tx!(&mut tx, |cx| sqlx::query_as(
            "SELECT s.name, s.logo, s.tvg_id FROM lineup_sources ls LEFT JOIN streams s ON s.id = ls.stream_id
             WHERE ls.id = $1 AND ls.channel_id = $2",
        )
        .bind(source)
        .bind(channel)
        .fetch_optional(&mut *cx)
        .await)?;
        let Some((stream_name, logo, tvg)) = row else {
            return Err(refused("source_id", format!("channel {channel} has no source {source}")));
        };
        let count: i64 =
            on_tx!(&mut tx, |cx| sqlx::query_scalar("SELECT COUNT(*) FROM lineup_sources WHERE channel_id = $1")
                .bind(channel)
                .fetch_one(&mut *cx)
                .await)?;
        if count < 2 {
            return Err(refused("source_id", "a channel's only source cannot be split off"));
        }
        let (name, group): (String, Option<i64>) =
            on_tx!(&mut tx, |cx| sqlx::query_as("SELECT name, group_id FROM lineup_channels WHERE id = $1")
                .bind(channel)
                .fetch_one(&mut *cx)
                .await)?;
        let number = next_number(&mut tx.conn()).await?;
        let new_id: i64 = on_tx!(&mut tx, |cx| {
            sqlx::query_scalar(
            "INSERT INTO lineup_channels (number, name, group_id, logo, tvg_id, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(number)
        .bind(stream_name.filter(|n| !n.trim().is_empty()).unwrap_or(name))
        .bind(group)
        .bind(logo)
        .bind(tvg.filter(|t| !t.trim().is_empty()))
        .bind(crate::store::now())
        .fetch_one(&mut *cx)
        .await
        })?;
        on_tx!(&mut tx, |cx| sqlx::query("UPDATE lineup_sources SET channel_id = $1, position = 0 WHERE id = $2")
            .bind(new_id)
            .bind(source)
            .execute(&mut *cx)
            .await
            .map(|r| r.rows_affected()))?;
        compact_positions(&mut tx.conn(), channel).await?;
        // An inserted lineup row: no trigger sees inserts (0011_live_listing.sql).
        crate::outputs::mark_listing_stale(&mut tx.conn()).await?;
        tx.commit().await?;
        self.channel(new_id).await
    }

    /// Puts a channel's sources in this order (source ids, every one exactly
    /// once) and turns automatic ranking off; `None` turns it back on.
    pub async fn order_sources(&self, channel: i64, order: Option<&[i64]>) -> Result<Channel, CatalogError> {
        let mut tx = self.write_tx().await?;
        channel_exists(&mut tx.conn(), channel).await?;
        match order {
            None => {
                on_tx!(&mut tx, |cx| sqlx::query("UPDATE lineup_channels SET auto_order = TRUE WHERE id = $1")
                    .bind(channel)
                    .execute(&mut *cx)
                    .await
                    .map(|r| r.rows_affected()))?;
            }
            Some(order) => {
                let mut have: Vec<i64> =
                    on_tx!(&mut tx, |cx| sqlx::query_scalar("SELECT id FROM lineup_sources WHERE channel_id = $1")
                        .bind(channel)
                        .fetch_all(&mut *cx)
                        .await)?;
                let mut want = order.to_vec();
                have.sort_unstable();
                want.sort_unstable();
                if have != want {
                    return Err(refused(
                        "sources",
                        format!("must list each of the channel's source ids exactly once: {have:?}"),
                    ));
                }
                for (i, s) in order.iter().enumerate() {
                    on_tx!(&mut tx, |cx| sqlx::query("UPDATE lineup_sources SET position = $1 WHERE id = $2")
                        .bind(i as i64)
                        .bind(s)
                        .execute(&mut *cx)
                        .await
                        .map(|r| r.rows_affected()))?;
                }
                on_tx!(&mut tx, |cx| sqlx::query("UPDATE lineup_channels SET auto_order = FALSE WHERE id = $1")
                    .bind(channel)
                    .execute(&mut *cx)
                    .await
                    .map(|r| r.rows_affected()))?;
            }
        }
        tx.commit().await?;
        self.channel(channel).await
    }

    /// Adds an unassigned stream to a channel as its last source. A stream
    /// that already is a source: a 4xx naming `stream_id` (merge instead).
    pub async fn add_source(&self, channel: i64, stream_id: i64) -> Result<Channel, CatalogError> {
        let mut tx = self.write_tx().await?;
        channel_exists(&mut tx.conn(), channel).await?;
        let holder: Option<i64> =
            on_tx!(&mut tx, |cx| sqlx::query_scalar("SELECT channel_id FROM lineup_sources WHERE stream_id = $1")
                .bind(stream_id)
                .fetch_optional(&mut *cx)
                .await)?;
        if let Some(h) = holder {
            return Err(refused(
                "stream_id",
                format!("stream {stream_id} already is a source of channel {h} (merge the channels instead)"),
            ));
        }
        let n = on_tx!(&mut tx, |cx| {
            sqlx::query(
            "INSERT INTO lineup_sources (channel_id, stream_id, provider_id, upstream_key, tvg_id, norm_name, position)
             SELECT $1, s.id, s.provider_id, s.upstream_key, s.tvg_id, s.norm_name,
                    (SELECT COALESCE(MAX(position), -1) + 1 FROM lineup_sources WHERE channel_id = $1)
             FROM streams s WHERE s.id = $2",
        )
        .bind(channel)
        .bind(stream_id)
        .execute(&mut *cx)
        .await.map(|r| r.rows_affected())
        })?;
        if n == 0 {
            return Err(refused("stream_id", format!("no live stream with id {stream_id}")));
        }
        // An inserted lineup row: no trigger sees inserts (0011_live_listing.sql).
        crate::outputs::mark_listing_stale(&mut tx.conn()).await?;
        tx.commit().await?;
        self.channel(channel).await
    }

    /// Makes an unassigned stream a channel of its own (next free number,
    /// a group of its provider group's name).
    pub async fn create_channel_from_stream(&self, stream_id: i64) -> Result<Channel, CatalogError> {
        let mut tx = self.write_tx().await?;
        let holder: Option<i64> =
            on_tx!(&mut tx, |cx| sqlx::query_scalar("SELECT channel_id FROM lineup_sources WHERE stream_id = $1")
                .bind(stream_id)
                .fetch_optional(&mut *cx)
                .await)?;
        if let Some(h) = holder {
            return Err(refused("stream_id", format!("stream {stream_id} already is a source of channel {h}")));
        }
        type StreamRow = (String, Option<String>, Option<String>, Option<String>);
        let row: Option<StreamRow> = on_tx!(&mut tx, |cx| {
            sqlx::query_as(
            "SELECT s.name, s.logo, s.tvg_id, g.name FROM streams s LEFT JOIN groups g ON g.id = s.group_id WHERE s.id = $1",
        )
        .bind(stream_id)
        .fetch_optional(&mut *cx)
        .await
        })?;
        let Some((name, logo, tvg, group)) = row else {
            return Err(refused("stream_id", format!("no live stream with id {stream_id}")));
        };
        let group_id: Option<i64> = match group {
            Some(g) => Some(on_tx!(&mut tx, |cx| {
                sqlx::query_scalar(
                    "INSERT INTO lineup_groups (name, position) VALUES ($1, (SELECT COALESCE(MAX(position), -1) + 1 FROM lineup_groups))
                     ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id",
                )
                .bind(g)
                .fetch_one(&mut *cx)
                .await
            })?),
            None => None,
        };
        let number = next_number(&mut tx.conn()).await?;
        let id: i64 = on_tx!(&mut tx, |cx| {
            sqlx::query_scalar(
            "INSERT INTO lineup_channels (number, name, group_id, logo, tvg_id, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(number)
        .bind(if name.trim().is_empty() { format!("Channel {number}") } else { name })
        .bind(group_id)
        .bind(logo)
        .bind(tvg.filter(|t| !t.trim().is_empty()))
        .bind(crate::store::now())
        .fetch_one(&mut *cx)
        .await
        })?;
        on_tx!(&mut tx, |cx| sqlx::query(
            "INSERT INTO lineup_sources (channel_id, stream_id, provider_id, upstream_key, tvg_id, norm_name, position)
             SELECT $1, s.id, s.provider_id, s.upstream_key, s.tvg_id, s.norm_name, 0 FROM streams s WHERE s.id = $2",
        )
        .bind(id)
        .bind(stream_id)
        .execute(&mut *cx)
        .await
        .map(|r| r.rows_affected()))?;
        // An inserted lineup row: no trigger sees inserts (0011_live_listing.sql).
        crate::outputs::mark_listing_stale(&mut tx.conn()).await?;
        tx.commit().await?;
        self.channel(id).await
    }

    /// Deletes a lineup channel (its streams become unassigned).
    pub async fn delete_channel(&self, id: i64) -> Result<(), CatalogError> {
        let n = on_db!(self.db(), |cx| sqlx::query("DELETE FROM lineup_channels WHERE id = $1")
            .bind(id)
            .execute(cx)
            .await
            .map(|r| r.rows_affected()))?;
        if n == 0 {
            return Err(not_found("channel", id));
        }
        Ok(())
    }

    /// Numbers a group's channels from `start` on, in their current order
    /// ("number this group from 101"). A number that a channel outside the
    /// group holds: a 4xx naming `start`, nothing changed.
    pub async fn renumber_group(&self, group: i64, start: i64) -> Result<Vec<Channel>, CatalogError> {
        check_number("start", start)?;
        let mut tx = self.write_tx().await?;
        let found: Option<i64> =
            on_tx!(&mut tx, |cx| sqlx::query_scalar("SELECT id FROM lineup_groups WHERE id = $1")
                .bind(group)
                .fetch_optional(&mut *cx)
                .await)?;
        if found.is_none() {
            return Err(not_found("group", group));
        }
        let ids: Vec<i64> = on_tx!(&mut tx, |cx| sqlx::query_scalar(
            "SELECT id FROM lineup_channels WHERE group_id = $1 ORDER BY number"
        )
        .bind(group)
        .fetch_all(&mut *cx)
        .await)?;
        let end = start + ids.len() as i64 - 1;
        if end > MAX_NUMBER {
            return Err(refused(
                "start",
                format!("the group's {} channels from {start} would end at {end}, above {MAX_NUMBER}", ids.len()),
            ));
        }
        let clash: Option<(i64, i64, String)> = on_tx!(&mut tx, |cx| {
            sqlx::query_as(
            "SELECT number, id, name FROM lineup_channels WHERE number BETWEEN $1 AND $2 AND COALESCE(group_id, -1) <> $3
             ORDER BY number LIMIT 1",
        )
        .bind(start)
        .bind(end)
        .bind(group)
        .fetch_optional(&mut *cx)
        .await
        })?;
        if let Some((n, id, name)) = clash {
            return Err(refused(
                "start",
                format!(
                    "numbers {start}–{end} are needed, and {n} is taken by channel {id} ({name}) outside the group"
                ),
            ));
        }
        // Out of the way first, so that no two channels ever share a number.
        on_tx!(&mut tx, |cx| sqlx::query(
            "UPDATE lineup_channels SET number = number + 4000000000 WHERE group_id = $1"
        )
        .bind(group)
        .execute(&mut *cx)
        .await
        .map(|r| r.rows_affected()))?;
        let rows: Vec<(i64, i64, i64)> = ids.iter().enumerate().map(|(i, id)| (*id, start + i as i64, 0)).collect();
        scratch(&mut tx.conn(), &rows).await?;
        exec_temp(
            &mut tx.conn(),
            "UPDATE lineup_channels SET number = t.b FROM temp.lineup_scratch t WHERE t.a = lineup_channels.id",
            &[],
        )
        .await?;
        tx.commit().await?;
        let mut out = Vec::new();
        for id in ids {
            out.push(self.channel(id).await?);
        }
        Ok(out)
    }

    /// Applies one change to many channels (by ids or by filter); returns
    /// how many changed. Unknown ids or group: a 4xx, nothing changed.
    pub async fn bulk_change(&self, change: &BulkChange) -> Result<u64, CatalogError> {
        if change.hidden.is_none() && change.group_id.is_none() {
            return Err(invalid("hidden", "say what to change: hidden and/or group_id"));
        }
        let ids = match &change.ids {
            Some(ids) => ids.clone(),
            None => {
                self.channel_ids(&crate::model::ChannelQuery {
                    group: change.group.clone(),
                    group_id: change.filter_group_id,
                    q: change.q.clone(),
                    ..Default::default()
                })
                .await?
            }
        };
        let mut tx = self.write_tx().await?;
        if let Some(Some(g)) = change.group_id {
            group_exists(&mut tx.conn(), "group_id", g).await?;
        }
        let rows: Vec<(i64, i64, i64)> = ids.iter().map(|id| (*id, 0, 0)).collect();
        scratch(&mut tx.conn(), &rows).await?;
        let unknown: Option<i64> = on_tx!(&mut tx, |cx| sqlx::query_scalar(&temp_sql(
            dialect!(sqlite: false, postgres: true),
            "SELECT a FROM temp.lineup_scratch WHERE a NOT IN (SELECT id FROM lineup_channels) LIMIT 1",
        ))
        .fetch_optional(&mut *cx)
        .await)?;
        if let Some(u) = unknown {
            return Err(refused("ids", format!("no channel with id {u}")));
        }
        let n = on_tx!(&mut tx, |cx| {
            sqlx::query(&temp_sql(
            dialect!(sqlite: false, postgres: true),
            "UPDATE lineup_channels SET hidden = COALESCE($1, hidden), group_id = CASE WHEN $2 THEN $3 ELSE group_id END
             WHERE id IN (SELECT a FROM temp.lineup_scratch)",
        ))
        .bind(change.hidden)
        .bind(change.group_id.is_some())
        .bind(change.group_id.flatten())
        .execute(&mut *cx)
        .await.map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(n)
    }

    /// Creates a lineup group (at the end unless a position is given).
    pub async fn create_group(&self, patch: &GroupPatch) -> Result<GroupCount, CatalogError> {
        let name = clean_name("name", patch.name.as_deref().unwrap_or_default())?;
        let id: Result<i64, sqlx::Error> = on_db!(self.db(), |cx| {
            sqlx::query_scalar(
            "INSERT INTO lineup_groups (name, position, hidden)
             VALUES ($1, (SELECT COALESCE(MAX(position), -1) + 1 FROM lineup_groups), COALESCE($2, FALSE)) RETURNING id",
        )
        .bind(&name)
        .bind(patch.hidden)
        .fetch_one(cx)
        .await
        });
        let id = id.map_err(|e| unique_group(e, &name))?;
        if let Some(p) = patch.position {
            self.move_group(id, p).await?;
        }
        self.group(id).await
    }

    /// Moves a group to place `position` (0 = first; past the end = last);
    /// the others keep their order around it.
    async fn move_group(&self, id: i64, position: i64) -> Result<(), CatalogError> {
        if position < 0 {
            return Err(invalid("position", format!("0 is the first place (got {position})")));
        }
        let mut tx = self.write_tx().await?;
        let mut ids: Vec<i64> =
            on_tx!(&mut tx, |cx| sqlx::query_scalar("SELECT id FROM lineup_groups ORDER BY position, id")
                .fetch_all(&mut *cx)
                .await)?;
        ids.retain(|g| *g != id);
        ids.insert((position as usize).min(ids.len()), id);
        let rows: Vec<(i64, i64, i64)> = ids.iter().enumerate().map(|(i, g)| (*g, i as i64, 0)).collect();
        scratch(&mut tx.conn(), &rows).await?;
        exec_temp(
            &mut tx.conn(),
            "UPDATE lineup_groups SET position = t.b FROM temp.lineup_scratch t WHERE t.a = lineup_groups.id",
            &[],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// One lineup group with its channel count.
    pub async fn group(&self, id: i64) -> Result<GroupCount, CatalogError> {
        self.channel_groups().await?.into_iter().find(|g| g.id == id).ok_or_else(|| not_found("group", id))
    }

    /// Renames, moves (to place `position`, 0 = first) or hides a lineup group.
    pub async fn update_group(&self, id: i64, patch: &GroupPatch) -> Result<GroupCount, CatalogError> {
        self.group(id).await?;
        let name = patch.name.as_deref().map(|n| clean_name("name", n)).transpose()?;
        if patch.position.is_some_and(|p| p < 0) {
            return Err(invalid("position", "0 is the first place"));
        }
        on_db!(self.db(), |cx| sqlx::query(
            "UPDATE lineup_groups SET name = COALESCE($1, name), hidden = COALESCE($2, hidden) WHERE id = $3"
        )
        .bind(&name)
        .bind(patch.hidden)
        .bind(id)
        .execute(cx)
        .await
        .map(|r| r.rows_affected()))
        .map_err(|e| unique_group(e, name.as_deref().unwrap_or_default()))?;
        if let Some(p) = patch.position {
            self.move_group(id, p).await?;
        }
        self.group(id).await
    }

    /// Deletes a lineup group; its channels stay, without a group.
    pub async fn delete_group(&self, id: i64) -> Result<(), CatalogError> {
        let n = on_db!(self.db(), |cx| sqlx::query("DELETE FROM lineup_groups WHERE id = $1")
            .bind(id)
            .execute(cx)
            .await
            .map(|r| r.rows_affected()))?;
        if n == 0 {
            return Err(not_found("group", id));
        }
        Ok(())
    }

    /// Streams no lineup channel holds, by provider and position (at most `limit`).
    pub async fn unassigned_streams(&self, limit: u32) -> Result<Vec<UnassignedStream>, CatalogError> {
        Ok(on_db!(self.db(), |cx| {
            sqlx::query_as(
            "SELECT s.id AS stream_id, s.provider_id, p.name AS provider, s.name, g.name AS \"group\", s.tvg_id FROM streams s
             JOIN providers p ON p.id = s.provider_id LEFT JOIN groups g ON g.id = s.group_id
             WHERE NOT EXISTS (SELECT 1 FROM lineup_sources ls WHERE ls.stream_id = s.id)
             ORDER BY p.priority, p.id, s.position LIMIT $1",
        )
        .bind(limit as i64)
        .fetch_all(cx)
        .await
        })?)
    }
}

fn unique_group(e: sqlx::Error, name: &str) -> CatalogError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            refused("name", format!("a group named {name:?} exists"))
        }
        _ => e.into(),
    }
}
