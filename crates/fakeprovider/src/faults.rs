//! Injected misbehaviour: the ways real panels fail, switchable at run time.
//!
//! Faults are kept in insertion order; for each request the first fault that matches
//! (account, stream id, and a kind that applies to that kind of request) fires, and its
//! `times` budget is decremented (it is removed when the budget reaches 0).
//!
//! Where each kind applies:
//!
//! | kind | live TS | HLS playlist/segment | VOD/series | player_api | get.php / xmltv.php |
//! |---|---|---|---|---|---|
//! | `refuse` | yes | yes | yes | | |
//! | `stall`, `cut_after`, `placeholder` | yes | | yes | | |
//! | `redirect_token` | yes | | | | |
//! | `api_html` | | | | yes | |
//! | `api_slow` | | | | yes | yes |
//!
//! API requests carry no stream id, so only faults with `stream_id: None` match them.
//! `refuse` and `placeholder` answer without taking a connection slot; `stall` and
//! `cut_after` happen on an admitted (counted) connection.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Most faults kept at once (bounded memory whatever control clients send).
pub(crate) const MAX_FAULTS: usize = 1024;

/// A fault switch: what to do, to which requests, how many times.
///
/// JSON (the kind's fields are inline):
/// `{"kind":"refuse","status":503,"username":"user1","stream_id":3,"times":1}`.
/// `username`, `stream_id` and `times` may be omitted (= any account, any stream, until cleared).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// What happens.
    #[serde(flatten)]
    pub kind: FaultKind,
    /// Only requests of this account (`None` = any account).
    #[serde(default)]
    pub username: Option<String>,
    /// Only requests for this stream id (`None` = any; API requests only match `None`).
    #[serde(default)]
    pub stream_id: Option<u64>,
    /// Fire at most this many times (`None` = until cleared).
    #[serde(default)]
    pub times: Option<u32>,
}

impl Fault {
    /// A fault for every account and stream, until cleared.
    pub fn new(kind: FaultKind) -> Self {
        Fault { kind, username: None, stream_id: None, times: None }
    }

    /// Restrict to one account.
    pub fn for_user(mut self, username: &str) -> Self {
        self.username = Some(username.to_string());
        self
    }

    /// Restrict to one stream id.
    pub fn for_stream(mut self, stream_id: u64) -> Self {
        self.stream_id = Some(stream_id);
        self
    }

    /// Fire at most `n` times.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }
}

/// What an injected fault does. Serialized with a `"kind"` tag in snake_case
/// (`refuse`, `stall`, `cut_after`, `placeholder`, `redirect_token`, `api_html`, `api_slow`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer the stream request with this status (e.g. 403, 404, 502, 503) and an empty body.
    Refuse {
        /// HTTP status (values outside 200..=599 become 503).
        status: u16,
    },
    /// Send 200 and `after_bytes` of stream, then nothing more while keeping the socket open.
    Stall {
        /// Bytes sent before stalling.
        after_bytes: u64,
    },
    /// Send `bytes` of stream, then abort the connection (no clean end of body).
    CutAfter {
        /// Bytes sent before the cut.
        bytes: u64,
    },
    /// 200 with `Content-Type: video/mp2t` but a short HTML body, like panels' "expired" placeholder.
    Placeholder,
    /// 302 to `/token/{random}/live/{u}/{p}/{id}.{ext}`, which serves the stream once.
    RedirectToken,
    /// `player_api.php` answers 200 with an HTML error page.
    ApiHtml,
    /// `player_api.php`, `get.php` and `xmltv.php` answer after this delay.
    ApiSlow {
        /// Delay in milliseconds.
        delay_ms: u64,
    },
}

/// Which kind of request is asking for a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    LiveTs,
    Hls,
    Vod,
    /// `player_api.php`, looking for `api_html`.
    ApiHtml,
    /// Any API endpoint, looking for `api_slow`.
    ApiSlow,
}

impl FaultKind {
    fn applies_to(&self, target: Target) -> bool {
        use FaultKind::*;
        matches!(
            (self, target),
            (Refuse { .. }, Target::LiveTs | Target::Hls | Target::Vod)
                | (Stall { .. } | CutAfter { .. } | Placeholder, Target::LiveTs | Target::Vod)
                | (RedirectToken, Target::LiveTs)
                | (ApiHtml, Target::ApiHtml)
                | (ApiSlow { .. }, Target::ApiSlow)
        )
    }
}

/// The active faults.
///
/// Exists so that matching and the `times` budget are decided atomically (two concurrent
/// requests never both consume the last firing).
#[derive(Debug, Default)]
pub(crate) struct Faults {
    list: Mutex<Vec<Fault>>,
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Fault>> {
        self.list.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add a fault (a `times: Some(0)` fault is ignored; beyond [`MAX_FAULTS`] the oldest goes).
    pub(crate) fn add(&self, fault: Fault) {
        if fault.times == Some(0) {
            return;
        }
        let mut list = self.lock();
        if list.len() >= MAX_FAULTS {
            list.remove(0);
        }
        list.push(fault);
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    pub(crate) fn list(&self) -> Vec<Fault> {
        self.lock().clone()
    }

    /// Fire the first fault matching this request, if any.
    pub(crate) fn take(&self, target: Target, username: &str, stream_id: Option<u64>) -> Option<FaultKind> {
        let mut list = self.lock();
        let idx = list.iter().position(|f| {
            f.kind.applies_to(target)
                && f.username.as_deref().is_none_or(|u| u == username)
                && f.stream_id.is_none_or(|s| Some(s) == stream_id)
        })?;
        let fault = &mut list[idx];
        let kind = fault.kind.clone();
        if let Some(n) = fault.times.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                list.remove(idx);
            }
        }
        Some(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape() {
        let f: Fault = serde_json::from_str(r#"{"kind":"refuse","status":503,"username":"u","times":1}"#).unwrap();
        assert_eq!(f, Fault::new(FaultKind::Refuse { status: 503 }).for_user("u").times(1));
        let f: Fault = serde_json::from_str(r#"{"kind":"placeholder","stream_id":3}"#).unwrap();
        assert_eq!(f, Fault::new(FaultKind::Placeholder).for_stream(3));
        let back: Fault = serde_json::from_value(serde_json::to_value(&f).unwrap()).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn matching_and_budget() {
        let faults = Faults::default();
        faults.add(Fault::new(FaultKind::Refuse { status: 502 }).for_user("a").times(2));
        faults.add(Fault::new(FaultKind::ApiHtml).for_stream(9));
        assert_eq!(faults.take(Target::LiveTs, "b", Some(1)), None);
        assert!(faults.take(Target::Vod, "a", None).is_some());
        assert!(faults.take(Target::LiveTs, "a", Some(1)).is_some());
        assert_eq!(faults.take(Target::LiveTs, "a", Some(1)), None);
        assert_eq!(faults.take(Target::ApiHtml, "a", None), None);
        assert_eq!(faults.list().len(), 1);
    }
}
