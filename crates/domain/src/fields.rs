//! How fields cross the API boundary: text that may hold a URL is redacted
//! when serialized, and PATCH bodies tell "absent" from `null`.

use serde::{Deserialize, Serializer};

/// Serializes a URL with its credentials masked.
pub fn serialize_redacted_url<S: Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::redact::redact_url(url, &[]))
}

/// [`serialize_redacted_url`] for an optional URL.
pub fn serialize_redacted_opt_url<S: Serializer>(url: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match url {
        Some(u) => serialize_redacted_url(u, s),
        None => s.serialize_none(),
    }
}

/// Serializes a message (an error, an event, an M3U key) with every URL in
/// it redacted: rows written by older versions, or text quoted from a
/// provider, may hold credentials.
pub fn serialize_redacted_text<S: Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::redact::redact_text(text, &[]))
}

/// [`serialize_redacted_text`] for an optional message.
pub fn serialize_redacted_opt_text<S: Serializer>(text: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match text {
        Some(t) => serialize_redacted_text(t, s),
        None => s.serialize_none(),
    }
}

/// [`serialize_redacted_text`] for a list of messages.
pub fn serialize_redacted_texts<S: Serializer>(texts: &[String], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(texts.iter().map(|t| crate::redact::redact_text(t, &[])))
}

/// `Some(None)` when a JSON field is present and `null` (clear it), `None`
/// when absent (keep it): what PATCH needs for optional values. Use with
/// `#[serde(default, deserialize_with = "nullable")]`.
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}
