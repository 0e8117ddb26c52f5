//! R5 slow viewer: one viewer of a channel reads at 10 % of its bitrate (a phone on a bad
//! link) while others watch the same channel normally. The upstream never waits for a viewer:
//! every normal viewer must still get at least 99 % of the bitrate.

use std::time::Duration;

use fakeprovider::LimitMode;
use tokio::time::Instant;

use super::{gateway, live_url, provider};
use crate::env::GatewayOptions;
use crate::view::{read_slowly, Viewers};
use crate::{Scale, ScenarioReport};

/// The channel's bitrate, bits per second.
const BITRATE: u64 = 8_000_000;
const NORMAL_VIEWERS: usize = 5;

/// Run R5.
pub async fn run(scale: Scale) -> anyhow::Result<ScenarioReport> {
    let watch = Duration::from_secs(scale.pick(15, 60));
    let mut r = ScenarioReport::new("R5", "slow viewer at 10 % of the bitrate among normal viewers");
    r.param("bitrate_bps", BITRATE);
    r.param("normal_viewers", NORMAL_VIEWERS);
    r.param("watch_s", watch.as_secs());

    let fake = provider(&[("s-a", 2)], 2, 0, LimitMode::default(), Some(BITRATE)).await?;
    let (gw, ids) = gateway(&GatewayOptions::default(), &fake.url(), &["s-a"], 2).await?;
    let url = live_url(&gw, ids[0]);

    let http = reqwest::Client::builder().no_proxy().http1_only().build()?;
    let slow_url = url.clone();
    let slow =
        tokio::spawn(async move { read_slowly(&http, &slow_url, BITRATE / 10, watch + Duration::from_secs(1)).await });
    // The normal viewers join once the slow one is in.
    let viewers = Viewers::new(NORMAL_VIEWERS)?;
    let start = Instant::now() + Duration::from_millis(500);
    let tasks: Vec<_> = (0..NORMAL_VIEWERS)
        .map(|i| {
            let (v, url) = (viewers.clone(), url.clone());
            tokio::spawn(async move { v.watch(i, url, start, watch).await })
        })
        .collect();
    let mut ratios = Vec::new();
    let mut gaps = Vec::new();
    let mut ok = 0;
    for t in tasks {
        let rec = t.await?;
        ok += usize::from(rec.ok);
        ratios.push(rec.rate_bps.unwrap_or(0) as f64 / BITRATE as f64);
        gaps.push(rec.longest_gap_ms.unwrap_or(f64::INFINITY));
    }
    let slow = slow.await?;
    let min_ratio = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    r.at_least("normal_viewers.min_share_of_bitrate", (min_ratio * 1000.0).round() / 1000.0, 0.99);
    r.at_least("normal_viewers.alive_at_end", ok as f64, NORMAL_VIEWERS as f64);
    let max_gap = gaps.iter().copied().fold(0.0, f64::max);
    r.info("normal_viewers.longest_gap_ms", max_gap.round());
    r.info("slow_viewer.status", slow.status);
    r.info("slow_viewer.mbit_per_s", ((slow.bytes as f64 * 8.0 / slow.seconds.max(0.001)) / 1e5).round() / 10.0);
    r.info("slow_viewer.dropped_by_gateway", slow.ended_by_server);
    drop(gw);
    fake.shutdown().await;
    Ok(r)
}
