//! The JSON API under `/api/v1`, and `/healthz`.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use tunerpool_catalog::{Account, Channel, ChannelQuery, FieldError, GroupCount, Page, Provider};

use crate::error::{ApiError, ErrorBody};
use crate::AppState;

/// How long `/healthz` waits for the store to answer before it calls it unreachable: a load balancer's or
/// Docker's check (5 s in the Dockerfile) must get an answer, never a hang.
const STORE_PING_TIMEOUT: Duration = Duration::from_secs(2);

/// `/healthz`: whether this instance can serve, and if not, what is down.
///
/// Exists for load balancers, Docker's `HEALTHCHECK` and operators: `200` when the store (and, in cluster mode,
/// Redis) answers, else `503` with the same body, whose `status` is `unavailable` and whose `problems` say what
/// is down and what to check.
#[derive(Serialize)]
pub(crate) struct Health {
    /// `ok`, or `unavailable` (answered with `503`).
    status: &'static str,
    uptime_s: u64,
    version: &'static str,
    /// `standalone`, or `cluster` (a member of a cluster sharing one Redis).
    role: &'static str,
    /// The catalog's database.
    store: StoreHealth,
    /// In cluster mode: this instance's id, whether Redis answered its heartbeat within the TTL, and how many of
    /// its live sessions it owns (reads the provider) or relays from another instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<ClusterHealth>,
    /// What is down and what to check (empty when `status` is `ok`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    problems: Vec<String>,
}

/// The store as `/healthz` found it (never its URL: it may carry a password).
#[derive(Serialize)]
struct StoreHealth {
    /// `sqlite` or `postgresql`.
    engine: &'static str,
    /// `ok`, or `unreachable` (no answer within 2 s, or an error).
    status: &'static str,
}

#[derive(Serialize)]
struct ClusterHealth {
    instance_id: String,
    /// `ok` or `unreachable`.
    redis: &'static str,
    sessions_owned: usize,
    sessions_relayed: usize,
}

pub(crate) async fn healthz(State(st): State<AppState>) -> (StatusCode, Json<Health>) {
    let engine = match st.store.db().backend() {
        "postgres" => "postgresql",
        other => other,
    };
    let mut problems = Vec::new();
    let store_ok = match tokio::time::timeout(STORE_PING_TIMEOUT, st.store.ping()).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::warn!(error = %tunerpool_upstream::redact::redact_text(&e.to_string(), &[]), "health: the store failed");
            false
        }
        Err(_) => {
            tracing::warn!(timeout = ?STORE_PING_TIMEOUT, "health: the store did not answer in time");
            false
        }
    };
    if !store_ok {
        problems.push(format!(
            "the store ({engine}) does not answer: check store.url and that the database is running and reachable"
        ));
    }
    let cluster = st.relay.cluster().map(|link| {
        let me = link.instance_id().to_owned();
        let sessions = st.relay.sessions();
        let owned = sessions.iter().filter(|s| s.owner.as_deref() == Some(me.as_str())).count();
        let relayed = sessions.iter().filter(|s| s.owner.as_deref().is_some_and(|o| o != me)).count();
        let redis = if link.directory().redis_reachable() { "ok" } else { "unreachable" };
        ClusterHealth { instance_id: me, redis, sessions_owned: owned, sessions_relayed: relayed }
    });
    if cluster.as_ref().is_some_and(|c| c.redis != "ok") {
        problems.push(
            "Redis did not answer this instance's heartbeat within cluster.ttl: check pool.redis_url and that Redis \
             is running and reachable"
                .to_owned(),
        );
    }
    let code = if problems.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let health = Health {
        status: if problems.is_empty() { "ok" } else { "unavailable" },
        uptime_s: st.started.elapsed().as_secs(),
        version: env!("CARGO_PKG_VERSION"),
        role: if cluster.is_some() { "cluster" } else { "standalone" },
        store: StoreHealth { engine, status: if store_ok { "ok" } else { "unreachable" } },
        cluster,
        problems,
    };
    (code, Json(health))
}

/// A provider with its accounts (passwords never included).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ProviderView {
    #[serde(flatten)]
    provider: Provider,
    accounts: Vec<Account>,
}

async fn provider_view(st: &AppState, provider: Provider) -> Result<ProviderView, ApiError> {
    let accounts = st.store.accounts(provider.id).await?;
    Ok(ProviderView { provider, accounts })
}

/// Providers with their accounts and sync status.
#[utoipa::path(get, path = "/api/v1/providers", tag = "providers",
    responses((status = 200, description = "every provider", body = Vec<ProviderView>)))]
pub(crate) async fn list_providers(State(st): State<AppState>) -> Result<Json<Vec<ProviderView>>, ApiError> {
    let mut out = Vec::new();
    for p in st.store.providers().await? {
        out.push(provider_view(&st, p).await?);
    }
    Ok(Json(out))
}

/// One provider with its accounts.
#[utoipa::path(get, path = "/api/v1/providers/{id}", tag = "providers", params(("id" = i64, Path, description = "provider id")),
    responses((status = 200, description = "the provider", body = ProviderView),
        (status = 404, description = "no such provider", body = ErrorBody)))]
pub(crate) async fn get_provider(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ProviderView>, ApiError> {
    let id = crate::write::path_id("provider", &id)?;
    let p = st.store.provider(id).await?;
    Ok(Json(provider_view(&st, p).await?))
}

/// `?page=&per_page=&group=&group_id=&q=&available=`, parsed by hand so that a bad value names its field.
pub(crate) fn channel_query(params: &HashMap<String, String>) -> Result<ChannelQuery, ApiError> {
    let mut errs = Vec::new();
    let mut num = |key: &str| -> Option<u32> {
        let v = params.get(key)?;
        match v.trim().parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                errs.push(FieldError::new(key, format!("{v:?} is not a positive whole number")));
                None
            }
        }
    };
    let page = num("page");
    let per_page = num("per_page");
    let group_id = num("group_id").map(i64::from);
    let available = match params.get("available").map(|v| v.trim()) {
        None => None,
        Some("true" | "1") => Some(true),
        Some("false" | "0") => Some(false),
        Some(v) => {
            errs.push(FieldError::new("available", format!("{v:?} is not true or false")));
            None
        }
    };
    for k in params.keys() {
        if !matches!(k.as_str(), "page" | "per_page" | "group" | "group_id" | "q" | "available") {
            errs.push(FieldError::new(k, "unknown parameter: use page, per_page, group, group_id, q or available"));
        }
    }
    if !errs.is_empty() {
        return Err(ApiError::invalid(errs));
    }
    Ok(ChannelQuery {
        page,
        per_page,
        group: params.get("group").cloned(),
        group_id,
        q: params.get("q").cloned(),
        available,
    })
}

/// The lineup's channels by number, paged, each with its sources (and
/// the lost ones), filtered by group, name and availability.
#[utoipa::path(get, path = "/api/v1/channels", tag = "lineup",
    params(
        ("page" = Option<i64>, Query, minimum = 1, maximum = 4_294_967_295_i64, description = "1-based page (default 1)"),
        ("per_page" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "1 to 1000 (default 100)"),
        ("group" = Option<String>, Query, description = "exact lineup group name"),
        ("group_id" = Option<i64>, Query, minimum = 0, maximum = 4_294_967_295_i64, description = "lineup group id"),
        ("q" = Option<String>, Query, description = "case-insensitive part of the name"),
        ("available" = Option<bool>, Query, description = "only channels that can (true) or cannot (false) be played"),
    ),
    responses((status = 200, description = "one page", body = Page<Channel>),
        (status = 400, description = "a bad parameter, named", body = ErrorBody)))]
pub(crate) async fn list_channels(
    State(st): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Page<Channel>>, ApiError> {
    let q = channel_query(&params)?;
    Ok(Json(st.store.channels(&q).await?))
}

/// The lineup's groups in their order, with how many channels each holds.
#[utoipa::path(get, path = "/api/v1/groups", tag = "lineup",
    responses((status = 200, description = "every group", body = Vec<GroupCount>)))]
pub(crate) async fn list_groups(State(st): State<AppState>) -> Result<Json<Vec<GroupCount>>, ApiError> {
    Ok(Json(st.store.channel_groups().await?))
}

/// `GET /api/v1/events?limit=&before=&level=&kind=`: the events log, newest first.
#[utoipa::path(get, path = "/api/v1/events", tag = "status",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "1 to 1000 (default 100)"),
        ("before" = Option<i64>, Query, description = "only events older than this event id (paging)"),
        ("level" = Option<tunerpool_catalog::Level>, Query, description = "lowest level: info, warn or error"),
        ("kind" = Option<String>, Query, description = "sync, account, session, failover or refused"),
    ),
    responses((status = 200, description = "newest first", body = Vec<tunerpool_catalog::Event>),
        (status = 400, description = "a bad parameter, named", body = ErrorBody)))]
pub(crate) async fn list_events(
    State(st): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Vec<tunerpool_catalog::Event>>, ApiError> {
    use tunerpool_catalog::{EventQuery, Level};
    let mut q = EventQuery::default();
    let mut errs = Vec::new();
    if let Some(v) = params.get("limit") {
        match v.parse::<u32>() {
            Ok(n) if (1..=1000).contains(&n) => q.limit = n,
            _ => errs.push(FieldError::new("limit", format!("{v:?} is not a number from 1 to 1000"))),
        }
    }
    if let Some(v) = params.get("before") {
        match v.parse::<i64>() {
            Ok(n) => q.before = Some(n),
            Err(_) => errs.push(FieldError::new("before", format!("{v:?} is not an event id (a number)"))),
        }
    }
    if let Some(v) = params.get("level") {
        match Level::parse(v) {
            Some(l) => q.min_level = l,
            None => errs.push(FieldError::new("level", format!("{v:?} is not a level (info, warn or error)"))),
        }
    }
    q.kind = params.get("kind").filter(|k| !k.is_empty()).cloned();
    if !errs.is_empty() {
        return Err(ApiError::invalid(errs));
    }
    Ok(Json(st.store.events(&q).await?))
}
