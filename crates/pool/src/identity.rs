//! The identity of an account and of a provider in the lease ledger.
//!
//! Several tunerpool instances can share one Redis ledger, each with its own
//! database. Their row ids disagree: instance A may number an account 1 where
//! instance B numbers it 2. Leases keyed by row id would then let A and B
//! each open the account's only connection, and the provider would cut or
//! ban it. So the ledger is keyed by what every instance derives the same
//! way from what identifies an account at its provider:
//!
//! - provider: the provider's URL, normalized ([`normalized_url`]);
//! - account: that URL and the account's username (trimmed), or, for an
//!   account without a username (plain M3U, AGTV), its name.
//!
//! Each is hashed (SHA-256, first 8 bytes as an `i64`) with a domain tag, so
//! the key carries no readable URL or user name. The password never enters:
//! changing it must not change the identity, and a key must reveal nothing.

use sha2::{Digest, Sha256};
use tunerpool_domain::{Account, Provider, ProviderKind};

/// The ledger key of `provider` (its cap over all accounts is counted under it).
pub fn provider_key(provider: &Provider) -> i64 {
    digest(&["tunerpool-provider-v1", &normalized_url(provider)])
}

/// The ledger key of `account` at `provider`: the same on every instance that
/// has this account at this provider, whatever its row id there.
pub fn account_key(provider: &Provider, account: &Account) -> i64 {
    let user = match account.username.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        Some(user) => format!("user:{user}"),
        None => format!("name:{}", account.name.trim()),
    };
    digest(&["tunerpool-account-v1", &normalized_url(provider), &user])
}

/// The provider's URL as instances agree on it: scheme and host in lower case,
/// no default port, no trailing `/`, no fragment. An Xtream URL is a base, so
/// its query is dropped; a playlist URL keeps its query (it often selects the
/// playlist) minus any parameter whose name contains `pass`. A URL that does
/// not parse is used trimmed and in lower case.
pub fn normalized_url(provider: &Provider) -> String {
    let raw = provider.url.trim();
    let Ok(mut url) = url::Url::parse(raw) else { return raw.to_ascii_lowercase() };
    url.set_fragment(None);
    let kept: Vec<(String, String)> = if provider.kind == ProviderKind::Xtream {
        Vec::new()
    } else {
        url.query_pairs()
            .filter(|(k, _)| !k.to_ascii_lowercase().contains("pass"))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    };
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&path);
    let mut out = url.to_string();
    // `Url` keeps a root path as "/"; the same base with and without it must agree.
    if url.query().is_none() && out.ends_with('/') {
        out.pop();
    }
    out
}

fn digest(parts: &[&str]) -> i64 {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    let bytes: [u8; 8] = hash.finalize()[..8].try_into().expect("SHA-256 has 32 bytes");
    i64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{account, provider};
    use tunerpool_domain::Secret;

    #[test]
    fn same_account_same_key_whatever_the_row_ids_and_password() {
        let mut p1 = provider(1, "x", ProviderKind::Xtream);
        p1.url = "http://Panel.Example:80/".into();
        let mut p2 = provider(7, "renamed", ProviderKind::Xtream);
        p2.url = "http://panel.example".into();
        let mut a1 = account(3, 1, "main");
        a1.username = Some("alice".into());
        let mut a2 = account(9, 7, "other name");
        a2.username = Some(" alice ".into());
        a2.password = Secret::new("changed");
        assert_eq!(account_key(&p1, &a1), account_key(&p2, &a2));
        assert_eq!(provider_key(&p1), provider_key(&p2));
    }

    #[test]
    fn different_accounts_or_providers_differ() {
        let p = provider(1, "x", ProviderKind::Xtream);
        let mut other = p.clone();
        other.url = "http://elsewhere.example:8080".into();
        let a = account(1, 1, "a");
        let mut b = a.clone();
        b.username = Some("bob".into());
        assert_ne!(account_key(&p, &a), account_key(&p, &b));
        assert_ne!(account_key(&p, &a), account_key(&other, &a));
        assert_ne!(provider_key(&p), provider_key(&other));
        // A user name cannot pose as an account name.
        let mut named = a.clone();
        named.username = None;
        named.name = "alice".into();
        let mut user = a.clone();
        user.username = Some("alice".into());
        assert_ne!(account_key(&p, &named), account_key(&p, &user));
    }

    #[test]
    fn playlist_query_is_kept_without_passwords() {
        let mut p = provider(1, "m", ProviderKind::M3u);
        p.url = "HTTP://Host.example/get.php?username=u&password=secret&type=m3u#x".into();
        let n = normalized_url(&p);
        assert_eq!(n, "http://host.example/get.php?username=u&type=m3u");
        let mut q = p.clone();
        q.url = "http://host.example/get.php?username=u&password=new&type=m3u".into();
        assert_eq!(provider_key(&p), provider_key(&q));
        let mut x = provider(1, "x", ProviderKind::Xtream);
        x.url = "http://host.example/base/?a=1".into();
        assert_eq!(normalized_url(&x), "http://host.example/base");
    }
}
