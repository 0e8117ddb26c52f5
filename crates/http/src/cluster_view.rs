//! The cluster-wide views: every instance's live sessions in `GET /api/v1/sessions` (and the UI's live
//! updates), and every instance with its counts in `GET /api/v1/pool`.
//!
//! Each instance publishes its own sessions in Redis with its registration heartbeat (every third of
//! `cluster.ttl`, in its `instance:{id}` record, which expires with it: [`status_text`],
//! `tunerpool_ledger::cluster::Cluster::set_status`), and a view reads every instance's record in one round
//! trip (`Cluster::peers`). Chosen over asking each peer on the internal endpoint when the view is asked for:
//! the answer takes one Redis round trip whatever the number of instances, a slow or hung peer cannot slow or
//! fail the API (it is simply missing once its record expires), a dead one disappears within a TTL without a
//! timeout to wait out, and no new authenticated endpoint is needed. The price: a peer's entries are up to a
//! third of the TTL old (`status_age_ms` says how old), and this instance's own are always current.
//!
//! The pool's slot counts need nothing of this: they come from the ledger, which is the cluster's already.
//! Events are in each instance's store; they are cluster-wide once the instances share one store
//! (PostgreSQL), with no change here.

use serde::Serialize;
use serde_json::Value;
use tunerpool_relay::relay::Relay;
use tunerpool_relay::session::SessionInfo;

use crate::AppState;

/// What an instance publishes: its live sessions, as `GET /api/v1/sessions` shows them.
pub fn status_text(relay: &Relay) -> String {
    serde_json::json!({ "sessions": relay.sessions() }).to_string()
}

/// One live session and the instance it runs on.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionEntry {
    #[serde(flatten)]
    pub session: SessionInfo,
    /// The instance whose session this is (its id; `owner` says which instance reads the provider). `null`
    /// outside cluster mode. Session ids are per instance: stop a session through its own instance.
    pub instance: Option<String>,
}

/// One instance of the cluster, as the pool status shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InstanceStatus {
    pub id: String,
    /// Its advertise URL (where its peers and its API are).
    pub url: String,
    /// Unix seconds.
    pub started_at: u64,
    /// Whether it is the instance that answered.
    pub this: bool,
    /// Its sessions that read the provider (it owns the channel).
    pub sessions_owned: usize,
    /// Its sessions that relay another instance's stream.
    pub sessions_relayed: usize,
    /// Clients watching through it (its peers relaying a channel not counted).
    pub viewers: usize,
    /// How old the counts are, in ms (`null` before it first published them).
    pub status_age_ms: Option<u64>,
}

/// The sessions of every instance, each naming its instance: this instance's as they are now, the others' as
/// they last published them. Outside cluster mode, this instance's (`instance` null). If Redis does not answer,
/// this instance's only (logged).
pub(crate) async fn sessions(st: &AppState) -> Vec<Value> {
    let link = st.relay.cluster();
    let me = link.as_ref().map(|l| l.instance_id().to_owned());
    let mut out: Vec<Value> = st.relay.sessions().into_iter().map(|s| with_instance(json(&s), me.as_deref())).collect();
    let Some(link) = link else { return out };
    match link.directory().peers().await {
        Ok(peers) => {
            for peer in peers.into_iter().filter(|p| Some(&p.info.id) != me.as_ref()) {
                let sessions = published_sessions(peer.status.as_deref());
                out.extend(sessions.into_iter().map(|s| with_instance(s, Some(&peer.info.id))));
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the other instances' sessions; showing this instance's"),
    }
    out
}

/// Every instance of the cluster with its counts (empty outside cluster mode; this instance alone if Redis does
/// not answer).
pub(crate) async fn instances(st: &AppState) -> Vec<InstanceStatus> {
    let Some(link) = st.relay.cluster() else { return Vec::new() };
    let me = link.directory().me().clone();
    let local: Vec<Value> = st.relay.sessions().iter().map(json).collect();
    let peers = match link.directory().peers().await {
        Ok(peers) => peers,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the cluster's instances; showing this one");
            Vec::new()
        }
    };
    let mut out: Vec<InstanceStatus> = peers
        .into_iter()
        .filter(|p| p.info.id != me.id)
        .map(|p| {
            let sessions = published_sessions(p.status.as_deref());
            let age = p.status_age.map(|a| u64::try_from(a.as_millis()).unwrap_or(u64::MAX));
            counts(p.info.id, p.info.url, p.info.started_at, false, &sessions, age)
        })
        .collect();
    out.push(counts(me.id, me.url, me.started_at, true, &local, Some(0)));
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

fn counts(
    id: String,
    url: String,
    started_at: u64,
    this: bool,
    sessions: &[Value],
    status_age_ms: Option<u64>,
) -> InstanceStatus {
    let owner = |s: &Value| s.get("owner").and_then(Value::as_str).map(str::to_owned);
    let live = sessions.iter().filter(|s| s.get("kind").and_then(Value::as_str) == Some("live"));
    let (mut owned, mut relayed) = (0, 0);
    for s in live {
        match owner(s) {
            Some(o) if o == id => owned += 1,
            Some(_) => relayed += 1,
            None => {}
        }
    }
    let viewers = sessions
        .iter()
        .flat_map(|s| s.get("viewers").and_then(Value::as_array).into_iter().flatten())
        .filter(|v| !v.get("address").and_then(Value::as_str).is_some_and(|a| a.starts_with("instance ")))
        .count();
    InstanceStatus {
        id,
        url,
        started_at,
        this,
        sessions_owned: owned,
        sessions_relayed: relayed,
        viewers,
        status_age_ms,
    }
}

fn json(s: &SessionInfo) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

fn with_instance(mut session: Value, instance: Option<&str>) -> Value {
    if let Value::Object(map) = &mut session {
        map.insert("instance".into(), instance.map_or(Value::Null, |i| Value::String(i.to_owned())));
    }
    session
}

/// The sessions in a published status (none if it is missing or not understood: a peer of another version).
fn published_sessions(status: Option<&str>) -> Vec<Value> {
    let Some(text) = status else { return Vec::new() };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(mut doc)) => match doc.remove("sessions") {
            Some(Value::Array(list)) => list.into_iter().filter(Value::is_object).collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_tell_owned_from_relayed_and_skip_peer_viewers() {
        let sessions = vec![
            serde_json::json!({"kind": "live", "owner": "a", "viewers": [{"address": "1.2.3.4:5"}, {"address": "instance b"}]}),
            serde_json::json!({"kind": "live", "owner": "b", "viewers": [{"address": "1.2.3.5:5"}]}),
            serde_json::json!({"kind": "movie", "owner": null, "viewers": [{"address": "1.2.3.6:5"}]}),
        ];
        let c = counts("a".into(), "http://a".into(), 1, true, &sessions, Some(0));
        assert_eq!((c.sessions_owned, c.sessions_relayed, c.viewers), (1, 1, 3));
    }

    #[test]
    fn published_status_is_read_leniently() {
        assert_eq!(published_sessions(Some(r#"{"sessions":[{"id":1},2]}"#)).len(), 1);
        assert!(published_sessions(Some("not json")).is_empty());
        assert!(published_sessions(None).is_empty());
    }
}
