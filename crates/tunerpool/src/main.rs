//! The `tunerpool` binary: command line, configuration, and wiring of the
//! library crates (upstream → catalog → http).

mod admin_token;
mod cli;
mod cluster;
mod config;
mod demo;
mod inspect;
mod logging;
mod man;
mod provider;
mod scheduler;
mod serve;
mod store;
mod user;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, ConfigCommand};
use crate::config::{Config, Overrides};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn overrides(cli: &Cli) -> Overrides {
    Overrides {
        listen: cli.listen.clone(),
        data_dir: cli.data_dir.clone(),
        log_level: cli.log_level.clone(),
        set: cli.set.clone(),
    }
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let (config, notes) = Config::load_noting(cli.config.as_deref(), std::env::vars(), &overrides(cli))
        .map_err(|e| anyhow::anyhow!("the configuration has problems:\n{e}"))?;
    // Before logging is set up (it is configured by what was just loaded): straight to stderr.
    for note in &notes {
        eprintln!("warning: {note}");
    }
    Ok(config)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Completions { shell } => {
            // Into a buffer first: clap_complete panics when stdout is closed
            // early (`| head`); a closed pipe is not an error here.
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "tunerpool", &mut script);
            man::print(&script)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => {
            man::write(dir.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Check { file }) => {
            let path = file.clone().or_else(|| cli.config.clone()).unwrap_or_else(|| "tunerpool.toml".into());
            match Config::check_file_noting(&path) {
                Ok((_, notes)) => {
                    for note in &notes {
                        println!("warning: {note}");
                    }
                    println!("{}: ok", path.display());
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    for p in &e.problems {
                        println!("{p}");
                    }
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Config(ConfigCommand::Show) => {
            print!("{}", load_config(&cli)?.to_toml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Reference) => {
            print!("{}", config::reference());
            Ok(ExitCode::SUCCESS)
        }
        Command::Inspect(cmd) => {
            let config = load_config(&cli)?;
            logging::init(&config, true);
            inspect::run(&config, cmd).await
        }
        Command::Serve => {
            let config = load_config(&cli)?;
            logging::init(&config, false);
            serve::run(config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => {
            let config = load_config(&cli)?;
            logging::init(&config, false);
            demo::run(config, args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Provider(cmd) => {
            let config = load_config(&cli)?;
            logging::init(&config, true);
            provider::run(&config, cmd).await
        }
        Command::Account(cmd) => {
            let config = load_config(&cli)?;
            logging::init(&config, true);
            provider::run_account(&config, cmd).await
        }
        Command::Store(cmd) => {
            let config = load_config(&cli)?;
            logging::init(&config, true);
            store::run(&config, cmd).await
        }
        Command::User(cmd) => {
            let config = load_config(&cli)?;
            logging::init(&config, true);
            user::run(&config, cmd).await
        }
    }
}
