//! The write side of the API: providers and accounts (create, patch,
//! delete), sync now, and Test. Passwords are accepted, never returned.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tunerpool_catalog::details::{refresh_account, test_xtream, TestReport};
use tunerpool_catalog::sync::SyncReport;

use crate::coord::{sync_provider_exclusive, ExclusiveSyncError};
use tunerpool_catalog::{
    Account, AccountPatch, CatalogError, FieldError, NewProvider, Provider, ProviderKind, ProviderPatch, Secret,
};

use crate::error::{ApiError, ErrorBody};
use crate::AppState;

/// Parses a JSON body so that a wrong type names its field
/// (`max_streams: invalid type: string "x", expected i64`).
///
/// A number with a zero fraction (`2.0`) is an integer, as JSON Schema has
/// it, so integer fields take it.
pub(crate) fn json_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let mut value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        let msg = e.to_string();
        ApiError::invalid(vec![FieldError::new("body", msg.split(" at line ").next().unwrap_or(&msg))])
    })?;
    integral_floats_as_integers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.to_string();
        let field = if path == "." || path.is_empty() {
            // serde names unknown fields in the message itself.
            msg.split('`').nth(1).filter(|_| msg.starts_with("unknown field")).unwrap_or("body").to_string()
        } else {
            path
        };
        // Strip serde's " at line 1 column 20" noise: the field says where.
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        ApiError::invalid(vec![FieldError::new(field, msg)])
    })
}

fn integral_floats_as_integers(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            // ±2^63 (what i64::MIN/MAX become as f64) stay out: a literal just beyond
            // the range parses to them, and must not be taken for i64::MIN or MAX.
            if f.fract() == 0.0 && f > i64::MIN as f64 && f < i64::MAX as f64 {
                *v = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        Value::Object(fields) => fields.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

/// A numeric id from the path. Anything else names no resource: 404, like
/// an id that does not exist.
pub(crate) fn path_id(what: &str, raw: &str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found(format!("no {what} {raw:?}: {what} ids are numbers")))
}

/// Refreshes the details of every account of a provider, logging failures:
/// they are recorded on the account and must not fail the request.
async fn refresh_all(st: &AppState, provider: &Provider) {
    if let Ok(accounts) = st.store.accounts(provider.id).await {
        for a in accounts.iter().filter(|a| a.enabled) {
            if let Err(e) = refresh_account(&st.store, &st.http, provider, a).await {
                tracing::info!(provider = %provider.name, account = %a.name, error = %e, "account details refresh failed");
            }
        }
    }
}

/// Adds a provider, refreshes its accounts' details, and starts its first
/// sync in the background (see its `sync` status, or `POST …/sync`).
#[utoipa::path(post, path = "/api/v1/providers", tag = "providers", request_body = NewProvider,
    responses((status = 201, description = "added", body = Provider),
        (status = 400, description = "bad input, every problem named", body = ErrorBody),
        (status = 422, description = "a value of the right shape that cannot be used: a URL without a host, a field the provider's kind needs or refuses", body = ErrorBody),
        (status = 409, description = "the name is taken", body = ErrorBody)))]
pub(crate) async fn create_provider(
    State(st): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Provider>), ApiError> {
    let new: NewProvider = json_body(&body)?;
    let provider = st.store.add_provider(&new).await?;
    tracing::info!(provider = %provider.name, kind = %provider.kind, "provider added");
    refresh_all(&st, &provider).await;
    let (store, http, id) = (st.store.clone(), st.http.clone(), provider.id);
    let cluster = st.relay.cluster();
    tokio::spawn(async move {
        let cluster = cluster.as_ref().map(|link| link.directory());
        if let Err(e @ ExclusiveSyncError::Coordination(_)) = sync_provider_exclusive(cluster, &store, &http, id).await
        {
            tracing::warn!(provider = id, error = %e, "the new provider's first sync did not run; the scheduler retries");
        }
    });
    Ok((StatusCode::CREATED, Json(provider)))
}

/// Changes a provider (absent fields are kept; `null` clears).
#[utoipa::path(patch, path = "/api/v1/providers/{id}", tag = "providers", params(("id" = i64, Path, description = "provider id")), request_body = ProviderPatch,
    responses((status = 200, description = "the changed provider", body = Provider),
        (status = 400, description = "bad input, every problem named", body = ErrorBody),
        (status = 422, description = "a value of the right shape that cannot be used: a URL without a host, a field the provider's kind needs or refuses", body = ErrorBody),
        (status = 409, description = "another provider has this name (field name)", body = ErrorBody),
        (status = 404, description = "no such provider", body = ErrorBody)))]
pub(crate) async fn update_provider(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Provider>, ApiError> {
    let id = path_id("provider", &id)?;
    let patch: ProviderPatch = json_body(&body)?;
    let provider = st.store.update_provider(id, &patch).await?;
    if patch.url.is_some() || patch.enabled == Some(true) {
        refresh_all(&st, &provider).await;
    }
    Ok(Json(st.store.provider(id).await?))
}

/// Removes a provider with its accounts and catalog.
#[utoipa::path(delete, path = "/api/v1/providers/{id}", tag = "providers", params(("id" = i64, Path, description = "provider id")),
    responses((status = 204, description = "removed"), (status = 404, description = "no such provider", body = ErrorBody)))]
pub(crate) async fn delete_provider(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.store.delete_provider(path_id("provider", &id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Syncs the provider's catalog now and reports what changed.
#[utoipa::path(post, path = "/api/v1/providers/{id}/sync", tag = "providers", params(("id" = i64, Path, description = "provider id")),
    responses((status = 200, description = "the sync report", body = SyncReport),
        (status = 404, description = "no such provider", body = ErrorBody),
        (status = 409, description = "a sync of this provider is running (on this instance or another of the cluster); try again when it is done", body = ErrorBody),
        (status = 502, description = "the provider failed; the previous catalog is kept", body = ErrorBody),
        (status = 503, description = "cluster mode and Redis does not answer: no sync rather than two at once", body = ErrorBody)))]
pub(crate) async fn sync_now(State(st): State<AppState>, Path(id): Path<String>) -> Result<Json<SyncReport>, ApiError> {
    let id = path_id("provider", &id)?;
    let cluster = st.relay.cluster();
    match sync_provider_exclusive(cluster.as_ref().map(|link| link.directory()), &st.store, &st.http, id).await {
        Ok(report) => Ok(Json(report)),
        // Another sync of it runs: its result will be there in a moment; a second one at once would ask the
        // provider for the same catalog twice.
        Err(e @ ExclusiveSyncError::Busy { .. }) => Err(ApiError::busy(e.to_string())),
        Err(e @ ExclusiveSyncError::Coordination(_)) => Err(ApiError::unavailable(e.to_string())),
        // The provider failed us, or refused what it sent (no credentials,
        // an empty playlist): the previous catalog is kept.
        Err(ExclusiveSyncError::Sync(e @ (CatalogError::Sync { .. } | CatalogError::Conflict(_)))) => {
            Err(ApiError::upstream(e.to_string()))
        }
        // An unknown provider is a 404, anything else ours.
        Err(ExclusiveSyncError::Sync(e)) => Err(e.into()),
    }
}

/// Asks the panel about every enabled account of the provider now.
#[utoipa::path(post, path = "/api/v1/providers/{id}/details", tag = "accounts", params(("id" = i64, Path, description = "provider id")),
    responses((status = 200, description = "its accounts with fresh details", body = Vec<Account>),
        (status = 404, description = "no such provider", body = ErrorBody)))]
pub(crate) async fn refresh_provider_details(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<Account>>, ApiError> {
    let provider = st.store.provider(path_id("provider", &id)?).await?;
    refresh_all(&st, &provider).await;
    Ok(Json(st.store.accounts(provider.id).await?))
}

/// The accounts of a provider (passwords never included).
#[utoipa::path(get, path = "/api/v1/providers/{id}/accounts", tag = "accounts", params(("id" = i64, Path, description = "provider id")),
    responses((status = 200, description = "its accounts", body = Vec<Account>),
        (status = 404, description = "no such provider", body = ErrorBody)))]
pub(crate) async fn list_accounts(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<Account>>, ApiError> {
    let id = path_id("provider", &id)?;
    st.store.provider(id).await?;
    Ok(Json(st.store.accounts(id).await?))
}

/// Creates an account and fetches its details at once (so the answer shows
/// the detected limit and expiry).
#[utoipa::path(post, path = "/api/v1/providers/{id}/accounts", tag = "accounts", params(("id" = i64, Path, description = "provider id")), request_body = AccountPatch,
    responses((status = 201, description = "added, with its details fetched", body = Account),
        (status = 400, description = "bad input, every problem named", body = ErrorBody),
        (status = 422, description = "a value of the right shape that cannot be used: a URL without a host, a field the provider's kind needs or refuses", body = ErrorBody),
        (status = 409, description = "the provider has an account with this username (field username)", body = ErrorBody),
        (status = 404, description = "no such provider", body = ErrorBody)))]
pub(crate) async fn create_account(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Account>), ApiError> {
    let provider = st.store.provider(path_id("provider", &id)?).await?;
    let input: AccountPatch = json_body(&body)?;
    check_patterns(&input, None)?;
    let account = st.store.create_account(provider.id, &input).await?;
    let _ = refresh_account(&st.store, &st.http, &provider, &account).await;
    Ok((StatusCode::CREATED, Json(st.store.account(account.id).await?)))
}

/// Changes an account (absent fields are kept; `"max_streams": null` goes back to the detected limit).
#[utoipa::path(patch, path = "/api/v1/accounts/{id}", tag = "accounts", params(("id" = i64, Path, description = "account id")), request_body = AccountPatch,
    responses((status = 200, description = "the changed account", body = Account),
        (status = 400, description = "bad input, every problem named", body = ErrorBody),
        (status = 422, description = "a value of the right shape that cannot be used: a URL without a host, a field the provider's kind needs or refuses", body = ErrorBody),
        (status = 409, description = "the provider has another account with this username (field username)", body = ErrorBody),
        (status = 404, description = "no such account", body = ErrorBody)))]
pub(crate) async fn update_account(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Account>, ApiError> {
    let id = path_id("account", &id)?;
    let patch: AccountPatch = json_body(&body)?;
    check_patterns(&patch, Some(&st.store.account(id).await?))?;
    let account = st.store.update_account(id, &patch).await?;
    let provider = st.store.provider(account.provider_id).await?;
    let _ = refresh_account(&st.store, &st.http, &provider, &account).await;
    Ok(Json(st.store.account(id).await?))
}

/// Removes an account (not the primary one: make another primary first).
#[utoipa::path(delete, path = "/api/v1/accounts/{id}", tag = "accounts", params(("id" = i64, Path, description = "account id")),
    responses((status = 204, description = "removed"), (status = 404, description = "no such account", body = ErrorBody),
        (status = 409, description = "it is the primary account", body = ErrorBody)))]
pub(crate) async fn delete_account(State(st): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    st.store.delete_account(path_id("account", &id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The regex patterns an account would have after `patch`, checked the way
/// the pool applies them (compiles; `$1`/`${name}` refer to real groups;
/// both or neither). Other fields are checked by the store.
fn check_patterns(patch: &AccountPatch, current: Option<&Account>) -> Result<(), ApiError> {
    let pick = |new: &Option<Option<String>>, old: Option<&Option<String>>| match new {
        Some(v) => v.clone(),
        None => old.cloned().flatten(),
    };
    let search = pick(&patch.search_pattern, current.map(|a| &a.search_pattern));
    let replace = pick(&patch.replace_pattern, current.map(|a| &a.replace_pattern));
    let errs = tunerpool_pool::rewrite::validate_patterns(search.as_deref(), replace.as_deref());
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(errs))
    }
}

/// Test a saved account: asks the panel, stores the details, reports.
#[utoipa::path(post, path = "/api/v1/accounts/{id}/test", tag = "accounts", params(("id" = i64, Path, description = "account id")),
    responses((status = 200, description = "what the panel says (ok false with a reason when not usable)", body = TestReport),
        (status = 404, description = "no such account", body = ErrorBody)))]
pub(crate) async fn test_saved_account(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TestReport>, ApiError> {
    let account = st.store.account(path_id("account", &id)?).await?;
    let provider = st.store.provider(account.provider_id).await?;
    if provider.kind != ProviderKind::Xtream {
        return Ok(Json(TestReport {
            reason: Some(format!("{} providers have no account API to test; sync the provider instead", provider.kind)),
            ..Default::default()
        }));
    }
    let server = account.server_url.clone().unwrap_or_else(|| provider.url.clone());
    let report =
        test_xtream(&st.http, &server, account.username.as_deref().unwrap_or_default(), account.password.expose())
            .await;
    let _ = refresh_account(&st.store, &st.http, &provider, &account).await;
    Ok(Json(report))
}

/// Credentials to test before saving them.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestInput {
    /// The panel URL; or give `provider_id` to use that provider's URL.
    server_url: Option<String>,
    provider_id: Option<i64>,
    username: String,
    /// Write-only: accepted, never returned.
    #[schema(value_type = String, format = Password, write_only)]
    password: Secret,
}

/// Tests credentials before saving them: reachability, acceptance, detected max connections, expiry, status.
#[utoipa::path(post, path = "/api/v1/accounts/test", tag = "accounts", request_body = TestInput,
    responses((status = 200, description = "what the panel says (ok false with a reason when not usable)", body = TestReport),
        (status = 400, description = "bad input, every problem named", body = ErrorBody),
        (status = 404, description = "provider_id names no provider", body = ErrorBody)))]
pub(crate) async fn test_unsaved_account(
    State(st): State<AppState>,
    body: Bytes,
) -> Result<Json<TestReport>, ApiError> {
    let input: TestInput = json_body(&body)?;
    let server = match (input.server_url.filter(|s| !s.trim().is_empty()), input.provider_id) {
        (Some(url), _) => url,
        (None, Some(pid)) => st.store.provider(pid).await?.url,
        (None, None) => {
            return Err(ApiError::invalid(vec![FieldError::new(
                "server_url",
                "give the panel URL, or provider_id to use that provider's URL",
            )]))
        }
    };
    Ok(Json(test_xtream(&st.http, &server, &input.username, input.password.expose()).await))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integral_floats_are_integers_and_the_rest_is_left_alone() {
        let mut v: serde_json::Value =
            serde_json::from_str(r#"{"a": 2.0, "b": [1.5, -3.0], "c": -9223372036854775809, "d": "4.0", "e": 7}"#)
                .unwrap();
        integral_floats_as_integers(&mut v);
        assert_eq!(v["a"], serde_json::json!(2));
        assert!(v["a"].is_i64());
        assert_eq!(v["b"], serde_json::json!([1.5, -3]));
        // Beyond i64: still a float, refused by an integer field.
        assert!(v["c"].is_f64());
        assert_eq!((v["d"].as_str(), v["e"].as_i64()), (Some("4.0"), Some(7)));
        let too_big: Result<StreamCount, _> = json_body(&Bytes::from_static(b"{\"n\": 9223372036854775808}"));
        assert_eq!(too_big.map_err(|e| e.status.as_u16()).err(), Some(400));
    }

    #[derive(Debug, serde::Deserialize)]
    struct StreamCount {
        #[allow(dead_code)]
        n: i64,
    }
}
