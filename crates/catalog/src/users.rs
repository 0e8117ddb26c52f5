//! Downstream users: the logins of tunerpool's own outputs (M3U, Xtream,
//! HDHomeRun). Passwords are stored as argon2id hashes and never leave the
//! store; a [`User`] carries its hash as a [`Secret`] so it is neither
//! serialized nor printed.

use serde::{Deserialize, Serialize};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::error::{CatalogError, FieldError};
use crate::model::nullable;
use crate::secret::Secret;
use crate::store::{now, Store};

/// Usernames that would make a client URL ambiguous with one of our own
/// routes (`/{user}/{pass}/{id}` is the Xtream short form).
pub const RESERVED: &[&str] =
    &["api", "live", "movie", "series", "timeshift", "hdhr", "hls", "stream", "metrics", "healthz", "ui"];

/// Most streams a user may be given as its own limit (a sanity bound).
pub const MAX_USER_CONNECTIONS: i64 = 1000;

/// A downstream user as stored. Serializes to the admin API's user JSON
/// (without `active_connections`, which the relay knows): never the password
/// or its hash.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub enabled: bool,
    /// Unix seconds; `None` never expires.
    pub expires_at: Option<i64>,
    /// Streams at once; 0 = no limit of its own (the pool still applies).
    pub max_connections: u32,
    /// Group ids the user may see; `None` = every group.
    pub allowed_groups: Option<Vec<i64>>,
    pub created_at: i64,
    #[serde(skip)]
    #[schema(ignore)]
    pub updated_at: i64,
    #[serde(skip)]
    #[schema(ignore)]
    pub password_hash: Secret,
}

/// Whether a user may use the outputs now, and if not why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    Active,
    Disabled,
    Expired,
}

impl UserStatus {
    /// As Xtream panels spell it in `user_info.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "Active",
            UserStatus::Disabled => "Disabled",
            UserStatus::Expired => "Expired",
        }
    }
}

impl User {
    pub fn status(&self, now: i64) -> UserStatus {
        if !self.enabled {
            UserStatus::Disabled
        } else if self.expires_at.is_some_and(|e| e <= now) {
            UserStatus::Expired
        } else {
            UserStatus::Active
        }
    }
}

/// Input to create (POST) or change (PATCH) a user. Absent fields are kept;
/// `null` clears `expires_at` and `allowed_groups`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub username: Option<String>,
    #[schema(value_type = Option<String>, format = Password, write_only)]
    pub password: Option<Secret>,
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    pub expires_at: Option<Option<i64>>,
    pub max_connections: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    pub allowed_groups: Option<Option<Vec<i64>>>,
}

/// Characters that cannot appear in a credential that travels in URL paths
/// and queries unescaped (players do not escape them).
fn bad_url_char(c: char) -> bool {
    c.is_control() || c.is_whitespace() || matches!(c, '/' | '?' | '#' | '&' | '%' | '\\')
}

impl UserPatch {
    /// Every problem with the values given, each naming its field.
    pub fn validate(&self, creating: bool) -> Vec<FieldError> {
        let mut errs = Vec::new();
        match &self.username {
            None if creating => errs.push(FieldError::new("username", "is required")),
            None => {}
            Some(u) if u.is_empty() => errs.push(FieldError::new("username", "must not be empty")),
            Some(u) if u.chars().count() > 64 => {
                errs.push(FieldError::new("username", "must be at most 64 characters"))
            }
            Some(u) if u.chars().any(bad_url_char) => errs.push(FieldError::new(
                "username",
                "must not contain spaces, control characters or / ? # & % \\ (it appears in stream URLs)",
            )),
            Some(u) if RESERVED.contains(&u.to_ascii_lowercase().as_str()) => errs.push(FieldError::new(
                "username",
                format!("{u:?} is reserved (it is one of tunerpool's own URL paths): choose another"),
            )),
            Some(_) => {}
        }
        match &self.password {
            None if creating => errs.push(FieldError::new("password", "is required")),
            None => {}
            Some(p) if p.is_empty() => errs.push(FieldError::new("password", "must not be empty")),
            Some(p) if p.expose().chars().count() > 128 => {
                errs.push(FieldError::new("password", "must be at most 128 characters"))
            }
            Some(p) if p.expose().chars().any(bad_url_char) => errs.push(FieldError::new(
                "password",
                "must not contain spaces, control characters or / ? # & % \\ (it appears in stream URLs)",
            )),
            Some(_) => {}
        }
        if let Some(Some(e)) = self.expires_at {
            if e <= 0 {
                errs.push(FieldError::new(
                    "expires_at",
                    format!("must be a unix time in seconds (got {e}); null means never"),
                ));
            }
        }
        if let Some(m) = self.max_connections {
            if !(0..=MAX_USER_CONNECTIONS).contains(&m) {
                errs.push(FieldError::new(
                    "max_connections",
                    format!("must be between 0 (no limit of its own) and {MAX_USER_CONNECTIONS} (got {m})"),
                ));
            }
        }
        if let Some(Some(groups)) = &self.allowed_groups {
            if groups.len() > 10_000 {
                errs.push(FieldError::new("allowed_groups", "at most 10000 groups"));
            }
        }
        errs
    }
}

/// Hashes a password with argon2id and a random salt (blocking: ~tens of ms).
pub fn hash_password(password: &str) -> Result<String, CatalogError> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| CatalogError::Conflict(format!("salt: {e}")))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CatalogError::Conflict(format!("cannot hash the password: {e}")))
}

/// Checks a password against a stored hash, on a blocking thread (argon2 is
/// deliberately slow).
pub async fn verify_password(hash: &Secret, password: &str) -> bool {
    let (hash, password) = (hash.expose().to_string(), password.to_string());
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        PasswordHash::new(&hash)
            .is_ok_and(|parsed| argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
    })
    .await
    .unwrap_or(false)
}

async fn hash_blocking(password: &Secret) -> Result<String, CatalogError> {
    let p = password.expose().to_string();
    tokio::task::spawn_blocking(move || hash_password(&p))
        .await
        .map_err(|e| CatalogError::Conflict(format!("password hashing failed: {e}")))?
}

const USER_SELECT: &str = "SELECT id, username, password_hash, enabled, expires_at, max_connections, allowed_groups,
    created_at, updated_at FROM users";

fn user_from_row(r: &SqliteRow) -> Result<User, CatalogError> {
    let groups: Option<String> = r.try_get("allowed_groups")?;
    let max: i64 = r.try_get("max_connections")?;
    Ok(User {
        id: r.try_get("id")?,
        username: r.try_get("username")?,
        enabled: r.try_get("enabled")?,
        expires_at: r.try_get("expires_at")?,
        max_connections: u32::try_from(max.max(0)).unwrap_or(u32::MAX),
        allowed_groups: groups.and_then(|g| serde_json::from_str(&g).ok()),
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        password_hash: Secret::new(r.try_get::<String, _>("password_hash")?),
    })
}

fn taken(username: &str) -> CatalogError {
    CatalogError::Invalid(vec![FieldError::new(
        "username",
        format!("a user named {username:?} already exists: choose another name"),
    )])
}

impl Store {
    /// Every user, by id.
    pub async fn users(&self) -> Result<Vec<User>, CatalogError> {
        let rows = sqlx::query(&format!("{USER_SELECT} ORDER BY id")).fetch_all(self.pool()).await?;
        rows.iter().map(user_from_row).collect()
    }

    pub async fn user(&self, id: i64) -> Result<User, CatalogError> {
        let row = sqlx::query(&format!("{USER_SELECT} WHERE id = ?"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| CatalogError::NotFound { what: "user", id: id.to_string() })?;
        user_from_row(&row)
    }

    /// The user with this exact username, if any (what a client login names).
    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>, CatalogError> {
        let row = sqlx::query(&format!("{USER_SELECT} WHERE username = ?"))
            .bind(username)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// Finds a user by id or by exact username (what CLI users type).
    pub async fn find_user(&self, id_or_name: &str) -> Result<User, CatalogError> {
        if let Some(u) = self.user_by_name(id_or_name).await? {
            return Ok(u);
        }
        match id_or_name.parse::<i64>() {
            Ok(id) => self.user(id).await,
            Err(_) => Err(CatalogError::NotFound { what: "user", id: id_or_name.to_string() }),
        }
    }

    async fn check_groups(&self, groups: Option<&Vec<i64>>) -> Result<(), CatalogError> {
        let Some(groups) = groups else { return Ok(()) };
        let mut missing = Vec::new();
        for g in groups {
            let found: Option<i64> =
                sqlx::query_scalar("SELECT id FROM groups WHERE id = ?").bind(g).fetch_optional(self.pool()).await?;
            if found.is_none() {
                missing.push(g.to_string());
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(CatalogError::Invalid(vec![FieldError::new(
                "allowed_groups",
                format!("no group with id {} (see GET /api/v1/groups)", missing.join(", ")),
            )]))
        }
    }

    /// Adds a user; its password is stored hashed.
    pub async fn create_user(&self, input: &UserPatch) -> Result<User, CatalogError> {
        let errs = input.validate(true);
        if !errs.is_empty() {
            return Err(CatalogError::Invalid(errs));
        }
        let username = input.username.as_deref().expect("validated");
        self.check_groups(input.allowed_groups.as_ref().and_then(Option::as_ref)).await?;
        if self.user_by_name(username).await?.is_some() {
            return Err(taken(username));
        }
        let hash = hash_blocking(input.password.as_ref().expect("validated")).await?;
        let at = now();
        let groups = input.allowed_groups.clone().flatten().map(|g| serde_json::to_string(&g).unwrap_or_default());
        let id = sqlx::query_scalar::<_, i64>(
            "INSERT INTO users (username, password_hash, enabled, expires_at, max_connections, allowed_groups,
             created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(username)
        .bind(hash)
        .bind(input.enabled.unwrap_or(true))
        .bind(input.expires_at.flatten())
        .bind(input.max_connections.unwrap_or(0))
        .bind(groups)
        .bind(at)
        .bind(at)
        .fetch_one(self.pool())
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.is_unique_violation() => taken(username),
            other => other.into(),
        })?;
        self.user(id).await
    }

    /// Applies a PATCH to a user. A new password is hashed; `updated_at`
    /// moves, which is what invalidates cached logins.
    pub async fn update_user(&self, id: i64, patch: &UserPatch) -> Result<User, CatalogError> {
        let current = self.user(id).await?;
        let errs = patch.validate(false);
        if !errs.is_empty() {
            return Err(CatalogError::Invalid(errs));
        }
        self.check_groups(patch.allowed_groups.as_ref().and_then(Option::as_ref)).await?;
        let hash = match &patch.password {
            Some(p) => hash_blocking(p).await?,
            None => current.password_hash.expose().to_string(),
        };
        let username = patch.username.as_deref().unwrap_or(&current.username);
        let groups = match &patch.allowed_groups {
            Some(g) => g.clone(),
            None => current.allowed_groups.clone(),
        }
        .map(|g| serde_json::to_string(&g).unwrap_or_default());
        sqlx::query(
            "UPDATE users SET username = ?, password_hash = ?, enabled = ?, expires_at = ?, max_connections = ?,
             allowed_groups = ?, updated_at = ? WHERE id = ?",
        )
        .bind(username)
        .bind(hash)
        .bind(patch.enabled.unwrap_or(current.enabled))
        .bind(patch.expires_at.unwrap_or(current.expires_at))
        .bind(patch.max_connections.unwrap_or(current.max_connections as i64))
        .bind(groups)
        .bind(now().max(current.updated_at + 1))
        .bind(id)
        .execute(self.pool())
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.is_unique_violation() => taken(username),
            other => other.into(),
        })?;
        self.user(id).await
    }

    pub async fn delete_user(&self, id: i64) -> Result<(), CatalogError> {
        let n = sqlx::query("DELETE FROM users WHERE id = ?").bind(id).execute(self.pool()).await?.rows_affected();
        if n == 0 {
            return Err(CatalogError::NotFound { what: "user", id: id.to_string() });
        }
        Ok(())
    }

    /// This installation's stable id (8 hex digits), made when the store was
    /// created: the base of HDHomeRun device ids.
    pub async fn instance_id(&self) -> Result<String, CatalogError> {
        Ok(sqlx::query_scalar("SELECT device_id FROM instance WHERE id = 1").fetch_one(self.pool()).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ() {
        let a = hash_password("s3cret").unwrap();
        let b = hash_password("s3cret").unwrap();
        assert_ne!(a, b, "salted");
        assert!(a.starts_with("$argon2id$") && !a.contains("s3cret"));
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        assert!(rt.block_on(verify_password(&Secret::new(a.clone()), "s3cret")));
        assert!(!rt.block_on(verify_password(&Secret::new(a), "s3cret ")));
        assert!(!rt.block_on(verify_password(&Secret::new("garbage"), "s3cret")));
    }

    #[test]
    fn validation_names_fields() {
        let p = UserPatch {
            username: Some("live".into()),
            password: Some(Secret::new("a b")),
            expires_at: Some(Some(-5)),
            max_connections: Some(-1),
            ..Default::default()
        };
        let fields: Vec<String> = p.validate(true).into_iter().map(|f| f.field).collect();
        assert_eq!(fields, ["username", "password", "expires_at", "max_connections"]);
        let missing: Vec<String> = UserPatch::default().validate(true).into_iter().map(|f| f.field).collect();
        assert_eq!(missing, ["username", "password"]);
        assert!(UserPatch::default().validate(false).is_empty());
    }
}
