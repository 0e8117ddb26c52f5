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
use sqlx::Row;

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
        sqlx::query(
            "INSERT INTO account_samples (at, account_id, provider_id, auth, status, exp_date, max_connections,
                                          active_cons, ok)
             SELECT ?, id, provider_id, auth, status, exp_date, max_connections, active_cons,
                    (last_error IS NULL AND coalesce(auth, 1) = 1)
             FROM accounts WHERE id = ?",
        )
        .bind(at)
        .bind(account_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records one pool sample per provider, taken at `at`.
    pub async fn record_pool_samples(&self, at: i64, samples: &[NewPoolSample]) -> Result<(), CatalogError> {
        if samples.is_empty() {
            return Ok(());
        }
        let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
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
        qb.build().execute(self.pool()).await?;
        Ok(())
    }

    /// Adds stream starts (channel id → count) to the hour of `at`.
    pub async fn count_views(&self, at: i64, views: &HashMap<i64, u64>) -> Result<(), CatalogError> {
        if views.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        for (channel, n) in views {
            sqlx::query(
                "INSERT INTO channel_views (hour, channel_id, views) VALUES (?, ?, ?)
                 ON CONFLICT (channel_id, hour) DO UPDATE SET views = views + excluded.views",
            )
            .bind(hour_of(at))
            .bind(channel)
            .bind(i64::try_from(*n).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
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
        let rows = sqlx::query(
            "SELECT at, resolution, account_id, provider_id, auth, status, exp_date, max_connections, active_cons, ok
             FROM account_samples WHERE at BETWEEN ? AND ? AND (? IS NULL OR account_id = ?)
             ORDER BY at, account_id LIMIT ?",
        )
        .bind(range.from)
        .bind(range.to)
        .bind(account_id)
        .bind(account_id)
        .bind(limit.clamp(1, MAX_ROWS))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| AccountSample {
                at: r.get(0),
                resolution: r.get(1),
                account_id: r.get(2),
                provider_id: r.get(3),
                auth: r.get(4),
                status: r.get(5),
                exp_date: r.get(6),
                max_connections: r.get(7),
                active_cons: r.get(8),
                ok: r.get(9),
            })
            .collect())
    }

    /// Pool samples in `range`, oldest first, of one provider or all.
    pub async fn pool_history(
        &self,
        range: Range,
        provider_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<PoolSample>, CatalogError> {
        let rows = sqlx::query(
            "SELECT at, resolution, provider_id, slots_used, slots_max, sessions, viewers, refusals
             FROM pool_samples WHERE at BETWEEN ? AND ? AND (? IS NULL OR provider_id = ?)
             ORDER BY at, provider_id LIMIT ?",
        )
        .bind(range.from)
        .bind(range.to)
        .bind(provider_id)
        .bind(provider_id)
        .bind(limit.clamp(1, MAX_ROWS))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|r| pool_sample(&r)).collect())
    }

    /// Refusals per provider recorded in pool samples since `since` (alerts: pool exhausted).
    pub async fn refusals_since(&self, since: i64) -> Result<HashMap<i64, i64>, CatalogError> {
        let rows = sqlx::query(
            "SELECT provider_id, sum(refusals) FROM pool_samples WHERE at >= ? GROUP BY provider_id
             HAVING sum(refusals) > 0",
        )
        .bind(since)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Views per channel in `range` (by the hours that start in it), most
    /// watched first, at most `limit` channels.
    pub async fn channel_views(&self, range: Range, limit: u32) -> Result<Vec<ChannelViews>, CatalogError> {
        let rows = sqlx::query(
            "SELECT v.channel_id, c.name, v.hour, v.views FROM channel_views v
             LEFT JOIN lineup_channels c ON c.id = v.channel_id
             WHERE v.hour BETWEEN ? AND ? ORDER BY v.channel_id, v.hour",
        )
        .bind(hour_of(range.from))
        .bind(range.to)
        .fetch_all(self.pool())
        .await?;
        let mut by_channel: BTreeMap<i64, ChannelViews> = BTreeMap::new();
        for r in rows {
            let id: i64 = r.get(0);
            let entry = by_channel.entry(id).or_insert_with(|| ChannelViews {
                channel_id: id,
                name: r.get(1),
                views: 0,
                hours: Vec::new(),
            });
            let views: i64 = r.get(3);
            entry.views += views;
            entry.hours.push(HourViews { hour: r.get(2), views });
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

        // Accounts: the hour's last status, expiry, limit and auth; the most active connections; ok if all were.
        let folded = sqlx::query(
            "INSERT OR IGNORE INTO account_samples (at, resolution, account_id, provider_id, auth, status, exp_date,
                                                    max_connections, active_cons, ok)
             SELECT (s.at / 3600) * 3600, 3600, s.account_id,
                    (SELECT l.provider_id FROM account_samples l WHERE l.account_id = s.account_id AND l.resolution = 0
                        AND l.at / 3600 = s.at / 3600 ORDER BY l.at DESC, l.rowid DESC LIMIT 1),
                    (SELECT l.auth FROM account_samples l WHERE l.account_id = s.account_id AND l.resolution = 0
                        AND l.at / 3600 = s.at / 3600 ORDER BY l.at DESC, l.rowid DESC LIMIT 1),
                    (SELECT l.status FROM account_samples l WHERE l.account_id = s.account_id AND l.resolution = 0
                        AND l.at / 3600 = s.at / 3600 ORDER BY l.at DESC, l.rowid DESC LIMIT 1),
                    (SELECT l.exp_date FROM account_samples l WHERE l.account_id = s.account_id AND l.resolution = 0
                        AND l.at / 3600 = s.at / 3600 ORDER BY l.at DESC, l.rowid DESC LIMIT 1),
                    (SELECT l.max_connections FROM account_samples l WHERE l.account_id = s.account_id
                        AND l.resolution = 0 AND l.at / 3600 = s.at / 3600 ORDER BY l.at DESC, l.rowid DESC LIMIT 1),
                    max(s.active_cons), min(s.ok)
             FROM account_samples s WHERE s.resolution = 0 AND s.at < ?
             GROUP BY s.account_id, s.at / 3600",
        )
        .bind(fold_before)
        .execute(&mut *tx)
        .await?;
        report.folded += folded.rows_affected();
        sqlx::query("DELETE FROM account_samples WHERE resolution = 0 AND at < ?")
            .bind(fold_before)
            .execute(&mut *tx)
            .await?;

        // The pool: maxima of the hour, the sum of its refusals.
        let folded = sqlx::query(
            "INSERT OR IGNORE INTO pool_samples (at, resolution, provider_id, slots_used, slots_max, sessions, viewers,
                                                 refusals)
             SELECT (at / 3600) * 3600, 3600, provider_id, max(slots_used), max(slots_max), max(sessions),
                    max(viewers), sum(refusals)
             FROM pool_samples WHERE resolution = 0 AND at < ? GROUP BY provider_id, at / 3600",
        )
        .bind(fold_before)
        .execute(&mut *tx)
        .await?;
        report.folded += folded.rows_affected();
        sqlx::query("DELETE FROM pool_samples WHERE resolution = 0 AND at < ?")
            .bind(fold_before)
            .execute(&mut *tx)
            .await?;

        for sql in [
            "DELETE FROM account_samples WHERE at < ?",
            "DELETE FROM pool_samples WHERE at < ?",
            "DELETE FROM channel_views WHERE hour < ?",
            "DELETE FROM alerts WHERE resolved_at IS NOT NULL AND resolved_at < ?",
        ] {
            report.expired += sqlx::query(sql).bind(keep_after).execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(report)
    }
}

fn pool_sample(r: &sqlx::sqlite::SqliteRow) -> PoolSample {
    PoolSample {
        at: r.get(0),
        resolution: r.get(1),
        provider_id: r.get(2),
        slots_used: r.get(3),
        slots_max: r.get(4),
        sessions: r.get(5),
        viewers: r.get(6),
        refusals: r.get(7),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(provider_id: i64, used: i64, refusals: i64) -> NewPoolSample {
        NewPoolSample { provider_id, slots_used: used, slots_max: 4, sessions: used, viewers: used * 2, refusals }
    }

    const ALL: Range = Range { from: 0, to: i64::MAX };

    #[tokio::test]
    async fn pruning_folds_old_hours_and_drops_what_is_past_the_retention() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let retention = Retention { raw_secs: 48 * HOUR, keep_secs: 30 * 24 * HOUR };
        // A fixed "now" on an hour boundary plus 10 minutes.
        let now = 1_800_000_000 / HOUR * HOUR + 600;
        let old_hour = hour_of(now - 50 * HOUR); // past the raw retention: folded
        let recent = now - 3600; // within it: kept raw
        let ancient = now - 31 * 24 * HOUR; // past the retention: deleted

        for (minute, used, refused) in [(0, 1, 0), (1, 3, 2), (59, 2, 1)] {
            store.record_pool_samples(old_hour + minute * 60, &[sample(1, used, refused)]).await.unwrap();
        }
        store.record_pool_samples(old_hour + 60, &[sample(2, 1, 0)]).await.unwrap();
        store.record_pool_samples(recent, &[sample(1, 4, 5)]).await.unwrap();
        store.record_pool_samples(ancient, &[sample(1, 4, 5)]).await.unwrap();
        store.count_views(ancient, &HashMap::from([(7, 3)])).await.unwrap();
        store.count_views(recent, &HashMap::from([(7, 2), (8, 1)])).await.unwrap();
        store.count_views(recent + 1, &HashMap::from([(7, 1)])).await.unwrap();

        let report = store.prune_history(now, retention).await.unwrap();
        // Two hours folded (provider 1, provider 2); the ancient hour folded, then expired with the ancient views.
        assert_eq!(report.folded, 3);
        assert_eq!(report.expired, 2);

        let rows = store.pool_history(ALL, None, MAX_ROWS).await.unwrap();
        let summary: Vec<_> =
            rows.iter().map(|s| (s.at, s.resolution, s.provider_id, s.slots_used, s.refusals)).collect();
        assert_eq!(
            summary,
            [(old_hour, 3600, 1, 3, 3), (old_hour, 3600, 2, 1, 0), (recent, 0, 1, 4, 5)],
            "the old hour is one row per provider (max used, summed refusals); the recent minute stays raw"
        );
        assert_eq!(rows[0].viewers, 6);

        // Pruning again changes nothing.
        assert_eq!(store.prune_history(now, retention).await.unwrap(), PruneReport::default());

        let views = store.channel_views(ALL, 100).await.unwrap();
        assert_eq!(views.iter().map(|v| (v.channel_id, v.views)).collect::<Vec<_>>(), [(7, 3), (8, 1)]);
        assert_eq!(views[0].hours, [HourViews { hour: hour_of(recent), views: 3 }]);
        // A range before the recent hour sees none of it.
        assert!(store.channel_views(Range { from: 0, to: hour_of(recent) - 1 }, 100).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn account_samples_fold_to_the_hours_last_values() {
        use crate::model::{NewProvider, ProviderKind};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let p = store
            .add_provider(&NewProvider {
                name: "p".into(),
                kind: Some(ProviderKind::Xtream),
                url: "http://example.com".into(),
                username: Some("u".into()),
                password: Some(crate::Secret::new("pw")),
                enabled: true,
                ..Default::default()
            })
            .await
            .unwrap();
        let account = store.primary_account(p.id).await.unwrap().unwrap().id;
        let now = 1_800_000_000 / HOUR * HOUR;
        let hour = now - 72 * HOUR;
        let info = |active, status: &str| tunerpool_formats::xtream::UserInfo {
            auth: true,
            status: Some(status.into()),
            exp_date: Some(now + 86_400),
            max_connections: Some(2),
            active_cons: Some(active),
            ..Default::default()
        };
        store.record_details(account, &info(2, "Active")).await.unwrap();
        store.record_details_error(account, "the panel did not answer").await.unwrap();
        store.record_details(account, &info(1, "Banned")).await.unwrap();
        // Move the three samples into one old hour, in order.
        for (i, at) in [hour + 10, hour + 20, hour + 30].into_iter().enumerate() {
            sqlx::query("UPDATE account_samples SET at = ? WHERE rowid = ?")
                .bind(at)
                .bind(i as i64 + 1)
                .execute(store.pool())
                .await
                .unwrap();
        }
        store.prune_history(now, Retention::default()).await.unwrap();
        let rows = store.account_history(ALL, Some(account), MAX_ROWS).await.unwrap();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!((r.at, r.resolution, r.provider_id), (hour, 3600, p.id));
        assert_eq!((r.active_cons, r.status.as_deref(), r.ok), (Some(2), Some("Banned"), false));
    }
}
