//! The events log: what happened that an operator may want to look back at.
//!
//! Logs scroll away and live only as long as the process; the pool's story
//! ("why did channel 5 switch accounts at 21:04?", "since when is account b
//! rejected?") belongs next to the catalog. Events are rows in SQLite, kept
//! to the newest [`KEEP`], written off the hot path (never per chunk), and
//! their messages are built from already-redacted errors: no passwords.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::error::CatalogError;
use crate::store::{now, Store};

/// How many events are kept.
pub const KEEP: i64 = 10_000;

/// How serious an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "info" => Some(Level::Info),
            "warn" | "warning" => Some(Level::Warn),
            "error" => Some(Level::Error),
            _ => None,
        }
    }
}

/// One logged event.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Event {
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    pub level: Level,
    /// `sync`, `account`, `session`, `failover` or `refused`.
    pub kind: String,
    #[serde(serialize_with = "crate::model::serialize_redacted_text")]
    pub message: String,
    pub provider_id: Option<i64>,
    pub account_id: Option<i64>,
    pub channel_id: Option<i64>,
}

/// An event to record.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub level: Level,
    pub kind: &'static str,
    pub message: String,
    pub provider_id: Option<i64>,
    pub account_id: Option<i64>,
    pub channel_id: Option<i64>,
}

impl NewEvent {
    pub fn new(level: Level, kind: &'static str, message: impl Into<String>) -> NewEvent {
        NewEvent { level, kind, message: message.into(), provider_id: None, account_id: None, channel_id: None }
    }

    pub fn provider(mut self, id: i64) -> NewEvent {
        self.provider_id = Some(id);
        self
    }

    pub fn account(mut self, id: i64) -> NewEvent {
        self.account_id = Some(id);
        self
    }

    pub fn channel(mut self, id: i64) -> NewEvent {
        self.channel_id = Some(id);
        self
    }
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

impl Store {
    /// Records an event, trimming the log to the newest [`KEEP`].
    pub async fn record_event(&self, e: &NewEvent) -> Result<(), CatalogError> {
        let id: i64 = sqlx::query(
            "INSERT INTO events (at, level, kind, message, provider_id, account_id, channel_id) \
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(now())
        .bind(e.level.as_str())
        .bind(e.kind)
        .bind(&e.message)
        .bind(e.provider_id)
        .bind(e.account_id)
        .bind(e.channel_id)
        .fetch_one(self.pool())
        .await?
        .get(0);
        // Trimming every 100th insert keeps the cost of a write flat.
        if id % 100 == 0 {
            sqlx::query("DELETE FROM events WHERE id <= ?").bind(id - KEEP).execute(self.pool()).await?;
        }
        Ok(())
    }

    /// Records an event in the background: for callers that must neither
    /// wait for the database nor fail because of it (a live session).
    pub fn note(&self, e: NewEvent) {
        let store = self.clone();
        tokio::spawn(async move {
            if let Err(err) = store.record_event(&e).await {
                tracing::warn!(error = %err, "cannot record an event");
            }
        });
    }

    /// Lists events, newest first.
    pub async fn events(&self, q: &EventQuery) -> Result<Vec<Event>, CatalogError> {
        let levels: Vec<&str> = [Level::Info, Level::Warn, Level::Error]
            .into_iter()
            .filter(|l| *l >= q.min_level)
            .map(Level::as_str)
            .collect();
        let rows = sqlx::query(
            "SELECT id, at, level, kind, message, provider_id, account_id, channel_id FROM events \
             WHERE id < ? AND level IN (SELECT value FROM json_each(?)) AND (? IS NULL OR kind = ?) \
             ORDER BY id DESC LIMIT ?",
        )
        .bind(q.before.unwrap_or(i64::MAX))
        .bind(serde_json::to_string(&levels).expect("strings serialize"))
        .bind(q.kind.as_deref())
        .bind(q.kind.as_deref())
        .bind(q.limit.clamp(1, 1000))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Event {
                id: r.get(0),
                at: r.get(1),
                level: Level::parse(r.get::<&str, _>(2)).unwrap_or(Level::Info),
                kind: r.get(3),
                message: r.get(4),
                provider_id: r.get(5),
                account_id: r.get(6),
                channel_id: r.get(7),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let count: i64 = sqlx::query("SELECT count(*) FROM events").fetch_one(store.pool()).await.unwrap().get(0);
        assert!((KEEP..KEEP + 100).contains(&count), "{count}");
        assert_eq!(store.events(&EventQuery::default()).await.unwrap()[0].message, format!("n{}", KEEP + 199));
    }
}
