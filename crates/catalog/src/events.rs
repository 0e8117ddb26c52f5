//! The events log: what happened that an operator may want to look back at.
//!
//! Logs scroll away and live only as long as the process; the pool's story
//! ("why did channel 5 switch accounts at 21:04?", "since when is account b
//! rejected?") belongs next to the catalog. Events are rows in SQLite, kept
//! to the newest [`KEEP`], written off the hot path (never per chunk), and
//! their messages are built from already-redacted errors: no passwords.
//!
//! Callers that must not wait ([`Store::note`]: live sessions, syncs) hand
//! events to **one writer task** through a bounded queue ([`QUEUE`]); it
//! writes them in batches, one transaction each, so that a burst of events
//! holds one database connection, not all of them. When the queue is full an
//! event is dropped and counted ([`Store::dropped_events`], logged by the
//! writer). [`Store::flush_events`] (and [`Store::close`]) wait until every
//! event noted before has been written.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;
use sqlx::QueryBuilder;
use tokio::sync::{mpsc, oneshot};

use crate::db::{on_db, on_tx, Db, RowGet};
use crate::error::CatalogError;
use crate::store::Store;
pub use tunerpool_domain::event::{Level, NewEvent};

/// How many events are kept.
pub const KEEP: i64 = 10_000;

/// Events waiting for the writer; more are dropped (and counted).
pub const QUEUE: usize = 4096;

/// Events the writer puts in one transaction.
const BATCH: usize = 256;

/// One logged event.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Event {
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    pub level: Level,
    /// `sync`, `account`, `session`, `failover` or `refused`.
    pub kind: String,
    #[serde(serialize_with = "tunerpool_domain::fields::serialize_redacted_text")]
    pub message: String,
    pub provider_id: Option<i64>,
    pub account_id: Option<i64>,
    pub channel_id: Option<i64>,
}

/// Which events to list: newest first, `limit` of them, older than `before`
/// (an event id, for paging), at least `min_level`.
#[derive(Debug, Clone)]
pub struct EventQuery {
    pub limit: u32,
    pub before: Option<i64>,
    pub min_level: Level,
    pub kind: Option<String>,
}

impl Default for EventQuery {
    fn default() -> Self {
        EventQuery { limit: 100, before: None, min_level: Level::Info, kind: None }
    }
}

/// What the writer task is asked to do.
enum Job {
    Write(NewEvent),
    /// Answer once everything queued before is written.
    Flush(oneshot::Sender<()>),
}

/// The sending side of the event writer, held by the [`Store`].
#[derive(Debug)]
pub(crate) struct EventWriter {
    jobs: mpsc::Sender<Job>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Job::Write(_) => "Write",
            Job::Flush(_) => "Flush",
        })
    }
}

impl EventWriter {
    /// Starts the writer task on `pool`; it ends when the writer is dropped
    /// (with the last [`Store`] clone), after writing what is queued.
    pub(crate) fn start(pool: Db, capacity: usize) -> EventWriter {
        let (jobs, rx) = mpsc::channel(capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(write_events(pool, rx, dropped.clone()));
        EventWriter { jobs, dropped }
    }
}

/// The writer task: batches of up to [`BATCH`] events, one transaction each.
async fn write_events(pool: Db, mut rx: mpsc::Receiver<Job>, dropped: Arc<AtomicU64>) {
    let mut jobs = Vec::with_capacity(BATCH);
    let mut events = Vec::with_capacity(BATCH);
    let mut reported = 0u64;
    while rx.recv_many(&mut jobs, BATCH).await > 0 {
        let mut flushes = Vec::new();
        for job in jobs.drain(..) {
            match job {
                Job::Write(e) => events.push(e),
                Job::Flush(done) => flushes.push(done),
            }
        }
        if !events.is_empty() {
            if let Err(e) = insert_events(&pool, &events).await {
                tracing::warn!(error = %e, events = events.len(), "cannot record events");
            }
            events.clear();
        }
        let total = dropped.load(Ordering::Relaxed);
        if total > reported {
            tracing::warn!(dropped = total - reported, total, "events were dropped: the event queue was full");
            reported = total;
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Inserts `events` in one transaction, trimming the log to the newest
/// [`KEEP`] whenever an id crosses a multiple of 100 (so that the cost of a
/// write stays flat).
async fn insert_events(db: &Db, events: &[NewEvent]) -> Result<(), sqlx::Error> {
    let mut tx = db.write_tx().await?;
    on_tx!(&mut tx, |c| {
        let mut qb = QueryBuilder::<Backend>::new(
            "INSERT INTO events (at, level, kind, message, provider_id, account_id, channel_id) ",
        );
        qb.push_values(events, |mut b, e| {
            b.push_bind(e.at)
                .push_bind(e.level.as_str())
                .push_bind(e.kind)
                .push_bind(&e.message)
                .push_bind(e.provider_id)
                .push_bind(e.account_id)
                .push_bind(e.channel_id);
        });
        qb.push(" RETURNING id");
        let ids: Vec<i64> = qb.build().fetch_all(&mut *c).await?.iter().map(|r| r.col(0)).collect::<Result<_, _>>()?;
        if let Some(last) = ids.iter().copied().filter(|id| id % 100 == 0).max() {
            sqlx::query("DELETE FROM events WHERE id <= $1").bind(last - KEEP).execute(&mut *c).await?;
        }
    });
    tx.commit().await
}

impl Store {
    /// Records an event now, trimming the log to the newest [`KEEP`].
    pub async fn record_event(&self, e: &NewEvent) -> Result<(), CatalogError> {
        Ok(insert_events(self.db(), std::slice::from_ref(e)).await?)
    }

    /// Records an event in the background: for callers that must neither
    /// wait for the database nor fail because of it (a live session). When
    /// the writer's queue is full the event is dropped and counted.
    pub fn note(&self, e: NewEvent) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.event_writer().jobs.try_send(Job::Write(e)) {
            self.event_writer().dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events dropped since the store was opened because the writer's queue
    /// was full.
    pub fn dropped_events(&self) -> u64 {
        self.event_writer().dropped.load(Ordering::Relaxed)
    }

    /// Waits until every event noted before this call is written.
    pub async fn flush_events(&self) {
        let (done, written) = oneshot::channel();
        if self.event_writer().jobs.send(Job::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }

    /// Lists events, newest first.
    pub async fn events(&self, q: &EventQuery) -> Result<Vec<Event>, CatalogError> {
        // The levels at or above the minimum, padded to three with the
        // highest: one text for both backends, no JSON or arrays.
        let levels: Vec<&str> = [Level::Info, Level::Warn, Level::Error]
            .into_iter()
            .filter(|l| *l >= q.min_level)
            .map(Level::as_str)
            .collect();
        let level = |i: usize| levels.get(i).or(levels.last()).copied().unwrap_or("error");
        on_db!(self.db(), |p| {
            let rows = sqlx::query(
                "SELECT id, at, level, kind, message, provider_id, account_id, channel_id FROM events \
                 WHERE id < $1 AND level IN ($2, $3, $4) AND ($5 IS NULL OR kind = $5) \
                 ORDER BY id DESC LIMIT $6",
            )
            .bind(q.before.unwrap_or(i64::MAX))
            .bind(level(0))
            .bind(level(1))
            .bind(level(2))
            .bind(q.kind.as_deref())
            .bind(i64::from(q.limit.clamp(1, 1000)))
            .fetch_all(p)
            .await?;
            rows.iter().map(event_from_row).collect::<Result<_, sqlx::Error>>().map_err(Into::into)
        })
    }
}

fn event_from_row(r: &impl RowGet) -> Result<Event, sqlx::Error> {
    Ok(Event {
        id: r.col("id")?,
        at: r.col("at")?,
        level: Level::parse(&r.col::<String>("level")?).unwrap_or(Level::Info),
        kind: r.col("kind")?,
        message: r.col("message")?,
        provider_id: r.col("provider_id")?,
        account_id: r.col("account_id")?,
        channel_id: r.col("channel_id")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_queue_drops_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap().with_event_queue(10);
        // The writer cannot run while this loop does not yield: 10 fit, 90 are dropped.
        for i in 0..100 {
            store.note(NewEvent::new(Level::Info, "session", format!("e{i}")));
        }
        assert_eq!(store.dropped_events(), 90);
        store.flush_events().await;
        let written = store.events(&EventQuery::default()).await.unwrap();
        assert_eq!(written.len(), 10);
        assert_eq!(written[0].message, "e9");
        // Room again once written.
        store.note(NewEvent::new(Level::Info, "session", "later"));
        store.flush_events().await;
        assert_eq!(store.events(&EventQuery::default()).await.unwrap()[0].message, "later");
        assert_eq!(store.dropped_events(), 90);
    }

    #[tokio::test]
    async fn events_are_listed_newest_first_filtered_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        store.record_event(&NewEvent::new(Level::Info, "sync", "synced").provider(1)).await.unwrap();
        store.record_event(&NewEvent::new(Level::Warn, "failover", "switched").channel(5).account(2)).await.unwrap();
        store.record_event(&NewEvent::new(Level::Error, "session", "gave up").channel(5)).await.unwrap();
        let all = store.events(&EventQuery::default()).await.unwrap();
        assert_eq!(all.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(), ["gave up", "switched", "synced"]);
        assert_eq!((all[1].channel_id, all[1].account_id, all[1].provider_id), (Some(5), Some(2), None));
        let warn = store.events(&EventQuery { min_level: Level::Warn, ..Default::default() }).await.unwrap();
        assert_eq!(warn.len(), 2);
        let sync = store.events(&EventQuery { kind: Some("sync".into()), ..Default::default() }).await.unwrap();
        assert_eq!(sync.len(), 1);
        let page = store.events(&EventQuery { before: Some(all[0].id), limit: 1, ..Default::default() }).await.unwrap();
        assert_eq!(page[0].message, "switched");

        for i in 0..(KEEP + 200) {
            store.record_event(&NewEvent::new(Level::Info, "sync", format!("n{i}"))).await.unwrap();
        }
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(store.db().as_sqlite().unwrap()).await.unwrap();
        assert!((KEEP..KEEP + 100).contains(&count), "{count}");
        assert_eq!(store.events(&EventQuery::default()).await.unwrap()[0].message, format!("n{}", KEEP + 199));
    }
}
