//! From a channel to an upstream URL with a slot: select candidates, lease
//! a slot atomically, and build the URL for the account that won.

use std::collections::{HashMap, HashSet};

use tunerpool_domain::{Account, Channel, MediaKind, Provider, ProviderKind};
use tunerpool_ledger::{AnyLedger, Lease, Ledger, LedgerError, Slot};
use tunerpool_pool::rewrite::{rewrite_xtream, xtream_url, RegexRewrite, StreamKind};
use tunerpool_pool::select::{no_capacity, plan, ProviderPool, SelectInput};
use tunerpool_upstream::redact::redact_url;

use crate::catalog::Catalog;

/// A slot and where to use it.
pub(crate) struct Resolved {
    pub lease: Lease<AnyLedger>,
    pub url: String,
    /// `url` with credentials masked, for logs and the sessions API.
    pub shown_url: String,
    pub headers: Vec<(String, String)>,
    pub stream_id: i64,
    pub provider: String,
    pub account_id: i64,
    pub account: String,
}

/// Why no upstream could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AcquireError {
    /// Every usable account is at its limit; the message lists them all.
    #[error("{0}")]
    NoCapacity(String),
    /// Nothing left to try (every candidate failed or none is usable).
    #[error("{0}")]
    NoCandidates(String),
    #[error("{0}")]
    Backend(String),
}

/// What is being opened: a live stream (MPEG-TS), or a movie / episode
/// file (passed through as it is, with its container extension).
#[derive(Debug, Clone)]
pub(crate) enum Media {
    Live,
    Vod {
        kind: MediaKind,
        ext: String,
    },
    /// A live stream's archive: `duration` minutes from `start`.
    Timeshift {
        duration: u32,
        start: String,
    },
}

/// Whom a slot is acquired for: what it must leave free, and what it may
/// stop to get one. Decided by whoever starts a session (its first viewer,
/// or the always-on keeper) and kept for the session's failovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claim {
    /// Slots that must stay free on the account (and capped provider) after this one.
    pub reserve: u32,
    /// The requester's priority: with `pool.preempt`, sessions below it may be stopped for the slot.
    pub priority: u8,
    /// Whether idle sessions and probes are stopped for the slot (false for always-on keepers: two always-on
    /// channels must not take each other's slot in turns).
    pub preempts: bool,
    /// Started for a peer instance's internal request (cluster mode): the session must own the channel itself
    /// and never follow another instance, so a stream is never forwarded twice.
    pub from_peer: bool,
}

impl Claim {
    /// A viewer's claim: below `reserved_priority` it leaves the reserved slots free.
    pub(crate) fn viewer(settings: &crate::settings::RelaySettings, priority: u8) -> Claim {
        let reserve = if priority < settings.reserved_priority { settings.reserved_slots } else { 0 };
        Claim { reserve, priority, preempts: true, from_peer: false }
    }
}

/// The (stream, account) pairs a session must not try again.
pub(crate) type Excluded = HashSet<(i64, i64)>;

/// Accounts a channel could use, for preempting lingering sessions.
pub(crate) fn candidate_accounts(channel_accounts: &[(Provider, Vec<Account>)]) -> HashSet<i64> {
    channel_accounts.iter().flat_map(|(_, accts)| accts.iter().map(|a| a.id)).collect()
}

pub(crate) async fn load_providers(
    catalog: &dyn Catalog,
    channel: &Channel,
) -> Result<Vec<(Provider, Vec<Account>)>, AcquireError> {
    let mut out: Vec<(Provider, Vec<Account>)> = Vec::new();
    for src in &channel.sources {
        if out.iter().any(|(p, _)| p.id == src.provider_id) {
            continue;
        }
        let p = catalog.provider(src.provider_id).await.map_err(|e| AcquireError::Backend(e.to_string()))?;
        let accounts = catalog.accounts(p.id).await.map_err(|e| AcquireError::Backend(e.to_string()))?;
        out.push((p, accounts));
    }
    Ok(out)
}

/// Each source's quality score, in the channel's order, for a channel that
/// orders its sources itself (by hand-ordered channels, and with only one
/// source, none: the order is given). A catalog that cannot answer leaves the
/// sources unscored (logged): a missing score must not keep a channel off air.
async fn source_scores(inner: &crate::relay::Inner, channel: &Channel) -> Vec<f64> {
    if !channel.auto_order || channel.sources.len() < 2 {
        return Vec::new();
    }
    let ids = channel.sources.iter().map(|s| s.stream_id).collect();
    match inner.catalog.source_quality(ids).await {
        Ok(known) => channel
            .sources
            .iter()
            .map(|s| tunerpool_domain::quality::score(known.get(&s.stream_id), &inner.settings.quality_weights))
            .collect(),
        Err(e) => {
            tracing::warn!(channel = channel.id, error = %e, "source quality unavailable; sources keep their order");
            Vec::new()
        }
    }
}

/// One attempt: plan, lease, URL. Candidates whose URL cannot be built are
/// excluded and the next is tried. `reserve` slots must stay free on the
/// account (and on a provider that caps its accounts together) after this
/// one: 0 for viewers, more for a probe.
pub(crate) async fn acquire(
    inner: &crate::relay::Inner,
    channel: &Channel,
    providers: &[(Provider, Vec<Account>)],
    excluded: &mut Excluded,
    holder: &str,
    media: &Media,
    reserve: u32,
) -> Result<Resolved, AcquireError> {
    let (catalog, ledger, policy) = (&*inner.catalog, &inner.ledger, inner.settings.policy);
    let pools: HashMap<i64, ProviderPool> =
        providers.iter().map(|(p, a)| (p.id, ProviderPool { provider: p, accounts: a.as_slice() })).collect();
    let scores = source_scores(inner, channel).await;
    loop {
        let usage = ledger.usage().await.map_err(|e| AcquireError::Backend(e.to_string()))?;
        let input = SelectInput {
            sources: &channel.sources,
            providers: &pools,
            active: &usage.accounts,
            policy,
            now_unix: tunerpool_domain::now(),
            scores: &scores,
            quality_policy: inner.settings.quality_policy,
        };
        let mut planned = plan(&input);
        if !channel.auto_order {
            // The user ordered the sources by hand: their order wins over the
            // provider ranking (accounts stay in policy order per source).
            planned.candidates.sort_by_key(|c| c.source_index);
        }
        let candidates: Vec<_> =
            planned.candidates.into_iter().filter(|c| !excluded.contains(&(c.stream_id, c.account_id))).collect();
        if candidates.is_empty() {
            return Err(if excluded.is_empty() {
                AcquireError::NoCandidates(no_capacity(&input).to_string())
            } else {
                AcquireError::NoCandidates(format!("every source of channel {} failed", channel.name))
            });
        }
        let slots: Vec<Slot> = candidates
            .iter()
            .map(|c| Slot {
                account: c.account_key,
                account_max: c.account_max.saturating_sub(reserve),
                provider: c.provider_key,
                provider_max: c.provider_max.map(|max| max.saturating_sub(reserve)),
            })
            .collect();
        let lease = match Lease::acquire(ledger.clone(), &slots, holder).await {
            Ok(l) => l,
            Err(LedgerError::Full) => {
                let usage = ledger.usage().await.map_err(|e| AcquireError::Backend(e.to_string()))?;
                let input = SelectInput { active: &usage.accounts, ..input };
                return Err(AcquireError::NoCapacity(no_capacity(&input).to_string()));
            }
            Err(e) => return Err(AcquireError::Backend(e.to_string())),
        };
        let c = &candidates[lease.info().index];
        let (provider, accounts) = providers.iter().find(|(p, _)| p.id == c.provider_id).expect("planned from these");
        let account = accounts.iter().find(|a| a.id == c.account_id).expect("planned from these");
        let mut prefix = String::new();
        let (source, kind, ext) = match media {
            Media::Live => {
                let s = catalog.stream_source(c.stream_id).await;
                (s.map_err(|e| AcquireError::Backend(e.to_string()))?, StreamKind::Live, "ts")
            }
            Media::Timeshift { duration, start } => {
                prefix = format!("{duration}/{start}/");
                let s = catalog.stream_source(c.stream_id).await;
                (s.map_err(|e| AcquireError::Backend(e.to_string()))?, StreamKind::Timeshift, "ts")
            }
            Media::Vod { kind, ext } => {
                let s = catalog
                    .vod_source(*kind, c.stream_id)
                    .await
                    .map_err(|e| AcquireError::Backend(e.to_string()))?
                    .source;
                let k = if *kind == MediaKind::Series { StreamKind::Series } else { StreamKind::Movie };
                (s, k, ext.as_str())
            }
        };
        let primary = accounts.iter().find(|a| a.is_primary);
        let id = source.upstream_id.map(|id| format!("{prefix}{id}"));
        match stream_url(provider, primary, account, kind, ext, id.as_deref(), source.url.as_deref()) {
            Ok(url) => {
                let secrets = [account.password.expose(), primary.map(|p| p.password.expose()).unwrap_or_default()];
                let mut headers = source.headers.clone();
                if let Some(ua) =
                    provider.user_agent.as_ref().filter(|_| !headers.iter().any(|(k, _)| k == "user-agent"))
                {
                    headers.push(("user-agent".into(), ua.clone()));
                }
                return Ok(Resolved {
                    shown_url: redact_url(&url, &secrets),
                    url,
                    headers,
                    stream_id: c.stream_id,
                    provider: provider.name.clone(),
                    account_id: account.id,
                    account: account.name.clone(),
                    lease,
                });
            }
            Err(reason) => {
                tracing::warn!(provider = %provider.name, account = %account.name, %reason, "cannot build the stream URL; trying the next candidate");
                excluded.insert((c.stream_id, c.account_id));
                lease.release().await;
            }
        }
    }
}

/// The URL of a live stream for an account.
fn stream_url(
    provider: &Provider,
    primary: Option<&Account>,
    account: &Account,
    kind: StreamKind,
    ext: &str,
    upstream_id: Option<&str>,
    url: Option<&str>,
) -> Result<String, String> {
    match provider.kind {
        ProviderKind::Xtream => {
            let id = upstream_id.ok_or("the entry has no Xtream id")?;
            let (Some(user), false) = (account.username.as_deref(), account.password.is_empty()) else {
                return Err("the account has no username or password".into());
            };
            let base = account.server_url.as_deref().unwrap_or(&provider.url);
            Ok(xtream_url(base, kind, user, account.password.expose(), id, ext))
        }
        ProviderKind::M3u | ProviderKind::Agtv if kind == StreamKind::Timeshift => {
            Err("catch-up needs an Xtream provider".into())
        }
        ProviderKind::M3u | ProviderKind::Agtv => {
            let url = url.ok_or("the stream has no URL")?;
            if account.is_primary {
                return Ok(url.to_string());
            }
            let secrets = [account.password.expose(), primary.map(|p| p.password.expose()).unwrap_or_default()];
            if let (Some(search), Some(replace)) = (&account.search_pattern, &account.replace_pattern) {
                let rw = RegexRewrite::new(search, replace).map_err(|e| e.to_string())?.with_secrets(&secrets);
                return rw.apply(url).map_err(|e| e.to_string());
            }
            match (primary, account.username.as_deref()) {
                (Some(p), Some(user)) if p.username.is_some() && !account.password.is_empty() => rewrite_xtream(
                    url,
                    p.username.as_deref().unwrap_or_default(),
                    p.password.expose(),
                    account.server_url.as_deref(),
                    user,
                    account.password.expose(),
                )
                .map_err(|e| e.to_string()),
                _ => {
                    Err("the account has neither search/replace patterns nor credentials to rewrite the playlist's URL"
                        .into())
                }
            }
        }
    }
}

/// Acquires with the zapping rules: when every slot is taken, first stop
/// idle (lingering) sessions holding one of this channel's accounts (and,
/// with `pool.preempt`, the session of lowest priority below the claim's),
/// then wait up to `acquire_wait` for a slot to be released before giving up.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn acquire_waiting(
    inner: &crate::relay::Inner,
    stop: &tokio_util::sync::CancellationToken,
    except_session: u64,
    channel: &Channel,
    excluded: &mut Excluded,
    holder: &str,
    media: &Media,
    claim: Claim,
) -> Result<Resolved, AcquireError> {
    let deadline = tokio::time::Instant::now() + inner.settings.acquire_wait;
    loop {
        // Re-read accounts each time: a switch may follow a details refresh.
        let providers = load_providers(&*inner.catalog, channel).await?;
        let result = tokio::select! {
            _ = stop.cancelled() => return Err(AcquireError::NoCandidates("stopped".into())),
            r = acquire(inner, channel, &providers, excluded, holder, media, claim.reserve) => r,
        };
        match result {
            Err(AcquireError::NoCapacity(why)) => {
                let accounts = candidate_accounts(&providers);
                if claim.preempts && inner.preempt_for(&accounts, except_session, Some(claim.priority)).await > 0 {
                    continue;
                }
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    return Err(AcquireError::NoCapacity(why));
                }
                // Released here, or (Redis, other instances) noticed by polling.
                let wait = (deadline - now).min(std::time::Duration::from_millis(250));
                tokio::select! {
                    _ = inner.slot_released.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.cancelled() => return Err(AcquireError::NoCandidates("stopped".into())),
                }
            }
            other => return other,
        }
    }
}
