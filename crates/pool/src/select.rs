//! In which order the (source × account) pairs of a channel are tried.
//!
//! [`plan`] turns a channel's sources, the providers' accounts and a snapshot
//! of active leases into an ordered list of [`Candidate`]s. The ledger then
//! takes the first candidate that still has room, atomically; the snapshot
//! given here may be stale, so a full account stays a candidate (the ledger
//! skips it) rather than being dropped on old information.
//!
//! # The order
//!
//! 1. **Providers are ranked** (seed 004's source ranking), by:
//!    1. kind: Xtream, then M3U, then AGTV (the fallback);
//!    2. availability, highest first: `1 - active / max` summed over the
//!       provider's usable accounts (a provider whose accounts are all full
//!       has 0), and no higher than what is left under the provider's own
//!       `max_streams` cap;
//!    3. the provider's `priority`, lowest first.
//! 2. **Sources are stably sorted by their provider's rank**, then by their
//!    quality score ([`SelectInput::scores`], best first) among sources the
//!    ranking does not tell apart — or, with [`QualityPolicy::QualityFirst`],
//!    by score first and provider rank among equal scores. Without scores the
//!    ranking only ever reorders sources at *different* providers. The
//!    channel's source order is the final tiebreaker.
//! 3. **Each source is paired with its provider's usable accounts** in policy
//!    order ([`AccountPolicy`]), source by source: all accounts for the first
//!    source at a provider come before any account for its second source.
//!
//! Example: a channel with sources `[A1, B1, A2, C1]` where providers A and C
//! are Xtream with availability 1/2 and 1 and B is AGTV. Ranks: C, A, B. The
//! sources in order: `C1, A1, A2, B1`. With A's accounts `a0` (priority 0)
//! and `a1` (priority 1), the candidates read
//! `(C1,c…), (A1,a0), (A1,a1), (A2,a0), (A2,a1), (B1,b…)`.
//!
//! Accounts that cannot be used ([`crate::is_usable`]) and every account of a
//! disabled provider become [`Skipped`] entries, once per account, logged at
//! debug level.

use std::cmp::{Ordering, Reverse};
use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use tunerpool_domain::quality::QualityPolicy;
use tunerpool_domain::{Account, ChannelSource, Provider, ProviderKind};

use crate::identity::{account_key, provider_key};
use crate::limits::{count, effective_max, is_usable};

/// How the accounts of one provider are ordered; a user setting, because
/// some want their main account used first and others want load spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountPolicy {
    /// Lowest `priority` number first (seed 000: 0 is tried first), then lowest id.
    #[default]
    Priority,
    /// Lowest load (`active / max`) first (seed 004's availability), then priority, then id.
    /// An account with a limit of 0 counts as full.
    LeastLoaded,
}

impl AccountPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountPolicy::Priority => "priority",
            AccountPolicy::LeastLoaded => "least_loaded",
        }
    }
}

impl std::str::FromStr for AccountPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "priority" => Ok(AccountPolicy::Priority),
            "least_loaded" => Ok(AccountPolicy::LeastLoaded),
            other => Err(format!("unknown account policy {other:?}: use priority or least_loaded")),
        }
    }
}

impl std::fmt::Display for AccountPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything selection needs to know about one provider: the provider and
/// all its accounts (usable or not; selection sorts them out).
#[derive(Debug, Clone, Copy)]
pub struct ProviderPool<'a> {
    pub provider: &'a Provider,
    pub accounts: &'a [Account],
}

/// The whole input of one selection, borrowed from what the caller loaded,
/// so that selection stays a pure function.
#[derive(Debug, Clone)]
pub struct SelectInput<'a> {
    /// The channel's sources in their order.
    pub sources: &'a [ChannelSource],
    /// Providers by id.
    pub providers: &'a HashMap<i64, ProviderPool<'a>>,
    /// Active leases by account identity ([`crate::identity::account_key`]), as the ledger's snapshot
    /// ([`tunerpool_ledger`'s `Usage::accounts`]) has them; missing means 0. Not by row id: instances sharing a
    /// ledger number the same account differently.
    pub active: &'a HashMap<i64, u32>,
    pub policy: AccountPolicy,
    pub now_unix: i64,
    /// Each source's quality score ([`tunerpool_domain::quality::score`]), in the
    /// order of `sources`; empty when the channel's sources are not scored.
    pub scores: &'a [f64],
    /// Whether the provider ranking or the score comes first.
    pub quality_policy: QualityPolicy,
}

/// One (source × account) pair to try, with the limits the ledger must
/// enforce when it takes a lease on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// Index into [`SelectInput::sources`].
    pub source_index: usize,
    pub stream_id: i64,
    pub provider_id: i64,
    pub account_id: i64,
    /// The account's identity in the ledger ([`crate::identity::account_key`]): what a lease is taken on.
    pub account_key: i64,
    /// The provider's identity in the ledger ([`crate::identity::provider_key`]).
    pub provider_key: i64,
    /// The account's effective limit ([`crate::effective_max`]).
    pub account_max: u32,
    /// The provider's cap over all its accounts, if any.
    pub provider_max: Option<u32>,
}

/// An account (or a whole provider) left out of a plan, and why; kept so
/// that "why was this account not used" has an answer in the API and logs.
/// A skip that concerns a provider with no account to name (unknown
/// provider, provider without accounts) has `account_id` 0 and an empty `account`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    pub provider_id: i64,
    pub account_id: i64,
    /// The account's name.
    pub account: String,
    pub reason: String,
}

/// The outcome of selection: what to try, in order, and what was left out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub candidates: Vec<Candidate>,
    pub skipped: Vec<Skipped>,
}

/// A non-negative fraction compared exactly (no floats in an ordering).
#[derive(Debug, Clone, Copy)]
struct Ratio {
    num: u64,
    den: u64,
}

impl Ratio {
    fn new(num: u64, den: u64) -> Ratio {
        if den == 0 {
            Ratio { num: 0, den: 1 }
        } else {
            Ratio { num, den }
        }
    }
}

impl Ord for Ratio {
    fn cmp(&self, other: &Self) -> Ordering {
        (u128::from(self.num) * u128::from(other.den)).cmp(&(u128::from(other.num) * u128::from(self.den)))
    }
}
impl PartialOrd for Ratio {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Ratio {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Ratio {}

/// A provider's place in the ranking; smaller is tried first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct RankKey {
    kind: u8,
    availability: Reverse<Ratio>,
    priority: i64,
}

fn kind_rank(kind: ProviderKind) -> u8 {
    match kind {
        ProviderKind::Xtream => 0,
        ProviderKind::M3u => 1,
        ProviderKind::Agtv => 2,
    }
}

/// A usable account with its limit and current load.
struct Usable<'a> {
    account: &'a Account,
    key: i64,
    max: u32,
    active: u32,
}

/// What selection worked out about one provider.
struct ProviderEval<'a> {
    key: RankKey,
    usable: Vec<Usable<'a>>,
    skipped: Vec<Skipped>,
    provider_max: Option<u32>,
    provider_key: i64,
}

fn active_of(input: &SelectInput, provider: &Provider, account: &Account) -> u32 {
    input.active.get(&account_key(provider, account)).copied().unwrap_or(0)
}

fn provider_skip(provider_id: i64, reason: &str) -> Skipped {
    tracing::debug!(provider_id, reason, "provider skipped");
    Skipped { provider_id, account_id: 0, account: String::new(), reason: reason.to_string() }
}

fn evaluate<'a>(input: &SelectInput<'a>, provider_id: i64) -> ProviderEval<'a> {
    let Some(pool) = input.providers.get(&provider_id) else {
        return ProviderEval {
            key: RankKey { kind: u8::MAX, availability: Reverse(Ratio::new(0, 1)), priority: i64::MAX },
            usable: Vec::new(),
            skipped: vec![provider_skip(provider_id, "provider not found")],
            provider_max: None,
            provider_key: 0,
        };
    };
    let provider = pool.provider;
    let mut usable = Vec::new();
    let mut skipped = Vec::new();
    for account in pool.accounts {
        let reason = if !provider.enabled {
            Some("provider disabled".to_string())
        } else {
            is_usable(account, provider.kind, input.now_unix).err().map(|u| u.to_string())
        };
        match reason {
            Some(reason) => {
                tracing::debug!(
                    provider_id,
                    account_id = account.id,
                    account = %account.name,
                    reason = %reason,
                    "account skipped"
                );
                skipped.push(Skipped { provider_id, account_id: account.id, account: account.name.clone(), reason });
            }
            None => usable.push(Usable {
                account,
                key: account_key(provider, account),
                max: effective_max(account, provider).max,
                active: active_of(input, provider, account),
            }),
        }
    }
    if pool.accounts.is_empty() {
        skipped.push(provider_skip(
            provider_id,
            if provider.enabled { "provider has no accounts" } else { "provider disabled" },
        ));
    }
    match input.policy {
        AccountPolicy::Priority => usable.sort_by_key(|u| (u.account.priority, u.account.id)),
        AccountPolicy::LeastLoaded => usable.sort_by_key(|u| {
            let load = if u.max == 0 { Ratio::new(1, 1) } else { Ratio::new(u.active.into(), u.max.into()) };
            (load, u.account.priority, u.account.id)
        }),
    }
    let provider_max = provider.max_streams.map(count);
    let total: u64 = usable.iter().map(|u| u64::from(u.max)).sum();
    let used: u64 = usable.iter().map(|u| u64::from(u.active.min(u.max))).sum();
    let mut availability = Ratio::new(total - used, total);
    if let Some(cap) = provider_max {
        let used_all: u64 = pool.accounts.iter().map(|a| u64::from(active_of(input, provider, a))).sum();
        let cap = u64::from(cap);
        availability = availability.min(Ratio::new(cap - used_all.min(cap), cap));
    }
    ProviderEval {
        key: RankKey {
            kind: kind_rank(provider.kind),
            availability: Reverse(availability),
            priority: provider.priority,
        },
        usable,
        skipped,
        provider_max,
        provider_key: provider_key(provider),
    }
}

/// Evaluates every provider of the sources and returns them with the source
/// indices in the order of the module doc.
fn rank<'a>(input: &SelectInput<'a>) -> (HashMap<i64, ProviderEval<'a>>, Vec<usize>) {
    let mut evals = HashMap::new();
    for s in input.sources {
        evals.entry(s.provider_id).or_insert_with(|| evaluate(input, s.provider_id));
    }
    let mut order: Vec<usize> = (0..input.sources.len()).collect();
    // Scores compared in hundredths: exact, and no float in an ordering.
    let score = |i: usize| Reverse(input.scores.get(i).map_or(0, |s| (s * 100.0).round() as i64));
    let key = |i: usize| evals[&input.sources[i].provider_id].key;
    // Stable: equal keys keep the channel's order.
    match input.quality_policy {
        QualityPolicy::AvailabilityFirst => order.sort_by_key(|&i| (key(i), score(i))),
        QualityPolicy::QualityFirst => order.sort_by_key(|&i| (score(i), key(i))),
    }
    (evals, order)
}

/// The ordered candidates for a channel, and what was skipped (see the module doc).
pub fn plan(input: &SelectInput) -> Plan {
    let (evals, order) = rank(input);
    let mut candidates = Vec::new();
    let mut skipped = Vec::new();
    let mut reported = HashSet::new();
    for i in order {
        let source = &input.sources[i];
        let eval = &evals[&source.provider_id];
        if reported.insert(source.provider_id) {
            skipped.extend(eval.skipped.iter().cloned());
        }
        for u in &eval.usable {
            candidates.push(Candidate {
                source_index: i,
                stream_id: source.stream_id,
                provider_id: source.provider_id,
                account_id: u.account.id,
                account_key: u.key,
                provider_key: eval.provider_key,
                account_max: u.max,
                provider_max: eval.provider_max,
            });
        }
    }
    Plan { candidates, skipped }
}

/// Why nothing could be had, listing every account's usage — shown to users in 503 answers and logs.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error("{}", render(&self.providers))]
pub struct NoCapacity {
    /// The channel's providers, in ranking order.
    pub providers: Vec<ProviderUsage>,
}

/// The usage of one provider's accounts, for [`NoCapacity`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderUsage {
    /// The provider's name.
    pub provider: String,
    pub accounts: Vec<AccountUsage>,
}

/// One account's usage, for [`NoCapacity`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountUsage {
    /// The account's name.
    pub account: String,
    pub active: u32,
    pub max: u32,
    /// Why it cannot be used, if so (an [`crate::Unusable`] reason or "provider disabled").
    pub unusable: Option<String>,
}

fn render(providers: &[ProviderUsage]) -> String {
    if providers.is_empty() {
        return "no provider to play this channel from".to_string();
    }
    let parts: Vec<String> = providers
        .iter()
        .map(|p| {
            let n = p.accounts.len();
            if n == 0 {
                return format!("{} has no accounts", p.provider);
            }
            let unusable = p.accounts.iter().filter(|a| a.unusable.is_some()).count();
            let state = if unusable == n {
                "unusable"
            } else if unusable > 0 {
                "in use or unusable"
            } else {
                "in use"
            };
            let list: Vec<String> = p
                .accounts
                .iter()
                .map(|a| match &a.unusable {
                    Some(why) => format!("{} ({why})", a.account),
                    None => format!("{} {}/{}", a.account, a.active, a.max),
                })
                .collect();
            if n == 1 {
                format!("the only account of {} is {state}: {}", p.provider, list[0])
            } else {
                format!("all {n} accounts of {} are {state}: {}", p.provider, list.join(", "))
            }
        })
        .collect();
    parts.join("; ")
}

/// The usage of every account of the channel's providers, for the answer
/// when no candidate of [`plan`] could be leased.
pub fn no_capacity(input: &SelectInput) -> NoCapacity {
    let (_, order) = rank(input);
    let mut seen = HashSet::new();
    let mut providers = Vec::new();
    for i in order {
        let provider_id = input.sources[i].provider_id;
        if !seen.insert(provider_id) {
            continue;
        }
        let Some(pool) = input.providers.get(&provider_id) else { continue };
        let mut accounts: Vec<&Account> = pool.accounts.iter().collect();
        accounts.sort_by_key(|a| (a.priority, a.id));
        let accounts = accounts
            .into_iter()
            .map(|a| AccountUsage {
                account: a.name.clone(),
                active: active_of(input, pool.provider, a),
                max: effective_max(a, pool.provider).max,
                unusable: if pool.provider.enabled {
                    is_usable(a, pool.provider.kind, input.now_unix).err().map(|u| u.to_string())
                } else {
                    Some("provider disabled".to_string())
                },
            })
            .collect();
        providers.push(ProviderUsage { provider: pool.provider.name.clone(), accounts });
    }
    NoCapacity { providers }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{account, provider};

    const NOW: i64 = 1_767_225_600;

    fn source(stream_id: i64, provider_id: i64) -> ChannelSource {
        ChannelSource {
            stream_id,
            provider_id,
            provider: format!("p{provider_id}"),
            upstream_key: stream_id.to_string(),
            upstream_id: Some(stream_id),
            ..Default::default()
        }
    }

    /// Owns what a [`SelectInput`] borrows.
    struct World {
        providers: Vec<(Provider, Vec<Account>)>,
        active: HashMap<i64, u32>,
        sources: Vec<ChannelSource>,
        scores: Vec<f64>,
        quality_policy: QualityPolicy,
    }

    impl World {
        fn new() -> World {
            World {
                providers: Vec::new(),
                active: HashMap::new(),
                sources: Vec::new(),
                scores: Vec::new(),
                quality_policy: QualityPolicy::default(),
            }
        }
        fn provider(&mut self, p: Provider, accounts: Vec<Account>) -> &mut Self {
            self.providers.push((p, accounts));
            self
        }
        fn active(&mut self, account_id: i64, n: u32) -> &mut Self {
            self.active.insert(account_id, n);
            self
        }
        fn sources(&mut self, s: &[(i64, i64)]) -> &mut Self {
            self.sources = s.iter().map(|&(stream, prov)| source(stream, prov)).collect();
            self
        }
        fn pools(&self) -> HashMap<i64, ProviderPool<'_>> {
            self.providers.iter().map(|(p, a)| (p.id, ProviderPool { provider: p, accounts: a })).collect()
        }
        /// `active` (by row id, for readable tests) as the ledger has it: by account identity.
        fn ledger_active(&self) -> HashMap<i64, u32> {
            let key = |id: i64| {
                self.providers
                    .iter()
                    .find_map(|(p, accts)| accts.iter().find(|a| a.id == id).map(|a| account_key(p, a)))
                    .expect("active() names an account of the world")
            };
            self.active.iter().map(|(id, n)| (key(*id), *n)).collect()
        }
        fn plan(&self, policy: AccountPolicy) -> Plan {
            let pools = self.pools();
            plan(&SelectInput {
                sources: &self.sources,
                providers: &pools,
                active: &self.ledger_active(),
                policy,
                now_unix: NOW,
                scores: &self.scores,
                quality_policy: self.quality_policy,
            })
        }
        fn no_capacity(&self) -> NoCapacity {
            let pools = self.pools();
            no_capacity(&SelectInput {
                sources: &self.sources,
                providers: &pools,
                active: &self.ledger_active(),
                policy: AccountPolicy::Priority,
                now_unix: NOW,
                scores: &self.scores,
                quality_policy: self.quality_policy,
            })
        }
    }

    fn acc(id: i64, provider_id: i64, priority: i64, max: Option<i64>) -> Account {
        let mut a = account(id, provider_id, &format!("a{id}"));
        a.priority = priority;
        a.max_streams = max;
        a
    }

    fn pairs(plan: &Plan) -> Vec<(i64, i64)> {
        plan.candidates.iter().map(|c| (c.stream_id, c.account_id)).collect()
    }

    #[test]
    fn priority_policy_orders_by_priority_then_id() {
        let mut w = World::new();
        w.provider(
            provider(1, "x", ProviderKind::Xtream),
            vec![acc(13, 1, 1, Some(2)), acc(12, 1, 0, Some(2)), acc(11, 1, 1, Some(2))],
        )
        .active(12, 2)
        .sources(&[(100, 1)]);
        let plan = w.plan(AccountPolicy::Priority);
        // Full account 12 stays first: the ledger decides, not the stale snapshot.
        assert_eq!(pairs(&plan), vec![(100, 12), (100, 11), (100, 13)]);
        assert!(plan.skipped.is_empty());
        assert_eq!(
            plan.candidates[0],
            Candidate {
                source_index: 0,
                stream_id: 100,
                provider_id: 1,
                account_id: 12,
                account_key: account_key(&w.providers[0].0, &w.providers[0].1[1]),
                provider_key: provider_key(&w.providers[0].0),
                account_max: 2,
                provider_max: None
            }
        );
    }

    #[test]
    fn least_loaded_policy_orders_by_load() {
        let mut w = World::new();
        w.provider(
            provider(1, "x", ProviderKind::Xtream),
            vec![acc(11, 1, 0, Some(2)), acc(12, 1, 1, Some(4)), acc(13, 1, 2, Some(1)), acc(14, 1, 3, Some(0))],
        )
        .active(11, 1) // 1/2
        .active(12, 1) // 1/4
        .sources(&[(100, 1)]);
        // 13 is 0/1, 12 is 1/4, 11 is 1/2, 14 has a limit of 0 (full).
        assert_eq!(pairs(&w.plan(AccountPolicy::LeastLoaded)), vec![(100, 13), (100, 12), (100, 11), (100, 14)]);
        assert_eq!(pairs(&w.plan(AccountPolicy::Priority)), vec![(100, 11), (100, 12), (100, 13), (100, 14)]);
        // Equal loads: priority, then id.
        w.active.clear();
        w.providers[0].1[0].priority = 5;
        assert_eq!(pairs(&w.plan(AccountPolicy::LeastLoaded)), vec![(100, 12), (100, 13), (100, 11), (100, 14)]);
    }

    #[test]
    fn xtream_before_m3u_before_agtv() {
        let mut w = World::new();
        w.provider(provider(1, "agtv", ProviderKind::Agtv), vec![acc(11, 1, 0, None)])
            .provider(provider(2, "m3u", ProviderKind::M3u), vec![acc(21, 2, 0, None)])
            .provider(provider(3, "xc", ProviderKind::Xtream), vec![acc(31, 3, 0, Some(1))])
            .active(31, 1) // the Xtream one is full: kind still comes first
            .sources(&[(100, 1), (200, 2), (300, 3)]);
        let plan = w.plan(AccountPolicy::Priority);
        assert_eq!(pairs(&plan), vec![(300, 31), (200, 21), (100, 11)]);
        assert_eq!(plan.candidates.iter().map(|c| c.source_index).collect::<Vec<_>>(), vec![2, 1, 0]);
        assert_eq!(plan.candidates[1].account_max, crate::UNLIMITED);
        assert_eq!(plan.candidates[2].account_max, 5);
    }

    #[test]
    fn availability_then_priority_across_providers() {
        let mut w = World::new();
        let mut p1 = provider(1, "one", ProviderKind::Xtream);
        p1.priority = 0;
        let mut p2 = provider(2, "two", ProviderKind::Xtream);
        p2.priority = 1;
        let mut p3 = provider(3, "three", ProviderKind::Xtream);
        p3.priority = 2;
        w.provider(p1, vec![acc(11, 1, 0, Some(2)), acc(12, 1, 0, Some(2))]) // 3/4 used → 1/4 free
            .provider(p2, vec![acc(21, 2, 0, Some(2))]) // 0/2 used → all free
            .provider(p3, vec![acc(31, 3, 0, Some(4))]) // 0/4 used → all free, lower priority than p2
            .active(11, 2)
            .active(12, 1)
            .sources(&[(100, 1), (300, 3), (200, 2)]);
        assert_eq!(pairs(&w.plan(AccountPolicy::Priority)), vec![(200, 21), (300, 31), (100, 11), (100, 12)]);
        // Fill provider 2: it drops behind provider 1.
        w.active(21, 2);
        assert_eq!(pairs(&w.plan(AccountPolicy::Priority)), vec![(300, 31), (100, 11), (100, 12), (200, 21)]);
    }

    #[test]
    fn scores_order_sources_the_ranking_does_not_tell_apart() {
        let mut w = World::new();
        w.provider(provider(1, "one", ProviderKind::Xtream), vec![acc(11, 1, 0, Some(2))])
            .provider(provider(2, "two", ProviderKind::Agtv), vec![acc(21, 2, 0, Some(2))])
            .sources(&[(100, 1), (101, 1), (200, 2)]);
        // No scores: the channel's order within provider 1.
        assert_eq!(pairs(&w.plan(AccountPolicy::Priority)), vec![(100, 11), (101, 11), (200, 21)]);
        // 101 measured better than 100: it goes first at its provider; the
        // AGTV source stays last however good it is (availability first).
        w.scores = vec![40.0, 80.0, 95.0];
        assert_eq!(pairs(&w.plan(AccountPolicy::Priority)), vec![(101, 11), (100, 11), (200, 21)]);
        // Quality first: the best score leads, across providers.
        w.quality_policy = QualityPolicy::QualityFirst;
        assert_eq!(pairs(&w.plan(AccountPolicy::Priority)), vec![(200, 21), (101, 11), (100, 11)]);
        // Equal scores fall back to the provider ranking, then the channel's order.
        w.scores = vec![70.0, 70.0, 70.0];
        assert_eq!(pairs(&w.plan(AccountPolicy::Priority)), vec![(100, 11), (101, 11), (200, 21)]);
    }

    #[test]
    fn provider_cap_limits_availability() {
        let mut w = World::new();
        let mut p1 = provider(1, "capped", ProviderKind::Xtream);
        p1.max_streams = Some(2);
        let mut p2 = provider(2, "other", ProviderKind::Xtream);
        p2.priority = 1;
        // Provider 1's accounts have room (1/6 used) but its cap of 2 is half used.
        w.provider(p1, vec![acc(11, 1, 0, Some(3)), acc(12, 1, 0, Some(3))])
            .provider(p2, vec![acc(21, 2, 0, Some(4))]) // 1/4 used: 3/4 free
            .active(11, 1)
            .active(21, 1)
            .sources(&[(100, 1), (200, 2)]);
        let plan = w.plan(AccountPolicy::Priority);
        assert_eq!(pairs(&plan), vec![(200, 21), (100, 11), (100, 12)]);
        assert_eq!(plan.candidates[1].provider_max, Some(2));
    }

    #[test]
    fn source_order_rule_from_the_module_doc() {
        // Sources [A1, B1, A2, C1]; A: Xtream with availability 1/2, C: Xtream fully free, B: AGTV.
        let mut w = World::new();
        w.provider(provider(1, "A", ProviderKind::Xtream), vec![acc(11, 1, 1, Some(1)), acc(10, 1, 0, Some(1))])
            .provider(provider(2, "B", ProviderKind::Agtv), vec![acc(21, 2, 0, None)])
            .provider(provider(3, "C", ProviderKind::Xtream), vec![acc(31, 3, 0, Some(1))])
            .active(10, 1)
            .sources(&[(1001, 1), (2001, 2), (1002, 1), (3001, 3)]);
        assert_eq!(
            pairs(&w.plan(AccountPolicy::Priority)),
            vec![(3001, 31), (1001, 10), (1001, 11), (1002, 10), (1002, 11), (2001, 21)]
        );
    }

    #[test]
    fn equal_ranks_keep_the_channel_order() {
        // Two providers that rank the same: sources stay as the channel lists them,
        // even interleaved.
        let mut w = World::new();
        w.provider(provider(1, "A", ProviderKind::Xtream), vec![acc(11, 1, 0, Some(1))])
            .provider(provider(2, "B", ProviderKind::Xtream), vec![acc(21, 2, 0, Some(1))])
            .sources(&[(2001, 2), (1001, 1), (2002, 2)]);
        assert_eq!(pairs(&w.plan(AccountPolicy::Priority)), vec![(2001, 21), (1001, 11), (2002, 21)]);
        w.sources(&[(1001, 1), (2001, 2)]);
        assert_eq!(pairs(&w.plan(AccountPolicy::Priority)), vec![(1001, 11), (2001, 21)]);
    }

    #[test]
    fn unusable_accounts_are_skipped_with_reasons() {
        let mut w = World::new();
        let mut expired = acc(11, 1, 0, Some(1));
        expired.details.exp_date = Some(1_767_312_000 - 86_400 * 365); // 2025-01-02
        let mut rejected = acc(12, 1, 1, Some(1));
        rejected.details.auth = Some(false);
        let mut off = acc(13, 1, 2, Some(1));
        off.enabled = false;
        let mut banned = acc(14, 1, 3, Some(1));
        banned.details.status = Some("Banned".into());
        w.provider(
            provider(1, "A", ProviderKind::Xtream),
            vec![expired, rejected, off, banned, acc(15, 1, 4, Some(1))],
        )
        .sources(&[(1001, 1), (1002, 1)]);
        let plan = w.plan(AccountPolicy::Priority);
        assert_eq!(pairs(&plan), vec![(1001, 15), (1002, 15)]);
        let reasons: Vec<(i64, &str, &str)> =
            plan.skipped.iter().map(|s| (s.account_id, s.account.as_str(), s.reason.as_str())).collect();
        assert_eq!(
            reasons,
            vec![
                (11, "a11", "expired on 2025-01-02"),
                (12, "a12", "the panel rejected its credentials"),
                (13, "a13", "disabled"),
                (14, "a14", "status is Banned"),
            ],
            "each skipped once, even with two sources"
        );
        assert!(plan.skipped.iter().all(|s| s.provider_id == 1));
    }

    #[test]
    fn disabled_unknown_and_empty_providers() {
        let mut w = World::new();
        let mut off = provider(1, "off", ProviderKind::Xtream);
        off.enabled = false;
        w.provider(off, vec![acc(11, 1, 0, Some(1)), acc(12, 1, 1, Some(1))])
            .provider(provider(2, "empty", ProviderKind::M3u), vec![])
            .provider(provider(3, "ok", ProviderKind::Agtv), vec![acc(31, 3, 0, None)])
            .sources(&[(1001, 1), (2001, 2), (9001, 9), (3001, 3)]);
        let plan = w.plan(AccountPolicy::Priority);
        assert_eq!(pairs(&plan), vec![(3001, 31)]);
        let skipped: Vec<(i64, i64, &str)> =
            plan.skipped.iter().map(|s| (s.provider_id, s.account_id, s.reason.as_str())).collect();
        assert_eq!(
            skipped,
            vec![
                (1, 11, "provider disabled"),
                (1, 12, "provider disabled"),
                (2, 0, "provider has no accounts"),
                (9, 0, "provider not found"),
            ]
        );
    }

    #[test]
    fn empty_channel_plans_nothing() {
        let w = World::new();
        assert_eq!(w.plan(AccountPolicy::Priority), Plan { candidates: vec![], skipped: vec![] });
        assert_eq!(w.no_capacity().to_string(), "no provider to play this channel from");
    }

    #[test]
    fn no_capacity_display() {
        let mut w = World::new();
        let mut a = acc(1, 1, 0, Some(2));
        a.name = "a".into();
        let mut b = acc(2, 1, 1, Some(2));
        b.name = "b".into();
        let mut c = acc(3, 1, 2, None);
        c.name = "c".into();
        c.details.max_connections = Some(1);
        w.provider(provider(1, "Provider X", ProviderKind::Xtream), vec![c, b, a])
            .active(1, 2)
            .active(2, 2)
            .active(3, 1)
            .sources(&[(100, 1)]);
        let nc = w.no_capacity();
        assert_eq!(nc.to_string(), "all 3 accounts of Provider X are in use: a 2/2, b 2/2, c 1/1");
        assert_eq!(
            nc.providers[0].accounts[0],
            AccountUsage { account: "a".into(), active: 2, max: 2, unusable: None }
        );

        let mut y = provider(2, "Y", ProviderKind::Xtream);
        y.priority = 1;
        let mut d = acc(4, 2, 0, Some(1));
        d.name = "d".into();
        d.details.exp_date = Some(1_767_312_000 - 86_400 * 365);
        let mut e = acc(5, 2, 1, Some(1));
        e.name = "e".into();
        w.provider(y, vec![d, e]).active(5, 1).sources(&[(200, 2), (100, 1)]);
        assert_eq!(
            w.no_capacity().to_string(),
            "all 3 accounts of Provider X are in use: a 2/2, b 2/2, c 1/1; \
             all 2 accounts of Y are in use or unusable: d (expired on 2025-01-02), e 1/1"
        );
        let json = serde_json::to_value(w.no_capacity()).unwrap();
        assert_eq!(json["providers"][1]["accounts"][0]["unusable"], "expired on 2025-01-02");
    }

    #[test]
    fn no_capacity_single_unusable_and_disabled() {
        let mut w = World::new();
        let mut off = provider(1, "Off", ProviderKind::Xtream);
        off.enabled = false;
        let mut solo = acc(21, 2, 0, Some(1));
        solo.name = "solo".into();
        w.provider(off, vec![acc(11, 1, 0, Some(1)), acc(12, 1, 0, Some(1))])
            .provider(provider(2, "Solo", ProviderKind::Xtream), vec![solo])
            .provider(provider(3, "Empty", ProviderKind::M3u), vec![])
            .active(21, 1)
            .sources(&[(1, 1), (2, 2), (3, 3), (4, 99)]);
        assert_eq!(
            w.no_capacity().to_string(),
            "all 2 accounts of Off are unusable: a11 (provider disabled), a12 (provider disabled); \
             the only account of Solo is in use: solo 1/1; \
             Empty has no accounts"
        );
    }

    #[test]
    fn policy_parses_and_serializes() {
        assert_eq!("least-loaded".parse::<AccountPolicy>(), Ok(AccountPolicy::LeastLoaded));
        assert_eq!(" Priority ".parse::<AccountPolicy>(), Ok(AccountPolicy::Priority));
        assert!("random".parse::<AccountPolicy>().is_err());
        assert_eq!(AccountPolicy::default(), AccountPolicy::Priority);
        assert_eq!(serde_json::to_string(&AccountPolicy::LeastLoaded).unwrap(), r#""least_loaded""#);
        assert_eq!(AccountPolicy::LeastLoaded.to_string(), "least_loaded");
    }
}
