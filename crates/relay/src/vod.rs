//! Movies and episodes: proxied file requests with `Range` passed through.
//!
//! A VOD request holds a slot on an account for as long as its body is
//! being sent — the lease lives inside the body stream — because a panel
//! counts a file download as a connection like any other. Unlike live
//! channels, VOD responses are not shared: each viewer seeks on its own.
//! Each download is listed with the live sessions (a slot it holds must be
//! visible and stoppable) as a [`Transfer`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Instant;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tunerpool_domain::{Channel, ChannelSource, MediaKind};

use crate::catalog::{LookupError, VodSource};

use crate::relay::{Relay, WatchError};
use crate::session::{unix, SessionInfo, State, UpstreamInfo, ViewerInfo};
use crate::source::{acquire_waiting, AcquireError, Claim, Excluded, Media};
use crate::users::Viewer;

/// Response headers worth passing on from the provider.
const PASSED_HEADERS: &[&str] =
    &["content-type", "content-length", "content-range", "accept-ranges", "last-modified", "etag"];

/// A provider's answer to a VOD request, ready to be sent on.
pub struct VodResponse {
    /// 200, 206 (a range) or 416 (a bad range), as the provider said.
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>,
}

/// One movie or episode being sent, for the sessions API.
pub(crate) struct Transfer {
    id: u64,
    /// `movie`, `series` or `timeshift`.
    kind: &'static str,
    item_id: i64,
    name: String,
    upstream: UpstreamInfo,
    address: String,
    user: Option<String>,
    started: Instant,
    started_at: u64,
    bytes: AtomicU64,
    pub(crate) stop: tokio_util::sync::CancellationToken,
}

/// The downloads in progress, by id (ids shared with live sessions).
pub(crate) type Transfers = Arc<Mutex<HashMap<u64, Arc<Transfer>>>>;

/// Takes a transfer off the list when its body is dropped.
struct Listed {
    transfers: Transfers,
    id: u64,
}

impl Drop for Listed {
    fn drop(&mut self) {
        let gone = self.transfers.lock().remove(&self.id);
        if let Some(t) = gone {
            tracing::info!(target: "tunerpool::stream", session = t.id, kind = t.kind, user = t.user.as_deref().unwrap_or("-"),
                channel = %t.name, provider = %t.upstream.provider, account = %t.upstream.account, client = %t.address,
                bytes = t.bytes.load(Ordering::Relaxed), seconds = t.started.elapsed().as_secs(), "stream stopped");
        }
    }
}

impl Transfer {
    pub(crate) fn info(&self) -> SessionInfo {
        let bytes = self.bytes.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64();
        SessionInfo {
            id: self.id,
            kind: self.kind,
            channel_id: self.item_id,
            channel: self.name.clone(),
            state: State::Running,
            upstream: Some(self.upstream.clone()),
            bytes,
            buffered_bytes: 0,
            buffer_capacity_bytes: 0,
            bitrate_bps: if secs > 0.5 { (bytes as f64 * 8.0 / secs) as u64 } else { 0 },
            failovers: 0,
            started_at: self.started_at,
            viewers: vec![ViewerInfo {
                id: self.id,
                address: self.address.clone(),
                user: self.user.clone(),
                since: self.started_at,
                bytes,
                jumps: 0,
            }],
            profile: None,
            transcoder: None,
            owner: None,
        }
    }
}

impl Relay {
    /// Opens a movie or an episode, passing `range` (the client's `Range`
    /// header) through to the provider.
    pub async fn open_vod(
        &self,
        kind: MediaKind,
        id: i64,
        range: Option<&str>,
        viewer: &Viewer,
    ) -> Result<VodResponse, WatchError> {
        let inner = self.inner();
        let VodSource { source, name, ext: stored_ext } = match inner.catalog.vod_source(kind, id).await {
            Ok(s) => s,
            Err(LookupError::NotFound { .. }) => return Err(WatchError::UnknownChannel(id)),
            Err(e) => return Err(WatchError::Internal(e.to_string())),
        };
        let provider =
            inner.catalog.provider(source.provider_id).await.map_err(|e| WatchError::Internal(e.to_string()))?;
        let ext = stored_ext.unwrap_or_else(|| "mp4".to_string());
        // A one-source "channel" so that selection, preemption and waiting
        // are exactly those of live channels.
        let item = Channel {
            id,
            name: name.clone(),
            group: None,
            tvg_id: None,
            logo: None,
            number: None,
            enabled: true,
            available: true,
            auto_order: true,
            always_on: false,
            sources: vec![ChannelSource {
                stream_id: id,
                provider_id: provider.id,
                provider: provider.name.clone(),
                upstream_id: source.upstream_id,
                name: name.clone(),
                ..Default::default()
            }],
            ..Default::default()
        };
        self.open_file(item, kind.as_str(), Media::Vod { kind, ext }, range, viewer).await
    }

    /// Opens a live channel's archive (Xtream catch-up) from `start`
    /// (`YYYY-MM-DD:HH-MM`, the provider's time) for `duration` minutes; sent
    /// like a file, with `Range` passed through. Every source of the channel
    /// is a candidate, in order.
    pub async fn open_timeshift(
        &self,
        channel_id: i64,
        duration: u32,
        start: &str,
        range: Option<&str>,
        viewer: &Viewer,
    ) -> Result<VodResponse, WatchError> {
        let channel = match self.inner().catalog.channel(channel_id).await {
            Ok(c) => c,
            Err(LookupError::NotFound { .. }) => return Err(WatchError::UnknownChannel(channel_id)),
            Err(e) => return Err(WatchError::Internal(e.to_string())),
        };
        let media = Media::Timeshift { duration, start: start.to_string() };
        self.open_file(channel, "timeshift", media, range, viewer).await
    }

    /// Leases a slot for `item`, opens `media` from its provider and hands the
    /// body on, the lease (and the user's ticket) riding along with it.
    async fn open_file(
        &self,
        item: Channel,
        kind: &'static str,
        media: Media,
        range: Option<&str>,
        viewer: &Viewer,
    ) -> Result<VodResponse, WatchError> {
        let inner = self.inner();
        let (id, name) = (item.id, item.name.clone());
        // A download counts against the user's own limit like a live stream.
        let ticket = self.claim_user_slot(viewer, || format!("{kind} {name}")).await?;
        let stop = tokio_util::sync::CancellationToken::new();
        let holder = format!("{kind} {id} {name}");
        let claim = Claim::viewer(&inner.settings, viewer.priority());
        let resolved = match acquire_waiting(inner, &stop, 0, &item, &mut Excluded::new(), &holder, &media, claim).await
        {
            Ok(r) => r,
            Err(AcquireError::NoCapacity(why)) => {
                inner.metrics.refused(crate::metrics::Refusal::NoCapacity);
                inner.metrics.refused_at(item.sources.iter().map(|s| s.provider_id));
                return Err(WatchError::NoCapacity(why));
            }
            Err(AcquireError::NoCandidates(why)) | Err(AcquireError::Backend(why)) => {
                inner.metrics.refused(crate::metrics::Refusal::UpstreamFailed);
                return Err(WatchError::Upstream(why));
            }
        };
        let mut req = inner.client.get(&resolved.url);
        for (k, v) in &resolved.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some(r) = range {
            req = req.header("range", r);
        }
        let resp = match tokio::time::timeout(inner.settings.open_timeout, req.send()).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                return Err(WatchError::Upstream(format!(
                    "cannot reach the provider for {kind}: {}",
                    tunerpool_upstream::http::describe_reqwest_error(&e, &[])
                )))
            }
            Err(_) => return Err(WatchError::Upstream("the provider did not answer in time".into())),
        };
        let status = resp.status().as_u16();
        if !(resp.status().is_success() || status == 416) {
            return Err(WatchError::Upstream(format!("the provider answered HTTP {status} for {kind} {id}")));
        }
        tracing::info!(kind, id, provider = %resolved.provider, account = %resolved.account,
            url = %resolved.shown_url, status, range = range.unwrap_or(""), "VOD opened");
        let headers = PASSED_HEADERS
            .iter()
            .filter_map(|h| {
                resp.headers().get(*h).and_then(|v| v.to_str().ok()).map(|v| (h.to_string(), v.to_string()))
            })
            .collect();
        let labels = crate::metrics::AccountLabels::new(&resolved.provider, &resolved.account, resolved.account_id);
        let counters = inner.metrics.upstream(&labels);
        let transfer = Arc::new(Transfer {
            id: inner.next_id.fetch_add(1, Ordering::Relaxed),
            kind,
            item_id: id,
            name,
            upstream: UpstreamInfo {
                provider: resolved.provider.clone(),
                account: resolved.account.clone(),
                account_id: resolved.account_id,
                stream_id: resolved.stream_id,
                url: resolved.shown_url.clone(),
            },
            address: viewer.address.clone(),
            user: viewer.user.as_ref().map(|u| u.name.clone()),
            started: Instant::now(),
            started_at: unix(std::time::SystemTime::now()),
            bytes: AtomicU64::new(0),
            stop,
        });
        inner.transfers.lock().insert(transfer.id, transfer.clone());
        tracing::info!(target: "tunerpool::stream", session = transfer.id, kind, user = transfer.user.as_deref().unwrap_or("-"),
            channel = %transfer.name, provider = %resolved.provider, account = %resolved.account, client = %transfer.address,
            "stream started");
        let listed = Listed { transfers: inner.transfers.clone(), id: transfer.id };
        let stopped = transfer.stop.clone().cancelled_owned();
        // The lease, the user's ticket and the listing ride along with the
        // body: all are given back when it ends or is dropped.
        let lease = resolved.lease;
        let body = resp
            .bytes_stream()
            .map(move |chunk| {
                let _held = (&lease, &listed);
                if ticket.as_ref().is_some_and(|t| t.is_revoked()) {
                    return Err(std::io::Error::other("replaced by a newer stream of the same user"));
                }
                let chunk = chunk.map_err(std::io::Error::other)?;
                transfer.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                counters.received.inc_by(chunk.len() as u64);
                counters.sent.inc_by(chunk.len() as u64);
                Ok(chunk)
            })
            .take_until(stopped);
        Ok(VodResponse { status, headers, body: Box::pin(body) })
    }
}
