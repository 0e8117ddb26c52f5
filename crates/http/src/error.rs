//! API errors as JSON: what went wrong, and for bad input, which field.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tunerpool_catalog::{CatalogError, FieldError};

/// An error answer: `{"error": "...", "fields": [{"field": ..., "message": ...}]}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub fields: Vec<FieldError>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    fields: &'a [FieldError],
}

impl ApiError {
    /// The provider failed us (sync now): 502, with the redacted reason.
    pub fn upstream(message: String) -> Self {
        ApiError { status: StatusCode::BAD_GATEWAY, message, fields: vec![] }
    }

    /// A backend we depend on (the Redis ledger) is down: 503.
    pub fn unavailable(message: String) -> Self {
        ApiError { status: StatusCode::SERVICE_UNAVAILABLE, message, fields: vec![] }
    }

    pub fn invalid(fields: Vec<FieldError>) -> Self {
        let message = fields.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        ApiError { status: StatusCode::BAD_REQUEST, message, fields }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(Body { error: &self.message, fields: &self.fields })).into_response()
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Invalid(fields) => ApiError::invalid(fields),
            CatalogError::NotFound { .. } => {
                ApiError { status: StatusCode::NOT_FOUND, message: e.to_string(), fields: vec![] }
            }
            CatalogError::Conflict(_) => {
                ApiError { status: StatusCode::CONFLICT, message: e.to_string(), fields: vec![] }
            }
            other => {
                tracing::error!(error = %other, "internal error");
                ApiError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    message: "internal error; see the server log".into(),
                    fields: vec![],
                }
            }
        }
    }
}
