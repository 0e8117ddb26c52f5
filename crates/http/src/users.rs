//! The admin API for downstream users: `GET/POST /api/v1/users`,
//! `GET/PATCH/DELETE /api/v1/users/{id}`. Passwords are write-only: they are
//! accepted, hashed by the store, and never returned. Changing or deleting a
//! user drops its cached client logins at once.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Serialize;
use tunerpool_catalog::{User, UserPatch};

use crate::error::{ApiError, ErrorBody};
use crate::outputs::ClientAuth;
use crate::write::{json_body, path_id};
use crate::AppState;

/// A user as the API shows it: the stored user and how many streams it
/// watches now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    #[serde(flatten)]
    #[schema(inline)]
    pub user: User,
    pub active_connections: usize,
}

/// `active_connections`: the user's streams on every instance of a cluster.
async fn view(st: &AppState, user: User) -> UserView {
    let active_connections =
        st.relay.user_connections_everywhere(user.id, &user.username, user.max_connections > 0).await;
    UserView { user, active_connections }
}

/// Every user.
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, description = "every downstream user", body = Vec<UserView>)))]
pub(crate) async fn list(State(st): State<AppState>) -> Result<Json<Vec<UserView>>, ApiError> {
    let users = st.store.users().await?;
    let mut views = Vec::with_capacity(users.len());
    for u in users {
        views.push(view(&st, u).await);
    }
    Ok(Json(views))
}

/// One user.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", operation_id = "get_user", params(("id" = i64, Path, description = "user id")),
    responses((status = 200, description = "the user", body = UserView),
        (status = 404, description = "no such user", body = ErrorBody)))]
pub(crate) async fn one(State(st): State<AppState>, Path(id): Path<String>) -> Result<Json<UserView>, ApiError> {
    let user = st.store.user(path_id("user", &id)?).await?;
    Ok(Json(view(&st, user).await))
}

/// Adds a user; its password is stored as an argon2 hash.
#[utoipa::path(post, path = "/api/v1/users", operation_id = "create_user", tag = "users", request_body = UserPatch,
    responses((status = 201, description = "added", body = UserView),
        (status = 400, description = "bad input, every problem named", body = ErrorBody),
        (status = 409, description = "the username is taken (field username)", body = ErrorBody)))]
pub(crate) async fn create(State(st): State<AppState>, body: Bytes) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let input: UserPatch = json_body(&body)?;
    let user = st.store.create_user(&input).await?;
    tracing::info!(user = %user.username, id = user.id, "user created");
    Ok((StatusCode::CREATED, Json(view(&st, user).await)))
}

/// Changes a user (absent fields are kept; `null` clears `expires_at` and
/// `allowed_groups`); its cached client logins are dropped.
#[utoipa::path(patch, path = "/api/v1/users/{id}", operation_id = "update_user", tag = "users", params(("id" = i64, Path, description = "user id")),
    request_body = UserPatch,
    responses((status = 200, description = "changed", body = UserView),
        (status = 400, description = "bad input, every problem named", body = ErrorBody),
        (status = 409, description = "the username is taken (field username)", body = ErrorBody),
        (status = 404, description = "no such user", body = ErrorBody)))]
pub(crate) async fn update(
    State(st): State<AppState>,
    Extension(auth): Extension<Arc<ClientAuth>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<UserView>, ApiError> {
    let id = path_id("user", &id)?;
    let patch: UserPatch = json_body(&body)?;
    let user = st.store.update_user(id, &patch).await?;
    auth.forget(id);
    tracing::info!(user = %user.username, id, "user updated");
    Ok(Json(view(&st, user).await))
}

/// Deletes a user.
#[utoipa::path(delete, path = "/api/v1/users/{id}", operation_id = "remove_user", tag = "users", params(("id" = i64, Path, description = "user id")),
    responses((status = 204, description = "deleted"),
        (status = 404, description = "no such user", body = ErrorBody)))]
pub(crate) async fn remove(
    State(st): State<AppState>,
    Extension(auth): Extension<Arc<ClientAuth>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id("user", &id)?;
    st.store.delete_user(id).await?;
    auth.forget(id);
    tracing::info!(id, "user deleted");
    Ok(StatusCode::NO_CONTENT)
}
