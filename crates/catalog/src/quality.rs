//! Source quality: the relay's measurements of live sources (issue 13), kept per source — the latest one, and a
//! history of every one for [`KEEP_SECONDS`]. The catalog does not know the relay's report type: it stores the
//! report as JSON, with the few fields worth searching and sorting on in columns of their own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sqlx::QueryBuilder;
use tokio::sync::{mpsc, oneshot};

pub use tunerpool_domain::quality::{score, QualityPolicy, QualityWeights, SourceQuality};

use crate::db::{dialect, on_db, on_tx, Db, RowGet};
use crate::error::CatalogError;
use crate::store::Store;

/// Connections that ended within this many seconds count towards a
/// source's stability: a week.
pub const STABILITY_WINDOW: i64 = 7 * 24 * 3600;

/// How long the history keeps a measurement: 30 days.
pub const KEEP_SECONDS: i64 = 30 * 24 * 3600;

/// The format of a source as its latest measurement found it: what an
/// HDHomeRun lineup announces (`HD`, `VideoCodec`, `AudioCodec`) so that apps
/// can tell HD channels and pick a player before tuning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceFormat {
    /// Picture height in lines.
    pub height: Option<u32>,
    /// Video codec as ffprobe names it (`h264`, `hevc`, `mpeg2video`, ...).
    pub video_codec: Option<String>,
    /// The first audio track's codec as ffprobe names it (`aac`, `ac3`, `mp2`, ...).
    pub audio_codec: Option<String>,
}

/// A measurement of the source a stream is, to keep; exists so that the store can take the relay's report without
/// depending on the relay (the `http` crate's adapter builds it).
#[derive(Debug, Clone, PartialEq)]
pub struct NewQuality {
    /// The stream that was played; the measurement is kept under its identity (provider, upstream key).
    pub stream_id: i64,
    /// Unix seconds.
    pub measured_at: i64,
    /// `pending`, `ok`, `not_ts`, `no_video` or `unreadable`.
    pub verdict: String,
    pub video_codec: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub fps: Option<f64>,
    /// All bits per second.
    pub bitrate: Option<i64>,
    /// The whole measurement, as JSON.
    pub report: String,
}

/// A kept measurement; exists so that the API can show a source's latest one (and tests read the history).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredQuality {
    pub measured_at: i64,
    pub verdict: String,
    pub video_codec: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub fps: Option<f64>,
    pub bitrate: Option<i64>,
    /// The whole measurement, as JSON.
    pub report: String,
}

const COLUMNS: &str = "measured_at, verdict, video_codec, width, height, fps, bitrate, report";

fn stored(row: &impl RowGet) -> Result<StoredQuality, sqlx::Error> {
    Ok(StoredQuality {
        measured_at: row.col("measured_at")?,
        verdict: row.col("verdict")?,
        video_codec: row.col("video_codec")?,
        width: row.col("width")?,
        height: row.col("height")?,
        fps: row.col("fps")?,
        bitrate: row.col("bitrate")?,
        report: row.col("report")?,
    })
}

/// Measurements waiting for the writer; more are dropped (and counted): a live session's report is worth less than
/// the session never waiting for the store.
pub const QUALITY_QUEUE: usize = 1024;

/// Measurements the writer puts in one transaction.
const QUALITY_BATCH: usize = 128;

/// Where the writer answers a caller that waits for its measurement to be written (or why it was not).
type Written = oneshot::Sender<Result<(), CatalogError>>;

/// What the quality writer task is asked to do.
enum Job {
    /// Keep a measurement; answer on the sender when it was written (or why not), if one was given.
    Write(NewQuality, Option<Written>),
    /// Answer once everything queued before is written.
    Flush(oneshot::Sender<()>),
}

/// The sending side of the one task that writes measurements, held by the [`Store`].
///
/// Why one task: every live connection's reports used to be written by a task of their own, each taking a pool
/// connection for its read and then another for its deferred transaction, which waits for SQLite's write lock in
/// its busy handler while holding the connection. Fifty channels starting together (a benchmark's ramp, a
/// restart) reported together ten seconds later and held all four connections of the pool waiting on each other,
/// so a join's cache miss waited seconds for a connection (BENCHMARKS.md, issue 16: "slow acquire > 2 s" at 2000
/// viewers). The writer holds one connection at a time, writes what is queued in one `BEGIN IMMEDIATE`
/// transaction, and a full queue drops a report instead of making anyone wait.
#[derive(Debug)]
pub(crate) struct QualityWriter {
    jobs: mpsc::Sender<Job>,
    dropped: Arc<AtomicU64>,
}

impl QualityWriter {
    /// Starts the writer task on `db`; it ends when the writer is dropped (with the last [`Store`] clone),
    /// after writing what is queued.
    pub(crate) fn start(db: Db, capacity: usize) -> QualityWriter {
        let (jobs, rx) = mpsc::channel(capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(write_quality(db, rx, dropped.clone()));
        QualityWriter { jobs, dropped }
    }
}

/// The writer task: batches of up to [`QUALITY_BATCH`] measurements, one transaction each.
async fn write_quality(db: Db, mut rx: mpsc::Receiver<Job>, dropped: Arc<AtomicU64>) {
    let mut jobs = Vec::with_capacity(QUALITY_BATCH);
    let mut reported = 0u64;
    while rx.recv_many(&mut jobs, QUALITY_BATCH).await > 0 {
        let mut writes = Vec::with_capacity(jobs.len());
        let mut flushes = Vec::new();
        for job in jobs.drain(..) {
            match job {
                Job::Write(q, done) => writes.push((q, done)),
                Job::Flush(done) => flushes.push(done),
            }
        }
        if !writes.is_empty() {
            match insert_quality(&db, &writes).await {
                Ok(found) => {
                    for ((q, done), found) in writes.into_iter().zip(found) {
                        let answer = match found {
                            true => Ok(()),
                            false => Err(CatalogError::NotFound { what: "stream", id: q.stream_id.to_string() }),
                        };
                        if let Some(done) = done {
                            let _ = done.send(answer);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, measurements = writes.len(), "cannot record source measurements");
                    let e = CatalogError::from(e);
                    for (_, done) in writes {
                        if let Some(done) = done {
                            let _ = done.send(Err(CatalogError::Internal(e.to_string())));
                        }
                    }
                }
            }
        }
        let total = dropped.load(Ordering::Relaxed);
        if total > reported {
            tracing::warn!(
                dropped = total - reported,
                total,
                "source measurements were dropped: the writer's queue was full"
            );
            reported = total;
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Writes `writes` in one transaction: each becomes its source's latest (unless a newer one is there already) and
/// joins the history; then the history older than [`KEEP_SECONDS`] before the newest of them goes. Returns, per
/// measurement, whether its stream was found (one that is not is skipped, the others are written).
async fn insert_quality(db: &Db, writes: &[(NewQuality, Option<Written>)]) -> Result<Vec<bool>, sqlx::Error> {
    // On SQLite the write lock at once (waiting its turn), not a deferred read turned write that another
    // writer's commit in between makes fail ([`Db::write_tx`]).
    let mut tx = db.write_tx().await?;
    let mut found = Vec::with_capacity(writes.len());
    let mut newest = i64::MIN;
    for (q, _) in writes {
        let identity: Option<(i64, String)> =
            on_tx!(&mut tx, |c| sqlx::query_as("SELECT provider_id, upstream_key FROM streams WHERE id = $1")
                .bind(q.stream_id)
                .fetch_optional(&mut *c)
                .await)?;
        let Some((provider_id, key)) = identity else {
            found.push(false);
            continue;
        };
        for table in ["source_quality", "source_quality_history"] {
            let conflict = if table == "source_quality" {
                " ON CONFLICT (provider_id, upstream_key) DO UPDATE SET measured_at = excluded.measured_at, \
                 verdict = excluded.verdict, video_codec = excluded.video_codec, width = excluded.width, \
                 height = excluded.height, fps = excluded.fps, bitrate = excluded.bitrate, report = excluded.report \
                 WHERE excluded.measured_at >= source_quality.measured_at"
            } else {
                ""
            };
            on_tx!(&mut tx, |c| {
                sqlx::query(&format!(
                "INSERT INTO {table} (provider_id, upstream_key, {COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10){conflict}"
            ))
            .bind(provider_id)
            .bind(&key)
            .bind(q.measured_at)
            .bind(&q.verdict)
            .bind(&q.video_codec)
            .bind(q.width)
            .bind(q.height)
            .bind(q.fps)
            .bind(q.bitrate)
            .bind(&q.report)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected())
            })?;
        }
        newest = newest.max(q.measured_at);
        found.push(true);
    }
    if newest != i64::MIN {
        on_tx!(&mut tx, |c| sqlx::query("DELETE FROM source_quality_history WHERE measured_at < $1")
            .bind(newest - KEEP_SECONDS)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))?;
    }
    tx.commit().await?;
    Ok(found)
}

impl Store {
    /// Keeps a measurement: it becomes its source's latest (unless a newer one is there already) and joins the
    /// history, whose measurements older than [`KEEP_SECONDS`] before this one are removed. A stream that is not
    /// (or no longer) in the catalog: `NotFound`. Written by the store's one quality writer (with whatever else
    /// is queued); returns once it is written.
    pub async fn record_quality(&self, q: &NewQuality) -> Result<(), CatalogError> {
        let (done, written) = oneshot::channel();
        let gone = || CatalogError::Internal("the quality writer has stopped".into());
        self.quality_writer().jobs.send(Job::Write(q.clone(), Some(done))).await.map_err(|_| gone())?;
        written.await.map_err(|_| gone())?
    }

    /// Queues a measurement for the quality writer and returns at once: for callers that must neither wait for
    /// the database nor fail because of it (a live session's reports). When the queue is full the measurement is
    /// dropped and counted ([`Store::dropped_measurements`]).
    pub fn note_quality(&self, q: NewQuality) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.quality_writer().jobs.try_send(Job::Write(q, None)) {
            self.quality_writer().dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Measurements dropped since the store was opened because the quality writer's queue was full.
    pub fn dropped_measurements(&self) -> u64 {
        self.quality_writer().dropped.load(Ordering::Relaxed)
    }

    /// Waits until every measurement queued before this call is written.
    pub async fn flush_quality(&self) {
        let (done, written) = oneshot::channel();
        if self.quality_writer().jobs.send(Job::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }

    /// The latest measurement of each of these streams' sources that has one, by stream id.
    pub async fn latest_quality(&self, stream_ids: &[i64]) -> Result<HashMap<i64, StoredQuality>, CatalogError> {
        let mut out = HashMap::new();
        // Well under SQLite's limit of bound parameters per statement.
        for ids in stream_ids.chunks(500) {
            on_db!(self.db(), |p| {
                let mut qb: QueryBuilder<Backend> = QueryBuilder::new(
                "SELECT s.id, q.measured_at, q.verdict, q.video_codec, q.width, q.height, q.fps, q.bitrate, q.report \
                 FROM streams s JOIN source_quality q ON q.provider_id = s.provider_id \
                 AND q.upstream_key = s.upstream_key WHERE s.id IN (",
            );
                let mut list = qb.separated(", ");
                for id in ids {
                    list.push_bind(*id);
                }
                qb.push(")");
                for row in qb.build().fetch_all(p).await? {
                    out.insert(row.col::<i64>("id")?, stored(&row)?);
                }
            });
        }
        Ok(out)
    }

    /// What a tuner's lineup announces of these streams' sources, by stream
    /// id, for those whose latest measurement found a picture: its height and
    /// codecs as the relay measured them. One query for a whole page of a
    /// lineup (the relay's report keeps the audio tracks; the first is taken).
    pub async fn source_formats(&self, stream_ids: &[i64]) -> Result<HashMap<i64, SourceFormat>, CatalogError> {
        let mut out = HashMap::new();
        for ids in stream_ids.chunks(500) {
            on_db!(self.db(), |p| {
                let audio = dialect!(
                    sqlite: "json_extract(q.report, '$.report.audio[0].codec')",
                    postgres: "(q.report::jsonb #>> '{report,audio,0,codec}')",
                );
                let mut qb: QueryBuilder<Backend> = QueryBuilder::new(format!(
                    "SELECT s.id, q.height, q.video_codec, {audio} AS audio_codec \
                 FROM streams s JOIN source_quality q ON q.provider_id = s.provider_id \
                 AND q.upstream_key = s.upstream_key WHERE q.verdict = 'ok' AND s.id IN ("
                ));
                let mut list = qb.separated(", ");
                for id in ids {
                    list.push_bind(*id);
                }
                qb.push(")");
                for row in qb.build().fetch_all(p).await? {
                    let format = SourceFormat {
                        height: row.col::<Option<i64>>("height")?.and_then(|v| u32::try_from(v).ok()),
                        video_codec: row.col("video_codec")?,
                        // Not a string in a report this version did not write: unknown.
                        audio_codec: row.col::<Option<String>>("audio_codec").ok().flatten(),
                    };
                    out.insert(row.col::<i64>("id")?, format);
                }
            });
        }
        Ok(out)
    }

    /// A stream's source's kept measurements, oldest first.
    pub async fn quality_history(&self, stream_id: i64) -> Result<Vec<StoredQuality>, CatalogError> {
        self.quality_history_in(Some(stream_id), crate::history::Range { from: 0, to: i64::MAX }, u32::MAX).await
    }

    /// A stream's source's measurements (every source's, with `None`) taken within `range` (unix seconds,
    /// inclusive), oldest first, at most `limit` (the latest ones).
    pub async fn quality_history_in(
        &self,
        stream_id: Option<i64>,
        range: crate::history::Range,
        limit: u32,
    ) -> Result<Vec<StoredQuality>, CatalogError> {
        on_db!(self.db(), |p| {
            let rows = sqlx::query(&format!(
            "SELECT * FROM (SELECT {} FROM streams s JOIN source_quality_history q ON q.provider_id = s.provider_id \
             AND q.upstream_key = s.upstream_key WHERE ($1 IS NULL OR s.id = $1) AND q.measured_at BETWEEN $2 AND $3 \
             ORDER BY q.measured_at DESC, q.id DESC LIMIT $4) latest ORDER BY measured_at",
            COLUMNS.split(", ").map(|c| format!("q.{c}")).collect::<Vec<_>>().join(", ")
        ))
            .bind(stream_id)
            .bind(range.from)
            .bind(range.to)
            .bind(i64::from(limit))
            .fetch_all(p)
            .await?;
            Ok(rows.iter().map(stored).collect::<Result<_, _>>()?)
        })
    }
    /// What the score of each of these streams' sources rests on
    /// ([`tunerpool_domain::quality::SourceQuality`]), by stream id, for those
    /// measured: the latest measurement, its time to the first keyframe
    /// (first byte plus keyframe), and the failures per hour of playback over
    /// the connections that ended in the last [`STABILITY_WINDOW`] seconds.
    pub async fn source_quality(&self, stream_ids: &[i64]) -> Result<HashMap<i64, SourceQuality>, CatalogError> {
        let since = tunerpool_domain::now() - STABILITY_WINDOW;
        let mut out = HashMap::new();
        for ids in stream_ids.chunks(500) {
            on_db!(self.db(), |p| {
                // The report's numbers, read from its JSON: json_extract in
                // SQLite; in PostgreSQL the text at a path of the jsonb, cast
                // (through NUMERIC, which takes a fraction too) to BIGINT, and
                // `failed` (a JSON boolean) counted as 0 or 1.
                let (bitrate, ttfb, keyframe, failed, streamed, ended) = dialect!(
                    sqlite: (
                        "json_extract(q.report, '$.report.video.bitrate')",
                        "json_extract(q.report, '$.ttfb_ms')",
                        "json_extract(q.report, '$.report.time_to_first_keyframe_ms')",
                        "SUM(json_extract(report, '$.failed'))",
                        "SUM(json_extract(report, '$.streamed_ms'))",
                        "json_extract(report, '$.ended')",
                    ),
                    postgres: (
                        "CAST(CAST(q.report::jsonb #>> '{report,video,bitrate}' AS NUMERIC) AS BIGINT)",
                        "CAST(CAST(q.report::jsonb ->> 'ttfb_ms' AS NUMERIC) AS BIGINT)",
                        "CAST(CAST(q.report::jsonb #>> '{report,time_to_first_keyframe_ms}' AS NUMERIC) AS BIGINT)",
                        "CAST(SUM(CASE WHEN (report::jsonb -> 'failed') = 'true'::jsonb THEN 1 ELSE 0 END) AS BIGINT)",
                        "CAST(SUM(CAST(report::jsonb ->> 'streamed_ms' AS NUMERIC)) AS BIGINT)",
                        "(report::jsonb ->> 'ended')",
                    ),
                );
                let mut qb: QueryBuilder<Backend> = QueryBuilder::new(format!(
                    "SELECT s.id, q.verdict, q.video_codec, q.width, q.height, q.fps, \
                 COALESCE({bitrate}, q.bitrate) AS bitrate, \
                 {ttfb} AS ttfb_ms, \
                 {keyframe} AS keyframe_ms, \
                 ended.failures, ended.streamed_ms \
                 FROM streams s JOIN source_quality q ON q.provider_id = s.provider_id \
                 AND q.upstream_key = s.upstream_key \
                 LEFT JOIN (SELECT provider_id, upstream_key, \
                     {failed} AS failures, \
                     {streamed} AS streamed_ms \
                   FROM source_quality_history \
                   WHERE measured_at >= "
                ));
                qb.push_bind(since);
                qb.push(format!(
                    " AND {ended} IS NOT NULL GROUP BY provider_id, upstream_key) ended \
                 ON ended.provider_id = q.provider_id AND ended.upstream_key = q.upstream_key \
                 WHERE s.id IN ("
                ));
                let mut list = qb.separated(", ");
                for id in ids {
                    list.push_bind(*id);
                }
                qb.push(")");
                for row in qb.build().fetch_all(p).await? {
                    let failures: Option<i64> = row.col("failures")?;
                    let streamed_ms: Option<i64> = row.col("streamed_ms")?;
                    let ttfb: Option<i64> = row.col("ttfb_ms")?;
                    let keyframe: Option<i64> = row.col("keyframe_ms")?;
                    let quality = SourceQuality {
                        verdict: row.col("verdict")?,
                        video_codec: row.col("video_codec")?,
                        width: row.col::<Option<i64>>("width")?.and_then(|v| u32::try_from(v).ok()),
                        height: row.col::<Option<i64>>("height")?.and_then(|v| u32::try_from(v).ok()),
                        fps: row.col("fps")?,
                        bitrate: row.col::<Option<i64>>("bitrate")?.and_then(|v| u64::try_from(v).ok()),
                        start_ms: match (ttfb, keyframe) {
                            (None, None) => None,
                            (a, b) => Some(a.unwrap_or(0).max(0) as u64 + b.unwrap_or(0).max(0) as u64),
                        },
                        faults_per_hour: streamed_ms.map(|ms| {
                            // A floor of a quarter hour: one failure in a short
                            // session is not a hundred per hour.
                            let hours = (ms.max(0) as f64 / 3_600_000.0).max(0.25);
                            failures.unwrap_or(0).max(0) as f64 / hours
                        }),
                    };
                    out.insert(row.col::<i64>("id")?, quality);
                }
            });
        }
        Ok(out)
    }
}

/// A lineup source to probe: its stream, provider and channel; exists so that the relay's probe scheduler and the
/// API's "probe this channel / group" get the same thing from the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceRef {
    pub stream_id: i64,
    pub provider_id: i64,
    pub channel_id: i64,
}

fn source_ref(row: &impl RowGet) -> Result<SourceRef, sqlx::Error> {
    Ok(SourceRef {
        stream_id: row.col("stream_id")?,
        provider_id: row.col("provider_id")?,
        channel_id: row.col("channel_id")?,
    })
}

/// Which lineup sources [`Store::sources_to_probe`] lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeScope {
    Channel(i64),
    Group(i64),
}

impl Store {
    /// Up to `limit` lineup sources worth probing, best first: never measured, then found dead, then the oldest
    /// measurements; only those last measured before `older_than` (unix seconds), with a stream, of channels
    /// that are not hidden (nor their group) and of enabled providers.
    pub async fn probe_candidates(&self, older_than: i64, limit: i64) -> Result<Vec<SourceRef>, CatalogError> {
        on_db!(self.db(), |p| {
            let rows = sqlx::query(
                "SELECT ls.stream_id, ls.provider_id, ls.channel_id
             FROM lineup_sources ls
             JOIN lineup_channels c ON c.id = ls.channel_id
             LEFT JOIN lineup_groups g ON g.id = c.group_id
             JOIN providers p ON p.id = ls.provider_id
             LEFT JOIN source_quality q ON q.provider_id = ls.provider_id AND q.upstream_key = ls.upstream_key
             WHERE ls.stream_id IS NOT NULL AND NOT c.hidden AND NOT COALESCE(g.hidden, FALSE) AND p.enabled
               AND (q.measured_at IS NULL OR q.measured_at < $1)
             ORDER BY q.measured_at IS NOT NULL, COALESCE(q.verdict IN ('ok', 'pending'), FALSE), q.measured_at,
                      c.number, ls.position
             LIMIT $2",
            )
            .bind(older_than)
            .bind(limit)
            .fetch_all(p)
            .await?;
            Ok(rows.iter().map(source_ref).collect::<Result<_, _>>()?)
        })
    }

    /// The sources (with a stream) of a lineup channel or of every channel of a lineup group, in channel
    /// number and source order; `NotFound` for an unknown channel or group.
    pub async fn sources_to_probe(&self, scope: ProbeScope) -> Result<Vec<SourceRef>, CatalogError> {
        let (exists, what, id, filter) = match scope {
            ProbeScope::Channel(id) => ("SELECT 1 FROM lineup_channels WHERE id = $1", "channel", id, "c.id = $1"),
            ProbeScope::Group(id) => ("SELECT 1 FROM lineup_groups WHERE id = $1", "group", id, "c.group_id = $1"),
        };
        on_db!(self.db(), |p| {
            if sqlx::query(exists).bind(id).fetch_optional(p).await?.is_none() {
                return Err(CatalogError::NotFound { what, id: id.to_string() });
            }
            let rows = sqlx::query(&format!(
                "SELECT ls.stream_id, ls.provider_id, ls.channel_id FROM lineup_sources ls
             JOIN lineup_channels c ON c.id = ls.channel_id
             WHERE ls.stream_id IS NOT NULL AND {filter} ORDER BY c.number, ls.position"
            ))
            .bind(id)
            .fetch_all(p)
            .await?;
            Ok(rows.iter().map(source_ref).collect::<Result<_, _>>()?)
        })
    }
}
