//! Alerts: conditions an operator must act on (an account expiring, a
//! provider's sync failing, the pool exhausted…), kept as rows with their
//! delivery outbox.
//!
//! What is true *now* is computed elsewhere (the `tunerpool-alerts` crate
//! turns the store's state into [`Condition`]s); this module keeps the
//! record: [`Store::reconcile_alerts`] opens an alert for a condition that
//! has none open, resolves open alerts whose condition is gone, and queues
//! one delivery per webhook for each, in one transaction. A condition that
//! stays true is the same alert (the key is unique among open alerts), so it
//! is announced once, however often it is checked.
//!
//! Deliveries wait in `alert_deliveries` until sent or given up: a receiver
//! that is down does not lose an alert, and a restart does not either.
//! Webhooks are named by a digest of their URL (`target`), never the URL,
//! which may carry a token.

use serde::Serialize;

use crate::db::{dialect, on_db, on_tx, RowGet};
use crate::error::CatalogError;
use crate::store::Store;

/// How bad an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Act soon (an account expires in days).
    Warning,
    /// Something fails now (auth refused, sync failing, viewers refused).
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    fn parse(s: &str) -> Severity {
        if s == "critical" {
            Severity::Critical
        } else {
            Severity::Warning
        }
    }
}

/// A condition that holds now: what an open alert is about. Exists so that
/// the evaluation (which reads state) and the record (which dedupes and
/// queues deliveries) are separate steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// Identifies the condition across checks (`account_expiring:12`): one open alert per key.
    pub key: String,
    /// `account_expiring`, `user_expiring`, `account_auth`, `sync_failed` or `pool_exhausted`.
    pub kind: &'static str,
    pub severity: Severity,
    pub title: String,
    /// Built from names and already-redacted errors: no secrets.
    pub message: String,
    pub provider_id: Option<i64>,
    pub account_id: Option<i64>,
    pub user_id: Option<i64>,
}

/// An alert: a condition that opened at some time and maybe resolved.
/// Exists so that what needs attention is kept, shown and sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Alert {
    pub id: i64,
    /// What condition it is about (`account_expiring:12`); at most one open alert per key.
    pub key: String,
    /// `account_expiring`, `user_expiring`, `account_auth`, `sync_failed` or `pool_exhausted`.
    pub kind: String,
    pub severity: Severity,
    pub title: String,
    #[serde(serialize_with = "tunerpool_domain::fields::serialize_redacted_text")]
    pub message: String,
    pub provider_id: Option<i64>,
    pub account_id: Option<i64>,
    pub user_id: Option<i64>,
    /// Unix seconds.
    pub opened_at: i64,
    /// Unix seconds; `None` while open.
    pub resolved_at: Option<i64>,
}

/// What one reconcile changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    pub opened: Vec<Alert>,
    pub resolved: Vec<Alert>,
}

/// A delivery due: one alert event to one webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub alert: Alert,
    /// `opened` or `resolved`.
    pub event: String,
    /// The webhook's digest.
    pub target: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// Unix seconds.
    pub created_at: i64,
}

/// Which alerts to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertState {
    Open,
    Resolved,
    All,
}

const ALERT_COLUMNS: &str =
    "a.id, a.key, a.kind, a.severity, a.title, a.message, a.provider_id, a.account_id, a.user_id, a.opened_at, \
     a.resolved_at";

fn alert(r: &impl RowGet) -> Result<Alert, sqlx::Error> {
    Ok(Alert {
        id: r.col(0)?,
        key: r.col(1)?,
        kind: r.col(2)?,
        severity: Severity::parse(&r.col::<String>(3)?),
        title: r.col(4)?,
        message: r.col(5)?,
        provider_id: r.col(6)?,
        account_id: r.col(7)?,
        user_id: r.col(8)?,
        opened_at: r.col(9)?,
        resolved_at: r.col(10)?,
    })
}

impl Store {
    /// Makes the open alerts match `conditions` at `now`: opens one per new
    /// key, resolves those whose key is gone (an open alert's text follows
    /// its condition's), and queues a delivery per `targets` entry for each
    /// opened alert, and for each resolved one when `notify_resolved`.
    pub async fn reconcile_alerts(
        &self,
        now: i64,
        conditions: &[Condition],
        targets: &[String],
        notify_resolved: bool,
    ) -> Result<Reconciled, CatalogError> {
        let mut tx = self.write_tx().await?;
        let open: Vec<Alert> = on_tx!(&mut tx, |c| sqlx::query(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts a WHERE a.resolved_at IS NULL"
        ))
        .fetch_all(&mut *c)
        .await?
        .iter()
        .map(alert)
        .collect::<Result<_, _>>())?;
        let mut out = Reconciled::default();
        for a in &open {
            match conditions.iter().find(|c| c.key == a.key) {
                Some(c) if c.title != a.title || c.message != a.message || c.severity != a.severity => {
                    on_tx!(&mut tx, |conn| sqlx::query(
                        "UPDATE alerts SET title = $1, message = $2, severity = $3 WHERE id = $4"
                    )
                    .bind(&c.title)
                    .bind(&c.message)
                    .bind(c.severity.as_str())
                    .bind(a.id)
                    .execute(&mut *conn)
                    .await
                    .map(|r| r.rows_affected()))?;
                }
                Some(_) => {}
                None => {
                    on_tx!(&mut tx, |c| sqlx::query("UPDATE alerts SET resolved_at = $1 WHERE id = $2")
                        .bind(now)
                        .bind(a.id)
                        .execute(&mut *c)
                        .await
                        .map(|r| r.rows_affected()))?;
                    if notify_resolved {
                        queue(&mut tx, a.id, "resolved", targets, now).await?;
                    }
                    out.resolved.push(Alert { resolved_at: Some(now), ..a.clone() });
                }
            }
        }
        for c in conditions.iter().filter(|c| !open.iter().any(|a| a.key == c.key)) {
            if out.opened.iter().any(|a| a.key == c.key) {
                continue;
            }
            let id: i64 = on_tx!(&mut tx, |conn| {
                sqlx::query_scalar(
                "INSERT INTO alerts (key, kind, severity, title, message, provider_id, account_id, user_id, opened_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            )
            .bind(&c.key)
            .bind(c.kind)
            .bind(c.severity.as_str())
            .bind(&c.title)
            .bind(&c.message)
            .bind(c.provider_id)
            .bind(c.account_id)
            .bind(c.user_id)
            .bind(now)
            .fetch_one(&mut *conn)
            .await
            })?;
            queue(&mut tx, id, "opened", targets, now).await?;
            out.opened.push(Alert {
                id,
                key: c.key.clone(),
                kind: c.kind.to_string(),
                severity: c.severity,
                title: c.title.clone(),
                message: c.message.clone(),
                provider_id: c.provider_id,
                account_id: c.account_id,
                user_id: c.user_id,
                opened_at: now,
                resolved_at: None,
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Alerts, newest first: open ones, resolved ones, or both, at most `limit`.
    pub async fn alerts(&self, state: AlertState, limit: u32) -> Result<Vec<Alert>, CatalogError> {
        let filter = match state {
            AlertState::Open => "a.resolved_at IS NULL",
            AlertState::Resolved => "a.resolved_at IS NOT NULL",
            AlertState::All => "TRUE",
        };
        on_db!(self.db(), |p| {
            let rows = sqlx::query(&format!(
                "SELECT {ALERT_COLUMNS} FROM alerts a WHERE {filter}
                 ORDER BY a.resolved_at IS NOT NULL, coalesce(a.resolved_at, a.opened_at) DESC, a.id DESC LIMIT $1"
            ))
            .bind(i64::from(limit.clamp(1, 1000)))
            .fetch_all(p)
            .await?;
            rows.iter().map(alert).collect::<Result<_, sqlx::Error>>().map_err(Into::into)
        })
    }

    /// Deliveries due at `now_ms` (unix milliseconds), oldest first.
    pub async fn due_deliveries(&self, now_ms: i64, limit: u32) -> Result<Vec<Delivery>, CatalogError> {
        on_db!(self.db(), |p| {
            let rows = sqlx::query(&format!(
                "SELECT {ALERT_COLUMNS}, d.id, d.event, d.target, d.attempts, d.created_at
                 FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id
                 WHERE d.delivered_at IS NULL AND d.gave_up_at IS NULL AND d.next_at_ms <= $1
                 ORDER BY d.next_at_ms, d.id LIMIT $2"
            ))
            .bind(now_ms)
            .bind(i64::from(limit.max(1)))
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(Delivery {
                        alert: alert(r)?,
                        id: r.col(11)?,
                        event: r.col(12)?,
                        target: r.col(13)?,
                        attempts: r.col::<i64>(14)?.clamp(0, u32::MAX as i64) as u32,
                        created_at: r.col(15)?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(Into::into)
        })
    }

    /// When the next pending delivery is due (unix milliseconds), if any.
    pub async fn next_delivery_at(&self) -> Result<Option<i64>, CatalogError> {
        Ok(on_db!(self.db(), |p| sqlx::query_scalar(
            "SELECT min(next_at_ms) FROM alert_deliveries WHERE delivered_at IS NULL AND gave_up_at IS NULL",
        )
        .fetch_one(p)
        .await)?)
    }

    /// A delivery went through.
    pub async fn delivery_done(&self, id: i64, at: i64) -> Result<(), CatalogError> {
        on_db!(self.db(), |p| sqlx::query(
            "UPDATE alert_deliveries SET delivered_at = $1, attempts = attempts + 1, last_error = NULL WHERE id = $2",
        )
        .bind(at)
        .bind(id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// A delivery failed with `error` (redacted by the caller): tried again at
    /// `retry_at_ms`, or given up at `at` when `None`.
    pub async fn delivery_failed(
        &self,
        id: i64,
        at: i64,
        error: &str,
        retry_at_ms: Option<i64>,
    ) -> Result<(), CatalogError> {
        on_db!(self.db(), |p| sqlx::query(
            "UPDATE alert_deliveries SET attempts = attempts + 1, last_error = $1,
                next_at_ms = coalesce($2, next_at_ms), gave_up_at = CASE WHEN $2 IS NULL THEN $3 END
             WHERE id = $4",
        )
        .bind(error)
        .bind(retry_at_ms)
        .bind(at)
        .bind(id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Drops the pending deliveries to webhooks no longer configured.
    pub async fn drop_deliveries_except(&self, targets: &[String]) -> Result<u64, CatalogError> {
        let targets = serde_json::to_string(targets).expect("strings serialize");
        Ok(on_db!(self.db(), |p| {
            sqlx::query(&format!(
            "DELETE FROM alert_deliveries WHERE delivered_at IS NULL AND gave_up_at IS NULL
             AND target NOT IN ({})",
            dialect!(sqlite: "SELECT value FROM json_each($1)", postgres: "SELECT jsonb_array_elements_text($1::jsonb)"),
        ))
        .bind(targets)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
        })?)
    }
}

/// Queues one delivery of `event` per target.
async fn queue(
    tx: &mut crate::db::Tx,
    alert_id: i64,
    event: &str,
    targets: &[String],
    now: i64,
) -> Result<(), CatalogError> {
    for t in targets {
        on_tx!(&mut *tx, |c| sqlx::query(
            "INSERT INTO alert_deliveries (alert_id, event, target, created_at, next_at_ms)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(alert_id)
        .bind(event)
        .bind(t)
        .bind(now)
        .bind(now.saturating_mul(1000))
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    }
    Ok(())
}
