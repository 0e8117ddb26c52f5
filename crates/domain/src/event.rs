//! An event worth recording: what happened that an operator may want to
//! look back at (syncs, failovers, refusals). The catalog stores them; any
//! stage may make one.

use serde::{Deserialize, Serialize};

use crate::time::now;

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

/// An event to record. Its time is when it is made, not when it is written.
/// Its message must already be redacted (built from redacted errors).
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub at: i64,
    pub level: Level,
    /// `sync`, `account`, `session`, `failover` or `refused`.
    pub kind: &'static str,
    pub message: String,
    pub provider_id: Option<i64>,
    pub account_id: Option<i64>,
    pub channel_id: Option<i64>,
}

impl NewEvent {
    pub fn new(level: Level, kind: &'static str, message: impl Into<String>) -> NewEvent {
        NewEvent {
            at: now(),
            level,
            kind,
            message: message.into(),
            provider_id: None,
            account_id: None,
            channel_id: None,
        }
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
