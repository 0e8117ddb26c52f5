//! The command line: what a user can type, with help texts.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// tunerpool: pool IPTV provider accounts behind one proxy.
#[derive(Debug, Parser)]
#[command(name = "tunerpool", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (default: ./tunerpool.toml if it exists).
    #[arg(long, global = true, env = "TUNERPOOL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on, e.g. 0.0.0.0:8080 (key: listen).
    #[arg(long, global = true, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Where the database and state live (key: data_dir).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// Log filter: error, warn, info, debug, trace, or e.g. tunerpool=debug (key: log_level).
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Set any configuration key, e.g. --set sync.catalog_interval=6h (repeatable).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: HTTP API, scheduled provider syncs.
    Serve,
    /// Run a self-contained demo: a simulated provider with 2 accounts and 20 channels, a
    /// temporary data dir, and the gateway serving its catalog.
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
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user (its password is stored hashed).
    Add {
        #[arg(long)]
        username: String,
        /// Prefer the environment variable, which stays out of shell history and `ps`.
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
    Remove {
        /// User id or username.
        user: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Check Xtream credentials against a panel: reachability, whether the panel accepts them, the
    /// detected connection limit, expiry and status, and a suggested max streams. Nothing is stored.
    Test {
        /// The panel URL (http://host:port).
        #[arg(long)]
        url: String,
        #[arg(long)]
        username: String,
        /// Prefer the environment variable, which stays out of shell history and `ps`.
        #[arg(long, env = "TUNERPOOL_PROVIDER_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// Add an account to a provider (another login of the same provider) and fetch its details.
    Add {
        /// Provider id or name.
        #[arg(long)]
        provider: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        username: Option<String>,
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
    Check {
        /// The file to check (default: the --config file, or ./tunerpool.toml).
        file: Option<PathBuf>,
    },
    /// Print the effective configuration (file, environment and flags applied) as TOML.
    Show,
}

#[derive(Debug, Subcommand)]
pub enum InspectCommand {
    /// Summarize an M3U playlist (file or http(s) URL): entries, groups, attributes, skipped lines.
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
    Add(ProviderAddArgs),
    /// List providers with their sync status.
    List,
    /// Sync a provider's catalog now.
    Sync {
        /// Provider id or name.
        provider: String,
    },
    /// Remove a provider and everything it brought.
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
