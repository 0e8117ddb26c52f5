//! The account pool: which account of which provider plays a channel, and
//! the URL to fetch with it.
//!
//! Third stage of the data flow (provider → catalog → **pool** → relay →
//! viewer). This crate is pure logic, with no I/O, no async and no database:
//!
//! - [`limits`]: how many streams an account may hold ([`effective_max`]) and
//!   whether it may be used at all ([`is_usable`]).
//! - [`select`]: the order in which (source × account) pairs are tried
//!   ([`plan`]) and the explanation when none is free ([`no_capacity`]).
//! - [`identity`]: the keys an account and a provider have in the lease
//!   ledger, the same on every instance sharing it.
//! - [`rewrite`]: the stream URL for an account (Xtream URLs built or
//!   rewritten, regex search/replace for generic M3U accounts).
//!
//! The binary loads providers and accounts from the catalog store, takes a
//! snapshot of active leases from the ledger, asks [`plan`] for candidates and
//! lets the ledger take the first one that still has room. It knows the
//! domain types (`tunerpool-domain`), never the store.

pub mod identity;
pub mod limits;
pub mod rewrite;
pub mod select;

pub use identity::{account_key, provider_key};
pub use limits::{effective_max, is_usable, EffectiveMax, MaxOrigin, Unusable, UNLIMITED, XTREAM_DEFAULT_MAX_STREAMS};
pub use rewrite::{rewrite_xtream, validate_patterns, xtream_url, RegexRewrite, RewriteError, StreamKind};
pub use select::{
    no_capacity, plan, AccountPolicy, AccountUsage, Candidate, NoCapacity, Plan, ProviderPool, ProviderUsage,
    SelectInput, Skipped,
};

#[cfg(test)]
pub(crate) mod testutil {
    use tunerpool_domain::{Account, AccountDetails, Provider, ProviderKind, Secret, SyncStatus};

    pub fn provider(id: i64, name: &str, kind: ProviderKind) -> Provider {
        Provider {
            id,
            name: name.to_string(),
            kind,
            url: format!("http://{name}.example:8080"),
            epg_url: None,
            user_agent: None,
            priority: 0,
            max_streams: None,
            enabled: true,
            created_at: 0,
            sync: SyncStatus::default(),
        }
    }

    pub fn account(id: i64, provider_id: i64, name: &str) -> Account {
        Account {
            id,
            provider_id,
            name: name.to_string(),
            server_url: None,
            username: Some(format!("user{id}")),
            password: Secret::new(format!("pass{id}")),
            search_pattern: None,
            replace_pattern: None,
            max_streams: None,
            priority: 0,
            enabled: true,
            is_primary: false,
            created_at: 0,
            details: AccountDetails::default(),
        }
    }
}
