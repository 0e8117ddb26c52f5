//! How many streams an account may hold, and whether it may be used at all.
//!
//! Limits are sacred: a provider that sees more connections than an account
//! allows may cut all of them or ban the account. So when nothing is known
//! about an Xtream account the pool assumes the usual limit of 1, never more.
//!
//! | manual (`account.max_streams`) | detected (`details.max_connections`) | effective max | origin |
//! |---|---|---|---|
//! | `Some(m)` | unknown | `m` | [`MaxOrigin::Manual`] |
//! | unknown | `Some(d)`, `d > 0` | `d` | [`MaxOrigin::Detected`] |
//! | `Some(m)` | `Some(d)`, `d > 0` | `min(m, d)` | [`MaxOrigin::Both`] |
//! | unknown | unknown | Xtream: [`XTREAM_DEFAULT_MAX_STREAMS`]; AGTV: the provider's `max_streams`, else [`AGTV_DEFAULT_MAX_STREAMS`]; M3U: the provider's `max_streams`, else [`UNLIMITED`] | [`MaxOrigin::Default`] |
//!
//! A detected `0` is treated as unknown: Xtream panels report
//! `max_connections: 0` for accounts without a limit, and "no limit" from a
//! panel is not something to trust with a ban at stake. A manual `0` is taken
//! literally (the account may hold no stream). Negative numbers cannot come
//! from the store (validated there) and are read as `0`.

use serde::Serialize;
use tunerpool_domain::{Account, Provider, ProviderKind, AGTV_DEFAULT_MAX_STREAMS};

/// The "no limit" of a plain M3U provider that states none: large enough
/// never to be the reason a stream is refused, small enough that sums and
/// ratios over it stay exact.
pub const UNLIMITED: u32 = 1000;

/// The limit assumed for an Xtream account whose panel did not tell its own
/// and for which the user set none: the usual one connection.
pub const XTREAM_DEFAULT_MAX_STREAMS: u32 = 1;

/// Where an effective limit comes from, so the UI and logs can say why an
/// account holds at most N streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MaxOrigin {
    /// Set by hand on the account.
    Manual,
    /// Reported by the panel (`max_connections`).
    Detected,
    /// Both are known; the smaller applies ([`EffectiveMax::applied_from`] says which).
    Both,
    /// Neither is known; the default of the provider kind applies.
    Default,
}

/// The number of streams an account may hold, with what it was derived from.
/// Exists so that selection, the ledger and the API all use one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EffectiveMax {
    /// The limit that applies.
    pub max: u32,
    /// Which inputs were known.
    pub origin: MaxOrigin,
    /// Which input gave `max`: [`MaxOrigin::Manual`], [`MaxOrigin::Detected`]
    /// or [`MaxOrigin::Default`], never [`MaxOrigin::Both`]. When both are known
    /// and equal, [`MaxOrigin::Manual`].
    pub applied_from: MaxOrigin,
    /// The manual limit, if set.
    pub manual: Option<u32>,
    /// The limit reported by the panel, if known (a reported `0` is `None`).
    pub detected: Option<u32>,
}

/// Converts a stored count to `u32`: negative is `0`, huge is `u32::MAX`.
pub(crate) fn count(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

/// The effective limit of `account` at `provider` (see the module doc for the table).
pub fn effective_max(account: &Account, provider: &Provider) -> EffectiveMax {
    let manual = account.max_streams.map(count);
    let detected = account.details.max_connections.map(count).filter(|d| *d > 0);
    let (max, origin, applied_from) = match (manual, detected) {
        (Some(m), Some(d)) if d < m => (d, MaxOrigin::Both, MaxOrigin::Detected),
        (Some(m), Some(_)) => (m, MaxOrigin::Both, MaxOrigin::Manual),
        (Some(m), None) => (m, MaxOrigin::Manual, MaxOrigin::Manual),
        (None, Some(d)) => (d, MaxOrigin::Detected, MaxOrigin::Detected),
        (None, None) => {
            let max = match provider.kind {
                ProviderKind::Xtream => XTREAM_DEFAULT_MAX_STREAMS,
                ProviderKind::Agtv => provider.max_streams.map(count).unwrap_or(count(AGTV_DEFAULT_MAX_STREAMS)),
                ProviderKind::M3u => provider.max_streams.map(count).unwrap_or(UNLIMITED),
            };
            (max, MaxOrigin::Default, MaxOrigin::Default)
        }
    };
    EffectiveMax { max, origin, applied_from, manual, detected }
}

/// Why an account cannot be used right now. Shown to users next to the
/// account (API, 503 answers, logs), so each reason reads as a short phrase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Unusable {
    /// Switched off by the user.
    #[error("disabled")]
    Disabled,
    /// An Xtream account needs a username and a password to build any URL.
    #[error("has no username or password")]
    NoCredentials,
    /// The panel answered `auth: 0` the last time it was asked.
    #[error("the panel rejected its credentials")]
    AuthFailed,
    /// The subscription ended (`exp_date`, Unix seconds, is in the past).
    #[error("expired on {}", format_date(*exp_date))]
    Expired { exp_date: i64 },
    /// The panel reports a status other than `Active` (`Banned`, `Disabled`, …).
    #[error("status is {status}")]
    Inactive { status: String },
}

/// Whether `account` (of a provider of `kind`) may be used at `now_unix`.
/// Checks, in this order: enabled, credentials (Xtream only), `auth`,
/// expiry, status. An `exp_date` of `0` or less means "never expires"
/// (what panels send for unlimited accounts); an empty status is unknown.
pub fn is_usable(account: &Account, kind: ProviderKind, now_unix: i64) -> Result<(), Unusable> {
    if !account.enabled {
        return Err(Unusable::Disabled);
    }
    if kind == ProviderKind::Xtream
        && (account.username.as_deref().is_none_or(|u| u.trim().is_empty()) || account.password.is_empty())
    {
        return Err(Unusable::NoCredentials);
    }
    let d = &account.details;
    if d.auth == Some(false) {
        return Err(Unusable::AuthFailed);
    }
    if let Some(exp_date) = d.exp_date.filter(|e| *e > 0 && *e <= now_unix) {
        return Err(Unusable::Expired { exp_date });
    }
    if let Some(status) = d.status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        if !status.eq_ignore_ascii_case("active") {
            return Err(Unusable::Inactive { status: status.to_string() });
        }
    }
    Ok(())
}

/// `YYYY-MM-DD` (UTC) of a Unix time, without a date library.
pub(crate) fn format_date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    // Civil-from-days over 400-year eras of 146 097 days, counted from 0000-03-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{account, provider};
    use tunerpool_domain::Secret;

    fn eff(kind: ProviderKind, provider_max: Option<i64>, manual: Option<i64>, detected: Option<i64>) -> EffectiveMax {
        let mut p = provider(1, "p", kind);
        p.max_streams = provider_max;
        let mut a = account(1, 1, "a");
        a.max_streams = manual;
        a.details.max_connections = detected;
        effective_max(&a, &p)
    }

    #[test]
    fn effective_max_table() {
        use MaxOrigin::*;
        use ProviderKind::*;
        // (kind, provider max, manual, detected) → (max, origin, applied_from, manual, detected)
        type Row = (ProviderKind, Option<i64>, Option<i64>, Option<i64>, u32, MaxOrigin, MaxOrigin);
        let table: &[Row] = &[
            (Xtream, None, Some(3), None, 3, Manual, Manual),
            (Xtream, None, None, Some(2), 2, Detected, Detected),
            (Xtream, None, Some(3), Some(2), 2, Both, Detected),
            (Xtream, None, Some(1), Some(4), 1, Both, Manual),
            (Xtream, None, Some(2), Some(2), 2, Both, Manual),
            (Xtream, None, None, None, 1, Default, Default),
            (Xtream, Some(9), None, None, 1, Default, Default),
            (Xtream, None, None, Some(0), 1, Default, Default),
            (Xtream, None, Some(4), Some(0), 4, Manual, Manual),
            (Xtream, None, Some(0), Some(3), 0, Both, Manual),
            (Agtv, Some(5), None, None, 5, Default, Default),
            (Agtv, None, None, None, 5, Default, Default),
            (Agtv, Some(3), None, None, 3, Default, Default),
            (Agtv, Some(5), Some(2), None, 2, Manual, Manual),
            (Agtv, None, Some(7), Some(6), 6, Both, Detected),
            (M3u, None, None, None, UNLIMITED, Default, Default),
            (M3u, Some(4), None, None, 4, Default, Default),
            (M3u, Some(0), None, None, 0, Default, Default),
            (M3u, Some(4), Some(2), None, 2, Manual, Manual),
            (M3u, None, None, Some(3), 3, Detected, Detected),
            (M3u, None, None, Some(0), UNLIMITED, Default, Default),
        ];
        for &(kind, pmax, manual, detected, max, origin, applied) in table {
            let e = eff(kind, pmax, manual, detected);
            let row = format!("{kind} provider={pmax:?} manual={manual:?} detected={detected:?}");
            assert_eq!(e.max, max, "{row}");
            assert_eq!(e.origin, origin, "{row}");
            assert_eq!(e.applied_from, applied, "{row}");
            assert_eq!(e.manual, manual.map(|m| m as u32), "{row}");
            assert_eq!(e.detected, detected.filter(|d| *d > 0).map(|d| d as u32), "{row}");
        }
    }

    #[test]
    fn negative_values_are_zero() {
        let e = eff(ProviderKind::Xtream, None, Some(-3), Some(-1));
        assert_eq!((e.max, e.origin, e.manual, e.detected), (0, MaxOrigin::Manual, Some(0), None));
        let e = eff(ProviderKind::M3u, Some(-2), None, None);
        assert_eq!((e.max, e.origin), (0, MaxOrigin::Default));
        let e = eff(ProviderKind::Xtream, None, Some(i64::MAX), None);
        assert_eq!(e.max, u32::MAX);
    }

    #[test]
    fn serializes_snake_case() {
        let json = serde_json::to_string(&eff(ProviderKind::Xtream, None, Some(3), Some(2))).unwrap();
        assert_eq!(json, r#"{"max":2,"origin":"both","applied_from":"detected","manual":3,"detected":2}"#);
        let json = serde_json::to_string(&Unusable::Expired { exp_date: 5 }).unwrap();
        assert_eq!(json, r#"{"reason":"expired","exp_date":5}"#);
    }

    const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    #[test]
    fn usable_account() {
        let mut a = account(1, 1, "a");
        assert_eq!(is_usable(&a, ProviderKind::Xtream, NOW), Ok(()));
        a.details.status = Some("active".into());
        a.details.auth = Some(true);
        a.details.exp_date = Some(NOW + 86_400);
        assert_eq!(is_usable(&a, ProviderKind::Xtream, NOW), Ok(()));
        a.details.exp_date = Some(0);
        a.details.status = Some(" ACTIVE ".into());
        assert_eq!(is_usable(&a, ProviderKind::Xtream, NOW), Ok(()));
        a.details.status = Some(String::new());
        assert_eq!(is_usable(&a, ProviderKind::Xtream, NOW), Ok(()));
    }

    #[test]
    fn every_unusable_reason() {
        let base = account(1, 1, "a");

        let mut a = base.clone();
        a.enabled = false;
        assert_eq!(is_usable(&a, ProviderKind::Xtream, NOW), Err(Unusable::Disabled));
        assert_eq!(Unusable::Disabled.to_string(), "disabled");

        let mut a = base.clone();
        a.username = None;
        assert_eq!(is_usable(&a, ProviderKind::Xtream, NOW), Err(Unusable::NoCredentials));
        a.username = Some("  ".into());
        assert_eq!(is_usable(&a, ProviderKind::Xtream, NOW), Err(Unusable::NoCredentials));
        let mut a = base.clone();
        a.password = Secret::new("");
        assert_eq!(is_usable(&a, ProviderKind::Xtream, NOW), Err(Unusable::NoCredentials));
        assert_eq!(Unusable::NoCredentials.to_string(), "has no username or password");
        // Plain M3U and AGTV accounts need no credentials.
        a.username = None;
        assert_eq!(is_usable(&a, ProviderKind::M3u, NOW), Ok(()));
        assert_eq!(is_usable(&a, ProviderKind::Agtv, NOW), Ok(()));

        let mut a = base.clone();
        a.details.auth = Some(false);
        assert_eq!(is_usable(&a, ProviderKind::Xtream, NOW), Err(Unusable::AuthFailed));
        assert_eq!(Unusable::AuthFailed.to_string(), "the panel rejected its credentials");

        let mut a = base.clone();
        a.details.exp_date = Some(1_767_312_000); // 2026-01-02
        assert_eq!(
            is_usable(&a, ProviderKind::Xtream, 1_767_312_000 + 1),
            Err(Unusable::Expired { exp_date: 1_767_312_000 })
        );
        assert_eq!(is_usable(&a, ProviderKind::Xtream, 1_767_312_000 - 1), Ok(()));
        assert_eq!(Unusable::Expired { exp_date: 1_767_312_000 }.to_string(), "expired on 2026-01-02");

        let mut a = base.clone();
        a.details.status = Some("Banned".into());
        assert_eq!(is_usable(&a, ProviderKind::Xtream, NOW), Err(Unusable::Inactive { status: "Banned".into() }));
        assert_eq!(Unusable::Inactive { status: "Banned".into() }.to_string(), "status is Banned");
        a.details.status = Some("Disabled".into());
        assert_eq!(is_usable(&a, ProviderKind::M3u, NOW), Err(Unusable::Inactive { status: "Disabled".into() }));
    }

    #[test]
    fn reasons_are_checked_in_order() {
        let mut a = account(1, 1, "a");
        a.details.status = Some("Expired".into());
        a.details.exp_date = Some(NOW - 10);
        assert!(matches!(is_usable(&a, ProviderKind::Xtream, NOW), Err(Unusable::Expired { .. })));
        a.details.auth = Some(false);
        assert_eq!(is_usable(&a, ProviderKind::Xtream, NOW), Err(Unusable::AuthFailed));
        a.password = Secret::new("");
        assert_eq!(is_usable(&a, ProviderKind::Xtream, NOW), Err(Unusable::NoCredentials));
        a.enabled = false;
        assert_eq!(is_usable(&a, ProviderKind::Xtream, NOW), Err(Unusable::Disabled));
    }

    #[test]
    fn dates() {
        assert_eq!(format_date(0), "1970-01-01");
        assert_eq!(format_date(951_782_400), "2000-02-29");
        assert_eq!(format_date(1_767_312_000 + 86_399), "2026-01-02");
        assert_eq!(format_date(-1), "1969-12-31");
        assert_eq!(format_date(4_102_444_800), "2100-01-01");
    }
}
