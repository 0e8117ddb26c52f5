//! Admin authentication: every `/api/v1` route wants `Authorization: Bearer
//! <token>`. The token comes from the binary (configuration or the data dir);
//! this module only compares, in constant time, and answers 401 in JSON.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::AppState;

/// The admin bearer token. A type of its own so it can only be compared,
/// never serialized or printed (`Debug` shows `***`).
#[derive(Clone)]
pub struct AdminToken(std::sync::Arc<str>);

impl AdminToken {
    /// Wraps a token; the caller has checked it (the binary requires ≥ 16 characters).
    pub fn new(token: impl Into<String>) -> Self {
        AdminToken(token.into().into())
    }

    /// Whether `candidate` is the token, in time independent of where they differ.
    pub fn matches(&self, candidate: &str) -> bool {
        bool::from(self.0.as_bytes().ct_eq(candidate.as_bytes()))
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(***)")
    }
}

const MISSING: &str = "admin token required: send the header Authorization: Bearer <token> (the token is printed at \
                       first start and stored in the data dir as admin-token, or set as admin.token)";
const WRONG: &str = "wrong admin token (see admin-token in the data dir, or admin.token in the configuration)";

/// Middleware for the `/api/v1` router: passes requests with the right
/// bearer token, answers everything else with 401.
pub(crate) async fn require_admin(State(st): State<AppState>, req: Request, next: Next) -> Response {
    match crate::access::bearer(req.headers()) {
        Some(t) if st.admin_token.matches(t) => {
            crate::access_log::record_user("admin");
            next.run(req).await
        }
        Some(_) => {
            if let Some(m) = req.extensions().get::<std::sync::Arc<crate::metrics::HttpMetrics>>() {
                m.login_failed("admin_token");
            }
            ApiError::unauthorized(WRONG).into_response()
        }
        None => ApiError::unauthorized(MISSING).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::AdminToken;

    #[test]
    fn compares_whole_tokens_and_never_prints() {
        let t = AdminToken::new("0123456789abcdef");
        assert!(t.matches("0123456789abcdef"));
        assert!(!t.matches("0123456789abcdeF"));
        assert!(!t.matches("0123456789abcdef0"));
        assert!(!t.matches(""));
        assert_eq!(format!("{t:?}"), "AdminToken(***)");
    }
}
