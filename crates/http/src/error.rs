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

/// The JSON shape of every error answer; named `Error` in the OpenAPI document.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What went wrong and what to do, in one sentence.
    pub error: String,
    /// For bad input: each wrong field and what is wrong with it (absent when empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldError>,
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

    /// No or a wrong admin token: 401, naming the `Authorization` header.
    pub fn unauthorized(message: &str) -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: message.to_owned(),
            fields: vec![FieldError::new("Authorization", message)],
        }
    }

    /// No such API route: 404 in JSON, like every other API answer.
    pub fn no_route(method: &str, path: &str) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("no API route {method} {path}; see /api/v1/openapi.json"),
            fields: vec![],
        }
    }

    pub fn invalid(fields: Vec<FieldError>) -> Self {
        let message = fields.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        ApiError { status: StatusCode::BAD_REQUEST, message, fields }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(ErrorBody { error: self.message, fields: self.fields })).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        resp
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
