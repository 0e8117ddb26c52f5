//! Cluster mode at start: this instance's id (`cluster.instance_id`, else `{data_dir}/instance-id`, generated
//! once), its registration in Redis with a heartbeat, and the relay's link to the cluster.

use std::path::Path;

use anyhow::Context;
use rand::RngCore;
use tunerpool_ledger::cluster::{unix_now, Cluster, InstanceInfo};
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

/// Joins the cluster when cluster mode is on: registers this instance in Redis, starts its heartbeat (stopped
/// when the returned guard is dropped) and links the relay. Off: nothing changes and `None` is returned.
pub async fn join(config: &Config, relay: &Relay) -> anyhow::Result<Option<crate::scheduler::CancelOnDrop>> {
    let (Some(url), Some(secret)) = (&config.pool.redis_url, &config.cluster.secret) else { return Ok(None) };
    let advertise =
        config.cluster.advertise_url.clone().context("cluster.advertise_url is required in cluster mode")?;
    let me = InstanceInfo { id: instance_id(config)?, url: advertise, started_at: unix_now() };
    let directory = Cluster::connect(url, config.cluster.ttl, "tunerpool:", me)
        .await
        .context("cannot join the cluster (check pool.redis_url and that Redis is running)")?;
    let heartbeat = directory.spawn_heartbeat();
    tracing::info!(instance = %directory.me().id, advertise = %tunerpool_upstream::redact::redact_url(&directory.me().url, &[]),
        ttl = ?config.cluster.ttl, "cluster mode: registered in Redis");
    relay.set_cluster(ClusterLink::new(directory, secret.clone()));
    Ok(Some(crate::scheduler::CancelOnDrop::new(heartbeat)))
}
