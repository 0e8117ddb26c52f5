//! `fakeprovider`: run the simulated Xtream Codes provider as its own process (for benchmarks
//! and manual testing). Configuration comes from an optional TOML file (see `FakeConfig`),
//! overridden by command-line flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use fakeprovider::{AccountSpec, FakeConfig, FakeProvider, LimitMode};

/// Command line of the `fakeprovider` binary.
#[derive(Debug, Parser)]
#[command(name = "fakeprovider", about = "A simulated Xtream Codes IPTV provider")]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "FAKEPROVIDER_LISTEN", default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// TOML configuration file (FakeConfig); flags below override it.
    #[arg(long, env = "FAKEPROVIDER_CONFIG")]
    config: Option<PathBuf>,
    /// Accounts as `user:pass:max[,user:pass:max...]` (max 0 = unlimited).
    #[arg(long)]
    accounts: Option<String>,
    /// Number of live channels.
    #[arg(long)]
    channels: Option<usize>,
    /// Number of live categories.
    #[arg(long)]
    categories: Option<usize>,
    /// Number of movies.
    #[arg(long)]
    vod: Option<usize>,
    /// Number of series.
    #[arg(long)]
    series: Option<usize>,
    /// Live pacing rate in bits per second (default: the sample's real rate, ~1.8 Mbit/s).
    #[arg(long)]
    bitrate_bps: Option<u64>,
    /// How max_connections is enforced.
    #[arg(long, value_enum)]
    limit_mode: Option<Mode>,
    /// HTTP status for refusals in refuse mode.
    #[arg(long)]
    refuse_status: Option<u16>,
    /// Slow to notice: a closed connection keeps counting against its account for this many milliseconds.
    #[arg(long)]
    release_delay_ms: Option<u64>,
    /// HLS session timeout in milliseconds.
    #[arg(long)]
    hls_session_timeout_ms: Option<u64>,
    /// Live channel names, `{i}` = the channel's number (e.g. "UK: CHANNEL {i} HD").
    #[arg(long)]
    name_template: Option<String>,
    /// Added to the `{i}` of names and EPG ids: channel 1 is named (and
    /// guided) as channel 1 + this, so two providers can overlap in part.
    #[arg(long)]
    name_offset: Option<u64>,
    /// Added to every stream id (a panel that renumbered its streams).
    #[arg(long)]
    id_offset: Option<u64>,
    /// No EPG ids on live channels (matching must go by name).
    #[arg(long)]
    no_epg_ids: bool,
}

/// `--limit-mode` values.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    Refuse,
    CutOldest,
}

fn parse_accounts(s: &str) -> anyhow::Result<Vec<AccountSpec>> {
    s.split(',')
        .filter(|a| !a.trim().is_empty())
        .map(|a| {
            let parts: Vec<&str> = a.trim().splitn(3, ':').collect();
            match parts.as_slice() {
                [u, p] => Ok(AccountSpec::new(u, p, 1)),
                [u, p, max] => {
                    Ok(AccountSpec::new(u, p, max.parse().with_context(|| format!("bad max_connections in {a:?}"))?))
                }
                _ => bail!("account {a:?} is not user:pass[:max]"),
            }
        })
        .collect()
}

fn build_config(args: &Args) -> anyhow::Result<FakeConfig> {
    let mut cfg = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => FakeConfig::demo(),
    };
    if let Some(a) = &args.accounts {
        cfg.accounts = parse_accounts(a)?;
    }
    if let Some(n) = args.channels {
        cfg.live_channels = n;
    }
    if let Some(n) = args.categories {
        cfg.live_categories = n;
    }
    if let Some(n) = args.vod {
        cfg.vod_count = n;
    }
    if let Some(n) = args.series {
        cfg.series_count = n;
    }
    if args.bitrate_bps.is_some() {
        cfg.bitrate_bps = args.bitrate_bps;
    }
    if let Some(ms) = args.release_delay_ms {
        cfg.release_delay_ms = ms;
    }
    if let Some(ms) = args.hls_session_timeout_ms {
        cfg.hls_session_timeout_ms = ms;
    }
    if let Some(t) = &args.name_template {
        cfg.live_name_template = t.clone();
    }
    if let Some(n) = args.name_offset {
        cfg.live_name_offset = n;
    }
    if let Some(n) = args.id_offset {
        cfg.stream_id_offset = n;
    }
    if args.no_epg_ids {
        cfg.live_epg_ids = false;
    }
    let current_status = match cfg.limit_mode {
        LimitMode::Refuse { status } => status,
        LimitMode::CutOldest => 403,
    };
    match (args.limit_mode, args.refuse_status) {
        (Some(Mode::CutOldest), _) => cfg.limit_mode = LimitMode::CutOldest,
        (Some(Mode::Refuse), status) => cfg.limit_mode = LimitMode::Refuse { status: status.unwrap_or(current_status) },
        (None, Some(status)) => {
            if let LimitMode::Refuse { .. } = cfg.limit_mode {
                cfg.limit_mode = LimitMode::Refuse { status };
            }
        }
        (None, None) => {}
    }
    Ok(cfg)
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = build_config(&args)?;
    let provider = FakeProvider::start_on(config.clone(), args.listen).await?;
    println!("fakeprovider listening on {}", provider.url());
    let accounts: Vec<String> =
        config.accounts.iter().map(|a| format!("{} (max {})", a.username, a.max_connections)).collect();
    println!(
        "accounts: {} | live {} / vod {} / series {} | limit {:?}",
        accounts.join(", "),
        config.live_channels,
        config.vod_count,
        config.series_count,
        config.limit_mode
    );
    wait_for_signal().await;
    tracing::info!("shutting down");
    provider.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override() {
        let args = Args::parse_from([
            "fakeprovider",
            "--accounts",
            "a:b:3,c:d",
            "--channels",
            "200000",
            "--limit-mode",
            "refuse",
            "--refuse-status",
            "503",
        ]);
        let cfg = build_config(&args).unwrap();
        assert_eq!(cfg.accounts.len(), 2);
        assert_eq!(cfg.accounts[0].max_connections, 3);
        assert_eq!(cfg.accounts[1].max_connections, 1);
        assert_eq!(cfg.live_channels, 200_000);
        assert_eq!(cfg.limit_mode, LimitMode::Refuse { status: 503 });
        let args = Args::parse_from(["fakeprovider", "--limit-mode", "cut-oldest"]);
        assert_eq!(build_config(&args).unwrap().limit_mode, LimitMode::CutOldest);
        assert!(parse_accounts("x").is_err());
    }

    /// The flags bench/lineup.sh gives its second provider.
    #[test]
    fn overlap_flags() {
        let args = Args::parse_from([
            "fakeprovider",
            "--name-template",
            "UK: CHANNEL {i} HD",
            "--name-offset",
            "25000",
            "--id-offset",
            "10000000",
            "--no-epg-ids",
        ]);
        let cfg = build_config(&args).unwrap();
        assert_eq!(cfg.live_name_template, "UK: CHANNEL {i} HD");
        assert_eq!((cfg.live_name_offset, cfg.stream_id_offset, cfg.live_epg_ids), (25_000, 10_000_000, false));
        let cfg = build_config(&Args::parse_from(["fakeprovider"])).unwrap();
        assert_eq!((cfg.live_name_offset, cfg.stream_id_offset, cfg.live_epg_ids), (0, 0, true));
    }
}
