//! Xtream Codes `player_api.php` JSON responses.
//!
//! Most IPTV providers expose an Xtream Codes panel; its JSON is loosely
//! typed and varies between panel versions (see [`de`] for the quirks
//! handled). This module turns response bodies into typed values without doing
//! any I/O itself:
//!
//! * [`parse_auth`] for the login response;
//! * [`parse_list`] for category/stream lists held in memory;
//! * [`for_each_item`] for large lists streamed from any [`std::io::Read`].

pub mod de;
mod error;
mod stream;
mod types;

pub use error::XtreamError;
pub use stream::{for_each_item, parse_list, ItemCounts, ListResult};
pub use types::{AuthResponse, Category, LiveStream, Series, ServerInfo, UserInfo, VodStream};

use serde::Deserialize as _;

/// Parses a login response (`player_api.php?username=…&password=…`).
///
/// Rejected credentials are not an error: `{"user_info":{"auth":0}}`, `[]`
/// and `{}` all parse with `user_info.auth == false`. A non-JSON body (HTML
/// error page, empty body) is [`XtreamError::NotJson`]. Trailing bytes after
/// the JSON value are ignored.
pub fn parse_auth(body: &[u8]) -> Result<AuthResponse, XtreamError> {
    let start = stream::json_start(body)?;
    let mut de = serde_json::Deserializer::from_slice(&body[start..]);
    let value = serde_json::Value::deserialize(&mut de).map_err(stream::json_error)?;
    if value.is_object() {
        Ok(serde_json::from_value(value)?)
    } else {
        Ok(AuthResponse::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_shapes() {
        let a = parse_auth(br#"{"user_info":{"auth":0}}"#).unwrap();
        assert!(!a.user_info.auth);
        assert!(a.server_info.is_none());
        assert_eq!(parse_auth(b"[]").unwrap(), AuthResponse::default());
        assert_eq!(parse_auth(b" {} ").unwrap(), AuthResponse::default());
        let a = parse_auth(
            br#"{"user_info":{"auth":"1","exp_date":null,"max_connections":"1"},"server_info":{"port":8080}} trailing"#,
        )
        .unwrap();
        assert!(a.user_info.auth);
        assert_eq!(a.user_info.exp_date, None);
        assert_eq!(a.user_info.max_connections, Some(1));
        assert_eq!(a.server_info.unwrap().port.as_deref(), Some("8080"));
        assert!(matches!(parse_auth(b"<html>"), Err(XtreamError::NotJson { .. })));
        assert!(matches!(parse_auth(b""), Err(XtreamError::NotJson { .. })));
        assert!(matches!(parse_auth(b"{\"user_info\":"), Err(XtreamError::Json(_))));
    }
}
