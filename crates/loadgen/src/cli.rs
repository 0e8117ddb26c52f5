//! Command line: the flags, their parsing, and the checked run plan built from them.
//!
//! Every mistake is reported by clap's error machinery (exit code 2) with the flag named.

use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{ArgGroup, CommandFactory, Parser, ValueEnum};
use serde::Serialize;

use loadgen::client::ClientKind;

/// The placeholder in `--url-template`.
pub const PLACEHOLDER: &str = "{channel}";

/// `loadgen` flags.
///
/// Exists as the one place where the instrument's knobs are declared, documented (`--help`) and
/// parsed.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "loadgen",
    version,
    about = "Ramp many HTTP viewers over live MPEG-TS channels, read the streams and print a JSON report.",
    long_about = "Ramp many HTTP viewers over live MPEG-TS channels, read the streams and print a JSON report.\n\n\
Client i (0-based) starts at ramp * i / clients after the run start and reads for exactly --duration \
after ITS start, so every client gets the same reading window and the run lasts ramp + duration. \
Exit code 0 whenever the run completed (failures are in the report); 2 for bad arguments.\n\n\
Every viewer is one socket: raise the open-file limit for big runs (ulimit -n 4096)."
)]
#[command(group(ArgGroup::new("channel_set").required(true).args(["channels", "channel_range"])))]
pub struct Args {
    /// Stream URL; `{channel}` is replaced by the channel id,
    /// e.g. http://127.0.0.1:8080/stream/{channel}.ts
    #[arg(long, value_name = "URL")]
    pub url_template: String,

    /// Channel ids, comma-separated (e.g. 1,2,3).
    #[arg(long, value_name = "ID,...", value_delimiter = ',')]
    pub channels: Vec<String>,

    /// A numeric range of channel ids, inclusive (e.g. 1-50).
    #[arg(long, value_name = "FIRST-LAST", value_parser = parse_range)]
    pub channel_range: Option<(u64, u64)>,

    /// Number of viewers.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub clients: u32,

    /// Start the clients evenly over this time (e.g. 10s; 0 = all at once).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub ramp: Duration,

    /// How long each client reads, from its own start (e.g. 30s, 2m).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,

    /// How clients are assigned to channels.
    #[arg(long, value_enum, default_value_t = Assign::RoundRobin)]
    pub assign: Assign,

    /// Seed for `--assign random` (default: from the clock; the report echoes the one used).
    #[arg(long)]
    pub seed: Option<u64>,

    /// TCP connect timeout.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Longest wait for response headers after connecting, and for any next body bytes; a client
    /// that waits longer ends with "read timeout".
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub read_timeout: Duration,

    /// At most this many open connections per host:port; further clients wait for a free one
    /// (their waiting time is not in their TTFB but does eat into their reading window).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_host: Option<u32>,

    /// Also write the JSON report to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Include one row per client in the report.
    #[arg(long)]
    pub per_client: bool,

    /// The HTTP client: `reqwest` (hyper, like a typical Rust client) or `raw` (a plain socket
    /// and one read buffer per thread; http only, close-delimited or sized bodies): the cheaper
    /// one, for thousands of viewers on the machine that runs the servers too.
    #[arg(long, value_enum, default_value_t = ClientKind::Reqwest)]
    pub client: ClientKind,

    /// Tokio worker threads (default: one per core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub worker_threads: Option<u32>,

    /// No progress lines on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// How clients are spread over channels.
///
/// Exists because "1000 viewers on 50 channels" can mean an even split (the default, exact
/// counts) or a realistic uneven one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Assign {
    /// Client i watches channel i mod M.
    RoundRobin,
    /// Each client picks a channel uniformly at random (seeded, reproducible).
    Random,
}

/// A checked, fully resolved run: what every client will do.
///
/// Exists so that validation happens once, before any socket is opened, and the run and the
/// report's config echo work from the same values.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Channel ids, in the order given.
    pub channels: Vec<String>,
    /// The stream URL of each channel (same index as `channels`).
    pub urls: Vec<String>,
    /// Channel index of each client.
    pub assignment: Vec<usize>,
    /// The seed used when `--assign random`.
    pub seed: Option<u64>,
}

/// Parse a duration: a decimal number with unit `ms`, `s`, `m` or `h` (a bare number is
/// seconds): `500ms`, `10s`, `1.5s`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("expected a duration like 500ms, 10s, 2m (unknown unit in '{s}')")),
    };
    let value: f64 =
        num.parse().map_err(|_| format!("expected a duration like 500ms, 10s, 2m (no number in '{s}')"))?;
    let secs = value * scale;
    if !secs.is_finite() || secs > 1.0e9 {
        return Err(format!("duration '{s}' is too long"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parse `FIRST-LAST` (inclusive, FIRST <= LAST).
fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s.split_once('-').ok_or_else(|| format!("expected FIRST-LAST like 1-50 (got '{s}')"))?;
    let a: u64 = a.trim().parse().map_err(|_| format!("'{a}' is not a channel number"))?;
    let b: u64 = b.trim().parse().map_err(|_| format!("'{b}' is not a channel number"))?;
    if a > b {
        return Err(format!("the range {a}-{b} is empty: FIRST must not be above LAST"));
    }
    if b - a >= 1_000_000 {
        return Err(format!("the range {a}-{b} has more than 1000000 channels"));
    }
    Ok((a, b))
}

/// A tiny deterministic generator (SplitMix64) for `--assign random`.
///
/// Exists so a random assignment is reproducible from the echoed seed without a dependency.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), by rejection so there is no modulo bias.
    fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next();
            if x < zone {
                return x % n;
            }
        }
    }
}

/// Check the arguments beyond what clap parses and resolve them into a [`Plan`]; the error
/// names the flag.
pub fn plan(args: &Args) -> Result<Plan, clap::Error> {
    let err = |kind: ErrorKind, msg: String| Args::command().error(kind, msg);

    let channels: Vec<String> = match args.channel_range {
        Some((a, b)) => (a..=b).map(|c| c.to_string()).collect(),
        None => args.channels.iter().map(|c| c.trim().to_string()).collect(),
    };
    if channels.is_empty() {
        return Err(err(ErrorKind::ValueValidation, "--channels: give at least one channel id".into()));
    }
    if let Some(bad) = channels.iter().find(|c| c.is_empty() || c.chars().any(|ch| ch.is_whitespace() || ch == '/')) {
        return Err(err(
            ErrorKind::ValueValidation,
            format!("--channels: '{bad}' is not a usable channel id (empty, or has whitespace or '/')"),
        ));
    }

    if !args.url_template.contains(PLACEHOLDER) {
        return Err(err(
            ErrorKind::ValueValidation,
            format!(
                "--url-template: '{}' has no {PLACEHOLDER} placeholder; e.g. http://127.0.0.1:8080/stream/{PLACEHOLDER}.ts",
                args.url_template
            ),
        ));
    }
    let mut urls = Vec::with_capacity(channels.len());
    for ch in &channels {
        let url = args.url_template.replace(PLACEHOLDER, ch);
        match reqwest::Url::parse(&url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => urls.push(url),
            Ok(u) => {
                return Err(err(
                    ErrorKind::ValueValidation,
                    format!(
                        "--url-template: '{url}' must be an http:// or https:// URL with a host (scheme '{}')",
                        u.scheme()
                    ),
                ))
            }
            Err(e) => {
                return Err(err(ErrorKind::ValueValidation, format!("--url-template: '{url}' is not a URL: {e}")));
            }
        }
    }

    if args.duration.is_zero() {
        return Err(err(ErrorKind::ValueValidation, "--duration: must be more than 0 (e.g. 30s)".into()));
    }
    if args.read_timeout.is_zero() {
        return Err(err(ErrorKind::ValueValidation, "--read-timeout: must be more than 0 (e.g. 10s)".into()));
    }
    if args.connect_timeout.is_zero() {
        return Err(err(ErrorKind::ValueValidation, "--connect-timeout: must be more than 0 (e.g. 5s)".into()));
    }
    if args.seed.is_some() && args.assign != Assign::Random {
        return Err(err(ErrorKind::ArgumentConflict, "--seed: only means something with --assign random".into()));
    }

    let m = channels.len();
    let n = args.clients as usize;
    let (assignment, seed) = match args.assign {
        Assign::RoundRobin => ((0..n).map(|i| i % m).collect(), None),
        Assign::Random => {
            let seed = args.seed.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0x5eed)
            });
            let mut rng = SplitMix64(seed);
            ((0..n).map(|_| rng.below(m as u64) as usize).collect(), Some(seed))
        }
    };
    Ok(Plan { channels, urls, assignment, seed })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Result<Args, clap::Error> {
        let mut v = vec!["loadgen", "--url-template", "http://h:1/s/{channel}.ts"];
        v.extend_from_slice(extra);
        Args::try_parse_from(v)
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn round_robin_and_range() {
        let a = args(&["--channel-range", "5-7", "--clients", "7"]).unwrap();
        let p = plan(&a).unwrap();
        assert_eq!(p.channels, ["5", "6", "7"]);
        assert_eq!(p.urls[1], "http://h:1/s/6.ts");
        assert_eq!(p.assignment, [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn random_is_reproducible_and_in_range() {
        let a = args(&["--channels", "a,b,c", "--clients", "300", "--assign", "random", "--seed", "42"]).unwrap();
        let p1 = plan(&a).unwrap();
        let p2 = plan(&a).unwrap();
        assert_eq!(p1.assignment, p2.assignment);
        assert_eq!(p1.seed, Some(42));
        assert!(p1.assignment.iter().all(|&c| c < 3));
        for c in 0..3 {
            assert!(p1.assignment.iter().filter(|&&x| x == c).count() > 50);
        }
    }

    #[test]
    fn errors_name_the_flag() {
        let e = plan(&Args::try_parse_from(["loadgen", "--url-template", "http://h/x.ts", "--channels", "1"]).unwrap())
            .unwrap_err();
        assert!(e.to_string().contains("--url-template"), "{e}");
        let e = args(&["--channels", "1", "--ramp", "10x"]).unwrap_err();
        assert!(e.to_string().contains("--ramp"), "{e}");
        let e = args(&["--clients", "10"]).unwrap_err();
        assert!(e.to_string().contains("--channels"), "{e}");
        let e = args(&["--channels", "1", "--channel-range", "1-3"]).unwrap_err();
        assert!(e.to_string().contains("--channel-range"), "{e}");
        let e = args(&["--channel-range", "9-3"]).unwrap_err();
        assert!(e.to_string().contains("--channel-range"), "{e}");
        let e = plan(&args(&["--channels", "1", "--duration", "0s"]).unwrap()).unwrap_err();
        assert!(e.to_string().contains("--duration"), "{e}");
        let e = plan(&args(&["--channels", "1,,2"]).unwrap()).unwrap_err();
        assert!(e.to_string().contains("--channels"), "{e}");
        let e = args(&["--channels", "1", "--clients", "0"]).unwrap_err();
        assert!(e.to_string().contains("--clients"), "{e}");
    }
}
