//! API errors as JSON: what went wrong, and for bad input, which field.
//! Internal failures are answered with a short reference that the server
//! log repeats next to the full error ([`internal`]), never with the error
//! itself.

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

    /// The thing is busy with the same work elsewhere (a provider's sync on another instance): 409.
    pub fn busy(message: String) -> Self {
        ApiError { status: StatusCode::CONFLICT, message, fields: vec![] }
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

    /// No such thing: 404 with what was looked for.
    pub fn not_found(message: String) -> Self {
        ApiError { status: StatusCode::NOT_FOUND, message, fields: vec![] }
    }

    /// Something failed inside: 500 with a reference to the log line that
    /// has the details (see [`internal`]).
    pub fn internal(context: &str, err: &dyn std::fmt::Display) -> Self {
        ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, message: internal(context, err), fields: vec![] }
    }

    /// Well-formed input the stored state refuses (an unknown stream or
    /// group named in the body, a number taken): 409, naming the fields.
    pub fn refused(fields: Vec<FieldError>) -> Self {
        let message = fields.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        ApiError { status: StatusCode::CONFLICT, message, fields }
    }

    /// Bad input: 400 naming every field; 422 when every problem is a
    /// value of the right shape that cannot be used (a URL without a host).
    pub fn invalid(fields: Vec<FieldError>) -> Self {
        let message = fields.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        let status = if !fields.is_empty() && fields.iter().all(|f| f.unusable) {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError { status, message, fields }
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
            CatalogError::Refused(fields) => ApiError::refused(fields),
            CatalogError::NotFound { .. } => ApiError::not_found(e.to_string()),
            CatalogError::Conflict(_) => {
                ApiError { status: StatusCode::CONFLICT, message: e.to_string(), fields: vec![] }
            }
            other => ApiError::internal("request failed", &other),
        }
    }
}

/// Logs an internal error under a fresh reference and returns what the
/// client is told: that reference, and none of the error's text (which may
/// name files, queries or stored values).
pub(crate) fn internal(context: &str, err: &dyn std::fmt::Display) -> String {
    let reference = format!("{:08x}", rand::random::<u32>());
    tracing::error!(reference = %reference, error = %err, "{context}: internal error");
    format!("internal error (ref={reference}); the server log has the details under this reference")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_are_answered_with_a_reference_the_log_repeats() {
        #[derive(Clone, Default)]
        struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Captured {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
        let err = tracing::subscriber::with_default(subscriber, || {
            ApiError::from(CatalogError::Internal("row 7: unknown kind \"bogus\"".into()))
        });
        assert_eq!(err.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!err.message.contains("bogus"), "{}", err.message);
        let reference = err.message.split("ref=").nth(1).and_then(|r| r.get(..8)).unwrap();
        assert!(reference.chars().all(|c| c.is_ascii_hexdigit()), "{}", err.message);
        let logged = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        assert!(logged.contains(reference) && logged.contains("bogus"), "{logged}");
        // Real conflicts stay 409 with their message.
        let conflict = ApiError::from(CatalogError::Conflict("account 3 is the primary account".into()));
        assert_eq!(
            (conflict.status, conflict.message.as_str()),
            (StatusCode::CONFLICT, "account 3 is the primary account")
        );
    }
}
