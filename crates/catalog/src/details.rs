//! Provider details (seed 004): what a panel says about an account — expiry,
//! connection limit, active connections, status — fetched on add, on edit,
//! on Test, and by a periodic job. Only the details are written: no catalog
//! re-sync, no other side effect.

use serde::Serialize;
use tunerpool_upstream::xtream::XtreamClient;
use tunerpool_upstream::{UpstreamError, UpstreamHttp};

use crate::error::CatalogError;
use crate::events::{Level, NewEvent};
use crate::model::{Account, AccountDetails, Provider, ProviderKind, AGTV_DEFAULT_MAX_STREAMS};
use crate::store::{now, Store};

/// The answer to "are these credentials good?", shown before an account is
/// saved (the Test button, `tunerpool account test`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TestReport {
    /// Reachable, and the panel accepted the credentials and says the account is usable.
    pub ok: bool,
    /// When not ok: what is wrong, in words a user can act on.
    pub reason: Option<String>,
    pub auth: Option<bool>,
    pub status: Option<String>,
    pub exp_date: Option<i64>,
    pub days_left: Option<i64>,
    pub is_trial: Option<bool>,
    pub max_connections: Option<i64>,
    pub active_cons: Option<i64>,
    /// What to put in "max streams": the panel's limit (or 1 when it does not say).
    pub suggested_max_streams: Option<i64>,
}

/// Asks an Xtream panel about credentials. Never returns an error: an
/// unreachable or refusing panel is a report with `ok: false` and a reason.
pub async fn test_xtream(http: &UpstreamHttp, server_url: &str, username: &str, password: &str) -> TestReport {
    let client = match XtreamClient::new(http.clone(), server_url, username, password) {
        Ok(c) => c,
        Err(e) => return TestReport { reason: Some(e.to_string()), ..Default::default() },
    };
    match client.authenticate().await {
        Ok(resp) => report_from(&resp.user_info, now()),
        Err(e) => TestReport { reason: Some(e.to_string()), ..Default::default() },
    }
}

fn report_from(info: &tunerpool_formats::xtream::UserInfo, now: i64) -> TestReport {
    let days_left = tunerpool_domain::days_left(info.exp_date, now);
    let expired = info.exp_date.is_some_and(|exp| exp > 0 && exp <= now);
    let status_ok = info.status.as_deref().is_none_or(|s| s.eq_ignore_ascii_case("active"));
    let reason = if !info.auth {
        Some(match &info.message {
            Some(m) if !m.trim().is_empty() => format!("the panel rejected the username or password: {}", m.trim()),
            _ => "the panel rejected the username or password (auth=0)".to_string(),
        })
    } else if expired {
        Some("the account has expired".to_string())
    } else if !status_ok {
        Some(format!("the panel says the account is {}", info.status.as_deref().unwrap_or_default()))
    } else {
        None
    };
    TestReport {
        ok: reason.is_none(),
        reason,
        auth: Some(info.auth),
        status: info.status.clone(),
        exp_date: info.exp_date,
        days_left,
        is_trial: Some(info.is_trial),
        max_connections: info.max_connections,
        active_cons: info.active_cons,
        suggested_max_streams: info.auth.then(|| info.max_connections.filter(|m| *m > 0).unwrap_or(1)),
    }
}

/// Refreshes and stores one account's details. Xtream accounts ask the panel
/// (the account's own server URL, else the provider's); AGTV accounts get the
/// fixed capacity; plain M3U accounts have nothing to ask. A failed call is
/// recorded as `last_error` and returned, keeping the last known details.
pub async fn refresh_account(
    store: &Store,
    http: &UpstreamHttp,
    provider: &Provider,
    account: &Account,
) -> Result<AccountDetails, CatalogError> {
    match provider.kind {
        ProviderKind::Xtream => {
            let (Some(username), false) = (account.username.as_deref(), account.password.is_empty()) else {
                let msg = "the account has no username or password";
                store.record_details_error(account.id, msg).await?;
                return Err(CatalogError::Conflict(msg.into()));
            };
            let server = account.server_url.as_deref().unwrap_or(&provider.url);
            let result = async {
                let client = XtreamClient::new(http.clone(), server, username, account.password.expose())?;
                client.authenticate().await
            }
            .await;
            match result {
                // A rejection (`auth: 0`) carries no other fields: keep the
                // last known limits and expiry, mark the account refused.
                Ok(resp) if resp.user_info.auth => store.record_details(account.id, &resp.user_info).await?,
                Ok(_) => {
                    let why = "the panel rejected the username or password (auth=0)";
                    let msg = format!("{} / {}: {why}", provider.name, account.name);
                    store.note(NewEvent::new(Level::Warn, "account", msg).provider(provider.id).account(account.id));
                    store.record_rejected(account.id, why).await?
                }
                Err(e) => {
                    let msg = format!("{} / {}: cannot fetch the account's details: {e}", provider.name, account.name);
                    store.note(NewEvent::new(Level::Warn, "account", msg).provider(provider.id).account(account.id));
                    store.record_details_error(account.id, &e.to_string()).await?;
                    return Err(upstream(provider, e));
                }
            }
        }
        ProviderKind::Agtv => {
            let info = tunerpool_formats::xtream::UserInfo {
                auth: true,
                max_connections: Some(AGTV_DEFAULT_MAX_STREAMS),
                active_cons: Some(0),
                exp_date: account.details.exp_date,
                ..Default::default()
            };
            store.record_details(account.id, &info).await?;
        }
        ProviderKind::M3u => {}
    }
    Ok(store.account(account.id).await?.details)
}

fn upstream(provider: &Provider, source: UpstreamError) -> CatalogError {
    CatalogError::Sync { provider: provider.name.clone(), source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tunerpool_formats::xtream::UserInfo;

    #[test]
    fn reports_say_what_is_wrong() {
        let now = 1_800_000_000;
        let good = UserInfo {
            auth: true,
            status: Some("Active".into()),
            exp_date: Some(now + 10 * 86_400 + 5),
            max_connections: Some(2),
            ..Default::default()
        };
        let r = report_from(&good, now);
        assert!(r.ok);
        assert_eq!((r.days_left, r.suggested_max_streams), (Some(10), Some(2)));

        let r = report_from(&UserInfo { auth: false, ..Default::default() }, now);
        assert!(!r.ok && r.reason.unwrap().contains("rejected"));
        assert_eq!(r.suggested_max_streams, None);

        let r = report_from(&UserInfo { exp_date: Some(now - 1), ..good.clone() }, now);
        assert!(r.reason.unwrap().contains("expired"));
        assert_eq!(r.days_left, Some(-1));

        let r = report_from(&UserInfo { status: Some("Banned".into()), ..good.clone() }, now);
        assert!(r.reason.unwrap().contains("Banned"));

        let r = report_from(&UserInfo { exp_date: Some(0), ..good.clone() }, now);
        assert!(r.ok && r.days_left.is_none(), "exp_date 0 means it never expires");

        let r = report_from(&UserInfo { max_connections: Some(0), ..good }, now);
        assert_eq!(r.suggested_max_streams, Some(1), "0 (unknown) suggests the safe 1");
    }
}
