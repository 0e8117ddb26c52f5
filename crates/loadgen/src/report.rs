//! The JSON report: the config echo, totals, per-metric distributions over clients, TS
//! integrity totals, the instrument's own cost, and optionally every client's row.
//!
//! Distributions are exact: every client's value is kept and sorted; percentiles use the
//! nearest-rank method (the p-th percentile of n values is the ⌈p·n/100⌉-th smallest), so every
//! reported value is one a client actually measured.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cli::{Args, Assign, Plan};
use crate::client::{ClientRecord, REASON_EMFILE};
use crate::sys::{CpuTimes, FileLimit};

/// The whole report.
///
/// Exists as the documented output format of the instrument (field order is stable).
#[derive(Debug, Serialize)]
pub struct Report {
    /// Which loadgen produced it.
    pub loadgen_version: &'static str,
    /// The run as configured.
    pub config: ConfigEcho,
    /// Counts over all clients.
    pub totals: Totals,
    /// Request start to first body byte, µs, over clients that got a body byte.
    pub ttfb_us: Dist,
    /// Mean delivered rate, Mbit/s, over clients that got a body byte.
    pub delivered_mbps: Dist,
    /// Longest gap between reads (incl. the tail), ms, over clients that got a body byte.
    pub longest_gap_ms: Dist,
    /// MPEG-TS integrity over all clients.
    pub ts: TsTotals,
    /// What the instrument itself used.
    pub loadgen: SelfCost,
    /// Things a reader should know before trusting the numbers.
    pub hints: Vec<String>,
    /// Every client, with `--per-client`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clients: Option<Vec<ClientRecord>>,
}

/// The configuration echoed back.
///
/// Exists so a report file alone says what was measured.
#[derive(Debug, Serialize)]
pub struct ConfigEcho {
    /// `--url-template`.
    pub url_template: String,
    /// The channel ids, in order.
    pub channels: Vec<String>,
    /// `--clients`.
    pub clients: u32,
    /// `--ramp`, seconds.
    pub ramp_s: f64,
    /// `--duration` (per client, from its start), seconds.
    pub duration_s: f64,
    /// `--assign`.
    pub assign: Assign,
    /// The seed of a random assignment.
    pub seed: Option<u64>,
    /// Clients per channel (channel id → count).
    pub clients_per_channel: BTreeMap<String, usize>,
    /// `--connect-timeout`, seconds.
    pub connect_timeout_s: f64,
    /// `--read-timeout`, seconds.
    pub read_timeout_s: f64,
    /// `--max-connections-per-host`.
    pub max_connections_per_host: Option<u32>,
    /// `--client`.
    pub client: loadgen::client::ClientKind,
    /// Tokio worker threads used.
    pub worker_threads: usize,
    /// This process's open-file limit.
    pub open_files_limit: Option<FileLimit>,
}

/// Counts and volumes over all clients.
///
/// Exists as the headline: how many viewers were served, and how much.
#[derive(Debug, Serialize)]
pub struct Totals {
    /// Clients run.
    pub clients: usize,
    /// Clients with a 2xx stream read until their end.
    pub ok: usize,
    /// The others.
    pub failed: usize,
    /// Failed clients by reason (`status 403`, `eof`, `read timeout`, `connect error: …`).
    pub failed_by_reason: BTreeMap<String, usize>,
    /// Clients by HTTP status (`none` = no response).
    pub by_status: BTreeMap<String, usize>,
    /// Clients whose 2xx stream ended (EOF or error) before their end.
    pub ended_early: usize,
    /// Most clients reading a 2xx stream at the same time.
    pub peak_streaming: u64,
    /// Body bytes received by all clients.
    pub bytes: u64,
    /// Run start to the last client's end, seconds.
    pub wall_s: f64,
    /// `bytes * 8 / wall_s`, Mbit/s (averaged over the ramp too).
    pub aggregate_mbps: f64,
    /// Sum of the clients' mean rates, Mbit/s: the throughput while they all read at once.
    pub sum_client_mbps: f64,
}

/// A distribution over clients; only the percentiles that metric reports are present.
///
/// Exists so each metric shows the tail that matters for it (high tail for TTFB and gaps, low
/// tail for delivered rate) in one shape.
#[derive(Debug, Default, Serialize)]
pub struct Dist {
    /// Clients in the distribution.
    pub n: usize,
    /// Smallest value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// 1st percentile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p1: Option<f64>,
    /// 10th percentile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p10: Option<f64>,
    /// Median.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50: Option<f64>,
    /// 90th percentile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p90: Option<f64>,
    /// 99th percentile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99: Option<f64>,
    /// Largest value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Arithmetic mean.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
}

/// Which statistics a [`Dist`] carries.
#[derive(Clone, Copy)]
enum Stat {
    Min,
    P(f64),
    Max,
    Mean,
}

/// TS integrity totals.
///
/// Exists to answer "did any viewer get a damaged stream" at a glance.
#[derive(Debug, Default, Serialize)]
pub struct TsTotals {
    /// Packets checked, all clients.
    pub packets: u64,
    /// Losses of the 188-byte sync cadence, all clients.
    pub sync_errors: u64,
    /// Clients with at least one sync error.
    pub clients_with_sync_errors: usize,
    /// Continuity counter jumps, all clients.
    pub continuity_errors: u64,
    /// Clients with at least one continuity error.
    pub clients_with_continuity_errors: usize,
    /// Bytes skipped while aligning or re-aligning, all clients.
    pub skipped_bytes: u64,
    /// Packets flagged `transport_error_indicator`, all clients.
    pub transport_error_packets: u64,
    /// Clients that received body bytes but not one TS packet (not MPEG-TS at all).
    pub clients_without_ts: usize,
}

/// The instrument's own resource use over the run.
///
/// Exists so a reader can tell whether the load generator was the bottleneck.
#[derive(Debug, Serialize)]
pub struct SelfCost {
    /// User CPU seconds.
    pub cpu_user_s: Option<f64>,
    /// System CPU seconds.
    pub cpu_system_s: Option<f64>,
    /// (user + system) / wall, in percent of one core.
    pub cpu_percent_of_one_core: Option<f64>,
    /// Cores available to this process.
    pub cores: usize,
    /// Peak resident memory, MiB.
    pub peak_rss_mib: Option<f64>,
}

/// Inputs of [`build`] that are not per-client records.
pub struct RunFacts {
    /// Run start to last client end.
    pub wall: std::time::Duration,
    /// CPU used during the run.
    pub cpu: Option<CpuTimes>,
    /// Peak RSS, bytes.
    pub peak_rss: Option<u64>,
    /// Most clients streaming at once.
    pub peak_streaming: u64,
    /// Worker threads used.
    pub worker_threads: usize,
    /// Open-file limit.
    pub file_limit: Option<FileLimit>,
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

fn dist(mut values: Vec<f64>, stats: &[Stat]) -> Dist {
    let mut d = Dist { n: values.len(), ..Dist::default() };
    if values.is_empty() {
        return d;
    }
    values.sort_by(f64::total_cmp);
    for s in stats {
        match *s {
            Stat::Min => d.min = Some(round3(values[0])),
            Stat::Max => d.max = Some(round3(values[values.len() - 1])),
            Stat::Mean => d.mean = Some(round3(values.iter().sum::<f64>() / values.len() as f64)),
            Stat::P(p) => {
                let v = Some(round3(percentile(&values, p)));
                match p as u32 {
                    1 => d.p1 = v,
                    10 => d.p10 = v,
                    50 => d.p50 = v,
                    90 => d.p90 = v,
                    99 => d.p99 = v,
                    _ => unreachable!("unsupported percentile {p}"),
                }
            }
        }
    }
    d
}

/// Merge the client records into the report.
pub fn build(args: &Args, plan: &Plan, mut records: Vec<ClientRecord>, facts: RunFacts) -> Report {
    records.sort_by_key(|r| r.id);

    let mut clients_per_channel = BTreeMap::new();
    for &c in &plan.assignment {
        *clients_per_channel.entry(plan.channels[c].clone()).or_insert(0) += 1;
    }
    let config = ConfigEcho {
        url_template: args.url_template.clone(),
        channels: plan.channels.clone(),
        clients: args.clients,
        ramp_s: args.ramp.as_secs_f64(),
        duration_s: args.duration.as_secs_f64(),
        assign: args.assign,
        seed: plan.seed,
        clients_per_channel,
        connect_timeout_s: args.connect_timeout.as_secs_f64(),
        read_timeout_s: args.read_timeout.as_secs_f64(),
        max_connections_per_host: args.max_connections_per_host,
        client: args.client,
        worker_threads: facts.worker_threads,
        open_files_limit: facts.file_limit,
    };

    let mut failed_by_reason = BTreeMap::new();
    let mut by_status = BTreeMap::new();
    let mut ts = TsTotals::default();
    let (mut ok, mut ended_early, mut bytes, mut sum_bps) = (0, 0, 0u64, 0f64);
    let (mut ttfb, mut rate, mut gap) = (Vec::new(), Vec::new(), Vec::new());
    for r in &records {
        if r.ok {
            ok += 1;
        } else {
            *failed_by_reason.entry(r.reason.clone().unwrap_or_else(|| "unknown".into())).or_insert(0) += 1;
        }
        let status = r.status.map_or_else(|| "none".to_string(), |s| s.to_string());
        *by_status.entry(status).or_insert(0) += 1;
        ended_early += usize::from(r.ended_early);
        bytes += r.bytes;
        if let Some(t) = r.ttfb_us {
            ttfb.push(t as f64);
        }
        if let Some(bps) = r.rate_bps {
            rate.push(bps as f64 / 1e6);
            sum_bps += bps as f64;
        }
        if let Some(g) = r.longest_gap_ms {
            gap.push(g);
        }
        ts.packets += r.ts.packets;
        ts.sync_errors += r.ts.sync_errors;
        ts.clients_with_sync_errors += usize::from(r.ts.sync_errors > 0);
        ts.continuity_errors += r.ts.continuity_errors;
        ts.clients_with_continuity_errors += usize::from(r.ts.continuity_errors > 0);
        ts.skipped_bytes += r.ts.skipped_bytes;
        ts.transport_error_packets += r.ts.transport_error_packets;
        ts.clients_without_ts += usize::from(r.bytes > 0 && r.ts.packets == 0);
    }
    let wall_s = facts.wall.as_secs_f64();
    let totals = Totals {
        clients: records.len(),
        ok,
        failed: records.len() - ok,
        failed_by_reason,
        by_status,
        ended_early,
        peak_streaming: facts.peak_streaming,
        bytes,
        wall_s: round3(wall_s),
        aggregate_mbps: if wall_s > 0.0 { round3(bytes as f64 * 8.0 / wall_s / 1e6) } else { 0.0 },
        sum_client_mbps: round3(sum_bps / 1e6),
    };

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu_total = facts.cpu.map(|c| c.user_s + c.system_s);
    let loadgen = SelfCost {
        cpu_user_s: facts.cpu.map(|c| round3(c.user_s)),
        cpu_system_s: facts.cpu.map(|c| round3(c.system_s)),
        cpu_percent_of_one_core: cpu_total.filter(|_| wall_s > 0.0).map(|c| round3(c / wall_s * 100.0)),
        cores,
        peak_rss_mib: facts.peak_rss.map(|b| round3(b as f64 / (1024.0 * 1024.0))),
    };

    let mut hints = Vec::new();
    let emfile = totals.failed_by_reason.get(REASON_EMFILE).copied().unwrap_or(0);
    if emfile > 0 {
        let soft = facts.file_limit.and_then(|l| l.soft).map_or("unknown".to_string(), |s| s.to_string());
        hints.push(format!(
            "{emfile} clients failed because loadgen ran out of file descriptors (limit {soft}): \
             raise it with `ulimit -n {}` before running",
            (args.clients as u64 + 256).next_power_of_two()
        ));
    }
    if let Some(pct) = loadgen.cpu_percent_of_one_core {
        let usable = (facts.worker_threads.min(cores) as f64) * 100.0;
        if pct > 0.8 * usable {
            hints.push(format!(
                "loadgen used {pct:.0}% CPU of {usable:.0}% available: the instrument may have been the bottleneck"
            ));
        }
    }
    if ts.clients_without_ts > 0 {
        hints.push(format!(
            "{} clients received bytes that are not MPEG-TS (no 0x47 packet cadence)",
            ts.clients_without_ts
        ));
    }

    let stats_ttfb = [Stat::Min, Stat::P(50.0), Stat::P(90.0), Stat::P(99.0), Stat::Max, Stat::Mean];
    let stats_rate = [Stat::Min, Stat::P(1.0), Stat::P(10.0), Stat::P(50.0), Stat::Max, Stat::Mean];
    let stats_gap = [Stat::P(50.0), Stat::P(99.0), Stat::Max];
    Report {
        loadgen_version: env!("CARGO_PKG_VERSION"),
        config,
        totals,
        ttfb_us: dist(ttfb, &stats_ttfb),
        delivered_mbps: dist(rate, &stats_rate),
        longest_gap_ms: dist(gap, &stats_gap),
        ts,
        loadgen,
        hints,
        clients: args.per_client.then_some(records),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 1.0), 1.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        let v = [7.0];
        assert_eq!(percentile(&v, 1.0), 7.0);
        assert_eq!(percentile(&v, 99.0), 7.0);
        let v = [1.0, 2.0, 3.0];
        assert_eq!(percentile(&v, 50.0), 2.0);
        assert_eq!(percentile(&v, 90.0), 3.0);
        assert_eq!(percentile(&v, 10.0), 1.0);
    }

    #[test]
    fn dist_carries_only_its_stats() {
        let d = dist(vec![3.0, 1.0, 2.0], &[Stat::P(50.0), Stat::Max]);
        assert_eq!((d.n, d.p50, d.max, d.min, d.p99), (3, Some(2.0), Some(3.0), None, None));
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json, serde_json::json!({"n": 3, "p50": 2.0, "max": 3.0}));
        let empty = dist(Vec::new(), &[Stat::P(50.0)]);
        assert_eq!(serde_json::to_value(&empty).unwrap(), serde_json::json!({"n": 0}));
    }
}
