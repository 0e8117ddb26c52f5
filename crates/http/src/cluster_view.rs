//! The cluster-wide views: every instance's live sessions in `GET /api/v1/sessions` (and the UI's live
//! updates), and every instance with its counts in `GET /api/v1/pool`.
//!
//! Each instance publishes its own sessions in Redis with its registration heartbeat (every third of
//! `cluster.ttl`, in its `instance:{id}` record, which expires with it: [`status`],
//! `tunerpool_ledger::cluster::Cluster::set_status`; rewritten only when a session, viewer, state or owner
//! changed, else confirmed, and its counters refreshed every `STATUS_REFRESH`), and a view reads every
//! instance's record in one round trip (`Cluster::peers`). Chosen over asking each peer on the internal endpoint when the view is asked for:
//! the answer takes one Redis round trip whatever the number of instances, a slow or hung peer cannot slow or
//! fail the API (it is simply missing once its record expires), a dead one disappears within a TTL without a
//! timeout to wait out, and no new authenticated endpoint is needed. The price: a peer's entries are up to a
//! third of the TTL old (`status_age_ms` says how old), their byte counters and bitrates up to
//! `STATUS_REFRESH` (10 s) older, and this instance's own are always current.
//!
//! The pool's slot counts need nothing of this: they come from the ledger, which is the cluster's already.
//! Events are in each instance's store; they are cluster-wide once the instances share one store
//! (PostgreSQL), with no change here.

use serde::Serialize;
use serde_json::Value;
use tunerpool_ledger::cluster::Status;
use tunerpool_relay::relay::Relay;
use tunerpool_relay::session::SessionInfo;

use crate::AppState;

/// What an instance publishes: its live sessions, as `GET /api/v1/sessions` shows them. Its shape is every
/// field but the counters that move all the time ([`shape`]): a new or ended session, a viewer come or gone, a
/// state, an upstream or an owner changed is written at the next heartbeat; bytes and bitrates alone at most
/// every [`tunerpool_ledger::cluster::STATUS_REFRESH`].
pub fn status(relay: &Relay) -> Status {
    let sessions = relay.sessions();
    Status::new(shape(&sessions), move || serde_json::json!({ "sessions": sessions }).to_string())
}

/// A digest of `sessions` without their counters (bytes, buffer fill and size, bitrates, viewers' bytes and
/// jumps, a transcoder's log lines). Every other field counts, those added later included.
fn shape(sessions: &[SessionInfo]) -> u64 {
    use std::hash::Hasher;
    /// Feeds what serde writes into the hasher, without making the text.
    struct Digest(std::collections::hash_map::DefaultHasher);
    impl std::io::Write for Digest {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.write(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut digest = Digest(std::collections::hash_map::DefaultHasher::new());
    for s in sessions {
        let mut s = s.clone();
        (s.bytes, s.buffered_bytes, s.buffer_capacity_bytes, s.bitrate_bps) = (0, 0, 0, 0);
        for v in &mut s.viewers {
            (v.bytes, v.jumps) = (0, 0);
        }
        if let Some(t) = &mut s.transcoder {
            t.log.clear();
        }
        // Writing into a hasher cannot fail, nor can serializing these types.
        let _ = serde_json::to_writer(&mut digest, &s);
        digest.0.write_u8(b'\n');
    }
    digest.0.finish()
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

/// The other instances whose published sessions include one with id `session` (session ids are per instance:
/// there may be several). Empty outside cluster mode.
pub(crate) async fn holders(st: &AppState, session: u64) -> Result<Vec<String>, tunerpool_ledger::LedgerError> {
    let Some(link) = st.relay.cluster() else { return Ok(Vec::new()) };
    let me = link.instance_id().to_owned();
    let peers = link.directory().peers().await?;
    Ok(peers
        .into_iter()
        .filter(|p| p.info.id != me)
        .filter(|p| {
            published_sessions(p.status.as_deref()).iter().any(|s| s.get("id").and_then(Value::as_u64) == Some(session))
        })
        .map(|p| p.info.id)
        .collect())
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

    fn session(id: u64, bytes: u64, viewers: &[(u64, u64)]) -> SessionInfo {
        SessionInfo {
            id,
            kind: "live",
            channel_id: 7,
            channel: "Seven".into(),
            state: tunerpool_relay::session::State::Running,
            upstream: None,
            bytes,
            buffered_bytes: bytes / 2,
            buffer_capacity_bytes: bytes,
            bitrate_bps: bytes * 8,
            failovers: 0,
            started_at: 1,
            viewers: viewers
                .iter()
                .map(|&(id, bytes)| tunerpool_relay::session::ViewerInfo {
                    id,
                    address: "1.2.3.4:5".into(),
                    user: None,
                    since: 1,
                    bytes,
                    jumps: 0,
                })
                .collect(),
            profile: None,
            transcoder: None,
            owner: Some("a".into()),
        }
    }

    #[test]
    fn the_shape_ignores_counters_and_sees_sessions_viewers_and_states() {
        let base = shape(&[session(1, 100, &[(1, 50)])]);
        assert_eq!(shape(&[session(1, 9_000, &[(1, 4_000)])]), base, "counters alone changed the shape");
        assert_ne!(shape(&[session(1, 100, &[(1, 50), (2, 0)])]), base, "a viewer came");
        assert_ne!(shape(&[session(1, 100, &[])]), base, "the viewer left");
        assert_ne!(shape(&[session(1, 100, &[(1, 50)]), session(2, 0, &[])]), base, "a session started");
        assert_ne!(shape(&[]), base, "the session ended");
        let mut lingering = session(1, 100, &[(1, 50)]);
        lingering.state = tunerpool_relay::session::State::Lingering;
        assert_ne!(shape(&[lingering]), base, "its state changed");
    }

    #[test]
    fn published_status_is_read_leniently() {
        assert_eq!(published_sessions(Some(r#"{"sessions":[{"id":1},2]}"#)).len(), 1);
        assert!(published_sessions(Some("not json")).is_empty());
        assert!(published_sessions(None).is_empty());
    }
}
