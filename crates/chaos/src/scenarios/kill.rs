//! R3 `kill -9`: two instances on one Redis ledger share an account of 2 connections; the
//! first holds both slots with two viewers and is killed with SIGKILL (no chance to release
//! anything). How long until the other instance can use those slots? Its leases expire after
//! `pool.lease_ttl`, so that is the bound; the provider must not have refused or seen more than
//! 2 connections meanwhile.

use std::time::Duration;

use fakeprovider::LimitMode;
use tokio::time::Instant;

use super::{gateway, live_url, provider, totals};
use crate::env::{GatewayOptions, Redis};
use crate::{Scale, ScenarioReport};

/// Run R3.
pub async fn run(scale: Scale) -> anyhow::Result<ScenarioReport> {
    let ttl_s: u64 = scale.pick(5, 15);
    let mut r = ScenarioReport::new("R3", "kill -9 of an instance holding every slot");
    r.param("lease_ttl_s", ttl_s);

    let redis = Redis::start();
    let fake = provider(&[("k-a", 2)], 10, 0, LimitMode::default(), None).await?;
    let opts = GatewayOptions::default().redis(&redis, &format!("{ttl_s}s"));
    let (mut gw1, ids) = gateway(&opts, &fake.url(), &["k-a"], 10).await?;
    let (gw2, ids2) = gateway(&opts, &fake.url(), &["k-a"], 10).await?;

    // Two viewers on the first instance take both slots.
    let http = reqwest::Client::builder().no_proxy().build()?;
    let mut viewers = Vec::new();
    for id in &ids[..2] {
        let mut resp = http.get(live_url(&gw1, *id)).send().await?;
        if resp.status() != 200 {
            anyhow::bail!("viewer on instance 1: {}", resp.status());
        }
        viewers.push(tokio::spawn(async move { while let Ok(Some(_)) = resp.chunk().await {} }));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while totals(&fake).open < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    r.info("before_kill.provider_connections", totals(&fake).open);
    r.info("before_kill.slots_seen_by_instance_2", gw2.slots_held().await?);
    let third = live_url(&gw2, ids2[2]);
    let before = http.get(&third).send().await.map(|r| r.status().as_u16()).unwrap_or(0);
    r.info("before_kill.instance_2_answer", before);

    gw1.kill9().await;
    let killed = Instant::now();
    for v in viewers {
        let _ = tokio::time::timeout(Duration::from_secs(5), v).await;
    }
    // Ask the second instance for a channel until it gets one.
    let give_up = killed + Duration::from_secs(ttl_s * 3 + 10);
    let mut usable_after: Option<f64> = None;
    let mut tries = 0;
    while Instant::now() < give_up {
        tries += 1;
        if let Ok(Ok(resp)) = tokio::time::timeout(Duration::from_secs(30), http.get(&third).send()).await {
            if resp.status() == 200 {
                usable_after = Some(killed.elapsed().as_secs_f64());
                drop(resp);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    r.info("requests_until_served", tries);
    match usable_after {
        Some(s) => r.at_most("slot_usable_by_instance_2_after_s", (s * 10.0).round() / 10.0, ttl_s as f64),
        None => r.check("slot_usable_by_instance_2_after_s", "never", format!("≤ {ttl_s}"), false),
    }
    let t = totals(&fake);
    r.at_most("provider_peak_per_account", f64::from(t.peak_per_account), 2.0);
    r.at_most("provider_refusals", t.refused as f64, 0.0);
    drop(gw2);
    fake.shutdown().await;
    Ok(r)
}
