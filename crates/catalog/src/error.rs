//! Errors of the catalog crate.

pub use tunerpool_domain::FieldError;

/// What can go wrong in the catalog. Messages never contain passwords.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("invalid input: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// Well-formed input that the stored state refuses: it names something
    /// that does not exist (a stream, a group, a source of another channel)
    /// or takes what another holds (a channel number). Answered 409 with
    /// the fields, unlike [`CatalogError::Invalid`] (400), which a request
    /// can be checked against on its own (its schema).
    #[error("refused: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Refused(Vec<FieldError>),
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    /// The request conflicts with the state of things (removing the
    /// primary account, syncing a provider without credentials). Never an
    /// internal failure: those are [`CatalogError::Internal`].
    #[error("{0}")]
    Conflict(String),
    /// Something that should not happen did (a stored value that does not
    /// parse, a task that died). The message is for the server log, not for
    /// clients.
    #[error("internal error: {0}")]
    Internal(String),
    #[error("cannot open the store at {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("store error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("sync of provider {provider} failed: {source}")]
    Sync {
        provider: String,
        #[source]
        source: tunerpool_upstream::UpstreamError,
    },
    #[error("guide fetch of provider {provider} failed: {source}")]
    Guide {
        provider: String,
        #[source]
        source: tunerpool_upstream::UpstreamError,
    },
}
