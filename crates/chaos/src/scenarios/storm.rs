//! R1 storm: many simultaneous requests over many channels against a small pool (3 accounts ×
//! 2 connections), on one instance, then on two instances sharing one Redis ledger whose
//! databases added the same accounts in different orders. The first instance is already
//! playing 2 channels when the storm hits, and with two instances the burst reaches the second
//! one first (on an idle pool, in random order, the instances' grants fall on matching accounts
//! by chance). The provider's own counters are the
//! ground truth: at most 2 connections per account at any moment (6 in all), and it never had
//! to refuse one.

use std::time::Duration;

use tokio::time::Instant;

use fakeprovider::LimitMode;

use super::{gateway, live_url, provider, totals};
use crate::env::{Gateway, GatewayOptions, Redis};
use crate::view::{statuses, Viewers};
use crate::{Scale, ScenarioReport};

const ACCOUNTS: [(&str, u32); 3] = [("acct-a", 2), ("acct-b", 2), ("acct-c", 2)];
const CHANNELS: usize = 100;
/// Viewers already watching on the first instance when the storm hits.
const PRELOAD: usize = 2;
/// How much later the burst reaches the first instance when there are two.
const LAG: Duration = Duration::from_millis(500);

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
    // on every instance. With two instances the burst reaches the second one first and the
    // first (busy) one LAG later: the order a load balancer's burst lands in is arbitrary, and
    // this one makes the instances' account numbering matter every time.
    let urls: Vec<(String, Duration)> = (0..requests)
        .map(|i| {
            let n = i % gws.len();
            let (gw, ids) = gws[n];
            let offset = if n == 0 && gws.len() > 1 { LAG } else { Duration::ZERO };
            (live_url(gw, ids[(i / gws.len()) % ids.len().min(CHANNELS)]), offset)
        })
        .collect();
    let viewers = match Viewers::new(requests + PRELOAD) {
        Ok(v) => v,
        Err(e) => {
            r.check(&format!("{label}.setup"), e.to_string(), "ok", false);
            return;
        }
    };
    // The first instance is already busy when the storm hits: PRELOAD viewers there hold its
    // first account's slots through the storm.
    let (first, first_ids) = gws[0];
    let preload: Vec<_> = first_ids[first_ids.len() - PRELOAD..]
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let (v, url) = (viewers.clone(), live_url(first, *id));
            tokio::spawn(async move { v.watch(i, url, Instant::now(), hold + Duration::from_secs(3)).await })
        })
        .collect();
    let _ = tokio::time::timeout(Duration::from_secs(15), async {
        while (totals(fake).open as usize) < PRELOAD {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let records = viewers.storm(urls, hold).await;
    let mut preloaded = 0;
    for p in preload {
        preloaded += p.await.map_or(0, |rec| usize::from(rec.ok));
    }
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
    r.info(&format!("{label}.busy_viewers_alive_at_end"), format!("{preloaded} of {PRELOAD}"));
    r.info(&format!("{label}.streams_served"), records.iter().filter(|c| c.bytes > 0).count());
    r.info(&format!("{label}.provider_connections_opened"), t.opened);
    r.at_most(&format!("{label}.provider_peak_per_account"), f64::from(t.peak_per_account), 2.0);
    r.at_most(&format!("{label}.provider_peak_sum_of_accounts"), f64::from(t.peak_sum), 6.0);
    r.at_most(&format!("{label}.provider_refusals"), t.refused as f64, 0.0);
}
