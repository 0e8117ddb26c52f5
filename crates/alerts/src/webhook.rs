//! Webhooks: where alerts go, and what each receiver wants to be sent.
//!
//! A webhook is written `format:url` (`ntfy:https://ntfy.sh/my-topic`); the
//! format picks a small payload template (see [`Format`]). The URL often is
//! the secret (a Discord or Slack webhook's path, a Gotify `?token=`, an
//! ntfy topic), so a [`Webhook`] never shows it: `Debug` and `Display` give
//! [`Webhook::redacted`] (scheme and host only), errors pass through
//! `tunerpool_domain::redact` with the URL's parts as known secrets, and the
//! store names a webhook by a digest ([`Webhook::target`]).

use std::fmt;

use serde_json::json;
use sha2::Digest;
use tunerpool_catalog::alerts::{Alert, Severity};

/// What to send: the payload template of a receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// A JSON POST with the alert's fields and `event` (`opened`/`resolved`).
    Json,
    /// ntfy: the message as the text body, `Title`, `Priority` and `Tags` headers.
    Ntfy,
    /// Gotify: `{title, message, priority}` (the token in the URL's `?token=`).
    Gotify,
    /// Discord webhook: `{content}`.
    Discord,
    /// Slack incoming webhook: `{text}`.
    Slack,
    /// Apprise API (`/notify/…`): `{title, body, type}`.
    Apprise,
}

impl Format {
    /// Every format, as written before the colon.
    pub const ALL: [(&'static str, Format); 6] = [
        ("json", Format::Json),
        ("ntfy", Format::Ntfy),
        ("gotify", Format::Gotify),
        ("discord", Format::Discord),
        ("slack", Format::Slack),
        ("apprise", Format::Apprise),
    ];

    pub fn as_str(self) -> &'static str {
        Format::ALL.iter().find(|(_, f)| *f == self).map_or("json", |(n, _)| n)
    }
}

/// Why a webhook setting is refused; the message says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("expected `format:url` with format one of json, ntfy, gotify, discord, slack, apprise (e.g. \"ntfy:https://ntfy.sh/my-topic\")")]
    NoFormat,
    #[error("unknown format {0:?}: use json, ntfy, gotify, discord, slack or apprise")]
    UnknownFormat(String),
    #[error("the URL of this {format} webhook is not usable: {reason}")]
    BadUrl { format: &'static str, reason: String },
}

/// One configured receiver of alerts. Exists so that the URL (often a
/// secret) travels inside a type that never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    format: Format,
    url: url::Url,
}

impl std::str::FromStr for Webhook {
    type Err = WebhookError;

    fn from_str(s: &str) -> Result<Webhook, WebhookError> {
        let s = s.trim();
        let (format, url) = s.split_once(':').ok_or(WebhookError::NoFormat)?;
        if url.starts_with("//") {
            // `https://…` without a format: the scheme was taken for one.
            return Err(WebhookError::NoFormat);
        }
        let format = Format::ALL
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(format.trim()))
            .map(|(_, f)| *f)
            .ok_or_else(|| WebhookError::UnknownFormat(format.trim().to_string()))?;
        let url = tunerpool_domain::location::parse_http_url(url.trim())
            .map_err(|reason| WebhookError::BadUrl { format: format.as_str(), reason })?;
        Ok(Webhook { format, url })
    }
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Webhook({})", self.redacted())
    }
}

impl fmt::Display for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// A request to send: body, content type, extra headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub body: Vec<u8>,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
}

impl Webhook {
    pub fn format(&self) -> Format {
        self.format
    }

    /// The URL itself, for sending only. Never log or return it.
    pub fn expose_url(&self) -> &str {
        self.url.as_str()
    }

    /// What may be shown: the format, scheme and host (`ntfy:https://ntfy.sh/…`);
    /// path, query and credentials are left out, since any of them may be the secret.
    pub fn redacted(&self) -> String {
        let host = self.url.host_str().unwrap_or("");
        let port = self.url.port().map(|p| format!(":{p}")).unwrap_or_default();
        format!("{}:{}://{host}{port}/…", self.format.as_str(), self.url.scheme())
    }

    /// A stable name of this webhook that reveals nothing (a digest of format and URL): what the
    /// store's outbox keys deliveries by.
    pub fn target(&self) -> String {
        let digest = sha2::Sha256::digest(format!("{}:{}", self.format.as_str(), self.url).as_bytes());
        digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
    }

    /// `text` with this webhook's URL, and each of its parts, masked (an
    /// error of the HTTP client may quote them).
    pub fn redact(&self, text: &str) -> String {
        let mut secrets: Vec<&str> = vec![self.url.as_str()];
        secrets.extend(self.url.path_segments().into_iter().flatten().filter(|s| s.len() >= 4));
        if let Some(q) = self.url.query() {
            secrets.push(q);
        }
        tunerpool_domain::redact::redact_text(text, &secrets)
    }

    /// The request that announces `alert`'s `event` (`opened` or `resolved`) in this webhook's format.
    pub fn payload(&self, alert: &Alert, event: &str) -> Payload {
        let resolved = event == "resolved";
        let title = if resolved { format!("Resolved: {}", alert.title) } else { alert.title.clone() };
        let message = tunerpool_domain::redact::redact_text(&alert.message, &[]);
        let json_body = |v: serde_json::Value| Payload {
            body: serde_json::to_vec(&v).expect("JSON values serialize"),
            content_type: "application/json",
            headers: Vec::new(),
        };
        match self.format {
            Format::Json => json_body(json!({
                "event": event,
                "id": alert.id,
                "key": alert.key,
                "kind": alert.kind,
                "severity": alert.severity,
                "title": title,
                "message": message,
                "provider_id": alert.provider_id,
                "account_id": alert.account_id,
                "user_id": alert.user_id,
                "opened_at": alert.opened_at,
                "resolved_at": alert.resolved_at,
            })),
            Format::Ntfy => {
                let (priority, tags) = match (resolved, alert.severity) {
                    (true, _) => ("default", "white_check_mark"),
                    (false, Severity::Critical) => ("high", "rotating_light"),
                    (false, Severity::Warning) => ("default", "warning"),
                };
                Payload {
                    body: message.into_bytes(),
                    content_type: "text/plain; charset=utf-8",
                    headers: vec![("Title", header_text(&title)), ("Priority", priority.into()), ("Tags", tags.into())],
                }
            }
            Format::Gotify => {
                let priority = match (resolved, alert.severity) {
                    (true, _) => 2,
                    (false, Severity::Critical) => 8,
                    (false, Severity::Warning) => 5,
                };
                json_body(json!({ "title": title, "message": message, "priority": priority }))
            }
            Format::Discord => json_body(json!({ "content": format!("**{title}**\n{message}") })),
            Format::Slack => json_body(json!({ "text": format!("*{title}*\n{message}") })),
            Format::Apprise => {
                let kind = match (resolved, alert.severity) {
                    (true, _) => "success",
                    (false, Severity::Critical) => "failure",
                    (false, Severity::Warning) => "warning",
                };
                json_body(json!({ "title": title, "body": message, "type": kind }))
            }
        }
    }
}

/// A header value for any text: ASCII as is, anything else as an RFC 2047
/// encoded word (what ntfy reads), control characters dropped.
fn header_text(text: &str) -> String {
    let text: String = text.chars().filter(|c| !c.is_control()).collect();
    if text.is_ascii() {
        return text;
    }
    let mut out = String::from("=?UTF-8?Q?");
    for b in text.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'!' | b'*' | b'+' | b'/' => out.push(b as char),
            b' ' => out.push('_'),
            _ => out.push_str(&format!("={b:02X}")),
        }
    }
    out.push_str("?=");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> Alert {
        Alert {
            id: 3,
            key: "account_expiring:2".into(),
            kind: "account_expiring".into(),
            severity: Severity::Warning,
            title: "Fake / Primary expires in 3 days".into(),
            message: "renew it".into(),
            provider_id: Some(1),
            account_id: Some(2),
            user_id: None,
            opened_at: 100,
            resolved_at: None,
        }
    }

    #[test]
    fn settings_are_parsed_with_clear_refusals() {
        let w: Webhook = "gotify:https://push.example.com/message?token=SECRETTOKEN".parse().unwrap();
        assert_eq!(w.format(), Format::Gotify);
        assert_eq!(w.to_string(), "gotify:https://push.example.com/…");
        assert!(!format!("{w:?}").contains("SECRETTOKEN"));
        assert_eq!("https://ntfy.sh/x".parse::<Webhook>(), Err(WebhookError::NoFormat));
        assert_eq!("teams:https://x.example".parse::<Webhook>(), Err(WebhookError::UnknownFormat("teams".into())));
        let bad = "slack:ftp://x.example".parse::<Webhook>().unwrap_err().to_string();
        assert!(bad.contains("slack") && bad.contains("http"), "{bad}");
        assert_eq!("NTFY:http://127.0.0.1:9/t".parse::<Webhook>().unwrap().to_string(), "ntfy:http://127.0.0.1:9/…");
    }

    #[test]
    fn errors_and_targets_reveal_nothing() {
        let w: Webhook = "discord:https://discord.com/api/webhooks/123/TOKENTOKEN".parse().unwrap();
        let e = w.redact("error sending request for url (https://discord.com/api/webhooks/123/TOKENTOKEN)");
        assert!(!e.contains("TOKENTOKEN"), "{e}");
        assert!(!w.target().contains("TOKEN") && w.target().len() == 24);
        let other: Webhook = "discord:https://discord.com/api/webhooks/123/OTHER".parse().unwrap();
        assert_ne!(w.target(), other.target());
    }

    #[test]
    fn each_format_has_its_template() {
        let a = alert();
        let body = |f: &str| {
            let w: Webhook = format!("{f}:http://h.example/x").parse().unwrap();
            let p = w.payload(&a, "opened");
            (serde_json::from_slice::<serde_json::Value>(&p.body).ok(), p)
        };
        let (json, _) = body("json");
        let json = json.unwrap();
        assert_eq!((json["event"].as_str(), json["severity"].as_str()), (Some("opened"), Some("warning")));
        assert_eq!(json["account_id"], 2);
        let (_, ntfy) = body("ntfy");
        assert_eq!(ntfy.body, b"renew it");
        assert!(ntfy.headers.contains(&("Title", "Fake / Primary expires in 3 days".into())));
        assert_eq!(body("gotify").0.unwrap()["priority"], 5);
        assert!(body("discord").0.unwrap()["content"].as_str().unwrap().contains("**Fake"));
        assert!(body("slack").0.unwrap()["text"].as_str().unwrap().starts_with("*Fake"));
        assert_eq!(body("apprise").0.unwrap()["type"], "warning");
        let w: Webhook = "apprise:http://h.example/notify".parse().unwrap();
        let p = w.payload(&Alert { resolved_at: Some(5), ..a }, "resolved");
        let v: serde_json::Value = serde_json::from_slice(&p.body).unwrap();
        assert_eq!(
            (v["type"].as_str(), v["title"].as_str()),
            (Some("success"), Some("Resolved: Fake / Primary expires in 3 days"))
        );
        assert_eq!(header_text("Télé 1"), "=?UTF-8?Q?T=C3=A9l=C3=A9_1?=");
    }
}
