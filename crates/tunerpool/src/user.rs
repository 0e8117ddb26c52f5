//! `tunerpool user …`: manage downstream users (the logins of the client
//! outputs) in the data dir from the shell.

use std::process::ExitCode;

use tunerpool_catalog::{CatalogError, Secret, UserPatch};

use crate::cli::UserCommand;
use crate::config::Config;
use crate::serve::open_store;

pub async fn run(config: &Config, cmd: &UserCommand) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    let code = match cmd {
        UserCommand::Add { username, password, max_connections, expires_at, groups } => {
            let input = UserPatch {
                username: Some(username.clone()),
                password: Some(Secret::new(password.clone())),
                enabled: Some(true),
                expires_at: Some(*expires_at),
                max_connections: Some(*max_connections),
                priority: None,
                allowed_groups: Some((!groups.is_empty()).then(|| groups.clone())),
            };
            match store.create_user(&input).await {
                Ok(u) => {
                    println!("{}", serde_json::to_string_pretty(&u)?);
                    ExitCode::SUCCESS
                }
                Err(CatalogError::Invalid(fields)) => {
                    for f in fields {
                        let flag = if f.field == "allowed_groups" { "group".into() } else { f.field.replace('_', "-") };
                        eprintln!("--{flag}: {}", f.message);
                    }
                    ExitCode::from(2)
                }
                Err(e) => return Err(e.into()),
            }
        }
        UserCommand::List => {
            println!("{}", serde_json::to_string_pretty(&store.users().await?)?);
            ExitCode::SUCCESS
        }
        UserCommand::Remove { user } => {
            let u = store.find_user(user).await?;
            store.delete_user(u.id).await?;
            println!("removed user {} ({})", u.id, u.username);
            ExitCode::SUCCESS
        }
    };
    store.close().await;
    Ok(code)
}
