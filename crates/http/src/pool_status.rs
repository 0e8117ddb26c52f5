//! Pool status (`GET /api/v1/pool`, `GET /api/v1/providers/{id}/pool`): per
//! account its limit and where the limit comes from, active leases from the
//! ledger, availability, expiry, last error; and totals over enabled
//! accounts — the data behind "Total: 5/15 active | 10 available".

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use tunerpool_catalog::{Account, Provider, ProviderKind};
use tunerpool_ledger::{Ledger, Usage};
use tunerpool_pool::limits::{effective_max, is_usable, MaxOrigin};

use crate::error::{ApiError, ErrorBody};
use crate::AppState;

/// One account in the pool status.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccountStatus {
    pub id: i64,
    pub name: String,
    pub username: Option<String>,
    pub enabled: bool,
    pub primary: bool,
    pub priority: i64,
    /// The limit that applies, and which input it came from.
    pub max_streams: u32,
    pub max_streams_origin: MaxOrigin,
    pub manual_max_streams: Option<u32>,
    pub detected_max_connections: Option<u32>,
    /// Slots held now (from the lease ledger).
    pub active: u32,
    pub available: u32,
    /// Whether selection may use it, and if not why.
    pub usable: bool,
    pub unusable_reason: Option<String>,
    pub status: Option<String>,
    pub exp_date: Option<i64>,
    pub days_left: Option<i64>,
    /// Expires within `pool.expiry_warning_days`.
    pub expiring_soon: bool,
    /// What the panel last said about its own connection count (includes
    /// connections made outside tunerpool).
    pub panel_active_cons: Option<i64>,
    pub last_checked: Option<i64>,
    pub last_error: Option<String>,
}

/// Capacity over the enabled accounts (capped by the provider's own limit).
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Totals {
    pub capacity: u32,
    pub active: u32,
    pub available: u32,
}

/// One provider's accounts in the pool and its totals: a dashboard card.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProviderStatus {
    pub provider_id: i64,
    pub provider: String,
    pub kind: ProviderKind,
    pub enabled: bool,
    pub provider_max_streams: Option<i64>,
    pub accounts: Vec<AccountStatus>,
    pub totals: Totals,
}

/// Every provider's pool status and the grand totals over enabled providers (slots are the ledger's: in
/// cluster mode, the whole cluster's), and the cluster's instances with their sessions and viewers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PoolStatus {
    pub providers: Vec<ProviderStatus>,
    pub totals: Totals,
    /// In cluster mode every live instance (this one included) with its sessions and viewers; empty outside
    /// cluster mode.
    pub instances: Vec<crate::cluster_view::InstanceStatus>,
}

/// The status of one provider from its accounts and a ledger snapshot.
pub fn provider_status(
    provider: &Provider,
    accounts: &[Account],
    usage: &Usage,
    warning_days: u32,
    now: i64,
) -> ProviderStatus {
    let mut totals = Totals::default();
    let accounts: Vec<AccountStatus> = accounts
        .iter()
        .map(|a| {
            let max = effective_max(a, provider);
            let active = usage.account(tunerpool_pool::account_key(provider, a));
            let unusable = is_usable(a, provider.kind, now).err();
            let exp = a.details.exp_date.filter(|e| *e > 0);
            let days_left = tunerpool_catalog::days_left(exp, now);
            if a.enabled {
                totals.capacity += max.max;
                totals.active += active;
            }
            AccountStatus {
                id: a.id,
                name: a.name.clone(),
                username: a.username.clone(),
                enabled: a.enabled,
                primary: a.is_primary,
                priority: a.priority,
                max_streams: max.max,
                max_streams_origin: max.applied_from,
                manual_max_streams: max.manual,
                detected_max_connections: max.detected,
                active,
                available: max.max.saturating_sub(active),
                usable: unusable.is_none(),
                unusable_reason: unusable.map(|u| u.to_string()),
                status: a.details.status.clone(),
                exp_date: exp,
                days_left,
                expiring_soon: days_left.is_some_and(|d| d < warning_days as i64),
                panel_active_cons: a.details.active_cons,
                last_checked: a.details.last_checked,
                last_error: a.details.last_error.clone(),
            }
        })
        .collect();
    if let Some(cap) = provider.max_streams {
        totals.capacity = totals.capacity.min(u32::try_from(cap.max(0)).unwrap_or(u32::MAX));
    }
    totals.available = totals.capacity.saturating_sub(totals.active);
    ProviderStatus {
        provider_id: provider.id,
        provider: provider.name.clone(),
        kind: provider.kind,
        enabled: provider.enabled,
        provider_max_streams: provider.max_streams,
        accounts,
        totals,
    }
}

async fn usage(st: &AppState) -> Result<Usage, ApiError> {
    st.ledger.usage().await.map_err(|e| ApiError::unavailable(e.to_string()))
}

/// Pool status of every provider: per account its limit and where it comes from, active/available slots,
/// expiry, last error; totals over enabled accounts.
#[utoipa::path(get, path = "/api/v1/pool", tag = "pool",
    responses((status = 200, description = "the pool now", body = PoolStatus),
        (status = 503, description = "the lease ledger (Redis) is unreachable", body = ErrorBody)))]
pub(crate) async fn all(State(st): State<AppState>) -> Result<Json<PoolStatus>, ApiError> {
    Ok(Json(snapshot(&st).await?))
}

/// The pool status as `GET /api/v1/pool` answers it (also sent by `/api/v1/live`).
pub(crate) async fn snapshot(st: &AppState) -> Result<PoolStatus, ApiError> {
    let usage = usage(st).await?;
    let now = tunerpool_catalog::now();
    let mut providers = Vec::new();
    let mut totals = Totals::default();
    for p in st.store.providers().await? {
        let accounts = st.store.accounts(p.id).await?;
        let s = provider_status(&p, &accounts, &usage, st.pool.expiry_warning_days, now);
        if p.enabled {
            totals.capacity += s.totals.capacity;
            totals.active += s.totals.active;
        }
        providers.push(s);
    }
    totals.available = totals.capacity.saturating_sub(totals.active);
    let instances = crate::cluster_view::instances(st).await;
    Ok(PoolStatus { providers, totals, instances })
}

/// Pool status of one provider.
#[utoipa::path(get, path = "/api/v1/providers/{id}/pool", tag = "pool", operation_id = "provider_pool",
    params(("id" = i64, Path, description = "provider id")),
    responses((status = 200, description = "the provider's pool now", body = ProviderStatus),
        (status = 404, description = "no such provider", body = ErrorBody),
        (status = 503, description = "the lease ledger (Redis) is unreachable", body = ErrorBody)))]
pub(crate) async fn one(State(st): State<AppState>, Path(id): Path<String>) -> Result<Json<ProviderStatus>, ApiError> {
    let p = st.store.provider(crate::write::path_id("provider", &id)?).await?;
    let accounts = st.store.accounts(p.id).await?;
    let usage = usage(&st).await?;
    Ok(Json(provider_status(&p, &accounts, &usage, st.pool.expiry_warning_days, tunerpool_catalog::now())))
}
