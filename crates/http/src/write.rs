//! The write side of the API: providers and accounts (create, patch,
//! delete), sync now, and Test. Passwords are accepted, never returned.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tunerpool_catalog::details::{refresh_account, test_xtream, TestReport};
use tunerpool_catalog::sync::{sync_provider, SyncReport};
use tunerpool_catalog::{
    Account, AccountPatch, FieldError, NewProvider, Provider, ProviderKind, ProviderPatch, Secret,
};

use crate::error::ApiError;
use crate::AppState;

/// Parses a JSON body so that a wrong type names its field
/// (`max_streams: invalid type: string "x", expected i64`).
pub(crate) fn json_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
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

pub(crate) fn path_id(what: &str, raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::invalid(vec![FieldError::new("id", format!("{raw:?} is not a {what} id (a number)"))]))
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
pub(crate) async fn create_provider(
    State(st): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Provider>), ApiError> {
    let new: NewProvider = json_body(&body)?;
    let provider = st.store.add_provider(&new).await?;
    tracing::info!(provider = %provider.name, kind = %provider.kind, "provider added");
    refresh_all(&st, &provider).await;
    let (store, http, id) = (st.store.clone(), st.http.clone(), provider.id);
    tokio::spawn(async move {
        let _ = sync_provider(&store, &http, id).await;
    });
    Ok((StatusCode::CREATED, Json(provider)))
}

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

pub(crate) async fn delete_provider(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.store.delete_provider(path_id("provider", &id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn sync_now(State(st): State<AppState>, Path(id): Path<String>) -> Result<Json<SyncReport>, ApiError> {
    let id = path_id("provider", &id)?;
    Ok(Json(sync_provider(&st.store, &st.http, id).await.map_err(|e| ApiError::upstream(e.to_string()))?))
}

pub(crate) async fn refresh_provider_details(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<Account>>, ApiError> {
    let provider = st.store.provider(path_id("provider", &id)?).await?;
    refresh_all(&st, &provider).await;
    Ok(Json(st.store.accounts(provider.id).await?))
}

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
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestInput {
    /// The panel URL; or give `provider_id` to use that provider's URL.
    server_url: Option<String>,
    provider_id: Option<i64>,
    username: String,
    password: Secret,
}

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
