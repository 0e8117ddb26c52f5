//! Cluster mode at start: this instance's id (`cluster.instance_id`, else `{data_dir}/instance-id`, generated
//! once), its registration in Redis with a heartbeat, the relay's link to the cluster, and the election of the
//! one instance that runs the scheduled jobs ([`Jobs`]).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rand::RngCore;
use tunerpool_ledger::cluster::{unix_now, Claimed, Cluster, InstanceInfo};
use tunerpool_relay::cluster::ClusterLink;
use tunerpool_relay::relay::Relay;

use crate::config::Config;

/// Name of the instance id file in the data dir.
pub const FILE: &str = "instance-id";

/// This instance's id: configured, else read from `{data_dir}/instance-id`, else generated and written there.
pub fn instance_id(config: &Config) -> anyhow::Result<String> {
    if let Some(id) = &config.cluster.instance_id {
        return Ok(id.clone());
    }
    let path = config.data_dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim().to_owned();
            let ok = !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            anyhow::ensure!(ok, "{}: not a usable instance id; delete it or set cluster.instance_id", path.display());
            Ok(id)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 6];
            rand::rng().fill_bytes(&mut bytes);
            let id = format!("tp-{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
            write_new(&path, &id)?;
            Ok(id)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(format!("{text}\n").as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The name of the lock the instance that runs the scheduled jobs holds.
pub const SCHEDULER_LOCK: &str = "scheduler";

/// Whether this instance runs the scheduled jobs (catalog re-syncs, account details, guides, history and alerts;
/// the relay's automatic probes through the same flag), and the cluster its syncs coordinate through.
///
/// Exists because those jobs write the shared store and ask the providers: run by every instance of a cluster
/// they would ask each provider once per instance and record every sample and alert check as many times. In
/// cluster mode one instance at a time holds the cluster-wide lock [`SCHEDULER_LOCK`] (renewed while it lives,
/// taken over by another instance within about two `cluster.ttl` when it dies) and runs them; outside cluster mode
/// the instance always does.
#[derive(Clone)]
pub struct Jobs {
    leader: Arc<AtomicBool>,
    cluster: Option<Cluster>,
}

impl Jobs {
    /// Outside cluster mode: this instance runs every job.
    pub fn standalone() -> Self {
        Jobs { leader: Arc::new(AtomicBool::new(true)), cluster: None }
    }

    /// Whether this instance runs the scheduled jobs now.
    pub fn runs_jobs(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    /// The cluster, in cluster mode (the syncs' locks).
    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref()
    }
}

/// Holds the scheduler's lock whenever it is free: claims it, keeps it until it is lost (Redis unreachable for a
/// TTL), and tries again every TTL; stopped (and the lock released) when the handle is aborted.
/// `first`: the outcome of the first claim, made before the jobs start (so the first instance runs them at once).
fn spawn_election(
    cluster: Cluster,
    leader: Arc<AtomicBool>,
    first: Result<Claimed, tunerpool_ledger::LedgerError>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let retry = cluster.ttl().max(Duration::from_millis(100));
        let mut next = Some(first);
        loop {
            let claimed = match next.take() {
                Some(first) => first,
                None => cluster.lock(SCHEDULER_LOCK).await,
            };
            match claimed {
                Ok(Claimed::Ours(guard)) => {
                    leader.store(true, Ordering::Relaxed);
                    tracing::info!("cluster: this instance runs the scheduled jobs");
                    guard.lost().await;
                    leader.store(false, Ordering::Relaxed);
                    tracing::warn!(
                        "cluster: this instance lost the scheduler's lock; another instance may run the jobs"
                    );
                    drop(guard);
                }
                Ok(Claimed::Theirs { instance, .. }) => {
                    tracing::trace!(%instance, "cluster: another instance runs the scheduled jobs");
                }
                Err(e) => tracing::debug!(error = %e, "cluster: cannot read the scheduler's lock"),
            }
            tokio::time::sleep(retry).await;
        }
    })
}

/// What [`join`] started; dropping it stops the heartbeat and the election (releasing the scheduler's lock).
pub struct Membership {
    _heartbeat: crate::scheduler::CancelOnDrop,
    _election: crate::scheduler::CancelOnDrop,
}

/// Joins the cluster when cluster mode is on: registers this instance in Redis, starts its heartbeat and the
/// election of the instance that runs the scheduled jobs, and links the relay. Off: nothing changes, and this
/// instance runs every job.
pub async fn join(config: &Config, relay: &Relay) -> anyhow::Result<(Jobs, Option<Membership>)> {
    let (Some(url), Some(secret)) = (&config.pool.redis_url, &config.cluster.secret) else {
        return Ok((Jobs::standalone(), None));
    };
    let advertise =
        config.cluster.advertise_url.clone().context("cluster.advertise_url is required in cluster mode")?;
    let me = InstanceInfo { id: instance_id(config)?, url: advertise, started_at: unix_now() };
    let directory = Cluster::connect(url, config.cluster.ttl, "tunerpool:", me)
        .await
        .context("cannot join the cluster (check pool.redis_url and that Redis is running)")?;
    // Its sessions go with every heartbeat: the cluster-wide sessions and pool views read them.
    let published = relay.clone();
    directory.set_status(move || tunerpool_http::cluster_view::status(&published));
    let heartbeat = directory.spawn_heartbeat();
    tracing::info!(instance = %directory.me().id, advertise = %tunerpool_upstream::redact::redact_url(&directory.me().url, &[]),
        ttl = ?config.cluster.ttl, "cluster mode: registered in Redis");
    let first = directory.lock(SCHEDULER_LOCK).await;
    let leader = Arc::new(AtomicBool::new(matches!(first, Ok(Claimed::Ours(_)))));
    let election = spawn_election(directory.clone(), leader.clone(), first);
    relay.set_cluster(ClusterLink::new(directory.clone(), secret.clone()).with_jobs_flag(leader.clone()));
    let membership = Membership {
        _heartbeat: crate::scheduler::CancelOnDrop::new(heartbeat),
        _election: crate::scheduler::CancelOnDrop::new(election),
    };
    Ok((Jobs { leader, cluster: Some(directory) }, Some(membership)))
}
