//! Background jobs of `serve`:
//! - the catalog job keeps every enabled provider's catalog fresh: it syncs a
//!   provider when it has never been synced, when its last sync is older than
//!   `sync.catalog_interval`, or (sooner) after a failed sync;
//! - the details job refreshes every enabled Xtream account's details
//!   (expiry, limits, active connections) every `sync.details_interval`,
//!   first after `sync.details_initial_delay`;
//! - the guide job fetches every enabled provider's XMLTV guide every
//!   `epg.refresh`, at once when a guide was never fetched or its file is
//!   missing, and (sooner) after a failed fetch; it also removes the guide
//!   files of providers that no longer exist;
//! - the history job samples the pool every `history.sample_interval`
//!   (slots, sessions, viewers, refusals per provider; stream starts per
//!   channel), checks the alert conditions as often, and once an hour folds
//!   old samples into hourly ones and deletes what is past
//!   `history.retention`. The details job checks the alert conditions after
//!   every run too, so an expiring or refused account is told at once.
//!
//! In cluster mode only the instance that holds the scheduler's lock runs
//! them ([`crate::cluster::Jobs`]): once per cluster, not once per instance;
//! each sync also holds its provider's sync lock, so a manual "sync now"
//! elsewhere never runs at the same time.

use std::time::Duration;

use tunerpool_catalog::Store;
use tunerpool_http::coord::{sync_provider_exclusive, ExclusiveSyncError};

use crate::cluster::Jobs;
use tunerpool_upstream::UpstreamHttp;

/// A failed sync is retried after this long, or after the catalog interval if shorter.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10 * 60);
/// How often the scheduler looks for due providers.
const TICK: Duration = Duration::from_secs(30);

/// How many accounts the details job asks at once.
const DETAILS_CONCURRENCY: usize = 4;

/// Spawns the catalog job; it stops when the returned guard is dropped.
pub fn spawn(store: Store, http: UpstreamHttp, interval: Duration, jobs: Jobs) -> CancelOnDrop {
    let handle = tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if !jobs.runs_jobs() {
                continue;
            }
            if let Err(e) = run_due(&store, &http, interval, &jobs).await {
                tracing::warn!(error = %e, "catalog scheduler: cannot read providers");
            }
        }
    });
    CancelOnDrop(handle)
}

/// Syncs, one after another, every provider that is due now (and not being synced elsewhere in the cluster).
pub async fn run_due(
    store: &Store,
    http: &UpstreamHttp,
    interval: Duration,
    jobs: &Jobs,
) -> Result<usize, tunerpool_catalog::CatalogError> {
    let now = tunerpool_catalog::now();
    let mut synced = 0;
    for p in store.providers().await? {
        if !p.enabled {
            continue;
        }
        let wait = match p.sync.ok {
            Some(false) => RETRY_AFTER_FAILURE.min(interval),
            _ => interval,
        };
        let due = p.sync.last_sync_at.is_none_or(|at| now - at >= wait.as_secs() as i64);
        if due {
            // Errors are recorded on the provider and logged by the sync itself.
            match sync_provider_exclusive(jobs.cluster(), store, http, p.id).await {
                Err(ExclusiveSyncError::Busy { instance, .. }) => {
                    tracing::info!(provider = %p.name, %instance, "catalog scheduler: the provider is being synced elsewhere");
                    continue;
                }
                Err(e @ ExclusiveSyncError::Coordination(_)) => {
                    tracing::warn!(provider = %p.name, error = %e, "catalog scheduler: sync skipped; retried next tick");
                    continue;
                }
                _ => synced += 1,
            }
        }
    }
    Ok(synced)
}

/// Spawns the details job; it stops when the returned guard is dropped.
pub fn spawn_details(
    store: Store,
    http: UpstreamHttp,
    initial_delay: Duration,
    interval: Duration,
    expiry_warning_days: u32,
    alerting: Alerting,
    jobs: Jobs,
) -> CancelOnDrop {
    let handle = tokio::spawn(async move {
        tokio::time::sleep(initial_delay).await;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if !jobs.runs_jobs() {
                continue;
            }
            match refresh_details(&store, &http).await {
                Ok(r) => {
                    tracing::info!(accounts = r.accounts, failed = r.failed, ms = r.ms, "account details refreshed");
                    if let Err(e) = warn_expiring(&store, expiry_warning_days).await {
                        tracing::warn!(error = %e, "account details job: cannot read accounts");
                    }
                    alerting.check(&store).await;
                }
                Err(e) => tracing::warn!(error = %e, "account details job: cannot read accounts"),
            }
        }
    });
    CancelOnDrop(handle)
}

/// How alerts are checked and where their deliveries are announced: shared
/// by the details job and the history job. Exists so that both check the
/// same rules against the same webhooks, and wake the one sender.
#[derive(Clone)]
pub struct Alerting {
    pub rules: tunerpool_alerts::Rules,
    pub webhooks: Vec<tunerpool_alerts::Webhook>,
    pub notify_resolved: bool,
    /// Notified when an alert opened or resolved: the sender sends at once.
    pub wake: std::sync::Arc<tokio::sync::Notify>,
}

impl Alerting {
    /// Checks the alert conditions now; errors are logged (the next check retries).
    pub async fn check(&self, store: &Store) {
        let now = tunerpool_catalog::now();
        match tunerpool_alerts::check(store, self.rules, &self.webhooks, self.notify_resolved, now).await {
            Ok(changed) if !changed.opened.is_empty() || !changed.resolved.is_empty() => self.wake.notify_one(),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "alerts: cannot check the conditions"),
        }
    }
}

/// What the history job does, and how often.
#[derive(Clone)]
pub struct HistoryJob {
    pub interval: Duration,
    pub retention: tunerpool_catalog::history::Retention,
    pub alerting: Alerting,
}

/// How often old samples are folded and expired ones deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Spawns the history job over the server's state; it stops when the
/// returned guard is dropped.
pub fn spawn_history(state: tunerpool_http::AppState, job: HistoryJob, jobs: Jobs) -> CancelOnDrop {
    let handle = tokio::spawn(async move {
        let mut tick = tokio::time::interval(job.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pruned: Option<tokio::time::Instant> = None;
        loop {
            tick.tick().await;
            if !jobs.runs_jobs() {
                continue;
            }
            history_tick(&state, &job, &mut pruned).await;
        }
    });
    CancelOnDrop(handle)
}

/// One run of the history job: sample, check alerts, prune when due.
pub async fn history_tick(
    state: &tunerpool_http::AppState,
    job: &HistoryJob,
    pruned: &mut Option<tokio::time::Instant>,
) {
    if let Err(e) = tunerpool_http::history::sample_pool(state).await {
        tracing::warn!(error = %e.message, "history job: cannot sample the pool");
    }
    job.alerting.check(&state.store).await;
    if pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
        *pruned = Some(tokio::time::Instant::now());
        match state.store.prune_history(tunerpool_catalog::now(), job.retention).await {
            Ok(r) => tracing::debug!(folded = r.folded, expired = r.expired, "history pruned"),
            Err(e) => tracing::warn!(error = %e, "history job: cannot prune"),
        }
    }
}

/// Logs a warning for every enabled account that expires within `days`.
pub async fn warn_expiring(store: &Store, days: u32) -> Result<usize, tunerpool_catalog::CatalogError> {
    let now = tunerpool_catalog::now();
    let mut n = 0;
    for p in store.providers().await? {
        for a in store.accounts(p.id).await?.into_iter().filter(|a| a.enabled) {
            if let Some(days_left) = tunerpool_catalog::days_left(a.details.exp_date, now) {
                if days_left < days as i64 {
                    n += 1;
                    tracing::warn!(provider = %p.name, account = %a.name, days_left, "account expires soon");
                }
            }
        }
    }
    Ok(n)
}

/// Outcome of one details job run.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DetailsRun {
    pub accounts: usize,
    pub failed: usize,
    pub ms: u64,
}

/// One run of the details job: every enabled account of every enabled Xtream
/// provider, `DETAILS_CONCURRENCY` at a time, each call bounded by the
/// upstream timeout; one failing account never stops the others (its error is
/// recorded on it).
pub async fn refresh_details(
    store: &Store,
    http: &UpstreamHttp,
) -> Result<DetailsRun, tunerpool_catalog::CatalogError> {
    use futures_util::StreamExt;
    let started = std::time::Instant::now();
    let mut work = Vec::new();
    for p in store.providers().await? {
        if !p.enabled || p.kind != tunerpool_catalog::ProviderKind::Xtream {
            continue;
        }
        for a in store.accounts(p.id).await? {
            if a.enabled {
                work.push((p.clone(), a));
            }
        }
    }
    // A hard bound on top of the HTTP client's own timeout.
    let limit = http.settings().timeout + http.settings().connect_timeout;
    let results: Vec<bool> = futures_util::stream::iter(work)
        .map(|(p, a)| async move {
            match tokio::time::timeout(limit, tunerpool_catalog::details::refresh_account(store, http, &p, &a)).await {
                Ok(Ok(_)) => true,
                Ok(Err(e)) => {
                    tracing::info!(provider = %p.name, account = %a.name, error = %e, "account details refresh failed");
                    false
                }
                Err(_) => {
                    let _ = store.record_details_error(a.id, "the panel did not answer in time").await;
                    tracing::info!(provider = %p.name, account = %a.name, "account details refresh timed out");
                    false
                }
            }
        })
        .buffer_unordered(DETAILS_CONCURRENCY)
        .collect()
        .await;
    Ok(DetailsRun {
        accounts: results.len(),
        failed: results.iter().filter(|ok| !**ok).count(),
        ms: started.elapsed().as_millis() as u64,
    })
}

/// Spawns the guide job; it stops when the returned guard is dropped.
pub fn spawn_epg(store: Store, http: UpstreamHttp, refresh: Duration, jobs: Jobs) -> CancelOnDrop {
    let handle = tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if !jobs.runs_jobs() {
                continue;
            }
            if let Err(e) = run_due_guides(&store, &http, refresh).await {
                tracing::warn!(error = %e, "guide job: cannot read providers");
            }
        }
    });
    CancelOnDrop(handle)
}

/// Fetches, one after another, the guide of every enabled provider that is
/// due now; returns how many fetches were attempted. Providers without a
/// guide source are passed over.
pub async fn run_due_guides(
    store: &Store,
    http: &UpstreamHttp,
    refresh: Duration,
) -> Result<usize, tunerpool_catalog::CatalogError> {
    use tunerpool_catalog::epg;
    let now = tunerpool_catalog::now();
    let statuses: std::collections::HashMap<i64, epg::EpgStatus> =
        epg::statuses(store).await?.into_iter().map(|s| (s.provider_id, s)).collect();
    let providers = store.providers().await?;
    remove_stale_guides(store.data_dir(), &providers);
    let mut attempted = 0;
    for p in providers.iter().filter(|p| p.enabled) {
        let status = statuses.get(&p.id);
        let failed = status.and_then(|s| s.ok) == Some(false);
        let wait = if failed { RETRY_AFTER_FAILURE.min(refresh) } else { refresh };
        let due = match status.and_then(|s| s.fetched_at) {
            None => true,
            Some(at) => {
                now - at >= wait.as_secs() as i64 || (!failed && !epg::guide_path(store.data_dir(), p.id).exists())
            }
        };
        if !due || !epg::has_guide_source(store, http, p).await? {
            continue;
        }
        attempted += 1;
        // Errors are recorded on the provider's guide status and logged.
        let _ = epg::refresh_guide(store, http, p.id).await;
    }
    Ok(attempted)
}

/// Removes guide files of providers that were deleted, and temporary files
/// a crash left behind (older than a day, so never one being written).
fn remove_stale_guides(data_dir: &std::path::Path, providers: &[tunerpool_catalog::Provider]) {
    let Ok(entries) = std::fs::read_dir(data_dir.join(tunerpool_catalog::epg::EPG_DIR)) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale = match tunerpool_catalog::epg::provider_of_guide_file(&name) {
            Some(id) => !providers.iter().any(|p| p.id == id),
            None => {
                name.ends_with(".tmp")
                    && entry
                        .metadata()
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > Duration::from_secs(86_400)))
            }
        };
        if stale {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => tracing::info!(file = %name, "removed a stale guide file"),
                Err(e) => tracing::warn!(file = %name, error = %e, "cannot remove a stale guide file"),
            }
        }
    }
}

/// The running scheduler; dropping it stops it.
pub struct CancelOnDrop(tokio::task::JoinHandle<()>);

impl CancelOnDrop {
    /// Stops `task` when the guard is dropped.
    pub fn new(task: tokio::task::JoinHandle<()>) -> CancelOnDrop {
        CancelOnDrop(task)
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use fakeprovider::{AccountSpec, FakeConfig, FakeProvider};
    use tunerpool_catalog::{AccountPatch, NewProvider, ProviderKind, Secret, Store};
    use tunerpool_upstream::{HttpSettings, UpstreamHttp};

    use super::{refresh_details, run_due_guides};

    async fn add(store: &Store, name: &str, url: &str, user: &str, pw: &str) -> i64 {
        let p = NewProvider {
            name: name.into(),
            kind: Some(ProviderKind::Xtream),
            url: url.into(),
            username: Some(user.into()),
            password: Some(Secret::new(pw)),
            enabled: true,
            ..Default::default()
        };
        store.add_provider(&p).await.unwrap().id
    }

    #[tokio::test]
    async fn details_job_isolates_failures_and_records_each_account() {
        let fake = FakeProvider::start(FakeConfig::with_accounts(vec![
            AccountSpec::new("a", "pa", 2),
            AccountSpec::new("b", "pb", 4),
        ]))
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let http = UpstreamHttp::new(HttpSettings { spool_dir: dir.path().join("tmp"), ..Default::default() }).unwrap();
        let good = add(&store, "good", &fake.url(), "a", "pa").await;
        let input =
            AccountPatch { username: Some("b".into()), password: Some(Secret::new("pb")), ..Default::default() };
        store.create_account(good, &input).await.unwrap();
        let dead = add(&store, "dead", "http://127.0.0.1:1", "x", "px").await;
        let disabled = AccountPatch { enabled: Some(false), ..input };
        let off = store.create_account(good, &AccountPatch { username: Some("c".into()), ..disabled }).await.unwrap();

        let run = refresh_details(&store, &http).await.unwrap();
        assert_eq!((run.accounts, run.failed), (3, 1), "disabled accounts are not asked");
        let limits: Vec<Option<i64>> = store
            .accounts(good)
            .await
            .unwrap()
            .iter()
            .filter(|a| a.enabled)
            .map(|a| a.details.max_connections)
            .collect();
        assert_eq!(limits, [Some(2), Some(4)]);
        let dead_primary = store.primary_account(dead).await.unwrap().unwrap();
        assert!(dead_primary.details.last_error.unwrap().contains("cannot reach"));
        assert_eq!(store.account(off.id).await.unwrap().details.last_checked, None);
    }

    #[tokio::test]
    async fn guide_job_fetches_missing_guides_and_retries_failures_later() {
        use std::time::Duration;
        use tunerpool_catalog::epg::{guide_path, statuses};

        let fake = FakeProvider::start(FakeConfig::with_accounts(vec![AccountSpec::new("a", "pa", 2)])).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let http = UpstreamHttp::new(HttpSettings { spool_dir: dir.path().join("tmp"), ..Default::default() }).unwrap();
        let good = add(&store, "good", &fake.url(), "a", "pa").await;
        let bad = add(&store, "bad", &fake.url(), "a", "wrong").await;
        let m3u = store
            .add_provider(&NewProvider {
                name: "m3u".into(),
                kind: Some(ProviderKind::M3u),
                url: "/nowhere.m3u".into(),
                enabled: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .id;
        let orphan = dir.path().join("epg").join("provider-999.xml");
        std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
        std::fs::write(&orphan, "<tv/>").unwrap();
        let day = Duration::from_secs(86_400);

        // First run: both Xtream providers are tried; the M3U one has no guide source.
        assert_eq!(run_due_guides(&store, &http, day).await.unwrap(), 2);
        assert!(guide_path(dir.path(), good).exists());
        assert!(!guide_path(dir.path(), bad).exists());
        assert!(!orphan.exists(), "the guide of a deleted provider is removed");
        let st = statuses(&store).await.unwrap();
        let of = |id: i64| st.iter().find(|s| s.provider_id == id).unwrap().clone();
        assert_eq!(of(good).ok, Some(true));
        assert_eq!(of(bad).ok, Some(false));
        assert_eq!(of(m3u).fetched_at, None);

        // Nothing is due right after; a failure waits for the retry delay
        // even though its guide is missing.
        assert_eq!(run_due_guides(&store, &http, day).await.unwrap(), 0);
        // A guide file that disappears is fetched again at once.
        std::fs::remove_file(guide_path(dir.path(), good)).unwrap();
        assert_eq!(run_due_guides(&store, &http, day).await.unwrap(), 1);
        assert!(guide_path(dir.path(), good).exists());
    }
}
