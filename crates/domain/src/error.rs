//! What is wrong with one input field.

use serde::Serialize;

/// One invalid input field, named as the user typed it. Every validation in
/// tunerpool (provider and account input, lineup edits, users) answers with
/// a list of these, so that the API can name each problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
    /// The value has the documented shape (the OpenAPI schema allows it)
    /// but means nothing usable — a URL without a host, say. No schema can
    /// say what a usable URL is, so these answer 422, not 400.
    #[serde(skip)]
    pub unusable: bool,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into(), unusable: false }
    }

    /// A well-formed value that cannot be used (see [`FieldError::unusable`]).
    pub fn unusable(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { unusable: true, ..FieldError::new(field, message) }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}
