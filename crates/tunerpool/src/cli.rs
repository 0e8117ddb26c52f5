//! The command line: what a user can type, with help texts.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The heading under which the options every command accepts are listed,
/// apart from the command's own.
const GLOBAL: &str = "Global options";

const EXAMPLES: &str = "\
Examples:
  tunerpool demo                       # a simulated provider and the gateway, nothing to set up
  tunerpool serve --listen 0.0.0.0:8080
  TUNERPOOL_PROVIDER_PASSWORD=secret tunerpool provider add --name MyTV --kind xtream \\
      --url http://panel.example:8080 --username me
  TUNERPOOL_USER_PASSWORD=tv-pass tunerpool user add --username livingroom --max-connections 2
  tunerpool config check tunerpool.toml
  TUNERPOOL_STORE_URL=postgres://tp:secret@db/tp tunerpool store copy --from ./tunerpool-data
  tunerpool completions bash > ~/.local/share/bash-completion/completions/tunerpool
  tunerpool man --dir /usr/local/share/man/man1

Run `tunerpool help <command>` for a command's options and examples.";

/// tunerpool: pool IPTV provider accounts behind one proxy.
#[derive(Debug, Parser)]
#[command(name = "tunerpool", version, about, long_about = None, after_help = EXAMPLES)]
pub struct Cli {
    /// Configuration file (default: ./tunerpool.toml if it exists).
    #[arg(long, global = true, env = "TUNERPOOL_CONFIG", value_name = "FILE", help_heading = GLOBAL)]
    pub config: Option<PathBuf>,
    /// Address to listen on, e.g. 0.0.0.0:8080 (key: listen).
    #[arg(long, global = true, value_name = "ADDR", help_heading = GLOBAL)]
    pub listen: Option<String>,
    /// Where the database and state live (key: data_dir).
    #[arg(long, global = true, value_name = "DIR", help_heading = GLOBAL)]
    pub data_dir: Option<String>,
    /// Log filter: error, warn, info, debug, trace, or e.g. tunerpool=debug (key: log_level).
    #[arg(long, global = true, value_name = "FILTER", help_heading = GLOBAL)]
    pub log_level: Option<String>,
    /// Set any configuration key, e.g. --set sync.catalog_interval=6h (repeatable).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE", help_heading = GLOBAL)]
    pub set: Vec<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: HTTP API, client outputs, scheduled provider syncs.
    #[command(after_help = "\
Examples:
  tunerpool serve                                  # ./tunerpool.toml if it exists, else the defaults
  tunerpool serve --config /etc/tunerpool.toml --listen 127.0.0.1:8080
  tunerpool serve --set outputs.public_url=https://tv.example.org/tp")]
    Serve,
    /// Run a self-contained demo: a simulated provider with 2 accounts and 20 channels, a
    /// temporary data dir, and the gateway serving its catalog.
    #[command(after_help = "\
Examples:
  tunerpool demo
  tunerpool demo --listen 127.0.0.1:9000 --keep-data ./demo-data")]
    Demo(DemoArgs),
    /// Check or show the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Inspect a playlist and print a JSON summary.
    #[command(subcommand)]
    Inspect(InspectCommand),
    /// Add, list, sync and remove providers.
    #[command(subcommand)]
    Provider(ProviderCommand),
    /// Test credentials, add and list accounts of a provider.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Add, list and remove downstream users: the logins players use for the M3U, Xtream and
    /// HDHomeRun outputs.
    #[command(subcommand)]
    User(UserCommand),
    /// Move a catalog between stores: copy a single instance's SQLite catalog into PostgreSQL, to
    /// run a cluster on it.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Print a shell completion script to stdout.
    #[command(after_help = "\
Examples:
  tunerpool completions bash > ~/.local/share/bash-completion/completions/tunerpool
  tunerpool completions zsh > \"${fpath[1]}/_tunerpool\"
  tunerpool completions fish > ~/.config/fish/completions/tunerpool.fish")]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout, or write one page per command into a directory.
    #[command(after_help = "\
Examples:
  tunerpool man | man -l -
  tunerpool man --dir /usr/local/share/man/man1")]
    Man {
        /// Write tunerpool.1 and a page per subcommand (tunerpool-provider-add.1, ...) here.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// `tunerpool store …`: commands on the catalog as a whole, apart from the
/// provider, account and user commands that change what is in it.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy a SQLite catalog into an empty PostgreSQL catalog, ids and all.
    ///
    /// Every table goes over in one transaction: providers, accounts with their passwords, users,
    /// the lineup with its ids and numbers, guide mappings, quality, events, history, alerts. Both
    /// must be at this tunerpool's schema; an empty database is migrated first. Stop the instance
    /// first (a running one is copied as it was when the copy started). Progress goes to stderr, a
    /// summary per table to stdout.
    #[command(after_help = "\
Examples:
  TUNERPOOL_STORE_URL='postgres://tunerpool:PASSWORD@db.example:5432/tunerpool' \\
      tunerpool store copy --from /var/lib/tunerpool
  tunerpool store copy --data-dir ./tunerpool-data --to postgres://tp@127.0.0.1/tp --replace")]
    Copy(StoreCopyArgs),
}

/// Where `store copy` copies from and to, and whether it may replace what
/// the target holds.
#[derive(Debug, Args)]
pub struct StoreCopyArgs {
    /// The SQLite catalog to copy: the single instance's data dir, or the tunerpool.db in it
    /// (default: the data dir, key data_dir).
    #[arg(long, value_name = "DIR|FILE")]
    pub from: Option<PathBuf>,
    /// The PostgreSQL catalog to copy into: postgres://user:password@host:port/database (default:
    /// store.url; prefer TUNERPOOL_STORE_URL, which keeps the password out of shell history and
    /// `ps`).
    #[arg(long, value_name = "URL")]
    pub to: Option<String>,
    /// Delete everything the PostgreSQL catalog holds first (in the same transaction), instead of
    /// refusing a catalog that is not empty.
    #[arg(long)]
    pub replace: bool,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user (its password is stored hashed).
    #[command(after_help = "\
Examples:
  TUNERPOOL_USER_PASSWORD=tv-pass tunerpool user add --username livingroom
  TUNERPOOL_USER_PASSWORD=kids-pass tunerpool user add --username kids --max-connections 1 --group 3 --group 7")]
    Add {
        /// The login players use: up to 64 characters, no spaces or / ? # & % \ (it appears in
        /// stream URLs).
        #[arg(long)]
        username: String,
        /// The user's password. Prefer the environment variable, which stays out of shell
        /// history and `ps`.
        #[arg(long, env = "TUNERPOOL_USER_PASSWORD", hide_env_values = true)]
        password: String,
        /// Streams this user may watch at once; 0 = no limit of its own (the pool still applies).
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        max_connections: i64,
        /// Expiry as a Unix time in seconds (default: never).
        #[arg(long, allow_negative_numbers = true)]
        expires_at: Option<i64>,
        /// Only these group ids (repeatable; see GET /api/v1/groups); default: every group.
        #[arg(long = "group")]
        groups: Vec<i64>,
    },
    /// List users (never their passwords).
    List,
    /// Remove a user.
    #[command(after_help = "Example:\n  tunerpool user remove livingroom")]
    Remove {
        /// User id or username.
        user: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Check Xtream credentials against a panel: reachability, whether the panel accepts them, the
    /// detected connection limit, expiry and status, and a suggested max streams. Nothing is stored.
    #[command(after_help = "\
Example:
  TUNERPOOL_PROVIDER_PASSWORD=secret tunerpool account test --url http://panel.example:8080 --username me")]
    Test {
        /// The panel URL (http://host:port).
        #[arg(long)]
        url: String,
        /// The account's username at the panel.
        #[arg(long)]
        username: String,
        /// The account's password. Prefer the environment variable, which stays out of shell
        /// history and `ps`.
        #[arg(long, env = "TUNERPOOL_PROVIDER_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// Add an account to a provider (another login of the same provider) and fetch its details.
    #[command(after_help = "\
Example:
  TUNERPOOL_PROVIDER_PASSWORD=second-secret tunerpool account add --provider MyTV --name Second \\
      --username me2 --max-streams 1")]
    Add {
        /// Provider id or name.
        #[arg(long)]
        provider: String,
        /// A name for the account, shown in the pool and the UI (default: its username).
        #[arg(long)]
        name: Option<String>,
        /// The account's username at the panel.
        #[arg(long)]
        username: Option<String>,
        /// The account's password. Prefer the environment variable, which stays out of shell
        /// history and `ps`.
        #[arg(long, env = "TUNERPOOL_PROVIDER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Another server of the same provider (default: the provider's URL).
        #[arg(long)]
        server_url: Option<String>,
        /// Manual limit; the panel's detected limit applies when lower (default: detected).
        #[arg(long, allow_negative_numbers = true)]
        max_streams: Option<i64>,
        /// Lower is tried first.
        #[arg(long, allow_negative_numbers = true)]
        priority: Option<i64>,
    },
    /// List a provider's accounts with their details (never their passwords).
    #[command(after_help = "Example:\n  tunerpool account list MyTV")]
    List {
        /// Provider id or name.
        provider: String,
    },
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo's data in this directory instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    pub keep_data: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file and print every problem with its key.
    #[command(after_help = "Example:\n  tunerpool config check /etc/tunerpool.toml")]
    Check {
        /// The file to check (default: the --config file, or ./tunerpool.toml).
        file: Option<PathBuf>,
    },
    /// Print the effective configuration (file, environment and flags applied) as TOML.
    #[command(after_help = "Example:\n  tunerpool config show --set relay.linger=30s > tunerpool.toml")]
    Show,
    /// Print the reference of every key (default, what else to know, environment variable) as the
    /// Markdown table README.md carries.
    #[command(after_help = "Example:\n  tunerpool config reference")]
    Reference,
}

#[derive(Debug, Subcommand)]
pub enum InspectCommand {
    /// Summarize an M3U playlist (file or http(s) URL): entries, groups, attributes, skipped lines.
    #[command(after_help = "\
Examples:
  tunerpool inspect m3u ./playlist.m3u
  tunerpool inspect m3u --strict 'http://provider.example/get.php?username=me&password=secret&type=m3u_plus'")]
    M3u {
        /// A file path or an http(s):// URL.
        source: String,
        /// Also print every entry.
        #[arg(long)]
        entries: bool,
        /// Exit with status 2 if any line was skipped or there are no entries.
        #[arg(long)]
        strict: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProviderCommand {
    /// Add a provider (its credentials become its primary account) and sync its catalog.
    #[command(after_help = "\
Examples:
  TUNERPOOL_PROVIDER_PASSWORD=secret tunerpool provider add --name MyTV --kind xtream \\
      --url http://panel.example:8080 --username me
  tunerpool provider add --name Free --kind m3u --url https://example.org/free.m3u")]
    Add(ProviderAddArgs),
    /// List providers with their sync status.
    List,
    /// Sync a provider's catalog now.
    #[command(after_help = "Example:\n  tunerpool provider sync MyTV")]
    Sync {
        /// Provider id or name.
        provider: String,
    },
    /// Remove a provider and everything it brought.
    #[command(after_help = "Example:\n  tunerpool provider remove MyTV")]
    Remove {
        /// Provider id or name.
        provider: String,
    },
}

#[derive(Debug, Args)]
pub struct ProviderAddArgs {
    /// A name for the provider.
    #[arg(long)]
    pub name: String,
    /// xtream, m3u or agtv.
    #[arg(long)]
    pub kind: String,
    /// Xtream: the panel URL (http://host:port). M3U/AGTV: the playlist URL or file path.
    #[arg(long)]
    pub url: String,
    /// Xtream username (becomes the primary account).
    #[arg(long)]
    pub username: Option<String>,
    /// Xtream password. Prefer the environment variable, which stays out of shell history and `ps`.
    #[arg(long, env = "TUNERPOOL_PROVIDER_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// XMLTV guide URL (M3U playlists usually announce theirs).
    #[arg(long)]
    pub epg_url: Option<String>,
    /// User-Agent to send to this provider.
    #[arg(long)]
    pub user_agent: Option<String>,
    /// Cap on concurrent streams over all accounts of this provider (agtv default: 5).
    #[arg(long, allow_negative_numbers = true)]
    pub max_streams: Option<i64>,
    /// Lower is tried first.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i64,
    /// Do not sync right away.
    #[arg(long)]
    pub no_sync: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    /// Every argument and every command says what it is for.
    #[test]
    fn every_option_and_command_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" && arg.get_help().is_none() {
                    missing.push(format!("{path} --{id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_name() != "help" && sub.get_about().is_none() {
                    missing.push(format!("{path} {}", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "tunerpool", &mut missing);
        assert!(missing.is_empty(), "without help text: {missing:?}");
    }

    /// The options every command accepts are listed apart from the command's own.
    #[test]
    fn global_options_are_grouped_apart() {
        let mut cmd = Cli::command();
        cmd.build();
        let add = cmd.find_subcommand_mut("provider").unwrap().find_subcommand_mut("add").unwrap();
        let help = add.render_help().to_string();
        let (own, rest) = help.split_once("Global options:").expect("a Global options section");
        let global = rest.split("Examples:").next().unwrap();
        assert!(own.contains("--kind") && !own.contains("--data-dir"), "{help}");
        assert!(global.contains("--data-dir") && !global.contains("--kind"), "{help}");
    }
}
