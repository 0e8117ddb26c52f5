//! R4 faults: one viewer per fault case, each on its own channel, all at once, against a
//! provider that misbehaves on that channel only — a cut, a stall (mid-stream and at the
//! start), a 503 or 403 at the start, an HTML placeholder instead of video, cuts every 2 s and
//! every 10 s. The viewer is loadgen's client, so the figures are what a player would see: the
//! longest time without bytes, the time to the first byte, and whether the stream was still
//! alive at the end.

use std::collections::HashMap;
use std::time::Duration;

use fakeprovider::{Fault, FaultKind, LimitMode};
use tokio::time::Instant;

use super::{gateway, live_url, provider};
use crate::env::GatewayOptions;
use crate::view::Viewers;
use crate::{Scale, ScenarioReport};

/// The provider's pacing, bits per second.
const BITRATE: u64 = 2_000_000;
/// `relay.stall_timeout`'s default.
const STALL_TIMEOUT_S: f64 = 5.0;

/// Bytes the provider sends in `secs` seconds.
fn bytes_in(secs: u64) -> u64 {
    BITRATE / 8 * secs
}

/// Run R4.
pub async fn run(scale: Scale) -> anyhow::Result<ScenarioReport> {
    let watch = Duration::from_secs(scale.pick(15, 30));
    let mut cases: Vec<(&str, Option<FaultKind>, Option<u32>, Duration)> = vec![
        ("clean", None, None, watch),
        ("cut_once", Some(FaultKind::CutAfter { bytes: bytes_in(3) }), Some(1), watch),
        ("stall_once", Some(FaultKind::Stall { after_bytes: bytes_in(3) }), Some(1), watch),
        ("stall_at_start", Some(FaultKind::Stall { after_bytes: 0 }), Some(1), watch),
        ("status_503_at_start", Some(FaultKind::Refuse { status: 503 }), Some(1), watch),
        ("status_403_at_start", Some(FaultKind::Refuse { status: 403 }), Some(1), watch),
        ("placeholder", Some(FaultKind::Placeholder), Some(1), watch),
        (
            "cuts_every_2s",
            Some(FaultKind::CutAfter { bytes: bytes_in(2) }),
            None,
            Duration::from_secs(scale.pick(30, 120)),
        ),
    ];
    if scale == Scale::Full {
        cases.push((
            "cuts_every_10s",
            Some(FaultKind::CutAfter { bytes: bytes_in(10) }),
            None,
            Duration::from_secs(600),
        ));
    }
    let mut r = ScenarioReport::new("R4", "provider faults: the gap a viewer sees");
    r.param("bitrate_bps", BITRATE);
    r.param("watch_s", watch.as_secs());
    r.param("relay.stall_timeout_s", STALL_TIMEOUT_S);

    // Two accounts, so a failover has somewhere to go.
    let fake = provider(&[("f-a", 20), ("f-b", 20)], cases.len() + 2, 0, LimitMode::default(), Some(BITRATE)).await?;
    let (gw, _) = gateway(&GatewayOptions::default(), &fake.url(), &["f-a", "f-b"], cases.len() + 2).await?;
    let by_name: HashMap<String, i64> = gw.api_ok("/api/v1/channels?per_page=1000").await?["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| Some((c["name"].as_str()?.to_string(), c["id"].as_i64()?))).collect())
        .unwrap_or_default();

    let viewers = Viewers::new(cases.len())?;
    let start = Instant::now() + Duration::from_millis(200);
    let mut tasks = Vec::new();
    for (i, (name, kind, times, duration)) in cases.iter().enumerate() {
        // Case i plays the provider's stream i + 1 ("Channel {i + 1}").
        let stream = i as u64 + 1;
        let id = *by_name.get(&format!("Channel {stream}")).ok_or_else(|| anyhow::anyhow!("no Channel {stream}"))?;
        if let Some(kind) = kind {
            let mut fault = Fault::new(kind.clone()).for_stream(stream);
            fault.times = *times;
            fake.set_fault(fault);
        }
        let (v, url, d) = (viewers.clone(), live_url(&gw, id), *duration);
        tasks.push((*name, tokio::spawn(async move { v.watch(i, url, start, d).await })));
    }
    for (name, task) in tasks {
        let rec = task.await?;
        let secs =
            |us: Option<u64>| us.map_or(serde_json::Value::Null, |u| ((u as f64 / 100_000.0).round() / 10.0).into());
        r.info(&format!("{name}.status"), rec.status.map_or("none".to_string(), |s| s.to_string()));
        r.info(&format!("{name}.ttfb_s"), secs(rec.ttfb_us));
        r.info(
            &format!("{name}.longest_gap_s"),
            rec.longest_gap_ms.map_or(serde_json::Value::Null, |g| ((g / 100.0).round() / 10.0).into()),
        );
        r.info(&format!("{name}.ts_continuity_errors"), rec.ts.continuity_errors);
        let watched = rec.reading_ms.unwrap_or(0.0) / 1000.0;
        let verdict = if rec.ok {
            "alive".to_string()
        } else {
            format!("ended after {watched:.1} s: {}", rec.reason.as_deref().unwrap_or("?"))
        };
        r.check(&format!("{name}.alive_at_end"), verdict, "alive", rec.ok);
        if name == "stall_at_start" {
            let ttfb = rec.ttfb_us.map_or(f64::INFINITY, |u| u as f64 / 1e6);
            r.at_most("stall_at_start.first_byte_s", (ttfb * 10.0).round() / 10.0, STALL_TIMEOUT_S + 2.0);
        }
    }
    r.info("provider_connections_opened", super::totals(&fake).opened);
    drop(gw);
    fake.shutdown().await;
    Ok(r)
}
