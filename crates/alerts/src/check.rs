//! What needs attention now: the store's state read as [`Condition`]s, and
//! the check that records them ([`check`]).

use tunerpool_catalog::alerts::{Condition, Reconciled, Severity};
use tunerpool_catalog::{CatalogError, Store};

use crate::webhook::Webhook;

/// What the conditions depend on. Exists so that the check is a pure
/// function of the store, the settings and a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Accounts and downstream users expiring within this many days are
    /// alerted (`pool.expiry_warning_days`; 0: never).
    pub expiry_warning_days: u32,
    /// The pool is exhausted while stream starts were refused for lack of
    /// capacity within this many seconds.
    pub exhausted_window_secs: i64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules { expiry_warning_days: 7, exhausted_window_secs: 15 * 60 }
    }
}

fn expiry_words(days_left: i64) -> String {
    match days_left {
        d if d < 0 => "has expired".to_string(),
        0 => "expires today".to_string(),
        1 => "expires tomorrow".to_string(),
        d => format!("expires in {d} days"),
    }
}

/// Every condition that holds at `now`.
pub async fn conditions(store: &Store, rules: Rules, now: i64) -> Result<Vec<Condition>, CatalogError> {
    let mut out = Vec::new();
    let days = i64::from(rules.expiry_warning_days);
    let providers = store.providers().await?;
    let refusals = store.refusals_since(now - rules.exhausted_window_secs).await?;
    for p in providers.iter().filter(|p| p.enabled) {
        if p.sync.ok == Some(false) {
            let why = p.sync.error.as_deref().unwrap_or("no reason given");
            out.push(Condition {
                key: format!("sync_failed:{}", p.id),
                kind: "sync_failed",
                severity: Severity::Critical,
                title: format!("Provider {}: catalog sync failing", p.name),
                message: tunerpool_domain::redact::redact_text(
                    &format!("The last sync of provider {} failed: {why}", p.name),
                    &[],
                ),
                provider_id: Some(p.id),
                account_id: None,
                user_id: None,
            });
        }
        if let Some(n) = refusals.get(&p.id) {
            out.push(Condition {
                key: format!("pool_exhausted:{}", p.id),
                kind: "pool_exhausted",
                severity: Severity::Critical,
                title: format!("Provider {}: no free connections", p.name),
                message: format!(
                    "Viewers were refused {n} time(s) in the last {} minutes because every connection of {} \
                     (and of the channels' other providers) was in use. Add an account or raise the limits.",
                    rules.exhausted_window_secs / 60,
                    p.name
                ),
                provider_id: Some(p.id),
                account_id: None,
                user_id: None,
            });
        }
        for a in store.accounts(p.id).await?.into_iter().filter(|a| a.enabled) {
            let who = format!("{} / {}", p.name, a.name);
            if a.details.auth == Some(false) {
                out.push(Condition {
                    key: format!("account_auth:{}", a.id),
                    kind: "account_auth",
                    severity: Severity::Critical,
                    title: format!("Account {who}: login refused"),
                    message: format!(
                        "The panel of {} rejected the username or password of account {}: check them, or the \
                         subscription.",
                        p.name, a.name
                    ),
                    provider_id: Some(p.id),
                    account_id: Some(a.id),
                    user_id: None,
                });
            }
            let exp = a.details.exp_date.filter(|e| *e > 0);
            if let Some(left) = tunerpool_catalog::days_left(exp, now).filter(|d| days > 0 && *d < days) {
                out.push(Condition {
                    key: format!("account_expiring:{}", a.id),
                    kind: "account_expiring",
                    severity: if left < 0 { Severity::Critical } else { Severity::Warning },
                    title: format!("Account {who} {}", expiry_words(left)),
                    message: format!(
                        "Account {} of provider {} {} (expiry: unix time {}). Renew it, or its connections leave \
                         the pool.",
                        a.name,
                        p.name,
                        expiry_words(left),
                        exp.unwrap_or_default()
                    ),
                    provider_id: Some(p.id),
                    account_id: Some(a.id),
                    user_id: None,
                });
            }
        }
    }
    for u in store.users().await?.into_iter().filter(|u| u.enabled) {
        if let Some(left) = tunerpool_catalog::days_left(u.expires_at, now).filter(|d| days > 0 && *d < days) {
            out.push(Condition {
                key: format!("user_expiring:{}", u.id),
                kind: "user_expiring",
                severity: Severity::Warning,
                title: format!("User {} {}", u.username, expiry_words(left)),
                message: format!(
                    "Downstream user {} {} (unix time {}); after that its logins are refused.",
                    u.username,
                    expiry_words(left),
                    u.expires_at.unwrap_or_default()
                ),
                provider_id: None,
                account_id: None,
                user_id: Some(u.id),
            });
        }
    }
    Ok(out)
}

/// Evaluates the conditions at `now` and records them: new ones open an
/// alert (queued for every webhook), gone ones resolve theirs (queued too
/// when `notify_resolved`). Run it as often as wanted: an open condition
/// is announced once.
pub async fn check(
    store: &Store,
    rules: Rules,
    webhooks: &[Webhook],
    notify_resolved: bool,
    now: i64,
) -> Result<Reconciled, CatalogError> {
    let conditions = conditions(store, rules, now).await?;
    let targets: Vec<String> = webhooks.iter().map(Webhook::target).collect();
    let changed = store.reconcile_alerts(now, &conditions, &targets, notify_resolved).await?;
    for a in &changed.opened {
        tracing::warn!(alert = a.id, kind = %a.kind, title = %a.title, "alert opened");
    }
    for a in &changed.resolved {
        tracing::info!(alert = a.id, kind = %a.kind, title = %a.title, "alert resolved");
    }
    Ok(changed)
}
