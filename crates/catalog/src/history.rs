//! History: how accounts, the pool and channels did over time.
//!
//! The pool status and `/metrics` say how things are *now*; an operator
//! deciding whether to buy another account wants last week ("how often were
//! all slots taken?", "when did account b start failing?", "which channels
//! are watched?"). So three series are kept in SQLite (migration 0009):
//!
//! - **account samples**: one per details refresh of an account (written by
//!   [`Store::record_details`], [`Store::record_rejected`] and
//!   [`Store::record_details_error`], whoever triggered the refresh);
//! - **pool samples**: one per provider per minute, taken by the gateway's
//!   sampler from the ledger and the relay ([`Store::record_pool_samples`]);
//! - **channel views**: stream starts per lineup channel, per hour
//!   ([`Store::count_views`]).
//!
//! Retention is bounded ([`Retention`]): raw samples are kept for
//! `raw_secs` (48 h by default), then each complete hour is folded into one
//! row (resolution 3600) and the raw rows deleted; everything older than
//! `keep_secs` (30 days) is deleted, resolved alerts included. The periodic
//! job calls [`Store::prune_history`].

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::db::{dialect, on_db, on_tx, RowGet};
use crate::error::CatalogError;
use crate::store::Store;

/// One hour, the resolution of downsampled rows.
pub const HOUR: i64 = 3600;

/// The most rows one history query returns.
pub const MAX_ROWS: u32 = 10_000;

/// What a panel said about an account at one refresh (resolution 0), or
/// over one hour (3600: the hour's last status and expiry, the most active
/// connections seen, `ok` false when any refresh in it failed). Exists so
/// that an account's limits, expiry and failures can be looked back at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AccountSample {
    /// Unix seconds (the hour's start for hourly rows).
    pub at: i64,
    /// 0: one refresh; 3600: an hour.
    pub resolution: i64,
    pub account_id: i64,
    pub provider_id: i64,
    pub auth: Option<bool>,
    pub status: Option<String>,
    pub exp_date: Option<i64>,
    pub max_connections: Option<i64>,
    /// What the panel counted (connections made outside tunerpool included).
    pub active_cons: Option<i64>,
    /// The refresh succeeded (hourly: every refresh of the hour did).
    pub ok: bool,
}

/// One provider's pool at one minute (resolution 0), or over one hour
/// (3600: the hour's maxima and the sum of its refusals). Exists so that
/// "was the pool big enough?" has an answer over days, not just now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PoolSample {
    /// Unix seconds (the hour's start for hourly rows).
    pub at: i64,
    /// 0: one sample; 3600: an hour.
    pub resolution: i64,
    pub provider_id: i64,
    /// Connection slots held on its enabled accounts.
    pub slots_used: i64,
    /// Connection slots its enabled accounts allow (capped by the provider's own limit).
    pub slots_max: i64,
    /// Live sessions and transfers using it.
    pub sessions: i64,
    /// Viewers served from it.
    pub viewers: i64,
    /// Stream starts refused for lack of capacity with this provider among the candidates, since the sample
    /// before.
    pub refusals: i64,
}

/// A pool sample to record: one provider, now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NewPoolSample {
    pub provider_id: i64,
    pub slots_used: i64,
    pub slots_max: i64,
    pub sessions: i64,
    pub viewers: i64,
    pub refusals: i64,
}

/// Stream starts of one hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HourViews {
    /// The hour's start, unix seconds.
    pub hour: i64,
    pub views: i64,
}

/// How often a lineup channel was watched in a time range: exists to tell
/// the channels people watch from the ones they never do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ChannelViews {
    pub channel_id: i64,
    /// The channel's name now; `None` when it has been deleted since.
    pub name: Option<String>,
    /// Stream starts in the range.
    pub views: i64,
    /// Per hour, oldest first (hours without a start are left out).
    pub hours: Vec<HourViews>,
}

/// A time range, unix seconds, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: i64,
    pub to: i64,
}

/// How long history is kept: raw rows for `raw_secs`, hourly rows up to
/// `keep_secs`. Exists so that the database stays bounded whatever the uptime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub raw_secs: i64,
    pub keep_secs: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { raw_secs: 48 * HOUR, keep_secs: 30 * 24 * HOUR }
    }
}

/// What one prune did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Raw rows folded into hourly ones.
    pub folded: u64,
    /// Rows deleted for being older than the retention (samples, views, resolved alerts).
    pub expired: u64,
}

fn hour_of(at: i64) -> i64 {
    at.div_euclid(HOUR) * HOUR
}

impl Store {
    /// Records the account's details as they are now stored: one sample per
    /// refresh. `ok` is whether the refresh succeeded.
    pub(crate) async fn sample_account(&self, account_id: i64, at: i64) -> Result<(), CatalogError> {
        on_db!(self.db(), |p| sqlx::query(
            "INSERT INTO account_samples (at, account_id, provider_id, auth, status, exp_date, max_connections,
                                          active_cons, ok)
             SELECT $1, id, provider_id, auth, status, exp_date, max_connections, active_cons,
                    (last_error IS NULL AND coalesce(auth, TRUE))
             FROM accounts WHERE id = $2",
        )
        .bind(at)
        .bind(account_id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Records one pool sample per provider, taken at `at`.
    pub async fn record_pool_samples(&self, at: i64, samples: &[NewPoolSample]) -> Result<(), CatalogError> {
        if samples.is_empty() {
            return Ok(());
        }
        on_db!(self.db(), |p| {
            let mut qb = sqlx::QueryBuilder::<Backend>::new(
                "INSERT INTO pool_samples (at, provider_id, slots_used, slots_max, sessions, viewers, refusals) ",
            );
            qb.push_values(samples, |mut b, s| {
                b.push_bind(at)
                    .push_bind(s.provider_id)
                    .push_bind(s.slots_used)
                    .push_bind(s.slots_max)
                    .push_bind(s.sessions)
                    .push_bind(s.viewers)
                    .push_bind(s.refusals);
            });
            qb.build().execute(p).await?;
        });
        Ok(())
    }

    /// Adds stream starts (channel id → count) to the hour of `at`.
    pub async fn count_views(&self, at: i64, views: &HashMap<i64, u64>) -> Result<(), CatalogError> {
        if views.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        for (channel, n) in views {
            on_tx!(&mut tx, |c| sqlx::query(
                "INSERT INTO channel_views (hour, channel_id, views) VALUES ($1, $2, $3)
                 ON CONFLICT (channel_id, hour) DO UPDATE SET views = channel_views.views + excluded.views",
            )
            .bind(hour_of(at))
            .bind(channel)
            .bind(i64::try_from(*n).unwrap_or(i64::MAX))
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Account samples in `range`, oldest first, of one account or all.
    pub async fn account_history(
        &self,
        range: Range,
        account_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AccountSample>, CatalogError> {
        on_db!(self.db(), |p| {
            let rows = sqlx::query(
                "SELECT at, resolution, account_id, provider_id, auth, status, exp_date, max_connections, active_cons, ok
                 FROM account_samples WHERE at BETWEEN $1 AND $2 AND ($3 IS NULL OR account_id = $3)
                 ORDER BY at, account_id LIMIT $4",
            )
            .bind(range.from)
            .bind(range.to)
            .bind(account_id)
            .bind(i64::from(limit.clamp(1, MAX_ROWS)))
            .fetch_all(p)
            .await?;
            rows.iter().map(account_sample).collect::<Result<_, sqlx::Error>>().map_err(Into::into)
        })
    }

    /// Pool samples in `range`, oldest first, of one provider or all.
    pub async fn pool_history(
        &self,
        range: Range,
        provider_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<PoolSample>, CatalogError> {
        on_db!(self.db(), |p| {
            let rows = sqlx::query(
                "SELECT at, resolution, provider_id, slots_used, slots_max, sessions, viewers, refusals
                 FROM pool_samples WHERE at BETWEEN $1 AND $2 AND ($3 IS NULL OR provider_id = $3)
                 ORDER BY at, provider_id LIMIT $4",
            )
            .bind(range.from)
            .bind(range.to)
            .bind(provider_id)
            .bind(i64::from(limit.clamp(1, MAX_ROWS)))
            .fetch_all(p)
            .await?;
            rows.iter().map(pool_sample).collect::<Result<_, sqlx::Error>>().map_err(Into::into)
        })
    }

    /// Refusals per provider recorded in pool samples since `since` (alerts: pool exhausted).
    pub async fn refusals_since(&self, since: i64) -> Result<HashMap<i64, i64>, CatalogError> {
        // sum() of a BIGINT is NUMERIC in PostgreSQL: cast back.
        let rows: Vec<(i64, i64)> = on_db!(self.db(), |p| {
            sqlx::query_as(
            "SELECT provider_id, CAST(sum(refusals) AS BIGINT) FROM pool_samples WHERE at >= $1 GROUP BY provider_id
             HAVING sum(refusals) > 0",
        )
        .bind(since)
        .fetch_all(p)
        .await
        })?;
        Ok(rows.into_iter().collect())
    }

    /// Views per channel in `range` (by the hours that start in it), most
    /// watched first, at most `limit` channels.
    pub async fn channel_views(&self, range: Range, limit: u32) -> Result<Vec<ChannelViews>, CatalogError> {
        let rows: Vec<(i64, Option<String>, i64, i64)> = on_db!(self.db(), |p| sqlx::query_as(
            "SELECT v.channel_id, c.name, v.hour, v.views FROM channel_views v
             LEFT JOIN lineup_channels c ON c.id = v.channel_id
             WHERE v.hour BETWEEN $1 AND $2 ORDER BY v.channel_id, v.hour",
        )
        .bind(hour_of(range.from))
        .bind(range.to)
        .fetch_all(p)
        .await)?;
        let mut by_channel: BTreeMap<i64, ChannelViews> = BTreeMap::new();
        for (id, name, hour, views) in rows {
            let entry = by_channel.entry(id).or_insert_with(|| ChannelViews {
                channel_id: id,
                name,
                views: 0,
                hours: Vec::new(),
            });
            entry.views += views;
            entry.hours.push(HourViews { hour, views });
        }
        let mut v: Vec<ChannelViews> = by_channel.into_values().collect();
        v.sort_by(|a, b| b.views.cmp(&a.views).then(a.channel_id.cmp(&b.channel_id)));
        v.truncate(limit.clamp(1, MAX_ROWS) as usize);
        Ok(v)
    }

    /// Folds raw samples older than the raw retention into hourly rows
    /// (whole hours only) and deletes everything older than the retention:
    /// samples, views, resolved alerts (with their deliveries). `now` is
    /// given so that tests can use fixed timestamps.
    pub async fn prune_history(&self, now: i64, retention: Retention) -> Result<PruneReport, CatalogError> {
        // Only hours that ended before the raw cutoff: all their raw rows are
        // past it at once, so an hour is folded whole, once.
        let fold_before = hour_of(now - retention.raw_secs);
        let keep_after = now - retention.keep_secs;
        let mut report = PruneReport::default();
        let mut tx = self.write_tx().await?;
        on_tx!(&mut tx, |c| {
            // Accounts: the hour's last status, expiry, limit and auth; the
            // most active connections; ok if all were. A raw row's own id is
            // SQLite's rowid, PostgreSQL's id column; "all ok" is min() of
            // 0/1 in SQLite, bool_and() of booleans in PostgreSQL.
            let (row_id, all_ok) = dialect!(sqlite: ("rowid", "min(s.ok)"), postgres: ("id", "bool_and(s.ok)"));
            let last = |column: &str| {
                format!(
                    "(SELECT l.{column} FROM account_samples l WHERE l.account_id = h.account_id AND l.resolution = 0
                        AND l.at / 3600 = h.hour / 3600 ORDER BY l.at DESC, l.{row_id} DESC LIMIT 1)"
                )
            };
            // `WHERE TRUE`: SQLite would read the ON of ON CONFLICT as a
            // join's after a FROM with no WHERE.
            let folded = sqlx::query(&format!(
                "INSERT INTO account_samples (at, resolution, account_id, provider_id, auth, status, exp_date,
                                              max_connections, active_cons, ok)
                 SELECT h.hour, 3600, h.account_id, {}, {}, {}, {}, {}, h.active_cons, h.ok
                 FROM (SELECT s.account_id, (s.at / 3600) * 3600 AS hour, max(s.active_cons) AS active_cons,
                              {all_ok} AS ok
                       FROM account_samples s WHERE s.resolution = 0 AND s.at < $1
                       GROUP BY s.account_id, (s.at / 3600) * 3600) h
                 WHERE TRUE ON CONFLICT DO NOTHING",
                last("provider_id"),
                last("auth"),
                last("status"),
                last("exp_date"),
                last("max_connections"),
            ))
            .bind(fold_before)
            .execute(&mut *c)
            .await?;
            report.folded += folded.rows_affected();
            sqlx::query("DELETE FROM account_samples WHERE resolution = 0 AND at < $1")
                .bind(fold_before)
                .execute(&mut *c)
                .await?;

            // The pool: maxima of the hour, the sum of its refusals.
            let folded = sqlx::query(
                "INSERT INTO pool_samples (at, resolution, provider_id, slots_used, slots_max, sessions, viewers,
                                           refusals)
                 SELECT (at / 3600) * 3600, 3600, provider_id, max(slots_used), max(slots_max), max(sessions),
                        max(viewers), sum(refusals)
                 FROM pool_samples WHERE resolution = 0 AND at < $1 GROUP BY provider_id, at / 3600
                 ON CONFLICT DO NOTHING",
            )
            .bind(fold_before)
            .execute(&mut *c)
            .await?;
            report.folded += folded.rows_affected();
            sqlx::query("DELETE FROM pool_samples WHERE resolution = 0 AND at < $1")
                .bind(fold_before)
                .execute(&mut *c)
                .await?;

            for sql in [
                "DELETE FROM account_samples WHERE at < $1",
                "DELETE FROM pool_samples WHERE at < $1",
                "DELETE FROM channel_views WHERE hour < $1",
                "DELETE FROM alerts WHERE resolved_at IS NOT NULL AND resolved_at < $1",
            ] {
                report.expired += sqlx::query(sql).bind(keep_after).execute(&mut *c).await?.rows_affected();
            }
        });
        tx.commit().await?;
        Ok(report)
    }
}

fn pool_sample(r: &impl RowGet) -> Result<PoolSample, sqlx::Error> {
    Ok(PoolSample {
        at: r.col(0)?,
        resolution: r.col(1)?,
        provider_id: r.col(2)?,
        slots_used: r.col(3)?,
        slots_max: r.col(4)?,
        sessions: r.col(5)?,
        viewers: r.col(6)?,
        refusals: r.col(7)?,
    })
}

fn account_sample(r: &impl RowGet) -> Result<AccountSample, sqlx::Error> {
    Ok(AccountSample {
        at: r.col(0)?,
        resolution: r.col(1)?,
        account_id: r.col(2)?,
        provider_id: r.col(3)?,
        auth: r.col(4)?,
        status: r.col(5)?,
        exp_date: r.col(6)?,
        max_connections: r.col(7)?,
        active_cons: r.col(8)?,
        ok: r.col(9)?,
    })
}
