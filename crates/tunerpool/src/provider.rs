//! `tunerpool provider …`: manage providers in the data dir from the shell.

use std::process::ExitCode;

use tunerpool_catalog::sync::sync_provider;
use tunerpool_catalog::{CatalogError, NewProvider, Secret};

use crate::cli::{AccountCommand, ProviderAddArgs, ProviderCommand};
use crate::config::Config;
use crate::serve::{open_store, upstream_http};

pub async fn run(config: &Config, cmd: &ProviderCommand) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    let result = provider_command(config, &store, cmd).await;
    // On every path, errors included: close() writes the queued events
    // (a sync's result) before the pool goes.
    store.close().await;
    result
}

async fn provider_command(
    config: &Config,
    store: &tunerpool_catalog::Store,
    cmd: &ProviderCommand,
) -> anyhow::Result<ExitCode> {
    let code = match cmd {
        ProviderCommand::Add(args) => add(config, store, args).await?,
        ProviderCommand::List => {
            let providers = store.providers().await?;
            println!("{}", serde_json::to_string_pretty(&providers)?);
            ExitCode::SUCCESS
        }
        ProviderCommand::Sync { provider } => {
            let p = store.find_provider(provider).await?;
            let http = upstream_http(config)?;
            match sync_provider(store, &http, p.id).await {
                Ok(report) => {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        ProviderCommand::Remove { provider } => {
            let p = store.find_provider(provider).await?;
            store.delete_provider(p.id).await?;
            println!("removed provider {} ({})", p.id, p.name);
            ExitCode::SUCCESS
        }
    };
    Ok(code)
}

async fn add(config: &Config, store: &tunerpool_catalog::Store, a: &ProviderAddArgs) -> anyhow::Result<ExitCode> {
    let kind = match a.kind.parse() {
        Ok(k) => Some(k),
        Err(e) => {
            eprintln!("--kind: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let new = NewProvider {
        name: a.name.clone(),
        kind,
        url: a.url.clone(),
        username: a.username.clone(),
        password: a.password.clone().map(Secret::new),
        epg_url: a.epg_url.clone(),
        user_agent: a.user_agent.clone(),
        priority: a.priority,
        max_streams: a.max_streams,
        enabled: true,
    };
    let provider = match store.add_provider(&new).await {
        Ok(p) => p,
        Err(CatalogError::Invalid(fields)) => {
            for f in fields {
                eprintln!("--{}: {}", f.field.replace('_', "-"), f.message);
            }
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    };
    eprintln!("added provider {} ({})", provider.id, provider.name);
    if a.no_sync {
        println!("{}", serde_json::to_string_pretty(&provider)?);
        return Ok(ExitCode::SUCCESS);
    }
    let http = upstream_http(config)?;
    match sync_provider(store, &http, provider.id).await {
        Ok(report) => {
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("the provider was added but its first sync failed: {e}");
            eprintln!("fix the problem and run: tunerpool provider sync {}", provider.id);
            Ok(ExitCode::FAILURE)
        }
    }
}

pub async fn run_account(config: &Config, cmd: &AccountCommand) -> anyhow::Result<ExitCode> {
    let http = upstream_http(config)?;
    match cmd {
        AccountCommand::Test { url, username, password } => {
            let report = tunerpool_catalog::details::test_xtream(&http, url, username, password).await;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        AccountCommand::Add { .. } | AccountCommand::List { .. } => {
            let store = open_store(config).await?;
            let result = account_command(&store, &http, cmd).await;
            store.close().await;
            result
        }
    }
}

async fn account_command(
    store: &tunerpool_catalog::Store,
    http: &tunerpool_upstream::UpstreamHttp,
    cmd: &AccountCommand,
) -> anyhow::Result<ExitCode> {
    match cmd {
        AccountCommand::Test { .. } => unreachable!("needs no store"),
        AccountCommand::Add { provider, name, username, password, server_url, max_streams, priority } => {
            let p = store.find_provider(provider).await?;
            let input = tunerpool_catalog::AccountPatch {
                name: name.clone(),
                username: username.clone(),
                password: password.clone().map(Secret::new),
                server_url: server_url.clone().map(Some),
                max_streams: max_streams.map(Some),
                priority: *priority,
                ..Default::default()
            };
            let code = match store.create_account(p.id, &input).await {
                Ok(a) => {
                    let _ = tunerpool_catalog::details::refresh_account(store, http, &p, &a).await;
                    println!("{}", serde_json::to_string_pretty(&store.account(a.id).await?)?);
                    ExitCode::SUCCESS
                }
                Err(CatalogError::Invalid(fields)) => {
                    for f in fields {
                        eprintln!("--{}: {}", f.field.replace('_', "-"), f.message);
                    }
                    ExitCode::from(2)
                }
                Err(e) => return Err(e.into()),
            };
            Ok(code)
        }
        AccountCommand::List { provider } => {
            let p = store.find_provider(provider).await?;
            println!("{}", serde_json::to_string_pretty(&store.accounts(p.id).await?)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
