//! Downstream users: the logins of tunerpool's own outputs (M3U, Xtream,
//! HDHomeRun). Passwords are stored as argon2id hashes and never leave the
//! store; a [`User`] carries its hash as a [`Secret`] so it is neither
//! serialized nor printed. Checking a password is bounded work
//! ([`PasswordChecks`]).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use crate::db::{on_db, RowGet};
use crate::error::{CatalogError, FieldError};
use crate::secret::Secret;
use crate::store::{now, Store};
use tunerpool_domain::fields::nullable;

/// Usernames that would make a client URL ambiguous with one of our own
/// routes (`/{user}/{pass}/{id}` is the Xtream short form).
pub const RESERVED: &[&str] =
    &["api", "live", "movie", "series", "timeshift", "hdhr", "hls", "stream", "metrics", "healthz", "ui"];

/// Most streams a user may be given as its own limit (a sanity bound).
pub const MAX_USER_CONNECTIONS: i64 = 1000;

/// The highest priority a user may have.
pub const MAX_USER_PRIORITY: i64 = 100;

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
    /// 0 to 100: who gets the pool's reserved slots (`pool.reserved_priority`)
    /// and, with `pool.preempt`, whose sessions yield to whose.
    pub priority: u8,
    /// Group ids the user may see: lineup groups for live channels, the
    /// providers' movie and series groups for those; `None` = every group.
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
    /// Required to create a user. No spaces, control characters or
    /// `/ ? # & % \`: it appears in stream URLs.
    #[schema(pattern = r"^[^\s\u0000-\u001f\u007f-\u009f/?#&%\\]+$", max_length = 64)]
    pub username: Option<String>,
    /// Required to create a user; the same characters as `username`.
    #[schema(value_type = Option<String>, format = Password, write_only,
        pattern = r"^[^\s\u0000-\u001f\u007f-\u009f/?#&%\\]+$", max_length = 128)]
    pub password: Option<Secret>,
    pub enabled: Option<bool>,
    /// Unix seconds; `null`: never.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(minimum = 1)]
    pub expires_at: Option<Option<i64>>,
    /// 0: no limit of its own.
    #[schema(minimum = 0, maximum = 1000)]
    pub max_connections: Option<i64>,
    /// 0 (the default) to 100: higher may use reserved slots and preempt lower.
    #[schema(minimum = 0, maximum = 100)]
    pub priority: Option<i64>,
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
        if let Some(p) = self.priority {
            if !(0..=MAX_USER_PRIORITY).contains(&p) {
                errs.push(FieldError::new(
                    "priority",
                    format!("must be between 0 (the lowest, the default) and {MAX_USER_PRIORITY} (got {p})"),
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
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| CatalogError::Internal(format!("salt: {e}")))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CatalogError::Internal(format!("cannot hash the password: {e}")))
}

/// The most argon2 memory a stored hash may ask a check for (256 MiB; ours
/// use 19 MiB).
const MAX_CHECK_BLOCKS: usize = 256 * 1024;

/// The least argon2 working memory a check thread reserves, in 1 KiB blocks:
/// just over 32 MiB. glibc's allocator serves requests below a threshold
/// from heaps that keep what is freed (the threshold moves up with what the
/// process frees, up to 32 MiB); above 32 MiB every allocation is a mapping
/// of its own that `free` unmaps. So the 19 MiB a check needs is reserved
/// this large, and releasing it when idle really gives it back; only the
/// pages argon2 touches ever become resident.
const OWN_MAPPING_BLOCKS: usize = 32 * 1024 + 1;

/// Whether `password` matches the PHC string `hash` (blocking: as slow as
/// hashing), with `memory` as argon2's working memory: resized to what the
/// hash's parameters need and kept by the caller for the next check, since
/// a fresh 19 MiB allocation per check fragments the allocator's heap and
/// the process grows with every check. Compared in constant time.
fn password_matches(hash: &str, password: &str, memory: &mut Vec<argon2::Block>) -> bool {
    use argon2::password_hash::{Error, Output, PasswordHash};
    let mut check = || -> Result<bool, Error> {
        let parsed = PasswordHash::new(hash)?;
        let algorithm = argon2::Algorithm::try_from(parsed.algorithm)?;
        let version = match parsed.version {
            Some(v) => argon2::Version::try_from(v).map_err(|_| Error::Version)?,
            None => argon2::Version::default(),
        };
        let params = argon2::Params::try_from(&parsed)?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return Ok(false) };
        if params.block_count() > MAX_CHECK_BLOCKS {
            return Err(Error::ParamsMaxExceeded);
        }
        let mut salt_buf = [0u8; 64];
        let salt = salt.decode_b64(&mut salt_buf)?;
        let blocks = params.block_count();
        if memory.capacity() < blocks {
            memory.reserve_exact(blocks.max(OWN_MAPPING_BLOCKS) - memory.len());
        }
        memory.resize(blocks, argon2::Block::default());
        let argon2 = argon2::Argon2::new(algorithm, version, params);
        let computed = Output::init_with(expected.len(), |out| {
            argon2
                .hash_password_into_with_memory(password.as_bytes(), salt, out, &mut memory[..])
                .map_err(|_| Error::Crypto)
        })?;
        Ok(computed == expected)
    };
    check().unwrap_or(false)
}

/// A hash of a random password with the parameters of real ones: what a
/// login for a user that does not exist is checked against, so that it
/// takes as long as a wrong password for one that does.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let random: [u8; 16] = rand::random();
        let password: String = random.iter().map(|b| format!("{b:02x}")).collect();
        hash_password(&password).unwrap_or_default()
    })
}

/// Too many password checks are running or waiting: try again shortly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many password checks at once")]
pub struct Busy;

/// Runs argon2 password checks with bounded concurrency and memory. Clones
/// share the same threads and limits.
///
/// A check costs ~19 MiB and tens of milliseconds of CPU on purpose, so
/// unbounded checks let a burst of wrong passwords take every core and
/// gigabytes of memory (100 parallel ones took 1.9 GB). Checks run on
/// `parallel` threads of their own, started by [`PasswordChecks::new`] and
/// ended when the last clone is dropped, each keeping its 19 MiB between
/// checks while checks keep coming (on tokio's blocking pool, with memory
/// allocated per check, the process grew with every check however few ran
/// at once) and giving it back once idle: a thread with no check for
/// `idle_release` (10 s by default), or one that finds another thread
/// already waiting for the next check, frees its 19 MiB, so a server whose
/// clients logged in an hour ago does not keep 19 MiB per core for it. A check waits up
/// to `wait` for a free thread and is then refused with [`Busy`]; once
/// started it runs to the end even if the request that asked has gone. A
/// check for a user that does not exist runs against a dummy hash with the
/// same parameters, so it takes as long as a wrong password (usernames
/// cannot be told apart by timing). Counters say how many ran, and the most
/// at once.
#[derive(Clone)]
pub struct PasswordChecks {
    permits: Arc<Semaphore>,
    wait: Duration,
    jobs: mpsc::Sender<Check>,
    counters: Arc<Counters>,
}

/// One check for a worker thread; the permit is given back when it is done.
struct Check {
    hash: Option<String>,
    password: String,
    answer: oneshot::Sender<bool>,
    _permit: OwnedSemaphorePermit,
}

#[derive(Default)]
struct Counters {
    running: AtomicUsize,
    peak: AtomicUsize,
    done: AtomicU64,
}

impl PasswordChecks {
    /// At most `parallel` checks at once (at least 1), on as many threads;
    /// others wait up to `wait` to start.
    pub fn new(parallel: usize, wait: Duration) -> Self {
        Self::with_idle_release(parallel, wait, IDLE_RELEASE)
    }

    /// As [`PasswordChecks::new`], with the time a thread keeps its working
    /// memory after its last check.
    pub fn with_idle_release(parallel: usize, wait: Duration, idle_release: Duration) -> Self {
        let parallel = parallel.max(1);
        let (jobs, queue) = mpsc::channel::<Check>();
        let queue = Arc::new(Mutex::new(queue));
        let counters = Arc::new(Counters::default());
        for i in 0..parallel {
            let (queue, counters) = (queue.clone(), counters.clone());
            let worker = std::thread::Builder::new()
                .name(format!("password-check-{i}"))
                .spawn(move || run_checks(&queue, &counters, idle_release));
            if let Err(e) = worker {
                tracing::error!(error = %e, "cannot start a password check thread");
            }
        }
        PasswordChecks { permits: Arc::new(Semaphore::new(parallel)), wait, jobs, counters }
    }

    /// As many checks at once as this machine has cores, at most
    /// [`MAX_PARALLEL_CHECKS`] (each takes 19 MiB), waiting up to 2 s.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        PasswordChecks::new(cores.min(MAX_PARALLEL_CHECKS), Duration::from_secs(2))
    }

    /// Whether `password` matches `hash`; `None` (no such user) checks
    /// against the dummy hash and is always false.
    pub async fn verify(&self, hash: Option<&Secret>, password: &str) -> Result<bool, Busy> {
        let permit = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| Busy)?
            .map_err(|_| Busy)?;
        let (answer, answered) = oneshot::channel();
        let check = Check {
            hash: hash.map(|h| h.expose().to_string()),
            password: password.to_string(),
            answer,
            _permit: permit,
        };
        self.jobs.send(check).map_err(|_| Busy)?;
        Ok(answered.await.unwrap_or(false))
    }

    /// The most checks that ever ran at once.
    pub fn peak(&self) -> usize {
        self.counters.peak.load(Ordering::SeqCst)
    }

    /// How many checks have run.
    pub fn done(&self) -> u64 {
        self.counters.done.load(Ordering::SeqCst)
    }
}

/// How long a check thread keeps argon2's working memory after its last check.
pub const IDLE_RELEASE: Duration = Duration::from_secs(10);

/// A check thread: takes checks off the shared queue until every sender is gone.
fn run_checks(queue: &Mutex<mpsc::Receiver<Check>>, counters: &Counters, idle_release: Duration) {
    // argon2's working memory: kept from check to check while they keep
    // coming, freed when idle (a `Vec` this size is its own mapping, so
    // freeing it gives the pages back to the system).
    let mut memory: Vec<argon2::Block> = Vec::new();
    loop {
        // The lock is held only while waiting for the next check. A thread
        // that finds it taken knows another one is already waiting for the
        // next check, so it will not need its memory soon.
        let waiting = match queue.try_lock() {
            Ok(q) => Ok(q),
            Err(std::sync::TryLockError::WouldBlock) => {
                memory = Vec::new();
                queue.lock()
            }
            Err(std::sync::TryLockError::Poisoned(e)) => Err(e),
        };
        let Ok(q) = waiting else { return };
        let next = match q.recv_timeout(idle_release) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                memory = Vec::new();
                q.recv().ok()
            }
            next => next.ok(),
        };
        drop(q);
        let Some(check) = next else { return };
        let now = counters.running.fetch_add(1, Ordering::SeqCst) + 1;
        counters.peak.fetch_max(now, Ordering::SeqCst);
        let hash: &str = check.hash.as_deref().unwrap_or_else(|| dummy_hash());
        let matched = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            password_matches(hash, &check.password, &mut memory)
        }))
        .unwrap_or(false);
        counters.running.fetch_sub(1, Ordering::SeqCst);
        counters.done.fetch_add(1, Ordering::SeqCst);
        let _ = check.answer.send(matched && check.hash.is_some());
        // Dropping the check gives its permit back.
    }
}

/// The most argon2 checks [`PasswordChecks::for_this_machine`] runs at once.
pub const MAX_PARALLEL_CHECKS: usize = 4;

async fn hash_blocking(password: &Secret) -> Result<String, CatalogError> {
    let p = password.expose().to_string();
    tokio::task::spawn_blocking(move || hash_password(&p))
        .await
        .map_err(|e| CatalogError::Internal(format!("password hashing failed: {e}")))?
}

const USER_SELECT: &str = "SELECT id, username, password_hash, enabled, expires_at, max_connections, priority,
    allowed_groups, created_at, updated_at FROM users";

fn user_from_row(r: &impl RowGet) -> Result<User, CatalogError> {
    let groups: Option<String> = r.col("allowed_groups")?;
    let max: i64 = r.col("max_connections")?;
    let priority: i64 = r.col("priority")?;
    Ok(User {
        id: r.col("id")?,
        username: r.col("username")?,
        enabled: r.col("enabled")?,
        expires_at: r.col("expires_at")?,
        max_connections: u32::try_from(max.max(0)).unwrap_or(u32::MAX),
        priority: u8::try_from(priority.clamp(0, MAX_USER_PRIORITY)).unwrap_or(0),
        allowed_groups: groups.and_then(|g| serde_json::from_str(&g).ok()),
        created_at: r.col("created_at")?,
        updated_at: r.col("updated_at")?,
        password_hash: Secret::new(r.col::<String>("password_hash")?),
    })
}

fn taken(username: &str) -> CatalogError {
    CatalogError::Refused(vec![FieldError::new(
        "username",
        format!("a user named {username:?} already exists: choose another name"),
    )])
}

impl Store {
    /// Every user, by id.
    pub async fn users(&self) -> Result<Vec<User>, CatalogError> {
        on_db!(self.db(), |p| {
            let rows = sqlx::query(&format!("{USER_SELECT} ORDER BY id")).fetch_all(p).await?;
            rows.iter().map(user_from_row).collect()
        })
    }

    pub async fn user(&self, id: i64) -> Result<User, CatalogError> {
        on_db!(self.db(), |p| {
            let row = sqlx::query(&format!("{USER_SELECT} WHERE id = $1"))
                .bind(id)
                .fetch_optional(p)
                .await?
                .ok_or_else(|| CatalogError::NotFound { what: "user", id: id.to_string() })?;
            user_from_row(&row)
        })
    }

    /// The user with this exact username, if any (what a client login names).
    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>, CatalogError> {
        on_db!(self.db(), |p| {
            let row =
                sqlx::query(&format!("{USER_SELECT} WHERE username = $1")).bind(username).fetch_optional(p).await?;
            row.as_ref().map(user_from_row).transpose()
        })
    }

    /// [`Store::user_by_name`] through a short-lived cache, for the client
    /// logins every stream request makes (`cache.rs`): at most
    /// [`READ_CACHE_TTL`](crate::cache::READ_CACHE_TTL) old, and cleared by
    /// every write to users through this store ([`Store::create_user`],
    /// [`Store::update_user`], [`Store::delete_user`]), so a user disabled,
    /// changed or deleted here is seen as such by the very next request.
    /// Only users that exist are cached: an unknown name (anyone can send
    /// one) is asked of SQLite every time and never takes room. The user's
    /// status is not cached: callers evaluate [`User::status`] per request,
    /// so an expiry takes effect on the second.
    pub async fn user_by_name_cached(&self, username: &str) -> Result<Option<User>, CatalogError> {
        // The stream-read store is made only on a miss: a hit is the common case of every stream request.
        let load = || async move { self.for_stream_reads().user_by_name(username).await };
        self.caches().users.get_or_load(username, load).await
    }

    /// Runs a write to users to its end on a task of its own, then clears
    /// the users cache, whatever the outcome: a caller that goes away mid-way
    /// (a dropped request) cannot leave a write done and the cache holding
    /// the user as it was before it. The one way users are written.
    async fn write_users<T: Send + 'static>(
        &self,
        write: impl std::future::Future<Output = Result<T, CatalogError>> + Send + 'static,
    ) -> Result<T, CatalogError> {
        let store = self.clone();
        tokio::spawn(async move {
            let result = write.await;
            store.caches().users.clear();
            result
        })
        .await
        .map_err(|e| CatalogError::Internal(format!("a write to users failed: {e}")))?
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
            let found: Option<i64> = on_db!(self.db(), |p| {
                sqlx::query_scalar("SELECT id FROM lineup_groups WHERE id = $1 UNION ALL SELECT id FROM groups WHERE id = $1 AND kind <> 'live'")
                    .bind(g)
                    .fetch_optional(p)
                    .await
            })?;
            if found.is_none() {
                missing.push(g.to_string());
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(CatalogError::Refused(vec![FieldError::new(
                "allowed_groups",
                format!(
                    "no lineup group or movie/series group with id {} (see GET /api/v1/groups)",
                    missing.join(", ")
                ),
            )]))
        }
    }

    /// Adds a user; its password is stored hashed.
    pub async fn create_user(&self, input: &UserPatch) -> Result<User, CatalogError> {
        let (store, input) = (self.clone(), input.clone());
        self.write_users(async move { store.insert_user(&input).await }).await
    }

    async fn insert_user(&self, input: &UserPatch) -> Result<User, CatalogError> {
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
        let id = on_db!(self.db(), |p| sqlx::query_scalar::<_, i64>(
            "INSERT INTO users (username, password_hash, enabled, expires_at, max_connections, priority,
             allowed_groups, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(username)
        .bind(hash)
        .bind(input.enabled.unwrap_or(true))
        .bind(input.expires_at.flatten())
        .bind(input.max_connections.unwrap_or(0))
        .bind(input.priority.unwrap_or(0))
        .bind(groups)
        .bind(at)
        .bind(at)
        .fetch_one(p)
        .await)
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.is_unique_violation() => taken(username),
            other => other.into(),
        })?;
        self.user(id).await
    }

    /// Applies a PATCH to a user. A new password is hashed; `updated_at`
    /// moves, which is what invalidates cached logins.
    pub async fn update_user(&self, id: i64, patch: &UserPatch) -> Result<User, CatalogError> {
        let (store, patch) = (self.clone(), patch.clone());
        self.write_users(async move { store.change_user(id, &patch).await }).await
    }

    async fn change_user(&self, id: i64, patch: &UserPatch) -> Result<User, CatalogError> {
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
        on_db!(self.db(), |p| sqlx::query(
            "UPDATE users SET username = $1, password_hash = $2, enabled = $3, expires_at = $4, max_connections = $5,
             priority = $6, allowed_groups = $7, updated_at = $8 WHERE id = $9",
        )
        .bind(username)
        .bind(hash)
        .bind(patch.enabled.unwrap_or(current.enabled))
        .bind(patch.expires_at.unwrap_or(current.expires_at))
        .bind(patch.max_connections.unwrap_or(current.max_connections as i64))
        .bind(patch.priority.unwrap_or(i64::from(current.priority)))
        .bind(groups)
        .bind(now().max(current.updated_at + 1))
        .bind(id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.is_unique_violation() => taken(username),
            other => other.into(),
        })?;
        self.user(id).await
    }

    pub async fn delete_user(&self, id: i64) -> Result<(), CatalogError> {
        let store = self.clone();
        self.write_users(async move { store.remove_user(id).await }).await
    }

    async fn remove_user(&self, id: i64) -> Result<(), CatalogError> {
        let n = on_db!(self.db(), |p| sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        if n == 0 {
            return Err(CatalogError::NotFound { what: "user", id: id.to_string() });
        }
        Ok(())
    }

    /// This installation's stable id (8 hex digits), made when the store was
    /// created: the base of HDHomeRun device ids.
    pub async fn instance_id(&self) -> Result<String, CatalogError> {
        Ok(on_db!(self.db(), |p| sqlx::query_scalar("SELECT device_id FROM instance WHERE id = 1").fetch_one(p).await)?)
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
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let checks = PasswordChecks::new(1, Duration::from_secs(5));
        assert_eq!(rt.block_on(checks.verify(Some(&Secret::new(a.clone())), "s3cret")), Ok(true));
        assert_eq!(rt.block_on(checks.verify(Some(&Secret::new(a)), "s3cret ")), Ok(false));
        assert_eq!(rt.block_on(checks.verify(Some(&Secret::new("garbage")), "s3cret")), Ok(false));
        assert_eq!(checks.done(), 3);
    }

    #[test]
    fn checks_agree_with_argon2s_own_verifier_whatever_the_parameters() {
        use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
        let small = argon2::Params::new(8 * 1024, 1, 1, None).unwrap();
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let other = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, small)
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        let default = hash_password("pw").unwrap();
        // One memory for every check, as a worker thread keeps it.
        let mut memory = Vec::new();
        for hash in [&default, &other, &default] {
            for (password, want) in [("pw", true), ("pw ", false), ("", false)] {
                let own = argon2::Argon2::default()
                    .verify_password(password.as_bytes(), &PasswordHash::new(hash).unwrap())
                    .is_ok();
                assert_eq!(own, want, "{hash} {password:?}");
                assert_eq!(password_matches(hash, password, &mut memory), want, "{hash} {password:?}");
            }
        }
        assert!(!password_matches("not a hash", "pw", &mut memory));
        let greedy = default.replace("m=19456", "m=4000000");
        assert!(!password_matches(&greedy, "pw", &mut memory), "a hash cannot ask for 4 GB");
    }

    #[test]
    fn an_unknown_user_is_checked_against_a_hash_as_costly_as_a_real_one() {
        use argon2::password_hash::PasswordHash;
        let real = hash_password("whatever").unwrap();
        let (real, dummy) = (PasswordHash::new(&real).unwrap(), PasswordHash::new(dummy_hash()).unwrap());
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params, real.params, "same memory, time and parallelism cost");
        assert_eq!(dummy.hash.map(|h| h.len()), real.hash.map(|h| h.len()));
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let checks = PasswordChecks::new(1, Duration::from_secs(5));
        // Not even the dummy's own password gets in.
        assert_eq!(rt.block_on(checks.verify(None, "")), Ok(false));
        assert_eq!(checks.done(), 1, "the check ran");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn checks_run_at_most_n_at_once_and_the_rest_wait_then_are_refused() {
        let hash = Secret::new(hash_password("right").unwrap());
        let checks = Arc::new(PasswordChecks::new(2, Duration::from_millis(50)));
        let tasks: Vec<_> = (0..24)
            .map(|_| {
                let (checks, hash) = (checks.clone(), hash.clone());
                tokio::spawn(async move { checks.verify(Some(&hash), "wrong").await })
            })
            .collect();
        let mut busy = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(matched) => assert!(!matched),
                Err(Busy) => busy += 1,
            }
        }
        assert!(checks.peak() <= 2, "{} checks ran at once", checks.peak());
        assert!(busy > 0, "a 50 ms wait cannot start 24 checks 2 at a time");
        assert_eq!(checks.done() as usize + busy, 24);
    }

    fn named(username: &str, password: &str) -> UserPatch {
        UserPatch { username: Some(username.into()), password: Some(Secret::new(password)), ..Default::default() }
    }

    #[tokio::test]
    async fn cached_users_follow_every_write_at_once_and_unknown_names_are_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let kim = store.create_user(&named("kim", "k1m")).await.unwrap();
        let first = store.user_by_name_cached("kim").await.unwrap().unwrap();
        assert!(first.enabled);
        assert_eq!(store.user_by_name_cached("kim").await.unwrap(), Some(first));
        assert_eq!(store.read_cache_stats().0, crate::cache::CacheStats { hits: 1, misses: 1 });
        // Disabled, given a new password, deleted: the next read says so, without waiting for the TTL.
        store.update_user(kim.id, &UserPatch { enabled: Some(false), ..Default::default() }).await.unwrap();
        assert!(!store.user_by_name_cached("kim").await.unwrap().unwrap().enabled);
        store
            .update_user(kim.id, &UserPatch { password: Some(Secret::new("new")), ..Default::default() })
            .await
            .unwrap();
        let changed = store.user_by_name_cached("kim").await.unwrap().unwrap();
        assert_eq!(changed.password_hash, store.user(kim.id).await.unwrap().password_hash, "the new hash");
        store.delete_user(kim.id).await.unwrap();
        assert_eq!(store.user_by_name_cached("kim").await.unwrap(), None);
        // A user created under a name looked up before is found at once.
        let lee = store.create_user(&named("lee", "l33")).await.unwrap();
        assert_eq!(store.user_by_name_cached("lee").await.unwrap().map(|u| u.id), Some(lee.id));
        // Names from anyone: those that name nobody take no room.
        for i in 0..500 {
            assert_eq!(store.user_by_name_cached(&format!("nobody{i}")).await.unwrap(), None);
        }
        assert_eq!(store.caches().users.len(), 1, "only lee");
    }

    #[tokio::test]
    async fn a_write_whose_caller_went_away_still_clears_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let kim = store.create_user(&named("kim", "k1m")).await.unwrap();
        assert!(store.user_by_name_cached("kim").await.unwrap().unwrap().enabled);
        let cached_at = std::time::Instant::now();
        // The request that asked for the change is dropped after exactly one poll (a timeout of zero may poll
        // it again after the write finished).
        let disable = UserPatch { enabled: Some(false), ..Default::default() };
        let mut write = Box::pin(store.update_user(kim.id, &disable));
        let first =
            std::future::poll_fn(|cx| std::task::Poll::Ready(std::future::Future::poll(write.as_mut(), cx))).await;
        assert!(first.is_pending(), "the write had not finished when its caller went away");
        drop(write);
        // The write runs to its end anyway, and clears the cache well before the TTL would have.
        let deadline = cached_at + crate::cache::READ_CACHE_TTL / 2;
        while store.user_by_name_cached("kim").await.unwrap().unwrap().enabled {
            assert!(std::time::Instant::now() < deadline, "the cache still holds kim enabled");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!store.user(kim.id).await.unwrap().enabled);
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
