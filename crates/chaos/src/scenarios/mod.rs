//! The scenarios, one module each; every one returns a [`crate::ScenarioReport`].

pub mod churn;
pub mod faults;
pub mod fuzz;
pub mod kill;
pub mod security;
pub mod slow;
pub mod storm;

use std::future::Future;
use std::time::Instant;

use crate::{Scale, ScenarioReport};

/// Every scenario id, in run order.
pub const ALL: [&str; 7] = ["R1", "R2", "R3", "R4", "R5", "R6", "S1"];

/// Run one scenario by id (`R1` … `S1`, any case).
pub async fn run(id: &str, scale: Scale) -> anyhow::Result<ScenarioReport> {
    match id.to_ascii_uppercase().as_str() {
        "R1" => timed(storm::run(scale)).await,
        "R2" => timed(churn::run(scale)).await,
        "R3" => timed(kill::run(scale)).await,
        "R4" => timed(faults::run(scale)).await,
        "R5" => timed(slow::run(scale)).await,
        "R6" => timed(fuzz::run(scale)).await,
        "S1" => timed(security::run(scale)).await,
        other => anyhow::bail!("unknown scenario {other:?}: use one of {}", ALL.join(", ")),
    }
}

/// One part of a scenario, alone: R1 `one_instance` or `two_instances`; S1 `routes`,
/// `bad_logins_100`, `bad_logins_300` or `secrets`. For tests that assert one part's targets
/// without paying for the others.
pub async fn run_part(id: &str, part: &str, scale: Scale) -> anyhow::Result<ScenarioReport> {
    let mut r = match id {
        "R1" => storm::report(),
        "S1" => security::report(),
        _ => anyhow::bail!("{id} has no parts"),
    };
    match (id, part) {
        ("R1", "one_instance") => storm::one_instance(&mut r, scale).await?,
        ("R1", "two_instances") => storm::two_instances(&mut r, scale).await?,
        ("S1", "routes") => security::routes(&mut r).await?,
        ("S1", "bad_logins_100") => security::bad_logins(&mut r, 100).await?,
        ("S1", "bad_logins_300") => security::bad_logins(&mut r, 300).await?,
        ("S1", "secrets") => security::secrets(&mut r).await?,
        _ => anyhow::bail!("{id} has no part {part:?}"),
    }
    Ok(r)
}

async fn timed(f: impl Future<Output = anyhow::Result<ScenarioReport>>) -> anyhow::Result<ScenarioReport> {
    let start = Instant::now();
    let mut report = f.await?;
    report.elapsed_s = (start.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    Ok(report)
}

use fakeprovider::{AccountSpec, FakeConfig, FakeProvider, LimitMode};

use crate::env::{Gateway, GatewayOptions};

/// The downstream user every scenario's viewers log in as (no limit of its own).
pub(crate) const USER: &str = "viewer";
/// Its password.
pub(crate) const PASS: &str = "viewer-Pw-4f1c";

/// A simulated provider with these `(username, max connections)` accounts (password
/// `{username}-pw`), `channels` live channels and `movies` movies, enforcing limits by `mode`.
pub(crate) async fn provider(
    accounts: &[(&str, u32)],
    channels: usize,
    movies: usize,
    mode: LimitMode,
    bitrate_bps: Option<u64>,
) -> anyhow::Result<FakeProvider> {
    FakeProvider::start(provider_config(accounts, channels, movies, mode, bitrate_bps)).await
}

/// The configuration [`provider`] starts, for a scenario that changes more of it.
pub(crate) fn provider_config(
    accounts: &[(&str, u32)],
    channels: usize,
    movies: usize,
    mode: LimitMode,
    bitrate_bps: Option<u64>,
) -> FakeConfig {
    let accounts = accounts.iter().map(|(u, max)| AccountSpec::new(u, &format!("{u}-pw"), *max)).collect();
    FakeConfig {
        live_channels: channels,
        live_categories: 4,
        vod_count: movies,
        series_count: 0,
        limit_mode: mode,
        bitrate_bps,
        ..FakeConfig::with_accounts(accounts)
    }
}

/// A gateway with one Xtream provider at `url` whose accounts are added in the order given,
/// the scenario user, a synced catalog of at least `channels` channels, and the user logged
/// in once; returns it and the channel ids.
pub(crate) async fn gateway(
    opts: &GatewayOptions,
    url: &str,
    accounts: &[&str],
    channels: usize,
) -> anyhow::Result<(Gateway, Vec<i64>)> {
    let gw = Gateway::start(opts).await?;
    let creds: Vec<(&str, String)> = accounts.iter().map(|u| (*u, format!("{u}-pw"))).collect();
    let creds: Vec<(&str, &str)> = creds.iter().map(|(u, p)| (*u, p.as_str())).collect();
    gw.add_xtream("provider", url, &creds).await?;
    gw.add_user(USER, PASS, 0).await?;
    let ids = gw.wait_channels(channels).await?;
    gw.login(USER, PASS).await?;
    Ok((gw, ids))
}

/// A live channel as TS for the scenario user.
pub(crate) fn live_url(gw: &Gateway, id: i64) -> String {
    gw.url(&format!("/live/{USER}/{PASS}/{id}.ts"))
}

/// What a provider saw over all its accounts: the ground truth every limit target is
/// judged on.
pub(crate) struct ProviderTotals {
    pub peak_per_account: u32,
    pub peak_sum: u32,
    pub refused: u64,
    pub cut: u64,
    pub open: u32,
    pub opened: u64,
}

/// The provider's counters now, summed over its accounts.
pub(crate) fn totals(p: &FakeProvider) -> ProviderTotals {
    let c = p.counters();
    let a = c.accounts.values();
    ProviderTotals {
        peak_per_account: a.clone().map(|x| x.max_concurrent).max().unwrap_or(0),
        peak_sum: a.clone().map(|x| x.max_concurrent).sum(),
        refused: a.clone().map(|x| x.refused).sum(),
        cut: a.clone().map(|x| x.cut).sum(),
        open: a.clone().map(|x| x.open).sum(),
        opened: a.map(|x| x.opened).sum(),
    }
}
