//! The pool end to end against the simulated provider: details fetched from
//! the panel decide which accounts selection may use, the ledger grants a
//! slot atomically, the rewritten URL plays, and the panel counts exactly one
//! connection on the chosen account.

use std::collections::HashMap;
use std::sync::Arc;

use fakeprovider::{AccountSpec, FakeConfig, FakeProvider};
use tunerpool_catalog::details::refresh_account;
use tunerpool_catalog::sync::sync_provider;
use tunerpool_catalog::{ChannelQuery, Store};
use tunerpool_ledger::{Lease, Ledger, LedgerError, MemoryLedger, Slot};
use tunerpool_pool::rewrite::{xtream_url, StreamKind};
use tunerpool_pool::select::{no_capacity, plan, AccountPolicy, ProviderPool, SelectInput};
use tunerpool_testkit::{add_xtream, open_store, sync_with_details};
use tunerpool_upstream::{HttpSettings, UpstreamHttp};

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test]
async fn selection_skips_rejected_and_expired_accounts_and_the_panel_sees_one_connection() {
    let fake = FakeProvider::start(FakeConfig::with_accounts(vec![
        AccountSpec::new("good", "g/pw+1", 1),
        AccountSpec::new("refused", "r", 1),
        AccountSpec::new("old", "o", 2),
    ]))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (store, http) = open_store(dir.path()).await;
    let pid = add_xtream(&store, &fake, &[("good", "g/pw+1"), ("refused", "r"), ("old", "o")]).await;
    // Details on add, as the API does.
    sync_with_details(&store, &http, pid).await;
    let provider = store.provider(pid).await.unwrap();

    // The panel now refuses one account and reports another expired.
    fake.update_account("refused", |a| a.auth = false);
    fake.update_account("old", |a| a.exp_date = Some(now() - 86_400));
    for a in store.accounts(pid).await.unwrap() {
        let _ = refresh_account(&store, &http, &provider, &a).await;
    }
    let accounts = store.accounts(pid).await.unwrap();
    // A refusal keeps the last known limit.
    assert_eq!(accounts.iter().map(|a| a.details.max_connections).collect::<Vec<_>>(), [Some(1), Some(1), Some(2)]);
    assert_eq!(accounts[1].details.auth, Some(false));

    let channel = store.channels(&ChannelQuery::default()).await.unwrap().items.remove(0);
    let ledger = Arc::new(MemoryLedger::new(tunerpool_ledger::DEFAULT_TTL));
    let providers = HashMap::from([(pid, ProviderPool { provider: &provider, accounts: &accounts })]);
    let usage = ledger.usage().await.unwrap();
    let input = SelectInput {
        sources: &channel.sources,
        providers: &providers,
        active: &usage.accounts,
        policy: AccountPolicy::Priority,
        now_unix: now(),
        scores: &[],
        quality_policy: Default::default(),
    };
    let p = plan(&input);
    assert_eq!(p.candidates.len(), 1, "{p:?}");
    let mut reasons: Vec<String> = p.skipped.iter().map(|s| format!("{}: {}", s.account, s.reason)).collect();
    reasons.sort();
    assert!(reasons[0].starts_with("old: expired on"), "{reasons:?}");
    assert_eq!(reasons[1], "refused: the panel rejected its credentials");

    let slots: Vec<Slot> = p
        .candidates
        .iter()
        .map(|c| Slot {
            account: c.account_key,
            account_max: c.account_max,
            provider: c.provider_key,
            provider_max: c.provider_max,
        })
        .collect();
    let lease = Lease::acquire(ledger.clone(), &slots, "test").await.unwrap();
    let account = accounts.iter().find(|a| a.id == p.candidates[lease.info().index].account_id).unwrap();
    assert_eq!(account.username.as_deref(), Some("good"));
    let url = xtream_url(
        &provider.url,
        StreamKind::Live,
        account.username.as_deref().unwrap(),
        account.password.expose(),
        &channel.sources[0].upstream_id.unwrap().to_string(),
        "ts",
    );
    let mut resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status(), 200);
    let first = resp.chunk().await.unwrap().unwrap();
    assert_eq!(first[0], 0x47, "MPEG-TS");
    let counters = fake.counters();
    assert_eq!(counters.accounts["good"].open, 1);
    assert_eq!(counters.total_opened, 1);

    // The only usable account is full: no second slot, and the reason lists every account.
    let usage = ledger.usage().await.unwrap();
    assert!(matches!(Lease::acquire(ledger.clone(), &slots, "second").await, Err(LedgerError::Full)));
    let input = SelectInput { active: &usage.accounts, ..input };
    let why = no_capacity(&input).to_string();
    assert!(
        why.contains("Primary 1/1") && why.contains("the panel rejected its credentials") && why.contains("expired"),
        "{why}"
    );

    drop(resp);
    lease.release().await;
    assert_eq!(ledger.usage().await.unwrap().total(), 0);
}

/// One tunerpool instance's view of the fake provider: its own store, where the same accounts carry other row
/// ids than at the other instance.
async fn instance(
    fake: &FakeProvider,
    http: &UpstreamHttp,
    dir: &std::path::Path,
    users: [&str; 2],
) -> (Store, tunerpool_catalog::Provider, Vec<tunerpool_catalog::Account>) {
    let (store, _) = open_store(dir).await;
    let (p0, p1) = (format!("{}-pw", users[0]), format!("{}-pw", users[1]));
    let pid = add_xtream(&store, fake, &[(users[0], &p0), (users[1], &p1)]).await;
    sync_provider(&store, http, pid).await.unwrap();
    let provider = store.provider(pid).await.unwrap();
    let accounts = store.accounts(pid).await.unwrap();
    (store, provider, accounts)
}

/// Issue 10 finding 3: two instances sharing one ledger, whose databases number the same two accounts the other
/// way round, each take a slot and play. The ledger must see one account, not two row ids: the second instance
/// gets the other account, and the provider never counts more than one connection per account.
#[tokio::test]
async fn two_instances_numbering_accounts_differently_share_the_limits() {
    let fake = FakeProvider::start(FakeConfig::with_accounts(vec![
        AccountSpec::new("a", "a-pw", 1),
        AccountSpec::new("b", "b-pw", 1),
    ]))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let http = UpstreamHttp::new(HttpSettings { spool_dir: dir.path().join("tmp"), ..Default::default() }).unwrap();
    let ledger = Arc::new(MemoryLedger::new(tunerpool_ledger::DEFAULT_TTL));
    let one = instance(&fake, &http, &dir.path().join("one"), ["a", "b"]).await;
    let two = instance(&fake, &http, &dir.path().join("two"), ["b", "a"]).await;
    let row_id = |(_, _, accounts): &(Store, tunerpool_catalog::Provider, Vec<tunerpool_catalog::Account>), user| {
        accounts.iter().find(|a| a.username.as_deref() == Some(user)).unwrap().id
    };
    assert_ne!(row_id(&one, "a"), row_id(&two, "a"), "the test needs different numberings");

    let mut leases = Vec::new();
    let mut bodies = Vec::new();
    for (store, provider, accounts) in [&one, &two] {
        let channel = store.channels(&ChannelQuery::default()).await.unwrap().items.remove(0);
        let providers = HashMap::from([(provider.id, ProviderPool { provider, accounts })]);
        let usage = ledger.usage().await.unwrap();
        let input = SelectInput {
            sources: &channel.sources,
            providers: &providers,
            active: &usage.accounts,
            policy: AccountPolicy::Priority,
            now_unix: now(),
            scores: &[],
            quality_policy: Default::default(),
        };
        let p = plan(&input);
        let slots: Vec<Slot> = p
            .candidates
            .iter()
            .map(|c| Slot {
                account: c.account_key,
                account_max: c.account_max,
                provider: c.provider_key,
                provider_max: c.provider_max,
            })
            .collect();
        let lease = Lease::acquire(ledger.clone(), &slots, "test").await.unwrap();
        let account = accounts.iter().find(|a| a.id == p.candidates[lease.info().index].account_id).unwrap();
        let url = xtream_url(
            &provider.url,
            StreamKind::Live,
            account.username.as_deref().unwrap(),
            account.password.expose(),
            &channel.sources[0].upstream_id.unwrap().to_string(),
            "ts",
        );
        let resp = reqwest::get(&url).await.unwrap();
        assert_eq!(resp.status(), 200, "{} was refused", account.name);
        bodies.push(resp);
        leases.push((account.username.clone().unwrap(), lease));
    }
    assert_ne!(leases[0].0, leases[1].0, "both instances were given the same account");
    let counters = fake.counters();
    for user in ["a", "b"] {
        assert_eq!((counters.accounts[user].max_concurrent, counters.accounts[user].refused), (1, 0), "{user}");
    }
    // Both accounts are busy now, as both instances see.
    for (_, provider, accounts) in [&one, &two] {
        let slots: Vec<Slot> = accounts
            .iter()
            .map(|a| Slot {
                account: tunerpool_pool::account_key(provider, a),
                account_max: 1,
                provider: tunerpool_pool::provider_key(provider),
                provider_max: None,
            })
            .collect();
        assert!(matches!(Lease::acquire(ledger.clone(), &slots, "third").await, Err(LedgerError::Full)));
    }
    drop(bodies);
    for (_, lease) in leases {
        lease.release().await;
    }
}
