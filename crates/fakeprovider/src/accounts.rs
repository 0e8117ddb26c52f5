//! The subscriber database: credentials, status and limits, changeable at run time.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::clock::unix_now;
use crate::config::AccountSpec;

/// How long an account without an explicit `exp_date` stays valid after provider start.
const DEFAULT_VALIDITY_SECS: i64 = 30 * 86_400;

/// All accounts of the provider, keyed by username.
///
/// Exists as its own type so that authentication (which every endpoint does) and run-time
/// changes (tests flipping `auth`, `status`, `max_connections`) go through one lock and one
/// set of rules.
#[derive(Debug)]
pub(crate) struct Accounts {
    inner: Mutex<BTreeMap<String, AccountSpec>>,
    default_exp: i64,
}

/// An authenticated account as seen by one request (a copy; the request never holds the lock).
#[derive(Clone, Debug)]
pub(crate) struct Account {
    pub(crate) username: String,
    pub(crate) password: String,
    pub(crate) max_connections: u32,
    pub(crate) exp_date: i64,
    /// Effective status: `"Expired"` when `exp_date` has passed on an otherwise active account.
    pub(crate) status: String,
    pub(crate) is_trial: bool,
}

impl Account {
    /// Whether this account may open streams.
    pub(crate) fn is_active(&self) -> bool {
        self.status == "Active"
    }
}

impl Accounts {
    pub(crate) fn new(specs: &[AccountSpec], start_unix: i64) -> Self {
        let inner = specs.iter().map(|s| (s.username.clone(), s.clone())).collect();
        Accounts { inner: Mutex::new(inner), default_exp: start_unix + DEFAULT_VALIDITY_SECS }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, AccountSpec>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The account if the credentials are right and `auth` is on; `None` otherwise
    /// (unknown user, wrong password and `auth = false` are indistinguishable, as on real panels).
    pub(crate) fn authenticate(&self, username: &str, password: &str) -> Option<Account> {
        let map = self.lock();
        let spec = map.get(username)?;
        if !spec.auth || spec.password != password {
            return None;
        }
        let exp_date = spec.exp_date.unwrap_or(self.default_exp);
        let status =
            if spec.status == "Active" && exp_date < unix_now() { "Expired".to_string() } else { spec.status.clone() };
        Some(Account {
            username: spec.username.clone(),
            password: spec.password.clone(),
            max_connections: spec.max_connections,
            exp_date,
            status,
            is_trial: spec.is_trial,
        })
    }

    /// Current connection limit of an account (0 = unlimited).
    pub(crate) fn max_connections(&self, username: &str) -> Option<u32> {
        self.lock().get(username).map(|s| s.max_connections)
    }

    /// Apply `f` to an account. The username cannot be changed (it is restored after `f`).
    pub(crate) fn update(&self, username: &str, f: impl FnOnce(&mut AccountSpec)) -> bool {
        let mut map = self.lock();
        match map.get_mut(username) {
            Some(spec) => {
                f(spec);
                spec.username = username.to_string();
                true
            }
            None => false,
        }
    }

    /// Add or replace an account.
    pub(crate) fn insert(&self, spec: AccountSpec) {
        self.lock().insert(spec.username.clone(), spec);
    }

    /// A copy of one account's spec.
    pub(crate) fn get(&self, username: &str) -> Option<AccountSpec> {
        self.lock().get(username).cloned()
    }

    /// All usernames, sorted.
    pub(crate) fn usernames(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_rules() {
        let mut off = AccountSpec::new("off", "x", 1);
        off.auth = false;
        let mut old = AccountSpec::new("old", "x", 1);
        old.exp_date = Some(1000);
        let a = Accounts::new(&[AccountSpec::new("u", "p", 2), off, old], unix_now());
        assert!(a.authenticate("u", "p").unwrap().is_active());
        assert!(a.authenticate("u", "wrong").is_none());
        assert!(a.authenticate("nobody", "p").is_none());
        assert!(a.authenticate("off", "x").is_none());
        let old = a.authenticate("old", "x").unwrap();
        assert_eq!(old.status, "Expired");
        assert!(!old.is_active());
        assert!(a.update("u", |s| {
            s.max_connections = 5;
            s.username = "renamed".into();
        }));
        assert_eq!(a.max_connections("u"), Some(5));
        assert!(!a.update("nobody", |_| {}));
    }
}
