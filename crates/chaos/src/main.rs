//! `chaos`: run the reliability scenarios against the real `tunerpool` binary and print their
//! figures (a table, or JSON with `--json`). Exit code 0 when every target was met, 1 when a
//! target was missed or a scenario could not run, 2 for bad arguments.

use std::process::ExitCode;

use chaos::scenarios::{self, ALL};
use chaos::{Scale, ScenarioReport};
use clap::Parser;

/// Command line of `chaos`.
#[derive(Debug, Parser)]
#[command(
    name = "chaos",
    about = "Reliability harness: storms, churn, kill -9, faults, a slow viewer, fuzz and security checks \
             against the real tunerpool binary",
    long_about = None
)]
struct Args {
    /// quick (the test suite's bounded run) or full (the sizes RELIABILITY.md reports).
    #[arg(long, value_enum, default_value = "full")]
    scale: Scale,
    /// Scenarios to run, e.g. R1,R4,S1 (default: all).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// The tunerpool binary (default: $CHAOS_TUNERPOOL, else the one built beside chaos).
    #[arg(long)]
    tunerpool: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(p) = &args.tunerpool {
        // Read by env::tunerpool_binary; set while this is the only thread.
        std::env::set_var("CHAOS_TUNERPOOL", p);
    }
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt.block_on(run(args)),
        Err(e) => {
            eprintln!("chaos: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> ExitCode {
    if let Err(e) = chaos::env::tunerpool_binary() {
        eprintln!("chaos: {e}");
        return ExitCode::from(2);
    }
    chaos::env::raise_file_limit();
    let ids: Vec<String> = if args.only.is_empty() { ALL.iter().map(|s| s.to_string()).collect() } else { args.only };
    let mut reports: Vec<ScenarioReport> = Vec::new();
    let mut failed = false;
    for id in &ids {
        match scenarios::run(id, args.scale).await {
            Ok(r) => {
                failed |= !r.failures("").is_empty();
                if !args.json {
                    println!("{}", r.table());
                }
                reports.push(r);
            }
            Err(e) => {
                failed = true;
                eprintln!("chaos: {id} could not run: {e:#}");
            }
        }
    }
    if args.json {
        match serde_json::to_string_pretty(&reports) {
            Ok(j) => println!("{j}"),
            Err(e) => eprintln!("chaos: {e}"),
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
