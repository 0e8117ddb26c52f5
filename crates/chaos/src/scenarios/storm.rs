//! R1 storm: many simultaneous requests over many channels against a small pool (3 accounts ×
//! 2 connections), on one instance, then on two instances sharing one Redis ledger whose
//! databases added the same accounts in different orders. The provider's own counters are the
//! ground truth: at most 2 connections per account at any moment (6 in all), and it never had
//! to refuse one.

use std::time::Duration;

use fakeprovider::LimitMode;

use super::{gateway, live_url, provider, totals};
use crate::env::{Gateway, GatewayOptions, Redis};
use crate::view::{statuses, Viewers};
use crate::{Scale, ScenarioReport};

const ACCOUNTS: [(&str, u32); 3] = [("acct-a", 2), ("acct-b", 2), ("acct-c", 2)];
const CHANNELS: usize = 100;

/// Run R1.
pub async fn run(scale: Scale) -> anyhow::Result<ScenarioReport> {
    let mut r = report();
    one_instance(&mut r, scale).await?;
    two_instances(&mut r, scale).await?;
    Ok(r)
}

/// An empty R1 report (for running its parts one by one).
pub fn report() -> ScenarioReport {
    ScenarioReport::new("R1", "storm: simultaneous requests on 3 accounts × 2 connections")
}

/// Requests per storm, and how long each viewer that gets a stream reads it: longer than
/// `relay.acquire_wait` (3 s), so the served viewers stream while the others wait.
fn size(r: &mut ScenarioReport, scale: Scale) -> (usize, Duration) {
    let requests = scale.pick(300, 1000);
    let hold = Duration::from_secs(4);
    if r.params.is_empty() {
        r.param("requests", requests);
        r.param("channels", CHANNELS);
        r.param("hold_s", hold.as_secs());
    }
    (requests, hold)
}

/// The storm on one instance (figures `one_instance.*`).
pub async fn one_instance(r: &mut ScenarioReport, scale: Scale) -> anyhow::Result<()> {
    let (requests, hold) = size(r, scale);
    let fake = provider(&ACCOUNTS, CHANNELS, 0, LimitMode::default(), None).await?;
    let (gw, ids) = gateway(&GatewayOptions::default(), &fake.url(), &["acct-a", "acct-b", "acct-c"], CHANNELS).await?;
    storm(r, "one_instance", &fake, &[(&gw, &ids)], requests, hold).await;
    drop(gw);
    fake.shutdown().await;
    Ok(())
}

/// The storm on two instances sharing one Redis ledger, whose databases added the accounts in
/// opposite orders (figures `two_instances.*`).
pub async fn two_instances(r: &mut ScenarioReport, scale: Scale) -> anyhow::Result<()> {
    let (requests, hold) = size(r, scale);
    let redis = Redis::start();
    let fake = provider(&ACCOUNTS, CHANNELS, 0, LimitMode::default(), None).await?;
    let opts = GatewayOptions::default().redis(&redis, "15s");
    let (gw1, ids1) = gateway(&opts, &fake.url(), &["acct-a", "acct-b", "acct-c"], CHANNELS).await?;
    let (gw2, ids2) = gateway(&opts, &fake.url(), &["acct-c", "acct-b", "acct-a"], CHANNELS).await?;
    storm(r, "two_instances", &fake, &[(&gw1, &ids1), (&gw2, &ids2)], requests, hold).await;
    drop((gw1, gw2));
    fake.shutdown().await;
    Ok(())
}

async fn storm(
    r: &mut ScenarioReport,
    label: &str,
    fake: &fakeprovider::FakeProvider,
    gws: &[(&Gateway, &Vec<i64>)],
    requests: usize,
    hold: Duration,
) {
    // Request i goes to instance i mod n, channel (i / n) mod 100: every channel is asked for
    // on every instance.
    let urls: Vec<String> = (0..requests)
        .map(|i| {
            let (gw, ids) = gws[i % gws.len()];
            live_url(gw, ids[(i / gws.len()) % ids.len().min(CHANNELS)])
        })
        .collect();
    let viewers = match Viewers::new(requests) {
        Ok(v) => v,
        Err(e) => {
            r.check(&format!("{label}.setup"), e.to_string(), "ok", false);
            return;
        }
    };
    let records = viewers.storm(urls, hold).await;
    let tally = statuses(&records);
    // Let the streams close before reading the provider's books.
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while totals(fake).open > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let t = totals(fake);
    r.info(&format!("{label}.answers"), serde_json::to_value(&tally).unwrap_or_default());
    r.info(&format!("{label}.streams_served"), records.iter().filter(|c| c.bytes > 0).count());
    r.info(&format!("{label}.provider_connections_opened"), t.opened);
    r.at_most(&format!("{label}.provider_peak_per_account"), f64::from(t.peak_per_account), 2.0);
    r.at_most(&format!("{label}.provider_peak_sum_of_accounts"), f64::from(t.peak_sum), 6.0);
    r.at_most(&format!("{label}.provider_refusals"), t.refused as f64, 0.0);
}
